/* Raft adapter: elections, replication order, group commit, follower
 * refusal, membership and the quorum guard, sealed entries.
 * In-process nodes on 127.0.0.1 sharing one uv loop (see test_raft_harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>

#include "test_raft_harness.h"

static void check_election(int size)
{
    struct th_cluster c;
    th_cluster_init(&c, size);
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);
    /* exactly one leader, everyone agrees on it, the event fired once */
    int leaders = 0;
    for (int i = 0; i < size; i++) {
        if (swc_raft_is_leader(c.n[i].r)) {
            leaders++;
        }
    }
    assert_int_equal(leaders, 1);
    assert_int_equal(c.n[l].lead_up, 1);
    for (int i = 0; i < size; i++) {
        uint64_t id = 0;
        char addr[SWC_RAFT_ADDR_MAX];
        /* followers learn the leader with the next heartbeat */
        int64_t deadline = swc_now_mono() + 3 * SWC_NS_PER_SEC;
        while (swc_raft_leader(c.n[i].r, &id, addr) != 0 && swc_now_mono() < deadline) {
            uv_run(&c.loop, UV_RUN_ONCE);
        }
        assert_int_equal(id, c.n[l].id);
        assert_string_equal(addr, c.n[l].addr);
    }
    struct swc_raft_member *m;
    size_t nm;
    assert_int_equal(swc_raft_members(c.n[l].r, &m, &nm), 0);
    assert_int_equal(nm, (size_t)size);
    for (size_t i = 0; i < nm; i++) {
        assert_true(m[i].voter);
        assert_int_equal(m[i].leader, m[i].id == c.n[l].id);
    }
    swc_free(m);
    th_cluster_close(&c);
}

static void test_election_1(void **state)
{
    check_election(1);
}
static void test_election_3(void **state)
{
    check_election(3);
}
static void test_election_5(void **state)
{
    check_election(5);
}

/* Proposals over many turns apply on every node in the same order with the
 * same results, and the proposer sees those results. */
static void test_replication_order(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 3);
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);
    struct th_props p;
    memset(&p, 0, sizeof p);
    p.rhash = c.n[l].rhash;
    for (int turn = 0; turn < 30; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 1 + turn % 7, 64 + turn), 0);
        uv_run(&c.loop, UV_RUN_NOWAIT);
    }
    assert_true(th_run_until(&c, th_cond_props, &p, 10000));
    fprintf(stderr, "ok %d lost %d closed %d other %d\n", p.ok, p.lost, p.closed, p.other);
    assert_int_equal(p.ok, p.sent);
    assert_true(th_wait_converged(&c, l, 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.n[i].count, (uint64_t)p.sent);
        assert_int_equal(c.n[i].hash, c.n[l].hash);
        assert_int_equal(c.n[i].rhash, c.n[l].rhash);
    }
    assert_int_equal(p.rhash, c.n[l].rhash);
    th_cluster_close(&c);
}

/* 1,000 proposals in one turn become one raft entry; big ones split before
 * 1.5 MiB and still apply in order. */
static void test_group_commit(void **state)
{
    struct th_cluster c;
    struct swc_raft_stats s0, s1;
    th_cluster_init(&c, 3);
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);
    struct th_props p;
    memset(&p, 0, sizeof p);
    p.rhash = c.n[l].rhash;
    swc_raft_stats(c.n[l].r, &s0);
    assert_int_equal(th_propose_burst(&c, l, &p, 1000, 256), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 10000));
    swc_raft_stats(c.n[l].r, &s1);
    assert_int_equal(p.ok, 1000);
    assert_int_equal(s1.entries_proposed - s0.entries_proposed, 1);
    assert_int_equal(s1.proposals_proposed - s0.proposals_proposed, 1000);

    /* 8 x 400 KiB = 3.2 MiB: at least 3 entries, none above the limit */
    s0 = s1;
    assert_int_equal(th_propose_burst(&c, l, &p, 8, 400 * 1024), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 20000));
    swc_raft_stats(c.n[l].r, &s1);
    assert_int_equal(p.ok, 1008);
    assert_int_equal(s1.entries_proposed - s0.entries_proposed, 3);
    /* too big for one entry: refused up front */
    uint8_t *big = swc_calloc(1, SWC_RAFT_MAX_PROPOSAL + 1);
    assert_int_equal(swc_raft_propose(c.n[l].r, big, SWC_RAFT_MAX_PROPOSAL + 1, th_prop_cb, &p),
                     SWC_ETOOBIG);
    swc_free(big);
    assert_true(th_wait_converged(&c, l, 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.n[i].count, 1008);
        assert_int_equal(c.n[i].hash, c.n[l].hash);
    }
    assert_int_equal(p.rhash, c.n[l].rhash);
    th_cluster_close(&c);
}

