/* The Docker executor against a fake engine: a unix-socket HTTP server in a
 * thread that answers like Docker, except on the endpoint a test breaks
 * (garbage, truncated bodies, slow replies, 400/404/409/500, bad JSON, the
 * connection dropped mid-body). Every fault must end as a rejected or failed
 * task (or an operation error) whose message names the operation and what
 * the engine said; nothing crashes or leaks (run under ASan). Also checks
 * the /events stream parsing, the 8-byte log frame demultiplexing and the
 * create request body. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "worker/docker.h"
#include "worker/worker.h"

#define RUNNING  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define FAILED   SWARMC__TASK_STATE__TASK_STATE_FAILED
#define REJECTED SWARMC__TASK_STATE__TASK_STATE_REJECTED
#define TASK_ID  "faketask00000000000000001"
#define CID      "c0ffee0000000000000000000000000000000000000000000000000000000001"

/* ---------------------------------------------------------------- fake engine */

/* A fault: requests whose "METHOD path" starts with match get raw bytes as
 * the reply, after delay_ms; the connection is then closed. */
struct fault {
    const char *match;
    const char *raw;
    int delay_ms;
    size_t raw_len; /* 0 = strlen(raw) */
    int times;      /* apply to the first N matching requests only (0 = all) */
    int hits;
};

static struct {
    char path[108];
    int lfd;
    pthread_t accept_thr;
    pthread_mutex_t mu;
    int conns[64];
    pthread_t thr[64];
    int nconns;
    int events_fd; /* the open /events connection, or -1 */
    bool stop;
    struct fault fault;
    struct fault fault2; /* a second broken endpoint */
    char last_create[8192];
    int ncreate;
    int ndelete_orphan; /* DELETE /containers/orphan1 requests */
} fk;

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int status, const char *reason, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, strlen(body));
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
}

static const char *default_reply(const char *req, int *status)
{
    *status = 200;
    if (strncmp(req, "GET /v1.41/images/", 18) == 0) {
        return "{\"Id\":\"sha256:1\"}";
    }
    if (strncmp(req, "POST /v1.41/containers/create", 29) == 0) {
        *status = 201;
        return "{\"Id\":\"" CID "\",\"Warnings\":[]}";
    }
    if (strncmp(req, "GET /v1.41/containers/json", 26) == 0) {
        return "[]";
    }
    if (strncmp(req, "GET /v1.41/info", 15) == 0) {
        return "{\"Name\":\"fakehost\",\"OSType\":\"linux\",\"Architecture\":\"x86_64\",\"NCPU\":2,"
               "\"MemTotal\":1073741824,\"ServerVersion\":\"20.10-fake\",\"Labels\":[\"zone=a\"]}";
    }
    if (strncmp(req, "GET /v1.41/containers/", 22) == 0) {
        return "{\"Id\":\"" CID "\",\"State\":{\"Running\":true,\"Status\":\"running\"},"
               "\"Config\":{\"Labels\":{\"swarmc.task.id\":\"" TASK_ID "\"}}}";
    }
    *status = 204;
    return "";
}

static void *conn_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    size_t len = 0;
    char *hend = NULL;
    long clen = 0;
    int status;
    const char *body;

    while (hend == NULL && len < sizeof(buf) - 1) {
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0) {
            goto out;
        }
        len += (size_t)r;
        buf[len] = '\0';
        hend = strstr(buf, "\r\n\r\n");
    }
    if (hend == NULL) {
        goto out;
    }
    {
        char *cl = strcasestr(buf, "Content-Length:");
        if (cl != NULL && cl < hend) {
            clen = strtol(cl + 15, NULL, 10);
        }
    }
    while ((long)(len - (size_t)(hend + 4 - buf)) < clen && len < sizeof(buf) - 1) {
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
        buf[len] = '\0';
    }
    if (strncmp(buf, "POST /v1.41/containers/create", 29) == 0) {
        pthread_mutex_lock(&fk.mu);
        snprintf(fk.last_create, sizeof(fk.last_create), "%s", hend + 4);
        fk.ncreate++;
        pthread_mutex_unlock(&fk.mu);
    }
    if (strncmp(buf, "DELETE /v1.41/containers/orphan1", 32) == 0) {
        pthread_mutex_lock(&fk.mu);
        fk.ndelete_orphan++;
        pthread_mutex_unlock(&fk.mu);
    }
    for (int k = 0; k < 2; k++) {
        struct fault *ft = k == 0 ? &fk.fault : &fk.fault2;
        bool hit = false;
        pthread_mutex_lock(&fk.mu);
        if (ft->match != NULL && strncmp(buf, ft->match, strlen(ft->match)) == 0 &&
            (ft->times == 0 || ft->hits < ft->times)) {
            ft->hits++;
            hit = true;
        }
        pthread_mutex_unlock(&fk.mu);
        if (hit) {
            for (int i = 0; i < ft->delay_ms / 10 && !fk.stop; i++) {
                usleep(10000);
            }
            send_all(fd, ft->raw, ft->raw_len ? ft->raw_len : strlen(ft->raw));
            goto out;
        }
    }
    if (strncmp(buf, "GET /v1.41/events", 17) == 0) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
        send_all(fd, h, strlen(h));
        pthread_mutex_lock(&fk.mu);
        fk.events_fd = fd;
        pthread_mutex_unlock(&fk.mu);
        while (!fk.stop) {
            usleep(10000);
        }
        return NULL; /* closed by fake_stop */
    }
    body = default_reply(buf, &status);
    reply(fd, status, "OK", body);
