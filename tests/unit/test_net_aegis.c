/* AEGIS-128L tests (net/aegis.h) and its use as a secure-channel cipher.
 *
 * The primitive must give exactly the draft's appendix vectors (every
 * AEGIS-128L one: empty and 16-byte messages, 32 bytes with AD, a partial
 * block, long AD and message, and the four "verification failed" vectors
 * that change the key/nonce, the ciphertext, the AD and the tag); sealing in
 * pieces of any split must equal the one-shot seal; opening must refuse any
 * single flipped bit of ciphertext or tag. Through secchan: AEGIS-128L is
 * chosen when both sides offer it, AES-256-GCM when one side does not (an
 * old peer), frames of every size round-trip including piecewise and in
 * place, a tampered or replayed AEGIS frame fails, and the SWC_AEAD
 * environment override includes or excludes the cipher. Each test skips
 * when the CPU has no AES-NI (the cipher is then never offered). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/aegis.h"
#include "net/cert.h"
#include "net/secchan.h"
#include "test_net_util.h"

#define NOW     (1700000000LL * SWC_NS_PER_SEC)
#define DAY     (86400LL * SWC_NS_PER_SEC)
#define CLUSTER "c0ffee"

struct vec {
    const char *key, *nonce, *ad, *msg, *ct, *tag;
    bool ok; /* false: "verification failed" expected */
};

/* draft-irtf-cfrg-aegis-aead, appendix "AEGIS-128L Test Vectors" 1-9. */
static const struct vec vecs[] = {
    {"10010000000000000000000000000000", "10000200000000000000000000000000", "",
     "00000000000000000000000000000000", "c1c0e58bd913006feba00f4b3cc3594e",
     "abe0ece80c24868a226a35d16bdae37a", true},
    {"10010000000000000000000000000000", "10000200000000000000000000000000", "", "", "",
     "c2b879a67def9d74e6c14f708bbcc9b4", true},
    {"10010000000000000000000000000000", "10000200000000000000000000000000", "0001020304050607",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "79d94593d8c2119d7e8fd9b8fc77845c5c077a05b2528b6ac54b563aed8efe84",
     "cc6f3372f6aa1bb82388d695c3962d9a", true},
    {"10010000000000000000000000000000", "10000200000000000000000000000000", "0001020304050607",
     "000102030405060708090a0b0c0d", "79d94593d8c2119d7e8fd9b8fc77",
     "5c04b3dba849b2701effbe32c7f0fab7", true},
    {"10010000000000000000000000000000", "10000200000000000000000000000000",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829",
     "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
     "b31052ad1cca4e291abcf2df3502e6bdb1bfd6db36798be3607b1f94d34478aa7ede7f7a990fec10",
     "7542a745733014f9474417b337399507", true},
    /* 6: key and nonce swapped */
    {"10000200000000000000000000000000", "10010000000000000000000000000000", "0001020304050607",
     NULL, "79d94593d8c2119d7e8fd9b8fc77", "5c04b3dba849b2701effbe32c7f0fab7", false},
    /* 7: ciphertext changed */
    {"10010000000000000000000000000000", "10000200000000000000000000000000", "0001020304050607",
     NULL, "79d94593d8c2119d7e8fd9b8fc78", "5c04b3dba849b2701effbe32c7f0fab7", false},
    /* 8: AD changed */
    {"10010000000000000000000000000000", "10000200000000000000000000000000", "0001020304050608",
     NULL, "79d94593d8c2119d7e8fd9b8fc77", "5c04b3dba849b2701effbe32c7f0fab7", false},
    /* 9: tag changed */
    {"10010000000000000000000000000000", "10000200000000000000000000000000", "0001020304050607",
     NULL, "79d94593d8c2119d7e8fd9b8fc77", "6c04b3dba849b2701effbe32c7f0fab8", false},
};

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static int skip_without_aesni(void **state)
{
    if (!swc_aegis128l_available()) {
        skip();
    }
    return 0;
}

