/* Manager lifecycle and the write path (see manager.h).
 *
 * Raft's FSM is the store: each proposal is one encoded StoreBatch holding
 * one transaction, applied by swc_store_apply_entry; its result code goes
 * back to the proposer through raft. Snapshots are the store's snapshot.
 *
 * Leadership: raft tells us "leader, log applied" and "no longer leader";
 * on the first we write the Cluster object if this manager bootstrapped the
 * cluster, then start the pipeline and tell the dispatcher; on the second we
 * stop both. */
#include "manager/manager_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"

#define MOD "manager"

uint8_t *swc_pb_pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *p = swc_malloc(*len ? *len : 1);
    if (p != NULL) {
        protobuf_c_message_pack(msg, p);
    }
    return p;
}

/* ---- FSM ------------------------------------------------------------------ */

struct apply_ctx {
    struct swc_manager *m;
    int code;
};

static void apply_result_cb(void *data, uint64_t raft_index, uint64_t proposal_id,
                            const char *proposer, int code, const char *msg)
{
    struct apply_ctx *c = data;
    c->code = code;
    if (code != 0) {
        snprintf(c->m->apply_msg, sizeof c->m->apply_msg, "%s", msg);
        swc_debugf(MOD, "transaction at %llu refused: %s", (unsigned long long)raft_index, msg);
    }
}

static int fsm_apply(void *data, uint64_t index, const uint8_t *payload, size_t len)
{
    struct swc_manager *m = data;
    struct apply_ctx c = {m, 0};
    int rv = swc_store_apply_entry(m->store, index, payload, len, apply_result_cb, &c);
    if (rv != 0) {
        swc_errorf(MOD, "apply entry %llu: %s", (unsigned long long)index, swc_strerror(rv));
        return rv;
    }
    return c.code;
}

static int fsm_snapshot(void *data, struct swc_buf *out)
{
    struct swc_manager *m = data;
    return swc_store_snapshot(m->store, out);
}

static int fsm_restore(void *data, const uint8_t *p, size_t len)
{
    struct swc_manager *m = data;
    return swc_store_restore(m->store, p, len);
}

/* ---- writes ---------------------------------------------------------------- */

struct write_req {
    struct swc_manager *m;
    swc_manager_write_cb cb;
    void *data;
};

static void write_done(void *data, int result)
{
    struct write_req *w = data;
    const char *msg = "";
    if (result == SWC_ECONFLICT || result == SWC_EINVAL) {
        msg = w->m->apply_msg;
    } else if (result != 0) {
        msg = swc_strerror(result);
    }
    if (w->cb != NULL) {
        w->cb(w->data, result, msg);
    }
    swc_free(w);
}

int swc_manager_write(struct swc_manager *m, const struct swc_store_txn *t, swc_manager_write_cb cb,
                      void *data)
{
    struct swc_buf txn, batch;
    int rv;
    if (!m->leader) {
        return SWC_ENOTLEADER;
    }
    swc_buf_init(&txn);
    swc_buf_init(&batch);
    struct write_req *w = swc_malloc(sizeof *w);
    if (w == NULL) {
        return SWC_ENOMEM;
    }
    w->m = m;
    w->cb = cb;
    w->data = data;
    rv = swc_store_txn_encode(t, &txn);
    if (rv == 0) {
        rv = swc_store_batch_append(&batch, txn.data, txn.len);
    }
    if (rv == 0) {
        rv = swc_raft_propose(m->raft, batch.data, batch.len, write_done, w);
    }
    swc_buf_free(&txn);
    swc_buf_free(&batch);
    if (rv != 0) {
        swc_free(w);
    }
    return rv;
}

/* ---- leadership ---------------------------------------------------------- */

static void cluster_written(void *data, int result, const char *msg)
{
    struct swc_manager *m = data;
    if (result != 0) {
        swc_errorf(MOD, "write cluster object: %s", msg);
        return;
    }
    m->need_cluster_object = false;
}

