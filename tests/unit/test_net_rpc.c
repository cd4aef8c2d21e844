/* RPC over real sockets (127.0.0.1 and temp unix paths) on one uv loop:
 * framing against raw byte streams, concurrency, streams, cancellation,
 * deadlines, peer death, backpressure, unix credentials and the secure
 * channel. Every wait runs the loop until a condition holds or a deadline
 * passes; teardown checks that no handle and no allocation is left. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/cert.h"
#include "net/frame.h"
#include "net/rpc.h"
#include "net/secchan.h"
#include "test_net_util.h"

/* ---- fixture -------------------------------------------------------------- */

static uv_loop_t loop;
static uv_timer_t tick;
static struct swc_rpc_server *srv;
static int port;
static long live_before;
static char tmpdir[64];

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        int64_t dl_ = swc_now_mono() + 10 * SWC_NS_PER_SEC;                                        \
        uv_timer_start(&tick, tick_cb, 2, 2);                                                      \
        while (!(cond) && swc_now_mono() < dl_) {                                                  \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        }                                                                                          \
        uv_timer_stop(&tick);                                                                      \
        assert_true(cond);                                                                         \
    } while (0)

/* Run the loop for ms without waiting on anything in particular. */
static void run_for(int ms)
{
    int64_t dl = swc_now_mono() + ms * SWC_NS_PER_MS;
    uv_timer_start(&tick, tick_cb, 1, 1);
    while (swc_now_mono() < dl) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&tick);
}

/* -- handlers -- */

#define HOLD_MAX 64
static struct swc_rpc_req *held[HOLD_MAX];
static int nheld;
static int hold_cancels;
static int hold_cancel_status;
static int hold_reply_rc;
static struct swc_rpc_peer seen_peer;

static void echo_h(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    assert_int_equal(swc_rpc_reply(req, 0, NULL, p, len), 0);
}

static void fail_h(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    swc_rpc_reply(req, SWC_ECONFLICT, "version conflict on x", NULL, 0);
}

static void peer_h(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    seen_peer = *swc_rpc_req_peer(req);
    swc_rpc_reply(req, 0, NULL, NULL, 0);
}

static void hold_cancel_cb(struct swc_rpc_req *req, int status, void *data)
{
    hold_cancels++;
    hold_cancel_status = status;
    for (int i = 0; i < nheld; i++) {
        if (held[i] == req) {
            held[i] = NULL;
        }
    }
    hold_reply_rc = swc_rpc_reply(req, 0, NULL, NULL, 0);
}

static void hold_h(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    assert_true(nheld < HOLD_MAX);
    held[nheld++] = req;
    swc_rpc_req_on_cancel(req, hold_cancel_cb, NULL);
}

/* Streams: the request payload is {u32 count, u32 size}. */
struct streamer {
    struct swc_rpc_req *req;
    uint32_t left, size;
    uint8_t *buf;
    int busy;
    size_t max_wq;
    int cancels;
    int cancel_status;
    bool forever;
};
static struct streamer *last_streamer;
static int streamers_done;

static void streamer_finish(struct streamer *s, int status)
{
    swc_rpc_end(s->req, status, NULL);
    free(s->buf);
    free(s);
    streamers_done++;
}

static void streamer_pump(struct streamer *s)
{
    while (s->left > 0) {
        int rc = swc_rpc_send(s->req, s->buf, s->size);
        size_t wq = swc_rpc_req_write_queue(s->req);
        if (wq > s->max_wq) {
            s->max_wq = wq;
        }
        if (rc == SWC_EBUSY) {
            s->busy++;
            return; /* on_writable resumes */
        }
        assert_int_equal(rc, 0);
        s->left--;
        if (s->forever) {
            return; /* one message, then wait for the cancel */
        }
    }
    streamer_finish(s, 0);
}

static void streamer_writable(struct swc_rpc_req *req, int status, void *data)
{
    streamer_pump(data);
}

static void streamer_cancel(struct swc_rpc_req *req, int status, void *data)
{
    struct streamer *s = data;
    s->cancels++;
    s->cancel_status = status;
    last_streamer = NULL;
    assert_int_equal(swc_rpc_end(req, 0, NULL), SWC_ECANCELED);
    free(s->buf);
    free(s);
    streamers_done++;
}

static void stream_h(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    assert_int_equal(len, 8);
    struct streamer *s = calloc(1, sizeof(*s));
    s->req = req;
    s->left = swc_get_u32(p);
    s->size = swc_get_u32(p + 4);
    s->buf = calloc(1, s->size + 1);
    for (uint32_t i = 0; i < s->size; i++) {
        s->buf[i] = (uint8_t)(i * 31 + 7); /* msg_cb checks it arrived intact */
    }
    s->forever = data != NULL;
    last_streamer = s;
    swc_rpc_req_on_writable(req, streamer_writable, s);
    swc_rpc_req_on_cancel(req, streamer_cancel, s);
    streamer_pump(s);
}

static void make_server(const struct swc_rpc_server_opts *opts)
{
    assert_int_equal(swc_rpc_server_init(&loop, opts, &srv), 0);
    assert_int_equal(swc_rpc_server_register(srv, "t.echo", false, echo_h, NULL), 0);
    assert_int_equal(swc_rpc_server_register(srv, "t.echo", false, echo_h, NULL), SWC_EEXIST);
    assert_int_equal(swc_rpc_server_register(srv, "t.fail", false, fail_h, NULL), 0);
    assert_int_equal(swc_rpc_server_register(srv, "t.peer", false, peer_h, NULL), 0);
    assert_int_equal(swc_rpc_server_register(srv, "t.hold", false, hold_h, NULL), 0);
    assert_int_equal(swc_rpc_server_register(srv, "t.stream", true, stream_h, NULL), 0);
    assert_int_equal(swc_rpc_server_register(srv, "t.forever", true, stream_h, &port), 0);
}

static int setup(void **state)
{
    live_before = swc_alloc_live();
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    nheld = 0;
    hold_cancels = 0;
    hold_cancel_status = 0;
    hold_reply_rc = -1;
    streamers_done = 0;
    last_streamer = NULL;
    memset(&seen_peer, 0, sizeof(seen_peer));
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/swc-net-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    srv = NULL;
    return 0;
}

static bool closed_flag;
static void server_closed(void *data)
{
    closed_flag = true;
}

