/* Helpers shared by the store's tests and benchmark: object builders, an
 * entry builder, a result recorder and a full consistency check that
 * recomputes every index and count from the records. Header-only so each
 * test binary links only swc_store. */
#ifndef SWC_TEST_STORE_UTIL_H
#define SWC_TEST_STORE_UTIL_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "store/store.h"

#define K_NODE      SWARMC__OBJECT_KIND__OBJECT_KIND_NODE
#define K_SERVICE   SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE
#define K_TASK      SWARMC__OBJECT_KIND__OBJECT_KIND_TASK
#define K_SECRET    SWARMC__OBJECT_KIND__OBJECT_KIND_SECRET
#define K_NETWORK   SWARMC__OBJECT_KIND__OBJECT_KIND_NETWORK
#define A_CREATE    SWARMC__STORE_ACTION_KIND__STORE_ACTION_CREATE
#define A_UPDATE    SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE
#define A_REMOVE    SWARMC__STORE_ACTION_KIND__STORE_ACTION_REMOVE
#define ST_NEW      SWARMC__TASK_STATE__TASK_STATE_NEW
#define ST_PENDING  SWARMC__TASK_STATE__TASK_STATE_PENDING
#define ST_ASSIGNED SWARMC__TASK_STATE__TASK_STATE_ASSIGNED
#define ST_RUNNING  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define ST_COMPLETE SWARMC__TASK_STATE__TASK_STATE_COMPLETE
#define ST_SHUTDOWN SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
#define ST_FAILED   SWARMC__TASK_STATE__TASK_STATE_FAILED

/* A deterministic 25-character id: prefix letter + number. */
static inline void tid(char out[26], char prefix, unsigned long n)
{
    snprintf(out, 26, "%c%024lu", prefix, n);
}

/* A realistic task (~300 bytes encoded) added to txn as action. */
static inline int txn_task(struct swc_store_txn *txn, int action, const char *id, const char *svc,
                           const char *node, uint64_t slot, int desired, int state,
                           uint64_t expected)
{
    Swarmc__Task t = SWARMC__TASK__INIT;
    Swarmc__TaskSpec spec = SWARMC__TASK_SPEC__INIT;
    Swarmc__ContainerSpec c = SWARMC__CONTAINER_SPEC__INIT;
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    char name[128], cid[65];
    char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG=C.UTF-8", "SERVICE_MODE=replicated"};
    snprintf(name, sizeof(name), "web.%" PRIu64 ".%s", slot, id);
    for (int i = 0; i < 64; i++) {
        cid[i] = "0123456789abcdef"[(id[i % 25] + i) & 15];
    }
    cid[64] = '\0';
    c.image = "registry.example.com/team/web:1.25.3";
    c.n_env = 3;
    c.env = env;
    spec.container = &c;
    ann.name = name;
    meta.created_at = 1764000000000000000LL;
    meta.updated_at = 1764000000000000000LL;
    st.state = (Swarmc__TaskState)state;
    st.timestamp = 1764000000000000000LL;
    st.message = "started";
    st.container_id = cid;
    t.id = (char *)id;
    t.meta = &meta;
    t.spec = &spec;
    t.spec_version = 1;
    t.service_id = (char *)svc;
    t.service_name = "web";
    t.slot = slot;
    t.node_id = (char *)node;
    t.annotations = &ann;
    t.desired_state = (Swarmc__TaskState)desired;
    t.status = &st;
    if (action == A_CREATE) {
        return swc_store_txn_create(txn, K_TASK, &t.base);
    }
    return swc_store_txn_update(txn, K_TASK, &t.base, expected);
}

