/* Unit tests for the orchestrators (replicated, global, jobs), the restart
 * policy and the task reaper: pure inputs in, actions out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "manager/orchestrator.h"
#include "manager/reaper.h"
#include "manager/restart.h"

#define SEC  1000000000LL
#define NOW  (10000 * SEC)
#define RUN  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define PEND SWARMC__TASK_STATE__TASK_STATE_PENDING
#define DONE SWARMC__TASK_STATE__TASK_STATE_COMPLETE
#define FAIL SWARMC__TASK_STATE__TASK_STATE_FAILED
#define SHUT SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
#define REM  SWARMC__TASK_STATE__TASK_STATE_REMOVE
#define ORPH SWARMC__TASK_STATE__TASK_STATE_ORPHANED

static struct swc_orch_task task(const char *id, uint64_t slot, const char *node, int desired,
                                 int state, int64_t ts)
{
    struct swc_orch_task t = {.id = id,
                              .slot = slot,
                              .node_id = node,
                              .desired_state = desired,
                              .state = state,
                              .spec_version = 1,
                              .created_at = ts,
                              .status_ts = ts};
    return t;
}

static struct swc_orch_service replicated(uint64_t n)
{
    struct swc_orch_service s = {.id = "svc",
                                 .mode = SWARMC__SERVICE_SPEC__MODE_REPLICATED,
                                 .replicas = n,
                                 .spec_version = 1};
    swc_restart_policy_from_pb(NULL, &s.restart);
    return s;
}

static size_t count(const struct swc_orch_actions *a, enum swc_orch_action_kind k)
{
    size_t c = 0;
    for (size_t i = 0; i < a->n; i++)
        c += a->items[i].kind == k;
    return c;
}

static const struct swc_orch_action *find(const struct swc_orch_actions *a,
                                          enum swc_orch_action_kind k, const char *task_id)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->items[i].kind == k &&
            (task_id == NULL || (a->items[i].task_id && strcmp(a->items[i].task_id, task_id) == 0)))
            return &a->items[i];
    return NULL;
}

/* ------------------------------------------------------------ restart */

static void test_restart_policy(void **state)
{
    (void)state;
    struct swc_restart_policy p;
    swc_restart_policy_from_pb(NULL, &p);
    assert_int_equal(p.condition, SWARMC__RESTART_CONDITION__RESTART_CONDITION_ANY);
    assert_int_equal(p.delay_ns, 5 * SEC);
    /* default: restart 5 s after the end */
    struct swc_restart_decision d = swc_restart_decide(&p, FAIL, false, NOW - SEC, NULL, 0, NOW);
    assert_int_equal(d.verdict, SWC_RESTART_AT);
    assert_int_equal(d.at, NOW + 4 * SEC);
    d = swc_restart_decide(&p, DONE, false, NOW - 6 * SEC, NULL, 0, NOW);
    assert_int_equal(d.verdict, SWC_RESTART_NOW);
    /* on-failure: an exit 0 is not restarted, a failure is */
    p.condition = SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE;
    assert_int_equal(swc_restart_decide(&p, DONE, false, 0, NULL, 0, NOW).verdict, SWC_RESTART_NO);
    assert_int_equal(swc_restart_decide(&p, FAIL, false, 0, NULL, 0, NOW).verdict, SWC_RESTART_NOW);
    /* none: never, not even a lost task */
    p.condition = SWARMC__RESTART_CONDITION__RESTART_CONDITION_NONE;
    assert_int_equal(swc_restart_decide(&p, FAIL, true, 0, NULL, 0, NOW).verdict, SWC_RESTART_NO);
    /* lost with its node: at once, whatever the delay */
    p.condition = SWARMC__RESTART_CONDITION__RESTART_CONDITION_ANY;
    p.delay_ns = 100 * SEC;
    assert_int_equal(swc_restart_decide(&p, ORPH, true, NOW, NULL, 0, NOW).verdict,
                     SWC_RESTART_NOW);
    /* explicit zero delay */
    Swarmc__RestartPolicy pb = SWARMC__RESTART_POLICY__INIT;
    pb.delay_set = true;
    swc_restart_policy_from_pb(&pb, &p);
    assert_int_equal(p.delay_ns, 0);
    pb.delay_set = false;
    swc_restart_policy_from_pb(&pb, &p);
    assert_int_equal(p.delay_ns, 5 * SEC);
}

