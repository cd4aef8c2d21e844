/* AEGIS-128L with AES-NI (see aegis.h), written from the algorithm text of
 * draft-irtf-cfrg-aegis-aead and checked against its appendix vectors
 * (tests/unit/test_net_aegis.c).
 *
 * The state S0..S7 lives in the struct as bytes and is loaded into eight
 * XMM registers for the duration of each call; the hot loops (encrypting,
 * decrypting, absorbing whole 32-byte blocks) keep it in registers. One
 * Update is eight AES rounds, AESRound(in, rk) being exactly one AESENC:
 * S'i = AESENC(S(i-1), Si), with the message blocks xored into S0 and S4.
 * Functions that use the intrinsics carry target("aes,avx"), so the rest of
 * the build needs no -maes, and swc_aegis128l_available() checks the CPU
 * (__builtin_cpu_supports) before anyone calls them. AVX is asked for only
 * for its three-operand (VEX) encodings, which drop the register copies the
 * two-operand SSE forms need: 10-15 % faster here; the few x86 CPUs with
 * AES-NI but no AVX (Westmere, some Atoms) simply do not offer AEGIS.
 *
 * The keystream of a block (z0 = S6 ^ S1 ^ (S2 & S3), z1 = S2 ^ S5 ^ (S6 &
 * S7)) depends only on the state before that block, and the state moves only
 * once the whole 32-byte block of plaintext is known. The incremental seal
 * therefore encrypts the bytes of an unfinished block at once with that
 * keystream, keeps their plaintext in `pend`, and runs the Update when the
 * block fills (or, zero-padded, at the end): any split of the message gives
 * the one-shot bytes, and the caller's output never lags its input. */
#include "net/aegis.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SWC_AEGIS_X86 1
#include <immintrin.h>
#endif

#ifdef SWC_AEGIS_X86

#define TGT __attribute__((target("aes,avx")))

/* The draft's constants C0 (Fibonacci numbers mod 256) and C1. */
static const uint8_t C0[16] = {0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d,
                               0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62};
static const uint8_t C1[16] = {0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1,
                               0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd};

#define LD(p)    _mm_loadu_si128((const __m128i *)(const void *)(p))
#define ST(p, v) _mm_storeu_si128((__m128i *)(void *)(p), (v))

/* Declare s0..s7 from st->s, and write them back. */
#define STATE_LOAD(S)                                                                              \
    __m128i s0 = LD(S[0]), s1 = LD(S[1]), s2 = LD(S[2]), s3 = LD(S[3]), s4 = LD(S[4]),             \
            s5 = LD(S[5]), s6 = LD(S[6]), s7 = LD(S[7])
#define STATE_STORE(S)                                                                             \
    do {                                                                                           \
        ST(S[0], s0);                                                                              \
        ST(S[1], s1);                                                                              \
        ST(S[2], s2);                                                                              \
        ST(S[3], s3);                                                                              \
        ST(S[4], s4);                                                                              \
        ST(S[5], s5);                                                                              \
        ST(S[6], s6);                                                                              \
        ST(S[7], s7);                                                                              \
    } while (0)

/* Update(M0, M1): computed from S7 down so each line reads old values.
 * AESENC(x, k) is AESRound(x) ^ k, so AESRound(S7, S0 ^ M0) is computed as
 * AESENC(S7, 0) ^ (S0 ^ M0): the message block (which, when opening,
 * comes from the keystream of this very state) then joins after the AES
 * round instead of before it, off the loop's critical path. */
#define UPDATE(m0, m1)                                                                             \
    do {                                                                                           \
        __m128i old7 = s7;                                                                         \
        s7 = _mm_aesenc_si128(s6, s7);                                                             \
        s6 = _mm_aesenc_si128(s5, s6);                                                             \
        s5 = _mm_aesenc_si128(s4, s5);                                                             \
        s4 = _mm_xor_si128(_mm_aesenc_si128(s3, _mm_setzero_si128()), _mm_xor_si128(s4, (m1)));    \
        s3 = _mm_aesenc_si128(s2, s3);                                                             \
        s2 = _mm_aesenc_si128(s1, s2);                                                             \
        s1 = _mm_aesenc_si128(s0, s1);                                                             \
        s0 = _mm_xor_si128(_mm_aesenc_si128(old7, _mm_setzero_si128()), _mm_xor_si128(s0, (m0)));  \
    } while (0)

#define Z0() _mm_xor_si128(_mm_xor_si128(s6, s1), _mm_and_si128(s2, s3))
#define Z1() _mm_xor_si128(_mm_xor_si128(s2, s5), _mm_and_si128(s6, s7))

