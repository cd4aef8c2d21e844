/* Secure channel (DESIGN §7): the cryptographic state machine of one
 * connection, independent of any transport. The connection layer (conn.c)
 * carries handshake messages in frames and then passes every frame through
 * swc_secchan_seal / swc_secchan_open.
 *
 * Handshake, client first:
 *   1. client -> server  HELLO   {version, client ephemeral X25519 key, nonce,
 *                                 the frame ciphers the client offers}
 *   2. server -> client  SERVER  {server ephemeral key, CA public key,
 *                                 server certificate, the cipher chosen,
 *                                 Ed25519 signature over the transcript}
 *   3. client -> server  FINISH  {client certificate or none (joining node),
 *                                 signature over the transcript}
 * Both sides check the peer certificate against the pinned CA key, its
 * expiry, cluster id and role, derive two directional keys from the X25519
 * shared secret and the transcript hash, and from then on every frame is
 * sealed under a counter nonce with AEGIS-128L when both ends offer it
 * (x86-64 with AES-NI), else AES-256-GCM when both CPUs have AES
 * instructions, else ChaCha20-Poly1305-IETF: a replayed, reordered or
 * tampered frame fails to open and the connection must be closed. The
 * cipher offer and choice are inside the signed transcript, so a man in the
 * middle cannot force a weaker choice without the handshake failing. */
#ifndef SWC_NET_SECCHAN_H
#define SWC_NET_SECCHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "net/cert.h"

/* Bytes a sealed frame adds to its plaintext. */
#define SWC_SECCHAN_OVERHEAD 16

/* Frame ciphers (bits of swc_secchan_config.ciphers). */
#define SWC_SECCHAN_CHACHA20POLY1305 0x01u
#define SWC_SECCHAN_AES256GCM        0x02u
#define SWC_SECCHAN_AEGIS128L        0x04u /* x86-64 with AES-NI only (net/aegis.h) */

struct swc_secchan;

struct swc_secchan_config {
    bool is_client;
    /* Our identity; NULL only for a client that is joining (no certificate
     * yet): it then authenticates the server only. */
    const struct swc_identity *self;
    /* The pinned CA public key the peer's certificate must chain to. */
    uint8_t ca_public_key[SWC_SIGN_PK_LEN];
    /* Server: accept a client without a certificate (the join path). */
    bool allow_anonymous_client;
    /* Required peer role: -1 any, else SWC_ROLE_WORKER / SWC_ROLE_MANAGER
     * (a manager certificate also satisfies a worker requirement). */
    int required_peer_role;
    /* Expected cluster id ("" = take whatever the CA signed). */
    char cluster_id[SWC_CERT_ID_MAX + 1];
    /* Wall clock for expiry checks, ns since the epoch (0 = now). */
    int64_t now_wall_ns;
    /* Joining client: the CA is known only by the digest from the join
     * token (swc_token_parse). ca_public_key is then ignored; the key the
     * server names is accepted only if its digest matches, and is pinned
     * (read it back with swc_secchan_ca_key to store it). */
    bool pin_ca_by_digest;
    uint8_t ca_digest[32];
    /* Frame ciphers we accept, SWC_SECCHAN_* bits; 0 = every cipher this
     * machine runs (AEGIS-128L and AES-256-GCM only with CPU support; the
     * environment SWC_AEAD=aegis offers AEGIS-128L alone, SWC_AEAD=noaegis
     * or =sodium, or aead_backend SWC_AEAD_SODIUM, leave it out). The server
     * picks AEGIS-128L, else AES-256-GCM, else ChaCha20-Poly1305, among the
     * ciphers both sides offer. */
    unsigned ciphers;
    /* Who seals and opens AES-256-GCM records of SWC_AEAD_BULK_MIN bytes and
     * more (enum swc_aead_backend, net/aead.h); 0 = OpenSSL when libcrypto
     * loads, else libsodium. The wire format is the same either way, so the
     * two ends need not agree. */
    int aead_backend;
};

/* Create a channel; *out is owned by the caller (swc_secchan_destroy).
 * 0, SWC_EINVAL or SWC_ENOMEM. */
int swc_secchan_create(const struct swc_secchan_config *cfg, struct swc_secchan **out);

/* Free a channel and wipe its keys; NULL is fine. */
void swc_secchan_destroy(struct swc_secchan *sc);

