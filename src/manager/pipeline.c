/* The leader's pipeline: orchestrators, update supervisor, allocator,
 * scheduler and reaper, run as one reconciliation pass (DESIGN §6).
 *
 * The pass watches the store; after a commit that changed anything it runs
 * again (debounced by a short timer). Writes go through raft; while any are
 * in flight the pipeline waits, so each pass sees the results of the last
 * one and never decides twice on the same state. Every pass reads the whole
 * store, which also makes the first pass after a leader change a full
 * reconciliation. All decisions are taken by the pure modules
 * (orchestrator.c, update.c, scheduler.c, reaper.c); this file only gathers
 * their inputs from the store and turns their actions into transactions.
 *
 * Tasks on nodes that are DOWN or drained are shown to the orchestrators as
 * ORPHANED, so their slots are refilled elsewhere, and are shut down. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "manager/manager_int.h"
#include "manager/orchestrator.h"
#include "manager/ports.h"
#include "manager/reaper.h"
#include "manager/scheduler.h"
#include "manager/update.h"

#define MOD             "pipeline"
#define DEBOUNCE_MS     10
#define TXN_SPLIT_BYTES (1024 * 1024)

struct upd_entry {
    char id[SWC_STORE_ID_MAX + 1];
    struct swc_update_state st;
    UT_hash_handle hh;
};

struct swc_pipeline {
    struct swc_manager *m;
    struct swc_store_watch watch;
    uv_timer_t timer;
    int inflight;
    bool dirty;
    bool stopping;
    struct upd_entry *updates;
};

/* ---- batched writes -------------------------------------------------------- */

struct writer {
    struct swc_pipeline *p;
    struct swc_store_txn t;
    bool open;
};

static void pass(uv_timer_t *timer);

static void timer_closed(uv_handle_t *h)
{
    swc_free(h->data);
}

static void write_cb(void *data, int result, const char *msg)
{
    struct swc_pipeline *p = data;
    p->inflight--;
    if (result != 0 && result != SWC_ECONFLICT) {
        swc_warnf(MOD, "write failed: %s", msg);
    }
    if (p->stopping) {
        if (p->inflight == 0) {
            uv_close((uv_handle_t *)&p->timer, timer_closed);
        }
        return;
    }
    /* A conflict means the store moved: look again. */
    p->dirty = true;
    if (p->inflight == 0) {
        uv_timer_start(&p->timer, pass, result == SWC_ECONFLICT ? 5 : 0, 0);
    }
}

static void writer_flush(struct writer *w)
{
    if (w->open && w->t.msg.n_actions > 0) {
        int rv = swc_manager_write(w->p->m, &w->t, write_cb, w->p);
        if (rv == 0) {
            w->p->inflight++;
        } else {
            swc_warnf(MOD, "propose: %s", swc_strerror(rv));
        }
    }
    if (w->open) {
        swc_store_txn_free(&w->t);
        w->open = false;
    }
}

static struct swc_store_txn *writer_txn(struct writer *w)
{
    if (w->open && w->t.bytes > TXN_SPLIT_BYTES) {
        writer_flush(w);
    }
    if (!w->open) {
        if (swc_store_txn_init(&w->t, ++w->p->m->proposal_seq, w->p->m->node_id) != 0) {
            return NULL;
        }
        w->open = true;
    }
    return &w->t;
}

static void put_task(struct writer *w, const Swarmc__Task *t, uint64_t version)
{
    struct swc_store_txn *txn = writer_txn(w);
    if (txn != NULL) {
        if (version == 0) {
            swc_store_txn_create(txn, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, &t->base);
        } else {
            swc_store_txn_update(txn, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, &t->base, version);
        }
    }
}

/* ---- gathering ------------------------------------------------------------- */

struct task_set {
    Swarmc__Task **pb;
    struct swc_orch_task *orch;
    size_t n, cap;
};

static void task_set_clear(struct task_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        swc_store_free_decoded(&s->pb[i]->base);
    }
    swc_free(s->pb);
    swc_free(s->orch);
    memset(s, 0, sizeof *s);
}

