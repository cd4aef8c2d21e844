/* The worker with the simulated executor: runners driving tasks through
 * their states, statuses written to the task DB before they are reported,
 * failures (prepare, start, exit code, container gone, unhealthy), removal,
 * and resume/adoption from the task DB after the worker is re-created. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/err.h"
#include "worker/runner.h"
#include "worker/sim.h"
#include "worker/taskdb.h"
#include "worker/worker.h"

#define RUNNING  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define COMPLETE SWARMC__TASK_STATE__TASK_STATE_COMPLETE
#define SHUTDOWN SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
#define FAILED   SWARMC__TASK_STATE__TASK_STATE_FAILED
#define REJECTED SWARMC__TASK_STATE__TASK_STATE_REJECTED

struct fx {
    uv_loop_t loop;
    char dir[64];
    char dbpath[128];
    struct swc_exec *ex;
    struct swc_worker *w;
    int nstatus;
    int last_state[8];
    char last_msg[8][256];
    int db_mismatch; /* statuses reported before they were in the DB */
    bool check_db;
    bool started;
    char log[128];
    int nlogs;
    bool logs_done;
};

static void log_line(void *data, int stream, const char *buf, size_t len)
{
    struct fx *f = data;
    snprintf(f->log, sizeof(f->log), "%.*s", (int)len, buf);
    f->nlogs++;
}

static void log_done(void *data, int code, const char *errmsg, const char *cid)
{
    ((struct fx *)data)->logs_done = code == 0;
}

static int idx_of(const char *task_id)
{
    return task_id[strlen(task_id) - 1] - '0';
}

static int db_state_cb(void *data, Swarmc__Task *task, const char *cid)
{
    int *out = data;
    if (task->status != NULL && idx_of(task->id) >= 0 && idx_of(task->id) < 8) {
        out[idx_of(task->id)] = task->status->state;
    }
    swarmc__task__free_unpacked(task, &swc_pb_allocator);
    return 0;
}

static void status_cb(void *data, const char *task_id, const Swarmc__TaskStatus *st)
{
    struct fx *f = data;
    int i = idx_of(task_id);
    f->nstatus++;
    if (i >= 0 && i < 8) {
        f->last_state[i] = st->state;
        snprintf(f->last_msg[i], sizeof(f->last_msg[i]), "%s", st->message);
    }
    if (f->check_db) {
        struct swc_taskdb *db;
        struct swc_err err = {0};
        int states[8] = {0};
        assert_int_equal(swc_taskdb_open(&db, f->dbpath, &err), 0);
        swc_taskdb_load(db, db_state_cb, states);
        if (i >= 0 && i < 8 && states[i] != (int)st->state) {
            f->db_mismatch++;
        }
        swc_taskdb_close(db);
    }
}

/* Run the loop until cond(f) holds or ms pass; returns cond(f). */
struct waiter {
    struct fx *f;
    bool (*cond)(struct fx *f);
    bool expired;
};

/* Evaluated before the loop would block: stop it once the condition holds
 * (libuv does not block for I/O after uv_stop in a prepare callback). */
static void waiter_prepare_cb(uv_prepare_t *p)
{
    struct waiter *w = p->data;
    if (w->expired || w->cond(w->f)) {
        uv_stop(p->loop);
    }
}

static void waiter_deadline_cb(uv_timer_t *t)
{
    ((struct waiter *)t->data)->expired = true;
}

static bool run_until(struct fx *f, bool (*cond)(struct fx *f), uint64_t ms)
{
    struct waiter w = {.f = f};
    uv_prepare_t p;
    uv_timer_t t;
    w.cond = cond;
    uv_prepare_init(&f->loop, &p);
    p.data = &w;
    uv_prepare_start(&p, waiter_prepare_cb);
    uv_timer_init(&f->loop, &t);
    t.data = &w;
    uv_timer_start(&t, waiter_deadline_cb, ms, 0);
    while (!w.expired && !(cond(f))) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&p, NULL);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return cond(f);
}

static void start_done(void *data, int code)
{
    ((struct fx *)data)->started = true;
}

static bool logs_done_cond(struct fx *f)
{
    return f->logs_done;
}

static bool is_started(struct fx *f)
{
    return f->started;
}

