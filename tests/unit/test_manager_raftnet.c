/* Raft over raftnet: three raft adapters on one loop talk through secure
 * tunnels on 127.0.0.1 with real manager certificates from one CA. The
 * cluster forms, elects, replicates 1,000 proposals, catches a stopped
 * follower that lost its disk up by a multi-MiB snapshot (the relay's backpressure path) and
 * fails over when the leader closes. A permissive listener shows that
 * raftnet itself refuses worker certificates and malformed HELLOs, and a
 * binding table (node id <-> raft id, as manager.c reads it from the store)
 * shows that a manager certificate claiming another manager's raft id is
 * refused inbound and that a server with the wrong certificate is dropped
 * outbound until the record is right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "manager/raftnet.h"
#include "net/cert.h"
#include "net/tunnel.h"
#include "test_raft_harness.h"
#include "test_net_util.h"

static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];

struct rn_node {
    struct swc_identity id;
    struct swc_raftnet *rn;
    bool rn_closed;
};
static struct rn_node rnn[TH_MAX];

static void make_identity(struct swc_identity *id, const char *node, int role)
{
    swc_test_identity(id, node, role, "cl1", swc_now_wall() + 3600 * SWC_NS_PER_SEC, ca_sk);
}

static void cfg_for(struct swc_secchan_config *c, const struct swc_identity *id, bool client,
                    int role)
{
    memset(c, 0, sizeof *c);
    c->is_client = client;
    c->self = id;
    memcpy(c->ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    c->required_peer_role = role;
    snprintf(c->cluster_id, sizeof c->cluster_id, "cl1");
}

/* Start node i over raftnet (its server accepts peers of server_role). */
static int rn_start(struct th_cluster *c, int i, bool bootstrap, int server_role)
{
    struct th_node *n = &c->n[i];
    struct swc_secchan_config ccfg, scfg;
    cfg_for(&ccfg, &rnn[i].id, true, SWC_ROLE_MANAGER);
    cfg_for(&scfg, &rnn[i].id, false, server_role);
    int rv = swc_raftnet_init(&c->loop, n->addr, &ccfg, &scfg, &rnn[i].rn);
    if (rv != 0) {
        return rv;
    }
    rnn[i].rn_closed = false;
    struct swc_raft_config cfg;
    struct swc_err err;
    memset(&cfg, 0, sizeof cfg);
    cfg.state_dir = n->dir;
    cfg.id = n->id;
    cfg.address = n->addr;
    cfg.snapshot_threshold = c->snap_threshold;
    cfg.snapshot_trailing = c->snap_trailing;
    cfg.install_snapshot_timeout_ms = 1000;
    cfg.transport = swc_raftnet_transport(rnn[i].rn);
    cfg.fsm.data = n;
    cfg.fsm.apply = th_apply;
    cfg.fsm.snapshot = th_snapshot;
    cfg.fsm.restore = th_restore;
    cfg.on_leader = th_on_leader;
    cfg.cb_data = n;
    n->hash = n->rhash = 14695981039346656037ULL;
    n->count = n->last_index = 0;
    n->ready_leader = false;
    if ((rv = swc_raft_init(&c->loop, &cfg, &n->r, &err)) != 0) {
        fprintf(stderr, "init: %s\n", swc_err_msg(&err));
        return rv;
    }
    swc_raftnet_bind(rnn[i].rn, n->r);
    if (bootstrap && (rv = swc_raft_bootstrap(n->r)) != 0) {
        return rv;
    }
    if ((rv = swc_raft_start(n->r)) == 0) {
        n->running = true;
        n->closed = false;
    }
    return rv;
}

static void rn_closed_cb(void *data)
{
    ((struct rn_node *)data)->rn_closed = true;
}

/* The raft close callback closes raftnet at once, as manager.c should. */
static void raft_closed_cb(void *data)
{
    struct th_node *n = data;
    n->closed = true;
    swc_raftnet_close(rnn[n->idx].rn, rn_closed_cb, &rnn[n->idx]);
}

static bool cond_rn_closed(struct th_cluster *c, void *arg)
{
    struct th_node *n = arg;
    return n->closed && rnn[n->idx].rn_closed;
}

