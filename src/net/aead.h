/* Bulk AEAD backend: AES-256-GCM through OpenSSL's libcrypto, for large
 * secure-channel records only (secchan.c decides when).
 *
 * libsodium 1.0.18's AES-256-GCM runs at ~1.5-1.9 GB/s here, while
 * OpenSSL 3's (VAES/AVX-512 code paths) is about twice as fast. Both compute
 * the very same algorithm, so a record sealed by one opens with the other:
 * same 32-byte key, same 12-byte nonce, 16-byte tag after the ciphertext.
 * libcrypto is not linked: it is opened with dlopen("libcrypto.so.3") the
 * first time a bulk record is sealed or opened, so a process that never
 * moves bulk data (the CLI, an idle worker) never maps it. When it cannot be
 * loaded, or SWC_AEAD=sodium is set in the environment, every caller falls
 * back to libsodium (logged once at debug level).
 *
 * OpenSSL allocates with its own malloc, not through base/alloc.h: it keeps
 * global state for the life of the process, which must not count as a leak
 * of ours, and a context must not fail halfway because a test injected an
 * allocation failure. */
#ifndef SWC_NET_AEAD_H
#define SWC_NET_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Records with at least this much plaintext use the bulk backend. */
#define SWC_AEAD_BULK_MIN (64u * 1024)

#define SWC_AEAD_KEY_LEN   32
#define SWC_AEAD_NONCE_LEN 12
#define SWC_AEAD_TAG_LEN   16

/* Which implementation seals and opens bulk records (swc_secchan_config). */
enum swc_aead_backend {
    SWC_AEAD_AUTO = 0,    /* OpenSSL when it loads, else libsodium */
    SWC_AEAD_SODIUM = 1,  /* always libsodium */
    SWC_AEAD_OPENSSL = 2, /* like AUTO; tests use it to name the intent */
};

/* One direction's AES-256-GCM key schedule inside OpenSSL. */
struct swc_aead_gcm;

/* Load libcrypto once (thread-safe; later calls only read the result).
 * true when the OpenSSL backend can be used. */
bool swc_aead_openssl_available(void);

/* A context holding key for sealing (encrypt) or opening; *out is owned by
 * the caller (swc_aead_gcm_destroy). 0, SWC_ENOTSUP when libcrypto is not
 * available, SWC_ENOMEM. */
int swc_aead_gcm_create(const uint8_t key[SWC_AEAD_KEY_LEN], bool encrypt,
                        struct swc_aead_gcm **out);

/* Free a context and OpenSSL's copy of the key; NULL is fine. */
void swc_aead_gcm_destroy(struct swc_aead_gcm *g);

/* Encrypt m[0..len) to c (may equal m) under nonce, tag to mac. 0, or
 * SWC_EINTERNAL when OpenSSL fails (nothing usable was written). */
int swc_aead_gcm_seal(struct swc_aead_gcm *g, const uint8_t nonce[SWC_AEAD_NONCE_LEN], uint8_t *c,
                      uint8_t mac[SWC_AEAD_TAG_LEN], const uint8_t *m, size_t len);

/* Start sealing one record whose plaintext comes in pieces: sets nonce.
 * Then any number of swc_aead_gcm_seal_update and one
 * swc_aead_gcm_seal_final give exactly the bytes swc_aead_gcm_seal gives for
 * the concatenated pieces. 0 or SWC_EINTERNAL. */
int swc_aead_gcm_seal_begin(struct swc_aead_gcm *g, const uint8_t nonce[SWC_AEAD_NONCE_LEN]);

/* Encrypt the next piece m[0..len) of the record to c (may equal m; pieces
 * of any length, not only whole blocks). 0 or SWC_EINTERNAL. */
int swc_aead_gcm_seal_update(struct swc_aead_gcm *g, uint8_t *c, const uint8_t *m, size_t len);

/* Finish the record begun with swc_aead_gcm_seal_begin: tag to mac. 0 or
 * SWC_EINTERNAL. */
int swc_aead_gcm_seal_final(struct swc_aead_gcm *g, uint8_t mac[SWC_AEAD_TAG_LEN]);

/* Decrypt c[0..len) to m (may equal c) and check mac. 0, SWC_EAUTH when
 * the tag does not match (m's contents are then unspecified), or
 * SWC_EINTERNAL. */
int swc_aead_gcm_open(struct swc_aead_gcm *g, const uint8_t nonce[SWC_AEAD_NONCE_LEN], uint8_t *m,
                      const uint8_t *c, size_t len, const uint8_t mac[SWC_AEAD_TAG_LEN]);

/* Release OpenSSL's global state (OPENSSL_cleanup) if libcrypto was loaded;
 * only for the end of a test process: no context may be used afterwards. */
void swc_aead_openssl_cleanup(void);

#endif
