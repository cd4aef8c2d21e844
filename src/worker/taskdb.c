/* The worker's task DB (see taskdb.h).
 *
 * One table: tasks(id, task, status, container_id). The task column holds the
 * encoded Swarmc__Task as assigned; status holds the encoded last observed
 * Swarmc__TaskStatus (written separately, so a status write does not re-encode
 * the whole spec); loading overlays the status on the task. Statements are
 * prepared once. Writes are single statements in autocommit mode; with WAL
 * and synchronous=NORMAL each costs a few tens of microseconds and no fsync. */
#include "worker/taskdb.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

struct swc_taskdb {
    sqlite3 *db;
    sqlite3_stmt *put_task, *put_status, *del, *load, *count;
    struct swc_err err;
};

static const char *schema = "PRAGMA journal_mode=WAL;"
                            "PRAGMA synchronous=NORMAL;"
                            "CREATE TABLE IF NOT EXISTS tasks ("
                            " id TEXT PRIMARY KEY,"
                            " task BLOB NOT NULL,"
                            " status BLOB,"
                            " container_id TEXT NOT NULL DEFAULT '');";

static int db_fail(struct swc_taskdb *t, const char *what)
{
    return swc_err_set(&t->err, SWC_EIO, "task DB: %s: %s", what, sqlite3_errmsg(t->db));
}

int swc_taskdb_open(struct swc_taskdb **out, const char *path, struct swc_err *err)
{
    struct swc_taskdb *t = swc_calloc(1, sizeof(*t));
    int rc;
    if (t == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "task DB: out of memory");
    }
    rc = sqlite3_open_v2(path, &t->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        swc_err_set(err, SWC_EIO, "task DB: open %s: %s", path,
                    t->db ? sqlite3_errmsg(t->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(t->db, 1000);
    if (sqlite3_exec(t->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        swc_err_set(err, SWC_EIO, "task DB: %s: schema: %s", path, sqlite3_errmsg(t->db));
        goto fail;
    }
#define PREP(stmt, sql)                                                                            \
    if (sqlite3_prepare_v2(t->db, sql, -1, &t->stmt, NULL) != SQLITE_OK) {                         \
        swc_err_set(err, SWC_EIO, "task DB: %s: prepare: %s", path, sqlite3_errmsg(t->db));        \
        goto fail;                                                                                 \
    }
    PREP(put_task, "INSERT INTO tasks(id, task, status, container_id) VALUES(?1, ?2, NULL, '')"
                   " ON CONFLICT(id) DO UPDATE SET task = ?2");
    PREP(put_status, "UPDATE tasks SET status = ?2, container_id = ?3 WHERE id = ?1");
    PREP(del, "DELETE FROM tasks WHERE id = ?1");
    PREP(load, "SELECT id, task, status, container_id FROM tasks ORDER BY id");
    PREP(count, "SELECT count(*) FROM tasks");
#undef PREP
    *out = t;
    return 0;
fail:
    swc_taskdb_close(t);
    return err->code;
}

void swc_taskdb_close(struct swc_taskdb *t)
{
    if (t == NULL) {
        return;
    }
    sqlite3_finalize(t->put_task);
    sqlite3_finalize(t->put_status);
    sqlite3_finalize(t->del);
    sqlite3_finalize(t->load);
    sqlite3_finalize(t->count);
    sqlite3_close(t->db);
    swc_free(t);
}

static int run(struct swc_taskdb *t, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        return db_fail(t, what);
    }
    return 0;
}

int swc_taskdb_put_task(struct swc_taskdb *t, const Swarmc__Task *task)
{
    size_t n = swarmc__task__get_packed_size(task);
    uint8_t *buf = swc_malloc(n ? n : 1);
    int rc;
    if (buf == NULL) {
        return swc_err_set(&t->err, SWC_ENOMEM, "task DB: out of memory");
    }
    swarmc__task__pack(task, buf);
    sqlite3_bind_text(t->put_task, 1, task->id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(t->put_task, 2, buf, (int)n, SQLITE_STATIC);
    rc = run(t, t->put_task, "store task");
    swc_free(buf);
    if (rc == 0 && task->status != NULL) {
        rc = swc_taskdb_put_status(t, task->id, task->status, task->status->container_id);
    }
    return rc;
}

int swc_taskdb_put_status(struct swc_taskdb *t, const char *task_id,
                          const Swarmc__TaskStatus *status, const char *container_id)
{
    size_t n = swarmc__task_status__get_packed_size(status);
    uint8_t *buf = swc_malloc(n ? n : 1);
    int rc;
    if (buf == NULL) {
        return swc_err_set(&t->err, SWC_ENOMEM, "task DB: out of memory");
    }
    swarmc__task_status__pack(status, buf);
    sqlite3_bind_text(t->put_status, 1, task_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(t->put_status, 2, buf, (int)n, SQLITE_STATIC);
    sqlite3_bind_text(t->put_status, 3, container_id ? container_id : "", -1, SQLITE_STATIC);
    rc = run(t, t->put_status, "store status");
    swc_free(buf);
    return rc;
}

int swc_taskdb_delete(struct swc_taskdb *t, const char *task_id)
{
    sqlite3_bind_text(t->del, 1, task_id, -1, SQLITE_STATIC);
    return run(t, t->del, "delete task");
}

int swc_taskdb_load(struct swc_taskdb *t, swc_taskdb_each_cb cb, void *data)
{
    int rc, result = 0;
    while ((rc = sqlite3_step(t->load)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(t->load, 0);
        const void *tb = sqlite3_column_blob(t->load, 1);
        int tn = sqlite3_column_bytes(t->load, 1);
        const void *sb = sqlite3_column_blob(t->load, 2);
        int sn = sqlite3_column_bytes(t->load, 2);
        const char *cid = (const char *)sqlite3_column_text(t->load, 3);
        Swarmc__Task *task = swarmc__task__unpack(&swc_pb_allocator, (size_t)tn, tb);
        Swarmc__TaskStatus *st = NULL;
        if (task == NULL) {
            result = swc_err_set(&t->err, SWC_EPROTO, "task DB: task %s: undecodable row skipped",
                                 id ? id : "?");
            continue;
        }
        if (sb != NULL) {
            st = swarmc__task_status__unpack(&swc_pb_allocator, (size_t)sn, sb);
            if (st == NULL) {
                result = swc_err_set(&t->err, SWC_EPROTO,
                                     "task DB: task %s: undecodable status ignored", task->id);
            } else {
                if (task->status != NULL) {
                    swarmc__task_status__free_unpacked(task->status, &swc_pb_allocator);
                }
                task->status = st;
            }
        }
        if (cb(data, task, cid ? cid : "") != 0) {
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        result = db_fail(t, "load tasks");
    }
    sqlite3_reset(t->load);
    return result;
}

long swc_taskdb_count(struct swc_taskdb *t)
{
    long n = -1;
    if (sqlite3_step(t->count) == SQLITE_ROW) {
        n = (long)sqlite3_column_int64(t->count, 0);
    }
    sqlite3_reset(t->count);
    return n;
}

const char *swc_taskdb_errmsg(const struct swc_taskdb *t)
{
    return swc_err_msg(&t->err);
}
