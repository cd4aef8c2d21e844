/* Convergence display (see progress.h). One line per slot shows the most
 * advanced task of the current spec version that is meant to run there,
 * as a bar over the steps a task goes through (new ... running); a task
 * that failed shows its error instead, and a pending one the scheduler's
 * reason ("no suitable node ..."), which is usually what the operator
 * needs to read. */
#include "progress.h"

#include <stdio.h>
#include <string.h>

#include "output.h"

/* Steps of a task on its way to running, for the bar. */
static int stage(int state)
{
    static const int order[] = {
        SWARMC__TASK_STATE__TASK_STATE_NEW,       SWARMC__TASK_STATE__TASK_STATE_PENDING,
        SWARMC__TASK_STATE__TASK_STATE_ASSIGNED,  SWARMC__TASK_STATE__TASK_STATE_ACCEPTED,
        SWARMC__TASK_STATE__TASK_STATE_PREPARING, SWARMC__TASK_STATE__TASK_STATE_READY,
        SWARMC__TASK_STATE__TASK_STATE_STARTING,  SWARMC__TASK_STATE__TASK_STATE_RUNNING};
    int s = 0;
    for (int i = 0; i < 8; i++) {
        if (state >= order[i]) {
            s = i;
        }
    }
    return s;
}

static bool is_job(const Swarmc__ServiceSpec *s)
{
    return s != NULL && (s->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB ||
                         s->mode_case == SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB);
}

static bool is_global(const Swarmc__ServiceSpec *s)
{
    return s != NULL && (s->mode_case == SWARMC__SERVICE_SPEC__MODE_GLOBAL ||
                         s->mode_case == SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB);
}

/* Should t represent its slot? Prefer a task meant to run over one being
 * shut down, then the newest. */
static bool better(const Swarmc__Task *t, const Swarmc__Task *cur)
{
    if (cur == NULL) {
        return true;
    }
    if (t->desired_state != cur->desired_state) {
        return t->desired_state < cur->desired_state;
    }
    int64_t a = t->meta ? t->meta->created_at : 0, b = cur->meta ? cur->meta->created_at : 0;
    if (a != b) {
        return a > b;
    }
    return strcmp(t->id, cur->id) > 0;
}

static void bar(int st, char *buf)
{
    int n = st * SWC_PROGRESS_BAR / 7;
    int i = 0;
    buf[i++] = '[';
    for (int k = 0; k < n; k++) {
        buf[i++] = '=';
    }
    buf[i++] = '>';
    for (int k = n; k < SWC_PROGRESS_BAR; k++) {
        buf[i++] = ' ';
    }
    buf[i++] = ']';
    buf[i] = '\0';
}

