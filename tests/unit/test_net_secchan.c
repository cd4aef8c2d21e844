/* Secure channel tests: a client and a server secchan in memory, handing
 * each other's handshake messages across by hand. Besides the happy paths
 * (mutual authentication, anonymous joining client, frames both ways) every
 * refusal the channel promises has a test here that breaks exactly one
 * thing and expects exactly that error: if the check were removed, the
 * handshake or frame would go through and the test would fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/aegis.h"
#include "net/cert.h"
#include "net/secchan.h"
#include "test_net_util.h"

#define NOW     (1700000000LL * SWC_NS_PER_SEC)
#define DAY     (86400LL * SWC_NS_PER_SEC)
#define CLUSTER "c0ffee"

static uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];
static uint8_t other_pk[SWC_SIGN_PK_LEN], other_sk[SWC_SIGN_SK_LEN];

/* Make an identity whose certificate is signed by signer_sk. */
static void make_identity(struct swc_identity *id, const char *node, int role, const char *cluster,
                          int64_t not_after, const uint8_t *signer_sk)
{
    swc_test_identity(id, node, role, cluster, not_after, signer_sk);
}

struct pair {
    struct swc_identity server_id, client_id;
    struct swc_secchan_config scfg, ccfg;
    struct swc_secchan *s, *c;
};