/* A follower refuses proposals and names the leader. */
static void test_follower_not_leader(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 3);
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);
    int f = (l + 1) % 3;
    struct th_props p;
    memset(&p, 0, sizeof p);
    assert_int_equal(swc_raft_propose(c.n[f].r, "x", 1, th_prop_cb, &p), SWC_ENOTLEADER);
    uint64_t id = 0;
    char addr[SWC_RAFT_ADDR_MAX];
    assert_int_equal(swc_raft_leader(c.n[f].r, &id, addr), 0);
    assert_int_equal(id, c.n[l].id);
    assert_string_equal(addr, c.n[l].addr);
    /* membership changes also need the leader */
    assert_int_equal(swc_raft_remove(c.n[f].r, c.n[l].id, NULL, NULL), SWC_ENOTLEADER);
    uv_run(&c.loop, UV_RUN_NOWAIT);
    assert_int_equal(p.done, 0); /* refused: no callback */
    th_cluster_close(&c);
}

struct unreach_arg {
    int leader;
    uint64_t id;
};

static bool cond_unreachable(struct th_cluster *c, void *arg)
{
    struct unreach_arg *a = arg;
    struct swc_raft_member *m;
    size_t n;
    bool gone = false;
    if (swc_raft_members(c->n[a->leader].r, &m, &n) != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (m[i].id == a->id && !m[i].reachable) {
            gone = true;
        }
    }
    swc_free(m);
    return gone;
}

/* Removing a live voter while another is down would lose quorum: refused.
 * Removing the dead one is fine; its id can never come back. */
static void test_remove_quorum(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 3);
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);
    int live = (l + 1) % 3, dead = (l + 2) % 3;
    assert_true(th_stop(&c, dead));
    struct unreach_arg ua = {l, c.n[dead].id};
    assert_true(th_run_until(&c, cond_unreachable, &ua, 5000));
    assert_int_equal(th_leader(&c), l);

    assert_int_equal(swc_raft_remove(c.n[l].r, c.n[live].id, NULL, NULL), SWC_EQUORUM);
    assert_non_null(strstr(swc_raft_errmsg(c.n[l].r), "quorum"));
    assert_int_equal(swc_raft_remove(c.n[l].r, 99, NULL, NULL), SWC_ENOENT);

    struct th_change ch = {false, 0};
    assert_int_equal(swc_raft_remove(c.n[l].r, c.n[dead].id, th_change_cb, &ch), 0);
    assert_int_equal(swc_raft_remove(c.n[l].r, c.n[live].id, NULL, NULL), SWC_EBUSY);
    assert_true(th_run_until(&c, th_cond_change, &ch, 5000));
    assert_int_equal(ch.status, 0);
    struct swc_raft_member *m;
    size_t nm;
    assert_int_equal(swc_raft_members(c.n[l].r, &m, &nm), 0);
    assert_int_equal(nm, 2);
    swc_free(m);
    /* the removed id is never reused, on any manager */
    assert_true(th_wait_converged(&c, l, 5000));
    assert_int_equal(swc_raft_add(c.n[l].r, c.n[dead].id, "127.0.0.1:1", NULL, NULL), SWC_EINVAL);
    /* an existing member cannot be added again */
    assert_int_equal(swc_raft_add(c.n[l].r, c.n[live].id, "127.0.0.1:2", NULL, NULL), SWC_EEXIST);
    th_cluster_close(&c);
}

