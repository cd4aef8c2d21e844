/* Fleet mode (see fleet.h).
 *
 * The nodes live in one array allocated at start, so a late callback about
 * a node (a canceled describe, a join reply after its connection died) finds
 * valid memory as long as the fleet exists; the fleet is freed only after
 * every node's executor reported closed. A node moves NEW -> JOINING ->
 * STARTING (executor and worker created, adoption pass and describe under
 * way) -> UP (agent running); a failed join puts it back on the retry list.
 *
 * The join client mirrors the daemon's (daemon.c h_join_cluster/joined): a
 * client secure channel with no certificate that pins the CA by the digest
 * from the token, then "cluster.Join" {token, public key}; the answer's CA
 * key must match the digest. Unlike the daemon, a few connections are
 * shared by all the joins (many calls in flight on each), which saves ten
 * thousand handshakes; they are closed once every node has joined.
 *
 * One repeating timer (TICK_MS) drives the pacing: it refills the join
 * window, reopens dead join connections, and counts the nodes that have had
 * a session for the "all up" time. */
#include "worker/fleet.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "api/control.pb-c.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "net/cert.h"
#include "net/rpc.h"
#include "worker/agent.h"
#include "worker/sim.h"
#include "worker/worker.h"

#define MOD             "fleet"
#define TICK_MS         200
#define JOIN_TIMEOUT_MS 30000
#define JOIN_CONNS_MAX  32
#define MANAGERS_MAX    16

enum node_state { N_NEW = 0, N_JOINING, N_STARTING, N_UP, N_CLOSING, N_CLOSED };

struct fleet_node {
    struct swc_fleet *f;
    struct fleet_node *next_retry;
    struct swc_exec *exec;
    struct swc_worker *worker;
    struct swc_agent *agent;
    uint32_t index;
    uint8_t state;
    bool ever_connected;
    bool has_key;
    char node_id[SWC_ID_LEN + 1];
    struct swc_identity id;
};

struct join_conn {
    struct swc_fleet *f;
    struct swc_rpc_conn *conn;
    bool dead;
};

struct swc_fleet {
    uv_loop_t *loop;
    struct swc_fleet_config cfg;
    char *token;
    char *managers[MANAGERS_MAX];
    size_t nmanagers;
    char prefix[32];
    uint8_t digest[32];
    uint8_t ca_pk[SWC_SIGN_PK_LEN];
    char cluster_id[SWC_CERT_ID_MAX + 1];
    bool have_ca;

    struct fleet_node *nodes;
    size_t nnodes;
    size_t next_new; /* next node never tried */
    struct fleet_node *retry_head, *retry_tail;
    size_t inflight;
    size_t joined;
    size_t join_errors;
    size_t ever_up;
    int64_t started_ns;
    int64_t all_up_ns;
    char error[256];

    struct join_conn jc[JOIN_CONNS_MAX];
    unsigned njc;
    unsigned next_jc;
    bool joins_closed;

    uv_timer_t tick;
    bool closing;
    size_t open_nodes; /* nodes whose teardown has not finished */
    bool tick_closed;
    void (*close_cb)(void *data);
    void *close_data;
};

static void pump_joins(struct swc_fleet *f);
static void fleet_maybe_free(struct swc_fleet *f);

/* ---- running a node ---------------------------------------------------- */

static void status_to_agent(void *data, const char *task_id, const Swarmc__TaskStatus *status)
{
    struct fleet_node *n = data;
    if (n->agent != NULL) {
        swc_agent_report(n->agent, task_id, status);
    }
}

static void node_secure(const struct fleet_node *n, struct swc_secchan_config *c)
{
    const struct swc_fleet *f = n->f;
    memset(c, 0, sizeof *c);
    c->is_client = true;
    c->self = &n->id;
    memcpy(c->ca_public_key, f->ca_pk, sizeof c->ca_public_key);
    c->required_peer_role = SWC_ROLE_MANAGER;
    snprintf(c->cluster_id, sizeof c->cluster_id, "%s", f->cluster_id);
}

