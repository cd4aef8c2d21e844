/* RPC connections: framing on a libuv stream, the secure channel hook,
 * connecting, reading, writing and closing. Calls and requests multiplexed
 * on a connection live in rpc_call.c.
 *
 * A connection goes CONNECTING -> (HANDSHAKE) -> READY -> DOWN. Frames sent
 * before READY wait in a pending list and are flushed in order once the
 * connection is ready. Reading appends to one growing buffer (read in
 * 256 KiB pieces, compacted only when the room behind runs short) and cuts
 * whole frames out of it with the pure codec of frame.c; a bad frame takes
 * the connection DOWN, which only starts uv_close on the stream.
 *
 * A secure connection sends records (docs/security.md): whole frames, each
 * with its length prefix, gathered into one buffer and written with one
 * syscall. With nothing in flight a frame becomes a record at once, so a
 * lone request waits for nothing; while a write is in flight, frames gather
 * into the open record until it reaches REC_CAP or the write completes. So
 * a busy stream pays one AEAD call, one length prefix and one syscall per
 * 256 KiB rather than per message, and record buffers are recycled
 * (REC_SPARES), so it allocates nothing per record. A small record is
 * copied in and sealed in place when it is flushed; once a record reaches
 * REC_SEAL_DIRECT bytes it is sealed as it fills (OpenSSL's AES-256-GCM
 * takes its input in pieces), so each body is encrypted straight from the
 * sender's buffer into the record: one pass over the bytes, no copy first.
 * The reader opens a record in place in its read buffer and dispatches the
 * frames inside in order.
 *
 * Completions never run inside the API call that caused them: cancels are
 * queued on a deferred list and run from the connection's single timer
 * (started with timeout 0), which also enforces deadlines of both calls and
 * requests. When the stream's close callback runs, every pending call
 * completes with SWC_ECANCELED and every request is canceled; the timer is
 * closed (and the memory freed) once the owner closed the connection and
 * every request was finished by its handler. */
#define _GNU_SOURCE
#include "net/rpc_int.h"

#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"

int swc_rpc_hash_oom;

#define READ_CHUNK (256u * 1024)

void rpc_conn_kick(struct swc_rpc_conn *conn);
void rpc_conn_arm(struct swc_rpc_conn *conn, int64_t deadline);
void rpc_conn_maybe_free(struct swc_rpc_conn *conn);
static void conn_start_reading(struct swc_rpc_conn *conn);
static void conn_update_reading(struct swc_rpc_conn *conn);

/* ---- sending ---------------------------------------------------------------- */

/* A record's plaintext grows up to this many wire bytes (prefix and tag
 * included) before it is sealed; one frame bigger than that travels alone. */
#define REC_CAP    (256u * 1024)
#define REC_FIRST  (16u * 1024) /* first size of a record buffer */
#define REC_SPARES 2u           /* write buffers kept once the queue drains */
#define REC_WIRE   (SWC_FRAME_LEN_SIZE + SWC_SECCHAN_OVERHEAD) /* what a record adds */
/* A record that reaches this much plaintext is sealed as it fills: frames
 * are encrypted straight from the sender's buffers into it. */
#define REC_SEAL_DIRECT (16u * 1024)

static void ofrm_free(struct ofrm *f)
{
    swc_free(f->data);
    swc_free(f);
}

/* A buffer of at least cap bytes: the first spare that fits, else a new
 * one (then one spare too small to fit is freed, so the spares drift
 * towards the sizes this connection needs instead of filling up with
 * buffers it cannot use). */
static struct ofrm *ofrm_get(struct swc_rpc_conn *conn, size_t cap)
{
    struct ofrm **pp = &conn->spare;
    while (*pp != NULL && (*pp)->cap < cap) {
        pp = &(*pp)->next;
    }
    struct ofrm *f = *pp;
    if (f != NULL) {
        *pp = f->next;
        conn->nspare--;
        conn->spare_bytes -= f->cap;
    } else {
        if (conn->spare != NULL) {
            struct ofrm *small = conn->spare;
            conn->spare = small->next;
            conn->nspare--;
            conn->spare_bytes -= small->cap;
            ofrm_free(small);
        }
        f = swc_calloc(1, sizeof(*f));
        if (f == NULL) {
            return NULL;
        }
        f->data = swc_malloc(cap);
        if (f->data == NULL) {
            swc_free(f);
            return NULL;
        }
        f->cap = cap;
    }
    f->next = NULL;
    f->conn = conn;
    f->len = f->off = f->qbytes = 0;
    return f;
}

/* A written buffer of REC_FIRST..REC_CAP bytes is kept for the next
 * records or queued frames, up to the high-water mark in all: a connection
 * whose queue stays backed up then allocates nothing per write. Freeing
 * each and allocating the next made the allocator hand memory back to the
 * kernel and fault it in again, page by page, several times the cost of
 * the copy. Once the queue drains, spares_trim keeps REC_SPARES. */
static void ofrm_put(struct swc_rpc_conn *conn, struct ofrm *f)
{
    if (f->cap <= REC_CAP && f->cap >= REC_FIRST &&
        conn->spare_bytes + f->cap <= (conn->high_water > REC_CAP ? conn->high_water : REC_CAP)) {
        f->next = conn->spare;
        conn->spare = f;
        conn->nspare++;
        conn->spare_bytes += f->cap;
        return;
    }
    ofrm_free(f);
}

