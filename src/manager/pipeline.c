/* The leader's pipeline: orchestrators, update supervisor, allocator,
 * scheduler and reaper, run as one reconciliation pass (DESIGN §6).
 *
 * The pass is incremental. A store watcher turns events into work: a changed
 * service, a task whose orchestration-relevant fields changed or a changed
 * node marks services dirty in a per-service table; a task in NEW or
 * PENDING, or a node or liveness change, asks for the allocator or the
 * scheduler. A pass reconciles only the dirty services (the first pass after
 * a leader change, and one after a snapshot restore, marks every service
 * dirty: the full reconciliation). Relevant means: desired state, liveness,
 * a dead task's state, a task on a node that is lost; a task reaching
 * RUNNING, a task the pipeline created and the scheduler's placement are
 * relevant only while an update watches the service (or for global
 * services). So 100,000 tasks coming up cost no orchestration at all.
 *
 * Decoding whole tasks is the expensive part, so the pipeline keeps a compact
 * cache of what the orchestrators need of each task (struct tcache), keyed by
 * id and checked against the stored version; tasks it creates enter the
 * cache as they are written. Nodes are cached decoded (struct ncache) and
 * re-decoded only when they change, and the scheduler's state (nodes,
 * reservations, per-service counts) lives across passes: placements update
 * it as they are made, a task shut down, ended or removed is released from
 * its node in place (swc_sched_node_release), and only a change it cannot
 * follow (a node becoming schedulable, a node with host ports in use, a
 * failed write) makes it rebuilt. A write of the pipeline updates the task
 * cache as it is made (version 0 until its commit is seen), so its commit
 * is no news: shutting down 100k tasks dirties nothing and decodes nothing
 * again. A walk of a service that outlasts the pass resumes warming the
 * cache where it stopped.
 *
 * Work per pass is bounded by counts and by time (PASS_NS, shared with the
 * dispatcher's chunked loops through swc_manager_turn_deadline): what does
 * not fit stays for the next pass, which runs once the writes of this one
 * committed (or after a 1 ms timer when nothing was written), so the loop
 * gets back to raft heartbeats and worker sessions between chunks. A
 * service whose actions do not fit keeps them as a backlog (shutdowns and
 * removals, then replicated slots to create) that later passes write
 * without walking the service again: one walk of 100k tasks pays for all
 * its actions, not for one chunk. Backlog tasks are placed by the
 * scheduler as they are created and written once, ASSIGNED.
 * A reconcile that decides STASH_MIN or more creates puts them all in the
 * backlog, so each task of a big create is written once. While writes are
 * in flight the pipeline waits, so each pass sees the results of the last
 * one and never decides twice on the same state (filling backlogs could go
 * on with PIPELINE_MAX entries in flight; measured, it made turns longer,
 * so it is off).
 * A node that stops being schedulable (DOWN, paused, drained) is updated in
 * the scheduler's view in place instead of rebuilding it: thousands of
 * nodes going down cost no re-accounting of every task. All
 * decisions are taken by the pure modules (orchestrator.c, update.c,
 * scheduler.c, reaper.c); this file gathers their inputs and turns their
 * actions into transactions.
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
/* Per pass: at most this many whole-task decodes and task writes (a decode
 * or an encode costs a few µs: a chunk stays within ~20-40 ms). */
#define PASS_DECODES 8000
#define PASS_WRITES  4000
#define PASS_NS      (15 * SWC_NS_PER_MS)
/* A walk that outlasts the pass's deadline stops once it decoded this many
 * tasks; the next walk of the service resumes warming the cache where it
 * stopped (struct svc_state.warm_pos), so warming 100k stale entries costs
 * one scan, not one scan of the warm prefix per chunk. */
#define MIN_WALK_DECODES 500
/* Actions a reconcile applies even past the deadline, so that a walk longer
 * than the budget always makes some progress (what is left, removals
 * included, goes to the service's backlog). At a few us per action this is
 * ~1 ms; it was 2,000 when removals were not kept (0.5 ms each with a walk of
 * 100k tasks per chunk: 1 s turns). */
#define MIN_APPLY   128
#define STASH_MIN   1024 /* this many trailing creates go straight to a backlog */
#define PLACE_GROUP 256  /* backlog tasks placed per call of the scheduler */
/* Backlog passes may run while fewer than this many entries are in flight
 * (filling a service is already decided, so it could go on before each
 * commit). Measured with 100,000 replicas on 1,000 fleet nodes: with 2,
 * 27-36 s and leader turns of 355-468 ms (two entries applied in one turn);
 * with 1 (never while a write is in flight), 19 s and 133 ms. So 1. */
#define PIPELINE_MAX   1
#define MAX_VERSIONS   8
#define SLOW_PASS_MS   50 /* a pass longer than this is logged with its phases */
#define SLOW_EVENTS_MS 50 /* ... and an entry's events that took longer than this */

/* What the orchestrators, the update supervisor and the scheduler's
 * accounting need of a task, valid for one stored version. One entry per
 * task the leader knows, so it is kept small: the id sized to fit, service
 * and node ids inline at the length of generated ids (SWC_ID_LEN), a longer
 * one in its own block (tcache_set_id; freed by tcache_free). */
#define TC_INLINE (SWC_ID_LEN + 1)
struct tcache {
    UT_hash_handle hh;
    const char *service_id, *node_id; /* sbuf / nbuf, or a block of their own */
    uint64_t version;
    uint64_t slot;
    uint64_t spec_version, job_iteration;
    int64_t created_at, status_ts, running_at;
    int64_t cpu, mem; /* reservations */
    int desired, state;
    char sbuf[TC_INLINE], nbuf[TC_INLINE];
    char id[];
};
static void tcache_free(struct tcache *t);

/* A task whose desired state a backlog raises (SHUTDOWN or REMOVE). */
struct rm_item {
    char id[SWC_STORE_ID_MAX + 1];
    int desired;
};

/* Per service: dirty flag, mode, update supervisor state, allocation result. */
struct svc_state {
    char id[SWC_STORE_ID_MAX + 1];
    bool dirty;
    bool known; /* mode below is valid */
    int mode;
    bool has_upd;
    struct swc_update_state upd;
    int64_t wake; /* wall time of a delayed restart / update step, 0 = none */
    char *failed; /* port allocation failure, or NULL */
    bool realloc; /* endpoint written this pass: reconcile after it commits */
    /* Replicated slots the orchestrator decided to create that did not fit
     * in the pass's write budget: later passes write them without
     * reconciling again (dropped when the service changes or is dirtied). */
    uint64_t *backlog;
    size_t nbacklog, backlog_pos;
    uint64_t backlog_version, backlog_iter;
    /* Shutdowns and removals the orchestrator decided that did not fit:
     * applied before the creates, under the same rules. */
    struct rm_item *rm;
    size_t nrm, rm_pos;
    /* Tasks (in the store's order) the last, unfinished walk found cached:
     * the next walk only warms the cache past them, then one more walks
     * the whole service (decoding whatever changed meanwhile). */
    size_t warm_pos;
    UT_hash_handle hh;
};

/* A PENDING task the scheduler could not place (see swc_pipeline). */
struct unplaced {
    char id[SWC_STORE_ID_MAX + 1];
    UT_hash_handle hh;
};

/* What the pipeline keeps of a node between passes: the decoded object (the
 * scheduler's input) and the two fields orchestration decisions depend on. */
struct ncache {
    char id[SWC_STORE_ID_MAX + 1];
    Swarmc__Node *pb;
    bool ready;
    int availability;
    UT_hash_handle hh;
};

struct swc_pipeline {
    struct swc_manager *m;
    bool overrun; /* tests: every walk of a service's tasks outlasts the pass */
    struct swc_store_watch watch;
    uv_timer_t timer;
    int inflight;
    bool dirty;
    bool stopping;
    bool full;        /* mark every service dirty at the next pass */
    bool svc_changed; /* some service changed: recompute port allocation */
    bool need_alloc;  /* tasks in NEW may exist */
    bool need_sched;  /* PENDING tasks may be placeable */
    struct svc_state *svcs;
    struct tcache *tasks;
    struct ncache *nodes;
    bool nodes_stale; /* rebuild the node cache at the next pass */
    /* The scheduler's view (nodes, reservations, per-service counts, recent
     * failures) lives across passes: placements update it as they are made,
     * and anything else that changes it (a node, a task dying or leaving a
     * node, a failed write) makes it stale, to be rebuilt at the next pass. */
    struct swc_sched *sched;
    bool sched_stale;
    /* PENDING tasks the current sched could not place: skipped until it is
     * rebuilt (cleared then), so they do not hide the tasks behind them. */
    struct unplaced *unplaced;
    bool accounted; /* the tasks in the store are accounted in sched */
    size_t ndirty;
    size_t backlogs; /* services with a backlog of creates */
    swc_pipeline_write_fn write;
    void *write_data;
    int64_t ev_ns; /* time spent in this entry's events so far */
    struct swc_pipeline_stats stats;
};

/* Budget of one pass: counts, and a deadline on the monotonic clock (the
 * managers share their cores, so a count alone can take 10x longer). */
struct budget {
    size_t decodes, writes;
    int64_t deadline;
};

static bool budget_left(const struct budget *b)
{
    return b->decodes > 0 && b->writes > 0 && swc_now_mono() < b->deadline;
}

/* ---- batched writes -------------------------------------------------------- */

struct writer {
    struct swc_pipeline *p;
    struct swc_store_txn t;
    bool open;
    struct budget *b;
};

static void pass(uv_timer_t *timer);
static bool can_pipeline(const struct swc_pipeline *p);

