/* The control API (DESIGN §6.1), served by every manager on the control
 * socket and the cluster port.
 *
 * Reads answer from the local store. Writes validate first (an invalid spec
 * gets an error naming the field and nothing is written), then propose one
 * transaction and reply once it is applied, with the stored object. A write
 * reaching a manager that is not the leader is refused with SWC_ENOTLEADER
 * and the leader's address. Every reply carries Error{code, message}. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "manager/manager_int.h"
#include "manager/spec.h"

#define MOD         "control"
#define HISTORY_MAX 10

/* ---- replies ------------------------------------------------------------------- */

/* Reply with a response message whose field 1 is Error: we set it here. */
static void reply_msg(struct swc_rpc_req *req, ProtobufCMessage *resp, Swarmc__Error *errfield)
{
    size_t len;
    (void)errfield;
    uint8_t *buf = swc_pb_pack(resp, &len);
    if (buf == NULL) {
        swc_rpc_reply(req, SWC_ENOMEM, "out of memory", NULL, 0);
        return;
    }
    swc_rpc_reply(req, 0, NULL, buf, len);
    swc_free(buf);
}

/* Reply with just an error: every *Response has `Error error = 1`, so a
 * message holding only field 1 decodes as any of them. */
static void reply_error(struct swc_rpc_req *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct swc_rpc_req *req, int code, const char *fmt, ...)
{
    char msg[SWC_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    Swarmc__RemoveServiceResponse r = SWARMC__REMOVE_SERVICE_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    e.code = (uint32_t)code;
    e.message = msg;
    r.error = &e;
    reply_msg(req, &r.base, &e);
}

/* ---- forwarding ------------------------------------------------------------------ */

struct forward {
    struct swc_manager *m;
    struct swc_rpc_req *req;
};

static void forwarded(struct swc_rpc_call *call, int status, const char *errmsg,
                      const uint8_t *payload, size_t len, void *data)
{
    struct forward *f = data;
    if (status == 0) {
        swc_rpc_reply(f->req, 0, NULL, payload, len);
    } else {
        reply_error(f->req, status == SWC_ECANCELED ? SWC_EUNAVAIL : status,
                    "forward to the leader: %s",
                    errmsg != NULL && errmsg[0] ? errmsg : swc_strerror(status));
    }
    swc_free(f);
}

static void leader_conn_closed(struct swc_rpc_conn *conn, int status, void *data)
{
    struct swc_manager *m = data;
    if (m->leader_conn == conn) {
        m->leader_conn = NULL;
        swc_rpc_conn_close(conn, NULL, NULL);
    }
}

void swc_control_forward(struct swc_manager *m, struct swc_rpc_req *req, const uint8_t *payload,
                         size_t len)
{
    char addr[SWC_RAFT_ADDR_MAX] = "";
    swc_manager_leader_addr(m, addr, sizeof addr);
    if (addr[0] == '\0') {
        reply_error(req, SWC_EUNAVAIL,
                    "no leader is known right now (election in progress?): retry in a moment");
        return;
    }
    if (m->leader_conn != NULL && strcmp(m->leader_conn_addr, addr) != 0) {
        swc_rpc_conn_close(m->leader_conn, NULL, NULL);
        m->leader_conn = NULL;
    }
    if (m->leader_conn == NULL) {
        struct swc_rpc_conn_opts o = {0};
        o.secure = m->has_client_secure ? &m->client_secure : NULL;
        o.on_close = leader_conn_closed;
        o.data = m;
        if (swc_rpc_connect(m->loop, addr, &o, &m->leader_conn) != 0) {
            m->leader_conn = NULL;
            reply_error(req, SWC_EUNAVAIL, "cannot reach the leader at %s", addr);
            return;
        }
        snprintf(m->leader_conn_addr, sizeof m->leader_conn_addr, "%s", addr);
    }
    struct forward *f = swc_malloc(sizeof *f);
    if (f == NULL) {
        reply_error(req, SWC_ENOMEM, "out of memory");
        return;
    }
    f->m = m;
    f->req = req;
    int rv = swc_rpc_call(m->leader_conn, swc_rpc_req_method(req), payload, len, 60000, forwarded,
                          f, NULL);
    if (rv != 0) {
        swc_free(f);
        reply_error(req, SWC_EUNAVAIL, "forward to the leader at %s: %s", addr, swc_strerror(rv));
    }
}

/* Writes run on the leader: a follower forwards the request as it came. */
#define LEADER_ONLY(m, req, p, len)                                                                \
    do {                                                                                           \
        if (!(m)->leader) {                                                                        \
            swc_control_forward((m), (req), (p), (len));                                           \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* ---- lookups ------------------------------------------------------------------- */

static int resolve(struct swc_manager *m, int kind, const char *ref, struct swc_store_obj *o)
{
    size_t nmatch = 0;
    if (ref == NULL || ref[0] == '\0') {
        return SWC_EINVAL;
    }
    if (swc_store_get(m->store, kind, ref, o) == 0) {
        return 0;
    }
    if (swc_store_find_by_name(m->store, kind, ref, o) == 0) {
        return 0;
    }
    if (kind == SWARMC__OBJECT_KIND__OBJECT_KIND_NODE) {
        /* nodes are also known by hostname */
        struct swc_store_iter it;
        swc_store_iter_kind(m->store, kind, &it);
        while (swc_store_iter_next(&it, o)) {
            Swarmc__Node *n = (Swarmc__Node *)swc_store_decode(o, NULL);
            bool hit = n != NULL && n->description != NULL && n->description->hostname != NULL &&
                       strcmp(n->description->hostname, ref) == 0;
            if (n != NULL) {
                swc_store_free_decoded(&n->base);
            }
            if (hit) {
                return 0;
            }
        }
    }
    int rv = swc_store_find_by_prefix(m->store, kind, ref, o, &nmatch);
    return rv;
}

static bool resolve_or_reply(struct swc_manager *m, struct swc_rpc_req *req, int kind,
                             const char *ref, struct swc_store_obj *o)
{
    int rv = resolve(m, kind, ref, o);
    if (rv == 0) {
        return true;
    }
    const char *k = swc_store_kind_name(kind);
    if (rv == SWC_EEXIST) {
        reply_error(req, SWC_EINVAL,
                    "%s reference \"%s\" is ambiguous: use more characters of the id", k, ref);
    } else if (rv == SWC_EINVAL) {
        reply_error(req, SWC_EINVAL, "no %s given", k);
    } else {
        reply_error(req, SWC_ENOENT, "%s %s not found", k, ref);
    }
    return false;
}

/* ---- write plumbing ------------------------------------------------------------- */

struct pending_write {
    struct swc_manager *m;
    struct swc_rpc_req *req;
    int kind;
    char id[SWC_STORE_ID_MAX + 1];
    int resp; /* which response to build */
};

enum {
    RESP_OBJECT, /* reply with the written object */
    RESP_REMOVE, /* reply with the error only */
};

/* Every write's response is shaped {Error error = 1; <object> = 2;}
 * (CreateServiceResponse, UpdateNodeResponse, ...; a remove has no
 * object), so the reply is encoded once here for all of them: an empty
 * Error, then the stored object as field 2. */
static void reply_with_object(struct swc_rpc_req *req, const ProtobufCMessage *obj)
{
    size_t olen = obj != NULL ? protobuf_c_message_get_packed_size(obj) : 0;
    uint8_t *buf = swc_malloc(olen + 16);
    size_t n = 0;
    if (buf == NULL) {
        swc_rpc_reply(req, SWC_ENOMEM, "out of memory", NULL, 0);
        return;
    }
    buf[n++] = 0x0a; /* field 1, length-delimited: an empty Error */
    buf[n++] = 0x00;
    if (obj != NULL) {
        buf[n++] = 0x12; /* field 2, length-delimited */
        for (size_t v = olen;; v >>= 7) {
            buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            if (v <= 0x7f) {
                break;
            }
        }
        protobuf_c_message_pack(obj, buf + n);
        n += olen;
    }
    swc_rpc_reply(req, 0, NULL, buf, n);
    swc_free(buf);
}

static void write_done(void *data, int result, const char *msg)
{
    struct pending_write *w = data;
    struct swc_manager *m = w->m;
    if (result != 0) {
        reply_error(w->req, result, "%s", msg != NULL && msg[0] ? msg : swc_strerror(result));
        swc_free(w);
        return;
    }
    ProtobufCMessage *obj = NULL;
    if (w->resp != RESP_REMOVE) {
        obj = swc_store_get_decoded(m->store, w->kind, w->id, NULL);
    }
    reply_with_object(w->req, obj);
    swc_store_free_decoded(obj);
    swc_free(w);
}

/* Propose one action on obj (or a remove) and reply when applied. */
static void write_one(struct swc_manager *m, struct swc_rpc_req *req, int action, int kind,
                      const char *id, const ProtobufCMessage *obj, uint64_t version, int resp)
{
    struct swc_store_txn t;
    struct pending_write *w = swc_calloc(1, sizeof *w);
    if (w == NULL || swc_store_txn_init(&t, ++m->proposal_seq, m->node_id) != 0) {
        swc_free(w);
        reply_error(req, SWC_ENOMEM, "out of memory");
        return;
    }
    w->m = m;
    w->req = req;
    w->kind = kind;
    w->resp = resp;
    snprintf(w->id, sizeof w->id, "%s", id);
    int rv;
    if (action == SWARMC__STORE_ACTION_KIND__STORE_ACTION_CREATE) {
        rv = swc_store_txn_create(&t, kind, obj);
    } else if (action == SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE) {
        rv = swc_store_txn_update(&t, kind, obj, version);
    } else {
        rv = swc_store_txn_remove(&t, kind, id, version);
    }
    if (rv == 0) {
        rv = swc_manager_write(m, &t, write_done, w);
    }
    swc_store_txn_free(&t);
    if (rv != 0) {
        swc_free(w);
        reply_error(req, rv, "write %s %s: %s", swc_store_kind_name(kind), id, swc_strerror(rv));
    }
}

/* ---- services ------------------------------------------------------------------- */

static bool name_taken(struct swc_manager *m, const char *name, const char *except_id)
{
    struct swc_store_obj o;
    return swc_store_find_by_name(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, name, &o) ==
               0 &&
           (except_id == NULL || strcmp(o.id, except_id) != 0);
}

static void h_create_service(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_err err;
    LEADER_ONLY(m, req, p, len);
    Swarmc__CreateServiceRequest *r =
        swarmc__create_service_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL || r->spec == NULL) {
        reply_error(req, SWC_EINVAL, "create service: no spec in the request");
        goto out;
    }
    if (swc_spec_fill_defaults(r->spec) != 0) {
        reply_error(req, SWC_ENOMEM, "out of memory");
        goto out;
    }
    if (swc_spec_validate(r->spec, &err) != 0) {
        reply_error(req, err.code, "%s", swc_err_msg(&err));
        goto out;
    }
    if (name_taken(m, r->spec->annotations->name, NULL)) {
        reply_error(req, SWC_EEXIST,
                    "service name \"%s\" is already in use: choose another --name or remove the "
                    "existing service",
                    r->spec->annotations->name);
        goto out;
    }
    if (swc_pipeline_check_ports(m->store, NULL, r->spec->annotations->name, r->spec->endpoint,
                                 &err) != 0) {
        reply_error(req, err.code, "publish: %s", swc_err_msg(&err));
        goto out;
    }
    Swarmc__Service s = SWARMC__SERVICE__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    char id[SWC_ID_LEN + 1];
    swc_id_new(id);
    s.id = id;
    meta.created_at = meta.updated_at = swc_now_wall();
    s.meta = &meta;
    s.spec = r->spec;
    s.spec_version = 1;
    s.endpoint = NULL;
    Swarmc__JobStatus js = SWARMC__JOB_STATUS__INIT;
    if (r->spec->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB ||
        r->spec->mode_case == SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB) {
        js.job_iteration = 1;
        js.last_execution = meta.created_at;
        s.job_status = &js;
    }
    write_one(m, req, SWARMC__STORE_ACTION_KIND__STORE_ACTION_CREATE,
              SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, id, &s.base, 0, RESP_OBJECT);
out:
    if (r != NULL) {
        swarmc__create_service_request__free_unpacked(r, &swc_pb_allocator);
    }
}

/* Get{Service,Task,Node}Request are all {string ref = 1;} and their
 * responses {Error error = 1; <object> = 2;}: one lookup serves the three. */
static void get_object(struct swc_manager *m, struct swc_rpc_req *req, int kind, const uint8_t *p,
                       size_t len)
{
    Swarmc__GetServiceRequest *r = swarmc__get_service_request__unpack(&swc_pb_allocator, len, p);
    struct swc_store_obj o;
    if (r == NULL) {
        reply_error(req, SWC_EPROTO, "undecodable request");
        return;
    }
    if (resolve_or_reply(m, req, kind, r->ref, &o)) {
        ProtobufCMessage *obj = swc_store_decode(&o, NULL);
        if (obj == NULL) {
            reply_error(req, SWC_ENOMEM, "out of memory");
        } else {
            reply_with_object(req, obj);
            swc_store_free_decoded(obj);
        }
    }
    swarmc__get_service_request__free_unpacked(r, &swc_pb_allocator);
}

static void h_get_service(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    get_object(data, req, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, p, len);
}

/* Replace svc's spec with spec: keep the previous one and a bounded history. */
static int set_spec(Swarmc__Service *svc, Swarmc__ServiceSpec *spec, Swarmc__SpecRevision *rev,
                    Swarmc__SpecRevision **hist, size_t *nhist)
{
    /* history: the old revisions plus the outgoing spec, newest last */
    size_t n = 0;
    for (size_t i = 0; i < svc->n_history && n < HISTORY_MAX - 1; i++) {
        size_t skip = svc->n_history > HISTORY_MAX - 1 ? svc->n_history - (HISTORY_MAX - 1) : 0;
        if (i < skip) {
            continue;
        }
        hist[n++] = svc->history[i];
    }
    swarmc__spec_revision__init(rev);
    rev->spec_version = svc->spec_version;
    rev->spec = svc->spec;
    hist[n++] = rev;
    *nhist = n;
    svc->previous_spec = svc->spec;
    svc->previous_spec_version = svc->spec_version;
    svc->spec = spec;
    svc->spec_version++;
    return 0;
}

static void h_update_service(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_err err;
    struct swc_store_obj o;
    Swarmc__Service *svc = NULL;
    LEADER_ONLY(m, req, p, len);
    Swarmc__UpdateServiceRequest *r =
        swarmc__update_service_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        reply_error(req, SWC_EPROTO, "undecodable request");
        return;
    }
    if (!resolve_or_reply(m, req, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, r->ref, &o)) {
        goto out;
    }
    if (r->version != 0 && r->version != o.version) {
        reply_error(req, SWC_ECONFLICT,
                    "service %s changed since you read it (version %llu, now %llu): read it again "
                    "and retry",
                    o.id, (unsigned long long)r->version, (unsigned long long)o.version);
        goto out;
    }
    svc = (Swarmc__Service *)swc_store_decode(&o, NULL);
    if (svc == NULL) {
        reply_error(req, SWC_ENOMEM, "out of memory");
        goto out;
    }
    Swarmc__ServiceSpec *newspec = NULL;
    if (r->rollback) {
        if (r->rollback_to_revision != 0) {
            for (size_t i = 0; i < svc->n_history; i++) {
                if (svc->history[i]->spec_version == r->rollback_to_revision) {
                    newspec = svc->history[i]->spec;
                }
            }
            if (newspec == NULL) {
                reply_error(req, SWC_ENOENT, "service %s has no revision %llu in its history",
                            svc->spec->annotations->name,
                            (unsigned long long)r->rollback_to_revision);
                goto out;
            }
        } else if (svc->previous_spec == NULL) {
            reply_error(req, SWC_ESTATE, "service %s has no previous spec to roll back to",
                        svc->spec->annotations->name);
            goto out;
        } else {
            newspec = svc->previous_spec;
        }
    } else {
        if (r->spec == NULL) {
            reply_error(req, SWC_EINVAL, "update service: no spec in the request");
            goto out;
        }
        if (swc_spec_fill_defaults(r->spec) != 0) {
            reply_error(req, SWC_ENOMEM, "out of memory");
            goto out;
        }
        if (swc_spec_validate(r->spec, &err) != 0) {
            reply_error(req, err.code, "%s", swc_err_msg(&err));
            goto out;
        }
        if (r->spec->mode_case != svc->spec->mode_case) {
            reply_error(req, SWC_EINVAL,
                        "mode: a service's mode cannot change; remove and create it again");
            goto out;
        }
        if (name_taken(m, r->spec->annotations->name, svc->id)) {
            reply_error(req, SWC_EEXIST, "service name \"%s\" is already in use",
                        r->spec->annotations->name);
            goto out;
        }
        if (swc_pipeline_check_ports(m->store, svc->id, r->spec->annotations->name,
                                     r->spec->endpoint, &err) != 0) {
            reply_error(req, err.code, "publish: %s", swc_err_msg(&err));
            goto out;
        }
        newspec = r->spec;
    }
    Swarmc__ServiceSpec *old_spec = svc->spec, *old_prev = svc->previous_spec;
    Swarmc__SpecRevision **old_hist = svc->history;
    size_t old_nhist = svc->n_history;
    uint64_t old_ver = svc->spec_version, old_prev_ver = svc->previous_spec_version;
    Swarmc__SpecRevision rev, *hist[HISTORY_MAX];
    size_t nhist = 0;
    set_spec(svc, newspec, &rev, hist, &nhist);
    svc->history = hist;
    svc->n_history = nhist;
    Swarmc__UpdateStatus us = SWARMC__UPDATE_STATUS__INIT, *old_us = svc->update_status;
    us.state = r->rollback ? SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_STARTED
                           : SWARMC__UPDATE_STATE__UPDATE_STATE_UPDATING;
    us.started_at = swc_now_wall();
    us.message = r->rollback ? "manually requested rollback" : "update in progress";
    svc->update_status = &us;
    Swarmc__JobStatus js = SWARMC__JOB_STATUS__INIT, *old_js = svc->job_status;
    if (old_js != NULL) {
        js = *old_js;
        js.job_iteration++;
        js.last_execution = us.started_at;
        svc->job_status = &js;
    }
    write_one(m, req, SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE,
              SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, svc->id, &svc->base, o.version,
              RESP_OBJECT);
    /* give the decoded object its own pointers back before freeing it */
    svc->spec = old_spec;
    svc->previous_spec = old_prev;
    svc->history = old_hist;
    svc->n_history = old_nhist;
    svc->spec_version = old_ver;
    svc->previous_spec_version = old_prev_ver;
    svc->update_status = old_us;
    svc->job_status = old_js;
out:
    if (svc != NULL) {
        swc_store_free_decoded(&svc->base);
    }
    swarmc__update_service_request__free_unpacked(r, &swc_pb_allocator);
}

static void h_scale_service(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_store_obj o;
    LEADER_ONLY(m, req, p, len);
    Swarmc__ScaleServiceRequest *r =
        swarmc__scale_service_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        reply_error(req, SWC_EPROTO, "undecodable request");
        return;
    }
    if (resolve_or_reply(m, req, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, r->ref, &o)) {
        Swarmc__Service *svc = (Swarmc__Service *)swc_store_decode(&o, NULL);
        if (svc == NULL) {
            reply_error(req, SWC_ENOMEM, "out of memory");
        } else if (svc->spec->mode_case != SWARMC__SERVICE_SPEC__MODE_REPLICATED) {
            reply_error(req, SWC_EINVAL, "scale: service %s is not in replicated mode",
                        svc->spec->annotations->name);
        } else if (r->replicas > SWC_SPEC_MAX_REPLICAS) {
            reply_error(req, SWC_EINVAL, "replicas: %llu is more than the limit of %d",
                        (unsigned long long)r->replicas, SWC_SPEC_MAX_REPLICAS);
        } else {
            /* Scaling changes only the count: no new spec version, no rolling. */
            svc->spec->replicated->replicas = r->replicas;
            write_one(m, req, SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE,
                      SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, svc->id, &svc->base, o.version,
                      RESP_OBJECT);
        }
        swc_store_free_decoded(&svc->base);
    }
    swarmc__scale_service_request__free_unpacked(r, &swc_pb_allocator);
}

