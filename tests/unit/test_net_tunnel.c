/* The secure byte tunnel over real TCP on 127.0.0.1 with real certificates:
 * a 50 MiB one-shot write relayed to a slow reader with both write queues
 * bounded, the HELLO and the peer certificate reaching the server, a worker
 * certificate refused where a manager is required, a tampered frame taking
 * both ends down, and closes from either side (owner, peer, local stream)
 * completing exactly once without leaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "net/cert.h"
#include "net/tunnel.h"
#include "test_net_util.h"

static uv_loop_t loop;
static uv_timer_t tick;
static long live0;
static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];
static struct swc_identity mgr_a, mgr_b, wrk_c;

#define WAIT_FOR(cond, ms)                                                                         \
    do {                                                                                           \
        int64_t deadline_ = swc_now_mono() + (int64_t)(ms)*SWC_NS_PER_MS;                          \
        while (!(cond) && swc_now_mono() < deadline_) {                                            \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        }                                                                                          \
        assert_true(cond);                                                                         \
    } while (0)

static void tick_cb(uv_timer_t *t)
{
}

static void make_identity(struct swc_identity *id, const char *node, int role)
{
    swc_test_identity(id, node, role, "cl1", swc_now_wall() + 3600 * SWC_NS_PER_SEC, ca_sk);
}

static void cfg_for(struct swc_secchan_config *c, const struct swc_identity *id, bool client)
{
    memset(c, 0, sizeof *c);
    c->is_client = client;
    c->self = id;
    memcpy(c->ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    c->required_peer_role = SWC_ROLE_MANAGER;
    snprintf(c->cluster_id, sizeof c->cluster_id, "cl1");
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    swc_log_init();
    live0 = swc_alloc_live();
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5);
    return 0;
}

static int teardown(void **state)
{
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(swc_alloc_live(), live0);
    return 0;
}

/* ---- a test end of a socketpair: counts and checks what it reads ------------------ */

struct endp {
    uv_pipe_t *p; /* swc_malloc'd; freed on close */
    uint64_t got;
    bool eof;
    bool check_pattern;
    bool slow; /* pause after every 256 KiB */
    uint64_t since_pause;
    uv_timer_t resume;
    bool bad;
};

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)(i ^ (i >> 8) ^ (i >> 19));
}

static void endp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[64 * 1024];
    buf->base = scratch;
    buf->len = sizeof scratch;
}

static void endp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void endp_resume(uv_timer_t *tm)
{
    struct endp *e = tm->data;
    if (!e->eof) {
        uv_read_start((uv_stream_t *)e->p, endp_alloc, endp_read);
    }
}

static void endp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct endp *e = s->data;
    if (n < 0) {
        e->eof = true;
        uv_read_stop(s);
        return;
    }
    for (ssize_t i = 0; e->check_pattern && i < n; i++) {
        if ((uint8_t)buf->base[i] != pattern(e->got + (uint64_t)i)) {
            e->bad = true;
        }
    }
    e->got += (uint64_t)n;
    e->since_pause += (uint64_t)n;
    if (e->slow && e->since_pause >= 256 * 1024) {
        e->since_pause = 0;
        uv_read_stop(s);
        uv_timer_start(&e->resume, endp_resume, 5, 0);
    }
}

static void free_cb(uv_handle_t *h)
{
    swc_free(h);
}

/* A socketpair: *mine for the tunnel (owned by it once attached), e for
 * the test. */
static uv_pipe_t *pair(struct endp *e)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uv_pipe_t *mine = swc_malloc(sizeof *mine);
    uv_pipe_init(&loop, mine, 0);
    assert_int_equal(uv_pipe_open(mine, sv[0]), 0);
    memset(e, 0, sizeof *e);
    e->p = swc_malloc(sizeof *e->p);
    uv_pipe_init(&loop, e->p, 0);
    assert_int_equal(uv_pipe_open(e->p, sv[1]), 0);
    e->p->data = e;
    uv_timer_init(&loop, &e->resume);
    e->resume.data = e;
    uv_read_start((uv_stream_t *)e->p, endp_alloc, endp_read);
    return mine;
}

