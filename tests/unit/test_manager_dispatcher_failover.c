/* The dispatcher's side of a leader change, on a real loop and a real RPC
 * server (plain TCP, the node id claimed in the request), with a manager
 * that has no raft (no leader known) and writes nothing:
 *   - a session that reaches a manager while no leader is known is parked,
 *     not refused, and when this manager wins it is answered "try <me>",
 *     after which the same connection gets a session;
 *   - a parked session is refused once it waited too long;
 *   - the leader admits a burst of registrations under a per-turn budget,
 *     and every one gets its session;
 *   - a node that re-registers with the status the store already has needs
 *     no write (swc_dispatcher_node_current);
 *   - when a whole fleet stops heartbeating at once, every node is found and
 *     marked down within a few checks (it used to be 64 per check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "manager/manager_int.h"
#include "net/rpc.h"

struct fx {
    uv_loop_t loop;
    struct swc_store *store;
    struct swc_manager m;
    struct swc_dispatcher *d;
    struct swc_rpc_server *srv;
    struct swc_rpc_conn *conn;
    struct swc_rpc_call *call;
    char addr[64];
    /* what the session stream got */
    int msgs;
    char try_addr[64];
    char session_id[64];
    bool ended;
    int end_status;
    uv_timer_t deadline;
    bool timed_out;
    int closed;
};

static void msg_cb(struct swc_rpc_call *call, const uint8_t *payload, size_t len, void *data)
{
    (void)call;
    struct fx *f = data;
    Swarmc__SessionMessage *m = swarmc__session_message__unpack(&swc_pb_allocator, len, payload);
    assert_non_null(m);
    f->msgs++;
    snprintf(f->try_addr, sizeof f->try_addr, "%s", m->not_leader_try ? m->not_leader_try : "");
    snprintf(f->session_id, sizeof f->session_id, "%s", m->session_id ? m->session_id : "");
    swarmc__session_message__free_unpacked(m, &swc_pb_allocator);
}

static void end_cb(struct swc_rpc_call *call, int status, const char *errmsg, void *data)
{
    (void)call, (void)errmsg;
    struct fx *f = data;
    f->ended = true;
    f->end_status = status;
}

static void open_session(struct fx *f)
{
    Swarmc__SessionRequest req = SWARMC__SESSION_REQUEST__INIT;
    uint8_t buf[128];
    req.node_id = "node-a";
    f->msgs = 0;
    f->ended = false;
    f->try_addr[0] = f->session_id[0] = '\0';
    size_t n = swarmc__session_request__pack(&req, buf);
    assert_int_equal(
        swc_rpc_stream_open(f->conn, "dispatcher.Session", buf, n, 0, msg_cb, end_cb, f, &f->call),
        0);
}

static void on_deadline(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->timed_out = true;
    uv_stop(&f->loop);
}

/* Run the loop for ms milliseconds, or until cond(f) when cond is given. */
static bool run_for(struct fx *f, bool (*cond)(struct fx *f), uint64_t ms)
{
    f->timed_out = false;
    uv_timer_start(&f->deadline, on_deadline, ms, 0);
    while ((cond == NULL || !cond(f)) && !f->timed_out) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->deadline);
    return cond != NULL && cond(f);
}

static bool got_msg(struct fx *f)
{
    return f->msgs > 0;
}

static bool got_end(struct fx *f)
{
    return f->ended;
}

static int setup(void **state)
{
    struct fx *f = swc_calloc(1, sizeof *f);
    int port = 0;
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(swc_store_create(&f->store), 0);
    assert_int_equal(swc_rpc_server_init(&f->loop, NULL, &f->srv), 0);
    assert_int_equal(swc_rpc_server_listen_tcp(f->srv, "127.0.0.1:0", NULL), 0);
    assert_int_equal(swc_rpc_server_port(f->srv, &port), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port);
    f->m.loop = &f->loop;
    f->m.store = f->store;
    f->m.advertise_addr = f->addr;
    f->m.node_id = "manager-1";
    f->m.heartbeat_period_ns = 5 * SWC_NS_PER_SEC;
    assert_int_equal(swc_dispatcher_create(&f->m, &f->d), 0);
    f->m.dispatcher = f->d;
    swc_dispatcher_register(f->d, f->srv);
    uv_timer_init(&f->loop, &f->deadline);
    f->deadline.data = f;
    assert_int_equal(swc_rpc_connect(&f->loop, f->addr, NULL, &f->conn), 0);
    *state = f;
    return 0;
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

static int teardown(void **state)
{
    struct fx *f = *state;
    swc_rpc_conn_close(f->conn, closed_cb, f);
    swc_dispatcher_destroy(f->d);
    swc_rpc_server_close(f->srv, closed_cb, f);
    uv_close((uv_handle_t *)&f->deadline, noop_close);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 2);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    swc_store_destroy(f->store);
    swc_free(f);
    return 0;
}

