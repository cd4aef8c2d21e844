/* Orchestrators: replicated, global and job reconciliation (see
 * orchestrator.h for the rules).
 *
 * Every function sorts task indexes by their key (slot, or node id for global
 * modes) so each slot's tasks are adjacent, classifies each slot once
 * (classify()), then decides creations and removals from the counts. The
 * classification is shared: it also applies the restart policy to a slot
 * whose newest task ended while still desired RUNNING. */
#include "manager/orchestrator.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"

#define ST_RUNNING  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define ST_COMPLETE SWARMC__TASK_STATE__TASK_STATE_COMPLETE
#define ST_SHUTDOWN SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
#define ST_REMOVE   SWARMC__TASK_STATE__TASK_STATE_REMOVE
#define ST_ORPHANED SWARMC__TASK_STATE__TASK_STATE_ORPHANED

int swc_orch_actions_push(struct swc_orch_actions *a, const struct swc_orch_action *act)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void *p = swc_realloc(a->items, cap * sizeof(*a->items));
        if (p == NULL)
            return SWC_ENOMEM;
        a->items = p;
        a->cap = cap;
    }
    a->items[a->n++] = *act;
    return 0;
}

void swc_orch_actions_clear(struct swc_orch_actions *a)
{
    swc_free(a->items);
    a->items = NULL;
    a->n = a->cap = 0;
}

bool swc_orch_task_runnable(const struct swc_orch_task *t)
{
    return t->desired_state <= ST_RUNNING && t->state <= ST_RUNNING;
}

static bool dead(const struct swc_orch_task *t)
{
    return t->state > ST_RUNNING;
}

static int push(struct swc_orch_actions *out, enum swc_orch_action_kind kind,
                const struct swc_orch_task *t)
{
    struct swc_orch_action a = {.kind = kind,
                                .task_id = t->id,
                                .slot = t->slot,
                                .node_id = t->node_id,
                                .spec_version = t->spec_version,
                                .job_iteration = t->job_iteration};
    return swc_orch_actions_push(out, &a);
}

static int push_create(struct swc_orch_actions *out, const struct swc_orch_service *svc,
                       uint64_t slot, const char *node_id)
{
    struct swc_orch_action a = {.kind = SWC_ORCH_CREATE,
                                .slot = slot,
                                .node_id = node_id,
                                .spec_version = svc->spec_version,
                                .job_iteration = svc->job_iteration};
    return swc_orch_actions_push(out, &a);
}

/* ------------------------------------------------------------ grouping */

static const struct swc_orch_task *sort_tasks;
static bool sort_by_node;

static int key_cmp(const struct swc_orch_task *a, const struct swc_orch_task *b)
{
    if (sort_by_node)
        return strcmp(a->node_id != NULL ? a->node_id : "", b->node_id != NULL ? b->node_id : "");
    return a->slot < b->slot ? -1 : a->slot > b->slot;
}

static int idx_cmp(const void *x, const void *y)
{
    const struct swc_orch_task *a = &sort_tasks[*(const size_t *)x];
    const struct swc_orch_task *b = &sort_tasks[*(const size_t *)y];
    int c = key_cmp(a, b);
    if (c != 0)
        return c;
    if (a->created_at != b->created_at)
        return a->created_at < b->created_at ? -1 : 1;
    return *(const size_t *)x < *(const size_t *)y ? -1 : 1;
}

