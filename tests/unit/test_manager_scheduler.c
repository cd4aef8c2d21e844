/* Unit tests for the scheduler's pure core and placement constraints: every
 * filter and its explanation text, spreading, placement preferences, group
 * placement, resource exhaustion, max replicas per node, host ports, failure
 * avoidance, preassigned nodes, and constraint parsing and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "manager/constraint.h"
#include "manager/scheduler.h"

#define GB  (1024LL * 1024 * 1024)
#define CPU 1000000000LL
#define NOW (1000LL * 1000000000LL)

static struct swc_sched *S;

static int setup(void **state)
{
    (void)state;
    return swc_sched_create(&S);
}

static int teardown(void **state)
{
    (void)state;
    swc_sched_destroy(S);
    S = NULL;
    return 0;
}

static struct swc_sched_node *add_node(const char *id, const char *zone)
{
    struct swc_kv labels[1] = {{"zone", zone}};
    struct swc_sched_node_info info = {
        .id = id,
        .hostname = id,
        .os = "linux",
        .arch = "x86_64",
        .labels = labels,
        .n_labels = zone ? 1 : 0,
        .ready = true,
        .availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE,
        .nano_cpus = 4 * CPU,
        .memory_bytes = 8 * GB,
    };
    struct swc_sched_node *n = NULL;
    assert_int_equal(swc_sched_node_add(S, &info, &n), 0);
    return n;
}

static struct swc_sched_task mk_task(const char *id, const char *svc)
{
    struct swc_sched_task t = {.id = id, .service_id = svc, .spec_version = 1};
    return t;
}

/* Place one task and return its node id (or NULL, with *why set). */
static const char *place1(struct swc_sched_task *t, char *why, size_t whylen)
{
    struct swc_sched_result r;
    assert_int_equal(swc_sched_place(S, t, 1, NOW, &r), 0);
    if (why != NULL)
        snprintf(why, whylen, "%s", r.explain ? r.explain : "");
    swc_sched_results_clear(&r, 1);
    return r.node_id;
}

static void test_constraint_parse(void **state)
{
    (void)state;
    struct swc_err err;
    struct swc_constraint c;
    assert_int_equal(swc_constraint_parse("node.labels.zone == a", &c, &err), 0);
    assert_int_equal(c.key, SWC_CONSTRAINT_NODE_LABEL);
    assert_string_equal(c.label, "zone");
    assert_string_equal(c.value, "a");
    assert_false(c.negate);
    swc_constraint_clear(&c);
    assert_int_equal(swc_constraint_parse("node.hostname!=\"web 1\"", &c, &err), 0);
    assert_string_equal(c.value, "web 1");
    swc_constraint_clear(&c);
    assert_int_equal(swc_constraint_parse("node.hostname==a==b", &c, &err), SWC_EINVAL);
    assert_non_null(strstr(err.msg, "invalid value"));
    assert_int_equal(swc_constraint_parse("node.hostname!='web1'", &c, &err), 0);
    assert_true(c.negate);
    assert_string_equal(c.value, "web1");
    swc_constraint_clear(&c);
    assert_int_equal(swc_constraint_parse("engine.labels.k==v", &c, &err), 0);
    assert_int_equal(c.key, SWC_CONSTRAINT_ENGINE_LABEL);
    swc_constraint_clear(&c);
    assert_int_equal(swc_constraint_parse("node.foo==1", &c, &err), SWC_EINVAL);
    assert_string_equal(err.msg, "constraint 'node.foo==1': unknown key node.foo; use node.id, "
                                 "node.hostname, node.role, node.platform.os, node.platform.arch, "
                                 "node.labels.<key> or engine.labels.<key>");
    assert_int_equal(swc_constraint_parse("node.id", &c, &err), SWC_EINVAL);
    assert_non_null(strstr(err.msg, "no operator"));
    assert_int_equal(swc_constraint_parse("node.id==", &c, &err), SWC_EINVAL);
    assert_non_null(strstr(err.msg, "missing value"));
    assert_int_equal(swc_constraint_parse("==x", &c, &err), SWC_EINVAL);
    assert_int_equal(swc_constraint_parse("node.role==boss", &c, &err), SWC_EINVAL);
    assert_non_null(strstr(err.msg, "manager or worker"));
    assert_int_equal(swc_constraint_parse("node.labels.==x", &c, &err), SWC_EINVAL);
}

