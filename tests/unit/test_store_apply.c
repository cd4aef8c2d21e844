/* Store apply semantics: versions and conflicts, atomic transactions, unique
 * names, indexes and counts after moves, events and watchers, and an
 * allocation-failure sweep over apply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_store_util.h"

static const char *SVC = "s000000000000000000000001";
static const char *SVC2 = "s000000000000000000000002";
static const char *N1 = "n000000000000000000000001";
static const char *N2 = "n000000000000000000000002";

static int setup(void **state)
{
    struct swc_store *s;
    assert_int_equal(swc_store_create(&s), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    swc_store_destroy(*state);
    return 0;
}

static void create_update_remove(void **state)
{
    struct swc_store *s = *state;
    struct swc_store_txn t;
    struct results r;
    struct swc_store_obj o;
    char id[26];
    tid(id, 't', 1);

    assert_int_equal(swc_store_txn_init(&t, 7, "3"), 0);
    assert_int_equal(txn_task(&t, A_CREATE, id, SVC, N1, 1, ST_RUNNING, ST_PENDING, 0), 0);
    assert_int_equal(apply1(s, 10, &t, &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.code[0], 0);
    assert_int_equal(r.pid[0], 7);
    assert_string_equal(r.proposer[0], "3");
    assert_int_equal(swc_store_get(s, K_TASK, id, &o), 0);
    assert_int_equal(o.version, 10);
    assert_string_equal(o.service_id, SVC);
    assert_int_equal(swc_store_index(s), 10);

    /* the decoded copy carries the stored version */
    int err = -1;
    Swarmc__Task *task = (Swarmc__Task *)swc_store_get_decoded(s, K_TASK, id, &err);
    assert_non_null(task);
    assert_int_equal(err, 0);
    assert_int_equal(task->meta->version, 10);
    assert_string_equal(task->node_id, N1);
    swc_store_free_decoded(&task->base);

    /* creating it again conflicts */
    swc_store_txn_init(&t, 8, "3");
    txn_task(&t, A_CREATE, id, SVC, N1, 1, ST_RUNNING, ST_PENDING, 0);
    assert_int_equal(apply1(s, 11, &t, &r), 0);
    assert_int_equal(r.code[0], SWC_ECONFLICT);
    assert_non_null(strstr(r.msg[0], "task"));
    assert_non_null(strstr(r.msg[0], id));

    /* update with the right version */
    swc_store_txn_init(&t, 9, "3");
    txn_task(&t, A_UPDATE, id, SVC, N1, 1, ST_RUNNING, ST_RUNNING, 10);
    assert_int_equal(apply1(s, 12, &t, &r), 0);
    assert_int_equal(r.code[0], 0);
    assert_int_equal(swc_store_get(s, K_TASK, id, &o), 0);
    assert_int_equal(o.version, 12);
    assert_int_equal(o.state, ST_RUNNING);

    /* a stale version is refused, naming the object and both versions */
    swc_store_txn_init(&t, 10, "3");
    txn_task(&t, A_UPDATE, id, SVC, N1, 1, ST_SHUTDOWN, ST_RUNNING, 10);
    assert_int_equal(apply1(s, 13, &t, &r), 0);
    assert_int_equal(r.code[0], SWC_ECONFLICT);
    assert_non_null(strstr(r.msg[0], id));
    assert_non_null(strstr(r.msg[0], "expected version 10"));
    assert_non_null(strstr(r.msg[0], "stored version 12"));
    assert_int_equal(swc_store_get(s, K_TASK, id, &o), 0);
    assert_int_equal(o.version, 12);
    assert_int_equal(o.desired_state, ST_RUNNING);

    /* unconditional update (expected 0) */
    swc_store_txn_init(&t, 11, "3");
    txn_task(&t, A_UPDATE, id, SVC, N1, 1, ST_SHUTDOWN, ST_RUNNING, 0);
    assert_int_equal(apply1(s, 14, &t, &r), 0);
    assert_int_equal(r.code[0], 0);

    /* stale remove refused, right remove works, then update of a gone id conflicts */
    swc_store_txn_init(&t, 12, "3");
    swc_store_txn_remove(&t, K_TASK, id, 13);
    assert_int_equal(apply1(s, 15, &t, &r), 0);
    assert_int_equal(r.code[0], SWC_ECONFLICT);
    assert_int_equal(swc_store_count(s, K_TASK), 1);
    swc_store_txn_init(&t, 13, "3");
    swc_store_txn_remove(&t, K_TASK, id, 14);
    assert_int_equal(apply1(s, 16, &t, &r), 0);
    assert_int_equal(r.code[0], 0);
    assert_int_equal(swc_store_get(s, K_TASK, id, &o), SWC_ENOENT);
    assert_int_equal(swc_store_count(s, K_TASK), 0);
    swc_store_txn_init(&t, 14, "3");
    txn_task(&t, A_UPDATE, id, SVC, N1, 1, ST_SHUTDOWN, ST_RUNNING, 0);
    assert_int_equal(apply1(s, 17, &t, &r), 0);
    assert_int_equal(r.code[0], SWC_ECONFLICT);
    assert_int_equal(store_check(s), 0);
}