static void make_worker(struct fx *f)
{
    struct swc_worker_config wc = {.loop = &f->loop,
                                   .state_dir = f->dir,
                                   .node_id = "node1",
                                   .exec = f->ex,
                                   .status_cb = status_cb,
                                   .data = f};
    struct swc_err err = {0};
    assert_int_equal(swc_worker_init(&f->w, &wc, &err), 0);
    f->started = false;
    assert_int_equal(swc_worker_start(f->w, start_done, f), 0);
    assert_true(run_until(f, is_started, 2000));
}

static void setup_sim(struct fx *f, struct swc_sim_config *sc)
{
    struct swc_err err = {0};
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/swc-wsim-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->dbpath, sizeof(f->dbpath), "%s/worker.db", f->dir);
    sc->loop = &f->loop;
    sc->node_id = "node1";
    assert_int_equal(swc_sim_init(&f->ex, sc, &err), 0);
    make_worker(f);
}

static void noop_close(void *data)
{
}

static void exec_closed(struct swc_exec *ex)
{
}

static void teardown_fx(struct fx *f)
{
    char cmd[128];
    if (f->w != NULL) {
        swc_worker_close(f->w, noop_close, NULL);
    }
    f->ex->ops->close(f->ex, exec_closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
}

/* A task with id "task...N" (N = its index in the fixture arrays). */
static Swarmc__Task *new_task(int n, int desired, bool health)
{
    Swarmc__Task *t = swc_calloc(1, sizeof(*t));
    Swarmc__TaskSpec *s = swc_calloc(1, sizeof(*s));
    Swarmc__ContainerSpec *c = swc_calloc(1, sizeof(*c));
    char id[32];
    swarmc__task__init(t);
    swarmc__task_spec__init(s);
    swarmc__container_spec__init(c);
    snprintf(id, sizeof(id), "task00000000000000000000%c", (char)('0' + n % 10));
    t->id = swc_strdup(id);
    t->service_id = swc_strdup("svc1");
    t->service_name = swc_strdup("web");
    t->node_id = swc_strdup("node1");
    t->slot = (uint64_t)n + 1;
    t->desired_state = desired;
    c->image = swc_strdup("localbusybox:latest");
    if (health) {
        Swarmc__HealthConfig *h = swc_calloc(1, sizeof(*h));
        swarmc__health_config__init(h);
        h->n_test = 2;
        h->test = swc_calloc(2, sizeof(char *));
        h->test[0] = swc_strdup("CMD");
        h->test[1] = swc_strdup("true");
        c->healthcheck = h;
    }
    s->container = c;
    t->spec = s;
    return t;
}

/* Send tasks as one assignments message of the given type; frees them. */
static int assign(struct fx *f, Swarmc__AssignmentsType type, Swarmc__Task **tasks, size_t n,
                  const char *remove_id)
{
    Swarmc__AssignmentsMessage m = SWARMC__ASSIGNMENTS_MESSAGE__INIT;
    Swarmc__Assignment a[8], *ap[9];
    size_t k = 0;
    int rc;
    m.type = type;
    for (size_t i = 0; i < n; i++, k++) {
        swarmc__assignment__init(&a[k]);
        a[k].action = SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_UPDATE;
        a[k].item_case = SWARMC__ASSIGNMENT__ITEM_TASK;
        a[k].task = tasks[i];
        ap[k] = &a[k];
    }
    if (remove_id != NULL) {
        swarmc__assignment__init(&a[k]);
        a[k].action = SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_REMOVE;
        a[k].removed_id = (char *)remove_id;
        ap[k] = &a[k];
        k++;
    }
    m.n_changes = k;
    m.changes = ap;
    rc = swc_worker_assign(f->w, &m);
    for (size_t i = 0; i < n; i++) {
        swarmc__task__free_unpacked(tasks[i], &swc_pb_allocator);
    }
    return rc;
}

static int want_state;
static int want_n;
static bool all_in_state(struct fx *f)
{
    for (int i = 0; i < want_n; i++) {
        if (f->last_state[i] != want_state) {
            return false;
        }
    }
    return true;
}

static bool wait_all(struct fx *f, int n, int state, uint64_t ms)
{
    want_n = n;
    want_state = state;
    return run_until(f, all_in_state, ms);
}

static void test_run_and_complete(void **state)
{
    struct fx f;
    struct swc_sim_config sc = {.start_delay_ms = 5, .run_time_ms = 50, .exit_code = 0};
    Swarmc__Task *t[3] = {new_task(0, RUNNING, false), new_task(1, RUNNING, false),
                          new_task(2, RUNNING, false)};
    setup_sim(&f, &sc);
    f.check_db = true;
    assert_int_equal(assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 3, NULL), 0);
    assert_int_equal(swc_worker_ntasks(f.w), 3);
    assert_true(wait_all(&f, 3, COMPLETE, 3000));
    assert_string_equal(f.last_msg[0], "finished");
    /* ACCEPTED PREPARING READY STARTING RUNNING COMPLETE for each */
    assert_int_equal(f.nstatus, 3 * 6);
    assert_int_equal(f.db_mismatch, 0);
    assert_int_equal(swc_sim_count(f.ex), 3); /* finished containers are kept for logs */
    assert_int_equal(swc_worker_logs(f.w, "task000000000000000000001", -1, log_line, log_done, &f),
                     0);
    assert_int_equal(f.nlogs, 0); /* never inside the call */
    assert_true(run_until(&f, logs_done_cond, 1000));
    assert_string_equal(f.log, "simulated task task000000000000000000001\n");
    assert_int_equal(swc_worker_logs(f.w, "nope", -1, log_line, log_done, &f), SWC_ENOENT);
    teardown_fx(&f);
}

