/* The node daemon (see daemon.h).
 *
 * State dir layout: node.key (the node's Ed25519 identity, 0600),
 * cluster.json (cluster id, node id, role, addresses, CA public key, the
 * node certificate, and on managers the CA secret key, data key and join
 * tokens, 0600), raft/ (managers), worker.db (the worker's task DB), and
 * managers (the agent's list of known managers).
 *
 * Start-up: open the control socket; if the node is a member, start the
 * cluster port, the manager (on managers) and the worker with its agent;
 * otherwise wait for `swarmc init` (or do it at once with --dev). The
 * cluster port runs the secure channel: every node presents a certificate
 * signed by the cluster CA. Raft has its own listener on the cluster port
 * + 1 until its transport is relayed through the secure channel (see
 * docs/design.md).
 *
 * SIGTERM/SIGINT: the agent, worker and executor close (containers keep
 * running and are adopted on the next start), then the servers, then the
 * manager, then the loop ends. */
#define _GNU_SOURCE /* nftw */
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/control.pb-c.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "manager/manager.h"
#include "net/cert.h"
#include "net/rpc.h"
#include "worker/agent.h"
#include "worker/docker.h"
#include "worker/sim.h"
#include "worker/worker.h"

#define MOD "daemon"

struct daemon {
    uv_loop_t *loop;
    struct swc_daemon_opts opts;
    char state_dir[1024];
    char socket_path[1100];
    char listen_addr[256];
    char advertise_addr[256];
    struct swc_identity identity;
    /* cluster.json */
    bool member;
    char node_id[SWC_ID_LEN + 1];
    char cluster_id[SWC_ID_LEN + 1];
    int role;
    uint64_t raft_id;
    uint8_t ca_pk[SWC_SIGN_PK_LEN];
    uint8_t ca_sk[SWC_SIGN_SK_LEN];
    bool has_ca_sk;
    uint8_t data_key[SWC_DATA_KEY_LEN];
    char worker_token[SWC_TOKEN_MAX];
    char manager_token[SWC_TOKEN_MAX];
    char join_manager[256]; /* a worker's first manager (from join) */

    struct swc_rpc_server *control_srv;
    struct swc_rpc_server *cluster_srv;
    struct swc_manager *manager;
    struct swc_exec *exec;
    struct swc_worker *worker;
    struct swc_agent *agent;
    uv_signal_t sigterm, sigint;
    int exit_code;
    bool stopping;
    bool leaving;                  /* `swarmc leave` in progress */
    struct swc_rpc_req *leave_req; /* answered once the node has left */
    size_t leave_removing;         /* containers still being removed */
    bool leave_cleaned;            /* the containers were listed for removal */
    bool switching;                /* restarting the cluster parts in a new role */
    /* cluster.Renew: certificate renewal, role changes, removal */
    uv_timer_t renew_timer;
    bool renew_timer_init;
    bool renew_inflight;
    int renew_frac; /* renew at this % of the certificate's life (0: not drawn) */
    struct swc_rpc_conn *renew_conn;
    char renew_conn_addr[256];
    char renew_addr[256];
};

/* ---- small helpers ---------------------------------------------------------- */

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_decode(const char *s, uint8_t *out, size_t n)
{
    if (s == NULL || strlen(s) != 2 * n) {
        return SWC_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            return SWC_EINVAL;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return SWC_EIO;
    }
    ssize_t n = write(fd, data, len);
    int rv = (n == (ssize_t)len && fsync(fd) == 0) ? 0 : SWC_EIO;
    close(fd);
    if (rv == 0 && rename(tmp, path) != 0) {
        rv = SWC_EIO;
    }
    return rv;
}

/* ---- identity and cluster state ---------------------------------------------- */

static int load_or_create_key(struct daemon *d)
{
    char path[1100];
    uint8_t buf[SWC_SIGN_PK_LEN + SWC_SIGN_SK_LEN];
    snprintf(path, sizeof path, "%s/node.key", d->state_dir);
    FILE *f = fopen(path, "rb");
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (n != sizeof buf) {
            swc_errorf(MOD, "%s: truncated identity key (%zu bytes)", path, n);
            return SWC_EPROTO;
        }
    } else {
        swc_keypair_new(buf, buf + SWC_SIGN_PK_LEN);
        if (write_file(path, buf, sizeof buf) != 0) {
            swc_errorf(MOD, "%s: cannot write: %s", path, strerror(errno));
            return SWC_EIO;
        }
    }
    memcpy(d->identity.public_key, buf, SWC_SIGN_PK_LEN);
    memcpy(d->identity.secret_key, buf + SWC_SIGN_PK_LEN, SWC_SIGN_SK_LEN);
    return 0;
}

static int save_cluster(struct daemon *d)
{
    char path[1100], hex[512];
    json_t *j = json_object();
    json_object_set_new(j, "node_id", json_string(d->node_id));
    json_object_set_new(j, "cluster_id", json_string(d->cluster_id));
    json_object_set_new(j, "role", json_string(d->role == SWC_ROLE_MANAGER ? "manager" : "worker"));
    json_object_set_new(j, "raft_id", json_integer((json_int_t)d->raft_id));
    json_object_set_new(j, "listen_addr", json_string(d->listen_addr));
    json_object_set_new(j, "advertise_addr", json_string(d->advertise_addr));
    json_object_set_new(j, "manager_addr", json_string(d->join_manager));
    hex_encode(d->ca_pk, sizeof d->ca_pk, hex);
    json_object_set_new(j, "ca_public_key", json_string(hex));
    char *certhex = swc_malloc(2 * d->identity.cert_len + 1);
    if (certhex != NULL) {
        hex_encode(d->identity.cert, d->identity.cert_len, certhex);
        json_object_set_new(j, "cert", json_string(certhex));
        swc_free(certhex);
    }
    if (d->has_ca_sk) {
        hex_encode(d->ca_sk, sizeof d->ca_sk, hex);
        json_object_set_new(j, "ca_secret_key", json_string(hex));
        hex_encode(d->data_key, sizeof d->data_key, hex);
        json_object_set_new(j, "data_key", json_string(hex));
        json_object_set_new(j, "worker_token", json_string(d->worker_token));
        json_object_set_new(j, "manager_token", json_string(d->manager_token));
    }
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    if (text == NULL) {
        return SWC_ENOMEM;
    }
    snprintf(path, sizeof path, "%s/cluster.json", d->state_dir);
    int rv = write_file(path, text, strlen(text));
    free(text);
    return rv;
}

static int load_cluster(struct daemon *d)
{
    char path[1100];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/cluster.json", d->state_dir);
    if (access(path, F_OK) != 0) {
        return SWC_ENOENT;
    }
    json_t *j = json_load_file(path, 0, &jerr);
    if (j == NULL) {
        swc_errorf(MOD, "%s: line %d: %s", path, jerr.line, jerr.text);
        return SWC_EPROTO;
    }
    int rv = SWC_EPROTO;
    const char *node_id = json_string_value(json_object_get(j, "node_id"));
    const char *cluster_id = json_string_value(json_object_get(j, "cluster_id"));
    const char *role = json_string_value(json_object_get(j, "role"));
    const char *cert = json_string_value(json_object_get(j, "cert"));
    if (node_id == NULL || cluster_id == NULL || role == NULL || cert == NULL ||
        hex_decode(json_string_value(json_object_get(j, "ca_public_key")), d->ca_pk,
                   sizeof d->ca_pk) != 0 ||
        strlen(cert) / 2 > SWC_CERT_MAX_LEN ||
        hex_decode(cert, d->identity.cert, strlen(cert) / 2) != 0) {
        swc_errorf(
            MOD, "%s: missing or malformed field (node_id, cluster_id, role, cert, ca_public_key)",
            path);
        goto out;
    }
    d->identity.cert_len = strlen(cert) / 2;
    snprintf(d->node_id, sizeof d->node_id, "%s", node_id);
    snprintf(d->cluster_id, sizeof d->cluster_id, "%s", cluster_id);
    d->role = strcmp(role, "manager") == 0 ? SWC_ROLE_MANAGER : SWC_ROLE_WORKER;
    d->raft_id = (uint64_t)json_integer_value(json_object_get(j, "raft_id"));
    const char *s = json_string_value(json_object_get(j, "advertise_addr"));
    if (s != NULL && d->opts.advertise_addr == NULL) {
        snprintf(d->advertise_addr, sizeof d->advertise_addr, "%s", s);
    }
    s = json_string_value(json_object_get(j, "manager_addr"));
    if (s != NULL) {
        snprintf(d->join_manager, sizeof d->join_manager, "%s", s);
    }
    s = json_string_value(json_object_get(j, "listen_addr"));
    if (s != NULL && d->opts.listen_addr == NULL) {
        snprintf(d->listen_addr, sizeof d->listen_addr, "%s", s);
    }
    if (hex_decode(json_string_value(json_object_get(j, "ca_secret_key")), d->ca_sk,
                   sizeof d->ca_sk) == 0 &&
        hex_decode(json_string_value(json_object_get(j, "data_key")), d->data_key,
                   sizeof d->data_key) == 0) {
        d->has_ca_sk = true;
        snprintf(d->worker_token, sizeof d->worker_token, "%s",
                 json_string_value(json_object_get(j, "worker_token")) ?: "");
        snprintf(d->manager_token, sizeof d->manager_token, "%s",
                 json_string_value(json_object_get(j, "manager_token")) ?: "");
    }
    d->member = true;
    rv = 0;
out:
    json_decref(j);
    return rv;
}

/* ---- the running node ------------------------------------------------------------ */

static void status_to_agent(void *data, const char *task_id, const Swarmc__TaskStatus *status)
{
    struct daemon *d = data;
    if (d->agent != NULL) {
        swc_agent_report(d->agent, task_id, status);
    }
}