static int task_set_push(struct task_set *s, Swarmc__Task *t)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        Swarmc__Task **pb = swc_realloc(s->pb, cap * sizeof *pb);
        if (pb == NULL) {
            return SWC_ENOMEM;
        }
        s->pb = pb;
        struct swc_orch_task *o = swc_realloc(s->orch, cap * sizeof *o);
        if (o == NULL) {
            return SWC_ENOMEM;
        }
        s->orch = o;
        s->cap = cap;
    }
    s->pb[s->n] = t;
    swc_orch_task_from_pb(t, &s->orch[s->n]);
    s->n++;
    return 0;
}

static Swarmc__Task *find_task(struct task_set *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->pb[i]->id, id) == 0) {
            return s->pb[i];
        }
    }
    return NULL;
}

/* ---- orchestration ----------------------------------------------------------- */

static void set_desired(struct writer *w, Swarmc__Task *t, int desired)
{
    if ((int)t->desired_state >= desired) {
        return;
    }
    uint64_t version = t->meta != NULL ? t->meta->version : 0;
    t->desired_state = (Swarmc__TaskState)desired;
    put_task(w, t, version);
}

static void create_task(struct writer *w, const Swarmc__Service *svc, uint64_t slot,
                        const char *node_id, uint64_t job_iteration, int64_t now)
{
    Swarmc__Task t = SWARMC__TASK__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    char id[SWC_ID_LEN + 1], name[512];
    swc_id_new(id);
    t.id = id;
    meta.created_at = meta.updated_at = now;
    t.meta = &meta;
    t.spec = svc->spec->task;
    t.spec_version = svc->spec_version;
    t.service_id = svc->id;
    t.service_name = svc->spec->annotations->name;
    t.slot = slot;
    t.node_id = (char *)(node_id != NULL ? node_id : "");
    if (slot > 0) {
        snprintf(name, sizeof name, "%s.%llu", svc->spec->annotations->name,
                 (unsigned long long)slot);
    } else {
        snprintf(name, sizeof name, "%s.%s", svc->spec->annotations->name, t.node_id);
    }
    ann.name = name;
    t.annotations = &ann;
    t.desired_state = SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    st.state = SWARMC__TASK_STATE__TASK_STATE_NEW;
    st.timestamp = now;
    st.message = "created";
    t.status = &st;
    t.endpoint = svc->endpoint;
    t.job_iteration = job_iteration;
    put_task(w, &t, 0);
}

static void apply_actions(struct writer *w, const Swarmc__Service *svc, struct task_set *ts,
                          const struct swc_orch_actions *acts, int64_t now)
{
    for (size_t i = 0; i < acts->n; i++) {
        const struct swc_orch_action *a = &acts->items[i];
        Swarmc__Task *t;
        switch (a->kind) {
        case SWC_ORCH_CREATE:
            /* Replicated slots go wherever the scheduler puts them; only
             * global tasks (slot 0) are bound to their node. */
            create_task(w, svc, a->slot, a->slot == 0 ? a->node_id : NULL, a->job_iteration, now);
            break;
        case SWC_ORCH_SHUTDOWN:
        case SWC_ORCH_REMOVE:
            t = find_task(ts, a->task_id);
            if (t != NULL) {
                set_desired(w, t,
                            a->kind == SWC_ORCH_SHUTDOWN ? SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
                                                         : SWARMC__TASK_STATE__TASK_STATE_REMOVE);
            }
            break;
        }
    }
}

static int svc_mode(const Swarmc__Service *svc)
{
    return svc->spec != NULL ? (int)svc->spec->mode_case : 0;
}