static void node_described(void *data, int code, const char *errmsg,
                           const Swarmc__NodeDescription *desc)
{
    struct fleet_node *n = data;
    struct swc_fleet *f = n->f;
    struct swc_err err;
    if (n->state != N_STARTING) {
        return; /* closing: the executor canceled the describe */
    }
    if (code != 0) {
        swc_warnf(MOD, "node %s: describe: %s", n->node_id, errmsg ? errmsg : swc_strerror(code));
        desc = NULL;
    }
    struct swc_secchan_config sc;
    node_secure(n, &sc);
    struct swc_agent_config ac = {0};
    ac.loop = f->loop;
    ac.worker = n->worker;
    ac.managers = (const char *const *)f->managers;
    ac.nmanagers = f->nmanagers;
    ac.secure = &sc;
    ac.node_id = n->node_id;
    ac.desc = desc;
    if (swc_agent_init(&n->agent, &ac, &err) != 0) {
        swc_errorf(MOD, "node %s: %s", n->node_id, swc_err_msg(&err));
        n->agent = NULL;
        return;
    }
    n->state = N_UP;
    swc_agent_start(n->agent);
}

static void node_worker_started(void *data, int code)
{
    struct fleet_node *n = data;
    if (code != 0) {
        swc_warnf(MOD, "node %s: worker start-up: %s", n->node_id, swc_strerror(code));
    }
    if (n->state == N_STARTING && swc_worker_describe(n->worker, node_described, n) != 0) {
        node_described(n, SWC_EINTERNAL, "describe refused", NULL);
    }
}

static int node_start(struct fleet_node *n)
{
    struct swc_fleet *f = n->f;
    struct swc_err err;
    char host[64];
    snprintf(host, sizeof host, "%s-%05u", f->prefix, (unsigned)n->index);
    struct swc_sim_config sim = {0};
    sim.loop = f->loop;
    sim.node_id = n->node_id;
    sim.hostname = host;
    sim.start_delay_ms = f->cfg.start_delay_ms;
    sim.run_time_ms = f->cfg.run_time_ms;
    sim.failure_rate = f->cfg.failure_rate;
    sim.seed = (f->cfg.seed ? f->cfg.seed : 1) + n->index;
    int rv = swc_sim_init(&n->exec, &sim, &err);
    if (rv != 0) {
        swc_errorf(MOD, "node %s: %s", n->node_id, swc_err_msg(&err));
        return rv;
    }
    struct swc_worker_config wc = {0};
    wc.loop = f->loop;
    wc.state_dir = NULL; /* in memory */
    wc.node_id = n->node_id;
    wc.exec = n->exec;
    wc.status_cb = status_to_agent;
    wc.data = n;
    if ((rv = swc_worker_init(&n->worker, &wc, &err)) != 0) {
        swc_errorf(MOD, "node %s: %s", n->node_id, swc_err_msg(&err));
        n->worker = NULL;
        return rv; /* the executor is closed with the node */
    }
    n->state = N_STARTING;
    rv = swc_worker_start(n->worker, node_worker_started, n);
    if (rv != 0) {
        swc_errorf(MOD, "node %s: worker start: %s", n->node_id, swc_strerror(rv));
    }
    return 0;
}

/* ---- joining ----------------------------------------------------------------- */

static void retry_later(struct swc_fleet *f, struct fleet_node *n)
{
    n->state = N_NEW;
    n->next_retry = NULL;
    if (f->retry_tail != NULL) {
        f->retry_tail->next_retry = n;
    } else {
        f->retry_head = n;
    }
    f->retry_tail = n;
}

