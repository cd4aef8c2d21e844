/* Bulk AEAD backend tests (net/aead.h and its use in secchan.c).
 *
 * The OpenSSL and libsodium backends must be interchangeable record by
 * record: the same key, counter nonce and tag placement, so one end may seal
 * with either and the other open with either. These tests check that
 * byte for byte at the primitive level and through two real channels with
 * different backends, that a tampered bulk frame fails through the OpenSSL
 * path, that small frames never map libcrypto, and that SWC_AEAD=sodium and
 * the per-channel setting force libsodium, and that sealing a frame in
 * pieces from scattered buffers equals sealing a contiguous copy. The first test forks before this
 * process has mapped libcrypto, so it must stay first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/aead.h"
#include "net/cert.h"
#include "net/secchan.h"
#include "test_net_util.h"

#define NOW     (1700000000LL * SWC_NS_PER_SEC)
#define DAY     (86400LL * SWC_NS_PER_SEC)
#define CLUSTER "c0ffee"
#define BIG     (1024u * 1024 + 3)

static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];
static struct swc_identity server_id, client_id;
static uint8_t *msg; /* BIG bytes of a pattern */

static void make_identity(struct swc_identity *id, const char *node, int role)
{
    swc_test_identity(id, node, role, CLUSTER, NOW + 90 * DAY, ca_sk);
}

/* An established AES-256-GCM pair; each end's bulk backend as given. */
static void pair(int client_backend, int server_backend, struct swc_secchan **c,
                 struct swc_secchan **s)
{
    struct swc_secchan_config scfg, ccfg;
    struct swc_buf a, b;
    bool cdone = false, sdone = false;
    memset(&scfg, 0, sizeof scfg);
    scfg.self = &server_id;
    memcpy(scfg.ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    scfg.required_peer_role = -1;
    strcpy(scfg.cluster_id, CLUSTER);
    scfg.now_wall_ns = NOW;
    scfg.ciphers = SWC_SECCHAN_AES256GCM;
    ccfg = scfg;
    ccfg.is_client = true;
    ccfg.self = &client_id;
    scfg.aead_backend = server_backend;
    ccfg.aead_backend = client_backend;
    assert_int_equal(swc_secchan_create(&scfg, s), 0);
    assert_int_equal(swc_secchan_create(&ccfg, c), 0);
    swc_buf_init(&a);
    swc_buf_init(&b);
    assert_int_equal(swc_secchan_handshake(*c, NULL, 0, &a, &cdone), 0);       /* HELLO */
    assert_int_equal(swc_secchan_handshake(*s, a.data, a.len, &b, &sdone), 0); /* SERVER */
    a.len = 0;
    assert_int_equal(swc_secchan_handshake(*c, b.data, b.len, &a, &cdone), 0); /* FINISH */
    assert_int_equal(swc_secchan_handshake(*s, a.data, a.len, &b, &sdone), 0);
    assert_true(cdone && sdone);
    assert_int_equal(swc_secchan_cipher(*c), SWC_SECCHAN_AES256GCM);
    swc_buf_free(&a);
    swc_buf_free(&b);
}

static void unpair(struct swc_secchan *c, struct swc_secchan *s)
{
    swc_secchan_destroy(c);
    swc_secchan_destroy(s);
}

/* Seal msg[0..len) on from, open it on to, both in place. */
static void roundtrip(struct swc_secchan *from, struct swc_secchan *to, size_t len)
{
    uint8_t *buf = swc_malloc(len + SWC_SECCHAN_OVERHEAD);
    assert_non_null(buf);
    memcpy(buf, msg, len);
    assert_int_equal(swc_secchan_seal_inplace(from, buf, len), 0);
    assert_memory_not_equal(buf, msg, len < 64 ? len : 64);
    assert_int_equal(swc_secchan_open_inplace(to, buf, len + SWC_SECCHAN_OVERHEAD), 0);
    assert_memory_equal(buf, msg, len);
    swc_free(buf);
}

static bool libcrypto_mapped(void)
{
    char line[512];
    bool found = false;
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "libcrypto.so") != NULL) {
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* SWC_AEAD=sodium wins (checked in a child, before anything loaded
 * libcrypto here), and small frames never map libcrypto; the first bulk
 * frame does. */
static void test_lazy_load(void **state)
{
    assert_false(libcrypto_mapped());
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("SWC_AEAD", "sodium", 1);
        struct swc_secchan *c, *s;
        pair(SWC_AEAD_AUTO, SWC_AEAD_AUTO, &c, &s);
        roundtrip(c, s, SWC_AEAD_BULK_MIN);
        int bad = swc_aead_openssl_available() || libcrypto_mapped() ||
                  swc_secchan_bulk_frames(c) != 0 || swc_secchan_bulk_frames(s) != 0;
        unpair(c, s);
        _exit(bad ? 1 : 0);
    }
    int status = -1;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    struct swc_secchan *c, *s;
    pair(SWC_AEAD_AUTO, SWC_AEAD_AUTO, &c, &s);
    roundtrip(c, s, 1);
    roundtrip(s, c, SWC_AEAD_BULK_MIN - 1);
    assert_false(libcrypto_mapped());
    assert_int_equal(swc_secchan_bulk_frames(c), 0);
    roundtrip(c, s, SWC_AEAD_BULK_MIN);
    if (!swc_aead_openssl_available()) {
        unpair(c, s);
        skip(); /* no libcrypto.so.3 on this machine: libsodium only */
    }
    assert_true(libcrypto_mapped());
    assert_int_equal(swc_secchan_bulk_frames(c), 1);
    assert_int_equal(swc_secchan_bulk_frames(s), 1);
    unpair(c, s);
}

