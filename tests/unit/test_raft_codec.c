/* Raft adapter codec: entry/snapshot headers and proposal frames, including
 * every malformed shape a corrupted or foreign entry could take. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "raft/raft_int.h"

static size_t put_frame(uint8_t *p, uint64_t proposer, uint64_t seq, const char *s)
{
    size_t n = strlen(s);
    swc_put_u64(p, proposer);
    swc_put_u64(p + 8, seq);
    swc_put_u32(p + 16, (uint32_t)n);
    memcpy(p + SWC_RAFT_FRAME_HDR, s, n);
    return SWC_RAFT_FRAME_HDR + n;
}

static void test_header(void **state)
{
    uint8_t h[SWC_RAFT_HDR_LEN];
    uint8_t flags = 0xff;
    swc_raft_hdr_put(h, 'E', SWC_RAFT_F_SEALED);
    assert_int_equal(swc_raft_hdr_get(h, sizeof h, 'E', &flags), 0);
    assert_int_equal(flags, SWC_RAFT_F_SEALED);
    /* wrong kind, short, bad magic, unknown version, unknown flag, reserved byte */
    assert_int_equal(swc_raft_hdr_get(h, sizeof h, 'S', &flags), SWC_EPROTO);
    assert_int_equal(swc_raft_hdr_get(h, sizeof h - 1, 'E', &flags), SWC_EPROTO);
    h[0] = 'X';
    assert_int_equal(swc_raft_hdr_get(h, sizeof h, 'E', &flags), SWC_EPROTO);
    swc_raft_hdr_put(h, 'E', 0);
    h[4] = 2;
    assert_int_equal(swc_raft_hdr_get(h, sizeof h, 'E', &flags), SWC_EPROTO);
    swc_raft_hdr_put(h, 'E', 0x80);
    assert_int_equal(swc_raft_hdr_get(h, sizeof h, 'E', &flags), SWC_EPROTO);
    swc_raft_hdr_put(h, 'E', 0);
    h[7] = 1;
    assert_int_equal(swc_raft_hdr_get(h, sizeof h, 'E', &flags), SWC_EPROTO);
}

static void test_frames(void **state)
{
    uint8_t body[256];
    size_t len = 0, off = 0;
    struct swc_raft_frame f;
    len += put_frame(body + len, 7, 100, "alpha");
    len += put_frame(body + len, 7, 101, "");
    len += put_frame(body + len, 0, 102, "internal");
    assert_int_equal(swc_raft_frame_next(body, len, &off, &f), 1);
    assert_int_equal(f.proposer, 7);
    assert_int_equal(f.seq, 100);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "alpha", 5);
    assert_int_equal(swc_raft_frame_next(body, len, &off, &f), 1);
    assert_int_equal(f.len, 0);
    assert_int_equal(swc_raft_frame_next(body, len, &off, &f), 1);
    assert_int_equal(f.proposer, 0);
    assert_int_equal(swc_raft_frame_next(body, len, &off, &f), 0);
    assert_int_equal(off, len);
}

static void test_malformed_frames(void **state)
{
    uint8_t body[64];
    size_t len = put_frame(body, 1, 1, "payload");
    struct swc_raft_frame f;
    /* every truncation is malformed, never a read past the end */
    for (size_t cut = 1; cut < len; cut++) {
        size_t off = 0;
        assert_int_equal(swc_raft_frame_next(body, cut, &off, &f), -1);
    }
    /* a length that points past the end */
    swc_put_u32(body + 16, 0xffffffffu);
    size_t off = 0;
    assert_int_equal(swc_raft_frame_next(body, len, &off, &f), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_malformed_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
