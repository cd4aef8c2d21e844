/* Raft adapter benchmark: durable group-commit throughput, single-proposal
 * latency and failover time.
 *
 * Throughput and latency run 1 and 3 nodes in this process (one loop, so
 * the 3-node figures share one core). Failover forks 3 node processes on
 * 127.0.0.1, kill -9s the leader and times until the new leader commits its
 * first write (every node proposes one write when it becomes leader and
 * reports the commit time, CLOCK_MONOTONIC, over a pipe). Prints figures;
 * asserts nothing. Usage: bench_raft [runs] (default 5; failover uses 20). */
#include "../tests/unit/test_raft_harness.h"

#include "base/log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>

static void run_inprocess(int runs);
static void run_logmem(int runs);
static void run_forked_throughput(int runs);
static double pct(double *v, int n, double p);

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static void print_stats(const char *what, const char *unit, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    printf("%-44s median %10.1f  min %10.1f  max %10.1f %s (%d runs)\n", what, v[n / 2], v[0],
           v[n - 1], unit, n);
}

/* Objects/s for total proposals of 256 bytes in batches of 1,000. */
static double run_throughput(int nodes, int total)
{
    struct th_cluster c;
    struct th_props p;
    th_cluster_init(&c, nodes);
    if (th_form(&c) != 0) {
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
    th_cluster_close(&c);
    return total / secs;
}

/* Latency of one proposal in flight at a time, in microseconds. */
static void run_latency(int nodes, int count, double *p50, double *p99)
{
    struct th_cluster c;
    struct th_props p;
    double *lat = malloc(sizeof(double) * (size_t)count);
    th_cluster_init(&c, nodes);
    if (th_form(&c) != 0) {
        exit(1);
    }
    int l = th_wait_leader(&c, 5000);
    memset(&p, 0, sizeof p);
    for (int i = 0; i < count; i++) {
        int64_t t0 = swc_now_mono();
        th_propose_burst(&c, l, &p, 1, 256);
        th_run_until(&c, th_cond_props, &p, 10000);
        lat[i] = (double)(swc_now_mono() - t0) / SWC_NS_PER_US;
    }
    *p50 = pct(lat, count, 0.5);
    *p99 = pct(lat, count, 0.99);
    free(lat);
    th_cluster_close(&c);
}

/* --- failover with forked nodes ------------------------------------------- */

struct child {
    struct th_cluster *c;
    int idx;
    int fd; /* write end to the parent */
    struct th_props p;
    bool added;
    bool formed;
    bool reported_follower;
    int adds_pending;
    uv_timer_t timer;
};

static struct child ch;

/* Forked nodes turn early election off (the A/B line of the failover). */
static bool fo_early_off;

/* Measurement mode of a forked leader (node 0 once formed): 1 = throughput
 * then latency, reported over the pipe as "T <obj/s>" and "P <p50 us> <p99 us>". */
static int child_mode;
static uv_check_t bench_check;
static int b_sent, b_done, b_lat_i;
static int64_t b_t0, b_lat_t0;
static double b_lat[2000];
#define B_TOTAL 100000
#define B_LAT   1000

static void bench_lat_cb(void *data, int result);

static void bench_lat_next(void)
{
    struct th_node *n = &ch.c->n[ch.idx];
    b_lat_t0 = swc_now_mono();
    static uint8_t payload[256];
    if (swc_raft_propose(n->r, payload, sizeof payload, bench_lat_cb, NULL) != 0) {
        _exit(4);
    }
}

static void bench_lat_cb(void *data, int result)
{
    b_lat[b_lat_i++] = (double)(swc_now_mono() - b_lat_t0) / SWC_NS_PER_US;
    if (b_lat_i < B_LAT) {
        bench_lat_next();
        return;
    }
    char msg[96];
    int len =
        snprintf(msg, sizeof msg, "P %.1f %.1f\n", pct(b_lat, B_LAT, 0.5), pct(b_lat, B_LAT, 0.99));
    if (write(ch.fd, msg, (size_t)len) != len) {
        _exit(3);
    }
}

static void bench_tp_cb(void *data, int result)
{
    b_done++;
    if (b_done == B_TOTAL) {
        double secs = (double)(swc_now_mono() - b_t0) / SWC_NS_PER_SEC;
        char msg[64];
        int len = snprintf(msg, sizeof msg, "T %.1f\n", B_TOTAL / secs);
        if (write(ch.fd, msg, (size_t)len) != len) {
            _exit(3);
        }
        uv_check_stop(&bench_check);
        bench_lat_next();
    }
}

/* Each loop turn: keep about three batches of 1,000 in flight. */
static void bench_check_cb(uv_check_t *h)
{
    struct th_node *n = &ch.c->n[ch.idx];
    static uint8_t payload[256];
    while (b_sent < B_TOTAL && b_sent - b_done < 3000) {
        for (int k = 0; k < 1000; k++) {
            if (swc_raft_propose(n->r, payload, sizeof payload, bench_tp_cb, NULL) != 0) {
                _exit(4);
            }
        }
        b_sent += 1000;
    }
}

static void child_send(char kind, int64_t t)
{
    char msg[64];
    int n = snprintf(msg, sizeof msg, "%c %d %lld\n", kind, ch.idx, (long long)t);
    if (write(ch.fd, msg, (size_t)n) != n) {
        _exit(3);
    }
}

static void child_commit_cb(void *data, int result)
{
    if (result >= 1000) {
        child_send('L', swc_now_mono());
    }
}

static void child_added_cb(void *data, int status)
{
    ch.adds_pending--;
}

static void child_on_leader(struct swc_raft *r, bool leader, void *data)
{
    th_on_leader(r, leader, data);
    if (!leader) {
        return;
    }
    struct th_node *n = data;
    /* first leadership of node 0 in a fresh cluster: add the others */
    if (n->idx == 0 && !ch.added) {
        ch.added = true;
        return; /* the timer adds them one at a time */
    }
    swc_raft_propose(r, "first write after failover", 26, child_commit_cb, NULL);
}

static void child_timer_cb(uv_timer_t *t)
{
    struct th_node *n = &ch.c->n[ch.idx];
    if (ch.idx == 0 && ch.added && !ch.formed && ch.adds_pending == 0 && swc_raft_is_leader(n->r)) {
        /* add node 1 then node 2, then report as leader */
        struct swc_raft_member *m;
        size_t nm;
        if (swc_raft_members(n->r, &m, &nm) == 0) {
            if (nm < 3) {
                int next = (int)nm;
                ch.adds_pending = 1;
                if (swc_raft_add(n->r, ch.c->n[next].id, ch.c->n[next].addr, child_added_cb,
                                 NULL) != 0) {
                    ch.adds_pending = 0;
                }
            } else {
                ch.formed = true;
                if (child_mode == 1) {
                    b_t0 = swc_now_mono();
                    uv_check_init(&ch.c->loop, &bench_check);
                    uv_check_start(&bench_check, bench_check_cb);
                } else {
                    swc_raft_propose(n->r, "formed", 6, child_commit_cb, NULL);
                }
            }
            swc_free(m);
        }
    }
    uint64_t lid;
    if (!ch.reported_follower && !swc_raft_is_leader(n->r) &&
        swc_raft_leader(n->r, &lid, NULL) == 0 && swc_raft_applied_index(n->r) > 0) {
        ch.reported_follower = true;
        child_send('F', swc_now_mono());
    }
}

static void child_main(struct th_cluster *c, int idx, bool bootstrap, int fd)
{
    struct th_node *n = &c->n[idx];
    struct swc_raft_config cfg;
    struct swc_err err;
    uv_loop_init(&c->loop);
    memset(&ch, 0, sizeof ch);
    ch.c = c;
    ch.idx = idx;
    ch.fd = fd;
    ch.added = !bootstrap;
    ch.formed = !bootstrap;
    memset(&cfg, 0, sizeof cfg);
    cfg.state_dir = n->dir;
    cfg.id = n->id;
    cfg.address = n->addr;
    cfg.fsm.data = n;
    cfg.fsm.apply = th_apply;
    cfg.fsm.snapshot = th_snapshot;
    cfg.fsm.restore = th_restore;
    cfg.on_leader = child_on_leader;
    cfg.cb_data = n;
    cfg.early_election_off = fo_early_off;
    if (swc_raft_init(&c->loop, &cfg, &n->r, &err) != 0 ||
        (bootstrap && swc_raft_bootstrap(n->r) != 0) || swc_raft_start(n->r) != 0) {
        _exit(2);
    }
    uv_timer_init(&c->loop, &ch.timer);
    uv_timer_start(&ch.timer, child_timer_cb, 10, 10);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    _exit(0);
}

static pid_t spawn(struct th_cluster *c, int idx, bool bootstrap, int fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        child_main(c, idx, bootstrap, fd);
    }
    return pid;
}

