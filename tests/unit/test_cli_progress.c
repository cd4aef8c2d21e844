/* The convergence display: tasks in, progress lines out, and what is
 * written to a terminal (redrawn in place) or a pipe (changed lines only).
 *
 * cmd/swarmc/ is built only into the swarmc executable, so this test
 * compiles the pure files it needs by including them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../cmd/swarmc/output.c"
#include "../../cmd/swarmc/progress.c"

enum {
    NEW = SWARMC__TASK_STATE__TASK_STATE_NEW,
    PENDING = SWARMC__TASK_STATE__TASK_STATE_PENDING,
    PREPARING = SWARMC__TASK_STATE__TASK_STATE_PREPARING,
    STARTING = SWARMC__TASK_STATE__TASK_STATE_STARTING,
    RUNNING = SWARMC__TASK_STATE__TASK_STATE_RUNNING,
    COMPLETE = SWARMC__TASK_STATE__TASK_STATE_COMPLETE,
    SHUTDOWN = SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN,
    FAILED = SWARMC__TASK_STATE__TASK_STATE_FAILED,
};

#define MAXT 64
struct fix {
    Swarmc__ServiceSpec spec;
    Swarmc__ReplicatedService rep;
    Swarmc__ReplicatedJob job;
    Swarmc__GlobalService glob;
    Swarmc__Task t[MAXT];
    Swarmc__TaskStatus st[MAXT];
    Swarmc__Meta meta[MAXT];
    char ids[MAXT][32];
    Swarmc__Task *tp[MAXT];
    size_t n;
};

static void fix_init(struct fix *f, int mode, uint64_t replicas)
{
    Swarmc__ServiceSpec s0 = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__ReplicatedService r0 = SWARMC__REPLICATED_SERVICE__INIT;
    Swarmc__ReplicatedJob j0 = SWARMC__REPLICATED_JOB__INIT;
    Swarmc__GlobalService g0 = SWARMC__GLOBAL_SERVICE__INIT;
    memset(f, 0, sizeof *f);
    f->spec = s0, f->rep = r0, f->job = j0, f->glob = g0;
    f->spec.mode_case = mode;
    if (mode == SWARMC__SERVICE_SPEC__MODE_REPLICATED) {
        f->spec.replicated = &f->rep;
        f->rep.replicas = replicas;
    } else if (mode == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB) {
        f->spec.replicated_job = &f->job;
        f->job.total_completions = replicas;
        f->job.max_concurrent = replicas;
    } else {
        f->spec.global = &f->glob;
    }
}

static Swarmc__Task *add(struct fix *f, uint64_t slot, const char *node, int desired, int state,
                         int64_t created)
{
    Swarmc__Task t0 = SWARMC__TASK__INIT;
    Swarmc__TaskStatus s0 = SWARMC__TASK_STATUS__INIT;
    Swarmc__Meta m0 = SWARMC__META__INIT;
    size_t i = f->n++;
    f->t[i] = t0, f->st[i] = s0, f->meta[i] = m0;
    snprintf(f->ids[i], sizeof f->ids[i], "task%zu", i);
    f->t[i].id = f->ids[i];
    f->t[i].slot = slot;
    f->t[i].node_id = (char *)node;
    f->t[i].desired_state = desired;
    f->t[i].status = &f->st[i];
    f->st[i].state = state;
    f->t[i].meta = &f->meta[i];
    f->meta[i].created_at = created;
    f->tp[i] = &f->t[i];
    return &f->t[i];
}

static void render(struct fix *f, enum swc_verify v, int64_t left, struct swc_progress_out *out)
{
    struct swc_progress_in in;
    memset(&in, 0, sizeof in);
    in.spec = &f->spec;
    in.tasks = f->tp;
    in.n_tasks = f->n;
    in.verify = v;
    in.verify_left_ns = left;
    swc_progress_render(&in, out);
}

#define FULL "[==================================================>]"

static void test_replicated_in_progress(void **state)
{
    (void)state;
    static struct fix f;
    static struct swc_progress_out out;
    fix_init(&f, SWARMC__SERVICE_SPEC__MODE_REPLICATED, 3);
    add(&f, 1, "n1", RUNNING, RUNNING, 1);
    add(&f, 2, "n2", RUNNING, PREPARING, 1);
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_int_equal(out.n, 4);
    assert_string_equal(out.lines[0], "overall progress: 1 out of 3 tasks");
    assert_string_equal(out.lines[1], "1/3: running   " FULL);
    assert_string_equal(out.lines[2],
                        "2/3: preparing [============================>                      ]");
    assert_string_equal(out.lines[3],
                        "3/3: new       [>                                                  ]");
    assert_int_equal(out.done, 1);
    assert_int_equal(out.total, 3);
    assert_false(out.converged);
    assert_false(out.failed);
}

static void test_converged_and_verify(void **state)
{
    (void)state;
    static struct fix f;
    static struct swc_progress_out out;
    fix_init(&f, SWARMC__SERVICE_SPEC__MODE_REPLICATED, 2);
    add(&f, 1, "n1", RUNNING, RUNNING, 1);
    add(&f, 2, "n2", RUNNING, RUNNING, 1);
    /* an old task of slot 2, being shut down: not counted, not shown */
    add(&f, 2, "n1", SHUTDOWN, RUNNING, 0);
    /* a scaled-away slot 3 being shut down */
    add(&f, 3, "n1", SHUTDOWN, RUNNING, 0);
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_true(out.converged);
    assert_int_equal(out.n, 3);
    assert_string_equal(out.lines[0], "overall progress: 2 out of 2 tasks");
    render(&f, SWC_VERIFY_WAITING, 600 * SWC_NS_PER_MS, &out);
    assert_int_equal(out.n, 4);
    assert_string_equal(out.lines[3],
                        "verify: Waiting 1 second to verify that tasks are stable...");
    render(&f, SWC_VERIFY_DONE, 0, &out);
    assert_string_equal(out.lines[3], "verify: Service converged");
}

