/* Private state shared by the manager's files: manager.c (lifecycle, raft and
 * store glue, writes), control.c (control API), pipeline.c (orchestrators,
 * allocator, scheduler, reaper) and dispatcher.c (worker sessions). */
#ifndef SWC_MANAGER_INT_H
#define SWC_MANAGER_INT_H

#include <uthash.h>

#include "api/control.pb-c.h"
#include "api/dispatcher.pb-c.h"
#include "manager/manager.h"
#include "manager/raftnet.h"
#include "raft/raft.h"
#include "store/store.h"

struct swc_dispatcher;
struct swc_pipeline;

struct swc_manager {
    uv_loop_t *loop;
    char *state_dir;
    char *node_id;
    char *advertise_addr;
    struct swc_store *store;
    struct swc_raft *raft;
    struct swc_rpc_server *cluster_srv;
    struct swc_rpc_server *control_srv;
    int64_t heartbeat_period_ns;
    bool leader;
    uint64_t proposal_seq;
    struct swc_pipeline *pipeline;
    struct swc_dispatcher *dispatcher;
    /* Bootstrap data for the Cluster object. */
    char *cluster_id;
    uint8_t ca_public_key[32];
    uint8_t worker_hash[32], manager_hash[32];
    char *worker_token, *manager_token; /* bootstrap only */
    bool has_data_key;
    uint8_t data_key[32];
    bool need_cluster_object;
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
    char apply_msg[SWC_ERRMSG_SIZE]; /* message of the last failed transaction */
    /* Forwarding writes to the leader (followers). */
    bool has_client_secure;
    struct swc_secchan_config client_secure;
    struct swc_rpc_conn *leader_conn;
    struct swc_raftnet *raftnet; /* raft over the secure tunnel, or NULL */
    char leader_conn_addr[SWC_RAFT_ADDR_MAX];
    /* The loop turn (uv_now value) the leader loops share a budget in. */
    uint64_t turn_id;
    int64_t turn_start;
    /* Version of the Cluster object known to list no removed node (0 =
     * unknown): swc_manager_node_removed skips decoding it. */
    uint64_t removed_none_version;
};

/* How much of one loop turn the leader's chunked loops (pipeline pass,
 * dispatcher sends and status flushes) may use together, so their sum
 * stays well under the raft election timeout. */
#define SWC_MANAGER_TURN_NS (20 * SWC_NS_PER_MS)
/* Guaranteed to each chunk, so none starves when others used the turn. */
#define SWC_MANAGER_TURN_MIN_NS (2 * SWC_NS_PER_MS)

/* Deadline (monotonic ns) for a chunk of work that wants budget_ns: capped
 * by what is left of this loop turn's shared budget, but never less than
 * SWC_MANAGER_TURN_MIN_NS from now. */
int64_t swc_manager_turn_deadline(struct swc_manager *m, int64_t budget_ns);

/* Forward a write request to the leader and relay its reply (followers). */
void swc_control_forward(struct swc_manager *m, struct swc_rpc_req *req, const uint8_t *payload,
                         size_t len);

/* Result of a write: 0, SWC_ECONFLICT, SWC_ELEADERLOST, ... */
typedef void (*swc_manager_write_cb)(void *data, int result, const char *msg);

/* Propose a transaction (leader only); cb exactly once (later). Returns 0 or
 * SWC_ENOTLEADER / SWC_ETOOBIG / SWC_ENOMEM without calling cb. */
int swc_manager_write(struct swc_manager *m, const struct swc_store_txn *t, swc_manager_write_cb cb,
                      void *data);

/* Leader loops. */
int swc_pipeline_start(struct swc_manager *m, struct swc_pipeline **out);
void swc_pipeline_stop(struct swc_pipeline *p);
/* Something the pipeline must look at changed now (e.g. a node went down). */
void swc_pipeline_kick(struct swc_pipeline *p);

/* How the pipeline proposes its transactions: swc_manager_write by default;
 * tests put a fake raft here. Same contract as swc_manager_write. */
typedef int (*swc_pipeline_write_fn)(void *data, const struct swc_store_txn *t,
                                     swc_manager_write_cb cb, void *cb_data);
/* Replace the pipeline's writer (before the loop runs its first pass). */
void swc_pipeline_set_writer(struct swc_pipeline *p, swc_pipeline_write_fn fn, void *data);