typedef uint8_t state_t[8][16];

TGT static void st_init(state_t S, const uint8_t key[16], const uint8_t nonce[16])
{
    __m128i k = LD(key), n = LD(nonce), c0 = LD(C0), c1 = LD(C1);
    __m128i s0 = _mm_xor_si128(k, n), s1 = c1, s2 = c0, s3 = c1, s4 = s0;
    __m128i s5 = _mm_xor_si128(k, c0), s6 = _mm_xor_si128(k, c1), s7 = s5;
    for (int i = 0; i < 10; i++) {
        UPDATE(n, k);
    }
    STATE_STORE(S);
}

/* Absorb n whole 32-byte blocks of in (Update(t0, t1) per block). */
TGT static void st_absorb(state_t S, const uint8_t *in, size_t n)
{
    STATE_LOAD(S);
    for (size_t i = 0; i < n; i++, in += 32) {
        UPDATE(LD(in), LD(in + 16));
    }
    STATE_STORE(S);
}

/* Enc over n whole blocks: out may equal in. */
TGT static void st_enc(state_t S, uint8_t *out, const uint8_t *in, size_t n)
{
    STATE_LOAD(S);
    for (size_t i = 0; i < n; i++, in += 32, out += 32) {
        __m128i t0 = LD(in), t1 = LD(in + 16);
        ST(out, _mm_xor_si128(t0, Z0()));
        ST(out + 16, _mm_xor_si128(t1, Z1()));
        UPDATE(t0, t1);
    }
    STATE_STORE(S);
}

/* Dec over n whole blocks: out may equal in. */
TGT static void st_dec(state_t S, uint8_t *out, const uint8_t *in, size_t n)
{
    STATE_LOAD(S);
    for (size_t i = 0; i < n; i++, in += 32, out += 32) {
        __m128i x0 = _mm_xor_si128(LD(in), Z0()), x1 = _mm_xor_si128(LD(in + 16), Z1());
        ST(out, x0);
        ST(out + 16, x1);
        UPDATE(x0, x1);
    }
    STATE_STORE(S);
}

/* The keystream of the next block (the state does not move). */
TGT static void st_keystream(state_t S, uint8_t z[32])
{
    STATE_LOAD(S);
    ST(z, Z0());
    ST(z + 16, Z1());
    (void)s0;
    (void)s4;
}

/* Finalize: the 128-bit tag for ad_len and msg_len bytes. */
TGT static void st_final(state_t S, uint64_t ad_len, uint64_t msg_len, uint8_t mac[16])
{
    STATE_LOAD(S);
    __m128i t =
        _mm_xor_si128(s2, _mm_set_epi64x((long long)(msg_len << 3), (long long)(ad_len << 3)));
    for (int i = 0; i < 7; i++) {
        UPDATE(t, t);
    }
    __m128i tag = _mm_xor_si128(_mm_xor_si128(_mm_xor_si128(s0, s1), _mm_xor_si128(s2, s3)),
                                _mm_xor_si128(_mm_xor_si128(s4, s5), s6));
    ST(mac, tag);
    (void)s7;
}

/* Absorb ad[0..adlen), the last block zero-padded. */
static void absorb_ad(state_t S, const uint8_t *ad, size_t adlen)
{
    size_t full = adlen / 32;
    st_absorb(S, ad, full);
    if (adlen % 32 != 0) {
        uint8_t blk[32] = {0};
        memcpy(blk, ad + full * 32, adlen % 32);
        st_absorb(S, blk, 1);
    }
}

bool swc_aegis128l_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("avx");
}

void swc_aegis128l_seal_begin(struct swc_aegis128l *st, const uint8_t key[SWC_AEGIS_KEY_LEN],
                              const uint8_t nonce[SWC_AEGIS_NONCE_LEN], const uint8_t *ad,
                              size_t adlen)
{
    st_init(st->s, key, nonce);
    absorb_ad(st->s, ad, adlen);
    st->npend = 0;
    st->ad_len = adlen;
    st->msg_len = 0;
}

