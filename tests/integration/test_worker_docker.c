/* The worker against a real Docker engine (DOCKER_HOST=unix:///path or
 * SWARMC_TEST_DOCKER_SOCK; start one with scripts/dockerd.sh). Covers run to
 * completion (exit 0 and 3), stop with grace, health checks, resource limits
 * and mounts as the engine sees them, a container killed behind our back, and
 * adoption of running containers by a re-created worker. Uses the offline
 * image localbusybox:latest and about ten containers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/id.h"
#include "worker/docker.h"
#include "worker/runner.h"
#include "worker/worker.h"

#define RUNNING  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define COMPLETE SWARMC__TASK_STATE__TASK_STATE_COMPLETE
#define SHUTDOWN SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
#define FAILED   SWARMC__TASK_STATE__TASK_STATE_FAILED
#define IMAGE    "localbusybox:latest"

static const char *sock;

struct fx {
    uv_loop_t loop;
    char dir[64];
    char node[SWC_ID_LEN + 1];
    struct swc_exec *ex;
    struct swc_worker *w;
    bool started;
};

/* ---------------------------------------------------------------- raw Engine API (blocking, test
 * only) */

static size_t collect(char *p, size_t s, size_t n, void *u)
{
    struct swc_buf {
        char *d;
        size_t len;
    } *b = u;
    char *nd = realloc(b->d, b->len + s * n + 1);
    if (nd == NULL) {
        return 0;
    }
    memcpy(nd + b->len, p, s * n);
    b->len += s * n;
    nd[b->len] = '\0';
    b->d = nd;
    return s * n;
}