static void secure_config(struct daemon *d, struct swc_secchan_config *c, bool client)
{
    memset(c, 0, sizeof *c);
    c->is_client = client;
    c->self = &d->identity;
    memcpy(c->ca_public_key, d->ca_pk, sizeof c->ca_public_key);
    c->allow_anonymous_client = !client;
    c->required_peer_role = client ? SWC_ROLE_MANAGER : -1;
    snprintf(c->cluster_id, sizeof c->cluster_id, "%s", d->cluster_id);
}

static void described(void *data, int code, const char *errmsg, const Swarmc__NodeDescription *desc)
{
    struct daemon *d = data;
    struct swc_err err;
    if (d->stopping) {
        return;
    }
    if (code != 0) {
        swc_warnf(MOD, "describe node: %s (going on without a description)",
                  errmsg ? errmsg : swc_strerror(code));
        desc = NULL;
    }
    struct swc_secchan_config sc;
    secure_config(d, &sc, true);
    const char *mgrs[1] = {d->role == SWC_ROLE_MANAGER ? d->advertise_addr : d->join_manager};
    struct swc_agent_config ac = {0};
    ac.loop = d->loop;
    ac.worker = d->worker;
    ac.state_dir = d->state_dir;
    ac.managers = mgrs;
    ac.nmanagers = mgrs[0][0] != '\0' ? 1 : 0; /* else the persisted list */
    ac.secure = &sc;
    ac.node_id = d->node_id;
    ac.addr = d->advertise_addr;
    ac.desc = desc;
    if (swc_agent_init(&d->agent, &ac, &err) != 0) {
        swc_errorf(MOD, "%s", swc_err_msg(&err));
        return;
    }
    swc_agent_start(d->agent);
}

static void worker_started(void *data, int code)
{
    struct daemon *d = data;
    if (code != 0) {
        swc_warnf(MOD, "worker start-up: %s", swc_strerror(code));
    }
    if (!d->stopping) {
        swc_worker_describe(d->worker, described, d);
    }
}

/* ---- worker.Logs: a manager asks for the output of tasks running here ------------- */

/* One packed message waiting for the connection to drain. */
struct pending_msg {
    struct pending_msg *next;
    size_t len;
    uint8_t data[];
};

/* A queue of packed stream messages sent in order, waiting on backpressure. */
struct msg_queue {
    struct pending_msg *head, *tail;
    bool waiting; /* on_writable registered */
};

static void queue_clear(struct msg_queue *q)
{
    while (q->head != NULL) {
        struct pending_msg *p = q->head;
        q->head = p->next;
        swc_free(p);
    }
    q->tail = NULL;
}

static void queue_flush(struct swc_rpc_req *req, struct msg_queue *q);

static void queue_writable(struct swc_rpc_req *req, int status, void *data)
{
    struct msg_queue *q = data;
    q->waiting = false;
    if (status == 0) {
        queue_flush(req, q);
    }
}

static void queue_flush(struct swc_rpc_req *req, struct msg_queue *q)
{
    while (q->head != NULL) {
        int rv = swc_rpc_send(req, q->head->data, q->head->len);
        if (rv == SWC_EBUSY) {
            if (!q->waiting) {
                q->waiting = true;
                swc_rpc_req_on_writable(req, queue_writable, q);
            }
            return;
        }
        struct pending_msg *p = q->head;
        q->head = p->next;
        swc_free(p);
        if (rv != 0) {
            queue_clear(q);
            return;
        }
    }
    q->tail = NULL;
}

/* Send msg on the stream req, or queue it behind earlier ones. */
static void queue_send(struct swc_rpc_req *req, struct msg_queue *q, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    struct pending_msg *p = swc_malloc(sizeof *p + len + 1);
    if (p == NULL) {
        return;
    }
    protobuf_c_message_pack(msg, p->data);
    p->len = len;
    p->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = p;
    } else {
        q->head = p;
    }
    q->tail = p;
    queue_flush(req, q);
}

enum { WL_FIRST, WL_BASELINE, WL_POLL };

struct wlogs_task {
    char id[SWC_ID_LEN + 1];
    int phase;
    uint64_t sent; /* bytes of the full log already sent (follow) */
};

struct wlogs {
    struct daemon *d;
    struct swc_rpc_req *req;
    struct wlogs_task *tasks;
    size_t n, cur;
    bool follow;
    int tail;
    uint64_t pos; /* bytes seen in the fetch in flight */
    bool inflight, canceled, finished;
    uv_timer_t timer;
    struct msg_queue q;
};

#define WLOGS_POLL_MS 1000

static void wlogs_free(uv_handle_t *h)
{
    struct wlogs *w = h->data;
    queue_clear(&w->q);
    swc_free(w->tasks);
    swc_free(w);
}

static void wlogs_finish(struct wlogs *w, int status, const char *msg)
{
    if (w->finished) {
        return;
    }
    w->finished = true;
    swc_rpc_end(w->req, w->canceled ? SWC_ECANCELED : status, msg);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, wlogs_free);
}

static void wlogs_chunk(void *data, int stream, const char *buf, size_t len)
{
    struct wlogs *w = data;
    struct wlogs_task *t = &w->tasks[w->cur];
    uint64_t start = w->pos;
    w->pos += len;
    if (w->canceled || t->phase == WL_BASELINE) {
        return;
    }
    size_t skip = 0;
    if (t->phase == WL_POLL) {
        if (w->pos <= t->sent) {
            return;
        }
        skip = t->sent > start ? (size_t)(t->sent - start) : 0;
    }
    Swarmc__LogMessage m = SWARMC__LOG_MESSAGE__INIT;
    m.task_id = t->id;
    m.node_id = w->d->node_id;
    m.stream = (uint32_t)stream;
    m.data.data = (uint8_t *)buf + skip;
    m.data.len = len - skip;
    m.timestamp = swc_now_wall();
    queue_send(w->req, &w->q, &m.base);
}

static void wlogs_next(struct wlogs *w);

static void wlogs_done(void *data, int code, const char *errmsg, const char *cid)
{
    struct wlogs *w = data;
    struct wlogs_task *t = &w->tasks[w->cur];
    (void)cid;
    w->inflight = false;
    if (code == 0 || t->phase != WL_FIRST) {
        if (t->phase == WL_POLL || t->phase == WL_BASELINE || w->tail == 0) {
            t->sent = w->pos > t->sent ? w->pos : t->sent;
        }
    } else if (code != SWC_ECANCELED) {
        swc_debugf(MOD, "logs of task %s: %s", t->id, errmsg ? errmsg : swc_strerror(code));
    }
    if (t->phase == WL_FIRST) {
        t->phase = w->follow && w->tail > 0 ? WL_BASELINE : WL_POLL;
        if (t->phase == WL_POLL) {
            w->cur++;
        }
    } else {
        t->phase = WL_POLL;
        w->cur++;
    }
    wlogs_next(w);
}

static void wlogs_round(uv_timer_t *timer)
{
    struct wlogs *w = timer->data;
    w->cur = 0;
    wlogs_next(w);
}

/* Fetch the next task's logs, or end the round. */
static void wlogs_next(struct wlogs *w)
{
    while (!w->canceled && w->cur < w->n) {
        struct wlogs_task *t = &w->tasks[w->cur];
        if (w->d->worker == NULL || w->d->stopping) {
            wlogs_finish(w, SWC_EUNAVAIL, "the node is stopping");
            return;
        }
        int tail = t->phase == WL_FIRST && w->tail > 0 ? w->tail : -1;
        w->pos = 0;
        if (swc_worker_logs(w->d->worker, t->id, tail, wlogs_chunk, wlogs_done, w) == 0) {
            w->inflight = true;
            return;
        }
        w->cur++; /* no container (yet, or any more) */
    }
    if (w->canceled) {
        wlogs_finish(w, SWC_ECANCELED, NULL);
    } else if (!w->follow) {
        wlogs_finish(w, 0, NULL);
    } else {
        uv_timer_start(&w->timer, wlogs_round, WLOGS_POLL_MS, 0);
    }
}

static void wlogs_canceled(struct swc_rpc_req *req, int status, void *data)
{
    struct wlogs *w = data;
    (void)req;
    (void)status;
    w->canceled = true;
    if (!w->inflight) {
        wlogs_finish(w, SWC_ECANCELED, NULL);
    }
}

/* "worker.Logs" on the cluster port: only managers may read logs. */
static void h_worker_logs(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    const struct swc_rpc_peer *peer = swc_rpc_req_peer(req);
    if (peer == NULL || !peer->secure || !peer->has_cert || peer->role != SWC_ROLE_MANAGER) {
        swc_rpc_end(req, SWC_EAUTH, "worker.Logs: only managers may read logs");
        return;
    }
    Swarmc__WorkerLogsRequest *r = swarmc__worker_logs_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        swc_rpc_end(req, SWC_EPROTO, "worker.Logs: undecodable request");
        return;
    }
    struct wlogs *w = swc_calloc(1, sizeof *w);
    if (w != NULL) {
        w->tasks = swc_calloc(r->n_task_ids + 1, sizeof *w->tasks);
    }
    if (w == NULL || w->tasks == NULL || d->worker == NULL) {
        swc_rpc_end(req, w == NULL || w->tasks == NULL ? SWC_ENOMEM : SWC_EUNAVAIL,
                    "worker.Logs: cannot serve logs now");
        if (w != NULL) {
            swc_free(w->tasks);
        }
        swc_free(w);
        swarmc__worker_logs_request__free_unpacked(r, &swc_pb_allocator);
        return;
    }
    w->d = d;
    w->req = req;
    for (size_t i = 0; i < r->n_task_ids; i++) {
        if (strlen(r->task_ids[i]) <= SWC_ID_LEN) {
            snprintf(w->tasks[w->n++].id, sizeof w->tasks[0].id, "%s", r->task_ids[i]);
        }
    }
    w->follow = r->follow;
    w->tail = r->tail > INT32_MAX ? INT32_MAX : (int)r->tail;
    swarmc__worker_logs_request__free_unpacked(r, &swc_pb_allocator);
    uv_timer_init(d->loop, &w->timer);
    w->timer.data = w;
    swc_rpc_req_on_cancel(req, wlogs_canceled, w);
    wlogs_next(w);
}