void swc_aegis128l_seal_update(struct swc_aegis128l *st, uint8_t *c, const uint8_t *m, size_t len)
{
    uint8_t z[32];
    st->msg_len += len;
    if (st->npend > 0 && len > 0) {
        /* Finish the pending block: its keystream is already fixed. */
        st_keystream(st->s, z);
        size_t k = 32 - st->npend < len ? 32 - st->npend : len;
        for (size_t i = 0; i < k; i++) {
            uint8_t x = m[i];
            st->pend[st->npend + i] = x;
            c[i] = x ^ z[st->npend + i];
        }
        st->npend += k;
        m += k;
        c += k;
        len -= k;
        if (st->npend < 32) {
            return;
        }
        st_absorb(st->s, st->pend, 1);
        st->npend = 0;
    }
    size_t full = len / 32;
    st_enc(st->s, c, m, full);
    size_t r = len % 32;
    if (r > 0) {
        m += full * 32;
        c += full * 32;
        st_keystream(st->s, z);
        for (size_t i = 0; i < r; i++) {
            uint8_t x = m[i];
            st->pend[i] = x;
            c[i] = x ^ z[i];
        }
        st->npend = r;
    }
}

void swc_aegis128l_seal_final(struct swc_aegis128l *st, uint8_t mac[SWC_AEGIS_TAG_LEN])
{
    if (st->npend > 0) {
        memset(st->pend + st->npend, 0, 32 - st->npend);
        st_absorb(st->s, st->pend, 1);
    }
    st_final(st->s, st->ad_len, st->msg_len, mac);
    sodium_memzero(st, sizeof *st);
}

void swc_aegis128l_seal(const uint8_t key[SWC_AEGIS_KEY_LEN],
                        const uint8_t nonce[SWC_AEGIS_NONCE_LEN], uint8_t *c,
                        uint8_t mac[SWC_AEGIS_TAG_LEN], const uint8_t *m, size_t len,
                        const uint8_t *ad, size_t adlen)
{
    struct swc_aegis128l st;
    swc_aegis128l_seal_begin(&st, key, nonce, ad, adlen);
    swc_aegis128l_seal_update(&st, c, m, len);
    swc_aegis128l_seal_final(&st, mac);
}

int swc_aegis128l_open(const uint8_t key[SWC_AEGIS_KEY_LEN],
                       const uint8_t nonce[SWC_AEGIS_NONCE_LEN], uint8_t *m, const uint8_t *c,
                       size_t len, const uint8_t mac[SWC_AEGIS_TAG_LEN], const uint8_t *ad,
                       size_t adlen)
{
    _Alignas(16) uint8_t S[8][16];
    uint8_t tag[SWC_AEGIS_TAG_LEN];
    st_init(S, key, nonce);
    absorb_ad(S, ad, adlen);
    size_t full = len / 32, r = len % 32;
    st_dec(S, m, c, full);
    if (r > 0) {
        /* DecPartial: decrypt the tail, absorb it zero-padded. */
        uint8_t z[32], x[32] = {0};
        st_keystream(S, z);
        for (size_t i = 0; i < r; i++) {
            x[i] = c[full * 32 + i] ^ z[i];
        }
        st_absorb(S, x, 1);
        memcpy(m + full * 32, x, r);
        sodium_memzero(x, sizeof x);
        sodium_memzero(z, sizeof z);
    }
    st_final(S, adlen, len, tag);
    sodium_memzero(S, sizeof S);
    if (sodium_memcmp(tag, mac, sizeof tag) != 0) {
        if (len > 0) {
            sodium_memzero(m, len);
        }
        return SWC_EAUTH;
    }
    return 0;
}

#else /* no AES-NI code in this build: the cipher is never offered */

bool swc_aegis128l_available(void)
{
    return false;
}

void swc_aegis128l_seal_begin(struct swc_aegis128l *st, const uint8_t key[SWC_AEGIS_KEY_LEN],
                              const uint8_t nonce[SWC_AEGIS_NONCE_LEN], const uint8_t *ad,
                              size_t adlen)
{
    abort();
}

void swc_aegis128l_seal_update(struct swc_aegis128l *st, uint8_t *c, const uint8_t *m, size_t len)
{
    abort();
}

void swc_aegis128l_seal_final(struct swc_aegis128l *st, uint8_t mac[SWC_AEGIS_TAG_LEN])
{
    abort();
}

void swc_aegis128l_seal(const uint8_t key[SWC_AEGIS_KEY_LEN],
                        const uint8_t nonce[SWC_AEGIS_NONCE_LEN], uint8_t *c,
                        uint8_t mac[SWC_AEGIS_TAG_LEN], const uint8_t *m, size_t len,
                        const uint8_t *ad, size_t adlen)
{
    abort();
}

int swc_aegis128l_open(const uint8_t key[SWC_AEGIS_KEY_LEN],
                       const uint8_t nonce[SWC_AEGIS_NONCE_LEN], uint8_t *m, const uint8_t *c,
                       size_t len, const uint8_t mac[SWC_AEGIS_TAG_LEN], const uint8_t *ad,
                       size_t adlen)
{
    abort();
}

#endif