static void timer_closed(uv_handle_t *h)
{
    swc_free(h->data);
}

static void unplaced_clear(struct swc_pipeline *p)
{
    struct unplaced *u, *tmp;
    HASH_ITER(hh, p->unplaced, u, tmp)
    {
        HASH_DEL(p->unplaced, u);
        swc_free(u);
    }
}

static void free_state(struct swc_pipeline *p)
{
    struct svc_state *s, *stmp;
    struct tcache *t, *ttmp;
    struct ncache *n, *ntmp;
    HASH_ITER(hh, p->svcs, s, stmp)
    {
        HASH_DEL(p->svcs, s);
        swc_free(s->failed);
        swc_free(s->backlog);
        swc_free(s->rm);
        swc_free(s);
    }
    HASH_ITER(hh, p->tasks, t, ttmp)
    {
        HASH_DEL(p->tasks, t);
        tcache_free(t);
    }
    HASH_ITER(hh, p->nodes, n, ntmp)
    {
        HASH_DEL(p->nodes, n);
        swc_store_free_decoded(&n->pb->base);
        swc_free(n);
    }
    p->nodes_stale = true;
    p->backlogs = 0;
    unplaced_clear(p);
    swc_sched_destroy(p->sched);
    p->sched = NULL;
    p->ndirty = 0;
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
    if (result == SWC_ECONFLICT) {
        /* The store moved under a decision: look at everything again. */
        p->full = true;
    }
    if (result != 0) {
        /* Its placements did not happen, and the task cache holds what it
         * would have written: look at everything again. */
        p->sched_stale = true;
        p->full = true;
    }
    p->dirty = true;
    if (p->inflight == 0) {
        uv_timer_start(&p->timer, pass, result == SWC_ECONFLICT ? 5 : 0, 0);
    } else if (can_pipeline(p) && !uv_is_active((uv_handle_t *)&p->timer)) {
        uv_timer_start(&p->timer, pass, 0, 0);
    }
}

static int default_write(void *data, const struct swc_store_txn *t, swc_manager_write_cb cb,
                         void *cb_data)
{
    return swc_manager_write(data, t, cb, cb_data);
}

static void writer_flush(struct writer *w)
{
    if (w->open && w->t.msg.n_actions > 0) {
        int rv = w->p->write(w->p->write_data, &w->t, write_cb, w->p);
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
    if (w->b->writes > 0) {
        w->b->writes--;
    }
    w->p->stats.task_writes++;
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

/* ---- dirty tracking -------------------------------------------------------------- */

static struct svc_state *svc_get(struct swc_pipeline *p, const char *id, bool create)
{
    struct svc_state *s = NULL;
    size_t len = strlen(id);
    if (len == 0 || len > SWC_STORE_ID_MAX) {
        return NULL;
    }
    HASH_FIND(hh, p->svcs, id, len, s);
    if (s == NULL && create) {
        s = swc_calloc(1, sizeof *s);
        if (s == NULL) {
            return NULL;
        }
        memcpy(s->id, id, len + 1);
        HASH_ADD(hh, p->svcs, id[0], len, s);
    }
    return s;
}

static void mark_svc(struct swc_pipeline *p, const char *id)
{
    struct svc_state *s = svc_get(p, id, true);
    if (s == NULL) {
        p->full = true; /* out of memory: fall back to a full pass */
    } else if (!s->dirty) {
        s->dirty = true;
        p->ndirty++;
    }
}

static void unmark_svc(struct swc_pipeline *p, struct svc_state *s)
{
    if (s->dirty) {
        s->dirty = false;
        p->ndirty--;
    }
}

static bool is_global(int mode)
{
    return mode == SWARMC__SERVICE_SPEC__MODE_GLOBAL ||
           mode == SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB;
}

static bool live(int desired, int state)
{
    return desired <= SWARMC__TASK_STATE__TASK_STATE_RUNNING &&
           state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
}

/* Point *field at a copy of v: inline when it fits, else a block of its
 * own (out of memory: "", the entry then looks unplaced). */
static void tcache_set_id(const char **field, char *inline_buf, const char *v)
{
    size_t n = strlen(v);
    if (*field == v) {
        return;
    }
    if (*field != NULL && *field != inline_buf) {
        swc_free((char *)*field);
    }
    *field = inline_buf;
    if (n < TC_INLINE) {
        memcpy(inline_buf, v, n + 1);
        return;
    }
    char *h = swc_strndup(v, n);
    inline_buf[0] = '\0';
    if (h != NULL) {
        *field = h;
    }
}

static void tcache_free(struct tcache *t)
{
    if (t != NULL) {
        tcache_set_id(&t->service_id, t->sbuf, "");
        tcache_set_id(&t->node_id, t->nbuf, "");
        swc_free(t);
    }
}

/* A new zeroed entry for id, added to the cache; NULL when out of memory. */
static struct tcache *tcache_new(struct swc_pipeline *p, const char *id)
{
    size_t n = strlen(id);
    struct tcache *t = swc_calloc(1, sizeof *t + n + 1);
    if (t == NULL) {
        return NULL;
    }
    memcpy(t->id, id, n + 1);
    t->service_id = t->sbuf;
    t->node_id = t->nbuf;
    HASH_ADD_STR(p->tasks, id, t);
    return t;
}

static struct tcache *tcache_find(struct swc_pipeline *p, const char *id)
{
    struct tcache *t = NULL;
    HASH_FIND_STR(p->tasks, id, t);
    return t;
}

static void tcache_fill(struct tcache *t, const Swarmc__Task *pb, uint64_t version);

/* The cache entry of a stored task, decoding it when missing or stale;
 * NULL when out of memory. An entry of version 0 is one this pipeline
 * wrote and has not seen committed yet (its fields are what it wrote). */
static struct tcache *tcache_get(struct swc_pipeline *p, const struct swc_store_obj *o,
                                 struct budget *b)
{
    struct tcache *t = tcache_find(p, o->id);
    if (t != NULL && t->version == o->version) {
        return t;
    }
    Swarmc__Task *pb = (Swarmc__Task *)swc_store_decode(o, NULL);
    if (pb == NULL) {
        return NULL;
    }
    p->stats.tasks_decoded++;
    if (b->decodes > 0) {
        b->decodes--;
    }
    if (t == NULL && (t = tcache_new(p, o->id)) == NULL) {
        swc_store_free_decoded(&pb->base);
        return NULL;
    }
    tcache_fill(t, pb, o->version);
    swc_store_free_decoded(&pb->base);
    return t;
}

/* Fill a cache entry from a decoded task of this stored version. */
static void tcache_fill(struct tcache *t, const Swarmc__Task *pb, uint64_t version)
{
    struct swc_orch_task ot;
    swc_orch_task_from_pb(pb, &ot);
    tcache_set_id(&t->service_id, t->sbuf, pb->service_id);
    tcache_set_id(&t->node_id, t->nbuf, ot.node_id != NULL ? ot.node_id : "");
    t->version = version;
    t->slot = ot.slot;
    t->desired = ot.desired_state;
    t->state = ot.state;
    t->spec_version = ot.spec_version;
    t->job_iteration = ot.job_iteration;
    t->created_at = ot.created_at;
    t->status_ts = ot.status_ts;
    t->running_at = ot.running_at;
    t->cpu = t->mem = 0;
    if (pb->spec != NULL && pb->spec->resources != NULL &&
        pb->spec->resources->reservations != NULL) {
        t->cpu = pb->spec->resources->reservations->nano_cpus;
        t->mem = pb->spec->resources->reservations->memory_bytes;
    }
}

static void tcache_to_orch(const struct tcache *t, struct swc_orch_task *ot)
{
    memset(ot, 0, sizeof *ot);
    ot->id = t->id;
    ot->slot = t->slot;
    ot->node_id = t->node_id;
    ot->desired_state = t->desired;
    ot->state = t->state;
    ot->spec_version = t->spec_version;
    ot->job_iteration = t->job_iteration;
    ot->created_at = t->created_at;
    ot->status_ts = t->status_ts;
    ot->running_at = t->running_at;
}

/* ---- node cache ------------------------------------------------------------------ */

static void ncache_del(struct swc_pipeline *p, struct ncache *n)
{
    HASH_DEL(p->nodes, n);
    swc_store_free_decoded(&n->pb->base);
    swc_free(n);
}

/* True when two (possibly NULL) messages encode to the same bytes. */
static bool same_msg(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    size_t la, lb;
    uint8_t *pa = swc_pb_pack(a, &la), *pb = swc_pb_pack(b, &lb);
    bool same = pa != NULL && pb != NULL && la == lb && memcmp(pa, pb, la) == 0;
    swc_free(pa);
    swc_free(pb);
    return same;
}

/* Whether what the scheduler reads of a node (spec, description, role)
 * differs between two versions of it (its status aside). */
static bool node_attrs_differ(const Swarmc__Node *a, const Swarmc__Node *b)
{
    return a->role != b->role ||
           !same_msg(a->spec ? &a->spec->base : NULL, b->spec ? &b->spec->base : NULL) ||
           !same_msg(a->description ? &a->description->base : NULL,
                     b->description ? &b->description->base : NULL);
}

/* Refresh one node's entry from the store (removed when the node is gone).
 * Returns the entry or NULL; *changed says whether readiness or
 * availability moved, *attrs (optional) whether its spec, description or
 * role did (true for a new entry). */
static struct ncache *ncache_refresh_attrs(struct swc_pipeline *p, const char *id, bool *changed,
                                           bool *attrs)
{
    bool attrs_changed = true;
    struct ncache *n = NULL;
    size_t len = strlen(id);
    *changed = true;
    if (len == 0 || len > SWC_STORE_ID_MAX) {
        return NULL;
    }
    HASH_FIND(hh, p->nodes, id, len, n);
    int err = 0;
    Swarmc__Node *pb = (Swarmc__Node *)swc_store_get_decoded(
        p->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, id, &err);
    if (pb == NULL) {
        if (n != NULL) {
            ncache_del(p, n);
        }
        if (err == SWC_ENOMEM) {
            p->nodes_stale = true;
        }
        return NULL;
    }
    bool ready = pb->status != NULL && pb->status->state == SWARMC__NODE_STATE__NODE_STATE_READY;
    int avail = pb->spec != NULL ? (int)pb->spec->availability : 0;
    if (n == NULL) {
        n = swc_calloc(1, sizeof *n);
        if (n == NULL) {
            swc_store_free_decoded(&pb->base);
            p->nodes_stale = true;
            return NULL;
        }
        memcpy(n->id, id, len + 1);
        HASH_ADD(hh, p->nodes, id[0], len, n);
    } else {
        *changed = n->ready != ready || n->availability != avail;
        attrs_changed = attrs != NULL && node_attrs_differ(n->pb, pb);
        swc_store_free_decoded(&n->pb->base);
    }
    n->pb = pb;
    n->ready = ready;
    n->availability = avail;
    if (attrs != NULL) {
        *attrs = attrs_changed;
    }
    return n;
}

static struct ncache *ncache_refresh(struct swc_pipeline *p, const char *id, bool *changed)
{
    return ncache_refresh_attrs(p, id, changed, NULL);
}

/* Decode every node again (leadership start, restore, out of memory). */
static void ncache_rebuild(struct swc_pipeline *p)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    struct ncache *n, *tmp;
    bool changed;
    HASH_ITER(hh, p->nodes, n, tmp)
    {
        ncache_del(p, n);
    }
    p->nodes_stale = false;
    swc_store_iter_kind(p->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &it);
    while (swc_store_iter_next(&it, &o)) {
        ncache_refresh(p, o.id, &changed);
    }
}

/* True when a task on this node counts as lost (node unknown, not ready or
 * drained). */
static bool node_bad(struct swc_pipeline *p, const char *id)
{
    struct ncache *n = NULL;
    if (id == NULL || id[0] == '\0') {
        return false;
    }
    if (p->nodes_stale) {
        return true; /* unknown yet: let the orchestrator look */
    }
    HASH_FIND_STR(p->nodes, id, n);
    return n == NULL || !n->ready ||
           n->availability == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
}

static bool schedulable(bool ready, int availability)
{
    return ready && availability == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
}

/* A task that held resources on node_id (live there) no longer does: follow
 * it in the scheduler's view in place. Nothing to do before the view has
 * accounted the store (accounting reads the cache, which says it is not
 * live), nor on a node that is not schedulable (not accounted, and it
 * rebuilds the view when it becomes schedulable again); a node with host
 * ports in use rebuilds (which ports were the task's is not known here). */
static void sched_release(struct swc_pipeline *p, const char *node_id, const char *service_id,
                          int64_t cpu, int64_t mem)
{
    if (p->sched == NULL || p->sched_stale || !p->accounted || node_id[0] == '\0') {
        return;
    }
    struct swc_sched_node *sn = swc_sched_node_get(p->sched, node_id);
    if (sn == NULL || !schedulable(sn->ready, sn->availability)) {
        return;
    }
    if (swc_sched_node_release(sn, service_id, cpu, mem) != 0) {
        p->sched_stale = true;
    } else {
        p->stats.sched_task_follows++;
    }
}

/* A task failed on node_id: avoid the node for its service as a rebuild
 * would (see account_tasks). */
static void sched_note_failure(struct swc_pipeline *p, const char *node_id, const char *service_id,
                               int64_t when)
{
    if (p->sched == NULL || p->sched_stale || !p->accounted || node_id[0] == '\0') {
        return;
    }
    struct swc_sched_node *sn = swc_sched_node_get(p->sched, node_id);
    if (sn != NULL && schedulable(sn->ready, sn->availability) &&
        swc_sched_node_note_failure(sn, service_id, when) != 0) {
        p->sched_stale = true;
    }
}

/* Follow a node change in the scheduler's view without rebuilding it when
 * the change cannot matter to placement: a node that is not schedulable now
 * (down, paused, drained) only has its flags updated in place (whatever else
 * changed on it is read again when it comes back, which rebuilds), and a new
 * node without tasks is added. Anything else (a node becoming schedulable, a
 * schedulable node's description, a removal) rebuilds at the next pass, which
 * re-accounts every task: so 10,000 nodes going DOWN cost no accounting. */
static void sched_follow_node(struct swc_pipeline *p, const struct swc_store_event *ev,
                              const struct ncache *n, bool attrs)
{
    if (p->sched == NULL || p->sched_stale) {
        return; /* rebuilt at the next pass anyway */
    }
    if (p->nodes_stale || n == NULL || ev->type == SWC_STORE_EV_REMOVE) {
        p->sched_stale = true;
        return;
    }
    struct swc_sched_node *sn = swc_sched_node_get(p->sched, ev->id);
    if (sn == NULL) {
        struct swc_store_iter it;
        swc_store_iter_node_tasks(p->m->store, ev->id, &it);
        if (it.remaining > 0 || swc_sched_node_add_pb(p->sched, n->pb, NULL) != 0) {
            p->sched_stale = true;
        } else {
            p->stats.sched_node_follows++;
        }
        return;
    }
    if (schedulable(n->ready, n->availability)) {
        /* Still schedulable with the same attributes (a session registering
         * again, a status message): nothing the view holds changed. */
        if (attrs || !schedulable(sn->ready, sn->availability)) {
            p->sched_stale = true;
        } else {
            p->stats.sched_node_follows++;
        }
        return;
    }
    sn->ready = n->ready;
    sn->availability = n->availability;
    p->stats.sched_node_follows++;
}

static void node_changed(struct swc_pipeline *p, const struct swc_store_event *ev)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    bool changed = true, attrs = true;
    struct ncache *nc = NULL;
    if (!p->nodes_stale) {
        if (ev->type == SWC_STORE_EV_REMOVE) {
            HASH_FIND_STR(p->nodes, ev->id, nc);
            if (nc != NULL) {
                ncache_del(p, nc);
                nc = NULL;
            }
        } else {
            nc = ncache_refresh_attrs(p, ev->id, &changed, &attrs);
        }
    }
    sched_follow_node(p, ev, nc, attrs);
    /* Its tasks may be lost now (or back); a node re-registering with the
     * same state (a new session, a new description) changes no slot. */
    if (changed) {
        swc_store_iter_node_tasks(p->m->store, ev->id, &it);
        while (swc_store_iter_next(&it, &o)) {
            mark_svc(p, o.service_id);
        }
    }
    /* Global services follow nodes (labels, platform, readiness). */
    for (struct svc_state *s = p->svcs; s != NULL; s = s->hh.next) {
        if (!s->known || is_global(s->mode)) {
            mark_svc(p, s->id);
        }
    }
    p->need_sched = true;
}