static void h_remove_service(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_store_obj o;
    LEADER_ONLY(m, req, p, len);
    Swarmc__RemoveServiceRequest *r =
        swarmc__remove_service_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        reply_error(req, SWC_EPROTO, "undecodable request");
        return;
    }
    if (resolve_or_reply(m, req, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, r->ref, &o)) {
        /* The reaper deletes the tasks, which tells workers to remove them. */
        write_one(m, req, SWARMC__STORE_ACTION_KIND__STORE_ACTION_REMOVE,
                  SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, o.id, NULL, o.version, RESP_REMOVE);
    }
    swarmc__remove_service_request__free_unpacked(r, &swc_pb_allocator);
}

/* Count the tasks of service_id per status.state into c->states (only the
 * states that occur, in enum order; one allocation for the entries and one
 * for the pointers, states[0] heads the entries). 0 or SWC_ENOMEM. */
static int fill_state_counts(struct swc_manager *m, const char *service_id,
                             Swarmc__ServiceCounts *c)
{
    const ProtobufCEnumDescriptor *d = &swarmc__task_state__descriptor;
    uint64_t n[64] = {0};
    size_t nv = d->n_values < 64 ? d->n_values : 64, used = 0;
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_service_tasks(m->store, service_id, &it);
    while (swc_store_iter_next(&it, &o)) {
        for (size_t i = 0; i < nv; i++) {
            if (d->values[i].value == o.state) {
                used += n[i]++ == 0;
                break;
            }
        }
    }
    c->n_states = 0;
    c->states = NULL;
    if (used == 0) {
        return 0;
    }
    Swarmc__TaskStateCount *e = swc_calloc(used, sizeof *e);
    c->states = swc_calloc(used, sizeof *c->states);
    if (e == NULL || c->states == NULL) {
        swc_free(e);
        swc_free(c->states);
        c->states = NULL;
        return SWC_ENOMEM;
    }
    /* the descriptor lists values in declaration order: NEW, PENDING, ... */
    for (size_t i = 0; i < nv; i++) {
        if (n[i] == 0) {
            continue;
        }
        swarmc__task_state_count__init(&e[c->n_states]);
        e[c->n_states].state = (Swarmc__TaskState)d->values[i].value;
        e[c->n_states].count = n[i];
        c->states[c->n_states] = &e[c->n_states];
        c->n_states++;
    }
    return 0;
}

