/* Backups pinned across loop turns: the pinning walk is cut into small
 * slices (store_int.h bk_slice) and entries are applied between slices, so
 * every case of store_backup.c's generation rule is hit: updates and removes
 * of records already pinned and not yet pinned, creates (skipped), a record
 * put back by the undo of a conflicting transaction, a name freed and taken
 * again, and the store replaced, backed up again or destroyed while a backup
 * is still pinning. Each backup, restored, must equal the store as it was
 * at the backup's start index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store_int.h" /* bk_pin and bk_slice: to cut pinning into slices */
#include "test_store_util.h"

#define NTASKS 20000
#define NSVC   10
#define SLICE  1000

static void fill(struct swc_store *s, int ntasks)
{
    assert_int_equal(fill_store(s, ntasks, NSVC), 0);
}

/* A copy of s as it is now (through a raft snapshot). */
static struct swc_store *copy_of(const struct swc_store *s)
{
    struct swc_store *c;
    struct swc_buf buf;
    swc_buf_init(&buf);
    assert_int_equal(swc_store_snapshot(s, &buf), 0);
    assert_int_equal(swc_store_create(&c), 0);
    assert_int_equal(swc_store_restore(c, buf.data, buf.len), 0);
    swc_buf_free(&buf);
    return c;
}

struct bk {
    int done, code;
    char msg[SWC_ERRMSG_SIZE];
};

static void backup_cb(void *data, int code, const struct swc_err *err)
{
    struct bk *b = data;
    b->done++;
    b->code = code;
    snprintf(b->msg, sizeof(b->msg), "%s", swc_err_msg(err));
}