static void test_constraint_match(void **state)
{
    (void)state;
    struct swc_kv labels[] = {{"zone", "A"}};
    struct swc_kv elabels[] = {{"ssd", "true"}};
    struct swc_node_attrs n = {.id = "n1",
                               .hostname = "web1",
                               .role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER,
                               .os = "linux",
                               .arch = "amd64",
                               .labels = labels,
                               .n_labels = 1,
                               .engine_labels = elabels,
                               .n_engine_labels = 1};
    const char *yes[] = {"node.id==n1",
                         "node.hostname==WEB1",
                         "node.role==manager",
                         "node.platform.os==linux",
                         "node.platform.arch==x86_64",
                         "node.labels.zone==a",
                         "engine.labels.ssd==true",
                         "node.labels.rack!=r1",
                         "node.hostname != web2"};
    const char *no[] = {
        "node.id==n2",          "node.role==worker",        "node.labels.zone!=a",
        "node.labels.rack==r1", "engine.labels.ssd==false", "node.platform.arch==aarch64"};
    struct swc_err err;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        struct swc_constraint c;
        assert_int_equal(swc_constraint_parse(yes[i], &c, &err), 0);
        assert_true(swc_constraint_match(&c, &n));
        swc_constraint_clear(&c);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        struct swc_constraint c;
        assert_int_equal(swc_constraint_parse(no[i], &c, &err), 0);
        assert_false(swc_constraint_match(&c, &n));
        swc_constraint_clear(&c);
    }
    struct swc_constraint_set set;
    assert_int_equal(swc_constraint_set_parse(yes, 3, &set, &err), 0);
    assert_true(swc_constraint_set_match(&set, &n));
    swc_constraint_set_clear(&set);
    const char *mixed[] = {"node.id==n1", "node.bad==x"};
    assert_int_equal(swc_constraint_set_parse(mixed, 2, &set, &err), SWC_EINVAL);
    assert_null(set.items);
}

static void test_spread_fewest_tasks(void **state)
{
    (void)state;
    struct swc_sched_node *a = add_node("a", NULL), *b = add_node("b", NULL);
    add_node("c", NULL);
    /* a already runs 2 tasks of web, b runs 1 task of another service */
    swc_sched_node_account(a, "web", 0, 0, NULL, 0);
    swc_sched_node_account(a, "web", 0, 0, NULL, 0);
    swc_sched_node_account(b, "db", 0, 0, NULL, 0);
    struct swc_sched_task t = mk_task("t1", "web");
    /* c wins: no web tasks and fewest tasks overall */
    assert_string_equal(place1(&t, NULL, 0), "c");
    t.id = "t2";
    assert_string_equal(place1(&t, NULL, 0), "b");
    assert_int_equal(swc_sched_node_service_tasks(b, "web"), 1);
    assert_int_equal(b->ntasks, 2);
}

static void test_group_1000_on_10(void **state)
{
    (void)state;
    char ids[10][8];
    for (int i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof ids[i], "n%d", i);
        add_node(ids[i], NULL);
    }
    struct swc_sched_task *ts = swc_calloc(1000, sizeof(*ts));
    struct swc_sched_result *rs = swc_calloc(1000, sizeof(*rs));
    for (int i = 0; i < 1000; i++)
        ts[i] = mk_task("t", "web");
    assert_int_equal(swc_sched_place(S, ts, 1000, NOW, rs), 0);
    for (int i = 0; i < 1000; i++)
        assert_non_null(rs[i].node_id);
    for (int i = 0; i < 10; i++) {
        struct swc_sched_node *n = swc_sched_node_get(S, ids[i]);
        assert_int_equal(swc_sched_node_service_tasks(n, "web"), 100);
        assert_int_equal(n->ntasks, 100);
    }
    swc_sched_results_clear(rs, 1000);
    swc_free(ts);
    swc_free(rs);
}

