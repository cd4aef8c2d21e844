/* Store snapshots and SQLite backups: round trips of 100k tasks object by
 * object, corrupted input rejected with the store unchanged, backups that
 * are consistent while the store keeps changing and readable with SQLite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store_int.h" /* swc_store_checksum, to forge well-summed bad input */
#include "test_store_util.h"

#define NTASKS 100000

static void fill(struct swc_store *s, int ntasks, int nservices)
{
    assert_int_equal(fill_store(s, ntasks, nservices), 0);
}

static int restores;
static void restore_cb(void *data, const struct swc_store_event *e)
{
    (void)data;
    if (e->type == SWC_STORE_EV_RESTORE) {
        restores++;
    }
}

static void snapshot_round_trip(void **state)
{
    (void)state;
    struct swc_store *a, *b;
    struct swc_buf buf;
    struct swc_store_watch w = {.cb = restore_cb};
    swc_buf_init(&buf);
    assert_int_equal(swc_store_create(&a), 0);
    assert_int_equal(swc_store_create(&b), 0);
    fill(a, NTASKS, 10);
    assert_int_equal(swc_store_count(a, K_TASK), NTASKS);

    assert_int_equal(swc_store_snapshot(a, &buf), 0);
    uint8_t *mem = buf.data;
    size_t len = buf.len;
    /* the buffer is reused, not reallocated */
    assert_int_equal(swc_store_snapshot(a, &buf), 0);
    assert_ptr_equal(buf.data, mem);
    assert_int_equal(buf.len, len);

    swc_store_watch(b, &w);
    restores = 0;
    assert_int_equal(swc_store_restore(b, buf.data, buf.len), 0);
    assert_int_equal(restores, 1);
    assert_true(store_equal(a, b));
    assert_true(store_equal(b, a));
    /* indexes and counts rebuilt */
    struct swc_store_counts ca, cb;
    char svc[26];
    tid(svc, 's', 3);
    swc_store_service_counts(a, svc, &ca);
    swc_store_service_counts(b, svc, &cb);
    assert_memory_equal(&ca, &cb, sizeof(ca));
    assert_int_equal(cb.total, NTASKS / 10);
    struct swc_store_iter it;
    swc_store_iter_service_tasks(b, svc, &it);
    assert_int_equal(iter_count(&it), NTASKS / 10);
    struct swc_store_obj o;
    assert_int_equal(swc_store_find_by_name(b, K_SERVICE, "svc-3", &o), 0);
    assert_string_equal(o.id, svc);
    swc_store_unwatch(b, &w);

    /* a small one gets the full index check */
    struct swc_store *c, *d;
    assert_int_equal(swc_store_create(&c), 0);
    assert_int_equal(swc_store_create(&d), 0);
    fill(c, 3000, 7);
    assert_int_equal(swc_store_snapshot(c, &buf), 0);
    assert_int_equal(swc_store_restore(d, buf.data, buf.len), 0);
    assert_true(store_equal(c, d));
    assert_int_equal(store_check(d), 0);
    swc_store_destroy(c);
    swc_store_destroy(d);
    swc_store_destroy(a);
    swc_store_destroy(b);
    swc_buf_free(&buf);
}

