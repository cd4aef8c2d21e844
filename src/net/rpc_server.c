/* RPC server: the method table, TCP and unix listeners, and the list of
 * accepted connections (rpc_conn.c runs each one).
 *
 * A unix listener creates its socket with mode 0660 and checks every
 * client's SO_PEERCRED against the server's unix_auth rule before any
 * frame is read; the credentials are then part of the peer identity that
 * handlers see. Closing the server closes its listeners and connections; it
 * finishes (frees, then calls back) once every listener and connection has
 * reported back from its close callback.
 *
 * Secure TCP listeners pace their accepts: ACCEPT_BURST connections per
 * loop turn, the rest wait in the kernel backlog (a connection left
 * unaccepted in the callback makes libuv stop polling the listener until
 * uv_accept). A 1 ms timer accepts it and refills, so timers and I/O of
 * established connections (raft) run between bursts of handshakes. */
#define _GNU_SOURCE
#include "net/rpc_int.h"

#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"

struct rpc_listener {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_handle_t handle;
        uv_stream_t stream;
    } h;
    struct swc_rpc_server *srv;
    struct rpc_listener *next;
    bool is_pipe;
    bool secure;
    struct swc_secchan_config sec_cfg;
    struct swc_identity sec_self;
    char path[108];
    /* Accept pacing (secure TCP listeners): at most ACCEPT_BURST
     * connections per refill; past that the connection the kernel handed
     * us waits unaccepted (libuv stops polling the listener) until the pace
     * timer, in a later loop turn, accepts it and refills. */
    uv_timer_t pace;
    unsigned budget;
    bool waiting; /* a connection waits to be accepted */
    bool pace_inited;
    int open_handles;
};

/* New secure connections accepted per loop turn. Each costs a handshake
 * (key exchange and signature checks, ~0.1-0.3 ms): after a leader dies,
 * thousands of workers reconnect at once, and accepting them all in one
 * turn would hold back raft's ticks, heartbeats and votes for seconds. */
#define ACCEPT_BURST 16

int swc_rpc_server_init(uv_loop_t *loop, const struct swc_rpc_server_opts *opts,
                        struct swc_rpc_server **out)
{
    struct swc_rpc_server *srv = swc_calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return SWC_ENOMEM;
    }
    srv->loop = loop;
    if (opts != NULL) {
        srv->opts = *opts;
    }
    srv->self_uid = getuid();
    uv_timer_init(loop, &srv->close_handle);
    srv->close_handle.data = srv;
    *out = srv;
    return 0;
}

int swc_rpc_server_register(struct swc_rpc_server *srv, const char *method, bool streaming,
                            swc_rpc_handler handler, void *data)
{
    size_t n = method != NULL ? strlen(method) : 0;
    if (n == 0 || n > SWC_RPC_METHOD_MAX || handler == NULL) {
        return SWC_EINVAL;
    }
    if (swc_rpc_server_method(srv, method) != NULL) {
        return SWC_EEXIST;
    }
    struct rpc_method *m = swc_calloc(1, sizeof(*m));
    if (m == NULL) {
        return SWC_ENOMEM;
    }
    memcpy(m->name, method, n + 1);
    m->streaming = streaming;
    m->handler = handler;
    m->data = data;
    swc_rpc_hash_oom = 0;
    HASH_ADD_STR(srv->methods, name, m);
    if (swc_rpc_hash_oom) {
        swc_free(m);
        return SWC_ENOMEM;
    }
    return 0;
}

const struct rpc_method *swc_rpc_server_method(struct swc_rpc_server *srv, const char *name)
{
    struct rpc_method *m = NULL;
    HASH_FIND_STR(srv->methods, name, m);
    return m;
}

/* Check a unix client's credentials; fills the peer. */
static int check_peer_cred(struct swc_rpc_server *srv, struct swc_rpc_conn *conn)
{
    uv_os_fd_t fd;
    if (uv_fileno(&conn->h.handle, &fd) != 0) {
        return SWC_EIO;
    }
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        return SWC_EIO;
    }
    conn->peer.has_cred = true;
    conn->peer.uid = cred.uid;
    conn->peer.gid = cred.gid;
    conn->peer.pid = cred.pid;
    if (srv->opts.unix_auth == SWC_RPC_UNIX_ROOT_OR_SELF && cred.uid != 0 &&
        cred.uid != srv->self_uid) {
        return SWC_EAUTH;
    }
    return 0;
}

static void accept_one(struct rpc_listener *l);

/* A later turn: refill the budget and accept the connection that waited. */
static void pace_cb(uv_timer_t *t)
{
    struct rpc_listener *l = t->data;
    l->budget = ACCEPT_BURST;
    if (l->waiting) {
        l->waiting = false;
        accept_one(l); /* re-arms the listener: the rest come through connection_cb */
    }
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct rpc_listener *l = server->data;
    if (status < 0) {
        swc_warnf(RPC_LOG, "accept: %s", uv_strerror(status));
        return;
    }
    if (l->pace_inited) {
        if (l->budget == 0) {
            /* Leave it unaccepted: libuv stops reading the listener until
             * uv_accept, which pace_cb calls after the timers had a turn. */
            l->waiting = true;
            l->srv->stats.accept_deferred++;
            if (!uv_is_active((uv_handle_t *)&l->pace)) {
                uv_timer_start(&l->pace, pace_cb, 1, 0);
            }
            return;
        }
        l->budget--;
        if (!uv_is_active((uv_handle_t *)&l->pace)) {
            uv_timer_start(&l->pace, pace_cb, 1, 0);
        }
    }
    accept_one(l);
}

