/* The raft FSM glue: decodes entries (opening them with the data key),
 * calls the owner's apply once per proposal and keeps the proposer's results
 * for the raft_apply callback; builds snapshots from the owner's reused
 * buffer (version-2 FSM: snapshot_finalize hands nothing back to raft, the
 * buffers stay ours) and restores them. */
#include "raft/raft_int.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#if SWC_RAFT_SEAL
#include "net/cert.h"
#endif

#define MOD "raft"

/* --- the raft FSM --------------------------------------------------------- */

static int push_result(struct swc_raft *r, int v)
{
    if (r->n_results == r->cap_results) {
        size_t nc = r->cap_results ? r->cap_results * 2 : 256;
        int *n = swc_realloc(r->results, nc * sizeof *n);
        if (n == NULL) {
            return SWC_ENOMEM;
        }
        r->results = n;
        r->cap_results = nc;
    }
    r->results[r->n_results++] = v;
    return 0;
}

static void apply_internal(struct swc_raft *r, const struct swc_raft_frame *f)
{
    if (f->len >= 9 && f->payload[0] == SWC_RAFT_INT_REMOVE) {
        uint64_t id = swc_get_u64(f->payload + 1);
        if (swc_raft_removed_add(r, id) != 0) {
            swc_errorf(MOD, "record removed raft id %llu: out of memory", (unsigned long long)id);
        }
    }
}

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct swc_raft *r = rf->data;
    uint64_t index = raft_last_applied(&r->raft) + 1;
    uint8_t flags;
    const uint8_t *body;
    size_t len;

    r->n_results = 0;
    *result = r;
    if (swc_raft_hdr_get(buf->base, buf->len, 'E', &flags) != 0) {
        const uint8_t *q = buf->base;
        swc_errorf(
            MOD,
            "manager %llu: entry %llu (%zu bytes: %02x%02x%02x%02x): not a swarmc entry, skipped",
            (unsigned long long)r->id, (unsigned long long)index, buf->len, buf->len > 0 ? q[0] : 0,
            buf->len > 1 ? q[1] : 0, buf->len > 2 ? q[2] : 0, buf->len > 3 ? q[3] : 0);
        return 0;
    }
    body = (const uint8_t *)buf->base + SWC_RAFT_HDR_LEN;
    len = buf->len - SWC_RAFT_HDR_LEN;
    uint8_t pad = ((const uint8_t *)buf->base)[6];
    if (pad > 7 || pad > len) {
        swc_errorf(MOD, "entry %llu: bad padding, skipped", (unsigned long long)index);
        return 0;
    }
    len -= pad;
    if (flags & SWC_RAFT_F_SEALED) {
#if SWC_RAFT_SEAL
        r->plain.len = 0;
        int rv = r->sealed ? swc_data_open(r->key, body, len, &r->plain) : SWC_EAUTH;
        if (rv != 0) {
            /* Skipping would diverge from the other managers; stalling the
             * apply loop is the safe failure (raft retries on the next tick). */
            swc_errorf(MOD, "entry %llu: cannot open with the data key: %s",
                       (unsigned long long)index, swc_strerror(rv));
            return RAFT_CORRUPT;
        }
        body = r->plain.data;
        len = r->plain.len;
#else
        swc_errorf(MOD, "entry %llu is sealed but sealing is compiled out",
                   (unsigned long long)index);
        return RAFT_CORRUPT;
#endif
    }
    size_t off = 0;
    struct swc_raft_frame f;
    int k;
    while ((k = swc_raft_frame_next(body, len, &off, &f)) == 1) {
        if (f.proposer == 0) {
            apply_internal(r, &f);
            continue;
        }
        int res = r->fsm.apply(r->fsm.data, index, f.payload, f.len);
        if (f.proposer == r->id) {
            push_result(r, res);
        }
    }
    if (k < 0) {
        swc_errorf(MOD, "entry %llu: malformed frame at offset %zu", (unsigned long long)index,
                   off);
    }
    return 0;
}

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
    struct swc_raft *r = rf->data;
    int rv;
    r->snap_owner.len = 0;
    rv = r->fsm.snapshot(r->fsm.data, &r->snap_owner);
    if (rv != 0) {
        swc_warnf(MOD, "snapshot: %s (retried later)", swc_strerror(rv));
        return RAFT_BUSY;
    }
    r->snap_hdr.len = 0;
    if (swc_buf_reserve(&r->snap_hdr, SWC_RAFT_HDR_LEN + 4 + 8 * r->n_removed) != 0) {
        return RAFT_BUSY;
    }
    uint8_t *p = r->snap_hdr.data;
    swc_raft_hdr_put(p, 'S', r->sealed ? SWC_RAFT_F_SEALED : 0);
    swc_put_u32(p + SWC_RAFT_HDR_LEN, (uint32_t)r->n_removed);
    for (size_t i = 0; i < r->n_removed; i++) {
        swc_put_u64(p + SWC_RAFT_HDR_LEN + 4 + 8 * i, r->removed[i]);
    }
    r->snap_hdr.len = SWC_RAFT_HDR_LEN + 4 + 8 * r->n_removed;
    r->snap_bufs[0].base = r->snap_hdr.data;
    r->snap_bufs[0].len = r->snap_hdr.len;
    r->snap_bufs[1].base = r->snap_owner.data;
    r->snap_bufs[1].len = r->snap_owner.len;