/* ---- tasks ---------------------------------------------------------------------- */

/* Write v as a protobuf varint into out (10 bytes at most); its length. */
static size_t varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    return n;
}

/* Read a varint at *p (< end); false when it is cut or too long. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if ((c & 0x80) == 0) {
            return true;
        }
    }
    return false;
}

/* Skip the value of one field of wire type wt; false when malformed. */
static bool skip_value(const uint8_t **p, const uint8_t *end, unsigned wt)
{
    uint64_t v;
    switch (wt) {
    case 0:
        return read_varint(p, end, &v);
    case 1:
    case 5:
        v = wt == 1 ? 8 : 4;
        break;
    case 2:
        if (!read_varint(p, end, &v)) {
            return false;
        }
        break;
    default:
        return false;
    }
    if (v > (uint64_t)(end - *p)) {
        return false;
    }
    *p += v;
    return true;
}

/* Append a stored task as length-delimited field `field` of the message
 * being built, with its Meta's version (Task.meta = 2, Meta.version = 1) set
 * to version as swc_store_decode does, by rewriting the wire bytes instead
 * of decoding and packing the task again. SWC_EPROTO on bytes that do not
 * parse (never for what the store accepted), SWC_ENOMEM. */
static int append_versioned(struct swc_buf *b, unsigned field, const uint8_t *obj, size_t len,
                            uint64_t version)
{
    const uint8_t *p = obj, *end = obj + len, *meta = NULL;
    size_t meta_len = 0;
    while (p < end) { /* find the task's Meta (the last one wins, as in a parser) */
        uint64_t key, l;
        if (!read_varint(&p, end, &key)) {
            return SWC_EPROTO;
        }
        if (key == (2 << 3 | 2)) {
            if (!read_varint(&p, end, &l) || l > (uint64_t)(end - p)) {
                return SWC_EPROTO;
            }
            meta = p;
            meta_len = (size_t)l;
            p += l;
        } else if (!skip_value(&p, end, (unsigned)(key & 7))) {
            return SWC_EPROTO;
        }
    }
    /* the new Meta: its fields but version, then version */
    uint8_t vbuf[11] = {0x08};
    size_t vlen = 1 + varint(vbuf + 1, version);
    const uint8_t *q = meta, *mend = meta + meta_len;
    struct swc_buf nm;
    swc_buf_init(&nm);
    while (q != NULL && q < mend) {
        const uint8_t *fstart = q;
        uint64_t key;
        if (!read_varint(&q, mend, &key) || !skip_value(&q, mend, (unsigned)(key & 7))) {
            swc_buf_free(&nm);
            return SWC_EPROTO;
        }
        if ((key >> 3) != 1 && swc_buf_append(&nm, fstart, (size_t)(q - fstart)) != 0) {
            swc_buf_free(&nm);
            return SWC_ENOMEM;
        }
    }
    if (swc_buf_append(&nm, vbuf, vlen) != 0) {
        swc_buf_free(&nm);
        return SWC_ENOMEM;
    }
    /* field header, the task's bytes, then the new Meta (a later Meta
     * replaces the stored one when parsed) */
    uint8_t head[20], mhead[11] = {0x12};
    size_t mhlen = 1 + varint(mhead + 1, nm.len);
    size_t hlen = varint(head, (uint64_t)field << 3 | 2);
    hlen += varint(head + hlen, len + mhlen + nm.len);
    int rc = 0;
    if (swc_buf_append(b, head, hlen) != 0 || swc_buf_append(b, obj, len) != 0 ||
        swc_buf_append(b, mhead, mhlen) != 0 || swc_buf_append(b, nm.data, nm.len) != 0) {
        rc = SWC_ENOMEM;
    }
    swc_buf_free(&nm);
    return rc;
}

/* The last length-delimited field num of the message in p[0..len); false
 * when absent or malformed. */
static bool find_bytes_field(const uint8_t *p, size_t len, unsigned num, const uint8_t **val,
                             size_t *vlen)
{
    const uint8_t *end = p + len;
    bool found = false;
    while (p < end) {
        uint64_t key, l;
        if (!read_varint(&p, end, &key)) {
            return false;
        }
        if ((key & 7) == 2 && (key >> 3) == num) {
            if (!read_varint(&p, end, &l) || l > (uint64_t)(end - p)) {
                return false;
            }
            *val = p;
            *vlen = (size_t)l;
            found = true;
            p += l;
        } else if (!skip_value(&p, end, (unsigned)(key & 7))) {
            return false;
        }
    }
    return found;
}

/* Append the length-delimited field [f, end) of a stored object to out
 * with only the sub-fields numbered in keep (bit n = field n < 32): the
 * table needs a few of a status's fields, and each byte less is one less
 * to build, copy through the socket and decode. 0, SWC_EPROTO, SWC_ENOMEM. */
static int append_sub(struct swc_buf *out, const uint8_t *f, const uint8_t *end, uint32_t keep)
{
    const uint8_t *p = f, *v;
    uint64_t key, vlen;
    if (!read_varint(&p, end, &key) || (key & 7) != 2 || !read_varint(&p, end, &vlen) ||
        vlen != (uint64_t)(end - p)) {
        return SWC_EPROTO;
    }
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            uint8_t h[20];
            size_t hl = varint(h, key);
            hl += varint(h + hl, n);
            if (swc_buf_append(out, h, hl) != 0) {
                return SWC_ENOMEM;
            }
        }
        for (v = p; v < end;) {
            const uint8_t *sf = v;
            uint64_t sk;
            if (!read_varint(&v, end, &sk) || !skip_value(&v, end, (unsigned)(sk & 7))) {
                return SWC_EPROTO;
            }
            if ((sk >> 3) >= 32 || (keep & (1u << (sk >> 3))) == 0) {
                continue;
            }
            if (pass == 0) {
                n += (size_t)(v - sf);
            } else if (swc_buf_append(out, sf, (size_t)(v - sf)) != 0) {
                return SWC_ENOMEM;
            }
        }
    }
    return 0;
}

