/* The task-table decoder of cmd/swarmc/wire.c against protobuf-c: a reply
 * decoded either way prints the same `service ps` table, JSON and -q
 * output; tasks with one image share a
 * spec; bytes cut anywhere decode with it exactly when they decode with
 * protobuf-c; a wrong wire type or another message kind is refused (NULL,
 * so that the client falls back to protobuf-c). The same for the service
 * table decoder and `service ls`. Also swc_table_write
 * writes what swc_table_render returns.
 *
 * cmd/swarmc/ is built only into the swarmc executable, so this test
 * includes the two source files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cmd/swarmc/output.c"
#include "../../cmd/swarmc/wire.c"

#define NOW (1700000000LL * SWC_NS_PER_SEC)

/* An arena for the decoder: every block on a list, freed at once. */
struct blocks {
    void **p;
    size_t n, cap;
};

static void *blocks_alloc(void *data, size_t size)
{
    struct blocks *b = data;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->p = realloc(b->p, b->cap * sizeof *b->p);
        assert_non_null(b->p);
    }
    return b->p[b->n++] = malloc(size ? size : 1);
}

static void blocks_free_one(void *data, void *p)
{
    (void)data;
    (void)p;
}

static void blocks_destroy(struct blocks *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->p[i]);
    }
    free(b->p);
    memset(b, 0, sizeof *b);
}

struct fix {
    Swarmc__Task t;
    Swarmc__Meta meta;
    Swarmc__TaskSpec spec;
    Swarmc__ContainerSpec ctr;
    Swarmc__TaskStatus st;
};

static void fix_init(struct fix *f, const char *id, uint64_t slot, const char *node,
                     const char *image, int state, int64_t ts, const char *err)
{
    swarmc__task__init(&f->t);
    swarmc__meta__init(&f->meta);
    swarmc__task_spec__init(&f->spec);
    swarmc__container_spec__init(&f->ctr);
    swarmc__task_status__init(&f->st);
    f->t.id = (char *)id;
    f->t.meta = &f->meta;
    f->meta.created_at = ts;
    f->meta.updated_at = ts + 1;
    f->t.spec = &f->spec;
    f->spec.container = &f->ctr;
    f->ctr.image = (char *)image;
    f->t.service_id = "svcsvcsvcsvcsvcsvcsvcsvcs";
    f->t.service_name = "web";
    f->t.slot = slot;
    f->t.node_id = (char *)node;
    f->t.desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    f->t.status = &f->st;
    f->st.state = (Swarmc__TaskState)state;
    f->st.timestamp = ts;
    f->st.message = "started";
    f->st.container_id = "c0ffee";
    f->st.err = (char *)(err ? err : "");
}

