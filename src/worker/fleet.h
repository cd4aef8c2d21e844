/* Fleet mode: one process hosting many simulated worker nodes (like
 * Kubernetes' hollow nodes), for exercising managers with 1k-10k nodes.
 *
 * Each simulated node has its own Ed25519 identity, joins the cluster with
 * the worker join token through "cluster.Join" (the same request and CA
 * pinning by the token's digest as `swarmc join`), gets its own certificate
 * and then runs the real worker (in-memory, no task DB) over a sim executor
 * and the real agent, whose session, heartbeats, assignments and status
 * reports go to the managers over the secure channel like any node's.
 *
 * Joins are paced: a few join connections carry at most joins_in_flight
 * "cluster.Join" calls at a time; a refused or failed join is retried.
 * Everything runs on the caller's loop. */
#ifndef SWC_WORKER_FLEET_H
#define SWC_WORKER_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"

struct swc_fleet;

struct swc_fleet_config {
    const char *const *managers; /* manager cluster addresses "host:port" */
    size_t nmanagers;
    const char *token; /* worker join token */
    size_t nodes;      /* number of simulated nodes */
    /* Sim executor settings, the same for every node. */
    uint64_t start_delay_ms;     /* prepare and start each take this long */
    uint64_t run_time_ms;        /* 0 = tasks run until stopped */
    double failure_rate;         /* probability [0,1] that a task start fails */
    uint64_t seed;               /* node i uses seed + i (0 = 1) */
    const char *hostname_prefix; /* node i is "<prefix>-<i>"; NULL = "fleet" */
    unsigned joins_in_flight;    /* 0 = 256 */
    unsigned join_conns;         /* connections carrying the joins; 0 = 4 */
};

/* Progress of a fleet. */
struct swc_fleet_stats {
    size_t nodes;       /* configured */
    size_t joined;      /* have a certificate */
    size_t connected;   /* agents with an established session now */
    size_t join_errors; /* joins refused for good (bad token, other cluster) */
    size_t tasks;       /* tasks assigned over all nodes */
    size_t running;     /* of which observed running */
    size_t pending;     /* statuses not yet acknowledged by a manager */
    int64_t all_up_ns;  /* monotonic time from start until every node first had
                           a session (0 = not yet) */
};

/* Start a fleet on loop: nodes join in the background. 0, or SWC_EINVAL
 * (no managers, no nodes, malformed token) / SWC_ENOMEM with err set. */
int swc_fleet_start(uv_loop_t *loop, const struct swc_fleet_config *cfg, struct swc_fleet **out,
                    struct swc_err *err);

/* Fill out with the current progress (walks every node: O(nodes)). */
void swc_fleet_stats(const struct swc_fleet *f, struct swc_fleet_stats *out);

/* Fill only the counters that cost nothing to read (nodes, joined,
 * join_errors, all_up_ns; the rest zero): for a caller polling often. */
void swc_fleet_progress(const struct swc_fleet *f, struct swc_fleet_stats *out);

/* The first permanent join error ("" when none). */
const char *swc_fleet_error(const struct swc_fleet *f);

/* Stop every node (agent, worker, executor) and the joins, free the fleet,
 * then cb(data) (cb optional). */
void swc_fleet_close(struct swc_fleet *f, void (*cb)(void *data), void *data);

#endif