/* Nothing in flight: keep only REC_SPARES spare buffers. */
static void spares_trim(struct swc_rpc_conn *conn)
{
    while (conn->nspare > REC_SPARES) {
        struct ofrm *f = conn->spare;
        conn->spare = f->next;
        conn->nspare--;
        conn->spare_bytes -= f->cap;
        ofrm_free(f);
    }
}

static void rec_flush(struct swc_rpc_conn *conn);

/* Tell waiting senders that the queue drained; restart the scan after each
 * callback because it may finish any req. */
static void conn_notify_writable(struct swc_rpc_conn *conn)
{
    if (conn->pause_bp) {
        conn->pause_bp = false;
        conn_update_reading(conn);
    }
    while (conn->writable_waiters > 0 && conn->state == CONN_READY &&
           conn->wq_bytes <= conn->high_water / 2) {
        struct swc_rpc_req *r = conn->req_list;
        while (r != NULL && !r->want_writable) {
            r = r->next;
        }
        if (r == NULL) {
            conn->writable_waiters = 0;
            break;
        }
        r->want_writable = false;
        conn->writable_waiters--;
        if (r->writable_cb != NULL) {
            r->writable_cb(r, 0, r->writable_data);
        }
    }
}

static void write_cb(uv_write_t *w, int status)
{
    struct ofrm *f = w->data;
    struct swc_rpc_conn *conn = f->conn;
    conn->wq_bytes -= f->qbytes;
    conn->inflight--;
    ofrm_put(conn, f);
    if (status < 0) {
        if (status != UV_ECANCELED) {
            swc_rpc_conn_down(conn, SWC_ECANCELED, uv_strerror(status));
        }
        return;
    }
    if (conn->state != CONN_READY) {
        return;
    }
    /* Frames sent while this write was in flight were gathered into one
     * record: seal and send it now, behind what the kernel already holds. */
    if (conn->rec != NULL && conn->inflight == 0) {
        rec_flush(conn);
    }
    if (conn->wq_bytes <= conn->high_water / 2) {
        conn_notify_writable(conn);
    }
    if (conn->inflight == 0) {
        spares_trim(conn);
    }
}

/* Queue f's unwritten bytes with uv_write (f is owned by the request). */
static void conn_submit(struct swc_rpc_conn *conn, struct ofrm *f)
{
    uv_buf_t buf = uv_buf_init((char *)f->data + f->off, (unsigned)(f->len - f->off));
    f->w.data = f;
    int rc = uv_write(&f->w, &conn->h.stream, &buf, 1, write_cb);
    if (rc != 0) {
        conn->wq_bytes -= f->qbytes;
        ofrm_put(conn, f);
        swc_rpc_conn_down(conn, SWC_ECANCELED, uv_strerror(rc));
        return;
    }
    conn->inflight++;
}

/* Write f now if nothing is in flight (uv_try_write: most of the time the
 * kernel takes it all and f is recycled at once), and queue the rest. */
static void conn_write(struct swc_rpc_conn *conn, struct ofrm *f)
{
    if (conn->inflight == 0) {
        uv_buf_t buf = uv_buf_init((char *)f->data, (unsigned)f->len);
        int w = uv_try_write(&conn->h.stream, &buf, 1);
        if (w == UV_EAGAIN) {
            w = 0;
        } else if (w < 0) {
            conn->wq_bytes -= f->qbytes;
            ofrm_put(conn, f);
            swc_rpc_conn_down(conn, SWC_ECANCELED, uv_strerror(w));
            return;
        }
        if ((size_t)w == f->len) {
            conn->wq_bytes -= f->qbytes;
            ofrm_put(conn, f);
            return;
        }
        f->off = (size_t)w;
    }
    conn_submit(conn, f);
}

static void conn_check_backpressure(struct swc_rpc_conn *conn)
{
    if (conn->srv != NULL && conn->wq_bytes > conn->high_water && !conn->pause_bp) {
        /* The peer is not reading what we write: stop taking new work. */
        conn->pause_bp = true;
        conn_update_reading(conn);
    }
}

/* Seal the record being filled (finish it if it was sealed as it filled,
 * else seal it where it lies) and write it. */
static void rec_flush(struct swc_rpc_conn *conn)
{
    struct ofrm *f = conn->rec;
    conn->rec = NULL;
    size_t plen = f->len - SWC_FRAME_LEN_SIZE;
    int rc;
    if (conn->rec_sealing) {
        conn->rec_sealing = false;
        rc = swc_secchan_seal_end(conn->sc, f->data + f->len);
    } else {
        rc = swc_secchan_seal_inplace(conn->sc, f->data + SWC_FRAME_LEN_SIZE, plen);
    }
    if (rc != 0) {
        conn->wq_bytes -= f->qbytes;
        ofrm_put(conn, f);
        swc_rpc_conn_down(conn, SWC_EINTERNAL, "seal failed");
        return;
    }
    swc_frame_put_len(f->data, (uint32_t)(plen + SWC_SECCHAN_OVERHEAD));
    f->len += SWC_SECCHAN_OVERHEAD;
    conn->wq_bytes += REC_WIRE;
    f->qbytes += REC_WIRE;
    conn_write(conn, f);
}

