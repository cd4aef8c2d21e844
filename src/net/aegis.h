/* AEGIS-128L authenticated encryption (draft-irtf-cfrg-aegis-aead), the
 * fastest frame cipher of the secure channel on CPUs with AES instructions.
 *
 * AEGIS-128L keeps a 1024-bit state of eight AES blocks and moves it forward
 * with one AES round per block for every 32 bytes of input, so it needs no
 * key schedule, no GHASH and no separate MAC pass: on x86-64 with AES-NI it
 * seals and opens several times faster than AES-256-GCM. Key and nonce are
 * 16 bytes each; the tag is the 16-byte variant. The code is x86-64 only
 * (AES-NI intrinsics with AVX encodings, chosen at run time): on other CPUs,
 * or x86 CPUs without AES-NI and AVX, swc_aegis128l_available() is false and the secure channel
 * does not offer the cipher; every other function must then not be called.
 *
 * A nonce must never be used twice under one key: AEGIS leaks its state if
 * it is. The secure channel guarantees that with its frame counter. The
 * state holds key-derived material: callers wipe it (or the struct that
 * embeds it) when done. No allocation happens here. */
#ifndef SWC_NET_AEGIS_H
#define SWC_NET_AEGIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SWC_AEGIS_KEY_LEN   16
#define SWC_AEGIS_NONCE_LEN 16
#define SWC_AEGIS_TAG_LEN   16

/* One message being sealed piece by piece (or a scratch state). Plain bytes
 * so that this header needs no intrinsics; the fields are private. */
struct swc_aegis128l {
    _Alignas(16) uint8_t s[8][16]; /* S0..S7 */
    uint8_t pend[32];              /* plaintext of the unfinished 32-byte block */
    size_t npend;                  /* bytes in pend */
    uint64_t ad_len, msg_len;      /* bytes */
};

/* true when this build and CPU can run AEGIS-128L (x86-64, AES-NI, AVX). */
bool swc_aegis128l_available(void);

/* Seal m[0..len) with associated data ad[0..adlen): ciphertext to c (may
 * equal m), tag to mac. Always succeeds. */
void swc_aegis128l_seal(const uint8_t key[SWC_AEGIS_KEY_LEN],
                        const uint8_t nonce[SWC_AEGIS_NONCE_LEN], uint8_t *c,
                        uint8_t mac[SWC_AEGIS_TAG_LEN], const uint8_t *m, size_t len,
                        const uint8_t *ad, size_t adlen);

/* Open c[0..len) with ad[0..adlen) to m (may equal c) and check mac in
 * constant time. 0, or SWC_EAUTH when the tag does not match (m is then
 * zeroed, as the draft requires). */
int swc_aegis128l_open(const uint8_t key[SWC_AEGIS_KEY_LEN],
                       const uint8_t nonce[SWC_AEGIS_NONCE_LEN], uint8_t *m, const uint8_t *c,
                       size_t len, const uint8_t mac[SWC_AEGIS_TAG_LEN], const uint8_t *ad,
                       size_t adlen);

/* Start sealing one message under key and nonce, absorbing ad[0..adlen).
 * Then any number of swc_aegis128l_seal_update and one
 * swc_aegis128l_seal_final give the same bytes as swc_aegis128l_seal of the
 * concatenated pieces. */
void swc_aegis128l_seal_begin(struct swc_aegis128l *st, const uint8_t key[SWC_AEGIS_KEY_LEN],
                              const uint8_t nonce[SWC_AEGIS_NONCE_LEN], const uint8_t *ad,
                              size_t adlen);

/* Encrypt the next piece m[0..len) to c (may equal m): pieces of any length;
 * every byte's ciphertext is written before the call returns. */
void swc_aegis128l_seal_update(struct swc_aegis128l *st, uint8_t *c, const uint8_t *m, size_t len);

/* Finish the message: tag to mac; st is wiped. */
void swc_aegis128l_seal_final(struct swc_aegis128l *st, uint8_t mac[SWC_AEGIS_TAG_LEN]);

#endif