out:
    shutdown(fd, SHUT_RDWR);
    return NULL;
}

static void *accept_thread(void *arg)
{
    while (!fk.stop) {
        int fd = accept(fk.lfd, NULL, NULL);
        if (fd < 0) {
            if (fk.stop) {
                break;
            }
            continue;
        }
        pthread_mutex_lock(&fk.mu);
        if (fk.nconns < 64) {
            fk.conns[fk.nconns] = fd;
            pthread_create(&fk.thr[fk.nconns], NULL, conn_thread, (void *)(intptr_t)fd);
            fk.nconns++;
        } else {
            close(fd);
        }
        pthread_mutex_unlock(&fk.mu);
    }
    return NULL;
}

static void fake_start(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memset(&fk, 0, sizeof(fk));
    pthread_mutex_init(&fk.mu, NULL);
    fk.events_fd = -1;
    snprintf(fk.path, sizeof(fk.path), "/tmp/swc-fakedocker-%d.sock", (int)getpid());
    unlink(fk.path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fk.path);
    fk.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fk.lfd >= 0);
    assert_int_equal(bind(fk.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fk.lfd, 64), 0);
    pthread_create(&fk.accept_thr, NULL, accept_thread, NULL);
}

static void fake_stop(void)
{
    fk.stop = true;
    shutdown(fk.lfd, SHUT_RDWR);
    close(fk.lfd);
    pthread_join(fk.accept_thr, NULL);
    for (int i = 0; i < fk.nconns; i++) {
        shutdown(fk.conns[i], SHUT_RDWR);
        pthread_join(fk.thr[i], NULL);
        close(fk.conns[i]);
    }
    unlink(fk.path);
    pthread_mutex_destroy(&fk.mu);
}

/* Push one chunk of the events stream. */
static void fake_event(const char *line)
{
    char head[32];
    size_t n = strlen(line);
    int h = snprintf(head, sizeof(head), "%zx\r\n", n);
    pthread_mutex_lock(&fk.mu);
    if (fk.events_fd >= 0) {
        send_all(fk.events_fd, head, (size_t)h);
        send_all(fk.events_fd, line, n);
        send_all(fk.events_fd, "\r\n", 2);
    }
    pthread_mutex_unlock(&fk.mu);
}

/* ---------------------------------------------------------------- fixture */

struct fx {
    uv_loop_t loop;
    char dir[64];
    struct swc_exec *ex;
    struct swc_worker *w;
    bool started;
};

struct waiter {
    struct fx *f;
    bool (*cond)(struct fx *f, const void *a);
    const void *a;
    bool expired;
};

/* Evaluated before the loop would block: stop it once the condition holds
 * (libuv does not block for I/O after uv_stop in a prepare callback). */
static void waiter_prepare_cb(uv_prepare_t *p)
{
    struct waiter *w = p->data;
    if (w->expired || w->cond(w->f, w->a)) {
        uv_stop(p->loop);
    }
}

static void waiter_deadline_cb(uv_timer_t *t)
{
    ((struct waiter *)t->data)->expired = true;
}