static void atomic_transactions(void **state)
{
    struct swc_store *s = *state;
    struct swc_store_txn t[2];
    struct results r;
    char id[26], id2[26], id3[26];
    tid(id, 't', 1);
    tid(id2, 't', 2);
    tid(id3, 't', 3);

    swc_store_txn_init(&t[0], 1, "1");
    txn_task(&t[0], A_CREATE, id, SVC, N1, 1, ST_RUNNING, ST_PENDING, 0);
    assert_int_equal(apply1(s, 5, &t[0], &r), 0);

    /* txn 1: two creates and a stale update -> nothing; txn 2 in the same
     * entry still applies */
    swc_store_txn_init(&t[0], 2, "1");
    txn_task(&t[0], A_CREATE, id2, SVC, N1, 2, ST_RUNNING, ST_PENDING, 0);
    txn_task(&t[0], A_UPDATE, id, SVC, N2, 1, ST_RUNNING, ST_RUNNING, 0);
    txn_task(&t[0], A_CREATE, id3, SVC, N1, 3, ST_RUNNING, ST_PENDING, 0);
    txn_task(&t[0], A_UPDATE, id, SVC, N2, 1, ST_RUNNING, ST_RUNNING, 4); /* stale */
    swc_store_txn_init(&t[1], 3, "1");
    txn_named(&t[1], A_CREATE, K_SERVICE, SVC, "web", 0);
    assert_int_equal(apply_txns(s, 6, t, 2, &r), 0);
    swc_store_txn_free(&t[0]);
    swc_store_txn_free(&t[1]);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.code[0], SWC_ECONFLICT);
    assert_int_equal(r.code[1], 0);
    assert_int_equal(swc_store_count(s, K_TASK), 1);
    struct swc_store_obj o;
    assert_int_equal(swc_store_get(s, K_TASK, id, &o), 0);
    assert_int_equal(o.version, 5);
    assert_string_equal(o.node_id, N1);
    assert_int_equal(swc_store_get(s, K_TASK, id2, &o), SWC_ENOENT);
    assert_int_equal(swc_store_count(s, K_SERVICE), 1);
    struct swc_store_counts c;
    swc_store_service_counts(s, SVC, &c);
    assert_int_equal(c.total, 1);
    assert_int_equal(store_check(s), 0);

    /* a malformed action (object id differs from the action's) is EINVAL */
    swc_store_txn_init(&t[0], 4, "1");
    txn_task(&t[0], A_CREATE, id2, SVC, N1, 2, ST_RUNNING, ST_PENDING, 0);
    Swarmc__Task *bad = (Swarmc__Task *)swc_store_get_decoded(s, K_TASK, id, NULL);
    uint8_t buf[1024];
    size_t len = protobuf_c_message_pack(&bad->base, buf);
    swc_store_free_decoded(&bad->base);
    swc_store_txn_add_encoded(&t[0], A_CREATE, K_TASK, id3, 0, buf, len);
    assert_int_equal(apply1(s, 7, &t[0], &r), 0);
    assert_int_equal(r.code[0], SWC_EINVAL);
    assert_non_null(strstr(r.msg[0], id3));
    assert_int_equal(swc_store_count(s, K_TASK), 1);

    /* one txn can create then update then remove the same object */
    swc_store_txn_init(&t[0], 5, "1");
    txn_task(&t[0], A_CREATE, id2, SVC, N1, 2, ST_RUNNING, ST_PENDING, 0);
    txn_task(&t[0], A_UPDATE, id2, SVC, N2, 2, ST_RUNNING, ST_RUNNING, 8);
    swc_store_txn_remove(&t[0], K_TASK, id, 5);
    assert_int_equal(apply1(s, 8, &t[0], &r), 0);
    assert_int_equal(r.code[0], 0);
    assert_int_equal(swc_store_get(s, K_TASK, id2, &o), 0);
    assert_string_equal(o.node_id, N2);
    assert_int_equal(swc_store_get(s, K_TASK, id, &o), SWC_ENOENT);
    assert_int_equal(store_check(s), 0);

    /* garbage entry: EPROTO, nothing applied */
    uint8_t junk[] = {0x0a, 0x05, 0x1a, 0x10, 0x00};
    assert_int_equal(swc_store_apply_entry(s, 9, junk, sizeof(junk), NULL, NULL), SWC_EPROTO);
    assert_int_equal(swc_store_count(s, K_TASK), 1);
}