static void h_cluster_join(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data);
static void h_cluster_renew(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data);
static void renew_schedule(struct daemon *d, uint64_t ms);

static int start_node(struct daemon *d, bool bootstrap)
{
    struct swc_err err;
    struct swc_secchan_config sc;
    int rv;
    if ((rv = swc_rpc_server_init(d->loop, NULL, &d->cluster_srv)) != 0) {
        return rv;
    }
    secure_config(d, &sc, false);
    if ((rv = swc_rpc_server_listen_tcp(d->cluster_srv, d->listen_addr, &sc)) != 0) {
        swc_errorf(MOD, "listen on %s: %s", d->listen_addr, swc_strerror(rv));
        return rv;
    }
    swc_rpc_server_register(d->cluster_srv, "worker.Logs", true, h_worker_logs, d);
    if (d->role == SWC_ROLE_MANAGER) {
        swc_rpc_server_register(d->cluster_srv, "cluster.Join", false, h_cluster_join, d);
        swc_rpc_server_register(d->cluster_srv, "cluster.Renew", false, h_cluster_renew, d);
        char raft_addr[300], host[256];
        int port = 0;
        snprintf(host, sizeof host, "%s", d->advertise_addr);
        char *colon = strrchr(host, ':');
        if (colon != NULL) {
            port = atoi(colon + 1);
            *colon = '\0';
        }
        snprintf(raft_addr, sizeof raft_addr, "%s:%d", host, port + 1);
        uint8_t wh[32], mh[32], digest[32];
        memset(wh, 0, sizeof wh);
        memset(mh, 0, sizeof mh);
        swc_token_parse(d->worker_token, digest, wh);
        swc_token_parse(d->manager_token, digest, mh);
        struct swc_manager_config mc = {0};
        mc.loop = d->loop;
        mc.state_dir = d->state_dir;
        mc.node_id = d->node_id;
        mc.advertise_addr = d->advertise_addr;
        mc.raft_addr = raft_addr;
        mc.raft_id = d->raft_id;
        mc.data_key = d->has_ca_sk ? d->data_key : NULL;
        mc.bootstrap = bootstrap;
        mc.force_new_cluster = d->opts.force_new_cluster;
        /* Tests and small clusters may want faster failure detection. */
        const char *hb = getenv("SWARMC_HEARTBEAT_PERIOD");
        int64_t hb_ns = 0;
        if (hb != NULL && (swc_parse_duration(hb, &hb_ns) != 0 || hb_ns < 100 * SWC_NS_PER_MS)) {
            swc_warnf(MOD, "SWARMC_HEARTBEAT_PERIOD=%s: not a duration of at least 100ms; using 5s",
                      hb);
            hb_ns = 0;
        }
        mc.heartbeat_period_ns = hb_ns;
        struct swc_secchan_config csc;
        secure_config(d, &csc, true);
        mc.client_secure = &csc;
        mc.raft_server_secure = &sc;
        mc.cluster_srv = d->cluster_srv;
        mc.control_srv = NULL; /* the control socket reaches it through h_manager_shim */
        mc.cluster_id = d->cluster_id;
        mc.ca_public_key = d->ca_pk;
        mc.worker_token_hash = wh;
        mc.manager_token_hash = mh;
        mc.worker_token = d->worker_token;
        mc.manager_token = d->manager_token;
        if ((rv = swc_manager_start(&d->manager, &mc, &err)) != 0) {
            swc_errorf(MOD, "%s", swc_err_msg(&err));
            return rv;
        }
    }
    const char *executor = d->opts.executor != NULL ? d->opts.executor : "docker";
    if (strcmp(executor, "sim") == 0) {
        struct swc_sim_config sim = {0};
        sim.loop = d->loop;
        sim.node_id = d->node_id;
        sim.start_delay_ms = 10;
        rv = swc_sim_init(&d->exec, &sim, &err);
    } else {
        struct swc_docker_config dc = {0};
        const char *host = d->opts.docker != NULL ? d->opts.docker : SWC_DEFAULT_DOCKER;
        dc.loop = d->loop;
        dc.socket_path = swc_docker_socket_from_host(host);
        dc.node_id = d->node_id;
        dc.network_mode =
            getenv("SWARMC_NETWORK_MODE") != NULL ? getenv("SWARMC_NETWORK_MODE") : "none";
        rv = dc.socket_path == NULL
                 ? swc_err_set(&err, SWC_EINVAL, "--docker %s: not a unix socket", host)
                 : swc_docker_init(&d->exec, &dc, &err);
    }
    if (rv != 0) {
        swc_errorf(MOD, "executor: %s", swc_err_msg(&err));
        return rv;
    }
    struct swc_worker_config wc = {0};
    wc.loop = d->loop;
    wc.state_dir = d->state_dir;
    wc.node_id = d->node_id;
    wc.exec = d->exec;
    wc.status_cb = status_to_agent;
    wc.data = d;
    if ((rv = swc_worker_init(&d->worker, &wc, &err)) != 0) {
        swc_errorf(MOD, "worker: %s", swc_err_msg(&err));
        return rv;
    }
    swc_worker_start(d->worker, worker_started, d);
    renew_schedule(d, 0);
    swc_infof(MOD, "node %s (%s) up: cluster %s, cluster port %s", d->node_id,
              d->role == SWC_ROLE_MANAGER ? "manager" : "worker", d->cluster_id, d->advertise_addr);
    return 0;
}

/* Create a new cluster with this node as its only manager. */
static int do_init(struct daemon *d, struct swc_err *err)
{
    uint8_t hash[32];
    swc_id_new(d->node_id);
    swc_id_new(d->cluster_id);
    swc_keypair_new(d->ca_pk, d->ca_sk);
    d->has_ca_sk = true;
    swc_data_key_new(d->data_key);
    d->role = SWC_ROLE_MANAGER;
    d->raft_id = 1;
    if (swc_token_new(d->ca_pk, d->worker_token, hash) != 0 ||
        swc_token_new(d->ca_pk, d->manager_token, hash) != 0) {
        return swc_err_set(err, SWC_EINTERNAL, "init: cannot make join tokens");
    }
    struct swc_cert cert;
    memset(&cert, 0, sizeof cert);
    snprintf(cert.node_id, sizeof cert.node_id, "%s", d->node_id);
    snprintf(cert.cluster_id, sizeof cert.cluster_id, "%s", d->cluster_id);
    cert.role = SWC_ROLE_MANAGER;
    memcpy(cert.public_key, d->identity.public_key, sizeof cert.public_key);
    cert.not_after = swc_now_wall() + 90LL * 24 * 3600 * SWC_NS_PER_SEC;
    struct swc_buf b;
    swc_buf_init(&b);
    if (swc_cert_sign(&cert, d->ca_sk) != 0 || swc_cert_encode(&cert, &b) != 0 ||
        b.len > SWC_CERT_MAX_LEN) {
        swc_buf_free(&b);
        return swc_err_set(err, SWC_EINTERNAL, "init: cannot issue the node certificate");
    }
    memcpy(d->identity.cert, b.data, b.len);
    d->identity.cert_len = b.len;
    swc_buf_free(&b);
    if (save_cluster(d) != 0) {
        return swc_err_set(err, SWC_EIO, "init: cannot write %s/cluster.json", d->state_dir);
    }
    d->member = true;
    int rv = start_node(d, true);
    if (rv != 0) {
        return swc_err_set(err, rv, "init: start the node: %s (see the daemon log)",
                           swc_strerror(rv));
    }
    return 0;
}

/* ---- control methods of the daemon itself ---------------------------------------- */

static void reply_pb(struct swc_rpc_req *req, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = swc_malloc(len + 1);
    if (buf == NULL) {
        swc_rpc_reply(req, SWC_ENOMEM, "out of memory", NULL, 0);
        return;
    }
    protobuf_c_message_pack(m, buf);
    swc_rpc_reply(req, 0, NULL, buf, len);
    swc_free(buf);
}

static void h_info(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    Swarmc__InfoResponse r = SWARMC__INFO_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    char *mgrs[1] = {d->advertise_addr};
    r.error = &e;
    r.is_member = d->member;
    r.node_id = d->node_id;
    r.cluster_id = d->cluster_id;
    r.role = d->role == SWC_ROLE_MANAGER ? SWARMC__NODE_ROLE__NODE_ROLE_MANAGER
                                         : SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    r.leader = d->manager != NULL && swc_manager_is_leader(d->manager);
    r.n_manager_addrs = d->member ? 1 : 0;
    r.manager_addrs = mgrs;
    reply_pb(req, &r.base);
}

static void h_init(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    Swarmc__InitResponse r = SWARMC__INIT_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    struct swc_err err;
    r.error = &e;
    Swarmc__InitRequest *in = swarmc__init_request__unpack(&swc_pb_allocator, len, p);
    if (in == NULL) {
        e.code = SWC_EPROTO;
        e.message = "init: undecodable request";
    } else if (d->member) {
        e.code = SWC_EEXIST;
        e.message = "this node is already part of a cluster: use `swarmc leave --force` first";
    } else {
        if (in->advertise_addr != NULL && in->advertise_addr[0] != '\0') {
            snprintf(d->advertise_addr, sizeof d->advertise_addr, "%s", in->advertise_addr);
            if (strchr(in->advertise_addr, ':') == NULL) {
                const char *port = strrchr(d->listen_addr, ':');
                snprintf(d->advertise_addr, sizeof d->advertise_addr, "%s%s", in->advertise_addr,
                         port != NULL ? port : ":4242");
            }
        }
        if (do_init(d, &err) != 0) {
            e.code = (uint32_t)err.code;
            e.message = err.msg;
        } else {
            r.node_id = d->node_id;
            r.cluster_id = d->cluster_id;
            r.worker_token = d->worker_token;
            r.manager_token = d->manager_token;
        }
    }
    char *mgrs[1] = {d->advertise_addr};
    r.n_manager_addrs = e.code == 0 ? 1 : 0;
    r.manager_addrs = mgrs;
    reply_pb(req, &r.base);
    if (in != NULL) {
        swarmc__init_request__free_unpacked(in, &swc_pb_allocator);
    }
}

