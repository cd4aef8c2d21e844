/* Private structures of the store, shared by its files.
 *
 * uthash configuration: every table starts with a sentinel element whose key
 * is empty (no lookup ever uses an empty key), so tables are created once at
 * store creation and never freed by a delete. With uthash_fatal a no-op, the
 * only other allocation an add makes (growing the bucket array) simply does
 * not happen when memory is short, so adding to a table cannot fail. That is
 * what lets apply undo any change without allocating. Table creation itself
 * lives in store_hash.c, compiled with HASH_NONFATAL_OOM to report failure. */
#ifndef SWC_STORE_STORE_INT_H
#define SWC_STORE_STORE_INT_H

#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

/* Keys are short (ids, names, 16-byte slot keys): hash 8 bytes at a time
 * with a multiply-xorshift mix, which also spreads into the low bits uthash
 * uses to pick a bucket. */
static inline unsigned swc_store_hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len, w;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, p, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
    return (unsigned)h;
}
#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = swc_store_hash((keyptr), (keylen)))

#define uthash_malloc(sz)    swc_malloc(sz)
#define uthash_free(ptr, sz) swc_free(ptr)
#ifndef HASH_NONFATAL_OOM
#define uthash_fatal(msg) ((void)0) /* growth skipped; table stays valid */
#endif
#include <uthash.h>

#include "store/store.h"

struct rec;
struct group;

/* An intrusive doubly linked list of records. */
struct link {
    struct rec *prev, *next;
};
struct list {
    struct rec *head, *tail;
    uint64_t n;
};

/* Task state lists: the 14 known states, plus one for any other value. */
#define NSTATES 15

enum { LINK_KIND, LINK_SVC, LINK_NODE, LINK_SLOT, LINK_DESIRED, LINK_STATE };

/* A record: one stored object. Task records carry index links; records of
 * named kinds carry a handle in the name table. id (and name) live inline. */
struct rec {
    UT_hash_handle hh; /* id table of the kind */
    struct swc_store_blob *blob;
    uint64_t version;
    uint8_t kind;
    uint8_t idlen;
    uint8_t namelen;
    /* backup generation: equal to the store's bk_gen when the running
     * backup must not pin this record (pinned already, or born after the
     * backup started); see store_backup.c */
    uint32_t bk_gen;
    char *name; /* inline after the id; "" when none */
    union {
        struct {
            struct link svc, node, slot, desired, state;
            struct group *svc_g, *node_g, *slot_g;
            uint64_t slot_no;
            int32_t desired_state, obs_state;
        } t;
        UT_hash_handle nh; /* name table of the kind */
    } u;
    char id[];
};

/* A group of tasks sharing a key: service id, node id, or (service, slot).
 * Service groups also keep their task counts, after the key (group_counts
 * in store.c): there is a slot group per replicated task, so it does not
 * carry space for counts it never uses. */
struct group {
    UT_hash_handle hh;
    struct list tasks;
    struct group *gc_next;
    uint8_t type; /* GROUP_SVC, GROUP_NODE or GROUP_SLOT: its table */
    bool on_gc;
    uint8_t keylen;
    char key[]; /* id string, or {group pointer, slot} */
};

struct kind_table {
    struct rec *ids;   /* sentinel-headed */
    struct rec *names; /* sentinel-headed; NULL for tasks */
    size_t count;
};

enum { GROUP_SVC, GROUP_NODE, GROUP_SLOT };

enum { UNDO_CREATE = 1, UNDO_UPDATE, UNDO_REMOVE };

struct undo {
    int op;
    struct rec *old_rec, *new_rec;
};

struct swc_store {
    struct kind_table kinds[SWC_STORE_KIND_MAX];
    struct group *svc_groups, *node_groups, *slot_groups; /* sentinel-headed */
    struct list desired[NSTATES], state[NSTATES];
    uint64_t index;
    struct group *gc; /* possibly empty groups, swept after each entry */
    /* watchers */
    struct swc_store_watch *watch_head, *watch_tail, *cursor;
    /* apply scratch, kept between entries */
    struct undo *log;
    size_t nlog, caplog;
    struct swc_buf results, msgs;
    uint64_t seq; /* dispatch rounds (entries, restores) */
    /* backup pin list, kept between backups so its pages stay faulted in */
    void *bk_items;
    size_t bk_cap;
    void *bk_job; /* the running backup that borrowed bk_items */
    void *bk_pin; /* the backup still pinning records, across loop turns */
    uint32_t bk_gen;
    uint32_t bk_slice; /* tests: records per pinning slice instead of a time budget */
    bool busy;         /* inside apply or restore */
};