/* Whether a service's decisions depend on its tasks reaching RUNNING: only
 * while an update (or rollback) is in progress, for global services, and for
 * services the pipeline has not looked at yet. Scale-down also prefers tasks
 * not yet RUNNING, but a scale-down is a service change and reads tasks
 * afresh. */
static bool watches_running(const struct svc_state *ss)
{
    if (ss == NULL || !ss->known || is_global(ss->mode) || !ss->has_upd) {
        return true;
    }
    return ss->upd.state == SWARMC__UPDATE_STATE__UPDATE_STATE_UPDATING ||
           ss->upd.state == SWARMC__UPDATE_STATE__UPDATE_STATE_ROLLBACK_STARTED;
}

static void task_changed(struct swc_pipeline *p, const struct swc_store_event *ev)
{
    struct swc_store_obj o;
    struct tcache *t = tcache_find(p, ev->id);
    if (ev->type == SWC_STORE_EV_REMOVE ||
        swc_store_get(p->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, ev->id, &o) != 0) {
        if (t == NULL) {
            p->sched_stale = true; /* it may have held resources */
        } else if (live(t->desired, t->state)) {
            sched_release(p, t->node_id, t->service_id, t->cpu, t->mem);
        }
        if (t != NULL) {
            mark_svc(p, t->service_id);
            HASH_DEL(p->tasks, t);
            tcache_free(t);
        }
        p->need_sched = true;
        return;
    }
    if (o.state == SWARMC__TASK_STATE__TASK_STATE_NEW) {
        p->need_alloc = true;
    } else if (o.state == SWARMC__TASK_STATE__TASK_STATE_PENDING) {
        p->need_sched = true;
    }
    if (t != NULL && t->version == 0 &&
        (ev->type == SWC_STORE_EV_CREATE || (t->desired == o.desired_state && t->state == o.state &&
                                             strcmp(t->node_id, o.node_id) == 0))) {
        /* The entry create_task or set_desired_id made is exact: this is
         * its write committing (anyone else's write first would make ours
         * conflict, and the pass after it is full). */
        t->version = ev->version;
    }
    /* Only what the orchestrators decide on makes the service dirty. The
     * steps a worker reports between ASSIGNED and RUNNING, a task the
     * pipeline just created and the scheduler's placement do not, unless
     * an update watches tasks come up or the node is already lost. */
    struct svc_state *ss = svc_get(p, o.service_id, false);
    bool watch = watches_running(ss);
    bool now_live = live(o.desired_state, o.state);
    bool relevant;
    if (t == NULL) {
        relevant = !now_live || watch || node_bad(p, o.node_id);
        if (o.node_id[0] != '\0' && (ev->type == SWC_STORE_EV_CREATE ? now_live : !now_live)) {
            p->sched_stale = true; /* created on a node, or may have left one */
        }
    } else {
        bool was_live = live(t->desired, t->state);
        bool moved = strcmp(t->node_id, o.node_id) != 0;
        /* Placements are in sched already (PENDING -> ASSIGNED moves from
         * no node to one); any other move or a change of liveness on a
         * node changes reservations. */
        if (was_live && t->node_id[0] != '\0' && (moved || !now_live)) {
            /* it left its node, or ended there: released in place */
            sched_release(p, t->node_id, t->service_id, t->cpu, t->mem);
        }
        if (now_live && o.node_id[0] != '\0' && (!was_live || (moved && t->node_id[0] != '\0'))) {
            p->sched_stale = true; /* live again, or moved between nodes: rare */
        }
        if (!now_live && o.node_id[0] != '\0' &&
            (o.state == SWARMC__TASK_STATE__TASK_STATE_FAILED ||
             o.state == SWARMC__TASK_STATE__TASK_STATE_REJECTED) &&
            t->state != o.state) {
            sched_note_failure(p, o.node_id, o.service_id, swc_now_wall());
        }
        relevant = t->desired != o.desired_state || was_live != now_live ||
                   (t->state > SWARMC__TASK_STATE__TASK_STATE_RUNNING && t->state != o.state) ||
                   (moved && (is_global(ss != NULL ? ss->mode : 0) || node_bad(p, o.node_id))) ||
                   (watch && (t->state == SWARMC__TASK_STATE__TASK_STATE_RUNNING) !=
                                 (o.state == SWARMC__TASK_STATE__TASK_STATE_RUNNING));
        if (was_live != now_live) {
            p->need_sched = true; /* resources freed or taken */
        }
        /* What the next event is compared with (the entry's other fields stay
         * as decoded: its version no longer matches, so a walk decodes it). */
        t->desired = o.desired_state;
        t->state = o.state;
        tcache_set_id(&t->node_id, t->nbuf, o.node_id);
    }
    if (relevant) {
        swc_tracef(MOD, "task %s (service %s): state %d desired %d node '%s', cached %s: dirty",
                   o.id, o.service_id, o.state, o.desired_state, o.node_id,
                   t == NULL ? "no" : "yes");
        mark_svc(p, o.service_id);
    }
}

