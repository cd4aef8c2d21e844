/* CLI output: table alignment, id truncation, the `service ls`, `service
 * ps` and `node ls` views with their filters, -q, JSON, and inspect JSON.
 *
 * cmd/swarmc/ is built only into the swarmc executable, so this test
 * compiles the pure output code by including cmd/swarmc/output.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../cmd/swarmc/output.c"

#define NOW (1700000000LL * SWC_NS_PER_SEC)

static void test_table_alignment(void **state)
{
    (void)state;
    struct swc_table t;
    const char *hdr[] = {"ID", "NAME", "LAST"};
    const char *r1[] = {"a", "longer-name", "x"};
    const char *r2[] = {"bbbbbb", "n", ""};
    swc_table_init(&t, 3, hdr);
    swc_table_add(&t, r1);
    swc_table_add(&t, r2);
    char *s = swc_table_render(&t);
    assert_string_equal(s, "ID       NAME          LAST\n"
                           "a        longer-name   x\n"
                           "bbbbbb   n\n");
    swc_free(s);
    swc_table_free(&t);
}

static void test_human_duration(void **state)
{
    (void)state;
    char b[64];
    struct {
        int64_t s;
        const char *want;
    } cases[] = {{0, "Less than a second"},  {1, "1 second"},
                 {5, "5 seconds"},           {59, "59 seconds"},
                 {60, "About a minute"},     {150, "2 minutes"},
                 {3600, "About an hour"},    {7200, "2 hours"},
                 {3 * 86400, "3 days"},      {30 * 86400, "4 weeks"},
                 {400 * 86400, "13 months"}, {800 * 86400, "2 years"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        swc_out_human_duration(cases[i].s * SWC_NS_PER_SEC, b, sizeof b);
        assert_string_equal(b, cases[i].want);
    }
}

/* ---- fixtures ------------------------------------------------------------ */

struct svc_fix {
    Swarmc__Service svc;
    Swarmc__Meta meta;
    Swarmc__ServiceSpec spec;
    Swarmc__Annotations an;
    Swarmc__TaskSpec task;
    Swarmc__ContainerSpec ctr;
    Swarmc__ReplicatedService rep;
    Swarmc__ReplicatedJob job;
    Swarmc__GlobalService glob;
    Swarmc__EndpointSpec ep;
    Swarmc__PortConfig port, *ports[1];
    Swarmc__ServiceCounts counts;
};

static void svc_init(struct svc_fix *f, const char *id, const char *name, const char *image,
                     int mode, uint64_t replicas)
{
    Swarmc__Service s0 = SWARMC__SERVICE__INIT;
    Swarmc__ServiceSpec sp0 = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__Annotations a0 = SWARMC__ANNOTATIONS__INIT;
    Swarmc__TaskSpec t0 = SWARMC__TASK_SPEC__INIT;
    Swarmc__ContainerSpec c0 = SWARMC__CONTAINER_SPEC__INIT;
    Swarmc__ReplicatedService r0 = SWARMC__REPLICATED_SERVICE__INIT;
    Swarmc__ReplicatedJob j0 = SWARMC__REPLICATED_JOB__INIT;
    Swarmc__GlobalService g0 = SWARMC__GLOBAL_SERVICE__INIT;
    Swarmc__EndpointSpec e0 = SWARMC__ENDPOINT_SPEC__INIT;
    Swarmc__ServiceCounts k0 = SWARMC__SERVICE_COUNTS__INIT;
    Swarmc__Meta m0 = SWARMC__META__INIT;
    f->svc = s0, f->spec = sp0, f->an = a0, f->task = t0, f->ctr = c0, f->rep = r0, f->job = j0;
    f->glob = g0, f->ep = e0, f->counts = k0, f->meta = m0;
    f->svc.id = (char *)id;
    f->svc.meta = &f->meta;
    f->meta.created_at = NOW - 5 * SWC_NS_PER_SEC;
    f->svc.spec = &f->spec;
    f->spec.annotations = &f->an;
    f->an.name = (char *)name;
    f->spec.task = &f->task;
    f->task.container = &f->ctr;
    f->ctr.image = (char *)image;
    f->spec.mode_case = mode;
    f->spec.endpoint = &f->ep;
    if (mode == SWARMC__SERVICE_SPEC__MODE_REPLICATED) {
        f->spec.replicated = &f->rep;
        f->rep.replicas = replicas;
    } else if (mode == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB) {
        f->spec.replicated_job = &f->job;
        f->job.total_completions = replicas;
        f->job.max_concurrent = 3;
    } else {
        f->spec.global = &f->glob;
    }
    f->counts.service_id = (char *)id;
}