/* A service / secret / node / network named name. */
static inline int txn_named(struct swc_store_txn *txn, int action, int kind, const char *id,
                            const char *name, uint64_t expected)
{
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    ann.name = (char *)name;
    switch (kind) {
    case K_SERVICE: {
        Swarmc__Service o = SWARMC__SERVICE__INIT;
        Swarmc__ServiceSpec spec = SWARMC__SERVICE_SPEC__INIT;
        spec.annotations = &ann;
        o.id = (char *)id;
        o.spec = &spec;
        return action == A_CREATE ? swc_store_txn_create(txn, kind, &o.base)
                                  : swc_store_txn_update(txn, kind, &o.base, expected);
    }
    case K_SECRET: {
        Swarmc__Secret o = SWARMC__SECRET__INIT;
        Swarmc__SecretSpec spec = SWARMC__SECRET_SPEC__INIT;
        spec.annotations = &ann;
        spec.data.data = (uint8_t *)"hunter2";
        spec.data.len = 7;
        o.id = (char *)id;
        o.spec = &spec;
        return action == A_CREATE ? swc_store_txn_create(txn, kind, &o.base)
                                  : swc_store_txn_update(txn, kind, &o.base, expected);
    }
    case K_NODE: {
        Swarmc__Node o = SWARMC__NODE__INIT;
        Swarmc__NodeSpec spec = SWARMC__NODE_SPEC__INIT;
        spec.annotations = &ann;
        o.id = (char *)id;
        o.spec = &spec;
        return action == A_CREATE ? swc_store_txn_create(txn, kind, &o.base)
                                  : swc_store_txn_update(txn, kind, &o.base, expected);
    }
    default: {
        Swarmc__Network o = SWARMC__NETWORK__INIT;
        Swarmc__NetworkSpec spec = SWARMC__NETWORK_SPEC__INIT;
        spec.annotations = &ann;
        o.id = (char *)id;
        o.spec = &spec;
        return action == A_CREATE ? swc_store_txn_create(txn, kind, &o.base)
                                  : swc_store_txn_update(txn, kind, &o.base, expected);
    }
    }
}

/* Results of the last applied entry. */
struct results {
    int n;
    int code[64];
    uint64_t pid[64];
    char msg[64][SWC_ERRMSG_SIZE];
    char proposer[64][32];
};

static inline void results_cb(void *data, uint64_t raft_index, uint64_t proposal_id,
                              const char *proposer, int code, const char *msg)
{
    struct results *r = data;
    (void)raft_index;
    if (r != NULL && r->n < 64) {
        r->code[r->n] = code;
        r->pid[r->n] = proposal_id;
        snprintf(r->msg[r->n], sizeof(r->msg[0]), "%s", msg);
        snprintf(r->proposer[r->n], sizeof(r->proposer[0]), "%s", proposer);
        r->n++;
    }
}

/* Apply txns as one entry at index; results into *res (may be NULL). */
static inline int apply_txns(struct swc_store *s, uint64_t index, struct swc_store_txn *txns, int n,
                             struct results *res)
{
    struct swc_buf t, batch;
    int rv = 0;
    swc_buf_init(&t);
    swc_buf_init(&batch);
    for (int i = 0; i < n && rv == 0; i++) {
        t.len = 0;
        rv = swc_store_txn_encode(&txns[i], &t);
        if (rv == 0) {
            rv = swc_store_batch_append(&batch, t.data, t.len);
        }
    }
    if (res != NULL) {
        memset(res, 0, sizeof(*res));
    }
    if (rv == 0) {
        rv = swc_store_apply_entry(s, index, batch.data, batch.len, results_cb, res);
    }
    swc_buf_free(&t);
    swc_buf_free(&batch);
    return rv;
}

/* Apply one transaction as one entry and free it. */
static inline int apply1(struct swc_store *s, uint64_t index, struct swc_store_txn *txn,
                         struct results *res)
{
    int rv = apply_txns(s, index, txn, 1, res);
    swc_store_txn_free(txn);
    return rv;
}

static inline size_t iter_count(struct swc_store_iter *it)
{
    struct swc_store_obj o;
    size_t n = 0;
    while (swc_store_iter_next(it, &o)) {
        n++;
    }
    return n;
}

/* Recompute every index and count from the records and compare with what
 * the store answers (for every task up to 3,000 tasks, every 97th above);
 * returns the number of mismatches (0 = consistent). */
