/* Worker benchmarks. Prints figures (median, min, max over runs); asserts
 * nothing. Each run is a forked child so RSS figures do not inherit the
 * previous run's heap.
 *
 *   sim: RSS of a worker process (worker + runners + task DB + sim executor)
 *        with 100 tasks running, split into anonymous memory and file-backed
 *        pages (code of the executable and its libraries), and the same with
 *        an idle Docker executor (its own HTTP client: no extra library);
 *        tasks per MiB at 10,000 tasks, for the whole worker and for the sim
 *        executor alone. BENCH_VERBOSE=1 lists the biggest mappings (where
 *        the RSS goes). The benchmark itself links no library the worker
 *        does not (the raw API calls below use a plain socket).
 *   docker (needs DOCKER_HOST=unix:///path, image localbusybox:latest):
 *        latency from an assignment received to POST /containers/create issued
 *        (p50/p99); container starts/s with 8 tasks in flight through the
 *        worker vs raw Engine API create+start from 8 threads, in pairs (one
 *        of each per run, alternating which goes first), the ratio of each
 *        pair, and the Engine API requests the worker makes per start.
 * BENCH_RUNS (default 3; at least 5 pairs for the ratio) sets the number of
 * runs; BENCH_SKIP_SIM=1 runs only the docker part. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "worker/docker.h"
#include "worker/sim.h"
#include "worker/worker.h"

#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define READY   SWARMC__TASK_STATE__TASK_STATE_READY
#define MAXS    256

static const char *sock;
static int runs = 3;

/* ---------------------------------------------------------------- run helpers */

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One field (kB) of /proc/self/smaps_rollup, e.g. "Anonymous:"; 0 if absent. */
static long rollup_kib(const char *field)
{
    char line[256];
    long v = 0;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0) {
            v = atol(line + n);
            break;
        }
    }
    fclose(f);
    return v;
}

/* BENCH_VERBOSE=1: print the mappings holding the most resident memory
 * (where the RSS goes), to stderr. */
static void dump_top_mappings(void)
{
    char line[512], name[512] = "";
    FILE *f;
    if (getenv("BENCH_VERBOSE") == NULL || (f = fopen("/proc/self/smaps", "r")) == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        long kb;
        if (strchr(line, '-') != NULL && strchr(line, ':') == NULL) {
            continue;
        }
        if (line[0] >= '0' && line[0] <= '9' && strchr(line, '-') < strchr(line, ' ')) {
            char *sp = strrchr(line, ' ');
            snprintf(name, sizeof(name), "%s", sp ? sp + 1 : "?");
            name[strcspn(name, "\n")] = '\0';
            if (name[0] == '\0') {
                snprintf(name, sizeof(name), "[anon]");
            }
        } else if (sscanf(line, "Rss: %ld kB", &kb) == 1 && kb >= 64) {
            fprintf(stderr, "    rss %6ld KiB  %s\n", kb, name);
        }
    }
    fclose(f);
}

