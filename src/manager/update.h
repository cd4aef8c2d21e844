/* The rolling update supervisor as a pure step function.
 *
 * A task is dirty when it was made from another spec version and its spec
 * differs from the service's task template (input task_template; each
 * version is compared once), so a scale or a label change, which also bumps
 * the version, does not restart tasks. Without a template every task of
 * another version is dirty; swc_orch_task.dirty forces it. A slot is dirty
 * when it has a runnable dirty task and no runnable clean one. An update
 * starts when the service's spec version changes (with nothing dirty it
 * completes at once, so a status the control API set to UPDATING settles);
 * tasks created since it started are its "new" tasks.
 * The loop-facing code keeps one struct swc_update_state per service being
 * updated and calls swc_update_step after every relevant commit and at the
 * wake-up time it returns. Each step looks at the tasks (and "now") and:
 *
 *  - starts a new batch of up to `parallelism` dirty slots (0 = all) when no
 *    slot of the previous batch is still in flight and `delay` has passed since
 *    that batch finished. stop-first: the old task gets desired SHUTDOWN and a
 *    new task is created for the slot in the same step. start-first: the new
 *    task is created first, and the old one is shut down once the new one is
 *    RUNNING. A slot is in flight until its new task is RUNNING (or ended).
 *  - counts failures: a task at the new version that ended in FAILED or
 *    REJECTED, or ended while still desired RUNNING, before it had been running
 *    for `monitor`. When failures / updated slots > max_failure_ratio the
 *    failure action applies: pause (state PAUSED, message naming the task),
 *    continue, or rollback (state ROLLBACK_STARTED and out->rollback set: the
 *    caller must then swap the service back to its previous spec, which bumps
 *    the spec version; the next steps roll back with the rollback config).
 *  - completes (COMPLETED / ROLLBACK_COMPLETED) when nothing is dirty or in
 *    flight and every new task has been running for `monitor`.
 *
 * Everything but the delay gate is recomputed from the tasks, so a new leader
 * resumes an update where the tasks left it: it seeds the state from the
 * service's UpdateStatus (state, started_at) and target_version = the
 * service's spec version. Failures are tasks in FAILED or REJECTED; a dead task
 * whose running_at is unknown counts when it ended after the update began. */
#ifndef SWC_MANAGER_UPDATE_H
#define SWC_MANAGER_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/types.pb-c.h"
#include "manager/orchestrator.h"

#define SWC_UPDATE_DEFAULT_MONITOR (5 * 1000000000LL)

/* An update (or rollback) config with defaults applied. */
struct swc_update_config {
    uint64_t parallelism; /* 0 = all at once */
    int64_t delay_ns;
    int failure_action; /* SWARMC__UPDATE_FAILURE_ACTION__* */
    int64_t monitor_ns;
    float max_failure_ratio;
    int order; /* SWARMC__UPDATE_ORDER__* */
};

/* Per-service supervisor state, kept by the caller between steps. Zero it to
 * start; state and message map onto the service's UpdateStatus. */
struct swc_update_state {
    int state; /* SWARMC__UPDATE_STATE__*; UNKNOWN = no update seen yet */
    uint64_t target_version;
    int64_t started_at, completed_at;
    int64_t batch_done_at; /* when the last batch finished; 0 = none yet */
    bool batch_open;       /* a batch has slots in flight */
    char message[256];
};

/* Inputs of one step. */
struct swc_update_input {
    uint64_t spec_version; /* the service's current version (the target) */
    bool global;           /* tasks are keyed by node_id instead of slot */
    bool rollback;         /* the current spec is a rollback: use rollback config */
    struct swc_update_config update, rollback_config;
    const Swarmc__TaskSpec *task_template; /* the service's spec.task (borrowed) */
    const struct swc_orch_task *tasks;
    size_t n_tasks;
    int64_t now;
};

/* Outputs of one step (actions owned; swc_update_output_clear). */
struct swc_update_output {
    struct swc_orch_actions actions;
    bool status_changed; /* state/message changed: write UpdateStatus */
    bool rollback;       /* caller must roll the service back to previous spec */
    int64_t next_wakeup; /* 0 = only on the next commit */
};

/* Fill a config from protobuf (NULL = defaults: parallelism 1, delay 0, pause,
 * monitor 5 s, ratio 0, stop-first; monitor 0 also means 5 s). */
void swc_update_config_from_pb(const Swarmc__UpdateConfig *pb, struct swc_update_config *out);

/* True when two task specs encode to the same bytes (false on allocation
 * failure, which only makes a task look dirty). */
bool swc_update_spec_equal(const Swarmc__TaskSpec *a, const Swarmc__TaskSpec *b);

/* Advance the update of one service; see the file comment. Returns 0 or
 * SWC_ENOMEM. */
int swc_update_step(struct swc_update_state *st, const struct swc_update_input *in,
                    struct swc_update_output *out);

/* Free the actions of out and reset it. */
void swc_update_output_clear(struct swc_update_output *out);

#endif
