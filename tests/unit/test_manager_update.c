/* Unit tests for the rolling update supervisor: stop-first and start-first
 * sequences with parallelism 2 and a delay, monitor windows, pause on
 * failure, continue, automatic rollback past the failure ratio, and updates
 * that have nothing to do. A small harness plays the rest of the manager and
 * the workers: it applies the actions to a task table between steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "manager/update.h"

#define SEC  1000000000LL
#define T0   (1000 * SEC)
#define RUN  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define PEND SWARMC__TASK_STATE__TASK_STATE_PENDING
#define FAIL SWARMC__TASK_STATE__TASK_STATE_FAILED
#define SHUT SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN

struct sim {
    struct swc_orch_task t[64];
    char ids[64][16];
    size_t n;
    struct swc_update_state st;
    struct swc_update_input in;
    struct swc_update_output out;
};

static struct sim S;
/* task specs: A the original, B the update, A2 a copy of A */
static Swarmc__TaskSpec specA, specB, specA2;
static Swarmc__ContainerSpec ctrA, ctrB, ctrA2;

static void specs_init(void)
{
    swarmc__task_spec__init(&specA);
    swarmc__task_spec__init(&specB);
    swarmc__task_spec__init(&specA2);
    swarmc__container_spec__init(&ctrA);
    swarmc__container_spec__init(&ctrB);
    swarmc__container_spec__init(&ctrA2);
    ctrA.image = ctrA2.image = "app:1";
    ctrB.image = "app:2";
    specA.container = &ctrA;
    specB.container = &ctrB;
    specA2.container = &ctrA2;
}

static void sim_init(size_t slots, bool global)
{
    swc_update_output_clear(&S.out);
    memset(&S, 0, sizeof(S));
    specs_init();
    for (size_t i = 0; i < slots; i++) {
        snprintf(S.ids[i], sizeof S.ids[i], "old%u", (unsigned)(i + 1) % 1000u);
        struct swc_orch_task *t = &S.t[S.n++];
        t->id = S.ids[i];
        t->slot = global ? 0 : i + 1;
        t->node_id = global ? (const char *[]){"n1", "n2", "n3", "n4"}[i] : "n1";
        t->desired_state = t->state = RUN;
        t->spec_version = 1;
        t->spec = &specA;
        t->created_at = 1;
        t->running_at = 1;
    }
    S.st.target_version = 1;
    S.in.spec_version = 2;
    S.in.global = global;
    swc_update_config_from_pb(NULL, &S.in.update);
    swc_update_config_from_pb(NULL, &S.in.rollback_config);
    /* the new spec makes every existing task dirty */
    S.in.task_template = &specB;
}

static struct swc_orch_task *by_id(const char *id)
{
    for (size_t i = 0; i < S.n; i++)
        if (strcmp(S.t[i].id, id) == 0)
            return &S.t[i];
    return NULL;
}

static struct swc_orch_task *newest_in_slot(uint64_t slot)
{
    struct swc_orch_task *best = NULL;
    for (size_t i = 0; i < S.n; i++)
        if (S.t[i].slot == slot && (best == NULL || S.t[i].created_at >= best->created_at))
            best = &S.t[i];
    return best;
}

/* Run one step at now and apply its actions the way the manager would; the
 * shut down tasks stop at once. Returns the number of actions. */
static size_t step(int64_t now)
{
    S.in.tasks = S.t;
    S.in.n_tasks = S.n;
    S.in.now = now;
    swc_update_output_clear(&S.out);
    assert_int_equal(swc_update_step(&S.st, &S.in, &S.out), 0);
    size_t n = S.out.actions.n;
    for (size_t i = 0; i < n; i++) {
        const struct swc_orch_action *a = &S.out.actions.items[i];
        if (a->kind == SWC_ORCH_SHUTDOWN) {
            struct swc_orch_task *t = by_id(a->task_id);
            assert_non_null(t);
            t->desired_state = SHUT;
            t->state = SHUT;
            t->status_ts = now;
        } else if (a->kind == SWC_ORCH_CREATE) {
            assert_int_equal(a->spec_version, S.in.spec_version);
            snprintf(S.ids[S.n], sizeof S.ids[S.n], "new%zu", S.n);
            struct swc_orch_task *t = &S.t[S.n++];
            memset(t, 0, sizeof(*t));
            t->id = S.ids[S.n - 1];
            t->slot = a->slot;
            t->node_id = a->node_id ? a->node_id : "n1";
            t->desired_state = RUN;
            t->state = PEND;
            t->spec_version = a->spec_version;
            t->spec = S.in.task_template;
            t->created_at = now;
        }
    }
    return n;
}

