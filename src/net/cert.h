/* Identities, certificates, the cluster CA and join tokens (DESIGN §7).
 *
 * A certificate binds {node id, role, cluster id, Ed25519 public key,
 * not-after} and carries the CA's Ed25519 signature over those fields. The
 * encoding is our own fixed binary layout (versioned), not X.509.
 * Join token: "SWMTKN-1-<digest of CA public key>-<secret>"; the joining node
 * pins the CA by the digest before trusting anything. */
#ifndef SWC_NET_CERT_H
#define SWC_NET_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define SWC_SIGN_PK_LEN  32 /* Ed25519 public key */
#define SWC_SIGN_SK_LEN  64 /* Ed25519 secret key (libsodium layout) */
#define SWC_SIG_LEN      64
#define SWC_CERT_ID_MAX  64
#define SWC_CERT_MAX_LEN 512
#define SWC_DATA_KEY_LEN 32

enum { SWC_ROLE_WORKER = 0, SWC_ROLE_MANAGER = 1 };

struct swc_cert {
    char node_id[SWC_CERT_ID_MAX + 1];
    int role;
    char cluster_id[SWC_CERT_ID_MAX + 1];
    uint8_t public_key[SWC_SIGN_PK_LEN];
    int64_t not_after; /* ns since the epoch */
    uint8_t signature[SWC_SIG_LEN];
};

/* A node's identity: its key pair and its encoded certificate. */
struct swc_identity {
    uint8_t public_key[SWC_SIGN_PK_LEN];
    uint8_t secret_key[SWC_SIGN_SK_LEN];
    uint8_t cert[SWC_CERT_MAX_LEN];
    size_t cert_len; /* 0 = no certificate yet */
};

/* Make a fresh Ed25519 key pair (identity or CA). */
void swc_keypair_new(uint8_t pk[SWC_SIGN_PK_LEN], uint8_t sk[SWC_SIGN_SK_LEN]);
/* Derive an Ed25519 key pair from a 32-byte seed (tests, fuzzers, recovery). */
void swc_keypair_from_seed(const uint8_t seed[32], uint8_t pk[SWC_SIGN_PK_LEN],
                           uint8_t sk[SWC_SIGN_SK_LEN]);

/* Fill cert's signature with the CA secret key over its fields. */
int swc_cert_sign(struct swc_cert *cert, const uint8_t ca_sk[SWC_SIGN_SK_LEN]);

/* Encode cert into out (appends); 0 or SWC_ENOMEM. */
int swc_cert_encode(const struct swc_cert *cert, struct swc_buf *out);

/* Decode len bytes into cert; SWC_EPROTO on any malformed input. */
int swc_cert_decode(const uint8_t *p, size_t len, struct swc_cert *cert);

/* Check the CA signature and expiry at now_wall_ns: 0, SWC_EAUTH (bad
 * signature or other CA) or SWC_EEXPIRED. */
int swc_cert_verify(const struct swc_cert *cert, const uint8_t ca_pk[SWC_SIGN_PK_LEN],
                    int64_t now_wall_ns);

/* Sign / verify arbitrary bytes with an identity key. */
void swc_sign(const uint8_t *msg, size_t len, const uint8_t sk[SWC_SIGN_SK_LEN],
              uint8_t sig[SWC_SIG_LEN]);
bool swc_sign_verify(const uint8_t *msg, size_t len, const uint8_t pk[SWC_SIGN_PK_LEN],
                     const uint8_t sig[SWC_SIG_LEN]);

/* Join tokens. */
#define SWC_TOKEN_MAX 128
/* Make a token for the CA key with a fresh random secret; the secret's hash
 * (to store in the Cluster object) goes to hash_out (32 bytes). */
int swc_token_new(const uint8_t ca_pk[SWC_SIGN_PK_LEN], char out[SWC_TOKEN_MAX],
                  uint8_t hash_out[32]);
/* Parse a token: the CA digest (32 bytes) and the secret's hash (32 bytes).
 * SWC_EINVAL with a clear reason when malformed. */
int swc_token_parse(const char *token, uint8_t ca_digest[32], uint8_t secret_hash[32]);
/* Same as swc_token_parse, with the reason written to err (may be NULL). */
struct swc_err;
int swc_token_parse_err(const char *token, uint8_t ca_digest[32], uint8_t secret_hash[32],
                        struct swc_err *err);
/* Proof that a joining node knows the token secret, bound to one secure
 * channel: a MAC keyed from the secret's hash over the channel binding
 * (swc_secchan_binding). The node sends proof; the manager recomputes it
 * from the stored hash and compares in constant time. */
void swc_token_proof(const uint8_t secret_hash[32], const uint8_t binding[32], uint8_t proof[32]);
bool swc_token_proof_verify(const uint8_t secret_hash[32], const uint8_t binding[32],
                            const uint8_t proof[32]);
/* Digest of a CA public key, as the token carries it. */
void swc_ca_digest(const uint8_t ca_pk[SWC_SIGN_PK_LEN], uint8_t digest[32]);

/* Data-key encryption for raft entries, snapshots and secrets at rest
 * (XChaCha20-Poly1305 with a random nonce). */
#define SWC_DATA_SEAL_OVERHEAD 40
int swc_data_seal(const uint8_t key[SWC_DATA_KEY_LEN], const uint8_t *in, size_t len,
                  struct swc_buf *out);
int swc_data_open(const uint8_t key[SWC_DATA_KEY_LEN], const uint8_t *in, size_t len,
                  struct swc_buf *out);
/* Seal in place what swc_data_seal would produce: b->data[off..b->len) is
 * the plaintext and the SWC_DATA_SEAL_NONCE bytes before off are room for the
 * nonce; on return b->data[off - SWC_DATA_SEAL_NONCE..b->len) is the sealed
 * form (b grows by the tag). Saves a second copy of a large buffer. */
#define SWC_DATA_SEAL_NONCE 24
int swc_data_seal_inplace(const uint8_t key[SWC_DATA_KEY_LEN], struct swc_buf *b, size_t off);
/* A fresh random data key. */
void swc_data_key_new(uint8_t key[SWC_DATA_KEY_LEN]);

#endif