static void test_filter_ready_active(void **state)
{
    (void)state;
    struct swc_sched_node *a = add_node("a", NULL), *b = add_node("b", NULL),
                          *c = add_node("c", NULL);
    a->ready = false;
    b->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
    c->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE;
    struct swc_sched_task t = mk_task("t1", "web");
    char why[256];
    assert_null(place1(&t, why, sizeof why));
    assert_string_equal(why, "no suitable node (node not ready on 1 node; node paused or "
                             "drained on 2 nodes)");
    c->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
    assert_string_equal(place1(&t, NULL, 0), "c");
}

static void test_filter_resources(void **state)
{
    (void)state;
    add_node("a", NULL);
    add_node("b", NULL);
    struct swc_sched_node *c = add_node("c", NULL);
    c->total_nano_cpus = CPU / 2;
    struct swc_sched_task t = mk_task("t1", "web");
    t.memory_bytes = 10 * GB;
    t.nano_cpus = CPU;
    char why[256];
    assert_null(place1(&t, why, sizeof why));
    assert_string_equal(why, "no suitable node (insufficient cpu on 1 node; insufficient memory "
                             "on 2 nodes)");
    /* exhaustion: 3 tasks of 3 GB fit on a and b (2 each would need 6 GB) */
    struct swc_sched_task ts[6];
    struct swc_sched_result rs[6];
    for (int i = 0; i < 6; i++) {
        ts[i] = mk_task("g", "mem");
        ts[i].memory_bytes = 3 * GB;
    }
    assert_int_equal(swc_sched_place(S, ts, 6, NOW, rs), 0);
    int placed = 0;
    for (int i = 0; i < 6; i++)
        placed += rs[i].node_id != NULL;
    assert_int_equal(placed, 6); /* a:2, b:2, c:2 (c has memory, no cpu ask) */
    assert_int_equal(swc_sched_node_get(S, "a")->reserved_memory, 6 * GB);
    swc_sched_results_clear(rs, 6);
    assert_int_equal(swc_sched_place(S, ts, 1, NOW, rs), 0);
    assert_null(rs[0].node_id);
    assert_string_equal(rs[0].explain, "no suitable node (insufficient memory on 3 nodes)");
    swc_sched_results_clear(rs, 1);
}

static void test_filter_constraints_platform(void **state)
{
    (void)state;
    add_node("a", "z1");
    struct swc_sched_node *b = add_node("b", "z2");
    struct swc_sched_node *c = add_node("c", "z2");
    char *linux_os = (char *)c->attrs.os;
    c->attrs.os = "windows";
    struct swc_err err;
    struct swc_constraint_set set;
    const char *exprs[] = {"node.labels.zone==z2"};
    assert_int_equal(swc_constraint_set_parse(exprs, 1, &set, &err), 0);
    struct swc_sched_platform plat = {"linux", "amd64"};
    struct swc_sched_task t = mk_task("t1", "web");
    t.constraints = &set;
    t.platforms = &plat;
    t.n_platforms = 1;
    assert_string_equal(place1(&t, NULL, 0), "b");
    b->ready = false;
    char why[256];
    assert_null(place1(&t, why, sizeof why));
    assert_string_equal(why, "no suitable node (node not ready on 1 node; scheduling constraints "
                             "not satisfied on 1 node; platform not supported on 1 node)");
    c->attrs.os = linux_os;
    swc_constraint_set_clear(&set);
}

static void test_filter_host_ports(void **state)
{
    (void)state;
    struct swc_sched_node *a = add_node("a", NULL);
    add_node("b", NULL);
    struct swc_sched_port p80 = {80, SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_TCP};
    swc_sched_node_account(a, "other", 0, 0, &p80, 1);
    struct swc_sched_task ts[3];
    struct swc_sched_result rs[3];
    for (int i = 0; i < 3; i++) {
        ts[i] = mk_task("p", "web");
        ts[i].host_ports = &p80;
        ts[i].n_host_ports = 1;
    }
    assert_int_equal(swc_sched_place(S, ts, 3, NOW, rs), 0);
    assert_string_equal(rs[0].node_id, "b");
    assert_null(rs[1].node_id);
    assert_null(rs[2].node_id);
    assert_string_equal(rs[1].explain, "no suitable node (host-mode port already in use on 2 "
                                       "nodes)");
    swc_sched_results_clear(rs, 3);
    /* same port, other protocol: fine */
    struct swc_sched_port u80 = {80, SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_UDP};
    ts[0].host_ports = &u80;
    assert_non_null(place1(&ts[0], NULL, 0));
}

