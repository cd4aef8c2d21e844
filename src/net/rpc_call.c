/* RPC calls (client side) and requests (server side) on a connection, the
 * connection timer that runs deferred completions and enforces deadlines,
 * and the dispatch of decoded frames to them (see rpc_conn.c for the
 * transport and rpc.h for the contract).
 *
 * A call lives in its connection's hash by call id until it completes; a
 * cancel or timeout takes it out of the hash at once (a late answer is then
 * dropped) and completes it from the timer, never from inside the API call.
 * A request lives in the hash while the client can still reach it and on the
 * connection's list until its handler finishes it; the connection is freed
 * only after the last request is finished. */
#include "net/rpc_int.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"

/* ---- calls (client side) ------------------------------------------------------ */

void rpc_call_complete(struct swc_rpc_call *call, int status, const char *errmsg, size_t errmsg_len,
                       const uint8_t *body, size_t blen)
{
    struct swc_rpc_conn *conn = call->conn;
    if (call->in_hash) {
        HASH_DEL(conn->calls, call);
        call->in_hash = false;
    }
    char msg[SWC_RPC_ERRMSG_MAX + 1];
    if (errmsg == NULL) {
        errmsg = status != 0 ? swc_strerror(status) : "";
        errmsg_len = strlen(errmsg);
    }
    if (errmsg_len > SWC_RPC_ERRMSG_MAX) {
        errmsg_len = SWC_RPC_ERRMSG_MAX;
    }
    memcpy(msg, errmsg, errmsg_len);
    msg[errmsg_len] = '\0';
    if (call->streaming) {
        call->end_cb(call, status, msg, call->data);
    } else {
        call->reply_cb(call, status, msg, body, blen, call->data);
    }
    swc_free(call);
}

static void call_defer(struct swc_rpc_call *call, int status)
{
    struct swc_rpc_conn *conn = call->conn;
    if (call->in_hash) {
        HASH_DEL(conn->calls, call);
        call->in_hash = false;
    }
    call->defer_status = status;
    call->defer_next = NULL;
    if (conn->defer_tail != NULL) {
        conn->defer_tail->defer_next = call;
    } else {
        conn->defer_head = call;
    }
    conn->defer_tail = call;
    rpc_conn_kick(conn);
}

void rpc_run_deferred_calls(struct swc_rpc_conn *conn)
{
    while (conn->defer_head != NULL) {
        struct swc_rpc_call *call = conn->defer_head;
        conn->defer_head = call->defer_next;
        if (conn->defer_head == NULL) {
            conn->defer_tail = NULL;
        }
        rpc_call_complete(call, call->defer_status, NULL, 0, NULL, 0);
    }
}

static int call_start(struct swc_rpc_conn *conn, const char *method, const uint8_t *payload,
                      size_t len, uint32_t timeout_ms, bool streaming, swc_rpc_reply_cb reply_cb,
                      swc_rpc_msg_cb msg_cb, swc_rpc_end_cb end_cb, void *data,
                      struct swc_rpc_call **out)
{
    if (conn->state == CONN_DOWN || conn->user_closing) {
        return SWC_ECLOSED;
    }
    size_t mlen = method != NULL ? strlen(method) : 0;
    if (mlen == 0 || mlen > SWC_RPC_METHOD_MAX) {
        return SWC_EINVAL;
    }
    struct swc_rpc_call *call = swc_calloc(1, sizeof(*call));
    if (call == NULL) {
        return SWC_ENOMEM;
    }
    do {
        call->id = ++conn->next_id;
        struct swc_rpc_call *dup = NULL;
        HASH_FIND(hh, conn->calls, &call->id, sizeof(call->id), dup);
        if (dup == NULL && call->id != 0) {
            break;
        }
    } while (1);
    call->conn = conn;
    call->streaming = streaming;
    call->reply_cb = reply_cb;
    call->msg_cb = msg_cb;
    call->end_cb = end_cb;
    call->data = data;
    struct swc_rpc_hdr h = {
        .kind = SWC_RPC_KIND_REQUEST,
        .flags = streaming ? SWC_RPC_FLAG_STREAM : 0,
        .call_id = call->id,
        .timeout_ms = timeout_ms,
        .method = method,
        .method_len = mlen,
    };
    swc_rpc_hash_oom = 0;
    HASH_ADD(hh, conn->calls, id, sizeof(call->id), call);
    if (swc_rpc_hash_oom) {
        swc_free(call);
        return SWC_ENOMEM;
    }
    call->in_hash = true;
    int rc = rpc_conn_send(conn, &h, payload, len, false);
    if (rc != 0) {
        HASH_DEL(conn->calls, call);
        swc_free(call);
        return rc;
    }
    if (timeout_ms > 0) {
        call->deadline = swc_now_mono() + (int64_t)timeout_ms * SWC_NS_PER_MS;
        rpc_conn_arm(conn, call->deadline);
    }
    if (out != NULL) {
        *out = call;
    }
    return 0;
}