static void endp_close(struct endp *e)
{
    uv_close((uv_handle_t *)e->p, free_cb);
    uv_close((uv_handle_t *)&e->resume, NULL);
}

/* ---- tunnel fixture ----------------------------------------------------------------- */

struct side_state {
    struct swc_tunnel *t;
    struct endp e;
    int connects, connect_status;
    int downs, down_status;
    int closes;
};

struct fixture {
    struct swc_tunnel_listener *l;
    int accepts;
    struct swc_cert peer;
    char hello[64];
    bool attach_on_accept;
    struct side_state cli, srv;
    int listener_closes;
};

static void down_cb(struct swc_tunnel *t, int status, void *data)
{
    struct side_state *s = data;
    s->downs++;
    s->down_status = status;
}

static void closed_cb(void *data)
{
    ((struct side_state *)data)->closes++;
}

static void listener_closed_cb(void *data)
{
    ((struct fixture *)data)->listener_closes++;
}

static void accept_cb(struct swc_tunnel_listener *l, struct swc_tunnel *t,
                      const struct swc_cert *peer, const uint8_t *hello, size_t len, void *data)
{
    struct fixture *f = data;
    f->accepts++;
    f->srv.t = t;
    if (peer != NULL) {
        f->peer = *peer;
    }
    snprintf(f->hello, sizeof f->hello, "%.*s", (int)len, (const char *)hello);
    uv_pipe_t *mine = pair(&f->srv.e);
    assert_int_equal(swc_tunnel_attach(t, (uv_stream_t *)mine, down_cb, &f->srv), 0);
    assert_int_equal(swc_tunnel_peer(t)->role, peer->role);
}

static void connect_cb(struct swc_tunnel *t, int status, void *data)
{
    struct side_state *s = data;
    s->connects++;
    s->connect_status = status;
    if (status == 0) {
        uv_pipe_t *mine = pair(&s->e);
        assert_int_equal(swc_tunnel_attach(t, (uv_stream_t *)mine, down_cb, s), 0);
    }
}

static void listen_on(struct fixture *f, int *port)
{
    struct swc_secchan_config scfg;
    cfg_for(&scfg, &mgr_a, false);
    assert_int_equal(swc_tunnel_listen(&loop, "127.0.0.1:0", &scfg, accept_cb, f, &f->l), 0);
    *port = swc_tunnel_listener_port(f->l);
    assert_true(*port > 0);
}

static void connect_to(struct fixture *f, int port, const struct swc_identity *id)
{
    char addr[64];
    struct swc_secchan_config ccfg;
    cfg_for(&ccfg, id, true);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *hello = "raft 2 at 10.0.0.2:4243";
    assert_int_equal(swc_tunnel_connect(&loop, addr, &ccfg, (const uint8_t *)hello, strlen(hello),
                                        connect_cb, &f->cli, &f->cli.t),
                     0);
}

/* Connected and attached on both sides. */
static void open_pair(struct fixture *f)
{
    int port;
    memset(f, 0, sizeof *f);
    listen_on(f, &port);
    connect_to(f, port, &mgr_b);
    WAIT_FOR(f->cli.connects == 1 && f->accepts == 1, 5000);
    assert_int_equal(f->cli.connect_status, 0);
}

