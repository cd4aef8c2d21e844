/* Raft adapter: failover, leadership loss with writes in flight, snapshot
 * catch-up of a stopped follower, whole-cluster restart from disk and
 * force-new-cluster after quorum loss. In-process nodes on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test_raft_harness.h"

static int wait_leader_among(struct th_cluster *c, int ms)
{
    return th_wait_leader(c, ms);
}

/* The leader is closed: another node wins, proposals continue there, the
 * survivors agree on the state. */
static void test_failover(void **state)
{
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, 3);
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    memset(&p, 0, sizeof p);
    assert_int_equal(th_propose_burst(&c, l, &p, 100, 100), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    assert_true(th_wait_converged(&c, l, 5000));
    uint64_t before = c.n[l].count;

    int64_t t0 = swc_now_mono();
    assert_true(th_stop(&c, l));
    int nl = wait_leader_among(&c, 10000);
    assert_true(nl >= 0);
    assert_true(nl != l);
    memset(&p, 0, sizeof p);
    p.rhash = c.n[nl].rhash;
    assert_int_equal(th_propose_burst(&c, nl, &p, 50, 100), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    fprintf(stderr, "failover to first commit: %.0f ms\n",
            (double)(swc_now_mono() - t0) / SWC_NS_PER_MS);
    assert_int_equal(p.ok, 50);
    assert_true(th_wait_converged(&c, nl, 5000));
    for (int i = 0; i < 3; i++) {
        if (c.n[i].running) {
            assert_int_equal(c.n[i].count, before + 50);
            assert_int_equal(c.n[i].hash, c.n[nl].hash);
        }
    }
    assert_int_equal(p.rhash, c.n[nl].rhash);
    th_cluster_close(&c);
}

static bool cond_lost(struct th_cluster *c, void *arg)
{
    struct th_node *n = arg;
    return n->lead_down > 0;
}

/* Both followers go away: the leader cannot commit, steps down after the
 * election timeout, and every write in flight completes with
 * SWC_ELEADERLOST instead of hanging. */
static void test_leadership_lost_inflight(void **state)
{
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, 3);
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    for (int i = 0; i < 3; i++) {
        if (i != l) {
            assert_true(th_stop(&c, i));
        }
    }
    memset(&p, 0, sizeof p);
    for (int turn = 0; turn < 5; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 20, 64), 0);
        uv_run(&c.loop, UV_RUN_NOWAIT);
    }
    assert_true(th_run_until(&c, th_cond_props, &p, 10000));
    assert_int_equal(p.lost, p.sent);
    assert_int_equal(p.ok, 0);
    assert_true(th_run_until(&c, cond_lost, &c.n[l], 5000));
    assert_int_equal(c.n[l].lead_down, 1);
    assert_false(swc_raft_is_leader(c.n[l].r));
    assert_int_equal(swc_raft_propose(c.n[l].r, "x", 1, th_prop_cb, &p), SWC_ENOTLEADER);
    th_cluster_close(&c);
}

/* Closing with writes queued and in flight: each gets exactly one callback. */
static void test_close_with_inflight(void **state)
{
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, 1);
    assert_int_equal(th_form(&c), 0);
    memset(&p, 0, sizeof p);
    assert_int_equal(th_propose_burst(&c, 0, &p, 10, 64), 0);
    uv_run(&c.loop, UV_RUN_NOWAIT); /* first batch handed to raft */
    assert_int_equal(th_propose_burst(&c, 0, &p, 10, 64), 0);
    assert_true(th_stop(&c, 0));
    assert_int_equal(p.done, 20);
    assert_int_equal(p.ok + p.closed, 20);
    assert_true(p.closed >= 10);
    th_cluster_close(&c);
}

/* A follower is stopped while the others write far beyond the snapshot
 * threshold; restarted, it catches up by snapshot to the same state. */
