/* CLI output on long lists: `service ls` pairs each service with its counts
 * (in service order, or not), `service ps` finds each task's node name among
 * many nodes sent in any order, and a table keeps every row of a long list.
 * These lookups were linear scans per row; the checks pin the results of
 * their faster replacements. Includes cmd/swarmc/output.c (see
 * test_cli_output.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cmd/swarmc/output.c"

#define NSVC   40
#define NNODES 300

struct svc {
    Swarmc__Service s;
    Swarmc__ServiceSpec spec;
    Swarmc__Annotations an;
    Swarmc__ReplicatedService rep;
    Swarmc__ServiceCounts counts;
    char id[32], name[32];
};

static void svc_init(struct svc *f, int i)
{
    Swarmc__Service s0 = SWARMC__SERVICE__INIT;
    Swarmc__ServiceSpec sp0 = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__Annotations a0 = SWARMC__ANNOTATIONS__INIT;
    Swarmc__ReplicatedService r0 = SWARMC__REPLICATED_SERVICE__INIT;
    Swarmc__ServiceCounts k0 = SWARMC__SERVICE_COUNTS__INIT;
    f->s = s0, f->spec = sp0, f->an = a0, f->rep = r0, f->counts = k0;
    snprintf(f->id, sizeof f->id, "svc%04dxxxxxxxxxxxxxxxxxx", i);
    snprintf(f->name, sizeof f->name, "name%d", i);
    f->s.id = f->id;
    f->s.spec = &f->spec;
    f->spec.annotations = &f->an;
    f->an.name = f->name;
    f->spec.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    f->spec.replicated = &f->rep;
    f->rep.replicas = (uint64_t)(1000 + i);
    f->counts.service_id = f->id;
    f->counts.running = (uint64_t)i;
    f->counts.desired = (uint64_t)(1000 + i);
}

/* The table row of service i shows its own running/desired. */
static void check_replicas(const char *out)
{
    for (int i = 0; i < NSVC; i++) {
        char name[48], reps[48];
        snprintf(name, sizeof name, "   name%d ", i);
        snprintf(reps, sizeof reps, " %d/%d\n", i, 1000 + i); /* last non-empty column */
        const char *row = strstr(out, name);
        assert_non_null(row);
        const char *eol = strchr(row, '\n');
        const char *hit = strstr(row, reps);
        if (hit == NULL || hit >= eol) {
            fail_msg("row of name%d lacks %s", i, reps);
        }
    }
}

static void test_ls_counts_any_order(void **state)
{
    (void)state;
    static struct svc f[NSVC];
    Swarmc__Service *svcs[NSVC];
    Swarmc__ServiceCounts *counts[NSVC];
    Swarmc__ListServicesResponse r = SWARMC__LIST_SERVICES_RESPONSE__INIT;
    struct swc_out_opts o = {0};
    char *s;
    for (int i = 0; i < NSVC; i++) {
        svc_init(&f[i], i);
        svcs[i] = &f[i].s;
    }
    r.n_services = NSVC;
    r.services = svcs;
    r.n_counts = NSVC;
    r.counts = counts;
    /* in service order (what the manager sends) */
    for (int i = 0; i < NSVC; i++) {
        counts[i] = &f[i].counts;
    }
    s = swc_out_service_ls(&r, &o);
    check_replicas(s);
    swc_free(s);
    /* reversed, and rotated: each must still find its own */
    for (int i = 0; i < NSVC; i++) {
        counts[i] = &f[NSVC - 1 - i].counts;
    }
    s = swc_out_service_ls(&r, &o);
    check_replicas(s);
    swc_free(s);
    for (int i = 0; i < NSVC; i++) {
        counts[i] = &f[(i + 7) % NSVC].counts;
    }
    s = swc_out_service_ls(&r, &o);
    check_replicas(s);
    swc_free(s);
    /* a service without counts shows 0 running */
    r.n_counts = NSVC - 1; /* drops f[6] (rotated by 7) */
    s = swc_out_service_ls(&r, &o);
    assert_non_null(strstr(s, " 0/1006\n"));
    swc_free(s);
}

