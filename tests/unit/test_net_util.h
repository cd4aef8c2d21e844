/* Helpers shared by the tests that open secure channels: an identity (key
 * pair and a certificate signed by a given CA key). Header-only; include it
 * after cmocka.h. */
#ifndef SWC_TEST_NET_UTIL_H
#define SWC_TEST_NET_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "net/cert.h"

/* Fill id with a fresh key pair and a certificate for node in cluster with
 * role, valid until not_after (wall ns), signed by signer_sk. */
static inline void swc_test_identity(struct swc_identity *id, const char *node, int role,
                                     const char *cluster, int64_t not_after,
                                     const uint8_t *signer_sk)
{
    struct swc_cert c;
    struct swc_buf b;
    memset(id, 0, sizeof *id);
    memset(&c, 0, sizeof c);
    swc_keypair_new(id->public_key, id->secret_key);
    snprintf(c.node_id, sizeof c.node_id, "%s", node);
    snprintf(c.cluster_id, sizeof c.cluster_id, "%s", cluster);
    c.role = role;
    memcpy(c.public_key, id->public_key, SWC_SIGN_PK_LEN);
    c.not_after = not_after;
    assert_int_equal(swc_cert_sign(&c, signer_sk), 0);
    swc_buf_init(&b);
    assert_int_equal(swc_cert_encode(&c, &b), 0);
    memcpy(id->cert, b.data, b.len);
    id->cert_len = b.len;
    swc_buf_free(&b);
}

#endif
