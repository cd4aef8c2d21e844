/* Raft's transport over secure tunnels (see raftnet.h).
 *
 * Every tunnel, outbound or inbound, is one struct conn on rn's list, so
 * close can reach them all; a conn leaves the list only in its tunnel's
 * close callback. An outbound conn holds raft's connect request until the
 * tunnel is ready or fails, and answers it exactly once: with the stream,
 * with an error, or with SWC_ECLOSED when rn closes first.
 *
 * The socketpair: our end is attached to the tunnel (which then owns and
 * frees it), raft's end is a uv_pipe_t from swc_malloc that the adapter
 * owns once it is handed over. When either side closes its end, the other
 * reads EOF and the tunnel goes down, which closes the TCP connection.
 *
 * Binding a raft id to a certificate: the HELLO's raft id is only a claim,
 * so without a check any manager certificate could speak as any raft member
 * (vote as it, answer for it). check_binding asks the cluster's record both
 * ways (node -> raft id, raft id -> node) and refuses a contradiction; see
 * raftnet.h for why an absent record passes. */
#include "manager/raftnet.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "net/tunnel.h"

#define MOD "raftnet"

struct conn {
    struct swc_raftnet *rn;
    struct swc_tunnel *t;
    struct swc_raft_connect *req; /* outbound, until answered */
    uint64_t id;                  /* raft id of the peer */
    bool closing;
    struct conn *prev, *next;
};

struct swc_raftnet {
    uv_loop_t *loop;
    struct swc_tunnel_listener *l;
    struct swc_secchan_config ccfg;
    struct swc_identity cself;
    char addr[SWC_RAFT_ADDR_MAX];
    struct swc_raft *r;
    struct swc_raft_transport tp;
    struct conn *conns;
    struct swc_raftnet_binding bind;
    bool has_bind;
    bool closing, listener_open;
    void (*close_cb)(void *);
    void *close_data;
    struct swc_raftnet_stats st;
};

static void maybe_done(struct swc_raftnet *rn)
{
    if (!rn->closing || rn->listener_open || rn->conns != NULL) {
        return;
    }
    void (*cb)(void *) = rn->close_cb;
    void *data = rn->close_data;
    sodium_memzero(&rn->cself, sizeof rn->cself);
    swc_free(rn);
    if (cb != NULL) {
        cb(data);
    }
}

static void conn_closed_cb(void *data)
{
    struct conn *c = data;
    struct swc_raftnet *rn = c->rn;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        rn->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    rn->st.open--;
    swc_free(c);
    maybe_done(rn);
}

static void conn_close(struct conn *c, int status)
{
    if (c->req != NULL) {
        swc_raft_connect_done(c->req, NULL, status);
        c->req = NULL;
    }
    if (c->closing) {
        return;
    }
    c->closing = true;
    swc_tunnel_close(c->t, conn_closed_cb, c);
}

static struct conn *conn_new(struct swc_raftnet *rn)
{
    struct conn *c = swc_calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->rn = rn;
    c->next = rn->conns;
    if (rn->conns != NULL) {
        rn->conns->prev = c;
    }
    rn->conns = c;
    rn->st.open++;
    return c;
}

static void tunnel_down_cb(struct swc_tunnel *t, int status, void *data)
{
    struct conn *c = data;
    swc_debugf(MOD, "connection with raft peer %llu closed: %s", (unsigned long long)c->id,
               swc_strerror(status));
    conn_close(c, SWC_EUNAVAIL);
}

static void free_handle_cb(uv_handle_t *h)
{
    swc_free(h);
}

static uv_pipe_t *pipe_end(uv_loop_t *loop, int fd)
{
    uv_pipe_t *p = swc_malloc(sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    if (uv_pipe_init(loop, p, 0) != 0) {
        swc_free(p);
        return NULL;
    }
    if (uv_pipe_open(p, fd) != 0) {
        uv_close((uv_handle_t *)p, free_handle_cb);
        return NULL;
    }
    return p;
}

/* A socketpair: *ours is attached to c's tunnel, *theirs is for raft.
 * 0 or a SWC_E* code (nothing is left open then). */
static int make_pair(struct conn *c, uv_stream_t **theirs)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return SWC_EIO;
    }
    uv_pipe_t *a = pipe_end(c->rn->loop, sv[0]);
    if (a == NULL) {
        close(sv[0]);
        close(sv[1]);
        return SWC_ENOMEM;
    }
    uv_pipe_t *b = pipe_end(c->rn->loop, sv[1]);
    if (b == NULL) {
        close(sv[1]);
        uv_close((uv_handle_t *)a, free_handle_cb);
        return SWC_ENOMEM;
    }
    int rc = swc_tunnel_attach(c->t, (uv_stream_t *)a, tunnel_down_cb, c);
    if (rc != 0) {
        uv_close((uv_handle_t *)a, free_handle_cb);
        uv_close((uv_handle_t *)b, free_handle_cb);
        return rc;
    }
    *theirs = (uv_stream_t *)b;
    return 0;
}