static void run_until(uv_loop_t *loop, int *flag)
{
    uint64_t end = uv_now(loop) + 30000; /* deadline: 30 s of loop time */
    while (!*flag && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
}

/* One loop turn: one pinning slice. */
static void turn(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Apply one transaction as the next entry; returns its result code. */
static int apply_next(struct swc_store *s, struct swc_store_txn *t)
{
    struct results r = {0};
    assert_int_equal(apply1(s, swc_store_index(s) + 1, t, &r), 0);
    assert_int_equal(r.n, 1);
    return r.code[0];
}

static void task_update(struct swc_store_txn *t, unsigned long n, int state)
{
    char id[26], svc[26], node[26];
    tid(id, 't', n);
    tid(svc, 's', n % NSVC);
    tid(node, 'n', 5);
    assert_int_equal(txn_task(t, A_UPDATE, id, svc, node, n / NSVC + 1, ST_RUNNING, state, 0), 0);
}

static void task_remove(struct swc_store_txn *t, unsigned long n)
{
    char id[26];
    tid(id, 't', n);
    assert_int_equal(swc_store_txn_remove(t, K_TASK, id, 0), 0);
}

static void task_create(struct swc_store_txn *t, char prefix, unsigned long n)
{
    char id[26], svc[26], node[26];
    tid(id, prefix, n);
    tid(svc, 's', 1);
    tid(node, 'n', 1);
    assert_int_equal(txn_task(t, A_CREATE, id, svc, node, 1, ST_RUNNING, ST_NEW, 0), 0);
}

static int64_t meta_index(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'raft_index'", -1, &st, NULL),
        SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The backup at path restores to exactly want (objects and index). */
static void assert_backup_is(const char *path, const struct swc_store *want)
{
    struct swc_store *b;
    struct swc_err err;
    assert_int_equal(swc_store_create(&b), 0);
    assert_int_equal(swc_store_restore_backup(b, path, &err), 0);
    assert_int_equal(meta_index(path), (int64_t)swc_store_index(want));
    assert_true(store_equal(b, want));
    assert_true(store_equal(want, b));
    assert_int_equal(store_check(b), 0);
    swc_store_destroy(b);
}

struct fixture {
    uv_loop_t loop;
    char dir[32], path[256], path2[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/swc_store_bkXXXXXX");
    if (mkdtemp(f->dir) == NULL || uv_loop_init(&f->loop) != 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/a.db", f->dir);
    snprintf(f->path2, sizeof(f->path2), "%s/b.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&f->loop); /* no handle left open */
    unlink(f->path);
    unlink(f->path2);
    rmdir(f->dir);
    free(f);
    return rv == 0 ? 0 : -1;
}

static void writes_between_slices(void **state)
{
    struct fixture *f = *state;
    struct swc_store *a, *at_start;
    struct swc_store_txn t;
    struct bk res = {0};
    char svc3[26], svc99[26];

    assert_int_equal(swc_store_create(&a), 0);
    fill(a, NTASKS);
    at_start = copy_of(a);
    a->bk_slice = SLICE;
    assert_int_equal(swc_store_backup(a, &f->loop, f->path, backup_cb, &res), 0);
    assert_int_equal(res.done, 0); /* never from inside the call */

    /* slice 1 pins the node, the services and the first tasks */
    turn(&f->loop);
    assert_non_null(a->bk_pin);

    /* entry 1: pinned and not-yet-pinned objects change */
    swc_store_txn_init(&t, 1, "1");
    task_update(&t, 0, ST_FAILED);     /* pinned */
    task_update(&t, 15000, ST_FAILED); /* not yet */
    task_remove(&t, 1);                /* pinned */
    task_remove(&t, 15001);            /* not yet */
    task_create(&t, 'u', 0);           /* new */
    task_create(&t, 'u', 1);           /* new */
    task_create(&t, 'u', 2);           /* new, then gone in the same entry */
    task_remove(&t, 0);                /* replaced above, now gone too */
    tid(svc3, 's', 3);
    tid(svc99, 's', 99);
    /* a name freed and taken by a new object: the backup keeps the old holder */
    txn_named(&t, A_UPDATE, K_SERVICE, svc3, "svc-3-renamed", 0);
    txn_named(&t, A_CREATE, K_SERVICE, svc99, "svc-3", 0);
    /* kinds the walk has not reached */
    txn_named(&t, A_UPDATE, K_SECRET, "x000000000000000000000001", "tls-key-2", 0);
    assert_int_equal(swc_store_txn_remove(&t, K_NETWORK, "w000000000000000000000001", 0), 0);
    assert_int_equal(apply_next(a, &t), 0);
    {
        char id[26];
        tid(id, 'u', 2);
        swc_store_txn_init(&t, 2, "1");
        assert_int_equal(swc_store_txn_remove(&t, K_TASK, id, 0), 0);
        assert_int_equal(apply_next(a, &t), 0);
    }

    turn(&f->loop);
    assert_non_null(a->bk_pin);

    /* entry 2: changes to records made after the start, and repeats */
    swc_store_txn_init(&t, 3, "1");
    task_update(&t, 15000, ST_COMPLETE);
    task_update(&t, 15002, ST_FAILED);
    task_update(&t, 15002, ST_COMPLETE);
    {
        char id[26], node[26];
        tid(id, 'u', 0);
        tid(svc3, 's', 1);
        tid(node, 'n', 2);
        assert_int_equal(txn_task(&t, A_UPDATE, id, svc3, node, 1, ST_RUNNING, ST_RUNNING, 0), 0);
        tid(id, 'u', 1);
        assert_int_equal(swc_store_txn_remove(&t, K_TASK, id, 0), 0);
    }
    assert_int_equal(apply_next(a, &t), 0);

    /* entry 3: a transaction that removes a not-yet-pinned task and then
     * conflicts: the undo puts the record back, at the end of its table */
    swc_store_txn_init(&t, 4, "1");
    task_remove(&t, 15003);
    task_create(&t, 't', 15004); /* exists: conflict */
    assert_int_equal(apply_next(a, &t), SWC_ECONFLICT);
    /* and the same for a pinned one */
    swc_store_txn_init(&t, 5, "1");
    task_remove(&t, 2);
    task_create(&t, 't', 3); /* exists: conflict */
    assert_int_equal(apply_next(a, &t), SWC_ECONFLICT);
    assert_int_equal(store_check(a), 0);

    /* the walk goes on; more writes land between its slices */
    int turns = 2;
    for (unsigned long n = 16000; a->bk_pin != NULL && n < 19900; n += 100) {
        turn(&f->loop);
        turns++;
        swc_store_txn_init(&t, 6, "1");
        task_update(&t, n, ST_SHUTDOWN);
        task_remove(&t, n + 1);
        task_update(&t, 15003, ST_SHUTDOWN); /* the record the undo put back */
        task_create(&t, 'v', n);
        assert_int_equal(apply_next(a, &t), 0);
    }
    /* pinning really was spread over turns, writes in between */
    assert_true(turns >= NTASKS / SLICE / 2);
    run_until(&f->loop, &res.done);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.code, 0);
    assert_null(a->bk_pin);

    assert_backup_is(f->path, at_start);
    assert_int_equal(store_check(a), 0);

    /* a second backup reuses the pin list and sees the store as it is now */
    struct swc_store *now = copy_of(a);
    memset(&res, 0, sizeof(res));
    assert_int_equal(swc_store_backup(a, &f->loop, f->path2, backup_cb, &res), 0);
    turn(&f->loop);
    swc_store_txn_init(&t, 7, "1");
    task_remove(&t, 19999);
    assert_int_equal(apply_next(a, &t), 0);
    run_until(&f->loop, &res.done);
    assert_int_equal(res.code, 0);
    assert_backup_is(f->path2, now);

    swc_store_destroy(now);
    swc_store_destroy(at_start);
    swc_store_destroy(a);
}

/* The store is replaced, backed up again or destroyed mid-walk: the walk
 * finishes at once on the tables it started on. */
static void replaced_or_destroyed_mid_walk(void **state)
{
    struct fixture *f = *state;
    struct swc_store *a, *at_start, *other, *at_second;
    struct swc_store_txn t;
    struct swc_buf buf;
    struct bk r1 = {0}, r2 = {0}, r3 = {0};

    assert_int_equal(swc_store_create(&a), 0);
    fill(a, NTASKS / 4);
    at_start = copy_of(a);
    a->bk_slice = 100;

    /* a raft snapshot installed while pinning */
    assert_int_equal(swc_store_create(&other), 0);
    fill(other, 300);
    swc_buf_init(&buf);
    assert_int_equal(swc_store_snapshot(other, &buf), 0);
    assert_int_equal(swc_store_backup(a, &f->loop, f->path, backup_cb, &r1), 0);
    turn(&f->loop);
    assert_non_null(a->bk_pin);
    swc_store_txn_init(&t, 1, "1");
    task_remove(&t, 4000);
    assert_int_equal(apply_next(a, &t), 0);
    assert_int_equal(swc_store_restore(a, buf.data, buf.len), 0);
    assert_null(a->bk_pin);
    run_until(&f->loop, &r1.done);
    assert_int_equal(r1.code, 0);
    assert_backup_is(f->path, at_start);

    /* a second backup started while the first still pins */
    struct swc_store *at_first = copy_of(a);
    assert_int_equal(swc_store_backup(a, &f->loop, f->path, backup_cb, &r2), 0);
    turn(&f->loop);
    swc_store_txn_init(&t, 2, "1");
    task_remove(&t, 10);
    assert_int_equal(apply_next(a, &t), 0);
    at_second = copy_of(a);
    assert_int_equal(swc_store_backup(a, &f->loop, f->path2, backup_cb, &r3), 0);
    swc_store_txn_init(&t, 3, "1");
    task_remove(&t, 11);
    assert_int_equal(apply_next(a, &t), 0);
    run_until(&f->loop, &r2.done);
    run_until(&f->loop, &r3.done);
    assert_int_equal(r2.code, 0);
    assert_int_equal(r3.code, 0);
    assert_backup_is(f->path, at_first);
    assert_backup_is(f->path2, at_second);

    /* the store destroyed while pinning: the backup still completes */
    struct swc_store *last = copy_of(a);
    memset(&r1, 0, sizeof(r1));
    assert_int_equal(swc_store_backup(a, &f->loop, f->path, backup_cb, &r1), 0);
    turn(&f->loop);
    swc_store_destroy(a);
    run_until(&f->loop, &r1.done);
    assert_int_equal(r1.code, 0);
    assert_backup_is(f->path, last);

    swc_buf_free(&buf);
    swc_store_destroy(last);
    swc_store_destroy(at_first);
    swc_store_destroy(at_second);
    swc_store_destroy(at_start);
    swc_store_destroy(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writes_between_slices, setup, teardown),
        cmocka_unit_test_setup_teardown(replaced_or_destroyed_mid_walk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