/* method path -> HTTP status; *out (malloc'd body) when out != NULL. */
static long api(const char *method, const char *path, char **out)
{
    CURL *c = curl_easy_init();
    struct {
        char *d;
        size_t len;
    } b = {NULL, 0};
    char url[1024];
    long status = 0;
    snprintf(url, sizeof(url), "http://localhost/v1.41%s", path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(c);
    if (out != NULL) {
        *out = b.d;
    } else {
        free(b.d);
    }
    return status;
}

static json_t *api_json(const char *path)
{
    char *body = NULL;
    json_t *j = NULL;
    if (api("GET", path, &body) == 200) {
        j = json_loads(body, 0, NULL);
    }
    free(body);
    return j;
}

/* Container ids carrying our node label. */
static size_t our_containers(struct fx *f, char ids[][80], size_t max)
{
    char path[512];
    json_t *j;
    size_t n = 0;
    snprintf(path, sizeof(path),
             "/containers/"
             "json?all=1&filters=%%7B%%22label%%22%%3A%%5B%%22swarmc.node.id%%3D%s%%22%%5D%%7D",
             f->node);
    j = api_json(path);
    assert_non_null(j);
    for (size_t i = 0; i < json_array_size(j) && n < max; i++) {
        snprintf(ids[n++], 80, "%s",
                 json_string_value(json_object_get(json_array_get(j, i), "Id")));
    }
    json_decref(j);
    return n;
}

/* ---------------------------------------------------------------- fixture */

static void deadline_cb(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

struct waiter {
    struct fx *f;
    bool (*cond)(struct fx *f, const void *a);
    const void *arg;
    bool expired;
};

/* Evaluated before the loop would block: stop it once the condition holds
 * (libuv does not block for I/O after uv_stop in a prepare callback). */
static void waiter_prepare_cb(uv_prepare_t *p)
{
    struct waiter *w = p->data;
    if (w->expired || w->cond(w->f, w->arg)) {
        uv_stop(p->loop);
    }
}

static void waiter_deadline_cb(uv_timer_t *t)
{
    ((struct waiter *)t->data)->expired = true;
}

static bool run_until(struct fx *f, bool (*cond)(struct fx *f, const void *arg), const void *arg,
                      uint64_t ms)
{
    struct waiter w = {.f = f};
    uv_prepare_t p;
    uv_timer_t t;
    w.cond = cond;
    w.arg = arg;
    uv_prepare_init(&f->loop, &p);
    p.data = &w;
    uv_prepare_start(&p, waiter_prepare_cb);
    uv_timer_init(&f->loop, &t);
    t.data = &w;
    uv_timer_start(&t, waiter_deadline_cb, ms, 0);
    while (!w.expired && !(cond(f, arg))) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&p, NULL);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return cond(f, arg);
}

static void status_cb(void *data, const char *task_id, const Swarmc__TaskStatus *st)
{
    if (getenv("SWARMC_TEST_VERBOSE")) {
        fprintf(stderr, "  %s -> %d %s\n", task_id, st->state, st->message);
    }
}

static void start_done(void *data, int code)
{
    ((struct fx *)data)->started = true;
}

static bool is_started(struct fx *f, const void *arg)
{
    return f->started;
}

static void make_worker(struct fx *f)
{
    struct swc_worker_config wc = {.loop = &f->loop,
                                   .state_dir = f->dir,
                                   .node_id = f->node,
                                   .exec = f->ex,
                                   .status_cb = status_cb,
                                   .data = f};
    struct swc_err err = {0};
    assert_int_equal(swc_worker_init(&f->w, &wc, &err), 0);
    f->started = false;
    assert_int_equal(swc_worker_start(f->w, start_done, f), 0);
    assert_true(run_until(f, is_started, NULL, 10000));
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct swc_docker_config dc = {0};
    struct swc_err err = {0};
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/swc-wdock-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    swc_id_new(f->node);
    dc.loop = &f->loop;
    dc.socket_path = sock;
    dc.node_id = f->node;
    dc.network_mode = "none";
    assert_int_equal(swc_docker_init(&f->ex, &dc, &err), 0);
    make_worker(f);
    *state = f;
    return 0;
}

static void noop_close(void *data)
{
}

static void exec_closed(struct swc_exec *ex)
{
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char ids[32][80], path[256], cmd[128];
    size_t n;
    if (f->w != NULL) {
        swc_worker_close(f->w, noop_close, NULL);
    }
    f->ex->ops->close(f->ex, exec_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    n = our_containers(f, ids, 32);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "/containers/%s?force=1", ids[i]);
        api("DELETE", path, NULL);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static char **strv(int n, ...)
{
    va_list ap;
    char **v = swc_calloc((size_t)n, sizeof(char *));
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        v[i] = swc_strdup(va_arg(ap, const char *));
    }
    va_end(ap);
    return v;
}

static Swarmc__Task *new_task(struct fx *f, int slot, const char *shcmd)
{
    Swarmc__Task *t = swc_calloc(1, sizeof(*t));
    Swarmc__TaskSpec *s = swc_calloc(1, sizeof(*s));
    Swarmc__ContainerSpec *c = swc_calloc(1, sizeof(*c));
    char id[SWC_ID_LEN + 1];
    swarmc__task__init(t);
    swarmc__task_spec__init(s);
    swarmc__container_spec__init(c);
    swc_id_new(id);
    t->id = swc_strdup(id);
    t->service_id = swc_strdup("svc");
    t->service_name = swc_strdup("wtest");
    t->node_id = swc_strdup(f->node);
    t->slot = (uint64_t)slot;
    t->desired_state = RUNNING;
    c->image = swc_strdup(IMAGE);
    c->command = strv(3, "/bin/sh", "-c", shcmd);
    c->n_command = 3;
    c->init = true; /* sleep as PID 1 would ignore SIGTERM */
    s->container = c;
    t->spec = s;
    return t;
}

static int assign1(struct fx *f, Swarmc__Task *t)
{
    Swarmc__AssignmentsMessage m = SWARMC__ASSIGNMENTS_MESSAGE__INIT;
    Swarmc__Assignment a = SWARMC__ASSIGNMENT__INIT, *ap = &a;
    m.type = SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_INCREMENTAL;
    a.action = SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_UPDATE;
    a.item_case = SWARMC__ASSIGNMENT__ITEM_TASK;
    a.task = t;
    m.n_changes = 1;
    m.changes = &ap;
    return swc_worker_assign(f->w, &m);
}

struct want {
    const char *id;
    int state;
};

static bool in_state(struct fx *f, const void *arg)
{
    const struct want *w = arg;
    return swc_worker_task_state(f->w, w->id) == w->state;
}

static void wait_state(struct fx *f, const char *id, int state, uint64_t ms)
{
    struct want w = {id, state};
    bool ok = run_until(f, in_state, &w, ms);
    if (!ok) {
        const Swarmc__TaskStatus *st = swc_worker_task_status(f->w, id);
        fprintf(stderr, "task %s: state %d (%s), wanted %d\n", id, st ? (int)st->state : -1,
                st ? st->message : "?", state);
    }
    assert_true(ok);
}

struct logs {
    char out[256], err[256];
    bool done;
    int code;
};

static void logs_cb(void *data, int stream, const char *buf, size_t len)
{
    struct logs *l = data;
    char *dst = stream == 2 ? l->err : l->out;
    size_t have = strlen(dst);
    if (have + len < sizeof(l->out)) {
        memcpy(dst + have, buf, len);
        dst[have + len] = '\0';
    }
}

static void logs_done(void *data, int code, const char *errmsg, const char *cid)
{
    struct logs *l = data;
    l->done = true;
    l->code = code;
}

static bool logs_finished(struct fx *f, const void *arg)
{
    return ((const struct logs *)arg)->done;
}

struct desc {
    bool done;
    int code;
    char host[128], os[32], version[64];
    int64_t nano_cpus, mem;
};

static void describe_cb(void *data, int code, const char *errmsg, const Swarmc__NodeDescription *nd)
{
    struct desc *d = data;
    d->done = true;
    d->code = code;
    if (nd != NULL) {
        snprintf(d->host, sizeof(d->host), "%s", nd->hostname);
        snprintf(d->os, sizeof(d->os), "%s", nd->platform->os);
        snprintf(d->version, sizeof(d->version), "%s", nd->engine->engine_version);
        d->nano_cpus = nd->resources->nano_cpus;
        d->mem = nd->resources->memory_bytes;
    }
}

static bool described(struct fx *f, const void *arg)
{
    return ((const struct desc *)arg)->done;
}

/* ---------------------------------------------------------------- tests */

static void test_run_to_completion(void **state)
{
    struct fx *f = *state;
    Swarmc__Task *t0 = new_task(f, 1, "echo hello; exit 0");
    Swarmc__Task *t3 = new_task(f, 2, "echo oops >&2; exit 3");
    char id0[32], id3[32];
    const Swarmc__TaskStatus *st;
    snprintf(id0, sizeof(id0), "%s", t0->id);
    snprintf(id3, sizeof(id3), "%s", t3->id);
    assert_int_equal(assign1(f, t0), 0);
    assert_int_equal(assign1(f, t3), 0);
    swarmc__task__free_unpacked(t0, &swc_pb_allocator);
    swarmc__task__free_unpacked(t3, &swc_pb_allocator);
    wait_state(f, id0, COMPLETE, 30000);
    wait_state(f, id3, FAILED, 30000);
    st = swc_worker_task_status(f->w, id0);
    assert_int_equal(st->exit_code, 0);
    assert_true(st->container_id[0] != '\0');
    st = swc_worker_task_status(f->w, id3);
    assert_int_equal(st->exit_code, 3);
    assert_non_null(strstr(st->err, "non-zero exit (3)"));
    /* the container is named <service>.<slot>.<task id> and labelled */
    {
        char path[256];
        json_t *j;
        snprintf(path, sizeof(path), "/containers/%s/json", st->container_id);
        j = api_json(path);
        assert_non_null(j);
        char name[96];
        snprintf(name, sizeof(name), "/wtest.2.%s", id3);
        assert_string_equal(json_string_value(json_object_get(j, "Name")), name);
        assert_string_equal(
            json_string_value(json_object_get(
                json_object_get(json_object_get(j, "Config"), "Labels"), "swarmc.task.id")),
            id3);
        json_decref(j);
    }
    /* its logs, demultiplexed: stderr carries "oops" */
    {
        struct logs l = {0};
        assert_int_equal(swc_worker_logs(f->w, id3, -1, logs_cb, logs_done, &l), 0);
        assert_true(run_until(f, logs_finished, &l, 10000));
        assert_int_equal(l.code, 0);
        assert_string_equal(l.err, "oops\n");
        assert_string_equal(l.out, "");
    }
}

static void test_describe(void **state)
{
    struct fx *f = *state;
    struct desc d = {0};
    assert_int_equal(swc_worker_describe(f->w, describe_cb, &d), 0);
    assert_true(run_until(f, described, &d, 10000));
    assert_int_equal(d.code, 0);
    assert_true(d.host[0] != '\0');
    assert_true(d.version[0] != '\0');
    assert_string_equal(d.os, "linux");
    assert_true(d.nano_cpus >= 1000000000LL);
    assert_true(d.mem > 0);
}

static void test_oom_killed(void **state)
{
    struct fx *f = *state;
    /* 16 MiB limit, then a shell variable of 64 MiB */
    Swarmc__Task *t = new_task(f, 1, "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}");
    char id[32];
    const Swarmc__TaskStatus *st;
    snprintf(id, sizeof(id), "%s", t->id);
    t->spec->resources = swc_calloc(1, sizeof(*t->spec->resources));
    swarmc__resource_requirements__init(t->spec->resources);
    t->spec->resources->limits = swc_calloc(1, sizeof(Swarmc__Resources));
    swarmc__resources__init(t->spec->resources->limits);
    t->spec->resources->limits->memory_bytes = 16 << 20;
    assert_int_equal(assign1(f, t), 0);
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
    wait_state(f, id, FAILED, 60000);
    st = swc_worker_task_status(f->w, id);
    assert_non_null(strstr(st->err, "OOM"));
}

static void test_stop_with_grace(void **state)
{
    struct fx *f = *state;
    Swarmc__Task *t = new_task(f, 1, "exec sleep 1000");
    char id[32], cid[80], path[256];
    int64_t t0;
    snprintf(id, sizeof(id), "%s", t->id);
    t->spec->container->stop_grace_period_ns = 20 * SWC_NS_PER_SEC;
    assert_int_equal(assign1(f, t), 0);
    wait_state(f, id, RUNNING, 30000);
    snprintf(cid, sizeof(cid), "%s", swc_worker_task_status(f->w, id)->container_id);
    t->desired_state = SHUTDOWN;
    t0 = swc_now_mono();
    assert_int_equal(assign1(f, t), 0);
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
    wait_state(f, id, SHUTDOWN, 30000);
    /* SIGTERM reached sleep (through Init): far less than the 20 s grace */
    assert_true(swc_now_mono() - t0 < 10 * SWC_NS_PER_SEC);
    /* and the container is removed */
    snprintf(path, sizeof(path), "/containers/%s/json", cid);
    for (int i = 0; i < 100 && api("GET", path, NULL) != 404; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(50000);
    }
    assert_int_equal(api("GET", path, NULL), 404);
}

static void test_healthcheck(void **state)
{
    struct fx *f = *state;
    Swarmc__Task *good = new_task(f, 1, "exec sleep 1000");
    Swarmc__Task *bad = new_task(f, 2, "exec sleep 1000");
    char gid[32], bid[32];
    Swarmc__Task *ts[2] = {good, bad};
    for (int i = 0; i < 2; i++) {
        Swarmc__HealthConfig *h = swc_calloc(1, sizeof(*h));
        swarmc__health_config__init(h);
        h->test = strv(2, "CMD-SHELL", i == 0 ? "true" : "false");
        h->n_test = 2;
        h->interval_ns = 300 * SWC_NS_PER_MS;
        h->timeout_ns = 2 * SWC_NS_PER_SEC;
        h->retries = 1;
        ts[i]->spec->container->healthcheck = h;
    }
    snprintf(gid, sizeof(gid), "%s", good->id);
    snprintf(bid, sizeof(bid), "%s", bad->id);
    assert_int_equal(assign1(f, good), 0);
    assert_int_equal(assign1(f, bad), 0);
    swarmc__task__free_unpacked(good, &swc_pb_allocator);
    swarmc__task__free_unpacked(bad, &swc_pb_allocator);
    wait_state(f, gid, RUNNING, 30000);
    assert_string_equal(swc_worker_task_status(f->w, gid)->message, "started (healthy)");
    wait_state(f, bid, FAILED, 30000);
    assert_string_equal(swc_worker_task_status(f->w, bid)->err, "container is unhealthy");
    /* the unhealthy container is stopped (a stop issued from an event) */
    {
        char path[256];
        bool stopped = false;
        snprintf(path, sizeof(path), "/containers/%s/json",
                 swc_worker_task_status(f->w, bid)->container_id);
        for (int i = 0; i < 300 && !stopped; i++) { /* 30 s deadline */
            json_t *j;
            uv_run(&f->loop, UV_RUN_NOWAIT);
            j = api_json(path);
            stopped = j && !json_is_true(json_object_get(json_object_get(j, "State"), "Running"));
            json_decref(j);
            if (!stopped) {
                usleep(100000);
            }
        }
        assert_true(stopped);
    }
}

static void test_limits_and_mounts(void **state)
{
    struct fx *f = *state;
    char src[96], file[128], id[32], path[256];
    Swarmc__Task *t;
    Swarmc__Mount *m[2];
    json_t *j, *hc, *mounts;
    FILE *fp;
    snprintf(src, sizeof(src), "%s/bind", f->dir);
    assert_int_equal(mkdir(src, 0755), 0);
    snprintf(file, sizeof(file), "%s/hello", src);
    fp = fopen(file, "w");
    fputs("hi\n", fp);
    fclose(fp);
    t = new_task(f, 1,
                 "grep -q hi /data/hello && grep -q ' /scratch tmpfs' /proc/mounts && "
                 "touch /scratch/x && ! touch /data/y 2>/dev/null && exit 0 || exit 9");
    snprintf(id, sizeof(id), "%s", t->id);
    for (int i = 0; i < 2; i++) {
        m[i] = swc_calloc(1, sizeof(*m[i]));
        swarmc__mount__init(m[i]);
    }
    m[0]->type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_BIND;
    m[0]->source = swc_strdup(src);
    m[0]->target = swc_strdup("/data");
    m[0]->read_only = true;
    m[1]->type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_TMPFS;
    m[1]->target = swc_strdup("/scratch");
    m[1]->tmpfs_size_bytes = 1 << 20;
    m[1]->tmpfs_mode = 01777;
    t->spec->container->mounts = swc_calloc(2, sizeof(Swarmc__Mount *));
    t->spec->container->mounts[0] = m[0];
    t->spec->container->mounts[1] = m[1];
    t->spec->container->n_mounts = 2;
    t->spec->resources = swc_calloc(1, sizeof(*t->spec->resources));
    swarmc__resource_requirements__init(t->spec->resources);
    t->spec->resources->limits = swc_calloc(1, sizeof(Swarmc__Resources));
    swarmc__resources__init(t->spec->resources->limits);
    t->spec->resources->limits->memory_bytes = 64 << 20;
    t->spec->resources->limits->nano_cpus = 500000000;
    assert_int_equal(assign1(f, t), 0);
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
    wait_state(f, id, COMPLETE, 30000);
    snprintf(path, sizeof(path), "/containers/%s/json",
             swc_worker_task_status(f->w, id)->container_id);
    j = api_json(path);
    assert_non_null(j);
    hc = json_object_get(j, "HostConfig");
    assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 64 << 20);
    assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 500000000);
    assert_true(json_is_true(json_object_get(hc, "Init")));
    mounts = json_object_get(hc, "Mounts");
    assert_int_equal(json_array_size(mounts), 2);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(mounts, 1), "TmpfsOptions"), "Mode")),
                     01777);
    json_decref(j);
}

