/* Protobuf wire reading for the store's hot path, and the transaction builder.
 *
 * Applying an entry must not decode whole objects with protobuf-c (that
 * allocates every string and sub-message, several µs per task), so the store
 * reads the wire format directly: it walks a StoreBatch without allocating
 * and pulls only the fields its indexes need out of an object (id, name,
 * service and node ids, slot, desired and observed state). Unknown fields are
 * skipped; the last occurrence of a field wins, as protobuf's merge rule says.
 * Writers, who are not on the hot path, build transactions with protobuf-c. */
#include <string.h>

#include "store/store_int.h"

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end) {
            return -1;
        }
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

int swc_store_wire_next(const uint8_t **p, const uint8_t *end, uint32_t *field, int *wt,
                        uint64_t *v, const uint8_t **data, size_t *len)
{
    uint64_t key, n;
    if (*p >= end) {
        return 0;
    }
    if (read_varint(p, end, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) {
        return -1;
    }
    *field = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    switch (*wt) {
    case 0:
        return read_varint(p, end, v) == 0 ? 1 : -1;
    case 1:
        if (end - *p < 8) {
            return -1;
        }
        *p += 8;
        return 1;
    case 2:
        if (read_varint(p, end, &n) != 0 || n > (uint64_t)(end - *p)) {
            return -1;
        }
        *data = *p;
        *len = (size_t)n;
        *p += n;
        return 1;
    case 5:
        if (end - *p < 4) {
            return -1;
        }
        *p += 4;
        return 1;
    default:
        return -1; /* groups (3, 4) and invalid types */
    }
}

/* Find the last LEN field number want in a message; 1 found, 0 not, -1 bad. */
static int find_len(const uint8_t *data, size_t len, uint32_t want, const uint8_t **out,
                    size_t *outlen)
{
    const uint8_t *p = data, *end = data + len, *d = NULL;
    uint32_t f;
    int wt, r, found = 0;
    uint64_t v;
    size_t n = 0;
    while ((r = swc_store_wire_next(&p, end, &f, &wt, &v, &d, &n)) == 1) {
        if (f == want) {
            if (wt != 2) {
                return -1;
            }
            *out = d;
            *outlen = n;
            found = 1;
        }
    }
    return r < 0 ? -1 : found;
}

/* spec(3).annotations(1).name(1), with the last occurrence winning. */
static int extract_name(const uint8_t *spec, size_t speclen, struct swc_store_fields *f)
{
    const uint8_t *ann, *name;
    size_t annlen, namelen;
    int r = find_len(spec, speclen, 1, &ann, &annlen);
    if (r <= 0) {
        return r;
    }
    r = find_len(ann, annlen, 1, &name, &namelen);
    if (r <= 0) {
        return r;
    }
    f->name = (const char *)name;
    f->namelen = namelen;
    return 0;
}

int swc_store_wire_fields(int kind, const uint8_t *data, size_t len, struct swc_store_fields *f)
{
    /* data may be NULL for an empty object: never add an offset to it. */
    const uint8_t *p = data, *end = len > 0 ? data + len : data, *d = NULL;
    uint32_t fn;
    int wt, r;
    uint64_t v = 0;
    size_t n = 0;
    bool task = kind == SWARMC__OBJECT_KIND__OBJECT_KIND_TASK;

    memset(f, 0, sizeof(*f));
    f->id = f->name = f->svc = f->node = "";
    while ((r = swc_store_wire_next(&p, end, &fn, &wt, &v, &d, &n)) == 1) {
        if (fn == 1) {
            if (wt != 2) {
                return SWC_EPROTO;
            }
            f->id = (const char *)d;
            f->idlen = n;
        } else if (fn == 3 && !task) {
            if (wt != 2 || extract_name(d, n, f) < 0) {
                return SWC_EPROTO;
            }
        } else if (task && (fn == 5 || fn == 7)) {
            if (wt != 2) {
                return SWC_EPROTO;
            }
            if (fn == 5) {
                f->svc = (const char *)d;
                f->svclen = n;
            } else {
                f->node = (const char *)d;
                f->nodelen = n;
            }
        } else if (task && (fn == 6 || fn == 10)) {
            if (wt != 0) {
                return SWC_EPROTO;
            }
            if (fn == 6) {
                f->slot = v;
            } else {
                f->desired = (int)(int32_t)v;
            }
        } else if (task && fn == 11) {
            /* status.state (field 2) */
            const uint8_t *q = d, *qe = n > 0 ? d + n : d, *dd = NULL;
            uint32_t sf;
            int swt, sr;
            uint64_t sv = 0;
            size_t sn = 0;
            if (wt != 2) {
                return SWC_EPROTO;
            }
            while ((sr = swc_store_wire_next(&q, qe, &sf, &swt, &sv, &dd, &sn)) == 1) {
                if (sf == 2) {
                    if (swt != 0) {
                        return SWC_EPROTO;
                    }
                    f->state = (int)(int32_t)sv;
                }
            }
            if (sr < 0) {
                return SWC_EPROTO;
            }
        }
    }
    if (r < 0) {
        return SWC_EPROTO;
    }
    if (f->idlen > SWC_STORE_ID_MAX || f->namelen > SWC_STORE_NAME_MAX ||
        f->svclen > SWC_STORE_ID_MAX || f->nodelen > SWC_STORE_ID_MAX) {
        return SWC_EPROTO;
    }
    if (memchr(f->id, 0, f->idlen) != NULL || memchr(f->name, 0, f->namelen) != NULL ||
        memchr(f->svc, 0, f->svclen) != NULL || memchr(f->node, 0, f->nodelen) != NULL) {
        return SWC_EPROTO;
    }
    return 0;
}

uint64_t swc_store_checksum(const uint8_t *data, size_t len)
{
    /* Four independent multiply-rotate lanes over 8-byte words: a few GB/s,
     * catches truncation and flipped bits. */
    const uint64_t k = 0x9e3779b97f4a7c15ULL;
    uint64_t h[4] = {len, k, ~(uint64_t)len, k ^ 0x5555};
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        for (int j = 0; j < 4; j++) {
            uint64_t w;
            memcpy(&w, data + i + 8 * j, 8);
            h[j] = (h[j] ^ w) * k;
            h[j] ^= h[j] >> 29;
        }
    }
    uint64_t x = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7);
    for (; i < len; i++) {
        x = (x ^ data[i]) * 0x100000001b3ULL;
    }
    x ^= x >> 31;
    x *= k;
    x ^= x >> 29;
    return x;
}