static bool same_digest(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    for (int i = 0; i < 32; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

static void join_failed_for_good(struct swc_fleet *f, struct fleet_node *n, const char *msg)
{
    if (f->error[0] == '\0') {
        snprintf(f->error, sizeof f->error, "%s", msg);
        swc_errorf(MOD, "join: %s", msg);
    }
    f->join_errors++;
    n->state = N_CLOSED;
}

/* Apply a JoinResponse to n: start it, retry later or give up. */
static void join_apply(struct swc_fleet *f, struct fleet_node *n, const Swarmc__JoinResponse *r)
{
    uint8_t digest[32];
    if (r->error != NULL && r->error->code == SWC_EBUSY) {
        retry_later(f, n);
    } else if (r->error != NULL && r->error->code != 0) {
        join_failed_for_good(f, n, r->error->message ? r->error->message : "refused");
    } else if (r->ca_public_key.len != SWC_SIGN_PK_LEN || r->cert.len == 0 ||
               r->cert.len > SWC_CERT_MAX_LEN || r->node_id == NULL ||
               strlen(r->node_id) > SWC_ID_LEN || r->cluster_id == NULL ||
               strlen(r->cluster_id) > SWC_CERT_ID_MAX) {
        join_failed_for_good(f, n, "malformed answer from the manager");
    } else if ((swc_ca_digest(r->ca_public_key.data, digest), !same_digest(digest, f->digest))) {
        join_failed_for_good(f, n, "the manager's CA does not match the token");
    } else if (r->role != SWARMC__NODE_ROLE__NODE_ROLE_WORKER) {
        join_failed_for_good(f, n, "a fleet joins with the worker token, not the manager token");
    } else {
        if (!f->have_ca) {
            memcpy(f->ca_pk, r->ca_public_key.data, SWC_SIGN_PK_LEN);
            snprintf(f->cluster_id, sizeof f->cluster_id, "%s", r->cluster_id);
            f->have_ca = true;
        }
        memcpy(n->id.cert, r->cert.data, r->cert.len);
        n->id.cert_len = r->cert.len;
        snprintf(n->node_id, sizeof n->node_id, "%s", r->node_id);
        f->joined++;
        if (node_start(n) != 0) {
            n->state = N_CLOSING; /* torn down with the fleet */
        }
    }
}

static void join_reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                          const uint8_t *payload, size_t len, void *data)
{
    struct fleet_node *n = data;
    struct swc_fleet *f = n->f;
    (void)call;
    f->inflight--;
    if (f->closing) {
        n->state = N_CLOSED;
        fleet_maybe_free(f);
        return;
    }
    if (status != 0) {
        swc_debugf(MOD, "join of node %u: %s", (unsigned)n->index,
                   errmsg && errmsg[0] ? errmsg : swc_strerror(status));
        if (status == SWC_EAUTH) {
            join_failed_for_good(f, n, errmsg && errmsg[0] ? errmsg : "authentication failed");
        } else {
            retry_later(f, n);
        }
        return;
    }
    Swarmc__JoinResponse *r = swarmc__join_response__unpack(&swc_pb_allocator, len, payload);
    if (r == NULL) {
        join_failed_for_good(f, n, "undecodable answer from the manager");
    } else {
        join_apply(f, n, r);
        swarmc__join_response__free_unpacked(r, &swc_pb_allocator);
    }
    pump_joins(f);
}

static void jc_down_cb(struct swc_rpc_conn *conn, int status, void *data)
{
    struct join_conn *j = data;
    if (j->conn == conn) {
        swc_debugf(MOD, "join connection down: %s", swc_strerror(status));
        j->dead = true;
    }
}

static void jc_connect_cb(struct swc_rpc_conn *conn, int status, void *data)
{
    if (status != 0) {
        jc_down_cb(conn, status, data);
    }
}

static int jc_open(struct swc_fleet *f, unsigned i)
{
    struct join_conn *j = &f->jc[i];
    struct swc_secchan_config sc;
    memset(&sc, 0, sizeof sc);
    sc.is_client = true;
    sc.self = NULL; /* no certificate yet: anonymous */
    sc.pin_ca_by_digest = true;
    memcpy(sc.ca_digest, f->digest, sizeof sc.ca_digest);
    sc.required_peer_role = SWC_ROLE_MANAGER;
    struct swc_rpc_conn_opts co = {0};
    co.secure = &sc;
    co.on_connect = jc_connect_cb;
    co.on_close = jc_down_cb;
    co.data = j;
    j->f = f;
    j->dead = false;
    int rv = swc_rpc_connect(f->loop, f->managers[i % f->nmanagers], &co, &j->conn);
    if (rv != 0) {
        j->conn = NULL;
        j->dead = true;
    }
    return rv;
}

static void jc_close_all(struct swc_fleet *f)
{
    for (unsigned i = 0; i < f->njc; i++) {
        if (f->jc[i].conn != NULL) {
            swc_rpc_conn_close(f->jc[i].conn, NULL, NULL);
            f->jc[i].conn = NULL;
        }
    }
    f->joins_closed = true;
}

static struct fleet_node *next_to_join(struct swc_fleet *f)
{
    if (f->retry_head != NULL) {
        struct fleet_node *n = f->retry_head;
        f->retry_head = n->next_retry;
        if (f->retry_head == NULL) {
            f->retry_tail = NULL;
        }
        n->next_retry = NULL;
        return n;
    }
    if (f->next_new < f->nnodes) {
        return &f->nodes[f->next_new++];
    }
    return NULL;
}

static void unget(struct swc_fleet *f, struct fleet_node *n)
{
    n->next_retry = f->retry_head;
    f->retry_head = n;
    if (f->retry_tail == NULL) {
        f->retry_tail = n;
    }
}

/* Fill the join window. Retries wait for the next tick, so a manager
 * refusing joins is not hammered; replies only pull in new nodes. */
static void send_joins(struct swc_fleet *f, bool from_tick)
{
    unsigned window = f->cfg.joins_in_flight ? f->cfg.joins_in_flight : 256;
    while (f->inflight < window) {
        struct fleet_node *n = NULL;
        if (from_tick) {
            n = next_to_join(f);
        } else if (f->next_new < f->nnodes) {
            n = &f->nodes[f->next_new++];
        }
        if (n == NULL) {
            return;
        }
        struct join_conn *j = NULL;
        for (unsigned k = 0; k < f->njc; k++) {
            struct join_conn *c = &f->jc[(f->next_jc + k) % f->njc];
            if (!c->dead && c->conn != NULL) {
                j = c;
                f->next_jc = (f->next_jc + k + 1) % f->njc;
                break;
            }
        }
        if (j == NULL) {
            unget(f, n);
            return;
        }
        if (!n->has_key) {
            swc_keypair_new(n->id.public_key, n->id.secret_key);
            n->has_key = true;
        }
        Swarmc__JoinRequest jr = SWARMC__JOIN_REQUEST__INIT;
        jr.token = f->token;
        jr.public_key.data = n->id.public_key;
        jr.public_key.len = SWC_SIGN_PK_LEN;
        jr.advertise_addr = "";
        uint8_t buf[512];
        size_t len = swarmc__join_request__get_packed_size(&jr);
        if (len > sizeof buf) {
            join_failed_for_good(f, n, "join token too long");
            continue;
        }
        swarmc__join_request__pack(&jr, buf);
        if (swc_rpc_call(j->conn, "cluster.Join", buf, len, JOIN_TIMEOUT_MS, join_reply_cb, n,
                         NULL) != 0) {
            j->dead = true;
            unget(f, n);
            continue;
        }
        n->state = N_JOINING;
        f->inflight++;
    }
}

static void pump_joins(struct swc_fleet *f)
{
    if (!f->closing && !f->joins_closed) {
        send_joins(f, false);
    }
}

static void tick_cb(uv_timer_t *t)
{
    struct swc_fleet *f = t->data;
    if (f->closing) {
        return;
    }
    if (!f->joins_closed) {
        for (unsigned i = 0; i < f->njc; i++) {
            struct join_conn *j = &f->jc[i];
            if (j->dead) {
                if (j->conn != NULL) {
                    swc_rpc_conn_close(j->conn, NULL, NULL);
                    j->conn = NULL;
                }
                jc_open(f, i);
            }
        }
        send_joins(f, true);
        if (f->inflight == 0 && f->retry_head == NULL && f->next_new >= f->nnodes) {
            swc_infof(MOD, "%zu nodes joined (%zu refused)", f->joined, f->join_errors);
            jc_close_all(f);
        }
    }
    if (f->all_up_ns == 0) {
        for (size_t i = 0; i < f->nnodes; i++) {
            struct fleet_node *n = &f->nodes[i];
            if (!n->ever_connected && n->agent != NULL && swc_agent_connected(n->agent)) {
                n->ever_connected = true;
                f->ever_up++;
            }
        }
        if (f->ever_up == f->nnodes) {
            f->all_up_ns = swc_now_mono() - f->started_ns;
        }
    }
}

/* ---- lifecycle --------------------------------------------------------------- */

int swc_fleet_start(uv_loop_t *loop, const struct swc_fleet_config *cfg, struct swc_fleet **out,
                    struct swc_err *err)
{
    uint8_t hash[32];
    if (cfg->nmanagers == 0 || cfg->nodes == 0 || cfg->token == NULL) {
        return swc_err_set(err, SWC_EINVAL, "fleet: managers, a join token and nodes are needed");
    }
    if (cfg->nodes > UINT32_MAX) {
        return swc_err_set(err, SWC_EINVAL, "fleet: too many nodes");
    }
    struct swc_fleet *f = swc_calloc(1, sizeof *f);
    if (f == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "fleet: out of memory");
    }
    if (swc_token_parse_err(cfg->token, f->digest, hash, err) != 0) {
        swc_free(f);
        return SWC_EINVAL;
    }
    f->loop = loop;
    f->cfg = *cfg;
    f->cfg.managers = NULL;
    snprintf(f->prefix, sizeof f->prefix, "%s",
             cfg->hostname_prefix ? cfg->hostname_prefix : "fleet");
    f->token = swc_strdup(cfg->token);
    f->nodes = swc_calloc(cfg->nodes, sizeof *f->nodes);
    if (f->token == NULL || f->nodes == NULL) {
        goto nomem;
    }
    for (size_t i = 0; i < cfg->nmanagers && f->nmanagers < MANAGERS_MAX; i++) {
        char addr[300];
        snprintf(addr, sizeof addr, "%s%s", cfg->managers[i],
                 strchr(cfg->managers[i], ':') ? "" : ":4242");
        if ((f->managers[f->nmanagers] = swc_strdup(addr)) == NULL) {
            goto nomem;
        }
        f->nmanagers++;
    }
    f->nnodes = cfg->nodes;
    for (size_t i = 0; i < f->nnodes; i++) {
        f->nodes[i].f = f;
        f->nodes[i].index = (uint32_t)i;
    }
    f->njc = cfg->join_conns ? cfg->join_conns : 4;
    if (f->njc > JOIN_CONNS_MAX) {
        f->njc = JOIN_CONNS_MAX;
    }
    f->started_ns = swc_now_mono();
    for (unsigned i = 0; i < f->njc; i++) {
        jc_open(f, i);
    }
    uv_timer_init(loop, &f->tick);
    f->tick.data = f;
    uv_timer_start(&f->tick, tick_cb, TICK_MS, TICK_MS);
    swc_infof(MOD, "starting %zu simulated nodes against %s%s", f->nnodes, f->managers[0],
              f->nmanagers > 1 ? " and others" : "");
    send_joins(f, true);
    *out = f;
    return 0;
nomem:
    for (size_t i = 0; i < f->nmanagers; i++) {
        swc_free(f->managers[i]);
    }
    swc_free(f->token);
    swc_free(f->nodes);
    swc_free(f);
    return swc_err_set(err, SWC_ENOMEM, "fleet: out of memory");
}

