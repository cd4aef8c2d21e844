/* libFuzzer driver for everything a peer's bytes reach before any handler:
 * the frame splitter, the RPC header decoder and the protobuf decode of a
 * dispatcher message body. The first input byte picks a small frame limit
 * now and then so the size check is exercised too. Corpus:
 * tests/fuzz/corpus/net_frame/. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/dispatcher.pb-c.h"
#include "base/alloc.h"
#include "net/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint32_t max = (data[0] & 0x80) ? (uint32_t)(data[0] & 0x7f) * 16 : (16u << 20);
    data++;
    size--;
    size_t off = 0;
    while (off < size) {
        const uint8_t *p;
        uint32_t plen;
        size_t consumed, need;
        if (swc_frame_parse(data + off, size - off, max, &p, &plen, &consumed, &need) != 0 ||
            consumed == 0) {
            break;
        }
        off += consumed;
        struct swc_rpc_hdr h;
        if (swc_rpc_hdr_decode(p, plen, &h) != 0) {
            continue;
        }
        /* Re-encoding what decoded must give the same header bytes. */
        uint8_t enc[SWC_RPC_HDR_MAX + SWC_RPC_ERRMSG_MAX];
        size_t n = swc_rpc_hdr_encode(&h, enc);
        if (n != (size_t)(h.body - p) || memcmp(enc, p, n) != 0) {
            __builtin_trap();
        }
        Swarmc__AssignmentsMessage *m =
            swarmc__assignments_message__unpack(&swc_pb_allocator, h.body_len, h.body);
        if (m != NULL) {
            swarmc__assignments_message__free_unpacked(m, &swc_pb_allocator);
        }
    }
    return 0;
}
