/* The in-memory store: tables, indexes, reads, events and apply.
 *
 * Records live in one uthash table per kind, keyed by id; named kinds also
 * sit in a name table. Task records are threaded on intrusive lists: one per
 * service, per node, per (service, slot), per desired state and per observed
 * state, so every "tasks of ..." read walks exactly its result. Service
 * groups also keep the task counts that `service ls` shows.
 *
 * Apply (store_apply.c) runs the actions of an entry one by one against the live tables and
 * writes an undo log. Every change is made of steps that cannot fail (linking
 * and unlinking records, see store_int.h); anything that can fail (the new
 * record, its blob, index groups, a log slot, a message) is allocated before
 * the step. So a conflicting transaction is undone back to its mark, and an
 * allocation failure anywhere undoes the whole entry: the store is left as it
 * was. Once the entry is through, the log doubles as the list of events to
 * publish, and the records it replaced are freed. Groups that became empty
 * are freed only after the entry, so an undo never finds its group gone. */
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

/* --- blobs --------------------------------------------------------------- */

struct swc_store_blob *swc_store_blob_ref(struct swc_store_blob *blob)
{
    blob->refs++;
    return blob;
}

void swc_store_blob_unref(struct swc_store_blob *blob)
{
    if (blob != NULL && --blob->refs == 0) {
        swc_free(blob);
    }
}

/* --- kinds --------------------------------------------------------------- */

const char *swc_store_kind_name(int kind)
{
    static const char *names[SWC_STORE_KIND_MAX] = {"?",       "node",   "service", "task",
                                                    "cluster", "secret", "config",  "network"};
    return kind > 0 && kind < SWC_STORE_KIND_MAX ? names[kind] : "?";
}

const ProtobufCMessageDescriptor *swc_store_kind_descriptor(int kind)
{
    switch (kind) {
    case SWARMC__OBJECT_KIND__OBJECT_KIND_NODE:
        return &swarmc__node__descriptor;
    case SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE:
        return &swarmc__service__descriptor;
    case SWARMC__OBJECT_KIND__OBJECT_KIND_TASK:
        return &swarmc__task__descriptor;
    case SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER:
        return &swarmc__cluster__descriptor;
    case SWARMC__OBJECT_KIND__OBJECT_KIND_SECRET:
        return &swarmc__secret__descriptor;
    case SWARMC__OBJECT_KIND__OBJECT_KIND_CONFIG:
        return &swarmc__config__descriptor;
    case SWARMC__OBJECT_KIND__OBJECT_KIND_NETWORK:
        return &swarmc__network__descriptor;
    default:
        return NULL;
    }
}

static bool kind_ok(int kind)
{
    return kind > 0 && kind < SWC_STORE_KIND_MAX;
}

/* Task states 0..832 map to list slots 0..13; anything else to 14. */
static int state_slot(int state)
{
    switch (state) {
    case SWARMC__TASK_STATE__TASK_STATE_REMOVE:
        return 12;
    case SWARMC__TASK_STATE__TASK_STATE_ORPHANED:
        return 13;
    default:
        if (state >= 0 && state <= 768 && state % 64 == 0 && state != 128) {
            return state < 128 ? state / 64 : state / 64 - 1;
        }
        return NSTATES - 1;
    }
}

/* --- intrusive lists ----------------------------------------------------- */

static const size_t link_off[] = {
    [LINK_SVC] = offsetof(struct rec, u.t.svc),
    [LINK_NODE] = offsetof(struct rec, u.t.node),
    [LINK_SLOT] = offsetof(struct rec, u.t.slot),
    [LINK_DESIRED] = offsetof(struct rec, u.t.desired),
    [LINK_STATE] = offsetof(struct rec, u.t.state),
};

static struct link *L(struct rec *r, int which)
{
    return (struct link *)((char *)r + link_off[which]);
}

static void list_push(struct list *l, struct rec *r, int which)
{
    struct link *k = L(r, which);
    k->prev = l->tail;
    k->next = NULL;
    if (l->tail != NULL) {
        L(l->tail, which)->next = r;
    } else {
        l->head = r;
    }
    l->tail = r;
    l->n++;
}

static void list_del(struct list *l, struct rec *r, int which)
{
    struct link *k = L(r, which);
    if (k->prev != NULL) {
        L(k->prev, which)->next = k->next;
    } else {
        l->head = k->next;
    }
    if (k->next != NULL) {
        L(k->next, which)->prev = k->prev;
    } else {
        l->tail = k->prev;
    }
    k->prev = k->next = NULL;
    l->n--;
}