static void walk_cb(uv_handle_t *h, void *arg)
{
    if (h != (uv_handle_t *)&tick) {
        fprintf(stderr, "left open: handle type %d\n", h->type);
        (*(int *)arg)++;
    }
}

static int teardown(void **state)
{
    if (srv != NULL) {
        closed_flag = false;
        swc_rpc_server_close(srv, server_closed, NULL);
        /* Handlers still holding reqs finish them on cancel. */
        WAIT_FOR(closed_flag);
        srv = NULL;
    }
    int open = 0;
    uv_walk(&loop, walk_cb, &open);
    assert_int_equal(open, 0);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(swc_alloc_live(), live_before);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void listen_tcp(void)
{
    assert_int_equal(swc_rpc_server_listen_tcp(srv, "127.0.0.1:0", NULL), 0);
    assert_int_equal(swc_rpc_server_port(srv, &port), 0);
}

/* -- client side -- */

struct result {
    int done;
    int status;
    char msg[256];
    size_t len;
    uint8_t first;
    int msgs;
    size_t bytes;
};

static void reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                     const uint8_t *payload, size_t len, void *data)
{
    struct result *r = data;
    r->done++;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", errmsg);
    r->len = len;
    r->first = len > 0 ? payload[0] : 0;
}

static void msg_cb(struct swc_rpc_call *call, const uint8_t *payload, size_t len, void *data)
{
    struct result *r = data;
    assert_int_equal(r->done, 0);
    for (size_t i = 0; i < len; i++) {
        if (payload[i] != (uint8_t)(i * 31 + 7)) {
            fail_msg("stream message %d: byte %zu is %u", r->msgs, i, payload[i]);
        }
    }
    r->msgs++;
    r->bytes += len;
}

static void end_cb(struct swc_rpc_call *call, int status, const char *errmsg, void *data)
{
    struct result *r = data;
    r->done++;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", errmsg);
}

static int conn_closed_events;
static int conn_closed_status;
static void on_conn_close(struct swc_rpc_conn *c, int status, void *data)
{
    conn_closed_events++;
    conn_closed_status = status;
}

static struct swc_rpc_conn *connect_to(const char *addr, const struct swc_rpc_conn_opts *opts)
{
    struct swc_rpc_conn *c = NULL;
    assert_int_equal(swc_rpc_connect(&loop, addr, opts, &c), 0);
    WAIT_FOR(swc_rpc_conn_ready(c));
    return c;
}

static struct swc_rpc_conn *connect_tcp(void)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    return connect_to(addr, NULL);
}

static bool conn_gone;
static void conn_closed_cb(void *data)
{
    conn_gone = true;
}

static void close_conn(struct swc_rpc_conn *c)
{
    conn_gone = false;
    swc_rpc_conn_close(c, conn_closed_cb, NULL);
    WAIT_FOR(conn_gone);
}

/* -- raw sockets: bytes straight onto the server's socket -- */

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Write n bytes in chunks of `chunk`, letting the server read between. */
static void raw_send(int fd, const uint8_t *p, size_t n, size_t chunk)
{
    for (size_t off = 0; off < n;) {
        size_t k = n - off < chunk ? n - off : chunk;
        ssize_t w = send(fd, p + off, k, MSG_NOSIGNAL);
        if (w < 0 && errno == EPIPE) {
            return; /* the server closed already */
        }
        assert_true(w > 0);
        off += (size_t)w;
        if (chunk < n) {
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
}

/* Read into b until it holds a whole frame (1) or the server closed (0). */
static int raw_recv_frame(int fd, struct swc_buf *b)
{
    int64_t dl = swc_now_mono() + 10 * SWC_NS_PER_SEC;
    uv_timer_start(&tick, tick_cb, 1, 1);
    int ret = -1;
    while (swc_now_mono() < dl) {
        const uint8_t *p;
        uint32_t plen;
        size_t consumed, need;
        if (swc_frame_parse(b->data, b->len, UINT32_MAX, &p, &plen, &consumed, &need) == 0 &&
            consumed > 0) {
            ret = 1;
            break;
        }
        uint8_t tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) {
            ret = 0;
            break;
        }
        if (r > 0) {
            swc_buf_append(b, tmp, (size_t)r);
            continue;
        }
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&tick);
    assert_true(ret >= 0);
    return ret;
}

/* A request frame for method with a body of blen bytes. */
static void build_request(struct swc_buf *b, uint32_t id, const char *method, size_t blen)
{
    struct swc_rpc_hdr h = {.kind = SWC_RPC_KIND_REQUEST,
                            .call_id = id,
                            .method = method,
                            .method_len = strlen(method)};
    size_t hl = swc_rpc_hdr_size(&h);
    assert_int_equal(swc_buf_reserve(b, 4 + hl + blen), 0);
    swc_frame_put_len(b->data + b->len, (uint32_t)(hl + blen));
    swc_rpc_hdr_encode(&h, b->data + b->len + 4);
    memset(b->data + b->len + 4 + hl, 'z', blen);
    b->len += 4 + hl + blen;
}

static void expect_reply(struct swc_buf *in, uint32_t id, int status, size_t body_len)
{
    struct swc_rpc_hdr h;
    assert_int_equal(swc_rpc_hdr_decode(in->data + 4, swc_get_u32(in->data), &h), 0);
    assert_int_equal(h.kind, SWC_RPC_KIND_REPLY);
    assert_int_equal(h.call_id, id);
    assert_int_equal(h.status, status);
    assert_int_equal(h.body_len, body_len);
}

static void stream_args(uint8_t a[8], uint32_t count, uint32_t size)
{
    swc_put_u32(a, count);
    swc_put_u32(a + 4, size);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_unary_roundtrip_and_errors(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn *c = connect_tcp();
    struct result r = {0}, f = {0}, u = {0}, big = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", (const uint8_t *)"hi", 2, 0, reply_cb, &r, NULL), 0);
    assert_int_equal(swc_rpc_call(c, "t.fail", NULL, 0, 0, reply_cb, &f, NULL), 0);
    assert_int_equal(swc_rpc_call(c, "t.nope", NULL, 0, 0, reply_cb, &u, NULL), 0);
    /* Refused calls never call back. */
    static uint8_t huge[SWC_RPC_MAX_FRAME_DEFAULT + 1];
    assert_int_equal(swc_rpc_call(c, "t.echo", huge, sizeof(huge), 0, reply_cb, &big, NULL),
                     SWC_ETOOBIG);
    assert_int_equal(swc_rpc_call(c, "", NULL, 0, 0, reply_cb, &big, NULL), SWC_EINVAL);
    /* Not from inside the call. */
    assert_int_equal(r.done, 0);
    WAIT_FOR(r.done && f.done && u.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 2);
    assert_int_equal(r.first, 'h');
    assert_int_equal(f.status, SWC_ECONFLICT);
    assert_string_equal(f.msg, "version conflict on x");
    assert_int_equal(u.status, SWC_ENOTSUP);
    assert_int_equal(big.done, 0);
    close_conn(c);
    assert_int_equal(r.done + f.done + u.done, 3);
}

#define NCONC 1000
static void test_thousand_concurrent(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn *c = connect_tcp();
    static struct result rs[NCONC];
    memset(rs, 0, sizeof(rs));
    for (int i = 0; i < NCONC; i++) {
        uint8_t b = (uint8_t)i;
        assert_int_equal(swc_rpc_call(c, "t.echo", &b, 1, 5000, reply_cb, &rs[i], NULL), 0);
    }
    int done = 0;
    int64_t dl = swc_now_mono() + 10 * SWC_NS_PER_SEC;
    while (done < NCONC && swc_now_mono() < dl) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < NCONC; i++) {
            done += rs[i].done;
        }
    }
    assert_int_equal(done, NCONC);
    for (int i = 0; i < NCONC; i++) {
        assert_int_equal(rs[i].done, 1);
        assert_int_equal(rs[i].status, 0);
        assert_int_equal(rs[i].first, (uint8_t)i);
    }
    struct swc_rpc_server_stats st;
    swc_rpc_server_stats(srv, &st);
    assert_int_equal(st.requests, NCONC);
    assert_int_equal(st.accepted, 1);
    /* Closing with a thousand calls in flight completes each exactly once. */
    memset(rs, 0, sizeof(rs));
    for (int i = 0; i < NCONC; i++) {
        assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 0, reply_cb, &rs[i], NULL), 0);
    }
    close_conn(c);
    for (int i = 0; i < NCONC; i++) {
        assert_int_equal(rs[i].done, 1);
        assert_int_equal(rs[i].status, SWC_ECANCELED);
    }
}

