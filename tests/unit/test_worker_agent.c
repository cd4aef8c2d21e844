/* The agent against a fake dispatcher (a plain-TCP RPC server on loopback):
 * a manager that answers "not the leader, try <itself>" (it parked the
 * session through an election and won it) gets the session opened again on
 * the same connection, without a second connect and handshake; a manager
 * that keeps saying so is left after a few tries; a redirect to another
 * manager connects there. Waits run the loop until a condition holds or a
 * deadline passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/dispatcher.pb-c.h"
#include "base/alloc.h"
#include "base/err.h"
#include "net/rpc.h"
#include "worker/agent.h"

#define MAX_HELD 16

/* A fake manager: answers each "dispatcher.Session" with "try <redirect>"
 * the first try_first times, then opens a session. */
struct fake_mgr {
    struct swc_rpc_server *srv;
    char addr[64];
    char redirect[64];
    int try_first;
    int sessions; /* Session requests seen */
    struct swc_rpc_req *held[MAX_HELD];
    int nheld;
};

struct fx {
    uv_loop_t loop;
    struct fake_mgr a, b;
    struct swc_agent *agent;
    uv_timer_t deadline;
    bool timed_out;
    int closed;
};

static void hold(struct fake_mgr *fm, struct swc_rpc_req *req)
{
    if (fm->nheld < MAX_HELD) {
        fm->held[fm->nheld++] = req;
    } else {
        swc_rpc_end(req, SWC_EBUSY, "test: too many");
    }
}

static void held_canceled(struct swc_rpc_req *req, int status, void *data)
{
    (void)status;
    struct fake_mgr *fm = data;
    for (int i = 0; i < fm->nheld; i++) {
        if (fm->held[i] == req) {
            fm->held[i] = fm->held[--fm->nheld];
            swc_rpc_end(req, SWC_ECANCELED, "canceled");
            return;
        }
    }
}

static void h_session(struct swc_rpc_req *req, const uint8_t *payload, size_t len, void *data)
{
    (void)payload, (void)len;
    struct fake_mgr *fm = data;
    Swarmc__SessionMessage m = SWARMC__SESSION_MESSAGE__INIT;
    uint8_t buf[256];
    fm->sessions++;
    if (fm->sessions <= fm->try_first) {
        m.not_leader_try = fm->redirect;
        swc_rpc_send(req, buf, swarmc__session_message__pack(&m, buf));
        swc_rpc_end(req, SWC_ENOTLEADER, "not the leader");
        return;
    }
    m.session_id = "sess-1";
    m.heartbeat_period_ns = 5000000000LL;
    swc_rpc_send(req, buf, swarmc__session_message__pack(&m, buf));
    swc_rpc_req_on_cancel(req, held_canceled, fm);
    hold(fm, req);
}

static void h_assignments(struct swc_rpc_req *req, const uint8_t *payload, size_t len, void *data)
{
    (void)payload, (void)len;
    struct fake_mgr *fm = data;
    swc_rpc_req_on_cancel(req, held_canceled, fm);
    hold(fm, req);
}

static void mgr_start(struct fx *f, struct fake_mgr *fm)
{
    int port = 0;
    assert_int_equal(swc_rpc_server_init(&f->loop, NULL, &fm->srv), 0);
    assert_int_equal(swc_rpc_server_register(fm->srv, "dispatcher.Session", true, h_session, fm),
                     0);
    assert_int_equal(
        swc_rpc_server_register(fm->srv, "dispatcher.Assignments", true, h_assignments, fm), 0);
    assert_int_equal(swc_rpc_server_listen_tcp(fm->srv, "127.0.0.1:0", NULL), 0);
    assert_int_equal(swc_rpc_server_port(fm->srv, &port), 0);
    snprintf(fm->addr, sizeof fm->addr, "127.0.0.1:%d", port);
}

static void on_deadline(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->timed_out = true;
    uv_stop(&f->loop);
}