static void test_max_replicas(void **state)
{
    (void)state;
    add_node("a", NULL);
    add_node("b", NULL);
    struct swc_sched_task ts[5];
    struct swc_sched_result rs[5];
    for (int i = 0; i < 5; i++) {
        ts[i] = mk_task("m", "web");
        ts[i].max_replicas = 2;
    }
    assert_int_equal(swc_sched_place(S, ts, 5, NOW, rs), 0);
    int placed = 0;
    for (int i = 0; i < 5; i++)
        placed += rs[i].node_id != NULL;
    assert_int_equal(placed, 4);
    assert_string_equal(rs[4].explain, "no suitable node (max replicas per node reached on 2 "
                                       "nodes)");
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "a"), "web"), 2);
    swc_sched_results_clear(rs, 5);
    /* a later pass filters the full nodes right away */
    assert_int_equal(swc_sched_place(S, ts, 1, NOW, rs), 0);
    assert_string_equal(rs[0].explain, "no suitable node (max replicas per node reached on 2 "
                                       "nodes)");
    swc_sched_results_clear(rs, 1);
}

static void test_failure_avoidance(void **state)
{
    (void)state;
    struct swc_sched_node *a = add_node("a", NULL);
    struct swc_sched_node *b = add_node("b", NULL);
    b->ntasks = 50; /* a would win on load */
    for (int i = 0; i < 5; i++)
        swc_sched_node_note_failure(a, "web", NOW - (60 + i) * 1000000000LL);
    struct swc_sched_task t = mk_task("t", "web");
    assert_string_equal(place1(&t, NULL, 0), "b");
    /* another service is not affected */
    struct swc_sched_task o = mk_task("o", "db");
    assert_string_equal(place1(&o, NULL, 0), "a");
    /* failures older than 5 minutes do not count */
    assert_int_equal(
        swc_sched_place(S, &t, 1, NOW + 400 * 1000000000LL, &(struct swc_sched_result){0}), 0);
    /* a's web count is 0 after note_failure; the newest placement went to a */
    assert_int_equal(swc_sched_node_service_tasks(a, "web"), 1);
    /* only 4 recent failures: not avoided */
    struct swc_sched_node *c = add_node("c", NULL);
    for (int i = 0; i < 4; i++)
        swc_sched_node_note_failure(c, "api", NOW - 1000000000LL);
    struct swc_sched_task api = mk_task("x", "api");
    a->ntasks = b->ntasks = 100;
    assert_string_equal(place1(&api, NULL, 0), "c");
}

static void test_failure_avoidance_last_resort(void **state)
{
    (void)state;
    struct swc_sched_node *a = add_node("a", NULL);
    for (int i = 0; i < 5; i++)
        swc_sched_node_note_failure(a, "web", NOW - 1000000000LL);
    struct swc_sched_task t = mk_task("t", "web");
    assert_string_equal(place1(&t, NULL, 0), "a");
}

static void test_preferences(void **state)
{
    (void)state;
    /* zone z1 has 1 node, z2 has 3: spread over zones gives z1 half */
    add_node("a", "z1");
    add_node("b", "z2");
    add_node("c", "z2");
    add_node("d", "z2");
    add_node("e", NULL); /* no zone label: its own group */
    const char *spread[] = {"node.labels.zone"};
    struct swc_sched_task ts[9];
    struct swc_sched_result rs[9];
    for (int i = 0; i < 9; i++) {
        ts[i] = mk_task("s", "web");
        ts[i].spread = spread;
        ts[i].n_spread = 1;
    }
    assert_int_equal(swc_sched_place(S, ts, 9, NOW, rs), 0);
    swc_sched_results_clear(rs, 9);
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "a"), "web"), 3);
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "e"), "web"), 3);
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "b"), "web"), 1);
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "c"), "web"), 1);
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "d"), "web"), 1);
}

