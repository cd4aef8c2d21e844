/* RPC benchmarks over TCP loopback: unary round-trip latency (p50/p99 of
 * sequential calls) and server-stream throughput with 64 KiB messages, plain
 * and over the secure channel (with the cipher it negotiates, AEGIS-128L
 * where both ends have AES-NI, and forced to AES-256-GCM, AEGIS-128L,
 * libsodium's AES-256-GCM and ChaCha20-Poly1305). Run twice: client and server on one loop
 * in this process, then the server in a forked child (each side on its own core, as between two
 * nodes). Each figure is the median of several runs, with min and max; plain and secure
 * runs alternate and the ratio is taken per run, with CPU time per byte beside it (per side when
 * the server is forked). `bench_net stream|all [rounds]`: "stream" skips the unary figures;
 * rounds defaults to 9.
 * AES-256-GCM runs use OpenSSL for bulk records when libcrypto loads; the libsodium run forces
 * it on both ends (SWC_AEAD_SODIUM) for the "OpenSSL / libsodium" ratio. SWC_AEAD in the
 * environment (sodium, aegis, noaegis) changes what the default negotiation picks. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "net/aead.h"
#include "net/aegis.h"
#include "net/cert.h"
#include "net/rpc.h"
#include "net/secchan.h"

#define RUNS_DEFAULT 9
#define RUNS_MAX     99
#define UNARY_CALLS  20000
#define STREAM_MSG   (64 * 1024)
#define STREAM_COUNT 2000 /* 125 MiB per run */

static uv_loop_t loop;
static int runs = RUNS_DEFAULT; /* alternating rounds (argv[2]) */

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

static double min_of(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) {
        m = v[i] < m ? v[i] : m;
    }
    return m;
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
    double p50[RUNS_MAX], p99[RUNS_MAX];
    uint8_t payload[64] = {0};
    for (int r = 0; r < runs; r++) {
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
    print_stat("unary 64 B round trip p50", "us", p50, runs);
    print_stat("unary 64 B round trip p99", "us", p99, runs);
}

static pid_t server_pid; /* forked server, 0 when it runs on our loop */

/* CPU time (ns) a process's main thread has run so far, from
 * /proc/<pid>/schedstat (nanoseconds, where /proc/<pid>/stat counts 10 ms
 * ticks: too coarse for runs of ~50 ms); -1 when it cannot be read. */
