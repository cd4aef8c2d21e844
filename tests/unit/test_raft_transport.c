/* Raft adapter with a custom transport: the owner supplies the streams
 * (here in-process socketpairs, as the secure-channel relay will), raft's
 * TCP transport is not used. Election, replication, failover and a
 * snapshot catch-up all run over it, and nothing leaks at close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test_raft_harness.h"

static void test_pipe_cluster(void **state)
{
    struct th_cluster c;
    struct th_props p;
    struct swc_raft_stats st;
    th_cluster_init(&c, 3);
    c.pipes = true;
    c.snap_threshold = 32;
    c.snap_trailing = 8;
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);
    assert_true(c.pipe_connects >= 2);

    /* replication */
    memset(&p, 0, sizeof p);
    p.rhash = c.n[l].rhash;
    for (int turn = 0; turn < 20; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 10, 100 + turn), 0);
        uv_run(&c.loop, UV_RUN_NOWAIT);
    }
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    assert_int_equal(p.ok, 200);
    assert_true(th_wait_converged(&c, l, 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.n[i].hash, c.n[l].hash);
    }

    /* a follower misses many entries and catches up by snapshot */
    int f = (l + 1) % 3;
    assert_true(th_stop(&c, f));
    for (int turn = 0; turn < 100; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 2, 101), 0);
        assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    }
    assert_int_equal(th_start(&c, f, false, false), 0);
    bool conv = th_wait_converged(&c, l, 10000);
    if (!conv) {
        for (int i = 0; i < 3; i++) {
            fprintf(stderr, "node %d applied %llu\n", i,
                    (unsigned long long)swc_raft_applied_index(c.n[i].r));
        }
    }
    assert_true(conv);
    swc_raft_stats(c.n[f].r, &st);
    assert_true(st.snapshots_restored >= 1);
    assert_int_equal(c.n[f].hash, c.n[l].hash);

    /* failover */
    assert_true(th_stop(&c, l));
    int nl = th_wait_leader(&c, 10000);
    assert_true(nl >= 0 && nl != l);
    memset(&p, 0, sizeof p);
    assert_int_equal(th_propose_burst(&c, nl, &p, 5, 64), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    assert_int_equal(p.ok, 5);
    th_cluster_close(&c);
}

/* Streams offered when the adapter cannot take them stay with the caller. */
static void test_accept_refused(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 1); /* plain TCP: no custom transport */
    assert_int_equal(th_form(&c), 0);
    uv_pipe_t p;
    uv_pipe_init(&c.loop, &p, 0);
    assert_int_equal(swc_raft_accept(c.n[0].r, 2, "127.0.0.1:1", (uv_stream_t *)&p), SWC_ESTATE);
    uv_close((uv_handle_t *)&p, NULL);
    th_cluster_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_cluster),
        cmocka_unit_test(test_accept_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