/* A new session's complete set carries the manager's copy of each task: when
 * it is behind what the worker observed (the old leader acknowledged a status
 * and died before writing it), the worker reports its status again; when it
 * is current, nothing is sent. */
static void test_complete_set_resends_lost_status(void **state)
{
    struct fx f;
    struct swc_sim_config sc = {.run_time_ms = 60000};
    Swarmc__Task *t[1] = {new_task(0, RUNNING, false)};
    setup_sim(&f, &sc);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 1, NULL);
    assert_true(wait_all(&f, 1, RUNNING, 3000));
    int before = f.nstatus;

    t[0] = new_task(0, RUNNING, false);
    t[0]->status = swc_calloc(1, sizeof(*t[0]->status));
    swarmc__task_status__init(t[0]->status);
    t[0]->status->state = SWARMC__TASK_STATE__TASK_STATE_ASSIGNED;
    f.last_state[0] = 0;
    assert_int_equal(assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 1, NULL), 0);
    assert_int_equal(f.nstatus, before + 1);
    assert_int_equal(f.last_state[0], RUNNING);

    t[0] = new_task(0, RUNNING, false);
    t[0]->status = swc_calloc(1, sizeof(*t[0]->status));
    swarmc__task_status__init(t[0]->status);
    t[0]->status->state = RUNNING;
    assert_int_equal(assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 1, NULL), 0);
    assert_int_equal(f.nstatus, before + 1);
    teardown_fx(&f);
}

static void test_exit_code_fails(void **state)
{
    struct fx f;
    struct swc_sim_config sc = {.run_time_ms = 10, .exit_code = 3};
    Swarmc__Task *t[1] = {new_task(0, RUNNING, false)};
    setup_sim(&f, &sc);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 1, NULL);
    assert_true(wait_all(&f, 1, FAILED, 3000));
    assert_non_null(strstr(f.last_msg[0], "non-zero exit (3)"));
    assert_int_equal(swc_worker_task_status(f.w, "task000000000000000000000")->exit_code, 3);
    teardown_fx(&f);
}

static void test_injected_failures(void **state)
{
    struct fx f;
    struct swc_sim_config sc = {.prepare_failure_rate = 1.0};
    Swarmc__Task *t[1] = {new_task(0, RUNNING, false)};
    setup_sim(&f, &sc);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 1, NULL);
    assert_true(wait_all(&f, 1, REJECTED, 3000));
    assert_non_null(strstr(f.last_msg[0], "injected failure"));
    teardown_fx(&f);

    struct swc_sim_config sc2 = {.failure_rate = 1.0};
    t[0] = new_task(0, RUNNING, false);
    setup_sim(&f, &sc2);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 1, NULL);
    assert_true(wait_all(&f, 1, FAILED, 3000));
    assert_non_null(strstr(f.last_msg[0], "starting: sim: start container"));
    teardown_fx(&f);
}