static void put_varint(uint8_t **p, uint64_t v)
{
    while (v >= 0x80) {
        *(*p)++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *(*p)++ = (uint8_t)v;
}

/* The reply as the manager sends it: each task as field 2, then the node
 * names. Caller frees. */
static uint8_t *make_reply(size_t *len, Swarmc__PortConfig *port)
{
    enum { R = SWARMC__TASK_STATE__TASK_STATE_RUNNING, F = SWARMC__TASK_STATE__TASK_STATE_FAILED };
    static struct fix f[5];
    fix_init(&f[0], "t2aaaaaaaaaaaaaaaaaaaaaaa", 2, "n1nnnnnnnnnnnnnnnnnnnnnnn", "nginx:1.25", R,
             NOW - 5 * SWC_NS_PER_SEC, NULL);
    fix_init(&f[1], "t1oldoldoldoldoldoldoldol", 1, "n1nnnnnnnnnnnnnnnnnnnnnnn", "nginx:1.24", F,
             NOW - 150 * SWC_NS_PER_SEC, "task: non-zero exit (1): the container failed badly");
    f[1].t.desired_state = SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN;
    fix_init(&f[2], "t1newnewnewnewnewnewnewne", 1, "n2nnnnnnnnnnnnnnnnnnnnnnn", "nginx:1.25", R,
             NOW - 2 * SWC_NS_PER_SEC, NULL);
    fix_init(&f[3], "t3pendingpendingpendingpe", 3, "", "nginx:1.25",
             SWARMC__TASK_STATE__TASK_STATE_PENDING, NOW, NULL);
    fix_init(&f[4], "t4globalglobalglobalgloba", 0, "n2nnnnnnnnnnnnnnnnnnnnnnn", "nginx:1.25", R,
             NOW - 7200 * SWC_NS_PER_SEC, NULL);
    Swarmc__PortStatus ps = SWARMC__PORT_STATUS__INIT;
    if (port != NULL) {
        ps.n_ports = 1;
        ps.ports = &port;
        f[2].st.port_status = &ps;
    }
    uint8_t *out = malloc(64 * 1024), *p = out;
    assert_non_null(out);
    for (size_t i = 0; i < 5; i++) {
        f[i].meta.version = 40 + i;
        size_t n = swarmc__task__get_packed_size(&f[i].t);
        *p++ = 2 << 3 | 2;
        put_varint(&p, n);
        p += swarmc__task__pack(&f[i].t, p);
    }
    Swarmc__ListTasksResponse r = SWARMC__LIST_TASKS_RESPONSE__INIT;
    Swarmc__ListTasksResponse__NodeNamesEntry
        e1 = SWARMC__LIST_TASKS_RESPONSE__NODE_NAMES_ENTRY__INIT,
        e2 = SWARMC__LIST_TASKS_RESPONSE__NODE_NAMES_ENTRY__INIT, *names[] = {&e1, &e2};
    Swarmc__Error e = SWARMC__ERROR__INIT;
    e1.key = "n1nnnnnnnnnnnnnnnnnnnnnnn";
    e1.value = "host-1";
    e2.key = "n2nnnnnnnnnnnnnnnnnnnnnnn";
    e2.value = "host-2";
    r.error = &e;
    r.n_node_names = 2;
    r.node_names = names;
    p += swarmc__list_tasks_response__pack(&r, p);
    *len = (size_t)(p - out);
    return out;
}

static Swarmc__ListTasksResponse *fast(struct blocks *b, const uint8_t *data, size_t len)
{
    ProtobufCAllocator a = {blocks_alloc, blocks_free_one, b};
    return (Swarmc__ListTasksResponse *)swc_wire_unpack_task_table(
        &swarmc__list_tasks_response__descriptor, &a, len, data);
}

static void same_output(const Swarmc__ListTasksResponse *x, const Swarmc__ListTasksResponse *y,
                        struct swc_out_opts *o)
{
    char *a = swc_out_service_ps(x, o), *b = swc_out_service_ps(y, o);
    assert_string_equal(a, b);
    swc_free(a);
    swc_free(b);
}

static void test_same_as_protobuf_c(void **state)
{
    (void)state;
    Swarmc__PortConfig pc = SWARMC__PORT_CONFIG__INIT;
    pc.published_port = 8080;
    pc.target_port = 80;
    for (int with_port = 0; with_port < 2; with_port++) {
        size_t len;
        uint8_t *data = make_reply(&len, with_port ? &pc : NULL);
        struct blocks b = {0};
        Swarmc__ListTasksResponse *x = fast(&b, data, len);
        Swarmc__ListTasksResponse *y =
            swarmc__list_tasks_response__unpack(&swc_pb_allocator, len, data);
        assert_non_null(x);
        assert_non_null(y);
        assert_int_equal(x->n_tasks, 5);
        assert_int_equal(x->n_node_names, 2);
        assert_non_null(x->error);
        struct swc_out_opts o = {0};
        o.now_wall = NOW;
        char *s = swc_out_service_ps(x, &o);
        assert_non_null(strstr(s, "host-2"));
        assert_non_null(strstr(s, "nginx:1.24"));
        assert_true(with_port == (strstr(s, "*:8080->80/tcp") != NULL));
        swc_free(s);
        same_output(x, y, &o);
        o.no_trunc = true;
        same_output(x, y, &o);
        o.json = true;
        same_output(x, y, &o);
        o.json = false;
        o.quiet = true;
        same_output(x, y, &o);
        for (size_t i = 0; i < 5; i++) {
            assert_int_equal(x->tasks[i]->meta->created_at, y->tasks[i]->meta->created_at);
            assert_int_equal(x->tasks[i]->meta->version, 40 + i);
            assert_int_equal(y->tasks[i]->meta->version, 40 + i);
        }
        /* one spec for the tasks of one image, another for another image */
        assert_ptr_equal(x->tasks[2]->spec, x->tasks[3]->spec);
        assert_ptr_equal(x->tasks[3]->spec, x->tasks[4]->spec);
        assert_ptr_not_equal(x->tasks[0]->spec, x->tasks[1]->spec);
        assert_string_equal(x->tasks[1]->spec->container->image, "nginx:1.24");
        swarmc__list_tasks_response__free_unpacked(y, &swc_pb_allocator);
        blocks_destroy(&b);
        free(data);
    }
}

static void test_cut_bytes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = make_reply(&len, NULL);
    size_t refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        struct blocks b = {0};
        uint8_t *copy = malloc(cut + 1); /* exactly cut bytes: ASan sees an overread */
        memcpy(copy, data, cut);
        Swarmc__ListTasksResponse *x = fast(&b, copy, cut);
        Swarmc__ListTasksResponse *y =
            swarmc__list_tasks_response__unpack(&swc_pb_allocator, cut, copy);
        assert_true((x == NULL) == (y == NULL));
        refused += x == NULL;
        if (y != NULL) {
            assert_int_equal(x->n_tasks, y->n_tasks);
            swarmc__list_tasks_response__free_unpacked(y, &swc_pb_allocator);
        }
        blocks_destroy(&b);
        free(copy);
    }
    assert_true(refused > len / 2);
    free(data);
}