static void accept_one(struct rpc_listener *l)
{
    struct swc_rpc_server *srv = l->srv;
    uv_stream_t *server = &l->h.stream;
    struct swc_rpc_conn *conn;
    if (swc_rpc_conn_new(srv->loop, srv, l->is_pipe, &conn) != 0) {
        swc_warnf(RPC_LOG, "accept: out of memory");
        if (l->pace_inited) { /* try again later: unaccepted, libuv stops reading */
            l->waiting = true;
            uv_timer_start(&l->pace, pace_cb, 100, 0);
        }
        return;
    }
    if (srv->opts.max_frame != 0) {
        conn->max_frame = srv->opts.max_frame;
    }
    if (srv->opts.high_water != 0) {
        conn->high_water = srv->opts.high_water;
    }
    conn->srv_next = srv->conns;
    if (srv->conns != NULL) {
        srv->conns->srv_prev = conn;
    }
    srv->conns = conn;
    srv->stats.accepted++;
    srv->stats.active++;
    if (uv_accept(server, &conn->h.stream) != 0) {
        swc_rpc_conn_down(conn, SWC_EIO, "accept failed");
        return;
    }
    if (l->is_pipe) {
        /* Listing replies are megabytes (10,000 tasks: 1.6 MB). With the
         * default 208 KiB send buffer a reply goes out in pieces, each
         * waiting for the client to read and for this loop to be scheduled
         * again, which on a busy host cost more than building the reply.
         * A bigger buffer (the kernel caps it at net.core.wmem_max) lets
         * one write hand it all over; only local clients get it. */
        int sndbuf = 4 << 20;
        (void)uv_send_buffer_size(&conn->h.handle, &sndbuf);
        snprintf(conn->peer.addr, sizeof(conn->peer.addr), "%s", l->path);
        int rc = check_peer_cred(srv, conn);
        if (rc != 0) {
            char reason[96];
            snprintf(reason, sizeof(reason), "unix client uid %u refused",
                     (unsigned)conn->peer.uid);
            swc_rpc_conn_down(conn, rc, reason);
            return;
        }
    }
    swc_rpc_conn_start_accepted(conn, l->secure ? &l->sec_cfg : NULL);
}

static void server_maybe_finish(struct swc_rpc_server *srv);

static void listener_close_cb(uv_handle_t *h)
{
    struct rpc_listener *l = h->data;
    struct swc_rpc_server *srv = l->srv;
    if (--l->open_handles > 0) {
        return;
    }
    srv->nlisteners--;
    sodium_memzero(&l->sec_self, sizeof(l->sec_self));
    swc_free(l);
    server_maybe_finish(srv);
}

/* Close the listener's handles; it is freed when the last one closed. */
static void close_listener(struct rpc_listener *l)
{
    l->open_handles = 1;
    if (l->pace_inited) {
        l->open_handles++;
        uv_close((uv_handle_t *)&l->pace, listener_close_cb);
    }
    uv_close(&l->h.handle, listener_close_cb);
}

static int add_listener(struct swc_rpc_server *srv, struct rpc_listener *l)
{
    l->srv = srv;
    l->h.handle.data = l;
    int rc = uv_listen(&l->h.stream, 128, connection_cb);
    if (rc != 0) {
        swc_errorf(RPC_LOG, "listen: %s", uv_strerror(rc));
        srv->nlisteners++;
        l->next = NULL;
        close_listener(l);
        return SWC_EIO;
    }
    l->next = srv->listeners;
    srv->listeners = l;
    srv->nlisteners++;
    return 0;
}

int swc_rpc_server_listen_tcp(struct swc_rpc_server *srv, const char *addr,
                              const struct swc_secchan_config *secure)
{
    if (srv->closing || addr == NULL) {
        return SWC_EINVAL;
    }
    struct sockaddr_storage ss;
    char host[128], port[16];
    if (swc_rpc_parse_addr(addr, &ss, host, sizeof(host), port, sizeof(port)) != 0) {
        return SWC_EINVAL; /* listen addresses must be numeric */
    }
    struct rpc_listener *l = swc_calloc(1, sizeof(*l));
    if (l == NULL) {
        return SWC_ENOMEM;
    }
    if (secure != NULL) {
        l->secure = true;
        swc_rpc_copy_secure(&l->sec_cfg, &l->sec_self, secure);
        l->sec_cfg.is_client = false;
    }
    if (secure != NULL || srv->opts.accept_pacing) {
        uv_timer_init(srv->loop, &l->pace);
        l->pace.data = l;
        l->pace_inited = true;
        l->budget = ACCEPT_BURST;
    }
    uv_tcp_init(srv->loop, &l->h.tcp);
    l->h.handle.data = l;
    int rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, 0);
    if (rc != 0) {
        swc_errorf(RPC_LOG, "bind %s: %s", addr, uv_strerror(rc));
        l->srv = srv;
        srv->nlisteners++;
        close_listener(l);
        return SWC_EIO;
    }
    rc = add_listener(srv, l);
    if (rc != 0) {
        return rc;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if (uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&bound, &len) == 0) {
        srv->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                                : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    }
    swc_infof(RPC_LOG, "listening on %s (port %d%s)", addr, srv->port,
              secure != NULL ? ", secure" : "");
    return 0;
}