static void on_event_inner(struct swc_pipeline *p, const struct swc_store_event *ev);

static void on_event(void *data, const struct swc_store_event *ev)
{
    struct swc_pipeline *p = data;
    int64_t t0 = swc_now_mono();
    on_event_inner(p, ev);
    p->ev_ns += swc_now_mono() - t0;
    if (ev->type == SWC_STORE_EV_COMMIT) {
        if (p->ev_ns > SLOW_EVENTS_MS * SWC_NS_PER_MS) {
            swc_infof(MOD, "slow events: entry %llu took %lld ms", (unsigned long long)ev->index,
                      (long long)(p->ev_ns / SWC_NS_PER_MS));
        }
        p->ev_ns = 0;
    }
}

static void on_event_inner(struct swc_pipeline *p, const struct swc_store_event *ev)
{
    switch (ev->type) {
    case SWC_STORE_EV_COMMIT:
        if (p->dirty && p->inflight == 0 && !p->stopping) {
            uv_timer_start(&p->timer, pass, DEBOUNCE_MS, 0);
        }
        return;
    case SWC_STORE_EV_RESTORE:
        free_state(p);
        p->full = true;
        break;
    default:
        switch (ev->kind) {
        case SWARMC__OBJECT_KIND__OBJECT_KIND_TASK:
            task_changed(p, ev);
            break;
        case SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE:
            mark_svc(p, ev->id);
            p->svc_changed = true;
            p->need_alloc = true;
            break;
        case SWARMC__OBJECT_KIND__OBJECT_KIND_NODE:
            node_changed(p, ev);
            break;
        case SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER:
            p->full = true; /* the task history limit may have changed */
            break;
        default:
            return; /* secrets, configs, networks: nothing to reconcile */
        }
        break;
    }
    p->dirty = true;
}

/* ---- orchestration ----------------------------------------------------------- */

/* Raise a stored task's desired state (decoded by id: only tasks acted on
 * are). The cache entry becomes what was written (version 0 until it
 * commits), so the commit is no news to the orchestrators, and a task that
 * stops being live leaves the scheduler's view now, in place. A task
 * written but not committed yet is not written again (a second update of
 * the same version would conflict and roll the whole batch back). */
static void set_desired_id(struct swc_pipeline *p, struct writer *w, const char *id, int desired)
{
    struct tcache *c = tcache_find(p, id);
    if (c != NULL && c->version == 0) {
        return;
    }
    Swarmc__Task *t = (Swarmc__Task *)swc_store_get_decoded(
        p->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, id, NULL);
    if (t == NULL) {
        return;
    }
    p->stats.tasks_decoded++;
    if (w->b->decodes > 0) {
        w->b->decodes--;
    }
    if ((int)t->desired_state < desired) {
        uint64_t version = t->meta != NULL ? t->meta->version : 0;
        if (c == NULL) {
            c = tcache_new(p, id);
        }
        if (c != NULL) {
            tcache_fill(c, t, version);
        }
        bool was_live = live((int)t->desired_state, t->status != NULL ? (int)t->status->state : 0);
        t->desired_state = (Swarmc__TaskState)desired;
        put_task(w, t, version);
        if (c != NULL) {
            c->desired = desired;
            c->version = 0;
            if (was_live && !live(c->desired, c->state)) {
                sched_release(p, c->node_id, c->service_id, c->cpu, c->mem);
            }
        } else {
            p->sched_stale = true;
        }
    }
    swc_store_free_decoded(&t->base);
}

/* Cache what a task being created will be, so neither the orchestrators
 * nor the scheduler's accounting decode it once it is committed (its
 * version is filled in by the create event). */
static void tcache_put_new(struct swc_pipeline *p, const Swarmc__Task *pb)
{
    struct tcache *t = strlen(pb->id) > SWC_STORE_ID_MAX ? NULL : tcache_new(p, pb->id);
    if (t == NULL) {
        return;
    }
    tcache_set_id(&t->service_id, t->sbuf, pb->service_id);
    tcache_set_id(&t->node_id, t->nbuf, pb->node_id);
    t->slot = pb->slot;
    t->desired = (int)pb->desired_state;
    t->state = (int)pb->status->state;
    t->spec_version = pb->spec_version;
    t->job_iteration = pb->job_iteration;
    t->created_at = pb->meta->created_at;
    t->status_ts = pb->status->timestamp;
    if (pb->spec != NULL && pb->spec->resources != NULL &&
        pb->spec->resources->reservations != NULL) {
        t->cpu = pb->spec->resources->reservations->nano_cpus;
        t->mem = pb->spec->resources->reservations->memory_bytes;
    }
}

/* Write a new task for slot (or bound to node_id, slot 0). placed, when not
 * NULL, is the node the scheduler already chose for it (the task is created
 * ASSIGNED: one write instead of two); explain, when not NULL, why no node
 * could take it. id_in is its id, or NULL for a new one. */
static void create_task_placed(struct writer *w, const Swarmc__Service *svc,
                               const struct svc_state *ss, uint64_t slot, const char *node_id,
                               uint64_t job_iteration, int64_t now, const char *id_in,
                               const char *placed, const char *explain)
{
    Swarmc__Task t = SWARMC__TASK__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    Swarmc__TaskStatus st = SWARMC__TASK_STATUS__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    char id[SWC_ID_LEN + 1], name[512];
    if (id_in != NULL) {
        snprintf(id, sizeof id, "%s", id_in);
    } else {
        swc_id_new(id);
    }
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
    st.timestamp = now;
    if (ss->failed == NULL) {
        /* The service's allocation (its ports) is done: the task needs
         * nothing else from the allocator, so it goes straight to PENDING
         * (one write per task fewer). */
        st.state = SWARMC__TASK_STATE__TASK_STATE_PENDING;
        st.message = "pending task scheduling";
    } else {
        st.state = SWARMC__TASK_STATE__TASK_STATE_NEW;
        st.message = "created";
    }
    if (placed != NULL && ss->failed == NULL) {
        t.node_id = (char *)placed;
        st.state = SWARMC__TASK_STATE__TASK_STATE_ASSIGNED;
        st.message = "scheduler assigned task to node";
    } else if (explain != NULL) {
        st.err = (char *)explain;
    }
    t.status = &st;
    t.endpoint = svc->endpoint;
    t.job_iteration = job_iteration;
    put_task(w, &t, 0);
    tcache_put_new(w->p, &t);
}

static void create_task(struct writer *w, const Swarmc__Service *svc, const struct svc_state *ss,
                        uint64_t slot, const char *node_id, uint64_t job_iteration, int64_t now)
{
    create_task_placed(w, svc, ss, slot, node_id, job_iteration, now, NULL, NULL, NULL);
}

/* The first index from which acts->items are all replicated creates of one
 * job iteration (what stash_backlog keeps for later passes); acts->n when
 * the last action is not such a create. */
