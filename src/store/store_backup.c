/* SQLite backups of the store (`swarmc cluster backup` / `cluster restore`).
 *
 * A backup must be consistent at one raft index and must not stall the
 * loop. Blobs are immutable, so we only pin them (one reference each, with
 * the version and kind, 24 bytes an object, into a list the store keeps
 * between backups so its pages stay faulted in); a thread of libuv's pool
 * then reads id and name back out of each pinned blob and writes the SQLite
 * file while the store keeps changing.
 *
 * Pinning 100k objects in one go stalled the loop for 25-40 ms, so it is
 * spread over loop turns: an idle handle pins for at most PIN_SLICE_NS per
 * turn, walking each kind's table in insertion order with a cursor. The view
 * stays exactly the one at the start index thanks to a generation number:
 * starting a backup bumps the store's bk_gen, and a record whose bk_gen is
 * older is one that existed at the start, unchanged and not pinned yet.
 *   - The walk pins such records and stamps them with the new generation.
 *   - Records made after the start (creates, and the new record of every
 *     update, since an update replaces its record) carry the new generation
 *     from birth, so the walk skips them.
 *   - A record leaving the tables (update, remove, or the undo of a
 *     transaction) passes through swc_store_backup_unlinking first: if it is
 *     still unpinned, its blob (the object as it was at the start) is pinned
 *     there, and the cursor steps off it. A record put back by an undo is
 *     stamped already and stays skipped.
 * Every record present at the start is thus pinned exactly once, so the pin
 * list sized at the start never grows and pinning never fails. Replacing the
 * whole store (snapshot install, restore) or destroying it first finishes
 * the pinning at once (swc_store_backup_flush): rare, and correct. Once the
 * file is written, the pins are dropped a slice per turn as well, and only
 * then does the callback run.
 *
 * The file is built as PATH.tmp, synced and renamed, so PATH is always a
 * whole backup. Layout, readable with the sqlite3 tool: one table per kind
 * (nodes, services, tasks, clusters, secrets, configs, networks) with
 * columns id TEXT PRIMARY KEY, version INTEGER, name TEXT, data BLOB (the
 * encoded protobuf object), and meta(key TEXT PRIMARY KEY, value) holding
 * "format" (1) and "raft_index". This is the only file of the store that
 * includes sqlite3.h. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"

#define BACKUP_FORMAT 1
/* Longest pinning slice per loop turn, and how many records between clock
 * reads. */
#define PIN_SLICE_NS    1000000
#define PIN_CLOCK_EVERY 128

static const char *const tables[SWC_STORE_KIND_MAX] = {
    NULL, "nodes", "services", "tasks", "clusters", "secrets", "configs", "networks"};

struct item {
    struct swc_store_blob *blob;
    uint64_t version;
    int kind;
};

struct backup_job {
    uv_work_t work;
    uv_idle_t idle; /* pins a slice per loop turn */
    uv_loop_t *loop;
    swc_store_backup_cb cb;
    void *data;
    char *path, *tmp;
    struct item *items;
    size_t nitems, cap;
    struct swc_store *store; /* lender of items; NULL once it is destroyed */
    uint64_t index;
    struct swc_err err;
    /* pinning: the store being walked, the kind and the next record */
    struct swc_store *src;
    int kind;
    struct rec *cursor;
    uint32_t gen;
    bool idle_init;
};

static void job_free(struct backup_job *j)
{
    for (size_t i = 0; i < j->nitems; i++) {
        swc_store_blob_unref(j->items[i].blob);
    }
    if (j->store != NULL && j->store->bk_job == j) {
        /* give the pin list back for the next backup */
        j->store->bk_job = NULL;
        if (j->store->bk_items == NULL) {
            j->store->bk_items = j->items;
            j->store->bk_cap = j->cap;
            j->items = NULL;
        }
    }
    swc_free(j->items);
    swc_free(j->path);
    swc_free(j->tmp);
    swc_free(j);
}

static int sql_fail(struct swc_err *err, sqlite3 *db, const char *what)
{
    return swc_err_set(err, SWC_EIO, "store: backup: %s: %s", what,
                       db != NULL ? sqlite3_errmsg(db) : "cannot open");
}

static int exec(sqlite3 *db, const char *sql, struct swc_err *err)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return sql_fail(err, db, sql);
    }
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rv = fsync(fd);
    close(fd);
    return rv;
}