/* --- groups -------------------------------------------------------------- */

static void gc_push(struct swc_store *s, struct group *g)
{
    if (!g->on_gc) {
        g->on_gc = true;
        g->gc_next = s->gc;
        s->gc = g;
    }
}

static struct group *group_find(struct group *table, const void *key, size_t keylen)
{
    struct group *g = NULL;
    if (keylen > 0) {
        HASH_FIND(hh, table, key, (unsigned)keylen, g);
    }
    return g;
}

static struct group **group_table(struct swc_store *s, int type)
{
    return type == GROUP_SVC    ? &s->svc_groups
           : type == GROUP_NODE ? &s->node_groups
                                : &s->slot_groups;
}

/* Where a service group's counts start: after its key, aligned. */
static size_t counts_off(size_t keylen)
{
    size_t a = _Alignof(struct swc_store_counts);
    return (offsetof(struct group, key) + keylen + 1 + a - 1) / a * a;
}

static struct swc_store_counts *group_counts(const struct group *g)
{
    return (struct swc_store_counts *)((char *)g + counts_off(g->keylen));
}

static int group_ensure(struct swc_store *s, int type, const void *key, size_t keylen,
                        struct group **out)
{
    struct group **table = group_table(s, type);
    struct group *g = group_find(*table, key, keylen);
    if (g == NULL) {
        size_t size = type == GROUP_SVC ? counts_off(keylen) + sizeof(struct swc_store_counts)
                                        : sizeof(*g) + keylen + 1;
        g = swc_calloc(1, size);
        if (g == NULL) {
            return SWC_ENOMEM;
        }
        memcpy(g->key, key, keylen);
        g->keylen = (uint8_t)keylen;
        g->type = (uint8_t)type;
        HASH_ADD_KEYPTR(hh, *table, g->key, (unsigned)keylen, g);
        gc_push(s, g);
    }
    *out = g;
    return 0;
}

struct slot_key {
    struct group *svc;
    uint64_t slot;
};

static struct group *slot_group_find(const struct swc_store *s, struct group *svc, uint64_t slot)
{
    struct slot_key k;
    memset(&k, 0, sizeof(k));
    k.svc = svc;
    k.slot = slot;
    return group_find(s->slot_groups, &k, sizeof(k));
}

void swc_store_gc(struct swc_store *s)
{
    struct group *g = s->gc, *next;
    s->gc = NULL;
    for (; g != NULL; g = next) {
        next = g->gc_next;
        g->on_gc = false;
        g->gc_next = NULL;
        if (g->tasks.n == 0) {
            HASH_DELETE(hh, *group_table(s, g->type), g);
            swc_free(g);
        }
    }
}

/* --- records ------------------------------------------------------------- */

static bool same_key(const struct group *g, const char *key, size_t len)
{
    return g != NULL && g->keylen == len && memcmp(g->key, key, len) == 0;
}

