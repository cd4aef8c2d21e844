/* Control API listings: the slim tasks of ListTasksRequest.table_fields
 * (what `service ps` shows survives, the rest of the spec does not, the
 * reply still decodes with meta.version set) and the per-state task counts
 * of ListServicesRequest.state_counts (only the service's tasks, only the
 * states that occur, in state order), and the replicas that ListServices
 * reads from a stored service without decoding it.
 *
 * The helpers are static in src/manager/control.c, so this test includes
 * it (the library's copy of control.o is then never linked in). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/manager/control.c"
#include "test_store_util.h"

static void test_table_fields(void **state)
{
    (void)state;
    struct swc_store *s = NULL;
    struct swc_store_txn txn;
    struct swc_store_obj o;
    char id[26], svc[26], node[26];
    tid(id, 't', 1);
    tid(svc, 's', 1);
    tid(node, 'n', 1);
    assert_int_equal(swc_store_create(&s), 0);
    assert_int_equal(swc_store_txn_init(&txn, 1, "test"), 0);
    assert_int_equal(txn_task(&txn, A_CREATE, id, svc, node, 7, ST_RUNNING, ST_RUNNING, 0), 0);
    assert_int_equal(apply1(s, 5, &txn, NULL), 0);
    assert_int_equal(swc_store_get(s, K_TASK, id, &o), 0);

    struct swc_buf slim, out;
    swc_buf_init(&slim);
    swc_buf_init(&out);
    assert_int_equal(table_fields(&slim, o.blob->data, o.blob->len), 0);
    assert_true(slim.len < o.blob->len);
    /* as the reply carries it: field 2 of ListTasksResponse, versioned */
    assert_int_equal(append_versioned(&out, 2, slim.data, slim.len, o.version), 0);
    Swarmc__ListTasksResponse *r =
        swarmc__list_tasks_response__unpack(&swc_pb_allocator, out.len, out.data);
    assert_non_null(r);
    assert_int_equal(r->n_tasks, 1);
    const Swarmc__Task *t = r->tasks[0];
    assert_string_equal(t->id, id);
    assert_string_equal(t->service_id, svc);
    assert_string_equal(t->node_id, node);
    assert_string_equal(t->service_name, "web");
    assert_int_equal(t->slot, 7);
    assert_int_equal(t->desired_state, ST_RUNNING);
    assert_non_null(t->status);
    assert_int_equal(t->status->state, ST_RUNNING);
    assert_int_equal(t->status->timestamp, 1764000000000000000LL);
    assert_non_null(t->meta);
    assert_int_equal(t->meta->version, 5);
    assert_int_equal(t->meta->created_at, 1764000000000000000LL);
    assert_non_null(t->spec);
    assert_non_null(t->spec->container);
    assert_string_equal(t->spec->container->image, "registry.example.com/team/web:1.25.3");
    /* what the table does not show is not sent */
    assert_int_equal(t->spec->container->n_env, 0);
    assert_null(t->annotations);
    assert_int_equal(t->spec_version, 0);
    /* of the status and the meta only what the table shows */
    assert_string_equal(t->status->message, "");
    assert_string_equal(t->status->container_id, "");
    assert_int_equal(t->meta->updated_at, 0);
    swarmc__list_tasks_response__free_unpacked(r, &swc_pb_allocator);

    /* bytes cut in the middle of a field do not parse */
    assert_int_equal(table_fields(&slim, o.blob->data, o.blob->len - 3), SWC_EPROTO);
    swc_buf_free(&slim);
    swc_buf_free(&out);
    swc_store_destroy(s);
}

/* stored_replicas reads spec.replicated.replicas from a stored service's
 * bytes, only in replicated mode (the mode oneof's last member wins). */
