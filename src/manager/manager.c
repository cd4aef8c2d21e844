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
#include "net/cert.h"

#define MOD           "manager"
#define SLOW_APPLY_MS 50 /* an entry applied slower than this is logged */

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
    int64_t t0 = swc_now_mono();
    int rv = swc_store_apply_entry(m->store, index, payload, len, apply_result_cb, &c);
    int64_t took = swc_now_mono() - t0;
    if (took > SLOW_APPLY_MS * SWC_NS_PER_MS) {
        /* store apply plus the watchers (pipeline, dispatcher) it calls */
        swc_infof(MOD, "slow apply: entry %llu of %zu bytes took %lld ms%s",
                  (unsigned long long)index, len, (long long)(took / SWC_NS_PER_MS),
                  m->leader ? " (leader)" : "");
    }
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
    struct swc_buf ws, ms;
    swc_buf_init(&ws);
    swc_buf_init(&ms);
    if (m->has_data_key && m->worker_token != NULL && m->manager_token != NULL &&
        swc_data_seal(m->data_key, (const uint8_t *)m->worker_token, strlen(m->worker_token),
                      &ws) == 0 &&
        swc_data_seal(m->data_key, (const uint8_t *)m->manager_token, strlen(m->manager_token),
                      &ms) == 0) {
        tok.worker_sealed.data = ws.data;
        tok.worker_sealed.len = ws.len;
        tok.manager_sealed.data = ms.data;
        tok.manager_sealed.len = ms.len;
    }
    c.join_tokens = &tok;
    struct swc_store_txn t;
    if (swc_store_txn_init(&t, ++m->proposal_seq, m->node_id) != 0) {
        return;
    }
    if (swc_store_txn_create(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &c.base) == 0) {
        swc_manager_write(m, &t, cluster_written, m);
    }
    swc_store_txn_free(&t);
    swc_buf_free(&ws);
    swc_buf_free(&ms);
}

static int bind_raft_id_of(void *data, const char *node_id, uint64_t *raft_id);

/* The bootstrap manager (raft id 1), a --force-new-cluster survivor and
 * managers added before raft ids were recorded learn theirs here: the first
 * time they lead, they write their own binding if it is missing or stale. */
static void record_own_raft_id(struct swc_manager *m)
{
    uint64_t have = 0, mine = swc_raft_id(m->raft);
    if (m->node_id == NULL || mine == 0 ||
        (bind_raft_id_of(m, m->node_id, &have) == 0 && have == mine)) {
        return;
    }
    swc_manager_record_raft_id(m, m->node_id, mine);
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
        record_own_raft_id(m);
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

/* raftnet's binding of raft ids to nodes (defined with the member code) */
static int bind_node_of(void *data, uint64_t raft_id, char *node_id, size_t size);

static void close_raftnet_cb(void *data)
{
    swc_raftnet_close(data, NULL, NULL);
}

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
    if (cfg->data_key != NULL) {
        m->has_data_key = true;
        memcpy(m->data_key, cfg->data_key, sizeof m->data_key);
    }
    if (cfg->worker_token != NULL) {
        m->worker_token = swc_strdup(cfg->worker_token);
    }
    if (cfg->manager_token != NULL) {
        m->manager_token = swc_strdup(cfg->manager_token);
    }
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
    /* Early election (raft.h) is on; SWARMC_RAFT_EARLY_ELECTION=0 turns it
     * off, to compare failover times with the same binary. */
    const char *early = getenv("SWARMC_RAFT_EARLY_ELECTION");
    rc.early_election_off = early != NULL && strcmp(early, "0") == 0;
    if (cfg->client_secure != NULL && cfg->raft_server_secure != NULL) {
        /* Raft traffic goes through the secure channel, managers only. */
        struct swc_secchan_config cc = *cfg->client_secure, sc = *cfg->raft_server_secure;
        cc.is_client = true;
        cc.required_peer_role = SWC_ROLE_MANAGER;
        sc.is_client = false;
        sc.required_peer_role = SWC_ROLE_MANAGER;
        sc.allow_anonymous_client = false;
        if ((rv = swc_raftnet_init(m->loop, cfg->raft_addr, &cc, &sc, &m->raftnet)) != 0) {
            swc_err_set(err, rv, "manager: raft listener on %s: %s", cfg->raft_addr,
                        swc_strerror(rv));
            goto fail;
        }
        rc.transport = swc_raftnet_transport(m->raftnet);
        struct swc_raftnet_binding b = {bind_raft_id_of, bind_node_of, m};
        swc_raftnet_set_binding(m->raftnet, &b);
    }
    if ((rv = swc_raft_init(m->loop, &rc, &m->raft, err)) != 0) {
        swc_err_wrap(err, "manager");
        goto fail;
    }
    if (m->raftnet != NULL) {
        swc_raftnet_bind(m->raftnet, m->raft);
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
    /* raft before its transport: raft may still call connect until closed */
    swc_raft_close(m->raft, m->raftnet != NULL ? close_raftnet_cb : NULL, m->raftnet);
    m->raft = NULL;
    m->raftnet = NULL;
fail:
    if (m->raftnet != NULL) {
        swc_raftnet_close(m->raftnet, NULL, NULL);
    }
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
    swc_free(m->worker_token);
    swc_free(m->manager_token);
    swc_free(m);
    return rv;
}

/* --- raft id <-> node binding for raftnet (docs/security.md, raft) -------- */

/* The raft id recorded on node_id's Node object (Node.raft_id; not
 * manager_status, which control.c fills live for display). */
static int bind_raft_id_of(void *data, const char *node_id, uint64_t *raft_id)
{
    struct swc_manager *m = data;
    Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
        m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, node_id, NULL);
    int rv = SWC_ENOENT;
    if (n != NULL && n->raft_id != 0) {
        *raft_id = n->raft_id;
        rv = 0;
    }
    if (n != NULL) {
        swc_store_free_decoded(&n->base);
    }
    return rv;
}

