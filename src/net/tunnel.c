/* The secure byte tunnel (see tunnel.h for the wire and the contract).
 *
 * A tunnel goes RESOLVING -> CONNECTING -> HANDSHAKE -> HELLO -> READY ->
 * RELAY, or straight to DOWN from any of them. HELLO means "keys are set,
 * waiting for the first sealed frame": the server waits for the client's
 * HELLO, the client for the server's ACCEPT. READY waits for the owner to
 * attach a local stream; TCP reading is stopped meanwhile, and frames that
 * already arrived stay in the read buffer until attach kicks the timer.
 *
 * Each direction is one "side" (a stream and the bytes queued on it).
 * Writes first try uv_try_write straight from the caller's bytes and copy
 * only what the kernel refused into a chunk queued with uv_write, so the
 * common case costs no allocation. Frames read from TCP are opened in place
 * in the read buffer.
 *
 * Going DOWN closes the TCP handle and the local stream at once (the peer
 * and the local reader see EOF); the memory goes only when the owner closed
 * the tunnel and every handle reported its close. One timer per tunnel
 * enforces the handshake deadline and runs deferred work (a synchronous
 * connect failure, frames buffered before attach). */
#include "net/tunnel.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"
#include "net/rpc_int.h"
#include "base/log.h"
#include "net/frame.h"

#define MOD        "tunnel"
#define READ_CHUNK (64u * 1024u)
#define WIRE_MAX   (SWC_TUNNEL_FRAME_MAX + SWC_SECCHAN_OVERHEAD)
#define ADDR_MAX   256

enum tstate { T_RESOLVING, T_CONNECTING, T_HANDSHAKE, T_HELLO, T_READY, T_RELAY, T_DOWN };

struct side {
    struct swc_tunnel *t;
    uv_stream_t *s;
    size_t wq;      /* bytes waiting in uv_write requests */
    size_t *wq_max; /* in the stats */
};

struct chunk {
    uv_write_t w;
    struct side *side;
    size_t len;
    uint8_t data[];
};

struct swc_tunnel {
    uv_loop_t *loop;
    bool is_client;
    enum tstate state;
    int down_status;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    bool gai_pending;
    int handles; /* open handles: tcp, timer, local */
    int deferred_err;
    char addr[ADDR_MAX];
    struct side net, loc;
    struct swc_secchan_config cfg;
    struct swc_identity self;
    struct swc_secchan *sc;
    bool hs_done;
    struct swc_buf rbuf;
    size_t rstart;
    uint8_t *lbuf; /* local reads: prefix | plaintext | room for the tag */
    uint8_t *hello;
    size_t hello_len;
    bool tcp_reading, local_reading, tcp_bp, loc_bp;
    bool owner_closing;
    swc_tunnel_connect_cb connect_cb;
    void *connect_data;
    swc_tunnel_down_cb down_cb;
    void *down_data;
    swc_tunnel_close_cb close_cb;
    void *close_data;
    /* server side, until handed to the owner */
    struct swc_tunnel_listener *l;
    struct swc_tunnel *prev, *next;
    struct swc_tunnel_stats st;
};

struct swc_tunnel_listener {
    uv_loop_t *loop;
    uv_tcp_t srv;
    struct swc_secchan_config cfg;
    struct swc_identity self;
    swc_tunnel_accept_cb accept_cb;
    void *data;
    struct swc_tunnel *pending; /* handshaking, owned by the listener */
    int nclosing;               /* tunnels the listener closed, not yet freed */
    bool srv_open, closing;
    uint64_t refused;
    swc_tunnel_close_cb close_cb;
    void *close_data;
};

static void tunnel_down(struct swc_tunnel *t, int status, const char *reason);
static void process_frames(struct swc_tunnel *t);
static void update_tcp_reading(struct swc_tunnel *t);
static void update_local_reading(struct swc_tunnel *t);
static void listener_maybe_free(struct swc_tunnel_listener *l);

/* ---- address parsing ----------------------------------------------------------- */