#if SWC_RAFT_SEAL
    if (r->sealed) {
        r->snap_sealed.len = 0;
        rv = swc_data_seal(r->key, r->snap_owner.data, r->snap_owner.len, &r->snap_sealed);
        if (rv != 0) {
            return RAFT_BUSY;
        }
        r->snap_bufs[1].base = r->snap_sealed.data;
        r->snap_bufs[1].len = r->snap_sealed.len;
    }
#endif
    *bufs = r->snap_bufs;
    *n = r->snap_bufs[1].len > 0 ? 2 : 1;
    r->stats.snapshots_taken++;
    return 0;
}

/* The buffers are ours and reused: nothing to free. */
static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
    *bufs = NULL;
    *n = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct swc_raft *r = rf->data;
    const uint8_t *p = buf->base;
    size_t len = buf->len;
    uint8_t flags;
    int rv = RAFT_CORRUPT;

    if (swc_raft_hdr_get(p, len, 'S', &flags) != 0 || len < SWC_RAFT_HDR_LEN + 4) {
        swc_errorf(MOD, "restore: not a swarmc snapshot");
        goto out;
    }
    uint32_t nrem = swc_get_u32(p + SWC_RAFT_HDR_LEN);
    size_t off = SWC_RAFT_HDR_LEN + 4;
    if ((len - off) / 8 < nrem) {
        swc_errorf(MOD, "restore: truncated snapshot");
        goto out;
    }
    r->n_removed = 0;
    for (uint32_t i = 0; i < nrem; i++) {
        if (swc_raft_removed_add(r, swc_get_u64(p + off)) != 0) {
            rv = RAFT_NOMEM;
            goto out;
        }
        off += 8;
    }
    const uint8_t *body = p + off;
    size_t blen = len - off;
    if (flags & SWC_RAFT_F_SEALED) {
#if SWC_RAFT_SEAL
        r->plain.len = 0;
        int orv = r->sealed ? swc_data_open(r->key, body, blen, &r->plain) : SWC_EAUTH;
        if (orv != 0) {
            swc_errorf(MOD, "restore: cannot open snapshot with the data key: %s",
                       swc_strerror(orv));
            goto out;
        }
        body = r->plain.data;
        blen = r->plain.len;
#else
        swc_errorf(MOD, "restore: sealed snapshot but sealing is compiled out");
        goto out;
#endif
    }
    int frv = r->fsm.restore(r->fsm.data, body, blen);
    if (frv != 0) {
        swc_errorf(MOD, "restore: %s", swc_strerror(frv));
        goto out;
    }
    r->stats.snapshots_restored++;
    rv = 0;
out:
    if (rv == 0) {
        raft_free(buf->base); /* ours on success (raft 0.15 contract) */
    }
    return rv;
}

/* Fill r->rfsm with the version-2 FSM above. */
void swc_raft_fsm_setup(struct swc_raft *r)
{
    r->rfsm.version = 2;
    r->rfsm.data = r;
    r->rfsm.apply = fsm_apply;
    r->rfsm.snapshot = fsm_snapshot;
    r->rfsm.restore = fsm_restore;
    r->rfsm.snapshot_finalize = fsm_snapshot_finalize;
    r->rfsm.snapshot_async = NULL;
}