static struct swc_sched_node *add_node2(const char *id, const char *dc, const char *rack)
{
    struct swc_kv labels[2] = {{"dc", dc}, {"rack", rack}};
    struct swc_sched_node_info info = {
        .id = id,
        .hostname = id,
        .os = "linux",
        .arch = "x86_64",
        .labels = labels,
        .n_labels = 2,
        .ready = true,
        .nano_cpus = CPU,
        .memory_bytes = GB,
    };
    struct swc_sched_node *n;
    assert_int_equal(swc_sched_node_add(S, &info, &n), 0);
    return n;
}

static void test_nested_preferences(void **state)
{
    (void)state;
    /* dc1: racks r1 (2 nodes), r2 (1 node); dc2: rack r3 (1 node) */
    add_node2("a", "dc1", "r1");
    add_node2("b", "dc1", "r1");
    add_node2("c", "dc1", "r2");
    add_node2("d", "dc2", "r3");
    const char *spread[] = {"node.labels.dc", "node.labels.rack"};
    struct swc_sched_task ts[8];
    struct swc_sched_result rs[8];
    for (int i = 0; i < 8; i++) {
        ts[i] = mk_task("s", "web");
        ts[i].spread = spread;
        ts[i].n_spread = 2;
    }
    assert_int_equal(swc_sched_place(S, ts, 8, NOW, rs), 0);
    swc_sched_results_clear(rs, 8);
    /* dc1 gets 4 (r1: 2 -> a 1, b 1; r2: 2 -> c), dc2 gets 4 */
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "d"), "web"), 4);
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "c"), "web"), 2);
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "a"), "web"), 1);
    assert_int_equal(swc_sched_node_service_tasks(swc_sched_node_get(S, "b"), "web"), 1);
}

static void test_groups_and_preassigned(void **state)
{
    (void)state;
    add_node("a", NULL);
    struct swc_sched_node *b = add_node("b", NULL);
    b->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
    struct swc_sched_task ts[4] = {mk_task("1", "web"), mk_task("2", "db"), mk_task("3", "web"),
                                   mk_task("4", "glob")};
    ts[2].spec_version = 2;
    ts[3].node_id = "b";
    struct swc_sched_result rs[4];
    assert_int_equal(swc_sched_place(S, ts, 4, NOW, rs), 0);
    assert_string_equal(rs[0].task_id, "1");
    assert_string_equal(rs[0].node_id, "a");
    assert_string_equal(rs[1].node_id, "a");
    assert_string_equal(rs[2].node_id, "a");
    assert_null(rs[3].node_id);
    assert_string_equal(rs[3].explain, "no suitable node (node paused or drained on 1 node)");
    swc_sched_results_clear(rs, 4);
    ts[3].node_id = "a";
    assert_string_equal(place1(&ts[3], NULL, 0), "a");
    ts[3].node_id = "zzz";
    char why[128];
    assert_null(place1(&ts[3], why, sizeof why));
    assert_non_null(strstr(why, "not in the cluster"));
}