static bool rn_stop(struct th_cluster *c, int i)
{
    struct th_node *n = &c->n[i];
    if (!n->running) {
        return true;
    }
    n->running = false;
    swc_raft_close(n->r, raft_closed_cb, n);
    bool ok = th_run_until(c, cond_rn_closed, n, 10000);
    n->r = NULL;
    rnn[i].rn = NULL;
    return ok;
}

static void rn_cluster_close(struct th_cluster *c)
{
    for (int i = 0; i < c->size; i++) {
        assert_true(rn_stop(c, i));
    }
    th_cluster_close(c); /* runs the loop dry, checks handles and leaks */
}

static int rn_form(struct th_cluster *c)
{
    if (rn_start(c, 0, true, SWC_ROLE_MANAGER) != 0 || th_wait_leader(c, 5000) != 0) {
        return -1;
    }
    for (int i = 1; i < c->size; i++) {
        if (rn_start(c, i, false, SWC_ROLE_MANAGER) != 0) {
            return -1;
        }
        struct th_change ch = {false, 0};
        int l = th_leader(c);
        if (l < 0 || swc_raft_add(c->n[l].r, c->n[i].id, c->n[i].addr, th_change_cb, &ch) != 0) {
            return -1;
        }
        if (!th_run_until(c, th_cond_change, &ch, 10000) || ch.status != 0) {
            fprintf(stderr, "add %d: %d\n", i, ch.status);
            return -1;
        }
    }
    return 0;
}

static void test_cluster(void **state)
{
    struct th_cluster c;
    struct th_props p;
    struct swc_raft_stats st;
    th_cluster_init(&c, 3);
    c.snap_threshold = 64;
    c.snap_trailing = 16;
    assert_int_equal(rn_form(&c), 0);
    int l = th_wait_leader(&c, 5000);
    assert_true(l >= 0);

    /* 1,000 proposals, ten per loop turn */
    memset(&p, 0, sizeof p);
    p.rhash = c.n[l].rhash;
    int64_t t0 = swc_now_mono();
    for (int turn = 0; turn < 100; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 10, 256), 0);
        uv_run(&c.loop, UV_RUN_NOWAIT);
    }
    assert_true(th_run_until(&c, th_cond_props, &p, 20000));
    int64_t dt = swc_now_mono() - t0;
    assert_int_equal(p.ok, 1000);
    assert_true(th_wait_converged(&c, l, 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.n[i].hash, c.n[l].hash);
        assert_int_equal(c.n[i].count, c.n[l].count);
    }
    fprintf(stderr, "1,000 proposals over raftnet in %.1f ms\n", (double)dt / 1e6);
    struct swc_raftnet_stats rs;
    swc_raftnet_stats(rnn[l].rn, &rs);
    assert_true(rs.connects >= 2);

    /* a follower misses many entries and catches up by a 6 MiB snapshot */
    int f = (l + 1) % 3;
    assert_true(rn_stop(&c, f));
    for (int i = 0; i < 3; i++) {
        c.n[i].snap_pad = 6u * 1024 * 1024;
    }
    for (int turn = 0; turn < 100; turn++) {
        assert_int_equal(th_propose_burst(&c, l, &p, 2, 101), 0);
        assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    }
    /* its disk is lost too, so only an installed snapshot can restore it */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", c.n[f].dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rn_start(&c, f, false, SWC_ROLE_MANAGER), 0);
    assert_true(th_wait_converged(&c, l, 20000));
    swc_raft_stats(c.n[f].r, &st);
    assert_true(st.snapshots_restored >= 1);
    assert_int_equal(c.n[f].hash, c.n[l].hash);

    /* the leader closes: another takes over and commits */
    assert_true(rn_stop(&c, l));
    int nl = th_wait_leader(&c, 10000);
    assert_true(nl >= 0 && nl != l);
    memset(&p, 0, sizeof p);
    assert_int_equal(th_propose_burst(&c, nl, &p, 5, 64), 0);
    assert_true(th_run_until(&c, th_cond_props, &p, 5000));
    assert_int_equal(p.ok, 5);
    rn_cluster_close(&c);
}

/* ---- refusals on a listener that lets any certificate through the handshake -- */

struct probe {
    int connects, status, closes;
};

static void probe_connect_cb(struct swc_tunnel *t, int status, void *data)
{
    struct probe *p = data;
    p->connects++;
    p->status = status;
}

static void probe_closed_cb(void *data)
{
    ((struct probe *)data)->closes++;
}