static void test_gone_and_unhealthy(void **state)
{
    struct fx f;
    struct swc_sim_config sc = {0};
    Swarmc__Task *t[2] = {new_task(0, RUNNING, false), new_task(1, RUNNING, true)};
    setup_sim(&f, &sc);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 2, NULL);
    assert_true(wait_all(&f, 2, RUNNING, 3000));
    assert_string_equal(f.last_msg[1], "started (healthy)");
    assert_int_equal(swc_sim_inject(f.ex, "task000000000000000000000", SWC_EXEC_EV_GONE, 0), 0);
    assert_int_equal(swc_sim_inject(f.ex, "task000000000000000000001", SWC_EXEC_EV_UNHEALTHY, 0),
                     0);
    assert_true(wait_all(&f, 2, FAILED, 3000));
    assert_non_null(strstr(f.last_msg[0], "removed behind"));
    assert_string_equal(f.last_msg[1], "container is unhealthy");
    teardown_fx(&f);
}

static bool no_tasks(struct fx *f)
{
    return swc_worker_ntasks(f->w) == 0 && swc_sim_count(f->ex) == 0;
}

static bool one_task(struct fx *f)
{
    return swc_worker_ntasks(f->w) == 1;
}

static void test_shutdown_and_remove(void **state)
{
    struct fx f;
    struct swc_sim_config sc = {0};
    Swarmc__Task *t[2] = {new_task(0, RUNNING, false), new_task(1, RUNNING, false)};
    setup_sim(&f, &sc);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 2, NULL);
    assert_true(wait_all(&f, 2, RUNNING, 3000));
    /* desired SHUTDOWN: stopped, container removed, task kept */
    t[0] = new_task(0, SHUTDOWN, false);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_INCREMENTAL, t, 1, NULL);
    want_n = 1;
    assert_true(wait_all(&f, 1, SHUTDOWN, 3000));
    assert_string_equal(f.last_msg[0], "shutdown");
    assert_int_equal(swc_worker_ntasks(f.w), 2);
    /* a complete set with only task 1: task 0 goes, task 1 keeps running */
    t[0] = new_task(1, RUNNING, false);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 1, NULL);
    assert_true(run_until(&f, one_task, 3000));
    assert_int_equal(swc_worker_task_state(f.w, "task000000000000000000000"), -1);
    assert_int_equal(swc_worker_task_state(f.w, "task000000000000000000001"), RUNNING);
    assert_int_equal(swc_sim_count(f.ex), 1);
    /* a complete set without the tasks removes the rest */
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, NULL, 0, NULL);
    assert_true(run_until(&f, no_tasks, 3000));
    {
        struct swc_taskdb *db;
        struct swc_err err = {0};
        assert_int_equal(swc_taskdb_open(&db, f.dbpath, &err), 0);
        assert_int_equal(swc_taskdb_count(db), 0);
        swc_taskdb_close(db);
    }
    teardown_fx(&f);
}

static void test_resume_adopts(void **state)
{
    struct fx f;
    struct swc_sim_config sc = {0};
    Swarmc__Task *t[3] = {new_task(0, RUNNING, false), new_task(1, RUNNING, false),
                          new_task(2, RUNNING, false)};
    setup_sim(&f, &sc);
    assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 3, NULL);
    assert_true(wait_all(&f, 3, RUNNING, 3000));
    assert_int_equal(swc_sim_count(f.ex), 3);
    /* the worker goes away; its containers stay; one exits while it is away */
    swc_worker_close(f.w, noop_close, NULL);
    f.w = NULL;
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(swc_sim_inject(f.ex, "task000000000000000000002", SWC_EXEC_EV_EXIT, 7), 0);
    f.nstatus = 0;
    memset(f.last_state, 0, sizeof(f.last_state));
    make_worker(&f);
    assert_int_equal(swc_worker_ntasks(f.w), 3);
    assert_int_equal(swc_worker_task_state(f.w, "task000000000000000000000"), RUNNING);
    assert_int_equal(swc_worker_task_state(f.w, "task000000000000000000001"), RUNNING);
    /* the exit seen while away is reported */
    assert_int_equal(swc_worker_task_state(f.w, "task000000000000000000002"), FAILED);
    assert_non_null(strstr(f.last_msg[2], "non-zero exit (7)"));
    /* adopted, not re-created: still the same three containers, no new start */
    assert_int_equal(swc_sim_count(f.ex), 3);
    assert_int_equal(f.nstatus, 1);
    teardown_fx(&f);
}