/* Make room for n more plaintext bytes in the open record, sealing it
 * first when they would not fit in REC_CAP. Returns the place to write. */
static uint8_t *rec_room(struct swc_rpc_conn *conn, size_t n)
{
    struct ofrm *f = conn->rec;
    if (f != NULL && f->len + n + SWC_SECCHAN_OVERHEAD > REC_CAP) {
        rec_flush(conn);
        if (conn->state != CONN_READY) {
            return NULL;
        }
        f = NULL;
    }
    size_t need = (f != NULL ? f->len : SWC_FRAME_LEN_SIZE) + n + SWC_SECCHAN_OVERHEAD;
    if (f == NULL) {
        /* With a write in flight more frames will likely join this record:
         * take a full-size buffer rather than growing one by copies. */
        size_t first = conn->inflight > 0 ? REC_CAP : REC_FIRST;
        f = ofrm_get(conn, need > first ? need : first);
        if (f == NULL) {
            return NULL;
        }
        f->len = SWC_FRAME_LEN_SIZE;
        conn->rec = f;
    } else if (need > f->cap) {
        size_t cap = f->cap * 2 > need ? f->cap * 2 : need;
        cap = cap > REC_CAP ? REC_CAP : cap;
        uint8_t *d = swc_realloc(f->data, cap);
        if (d == NULL) {
            return NULL;
        }
        f->data = d;
        f->cap = cap;
    }
    return f->data + f->len;
}

/* The open record is about to hold `total` plaintext bytes: from
 * REC_SEAL_DIRECT on, switch it to sealing as it fills (what it holds is
 * encrypted in place, in the one pass sealing it later would have cost).
 * When the channel cannot (ChaCha20, libsodium only), frames keep being
 * copied and the record is sealed whole when it is flushed. */
static int rec_maybe_seal_early(struct swc_rpc_conn *conn, size_t total)
{
    struct ofrm *f = conn->rec;
    if (conn->rec_sealing || total < REC_SEAL_DIRECT || swc_secchan_seal_begin(conn->sc) != 0) {
        return 0; /* a dead channel fails again at the flush */
    }
    conn->rec_sealing = true;
    uint8_t *p = f->data + SWC_FRAME_LEN_SIZE;
    return swc_secchan_seal_update(conn->sc, p, p, f->len - SWC_FRAME_LEN_SIZE);
}

/* Put n plaintext bytes from src at p in the open record: encrypted on the
 * way when it is sealed as it fills, else copied (src may equal p). */
static int rec_put(struct swc_rpc_conn *conn, uint8_t *p, const uint8_t *src, size_t n)
{
    if (conn->rec_sealing) {
        return swc_secchan_seal_update(conn->sc, p, src, n);
    }
    if (p != src) {
        memcpy(p, src, n);
    }
    return 0;
}

/* Secure, READY: append one frame (prefix, header, body) to the open record
 * and send the record at once if nothing is in flight (a lone request goes
 * out without waiting), or when it is full. Frames sent while a write is in
 * flight thus share one seal and one write. */
static int rec_append(struct swc_rpc_conn *conn, const struct swc_rpc_hdr *h, size_t hlen,
                      const uint8_t *body, size_t blen)
{
    size_t n = SWC_FRAME_LEN_SIZE + hlen + blen;
    uint8_t *p = rec_room(conn, n);
    if (p == NULL) {
        return conn->state == CONN_READY ? SWC_ENOMEM : 0;
    }
    swc_frame_put_len(p, (uint32_t)(hlen + blen));
    if (h != NULL) {
        swc_rpc_hdr_encode(h, p + SWC_FRAME_LEN_SIZE);
    }
    /* The body goes from the caller's buffer to the record in one pass:
     * encrypted there when the record is sealed as it fills. */
    if (rec_maybe_seal_early(conn, conn->rec->len - SWC_FRAME_LEN_SIZE + n) != 0 ||
        rec_put(conn, p, p, SWC_FRAME_LEN_SIZE + hlen) != 0 ||
        (blen > 0 && rec_put(conn, p + SWC_FRAME_LEN_SIZE + hlen, body, blen) != 0)) {
        swc_rpc_conn_down(conn, SWC_EINTERNAL, "seal failed");
        return 0; /* accepted: the call completes when the stream closes */
    }
    conn->rec->len += n;
    conn->rec->qbytes += n;
    conn->wq_bytes += n;
    if (conn->inflight == 0 || conn->rec->len + SWC_SECCHAN_OVERHEAD >= REC_CAP) {
        rec_flush(conn);
    }
    conn_check_backpressure(conn);
    return 0;
}

/* Plain (or handshake) frame when nothing is queued: write straight from
 * the caller's bytes with uv_try_write and copy only what the kernel did
 * not take. Saves an allocation and a copy per frame in the common case. */
