/* The manager: raft + store + the leader-only loops + the control API.
 *
 * Every manager keeps a replica of the store, fed by raft; it answers reads
 * from it. The leader, and only it, runs the pipeline (orchestrators,
 * allocator, scheduler, reaper) and the dispatcher, all started together once
 * it has applied its whole log and stopped together when it steps down. */
#ifndef SWC_MANAGER_MANAGER_H
#define SWC_MANAGER_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"
#include "net/rpc.h"

struct swc_manager;

struct swc_manager_config {
    uv_loop_t *loop;
    const char *state_dir;
    const char *node_id;        /* this node's id */
    const char *advertise_addr; /* cluster address others reach us at */
    const char *raft_addr;      /* raft's own listen address "host:port" */
    uint64_t raft_id;
    const uint8_t *data_key; /* 32 bytes, or NULL */
    bool bootstrap;          /* fresh one-manager cluster */
    bool force_new_cluster;
    /* Servers to register the control and dispatcher methods on (borrowed):
     * the cluster port and the local control socket. */
    struct swc_rpc_server *cluster_srv;
    struct swc_rpc_server *control_srv;
    int64_t heartbeat_period_ns; /* 0 = 5 s */
    /* How this manager talks to the leader (forwarded writes); copied.
     * NULL = plain TCP (tests). */
    const struct swc_secchan_config *client_secure;
    /* Raft's own listener (raft_addr) runs this server config through the
     * secure tunnel (manager certificates only); NULL = raft's stock TCP
     * transport (tests). Copied. */
    const struct swc_secchan_config *raft_server_secure;
    /* Cluster identity written into the Cluster object at bootstrap. */
    const char *cluster_id;
    const uint8_t *ca_public_key; /* 32 bytes */
    const uint8_t *worker_token_hash;
    const uint8_t *manager_token_hash;
    /* The tokens themselves (bootstrap only), stored sealed with data_key. */
    const char *worker_token;
    const char *manager_token;
};

/* Create and start the manager; 0 or SWC_E* with err set. */
int swc_manager_start(struct swc_manager **out, const struct swc_manager_config *cfg,
                      struct swc_err *err);

/* True while this manager leads and its loops run. */
bool swc_manager_is_leader(const struct swc_manager *m);

/* Record on node_id's Node object (created if the node has not registered
 * yet) that it is raft member raft_id, which raftnet checks raft tunnels
 * against (leader only; the write is asynchronous). 0 or a SWC_E* code. */
int swc_manager_record_raft_id(struct swc_manager *m, const char *node_id, uint64_t raft_id);

/* Add a manager to raft (leader only): raft_addr is its raft listener.
 * 0 (the change completes in the background), SWC_ENOTLEADER or another
 * SWC_E* with err set. */
int swc_manager_add_member(struct swc_manager *m, uint64_t raft_id, const char *raft_addr,
                           struct swc_err *err);

/* The join secrets the cluster checks joins against (hashes of the token
 * secrets, 32 bytes each) and, when out is not NULL, the current tokens
 * (unsealed with the data key; SWC_TOKEN_MAX bytes each). 0, or SWC_ENOENT
 * before the cluster object exists. */
int swc_manager_join_secrets(struct swc_manager *m, uint8_t worker_hash[32],
                             uint8_t manager_hash[32], char *worker_token, char *manager_token);

/* Replace the worker (manager false) or manager join token (leader only):
 * the cluster then refuses the old one. cb(data, result, msg) once; 0 or
 * SWC_ENOTLEADER / SWC_ENOENT / SWC_ENOMEM with err set and no callback. */
int swc_manager_rotate_token(struct swc_manager *m, bool manager, const char *token,
                             const uint8_t hash[32],
                             void (*cb)(void *data, int result, const char *msg), void *data,
                             struct swc_err *err);

/* The cluster address of the leader ("host:port"), or "" when unknown. */
void swc_manager_leader_addr(struct swc_manager *m, char *out, size_t size);

/* The desired role (SWARMC__NODE_ROLE__*) of node_id from the store: 0,
 * SWC_ENOENT (no Node object yet) or SWC_EAUTH (the node was removed). */
int swc_manager_node_info(struct swc_manager *m, const char *node_id, int *desired_role);

/* The raft id of the manager whose cluster address is addr: 0 or SWC_ENOENT. */
int swc_manager_member_by_addr(struct swc_manager *m, const char *addr, uint64_t *raft_id);

/* Remove a manager from raft (leader only); cb(data, status, msg) once the
 * change is committed or failed. 0, or SWC_E* with err set (no callback). */
int swc_manager_remove_member(struct swc_manager *m, uint64_t raft_id,
                              void (*cb)(void *data, int status, const char *msg), void *data,
                              struct swc_err *err);

/* A cluster backup (`swarmc cluster backup`) loaded in memory. */
struct swc_manager_backup;

/* Load and check the SQLite backup at path (blocks: an operator's one-off
 * command). 0 or SWC_E* with err set. */
int swc_manager_backup_load(const char *path, struct swc_manager_backup **out, struct swc_err *err);
/* How many objects the backup holds (the Cluster object not counted). */
uint64_t swc_manager_backup_objects(const struct swc_manager_backup *b);
/* Free a backup that was not handed to swc_manager_restore. */
void swc_manager_backup_free(struct swc_manager_backup *b);

typedef void (*swc_manager_restore_cb)(void *data, int code, const char *msg, uint64_t objects);

/* Seed the store from b (taken over) once this manager leads: every object
 * but the Cluster object (the new cluster keeps its identity) is proposed as
 * a create (an update when the id exists), in transactions of at most 1 MiB;
 * restored nodes show as down workers. cb once, later. 0 or SWC_ENOMEM. */
int swc_manager_restore(struct swc_manager *m, struct swc_manager_backup *b,
                        swc_manager_restore_cb cb, void *data);

/* The control API on a server whose lifetime is not the manager's (the
 * node's control socket): register every control method with shim, which
 * hands the request to the current manager with swc_control_dispatch (or
 * answers that this node is not a manager). */
void swc_control_register_shim(struct swc_rpc_server *srv, swc_rpc_handler shim, void *data);
/* Run the control method named by req on m; false when unknown. */
bool swc_control_dispatch(struct swc_manager *m, struct swc_rpc_req *req, const uint8_t *p,
                          size_t len);
/* True when the control method is a server stream. */
bool swc_control_streaming(const char *method);

/* Stop everything, then cb(data); m is freed. */
void swc_manager_close(struct swc_manager *m, void (*cb)(void *data), void *data);

#endif
