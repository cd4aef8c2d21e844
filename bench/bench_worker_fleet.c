/* Fleet mode cost: how many simulated nodes one core carries and how many
 * bytes each costs.
 *
 * Usage: bench_worker_fleet [MANAGER_ADDR TOKEN]
 * Without arguments it starts its own manager (`$SWARMC daemon --executor
 * sim`, SWARMC defaults to ./swarmc) with temporary state, so run it from
 * the build dir. For each fleet size (1,000 and 5,000; BENCH_FLEET_SIZES
 * overrides, e.g. "1000,10000") it starts a fleet in this process, waits
 * until every node has a session, then measures over several 5 s windows
 * (one heartbeat period at the default) the process CPU time, and prints
 * CPU microseconds per node per heartbeat period, the resulting nodes per
 * core, the time to bring the fleet up and the RSS growth per node. Prints
 * figures (median, min, max over the windows); asserts nothing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "base/clock.h"
#include "base/log.h"
#include "worker/fleet.h"

#define WINDOWS   3
#define WINDOW_MS 5000

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Bytes malloc has handed out (in use), including untouched pages. */
static double heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (double)(mi.uordblks + mi.hblkhd);
}

static double rss_bytes(void)
{
    size_t rss = 0;
    return uv_resident_set_memory(&rss) == 0 ? (double)rss : 0.0;
}

struct run {
    uv_loop_t *loop;
    struct swc_fleet *fleet;
    uv_timer_t timer;
    int phase; /* 0 wait up, 1 settle, 2.. windows */
    int64_t phase_start;
    double cpu_start;
    double samples[WINDOWS];
    int nsamples;
    double up_s;
    double rss_up;
    double heap_up;
    bool failed;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void closed(void *data)
{
    struct run *r = data;
    uv_close((uv_handle_t *)&r->timer, NULL);
}

static void tick(uv_timer_t *t)
{
    struct run *r = t->data;
    struct swc_fleet_stats st;
    int64_t now = swc_now_mono();
    if (r->phase == 0) {
        swc_fleet_stats(r->fleet, &st);
        if (st.all_up_ns != 0) {
            r->up_s = (double)st.all_up_ns / 1e9;
            r->phase = 1;
            r->phase_start = now;
        } else if (now - r->phase_start > 120 * SWC_NS_PER_SEC || st.join_errors > 0) {
            fprintf(stderr, "fleet did not come up: %zu/%zu connected, %s\n", st.connected,
                    st.nodes, swc_fleet_error(r->fleet));
            r->failed = true;
            uv_timer_stop(t);
            swc_fleet_close(r->fleet, closed, r);
        }
        return;
    }
    if (r->phase == 1) {
        if (now - r->phase_start < 2 * SWC_NS_PER_SEC) {
            return; /* let the joins' and sessions' garbage settle */
        }
        r->rss_up = rss_bytes();
        r->heap_up = heap_bytes();
        r->phase = 2;
        r->phase_start = now;
        r->cpu_start = cpu_seconds();
        return;
    }
    if (now - r->phase_start < (int64_t)WINDOW_MS * SWC_NS_PER_MS) {
        return;
    }
    double cpu = cpu_seconds();
    r->samples[r->nsamples++] = cpu - r->cpu_start;
    r->cpu_start = cpu;
    r->phase_start = now;
    if (r->nsamples == WINDOWS) {
        uv_timer_stop(t);
        swc_fleet_close(r->fleet, closed, r);
    }
}

static int run_size(const char *addr, const char *token, size_t nodes)
{
    struct run r;
    struct swc_err err;
    memset(&r, 0, sizeof r);
    r.loop = uv_default_loop();
    double rss0 = rss_bytes(), heap0 = heap_bytes();
    const char *mgrs[1] = {addr};
    struct swc_fleet_config cfg = {0};
    cfg.managers = mgrs;
    cfg.nmanagers = 1;
    cfg.token = token;
    cfg.nodes = nodes;
    cfg.start_delay_ms = 10;
    if (swc_fleet_start(r.loop, &cfg, &r.fleet, &err) != 0) {
        fprintf(stderr, "fleet: %s\n", swc_err_msg(&err));
        return 1;
    }
    uv_timer_init(r.loop, &r.timer);
    r.timer.data = &r;
    r.phase_start = swc_now_mono();
    uv_timer_start(&r.timer, tick, 50, 50);
    uv_run(r.loop, UV_RUN_DEFAULT);
    if (r.failed) {
        return 1;
    }
    double per_node_us[WINDOWS];
    for (int i = 0; i < WINDOWS; i++) {
        per_node_us[i] = r.samples[i] / (double)nodes * 1e6 * (5000.0 / WINDOW_MS);
    }
    qsort(per_node_us, WINDOWS, sizeof per_node_us[0], cmp_double);
    double med = per_node_us[WINDOWS / 2];
    printf("fleet %6zu nodes: up in %5.2f s | CPU per node per 5 s heartbeat: median %.1f us "
           "(min %.1f, max %.1f) -> %.0f nodes/core at 100%% CPU | RSS +%.1f MiB = %.1f KiB/node "
           "(malloc'd %.1f KiB/node, touched or not)\n",
           nodes, r.up_s, med, per_node_us[0], per_node_us[WINDOWS - 1], 5e6 / med,
           (r.rss_up - rss0) / 1048576.0, (r.rss_up - rss0) / 1024.0 / (double)nodes,
           (r.heap_up - heap0) / 1024.0 / (double)nodes);
    fflush(stdout);
    return 0;
}

static int run_cmd(const char *cmd, char *out, size_t outsz)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }
    size_t n = fread(out, 1, outsz - 1, p);
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return pclose(p) == 0 ? 0 : -1;
}

