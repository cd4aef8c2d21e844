/* The rolling update supervisor (see update.h for the rules).
 *
 * One step: group the tasks by slot (node id for global services), find for
 * each slot its dirty runnable tasks, its runnable new tasks and whether one
 * is still starting or being monitored, count failures of new tasks, then
 * either apply the failure action, open the next batch, or finish. */
#include "manager/update.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define ST_RUNNING  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define ST_FAILED   SWARMC__TASK_STATE__TASK_STATE_FAILED
#define ST_REJECTED SWARMC__TASK_STATE__TASK_STATE_REJECTED

#define DIRTY(t) (dirty[(t)-tasks])

#define U_UPDATING       SWARMC__UPDATE_STATE__UPDATE_STATE_UPDATING
#define U_PAUSED         SWARMC__UPDATE_STATE__UPDATE_STATE_PAUSED
#define U_COMPLETED      SWARMC__UPDATE_STATE__UPDATE_STATE_COMPLETED
#define U_ROLLBACK       SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_STARTED
#define U_ROLLBACK_PAUSE SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_PAUSED
#define U_ROLLBACK_DONE  SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_COMPLETED

void swc_update_config_from_pb(const Swarmc__UpdateConfig *pb, struct swc_update_config *out)
{
    out->parallelism = 1;
    out->delay_ns = 0;
    out->failure_action = SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_PAUSE;
    out->monitor_ns = SWC_UPDATE_DEFAULT_MONITOR;
    out->max_failure_ratio = 0;
    out->order = SWARMC__UPDATE_ORDER__UPDATE_ORDER_STOP_FIRST;
    if (pb == NULL)
        return;
    out->parallelism = pb->parallelism;
    out->delay_ns = pb->delay_ns < 0 ? 0 : pb->delay_ns;
    out->failure_action = pb->failure_action;
    if (pb->monitor_ns > 0)
        out->monitor_ns = pb->monitor_ns;
    out->max_failure_ratio = pb->max_failure_ratio;
    out->order = pb->order;
}

bool swc_update_spec_equal(const Swarmc__TaskSpec *a, const Swarmc__TaskSpec *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    size_t la = swarmc__task_spec__get_packed_size(a);
    size_t lb = swarmc__task_spec__get_packed_size(b);
    if (la != lb)
        return false;
    uint8_t *pa = swc_malloc(la ? la : 1), *pb = swc_malloc(lb ? lb : 1);
    bool eq = false;
    if (pa != NULL && pb != NULL) {
        swarmc__task_spec__pack(a, pa);
        swarmc__task_spec__pack(b, pb);
        eq = memcmp(pa, pb, la) == 0;
    }
    swc_free(pa);
    swc_free(pb);
    return eq;
}

void swc_update_output_clear(struct swc_update_output *out)
{
    swc_orch_actions_clear(&out->actions);
    out->status_changed = false;
    out->rollback = false;
    out->next_wakeup = 0;
}

static const struct swc_orch_task *sort_tasks;
static bool sort_global;

static int key_cmp(const struct swc_orch_task *a, const struct swc_orch_task *b)
{
    if (sort_global)
        return strcmp(a->node_id != NULL ? a->node_id : "", b->node_id != NULL ? b->node_id : "");
    return a->slot < b->slot ? -1 : a->slot > b->slot;
}

static int idx_cmp(const void *x, const void *y)
{
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    int c = key_cmp(&sort_tasks[i], &sort_tasks[j]);
    if (c != 0)
        return c;
    return i < j ? -1 : i > j;
}

static void set_state(struct swc_update_state *st, struct swc_update_output *out, int state,
                      const char *msg)
{
    if (st->state != state || strcmp(st->message, msg) != 0)
        out->status_changed = true;
    st->state = state;
    snprintf(st->message, sizeof(st->message), "%s", msg);
}

static void wake(struct swc_update_output *out, int64_t at)
{
    if (out->next_wakeup == 0 || at < out->next_wakeup)
        out->next_wakeup = at;
}

static bool is_new(const struct swc_update_state *st, const struct swc_orch_task *t, bool dirty)
{
    return !dirty && t->created_at >= st->started_at;
}

/* dirty[i] for every task: explicitly marked, or made from another spec
 * version whose spec differs from the template (compared once per version). */