static void write_update_status(struct writer *w, Swarmc__Service *svc,
                                const struct swc_update_state *st, bool rollback)
{
    Swarmc__UpdateStatus us = SWARMC__UPDATE_STATUS__INIT;
    us.state = (Swarmc__UpdateState)st->state;
    us.started_at = st->started_at;
    us.completed_at = st->completed_at;
    us.message = (char *)st->message;
    Swarmc__UpdateStatus *old = svc->update_status;
    svc->update_status = &us;
    Swarmc__ServiceSpec *spec = svc->spec;
    uint64_t spec_version = svc->spec_version;
    if (rollback && svc->previous_spec != NULL) {
        /* Swap back to the previous spec; a new version so slots roll. */
        svc->spec = svc->previous_spec;
        svc->previous_spec = spec;
        svc->spec_version = spec_version + 1;
        svc->previous_spec_version = spec_version;
    }
    struct swc_store_txn *txn = writer_txn(w);
    if (txn != NULL) {
        swc_store_txn_update(txn, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, &svc->base,
                             svc->meta != NULL ? svc->meta->version : 0);
    }
    if (rollback && svc->previous_spec != NULL) {
        svc->previous_spec = svc->spec;
        svc->spec = spec;
        svc->spec_version = spec_version;
    }
    svc->update_status = old;
}

static void reconcile_service(struct swc_pipeline *p, struct writer *w, Swarmc__Service *svc,
                              struct swc_orch_node *nodes, size_t n_nodes, struct swc_sched *sched,
                              int64_t now, int64_t *wake)
{
    struct swc_store *s = p->m->store;
    struct task_set ts = {0};
    struct swc_store_iter it;
    struct swc_store_obj o;
    struct swc_orch_service os;
    struct swc_constraint_set cons = {0};
    struct swc_sched_platform *plats = NULL;
    struct swc_orch_actions acts = {0};
    struct swc_err err;

    swc_store_iter_service_tasks(s, svc->id, &it);
    while (swc_store_iter_next(&it, &o)) {
        Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
        if (t == NULL || task_set_push(&ts, t) != 0) {
            if (t != NULL) {
                swc_store_free_decoded(&t->base);
            }
            goto out;
        }
        /* A task on a node that is down or drained counts as lost. */
        struct swc_orch_task *ot = &ts.orch[ts.n - 1];
        if (t->node_id != NULL && t->node_id[0] != '\0' &&
            ot->state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING &&
            ot->state >= SWARMC__TASK_STATE__TASK_STATE_ASSIGNED) {
            struct swc_sched_node *sn = swc_sched_node_get(sched, t->node_id);
            if (sn == NULL || !sn->ready ||
                sn->availability == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN) {
                ot->state = SWARMC__TASK_STATE__TASK_STATE_ORPHANED;
                set_desired(w, t, SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN);
            }
        }
    }
    if (swc_orch_service_from_pb(svc, &os, &cons, &plats, &err) != 0) {
        swc_warnf(MOD, "service %s: %s", svc->id, swc_err_msg(&err));
        goto out;
    }
    int mode = svc_mode(svc);
    switch (mode) {
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL:
        swc_orch_global(&os, ts.orch, ts.n, nodes, n_nodes, now, &acts, wake);
        break;
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB:
        swc_orch_replicated_job(&os, ts.orch, ts.n, now, &acts, wake);
        break;
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB:
        swc_orch_global_job(&os, ts.orch, ts.n, nodes, n_nodes, now, &acts, wake);
        break;
    default:
        swc_orch_replicated(&os, ts.orch, ts.n, now, &acts, wake);
        break;
    }
    apply_actions(w, svc, &ts, &acts, now);

    if (mode == SWARMC__SERVICE_SPEC__MODE_REPLICATED ||
        mode == SWARMC__SERVICE_SPEC__MODE_GLOBAL || mode == 0) {
        struct upd_entry *ue = NULL;
        HASH_FIND_STR(p->updates, svc->id, ue);
        if (ue == NULL) {
            ue = swc_calloc(1, sizeof *ue);
            if (ue == NULL) {
                goto out;
            }
            snprintf(ue->id, sizeof ue->id, "%s", svc->id);
            if (svc->update_status != NULL) {
                ue->st.state = (int)svc->update_status->state;
                ue->st.started_at = svc->update_status->started_at;
                ue->st.completed_at = svc->update_status->completed_at;
                ue->st.target_version = svc->spec_version;
            }
            HASH_ADD_STR(p->updates, id, ue);
        }
        struct swc_update_input in = {0};
        struct swc_update_output uo = {0};
        in.spec_version = svc->spec_version;
        in.global = mode == SWARMC__SERVICE_SPEC__MODE_GLOBAL;
        in.rollback =
            svc->update_status != NULL &&
            (svc->update_status->state == SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_STARTED ||
             svc->update_status->state == SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_PAUSED);
        swc_update_config_from_pb(svc->spec->update, &in.update);
        swc_update_config_from_pb(svc->spec->rollback, &in.rollback_config);
        in.task_template = svc->spec->task;
        in.tasks = ts.orch;
        in.n_tasks = ts.n;
        in.now = now;
        if (swc_update_step(&ue->st, &in, &uo) == 0) {
            apply_actions(w, svc, &ts, &uo.actions, now);
            if (uo.status_changed || uo.rollback) {
                write_update_status(w, svc, &ue->st, uo.rollback);
            }
            if (uo.next_wakeup > 0 && (*wake == 0 || uo.next_wakeup < *wake)) {
                *wake = uo.next_wakeup;
            }
        }
        swc_update_output_clear(&uo);
    }
out:
    swc_orch_actions_clear(&acts);
    swc_constraint_set_clear(&cons);
    swc_free(plats);
    task_set_clear(&ts);
}