static void unique_names(void **state)
{
    struct swc_store *s = *state;
    struct swc_store_txn t;
    struct results r;
    struct swc_store_obj o;
    const char *A = "a000000000000000000000001", *B = "a000000000000000000000002";

    swc_store_txn_init(&t, 1, "1");
    txn_named(&t, A_CREATE, K_SERVICE, A, "web", 0);
    assert_int_equal(apply1(s, 2, &t, &r), 0);
    assert_int_equal(r.code[0], 0);

    /* create clash */
    swc_store_txn_init(&t, 2, "1");
    txn_named(&t, A_CREATE, K_SERVICE, B, "web", 0);
    assert_int_equal(apply1(s, 3, &t, &r), 0);
    assert_int_equal(r.code[0], SWC_ECONFLICT);
    assert_non_null(strstr(r.msg[0], "name conflict"));
    assert_non_null(strstr(r.msg[0], A));
    /* same name in another kind is fine */
    swc_store_txn_init(&t, 3, "1");
    txn_named(&t, A_CREATE, K_SECRET, B, "web", 0);
    txn_named(&t, A_CREATE, K_SERVICE, B, "db", 0);
    assert_int_equal(apply1(s, 4, &t, &r), 0);
    assert_int_equal(r.code[0], 0);

    /* rename clash */
    swc_store_txn_init(&t, 4, "1");
    txn_named(&t, A_UPDATE, K_SERVICE, B, "web", 4);
    assert_int_equal(apply1(s, 5, &t, &r), 0);
    assert_int_equal(r.code[0], SWC_ECONFLICT);
    assert_int_equal(swc_store_find_by_name(s, K_SERVICE, "db", &o), 0);
    assert_string_equal(o.id, B);

    /* rename to a free name frees the old one */
    swc_store_txn_init(&t, 5, "1");
    txn_named(&t, A_UPDATE, K_SERVICE, B, "cache", 4);
    assert_int_equal(apply1(s, 6, &t, &r), 0);
    assert_int_equal(r.code[0], 0);
    assert_int_equal(swc_store_find_by_name(s, K_SERVICE, "db", &o), SWC_ENOENT);
    assert_int_equal(swc_store_find_by_name(s, K_SERVICE, "cache", &o), 0);

    /* name freed after remove, reusable in the same transaction */
    swc_store_txn_init(&t, 6, "1");
    swc_store_txn_remove(&t, K_SERVICE, A, 0);
    txn_named(&t, A_CREATE, K_SERVICE, "a000000000000000000000003", "web", 0);
    assert_int_equal(apply1(s, 7, &t, &r), 0);
    assert_int_equal(r.code[0], 0);
    assert_int_equal(swc_store_find_by_name(s, K_SERVICE, "web", &o), 0);
    assert_string_equal(o.id, "a000000000000000000000003");

    /* prefix lookup */
    size_t nm;
    assert_int_equal(swc_store_find_by_prefix(s, K_SERVICE, "a00", &o, &nm), SWC_EEXIST);
    assert_int_equal(nm, 2);
    assert_int_equal(swc_store_find_by_prefix(s, K_SERVICE, "a000000000000000000000003", &o, &nm),
                     0);
    assert_int_equal(swc_store_find_by_prefix(s, K_SERVICE, "zz", &o, &nm), SWC_ENOENT);
    assert_int_equal(store_check(s), 0);
}