static void test_refuses_the_unexpected(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = make_reply(&len, NULL);
    struct blocks b = {0};
    ProtobufCAllocator a = {blocks_alloc, blocks_free_one, &b};
    /* another kind of reply */
    assert_null(
        swc_wire_unpack_task_table(&swarmc__list_services_response__descriptor, &a, len, data));
    assert_non_null(fast(&b, data, len));
    /* task id (field 1) sent as a varint: a wire type that does not match */
    size_t at = 0;
    while (data[at] != (1 << 3 | 2)) {
        at++;
    }
    data[at] = 1 << 3 | 0;
    assert_null(fast(&b, data, len));
    blocks_destroy(&b);
    free(data);
}

/* Three services as the manager sends them (replicated with ports and a
 * label, global, replicated job), with counts. Caller frees. */
static uint8_t *make_services(size_t *len)
{
    Swarmc__Service sv[3];
    Swarmc__ServiceSpec sp[3];
    Swarmc__Annotations an[3];
    Swarmc__TaskSpec ts;
    Swarmc__ContainerSpec cs;
    Swarmc__ReplicatedService rep = SWARMC__REPLICATED_SERVICE__INIT;
    Swarmc__GlobalService glob = SWARMC__GLOBAL_SERVICE__INIT;
    Swarmc__ReplicatedJob job = SWARMC__REPLICATED_JOB__INIT;
    Swarmc__PortConfig pc = SWARMC__PORT_CONFIG__INIT, *pcs[] = {&pc};
    Swarmc__EndpointSpec es = SWARMC__ENDPOINT_SPEC__INIT;
    Swarmc__Annotations__LabelsEntry le = SWARMC__ANNOTATIONS__LABELS_ENTRY__INIT, *les[] = {&le};
    Swarmc__ServiceCounts c[3], *cp[3];
    Swarmc__Service *svp[3];
    static const char *ids[] = {"s1aaaaaaaaaaaaaaaaaaaaaaa", "s2bbbbbbbbbbbbbbbbbbbbbbb",
                                "s3ccccccccccccccccccccccc"};
    static const char *names[] = {"web", "agent", "migrate"};
    swarmc__task_spec__init(&ts);
    swarmc__container_spec__init(&cs);
    cs.image = "nginx:1.25";
    ts.container = &cs;
    rep.replicas = 3;
    job.max_concurrent = 2;
    job.total_completions = 5;
    pc.target_port = 80;
    pc.published_port = 8080;
    es.n_ports = 1;
    es.ports = pcs;
    le.key = "team";
    le.value = "a";
    for (int i = 0; i < 3; i++) {
        swarmc__service__init(&sv[i]);
        swarmc__service_spec__init(&sp[i]);
        swarmc__annotations__init(&an[i]);
        swarmc__service_counts__init(&c[i]);
        sv[i].id = (char *)ids[i];
        sv[i].spec = &sp[i];
        sv[i].previous_spec = &sp[i];
        sp[i].annotations = &an[i];
        an[i].name = (char *)names[i];
        sp[i].task = &ts;
        c[i].service_id = (char *)ids[i];
        c[i].running = (uint64_t)i + 1;
        c[i].desired = 3;
        c[i].completed = (uint64_t)i;
        cp[i] = &c[i];
        svp[i] = &sv[i];
    }
    an[0].n_labels = 1;
    an[0].labels = les;
    sp[0].mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    sp[0].replicated = &rep;
    sp[0].endpoint = &es;
    sp[1].mode_case = SWARMC__SERVICE_SPEC__MODE_GLOBAL;
    sp[1].global = &glob;
    sp[2].mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB;
    sp[2].replicated_job = &job;
    Swarmc__ListServicesResponse r = SWARMC__LIST_SERVICES_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    r.error = &e;
    r.n_services = 3;
    r.services = svp;
    r.n_counts = 3;
    r.counts = cp;
    *len = swarmc__list_services_response__get_packed_size(&r);
    uint8_t *out = malloc(*len);
    assert_non_null(out);
    swarmc__list_services_response__pack(&r, out);
    return out;
}