/* A free TCP port P on 127.0.0.1 whose P + 1 is free too (raft). */
static int free_port_pair(void)
{
    for (int tries = 0; tries < 100; tries++) {
        int fds[2] = {-1, -1}, port = 0;
        struct sockaddr_in sa;
        socklen_t len = sizeof sa;
        for (int i = 0; i < 2; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            memset(&sa, 0, sizeof sa);
            sa.sin_family = AF_INET;
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            sa.sin_port = htons((uint16_t)(i == 0 ? 0 : port + 1));
            if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0) {
                port = -1;
                break;
            }
            if (i == 0) {
                getsockname(fds[0], (struct sockaddr *)&sa, &len);
                port = ntohs(sa.sin_port);
            }
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i] >= 0) {
                close(fds[i]);
            }
        }
        if (port > 0 && port < 65535) {
            return port;
        }
    }
    return 24242;
}

int main(int argc, char **argv)
{
    char addr[64], token[256], dir[] = "/tmp/bench-fleet.XXXXXX", cmd[1024];
    pid_t mgr = -1;
    swc_log_init();
    if (getenv("SWARMC_LOG_LEVEL") == NULL) {
        swc_log_set_level(SWC_LOG_ERROR);
    }
    if (argc == 3) {
        snprintf(addr, sizeof addr, "%s", argv[1]);
        snprintf(token, sizeof token, "%s", argv[2]);
    } else {
        const char *swarmc = getenv("SWARMC") ? getenv("SWARMC") : "./swarmc";
        int port = free_port_pair();
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        char state[64];
        snprintf(state, sizeof state, "%s/state", dir);
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        mgr = fork();
        if (mgr == 0) {
            char sock[300], log[300];
            snprintf(sock, sizeof sock, "%s/ctl.sock", dir);
            snprintf(log, sizeof log, "%s/daemon.log", dir);
            if (freopen(log, "w", stderr) == NULL) {
                _exit(127);
            }
            setenv("SWARMC_LOG_LEVEL", "warn", 1);
            execl(swarmc, swarmc, "daemon", "--state-dir", state, "--socket", sock, "--listen",
                  addr, "--advertise-addr", addr, "--executor", "sim", (char *)NULL);
            _exit(127);
        }
        snprintf(cmd, sizeof cmd,
                 "for i in $(seq 100); do [ -S %s/ctl.sock ] && break; sleep 0.1; done; "
                 "%s -H %s/ctl.sock init --advertise-addr %s >/dev/null && "
                 "%s -H %s/ctl.sock join-token -q worker",
                 dir, swarmc, dir, addr, swarmc, dir);
        if (run_cmd(cmd, token, sizeof token) != 0 || token[0] == '\0') {
            fprintf(stderr, "cannot start a manager with %s (set SWARMC)\n", swarmc);
            kill(mgr, SIGTERM);
            waitpid(mgr, NULL, 0);
            return 1;
        }
    }
    const char *sizes = getenv("BENCH_FLEET_SIZES") ? getenv("BENCH_FLEET_SIZES") : "1000,5000";
    int rc = 0;
    for (const char *p = sizes; *p != '\0' && rc == 0;) {
        size_t n = strtoul(p, NULL, 10);
        if (n > 0) {
            rc = run_size(addr, token, n);
        }
        p += strcspn(p, ",");
        p += *p == ',';
    }
    if (mgr > 0) {
        kill(mgr, SIGTERM);
        waitpid(mgr, NULL, 0);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    return rc;
}