static void indexes_and_counts(void **state)
{
    struct swc_store *s = *state;
    struct swc_store_txn t;
    struct results r;
    struct swc_store_iter it;
    struct swc_store_counts c;
    char id[26];
    uint64_t idx = 1;

    /* 6 tasks of SVC on N1 (slots 1..6), 2 of SVC2 on N2 */
    swc_store_txn_init(&t, 1, "1");
    for (int i = 1; i <= 6; i++) {
        tid(id, 't', (unsigned long)i);
        txn_task(&t, A_CREATE, id, SVC, N1, (uint64_t)i, ST_RUNNING, ST_PENDING, 0);
    }
    for (int i = 7; i <= 8; i++) {
        tid(id, 't', (unsigned long)i);
        txn_task(&t, A_CREATE, id, SVC2, N2, 1, ST_RUNNING, ST_RUNNING, 0);
    }
    assert_int_equal(apply1(s, idx++, &t, &r), 0);
    swc_store_service_counts(s, SVC, &c);
    assert_int_equal(c.desired, 6);
    assert_int_equal(c.running, 0);
    swc_store_service_counts(s, SVC2, &c);
    assert_int_equal(c.running, 2);

    /* move t1 and t2 to N2 and running; t3 completes; t4 shut down */
    swc_store_txn_init(&t, 2, "1");
    tid(id, 't', 1);
    txn_task(&t, A_UPDATE, id, SVC, N2, 1, ST_RUNNING, ST_RUNNING, 0);
    tid(id, 't', 2);
    txn_task(&t, A_UPDATE, id, SVC, N2, 2, ST_RUNNING, ST_RUNNING, 0);
    tid(id, 't', 3);
    txn_task(&t, A_UPDATE, id, SVC, N1, 3, ST_RUNNING, ST_COMPLETE, 0);
    tid(id, 't', 4);
    txn_task(&t, A_UPDATE, id, SVC, N1, 4, ST_SHUTDOWN, ST_RUNNING, 0);
    /* a second task in slot 5 (history) */
    tid(id, 't', 9);
    txn_task(&t, A_CREATE, id, SVC, "", 5, ST_RUNNING, ST_NEW, 0);
    assert_int_equal(apply1(s, idx++, &t, &r), 0);
    assert_int_equal(r.code[0], 0);

    swc_store_iter_node_tasks(s, N1, &it);
    assert_int_equal(it.remaining, 4);
    assert_int_equal(iter_count(&it), 4);
    swc_store_iter_node_tasks(s, N2, &it);
    assert_int_equal(iter_count(&it), 4);
    swc_store_iter_service_tasks(s, SVC, &it);
    assert_int_equal(iter_count(&it), 7);
    swc_store_iter_slot_tasks(s, SVC, 5, &it);
    assert_int_equal(iter_count(&it), 2);
    swc_store_iter_slot_tasks(s, SVC, 1, &it);
    assert_int_equal(iter_count(&it), 1);
    swc_store_iter_slot_tasks(s, SVC, 99, &it);
    assert_int_equal(iter_count(&it), 0);
    swc_store_iter_state(s, ST_RUNNING, &it);
    assert_int_equal(iter_count(&it), 5); /* t1, t2, t4, t7, t8 */
    swc_store_iter_state(s, ST_PENDING, &it);
    assert_int_equal(iter_count(&it), 2); /* t5, t6 */
    swc_store_iter_state(s, ST_NEW, &it);
    assert_int_equal(iter_count(&it), 1);
    swc_store_iter_desired_state(s, ST_SHUTDOWN, &it);
    assert_int_equal(iter_count(&it), 1);
    swc_store_iter_state(s, 12345, &it);
    assert_int_equal(iter_count(&it), 0);

    swc_store_service_counts(s, SVC, &c);
    assert_int_equal(c.total, 7);
    assert_int_equal(c.desired, 6);   /* all but t4 */
    assert_int_equal(c.running, 2);   /* t1, t2 (t4 runs but is not desired) */
    assert_int_equal(c.completed, 1); /* t3 */
    assert_int_equal(store_check(s), 0);

    /* removing every task of SVC2 empties its lists and counts */
    swc_store_txn_init(&t, 3, "1");
    tid(id, 't', 7);
    swc_store_txn_remove(&t, K_TASK, id, 0);
    tid(id, 't', 8);
    swc_store_txn_remove(&t, K_TASK, id, 0);
    assert_int_equal(apply1(s, idx++, &t, &r), 0);
    swc_store_service_counts(s, SVC2, &c);
    assert_int_equal(c.total, 0);
    assert_int_equal(c.running, 0);
    swc_store_iter_service_tasks(s, SVC2, &it);
    assert_int_equal(iter_count(&it), 0);
    assert_int_equal(store_check(s), 0);
}