/* Run fn in a child; it writes up to MAXS doubles; returns how many. */
static int in_child(int (*fn)(double *out), double *out)
{
    int p[2], n = 0, st;
    pid_t pid;
    if (pipe(p) != 0) {
        return 0;
    }
    pid = fork();
    if (pid == 0) {
        double buf[MAXS];
        int k;
        close(p[0]);
        k = fn(buf);
        if (write(p[1], buf, sizeof(double) * (size_t)k) < 0) {
            _exit(1);
        }
        _exit(0);
    }
    close(p[1]);
    for (;;) {
        ssize_t r = read(p[0], (char *)out + n * (int)sizeof(double),
                         sizeof(double) * MAXS - (size_t)n * sizeof(double));
        if (r <= 0) {
            break;
        }
        n += (int)(r / (ssize_t)sizeof(double));
    }
    close(p[0]);
    waitpid(pid, &st, 0);
    return n;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_stat(const char *what, const char *unit, double *v, int n)
{
    if (n == 0) {
        printf("%-58s  (no data)\n", what);
        return;
    }
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    printf("%-58s  median %10.2f  min %10.2f  max %10.2f  %s (n=%d)\n", what, v[n / 2], v[0],
           v[n - 1], unit, n);
}

static void print_pct(const char *what, const char *unit, double *v, int n)
{
    if (n == 0) {
        printf("%-58s  (no data)\n", what);
        return;
    }
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    printf("%-58s  p50 %8.2f  p99 %8.2f  min %8.2f  max %8.2f  %s (n=%d)\n", what, v[n / 2],
           v[(int)((n - 1) * 0.99)], v[0], v[n - 1], unit, n);
}

/* ---------------------------------------------------------------- fixture */

struct ctx {
    uv_loop_t loop;
    char dir[64];
    char node[SWC_ID_LEN + 1];
    struct swc_exec *ex;
    struct swc_worker *w;
    int running;
    bool started;
    /* latency bench */
    char ids[64][SWC_ID_LEN + 1];
    int64_t t_assign[64];
    double lat_ms[64];
    int nids, nlat;
    /* throughput bench: Engine API requests issued while counting */
    bool counting;
    int nreq;
};

static void status_cb(void *data, const char *task_id, const Swarmc__TaskStatus *st)
{
    struct ctx *c = data;
    if (st->state == RUNNING) {
        c->running++;
    }
}

static void started_cb(void *data, int code)
{
    ((struct ctx *)data)->started = true;
}

struct waiter {
    struct ctx *c;
    bool (*cond)(struct ctx *c);
    int64_t end;
};

/* Runs before the loop would block: stop once the condition holds or the
 * deadline passed (uv_stop here keeps the loop from blocking). */
static void waiter_cb(uv_prepare_t *p)
{
    struct waiter *w = p->data;
    if (w->cond(w->c) || swc_now_mono() >= w->end) {
        uv_stop(p->loop);
    }
}

static void tick_cb(uv_timer_t *t)
{
}

static void run_until(struct ctx *c, bool (*cond)(struct ctx *c), int64_t timeout_ms)
{
    struct waiter w = {c, cond, swc_now_mono() + timeout_ms * SWC_NS_PER_MS};
    uv_prepare_t p;
    uv_timer_t t; /* wakes the loop for the deadline */
    uv_prepare_init(&c->loop, &p);
    p.data = &w;
    uv_prepare_start(&p, waiter_cb);
    uv_timer_init(&c->loop, &t);
    uv_timer_start(&t, tick_cb, (uint64_t)timeout_ms, 0);
    while (!cond(c) && swc_now_mono() < w.end) {
        uv_run(&c->loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&p, NULL);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&c->loop, UV_RUN_NOWAIT);
}

static bool is_started(struct ctx *c)
{
    return c->started;
}

static void make(struct ctx *c, struct swc_exec *ex)
{
    struct swc_worker_config wc = {.loop = &c->loop,
                                   .state_dir = c->dir,
                                   .node_id = c->node,
                                   .exec = ex,
                                   .status_cb = status_cb,
                                   .data = c};
    struct swc_err err = {0};
    c->ex = ex;
    if (swc_worker_init(&c->w, &wc, &err) != 0) {
        fprintf(stderr, "worker: %s\n", err.msg);
        exit(1);
    }
    swc_worker_start(c->w, started_cb, c);
    run_until(c, is_started, 10000);
}

static void ctx_init(struct ctx *c)
{
    memset(c, 0, sizeof(*c));
    uv_loop_init(&c->loop);
    snprintf(c->dir, sizeof(c->dir), "/tmp/swc-bench-XXXXXX");
    if (mkdtemp(c->dir) == NULL) {
        exit(1);
    }
    swc_id_new(c->node);
}

static void noop(void *d)
{
}

static void exec_closed(struct swc_exec *ex)
{
}

static void ctx_close(struct ctx *c)
{
    char cmd[128];
    if (c->w) {
        swc_worker_close(c->w, noop, NULL);
    }
    c->ex->ops->close(c->ex, exec_closed);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
}

static Swarmc__Task *mk_task(struct ctx *c, int slot, int desired, char *id_out)
{
    Swarmc__Task *t = swc_calloc(1, sizeof(*t));
    Swarmc__TaskSpec *s = swc_calloc(1, sizeof(*s));
    Swarmc__ContainerSpec *cs = swc_calloc(1, sizeof(*cs));
    char id[SWC_ID_LEN + 1];
    swarmc__task__init(t);
    swarmc__task_spec__init(s);
    swarmc__container_spec__init(cs);
    swc_id_new(id);
    if (id_out) {
        memcpy(id_out, id, sizeof(id));
    }
    t->id = swc_strdup(id);
    t->service_id = swc_strdup("benchsvc");
    t->service_name = swc_strdup("bench");
    t->node_id = swc_strdup(c->node);
    t->slot = (uint64_t)slot;
    t->desired_state = desired;
    cs->image = swc_strdup("localbusybox:latest");
    cs->command = swc_calloc(3, sizeof(char *));
    cs->command[0] = swc_strdup("/bin/sh");
    cs->command[1] = swc_strdup("-c");
    cs->command[2] = swc_strdup("exec sleep 1000");
    cs->n_command = 3;
    cs->init = true;
    cs->stop_grace_period_ns = 2 * SWC_NS_PER_SEC;
    s->container = cs;
    t->spec = s;
    return t;
}

static void assign_tasks(struct ctx *c, Swarmc__Task **ts, size_t n, bool complete)
{
    Swarmc__AssignmentsMessage m = SWARMC__ASSIGNMENTS_MESSAGE__INIT;
    Swarmc__Assignment *a = swc_calloc(n ? n : 1, sizeof(*a));
    Swarmc__Assignment **ap = swc_calloc(n ? n : 1, sizeof(*ap));
    m.type = complete ? SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE
                      : SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_INCREMENTAL;
    for (size_t i = 0; i < n; i++) {
        swarmc__assignment__init(&a[i]);
        a[i].item_case = SWARMC__ASSIGNMENT__ITEM_TASK;
        a[i].task = ts[i];
        ap[i] = &a[i];
    }
    m.n_changes = n;
    m.changes = ap;
    swc_worker_assign(c->w, &m);
    for (size_t i = 0; i < n; i++) {
        swarmc__task__free_unpacked(ts[i], &swc_pb_allocator);
    }
    swc_free(a);
    swc_free(ap);
}

/* ---------------------------------------------------------------- sim benches */

static int want_running;
static bool enough_running(struct ctx *c)
{
    return c->running >= want_running;
}

static bool with_docker_loaded; /* also start an (idle) Docker executor */

static int sim_worker_n(int n, double *out)
{
    struct ctx c;
    struct swc_exec *ex, *dex = NULL;
    struct swc_sim_config sc = {0};
    struct swc_err err = {0};
    long before;
    Swarmc__Task **ts = swc_calloc((size_t)n, sizeof(*ts));
    ctx_init(&c);
    sc.loop = &c.loop;
    sc.node_id = c.node;
    swc_sim_init(&ex, &sc, &err);
    make(&c, ex);
    if (with_docker_loaded) {
        /* what a worker on the Docker executor carries on top (once it
         * carried libcurl and ~26 libraries); the socket need not exist */
        struct swc_docker_config dc = {.loop = &c.loop,
                                       .socket_path = "/nonexistent/docker.sock",
                                       .node_id = c.node,
                                       .no_events = true};
        if (swc_docker_init(&dex, &dc, &err) != 0) {
            fprintf(stderr, "docker executor: %s\n", err.msg);
            dex = NULL;
        }
    }
    before = rss_kib();
    for (int i = 0; i < n; i++) {
        ts[i] = mk_task(&c, i + 1, RUNNING, NULL);
    }
    assign_tasks(&c, ts, (size_t)n, true);
    swc_free(ts);
    want_running = n;
    run_until(&c, enough_running, 120000);
    out[0] = (double)(rss_kib() - before);
    out[1] = (double)rss_kib();
    out[2] = (double)rollup_kib("Anonymous:");
    out[3] = out[1] - out[2]; /* file-backed: code and data of the libraries */
    if (n <= 100) {
        dump_top_mappings();
    }
    if (dex != NULL) {
        dex->ops->close(dex, exec_closed);
    }
    ctx_close(&c);
    return 4;
}

static int sim_100(double *out)
{
    return sim_worker_n(100, out);
}

static int sim_100_docker(double *out)
{
    with_docker_loaded = true;
    return sim_worker_n(100, out);
}

static int sim_10k(double *out)
{
    return sim_worker_n(10000, out);
}

static int sim_started;
static void sim_start_cb(void *data, int code, const char *errmsg, const char *cid)
{
    sim_started++;
}

/* prepare done: start the simulated container */
static void sim_prep_cb(void *data, int code, const char *errmsg, const char *cid)
{
    struct swc_exec *ex = data;
    if (code != 0 || ex->ops->start(ex, cid, sim_start_cb, ex) != 0) {
        sim_started++;
    }
}

static int sim_only_10k(double *out)
{
    uv_loop_t loop;
    struct swc_exec *ex;
    struct swc_sim_config sc = {0};
    struct swc_err err = {0};
    long before;
    const int n = 10000;
    uv_loop_init(&loop);
    sc.loop = &loop;
    sc.node_id = "bench";
    swc_sim_init(&ex, &sc, &err);
    before = rss_kib();
    for (int i = 0; i < n; i++) {
        char id[SWC_ID_LEN + 1];
        Swarmc__Task t = SWARMC__TASK__INIT;
        swc_id_new(id);
        t.id = id;
        ex->ops->prepare(ex, &t, sim_prep_cb, ex);
    }
    while (sim_started < n) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    out[0] = (double)(rss_kib() - before);
    ex->ops->close(ex, exec_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
}

/* ---------------------------------------------------------------- docker benches */

static void trace_cb(void *data, const char *method, const char *path)
{
    struct ctx *c = data;
    const char *name;
    if (c->counting && strncmp(path, "/events", 7) != 0) {
        c->nreq++;
    }
    if (strcmp(method, "POST") != 0 || strncmp(path, "/containers/create?name=", 24) != 0) {
        return;
    }
    name = path + 24;
    for (int i = 0; i < c->nids; i++) {
        if (strstr(name, c->ids[i]) != NULL && c->nlat < 64) {
            c->lat_ms[c->nlat++] = (double)(swc_now_mono() - c->t_assign[i]) / 1e6;
        }
    }
}

static struct swc_exec *docker_exec(struct ctx *c)
{
    struct swc_exec *ex;
    struct swc_docker_config dc = {.loop = &c->loop,
                                   .socket_path = sock,
                                   .node_id = c->node,
                                   .network_mode = "none",
                                   .trace_cb = trace_cb,
                                   .trace_data = c};
    struct swc_err err = {0};
    if (swc_docker_init(&ex, &dc, &err) != 0) {
        fprintf(stderr, "docker: %s\n", err.msg);
        exit(1);
    }
    return ex;
}

static bool no_tasks(struct ctx *c)
{
    return swc_worker_ntasks(c->w) == 0;
}

static void remove_all(struct ctx *c)
{
    assign_tasks(c, NULL, 0, true);
    run_until(c, no_tasks, 120000);
}

static bool all_latencies(struct ctx *c)
{
    return c->nlat >= c->nids;
}

static int docker_latency(double *out)
{
    struct ctx c;
    Swarmc__Task *ts[10];
    ctx_init(&c);
    make(&c, docker_exec(&c));
    c.nids = 10;
    for (int i = 0; i < c.nids; i++) {
        ts[i] = mk_task(&c, i + 1, READY, c.ids[i]); /* created, not started */
    }
    for (int i = 0; i < c.nids; i++) {
        c.t_assign[i] = swc_now_mono();
        assign_tasks(&c, &ts[i], 1, false); /* one message each, back to back */
    }
    run_until(&c, all_latencies, 60000);
    memcpy(out, c.lat_ms, sizeof(double) * (size_t)c.nlat);
    remove_all(&c);
    ctx_close(&c);
    return c.nlat;
}

static int worker_starts(double *out)
{
    struct ctx c;
    const int total = 16, conc = 8;
    int assigned = 0;
    int64_t t0;
    ctx_init(&c);
    make(&c, docker_exec(&c));
    t0 = swc_now_mono();
    c.counting = true;
    while (c.running < total) {
        while (assigned < total && assigned - c.running < conc) {
            Swarmc__Task *t = mk_task(&c, assigned + 1, RUNNING, NULL);
            assign_tasks(&c, &t, 1, false);
            assigned++;
        }
        uv_run(&c.loop, UV_RUN_ONCE);
        if (swc_now_mono() - t0 > 300 * SWC_NS_PER_SEC) {
            break;
        }
    }
    out[0] = c.running / ((double)(swc_now_mono() - t0) / 1e9);
    out[1] = c.running > 0 ? (double)c.nreq / c.running : 0; /* Engine API calls per start */
    c.counting = false;
    remove_all(&c);
    ctx_close(&c);
    return 2;
}

/* raw Engine API: create + start from threads, each call a blocking
 * HTTP/1.0 exchange on a fresh unix socket connection (the engine closes it
 * after the reply). A plain socket: the benchmark must not map libraries
 * the worker itself does not load, or the RSS figures above would carry
 * them. Returns the HTTP status (0 on a transport error); out gets the start
 * of the body. */
static long raw_call(const char *method, const char *path, const char *json, char *out,
                     size_t outsz)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char req[2048], resp[4096];
    size_t len = 0;
    long st = 0;
    int fd, n;
    const char *body;

    n = snprintf(req, sizeof(req),
                 "%s /v1.41%s HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, path, json ? strlen(json) : 0, json ? json : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        return 0;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        write(fd, req, (size_t)n) != (ssize_t)n) {
        close(fd);
        return 0;
    }
    for (;;) {
        ssize_t r = read(fd, resp + len, sizeof(resp) - 1 - len);
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
        if (len == sizeof(resp) - 1) {
            char skip[4096]; /* keep only the start; drain the rest */
            while (read(fd, skip, sizeof(skip)) > 0) {
            }
            break;
        }
    }
    close(fd);
    resp[len] = '\0';
    if (sscanf(resp, "HTTP/%*s %ld", &st) != 1) {
        st = 0;
    }
    body = strstr(resp, "\r\n\r\n");
    if (out != NULL) {
        snprintf(out, outsz, "%s", body ? body + 4 : "");
    }
    return st;
}

struct rawarg {
    int n;
    int started;
    char ids[4][80];
    int nid;
};

static void *raw_thread(void *arg)
{
    struct rawarg *a = arg;
    static const char body[] = "{\"Image\":\"localbusybox:latest\",\"Entrypoint\":[\"/bin/"
                               "sh\",\"-c\",\"exec sleep 1000\"],"
                               "\"Labels\":{\"swarmc.bench\":\"raw\"},\"HostConfig\":{\"Init\":"
                               "true,\"NetworkMode\":\"none\"}}";
    for (int i = 0; i < a->n; i++) {
        char out[512], path[160], *p;
        long st;
        if (raw_call("POST", "/containers/create", body, out, sizeof(out)) != 201) {
            continue;
        }
        p = strstr(out, "\"Id\":\"");
        if (p == NULL) {
            continue;
        }
        snprintf(a->ids[a->nid], sizeof(a->ids[0]), "%.64s", p + 6);
        snprintf(path, sizeof(path), "/containers/%s/start", a->ids[a->nid]);
        st = raw_call("POST", path, NULL, NULL, 0);
        a->nid++; /* removed afterwards either way */
        a->started += st == 204 || st == 304;
    }
    return NULL;
}

static int raw_starts(double *out)
{
    pthread_t th[8];
    struct rawarg args[8];
    int64_t t0 = swc_now_mono();
    int n = 0;
    memset(args, 0, sizeof(args));
    for (int i = 0; i < 8; i++) {
        args[i].n = 2;
        pthread_create(&th[i], NULL, raw_thread, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        n += args[i].started;
    }
    out[0] = n / ((double)(swc_now_mono() - t0) / 1e9);
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < args[i].nid; k++) {
            char path[160];
            snprintf(path, sizeof(path), "/containers/%s?force=1", args[i].ids[k]);
            raw_call("DELETE", path, NULL, NULL, 0);
        }
    }
    return 1;
}