static int64_t schedstat_ns(const char *pid)
{
    char path[64];
    unsigned long long ns = 0;
    snprintf(path, sizeof(path), "/proc/%s/schedstat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    int n = fscanf(f, "%llu", &ns);
    fclose(f);
    return n == 1 ? (int64_t)ns : -1;
}

/* CPU time used so far by the forked server, 0 when there is none: on this
 * shared 2-core machine wall-clock throughput mostly shows how much CPU the
 * others left us, while CPU per byte does not. */
static int64_t server_cpu_ns(void)
{
    char pid[24];
    if (server_pid <= 0) {
        return 0;
    }
    snprintf(pid, sizeof(pid), "%d", (int)server_pid);
    int64_t ns = schedstat_ns(pid);
    return ns < 0 ? 0 : ns;
}

/* The same for this process (the client, and the server in one-loop mode). */
static int64_t self_cpu_ns(void)
{
    int64_t ns = schedstat_ns("self");
    if (ns >= 0) {
        return ns;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * SWC_NS_PER_SEC +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* One server-stream run: MiB/s received; *cpu_ms the CPU it cost per
 * 100 MiB (both processes), *srv_ms the forked server's (sending) share. */
static double stream_once(int port, const struct swc_secchan_config *sec, double *cpu_ms,
                          double *srv_ms)
{
    struct swc_rpc_conn *c = connect_to(port, sec);
    bytes = 0;
    int64_t t0 = swc_now_mono(), c0 = self_cpu_ns(), s0 = server_cpu_ns();
    swc_rpc_stream_open(c, "b.stream", NULL, 0, 0, msg_cb, end_cb, NULL, NULL);
    run_until_done();
    double secs = (double)(swc_now_mono() - t0) / 1e9;
    double mib = (double)bytes / (1024.0 * 1024.0);
    double srv = (double)(server_cpu_ns() - s0) / 1e6 / mib * 100.0;
    *cpu_ms = (double)(self_cpu_ns() - c0) / 1e6 / mib * 100.0 + srv;
    if (srv_ms != NULL) {
        *srv_ms = srv;
    }
    close_conn(c);
    return mib / secs;
}

/* Plain and secure (default negotiation: AEGIS-128L where both ends run
 * it) runs alternate with secure runs forced to AES-256-GCM (OpenSSL bulk
 * path), AEGIS-128L, AES-256-GCM through libsodium and ChaCha20-Poly1305, so
 * each ratio compares runs made under the same load on this shared machine;
 * the plain/secure pair swaps its order every round so that a drift in load
 * favours neither. */
static void bench_stream(const int ports[3], const struct swc_secchan_config *sec,
                         const struct swc_secchan_config *gcm,
                         const struct swc_secchan_config *aegis,
                         const struct swc_secchan_config *sodium,
                         const struct swc_secchan_config *chacha)
{
    double plain[RUNS_MAX], secure[RUNS_MAX], ogcm[RUNS_MAX], aeg[RUNS_MAX], sod[RUNS_MAX];
    double slow[RUNS_MAX], ratio[RUNS_MAX], ratio_gcm[RUNS_MAX], ratio_aeg[RUNS_MAX];
    double ratio_sod[RUNS_MAX], ratio_ossl[RUNS_MAX], ratio_slow[RUNS_MAX];
    double cplain[RUNS_MAX], csecure[RUNS_MAX], cgcm[RUNS_MAX], caeg[RUNS_MAX], csod[RUNS_MAX];
    double cslow[RUNS_MAX], cratio[RUNS_MAX], splain[RUNS_MAX], ssecure[RUNS_MAX];
    double sgcm[RUNS_MAX], sratio[RUNS_MAX], rplain[RUNS_MAX], rsecure[RUNS_MAX];
    double rgcm[RUNS_MAX], rratio[RUNS_MAX];
    for (int r = 0; r < runs; r++) {
        if (r % 2 == 0) {
            plain[r] = stream_once(ports[0], NULL, &cplain[r], &splain[r]);
            secure[r] = stream_once(ports[1], sec, &csecure[r], &ssecure[r]);
        } else {
            secure[r] = stream_once(ports[1], sec, &csecure[r], &ssecure[r]);
            plain[r] = stream_once(ports[0], NULL, &cplain[r], &splain[r]);
        }
        ogcm[r] = stream_once(ports[1], gcm, &cgcm[r], &sgcm[r]);
        aeg[r] = stream_once(ports[1], aegis, &caeg[r], NULL);
        sod[r] = stream_once(ports[2], sodium, &csod[r], NULL);
        slow[r] = stream_once(ports[1], chacha, &cslow[r], NULL);
        ratio[r] = 100.0 * secure[r] / plain[r];
        ratio_gcm[r] = 100.0 * ogcm[r] / plain[r];
        ratio_aeg[r] = 100.0 * aeg[r] / plain[r];
        ratio_sod[r] = 100.0 * sod[r] / plain[r];
        ratio_ossl[r] = 100.0 * ogcm[r] / sod[r];
        ratio_slow[r] = 100.0 * slow[r] / plain[r];
        cratio[r] = 100.0 * cplain[r] / csecure[r];
        sratio[r] = 100.0 * splain[r] / ssecure[r];
        rplain[r] = cplain[r] - splain[r];
        rsecure[r] = csecure[r] - ssecure[r];
        rgcm[r] = cgcm[r] - sgcm[r];
        rratio[r] = 100.0 * rplain[r] / rsecure[r];
    }
    print_stat("stream 64 KiB msgs, plain TCP", "MiB/s", plain, runs);
    print_stat("stream 64 KiB msgs, secure channel", "MiB/s", secure, runs);
    print_stat("  same, AES-256-GCM forced", "MiB/s", ogcm, runs);
    print_stat("  same, AEGIS-128L forced", "MiB/s", aeg, runs);
    print_stat("  same, libsodium AES-GCM forced", "MiB/s", sod, runs);
    print_stat("  same, ChaCha20-Poly1305 forced", "MiB/s", slow, runs);
    print_stat("secure / plain (same run)", "%", ratio, runs);
    print_stat("AES-256-GCM / plain (same run)", "%", ratio_gcm, runs);
    print_stat("AEGIS-128L / plain (same run)", "%", ratio_aeg, runs);
    print_stat("libsodium / plain (same run)", "%", ratio_sod, runs);
    print_stat("OpenSSL / libsodium (same run)", "%", ratio_ossl, runs);
    print_stat("ChaCha20 / plain (same run)", "%", ratio_slow, runs);
    print_stat("CPU per 100 MiB, plain", "ms", cplain, runs);
    print_stat("CPU per 100 MiB, secure", "ms", csecure, runs);
    print_stat("CPU per 100 MiB, AES-256-GCM", "ms", cgcm, runs);
    print_stat("CPU per 100 MiB, AEGIS-128L", "ms", caeg, runs);
    print_stat("CPU per 100 MiB, libsodium", "ms", csod, runs);
    print_stat("CPU per 100 MiB, ChaCha20", "ms", cslow, runs);
    /* What the secure channel would reach if CPU were the only limit:
     * plain CPU / secure CPU per byte, taken per round. */
    print_stat("CPU-bound secure / plain", "%", cratio, runs);
    /* The least disturbed runs of each (minimum CPU per byte): what the
     * channel costs when neighbours leave the caches and the link alone. */
    printf("%-34s        %9.1f %%  (min plain CPU / min secure CPU)\n",
           "CPU-bound, least disturbed runs", 100.0 * min_of(cplain, runs) / min_of(csecure, runs));
    if (server_pid > 0) {
        /* Each side on its own core: the slower side sets the pace. */
        print_stat("  sender CPU/100 MiB, plain", "ms", splain, runs);
        print_stat("  sender CPU/100 MiB, secure", "ms", ssecure, runs);
        print_stat("  sender CPU/100 MiB, AES-GCM", "ms", sgcm, runs);
        print_stat("  receiver CPU/100 MiB, plain", "ms", rplain, runs);
        print_stat("  receiver CPU/100 MiB, secure", "ms", rsecure, runs);
        print_stat("  receiver CPU/100 MiB, AES-GCM", "ms", rgcm, runs);
        print_stat("  CPU-bound, sender side", "%", sratio, runs);
        print_stat("  CPU-bound, receiver side", "%", rratio, runs);
    }
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

int main(int argc, char **argv)
{
    /* "stream": skip the unary figures. */
    bool stream_only = argc > 1 && strcmp(argv[1], "stream") == 0;
    if (argc > 2) {
        runs = atoi(argv[2]);
        runs = runs < 1 ? 1 : runs > RUNS_MAX ? RUNS_MAX : runs;
    }
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
    struct swc_secchan_config chacha = ccfg, gcm = ccfg, aegis = ccfg;
    chacha.ciphers = SWC_SECCHAN_CHACHA20POLY1305;
    gcm.ciphers = SWC_SECCHAN_AES256GCM;
    aegis.ciphers = swc_aegis128l_available() ? SWC_SECCHAN_AEGIS128L : SWC_SECCHAN_AES256GCM;
    struct swc_secchan_config sodium = ccfg, ssodium = scfg;
    sodium.aead_backend = ssodium.aead_backend = SWC_AEAD_SODIUM;
    sodium.ciphers = SWC_SECCHAN_AES256GCM;

    int ports[3];
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
            server_pid = child;
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
                swc_rpc_server_port(srv, &ports[1]) != 0 ||
                swc_rpc_server_listen_tcp(srv, "127.0.0.1:0", &ssodium) != 0 ||
                swc_rpc_server_port(srv, &ports[2]) != 0) {
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
        printf("== %s (bulk AES-GCM: %s, AEGIS-128L: %s) ==\n",
               mode == 0 ? "client and server on one loop" : "server in a forked process",
               swc_aead_openssl_available() ? "OpenSSL" : "libsodium",
               swc_aegis128l_available() ? "yes" : "no (AES-GCM in its place)");
        if (!stream_only) {
            bench_unary(ports[0]);
        }
        bench_stream(ports, &ccfg, &gcm, &aegis, &sodium, &chacha);
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