/* The primitives agree byte for byte: same ciphertext and tag for the same
 * key and nonce, and each opens what the other sealed. */
static void test_primitive_interop(void **state)
{
    if (!swc_aead_openssl_available()) {
        skip();
    }
    static const size_t lens[] = {0, 1, 15, 16, 17, 4096, 65536, 65537, 262144 + 5, BIG};
    uint8_t key[32], nonce[12], tag1[16], tag2[16];
    crypto_aead_aes256gcm_state st;
    randombytes_buf(key, sizeof key);
    crypto_aead_aes256gcm_beforenm(&st, key);
    struct swc_aead_gcm *enc, *dec;
    assert_int_equal(swc_aead_gcm_create(key, true, &enc), 0);
    assert_int_equal(swc_aead_gcm_create(key, false, &dec), 0);
    uint8_t *c1 = swc_malloc(BIG), *c2 = swc_malloc(BIG), *m = swc_malloc(BIG);
    assert_true(c1 && c2 && m);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t len = lens[i];
        randombytes_buf(nonce, sizeof nonce);
        assert_int_equal(swc_aead_gcm_seal(enc, nonce, c1, tag1, msg, len), 0);
        crypto_aead_aes256gcm_encrypt_detached_afternm(c2, tag2, NULL, msg, len, NULL, 0, NULL,
                                                       nonce, &st);
        assert_memory_equal(c1, c2, len);
        assert_memory_equal(tag1, tag2, 16);
        /* OpenSSL opens libsodium's, libsodium opens OpenSSL's */
        assert_int_equal(swc_aead_gcm_open(dec, nonce, m, c2, len, tag2), 0);
        assert_memory_equal(m, msg, len);
        assert_int_equal(crypto_aead_aes256gcm_decrypt_detached_afternm(m, NULL, c1, len, tag1,
                                                                        NULL, 0, nonce, &st),
                         0);
        assert_memory_equal(m, msg, len);
    }
    /* A context of the wrong direction refuses. */
    assert_int_equal(swc_aead_gcm_seal(dec, nonce, c1, tag1, msg, 16), SWC_EINTERNAL);
    assert_int_equal(swc_aead_gcm_open(enc, nonce, m, c1, 16, tag1), SWC_EINTERNAL);
    swc_free(c1);
    swc_free(c2);
    swc_free(m);
    swc_aead_gcm_destroy(enc);
    swc_aead_gcm_destroy(dec);
    swc_aead_gcm_destroy(NULL);
}

/* Two channels, one end on OpenSSL and the other forced to libsodium:
 * every bulk frame crosses backends, in both directions and both ways
 * round, interleaved with small frames so the counters stay in step. */