static size_t kinds(enum swc_orch_action_kind k)
{
    size_t c = 0;
    for (size_t i = 0; i < S.out.actions.n; i++)
        c += S.out.actions.items[i].kind == k;
    return c;
}

/* The worker starts every pending new task at now. */
static void start_pending(int64_t now)
{
    for (size_t i = 0; i < S.n; i++)
        if (S.t[i].state == PEND && S.t[i].desired_state == RUN) {
            S.t[i].state = RUN;
            S.t[i].running_at = now;
            S.t[i].status_ts = now;
        }
}

static int teardown(void **state)
{
    (void)state;
    swc_update_output_clear(&S.out);
    return 0;
}

static void test_stop_first_parallelism_2(void **state)
{
    (void)state;
    sim_init(4, false);
    S.in.update.parallelism = 2;
    S.in.update.delay_ns = 10 * SEC;
    assert_int_equal(step(T0), 4);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_UPDATING);
    assert_true(S.out.status_changed);
    assert_int_equal(kinds(SWC_ORCH_SHUTDOWN), 2);
    assert_int_equal(kinds(SWC_ORCH_CREATE), 2);
    /* stop-first: the shutdown comes before the create, slots 1 and 2 */
    assert_int_equal(S.out.actions.items[0].kind, SWC_ORCH_SHUTDOWN);
    assert_string_equal(S.out.actions.items[0].task_id, "old1");
    assert_int_equal(S.out.actions.items[1].slot, 1);
    assert_int_equal(by_id("old1")->desired_state, SHUT);
    assert_int_equal(by_id("old3")->desired_state, RUN);
    /* still starting: nothing new */
    assert_int_equal(step(T0 + SEC), 0);
    start_pending(T0 + 2 * SEC);
    /* batch done: wait for the 10 s delay (the monitor wakes us first) */
    assert_int_equal(step(T0 + 2 * SEC), 0);
    assert_int_equal(S.out.next_wakeup, T0 + 7 * SEC);
    assert_int_equal(step(T0 + 7 * SEC), 0);
    assert_int_equal(S.out.next_wakeup, T0 + 12 * SEC);
    assert_int_equal(step(T0 + 12 * SEC), 4);
    assert_string_equal(S.out.actions.items[0].task_id, "old3");
    start_pending(T0 + 13 * SEC);
    assert_int_equal(step(T0 + 13 * SEC), 0);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_UPDATING);
    assert_int_equal(S.out.next_wakeup, T0 + 18 * SEC);
    /* monitored for 5 s: done */
    assert_int_equal(step(T0 + 18 * SEC), 0);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_COMPLETED);
    assert_string_equal(S.st.message, "update completed");
    assert_int_equal(S.st.completed_at, T0 + 18 * SEC);
    assert_true(S.out.status_changed);
    /* and stays quiet */
    assert_int_equal(step(T0 + 30 * SEC), 0);
    assert_false(S.out.status_changed);
}

static void test_start_first_parallelism_2(void **state)
{
    (void)state;
    sim_init(4, false);
    S.in.update.parallelism = 2;
    S.in.update.order = SWARMC__UPDATE_ORDER__UPDATE_ORDER_START_FIRST;
    assert_int_equal(step(T0), 2);
    assert_int_equal(kinds(SWC_ORCH_CREATE), 2);
    assert_int_equal(by_id("old1")->desired_state, RUN); /* old keeps running */
    assert_int_equal(step(T0 + SEC), 0);
    start_pending(T0 + 2 * SEC);
    /* new tasks run: retire old1/old2 and open the next batch at once */
    assert_int_equal(step(T0 + 2 * SEC), 4);
    assert_int_equal(kinds(SWC_ORCH_SHUTDOWN), 2);
    assert_int_equal(by_id("old1")->desired_state, SHUT);
    assert_int_equal(by_id("old2")->desired_state, SHUT);
    assert_int_equal(by_id("old3")->desired_state, RUN);
    assert_int_equal(kinds(SWC_ORCH_CREATE), 2);
    start_pending(T0 + 3 * SEC);
    assert_int_equal(step(T0 + 3 * SEC), 2);
    assert_int_equal(kinds(SWC_ORCH_SHUTDOWN), 2);
    assert_int_equal(step(T0 + 8 * SEC), 0);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_COMPLETED);
}