static Swarmc__ListServicesResponse *fast_svc(struct blocks *b, const uint8_t *data, size_t len)
{
    ProtobufCAllocator a = {blocks_alloc, blocks_free_one, b};
    return (Swarmc__ListServicesResponse *)swc_wire_unpack_service_table(
        &swarmc__list_services_response__descriptor, &a, len, data);
}

static void test_services_same_as_protobuf_c(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = make_services(&len);
    struct blocks b = {0};
    Swarmc__ListServicesResponse *x = fast_svc(&b, data, len);
    Swarmc__ListServicesResponse *y =
        swarmc__list_services_response__unpack(&swc_pb_allocator, len, data);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(x->n_services, 3);
    assert_int_equal(x->n_counts, 3);
    struct swc_out_opts o = {0};
    o.now_wall = NOW;
    char *s = swc_out_service_ls(x, &o), *t = swc_out_service_ls(y, &o);
    assert_string_equal(s, t);
    assert_non_null(strstr(s, "*:8080->80/tcp"));
    assert_non_null(strstr(s, "global"));
    assert_non_null(strstr(s, "(2/5 completed)"));
    swc_free(s);
    swc_free(t);
    o.json = true;
    s = swc_out_service_ls(x, &o);
    t = swc_out_service_ls(y, &o);
    assert_string_equal(s, t);
    swc_free(s);
    swc_free(t);
    char *filters[] = {"mode=global"};
    o.json = false;
    o.filters = filters;
    o.n_filters = 1;
    s = swc_out_service_ls(x, &o);
    t = swc_out_service_ls(y, &o);
    assert_string_equal(s, t);
    assert_null(strstr(s, "web"));
    swc_free(s);
    swc_free(t);
    swarmc__list_services_response__free_unpacked(y, &swc_pb_allocator);
    /* bytes cut anywhere: refused exactly when protobuf-c refuses them */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut + 1);
        memcpy(copy, data, cut);
        x = fast_svc(&b, copy, cut);
        y = swarmc__list_services_response__unpack(&swc_pb_allocator, cut, copy);
        assert_true((x == NULL) == (y == NULL));
        if (y != NULL) {
            assert_int_equal(x->n_services, y->n_services);
            swarmc__list_services_response__free_unpacked(y, &swc_pb_allocator);
        }
        free(copy);
    }
    /* not its kind of reply */
    ProtobufCAllocator a = {blocks_alloc, blocks_free_one, &b};
    assert_null(
        swc_wire_unpack_service_table(&swarmc__list_tasks_response__descriptor, &a, len, data));
    blocks_destroy(&b);
    free(data);
}

static void test_table_write(void **state)
{
    (void)state;
    struct swc_table t;
    const char *hdr[] = {"ID", "NAME", "LAST"};
    const char *row[] = {"a", "longer-name", ""};
    swc_table_init(&t, 3, hdr);
    for (int i = 0; i < 5000; i++) { /* past the flush size */
        swc_table_add(&t, row);
    }
    char *s = swc_table_render(&t);
    FILE *f = tmpfile();
    assert_non_null(f);
    swc_table_write(&t, f);
    size_t n = (size_t)ftell(f);
    assert_int_equal(n, strlen(s));
    char *back = malloc(n + 1);
    rewind(f);
    assert_int_equal(fread(back, 1, n, f), n);
    back[n] = '\0';
    assert_string_equal(back, s);
    free(back);
    fclose(f);
    swc_free(s);
    swc_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_protobuf_c),
        cmocka_unit_test(test_cut_bytes),
        cmocka_unit_test(test_refuses_the_unexpected),
        cmocka_unit_test(test_services_same_as_protobuf_c),
        cmocka_unit_test(test_table_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