/* ---- allocator: published ports ------------------------------------------------ */

static void allocs_from_endpoint(const Swarmc__Endpoint *ep, struct swc_port_alloc *out, size_t *n,
                                 size_t max)
{
    *n = 0;
    for (size_t i = 0; ep != NULL && i < ep->n_ports && *n < max; i++) {
        out[*n].protocol = (int)ep->ports[i]->protocol;
        out[*n].target_port = ep->ports[i]->target_port;
        out[*n].published_port = ep->ports[i]->published_port;
        out[*n].publish_mode = (int)ep->ports[i]->publish_mode;
        (*n)++;
    }
}

#define MAX_PORTS 256

/* Claim every service's ingress ports in store order (which is creation
 * order, so an older service keeps a contested port). A service whose
 * allocation changed gets its endpoint written and is not reconciled in this
 * pass; one that cannot be allocated is marked failed. */
static void allocate_ports(struct swc_pipeline *p, struct writer *w, Swarmc__Service **svcs,
                           size_t n, bool *changed, char **failed)
{
    struct swc_ports *ports = NULL;
    if (swc_ports_create(&ports) != 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Swarmc__Service *svc = svcs[i];
        struct swc_port_alloc prev[MAX_PORTS], *out = NULL;
        size_t nprev, nout = 0;
        struct swc_err err;
        allocs_from_endpoint(svc->endpoint, prev, &nprev, MAX_PORTS);
        const Swarmc__EndpointSpec *spec = svc->spec != NULL ? svc->spec->endpoint : NULL;
        if (swc_ports_allocate(ports, svc->id, svc->spec->annotations->name, spec, prev, nprev,
                               &out, &nout, &err) != 0) {
            failed[i] = swc_strdup(swc_err_msg(&err));
            swc_warnf(MOD, "service %s: port allocation: %s", svc->id, swc_err_msg(&err));
            continue;
        }
        bool same = nout == nprev;
        for (size_t k = 0; same && k < nout; k++) {
            same = out[k].protocol == prev[k].protocol &&
                   out[k].target_port == prev[k].target_port &&
                   out[k].published_port == prev[k].published_port &&
                   out[k].publish_mode == prev[k].publish_mode;
        }
        if (!same) {
            Swarmc__Endpoint ep = SWARMC__ENDPOINT__INIT;
            Swarmc__PortConfig pcs[MAX_PORTS], *pptr[MAX_PORTS];
            for (size_t k = 0; k < nout && k < MAX_PORTS; k++) {
                swarmc__port_config__init(&pcs[k]);
                pcs[k].protocol = (Swarmc__PortProtocol)out[k].protocol;
                pcs[k].target_port = out[k].target_port;
                pcs[k].published_port = out[k].published_port;
                pcs[k].publish_mode = (Swarmc__PublishMode)out[k].publish_mode;
                pptr[k] = &pcs[k];
            }
            ep.spec = (Swarmc__EndpointSpec *)spec;
            ep.n_ports = nout < MAX_PORTS ? nout : MAX_PORTS;
            ep.ports = pptr;
            Swarmc__Endpoint *old = svc->endpoint;
            svc->endpoint = &ep;
            struct swc_store_txn *txn = writer_txn(w);
            if (txn != NULL) {
                swc_store_txn_update(txn, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, &svc->base,
                                     svc->meta != NULL ? svc->meta->version : 0);
            }
            svc->endpoint = old;
            changed[i] = true;
        }
        swc_free(out);
    }
    swc_ports_destroy(ports);
}

