/* Secure channel: handshake and frame protection (see secchan.h, and
 * docs/security.md for the threat model and the reason behind each check).
 *
 * Wire layout of the three handshake messages (integers big-endian):
 *
 *   HELLO   u8 version=1 | u8 type=1 | 32 client ephemeral X25519 key | 32 nonce
 *           | u8 ciphers offered (SWC_SECCHAN_* bits)
 *   SERVER  u8 version=1 | u8 type=2 | 32 server ephemeral key
 *           | 32 CA public key | u16 n | n certificate | u8 cipher chosen
 *           | 64 signature
 *   FINISH  u8 version=1 | u8 type=3 | u16 n | n certificate | 64 signature
 *           (n = 0 and no signature: an anonymous, joining client)
 *
 * The transcript is a BLAKE2b hash chain, th = H(th || bytes), started from a
 * domain label. It absorbs HELLO, then SERVER up to its signature; the
 * server signs "server label || th". The chain then absorbs that signature
 * and FINISH up to its signature, which the client signs under its own
 * label. Each signature therefore covers both ephemeral keys, the client's
 * nonce and the signer's own certificate, so it cannot be replayed into
 * another connection or claimed by another identity, and the two labels keep
 * a server signature from ever passing as a client one.
 *
 * SERVER names the CA public key the server's certificate chains to. A
 * client that already pins a CA key ignores it (the certificate check
 * decides); a joining client, which only has the CA digest from its join
 * token, accepts the named key if and only if its digest matches, and pins
 * it from then on.
 *
 * After FINISH both sides hash the X25519 shared secret (as the BLAKE2b key)
 * with the final transcript into 64 bytes: the first half seals
 * client->server frames, the second server->client. Frames use the cipher
 * the server chose: AEGIS-128L when both sides offered it (x86-64 with
 * AES-NI and AVX; net/aegis.h, about 4x faster than AES-256-GCM here), else
 * AES-256-GCM when both offered it (each side offers AES ciphers only when
 * its CPU has AES instructions: they are then fast and constant-time), else
 * ChaCha20-Poly1305-IETF. A peer from before AEGIS never sets its bit and so
 * gets AES-256-GCM as before. The GCM and ChaCha20 nonce is 96 bits = 4 zero
 * bytes || 64-bit frame counter; AEGIS-128L takes that nonce followed by 4
 * zero bytes, under a 16-byte key that is a keyed BLAKE2b (label
 * LABEL_AEGIS) of the direction's 32-byte key. The counter lives only in each
 * endpoint, so a frame opens only at its exact position in the stream. The
 * offer and the choice are absorbed into the transcript that both sides
 * sign, so stripping AES from the offer (or changing the choice) in flight
 * makes the signature check fail: no silent downgrade. AES-256-GCM frames
 * of SWC_AEAD_BULK_MIN bytes and more go through OpenSSL's faster code
 * (net/aead.h, opened on the first such frame; same key, nonce and tag
 * placement, so each end picks its backend alone). A sender may also seal
 * one frame piece by piece (seal_begin / update / end): the
 * same bytes as sealing the concatenation, built straight from scattered
 * buffers, OpenSSL's GCM or AEGIS-128L; while such a frame is open no other
 * may take a counter. Any
 * failure (handshake or frame) is final: the channel refuses everything
 * afterwards and the owner closes the connection. We keep a private copy of
 * the identity so the caller's struct need not outlive the channel; all key
 * material is wiped on destroy. */
#include "net/secchan.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/id.h"
#include "net/aead.h"
#include "net/aegis.h"

#define HS_VERSION    1
#define MSG_HELLO     1
#define MSG_SERVER    2
#define MSG_FINISH    3
#define HELLO_LEN     (2 + 32 + 32 + 1)
#define SERVER_CERT   (2 + 32 + 32 + 2) /* where SERVER's certificate starts */
#define SERVER_MIN    (SERVER_CERT + 1) /* with an empty certificate */
#define NONCE_LEN     crypto_aead_chacha20poly1305_ietf_NPUBBYTES
#define ALL_CIPHERS   (SWC_SECCHAN_CHACHA20POLY1305 | SWC_SECCHAN_AES256GCM | SWC_SECCHAN_AEGIS128L)
#define FINISH_MIN    (2 + 2)
#define TH_LEN        32
#define LABEL_START   "swarmc secchan v1"
#define LABEL_SERVER  "swarmc secchan v1 server signature"
#define LABEL_CLIENT  "swarmc secchan v1 client signature"
#define LABEL_KEYS    "swarmc secchan v1 keys"
#define LABEL_BINDING "swarmc secchan v1 binding"
#define LABEL_AEGIS   "swarmc secchan v1 aegis-128l key"

