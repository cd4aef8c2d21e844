/* Secure channel throughput: seal + open of 64 KiB frames between two
 * in-memory endpoints, for each frame cipher this CPU runs (AES-256-GCM,
 * ChaCha20-Poly1305), with the copying calls and in place, plus the cost of
 * one full handshake. Prints the median, min and max of several runs;
 * asserts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "net/cert.h"
#include "net/secchan.h"

#define FRAME  (64 * 1024)
#define FRAMES 2000
#define RUNS   7

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void identity(struct swc_identity *id, const char *node, int role, const uint8_t *ca_sk)
{
    struct swc_cert c;
    struct swc_buf b;
    memset(&c, 0, sizeof c);
    swc_keypair_new(id->public_key, id->secret_key);
    strcpy(c.node_id, node);
    strcpy(c.cluster_id, "bench");
    c.role = role;
    memcpy(c.public_key, id->public_key, SWC_SIGN_PK_LEN);
    c.not_after = swc_now_wall() + 3600 * SWC_NS_PER_SEC;
    swc_cert_sign(&c, ca_sk);
    swc_buf_init(&b);
    if (swc_cert_encode(&c, &b) != 0) {
        abort();
    }
    memcpy(id->cert, b.data, b.len);
    id->cert_len = b.len;
    swc_buf_free(&b);
}

static void handshake(const struct swc_secchan_config *cc, const struct swc_secchan_config *sc,
                      struct swc_secchan **c, struct swc_secchan **s)
{
    struct swc_buf m1, m2, m3, m4;
    bool done;
    swc_buf_init(&m1);
    swc_buf_init(&m2);
    swc_buf_init(&m3);
    swc_buf_init(&m4);
    if (swc_secchan_create(cc, c) || swc_secchan_create(sc, s) ||
        swc_secchan_handshake(*c, NULL, 0, &m1, &done) ||
        swc_secchan_handshake(*s, m1.data, m1.len, &m2, &done) ||
        swc_secchan_handshake(*c, m2.data, m2.len, &m3, &done) ||
        swc_secchan_handshake(*s, m3.data, m3.len, &m4, &done) || !done) {
        abort();
    }
    swc_buf_free(&m1);
    swc_buf_free(&m2);
    swc_buf_free(&m3);
    swc_buf_free(&m4);
}

int main(void)
{
    uint8_t ca_pk[SWC_SIGN_PK_LEN], ca_sk[SWC_SIGN_SK_LEN];
    struct swc_identity sid, cid;
    struct swc_secchan_config scfg, ccfg;
    struct swc_secchan *c, *s;
    swc_keypair_new(ca_pk, ca_sk);
    identity(&sid, "m1", SWC_ROLE_MANAGER, ca_sk);
    identity(&cid, "w1", SWC_ROLE_WORKER, ca_sk);
    memset(&scfg, 0, sizeof scfg);
    scfg.self = &sid;
    memcpy(scfg.ca_public_key, ca_pk, SWC_SIGN_PK_LEN);
    scfg.required_peer_role = -1;
    ccfg = scfg;
    ccfg.is_client = true;
    ccfg.self = &cid;

    double hs_us[RUNS];
    for (int r = 0; r < RUNS; r++) {
        int64_t t0 = swc_now_mono();
        for (int i = 0; i < 20; i++) {
            handshake(&ccfg, &scfg, &c, &s);
            swc_secchan_destroy(c);
            swc_secchan_destroy(s);
        }
        hs_us[r] = (double)(swc_now_mono() - t0) / 20 / SWC_NS_PER_US;
    }
    qsort(hs_us, RUNS, sizeof hs_us[0], cmp);
    printf(
        "secchan full handshake (both sides, mutual certs): median %.0f us (min %.0f, max %.0f)\n",
        hs_us[RUNS / 2], hs_us[0], hs_us[RUNS - 1]);

    static uint8_t payload[FRAME], frame[FRAME + SWC_SECCHAN_OVERHEAD];
    memset(payload, 0x5a, sizeof payload);
    struct swc_buf sealed, opened;
    swc_buf_init(&sealed);
    swc_buf_init(&opened);
    static const struct {
        unsigned cipher;
        const char *name;
    } ciphers[] = {{SWC_SECCHAN_AES256GCM, "AES-256-GCM"},
                   {SWC_SECCHAN_CHACHA20POLY1305, "ChaCha20-Poly1305"}};
    for (size_t k = 0; k < sizeof ciphers / sizeof ciphers[0]; k++) {
        ccfg.ciphers = ciphers[k].cipher;
        if (swc_secchan_create(&ccfg, &c) != 0) {
            printf("secchan %s: not available on this CPU\n", ciphers[k].name);
            continue;
        }
        swc_secchan_destroy(c);
        for (int inplace = 0; inplace < 2; inplace++) {
            double mbps[RUNS];
            for (int r = 0; r < RUNS; r++) {
                handshake(&ccfg, &scfg, &c, &s);
                int64_t t0 = swc_now_mono();
                for (int i = 0; i < FRAMES; i++) {
                    sealed.len = opened.len = 0;
                    if (inplace) {
                        memcpy(frame, payload, FRAME);
                        if (swc_secchan_seal_inplace(c, frame, FRAME) ||
                            swc_secchan_open_inplace(s, frame, sizeof frame)) {
                            abort();
                        }
                    } else if (swc_secchan_seal(c, payload, sizeof payload, &sealed) ||
                               swc_secchan_open(s, sealed.data, sealed.len, &opened)) {
                        abort();
                    }
                }
                double sec = (double)(swc_now_mono() - t0) / SWC_NS_PER_SEC;
                mbps[r] = (double)FRAMES * FRAME / sec / 1e6;
                swc_secchan_destroy(c);
                swc_secchan_destroy(s);
            }
            qsort(mbps, RUNS, sizeof mbps[0], cmp);
            printf("secchan %-17s seal+open 64 KiB frames%s: median %.0f MB/s (min %.0f, max "
                   "%.0f), %d runs\n",
                   ciphers[k].name, inplace ? " in place (+copy in)" : "", mbps[RUNS / 2], mbps[0],
                   mbps[RUNS - 1], RUNS);
        }
    }
    swc_buf_free(&sealed);
    swc_buf_free(&opened);
    return 0;
}