void swc_fleet_progress(const struct swc_fleet *f, struct swc_fleet_stats *out)
{
    memset(out, 0, sizeof *out);
    out->nodes = f->nnodes;
    out->joined = f->joined;
    out->join_errors = f->join_errors;
    out->all_up_ns = f->all_up_ns;
}

void swc_fleet_stats(const struct swc_fleet *f, struct swc_fleet_stats *out)
{
    swc_fleet_progress(f, out);
    for (size_t i = 0; i < f->nnodes; i++) {
        const struct fleet_node *n = &f->nodes[i];
        if (n->agent != NULL && swc_agent_connected(n->agent)) {
            out->connected++;
        }
        if (n->agent != NULL) {
            out->pending += swc_agent_pending(n->agent);
        }
        if (n->worker != NULL) {
            out->tasks += swc_worker_ntasks(n->worker);
            out->running += swc_worker_nrunning(n->worker);
        }
    }
}

const char *swc_fleet_error(const struct swc_fleet *f)
{
    return f->error;
}

static void fleet_maybe_free(struct swc_fleet *f)
{
    if (f->open_nodes != 0 || !f->tick_closed || f->inflight != 0) {
        return;
    }
    void (*cb)(void *) = f->close_cb;
    void *data = f->close_data;
    for (size_t i = 0; i < f->nmanagers; i++) {
        swc_free(f->managers[i]);
    }
    for (size_t i = 0; i < f->nnodes; i++) {
        sodium_memzero(f->nodes[i].id.secret_key, sizeof f->nodes[i].id.secret_key);
    }
    swc_free(f->nodes);
    swc_free(f->token);
    swc_free(f);
    if (cb != NULL) {
        cb(data);
    }
}

