/* The raft transport seam (see raft_int.h).
 *
 * Default: raft's stock TCP transport. With a custom transport from the
 * owner, raft's connect requests become owner connect calls; the owner
 * answers with swc_raft_connect_done and pushes inbound streams with
 * swc_raft_accept. Both are queued and delivered to raft from the adapter's
 * check handle, never inside the owner's call, so neither side re-enters the
 * other. At close every pending connect is answered RAFT_CANCELED; a connect
 * the owner has not finished yet is detached (req->r = NULL) and freed when
 * the owner finishes it. */
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
    if (!r->custom_transport) {
        return raft_uv_tcp_init(&r->transport, r->loop) != 0 ? SWC_ENOMEM : 0;
    }
    r->transport.impl = r;
    r->transport.init = ct_init;
    r->transport.listen = ct_listen;
    r->transport.connect = ct_connect;
    r->transport.close = ct_close;
    return 0;
}

void swc_raft_transport_close(struct swc_raft *r)
{
    if (!r->custom_transport) {
        raft_uv_tcp_close(&r->transport);
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
        r->accept_cb(&r->transport, in->id, in->address, in->stream);
        swc_free(in);
    }
}