/* Read one message "K idx t" from fd within ms; false on timeout. */
static bool read_msg(FILE *f, int fd, char *kind, int *idx, long long *t, int ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    char line[128];
    if (poll(&pfd, 1, ms) <= 0) {
        return false;
    }
    if (fgets(line, sizeof line, f) == NULL) {
        return false;
    }
    return sscanf(line, "%c %d %lld", kind, idx, t) == 3;
}

/* 3 forked nodes; node 0 (the leader) measures throughput then latency. */
static void run_forked_throughput(int runs)
{
    double tp[32], p50[32], p99[32];
    int done = 0;
    for (int run = 0; run < runs; run++) {
        struct th_cluster c;
        pid_t pids[3];
        int pfd[2];
        th_cluster_init(&c, 3);
        uv_close((uv_handle_t *)&c.tick, NULL);
        uv_run(&c.loop, UV_RUN_DEFAULT);
        uv_loop_close(&c.loop);
        if (pipe(pfd) != 0) {
            exit(1);
        }
        FILE *rf = fdopen(pfd[0], "r");
        setvbuf(rf, NULL, _IONBF, 0);
        child_mode = 1;
        for (int i = 0; i < 3; i++) {
            pids[i] = spawn(&c, i, i == 0, pfd[1]);
        }
        child_mode = 0;
        char line[128];
        bool got_t = false, got_p = false;
        struct pollfd pf = {pfd[0], POLLIN, 0};
        while (!(got_t && got_p) && poll(&pf, 1, 60000) > 0 && fgets(line, sizeof line, rf)) {
            if (line[0] == 'T' && sscanf(line, "T %lf", &tp[done]) == 1) {
                got_t = true;
            } else if (line[0] == 'P' && sscanf(line, "P %lf %lf", &p50[done], &p99[done]) == 2) {
                got_p = true;
            }
        }
        for (int i = 0; i < 3; i++) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
        fclose(rf);
        close(pfd[1]);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", c.base);
        if (system(cmd) != 0) {
            fprintf(stderr, "cleanup failed\n");
        }
        if (got_t && got_p) {
            done++;
        } else {
            fprintf(stderr, "forked run %d incomplete\n", run);
        }
    }
    if (done > 0) {
        print_stats("throughput 3 processes, 256 B x 1000/batch", "obj/s", tp, done);
        print_stats("latency p50 3 processes, 1 in flight", "us", p50, done);
        print_stats("latency p99 3 processes, 1 in flight", "us", p99, done);
        fflush(stdout);
    }
}