/* Split "host:port" or "[v6]:port" (the RPC layer's parser); 0 or SWC_EINVAL. */
static int split_addr(const char *addr, char *host, size_t hostsz, int *port)
{
    struct sockaddr_storage ss;
    char p[8];
    int rc = addr != NULL ? swc_rpc_parse_addr(addr, &ss, host, hostsz, p, sizeof p) : SWC_EINVAL;
    if (rc != 0 && rc != SWC_ENOENT) { /* ENOENT: a name, split all the same */
        return SWC_EINVAL;
    }
    *port = atoi(p);
    return 0;
}

/* An IP literal into ss: 0, or SWC_ENOENT for a name to resolve. */
static int ip_literal(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) {
        return 0;
    }
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) {
        return 0;
    }
    return SWC_ENOENT;
}

static void copy_cfg(struct swc_secchan_config *dst, struct swc_identity *self,
                     const struct swc_secchan_config *src, bool is_client)
{
    *dst = *src;
    dst->is_client = is_client;
    if (src->self != NULL) {
        *self = *src->self;
        dst->self = self;
    }
}

/* ---- writing ----------------------------------------------------------------------- */

static void chunk_write_cb(uv_write_t *w, int status)
{
    struct chunk *c = w->data;
    struct side *side = c->side;
    struct swc_tunnel *t = side->t;
    side->wq -= c->len;
    swc_free(c);
    if (status < 0) {
        if (status != UV_ECANCELED) {
            tunnel_down(t, SWC_EIO, uv_strerror(status));
        }
        return;
    }
    if (t->state != T_RELAY) {
        return;
    }
    if (side == &t->net && t->loc_bp && side->wq <= SWC_TUNNEL_HIGH_WATER / 2) {
        t->loc_bp = false;
        update_local_reading(t);
    } else if (side == &t->loc && t->tcp_bp && side->wq <= SWC_TUNNEL_HIGH_WATER / 2) {
        t->tcp_bp = false;
        process_frames(t);
    }
}

/* Write n bytes to a side: straight to the kernel when nothing is queued,
 * the rest copied into a queued chunk. 0 or SWC_EIO / SWC_ENOMEM. */
static int side_write(struct side *side, const uint8_t *p, size_t n)
{
    if (side->wq == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int w = uv_try_write(side->s, &b, 1);
        if (w == UV_EAGAIN || w == UV_ENOSYS) {
            w = 0;
        } else if (w < 0) {
            return SWC_EIO;
        }
        p += w;
        n -= (size_t)w;
        if (n == 0) {
            return 0;
        }
    }
    struct chunk *c = swc_malloc(sizeof *c + n);
    if (c == NULL) {
        return SWC_ENOMEM;
    }
    memcpy(c->data, p, n);
    c->side = side;
    c->len = n;
    c->w.data = c;
    uv_buf_t b = uv_buf_init((char *)c->data, (unsigned)n);
    if (uv_write(&c->w, side->s, &b, 1, chunk_write_cb) != 0) {
        swc_free(c);
        return SWC_EIO;
    }
    side->wq += n;
    if (side->wq > *side->wq_max) {
        *side->wq_max = side->wq;
    }
    return 0;
}

/* Send one frame to the peer: raw (handshake) or sealed. */
static int send_frame(struct swc_tunnel *t, const uint8_t *p, size_t n, bool seal)
{
    size_t wire = n + (seal ? SWC_SECCHAN_OVERHEAD : 0);
    uint8_t *f = swc_malloc(SWC_FRAME_LEN_SIZE + wire);
    if (f == NULL) {
        return SWC_ENOMEM;
    }
    if (n > 0) {
        memcpy(f + SWC_FRAME_LEN_SIZE, p, n);
    }
    int rc = seal ? swc_secchan_seal_inplace(t->sc, f + SWC_FRAME_LEN_SIZE, n) : 0;
    if (rc == 0) {
        swc_frame_put_len(f, (uint32_t)wire);
        rc = side_write(&t->net, f, SWC_FRAME_LEN_SIZE + wire);
    }
    swc_free(f);
    return rc;
}