int swc_rpc_call(struct swc_rpc_conn *conn, const char *method, const uint8_t *payload, size_t len,
                 uint32_t timeout_ms, swc_rpc_reply_cb cb, void *data, struct swc_rpc_call **out)
{
    if (cb == NULL) {
        return SWC_EINVAL;
    }
    return call_start(conn, method, payload, len, timeout_ms, false, cb, NULL, NULL, data, out);
}

int swc_rpc_stream_open(struct swc_rpc_conn *conn, const char *method, const uint8_t *payload,
                        size_t len, uint32_t timeout_ms, swc_rpc_msg_cb msg_cb,
                        swc_rpc_end_cb end_cb, void *data, struct swc_rpc_call **out)
{
    if (msg_cb == NULL || end_cb == NULL) {
        return SWC_EINVAL;
    }
    return call_start(conn, method, payload, len, timeout_ms, true, NULL, msg_cb, end_cb, data,
                      out);
}

void swc_rpc_cancel(struct swc_rpc_call *call)
{
    if (call == NULL || !call->in_hash) {
        return; /* completed or completing */
    }
    struct swc_rpc_conn *conn = call->conn;
    if (conn->state != CONN_DOWN) {
        struct swc_rpc_hdr h = {.kind = SWC_RPC_KIND_CANCEL, .call_id = call->id};
        (void)rpc_conn_send(conn, &h, NULL, 0, false); /* best effort */
    }
    call_defer(call, SWC_ECANCELED);
}

/* ---- requests (server side) ----------------------------------------------------- */

static void req_unhash(struct swc_rpc_req *req)
{
    if (req->in_hash) {
        HASH_DEL(req->conn->reqs, req);
        req->in_hash = false;
    }
}

void rpc_req_cancel(struct swc_rpc_req *req, int status)
{
    req_unhash(req);
    if (req->canceled) {
        return;
    }
    req->canceled = true;
    req->cancel_status = status;
    if (req->want_writable) {
        req->want_writable = false;
        req->conn->writable_waiters--;
    }
    if (req->cancel_cb != NULL) {
        req->cancel_cb(req, status, req->cancel_data);
    }
}

static void req_free(struct swc_rpc_req *req)
{
    struct swc_rpc_conn *conn = req->conn;
    req_unhash(req);
    if (req->want_writable) {
        conn->writable_waiters--;
    }
    if (req->notify_pending) {
        conn->notify_pending--;
    }
    if (req->prev != NULL) {
        req->prev->next = req->next;
    } else {
        conn->req_list = req->next;
    }
    if (req->next != NULL) {
        req->next->prev = req->prev;
    }
    conn->nreqs--;
    swc_free(req);
    if (conn->state == CONN_DOWN) {
        rpc_conn_maybe_free(conn);
    }
}

static int req_finish(struct swc_rpc_req *req, uint8_t kind, int status, const char *errmsg,
                      const uint8_t *payload, size_t len)
{
    struct swc_rpc_conn *conn = req->conn;
    int rc = 0;
    if (!req->in_hash || req->canceled || conn->state == CONN_DOWN) {
        rc = SWC_ECANCELED;
    } else {
        if (status < 0 || status >= SWC_E_COUNT) {
            status = SWC_EINTERNAL;
        }
        rpc_send_status(conn, kind, req->id, status, errmsg, payload, len);
    }
    req_free(req);
    return rc;
}

int swc_rpc_reply(struct swc_rpc_req *req, int status, const char *errmsg, const uint8_t *payload,
                  size_t len)
{
    return req_finish(req, SWC_RPC_KIND_REPLY, status, errmsg, payload, len);
}

int swc_rpc_end(struct swc_rpc_req *req, int status, const char *errmsg)
{
    return req_finish(req, SWC_RPC_KIND_END, status, errmsg, NULL, 0);
}

int swc_rpc_send(struct swc_rpc_req *req, const uint8_t *payload, size_t len)
{
    struct swc_rpc_conn *conn = req->conn;
    if (!req->in_hash || req->canceled || conn->state == CONN_DOWN) {
        return SWC_ECANCELED;
    }
    if (conn->wq_bytes >= conn->high_water) {
        if (!req->want_writable) {
            req->want_writable = true;
            conn->writable_waiters++;
        }
        return SWC_EBUSY;
    }
    struct swc_rpc_hdr h = {.kind = SWC_RPC_KIND_MESSAGE, .call_id = req->id};
    return rpc_conn_send(conn, &h, payload, len, false);
}