int swc_store_rec_new_like(struct swc_store *s, int kind, const struct swc_store_fields *f,
                           uint64_t version, const uint8_t *data, size_t len,
                           const struct rec *like, struct rec **out)
{
    bool named = swc_store_kind_named(kind);
    size_t extra = f->idlen + 1 + (named ? f->namelen + 1 : 0);
    struct rec *r;
    struct swc_store_blob *b;

    if (len > UINT32_MAX) {
        return SWC_ETOOBIG;
    }
    r = swc_malloc(sizeof(*r) + extra);
    if (r == NULL) {
        return SWC_ENOMEM;
    }
    b = swc_malloc(sizeof(*b) + len);
    if (b == NULL) {
        swc_free(r);
        return SWC_ENOMEM;
    }
    b->refs = 1;
    b->len = (uint32_t)len;
    memcpy(b->data, data, len);
    memset(r, 0, sizeof(*r));
    r->blob = b;
    r->version = version;
    r->bk_gen = s->bk_gen; /* a running backup skips it */
    r->kind = (uint8_t)kind;
    r->idlen = (uint8_t)f->idlen;
    memcpy(r->id, f->id, f->idlen);
    r->id[f->idlen] = '\0';
    if (named) {
        r->name = r->id + f->idlen + 1;
        r->namelen = (uint8_t)f->namelen;
        memcpy(r->name, f->name, f->namelen);
        r->name[f->namelen] = '\0';
    } else {
        r->name = r->id + f->idlen; /* "" */
        r->u.t.slot_no = f->slot;
        r->u.t.desired_state = f->desired;
        r->u.t.obs_state = f->state;
        int rv = 0;
        if (like != NULL && f->svclen > 0 && same_key(like->u.t.svc_g, f->svc, f->svclen) &&
            like->u.t.slot_no == f->slot) {
            r->u.t.svc_g = like->u.t.svc_g;
            r->u.t.slot_g = like->u.t.slot_g;
        } else if (f->svclen > 0) {
            rv = group_ensure(s, GROUP_SVC, f->svc, f->svclen, &r->u.t.svc_g);
            if (rv == 0) {
                struct slot_key k;
                memset(&k, 0, sizeof(k));
                k.svc = r->u.t.svc_g;
                k.slot = f->slot;
                rv = group_ensure(s, GROUP_SLOT, &k, sizeof(k), &r->u.t.slot_g);
            }
        }
        if (like != NULL && f->nodelen > 0 && same_key(like->u.t.node_g, f->node, f->nodelen)) {
            r->u.t.node_g = like->u.t.node_g;
        } else if (rv == 0 && f->nodelen > 0) {
            rv = group_ensure(s, GROUP_NODE, f->node, f->nodelen, &r->u.t.node_g);
        }
        if (rv != 0) {
            swc_store_rec_free(r); /* groups stay on the gc list */
            return rv;
        }
    }
    *out = r;
    return 0;
}

int swc_store_rec_new(struct swc_store *s, int kind, const struct swc_store_fields *f,
                      uint64_t version, const uint8_t *data, size_t len, struct rec **out)
{
    return swc_store_rec_new_like(s, kind, f, version, data, len, NULL, out);
}

void swc_store_rec_free(struct rec *r)
{
    if (r != NULL) {
        swc_store_blob_unref(r->blob);
        swc_free(r);
    }
}

static void counts_add(struct swc_store_counts *c, const struct rec *r, int64_t d)
{
    int desired = r->u.t.desired_state, st = r->u.t.obs_state;
    c->total += (uint64_t)d;
    if (desired <= SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
        c->desired += (uint64_t)d;
    }
    if (st == SWARMC__TASK_STATE__TASK_STATE_RUNNING &&
        desired == SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
        c->running += (uint64_t)d;
    }
    if (st == SWARMC__TASK_STATE__TASK_STATE_COMPLETE) {
        c->completed += (uint64_t)d;
    }
}

void swc_store_rec_link(struct swc_store *s, struct rec *r)
{
    struct kind_table *kt = &s->kinds[r->kind];
    HASH_ADD_KEYPTR(hh, kt->ids, r->id, r->idlen, r);
    kt->count++;
    if (swc_store_kind_named(r->kind)) {
        if (r->namelen > 0) {
            HASH_ADD_KEYPTR(u.nh, kt->names, r->name, r->namelen, r);
        }
        return;
    }
    if (r->u.t.svc_g != NULL) {
        list_push(&r->u.t.svc_g->tasks, r, LINK_SVC);
        counts_add(group_counts(r->u.t.svc_g), r, 1);
        list_push(&r->u.t.slot_g->tasks, r, LINK_SLOT);
    }
    if (r->u.t.node_g != NULL) {
        list_push(&r->u.t.node_g->tasks, r, LINK_NODE);
    }
    list_push(&s->desired[state_slot(r->u.t.desired_state)], r, LINK_DESIRED);
    list_push(&s->state[state_slot(r->u.t.obs_state)], r, LINK_STATE);
}

static void group_del(struct swc_store *s, struct group *g, struct rec *r, int which)
{
    list_del(&g->tasks, r, which);
    if (g->tasks.n == 0) {
        gc_push(s, g);
    }
}

void swc_store_rec_unlink(struct swc_store *s, struct rec *r)
{
    struct kind_table *kt = &s->kinds[r->kind];
    if (s->bk_pin != NULL) {
        swc_store_backup_unlinking(s, r);
    }
    HASH_DELETE(hh, kt->ids, r);
    kt->count--;
    if (swc_store_kind_named(r->kind)) {
        if (r->namelen > 0) {
            HASH_DELETE(u.nh, kt->names, r);
        }
        return;
    }
    if (r->u.t.svc_g != NULL) {
        counts_add(group_counts(r->u.t.svc_g), r, -1);
        group_del(s, r->u.t.svc_g, r, LINK_SVC);
        group_del(s, r->u.t.slot_g, r, LINK_SLOT);
    }
    if (r->u.t.node_g != NULL) {
        group_del(s, r->u.t.node_g, r, LINK_NODE);
    }
    list_del(&s->desired[state_slot(r->u.t.desired_state)], r, LINK_DESIRED);
    list_del(&s->state[state_slot(r->u.t.obs_state)], r, LINK_STATE);
}