/* The node whose Node object records raft_id (a scan: tunnels are rare). */
static int bind_node_of(void *data, uint64_t raft_id, char *node_id, size_t size)
{
    struct swc_manager *m = data;
    struct swc_store_iter it;
    struct swc_store_obj o;
    int rv = SWC_ENOENT;
    swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &it);
    while (rv != 0 && swc_store_iter_next(&it, &o)) {
        Swarmc__Node *n = (Swarmc__Node *)swc_store_decode(&o, NULL);
        if (n != NULL && n->raft_id == raft_id) {
            snprintf(node_id, size, "%s", o.id);
            rv = 0;
        }
        if (n != NULL) {
            swc_store_free_decoded(&n->base);
        }
    }
    return rv;
}

static void raft_id_recorded(void *data, int result, const char *msg)
{
    (void)data;
    if (result != 0) {
        swc_warnf(MOD, "record a manager's raft id: %s", msg != NULL ? msg : swc_strerror(result));
    }
}

int swc_manager_record_raft_id(struct swc_manager *m, const char *node_id, uint64_t raft_id)
{
    Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
        m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, node_id, NULL);
    Swarmc__Node fresh = SWARMC__NODE__INIT;
    Swarmc__NodeSpec spec = SWARMC__NODE_SPEC__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    Swarmc__Node *w = n != NULL ? n : &fresh;
    struct swc_store_txn t;
    int rv;
    if (n == NULL) {
        /* the node has not registered yet: its first record is this one */
        fresh.id = (char *)node_id;
        meta.created_at = swc_now_wall();
        fresh.meta = &meta;
        spec.annotations = &ann;
        spec.availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
        spec.desired_role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
        fresh.spec = &spec;
        fresh.role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    }
    w->raft_id = raft_id;
    if ((rv = swc_store_txn_init(&t, ++m->proposal_seq, m->node_id)) == 0) {
        /* with the version read: a concurrent status write is never lost */
        rv = n == NULL ? swc_store_txn_create(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &w->base)
                       : swc_store_txn_update(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &w->base,
                                              n->meta != NULL ? n->meta->version : 0);
        if (rv == 0) {
            rv = swc_manager_write(m, &t, raft_id_recorded, NULL);
        }
        swc_store_txn_free(&t);
    }
    if (n != NULL) {
        swc_store_free_decoded(&n->base);
    }
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

/* ---- join tokens ----------------------------------------------------------- */