static size_t stash_from(const struct swc_orch_actions *acts)
{
    size_t j = acts->n;
    while (j > 0) {
        const struct swc_orch_action *a = &acts->items[j - 1];
        if (a->kind != SWC_ORCH_CREATE || a->slot == 0 ||
            a->job_iteration != acts->items[acts->n - 1].job_iteration) {
            break;
        }
        j--;
    }
    return j;
}

/* Apply actions while the write budget lasts; false when some were left
 * (*applied, when given, says how many were). Past the deadline, up to
 * MIN_APPLY actions still apply; STASH_MIN or more trailing replicated
 * creates never do here: they are left for the backlog (so a 100,000-replica
 * create costs no long first turn, and each task is written once). */
static bool apply_actions(struct swc_pipeline *p, struct writer *w, const Swarmc__Service *svc,
                          const struct svc_state *ss, const struct swc_orch_actions *acts,
                          int64_t now, bool bounded, size_t *applied)
{
    size_t stashable = bounded ? stash_from(acts) : acts->n;
    if (acts->n - stashable < STASH_MIN) {
        stashable = acts->n; /* a few: written now, scheduled in this pass */
    }
    for (size_t i = 0; i < acts->n; i++) {
        const struct swc_orch_action *a = &acts->items[i];
        /* Many replicated creates go to the backlog, which places each as it
         * is written (one write, ASSIGNED, instead of PENDING then ASSIGNED). */
        if (bounded &&
            (i >= stashable ||
             (!budget_left(w->b) && (i >= MIN_APPLY || w->b->decodes == 0 || w->b->writes == 0)))) {
            if (applied != NULL) {
                *applied = i;
            }
            return false;
        }
        switch (a->kind) {
        case SWC_ORCH_CREATE:
            /* Replicated slots go wherever the scheduler puts them; only
             * global tasks (slot 0) are bound to their node. */
            create_task(w, svc, ss, a->slot, a->slot == 0 ? a->node_id : NULL, a->job_iteration,
                        now);
            break;
        case SWC_ORCH_SHUTDOWN:
        case SWC_ORCH_REMOVE:
            set_desired_id(p, w, a->task_id,
                           a->kind == SWC_ORCH_SHUTDOWN ? SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
                                                        : SWARMC__TASK_STATE__TASK_STATE_REMOVE);
            break;
        }
    }
    return true;
}

static bool has_backlog(const struct svc_state *ss)
{
    return ss->nbacklog > 0 || ss->nrm > 0;
}

static void drop_backlog(struct swc_pipeline *p, struct svc_state *ss)
{
    if (has_backlog(ss)) {
        p->backlogs--;
    }
    swc_free(ss->backlog);
    ss->backlog = NULL;
    ss->nbacklog = ss->backlog_pos = 0;
    swc_free(ss->rm);
    ss->rm = NULL;
    ss->nrm = ss->rm_pos = 0;
}

/* Keep the actions left after acts->items[done..] for later passes:
 * shutdowns and removals, then replicated creates of one job iteration
 * (a walk of a 100k-task service is paid for once, not once per chunk of
 * writes). When anything else is left the service simply stays dirty. */
static void stash_backlog(struct swc_pipeline *p, struct svc_state *ss, const Swarmc__Service *svc,
                          const struct swc_orch_actions *acts, size_t done)
{
    drop_backlog(p, ss);
    size_t nrm = 0, ncreate = 0;
    const struct swc_orch_action *first_create = NULL;
    for (size_t i = done; i < acts->n; i++) {
        const struct swc_orch_action *a = &acts->items[i];
        if (a->kind == SWC_ORCH_SHUTDOWN || a->kind == SWC_ORCH_REMOVE) {
            nrm++;
            continue;
        }
        if (first_create == NULL) {
            first_create = a;
        }
        if (a->kind != SWC_ORCH_CREATE || a->slot == 0 ||
            a->job_iteration != first_create->job_iteration) {
            return;
        }
        ncreate++;
    }
    if (nrm + ncreate == 0) {
        return;
    }
    ss->rm = nrm > 0 ? swc_malloc(nrm * sizeof *ss->rm) : NULL;
    ss->backlog = ncreate > 0 ? swc_malloc(ncreate * sizeof *ss->backlog) : NULL;
    if ((nrm > 0 && ss->rm == NULL) || (ncreate > 0 && ss->backlog == NULL)) {
        swc_free(ss->rm);
        swc_free(ss->backlog);
        ss->rm = NULL;
        ss->backlog = NULL;
        return;
    }
    for (size_t i = done; i < acts->n; i++) {
        const struct swc_orch_action *a = &acts->items[i];
        if (a->kind == SWC_ORCH_CREATE) {
            ss->backlog[ss->nbacklog++] = a->slot;
        } else {
            struct rm_item *r = &ss->rm[ss->nrm++];
            snprintf(r->id, sizeof r->id, "%s", a->task_id);
            r->desired = a->kind == SWC_ORCH_SHUTDOWN ? SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
                                                      : SWARMC__TASK_STATE__TASK_STATE_REMOVE;
        }
    }
    p->backlogs++;
    ss->backlog_version = svc->spec_version;
    ss->backlog_iter = first_create != NULL ? first_create->job_iteration : 0;
}

/* Write the next chunk of a service's backlog; false while some is left.
 * With sched (accounted), the tasks are placed as they are created, in
 * groups of PLACE_GROUP, so they are written once, ASSIGNED. */
static bool apply_backlog(struct writer *w, struct svc_state *ss, const Swarmc__Service *svc,
                          struct swc_sched *sched, int64_t now)
{
    struct swc_sched_task tmpl, sts[PLACE_GROUP];
    struct swc_sched_result res[PLACE_GROUP];
    struct swc_constraint_set cons = {0};
    char ids[PLACE_GROUP][SWC_ID_LEN + 1];
    void *arena = NULL;
    bool place = sched != NULL && ss->failed == NULL, done = false;
    /* Shutdowns and removals first: they free what the creates use. */
    while (ss->rm_pos < ss->nrm) {
        if (!budget_left(w->b)) {
            return false;
        }
        const struct rm_item *r = &ss->rm[ss->rm_pos++];
        set_desired_id(w->p, w, r->id, r->desired);
        w->p->stats.backlog_actions++;
    }
    if (place && ss->backlog_pos < ss->nbacklog) {
        /* Every task of the backlog has the same spec: one template. */
        Swarmc__Task t = SWARMC__TASK__INIT;
        struct swc_err err;
        t.id = "";
        t.spec = svc->spec->task;
        t.spec_version = svc->spec_version;
        t.service_id = svc->id;
        t.node_id = "";
        place = swc_sched_task_from_pb(&t, &tmpl, &cons, &arena, &err) == 0;
        tmpl.constraints = &cons;
    }
    while (ss->backlog_pos < ss->nbacklog) {
        if (!budget_left(w->b)) {
            goto out;
        }
        size_t m = ss->nbacklog - ss->backlog_pos;
        m = m < PLACE_GROUP ? m : PLACE_GROUP;
        if (!place) {
            create_task(w, svc, ss, ss->backlog[ss->backlog_pos++], NULL, ss->backlog_iter, now);
            continue;
        }
        swc_id_new_n(ids, m);
        for (size_t i = 0; i < m; i++) {
            sts[i] = tmpl;
            sts[i].id = ids[i];
        }
        if (swc_sched_place(sched, sts, m, now, res) != 0) {
            place = false;
            continue;
        }
        for (size_t i = 0; i < m; i++) {
            create_task_placed(w, svc, ss, ss->backlog[ss->backlog_pos++], NULL, ss->backlog_iter,
                               now, ids[i], res[i].node_id, res[i].explain);
        }
        swc_sched_results_clear(res, m);
    }
    swc_infof(MOD, "service %s: backlog written (%zu shutdowns or removals, %zu creates)", svc->id,
              ss->nrm, ss->nbacklog);
    drop_backlog(w->p, ss);
    done = true;
out:
    swc_constraint_set_clear(&cons);
    swc_free(arena);
    return done;
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

/* One decoded task per older spec version, so the update supervisor can
 * compare specs without every task being decoded. */
struct version_specs {
    uint64_t version[MAX_VERSIONS];
    Swarmc__Task *task[MAX_VERSIONS];
    size_t n;
};

static const Swarmc__TaskSpec *version_spec(struct swc_pipeline *p, struct version_specs *vs,
                                            uint64_t version, const char *task_id)
{
    for (size_t i = 0; i < vs->n; i++) {
        if (vs->version[i] == version) {
            return vs->task[i] != NULL ? vs->task[i]->spec : NULL;
        }
    }
    if (vs->n == MAX_VERSIONS) {
        return NULL; /* counts as out of date */
    }
    Swarmc__Task *t = (Swarmc__Task *)swc_store_get_decoded(
        p->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, task_id, NULL);
    p->stats.tasks_decoded += t != NULL;
    vs->version[vs->n] = version;
    vs->task[vs->n++] = t;
    return t != NULL ? t->spec : NULL;
}

static void version_specs_clear(struct version_specs *vs)
{
    for (size_t i = 0; i < vs->n; i++) {
        if (vs->task[i] != NULL) {
            swc_store_free_decoded(&vs->task[i]->base);
        }
    }
    vs->n = 0;
}

/* Reconcile one service from the task cache. Returns false when the budget
 * ran out before it was done (the service stays dirty). */
static bool reconcile_service(struct swc_pipeline *p, struct writer *w, struct svc_state *ss,
                              Swarmc__Service *svc, struct swc_orch_node *nodes, size_t n_nodes,
                              struct swc_sched *sched, int64_t now)
{
    struct swc_store *s = p->m->store;
    struct swc_store_iter it;
    struct swc_store_obj o;
    struct swc_orch_service os;
    struct swc_constraint_set cons = {0};
    struct swc_sched_platform *plats = NULL;
    struct swc_orch_actions acts = {0};
    struct version_specs vs = {0};
    struct swc_err err;
    bool done = false;
    int64_t wake = 0;

