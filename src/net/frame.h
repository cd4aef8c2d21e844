/* Pure codec of the RPC wire format: frames and the per-frame RPC header.
 * No libuv here, so tests and the fuzzer drive it directly.
 *
 * Frame: u32 big-endian length | payload (length excludes itself). A length
 * above the connection's maximum is refused before any byte of the payload
 * is buffered.
 *
 * Header (the first bytes of every frame payload, integers big-endian):
 *   u8 version (1) | u8 kind | u8 flags | u32 call id | kind-specific:
 *     REQUEST: u32 timeout ms (0 = none) | u8 method length | method
 *     REPLY, END: u8 status (SWC_E* code) | u16 message length | message
 *     MESSAGE, CANCEL: nothing
 *   then the caller's opaque bytes until the end of the frame. */
#ifndef SWC_NET_FRAME_H
#define SWC_NET_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define SWC_FRAME_LEN_SIZE  4
#define SWC_RPC_HDR_VERSION 1
#define SWC_RPC_HDR_MAX     (7 + 5 + 255) /* fixed part + longest variable part */
#define SWC_RPC_ERRMSG_MAX  1024          /* longer messages are truncated */

enum swc_rpc_kind {
    SWC_RPC_KIND_REQUEST = 1,
    SWC_RPC_KIND_REPLY = 2,
    SWC_RPC_KIND_MESSAGE = 3,
    SWC_RPC_KIND_END = 4,
    SWC_RPC_KIND_CANCEL = 5,
};

/* Header flags. */
#define SWC_RPC_FLAG_STREAM 0x01 /* REQUEST: the caller expects a stream */

struct swc_rpc_hdr {
    uint8_t kind;
    uint8_t flags;
    uint32_t call_id;
    uint32_t timeout_ms; /* REQUEST */
    const char *method;  /* REQUEST; not NUL-terminated */
    size_t method_len;   /* 1..255 */
    int status;          /* REPLY, END */
    const char *errmsg;  /* REPLY, END; not NUL-terminated */
    size_t errmsg_len;   /* <= SWC_RPC_ERRMSG_MAX */
    const uint8_t *body; /* decode: the opaque bytes after the header */
    size_t body_len;
};

/* Look for one frame at the start of p[0..len). Returns 0 and sets
 * *consumed to the frame's total size (prefix included) and *payload,
 * *plen to its payload when a whole frame is there; returns 0 with
 * *consumed = 0 when more bytes are needed (*need then says how many bytes
 * the whole frame takes once the prefix is known, else 0); returns
 * SWC_ETOOBIG when the announced length exceeds max. */
int swc_frame_parse(const uint8_t *p, size_t len, uint32_t max, const uint8_t **payload,
                    uint32_t *plen, size_t *consumed, size_t *need);

/* Write the 4-byte length prefix for a payload of len bytes. */
void swc_frame_put_len(uint8_t prefix[SWC_FRAME_LEN_SIZE], uint32_t len);

/* Size of h's encoded header (without body). */
size_t swc_rpc_hdr_size(const struct swc_rpc_hdr *h);

/* Encode h's header (not its body) into out, which must hold
 * swc_rpc_hdr_size(h) bytes; returns that size. */
size_t swc_rpc_hdr_encode(const struct swc_rpc_hdr *h, uint8_t *out);

/* Decode a frame payload into h (pointers into p). 0, or SWC_EPROTO when
 * the version, kind, lengths or status are invalid. */
int swc_rpc_hdr_decode(const uint8_t *p, size_t len, struct swc_rpc_hdr *h);

#endif
