/* Certificates, identity keys, join tokens and data-key encryption.
 *
 * Everything here is a thin, strict layer over libsodium. Identity and CA
 * keys are Ed25519 (crypto_sign). A certificate is our own compact binary
 * record rather than X.509, because we only ever need five fields and a
 * parser we can read end to end:
 *
 *   u8  version (1)           u8  role (0 worker, 1 manager)
 *   u8  node id length n      n   bytes node id (printable ASCII, 1..64)
 *   u8  cluster id length m   m   bytes cluster id (printable ASCII, 1..64)
 *   32  Ed25519 public key    i64 not-after, ns since the epoch, big-endian
 *   64  CA signature
 *
 * The CA signs a domain label followed by every byte before the signature,
 * so a certificate signature can never be confused with a transcript
 * signature made by the same key. Decoding checks each length before it
 * reads and insists the record ends exactly where the signature does: a
 * certificate has one encoding and every other byte string is SWC_EPROTO.
 *
 * A join token is "SWMTKN-1-<64 lowercase hex: BLAKE2b digest of the CA
 * public key>-<26 chars of lowercase base32 secret>". The cluster stores only
 * the BLAKE2b hash of the secret; a joining node proves it knows the secret
 * with a MAC keyed by that hash over the secure channel's transcript (see
 * docs/security.md). Data-key sealing is XChaCha20-Poly1305 (IETF) with a
 * random 24-byte nonce written in front of the ciphertext: random nonces
 * are safe at 192 bits, so no counter has to survive restarts. */
#include "net/cert.h"

#include <sodium.h>
#include <string.h>

#include "base/err.h"
#include "base/id.h"

#define CERT_VERSION     1
#define CERT_FIXED_LEN   (1 + 1 + 1 + 1 + SWC_SIGN_PK_LEN + 8 + SWC_SIG_LEN)
#define CERT_SIGN_DOMAIN "swarmc cert v1"

#define TOKEN_PREFIX     "SWMTKN-1-"
#define TOKEN_DIGEST_HEX 64
#define TOKEN_SECRET_LEN 26
#define TOKEN_LEN        (sizeof(TOKEN_PREFIX) - 1 + TOKEN_DIGEST_HEX + 1 + TOKEN_SECRET_LEN)
#define TOKEN_HASH_KEY   "swarmc join secret v1"
#define CA_DIGEST_KEY    "swarmc ca digest v1"
#define PROOF_KEY_DOMAIN "swarmc join proof v1"

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static void sodium_ready(void)
{
    /* sodium_init only fails when the system has no entropy source; the
     * id module already treats that as fatal at start-up. */
    (void)swc_sodium_init();
}

void swc_keypair_new(uint8_t pk[SWC_SIGN_PK_LEN], uint8_t sk[SWC_SIGN_SK_LEN])
{
    sodium_ready();
    crypto_sign_keypair(pk, sk);
}

void swc_keypair_from_seed(const uint8_t seed[32], uint8_t pk[SWC_SIGN_PK_LEN],
                           uint8_t sk[SWC_SIGN_SK_LEN])
{
    sodium_ready();
    crypto_sign_seed_keypair(pk, sk, seed);
}

/* An id is 1..64 printable ASCII characters without spaces. */
static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n > SWC_CERT_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

static bool fields_ok(const struct swc_cert *cert)
{
    return (cert->role == SWC_ROLE_WORKER || cert->role == SWC_ROLE_MANAGER) &&
           id_ok(cert->node_id, strnlen(cert->node_id, SWC_CERT_ID_MAX + 1)) &&
           id_ok(cert->cluster_id, strnlen(cert->cluster_id, SWC_CERT_ID_MAX + 1));
}

/* Write the signed part of cert into p (room for SWC_CERT_MAX_LEN); returns
 * its length. The caller checked fields_ok. */