/* A manager server and a worker client of the same cluster and CA. */
static void pair_defaults(struct pair *p)
{
    memset(p, 0, sizeof *p);
    make_identity(&p->server_id, "mgr1", SWC_ROLE_MANAGER, CLUSTER, NOW + 90 * DAY, ca_sk);
    make_identity(&p->client_id, "wrk1", SWC_ROLE_WORKER, CLUSTER, NOW + 90 * DAY, ca_sk);
    p->scfg.is_client = false;
    p->scfg.self = &p->server_id;
    memcpy(p->scfg.ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    p->scfg.required_peer_role = SWC_ROLE_WORKER;
    strcpy(p->scfg.cluster_id, CLUSTER);
    p->scfg.now_wall_ns = NOW;
    p->ccfg = p->scfg;
    p->ccfg.is_client = true;
    p->ccfg.self = &p->client_id;
    p->ccfg.required_peer_role = SWC_ROLE_MANAGER;
}

static void pair_create(struct pair *p)
{
    assert_int_equal(swc_secchan_create(&p->scfg, &p->s), 0);
    assert_int_equal(swc_secchan_create(&p->ccfg, &p->c), 0);
}

static void pair_destroy(struct pair *p)
{
    swc_secchan_destroy(p->s);
    swc_secchan_destroy(p->c);
    p->s = p->c = NULL;
}

/* How to damage one handshake message on its way across. */
struct damage {
    int msg;                /* 1 HELLO, 2 SERVER, 3 FINISH; 0 none */
    long flip;              /* byte index to xor with 0x01, or -1 (negative: from the end) */
    long truncate;          /* keep this many bytes, or -1 */
    bool extend;            /* append one byte */
    const uint8_t *replace; /* send these bytes instead */
    size_t replace_len;
};

static const struct damage no_damage = {0, -1, -1, false, NULL, 0};

static void apply(const struct damage *d, int msg, struct swc_buf *b)
{
    if (d->msg != msg) {
        return;
    }
    if (d->replace != NULL) {
        b->len = 0;
        assert_int_equal(swc_buf_append(b, d->replace, d->replace_len), 0);
    }
    if (d->flip >= 0) {
        assert_true((size_t)d->flip < b->len);
        b->data[d->flip] ^= 0x01;
    }
    if (d->truncate >= 0) {
        assert_true((size_t)d->truncate < b->len);
        b->len = (size_t)d->truncate;
    }
    if (d->extend) {
        uint8_t z = 0;
        assert_int_equal(swc_buf_append(b, &z, 1), 0);
    }
}

/* Result of one handshake run: the first error and which side raised it. */
struct outcome {
    int rc;
    char side; /* 'c', 's' or 0 when both finished */
    size_t len[4];
};

static struct outcome run(struct pair *p, const struct damage *d)
{
    struct outcome o = {0, 0, {0}};
    struct swc_buf m1, m2, m3, none;
    bool cdone = false, sdone = false;
    swc_buf_init(&m1);
    swc_buf_init(&m2);
    swc_buf_init(&m3);
    swc_buf_init(&none);
    if ((o.rc = swc_secchan_handshake(p->c, NULL, 0, &m1, &cdone)) != 0) {
        o.side = 'c';
        goto out;
    }
    o.len[1] = m1.len;
    apply(d, 1, &m1);
    if ((o.rc = swc_secchan_handshake(p->s, m1.data, m1.len, &m2, &sdone)) != 0) {
        o.side = 's';
        goto out;
    }
    assert_false(sdone);
    o.len[2] = m2.len;
    apply(d, 2, &m2);
    if ((o.rc = swc_secchan_handshake(p->c, m2.data, m2.len, &m3, &cdone)) != 0) {
        o.side = 'c';
        goto out;
    }
    assert_true(cdone);
    o.len[3] = m3.len;
    apply(d, 3, &m3);
    if ((o.rc = swc_secchan_handshake(p->s, m3.data, m3.len, &none, &sdone)) != 0) {
        o.side = 's';
        goto out;
    }
    assert_true(sdone);
    assert_int_equal(none.len, 0);
out:
    swc_buf_free(&m1);
    swc_buf_free(&m2);
    swc_buf_free(&m3);
    swc_buf_free(&none);
    return o;
}

/* Run a handshake with damage d and expect side to fail with rc. */
static void expect_refusal(struct pair *p, const struct damage *d, char side, int rc)
{
    pair_create(p);
    struct outcome o = run(p, d);
    if (o.rc != rc || o.side != side) {
        fail_msg("expected %c to fail with %s, got %c rc=%d (%s / %s)", side, swc_strerror(rc),
                 o.side ? o.side : '-', o.rc, swc_secchan_errmsg(p->c), swc_secchan_errmsg(p->s));
    }
    /* The failed side refuses everything afterwards. */
    struct swc_secchan *f = side == 'c' ? p->c : p->s;
    struct swc_buf b;
    bool done;
    swc_buf_init(&b);
    assert_int_not_equal(swc_secchan_handshake(f, (const uint8_t *)"x", 1, &b, &done), 0);
    assert_int_not_equal(swc_secchan_seal(f, (const uint8_t *)"x", 1, &b), 0);
    assert_int_equal(b.len, 0);
    assert_null(swc_secchan_peer(f));
    pair_destroy(p);
}

static void test_full_handshake(void **state)
{
    struct pair p;
    pair_defaults(&p);
    pair_create(&p);
    struct outcome o = run(&p, &no_damage);
    assert_int_equal(o.rc, 0);
    const struct swc_cert *sp = swc_secchan_peer(p.c), *cp = swc_secchan_peer(p.s);
    assert_non_null(sp);
    assert_non_null(cp);
    assert_string_equal(sp->node_id, "mgr1");
    assert_int_equal(sp->role, SWC_ROLE_MANAGER);
    assert_memory_equal(sp->public_key, p.server_id.public_key, SWC_SIGN_PK_LEN);
    assert_string_equal(cp->node_id, "wrk1");
    assert_string_equal(cp->cluster_id, CLUSTER);
    uint8_t b1[32], b2[32];
    assert_int_equal(swc_secchan_binding(p.c, b1), 0);
    assert_int_equal(swc_secchan_binding(p.s, b2), 0);
    assert_memory_equal(b1, b2, 32);
    /* A second connection has a different binding. */
    pair_destroy(&p);
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    assert_int_equal(swc_secchan_binding(p.c, b2), 0);
    assert_memory_not_equal(b1, b2, 32);
    pair_destroy(&p);
}

static void roundtrip(struct swc_secchan *from, struct swc_secchan *to, const uint8_t *msg,
                      size_t len)
{
    struct swc_buf sealed, opened;
    swc_buf_init(&sealed);
    swc_buf_init(&opened);
    assert_int_equal(swc_secchan_seal(from, msg, len, &sealed), 0);
    assert_int_equal(sealed.len, len + SWC_SECCHAN_OVERHEAD);
    if (len > 0) {
        assert_memory_not_equal(sealed.data, msg, len);
    }
    assert_int_equal(swc_secchan_open(to, sealed.data, sealed.len, &opened), 0);
    assert_int_equal(opened.len, len);
    if (len > 0) {
        assert_memory_equal(opened.data, msg, len);
    }
    swc_buf_free(&sealed);
    swc_buf_free(&opened);
}

static void test_frames_both_ways(void **state)
{
    struct pair p;
    static uint8_t big[65536];
    for (size_t i = 0; i < sizeof big; i++) {
        big[i] = (uint8_t)(i * 7);
    }
    pair_defaults(&p);
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    for (int i = 0; i < 5; i++) {
        roundtrip(p.c, p.s, (const uint8_t *)"hello server", 12);
        roundtrip(p.s, p.c, (const uint8_t *)"hello client", 12);
    }
    roundtrip(p.c, p.s, big, 0);
    roundtrip(p.s, p.c, big, sizeof big);
    roundtrip(p.c, p.s, big, sizeof big);
    /* Seal appends after what the buffer already holds. */
    struct swc_buf b, o;
    swc_buf_init(&b);
    swc_buf_init(&o);
    assert_int_equal(swc_buf_append(&b, "hdr", 3), 0);
    assert_int_equal(swc_secchan_seal(p.s, (const uint8_t *)"x", 1, &b), 0);
    assert_int_equal(b.len, 3 + 1 + SWC_SECCHAN_OVERHEAD);
    assert_int_equal(swc_secchan_open(p.c, b.data + 3, b.len - 3, &o), 0);
    assert_int_equal(o.len, 1);
    /* The two directions use different keys: a frame the client sealed does
     * not open as if it came from the server. */
    b.len = 0;
    assert_int_equal(swc_secchan_seal(p.c, (const uint8_t *)"x", 1, &b), 0);
    assert_int_equal(swc_secchan_open(p.c, b.data, b.len, &o), SWC_EAUTH);
    swc_buf_free(&b);
    swc_buf_free(&o);
    pair_destroy(&p);
}

/* The frame cipher: AES-256-GCM when both sides offer it, else
 * ChaCha20-Poly1305; both sides always agree and frames flow either way. */
static void test_cipher_negotiation(void **state)
{
    struct pair p;
    bool aes = crypto_aead_aes256gcm_is_available() != 0;
    static const struct {
        unsigned c, s, want_aes, want_chacha;
    } cases[] = {
        {0, 0, SWC_SECCHAN_AES256GCM, SWC_SECCHAN_CHACHA20POLY1305},
        {SWC_SECCHAN_CHACHA20POLY1305, 0, SWC_SECCHAN_CHACHA20POLY1305,
         SWC_SECCHAN_CHACHA20POLY1305},
        {0, SWC_SECCHAN_CHACHA20POLY1305, SWC_SECCHAN_CHACHA20POLY1305,
         SWC_SECCHAN_CHACHA20POLY1305},
        {SWC_SECCHAN_AES256GCM | SWC_SECCHAN_CHACHA20POLY1305, SWC_SECCHAN_CHACHA20POLY1305,
         SWC_SECCHAN_CHACHA20POLY1305, SWC_SECCHAN_CHACHA20POLY1305},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair_defaults(&p);
        p.ccfg.ciphers = cases[i].c;
        p.scfg.ciphers = cases[i].s;
        pair_create(&p);
        assert_int_equal(swc_secchan_cipher(p.c), 0);
        assert_int_equal(run(&p, &no_damage).rc, 0);
        unsigned want = aes ? cases[i].want_aes : cases[i].want_chacha;
        if (i == 0 && swc_aegis128l_available()) {
            want = SWC_SECCHAN_AEGIS128L; /* preferred when both offer it */
        }
        assert_int_equal(swc_secchan_cipher(p.c), want);
        assert_int_equal(swc_secchan_cipher(p.s), want);
        roundtrip(p.c, p.s, (const uint8_t *)"hello server", 12);
        roundtrip(p.s, p.c, (const uint8_t *)"hello client", 12);
        pair_destroy(&p);
    }
    if (aes) {
        /* Only AES on both sides, on a CPU that has it. */
        pair_defaults(&p);
        p.ccfg.ciphers = SWC_SECCHAN_AES256GCM;
        p.scfg.ciphers = SWC_SECCHAN_AES256GCM;
        pair_create(&p);
        assert_int_equal(run(&p, &no_damage).rc, 0);
        assert_int_equal(swc_secchan_cipher(p.s), SWC_SECCHAN_AES256GCM);
        pair_destroy(&p);
        /* No cipher in common: the server refuses HELLO. */
        pair_defaults(&p);
        p.ccfg.ciphers = SWC_SECCHAN_AES256GCM;
        p.scfg.ciphers = SWC_SECCHAN_CHACHA20POLY1305;
        expect_refusal(&p, &no_damage, 's', SWC_EPROTO);
    } else {
        /* Asking for AES on a CPU without it is a configuration error. */
        struct swc_secchan *sc;
        pair_defaults(&p);
        p.ccfg.ciphers = SWC_SECCHAN_AES256GCM;
        assert_int_equal(swc_secchan_create(&p.ccfg, &sc), SWC_EINVAL);
    }
    /* Unknown cipher bits are a configuration error. */
    struct swc_secchan *bad;
    pair_defaults(&p);
    p.ccfg.ciphers = 0x80;
    assert_int_equal(swc_secchan_create(&p.ccfg, &bad), SWC_EINVAL);
}

/* A man in the middle who strips AES from the client's offer, or changes
 * the server's choice, is caught by the signed transcript. */
static void test_cipher_downgrade(void **state)
{
    struct pair p;
    /* HELLO's offer (its last byte) with AES removed: the server happily
     * picks ChaCha, but what it signed is not what the client sent, so the
     * client refuses the server's signature. On a CPU without AES the bit
     * is added instead (an "upgrade" is caught the same way). */
    uint8_t hello[67];
    struct swc_buf m1;
    bool done;
    pair_defaults(&p);
    pair_create(&p);
    swc_buf_init(&m1);
    assert_int_equal(swc_secchan_handshake(p.c, NULL, 0, &m1, &done), 0);
    assert_int_equal(m1.len, sizeof hello);
    memcpy(hello, m1.data, m1.len);
    hello[66] ^= SWC_SECCHAN_AES256GCM;
    if ((hello[66] & (SWC_SECCHAN_AES256GCM | SWC_SECCHAN_CHACHA20POLY1305)) == 0) {
        hello[66] = SWC_SECCHAN_CHACHA20POLY1305;
    }
    struct swc_buf m2, m3;
    swc_buf_init(&m2);
    swc_buf_init(&m3);
    assert_int_equal(swc_secchan_handshake(p.s, hello, m1.len, &m2, &done), 0);
    assert_int_equal(swc_secchan_handshake(p.c, m2.data, m2.len, &m3, &done), SWC_EAUTH);
    assert_int_equal(swc_secchan_cipher(p.c), 0);
    swc_buf_free(&m1);
    swc_buf_free(&m2);
    swc_buf_free(&m3);
    pair_destroy(&p);
    /* Changing the server's choice in flight (AES <-> ChaCha, both
     * ciphers the client offered) breaks the server's signature. */
    pair_defaults(&p);
    pair_create(&p);
    struct swc_buf a, b2, c3;
    swc_buf_init(&a);
    swc_buf_init(&b2);
    swc_buf_init(&c3);
    assert_int_equal(swc_secchan_handshake(p.c, NULL, 0, &a, &done), 0);
    assert_int_equal(swc_secchan_handshake(p.s, a.data, a.len, &b2, &done), 0);
    size_t choice_at = 2 + 32 + 32 + 2 + p.server_id.cert_len;
    assert_true(b2.data[choice_at] == SWC_SECCHAN_AES256GCM ||
                b2.data[choice_at] == SWC_SECCHAN_AEGIS128L ||
                b2.data[choice_at] == SWC_SECCHAN_CHACHA20POLY1305);
    b2.data[choice_at] = b2.data[choice_at] != SWC_SECCHAN_CHACHA20POLY1305
                             ? SWC_SECCHAN_CHACHA20POLY1305
                             : SWC_SECCHAN_AES256GCM;
    int rc = swc_secchan_handshake(p.c, b2.data, b2.len, &c3, &done);
    if (crypto_aead_aes256gcm_is_available()) {
        assert_int_equal(rc, SWC_EAUTH); /* offered, but not what was signed */
    } else {
        assert_int_equal(rc, SWC_EPROTO); /* AES was never offered */
    }
    swc_buf_free(&a);
    swc_buf_free(&b2);
    swc_buf_free(&c3);
    pair_destroy(&p);
    /* A server that picks a cipher the client did not offer is refused
     * before its signature is even looked at: the client offers only
     * ChaCha, HELLO is rewritten to offer only AES, and the server (which
     * then signs its AES choice honestly) is refused with EPROTO, not the
     * EAUTH the changed transcript alone would give. */
    if (crypto_aead_aes256gcm_is_available()) {
        pair_defaults(&p);
        p.ccfg.ciphers = SWC_SECCHAN_CHACHA20POLY1305;
        uint8_t aes_hello[67];
        pair_create(&p);
        swc_buf_init(&a);
        swc_buf_init(&b2);
        swc_buf_init(&c3);
        assert_int_equal(swc_secchan_handshake(p.c, NULL, 0, &a, &done), 0);
        memcpy(aes_hello, a.data, sizeof aes_hello);
        aes_hello[66] = SWC_SECCHAN_AES256GCM;
        assert_int_equal(swc_secchan_handshake(p.s, aes_hello, sizeof aes_hello, &b2, &done), 0);
        assert_int_equal(b2.data[choice_at], SWC_SECCHAN_AES256GCM);
        assert_int_equal(swc_secchan_handshake(p.c, b2.data, b2.len, &c3, &done), SWC_EPROTO);
        swc_buf_free(&a);
        swc_buf_free(&b2);
        swc_buf_free(&c3);
        pair_destroy(&p);
    }
    /* A choice that is not a single known cipher is malformed. */
    pair_defaults(&p);
    pair_create(&p);
    swc_buf_init(&a);
    swc_buf_init(&b2);
    swc_buf_init(&c3);
    assert_int_equal(swc_secchan_handshake(p.c, NULL, 0, &a, &done), 0);
    assert_int_equal(swc_secchan_handshake(p.s, a.data, a.len, &b2, &done), 0);
    b2.data[choice_at] = SWC_SECCHAN_AES256GCM | SWC_SECCHAN_CHACHA20POLY1305;
    assert_int_equal(swc_secchan_handshake(p.c, b2.data, b2.len, &c3, &done), SWC_EPROTO);
    swc_buf_free(&a);
    swc_buf_free(&b2);
    swc_buf_free(&c3);
    pair_destroy(&p);
}

/* In-place seal and open give the same bytes as the copying calls. */
static void test_inplace(void **state)
{
    struct pair p;
    static uint8_t buf[4096 + SWC_SECCHAN_OVERHEAD];
    pair_defaults(&p);
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    for (size_t i = 0; i < 4096; i++) {
        buf[i] = (uint8_t)(i * 13);
    }
    assert_int_equal(swc_secchan_seal_inplace(p.c, buf, 4096), 0);
    struct swc_buf o;
    swc_buf_init(&o);
    assert_int_equal(swc_secchan_open(p.s, buf, sizeof buf, &o), 0);
    assert_int_equal(o.len, 4096);
    for (size_t i = 0; i < 4096; i++) {
        assert_int_equal(o.data[i], (uint8_t)(i * 13));
    }
    struct swc_buf sealed;
    swc_buf_init(&sealed);
    assert_int_equal(swc_secchan_seal(p.c, o.data, o.len, &sealed), 0);
    assert_int_equal(swc_secchan_open_inplace(p.s, sealed.data, sealed.len), 0);
    assert_memory_equal(sealed.data, o.data, o.len);
    /* Tampering is caught in place too, and is final. */
    assert_int_equal(swc_secchan_seal(p.c, o.data, 10, &sealed), 0);
    sealed.data[sealed.len - 1] ^= 1;
    assert_int_equal(swc_secchan_open_inplace(p.s, sealed.data + o.len + 16, 10 + 16), SWC_EAUTH);
    assert_int_equal(swc_secchan_open_inplace(p.s, sealed.data, 16), SWC_ESTATE);
    swc_buf_free(&o);
    swc_buf_free(&sealed);
    pair_destroy(&p);
}

static void test_anonymous_client(void **state)
{
    struct pair p;
    uint8_t hash[32], digest[32], b1[32], b2[32], proof[32];
    char token[SWC_TOKEN_MAX];
    pair_defaults(&p);
    p.ccfg.self = NULL;
    p.scfg.allow_anonymous_client = true;
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    assert_null(swc_secchan_peer(p.s));
    assert_non_null(swc_secchan_peer(p.c));
    roundtrip(p.c, p.s, (const uint8_t *)"join", 4);
    roundtrip(p.s, p.c, (const uint8_t *)"cert", 4);
    /* The join proof: the node knows the token, the manager the stored hash. */
    assert_int_equal(swc_token_new(ca_pk, token, hash), 0);
    uint8_t parsed[32];
    assert_int_equal(swc_token_parse(token, digest, parsed), 0);
    assert_int_equal(swc_secchan_binding(p.c, b1), 0);
    assert_int_equal(swc_secchan_binding(p.s, b2), 0);
    swc_token_proof(parsed, b1, proof);
    assert_true(swc_token_proof_verify(hash, b2, proof));
    pair_destroy(&p);

    /* An identity without a certificate is anonymous too. */
    pair_defaults(&p);
    p.client_id.cert_len = 0;
    p.scfg.allow_anonymous_client = true;
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    assert_null(swc_secchan_peer(p.s));
    pair_destroy(&p);
}

/* A joining node knows the CA only by the digest in its token. */
static void test_join_pin_by_digest(void **state)
{
    struct pair p;
    pair_defaults(&p);
    p.ccfg.self = NULL;
    memset(p.ccfg.ca_public_key, 0, SWC_SIGN_PK_LEN);
    p.ccfg.pin_ca_by_digest = true;
    swc_ca_digest(ca_pk, p.ccfg.ca_digest);
    p.scfg.allow_anonymous_client = true;
    pair_create(&p);
    assert_null(swc_secchan_ca_key(p.c));
    assert_int_equal(run(&p, &no_damage).rc, 0);
    assert_non_null(swc_secchan_ca_key(p.c));
    assert_memory_equal(swc_secchan_ca_key(p.c), ca_pk, SWC_SIGN_PK_LEN);
    pair_destroy(&p);

    /* An impostor with its own, self-consistent CA: the digest refuses it. */
    pair_defaults(&p);
    p.ccfg.self = NULL;
    p.ccfg.pin_ca_by_digest = true;
    swc_ca_digest(ca_pk, p.ccfg.ca_digest);
    p.scfg.allow_anonymous_client = true;
    make_identity(&p.server_id, "mgr1", SWC_ROLE_MANAGER, CLUSTER, NOW + DAY, other_sk);
    memcpy(p.scfg.ca_public_key, other_pk, SWC_SIGN_PK_LEN);
    expect_refusal(&p, &no_damage, 'c', SWC_EAUTH);

    /* An impostor naming the real CA but holding a certificate of another. */
    pair_defaults(&p);
    p.ccfg.self = NULL;
    p.ccfg.pin_ca_by_digest = true;
    swc_ca_digest(ca_pk, p.ccfg.ca_digest);
    p.scfg.allow_anonymous_client = true;
    make_identity(&p.server_id, "mgr1", SWC_ROLE_MANAGER, CLUSTER, NOW + DAY, other_sk);
    expect_refusal(&p, &no_damage, 'c', SWC_EAUTH);

    /* The CA key in SERVER is covered by the server's signature. */
    pair_defaults(&p);
    struct damage d = no_damage;
    d.msg = 2;
    d.flip = 2 + 32 + 7;
    expect_refusal(&p, &d, 'c', SWC_EAUTH);
}

static void test_anonymous_refused(void **state)
{
    struct pair p;
    pair_defaults(&p);
    p.ccfg.self = NULL;
    expect_refusal(&p, &no_damage, 's', SWC_EAUTH);
}

static void test_wrong_ca(void **state)
{
    struct pair p;
    pair_defaults(&p);
    make_identity(&p.server_id, "mgr1", SWC_ROLE_MANAGER, CLUSTER, NOW + DAY, other_sk);
    expect_refusal(&p, &no_damage, 'c', SWC_EAUTH);
    pair_defaults(&p);
    make_identity(&p.client_id, "wrk1", SWC_ROLE_WORKER, CLUSTER, NOW + DAY, other_sk);
    expect_refusal(&p, &no_damage, 's', SWC_EAUTH);
    /* And a client pinning another CA refuses our server. */
    pair_defaults(&p);
    memcpy(p.ccfg.ca_public_key, other_pk, SWC_SIGN_PK_LEN);
    expect_refusal(&p, &no_damage, 'c', SWC_EAUTH);
}

static void test_expired(void **state)
{
    struct pair p;
    pair_defaults(&p);
    make_identity(&p.server_id, "mgr1", SWC_ROLE_MANAGER, CLUSTER, NOW - 1, ca_sk);
    expect_refusal(&p, &no_damage, 'c', SWC_EEXPIRED);
    pair_defaults(&p);
    make_identity(&p.client_id, "wrk1", SWC_ROLE_WORKER, CLUSTER, NOW, ca_sk);
    expect_refusal(&p, &no_damage, 's', SWC_EEXPIRED);
    /* One nanosecond before not-after it is still good. */
    pair_defaults(&p);
    make_identity(&p.client_id, "wrk1", SWC_ROLE_WORKER, CLUSTER, NOW + 1, ca_sk);
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    pair_destroy(&p);
}

static void test_bad_cert_signature(void **state)
{
    struct pair p;
    pair_defaults(&p);
    p.server_id.cert[p.server_id.cert_len - 1] ^= 0x01;
    expect_refusal(&p, &no_damage, 'c', SWC_EAUTH);
    pair_defaults(&p);
    p.client_id.cert[p.client_id.cert_len - 10] ^= 0x80;
    expect_refusal(&p, &no_damage, 's', SWC_EAUTH);
    /* A signed field changed in flight (the not-after inside SERVER's
     * certificate) also breaks the CA signature. */
    pair_defaults(&p);
    struct damage d = no_damage;
    d.msg = 2;
    d.flip = (long)(2 + 32 + 32 + 2 + p.server_id.cert_len - SWC_SIG_LEN - 1);
    expect_refusal(&p, &d, 'c', SWC_EAUTH);
}

static void test_bad_transcript_signature(void **state)
{
    struct pair p;
    struct damage d = no_damage;
    pair_defaults(&p);
    d.msg = 2;
    d.flip = (long)(2 + 32 + 32 + 2 + p.server_id.cert_len + 5); /* inside the signature */
    expect_refusal(&p, &d, 'c', SWC_EAUTH);
    pair_defaults(&p);
    d.msg = 3;
    d.flip = (long)(2 + 2 + p.client_id.cert_len + 63);
    expect_refusal(&p, &d, 's', SWC_EAUTH);
    /* Changing what was signed (the server's ephemeral key, the client's
     * nonce) fails the signature too. */
    pair_defaults(&p);
    d.msg = 2;
    d.flip = 3;
    expect_refusal(&p, &d, 'c', SWC_EAUTH);
    pair_defaults(&p);
    d.msg = 1;
    d.flip = 40;
    expect_refusal(&p, &d, 'c', SWC_EAUTH);
}

static void test_role_mismatch(void **state)
{
    struct pair p;
    pair_defaults(&p);
    make_identity(&p.server_id, "wrk9", SWC_ROLE_WORKER, CLUSTER, NOW + DAY, ca_sk);
    expect_refusal(&p, &no_damage, 'c', SWC_EAUTH);
    pair_defaults(&p);
    p.scfg.required_peer_role = SWC_ROLE_MANAGER;
    expect_refusal(&p, &no_damage, 's', SWC_EAUTH);
    /* A manager satisfies a worker requirement, and -1 takes anyone. */
    pair_defaults(&p);
    make_identity(&p.client_id, "mgr2", SWC_ROLE_MANAGER, CLUSTER, NOW + DAY, ca_sk);
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    pair_destroy(&p);
    pair_defaults(&p);
    make_identity(&p.server_id, "wrk9", SWC_ROLE_WORKER, CLUSTER, NOW + DAY, ca_sk);
    p.ccfg.required_peer_role = -1;
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    pair_destroy(&p);
}

static void test_cluster_mismatch(void **state)
{
    struct pair p;
    pair_defaults(&p);
    make_identity(&p.server_id, "mgr1", SWC_ROLE_MANAGER, "other", NOW + DAY, ca_sk);
    expect_refusal(&p, &no_damage, 'c', SWC_EAUTH);
    pair_defaults(&p);
    make_identity(&p.client_id, "wrk1", SWC_ROLE_WORKER, "other", NOW + DAY, ca_sk);
    expect_refusal(&p, &no_damage, 's', SWC_EAUTH);
    /* With no cluster configured, whatever the CA signed is taken. */
    pair_defaults(&p);
    make_identity(&p.server_id, "mgr1", SWC_ROLE_MANAGER, "other", NOW + DAY, ca_sk);
    p.ccfg.cluster_id[0] = '\0';
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    pair_destroy(&p);
}

static void test_key_not_signer(void **state)
{
    struct pair p;
    uint8_t pk[SWC_SIGN_PK_LEN];
    /* A genuine certificate presented by someone holding another key. */
    pair_defaults(&p);
    swc_keypair_new(pk, p.server_id.secret_key);
    expect_refusal(&p, &no_damage, 'c', SWC_EAUTH);
    pair_defaults(&p);
    swc_keypair_new(pk, p.client_id.secret_key);
    expect_refusal(&p, &no_damage, 's', SWC_EAUTH);
    /* Stolen: the client replays the server's own certificate. */
    pair_defaults(&p);
    memcpy(p.client_id.cert, p.server_id.cert, p.server_id.cert_len);
    p.client_id.cert_len = p.server_id.cert_len;
    expect_refusal(&p, &no_damage, 's', SWC_EAUTH);
}

static void established(struct pair *p)
{
    pair_defaults(p);
    pair_create(p);
    assert_int_equal(run(p, &no_damage).rc, 0);
}

static void test_tampered_frame(void **state)
{
    struct pair p;
    struct swc_buf f, o;
    swc_buf_init(&f);
    swc_buf_init(&o);
    for (size_t i = 0; i < 10 + SWC_SECCHAN_OVERHEAD; i++) {
        established(&p);
        f.len = 0;
        assert_int_equal(swc_secchan_seal(p.c, (const uint8_t *)"0123456789", 10, &f), 0);
        f.data[i] ^= 0x20;
        assert_int_equal(swc_secchan_open(p.s, f.data, f.len, &o), SWC_EAUTH);
        assert_int_equal(o.len, 0);
        /* The channel is dead: even the genuine frame is refused now. */
        f.data[i] ^= 0x20;
        assert_int_equal(swc_secchan_open(p.s, f.data, f.len, &o), SWC_ESTATE);
        pair_destroy(&p);
    }
    /* Truncated frames. */
    established(&p);
    f.len = 0;
    assert_int_equal(swc_secchan_seal(p.s, (const uint8_t *)"abc", 3, &f), 0);
    assert_int_equal(swc_secchan_open(p.c, f.data, f.len - 1, &o), SWC_EAUTH);
    pair_destroy(&p);
    established(&p);
    assert_int_equal(swc_secchan_open(p.c, f.data, 5, &o), SWC_EAUTH);
    pair_destroy(&p);
    swc_buf_free(&f);
    swc_buf_free(&o);
}

static void test_replayed_frame(void **state)
{
    struct pair p;
    struct swc_buf f, o;
    swc_buf_init(&f);
    swc_buf_init(&o);
    established(&p);
    assert_int_equal(swc_secchan_seal(p.c, (const uint8_t *)"pay 10", 6, &f), 0);
    assert_int_equal(swc_secchan_open(p.s, f.data, f.len, &o), 0);
    assert_int_equal(swc_secchan_open(p.s, f.data, f.len, &o), SWC_EAUTH);
    assert_int_equal(o.len, 6);
    pair_destroy(&p);
    /* A frame from another connection does not open either. */
    established(&p);
    assert_int_equal(swc_secchan_open(p.s, f.data, f.len, &o), SWC_EAUTH);
    pair_destroy(&p);
    swc_buf_free(&f);
    swc_buf_free(&o);
}

static void test_reordered_frame(void **state)
{
    struct pair p;
    struct swc_buf f0, f1, o;
    swc_buf_init(&f0);
    swc_buf_init(&f1);
    swc_buf_init(&o);
    established(&p);
    assert_int_equal(swc_secchan_seal(p.s, (const uint8_t *)"first", 5, &f0), 0);
    assert_int_equal(swc_secchan_seal(p.s, (const uint8_t *)"second", 6, &f1), 0);
    assert_int_equal(swc_secchan_open(p.c, f1.data, f1.len, &o), SWC_EAUTH);
    assert_int_equal(swc_secchan_open(p.c, f0.data, f0.len, &o), SWC_ESTATE);
    pair_destroy(&p);
    /* In order they open. */
    established(&p);
    f0.len = f1.len = 0;
    assert_int_equal(swc_secchan_seal(p.s, (const uint8_t *)"first", 5, &f0), 0);
    assert_int_equal(swc_secchan_seal(p.s, (const uint8_t *)"second", 6, &f1), 0);
    assert_int_equal(swc_secchan_open(p.c, f0.data, f0.len, &o), 0);
    assert_int_equal(swc_secchan_open(p.c, f1.data, f1.len, &o), 0);
    assert_int_equal(o.len, 11);
    pair_destroy(&p);
    swc_buf_free(&f0);
    swc_buf_free(&f1);
    swc_buf_free(&o);
}

static void test_truncated_handshake(void **state)
{
    struct pair p;
    pair_defaults(&p);
    pair_create(&p);
    struct outcome full = run(&p, &no_damage);
    assert_int_equal(full.rc, 0);
    pair_destroy(&p);
    for (int msg = 1; msg <= 3; msg++) {
        char side = msg == 2 ? 'c' : 's';
        for (size_t n = 0; n < full.len[msg]; n++) {
            struct damage d = no_damage;
            d.msg = msg;
            d.truncate = (long)n;
            pair_defaults(&p);
            expect_refusal(&p, &d, side, SWC_EPROTO);
        }
        /* One byte too many is malformed as well. */
        struct damage d = no_damage;
        d.msg = msg;
        d.extend = true;
        pair_defaults(&p);
        expect_refusal(&p, &d, side, SWC_EPROTO);
    }
    /* The anonymous FINISH has its own length rule. */
    pair_defaults(&p);
    p.ccfg.self = NULL;
    p.scfg.allow_anonymous_client = true;
    for (long n = 0; n < 4; n++) {
        struct damage d = no_damage;
        d.msg = 3;
        d.truncate = n;
        expect_refusal(&p, &d, 's', SWC_EPROTO);
    }
    struct damage x = no_damage;
    x.msg = 3;
    x.extend = true;
    expect_refusal(&p, &x, 's', SWC_EPROTO);
}

static void test_garbage(void **state)
{
    struct pair p;
    uint8_t junk[700];
    memset(junk, 0xa5, sizeof junk);
    size_t lens[] = {1, 2, 66, 100, 300, 700};
    for (int msg = 1; msg <= 3; msg++) {
        char side = msg == 2 ? 'c' : 's';
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            struct damage d = no_damage;
            d.msg = msg;
            d.replace = junk;
            d.replace_len = lens[i];
            pair_defaults(&p);
            expect_refusal(&p, &d, side, SWC_EPROTO);
        }
    }
    /* Right version and type but a nonsense certificate. */
    pair_defaults(&p);
    struct damage d = no_damage;
    d.msg = 2;
    d.flip = 2 + 32 + 32 + 2; /* certificate version byte */
    expect_refusal(&p, &d, 'c', SWC_EPROTO);
    pair_defaults(&p);
    d.msg = 3;
    d.flip = 2 + 2; /* certificate version byte */
    expect_refusal(&p, &d, 's', SWC_EPROTO);
    /* Wrong version, wrong message type. */
    pair_defaults(&p);
    d.msg = 1;
    d.flip = 0;
    expect_refusal(&p, &d, 's', SWC_EPROTO);
    pair_defaults(&p);
    d.msg = 2;
    d.flip = 1;
    expect_refusal(&p, &d, 'c', SWC_EPROTO);
    pair_defaults(&p);
    d.msg = 3;
    d.flip = 1;
    expect_refusal(&p, &d, 's', SWC_EPROTO);
}

