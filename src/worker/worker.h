/* The worker: owns the task DB, one runner per assigned task and an executor.
 * The agent (the session with a manager) feeds it decoded assignment
 * messages and forwards the status changes it reports. On start it resumes
 * every task found in the DB, adopts the containers that carry this node's
 * label and belong to known tasks (no duplicate is created) and removes the
 * containers of tasks that are no longer known. */
#ifndef SWC_WORKER_WORKER_H
#define SWC_WORKER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "api/dispatcher.pb-c.h"
#include "api/types.pb-c.h"
#include "base/err.h"
#include "worker/executor.h"

struct swc_worker;

/* A status change, already durable in the task DB; status valid during the call. */
typedef void (*swc_worker_status_cb)(void *data, const char *task_id,
                                     const Swarmc__TaskStatus *status);

struct swc_worker_config {
    uv_loop_t *loop;
    /* worker.db lives here (created if missing); NULL = no task DB, tasks
     * are kept in memory only (simulated fleet nodes). */
    const char *state_dir;
    const char *node_id;
    struct swc_exec *exec; /* borrowed: the caller closes it after the worker */
    swc_worker_status_cb status_cb;
    void *data;
};

/* Create the worker and open its task DB (if any); 0 or SWC_E* (message in err). */
int swc_worker_init(struct swc_worker **out, const struct swc_worker_config *cfg,
                    struct swc_err *err);

/* Resume from the DB: list our containers, adopt those of known tasks,
 * remove the others, restart every runner. done_cb (may be NULL) runs once
 * when the adoption pass has finished (code 0 or the listing error). */
int swc_worker_start(struct swc_worker *w, void (*done_cb)(void *data, int code), void *data);

/* Apply an assignments message (complete set or incremental changes).
 * Task messages only; secrets/configs are ignored here. 0 or SWC_E*. */
int swc_worker_assign(struct swc_worker *w, const Swarmc__AssignmentsMessage *msg);

/* Number of runners (tasks currently assigned). */
size_t swc_worker_ntasks(const struct swc_worker *w);

/* Number of tasks whose last observed state is running. */
size_t swc_worker_nrunning(const struct swc_worker *w);

/* The last observed state of task_id, or -1 when unknown. */
int swc_worker_task_state(const struct swc_worker *w, const char *task_id);

/* The current status of task_id (NULL when unknown); valid until the next loop turn. */
const Swarmc__TaskStatus *swc_worker_task_status(const struct swc_worker *w, const char *task_id);

/* Fetch the logs of task_id's container (see swc_exec_ops.logs): 0, or
 * SWC_ENOENT when the task is unknown or has no container (no callback). */
int swc_worker_logs(struct swc_worker *w, const char *task_id, int tail, swc_exec_log_cb log_cb,
                    swc_exec_cb done_cb, void *data);

/* Describe the node through the executor (see swc_exec_ops.describe). */
int swc_worker_describe(struct swc_worker *w, swc_exec_describe_cb cb, void *data);

/* Stop: destroy runners (containers keep running for the next start), close
 * the DB, then close_cb once; the worker is freed after close_cb returns. */
void swc_worker_close(struct swc_worker *w, void (*close_cb)(void *data), void *data);

#endif