static void close_all(struct fixture *f)
{
    if (f->cli.t != NULL && f->cli.closes == 0) {
        swc_tunnel_close(f->cli.t, closed_cb, &f->cli);
    }
    if (f->srv.t != NULL && f->srv.closes == 0) {
        swc_tunnel_close(f->srv.t, closed_cb, &f->srv);
    }
    swc_tunnel_listener_close(f->l, listener_closed_cb, f);
    WAIT_FOR(f->listener_closes == 1 && (f->cli.t == NULL || f->cli.closes == 1) &&
                 (f->srv.t == NULL || f->srv.closes == 1),
             5000);
    if (f->cli.e.p != NULL) {
        endp_close(&f->cli.e);
    }
    if (f->srv.e.p != NULL) {
        endp_close(&f->srv.e);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- tests -------------------------------------------------------------------------- */

struct wr {
    uv_write_t w;
    uint8_t *data;
    int status;
    bool done;
};

static void wr_cb(uv_write_t *w, int status)
{
    struct wr *x = w->data;
    x->status = status;
    x->done = true;
}

static void write_pattern(struct endp *e, struct wr *x, size_t n)
{
    x->data = swc_malloc(n);
    for (size_t i = 0; i < n; i++) {
        x->data[i] = pattern(i);
    }
    x->w.data = x;
    x->done = false;
    uv_buf_t b = uv_buf_init((char *)x->data, (unsigned)n);
    assert_int_equal(uv_write(&x->w, (uv_stream_t *)e->p, &b, 1, wr_cb), 0);
}

static void test_bulk_slow_reader(void **state)
{
    struct fixture f;
    open_pair(&f);
    assert_string_equal(f.hello, "raft 2 at 10.0.0.2:4243");
    assert_string_equal(f.peer.node_id, "mgr-b");
    assert_int_equal(f.peer.role, SWC_ROLE_MANAGER);
    assert_string_equal(swc_tunnel_peer(f.cli.t)->node_id, "mgr-a");

    const size_t total = 50u * 1024 * 1024;
    struct wr big, back;
    f.srv.e.check_pattern = true;
    f.srv.e.slow = true;
    f.cli.e.check_pattern = true;
    write_pattern(&f.cli.e, &big, total);            /* client -> server, one write */
    write_pattern(&f.srv.e, &back, 1024 * 1024 + 7); /* and the other way at once */
    WAIT_FOR(f.srv.e.got == total && f.cli.e.got == 1024 * 1024 + 7 && big.done && back.done,
             40000);
    assert_false(f.srv.e.bad);
    assert_false(f.cli.e.bad);
    assert_int_equal(big.status, 0);

    struct swc_tunnel_stats cs, ss;
    swc_tunnel_stats(f.cli.t, &cs);
    swc_tunnel_stats(f.srv.t, &ss);
    assert_int_equal(cs.bytes_out, total);
    assert_int_equal(ss.bytes_in, total);
    assert_int_equal(ss.bytes_out, 1024 * 1024 + 7);
    /* the slow reader made the server stop reading TCP, which pushed back
     * to the client... */
    assert_true(ss.tcp_pauses > 0);
    assert_true(cs.local_pauses > 0);
    /* ...and no queue grew past the mark plus one frame */
    size_t bound = SWC_TUNNEL_HIGH_WATER + SWC_TUNNEL_FRAME_MAX + 64;
    fprintf(stderr, "client tcp queue max %zu, server local queue max %zu, pauses %llu/%llu\n",
            cs.tcp_wq_max, ss.local_wq_max, (unsigned long long)cs.local_pauses,
            (unsigned long long)ss.tcp_pauses);
    assert_true(cs.tcp_wq_max <= bound);
    assert_true(ss.local_wq_max <= bound);
    assert_true(ss.local_wq_max > SWC_TUNNEL_HIGH_WATER / 2);
    swc_free(big.data);
    swc_free(back.data);

    /* the client's owner closes: the server goes down once, both ends see EOF */
    swc_tunnel_close(f.cli.t, closed_cb, &f.cli);
    WAIT_FOR(f.cli.closes == 1 && f.srv.downs == 1 && f.srv.e.eof && f.cli.e.eof, 5000);
    assert_int_equal(f.srv.down_status, SWC_ECANCELED);
    assert_int_equal(f.cli.downs, 0); /* no down callback after our own close */
    close_all(&f);
    assert_int_equal(f.cli.closes, 1);
    assert_int_equal(f.srv.closes, 1);
}

static void test_worker_refused(void **state)
{
    struct fixture f;
    int port;
    memset(&f, 0, sizeof f);
    listen_on(&f, &port);
    connect_to(&f, port, &wrk_c);
    WAIT_FOR(f.cli.connects == 1 && swc_tunnel_listener_refused(f.l) == 1, 5000);
    assert_int_not_equal(f.cli.connect_status, 0);
    assert_int_equal(f.accepts, 0);
    assert_null(f.srv.t);
    close_all(&f);
    assert_int_equal(f.cli.closes, 1);
}

/* A TCP proxy between client and server that can flip a bit. */
struct proxy {
    uv_tcp_t srv, a, b; /* a: from the client, b: to the server */
    uv_connect_t creq;
    int port, target;
    bool tamper, tampered;
    int closed;
};

static void px_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = swc_malloc(65536);
    buf->len = 65536;
}

static void px_wcb(uv_write_t *w, int status)
{
    swc_free(w->data);
    swc_free(w);
}

static void px_closed(uv_handle_t *h)
{
    ((struct proxy *)h->data)->closed++;
}

static void px_down(struct proxy *p)
{
    if (!uv_is_closing((uv_handle_t *)&p->a)) {
        uv_close((uv_handle_t *)&p->a, px_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&p->b)) {
        uv_close((uv_handle_t *)&p->b, px_closed);
    }
}

static void px_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct proxy *p = s->data;
    if (n <= 0) {
        swc_free(buf->base);
        if (n < 0) {
            px_down(p);
        }
        return;
    }
    uv_stream_t *to = s == (uv_stream_t *)&p->a ? (uv_stream_t *)&p->b : (uv_stream_t *)&p->a;
    if (p->tamper && to == (uv_stream_t *)&p->b) {
        buf->base[n - 1] ^= 0x01; /* inside the last frame's tag */
        p->tamper = false;
        p->tampered = true;
    }
    uv_write_t *w = swc_malloc(sizeof *w);
    w->data = buf->base;
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
    uv_write(w, to, &b, 1, px_wcb);
}