/* Copy into out (emptied first) the fields of a stored task that a task
 * table shows (ListTasksRequest.table_fields): every top-level field but
 * spec, annotations, endpoint and the like, of the spec only
 * container.image (Task.spec = 3, TaskSpec.container = 1, image = 1), of
 * the meta only created_at and of the status only timestamp, state, err
 * and port_status.
 * SWC_EPROTO on bytes that do not parse, SWC_ENOMEM. */
static int table_fields(struct swc_buf *out, const uint8_t *obj, size_t len)
{
    const uint8_t *p = obj, *end = obj + len;
    out->len = 0;
    while (p < end) {
        const uint8_t *fstart = p;
        uint64_t key;
        if (!read_varint(&p, end, &key) || !skip_value(&p, end, (unsigned)(key & 7))) {
            return SWC_EPROTO;
        }
        int rc = 0;
        switch (key >> 3) {
        case 1:  /* id */
        case 5:  /* service_id */
        case 6:  /* slot */
        case 7:  /* node_id */
        case 9:  /* service_name */
        case 10: /* desired_state */
            rc = swc_buf_append(out, fstart, (size_t)(p - fstart));
            break;
        case 2: /* meta: created_at (the reply appends the version) */
            rc = append_sub(out, fstart, p, 1u << 2);
            break;
        case 11: /* status: timestamp, state, err, port_status */
            rc = append_sub(out, fstart, p, 1u << 1 | 1u << 2 | 1u << 4 | 1u << 8);
            break;
        default:
            break;
        }
        if (rc != 0) {
            return rc;
        }
    }
    const uint8_t *spec, *ctr, *image;
    size_t spec_len, ctr_len, image_len;
    if (find_bytes_field(obj, len, 3, &spec, &spec_len) &&
        find_bytes_field(spec, spec_len, 1, &ctr, &ctr_len) &&
        find_bytes_field(ctr, ctr_len, 1, &image, &image_len)) {
        uint8_t scratch[10];
        /* spec { container { image } } */
        size_t il = 1 + varint(scratch, image_len) + image_len; /* image field */
        size_t cl = 1 + varint(scratch, il) + il;               /* container field */
        uint8_t h[36];
        size_t hl = 0;
        h[hl++] = 3 << 3 | 2;
        hl += varint(h + hl, cl);
        h[hl++] = 1 << 3 | 2;
        hl += varint(h + hl, il);
        h[hl++] = 1 << 3 | 2;
        hl += varint(h + hl, image_len);
        if (swc_buf_append(out, h, hl) != 0 || swc_buf_append(out, image, image_len) != 0) {
            return SWC_ENOMEM;
        }
    }
    return 0;
}

/* A set of borrowed id strings (open addressing, FNV-1a); the store's
 * strings stay valid for the loop turn that builds a reply. */
struct id_set {
    const char **slots;
    size_t n, cap;
};

static uint64_t id_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

/* Add id (borrowed) unless present; 0 or SWC_ENOMEM. */
static int id_set_add(struct id_set *set, const char *id)
{
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        const char **slots = swc_calloc(cap, sizeof *slots);
        if (slots == NULL) {
            return SWC_ENOMEM;
        }
        for (size_t i = 0; i < set->cap; i++) {
            if (set->slots[i] != NULL) {
                size_t k = id_hash(set->slots[i]) & (cap - 1);
                while (slots[k] != NULL) {
                    k = (k + 1) & (cap - 1);
                }
                slots[k] = set->slots[i];
            }
        }
        swc_free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    size_t k = id_hash(id) & (set->cap - 1);
    while (set->slots[k] != NULL) {
        if (strcmp(set->slots[k], id) == 0) {
            return 0;
        }
        k = (k + 1) & (set->cap - 1);
    }
    set->slots[k] = id;
    set->n++;
    return 0;
}

/* Desired replicas of a replicated service, read from its stored bytes
 * (Service.spec = 3, ServiceSpec.replicated = 3 in the mode oneof, whose
 * last member present wins, ReplicatedService.replicas = 1); false for
 * the other modes or bytes that do not parse. */
static bool stored_replicas(const uint8_t *svc, size_t len, uint64_t *replicas)
{
    const uint8_t *spec, *p, *end, *rep = NULL;
    size_t spec_len;
    uint64_t key, l, mode = 0;
    if (!find_bytes_field(svc, len, 3, &spec, &spec_len)) {
        return false;
    }
    for (p = spec, end = spec + spec_len; p < end;) {
        if (!read_varint(&p, end, &key)) {
            return false;
        }
        if ((key >> 3) >= 3 && (key >> 3) <= 6) {
            mode = key >> 3;
            rep = p;
        }
        if (!skip_value(&p, end, (unsigned)(key & 7))) {
            return false;
        }
    }
    if (mode != 3 || !read_varint(&rep, end, &l) || l > (uint64_t)(end - rep)) {
        return false;
    }
    *replicas = 0;
    for (p = rep, end = rep + l; p < end;) {
        if (!read_varint(&p, end, &key)) {
            return false;
        }
        if (key == (1 << 3 | 0)) {
            if (!read_varint(&p, end, replicas)) {
                return false;
            }
        } else if (!skip_value(&p, end, (unsigned)(key & 7))) {
            return false;
        }
    }
    return true;
}

/* Services go out as their stored bytes (with the version, as tasks do in
 * ListTasks): decoding and packing again 1,000 services was most of
 * `service ls`. The counts are packed after them (field order does not
 * matter on the wire). */
static void h_list_services(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    int64_t t0 = swc_now_mono();
    Swarmc__ListServicesRequest *r =
        swarmc__list_services_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        reply_error(req, SWC_EPROTO, "undecodable request");
        return;
    }
    size_t n = swc_store_count(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE), k = 0;
    Swarmc__ServiceCounts *counts = swc_calloc(n + 1, sizeof *counts);
    Swarmc__ServiceCounts **cptr = swc_calloc(n + 1, sizeof *cptr);
    struct swc_buf raw;
    uint8_t *head = NULL;
    swc_buf_init(&raw);
    if (counts == NULL || cptr == NULL) {
        reply_error(req, SWC_ENOMEM, "out of memory");
        goto out;
    }
    struct swc_store_iter it;
    struct swc_store_obj o;
    size_t prefix = r->name_prefix != NULL ? strlen(r->name_prefix) : 0;
    swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, &it);
    while (swc_store_iter_next(&it, &o) && k < n) {
        if (prefix > 0 && strncmp(o.name, r->name_prefix, prefix) != 0) {
            continue;
        }
        size_t at = raw.len;
        int rc = append_versioned(&raw, 2, o.blob->data, o.blob->len, o.version);
        if (rc == SWC_EPROTO) {
            raw.len = at; /* a record that does not parse is left out, as before */
            continue;
        }
        if (rc != 0) {
            reply_error(req, rc, "out of memory");
            goto out;
        }
        struct swc_store_counts c;
        uint64_t replicas;
        swc_store_service_counts(m->store, o.id, &c);
        swarmc__service_counts__init(&counts[k]);
        counts[k].service_id = (char *)o.id; /* the store's: valid this turn */
        counts[k].running = c.running;
        counts[k].desired = c.desired;
        counts[k].completed = c.completed;
        if (stored_replicas(o.blob->data, o.blob->len, &replicas)) {
            counts[k].desired = replicas;
        }
        if (r->state_counts && fill_state_counts(m, o.id, &counts[k]) != 0) {
            k++; /* freed below with the others */
            reply_error(req, SWC_ENOMEM, "out of memory");
            goto out;
        }
        cptr[k] = &counts[k];
        k++;
    }
    Swarmc__ListServicesResponse resp = SWARMC__LIST_SERVICES_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    size_t head_len;
    resp.error = &e;
    resp.n_counts = k;
    resp.counts = cptr;
    head = swc_pb_pack(&resp.base, &head_len);
    if (head == NULL || swc_buf_append(&raw, head, head_len) != 0) {
        reply_error(req, SWC_ENOMEM, "out of memory");
        goto out;
    }
    swc_rpc_reply(req, 0, NULL, raw.data, raw.len);
    swc_tracef("control", "ListServices: %zu services, %zu bytes in %.2f ms", k, raw.len,
               (double)(swc_now_mono() - t0) / 1e6);
out:
    for (size_t i = 0; counts != NULL && i < k; i++) {
        if (counts[i].n_states > 0) {
            swc_free(counts[i].states[0]);
        }
        swc_free(counts[i].states);
    }
    swc_free(head);
    swc_buf_free(&raw);
    swc_free(counts);
    swc_free(cptr);
    swarmc__list_services_request__free_unpacked(r, &swc_pb_allocator);
}