static bool run_until(struct fx *f, bool (*cond)(struct fx *f, const void *a), const void *a,
                      uint64_t ms)
{
    struct waiter w = {.f = f};
    uv_prepare_t p;
    uv_timer_t t;
    w.cond = cond;
    w.a = a;
    uv_prepare_init(&f->loop, &p);
    p.data = &w;
    uv_prepare_start(&p, waiter_prepare_cb);
    uv_timer_init(&f->loop, &t);
    t.data = &w;
    uv_timer_start(&t, waiter_deadline_cb, ms, 0);
    while (!w.expired && !(cond(f, a))) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&p, NULL);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return cond(f, a);
}

static void start_done(void *data, int code)
{
    ((struct fx *)data)->started = true;
}

static bool is_started(struct fx *f, const void *a)
{
    return f->started;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct swc_docker_config dc = {0};
    struct swc_worker_config wc = {0};
    struct swc_err err = {0};
    fake_start();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/swc-wfake-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    dc.loop = &f->loop;
    dc.socket_path = fk.path;
    dc.node_id = "fakenode";
    dc.network_mode = "none";
    dc.op_timeout_ns = 400 * SWC_NS_PER_MS;
    assert_int_equal(swc_docker_init(&f->ex, &dc, &err), 0);
    wc.loop = &f->loop;
    wc.state_dir = f->dir;
    wc.node_id = "fakenode";
    wc.exec = f->ex;
    assert_int_equal(swc_worker_init(&f->w, &wc, &err), 0);
    assert_int_equal(swc_worker_start(f->w, start_done, f), 0);
    assert_true(run_until(f, is_started, NULL, 5000));
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
    char cmd[128];
    if (f->w) {
        swc_worker_close(f->w, noop_close, NULL);
    }
    f->ex->ops->close(f->ex, exec_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    fake_stop();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static Swarmc__Task *new_task(void)
{
    Swarmc__Task *t = swc_calloc(1, sizeof(*t));
    Swarmc__TaskSpec *s = swc_calloc(1, sizeof(*s));
    Swarmc__ContainerSpec *c = swc_calloc(1, sizeof(*c));
    swarmc__task__init(t);
    swarmc__task_spec__init(s);
    swarmc__container_spec__init(c);
    t->id = swc_strdup(TASK_ID);
    t->service_id = swc_strdup("svc");
    t->service_name = swc_strdup("web");
    t->slot = 1;
    t->desired_state = RUNNING;
    c->image = swc_strdup("img:1");
    s->container = c;
    t->spec = s;
    return t;
}

static void assign_task(struct fx *f, Swarmc__Task *t)
{
    Swarmc__AssignmentsMessage m = SWARMC__ASSIGNMENTS_MESSAGE__INIT;
    Swarmc__Assignment a = SWARMC__ASSIGNMENT__INIT, *ap = &a;
    a.item_case = SWARMC__ASSIGNMENT__ITEM_TASK;
    a.task = t;
    m.n_changes = 1;
    m.changes = &ap;
    assert_int_equal(swc_worker_assign(f->w, &m), 0);
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
}

static bool task_in(struct fx *f, const void *a)
{
    return swc_worker_task_state(f->w, TASK_ID) == *(const int *)a;
}

/* Break one endpoint, run a task, expect state with a message containing want. */
static void expect_fault(void **state, const char *match, const char *raw, int delay_ms,
                         int want_state, const char *want1, const char *want2)
{
    struct fx *f = *state;
    const Swarmc__TaskStatus *st;
    fk.fault.match = match;
    fk.fault.raw = raw;
    fk.fault.delay_ms = delay_ms;
    assign_task(f, new_task());
    assert_true(run_until(f, task_in, &want_state, 5000));
    st = swc_worker_task_status(f->w, TASK_ID);
    if (strstr(st->err, want1) == NULL || (want2 && strstr(st->err, want2) == NULL)) {
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", st->err, want1, want2 ? want2 : "");
    }
}

/* ---------------------------------------------------------------- fault tests */

static void test_create_404(void **state)
{
    /* no such image and the pull gives nothing usable */
    fk.fault2.match = "POST /v1.41/images/create";
    fk.fault2.raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 37\r\n\r\n"
                 "{\"message\":\"No such image: img:1\"}\n\n\n",
                 0, REJECTED, "create container web.1." TASK_ID, "HTTP 404: No such image: img:1");
}

static void test_create_500(void **state)
{
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 16\r\n\r\n"
                 "{\"message\":\"x\"}\n",
                 0, REJECTED, "create container", "HTTP 500: x");
}

static void test_create_400_not_json(void **state)
{
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nbad\x01request", 0,
                 REJECTED, "HTTP 400", "bad.request");
}