enum hs_state {
    ST_CLIENT_START,
    ST_CLIENT_WAIT_SERVER,
    ST_SERVER_WAIT_HELLO,
    ST_SERVER_WAIT_FINISH,
    ST_DONE,
    ST_FAILED,
};

struct swc_secchan {
    /* Expanded AES-GCM keys, first for their 16-byte alignment. */
    crypto_aead_aes256gcm_state tx_aes, rx_aes;
    struct swc_secchan_config cfg; /* cfg.self points at self below or is NULL */
    struct swc_identity self;
    bool have_cert; /* we present a certificate */
    enum hs_state state;
    uint8_t eph_pk[crypto_scalarmult_BYTES];
    uint8_t eph_sk[crypto_scalarmult_SCALARBYTES];
    uint8_t peer_eph_pk[crypto_scalarmult_BYTES];
    uint8_t th[TH_LEN];
    uint8_t tx_key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
    uint8_t rx_key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
    uint64_t tx_ctr, rx_ctr;
    /* AEGIS-128L: 16-byte keys derived from tx_key / rx_key, and the state of
     * a frame being sealed piece by piece. */
    uint8_t tx_aeg_key[SWC_AEGIS_KEY_LEN], rx_aeg_key[SWC_AEGIS_KEY_LEN];
    struct swc_aegis128l tx_aeg;
    /* OpenSSL contexts for bulk frames, made on the first one. */
    struct swc_aead_gcm *tx_bulk, *rx_bulk;
    bool no_bulk; /* libsodium only: configured so, or OpenSSL unavailable */
    bool tx_open; /* a frame is being sealed piece by piece (seal_begin) */
    size_t tx_open_len;
    uint64_t bulk_frames;
    unsigned offer;  /* ciphers we offer (client) or accept (server) */
    unsigned cipher; /* chosen one, once known */
    struct swc_cert peer;
    bool have_peer;
    struct swc_err err;
};

/* th = H(th || p[0..n)). */
static void th_absorb(uint8_t th[TH_LEN], const uint8_t *p, size_t n)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, TH_LEN);
    crypto_generichash_update(&st, th, TH_LEN);
    crypto_generichash_update(&st, p, n);
    crypto_generichash_final(&st, th, TH_LEN);
}

/* The bytes a side signs: its label then the transcript hash. */
static size_t sig_input(const char *label, const uint8_t th[TH_LEN], uint8_t *out)
{
    size_t l = strlen(label) + 1;
    memcpy(out, label, l);
    memcpy(out + l, th, TH_LEN);
    return l + TH_LEN;
}

/* Record a handshake or frame failure; the channel is dead from now on. */
static int fail(struct swc_secchan *sc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct swc_secchan *sc, int code, const char *fmt, ...)
{
    va_list ap;
    sc->state = ST_FAILED;
    sodium_memzero(sc->eph_sk, sizeof sc->eph_sk);
    sc->err.code = code;
    va_start(ap, fmt);
    vsnprintf(sc->err.msg, sizeof sc->err.msg, fmt, ap);
    va_end(ap);
    return code;
}

/* The ciphers offered when the configuration names none: all of them, but
 * SWC_AEAD=aegis in the environment offers AEGIS-128L alone (when the CPU
 * runs it), and SWC_AEAD=noaegis, SWC_AEAD=sodium or a libsodium-only
 * backend leave it out (libsodium 1.0.18 has no AEGIS). */
static unsigned default_offer(const struct swc_secchan_config *cfg)
{
    const char *force = getenv("SWC_AEAD");
    if (force != NULL && strcmp(force, "aegis") == 0 && swc_aegis128l_available()) {
        return SWC_SECCHAN_AEGIS128L;
    }
    if ((force != NULL && (strcmp(force, "noaegis") == 0 || strcmp(force, "sodium") == 0)) ||
        cfg->aead_backend == SWC_AEAD_SODIUM) {
        return ALL_CIPHERS & ~SWC_SECCHAN_AEGIS128L;
    }
    return ALL_CIPHERS;
}