static size_t encode_body(const struct swc_cert *cert, uint8_t *p)
{
    size_t n = strlen(cert->node_id), m = strlen(cert->cluster_id), off = 0;
    p[off++] = CERT_VERSION;
    p[off++] = (uint8_t)cert->role;
    p[off++] = (uint8_t)n;
    memcpy(p + off, cert->node_id, n);
    off += n;
    p[off++] = (uint8_t)m;
    memcpy(p + off, cert->cluster_id, m);
    off += m;
    memcpy(p + off, cert->public_key, SWC_SIGN_PK_LEN);
    off += SWC_SIGN_PK_LEN;
    swc_put_u64(p + off, (uint64_t)cert->not_after);
    off += 8;
    return off;
}

/* The bytes the CA signs: a domain label, then the body. */
static size_t signed_bytes(const struct swc_cert *cert, uint8_t *p)
{
    size_t d = sizeof(CERT_SIGN_DOMAIN);
    memcpy(p, CERT_SIGN_DOMAIN, d);
    return d + encode_body(cert, p + d);
}

int swc_cert_sign(struct swc_cert *cert, const uint8_t ca_sk[SWC_SIGN_SK_LEN])
{
    uint8_t msg[SWC_CERT_MAX_LEN];
    if (!fields_ok(cert)) {
        return SWC_EINVAL;
    }
    sodium_ready();
    size_t n = signed_bytes(cert, msg);
    crypto_sign_detached(cert->signature, NULL, msg, n, ca_sk);
    return 0;
}

int swc_cert_encode(const struct swc_cert *cert, struct swc_buf *out)
{
    uint8_t p[SWC_CERT_MAX_LEN];
    if (!fields_ok(cert)) {
        return SWC_EINVAL;
    }
    size_t n = encode_body(cert, p);
    memcpy(p + n, cert->signature, SWC_SIG_LEN);
    return swc_buf_append(out, p, n + SWC_SIG_LEN);
}

int swc_cert_decode(const uint8_t *p, size_t len, struct swc_cert *cert)
{
    size_t off = 0, n, m;
    memset(cert, 0, sizeof *cert);
    if (p == NULL || len < CERT_FIXED_LEN + 2 || len > SWC_CERT_MAX_LEN) {
        return SWC_EPROTO;
    }
    if (p[off++] != CERT_VERSION) {
        return SWC_EPROTO;
    }
    if (p[off] != SWC_ROLE_WORKER && p[off] != SWC_ROLE_MANAGER) {
        return SWC_EPROTO;
    }
    cert->role = p[off++];
    n = p[off++];
    /* Every read below is covered by this running check: what is left must
     * hold the id plus the rest of the fixed part. */
    if (len - off < n + CERT_FIXED_LEN - 3 || !id_ok((const char *)p + off, n)) {
        return SWC_EPROTO;
    }
    memcpy(cert->node_id, p + off, n);
    off += n;
    m = p[off++];
    if (len - off != m + SWC_SIGN_PK_LEN + 8 + SWC_SIG_LEN) {
        return SWC_EPROTO;
    }
    if (!id_ok((const char *)p + off, m)) {
        return SWC_EPROTO;
    }
    memcpy(cert->cluster_id, p + off, m);
    off += m;
    memcpy(cert->public_key, p + off, SWC_SIGN_PK_LEN);
    off += SWC_SIGN_PK_LEN;
    cert->not_after = (int64_t)swc_get_u64(p + off);
    off += 8;
    memcpy(cert->signature, p + off, SWC_SIG_LEN);
    return 0;
}

int swc_cert_verify(const struct swc_cert *cert, const uint8_t ca_pk[SWC_SIGN_PK_LEN],
                    int64_t now_wall_ns)
{
    uint8_t msg[SWC_CERT_MAX_LEN];
    if (!fields_ok(cert)) {
        return SWC_EAUTH;
    }
    sodium_ready();
    size_t n = signed_bytes(cert, msg);
    if (crypto_sign_verify_detached(cert->signature, msg, n, ca_pk) != 0) {
        return SWC_EAUTH;
    }
    if (now_wall_ns >= cert->not_after) {
        return SWC_EEXPIRED;
    }
    return 0;
}

void swc_sign(const uint8_t *msg, size_t len, const uint8_t sk[SWC_SIGN_SK_LEN],
              uint8_t sig[SWC_SIG_LEN])
{
    sodium_ready();
    crypto_sign_detached(sig, NULL, msg, len, sk);
}