static int conn_send_now(struct swc_rpc_conn *conn, const struct swc_rpc_hdr *h, size_t hlen,
                         const uint8_t *body, size_t blen)
{
    uint8_t head[SWC_FRAME_LEN_SIZE + SWC_RPC_HDR_MAX + SWC_RPC_ERRMSG_MAX];
    uv_buf_t bufs[2];
    unsigned nb = 0;
    size_t plen = hlen + blen;
    swc_frame_put_len(head, (uint32_t)plen);
    if (h != NULL) {
        swc_rpc_hdr_encode(h, head + SWC_FRAME_LEN_SIZE);
    }
    bufs[nb++] = uv_buf_init((char *)head, (unsigned)(SWC_FRAME_LEN_SIZE + hlen));
    if (blen > 0) {
        bufs[nb++] = uv_buf_init((char *)body, (unsigned)blen);
    }
    size_t total = SWC_FRAME_LEN_SIZE + plen;
    int w = uv_try_write(&conn->h.stream, bufs, nb);
    if (w == UV_EAGAIN) {
        w = 0;
    } else if (w < 0) {
        swc_rpc_conn_down(conn, SWC_ECANCELED, uv_strerror(w));
        return 0; /* accepted: the call completes when the stream closes */
    }
    size_t left = total - (size_t)w;
    if (left == 0) {
        return 0;
    }
    struct ofrm *f = ofrm_get(conn, left);
    if (f == NULL) {
        swc_rpc_conn_down(conn, SWC_ENOMEM, "no memory for the write queue");
        return 0; /* part of the frame is on the wire: the stream is unusable */
    }
    size_t skip = (size_t)w, off = 0;
    for (unsigned i = 0; i < nb; i++) {
        size_t n = bufs[i].len;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        memcpy(f->data + off, bufs[i].base + skip, n - skip);
        off += n - skip;
        skip = 0;
    }
    f->len = f->qbytes = left;
    conn->wq_bytes += left;
    conn_submit(conn, f);
    conn_check_backpressure(conn);
    return 0;
}

/* Build a frame from a header and a body and send or queue it. raw frames
 * (handshake) bypass the pending list and the records. */
int rpc_conn_send(struct swc_rpc_conn *conn, const struct swc_rpc_hdr *h, const uint8_t *body,
                  size_t blen, bool raw)
{
    size_t hlen = h != NULL ? swc_rpc_hdr_size(h) : 0;
    size_t plen = hlen + blen;
    size_t limit = conn->max_frame - (conn->secure && !raw ? REC_WIRE : 0);
    if (plen > limit) {
        return SWC_ETOOBIG;
    }
    if (conn->secure && !raw && conn->state == CONN_READY) {
        return rec_append(conn, h, hlen, body, blen);
    }
    if ((raw || conn->state == CONN_READY) && conn->inflight == 0) {
        return conn_send_now(conn, h, hlen, body, blen);
    }
    struct ofrm *f = ofrm_get(conn, SWC_FRAME_LEN_SIZE + plen);
    if (f == NULL) {
        return SWC_ENOMEM;
    }
    f->len = SWC_FRAME_LEN_SIZE + plen;
    f->qbytes = f->len;
    swc_frame_put_len(f->data, (uint32_t)plen);
    if (h != NULL) {
        swc_rpc_hdr_encode(h, f->data + SWC_FRAME_LEN_SIZE);
    }
    if (blen > 0) {
        memcpy(f->data + SWC_FRAME_LEN_SIZE + hlen, body, blen);
    }
    conn->wq_bytes += f->qbytes;
    if (raw || conn->state == CONN_READY) {
        conn_submit(conn, f);
    } else {
        if (conn->pend_tail != NULL) {
            conn->pend_tail->next = f;
        } else {
            conn->pend_head = f;
        }
        conn->pend_tail = f;
    }
    conn_check_backpressure(conn);
    return 0;
}

/* READY: send what was queued before; on a secure connection the frames
 * (already [prefix | payload]) are gathered into records. */
static void conn_flush_pending(struct swc_rpc_conn *conn)
{
    while (conn->pend_head != NULL && conn->state == CONN_READY) {
        struct ofrm *f = conn->pend_head;
        conn->pend_head = f->next;
        if (conn->pend_head == NULL) {
            conn->pend_tail = NULL;
        }
        f->next = NULL;
        if (!conn->secure) {
            conn_submit(conn, f);
            continue;
        }
        conn->wq_bytes -= f->qbytes;
        uint8_t *p = rec_room(conn, f->len);
        if (p == NULL) {
            ofrm_free(f);
            swc_rpc_conn_down(conn, SWC_ENOMEM, "no memory for the write queue");
            return;
        }
        if (rec_maybe_seal_early(conn, conn->rec->len - SWC_FRAME_LEN_SIZE + f->len) != 0 ||
            rec_put(conn, p, f->data, f->len) != 0) {
            ofrm_free(f);
            swc_rpc_conn_down(conn, SWC_EINTERNAL, "seal failed");
            return;
        }
        conn->rec->len += f->len;
        conn->rec->qbytes += f->len;
        conn->wq_bytes += f->len;
        ofrm_put(conn, f);
    }
    if (conn->rec != NULL && conn->inflight == 0 && conn->state == CONN_READY) {
        rec_flush(conn);
    }
}
void rpc_send_status(struct swc_rpc_conn *conn, uint8_t kind, uint32_t id, int status,
                     const char *errmsg, const uint8_t *body, size_t blen)
{
    struct swc_rpc_hdr h = {.kind = kind, .call_id = id, .status = status};
    if (errmsg != NULL) {
        h.errmsg = errmsg;
        h.errmsg_len = strlen(errmsg);
    }
    int rc = rpc_conn_send(conn, &h, body, blen, false);
    if (rc == SWC_ETOOBIG) {
        h.errmsg = "reply too big";
        h.errmsg_len = strlen(h.errmsg);
        h.status = SWC_ETOOBIG;
        rc = rpc_conn_send(conn, &h, NULL, 0, false);
    }
    if (rc != 0) {
        swc_rpc_conn_down(conn, rc, "cannot queue a reply");
    }
}