static void h_list_tasks(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    int64_t t0 = swc_now_mono();
    Swarmc__ListTasksRequest *r = swarmc__list_tasks_request__unpack(&swc_pb_allocator, len, p);
    struct swc_store_obj so, no;
    struct swc_store_iter it;
    struct swc_store_obj o;
    if (r == NULL) {
        reply_error(req, SWC_EPROTO, "undecodable request");
        return;
    }
    bool by_service = r->service_ref != NULL && r->service_ref[0] != '\0';
    bool by_node = r->node_ref != NULL && r->node_ref[0] != '\0';
    if (by_service &&
        !resolve_or_reply(m, req, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, r->service_ref, &so)) {
        goto done;
    }
    if (by_node &&
        !resolve_or_reply(m, req, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, r->node_ref, &no)) {
        goto done;
    }
    char svc_id[SWC_STORE_ID_MAX + 1] = "", node_id[SWC_STORE_ID_MAX + 1] = "";
    if (by_service) {
        snprintf(svc_id, sizeof svc_id, "%s", so.id);
    }
    if (by_node) {
        snprintf(node_id, sizeof node_id, "%s", no.id);
    }
    /* Size the reply first (an upper bound: stored bytes plus the Meta
     * and headers each record gets), so it is built without regrowing a
     * multi-megabyte buffer (each regrow copies what is there). */
    size_t need = 64;
    for (int pass = 0; pass < 2; pass++) {
        if (by_service) {
            swc_store_iter_service_tasks(m->store, svc_id, &it);
        } else if (by_node) {
            swc_store_iter_node_tasks(m->store, node_id, &it);
        } else {
            swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, &it);
        }
        while (pass == 0 && swc_store_iter_next(&it, &o)) {
            need += o.blob->len + 96;
        }
    }
    /* Tasks go out as their stored bytes (field 2 of the reply, one
     * length-delimited record each) followed by a Meta holding only the
     * version: a parser merges the two Meta fields, so the reply decodes as
     * if each task had been decoded, versioned and packed again, without
     * doing it (10k tasks: most of the reply's cost). */
    struct swc_buf raw, slim;
    struct id_set ids = {0};
    swc_buf_init(&raw);
    swc_buf_init(&slim);
    if (swc_buf_reserve(&raw, need) != 0) {
        reply_error(req, SWC_ENOMEM, "out of memory");
        goto done;
    }
    size_t prefix = r->name_prefix != NULL ? strlen(r->name_prefix) : 0;
    while (swc_store_iter_next(&it, &o)) {
        if (by_node && strcmp(o.node_id, node_id) != 0) {
            continue;
        }
        if (r->n_desired_states > 0) {
            bool ok = false;
            for (size_t i = 0; i < r->n_desired_states; i++) {
                ok |= (int)r->desired_states[i] == o.desired_state;
            }
            if (!ok) {
                continue;
            }
        }
        if (prefix > 0) {
            Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
            bool match = t != NULL && t->annotations != NULL && t->annotations->name != NULL &&
                         strncmp(t->annotations->name, r->name_prefix, prefix) == 0;
            swc_store_free_decoded(t != NULL ? &t->base : NULL);
            if (!match) {
                continue;
            }
        }
        int rc;
        if (r->table_fields) {
            rc = table_fields(&slim, o.blob->data, o.blob->len);
            if (rc == 0) {
                rc = append_versioned(&raw, 2, slim.data, slim.len, o.version);
            }
        } else {
            rc = append_versioned(&raw, 2, o.blob->data, o.blob->len, o.version);
        }
        if (rc == 0 && o.node_id != NULL && o.node_id[0] != '\0') {
            rc = id_set_add(&ids, o.node_id);
        }
        if (rc != 0) {
            swc_buf_free(&raw);
            swc_buf_free(&slim);
            swc_free(ids.slots);
            reply_error(req, rc, "%s",
                        rc == SWC_ENOMEM ? "out of memory" : "a stored task does not parse");
            goto done;
        }
    }
    /* node id -> hostname for display: only the nodes the listed tasks are
     * on (a fleet keeps thousands of nodes, most of them in no listing) */
    size_t nn = ids.n, j = 0;
    Swarmc__ListTasksResponse__NodeNamesEntry *ents = swc_calloc(nn + 1, sizeof *ents);
    Swarmc__ListTasksResponse__NodeNamesEntry **eptr = swc_calloc(nn + 1, sizeof *eptr);
    struct swc_buf hosts; /* the hostnames, NUL-terminated, back to back */
    swc_buf_init(&hosts);
    if (ents != NULL && eptr != NULL) {
        /* hostname = Node.description (4) .hostname (1), read from the
         * stored bytes: decoding whole nodes was most of a 10k-task reply
         * when the tasks had been on thousands of nodes */
        size_t *off = swc_calloc(nn + 1, sizeof *off);
        for (size_t i = 0; off != NULL && i < ids.cap && j < nn; i++) {
            struct swc_store_obj no2;
            const uint8_t *desc, *host;
            size_t desc_len, host_len;
            if (ids.slots[i] == NULL ||
                swc_store_get(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, ids.slots[i],
                              &no2) != 0) {
                continue; /* a removed node: the CLI shows its id */
            }
            if (!find_bytes_field(no2.blob->data, no2.blob->len, 4, &desc, &desc_len) ||
                !find_bytes_field(desc, desc_len, 1, &host, &host_len) || host_len == 0) {
                host = (const uint8_t *)no2.id;
                host_len = strlen(no2.id);
            }
            off[j] = hosts.len;
            if (swc_buf_append(&hosts, host, host_len) != 0 || swc_buf_append(&hosts, "", 1) != 0) {
                break;
            }
            swarmc__list_tasks_response__node_names_entry__init(&ents[j]);
            ents[j].key = (char *)ids.slots[i];
            eptr[j] = &ents[j];
            j++;
        }
        for (size_t i = 0; off != NULL && i < j; i++) {
            ents[i].value = (char *)hosts.data + off[i]; /* hosts no longer moves */
        }
        if (off == NULL) {
            j = 0;
        }
        swc_free(off);
    }
    Swarmc__ListTasksResponse resp = SWARMC__LIST_TASKS_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    resp.error = &e;
    resp.n_node_names = j;
    resp.node_names = eptr;
    size_t head_len;
    uint8_t *head = swc_pb_pack(&resp.base, &head_len);
    if (head == NULL || swc_buf_append(&raw, head, head_len) != 0) {
        reply_error(req, SWC_ENOMEM, "out of memory");
    } else {
        swc_rpc_reply(req, 0, NULL, raw.data, raw.len);
        swc_tracef("control", "ListTasks: %zu bytes, %zu nodes in %.2f ms", raw.len, j,
                   (double)(swc_now_mono() - t0) / 1e6);
    }
    swc_free(head);
    swc_buf_free(&raw);
    swc_free(ents);
    swc_free(eptr);
    swc_buf_free(&hosts);
    swc_free(ids.slots);
    swc_buf_free(&slim);
done:
    swarmc__list_tasks_request__free_unpacked(r, &swc_pb_allocator);
}

static void h_get_task(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    get_object(data, req, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, p, len);
}

/* ---- nodes ---------------------------------------------------------------------- */

/* Whether the raft member at cluster address addr is reachable (as the
 * leader last heard; self is always reachable). */
static bool member_reachable(const struct swc_raft_member *members, size_t n, const char *addr,
                             bool self)
{
    if (self) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        char host[SWC_RAFT_ADDR_MAX];
        snprintf(host, sizeof host, "%s", members[i].address);
        char *colon = strrchr(host, ':');
        if (colon == NULL) {
            continue;
        }
        *colon = '\0';
        char caddr[SWC_RAFT_ADDR_MAX + 16];
        snprintf(caddr, sizeof caddr, "%s:%d", host, atoi(colon + 1) - 1);
        if (strcmp(caddr, addr) == 0) {
            return members[i].reachable || members[i].leader;
        }
    }
    return false;
}

static void h_list_nodes(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    Swarmc__ListNodesRequest *r = swarmc__list_nodes_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        reply_error(req, SWC_EPROTO, "undecodable request");
        return;
    }
    size_t n = swc_store_count(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE), k = 0;
    Swarmc__Node **nodes = swc_calloc(n + 1, sizeof *nodes);
    Swarmc__ManagerStatus *ms = swc_calloc(n + 1, sizeof *ms);
    struct swc_store_iter it;
    struct swc_store_obj o;
    char leader_addr[SWC_RAFT_ADDR_MAX] = "";
    struct swc_raft_member *members = NULL;
    size_t nmembers = 0;
    swc_manager_leader_addr(m, leader_addr, sizeof leader_addr);
    swc_raft_members(m->raft, &members, &nmembers);
    swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &it);
    while (nodes != NULL && ms != NULL && swc_store_iter_next(&it, &o) && k < n) {
        Swarmc__Node *node = (Swarmc__Node *)swc_store_decode(&o, NULL);
        if (node == NULL) {
            continue;
        }
        const char *role = r->role != NULL ? r->role : "";
        if ((strcmp(role, "manager") == 0 && node->role != SWARMC__NODE_ROLE__NODE_ROLE_MANAGER) ||
            (strcmp(role, "worker") == 0 && node->role != SWARMC__NODE_ROLE__NODE_ROLE_WORKER)) {
            swc_store_free_decoded(&node->base);
            continue;
        }
        if (node->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER && node->manager_status == NULL) {
            /* Managers are matched to raft members by address (the cluster
             * address is the raft address minus one, docs/design.md). */
            const char *addr =
                node->status != NULL && node->status->addr != NULL ? node->status->addr : "";
            swarmc__manager_status__init(&ms[k]);
            ms[k].addr = node->status != NULL ? node->status->addr : NULL;
            ms[k].leader = (strcmp(node->id, m->node_id) == 0 && m->leader) ||
                           (leader_addr[0] != '\0' && strcmp(addr, leader_addr) == 0);
            ms[k].reachability =
                member_reachable(members, nmembers, addr, strcmp(node->id, m->node_id) == 0)
                    ? SWARMC__REACHABILITY__REACHABILITY_REACHABLE
                    : SWARMC__REACHABILITY__REACHABILITY_UNREACHABLE;
            node->manager_status = &ms[k];
        }
        nodes[k++] = node;
    }
    Swarmc__ListNodesResponse resp = SWARMC__LIST_NODES_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    resp.error = &e;
    resp.n_nodes = k;
    resp.nodes = nodes;
    resp.self_id = m->node_id;
    reply_msg(req, &resp.base, &e);
    for (size_t i = 0; i < k; i++) {
        if (nodes[i]->manager_status >= ms && nodes[i]->manager_status < ms + n + 1) {
            nodes[i]->manager_status = NULL;
        }
        swc_store_free_decoded(&nodes[i]->base);
    }
    swc_free(nodes);
    swc_free(ms);
    swc_free(members);
    swarmc__list_nodes_request__free_unpacked(r, &swc_pb_allocator);
}

