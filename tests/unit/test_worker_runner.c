/* The task runner's pure step function: every allowed transition, the
 * refused ones, and the decisions for each executor event (no libuv); and
 * the runner object's resync after an engine outage (no executor calls). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "worker/runner.h"

#define ASSIGNED  SWARMC__TASK_STATE__TASK_STATE_ASSIGNED
#define ACCEPTED  SWARMC__TASK_STATE__TASK_STATE_ACCEPTED
#define PREPARING SWARMC__TASK_STATE__TASK_STATE_PREPARING
#define READY     SWARMC__TASK_STATE__TASK_STATE_READY
#define STARTING  SWARMC__TASK_STATE__TASK_STATE_STARTING
#define RUNNING   SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define COMPLETE  SWARMC__TASK_STATE__TASK_STATE_COMPLETE
#define SHUTDOWN  SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
#define FAILED    SWARMC__TASK_STATE__TASK_STATE_FAILED
#define REJECTED  SWARMC__TASK_STATE__TASK_STATE_REJECTED
#define REMOVE    SWARMC__TASK_STATE__TASK_STATE_REMOVE

static struct swc_runner_decision step(int desired, int observed, enum swc_runner_ev ev)
{
    struct swc_runner_input in = {.desired = desired, .observed = observed, .ev = ev};
    struct swc_runner_decision d;
    assert_int_equal(swc_runner_step(&in, &d), 0);
    return d;
}

static struct swc_runner_decision step_in(struct swc_runner_input in)
{
    struct swc_runner_decision d;
    assert_int_equal(swc_runner_step(&in, &d), 0);
    return d;
}

static void test_happy_path(void **state)
{
    struct swc_runner_decision d;
    struct swc_runner_input in = {.desired = RUNNING};

    d = step(RUNNING, ASSIGNED, SWC_RUNNER_EV_NONE);
    assert_int_equal(d.next, ACCEPTED);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);

    d = step(RUNNING, ACCEPTED, SWC_RUNNER_EV_NONE);
    assert_int_equal(d.next, PREPARING);
    assert_int_equal(d.action, SWC_RUNNER_ACT_PREPARE);

    d = step(RUNNING, PREPARING, SWC_RUNNER_EV_PREPARED);
    assert_int_equal(d.next, READY);

    d = step(RUNNING, READY, SWC_RUNNER_EV_NONE);
    assert_int_equal(d.next, STARTING);
    assert_int_equal(d.action, SWC_RUNNER_ACT_START);

    in.observed = STARTING;
    in.ev = SWC_RUNNER_EV_STARTED;
    in.started = true;
    in.has_container = true;
    d = step_in(in);
    assert_int_equal(d.next, RUNNING);
    assert_string_equal(d.msg, "started");

    in.observed = RUNNING;
    in.ev = SWC_RUNNER_EV_EXIT;
    in.exit_code = 0;
    d = step_in(in);
    assert_int_equal(d.next, COMPLETE);
    assert_int_equal(d.exit_code, 0);
    assert_false(d.is_err);

    in.exit_code = 3;
    d = step_in(in);
    assert_int_equal(d.next, FAILED);
    assert_int_equal(d.exit_code, 3);
    assert_true(d.is_err);
    assert_non_null(strstr(d.msg, "non-zero exit (3)"));
}

static void test_desired_ready_waits(void **state)
{
    struct swc_runner_decision d = step(READY, READY, SWC_RUNNER_EV_NONE);
    assert_int_equal(d.next, READY);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
    /* RUNNING with nothing new: wait */
    d = step(RUNNING, RUNNING, SWC_RUNNER_EV_NONE);
    assert_int_equal(d.next, RUNNING);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
}

static void test_prepare_fail_rejects(void **state)
{
    struct swc_runner_input in = {.desired = RUNNING,
                                  .observed = PREPARING,
                                  .ev = SWC_RUNNER_EV_PREPARE_FAIL,
                                  .ev_msg = "docker: create container x: HTTP 404: No such image"};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, REJECTED);
    assert_true(d.is_err);
    assert_non_null(strstr(d.msg, "No such image"));
    /* a missing message still says something */
    in.ev_msg = NULL;
    d = step_in(in);
    assert_non_null(strstr(d.msg, "unknown error"));
}