/* ---- going down and freeing ------------------------------------------------------ */

static void timer_close_cb(uv_handle_t *h)
{
    struct swc_rpc_conn *conn = h->data;
    swc_buf_free(&conn->rbuf);
    if (conn->rec != NULL) {
        ofrm_free(conn->rec);
    }
    while (conn->spare != NULL) {
        struct ofrm *f = conn->spare;
        conn->spare = f->next;
        ofrm_free(f);
    }
    swc_secchan_destroy(conn->sc);
    sodium_memzero(&conn->sec_self, sizeof(conn->sec_self));
    while (conn->pend_head != NULL) {
        struct ofrm *f = conn->pend_head;
        conn->pend_head = f->next;
        ofrm_free(f);
    }
    struct swc_rpc_server *srv = conn->srv;
    swc_rpc_conn_close_cb cb = conn->close_cb;
    void *data = conn->close_data;
    if (srv != NULL) {
        swc_rpc_server_conn_gone(srv, conn);
    }
    swc_free(conn);
    if (cb != NULL) {
        cb(data);
    }
}

void rpc_conn_maybe_free(struct swc_rpc_conn *conn)
{
    if (conn->freeing || conn->stream_inited || conn->nreqs > 0 || conn->gai_pending) {
        return;
    }
    if (conn->srv == NULL && !conn->user_closing) {
        return;
    }
    conn->freeing = true;
    uv_close((uv_handle_t *)&conn->timer, timer_close_cb);
}

static void stream_close_cb(uv_handle_t *h)
{
    struct swc_rpc_conn *conn = h->data;
    conn->stream_inited = false;
    int call_status = conn->was_ready ? SWC_ECANCELED : SWC_EUNAVAIL;
    rpc_run_deferred_calls(conn);
    while (conn->calls != NULL) {
        rpc_call_complete(conn->calls, call_status, NULL, 0, NULL, 0);
    }
    while (conn->reqs != NULL) {
        rpc_req_cancel(conn->reqs, SWC_ECANCELED);
    }
    if (!conn->user_closing && conn->srv == NULL) {
        if (!conn->was_ready) {
            /* The peer hanging up before we were ready is "unreachable". */
            int st = conn->down_status == SWC_ECANCELED ? SWC_EUNAVAIL : conn->down_status;
            if (conn->on_connect != NULL) {
                conn->on_connect(conn, st, conn->data);
            }
        } else if (conn->on_close != NULL) {
            conn->on_close(conn, conn->down_status, conn->data);
        }
    }
    rpc_conn_maybe_free(conn);
}

void swc_rpc_conn_down(struct swc_rpc_conn *conn, int status, const char *reason)
{
    if (conn->state == CONN_DOWN) {
        return;
    }
    conn->state = CONN_DOWN;
    conn->down_status = status;
    if (conn->srv != NULL && (status == SWC_EPROTO || status == SWC_ETOOBIG)) {
        conn->srv->stats.proto_errors++;
    }
    if (conn->srv != NULL && (status == SWC_EAUTH || status == SWC_EEXPIRED)) {
        conn->srv->stats.auth_errors++;
    }
    if (status == SWC_EPROTO || status == SWC_ETOOBIG || status == SWC_EAUTH ||
        status == SWC_EEXPIRED) {
        swc_warnf(RPC_LOG, "connection %s closed: %s (%s)", conn->peer.addr, reason,
                  swc_strerror(status));
    } else if (conn->user_closing || conn->srv != NULL) {
        swc_debugf(RPC_LOG, "connection %s closed: %s", conn->peer.addr, reason);
    } else {
        swc_infof(RPC_LOG, "connection %s closed: %s (%s)", conn->peer.addr, reason,
                  swc_strerror(status));
    }
    if (conn->gai_pending) {
        uv_cancel((uv_req_t *)&conn->gai);
    }
    if (conn->stream_inited) {
        if (!uv_is_closing(&conn->h.handle)) {
            uv_close(&conn->h.handle, stream_close_cb);
        }
    } else {
        rpc_conn_kick(conn); /* never had a stream: finish from the timer */
    }
}

void swc_rpc_conn_close(struct swc_rpc_conn *conn, swc_rpc_conn_close_cb cb, void *data)
{
    conn->user_closing = true;
    conn->close_cb = cb;
    conn->close_data = data;
    if (conn->state != CONN_DOWN) {
        swc_rpc_conn_down(conn, SWC_ECANCELED, "closed by its owner");
    } else {
        rpc_conn_maybe_free(conn);
    }
}

/* ---- reading ----------------------------------------------------------------------- */