static void test_snapshot_catch_up(void **state)
{
    struct th_cluster c;
    struct th_props p;
    struct swc_raft_stats st;
    th_cluster_init(&c, 3);
    c.snap_threshold = 64;
    c.snap_trailing = 16;
    for (int i = 0; i < 3; i++) {
        c.n[i].snap_pad = 64 * 1024;
    }
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    int f = (l + 1) % 3;
    assert_true(th_stop(&c, f));
    memset(&p, 0, sizeof p);
    p.rhash = c.n[l].rhash;
    for (int turn = 0; turn < 300; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 3, 200), 0);
        assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    }
    assert_int_equal(p.ok, 900);
    swc_raft_stats(c.n[l].r, &st);
    assert_true(st.snapshots_taken >= 3);

    assert_int_equal(th_start(&c, f, false, false), 0);
    assert_true(th_wait_converged(&c, l, 15000));
    swc_raft_stats(c.n[f].r, &st);
    assert_true(st.snapshots_restored >= 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.n[i].count, c.n[l].count);
        assert_int_equal(c.n[i].hash, c.n[l].hash);
        assert_int_equal(c.n[i].rhash, c.n[l].rhash);
    }
    assert_int_equal(p.rhash, c.n[l].rhash);
    th_cluster_close(&c);
}

/* Record each node's FSM state before a restart. */
struct saved {
    uint64_t hash, rhash, count;
};

static bool cond_restored(struct th_cluster *c, void *arg)
{
    struct saved *s = arg;
    for (int i = 0; i < c->size; i++) {
        if (c->n[i].running && (c->n[i].count != s->count || c->n[i].hash != s->hash)) {
            return false;
        }
    }
    return true;
}

/* The whole 3-node cluster stops and restarts from disk (with snapshots and
 * log tails): same state everywhere, and it accepts writes again. */
static void test_cluster_restart(void **state)
{
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, 3);
    c.snap_threshold = 50;
    c.snap_trailing = 10;
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    memset(&p, 0, sizeof p);
    for (int turn = 0; turn < 120; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 4, 100), 0);
        uv_run(&c.loop, UV_RUN_NOWAIT);
    }
    assert_true(th_run_until(&c, th_cond_props, &p, 10000));
    assert_int_equal(p.ok, 480);
    assert_true(th_wait_converged(&c, l, 5000));
    struct saved s = {c.n[l].hash, c.n[l].rhash, c.n[l].count};
    for (int i = 0; i < 3; i++) {
        assert_true(th_stop(&c, i));
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(th_start(&c, i, false, false), 0);
    }
    l = th_wait_leader(&c, 10000);
    assert_true(l >= 0);
    assert_true(th_run_until(&c, cond_restored, &s, 10000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.n[i].rhash, s.rhash);
    }
    memset(&p, 0, sizeof p);
    assert_int_equal(th_propose_burst(&c, l, &p, 10, 100), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    assert_int_equal(p.ok, 10);
    th_cluster_close(&c);
}

/* Write n 8 KiB proposals, one entry each, on node l. */
static void write_big_entries(struct th_cluster *c, int l, int n)
{
    struct th_props p;
    memset(&p, 0, sizeof p);
    for (int turn = 0; turn < n; turn++) {
        assert_int_equal(th_propose_burst(c, l, &p, 1, 8192), 0);
        assert_true(th_run_until(c, th_cond_props, &p, 5000));
    }
    assert_int_equal(p.ok, n);
}

/* On a 3-node cluster whose entry threshold is never reached, every node
 * snapshots once the entries applied since its last snapshot pass
 * snapshot_log_bytes, and keeps only about snapshot_trailing_bytes of
 * entries after it; a restart restores the same state. */
static void test_snapshot_by_bytes(void **state)
{
    static const uint8_t key[SWC_RAFT_KEY_LEN] = {7, 1, 2, 3};
    struct th_cluster c;
    struct swc_raft_stats st;
    th_cluster_init(&c, 3);
    c.key = key; /* snapshots are sealed in place: the restart opens them */
    c.snap_threshold = 100000;
    c.snap_trailing = 500;
    c.snap_log_bytes = 256 * 1024;
    c.snap_trail_bytes = 64 * 1024;
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    write_big_entries(&c, l, 200); /* ~1.6 MiB of entries */
    assert_true(th_wait_converged(&c, l, 5000));
    for (int i = 0; i < 3; i++) {
        swc_raft_stats(c.n[i].r, &st);
        assert_true(st.snapshots_taken >= 3);
        assert_true(st.snapshots_by_bytes == st.snapshots_taken);
        assert_true(st.log_bytes < 256 * 1024 + 8192);
        /* trailing entries (64 KiB: 7 of them) plus those since */
        assert_true(st.mem_bytes <= 64 * 1024 + 256 * 1024 + 16384);
    }
    /* Restart everything from disk: state comes back from the sealed
     * snapshots plus the short log tails. */
    struct saved s = {c.n[l].hash, c.n[l].rhash, c.n[l].count};
    for (int i = 0; i < 3; i++) {
        assert_true(th_stop(&c, i));
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(th_start(&c, i, false, false), 0);
    }
    l = th_wait_leader(&c, 10000);
    assert_true(l >= 0);
    assert_true(th_run_until(&c, cond_restored, &s, 10000));
    for (int i = 0; i < 3; i++) {
        swc_raft_stats(c.n[i].r, &st);
        assert_true(st.snapshots_restored >= 1);
        assert_int_equal(c.n[i].rhash, s.rhash);
    }
    th_cluster_close(&c);
}

