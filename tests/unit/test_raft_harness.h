/* In-process raft clusters for the raft adapter tests and benchmark.
 *
 * Up to 5 nodes share one uv loop, listen on 127.0.0.1 with free ports and
 * keep their state under a temp dir in /tmp. Each node runs a small test FSM:
 * a hash chain over (index, payload) plus a chain over the results it
 * returns, so two nodes with equal chains applied the same proposals in the
 * same order with the same results. Waiting is always "run the loop until a
 * condition holds or a deadline passes". */
#ifndef TEST_RAFT_HARNESS_H
#define TEST_RAFT_HARNESS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "raft/raft.h"

#define TH_MAX 5

#define TH_UNUSED __attribute__((unused))

struct th_node {
    struct th_cluster *c;
    int idx;
    struct swc_raft *r;
    uint64_t id;
    char addr[64];
    char dir[256];
    bool running;
    bool closed;
    /* FSM state */
    uint64_t hash, rhash, count, last_index;
    uint64_t snap_pad;            /* bytes of filler in snapshots */
    struct swc_raft_transport tp; /* when the cluster uses pipes */
    /* leadership events */
    int lead_up, lead_down;
    bool ready_leader;
};

struct th_cluster {
    uv_loop_t loop;
    uv_timer_t tick;
    struct th_node n[TH_MAX];
    int size;
    char base[128];
    unsigned snap_threshold, snap_trailing;
    size_t snap_log_bytes, snap_trail_bytes;
    const uint8_t *key;
    long live0; /* swc_alloc_live() at init, for the leak check */
    bool pipes; /* custom transport: in-process socketpairs instead of TCP */
    int pipe_connects;
    /* fd of the accepting end of the last pipe from node i to node j (-1:
     * none yet), so a test can cut that connection */
    int pipe_fd[TH_MAX][TH_MAX];
    bool early_off; /* swc_raft_config.early_election_off for every node */
};

static TH_UNUSED uint64_t th_mix(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static TH_UNUSED int th_apply(void *data, uint64_t index, const uint8_t *p, size_t len)
{
    struct th_node *n = data;
    n->hash = th_mix(n->hash, &index, sizeof index);
    n->hash = th_mix(n->hash, p, len);
    n->count++;
    n->last_index = index;
    int res = 1000 + (int)(n->hash % 1000); /* clear of the SWC_E* codes */
    n->rhash = th_mix(n->rhash, &res, sizeof res);
    return res;
}

static TH_UNUSED int th_snapshot(void *data, struct swc_buf *out)
{
    struct th_node *n = data;
    uint8_t hdr[32];
    out->len = 0;
    swc_put_u64(hdr, n->hash);
    swc_put_u64(hdr + 8, n->rhash);
    swc_put_u64(hdr + 16, n->count);
    swc_put_u64(hdr + 24, n->last_index);
    if (swc_buf_append(out, hdr, sizeof hdr) != 0 || swc_buf_reserve(out, n->snap_pad) != 0) {
        return SWC_ENOMEM;
    }
    memset(out->data + out->len, 0xab, n->snap_pad);
    out->len += n->snap_pad;
    return 0;
}

static TH_UNUSED int th_restore(void *data, const uint8_t *p, size_t len)
{
    struct th_node *n = data;
    if (len < 32) {
        return SWC_EPROTO;
    }
    n->hash = swc_get_u64(p);
    n->rhash = swc_get_u64(p + 8);
    n->count = swc_get_u64(p + 16);
    n->last_index = swc_get_u64(p + 24);
    return 0;
}

static TH_UNUSED void th_on_leader(struct swc_raft *r, bool leader, void *data)
{
    struct th_node *n = data;
    if (leader) {
        n->lead_up++;
        n->ready_leader = true;
    } else {
        n->lead_down++;
        n->ready_leader = false;
    }
}

static TH_UNUSED int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

static TH_UNUSED void th_tick_cb(uv_timer_t *t)
{
}

static TH_UNUSED void th_cluster_init(struct th_cluster *c, int size)
{
    memset(c, 0, sizeof *c);
    c->live0 = swc_alloc_live();
    swc_log_init();
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&c->loop);
    uv_timer_init(&c->loop, &c->tick);
    uv_timer_start(&c->tick, th_tick_cb, 5, 5);
    snprintf(c->base, sizeof c->base, "/tmp/swc-raft-test-XXXXXX");
    if (mkdtemp(c->base) == NULL) {
        abort();
    }
    c->size = size;
    for (int i = 0; i < TH_MAX; i++) {
        for (int j = 0; j < TH_MAX; j++) {
            c->pipe_fd[i][j] = -1;
        }
    }
    for (int i = 0; i < size; i++) {
        struct th_node *n = &c->n[i];
        n->c = c;
        n->idx = i;
        n->id = (uint64_t)i + 1;
        snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", th_free_port());
        snprintf(n->dir, sizeof n->dir, "%s/n%d", c->base, i + 1);
        n->hash = 14695981039346656037ULL;
        n->rhash = 14695981039346656037ULL;
        n->closed = true;
    }
}