/* No leader known: the session is held, not refused; when this manager
 * becomes the leader it says "try me", and the same connection then gets a
 * session (one connection accepted in all). */
static void test_parked_until_this_manager_leads(void **state)
{
    struct fx *f = *state;
    open_session(f);
    run_for(f, NULL, 300);
    assert_false(f->ended); /* a bare refusal would have ended it at once */
    assert_int_equal(f->msgs, 0);
    assert_int_equal(swc_dispatcher_parked(f->d), 1);

    swc_dispatcher_leader(f->d, true);
    assert_true(run_for(f, got_end, 5000));
    assert_int_equal(f->msgs, 1);
    assert_string_equal(f->try_addr, f->addr);
    assert_int_equal(f->end_status, SWC_ENOTLEADER);
    assert_int_equal(swc_dispatcher_parked(f->d), 0);

    open_session(f);
    assert_true(run_for(f, got_msg, 5000));
    assert_string_equal(f->try_addr, "");
    assert_true(strlen(f->session_id) > 0);
    struct swc_rpc_server_stats st;
    swc_rpc_server_stats(f->srv, &st);
    assert_int_equal(st.accepted, 1);
    swc_dispatcher_leader(f->d, false);
}

/* A session parked for too long (no leader for 5 s) is refused without an
 * address, so the worker backs off and tries elsewhere. */
static void test_parked_too_long_is_refused(void **state)
{
    struct fx *f = *state;
    int64_t t0 = swc_now_mono();
    open_session(f);
    assert_true(run_for(f, got_end, 10000));
    assert_true(swc_now_mono() - t0 >= 4 * SWC_NS_PER_SEC);
    assert_int_equal(f->msgs, 0);
    assert_int_equal(f->end_status, SWC_ENOTLEADER);
    assert_int_equal(swc_dispatcher_parked(f->d), 0);
}

/* A client that goes away while parked frees its place. */
static void test_parked_canceled(void **state)
{
    struct fx *f = *state;
    open_session(f);
    run_for(f, NULL, 200);
    assert_int_equal(swc_dispatcher_parked(f->d), 1);
    swc_rpc_cancel(f->call);
    assert_true(run_for(f, got_end, 5000));
    run_for(f, NULL, 200); /* the park timer drops the canceled entry */
    assert_int_equal(swc_dispatcher_parked(f->d), 0);
}

#define BURST_SESSIONS 3000

struct burst {
    struct fx *f;
    int established;
};

static void burst_msg_cb(struct swc_rpc_call *call, const uint8_t *payload, size_t len, void *data)
{
    (void)call;
    struct burst *b = data;
    Swarmc__SessionMessage *m = swarmc__session_message__unpack(&swc_pb_allocator, len, payload);
    assert_non_null(m);
    if (m->session_id != NULL && m->session_id[0] != '\0') {
        b->established++;
    }
    swarmc__session_message__free_unpacked(m, &swc_pb_allocator);
}

static void burst_end_cb(struct swc_rpc_call *call, int status, const char *errmsg, void *data)
{
    (void)call, (void)status, (void)errmsg, (void)data;
}

static struct burst *g_burst;

static bool burst_done(struct fx *f)
{
    (void)f;
    return g_burst->established == BURST_SESSIONS;
}

/* Open BURST_SESSIONS sessions, for nodes node-00000 and on, at once. */
static void open_burst(struct fx *f, struct burst *b)
{
    for (int i = 0; i < BURST_SESSIONS; i++) {
        Swarmc__SessionRequest req = SWARMC__SESSION_REQUEST__INIT;
        char id[32];
        uint8_t buf[128];
        struct swc_rpc_call *call;
        snprintf(id, sizeof id, "node-%05d", i);
        req.node_id = id;
        size_t n = swarmc__session_request__pack(&req, buf);
        assert_int_equal(swc_rpc_stream_open(f->conn, "dispatcher.Session", buf, n, 0, burst_msg_cb,
                                             burst_end_cb, b, &call),
                         0);
    }
}

/* A burst of registrations reaching the leader in one poll phase is
 * admitted under a per-turn budget: some wait for later turns, and every
 * one of them still gets its session. */
static void test_leader_admits_burst_over_turns(void **state)
{
    struct fx *f = *state;
    struct burst b = {f, 0};
    g_burst = &b;
    swc_dispatcher_leader(f->d, true);
    open_burst(f, &b);
    assert_true(run_for(f, burst_done, 30000));
    assert_true(swc_dispatcher_admitted_late(f->d) > 0);
    swc_dispatcher_leader(f->d, false);
}

static bool all_marked_down(struct fx *f)
{
    return swc_dispatcher_marked_down(f->d) >= BURST_SESSIONS;
}