/* The leader removes itself (demoting the leader): it steps down once the
 * change commits and the two others elect a new leader. */
static void test_remove_self_leader(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 3);
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);
    struct th_change ch = {false, 0};
    assert_int_equal(swc_raft_remove(c.n[l].r, c.n[l].id, th_change_cb, &ch), 0);
    assert_true(th_run_until(&c, th_cond_change, &ch, 5000));
    assert_int_equal(ch.status, 0);
    c.n[l].ready_leader = false;
    int nl = -1;
    int64_t deadline = swc_now_mono() + 10 * SWC_NS_PER_SEC;
    while (swc_now_mono() < deadline) {
        nl = th_leader(&c);
        if (nl >= 0 && nl != l) {
            break;
        }
        uv_run(&c.loop, UV_RUN_ONCE);
    }
    assert_true(nl >= 0 && nl != l);
    assert_int_equal(c.n[l].lead_down, 1);
    struct swc_raft_member *m;
    size_t nm;
    assert_int_equal(swc_raft_members(c.n[nl].r, &m, &nm), 0);
    assert_int_equal(nm, 2);
    for (size_t i = 0; i < nm; i++) {
        assert_true(m[i].id != c.n[l].id);
    }
    swc_free(m);
    th_cluster_close(&c);
}

/* The only voter cannot remove itself. */
static void test_remove_last_voter(void **state)
{
    struct th_cluster c;
    th_cluster_init(&c, 1);
    assert_int_equal(th_form(&c), 0);
    assert_int_equal(swc_raft_remove(c.n[0].r, c.n[0].id, NULL, NULL), SWC_EQUORUM);
    assert_true(swc_raft_is_leader(c.n[0].r));
    th_cluster_close(&c);
}

static bool file_contains(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;
    if (d == NULL) {
        return false;
    }
    while (!found && (e = readdir(d)) != NULL) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            continue;
        }
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        size_t nl = strlen(needle);
        for (size_t i = 0; n >= nl && i + nl <= n; i++) {
            if (memcmp(buf + i, needle, nl) == 0) {
                found = true;
                break;
            }
        }
    }
    closedir(d);
    return found;
}

static void propose_marker(struct th_cluster *c, int l, struct th_props *p)
{
    const char *msg = "PLAINTEXT-MARKER-7d1f";
    assert_int_equal(swc_raft_propose(c->n[l].r, msg, strlen(msg), th_prop_cb, p), 0);
    p->sent++;
    assert_true(th_run_until(c, th_cond_props, p, 5000));
    assert_true(th_wait_converged(c, l, 5000));
}

/* With a data key, payloads never reach the disk in clear; without one they
 * do (so the first check would notice sealing being dropped). */
static void test_sealed_entries(void **state)
{
    static const uint8_t key[SWC_RAFT_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct th_cluster c;
    struct th_props p;
    char dir[300];

    th_cluster_init(&c, 3);
    c.key = key;
    assert_int_equal(th_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    memset(&p, 0, sizeof p);
    propose_marker(&c, l, &p);
    assert_int_equal(p.ok, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.n[i].hash, c.n[l].hash);
        snprintf(dir, sizeof dir, "%s/raft", c.n[i].dir);
        assert_false(file_contains(dir, "PLAINTEXT-MARKER"));
    }
    th_cluster_close(&c);

    th_cluster_init(&c, 1);
    assert_int_equal(th_form(&c), 0);
    memset(&p, 0, sizeof p);
    propose_marker(&c, 0, &p);
    snprintf(dir, sizeof dir, "%s/raft", c.n[0].dir);
    assert_true(file_contains(dir, "PLAINTEXT-MARKER"));
    th_cluster_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_election_1),        cmocka_unit_test(test_election_3),
        cmocka_unit_test(test_election_5),        cmocka_unit_test(test_replication_order),
        cmocka_unit_test(test_group_commit),      cmocka_unit_test(test_follower_not_leader),
        cmocka_unit_test(test_remove_quorum),     cmocka_unit_test(test_remove_self_leader),
        cmocka_unit_test(test_remove_last_voter), cmocka_unit_test(test_sealed_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
