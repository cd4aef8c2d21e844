/* The simulated executor: runs tasks without containers, with configurable
 * start delay, run time, exit code and failure rate, driven by uv timers, so
 * one process can act as thousands of nodes. Per task it keeps one small
 * record (a timer and a few integers). */
#ifndef SWC_WORKER_SIM_H
#define SWC_WORKER_SIM_H

#include <stdint.h>
#include <uv.h>

#include "base/err.h"
#include "worker/executor.h"

struct swc_sim_config {
    uv_loop_t *loop;
    const char *node_id;
    const char *hostname;        /* default "sim-<node id>" */
    int64_t nano_cpus;           /* described resources; default 4 CPUs */
    int64_t memory_bytes;        /* default 8 GiB */
    uint64_t start_delay_ms;     /* prepare and start each take this long */
    uint64_t run_time_ms;        /* 0 = run until stopped */
    int exit_code;               /* exit code when the run time ends */
    double failure_rate;         /* probability [0,1] that a start fails (exit 1 right away) */
    double prepare_failure_rate; /* probability that prepare fails (task rejected) */
    uint64_t seed;               /* PRNG seed (0 = 1) */
};

/* Create a sim executor; *out is freed by its close op. */
int swc_sim_init(struct swc_exec **out, const struct swc_sim_config *cfg, struct swc_err *err);

/* Number of simulated containers currently alive (created, not removed). */
size_t swc_sim_count(struct swc_exec *ex);

/* Test hooks: make the container of task_id exit with code / report health /
 * vanish, as if it happened behind our back. 0 or SWC_ENOENT. */
int swc_sim_inject(struct swc_exec *ex, const char *task_id, enum swc_exec_event_type type,
                   int exit_code);

#endif