static void h_get_node(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    get_object(data, req, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, p, len);
}

/* A manager may be demoted when it is not the last one, not this leader
 * (raft would have to hand leadership over first), and the managers left
 * after its removal still make a quorum. Replies and returns false if not. */
static bool demotion_allowed(struct swc_manager *m, struct swc_rpc_req *req,
                             const Swarmc__Node *node)
{
    struct swc_raft_member *members = NULL;
    size_t n = 0, voters = 0, reachable = 0;
    uint64_t target = 0;
    const char *addr = node->status != NULL && node->status->addr != NULL ? node->status->addr : "";
    bool is_member = addr[0] != '\0' && swc_manager_member_by_addr(m, addr, &target) == 0;
    swc_raft_members(m->raft, &members, &n);
    for (size_t i = 0; i < n; i++) {
        if (!members[i].voter) {
            continue;
        }
        voters++;
        if (members[i].id != target && (members[i].reachable || members[i].leader)) {
            reachable++;
        }
    }
    swc_free(members);
    bool self = strcmp(node->id, m->node_id) == 0;
    if (voters <= 1 || (self && voters <= 1)) {
        reply_error(req, SWC_EQUORUM,
                    "node %s is the last manager: demoting it would leave the cluster without "
                    "managers",
                    node->id);
        return false;
    }
    if (self) {
        reply_error(req, SWC_ESTATE,
                    "node %s is the leader: demoting the leader is not supported yet; stop its "
                    "daemon so that another manager leads, then demote it from there",
                    node->id);
        return false;
    }
    size_t left = is_member ? voters - 1 : voters;
    if (reachable < left / 2 + 1) {
        reply_error(req, SWC_EQUORUM,
                    "demoting node %s would lose the quorum: only %zu of the %zu managers left "
                    "are reachable",
                    node->id, reachable, left);
        return false;
    }
    return true;
}

static void h_update_node(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_store_obj o;
    LEADER_ONLY(m, req, p, len);
    Swarmc__UpdateNodeRequest *r = swarmc__update_node_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL || r->spec == NULL) {
        reply_error(req, SWC_EINVAL, "update node: no spec in the request");
        goto out;
    }
    if (resolve_or_reply(m, req, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, r->ref, &o)) {
        if (r->version != 0 && r->version != o.version) {
            reply_error(req, SWC_ECONFLICT,
                        "node %s changed since you read it: read it again and retry", o.id);
            goto out;
        }
        Swarmc__Node *node = (Swarmc__Node *)swc_store_decode(&o, NULL);
        if (node == NULL) {
            reply_error(req, SWC_ENOMEM, "out of memory");
            goto out;
        }
        if (r->spec->desired_role == SWARMC__NODE_ROLE__NODE_ROLE_WORKER &&
            (node->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER || strcmp(o.id, m->node_id) == 0) &&
            !demotion_allowed(m, req, node)) {
            swc_store_free_decoded(&node->base);
            goto out;
        }
        Swarmc__NodeSpec *old = node->spec;
        node->spec = r->spec;
        write_one(m, req, SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE,
                  SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, node->id, &node->base, o.version,
                  RESP_OBJECT);
        node->spec = old;
        swc_store_free_decoded(&node->base);
    }
out:
    if (r != NULL) {
        swarmc__update_node_request__free_unpacked(r, &swc_pb_allocator);
    }
}

/* Remove the node and add its id to Cluster.removed_nodes in one
 * transaction: from then on its sessions and renewals are refused. */
static void remove_node_write(struct swc_manager *m, struct swc_rpc_req *req, const char *id,
                              uint64_t version)
{
    struct swc_store_txn t;
    struct swc_store_iter it;
    struct swc_store_obj co;
    Swarmc__Cluster *c = NULL;
    struct pending_write *w = swc_calloc(1, sizeof *w);
    swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &it);
    if (swc_store_iter_next(&it, &co)) {
        c = (Swarmc__Cluster *)swc_store_decode(&co, NULL);
    }
    if (w == NULL || c == NULL || swc_store_txn_init(&t, ++m->proposal_seq, m->node_id) != 0) {
        swc_free(w);
        if (c != NULL) {
            swc_store_free_decoded(&c->base);
        }
        reply_error(req, c == NULL ? SWC_EUNAVAIL : SWC_ENOMEM,
                    c == NULL ? "the cluster object is not written yet" : "out of memory");
        return;
    }
    w->m = m;
    w->req = req;
    w->kind = SWARMC__OBJECT_KIND__OBJECT_KIND_NODE;
    w->resp = RESP_REMOVE;
    snprintf(w->id, sizeof w->id, "%s", id);
    char **ids = swc_calloc(c->n_removed_nodes + 1, sizeof *ids);
    int rv = ids == NULL ? SWC_ENOMEM : 0;
    if (rv == 0) {
        char **old = c->removed_nodes;
        size_t nold = c->n_removed_nodes;
        memcpy(ids, old, nold * sizeof *ids);
        ids[nold] = (char *)id;
        c->removed_nodes = ids;
        c->n_removed_nodes = nold + 1;
        rv = swc_store_txn_remove(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, id, version);
        if (rv == 0) {
            rv = swc_store_txn_update(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &c->base,
                                      co.version);
        }
        c->removed_nodes = old;
        c->n_removed_nodes = nold;
    }
    swc_free(ids);
    swc_store_free_decoded(&c->base);
    if (rv == 0) {
        rv = swc_manager_write(m, &t, write_done, w);
    }
    swc_store_txn_free(&t);
    if (rv != 0) {
        swc_free(w);
        reply_error(req, rv, "remove node %s: %s", id, swc_strerror(rv));
    }
}

static void h_remove_node(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_store_obj o;
    LEADER_ONLY(m, req, p, len);
    Swarmc__RemoveNodeRequest *r = swarmc__remove_node_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        reply_error(req, SWC_EPROTO, "undecodable request");
        return;
    }
    if (resolve_or_reply(m, req, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, r->ref, &o)) {
        Swarmc__Node *node = (Swarmc__Node *)swc_store_decode(&o, NULL);
        if (node == NULL) {
            reply_error(req, SWC_ENOMEM, "out of memory");
        } else if (node->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER) {
            reply_error(req, SWC_ESTATE,
                        "node %s is a manager: demote it first (swarmc node demote %s)", o.id,
                        o.id);
        } else if (!r->force && node->status != NULL &&
                   node->status->state == SWARMC__NODE_STATE__NODE_STATE_READY) {
            reply_error(
                req, SWC_ESTATE,
                "node %s is not down and can't be removed: stop its daemon first, or use --force",
                o.id);
        } else {
            remove_node_write(m, req, o.id, o.version);
        }
        if (node != NULL) {
            swc_store_free_decoded(&node->base);
        }
    }
    swarmc__remove_node_request__free_unpacked(r, &swc_pb_allocator);
}

/* ---- service logs ------------------------------------------------------------------ */

/* "control.ServiceLogs" fans out to "worker.Logs" on every node holding one
 * of the service's tasks (over the secure channel, as this manager) and
 * relays their LogMessages, adding task and node names. Without follow the
 * stream ends when every node's stream has; with follow it stays open until
 * the client cancels. Tasks created after the request are not followed. */

struct slog_pending {
    struct slog_pending *next;
    size_t len;
    uint8_t data[];
};

struct slog_task {
    char id[SWC_STORE_ID_MAX + 1];
    char *name;
};

struct slog_node {
    struct slogs *s;
    char id[SWC_STORE_ID_MAX + 1];
    char *name;
    struct swc_rpc_conn *conn;
    struct swc_rpc_call *call;
    bool open;
};

struct slogs {
    struct swc_manager *m;
    struct swc_rpc_req *req;
    struct slog_task *tasks;
    size_t ntasks;
    struct slog_node *nodes;
    size_t nnodes, open;
    bool canceled, finished, waiting;
    struct slog_pending *head, *tail;
};

static void slogs_free(struct slogs *s)
{
    while (s->head != NULL) {
        struct slog_pending *p = s->head;
        s->head = p->next;
        swc_free(p);
    }
    for (size_t i = 0; i < s->ntasks; i++) {
        swc_free(s->tasks[i].name);
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        swc_free(s->nodes[i].name);
        if (s->nodes[i].conn != NULL) {
            swc_rpc_conn_close(s->nodes[i].conn, NULL, NULL);
        }
    }
    swc_free(s->tasks);
    swc_free(s->nodes);
    swc_free(s);
}