int swc_secchan_create(const struct swc_secchan_config *cfg, struct swc_secchan **out)
{
    *out = NULL;
    if (swc_sodium_init() != 0) {
        return SWC_EINTERNAL;
    }
    bool have_cert = cfg->self != NULL && cfg->self->cert_len > 0;
    if (cfg->self != NULL && cfg->self->cert_len > SWC_CERT_MAX_LEN) {
        return SWC_EINVAL;
    }
    /* A server always proves who it is. */
    if (!cfg->is_client && !have_cert) {
        return SWC_EINVAL;
    }
    if (cfg->required_peer_role < -1 || cfg->required_peer_role > SWC_ROLE_MANAGER) {
        return SWC_EINVAL;
    }
    if (memchr(cfg->cluster_id, '\0', sizeof cfg->cluster_id) == NULL) {
        return SWC_EINVAL;
    }
    unsigned avail = SWC_SECCHAN_CHACHA20POLY1305;
    if (crypto_aead_aes256gcm_is_available()) {
        avail |= SWC_SECCHAN_AES256GCM;
    }
    if (swc_aegis128l_available()) {
        avail |= SWC_SECCHAN_AEGIS128L;
    }
    unsigned offer = (cfg->ciphers == 0 ? default_offer(cfg) : cfg->ciphers) & avail;
    if ((cfg->ciphers & ~ALL_CIPHERS) != 0 || offer == 0) {
        return SWC_EINVAL;
    }
    if (cfg->aead_backend < SWC_AEAD_AUTO || cfg->aead_backend > SWC_AEAD_OPENSSL) {
        return SWC_EINVAL;
    }
    struct swc_secchan *sc = swc_calloc(1, sizeof *sc);
    if (sc == NULL) {
        return SWC_ENOMEM;
    }
    sc->cfg = *cfg;
    sc->cfg.self = NULL;
    if (have_cert) {
        sc->self = *cfg->self;
        sc->cfg.self = &sc->self;
    }
    sc->have_cert = have_cert;
    sc->offer = offer;
    sc->no_bulk = cfg->aead_backend == SWC_AEAD_SODIUM;
    sc->state = cfg->is_client ? ST_CLIENT_START : ST_SERVER_WAIT_HELLO;
    crypto_generichash(sc->th, TH_LEN, (const uint8_t *)LABEL_START, sizeof LABEL_START, NULL, 0);
    *out = sc;
    return 0;
}

void swc_secchan_destroy(struct swc_secchan *sc)
{
    if (sc == NULL) {
        return;
    }
    swc_aead_gcm_destroy(sc->tx_bulk);
    swc_aead_gcm_destroy(sc->rx_bulk);
    sodium_memzero(sc, sizeof *sc);
    swc_free(sc);
}

const char *swc_secchan_errmsg(const struct swc_secchan *sc)
{
    return swc_err_msg(&sc->err);
}

unsigned swc_secchan_cipher(const struct swc_secchan *sc)
{
    return sc->state == ST_DONE ? sc->cipher : 0;
}

uint64_t swc_secchan_bulk_frames(const struct swc_secchan *sc)
{
    return sc->bulk_frames;
}

const struct swc_cert *swc_secchan_peer(const struct swc_secchan *sc)
{
    return sc->state == ST_DONE && sc->have_peer ? &sc->peer : NULL;
}

const uint8_t *swc_secchan_ca_key(const struct swc_secchan *sc)
{
    return sc->state == ST_DONE ? sc->cfg.ca_public_key : NULL;
}

int swc_secchan_binding(const struct swc_secchan *sc, uint8_t binding[32])
{
    if (sc->state != ST_DONE) {
        return SWC_ESTATE;
    }
    crypto_generichash(binding, 32, sc->th, TH_LEN, (const uint8_t *)LABEL_BINDING,
                       sizeof LABEL_BINDING - 1);
    return 0;
}

/* Our certificate (when we have one) and the signature over the transcript
 * after absorbing the message head, appended to out. */
static int append_cert(struct swc_secchan *sc, struct swc_buf *out)
{
    uint8_t n[2] = {(uint8_t)(sc->self.cert_len >> 8), (uint8_t)sc->self.cert_len};
    if (swc_buf_append(out, n, 2) != 0 || swc_buf_append(out, sc->self.cert, sc->self.cert_len)) {
        return SWC_ENOMEM;
    }
    return 0;
}

/* Check a peer's certificate and its signature over the transcript. */
static int check_peer(struct swc_secchan *sc, const uint8_t *cert, size_t cert_len,
                      const char *label, const uint8_t sig[SWC_SIG_LEN])
{
    uint8_t msg[128];
    struct swc_cert *c = &sc->peer;
    if (swc_cert_decode(cert, cert_len, c) != 0) {
        return fail(sc, SWC_EPROTO, "secure channel: %s: malformed peer certificate", label);
    }
    int64_t now = sc->cfg.now_wall_ns ? sc->cfg.now_wall_ns : swc_now_wall();
    int rc = swc_cert_verify(c, sc->cfg.ca_public_key, now);
    if (rc == SWC_EEXPIRED) {
        return fail(sc, rc, "secure channel: certificate of node %s has expired", c->node_id);
    }
    if (rc != 0) {
        return fail(sc, SWC_EAUTH,
                    "secure channel: certificate of node %s is not signed by the cluster CA",
                    c->node_id);
    }
    if (sc->cfg.cluster_id[0] != '\0' && strcmp(sc->cfg.cluster_id, c->cluster_id) != 0) {
        return fail(sc, SWC_EAUTH, "secure channel: peer belongs to another cluster (%s)",
                    c->cluster_id);
    }
    if (sc->cfg.required_peer_role == SWC_ROLE_MANAGER && c->role != SWC_ROLE_MANAGER) {
        return fail(sc, SWC_EAUTH, "secure channel: node %s is not a manager", c->node_id);
    }
    size_t n = sig_input(label, sc->th, msg);
    if (!swc_sign_verify(msg, n, c->public_key, sig)) {
        return fail(sc, SWC_EAUTH,
                    "secure channel: node %s did not sign the handshake with its certificate key",
                    c->node_id);
    }
    sc->have_peer = true;
    return 0;
}