struct rec *swc_store_rec_find(const struct swc_store *s, int kind, const char *id, size_t idlen)
{
    struct rec *r = NULL;
    if (!kind_ok(kind) || idlen == 0) {
        return NULL;
    }
    HASH_FIND(hh, s->kinds[kind].ids, id, (unsigned)idlen, r);
    return r;
}

struct rec *swc_store_rec_find_name(const struct swc_store *s, int kind, const char *name,
                                    size_t namelen)
{
    struct rec *r = NULL;
    if (!kind_ok(kind) || namelen == 0 || !swc_store_kind_named(kind)) {
        return NULL;
    }
    HASH_FIND(u.nh, s->kinds[kind].names, name, (unsigned)namelen, r);
    return r;
}

/* --- lifecycle ----------------------------------------------------------- */

int swc_store_create(struct swc_store **out)
{
    struct swc_store *s = swc_calloc(1, sizeof(*s));
    if (s == NULL) {
        return SWC_ENOMEM;
    }
    swc_buf_init(&s->results);
    swc_buf_init(&s->msgs);
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        struct kind_table *kt = &s->kinds[k];
        if (swc_store_hash_make_rec(&kt->ids, swc_store_kind_named(k) ? &kt->names : NULL) != 0) {
            goto oom;
        }
    }
    if (swc_store_hash_make_group(&s->svc_groups) != 0 ||
        swc_store_hash_make_group(&s->node_groups) != 0 ||
        swc_store_hash_make_group(&s->slot_groups) != 0) {
        goto oom;
    }
    *out = s;
    return 0;
oom:
    swc_store_destroy(s);
    return SWC_ENOMEM;
}

void swc_store_destroy(struct swc_store *s)
{
    if (s == NULL) {
        return;
    }
    swc_store_backup_detach(s); /* while the records it may still pin exist */
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        struct kind_table *kt = &s->kinds[k];
        if (kt->ids != NULL) {
            struct rec *r = kt->ids->hh.next, *next;
            for (; r != NULL; r = next) {
                next = r->hh.next;
                swc_store_rec_free(r);
            }
        }
        swc_store_hash_free_rec(&kt->ids, &kt->names);
    }
    struct group **tables[] = {&s->svc_groups, &s->node_groups, &s->slot_groups};
    for (size_t i = 0; i < 3; i++) {
        if (*tables[i] != NULL) {
            struct group *g = (*tables[i])->hh.next, *next;
            for (; g != NULL; g = next) {
                next = g->hh.next;
                swc_free(g);
            }
        }
        swc_store_hash_free_group(tables[i]);
    }
    swc_free(s->bk_items);
    swc_free(s->log);
    swc_buf_free(&s->results);
    swc_buf_free(&s->msgs);
    swc_free(s);
}

void swc_store_swap(struct swc_store *a, struct swc_store *b)
{
    struct swc_store t;
    /* a backup still pinning reads the tables it started on */
    swc_store_backup_flush(a);
    swc_store_backup_flush(b);
#define SWAP(field)                                                                                \
    do {                                                                                           \
        memcpy(&t.field, &a->field, sizeof(t.field));                                              \
        memcpy(&a->field, &b->field, sizeof(t.field));                                             \
        memcpy(&b->field, &t.field, sizeof(t.field));                                              \
    } while (0)
    SWAP(kinds);
    SWAP(svc_groups);
    SWAP(node_groups);
    SWAP(slot_groups);
    SWAP(desired);
    SWAP(state);
    SWAP(index);
    SWAP(gc);
#undef SWAP
}

uint64_t swc_store_index(const struct swc_store *s)
{
    return s->index;
}

size_t swc_store_count(const struct swc_store *s, int kind)
{
    return kind_ok(kind) ? s->kinds[kind].count : 0;
}

/* --- reads --------------------------------------------------------------- */