/* --- transaction builder --- */

int swc_store_txn_init(struct swc_store_txn *t, uint64_t proposal_id, const char *proposer)
{
    memset(t, 0, sizeof(*t));
    swarmc__store_transaction__init(&t->msg);
    t->msg.proposal_id = proposal_id;
    t->msg.proposer = swc_strdup(proposer != NULL ? proposer : "");
    return t->msg.proposer == NULL ? SWC_ENOMEM : 0;
}

void swc_store_txn_free(struct swc_store_txn *t)
{
    for (size_t i = 0; i < t->msg.n_actions; i++) {
        Swarmc__StoreAction *a = t->msg.actions[i];
        swc_free(a->id);
        swc_free(a->object.data);
        swc_free(a);
    }
    swc_free(t->msg.actions);
    swc_free(t->msg.proposer);
    memset(t, 0, sizeof(*t));
}

int swc_store_txn_add_encoded(struct swc_store_txn *t, int action, int kind, const char *id,
                              uint64_t expected_version, const uint8_t *data, size_t len)
{
    Swarmc__StoreAction *a;
    if (kind <= 0 || kind >= SWC_STORE_KIND_MAX || id == NULL || id[0] == '\0' ||
        strlen(id) > SWC_STORE_ID_MAX || action < 0 ||
        action > SWARMC__STORE_ACTION_KIND__STORE_ACTION_REMOVE) {
        return SWC_EINVAL;
    }
    if (t->msg.n_actions == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        Swarmc__StoreAction **na = swc_realloc(t->msg.actions, cap * sizeof(*na));
        if (na == NULL) {
            return SWC_ENOMEM;
        }
        t->msg.actions = na;
        t->cap = cap;
    }
    a = swc_malloc(sizeof(*a));
    if (a == NULL) {
        return SWC_ENOMEM;
    }
    swarmc__store_action__init(a);
    a->action = (Swarmc__StoreActionKind)action;
    a->kind = (Swarmc__ObjectKind)kind;
    a->expected_version = expected_version;
    a->id = swc_strdup(id);
    if (a->id == NULL) {
        swc_free(a);
        return SWC_ENOMEM;
    }
    if (len > 0) {
        a->object.data = swc_malloc(len);
        if (a->object.data == NULL) {
            swc_free(a->id);
            swc_free(a);
            return SWC_ENOMEM;
        }
        memcpy(a->object.data, data, len);
        a->object.len = len;
    }
    t->msg.actions[t->msg.n_actions++] = a;
    t->bytes += len + strlen(id) + 16;
    return 0;
}

