/* libFuzzer driver for the HTTP/1.x reply parser (src/worker/http_parse.c),
 * which reads whatever the engine's socket delivers. The first input byte
 * picks the size of the pieces the rest is fed in and, now and then, a small
 * body limit; the reply is parsed whole and in pieces, and both parses must
 * agree (same end, status, body bytes and message), since a socket may cut a
 * reply anywhere. Corpus: tests/fuzz/corpus/worker_http/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
    enum swc_http_ev end;
    int status;
    uint64_t body_len;
    uint32_t body_hash;
    char err[160];
};

static struct swc_http_parser P;

static void run(const uint8_t *data, size_t size, size_t step, uint64_t limit, bool eof,
                struct out *o)
{
    memset(o, 0, sizeof(*o));
    o->end = SWC_HTTP_MORE;
    o->body_hash = 2166136261u;
    swc_http_init(&P);
    if (limit != 0) {
        P.max_body = limit;
    }
    for (size_t at = 0; at < size || size == 0;) {
        size_t n = size - at < step ? size - at : step;
        const char *p = (const char *)data + at, *piece;
        size_t len = n, plen;
        at += n;
        for (;;) {
            enum swc_http_ev ev = swc_http_step(&P, &p, &len, &piece, &plen);
            if (ev == SWC_HTTP_MORE) {
                if (len != 0) {
                    abort(); /* MORE means all input was consumed */
                }
                break;
            }
            if (ev == SWC_HTTP_HEAD) {
                o->status = P.status;
                if (P.status < 100 || P.status > 999) {
                    abort();
                }
            } else if (ev == SWC_HTTP_BODY) {
                if (piece < (const char *)data || piece + plen > (const char *)data + size) {
                    abort(); /* body pieces point into the input */
                }
                o->body_len += plen;
                for (size_t i = 0; i < plen; i++) {
                    o->body_hash = (o->body_hash ^ (uint8_t)piece[i]) * 16777619u;
                }
            } else {
                o->end = ev;
                memcpy(o->err, P.err, sizeof(o->err));
                return;
            }
        }
        if (size == 0) {
            break;
        }
    }
    if (eof) {
        o->end = swc_http_eof(&P);
        memcpy(o->err, P.err, sizeof(o->err));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct out whole, cut;
    size_t step;
    uint64_t limit;
    bool eof;
    if (size < 1) {
        return 0;
    }
    step = (size_t)(data[0] & 0x1f) + 1;
    limit = (data[0] & 0x40) ? (uint64_t)(data[0] & 0x1f) * 7 : 0;
    eof = (data[0] & 0x20) != 0;
    data++;
    size--;
    run(data, size, size ? size : 1, limit, eof, &whole);
    run(data, size, step, limit, eof, &cut);
    if (whole.end != cut.end || whole.status != cut.status || whole.body_len != cut.body_len ||
        whole.body_hash != cut.body_hash || strcmp(whole.err, cut.err) != 0) {
        abort();
    }
    if (whole.body_len > size) {
        abort();
    }
    return 0;
}