/* Check, before a service is written, that its ingress ports are free:
 * the control API calls this so a conflict is refused at create/update. */
int swc_pipeline_check_ports(struct swc_store *s, const char *service_id, const char *name,
                             const Swarmc__EndpointSpec *spec, struct swc_err *err)
{
    struct swc_ports *ports = NULL;
    struct swc_store_iter it;
    struct swc_store_obj o;
    int rv;
    if (spec == NULL || spec->n_ports == 0) {
        return 0;
    }
    if (swc_ports_create(&ports) != 0) {
        return swc_err_set(err, SWC_ENOMEM, "out of memory");
    }
    swc_store_iter_kind(s, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, &it);
    while (swc_store_iter_next(&it, &o)) {
        if (service_id != NULL && strcmp(o.id, service_id) == 0) {
            continue;
        }
        Swarmc__Service *svc = (Swarmc__Service *)swc_store_decode(&o, NULL);
        if (svc == NULL) {
            continue;
        }
        struct swc_port_alloc prev[MAX_PORTS], *out = NULL;
        size_t nprev, nout;
        struct swc_err ignore;
        allocs_from_endpoint(svc->endpoint, prev, &nprev, MAX_PORTS);
        swc_ports_allocate(ports, svc->id, o.name, svc->spec != NULL ? svc->spec->endpoint : NULL,
                           prev, nprev, &out, &nout, &ignore);
        swc_free(out);
        swc_store_free_decoded(&svc->base);
    }
    struct swc_port_alloc *out = NULL;
    size_t nout = 0;
    rv = swc_ports_allocate(ports, service_id != NULL ? service_id : "new", name, spec, NULL, 0,
                            &out, &nout, err);
    swc_free(out);
    swc_ports_destroy(ports);
    return rv;
}

/* ---- allocator and scheduler ------------------------------------------------------ */

static const char *failed_reason(Swarmc__Service **svcs, char **failed, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (failed[i] != NULL && strcmp(svcs[i]->id, id) == 0) {
            return failed[i];
        }
    }
    return NULL;
}

static void allocate(struct swc_pipeline *p, struct writer *w, int64_t now, Swarmc__Service **svcs,
                     char **failed, size_t nsvcs)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_state(p->m->store, SWARMC__TASK_STATE__TASK_STATE_NEW, &it);
    while (swc_store_iter_next(&it, &o)) {
        Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
        if (t == NULL) {
            continue;
        }
        const char *why = failed_reason(svcs, failed, nsvcs, o.service_id);
        if (why != NULL) {
            /* An allocation failure is written on the task, once. */
            char msg[SWC_ERRMSG_SIZE + 32];
            snprintf(msg, sizeof msg, "allocation failed: %s", why);
            if (t->status != NULL && (t->status->err == NULL || strcmp(t->status->err, msg) != 0)) {
                char *old = t->status->err;
                t->status->err = msg;
                put_task(w, t, o.version);
                t->status->err = old;
            }
        } else if (t->desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING &&
                   t->status != NULL) {
            char *old = t->status->message;
            t->status->state = SWARMC__TASK_STATE__TASK_STATE_PENDING;
            t->status->timestamp = now;
            t->status->message = "pending task scheduling";
            put_task(w, t, o.version);
            t->status->message = old; /* the literal is not ours to free */
        }
        swc_store_free_decoded(&t->base);
    }
}