void swc_progress_render(const struct swc_progress_in *in, struct swc_progress_out *out)
{
    const Swarmc__ServiceSpec *s = in->spec;
    bool job = is_job(s), global = is_global(s);
    int goal =
        job ? SWARMC__TASK_STATE__TASK_STATE_COMPLETE : SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    int want_desired = goal;
    const Swarmc__Task *slot_task[SWC_PROGRESS_MAX_SLOTS + 1];
    const Swarmc__Task **global_tasks = NULL;
    size_t n_slots = 0;

    memset(out, 0, sizeof *out);
    memset(slot_task, 0, sizeof slot_task);
    if (!global) {
        if (s && s->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB && s->replicated_job) {
            n_slots = s->replicated_job->total_completions;
        } else if (s && s->replicated) {
            n_slots = s->replicated->replicas;
        }
    }
    out->total = (unsigned)n_slots;

    /* Global: one slot per node that has a current task meant to run. */
    const Swarmc__Task *gsel[SWC_PROGRESS_MAX_SLOTS];
    size_t n_g = 0;
    unsigned g_total = 0, g_done = 0;
    (void)global_tasks;

    for (size_t i = 0; i < in->n_tasks; i++) {
        const Swarmc__Task *t = in->tasks[i];
        if ((int)t->desired_state > want_desired) {
            continue; /* being shut down: not part of the target */
        }
        if (in->spec_version != 0 && t->spec_version < in->spec_version) {
            continue;
        }
        if (global) {
            /* first time we see this node? */
            bool seen = false;
            for (size_t k = 0; k < i; k++) {
                const Swarmc__Task *o = in->tasks[k];
                if ((int)o->desired_state <= want_desired &&
                    (in->spec_version == 0 || o->spec_version >= in->spec_version) &&
                    strcmp(o->node_id, t->node_id) == 0) {
                    seen = true;
                    break;
                }
            }
            if (!seen) {
                g_total++;
                /* the best task of this node */
                const Swarmc__Task *best = NULL;
                for (size_t k = i; k < in->n_tasks; k++) {
                    const Swarmc__Task *o = in->tasks[k];
                    if ((int)o->desired_state <= want_desired &&
                        (in->spec_version == 0 || o->spec_version >= in->spec_version) &&
                        strcmp(o->node_id, t->node_id) == 0 && better(o, best)) {
                        best = o;
                    }
                }
                if (best->status && (int)best->status->state == goal) {
                    g_done++;
                }
                if (n_g < SWC_PROGRESS_MAX_SLOTS) {
                    gsel[n_g++] = best;
                }
            }
            continue;
        }
        if (t->slot >= 1 && t->slot <= n_slots && t->slot <= SWC_PROGRESS_MAX_SLOTS &&
            better(t, slot_task[t->slot])) {
            slot_task[t->slot] = t;
        } else if (t->slot >= 1 && t->slot <= n_slots && t->slot > SWC_PROGRESS_MAX_SLOTS &&
                   t->status && (int)t->status->state == goal) {
            out->done++; /* counted without a line */
        }
    }
    if (global) {
        out->total = g_total;
        out->done = g_done;
    } else {
        for (size_t k = 1; k <= n_slots && k <= SWC_PROGRESS_MAX_SLOTS; k++) {
            if (slot_task[k] && slot_task[k]->status && (int)slot_task[k]->status->state == goal) {
                out->done++;
            }
        }
    }

    snprintf(out->lines[out->n++], SWC_PROGRESS_LINE, "overall progress: %u out of %u tasks",
             out->done, out->total);
    size_t shown = global ? n_g : (n_slots <= SWC_PROGRESS_MAX_SLOTS ? n_slots : 0);
    for (size_t k = 0; k < shown; k++) {
        const Swarmc__Task *t = global ? gsel[k] : slot_task[k + 1];
        char label[64], b[SWC_PROGRESS_BAR + 4];
        int state = t && t->status ? (int)t->status->state : 0;
        if (global) {
            snprintf(label, sizeof label, "%.12s", t->node_id[0] ? t->node_id : t->id);
        } else {
            snprintf(label, sizeof label, "%zu/%zu", k + 1, n_slots);
        }
        if (t && t->status && t->status->err[0] != '\0') {
            snprintf(out->lines[out->n++], SWC_PROGRESS_LINE, "%s: %s", label, t->status->err);
            if (state > SWARMC__TASK_STATE__TASK_STATE_COMPLETE) {
                out->failed = true;
            }
        } else if (t && state == SWARMC__TASK_STATE__TASK_STATE_PENDING &&
                   t->status->message[0] != '\0') {
            snprintf(out->lines[out->n++], SWC_PROGRESS_LINE, "%s: %s", label, t->status->message);
        } else if (job && state == SWARMC__TASK_STATE__TASK_STATE_COMPLETE) {
            bar(7, b);
            snprintf(out->lines[out->n++], SWC_PROGRESS_LINE, "%s: %-9s %s", label, "complete", b);
        } else {
            int st = t ? stage(state) : 0;
            bar(st, b);
            snprintf(out->lines[out->n++], SWC_PROGRESS_LINE, "%s: %-9s %s", label,
                     t ? swc_out_task_state_lc(state) : "new", b);
            if (t && state > SWARMC__TASK_STATE__TASK_STATE_COMPLETE) {
                out->failed = true;
            }
        }
    }
    out->converged = out->done == out->total && (out->total > 0 || !global);
    if (in->verify == SWC_VERIFY_WAITING) {
        long long left = (in->verify_left_ns + 999999999LL) / 1000000000LL;
        snprintf(out->lines[out->n++], SWC_PROGRESS_LINE,
                 "verify: Waiting %lld second%s to verify that tasks are stable...", left,
                 left == 1 ? "" : "s");
    } else if (in->verify == SWC_VERIFY_DONE) {
        snprintf(out->lines[out->n++], SWC_PROGRESS_LINE, "verify: Service converged");
    }
}

size_t swc_progress_draw(const struct swc_progress_out *prev, const struct swc_progress_out *cur,
                         bool tty, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        int n_ = snprintf(buf + off, len - off, __VA_ARGS__);                                      \
        if (n_ < 0 || (size_t)n_ >= len - off) {                                                   \
            buf[off] = '\0'; /* drop the partial line */                                           \
            return off;                                                                            \
        }                                                                                          \
        off += (size_t)n_;                                                                         \
    } while (0)
    if (tty) {
        if (prev != NULL && prev->n > 0) {
            EMIT("\033[%zuA", prev->n);
        }
        for (size_t i = 0; i < cur->n; i++) {
            EMIT("\033[2K%s\n", cur->lines[i]);
        }
        /* a shorter block leaves old lines below: clear them */
        for (size_t i = cur->n; prev != NULL && i < prev->n; i++) {
            EMIT("\033[2K\n");
        }
        if (prev != NULL && prev->n > cur->n) {
            EMIT("\033[%zuA", prev->n - cur->n);
        }
        return off;
    }
    for (size_t i = 0; i < cur->n; i++) {
        if (prev == NULL || i >= prev->n || strcmp(prev->lines[i], cur->lines[i]) != 0) {
            EMIT("%s\n", cur->lines[i]);
        }
    }
#undef EMIT
    return off;
}