static void test_misuse(void **state)
{
    struct pair p;
    struct swc_secchan *sc;
    struct swc_buf b;
    bool done;
    swc_buf_init(&b);
    pair_defaults(&p);
    /* A server must have a certificate. */
    p.scfg.self = NULL;
    assert_int_equal(swc_secchan_create(&p.scfg, &sc), SWC_EINVAL);
    assert_null(sc);
    pair_defaults(&p);
    p.scfg.required_peer_role = 7;
    assert_int_equal(swc_secchan_create(&p.scfg, &sc), SWC_EINVAL);
    pair_defaults(&p);
    pair_create(&p);
    /* Nothing seals or opens before the handshake. */
    assert_int_equal(swc_secchan_seal(p.c, (const uint8_t *)"x", 1, &b), SWC_ESTATE);
    assert_int_equal(swc_secchan_open(p.s, b.data, b.len, &b), SWC_ESTATE);
    uint8_t bind[32];
    assert_int_equal(swc_secchan_binding(p.c, bind), SWC_ESTATE);
    /* The client speaks first. */
    assert_int_equal(swc_secchan_handshake(p.c, (const uint8_t *)"x", 1, &b, &done), SWC_ESTATE);
    pair_destroy(&p);
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    assert_int_equal(swc_secchan_handshake(p.s, NULL, 0, &b, &done), SWC_ESTATE);
    assert_true(done);
    pair_destroy(&p);
    swc_secchan_destroy(NULL);
    swc_buf_free(&b);
}