static void test_killed_behind_our_back(void **state)
{
    struct fx *f = *state;
    Swarmc__Task *t = new_task(f, 1, "exec sleep 1000");
    char id[32], path[256];
    const Swarmc__TaskStatus *st;
    snprintf(id, sizeof(id), "%s", t->id);
    assert_int_equal(assign1(f, t), 0);
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
    wait_state(f, id, RUNNING, 30000);
    snprintf(path, sizeof(path), "/containers/%s/kill",
             swc_worker_task_status(f->w, id)->container_id);
    assert_int_equal(api("POST", path, NULL), 204);
    wait_state(f, id, FAILED, 30000);
    st = swc_worker_task_status(f->w, id);
    assert_int_equal(st->exit_code, 137);
    assert_non_null(strstr(st->err, "non-zero exit (137)"));
}

static void test_adopt_after_restart(void **state)
{
    struct fx *f = *state;
    Swarmc__Task *a = new_task(f, 1, "exec sleep 1000"), *b = new_task(f, 2, "exec sleep 1000");
    char ida[32], idb[32], cida[80], ids[32][80];
    snprintf(ida, sizeof(ida), "%s", a->id);
    snprintf(idb, sizeof(idb), "%s", b->id);
    assert_int_equal(assign1(f, a), 0);
    assert_int_equal(assign1(f, b), 0);
    swarmc__task__free_unpacked(a, &swc_pb_allocator);
    swarmc__task__free_unpacked(b, &swc_pb_allocator);
    wait_state(f, ida, RUNNING, 30000);
    wait_state(f, idb, RUNNING, 30000);
    snprintf(cida, sizeof(cida), "%s", swc_worker_task_status(f->w, ida)->container_id);
    assert_int_equal(our_containers(f, ids, 32), 2);
    /* the worker and its executor go away (a process restart); the
     * containers keep running */
    swc_worker_close(f->w, noop_close, NULL);
    f->w = NULL;
    f->ex->ops->close(f->ex, exec_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    {
        struct swc_docker_config dc = {
            .loop = &f->loop, .socket_path = sock, .node_id = f->node, .network_mode = "none"};
        struct swc_err err = {0};
        assert_int_equal(swc_docker_init(&f->ex, &dc, &err), 0);
    }
    make_worker(f);
    assert_int_equal(swc_worker_ntasks(f->w), 2);
    assert_int_equal(swc_worker_task_state(f->w, ida), RUNNING);
    assert_int_equal(swc_worker_task_state(f->w, idb), RUNNING);
    assert_string_equal(swc_worker_task_status(f->w, ida)->container_id, cida);
    /* give a wrongly started prepare time to show up: still the same two */
    {
        uv_timer_t t;
        bool expired = false;
        uv_timer_init(&f->loop, &t);
        t.data = &expired;
        uv_timer_start(&t, deadline_cb, 500, 0);
        while (!expired) {
            uv_run(&f->loop, UV_RUN_ONCE);
        }
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(our_containers(f, ids, 32), 2);
    assert_int_equal(swc_worker_task_state(f->w, ida), RUNNING);
}

int main(void)
{
    const char *h = getenv("SWARMC_TEST_DOCKER_SOCK");
    if (h == NULL || h[0] == '\0') {
        h = getenv("DOCKER_HOST");
    }
    sock = swc_docker_socket_from_host(h);
    if (sock == NULL) {
        fprintf(stderr, "test_worker_docker: skipped: set DOCKER_HOST=unix:///path/docker.sock "
                        "(scripts/dockerd.sh start DIR prints one)\n");
        return 77;
    }
    if (api("GET", "/_ping", NULL) != 200) {
        fprintf(stderr, "test_worker_docker: no Docker engine answers at %s\n", sock);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_to_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthcheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_mounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_behind_our_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom_killed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
