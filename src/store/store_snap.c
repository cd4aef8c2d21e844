/* Raft snapshots of the store: every record framed into one flat buffer.
 *
 * Layout (big-endian integers):
 *   header  "SWCS" | u32 format (1) | u64 raft index | u64 record count
 *   record  u8 kind | u8 id length | u32 blob length | u64 version | id | blob
 *   trailer u64 checksum of everything before it
 * The caller's buffer is reused: its memory is grown, never shrunk, so the
 * raft adapter can keep it pre-faulted and a snapshot costs one copy of the
 * blobs. Restore checks the checksum and every frame, builds a complete
 * second store, and only then swaps it in, so bad input changes nothing. */
#include <string.h>

#include "store/store_int.h"

#define SNAP_MAGIC  "SWCS"
#define SNAP_FORMAT 1
#define SNAP_HDR    24
#define SNAP_FRAME  14

int swc_store_snapshot(const struct swc_store *s, struct swc_buf *buf)
{
    size_t total = SNAP_HDR + 8, count = 0;
    uint8_t *p;

    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        for (struct rec *r = s->kinds[k].ids->hh.next; r != NULL; r = r->hh.next) {
            total += SNAP_FRAME + r->idlen + r->blob->len;
            count++;
        }
    }
    buf->len = 0;
    if (swc_buf_reserve(buf, total) != 0) {
        return SWC_ENOMEM;
    }
    p = buf->data;
    memcpy(p, SNAP_MAGIC, 4);
    swc_put_u32(p + 4, SNAP_FORMAT);
    swc_put_u64(p + 8, s->index);
    swc_put_u64(p + 16, count);
    p += SNAP_HDR;
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        for (struct rec *r = s->kinds[k].ids->hh.next; r != NULL; r = r->hh.next) {
            p[0] = (uint8_t)k;
            p[1] = r->idlen;
            swc_put_u32(p + 2, r->blob->len);
            swc_put_u64(p + 6, r->version);
            memcpy(p + SNAP_FRAME, r->id, r->idlen);
            memcpy(p + SNAP_FRAME + r->idlen, r->blob->data, r->blob->len);
            p += SNAP_FRAME + r->idlen + r->blob->len;
        }
    }
    swc_put_u64(p, swc_store_checksum(buf->data, total - 8));
    buf->len = total;
    return 0;
}

int swc_store_restore(struct swc_store *s, const uint8_t *data, size_t len)
{
    struct swc_store *tmp = NULL;
    const uint8_t *p, *end;
    uint64_t count;
    int rv;

    if (s->busy) {
        return SWC_ESTATE;
    }
    if (len < SNAP_HDR + 8 || memcmp(data, SNAP_MAGIC, 4) != 0 ||
        swc_get_u32(data + 4) != SNAP_FORMAT ||
        swc_get_u64(data + len - 8) != swc_store_checksum(data, len - 8)) {
        return SWC_EPROTO;
    }
    count = swc_get_u64(data + 16);
    if ((rv = swc_store_create(&tmp)) != 0) {
        return rv;
    }
    tmp->index = swc_get_u64(data + 8);
    p = data + SNAP_HDR;
    end = data + len - 8;
    for (uint64_t i = 0; i < count; i++) {
        struct swc_store_fields f;
        struct rec *r = NULL;
        size_t idlen, bloblen;
        int kind;
        if (end - p < SNAP_FRAME) {
            rv = SWC_EPROTO;
            goto fail;
        }
        kind = p[0];
        idlen = p[1];
        bloblen = swc_get_u32(p + 2);
        if (kind <= 0 || kind >= SWC_STORE_KIND_MAX || idlen == 0 ||
            (size_t)(end - p) - SNAP_FRAME < idlen + bloblen) {
            rv = SWC_EPROTO;
            goto fail;
        }
        const uint8_t *id = p + SNAP_FRAME, *blob = id + idlen;
        if (swc_store_wire_fields(kind, blob, bloblen, &f) != 0 || f.idlen != idlen ||
            memcmp(f.id, id, idlen) != 0 || swc_store_rec_find(tmp, kind, f.id, idlen) != NULL ||
            swc_store_rec_find_name(tmp, kind, f.name, f.namelen) != NULL) {
            rv = SWC_EPROTO;
            goto fail;
        }
        if ((rv = swc_store_rec_new(tmp, kind, &f, swc_get_u64(p + 6), blob, bloblen, &r)) != 0) {
            goto fail;
        }
        swc_store_rec_link(tmp, r);
        p = blob + bloblen;
    }
    if (p != end) {
        rv = SWC_EPROTO;
        goto fail;
    }
    swc_store_gc(tmp);
    swc_store_swap(s, tmp);
    swc_store_destroy(tmp);
    /* Watchers must drop what they knew and read the store again. */
    s->busy = true;
    s->seq++;
    struct swc_store_event ev = {.type = SWC_STORE_EV_RESTORE, .id = "", .index = s->index};
    swc_store_dispatch(s, &ev);
    s->busy = false;
    return 0;
fail:
    swc_store_destroy(tmp);
    return rv;
}