static Swarmc__ListServicesResponse *services_fixture(struct svc_fix *f)
{
    static Swarmc__ListServicesResponse r = SWARMC__LIST_SERVICES_RESPONSE__INIT;
    static Swarmc__Service *svcs[3];
    static Swarmc__ServiceCounts *counts[3];
    svc_init(&f[0], "k2v8xq3m1p9z7w6t5r4e3d2c1", "web", "nginx:1.25",
             SWARMC__SERVICE_SPEC__MODE_REPLICATED, 3);
    f[0].counts.running = 2;
    f[0].counts.desired = 3;
    Swarmc__PortConfig p0 = SWARMC__PORT_CONFIG__INIT;
    f[0].port = p0;
    f[0].port.published_port = 8080;
    f[0].port.target_port = 80;
    f[0].ports[0] = &f[0].port;
    f[0].ep.n_ports = 1;
    f[0].ep.ports = f[0].ports;
    svc_init(&f[1], "a1b2c3d4e5f6g7h8i9j0k1l2m", "monitoring-agent", "agent:2",
             SWARMC__SERVICE_SPEC__MODE_GLOBAL, 0);
    f[1].counts.running = 4;
    f[1].counts.desired = 4;
    svc_init(&f[2], "zzzzzzzzzzzzzzzzzzzzzzzzz", "migrate", "tools:1",
             SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB, 5);
    f[2].counts.running = 1;
    f[2].counts.completed = 2;
    f[2].counts.desired = 3;
    for (int i = 0; i < 3; i++) {
        svcs[i] = &f[i].svc;
        counts[i] = &f[i].counts;
    }
    r.n_services = 3;
    r.services = svcs;
    r.n_counts = 3;
    r.counts = counts;
    return &r;
}

static void test_service_ls(void **state)
{
    (void)state;
    struct svc_fix f[3];
    Swarmc__ListServicesResponse *r = services_fixture(f);
    struct swc_out_opts o = {0};
    o.now_wall = NOW;
    char *s = swc_out_service_ls(r, &o);
    assert_string_equal(
        s, "ID             NAME               MODE             REPLICAS              IMAGE        "
           "PORTS\n"
           "k2v8xq3m1p9z   web                replicated       2/3                   nginx:1.25   "
           "*:8080->80/tcp\n"
           "a1b2c3d4e5f6   monitoring-agent   global           4/4                   agent:2\n"
           "zzzzzzzzzzzz   migrate            replicated job   1/3 (2/5 completed)   tools:1\n");
    swc_free(s);

    o.quiet = true;
    s = swc_out_service_ls(r, &o);
    assert_string_equal(s, "k2v8xq3m1p9z\na1b2c3d4e5f6\nzzzzzzzzzzzz\n");
    swc_free(s);
    o.no_trunc = true;
    char *filters[] = {"mode=global"};
    o.filters = filters;
    o.n_filters = 1;
    s = swc_out_service_ls(r, &o);
    assert_string_equal(s, "a1b2c3d4e5f6g7h8i9j0k1l2m\n");
    swc_free(s);
    char *filters2[] = {"name=mi", "name=we"}; /* same key: either; name is a prefix */
    o.filters = filters2;
    o.n_filters = 2;
    s = swc_out_service_ls(r, &o);
    assert_string_equal(s, "k2v8xq3m1p9z7w6t5r4e3d2c1\nzzzzzzzzzzzzzzzzzzzzzzzzz\n");
    swc_free(s);
    char *filters3[] = {"mode=replicated-job"};
    o.filters = filters3;
    o.n_filters = 1;
    s = swc_out_service_ls(r, &o);
    assert_string_equal(s, "zzzzzzzzzzzzzzzzzzzzzzzzz\n");
    swc_free(s);
}

static void test_service_ls_json(void **state)
{
    (void)state;
    struct svc_fix f[3];
    Swarmc__ListServicesResponse *r = services_fixture(f);
    struct swc_out_opts o = {0};
    o.json = true;
    char *s = swc_out_service_ls(r, &o);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    assert_non_null(j);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 3);
    json_t *o0 = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(o0, "ID")), "k2v8xq3m1p9z7w6t5r4e3d2c1");
    assert_string_equal(json_string_value(json_object_get(o0, "Name")), "web");
    assert_string_equal(json_string_value(json_object_get(o0, "Mode")), "replicated");
    assert_string_equal(json_string_value(json_object_get(o0, "Replicas")), "2/3");
    assert_string_equal(json_string_value(json_object_get(o0, "Image")), "nginx:1.25");
    assert_string_equal(json_string_value(json_object_get(o0, "Ports")), "*:8080->80/tcp");
    json_decref(j);
    swc_free(s);
}