void swc_rpc_req_on_cancel(struct swc_rpc_req *req, swc_rpc_req_cb cb, void *data)
{
    req->cancel_cb = cb;
    req->cancel_data = data;
    if (req->canceled && cb != NULL && !req->notify_pending) {
        req->notify_pending = true;
        req->conn->notify_pending++;
        rpc_conn_kick(req->conn);
    }
}

void swc_rpc_req_on_writable(struct swc_rpc_req *req, swc_rpc_req_cb cb, void *data)
{
    req->writable_cb = cb;
    req->writable_data = data;
}

bool swc_rpc_req_canceled(const struct swc_rpc_req *req)
{
    return req->canceled;
}

const char *swc_rpc_req_method(const struct swc_rpc_req *req)
{
    return req->method;
}

const struct swc_rpc_peer *swc_rpc_req_peer(const struct swc_rpc_req *req)
{
    return &req->conn->peer;
}

size_t swc_rpc_req_write_queue(const struct swc_rpc_req *req)
{
    return req->conn->wq_bytes;
}

int64_t swc_rpc_req_remaining_ms(const struct swc_rpc_req *req, int64_t now_mono_ns)
{
    if (req->deadline == 0) {
        return -1;
    }
    int64_t left = req->deadline - now_mono_ns;
    return left > 0 ? left / SWC_NS_PER_MS : 0;
}

/* ---- the timer: deferred completions and deadlines ------------------------------ */

static void timer_cb(uv_timer_t *t)
{
    struct swc_rpc_conn *conn = t->data;
    conn->timer_due = 0;
    rpc_run_deferred_calls(conn);
    while (conn->notify_pending > 0) {
        struct swc_rpc_req *r = conn->req_list;
        while (r != NULL && !r->notify_pending) {
            r = r->next;
        }
        if (r == NULL) {
            conn->notify_pending = 0;
            break;
        }
        r->notify_pending = false;
        conn->notify_pending--;
        if (r->cancel_cb != NULL) {
            r->cancel_cb(r, r->cancel_status, r->cancel_data);
        }
    }
    if (conn->state == CONN_DOWN) {
        return;
    }
    int64_t now = swc_now_mono();
    int64_t next = 0;
    struct swc_rpc_call *c, *ctmp;
    HASH_ITER(hh, conn->calls, c, ctmp)
    {
        if (c->deadline != 0 && c->deadline <= now) {
            struct swc_rpc_hdr h = {.kind = SWC_RPC_KIND_CANCEL, .call_id = c->id};
            (void)rpc_conn_send(conn, &h, NULL, 0, false);
            call_defer(c, SWC_ETIMEDOUT);
        } else if (c->deadline != 0 && (next == 0 || c->deadline < next)) {
            next = c->deadline;
        }
    }
    rpc_run_deferred_calls(conn);
    for (;;) {
        struct swc_rpc_req *r = conn->reqs, *rtmp, *hit = NULL;
        HASH_ITER(hh, conn->reqs, r, rtmp)
        {
            if (r->deadline != 0 && r->deadline <= now) {
                hit = r;
                break;
            }
        }
        if (hit == NULL || conn->state == CONN_DOWN) {
            break;
        }
        rpc_req_cancel(hit, SWC_ETIMEDOUT);
    }
    struct swc_rpc_req *r, *rtmp;
    HASH_ITER(hh, conn->reqs, r, rtmp)
    {
        if (r->deadline != 0 && (next == 0 || r->deadline < next)) {
            next = r->deadline;
        }
    }
    if (next != 0 && conn->state != CONN_DOWN) {
        rpc_conn_arm(conn, next);
    }
}

/* Make the timer fire no later than deadline (monotonic ns). */
void rpc_conn_arm(struct swc_rpc_conn *conn, int64_t deadline)
{
    if (conn->freeing) {
        return;
    }
    if (conn->timer_due != 0 && conn->timer_due <= deadline) {
        return;
    }
    int64_t now = swc_now_mono();
    uint64_t ms =
        deadline > now ? (uint64_t)((deadline - now + SWC_NS_PER_MS - 1) / SWC_NS_PER_MS) : 0;
    conn->timer_due = deadline;
    uv_timer_start(&conn->timer, timer_cb, ms, 0);
}

void rpc_conn_kick(struct swc_rpc_conn *conn)
{
    if (conn->freeing) {
        return;
    }
    conn->timer_due = 1; /* "as soon as possible" */
    uv_timer_start(&conn->timer, timer_cb, 0, 0);
}

/* ---- incoming frames ------------------------------------------------------------ */

