/* The replicated in-memory store (DESIGN §5): the manager's hot path.
 *
 * Every manager applies every committed raft entry to its own store. Per
 * object kind (Swarmc__ObjectKind) a hash table maps id -> record; a record
 * holds the object's encoded protobuf bytes as an immutable, reference-counted
 * blob, its version and the fields the indexes need. Secondary indexes make
 * "tasks of service X", "tasks on node N", "tasks of slot (X, 3)" and "tasks
 * in state S" cost O(result), and names are unique per kind. Per-service task
 * counts (desired / running / completed) are kept up to date on apply so
 * listing services never scans tasks.
 *
 * Writes: a writer builds a transaction (swc_store_txn_*), the raft adapter
 * packs the transactions of one loop turn into one StoreBatch entry, and every
 * manager calls swc_store_apply_entry() with it once committed. Each
 * transaction applies atomically: all its actions or none.
 *
 * Version rules (checked in action order, against the store as changed by the
 * earlier actions of the same transaction):
 *   - create: the id must not exist; expected_version is ignored.
 *   - update / remove: the id must exist; expected_version must equal the
 *     stored version, or be 0 for an unconditional write.
 *   - create / update: the object's id field must equal the action's id and
 *     its name (spec.annotations.name; every kind but tasks) must not be held
 *     by another object of the kind. Empty names are not indexed. A name freed
 *     by a remove or rename is free for the following actions.
 * A failed check rolls the whole transaction back and reports a conflict
 * whose message names the kind, the id and the reason. An object's version is
 * the raft index of the entry that last wrote it; the stored blob is kept as
 * proposed, and the record's version is authoritative: swc_store_decode()
 * writes it into meta.version of the object it returns. Apply reads only the
 * fields it indexes straight from the wire format (it never decodes a whole
 * object); an object whose wire structure around those fields is broken is
 * refused with SWC_EINVAL.
 *
 * Threading: one thread (the manager's loop) owns the store. Borrowed
 * pointers (struct swc_store_obj fields, iterators) stay valid until the next
 * apply or restore; take a blob reference to keep bytes longer. Only backups
 * read pinned blobs from libuv's thread pool.
 *
 * Events: after each applied entry every watcher gets, in order, one event
 * per changed object (old and new blob) and then one COMMIT event. A watcher
 * added at any time (even from inside an event callback) receives exactly the
 * events of entries applied after it was added, so reading the store and then
 * adding a watcher in the same loop turn (swc_store_view_and_watch) misses
 * nothing and sees nothing twice. */
#ifndef SWC_STORE_STORE_H
#define SWC_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "api/raft.pb-c.h"
#include "api/types.pb-c.h"
#include "base/buf.h"
#include "base/err.h"

#define SWC_STORE_KIND_MAX 8   /* kinds are 1..7 (Swarmc__ObjectKind) */
#define SWC_STORE_ID_MAX   64  /* ids are 1..64 bytes */
#define SWC_STORE_NAME_MAX 255 /* names are 0..255 bytes */

struct swc_store;

/* An immutable encoded object. The store and each holder of a reference keep
 * it alive; the bytes never change. Reference counts are touched on the
 * store's thread only. */
struct swc_store_blob {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
};

/* Take one more reference to blob; returns blob. */
struct swc_store_blob *swc_store_blob_ref(struct swc_store_blob *blob);
/* Drop a reference; frees the blob with the last one. NULL is fine. */
void swc_store_blob_unref(struct swc_store_blob *blob);

/* A borrowed view of one stored object, valid until the next apply/restore. */
struct swc_store_obj {
    int kind; /* SWARMC__OBJECT_KIND__OBJECT_KIND_* */
    const char *id;
    const char *name;            /* "" when the kind or object has no name */
    uint64_t version;            /* raft index of the last write */
    struct swc_store_blob *blob; /* borrowed; swc_store_blob_ref to keep */
    /* Task fields (zero / "" for other kinds). */
    const char *service_id;
    const char *node_id;
    uint64_t slot;
    int desired_state; /* SWARMC__TASK_STATE__* */
    int state;         /* status.state */
};