static void node_exec_closed(struct swc_exec *ex)
{
    struct fleet_node *n = ex->data;
    struct swc_fleet *f = n->f;
    n->exec = NULL;
    n->state = N_CLOSED;
    f->open_nodes--;
    fleet_maybe_free(f);
}

static void node_close_exec(struct fleet_node *n)
{
    n->exec->data = n;
    n->exec->ops->close(n->exec, node_exec_closed);
}

static void node_worker_closed(void *data)
{
    struct fleet_node *n = data;
    n->worker = NULL;
    node_close_exec(n);
}

static void node_agent_closed(void *data)
{
    struct fleet_node *n = data;
    n->agent = NULL;
    swc_worker_close(n->worker, node_worker_closed, n);
}

static void tick_closed(uv_handle_t *h)
{
    struct swc_fleet *f = h->data;
    f->tick_closed = true;
    fleet_maybe_free(f);
}

void swc_fleet_close(struct swc_fleet *f, void (*cb)(void *data), void *data)
{
    f->closing = true;
    f->close_cb = cb;
    f->close_data = data;
    if (!f->joins_closed) {
        jc_close_all(f); /* joins in flight complete with SWC_ECANCELED */
    }
    for (size_t i = 0; i < f->nnodes; i++) {
        struct fleet_node *n = &f->nodes[i];
        if (n->exec == NULL) {
            continue;
        }
        n->state = N_CLOSING;
        f->open_nodes++;
        if (n->agent != NULL) {
            swc_agent_close(n->agent, node_agent_closed, n);
        } else if (n->worker != NULL) {
            swc_worker_close(n->worker, node_worker_closed, n);
        } else {
            node_close_exec(n);
        }
    }
    uv_close((uv_handle_t *)&f->tick, tick_closed);
}