/* ---- closing ------------------------------------------------------------------------ */

static void maybe_free(struct swc_tunnel *t)
{
    if (!t->owner_closing || t->handles > 0 || t->gai_pending) {
        return;
    }
    swc_tunnel_close_cb cb = t->close_cb;
    void *data = t->close_data;
    swc_secchan_destroy(t->sc);
    swc_buf_free(&t->rbuf);
    swc_free(t->lbuf);
    swc_free(t->hello);
    sodium_memzero(&t->self, sizeof t->self);
    swc_free(t);
    if (cb != NULL) {
        cb(data);
    }
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct swc_tunnel *t = h->data;
    t->handles--;
    maybe_free(t);
}

static void local_closed_cb(uv_handle_t *h)
{
    struct swc_tunnel *t = h->data;
    swc_free(h);
    t->handles--;
    maybe_free(t);
}

static bool is_auth_status(int status)
{
    return status == SWC_EAUTH || status == SWC_EEXPIRED || status == SWC_EPROTO ||
           status == SWC_ETOOBIG;
}

static void listener_drop(struct swc_tunnel_listener *l, struct swc_tunnel *t);

/* Take t down: close both ends now and tell whoever owns it. */
static void tunnel_down(struct swc_tunnel *t, int status, const char *reason)
{
    if (t->state == T_DOWN) {
        return;
    }
    enum tstate prev = t->state;
    t->state = T_DOWN;
    t->down_status = status;
    if (is_auth_status(status)) {
        swc_warnf(MOD, "%s %s closed: %s (%s)", t->is_client ? "tunnel to" : "tunnel from", t->addr,
                  reason, swc_strerror(status));
    } else {
        swc_debugf(MOD, "%s %s closed: %s (%s)", t->is_client ? "tunnel to" : "tunnel from",
                   t->addr, reason, swc_strerror(status));
    }
    if (!uv_is_closing((uv_handle_t *)&t->tcp)) {
        uv_close((uv_handle_t *)&t->tcp, handle_closed_cb);
    }
    if (t->loc.s != NULL && !uv_is_closing((uv_handle_t *)t->loc.s)) {
        uv_close((uv_handle_t *)t->loc.s, local_closed_cb);
    }
    if (!uv_is_closing((uv_handle_t *)&t->timer)) {
        uv_timer_stop(&t->timer);
    }
    if (t->owner_closing) {
        return;
    }
    if (t->l != NULL) {
        t->l->refused++;
        listener_drop(t->l, t);
    } else if (t->is_client && prev < T_READY) {
        int st = status == SWC_ECANCELED ? SWC_EUNAVAIL : status;
        if (t->connect_cb != NULL) {
            t->connect_cb(t, st, t->connect_data);
        }
    } else if (prev == T_RELAY && t->down_cb != NULL) {
        t->down_cb(t, status, t->down_data);
    }
}

void swc_tunnel_close(struct swc_tunnel *t, swc_tunnel_close_cb cb, void *data)
{
    t->owner_closing = true;
    t->close_cb = cb;
    t->close_data = data;
    tunnel_down(t, SWC_ECANCELED, "closed by its owner");
    if (t->gai_pending) {
        uv_cancel((uv_req_t *)&t->gai);
    }
    if (!uv_is_closing((uv_handle_t *)&t->timer)) {
        uv_close((uv_handle_t *)&t->timer, handle_closed_cb);
    }
    maybe_free(t);
}

/* ---- reading TCP ------------------------------------------------------------------- */