/* Task counts of one service, kept on apply. desired: tasks whose
 * desired_state <= RUNNING; running: status.state == RUNNING and desired ==
 * RUNNING; completed: status.state == COMPLETE. */
struct swc_store_counts {
    uint64_t desired;
    uint64_t running;
    uint64_t completed;
    uint64_t total;
};

/* --- lifecycle ----------------------------------------------------------- */

/* Create an empty store in *out; 0 or SWC_ENOMEM. */
int swc_store_create(struct swc_store **out);
/* Free the store and its records (pinned blobs live on with their holders).
 * Watchers must be gone or are simply forgotten. */
void swc_store_destroy(struct swc_store *s);
/* Raft index of the last applied entry (or restored snapshot). */
uint64_t swc_store_index(const struct swc_store *s);
/* Number of objects of a kind. */
size_t swc_store_count(const struct swc_store *s, int kind);

/* --- reads --------------------------------------------------------------- */

/* Look up an object by id; 0 (and *out filled) or SWC_ENOENT. */
int swc_store_get(const struct swc_store *s, int kind, const char *id, struct swc_store_obj *out);
/* Look up an object by exact name; 0 or SWC_ENOENT. */
int swc_store_find_by_name(const struct swc_store *s, int kind, const char *name,
                           struct swc_store_obj *out);
/* Find the one object whose id starts with prefix (the CLI's short ids):
 * 0, SWC_ENOENT (none) or SWC_EEXIST (ambiguous; *nmatch says how many).
 * An exact id match wins over longer ids. Scans the kind: O(objects). */
int swc_store_find_by_prefix(const struct swc_store *s, int kind, const char *prefix,
                             struct swc_store_obj *out, size_t *nmatch);
/* Task counts of a service (zeros for an unknown service). */
void swc_store_service_counts(const struct swc_store *s, const char *service_id,
                              struct swc_store_counts *out);

/* Decode an object into a newly allocated protobuf-c message of its kind
 * (Swarmc__Node *, Swarmc__Task *, ...) with meta.version set to the stored
 * version; free it with swc_store_free_decoded. Returns NULL when protobuf-c
 * fails, which for bytes that passed apply's checks means out of memory
 * (*err = SWC_ENOMEM when err is not NULL). */
ProtobufCMessage *swc_store_decode(const struct swc_store_obj *obj, int *err);
/* Look up by id and decode; NULL with *err = SWC_ENOENT when absent. */
ProtobufCMessage *swc_store_get_decoded(const struct swc_store *s, int kind, const char *id,
                                        int *err);
/* Free a message from swc_store_decode / swc_store_get_decoded (NULL is fine). */
void swc_store_free_decoded(ProtobufCMessage *msg);
/* The protobuf-c descriptor of a kind's object message, or NULL. */
const ProtobufCMessageDescriptor *swc_store_kind_descriptor(int kind);
/* "node", "service", "task", ... ("?" for an unknown kind). */
const char *swc_store_kind_name(int kind);

/* Iterators: no allocation, O(result). Invalid after the next apply/restore;
 * do not write to the store while iterating. */
struct swc_store_iter {
    const struct swc_store *s;
    void *next;
    int link; /* which list the iterator follows (private) */
    int kind;
    uint64_t remaining; /* hint: objects left (exact for lists) */
};

/* All objects of a kind, in insertion order. */
void swc_store_iter_kind(const struct swc_store *s, int kind, struct swc_store_iter *it);
/* Tasks of a service. */
void swc_store_iter_service_tasks(const struct swc_store *s, const char *service_id,
                                  struct swc_store_iter *it);
/* Tasks on a node. */
void swc_store_iter_node_tasks(const struct swc_store *s, const char *node_id,
                               struct swc_store_iter *it);
