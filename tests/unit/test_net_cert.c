/* Certificate, join token and data-key tests. The decoder is checked
 * against every truncation, every extension and every single-bit change of
 * a valid certificate: none may decode and verify as a good certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/cert.h"

#define NOW (1700000000LL * SWC_NS_PER_SEC)

static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];

static void sample(struct swc_cert *c)
{
    uint8_t sk[SWC_SIGN_SK_LEN];
    memset(c, 0, sizeof *c);
    strcpy(c->node_id, "4k2n7q0d9x1m3c8v5b6h2j7p0");
    strcpy(c->cluster_id, "cluster-a");
    c->role = SWC_ROLE_MANAGER;
    swc_keypair_new(c->public_key, sk);
    c->not_after = NOW + 3600 * SWC_NS_PER_SEC;
    assert_int_equal(swc_cert_sign(c, ca_sk), 0);
}

static void test_cert_roundtrip(void **state)
{
    struct swc_cert c, d;
    struct swc_buf b;
    swc_buf_init(&b);
    sample(&c);
    assert_int_equal(swc_cert_encode(&c, &b), 0);
    assert_true(b.len <= SWC_CERT_MAX_LEN);
    assert_int_equal(swc_cert_decode(b.data, b.len, &d), 0);
    assert_string_equal(d.node_id, c.node_id);
    assert_string_equal(d.cluster_id, c.cluster_id);
    assert_int_equal(d.role, c.role);
    assert_int_equal(d.not_after, c.not_after);
    assert_memory_equal(d.public_key, c.public_key, SWC_SIGN_PK_LEN);
    assert_memory_equal(d.signature, c.signature, SWC_SIG_LEN);
    assert_int_equal(swc_cert_verify(&d, ca_pk, NOW), 0);
    /* Longest ids still fit the maximum encoding. */
    memset(c.node_id, 'n', SWC_CERT_ID_MAX);
    memset(c.cluster_id, 'c', SWC_CERT_ID_MAX);
    assert_int_equal(swc_cert_sign(&c, ca_sk), 0);
    b.len = 0;
    assert_int_equal(swc_cert_encode(&c, &b), 0);
    assert_true(b.len <= SWC_CERT_MAX_LEN);
    assert_int_equal(swc_cert_decode(b.data, b.len, &d), 0);
    assert_int_equal(swc_cert_verify(&d, ca_pk, NOW), 0);
    swc_buf_free(&b);
}

static void test_cert_verify_refusals(void **state)
{
    struct swc_cert c;
    uint8_t other_pk[SWC_SIGN_PK_LEN], other_sk[SWC_SIGN_SK_LEN];
    sample(&c);
    swc_keypair_new(other_pk, other_sk);
    assert_int_equal(swc_cert_verify(&c, other_pk, NOW), SWC_EAUTH);
    assert_int_equal(swc_cert_verify(&c, ca_pk, c.not_after), SWC_EEXPIRED);
    assert_int_equal(swc_cert_verify(&c, ca_pk, c.not_after - 1), 0);
    struct swc_cert e = c;
    e.role = SWC_ROLE_WORKER; /* a demoted node cannot promote itself */
    assert_int_equal(swc_cert_verify(&e, ca_pk, NOW), SWC_EAUTH);
    e = c;
    e.not_after += 1; /* nor extend its life */
    assert_int_equal(swc_cert_verify(&e, ca_pk, NOW), SWC_EAUTH);
    e = c;
    e.signature[0] ^= 1;
    assert_int_equal(swc_cert_verify(&e, ca_pk, NOW), SWC_EAUTH);
    /* Invalid fields are refused when signing. */
    e = c;
    e.role = 5;
    assert_int_equal(swc_cert_sign(&e, ca_sk), SWC_EINVAL);
    e = c;
    e.node_id[0] = '\0';
    assert_int_equal(swc_cert_sign(&e, ca_sk), SWC_EINVAL);
    e = c;
    strcpy(e.cluster_id, "has space");
    assert_int_equal(swc_cert_sign(&e, ca_sk), SWC_EINVAL);
}

/* A damaged encoding must never come out as a valid certificate. */
static bool accepted(const uint8_t *p, size_t len)
{
    struct swc_cert d;
    return swc_cert_decode(p, len, &d) == 0 && swc_cert_verify(&d, ca_pk, NOW) == 0;
}