/* Run the loop until cond(c, arg) is true or ms pass; true if it held. */
static TH_UNUSED bool th_run_until(struct th_cluster *c, bool (*cond)(struct th_cluster *, void *),
                                   void *arg, int ms)
{
    int64_t deadline = swc_now_mono() + (int64_t)ms * SWC_NS_PER_MS;
    while (!cond(c, arg)) {
        if (swc_now_mono() > deadline) {
            return false;
        }
        uv_run(&c->loop, UV_RUN_ONCE);
    }
    return true;
}

static void th_free_handle_cb(uv_handle_t *h)
{
    swc_free(h);
}

static uv_pipe_t *th_pipe(uv_loop_t *loop, int fd)
{
    uv_pipe_t *p = swc_malloc(sizeof *p);
    uv_pipe_init(loop, p, 0);
    uv_pipe_open(p, fd);
    return p;
}

/* The custom transport of the tests: a socketpair per connection, one end
 * to the connecting node, the other accepted by the target node. */
static int th_pipe_connect(void *data, uint64_t id, const char *address,
                           struct swc_raft_connect *req)
{
    struct th_node *src = data;
    struct th_cluster *c = src->c;
    struct th_node *dst = NULL;
    int sv[2];
    for (int i = 0; i < c->size; i++) {
        if (c->n[i].id == id && c->n[i].running && c->n[i].r != NULL) {
            dst = &c->n[i];
        }
    }
    if (dst == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        swc_raft_connect_done(req, NULL, SWC_EUNAVAIL);
        return 0;
    }
    uv_pipe_t *a = th_pipe(&c->loop, sv[0]);
    uv_pipe_t *b = th_pipe(&c->loop, sv[1]);
    if (swc_raft_accept(dst->r, src->id, src->addr, (uv_stream_t *)b) != 0) {
        uv_close((uv_handle_t *)a, th_free_handle_cb);
        uv_close((uv_handle_t *)b, th_free_handle_cb);
        swc_raft_connect_done(req, NULL, SWC_EUNAVAIL);
        return 0;
    }
    c->pipe_connects++;
    c->pipe_fd[src->idx][dst->idx] = sv[1];
    swc_raft_connect_done(req, (uv_stream_t *)a, 0);
    return 0;
}

/* Start node i: bootstrap (fresh one-node cluster), force (force new
 * cluster) or neither (restart from disk / wait to be added). */
static TH_UNUSED int th_start(struct th_cluster *c, int i, bool bootstrap, bool force)
{
    struct th_node *n = &c->n[i];
    struct swc_raft_config cfg;
    struct swc_err err;
    memset(&cfg, 0, sizeof cfg);
    cfg.state_dir = n->dir;
    cfg.id = n->id;
    cfg.address = n->addr;
    cfg.snapshot_threshold = c->snap_threshold;
    cfg.snapshot_trailing = c->snap_trailing;
    cfg.snapshot_log_bytes = c->snap_log_bytes;
    cfg.snapshot_trailing_bytes = c->snap_trail_bytes;
    cfg.install_snapshot_timeout_ms = 1000;
    cfg.data_key = c->key;
    cfg.early_election_off = c->early_off;
    if (c->pipes) {
        n->tp.data = n;
        n->tp.connect = th_pipe_connect;
        cfg.transport = &n->tp;
    }
    cfg.fsm.data = n;
    cfg.fsm.apply = th_apply;
    cfg.fsm.snapshot = th_snapshot;
    cfg.fsm.restore = th_restore;
    cfg.on_leader = th_on_leader;
    cfg.cb_data = n;
    /* a restarted node replays from scratch */
    n->hash = n->rhash = 14695981039346656037ULL;
    n->count = n->last_index = 0;
    n->ready_leader = false;
    int rv = swc_raft_init(&c->loop, &cfg, &n->r, &err);
    if (rv != 0) {
        fprintf(stderr, "init: %s\n", swc_err_msg(&err));
        return rv;
    }
    if (bootstrap && (rv = swc_raft_bootstrap(n->r)) != 0) {
        return rv;
    }
    if (force && (rv = swc_raft_force_new_cluster(n->r)) != 0) {
        return rv;
    }
    rv = swc_raft_start(n->r);
    if (rv == 0) {
        n->running = true;
        n->closed = false;
    }
    return rv;
}

static TH_UNUSED void th_closed_cb(void *data)
{
    struct th_node *n = data;
    n->closed = true;
}

static TH_UNUSED bool th_cond_closed(struct th_cluster *c, void *arg)
{
    return ((struct th_node *)arg)->closed;
}

/* Close node i and wait for its close callback. */
static TH_UNUSED bool th_stop(struct th_cluster *c, int i)
{
    struct th_node *n = &c->n[i];
    if (!n->running) {
        return true;
    }
    n->running = false;
    swc_raft_close(n->r, th_closed_cb, n);
    bool ok = th_run_until(c, th_cond_closed, n, 10000);
    n->r = NULL;
    return ok;
}

