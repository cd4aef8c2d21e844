/* The agent: a worker's session with the managers (DESIGN §8).
 *
 * It keeps one session with one manager at a time: it opens the
 * "dispatcher.Session" stream with the node description, follows "not the
 * leader, try X", heartbeats at the period the manager gives, reads the
 * "dispatcher.Assignments" stream (a complete set, then numbered incremental
 * changes; a gap makes it reopen the stream and get a complete set) and
 * hands each message to the worker. Status changes the worker reports are
 * coalesced per task and sent in batches ("dispatcher.UpdateTaskStatus")
 * until acknowledged. When the connection fails it reconnects with
 * exponential backoff and jitter, moving through the known managers; the
 * list of managers is persisted in <state_dir>/managers.
 *
 * Failover: when a live session is lost, the agent waits a random 0.125-1 s
 * and goes to a random other manager, so a fleet neither lands on one
 * survivor nor in one loop turn. A manager that parked the session through
 * an election and then won it answers "try <itself>": the session is opened
 * again on the same connection (no second handshake, at most 3 times). A
 * redirect to another manager is followed after a random 60-500 ms. */
#ifndef SWC_WORKER_AGENT_H
#define SWC_WORKER_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "api/types.pb-c.h"
#include "base/err.h"
#include "net/secchan.h"
#include "worker/worker.h"

struct swc_agent;

struct swc_agent_config {
    uv_loop_t *loop;
    struct swc_worker *worker;   /* borrowed */
    const char *state_dir;       /* where "managers" is kept; NULL = not persisted */
    const char *const *managers; /* initial manager addresses "host:port" */
    size_t nmanagers;
    /* Secure channel to the managers (copied); NULL = plain TCP (tests only:
     * then node_id identifies the node). */
    const struct swc_secchan_config *secure;
    const char *node_id;
    const char *addr;                    /* our advertised address, informative */
    const Swarmc__NodeDescription *desc; /* copied */
    unsigned status_batch_ms;            /* 0 = 100 */
};

/* Create the agent (nothing runs until start); 0 or SWC_E* with err set. */
int swc_agent_init(struct swc_agent **out, const struct swc_agent_config *cfg, struct swc_err *err);

/* Start connecting. */
int swc_agent_start(struct swc_agent *a);

/* Queue a task status for the managers (the latest per task wins until sent).
 * Called by the owner from the worker's status callback. 0 or SWC_ENOMEM. */
int swc_agent_report(struct swc_agent *a, const char *task_id, const Swarmc__TaskStatus *status);

/* True while a session is established. */
bool swc_agent_connected(const struct swc_agent *a);

/* Number of statuses not yet acknowledged by a manager. */
size_t swc_agent_pending(const struct swc_agent *a);

/* The manager address of the current (or last) session. */
const char *swc_agent_manager(const struct swc_agent *a);

/* Stop: close the connection and timers, then cb(data); a is freed. */
void swc_agent_close(struct swc_agent *a, void (*cb)(void *data), void *data);

#endif