static void px_connected(uv_connect_t *req, int status)
{
    struct proxy *p = req->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&p->a, px_alloc, px_read);
    uv_read_start((uv_stream_t *)&p->b, px_alloc, px_read);
}

static void px_conn(uv_stream_t *srv, int status)
{
    struct proxy *p = srv->data;
    uv_tcp_init(&loop, &p->a);
    uv_tcp_init(&loop, &p->b);
    p->a.data = p->b.data = p;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&p->a), 0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", p->target, &sa);
    p->creq.data = p;
    uv_tcp_connect(&p->creq, &p->b, (struct sockaddr *)&sa, px_connected);
}

static void proxy_start(struct proxy *p, int target)
{
    memset(p, 0, sizeof *p);
    p->target = target;
    uv_tcp_init(&loop, &p->srv);
    p->srv.data = p;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&p->srv, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->srv, 8, px_conn), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&p->srv, (struct sockaddr *)&ss, &len);
    p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void test_tampered_frame(void **state)
{
    struct fixture f;
    struct proxy px;
    int port;
    memset(&f, 0, sizeof f);
    listen_on(&f, &port);
    proxy_start(&px, port);
    connect_to(&f, px.port, &mgr_b);
    WAIT_FOR(f.cli.connects == 1 && f.accepts == 1, 5000);
    assert_int_equal(f.cli.connect_status, 0);

    /* clean bytes go through */
    struct wr w1, w2;
    write_pattern(&f.cli.e, &w1, 1000);
    WAIT_FOR(f.srv.e.got == 1000, 5000);
    /* a flipped bit in the next frame: the server refuses it and everything
     * closes; the byte never reaches the server's local reader */
    px.tamper = true;
    write_pattern(&f.cli.e, &w2, 10);
    WAIT_FOR(f.srv.downs == 1 && f.cli.downs == 1 && f.srv.e.eof && f.cli.e.eof, 5000);
    assert_true(px.tampered);
    assert_int_equal(f.srv.down_status, SWC_EAUTH);
    assert_int_equal(f.srv.e.got, 1000);
    swc_free(w1.data);
    swc_free(w2.data);
    close_all(&f);
    px_down(&px);
    uv_close((uv_handle_t *)&px.srv, NULL);
    WAIT_FOR(px.closed == 2, 5000);
    assert_int_equal(f.cli.closes, 1);
    assert_int_equal(f.srv.closes, 1);
}