static int compute_dirty(const struct swc_update_input *in, bool *dirty)
{
    struct {
        uint64_t version;
        bool dirty;
    } cache[8];
    size_t n_cache = 0;
    for (size_t i = 0; i < in->n_tasks; i++) {
        const struct swc_orch_task *t = &in->tasks[i];
        dirty[i] = t->dirty;
        if (dirty[i] || t->spec_version == in->spec_version)
            continue;
        if (in->task_template == NULL || t->spec == NULL) {
            dirty[i] = true;
            continue;
        }
        size_t c = 0;
        while (c < n_cache && cache[c].version != t->spec_version)
            c++;
        if (c < n_cache) {
            dirty[i] = cache[c].dirty;
            continue;
        }
        dirty[i] = !swc_update_spec_equal(t->spec, in->task_template);
        if (n_cache < 8) {
            cache[n_cache].version = t->spec_version;
            cache[n_cache++].dirty = dirty[i];
        }
    }
    return 0;
}

static bool active_state(int state)
{
    return state == U_UPDATING || state == U_ROLLBACK;
}

int swc_update_step(struct swc_update_state *st, const struct swc_update_input *in,
                    struct swc_update_output *out)
{
    const struct swc_orch_task *tasks = in->tasks;
    size_t n = in->n_tasks;
    const struct swc_update_config *cfg = in->rollback ? &in->rollback_config : &in->update;
    int64_t now = in->now;
    out->status_changed = false;
    out->rollback = false;
    out->next_wakeup = 0;

    int rc = SWC_ENOMEM;
    size_t *idx = swc_malloc((n ? n : 1) * sizeof(*idx));
    bool *dirty = swc_malloc((n ? n : 1) * sizeof(*dirty));
    if (idx == NULL || dirty == NULL)
        goto out;
    compute_dirty(in, dirty);
    size_t n_dirty = 0;
    for (size_t i = 0; i < n; i++)
        if (dirty[i] && swc_orch_task_runnable(&tasks[i]))
            n_dirty++;

    if (st->target_version != in->spec_version) {
        bool fresh = st->target_version == 0;
        st->target_version = in->spec_version;
        if (n_dirty == 0 && fresh) {
            rc = 0; /* a state just made for a service with nothing to roll */
            goto out;
        }
        st->started_at = now;
        st->completed_at = 0;
        st->batch_done_at = 0;
        st->batch_open = false;
        if (in->rollback && st->state == U_ROLLBACK)
            out->status_changed = true; /* keep the message saying why */
        else
            set_state(st, out, in->rollback ? U_ROLLBACK : U_UPDATING,
                      in->rollback ? "rollback in progress" : "update in progress");
        out->status_changed = true;
    }
    if (!active_state(st->state)) {
        rc = 0;
        goto out;
    }

    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_tasks = tasks;
    sort_global = in->global;
    qsort(idx, n, sizeof(*idx), idx_cmp);