static void test_start_fail_fails(void **state)
{
    struct swc_runner_input in = {.desired = RUNNING,
                                  .observed = STARTING,
                                  .has_container = true,
                                  .ev = SWC_RUNNER_EV_START_FAIL,
                                  .ev_msg = "boom"};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, FAILED);
    assert_string_equal(d.msg, "starting: boom");
}

static void test_healthcheck(void **state)
{
    struct swc_runner_input in = {.desired = RUNNING,
                                  .observed = STARTING,
                                  .has_container = true,
                                  .has_healthcheck = true,
                                  .started = true,
                                  .ev = SWC_RUNNER_EV_STARTED};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, STARTING); /* not RUNNING until healthy */
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
    in.ev = SWC_RUNNER_EV_NONE;
    d = step_in(in);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE); /* started: no second start */
    in.ev = SWC_RUNNER_EV_HEALTHY;
    d = step_in(in);
    assert_int_equal(d.next, RUNNING);
    in.ev = SWC_RUNNER_EV_UNHEALTHY;
    d = step_in(in);
    assert_int_equal(d.next, FAILED);
    assert_int_equal(d.action, SWC_RUNNER_ACT_SHUTDOWN);
    assert_string_equal(d.msg, "container is unhealthy");
    in.observed = RUNNING;
    d = step_in(in);
    assert_int_equal(d.next, FAILED);
}

static void test_oom(void **state)
{
    struct swc_runner_input in = {.desired = RUNNING,
                                  .observed = RUNNING,
                                  .has_container = true,
                                  .started = true,
                                  .ev = SWC_RUNNER_EV_EXIT,
                                  .exit_code = 137,
                                  .oom = true};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, FAILED);
    assert_non_null(strstr(d.msg, "OOM"));
    assert_int_equal(d.exit_code, 137);
}

static void test_gone(void **state)
{
    struct swc_runner_input in = {.desired = RUNNING,
                                  .observed = RUNNING,
                                  .has_container = true,
                                  .started = true,
                                  .ev = SWC_RUNNER_EV_GONE};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, FAILED);
    assert_true(d.drop_container);
    assert_non_null(strstr(d.msg, "removed behind"));
    in.observed = READY;
    d = step_in(in);
    assert_int_equal(d.next, REJECTED);
    /* gone after it finished: nothing changes */
    in.observed = COMPLETE;
    d = step_in(in);
    assert_int_equal(d.next, COMPLETE);
    assert_true(d.drop_container);
}

static void test_event_detail(void **state)
{
    /* an exit or disappearance seen after an engine outage says so */
    struct swc_runner_input in = {.desired = RUNNING,
                                  .observed = RUNNING,
                                  .has_container = true,
                                  .started = true,
                                  .ev = SWC_RUNNER_EV_EXIT,
                                  .exit_code = 255,
                                  .ev_msg = "container stopped while the engine was down"};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, FAILED);
    assert_string_equal(d.msg, "task: non-zero exit (255); container stopped while the engine "
                               "was down");
    in.ev = SWC_RUNNER_EV_GONE;
    d = step_in(in);
    assert_int_equal(d.next, FAILED);
    assert_string_equal(d.msg, "container is gone; container stopped while the engine was down");
}

/* ---------------------------------------------------------------- resync (runner object) */

struct seen {
    int n;
    int state;
    char err[256];
};

static void seen_cb(struct swc_runner *r, const char *task_id, const Swarmc__TaskStatus *st,
                    void *data)
{
    struct seen *s = data;
    s->n++;
    s->state = st->state;
    snprintf(s->err, sizeof(s->err), "%s", st->err ? st->err : "");
}

/* A runner already RUNNING with container c1; the executor is never called
 * (its vtable is empty: a call would crash the test). */
static struct swc_runner *running_runner(struct seen *s, int observed)
{
    static const struct swc_exec_ops no_ops = {.name = "none"};
    static struct swc_exec ex = {.ops = &no_ops};
    struct swc_runner_config cfg = {.exec = &ex, .status_cb = seen_cb, .data = s};
    Swarmc__Task t = SWARMC__TASK__INIT;
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    struct swc_runner *r;
    t.id = "task1";
    t.desired_state = RUNNING;
    st.state = observed;
    st.container_id = "c1";
    t.status = &st;
    r = swc_runner_create(&cfg, &t, NULL);
    assert_non_null(r);
    return r;
}