/* Our signature over the current transcript, appended to out. */
static int append_sig(struct swc_secchan *sc, const char *label, struct swc_buf *out)
{
    uint8_t msg[128], sig[SWC_SIG_LEN];
    size_t n = sig_input(label, sc->th, msg);
    swc_sign(msg, n, sc->self.secret_key, sig);
    th_absorb(sc->th, sig, sizeof sig);
    return swc_buf_append(out, sig, sizeof sig);
}

static int derive_keys(struct swc_secchan *sc)
{
    uint8_t shared[crypto_scalarmult_BYTES], okm[64];
    int rc = crypto_scalarmult(shared, sc->eph_sk, sc->peer_eph_pk);
    sodium_memzero(sc->eph_sk, sizeof sc->eph_sk);
    if (rc != 0) {
        return fail(sc, SWC_EPROTO, "secure channel: %s", "peer ephemeral key is a weak point");
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, shared, sizeof shared, sizeof okm);
    crypto_generichash_update(&st, (const uint8_t *)LABEL_KEYS, sizeof LABEL_KEYS);
    crypto_generichash_update(&st, sc->th, TH_LEN);
    crypto_generichash_final(&st, okm, sizeof okm);
    const uint8_t *c2s = okm, *s2c = okm + 32;
    memcpy(sc->tx_key, sc->cfg.is_client ? c2s : s2c, 32);
    memcpy(sc->rx_key, sc->cfg.is_client ? s2c : c2s, 32);
    if (sc->cipher == SWC_SECCHAN_AES256GCM) {
        crypto_aead_aes256gcm_beforenm(&sc->tx_aes, sc->tx_key);
        crypto_aead_aes256gcm_beforenm(&sc->rx_aes, sc->rx_key);
    } else if (sc->cipher == SWC_SECCHAN_AEGIS128L) {
        /* AEGIS-128L takes 16-byte keys: a keyed BLAKE2b of a label under
         * each direction's 32-byte key, not a truncation of it. */
        crypto_generichash(sc->tx_aeg_key, sizeof sc->tx_aeg_key, (const uint8_t *)LABEL_AEGIS,
                           sizeof LABEL_AEGIS, sc->tx_key, sizeof sc->tx_key);
        crypto_generichash(sc->rx_aeg_key, sizeof sc->rx_aeg_key, (const uint8_t *)LABEL_AEGIS,
                           sizeof LABEL_AEGIS, sc->rx_key, sizeof sc->rx_key);
    }
    sodium_memzero(shared, sizeof shared);
    sodium_memzero(okm, sizeof okm);
    sc->state = ST_DONE;
    return 0;
}

static int check_head(struct swc_secchan *sc, const uint8_t *in, size_t len, size_t min, int type,
                      const char *what)
{
    if (in == NULL || len < min) {
        return fail(sc, SWC_EPROTO, "secure channel: %s message is truncated", what);
    }
    if (in[0] != HS_VERSION) {
        return fail(sc, SWC_EPROTO, "secure channel: %s: unsupported protocol version", what);
    }
    if (in[1] != type) {
        return fail(sc, SWC_EPROTO, "secure channel: expected a %s message", what);
    }
    return 0;
}

static int client_start(struct swc_secchan *sc, struct swc_buf *out)
{
    uint8_t m[HELLO_LEN];
    m[0] = HS_VERSION;
    m[1] = MSG_HELLO;
    crypto_box_keypair(sc->eph_pk, sc->eph_sk);
    memcpy(m + 2, sc->eph_pk, 32);
    randombytes_buf(m + 34, 32);
    m[66] = (uint8_t)sc->offer;
    th_absorb(sc->th, m, sizeof m);
    if (swc_buf_append(out, m, sizeof m) != 0) {
        return fail(sc, SWC_ENOMEM, "secure channel: %s", "out of memory");
    }
    sc->state = ST_CLIENT_WAIT_SERVER;
    return 0;
}

