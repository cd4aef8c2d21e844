/* Raft adapter helpers that need no loop: raft's heap routed through the
 * swc allocation seam, the entry/snapshot codec (layout in raft_int.h), the
 * raft error mapping and the replicated set of removed raft ids. */
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

/* --- raft heap through the swc seam -------------------------------------- */

static void *heap_malloc(void *d, size_t n)
{
    return swc_malloc(n);
}
static void heap_free(void *d, void *p)
{
    swc_free(p);
}
static void *heap_calloc(void *d, size_t n, size_t s)
{
    return swc_calloc(n, s);
}
static void *heap_realloc(void *d, void *p, size_t n)
{
    return swc_realloc(p, n);
}
/* Aligned blocks (raft_uv's direct I/O buffers): over-allocate and keep the
 * raw pointer just below the aligned one. */
static void *heap_aligned_alloc(void *d, size_t align, size_t n)
{
    if (align < sizeof(void *)) {
        align = sizeof(void *);
    }
    uint8_t *raw = swc_malloc(n + align + sizeof(void *));
    if (raw == NULL) {
        return NULL;
    }
    uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)p)[-1] = raw;
    return (void *)p;
}
static void heap_aligned_free(void *d, size_t align, void *p)
{
    if (p != NULL) {
        swc_free(((void **)p)[-1]);
    }
}
static struct raft_heap swc_heap = {NULL,         heap_malloc,        heap_free,        heap_calloc,
                                    heap_realloc, heap_aligned_alloc, heap_aligned_free};

/* --- codec ------------------------------------------------------------------ */

void swc_raft_hdr_put(uint8_t *p, char kind, uint8_t flags)
{
    p[0] = 'S';
    p[1] = 'W';
    p[2] = 'R';
    p[3] = (uint8_t)kind;
    p[4] = 1;
    p[5] = flags;
    p[6] = 0;
    p[7] = 0;
}

int swc_raft_hdr_get(const uint8_t *p, size_t len, char kind, uint8_t *flags)
{
    if (len < SWC_RAFT_HDR_LEN || p[0] != 'S' || p[1] != 'W' || p[2] != 'R' ||
        p[3] != (uint8_t)kind || p[4] != 1 || (p[5] & ~SWC_RAFT_F_SEALED) != 0 || p[7] != 0) {
        return SWC_EPROTO;
    }
    *flags = p[5];
    return 0;
}

int swc_raft_frame_next(const uint8_t *body, size_t len, size_t *off, struct swc_raft_frame *f)
{
    size_t o = *off;
    if (o == len) {
        return 0;
    }
    if (len - o < SWC_RAFT_FRAME_HDR) {
        return -1;
    }
    f->proposer = swc_get_u64(body + o);
    f->seq = swc_get_u64(body + o + 8);
    f->len = swc_get_u32(body + o + 16);
    o += SWC_RAFT_FRAME_HDR;
    if (len - o < f->len) {
        return -1;
    }
    f->payload = body + o;
    *off = o + f->len;
    return 1;
}

/* Route raft's allocations through the swc seam (idempotent). */
void swc_raft_heap_install(void)
{
    raft_heap_set(&swc_heap);
}

int swc_raft_map_err(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOMEM:
        return SWC_ENOMEM;
    case RAFT_NOTLEADER:
        return SWC_ENOTLEADER;
    case RAFT_LEADERSHIPLOST:
        return SWC_ELEADERLOST;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return SWC_ECLOSED;
    case RAFT_CANTBOOTSTRAP:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
        return SWC_EEXIST;
    case RAFT_BADID:
    case RAFT_NOTFOUND:
        return SWC_ENOENT;
    case RAFT_CANTCHANGE:
    case RAFT_BUSY:
        return SWC_EBUSY;
    case RAFT_TOOBIG:
        return SWC_ETOOBIG;
    case RAFT_NOCONNECTION:
        return SWC_EUNAVAIL;
    case RAFT_BADROLE:
    case RAFT_INVALID:
        return SWC_EINVAL;
    case RAFT_CORRUPT:
    case RAFT_MALFORMED:
        return SWC_EPROTO;
    default:
        return SWC_EIO;
    }
}

bool swc_raft_removed_has(struct swc_raft *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_removed; i++) {
        if (r->removed[i] == id) {
            return true;
        }
    }
    return false;
}

int swc_raft_removed_add(struct swc_raft *r, uint64_t id)
{
    if (swc_raft_removed_has(r, id)) {
        return 0;
    }
    uint64_t *n = swc_realloc(r->removed, (r->n_removed + 1) * sizeof *n);
    if (n == NULL) {
        return SWC_ENOMEM;
    }
    r->removed = n;
    r->removed[r->n_removed++] = id;
    return 0;
}
