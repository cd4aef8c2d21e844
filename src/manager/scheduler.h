/* The scheduler's pure core: decide on which node each pending task runs.
 *
 * The loop-facing scheduler builds a struct swc_sched from the store (one
 * swc_sched_node per node, then accounts every task already assigned and every
 * recent failure), and hands it the pending tasks. Placement then works on
 * compact structs only: no protobuf, no store, no clock ("now" is an argument).
 *
 * Tasks with the same (service id, spec version) form a group and are placed
 * together: one pass of the filters over all nodes for the group — node ready,
 * node active, CPU, memory, constraints, platform, host-mode ports, max
 * replicas per node — then the passing nodes go into min-heaps ordered by
 * (tasks of this service, tasks overall) and the group is spread by popping the
 * best node, placing one task, and pushing it back: O(M + N log M) for N tasks
 * on M nodes. Placement preferences ("spread over node.labels.zone") build a
 * tree above the heaps: each level balances this service's tasks across the
 * label values of that level (nodes without the label form one "" value), so
 * several preferences nest. A node whose own capacity runs out mid-group leaves
 * the heap, and the reason is counted.
 *
 * Failure avoidance is soft: a node on which this service failed 5 times in the
 * last 5 minutes is used only when no other passing node remains (a one-node
 * cluster must still be able to run a crashing service and show the crash).
 *
 * A task that already names its node (global services create one task per
 * node) is only checked against that node's filters.
 *
 * A task that cannot be placed gets an explanation counting nodes per failed
 * filter: "no suitable node (insufficient memory on 2 nodes; scheduling
 * constraints not satisfied on 1 node)". */
#ifndef SWC_MANAGER_SCHEDULER_H
#define SWC_MANAGER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/types.pb-c.h"
#include "base/err.h"
#include "manager/constraint.h"

#define SWC_SCHED_MAX_FAILURES   5
#define SWC_SCHED_FAILURE_WINDOW (5 * 60 * 1000000000LL)

/* A host-mode published port (protocol is a SWARMC__PORT_PROTOCOL__*). */
struct swc_sched_port {
    uint32_t port;
    int protocol;
};

/* An allowed platform; an empty os or arch matches any. */
struct swc_sched_platform {
    const char *os;
    const char *arch;
};

/* What the caller tells the scheduler about a node (strings are copied). */
struct swc_sched_node_info {
    const char *id;
    const char *hostname;
    int role; /* SWARMC__NODE_ROLE__* */
    const char *os;
    const char *arch;
    const struct swc_kv *labels;
    size_t n_labels;
    const struct swc_kv *engine_labels;
    size_t n_engine_labels;
    bool ready;        /* status READY */
    int availability;  /* SWARMC__NODE_AVAILABILITY__* */
    int64_t nano_cpus; /* total */
    int64_t memory_bytes;
};

struct swc_sched_svc; /* per-node, per-service counters (private) */

/* A node as the scheduler sees it. Public fields are kept up to date as tasks
 * are accounted and placed; attrs strings belong to the node. */
struct swc_sched_node {
    struct swc_node_attrs attrs;
    bool ready;
    int availability;
    int64_t total_nano_cpus, total_memory;
    int64_t reserved_nano_cpus, reserved_memory;
    uint32_t ntasks;              /* all tasks accounted on the node */
    struct swc_sched_port *ports; /* host ports in use */
    size_t n_ports, cap_ports;
    struct swc_sched_svc *svcs; /* service id -> count, recent failures */
    size_t index;               /* position in the scheduler, for stable ties */
};

/* A task to place. Everything is borrowed from the caller; tasks of one group
 * must agree on everything but id. */
struct swc_sched_task {
    const char *id;
    const char *service_id;
    uint64_t spec_version;
    int64_t nano_cpus; /* reservations */
    int64_t memory_bytes;
    const struct swc_constraint_set *constraints; /* may be NULL */
    const struct swc_sched_platform *platforms;
    size_t n_platforms;
    uint64_t max_replicas; /* per node, 0 = unlimited */
    const struct swc_sched_port *host_ports;
    size_t n_host_ports;
    const char *const *spread; /* preference label keys, "node.labels.zone" */
    size_t n_spread;
    const char *node_id; /* preassigned (global services): only this node is
                            checked; NULL or "" = choose */
};

/* The decision for one task: node_id points into the scheduler (valid until
 * it is destroyed) or is NULL, and then explain (owned, free with
 * swc_sched_results_clear) says why. */
struct swc_sched_result {
    const char *task_id;
    const char *node_id;
    char *explain;
};

struct swc_sched;

/* Create an empty scheduler state; SWC_ENOMEM on failure. */
int swc_sched_create(struct swc_sched **out);

/* Free the state and all its nodes. */
void swc_sched_destroy(struct swc_sched *s);

/* Add a node (strings copied); out (optional) gets the node. SWC_EEXIST when
 * the id is already known. */
int swc_sched_node_add(struct swc_sched *s, const struct swc_sched_node_info *info,
                       struct swc_sched_node **out);

/* Add a node described by a protobuf Node. */
int swc_sched_node_add_pb(struct swc_sched *s, const Swarmc__Node *node,
                          struct swc_sched_node **out);

/* The node with this id, or NULL. */
struct swc_sched_node *swc_sched_node_get(struct swc_sched *s, const char *id);

/* Number of nodes, and the i-th one (insertion order). */
size_t swc_sched_node_count(const struct swc_sched *s);
struct swc_sched_node *swc_sched_node_at(struct swc_sched *s, size_t i);

/* Account a task already running or assigned on n (reservations, ports, per
 * service count). */
int swc_sched_node_account(struct swc_sched_node *n, const char *service_id, int64_t nano_cpus,
                           int64_t memory_bytes, const struct swc_sched_port *ports,
                           size_t n_ports);

/* Undo swc_sched_node_account for a task that left n (shut down, ended):
 * SWC_ENOENT when no task of service_id is accounted on n, SWC_ENOTSUP when
 * n has host ports in use (the caller then rebuilds its view). */
int swc_sched_node_release(struct swc_sched_node *n, const char *service_id, int64_t nano_cpus,
                           int64_t memory_bytes);

/* Record that a task of service_id failed on n at time when (ns). */
int swc_sched_node_note_failure(struct swc_sched_node *n, const char *service_id, int64_t when);

/* Tasks of service_id accounted on n. */
uint32_t swc_sched_node_service_tasks(const struct swc_sched_node *n, const char *service_id);

/* Place n tasks. results must have room for n entries and is filled in the
 * same order as tasks. Nodes are updated as tasks land. Returns 0 or
 * SWC_ENOMEM (results are then cleared). */
int swc_sched_place(struct swc_sched *s, const struct swc_sched_task *tasks, size_t n, int64_t now,
                    struct swc_sched_result *results);

/* Free the explanations in results. */
void swc_sched_results_clear(struct swc_sched_result *results, size_t n);

/* Extract the placement inputs of a protobuf task: constraints are parsed into
 * cons (owned by the caller; swc_constraint_set_clear), host ports and
 * platforms and spread keys are allocated into *arena (free with swc_free).
 * Strings are borrowed from t. */
int swc_sched_task_from_pb(const Swarmc__Task *t, struct swc_sched_task *out,
                           struct swc_constraint_set *cons, void **arena, struct swc_err *err);

#endif
