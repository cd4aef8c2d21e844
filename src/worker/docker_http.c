/* HTTP to the Docker engine over its unix socket (see docker_int.h).
 *
 * Our own small HTTP/1.1 client on the libuv loop, enough for the Engine
 * API: every exchange opens its own connection (struct dconn: a uv_pipe_t
 * plus a uv_timer_t for its deadline), writes the whole request with one
 * uv_write and asks the engine to close the connection after the reply. What
 * comes back goes through the pure parser in http_parse.c one read at a
 * time; body pieces are buffered on the dreq (capped, so a runaway engine
 * cannot eat the worker's memory) or, for a 2xx reply to a streaming
 * exchange (/events, logs), handed to q->stream as they are decoded.
 *
 * A connection outlives its exchange: when the reply is complete, fails,
 * times out or is canceled, the dreq is detached first (so its done callback
 * may free it or send it again), then the connection's handles are closed
 * and its memory freed in their close callbacks. The executor counts those
 * closing connections and finishes its own close only when the last one is
 * gone. Done callbacks never run inside dreq_send: even a refused connection
 * (no engine, socket missing) reports through the connect callback, at once
 * rather than after a connect timeout.
 *
 * This replaced libcurl, which for plain HTTP over a unix socket brought
 * ~8 MiB of resident libraries (TLS, Kerberos, PKCS#11) into every worker. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "worker/docker_int.h"
#include "worker/http_parse.h"

#define READ_BUF (16u << 10)

/* One exchange's connection. */
struct dconn {
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    struct docker *d;
    struct dreq *q;     /* NULL once the exchange ended (the connection is closing) */
    struct swc_buf out; /* the request bytes, kept until the write completes */
    int open;           /* handles not yet closed */
    int werr;           /* libuv error of the write, 0 if none */
    bool streaming;     /* a 2xx reply to a streaming exchange */
    struct swc_http_parser hp;
    char rbuf[READ_BUF];
};

static void handle_closed(struct docker *d)
{
    if (--d->open_handles == 0 && d->closing && d->close_cb != NULL) {
        void (*cb)(struct swc_exec *) = d->close_cb;
        d->close_cb = NULL;
        cb(&d->base);
        swc_free(d->sock);
        swc_free(d->node_id);
        swc_free(d->network_mode);
        swc_free(d);
    }
}

static void conn_closed_cb(uv_handle_t *h)
{
    struct dconn *c = h->data;
    struct docker *d = c->d;
    if (--c->open > 0) {
        return;
    }
    swc_buf_free(&c->out);
    swc_free(c);
    handle_closed(d);
}

/* Detach the exchange from its connection and close the connection. */
static struct dreq *detach(struct dconn *c)
{
    struct dreq *q = c->q;
    struct docker *d = c->d;
    c->q = NULL;
    if (q != NULL) {
        q->conn = NULL;
        q->active = false;
        if (q->prev) {
            q->prev->next = q->next;
        } else if (d->reqs == q) {
            d->reqs = q->next;
        }
        if (q->next) {
            q->next->prev = q->prev;
        }
        q->prev = q->next = NULL;
    }
    uv_close((uv_handle_t *)&c->timer, conn_closed_cb);
    uv_close((uv_handle_t *)&c->pipe, conn_closed_cb);
    return q;
}

/* End the exchange with code (q->err already set when code != 0). */
static void complete(struct dconn *c, int code)
{
    struct dreq *q = detach(c);
    q->done(q, code);
}

