/* Frame and RPC header codec (see frame.h). Every length read from the wire
 * is checked against what is left before it is used; nothing allocates. */
#include "net/frame.h"

#include <string.h>

#include "base/err.h"

int swc_frame_parse(const uint8_t *p, size_t len, uint32_t max, const uint8_t **payload,
                    uint32_t *plen, size_t *consumed, size_t *need)
{
    *consumed = 0;
    *need = 0;
    if (len < SWC_FRAME_LEN_SIZE) {
        return 0;
    }
    uint32_t n = swc_get_u32(p);
    if (n > max) {
        return SWC_ETOOBIG;
    }
    size_t total = (size_t)n + SWC_FRAME_LEN_SIZE;
    if (len < total) {
        *need = total;
        return 0;
    }
    *payload = p + SWC_FRAME_LEN_SIZE;
    *plen = n;
    *consumed = total;
    return 0;
}

void swc_frame_put_len(uint8_t prefix[SWC_FRAME_LEN_SIZE], uint32_t len)
{
    swc_put_u32(prefix, len);
}

static size_t errmsg_len(const struct swc_rpc_hdr *h)
{
    return h->errmsg_len > SWC_RPC_ERRMSG_MAX ? SWC_RPC_ERRMSG_MAX : h->errmsg_len;
}

size_t swc_rpc_hdr_size(const struct swc_rpc_hdr *h)
{
    size_t n = 7;
    switch (h->kind) {
    case SWC_RPC_KIND_REQUEST:
        n += 5 + h->method_len;
        break;
    case SWC_RPC_KIND_REPLY:
    case SWC_RPC_KIND_END:
        n += 3 + errmsg_len(h);
        break;
    default:
        break;
    }
    return n;
}

size_t swc_rpc_hdr_encode(const struct swc_rpc_hdr *h, uint8_t *out)
{
    uint8_t *p = out;
    *p++ = SWC_RPC_HDR_VERSION;
    *p++ = h->kind;
    *p++ = h->flags;
    swc_put_u32(p, h->call_id);
    p += 4;
    switch (h->kind) {
    case SWC_RPC_KIND_REQUEST:
        swc_put_u32(p, h->timeout_ms);
        p += 4;
        *p++ = (uint8_t)h->method_len;
        memcpy(p, h->method, h->method_len);
        p += h->method_len;
        break;
    case SWC_RPC_KIND_REPLY:
    case SWC_RPC_KIND_END: {
        size_t m = errmsg_len(h);
        *p++ = (uint8_t)h->status;
        *p++ = (uint8_t)(m >> 8);
        *p++ = (uint8_t)m;
        if (m > 0) {
            memcpy(p, h->errmsg, m);
        }
        p += m;
        break;
    }
    default:
        break;
    }
    return (size_t)(p - out);
}

int swc_rpc_hdr_decode(const uint8_t *p, size_t len, struct swc_rpc_hdr *h)
{
    memset(h, 0, sizeof(*h));
    if (len < 7 || p[0] != SWC_RPC_HDR_VERSION) {
        return SWC_EPROTO;
    }
    h->kind = p[1];
    h->flags = p[2];
    h->call_id = swc_get_u32(p + 3);
    size_t off = 7;
    switch (h->kind) {
    case SWC_RPC_KIND_REQUEST:
        if (len - off < 5) {
            return SWC_EPROTO;
        }
        h->timeout_ms = swc_get_u32(p + off);
        h->method_len = p[off + 4];
        off += 5;
        if (h->method_len == 0 || len - off < h->method_len) {
            return SWC_EPROTO;
        }
        h->method = (const char *)p + off;
        if (memchr(h->method, '\0', h->method_len) != NULL) {
            return SWC_EPROTO;
        }
        off += h->method_len;
        break;
    case SWC_RPC_KIND_REPLY:
    case SWC_RPC_KIND_END:
        if (len - off < 3) {
            return SWC_EPROTO;
        }
        h->status = p[off];
        h->errmsg_len = ((size_t)p[off + 1] << 8) | p[off + 2];
        off += 3;
        if (h->status >= SWC_E_COUNT || h->errmsg_len > SWC_RPC_ERRMSG_MAX ||
            len - off < h->errmsg_len) {
            return SWC_EPROTO;
        }
        h->errmsg = (const char *)p + off;
        off += h->errmsg_len;
        break;
    case SWC_RPC_KIND_MESSAGE:
    case SWC_RPC_KIND_CANCEL:
        break;
    default:
        return SWC_EPROTO;
    }
    h->body = p + off;
    h->body_len = len - off;
    return 0;
}