static void reply_tokens(struct daemon *d, struct swc_rpc_req *req, int code, const char *msg)
{
    Swarmc__JoinTokensResponse r = SWARMC__JOIN_TOKENS_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    char *mgrs[1] = {d->advertise_addr};
    char worker[SWC_TOKEN_MAX], manager[SWC_TOKEN_MAX];
    uint8_t wh[32], mh[32];
    r.error = &e;
    e.code = (uint32_t)code;
    e.message = (char *)(msg != NULL ? msg : "");
    if (code == 0) {
        /* The cluster's current tokens, unsealed; the local copy before the
         * cluster object exists. */
        if (d->manager == NULL ||
            swc_manager_join_secrets(d->manager, wh, mh, worker, manager) != 0 ||
            worker[0] == '\0' || manager[0] == '\0') {
            snprintf(worker, sizeof worker, "%s", d->worker_token);
            snprintf(manager, sizeof manager, "%s", d->manager_token);
        }
        r.worker = worker;
        r.manager = manager;
        r.n_manager_addrs = 1;
        r.manager_addrs = mgrs;
    }
    reply_pb(req, &r.base);
}

struct rotate_ctx {
    struct daemon *d;
    struct swc_rpc_req *req;
    bool manager;
    char token[SWC_TOKEN_MAX];
};

static void token_rotated(void *data, int result, const char *msg)
{
    struct rotate_ctx *rc = data;
    struct daemon *d = rc->d;
    if (result == 0) {
        snprintf(rc->manager ? d->manager_token : d->worker_token, SWC_TOKEN_MAX, "%s", rc->token);
        save_cluster(d);
        swc_infof(MOD, "%s join token rotated: the old one is refused from now on",
                  rc->manager ? "manager" : "worker");
    }
    reply_tokens(d, rc->req, result, result != 0 ? msg : NULL);
    swc_free(rc);
}

static void h_join_tokens(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    struct swc_err err;
    Swarmc__JoinTokensRequest *r = swarmc__join_tokens_request__unpack(&swc_pb_allocator, len, p);
    bool rotate_worker = r != NULL && r->rotate_worker,
         rotate_manager = r != NULL && r->rotate_manager;
    if (r != NULL) {
        swarmc__join_tokens_request__free_unpacked(r, &swc_pb_allocator);
    }
    if (!d->has_ca_sk || d->manager == NULL) {
        reply_tokens(d, req, SWC_ESTATE, "this node is not a manager: run join-token on a manager");
        return;
    }
    if (!rotate_worker && !rotate_manager) {
        reply_tokens(d, req, 0, NULL);
        return;
    }
    struct rotate_ctx *rc = swc_calloc(1, sizeof *rc);
    uint8_t hash[32];
    if (rc == NULL || swc_token_new(d->ca_pk, rc->token, hash) != 0) {
        swc_free(rc);
        reply_tokens(d, req, SWC_ENOMEM, "cannot make a new token");
        return;
    }
    rc->d = d;
    rc->req = req;
    rc->manager = rotate_manager;
    if (swc_manager_rotate_token(d->manager, rotate_manager, rc->token, hash, token_rotated, rc,
                                 &err) != 0) {
        char leader[320] = "";
        if (err.code == SWC_ENOTLEADER) {
            char addr[256];
            swc_manager_leader_addr(d->manager, addr, sizeof addr);
            snprintf(leader, sizeof leader, ": run it against the leader (%s)",
                     addr[0] ? addr : "unknown");
        }
        char msg[SWC_ERRMSG_SIZE + 200];
        snprintf(msg, sizeof msg, "%s%s", swc_err_msg(&err), leader);
        swc_free(rc);
        reply_tokens(d, req, err.code, msg);
    }
}

/* ---- restore from a backup ----------------------------------------------------------- */

static void restore_reply(struct swc_rpc_req *req, int code, const char *msg, uint64_t objects)
{
    Swarmc__RestoreClusterResponse r = SWARMC__RESTORE_CLUSTER_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    e.code = (uint32_t)code;
    e.message = (char *)(msg != NULL ? msg : "");
    r.error = &e;
    r.objects = objects;
    reply_pb(req, &r.base);
}

static void restored(void *data, int code, const char *msg, uint64_t objects)
{
    struct swc_rpc_req *req = data;
    if (code == 0) {
        swc_infof(MOD, "restored %llu objects from a backup", (unsigned long long)objects);
    }
    restore_reply(req, code, msg, objects);
}

/* "control.RestoreCluster": a daemon that is not in a cluster (or a manager
 * started with --force-new-cluster) starts a one-manager cluster from a
 * backup, keeping every object. */
static void h_restore_cluster(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    struct swc_err err;
    struct swc_manager_backup *b = NULL;
    Swarmc__RestoreClusterRequest *r =
        swarmc__restore_cluster_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL || r->path == NULL || r->path[0] != '/') {
        restore_reply(req, SWC_EINVAL, "restore: the path must be absolute", 0);
        goto out;
    }
    bool forced = d->member && d->opts.force_new_cluster && d->manager != NULL;
    if (d->member && !forced) {
        restore_reply(req, SWC_EEXIST,
                      "this node is already part of a cluster: restore on a daemon that is not "
                      "(run `swarmc leave --force` first) or one started with --force-new-cluster",
                      0);
        goto out;
    }
    if (d->leaving || d->stopping) {
        restore_reply(req, SWC_ESTATE, "this node is leaving or stopping", 0);
        goto out;
    }
    if (swc_manager_backup_load(r->path, &b, &err) != 0) {
        restore_reply(req, err.code, swc_err_msg(&err), 0);
        goto out;
    }
    if (!d->member && do_init(d, &err) != 0) {
        swc_manager_backup_free(b);
        restore_reply(req, err.code, swc_err_msg(&err), 0);
        goto out;
    }
    swc_infof(MOD, "restoring %llu objects from %s",
              (unsigned long long)swc_manager_backup_objects(b), r->path);
    if (swc_manager_restore(d->manager, b, restored, req) != 0) {
        restore_reply(req, SWC_ENOMEM, "out of memory", 0);
    }
out:
    if (r != NULL) {
        swarmc__restore_cluster_request__free_unpacked(r, &swc_pb_allocator);
    }
}

/* ---- joining ------------------------------------------------------------------------ */