static void test_ps_node_names_unsorted(void **state)
{
    (void)state;
    static Swarmc__Task tasks[NNODES];
    static Swarmc__Task *tp[NNODES];
    static Swarmc__ListTasksResponse__NodeNamesEntry ent[NNODES], *ep[NNODES];
    static char tids[NNODES][32], nids[NNODES][32], hosts[NNODES][32];
    Swarmc__ListTasksResponse r = SWARMC__LIST_TASKS_RESPONSE__INIT;
    struct swc_out_opts o = {0};
    char *filters[1], filt[64], want[64], *s;
    for (int i = 0; i < NNODES; i++) {
        Swarmc__Task t0 = SWARMC__TASK__INIT;
        Swarmc__ListTasksResponse__NodeNamesEntry e0 =
            SWARMC__LIST_TASKS_RESPONSE__NODE_NAMES_ENTRY__INIT;
        snprintf(tids[i], sizeof tids[i], "task%04dxxxxxxxxxxxxxxxxx", i);
        snprintf(nids[i], sizeof nids[i], "node%04dxxxxxxxxxxxxxxxxx", i);
        snprintf(hosts[i], sizeof hosts[i], "host-%d", i);
        tasks[i] = t0;
        tasks[i].id = tids[i];
        tasks[i].service_name = "web";
        tasks[i].slot = (uint64_t)(i + 1);
        tasks[i].node_id = nids[i];
        tasks[i].desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
        tp[i] = &tasks[i];
        /* names sent in an order unrelated to the ids */
        int k = (i * 7 + 3) % NNODES;
        ent[k] = e0;
        ent[k].key = nids[i];
        ent[k].value = hosts[i];
        ep[k] = &ent[k];
    }
    r.n_tasks = NNODES;
    r.tasks = tp;
    r.n_node_names = NNODES;
    r.node_names = ep;
    o.quiet = true;
    o.filters = filters;
    o.n_filters = 1;
    for (int i = 0; i < NNODES; i += 37) {
        snprintf(filt, sizeof filt, "node=host-%d", i);
        filters[0] = filt;
        s = swc_out_service_ps(&r, &o);
        snprintf(want, sizeof want, "task%04dxxxx\n", i);
        assert_string_equal(s, want);
        swc_free(s);
    }
    /* an unknown node id shows the id itself */
    tasks[5].node_id = "nodeunknownxxxxxxxxxxxxxx";
    filters[0] = "node=nodeunknownxxxxxxxxxxxxxx";
    s = swc_out_service_ps(&r, &o);
    assert_string_equal(s, "task0005xxxx\n");
    swc_free(s);
    /* the table shows the names */
    o.quiet = false;
    o.n_filters = 0;
    s = swc_out_service_ps(&r, &o);
    assert_non_null(strstr(s, "web.300    "));
    assert_non_null(strstr(s, " host-299 "));
    assert_non_null(strstr(s, " host-0 "));
    swc_free(s);
}

static void test_table_many_rows(void **state)
{
    (void)state;
    struct swc_table t;
    const char *hdr[] = {"N", "WORD"};
    char num[32], *s;
    size_t lines = 0;
    swc_table_init(&t, 2, hdr);
    for (int i = 0; i < 5000; i++) {
        const char *row[] = {num, i % 2 ? "odd" : "even"};
        snprintf(num, sizeof num, "%d", i);
        swc_table_add(&t, row);
    }
    s = swc_table_render(&t);
    for (const char *p = s; *p; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, 5001);
    assert_non_null(strstr(s, "N      WORD\n0      even\n1      odd\n"));
    assert_non_null(strstr(s, "\n4999   odd\n"));
    swc_free(s);
    swc_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ls_counts_any_order),
        cmocka_unit_test(test_ps_node_names_unsorted),
        cmocka_unit_test(test_table_many_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
