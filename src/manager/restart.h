/* The restart policy as a pure decision.
 *
 * When a task of a slot (or of a node, for global services) has ended while
 * its desired state was still RUNNING, the orchestrator asks: restart it, and
 * when? The answer depends on the policy (condition any / on-failure / none,
 * delay, max attempts within a window) and on the slot's history: the end
 * times of the earlier tasks of the slot. Attempts are counted from that
 * history relative to the end of this task (not to "now"), so asking again
 * later gives the same answer and a loop can re-run reconciliation freely.
 *
 * A task lost with its node (node down or removed) is always restarted at
 * once unless the condition is none, and does not count as an attempt. */
#ifndef SWC_MANAGER_RESTART_H
#define SWC_MANAGER_RESTART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/types.pb-c.h"

#define SWC_RESTART_DEFAULT_DELAY (5 * 1000000000LL)

/* A restart policy with defaults applied. */
struct swc_restart_policy {
    int condition; /* SWARMC__RESTART_CONDITION__* */
    int64_t delay_ns;
    uint64_t max_attempts; /* 0 = unlimited */
    int64_t window_ns;     /* 0 = unbounded */
};

enum swc_restart_verdict {
    SWC_RESTART_NO,
    SWC_RESTART_NOW,
    SWC_RESTART_AT,
};

struct swc_restart_decision {
    enum swc_restart_verdict verdict;
    int64_t at; /* for SWC_RESTART_AT (and NOW: when it became due) */
};

/* Fill a policy from a protobuf one (NULL = all defaults: any, 5 s delay,
 * unlimited; a zero delay without delay_set also means 5 s). */
void swc_restart_policy_from_pb(const Swarmc__RestartPolicy *pb, struct swc_restart_policy *out);

/* Decide about a task that ended in state (a SWARMC__TASK_STATE__* > RUNNING)
 * at ended_at. lost: its node went down or away. history: end times of the
 * slot's earlier tasks (any order). */
struct swc_restart_decision swc_restart_decide(const struct swc_restart_policy *p, int state,
                                               bool lost, int64_t ended_at, const int64_t *history,
                                               size_t n_history, int64_t now);

#endif