/* Make the n-th allocation fail, for every n across a round of calls and a
 * stream: each call is refused or completes exactly once, and nothing
 * leaks (teardown counts live allocations). */
static void test_alloc_failure_sweep(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn *c = connect_tcp();
    int failed_calls = 0, refused = 0;
    for (long n = 1; n <= 60; n++) {
        struct result r = {0}, s = {0};
        uint8_t a[8];
        stream_args(a, 3, 100);
        swc_alloc_fail_after(n);
        int rc1 = swc_rpc_call(c, "t.echo", (const uint8_t *)"abc", 3, 2000, reply_cb, &r, NULL);
        int rc2 = swc_rpc_stream_open(c, "t.stream", a, 8, 2000, msg_cb, end_cb, &s, NULL);
        if (rc1 == 0) {
            WAIT_FOR(r.done);
        }
        if (rc2 == 0) {
            WAIT_FOR(s.done);
        }
        swc_alloc_fail_after(0);
        run_for(2);
        refused += (rc1 != 0) + (rc2 != 0);
        assert_true(rc1 == 0 || rc1 == SWC_ENOMEM);
        assert_true(rc2 == 0 || rc2 == SWC_ENOMEM);
        assert_true(r.done == (rc1 == 0));
        assert_true(s.done == (rc2 == 0));
        failed_calls += (rc1 == 0 && r.status != 0) + (rc2 == 0 && s.status != 0);
        if (!swc_rpc_conn_ready(c)) {
            close_conn(c);
            c = connect_tcp();
        }
    }
    /* The sweep did hit both kinds of failure. */
    assert_true(refused > 0);
    assert_true(failed_calls > 0);
    struct result ok = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 0, reply_cb, &ok, NULL), 0);
    WAIT_FOR(ok.done);
    assert_int_equal(ok.status, 0);
    close_conn(c);
}

static void test_raw_partial_and_one_byte_writes(void **state)
{
    make_server(NULL);
    listen_tcp();
    int fd = raw_connect();
    struct swc_buf out, in;
    swc_buf_init(&out);
    swc_buf_init(&in);
    build_request(&out, 1, "t.echo", 300);
    build_request(&out, 2, "t.echo", 0);
    raw_send(fd, out.data, out.len, 1);
    assert_int_equal(raw_recv_frame(fd, &in), 1);
    expect_reply(&in, 1, 0, 300);
    swc_buf_consume(&in, 4 + swc_get_u32(in.data));
    assert_int_equal(raw_recv_frame(fd, &in), 1);
    expect_reply(&in, 2, 0, 0);
    close(fd);
    swc_buf_free(&out);
    swc_buf_free(&in);
}

static void test_raw_max_frame(void **state)
{
    struct swc_rpc_server_opts o = {.max_frame = 4096};
    make_server(&o);
    listen_tcp();
    struct swc_buf out, in;
    swc_buf_init(&out);
    swc_buf_init(&in);
    /* Exactly the maximum is accepted. */
    int fd = raw_connect();
    struct swc_rpc_hdr h = {.kind = SWC_RPC_KIND_REQUEST, .method = "t.echo", .method_len = 6};
    size_t body = 4096 - swc_rpc_hdr_size(&h);
    build_request(&out, 5, "t.echo", body);
    assert_int_equal(swc_get_u32(out.data), 4096);
    raw_send(fd, out.data, out.len, 1000);
    assert_int_equal(raw_recv_frame(fd, &in), 1);
    expect_reply(&in, 5, 0, body);
    /* One byte more is refused and the connection closed. */
    out.len = 0;
    in.len = 0;
    build_request(&out, 6, "t.echo", body + 1);
    raw_send(fd, out.data, 4, 4); /* the prefix alone is enough */
    assert_int_equal(raw_recv_frame(fd, &in), 0);
    close(fd);
    struct swc_rpc_server_stats st;
    swc_rpc_server_stats(srv, &st);
    assert_int_equal(st.proto_errors, 1);
    WAIT_FOR((swc_rpc_server_stats(srv, &st), st.active == 0));
    swc_buf_free(&out);
    swc_buf_free(&in);
}