/* --- events --- */

struct ev {
    int type, kind;
    char id[32];
    int old_state, new_state; /* status.state of old/new, -1 = none */
    uint64_t index;
};

struct evlog {
    int n;
    struct ev ev[64];
    struct swc_store *s;
    struct swc_store_watch *late; /* watcher to add from inside a callback */
    struct swc_store_watch *unwatch_self;
};

static int blob_state(const struct swc_store_blob *b)
{
    if (b == NULL) {
        return -1;
    }
    Swarmc__Task *t = swarmc__task__unpack(&swc_pb_allocator, b->len, b->data);
    int st = t->status->state;
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
    return st;
}

static void ev_cb(void *data, const struct swc_store_event *e)
{
    struct evlog *l = data;
    struct ev *v = &l->ev[l->n++];
    v->type = e->type;
    v->kind = e->kind;
    snprintf(v->id, sizeof(v->id), "%s", e->id);
    v->old_state = e->kind == K_TASK ? blob_state(e->old_blob) : -1;
    v->new_state = e->kind == K_TASK ? blob_state(e->new_blob) : -1;
    v->index = e->index;
    if (l->late != NULL) {
        swc_store_watch(l->s, l->late);
        l->late = NULL;
    }
    if (l->unwatch_self != NULL) {
        swc_store_unwatch(l->s, l->unwatch_self);
        l->unwatch_self = NULL;
    }
}

static void events(void **state)
{
    struct swc_store *s = *state;
    struct swc_store_txn t[2];
    struct results r;
    struct evlog a = {.s = s}, b = {.s = s}, late = {.s = s};
    struct swc_store_watch wa = {.cb = ev_cb, .data = &a};
    struct swc_store_watch wb = {.cb = ev_cb, .data = &b, .kinds = 1u << K_SERVICE};
    struct swc_store_watch wl = {.cb = ev_cb, .data = &late};
    char id[26];
    tid(id, 't', 1);

    swc_store_watch(s, &wa);
    swc_store_watch(s, &wb);
    a.late = &wl; /* added during the first event: must miss this entry */
    swc_store_txn_init(&t[0], 1, "1");
    txn_task(&t[0], A_CREATE, id, SVC, N1, 1, ST_RUNNING, ST_PENDING, 0);
    txn_named(&t[0], A_CREATE, K_SERVICE, SVC, "web", 0);
    swc_store_txn_init(&t[1], 2, "1");
    txn_task(&t[1], A_UPDATE, id, SVC, N1, 1, ST_RUNNING, ST_RUNNING, 0);
    assert_int_equal(apply_txns(s, 20, t, 2, &r), 0);
    swc_store_txn_free(&t[0]);
    swc_store_txn_free(&t[1]);

    assert_int_equal(a.n, 4);
    assert_int_equal(a.ev[0].type, SWC_STORE_EV_CREATE);
    assert_string_equal(a.ev[0].id, id);
    assert_int_equal(a.ev[0].old_state, -1);
    assert_int_equal(a.ev[0].new_state, ST_PENDING);
    assert_int_equal(a.ev[1].type, SWC_STORE_EV_CREATE);
    assert_int_equal(a.ev[1].kind, K_SERVICE);
    assert_int_equal(a.ev[2].type, SWC_STORE_EV_UPDATE);
    assert_int_equal(a.ev[2].old_state, ST_PENDING);
    assert_int_equal(a.ev[2].new_state, ST_RUNNING);
    assert_int_equal(a.ev[3].type, SWC_STORE_EV_COMMIT);
    assert_int_equal(a.ev[3].index, 20);
    /* kind filter: only the service and the commit */
    assert_int_equal(b.n, 2);
    assert_int_equal(b.ev[0].kind, K_SERVICE);
    assert_int_equal(b.ev[1].type, SWC_STORE_EV_COMMIT);
    assert_int_equal(late.n, 0);

    /* a conflicting txn produces no object events, only the commit */
    a.n = b.n = 0;
    a.unwatch_self = &wa; /* unsubscribe from inside own callback */
    swc_store_txn_init(&t[0], 3, "1");
    swc_store_txn_remove(&t[0], K_TASK, id, 1);
    assert_int_equal(apply1(s, 21, &t[0], &r), 0);
    assert_int_equal(r.code[0], SWC_ECONFLICT);
    assert_int_equal(late.n, 1);
    assert_int_equal(late.ev[0].type, SWC_STORE_EV_COMMIT);
    assert_int_equal(a.n, 1);

    /* remove: old blob, no new */
    swc_store_txn_init(&t[0], 4, "1");
    swc_store_txn_remove(&t[0], K_TASK, id, 20);
    assert_int_equal(apply1(s, 22, &t[0], &r), 0);
    assert_int_equal(a.n, 1); /* unsubscribed */
    assert_int_equal(late.n, 3);
    assert_int_equal(late.ev[1].type, SWC_STORE_EV_REMOVE);
    assert_int_equal(late.ev[1].old_state, ST_RUNNING);
    assert_int_equal(late.ev[1].new_state, -1);
    swc_store_unwatch(s, &wb);
    swc_store_unwatch(s, &wl);
}

