/* Unit tests for src/base: errors, clocks and parsers, ids, the state-machine
 * helper, the allocation seam and the byte buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/id.h"
#include "base/sm.h"

static void test_err_wrap(void **state)
{
    (void)state;
    struct swc_err e;
    swc_err_clear(&e);
    assert_string_equal(swc_err_msg(&e), "success");
    assert_int_equal(swc_err_set(&e, SWC_ECONFLICT, "store: task %s", "x1"), SWC_ECONFLICT);
    assert_int_equal(swc_err_wrap(&e, "dispatcher: assign"), SWC_ECONFLICT);
    assert_string_equal(swc_err_msg(&e), "dispatcher: assign: store: task x1");
    /* A message that overflows is cut, never overrun. */
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    swc_err_set(&e, SWC_EIO, "%s", big);
    swc_err_wrap(&e, "%s", big);
    assert_true(strlen(e.msg) < SWC_ERRMSG_SIZE);
    /* Without a message, the code's description is used. */
    e.msg[0] = '\0';
    assert_string_equal(swc_err_msg(&e), "I/O error");
    assert_string_equal(swc_strerror(-1), "unknown error");
    assert_string_equal(swc_strerror(SWC_E_COUNT), "unknown error");
    for (int c = 0; c < SWC_E_COUNT; c++) {
        assert_string_not_equal(swc_strerror(c), "unknown error");
    }
}

static void test_durations(void **state)
{
    (void)state;
    int64_t ns;
    assert_int_equal(swc_parse_duration("10s", &ns), 0);
    assert_int_equal(ns, 10 * SWC_NS_PER_SEC);
    assert_int_equal(swc_parse_duration("1m30s", &ns), 0);
    assert_int_equal(ns, 90 * SWC_NS_PER_SEC);
    assert_int_equal(swc_parse_duration("500ms", &ns), 0);
    assert_int_equal(ns, 500 * SWC_NS_PER_MS);
    assert_int_equal(swc_parse_duration("1.5h", &ns), 0);
    assert_int_equal(ns, 5400 * SWC_NS_PER_SEC);
    assert_int_equal(swc_parse_duration("0", &ns), 0);
    assert_int_equal(ns, 0);
    const char *bad[] = {"", "10", "s", "5x", "-1s", "1m-3s", "1.2.3s", "10 s", "99999999999h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(swc_parse_duration(bad[i], &ns), SWC_EINVAL);
    }
    char buf[32];
    swc_format_duration(90 * SWC_NS_PER_SEC, buf, sizeof buf);
    assert_string_equal(buf, "1m30s");
    swc_format_duration(250 * SWC_NS_PER_MS, buf, sizeof buf);
    assert_string_equal(buf, "250ms");
}

static void test_sizes(void **state)
{
    (void)state;
    int64_t b;
    assert_int_equal(swc_parse_size("512M", &b), 0);
    assert_int_equal(b, 512LL * 1024 * 1024);
    assert_int_equal(swc_parse_size("1g", &b), 0);
    assert_int_equal(b, 1024LL * 1024 * 1024);
    assert_int_equal(swc_parse_size("10KiB", &b), 0);
    assert_int_equal(b, 10240);
    assert_int_equal(swc_parse_size("1024", &b), 0);
    assert_int_equal(b, 1024);
    assert_int_equal(swc_parse_size("100b", &b), 0);
    assert_int_equal(b, 100);
    const char *bad[] = {"", "M", "-5M", "5X", "5MBB", "5 M", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(swc_parse_size(bad[i], &b), SWC_EINVAL);
    }
}

static void test_ids(void **state)
{
    (void)state;
    char a[SWC_ID_LEN + 1], b[SWC_ID_LEN + 1];
    swc_id_new(a);
    swc_id_new(b);
    assert_int_equal(strlen(a), SWC_ID_LEN);
    assert_true(swc_id_valid(a));
    assert_string_not_equal(a, b);
    assert_false(swc_id_valid("short"));
    assert_false(swc_id_valid("ABCDEFGHIJKLMNOPQRSTUVWXY"));
    assert_false(swc_id_valid(NULL));
}