static bool same_hash(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    for (int i = 0; i < 32; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

static void join_reply_error(struct swc_rpc_req *req, int code, const char *msg)
{
    Swarmc__JoinResponse r = SWARMC__JOIN_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    e.code = (uint32_t)code;
    e.message = (char *)msg;
    r.error = &e;
    reply_pb(req, &r.base);
}

static int64_t cert_life_ns(void);

/* Issue a certificate for (node_id, role) over public_key into out. */
static int issue_cert(struct daemon *d, const char *node_id, int role, const uint8_t *public_key,
                      struct swc_buf *out)
{
    struct swc_cert cert;
    memset(&cert, 0, sizeof cert);
    snprintf(cert.node_id, sizeof cert.node_id, "%s", node_id);
    snprintf(cert.cluster_id, sizeof cert.cluster_id, "%s", d->cluster_id);
    cert.role = role;
    memcpy(cert.public_key, public_key, sizeof cert.public_key);
    cert.not_after = swc_now_wall() + cert_life_ns();
    int rv = swc_cert_sign(&cert, d->ca_sk);
    return rv != 0 ? rv : swc_cert_encode(&cert, out);
}

/* Issue a certificate for (node_id, role, pk) and answer a join or a
 * renewal with it (managers also get the raft id, the keys and the tokens).
 * 0, or an error already answered. */
static int reply_cert(struct daemon *d, struct swc_rpc_req *req, const char *node_id, int role,
                      const uint8_t *pk, uint64_t raft_id, const char *what)
{
    struct swc_buf cert;
    swc_buf_init(&cert);
    if (issue_cert(d, node_id, role, pk, &cert) != 0) {
        swc_buf_free(&cert);
        char msg[64];
        snprintf(msg, sizeof msg, "%s: cannot issue a certificate", what);
        join_reply_error(req, SWC_EINTERNAL, msg);
        return SWC_EINTERNAL;
    }
    Swarmc__JoinResponse resp = SWARMC__JOIN_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    char *mgrs[1] = {d->advertise_addr};
    resp.error = &e;
    resp.node_id = (char *)node_id;
    resp.cert.data = cert.data;
    resp.cert.len = cert.len;
    resp.ca_public_key.data = d->ca_pk;
    resp.ca_public_key.len = sizeof d->ca_pk;
    resp.cluster_id = d->cluster_id;
    resp.role = role == SWC_ROLE_MANAGER ? SWARMC__NODE_ROLE__NODE_ROLE_MANAGER
                                         : SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    resp.n_manager_addrs = 1;
    resp.manager_addrs = mgrs;
    if (role == SWC_ROLE_MANAGER) {
        resp.raft_id = raft_id;
        resp.data_key.data = d->data_key;
        resp.data_key.len = sizeof d->data_key;
        resp.ca_secret_key.data = d->ca_sk;
        resp.ca_secret_key.len = sizeof d->ca_sk;
        resp.worker_token = d->worker_token;
        resp.manager_token = d->manager_token;
    }
    reply_pb(req, &resp.base);
    swc_buf_free(&cert);
    return 0;
}

/* "cluster.Join" on the cluster port: a node without a certificate presents
 * a join token (over the server-authenticated channel) and gets one. */
static void h_cluster_join(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    struct swc_err err;
    uint8_t digest[32], hash[32], ours[32], wh[32], mh[32];
    Swarmc__JoinRequest *r = swarmc__join_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        join_reply_error(req, SWC_EPROTO, "join: undecodable request");
        return;
    }
    if (!d->has_ca_sk || d->manager == NULL) {
        join_reply_error(req, SWC_ESTATE, "join: this node is not a manager");
        goto out;
    }
    if (r->public_key.len != SWC_SIGN_PK_LEN) {
        join_reply_error(req, SWC_EINVAL, "join: public_key must be 32 bytes");
        goto out;
    }
    if (swc_token_parse_err(r->token, digest, hash, &err) != 0) {
        join_reply_error(req, SWC_EINVAL, swc_err_msg(&err));
        goto out;
    }
    swc_ca_digest(d->ca_pk, ours);
    if (!same_hash(digest, ours)) {
        join_reply_error(req, SWC_EAUTH, "join: the token belongs to another cluster");
        goto out;
    }
    /* The cluster's current secrets (rotations included); the local copy
     * only until the cluster object exists. */
    if (swc_manager_join_secrets(d->manager, wh, mh, NULL, NULL) != 0) {
        swc_token_parse(d->worker_token, digest, wh);
        swc_token_parse(d->manager_token, digest, mh);
    }
    int role;
    if (same_hash(hash, wh)) {
        role = SWC_ROLE_WORKER;
    } else if (same_hash(hash, mh)) {
        role = SWC_ROLE_MANAGER;
    } else {
        join_reply_error(req, SWC_EAUTH,
                         "join: invalid join token (it may have been rotated): get a new one with "
                         "`swarmc join-token worker` on a manager");
        goto out;
    }
    char node_id[SWC_ID_LEN + 1];
    swc_id_new(node_id);
    uint64_t raft_id = 0;
    if (role == SWC_ROLE_MANAGER) {
        char host[256], raft_addr[300];
        snprintf(host, sizeof host, "%s", r->advertise_addr != NULL ? r->advertise_addr : "");
        char *colon = strrchr(host, ':');
        if (colon == NULL) {
            join_reply_error(req, SWC_EINVAL,
                             "join: a manager must give its advertise address ADDR:PORT");
            goto out;
        }
        *colon = '\0';
        snprintf(raft_addr, sizeof raft_addr, "%s:%d", host, atoi(colon + 1) + 1);
        /* Random 63-bit ids are never reused in practice; 1 is the bootstrap id. */
        raft_id = (swc_random_u64() >> 1) | 2;
        if (swc_manager_add_member(d->manager, raft_id, raft_addr, &err) != 0) {
            join_reply_error(req, err.code, swc_err_msg(&err));
            goto out;
        }
        /* bind the raft id to the certificate's node id (raftnet checks it) */
        swc_manager_record_raft_id(d->manager, node_id, raft_id);
    }
    if (reply_cert(d, req, node_id, role, r->public_key.data, raft_id, "join") != 0) {
        goto out;
    }
    swc_infof(MOD, "node %s joined as a %s", node_id,
              role == SWC_ROLE_MANAGER ? "manager" : "worker");
out:
    swarmc__join_request__free_unpacked(r, &swc_pb_allocator);
}

struct join_ctx {
    struct daemon *d;
    struct swc_rpc_req *req;
    struct swc_rpc_conn *conn;
    uint8_t digest[32];
    uint8_t *msg; /* the encoded JoinRequest, kept for retries */
    size_t msg_len;
    int tries;
    uv_timer_t retry;
};

static void join_reply_local(struct swc_rpc_req *req, int code, const char *msg,
                             const char *node_id, int role)
{
    Swarmc__JoinClusterResponse r = SWARMC__JOIN_CLUSTER_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    e.code = (uint32_t)code;
    e.message = (char *)(msg != NULL ? msg : "");
    r.error = &e;
    r.node_id = (char *)(node_id != NULL ? node_id : "");
    r.role = role == SWC_ROLE_MANAGER ? SWARMC__NODE_ROLE__NODE_ROLE_MANAGER
                                      : SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    reply_pb(req, &r.base);
}

static void join_ctx_free(uv_handle_t *h)
{
    struct join_ctx *j = h->data;
    swc_free(j->msg);
    swc_free(j);
}

static void join_done(struct join_ctx *j)
{
    swc_rpc_conn_close(j->conn, NULL, NULL);
    uv_close((uv_handle_t *)&j->retry, join_ctx_free);
}

static void joined(struct swc_rpc_call *call, int status, const char *errmsg,
                   const uint8_t *payload, size_t len, void *data);

static void join_send(uv_timer_t *t)
{
    struct join_ctx *j = t->data;
    if (swc_rpc_call(j->conn, "cluster.Join", j->msg, j->msg_len, 15000, joined, j, NULL) != 0) {
        join_reply_local(j->req, SWC_EUNAVAIL, "join: lost the connection to the manager", NULL, 0);
        join_done(j);
    }
}

static void joined(struct swc_rpc_call *call, int status, const char *errmsg,
                   const uint8_t *payload, size_t len, void *data)
{
    struct join_ctx *j = data;
    struct daemon *d = j->d;
    char msg[600];
    if (status != 0) {
        snprintf(msg, sizeof msg, "join: cannot reach a manager: %s",
                 errmsg != NULL && errmsg[0] ? errmsg : swc_strerror(status));
        join_reply_local(j->req, status == SWC_EAUTH ? SWC_EAUTH : SWC_EUNAVAIL, msg, NULL, 0);
        join_done(j);
        return;
    }
    Swarmc__JoinResponse *r = swarmc__join_response__unpack(&swc_pb_allocator, len, payload);
    uint8_t digest[32];
    if (r == NULL) {
        join_reply_local(j->req, SWC_EPROTO, "join: undecodable answer from the manager", NULL, 0);
    } else if (r->error != NULL && r->error->code == SWC_EBUSY && j->tries++ < 120) {
        /* Another manager is joining right now: raft takes one change at a time. */
        swarmc__join_response__free_unpacked(r, &swc_pb_allocator);
        uv_timer_start(&j->retry, join_send, 250, 0);
        return;
    } else if (r->error != NULL && r->error->code != 0) {
        join_reply_local(j->req, (int)r->error->code, r->error->message, NULL, 0);
    } else if (r->ca_public_key.len != SWC_SIGN_PK_LEN || r->cert.len == 0 ||
               r->cert.len > SWC_CERT_MAX_LEN || r->node_id == NULL ||
               strlen(r->node_id) > SWC_ID_LEN || r->cluster_id == NULL ||
               strlen(r->cluster_id) > SWC_ID_LEN) {
        join_reply_local(j->req, SWC_EPROTO, "join: malformed answer from the manager", NULL, 0);
    } else if ((swc_ca_digest(r->ca_public_key.data, digest), !same_hash(digest, j->digest))) {
        join_reply_local(j->req, SWC_EAUTH, "join: the manager's CA does not match the token", NULL,
                         0);
    } else {
        memcpy(d->ca_pk, r->ca_public_key.data, SWC_SIGN_PK_LEN);
        memcpy(d->identity.cert, r->cert.data, r->cert.len);
        d->identity.cert_len = r->cert.len;
        snprintf(d->node_id, sizeof d->node_id, "%s", r->node_id);
        snprintf(d->cluster_id, sizeof d->cluster_id, "%s", r->cluster_id);
        d->role =
            r->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? SWC_ROLE_MANAGER : SWC_ROLE_WORKER;
        d->raft_id = r->raft_id;
        if (d->role == SWC_ROLE_MANAGER && r->ca_secret_key.len == SWC_SIGN_SK_LEN &&
            r->data_key.len == SWC_DATA_KEY_LEN) {
            memcpy(d->ca_sk, r->ca_secret_key.data, SWC_SIGN_SK_LEN);
            memcpy(d->data_key, r->data_key.data, SWC_DATA_KEY_LEN);
            snprintf(d->worker_token, sizeof d->worker_token, "%s",
                     r->worker_token ? r->worker_token : "");
            snprintf(d->manager_token, sizeof d->manager_token, "%s",
                     r->manager_token ? r->manager_token : "");
            d->has_ca_sk = true;
        }
        /* The agent starts from the managers the cluster gave us. */
        if (r->n_manager_addrs > 0 && d->role == SWC_ROLE_WORKER) {
            snprintf(d->join_manager, sizeof d->join_manager, "%s", r->manager_addrs[0]);
        }
        int rv = save_cluster(d);
        if (rv == 0) {
            d->member = true;
            rv = start_node(d, false);
        }
        if (rv != 0) {
            snprintf(msg, sizeof msg,
                     "join: joined, but cannot start the node: %s (see the daemon log)",
                     swc_strerror(rv));
            join_reply_local(j->req, rv, msg, NULL, 0);
        } else {
            join_reply_local(j->req, 0, NULL, d->node_id, d->role);
        }
    }
    if (r != NULL) {
        swarmc__join_response__free_unpacked(r, &swc_pb_allocator);
    }
    join_done(j);
}

/* "control.JoinCluster" on the control socket: join with a token. */
static void h_join_cluster(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    struct swc_err err;
    uint8_t hash[32];
    Swarmc__JoinClusterRequest *r = swarmc__join_cluster_request__unpack(&swc_pb_allocator, len, p);
    struct join_ctx *j = NULL;
    if (r == NULL) {
        join_reply_local(req, SWC_EPROTO, "join: undecodable request", NULL, 0);
        return;
    }
    if (d->member) {
        join_reply_local(req, SWC_EEXIST,
                         "this node is already part of a cluster: run `swarmc leave` first", NULL,
                         0);
        goto out;
    }
    if (r->n_remote_addrs == 0) {
        join_reply_local(req, SWC_EINVAL,
                         "join: give the address of a manager (MANAGER_ADDR[:PORT])", NULL, 0);
        goto out;
    }
    j = swc_calloc(1, sizeof *j);
    if (j == NULL) {
        join_reply_local(req, SWC_ENOMEM, "out of memory", NULL, 0);
        goto out;
    }
    if (swc_token_parse_err(r->token, j->digest, hash, &err) != 0) {
        join_reply_local(req, SWC_EINVAL, swc_err_msg(&err), NULL, 0);
        swc_free(j);
        goto out;
    }
    if (r->advertise_addr != NULL && r->advertise_addr[0] != '\0') {
        snprintf(d->advertise_addr, sizeof d->advertise_addr, "%s", r->advertise_addr);
    }
    j->d = d;
    j->req = req;
    struct swc_secchan_config sc;
    memset(&sc, 0, sizeof sc);
    sc.is_client = true;
    sc.self = &d->identity; /* no certificate yet: anonymous */
    sc.pin_ca_by_digest = true;
    memcpy(sc.ca_digest, j->digest, sizeof sc.ca_digest);
    sc.required_peer_role = SWC_ROLE_MANAGER;
    struct swc_rpc_conn_opts co = {0};
    co.secure = &sc;
    char addr[300];
    snprintf(addr, sizeof addr, "%s%s", r->remote_addrs[0],
             strchr(r->remote_addrs[0], ':') ? "" : ":4242");
    Swarmc__JoinRequest jr = SWARMC__JOIN_REQUEST__INIT;
    jr.token = r->token;
    jr.public_key.data = d->identity.public_key;
    jr.public_key.len = SWC_SIGN_PK_LEN;
    jr.advertise_addr = d->advertise_addr;
    size_t n = swarmc__join_request__get_packed_size(&jr);
    uint8_t *buf = swc_malloc(n + 1);
    int rv = buf == NULL ? SWC_ENOMEM : swc_rpc_connect(d->loop, addr, &co, &j->conn);
    if (rv == 0) {
        swarmc__join_request__pack(&jr, buf);
        j->msg = buf;
        j->msg_len = n;
        buf = NULL;
        rv = swc_rpc_call(j->conn, "cluster.Join", j->msg, n, 15000, joined, j, NULL);
        if (rv != 0) {
            swc_rpc_conn_close(j->conn, NULL, NULL);
        }
    }
    swc_free(buf);
    if (rv != 0) {
        join_reply_local(req, rv, "join: cannot connect to the manager", NULL, 0);
        swc_free(j->msg);
        swc_free(j);
    } else {
        uv_timer_init(d->loop, &j->retry);
        j->retry.data = j;
    }
out:
    swarmc__join_cluster_request__free_unpacked(r, &swc_pb_allocator);
}

/* ---- certificate renewal and role changes ------------------------------------------ */

/* How long certificates live: 90 days, or SWARMC_CERT_EXPIRY (tests). */
static int64_t cert_life_ns(void)
{
    const char *s = getenv("SWARMC_CERT_EXPIRY");
    int64_t ns = 0;
    if (s != NULL && swc_parse_duration(s, &ns) == 0 && ns >= SWC_NS_PER_SEC) {
        return ns;
    }
    return 90LL * 24 * 3600 * SWC_NS_PER_SEC;
}

struct demotion {
    struct daemon *d;
    struct swc_rpc_req *req;
    char node_id[SWC_CERT_ID_MAX + 1];
    uint8_t pk[SWC_SIGN_PK_LEN];
};

static void demoted(void *data, int status, const char *msg)
{
    struct demotion *x = data;
    if (status != 0) {
        join_reply_error(x->req, status, msg != NULL ? msg : swc_strerror(status));
    } else {
        swc_infof(MOD, "node %s demoted: removed from raft", x->node_id);
        reply_cert(x->d, x->req, x->node_id, SWC_ROLE_WORKER, x->pk, 0, "renew");
    }
    swc_free(x);
}

/* "cluster.Renew" on a manager's cluster port: a node with a certificate
 * asks for a fresh one; it gets its desired role from the store. */
static void h_cluster_renew(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    struct swc_err err;
    const struct swc_rpc_peer *peer = swc_rpc_req_peer(req);
    Swarmc__JoinRequest *r = swarmc__join_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        join_reply_error(req, SWC_EPROTO, "renew: undecodable request");
        return;
    }
    if (peer == NULL || !peer->secure || !peer->has_cert) {
        join_reply_error(req, SWC_EAUTH, "renew: present a certificate (join first)");
        goto out;
    }
    if (!d->has_ca_sk || d->manager == NULL) {
        join_reply_error(req, SWC_ESTATE, "renew: this node is not a manager");
        goto out;
    }
    if (r->public_key.len != SWC_SIGN_PK_LEN) {
        join_reply_error(req, SWC_EINVAL, "renew: public_key must be 32 bytes");
        goto out;
    }
    int desired = peer->role == SWC_ROLE_MANAGER ? SWARMC__NODE_ROLE__NODE_ROLE_MANAGER
                                                 : SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    int rv = swc_manager_node_info(d->manager, peer->node_id, &desired);
    if (rv == SWC_EAUTH) {
        join_reply_error(req, SWC_EAUTH, "this node was removed from the cluster");
        goto out;
    }
    int role = desired == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? SWC_ROLE_MANAGER : SWC_ROLE_WORKER;
    const char *addr = r->advertise_addr != NULL ? r->advertise_addr : "";
    uint64_t raft_id = 0;
    bool member = addr[0] != '\0' && swc_manager_member_by_addr(d->manager, addr, &raft_id) == 0;
    bool change = (role == SWC_ROLE_MANAGER) != (peer->role == SWC_ROLE_MANAGER) ||
                  (role == SWC_ROLE_MANAGER && !member) || (role == SWC_ROLE_WORKER && member);
    if (change && !swc_manager_is_leader(d->manager)) {
        char leader[256] = "";
        swc_manager_leader_addr(d->manager, leader, sizeof leader);
        Swarmc__JoinResponse resp = SWARMC__JOIN_RESPONSE__INIT;
        Swarmc__Error e = SWARMC__ERROR__INIT;
        char *mgrs[1] = {leader};
        e.code = SWC_ENOTLEADER;
        e.message = "renew: a role change goes through the leader";
        resp.error = &e;
        resp.n_manager_addrs = leader[0] != '\0' ? 1 : 0;
        resp.manager_addrs = mgrs;
        reply_pb(req, &resp.base);
        goto out;
    }
    if (change && role == SWC_ROLE_MANAGER && !member) {
        char host[256], raft_addr[300];
        snprintf(host, sizeof host, "%s", addr);
        char *colon = strrchr(host, ':');
        if (colon == NULL) {
            join_reply_error(req, SWC_EINVAL, "renew: a manager must give ADDR:PORT");
            goto out;
        }
        *colon = '\0';
        snprintf(raft_addr, sizeof raft_addr, "%s:%d", host, atoi(colon + 1) + 1);
        raft_id = (swc_random_u64() >> 1) | 2;
        if (swc_manager_add_member(d->manager, raft_id, raft_addr, &err) != 0) {
            join_reply_error(req, err.code, swc_err_msg(&err));
            goto out;
        }
        swc_manager_record_raft_id(d->manager, peer->node_id, raft_id);
        swc_infof(MOD, "node %s promoted: joining raft as %llu", peer->node_id,
                  (unsigned long long)raft_id);
    } else if (change && role == SWC_ROLE_WORKER && member) {
        struct demotion *x = swc_calloc(1, sizeof *x);
        if (x == NULL) {
            join_reply_error(req, SWC_ENOMEM, "out of memory");
            goto out;
        }
        x->d = d;
        x->req = req;
        snprintf(x->node_id, sizeof x->node_id, "%s", peer->node_id);
        memcpy(x->pk, r->public_key.data, SWC_SIGN_PK_LEN);
        if (swc_manager_remove_member(d->manager, raft_id, demoted, x, &err) != 0) {
            swc_free(x);
            join_reply_error(req, err.code, swc_err_msg(&err));
        }
        goto out;
    }
    reply_cert(d, req, peer->node_id, role, r->public_key.data, raft_id, "renew");
out:
    swarmc__join_request__free_unpacked(r, &swc_pb_allocator);
}