static void account_tasks(struct swc_pipeline *p, struct swc_sched *sched, int64_t now)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_kind(p->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, &it);
    while (swc_store_iter_next(&it, &o)) {
        if (o.node_id == NULL || o.node_id[0] == '\0') {
            continue;
        }
        struct swc_sched_node *n = swc_sched_node_get(sched, o.node_id);
        if (n == NULL) {
            continue;
        }
        bool live = o.desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING &&
                    o.state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
        if (live) {
            Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
            int64_t cpu = 0, mem = 0;
            if (t != NULL && t->spec != NULL && t->spec->resources != NULL &&
                t->spec->resources->reservations != NULL) {
                cpu = t->spec->resources->reservations->nano_cpus;
                mem = t->spec->resources->reservations->memory_bytes;
            }
            swc_sched_node_account(n, o.service_id, cpu, mem, NULL, 0);
            if (t != NULL) {
                swc_store_free_decoded(&t->base);
            }
        } else if (o.state == SWARMC__TASK_STATE__TASK_STATE_FAILED ||
                   o.state == SWARMC__TASK_STATE__TASK_STATE_REJECTED) {
            Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
            if (t != NULL && t->status != NULL &&
                now - t->status->timestamp < SWC_SCHED_FAILURE_WINDOW) {
                swc_sched_node_note_failure(n, o.service_id, t->status->timestamp);
            }
            if (t != NULL) {
                swc_store_free_decoded(&t->base);
            }
        }
    }
}

static void schedule(struct swc_pipeline *p, struct writer *w, struct swc_sched *sched, int64_t now)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    struct task_set ts = {0};
    swc_store_iter_state(p->m->store, SWARMC__TASK_STATE__TASK_STATE_PENDING, &it);
    while (swc_store_iter_next(&it, &o)) {
        if (o.desired_state > SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
            continue;
        }
        Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
        if (t == NULL || task_set_push(&ts, t) != 0) {
            if (t != NULL) {
                swc_store_free_decoded(&t->base);
            }
            break;
        }
    }
    if (ts.n == 0) {
        task_set_clear(&ts);
        return;
    }
    struct swc_sched_task *st = swc_calloc(ts.n, sizeof *st);
    struct swc_constraint_set *cons = swc_calloc(ts.n, sizeof *cons);
    void **arenas = swc_calloc(ts.n, sizeof *arenas);
    struct swc_sched_result *res = swc_calloc(ts.n, sizeof *res);
    size_t n = 0;
    if (st == NULL || cons == NULL || arenas == NULL || res == NULL) {
        goto out;
    }
    /* swc_sched_place groups identical tasks (service, spec version) itself. */
    for (size_t i = 0; i < ts.n; i++) {
        struct swc_err err;
        Swarmc__Task *t = ts.pb[i];
        if (swc_sched_task_from_pb(t, &st[n], &cons[n], &arenas[n], &err) != 0) {
            continue;
        }
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        st[i].constraints = &cons[i];
    }
    if (swc_log_enabled(SWC_LOG_DEBUG)) {
        for (size_t i = 0; i < swc_sched_node_count(sched); i++) {
            struct swc_sched_node *sn = swc_sched_node_at(sched, i);
            swc_debugf(MOD, "schedule: node %s ready=%d availability=%d tasks=%u", sn->attrs.id,
                       sn->ready, sn->availability, sn->ntasks);
        }
    }
    if (swc_sched_place(sched, st, n, now, res) != 0) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        Swarmc__Task *t = find_task(&ts, res[i].task_id);
        if (t == NULL || t->status == NULL) {
            continue;
        }
        uint64_t version = t->meta != NULL ? t->meta->version : 0;
        char *old_msg = t->status->message, *old_err = t->status->err, *old_node = t->node_id;
        if (res[i].node_id != NULL) {
            t->node_id = (char *)res[i].node_id;
            t->status->state = SWARMC__TASK_STATE__TASK_STATE_ASSIGNED;
            t->status->timestamp = now;
            t->status->message = "scheduler assigned task to node";
            t->status->err = "";
            put_task(w, t, version);
        } else if (res[i].explain != NULL &&
                   (old_err == NULL || strcmp(old_err, res[i].explain) != 0)) {
            t->status->err = res[i].explain;
            put_task(w, t, version);
        }
        t->status->message = old_msg;
        t->status->err = old_err;
        t->node_id = old_node;
    }