static void handshake_frame(struct swc_tunnel *t, const uint8_t *p, size_t len)
{
    struct swc_buf out;
    swc_buf_init(&out);
    bool done = false;
    int rc = swc_secchan_handshake(t->sc, p, len, &out, &done);
    if (rc == 0 && out.len > 0) {
        rc = send_frame(t, out.data, out.len, false);
    }
    swc_buf_free(&out);
    if (rc != 0) {
        char reason[SWC_ERRMSG_SIZE];
        snprintf(reason, sizeof reason, "secure handshake: %s", swc_secchan_errmsg(t->sc));
        tunnel_down(t, rc, reason);
        return;
    }
    if (!done) {
        return;
    }
    t->hs_done = true;
    t->state = T_HELLO;
    if (t->is_client) {
        rc = send_frame(t, t->hello, t->hello_len, true);
        if (rc != 0) {
            tunnel_down(t, rc, "cannot send the hello");
        }
    }
}

/* The first sealed frame: the client's HELLO or the server's ACCEPT. */
static void hello_frame(struct swc_tunnel *t, uint8_t *p, size_t plen)
{
    if (t->is_client) {
        if (plen != 0) {
            tunnel_down(t, SWC_EPROTO, "expected an empty accept frame");
            return;
        }
        t->state = T_READY;
        uv_timer_stop(&t->timer);
        if (t->connect_cb != NULL) {
            t->connect_cb(t, 0, t->connect_data);
        }
        return;
    }
    if (plen > SWC_TUNNEL_HELLO_MAX) {
        tunnel_down(t, SWC_EPROTO, "hello too long");
        return;
    }
    struct swc_tunnel_listener *l = t->l;
    t->state = T_READY;
    uv_timer_stop(&t->timer);
    /* the owner's from now on */
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        l->pending = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    }
    t->l = NULL;
    t->prev = t->next = NULL;
    l->accept_cb(l, t, swc_secchan_peer(t->sc), p, plen, l->data);
}

static void handle_frame(struct swc_tunnel *t, uint8_t *p, size_t len)
{
    if (t->state == T_HANDSHAKE) {
        handshake_frame(t, p, len);
        return;
    }
    if (swc_secchan_open_inplace(t->sc, p, len) != 0) {
        char reason[SWC_ERRMSG_SIZE];
        snprintf(reason, sizeof reason, "frame failed to open: %s", swc_secchan_errmsg(t->sc));
        tunnel_down(t, SWC_EAUTH, reason);
        return;
    }
    size_t plen = len - SWC_SECCHAN_OVERHEAD;
    if (t->state == T_HELLO) {
        hello_frame(t, p, plen);
        return;
    }
    if (plen == 0) {
        return;
    }
    int rc = side_write(&t->loc, p, plen);
    if (rc != 0) {
        tunnel_down(t, rc, "cannot write to the local stream");
        return;
    }
    t->st.bytes_in += plen;
    if (t->loc.wq > t->st.local_wq_max) {
        t->st.local_wq_max = t->loc.wq;
    }
}

static bool frames_wanted(const struct swc_tunnel *t)
{
    return t->state == T_HANDSHAKE || t->state == T_HELLO || (t->state == T_RELAY && !t->tcp_bp);
}

/* Cut whole frames out of the read buffer and handle them, until the
 * buffer runs dry, the state stops wanting frames, or the local stream's
 * queue is over the mark. */
static void process_frames(struct swc_tunnel *t)
{
    while (frames_wanted(t)) {
        if (t->state == T_RELAY && t->loc.wq > SWC_TUNNEL_HIGH_WATER) {
            t->tcp_bp = true;
            t->st.tcp_pauses++;
            break;
        }
        const uint8_t *p;
        uint32_t plen;
        size_t consumed, need;
        if (swc_frame_parse(t->rbuf.data + t->rstart, t->rbuf.len - t->rstart, WIRE_MAX, &p, &plen,
                            &consumed, &need) != 0) {
            tunnel_down(t, SWC_ETOOBIG, "frame over the limit");
            return;
        }
        if (consumed == 0) {
            break;
        }
        t->rstart += consumed;
        handle_frame(t, (uint8_t *)p, plen);
    }
    if (t->rstart == t->rbuf.len) {
        t->rstart = 0;
        t->rbuf.len = 0;
    }
    update_tcp_reading(t);
}

