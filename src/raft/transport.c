/* The raft transport seam (see raft_int.h).
 *
 * Default: raft's stock TCP transport. With a custom transport from the
 * owner, raft's connect requests become owner connect calls; the owner
 * answers with swc_raft_connect_done and pushes inbound streams with
 * swc_raft_accept. Both are queued and delivered to raft from the adapter's
 * check handle, never inside the owner's call, so neither side re-enters the
 * other. At close every pending connect is answered RAFT_CANCELED; a connect
 * the owner has not finished yet is detached (req->r = NULL) and freed when
 * the owner finishes it.
 *
 * Watching for a dead leader: every stream raft accepts (custom or TCP; the
 * stock TCP transport is wrapped for this) gets its read callback tapped
 * once raft has started reading it. A read that ends with EOF or an error
 * means the peer's process closed the connection (a kill -9 closes every
 * socket at once) or the connection broke; the tap tells the adapter
 * (swc_raft_peer_lost) and then hands the read to raft as before. A host
 * that vanishes without closing sends nothing, so it is left to the
 * election timeout. Outbound streams are not watched: raft never reads
 * them, and a read error there would make libuv refuse raft's later writes
 * synchronously, which raft 0.15 never recovers from. The tap table is global because libuv gives
 * the callback only the stream, whose data pointer belongs to raft; an entry evicted from the full
 * table only means that stream goes unwatched. */
#include "raft/raft_int.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"

#define MOD "raft"

struct swc_raft_connect {
    struct swc_raft *r; /* NULL once the adapter closed */
    struct raft_uv_connect *rreq;
    raft_uv_connect_cb cb;
    uint64_t id;
    bool finished; /* the owner called swc_raft_connect_done */
    uv_stream_t *stream;
    int status;
    struct swc_raft_connect *next;
};

struct swc_raft_inbound {
    uint64_t id;
    char address[SWC_RAFT_ADDR_MAX];
    uv_stream_t *stream;
    struct swc_raft_inbound *next;
};

/* ---- the tap on accepted streams ------------------------------------------------ */

#define TAP_MAX 64

struct tap {
    uv_stream_t *s;
    struct swc_raft *r;
    uint64_t id;
};

static struct tap taps[TAP_MAX];
static unsigned tap_next;
static uv_read_cb raft_read_cb; /* raft's own read callback (one function for all) */

static void tap_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        for (unsigned i = 0; i < TAP_MAX; i++) {
            if (taps[i].s == s) {
                struct swc_raft *r = taps[i].r;
                uint64_t id = taps[i].id;
                taps[i].s = NULL;
                swc_raft_peer_lost(r, id);
                break;
            }
        }
    }
    raft_read_cb(s, nread, buf);
}

/* Raft accepted stream s from peer id (and started reading it): tap it. */
static void tap_add(struct swc_raft *r, uint64_t id, uv_stream_t *s)
{
    if (uv_is_closing((uv_handle_t *)s) || !uv_is_active((uv_handle_t *)s) || s->read_cb == NULL ||
        s->read_cb == tap_read_cb) {
        return;
    }
    if (raft_read_cb == NULL) {
        raft_read_cb = s->read_cb;
    } else if (s->read_cb != raft_read_cb) {
        return;
    }
    unsigned slot = TAP_MAX;
    for (unsigned i = 0; i < TAP_MAX; i++) {
        if (taps[i].s == s || (slot == TAP_MAX && taps[i].s == NULL)) {
            slot = i;
            if (taps[i].s == s) {
                break;
            }
        }
    }
    if (slot == TAP_MAX) {
        slot = tap_next++ % TAP_MAX; /* evict: that stream goes unwatched */
    }
    taps[slot].s = s;
    taps[slot].r = r;
    taps[slot].id = id;
    s->read_cb = tap_read_cb;
}

/* Forget r's streams (the adapter is closing; raft closes them). */
static void tap_forget(struct swc_raft *r)
{
    for (unsigned i = 0; i < TAP_MAX; i++) {
        if (taps[i].r == r) {
            taps[i].s = NULL;
            taps[i].r = NULL;
        }
    }
}

/* Hand an inbound stream to raft, then tap it. */
static void deliver_accept(struct swc_raft *r, uint64_t id, const char *address, uv_stream_t *s)
{
    r->accept_cb(&r->transport, id, address, s);
    if (!r->early_off) {
        tap_add(r, id, s);
    }
}

/* ---- the stock TCP transport, wrapped -------------------------------------------- */

static void tcp_accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
                          struct uv_stream_s *stream)
{
    struct swc_raft *r = t->data;
    deliver_accept(r, id, address, stream);
}

static int wt_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct swc_raft *r = t->impl;
    int rv = r->tcp.init(&r->tcp, id, address);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", r->tcp.errmsg);
    }
    return rv;
}

static int wt_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct swc_raft *r = t->impl;
    r->accept_cb = cb;
    return r->tcp.listen(&r->tcp, tcp_accept_cb);
}

static int wt_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct swc_raft *r = t->impl;
    int rv = r->tcp.connect(&r->tcp, req, id, address, cb);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", r->tcp.errmsg);
    }
    return rv;
}

static void tcp_closed_cb(struct raft_uv_transport *t)
{
    struct swc_raft *r = t->data;
    r->tcp_close_cb(&r->transport);
}