/* Counters of the pipeline since it started (what incremental passes cost). */
struct swc_pipeline_stats {
    uint64_t passes;              /* passes run */
    uint64_t full_passes;         /* passes that looked at every service */
    uint64_t chunked_passes;      /* passes that left work for the next one */
    uint64_t services_reconciled; /* services handed to the orchestrators */
    uint64_t tasks_decoded;       /* whole tasks decoded from the store */
    uint64_t task_writes;         /* actions proposed */
    int64_t max_pass_ns;          /* longest pass */
    uint64_t sched_rebuilds;      /* scheduler views rebuilt (every task re-accounted) */
    uint64_t sched_node_follows;  /* node changes applied to the view in place */
    uint64_t pipelined_passes;    /* backlog passes run while writes were in flight */
    uint64_t max_pass_writes;     /* most task writes proposed by one pass */
    uint64_t max_fill_writes;     /* most written from one backlog in one pass */
    uint64_t walks;               /* walks of a service's tasks (reconciles that decided) */
    uint64_t backlog_actions;     /* shutdowns/removals applied from a backlog */
    uint64_t sched_task_follows;  /* tasks leaving a node applied to the view in place */
};
/* Copy the pipeline's counters into *out. */
void swc_pipeline_get_stats(const struct swc_pipeline *p, struct swc_pipeline_stats *out);
/* Tests: start max_pass_ns, max_pass_writes and max_fill_writes again from 0. */
void swc_pipeline_reset_max(struct swc_pipeline *p);
/* Tests: every walk of a service's tasks ends past the pass's deadline (a
 * large service on a loaded manager). */
void swc_pipeline_test_overrun(struct swc_pipeline *p, bool on);

int swc_dispatcher_create(struct swc_manager *m, struct swc_dispatcher **out);
void swc_dispatcher_register(struct swc_dispatcher *d, struct swc_rpc_server *srv);
void swc_dispatcher_leader(struct swc_dispatcher *d, bool leader);
void swc_dispatcher_destroy(struct swc_dispatcher *d);
/* The longest event-loop turn seen by the dispatcher's loop-lag probe (a
 * 50 ms repeating timer measuring its lateness), in ns, since start. */
int64_t swc_dispatcher_loop_lag_max(const struct swc_dispatcher *d);
/* Session requests held by this non-leader until an election ends. */
size_t swc_dispatcher_parked(const struct swc_dispatcher *d);
/* Session registrations the leader left to a later loop turn (budget). */
uint64_t swc_dispatcher_admitted_late(const struct swc_dispatcher *d);
/* Nodes this dispatcher found past their heartbeat grace and marked down. */
uint64_t swc_dispatcher_marked_down(const struct swc_dispatcher *d);
/* The encoded task data (len bytes) with its status (field 11) replaced by
 * the encoded TaskStatus st (stlen bytes), without decoding the task: the
 * same bytes as decoding, setting status and encoding again. A new buffer
 * (swc_free) and its length in *out_len, or NULL (malformed data, no memory). */
uint8_t *swc_dispatcher_task_with_status(const uint8_t *data, size_t len, const uint8_t *st,
                                         size_t stlen, size_t *out_len);
/* How many times check_nodes looked for expired sessions, and how many
 * sessions it visited doing so (only those past their grace, oldest first). */
void swc_dispatcher_scan_stats(const struct swc_dispatcher *d, uint64_t *scans, uint64_t *visits);
/* True when node n already has this status (state, message, addr when not
 * NULL, role when >= 0, description when not NULL): writing it is a no-op. */
bool swc_dispatcher_node_current(const Swarmc__Node *n, int state, const char *message,
                                 const Swarmc__NodeDescription *desc, const char *addr, int role);

void swc_control_register(struct swc_manager *m, struct swc_rpc_server *srv);

/* True when node_id is in Cluster.removed_nodes (control.RemoveNode). */
bool swc_manager_node_removed(struct swc_manager *m, const char *node_id);

/* Refuse a service spec whose ingress ports another service holds (the
 * control API calls it before writing); 0 or SWC_EEXIST with err set. */
int swc_pipeline_check_ports(struct swc_store *s, const char *service_id, const char *name,
                             const Swarmc__EndpointSpec *spec, struct swc_err *err);

/* Pack a protobuf message into newly allocated bytes (swc_free). */
uint8_t *swc_pb_pack(const ProtobufCMessage *msg, size_t *len);

#endif