static Swarmc__Cluster *cluster_object(struct swc_manager *m, uint64_t *version)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &it);
    if (!swc_store_iter_next(&it, &o)) {
        return NULL;
    }
    if (version != NULL) {
        *version = o.version;
    }
    return (Swarmc__Cluster *)swc_store_decode(&o, NULL);
}

static void unseal_token(struct swc_manager *m, const ProtobufCBinaryData *sealed, char *out)
{
    struct swc_buf b;
    swc_buf_init(&b);
    out[0] = '\0';
    if (m->has_data_key && sealed->len > 0 &&
        swc_data_open(m->data_key, sealed->data, sealed->len, &b) == 0 && b.len < SWC_TOKEN_MAX) {
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    }
    swc_buf_free(&b);
}

int swc_manager_join_secrets(struct swc_manager *m, uint8_t worker_hash[32],
                             uint8_t manager_hash[32], char *worker_token, char *manager_token)
{
    Swarmc__Cluster *c = cluster_object(m, NULL);
    if (c == NULL || c->join_tokens == NULL || c->join_tokens->worker_hash.len != 32 ||
        c->join_tokens->manager_hash.len != 32) {
        swc_store_free_decoded(c != NULL ? &c->base : NULL);
        return SWC_ENOENT;
    }
    memcpy(worker_hash, c->join_tokens->worker_hash.data, 32);
    memcpy(manager_hash, c->join_tokens->manager_hash.data, 32);
    if (worker_token != NULL) {
        unseal_token(m, &c->join_tokens->worker_sealed, worker_token);
    }
    if (manager_token != NULL) {
        unseal_token(m, &c->join_tokens->manager_sealed, manager_token);
    }
    swc_store_free_decoded(&c->base);
    return 0;
}

int swc_manager_rotate_token(struct swc_manager *m, bool manager, const char *token,
                             const uint8_t hash[32],
                             void (*cb)(void *data, int result, const char *msg), void *data,
                             struct swc_err *err)
{
    uint64_t version = 0;
    if (!m->leader) {
        return swc_err_set(err, SWC_ENOTLEADER, "rotate the token on the leader");
    }
    Swarmc__Cluster *c = cluster_object(m, &version);
    if (c == NULL || c->join_tokens == NULL) {
        swc_store_free_decoded(c != NULL ? &c->base : NULL);
        return swc_err_set(err, SWC_ENOENT, "the cluster object is not written yet");
    }
    struct swc_buf sealed;
    swc_buf_init(&sealed);
    if (!m->has_data_key ||
        swc_data_seal(m->data_key, (const uint8_t *)token, strlen(token), &sealed) != 0) {
        swc_store_free_decoded(&c->base);
        return swc_err_set(err, SWC_ENOMEM, "cannot seal the new token");
    }
    Swarmc__JoinTokenSecrets *js = c->join_tokens;
    ProtobufCBinaryData old_hash = manager ? js->manager_hash : js->worker_hash;
    ProtobufCBinaryData old_sealed = manager ? js->manager_sealed : js->worker_sealed;
    ProtobufCBinaryData nh = {32, (uint8_t *)hash}, ns = {sealed.len, sealed.data};
    if (manager) {
        js->manager_hash = nh;
        js->manager_sealed = ns;
    } else {
        js->worker_hash = nh;
        js->worker_sealed = ns;
    }
    struct swc_store_txn t;
    int rv = swc_store_txn_init(&t, ++m->proposal_seq, m->node_id);
    if (rv == 0) {
        rv = swc_store_txn_update(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &c->base, version);
        if (rv == 0) {
            rv = swc_manager_write(m, &t, cb, data);
        }
        swc_store_txn_free(&t);
    }
    if (manager) {
        js->manager_hash = old_hash;
        js->manager_sealed = old_sealed;
    } else {
        js->worker_hash = old_hash;
        js->worker_sealed = old_sealed;
    }
    swc_store_free_decoded(&c->base);
    swc_buf_free(&sealed);
    return rv != 0 ? swc_err_set(err, rv, "rotate token: %s", swc_strerror(rv)) : 0;
}

bool swc_manager_is_leader(const struct swc_manager *m)
{
    return m->leader;
}