static void fail(struct dconn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct dconn *c, int code, const char *fmt, ...)
{
    struct dreq *q = c->q;
    char msg[SWC_ERRMSG_SIZE];
    va_list ap;
    if (q->err.code != 0) {
        complete(c, q->err.code); /* a stream consumer said why first */
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    swc_err_set(&q->err, code, "docker: %s: %s", q->what, msg);
    complete(c, code);
}

static void timer_cb(uv_timer_t *t)
{
    struct dconn *c = t->data;
    if (c->q != NULL) {
        fail(c, SWC_ETIMEDOUT, "no reply in time");
    }
}

/* Feed one read to the parser and act on what it reports. */
static void feed(struct dconn *c, const char *data, size_t len)
{
    while (c->q != NULL) {
        struct dreq *q = c->q;
        const char *piece;
        size_t n;
        switch (swc_http_step(&c->hp, &data, &len, &piece, &n)) {
        case SWC_HTTP_MORE:
            return;
        case SWC_HTTP_HEAD:
            q->status = c->hp.status;
            c->streaming = q->stream != NULL && q->status >= 200 && q->status < 300;
            if (c->streaming) {
                c->hp.max_body = 0; /* the consumer bounds what it keeps */
            }
            break;
        case SWC_HTTP_BODY:
            if (c->streaming) {
                bool go_on = q->stream(q, piece, n);
                if (c->q == NULL) {
                    return; /* the consumer closed the executor meanwhile */
                }
                if (!go_on) {
                    fail(c, SWC_ECANCELED, "stream consumer gave up");
                    return;
                }
            } else if (swc_buf_append(&q->body, piece, n) != 0) {
                fail(c, SWC_ENOMEM, "out of memory");
                return;
            }
            break;
        case SWC_HTTP_DONE:
            complete(c, 0);
            return;
        case SWC_HTTP_ERROR:
            if (c->hp.code == SWC_ETOOBIG) {
                fail(c, SWC_ETOOBIG, "%s", c->hp.err);
            } else {
                fail(c, SWC_EPROTO, "malformed reply from the engine (%s)", c->hp.err);
            }
            return;
        }
    }
}

/* The connection ended (EOF or an error) before the parser said done. */
static void ended(struct dconn *c, ssize_t why)
{
    if (swc_http_eof(&c->hp) == SWC_HTTP_DONE) {
        complete(c, 0);
        return;
    }
    if (c->hp.head_done) {
        fail(c, SWC_EPROTO, "connection dropped in the middle of the reply (%s)", c->hp.err);
    } else if (c->hp.nread == 0 && c->werr != 0) {
        fail(c, SWC_EUNAVAIL, "cannot send the request: %s", uv_strerror(c->werr));
    } else if (why != UV_EOF) {
        fail(c, SWC_EPROTO, "malformed reply from the engine (%s: %s)", c->hp.err,
             uv_strerror((int)why));
    } else {
        fail(c, SWC_EPROTO, "malformed reply from the engine (%s)", c->hp.err);
    }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct dconn *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct dconn *c = s->data;
    struct docker *d = c->d;
    if (c->q == NULL) {
        return;
    }
    if (nread > 0) {
        feed(c, buf->base, (size_t)nread);
    } else if (nread < 0) {
        ended(c, nread);
    }
    /* outside any parse step: the event sink may start or end exchanges */
    docker_events_drain(d);
}

static void write_cb(uv_write_t *w, int status)
{
    struct dconn *c = w->data;
    /* a failed write is reported by the read side, which sees the end of the
     * connection (the engine may even have replied before it closed) */
    if (status < 0 && status != UV_ECANCELED) {
        c->werr = status;
    }
    swc_buf_free(&c->out);
}

static void connect_cb(uv_connect_t *r, int status)
{
    struct dconn *c = r->data;
    uv_buf_t b;
    int rc;
    if (c->q == NULL) {
        return; /* canceled */
    }
    if (status < 0) {
        fail(c, SWC_EUNAVAIL, "cannot connect to %s: %s", c->d->sock, uv_strerror(status));
        return;
    }
    b = uv_buf_init((char *)c->out.data, (unsigned int)c->out.len);
    c->wreq.data = c;
    rc = uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &b, 1, write_cb);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
    }
    if (rc != 0) {
        fail(c, SWC_EIO, "cannot send the request: %s", uv_strerror(rc));
    }
}

struct dreq *dreq_new(struct docker *d, dreq_done_fn done, const char *fmt, ...)
{
    struct dreq *q = swc_calloc(1, sizeof(*q));
    va_list ap;
    if (q == NULL) {
        return NULL;
    }
    q->d = d;
    q->done = done;
    q->raw = -1;
    q->timeout_ns = d->op_timeout_ns;
    swc_buf_init(&q->body);
    swc_buf_init(&q->acc);
    va_start(ap, fmt);
    vsnprintf(q->what, sizeof(q->what), fmt, ap);
    va_end(ap);
    return q;
}

void dreq_free(struct dreq *q)
{
    if (q == NULL) {
        return;
    }
    if (q->conn != NULL) {
        detach(q->conn); /* freed in flight: drop the exchange without a callback */
    }
    swc_free(q->create_body);
    swc_buf_free(&q->body);
    swc_buf_free(&q->acc);
    swc_free(q);
}