/* Runs in the thread pool: touches only the job, never the store. */
static void backup_work_cb(uv_work_t *req)
{
    struct backup_job *j = req->data;
    sqlite3 *db = NULL;
    sqlite3_stmt *st[SWC_STORE_KIND_MAX] = {0};
    char sql[256];
    int rv = 0;

    unlink(j->tmp);
    if (sqlite3_open_v2(j->tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rv = sql_fail(&j->err, db, j->tmp);
        goto out;
    }
    if ((rv = exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN", &j->err)) != 0 ||
        (rv = exec(db, "CREATE TABLE meta (key TEXT PRIMARY KEY, value)", &j->err)) != 0) {
        goto out;
    }
    snprintf(sql, sizeof(sql),
             "INSERT INTO meta VALUES ('format', %d), ('raft_index', %llu), "
             "('created_at', strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', 'now'))",
             BACKUP_FORMAT, (unsigned long long)j->index);
    if ((rv = exec(db, sql, &j->err)) != 0) {
        goto out;
    }
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE %s (id TEXT PRIMARY KEY, version INTEGER NOT NULL, name TEXT, "
                 "data BLOB NOT NULL)",
                 tables[k]);
        if ((rv = exec(db, sql, &j->err)) != 0) {
            goto out;
        }
        snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (?, ?, ?, ?)", tables[k]);
        if (sqlite3_prepare_v2(db, sql, -1, &st[k], NULL) != SQLITE_OK) {
            rv = sql_fail(&j->err, db, "prepare");
            goto out;
        }
    }
    for (size_t i = 0; i < j->nitems; i++) {
        const struct item *it = &j->items[i];
        sqlite3_stmt *s = st[it->kind];
        struct swc_store_fields f;
        /* the blob passed this check when it was applied */
        swc_store_wire_fields(it->kind, it->blob->data, it->blob->len, &f);
        sqlite3_bind_text(s, 1, f.id, (int)f.idlen, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)it->version);
        if (f.namelen > 0 && swc_store_kind_named(it->kind)) {
            sqlite3_bind_text(s, 3, f.name, (int)f.namelen, SQLITE_STATIC);
        } else {
            sqlite3_bind_null(s, 3);
        }
        sqlite3_bind_blob(s, 4, it->blob->data, (int)it->blob->len, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) {
            rv = sql_fail(&j->err, db, "insert");
            goto out;
        }
        sqlite3_reset(s);
    }
    if ((rv = exec(db, "COMMIT", &j->err)) != 0) {
        goto out;
    }
out:
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        sqlite3_finalize(st[k]);
    }
    if (db != NULL && sqlite3_close(db) != SQLITE_OK && rv == 0) {
        rv = swc_err_set(&j->err, SWC_EIO, "store: backup: close %s", j->tmp);
    }
    if (rv == 0) {
        char dir[4096];
        const char *slash = strrchr(j->path, '/');
        snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - j->path) : 1,
                 slash ? j->path : ".");
        if (dir[0] == '\0') {
            strcpy(dir, "/");
        }
        if (fsync_path(j->tmp, O_RDONLY) != 0 || rename(j->tmp, j->path) != 0) {
            rv = swc_err_set(&j->err, SWC_EIO, "store: backup: cannot write %s", j->path);
        } else {
            fsync_path(dir, O_RDONLY | O_DIRECTORY);
        }
    }
    if (rv != 0) {
        unlink(j->tmp);
    }
    j->err.code = rv;
}

static void job_closed_cb(uv_handle_t *h)
{
    job_free(h->data);
}

/* Report and free: the callback fires on the loop, never inside a call. */
static void job_finish(struct backup_job *j)
{
    j->cb(j->data, j->err.code, &j->err);
    if (j->idle_init) {
        uv_close((uv_handle_t *)&j->idle, job_closed_cb);
    } else {
        job_free(j);
    }
}

/* Drop the pins a slice per loop turn too (100k unrefs touch 100k blobs),
 * then report. */
static void release_idle_cb(uv_idle_t *h)
{
    struct backup_job *j = h->data;
    uint64_t t0 = uv_hrtime();
    while (j->nitems > 0) {
        swc_store_blob_unref(j->items[--j->nitems].blob);
        if (j->nitems % PIN_CLOCK_EVERY == 0 && uv_hrtime() - t0 >= PIN_SLICE_NS) {
            return;
        }
    }
    uv_idle_stop(h);
    job_finish(j);
}

