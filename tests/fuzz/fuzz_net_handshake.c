/* libFuzzer driver for the secure channel handshake and the certificate
 * decoder: the input is fed, in turn, as
 *   - a certificate to swc_cert_decode (+ verify),
 *   - HELLO to a fresh server,
 *   - SERVER to a client that has sent HELLO,
 *   - FINISH to a server that has sent SERVER (mutual and anonymous mode),
 *   - a sealed frame to both ends of an established channel, once with
 *     each frame cipher (AEGIS-128L and AES-256-GCM when the CPU has them,
 *     ChaCha20-Poly1305; an AES one the CPU lacks falls back to the default).
 *
 * libsodium's random source is replaced by a seeded generator reset before
 * every run, so every handshake replays the same ephemeral keys and nonces.
 * That makes the committed corpus (tests/fuzz/corpus/net_handshake/) valid
 * messages that go all the way through, and the fuzzer mutates from there.
 * To regenerate the seeds: SWC_FUZZ_WRITE_SEEDS=<dir> ./fuzz_net_handshake -runs=0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/cert.h"
#include "net/secchan.h"

#define NOW (1700000000LL * SWC_NS_PER_SEC)

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *rng_name(void)
{
    return "swarmc-fuzz";
}

static uint32_t rng_random(void)
{
    return (uint32_t)rng_next();
}

static void rng_buf(void *const p, const size_t n)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)rng_next();
    }
}

static struct randombytes_implementation rng_impl = {
    .implementation_name = rng_name,
    .random = rng_random,
    .buf = rng_buf,
};

static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];
static struct swc_identity server_id, client_id;
static struct swc_secchan_config scfg, ccfg, acfg, anon_scfg, chacha_ccfg, gcm_ccfg;

static void make_identity(struct swc_identity *id, uint8_t seed_byte, const char *node, int role)
{
    uint8_t seed[32];
    struct swc_cert c;
    struct swc_buf b;
    memset(seed, seed_byte, sizeof seed);
    memset(&c, 0, sizeof c);
    swc_keypair_from_seed(seed, id->public_key, id->secret_key);
    strcpy(c.node_id, node);
    strcpy(c.cluster_id, "fuzz");
    c.role = role;
    memcpy(c.public_key, id->public_key, SWC_SIGN_PK_LEN);
    c.not_after = NOW + 1000 * SWC_NS_PER_SEC;
    swc_cert_sign(&c, ca_sk);
    swc_buf_init(&b);
    if (swc_cert_encode(&c, &b) != 0) {
        abort();
    }
    memcpy(id->cert, b.data, b.len);
    id->cert_len = b.len;
    swc_buf_free(&b);
}

static void write_seed(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n) {
        abort();
    }
    fclose(f);
}

/* Handshake messages of the reference run, and channels stopped at stage:
 * 0 nothing, 1 client sent HELLO, 2 server sent SERVER, 3 both done. */
struct run {
    struct swc_secchan *c, *s;
    struct swc_buf m1, m2, m3;
};

static void run_to(struct run *r, const struct swc_secchan_config *client,
                   const struct swc_secchan_config *server, int stage)
{
    bool done;
    rng_state = 42;
    memset(r, 0, sizeof *r);
    if (swc_secchan_create(client, &r->c) != 0 || swc_secchan_create(server, &r->s) != 0) {
        abort();
    }
    if (stage >= 1 && swc_secchan_handshake(r->c, NULL, 0, &r->m1, &done) != 0) {
        abort();
    }
    if (stage >= 2 && swc_secchan_handshake(r->s, r->m1.data, r->m1.len, &r->m2, &done) != 0) {
        abort();
    }
    if (stage >= 3 &&
        (swc_secchan_handshake(r->c, r->m2.data, r->m2.len, &r->m3, &done) != 0 ||
         swc_secchan_handshake(r->s, r->m3.data, r->m3.len, &r->m1, &done) != 0 || !done)) {
        abort();
    }
}