static void test_resync(void **state)
{
    struct seen s = {0};
    struct swc_runner *r = running_runner(&s, RUNNING);
    struct swc_exec_cstate alive = {.container_id = "c1", .task_id = "task1", .running = true};
    struct swc_exec_cstate dead = {
        .container_id = "c1", .task_id = "task1", .exited = true, .exit_code = 255};
    struct swc_exec_cstate created = {.container_id = "c1", .task_id = "task1"};

    /* still running (live-restore): adopted, nothing reported */
    swc_runner_resync(r, &alive, "while the engine was down");
    assert_int_equal(swc_runner_observed(r), RUNNING);
    assert_int_equal(s.n, 0);
    /* exited meanwhile: failed, with the exit code and the cause */
    swc_runner_resync(r, &dead, "container stopped while the engine was down");
    assert_int_equal(swc_runner_observed(r), FAILED);
    assert_int_equal(s.state, FAILED);
    assert_non_null(strstr(s.err, "non-zero exit (255)"));
    assert_non_null(strstr(s.err, "while the engine was down"));
    /* a finished task ignores later resyncs */
    s.n = 0;
    swc_runner_resync(r, NULL, "again");
    assert_int_equal(s.n, 0);
    swc_runner_destroy(r);

    /* vanished: failed, naming the cause */
    memset(&s, 0, sizeof(s));
    r = running_runner(&s, RUNNING);
    swc_runner_resync(r, NULL, "container stopped while the engine was down");
    assert_int_equal(swc_runner_observed(r), FAILED);
    assert_non_null(strstr(s.err, "container is gone; container stopped"));
    assert_null(swc_runner_container_id(r));
    swc_runner_destroy(r);

    /* created but not started yet: its own start is still to come */
    memset(&s, 0, sizeof(s));
    r = running_runner(&s, READY);
    swc_runner_resync(r, &created, "x");
    assert_int_equal(swc_runner_observed(r), READY);
    assert_int_equal(s.n, 0);
    swc_runner_destroy(r);
}

static void test_shutdown_flow(void **state)
{
    struct swc_runner_input in = {
        .desired = SHUTDOWN, .observed = RUNNING, .has_container = true, .started = true};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, RUNNING);
    assert_int_equal(d.action, SWC_RUNNER_ACT_SHUTDOWN);
    in.stopping = true;
    d = step_in(in);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE); /* stop already issued */
    /* the exit seen during our stop is a shutdown, not a failure */
    in.ev = SWC_RUNNER_EV_EXIT;
    in.exit_code = 143;
    d = step_in(in);
    assert_int_equal(d.next, SHUTDOWN);
    in.ev = SWC_RUNNER_EV_STOPPED;
    d = step_in(in);
    assert_int_equal(d.next, SHUTDOWN);
    in.observed = SHUTDOWN;
    in.ev = SWC_RUNNER_EV_NONE;
    d = step_in(in);
    assert_int_equal(d.action, SWC_RUNNER_ACT_REMOVE);
    in.ev = SWC_RUNNER_EV_REMOVED;
    d = step_in(in);
    assert_true(d.drop_container);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
    in.has_container = false;
    in.ev = SWC_RUNNER_EV_NONE;
    d = step_in(in);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
    assert_int_equal(d.next, SHUTDOWN);
    /* a stop that fails falls back to a forced remove */
    in.observed = RUNNING;
    in.has_container = true;
    in.ev = SWC_RUNNER_EV_STOP_FAIL;
    d = step_in(in);
    assert_int_equal(d.action, SWC_RUNNER_ACT_REMOVE);
}

static void test_shutdown_before_start(void **state)
{
    int pre[] = {ASSIGNED, ACCEPTED, PREPARING, READY};
    for (size_t i = 0; i < 4; i++) {
        struct swc_runner_decision d = step(SHUTDOWN, pre[i], SWC_RUNNER_EV_NONE);
        assert_int_equal(d.next, SHUTDOWN);
        assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
    }
    /* with a created container: removed */
    struct swc_runner_input in = {.desired = REMOVE, .observed = READY, .has_container = true};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, SHUTDOWN);
    assert_int_equal(d.action, SWC_RUNNER_ACT_REMOVE);
    /* unassigned (remove flag) with desired RUNNING behaves the same */
    in.desired = RUNNING;
    in.remove = true;
    d = step_in(in);
    assert_int_equal(d.next, SHUTDOWN);
}

