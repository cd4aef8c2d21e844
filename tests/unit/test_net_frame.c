/* The pure frame and RPC header codec (net/frame.h): partial input, the
 * size limit, round trips of every kind and refusal of malformed headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "net/frame.h"

static void test_parse_partial_then_whole(void **state)
{
    uint8_t buf[4 + 5] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    const uint8_t *p = NULL;
    uint32_t plen = 0;
    size_t consumed = 99, need = 0;
    for (size_t n = 0; n < sizeof(buf); n++) {
        assert_int_equal(swc_frame_parse(buf, n, 16, &p, &plen, &consumed, &need), 0);
        assert_int_equal(consumed, 0);
        assert_int_equal(need, n >= 4 ? sizeof(buf) : 0);
    }
    assert_int_equal(swc_frame_parse(buf, sizeof(buf), 16, &p, &plen, &consumed, &need), 0);
    assert_int_equal(consumed, sizeof(buf));
    assert_int_equal(plen, 5);
    assert_memory_equal(p, "hello", 5);
}

static void test_parse_limit(void **state)
{
    uint8_t buf[4];
    const uint8_t *p;
    uint32_t plen;
    size_t consumed, need;
    swc_frame_put_len(buf, 1024);
    assert_int_equal(swc_frame_parse(buf, 4, 1024, &p, &plen, &consumed, &need), 0);
    assert_int_equal(need, 1028);
    swc_frame_put_len(buf, 1025);
    assert_int_equal(swc_frame_parse(buf, 4, 1024, &p, &plen, &consumed, &need), SWC_ETOOBIG);
    swc_frame_put_len(buf, UINT32_MAX);
    assert_int_equal(swc_frame_parse(buf, 4, 16u << 20, &p, &plen, &consumed, &need), SWC_ETOOBIG);
}

static void roundtrip(const struct swc_rpc_hdr *in, const char *body)
{
    uint8_t buf[SWC_RPC_HDR_MAX + SWC_RPC_ERRMSG_MAX + 64];
    size_t n = swc_rpc_hdr_encode(in, buf);
    assert_int_equal(n, swc_rpc_hdr_size(in));
    size_t blen = strlen(body);
    memcpy(buf + n, body, blen);
    struct swc_rpc_hdr out;
    assert_int_equal(swc_rpc_hdr_decode(buf, n + blen, &out), 0);
    assert_int_equal(out.kind, in->kind);
    assert_int_equal(out.flags, in->flags);
    assert_int_equal(out.call_id, in->call_id);
    assert_int_equal(out.body_len, blen);
    assert_memory_equal(out.body, body, blen);
    if (in->kind == SWC_RPC_KIND_REQUEST) {
        assert_int_equal(out.timeout_ms, in->timeout_ms);
        assert_int_equal(out.method_len, in->method_len);
        assert_memory_equal(out.method, in->method, in->method_len);
    }
    if (in->kind == SWC_RPC_KIND_REPLY || in->kind == SWC_RPC_KIND_END) {
        assert_int_equal(out.status, in->status);
        assert_int_equal(out.errmsg_len, in->errmsg_len);
        assert_memory_equal(out.errmsg, in->errmsg, in->errmsg_len);
    }
}

static void test_header_roundtrip(void **state)
{
    struct swc_rpc_hdr req = {.kind = SWC_RPC_KIND_REQUEST,
                              .flags = SWC_RPC_FLAG_STREAM,
                              .call_id = 0xdeadbeef,
                              .timeout_ms = 1500,
                              .method = "dispatcher.Session",
                              .method_len = 18};
    roundtrip(&req, "payload");
    struct swc_rpc_hdr rep = {.kind = SWC_RPC_KIND_REPLY,
                              .call_id = 7,
                              .status = SWC_ENOTLEADER,
                              .errmsg = "not the leader",
                              .errmsg_len = 14};
    roundtrip(&rep, "");
    struct swc_rpc_hdr end = {.kind = SWC_RPC_KIND_END, .call_id = 8};
    roundtrip(&end, "x");
    struct swc_rpc_hdr msg = {.kind = SWC_RPC_KIND_MESSAGE, .call_id = 9};
    roundtrip(&msg, "stream bytes");
    struct swc_rpc_hdr can = {.kind = SWC_RPC_KIND_CANCEL, .call_id = 10};
    roundtrip(&can, "");
}

static void test_header_garbage(void **state)
{
    struct swc_rpc_hdr h;
    /* Too short, bad version, unknown kinds. */
    uint8_t shortb[6] = {1, 1, 0, 0, 0, 0};
    assert_int_equal(swc_rpc_hdr_decode(shortb, sizeof(shortb), &h), SWC_EPROTO);
    uint8_t badver[7] = {2, SWC_RPC_KIND_CANCEL, 0, 0, 0, 0, 1};
    assert_int_equal(swc_rpc_hdr_decode(badver, sizeof(badver), &h), SWC_EPROTO);
    uint8_t kind0[7] = {1, 0, 0, 0, 0, 0, 1};
    assert_int_equal(swc_rpc_hdr_decode(kind0, sizeof(kind0), &h), SWC_EPROTO);
    uint8_t kind6[7] = {1, 6, 0, 0, 0, 0, 1};
    assert_int_equal(swc_rpc_hdr_decode(kind6, sizeof(kind6), &h), SWC_EPROTO);
    /* Request whose method runs past the end, or is empty. */
    uint8_t req[12 + 3] = {1, SWC_RPC_KIND_REQUEST, 0, 0, 0, 0, 1, 0, 0, 0, 0, 4, 'a', 'b', 'c'};
    assert_int_equal(swc_rpc_hdr_decode(req, sizeof(req), &h), SWC_EPROTO);
    req[11] = 3;
    assert_int_equal(swc_rpc_hdr_decode(req, sizeof(req), &h), 0);
    req[11] = 0;
    assert_int_equal(swc_rpc_hdr_decode(req, sizeof(req), &h), SWC_EPROTO);
    /* Reply with an unknown status or a message running past the end. */
    uint8_t rep[10 + 2] = {1, SWC_RPC_KIND_REPLY, 0, 0, 0, 0, 1, SWC_E_COUNT, 0, 2, 'o', 'k'};
    assert_int_equal(swc_rpc_hdr_decode(rep, sizeof(rep), &h), SWC_EPROTO);
    rep[7] = SWC_EIO;
    assert_int_equal(swc_rpc_hdr_decode(rep, sizeof(rep), &h), 0);
    rep[9] = 3;
    assert_int_equal(swc_rpc_hdr_decode(rep, sizeof(rep), &h), SWC_EPROTO);
    /* Every truncation of a valid request is refused, never read past. */
    uint8_t full[64];
    struct swc_rpc_hdr r = {
        .kind = SWC_RPC_KIND_REQUEST, .call_id = 1, .method = "m.x", .method_len = 3};
    size_t n = swc_rpc_hdr_encode(&r, full);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(swc_rpc_hdr_decode(full, i, &h), SWC_EPROTO);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_partial_then_whole),
        cmocka_unit_test(test_parse_limit),
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