static void renew_schedule(struct daemon *d, uint64_t ms);
static void switch_role(struct daemon *d);
static void removed_stop(struct daemon *d);

/* When this node should get a fresh certificate: at a random 50-80 % of
 * its life (the fraction is drawn once per certificate). */
static bool renew_due(struct daemon *d)
{
    struct swc_cert c;
    if (swc_cert_decode(d->identity.cert, d->identity.cert_len, &c) != 0) {
        return true;
    }
    int64_t life = cert_life_ns();
    if (d->renew_frac == 0) {
        d->renew_frac = 50 + (int)(swc_random_u64() % 31);
    }
    int64_t issued = c.not_after - life;
    return swc_now_wall() >= issued + life / 100 * d->renew_frac;
}

static void renewed(struct swc_rpc_call *call, int status, const char *errmsg,
                    const uint8_t *payload, size_t len, void *data)
{
    struct daemon *d = data;
    (void)call;
    d->renew_inflight = false;
    if (d->stopping || !d->member) {
        return;
    }
    if (status != 0) {
        swc_debugf(MOD, "renew at %s: %s", d->renew_addr,
                   errmsg != NULL && errmsg[0] ? errmsg : swc_strerror(status));
        if (d->renew_conn != NULL) {
            swc_rpc_conn_close(d->renew_conn, NULL, NULL);
            d->renew_conn = NULL;
        }
        d->renew_addr[0] = '\0';
        renew_schedule(d, 0);
        return;
    }
    Swarmc__JoinResponse *r = swarmc__join_response__unpack(&swc_pb_allocator, len, payload);
    if (r == NULL) {
        renew_schedule(d, 0);
        return;
    }
    int code = r->error != NULL ? (int)r->error->code : 0;
    if (code == SWC_EAUTH) {
        swc_errorf(MOD, "this node was removed from the cluster: stopping its cluster parts (%s)",
                   r->error->message);
        swarmc__join_response__free_unpacked(r, &swc_pb_allocator);
        removed_stop(d);
        return;
    }
    if (code == SWC_ENOTLEADER && r->n_manager_addrs > 0) {
        snprintf(d->renew_addr, sizeof d->renew_addr, "%s", r->manager_addrs[0]);
        swarmc__join_response__free_unpacked(r, &swc_pb_allocator);
        renew_schedule(d, 300);
        return;
    }
    if (code != 0 || r->cert.len == 0 || r->cert.len > SWC_CERT_MAX_LEN) {
        if (code != 0) {
            swc_warnf(MOD, "renew: %s", r->error->message);
        }
        swarmc__join_response__free_unpacked(r, &swc_pb_allocator);
        renew_schedule(d, 0);
        return;
    }
    int role = r->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? SWC_ROLE_MANAGER : SWC_ROLE_WORKER;
    bool switching = role != d->role;
    if (switching && role == SWC_ROLE_MANAGER &&
        (r->ca_secret_key.len != SWC_SIGN_SK_LEN || r->data_key.len != SWC_DATA_KEY_LEN)) {
        swc_warnf(MOD, "renew: promoted without the manager keys; retrying");
        switching = false;
    } else if (switching || renew_due(d)) {
        memcpy(d->identity.cert, r->cert.data, r->cert.len);
        d->identity.cert_len = r->cert.len;
        d->renew_frac = 0;
        if (switching) {
            d->role = role;
            d->raft_id = r->raft_id;
            if (role == SWC_ROLE_MANAGER) {
                memcpy(d->ca_sk, r->ca_secret_key.data, SWC_SIGN_SK_LEN);
                memcpy(d->data_key, r->data_key.data, SWC_DATA_KEY_LEN);
                snprintf(d->worker_token, sizeof d->worker_token, "%s",
                         r->worker_token ? r->worker_token : "");
                snprintf(d->manager_token, sizeof d->manager_token, "%s",
                         r->manager_token ? r->manager_token : "");
                d->has_ca_sk = true;
            } else {
                d->has_ca_sk = false;
                memset(d->ca_sk, 0, sizeof d->ca_sk);
                snprintf(d->join_manager, sizeof d->join_manager, "%s",
                         r->n_manager_addrs > 0 ? r->manager_addrs[0] : d->renew_addr);
            }
        }
        if (save_cluster(d) != 0) {
            swc_errorf(MOD, "renew: cannot write %s/cluster.json", d->state_dir);
        }
        if (!switching) {
            struct swc_secchan_config sc;
            secure_config(d, &sc, false);
            swc_rpc_server_set_secure(d->cluster_srv, &sc);
            swc_infof(MOD, "certificate renewed");
        }
    }
    swarmc__join_response__free_unpacked(r, &swc_pb_allocator);
    if (switching) {
        swc_infof(MOD, "role changed: this node is now a %s; restarting its cluster parts",
                  role == SWC_ROLE_MANAGER ? "manager" : "worker");
        switch_role(d);
        return;
    }
    renew_schedule(d, 0);
}