static void manager_freed(void *data)
{
    struct swc_manager *m = data;
    swc_store_destroy(m->store);
    void (*cb)(void *) = m->close_cb;
    void *cb_data = m->close_data;
    swc_free(m->state_dir);
    swc_free(m->node_id);
    swc_free(m->advertise_addr);
    swc_free(m->cluster_id);
    swc_free(m->worker_token);
    swc_free(m->manager_token);
    swc_free(m);
    if (cb != NULL) {
        cb(cb_data);
    }
}

/* raft first, then its transport (an accept must never reach a freed raft). */
static void raft_closed(void *data)
{
    struct swc_manager *m = data;
    if (m->raftnet != NULL) {
        swc_raftnet_close(m->raftnet, manager_freed, m);
    } else {
        manager_freed(m);
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

/* ---- restore from a backup ------------------------------------------------------ */

struct swc_manager_backup {
    struct swc_store *store;
    uint64_t objects;
};

int swc_manager_backup_load(const char *path, struct swc_manager_backup **out, struct swc_err *err)
{
    struct swc_manager_backup *b = swc_calloc(1, sizeof *b);
    int rv;
    if (b == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "restore: out of memory");
    }
    if ((rv = swc_store_create(&b->store)) != 0) {
        swc_free(b);
        return swc_err_set(err, rv, "restore: create a store: %s", swc_strerror(rv));
    }
    if ((rv = swc_store_restore_backup(b->store, path, err)) != 0) {
        swc_err_wrap(err, "restore");
        swc_manager_backup_free(b);
        return rv;
    }
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        if (k != SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER) {
            b->objects += swc_store_count(b->store, k);
        }
    }
    if (swc_store_count(b->store, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER) == 0) {
        swc_manager_backup_free(b);
        return swc_err_set(err, SWC_EPROTO,
                           "restore: %s holds no cluster object: not a backup "
                           "of a swarmc cluster",
                           path);
    }
    *out = b;
    return 0;
}

uint64_t swc_manager_backup_objects(const struct swc_manager_backup *b)
{
    return b->objects;
}

void swc_manager_backup_free(struct swc_manager_backup *b)
{
    if (b != NULL) {
        swc_store_destroy(b->store);
        swc_free(b);
    }
}

#define RESTORE_TXN_MAX (1024 * 1024)

struct restore {
    struct swc_manager *m;
    struct swc_manager_backup *b;
    swc_manager_restore_cb cb;
    void *data;
    uv_timer_t wait;
    int64_t deadline;
    size_t inflight;
    int result;
    char msg[SWC_ERRMSG_SIZE];
    bool proposing;
};

static void restore_free(uv_handle_t *h)
{
    struct restore *r = h->data;
    swc_manager_backup_free(r->b);
    swc_free(r);
}

static void restore_finish(struct restore *r)
{
    if (r->cb != NULL) {
        r->cb(r->data, r->result, r->result != 0 ? r->msg : NULL, r->b->objects);
    }
    uv_close((uv_handle_t *)&r->wait, restore_free);
}

static void restore_written(void *data, int result, const char *msg)
{
    struct restore *r = data;
    if (result != 0 && r->result == 0) {
        r->result = result;
        snprintf(r->msg, sizeof r->msg, "restore: write objects: %s",
                 msg != NULL && msg[0] ? msg : swc_strerror(result));
    }
    if (--r->inflight == 0 && !r->proposing) {
        restore_finish(r);
    }
}

static int restore_propose(struct restore *r, struct swc_store_txn *t)
{
    if (t->msg.n_actions == 0) {
        return 0;
    }
    int rv = swc_manager_write(r->m, t, restore_written, r);
    if (rv == 0) {
        r->inflight++;
    }
    swc_store_txn_free(t);
    if (rv == 0) {
        rv = swc_store_txn_init(t, ++r->m->proposal_seq, r->m->node_id);
    }
    return rv;
}

/* A restored node is another cluster's node: it shows as down until a node
 * joins again, and only this manager is in raft, so it is a worker now. */