static void test_raw_garbage_leaves_others_alone(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn *c = connect_tcp();
    int fd = raw_connect();
    struct swc_buf in;
    swc_buf_init(&in);
    uint8_t junk[4 + 10] = {0, 0, 0, 10, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 9, 8, 7, 6};
    raw_send(fd, junk, sizeof(junk), sizeof(junk));
    assert_int_equal(raw_recv_frame(fd, &in), 0);
    close(fd);
    struct swc_rpc_server_stats st;
    swc_rpc_server_stats(srv, &st);
    assert_int_equal(st.proto_errors, 1);
    struct result r = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", (const uint8_t *)"ok", 2, 0, reply_cb, &r, NULL), 0);
    WAIT_FOR(r.done);
    assert_int_equal(r.status, 0);
    close_conn(c);
    swc_buf_free(&in);
}

static void test_raw_truncated_at_eof(void **state)
{
    make_server(NULL);
    listen_tcp();
    int fd = raw_connect();
    struct swc_buf out, in;
    swc_buf_init(&out);
    swc_buf_init(&in);
    build_request(&out, 1, "t.echo", 100);
    raw_send(fd, out.data, out.len - 10, out.len);
    shutdown(fd, SHUT_WR);
    assert_int_equal(raw_recv_frame(fd, &in), 0);
    close(fd);
    struct swc_rpc_server_stats st;
    WAIT_FOR((swc_rpc_server_stats(srv, &st), st.active == 0));
    /* Counted as a protocol error, unlike a clean EOF between frames. */
    assert_int_equal(st.proto_errors, 1);
    assert_int_equal(st.requests, 0);
    fd = raw_connect();
    out.len = 0;
    build_request(&out, 1, "t.echo", 1);
    raw_send(fd, out.data, out.len, out.len);
    shutdown(fd, SHUT_WR);
    in.len = 0;
    assert_int_equal(raw_recv_frame(fd, &in), 1);
    close(fd);
    WAIT_FOR((swc_rpc_server_stats(srv, &st), st.active == 0));
    assert_int_equal(st.proto_errors, 1);
    swc_buf_free(&out);
    swc_buf_free(&in);
}

static void test_stream_end_from_server(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn *c = connect_tcp();
    struct result r = {0};
    uint8_t a[8];
    stream_args(a, 50, 1000);
    assert_int_equal(swc_rpc_stream_open(c, "t.stream", a, 8, 0, msg_cb, end_cb, &r, NULL), 0);
    WAIT_FOR(r.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.msgs, 50);
    assert_int_equal(r.bytes, 50 * 1000);
    /* Unary call on a stream method is refused by the server. */
    struct result u = {0};
    assert_int_equal(swc_rpc_call(c, "t.stream", a, 8, 0, reply_cb, &u, NULL), 0);
    WAIT_FOR(u.done);
    assert_int_equal(u.status, SWC_EINVAL);
    run_for(20);
    assert_int_equal(r.done, 1);
    close_conn(c);
}

static void test_stream_cancel_from_client(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn *c = connect_tcp();
    struct result r = {0};
    struct swc_rpc_call *call = NULL;
    uint8_t a[8];
    stream_args(a, 1000, 10);
    assert_int_equal(swc_rpc_stream_open(c, "t.forever", a, 8, 0, msg_cb, end_cb, &r, &call), 0);
    WAIT_FOR(r.msgs == 1);
    assert_non_null(last_streamer);
    swc_rpc_cancel(call);
    assert_int_equal(r.done, 0); /* never from inside the call */
    swc_rpc_cancel(call);        /* second cancel is a no-op */
    WAIT_FOR(r.done && streamers_done == 1);
    assert_int_equal(r.status, SWC_ECANCELED);
    assert_null(last_streamer); /* the handler saw the cancel */
    run_for(20);
    assert_int_equal(r.done, 1);
    close_conn(c);
}

static void test_handler_sees_client_disconnect(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn *c = connect_tcp();
    struct result r = {0};
    assert_int_equal(swc_rpc_call(c, "t.hold", NULL, 0, 0, reply_cb, &r, NULL), 0);
    WAIT_FOR(nheld == 1);
    close_conn(c);
    /* The client's own call completes once, canceled, before the close cb. */
    assert_int_equal(r.done, 1);
    assert_int_equal(r.status, SWC_ECANCELED);
    WAIT_FOR(hold_cancels == 1);
    assert_int_equal(hold_cancel_status, SWC_ECANCELED);
    assert_int_equal(hold_reply_rc, SWC_ECANCELED);
}

static void test_peer_death_cancels_pending(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn_opts o = {.on_close = on_conn_close};
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    conn_closed_events = 0;
    struct swc_rpc_conn *c = connect_to(addr, &o);
    struct result r[5] = {{0}};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(swc_rpc_call(c, "t.hold", NULL, 0, 0, reply_cb, &r[i], NULL), 0);
    }
    WAIT_FOR(nheld == 5);
    /* The server goes away mid-call. */
    closed_flag = false;
    swc_rpc_server_close(srv, server_closed, NULL);
    srv = NULL;
    WAIT_FOR(closed_flag && conn_closed_events == 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].status, SWC_ECANCELED);
    }
    assert_int_equal(hold_cancels, 5);
    assert_false(swc_rpc_conn_ready(c));
    struct result late = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 0, reply_cb, &late, NULL), SWC_ECLOSED);
    close_conn(c);
    assert_int_equal(conn_closed_events, 1);
    assert_int_equal(late.done, 0);
}

static void test_deadline(void **state)
{
    make_server(NULL);
    listen_tcp();
    struct swc_rpc_conn *c = connect_tcp();
    struct result r = {0}, ok = {0};
    int64_t t0 = swc_now_mono();
    assert_int_equal(swc_rpc_call(c, "t.hold", NULL, 0, 50, reply_cb, &r, NULL), 0);
    assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 5000, reply_cb, &ok, NULL), 0);
    WAIT_FOR(r.done);
    int64_t took = swc_now_mono() - t0;
    assert_int_equal(r.status, SWC_ETIMEDOUT);
    assert_true(took >= 50 * SWC_NS_PER_MS);
    assert_true(took < 2 * SWC_NS_PER_SEC);
    assert_int_equal(ok.status, 0);
    /* Only the held call needed a deadline timer on the server: the echo was
     * answered inside its handler. */
    struct swc_rpc_server_stats st;
    swc_rpc_server_stats(srv, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.deadlines_armed, 1);
    /* The server learns of it too (its own deadline or the cancel frame). */
    WAIT_FOR(hold_cancels == 1);
    assert_true(hold_cancel_status == SWC_ETIMEDOUT || hold_cancel_status == SWC_ECANCELED);
    close_conn(c);
    assert_int_equal(r.done, 1);
}

