/* Secure channel throughput: seal + open of 64 KiB frames between two
 * in-memory endpoints, for each frame cipher this CPU runs (AEGIS-128L,
 * AES-256-GCM, ChaCha20-Poly1305), with the copying calls and in place, the
 * seal and open cost per 64 KiB frame of AES-256-GCM against AEGIS-128L
 * (alternating within each run), plus the cost of
 * one full handshake, and the sender's cost of building one record from a
 * 64 KiB message by copying then sealing against sealing it piece by piece
 * from the caller's buffer (CPU time, variants alternating). Prints the median, min and max of
 * several runs; asserts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "net/aegis.h"
#include "net/cert.h"
#include "net/secchan.h"

#define FRAME  (64 * 1024)
#define FRAMES 2000
#define RUNS   9

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

/* CPU time of this thread, ns: alternating variants compare fairly even
 * when other processes take the cores. */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * SWC_NS_PER_SEC + ts.tv_nsec;
}

/* How the RPC layer builds a sealed record from a 64 KiB message (a 16-byte
 * frame head, then the caller's body), the sender's side only: copy the
 * frame into the record and seal it in place (the old path), against sealing
 * it piece by piece straight from the caller's buffer (rpc_conn.c now), and
 * a bare copy (what plain TCP's write queue costs when the socket is full).
 * Variants alternate within each run; figures are CPU ns per message. */
static void record_assembly(const struct swc_secchan_config *ccfg,
                            const struct swc_secchan_config *scfg, const uint8_t *payload,
                            const char *cipher)
{
    enum { HEAD = 16, MSGS = 4000 };
    static uint8_t rec[HEAD + FRAME + SWC_SECCHAN_OVERHEAD], head[HEAD];
    double copy_seal[RUNS], piecewise[RUNS], bare[RUNS], ratio[RUNS];
    struct swc_secchan *c, *s;
    memset(head, 7, sizeof head);
    for (int r = 0; r < RUNS; r++) {
        handshake(ccfg, scfg, &c, &s);
        if (swc_secchan_seal_begin(c) == SWC_ENOTSUP) {
            printf("secchan record assembly: no OpenSSL backend, skipped\n");
            swc_secchan_destroy(c);
            swc_secchan_destroy(s);
            return;
        }
        if (swc_secchan_seal_end(c, rec) != 0) {
            abort();
        }
        for (int v = 0; v < 3; v++) {
            int64_t t0 = thread_cpu_ns();
            for (int i = 0; i < MSGS; i++) {
                int rc = 0;
                if (v == 0) {
                    memcpy(rec, head, HEAD);
                    memcpy(rec + HEAD, payload, FRAME);
                    rc = swc_secchan_seal_inplace(c, rec, HEAD + FRAME);
                } else if (v == 1) {
                    memcpy(rec, head, HEAD);
                    rc = swc_secchan_seal_begin(c) || swc_secchan_seal_update(c, rec, rec, HEAD) ||
                         swc_secchan_seal_update(c, rec + HEAD, payload, FRAME) ||
                         swc_secchan_seal_end(c, rec + HEAD + FRAME);
                } else {
                    memcpy(rec, head, HEAD);
                    memcpy(rec + HEAD, payload, FRAME);
                    __asm__ volatile("" : : "r"(rec) : "memory");
                }
                if (rc != 0) {
                    abort();
                }
            }
            double ns = (double)(thread_cpu_ns() - t0) / MSGS;
            *(v == 0 ? &copy_seal[r] : v == 1 ? &piecewise[r] : &bare[r]) = ns;
        }
        ratio[r] = 100.0 * piecewise[r] / copy_seal[r];
        swc_secchan_destroy(c);
        swc_secchan_destroy(s);
    }
    static const char *names[] = {"copy, then seal in place", "sealed from the caller's buffer",
                                  "bare copy (plain's queue)", "piecewise / copy+seal"};
    double *vals[] = {copy_seal, piecewise, bare, ratio};
    for (int v = 0; v < 4; v++) {
        qsort(vals[v], RUNS, sizeof(double), cmp);
        printf("secchan %s record of one 64 KiB msg, %-31s median %7.0f %s (min %.0f, max %.0f)\n",
               cipher, names[v], vals[v][RUNS / 2], v < 3 ? "ns" : "% ", vals[v][0],
               vals[v][RUNS - 1]);
    }
}