static void renew_tick(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (d->stopping || !d->member || d->renew_inflight) {
        return;
    }
    if (d->renew_addr[0] == '\0') {
        char leader[256] = "";
        if (d->manager != NULL) {
            swc_manager_leader_addr(d->manager, leader, sizeof leader);
        }
        snprintf(d->renew_addr, sizeof d->renew_addr, "%s",
                 leader[0]                                                   ? leader
                 : d->role == SWC_ROLE_MANAGER || d->join_manager[0] == '\0' ? d->advertise_addr
                                                                             : d->join_manager);
    }
    if (d->renew_conn != NULL && strcmp(d->renew_conn_addr, d->renew_addr) != 0) {
        swc_rpc_conn_close(d->renew_conn, NULL, NULL);
        d->renew_conn = NULL;
    }
    if (d->renew_conn == NULL) {
        struct swc_secchan_config sc;
        struct swc_rpc_conn_opts co = {0};
        secure_config(d, &sc, true);
        co.secure = &sc;
        if (swc_rpc_connect(d->loop, d->renew_addr, &co, &d->renew_conn) != 0) {
            d->renew_conn = NULL;
            d->renew_addr[0] = '\0';
            renew_schedule(d, 0);
            return;
        }
        snprintf(d->renew_conn_addr, sizeof d->renew_conn_addr, "%s", d->renew_addr);
    }
    Swarmc__JoinRequest jr = SWARMC__JOIN_REQUEST__INIT;
    jr.public_key.data = d->identity.public_key;
    jr.public_key.len = SWC_SIGN_PK_LEN;
    jr.advertise_addr = d->advertise_addr;
    jr.node_id = d->node_id;
    size_t n = swarmc__join_request__get_packed_size(&jr);
    uint8_t *buf = swc_malloc(n + 1);
    if (buf == NULL) {
        renew_schedule(d, 0);
        return;
    }
    swarmc__join_request__pack(&jr, buf);
    if (swc_rpc_call(d->renew_conn, "cluster.Renew", buf, n, 10000, renewed, d, NULL) == 0) {
        d->renew_inflight = true;
    } else {
        swc_rpc_conn_close(d->renew_conn, NULL, NULL);
        d->renew_conn = NULL;
        d->renew_addr[0] = '\0';
        renew_schedule(d, 0);
    }
    swc_free(buf);
}

/* Next renewal in ms (0: the period, ~5 s with +-10 % jitter, or
 * SWARMC_RENEW_PERIOD). */
static void renew_schedule(struct daemon *d, uint64_t ms)
{
    if (ms == 0) {
        int64_t ns = 5 * SWC_NS_PER_SEC;
        const char *s = getenv("SWARMC_RENEW_PERIOD");
        int64_t v;
        if (s != NULL && swc_parse_duration(s, &v) == 0 && v >= 100 * SWC_NS_PER_MS) {
            ns = v;
        }
        ms = (uint64_t)(ns / SWC_NS_PER_MS);
        ms = ms * 9 / 10 + swc_random_u64() % (ms / 5 + 1);
    }
    if (d->renew_timer_init && !d->stopping) {
        uv_timer_start(&d->renew_timer, renew_tick, ms, 0);
    }
}

static void renew_stop(struct daemon *d)
{
    if (d->renew_timer_init) {
        uv_timer_stop(&d->renew_timer);
    }
    if (d->renew_conn != NULL) {
        swc_rpc_conn_close(d->renew_conn, NULL, NULL);
        d->renew_conn = NULL;
    }
    d->renew_inflight = false;
    d->renew_addr[0] = '\0';
}

/* ---- shutdown ---------------------------------------------------------------------- */

static int open_control(struct daemon *d);

static int unlink_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw);

/* The cluster parts are down after a role change: start them again. The
 * control socket is opened anew (its manager methods pointed at the old
 * manager); containers keep running and the new worker adopts them. */
