/* The restart policy as a pure decision (see restart.h).
 *
 * Attempts are counted over the slot's earlier tasks that ended within the
 * window before this one ended, plus this one; more attempts than
 * max_attempts means no restart. The delay runs from the end of the task, so
 * the result is the same whenever the question is asked. */
#include "manager/restart.h"

void swc_restart_policy_from_pb(const Swarmc__RestartPolicy *pb, struct swc_restart_policy *out)
{
    out->condition = SWARMC__RESTART_CONDITION__RESTART_CONDITION_ANY;
    out->delay_ns = SWC_RESTART_DEFAULT_DELAY;
    out->max_attempts = 0;
    out->window_ns = 0;
    if (pb == NULL)
        return;
    out->condition = pb->condition;
    if (pb->delay_set || pb->delay_ns != 0)
        out->delay_ns = pb->delay_ns < 0 ? 0 : pb->delay_ns;
    out->max_attempts = pb->max_attempts;
    out->window_ns = pb->window_ns < 0 ? 0 : pb->window_ns;
}

struct swc_restart_decision swc_restart_decide(const struct swc_restart_policy *p, int state,
                                               bool lost, int64_t ended_at, const int64_t *history,
                                               size_t n_history, int64_t now)
{
    struct swc_restart_decision d = {SWC_RESTART_NO, 0};
    if (p->condition == SWARMC__RESTART_CONDITION__RESTART_CONDITION_NONE)
        return d;
    if (lost) {
        d.verdict = SWC_RESTART_NOW;
        d.at = now;
        return d;
    }
    if (p->condition == SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE &&
        state == SWARMC__TASK_STATE__TASK_STATE_COMPLETE)
        return d;
    if (p->max_attempts > 0) {
        uint64_t attempts = 1;
        for (size_t i = 0; i < n_history; i++) {
            if (history[i] > ended_at)
                continue; /* a later task: not part of this one's past */
            if (p->window_ns == 0 || history[i] >= ended_at - p->window_ns)
                attempts++;
        }
        if (attempts > p->max_attempts)
            return d;
    }
    d.at = ended_at + p->delay_ns;
    d.verdict = d.at <= now ? SWC_RESTART_NOW : SWC_RESTART_AT;
    return d;
}
