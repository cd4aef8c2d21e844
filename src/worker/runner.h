/* The task runner: one state machine per task that moves one step at a time
 * from the task's observed state toward its desired state.
 *
 * The decision is a pure function, swc_runner_step(): given the desired state,
 * the observed state, what the runner knows (container created? health check
 * configured? operation in flight?) and the last executor event, it returns
 * the next observed state and the executor action to issue. Allowed moves are
 * a swc_sm table over task states (which only move forward):
 *
 *   ASSIGNED -> ACCEPTED -> PREPARING -> READY -> STARTING -> RUNNING
 *            -> COMPLETE | FAILED | SHUTDOWN,
 *   REJECTED from any state before STARTING (prepare failed, container gone),
 *   FAILED (exit code + message) from STARTING or RUNNING.
 *
 * With a health check the task is RUNNING only once healthy; unhealthy fails
 * it. Desired SHUTDOWN/REMOVE stops the container then removes it. The
 * loop-facing part (struct swc_runner) applies those decisions with an
 * executor, writes each new status to the task DB and only then reports it. */
#ifndef SWC_WORKER_RUNNER_H
#define SWC_WORKER_RUNNER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "api/types.pb-c.h"
#include "base/sm.h"
#include "worker/executor.h"

struct swc_taskdb;

/* ---------------------------------------------------------------- pure step */

/* What the runner learned since the last step (result of its own operation
 * or an asynchronous lifecycle event). */
enum swc_runner_ev {
    SWC_RUNNER_EV_NONE = 0,
    SWC_RUNNER_EV_PREPARED,     /* prepare succeeded */
    SWC_RUNNER_EV_PREPARE_FAIL, /* prepare failed (message) */
    SWC_RUNNER_EV_STARTED,      /* start succeeded */
    SWC_RUNNER_EV_START_FAIL,   /* start failed (message) */
    SWC_RUNNER_EV_EXIT,         /* process exited (exit_code, oom) */
    SWC_RUNNER_EV_HEALTHY,
    SWC_RUNNER_EV_UNHEALTHY,
    SWC_RUNNER_EV_GONE,      /* container removed behind our back */
    SWC_RUNNER_EV_STOPPED,   /* our shutdown/terminate finished */
    SWC_RUNNER_EV_STOP_FAIL, /* our shutdown failed (message) */
    SWC_RUNNER_EV_REMOVED,   /* our remove finished (or failed: give up) */
};

/* Executor operations the step may ask for. */
enum swc_runner_action {
    SWC_RUNNER_ACT_NONE = 0, /* wait for the next event */
    SWC_RUNNER_ACT_PREPARE,
    SWC_RUNNER_ACT_START,
    SWC_RUNNER_ACT_SHUTDOWN, /* stop with the task's signal and grace */
    SWC_RUNNER_ACT_REMOVE,
};

struct swc_runner_input {
    int desired;          /* Swarmc__TaskState */
    int observed;         /* Swarmc__TaskState */
    bool has_container;   /* a container exists for the task (not yet removed) */
    bool has_healthcheck; /* the spec has a health check (not ["NONE"]) */
    bool started;         /* the container was started (start succeeded or seen running) */
    bool stopping;        /* we already asked the container to stop */
    bool remove;          /* the task is no longer assigned: clean up everything */
    enum swc_runner_ev ev;
    int exit_code;      /* EXIT */
    bool oom;           /* EXIT: OOM-killed (or an OOM event preceded it) */
    const char *ev_msg; /* *_FAIL: what failed */
};

struct swc_runner_decision {
    int next;                      /* observed state after the step (== observed: unchanged) */
    enum swc_runner_action action; /* executor operation to issue */
    bool drop_container;           /* the container no longer exists */
    int exit_code;                 /* with next FAILED/COMPLETE */
    char msg[256];                 /* status message / err for the new state */
    bool is_err;                   /* msg is an error (goes to status.err too) */
};

/* Decide the next step. Returns 0, or SWC_ESTATE when the input asks for a
 * move the transition table refuses (out is then "no change, no action"). */
int swc_runner_step(const struct swc_runner_input *in, struct swc_runner_decision *out);

/* True when the transition table allows observed state from -> to. */
bool swc_runner_allowed(int from, int to);

/* True for COMPLETE, SHUTDOWN, FAILED, REJECTED and beyond. */
bool swc_runner_terminal(int state);

/* The state's short name ("RUNNING"). */
const char *swc_runner_state_name(int state);

/* ---------------------------------------------------------------- runner object */

struct swc_runner;

/* Called after each status change has been written to the task DB. status is
 * valid only during the call. */
typedef void (*swc_runner_status_cb)(struct swc_runner *r, const char *task_id,
                                     const Swarmc__TaskStatus *status, void *data);

struct swc_runner_config {
    uv_loop_t *loop;
    struct swc_exec *exec;
    struct swc_taskdb *db; /* may be NULL (tests): statuses are then only reported */
    swc_runner_status_cb status_cb;
    void *data;
};

/* Create a runner for task (copied) whose last observed status is status (NULL
 * = the task's own status). container_id, when non-NULL, is the container the
 * runner adopts. Returns NULL on out-of-memory. Does nothing until
 * swc_runner_kick(). */
struct swc_runner *swc_runner_create(const struct swc_runner_config *cfg, const Swarmc__Task *task,
                                     const char *container_id);

/* Take a newer version of the task (desired state, spec version); copied. */
int swc_runner_update(struct swc_runner *r, const Swarmc__Task *task);

/* Step as far as possible now (issue the next executor operation if any). */
void swc_runner_kick(struct swc_runner *r);

/* Tell a resumed runner what its adopted container looks like now (from the
 * executor's list or inspect): an exit or health status seen while we were
 * away is fed as the matching event; NULL means the container is gone. */
void swc_runner_adopt(struct swc_runner *r, const struct swc_exec_cstate *st);

/* After the executor lost events for a while (SWC_EXEC_EV_RESYNC): what the
 * container looks like now (NULL = it is gone). A container still running
 * is kept; one that exited or vanished ends the task (FAILED, or COMPLETE for
 * exit code 0) with why appended to the message ("container stopped while
 * the Docker engine was unreachable ..."). Runners without a container or
 * already finished ignore it. */
void swc_runner_resync(struct swc_runner *r, const struct swc_exec_cstate *st, const char *why);

/* Feed an executor lifecycle event for this task's container. */
void swc_runner_event(struct swc_runner *r, const struct swc_exec_event *ev);

/* The task is no longer assigned: stop and remove its container, then
 * done_cb(r, data) once; the runner is destroyed right after done_cb returns. */
void swc_runner_remove(struct swc_runner *r, void (*done_cb)(struct swc_runner *r, void *data),
                       void *data);

/* Destroy without touching the container (worker shutdown); an operation in
 * flight completes into the void. */
void swc_runner_destroy(struct swc_runner *r);

/* Accessors. */
const char *swc_runner_task_id(const struct swc_runner *r);
const char *swc_runner_container_id(const struct swc_runner *r);
int swc_runner_observed(const struct swc_runner *r);
const Swarmc__Task *swc_runner_task(const struct swc_runner *r);

#endif