static int server_hello(struct swc_secchan *sc, const uint8_t *in, size_t len, struct swc_buf *out)
{
    int rc = check_head(sc, in, len, HELLO_LEN, MSG_HELLO, "HELLO");
    if (rc != 0) {
        return rc;
    }
    if (len != HELLO_LEN) {
        return fail(sc, SWC_EPROTO, "secure channel: %s message has trailing bytes", "HELLO");
    }
    /* Unknown bits are ignored, so a later version can offer more. */
    unsigned common = in[66] & sc->offer;
    if (common == 0) {
        return fail(sc, SWC_EPROTO, "secure channel: %s",
                    "no frame cipher in common with the client");
    }
    sc->cipher = (common & SWC_SECCHAN_AEGIS128L)   ? SWC_SECCHAN_AEGIS128L
                 : (common & SWC_SECCHAN_AES256GCM) ? SWC_SECCHAN_AES256GCM
                                                    : SWC_SECCHAN_CHACHA20POLY1305;
    memcpy(sc->peer_eph_pk, in + 2, 32);
    th_absorb(sc->th, in, len);

    crypto_box_keypair(sc->eph_pk, sc->eph_sk);
    size_t start = out->len;
    uint8_t head[2 + 32 + 32] = {HS_VERSION, MSG_SERVER};
    memcpy(head + 2, sc->eph_pk, 32);
    memcpy(head + 34, sc->cfg.ca_public_key, 32);
    uint8_t choice = (uint8_t)sc->cipher;
    if (swc_buf_append(out, head, sizeof head) != 0 || append_cert(sc, out) != 0 ||
        swc_buf_append(out, &choice, 1) != 0) {
        goto nomem;
    }
    th_absorb(sc->th, out->data + start, out->len - start);
    if (append_sig(sc, LABEL_SERVER, out) != 0) {
        goto nomem;
    }
    sc->state = ST_SERVER_WAIT_FINISH;
    return 0;
nomem:
    out->len = start;
    return fail(sc, SWC_ENOMEM, "secure channel: %s", "out of memory");
}

static int client_server(struct swc_secchan *sc, const uint8_t *in, size_t len, struct swc_buf *out,
                         bool *done)
{
    int rc = check_head(sc, in, len, SERVER_MIN, MSG_SERVER, "SERVER");
    if (rc != 0) {
        return rc;
    }
    size_t n = (size_t)in[66] << 8 | in[67];
    if (n == 0 || n > SWC_CERT_MAX_LEN || len != SERVER_MIN + n + SWC_SIG_LEN) {
        return fail(sc, SWC_EPROTO, "secure channel: %s message has a bad length", "SERVER");
    }
    unsigned choice = in[SERVER_CERT + n];
    if ((choice != SWC_SECCHAN_AES256GCM && choice != SWC_SECCHAN_CHACHA20POLY1305 &&
         choice != SWC_SECCHAN_AEGIS128L) ||
        (choice & sc->offer) == 0) {
        return fail(sc, SWC_EPROTO, "secure channel: %s",
                    "the server chose a frame cipher we did not offer");
    }
    sc->cipher = choice;
    memcpy(sc->peer_eph_pk, in + 2, 32);
    if (sc->cfg.pin_ca_by_digest) {
        /* A joining node knows the CA only by the digest in its token: the
         * key the server names must match it, and then becomes the pin. */
        uint8_t digest[32];
        swc_ca_digest(in + 34, digest);
        if (sodium_memcmp(digest, sc->cfg.ca_digest, sizeof digest) != 0) {
            return fail(sc, SWC_EAUTH, "secure channel: %s",
                        "the server's CA does not match the join token");
        }
        memcpy(sc->cfg.ca_public_key, in + 34, SWC_SIGN_PK_LEN);
    }
    th_absorb(sc->th, in, len - SWC_SIG_LEN);
    rc = check_peer(sc, in + SERVER_CERT, n, LABEL_SERVER, in + len - SWC_SIG_LEN);
    if (rc != 0) {
        return rc;
    }
    th_absorb(sc->th, in + len - SWC_SIG_LEN, SWC_SIG_LEN);

    size_t start = out->len;
    uint8_t head[2] = {HS_VERSION, MSG_FINISH};
    if (swc_buf_append(out, head, sizeof head) != 0) {
        goto nomem;
    }
    if (sc->have_cert) {
        if (append_cert(sc, out) != 0) {
            goto nomem;
        }
        th_absorb(sc->th, out->data + start, out->len - start);
        if (append_sig(sc, LABEL_CLIENT, out) != 0) {
            goto nomem;
        }
    } else {
        uint8_t zero[2] = {0, 0};
        if (swc_buf_append(out, zero, 2) != 0) {
            goto nomem;
        }
        th_absorb(sc->th, out->data + start, out->len - start);
    }
    rc = derive_keys(sc);
    if (rc != 0) {
        out->len = start;
        return rc;
    }
    *done = true;
    return 0;
nomem:
    out->len = start;
    return fail(sc, SWC_ENOMEM, "secure channel: %s", "out of memory");
}