static void corrupted_snapshot(void **state)
{
    (void)state;
    struct swc_store *a, *b, *copy;
    struct swc_buf buf, keep;
    swc_buf_init(&buf);
    swc_buf_init(&keep);
    assert_int_equal(swc_store_create(&a), 0);
    assert_int_equal(swc_store_create(&b), 0);
    assert_int_equal(swc_store_create(&copy), 0);
    fill(a, 2000, 5);
    fill(b, 1000, 3); /* b's own contents must survive every bad restore */
    assert_int_equal(swc_store_snapshot(b, &keep), 0);
    assert_int_equal(swc_store_restore(copy, keep.data, keep.len), 0);
    assert_int_equal(swc_store_snapshot(a, &buf), 0);

    /* flipped bits anywhere */
    for (size_t pos = 0; pos < buf.len; pos += buf.len / 37 + 1) {
        buf.data[pos] ^= 0x10;
        assert_int_equal(swc_store_restore(b, buf.data, buf.len), SWC_EPROTO);
        buf.data[pos] ^= 0x10;
    }
    /* truncated */
    assert_int_equal(swc_store_restore(b, buf.data, buf.len - 1), SWC_EPROTO);
    assert_int_equal(swc_store_restore(b, buf.data, buf.len / 2), SWC_EPROTO);
    assert_int_equal(swc_store_restore(b, buf.data, 10), SWC_EPROTO);
    /* correct checksum but bad frames: kind, id length, blob length, count */
    {
        size_t n = buf.len, offs[] = {24, 25, 27, 23};
        uint8_t vals[] = {99, 3, 0xff, 0x05};
        for (size_t i = 0; i < 4; i++) {
            uint8_t old = buf.data[offs[i]];
            buf.data[offs[i]] = vals[i];
            swc_put_u64(buf.data + n - 8, swc_store_checksum(buf.data, n - 8));
            assert_int_equal(swc_store_restore(b, buf.data, n), SWC_EPROTO);
            buf.data[offs[i]] = old;
        }
        swc_put_u64(buf.data + n - 8, swc_store_checksum(buf.data, n - 8));
        assert_int_equal(swc_store_restore(copy, buf.data, n), 0); /* repaired: fine */
        assert_true(store_equal(copy, a));
        assert_int_equal(swc_store_restore(copy, keep.data, keep.len), 0);
    }
    assert_true(store_equal(b, copy));
    assert_int_equal(store_check(b), 0);

    /* allocation failures during restore also leave the store unchanged */
    assert_int_equal(swc_store_snapshot(a, &buf), 0);
    int failures = 0;
    for (long n = 1; n < 100000; n += 997) {
        swc_alloc_fail_after(n);
        int rv = swc_store_restore(b, buf.data, buf.len);
        swc_alloc_fail_after(0);
        if (rv == 0) {
            break;
        }
        assert_int_equal(rv, SWC_ENOMEM);
        assert_true(store_equal(b, copy));
        failures++;
    }
    assert_true(failures > 2);
    assert_true(store_equal(a, b));
    swc_store_destroy(a);
    swc_store_destroy(b);
    swc_store_destroy(copy);
    swc_buf_free(&buf);
    swc_buf_free(&keep);
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
    /* deadline: 30 s of loop time */
    uint64_t end = uv_now(loop) + 30000;
    while (!*flag && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
}

static void backup_round_trip(void **state)
{
    (void)state;
    struct swc_store *a, *b, *at_backup;
    struct swc_buf buf;
    uv_loop_t loop;
    char dir[] = "/tmp/swc_store_testXXXXXX", path[256];
    struct bk res = {0};
    struct swc_err err;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/backup.db", dir);
    assert_int_equal(uv_loop_init(&loop), 0);
    swc_buf_init(&buf);
    assert_int_equal(swc_store_create(&a), 0);
    assert_int_equal(swc_store_create(&b), 0);
    assert_int_equal(swc_store_create(&at_backup), 0);
    fill(a, 20000, 10);
    assert_int_equal(swc_store_snapshot(a, &buf), 0);
    assert_int_equal(swc_store_restore(at_backup, buf.data, buf.len), 0);

    assert_int_equal(swc_store_backup(a, &loop, path, backup_cb, &res), 0);
    assert_int_equal(res.done, 0); /* never from inside the call */
    /* the store keeps changing while the backup is written */
    struct swc_store_txn t;
    char id[26];
    swc_store_txn_init(&t, 1, "1");
    for (int i = 0; i < 500; i++) {
        tid(id, 't', (unsigned long)i);
        swc_store_txn_remove(&t, K_TASK, id, 0);
    }
    assert_int_equal(apply1(a, swc_store_index(a) + 1, &t, NULL), 0);
    run_until(&loop, &res.done);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.code, 0);

    /* readable with SQLite: tables and rows are there */
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    const char *want[] = {"meta",     "nodes",   "services", "tasks",
                          "clusters", "secrets", "configs",  "networks"};
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT count(*) FROM sqlite_master WHERE type = "
                                            "'table' AND name = ?",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, want[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 1);
        sqlite3_finalize(st);
    }
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM tasks", -1, &st, NULL), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 20000);
    sqlite3_finalize(st);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT id FROM services WHERE name = 'svc-4'", -1, &st, NULL), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char svc[26];
    tid(svc, 's', 4);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), svc);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* restore: identical to the store as it was when the backup started */
    assert_int_equal(swc_store_restore_backup(b, path, &err), 0);
    assert_true(store_equal(b, at_backup));
    assert_true(store_equal(at_backup, b));
    assert_int_equal(store_check(b), 0);
    /* only into an empty store */
    assert_int_equal(swc_store_restore_backup(b, path, &err), SWC_EINVAL);

    /* not a backup */
    struct swc_store *e;
    assert_int_equal(swc_store_create(&e), 0);
    char junk[256];
    snprintf(junk, sizeof(junk), "%s/junk.db", dir);
    FILE *f = fopen(junk, "w");
    fputs("this is not sqlite", f);
    fclose(f);
    assert_int_not_equal(swc_store_restore_backup(e, junk, &err), 0);
    assert_int_equal(swc_store_count(e, K_TASK), 0);
    assert_int_equal(swc_store_restore_backup(e, "/nonexistent/x.db", &err), SWC_EIO);

    /* a backup to an unwritable place reports EIO through the callback */
    memset(&res, 0, sizeof(res));
    assert_int_equal(swc_store_backup(a, &loop, "/nonexistent/dir/b.db", backup_cb, &res), 0);
    run_until(&loop, &res.done);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.code, SWC_EIO);
    assert_non_null(strstr(res.msg, "backup"));

    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(path);
    unlink(junk);
    rmdir(dir);
    swc_store_destroy(e);
    swc_store_destroy(a);
    swc_store_destroy(b);
    swc_store_destroy(at_backup);
    swc_buf_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(snapshot_round_trip),
        cmocka_unit_test(corrupted_snapshot),
        cmocka_unit_test(backup_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