static void test_cert_decode_malformed(void **state)
{
    struct swc_cert c, d;
    struct swc_buf b;
    uint8_t tmp[SWC_CERT_MAX_LEN + 8];
    swc_buf_init(&b);
    sample(&c);
    assert_int_equal(swc_cert_encode(&c, &b), 0);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(swc_cert_decode(b.data, n, &d), SWC_EPROTO);
    }
    memcpy(tmp, b.data, b.len);
    tmp[b.len] = 0;
    assert_int_equal(swc_cert_decode(tmp, b.len + 1, &d), SWC_EPROTO);
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(tmp, b.data, b.len);
            tmp[i] ^= (uint8_t)(1 << bit);
            assert_false(accepted(tmp, b.len));
        }
    }
    /* Specific fields. */
    memcpy(tmp, b.data, b.len);
    tmp[0] = 2; /* version */
    assert_int_equal(swc_cert_decode(tmp, b.len, &d), SWC_EPROTO);
    memcpy(tmp, b.data, b.len);
    tmp[1] = 2; /* role */
    assert_int_equal(swc_cert_decode(tmp, b.len, &d), SWC_EPROTO);
    memcpy(tmp, b.data, b.len);
    tmp[2] = 200; /* node id length past the end */
    assert_int_equal(swc_cert_decode(tmp, b.len, &d), SWC_EPROTO);
    memcpy(tmp, b.data, b.len);
    tmp[3] = '\0'; /* NUL inside the node id */
    assert_int_equal(swc_cert_decode(tmp, b.len, &d), SWC_EPROTO);
    memcpy(tmp, b.data, b.len);
    tmp[3] = '\n';
    assert_int_equal(swc_cert_decode(tmp, b.len, &d), SWC_EPROTO);
    assert_int_equal(swc_cert_decode(NULL, 0, &d), SWC_EPROTO);
    memset(tmp, 0xff, sizeof tmp);
    assert_int_equal(swc_cert_decode(tmp, sizeof tmp, &d), SWC_EPROTO);
    swc_buf_free(&b);
}

static void test_sign_verify(void **state)
{
    uint8_t pk[SWC_SIGN_PK_LEN], sk[SWC_SIGN_SK_LEN], sig[SWC_SIG_LEN];
    uint8_t seed[32] = {1, 2, 3};
    uint8_t pk2[SWC_SIGN_PK_LEN], sk2[SWC_SIGN_SK_LEN];
    swc_keypair_from_seed(seed, pk, sk);
    swc_keypair_from_seed(seed, pk2, sk2);
    assert_memory_equal(pk, pk2, sizeof pk);
    swc_sign((const uint8_t *)"abc", 3, sk, sig);
    assert_true(swc_sign_verify((const uint8_t *)"abc", 3, pk, sig));
    assert_false(swc_sign_verify((const uint8_t *)"abd", 3, pk, sig));
    assert_false(swc_sign_verify((const uint8_t *)"abc", 3, ca_pk, sig));
}

static void test_token_roundtrip(void **state)
{
    char t1[SWC_TOKEN_MAX], t2[SWC_TOKEN_MAX];
    uint8_t h1[32], h2[32], dg[32], want[32], ph[32];
    assert_int_equal(swc_token_new(ca_pk, t1, h1), 0);
    assert_int_equal(swc_token_new(ca_pk, t2, h2), 0);
    assert_int_equal(strncmp(t1, "SWMTKN-1-", 9), 0);
    assert_string_not_equal(t1, t2);
    assert_memory_not_equal(h1, h2, 32);
    assert_int_equal(swc_token_parse(t1, dg, ph), 0);
    swc_ca_digest(ca_pk, want);
    assert_memory_equal(dg, want, 32);
    assert_memory_equal(ph, h1, 32);
    /* The same CA gives the same digest part; the secret differs. */
    assert_int_equal(strncmp(t1, t2, 9 + 64), 0);
    /* The hash depends on every character of the secret. */
    size_t len = strlen(t1);
    t1[len - 1] = t1[len - 1] == 'a' ? 'b' : 'a';
    assert_int_equal(swc_token_parse(t1, dg, ph), 0);
    assert_memory_not_equal(ph, h1, 32);
}

static void test_token_malformed(void **state)
{
    char good[SWC_TOKEN_MAX], bad[SWC_TOKEN_MAX * 2];
    uint8_t h[32], dg[32], ph[32];
    struct swc_err err;
    assert_int_equal(swc_token_new(ca_pk, good, h), 0);
    size_t len = strlen(good);
    assert_int_equal(swc_token_parse(NULL, dg, ph), SWC_EINVAL);
    assert_int_equal(swc_token_parse("", dg, ph), SWC_EINVAL);
#define EXPECT_BAD(s)                                                                              \
    do {                                                                                           \
        memset(&err, 0, sizeof err);                                                               \
        assert_int_equal(swc_token_parse_err((s), dg, ph, &err), SWC_EINVAL);                      \
        assert_true(strlen(err.msg) > 0);                                                          \
    } while (0)
    /* Wrong prefix. */
    strcpy(bad, good);
    bad[7] = '2';
    EXPECT_BAD(bad);
    strcpy(bad, good);
    bad[0] = 's';
    EXPECT_BAD(bad);
    /* Every shorter length, and longer ones. */
    for (size_t n = 0; n < len; n++) {
        memcpy(bad, good, n);
        bad[n] = '\0';
        EXPECT_BAD(bad);
    }
    strcpy(bad, good);
    strcat(bad, "a");
    EXPECT_BAD(bad);
    memset(bad, 'a', sizeof bad - 1);
    memcpy(bad, "SWMTKN-1-", 9);
    bad[sizeof bad - 1] = '\0';
    EXPECT_BAD(bad);
    /* Bad characters: uppercase or non-hex digest, separator, secret. */
    const char *badchars = "AG-_ /\x01\x7f";
    for (size_t i = 9; i < len; i++) {
        for (const char *c = badchars; *c; c++) {
            if (i == 9 + 64 && *c == '-') {
                continue; /* that is the separator itself */
            }
            strcpy(bad, good);
            bad[i] = *c;
            EXPECT_BAD(bad);
        }
    }
    /* Base32 has no 0, 1, 8, 9 in the secret. */
    for (const char *c = "0189"; *c; c++) {
        strcpy(bad, good);
        bad[len - 2] = *c;
        EXPECT_BAD(bad);
    }
#undef EXPECT_BAD
}

