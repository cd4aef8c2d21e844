/* Early election: a follower whose connection from its leader ends (the
 * leader's process closed it, as a kill -9 does) starts its election after
 * a short delay instead of the 500-1000 ms election timeout; a connection
 * that merely drops while the leader lives deposes nobody; with the option
 * off, failover still waits the timeout. Three in-process managers; the
 * leader "dies" by closing its raft, which closes its sockets like a kill. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/socket.h>

#include "raft/raft_int.h"
#include "test_raft_harness.h"

#define ELECTION_MS 500 /* the adapter's default */

/* The delays keep the survivors apart: rank 0 goes within a heartbeat,
 * rank 1 only after rank 0 stopped retrying (plus a tick), and both stay
 * under the election timeout. */
static void test_delay_ranks(void **state)
{
    for (unsigned rnd = 0; rnd < 200; rnd += 7) {
        unsigned d0 = swc_raft_early_delay_ms(0, ELECTION_MS, 50, rnd);
        unsigned d1 = swc_raft_early_delay_ms(1, ELECTION_MS, 50, rnd);
        assert_true(d0 < 50);
        assert_true(d1 >= swc_raft_early_retry_until_ms(0, ELECTION_MS, 50) + 50);
        assert_true(d1 < ELECTION_MS);
    }
    assert_true(swc_raft_early_retry_until_ms(0, ELECTION_MS, 50) > 100);
}

struct other_leader {
    int old;
};

/* A ready leader other than the old one. */
static bool cond_other_leader(struct th_cluster *c, void *arg)
{
    int l = th_leader(c);
    return l >= 0 && l != ((struct other_leader *)arg)->old;
}

/* Close the leader; ms until another node is a ready leader (-1: none in
 * 5 s). The closed node is restarted afterwards and rejoins. */
static int64_t fail_leader(struct th_cluster *c, uint64_t *early)
{
    int l = th_wait_leader(c, 5000);
    assert_true(l >= 0);
    assert_true(th_wait_converged(c, l, 5000));
    struct other_leader o = {l};
    int64_t t0 = swc_now_mono();
    assert_true(th_stop(c, l));
    bool ok = th_run_until(c, cond_other_leader, &o, 5000);
    int64_t ms = (swc_now_mono() - t0) / SWC_NS_PER_MS;
    int nl = th_leader(c);
    if (ok && early != NULL) {
        struct swc_raft_stats st;
        swc_raft_stats(c->n[nl].r, &st);
        *early = st.early_elections;
    }
    assert_int_equal(th_start(c, l, false, false), 0);
    assert_true(th_wait_converged(c, nl, 10000));
    return ok ? ms : -1;
}

/* Leader gone with its sockets closed: a new leader in well under the
 * election timeout's minimum, three times in a row. */
static void test_leader_closed_fast(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 3);
    assert_int_equal(th_form(&c), 0);
    for (int k = 0; k < 3; k++) {
        uint64_t early = 0;
        int64_t ms = fail_leader(&c, &early);
        fprintf(stderr, "failover %d: %lld ms\n", k, (long long)ms);
        assert_true(ms >= 0);
        assert_true(ms < ELECTION_MS * 4 / 5);
        assert_true(early >= 1);
    }
    th_cluster_close(&c);
}

/* Same with early election off: the followers wait their timeout. */
static void test_leader_closed_off(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 3);
    c.early_off = true;
    assert_int_equal(th_form(&c), 0);
    uint64_t early = 99;
    int64_t ms = fail_leader(&c, &early);
    assert_true(ms >= ELECTION_MS * 4 / 5);
    assert_int_equal(early, 0);
    th_cluster_close(&c);
}

struct watch {
    int leader;
    int up0[TH_MAX];
};

/* The leader stepped down or anyone else won an election. */
static bool cond_changed(struct th_cluster *c, void *arg)
{
    struct watch *w = arg;
    for (int i = 0; i < c->size; i++) {
        if (c->n[i].lead_up != w->up0[i] || (i == w->leader && c->n[i].lead_down != 0)) {
            return true;
        }
    }
    return false;
}

/* The leader lives but its connection to one follower drops (EOF on the
 * follower's side): that follower reacts, yet the leader stays leader for
 * 30 heartbeats, and a write still reaches all three. */
static void test_blip_keeps_leader(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 3);
    c.pipes = true;
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);
    assert_true(th_wait_converged(&c, l, 5000));
    struct watch w = {l, {0}};
    for (int i = 0; i < c.size; i++) {
        w.up0[i] = c.n[i].lead_up;
        c.n[i].lead_down = 0;
    }
    for (int f = 0; f < c.size; f++) {
        if (f == l) {
            continue;
        }
        assert_true(c.pipe_fd[l][f] >= 0);
        assert_int_equal(shutdown(c.pipe_fd[l][f], SHUT_RDWR), 0);
        c.pipe_fd[l][f] = -1;
        /* the follower sees its leader's connection end */
        struct swc_raft_stats st;
        for (int k = 0; k < 100; k++) {
            uv_run(&c.loop, UV_RUN_ONCE);
            swc_raft_stats(c.n[f].r, &st);
            if (st.early_elections > 0) {
                break;
            }
        }
        assert_int_equal(st.early_elections, 1);
        /* no leader change for 30 heartbeats */
        assert_false(th_run_until(&c, cond_changed, &w, 30 * 50));
        assert_int_equal(th_leader(&c), l);
    }
    struct th_props p;
    memset(&p, 0, sizeof p);
    assert_int_equal(th_propose_burst(&c, l, &p, 10, 64), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    assert_int_equal(p.ok, 10);
    assert_true(th_wait_converged(&c, l, 5000));
    th_cluster_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_ranks),
        cmocka_unit_test(test_leader_closed_fast),
        cmocka_unit_test(test_leader_closed_off),
        cmocka_unit_test(test_blip_keeps_leader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