/* Worker vs raw API, side by side: each run does one of each (alternating
 * which goes first, so a drift of the machine's load hits both alike) and
 * the figure that matters is the ratio of the pair. */
static void bench_paired(void)
{
    double w[MAXS], raw[MAXS], ratio[MAXS], reqs[MAXS];
    int n = 0, pairs = runs < 5 ? 5 : runs;
    for (int r = 0; r < pairs && n < MAXS; r++) {
        double ow[MAXS], orw[MAXS];
        int kw, kr;
        if (r % 2 == 0) {
            kw = in_child(worker_starts, ow);
            kr = in_child(raw_starts, orw);
        } else {
            kr = in_child(raw_starts, orw);
            kw = in_child(worker_starts, ow);
        }
        if (kw < 2 || kr < 1 || orw[0] <= 0) {
            continue;
        }
        w[n] = ow[0];
        reqs[n] = ow[1];
        raw[n] = orw[0];
        ratio[n] = ow[0] / orw[0];
        n++;
    }
    print_stat("docker: starts/s, worker, 8 tasks in flight (16 per run)", "starts/s", w, n);
    print_stat("docker: starts/s, raw Engine API create+start, 8 threads", "starts/s", raw, n);
    print_stat("docker: worker / raw starts/s, same run (ratio)", "", ratio, n);
    print_stat("docker: Engine API requests per start, worker", "req", reqs, n);
    fflush(stdout);
}