/* 0 when node_id may speak as raft_id, else SWC_EAUTH with why filled. */
static int check_binding(const struct swc_raftnet *rn, const char *node_id, uint64_t raft_id,
                         char *why, size_t size)
{
    uint64_t bound = 0;
    char owner[SWC_CERT_ID_MAX + 1];
    if (!rn->has_bind) {
        return 0;
    }
    if (rn->bind.raft_id_of(rn->bind.data, node_id, &bound) == 0 && bound != 0 &&
        bound != raft_id) {
        snprintf(why, size, "node %s claims raft id %llu but is raft member %llu", node_id,
                 (unsigned long long)raft_id, (unsigned long long)bound);
        return SWC_EAUTH;
    }
    if (rn->bind.node_of(rn->bind.data, raft_id, owner, sizeof owner) == 0 &&
        strcmp(owner, node_id) != 0) {
        snprintf(why, size, "node %s claims raft id %llu, which belongs to node %s", node_id,
                 (unsigned long long)raft_id, owner);
        return SWC_EAUTH;
    }
    return 0;
}

void swc_raftnet_set_binding(struct swc_raftnet *rn, const struct swc_raftnet_binding *b)
{
    rn->has_bind = b != NULL && b->raft_id_of != NULL && b->node_of != NULL;
    if (rn->has_bind) {
        rn->bind = *b;
    }
}

/* ---- outbound ------------------------------------------------------------------- */

static void tunnel_connect_cb(struct swc_tunnel *t, int status, void *data)
{
    struct conn *c = data;
    uv_stream_t *s = NULL;
    if (status != 0) {
        swc_debugf(MOD, "connect to raft peer %llu: %s", (unsigned long long)c->id,
                   swc_strerror(status));
        conn_close(c, status);
        return;
    }
    const struct swc_cert *peer = swc_tunnel_peer(t);
    char why[256];
    if (peer == NULL || check_binding(c->rn, peer->node_id, c->id, why, sizeof why) != 0) {
        swc_warnf(MOD, "connect to raft peer %llu: wrong server: %s", (unsigned long long)c->id,
                  peer == NULL ? "no certificate" : why);
        c->rn->st.dropped++;
        conn_close(c, SWC_EAUTH);
        return;
    }
    int rc = make_pair(c, &s);
    if (rc != 0) {
        swc_warnf(MOD, "connect to raft peer %llu: cannot relay: %s", (unsigned long long)c->id,
                  swc_strerror(rc));
        conn_close(c, rc);
        return;
    }
    c->rn->st.connects++;
    swc_raft_connect_done(c->req, s, 0);
    c->req = NULL;
}

static int rn_connect(void *data, uint64_t id, const char *address, struct swc_raft_connect *req)
{
    struct swc_raftnet *rn = data;
    if (rn->closing) {
        return SWC_ECLOSED;
    }
    if (rn->r == NULL) {
        return SWC_ESTATE;
    }
    uint8_t hello[1 + 8 + 2 + SWC_RAFT_ADDR_MAX];
    size_t alen = strlen(rn->addr);
    hello[0] = SWC_RAFTNET_HELLO_VERSION;
    swc_put_u64(hello + 1, swc_raft_id(rn->r));
    hello[9] = (uint8_t)(alen >> 8);
    hello[10] = (uint8_t)alen;
    memcpy(hello + 11, rn->addr, alen);
    struct conn *c = conn_new(rn);
    if (c == NULL) {
        return SWC_ENOMEM;
    }
    c->id = id;
    int rc = swc_tunnel_connect(rn->loop, address, &rn->ccfg, hello, 11 + alen, tunnel_connect_cb,
                                c, &c->t);
    if (rc != 0) {
        c->closing = true;
        c->t = NULL;
        conn_closed_cb(c); /* never had a tunnel: unlink and free now */
        return rc;
    }
    c->req = req;
    return 0;
}

/* ---- inbound -------------------------------------------------------------------- */

/* Decode a HELLO; 0 or SWC_EPROTO. */
static int hello_decode(const uint8_t *p, size_t len, uint64_t *id, char addr[SWC_RAFT_ADDR_MAX])
{
    if (len < 11 || p[0] != SWC_RAFTNET_HELLO_VERSION) {
        return SWC_EPROTO;
    }
    *id = swc_get_u64(p + 1);
    size_t alen = ((size_t)p[9] << 8) | p[10];
    if (*id == 0 || alen == 0 || alen >= SWC_RAFT_ADDR_MAX || 11 + alen != len ||
        memchr(p + 11, '\0', alen) != NULL) {
        return SWC_EPROTO;
    }
    memcpy(addr, p + 11, alen);
    addr[alen] = '\0';
    return 0;
}