static void dispatch_request(struct swc_rpc_conn *conn, const struct swc_rpc_hdr *h)
{
    char name[SWC_RPC_METHOD_MAX + 1];
    bool streaming = (h->flags & SWC_RPC_FLAG_STREAM) != 0;
    uint8_t end_kind = streaming ? SWC_RPC_KIND_END : SWC_RPC_KIND_REPLY;
    struct swc_rpc_req *dup = NULL;
    HASH_FIND(hh, conn->reqs, &h->call_id, sizeof(h->call_id), dup);
    if (dup != NULL) {
        swc_rpc_conn_down(conn, SWC_EPROTO, "duplicate call id");
        return;
    }
    if (h->method_len > SWC_RPC_METHOD_MAX) {
        rpc_send_status(conn, end_kind, h->call_id, SWC_EINVAL, "method name too long", NULL, 0);
        return;
    }
    memcpy(name, h->method, h->method_len);
    name[h->method_len] = '\0';
    const struct rpc_method *m = conn->srv != NULL ? swc_rpc_server_method(conn->srv, name) : NULL;
    if (m == NULL) {
        char msg[SWC_RPC_METHOD_MAX + 32];
        snprintf(msg, sizeof(msg), "unknown method %s", name);
        rpc_send_status(conn, end_kind, h->call_id, SWC_ENOTSUP, msg, NULL, 0);
        return;
    }
    if (m->streaming != streaming) {
        rpc_send_status(conn, end_kind, h->call_id, SWC_EINVAL,
                        streaming ? "method is unary" : "method is a stream", NULL, 0);
        return;
    }
    struct swc_rpc_req *req = swc_calloc(1, sizeof(*req));
    if (req == NULL) {
        rpc_send_status(conn, end_kind, h->call_id, SWC_ENOMEM, "out of memory", NULL, 0);
        return;
    }
    req->id = h->call_id;
    req->conn = conn;
    req->streaming = streaming;
    memcpy(req->method, name, h->method_len + 1);
    swc_rpc_hash_oom = 0;
    HASH_ADD(hh, conn->reqs, id, sizeof(req->id), req);
    if (swc_rpc_hash_oom) {
        swc_free(req);
        rpc_send_status(conn, end_kind, h->call_id, SWC_ENOMEM, "out of memory", NULL, 0);
        return;
    }
    req->in_hash = true;
    req->next = conn->req_list;
    if (req->next != NULL) {
        req->next->prev = req;
    }
    conn->req_list = req;
    conn->nreqs++;
    if (h->timeout_ms > 0) {
        req->deadline = swc_now_mono() + (int64_t)h->timeout_ms * SWC_NS_PER_MS;
    }
    conn->srv->stats.requests++;
    uint32_t call_id = h->call_id;
    int64_t deadline = req->deadline;
    m->handler(req, h->body, h->body_len, m->data);
    /* The deadline timer is armed only for a request still pending once its
     * handler returns: most unary calls (every heartbeat) are answered inside
     * the handler, and arming per request cost a timer-heap insert and
     * removal each, a tenth of an idle leader's CPU with 10,000 nodes. */
    if (deadline != 0 && conn->state != CONN_DOWN) {
        struct swc_rpc_req *pending = NULL;
        HASH_FIND(hh, conn->reqs, &call_id, sizeof(call_id), pending);
        if (pending != NULL) {
            conn->srv->stats.deadlines_armed++;
            rpc_conn_arm(conn, deadline);
        }
    }
}

/* Handle one decoded RPC frame payload. */
void rpc_dispatch(struct swc_rpc_conn *conn, const uint8_t *p, size_t len)
{
    struct swc_rpc_hdr h;
    if (swc_rpc_hdr_decode(p, len, &h) != 0) {
        swc_rpc_conn_down(conn, SWC_EPROTO, "undecodable RPC header");
        return;
    }
    struct swc_rpc_call *call = NULL;
    if (h.kind != SWC_RPC_KIND_REQUEST && h.kind != SWC_RPC_KIND_CANCEL) {
        HASH_FIND(hh, conn->calls, &h.call_id, sizeof(h.call_id), call);
        if (call == NULL) {
            return; /* canceled or timed out here: the late answer is dropped */
        }
    }
    switch (h.kind) {
    case SWC_RPC_KIND_REQUEST:
        dispatch_request(conn, &h);
        break;
    case SWC_RPC_KIND_CANCEL: {
        struct swc_rpc_req *req = NULL;
        HASH_FIND(hh, conn->reqs, &h.call_id, sizeof(h.call_id), req);
        if (req != NULL) {
            rpc_req_cancel(req, SWC_ECANCELED);
        }
        break;
    }
    case SWC_RPC_KIND_REPLY:
    case SWC_RPC_KIND_END:
        rpc_call_complete(call, h.status, h.errmsg, h.errmsg_len, h.body, h.body_len);
        break;
    case SWC_RPC_KIND_MESSAGE:
        if (!call->streaming) {
            swc_rpc_conn_down(conn, SWC_EPROTO, "stream message for a unary call");
            return;
        }
        call->msg_cb(call, h.body, h.body_len, call->data);
        break;
    default:
        break;
    }
}
