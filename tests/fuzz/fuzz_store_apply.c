/* libFuzzer driver: arbitrary bytes as a raft entry applied to a store that
 * already holds a few objects, then as a snapshot to restore. Checks that
 * nothing crashes or leaks and that a snapshot of whatever the entry left
 * restores into an identical store. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static const uint8_t seed_txn[] = {
    /* one StoreTransaction: proposal 1, proposer "1", create task "t1" of
     * service "s", node "n", slot 1, desired RUNNING(512), status RUNNING */
    0x08, 0x01, 0x12, 0x01, '1',  0x1a, 0x1e, 0x08, 0x00, 0x10, 0x03, 0x1a, 0x02,
    't',  '1',  0x2a, 0x14, 0x0a, 0x02, 't',  '1',  0x2a, 0x01, 's',  0x30, 0x01,
    0x3a, 0x01, 'n',  0x50, 0x80, 0x04, 0x5a, 0x03, 0x10, 0x80, 0x04};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct swc_store *s, *r;
    struct swc_buf b, snap;
    if (swc_store_create(&s) != 0) {
        return 0;
    }
    swc_buf_init(&b);
    swc_buf_init(&snap);
    if (swc_store_batch_append(&b, seed_txn, sizeof(seed_txn)) == 0) {
        swc_store_apply_entry(s, 1, b.data, b.len, NULL, NULL);
    }
    swc_store_apply_entry(s, 2, data, size, NULL, NULL);
    if (swc_store_snapshot(s, &snap) == 0 && swc_store_create(&r) == 0) {
        if (swc_store_restore(r, snap.data, snap.len) != 0) {
            abort(); /* a snapshot we wrote must restore */
        }
        for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
            if (swc_store_count(r, k) != swc_store_count(s, k)) {
                abort();
            }
        }
        swc_store_restore(r, data, size); /* raw bytes as a snapshot */
        swc_store_destroy(r);
    }
    swc_buf_free(&b);
    swc_buf_free(&snap);
    swc_store_destroy(s);
    return 0;
}