/* A paused reader: the server's queue stops near the high-water mark, and
 * everything arrives intact once reading resumes (on a secure connection
 * the queued frames are sealed in place, then opened in the read buffer). */
static void slow_reader(const struct swc_secchan_config *scfg,
                        const struct swc_secchan_config *ccfg)
{
    const uint32_t hw = 256 * 1024, size = 64 * 1024, count = 200;
    struct swc_rpc_server_opts so = {.high_water = hw};
    make_server(&so);
    assert_int_equal(swc_rpc_server_listen_tcp(srv, "127.0.0.1:0", scfg), 0);
    assert_int_equal(swc_rpc_server_port(srv, &port), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct swc_rpc_conn_opts o = {.secure = ccfg};
    struct swc_rpc_conn *c = connect_to(addr, ccfg != NULL ? &o : NULL);
    swc_rpc_conn_read_pause(c, true);
    struct result r = {0};
    uint8_t a[8];
    stream_args(a, count, size);
    assert_int_equal(swc_rpc_stream_open(c, "t.stream", a, 8, 0, msg_cb, end_cb, &r, NULL), 0);
    WAIT_FOR(last_streamer != NULL && last_streamer->busy > 0);
    run_for(200);
    /* Stalled: far from done, and the queue stayed near the mark. */
    struct streamer *s = last_streamer;
    assert_true(s->left > count / 2);
    assert_true(s->max_wq <= hw + size + 64);
    assert_int_equal(r.msgs, 0);
    uint32_t left = s->left;
    long allocs = swc_alloc_count();
    swc_rpc_conn_read_pause(c, false);
    WAIT_FOR(r.done);
    allocs = swc_alloc_count() - allocs;
    assert_int_equal(r.status, 0);
    assert_int_equal(r.msgs, count);
    assert_int_equal(r.bytes, (size_t)count * size);
    /* The backed-up queue reuses its write buffers (rpc_conn.c, ofrm_put):
     * far fewer allocations than messages (it was two per message). */
    fprintf(stderr, "slow reader: %ld allocations for %u messages\n", allocs, left);
    assert_true(allocs < (long)left / 4);
    close_conn(c);
}

static void test_slow_reader_backpressure(void **state)
{
    slow_reader(NULL, NULL);
}

static void test_unix_peer_credentials(void **state)
{
    struct swc_rpc_server_opts so = {.unix_auth = SWC_RPC_UNIX_ROOT_OR_SELF};
    make_server(&so);
    char path[128];
    snprintf(path, sizeof(path), "%s/ctl.sock", tmpdir);
    assert_int_equal(swc_rpc_server_listen_unix(srv, path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    struct swc_rpc_conn *c = connect_to(path, NULL);
    struct result r = {0};
    assert_int_equal(swc_rpc_call(c, "t.peer", NULL, 0, 0, reply_cb, &r, NULL), 0);
    WAIT_FOR(r.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(seen_peer.transport, SWC_RPC_UNIX);
    assert_true(seen_peer.has_cred);
    assert_int_equal(seen_peer.uid, getuid());
    assert_int_equal(seen_peer.gid, getgid());
    assert_int_equal(seen_peer.pid, getpid());
    close_conn(c);
}

/* As root, a client running as nobody is refused by SO_PEERCRED even though
 * the file mode would let it in; root itself is served. */
static void test_unix_refuses_other_uid(void **state)
{
    if (getuid() != 0) {
        skip();
    }
    struct swc_rpc_server_opts so = {.unix_auth = SWC_RPC_UNIX_ROOT_OR_SELF};
    make_server(&so);
    char path[128];
    snprintf(path, sizeof(path), "%s/ctl.sock", tmpdir);
    assert_int_equal(swc_rpc_server_listen_unix(srv, path), 0);
    assert_int_equal(chmod(tmpdir, 0755), 0);
    assert_int_equal(chmod(path, 0666), 0);
    struct swc_buf out;
    swc_buf_init(&out);
    build_request(&out, 1, "t.echo", 3);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) {
            _exit(3);
        }
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        memcpy(a.sun_path, path, strlen(path) + 1); /* tmpdir paths are short */
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            _exit(4);
        }
        if (send(fd, out.data, out.len, MSG_NOSIGNAL) < 0 && errno != EPIPE) {
            _exit(5);
        }
        uint8_t b[64];
        ssize_t n = recv(fd, b, sizeof(b), 0);
        _exit(n <= 0 ? 0 : 1); /* 1: the server answered an unauthorized client */
    }
    int wst = 0;
    bool reaped = false;
    WAIT_FOR(reaped || (reaped = waitpid(pid, &wst, WNOHANG) == pid));
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), 0);
    struct swc_rpc_server_stats st;
    WAIT_FOR((swc_rpc_server_stats(srv, &st), st.active == 0));
    assert_int_equal(st.requests, 0);
    assert_int_equal(st.auth_errors, 1);
    struct swc_rpc_conn *c = connect_to(path, NULL);
    struct result r = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 0, reply_cb, &r, NULL), 0);
    WAIT_FOR(r.done);
    assert_int_equal(r.status, 0);
    close_conn(c);
    swc_buf_free(&out);
}

/* A refused connection: on_connect reports it and queued calls complete
 * with SWC_EUNAVAIL; a host name is resolved asynchronously. */