static void test_pause_on_failure(void **state)
{
    (void)state;
    sim_init(3, false);
    assert_int_equal(step(T0), 2);
    struct swc_orch_task *nt = newest_in_slot(1);
    nt->state = FAIL;
    nt->status_ts = T0 + SEC;
    assert_int_equal(step(T0 + SEC), 0);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_PAUSED);
    char want[128];
    snprintf(want, sizeof want, "update paused due to failure or early termination of task %s",
             nt->id);
    assert_string_equal(S.st.message, want);
    assert_true(S.out.status_changed);
    /* paused: slot 2 and 3 stay as they are */
    assert_int_equal(step(T0 + 100 * SEC), 0);
    assert_int_equal(by_id("old2")->desired_state, RUN);
    /* a new spec version resumes with a fresh update */
    S.in.spec_version = 3;
    for (size_t i = 0; i < S.n; i++)
        S.t[i].dirty = true;
    assert_int_equal(step(T0 + 200 * SEC), 2);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_UPDATING);
}

static void test_failure_after_monitor_ignored(void **state)
{
    (void)state;
    sim_init(2, false);
    step(T0);
    start_pending(T0 + SEC);
    step(T0 + SEC); /* batch 2 opens */
    struct swc_orch_task *first = newest_in_slot(1);
    /* fails 10 s after it started: past the 5 s monitor */
    first->state = FAIL;
    first->status_ts = T0 + 11 * SEC;
    start_pending(T0 + 2 * SEC);
    assert_int_equal(step(T0 + 11 * SEC), 0);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_COMPLETED);
}

static void test_continue_on_failure(void **state)
{
    (void)state;
    sim_init(3, false);
    S.in.update.failure_action = SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_CONTINUE;
    step(T0);
    newest_in_slot(1)->state = FAIL;
    /* goes on with slot 2 */
    assert_int_equal(step(T0 + SEC), 2);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_UPDATING);
    assert_int_equal(by_id("old2")->desired_state, SHUT);
}

static void test_ratio_tolerated(void **state)
{
    (void)state;
    sim_init(4, false);
    S.in.update.parallelism = 2;
    S.in.update.max_failure_ratio = 0.5f;
    step(T0);
    newest_in_slot(1)->state = FAIL; /* 1 of 2 = 0.5: not above the ratio */
    start_pending(T0 + SEC);
    assert_int_equal(step(T0 + SEC), 4);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_UPDATING);
    newest_in_slot(3)->state = FAIL; /* 2 of 4: still 0.5 */
    newest_in_slot(4)->state = FAIL; /* 3 of 4: above */
    assert_int_equal(step(T0 + 2 * SEC), 0);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_PAUSED);
}

static void test_automatic_rollback(void **state)
{
    (void)state;
    sim_init(4, false);
    S.in.update.failure_action = SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_ROLLBACK;
    S.in.update.max_failure_ratio = 0.2f;
    S.in.rollback_config.parallelism = 0; /* all at once */
    step(T0);
    struct swc_orch_task *bad = newest_in_slot(1);
    bad->state = FAIL;
    bad->status_ts = T0 + SEC;
    assert_int_equal(step(T0 + SEC), 0);
    assert_true(S.out.rollback);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_STARTED);
    char want[128];
    snprintf(want, sizeof want, "update rolled back due to failure or early termination of task %s",
             bad->id);
    assert_string_equal(S.st.message, want);
    /* the manager swaps the spec back (version 3 = the old spec): the old
     * tasks are clean again; slot 1 was restarted with the bad spec */
    S.in.spec_version = 3;
    S.in.rollback = true;
    S.in.task_template = &specA2; /* the previous spec, as a fresh copy */
    bad->desired_state = SHUT;
    snprintf(S.ids[S.n], sizeof S.ids[S.n], "retry");
    S.t[S.n] = (struct swc_orch_task){.id = S.ids[S.n],
                                      .slot = 1,
                                      .node_id = "n1",
                                      .desired_state = RUN,
                                      .state = RUN,
                                      .spec_version = 2,
                                      .created_at = T0 + 2 * SEC,
                                      .running_at = T0 + 2 * SEC,
                                      .dirty = true};
    S.n++;
    assert_int_equal(step(T0 + 3 * SEC), 2);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_STARTED);
    assert_string_equal(S.st.message, want); /* still says why */
    assert_false(S.out.rollback);
    assert_int_equal(by_id("retry")->desired_state, SHUT);
    start_pending(T0 + 4 * SEC);
    assert_int_equal(step(T0 + 4 * SEC), 0);
    assert_int_equal(step(T0 + 9 * SEC), 0);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_COMPLETED);
    assert_string_equal(S.st.message, "rollback completed");
}