/* Tasks of one slot of a service (slot 0: the service's global tasks). */
void swc_store_iter_slot_tasks(const struct swc_store *s, const char *service_id, uint64_t slot,
                               struct swc_store_iter *it);
/* Tasks whose desired_state is state. */
void swc_store_iter_desired_state(const struct swc_store *s, int state, struct swc_store_iter *it);
/* Tasks whose status.state is state. */
void swc_store_iter_state(const struct swc_store *s, int state, struct swc_store_iter *it);
/* Next object: true and *out filled, or false at the end. */
bool swc_store_iter_next(struct swc_store_iter *it, struct swc_store_obj *out);

/* --- transactions (writer side) ----------------------------------------- */

/* A transaction being built; owns copies of everything added. */
struct swc_store_txn {
    Swarmc__StoreTransaction msg;
    size_t cap;
    size_t bytes; /* encoded size of the objects so far (to split bulk work) */
};

/* Start an empty transaction. proposer is copied; 0 or SWC_ENOMEM. */
int swc_store_txn_init(struct swc_store_txn *t, uint64_t proposal_id, const char *proposer);
/* Free everything the transaction owns; it can be initialised again. */
void swc_store_txn_free(struct swc_store_txn *t);
/* Add an action on an already encoded object (copied; NULL/0 for remove).
 * action is SWARMC__STORE_ACTION_KIND__*; 0, SWC_EINVAL or SWC_ENOMEM. */
int swc_store_txn_add_encoded(struct swc_store_txn *t, int action, int kind, const char *id,
                              uint64_t expected_version, const uint8_t *data, size_t len);
/* Add a create of obj (a Swarmc__Node, Swarmc__Task, ... of kind); the id is
 * taken from obj. 0, SWC_EINVAL or SWC_ENOMEM. */
int swc_store_txn_create(struct swc_store_txn *t, int kind, const ProtobufCMessage *obj);
/* Add an update of obj expecting expected_version (0: unconditional). */
int swc_store_txn_update(struct swc_store_txn *t, int kind, const ProtobufCMessage *obj,
                         uint64_t expected_version);
/* Add a remove of (kind, id) expecting expected_version (0: unconditional). */
int swc_store_txn_remove(struct swc_store_txn *t, int kind, const char *id,
                         uint64_t expected_version);
/* Append the encoded StoreTransaction to out (out is not reset). */
int swc_store_txn_encode(const struct swc_store_txn *t, struct swc_buf *out);
/* Append one encoded StoreTransaction to an encoded StoreBatch being built in
 * batch (a batch is the concatenation of its transactions, each framed as
 * field 1); 0 or SWC_ENOMEM. */
int swc_store_batch_append(struct swc_buf *batch, const uint8_t *txn, size_t len);

/* --- apply (raft FSM side) ----------------------------------------------- */

/* The outcome of one transaction: code 0 (applied), SWC_ECONFLICT (version or
 * name conflict, nothing applied) or SWC_EINVAL (malformed action), with a
 * message naming the kind, id and reason ("" on success). proposer points
 * into the entry and is valid during the call. */
typedef void (*swc_store_result_cb)(void *data, uint64_t raft_index, uint64_t proposal_id,
                                    const char *proposer, int code, const char *msg);

/* Apply one committed entry (an encoded StoreBatch) at raft_index: each
 * transaction atomically, in order; then results go to result_cb (may be
 * NULL) and events to watchers. Returns 0 when the entry was applied (even if
 * some transactions conflicted), SWC_EPROTO when it does not parse (nothing
 * applied, the index still advances) or SWC_ENOMEM (the store is left exactly
 * as before the call, no results, no events: the caller must treat this as
 * fatal or retry, since other replicas applied the entry). */
int swc_store_apply_entry(struct swc_store *s, uint64_t raft_index, const uint8_t *data, size_t len,
                          swc_store_result_cb result_cb, void *cb_data);

/* --- events ---------------------------------------------------------------- */

