/* The dispatcher's status splice (swc_dispatcher_task_with_status): a task's
 * stored bytes with the status replaced must be exactly the bytes of
 * decoding the task, setting the status and encoding it again, whether the
 * task had a status or not and whatever fields follow it; malformed bytes
 * are refused rather than spliced. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "manager/manager_int.h"

/* Encode a task like the pipeline writes one (with or without a status and
 * an endpoint after it). */
static uint8_t *make_task(bool with_status, bool with_tail, size_t *len)
{
    Swarmc__Task t = SWARMC__TASK__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    Swarmc__TaskSpec spec = SWARMC__TASK_SPEC__INIT;
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__Endpoint ep = SWARMC__ENDPOINT__INIT;
    t.id = "4k2n7q0d9x1m3c8v5b6h2j7p0";
    meta.created_at = meta.updated_at = 1700000000000000000;
    t.meta = &meta;
    t.spec = &spec;
    t.spec_version = 3;
    t.service_id = "svc0000000000000000000000";
    t.service_name = "big";
    t.slot = 77;
    t.node_id = "node000000000000000000000";
    ann.name = "big.77";
    t.annotations = &ann;
    t.desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    if (with_status) {
        st.state = SWARMC__TASK_STATE__TASK_STATE_ASSIGNED;
        st.timestamp = 1700000000000000001;
        st.message = "scheduler assigned task to node";
        t.status = &st;
    }
    if (with_tail) {
        t.endpoint = &ep;
        t.job_iteration = 5;
    }
    return swc_pb_pack(&t.base, len);
}

/* What flush_statuses wrote before the splice: decode, set, encode. */
static uint8_t *reencode(const uint8_t *task, size_t len, const uint8_t *st, size_t stlen,
                         size_t *out_len)
{
    Swarmc__Task *t = swarmc__task__unpack(&swc_pb_allocator, len, task);
    Swarmc__TaskStatus *ns = swarmc__task_status__unpack(&swc_pb_allocator, stlen, st);
    assert_non_null(t);
    assert_non_null(ns);
    Swarmc__TaskStatus *old = t->status;
    t->status = ns;
    uint8_t *out = swc_pb_pack(&t->base, out_len);
    t->status = old;
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
    swarmc__task_status__free_unpacked(ns, &swc_pb_allocator);
    return out;
}

static void check_same(bool with_status, bool with_tail)
{
    size_t tlen, slen, a_len = 0, b_len = 0;
    uint8_t *task = make_task(with_status, with_tail, &tlen);
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    st.state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    st.timestamp = 1700000000123456789;
    st.message = "started";
    uint8_t *sb = swc_pb_pack(&st.base, &slen);
    assert_non_null(task);
    assert_non_null(sb);
    uint8_t *a = swc_dispatcher_task_with_status(task, tlen, sb, slen, &a_len);
    uint8_t *b = reencode(task, tlen, sb, slen, &b_len);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a_len, b_len);
    assert_memory_equal(a, b, a_len);
    Swarmc__Task *t = swarmc__task__unpack(&swc_pb_allocator, a_len, a);
    assert_non_null(t);
    assert_int_equal(t->status->state, SWARMC__TASK_STATE__TASK_STATE_RUNNING);
    assert_string_equal(t->status->message, "started");
    assert_int_equal(t->slot, 77);
    swarmc__task__free_unpacked(t, &swc_pb_allocator);
    swc_free(a);
    swc_free(b);
    swc_free(sb);
    swc_free(task);
}

static void test_splice_replaces_status(void **state)
{
    (void)state;
    check_same(true, true);
    check_same(true, false);
}

static void test_splice_adds_status(void **state)
{
    (void)state;
    check_same(false, true);
    check_same(false, false);
}

static void test_splice_refuses_malformed(void **state)
{
    (void)state;
    size_t tlen, n = 0;
    uint8_t *task = make_task(true, true, &tlen);
    const uint8_t st[] = {0x08, 0x80, 0x04}; /* state = 512 */
    assert_non_null(task);
    /* cut inside the last field */
    assert_null(swc_dispatcher_task_with_status(task, tlen - 1, st, sizeof st, &n));
    /* a length running past the end */
    const uint8_t bad_len[] = {0x0a, 0x7f, 'x'};
    assert_null(swc_dispatcher_task_with_status(bad_len, sizeof bad_len, st, sizeof st, &n));
    /* wire type 3 (groups) is not ours */
    const uint8_t group[] = {0x0b, 0x0c};
    assert_null(swc_dispatcher_task_with_status(group, sizeof group, st, sizeof st, &n));
    /* two statuses */
    const uint8_t two[] = {0x5a, 0x00, 0x5a, 0x00};
    assert_null(swc_dispatcher_task_with_status(two, sizeof two, st, sizeof st, &n));
    swc_free(task);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splice_replaces_status),
        cmocka_unit_test(test_splice_adds_status),
        cmocka_unit_test(test_splice_refuses_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