static void fill_obj(const struct rec *r, struct swc_store_obj *o)
{
    o->kind = r->kind;
    o->id = r->id;
    o->name = r->name;
    o->version = r->version;
    o->blob = r->blob;
    if (r->kind == SWARMC__OBJECT_KIND__OBJECT_KIND_TASK) {
        o->service_id = r->u.t.svc_g != NULL ? r->u.t.svc_g->key : "";
        o->node_id = r->u.t.node_g != NULL ? r->u.t.node_g->key : "";
        o->slot = r->u.t.slot_no;
        o->desired_state = r->u.t.desired_state;
        o->state = r->u.t.obs_state;
    } else {
        o->service_id = o->node_id = "";
        o->slot = 0;
        o->desired_state = o->state = 0;
    }
}

int swc_store_get(const struct swc_store *s, int kind, const char *id, struct swc_store_obj *out)
{
    struct rec *r = swc_store_rec_find(s, kind, id, strlen(id));
    if (r == NULL) {
        return SWC_ENOENT;
    }
    fill_obj(r, out);
    return 0;
}

int swc_store_find_by_name(const struct swc_store *s, int kind, const char *name,
                           struct swc_store_obj *out)
{
    struct rec *r = swc_store_rec_find_name(s, kind, name, strlen(name));
    if (r == NULL) {
        return SWC_ENOENT;
    }
    fill_obj(r, out);
    return 0;
}

int swc_store_find_by_prefix(const struct swc_store *s, int kind, const char *prefix,
                             struct swc_store_obj *out, size_t *nmatch)
{
    size_t n = 0, plen = strlen(prefix);
    struct rec *match = NULL;
    *nmatch = 0;
    if (!kind_ok(kind) || plen == 0) {
        return SWC_ENOENT;
    }
    match = swc_store_rec_find(s, kind, prefix, plen);
    if (match != NULL) {
        n = 1;
    } else {
        for (struct rec *r = s->kinds[kind].ids->hh.next; r != NULL; r = r->hh.next) {
            if (r->idlen >= plen && memcmp(r->id, prefix, plen) == 0) {
                match = r;
                n++;
            }
        }
    }
    *nmatch = n;
    if (n == 0) {
        return SWC_ENOENT;
    }
    if (n > 1) {
        return SWC_EEXIST;
    }
    fill_obj(match, out);
    return 0;
}

void swc_store_service_counts(const struct swc_store *s, const char *service_id,
                              struct swc_store_counts *out)
{
    struct group *g = group_find(s->svc_groups, service_id, strlen(service_id));
    if (g != NULL) {
        *out = *group_counts(g);
    } else {
        memset(out, 0, sizeof(*out));
    }
}

ProtobufCMessage *swc_store_decode(const struct swc_store_obj *obj, int *err)
{
    const ProtobufCMessageDescriptor *desc = swc_store_kind_descriptor(obj->kind);
    ProtobufCMessage *m;
    if (desc == NULL) {
        if (err != NULL) {
            *err = SWC_EINVAL;
        }
        return NULL;
    }
    m = protobuf_c_message_unpack(desc, &swc_pb_allocator, obj->blob->len, obj->blob->data);
    if (m == NULL) {
        /* protobuf-c does not say why; objects passed the wire check on
         * apply, so a failure here is most likely memory. */
        if (err != NULL) {
            *err = SWC_ENOMEM;
        }
        return NULL;
    }
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(desc, "meta");
    Swarmc__Meta **mp = (Swarmc__Meta **)((char *)m + fd->offset);
    if (*mp == NULL) {
        *mp = swc_pb_allocator.alloc(swc_pb_allocator.allocator_data, sizeof(Swarmc__Meta));
        if (*mp == NULL) {
            protobuf_c_message_free_unpacked(m, &swc_pb_allocator);
            if (err != NULL) {
                *err = SWC_ENOMEM;
            }
            return NULL;
        }
        swarmc__meta__init(*mp);
    }
    (*mp)->version = obj->version;
    if (err != NULL) {
        *err = 0;
    }
    return m;
}

ProtobufCMessage *swc_store_get_decoded(const struct swc_store *s, int kind, const char *id,
                                        int *err)
{
    struct swc_store_obj o;
    if (swc_store_get(s, kind, id, &o) != 0) {
        if (err != NULL) {
            *err = SWC_ENOENT;
        }
        return NULL;
    }
    return swc_store_decode(&o, err);
}

void swc_store_free_decoded(ProtobufCMessage *msg)
{
    if (msg != NULL) {
        protobuf_c_message_free_unpacked(msg, &swc_pb_allocator);
    }
}