struct task_fix {
    Swarmc__Task t;
    Swarmc__Meta meta;
    Swarmc__TaskStatus st;
    Swarmc__TaskSpec spec;
    Swarmc__ContainerSpec ctr;
};

static void task_init(struct task_fix *f, const char *id, uint64_t slot, const char *node,
                      int desired, int state, int64_t ago_s, int64_t created, const char *err)
{
    Swarmc__Task t0 = SWARMC__TASK__INIT;
    Swarmc__Meta m0 = SWARMC__META__INIT;
    Swarmc__TaskStatus s0 = SWARMC__TASK_STATUS__INIT;
    Swarmc__TaskSpec p0 = SWARMC__TASK_SPEC__INIT;
    Swarmc__ContainerSpec c0 = SWARMC__CONTAINER_SPEC__INIT;
    f->t = t0, f->meta = m0, f->st = s0, f->spec = p0, f->ctr = c0;
    f->t.id = (char *)id;
    f->t.meta = &f->meta;
    f->meta.created_at = created;
    f->t.slot = slot;
    f->t.node_id = (char *)node;
    f->t.service_name = "web";
    f->t.desired_state = desired;
    f->t.status = &f->st;
    f->st.state = state;
    f->st.timestamp = NOW - ago_s * SWC_NS_PER_SEC;
    f->st.err = (char *)(err ? err : "");
    f->t.spec = &f->spec;
    f->spec.container = &f->ctr;
    f->ctr.image = "nginx:1.25";
}

static void test_service_ps(void **state)
{
    (void)state;
    enum {
        R = SWARMC__TASK_STATE__TASK_STATE_RUNNING,
        S = SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN,
        F = SWARMC__TASK_STATE__TASK_STATE_FAILED
    };
    struct task_fix tf[4];
    task_init(&tf[0], "t2aaaaaaaaaaaaaaaaaaaaaaa", 2, "n1nnnnnnnnnnnnnnnnnnnnnnn", R, R, 5, 200,
              NULL);
    task_init(&tf[1], "t1oldoldoldoldoldoldoldol", 1, "n1nnnnnnnnnnnnnnnnnnnnnnn", S, F, 150, 100,
              "task: non-zero exit (1): the container failed badly at start");
    task_init(&tf[2], "t1newnewnewnewnewnewnewne", 1, "n2nnnnnnnnnnnnnnnnnnnnnnn", R, R, 2, 300,
              NULL);
    task_init(&tf[3], "t3pendingpendingpendingpe", 3, "", R, SWARMC__TASK_STATE__TASK_STATE_PENDING,
              0, 300, NULL);
    Swarmc__Task *tasks[] = {&tf[0].t, &tf[1].t, &tf[2].t, &tf[3].t};
    Swarmc__ListTasksResponse__NodeNamesEntry
        e1 = SWARMC__LIST_TASKS_RESPONSE__NODE_NAMES_ENTRY__INIT,
        e2 = SWARMC__LIST_TASKS_RESPONSE__NODE_NAMES_ENTRY__INIT;
    e1.key = "n1nnnnnnnnnnnnnnnnnnnnnnn";
    e1.value = "host-1";
    e2.key = "n2nnnnnnnnnnnnnnnnnnnnnnn";
    e2.value = "host-2";
    Swarmc__ListTasksResponse__NodeNamesEntry *names[] = {&e1, &e2};
    Swarmc__ListTasksResponse r = SWARMC__LIST_TASKS_RESPONSE__INIT;
    r.n_tasks = 4;
    r.tasks = tasks;
    r.n_node_names = 2;
    r.node_names = names;
    struct swc_out_opts o = {0};
    o.now_wall = NOW;
    char *s = swc_out_service_ps(&r, &o);
    assert_string_equal(
        s,
        "ID             NAME        IMAGE        NODE     DESIRED STATE   CURRENT STATE          "
        "          ERROR                           PORTS\n"
        "t1newnewnewn   web.1       nginx:1.25   host-2   Running         Running 2 seconds ago\n"
        "t1oldoldoldo    \\_ web.1   nginx:1.25   host-1   Shutdown        Failed 2 minutes ago    "
        "         task: non-zero exit (1): the…\n"
        "t2aaaaaaaaaa   web.2       nginx:1.25   host-1   Running         Running 5 seconds ago\n"
        "t3pendingpen   web.3       nginx:1.25            Running         Pending less than a "
        "second "
        "ago\n");
    swc_free(s);

    char *filters[] = {"desired-state=running"};
    o.filters = filters;
    o.n_filters = 1;
    o.quiet = true;
    s = swc_out_service_ps(&r, &o);
    assert_string_equal(s, "t1newnewnewn\nt2aaaaaaaaaa\nt3pendingpen\n");
    swc_free(s);
    char *filters2[] = {"node=host-1"};
    o.filters = filters2;
    s = swc_out_service_ps(&r, &o);
    assert_string_equal(s, "t1oldoldoldo\nt2aaaaaaaaaa\n");
    swc_free(s);
    char *filters3[] = {"name=web.3"};
    o.filters = filters3;
    o.no_trunc = true;
    s = swc_out_service_ps(&r, &o);
    assert_string_equal(s, "t3pendingpendingpendingpe\n");
    swc_free(s);

    o.quiet = false;
    o.json = true;
    o.n_filters = 0;
    s = swc_out_service_ps(&r, &o);
    json_t *j = json_loads(s, 0, NULL);
    assert_int_equal(json_array_size(j), 4);
    json_t *second = json_array_get(j, 1);
    assert_string_equal(json_string_value(json_object_get(second, "Name")), "web.1");
    assert_string_equal(json_string_value(json_object_get(second, "Error")),
                        "task: non-zero exit (1): the container failed badly at start");
    assert_string_equal(json_string_value(json_object_get(second, "DesiredState")), "Shutdown");
    assert_string_equal(json_string_value(json_object_get(second, "Node")), "host-1");
    json_decref(j);
    swc_free(s);
}