/* Run the loop until cond(f) or secs pass; returns cond(f). */
static bool wait_until(struct fx *f, bool (*cond)(struct fx *f), double secs)
{
    f->timed_out = false;
    uv_timer_start(&f->deadline, on_deadline, (uint64_t)(secs * 1000), 0);
    while (!cond(f) && !f->timed_out) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->deadline);
    return cond(f);
}

static bool agent_up(struct fx *f)
{
    return swc_agent_connected(f->agent);
}

static int setup(void **state)
{
    struct fx *f = swc_calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->deadline);
    f->deadline.data = f;
    mgr_start(f, &f->a);
    mgr_start(f, &f->b);
    *state = f;
    return 0;
}

static void start_agent(struct fx *f, const char *const *managers, size_t n)
{
    struct swc_agent_config cfg = {0};
    struct swc_err err = {0};
    cfg.loop = &f->loop;
    cfg.managers = managers;
    cfg.nmanagers = n;
    cfg.node_id = "node-1";
    assert_int_equal(swc_agent_init(&f->agent, &cfg, &err), 0);
    assert_int_equal(swc_agent_start(f->agent), 0);
}

static void closed_cb(void *data)
{
    struct fx *f = data;
    f->closed++;
}

static void close_handle(uv_handle_t *h)
{
    (void)h;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->agent != NULL) {
        swc_agent_close(f->agent, closed_cb, f);
    }
    swc_rpc_server_close(f->a.srv, closed_cb, f);
    swc_rpc_server_close(f->b.srv, closed_cb, f);
    uv_close((uv_handle_t *)&f->deadline, close_handle);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, f->agent != NULL ? 3 : 2);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    swc_free(f);
    return 0;
}

/* "Try me" from the manager we are connected to: the session is opened
 * again on the same connection (one connection accepted, not two). */
static void test_try_me_reuses_connection(void **state)
{
    struct fx *f = *state;
    snprintf(f->a.redirect, sizeof f->a.redirect, "%s", f->a.addr);
    f->a.try_first = 1;
    const char *mgrs[] = {f->a.addr};
    start_agent(f, mgrs, 1);
    assert_true(wait_until(f, agent_up, 10));
    struct swc_rpc_server_stats st;
    swc_rpc_server_stats(f->a.srv, &st);
    assert_int_equal(f->a.sessions, 2);
    assert_int_equal(st.accepted, 1);
    assert_string_equal(swc_agent_manager(f->agent), f->a.addr);
}

static bool b_tried(struct fx *f)
{
    return f->b.sessions > 0;
}

/* A manager that says "try me" again and again is given up after a few
 * tries on one connection: the agent moves on to another manager. */
static void test_try_me_loop_is_bounded(void **state)
{
    struct fx *f = *state;
    snprintf(f->a.redirect, sizeof f->a.redirect, "%s", f->a.addr);
    f->a.try_first = 1000;
    const char *mgrs[] = {f->a.addr, f->b.addr};
    start_agent(f, mgrs, 2);
    assert_true(wait_until(f, b_tried, 10));
    assert_true(f->a.sessions >= 2);
    assert_true(f->a.sessions <= 5);
    assert_true(wait_until(f, agent_up, 10));
    assert_string_equal(swc_agent_manager(f->agent), f->b.addr);
}

/* A redirect naming another manager: the agent connects there. */
static void test_redirect_to_other_manager(void **state)
{
    struct fx *f = *state;
    snprintf(f->a.redirect, sizeof f->a.redirect, "%s", f->b.addr);
    f->a.try_first = 1;
    const char *mgrs[] = {f->a.addr};
    start_agent(f, mgrs, 1);
    assert_true(wait_until(f, agent_up, 10));
    assert_int_equal(f->a.sessions, 1);
    assert_int_equal(f->b.sessions, 1);
    assert_string_equal(swc_agent_manager(f->agent), f->b.addr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_try_me_reuses_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_try_me_loop_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_to_other_manager, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