static int server_finish(struct swc_secchan *sc, const uint8_t *in, size_t len, bool *done)
{
    int rc = check_head(sc, in, len, FINISH_MIN, MSG_FINISH, "FINISH");
    if (rc != 0) {
        return rc;
    }
    size_t n = (size_t)in[2] << 8 | in[3];
    if (n == 0) {
        if (len != FINISH_MIN) {
            return fail(sc, SWC_EPROTO, "secure channel: %s message has a bad length", "FINISH");
        }
        if (!sc->cfg.allow_anonymous_client) {
            return fail(sc, SWC_EAUTH, "secure channel: %s",
                        "client presented no certificate and this port requires one");
        }
        th_absorb(sc->th, in, len);
    } else {
        if (n > SWC_CERT_MAX_LEN || len != FINISH_MIN + n + SWC_SIG_LEN) {
            return fail(sc, SWC_EPROTO, "secure channel: %s message has a bad length", "FINISH");
        }
        th_absorb(sc->th, in, len - SWC_SIG_LEN);
        rc = check_peer(sc, in + FINISH_MIN, n, LABEL_CLIENT, in + len - SWC_SIG_LEN);
        if (rc != 0) {
            return rc;
        }
        th_absorb(sc->th, in + len - SWC_SIG_LEN, SWC_SIG_LEN);
    }
    rc = derive_keys(sc);
    if (rc != 0) {
        return rc;
    }
    *done = true;
    return 0;
}

int swc_secchan_handshake(struct swc_secchan *sc, const uint8_t *in, size_t len,
                          struct swc_buf *out, bool *done)
{
    *done = false;
    switch (sc->state) {
    case ST_CLIENT_START:
        if (in != NULL) {
            return fail(sc, SWC_ESTATE, "secure channel: %s",
                        "the client speaks first (call with no input)");
        }
        return client_start(sc, out);
    case ST_CLIENT_WAIT_SERVER:
        return client_server(sc, in, len, out, done);
    case ST_SERVER_WAIT_HELLO:
        return server_hello(sc, in, len, out);
    case ST_SERVER_WAIT_FINISH:
        return server_finish(sc, in, len, done);
    case ST_DONE:
        *done = true;
        return swc_err_set(&sc->err, SWC_ESTATE, "secure channel: handshake already complete");
    case ST_FAILED:
        break;
    }
    return SWC_ESTATE;
}

static void frame_nonce(uint64_t ctr, uint8_t nonce[NONCE_LEN])
{
    memset(nonce, 0, 4);
    swc_put_u64(nonce + 4, ctr);
}

/* AEGIS-128L's 128-bit nonce: the 96-bit frame nonce, then 4 zero bytes. */
static void aegis_nonce(uint64_t ctr, uint8_t nonce[SWC_AEGIS_NONCE_LEN])
{
    frame_nonce(ctr, nonce);
    memset(nonce + NONCE_LEN, 0, SWC_AEGIS_NONCE_LEN - NONCE_LEN);
}

/* Checks shared by every seal: established, counter left, size. */
static int seal_check(struct swc_secchan *sc, size_t len)
{
    if (sc->state != ST_DONE) {
        return swc_err_set(&sc->err, SWC_ESTATE, "secure channel: not established");
    }
    if (sc->tx_open) {
        return swc_err_set(&sc->err, SWC_ESTATE, "secure channel: a frame is being sealed");
    }
    if (sc->tx_ctr == UINT64_MAX) {
        return fail(sc, SWC_ESTATE, "secure channel: %s", "frame counter exhausted");
    }
    /* AES-GCM's limit (64 GiB) is the lower one; frames are far smaller. */
    if (len > SIZE_MAX - SWC_SECCHAN_OVERHEAD || len > crypto_aead_aes256gcm_MESSAGEBYTES_MAX) {
        return SWC_ETOOBIG;
    }
    return 0;
}

/* The OpenSSL context for a frame of len bytes in one direction, made on
 * first use; NULL means libsodium (small frame, ChaCha20, configured so, or
 * libcrypto missing: then we stop asking). */