static void test_create_bad_json(void **state)
{
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{not json", 0, REJECTED,
                 "create container", "bad JSON");
}

static void test_create_no_id(void **state)
{
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", 0, REJECTED,
                 "create container", "no container Id");
}

static void test_create_truncated(void **state)
{
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"Id\":\"abc", 0, REJECTED,
                 "create container", "dropped in the middle");
}

static void test_create_garbage(void **state)
{
    expect_fault(state, "POST /v1.41/containers/create", "SSH-2.0-OpenSSH\r\n\r\n\x00\xff", 0,
                 REJECTED, "create container", "malformed reply");
}

static void test_create_slow(void **state)
{
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", 1500, REJECTED,
                 "create container", "no reply in time");
}

static void test_create_conflict_adopts(void **state)
{
    /* 409: the name is taken by this task's container (created before a
     * restart): inspected by name and adopted, not an error */
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 409 Conflict\r\nContent-Length: 25\r\n\r\n{\"message\":\"name in use\"}",
                 0, RUNNING, "", NULL);
}

static void test_create_conflict_other_task(void **state)
{
    /* 409 and the container of that name belongs to another task */
    fk.fault2.match = "GET /v1.41/containers/web.1.";
    fk.fault2.raw = "HTTP/1.1 200 OK\r\nContent-Length: 58\r\n\r\n"
                    "{\"Id\":\"zz\",\"Config\":{\"Labels\":{\"swarmc.task.id\":\"other\"}}}";
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 409 Conflict\r\nContent-Length: 25\r\n\r\n{\"message\":\"name in use\"}",
                 0, REJECTED, "name is used by a container that is not this task's", NULL);
}

static void test_pull_500(void **state)
{
    /* no such image (create 404), then the pull itself fails */
    fk.fault2.match = "POST /v1.41/images/create";
    fk.fault2.raw = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 26\r\n\r\n"
                    "{\"message\":\"disk on fire\"}";
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", 0, REJECTED,
                 "pull image img:1", "HTTP 500: disk on fire");
}

static void test_pull_fails(void **state)
{
    /* image missing (404); the pull answers 200 with an error in its stream */
    fk.fault2.match = "POST /v1.41/images/create";
    fk.fault2.raw = "HTTP/1.1 200 OK\r\nContent-Length: 94\r\n\r\n"
                    "{\"status\":\"Pulling from library/img\"}\n"
                    "{\"error\":\"pull access denied for img\",\"errorDetail\":{}}\n";
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", 0, REJECTED,
                 "pull image img:1", "pull access denied for img");
}

static void test_pull_then_create(void **state)
{
    /* image missing (first create 404), the pull succeeds, the second create too */
    fk.fault2.match = "POST /v1.41/images/create";
    fk.fault2.raw = "HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{\"status\":\"Downloaded it\"}\n";
    fk.fault.times = 1;
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", 0, RUNNING, "", NULL);
    assert_int_equal(fk.ncreate, 2);
}

static void test_create_404_after_pull(void **state)
{
    /* still no such image after a successful pull: rejected, not a pull loop */
    fk.fault2.match = "POST /v1.41/images/create";
    fk.fault2.raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    expect_fault(state, "POST /v1.41/containers/create",
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 37\r\n\r\n"
                 "{\"message\":\"No such image: img:1\"}\n\n\n",
                 0, REJECTED, "create container", "No such image: img:1");
    assert_int_equal(fk.ncreate, 2);
}

static void test_start_404(void **state)
{
    expect_fault(state, "POST /v1.41/containers/" CID "/start",
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 34\r\n\r\n"
                 "{\"message\":\"No such container: c\"}",
                 0, FAILED, "removed behind", NULL);
}

static void test_start_500(void **state)
{
    expect_fault(state, "POST /v1.41/containers/" CID "/start",
                 "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 39\r\n\r\n"
                 "{\"message\":\"OCI runtime create failed\"}",
                 0, FAILED, "starting: docker: start container", "OCI runtime create failed");
}

static void test_start_dropped(void **state)
{
    expect_fault(state, "POST /v1.41/containers/" CID "/start", "", 0, FAILED, "start container",
                 "malformed reply");
}

/* ---------------------------------------------------------------- events */

/* Cut the open /events connection, as a dying engine does. */
static void fake_drop_events(void)
{
    pthread_mutex_lock(&fk.mu);
    if (fk.events_fd >= 0) {
        shutdown(fk.events_fd, SHUT_RDWR);
        fk.events_fd = -1;
    }
    pthread_mutex_unlock(&fk.mu);
}