static void list_noop(void *data, int code, const char *errmsg, const char *cid)
{
    *(int *)data = 1;
}

static bool no_containers(struct fx *f)
{
    return swc_sim_count(f->ex) == 0;
}

static void test_unknown_container_removed(void **state)
{
    struct fx f;
    struct swc_sim_config sc = {0};
    int done = 0;
    Swarmc__Task *stray = new_task(5, RUNNING, false);
    setup_sim(&f, &sc);
    /* a container with our label whose task the worker does not know */
    assert_int_equal(f.ex->ops->prepare(f.ex, stray, list_noop, &done), 0);
    assert_int_equal(done, 0); /* never called inside the call */
    swarmc__task__free_unpacked(stray, &swc_pb_allocator);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(done, 1);
    assert_int_equal(swc_sim_count(f.ex), 1);
    swc_worker_close(f.w, noop_close, NULL);
    f.w = NULL;
    make_worker(&f);
    assert_true(run_until(&f, no_containers, 3000));
    teardown_fx(&f);
}

static int count_cb(void *data, Swarmc__Task *task, const char *cid)
{
    int *n = data;
    assert_string_equal(task->service_name, "web");
    if (strcmp(task->id, "task000000000000000000001") == 0) {
        assert_int_equal(task->status->state, RUNNING);
        assert_string_equal(task->status->message, "started");
        assert_string_equal(cid, "c1");
    }
    (*n)++;
    swarmc__task__free_unpacked(task, &swc_pb_allocator);
    return 0;
}

static void test_taskdb_round_trip(void **state)
{
    char dir[64] = "/tmp/swc-tdb-XXXXXX", path[128], cmd[128];
    struct swc_taskdb *db;
    struct swc_err err = {0};
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    int n = 0;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/worker.db", dir);
    assert_int_equal(swc_taskdb_open(&db, path, &err), 0);
    for (int i = 0; i < 3; i++) {
        Swarmc__Task *t = new_task(i, RUNNING, i == 1);
        assert_int_equal(swc_taskdb_put_task(db, t), 0);
        swarmc__task__free_unpacked(t, &swc_pb_allocator);
    }
    st.state = RUNNING;
    st.message = "started";
    st.container_id = "c1";
    assert_int_equal(swc_taskdb_put_status(db, "task000000000000000000001", &st, "c1"), 0);
    assert_int_equal(swc_taskdb_delete(db, "task000000000000000000002"), 0);
    assert_int_equal(swc_taskdb_delete(db, "nope"), 0);
    swc_taskdb_close(db);
    /* reopen: what was written is there */
    assert_int_equal(swc_taskdb_open(&db, path, &err), 0);
    assert_int_equal(swc_taskdb_count(db), 2);
    assert_int_equal(swc_taskdb_load(db, count_cb, &n), 0);
    assert_int_equal(n, 2);
    swc_taskdb_close(db);
    /* an unusable path is a clear error */
    assert_int_not_equal(swc_taskdb_open(&db, "/nonexistent/dir/worker.db", &err), 0);
    assert_non_null(strstr(err.msg, "task DB"));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Allocation failures anywhere on the assign -> run path: no crash, no leak
 * (ASan), and the worker still closes cleanly. */
static void test_alloc_failure_sweep(void **state)
{
    for (long n = 1; n <= 400; n += 3) {
        struct fx f;
        struct swc_sim_config sc = {0};
        Swarmc__Task *t[2] = {new_task(0, RUNNING, false), new_task(1, RUNNING, true)};
        setup_sim(&f, &sc);
        swc_alloc_fail_after(n);
        assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, t, 2, NULL);
        wait_all(&f, 2, RUNNING, 100);
        swc_alloc_fail_after(0);
        teardown_fx(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_and_complete),
        cmocka_unit_test(test_exit_code_fails),
        cmocka_unit_test(test_injected_failures),
        cmocka_unit_test(test_gone_and_unhealthy),
        cmocka_unit_test(test_shutdown_and_remove),
        cmocka_unit_test(test_resume_adopts),
        cmocka_unit_test(test_unknown_container_removed),
        cmocka_unit_test(test_taskdb_round_trip),
        cmocka_unit_test(test_alloc_failure_sweep),
        cmocka_unit_test(test_complete_set_resends_lost_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