static void refuse(struct conn *c, const char *who, const char *why)
{
    swc_warnf(MOD, "refused a raft connection from %s: %s", who, why);
    c->rn->st.refused++;
    conn_close(c, SWC_EAUTH);
}

static void accept_cb(struct swc_tunnel_listener *l, struct swc_tunnel *t,
                      const struct swc_cert *peer, const uint8_t *hello, size_t len, void *data)
{
    struct swc_raftnet *rn = data;
    struct conn *c = conn_new(rn);
    if (c == NULL) {
        swc_tunnel_close(t, NULL, NULL);
        return;
    }
    c->t = t;
    const char *who = peer != NULL ? peer->node_id : "an anonymous node";
    char addr[SWC_RAFT_ADDR_MAX];
    if (peer == NULL || peer->role != SWC_ROLE_MANAGER) {
        refuse(c, who, "not a manager certificate");
        return;
    }
    if (hello_decode(hello, len, &c->id, addr) != 0) {
        refuse(c, who, "malformed hello");
        return;
    }
    char why[256];
    if (check_binding(rn, peer->node_id, c->id, why, sizeof why) != 0) {
        refuse(c, who, why);
        return;
    }
    if (rn->r == NULL || rn->closing) {
        refuse(c, who, "raft is not running here");
        return;
    }
    uv_stream_t *s;
    int rc = make_pair(c, &s);
    if (rc != 0) {
        swc_warnf(MOD, "raft connection from %s: cannot relay: %s", who, swc_strerror(rc));
        conn_close(c, rc);
        return;
    }
    rc = swc_raft_accept(rn->r, c->id, addr, s);
    if (rc != 0) {
        uv_close((uv_handle_t *)s, free_handle_cb);
        refuse(c, who, "raft is not taking connections");
        return;
    }
    swc_debugf(MOD, "raft peer %llu (%s, %s) connected", (unsigned long long)c->id, who, addr);
    rn->st.accepts++;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static void set_client_cfg(struct swc_raftnet *rn, const struct swc_secchan_config *client_cfg)
{
    rn->ccfg = *client_cfg;
    rn->ccfg.is_client = true;
    if (client_cfg->self != NULL) {
        rn->cself = *client_cfg->self;
        rn->ccfg.self = &rn->cself;
    }
}

void swc_raftnet_set_config(struct swc_raftnet *rn, const struct swc_secchan_config *client_cfg,
                            const struct swc_secchan_config *server_cfg)
{
    set_client_cfg(rn, client_cfg);
    swc_tunnel_listener_set_config(rn->l, server_cfg);
}

int swc_raftnet_init(uv_loop_t *loop, const char *listen_addr,
                     const struct swc_secchan_config *client_cfg,
                     const struct swc_secchan_config *server_cfg, struct swc_raftnet **out)
{
    if (listen_addr == NULL || strlen(listen_addr) >= SWC_RAFT_ADDR_MAX || client_cfg == NULL ||
        server_cfg == NULL) {
        return SWC_EINVAL;
    }
    struct swc_raftnet *rn = swc_calloc(1, sizeof *rn);
    if (rn == NULL) {
        return SWC_ENOMEM;
    }
    rn->loop = loop;
    snprintf(rn->addr, sizeof rn->addr, "%s", listen_addr);
    set_client_cfg(rn, client_cfg);
    rn->tp.data = rn;
    rn->tp.connect = rn_connect;
    int rc = swc_tunnel_listen(loop, listen_addr, server_cfg, accept_cb, rn, &rn->l);
    if (rc != 0) {
        sodium_memzero(&rn->cself, sizeof rn->cself);
        swc_free(rn);
        return rc;
    }
    rn->listener_open = true;
    *out = rn;
    return 0;
}

const struct swc_raft_transport *swc_raftnet_transport(struct swc_raftnet *rn)
{
    return &rn->tp;
}

void swc_raftnet_bind(struct swc_raftnet *rn, struct swc_raft *r)
{
    rn->r = r;
}

static void listener_closed_cb(void *data)
{
    struct swc_raftnet *rn = data;
    rn->listener_open = false;
    maybe_done(rn);
}

void swc_raftnet_close(struct swc_raftnet *rn, void (*cb)(void *data), void *data)
{
    rn->closing = true;
    rn->r = NULL;
    rn->close_cb = cb;
    rn->close_data = data;
    for (struct conn *c = rn->conns; c != NULL; c = c->next) {
        conn_close(c, SWC_ECLOSED);
    }
    swc_tunnel_listener_close(rn->l, listener_closed_cb, rn);
}

void swc_raftnet_stats(const struct swc_raftnet *rn, struct swc_raftnet_stats *out)
{
    *out = rn->st;
}
