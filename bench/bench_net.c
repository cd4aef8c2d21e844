/* RPC benchmarks over TCP loopback: unary round-trip latency (p50/p99 of
 * sequential calls) and server-stream throughput with 64 KiB messages, plain
 * and over the secure channel (with the cipher it negotiates, AES-256-GCM
 * where the CPU has it, and forced to ChaCha20-Poly1305). Run twice: client and server on one loop
 * in this process, then the server in a forked child (each side on its own core, as between two
 * nodes). Each figure is the median of several runs, with min and max. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "net/cert.h"
#include "net/rpc.h"
#include "net/secchan.h"

#define RUNS         5
#define UNARY_CALLS  20000
#define STREAM_MSG   (64 * 1024)
#define STREAM_COUNT 2000 /* 125 MiB per run */

static uv_loop_t loop;

static void echo_h(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    swc_rpc_reply(req, 0, NULL, p, len);
}

struct sender {
    struct swc_rpc_req *req;
    uint32_t left;
    uint8_t *buf;
};

static void pump(struct sender *s)
{
    while (s->left > 0) {
        int rc = swc_rpc_send(s->req, s->buf, STREAM_MSG);
        if (rc == SWC_EBUSY) {
            return;
        }
        if (rc != 0) {
            break;
        }
        s->left--;
    }
    swc_rpc_end(s->req, 0, NULL);
    free(s->buf);
    free(s);
}

static void writable_cb(struct swc_rpc_req *req, int status, void *data)
{
    pump(data);
}

static void cancel_cb(struct swc_rpc_req *req, int status, void *data)
{
    struct sender *s = data;
    s->left = 0;
    pump(s);
}

static void stream_h(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct sender *s = calloc(1, sizeof(*s));
    s->req = req;
    s->left = STREAM_COUNT;
    s->buf = calloc(1, STREAM_MSG);
    swc_rpc_req_on_writable(req, writable_cb, s);
    swc_rpc_req_on_cancel(req, cancel_cb, s);
    pump(s);
}

static int done;
static size_t bytes;

static void reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                     const uint8_t *payload, size_t len, void *data)
{
    done = 1;
}

static void msg_cb(struct swc_rpc_call *call, const uint8_t *payload, size_t len, void *data)
{
    bytes += len;
}

static void end_cb(struct swc_rpc_call *call, int status, const char *errmsg, void *data)
{
    done = 1;
}

static void run_until_done(void)
{
    while (!done) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    done = 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct swc_rpc_conn *connect_to(int port, const struct swc_secchan_config *sec)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct swc_rpc_conn_opts o = {.secure = sec};
    struct swc_rpc_conn *c;
    if (swc_rpc_connect(&loop, addr, &o, &c) != 0) {
        abort();
    }
    while (!swc_rpc_conn_ready(c)) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    return c;
}

