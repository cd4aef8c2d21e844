/* Ids drawn in batches (swc_id_new_n): the same ids as swc_id_new makes, one
 * system call for many of them. Checks that every id of a batch that spans
 * several draws is valid and distinct, and that nothing past n is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/id.h"

#define N 130 /* more than two draws of 64 */

static void test_batch_valid_distinct(void **state)
{
    (void)state;
    static char ids[N + 1][SWC_ID_LEN + 1];
    memset(ids, 'x', sizeof ids);
    swc_id_new_n(ids, N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(strlen(ids[i]), SWC_ID_LEN);
        assert_true(swc_id_valid(ids[i]));
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(ids[i], ids[j]);
        }
    }
    for (size_t k = 0; k < sizeof ids[N]; k++) {
        assert_int_equal(ids[N][k], 'x'); /* past n: untouched */
    }
}

static void test_batch_zero(void **state)
{
    (void)state;
    char ids[1][SWC_ID_LEN + 1];
    memset(ids, 'x', sizeof ids);
    swc_id_new_n(ids, 0);
    assert_int_equal(ids[0][0], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_valid_distinct),
        cmocka_unit_test(test_batch_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