static void write_cluster_object(struct swc_manager *m)
{
    if (swc_store_count(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER) > 0) {
        m->need_cluster_object = false;
        return;
    }
    Swarmc__Cluster c = SWARMC__CLUSTER__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    Swarmc__ClusterSpec spec = SWARMC__CLUSTER_SPEC__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__OrchestrationSettings orch = SWARMC__ORCHESTRATION_SETTINGS__INIT;
    Swarmc__DispatcherSettings disp = SWARMC__DISPATCHER_SETTINGS__INIT;
    Swarmc__RaftSettings raft = SWARMC__RAFT_SETTINGS__INIT;
    Swarmc__CAConfig ca = SWARMC__CACONFIG__INIT;
    Swarmc__JoinTokenSecrets tok = SWARMC__JOIN_TOKEN_SECRETS__INIT;
    int64_t now = swc_now_wall();
    c.id = m->cluster_id;
    meta.created_at = meta.updated_at = now;
    c.meta = &meta;
    ann.name = "default";
    spec.annotations = &ann;
    orch.task_history_retention_limit = 5;
    spec.orchestration = &orch;
    disp.heartbeat_period_ns = m->heartbeat_period_ns;
    spec.dispatcher = &disp;
    raft.snapshot_interval = 10000;
    raft.log_entries_for_slow_followers = 500;
    raft.heartbeat_tick_ms = 50;
    raft.election_tick_ms = 500;
    spec.raft = &raft;
    ca.node_cert_expiry_ns = 90LL * 24 * 3600 * SWC_NS_PER_SEC;
    spec.ca_config = &ca;
    c.spec = &spec;
    c.ca_public_key.data = m->ca_public_key;
    c.ca_public_key.len = 32;
    tok.worker_hash.data = m->worker_hash;
    tok.worker_hash.len = 32;
    tok.manager_hash.data = m->manager_hash;
    tok.manager_hash.len = 32;
    c.join_tokens = &tok;
    struct swc_store_txn t;
    if (swc_store_txn_init(&t, ++m->proposal_seq, m->node_id) != 0) {
        return;
    }
    if (swc_store_txn_create(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &c.base) == 0) {
        swc_manager_write(m, &t, cluster_written, m);
    }
    swc_store_txn_free(&t);
}

static void on_leader(struct swc_raft *r, bool leader, void *data)
{
    struct swc_manager *m = data;
    if (m->closing) {
        return;
    }
    m->leader = leader;
    if (leader) {
        swc_infof(MOD, "leader (log applied up to %llu)",
                  (unsigned long long)swc_raft_applied_index(r));
        if (m->need_cluster_object) {
            write_cluster_object(m);
        }
        if (m->pipeline == NULL && swc_pipeline_start(m, &m->pipeline) != 0) {
            swc_errorf(MOD, "cannot start the pipeline");
        }
        swc_dispatcher_leader(m->dispatcher, true);
    } else {
        swc_infof(MOD, "no longer the leader");
        if (m->pipeline != NULL) {
            swc_pipeline_stop(m->pipeline);
            m->pipeline = NULL;
        }
        swc_dispatcher_leader(m->dispatcher, false);
    }
}

/* ---- lifecycle ------------------------------------------------------------- */

int swc_manager_start(struct swc_manager **out, const struct swc_manager_config *cfg,
                      struct swc_err *err)
{
    struct swc_manager *m = swc_calloc(1, sizeof *m);
    int rv;
    if (m == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "manager: out of memory");
    }
    m->loop = cfg->loop;
    m->state_dir = swc_strdup(cfg->state_dir);
    m->node_id = swc_strdup(cfg->node_id);
    m->advertise_addr = swc_strdup(cfg->advertise_addr);
    m->cluster_id = swc_strdup(cfg->cluster_id != NULL ? cfg->cluster_id : "");
    m->heartbeat_period_ns =
        cfg->heartbeat_period_ns ? cfg->heartbeat_period_ns : 5 * SWC_NS_PER_SEC;
    m->cluster_srv = cfg->cluster_srv;
    if (cfg->client_secure != NULL) {
        m->has_client_secure = true;
        m->client_secure = *cfg->client_secure;
        m->client_secure.is_client = true;
    }
    m->control_srv = cfg->control_srv;
    if (cfg->ca_public_key != NULL) {
        memcpy(m->ca_public_key, cfg->ca_public_key, 32);
    }
    if (cfg->worker_token_hash != NULL) {
        memcpy(m->worker_hash, cfg->worker_token_hash, 32);
    }
    if (cfg->manager_token_hash != NULL) {
        memcpy(m->manager_hash, cfg->manager_token_hash, 32);
    }
    m->need_cluster_object = cfg->bootstrap;
    if (m->state_dir == NULL || m->node_id == NULL || m->advertise_addr == NULL ||
        m->cluster_id == NULL) {
        rv = swc_err_set(err, SWC_ENOMEM, "manager: out of memory");
        goto fail;
    }
    if ((rv = swc_store_create(&m->store)) != 0) {
        swc_err_set(err, rv, "manager: create store: %s", swc_strerror(rv));
        goto fail;
    }
    if ((rv = swc_dispatcher_create(m, &m->dispatcher)) != 0) {
        swc_err_set(err, rv, "manager: create dispatcher: %s", swc_strerror(rv));
        goto fail;
    }
    struct swc_raft_config rc = {0};
    rc.state_dir = cfg->state_dir;
    rc.id = cfg->raft_id;
    rc.address = cfg->raft_addr;
    rc.data_key = cfg->data_key;
    rc.fsm.data = m;
    rc.fsm.apply = fsm_apply;
    rc.fsm.snapshot = fsm_snapshot;
    rc.fsm.restore = fsm_restore;
    rc.on_leader = on_leader;
    rc.cb_data = m;
    if ((rv = swc_raft_init(m->loop, &rc, &m->raft, err)) != 0) {
        swc_err_wrap(err, "manager");
        goto fail;
    }
    if (cfg->bootstrap && (rv = swc_raft_bootstrap(m->raft)) != 0 && rv != SWC_EEXIST) {
        swc_err_set(err, rv, "manager: raft bootstrap: %s", swc_raft_errmsg(m->raft));
        goto fail_raft;
    }
    if (cfg->force_new_cluster && (rv = swc_raft_force_new_cluster(m->raft)) != 0) {
        swc_err_set(err, rv, "manager: force new cluster: %s", swc_raft_errmsg(m->raft));
        goto fail_raft;
    }
    if ((rv = swc_raft_start(m->raft)) != 0) {
        swc_err_set(err, rv, "manager: raft start: %s", swc_raft_errmsg(m->raft));
        goto fail_raft;
    }
    if (m->cluster_srv != NULL) {
        swc_dispatcher_register(m->dispatcher, m->cluster_srv);
        swc_control_register(m, m->cluster_srv);
    }
    if (m->control_srv != NULL) {
        swc_control_register(m, m->control_srv);
    }
    *out = m;
    return 0;