static void release_soon(struct backup_job *j)
{
    uv_idle_start(&j->idle, release_idle_cb);
}

static void backup_after_cb(uv_work_t *req, int status)
{
    struct backup_job *j = req->data;
    if (status != 0 && j->err.code == 0) {
        swc_err_set(&j->err, SWC_ECANCELED, "store: backup: canceled");
    }
    release_soon(j);
}

static void pin(struct backup_job *j, struct rec *r)
{
    r->bk_gen = j->gen;
    if (j->nitems == j->cap) {
        /* cannot happen: each record of the start is pinned once */
        if (j->err.code == 0) {
            swc_err_set(&j->err, SWC_EINTERNAL, "store: backup: pin list overflow");
        }
        return;
    }
    struct item *it = &j->items[j->nitems++];
    it->kind = r->kind;
    it->version = r->version;
    it->blob = swc_store_blob_ref(r->blob);
}

/* Pin for at most budget_ns, or max records when not 0 (0 and 0: until
 * done); true when every kind is done. */
static bool pin_slice(struct backup_job *j, uint64_t budget_ns, uint32_t max)
{
    struct swc_store *s = j->src;
    uint64_t t0 = budget_ns != 0 ? uv_hrtime() : 0;
    uint32_t n = 0;
    while (j->kind < SWC_STORE_KIND_MAX) {
        struct rec *r = j->cursor;
        if (r == NULL) {
            if (++j->kind < SWC_STORE_KIND_MAX) {
                j->cursor = s->kinds[j->kind].ids->hh.next;
            }
            continue;
        }
        j->cursor = r->hh.next;
        if (r->bk_gen != j->gen) {
            pin(j, r);
        }
        n++;
        if (max != 0
                ? n >= max
                : budget_ns != 0 && n % PIN_CLOCK_EVERY == 0 && uv_hrtime() - t0 >= budget_ns) {
            return false;
        }
    }
    return true;
}

/* Pinning is over: hand the list to the thread pool. */
static void pin_done(struct backup_job *j)
{
    j->src->bk_pin = NULL;
    j->src = NULL;
    uv_idle_stop(&j->idle);
    /* once queued, j->err belongs to the thread until backup_after_cb */
    if (j->err.code == 0) {
        if (uv_queue_work(j->loop, &j->work, backup_work_cb, backup_after_cb) == 0) {
            return;
        }
        swc_err_set(&j->err, SWC_EIO, "store: backup: cannot queue the work");
    }
    release_soon(j);
}

static void pin_idle_cb(uv_idle_t *h)
{
    struct backup_job *j = h->data;
    if (pin_slice(j, PIN_SLICE_NS, j->src->bk_slice)) {
        pin_done(j);
    }
}

void swc_store_backup_unlinking(struct swc_store *s, struct rec *r)
{
    struct backup_job *j = s->bk_pin;
    if (j->cursor == r) {
        j->cursor = r->hh.next;
    }
    if (r->bk_gen != j->gen) {
        pin(j, r);
    }
}

void swc_store_backup_flush(struct swc_store *s)
{
    struct backup_job *j = s->bk_pin;
    if (j != NULL) {
        pin_slice(j, 0, 0);
        pin_done(j);
    }
}

void swc_store_backup_detach(struct swc_store *s)
{
    swc_store_backup_flush(s);
    struct backup_job *j = s->bk_job;
    if (j != NULL) {
        j->store = NULL;
        s->bk_job = NULL;
    }
}