static void tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct swc_tunnel *t = h->data;
    struct swc_buf *b = &t->rbuf;
    if (t->rstart > 0) {
        memmove(b->data, b->data + t->rstart, b->len - t->rstart);
        b->len -= t->rstart;
        t->rstart = 0;
    }
    if (swc_buf_reserve(b, READ_CHUNK) != 0) {
        buf->base = NULL;
        buf->len = 0; /* libuv reports UV_ENOBUFS */
        return;
    }
    buf->base = (char *)b->data + b->len;
    buf->len = b->cap - b->len;
}

static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct swc_tunnel *t = s->data;
    if (t->state == T_DOWN) {
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            tunnel_down(t, SWC_ECANCELED,
                        t->state < T_READY ? "peer closed during the handshake"
                                           : "peer closed the connection");
        } else if (nread == UV_ENOBUFS) {
            tunnel_down(t, SWC_ENOMEM, "no memory for the read buffer");
        } else {
            tunnel_down(t, SWC_EIO, uv_strerror((int)nread));
        }
        return;
    }
    t->rbuf.len += (size_t)nread;
    process_frames(t);
}

static void update_tcp_reading(struct swc_tunnel *t)
{
    if (t->state == T_DOWN) {
        return;
    }
    bool want = frames_wanted(t);
    if (want && !t->tcp_reading) {
        if (uv_read_start((uv_stream_t *)&t->tcp, tcp_alloc_cb, tcp_read_cb) != 0) {
            tunnel_down(t, SWC_EIO, "cannot read the connection");
            return;
        }
        t->tcp_reading = true;
    } else if (!want && t->tcp_reading) {
        uv_read_stop((uv_stream_t *)&t->tcp);
        t->tcp_reading = false;
    }
}

/* ---- reading the local stream ------------------------------------------------------ */

static void local_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct swc_tunnel *t = h->data;
    buf->base = (char *)t->lbuf + SWC_FRAME_LEN_SIZE;
    buf->len = SWC_TUNNEL_FRAME_MAX;
}

static void local_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct swc_tunnel *t = s->data;
    if (t->state != T_RELAY) {
        return;
    }
    if (nread < 0) {
        tunnel_down(t, SWC_ECANCELED,
                    nread == UV_EOF ? "local stream closed" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0) {
        return;
    }
    size_t n = (size_t)nread;
    uint8_t *f = t->lbuf;
    if (swc_secchan_seal_inplace(t->sc, f + SWC_FRAME_LEN_SIZE, n) != 0) {
        tunnel_down(t, SWC_EINTERNAL, "seal failed");
        return;
    }
    swc_frame_put_len(f, (uint32_t)(n + SWC_SECCHAN_OVERHEAD));
    int rc = side_write(&t->net, f, SWC_FRAME_LEN_SIZE + n + SWC_SECCHAN_OVERHEAD);
    if (rc != 0) {
        tunnel_down(t, rc, "cannot write to the connection");
        return;
    }
    t->st.bytes_out += n;
    if (t->net.wq > SWC_TUNNEL_HIGH_WATER) {
        t->loc_bp = true;
        t->st.local_pauses++;
        update_local_reading(t);
    }
}

static void update_local_reading(struct swc_tunnel *t)
{
    if (t->state != T_RELAY) {
        return;
    }
    bool want = !t->loc_bp;
    if (want && !t->local_reading) {
        if (uv_read_start(t->loc.s, local_alloc_cb, local_read_cb) != 0) {
            tunnel_down(t, SWC_EIO, "cannot read the local stream");
            return;
        }
        t->local_reading = true;
    } else if (!want && t->local_reading) {
        uv_read_stop(t->loc.s);
        t->local_reading = false;
    }
}

/* ---- setting up -------------------------------------------------------------------- */