static void wt_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct swc_raft *r = t->impl;
    tap_forget(r);
    r->accept_cb = NULL;
    r->tcp_close_cb = cb;
    r->tcp.close(&r->tcp, tcp_closed_cb);
}

/* ---- the custom transport ---------------------------------------------------------- */

static void free_stream_cb(uv_handle_t *h)
{
    swc_free(h);
}

static void drop_stream(uv_stream_t *s)
{
    if (s != NULL) {
        uv_close((uv_handle_t *)s, free_stream_cb);
    }
}

static int ct_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    return 0;
}

static int ct_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct swc_raft *r = t->impl;
    r->accept_cb = cb;
    return 0;
}

static int ct_connect(struct raft_uv_transport *t, struct raft_uv_connect *rreq, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct swc_raft *r = t->impl;
    struct swc_raft_connect *req = swc_calloc(1, sizeof *req);
    if (req == NULL) {
        return RAFT_NOMEM;
    }
    req->r = r;
    req->rreq = rreq;
    req->cb = cb;
    req->id = id;
    int rv = r->tops.connect(r->tops.data, id, address, req);
    if (rv != 0) {
        swc_free(req);
        snprintf(t->errmsg, sizeof t->errmsg, "connect to %llu at %s: %s", (unsigned long long)id,
                 address, swc_strerror(rv));
        return RAFT_NOCONNECTION;
    }
    req->next = r->connects;
    r->connects = req;
    return 0;
}

static void ct_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct swc_raft *r = t->impl;
    tap_forget(r);
    while (r->connects != NULL) {
        struct swc_raft_connect *req = r->connects;
        r->connects = req->next;
        req->cb(req->rreq, NULL, RAFT_CANCELED);
        if (req->finished) {
            drop_stream(req->stream);
            swc_free(req);
        } else {
            req->r = NULL; /* freed by swc_raft_connect_done */
        }
    }
    while (r->inbound != NULL) {
        struct swc_raft_inbound *in = r->inbound;
        r->inbound = in->next;
        drop_stream(in->stream);
        swc_free(in);
    }
    r->accept_cb = NULL;
    cb(t);
}

int swc_raft_transport_init(struct swc_raft *r)
{
    memset(&r->transport, 0, sizeof r->transport);
    r->transport.impl = r;
    if (!r->custom_transport) {
        memset(&r->tcp, 0, sizeof r->tcp);
        if (raft_uv_tcp_init(&r->tcp, r->loop) != 0) {
            return SWC_ENOMEM;
        }
        r->tcp.data = r;
        r->transport.init = wt_init;
        r->transport.listen = wt_listen;
        r->transport.connect = wt_connect;
        r->transport.close = wt_close;
        return 0;
    }
    r->transport.init = ct_init;
    r->transport.listen = ct_listen;
    r->transport.connect = ct_connect;
    r->transport.close = ct_close;
    return 0;
}

void swc_raft_transport_close(struct swc_raft *r)
{
    tap_forget(r);
    if (!r->custom_transport) {
        raft_uv_tcp_close(&r->tcp);
    }
}

void swc_raft_connect_done(struct swc_raft_connect *req, uv_stream_t *stream, int status)
{
    if (req->r == NULL) { /* the adapter closed meanwhile */
        drop_stream(status == 0 ? stream : NULL);
        swc_free(req);
        return;
    }
    req->finished = true;
    req->status = status;
    req->stream = status == 0 ? stream : NULL;
    swc_raft_kick(req->r);
}

int swc_raft_accept(struct swc_raft *r, uint64_t id, const char *address, uv_stream_t *stream)
{
    if (!r->custom_transport || r->closing || r->accept_cb == NULL || id == 0 ||
        strlen(address) >= SWC_RAFT_ADDR_MAX) {
        return SWC_ESTATE;
    }
    struct swc_raft_inbound *in = swc_calloc(1, sizeof *in);
    if (in == NULL) {
        return SWC_ENOMEM;
    }
    in->id = id;
    snprintf(in->address, sizeof in->address, "%s", address);
    in->stream = stream;
    /* keep arrival order */
    struct swc_raft_inbound **pp = &r->inbound;
    while (*pp != NULL) {
        pp = &(*pp)->next;
    }
    *pp = in;
    swc_raft_kick(r);
    return 0;
}

bool swc_raft_transport_has_work(struct swc_raft *r)
{
    if (r->inbound != NULL) {
        return true;
    }
    for (struct swc_raft_connect *c = r->connects; c != NULL; c = c->next) {
        if (c->finished) {
            return true;
        }
    }
    return false;
}

void swc_raft_transport_run(struct swc_raft *r)
{
    if (!r->custom_transport) {
        return;
    }
    struct swc_raft_connect **pp = &r->connects;
    while (*pp != NULL) {
        struct swc_raft_connect *req = *pp;
        if (!req->finished) {
            pp = &req->next;
            continue;
        }
        *pp = req->next;
        if (req->status == 0) {
            req->cb(req->rreq, req->stream, 0);
        } else {
            swc_tracef(MOD, "connect to %llu failed: %s", (unsigned long long)req->id,
                       swc_strerror(req->status));
            req->cb(req->rreq, NULL, RAFT_NOCONNECTION);
        }
        swc_free(req);
    }
    while (r->inbound != NULL && r->accept_cb != NULL) {
        struct swc_raft_inbound *in = r->inbound;
        r->inbound = in->next;
        deliver_accept(r, in->id, in->address, in->stream);
        swc_free(in);
    }
}
