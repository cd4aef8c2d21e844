/* CLI: `service ps --states` output (tasks per state from the service
 * listing's counts) and the table renderer the long listings go through:
 * which services are shown (name, id, id prefix), that only the states the
 * manager sent appear and in its order, the JSON form, and column widths
 * with many rows and multi-byte cells.
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

/* A listing of two services: "web" (running 3, pending 1) and "db"
 * (preparing 2); everything lives in the fixture. */
struct fixture {
    Swarmc__Service svc[2], *svcp[2];
    Swarmc__ServiceSpec spec[2];
    Swarmc__Annotations ann[2];
    Swarmc__ServiceCounts cnt[2], *cntp[2];
    Swarmc__TaskStateCount st[3], *stp[3];
    Swarmc__ListServicesResponse r;
};

static void fixture_init(struct fixture *f)
{
    static const char *const ids[] = {"aaaa1111bbbb2222cccc3333d", "zzzz9999yyyy8888xxxx7777w"};
    static const char *const names[] = {"web", "db"};
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 2; i++) {
        swarmc__service__init(&f->svc[i]);
        swarmc__service_spec__init(&f->spec[i]);
        swarmc__annotations__init(&f->ann[i]);
        swarmc__service_counts__init(&f->cnt[i]);
        f->ann[i].name = (char *)names[i];
        f->spec[i].annotations = &f->ann[i];
        f->svc[i].id = (char *)ids[i];
        f->svc[i].spec = &f->spec[i];
        f->svcp[i] = &f->svc[i];
        f->cnt[i].service_id = (char *)ids[i];
        f->cntp[i] = &f->cnt[i];
    }
    for (int i = 0; i < 3; i++) {
        swarmc__task_state_count__init(&f->st[i]);
        f->stp[i] = &f->st[i];
    }
    f->st[0].state = SWARMC__TASK_STATE__TASK_STATE_PENDING;
    f->st[0].count = 1;
    f->st[1].state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    f->st[1].count = 3;
    f->st[2].state = SWARMC__TASK_STATE__TASK_STATE_PREPARING;
    f->st[2].count = 2;
    f->cnt[0].n_states = 2;
    f->cnt[0].states = &f->stp[0];
    f->cnt[1].n_states = 1;
    f->cnt[1].states = &f->stp[2];
    swarmc__list_services_response__init(&f->r);
    f->r.n_services = 2;
    f->r.services = f->svcp;
    f->r.n_counts = 2;
    f->r.counts = f->cntp;
}

static void test_states_by_name(void **state)
{
    (void)state;
    struct fixture f;
    struct swc_out_opts o = {0};
    const char *refs[] = {"web"};
    fixture_init(&f);
    char *s = swc_out_service_states(&f.r, refs, 1, &o);
    assert_string_equal(s, "ID             NAME   STATE     TASKS\n"
                           "aaaa1111bbbb   web    pending   1\n"
                           "aaaa1111bbbb   web    running   3\n");
    swc_free(s);
}

static void test_states_by_id_prefix_and_all(void **state)
{
    (void)state;
    struct fixture f;
    struct swc_out_opts o = {0};
    const char *refs[] = {"zzzz99"};
    fixture_init(&f);
    char *s = swc_out_service_states(&f.r, refs, 1, &o);
    assert_string_equal(s, "ID             NAME   STATE       TASKS\n"
                           "zzzz9999yyyy   db     preparing   2\n");
    swc_free(s);
    s = swc_out_service_states(&f.r, NULL, 0, &o); /* no refs: every service */
    assert_non_null(strstr(s, "web    running"));
    assert_non_null(strstr(s, "db     preparing"));
    swc_free(s);
}

static void test_states_unknown_ref(void **state)
{
    (void)state;
    struct fixture f;
    struct swc_out_opts o = {0};
    const char *refs[] = {"we"}; /* a name prefix is not a name */
    fixture_init(&f);
    char *s = swc_out_service_states(&f.r, refs, 1, &o);
    assert_string_equal(s, "ID   NAME   STATE   TASKS\n");
    swc_free(s);
}

static void test_states_json(void **state)
{
    (void)state;
    struct fixture f;
    struct swc_out_opts o = {0};
    const char *refs[] = {"web", "db"};
    o.json = true;
    fixture_init(&f);
    char *s = swc_out_service_states(&f.r, refs, 2, &o);
    json_error_t je;
    json_t *a = json_loads(s, 0, &je);
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 2);
    json_t *web = json_array_get(a, 0), *db = json_array_get(a, 1);
    assert_string_equal(json_string_value(json_object_get(web, "Name")), "web");
    assert_string_equal(json_string_value(json_object_get(web, "ID")), f.svc[0].id);
    json_t *ws = json_object_get(web, "States");
    assert_int_equal(json_object_size(ws), 2);
    assert_int_equal(json_integer_value(json_object_get(ws, "pending")), 1);
    assert_int_equal(json_integer_value(json_object_get(ws, "running")), 3);
    json_t *ds = json_object_get(db, "States");
    assert_int_equal(json_object_size(ds), 1);
    assert_int_equal(json_integer_value(json_object_get(ds, "preparing")), 2);
    json_decref(a);
    swc_free(s);
}

/* Many rows (the cell text buffer and the row array grow many times) and
 * multi-byte cells (width counts code points): every line is padded to the
 * widest cell of each column, none has trailing spaces. */
static void test_table_many_rows(void **state)
{
    (void)state;
    struct swc_table t;
    const char *hdr[] = {"A", "B", "C"};
    swc_table_init(&t, 3, hdr);
    char a[32], c[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(a, sizeof a, "r%d", i);
        snprintf(c, sizeof c, "%s", i % 2 ? "x" : "");
        const char *row[] = {a, i == 7 ? "\xc3\xa9t\xc3\xa9" : "b", c};
        swc_table_add(&t, row);
    }
    char *s = swc_table_render(&t);
    /* widest A cell is "r4999" (5), B is "été" (3 code points) */
    assert_true(strncmp(s, "A       B     C\n", 16) == 0);
    assert_non_null(strstr(s, "\nr7      \xc3\xa9t\xc3\xa9   x\n"));
    assert_non_null(strstr(s, "\nr4998   b\n"));
    assert_non_null(strstr(s, "\nr4999   b     x\n"));
    size_t lines = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            lines++;
            assert_true(p == s || p[-1] != ' ');
        }
    }
    assert_int_equal(lines, 5001);
    swc_free(s);
    swc_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states_by_name),
        cmocka_unit_test(test_states_by_id_prefix_and_all),
        cmocka_unit_test(test_states_unknown_ref),
        cmocka_unit_test(test_states_json),
        cmocka_unit_test(test_table_many_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