int dreq_send(struct dreq *q, const char *method, const char *path, const char *json)
{
    struct docker *d = q->d;
    struct dconn *c;
    size_t blen = json != NULL ? strlen(json) : 0;
    int rc;

    if (d->closing) {
        return SWC_ECLOSED;
    }
    if (q->conn != NULL || path[strcspn(path, " \r\n")] != '\0') {
        return SWC_EINVAL;
    }
    c = swc_malloc(sizeof(*c));
    if (c == NULL) {
        return SWC_ENOMEM;
    }
    memset(c, 0, offsetof(struct dconn, hp)); /* not the 24 KiB of buffers */
    swc_buf_init(&c->out);
    if (swc_buf_printf(&c->out,
                       "%s /" DOCKER_API "%s HTTP/1.1\r\nHost: docker\r\nUser-Agent: swarmc\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n",
                       method, path, blen) != 0 ||
        (blen > 0 && swc_buf_append(&c->out, json, blen) != 0)) {
        swc_buf_free(&c->out);
        swc_free(c);
        return SWC_ENOMEM;
    }
    rc = uv_pipe_init(d->loop, &c->pipe, 0);
    if (rc != 0) {
        swc_buf_free(&c->out);
        swc_free(c);
        return SWC_EIO;
    }
    uv_timer_init(d->loop, &c->timer); /* cannot fail */
    c->pipe.data = c->timer.data = c->creq.data = c;
    c->open = 2;
    c->d = d;
    c->q = q;
    d->open_handles++;
    swc_http_init(&c->hp);
    /* reset the exchange for this send */
    swc_buf_free(&q->body);
    swc_err_clear(&q->err);
    q->status = 0;
    q->conn = c;
    q->active = true;
    q->next = d->reqs;
    q->prev = NULL;
    if (d->reqs) {
        d->reqs->prev = q;
    }
    d->reqs = q;
    if (q->timeout_ns > 0) {
        uint64_t ms = (uint64_t)((q->timeout_ns + SWC_NS_PER_MS - 1) / SWC_NS_PER_MS);
        uv_timer_start(&c->timer, timer_cb, ms, 0);
    }
    /* errors (no socket, refused) come through connect_cb, never from here */
    uv_pipe_connect(&c->creq, &c->pipe, d->sock, connect_cb);
    swc_tracef("docker", "%s %s", method, path);
    if (d->trace_cb != NULL) {
        d->trace_cb(d->trace_data, method, path);
    }
    return 0;
}

int dreq_http_error(struct dreq *q)
{
    char detail[256] = "";
    json_t *j = json_loadb(q->body.len ? (const char *)q->body.data : "", q->body.len, 0, NULL);
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    int code;
    if (m != NULL) {
        snprintf(detail, sizeof(detail), "%s", m);
    } else {
        /* not the engine's JSON: quote (printable) bytes of what came back */
        size_t k = 0;
        for (size_t i = 0; i < q->body.len && k + 1 < 120; i++) {
            char c = (char)q->body.data[i];
            detail[k++] = c >= 0x20 && c < 0x7f ? c : '.';
        }
        detail[k] = '\0';
        if (k == 0) {
            snprintf(detail, sizeof(detail), "(empty reply)");
        }
    }
    json_decref(j);
    code = q->status == 404 ? SWC_ENOENT : q->status == 409 ? SWC_ECONFLICT : SWC_EDOCKER;
    return swc_err_set(&q->err, code, "docker: %s: HTTP %ld: %s", q->what, q->status, detail);
}

json_t *dreq_json(struct dreq *q)
{
    json_error_t je;
    json_t *j = json_loadb(q->body.len ? (const char *)q->body.data : "", q->body.len, 0, &je);
    if (j == NULL) {
        swc_err_set(&q->err, SWC_EPROTO, "docker: %s: bad JSON in the reply: %s", q->what, je.text);
    }
    return j;
}

int docker_http_init(struct docker *d, struct swc_err *err)
{
    struct sockaddr_un sa;
    if (strlen(d->sock) >= sizeof(sa.sun_path)) {
        return swc_err_set(err, SWC_EINVAL,
                           "docker executor: socket path %s is longer than %zu bytes", d->sock,
                           sizeof(sa.sun_path) - 1);
    }
    uv_timer_init(d->loop, &d->retry_timer);
    d->retry_timer.data = d;
    d->open_handles = 1;
    return 0;
}

void docker_http_cancel_all(struct docker *d)
{
    struct dreq *q;
    while ((q = d->reqs) != NULL) {
        detach(q->conn);
        swc_err_set(&q->err, SWC_ECANCELED, "docker: %s: canceled (executor closing)", q->what);
        q->done(q, SWC_ECANCELED);
    }
}

static void timer_closed_cb(uv_handle_t *h)
{
    handle_closed(h->data);
}

void docker_http_close(struct docker *d)
{
    uv_close((uv_handle_t *)&d->retry_timer, timer_closed_cb);
}

char *docker_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = swc_malloc(n * 3 + 1), *o = out;
    if (out == NULL) {
        return NULL;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}