bool swc_sign_verify(const uint8_t *msg, size_t len, const uint8_t pk[SWC_SIGN_PK_LEN],
                     const uint8_t sig[SWC_SIG_LEN])
{
    sodium_ready();
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

/* --- join tokens ---------------------------------------------------------- */

void swc_ca_digest(const uint8_t ca_pk[SWC_SIGN_PK_LEN], uint8_t digest[32])
{
    sodium_ready();
    crypto_generichash(digest, 32, ca_pk, SWC_SIGN_PK_LEN, (const uint8_t *)CA_DIGEST_KEY,
                       sizeof(CA_DIGEST_KEY) - 1);
}

static void secret_hash(const char *secret, size_t len, uint8_t hash[32])
{
    crypto_generichash(hash, 32, (const uint8_t *)secret, len, (const uint8_t *)TOKEN_HASH_KEY,
                       sizeof(TOKEN_HASH_KEY) - 1);
}

int swc_token_new(const uint8_t ca_pk[SWC_SIGN_PK_LEN], char out[SWC_TOKEN_MAX],
                  uint8_t hash_out[32])
{
    uint8_t digest[32];
    char secret[TOKEN_SECRET_LEN + 1];
    sodium_ready();
    swc_ca_digest(ca_pk, digest);
    /* 26 independent base32 characters: 130 bits, no encoding to get wrong. */
    for (size_t i = 0; i < TOKEN_SECRET_LEN; i++) {
        secret[i] = base32_alphabet[randombytes_uniform(32)];
    }
    secret[TOKEN_SECRET_LEN] = '\0';
    size_t off = sizeof(TOKEN_PREFIX) - 1;
    memcpy(out, TOKEN_PREFIX, off);
    sodium_bin2hex(out + off, TOKEN_DIGEST_HEX + 1, digest, sizeof digest);
    off += TOKEN_DIGEST_HEX;
    out[off++] = '-';
    memcpy(out + off, secret, TOKEN_SECRET_LEN + 1);
    secret_hash(secret, TOKEN_SECRET_LEN, hash_out);
    sodium_memzero(secret, sizeof secret);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

int swc_token_parse_err(const char *token, uint8_t ca_digest[32], uint8_t secret_hash_out[32],
                        struct swc_err *err)
{
    size_t plen = sizeof(TOKEN_PREFIX) - 1;
    if (token == NULL) {
        return swc_err_set(err, SWC_EINVAL, "join token: empty");
    }
    size_t len = strnlen(token, SWC_TOKEN_MAX);
    if (len < plen || memcmp(token, TOKEN_PREFIX, plen) != 0) {
        return swc_err_set(err, SWC_EINVAL, "join token: does not start with %s", TOKEN_PREFIX);
    }
    if (len != TOKEN_LEN) {
        return swc_err_set(err, SWC_EINVAL, "join token: %zu characters, expected %zu", len,
                           (size_t)TOKEN_LEN);
    }
    const char *d = token + plen;
    if (d[TOKEN_DIGEST_HEX] != '-') {
        return swc_err_set(err, SWC_EINVAL, "join token: no '-' after the CA digest");
    }
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(d[2 * i]), lo = hexval(d[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return swc_err_set(err, SWC_EINVAL,
                               "join token: CA digest is not lowercase hexadecimal");
        }
        ca_digest[i] = (uint8_t)(hi << 4 | lo);
    }
    const char *s = d + TOKEN_DIGEST_HEX + 1;
    for (size_t i = 0; i < TOKEN_SECRET_LEN; i++) {
        if (strchr(base32_alphabet, s[i]) == NULL || s[i] == '\0') {
            return swc_err_set(err, SWC_EINVAL,
                               "join token: secret has a character outside [a-z2-7]");
        }
    }
    sodium_ready();
    secret_hash(s, TOKEN_SECRET_LEN, secret_hash_out);
    return 0;
}

int swc_token_parse(const char *token, uint8_t ca_digest[32], uint8_t secret_hash_out[32])
{
    return swc_token_parse_err(token, ca_digest, secret_hash_out, NULL);
}

void swc_token_proof(const uint8_t secret_hash_in[32], const uint8_t binding[32], uint8_t proof[32])
{
    uint8_t key[32];
    sodium_ready();
    /* Key the MAC by a value derived from the hash so the proof key is never
     * the stored hash itself. */
    crypto_generichash(key, sizeof key, (const uint8_t *)PROOF_KEY_DOMAIN,
                       sizeof(PROOF_KEY_DOMAIN) - 1, secret_hash_in, 32);
    crypto_generichash(proof, 32, binding, 32, key, sizeof key);
    sodium_memzero(key, sizeof key);
}

bool swc_token_proof_verify(const uint8_t secret_hash_in[32], const uint8_t binding[32],
                            const uint8_t proof[32])
{
    uint8_t want[32];
    swc_token_proof(secret_hash_in, binding, want);
    bool ok = sodium_memcmp(want, proof, sizeof want) == 0;
    sodium_memzero(want, sizeof want);
    return ok;
}

/* --- data-key encryption -------------------------------------------------- */

void swc_data_key_new(uint8_t key[SWC_DATA_KEY_LEN])
{
    sodium_ready();
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
}

int swc_data_seal(const uint8_t key[SWC_DATA_KEY_LEN], const uint8_t *in, size_t len,
                  struct swc_buf *out)
{
    const size_t nlen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    const size_t alen = crypto_aead_xchacha20poly1305_ietf_ABYTES;
    unsigned long long clen;
    if (len > SIZE_MAX - SWC_DATA_SEAL_OVERHEAD ||
        len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX) {
        return SWC_ETOOBIG;
    }
    if (swc_buf_reserve(out, len + nlen + alen) != 0) {
        return SWC_ENOMEM;
    }
    sodium_ready();
    uint8_t *p = out->data + out->len;
    randombytes_buf(p, nlen);
    crypto_aead_xchacha20poly1305_ietf_encrypt(p + nlen, &clen, in, len, NULL, 0, NULL, p, key);
    out->len += nlen + (size_t)clen;
    return 0;
}

int swc_data_seal_inplace(const uint8_t key[SWC_DATA_KEY_LEN], struct swc_buf *b, size_t off)
{
    const size_t nlen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    const size_t alen = crypto_aead_xchacha20poly1305_ietf_ABYTES;
    unsigned long long clen;
    _Static_assert(SWC_DATA_SEAL_NONCE == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
                   "nonce size");
    if (off < nlen || off > b->len) {
        return SWC_EINVAL;
    }
    size_t len = b->len - off;
    if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX) {
        return SWC_ETOOBIG;
    }
    if (swc_buf_reserve(b, alen) != 0) {
        return SWC_ENOMEM;
    }
    sodium_ready();
    uint8_t *n = b->data + off - nlen;
    randombytes_buf(n, nlen);
    /* libsodium's combined AEAD supports c == m (in-place). */
    crypto_aead_xchacha20poly1305_ietf_encrypt(b->data + off, &clen, b->data + off, len, NULL, 0,
                                               NULL, n, key);
    b->len = off + (size_t)clen;
    return 0;
}

int swc_data_open(const uint8_t key[SWC_DATA_KEY_LEN], const uint8_t *in, size_t len,
                  struct swc_buf *out)
{
    const size_t nlen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    unsigned long long mlen;
    if (len < SWC_DATA_SEAL_OVERHEAD) {
        return SWC_EPROTO;
    }
    if (swc_buf_reserve(out, len - SWC_DATA_SEAL_OVERHEAD) != 0) {
        return SWC_ENOMEM;
    }
    sodium_ready();
    /* Reserve may have left out->data NULL for an empty plaintext; give
     * libsodium a valid pointer anyway. */
    uint8_t dummy;
    uint8_t *dst = out->data ? out->data + out->len : &dummy;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(dst, &mlen, NULL, in + nlen, len - nlen, NULL, 0,
                                                   in, key) != 0) {
        return SWC_EAUTH;
    }
    out->len += (size_t)mlen;
    return 0;
}