static struct swc_aead_gcm *bulk_ctx(struct swc_secchan *sc, size_t len, bool tx)
{
    if (len < SWC_AEAD_BULK_MIN || sc->no_bulk || sc->cipher != SWC_SECCHAN_AES256GCM) {
        return NULL;
    }
    struct swc_aead_gcm **g = tx ? &sc->tx_bulk : &sc->rx_bulk;
    if (*g == NULL) {
        int rc = swc_aead_gcm_create(tx ? sc->tx_key : sc->rx_key, tx, g);
        if (rc == SWC_ENOTSUP) {
            sc->no_bulk = true;
        }
    }
    return *g; /* after SWC_ENOMEM: NULL this time, retried next frame */
}

/* Encrypt in[0..len) to c (may equal in) and write the tag at mac. */
static int seal_to(struct swc_secchan *sc, uint8_t *c, uint8_t *mac, const uint8_t *in, size_t len)
{
    uint8_t nonce[SWC_AEGIS_NONCE_LEN];
    if (sc->cipher == SWC_SECCHAN_AEGIS128L) {
        aegis_nonce(sc->tx_ctr, nonce);
        swc_aegis128l_seal(sc->tx_aeg_key, nonce, c, mac, in, len, NULL, 0);
        sc->tx_ctr++;
        return 0;
    }
    frame_nonce(sc->tx_ctr, nonce);
    struct swc_aead_gcm *bulk = bulk_ctx(sc, len, true);
    if (bulk != NULL) {
        sc->bulk_frames++;
        if (swc_aead_gcm_seal(bulk, nonce, c, mac, in, len) != 0) {
            /* c may hold part of a frame: the channel cannot go on */
            return fail(sc, SWC_EINTERNAL, "secure channel: %s", "OpenSSL failed to seal a frame");
        }
    } else if (sc->cipher == SWC_SECCHAN_AES256GCM) {
        crypto_aead_aes256gcm_encrypt_detached_afternm(c, mac, NULL, in, len, NULL, 0, NULL, nonce,
                                                       &sc->tx_aes);
    } else {
        crypto_aead_chacha20poly1305_ietf_encrypt_detached(c, mac, NULL, in, len, NULL, 0, NULL,
                                                           nonce, sc->tx_key);
    }
    sc->tx_ctr++;
    return 0;
}

int swc_secchan_seal(struct swc_secchan *sc, const uint8_t *in, size_t len, struct swc_buf *out)
{
    int rc = seal_check(sc, len);
    if (rc != 0) {
        return rc;
    }
    if (swc_buf_reserve(out, len + SWC_SECCHAN_OVERHEAD) != 0) {
        return SWC_ENOMEM;
    }
    uint8_t *c = out->data + out->len;
    rc = seal_to(sc, c, c + len, in, len);
    if (rc == 0) {
        out->len += len + SWC_SECCHAN_OVERHEAD;
    }
    return rc;
}

int swc_secchan_seal_inplace(struct swc_secchan *sc, uint8_t *buf, size_t len)
{
    int rc = seal_check(sc, len);
    if (rc != 0) {
        return rc;
    }
    return seal_to(sc, buf, buf + len, buf, len);
}

int swc_secchan_seal_begin(struct swc_secchan *sc)
{
    int rc = seal_check(sc, 0);
    if (rc != 0) {
        return rc;
    }
    if (sc->cipher == SWC_SECCHAN_AEGIS128L) {
        uint8_t anonce[SWC_AEGIS_NONCE_LEN];
        aegis_nonce(sc->tx_ctr, anonce);
        swc_aegis128l_seal_begin(&sc->tx_aeg, sc->tx_aeg_key, anonce, NULL, 0);
        sc->tx_open = true;
        sc->tx_open_len = 0;
        return 0;
    }
    /* Only OpenSSL's GCM takes its input in pieces; ask for a bulk-sized
     * context whatever the final length (the wire format is the same). */
    struct swc_aead_gcm *g = bulk_ctx(sc, SWC_AEAD_BULK_MIN, true);
    if (g == NULL) {
        return sc->cipher == SWC_SECCHAN_AES256GCM && !sc->no_bulk ? SWC_ENOMEM : SWC_ENOTSUP;
    }
    uint8_t nonce[NONCE_LEN];
    frame_nonce(sc->tx_ctr, nonce);
    if (swc_aead_gcm_seal_begin(g, nonce) != 0) {
        return fail(sc, SWC_EINTERNAL, "secure channel: %s", "OpenSSL failed to start a frame");
    }
    sc->bulk_frames++;
    sc->tx_open = true;
    sc->tx_open_len = 0;
    return 0;
}