int swc_rpc_server_listen_unix(struct swc_rpc_server *srv, const char *path)
{
    if (srv->closing || path == NULL || *path == '\0' ||
        strlen(path) >= sizeof(((struct rpc_listener *)0)->path)) {
        return SWC_EINVAL;
    }
    struct rpc_listener *l = swc_calloc(1, sizeof(*l));
    if (l == NULL) {
        return SWC_ENOMEM;
    }
    l->is_pipe = true;
    snprintf(l->path, sizeof(l->path), "%s", path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path); /* stale socket of an earlier run */
    }
    uv_pipe_init(srv->loop, &l->h.pipe, 0);
    l->h.handle.data = l;
    /* Created 0660 from the start: no window where others may connect. */
    mode_t old = umask(0117);
    int rc = uv_pipe_bind(&l->h.pipe, path);
    umask(old);
    if (rc == 0 && chmod(path, 0660) != 0) {
        rc = UV_EIO;
    }
    if (rc != 0) {
        swc_errorf(RPC_LOG, "bind %s: %s", path, uv_strerror(rc));
        l->srv = srv;
        l->path[0] = '\0'; /* not ours to unlink */
        srv->nlisteners++;
        close_listener(l);
        return SWC_EIO;
    }
    rc = add_listener(srv, l);
    if (rc == 0) {
        swc_infof(RPC_LOG, "listening on unix socket %s", path);
    }
    return rc;
}

int swc_rpc_server_port(const struct swc_rpc_server *srv, int *port)
{
    if (srv->port == 0) {
        return SWC_ENOENT;
    }
    *port = srv->port;
    return 0;
}

static void server_close_cb(uv_handle_t *h)
{
    struct swc_rpc_server *srv = h->data;
    struct rpc_method *m, *tmp;
    HASH_ITER(hh, srv->methods, m, tmp)
    {
        HASH_DEL(srv->methods, m);
        swc_free(m);
    }
    swc_rpc_server_close_cb cb = srv->close_cb;
    void *data = srv->close_data;
    swc_free(srv);
    if (cb != NULL) {
        cb(data);
    }
}

static void server_maybe_finish(struct swc_rpc_server *srv)
{
    if (!srv->closing || srv->nlisteners > 0 || srv->conns != NULL ||
        uv_is_closing((uv_handle_t *)&srv->close_handle)) {
        return;
    }
    uv_close((uv_handle_t *)&srv->close_handle, server_close_cb);
}

void swc_rpc_server_conn_gone(struct swc_rpc_server *srv, struct swc_rpc_conn *conn)
{
    if (conn->srv_prev != NULL) {
        conn->srv_prev->srv_next = conn->srv_next;
    } else {
        srv->conns = conn->srv_next;
    }
    srv->stats.active--;
    if (conn->srv_next != NULL) {
        conn->srv_next->srv_prev = conn->srv_prev;
    }
    server_maybe_finish(srv);
}

int swc_rpc_server_set_secure(struct swc_rpc_server *srv, const struct swc_secchan_config *secure)
{
    if (secure == NULL) {
        return SWC_EINVAL;
    }
    int n = 0;
    for (struct rpc_listener *l = srv->listeners; l != NULL; l = l->next) {
        if (l->secure) {
            swc_rpc_copy_secure(&l->sec_cfg, &l->sec_self, secure);
            l->sec_cfg.is_client = false;
            n++;
        }
    }
    return n > 0 ? 0 : SWC_ENOENT;
}

void swc_rpc_server_stats(const struct swc_rpc_server *srv, struct swc_rpc_server_stats *out)
{
    *out = srv->stats;
}

void swc_rpc_server_close(struct swc_rpc_server *srv, swc_rpc_server_close_cb cb, void *data)
{
    srv->closing = true;
    srv->close_cb = cb;
    srv->close_data = data;
    while (srv->listeners != NULL) {
        struct rpc_listener *l = srv->listeners;
        srv->listeners = l->next;
        if (l->is_pipe && l->path[0] != '\0') {
            unlink(l->path);
        }
        close_listener(l);
    }
    for (struct swc_rpc_conn *c = srv->conns; c != NULL; c = c->srv_next) {
        swc_rpc_conn_down(c, SWC_ECANCELED, "server closing");
    }
    server_maybe_finish(srv);
}