static void test_stored_replicas(void **state)
{
    (void)state;
    Swarmc__Service sv = SWARMC__SERVICE__INIT;
    Swarmc__ServiceSpec sp = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__Annotations an = SWARMC__ANNOTATIONS__INIT;
    Swarmc__ReplicatedService rep = SWARMC__REPLICATED_SERVICE__INIT;
    Swarmc__GlobalService glob = SWARMC__GLOBAL_SERVICE__INIT;
    uint8_t buf[512], two[1024];
    uint64_t n = 0;
    an.name = "web";
    sp.annotations = &an;
    sv.id = "s000000000000000000000001";
    sv.spec = &sp;
    sp.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    sp.replicated = &rep;
    rep.replicas = 300;
    size_t len = swarmc__service__pack(&sv, buf);
    assert_true(stored_replicas(buf, len, &n));
    assert_int_equal(n, 300);
    /* a later spec with a global mode wins (a parser merges the two specs) */
    sp.mode_case = SWARMC__SERVICE_SPEC__MODE_GLOBAL;
    sp.global = &glob;
    memcpy(two, buf, len);
    size_t len2 = swarmc__service__pack(&sv, two + len);
    assert_false(stored_replicas(two, len + len2, &n));
    assert_false(stored_replicas(two + len, len2, &n));
    /* cut bytes do not parse */
    assert_false(stored_replicas(buf, len - 1, &n));
}

static void test_state_counts(void **state)
{
    (void)state;
    struct swc_store *s = NULL;
    struct swc_store_txn txn;
    struct swc_manager *m = swc_calloc(1, sizeof *m);
    char id[26], a[26], b[26], node[26];
    /* service a: 1 new, 2 pending, 3 running; service b: 4 assigned */
    static const int states_a[] = {ST_RUNNING, ST_PENDING, ST_NEW,
                                   ST_RUNNING, ST_PENDING, ST_RUNNING};
    assert_non_null(m);
    tid(a, 'a', 1);
    tid(b, 'b', 1);
    tid(node, 'n', 1);
    assert_int_equal(swc_store_create(&s), 0);
    m->store = s;
    assert_int_equal(swc_store_txn_init(&txn, 1, "test"), 0);
    for (unsigned i = 0; i < 6; i++) {
        tid(id, 't', i);
        assert_int_equal(txn_task(&txn, A_CREATE, id, a, node, i + 1, ST_RUNNING, states_a[i], 0),
                         0);
    }
    for (unsigned i = 0; i < 4; i++) {
        tid(id, 'u', i);
        assert_int_equal(txn_task(&txn, A_CREATE, id, b, node, i + 1, ST_RUNNING, ST_ASSIGNED, 0),
                         0);
    }
    assert_int_equal(apply1(s, 2, &txn, NULL), 0);

    Swarmc__ServiceCounts c = SWARMC__SERVICE_COUNTS__INIT;
    assert_int_equal(fill_state_counts(m, a, &c), 0);
    assert_int_equal(c.n_states, 3);
    assert_int_equal(c.states[0]->state, ST_NEW);
    assert_int_equal(c.states[0]->count, 1);
    assert_int_equal(c.states[1]->state, ST_PENDING);
    assert_int_equal(c.states[1]->count, 2);
    assert_int_equal(c.states[2]->state, ST_RUNNING);
    assert_int_equal(c.states[2]->count, 3);
    swc_free(c.states[0]);
    swc_free(c.states);

    Swarmc__ServiceCounts cb = SWARMC__SERVICE_COUNTS__INIT;
    assert_int_equal(fill_state_counts(m, b, &cb), 0);
    assert_int_equal(cb.n_states, 1);
    assert_int_equal(cb.states[0]->state, ST_ASSIGNED);
    assert_int_equal(cb.states[0]->count, 4);
    swc_free(cb.states[0]);
    swc_free(cb.states);

    /* a service without tasks: no entries, nothing allocated */
    char none[26];
    tid(none, 'z', 9);
    Swarmc__ServiceCounts cn = SWARMC__SERVICE_COUNTS__INIT;
    assert_int_equal(fill_state_counts(m, none, &cn), 0);
    assert_int_equal(cn.n_states, 0);
    assert_null(cn.states);

    swc_store_destroy(s);
    swc_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_fields),
        cmocka_unit_test(test_stored_replicas),
        cmocka_unit_test(test_state_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