static void test_alloc_failures(void **state)
{
    struct pair p;
    pair_defaults(&p);
    long before = swc_alloc_count();
    pair_create(&p);
    assert_int_equal(run(&p, &no_damage).rc, 0);
    pair_destroy(&p);
    long total = swc_alloc_count() - before;
    assert_true(total > 0);
    for (long n = 1; n <= total + 1; n++) {
        long live = swc_alloc_live();
        swc_alloc_fail_after(n);
        int rc = swc_secchan_create(&p.scfg, &p.s);
        if (rc == 0) {
            rc = swc_secchan_create(&p.ccfg, &p.c);
        }
        if (rc == 0) {
            struct outcome o = run(&p, &no_damage);
            rc = o.rc;
        }
        swc_alloc_fail_after(0);
        assert_true(rc == 0 || rc == SWC_ENOMEM);
        assert_true(n <= total || rc == 0);
        pair_destroy(&p);
        assert_int_equal(swc_alloc_live(), live);
    }
}

int main(void)
{
    swc_keypair_new(ca_pk, ca_sk);
    swc_keypair_new(other_pk, other_sk);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_handshake),
        cmocka_unit_test(test_frames_both_ways),
        cmocka_unit_test(test_cipher_negotiation),
        cmocka_unit_test(test_cipher_downgrade),
        cmocka_unit_test(test_inplace),
        cmocka_unit_test(test_anonymous_client),
        cmocka_unit_test(test_join_pin_by_digest),
        cmocka_unit_test(test_anonymous_refused),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_bad_cert_signature),
        cmocka_unit_test(test_bad_transcript_signature),
        cmocka_unit_test(test_role_mismatch),
        cmocka_unit_test(test_cluster_mismatch),
        cmocka_unit_test(test_key_not_signer),
        cmocka_unit_test(test_tampered_frame),
        cmocka_unit_test(test_replayed_frame),
        cmocka_unit_test(test_reordered_frame),
        cmocka_unit_test(test_truncated_handshake),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