/* ---------------------------------------------------------------- main */

static void bench(const char *what, const char *unit, int (*fn)(double *), int idx, bool pct,
                  double scale_div)
{
    double all[MAXS * 8];
    int n = 0;
    for (int r = 0; r < runs; r++) {
        double out[MAXS];
        int k = in_child(fn, out);
        if (pct) {
            for (int i = 0; i < k && n < MAXS * 8; i++) {
                all[n++] = out[i];
            }
        } else if (k > idx) {
            all[n++] = scale_div != 0 ? scale_div / out[idx] : out[idx];
        }
    }
    if (pct) {
        print_pct(what, unit, all, n);
    } else {
        print_stat(what, unit, all, n);
    }
    fflush(stdout);
}

int main(void)
{
    const char *r = getenv("BENCH_RUNS");
    const char *h = getenv("DOCKER_HOST");
    if (r != NULL && atoi(r) > 0) {
        runs = atoi(r);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("bench_worker: %d runs each (forked)\n", runs);
    if (getenv("BENCH_SKIP_SIM") != NULL) {
        goto docker;
    }
    bench("sim: worker RSS growth, 100 tasks running", "KiB", sim_100, 0, false, 0);
    bench("sim: worker process RSS, 100 tasks running", "KiB", sim_100, 1, false, 0);
    bench("sim:   of which anonymous (heap, stacks)", "KiB", sim_100, 2, false, 0);
    bench("sim:   of which file-backed (libraries)", "KiB", sim_100, 3, false, 0);
    bench("sim: same + idle Docker executor loaded", "KiB", sim_100_docker, 1, false, 0);
    /* tasks per MiB = 10000 / (delta KiB / 1024) */
    bench("sim: tasks per MiB, whole worker (10,000 tasks)", "tasks/MiB", sim_10k, 0, false,
          10000.0 * 1024.0);
    bench("sim: tasks per MiB, sim executor alone (10,000)", "tasks/MiB", sim_only_10k, 0, false,
          10000.0 * 1024.0);
docker:
    sock = swc_docker_socket_from_host(h);
    if (sock == NULL) {
        printf("docker benchmarks skipped: set DOCKER_HOST=unix:///path/docker.sock\n");
        return 0;
    }
    bench("docker: assignment -> POST /containers/create issued", "ms", docker_latency, 0, true, 0);
    bench_paired();
    return 0;
}