static void slogs_flush(struct slogs *s);
static void slogs_maybe_finish(struct slogs *s);

static void slogs_writable(struct swc_rpc_req *req, int status, void *data)
{
    struct slogs *s = data;
    (void)req;
    s->waiting = false;
    if (status == 0 && !s->finished) {
        slogs_flush(s);
        slogs_maybe_finish(s);
    }
}

static void slogs_flush(struct slogs *s)
{
    while (s->head != NULL && !s->canceled) {
        int rv = swc_rpc_send(s->req, s->head->data, s->head->len);
        if (rv == SWC_EBUSY) {
            if (!s->waiting) {
                s->waiting = true;
                swc_rpc_req_on_writable(s->req, slogs_writable, s);
            }
            return;
        }
        struct slog_pending *p = s->head;
        s->head = p->next;
        swc_free(p);
    }
    if (s->head == NULL) {
        s->tail = NULL;
    }
}

static void slogs_send(struct slogs *s, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    struct slog_pending *p = swc_malloc(sizeof *p + len + 1);
    if (p == NULL || s->canceled) {
        swc_free(p);
        return;
    }
    protobuf_c_message_pack(msg, p->data);
    p->len = len;
    p->next = NULL;
    if (s->tail != NULL) {
        s->tail->next = p;
    } else {
        s->head = p;
    }
    s->tail = p;
    slogs_flush(s);
}

/* Every node stream is done: end the client's stream (once what is queued
 * went out: a stream end after queued messages would drop them). */
static void slogs_maybe_finish(struct slogs *s)
{
    if (s->open > 0 || s->finished) {
        return;
    }
    if (s->head != NULL && !s->canceled) {
        return; /* slogs_writable finishes */
    }
    s->finished = true;
    swc_rpc_end(s->req, s->canceled ? SWC_ECANCELED : 0, NULL);
    slogs_free(s);
}

static void slog_msg(struct swc_rpc_call *call, const uint8_t *payload, size_t len, void *data)
{
    struct slog_node *n = data;
    struct slogs *s = n->s;
    (void)call;
    Swarmc__LogMessage *lm = swarmc__log_message__unpack(&swc_pb_allocator, len, payload);
    if (lm == NULL) {
        return;
    }
    char *old_tn = lm->task_name, *old_nn = lm->node_name;
    for (size_t i = 0; i < s->ntasks; i++) {
        if (lm->task_id != NULL && strcmp(s->tasks[i].id, lm->task_id) == 0) {
            lm->task_name = s->tasks[i].name;
        }
    }
    lm->node_name = n->name;
    slogs_send(s, &lm->base);
    lm->task_name = old_tn;
    lm->node_name = old_nn;
    swarmc__log_message__free_unpacked(lm, &swc_pb_allocator);
}

static void slog_end(struct swc_rpc_call *call, int status, const char *errmsg, void *data)
{
    struct slog_node *n = data;
    struct slogs *s = n->s;
    (void)call;
    n->open = false;
    n->call = NULL;
    if (status != 0 && !s->canceled && status != SWC_ECANCELED) {
        char msg[SWC_ERRMSG_SIZE];
        Swarmc__LogMessage lm = SWARMC__LOG_MESSAGE__INIT;
        Swarmc__Error e = SWARMC__ERROR__INIT;
        snprintf(msg, sizeof msg, "node %s: cannot get logs: %s", n->name,
                 errmsg != NULL && errmsg[0] ? errmsg : swc_strerror(status));
        e.code = (uint32_t)status;
        e.message = msg;
        lm.error = &e;
        lm.node_id = n->id;
        lm.node_name = n->name;
        slogs_send(s, &lm.base);
    }
    s->open--;
    slogs_maybe_finish(s);
}

static void slogs_canceled(struct swc_rpc_req *req, int status, void *data)
{
    struct slogs *s = data;
    (void)req;
    (void)status;
    s->canceled = true;
    for (size_t i = 0; i < s->nnodes; i++) {
        if (s->nodes[i].open && s->nodes[i].call != NULL) {
            swc_rpc_cancel(s->nodes[i].call);
        }
    }
    slogs_maybe_finish(s);
}

static char *node_display_name(const Swarmc__Node *node, const char *id)
{
    return swc_strdup(node != NULL && node->description != NULL &&
                              node->description->hostname != NULL &&
                              node->description->hostname[0] != '\0'
                          ? node->description->hostname
                          : id);
}

/* Open "worker.Logs" on node n for its tasks. */
static int slogs_open_node(struct slogs *s, struct slog_node *n, const char *addr, bool follow,
                           uint64_t tail)
{
    struct swc_manager *m = s->m;
    struct swc_secchan_config sc;
    struct swc_rpc_conn_opts o = {0};
    if (m->has_client_secure) {
        sc = m->client_secure;
        sc.required_peer_role = -1; /* workers serve logs too */
        o.secure = &sc;
    }
    if (swc_rpc_connect(m->loop, addr, &o, &n->conn) != 0) {
        n->conn = NULL;
        return SWC_EUNAVAIL;
    }
    size_t k = 0;
    char **ids = swc_calloc(s->ntasks + 1, sizeof *ids);
    if (ids == NULL) {
        return SWC_ENOMEM;
    }
    struct swc_store_obj o2;
    for (size_t i = 0; i < s->ntasks; i++) {
        if (swc_store_get(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, s->tasks[i].id, &o2) ==
                0 &&
            strcmp(o2.node_id, n->id) == 0) {
            ids[k++] = s->tasks[i].id;
        }
    }
    Swarmc__WorkerLogsRequest r = SWARMC__WORKER_LOGS_REQUEST__INIT;
    r.n_task_ids = k;
    r.task_ids = ids;
    r.follow = follow;
    r.tail = tail;
    size_t len;
    uint8_t *buf = swc_pb_pack(&r.base, &len);
    swc_free(ids);
    if (buf == NULL) {
        return SWC_ENOMEM;
    }
    int rv =
        swc_rpc_stream_open(n->conn, "worker.Logs", buf, len, 0, slog_msg, slog_end, n, &n->call);
    swc_free(buf);
    if (rv == 0) {
        n->open = true;
        s->open++;
    }
    return rv;
}

static void h_service_logs(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_store_obj so, o;
    struct swc_store_iter it;
    Swarmc__ServiceLogsRequest *r = swarmc__service_logs_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL) {
        swc_rpc_end(req, SWC_EPROTO, "service logs: undecodable request");
        return;
    }
    int rv = resolve(m, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, r->service_ref, &so);
    if (rv != 0) {
        char msg[SWC_ERRMSG_SIZE];
        if (rv == SWC_EEXIST) {
            snprintf(msg, sizeof msg,
                     "service reference \"%s\" is ambiguous: use more characters of the id",
                     r->service_ref);
        } else if (rv == SWC_EINVAL) {
            snprintf(msg, sizeof msg, "no service given");
        } else {
            snprintf(msg, sizeof msg, "service %s not found", r->service_ref);
        }
        swc_rpc_end(req, rv == SWC_EEXIST || rv == SWC_EINVAL ? SWC_EINVAL : SWC_ENOENT, msg);
        swarmc__service_logs_request__free_unpacked(r, &swc_pb_allocator);
        return;
    }
    struct slogs *s = swc_calloc(1, sizeof *s);
    size_t cap = 0;
    swc_store_iter_service_tasks(m->store, so.id, &it);
    while (swc_store_iter_next(&it, &o)) {
        cap++;
    }
    if (s != NULL) {
        s->tasks = swc_calloc(cap + 1, sizeof *s->tasks);
        s->nodes = swc_calloc(cap + 1, sizeof *s->nodes);
    }
    if (s == NULL || s->tasks == NULL || s->nodes == NULL) {
        if (s != NULL) {
            swc_free(s->tasks);
            swc_free(s->nodes);
            swc_free(s);
        }
        swc_rpc_end(req, SWC_ENOMEM, "out of memory");
        swarmc__service_logs_request__free_unpacked(r, &swc_pb_allocator);
        return;
    }
    s->m = m;
    s->req = req;
    swc_store_iter_service_tasks(m->store, so.id, &it);
    while (swc_store_iter_next(&it, &o) && s->ntasks < cap) {
        if (o.node_id == NULL || o.node_id[0] == '\0') {
            continue;
        }
        struct slog_task *t = &s->tasks[s->ntasks++];
        snprintf(t->id, sizeof t->id, "%s", o.id);
        Swarmc__Task *task = (Swarmc__Task *)swc_store_decode(&o, NULL);
        /* <service>.<slot>.<id>, as the containers are named */
        const char *tn = task != NULL && task->annotations != NULL &&
                                 task->annotations->name != NULL &&
                                 task->annotations->name[0] != '\0'
                             ? task->annotations->name
                             : NULL;
        t->name = swc_malloc(SWC_STORE_ID_MAX + (tn != NULL ? strlen(tn) : 0) + 2);
        if (t->name != NULL && tn != NULL && strstr(tn, o.id) == NULL) {
            sprintf(t->name, "%s.%s", tn, o.id);
        } else if (t->name != NULL) {
            sprintf(t->name, "%s", tn != NULL ? tn : o.id);
        }
        if (task != NULL) {
            swc_store_free_decoded(&task->base);
        }
        bool known = false;
        for (size_t i = 0; i < s->nnodes; i++) {
            known |= strcmp(s->nodes[i].id, o.node_id) == 0;
        }
        if (!known) {
            struct slog_node *n = &s->nodes[s->nnodes++];
            n->s = s;
            snprintf(n->id, sizeof n->id, "%s", o.node_id);
        }
    }
    swc_rpc_req_on_cancel(req, slogs_canceled, s);
    for (size_t i = 0; i < s->nnodes; i++) {
        struct slog_node *n = &s->nodes[i];
        Swarmc__Node *node = (Swarmc__Node *)swc_store_get_decoded(
            m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, n->id, NULL);
        n->name = node_display_name(node, n->id);
        const char *addr = node != NULL && node->status != NULL && node->status->addr != NULL
                               ? node->status->addr
                               : "";
        rv = addr[0] == '\0' ? SWC_EUNAVAIL : slogs_open_node(s, n, addr, r->follow, r->tail);
        if (rv != 0) {
            char msg[SWC_ERRMSG_SIZE];
            Swarmc__LogMessage lm = SWARMC__LOG_MESSAGE__INIT;
            Swarmc__Error e = SWARMC__ERROR__INIT;
            snprintf(msg, sizeof msg, "node %s: cannot get logs: %s", n->name ? n->name : n->id,
                     addr[0] == '\0' ? "its address is unknown" : swc_strerror(rv));
            e.code = (uint32_t)rv;
            e.message = msg;
            lm.error = &e;
            slogs_send(s, &lm.base);
        }
        if (node != NULL) {
            swc_store_free_decoded(&node->base);
        }
    }
    swarmc__service_logs_request__free_unpacked(r, &swc_pb_allocator);
    slogs_maybe_finish(s);
}