    swc_store_iter_service_tasks(s, svc->id, &it);
    size_t n = (size_t)it.remaining, k = 0;
    struct swc_orch_task *ts = swc_calloc(n ? n : 1, sizeof *ts);
    if (ts == NULL) {
        return false;
    }
    p->stats.services_reconciled++;
    size_t decodes0 = w->b->decodes, skip = ss->warm_pos, pos = 0;
    for (; swc_store_iter_next(&it, &o) && k < n; pos++) {
        if (pos < skip) {
            continue; /* warmed by the last walk */
        }
        /* Out of time, stop once this walk made progress worth its cost. */
        if (w->b->decodes == 0 ||
            (decodes0 - w->b->decodes >= MIN_WALK_DECODES && swc_now_mono() >= w->b->deadline)) {
            ss->warm_pos = pos;
            goto out; /* the cache is warmed over several passes */
        }
        struct tcache *t = tcache_get(p, &o, w->b);
        if (t == NULL) {
            goto out;
        }
        if (skip > 0) {
            continue; /* only warming: the walk that decides comes next */
        }
        struct swc_orch_task *ot = &ts[k++];
        tcache_to_orch(t, ot);
        /* A task on a node that is down or drained counts as lost. */
        if (t->node_id[0] != '\0' && ot->state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING &&
            ot->state >= SWARMC__TASK_STATE__TASK_STATE_ASSIGNED) {
            struct swc_sched_node *sn = swc_sched_node_get(sched, t->node_id);
            if (sn == NULL || !sn->ready ||
                sn->availability == SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN) {
                ot->state = SWARMC__TASK_STATE__TASK_STATE_ORPHANED;
                if (t->desired < SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN) {
                    /* Shut down ahead of the orchestrator's actions (within
                     * the budget, the rest from the backlog); the
                     * orchestrator sees it shut down already, so it does
                     * not act on it again. */
                    struct swc_orch_action a = {.kind = SWC_ORCH_SHUTDOWN,
                                                .task_id = t->id,
                                                .slot = t->slot,
                                                .node_id = t->node_id,
                                                .spec_version = t->spec_version,
                                                .job_iteration = t->job_iteration};
                    if (swc_orch_actions_push(&acts, &a) != 0) {
                        goto out;
                    }
                    ot->desired_state = SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN;
                }
            }
        }
    }
    if (skip > 0) {
        ss->warm_pos = 0; /* warm to the end: the next walk decides */
        goto out;
    }
    if (p->overrun) {
        w->b->deadline = 0;
    }
    p->stats.walks++;
    if (swc_orch_service_from_pb(svc, &os, &cons, &plats, &err) != 0) {
        swc_warnf(MOD, "service %s: %s", svc->id, swc_err_msg(&err));
        done = true;
        goto out;
    }
    int mode = svc_mode(svc);
    switch (mode) {
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL:
        swc_orch_global(&os, ts, k, nodes, n_nodes, now, &acts, &wake);
        break;
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB:
        swc_orch_replicated_job(&os, ts, k, now, &acts, &wake);
        break;
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB:
        swc_orch_global_job(&os, ts, k, nodes, n_nodes, now, &acts, &wake);
        break;
    default:
        swc_orch_replicated(&os, ts, k, now, &acts, &wake);
        break;
    }
    bool supervised = mode == SWARMC__SERVICE_SPEC__MODE_REPLICATED ||
                      mode == SWARMC__SERVICE_SPEC__MODE_GLOBAL || mode == 0;
    if (supervised && !ss->has_upd) {
        /* Seeded before any write so a service being filled knows whether
         * an update watches its tasks (watches_running). */
        ss->has_upd = true;
        memset(&ss->upd, 0, sizeof ss->upd);
        if (svc->update_status != NULL) {
            ss->upd.state = (int)svc->update_status->state;
            ss->upd.started_at = svc->update_status->started_at;
            ss->upd.completed_at = svc->update_status->completed_at;
            ss->upd.target_version = svc->spec_version;
        }
    }
    size_t applied = 0;
    if (!apply_actions(p, w, svc, ss, &acts, now, true, &applied)) {
        stash_backlog(p, ss, svc, &acts, applied);
        goto out;
    }

    if (supervised) {
        for (size_t i = 0; i < k; i++) {
            if (ts[i].spec_version != svc->spec_version) {
                ts[i].spec = version_spec(p, &vs, ts[i].spec_version, ts[i].id);
            }
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
        in.tasks = ts;
        in.n_tasks = k;
        in.now = now;
        if (swc_update_step(&ss->upd, &in, &uo) == 0) {
            /* An update batch is applied whole: the supervisor counts it started. */
            apply_actions(p, w, svc, ss, &uo.actions, now, false, NULL);
            if (uo.status_changed || uo.rollback) {
                write_update_status(w, svc, &ss->upd, uo.rollback);
            }
            if (uo.next_wakeup > 0 && (wake == 0 || uo.next_wakeup < wake)) {
                wake = uo.next_wakeup;
            }
        }
        swc_update_output_clear(&uo);
    }
    done = true;
out:
    ss->wake = wake;
    version_specs_clear(&vs);
    swc_orch_actions_clear(&acts);
    swc_constraint_set_clear(&cons);
    swc_free(plats);
    swc_free(ts);
    return done;
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

/* Run port allocation over every service (only after a service changed):
 * records each one's failure and marks the ones whose endpoint was written. */
static void allocate_all_ports(struct swc_pipeline *p, struct writer *w)
{
    struct swc_store *s = p->m->store;
    struct swc_store_iter it;
    struct swc_store_obj o;
    size_t n_svcs = swc_store_count(s, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE), j = 0;
    Swarmc__Service **svcs = swc_calloc(n_svcs ? n_svcs : 1, sizeof *svcs);
    bool *changed = swc_calloc(n_svcs + 1, sizeof *changed);
    char **failed = swc_calloc(n_svcs + 1, sizeof *failed);
    if (svcs == NULL || changed == NULL || failed == NULL) {
        goto out;
    }
    swc_store_iter_kind(s, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, &it);
    while (swc_store_iter_next(&it, &o) && j < n_svcs) {
        svcs[j] = (Swarmc__Service *)swc_store_decode(&o, NULL);
        if (svcs[j] != NULL) {
            j++;
        }
    }
    allocate_ports(p, w, svcs, j, changed, failed);
    for (size_t i = 0; i < j; i++) {
        struct svc_state *ss = svc_get(p, svcs[i]->id, true);
        if (ss == NULL) {
            continue;
        }
        bool was_failed = ss->failed != NULL;
        swc_free(ss->failed);
        ss->failed = failed[i];
        failed[i] = NULL;
        ss->realloc = changed[i];
        if (was_failed || ss->failed != NULL) {
            p->need_alloc = true; /* NEW tasks wait on this result */
        }
    }
out:
    for (size_t i = 0; svcs != NULL && i < j; i++) {
        swc_store_free_decoded(&svcs[i]->base);
        if (failed != NULL) {
            swc_free(failed[i]);
        }
    }
    swc_free(svcs);
    swc_free(changed);
    swc_free(failed);
}

/* ---- allocator and scheduler ------------------------------------------------------ */

/* NEW -> PENDING, or the allocation failure written on the task. Returns
 * false when tasks were left for the next pass. */
static bool allocate(struct swc_pipeline *p, struct writer *w, int64_t now)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_state(p->m->store, SWARMC__TASK_STATE__TASK_STATE_NEW, &it);
    while (swc_store_iter_next(&it, &o)) {
        if (!budget_left(w->b)) {
            return false;
        }
        struct svc_state *ss = svc_get(p, o.service_id, false);
        const char *why = ss != NULL ? ss->failed : NULL;
        if (why == NULL && o.desired_state > SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
            continue;
        }
        if (why != NULL && ss->realloc) {
            continue;
        }
        Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
        if (t == NULL) {
            continue;
        }
        p->stats.tasks_decoded++;
        w->b->decodes--;
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
        } else if (t->status != NULL) {
            char *old = t->status->message;
            t->status->state = SWARMC__TASK_STATE__TASK_STATE_PENDING;
            t->status->timestamp = now;
            t->status->message = "pending task scheduling";
            put_task(w, t, o.version);
            t->status->message = old; /* the literal is not ours to free */
        }
        swc_store_free_decoded(&t->base);
    }
    return true;
}

/* Reservations and recent failures per node, from the index and the task
 * cache (a task is decoded only when its cache entry is missing or stale). */
static void account_tasks(struct swc_pipeline *p, struct swc_sched *sched, int64_t now,
                          struct budget *b)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    for (size_t i = 0; i < swc_sched_node_count(sched); i++) {
        struct swc_sched_node *n = swc_sched_node_at(sched, i);
        if (!schedulable(n->ready, n->availability)) {
            /* Nothing is placed there, and it rebuilds the view when it
             * becomes schedulable: 10,000 DOWN nodes cost nothing here. */
            continue;
        }
        swc_store_iter_node_tasks(p->m->store, n->attrs.id, &it);
        while (swc_store_iter_next(&it, &o)) {
            /* A task this pass wrote is what it wrote, not what the store
             * still says. */
            struct tcache *t = tcache_find(p, o.id);
            bool alive = t != NULL && t->version == 0 ? live(t->desired, t->state)
                                                      : live(o.desired_state, o.state);
            bool failed = o.state == SWARMC__TASK_STATE__TASK_STATE_FAILED ||
                          o.state == SWARMC__TASK_STATE__TASK_STATE_REJECTED;
            if (!alive && !failed) {
                continue;
            }
            /* A task's spec (its reservations) never changes: any cached
             * version will do; only failure times need the current one. */
            if (t == NULL || (!alive && t->version != o.version)) {
                t = tcache_get(p, &o, b);
            }
            if (alive) {
                swc_sched_node_account(n, o.service_id, t != NULL ? t->cpu : 0,
                                       t != NULL ? t->mem : 0, NULL, 0);
            } else if (t != NULL && now - t->status_ts < SWC_SCHED_FAILURE_WINDOW) {
                swc_sched_node_note_failure(n, o.service_id, t->status_ts);
            }
        }
    }
}