static void test_draft_vectors(void **state)
{
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
        const struct vec *v = &vecs[i];
        uint8_t key[16], nonce[16], ad[64], msg[64], ct[64], tag[16], out[64], mac[16];
        unhex(v->key, key);
        unhex(v->nonce, nonce);
        size_t adlen = unhex(v->ad, ad);
        size_t clen = unhex(v->ct, ct);
        unhex(v->tag, tag);
        if (v->ok) {
            size_t mlen = unhex(v->msg, msg);
            assert_int_equal(mlen, clen);
            swc_aegis128l_seal(key, nonce, out, mac, msg, mlen, ad, adlen);
            if (clen > 0) {
                assert_memory_equal(out, ct, clen);
            }
            assert_memory_equal(mac, tag, 16);
            memset(out, 0xee, sizeof out);
            assert_int_equal(swc_aegis128l_open(key, nonce, out, ct, clen, tag, ad, adlen), 0);
            if (clen > 0) {
                assert_memory_equal(out, msg, clen);
            }
        } else {
            memset(out, 0xee, sizeof out);
            assert_int_equal(swc_aegis128l_open(key, nonce, out, ct, clen, tag, ad, adlen),
                             SWC_EAUTH);
            for (size_t k = 0; k < clen; k++) {
                assert_int_equal(out[k], 0); /* the draft: erase the message */
            }
        }
    }
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* Every split of messages around block boundaries, in place and not, with
 * and without AD, equals the one-shot seal; opening in place recovers it. */
static void test_incremental_equals_oneshot(void **state)
{
    enum { MAX = 300 };
    uint8_t key[16], nonce[16], ad[40], m[MAX], one[MAX], inc[MAX], mac1[16], mac2[16];
    fill(key, 16, 1);
    fill(nonce, 16, 2);
    fill(ad, sizeof ad, 3);
    fill(m, sizeof m, 4);
    static const size_t lens[] = {0, 1, 15, 16, 31, 32, 33, 63, 64, 65, 100, 255, 256, 300};
    static const size_t steps[] = {1, 2, 3, 5, 7, 13, 16, 17, 31, 32, 33, 64, 100};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t len = lens[li];
        for (size_t adlen = 0; adlen <= sizeof ad; adlen += 20) {
            swc_aegis128l_seal(key, nonce, one, mac1, m, len, ad, adlen);
            for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
                for (int inplace = 0; inplace < 2; inplace++) {
                    struct swc_aegis128l st;
                    if (inplace) {
                        memcpy(inc, m, len);
                    }
                    swc_aegis128l_seal_begin(&st, key, nonce, ad, adlen);
                    /* pieces of step, step+1, step, ... bytes */
                    for (size_t off = 0, k = 0; off < len; k++) {
                        size_t n = steps[si] + (k & 1);
                        n = n > len - off ? len - off : n;
                        swc_aegis128l_seal_update(&st, inc + off, inplace ? inc + off : m + off, n);
                        off += n;
                    }
                    swc_aegis128l_seal_final(&st, mac2);
                    if (len > 0) {
                        assert_memory_equal(inc, one, len);
                    }
                    assert_memory_equal(mac1, mac2, 16);
                }
            }
            memcpy(inc, one, len);
            assert_int_equal(swc_aegis128l_open(key, nonce, inc, inc, len, mac1, ad, adlen), 0);
            if (len > 0) {
                assert_memory_equal(inc, m, len);
            }
        }
    }
}