out:
    if (res != NULL) {
        swc_sched_results_clear(res, n);
    }
    for (size_t i = 0; cons != NULL && i < n; i++) {
        swc_constraint_set_clear(&cons[i]);
        swc_free(arenas[i]);
    }
    swc_free(st);
    swc_free(cons);
    swc_free(arenas);
    swc_free(res);
    task_set_clear(&ts);
}

static void reap(struct swc_pipeline *p, struct writer *w, int64_t limit)
{
    struct swc_store *s = p->m->store;
    size_t n = swc_store_count(s, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK), k = 0;
    if (n == 0) {
        return;
    }
    struct swc_reaper_task *rt = swc_calloc(n, sizeof *rt);
    if (rt == NULL) {
        return;
    }
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_kind(s, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, &it);
    while (swc_store_iter_next(&it, &o) && k < n) {
        struct swc_store_obj so;
        rt[k].id = o.id;
        rt[k].service_id = o.service_id;
        rt[k].slot = o.slot;
        rt[k].node_id = o.node_id;
        rt[k].desired_state = o.desired_state;
        rt[k].state = o.state;
        rt[k].status_ts = (int64_t)o.version; /* write order stands in for time */
        rt[k].service_exists =
            swc_store_get(s, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, o.service_id, &so) == 0;
        k++;
    }
    size_t *idx = NULL, nidx = 0;
    if (swc_reaper_select(rt, k, limit, &idx, &nidx) == 0) {
        for (size_t i = 0; i < nidx; i++) {
            struct swc_store_txn *txn = writer_txn(w);
            if (txn != NULL) {
                swc_store_txn_remove(txn, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, rt[idx[i]].id, 0);
            }
        }
    }
    swc_free(idx);
    swc_free(rt);
}

/* ---- the pass ---------------------------------------------------------------- */