static void test_connect_failure_and_names(void **state)
{
    make_server(NULL);
    listen_tcp();
    char addr[64];
    snprintf(addr, sizeof(addr), "localhost:%d", port);
    struct swc_rpc_conn *c = connect_to(addr, NULL);
    struct result ok = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 0, reply_cb, &ok, NULL), 0);
    WAIT_FOR(ok.done);
    assert_int_equal(ok.status, 0);
    close_conn(c);
    /* Find a port nobody listens on: bind, note it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
    conn_closed_events = 0;
    struct swc_rpc_conn_opts o = {.on_connect = on_conn_close};
    assert_int_equal(swc_rpc_connect(&loop, addr, &o, &c), 0);
    struct result r = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 0, reply_cb, &r, NULL), 0);
    WAIT_FOR(conn_closed_events == 1 && r.done == 1);
    assert_int_equal(conn_closed_status, SWC_EUNAVAIL);
    assert_int_equal(r.status, SWC_EUNAVAIL);
    close_conn(c);
    assert_int_equal(swc_rpc_connect(&loop, "no-port", NULL, &c), SWC_EINVAL);
}

/* ---- secure channel ------------------------------------------------------------- */

static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];

static void make_identity(struct swc_identity *id, const char *node, int role)
{
    swc_test_identity(id, node, role, "cl1", swc_now_wall() + 3600 * SWC_NS_PER_SEC, ca_sk);
}

static struct swc_identity server_id, client_id;

static void secure_cfgs(struct swc_secchan_config *scfg, struct swc_secchan_config *ccfg)
{
    swc_keypair_new(ca_pk, ca_sk);
    make_identity(&server_id, "mgr-1", SWC_ROLE_MANAGER);
    make_identity(&client_id, "wrk-7", SWC_ROLE_WORKER);
    memset(scfg, 0, sizeof(*scfg));
    memset(ccfg, 0, sizeof(*ccfg));
    scfg->self = &server_id;
    memcpy(scfg->ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    scfg->required_peer_role = -1;
    ccfg->is_client = true;
    ccfg->self = &client_id;
    memcpy(ccfg->ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    ccfg->required_peer_role = SWC_ROLE_MANAGER;
}

/* Start the test server listening securely on a free port (port); *ccfg
 * is a client configuration it accepts. */
static void listen_secure(struct swc_secchan_config *ccfg)
{
    struct swc_secchan_config scfg;
    secure_cfgs(&scfg, ccfg);
    make_server(NULL);
    assert_int_equal(swc_rpc_server_listen_tcp(srv, "127.0.0.1:0", &scfg), 0);
    assert_int_equal(swc_rpc_server_port(srv, &port), 0);
}

static void test_secure_roundtrip(void **state)
{
    struct swc_secchan_config scfg, ccfg;
    secure_cfgs(&scfg, &ccfg);
    make_server(NULL);
    assert_int_equal(swc_rpc_server_listen_tcp(srv, "127.0.0.1:0", &scfg), 0);
    assert_int_equal(swc_rpc_server_port(srv, &port), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct swc_rpc_conn_opts o = {.secure = &ccfg};
    struct swc_rpc_conn *c = NULL;
    assert_int_equal(swc_rpc_connect(&loop, addr, &o, &c), 0);
    /* Configs and identities were copied: the caller may drop them. */
    memset(&scfg, 0, sizeof(scfg));
    memset(&ccfg, 0, sizeof(ccfg));
    memset(&server_id, 0, sizeof(server_id));
    memset(&client_id, 0, sizeof(client_id));
    /* Calls made before the handshake wait for it. */
    struct result r = {0}, p = {0}, s = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", (const uint8_t *)"sec", 3, 0, reply_cb, &r, NULL),
                     0);
    assert_int_equal(swc_rpc_call(c, "t.peer", NULL, 0, 0, reply_cb, &p, NULL), 0);
    uint8_t a[8];
    stream_args(a, 20, 70000);
    assert_int_equal(swc_rpc_stream_open(c, "t.stream", a, 8, 0, msg_cb, end_cb, &s, NULL), 0);
    WAIT_FOR(r.done && p.done && s.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 3);
    assert_int_equal(r.first, 's');
    assert_int_equal(s.status, 0);
    assert_int_equal(s.bytes, 20 * 70000);
    assert_true(seen_peer.secure && seen_peer.has_cert);
    assert_string_equal(seen_peer.node_id, "wrk-7");
    assert_int_equal(seen_peer.role, SWC_ROLE_WORKER);
    const struct swc_rpc_peer *sp = swc_rpc_conn_peer(c);
    assert_true(sp->has_cert);
    assert_string_equal(sp->node_id, "mgr-1");
    assert_int_equal(sp->role, SWC_ROLE_MANAGER);
    close_conn(c);
}

static void test_secure_slow_reader(void **state)
{
    struct swc_secchan_config scfg, ccfg;
    secure_cfgs(&scfg, &ccfg);
    slow_reader(&scfg, &ccfg);
}

static void test_secure_wrong_ca_refused(void **state)
{
    struct swc_secchan_config ccfg;
    listen_secure(&ccfg);
    uint8_t other_sk[SWC_SIGN_SK_LEN];
    swc_keypair_new(ccfg.ca_public_key, other_sk); /* the client pins another CA */
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct result r = {0};
    struct swc_rpc_conn_opts o = {.secure = &ccfg, .on_connect = on_conn_close};
    conn_closed_events = 0;
    struct swc_rpc_conn *c = NULL;
    assert_int_equal(swc_rpc_connect(&loop, addr, &o, &c), 0);
    assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 0, reply_cb, &r, NULL), 0);
    WAIT_FOR(conn_closed_events == 1 && r.done);
    assert_true(conn_closed_status == SWC_EAUTH);
    assert_int_equal(r.status, SWC_EUNAVAIL);
    struct swc_rpc_server_stats st;
    swc_rpc_server_stats(srv, &st);
    assert_int_equal(st.requests, 0);
    close_conn(c);
}

/* The server is switched (swc_rpc_server_set_secure) to require a manager
 * certificate; a worker is refused during the handshake and never reaches
 * a handler. */