static void test_rollback_failure_pauses(void **state)
{
    (void)state;
    sim_init(2, false);
    S.in.rollback = true;
    S.st.state = SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_STARTED;
    S.in.rollback_config.failure_action =
        SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_ROLLBACK;
    step(T0);
    newest_in_slot(1)->state = FAIL;
    step(T0 + SEC);
    assert_false(S.out.rollback);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_PAUSED);
    assert_non_null(strstr(S.st.message, "rollback paused"));
}

static void test_nothing_dirty(void **state)
{
    (void)state;
    sim_init(3, false);
    /* a scale or label change: new version, same task spec */
    S.in.task_template = &specA2;
    assert_int_equal(step(T0), 0);
    assert_true(S.out.status_changed); /* settles a status set to UPDATING */
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_COMPLETED);
    assert_int_equal(S.st.target_version, 2);
    assert_int_equal(step(T0 + SEC), 0);
    assert_false(S.out.status_changed);
    /* a state made fresh for a service with nothing to roll stays quiet */
    sim_init(3, false);
    S.in.task_template = &specA2;
    S.st.target_version = 0;
    assert_int_equal(step(T0), 0);
    assert_false(S.out.status_changed);
    assert_int_equal(S.st.state, SWARMC__UPDATE_STATE__UPDATE_STATE_UNKNOWN);
    /* without a template, another version is out of date */
    sim_init(1, false);
    S.in.task_template = NULL;
    assert_int_equal(step(T0), 2);
    /* and dirty forces it even at the current version */
    sim_init(1, false);
    S.t[0].spec_version = 2;
    S.t[0].dirty = true;
    assert_int_equal(step(T0), 2);
}

static void test_global_update(void **state)
{
    (void)state;
    sim_init(3, true);
    S.in.update.parallelism = 0;
    assert_int_equal(step(T0), 6);
    for (size_t i = 0; i < S.out.actions.n; i++) {
        const struct swc_orch_action *a = &S.out.actions.items[i];
        if (a->kind == SWC_ORCH_CREATE) {
            assert_int_equal(a->slot, 0);
            assert_non_null(a->node_id);
        }
    }
    assert_string_equal(S.out.actions.items[1].node_id, "n1");
    assert_string_equal(S.out.actions.items[5].node_id, "n3");
}

static void test_config_and_spec_equal(void **state)
{
    (void)state;
    struct swc_update_config c;
    Swarmc__UpdateConfig pb = SWARMC__UPDATE_CONFIG__INIT;
    pb.parallelism = 3;
    pb.delay_ns = -5;
    swc_update_config_from_pb(&pb, &c);
    assert_int_equal(c.parallelism, 3);
    assert_int_equal(c.delay_ns, 0);
    assert_int_equal(c.monitor_ns, SWC_UPDATE_DEFAULT_MONITOR);
    Swarmc__TaskSpec a = SWARMC__TASK_SPEC__INIT, b = SWARMC__TASK_SPEC__INIT;
    Swarmc__ContainerSpec ca = SWARMC__CONTAINER_SPEC__INIT, cb = SWARMC__CONTAINER_SPEC__INIT;
    ca.image = "busybox:1";
    cb.image = "busybox:1";
    a.container = &ca;
    b.container = &cb;
    assert_true(swc_update_spec_equal(&a, &b));
    cb.image = "busybox:2";
    assert_false(swc_update_spec_equal(&a, &b));
    b.force_update = 1;
    cb.image = "busybox:1";
    assert_false(swc_update_spec_equal(&a, &b));
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_stop_first_parallelism_2),
        T(test_start_first_parallelism_2),
        T(test_pause_on_failure),
        T(test_failure_after_monitor_ignored),
        T(test_continue_on_failure),
        T(test_ratio_tolerated),
        T(test_automatic_rollback),
        T(test_rollback_failure_pauses),
        T(test_nothing_dirty),
        T(test_global_update),
        T(test_config_and_spec_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