static void test_restart_max_attempts_window(void **state)
{
    (void)state;
    struct swc_restart_policy p = {SWARMC__RESTART_CONDITION__RESTART_CONDITION_ANY, 0, 3, 0};
    int64_t hist[3] = {NOW - 30 * SEC, NOW - 20 * SEC, NOW - 10 * SEC};
    /* 3 attempts allowed: the 3rd failure still restarts, the 4th does not */
    assert_int_equal(swc_restart_decide(&p, FAIL, false, NOW, hist, 2, NOW).verdict,
                     SWC_RESTART_NOW);
    assert_int_equal(swc_restart_decide(&p, FAIL, false, NOW, hist, 3, NOW).verdict,
                     SWC_RESTART_NO);
    /* a 15 s window only sees the last earlier failure */
    p.window_ns = 15 * SEC;
    assert_int_equal(swc_restart_decide(&p, FAIL, false, NOW, hist, 3, NOW).verdict,
                     SWC_RESTART_NOW);
    /* asked later, the answer does not change */
    p.window_ns = 0;
    assert_int_equal(swc_restart_decide(&p, FAIL, false, NOW, hist, 3, NOW + 3600 * SEC).verdict,
                     SWC_RESTART_NO);
    /* later tasks than this one are not its history */
    assert_int_equal(swc_restart_decide(&p, FAIL, false, NOW - 25 * SEC, hist, 3, NOW).verdict,
                     SWC_RESTART_NOW);
}

/* ------------------------------------------------------------ replicated */

static void test_replicated_scale_up_into_dead_slots(void **state)
{
    (void)state;
    struct swc_orch_service s = replicated(4);
    s.restart.delay_ns = 0;
    struct swc_orch_task ts[] = {
        task("a", 1, "n1", RUN, RUN, 1),
        /* slot 2 died while desired RUNNING: restarted */
        task("b", 2, "n1", RUN, FAIL, 2),
        /* slot 3 was scaled away earlier */
        task("c", 3, "n2", REM, SHUT, 3),
    };
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_replicated(&s, ts, 3, NOW, &a, &wake), 0);
    assert_non_null(find(&a, SWC_ORCH_SHUTDOWN, "b"));
    assert_int_equal(count(&a, SWC_ORCH_CREATE), 3);
    /* slot 2 (restart) and the free slots 3 and 4 */
    unsigned seen = 0;
    for (size_t i = 0; i < a.n; i++)
        if (a.items[i].kind == SWC_ORCH_CREATE)
            seen |= 1u << a.items[i].slot;
    assert_int_equal(seen, (1u << 2) | (1u << 3) | (1u << 4));
    assert_int_equal(wake, 0);
    swc_orch_actions_clear(&a);
}