/* The same writes with the byte trigger far away: no snapshot at all, and
 * every entry stays in memory (what the trigger is there to prevent). */
static void test_snapshot_bytes_off(void **state)
{
    struct th_cluster c;
    struct swc_raft_stats st;
    th_cluster_init(&c, 3);
    c.snap_threshold = 100000;
    c.snap_log_bytes = 1u << 30;
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    write_big_entries(&c, l, 200);
    swc_raft_stats(c.n[l].r, &st);
    assert_int_equal(st.snapshots_taken, 0);
    assert_true(st.mem_bytes >= 200 * 8192);
    th_cluster_close(&c);
}

static void test_bootstrap_twice_refused(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 1);
    assert_int_equal(th_form(&c), 0);
    assert_true(th_stop(&c, 0));
    assert_int_equal(th_start(&c, 0, true, false), SWC_EEXIST);
    /* th_start left an initialized, unstarted adapter: close it */
    c.n[0].running = true;
    assert_true(th_stop(&c, 0));
    th_cluster_close(&c);
}

/* Two of three managers are gone for good: the survivor forces a new
 * one-manager cluster with all the data and accepts writes. Without the
 * force it cannot elect itself. */
static void test_force_new_cluster(void **state)
{
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, 3);
    c.snap_threshold = 40;
    c.snap_trailing = 8;
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    memset(&p, 0, sizeof p);
    for (int turn = 0; turn < 60; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 5, 100), 0);
        uv_run(&c.loop, UV_RUN_NOWAIT);
    }
    assert_true(th_run_until(&c, th_cond_props, &p, 10000));
    assert_true(th_wait_converged(&c, l, 5000));
    int s = (l + 1) % 3;
    struct saved sv = {c.n[s].hash, c.n[s].rhash, c.n[s].count};
    for (int i = 0; i < 3; i++) {
        assert_true(th_stop(&c, i));
    }

    /* plain restart of the survivor alone: no quorum, no leader */
    assert_int_equal(th_start(&c, s, false, false), 0);
    assert_int_equal(th_wait_leader(&c, 2500), -1);
    assert_true(th_stop(&c, s));

    assert_int_equal(th_start(&c, s, false, true), 0);
    assert_int_equal(th_wait_leader(&c, 5000), s);
    assert_true(th_run_until(&c, cond_restored, &sv, 5000));
    struct swc_raft_member *m;
    size_t nm;
    assert_int_equal(swc_raft_members(c.n[s].r, &m, &nm), 0);
    assert_int_equal(nm, 1);
    assert_int_equal(m[0].id, c.n[s].id);
    swc_free(m);
    memset(&p, 0, sizeof p);
    assert_int_equal(th_propose_burst(&c, s, &p, 10, 100), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    assert_int_equal(p.ok, 10);
    assert_int_equal(c.n[s].count, sv.count + 10);
    th_cluster_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_leadership_lost_inflight),
        cmocka_unit_test(test_close_with_inflight),
        cmocka_unit_test(test_snapshot_catch_up),
        cmocka_unit_test(test_cluster_restart),
        cmocka_unit_test(test_snapshot_by_bytes),
        cmocka_unit_test(test_snapshot_bytes_off),
        cmocka_unit_test(test_bootstrap_twice_refused),
        cmocka_unit_test(test_force_new_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
