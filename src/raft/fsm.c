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

/* Count an applied entry toward the byte trigger. raft 0.15 has no "take a
 * snapshot now" call, but it checks its entry threshold after every batch of
 * applied entries, so lowering the threshold to 1 makes the next check take
 * one; fsm_snapshot puts it back. */
static void note_entry_bytes(struct swc_raft *r, size_t len)
{
    r->ring[r->ring_head] = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    r->ring_head = (r->ring_head + 1) % SWC_RAFT_RING;
    if (r->ring_n < SWC_RAFT_RING) {
        r->ring_n++;
    }
    r->log_bytes += len;
    /* Past the floor, allow half the last snapshot's size: a snapshot then
     * costs at most twice the bytes logged since the previous one. */
    size_t limit =
        r->snap_log_bytes > r->last_snap_len / 2 ? r->snap_log_bytes : r->last_snap_len / 2;
    if (!r->snap_forced && r->log_bytes >= limit) {
        r->snap_forced = true;
        raft_set_snapshot_threshold(&r->raft, 1);
    }
}

/* Entries to keep after this snapshot: at most snap_trailing, and only as
 * many of the newest as fit in snap_trail_bytes (at least one). */
static unsigned trailing_for_bytes(const struct swc_raft *r)
{
    size_t sum = 0;
    unsigned n = 0;
    while (n < r->ring_n && n < r->snap_trailing) {
        unsigned i = (r->ring_head + SWC_RAFT_RING - 1 - n) % SWC_RAFT_RING;
        if (n > 0 && sum + r->ring[i] > r->snap_trail_bytes) {
            return n;
        }
        sum += r->ring[i];
        n++;
    }
    return n < r->ring_n ? n : r->snap_trailing; /* all we know of fits */
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
    note_entry_bytes(r, buf->len);
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
    int64_t t0 = swc_now_mono();
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
        /* Seal in place rather than into a second buffer as big as the
         * state (kept between snapshots, it would double what a snapshot
         * leaves resident): shift the plaintext up by the nonce, then seal. */
        size_t plen = r->snap_owner.len;
        if (swc_buf_reserve(&r->snap_owner, SWC_DATA_SEAL_OVERHEAD) != 0) {
            return RAFT_BUSY;
        }
        memmove(r->snap_owner.data + SWC_DATA_SEAL_NONCE, r->snap_owner.data, plen);
        r->snap_owner.len = SWC_DATA_SEAL_NONCE + plen;
        rv = swc_data_seal_inplace(r->key, &r->snap_owner, SWC_DATA_SEAL_NONCE);
        if (rv != 0) {
            return RAFT_BUSY;
        }
        r->snap_bufs[1].base = r->snap_owner.data;
        r->snap_bufs[1].len = r->snap_owner.len;
    }
#endif
    *bufs = r->snap_bufs;
    *n = r->snap_bufs[1].len > 0 ? 2 : 1;
    r->stats.snapshots_taken++;
    /* raft reads the trailing count when the snapshot is stored, after this
     * returns: set it now from the sizes of the newest entries. */
    raft_set_snapshot_trailing(&r->raft, trailing_for_bytes(r));
    if (r->snap_forced) {
        r->stats.snapshots_by_bytes++;
        r->snap_forced = false;
        raft_set_snapshot_threshold(&r->raft, r->snap_threshold);
    }
    r->log_bytes = 0;
    r->last_snap_len = r->snap_bufs[1].len;
    int64_t ms = (swc_now_mono() - t0) / SWC_NS_PER_MS;
    if (ms >= 20) {
        swc_infof(MOD, "manager %llu: snapshot of %zu bytes took %lld ms",
                  (unsigned long long)r->id, r->last_snap_len, (long long)ms);
    }
    return 0;
}

/* The snapshot is stored (raft calls this once the write is done, right
 * before it drops the log entries the snapshot covers). The buffers are ours
 * and reused: nothing to free. The dropped entries go back to malloc, which
 * would keep them resident: the check handle hands the free pages back at
 * the end of this loop turn (swc_raft_trim_run). */
static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
    struct swc_raft *r = rf->data;
    *bufs = NULL;
    *n = 0;
    r->trim_due = true;
    swc_raft_kick(r);
    return 0;
}

/* Also trim when a lot was freed since the last trim, whatever freed it:
 * bursts (a list reply of 10k tasks, a batch of decoded tasks, proposals
 * once committed) otherwise stay resident in malloc's arenas (~700 B per
 * pending task measured with 10k). At most once per TRIM_EVERY_MS: with
 * 100k tasks a trim costs 50-70 ms of loop time. */
#define TRIM_FREED_BYTES (4u << 20)
#define TRIM_EVERY_MS    2000

void swc_raft_trim_run(struct swc_raft *r)
{
    int64_t now = swc_now_mono();
    if (!r->trim_due && (now - r->trim_at < (int64_t)TRIM_EVERY_MS * SWC_NS_PER_MS ||
                         swc_alloc_freed() < TRIM_FREED_BYTES)) {
        return;
    }
    r->trim_due = false;
    r->trim_at = now;
    swc_alloc_trim();
    int64_t ms = (swc_now_mono() - now) / SWC_NS_PER_MS;
    if (ms >= 20) {
        swc_infof(MOD, "manager %llu: returning freed memory took %lld ms",
                  (unsigned long long)r->id, (long long)ms);
    }
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