enum { S_A, S_B, S_C, S_N };
static const char *const names[] = {"a", "b", "c"};
static const uint64_t allowed[] = {
    [S_A] = SWC_SM_BIT(S_B),
    [S_B] = SWC_SM_BIT(S_C) | SWC_SM_BIT(S_A),
    [S_C] = 0,
};
static bool inv_calls_ok(const void *obj, int st)
{
    const int *limit = obj;
    return st <= *limit;
}

static void test_state_machine(void **state)
{
    (void)state;
    int limit = S_B;
    const struct swc_sm_def def = {"test", S_N, names, allowed, inv_calls_ok};
    struct swc_sm m;
    swc_sm_init(&m, &def, S_A, &limit);
    assert_int_equal(swc_sm_step(&m, S_C), SWC_ESTATE); /* not in the table */
    assert_int_equal(m.state, S_A);
    assert_int_equal(swc_sm_step(&m, S_B), 0);
    assert_int_equal(swc_sm_step(&m, S_C), SWC_EINTERNAL); /* invariant */
    assert_false(swc_sm_allowed(&def, S_C, S_A));
    assert_false(swc_sm_allowed(&def, -1, S_A));
    assert_string_equal(swc_sm_state_name(&def, S_B), "b");
    assert_string_equal(swc_sm_state_name(&def, 7), "?");
}

/* The seam counts what it frees (glibc), so the raft loop can return bursts
 * of freed memory to the kernel; a trim starts the count again. */
static void test_alloc_freed_count(void **state)
{
    (void)state;
    swc_alloc_trim();
    assert_int_equal(swc_alloc_freed(), 0);
    void *p = swc_malloc(100000);
    assert_non_null(p);
    swc_free(p);
#if defined(__GLIBC__)
    assert_true(swc_alloc_freed() >= 100000);
#endif
    swc_alloc_trim();
    assert_int_equal(swc_alloc_freed(), 0);
}

static void test_alloc_injection(void **state)
{
    (void)state;
    long live = swc_alloc_live();
    swc_alloc_fail_after(2);
    void *p1 = swc_malloc(8);
    void *p2 = swc_malloc(8);
    void *p3 = swc_malloc(8);
    assert_non_null(p1);
    assert_null(p2);
    assert_non_null(p3);
    swc_free(p1);
    swc_free(p3);
    swc_alloc_fail_from(1);
    assert_null(swc_calloc(1, 1));
    assert_null(swc_strdup("x"));
    swc_alloc_fail_after(0);
    char *s = swc_strndup("hello", 3);
    assert_string_equal(s, "hel");
    swc_free(s);
    assert_int_equal(swc_alloc_live(), live);
}

static void test_buf(void **state)
{
    (void)state;
    struct swc_buf b;
    swc_buf_init(&b);
    assert_int_equal(swc_buf_append(&b, "abc", 3), 0);
    assert_int_equal(swc_buf_printf(&b, "-%d", 42), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "abc-42", 6);
    swc_buf_consume(&b, 2);
    assert_memory_equal(b.data, "c-42", 4);
    uint8_t w[8];
    swc_put_u64(w, 0x0102030405060708ULL);
    assert_int_equal(swc_get_u64(w), 0x0102030405060708ULL);
    assert_int_equal(w[0], 1);
    /* growth failure leaves the buffer intact */
    swc_alloc_fail_from(1);
    char big[4096] = {0};
    assert_int_equal(swc_buf_append(&b, big, sizeof big), SWC_ENOMEM);
    swc_alloc_fail_after(0);
    assert_int_equal(b.len, 4);
    swc_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_wrap),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_alloc_injection),
        cmocka_unit_test(test_alloc_freed_count),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