static void test_replicated_restart_delay_and_give_up(void **state)
{
    (void)state;
    struct swc_orch_service s = replicated(2);
    struct swc_orch_task ts[] = {
        task("a", 1, "n1", RUN, FAIL, NOW - 2 * SEC),
        task("b", 2, "n1", RUN, RUN, 1),
    };
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_replicated(&s, ts, 2, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 0); /* not yet: the 5 s delay runs */
    assert_int_equal(wake, NOW + 3 * SEC);
    swc_orch_actions_clear(&a);
    /* max attempts used up: the slot is finished and not refilled */
    s.restart.max_attempts = 1;
    struct swc_orch_task ts2[] = {
        task("old", 1, "n1", SHUT, FAIL, NOW - 60 * SEC),
        task("a", 1, "n1", RUN, FAIL, NOW - 10 * SEC),
        task("b", 2, "n1", RUN, RUN, 1),
    };
    wake = 0;
    assert_int_equal(swc_orch_replicated(&s, ts2, 3, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(wake, 0);
    /* ... and stays so, however late we ask */
    assert_int_equal(swc_orch_replicated(&s, ts2, 3, NOW + 86400 * SEC, &a, &wake), 0);
    assert_int_equal(a.n, 0);
    /* a slot whose task was shut down on purpose with no replacement is
     * free again and refilled */
    ts2[1].desired_state = SHUT;
    assert_int_equal(swc_orch_replicated(&s, ts2, 3, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.items[0].kind, SWC_ORCH_CREATE);
    assert_int_equal(a.items[0].slot, 1);
    swc_orch_actions_clear(&a);
}

static void test_replicated_lost_task(void **state)
{
    (void)state;
    struct swc_orch_service s = replicated(1);
    s.restart.max_attempts = 1;
    struct swc_orch_task ts[] = {
        task("x", 1, "n1", SHUT, FAIL, NOW - 60 * SEC),
        task("a", 1, "n1", RUN, ORPH, NOW),
    };
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_replicated(&s, ts, 2, NOW, &a, &wake), 0);
    assert_int_equal(count(&a, SWC_ORCH_CREATE), 1);
    swc_orch_actions_clear(&a);
}

static void test_replicated_scale_down_choice(void **state)
{
    (void)state;
    struct swc_orch_service s = replicated(3);
    s.restart.condition = SWARMC__RESTART_CONDITION__RESTART_CONDITION_NONE;
    struct swc_orch_task ts[] = {
        task("r1", 1, "n1", RUN, RUN, 1),  task("r2", 2, "n1", RUN, RUN, 2),
        task("r3", 3, "n1", RUN, RUN, 3),  task("r4", 4, "n2", RUN, RUN, 4),
        task("r5", 5, "n2", RUN, RUN, 5),  task("p6", 6, "n3", RUN, PEND, 6),
        task("d7", 7, "n3", RUN, FAIL, 7), task("r8", 8, "n3", RUN, RUN, 8),
    };
    /* 8 occupied slots (d7 finished), keep 3: d7 first (finished), p6 (not
     * running), then n1 (3 copies) -> r3, then n1/n2 tie at 2 -> n1 (id order)
     * r2 ... */
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_replicated(&s, ts, 8, NOW, &a, &wake), 0);
    assert_int_equal(count(&a, SWC_ORCH_REMOVE), 5);
    assert_int_equal(count(&a, SWC_ORCH_CREATE), 0);
    assert_non_null(find(&a, SWC_ORCH_REMOVE, "d7"));
    assert_non_null(find(&a, SWC_ORCH_REMOVE, "p6"));
    assert_non_null(find(&a, SWC_ORCH_REMOVE, "r3"));
    /* what stays is one task per node */
    int left_n1 = !find(&a, SWC_ORCH_REMOVE, "r1") + !find(&a, SWC_ORCH_REMOVE, "r2");
    int left_n2 = !find(&a, SWC_ORCH_REMOVE, "r4") + !find(&a, SWC_ORCH_REMOVE, "r5");
    assert_int_equal(left_n1, 1);
    assert_int_equal(left_n2, 1);
    assert_null(find(&a, SWC_ORCH_REMOVE, "r8"));
    swc_orch_actions_clear(&a);
    /* scale to 0 removes everything still counted */
    s.replicas = 0;
    assert_int_equal(swc_orch_replicated(&s, ts, 8, NOW, &a, &wake), 0);
    assert_int_equal(count(&a, SWC_ORCH_REMOVE), 8);
    swc_orch_actions_clear(&a);
}

static void test_replicated_scale_down_restarting(void **state)
{
    (void)state;
    struct swc_orch_service s = replicated(1);
    s.restart.delay_ns = 0;
    struct swc_orch_task ts[] = {
        task("r1", 1, "n1", RUN, RUN, 1), task("f2", 2, "n1", RUN, FAIL, 2), /* would restart now */
    };
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_replicated(&s, ts, 2, NOW, &a, &wake), 0);
    /* the restarting slot is the surplus: removed, not restarted */
    assert_int_equal(a.n, 1);
    assert_non_null(find(&a, SWC_ORCH_REMOVE, "f2"));
    swc_orch_actions_clear(&a);
    s.replicas = 2;
    assert_int_equal(swc_orch_replicated(&s, ts, 2, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 2);
    assert_non_null(find(&a, SWC_ORCH_SHUTDOWN, "f2"));
    assert_int_equal(find(&a, SWC_ORCH_CREATE, NULL)->slot, 2);
    swc_orch_actions_clear(&a);
}

static void test_replicated_steady_and_start_first(void **state)
{
    (void)state;
    struct swc_orch_service s = replicated(2);
    /* slot 1 has an old and a new runnable task (start-first update) */
    struct swc_orch_task ts[] = {
        task("old", 1, "n1", RUN, RUN, 1),
        task("new", 1, "n2", RUN, PEND, 2),
        task("b", 2, "n1", RUN, RUN, 1),
        task("dead", 2, "n1", RUN, FAIL, 0),
    };
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_replicated(&s, ts, 4, NOW, &a, &wake), 0);
    /* only the stray dead task next to a live one is settled */
    assert_int_equal(a.n, 1);
    assert_non_null(find(&a, SWC_ORCH_SHUTDOWN, "dead"));
    swc_orch_actions_clear(&a);
}