static void timer_cb(uv_timer_t *tm)
{
    struct swc_tunnel *t = tm->data;
    if (t->deferred_err != 0) {
        int e = t->deferred_err;
        t->deferred_err = 0;
        tunnel_down(t, e, "cannot connect");
    } else if (t->state == T_RELAY) {
        process_frames(t); /* frames that arrived before attach */
    } else if (t->state < T_READY) {
        tunnel_down(t, SWC_ETIMEDOUT, "handshake timed out");
    }
}

static struct swc_tunnel *tunnel_new(uv_loop_t *loop, bool is_client)
{
    struct swc_tunnel *t = swc_calloc(1, sizeof *t);
    if (t == NULL) {
        return NULL;
    }
    t->lbuf = swc_malloc(SWC_FRAME_LEN_SIZE + WIRE_MAX);
    if (t->lbuf == NULL || uv_tcp_init(loop, &t->tcp) != 0) {
        swc_free(t->lbuf);
        swc_free(t);
        return NULL;
    }
    t->loop = loop;
    t->is_client = is_client;
    uv_timer_init(loop, &t->timer);
    t->tcp.data = t;
    t->timer.data = t;
    t->handles = 2;
    t->net.t = t;
    t->net.s = (uv_stream_t *)&t->tcp;
    t->net.wq_max = &t->st.tcp_wq_max;
    t->loc.t = t;
    t->loc.wq_max = &t->st.local_wq_max;
    swc_buf_init(&t->rbuf);
    uv_timer_start(&t->timer, timer_cb, SWC_TUNNEL_HANDSHAKE_MS, 0);
    return t;
}

/* TCP is up: create the channel, the client speaks first. */
static void tunnel_established(struct swc_tunnel *t)
{
    uv_tcp_nodelay(&t->tcp, 1);
    int rc = swc_secchan_create(&t->cfg, &t->sc);
    if (rc != 0) {
        tunnel_down(t, rc, "cannot create the secure channel");
        return;
    }
    t->state = T_HANDSHAKE;
    if (t->is_client) {
        struct swc_buf out;
        swc_buf_init(&out);
        bool done = false;
        rc = swc_secchan_handshake(t->sc, NULL, 0, &out, &done);
        if (rc == 0) {
            rc = send_frame(t, out.data, out.len, false);
        }
        swc_buf_free(&out);
        if (rc != 0) {
            tunnel_down(t, rc, "cannot start the handshake");
            return;
        }
    }
    update_tcp_reading(t);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct swc_tunnel *t = req->data;
    if (t->state == T_DOWN) {
        return;
    }
    if (status != 0) {
        char reason[160];
        snprintf(reason, sizeof reason, "connect: %s", uv_strerror(status));
        tunnel_down(t, SWC_EUNAVAIL, reason);
        return;
    }
    tunnel_established(t);
}

static void start_connect(struct swc_tunnel *t, const struct sockaddr *sa)
{
    t->state = T_CONNECTING;
    t->creq.data = t;
    if (uv_tcp_connect(&t->creq, &t->tcp, sa, connect_cb) != 0) {
        t->deferred_err = SWC_EUNAVAIL; /* reported from the timer, not from here */
        uv_timer_start(&t->timer, timer_cb, 0, 0);
    }
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct swc_tunnel *t = req->data;
    t->gai_pending = false;
    if (t->state == T_DOWN) {
        uv_freeaddrinfo(res);
        maybe_free(t);
        return;
    }
    if (status != 0 || res == NULL) {
        uv_freeaddrinfo(res);
        tunnel_down(t, SWC_EUNAVAIL, "cannot resolve the host name");
        return;
    }
    start_connect(t, res->ai_addr);
    uv_freeaddrinfo(res);
}