static int restore_add_node(struct swc_store_txn *t, const struct swc_store_obj *o, int action)
{
    Swarmc__Node *n = (Swarmc__Node *)swc_store_decode(o, NULL);
    Swarmc__NodeStatus st = SWARMC__NODE_STATUS__INIT;
    if (n == NULL) {
        return SWC_ENOMEM;
    }
    Swarmc__NodeStatus *old_st = n->status;
    Swarmc__ManagerStatus *old_ms = n->manager_status;
    st.state = SWARMC__NODE_STATE__NODE_STATE_DOWN;
    st.message = "restored from a backup: not part of this cluster";
    st.addr = old_st != NULL ? old_st->addr : "";
    n->status = &st;
    n->manager_status = NULL;
    n->role = SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    if (n->spec != NULL) {
        n->spec->desired_role = SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    }
    int rv = action == SWARMC__STORE_ACTION_KIND__STORE_ACTION_CREATE
                 ? swc_store_txn_create(t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n->base)
                 : swc_store_txn_update(t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n->base, 0);
    n->status = old_st;
    n->manager_status = old_ms;
    swc_store_free_decoded(&n->base);
    return rv;
}

static void restore_seed(struct restore *r)
{
    struct swc_manager *m = r->m;
    struct swc_store_txn t;
    struct swc_store_iter it;
    struct swc_store_obj o, cur;
    int rv = swc_store_txn_init(&t, ++m->proposal_seq, m->node_id);
    r->proposing = true;
    for (int k = 1; rv == 0 && k < SWC_STORE_KIND_MAX; k++) {
        if (k == SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER) {
            continue; /* the new cluster keeps its own identity, CA and tokens */
        }
        swc_store_iter_kind(r->b->store, k, &it);
        while (rv == 0 && swc_store_iter_next(&it, &o)) {
            if (strcmp(o.id, m->node_id) == 0) {
                continue;
            }
            int action = swc_store_get(m->store, k, o.id, &cur) == 0
                             ? SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE
                             : SWARMC__STORE_ACTION_KIND__STORE_ACTION_CREATE;
            if (t.bytes + o.blob->len > RESTORE_TXN_MAX) {
                rv = restore_propose(r, &t);
            }
            if (rv != 0) {
                break;
            }
            rv = k == SWARMC__OBJECT_KIND__OBJECT_KIND_NODE
                     ? restore_add_node(&t, &o, action)
                     : swc_store_txn_add_encoded(&t, action, k, o.id, 0, o.blob->data, o.blob->len);
        }
    }
    if (rv == 0) {
        rv = restore_propose(r, &t);
    }
    swc_store_txn_free(&t);
    r->proposing = false;
    if (rv != 0 && r->result == 0) {
        r->result = rv;
        snprintf(r->msg, sizeof r->msg, "restore: propose objects: %s", swc_strerror(rv));
    }
    if (r->inflight == 0) {
        restore_finish(r);
    }
}

static void restore_wait(uv_timer_t *timer)
{
    struct restore *r = timer->data;
    if (r->m->closing) {
        r->result = SWC_ECANCELED;
        snprintf(r->msg, sizeof r->msg, "restore: the manager is stopping");
        restore_finish(r);
    } else if (r->m->leader && !r->m->need_cluster_object) {
        restore_seed(r);
    } else if (swc_now_mono() > r->deadline) {
        r->result = SWC_ETIMEDOUT;
        snprintf(r->msg, sizeof r->msg, "restore: this manager did not become the leader in 30 s");
        restore_finish(r);
    } else {
        uv_timer_start(&r->wait, restore_wait, 50, 0);
    }
}

int swc_manager_restore(struct swc_manager *m, struct swc_manager_backup *b,
                        swc_manager_restore_cb cb, void *data)
{
    struct restore *r = swc_calloc(1, sizeof *r);
    if (r == NULL) {
        swc_manager_backup_free(b);
        return SWC_ENOMEM;
    }
    r->m = m;
    r->b = b;
    r->cb = cb;
    r->data = data;
    r->deadline = swc_now_mono() + 30 * SWC_NS_PER_SEC;
    uv_timer_init(m->loop, &r->wait);
    r->wait.data = r;
    uv_timer_start(&r->wait, restore_wait, 0, 0);
    return 0;
}

