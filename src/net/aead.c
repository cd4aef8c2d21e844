/* Bulk AEAD backend over OpenSSL's libcrypto (see aead.h for why).
 *
 * libcrypto is opened with dlopen under pthread_once, the few EVP entry
 * points are resolved into the table `ossl` (their types checked against
 * OpenSSL's own headers), and the library is never closed: OpenSSL keeps
 * global state that any other user of libcrypto.so.3 in the process shares,
 * and unloading it buys nothing in a long-lived daemon. A failed load
 * is final for the process and is logged once at debug level; callers then
 * use libsodium.
 *
 * A context is initialised with the cipher and key once; each record then
 * only sets its nonce (EVP_*Init_ex with NULL cipher and key keeps the key
 * schedule), runs Update over the data in place and reads or checks the tag.
 * Sealing is also offered in three steps (begin, update per piece, final) so
 * a sender can encrypt scattered pieces straight into one record. */
#include "net/aead.h"

#include <dlfcn.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"

#define LIBCRYPTO_SONAME "libcrypto.so.3"
#define UPDATE_MAX       (1 << 30) /* EVP_*Update takes an int length */

static struct {
    bool loaded;
    __typeof__(&EVP_CIPHER_CTX_new) ctx_new;
    __typeof__(&EVP_CIPHER_CTX_free) ctx_free;
    __typeof__(&EVP_CIPHER_CTX_ctrl) ctx_ctrl;
    __typeof__(&EVP_aes_256_gcm) aes_256_gcm;
    __typeof__(&EVP_EncryptInit_ex) enc_init;
    __typeof__(&EVP_EncryptUpdate) enc_update;
    __typeof__(&EVP_EncryptFinal_ex) enc_final;
    __typeof__(&EVP_DecryptInit_ex) dec_init;
    __typeof__(&EVP_DecryptUpdate) dec_update;
    __typeof__(&EVP_DecryptFinal_ex) dec_final;
    __typeof__(&OPENSSL_cleanup) cleanup;
} ossl;
static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;

struct swc_aead_gcm {
    EVP_CIPHER_CTX *ctx;
    bool encrypt;
};