static void conn_ready(struct swc_rpc_conn *conn)
{
    conn->state = CONN_READY;
    conn->was_ready = true;
    conn_flush_pending(conn);
    if (conn->srv == NULL && conn->on_connect != NULL && conn->state == CONN_READY) {
        conn->on_connect(conn, 0, conn->data);
    }
}

/* One sealed record (p points into our own read buffer): open it there, no
 * copy, and dispatch the frames inside it in order. A record holds whole
 * frames only, so a truncated inner frame is a protocol error. */
static void handle_record(struct swc_rpc_conn *conn, uint8_t *p, size_t len)
{
    if (swc_secchan_open_inplace(conn->sc, p, len) != 0) {
        char reason[SWC_ERRMSG_SIZE];
        snprintf(reason, sizeof(reason), "record failed to open: %s", swc_secchan_errmsg(conn->sc));
        swc_rpc_conn_down(conn, SWC_EAUTH, reason);
        return;
    }
    size_t n = len - SWC_SECCHAN_OVERHEAD, off = 0;
    if (n == 0) {
        swc_rpc_conn_down(conn, SWC_EPROTO, "empty record");
        return;
    }
    while (off < n && conn->state == CONN_READY) {
        const uint8_t *f;
        uint32_t flen;
        size_t consumed, need;
        int rc = swc_frame_parse(p + off, n - off, conn->max_frame - REC_WIRE, &f, &flen, &consumed,
                                 &need);
        if (rc != 0) {
            swc_rpc_conn_down(conn, SWC_ETOOBIG, "frame inside a record over the limit");
            return;
        }
        if (consumed == 0) {
            swc_rpc_conn_down(conn, SWC_EPROTO, "record ends inside a frame");
            return;
        }
        off += consumed;
        rpc_dispatch(conn, f, flen);
    }
}

static void handle_frame(struct swc_rpc_conn *conn, const uint8_t *p, size_t len)
{
    if (conn->state == CONN_HANDSHAKE) {
        struct swc_buf out;
        swc_buf_init(&out);
        bool done = false;
        int rc = swc_secchan_handshake(conn->sc, p, len, &out, &done);
        if (rc == 0 && out.len > 0) {
            rc = rpc_conn_send(conn, NULL, out.data, out.len, true);
        }
        swc_buf_free(&out);
        if (rc != 0) {
            char reason[SWC_ERRMSG_SIZE];
            snprintf(reason, sizeof(reason), "secure handshake: %s", swc_secchan_errmsg(conn->sc));
            swc_rpc_conn_down(conn, rc, reason);
            return;
        }
        if (done) {
            const struct swc_cert *c = swc_secchan_peer(conn->sc);
            if (c != NULL) {
                conn->peer.has_cert = true;
                snprintf(conn->peer.node_id, sizeof(conn->peer.node_id), "%s", c->node_id);
                snprintf(conn->peer.cluster_id, sizeof(conn->peer.cluster_id), "%s", c->cluster_id);
                conn->peer.role = c->role;
            }
            conn_ready(conn);
        }
        return;
    }
    if (conn->state != CONN_READY) {
        return;
    }
    if (conn->secure) {
        handle_record(conn, (uint8_t *)p, len);
        return;
    }
    rpc_dispatch(conn, p, len);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct swc_rpc_conn *conn = h->data;
    struct swc_buf *b = &conn->rbuf;
    /* Move the partial frame to the front only when the room behind it runs
     * short, not on every read: records are large and arrive in pieces. */
    if (conn->rstart > 0 && b->cap - b->len < READ_CHUNK) {
        memmove(b->data, b->data + conn->rstart, b->len - conn->rstart);
        b->len -= conn->rstart;
        conn->rstart = 0;
    }
    /* Grow only as bytes arrive (the buffer doubles), so a peer announcing
     * a large frame and sending nothing costs us nothing. */
    size_t want = READ_CHUNK;
    if (swc_buf_reserve(b, want) != 0) {
        buf->base = NULL;
        buf->len = 0; /* libuv reports UV_ENOBUFS */
        return;
    }
    buf->base = (char *)b->data + b->len;
    buf->len = b->cap - b->len;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct swc_rpc_conn *conn = s->data;
    if (nread < 0) {
        if (conn->state == CONN_DOWN) {
            return;
        }
        if (nread == UV_EOF) {
            if (conn->rbuf.len > conn->rstart) {
                swc_rpc_conn_down(conn, SWC_EPROTO, "truncated frame at end of stream");
            } else {
                swc_rpc_conn_down(conn, SWC_ECANCELED, "peer closed the connection");
            }
        } else if (nread == UV_ENOBUFS) {
            swc_rpc_conn_down(conn, SWC_ENOMEM, "no memory for the read buffer");
        } else {
            swc_rpc_conn_down(conn, SWC_ECANCELED, uv_strerror((int)nread));
        }
        return;
    }
    conn->rbuf.len += (size_t)nread;
    while (conn->state == CONN_HANDSHAKE || conn->state == CONN_READY) {
        const uint8_t *p;
        uint32_t plen;
        size_t consumed, need;
        /* Records may gather frames up to REC_CAP whatever our frame limit;
         * the frames inside are held to it (handle_record). */
        uint32_t max = conn->max_frame;
        if (conn->secure && conn->state == CONN_READY && max < REC_CAP) {
            max = REC_CAP;
        }
        int rc = swc_frame_parse(conn->rbuf.data + conn->rstart, conn->rbuf.len - conn->rstart, max,
                                 &p, &plen, &consumed, &need);
        if (rc != 0) {
            char reason[96];
            snprintf(reason, sizeof(reason), "frame of %u bytes over the limit of %u",
                     swc_get_u32(conn->rbuf.data + conn->rstart), max);
            swc_rpc_conn_down(conn, SWC_ETOOBIG, reason);
            return;
        }
        if (consumed == 0) {
            break;
        }
        conn->rstart += consumed;
        handle_frame(conn, p, plen);
    }
    if (conn->rstart == conn->rbuf.len) {
        conn->rstart = 0;
        conn->rbuf.len = 0;
    }
}

