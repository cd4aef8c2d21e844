/* Scheduler placement benchmark: time swc_sched_place for
 *   A. 100k tasks of one service (one group) on 1k nodes,
 *   B. 100k tasks of one service on 100k nodes,
 *   C. 100k tasks in 1,000 services (100 each) on 1k nodes,
 *   D. as A with a spread preference over 10 zone values.
 * Nodes are built (untimed) before each run; every node has 3 labels, 4 CPUs,
 * 16 GiB, and tasks reserve 1 mCPU / 1 MiB so the resource filter is real
 * work. For the loop that feeds the scheduler it also times the replicated
 * orchestrator over 100k tasks (steady state, and a scale-down to 50k over
 * 1k nodes). Prints median, min and max of 5 runs; asserts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "manager/orchestrator.h"
#include "manager/scheduler.h"

#define RUNS 5

static struct swc_sched *build(size_t n_nodes)
{
    struct swc_sched *s;
    if (swc_sched_create(&s) != 0)
        abort();
    char id[32], zone[16];
    for (size_t i = 0; i < n_nodes; i++) {
        snprintf(id, sizeof id, "node-%07zu", i);
        snprintf(zone, sizeof zone, "z%zu", i % 10);
        struct swc_kv labels[3] = {{"zone", zone}, {"rack", "r1"}, {"ssd", "true"}};
        struct swc_sched_node_info info = {
            .id = id,
            .hostname = id,
            .os = "linux",
            .arch = "x86_64",
            .labels = labels,
            .n_labels = 3,
            .ready = true,
            .availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE,
            .nano_cpus = 4000000000LL,
            .memory_bytes = 16LL << 30,
        };
        if (swc_sched_node_add(s, &info, NULL) != 0)
            abort();
    }
    return s;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *name, size_t n_tasks, size_t n_services, size_t n_nodes,
                bool spread_pref)
{
    static const char *spread[] = {"node.labels.zone"};
    struct swc_sched_task *ts = swc_calloc(n_tasks, sizeof(*ts));
    struct swc_sched_result *rs = swc_calloc(n_tasks, sizeof(*rs));
    char(*svc)[32] = swc_calloc(n_services, sizeof(*svc));
    char(*ids)[32] = swc_calloc(n_tasks, sizeof(*ids));
    if (!ts || !rs || !svc || !ids)
        abort();
    for (size_t i = 0; i < n_services; i++)
        snprintf(svc[i], sizeof svc[i], "svc-%05zu", i);
    for (size_t i = 0; i < n_tasks; i++) {
        snprintf(ids[i], sizeof ids[i], "t%zu", i);
        ts[i] = (struct swc_sched_task){.id = ids[i],
                                        .service_id = svc[i % n_services],
                                        .spec_version = 1,
                                        .nano_cpus = 1000000,
                                        .memory_bytes = 1 << 20};
        if (spread_pref) {
            ts[i].spread = spread;
            ts[i].n_spread = 1;
        }
    }
    double ms[RUNS];
    size_t placed = 0;
    for (int r = 0; r < RUNS; r++) {
        struct swc_sched *s = build(n_nodes);
        int64_t t0 = swc_now_mono();
        if (swc_sched_place(s, ts, n_tasks, 1, rs) != 0)
            abort();
        int64_t t1 = swc_now_mono();
        ms[r] = (double)(t1 - t0) / 1e6;
        placed = 0;
        for (size_t i = 0; i < n_tasks; i++)
            placed += rs[i].node_id != NULL;
        swc_sched_results_clear(rs, n_tasks);
        swc_sched_destroy(s);
    }
    qsort(ms, RUNS, sizeof(ms[0]), cmp_d);
    printf("%-52s placed %zu/%zu  median %8.1f ms  min %8.1f ms  max %8.1f ms\n", name, placed,
           n_tasks, ms[RUNS / 2], ms[0], ms[RUNS - 1]);
    swc_free(ts);
    swc_free(rs);
    swc_free(svc);
    swc_free(ids);
}

static void run_orch(const char *name, uint64_t replicas)
{
    const size_t n = 100000;
    struct swc_orch_task *ts = swc_calloc(n, sizeof(*ts));
    char(*nodes)[16] = swc_calloc(1000, sizeof(*nodes));
    char(*ids)[16] = swc_calloc(n, sizeof(*ids));
    if (!ts || !nodes || !ids)
        abort();
    for (size_t i = 0; i < 1000; i++)
        snprintf(nodes[i], sizeof nodes[i], "node-%04zu", i);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "t%zu", i);
        /* shuffled slots so sorting is real work */
        uint64_t slot = (i * 7919) % n + 1;
        ts[i] = (struct swc_orch_task){.id = ids[i],
                                       .slot = slot,
                                       .node_id = nodes[i % 1000],
                                       .desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING,
                                       .state = SWARMC__TASK_STATE__TASK_STATE_RUNNING,
                                       .spec_version = 1,
                                       .created_at = 1,
                                       .status_ts = 1};
    }
    struct swc_orch_service svc = {.id = "svc",
                                   .mode = SWARMC__SERVICE_SPEC__MODE_REPLICATED,
                                   .replicas = replicas,
                                   .spec_version = 1};
    swc_restart_policy_from_pb(NULL, &svc.restart);
    double ms[RUNS];
    size_t acts = 0;
    for (int r = 0; r < RUNS; r++) {
        struct swc_orch_actions a = {0};
        int64_t wake = 0;
        int64_t t0 = swc_now_mono();
        if (swc_orch_replicated(&svc, ts, n, 1, &a, &wake) != 0)
            abort();
        ms[r] = (double)(swc_now_mono() - t0) / 1e6;
        acts = a.n;
        swc_orch_actions_clear(&a);
    }
    qsort(ms, RUNS, sizeof(ms[0]), cmp_d);
    printf("%-52s actions %7zu  median %8.1f ms  min %8.1f ms  max %8.1f ms\n", name, acts,
           ms[RUNS / 2], ms[0], ms[RUNS - 1]);
    swc_free(ts);
    swc_free(nodes);
    swc_free(ids);
}

int main(void)
{
    printf("scheduler placement, %d runs each\n", RUNS);
    run("A: 100k tasks, 1 service, 1k nodes", 100000, 1, 1000, false);
    run("B: 100k tasks, 1 service, 100k nodes", 100000, 1, 100000, false);
    run("C: 100k tasks, 1,000 services, 1k nodes", 100000, 1000, 1000, false);
    run("D: 100k tasks, 1 service, 1k nodes, spread zone", 100000, 1, 1000, true);
    run_orch("E: orchestrator, 100k replicas, steady", 100000);
    run_orch("F: orchestrator, 100k -> 50k replicas on 1k nodes", 50000);
    return 0;
}
