/* Raft adapter under faults: allocation failures in init and propose
 * (clean SWC_ENOMEM, no callback, no leak) and a manager holding the wrong
 * data key (it must not apply entries it cannot open). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test_raft_harness.h"

/* Every allocation of propose may fail: the call reports SWC_ENOMEM and
 * makes no callback; every accepted proposal completes exactly once. */
static void test_propose_enomem(void **state)
{
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, 1);
    assert_int_equal(th_form(&c), 0);
    memset(&p, 0, sizeof p);
    int refused = 0;
    uint8_t payload[300];
    memset(payload, 'p', sizeof payload);
    for (long k = 1; k <= 12; k++) {
        swc_alloc_fail_after(k);
        for (int i = 0; i < 20; i++) {
            int rv = swc_raft_propose(c.n[0].r, payload, sizeof payload, th_prop_cb, &p);
            if (rv == 0) {
                p.sent++;
            } else {
                assert_int_equal(rv, SWC_ENOMEM);
                refused++;
            }
        }
        swc_alloc_fail_after(0);
        assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    }
    assert_true(refused > 0);
    assert_int_equal(p.ok, p.sent);
    assert_int_equal((uint64_t)p.ok, c.n[0].count);
    th_cluster_close(&c);
}

/* Allocation failures while creating the adapter: an error, nothing leaks. */
static void test_init_enomem(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 1);
    int failures = 0;
    for (long k = 1; k < 200; k++) {
        struct swc_raft_config cfg;
        struct swc_err err;
        struct swc_raft *r = NULL;
        memset(&cfg, 0, sizeof cfg);
        cfg.state_dir = c.n[0].dir;
        cfg.id = 1;
        cfg.address = c.n[0].addr;
        cfg.fsm.data = &c.n[0];
        cfg.fsm.apply = th_apply;
        cfg.fsm.snapshot = th_snapshot;
        cfg.fsm.restore = th_restore;
        long live = swc_alloc_live();
        swc_alloc_fail_after(k);
        int rv = swc_raft_init(&c.loop, &cfg, &r, &err);
        swc_alloc_fail_after(0);
        if (rv != 0) {
            assert_null(r);
            assert_int_equal(swc_alloc_live(), live);
            failures++;
            continue;
        }
        c.n[0].r = r;
        c.n[0].running = true;
        assert_true(th_stop(&c, 0));
        break;
    }
    assert_true(failures > 0);
    th_cluster_close(&c);
}

/* A follower with the wrong data key cannot open entries: it applies
 * nothing (rather than garbage) while the others agree. */
static void test_wrong_key(void **state)
{
    static const uint8_t good[SWC_RAFT_KEY_LEN] = {9, 9, 9};
    static const uint8_t bad[SWC_RAFT_KEY_LEN] = {6, 6, 6};
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, 3);
    c.key = good;
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    int f = (l + 1) % 3, g = (l + 2) % 3;
    assert_true(th_stop(&c, f));
    c.key = bad;
    assert_int_equal(th_start(&c, f, false, false), 0);
    c.key = good;
    memset(&p, 0, sizeof p);
    assert_int_equal(th_propose_burst(&c, l, &p, 50, 64), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    assert_int_equal(p.ok, 50);
    uint64_t sealed_index = swc_raft_applied_index(c.n[l].r); /* the one entry of the burst */
    /* the bad-key follower catches up to just before the sealed entry... */
    int64_t deadline = swc_now_mono() + 5 * SWC_NS_PER_SEC;
    while ((swc_raft_applied_index(c.n[f].r) < sealed_index - 1 ||
            swc_raft_applied_index(c.n[g].r) < sealed_index) &&
           swc_now_mono() < deadline) {
        uv_run(&c.loop, UV_RUN_ONCE);
    }
    assert_int_equal(swc_raft_applied_index(c.n[f].r), sealed_index - 1);
    assert_int_equal(c.n[g].hash, c.n[l].hash);
    /* ...and stays there for a while: nothing applied, no garbage */
    deadline = swc_now_mono() + 500 * SWC_NS_PER_MS;
    while (swc_now_mono() < deadline) {
        uv_run(&c.loop, UV_RUN_ONCE);
    }
    assert_int_equal(swc_raft_applied_index(c.n[f].r), sealed_index - 1);
    assert_int_equal(c.n[f].count, 0);
    th_cluster_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_propose_enomem),
        cmocka_unit_test(test_init_enomem),
        cmocka_unit_test(test_wrong_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