static void conn_update_reading(struct swc_rpc_conn *conn)
{
    if (!conn->stream_inited || conn->state == CONN_DOWN || conn->state == CONN_CONNECTING) {
        return;
    }
    bool want = !conn->pause_user && !conn->pause_bp;
    if (want && !conn->reading) {
        int rc = uv_read_start(&conn->h.stream, alloc_cb, read_cb);
        if (rc != 0) {
            swc_rpc_conn_down(conn, SWC_EIO, uv_strerror(rc));
            return;
        }
        conn->reading = true;
    } else if (!want && conn->reading) {
        uv_read_stop(&conn->h.stream);
        conn->reading = false;
    }
}

static void conn_start_reading(struct swc_rpc_conn *conn)
{
    conn_update_reading(conn);
}

void swc_rpc_conn_read_pause(struct swc_rpc_conn *conn, bool paused)
{
    conn->pause_user = paused;
    conn_update_reading(conn);
}

void swc_rpc_ignore_sigpipe(void)
{
    static bool done;
    if (done) {
        return;
    }
    done = true;
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
    }
}

void swc_rpc_copy_secure(struct swc_secchan_config *dst, struct swc_identity *self_copy,
                         const struct swc_secchan_config *src)
{
    *dst = *src;
    if (src->self != NULL) {
        *self_copy = *src->self;
        dst->self = self_copy;
    }
}

/* ---- setting up ---------------------------------------------------------------------- */

static int start_secure(struct swc_rpc_conn *conn)
{
    int rc = swc_secchan_create(&conn->sec_cfg, &conn->sc);
    if (rc != 0) {
        return rc;
    }
    conn->state = CONN_HANDSHAKE;
    conn->peer.secure = true;
    if (conn->sec_cfg.is_client) {
        struct swc_buf out;
        swc_buf_init(&out);
        bool done = false;
        rc = swc_secchan_handshake(conn->sc, NULL, 0, &out, &done);
        if (rc == 0) {
            rc = rpc_conn_send(conn, NULL, out.data, out.len, true);
        }
        swc_buf_free(&out);
    }
    return rc;
}

/* A stream just became connected (client) or accepted (server). */
static void conn_established(struct swc_rpc_conn *conn)
{
    if (conn->secure) {
        int rc = start_secure(conn);
        if (rc != 0) {
            swc_rpc_conn_down(conn, rc, "cannot start the secure channel");
            return;
        }
        conn_start_reading(conn);
        return;
    }
    conn->state = CONN_HANDSHAKE; /* lets reading start; READY just below */
    conn_start_reading(conn);
    if (conn->state != CONN_DOWN) {
        conn_ready(conn);
    }
}

static void fill_tcp_peer(struct swc_rpc_conn *conn)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&conn->h.tcp, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    char ip[64] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(conn->peer.addr, sizeof(conn->peer.addr), "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(conn->peer.addr, sizeof(conn->peer.addr), "[%s]:%d", ip, port);
    }
}

int swc_rpc_conn_new(uv_loop_t *loop, struct swc_rpc_server *srv, bool is_pipe,
                     struct swc_rpc_conn **out)
{
    swc_rpc_ignore_sigpipe();
    struct swc_rpc_conn *conn = swc_calloc(1, sizeof(*conn));
    if (conn == NULL) {
        return SWC_ENOMEM;
    }
    conn->loop = loop;
    conn->srv = srv;
    conn->is_pipe = is_pipe;
    conn->max_frame = SWC_RPC_MAX_FRAME_DEFAULT;
    conn->high_water = SWC_RPC_HIGH_WATER_DEFAULT;
    conn->peer.transport = is_pipe ? SWC_RPC_UNIX : SWC_RPC_TCP;
    swc_buf_init(&conn->rbuf);
    int rc = is_pipe ? uv_pipe_init(loop, &conn->h.pipe, 0) : uv_tcp_init(loop, &conn->h.tcp);
    if (rc != 0) {
        swc_free(conn);
        return SWC_EIO;
    }
    uv_timer_init(loop, &conn->timer);
    conn->timer.data = conn;
    conn->h.handle.data = conn;
    conn->stream_inited = true;
    *out = conn;
    return 0;
}