int swc_tunnel_connect(uv_loop_t *loop, const char *addr,
                       const struct swc_secchan_config *client_cfg, const uint8_t *hello,
                       size_t hello_len, swc_tunnel_connect_cb cb, void *data,
                       struct swc_tunnel **out)
{
    char host[256];
    int port;
    struct sockaddr_storage ss;
    if (client_cfg == NULL || hello_len > SWC_TUNNEL_HELLO_MAX ||
        split_addr(addr, host, sizeof host, &port) != 0 || strlen(addr) >= ADDR_MAX) {
        return SWC_EINVAL;
    }
    struct swc_tunnel *t = tunnel_new(loop, true);
    if (t == NULL) {
        return SWC_ENOMEM;
    }
    t->hello = swc_malloc(hello_len > 0 ? hello_len : 1);
    if (t->hello == NULL) {
        swc_tunnel_close(t, NULL, NULL);
        return SWC_ENOMEM;
    }
    if (hello_len > 0) {
        memcpy(t->hello, hello, hello_len);
    }
    t->hello_len = hello_len;
    snprintf(t->addr, sizeof t->addr, "%s", addr);
    copy_cfg(&t->cfg, &t->self, client_cfg, true);
    t->connect_cb = cb;
    t->connect_data = data;
    if (ip_literal(host, port, &ss) == 0) {
        start_connect(t, (struct sockaddr *)&ss);
    } else {
        char portstr[8];
        snprintf(portstr, sizeof portstr, "%d", port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        t->gai.data = t;
        t->state = T_RESOLVING;
        if (uv_getaddrinfo(loop, &t->gai, gai_cb, host, portstr, &hints) != 0) {
            t->deferred_err = SWC_EUNAVAIL;
            uv_timer_start(&t->timer, timer_cb, 0, 0);
        } else {
            t->gai_pending = true;
        }
    }
    *out = t;
    return 0;
}

int swc_tunnel_attach(struct swc_tunnel *t, uv_stream_t *local, swc_tunnel_down_cb down_cb,
                      void *data)
{
    if (t->state == T_DOWN) {
        return SWC_ECLOSED;
    }
    if (t->state != T_READY || local == NULL) {
        return SWC_ESTATE;
    }
    if (!t->is_client) {
        int rc = send_frame(t, NULL, 0, true); /* ACCEPT */
        if (rc != 0) {
            t->owner_closing = true; /* quiet: the caller learns it from the result */
            tunnel_down(t, rc, "cannot send the accept");
            t->owner_closing = false;
            return SWC_ECLOSED;
        }
    }
    local->data = t;
    t->loc.s = local;
    t->handles++;
    t->down_cb = down_cb;
    t->down_data = data;
    t->state = T_RELAY;
    update_local_reading(t);
    /* frames already buffered are handled from the timer, not from here */
    if (t->rbuf.len > t->rstart) {
        uv_timer_start(&t->timer, timer_cb, 0, 0);
    } else {
        update_tcp_reading(t);
    }
    return 0;
}

const struct swc_cert *swc_tunnel_peer(const struct swc_tunnel *t)
{
    return t->hs_done ? swc_secchan_peer(t->sc) : NULL;
}

void swc_tunnel_stats(const struct swc_tunnel *t, struct swc_tunnel_stats *out)
{
    *out = t->st;
}

/* ---- the listener --------------------------------------------------------------- */

static void listener_tunnel_closed(void *data)
{
    struct swc_tunnel_listener *l = data;
    l->nclosing--;
    listener_maybe_free(l);
}

/* Unlink a handshaking tunnel that went down and close it. */
static void listener_drop(struct swc_tunnel_listener *l, struct swc_tunnel *t)
{
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        l->pending = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    }
    t->l = NULL;
    l->nclosing++;
    swc_tunnel_close(t, listener_tunnel_closed, l);
}