static inline int store_check(const struct swc_store *s)
{
    int bad = 0;
    struct swc_store_iter it, it2;
    struct swc_store_obj o, o2;
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        size_t n = 0;
        swc_store_iter_kind(s, k, &it);
        while (swc_store_iter_next(&it, &o)) {
            n++;
            if (swc_store_get(s, k, o.id, &o2) != 0 || o2.blob != o.blob) {
                bad++;
            }
            if (o.name[0] != '\0' &&
                (swc_store_find_by_name(s, k, o.name, &o2) != 0 || strcmp(o2.id, o.id) != 0)) {
                bad++;
            }
            /* the per-task walks cost O(list); sample big stores */
            if (k != K_TASK || (swc_store_count(s, K_TASK) > 3000 && n % 97 != 1)) {
                continue;
            }
            /* the task must be on each of its lists, and lists hold only matches */
            int found = 0;
            if (o.service_id[0] != '\0') {
                swc_store_iter_service_tasks(s, o.service_id, &it2);
                while (swc_store_iter_next(&it2, &o2)) {
                    found += o2.blob == o.blob;
                    bad += strcmp(o2.service_id, o.service_id) != 0;
                }
                bad += found != 1;
                found = 0;
                swc_store_iter_slot_tasks(s, o.service_id, o.slot, &it2);
                while (swc_store_iter_next(&it2, &o2)) {
                    found += o2.blob == o.blob;
                    bad += o2.slot != o.slot || strcmp(o2.service_id, o.service_id) != 0;
                }
                bad += found != 1;
            }
            if (o.node_id[0] != '\0') {
                found = 0;
                swc_store_iter_node_tasks(s, o.node_id, &it2);
                while (swc_store_iter_next(&it2, &o2)) {
                    found += o2.blob == o.blob;
                    bad += strcmp(o2.node_id, o.node_id) != 0;
                }
                bad += found != 1;
            }
            found = 0;
            swc_store_iter_desired_state(s, o.desired_state, &it2);
            while (swc_store_iter_next(&it2, &o2)) {
                found += o2.blob == o.blob;
                bad += o2.desired_state != o.desired_state;
            }
            bad += found != 1;
            found = 0;
            swc_store_iter_state(s, o.state, &it2);
            while (swc_store_iter_next(&it2, &o2)) {
                found += o2.blob == o.blob;
                bad += o2.state != o.state;
            }
            bad += found != 1;
            /* counts of its service, recomputed */
            if (o.service_id[0] != '\0') {
                struct swc_store_counts c, want = {0};
                swc_store_iter_service_tasks(s, o.service_id, &it2);
                while (swc_store_iter_next(&it2, &o2)) {
                    want.total++;
                    want.desired += o2.desired_state <= ST_RUNNING;
                    want.running += o2.state == ST_RUNNING && o2.desired_state == ST_RUNNING;
                    want.completed += o2.state == ST_COMPLETE;
                }
                swc_store_service_counts(s, o.service_id, &c);
                bad += memcmp(&c, &want, sizeof(c)) != 0;
            }
        }
        bad += n != swc_store_count(s, k);
    }
    return bad;
}

/* True when a and b hold the same objects (kind, id, version, bytes). */
static inline bool store_equal(const struct swc_store *a, const struct swc_store *b)
{
    struct swc_store_iter it;
    struct swc_store_obj o, o2;
    if (swc_store_index(a) != swc_store_index(b)) {
        return false;
    }
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        if (swc_store_count(a, k) != swc_store_count(b, k)) {
            return false;
        }
        swc_store_iter_kind(a, k, &it);
        while (swc_store_iter_next(&it, &o)) {
            if (swc_store_get(b, k, o.id, &o2) != 0 || o2.version != o.version ||
                o2.blob->len != o.blob->len ||
                memcmp(o2.blob->data, o.blob->data, o.blob->len) != 0 ||
                strcmp(o.name, o2.name) != 0) {
                return false;
            }
        }
    }
    return true;
}

/* Fill s with ntasks tasks spread over nservices services and 97 nodes (a
 * third of them pending), the services named svc-N, one secret, one node and
 * one network, applied 1,000 tasks per entry; 0, or -1 on any failure. */
static inline int fill_store(struct swc_store *s, int ntasks, int nservices)
{
    struct swc_store_txn t;
    char id[26], svc[26], node[26];
    uint64_t index = swc_store_index(s);
    for (int base = 0; base < ntasks; base += 1000) {
        if (swc_store_txn_init(&t, 1, "1") != 0) {
            return -1;
        }
        for (int i = base; i < base + 1000 && i < ntasks; i++) {
            tid(id, 't', (unsigned long)i);
            tid(svc, 's', (unsigned long)(i % nservices));
            tid(node, 'n', (unsigned long)(i % 97));
            if (txn_task(&t, A_CREATE, id, svc, node, (uint64_t)(i / nservices) + 1, ST_RUNNING,
                         i % 3 ? ST_RUNNING : ST_PENDING, 0) != 0) {
                swc_store_txn_free(&t);
                return -1;
            }
        }
        if (base == 0) {
            for (int i = 0; i < nservices; i++) {
                char name[32];
                tid(svc, 's', (unsigned long)i);
                snprintf(name, sizeof(name), "svc-%d", i);
                txn_named(&t, A_CREATE, K_SERVICE, svc, name, 0);
            }
            txn_named(&t, A_CREATE, K_SECRET, "x000000000000000000000001", "tls-key", 0);
            txn_named(&t, A_CREATE, K_NODE, "n000000000000000000000001", "", 0);
            txn_named(&t, A_CREATE, K_NETWORK, "w000000000000000000000001", "ingress", 0);
        }
        struct results r = {0};
        if (apply1(s, ++index, &t, &r) != 0 || r.code[0] != 0) {
            return -1;
        }
    }
    return 0;
}

#endif