static void test_close_paths(void **state)
{
    struct fixture f;
    /* the server's owner closes first */
    open_pair(&f);
    swc_tunnel_close(f.srv.t, closed_cb, &f.srv);
    WAIT_FOR(f.srv.closes == 1 && f.cli.downs == 1 && f.cli.e.eof && f.srv.e.eof, 5000);
    assert_int_equal(f.cli.down_status, SWC_ECANCELED);
    close_all(&f);
    assert_int_equal(f.srv.closes, 1);
    assert_int_equal(f.cli.closes, 1);
    assert_int_equal(f.srv.downs, 0);

    /* the local stream on the client closes: both tunnels go down once */
    open_pair(&f);
    uv_close((uv_handle_t *)f.cli.e.p, free_cb);
    f.cli.e.p = NULL;
    uv_close((uv_handle_t *)&f.cli.e.resume, NULL);
    WAIT_FOR(f.cli.downs == 1 && f.srv.downs == 1 && f.srv.e.eof, 5000);
    close_all(&f);
    assert_int_equal(f.srv.closes, 1);
    assert_int_equal(f.cli.closes, 1);

    /* closed by its owner during the handshake: no connect callback */
    int port;
    memset(&f, 0, sizeof f);
    listen_on(&f, &port);
    connect_to(&f, port, &mgr_b);
    swc_tunnel_close(f.cli.t, closed_cb, &f.cli);
    WAIT_FOR(f.cli.closes == 1, 5000);
    for (int i = 0; i < 20; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(f.cli.connects, 0);
    close_all(&f);
    assert_int_equal(f.cli.closes, 1);

    /* a renewed server identity applies to the next connection */
    memset(&f, 0, sizeof f);
    listen_on(&f, &port);
    struct swc_secchan_config renewed;
    cfg_for(&renewed, &mgr_b, false);
    swc_tunnel_listener_set_config(f.l, &renewed);
    memset(&renewed, 0, sizeof renewed); /* it was copied */
    connect_to(&f, port, &mgr_a);
    WAIT_FOR(f.cli.connects == 1 && f.accepts == 1, 5000);
    assert_int_equal(f.cli.connect_status, 0);
    assert_string_equal(swc_tunnel_peer(f.cli.t)->node_id, "mgr-b");
    close_all(&f);

    /* nobody listening: the connect fails once */
    memset(&f, 0, sizeof f);
    listen_on(&f, &port);
    swc_tunnel_listener_close(f.l, listener_closed_cb, &f);
    WAIT_FOR(f.listener_closes == 1, 5000);
    connect_to(&f, port, &mgr_b);
    WAIT_FOR(f.cli.connects == 1, 5000);
    assert_int_equal(f.cli.connect_status, SWC_EUNAVAIL);
    swc_tunnel_close(f.cli.t, closed_cb, &f.cli);
    WAIT_FOR(f.cli.closes == 1, 5000);
    assert_int_equal(
        swc_tunnel_connect(&loop, "no-port", NULL, NULL, 0, connect_cb, &f.cli, &f.cli.t),
        SWC_EINVAL);
}

int main(void)
{
    swc_keypair_new(ca_pk, ca_sk);
    make_identity(&mgr_a, "mgr-a", SWC_ROLE_MANAGER);
    make_identity(&mgr_b, "mgr-b", SWC_ROLE_MANAGER);
    make_identity(&wrk_c, "wrk-c", SWC_ROLE_WORKER);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bulk_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_paths, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