void swc_rpc_conn_start_accepted(struct swc_rpc_conn *conn, const struct swc_secchan_config *secure)
{
    if (!conn->is_pipe) {
        uv_tcp_nodelay(&conn->h.tcp, 1);
        fill_tcp_peer(conn);
    }
    if (secure != NULL) {
        conn->secure = true;
        conn->sec_cfg = *secure;
        conn->sec_cfg.is_client = false;
    }
    conn_established(conn);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct swc_rpc_conn *conn = req->data;
    if (conn->state == CONN_DOWN) {
        return;
    }
    if (status != 0) {
        char reason[160];
        snprintf(reason, sizeof(reason), "connect to %s: %s", conn->peer.addr, uv_strerror(status));
        swc_rpc_conn_down(conn, SWC_EUNAVAIL, reason);
        return;
    }
    if (!conn->is_pipe) {
        uv_tcp_nodelay(&conn->h.tcp, 1);
    }
    conn_established(conn);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct swc_rpc_conn *conn = req->data;
    conn->gai_pending = false;
    if (conn->state == CONN_DOWN) {
        uv_freeaddrinfo(res);
        rpc_conn_maybe_free(conn);
        return;
    }
    if (status != 0 || res == NULL) {
        uv_freeaddrinfo(res);
        swc_rpc_conn_down(conn, SWC_EUNAVAIL, "cannot resolve the host name");
        return;
    }
    conn->connect_req.data = conn;
    int rc = uv_tcp_connect(&conn->connect_req, &conn->h.tcp, res->ai_addr, connect_cb);
    uv_freeaddrinfo(res);
    if (rc != 0) {
        swc_rpc_conn_down(conn, SWC_EUNAVAIL, uv_strerror(rc));
    }
}

/* Split "host:port" / "[v6]:port" into host and port. */
static int split_host_port(const char *addr, char *host, size_t hostsz, char *port, size_t portsz)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) >= portsz) {
        return SWC_EINVAL;
    }
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hostsz) {
        return SWC_EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, portsz, "%s", colon + 1);
    return 0;
}

int swc_rpc_parse_addr(const char *addr, struct sockaddr_storage *ss, char *host, size_t hostsz,
                       char *port, size_t portsz)
{
    int rc = split_host_port(addr, host, hostsz, port, portsz);
    if (rc != 0) {
        return rc;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535) {
        return SWC_EINVAL;
    }
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)p, (struct sockaddr_in *)ss) == 0) {
        return 0;
    }
    if (uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)ss) == 0) {
        return 0;
    }
    return SWC_ENOENT; /* a name: resolve it */
}

int swc_rpc_connect(uv_loop_t *loop, const char *addr, const struct swc_rpc_conn_opts *opts,
                    struct swc_rpc_conn **out)
{
    if (addr == NULL || *addr == '\0') {
        return SWC_EINVAL;
    }
    bool is_pipe = strchr(addr, '/') != NULL;
    if (strncmp(addr, "unix://", 7) == 0) {
        addr += 7;
    }
    if (opts != NULL && opts->secure != NULL && !opts->secure->is_client) {
        return SWC_EINVAL;
    }
    char host[128], port[16];
    struct sockaddr_storage ss;
    int prc = 0;
    if (!is_pipe) {
        prc = swc_rpc_parse_addr(addr, &ss, host, sizeof(host), port, sizeof(port));
        if (prc == SWC_EINVAL) {
            return SWC_EINVAL;
        }
    } else if (strlen(addr) >= sizeof(((struct swc_rpc_peer *)0)->addr)) {
        return SWC_EINVAL;
    }
    struct swc_rpc_conn *conn;
    int rc = swc_rpc_conn_new(loop, NULL, is_pipe, &conn);
    if (rc != 0) {
        return rc;
    }
    snprintf(conn->peer.addr, sizeof(conn->peer.addr), "%s", addr);
    if (opts != NULL) {
        if (opts->max_frame != 0) {
            conn->max_frame = opts->max_frame;
        }
        if (opts->high_water != 0) {
            conn->high_water = opts->high_water;
        }
        conn->on_connect = opts->on_connect;
        conn->on_close = opts->on_close;
        conn->data = opts->data;
        if (opts->secure != NULL) {
            conn->secure = true;
            swc_rpc_copy_secure(&conn->sec_cfg, &conn->sec_self, opts->secure);
        }
    }
    conn->connect_req.data = conn;
    if (is_pipe) {
        uv_pipe_connect(&conn->connect_req, &conn->h.pipe, addr, connect_cb);
    } else if (prc == 0) {
        rc = uv_tcp_connect(&conn->connect_req, &conn->h.tcp, (struct sockaddr *)&ss, connect_cb);
        if (rc != 0) {
            swc_rpc_conn_down(conn, SWC_EUNAVAIL, uv_strerror(rc));
        }
    } else {
        conn->gai.data = conn;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        rc = uv_getaddrinfo(loop, &conn->gai, gai_cb, host, port, &hints);
        conn->gai_pending = rc == 0;
        if (rc != 0) {
            swc_rpc_conn_down(conn, SWC_EUNAVAIL, uv_strerror(rc));
        }
    }
    *out = conn;
    return 0;
}

bool swc_rpc_conn_ready(const struct swc_rpc_conn *conn)
{
    return conn->state == CONN_READY;
}

const struct swc_rpc_peer *swc_rpc_conn_peer(const struct swc_rpc_conn *conn)
{
    return &conn->peer;
}

size_t swc_rpc_conn_write_queue(const struct swc_rpc_conn *conn)
{
    return conn->wq_bytes;
}