static void test_token_proof(void **state)
{
    char tok[SWC_TOKEN_MAX];
    uint8_t stored[32], dg[32], hash[32], binding[32], proof[32];
    assert_int_equal(swc_token_new(ca_pk, tok, stored), 0);
    assert_int_equal(swc_token_parse(tok, dg, hash), 0);
    memset(binding, 7, sizeof binding);
    swc_token_proof(hash, binding, proof);
    assert_true(swc_token_proof_verify(stored, binding, proof));
    /* The proof is not the hash itself and does not carry over to another
     * channel or another secret. */
    assert_memory_not_equal(proof, stored, 32);
    binding[0] ^= 1;
    assert_false(swc_token_proof_verify(stored, binding, proof));
    binding[0] ^= 1;
    stored[31] ^= 1;
    assert_false(swc_token_proof_verify(stored, binding, proof));
}

static void test_data_seal(void **state)
{
    uint8_t key[SWC_DATA_KEY_LEN], key2[SWC_DATA_KEY_LEN];
    static uint8_t msg[65536];
    struct swc_buf s, s2, o;
    swc_data_key_new(key);
    swc_data_key_new(key2);
    assert_memory_not_equal(key, key2, sizeof key);
    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] = (uint8_t)(i * 13 + 1);
    }
    swc_buf_init(&s);
    swc_buf_init(&s2);
    swc_buf_init(&o);
    size_t sizes[] = {0, 1, 100, sizeof msg};
    for (size_t k = 0; k < 4; k++) {
        s.len = o.len = 0;
        assert_int_equal(swc_data_seal(key, msg, sizes[k], &s), 0);
        assert_int_equal(s.len, sizes[k] + SWC_DATA_SEAL_OVERHEAD);
        assert_int_equal(swc_data_open(key, s.data, s.len, &o), 0);
        assert_int_equal(o.len, sizes[k]);
        if (sizes[k]) {
            assert_memory_equal(o.data, msg, sizes[k]);
        }
        assert_int_equal(swc_data_open(key2, s.data, s.len, &o), SWC_EAUTH);
    }
    /* Random nonces: the same plaintext seals differently each time. */
    s.len = 0;
    assert_int_equal(swc_data_seal(key, msg, 32, &s), 0);
    assert_int_equal(swc_data_seal(key, msg, 32, &s2), 0);
    assert_memory_not_equal(s.data, s2.data, s.len);
    /* Every byte is protected (nonce, ciphertext and tag). */
    for (size_t i = 0; i < s.len; i++) {
        s.data[i] ^= 0x04;
        o.len = 0;
        assert_int_equal(swc_data_open(key, s.data, s.len, &o), SWC_EAUTH);
        assert_int_equal(o.len, 0);
        s.data[i] ^= 0x04;
    }
    /* Short or cut inputs. */
    for (size_t n = 0; n < s.len; n++) {
        int rc = swc_data_open(key, s.data, n, &o);
        assert_true(rc == (n < SWC_DATA_SEAL_OVERHEAD ? SWC_EPROTO : SWC_EAUTH));
    }
    /* Appends after existing bytes. */
    o.len = 0;
    assert_int_equal(swc_buf_append(&o, "pre", 3), 0);
    assert_int_equal(swc_data_open(key, s.data, s.len, &o), 0);
    assert_int_equal(o.len, 3 + 32);
    assert_memory_equal(o.data, "pre", 3);
    /* Allocation failure leaves the output untouched. */
    struct swc_buf e;
    swc_buf_init(&e);
    long live = swc_alloc_live();
    swc_alloc_fail_after(1);
    assert_int_equal(swc_data_seal(key, msg, 10, &e), SWC_ENOMEM);
    swc_alloc_fail_after(0);
    assert_int_equal(e.len, 0);
    assert_int_equal(swc_alloc_live(), live);
    swc_buf_free(&s);
    swc_buf_free(&s2);
    swc_buf_free(&o);
}

int main(void)
{
    swc_keypair_new(ca_pk, ca_sk);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_roundtrip),        cmocka_unit_test(test_cert_verify_refusals),
        cmocka_unit_test(test_cert_decode_malformed), cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_token_roundtrip),       cmocka_unit_test(test_token_malformed),
        cmocka_unit_test(test_token_proof),           cmocka_unit_test(test_data_seal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