struct task_set {
    Swarmc__Task **pb;
    size_t n, cap;
};

static void task_set_clear(struct task_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        swc_store_free_decoded(&s->pb[i]->base);
    }
    swc_free(s->pb);
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
        s->cap = cap;
    }
    s->pb[s->n++] = t;
    return 0;
}

/* Place PENDING tasks (at most a budget's worth). Returns false when tasks
 * were left for the next pass. */
static bool schedule(struct swc_pipeline *p, struct writer *w, struct swc_sched *sched, int64_t now)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    struct task_set ts = {0};
    bool all = true;
    /* Decoding takes about a third of the work per task: stop collecting
     * a third of the way to the deadline. */
    int64_t t0 = swc_now_mono();
    int64_t collect_until = t0 + (w->b->deadline - t0) / 3;
    size_t added = 0;
    swc_store_iter_state(p->m->store, SWARMC__TASK_STATE__TASK_STATE_PENDING, &it);
    while (swc_store_iter_next(&it, &o)) {
        if (o.desired_state > SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
            continue;
        }
        struct unplaced *u = NULL;
        HASH_FIND_STR(p->unplaced, o.id, u);
        if (u != NULL) {
            continue; /* nothing it needs has changed since it failed */
        }
        if (ts.n >= w->b->writes || w->b->decodes == 0 ||
            (ts.n > 0 && swc_now_mono() >= collect_until)) {
            all = false;
            break;
        }
        Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
        if (t == NULL || task_set_push(&ts, t) != 0) {
            if (t != NULL) {
                swc_store_free_decoded(&t->base);
            }
            break;
        }
        p->stats.tasks_decoded++;
        w->b->decodes--;
    }
    if (ts.n == 0) {
        task_set_clear(&ts);
        return all;
    }
    struct swc_sched_task *st = swc_calloc(ts.n, sizeof *st);
    struct swc_constraint_set *cons = swc_calloc(ts.n, sizeof *cons);
    void **arenas = swc_calloc(ts.n, sizeof *arenas);
    struct swc_sched_result *res = swc_calloc(ts.n, sizeof *res);
    Swarmc__Task **of = swc_calloc(ts.n, sizeof *of);
    size_t n = 0;
    bool placed = false;
    if (st == NULL || cons == NULL || arenas == NULL || res == NULL || of == NULL) {
        goto out;
    }
    /* swc_sched_place groups identical tasks (service, spec version) itself. */
    for (size_t i = 0; i < ts.n; i++) {
        struct swc_err err;
        if (swc_sched_task_from_pb(ts.pb[i], &st[n], &cons[n], &arenas[n], &err) != 0) {
            continue;
        }
        of[n++] = ts.pb[i];
    }
    for (size_t i = 0; i < n; i++) {
        st[i].constraints = &cons[i];
    }
    if (swc_sched_place(sched, st, n, now, res) != 0) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        /* Results come back in input order, but match by id to be sure. */
        Swarmc__Task *t = of[i];
        if (strcmp(t->id, res[i].task_id) != 0) {
            t = NULL;
            for (size_t k = 0; k < n && t == NULL; k++) {
                t = strcmp(of[k]->id, res[i].task_id) == 0 ? of[k] : NULL;
            }
        }
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
            placed = true;
        } else {
            struct unplaced *u = swc_calloc(1, sizeof *u);
            if (u != NULL) {
                snprintf(u->id, sizeof u->id, "%s", t->id);
                HASH_ADD_STR(p->unplaced, id, u);
                added++;
            }
            if (res[i].explain != NULL &&
                (old_err == NULL || strcmp(old_err, res[i].explain) != 0)) {
                t->status->err = res[i].explain;
                put_task(w, t, version);
            }
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
    swc_free(of);
    task_set_clear(&ts);
    /* Tasks left over are worth another pass when this chunk placed some or
     * set some aside as unplaceable (the next chunk starts past them);
     * unplaceable ones wait for a node or task change. */
    return all || (!placed && added == 0);
}

/* Keep at most limit dead tasks per slot of one service (all of them go when
 * the service is gone and they are dead). */
static void reap_service(struct swc_pipeline *p, struct writer *w, const char *service_id,
                         bool exists, int64_t limit)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_service_tasks(p->m->store, service_id, &it);
    size_t n = (size_t)it.remaining, k = 0;
    if (n == 0) {
        return;
    }
    struct swc_reaper_task *rt = swc_calloc(n, sizeof *rt);
    if (rt == NULL) {
        return;
    }
    while (swc_store_iter_next(&it, &o) && k < n) {
        rt[k].id = o.id;
        rt[k].service_id = o.service_id;
        rt[k].slot = o.slot;
        rt[k].node_id = o.node_id;
        rt[k].desired_state = o.desired_state;
        rt[k].state = o.state;
        rt[k].status_ts = (int64_t)o.version; /* write order stands in for time */
        rt[k].service_exists = exists;
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

/* Every service in the store (and every service id tasks point to) dirty. */
static void mark_all(struct swc_pipeline *p)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    swc_store_iter_kind(p->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, &it);
    while (swc_store_iter_next(&it, &o)) {
        mark_svc(p, o.id);
    }
    swc_store_iter_kind(p->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, &it);
    while (swc_store_iter_next(&it, &o)) {
        struct svc_state *ss = svc_get(p, o.service_id, false);
        if (ss == NULL || !ss->dirty) {
            mark_svc(p, o.service_id);
        }
    }
    p->svc_changed = p->need_alloc = p->need_sched = true;
}

/* True when the only work left is filling backlogs with an up-to-date
 * scheduler view, which a pass may do while earlier writes are in flight
 * (nothing it decides depends on their outcome; a failed one makes the view
 * stale or the next pass full, and that waits for every write). */
static bool can_pipeline(const struct swc_pipeline *p)
{
    return p->inflight < PIPELINE_MAX && p->backlogs > 0 && !p->full && p->ndirty == 0 &&
           !p->svc_changed && !p->nodes_stale && p->sched != NULL && !p->sched_stale &&
           p->accounted && !p->stopping && p->m->leader;
}