static int add_message(struct swc_store_txn *t, int action, int kind, const ProtobufCMessage *obj,
                       uint64_t expected)
{
    const ProtobufCMessageDescriptor *desc = swc_store_kind_descriptor(kind);
    const ProtobufCFieldDescriptor *fd;
    const char *id;
    uint8_t stackbuf[1024], *buf = stackbuf;
    size_t len;
    int rv;

    if (desc == NULL || obj == NULL || obj->descriptor != desc) {
        return SWC_EINVAL;
    }
    fd = protobuf_c_message_descriptor_get_field_by_name(desc, "id");
    id = *(char *const *)((const char *)obj + fd->offset);
    len = protobuf_c_message_get_packed_size(obj);
    if (len > sizeof(stackbuf)) {
        buf = swc_malloc(len);
        if (buf == NULL) {
            return SWC_ENOMEM;
        }
    }
    protobuf_c_message_pack(obj, buf);
    rv = swc_store_txn_add_encoded(t, action, kind, id, expected, buf, len);
    if (buf != stackbuf) {
        swc_free(buf);
    }
    return rv;
}

int swc_store_txn_create(struct swc_store_txn *t, int kind, const ProtobufCMessage *obj)
{
    return add_message(t, SWARMC__STORE_ACTION_KIND__STORE_ACTION_CREATE, kind, obj, 0);
}

int swc_store_txn_update(struct swc_store_txn *t, int kind, const ProtobufCMessage *obj,
                         uint64_t expected_version)
{
    return add_message(t, SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE, kind, obj,
                       expected_version);
}

int swc_store_txn_remove(struct swc_store_txn *t, int kind, const char *id,
                         uint64_t expected_version)
{
    return swc_store_txn_add_encoded(t, SWARMC__STORE_ACTION_KIND__STORE_ACTION_REMOVE, kind, id,
                                     expected_version, NULL, 0);
}

int swc_store_txn_encode(const struct swc_store_txn *t, struct swc_buf *out)
{
    size_t len = swarmc__store_transaction__get_packed_size(&t->msg);
    int rv = swc_buf_reserve(out, len);
    if (rv != 0) {
        return rv;
    }
    swarmc__store_transaction__pack(&t->msg, out->data + out->len);
    out->len += len;
    return 0;
}

int swc_store_batch_append(struct swc_buf *batch, const uint8_t *txn, size_t len)
{
    uint8_t hdr[11];
    size_t n = 0;
    uint64_t v = len;
    hdr[n++] = 0x0a; /* field 1, LEN */
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        hdr[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    int rv = swc_buf_reserve(batch, n + len);
    if (rv != 0) {
        return rv;
    }
    memcpy(batch->data + batch->len, hdr, n);
    if (len > 0) {
        memcpy(batch->data + batch->len + n, txn, len);
    }
    batch->len += n + len;
    return 0;
}