static void test_no_nodes_and_pb(void **state)
{
    (void)state;
    struct swc_sched_task t = mk_task("t", "web");
    char why[128];
    assert_null(place1(&t, why, sizeof why));
    assert_string_equal(why, "no suitable node (no nodes in the cluster)");
    /* a protobuf node and task */
    Swarmc__Node node = SWARMC__NODE__INIT;
    Swarmc__NodeSpec spec = SWARMC__NODE_SPEC__INIT;
    Swarmc__NodeStatus st = SWARMC__NODE_STATUS__INIT;
    Swarmc__NodeDescription desc = SWARMC__NODE_DESCRIPTION__INIT;
    Swarmc__Resources res = SWARMC__RESOURCES__INIT;
    Swarmc__Platform plat = SWARMC__PLATFORM__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__Annotations__LabelsEntry le = SWARMC__ANNOTATIONS__LABELS_ENTRY__INIT;
    Swarmc__Annotations__LabelsEntry *lep = &le;
    le.key = "zone";
    le.value = "z9";
    ann.labels = &lep;
    ann.n_labels = 1;
    spec.annotations = &ann;
    node.id = "pbnode";
    node.spec = &spec;
    node.status = &st;
    node.description = &desc;
    desc.hostname = "h";
    desc.platform = &plat;
    plat.os = "linux";
    plat.arch = "x86_64";
    desc.resources = &res;
    res.nano_cpus = 2 * CPU;
    res.memory_bytes = GB;
    st.state = SWARMC__NODE_STATE__NODE_STATE_READY;
    assert_int_equal(swc_sched_node_add_pb(S, &node, NULL), 0);
    assert_int_equal(swc_sched_node_add_pb(S, &node, NULL), SWC_EEXIST);

    Swarmc__Task pt = SWARMC__TASK__INIT;
    Swarmc__TaskSpec ts = SWARMC__TASK_SPEC__INIT;
    Swarmc__Placement pl = SWARMC__PLACEMENT__INIT;
    Swarmc__Endpoint ep = SWARMC__ENDPOINT__INIT;
    Swarmc__PortConfig pc = SWARMC__PORT_CONFIG__INIT;
    Swarmc__PortConfig *pcp = &pc;
    Swarmc__PlacementPreference pref = SWARMC__PLACEMENT_PREFERENCE__INIT;
    Swarmc__PlacementPreference *prefp = &pref;
    char *cons[] = {"node.labels.zone==z9"};
    pref.spread = "node.labels.zone";
    pl.constraints = cons;
    pl.n_constraints = 1;
    pl.preferences = &prefp;
    pl.n_preferences = 1;
    pl.max_replicas = 3;
    ts.placement = &pl;
    pc.publish_mode = SWARMC__PUBLISH_MODE__PUBLISH_MODE_HOST;
    pc.published_port = 8080;
    pc.target_port = 80;
    ep.ports = &pcp;
    ep.n_ports = 1;
    pt.id = "pt";
    pt.service_id = "svc";
    pt.spec = &ts;
    pt.endpoint = &ep;
    struct swc_sched_task st2;
    struct swc_constraint_set set;
    void *arena;
    struct swc_err err;
    assert_int_equal(swc_sched_task_from_pb(&pt, &st2, &set, &arena, &err), 0);
    assert_int_equal(st2.n_host_ports, 1);
    assert_int_equal(st2.host_ports[0].port, 8080);
    assert_int_equal(st2.n_spread, 1);
    assert_int_equal(st2.max_replicas, 3);
    assert_string_equal(st2.node_id, "");
    assert_string_equal(place1(&st2, NULL, 0), "pbnode");
    assert_null(place1(&st2, why, sizeof why));
    assert_string_equal(why, "no suitable node (host-mode port already in use on 1 node)");
    swc_constraint_set_clear(&set);
    swc_free(arena);
    /* a global task is bound to its node */
    pt.node_id = "elsewhere";
    assert_int_equal(swc_sched_task_from_pb(&pt, &st2, &set, &arena, &err), 0);
    assert_null(place1(&st2, why, sizeof why));
    assert_string_equal(why, "no suitable node (assigned node not in the cluster)");
    swc_constraint_set_clear(&set);
    swc_free(arena);
    pt.node_id = "";
    cons[0] = "node.nope==1";
    assert_int_equal(swc_sched_task_from_pb(&pt, &st2, &set, &arena, &err), SWC_EINVAL);
    assert_null(arena);
}

/* Random bytes through the parser: never a crash, an accept or a clean error
 * (ASan/UBSan watch the reads). */