int swc_store_backup(struct swc_store *s, uv_loop_t *loop, const char *path, swc_store_backup_cb cb,
                     void *data)
{
    struct backup_job *j;
    size_t total = 0;
    int rv = SWC_ENOMEM;

    if (path == NULL || path[0] == '\0' || cb == NULL) {
        return SWC_EINVAL;
    }
    /* one walk at a time: the generation marks belong to one backup */
    swc_store_backup_flush(s);
    j = swc_calloc(1, sizeof(*j));
    if (j == NULL) {
        return SWC_ENOMEM;
    }
    j->cb = cb;
    j->data = data;
    j->loop = loop;
    j->index = s->index;
    j->work.data = j;
    j->idle.data = j;
    j->path = swc_strdup(path);
    j->tmp = swc_malloc(strlen(path) + 5);
    if (j->path == NULL || j->tmp == NULL) {
        goto fail;
    }
    sprintf(j->tmp, "%s.tmp", path);
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        total += s->kinds[k].count;
    }
    /* borrow the store's pin list when it is free, growing it if needed */
    if (s->bk_job == NULL && s->bk_items != NULL) {
        j->items = s->bk_items;
        j->cap = s->bk_cap;
        s->bk_items = NULL;
        s->bk_cap = 0;
    }
    if (j->cap < total || j->items == NULL) {
        size_t cap = total + total / 8 + 16;
        struct item *ni = swc_realloc(j->items, cap * sizeof(*ni));
        if (ni == NULL) {
            goto fail;
        }
        j->items = ni;
        j->cap = cap;
    }
    /* neither can fail with a valid loop and callback */
    (void)uv_idle_init(loop, &j->idle);
    (void)uv_idle_start(&j->idle, pin_idle_cb);
    j->idle_init = true;
    if (s->bk_job == NULL) {
        s->bk_job = j;
        j->store = s;
    }
    /* the view: everything present now, at index s->index */
    j->gen = ++s->bk_gen;
    j->src = s;
    j->kind = 1;
    j->cursor = s->kinds[1].ids->hh.next;
    s->bk_pin = j;
    return 0;
fail:
    job_free(j);
    return rv;
}

int swc_store_restore_backup(struct swc_store *s, const char *path, struct swc_err *err)
{
    struct swc_store *tmp = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[128];
    int rv;
    int64_t format = 0, index = 0;

    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        if (s->kinds[k].count != 0) {
            return swc_err_set(err, SWC_EINVAL, "store: restore %s: the store is not empty", path);
        }
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rv = swc_err_set(err, SWC_EIO, "store: restore %s: %s", path,
                         db != NULL ? sqlite3_errmsg(db) : "cannot open");
        goto out;
    }
    if (sqlite3_prepare_v2(db, "SELECT key, value FROM meta", -1, &st, NULL) != SQLITE_OK) {
        rv = swc_err_set(err, SWC_EPROTO, "store: restore %s: not a swarmc backup (%s)", path,
                         sqlite3_errmsg(db));
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        if (key != NULL && strcmp(key, "format") == 0) {
            format = sqlite3_column_int64(st, 1);
        } else if (key != NULL && strcmp(key, "raft_index") == 0) {
            index = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (format != BACKUP_FORMAT) {
        rv = swc_err_set(err, SWC_EPROTO, "store: restore %s: unknown backup format %lld", path,
                         (long long)format);
        goto out;
    }
    if ((rv = swc_store_create(&tmp)) != 0) {
        swc_err_set(err, rv, "store: restore %s: out of memory", path);
        goto out;
    }
    tmp->index = (uint64_t)index;
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        snprintf(sql, sizeof(sql), "SELECT id, version, data FROM %s ORDER BY rowid", tables[k]);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
            rv = swc_err_set(err, SWC_EPROTO, "store: restore %s: %s", path, sqlite3_errmsg(db));
            goto out;
        }
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            const char *id = (const char *)sqlite3_column_text(st, 0);
            const uint8_t *blob = sqlite3_column_blob(st, 2);
            size_t bloblen = (size_t)sqlite3_column_bytes(st, 2);
            struct swc_store_fields f;
            struct rec *r;
            size_t idlen = id != NULL ? strlen(id) : 0;
            if (idlen == 0 || swc_store_wire_fields(k, blob, bloblen, &f) != 0 ||
                f.idlen != idlen || memcmp(f.id, id, idlen) != 0 ||
                swc_store_rec_find(tmp, k, id, idlen) != NULL ||
                swc_store_rec_find_name(tmp, k, f.name, f.namelen) != NULL) {
                rv = swc_err_set(err, SWC_EPROTO, "store: restore %s: bad %s row \"%s\"", path,
                                 swc_store_kind_name(k), id != NULL ? id : "");
                goto out;
            }
            rv = swc_store_rec_new(tmp, k, &f, (uint64_t)sqlite3_column_int64(st, 1),
                                   blob != NULL ? blob : (const uint8_t *)"", bloblen, &r);
            if (rv != 0) {
                swc_err_set(err, rv, "store: restore %s: out of memory", path);
                goto out;
            }
            swc_store_rec_link(tmp, r);
        }
        if (step != SQLITE_DONE) {
            rv = swc_err_set(err, SWC_EIO, "store: restore %s: %s", path, sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    swc_store_gc(tmp);
    swc_store_swap(s, tmp);
    rv = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    swc_store_destroy(tmp);
    return rv;
}