static void run_free(struct run *r)
{
    swc_secchan_destroy(r->c);
    swc_secchan_destroy(r->s);
    swc_buf_free(&r->m1);
    swc_buf_free(&r->m2);
    swc_buf_free(&r->m3);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    randombytes_set_implementation(&rng_impl);
    if (sodium_init() < 0) {
        abort();
    }
    uint8_t seed[32];
    memset(seed, 0xca, sizeof seed);
    swc_keypair_from_seed(seed, ca_pk, ca_sk);
    make_identity(&server_id, 1, "manager-1", SWC_ROLE_MANAGER);
    make_identity(&client_id, 2, "worker-1", SWC_ROLE_WORKER);
    memset(&scfg, 0, sizeof scfg);
    scfg.self = &server_id;
    memcpy(scfg.ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    scfg.required_peer_role = SWC_ROLE_WORKER;
    strcpy(scfg.cluster_id, "fuzz");
    scfg.now_wall_ns = NOW;
    ccfg = scfg;
    ccfg.is_client = true;
    ccfg.self = &client_id;
    ccfg.required_peer_role = SWC_ROLE_MANAGER;
    acfg = ccfg; /* a joining node: no certificate, CA pinned by digest */
    acfg.self = NULL;
    acfg.pin_ca_by_digest = true;
    swc_ca_digest(ca_pk, acfg.ca_digest);
    anon_scfg = scfg;
    anon_scfg.allow_anonymous_client = true;
    chacha_ccfg = ccfg;
    chacha_ccfg.ciphers = SWC_SECCHAN_CHACHA20POLY1305;
    gcm_ccfg = ccfg;
    struct swc_secchan *probe;
    gcm_ccfg.ciphers = SWC_SECCHAN_AES256GCM;
    if (swc_secchan_create(&gcm_ccfg, &probe) == 0) {
        swc_secchan_destroy(probe);
    } else {
        gcm_ccfg.ciphers = 0;
    }

    const char *dir = getenv("SWC_FUZZ_WRITE_SEEDS");
    if (dir != NULL) {
        struct run r;
        struct swc_buf f;
        run_to(&r, &ccfg, &scfg, 2);
        write_seed(dir, "hello", r.m1.data, r.m1.len);
        write_seed(dir, "server", r.m2.data, r.m2.len);
        run_free(&r);
        run_to(&r, &ccfg, &scfg, 3);
        write_seed(dir, "finish", r.m3.data, r.m3.len);
        swc_buf_init(&f);
        swc_secchan_seal(r.c, (const uint8_t *)"ping", 4, &f);
        write_seed(dir, "frame", f.data, f.len);
        run_free(&r);
        run_to(&r, &chacha_ccfg, &scfg, 3);
        f.len = 0;
        swc_secchan_seal(r.c, (const uint8_t *)"ping", 4, &f);
        write_seed(dir, "frame-chacha", f.data, f.len);
        write_seed(dir, "hello-chacha", r.m1.data, r.m1.len);
        swc_buf_free(&f);
        run_free(&r);
        run_to(&r, &acfg, &anon_scfg, 3);
        write_seed(dir, "finish-anonymous", r.m3.data, r.m3.len);
        run_free(&r);
        write_seed(dir, "cert", server_id.cert, server_id.cert_len);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct swc_buf out;
    struct swc_cert cert;
    struct run r;
    bool done;
    swc_buf_init(&out);

    if (swc_cert_decode(data, size, &cert) == 0) {
        (void)swc_cert_verify(&cert, ca_pk, NOW);
    }

    /* HELLO to a fresh server. */
    run_to(&r, &ccfg, &scfg, 0);
    if (swc_secchan_handshake(r.s, data, size, &out, &done) == 0) {
        out.len = 0;
        (void)swc_secchan_handshake(r.s, data, size, &out, &done);
    }
    run_free(&r);

    /* SERVER to a client waiting for it (mutual and anonymous client). */
    for (int anon = 0; anon < 2; anon++) {
        run_to(&r, anon ? &acfg : &ccfg, anon ? &anon_scfg : &scfg, 1);
        out.len = 0;
        if (swc_secchan_handshake(r.c, data, size, &out, &done) == 0 && done) {
            out.len = 0;
            (void)swc_secchan_seal(r.c, data, size, &out);
        }
        run_free(&r);
    }

    /* FINISH to a server waiting for it. */
    for (int anon = 0; anon < 2; anon++) {
        run_to(&r, anon ? &acfg : &ccfg, anon ? &anon_scfg : &scfg, 2);
        out.len = 0;
        if (swc_secchan_handshake(r.s, data, size, &out, &done) == 0 && done) {
            (void)swc_secchan_peer(r.s);
        }
        run_free(&r);
    }

    /* A frame to both ends of an established channel, with each cipher. */
    const struct swc_secchan_config *frame_cfgs[] = {&ccfg, &gcm_ccfg, &chacha_ccfg};
    for (int k = 0; k < 3; k++) {
        run_to(&r, frame_cfgs[k], &scfg, 3);
        out.len = 0;
        (void)swc_secchan_open(r.s, data, size, &out);
        out.len = 0;
        (void)swc_secchan_open(r.c, data, size, &out);
        run_free(&r);
    }

    swc_buf_free(&out);
    return 0;
}