static void test_errors_and_pending_reasons(void **state)
{
    (void)state;
    static struct fix f;
    static struct swc_progress_out out;
    fix_init(&f, SWARMC__SERVICE_SPEC__MODE_REPLICATED, 3);
    add(&f, 1, "n1", RUNNING, RUNNING, 1);
    Swarmc__Task *t = add(&f, 2, "n1", RUNNING, FAILED, 1);
    t->status->err = "task: non-zero exit (1)";
    t = add(&f, 3, "", RUNNING, PENDING, 1);
    t->status->message = "no suitable node (insufficient memory on 3 nodes)";
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_string_equal(out.lines[2], "2/3: task: non-zero exit (1)");
    assert_string_equal(out.lines[3], "3/3: no suitable node (insufficient memory on 3 nodes)");
    assert_true(out.failed);
    assert_false(out.converged);
    /* the replacement task (newer) takes over the slot's line */
    add(&f, 2, "n2", RUNNING, STARTING, 2);
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_string_equal(out.lines[2],
                        "2/3: starting  [==========================================>        ]");
}

static void test_global(void **state)
{
    (void)state;
    static struct fix f;
    static struct swc_progress_out out;
    fix_init(&f, SWARMC__SERVICE_SPEC__MODE_GLOBAL, 0);
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_false(out.converged); /* no task yet is not "done" */
    add(&f, 0, "node-aaaaaaaaaaaaaaaa", RUNNING, RUNNING, 1);
    add(&f, 0, "node-bbbbbbbbbbbbbbbb", RUNNING, PENDING, 1);
    add(&f, 0, "node-aaaaaaaaaaaaaaaa", SHUTDOWN, SHUTDOWN, 0);
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_string_equal(out.lines[0], "overall progress: 1 out of 2 tasks");
    assert_string_equal(out.lines[1], "node-aaaaaaa: running   " FULL);
    assert_string_equal(
        out.lines[2],
        "node-bbbbbbb: pending   [=======>                                           ]");
    assert_false(out.converged);
    f.st[1].state = (Swarmc__TaskState)RUNNING;
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_true(out.converged);
}