/* Stop every node, run the loop dry and remove the temp dir. */
static TH_UNUSED void th_cluster_close(struct th_cluster *c)
{
    for (int i = 0; i < c->size; i++) {
        th_stop(c, i);
    }
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&c->loop);
    if (rc != 0) {
        fprintf(stderr, "loop still has handles\n");
        abort();
    }
    if (swc_alloc_live() != c->live0) {
        fprintf(stderr, "leak: %ld allocations still live\n", swc_alloc_live() - c->live0);
        abort();
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", c->base);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
}

/* The running node that reports being leader with the log applied, or -1
 * when there is none or more than one. */
static TH_UNUSED int th_leader(struct th_cluster *c)
{
    int l = -1;
    for (int i = 0; i < c->size; i++) {
        if (c->n[i].running && c->n[i].ready_leader && swc_raft_is_leader(c->n[i].r)) {
            if (l >= 0) {
                return -1;
            }
            l = i;
        }
    }
    return l;
}

static TH_UNUSED bool th_cond_leader(struct th_cluster *c, void *arg)
{
    return th_leader(c) >= 0;
}

/* Wait for exactly one ready leader; its index or -1. */
static TH_UNUSED int th_wait_leader(struct th_cluster *c, int ms)
{
    return th_run_until(c, th_cond_leader, NULL, ms) ? th_leader(c) : -1;
}

struct th_change {
    bool done;
    int status;
};

static TH_UNUSED void th_change_cb(void *data, int status)
{
    struct th_change *ch = data;
    ch->done = true;
    ch->status = status;
}

static TH_UNUSED bool th_cond_change(struct th_cluster *c, void *arg)
{
    return ((struct th_change *)arg)->done;
}

/* Bootstrap node 0, then start and add every other node; 0 on success. */
static TH_UNUSED int th_form(struct th_cluster *c)
{
    if (th_start(c, 0, true, false) != 0 || th_wait_leader(c, 5000) != 0) {
        return -1;
    }
    for (int i = 1; i < c->size; i++) {
        if (th_start(c, i, false, false) != 0) {
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

/* Proposal bookkeeping. */
struct th_props {
    int sent, done, ok, lost, closed, other;
    uint64_t rhash; /* chain of results in callback order */
};

static TH_UNUSED void th_prop_cb(void *data, int result)
{
    struct th_props *p = data;
    p->done++;
    if (result == SWC_ELEADERLOST) {
        p->lost++;
    } else if (result == SWC_ECLOSED) {
        p->closed++;
    } else if (result >= 1000 && result < 2000) {
        p->ok++;
        p->rhash = th_mix(p->rhash, &result, sizeof result);
    } else {
        p->other++;
    }
}

static TH_UNUSED bool th_cond_props(struct th_cluster *c, void *arg)
{
    struct th_props *p = arg;
    return p->done == p->sent;
}

/* Propose count payloads of size bytes in one loop turn on node i. */
static TH_UNUSED int th_propose_burst(struct th_cluster *c, int i, struct th_props *p, int count,
                                      size_t size)
{
    uint8_t *buf = swc_malloc(size < 16 ? 16 : size);
    memset(buf, 'x', size < 16 ? 16 : size);
    for (int k = 0; k < count; k++) {
        int seq = p->sent;
        memcpy(buf, &seq, sizeof seq);
        int rv = swc_raft_propose(c->n[i].r, buf, size, th_prop_cb, p);
        if (rv != 0) {
            swc_free(buf);
            return rv;
        }
        p->sent++;
    }
    swc_free(buf);
    return 0;
}

static TH_UNUSED bool th_cond_inflight(struct th_cluster *c, void *arg)
{
    (void)c;
    struct th_props *p = arg;
    return p->sent - p->done <= 3000; /* at most ~3 bursts in flight */
}

/* Propose total 256-byte payloads on *leader in bursts of 1,000, keeping at
 * most ~3 bursts in flight, then wait up to wait_ms for every answer. When a
 * burst is refused: follow a new leader if follow (0 once it is found), else
 * -1 (also -1 when no leader is found). */
static TH_UNUSED int th_propose_all(struct th_cluster *c, int *leader, struct th_props *p,
                                    int total, bool follow, int wait_ms)
{
    while (p->sent < total) {
        if (th_propose_burst(c, *leader, p, 1000, 256) != 0) {
            if (!follow || (*leader = th_wait_leader(c, 5000)) < 0) {
                return -1;
            }
            continue;
        }
        uv_run(&c->loop, UV_RUN_NOWAIT);
        th_run_until(c, th_cond_inflight, p, 10000);
    }
    th_run_until(c, th_cond_props, p, wait_ms);
    return 0;
}

struct th_applied {
    uint64_t index;
};

static TH_UNUSED bool th_cond_all_applied(struct th_cluster *c, void *arg)
{
    uint64_t want = ((struct th_applied *)arg)->index;
    for (int i = 0; i < c->size; i++) {
        if (c->n[i].running && swc_raft_applied_index(c->n[i].r) < want) {
            return false;
        }
    }
    return true;
}

/* Wait until every running node applied the leader's applied index. */
static TH_UNUSED bool th_wait_converged(struct th_cluster *c, int leader, int ms)
{
    struct th_applied a = {swc_raft_applied_index(c->n[leader].r)};
    return th_run_until(c, th_cond_all_applied, &a, ms);
}

#endif