    /* pass 1: per slot state, failures */
    size_t in_flight = 0, dirty_slots = 0, monitored = 0, updated = 0, failed = 0;
    const struct swc_orch_task *last_failed = NULL;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && key_cmp(&tasks[idx[i]], &tasks[idx[j]]) == 0)
            j++;
        bool old_run = false, new_run = false, starting = false, has_new = false;
        const struct swc_orch_task *new_running = NULL;
        for (size_t k = i; k < j; k++) {
            const struct swc_orch_task *t = &tasks[idx[k]];
            bool runnable = swc_orch_task_runnable(t);
            if (DIRTY(t) && runnable)
                old_run = true;
            if (!DIRTY(t) && runnable) {
                new_run = true;
                if (t->state < ST_RUNNING)
                    starting = true;
                else
                    new_running = t;
            }
            if (!is_new(st, t, DIRTY(t)))
                continue;
            has_new = true;
            if (t->state == ST_FAILED || t->state == ST_REJECTED) {
                bool in_window =
                    t->running_at == 0 || t->status_ts <= t->running_at + cfg->monitor_ns;
                if (in_window) {
                    failed++;
                    if (last_failed == NULL || t->status_ts >= last_failed->status_ts)
                        last_failed = t;
                }
            }
        }
        if (has_new)
            updated++;
        if (old_run && !new_run)
            dirty_slots++;
        if (starting)
            in_flight++;
        if (new_running != NULL && is_new(st, new_running, DIRTY(new_running)) &&
            new_running->running_at > 0 && now < new_running->running_at + cfg->monitor_ns) {
            monitored++;
            wake(out, new_running->running_at + cfg->monitor_ns);
        }
        if (old_run && new_running != NULL && !starting) {
            /* start-first: the new task runs, retire the old one */
            for (size_t k = i; k < j; k++) {
                const struct swc_orch_task *t = &tasks[idx[k]];
                if (DIRTY(t) && swc_orch_task_runnable(t)) {
                    struct swc_orch_action a = {.kind = SWC_ORCH_SHUTDOWN,
                                                .task_id = t->id,
                                                .slot = t->slot,
                                                .node_id = t->node_id,
                                                .spec_version = t->spec_version};
                    if (swc_orch_actions_push(&out->actions, &a))
                        goto out;
                }
            }
        }
        i = j;
    }

    if (failed > 0 && updated > 0 && (float)failed / (float)updated > cfg->max_failure_ratio) {
        int action = cfg->failure_action;
        char msg[200];
        if (action == SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_ROLLBACK &&
            !in->rollback) {
            snprintf(msg, sizeof(msg),
                     "update rolled back due to failure or early termination of task %s",
                     last_failed->id);
            set_state(st, out, U_ROLLBACK, msg);
            out->rollback = true;
            out->next_wakeup = 0;
            rc = 0;
            goto out;
        }
        if (action != SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_CONTINUE) {
            snprintf(msg, sizeof(msg), "%s paused due to failure or early termination of task %s",
                     in->rollback ? "rollback" : "update", last_failed->id);
            set_state(st, out, in->rollback ? U_ROLLBACK_PAUSE : U_PAUSED, msg);
            out->next_wakeup = 0;
            rc = 0;
            goto out;
        }
    }

    if (in_flight > 0) {
        st->batch_open = true;
    } else if (st->batch_open) {
        st->batch_open = false;
        st->batch_done_at = now;
    }

    if (in_flight == 0 && dirty_slots > 0) {
        if (st->batch_done_at != 0 && now < st->batch_done_at + cfg->delay_ns) {
            wake(out, st->batch_done_at + cfg->delay_ns);
        } else {
            /* pass 2: open the next batch, lowest slots first */
            size_t want = cfg->parallelism ? cfg->parallelism : dirty_slots;
            for (size_t i = 0; i < n && want > 0;) {
                size_t j = i + 1;
                while (j < n && key_cmp(&tasks[idx[i]], &tasks[idx[j]]) == 0)
                    j++;
                bool old_run = false, new_run = false;
                for (size_t k = i; k < j; k++) {
                    const struct swc_orch_task *t = &tasks[idx[k]];
                    if (swc_orch_task_runnable(t)) {
                        old_run |= DIRTY(t);
                        new_run |= !DIRTY(t);
                    }
                }
                if (old_run && !new_run) {
                    const struct swc_orch_task *first = &tasks[idx[i]];
                    if (cfg->order == SWARMC__UPDATE_ORDER__UPDATE_ORDER_STOP_FIRST) {
                        for (size_t k = i; k < j; k++) {
                            const struct swc_orch_task *t = &tasks[idx[k]];
                            if (!DIRTY(t) || !swc_orch_task_runnable(t))
                                continue;
                            struct swc_orch_action a = {.kind = SWC_ORCH_SHUTDOWN,
                                                        .task_id = t->id,
                                                        .slot = t->slot,
                                                        .node_id = t->node_id,
                                                        .spec_version = t->spec_version};
                            if (swc_orch_actions_push(&out->actions, &a))
                                goto out;
                        }
                    }
                    struct swc_orch_action c = {.kind = SWC_ORCH_CREATE,
                                                .slot = in->global ? 0 : first->slot,
                                                .node_id = in->global ? first->node_id : NULL,
                                                .spec_version = in->spec_version,
                                                .job_iteration = first->job_iteration};
                    if (swc_orch_actions_push(&out->actions, &c))
                        goto out;
                    want--;
                    st->batch_open = true;
                }
                i = j;
            }
        }
    } else if (in_flight == 0 && dirty_slots == 0 && monitored == 0 && out->actions.n == 0) {
        bool rb = st->state == U_ROLLBACK;
        set_state(st, out, rb ? U_ROLLBACK_DONE : U_COMPLETED,
                  rb ? "rollback completed" : "update completed");
        st->completed_at = now;
        out->next_wakeup = 0;
    }
    rc = 0;
out:
    swc_free(idx);
    swc_free(dirty);
    return rc;
}