/* ---- cluster --------------------------------------------------------------------- */

/* Check a cluster spec before it is written; the message names the field. */
static int validate_cluster_spec(const Swarmc__ClusterSpec *spec, struct swc_err *err)
{
    if (spec->orchestration != NULL && spec->orchestration->task_history_retention_limit < -1) {
        return swc_err_set(err, SWC_EINVAL,
                           "orchestration.task_history_retention_limit: %lld is below -1",
                           (long long)spec->orchestration->task_history_retention_limit);
    }
    if (spec->dispatcher != NULL && spec->dispatcher->heartbeat_period_ns != 0 &&
        spec->dispatcher->heartbeat_period_ns < 100 * SWC_NS_PER_MS) {
        return swc_err_set(err, SWC_EINVAL, "dispatcher.heartbeat_period: must be at least 100ms");
    }
    if (spec->raft != NULL && spec->raft->snapshot_interval != 0 &&
        spec->raft->snapshot_interval < 100) {
        return swc_err_set(err, SWC_EINVAL, "raft.snapshot_interval: must be at least 100 entries");
    }
    if (spec->ca_config != NULL && spec->ca_config->node_cert_expiry_ns != 0 &&
        spec->ca_config->node_cert_expiry_ns < 3600 * SWC_NS_PER_SEC) {
        return swc_err_set(err, SWC_EINVAL, "ca_config.node_cert_expiry: must be at least 1h");
    }
    return 0;
}

/* control.UpdateCluster: replace the cluster spec (with the expected
 * version); the identity, CA and token hashes are not the caller's to set. */
static void h_update_cluster(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_err err;
    struct swc_store_iter it;
    struct swc_store_obj o;
    LEADER_ONLY(m, req, p, len);
    Swarmc__UpdateClusterRequest *r =
        swarmc__update_cluster_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL || r->spec == NULL) {
        reply_error(req, SWC_EINVAL, "update cluster: no spec in the request");
        goto out;
    }
    if (r->rotate_worker_token || r->rotate_manager_token) {
        reply_error(req, SWC_ENOTSUP, "token rotation: use `swarmc join-token --rotate`");
        goto out;
    }
    if (validate_cluster_spec(r->spec, &err) != 0) {
        reply_error(req, err.code, "%s", swc_err_msg(&err));
        goto out;
    }
    swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &it);
    if (!swc_store_iter_next(&it, &o)) {
        reply_error(req, SWC_ENOENT, "the cluster object is not written yet");
        goto out;
    }
    if (r->version != 0 && r->version != o.version) {
        reply_error(req, SWC_ECONFLICT,
                    "the cluster changed since you read it: read it again and retry");
        goto out;
    }
    Swarmc__Cluster *c = (Swarmc__Cluster *)swc_store_decode(&o, NULL);
    if (c == NULL) {
        reply_error(req, SWC_ENOMEM, "out of memory");
        goto out;
    }
    Swarmc__ClusterSpec *old = c->spec;
    c->spec = r->spec;
    write_one(m, req, SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE,
              SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, c->id, &c->base, o.version, RESP_OBJECT);
    c->spec = old;
    swc_store_free_decoded(&c->base);
out:
    if (r != NULL) {
        swarmc__update_cluster_request__free_unpacked(r, &swc_pb_allocator);
    }
}

static void h_get_cluster(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_kind(m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &it);
    if (!swc_store_iter_next(&it, &o)) {
        reply_error(req, SWC_ENOENT, "the cluster object is not written yet");
        return;
    }
    Swarmc__GetClusterResponse resp = SWARMC__GET_CLUSTER_RESPONSE__INIT;
    Swarmc__Error e = SWARMC__ERROR__INIT;
    resp.error = &e;
    resp.cluster = (Swarmc__Cluster *)swc_store_decode(&o, NULL);
    reply_msg(req, &resp.base, &e);
    swc_store_free_decoded(&resp.cluster->base);
}

struct backup_req {
    struct swc_rpc_req *req;
    char path[4096];
    uint64_t objects;
};

static void backup_done(void *data, int code, const struct swc_err *err)
{
    struct backup_req *b = data;
    if (code != 0) {
        reply_error(b->req, code, "backup: %s",
                    err != NULL ? swc_err_msg(err) : swc_strerror(code));
    } else {
        Swarmc__BackupClusterResponse resp = SWARMC__BACKUP_CLUSTER_RESPONSE__INIT;
        Swarmc__Error e = SWARMC__ERROR__INIT;
        resp.error = &e;
        resp.path = b->path;
        resp.objects = b->objects;
        reply_msg(b->req, &resp.base, &e);
    }
    swc_free(b);
}

static void h_backup(struct swc_rpc_req *req, const uint8_t *p, size_t len, void *data)
{
    struct swc_manager *m = data;
    Swarmc__BackupClusterRequest *r =
        swarmc__backup_cluster_request__unpack(&swc_pb_allocator, len, p);
    if (r == NULL || r->path == NULL || r->path[0] != '/') {
        reply_error(req, SWC_EINVAL, "backup: the path must be absolute");
        goto out;
    }
    struct backup_req *b = swc_calloc(1, sizeof *b);
    if (b == NULL) {
        reply_error(req, SWC_ENOMEM, "out of memory");
        goto out;
    }
    b->req = req;
    snprintf(b->path, sizeof b->path, "%s", r->path);
    for (int k = 1; k < SWC_STORE_KIND_MAX; k++) {
        b->objects += swc_store_count(m->store, k);
    }
    int rv = swc_store_backup(m->store, m->loop, b->path, backup_done, b);
    if (rv != 0) {
        swc_free(b);
        reply_error(req, rv, "backup to %s: %s", r->path, swc_strerror(rv));
    }
out:
    if (r != NULL) {
        swarmc__backup_cluster_request__free_unpacked(r, &swc_pb_allocator);
    }
}

static const struct {
    const char *name;
    swc_rpc_handler h;
    bool streaming;
} methods[] = {
    {"control.CreateService", h_create_service, false},
    {"control.GetService", h_get_service, false},
    {"control.UpdateService", h_update_service, false},
    {"control.ScaleService", h_scale_service, false},
    {"control.RemoveService", h_remove_service, false},
    {"control.ListServices", h_list_services, false},
    {"control.ListTasks", h_list_tasks, false},
    {"control.GetTask", h_get_task, false},
    {"control.ListNodes", h_list_nodes, false},
    {"control.GetNode", h_get_node, false},
    {"control.UpdateNode", h_update_node, false},
    {"control.RemoveNode", h_remove_node, false},
    {"control.GetCluster", h_get_cluster, false},
    {"control.UpdateCluster", h_update_cluster, false},
    {"control.BackupCluster", h_backup, false},
    {"control.ServiceLogs", h_service_logs, true},
};

#define NMETHODS (sizeof methods / sizeof methods[0])

void swc_control_register(struct swc_manager *m, struct swc_rpc_server *srv)
{
    for (size_t i = 0; i < NMETHODS; i++) {
        swc_rpc_server_register(srv, methods[i].name, methods[i].streaming, methods[i].h, m);
    }
}

void swc_control_register_shim(struct swc_rpc_server *srv, swc_rpc_handler shim, void *data)
{
    for (size_t i = 0; i < NMETHODS; i++) {
        swc_rpc_server_register(srv, methods[i].name, methods[i].streaming, shim, data);
    }
}

bool swc_control_dispatch(struct swc_manager *m, struct swc_rpc_req *req, const uint8_t *p,
                          size_t len)
{
    const char *method = swc_rpc_req_method(req);
    for (size_t i = 0; i < NMETHODS; i++) {
        if (strcmp(methods[i].name, method) == 0) {
            methods[i].h(req, p, len, m);
            return true;
        }
    }
    return false;
}

bool swc_control_streaming(const char *method)
{
    for (size_t i = 0; i < NMETHODS; i++) {
        if (strcmp(methods[i].name, method) == 0) {
            return methods[i].streaming;
        }
    }
    return false;
}