static void close_conn(struct swc_rpc_conn *c)
{
    swc_rpc_conn_close(c, NULL, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void print_stat(const char *what, const char *unit, double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    printf("%-34s median %9.1f %s  min %9.1f  max %9.1f  (%d runs)\n", what, v[n / 2], unit, v[0],
           v[n - 1], n);
}

static void bench_unary(int port)
{
    static int64_t lat[UNARY_CALLS];
    double p50[RUNS], p99[RUNS];
    uint8_t payload[64] = {0};
    for (int r = 0; r < RUNS; r++) {
        struct swc_rpc_conn *c = connect_to(port, NULL);
        for (int i = 0; i < UNARY_CALLS; i++) {
            int64_t t0 = swc_now_mono();
            swc_rpc_call(c, "b.echo", payload, sizeof(payload), 0, reply_cb, NULL, NULL);
            run_until_done();
            lat[i] = swc_now_mono() - t0;
        }
        qsort(lat, UNARY_CALLS, sizeof(int64_t), cmp_i64);
        p50[r] = (double)lat[UNARY_CALLS / 2] / 1000.0;
        p99[r] = (double)lat[UNARY_CALLS * 99 / 100] / 1000.0;
        close_conn(c);
    }
    print_stat("unary 64 B round trip p50", "us", p50, RUNS);
    print_stat("unary 64 B round trip p99", "us", p99, RUNS);
}

static double bench_stream(int port, const struct swc_secchan_config *sec, const char *label)
{
    double mbs[RUNS];
    for (int r = 0; r < RUNS; r++) {
        struct swc_rpc_conn *c = connect_to(port, sec);
        bytes = 0;
        int64_t t0 = swc_now_mono();
        swc_rpc_stream_open(c, "b.stream", NULL, 0, 0, msg_cb, end_cb, NULL, NULL);
        run_until_done();
        double secs = (double)(swc_now_mono() - t0) / 1e9;
        mbs[r] = (double)bytes / (1024.0 * 1024.0) / secs;
        close_conn(c);
    }
    print_stat(label, "MiB/s", mbs, RUNS);
    return mbs[RUNS / 2];
}

static void make_identity(struct swc_identity *id, const uint8_t ca_sk[SWC_SIGN_SK_LEN],
                          const char *node, int role)
{
    memset(id, 0, sizeof(*id));
    swc_keypair_new(id->public_key, id->secret_key);
    struct swc_cert c;
    memset(&c, 0, sizeof(c));
    snprintf(c.node_id, sizeof(c.node_id), "%s", node);
    snprintf(c.cluster_id, sizeof(c.cluster_id), "bench");
    c.role = role;
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

int main(void)
{
    swc_log_set_level(SWC_LOG_WARN);
    uv_loop_init(&loop);
    uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];
    swc_keypair_new(ca_pk, ca_sk);
    static struct swc_identity sid, cid;
    make_identity(&sid, ca_sk, "mgr", SWC_ROLE_MANAGER);
    make_identity(&cid, ca_sk, "wrk", SWC_ROLE_WORKER);
    struct swc_secchan_config scfg = {.self = &sid, .required_peer_role = -1};
    struct swc_secchan_config ccfg = {.is_client = true, .self = &cid, .required_peer_role = -1};
    memcpy(scfg.ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    memcpy(ccfg.ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    struct swc_secchan_config chacha = ccfg;
    chacha.ciphers = SWC_SECCHAN_CHACHA20POLY1305;

    int ports[2];
    int fds[2];
    if (pipe(fds) != 0) {
        return 1;
    }
    for (int mode = 0; mode < 2; mode++) {
        pid_t child = -1;
        struct swc_rpc_server *srv = NULL;
        if (mode == 1) {
            child = fork();
            if (child < 0) {
                return 1;
            }
        }
        if (mode == 0 || child == 0) {
            if (child == 0) {
                uv_loop_fork(&loop);
            }
            swc_rpc_server_init(&loop, NULL, &srv);
            swc_rpc_server_register(srv, "b.echo", false, echo_h, NULL);
            swc_rpc_server_register(srv, "b.stream", true, stream_h, NULL);
            if (swc_rpc_server_listen_tcp(srv, "127.0.0.1:0", NULL) != 0 ||
                swc_rpc_server_port(srv, &ports[0]) != 0 ||
                swc_rpc_server_listen_tcp(srv, "127.0.0.1:0", &scfg) != 0 ||
                swc_rpc_server_port(srv, &ports[1]) != 0) {
                fprintf(stderr, "cannot listen\n");
                return 1;
            }
            if (child == 0) {
                if (write(fds[1], ports, sizeof(ports)) != sizeof(ports)) {
                    _exit(1);
                }
                uv_run(&loop, UV_RUN_DEFAULT); /* until the parent kills us */
                _exit(0);
            }
        } else if (read(fds[0], ports, sizeof(ports)) != sizeof(ports)) {
            return 1;
        }
        printf("== %s ==\n",
               mode == 0 ? "client and server on one loop" : "server in a forked process");
        bench_unary(ports[0]);
        double plain = bench_stream(ports[0], NULL, "stream 64 KiB msgs, plain TCP");
        double secure = bench_stream(ports[1], &ccfg, "stream 64 KiB msgs, secure channel");
        double slow = bench_stream(ports[1], &chacha, "  same, ChaCha20-Poly1305 forced");
        printf("secure / plain throughput: %.0f %% (ChaCha20-Poly1305: %.0f %%)\n",
               100.0 * secure / plain, 100.0 * slow / plain);
        fflush(stdout);
        if (srv != NULL) {
            swc_rpc_server_close(srv, NULL, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
        }
        if (child > 0) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