static bool orphan_removed(struct fx *f, const void *a)
{
    bool yes;
    pthread_mutex_lock(&fk.mu);
    yes = fk.ndelete_orphan > 0;
    pthread_mutex_unlock(&fk.mu);
    return yes;
}

static bool events_open(struct fx *f, const void *a)
{
    bool open;
    pthread_mutex_lock(&fk.mu);
    open = fk.events_fd >= 0;
    pthread_mutex_unlock(&fk.mu);
    return open;
}

static void test_events(void **state)
{
    struct fx *f = *state;
    int running = RUNNING, failed = FAILED;
    assign_task(f, new_task());
    assert_true(run_until(f, task_in, &running, 5000));
    assert_true(run_until(f, events_open, NULL, 5000)); /* else the lines below go nowhere */
    /* garbage on the stream is skipped; an event for another node's container is ignored */
    fake_event("this is not json\n");
    fake_event("{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"other\","
               "\"Attributes\":{\"exitCode\":\"1\",\"swarmc.task.id\":\"unknown\"}}}\n");
    /* a die split over two chunks */
    fake_event("{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"" CID "\",");
    fake_event("\"Attributes\":{\"exitCode\":\"5\",\"swarmc.task.id\":\"" TASK_ID
               "\"}},\"timeNano\":1700000000123456789}\n");
    assert_true(run_until(f, task_in, &failed, 5000));
    assert_non_null(strstr(swc_worker_task_status(f->w, TASK_ID)->err, "non-zero exit (5)"));
}

static void test_events_reconnect_resync(void **state)
{
    /* The engine dies under a running task and comes back without it: the
     * stream reconnects (after failed pings, with backoff), the worker lists
     * the containers again, fails the task, naming the outage, and removes
     * a container of a task it no longer knows. */
    struct fx *f = *state;
    int running = RUNNING, failed = FAILED;
    const Swarmc__TaskStatus *st;
    static char body[512], raw[1024];
    assign_task(f, new_task());
    assert_true(run_until(f, task_in, &running, 5000));
    assert_true(run_until(f, events_open, NULL, 5000));
    fk.fault.match = "GET /v1.41/_ping"; /* the engine is still down for two pings */
    fk.fault.raw = "";
    fk.fault.times = 2;
    fk.fault2.match = "GET /v1.41/containers/json";
    /* our container exited meanwhile; another one belongs to a task we do not know */
    snprintf(body, sizeof(body),
             "[{\"Id\":\"" CID "\",\"State\":\"exited\",\"Status\":\"Exited (137) 1 second "
             "ago\",\"Labels\":{\"swarmc.task.id\":\"" TASK_ID "\"}},"
             "{\"Id\":\"orphan1\",\"State\":\"running\",\"Status\":\"Up 1 minute\","
             "\"Labels\":{\"swarmc.task.id\":\"gonetask\"}}]");
    snprintf(raw, sizeof(raw),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             strlen(body), body);
    fk.fault2.raw = raw;
    fake_drop_events();
    assert_true(run_until(f, task_in, &failed, 10000));
    st = swc_worker_task_status(f->w, TASK_ID);
    if (strstr(st->err, "non-zero exit (137)") == NULL ||
        strstr(st->err, "Docker engine was unreachable") == NULL) {
        fail_msg("message \"%s\" does not name the exit code and the engine outage", st->err);
    }
    assert_int_equal(fk.fault.hits, 2); /* it kept trying */
    assert_true(fk.fault2.hits >= 1);
    assert_true(run_until(f, events_open, NULL, 5000)); /* and the stream is open again */
    assert_true(run_until(f, orphan_removed, NULL, 5000));
}

/* ---------------------------------------------------------------- direct executor ops */

struct opres {
    bool done;
    int code;
    char msg[512];
    char out[256];
    size_t outlen;
    int streams;
    Swarmc__NodeDescription *desc;
    char host[64];
    int64_t mem;
    size_t nlabels;
};

static void op_cb(void *data, int code, const char *errmsg, const char *cid)
{
    struct opres *r = data;
    r->done = true;
    r->code = code;
    snprintf(r->msg, sizeof(r->msg), "%s", errmsg ? errmsg : "");
}