/* --- iterators ----------------------------------------------------------- */

static void iter_list(const struct swc_store *s, const struct list *l, int link,
                      struct swc_store_iter *it)
{
    it->s = s;
    it->kind = SWARMC__OBJECT_KIND__OBJECT_KIND_TASK;
    it->link = link;
    it->next = l != NULL ? l->head : NULL;
    it->remaining = l != NULL ? l->n : 0;
}

void swc_store_iter_kind(const struct swc_store *s, int kind, struct swc_store_iter *it)
{
    it->s = s;
    it->kind = kind;
    it->link = LINK_KIND;
    it->next = kind_ok(kind) ? s->kinds[kind].ids->hh.next : NULL;
    it->remaining = kind_ok(kind) ? s->kinds[kind].count : 0;
}

void swc_store_iter_service_tasks(const struct swc_store *s, const char *service_id,
                                  struct swc_store_iter *it)
{
    struct group *g = group_find(s->svc_groups, service_id, strlen(service_id));
    iter_list(s, g != NULL ? &g->tasks : NULL, LINK_SVC, it);
}

void swc_store_iter_node_tasks(const struct swc_store *s, const char *node_id,
                               struct swc_store_iter *it)
{
    struct group *g = group_find(s->node_groups, node_id, strlen(node_id));
    iter_list(s, g != NULL ? &g->tasks : NULL, LINK_NODE, it);
}

void swc_store_iter_slot_tasks(const struct swc_store *s, const char *service_id, uint64_t slot,
                               struct swc_store_iter *it)
{
    struct group *svc = group_find(s->svc_groups, service_id, strlen(service_id));
    struct group *g = svc != NULL ? slot_group_find(s, svc, slot) : NULL;
    iter_list(s, g != NULL ? &g->tasks : NULL, LINK_SLOT, it);
}

void swc_store_iter_desired_state(const struct swc_store *s, int state, struct swc_store_iter *it)
{
    int k = state_slot(state);
    iter_list(s, k == NSTATES - 1 ? NULL : &s->desired[k], LINK_DESIRED, it);
}

void swc_store_iter_state(const struct swc_store *s, int state, struct swc_store_iter *it)
{
    int k = state_slot(state);
    iter_list(s, k == NSTATES - 1 ? NULL : &s->state[k], LINK_STATE, it);
}

bool swc_store_iter_next(struct swc_store_iter *it, struct swc_store_obj *out)
{
    struct rec *r = it->next;
    if (r == NULL) {
        return false;
    }
    it->next = it->link == LINK_KIND ? r->hh.next : L(r, it->link)->next;
    if (it->remaining > 0) {
        it->remaining--;
    }
    fill_obj(r, out);
    return true;
}

/* --- events -------------------------------------------------------------- */

void swc_store_watch(struct swc_store *s, struct swc_store_watch *w)
{
    if (w->active) {
        return;
    }
    w->active = true;
    w->from_seq = s->seq;
    w->next = NULL;
    w->prev = s->watch_tail;
    if (s->watch_tail != NULL) {
        s->watch_tail->next = w;
    } else {
        s->watch_head = w;
    }
    s->watch_tail = w;
}

void swc_store_unwatch(struct swc_store *s, struct swc_store_watch *w)
{
    if (!w->active) {
        return;
    }
    if (s->cursor == w) {
        s->cursor = w->next;
    }
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        s->watch_head = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    } else {
        s->watch_tail = w->prev;
    }
    w->prev = w->next = NULL;
    w->active = false;
}

void swc_store_view_and_watch(struct swc_store *s, void (*view)(void *data, struct swc_store *s),
                              void *data, struct swc_store_watch *w)
{
    /* One thread owns the store: nothing can be applied between the two. */
    view(data, s);
    swc_store_watch(s, w);
}

void swc_store_dispatch(struct swc_store *s, const struct swc_store_event *ev)
{
    uint32_t bit = 1u << (ev->kind & 31);
    bool always = ev->type == SWC_STORE_EV_COMMIT || ev->type == SWC_STORE_EV_RESTORE;
    for (struct swc_store_watch *w = s->watch_head; w != NULL; w = s->cursor) {
        s->cursor = w->next;
        if (w->from_seq < s->seq && (always || w->kinds == 0 || (w->kinds & bit) != 0)) {
            w->cb(w->data, ev);
        }
    }
    s->cursor = NULL;
}