static void switch_finish(struct daemon *d)
{
    char path[1200];
    d->switching = false;
    d->stopping = false;
    if (d->role == SWC_ROLE_WORKER) {
        /* a former manager's raft log must not meet a future raft id */
        snprintf(path, sizeof path, "%s/raft", d->state_dir);
        nftw(path, unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    if (open_control(d) != 0) {
        swc_errorf(MOD, "role change: cannot reopen the control socket %s", d->socket_path);
        uv_stop(d->loop);
        return;
    }
    if (start_node(d, false) != 0) {
        swc_errorf(MOD, "role change: cannot start the node as a %s (see above)",
                   d->role == SWC_ROLE_MANAGER ? "manager" : "worker");
        return;
    }
    swc_infof(MOD, "role change done: running as a %s",
              d->role == SWC_ROLE_MANAGER ? "manager" : "worker");
}

static void manager_closed(void *data)
{
    struct daemon *d = data;
    d->manager = NULL;
    if (d->switching) {
        switch_finish(d);
        return;
    }
    uv_stop(d->loop);
}

static void control_closed(void *data)
{
    struct daemon *d = data;
    d->control_srv = NULL;
    if (d->manager != NULL) {
        swc_manager_close(d->manager, manager_closed, d);
    } else if (d->switching) {
        switch_finish(d);
    } else {
        uv_stop(d->loop);
    }
}

static int unlink_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The node has stopped its cluster parts: forget the cluster and answer. */
static void leave_finish(void *data)
{
    struct daemon *d = data;
    char path[1200];
    static const char *const files[] = {"cluster.json", "managers", "worker.db", "worker.db-wal",
                                        "worker.db-shm"};
    d->manager = NULL;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", d->state_dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/raft", d->state_dir);
    nftw(path, unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
    d->member = false;
    d->has_ca_sk = false;
    d->identity.cert_len = 0;
    d->role = SWC_ROLE_WORKER;
    d->raft_id = 0;
    d->node_id[0] = d->cluster_id[0] = d->join_manager[0] = '\0';
    d->leaving = false;
    d->stopping = false;
    swc_infof(MOD, "left the cluster");
    if (d->leave_req != NULL) {
        Swarmc__LeaveResponse r = SWARMC__LEAVE_RESPONSE__INIT;
        Swarmc__Error e = SWARMC__ERROR__INIT;
        r.error = &e;
        reply_pb(d->leave_req, &r.base);
        d->leave_req = NULL;
    }
}

static void cluster_closed(void *data)
{
    struct daemon *d = data;
    d->cluster_srv = NULL;
    if (d->leaving) {
        if (d->manager != NULL) {
            swc_manager_close(d->manager, leave_finish, d);
        } else {
            leave_finish(d);
        }
        return;
    }
    swc_rpc_server_close(d->control_srv, control_closed, d);
}

static void exec_closed(struct swc_exec *ex)
{
    struct daemon *d = ex->data;
    d->exec = NULL;
    if (d->cluster_srv != NULL) {
        swc_rpc_server_close(d->cluster_srv, cluster_closed, d);
    } else {
        cluster_closed(d);
    }
}

static void worker_closed(void *data);

static void leave_removed(void *data, int code, const char *errmsg, const char *container_id)
{
    struct daemon *d = data;
    if (code != 0) {
        swc_warnf(MOD, "leave: remove container %s: %s", container_id ? container_id : "?",
                  errmsg ? errmsg : swc_strerror(code));
    }
    if (--d->leave_removing == 0) {
        worker_closed(d);
    }
}

static void leave_listed(void *data, int code, const char *errmsg,
                         const struct swc_exec_cstate *list, size_t n)
{
    struct daemon *d = data;
    d->leave_removing = 1; /* held until every remove is issued */
    for (size_t i = 0; code == 0 && i < n; i++) {
        if (d->exec->ops->remove(d->exec, list[i].container_id, leave_removed, d) == 0) {
            d->leave_removing++;
        }
    }
    if (code != 0) {
        swc_warnf(MOD, "leave: list containers: %s", errmsg ? errmsg : swc_strerror(code));
    }
    leave_removed(d, 0, NULL, NULL);
}

static void worker_closed(void *data)
{
    struct daemon *d = data;
    d->worker = NULL;
    if (d->leaving && d->exec != NULL && !d->leave_cleaned) {
        /* A node that leaves takes its containers down with it (once). */
        d->leave_cleaned = true;
        if (d->exec->ops->list(d->exec, leave_listed, d) == 0) {
            return;
        }
    }
    if (d->exec != NULL) {
        d->exec->data = d;
        d->exec->ops->close(d->exec, exec_closed);
    } else {
        struct swc_exec fake = {0};
        fake.data = d;
        exec_closed(&fake);
    }
}

static void agent_closed(void *data)
{
    struct daemon *d = data;
    d->agent = NULL;
    if (d->worker != NULL) {
        swc_worker_close(d->worker, worker_closed, d);
    } else {
        worker_closed(d);
    }
}

static void switch_role(struct daemon *d)
{
    renew_stop(d);
    d->switching = true;
    d->stopping = true;
    if (d->agent != NULL) {
        swc_agent_close(d->agent, agent_closed, d);
    } else {
        agent_closed(d);
    }
}

/* A removed node leaves like `swarmc leave` (containers included). */
static void removed_stop(struct daemon *d)
{
    renew_stop(d);
    d->leaving = true;
    d->stopping = true;
    d->leave_req = NULL;
    d->leave_removing = 0;
    d->leave_cleaned = false;
    if (d->agent != NULL) {
        swc_agent_close(d->agent, agent_closed, d);
    } else {
        agent_closed(d);
    }
}

static void h_leave(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    Swarmc__LeaveRequest *r = swarmc__leave_request__unpack(&swc_pb_allocator, len, p);
    const char *refuse = NULL;
    if (r == NULL) {
        refuse = "leave: undecodable request";
    } else if (!d->member) {
        refuse = "this node is not part of a cluster";
    } else if (d->leaving || d->stopping) {
        refuse = "this node is already leaving or stopping";
    } else if (d->role == SWC_ROLE_MANAGER && !r->force) {
        refuse = "this node is a manager: leaving can break the quorum of the cluster and, on the "
                 "last manager, erases the cluster state. Demote it first or use --force";
    }
    bool force = r != NULL && r->force;
    if (r != NULL) {
        swarmc__leave_request__free_unpacked(r, &swc_pb_allocator);
    }
    if (refuse != NULL) {
        Swarmc__LeaveResponse resp = SWARMC__LEAVE_RESPONSE__INIT;
        Swarmc__Error e = SWARMC__ERROR__INIT;
        e.code = d->member ? SWC_ESTATE : SWC_ESTATE;
        e.message = (char *)refuse;
        resp.error = &e;
        reply_pb(req, &resp.base);
        return;
    }
    swc_infof(MOD, "leaving the cluster%s", force ? " (forced)" : "");
    renew_stop(d);
    d->leaving = true;
    d->stopping = true;
    d->leave_req = req;
    d->leave_removing = 0;
    d->leave_cleaned = false;
    if (d->agent != NULL) {
        swc_agent_close(d->agent, agent_closed, d);
    } else {
        agent_closed(d);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    if (d->stopping) {
        return;
    }
    d->stopping = true;
    swc_infof(MOD, "signal %d: shutting down (containers keep running)", signum);
    uv_signal_stop(&d->sigterm);
    uv_signal_stop(&d->sigint);
    renew_stop(d);
    if (d->agent != NULL) {
        swc_agent_close(d->agent, agent_closed, d);
    } else {
        agent_closed(d);
    }
}

/* The control server with the daemon's own methods (not listening yet). */
/* The manager's control methods on the control socket: the socket outlives
 * any one manager (leave, role changes), so requests go to the current one. */
static void h_manager_shim(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct daemon *d = data;
    if (d->manager != NULL && !d->stopping && swc_control_dispatch(d->manager, req, p, len)) {
        return;
    }
    const char *msg = d->member ? "this node is not a manager: run the command against a manager "
                                  "(swarmc -H or SWARMC_HOST)"
                                : "this node is not part of a cluster yet: run `swarmc init` or "
                                  "`swarmc join`";
    if (swc_control_streaming(swc_rpc_req_method(req))) {
        swc_rpc_end(req, SWC_ESTATE, msg);
    } else {
        swc_rpc_reply(req, SWC_ESTATE, msg, NULL, 0);
    }
}

static int control_server(struct daemon *d)
{
    struct swc_rpc_server_opts so = {0};
    so.unix_auth = SWC_RPC_UNIX_ROOT_OR_SELF;
    if (swc_rpc_server_init(d->loop, &so, &d->control_srv) != 0) {
        return SWC_ENOMEM;
    }
    swc_rpc_server_register(d->control_srv, "control.Info", false, h_info, d);
    swc_rpc_server_register(d->control_srv, "control.Init", false, h_init, d);
    swc_rpc_server_register(d->control_srv, "control.JoinTokens", false, h_join_tokens, d);
    swc_rpc_server_register(d->control_srv, "control.JoinCluster", false, h_join_cluster, d);
    swc_rpc_server_register(d->control_srv, "control.Leave", false, h_leave, d);
    swc_rpc_server_register(d->control_srv, "control.RestoreCluster", false, h_restore_cluster, d);
    swc_control_register_shim(d->control_srv, h_manager_shim, d);
    return 0;
}

static int open_control(struct daemon *d)
{
    int rv = control_server(d);
    if (rv == 0) {
        rv = swc_rpc_server_listen_unix(d->control_srv, d->socket_path);
    }
    return rv;
}

/* ---- main ---------------------------------------------------------------------------- */

int swc_daemon_run(const struct swc_daemon_opts *opts)
{
    struct daemon *d = swc_calloc(1, sizeof *d);
    struct swc_err err;
    int rv;
    if (d == NULL) {
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    swc_log_init();
    d->loop = uv_default_loop();
    d->opts = *opts;
    d->exit_code = 0;
    if (opts->dev && opts->state_dir == NULL) {
        snprintf(d->state_dir, sizeof d->state_dir, "/tmp/swarmc-dev.XXXXXX");
        if (mkdtemp(d->state_dir) == NULL) {
            fprintf(stderr, "swarmc daemon: cannot create a temporary state dir: %s\n",
                    strerror(errno));
            return 1;
        }
    } else {
        snprintf(d->state_dir, sizeof d->state_dir, "%s",
                 opts->state_dir ? opts->state_dir : SWC_DEFAULT_STATE_DIR);
    }
    if (mkdir(d->state_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "swarmc daemon: --state-dir %s: %s\n", d->state_dir, strerror(errno));
        return 1;
    }
    if (opts->socket_path != NULL) {
        snprintf(d->socket_path, sizeof d->socket_path, "%s", opts->socket_path);
    } else if (opts->dev) {
        snprintf(d->socket_path, sizeof d->socket_path, "%s/swarmc.sock", d->state_dir);
    } else {
        snprintf(d->socket_path, sizeof d->socket_path, "%s", SWC_DEFAULT_SOCKET);
    }
    snprintf(d->listen_addr, sizeof d->listen_addr, "%s",
             opts->listen_addr ? opts->listen_addr
                               : (opts->dev ? "127.0.0.1:4242" : "0.0.0.0:4242"));
    if (opts->advertise_addr != NULL) {
        snprintf(d->advertise_addr, sizeof d->advertise_addr, "%s", opts->advertise_addr);
    } else if (strncmp(d->listen_addr, "0.0.0.0:", 8) == 0) {
        snprintf(d->advertise_addr, sizeof d->advertise_addr, "127.0.0.1:%s", d->listen_addr + 8);
    } else {
        snprintf(d->advertise_addr, sizeof d->advertise_addr, "%s", d->listen_addr);
    }
    if ((rv = load_or_create_key(d)) != 0) {
        return 1;
    }
    rv = load_cluster(d);
    if (rv != 0 && rv != SWC_ENOENT) {
        return 1;
    }
    uv_timer_init(d->loop, &d->renew_timer);
    d->renew_timer.data = d;
    d->renew_timer_init = true;
    if (control_server(d) != 0) {
        return 1;
    }
    if (d->member) {
        if (start_node(d, false) != 0) {
            return 1;
        }
    } else if (opts->dev) {
        if (do_init(d, &err) != 0) {
            fprintf(stderr, "swarmc daemon --dev: %s\n", swc_err_msg(&err));
            return 1;
        }
    }
    if ((rv = swc_rpc_server_listen_unix(d->control_srv, d->socket_path)) != 0) {
        fprintf(stderr, "swarmc daemon: --socket %s: cannot listen: %s\n", d->socket_path,
                swc_strerror(rv));
        return 1;
    }
    uv_signal_init(d->loop, &d->sigterm);
    uv_signal_init(d->loop, &d->sigint);
    d->sigterm.data = d->sigint.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    swc_infof(MOD, "control socket %s, state %s%s", d->socket_path, d->state_dir,
              d->member ? "" : " (not in a cluster yet: run swarmc init)");
    if (opts->dev) {
        printf("swarmc dev node ready: export SWARMC_HOST=%s\n", d->socket_path);
        fflush(stdout);
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->renew_timer, NULL);
    uv_run(d->loop, UV_RUN_NOWAIT);
    rv = d->exit_code;
    swc_free(d);
    return rv;
}