static bool cond_probe(struct th_cluster *c, void *arg)
{
    return ((struct probe *)arg)->connects == 1;
}

static bool cond_probe_closed(struct th_cluster *c, void *arg)
{
    return ((struct probe *)arg)->closes == 1;
}

/* Dial node 0 with id and hello; the connect status. */
static int probe(struct th_cluster *c, const struct swc_identity *id, const uint8_t *hello,
                 size_t len)
{
    struct swc_secchan_config ccfg;
    struct swc_tunnel *t;
    struct probe p = {0, -1, 0};
    cfg_for(&ccfg, id, true, SWC_ROLE_MANAGER);
    assert_int_equal(
        swc_tunnel_connect(&c->loop, c->n[0].addr, &ccfg, hello, len, probe_connect_cb, &p, &t), 0);
    assert_true(th_run_until(c, cond_probe, &p, 5000));
    swc_tunnel_close(t, probe_closed_cb, &p);
    assert_true(th_run_until(c, cond_probe_closed, &p, 5000));
    return p.status;
}

static void test_refusals(void **state)
{
    struct th_cluster c;
    struct swc_identity worker;
    make_identity(&worker, "wrk-9", SWC_ROLE_WORKER);
    th_cluster_init(&c, 1);
    assert_int_equal(rn_start(&c, 0, true, -1), 0);
    assert_int_equal(th_wait_leader(&c, 5000), 0);

    uint8_t good[64];
    const char *addr = "127.0.0.1:1";
    good[0] = SWC_RAFTNET_HELLO_VERSION;
    swc_put_u64(good + 1, 7);
    good[9] = 0;
    good[10] = (uint8_t)strlen(addr);
    memcpy(good + 11, addr, strlen(addr));
    size_t glen = 11 + strlen(addr);
    struct swc_raftnet_stats rs;

    /* a manager with a well-formed hello is handed to raft */
    assert_int_equal(probe(&c, &rnn[1].id, good, glen), 0);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.accepts, 1);
    assert_int_equal(rs.refused, 0);

    /* a worker certificate with the same hello is refused by raftnet */
    assert_int_equal(probe(&c, &worker, good, glen), SWC_EUNAVAIL);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.refused, 1);

    /* malformed hellos: truncated, wrong length, id 0, bad version */
    uint8_t bad[64];
    memcpy(bad, good, glen);
    assert_int_equal(probe(&c, &rnn[1].id, bad, 5), SWC_EUNAVAIL);
    assert_int_equal(probe(&c, &rnn[1].id, bad, glen - 1), SWC_EUNAVAIL);
    swc_put_u64(bad + 1, 0);
    assert_int_equal(probe(&c, &rnn[1].id, bad, glen), SWC_EUNAVAIL);
    memcpy(bad, good, glen);
    bad[0] = 9;
    assert_int_equal(probe(&c, &rnn[1].id, bad, glen), SWC_EUNAVAIL);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.refused, 5);
    assert_int_equal(rs.accepts, 1);
    rn_cluster_close(&c);
}

/* ---- binding raft ids to certificates ------------------------------------------ */

struct bind_row {
    const char *node;
    uint64_t raft_id;
};
static struct bind_row table[4];

static int tbl_raft_id_of(void *data, const char *node_id, uint64_t *raft_id)
{
    (void)data;
    for (size_t i = 0; i < 4; i++) {
        if (table[i].node != NULL && strcmp(table[i].node, node_id) == 0) {
            *raft_id = table[i].raft_id;
            return 0;
        }
    }
    return SWC_ENOENT;
}

static int tbl_node_of(void *data, uint64_t raft_id, char *node_id, size_t size)
{
    (void)data;
    for (size_t i = 0; i < 4; i++) {
        if (table[i].node != NULL && table[i].raft_id == raft_id) {
            snprintf(node_id, size, "%s", table[i].node);
            return 0;
        }
    }
    return SWC_ENOENT;
}

static const struct swc_raftnet_binding tbl_binding = {tbl_raft_id_of, tbl_node_of, NULL};

static size_t hello_for(uint8_t *out, uint64_t raft_id)
{
    const char *addr = "127.0.0.1:1";
    out[0] = SWC_RAFTNET_HELLO_VERSION;
    swc_put_u64(out + 1, raft_id);
    out[9] = 0;
    out[10] = (uint8_t)strlen(addr);
    memcpy(out + 11, addr, strlen(addr));
    return 11 + strlen(addr);
}