/* Flipping any one bit of ciphertext or tag makes open fail. */
static void test_bit_flips_rejected(void **state)
{
    enum { LEN = 77 };
    uint8_t key[16], nonce[16], m[LEN], c[LEN], mac[16], t[LEN], tm[16], out[LEN];
    fill(key, 16, 5);
    fill(nonce, 16, 6);
    fill(m, LEN, 7);
    swc_aegis128l_seal(key, nonce, c, mac, m, LEN, NULL, 0);
    assert_int_equal(swc_aegis128l_open(key, nonce, out, c, LEN, mac, NULL, 0), 0);
    assert_memory_equal(out, m, LEN);
    for (size_t bit = 0; bit < (LEN + 16) * 8; bit++) {
        memcpy(t, c, LEN);
        memcpy(tm, mac, 16);
        if (bit < LEN * 8) {
            t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        } else {
            tm[bit / 8 - LEN] ^= (uint8_t)(1u << (bit % 8));
        }
        assert_int_equal(swc_aegis128l_open(key, nonce, out, t, LEN, tm, NULL, 0), SWC_EAUTH);
    }
    /* and a different nonce */
    nonce[15] ^= 1;
    assert_int_equal(swc_aegis128l_open(key, nonce, out, c, LEN, mac, NULL, 0), SWC_EAUTH);
}

/* ---- through the secure channel ---- */

static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];
static struct swc_identity server_id, client_id;

static void make_identity(struct swc_identity *id, const char *node, int role)
{
    swc_test_identity(id, node, role, CLUSTER, NOW + 90 * DAY, ca_sk);
}

static int setup(void **state)
{
    swc_keypair_new(ca_pk, ca_sk);
    make_identity(&server_id, "m1", SWC_ROLE_MANAGER);
    make_identity(&client_id, "w1", SWC_ROLE_WORKER);
    return 0;
}