static void test_channel_interop(void **state)
{
    if (!swc_aead_openssl_available()) {
        skip();
    }
    static const size_t lens[] = {SWC_AEAD_BULK_MIN, 10, SWC_AEAD_BULK_MIN + 1, 262144 + 5, BIG};
    for (int openssl_client = 0; openssl_client < 2; openssl_client++) {
        struct swc_secchan *c, *s;
        pair(openssl_client ? SWC_AEAD_OPENSSL : SWC_AEAD_SODIUM,
             openssl_client ? SWC_AEAD_SODIUM : SWC_AEAD_OPENSSL, &c, &s);
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            roundtrip(c, s, lens[i]);
            roundtrip(s, c, lens[i]);
        }
        /* Each end's copying seal/open too. */
        struct swc_buf sealed, opened;
        swc_buf_init(&sealed);
        swc_buf_init(&opened);
        assert_int_equal(swc_secchan_seal(c, msg, BIG, &sealed), 0);
        assert_int_equal(swc_secchan_open(s, sealed.data, sealed.len, &opened), 0);
        assert_int_equal(opened.len, BIG);
        assert_memory_equal(opened.data, msg, BIG);
        swc_buf_free(&sealed);
        swc_buf_free(&opened);
        /* 4 bulk lengths each way plus the copying pair: 9 on OpenSSL's end */
        struct swc_secchan *ossl = openssl_client ? c : s, *sod = openssl_client ? s : c;
        assert_int_equal(swc_secchan_bulk_frames(ossl), 9);
        assert_int_equal(swc_secchan_bulk_frames(sod), 0);
        unpair(c, s);
    }
}

/* A bulk frame with any tag byte, or a ciphertext byte, flipped fails to
 * open through OpenSSL with SWC_EAUTH, and the channel is dead after. */
static void test_tampered_bulk_frame(void **state)
{
    if (!swc_aead_openssl_available()) {
        skip();
    }
    size_t len = SWC_AEAD_BULK_MIN, wire = len + SWC_SECCHAN_OVERHEAD;
    uint8_t *buf = swc_malloc(wire), *copy = swc_malloc(wire);
    assert_true(buf && copy);
    long flips[SWC_SECCHAN_OVERHEAD + 2];
    for (int i = 0; i < SWC_SECCHAN_OVERHEAD; i++) {
        flips[i] = (long)len + i; /* the tag */
    }
    flips[SWC_SECCHAN_OVERHEAD] = 0;
    flips[SWC_SECCHAN_OVERHEAD + 1] = (long)len - 1;
    for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
        for (int sealer_openssl = 0; sealer_openssl < 2; sealer_openssl++) {
            struct swc_secchan *c, *s;
            pair(sealer_openssl ? SWC_AEAD_OPENSSL : SWC_AEAD_SODIUM, SWC_AEAD_OPENSSL, &c, &s);
            memcpy(buf, msg, len);
            assert_int_equal(swc_secchan_seal_inplace(c, buf, len), 0);
            memcpy(copy, buf, wire);
            copy[flips[k]] ^= 0x04;
            assert_int_equal(swc_secchan_open_inplace(s, copy, wire), SWC_EAUTH);
            assert_int_equal(swc_secchan_bulk_frames(s), 1);
            assert_int_equal(swc_secchan_open_inplace(s, buf, wire), SWC_ESTATE);
            unpair(c, s);
        }
    }
    /* The primitive alone: one flipped tag bit is refused, the genuine tag
     * still opens (the context is reusable). */
    uint8_t key[32], nonce[12] = {0}, tag[16];
    randombytes_buf(key, sizeof key);
    struct swc_aead_gcm *enc, *dec;
    assert_int_equal(swc_aead_gcm_create(key, true, &enc), 0);
    assert_int_equal(swc_aead_gcm_create(key, false, &dec), 0);
    assert_int_equal(swc_aead_gcm_seal(enc, nonce, buf, tag, msg, len), 0);
    tag[15] ^= 0x80;
    assert_int_equal(swc_aead_gcm_open(dec, nonce, copy, buf, len, tag), SWC_EAUTH);
    tag[15] ^= 0x80;
    nonce[11] = 1;
    assert_int_equal(swc_aead_gcm_open(dec, nonce, copy, buf, len, tag), SWC_EAUTH);
    nonce[11] = 0;
    assert_int_equal(swc_aead_gcm_open(dec, nonce, copy, buf, len, tag), 0);
    assert_memory_equal(copy, msg, len);
    swc_aead_gcm_destroy(enc);
    swc_aead_gcm_destroy(dec);
    swc_free(buf);
    swc_free(copy);
}

/* Sealing in pieces (begin, update per piece, final) gives byte for byte
 * what one seal of the concatenation gives, whatever the split points
 * (inside a block, across the bulk size, empty pieces), from separate
 * buffers or in place, and libsodium opens it. */