static void pass(uv_timer_t *timer)
{
    struct swc_pipeline *p = timer->data;
    struct swc_store *s = p->m->store;
    struct writer w;
    memset(&w, 0, sizeof w);
    w.p = p;
    int64_t now = swc_now_wall(), wake = 0;
    if (p->stopping || p->inflight > 0 || !p->m->leader) {
        return;
    }
    p->dirty = false;

    struct swc_sched *sched = NULL;
    if (swc_sched_create(&sched) != 0) {
        return;
    }
    size_t n_nodes = swc_store_count(s, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE), k = 0;
    struct swc_orch_node *nodes = swc_calloc(n_nodes ? n_nodes : 1, sizeof *nodes);
    Swarmc__Node **npb = swc_calloc(n_nodes ? n_nodes : 1, sizeof *npb);
    struct swc_store_iter it;
    struct swc_store_obj o;
    if (nodes == NULL || npb == NULL) {
        goto out;
    }
    swc_store_iter_kind(s, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &it);
    while (swc_store_iter_next(&it, &o) && k < n_nodes) {
        Swarmc__Node *n = (Swarmc__Node *)swc_store_decode(&o, NULL);
        struct swc_sched_node *sn = NULL;
        if (n == NULL) {
            continue;
        }
        if (swc_sched_node_add_pb(sched, n, &sn) != 0) {
            swc_store_free_decoded(&n->base);
            continue;
        }
        npb[k] = n;
        nodes[k].attrs = &sn->attrs;
        nodes[k].ready = sn->ready;
        nodes[k].availability = sn->availability;
        k++;
    }
    account_tasks(p, sched, now);

    Swarmc__Cluster *cluster = NULL;
    swc_store_iter_kind(s, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &it);
    if (swc_store_iter_next(&it, &o)) {
        cluster = (Swarmc__Cluster *)swc_store_decode(&o, NULL);
    }

    size_t n_svcs = swc_store_count(s, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE), j = 0;
    Swarmc__Service **svcs = swc_calloc(n_svcs ? n_svcs : 1, sizeof *svcs);
    if (svcs != NULL) {
        swc_store_iter_kind(s, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, &it);
        while (swc_store_iter_next(&it, &o) && j < n_svcs) {
            svcs[j] = (Swarmc__Service *)swc_store_decode(&o, NULL);
            if (svcs[j] != NULL) {
                j++;
            }
        }
    }
    bool *changed = swc_calloc(j + 1, sizeof *changed);
    char **failed = swc_calloc(j + 1, sizeof *failed);
    if (svcs != NULL && changed != NULL && failed != NULL) {
        allocate_ports(p, &w, svcs, j, changed, failed);
        for (size_t i = 0; i < j; i++) {
            if (!changed[i]) { /* a changed one is reconciled after its write */
                reconcile_service(p, &w, svcs[i], nodes, k, sched, now, &wake);
            }
        }
        allocate(p, &w, now, svcs, failed, j);
    }
    schedule(p, &w, sched, now);
    reap(p, &w, swc_reaper_limit(cluster));
    writer_flush(&w);

    for (size_t i = 0; svcs != NULL && i < j; i++) {
        swc_store_free_decoded(&svcs[i]->base);
        if (failed != NULL) {
            swc_free(failed[i]);
        }
    }
    swc_free(svcs);
    swc_free(changed);
    swc_free(failed);
    if (cluster != NULL) {
        swc_store_free_decoded(&cluster->base);
    }
out:
    for (size_t i = 0; npb != NULL && i < k; i++) {
        swc_store_free_decoded(&npb[i]->base);
    }
    swc_free(npb);
    swc_free(nodes);
    swc_sched_destroy(sched);
    if (wake > 0 && p->inflight == 0) {
        int64_t ms = (wake - now) / SWC_NS_PER_MS;
        uv_timer_start(&p->timer, pass, ms < 1 ? 1 : (uint64_t)ms, 0);
    }
}

static void on_event(void *data, const struct swc_store_event *ev)
{
    struct swc_pipeline *p = data;
    if (ev->type == SWC_STORE_EV_COMMIT) {
        if (p->dirty && p->inflight == 0 && !p->stopping) {
            uv_timer_start(&p->timer, pass, DEBOUNCE_MS, 0);
        }
        return;
    }
    p->dirty = true;
}

int swc_pipeline_start(struct swc_manager *m, struct swc_pipeline **out)
{
    struct swc_pipeline *p = swc_calloc(1, sizeof *p);
    if (p == NULL) {
        return SWC_ENOMEM;
    }
    p->m = m;
    uv_timer_init(m->loop, &p->timer);
    p->timer.data = p;
    p->watch.cb = on_event;
    p->watch.data = p;
    swc_store_watch(m->store, &p->watch);
    p->dirty = true;
    uv_timer_start(&p->timer, pass, 0, 0);
    *out = p;
    return 0;
}

void swc_pipeline_kick(struct swc_pipeline *p)
{
    p->dirty = true;
    if (p->inflight == 0 && !p->stopping) {
        uv_timer_start(&p->timer, pass, 0, 0);
    }
}

void swc_pipeline_stop(struct swc_pipeline *p)
{
    struct upd_entry *e, *tmp;
    p->stopping = true;
    swc_store_unwatch(p->m->store, &p->watch);
    uv_timer_stop(&p->timer);
    HASH_ITER(hh, p->updates, e, tmp)
    {
        HASH_DEL(p->updates, e);
        swc_free(e);
    }
    /* p is freed when its timer has closed, once no write is in flight
     * (otherwise the last write's callback closes it). */
    if (p->inflight == 0) {
        uv_close((uv_handle_t *)&p->timer, timer_closed);
    }
}