static void configs(struct swc_secchan_config *cc, struct swc_secchan_config *sc)
{
    memset(cc, 0, sizeof *cc);
    memset(sc, 0, sizeof *sc);
    cc->is_client = true;
    cc->self = &client_id;
    sc->self = &server_id;
    cc->required_peer_role = sc->required_peer_role = -1;
    cc->now_wall_ns = sc->now_wall_ns = NOW;
    memcpy(cc->ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    memcpy(sc->ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
}

static void pair(const struct swc_secchan_config *cc, const struct swc_secchan_config *scfg,
                 struct swc_secchan **c, struct swc_secchan **s)
{
    struct swc_buf m1, m2, m3, m4;
    bool cdone = false, sdone = false;
    swc_buf_init(&m1);
    swc_buf_init(&m2);
    swc_buf_init(&m3);
    swc_buf_init(&m4);
    assert_int_equal(swc_secchan_create(cc, c), 0);
    assert_int_equal(swc_secchan_create(scfg, s), 0);
    assert_int_equal(swc_secchan_handshake(*c, NULL, 0, &m1, &cdone), 0);
    assert_int_equal(swc_secchan_handshake(*s, m1.data, m1.len, &m2, &sdone), 0);
    assert_int_equal(swc_secchan_handshake(*c, m2.data, m2.len, &m3, &cdone), 0);
    assert_int_equal(swc_secchan_handshake(*s, m3.data, m3.len, &m4, &sdone), 0);
    assert_true(cdone && sdone);
    swc_buf_free(&m1);
    swc_buf_free(&m2);
    swc_buf_free(&m3);
    swc_buf_free(&m4);
}

static unsigned negotiated(unsigned client_ciphers, unsigned server_ciphers)
{
    struct swc_secchan_config cc, scfg;
    struct swc_secchan *c, *s;
    configs(&cc, &scfg);
    cc.ciphers = client_ciphers;
    scfg.ciphers = server_ciphers;
    pair(&cc, &scfg, &c, &s);
    unsigned got = swc_secchan_cipher(c);
    assert_int_equal(swc_secchan_cipher(s), got);
    swc_secchan_destroy(c);
    swc_secchan_destroy(s);
    return got;
}

static void test_negotiation(void **state)
{
    const unsigned old = SWC_SECCHAN_AES256GCM | SWC_SECCHAN_CHACHA20POLY1305;
    unsetenv("SWC_AEAD");
    assert_int_equal(negotiated(0, 0), SWC_SECCHAN_AEGIS128L);
    /* a peer from before AEGIS offers only the old bits, either side */
    assert_int_equal(negotiated(old, 0), SWC_SECCHAN_AES256GCM);
    assert_int_equal(negotiated(0, old), SWC_SECCHAN_AES256GCM);
    assert_int_equal(negotiated(SWC_SECCHAN_AEGIS128L | SWC_SECCHAN_CHACHA20POLY1305,
                                SWC_SECCHAN_CHACHA20POLY1305),
                     SWC_SECCHAN_CHACHA20POLY1305);
    assert_int_equal(negotiated(SWC_SECCHAN_AEGIS128L, 0), SWC_SECCHAN_AEGIS128L);
    /* environment override of the default offer */
    setenv("SWC_AEAD", "noaegis", 1);
    assert_int_equal(negotiated(0, 0), SWC_SECCHAN_AES256GCM);
    setenv("SWC_AEAD", "sodium", 1);
    assert_int_equal(negotiated(0, 0), SWC_SECCHAN_AES256GCM);
    setenv("SWC_AEAD", "aegis", 1);
    assert_int_equal(negotiated(0, 0), SWC_SECCHAN_AEGIS128L);
    /* forced AEGIS against an old peer: no cipher in common */
    {
        struct swc_secchan_config cc, scfg;
        struct swc_secchan *c, *s;
        struct swc_buf m1, m2;
        bool done;
        configs(&cc, &scfg);
        scfg.ciphers = old;
        swc_buf_init(&m1);
        swc_buf_init(&m2);
        assert_int_equal(swc_secchan_create(&cc, &c), 0);
        assert_int_equal(swc_secchan_create(&scfg, &s), 0);
        assert_int_equal(swc_secchan_handshake(c, NULL, 0, &m1, &done), 0);
        assert_int_equal(swc_secchan_handshake(s, m1.data, m1.len, &m2, &done), SWC_EPROTO);
        swc_buf_free(&m1);
        swc_buf_free(&m2);
        swc_secchan_destroy(c);
        swc_secchan_destroy(s);
    }
    unsetenv("SWC_AEAD");
}

/* A server that names AEGIS although the client did not offer it is
 * refused by the client (the choice must be one we offered). */
static void test_client_refuses_unoffered_choice(void **state)
{
    struct swc_secchan_config cc, scfg;
    struct swc_secchan *c, *s;
    struct swc_buf m1, m2, m3;
    bool done;
    configs(&cc, &scfg);
    cc.ciphers = SWC_SECCHAN_AES256GCM;
    swc_buf_init(&m1);
    swc_buf_init(&m2);
    swc_buf_init(&m3);
    assert_int_equal(swc_secchan_create(&cc, &c), 0);
    assert_int_equal(swc_secchan_create(&scfg, &s), 0);
    assert_int_equal(swc_secchan_handshake(c, NULL, 0, &m1, &done), 0);
    m1.data[m1.len - 1] |= SWC_SECCHAN_AEGIS128L; /* as if offered */
    assert_int_equal(swc_secchan_handshake(s, m1.data, m1.len, &m2, &done), 0);
    /* the server picked AEGIS; the client did not offer it */
    assert_int_equal(swc_secchan_handshake(c, m2.data, m2.len, &m3, &done), SWC_EPROTO);
    swc_buf_free(&m1);
    swc_buf_free(&m2);
    swc_buf_free(&m3);
    swc_secchan_destroy(c);
    swc_secchan_destroy(s);
}

static void test_channel_frames(void **state)
{
    struct swc_secchan_config cc, scfg;
    struct swc_secchan *c, *s;
    struct swc_buf sealed, opened;
    enum { BIG = 200 * 1024 + 7 };
    uint8_t *m = malloc(BIG), *f = malloc(BIG + SWC_SECCHAN_OVERHEAD);
    assert_non_null(m);
    assert_non_null(f);
    fill(m, BIG, 9);
    configs(&cc, &scfg);
    pair(&cc, &scfg, &c, &s);
    assert_int_equal(swc_secchan_cipher(c), SWC_SECCHAN_AEGIS128L);
    swc_buf_init(&sealed);
    swc_buf_init(&opened);
    static const size_t sizes[] = {0, 1, 31, 32, 33, 1000, 65536, 65536 + 16, BIG};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        sealed.len = opened.len = 0;
        assert_int_equal(swc_secchan_seal(c, m, n, &sealed), 0);
        assert_int_equal(sealed.len, n + SWC_SECCHAN_OVERHEAD);
        assert_int_equal(swc_secchan_open(s, sealed.data, sealed.len, &opened), 0);
        assert_int_equal(opened.len, n);
        if (n > 0) {
            assert_memory_equal(opened.data, m, n);
        }
        /* in place */
        memcpy(f, m, n);
        assert_int_equal(swc_secchan_seal_inplace(c, f, n), 0);
        assert_int_equal(swc_secchan_open_inplace(s, f, n + SWC_SECCHAN_OVERHEAD), 0);
        if (n > 0) {
            assert_memory_equal(f, m, n);
        }
        /* piecewise, pieces of 16 + 4093-byte steps */
        assert_int_equal(swc_secchan_seal_begin(c), 0);
        for (size_t off = 0; off < n;) {
            size_t k = off == 0 ? 16 : 4093;
            k = k > n - off ? n - off : k;
            assert_int_equal(swc_secchan_seal_update(c, f + off, m + off, k), 0);
            off += k;
        }
        assert_int_equal(swc_secchan_seal_end(c, f + n), 0);
        assert_int_equal(swc_secchan_open_inplace(s, f, n + SWC_SECCHAN_OVERHEAD), 0);
        if (n > 0) {
            assert_memory_equal(f, m, n);
        }
    }
    /* tampered frame fails and kills the channel */
    sealed.len = opened.len = 0;
    assert_int_equal(swc_secchan_seal(c, m, 5000, &sealed), 0);
    sealed.data[4000] ^= 0x10;
    assert_int_equal(swc_secchan_open(s, sealed.data, sealed.len, &opened), SWC_EAUTH);
    swc_buf_free(&sealed);
    swc_buf_free(&opened);
    swc_secchan_destroy(c);
    swc_secchan_destroy(s);
    free(m);
    free(f);
}

/* A replayed AEGIS frame (the same bytes again) fails: the counter moved. */
static void test_channel_replay(void **state)
{
    struct swc_secchan_config cc, scfg;
    struct swc_secchan *c, *s;
    struct swc_buf sealed, opened;
    uint8_t m[100];
    fill(m, sizeof m, 10);
    configs(&cc, &scfg);
    pair(&cc, &scfg, &c, &s);
    swc_buf_init(&sealed);
    swc_buf_init(&opened);
    assert_int_equal(swc_secchan_seal(c, m, sizeof m, &sealed), 0);
    assert_int_equal(swc_secchan_open(s, sealed.data, sealed.len, &opened), 0);
    assert_int_equal(swc_secchan_open(s, sealed.data, sealed.len, &opened), SWC_EAUTH);
    swc_buf_free(&sealed);
    swc_buf_free(&opened);
    swc_secchan_destroy(c);
    swc_secchan_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_draft_vectors, skip_without_aesni),
        cmocka_unit_test_setup(test_incremental_equals_oneshot, skip_without_aesni),
        cmocka_unit_test_setup(test_bit_flips_rejected, skip_without_aesni),
        cmocka_unit_test_setup(test_negotiation, skip_without_aesni),
        cmocka_unit_test_setup(test_client_refuses_unoffered_choice, skip_without_aesni),
        cmocka_unit_test_setup(test_channel_frames, skip_without_aesni),
        cmocka_unit_test_setup(test_channel_replay, skip_without_aesni),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