static void test_piecewise_primitive(void **state)
{
    if (!swc_aead_openssl_available()) {
        skip();
    }
    static const size_t lens[] = {0, 1, 17, 4100, 65536 + 20, 262144 + 5};
    static const size_t cuts[][4] = {
        {0, 0, 0, 0}, {4, 4, 13, 0}, {1, 15, 16, 33}, {4, 12, 65536, 0}, {5000, 0, 7, 3},
    };
    uint8_t key[32], nonce[12], tag1[16], tag2[16];
    crypto_aead_aes256gcm_state st;
    randombytes_buf(key, sizeof key);
    crypto_aead_aes256gcm_beforenm(&st, key);
    struct swc_aead_gcm *enc;
    assert_int_equal(swc_aead_gcm_create(key, true, &enc), 0);
    uint8_t *c1 = swc_malloc(BIG), *c2 = swc_malloc(BIG), *m = swc_malloc(BIG);
    assert_true(c1 && c2 && m);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
            for (int inplace = 0; inplace < 2; inplace++) {
                size_t len = lens[i], off = 0;
                randombytes_buf(nonce, sizeof nonce);
                assert_int_equal(swc_aead_gcm_seal(enc, nonce, c1, tag1, msg, len), 0);
                if (inplace) {
                    memcpy(c2, msg, len);
                }
                assert_int_equal(swc_aead_gcm_seal_begin(enc, nonce), 0);
                for (int j = 0; j <= 4; j++) {
                    size_t n = j < 4 ? cuts[k][j] : len - off;
                    n = n > len - off ? len - off : n;
                    const uint8_t *src = inplace ? c2 + off : msg + off;
                    assert_int_equal(swc_aead_gcm_seal_update(enc, c2 + off, src, n), 0);
                    off += n;
                }
                assert_int_equal(off, len);
                assert_int_equal(swc_aead_gcm_seal_final(enc, tag2), 0);
                assert_memory_equal(c1, c2, len);
                assert_memory_equal(tag1, tag2, 16);
                assert_int_equal(crypto_aead_aes256gcm_decrypt_detached_afternm(
                                     m, NULL, c2, len, tag2, NULL, 0, nonce, &st),
                                 0);
                assert_memory_equal(m, msg, len);
            }
        }
    }
    swc_free(c1);
    swc_free(c2);
    swc_free(m);
    swc_aead_gcm_destroy(enc);
}

/* Seal msg[0..len) on sc piece by piece from the given cuts into out (wire
 * bytes: ciphertext then tag). */
static void seal_pieces(struct swc_secchan *sc, uint8_t *out, size_t len, size_t cut1, size_t cut2)
{
    assert_int_equal(swc_secchan_seal_begin(sc), 0);
    assert_int_equal(swc_secchan_seal_update(sc, out, msg, cut1), 0);
    assert_int_equal(swc_secchan_seal_update(sc, out + cut1, msg + cut1, cut2 - cut1), 0);
    assert_int_equal(swc_secchan_seal_update(sc, out + cut2, msg + cut2, len - cut2), 0);
    assert_int_equal(swc_secchan_seal_end(sc, out + len), 0);
}

/* Frames sealed in pieces on a channel open at a peer on either backend,
 * take their place in the counter sequence among ordinary frames, and keep
 * the channel's refusals: a replay or a flipped bit fails to open; while a
 * frame is open no other frame may be sealed; update and end need a begin;
 * a channel that cannot (ChaCha20, libsodium forced) says SWC_ENOTSUP. */