static void test_secure_server_refuses_role(void **state)
{
    struct swc_secchan_config scfg, ccfg;
    secure_cfgs(&scfg, &ccfg);
    make_server(NULL);
    assert_int_equal(swc_rpc_server_set_secure(srv, &scfg), SWC_ENOENT);
    assert_int_equal(swc_rpc_server_listen_tcp(srv, "127.0.0.1:0", &scfg), 0);
    scfg.required_peer_role = SWC_ROLE_MANAGER;
    assert_int_equal(swc_rpc_server_set_secure(srv, &scfg), 0);
    assert_int_equal(swc_rpc_server_port(srv, &port), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct swc_rpc_conn *c = NULL;
    assert_int_equal(swc_rpc_connect(&loop, addr, &(struct swc_rpc_conn_opts){.secure = &ccfg}, &c),
                     0);
    struct result r = {0};
    assert_int_equal(swc_rpc_call(c, "t.echo", NULL, 0, 0, reply_cb, &r, NULL), 0);
    /* The client is done after its last handshake message, so it learns of
     * the refusal only as the server hanging up: the call is canceled. */
    WAIT_FOR(r.done);
    assert_int_equal(r.status, SWC_ECANCELED);
    struct swc_rpc_server_stats st;
    WAIT_FOR((swc_rpc_server_stats(srv, &st), st.auth_errors == 1));
    assert_int_equal(st.requests, 0);
    close_conn(c);
}

/* A raw socket client that completed the secure handshake with the server
 * (which must listen securely on port): returns the fd, *sc its channel. */
static int raw_secure_client(const struct swc_secchan_config *ccfg, struct swc_secchan **sc)
{
    assert_int_equal(swc_secchan_create(ccfg, sc), 0);
    int fd = raw_connect();
    struct swc_buf out, in;
    swc_buf_init(&out);
    swc_buf_init(&in);
    bool done = false;
    uint8_t pre[4];
    assert_int_equal(swc_secchan_handshake(*sc, NULL, 0, &out, &done), 0);
    while (!done) {
        swc_frame_put_len(pre, (uint32_t)out.len);
        raw_send(fd, pre, 4, 4);
        raw_send(fd, out.data, out.len, out.len);
        out.len = 0;
        assert_int_equal(raw_recv_frame(fd, &in), 1);
        uint32_t n = swc_get_u32(in.data);
        assert_int_equal(swc_secchan_handshake(*sc, in.data + 4, n, &out, &done), 0);
        swc_buf_consume(&in, 4 + n);
    }
    if (out.len > 0) {
        swc_frame_put_len(pre, (uint32_t)out.len);
        raw_send(fd, pre, 4, 4);
        raw_send(fd, out.data, out.len, out.len);
    }
    swc_buf_free(&out);
    swc_buf_free(&in);
    return fd;
}

/* Seal plain (whole frames) as one record into rec: [u32 len | sealed]. */
static void seal_record(struct swc_secchan *sc, const struct swc_buf *plain, struct swc_buf *rec)
{
    rec->len = 0;
    assert_int_equal(swc_buf_reserve(rec, 4), 0);
    rec->len = 4;
    assert_int_equal(swc_secchan_seal(sc, plain->data, plain->len, rec), 0);
    swc_frame_put_len(rec->data, (uint32_t)(rec->len - 4));
}

/* A hand-driven secure client on a raw socket: handshake, one good sealed
 * request, then a sealed request with one byte flipped on the wire. Each
 * record is [u32 length | sealed (u32 length | frame payload)...]. */
static void test_secure_tampered_byte_closes(void **state)
{
    struct swc_secchan_config ccfg;
    listen_secure(&ccfg);
    struct swc_secchan *sc;
    int fd = raw_secure_client(&ccfg, &sc);
    struct swc_buf out, in, frame, plain;
    swc_buf_init(&out);
    swc_buf_init(&in);
    swc_buf_init(&frame);
    swc_buf_init(&plain);
    for (int round = 0; round < 2; round++) {
        plain.len = 0;
        build_request(&plain, 40 + round, "t.echo", 5);
        seal_record(sc, &plain, &frame);
        if (round == 1) {
            frame.data[frame.len / 2] ^= 0x01; /* one bit on the wire */
        }
        raw_send(fd, frame.data, frame.len, frame.len);
        in.len = 0;
        if (round == 0) {
            assert_int_equal(raw_recv_frame(fd, &in), 1);
            out.len = 0;
            assert_int_equal(swc_secchan_open(sc, in.data + 4, swc_get_u32(in.data), &out), 0);
            assert_int_equal(swc_get_u32(out.data), out.len - 4); /* one frame in the record */
            struct swc_rpc_hdr h;
            assert_int_equal(swc_rpc_hdr_decode(out.data + 4, out.len - 4, &h), 0);
            assert_int_equal(h.call_id, 40);
            assert_int_equal(h.status, 0);
            assert_int_equal(h.body_len, 5);
        } else {
            assert_int_equal(raw_recv_frame(fd, &in), 0);
        }
    }
    close(fd);
    struct swc_rpc_server_stats st;
    WAIT_FOR((swc_rpc_server_stats(srv, &st), st.active == 0));
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.auth_errors, 1); /* failed to open, not a decoding accident */
    assert_int_equal(st.proto_errors, 0);
    swc_secchan_destroy(sc);
    swc_buf_free(&out);
    swc_buf_free(&in);
    swc_buf_free(&frame);
    swc_buf_free(&plain);
}

/* Five requests gathered into one record, which reaches the server a few
 * bytes per read: every request is answered, in order, and the replies
 * (records of whole frames) open at the client. */
static void test_secure_coalesced_record_split_reads(void **state)
{
    struct swc_secchan_config ccfg;
    listen_secure(&ccfg);
    struct swc_secchan *sc;
    int fd = raw_secure_client(&ccfg, &sc);
    struct swc_buf plain, rec, in, out;
    swc_buf_init(&plain);
    swc_buf_init(&rec);
    swc_buf_init(&in);
    swc_buf_init(&out);
    for (uint32_t id = 1; id <= 5; id++) {
        build_request(&plain, id, "t.echo", id * 100);
    }
    seal_record(sc, &plain, &rec);
    raw_send(fd, rec.data, rec.len, 7); /* the server reads between chunks */
    uint32_t next = 1;
    while (next <= 5) {
        assert_int_equal(raw_recv_frame(fd, &in), 1);
        uint32_t n = swc_get_u32(in.data);
        out.len = 0;
        assert_int_equal(swc_secchan_open(sc, in.data + 4, n, &out), 0);
        swc_buf_consume(&in, 4 + n);
        for (size_t off = 0; off < out.len;) {
            uint32_t flen = swc_get_u32(out.data + off);
            assert_true(off + 4 + flen <= out.len);
            struct swc_rpc_hdr h;
            assert_int_equal(swc_rpc_hdr_decode(out.data + off + 4, flen, &h), 0);
            assert_int_equal(h.call_id, next);
            assert_int_equal(h.body_len, next * 100);
            next++;
            off += 4 + flen;
        }
    }
    close(fd);
    struct swc_rpc_server_stats st;
    WAIT_FOR((swc_rpc_server_stats(srv, &st), st.active == 0));
    assert_int_equal(st.requests, 5);
    swc_secchan_destroy(sc);
    swc_buf_free(&plain);
    swc_buf_free(&rec);
    swc_buf_free(&in);
    swc_buf_free(&out);
}