/* ------------------------------------------------------------ global */

static struct swc_node_attrs attrs[4];
static struct swc_orch_node nodes[4];
static struct swc_kv zone_a = {"zone", "a"}, zone_b = {"zone", "b"};

static void mk_nodes(void)
{
    const char *ids[] = {"n1", "n2", "n3", "n4"};
    for (int i = 0; i < 4; i++) {
        attrs[i] = (struct swc_node_attrs){.id = ids[i],
                                           .hostname = ids[i],
                                           .os = "linux",
                                           .arch = "x86_64",
                                           .labels = i < 2 ? &zone_a : &zone_b,
                                           .n_labels = 1};
        nodes[i] = (struct swc_orch_node){&attrs[i], true,
                                          SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE};
    }
}

static void test_global(void **state)
{
    (void)state;
    mk_nodes();
    struct swc_orch_service s = {
        .id = "g", .mode = SWARMC__SERVICE_SPEC__MODE_GLOBAL, .spec_version = 1};
    swc_restart_policy_from_pb(NULL, &s.restart);
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    /* fresh: one task per node */
    assert_int_equal(swc_orch_global(&s, NULL, 0, nodes, 4, NOW, &a, &wake), 0);
    assert_int_equal(count(&a, SWC_ORCH_CREATE), 4);
    assert_string_equal(a.items[0].node_id, "n1");
    assert_int_equal(a.items[0].slot, 0);
    swc_orch_actions_clear(&a);
    /* n2 drained, n3 down (keeps its task), n4 new; a task on a removed node */
    struct swc_orch_task ts[] = {
        task("t1", 0, "n1", RUN, RUN, 1),
        task("t2", 0, "n2", RUN, RUN, 1),
        task("t3", 0, "n3", RUN, RUN, 1),
        task("t9", 0, "n9", RUN, RUN, 1),
    };
    nodes[1].availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
    nodes[2].ready = false;
    assert_int_equal(swc_orch_global(&s, ts, 4, nodes, 4, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 3);
    assert_non_null(find(&a, SWC_ORCH_REMOVE, "t2"));
    assert_non_null(find(&a, SWC_ORCH_REMOVE, "t9"));
    const struct swc_orch_action *c = find(&a, SWC_ORCH_CREATE, NULL);
    assert_non_null(c);
    assert_string_equal(c->node_id, "n4");
    swc_orch_actions_clear(&a);
    /* the drained node comes back: its removed task does not block a new one */
    nodes[1].availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
    ts[1].desired_state = REM;
    ts[1].state = SHUT;
    assert_int_equal(swc_orch_global(&s, ts, 3, nodes, 3, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 1);
    c = find(&a, SWC_ORCH_CREATE, NULL);
    assert_string_equal(c->node_id, "n2");
    swc_orch_actions_clear(&a);
    /* a task lost on the down node n3 is replaced only once n3 is back */
    ts[2].state = ORPH;
    assert_int_equal(swc_orch_global(&s, ts + 2, 1, nodes + 2, 1, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 0);
    nodes[2].ready = true;
    assert_int_equal(swc_orch_global(&s, ts + 2, 1, nodes + 2, 1, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 2);
    assert_non_null(find(&a, SWC_ORCH_SHUTDOWN, "t3"));
    assert_string_equal(find(&a, SWC_ORCH_CREATE, NULL)->node_id, "n3");
    swc_orch_actions_clear(&a);
}

static void test_global_constraints_and_restart(void **state)
{
    (void)state;
    mk_nodes();
    struct swc_err err;
    struct swc_constraint_set set;
    const char *expr[] = {"node.labels.zone==a"};
    assert_int_equal(swc_constraint_set_parse(expr, 1, &set, &err), 0);
    struct swc_orch_service s = {.id = "g",
                                 .mode = SWARMC__SERVICE_SPEC__MODE_GLOBAL,
                                 .spec_version = 2,
                                 .constraints = &set};
    swc_restart_policy_from_pb(NULL, &s.restart);
    struct swc_orch_task ts[] = {
        task("t1", 0, "n1", RUN, FAIL, NOW - 10 * SEC),
        task("t3", 0, "n3", RUN, RUN, 1), /* zone b: constraint no longer holds */
    };
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_global(&s, ts, 2, nodes, 4, NOW, &a, &wake), 0);
    /* n1: restart (shutdown old + create), n2: create, n3: remove */
    assert_non_null(find(&a, SWC_ORCH_SHUTDOWN, "t1"));
    assert_non_null(find(&a, SWC_ORCH_REMOVE, "t3"));
    assert_int_equal(count(&a, SWC_ORCH_CREATE), 2);
    for (size_t i = 0; i < a.n; i++)
        if (a.items[i].kind == SWC_ORCH_CREATE)
            assert_int_equal(a.items[i].spec_version, 2);
    assert_true(swc_orch_node_eligible(&s, &nodes[0]));
    assert_false(swc_orch_node_eligible(&s, &nodes[3]));
    swc_orch_actions_clear(&a);
    swc_constraint_set_clear(&set);
}

/* ------------------------------------------------------------ jobs */

static void test_replicated_job(void **state)
{
    (void)state;
    struct swc_orch_service s = {.id = "j",
                                 .mode = SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB,
                                 .max_concurrent = 2,
                                 .total_completions = 5,
                                 .spec_version = 1,
                                 .job_iteration = 1};
    s.restart = (struct swc_restart_policy){SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE,
                                            0, 0, 0};
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_replicated_job(&s, NULL, 0, NOW, &a, &wake), 0);
    assert_int_equal(count(&a, SWC_ORCH_CREATE), 2);
    assert_int_equal(a.items[0].slot, 1);
    assert_int_equal(a.items[1].slot, 2);
    assert_int_equal(a.items[1].job_iteration, 1);
    swc_orch_actions_clear(&a);
    /* slot 1 complete, slot 2 running: one more may start (slot 3) */
    struct swc_orch_task ts[6] = {
        task("j1", 1, "n1", RUN, DONE, 1),
        task("j2", 2, "n1", RUN, RUN, 1),
    };
    ts[0].job_iteration = ts[1].job_iteration = 1;
    assert_int_equal(swc_orch_replicated_job(&s, ts, 2, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.items[0].slot, 3);
    swc_orch_actions_clear(&a);
    /* slot 2 failed: restarted; it takes the second concurrency seat */
    ts[1].state = FAIL;
    ts[2] = task("j3", 3, "n1", RUN, RUN, 1);
    ts[2].job_iteration = 1;
    assert_int_equal(swc_orch_replicated_job(&s, ts, 3, NOW, &a, &wake), 0);
    assert_non_null(find(&a, SWC_ORCH_SHUTDOWN, "j2"));
    assert_int_equal(count(&a, SWC_ORCH_CREATE), 1);
    assert_int_equal(find(&a, SWC_ORCH_CREATE, NULL)->slot, 2);
    swc_orch_actions_clear(&a);
    /* all 5 complete: nothing to do */
    for (int i = 0; i < 5; i++) {
        static const char *ids[] = {"c1", "c2", "c3", "c4", "c5"};
        ts[i] = task(ids[i], (uint64_t)i + 1, "n1", RUN, DONE, 1);
        ts[i].job_iteration = 1;
    }
    assert_int_equal(swc_orch_replicated_job(&s, ts, 5, NOW, &a, &wake), 0);
    assert_int_equal(a.n, 0);
    /* re-run: iteration 2 starts over; a runnable task of iteration 1 stops */
    ts[5] = task("old", 6, "n1", RUN, RUN, 1);
    ts[5].job_iteration = 1;
    s.job_iteration = 2;
    assert_int_equal(swc_orch_replicated_job(&s, ts, 6, NOW, &a, &wake), 0);
    assert_int_equal(count(&a, SWC_ORCH_CREATE), 2);
    assert_non_null(find(&a, SWC_ORCH_SHUTDOWN, "old"));
    assert_int_equal(find(&a, SWC_ORCH_CREATE, NULL)->job_iteration, 2);
    swc_orch_actions_clear(&a);
}

static void test_global_job(void **state)
{
    (void)state;
    mk_nodes();
    struct swc_orch_service s = {.id = "gj",
                                 .mode = SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB,
                                 .spec_version = 1,
                                 .job_iteration = 3};
    s.restart = (struct swc_restart_policy){SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE,
                                            0, 0, 0};
    struct swc_orch_task ts[] = {
        task("done", 0, "n1", RUN, DONE, 1),
        task("runs", 0, "n2", RUN, RUN, 1),
        task("prev", 0, "n3", RUN, DONE, 1),
    };
    ts[0].job_iteration = ts[1].job_iteration = 3;
    ts[2].job_iteration = 2;
    struct swc_orch_actions a = {0};
    int64_t wake = 0;
    assert_int_equal(swc_orch_global_job(&s, ts, 3, nodes, 4, NOW, &a, &wake), 0);
    /* n3 (only an older run) and n4 get a run of iteration 3 */
    assert_int_equal(a.n, 2);
    assert_string_equal(a.items[0].node_id, "n3");
    assert_string_equal(a.items[1].node_id, "n4");
    swc_orch_actions_clear(&a);
}

static void test_service_from_pb(void **state)
{
    (void)state;
    Swarmc__Service s = SWARMC__SERVICE__INIT;
    Swarmc__ServiceSpec sp = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__ReplicatedService rs = SWARMC__REPLICATED_SERVICE__INIT;
    Swarmc__TaskSpec ts = SWARMC__TASK_SPEC__INIT;
    Swarmc__Placement pl = SWARMC__PLACEMENT__INIT;
    char *cons[] = {"node.role==worker"};
    pl.constraints = cons;
    pl.n_constraints = 1;
    ts.placement = &pl;
    rs.replicas = 7;
    sp.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    sp.replicated = &rs;
    sp.task = &ts;
    s.spec = &sp;
    s.id = "sid";
    s.spec_version = 4;
    struct swc_orch_service o;
    struct swc_constraint_set set;
    struct swc_sched_platform *plat;
    struct swc_err err;
    assert_int_equal(swc_orch_service_from_pb(&s, &o, &set, &plat, &err), 0);
    assert_int_equal(o.replicas, 7);
    assert_int_equal(o.spec_version, 4);
    assert_int_equal(set.n, 1);
    assert_int_equal(o.restart.delay_ns, 5 * SEC);
    swc_constraint_set_clear(&set);
    swc_free(plat);
    Swarmc__Task pt = SWARMC__TASK__INIT;
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    st.state = RUN;
    st.timestamp = 42;
    pt.status = &st;
    pt.slot = 3;
    struct swc_orch_task t;
    swc_orch_task_from_pb(&pt, &t);
    assert_int_equal(t.slot, 3);
    assert_int_equal(t.running_at, 42);
    assert_true(swc_orch_task_runnable(&t));
}

/* ------------------------------------------------------------ reaper */

static void test_reaper(void **state)
{
    (void)state;
    struct swc_reaper_task ts[12];
    size_t n = 0;
    /* slot 1: 7 dead tasks (ts 1..7) + 1 running */
    static const char *ids[] = {"d1", "d2", "d3", "d4", "d5", "d6", "d7"};
    for (int i = 0; i < 7; i++)
        ts[n++] = (struct swc_reaper_task){ids[i], "s", 1, "n1", SHUT, FAIL, 7 - i, true};
    ts[n++] = (struct swc_reaper_task){"live", "s", 1, "n1", RUN, RUN, 100, true};
    /* slot 2: a dead task awaiting restart is kept */
    ts[n++] = (struct swc_reaper_task){"wait", "s", 2, "n1", RUN, FAIL, 1, true};
    /* scaled away: removed once dead */
    ts[n++] = (struct swc_reaper_task){"gone", "s", 3, "n1", REM, SHUT, 1, true};
    ts[n++] = (struct swc_reaper_task){"stopping", "s", 4, "n1", REM, RUN, 1, true};
    /* a removed service: everything goes */
    ts[n++] = (struct swc_reaper_task){"orphan", "x", 1, "n1", RUN, RUN, 1, false};
    size_t *idx, k;
    assert_int_equal(swc_reaper_select(ts, n, swc_reaper_limit(NULL), &idx, &k), 0);
    assert_int_equal(k, 4);
    bool del[12] = {0};
    for (size_t i = 0; i < k; i++)
        del[idx[i]] = true;
    /* d6 and d7 are the oldest (ts 2 and 1) */
    assert_true(del[5]);
    assert_true(del[6]);
    assert_false(del[0]);
    assert_false(del[7]);
    assert_false(del[8]);
    assert_true(del[9]);
    assert_false(del[10]);
    assert_true(del[11]);
    swc_free(idx);
    /* limit 1 keeps only the newest dead task of slot 1 */
    assert_int_equal(swc_reaper_select(ts, 8, 1, &idx, &k), 0);
    assert_int_equal(k, 6);
    for (size_t i = 0; i < k; i++)
        assert_true(idx[i] != 0 && idx[i] != 7);
    swc_free(idx);
    /* global: per node */
    struct swc_reaper_task g[] = {
        {"g1", "g", 0, "n1", SHUT, FAIL, 1, true},
        {"g2", "g", 0, "n1", SHUT, FAIL, 2, true},
        {"g3", "g", 0, "n2", SHUT, FAIL, 1, true},
    };
    assert_int_equal(swc_reaper_select(g, 3, 1, &idx, &k), 0);
    assert_int_equal(k, 1);
    assert_int_equal(idx[0], 0);
    swc_free(idx);
    Swarmc__Cluster cl = SWARMC__CLUSTER__INIT;
    Swarmc__ClusterSpec cs = SWARMC__CLUSTER_SPEC__INIT;
    Swarmc__OrchestrationSettings os = SWARMC__ORCHESTRATION_SETTINGS__INIT;
    cl.spec = &cs;
    cs.orchestration = &os;
    os.task_history_retention_limit = -1;
    assert_int_equal(swc_reaper_limit(&cl), 0);
    os.task_history_retention_limit = 9;
    assert_int_equal(swc_reaper_limit(&cl), 9);
}

/* Every allocation failure gives SWC_ENOMEM and leaks nothing. */
static void test_enomem_sweep(void **state)
{
    (void)state;
    mk_nodes();
    struct swc_orch_service s = replicated(2);
    struct swc_orch_task ts[] = {
        task("r1", 1, "n1", RUN, RUN, 1), task("r2", 2, "n1", RUN, RUN, 2),
        task("r3", 3, "n2", RUN, RUN, 3), task("d4", 4, "n3", RUN, FAIL, 4),
        task("r5", 5, "n2", RUN, RUN, 5),
    };
    struct swc_orch_service g = {
        .id = "g", .mode = SWARMC__SERVICE_SPEC__MODE_GLOBAL, .spec_version = 1};
    swc_restart_policy_from_pb(NULL, &g.restart);
    for (int which = 0; which < 3; which++) {
        for (long k = 1;; k++) {
            struct swc_orch_actions a = {0};
            int64_t wake = 0;
            swc_alloc_fail_after(k);
            int rc = which == 0   ? swc_orch_replicated(&s, ts, 5, NOW, &a, &wake)
                     : which == 1 ? swc_orch_global(&g, ts, 5, nodes, 4, NOW, &a, &wake)
                                  : swc_orch_replicated_job(&s, ts, 5, NOW, &a, &wake);
            swc_alloc_fail_after(0);
            swc_orch_actions_clear(&a);
            if (rc == 0)
                break;
            assert_int_equal(rc, SWC_ENOMEM);
            assert_true(k < 1000);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_policy),
        cmocka_unit_test(test_restart_max_attempts_window),
        cmocka_unit_test(test_replicated_scale_up_into_dead_slots),
        cmocka_unit_test(test_replicated_restart_delay_and_give_up),
        cmocka_unit_test(test_replicated_lost_task),
        cmocka_unit_test(test_replicated_scale_down_choice),
        cmocka_unit_test(test_replicated_scale_down_restarting),
        cmocka_unit_test(test_replicated_steady_and_start_first),
        cmocka_unit_test(test_global),
        cmocka_unit_test(test_global_constraints_and_restart),
        cmocka_unit_test(test_replicated_job),
        cmocka_unit_test(test_global_job),
        cmocka_unit_test(test_service_from_pb),
        cmocka_unit_test(test_reaper),
        cmocka_unit_test(test_enomem_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