int64_t swc_manager_turn_deadline(struct swc_manager *m, int64_t budget_ns)
{
    int64_t now = swc_now_mono();
    uint64_t turn = m->loop != NULL ? uv_now(m->loop) : 0;
    if (turn != m->turn_id || m->turn_start == 0) {
        m->turn_id = turn; /* uv_now moves once per loop turn (and after poll) */
        m->turn_start = now;
    }
    int64_t deadline = now + budget_ns;
    int64_t cap = m->turn_start + SWC_MANAGER_TURN_NS;
    if (cap < deadline) {
        deadline = cap;
    }
    if (deadline < now + SWC_MANAGER_TURN_MIN_NS) {
        deadline = now + SWC_MANAGER_TURN_MIN_NS;
    }
    return deadline;
}

bool swc_manager_node_removed(struct swc_manager *m, const char *node_id)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    bool removed = false;
    swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &it);
    if (node_id == NULL || !swc_store_iter_next(&it, &o)) {
        return false;
    }
    if (m->removed_none_version != 0 && m->removed_none_version == o.version) {
        return false; /* this Cluster version lists no removed node */
    }
    Swarmc__Cluster *c = (Swarmc__Cluster *)swc_store_decode(&o, NULL);
    for (size_t i = 0; c != NULL && i < c->n_removed_nodes; i++) {
        removed |= strcmp(c->removed_nodes[i], node_id) == 0;
    }
    if (c != NULL) {
        /* A registration storm asks once per node: decode each version once. */
        m->removed_none_version = c->n_removed_nodes == 0 ? o.version : 0;
        swc_store_free_decoded(&c->base);
    }
    return removed;
}

int swc_manager_node_info(struct swc_manager *m, const char *node_id, int *desired_role)
{
    if (swc_manager_node_removed(m, node_id)) {
        return SWC_EAUTH;
    }
    Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
        m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, node_id, NULL);
    if (n == NULL) {
        return SWC_ENOENT;
    }
    *desired_role = n->spec != NULL ? (int)n->spec->desired_role : (int)n->role;
    swc_store_free_decoded(&n->base);
    return 0;
}

/* The raft address of the manager at cluster address addr (port + 1). */
static void raft_addr_of(const char *addr, char *out, size_t size)
{
    char host[SWC_RAFT_ADDR_MAX];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    if (colon == NULL) {
        snprintf(out, size, "%s", addr);
        return;
    }
    *colon = '\0';
    snprintf(out, size, "%.200s:%d", host, atoi(colon + 1) + 1);
}

int swc_manager_member_by_addr(struct swc_manager *m, const char *addr, uint64_t *raft_id)
{
    struct swc_raft_member *members = NULL;
    size_t n = 0;
    char raddr[SWC_RAFT_ADDR_MAX + 16];
    int rv = SWC_ENOENT;
    raft_addr_of(addr, raddr, sizeof raddr);
    if (swc_raft_members(m->raft, &members, &n) != 0) {
        return SWC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(members[i].address, raddr) == 0) {
            *raft_id = members[i].id;
            rv = 0;
        }
    }
    swc_free(members);
    return rv;
}

struct member_removal {
    struct swc_manager *m;
    void (*cb)(void *data, int status, const char *msg);
    void *data;
};

static void member_removed(void *data, int status)
{
    struct member_removal *x = data;
    if (status != 0) {
        swc_warnf(MOD, "remove manager: %s: %s", swc_strerror(status), swc_raft_errmsg(x->m->raft));
    } else {
        swc_infof(MOD, "a manager left raft");
    }
    x->cb(x->data, status, status != 0 ? swc_raft_errmsg(x->m->raft) : NULL);
    swc_free(x);
}

int swc_manager_remove_member(struct swc_manager *m, uint64_t raft_id,
                              void (*cb)(void *data, int status, const char *msg), void *data,
                              struct swc_err *err)
{
    if (!m->leader) {
        return swc_err_set(err, SWC_ENOTLEADER, "this manager is not the leader");
    }
    struct member_removal *x = swc_malloc(sizeof *x);
    if (x == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "out of memory");
    }
    x->m = m;
    x->cb = cb;
    x->data = data;
    int rv = swc_raft_remove(m->raft, raft_id, member_removed, x);
    if (rv != 0) {
        swc_free(x);
        return swc_err_set(err, rv, "remove manager %llu from raft: %s",
                           (unsigned long long)raft_id, swc_raft_errmsg(m->raft));
    }
    return 0;
}
