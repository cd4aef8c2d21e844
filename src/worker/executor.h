/* The executor interface: how the worker runs a task's container.
 *
 * An executor is a vtable plus its own state. The runner (runner.h) and the
 * worker (worker.h) use only this interface, so the Docker Engine API lives
 * entirely in docker*.c and the simulated executor (sim.c) can stand in for it
 * in benchmarks and fleet tests.
 *
 * Every operation is asynchronous in libuv style: it either returns 0 and calls
 * its callback exactly once later (never from inside the call), or returns a
 * non-zero SWC_E* code and never calls it. A failed operation reports a code
 * and a message naming the operation and what the engine said
 * ("docker: create container web.1.x: HTTP 404: No such image: nope:1").
 *
 * Containers are identified by the executor's container id string. Lifecycle
 * events (exit, OOM, health, container gone) are not per-operation results:
 * each executor delivers them to one sink set in its config, tagged with the
 * task id (Docker: the swarmc.task.id label) so the worker can route them to
 * the task's runner. */
#ifndef SWC_WORKER_EXECUTOR_H
#define SWC_WORKER_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/types.pb-c.h"

struct swc_exec;

/* Labels every container we create carries. */
#define SWC_LABEL_TASK_ID      "swarmc.task.id"
#define SWC_LABEL_SERVICE_ID   "swarmc.service.id"
#define SWC_LABEL_SERVICE_NAME "swarmc.service.name"
#define SWC_LABEL_NODE_ID      "swarmc.node.id"

/* Asynchronous lifecycle events. */
enum swc_exec_event_type {
    SWC_EXEC_EV_NONE = 0,
    SWC_EXEC_EV_EXIT,      /* the container's process exited (exit_code, oom) */
    SWC_EXEC_EV_OOM,       /* the kernel OOM-killed a process of the container */
    SWC_EXEC_EV_HEALTHY,   /* health check passed */
    SWC_EXEC_EV_UNHEALTHY, /* health check failed its retries */
    SWC_EXEC_EV_GONE,      /* the container was removed (not by us) */
    SWC_EXEC_EV_RESYNC,    /* events may have been lost (the engine was unreachable and is
                              back): no task_id; message says why. List the containers
                              and compare them with the tasks. */
};

/* One lifecycle event; strings are valid only during the callback. */
struct swc_exec_event {
    enum swc_exec_event_type type;
    const char *task_id;      /* the task the container belongs to */
    const char *container_id; /* the executor's container id */
    int exit_code;            /* EXIT */
    bool oom_killed;          /* EXIT: the exit was an OOM kill */
    const char *message;      /* optional detail (e.g. the failing probe's output) */
};

/* Sink for lifecycle events (one per executor). */
typedef void (*swc_exec_event_cb)(void *data, const struct swc_exec_event *ev);

/* Result of an operation: code 0 or SWC_E*, errmsg NULL on success.
 * container_id is set by prepare (and echoed by the others); all strings
 * are valid only during the callback. */
typedef void (*swc_exec_cb)(void *data, int code, const char *errmsg, const char *container_id);

/* What inspect reports about a container. */
enum swc_exec_health {
    SWC_EXEC_HEALTH_NONE = 0, /* no health check */
    SWC_EXEC_HEALTH_STARTING,
    SWC_EXEC_HEALTH_HEALTHY,
    SWC_EXEC_HEALTH_UNHEALTHY,
};

struct swc_exec_cstate {
    const char *container_id;
    const char *task_id; /* from the swarmc.task.id label ("" when absent) */
    bool running;        /* process alive */
    bool exited;         /* was started and has exited */
    int exit_code;
    bool oom_killed;
    enum swc_exec_health health;
};

/* Inspect result: code SWC_ENOENT when the container does not exist. */
typedef void (*swc_exec_inspect_cb)(void *data, int code, const char *errmsg,
                                    const struct swc_exec_cstate *st);

/* List result: the containers carrying this node's label (n entries). */
typedef void (*swc_exec_list_cb)(void *data, int code, const char *errmsg,
                                 const struct swc_exec_cstate *list, size_t n);

/* Describe result: desc is owned by the callee (valid during the callback;
 * copy what you keep). */
typedef void (*swc_exec_describe_cb)(void *data, int code, const char *errmsg,
                                     const Swarmc__NodeDescription *desc);

/* Log output: stream 1 = stdout, 2 = stderr. Called zero or more times, then
 * the matching swc_exec_cb once with the final result. It may run inside the
 * executor's I/O code: it must only copy the bytes (start other operations or
 * close the executor from done_cb instead). */
typedef void (*swc_exec_log_cb)(void *data, int stream, const char *buf, size_t len);

/* The vtable; every pointer is required. */
struct swc_exec_ops {
    const char *name; /* "docker", "sim" */
    /* Describe the node (hostname, platform, resources, engine). */
    int (*describe)(struct swc_exec *ex, swc_exec_describe_cb cb, void *data);
    /* Make the task's container exist (image present or pulled, container
     * created, not started); reports the container id. A container that
     * already exists for this task (same name) is reused. */
    int (*prepare)(struct swc_exec *ex, const Swarmc__Task *task, swc_exec_cb cb, void *data);
    /* Start the created container (already running is fine). */
    int (*start)(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data);
    /* Report the container's current state (the pull-side of "wait"). */
    int (*inspect)(struct swc_exec *ex, const char *cid, swc_exec_inspect_cb cb, void *data);
    /* Stop: send signal (NULL/"" = the image's), wait grace_ns, then kill.
     * Already stopped is fine. */
    int (*shutdown)(struct swc_exec *ex, const char *cid, const char *signal, int64_t grace_ns,
                    swc_exec_cb cb, void *data);
    /* Kill immediately (SIGKILL). Already stopped is fine. */
    int (*terminate)(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data);
    /* Remove the container (forcefully). Already gone is fine. */
    int (*remove)(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data);
    /* Fetch the logs (demultiplexed); tail < 0 means all. */
    int (*logs)(struct swc_exec *ex, const char *cid, int tail, swc_exec_log_cb log_cb,
                swc_exec_cb done_cb, void *data);
    /* List the containers owned by this node (label swarmc.node.id). */
    int (*list)(struct swc_exec *ex, swc_exec_list_cb cb, void *data);
    /* Close: cancel everything in flight (their callbacks run with
     * SWC_ECANCELED), then call close_cb once; free everything there. */
    void (*close)(struct swc_exec *ex, void (*close_cb)(struct swc_exec *ex));
};

/* Common head of every executor (embedded first in the implementations). */
struct swc_exec {
    const struct swc_exec_ops *ops;
    swc_exec_event_cb event_cb; /* lifecycle event sink (may be NULL) */
    void *event_data;
    void *data; /* user pointer */
};

/* Point the executor's lifecycle events at cb (replaces the previous sink). */
static inline void swc_exec_set_event_cb(struct swc_exec *ex, swc_exec_event_cb cb, void *data)
{
    ex->event_cb = cb;
    ex->event_data = data;
}

/* The container name for a task: "<service>.<slot>.<task id>", or for global
 * tasks (slot 0) "<service>.<node id>.<task id>". Writes at most size bytes
 * (NUL included); returns 0 or SWC_EINVAL when it does not fit. */
int swc_exec_container_name(const Swarmc__Task *task, char *out, size_t size);

#endif