/* Indexes of tasks sorted by key then creation time (oldest first). */
static size_t *sorted_index(const struct swc_orch_task *tasks, size_t n, bool by_node)
{
    size_t *idx = swc_malloc((n ? n : 1) * sizeof(*idx));
    if (idx == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_tasks = tasks;
    sort_by_node = by_node;
    qsort(idx, n, sizeof(*idx), idx_cmp);
    return idx;
}

enum slot_kind {
    K_GONE,     /* every task desired REMOVE (or no task at all) */
    K_LIVE,     /* has a runnable task */
    K_PENDING,  /* restart due later */
    K_RESTART,  /* restart due now (pushed by push_restart once kept) */
    K_FINISHED, /* ended and not restarted */
    K_COMPLETE, /* (jobs) a task completed */
};

struct slot {
    uint64_t slot;
    const char *node_id;
    const size_t *idx; /* its tasks, oldest first */
    size_t n;
    enum slot_kind kind;
    const struct swc_orch_task *best;  /* runnable task (the most advanced) */
    const struct swc_orch_task *ended; /* K_RESTART: the task to replace */
    bool removable;                    /* scale-down bookkeeping */
};

struct ctx {
    const struct swc_orch_service *svc;
    const struct swc_orch_task *tasks;
    int64_t now;
    struct swc_orch_actions *out;
    int64_t *wakeup;
    bool job; /* consider job iterations and COMPLETE */
};

/* Classify one slot (or one node's tasks) and apply the restart policy.
 * A restart due now is only recorded (K_RESTART): the caller pushes it with
 * push_restart once it knows the slot stays. */
static int classify(struct ctx *c, struct slot *s)
{
    const struct swc_orch_task *newest = NULL;
    s->kind = K_GONE;
    s->best = NULL;
    bool removed_all = true;
    for (size_t i = 0; i < s->n; i++) {
        const struct swc_orch_task *t = &c->tasks[s->idx[i]];
        if (c->job && t->job_iteration != c->svc->job_iteration)
            continue;
        if (c->job && t->state == ST_COMPLETE) {
            s->kind = K_COMPLETE;
            return 0;
        }
        if (t->desired_state < ST_REMOVE)
            removed_all = false;
        if (swc_orch_task_runnable(t)) {
            if (s->best == NULL || t->state >= s->best->state)
                s->best = t;
        }
        if (t->desired_state < ST_REMOVE)
            newest = t; /* sorted oldest first */
    }
    if (s->best != NULL) {
        s->kind = K_LIVE;
        /* dead tasks left desired RUNNING next to a live one: settle them */
        for (size_t i = 0; i < s->n; i++) {
            const struct swc_orch_task *t = &c->tasks[s->idx[i]];
            if (c->job && t->job_iteration != c->svc->job_iteration)
                continue;
            if (dead(t) && t->desired_state <= ST_RUNNING && push(c->out, SWC_ORCH_SHUTDOWN, t))
                return SWC_ENOMEM;
        }
        return 0;
    }
    if (removed_all || newest == NULL)
        return 0;
    if (newest->desired_state > ST_RUNNING) {
        /* shut down on purpose (lost node, update) with no replacement: the
         * slot is free again */
        return 0;
    }
    /* the newest task ended while desired RUNNING: restart? */
    int64_t hist[64];
    size_t nh = 0;
    for (size_t i = 0; i < s->n && nh < 64; i++) {
        const struct swc_orch_task *t = &c->tasks[s->idx[i]];
        if (t != newest && dead(t) && t->spec_version == newest->spec_version &&
            t->state != ST_ORPHANED && (!c->job || t->job_iteration == newest->job_iteration))
            hist[nh++] = t->status_ts;
    }
    struct swc_restart_decision d =
        swc_restart_decide(&c->svc->restart, newest->state, newest->state == ST_ORPHANED,
                           newest->status_ts, hist, nh, c->now);
    switch (d.verdict) {
    case SWC_RESTART_NOW:
        s->kind = K_RESTART;
        s->ended = newest;
        break;
    case SWC_RESTART_AT:
        s->kind = K_PENDING;
        if (*c->wakeup == 0 || d.at < *c->wakeup)
            *c->wakeup = d.at;
        break;
    case SWC_RESTART_NO:
        /* stays desired RUNNING: the decision is stable, so it is simply
         * made again next time */
        s->kind = K_FINISHED;
        break;
    }
    return 0;
}

/* Replace the ended task of a K_RESTART slot. */
static int push_restart(struct ctx *c, const struct slot *s)
{
    if (s->kind != K_RESTART)
        return 0;
    if (push(c->out, SWC_ORCH_SHUTDOWN, s->ended) ||
        push_create(c->out, c->svc, s->slot, s->node_id))
        return SWC_ENOMEM;
    return 0;
}

/* Split sorted tasks into slots (by slot number or node id). */
static struct slot *split(const struct swc_orch_task *tasks, const size_t *idx, size_t n,
                          bool by_node, size_t *n_slots)
{
    struct slot *s = swc_calloc(n ? n : 1, sizeof(*s));
    if (s == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && key_cmp(&tasks[idx[i]], &tasks[idx[j]]) == 0)
            j++;
        s[k].slot = tasks[idx[i]].slot;
        s[k].node_id = tasks[idx[i]].node_id;
        s[k].idx = idx + i;
        s[k].n = j - i;
        k++;
        i = j;
    }
    *n_slots = k;
    return s;
}