static void test_finished_keeps_container(void **state)
{
    struct swc_runner_input in = {
        .desired = RUNNING, .observed = FAILED, .has_container = true, .started = true};
    struct swc_runner_decision d = step_in(in);
    assert_int_equal(d.next, FAILED);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
    /* late events on a finished task change nothing */
    in.ev = SWC_RUNNER_EV_EXIT;
    in.exit_code = 0;
    d = step_in(in);
    assert_int_equal(d.next, FAILED);
    in.ev = SWC_RUNNER_EV_HEALTHY;
    d = step_in(in);
    assert_int_equal(d.next, FAILED);
}

static void test_transition_table(void **state)
{
    int all[] = {ASSIGNED, ACCEPTED, PREPARING, READY,  STARTING,
                 RUNNING,  COMPLETE, SHUTDOWN,  FAILED, REJECTED};
    /* expected[i] lists the states reachable from all[i] */
    const char *expected[] = {
        "ACCEPTED REJECTED SHUTDOWN",
        "PREPARING REJECTED SHUTDOWN",
        "READY REJECTED SHUTDOWN",
        "STARTING REJECTED SHUTDOWN",
        "RUNNING COMPLETE FAILED SHUTDOWN",
        "COMPLETE FAILED SHUTDOWN",
        "",
        "",
        "",
        "",
    };
    int allowed_count = 0;
    for (size_t i = 0; i < 10; i++) {
        for (size_t j = 0; j < 10; j++) {
            char needle[32];
            bool want;
            snprintf(needle, sizeof(needle), "%s", swc_runner_state_name(all[j]));
            want = false;
            /* whole-word match in expected[i] */
            for (const char *p = expected[i]; (p = strstr(p, needle)) != NULL; p++) {
                size_t n = strlen(needle);
                if ((p == expected[i] || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
                    want = true;
                    break;
                }
            }
            assert_int_equal(swc_runner_allowed(all[i], all[j]), want);
            allowed_count += want;
        }
    }
    assert_int_equal(allowed_count, 19);
    /* backwards and unknown states are refused */
    assert_false(swc_runner_allowed(RUNNING, PREPARING));
    assert_false(swc_runner_allowed(COMPLETE, RUNNING));
    assert_false(swc_runner_allowed(RUNNING, ASSIGNED));
    assert_false(swc_runner_allowed(RUNNING, 12345));
    assert_false(swc_runner_allowed(READY, FAILED)); /* failures before STARTING are rejections */
}

static void test_step_refusals(void **state)
{
    struct swc_runner_input in = {.desired = RUNNING, .observed = 500}; /* not a state */
    struct swc_runner_decision d;
    assert_int_equal(swc_runner_step(&in, &d), SWC_ESTATE);
    assert_int_equal(d.next, 500);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
    /* an exit before the container was started changes nothing */
    d = step(RUNNING, READY, SWC_RUNNER_EV_EXIT);
    assert_int_equal(d.next, READY);
    /* a prepare result in the wrong state changes nothing */
    d = step(RUNNING, RUNNING, SWC_RUNNER_EV_PREPARED);
    assert_int_equal(d.next, RUNNING);
    /* a start failure after RUNNING is not a move back */
    d = step(RUNNING, RUNNING, SWC_RUNNER_EV_START_FAIL);
    assert_int_equal(d.next, RUNNING);
    /* manager-written end states are terminal: nothing moves out of them */
    d = step(RUNNING, SWARMC__TASK_STATE__TASK_STATE_ORPHANED, SWC_RUNNER_EV_NONE);
    assert_int_equal(d.next, SWARMC__TASK_STATE__TASK_STATE_ORPHANED);
    assert_int_equal(d.action, SWC_RUNNER_ACT_NONE);
    assert_false(swc_runner_allowed(SWARMC__TASK_STATE__TASK_STATE_REMOVE, RUNNING));
    assert_true(swc_runner_terminal(COMPLETE));
    assert_false(swc_runner_terminal(RUNNING));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_desired_ready_waits),
        cmocka_unit_test(test_prepare_fail_rejects),
        cmocka_unit_test(test_start_fail_fails),
        cmocka_unit_test(test_healthcheck),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_gone),
        cmocka_unit_test(test_event_detail),
        cmocka_unit_test(test_resync),
        cmocka_unit_test(test_shutdown_flow),
        cmocka_unit_test(test_shutdown_before_start),
        cmocka_unit_test(test_finished_keeps_container),
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_step_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
