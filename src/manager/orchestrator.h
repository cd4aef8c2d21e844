/* Orchestrators: decide how many and which tasks exist (pure).
 *
 * Each reconcile function takes one service (its mode, spec version, restart
 * policy) and the service's current tasks as compact structs, plus "now", and
 * appends actions: create a task (for a slot or a node), or move a task's
 * desired state to SHUTDOWN or REMOVE. The loop-facing code turns actions into
 * store writes and calls again after the next commit or at *next_wakeup.
 *
 * Replicated services. A slot is live when it has a runnable task (desired and
 * observed state both <= RUNNING) or its newest task ended while desired
 * RUNNING and the restart policy restarts it (the ended task then gets
 * desired SHUTDOWN and a new task is created). A slot whose newest task ended
 * and will not be restarted (condition none, attempts used up) is finished: it
 * still counts toward the replica count, so the service is not refilled behind
 * the operator's back, and its task stays desired RUNNING (restart decisions
 * depend on task end times only, so re-deciding gives the same answer). A slot
 * whose newest task was shut down on purpose (desired SHUTDOWN: lost node,
 * update) with no replacement is free again, and slots whose tasks all have
 * desired REMOVE were scaled away: both count for nothing.
 *   Scale up creates slots in the lowest free slot numbers. Scale down keeps
 * the slot numbers it does not pick rather than renumbering, and picks like
 * SwarmKit: finished slots first, then slots whose task is not yet RUNNING,
 * then tasks on the node holding the most copies of the service (recounted
 * after every pick), then the highest slot. Picked slots get desired REMOVE.
 *   A restart that is due later is not created early; its time is reported in
 * *next_wakeup.
 *
 * Global services. One task per eligible node: a node is eligible for a new
 * task when it is ready, active and matches constraints and platforms. An
 * existing task stays while its node exists, is not drained and still
 * matches; otherwise it gets desired REMOVE, so a node that comes back later
 * gets a fresh task. A down or paused node keeps its task, and a task lost on
 * it is replaced only once the node can take a new one. A task in state
 * ORPHANED counts as lost (restarted at once, not an attempt).
 *
 * Jobs. A replicated job runs total_completions tasks to COMPLETE in slots
 * 1..total, at most max_concurrent at once; a global job runs once on every
 * eligible node. Tasks carry the service's job iteration: bumping it (the
 * control API does on every spec update or forced re-run) makes the previous
 * iteration's runnable tasks shut down and starts a fresh run. Failed job
 * tasks restart per the restart policy (default on-failure for jobs). */
#ifndef SWC_MANAGER_ORCHESTRATOR_H
#define SWC_MANAGER_ORCHESTRATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manager/constraint.h"
#include "manager/restart.h"
#include "manager/scheduler.h"

/* A task as the orchestrators see it (strings borrowed). */
struct swc_orch_task {
    const char *id;
    uint64_t slot;       /* 0 for global services */
    const char *node_id; /* "" or NULL when unassigned */
    int desired_state;   /* SWARMC__TASK_STATE__* */
    int state;           /* observed */
    uint64_t spec_version;
    uint64_t job_iteration;
    int64_t created_at;
    int64_t status_ts;            /* time of the last status change (end time once dead) */
    int64_t running_at;           /* when it was first seen RUNNING, 0 if unknown */
    const Swarmc__TaskSpec *spec; /* (update only) the task's spec, or NULL */
    bool dirty;                   /* (update only) force the task to count as out of date */
};

/* A node as the global orchestrators see it. */
struct swc_orch_node {
    const struct swc_node_attrs *attrs;
    bool ready;
    int availability; /* SWARMC__NODE_AVAILABILITY__* */
};

enum swc_orch_action_kind {
    SWC_ORCH_CREATE,   /* new task for slot (or node_id), spec_version, job_iteration */
    SWC_ORCH_SHUTDOWN, /* set desired state SHUTDOWN on task_id */
    SWC_ORCH_REMOVE,   /* set desired state REMOVE on task_id */
};

/* One decision. Strings are borrowed from the inputs. */
struct swc_orch_action {
    enum swc_orch_action_kind kind;
    const char *task_id;
    uint64_t slot;
    const char *node_id;
    uint64_t spec_version;
    uint64_t job_iteration;
};

/* A growable list of actions (owned; swc_orch_actions_clear). */
struct swc_orch_actions {
    struct swc_orch_action *items;
    size_t n, cap;
};

/* What the orchestrators need of a service. */
struct swc_orch_service {
    const char *id;
    int mode;                                   /* SWARMC__SERVICE_SPEC__MODE_* */
    uint64_t replicas;                          /* replicated */
    uint64_t max_concurrent, total_completions; /* replicated job */
    uint64_t spec_version;
    uint64_t job_iteration;
    struct swc_restart_policy restart;
    const struct swc_constraint_set *constraints; /* global: may be NULL */
    const struct swc_sched_platform *platforms;
    size_t n_platforms;
};

/* Append an action; SWC_ENOMEM on failure. */
int swc_orch_actions_push(struct swc_orch_actions *a, const struct swc_orch_action *act);

/* Free the list. */
void swc_orch_actions_clear(struct swc_orch_actions *a);

/* True when a task is runnable: desired and observed state both <= RUNNING. */
bool swc_orch_task_runnable(const struct swc_orch_task *t);

/* Reconcile a replicated service. *next_wakeup is lowered to the earliest
 * time a delayed restart becomes due (left alone when none). */
int swc_orch_replicated(const struct swc_orch_service *svc, const struct swc_orch_task *tasks,
                        size_t n, int64_t now, struct swc_orch_actions *out, int64_t *next_wakeup);

/* Reconcile a global service against the cluster's nodes. */
int swc_orch_global(const struct swc_orch_service *svc, const struct swc_orch_task *tasks, size_t n,
                    const struct swc_orch_node *nodes, size_t n_nodes, int64_t now,
                    struct swc_orch_actions *out, int64_t *next_wakeup);

/* Reconcile a replicated job. */
int swc_orch_replicated_job(const struct swc_orch_service *svc, const struct swc_orch_task *tasks,
                            size_t n, int64_t now, struct swc_orch_actions *out,
                            int64_t *next_wakeup);

/* Reconcile a global job. */
int swc_orch_global_job(const struct swc_orch_service *svc, const struct swc_orch_task *tasks,
                        size_t n, const struct swc_orch_node *nodes, size_t n_nodes, int64_t now,
                        struct swc_orch_actions *out, int64_t *next_wakeup);

/* True when node can take a new task of svc (ready, active, constraints and
 * platforms match). */
bool swc_orch_node_eligible(const struct swc_orch_service *svc, const struct swc_orch_node *node);

/* Fill svc from a protobuf service (borrowed strings; constraints parsed into
 * cons, platforms allocated into *platforms: free with swc_free). */
int swc_orch_service_from_pb(const Swarmc__Service *s, struct swc_orch_service *svc,
                             struct swc_constraint_set *cons, struct swc_sched_platform **platforms,
                             struct swc_err *err);

/* Fill t from a protobuf task (borrowed strings). */
void swc_orch_task_from_pb(const Swarmc__Task *pb, struct swc_orch_task *t);

#endif