static void test_piecewise_channel(void **state)
{
    if (!swc_aead_openssl_available()) {
        skip();
    }
    size_t len = SWC_AEAD_BULK_MIN + 20, wire = len + SWC_SECCHAN_OVERHEAD;
    uint8_t *buf = swc_malloc(wire), *copy = swc_malloc(wire);
    assert_true(buf && copy);
    for (int peer_openssl = 0; peer_openssl < 2; peer_openssl++) {
        struct swc_secchan *c, *s;
        pair(SWC_AEAD_OPENSSL, peer_openssl ? SWC_AEAD_OPENSSL : SWC_AEAD_SODIUM, &c, &s);
        roundtrip(c, s, 10);
        seal_pieces(c, buf, len, 4, 17);
        memcpy(copy, buf, wire);
        assert_int_equal(swc_secchan_open_inplace(s, buf, wire), 0);
        assert_memory_equal(buf, msg, len);
        roundtrip(c, s, SWC_AEAD_BULK_MIN); /* the counter moved on by one */
        seal_pieces(c, buf, 100, 0, 50);    /* small frames too */
        assert_int_equal(swc_secchan_open_inplace(s, buf, 100 + SWC_SECCHAN_OVERHEAD), 0);
        assert_memory_equal(buf, msg, 100);
        /* Misuse: no begin; a second frame while one is open. */
        assert_int_equal(swc_secchan_seal_update(c, buf, msg, 1), SWC_ESTATE);
        assert_int_equal(swc_secchan_seal_end(c, buf), SWC_ESTATE);
        assert_int_equal(swc_secchan_seal_begin(c), 0);
        assert_int_equal(swc_secchan_seal_begin(c), SWC_ESTATE);
        assert_int_equal(swc_secchan_seal_inplace(c, buf, 10), SWC_ESTATE);
        assert_int_equal(swc_secchan_seal_update(c, buf, msg, 10), 0);
        assert_int_equal(swc_secchan_seal_end(c, buf + 10), 0);
        assert_int_equal(swc_secchan_open_inplace(s, buf, 10 + SWC_SECCHAN_OVERHEAD), 0);
        assert_memory_equal(buf, msg, 10);
        /* The replay of an earlier piecewise frame is refused. */
        assert_int_equal(swc_secchan_open_inplace(s, copy, wire), SWC_EAUTH);
        unpair(c, s);
        /* A flipped bit in a piecewise frame is refused. */
        pair(SWC_AEAD_OPENSSL, peer_openssl ? SWC_AEAD_OPENSSL : SWC_AEAD_SODIUM, &c, &s);
        seal_pieces(c, buf, len, 1, 65536);
        buf[len / 3] ^= 0x01;
        assert_int_equal(swc_secchan_open_inplace(s, buf, wire), SWC_EAUTH);
        unpair(c, s);
    }
    /* Channels that cannot seal in pieces say so and stay usable. */
    struct swc_secchan *c, *s;
    pair(SWC_AEAD_SODIUM, SWC_AEAD_OPENSSL, &c, &s);
    assert_int_equal(swc_secchan_seal_begin(c), SWC_ENOTSUP);
    roundtrip(c, s, len);
    assert_int_equal(swc_secchan_bulk_frames(c), 0);
    unpair(c, s);
    swc_free(buf);
    swc_free(copy);
}

/* A channel configured for libsodium never calls OpenSSL, even for bulk
 * frames; an unknown backend value is refused. */
static void test_sodium_forced(void **state)
{
    struct swc_secchan *c, *s;
    pair(SWC_AEAD_SODIUM, SWC_AEAD_SODIUM, &c, &s);
    roundtrip(c, s, BIG);
    roundtrip(s, c, SWC_AEAD_BULK_MIN);
    assert_int_equal(swc_secchan_bulk_frames(c), 0);
    assert_int_equal(swc_secchan_bulk_frames(s), 0);
    unpair(c, s);
    struct swc_secchan_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.is_client = true;
    cfg.required_peer_role = -1;
    cfg.aead_backend = 3;
    assert_int_equal(swc_secchan_create(&cfg, &c), SWC_EINVAL);
}

int main(void)
{
    unsetenv("SWC_AEAD"); /* the tests choose backends themselves */
    swc_keypair_new(ca_pk, ca_sk);
    make_identity(&server_id, "mgr1", SWC_ROLE_MANAGER);
    make_identity(&client_id, "wrk1", SWC_ROLE_WORKER);
    msg = swc_malloc(BIG);
    for (size_t i = 0; i < BIG; i++) {
        msg[i] = (uint8_t)(i * 131 + (i >> 9));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_load), /* first: it needs libcrypto unmapped */
        cmocka_unit_test(test_primitive_interop),   cmocka_unit_test(test_channel_interop),
        cmocka_unit_test(test_tampered_bulk_frame), cmocka_unit_test(test_sodium_forced),
        cmocka_unit_test(test_piecewise_primitive), cmocka_unit_test(test_piecewise_channel),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    swc_free(msg);
    /* LSan reports nothing without it (OpenSSL's globals stay reachable);
     * called to show the exit path works. */
    swc_aead_openssl_cleanup();
    return rc;
}