fail_raft:
    swc_raft_close(m->raft, NULL, NULL);
    m->raft = NULL;
fail:
    if (m->dispatcher != NULL) {
        swc_dispatcher_destroy(m->dispatcher);
    }
    if (m->store != NULL && m->raft == NULL) {
        swc_store_destroy(m->store);
    }
    swc_free(m->state_dir);
    swc_free(m->node_id);
    swc_free(m->advertise_addr);
    swc_free(m->cluster_id);
    swc_free(m);
    return rv;
}

static void member_added(void *data, int status)
{
    struct swc_manager *m = data;
    if (status != 0) {
        swc_warnf(MOD, "add manager: %s: %s", swc_strerror(status), swc_raft_errmsg(m->raft));
    } else {
        swc_infof(MOD, "a manager joined raft");
    }
}

int swc_manager_add_member(struct swc_manager *m, uint64_t raft_id, const char *raft_addr,
                           struct swc_err *err)
{
    if (!m->leader) {
        return swc_err_set(err, SWC_ENOTLEADER, "this manager is not the leader");
    }
    int rv = swc_raft_add(m->raft, raft_id, raft_addr, member_added, m);
    if (rv != 0) {
        return swc_err_set(err, rv, "add manager %s: %s", raft_addr, swc_raft_errmsg(m->raft));
    }
    return 0;
}

/* Raft listens on the cluster port + 1 (docs/design.md): map back. */
void swc_manager_leader_addr(struct swc_manager *m, char *out, size_t size)
{
    char addr[SWC_RAFT_ADDR_MAX] = "";
    out[0] = '\0';
    if (swc_raft_leader(m->raft, NULL, addr) != 0 || addr[0] == '\0') {
        return;
    }
    char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        return;
    }
    *colon = '\0';
    snprintf(out, size, "%s:%d", addr, atoi(colon + 1) - 1);
}

bool swc_manager_is_leader(const struct swc_manager *m)
{
    return m->leader;
}

static void raft_closed(void *data)
{
    struct swc_manager *m = data;
    swc_store_destroy(m->store);
    void (*cb)(void *) = m->close_cb;
    void *cb_data = m->close_data;
    swc_free(m->state_dir);
    swc_free(m->node_id);
    swc_free(m->advertise_addr);
    swc_free(m->cluster_id);
    swc_free(m);
    if (cb != NULL) {
        cb(cb_data);
    }
}

void swc_manager_close(struct swc_manager *m, void (*cb)(void *data), void *data)
{
    m->closing = true;
    m->close_cb = cb;
    m->close_data = data;
    if (m->pipeline != NULL) {
        swc_pipeline_stop(m->pipeline);
        m->pipeline = NULL;
    }
    m->leader = false;
    if (m->leader_conn != NULL) {
        swc_rpc_conn_close(m->leader_conn, NULL, NULL);
        m->leader_conn = NULL;
    }
    swc_dispatcher_destroy(m->dispatcher);
    m->dispatcher = NULL;
    swc_raft_close(m->raft, raft_closed, m);
}