/* A bad record: one bit flipped in the middle of five gathered requests
 * (EAUTH, and not one of them reaches a handler: the record is opened
 * before any frame in it is dispatched), or a record whose plaintext ends
 * inside a frame (EPROTO, after the whole frames before it). */
static void bad_record(bool tamper)
{
    struct swc_secchan_config ccfg;
    listen_secure(&ccfg);
    struct swc_secchan *sc;
    int fd = raw_secure_client(&ccfg, &sc);
    struct swc_buf plain, rec, in;
    swc_buf_init(&plain);
    swc_buf_init(&rec);
    swc_buf_init(&in);
    for (uint32_t id = 1; id <= 5; id++) {
        build_request(&plain, id, "t.echo", 50);
    }
    if (!tamper) {
        plain.len -= 10; /* the last frame is cut short */
    }
    seal_record(sc, &plain, &rec);
    if (tamper) {
        rec.data[rec.len / 2] ^= 0x10;
    }
    raw_send(fd, rec.data, rec.len, rec.len);
    struct swc_rpc_server_stats st;
    WAIT_FOR((swc_rpc_server_stats(srv, &st), st.active == 0));
    assert_int_equal(st.requests, tamper ? 0 : 4);
    assert_int_equal(st.auth_errors, tamper ? 1 : 0);
    assert_int_equal(st.proto_errors, tamper ? 0 : 1);
    close(fd);
    swc_secchan_destroy(sc);
    swc_buf_free(&plain);
    swc_buf_free(&rec);
    swc_buf_free(&in);
}

static void test_secure_tampered_coalesced_record(void **state)
{
    bad_record(true);
}

static void test_secure_record_ends_inside_frame(void **state)
{
    bad_record(false);
}

/* Thousands of small stream messages: the server sends them faster than the
 * socket drains, so they travel gathered into records; every one arrives,
 * intact and counted. */
static void test_secure_many_small_messages(void **state)
{
    struct swc_secchan_config ccfg;
    listen_secure(&ccfg);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct swc_rpc_conn *c = NULL;
    assert_int_equal(swc_rpc_connect(&loop, addr, &(struct swc_rpc_conn_opts){.secure = &ccfg}, &c),
                     0);
    struct result s = {0};
    uint8_t a[8];
    stream_args(a, 20000, 300);
    assert_int_equal(swc_rpc_stream_open(c, "t.stream", a, 8, 0, msg_cb, end_cb, &s, NULL), 0);
    WAIT_FOR(s.done);
    assert_int_equal(s.status, 0);
    assert_int_equal(s.msgs, 20000);
    assert_int_equal(s.bytes, 20000 * 300);
    close_conn(c);
}

/* Echo calls of mixed sizes, all made at once (the first ones before the
 * handshake completes), so records gather small and large frames and
 * switch to being sealed as they fill partway (net/rpc_conn.c); with
 * AES-256-GCM and with ChaCha20 (copied, sealed whole): every reply comes
 * back intact, in full. */
struct mixed {
    size_t want;
    int done;
};

static void mixed_reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                           const uint8_t *payload, size_t len, void *data)
{
    struct mixed *m = data;
    assert_int_equal(status, 0);
    assert_int_equal(len, m->want);
    for (size_t i = 0; i < len; i++) {
        if (payload[i] != (uint8_t)(i * 31 + 7)) {
            fail_msg("echo of %zu bytes: byte %zu is %u", len, i, payload[i]);
        }
    }
    m->done++;
}

static bool mixed_all_done(const struct mixed *m, int n)
{
    for (int i = 0; i < n; i++) {
        if (m[i].done != 1) {
            return false;
        }
    }
    return true;
}

static void secure_mixed_sizes(unsigned ciphers)
{
    static const size_t sizes[] = {100, 20000, 3, 70000, 5000, 16370, 0, 65536};
    enum { NCALLS = 96 };
    struct swc_secchan_config ccfg;
    listen_secure(&ccfg);
    ccfg.ciphers = ciphers;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct swc_rpc_conn *c = NULL;
    assert_int_equal(swc_rpc_connect(&loop, addr, &(struct swc_rpc_conn_opts){.secure = &ccfg}, &c),
                     0);
    uint8_t *buf = malloc(70000);
    assert_non_null(buf);
    for (size_t i = 0; i < 70000; i++) {
        buf[i] = (uint8_t)(i * 31 + 7);
    }
    struct mixed m[NCALLS];
    for (int i = 0; i < NCALLS; i++) {
        m[i].want = sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
        m[i].done = 0;
        if (i == NCALLS / 4) {
            WAIT_FOR(swc_rpc_conn_ready(c)); /* the rest go out with writes in flight */
        }
        assert_int_equal(swc_rpc_call(c, "t.echo", buf, m[i].want, 0, mixed_reply_cb, &m[i], NULL),
                         0);
    }
    WAIT_FOR(mixed_all_done(m, NCALLS));
    free(buf);
    close_conn(c);
}

static void test_secure_mixed_sizes_aes(void **state)
{
    if (!crypto_aead_aes256gcm_is_available()) {
        skip(); /* no AES instructions: the channel cannot offer it */
    }
    secure_mixed_sizes(SWC_SECCHAN_AES256GCM);
}

static void test_secure_mixed_sizes_chacha(void **state)
{
    secure_mixed_sizes(SWC_SECCHAN_CHACHA20POLY1305);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unary_roundtrip_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thousand_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_partial_and_one_byte_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_max_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_garbage_leaves_others_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_truncated_at_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_end_from_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_cancel_from_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_sees_client_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_death_cancels_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_peer_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_refuses_other_uid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_failure_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_wrong_ca_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_server_refuses_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_tampered_byte_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_coalesced_record_split_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_tampered_coalesced_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_record_ends_inside_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_many_small_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_mixed_sizes_aes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_mixed_sizes_chacha, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