static int remove_slot(struct ctx *c, const struct slot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct swc_orch_task *t = &c->tasks[s->idx[i]];
        if (t->desired_state < ST_REMOVE && push(c->out, SWC_ORCH_REMOVE, t))
            return SWC_ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------ replicated */

/* Scale-down order among running slots: a max-heap of nodes by live copies. */
struct ngroup {
    const char *node_id;
    struct slot **slots; /* sorted by slot number, highest taken first */
    size_t n;
};

static bool ng_more(const struct ngroup *a, const struct ngroup *b)
{
    if (a->n != b->n)
        return a->n > b->n;
    return strcmp(a->node_id, b->node_id) < 0;
}

static void ng_sift_down(struct ngroup *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && ng_more(&h[l], &h[m]))
            m = l;
        if (r < n && ng_more(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        struct ngroup t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int slotp_by_node(const void *x, const void *y)
{
    const struct slot *a = *(struct slot *const *)x, *b = *(struct slot *const *)y;
    const char *na = a->best->node_id ? a->best->node_id : "";
    const char *nb = b->best->node_id ? b->best->node_id : "";
    int c = strcmp(na, nb);
    if (c != 0)
        return c;
    return a->slot < b->slot ? -1 : a->slot > b->slot;
}

/* Priority of a slot for removal: lower goes first. */
static int removal_class(const struct slot *s)
{
    if (s->kind == K_FINISHED)
        return 0;
    if (s->kind == K_PENDING || s->kind == K_RESTART)
        return 1;
    if (s->best->state < ST_RUNNING)
        return 2;
    return 3;
}

static int scale_down(struct ctx *c, struct slot *slots, size_t n_slots, uint64_t surplus)
{
    /* classes 0..2: highest slot first (slots are sorted ascending) */
    for (int cls = 0; cls < 3 && surplus > 0; cls++)
        for (size_t i = n_slots; i-- > 0 && surplus > 0;) {
            struct slot *s = &slots[i];
            if (s->kind == K_GONE || s->kind == K_COMPLETE || removal_class(s) != cls)
                continue;
            if (remove_slot(c, s))
                return SWC_ENOMEM;
            s->kind = K_GONE;
            surplus--;
        }
    if (surplus == 0)
        return 0;
    int rc = SWC_ENOMEM;
    size_t nr = 0;
    struct slot **run = swc_malloc((n_slots ? n_slots : 1) * sizeof(*run));
    struct ngroup *h = swc_malloc((n_slots ? n_slots : 1) * sizeof(*h));
    if (run == NULL || h == NULL)
        goto out;
    for (size_t i = 0; i < n_slots; i++)
        if (slots[i].kind == K_LIVE)
            run[nr++] = &slots[i];
    qsort(run, nr, sizeof(*run), slotp_by_node);
    size_t nh = 0;
    for (size_t i = 0; i < nr;) {
        size_t j = i + 1;
        while (j < nr && strcmp(run[i]->best->node_id ? run[i]->best->node_id : "",
                                run[j]->best->node_id ? run[j]->best->node_id : "") == 0)
            j++;
        h[nh].node_id = run[i]->best->node_id ? run[i]->best->node_id : "";
        h[nh].slots = run + i;
        h[nh].n = j - i;
        nh++;
        i = j;
    }
    for (size_t i = nh / 2; i-- > 0;)
        ng_sift_down(h, nh, i);
    while (surplus > 0 && nh > 0) {
        struct slot *s = h[0].slots[--h[0].n];
        if (remove_slot(c, s))
            goto out;
        s->kind = K_GONE;
        surplus--;
        if (h[0].n == 0)
            h[0] = h[--nh];
        ng_sift_down(h, nh, 0);
    }
    rc = 0;
out:
    swc_free(run);
    swc_free(h);
    return rc;
}

int swc_orch_replicated(const struct swc_orch_service *svc, const struct swc_orch_task *tasks,
                        size_t n, int64_t now, struct swc_orch_actions *out, int64_t *next_wakeup)
{
    struct ctx c = {svc, tasks, now, out, next_wakeup, false};
    int rc = SWC_ENOMEM;
    size_t n_slots = 0;
    struct slot *slots = NULL;
    size_t *idx = sorted_index(tasks, n, false);
    if (idx == NULL)
        return SWC_ENOMEM;
    slots = split(tasks, idx, n, false, &n_slots);
    if (slots == NULL)
        goto out;
    uint64_t occupied = 0;
    for (size_t i = 0; i < n_slots; i++) {
        if (slots[i].slot == 0)
            continue; /* not a replicated task */
        if (classify(&c, &slots[i]))
            goto out;
        if (slots[i].kind != K_GONE)
            occupied++;
    }
    if (occupied < svc->replicas) {
        /* fill the lowest free slot numbers */
        uint64_t need = svc->replicas - occupied, next = 1;
        size_t i = 0;
        while (need > 0) {
            while (i < n_slots && (slots[i].slot < next || slots[i].slot == 0))
                i++;
            if (i < n_slots && slots[i].slot == next && slots[i].kind != K_GONE) {
                next++;
                continue;
            }
            if (push_create(out, svc, next, NULL))
                goto out;
            next++;
            need--;
        }
    } else if (occupied > svc->replicas) {
        for (size_t i = 0; i < n_slots; i++)
            if (slots[i].slot == 0)
                slots[i].kind = K_GONE;
        if (scale_down(&c, slots, n_slots, occupied - svc->replicas))
            goto out;
    }
    for (size_t i = 0; i < n_slots; i++)
        if (push_restart(&c, &slots[i]))
            goto out;
    rc = 0;
out:
    swc_free(slots);
    swc_free(idx);
    return rc;
}

/* ------------------------------------------------------------ global */

bool swc_orch_node_eligible(const struct swc_orch_service *svc, const struct swc_orch_node *node)
{
    if (!node->ready || node->availability != SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE)
        return false;
    if (!swc_constraint_set_match(svc->constraints, node->attrs))
        return false;
    if (svc->n_platforms == 0)
        return true;
    for (size_t i = 0; i < svc->n_platforms; i++) {
        const struct swc_sched_platform *p = &svc->platforms[i];
        bool os = p->os == NULL || p->os[0] == '\0' ||
                  (node->attrs->os != NULL && strcasecmp(p->os, node->attrs->os) == 0);
        bool arch =
            p->arch == NULL || p->arch[0] == '\0' ||
            strcasecmp(swc_arch_normalize(p->arch), swc_arch_normalize(node->attrs->arch)) == 0;
        if (os && arch)
            return true;
    }
    return false;
}

/* An existing task may stay on node: it exists, is not drained, matches. */
static bool node_keeps(const struct swc_orch_service *svc, const struct swc_orch_node *node)
{
    if (node == NULL || node->availability == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN)
        return false;
    struct swc_orch_node active = *node;
    active.ready = true;
    active.availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
    return swc_orch_node_eligible(svc, &active);
}

static const struct swc_orch_node *sort_nodes;

static int node_idx_cmp(const void *x, const void *y)
{
    const char *a = sort_nodes[*(const size_t *)x].attrs->id;
    const char *b = sort_nodes[*(const size_t *)y].attrs->id;
    return strcmp(a, b);
}

static int global_common(const struct swc_orch_service *svc, const struct swc_orch_task *tasks,
                         size_t n, const struct swc_orch_node *nodes, size_t n_nodes, int64_t now,
                         struct swc_orch_actions *out, int64_t *next_wakeup, bool job)
{
    struct ctx c = {svc, tasks, now, out, next_wakeup, job};
    int rc = SWC_ENOMEM;
    size_t n_slots = 0;
    struct slot *slots = NULL;
    size_t *nidx = NULL;
    size_t *idx = sorted_index(tasks, n, true);
    if (idx == NULL)
        return SWC_ENOMEM;
    slots = split(tasks, idx, n, true, &n_slots);
    nidx = swc_malloc((n_nodes ? n_nodes : 1) * sizeof(*nidx));
    if (slots == NULL || nidx == NULL)
        goto out;
    for (size_t i = 0; i < n_nodes; i++)
        nidx[i] = i;
    sort_nodes = nodes;
    qsort(nidx, n_nodes, sizeof(*nidx), node_idx_cmp);
    /* merge the node list and the per-node task groups, both sorted by id */
    size_t si = 0, ni = 0;
    while (si < n_slots || ni < n_nodes) {
        const char *sid = si < n_slots ? (slots[si].node_id ? slots[si].node_id : "") : NULL;
        const struct swc_orch_node *node = ni < n_nodes ? &nodes[nidx[ni]] : NULL;
        int cmp = sid == NULL ? 1 : node == NULL ? -1 : strcmp(sid, node->attrs->id);
        struct slot *s = cmp <= 0 ? &slots[si++] : NULL;
        if (cmp >= 0)
            ni++;
        else
            node = NULL;
        if (s != NULL && (s->node_id == NULL || s->node_id[0] == '\0')) {
            /* unassigned global task: drop it if it can no longer be placed */
            continue;
        }
        if (s != NULL && job) {
            /* shut down runnable tasks of an earlier job iteration */
            for (size_t i = 0; i < s->n; i++) {
                const struct swc_orch_task *t = &tasks[s->idx[i]];
                if (t->job_iteration != svc->job_iteration && swc_orch_task_runnable(t) &&
                    push(out, SWC_ORCH_SHUTDOWN, t))
                    goto out;
            }
        }
        if (!node_keeps(svc, node)) {
            if (s != NULL && remove_slot(&c, s))
                goto out;
            continue;
        }
        bool eligible = swc_orch_node_eligible(svc, node);
        if (s != NULL) {
            if (classify(&c, s))
                goto out;
            /* a node that is down or paused keeps its task but gets no
             * replacement until it can take one */
            if (s->kind == K_RESTART && !eligible)
                continue;
            if (push_restart(&c, s))
                goto out;
            if (s->kind != K_GONE)
                continue;
        }
        if (eligible && push_create(out, svc, 0, node->attrs->id))
            goto out;
    }
    rc = 0;
out:
    swc_free(nidx);
    swc_free(slots);
    swc_free(idx);
    return rc;
}

int swc_orch_global(const struct swc_orch_service *svc, const struct swc_orch_task *tasks, size_t n,
                    const struct swc_orch_node *nodes, size_t n_nodes, int64_t now,
                    struct swc_orch_actions *out, int64_t *next_wakeup)
{
    return global_common(svc, tasks, n, nodes, n_nodes, now, out, next_wakeup, false);
}

int swc_orch_global_job(const struct swc_orch_service *svc, const struct swc_orch_task *tasks,
                        size_t n, const struct swc_orch_node *nodes, size_t n_nodes, int64_t now,
                        struct swc_orch_actions *out, int64_t *next_wakeup)
{
    return global_common(svc, tasks, n, nodes, n_nodes, now, out, next_wakeup, true);
}

/* ------------------------------------------------------------ jobs */

int swc_orch_replicated_job(const struct swc_orch_service *svc, const struct swc_orch_task *tasks,
                            size_t n, int64_t now, struct swc_orch_actions *out,
                            int64_t *next_wakeup)
{
    struct ctx c = {svc, tasks, now, out, next_wakeup, true};
    uint64_t total = svc->total_completions, maxc = svc->max_concurrent;
    if (total == 0)
        total = maxc ? maxc : 1;
    if (maxc == 0)
        maxc = total;
    int rc = SWC_ENOMEM;
    size_t n_slots = 0;
    struct slot *slots = NULL;
    size_t *idx = sorted_index(tasks, n, false);
    if (idx == NULL)
        return SWC_ENOMEM;
    slots = split(tasks, idx, n, false, &n_slots);
    if (slots == NULL)
        goto out;
    uint64_t active = 0;
    for (size_t i = 0; i < n_slots; i++) {
        struct slot *s = &slots[i];
        for (size_t j = 0; j < s->n; j++) {
            const struct swc_orch_task *t = &tasks[s->idx[j]];
            bool stale = t->job_iteration != svc->job_iteration || s->slot == 0 || s->slot > total;
            if (stale && swc_orch_task_runnable(t) &&
                push(out,
                     t->job_iteration != svc->job_iteration ? SWC_ORCH_SHUTDOWN : SWC_ORCH_REMOVE,
                     t))
                goto out;
        }
        if (s->slot == 0 || s->slot > total) {
            s->kind = K_GONE;
            continue;
        }
        if (classify(&c, s) || push_restart(&c, s))
            goto out;
        if (s->kind == K_LIVE || s->kind == K_PENDING || s->kind == K_RESTART)
            active++;
    }
    /* start empty slots, lowest first, up to max_concurrent in flight */
    size_t i = 0;
    for (uint64_t slot = 1; slot <= total && active < maxc; slot++) {
        while (i < n_slots && slots[i].slot < slot)
            i++;
        if (i < n_slots && slots[i].slot == slot && slots[i].kind != K_GONE)
            continue;
        if (push_create(out, svc, slot, NULL))
            goto out;
        active++;
    }
    rc = 0;
out:
    swc_free(slots);
    swc_free(idx);
    return rc;
}

/* ------------------------------------------------------------ protobuf */

int swc_orch_service_from_pb(const Swarmc__Service *s, struct swc_orch_service *svc,
                             struct swc_constraint_set *cons, struct swc_sched_platform **platforms,
                             struct swc_err *err)
{
    memset(svc, 0, sizeof(*svc));
    cons->items = NULL;
    cons->n = 0;
    *platforms = NULL;
    svc->id = s->id;
    svc->spec_version = s->spec_version;
    svc->job_iteration = s->job_status != NULL ? s->job_status->job_iteration : 0;
    const Swarmc__ServiceSpec *sp = s->spec;
    swc_restart_policy_from_pb(sp != NULL && sp->task != NULL ? sp->task->restart : NULL,
                               &svc->restart);
    if (sp == NULL)
        return 0;
    svc->mode = sp->mode_case;
    switch (sp->mode_case) {
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED:
        svc->replicas = sp->replicated != NULL ? sp->replicated->replicas : 0;
        break;
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB:
        if (sp->replicated_job != NULL) {
            svc->max_concurrent = sp->replicated_job->max_concurrent;
            svc->total_completions = sp->replicated_job->total_completions;
        }
        break;
    default:
        break;
    }
    const Swarmc__Placement *pl = sp->task != NULL ? sp->task->placement : NULL;
    if (pl == NULL)
        return 0;
    if (pl->n_platforms > 0) {
        *platforms = swc_calloc(pl->n_platforms, sizeof(**platforms));
        if (*platforms == NULL)
            return swc_err_set(err, SWC_ENOMEM, "orchestrator: out of memory");
        for (size_t i = 0; i < pl->n_platforms; i++) {
            (*platforms)[i].os = pl->platforms[i]->os;
            (*platforms)[i].arch = pl->platforms[i]->arch;
        }
        svc->platforms = *platforms;
        svc->n_platforms = pl->n_platforms;
    }
    int rc = swc_constraint_set_parse((const char *const *)pl->constraints, pl->n_constraints, cons,
                                      err);
    if (rc != 0) {
        swc_free(*platforms);
        *platforms = NULL;
        return rc;
    }
    svc->constraints = cons;
    return 0;
}

void swc_orch_task_from_pb(const Swarmc__Task *pb, struct swc_orch_task *t)
{
    memset(t, 0, sizeof(*t));
    t->id = pb->id;
    t->slot = pb->slot;
    t->node_id = pb->node_id;
    t->desired_state = pb->desired_state;
    t->spec_version = pb->spec_version;
    t->job_iteration = pb->job_iteration;
    t->spec = pb->spec;
    t->created_at = pb->meta != NULL ? pb->meta->created_at : 0;
    if (pb->status != NULL) {
        t->state = pb->status->state;
        t->status_ts = pb->status->timestamp;
        if (t->state == ST_RUNNING)
            t->running_at = pb->status->timestamp;
    }
}
