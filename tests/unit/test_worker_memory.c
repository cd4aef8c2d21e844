/* The worker without a state dir (fleet mode): no task DB is created, tasks
 * still run through their states, are counted as running, and are removed
 * by incremental and complete assignment sets. */
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
#include "worker/sim.h"
#include "worker/worker.h"

#define RUNNING SWARMC__TASK_STATE__TASK_STATE_RUNNING

struct fx {
    uv_loop_t loop;
    struct swc_exec *ex;
    struct swc_worker *w;
    bool started;
    int nstatus;
};

static void status_cb(void *data, const char *task_id, const Swarmc__TaskStatus *st)
{
    struct fx *f = data;
    (void)task_id;
    (void)st;
    f->nstatus++;
}

struct waiter {
    struct fx *f;
    bool (*cond)(struct fx *f);
    bool expired;
};

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

/* Run the loop until cond(f) holds or ms pass; returns cond(f). */
static bool run_until(struct fx *f, bool (*cond)(struct fx *f), uint64_t ms)
{
    struct waiter w = {.f = f, .cond = cond};
    uv_prepare_t p;
    uv_timer_t t;
    uv_prepare_init(&f->loop, &p);
    p.data = &w;
    uv_prepare_start(&p, waiter_prepare_cb);
    uv_timer_init(&f->loop, &t);
    t.data = &w;
    uv_timer_start(&t, waiter_deadline_cb, ms, 0);
    while (!w.expired && !cond(f)) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&p, NULL);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return cond(f);
}

static void start_done(void *data, int code)
{
    (void)code;
    ((struct fx *)data)->started = true;
}

static bool is_started(struct fx *f)
{
    return f->started;
}

static Swarmc__Task *new_task(int n)
{
    Swarmc__Task *t = swc_calloc(1, sizeof(*t));
    Swarmc__TaskSpec *s = swc_calloc(1, sizeof(*s));
    Swarmc__ContainerSpec *c = swc_calloc(1, sizeof(*c));
    char id[32];
    swarmc__task__init(t);
    swarmc__task_spec__init(s);
    swarmc__container_spec__init(c);
    snprintf(id, sizeof(id), "memtask0000000000000000%02d", n);
    t->id = swc_strdup(id);
    t->service_id = swc_strdup("svc1");
    t->service_name = swc_strdup("web");
    t->node_id = swc_strdup("node1");
    t->slot = (uint64_t)n + 1;
    t->desired_state = RUNNING;
    c->image = swc_strdup("sim:1");
    s->container = c;
    t->spec = s;
    return t;
}

/* One assignments message with n new tasks [first, first + n) and an
 * optional removal; the tasks are freed. */
static int assign(struct fx *f, Swarmc__AssignmentsType type, int first, int n,
                  const char *remove_id)
{
    Swarmc__AssignmentsMessage m = SWARMC__ASSIGNMENTS_MESSAGE__INIT;
    Swarmc__Assignment a[8], *ap[8];
    Swarmc__Task *t[8];
    size_t k = 0;
    m.type = type;
    for (int i = 0; i < n; i++, k++) {
        t[i] = new_task(first + i);
        swarmc__assignment__init(&a[k]);
        a[k].action = SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_UPDATE;
        a[k].item_case = SWARMC__ASSIGNMENT__ITEM_TASK;
        a[k].task = t[i];
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
    int rc = swc_worker_assign(f->w, &m);
    for (int i = 0; i < n; i++) {
        swarmc__task__free_unpacked(t[i], &swc_pb_allocator);
    }
    return rc;
}

static size_t want_running, want_tasks;
static bool counts_are(struct fx *f)
{
    return swc_worker_nrunning(f->w) == want_running && swc_worker_ntasks(f->w) == want_tasks;
}

static void noop_close(void *data)
{
    (void)data;
}

static void exec_closed(struct swc_exec *ex)
{
    (void)ex;
}

static void test_in_memory_worker(void **state)
{
    (void)state;
    struct fx f;
    struct swc_err err = {0};
    char dir[] = "/tmp/swc-wmem-XXXXXX", cwd[4096];
    memset(&f, 0, sizeof f);
    assert_non_null(mkdtemp(dir));
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0); /* a stray relative worker.db would land here */
    assert_int_equal(uv_loop_init(&f.loop), 0);
    struct swc_sim_config sc = {.loop = &f.loop, .node_id = "node1", .start_delay_ms = 2};
    assert_int_equal(swc_sim_init(&f.ex, &sc, &err), 0);

    struct swc_worker_config wc = {
        .loop = &f.loop, .node_id = "node1", .exec = f.ex, .status_cb = status_cb, .data = &f};
    wc.node_id = NULL;
    assert_int_equal(swc_worker_init(&f.w, &wc, &err), SWC_EINVAL); /* node id still required */
    wc.node_id = "node1";
    wc.state_dir = NULL;
    assert_int_equal(swc_worker_init(&f.w, &wc, &err), 0);
    assert_int_equal(swc_worker_start(f.w, start_done, &f), 0);
    assert_true(run_until(&f, is_started, 2000));

    assert_int_equal(assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, 0, 3, NULL), 0);
    want_running = 3;
    want_tasks = 3;
    assert_true(run_until(&f, counts_are, 3000));
    /* accepted, preparing, ready, starting, running for each */
    assert_int_equal(f.nstatus, 3 * 5);

    assert_int_equal(assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_INCREMENTAL, 3, 1,
                            "memtask000000000000000000"),
                     0);
    want_running = 3;
    want_tasks = 3; /* task 0 removed, task 3 added */
    assert_true(run_until(&f, counts_are, 3000));
    assert_int_equal(swc_worker_task_state(f.w, "memtask000000000000000000"), -1);
    assert_int_equal(swc_worker_task_state(f.w, "memtask000000000000000003"), RUNNING);

    /* a complete set with only task 5 drops the others */
    assert_int_equal(assign(&f, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE, 5, 1, NULL), 0);
    want_running = 1;
    want_tasks = 1;
    assert_true(run_until(&f, counts_are, 3000));

    assert_int_not_equal(access("worker.db", F_OK), 0);
    swc_worker_close(f.w, noop_close, NULL);
    f.ex->ops->close(f.ex, exec_closed);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rmdir(dir), 0); /* nothing was written there */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_memory_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
