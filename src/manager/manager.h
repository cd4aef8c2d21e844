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
    /* Cluster identity written into the Cluster object at bootstrap. */
    const char *cluster_id;
    const uint8_t *ca_public_key; /* 32 bytes */
    const uint8_t *worker_token_hash;
    const uint8_t *manager_token_hash;
};

/* Create and start the manager; 0 or SWC_E* with err set. */
int swc_manager_start(struct swc_manager **out, const struct swc_manager_config *cfg,
                      struct swc_err *err);

/* True while this manager leads and its loops run. */
bool swc_manager_is_leader(const struct swc_manager *m);

/* Add a manager to raft (leader only): raft_addr is its raft listener.
 * 0 (the change completes in the background), SWC_ENOTLEADER or another
 * SWC_E* with err set. */
int swc_manager_add_member(struct swc_manager *m, uint64_t raft_id, const char *raft_addr,
                           struct swc_err *err);

/* The cluster address of the leader ("host:port"), or "" when unknown. */
void swc_manager_leader_addr(struct swc_manager *m, char *out, size_t size);

/* Stop everything, then cb(data); m is freed. */
void swc_manager_close(struct swc_manager *m, void (*cb)(void *data), void *data);

#endif