static void test_constraint_parse_random(void **state)
{
    (void)state;
    static const char alpha[] = "node.labels.engine.id.hostname.role.platform.os.arch=!= '\"xz";
    uint32_t seed = 12345;
    char buf[48];
    struct swc_err err;
    for (int i = 0; i < 20000; i++) {
        size_t len = (seed = seed * 1103515245u + 12345u) % (sizeof buf);
        for (size_t k = 0; k < len; k++) {
            seed = seed * 1103515245u + 12345u;
            buf[k] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        buf[len] = '\0';
        struct swc_constraint c;
        int rc = swc_constraint_parse(buf, &c, &err);
        assert_true(rc == 0 || rc == SWC_EINVAL);
        if (rc == 0) {
            assert_non_null(c.value);
            swc_constraint_clear(&c);
        } else {
            assert_non_null(strstr(err.msg, "constraint"));
        }
    }
}

/* Every allocation failure during placement gives SWC_ENOMEM and leaks
 * nothing (ASan checks the leaks). */
static void test_enomem_sweep(void **state)
{
    (void)state;
    const char *spread[] = {"node.labels.zone"};
    struct swc_sched_port port = {9000, 0};
    struct swc_sched_task ts[30];
    struct swc_sched_result rs[30];
    for (int i = 0; i < 30; i++) {
        ts[i] = mk_task("t", i % 3 == 0 ? "web" : i % 3 == 1 ? "db" : "api");
        ts[i].spread = spread;
        ts[i].n_spread = 1;
        if (i % 3 == 2) {
            ts[i].host_ports = &port;
            ts[i].n_host_ports = 1;
        }
    }
    for (long k = 1;; k++) {
        struct swc_sched *s;
        assert_int_equal(swc_sched_create(&s), 0);
        S = s;
        char id[8];
        int rc = 0;
        swc_alloc_fail_after(k);
        for (int i = 0; i < 12 && rc == 0; i++) {
            snprintf(id, sizeof id, "n%d", i);
            struct swc_kv labels[1] = {{"zone", i % 2 ? "z1" : "z2"}};
            struct swc_sched_node_info info = {.id = id,
                                               .hostname = id,
                                               .os = "linux",
                                               .arch = "x86_64",
                                               .labels = labels,
                                               .n_labels = 1,
                                               .ready = true,
                                               .nano_cpus = CPU,
                                               .memory_bytes = GB};
            rc = swc_sched_node_add(s, &info, NULL);
        }
        if (rc == 0)
            rc = swc_sched_place(s, ts, 30, NOW, rs);
        else
            memset(rs, 0, sizeof rs);
        swc_alloc_fail_after(0);
        swc_sched_results_clear(rs, 30);
        swc_sched_destroy(s);
        S = NULL;
        if (rc == 0)
            break;
        assert_int_equal(rc, SWC_ENOMEM);
        assert_true(k < 10000);
    }
}

/* Releasing a task undoes its accounting: the memory it held is placed
 * again on its node; a node with host ports in use, or a service with no
 * task there, is refused (the caller then rebuilds its view). */
static void test_release_frees_reservations(void **state)
{
    (void)state;
    struct swc_sched_node *a = add_node("a", NULL);
    struct swc_sched_task ts[3];
    struct swc_sched_result rs[3];
    for (int i = 0; i < 3; i++) {
        ts[i] = mk_task("g", "mem");
        ts[i].memory_bytes = 3 * GB;
    }
    assert_int_equal(swc_sched_place(S, ts, 3, NOW, rs), 0);
    assert_non_null(rs[0].node_id);
    assert_non_null(rs[1].node_id);
    assert_null(rs[2].node_id); /* 8 GB: two of 3 GB fit */
    swc_sched_results_clear(rs, 3);
    assert_int_equal(swc_sched_node_release(a, "other", 0, 3 * GB), SWC_ENOENT);
    assert_int_equal(swc_sched_node_release(a, "mem", 0, 3 * GB), 0);
    assert_int_equal(a->reserved_memory, 3 * GB);
    assert_int_equal(a->ntasks, 1);
    assert_int_equal(swc_sched_node_service_tasks(a, "mem"), 1);
    assert_int_equal(swc_sched_place(S, ts, 1, NOW, rs), 0);
    assert_non_null(rs[0].node_id); /* fits again */
    swc_sched_results_clear(rs, 1);
    struct swc_sched_port port = {8080, SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_TCP};
    assert_int_equal(swc_sched_node_account(a, "web", 0, 0, &port, 1), 0);
    assert_int_equal(swc_sched_node_release(a, "web", 0, 0), SWC_ENOTSUP);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constraint_parse),
        cmocka_unit_test(test_constraint_match),
        cmocka_unit_test(test_constraint_parse_random),
        T(test_spread_fewest_tasks),
        T(test_group_1000_on_10),
        T(test_filter_ready_active),
        T(test_filter_resources),
        T(test_release_frees_reservations),
        T(test_filter_constraints_platform),
        T(test_filter_host_ports),
        T(test_max_replicas),
        T(test_failure_avoidance),
        T(test_failure_avoidance_last_resort),
        T(test_preferences),
        T(test_nested_preferences),
        T(test_groups_and_preassigned),
        T(test_no_nodes_and_pb),
        cmocka_unit_test(test_enomem_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