/* Index fields of an encoded object, pointing into its bytes. */
struct swc_store_fields {
    const char *id, *name, *svc, *node;
    size_t idlen, namelen, svclen, nodelen;
    uint64_t slot;
    int desired, state;
};

/* --- store_wire.c --- */

/* One field of a protobuf message: returns 1 (a field read), 0 (end) or -1
 * (malformed). For LEN fields *data and *len are set, for others *v. */
int swc_store_wire_next(const uint8_t **p, const uint8_t *end, uint32_t *field, int *wt,
                        uint64_t *v, const uint8_t **data, size_t *len);
/* Extract the index fields of an encoded object of kind; 0 or SWC_EPROTO. */
int swc_store_wire_fields(int kind, const uint8_t *data, size_t len, struct swc_store_fields *f);
/* A cheap 64-bit checksum (snapshot integrity, not security). */
uint64_t swc_store_checksum(const uint8_t *data, size_t len);

/* --- store_hash.c: table creation (may fail) --- */

/* A sentinel record for an id (and, if names, name) table; 0 or SWC_ENOMEM. */
int swc_store_hash_make_rec(struct rec **ids, struct rec **names);
/* A sentinel-headed group table; 0 or SWC_ENOMEM. */
int swc_store_hash_make_group(struct group **table);
/* Free a sentinel-headed table's sentinel and table (elements must be gone). */
void swc_store_hash_free_rec(struct rec **ids, struct rec **names);
void swc_store_hash_free_group(struct group **table);

/* --- store.c internals used by snapshot/backup --- */

/* True for kinds that have a unique name. */
static inline bool swc_store_kind_named(int kind)
{
    return kind != SWARMC__OBJECT_KIND__OBJECT_KIND_TASK;
}
/* Make an unlinked record of kind from encoded bytes (copied) and their
 * extracted fields, with its index groups ensured; 0 or SWC_ENOMEM. */
int swc_store_rec_new(struct swc_store *s, int kind, const struct swc_store_fields *f,
                      uint64_t version, const uint8_t *data, size_t len, struct rec **out);
/* Like swc_store_rec_new; an update passes the record it replaces (like) so
 * unchanged service, slot and node groups are reused without a lookup. */
int swc_store_rec_new_like(struct swc_store *s, int kind, const struct swc_store_fields *f,
                           uint64_t version, const uint8_t *data, size_t len,
                           const struct rec *like, struct rec **out);
/* Unlink a record from every table and index (cannot fail). */
void swc_store_rec_unlink(struct swc_store *s, struct rec *r);
/* Link a record into every table and index (cannot fail). */
void swc_store_rec_link(struct swc_store *s, struct rec *r);
/* Free a record (not linked) and drop its blob reference. */
void swc_store_rec_free(struct rec *r);
/* Find by id / name (NULL when absent). */
struct rec *swc_store_rec_find(const struct swc_store *s, int kind, const char *id, size_t idlen);
struct rec *swc_store_rec_find_name(const struct swc_store *s, int kind, const char *name,
                                    size_t namelen);
/* Free empty groups. */
void swc_store_gc(struct swc_store *s);
/* Swap the contents (tables, indexes, index) of a and b; watchers stay. */
void swc_store_swap(struct swc_store *a, struct swc_store *b);
/* Detach a running backup from a store being destroyed (it pins whatever it
 * had not pinned yet first). */
void swc_store_backup_detach(struct swc_store *s);
/* Finish pinning at once (before the store's contents are swapped out). */
void swc_store_backup_flush(struct swc_store *s);
/* r is about to leave the tables while a backup is pinning: pin its blob if
 * the backup needs it and move the backup's cursor off it (cannot fail). */
void swc_store_backup_unlinking(struct swc_store *s, struct rec *r);
/* Send one event to the watchers. */
void swc_store_dispatch(struct swc_store *s, const struct swc_store_event *ev);

#endif