int swc_secchan_seal_update(struct swc_secchan *sc, uint8_t *out, const uint8_t *in, size_t len)
{
    if (sc->state != ST_DONE || !sc->tx_open) {
        return swc_err_set(&sc->err, SWC_ESTATE, "secure channel: no frame is being sealed");
    }
    if (len > crypto_aead_aes256gcm_MESSAGEBYTES_MAX - sc->tx_open_len) {
        return fail(sc, SWC_ETOOBIG, "secure channel: %s", "frame too big to seal");
    }
    if (sc->cipher == SWC_SECCHAN_AEGIS128L) {
        swc_aegis128l_seal_update(&sc->tx_aeg, out, in, len);
    } else if (swc_aead_gcm_seal_update(sc->tx_bulk, out, in, len) != 0) {
        return fail(sc, SWC_EINTERNAL, "secure channel: %s", "OpenSSL failed to seal a frame");
    }
    sc->tx_open_len += len;
    return 0;
}

int swc_secchan_seal_end(struct swc_secchan *sc, uint8_t mac[SWC_SECCHAN_OVERHEAD])
{
    if (sc->state != ST_DONE || !sc->tx_open) {
        return swc_err_set(&sc->err, SWC_ESTATE, "secure channel: no frame is being sealed");
    }
    sc->tx_open = false;
    if (sc->cipher == SWC_SECCHAN_AEGIS128L) {
        swc_aegis128l_seal_final(&sc->tx_aeg, mac);
    } else if (swc_aead_gcm_seal_final(sc->tx_bulk, mac) != 0) {
        return fail(sc, SWC_EINTERNAL, "secure channel: %s", "OpenSSL failed to seal a frame");
    }
    sc->tx_ctr++;
    return 0;
}

/* Decrypt the sealed frame in[0..len) to m (may equal in). */
static int open_to(struct swc_secchan *sc, uint8_t *m, const uint8_t *in, size_t len)
{
    uint8_t nonce[SWC_AEGIS_NONCE_LEN];
    if (sc->state != ST_DONE) {
        return swc_err_set(&sc->err, SWC_ESTATE, "secure channel: not established");
    }
    if (len < SWC_SECCHAN_OVERHEAD) {
        return fail(sc, SWC_EAUTH, "secure channel: %s", "frame too short to be sealed");
    }
    if (sc->rx_ctr == UINT64_MAX) {
        return fail(sc, SWC_ESTATE, "secure channel: %s", "frame counter exhausted");
    }
    size_t mlen = len - SWC_SECCHAN_OVERHEAD;
    const uint8_t *mac = in + mlen;
    frame_nonce(sc->rx_ctr, nonce);
    int rc;
    struct swc_aead_gcm *bulk = bulk_ctx(sc, mlen, false);
    if (sc->cipher == SWC_SECCHAN_AEGIS128L) {
        aegis_nonce(sc->rx_ctr, nonce);
        rc = swc_aegis128l_open(sc->rx_aeg_key, nonce, m, in, mlen, mac, NULL, 0);
    } else if (bulk != NULL) {
        sc->bulk_frames++;
        rc = swc_aead_gcm_open(bulk, nonce, m, in, mlen, mac);
        if (rc == SWC_EINTERNAL) {
            return fail(sc, SWC_EINTERNAL, "secure channel: %s", "OpenSSL failed to open a frame");
        }
    } else if (sc->cipher == SWC_SECCHAN_AES256GCM) {
        rc = crypto_aead_aes256gcm_decrypt_detached_afternm(m, NULL, in, mlen, mac, NULL, 0, nonce,
                                                            &sc->rx_aes);
    } else {
        rc = crypto_aead_chacha20poly1305_ietf_decrypt_detached(m, NULL, in, mlen, mac, NULL, 0,
                                                                nonce, sc->rx_key);
    }
    if (rc != 0) {
        return fail(sc, SWC_EAUTH,
                    "secure channel: frame %" PRIu64
                    " failed authentication (tampered, replayed or out of order)",
                    sc->rx_ctr);
    }
    sc->rx_ctr++;
    return 0;
}

int swc_secchan_open(struct swc_secchan *sc, const uint8_t *in, size_t len, struct swc_buf *out)
{
    uint8_t dummy;
    if (sc->state == ST_DONE && len >= SWC_SECCHAN_OVERHEAD &&
        swc_buf_reserve(out, len - SWC_SECCHAN_OVERHEAD) != 0) {
        return SWC_ENOMEM;
    }
    uint8_t *dst = out->data ? out->data + out->len : &dummy;
    int rc = open_to(sc, dst, in, len);
    if (rc == 0) {
        out->len += len - SWC_SECCHAN_OVERHEAD;
    }
    return rc;
}

int swc_secchan_open_inplace(struct swc_secchan *sc, uint8_t *buf, size_t len)
{
    return open_to(sc, buf, buf, len);
}