/* Put node id into the store as READY (one committed entry). */
static void put_ready_node(struct fx *f, uint64_t index, const char *id)
{
    Swarmc__Node n = SWARMC__NODE__INIT;
    Swarmc__NodeStatus st = SWARMC__NODE_STATUS__INIT;
    struct swc_store_txn t;
    struct swc_buf txn, batch;
    n.id = (char *)id;
    st.state = SWARMC__NODE_STATE__NODE_STATE_READY;
    n.status = &st;
    swc_buf_init(&txn);
    swc_buf_init(&batch);
    assert_int_equal(swc_store_txn_init(&t, index, "test"), 0);
    assert_int_equal(swc_store_txn_create(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n.base), 0);
    assert_int_equal(swc_store_txn_encode(&t, &txn), 0);
    assert_int_equal(swc_store_batch_append(&batch, txn.data, txn.len), 0);
    assert_int_equal(swc_store_apply_entry(f->store, index, batch.data, batch.len, NULL, NULL), 0);
    swc_store_txn_free(&t);
    swc_buf_free(&txn);
    swc_buf_free(&batch);
}

/* 3,000 nodes with sessions stop heartbeating at once: all of them are
 * marked down within 15 s. Checks run every 500 ms; at 64 nodes per check
 * (the old cap) this took at least 23.5 s. */
static void test_whole_fleet_marked_down_quickly(void **state)
{
    struct fx *f = *state;
    struct burst b = {f, 0};
    g_burst = &b;
    for (int i = 0; i < BURST_SESSIONS; i++) {
        char id[32];
        snprintf(id, sizeof id, "node-%05d", i);
        put_ready_node(f, (uint64_t)i + 1, id);
    }
    /* grace = 3 periods = 300 ms: the sessions below never heartbeat */
    f->m.heartbeat_period_ns = 100 * SWC_NS_PER_MS;
    swc_dispatcher_leader(f->d, true);
    open_burst(f, &b);
    assert_true(run_for(f, burst_done, 30000));
    assert_true(run_for(f, all_marked_down, 15000));
    swc_dispatcher_leader(f->d, false);
}

static bool scanned_twice(struct fx *f)
{
    uint64_t scans, visits;
    swc_dispatcher_scan_stats(f->d, &scans, &visits);
    return scans >= 2;
}

/* 3,000 live sessions: looking for expired ones visits none of them (the
 * sessions are kept oldest first; it used to walk all of them each time). */
static void test_live_sessions_cost_the_check_nothing(void **state)
{
    struct fx *f = *state;
    struct burst b = {f, 0};
    g_burst = &b;
    swc_dispatcher_leader(f->d, true);
    open_burst(f, &b);
    assert_true(run_for(f, burst_done, 30000));
    /* grace is 15 s: nobody expires during the next two checks */
    assert_true(run_for(f, scanned_twice, 10000));
    uint64_t scans, visits;
    swc_dispatcher_scan_stats(f->d, &scans, &visits);
    assert_int_equal(visits, 0);
    assert_int_equal(swc_dispatcher_marked_down(f->d), 0);
    swc_dispatcher_leader(f->d, false);
}

static void test_node_current(void **state)
{
    (void)state;
    Swarmc__Node n = SWARMC__NODE__INIT;
    Swarmc__NodeStatus st = SWARMC__NODE_STATUS__INIT;
    Swarmc__NodeDescription desc = SWARMC__NODE_DESCRIPTION__INIT;
    Swarmc__NodeDescription other = SWARMC__NODE_DESCRIPTION__INIT;
    const int ready = SWARMC__NODE_STATE__NODE_STATE_READY;
    const int down = SWARMC__NODE_STATE__NODE_STATE_DOWN;
    const int worker = SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    const int manager = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    desc.hostname = "fleet-00001";
    other.hostname = "fleet-00002";
    st.state = SWARMC__NODE_STATE__NODE_STATE_READY;
    st.message = "";
    st.addr = "10.0.0.1:4242";
    n.status = &st;
    n.description = &desc;
    n.role = SWARMC__NODE_ROLE__NODE_ROLE_WORKER;

    assert_true(swc_dispatcher_node_current(&n, ready, "", &desc, "10.0.0.1:4242", worker));
    assert_true(swc_dispatcher_node_current(&n, ready, "", NULL, NULL, -1));
    assert_false(swc_dispatcher_node_current(NULL, ready, "", NULL, NULL, -1));
    assert_false(swc_dispatcher_node_current(&n, down, "", NULL, NULL, -1));
    assert_false(swc_dispatcher_node_current(&n, ready, "x", NULL, NULL, -1));
    assert_false(swc_dispatcher_node_current(&n, ready, "", &other, NULL, -1));
    assert_false(swc_dispatcher_node_current(&n, ready, "", NULL, "10.0.0.2:4242", -1));
    assert_false(swc_dispatcher_node_current(&n, ready, "", NULL, NULL, manager));
    n.description = NULL;
    assert_false(swc_dispatcher_node_current(&n, ready, "", &desc, NULL, -1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parked_until_this_manager_leads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_too_long_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_canceled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_admits_burst_over_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_fleet_marked_down_quickly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_sessions_cost_the_check_nothing, setup, teardown),
        cmocka_unit_test(test_node_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