/* Seal in place and open in place of one 64 KiB frame, ns each (monotonic
 * clock around each call, summed), AES-256-GCM and AEGIS-128L alternating
 * within each run; the median, min and max over runs, and AEGIS / GCM. */
static void seal_open_split(struct swc_secchan_config ccfg, const struct swc_secchan_config *scfg,
                            const uint8_t *payload)
{
    enum { N = 1000 };
    static uint8_t frame[FRAME + SWC_SECCHAN_OVERHEAD];
    double v[4][RUNS], ratio[2][RUNS];
    for (int r = 0; r < RUNS; r++) {
        for (int k = 0; k < 2; k++) {
            struct swc_secchan *c, *s;
            ccfg.ciphers = k == 0 ? SWC_SECCHAN_AES256GCM : SWC_SECCHAN_AEGIS128L;
            handshake(&ccfg, scfg, &c, &s);
            int64_t seal_ns = 0, open_ns = 0;
            for (int i = 0; i < N; i++) {
                memcpy(frame, payload, FRAME);
                int64_t t0 = swc_now_mono();
                int rc = swc_secchan_seal_inplace(c, frame, FRAME);
                int64_t t1 = swc_now_mono();
                rc |= swc_secchan_open_inplace(s, frame, sizeof frame);
                int64_t t2 = swc_now_mono();
                if (rc != 0) {
                    abort();
                }
                seal_ns += t1 - t0;
                open_ns += t2 - t1;
            }
            v[2 * k][r] = (double)seal_ns / N;
            v[2 * k + 1][r] = (double)open_ns / N;
            swc_secchan_destroy(c);
            swc_secchan_destroy(s);
        }
        ratio[0][r] = 100.0 * v[2][r] / v[0][r];
        ratio[1][r] = 100.0 * v[3][r] / v[1][r];
    }
    static const char *names[] = {"AES-256-GCM seal", "AES-256-GCM open", "AEGIS-128L seal",
                                  "AEGIS-128L open"};
    for (int k = 0; k < 4; k++) {
        qsort(v[k], RUNS, sizeof(double), cmp);
        printf("secchan 64 KiB frame in place, %-17s median %7.0f ns (min %.0f, max %.0f)\n",
               names[k], v[k][RUNS / 2], v[k][0], v[k][RUNS - 1]);
    }
    for (int k = 0; k < 2; k++) {
        qsort(ratio[k], RUNS, sizeof(double), cmp);
        printf("secchan 64 KiB frame in place, AEGIS / GCM %s median %5.1f %% (min %.1f, max "
               "%.1f)\n",
               k == 0 ? "seal" : "open", ratio[k][RUNS / 2], ratio[k][0], ratio[k][RUNS - 1]);
    }
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
    } ciphers[] = {{SWC_SECCHAN_AEGIS128L, "AEGIS-128L"},
                   {SWC_SECCHAN_AES256GCM, "AES-256-GCM"},
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
    ccfg.ciphers = SWC_SECCHAN_AES256GCM;
    if (swc_secchan_create(&ccfg, &c) == 0) {
        swc_secchan_destroy(c);
        if (swc_aegis128l_available()) {
            seal_open_split(ccfg, &scfg, payload);
        }
        record_assembly(&ccfg, &scfg, payload, "AES-256-GCM");
    }
    ccfg.ciphers = SWC_SECCHAN_AEGIS128L;
    if (swc_aegis128l_available()) {
        record_assembly(&ccfg, &scfg, payload, "AEGIS-128L");
    }
    return 0;
}