static void run_failover(int runs, const char *label)
{
    struct th_cluster c;
    pid_t pids[3];
    int pfd[2];
    double *fo = calloc((size_t)runs, sizeof(double));
    int done = 0;
    th_cluster_init(&c, 3);
    uv_close((uv_handle_t *)&c.tick, NULL);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    uv_loop_close(&c.loop);
    if (pipe(pfd) != 0) {
        exit(1);
    }
    FILE *rf = fdopen(pfd[0], "r");
    setvbuf(rf, NULL, _IONBF, 0);
    for (int i = 0; i < 3; i++) {
        pids[i] = spawn(&c, i, i == 0, pfd[1]);
    }
    char kind;
    int idx, leader = -1;
    long long t;
    /* wait for the cluster to form: node 0 reports its first commit */
    while (leader < 0) {
        if (!read_msg(rf, pfd[0], &kind, &idx, &t, 20000)) {
            fprintf(stderr, "failover: cluster did not form\n");
            goto out;
        }
        if (kind == 'L') {
            leader = idx;
        }
    }
    for (int run = 0; run < runs; run++) {
        /* let followers settle, then kill the leader */
        int64_t t0 = swc_now_mono();
        kill(pids[leader], SIGKILL);
        waitpid(pids[leader], NULL, 0);
        int old = leader;
        leader = -1;
        while (leader < 0) {
            if (!read_msg(rf, pfd[0], &kind, &idx, &t, 20000)) {
                fprintf(stderr, "failover: no new leader in run %d\n", run);
                goto out;
            }
            if (kind == 'L' && idx != old) {
                leader = idx;
                fo[done++] = (double)(t - t0) / SWC_NS_PER_MS;
            }
        }
        /* restart the old leader as a follower and wait until it knows
         * the leader again */
        pids[old] = spawn(&c, old, false, pfd[1]);
        for (;;) {
            if (!read_msg(rf, pfd[0], &kind, &idx, &t, 20000)) {
                fprintf(stderr, "failover: node %d did not rejoin\n", old);
                goto out;
            }
            if (kind == 'F' && idx == old) {
                break;
            }
        }
    }
out:
    for (int i = 0; i < 3; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    fclose(rf);
    close(pfd[1]);
    if (done > 0) {
        double med = pct(fo, done, 0.5), p99 = pct(fo, done, 0.99);
        printf("%-44s median %10.1f  p99 %10.1f  min %10.1f  max %10.1f ms (%d runs)\n", label, med,
               p99, fo[0], fo[done - 1], done);
        fflush(stdout);
    }
    free(fo);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", c.base);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    int fo_runs = argc > 2 ? atoi(argv[2]) : 20;
    swc_log_set_level(SWC_LOG_WARN);
    if (getenv("BENCH_ONLY_LOGMEM") != NULL) {
        run_logmem(runs);
        return 0;
    }
    if (getenv("BENCH_ONLY_FORKED") == NULL && getenv("BENCH_ONLY_FAILOVER") == NULL) {
        run_inprocess(runs);
    }
    if (getenv("BENCH_ONLY_FAILOVER") == NULL) {
        run_forked_throughput(runs);
    }
    /* side by side on the same machine state: without, then with early
     * election (a kill -9 closes the leader's sockets at once) */
    fo_early_off = true;
    run_failover(fo_runs, "failover kill -9 leader, early election off");
    fo_early_off = false;
    run_failover(fo_runs, "failover kill -9 leader -> new leader commit");
    return 0;
}

static void run_inprocess(int runs)
{
    double v[32];
    swc_log_set_level(SWC_LOG_WARN);
    for (int nodes = 1; nodes <= 3; nodes += 2) {
        char what[80];
        for (int i = 0; i < runs; i++) {
            v[i] = run_throughput(nodes, 100000);
        }
        snprintf(what, sizeof what, "throughput %d node(s), 256 B x 1000/batch", nodes);
        print_stats(what, "obj/s", v, runs);
        double p50[32], p99[32];
        for (int i = 0; i < runs; i++) {
            run_latency(nodes, 1000, &p50[i], &p99[i]);
        }
        snprintf(what, sizeof what, "latency p50 %d node(s), 1 in flight", nodes);
        print_stats(what, "us", p50, runs);
        snprintf(what, sizeof what, "latency p99 %d node(s), 1 in flight", nodes);
        print_stats(what, "us", p99, runs);
        fflush(stdout);
    }
}

/* Raft log memory: 3 nodes with a 4 MiB state write ~55 MB in entries of
 * 1,000 x 256 B (~270 KiB, like the pipeline's batched task writes). With
 * the entry threshold alone (10,000) no snapshot happens and raft keeps every
 * entry in memory; the byte trigger snapshots and keeps a short tail. Prints
 * the leader's in-memory log bytes at the end and the throughput of each. */
static void logmem_once(bool bytes, double *mem_mib, double *objs, double *snaps)
{
    struct th_cluster c;
    struct th_props p;
    struct swc_raft_stats st;
    const int total = 200000;
    th_cluster_init(&c, 3);
    c.snap_log_bytes = bytes ? 0 : (size_t)1 << 40; /* 0 = the default trigger */
    for (int i = 0; i < 3; i++) {
        c.n[i].snap_pad = 4u << 20;
    }
    if (th_form(&c) != 0) {
        fprintf(stderr, "cannot form cluster\n");
        exit(1);
    }
    int l = th_wait_leader(&c, 5000);
    memset(&p, 0, sizeof p);
    int64_t t0 = swc_now_mono();
    if (th_propose_all(&c, &l, &p, total, true, 60000) != 0) { /* follows a moved leader */
        fprintf(stderr, "no leader\n");
        exit(1);
    }
    *objs = total / ((double)(swc_now_mono() - t0) / SWC_NS_PER_SEC);
    swc_raft_stats(c.n[l].r, &st);
    *mem_mib = (double)st.mem_bytes / (1 << 20);
    *snaps = (double)st.snapshots_taken;
    th_cluster_close(&c);
}

static void run_logmem(int runs)
{
    double mem[2][32], tp[2][32], sn[2][32];
    if (runs > 32) {
        runs = 32;
    }
    for (int i = 0; i < runs; i++) {
        for (int b = 0; b < 2; b++) { /* alternate the two modes */
            logmem_once(b == 1, &mem[b][i], &tp[b][i], &sn[b][i]);
        }
    }
    print_stats("log in memory, entry threshold only", "MiB", mem[0], runs);
    print_stats("log in memory, byte trigger", "MiB", mem[1], runs);
    print_stats("snapshots, entry threshold only", "count", sn[0], runs);
    print_stats("snapshots, byte trigger", "count", sn[1], runs);
    print_stats("throughput, entry threshold only", "obj/s", tp[0], runs);
    print_stats("throughput, byte trigger", "obj/s", tp[1], runs);
}