static void pass(uv_timer_t *timer)
{
    struct swc_pipeline *p = timer->data;
    struct swc_store *s = p->m->store;
    struct budget b = {PASS_DECODES, PASS_WRITES, swc_manager_turn_deadline(p->m, PASS_NS)};
    struct writer w;
    memset(&w, 0, sizeof w);
    w.p = p;
    w.b = &b;
    if (p->stopping || !p->m->leader) {
        return;
    }
    /* A pipelined pass only fills backlogs; the rest waits for the writes. */
    bool pipelined = p->inflight > 0;
    if (pipelined) {
        if (!can_pipeline(p)) {
            return;
        }
        p->stats.pipelined_passes++;
    }
    int64_t now = swc_now_wall(), wake = 0, t0 = swc_now_mono(), t_acct = 0;
    bool more = false;
    p->dirty = false;
    p->stats.passes++;
    if (p->full) {
        p->full = false;
        p->stats.full_passes++;
        mark_all(p);
    }
    for (struct svc_state *ss = pipelined ? NULL : p->svcs; ss != NULL; ss = ss->hh.next) {
        if (ss->wake > 0 && ss->wake <= now) {
            ss->wake = 0;
            mark_svc(p, ss->id);
        }
    }
    if (p->ndirty == 0 && p->backlogs == 0 && !p->need_alloc && !p->need_sched && !p->svc_changed) {
        goto wakeup;
    }

    if (p->nodes_stale) {
        ncache_rebuild(p);
        p->sched_stale = true;
    }
    if (p->sched == NULL || p->sched_stale) {
        swc_sched_destroy(p->sched);
        p->sched = NULL;
        if (swc_sched_create(&p->sched) != 0) {
            return;
        }
        /* From the node cache: nodes are decoded when they change. */
        for (struct ncache *nc = p->nodes; nc != NULL; nc = nc->hh.next) {
            swc_sched_node_add_pb(p->sched, nc->pb, NULL);
        }
        p->sched_stale = false;
        p->accounted = false;
        p->stats.sched_rebuilds++;
        unplaced_clear(p); /* the cluster changed: try them all again */
    }
    struct swc_sched *sched = p->sched;
    size_t n_nodes = swc_sched_node_count(sched), k = 0;
    struct swc_orch_node *nodes = swc_calloc(n_nodes ? n_nodes : 1, sizeof *nodes);
    struct swc_store_iter it;
    struct swc_store_obj o;
    Swarmc__Cluster *cluster = NULL;
    if (nodes == NULL) {
        more = true;
        goto out;
    }
    for (; k < n_nodes; k++) {
        struct swc_sched_node *sn = swc_sched_node_at(sched, k);
        nodes[k].attrs = &sn->attrs;
        nodes[k].ready = sn->ready;
        nodes[k].availability = sn->availability;
    }
    swc_store_iter_kind(s, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &it);
    if (swc_store_iter_next(&it, &o)) {
        cluster = (Swarmc__Cluster *)swc_store_decode(&o, NULL);
    }
    int64_t limit = swc_reaper_limit(cluster);

    int64_t t_nodes = swc_now_mono();
    if (p->svc_changed) {
        p->svc_changed = false;
        allocate_all_ports(p, &w);
    }
    struct svc_state *ss, *tmp;
    HASH_ITER(hh, p->svcs, ss, tmp)
    {
        if ((!ss->dirty && !has_backlog(ss)) || (pipelined && ss->dirty)) {
            continue;
        }
        if (!budget_left(&b)) {
            more = true;
            break;
        }
        if (ss->realloc) {
            continue; /* reconciled once its new endpoint has committed */
        }
        bool was_dirty = ss->dirty;
        swc_tracef(MOD, "service %s: %s", ss->id, was_dirty ? "reconcile" : "backlog");
        unmark_svc(p, ss);
        Swarmc__Service *svc = (Swarmc__Service *)swc_store_get_decoded(
            s, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, ss->id, NULL);
        if (!was_dirty && svc != NULL && svc->spec_version == ss->backlog_version) {
            /* Filling: half the pass's writes, the rest is the scheduler's
             * (all of them in a pipelined pass, which does not schedule). */
            int64_t tn = swc_now_mono();
            struct budget *outer = w.b,
                          half = {b.decodes, b.writes / 2 + 1, tn + (b.deadline - tn) / 2};
            if (pipelined) {
                half.writes = b.writes;
                half.deadline = b.deadline;
            }
            w.b = &half;
            if (!p->accounted && ss->backlog_pos < ss->nbacklog) {
                account_tasks(p, sched, now, &b);
                p->accounted = true;
            }
            size_t given = half.writes, given_dec = half.decodes;
            bool drained = apply_backlog(&w, ss, svc, p->accounted ? sched : NULL, now);
            if (given - half.writes > p->stats.max_fill_writes) {
                p->stats.max_fill_writes = given - half.writes;
            }
            b.writes -= given - half.writes;
            b.decodes -= given_dec - half.decodes;
            w.b = outer;
            /* Drained: the slots are what the orchestrator decided, and
             * anything relevant since would have dirtied the service. */
            more |= !drained;
            swc_store_free_decoded(&svc->base);
            continue;
        }
        drop_backlog(p, ss);
        if (!was_dirty) {
            mark_svc(p, ss->id); /* the spec moved on: decide again */
            more = true;
            if (svc != NULL) {
                swc_store_free_decoded(&svc->base);
            }
            continue;
        }
        if (svc == NULL) {
            /* Gone: its dead tasks are reaped; forget it with its last task. */
            struct swc_store_counts c;
            reap_service(p, &w, ss->id, false, limit);
            swc_store_service_counts(s, ss->id, &c);
            if (c.total == 0) {
                HASH_DEL(p->svcs, ss);
                swc_free(ss->failed);
                swc_free(ss->backlog);
                swc_free(ss->rm);
                swc_free(ss);
            }
            continue;
        }
        ss->known = true;
        ss->mode = svc_mode(svc);
        if (svc->spec == NULL || svc->spec->annotations == NULL) {
            swc_store_free_decoded(&svc->base);
            continue;
        }
        if (!reconcile_service(p, &w, ss, svc, nodes, k, sched, now)) {
            if (!has_backlog(ss)) {
                mark_svc(p, ss->id);
            }
            more = true;
        }
        reap_service(p, &w, ss->id, true, limit);
        swc_store_free_decoded(&svc->base);
    }
    for (ss = p->svcs; ss != NULL; ss = ss->hh.next) {
        ss->realloc = false;
    }
    int64_t t_svcs = swc_now_mono();
    size_t writes_svcs = PASS_WRITES - b.writes;
    if (pipelined) {
        more |= p->need_alloc || p->need_sched; /* for the pass after the writes */
    } else if (p->need_alloc && budget_left(&b)) {
        p->need_alloc = !allocate(p, &w, now);
        more |= p->need_alloc;
    }
    if (pipelined) {
        /* alloc and sched wait for the pass after the writes (above) */
    } else if (p->need_sched && budget_left(&b) &&
               (swc_store_iter_state(s, SWARMC__TASK_STATE__TASK_STATE_PENDING, &it),
                it.remaining > 0)) {
        int64_t ta = swc_now_mono();
        if (!p->accounted) {
            account_tasks(p, sched, now, &b);
            p->accounted = true;
        }
        t_acct = swc_now_mono() - ta;
        p->need_sched = !schedule(p, &w, sched, now);
        more |= p->need_sched;
    } else if (p->need_sched && !budget_left(&b)) {
        more = true;
    } else {
        p->need_sched = false;
    }
    int64_t t_flush = swc_now_mono();
    writer_flush(&w);
    int64_t t_end = swc_now_mono();
    if (t_end - t0 > SLOW_PASS_MS * SWC_NS_PER_MS) {
        swc_infof(
            MOD,
            "slow pass: %lld ms (nodes %lld, services %lld [%zu writes], alloc+sched "
            "%lld [accounting %lld], propose %lld; %zu writes, %zu decodes)",
            (long long)((t_end - t0) / SWC_NS_PER_MS), (long long)((t_nodes - t0) / SWC_NS_PER_MS),
            (long long)((t_svcs - t_nodes) / SWC_NS_PER_MS), writes_svcs,
            (long long)((t_flush - t_svcs) / SWC_NS_PER_MS), (long long)(t_acct / SWC_NS_PER_MS),
            (long long)((t_end - t_flush) / SWC_NS_PER_MS), (size_t)(PASS_WRITES - b.writes),
            (size_t)(PASS_DECODES - b.decodes));
    }
out:
    if (cluster != NULL) {
        swc_store_free_decoded(&cluster->base);
    }
    swc_free(nodes);
wakeup:;
    int64_t took = swc_now_mono() - t0;
    if (took > p->stats.max_pass_ns) {
        p->stats.max_pass_ns = took;
    }
    if (PASS_WRITES - b.writes > p->stats.max_pass_writes) {
        p->stats.max_pass_writes = PASS_WRITES - b.writes;
    }
    if (more) {
        p->stats.chunked_passes++;
        p->dirty = true;
        if (p->inflight == 0 || can_pipeline(p)) {
            /* 1 ms, not 0: libuv before 1.45 runs a timer restarted with
             * 0 from a timer callback again in the same turn (uv_now does
             * not move), so chunks of work chained into one turn of
             * seconds (the leader's turns of 2-3 s while warming the task
             * cache of a 30k-task service). 1 ms is past uv_now: the next
             * chunk runs after this turn's I/O. */
            uv_timer_start(&p->timer, pass, 1, 0);
        }
        return;
    }
    for (struct svc_state *ss2 = p->svcs; ss2 != NULL; ss2 = ss2->hh.next) {
        if (ss2->wake > 0 && (wake == 0 || ss2->wake < wake)) {
            wake = ss2->wake;
        }
    }
    if (wake > 0 && p->inflight == 0) {
        int64_t ms = (wake - now) / SWC_NS_PER_MS;
        uv_timer_start(&p->timer, pass, ms < 1 ? 1 : (uint64_t)ms, 0);
    }
}

int swc_pipeline_start(struct swc_manager *m, struct swc_pipeline **out)
{
    struct swc_pipeline *p = swc_calloc(1, sizeof *p);
    if (p == NULL) {
        return SWC_ENOMEM;
    }
    p->m = m;
    p->write = default_write;
    p->write_data = m;
    uv_timer_init(m->loop, &p->timer);
    p->timer.data = p;
    p->watch.cb = on_event;
    p->watch.data = p;
    swc_store_watch(m->store, &p->watch);
    p->dirty = true;
    p->full = true; /* events are lost across leader changes */
    p->nodes_stale = true;
    uv_timer_start(&p->timer, pass, 0, 0);
    *out = p;
    return 0;
}

void swc_pipeline_set_writer(struct swc_pipeline *p, swc_pipeline_write_fn fn, void *data)
{
    p->write = fn;
    p->write_data = data;
}

void swc_pipeline_test_overrun(struct swc_pipeline *p, bool on)
{
    p->overrun = on;
}

void swc_pipeline_get_stats(const struct swc_pipeline *p, struct swc_pipeline_stats *out)
{
    *out = p->stats;
}

void swc_pipeline_reset_max(struct swc_pipeline *p)
{
    p->stats.max_pass_ns = 0;
    p->stats.max_pass_writes = 0;
    p->stats.max_fill_writes = 0;
}

void swc_pipeline_kick(struct swc_pipeline *p)
{
    p->dirty = true;
    p->full = true; /* the caller knows something changed, not what */
    p->nodes_stale = true;
    p->sched_stale = true;
    if (p->inflight == 0 && !p->stopping) {
        uv_timer_start(&p->timer, pass, 0, 0);
    }
}

void swc_pipeline_stop(struct swc_pipeline *p)
{
    p->stopping = true;
    swc_store_unwatch(p->m->store, &p->watch);
    uv_timer_stop(&p->timer);
    free_state(p);
    /* p is freed when its timer has closed, once no write is in flight
     * (otherwise the last write's callback closes it). */
    if (p->inflight == 0) {
        uv_close((uv_handle_t *)&p->timer, timer_closed);
    }
}