static void on_connection(uv_stream_t *srv, int status)
{
    struct swc_tunnel_listener *l = srv->data;
    if (status < 0 || l->closing) {
        return;
    }
    struct swc_tunnel *t = tunnel_new(l->loop, false);
    if (t == NULL) {
        swc_warnf(MOD, "no memory for an incoming connection");
        return;
    }
    t->l = l;
    t->next = l->pending;
    if (l->pending != NULL) {
        l->pending->prev = t;
    }
    l->pending = t;
    if (uv_accept(srv, (uv_stream_t *)&t->tcp) != 0) {
        tunnel_down(t, SWC_EIO, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[64] = "?";
    if (uv_tcp_getpeername(&t->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            snprintf(t->addr, sizeof t->addr, "%s:%d", ip,
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            snprintf(t->addr, sizeof t->addr, "[%s]:%d", ip,
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        }
    }
    t->cfg = l->cfg;
    if (l->cfg.self != NULL) {
        t->self = l->self;
        t->cfg.self = &t->self;
    }
    tunnel_established(t);
}

int swc_tunnel_listen(uv_loop_t *loop, const char *addr,
                      const struct swc_secchan_config *server_cfg, swc_tunnel_accept_cb accept_cb,
                      void *data, struct swc_tunnel_listener **out)
{
    char host[256];
    int port;
    struct sockaddr_storage ss;
    if (server_cfg == NULL || accept_cb == NULL ||
        split_addr(addr, host, sizeof host, &port) != 0) {
        return SWC_EINVAL;
    }
    if (ip_literal(host, port, &ss) != 0) {
        /* a name: resolve it now (start-up, so blocking is fine) */
        uv_getaddrinfo_t req;
        char portstr[8];
        snprintf(portstr, sizeof portstr, "%d", port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        if (uv_getaddrinfo(loop, &req, NULL, host, portstr, &hints) != 0 || req.addrinfo == NULL) {
            return SWC_EINVAL;
        }
        memcpy(&ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
        uv_freeaddrinfo(req.addrinfo);
    }
    struct swc_tunnel_listener *l = swc_calloc(1, sizeof *l);
    if (l == NULL) {
        return SWC_ENOMEM;
    }
    l->loop = loop;
    copy_cfg(&l->cfg, &l->self, server_cfg, false);
    l->accept_cb = accept_cb;
    l->data = data;
    uv_tcp_init(loop, &l->srv);
    l->srv.data = l;
    l->srv_open = true;
    int rc = uv_tcp_bind(&l->srv, (struct sockaddr *)&ss, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&l->srv, 128, on_connection);
    }
    if (rc != 0) {
        swc_warnf(MOD, "listen on %s: %s", addr, uv_strerror(rc));
        swc_tunnel_listener_close(l, NULL, NULL);
        return SWC_EIO;
    }
    *out = l;
    return 0;
}

void swc_tunnel_listener_set_config(struct swc_tunnel_listener *l,
                                    const struct swc_secchan_config *server_cfg)
{
    copy_cfg(&l->cfg, &l->self, server_cfg, false);
}

int swc_tunnel_listener_port(const struct swc_tunnel_listener *l)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&l->srv, (struct sockaddr *)&ss, &len) != 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

uint64_t swc_tunnel_listener_refused(const struct swc_tunnel_listener *l)
{
    return l->refused;
}

static void listener_maybe_free(struct swc_tunnel_listener *l)
{
    if (!l->closing || l->srv_open || l->pending != NULL || l->nclosing > 0) {
        return;
    }
    swc_tunnel_close_cb cb = l->close_cb;
    void *data = l->close_data;
    sodium_memzero(&l->self, sizeof l->self);
    swc_free(l);
    if (cb != NULL) {
        cb(data);
    }
}

static void srv_closed_cb(uv_handle_t *h)
{
    struct swc_tunnel_listener *l = h->data;
    l->srv_open = false;
    listener_maybe_free(l);
}

void swc_tunnel_listener_close(struct swc_tunnel_listener *l, swc_tunnel_close_cb cb, void *data)
{
    l->closing = true;
    l->close_cb = cb;
    l->close_data = data;
    while (l->pending != NULL) {
        struct swc_tunnel *t = l->pending;
        t->owner_closing = true; /* no refusal count for our own close */
        listener_drop(l, t);
    }
    uv_close((uv_handle_t *)&l->srv, srv_closed_cb);
}