static void test_binding_inbound(void **state)
{
    struct th_cluster c;
    struct swc_identity stranger;
    struct swc_raftnet_stats rs;
    uint8_t h[64];
    size_t hl;
    make_identity(&stranger, "mgr-new", SWC_ROLE_MANAGER);
    memset(table, 0, sizeof table);
    table[0] = (struct bind_row){"mgr-1", 1};
    table[1] = (struct bind_row){"mgr-2", 2};
    table[2] = (struct bind_row){"mgr-3", 3};
    th_cluster_init(&c, 1);
    assert_int_equal(rn_start(&c, 0, true, SWC_ROLE_MANAGER), 0);
    swc_raftnet_set_binding(rnn[0].rn, &tbl_binding);
    assert_int_equal(th_wait_leader(&c, 5000), 0);

    /* mgr-3's valid manager certificate claiming mgr-2's raft id: refused,
     * raft never gets the stream */
    hl = hello_for(h, 2);
    assert_int_equal(probe(&c, &rnn[2].id, h, hl), SWC_EUNAVAIL);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.refused, 1);
    assert_int_equal(rs.accepts, 0);

    /* mgr-2 with its own raft id: accepted */
    assert_int_equal(probe(&c, &rnn[1].id, h, hl), 0);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.refused, 1);
    assert_int_equal(rs.accepts, 1);

    /* a node nothing is recorded for cannot take a recorded raft id ... */
    assert_int_equal(probe(&c, &stranger, h, hl), SWC_EUNAVAIL);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.refused, 2);
    /* ... but passes with an unrecorded one (a join still being committed) */
    hl = hello_for(h, 99);
    assert_int_equal(probe(&c, &stranger, h, hl), 0);
    /* and a recorded node cannot use an unrecorded id either */
    assert_int_equal(probe(&c, &rnn[2].id, h, hl), SWC_EUNAVAIL);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.refused, 3);
    assert_int_equal(rs.accepts, 2);

    /* without a binding, the claim is not checked (as before) */
    swc_raftnet_set_binding(rnn[0].rn, NULL);
    hl = hello_for(h, 2);
    assert_int_equal(probe(&c, &rnn[2].id, h, hl), 0);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.refused, 3);
    assert_int_equal(rs.accepts, 3);
    rn_cluster_close(&c);
}

static bool cond_dropped(struct th_cluster *c, void *arg)
{
    struct swc_raftnet_stats rs;
    (void)arg;
    swc_raftnet_stats(rnn[0].rn, &rs);
    return rs.dropped >= 1;
}

static void test_binding_outbound(void **state)
{
    struct th_cluster c;
    struct swc_raftnet_stats rs;
    memset(table, 0, sizeof table);
    table[0] = (struct bind_row){"mgr-1", 1};
    table[1] = (struct bind_row){"mgr-3", 2}; /* wrong: raft id 2 is mgr-2 */
    th_cluster_init(&c, 2);
    assert_int_equal(rn_start(&c, 0, true, SWC_ROLE_MANAGER), 0);
    swc_raftnet_set_binding(rnn[0].rn, &tbl_binding);
    assert_int_equal(th_wait_leader(&c, 5000), 0);
    assert_int_equal(rn_start(&c, 1, false, SWC_ROLE_MANAGER), 0);
    struct th_change ch = {false, 0};
    assert_int_equal(swc_raft_add(c.n[0].r, 2, c.n[1].addr, th_change_cb, &ch), 0);

    /* the leader dials raft id 2 and finds mgr-2's certificate: dropped */
    assert_true(th_run_until(&c, cond_dropped, NULL, 10000));
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_int_equal(rs.connects, 0);

    /* once the record is right, raft's own retries get through */
    table[1].node = "mgr-2";
    assert_true(th_run_until(&c, th_cond_change, &ch, 10000));
    assert_int_equal(ch.status, 0);
    swc_raftnet_stats(rnn[0].rn, &rs);
    assert_true(rs.connects >= 1);
    rn_cluster_close(&c);
}

int main(void)
{
    swc_keypair_new(ca_pk, ca_sk);
    for (int i = 0; i < TH_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "mgr-%d", i + 1);
        make_identity(&rnn[i].id, name, SWC_ROLE_MANAGER);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_binding_inbound),
        cmocka_unit_test(test_binding_outbound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