enum swc_store_event_type {
    SWC_STORE_EV_CREATE = 1,
    SWC_STORE_EV_UPDATE,
    SWC_STORE_EV_REMOVE,
    SWC_STORE_EV_COMMIT,  /* end of one applied entry */
    SWC_STORE_EV_RESTORE, /* the whole store was replaced (snapshot install):
                             watchers must re-read everything */
};

/* One event; blobs are borrowed for the duration of the callback (take a
 * reference to keep them). old_blob is NULL for create, new_blob for remove. */
struct swc_store_event {
    int type;
    int kind;
    const char *id;
    struct swc_store_blob *old_blob;
    struct swc_store_blob *new_blob;
    uint64_t version; /* new version (create/update), old version (remove) */
    uint64_t index;   /* raft index of the entry */
};

typedef void (*swc_store_watch_cb)(void *data, const struct swc_store_event *ev);

/* A subscription, owned by the caller (no allocation). Zero it, then fill
 * cb, data and kinds (bit (1 << kind) per wanted kind, 0 = all) before
 * swc_store_watch. COMMIT and RESTORE events always go to every watcher. The
 * memory may be freed right after swc_store_unwatch, even inside a callback. */
struct swc_store_watch {
    swc_store_watch_cb cb;
    void *data;
    uint32_t kinds;
    /* private */
    struct swc_store_watch *prev, *next;
    uint64_t from_seq;
    bool active;
};

/* Subscribe w: it receives the events of every entry applied from now on.
 * Safe from inside an event callback. */
void swc_store_watch(struct swc_store *s, struct swc_store_watch *w);
/* Unsubscribe w (no more callbacks after this returns); safe from inside an
 * event callback, including w's own. */
void swc_store_unwatch(struct swc_store *s, struct swc_store_watch *w);
/* Call view(data, s) to read a consistent view, then subscribe w in the same
 * loop turn: w gets exactly the changes after that view. */
void swc_store_view_and_watch(struct swc_store *s, void (*view)(void *data, struct swc_store *s),
                              void *data, struct swc_store_watch *w);

/* --- raft snapshots ------------------------------------------------------ */

/* Serialise every record into buf (buf->len is reset to 0 first; its memory
 * is kept and grown as needed so a reused buffer stays pre-faulted).
 * 0 or SWC_ENOMEM. */
int swc_store_snapshot(const struct swc_store *s, struct swc_buf *buf);
/* Replace the store's contents with a snapshot (index included) and send
 * RESTORE to watchers. Corrupted or truncated input gives SWC_EPROTO and
 * SWC_ENOMEM gives SWC_ENOMEM, both leaving the store unchanged. */
int swc_store_restore(struct swc_store *s, const uint8_t *data, size_t len);

/* --- SQLite backups (store_backup.c) ------------------------------------- */

/* Called on the loop when a backup is done: 0, SWC_EIO (with a message in
 * err) or SWC_ENOMEM. */
typedef void (*swc_store_backup_cb)(void *data, int code, const struct swc_err *err);

/* Write a consistent SQLite backup of the current contents to path, off the
 * loop (libuv thread pool): one table per kind (id TEXT PRIMARY KEY, version
 * INTEGER, name TEXT, data BLOB) and a meta table (key TEXT, value). The file
 * is written as path + ".tmp" and renamed. Returns 0 (cb fires exactly once,
 * later, on loop) or an error (no callback). */
int swc_store_backup(struct swc_store *s, uv_loop_t *loop, const char *path, swc_store_backup_cb cb,
                     void *data);
/* Load a backup into an empty store (start-up; blocks). 0, SWC_EINVAL (store
 * not empty), SWC_EIO (cannot read), SWC_EPROTO (not a valid backup) or
 * SWC_ENOMEM; err gets a message. The store stays empty on failure. */
int swc_store_restore_backup(struct swc_store *s, const char *path, struct swc_err *err);

#endif
