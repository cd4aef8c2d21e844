/* Accept pacing of the RPC server: when many clients connect at once (a
 * fleet of workers after a leader died), the server accepts a bounded burst
 * per loop turn and leaves the rest in the backlog, so timers (raft's ticks,
 * heartbeats) run between bursts; every client is still served. A 1 ms
 * probe timer stands in for those timers and records how many connections
 * were accepted between two of its runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/err.h"
#include "net/rpc.h"

#define CLIENTS 120
#define BURST   16 /* ACCEPT_BURST in rpc_server.c */

struct fx {
    uv_loop_t loop;
    struct swc_rpc_server *srv;
    char addr[64];
    struct swc_rpc_conn *conns[CLIENTS];
    struct swc_rpc_call *calls[CLIENTS];
    int replies;
    int failures;
    uv_timer_t probe;
    uint64_t last_accepted;
    uint64_t max_between; /* most connections accepted between two probe runs */
    uv_timer_t deadline;
    bool timed_out;
    int closed;
};

static void h_echo(struct swc_rpc_req *req, const uint8_t *payload, size_t len, void *data)
{
    (void)data;
    swc_rpc_reply(req, 0, NULL, payload, len);
}

static void reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                     const uint8_t *payload, size_t len, void *data)
{
    (void)call, (void)errmsg, (void)payload, (void)len;
    struct fx *f = data;
    if (status == 0) {
        f->replies++;
    } else {
        f->failures++;
    }
}

static void probe_cb(uv_timer_t *t)
{
    struct fx *f = t->data;
    struct swc_rpc_server_stats st;
    swc_rpc_server_stats(f->srv, &st);
    uint64_t d = st.accepted - f->last_accepted;
    if (d > f->max_between) {
        f->max_between = d;
    }
    f->last_accepted = st.accepted;
}

static void on_deadline(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->timed_out = true;
    uv_stop(&f->loop);
}

static void closed_cb(void *data)
{
    struct fx *f = data;
    f->closed++;
}

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

static void run_burst(struct fx *f, bool pacing)
{
    struct swc_rpc_server_opts opts = {0};
    int port = 0;
    opts.accept_pacing = pacing;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(swc_rpc_server_init(&f->loop, &opts, &f->srv), 0);
    assert_int_equal(swc_rpc_server_register(f->srv, "t.echo", false, h_echo, f), 0);
    assert_int_equal(swc_rpc_server_listen_tcp(f->srv, "127.0.0.1:0", NULL), 0);
    assert_int_equal(swc_rpc_server_port(f->srv, &port), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port);
    uv_timer_init(&f->loop, &f->probe);
    uv_timer_init(&f->loop, &f->deadline);
    f->probe.data = f->deadline.data = f;

    /* Every client connects and sends its call before the server runs. */
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(swc_rpc_connect(&f->loop, f->addr, NULL, &f->conns[i]), 0);
        assert_int_equal(swc_rpc_call(f->conns[i], "t.echo", (const uint8_t *)"x", 1, 20000,
                                      reply_cb, f, &f->calls[i]),
                         0);
    }
    uv_timer_start(&f->probe, probe_cb, 1, 1);
    uv_timer_start(&f->deadline, on_deadline, 20000, 0);
    while (f->replies + f->failures < CLIENTS && !f->timed_out) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->deadline);
    uv_timer_stop(&f->probe);
    probe_cb(&f->probe);

    for (int i = 0; i < CLIENTS; i++) {
        swc_rpc_conn_close(f->conns[i], closed_cb, f);
    }
    swc_rpc_server_close(f->srv, closed_cb, f);
    uv_close((uv_handle_t *)&f->probe, noop_close);
    uv_close((uv_handle_t *)&f->deadline, noop_close);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, CLIENTS + 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* With pacing, no more than about a burst is accepted between two runs of
 * the timers, and every client still gets its answer. */
static void test_paced_accepts_let_timers_run(void **state)
{
    (void)state;
    struct fx *f = swc_calloc(1, sizeof *f);
    assert_non_null(f);
    run_burst(f, true);
    assert_false(f->timed_out);
    assert_int_equal(f->replies, CLIENTS);
    assert_int_equal(f->failures, 0);
    assert_true(f->max_between <= 2 * BURST);
    swc_free(f);
}

/* The reference: without pacing the same burst is accepted with no timer
 * run in between (this is what the paced case is protected from). */
static void test_unpaced_accepts_in_one_turn(void **state)
{
    (void)state;
    struct fx *f = swc_calloc(1, sizeof *f);
    assert_non_null(f);
    run_burst(f, false);
    assert_int_equal(f->replies, CLIENTS);
    assert_true(f->max_between > 2 * BURST);
    swc_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paced_accepts_let_timers_run),
        cmocka_unit_test(test_unpaced_accepts_in_one_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