/* view-and-watch: a mirror built from the view plus events equals the store */
struct mirror {
    int count;
};

static void mirror_view(void *data, struct swc_store *s)
{
    struct mirror *m = data;
    m->count = (int)swc_store_count(s, K_TASK);
}

static void mirror_cb(void *data, const struct swc_store_event *e)
{
    struct mirror *m = data;
    if (e->type == SWC_STORE_EV_CREATE && e->kind == K_TASK) {
        m->count++;
    } else if (e->type == SWC_STORE_EV_REMOVE && e->kind == K_TASK) {
        m->count--;
    }
}

static void view_and_watch(void **state)
{
    struct swc_store *s = *state;
    struct mirror m[20];
    struct swc_store_watch w[20];
    char id[26];
    unsigned long next = 1;
    for (int round = 0; round < 20; round++) {
        /* each round: a new watcher joins, then an entry creates 3 and removes 1 */
        memset(&w[round], 0, sizeof(w[round]));
        w[round].cb = mirror_cb;
        w[round].data = &m[round];
        swc_store_view_and_watch(s, mirror_view, &m[round], &w[round]);
        struct swc_store_txn t;
        swc_store_txn_init(&t, 1, "1");
        for (int i = 0; i < 3; i++) {
            tid(id, 't', next++);
            txn_task(&t, A_CREATE, id, SVC, N1, next, ST_RUNNING, ST_NEW, 0);
        }
        tid(id, 't', next - 2);
        swc_store_txn_remove(&t, K_TASK, id, 0);
        assert_int_equal(apply1(s, (uint64_t)round + 1, &t, NULL), 0);
        for (int j = 0; j <= round; j++) {
            assert_int_equal(m[j].count, (int)swc_store_count(s, K_TASK));
        }
    }
    for (int j = 0; j < 20; j++) {
        swc_store_unwatch(s, &w[j]);
    }
}

/* --- allocation failures --- */

static void populate(struct swc_store *s)
{
    struct swc_store_txn t;
    char id[26];
    swc_store_txn_init(&t, 1, "1");
    for (int i = 1; i <= 20; i++) {
        tid(id, 't', (unsigned long)i);
        txn_task(&t, A_CREATE, id, i % 2 ? SVC : SVC2, i % 3 ? N1 : N2, (uint64_t)i, ST_RUNNING,
                 ST_RUNNING, 0);
    }
    txn_named(&t, A_CREATE, K_SERVICE, SVC, "web", 0);
    txn_named(&t, A_CREATE, K_SERVICE, SVC2, "db", 0);
    assert_int_equal(apply1(s, 1, &t, NULL), 0);
}

/* An entry touching everything: creates (new service group, new node),
 * moves, removes (emptying a slot), a rename, a conflicting txn. */