static void ossl_load(void)
{
    const char *force = getenv("SWC_AEAD");
    if (force != NULL && strcmp(force, "sodium") == 0) {
        swc_debugf("net", "bulk AEAD: SWC_AEAD=sodium, using libsodium");
        return;
    }
    void *dl = dlopen(LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *why = dlerror();
        swc_debugf("net", "bulk AEAD: cannot load %s (%s), using libsodium", LIBCRYPTO_SONAME,
                   why != NULL ? why : "dlopen failed");
        return;
    }
    const char *missing = NULL;
#define SYM(field, sym)                                                                            \
    do {                                                                                           \
        if (missing == NULL && (ossl.field = (__typeof__(ossl.field))dlsym(dl, #sym)) == NULL) {   \
            missing = #sym;                                                                        \
        }                                                                                          \
    } while (0)
    SYM(ctx_new, EVP_CIPHER_CTX_new);
    SYM(ctx_free, EVP_CIPHER_CTX_free);
    SYM(ctx_ctrl, EVP_CIPHER_CTX_ctrl);
    SYM(aes_256_gcm, EVP_aes_256_gcm);
    SYM(enc_init, EVP_EncryptInit_ex);
    SYM(enc_update, EVP_EncryptUpdate);
    SYM(enc_final, EVP_EncryptFinal_ex);
    SYM(dec_init, EVP_DecryptInit_ex);
    SYM(dec_update, EVP_DecryptUpdate);
    SYM(dec_final, EVP_DecryptFinal_ex);
    SYM(cleanup, OPENSSL_cleanup);
#undef SYM
    if (missing != NULL) {
        swc_debugf("net", "bulk AEAD: %s has no %s, using libsodium", LIBCRYPTO_SONAME, missing);
        dlclose(dl);
        memset(&ossl, 0, sizeof ossl);
        return;
    }
    ossl.loaded = true;
    swc_debugf("net", "bulk AEAD: using OpenSSL (%s) for records of %u bytes and more",
               LIBCRYPTO_SONAME, SWC_AEAD_BULK_MIN);
}

bool swc_aead_openssl_available(void)
{
    pthread_once(&ossl_once, ossl_load);
    return ossl.loaded;
}

int swc_aead_gcm_create(const uint8_t key[SWC_AEAD_KEY_LEN], bool encrypt,
                        struct swc_aead_gcm **out)
{
    *out = NULL;
    if (!swc_aead_openssl_available()) {
        return SWC_ENOTSUP;
    }
    struct swc_aead_gcm *g = swc_calloc(1, sizeof *g);
    if (g == NULL) {
        return SWC_ENOMEM;
    }
    g->encrypt = encrypt;
    g->ctx = ossl.ctx_new();
    if (g->ctx == NULL) {
        swc_free(g);
        return SWC_ENOMEM;
    }
    /* GCM's default IV length is the 12 bytes we use. */
    int ok = encrypt ? ossl.enc_init(g->ctx, ossl.aes_256_gcm(), NULL, key, NULL)
                     : ossl.dec_init(g->ctx, ossl.aes_256_gcm(), NULL, key, NULL);
    if (ok != 1) {
        swc_aead_gcm_destroy(g);
        return SWC_ENOMEM;
    }
    *out = g;
    return 0;
}

void swc_aead_gcm_destroy(struct swc_aead_gcm *g)
{
    if (g == NULL) {
        return;
    }
    ossl.ctx_free(g->ctx); /* wipes the key schedule */
    swc_free(g);
}

int swc_aead_gcm_seal_begin(struct swc_aead_gcm *g, const uint8_t nonce[SWC_AEAD_NONCE_LEN])
{
    if (!g->encrypt || ossl.enc_init(g->ctx, NULL, NULL, NULL, nonce) != 1) {
        return SWC_EINTERNAL;
    }
    return 0;
}

int swc_aead_gcm_seal_update(struct swc_aead_gcm *g, uint8_t *c, const uint8_t *m, size_t len)
{
    int n;
    if (!g->encrypt) {
        return SWC_EINTERNAL;
    }
    /* GCM is a stream cipher: OpenSSL keeps a partial block between calls
     * and always outputs as many bytes as it took. */
    for (size_t off = 0; off < len;) {
        int step = len - off > UPDATE_MAX ? UPDATE_MAX : (int)(len - off);
        if (ossl.enc_update(g->ctx, c + off, &n, m + off, step) != 1 || n != step) {
            return SWC_EINTERNAL;
        }
        off += (size_t)step;
    }
    return 0;
}

int swc_aead_gcm_seal_final(struct swc_aead_gcm *g, uint8_t mac[SWC_AEAD_TAG_LEN])
{
    int n;
    uint8_t none[16]; /* Final writes nothing for GCM */
    if (!g->encrypt || ossl.enc_final(g->ctx, none, &n) != 1 ||
        ossl.ctx_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, SWC_AEAD_TAG_LEN, mac) != 1) {
        return SWC_EINTERNAL;
    }
    return 0;
}

int swc_aead_gcm_seal(struct swc_aead_gcm *g, const uint8_t nonce[SWC_AEAD_NONCE_LEN], uint8_t *c,
                      uint8_t mac[SWC_AEAD_TAG_LEN], const uint8_t *m, size_t len)
{
    int rc = swc_aead_gcm_seal_begin(g, nonce);
    if (rc == 0) {
        rc = swc_aead_gcm_seal_update(g, c, m, len);
    }
    if (rc == 0) {
        rc = swc_aead_gcm_seal_final(g, mac);
    }
    return rc;
}

int swc_aead_gcm_open(struct swc_aead_gcm *g, const uint8_t nonce[SWC_AEAD_NONCE_LEN], uint8_t *m,
                      const uint8_t *c, size_t len, const uint8_t mac[SWC_AEAD_TAG_LEN])
{
    int n;
    uint8_t tag[SWC_AEAD_TAG_LEN];
    memcpy(tag, mac, sizeof tag); /* SET_TAG wants a non-const pointer */
    if (g->encrypt || ossl.dec_init(g->ctx, NULL, NULL, NULL, nonce) != 1) {
        return SWC_EINTERNAL;
    }
    for (size_t off = 0; off < len;) {
        int step = len - off > UPDATE_MAX ? UPDATE_MAX : (int)(len - off);
        if (ossl.dec_update(g->ctx, m + off, &n, c + off, step) != 1 || n != step) {
            return SWC_EINTERNAL;
        }
        off += (size_t)step;
    }
    if (ossl.ctx_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, SWC_AEAD_TAG_LEN, tag) != 1) {
        return SWC_EINTERNAL;
    }
    /* Final compares the tags in constant time and writes nothing for GCM. */
    return ossl.dec_final(g->ctx, m + len, &n) == 1 ? 0 : SWC_EAUTH;
}

void swc_aead_openssl_cleanup(void)
{
    if (ossl.loaded) {
        ossl.cleanup();
    }
}