static void log_cb(void *data, int stream, const char *buf, size_t len)
{
    struct opres *r = data;
    if (r->outlen + len < sizeof(r->out)) {
        memcpy(r->out + r->outlen, buf, len);
        r->outlen += len;
        r->out[r->outlen] = '\0';
    }
    r->streams |= 1 << stream;
}

static void describe_cb(void *data, int code, const char *errmsg, const Swarmc__NodeDescription *d)
{
    struct opres *r = data;
    r->done = true;
    r->code = code;
    snprintf(r->msg, sizeof(r->msg), "%s", errmsg ? errmsg : "");
    if (d != NULL) {
        snprintf(r->host, sizeof(r->host), "%s", d->hostname);
        r->mem = d->resources->memory_bytes;
        r->nlabels = d->engine->n_labels;
    }
}

static bool op_done(struct fx *f, const void *a)
{
    return ((const struct opres *)a)->done;
}

static void test_logs_demux(void **state)
{
    struct fx *f = *state;
    struct opres r = {0};
    /* two frames: stdout "hello\n" and stderr "err\n" */
    static const char mux[] = "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n"
                              "\x01\x00\x00\x00\x00\x00\x00\x06hello\n"
                              "\x02\x00\x00\x00\x00\x00\x00\x04"
                              "err\n";
    fk.fault.match = "GET /v1.41/containers/abc/logs";
    fk.fault.raw = mux;
    fk.fault.raw_len = sizeof(mux) - 1;
    assert_int_equal(f->ex->ops->logs(f->ex, "abc", -1, log_cb, op_cb, &r), 0);
    assert_false(r.done); /* never called inside the call */
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "hello\nerr\n");
    assert_int_equal(r.streams, (1 << 1) | (1 << 2));
    /* not multiplexed (a TTY container): passed through as stdout */
    memset(&r, 0, sizeof(r));
    fk.fault.raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain";
    fk.fault.raw_len = 0;
    assert_int_equal(f->ex->ops->logs(f->ex, "abc", 10, log_cb, op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_string_equal(r.out, "plain");
    assert_int_equal(r.streams, 1 << 1);
    /* logs of a missing container */
    memset(&r, 0, sizeof(r));
    fk.fault.raw = "HTTP/1.1 404 Not Found\r\nContent-Length: 36\r\n\r\n"
                   "{\"message\":\"No such container: abc\"}";
    assert_int_equal(f->ex->ops->logs(f->ex, "abc", 10, log_cb, op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, SWC_ENOENT);
    assert_non_null(strstr(r.msg, "logs of container abc: HTTP 404: No such container"));
}

static void test_describe_and_errors(void **state)
{
    struct fx *f = *state;
    struct opres r = {0};
    assert_int_equal(f->ex->ops->describe(f->ex, describe_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, 0);
    assert_string_equal(r.host, "fakehost");
    assert_int_equal(r.mem, 1073741824);
    assert_int_equal(r.nlabels, 1);
    /* /info answering garbage JSON */
    memset(&r, 0, sizeof(r));
    fk.fault.match = "GET /v1.41/info";
    fk.fault.raw = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[1,";
    assert_int_equal(f->ex->ops->describe(f->ex, describe_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, SWC_EPROTO);
    assert_non_null(strstr(r.msg, "describe node"));
    /* stop: 304 is fine; kill: 409 is fine; remove: 404 is fine */
    memset(&r, 0, sizeof(r));
    fk.fault.match = "POST /v1.41/containers/abc/stop";
    fk.fault.raw = "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(f->ex->ops->shutdown(f->ex, "abc", NULL, SWC_NS_PER_SEC, op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, 0);
    memset(&r, 0, sizeof(r));
    fk.fault.match = "POST /v1.41/containers/abc/kill";
    fk.fault.raw = "HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}";
    assert_int_equal(f->ex->ops->terminate(f->ex, "abc", op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, 0);
    memset(&r, 0, sizeof(r));
    fk.fault.match = "DELETE /v1.41/containers/abc";
    fk.fault.raw = "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}";
    assert_int_equal(f->ex->ops->remove(f->ex, "abc", op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, 0);
    /* but a stop answered with 500 is an error naming the container */
    memset(&r, 0, sizeof(r));
    fk.fault.match = "POST /v1.41/containers/abc/stop";
    fk.fault.raw = "HTTP/1.1 500 Oops\r\nContent-Length: 19\r\n\r\n{\"message\":\"stuck\"}";
    assert_int_equal(f->ex->ops->shutdown(f->ex, "abc", NULL, SWC_NS_PER_SEC, op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, SWC_EDOCKER);
    assert_string_equal(r.msg, "docker: stop container abc: HTTP 500: stuck");
    /* ids that would escape the path are refused up front */
    assert_int_equal(f->ex->ops->start(f->ex, "../x", op_cb, &r), SWC_EINVAL);
}

static void test_create_body(void **state)
{
    struct fx *f = *state;
    int running = RUNNING;
    Swarmc__Task *t = new_task();
    Swarmc__Mount *m = swc_calloc(1, sizeof(*m));
    swarmc__mount__init(m);
    m->type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_TMPFS;
    m->target = swc_strdup("/tmp/x");
    m->tmpfs_mode = 01777;
    t->spec->container->mounts = swc_calloc(1, sizeof(m));
    t->spec->container->mounts[0] = m;
    t->spec->container->n_mounts = 1;
    t->spec->container->init = true;
    t->spec->container->stop_signal = swc_strdup("SIGINT");
    assign_task(f, t);
    assert_true(run_until(f, task_in, &running, 5000));
    pthread_mutex_lock(&fk.mu);
    assert_non_null(strstr(fk.last_create, "\"Mode\":1023"));
    assert_non_null(strstr(fk.last_create, "\"swarmc.node.id\":\"fakenode\""));
    assert_non_null(strstr(fk.last_create, "\"swarmc.task.id\":\"" TASK_ID "\""));
    assert_non_null(strstr(fk.last_create, "\"NetworkMode\":\"none\""));
    /* no network: like swarm mode, no libnetwork sandbox at all */
    assert_non_null(strstr(fk.last_create, "\"NetworkDisabled\":true"));
    assert_non_null(strstr(fk.last_create, "\"Init\":true"));
    assert_non_null(strstr(fk.last_create, "\"StopSignal\":\"SIGINT\""));
    assert_non_null(strstr(fk.last_create, "\"StopTimeout\":10"));
    pthread_mutex_unlock(&fk.mu);
}

static void test_create_body_network(void **state)
{
    /* a node whose containers get a real network keeps the engine's
     * networking: only network mode "none" disables it */
    struct fx *f = *state;
    struct opres r = {0};
    struct swc_exec *ex;
    struct swc_docker_config dc = {.loop = &f->loop,
                                   .socket_path = fk.path,
                                   .node_id = "othernode",
                                   .network_mode = "bridge",
                                   .no_events = true};
    struct swc_err err = {0};
    Swarmc__Task *t = new_task();
    assert_int_equal(swc_docker_init(&ex, &dc, &err), 0);
    assert_int_equal(ex->ops->prepare(ex, t, op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, 0);
    pthread_mutex_lock(&fk.mu);
    assert_non_null(strstr(fk.last_create, "\"swarmc.node.id\":\"othernode\""));
    assert_non_null(strstr(fk.last_create, "\"NetworkMode\":\"bridge\""));
    assert_null(strstr(fk.last_create, "NetworkDisabled"));
    pthread_mutex_unlock(&fk.mu);
    ex->ops->close(ex, exec_closed);
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
}

static void test_engine_gone(void **state)
{
    /* nothing listens: a clear "cannot connect" */
    struct fx *f = *state;
    struct opres r = {0};
    struct swc_exec *ex;
    struct swc_docker_config dc = {.loop = &f->loop,
                                   .socket_path = "/tmp/swc-nothing-here.sock",
                                   .node_id = "n",
                                   .no_events = true};
    struct swc_err err = {0};
    assert_int_equal(swc_docker_init(&ex, &dc, &err), 0);
    assert_int_equal(ex->ops->describe(ex, describe_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, SWC_EUNAVAIL);
    assert_non_null(strstr(r.msg, "cannot connect to /tmp/swc-nothing-here.sock"));
    ex->ops->close(ex, exec_closed);
    /* a bad config is refused */
    dc.socket_path = "tcp://1.2.3.4:2375";
    assert_int_equal(swc_docker_init(&ex, &dc, &err), SWC_EINVAL);
}

static void test_engine_refused(void **state)
{
    /* the socket file is there but nobody listens (a dead engine): fails at
     * once, naming the socket, instead of waiting for a connect timeout */
    struct fx *f = *state;
    struct opres r = {0};
    struct swc_exec *ex;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char path[108], longpath[200];
    struct swc_docker_config dc = {.loop = &f->loop, .node_id = "n", .no_events = true};
    struct swc_err err = {0};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int64_t t0;
    snprintf(path, sizeof(path), "/tmp/swc-refused-%d.sock", (int)getpid());
    unlink(path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd); /* bound, never listened: connect() is refused */
    dc.socket_path = path;
    dc.op_timeout_ns = 30 * SWC_NS_PER_SEC;
    assert_int_equal(swc_docker_init(&ex, &dc, &err), 0);
    t0 = swc_now_mono();
    assert_int_equal(ex->ops->describe(ex, describe_cb, &r), 0);
    assert_false(r.done);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_true(swc_now_mono() - t0 < SWC_NS_PER_SEC);
    assert_int_equal(r.code, SWC_EUNAVAIL);
    assert_non_null(strstr(r.msg, "docker: describe node"));
    assert_non_null(strstr(r.msg, path));
    ex->ops->close(ex, exec_closed);
    unlink(path);
    /* a path that cannot be a unix socket address is refused up front */
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    dc.socket_path = longpath;
    assert_int_equal(swc_docker_init(&ex, &dc, &err), SWC_EINVAL);
    assert_non_null(strstr(err.msg, "socket path"));
}

static void test_logs_chunked_close_midway(void **state)
{
    /* a chunked, multiplexed log stream whose frames straddle chunks; then a
     * stream cut in the middle ends with an error naming the operation */
    struct fx *f = *state;
    struct opres r = {0};
    static const char mux[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\r\n\x01\x00\x00\r\n"
                              "9;x=y\r\n\x00\x00\x00\x00\x03"
                              "abc\x02\r\n"
                              "9\r\n\x00\x00\x00\x00\x00\x00\x02"
                              "de\r\n"
                              "0\r\nTrailer: 1\r\n\r\n";
    fk.fault.match = "GET /v1.41/containers/abc/logs";
    fk.fault.raw = mux;
    fk.fault.raw_len = sizeof(mux) - 1;
    assert_int_equal(f->ex->ops->logs(f->ex, "abc", -1, log_cb, op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "abcde");
    assert_int_equal(r.streams, (1 << 1) | (1 << 2));
    memset(&r, 0, sizeof(r));
    fk.fault.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nplain\r\n9\r\nabc";
    fk.fault.raw_len = 0;
    assert_int_equal(f->ex->ops->logs(f->ex, "abc", -1, log_cb, op_cb, &r), 0);
    assert_true(run_until(f, op_done, &r, 5000));
    assert_int_equal(r.code, SWC_EPROTO);
    assert_non_null(strstr(r.msg, "logs of container abc: connection dropped in the middle"));
    assert_string_equal(r.out, "plainabc"); /* what arrived was passed on */
}

static void test_oom_sweep(void **state)
{
    /* the N-th allocation fails, for every N an exchange makes: each one is
     * refused up front or ends with an error (or succeeds), and nothing leaks */
    struct fx *f = *state;
    long base = swc_alloc_live();
    int failed = 0;
    for (long n = 1; n < 400; n++) {
        struct opres r = {0};
        int rc;
        swc_alloc_fail_after(n);
        rc = f->ex->ops->describe(f->ex, describe_cb, &r);
        if (rc == 0) {
            assert_true(run_until(f, op_done, &r, 5000));
        }
        swc_alloc_fail_after(0);
        if (rc == 0 && r.code == 0) {
            break; /* past the last allocation: the sweep is complete */
        }
        assert_true(rc == SWC_ENOMEM || r.code != 0);
        failed++;
        /* the closing connection's memory is freed a loop turn later */
        uv_run(&f->loop, UV_RUN_NOWAIT);
        assert_int_equal(swc_alloc_live(), base);
    }
    assert_true(failed >= 3);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_404),
        T(test_create_500),
        T(test_create_400_not_json),
        T(test_create_bad_json),
        T(test_create_no_id),
        T(test_create_truncated),
        T(test_create_garbage),
        T(test_create_slow),
        T(test_create_conflict_adopts),
        T(test_create_conflict_other_task),
        T(test_pull_500),
        T(test_pull_fails),
        T(test_pull_then_create),
        T(test_create_404_after_pull),
        T(test_start_404),
        T(test_start_500),
        T(test_start_dropped),
        T(test_events),
        T(test_events_reconnect_resync),
        T(test_logs_demux),
        T(test_describe_and_errors),
        T(test_create_body),
        T(test_create_body_network),
        T(test_engine_gone),
        T(test_engine_refused),
        T(test_logs_chunked_close_midway),
        T(test_oom_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