/* Drive the handshake. The client calls it first with in == NULL to get
 * HELLO. Each call consumes the peer's message (in, len) and appends the
 * message to send, if any, to out. *done becomes true once keys are
 * established (the last message to send may still be in out).
 * Returns 0, or SWC_EAUTH / SWC_EEXPIRED / SWC_EPROTO with a reason in
 * swc_secchan_errmsg: then the connection must be closed. */
int swc_secchan_handshake(struct swc_secchan *sc, const uint8_t *in, size_t len,
                          struct swc_buf *out, bool *done);

/* The peer's certificate once done; NULL for an anonymous (joining) client. */
const struct swc_cert *swc_secchan_peer(const struct swc_secchan *sc);

/* The pinned CA public key once done (learned from the server when
 * pin_ca_by_digest was set); NULL before. Points into sc. */
const uint8_t *swc_secchan_ca_key(const struct swc_secchan *sc);

/* Channel binding once done: 32 bytes unique to this connection (derived
 * from the whole transcript), for proofs such as swc_token_proof. 0 or
 * SWC_ESTATE before the handshake completes. */
int swc_secchan_binding(const struct swc_secchan *sc, uint8_t binding[32]);

/* Seal one frame payload: appends len + SWC_SECCHAN_OVERHEAD bytes to out. */
int swc_secchan_seal(struct swc_secchan *sc, const uint8_t *in, size_t len, struct swc_buf *out);

/* Open one sealed frame: appends the plaintext to out. SWC_EAUTH when it was
 * tampered, replayed or reordered (the next expected counter did not open).
 * Any handshake or frame failure is final: later calls return SWC_ESTATE. */
int swc_secchan_open(struct swc_secchan *sc, const uint8_t *in, size_t len, struct swc_buf *out);

/* Seal in place: buf holds len plaintext bytes and has room for
 * SWC_SECCHAN_OVERHEAD more; it then holds the sealed frame (len + overhead
 * bytes). Same errors as swc_secchan_seal. */
int swc_secchan_seal_inplace(struct swc_secchan *sc, uint8_t *buf, size_t len);

/* Open in place: buf holds one sealed frame of len bytes; on success its
 * first len - SWC_SECCHAN_OVERHEAD bytes are the plaintext. Same errors as
 * swc_secchan_open (buf's contents are unspecified after a failure). */
int swc_secchan_open_inplace(struct swc_secchan *sc, uint8_t *buf, size_t len);

/* Sealing one frame whose plaintext arrives in pieces encrypts each piece
 * straight from the caller's memory to where the sealed frame is built (a
 * record gathered from scattered buffers costs one pass, no copy first).
 * The result is byte for byte what swc_secchan_seal_inplace makes of the
 * concatenated pieces: ciphertext, then the SWC_SECCHAN_OVERHEAD-byte tag.
 * Between begin and end no other frame may be sealed (SWC_ESTATE). */

/* Start a frame under the next counter: 0; SWC_ENOTSUP when this channel
 * cannot (ChaCha20-Poly1305, or AES-256-GCM with the OpenSSL backend off or
 * missing: seal a contiguous copy instead; AEGIS-128L always can);
 * SWC_ENOMEM; SWC_ESTATE. */
int swc_secchan_seal_begin(struct swc_secchan *sc);

/* Encrypt the next piece in[0..len) to out (may equal in). 0, SWC_ESTATE
 * without a begin; any other failure is final, as for swc_secchan_seal. */
int swc_secchan_seal_update(struct swc_secchan *sc, uint8_t *out, const uint8_t *in, size_t len);

/* Finish the frame: its tag to mac (right after the ciphertext). 0,
 * SWC_ESTATE without a begin, or a final failure. */
int swc_secchan_seal_end(struct swc_secchan *sc, uint8_t mac[SWC_SECCHAN_OVERHEAD]);

/* The frame cipher in use once done (one SWC_SECCHAN_* bit), 0 before. */
unsigned swc_secchan_cipher(const struct swc_secchan *sc);

/* How many frames this channel sealed or tried to open through the OpenSSL
 * bulk backend (net/aead.h); the rest went through libsodium, or through
 * net/aegis.c when the cipher is AEGIS-128L. */
uint64_t swc_secchan_bulk_frames(const struct swc_secchan *sc);

/* Why the last call failed, in words for the log. */
const char *swc_secchan_errmsg(const struct swc_secchan *sc);

#endif