static void test_node_ls(void **state)
{
    (void)state;
    Swarmc__Node n[3];
    Swarmc__NodeDescription d[3];
    Swarmc__EngineDescription eng[3];
    Swarmc__NodeStatus st[3];
    Swarmc__NodeSpec sp[3];
    Swarmc__ManagerStatus ms[3];
    const char *ids[] = {"node1node1node1node1node1", "node2node2node2node2node2",
                         "node3node3node3node3node3"};
    const char *hosts[] = {"mgr-a", "mgr-b", "worker-1"};
    Swarmc__Node *np[3];
    for (int i = 0; i < 3; i++) {
        Swarmc__Node n0 = SWARMC__NODE__INIT;
        Swarmc__NodeDescription d0 = SWARMC__NODE_DESCRIPTION__INIT;
        Swarmc__EngineDescription e0 = SWARMC__ENGINE_DESCRIPTION__INIT;
        Swarmc__NodeStatus s0 = SWARMC__NODE_STATUS__INIT;
        Swarmc__NodeSpec p0 = SWARMC__NODE_SPEC__INIT;
        Swarmc__ManagerStatus m0 = SWARMC__MANAGER_STATUS__INIT;
        n[i] = n0, d[i] = d0, eng[i] = e0, st[i] = s0, sp[i] = p0, ms[i] = m0;
        n[i].id = (char *)ids[i];
        n[i].description = &d[i];
        d[i].hostname = (char *)hosts[i];
        d[i].engine = &eng[i];
        eng[i].engine_version = "24.0.7";
        n[i].status = &st[i];
        st[i].state = SWARMC__NODE_STATE__NODE_STATE_READY;
        n[i].spec = &sp[i];
        np[i] = &n[i];
    }
    n[0].role = n[1].role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
    n[0].manager_status = &ms[0];
    ms[0].leader = true;
    n[1].manager_status = &ms[1];
    ms[1].reachability = SWARMC__REACHABILITY__REACHABILITY_UNREACHABLE;
    st[1].state = SWARMC__NODE_STATE__NODE_STATE_DOWN;
    sp[2].availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
    Swarmc__ListNodesResponse r = SWARMC__LIST_NODES_RESPONSE__INIT;
    r.n_nodes = 3;
    r.nodes = np;
    r.self_id = "node2node2node2node2node2";
    struct swc_out_opts o = {0};
    char *s = swc_out_node_ls(&r, &o);
    assert_string_equal(s, "ID               HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS   "
                           "ENGINE VERSION\n"
                           "node1node1no     mgr-a      Ready    Active         Leader           "
                           "24.0.7\n"
                           "node2node2no *   mgr-b      Down     Active         Unreachable      "
                           "24.0.7\n"
                           "node3node3no     worker-1   Ready    Drain                           "
                           "24.0.7\n");
    swc_free(s);
    char *filters[] = {"role=worker"};
    o.filters = filters;
    o.n_filters = 1;
    o.quiet = true;
    s = swc_out_node_ls(&r, &o);
    assert_string_equal(s, "node3node3no\n");
    swc_free(s);
    o.quiet = false;
    o.json = true;
    o.n_filters = 0;
    s = swc_out_node_ls(&r, &o);
    json_t *j = json_loads(s, 0, NULL);
    assert_int_equal(json_array_size(j), 3);
    assert_true(json_is_true(json_object_get(json_array_get(j, 1), "Self")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "ManagerStatus")),
                        "Leader");
    json_decref(j);
    swc_free(s);
}