static void test_job(void **state)
{
    (void)state;
    static struct fix f;
    static struct swc_progress_out out;
    fix_init(&f, SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB, 2);
    add(&f, 1, "n1", COMPLETE, COMPLETE, 1);
    add(&f, 2, "n1", COMPLETE, RUNNING, 1);
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_string_equal(out.lines[0], "overall progress: 1 out of 2 tasks");
    assert_string_equal(out.lines[1], "1/2: complete  " FULL);
    assert_string_equal(out.lines[2], "2/2: running   " FULL);
    assert_false(out.converged);
    f.st[1].state = (Swarmc__TaskState)COMPLETE;
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_true(out.converged);
}

static void test_many_slots_only_overall(void **state)
{
    (void)state;
    static struct fix f;
    static struct swc_progress_out out;
    fix_init(&f, SWARMC__SERVICE_SPEC__MODE_REPLICATED, 50);
    for (uint64_t s = 1; s <= 50; s++) {
        add(&f, s, "n", RUNNING, s <= 45 ? RUNNING : NEW, 1);
    }
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.lines[0], "overall progress: 45 out of 50 tasks");
    assert_false(out.converged);
}

static void test_scale_to_zero(void **state)
{
    (void)state;
    static struct fix f;
    static struct swc_progress_out out;
    fix_init(&f, SWARMC__SERVICE_SPEC__MODE_REPLICATED, 0);
    add(&f, 1, "n", SHUTDOWN, RUNNING, 1);
    render(&f, SWC_VERIFY_NONE, 0, &out);
    assert_string_equal(out.lines[0], "overall progress: 0 out of 0 tasks");
    assert_true(out.converged);
}

static void test_draw(void **state)
{
    (void)state;
    static struct fix f;
    static struct swc_progress_out a, b, c;
    char buf[8192];
    fix_init(&f, SWARMC__SERVICE_SPEC__MODE_REPLICATED, 2);
    add(&f, 1, "n1", RUNNING, RUNNING, 1);
    add(&f, 2, "n1", RUNNING, STARTING, 1);
    render(&f, SWC_VERIFY_NONE, 0, &a);
    f.st[1].state = (Swarmc__TaskState)RUNNING;
    render(&f, SWC_VERIFY_NONE, 0, &b);
    render(&f, SWC_VERIFY_DONE, 0, &c);

    /* pipe: everything first, then only what changed */
    swc_progress_draw(NULL, &a, false, buf, sizeof buf);
    assert_string_equal(buf,
                        "overall progress: 1 out of 2 tasks\n"
                        "1/2: running   " FULL "\n"
                        "2/2: starting  [==========================================>        ]\n");
    swc_progress_draw(&a, &b, false, buf, sizeof buf);
    assert_string_equal(buf, "overall progress: 2 out of 2 tasks\n"
                             "2/2: running   " FULL "\n");
    swc_progress_draw(&b, &b, false, buf, sizeof buf);
    assert_string_equal(buf, "");
    swc_progress_draw(&b, &c, false, buf, sizeof buf);
    assert_string_equal(buf, "verify: Service converged\n");

    /* terminal: move up over the old block, clear and redraw each line */
    swc_progress_draw(&a, &c, true, buf, sizeof buf);
    assert_string_equal(buf, "\033[3A"
                             "\033[2Koverall progress: 2 out of 2 tasks\n"
                             "\033[2K1/2: running   " FULL "\n"
                             "\033[2K2/2: running   " FULL "\n"
                             "\033[2Kverify: Service converged\n");
    /* a shorter block clears the leftover line and comes back up */
    swc_progress_draw(&c, &a, true, buf, sizeof buf);
    assert_non_null(strstr(buf, "\033[4A"));
    assert_non_null(strstr(buf, "\033[2K\n\033[1A"));
    /* a small buffer is never overrun */
    size_t n = swc_progress_draw(NULL, &c, false, buf, 20);
    assert_true(n < 20);
    assert_int_equal(strlen(buf), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replicated_in_progress),
        cmocka_unit_test(test_converged_and_verify),
        cmocka_unit_test(test_errors_and_pending_reasons),
        cmocka_unit_test(test_global),
        cmocka_unit_test(test_job),
        cmocka_unit_test(test_many_slots_only_overall),
        cmocka_unit_test(test_scale_to_zero),
        cmocka_unit_test(test_draw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