static void build_mix(struct swc_store_txn *t)
{
    char id[26];
    swc_store_txn_init(&t[0], 1, "1");
    for (int i = 21; i <= 25; i++) {
        tid(id, 't', (unsigned long)i);
        txn_task(&t[0], A_CREATE, id, "s000000000000000000000009", "n000000000000000000000009",
                 (uint64_t)i, ST_RUNNING, ST_NEW, 0);
    }
    for (int i = 1; i <= 6; i++) {
        tid(id, 't', (unsigned long)i);
        txn_task(&t[0], A_UPDATE, id, i % 2 ? SVC : SVC2, N2, (uint64_t)i, ST_SHUTDOWN, ST_COMPLETE,
                 1);
    }
    for (int i = 7; i <= 20; i += 2) {
        tid(id, 't', (unsigned long)i);
        swc_store_txn_remove(&t[0], K_TASK, id, 1);
    }
    txn_named(&t[0], A_UPDATE, K_SERVICE, SVC, "frontend", 1);
    txn_named(&t[0], A_CREATE, K_SERVICE, "s000000000000000000000009", "web", 0);
    swc_store_txn_init(&t[1], 2, "1");
    tid(id, 't', 2);
    txn_task(&t[1], A_UPDATE, id, SVC2, N1, 2, ST_RUNNING, ST_RUNNING, 0);
    txn_named(&t[1], A_CREATE, K_SERVICE, "s000000000000000000000008", "db", 0); /* clash */
}

static void count_cb(void *data, const struct swc_store_event *e)
{
    (void)e;
    (*(int *)data)++;
}

static void alloc_failure_sweep(void **state)
{
    (void)state;
    struct swc_store *ref, *want;
    struct swc_store_txn t[2];
    struct swc_buf snap;
    swc_buf_init(&snap);

    /* the expected result of the mixed entry */
    assert_int_equal(swc_store_create(&ref), 0);
    populate(ref);
    assert_int_equal(swc_store_snapshot(ref, &snap), 0);
    assert_int_equal(swc_store_create(&want), 0);
    populate(want);
    build_mix(t);
    struct results r;
    assert_int_equal(apply_txns(want, 2, t, 2, &r), 0);
    assert_int_equal(r.code[0], 0);
    assert_int_equal(r.code[1], SWC_ECONFLICT);

    struct swc_buf batch, tb;
    swc_buf_init(&batch);
    swc_buf_init(&tb);
    for (int i = 0; i < 2; i++) {
        tb.len = 0;
        assert_int_equal(swc_store_txn_encode(&t[i], &tb), 0);
        assert_int_equal(swc_store_batch_append(&batch, tb.data, tb.len), 0);
    }

    int failures = 0;
    for (long n = 1; n < 5000; n++) {
        struct swc_store *s;
        int nev = 0;
        struct swc_store_watch w = {.cb = count_cb, .data = &nev};
        long base = swc_alloc_live();
        assert_int_equal(swc_store_create(&s), 0);
        assert_int_equal(swc_store_restore(s, snap.data, snap.len), 0);
        swc_store_watch(s, &w);
        memset(&r, 0, sizeof(r));
        swc_alloc_fail_after(n);
        int rv = swc_store_apply_entry(s, 2, batch.data, batch.len, results_cb, &r);
        swc_alloc_fail_after(0);
        if (rv == 0) {
            assert_true(store_equal(s, want));
            swc_store_destroy(s);
            assert_int_equal(swc_alloc_live(), base);
            break;
        }
        failures++;
        assert_int_equal(rv, SWC_ENOMEM);
        assert_int_equal(r.n, 0);
        assert_int_equal(nev, 0);
        assert_true(store_equal(s, ref));
        assert_int_equal(store_check(s), 0);
        /* and the same entry still applies afterwards */
        assert_int_equal(swc_store_apply_entry(s, 2, batch.data, batch.len, results_cb, &r), 0);
        assert_true(store_equal(s, want));
        assert_int_equal(store_check(s), 0);
        assert_int_equal(nev, 21); /* 5 + 6 + 7 + 2 object events and the commit */
        swc_store_destroy(s);
        assert_int_equal(swc_alloc_live(), base);
    }
    assert_true(failures > 10);
    swc_buf_free(&batch);
    swc_buf_free(&tb);
    swc_store_txn_free(&t[0]);
    swc_store_txn_free(&t[1]);
    swc_store_destroy(ref);
    swc_store_destroy(want);
    swc_buf_free(&snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_update_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(atomic_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(unique_names, setup, teardown),
        cmocka_unit_test_setup_teardown(indexes_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(events, setup, teardown),
        cmocka_unit_test_setup_teardown(view_and_watch, setup, teardown),
        cmocka_unit_test(alloc_failure_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