static void test_filters_checked(void **state)
{
    (void)state;
    struct swc_err err;
    char *ok[] = {"name=web", "mode=global"};
    assert_int_equal(swc_out_check_filters(SWC_OUT_SERVICES, ok, 2, &err), 0);
    char *bad[] = {"color=red"};
    assert_int_equal(swc_out_check_filters(SWC_OUT_SERVICES, bad, 1, &err), SWC_EINVAL);
    assert_string_equal(err.msg,
                        "invalid filter \"color=red\": use KEY=VALUE with KEY one of id, name or "
                        "mode");
    char *bad2[] = {"desired-state"};
    assert_int_equal(swc_out_check_filters(SWC_OUT_TASKS, bad2, 1, &err), SWC_EINVAL);
    assert_string_equal(err.msg, "invalid filter \"desired-state\": use KEY=VALUE with KEY one of "
                                 "desired-state, id, name or node");
    char *bad3[] = {"desired-state=sleeping"};
    assert_int_equal(swc_out_check_filters(SWC_OUT_TASKS, bad3, 1, &err), SWC_EINVAL);
    assert_string_equal(err.msg, "invalid filter \"desired-state=sleeping\": desired-state is "
                                 "running, shutdown, accepted or complete");
    char *bad4[] = {"mode=global"};
    assert_int_equal(swc_out_check_filters(SWC_OUT_NODES, bad4, 1, &err), SWC_EINVAL);
}

static void test_inspect_json(void **state)
{
    (void)state;
    struct svc_fix f[3];
    services_fixture(f);
    Swarmc__Annotations__LabelsEntry le = SWARMC__ANNOTATIONS__LABELS_ENTRY__INIT;
    Swarmc__Annotations__LabelsEntry *lp[] = {&le};
    le.key = "tier";
    le.value = "front";
    f[0].an.n_labels = 1;
    f[0].an.labels = lp;
    char *env[] = {"A=1", "B=2"};
    f[0].ctr.n_env = 2;
    f[0].ctr.env = env;
    Swarmc__RestartPolicy rp = SWARMC__RESTART_POLICY__INIT;
    rp.condition = SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE;
    rp.delay_ns = 5 * SWC_NS_PER_SEC;
    f[0].task.restart = &rp;
    const ProtobufCMessage *m = &f[0].svc.base;
    char *s = swc_out_inspect(&m, 1);
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    json_t *svc = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(svc, "id")), "k2v8xq3m1p9z7w6t5r4e3d2c1");
    json_t *spec = json_object_get(svc, "spec");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(spec, "annotations"), "labels"), "tier")),
        "front");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(spec, "replicated"), "replicas")), 3);
    assert_null(json_object_get(spec, "global")); /* other oneof members are absent */
    json_t *task = json_object_get(spec, "task");
    json_t *ctr = json_object_get(task, "container");
    assert_int_equal(json_array_size(json_object_get(ctr, "env")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ctr, "env"), 1)), "B=2");
    assert_null(json_object_get(ctr, "hostname")); /* empty fields omitted */
    json_t *restart = json_object_get(task, "restart");
    assert_string_equal(json_string_value(json_object_get(restart, "condition")), "on-failure");
    assert_int_equal(json_integer_value(json_object_get(restart, "delay_ns")), 5000000000LL);
    /* times are readable */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(svc, "meta"), "created_at")),
        "2023-11-14T22:13:15.000Z");
    json_t *port = json_array_get(json_object_get(json_object_get(spec, "endpoint"), "ports"), 0);
    assert_string_equal(json_string_value(json_object_get(port, "protocol")), "tcp");
    assert_string_equal(json_string_value(json_object_get(port, "publish_mode")), "ingress");
    json_decref(j);
    /* pretty-printed: indented, one field per line */
    assert_non_null(strstr(s, "[\n  {\n    \"id\": \"k2v8xq3m1p9z7w6t5r4e3d2c1\""));
    swc_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_alignment), cmocka_unit_test(test_human_duration),
        cmocka_unit_test(test_service_ls),      cmocka_unit_test(test_service_ls_json),
        cmocka_unit_test(test_service_ps),      cmocka_unit_test(test_node_ls),
        cmocka_unit_test(test_filters_checked), cmocka_unit_test(test_inspect_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
