/* The dispatcher: the leader's side of worker sessions (DESIGN §6.5).
 *
 * Per node one session: "dispatcher.Session" registers the node (writing its
 * description and READY into the store) and stays open as the session's
 * lifeline; "dispatcher.Heartbeat" only touches memory (no raft write per
 * heartbeat); "dispatcher.Assignments" streams the node's tasks: a complete
 * set first, then numbered incremental changes. Store events only note which
 * tasks changed for which session; after the commit a 0 ms timer builds and
 * sends the changes from the store, a time budget's worth of sessions per
 * loop turn, so applying a big entry does not also encode it for every
 * worker. Complete sets are spread the same way (after a leader change every
 * node asks for one at once). "dispatcher.UpdateTaskStatus" queues statuses,
 * which are coalesced and written in batches every 100 ms. A status that
 * would move a task backwards is dropped, and a node may only report its own
 * tasks. A timer marks nodes DOWN after 3 missed heartbeat periods (6 right
 * after this manager became leader). A manager that is not the leader
 * answers a session with "not the leader, try X". While no leader is known
 * (an election), it parks the request instead of refusing it, and answers
 * every parked one as soon as a leader is known, with "try <itself>" when it
 * won: the worker then reuses its connection, so a fleet's failover costs
 * one handshake per worker, not one per manager tried. A re-registration
 * that would write what the store already says writes nothing. Neither an
 * assignment nor a status write decodes a task: an update carries the stored
 * bytes as they are, and a status write replaces the status field in them
 * (the bytes protobuf-c would produce; ~15 us per task less on a busy host).
 * Work spread over turns re-arms with 1 ms, not 0: libuv 1.44 runs a 0 ms
 * timer started from its own callback again in the same timer phase, before
 * any I/O. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "manager/manager_int.h"

#define MOD             "dispatcher"
#define STATUS_FLUSH_MS 100
#define CHECK_MS        500
#define DOWN_BATCH      64                   /* nodes marked down per check at least ... */
#define DOWN_NS         (10 * SWC_NS_PER_MS) /* ... and more while this lasts */
#define REG_WINDOW_NS   (8 * SWC_NS_PER_SEC)
#define REG_MAX         3
#define STATUS_BATCH    4000                 /* statuses per write: keeps one flush ~10-20 ms */
#define FLUSH_NS        (15 * SWC_NS_PER_MS) /* ... and this bounds it on a busy host */
#define LAG_MS          50                   /* loop-lag probe period */
#define LAG_INFO_MS     100                  /* a turn longer than this is logged */
#define LAG_WARN_MS     200                  /* ... as a warning */
#define SLOW_EVENTS_MS  50                   /* an entry's events slower than this are logged */
#define SEND_NS         (20 * SWC_NS_PER_MS) /* incremental sends per loop turn */
#define COMPLETE_NS     (10 * SWC_NS_PER_MS) /* complete sets built per loop turn */
#define PARK_MS         50                   /* parked sessions: leader looked up this often */
#define PARK_MAX_NS     (5 * SWC_NS_PER_SEC) /* ... and refused after waiting this long */
#define PARK_CAP        65536                /* parked at most at once */
#define PARK_NS         (5 * SWC_NS_PER_MS)  /* answers sent per loop turn */
#define ADMIT_NS        (8 * SWC_NS_PER_MS)  /* registrations per loop turn (leader) */

struct session;

/* A task a session was sent: in the session's table (hh) and in the
 * dispatcher's table of all sent tasks (all), so a removed task finds its
 * session without a scan over every session. */
struct sent_task {
    char id[SWC_STORE_ID_MAX + 1];
    int desired;
    uint64_t spec_version;
    struct session *s;
    UT_hash_handle hh;
    UT_hash_handle all;
};

/* A task whose change a session has yet to hear (its current state is read
 * from the store when the change is sent). */
struct changed_task {
    char id[SWC_STORE_ID_MAX + 1];
    UT_hash_handle hh;
};

struct session {
    char node_id[SWC_STORE_ID_MAX + 1];
    char session_id[SWC_ID_LEN + 1];
    struct swc_dispatcher *d;
    struct swc_rpc_req *session_req;
    struct swc_rpc_req *assign_req;
    int64_t last_seen;
    struct session *seen_prev, *seen_next; /* swc_dispatcher.seen: by last_seen */
    bool in_seen;
    uint64_t seq;
    struct sent_task *sent;
    Swarmc__Assignment **pending; /* incremental changes not yet sent */
    /* Per pending change: the stored task it sends (referenced), encoded
     * as it is instead of decoded into the Assignment, or NULL. */
    struct swc_store_blob **blobs;
    size_t npending, cap;
    struct changed_task *changed; /* updates not yet built into pending */
    bool down_written;
    bool ready_pending; /* writing READY failed: check_nodes writes it again */
    bool want_complete; /* its complete set waits for a later turn */
    int64_t reg_times[REG_MAX];
    UT_hash_handle hh;
    UT_hash_handle by_sid; /* in swc_dispatcher.by_session */
    bool in_sid;
};

/* A session request a follower holds while no leader is known. */
struct parked {
    struct swc_rpc_req *req;
    int64_t since;
    struct parked *prev, *next;
};

/* A session request waiting for a later turn on the leader. */
struct admit {
    struct swc_rpc_req *req; /* NULL once canceled */
    struct admit *next;
    size_t len;
    uint8_t payload[];
};

struct status_item {
    char task_id[SWC_STORE_ID_MAX + 1];
    char node_id[SWC_STORE_ID_MAX + 1];
    uint8_t *bytes; /* the encoded TaskStatus */
    size_t len;
    int state; /* its state */
    UT_hash_handle hh;
};

struct swc_dispatcher {
    struct swc_manager *m;
    struct session *sessions;
    /* Every session, the least recently heard from first: check_nodes looks
     * only at the head, not at all 10,000 sessions every check. */
    struct session *seen_head, *seen_tail;
    size_t ready_pending_n;     /* sessions with ready_pending set */
    struct session *by_session; /* the same sessions, by session id */
    struct sent_task *sent_all;
    struct status_item *statuses;
    struct swc_store_watch watch;
    bool watching;
    int64_t ev_ns; /* time spent in this entry's events so far */
    bool leader;
    int64_t leader_since;
    int64_t next_node_scan;    /* check_nodes: when to look at nodes without a session */
    int64_t next_session_scan; /* check_nodes: when to walk the sessions again */
    uv_timer_t flush_timer;
    uv_timer_t check_timer;
    bool flush_armed;
    int status_inflight;
    int node_inflight;
    bool closing;
    int open_timers;
    uv_timer_t lag_timer;
    int64_t lag_last;
    int64_t lag_max;
    /* Complete sets (a node's whole task list) are spread over loop turns:
     * after a leader change every node asks for one at once. */
    uv_timer_t complete_timer;
    /* Incremental changes are built and sent after the commit that made
     * them, a time budget's worth of sessions per turn, not inside apply. */
    uv_timer_t send_timer;
    /* Session requests that reached this manager during an election: held
     * until a leader is known, then answered with its address (this
     * manager's own when it won, so the worker reuses its connection). */
    struct parked *parked_head, *parked_tail;
    size_t nparked;
    uv_timer_t park_timer;
    /* Registration on the leader is admitted under a per-turn budget: after
     * a failover thousands of sessions arrive in one poll phase, and
     * registering them all there would hold raft's ticks for seconds. The
     * budget is refilled by admit_timer, which runs in the timer phase,
     * i.e. once per loop iteration. */
    struct admit *admit_head, *admit_tail;
    size_t nadmit;
    int64_t admit_spent;
    uv_timer_t admit_timer;
    uint64_t admitted_late; /* registrations that waited for a later turn */
    uint64_t marked_down;   /* nodes found past their grace and marked down */
    uint64_t session_scans; /* check_nodes runs that looked at the sessions */
    uint64_t scan_visits;   /* sessions those runs looked at */
    size_t ncomplete;       /* sessions with want_complete */
    uint64_t complete_turn; /* uv_now() of the turn complete_spent counts */
    int64_t complete_spent;
};

/* ---- assignments ------------------------------------------------------------ */

/* Read a varint at *p (before end); false when truncated or too long. */
static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = x;
            return true;
        }
    }
    return false;
}

static size_t put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* One top-level field at *p: its number, and for a varint its value;
 * *p moves past it. False when the bytes are malformed. */
static bool wire_field(const uint8_t **p, const uint8_t *end, uint64_t *field, uint64_t *value)
{
    uint64_t key, v = 0;
    if (!wire_varint(p, end, &key)) {
        return false;
    }
    switch (key & 7) {
    case 0:
        if (!wire_varint(p, end, &v)) {
            return false;
        }
        break;
    case 1:
        if (end - *p < 8) {
            return false;
        }
        *p += 8;
        break;
    case 2:
        if (!wire_varint(p, end, &v) || v > (uint64_t)(end - *p)) {
            return false;
        }
        *p += v;
        break;
    case 5:
        if (end - *p < 4) {
            return false;
        }
        *p += 4;
        break;
    default:
        return false;
    }
    *field = key >> 3;
    *value = v;
    return true;
}

#define TASK_SPEC_VERSION_FIELD 4 /* Task.spec_version in types.proto */

/* The spec_version of an encoded task (0 when absent or malformed). */
static uint64_t wire_spec_version(const struct swc_store_blob *b)
{
    const uint8_t *p = b->data, *end = b->data + b->len;
    uint64_t field, v;
    while (p < end && wire_field(&p, end, &field, &v)) {
        if (field == TASK_SPEC_VERSION_FIELD) {
            return v;
        }
    }
    return 0;
}

/* An update of the stored task o: an Assignment with no item, whose task
 * send_message takes from o's blob (referenced in *blob) as it is encoded. */
static Swarmc__Assignment *make_update(const struct swc_store_obj *o, struct swc_store_blob **blob)
{
    Swarmc__Assignment *a = swc_calloc(1, sizeof *a);
    if (a == NULL) {
        return NULL;
    }
    swarmc__assignment__init(a);
    a->action = SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_UPDATE;
    *blob = swc_store_blob_ref(o->blob);
    return a;
}

static Swarmc__Assignment *make_remove(const char *id)
{
    Swarmc__Assignment *a = swc_calloc(1, sizeof *a);
    if (a == NULL) {
        return NULL;
    }
    swarmc__assignment__init(a);
    a->action = SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_REMOVE;
    a->removed_id = swc_strdup(id);
    if (a->removed_id == NULL) {
        swc_free(a);
        return NULL;
    }
    return a;
}

static void free_assignment(Swarmc__Assignment *a)
{
    if (a->task != NULL) {
        swc_store_free_decoded(&a->task->base);
    }
    if (a->removed_id != protobuf_c_empty_string) {
        swc_free(a->removed_id);
    }
    swc_free(a);
}

static void clear_pending(struct session *s)
{
    struct changed_task *c, *tmp;
    for (size_t i = 0; i < s->npending; i++) {
        free_assignment(s->pending[i]);
        swc_store_blob_unref(s->blobs[i]);
    }
    s->npending = 0;
    HASH_ITER(hh, s->changed, c, tmp)
    {
        HASH_DEL(s->changed, c);
        swc_free(c);
    }
}

static void sent_del(struct session *s, struct sent_task *e)
{
    HASH_DEL(s->sent, e);
    HASH_DELETE(all, s->d->sent_all, e);
    swc_free(e);
}

static void clear_sent(struct session *s)
{
    struct sent_task *e, *tmp;
    HASH_ITER(hh, s->sent, e, tmp)
    {
        sent_del(s, e);
    }
}

/* Queue a (and blob, its task as encoded, or NULL); both are the session's
 * now, freed on failure. */
static int push_pending_blob(struct session *s, Swarmc__Assignment *a, struct swc_store_blob *blob)
{
    if (s->npending == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        Swarmc__Assignment **p = swc_realloc(s->pending, cap * sizeof *p);
        if (p != NULL) {
            s->pending = p;
        }
        struct swc_store_blob **b = p != NULL ? swc_realloc(s->blobs, cap * sizeof *b) : NULL;
        if (b == NULL) {
            free_assignment(a);
            swc_store_blob_unref(blob);
            return SWC_ENOMEM;
        }
        s->blobs = b;
        s->cap = cap;
    }
    s->blobs[s->npending] = blob;
    s->pending[s->npending++] = a;
    return 0;
}

static int push_pending(struct session *s, Swarmc__Assignment *a)
{
    return push_pending_blob(s, a, NULL);
}

static void note_sent(struct session *s, const struct swc_store_obj *o, uint64_t spec_version);

/* Queue an update of the stored task o and note it sent; 0 or SWC_ENOMEM. */
static int push_update(struct session *s, const struct swc_store_obj *o)
{
    struct swc_store_blob *blob = NULL;
    Swarmc__Assignment *a = make_update(o, &blob);
    if (a == NULL || push_pending_blob(s, a, blob) != 0) {
        return SWC_ENOMEM;
    }
    note_sent(s, o, wire_spec_version(blob));
    return 0;
}

static void note_sent(struct session *s, const struct swc_store_obj *o, uint64_t spec_version)
{
    struct sent_task *e = NULL;
    HASH_FIND_STR(s->sent, o->id, e);
    if (e == NULL) {
        e = swc_calloc(1, sizeof *e);
        if (e == NULL) {
            return;
        }
        snprintf(e->id, sizeof e->id, "%s", o->id);
        e->s = s;
        HASH_ADD_STR(s->sent, id, e);
        struct sent_task *other = NULL;
        HASH_FIND(all, s->d->sent_all, e->id, strlen(e->id), other);
        if (other != NULL) {
            /* moved from another session: that one no longer tracks it */
            HASH_DEL(other->s->sent, other);
            HASH_DELETE(all, s->d->sent_all, other);
            swc_free(other);
        }
        HASH_ADD_KEYPTR(all, s->d->sent_all, e->id, strlen(e->id), e);
    }
    e->desired = o->desired_state;
    e->spec_version = spec_version;
}

static bool assignable(const struct swc_store_obj *o)
{
    return o->state >= SWARMC__TASK_STATE__TASK_STATE_ASSIGNED;
}

static int send_message(struct session *s, int type)
{
    Swarmc__AssignmentsMessage msg = SWARMC__ASSIGNMENTS_MESSAGE__INIT;
    msg.type = (Swarmc__AssignmentsType)type;
    msg.applies_to = s->seq;
    msg.sequence = ++s->seq;
    /* The header packed by protobuf-c, then each change as field 4 (what
     * packing them would append, in order): a task update wraps the stored
     * bytes without decoding and encoding them again. */
    struct swc_buf out;
    swc_buf_init(&out);
    size_t hlen = swarmc__assignments_message__get_packed_size(&msg);
    int rv = swc_buf_reserve(&out, hlen);
    if (rv == 0) {
        swarmc__assignments_message__pack(&msg, out.data);
        out.len = hlen;
    }
    for (size_t i = 0; i < s->npending && rv == 0; i++) {
        Swarmc__Assignment *a = s->pending[i];
        uint8_t hdr[32];
        size_t inner, nh = 0, body = 0;
        if (s->blobs[i] != NULL) {
            size_t bl = s->blobs[i]->len;
            uint8_t ih[16];
            size_t ni = 0;
            if (a->action != SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_UPDATE) {
                ih[ni++] = 0x08; /* field 1, varint */
                ni += put_varint(ih + ni, (uint64_t)a->action);
            }
            ih[ni++] = 0x12; /* field 2 (task), length-delimited */
            ni += put_varint(ih + ni, bl);
            inner = ni + bl;
            hdr[nh++] = 0x22; /* field 4 (changes), length-delimited */
            nh += put_varint(hdr + nh, inner);
            if ((rv = swc_buf_reserve(&out, nh + inner)) == 0) {
                memcpy(out.data + out.len, hdr, nh);
                memcpy(out.data + out.len + nh, ih, ni);
                memcpy(out.data + out.len + nh + ni, s->blobs[i]->data, bl);
                out.len += nh + inner;
            }
            continue;
        }
        body = swarmc__assignment__get_packed_size(a);
        hdr[nh++] = 0x22;
        nh += put_varint(hdr + nh, body);
        if ((rv = swc_buf_reserve(&out, nh + body)) == 0) {
            memcpy(out.data + out.len, hdr, nh);
            swarmc__assignment__pack(a, out.data + out.len + nh);
            out.len += nh + body;
        }
    }
    if (rv == 0) {
        rv = swc_rpc_send(s->assign_req, out.data, out.len);
    }
    swc_buf_free(&out);
    clear_pending(s);
    if (rv != 0) {
        /* Busy or gone: the worker sees a gap and asks for a full set. */
        swc_debugf(MOD, "node %s: assignments send: %s", s->node_id, swc_strerror(rv));
    }
    return rv;
}

static void send_complete(struct session *s)
{
    struct swc_store *st = s->d->m->store;
    struct swc_store_iter it;
    struct swc_store_obj o;
    clear_pending(s);
    clear_sent(s);
    swc_store_iter_node_tasks(st, s->node_id, &it);
    while (swc_store_iter_next(&it, &o)) {
        if (!assignable(&o)) {
            continue;
        }
        push_update(s, &o);
    }
    send_message(s, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE);
}

static void complete_tick(uv_timer_t *timer);

static void want_complete_clear(struct session *s)
{
    if (s->want_complete) {
        s->want_complete = false;
        s->d->ncomplete--;
    }
}

/* Send s its complete set now if this turn's budget allows, otherwise from
 * complete_tick in a later turn (incremental changes wait for it). */
static void request_complete(struct session *s)
{
    struct swc_dispatcher *d = s->d;
    uint64_t turn = uv_now(d->m->loop);
    if (d->complete_turn != turn) {
        d->complete_turn = turn;
        d->complete_spent = 0;
    }
    if (d->ncomplete == 0 && d->complete_spent < COMPLETE_NS) {
        int64_t t0 = swc_now_mono();
        send_complete(s);
        d->complete_spent += swc_now_mono() - t0;
        return;
    }
    if (!s->want_complete) {
        s->want_complete = true;
        d->ncomplete++;
        clear_pending(s);
    }
    if (!uv_is_active((uv_handle_t *)&d->complete_timer)) {
        uv_timer_start(&d->complete_timer, complete_tick, 0, 0);
    }
}

/* Send the queued complete sets, a time budget's worth per turn. */
static void complete_tick(uv_timer_t *timer)
{
    struct swc_dispatcher *d = timer->data;
    int64_t deadline = swc_manager_turn_deadline(d->m, COMPLETE_NS);
    for (struct session *s = d->sessions; s != NULL && d->ncomplete > 0; s = s->hh.next) {
        if (!s->want_complete) {
            continue;
        }
        if (swc_now_mono() >= deadline) {
            uv_timer_start(&d->complete_timer, complete_tick, 1, 0);
            return;
        }
        want_complete_clear(s);
        if (s->assign_req != NULL) {
            send_complete(s);
        }
    }
}

/* A task changed: queue what its node must hear. */
static void task_changed(struct swc_dispatcher *d, const struct swc_store_event *ev)
{
    struct swc_store *st = d->m->store;
    struct swc_store_obj o;
    struct session *s;
    if (ev->type == SWC_STORE_EV_REMOVE ||
        swc_store_get(st, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, ev->id, &o) != 0) {
        /* Gone: the session that had it hears a remove. */
        struct sent_task *e = NULL;
        HASH_FIND(all, d->sent_all, ev->id, strlen(ev->id), e);
        if (e != NULL && e->s->assign_req != NULL && !e->s->want_complete) {
            s = e->s;
            sent_del(s, e);
            Swarmc__Assignment *a = make_remove(ev->id);
            if (a != NULL) {
                push_pending(s, a);
            }
        }
        return;
    }
    HASH_FIND_STR(d->sessions, o.node_id, s);
    if (s == NULL || s->assign_req == NULL || s->want_complete || !assignable(&o)) {
        return;
    }
    struct sent_task *e = NULL;
    HASH_FIND_STR(s->sent, o.id, e);
    if (e != NULL && e->desired == o.desired_state) {
        return; /* a status change the worker itself reported */
    }
    struct changed_task *c = NULL;
    HASH_FIND_STR(s->changed, o.id, c);
    if (c == NULL && (c = swc_calloc(1, sizeof *c)) != NULL) {
        snprintf(c->id, sizeof c->id, "%s", o.id);
        HASH_ADD_STR(s->changed, id, c);
    }
}

/* Build a session's changed tasks into assignments (from the store as it is
 * now) and send them. */
static void flush_session(struct session *s)
{
    struct swc_store *st = s->d->m->store;
    struct changed_task *c, *tmp;
    HASH_ITER(hh, s->changed, c, tmp)
    {
        struct swc_store_obj o;
        if (swc_store_get(st, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, c->id, &o) == 0 &&
            strcmp(o.node_id, s->node_id) == 0 && assignable(&o)) {
            push_update(s, &o);
        }
        HASH_DEL(s->changed, c);
        swc_free(c);
    }
    if (s->npending > 0) {
        send_message(s, SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_INCREMENTAL);
    }
}

static void send_tick(uv_timer_t *timer)
{
    struct swc_dispatcher *d = timer->data;
    int64_t deadline = swc_manager_turn_deadline(d->m, SEND_NS);
    for (struct session *s = d->sessions; s != NULL; s = s->hh.next) {
        if (s->assign_req == NULL || s->want_complete || (s->npending == 0 && s->changed == NULL)) {
            continue;
        }
        if (swc_now_mono() >= deadline) {
            uv_timer_start(&d->send_timer, send_tick, 1, 0);
            return;
        }
        flush_session(s);
    }
}

static void on_event_inner(struct swc_dispatcher *d, const struct swc_store_event *ev);

static void on_event(void *data, const struct swc_store_event *ev)
{
    struct swc_dispatcher *d = data;
    int64_t t0 = swc_now_mono();
    on_event_inner(d, ev);
    d->ev_ns += swc_now_mono() - t0;
    if (ev->type == SWC_STORE_EV_COMMIT) {
        if (d->ev_ns > SLOW_EVENTS_MS * SWC_NS_PER_MS) {
            swc_infof(MOD, "slow events: entry %llu took %lld ms", (unsigned long long)ev->index,
                      (long long)(d->ev_ns / SWC_NS_PER_MS));
        }
        d->ev_ns = 0;
    }
}

static void on_event_inner(struct swc_dispatcher *d, const struct swc_store_event *ev)
{
    if (ev->type == SWC_STORE_EV_COMMIT) {
        if (!uv_is_active((uv_handle_t *)&d->send_timer)) {
            uv_timer_start(&d->send_timer, send_tick, 0, 0);
        }
        return;
    }
    if (ev->type == SWC_STORE_EV_RESTORE) {
        for (struct session *s = d->sessions; s != NULL; s = s->hh.next) {
            if (s->assign_req != NULL) {
                request_complete(s);
            }
        }
        return;
    }
    if (ev->kind == SWARMC__OBJECT_KIND__OBJECT_KIND_TASK) {
        task_changed(d, ev);
    }
}

/* ---- node writes -------------------------------------------------------------- */

struct node_write {
    struct swc_dispatcher *d;
    char node_id[SWC_STORE_ID_MAX + 1];
    int state;
};

/* A node status write failed (a concurrent write to the node, lost
 * leadership): mark it so the liveness check writes it again. */
static void set_ready_pending(struct swc_dispatcher *d, struct session *s, bool on);

static void node_written(void *data, int result, const char *msg)
{
    struct node_write *nw = data;
    struct swc_dispatcher *d = nw->d;
    if (result != 0 && !d->closing && d->leader) {
        struct session *s = NULL;
        swc_debugf(MOD, "node %s status write: %s", nw->node_id, msg);
        HASH_FIND_STR(d->sessions, nw->node_id, s);
        if (s != NULL && nw->state == SWARMC__NODE_STATE__NODE_STATE_READY) {
            set_ready_pending(d, s, true);
        } else if (s != NULL && nw->state == SWARMC__NODE_STATE__NODE_STATE_DOWN) {
            s->down_written = false;
        }
    }
    d->node_inflight--;
    swc_free(nw);
    if (d->closing && d->status_inflight == 0 && d->node_inflight == 0 && d->open_timers == 0) {
        swc_free(d);
    }
}

bool swc_dispatcher_node_current(const Swarmc__Node *n, int state, const char *message,
                                 const Swarmc__NodeDescription *desc, const char *addr, int role)
{
    if (n == NULL || n->status == NULL || (int)n->status->state != state) {
        return false;
    }
    if (strcmp(n->status->message != NULL ? n->status->message : "",
               message != NULL ? message : "") != 0) {
        return false;
    }
    if (addr != NULL && strcmp(n->status->addr != NULL ? n->status->addr : "", addr) != 0) {
        return false;
    }
    if (role >= 0 && (int)n->role != role) {
        return false;
    }
    if (desc == NULL) {
        return true;
    }
    if (n->description == NULL) {
        return false;
    }
    size_t a = swarmc__node_description__get_packed_size(desc);
    size_t b = swarmc__node_description__get_packed_size(n->description);
    if (a != b) {
        return false;
    }
    uint8_t *pa = swc_malloc(a + 1), *pb = swc_malloc(b + 1);
    bool same = false;
    if (pa != NULL && pb != NULL) {
        swarmc__node_description__pack(desc, pa);
        swarmc__node_description__pack(n->description, pb);
        same = memcmp(pa, pb, a) == 0;
    }
    swc_free(pa);
    swc_free(pb);
    return same;
}

/* Write the node's status (and description when given). */
static void write_node(struct swc_dispatcher *d, const char *node_id, int state,
                       const char *message, const Swarmc__NodeDescription *desc, const char *addr,
                       int role)
{
    struct swc_store *st = d->m->store;
    Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
        st, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, node_id, NULL);
    Swarmc__Node fresh = SWARMC__NODE__INIT;
    Swarmc__NodeSpec spec = SWARMC__NODE_SPEC__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__Meta meta = SWARMC__META__INIT;
    Swarmc__NodeStatus status = SWARMC__NODE_STATUS__INIT;
    Swarmc__Node *w = n;
    uint64_t version = 0;
    int64_t now = swc_now_wall();
    if (swc_dispatcher_node_current(n, state, message, desc, addr, role)) {
        /* A re-registration after a leader change: the store already says
         * all of it, and 10,000 nodes would otherwise write 10,000 entries
         * while the new leader has its first writes to commit. */
        swc_store_free_decoded(&n->base);
        return;
    }
    if (n == NULL) {
        if (state != SWARMC__NODE_STATE__NODE_STATE_READY) {
            return;
        }
        role = role < 0 ? SWARMC__NODE_ROLE__NODE_ROLE_WORKER : role;
        fresh.id = (char *)node_id;
        meta.created_at = now;
        fresh.meta = &meta;
        spec.annotations = &ann;
        spec.availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
        spec.desired_role = (Swarmc__NodeRole)role;
        fresh.spec = &spec;
        fresh.role = (Swarmc__NodeRole)role;
        w = &fresh;
    } else {
        version = n->meta != NULL ? n->meta->version : 0;
        if (state == SWARMC__NODE_STATE__NODE_STATE_READY && role >= 0) {
            /* the role of the certificate the node registered with: it
             * changes when a promotion or demotion took effect */
            n->role = (Swarmc__NodeRole)role;
        }
    }
    Swarmc__NodeStatus *old_status = w->status;
    Swarmc__NodeDescription *old_desc = w->description;
    status.state = (Swarmc__NodeState)state;
    status.message = (char *)message;
    status.addr = (char *)(addr != NULL ? addr : (old_status != NULL ? old_status->addr : ""));
    w->status = &status;
    if (desc != NULL) {
        w->description = (Swarmc__NodeDescription *)desc;
    }
    struct swc_store_txn t;
    if (swc_store_txn_init(&t, ++d->m->proposal_seq, d->m->node_id) == 0) {
        int rv = version == 0
                     ? swc_store_txn_create(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &w->base)
                     : swc_store_txn_update(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &w->base,
                                            version);
        if (rv == 0) {
            struct node_write *nw = swc_malloc(sizeof *nw);
            if (nw != NULL) {
                nw->d = d;
                nw->state = state;
                snprintf(nw->node_id, sizeof nw->node_id, "%s", node_id);
                if (swc_manager_write(d->m, &t, node_written, nw) == 0) {
                    d->node_inflight++; /* keeps d alive until the callback */
                } else {
                    swc_free(nw);
                }
            }
        }
        swc_store_txn_free(&t);
    }
    w->status = old_status;
    w->description = old_desc;
    if (n != NULL) {
        swc_store_free_decoded(&n->base);
    }
}

/* ---- sessions ------------------------------------------------------------------ */

static void seen_unlink(struct swc_dispatcher *d, struct session *s)
{
    if (!s->in_seen) {
        return;
    }
    *(s->seen_prev != NULL ? &s->seen_prev->seen_next : &d->seen_head) = s->seen_next;
    *(s->seen_next != NULL ? &s->seen_next->seen_prev : &d->seen_tail) = s->seen_prev;
    s->seen_prev = s->seen_next = NULL;
    s->in_seen = false;
}

/* The node was heard from at now (monotonic, never earlier than any other
 * session's last_seen): it moves to the tail of d->seen. */
static void session_seen(struct swc_dispatcher *d, struct session *s, int64_t now)
{
    seen_unlink(d, s);
    s->last_seen = now;
    s->seen_prev = d->seen_tail;
    *(d->seen_tail != NULL ? &d->seen_tail->seen_next : &d->seen_head) = s;
    d->seen_tail = s;
    s->in_seen = true;
}

static void set_ready_pending(struct swc_dispatcher *d, struct session *s, bool on)
{
    if (s->ready_pending != on) {
        s->ready_pending = on;
        if (on) {
            d->ready_pending_n++;
        } else {
            d->ready_pending_n--;
        }
    }
}

static void session_free(struct swc_dispatcher *d, struct session *s)
{
    seen_unlink(d, s);
    set_ready_pending(d, s, false);
    want_complete_clear(s);
    HASH_DEL(d->sessions, s);
    if (s->in_sid) {
        HASH_DELETE(by_sid, d->by_session, s);
    }
    clear_pending(s);
    clear_sent(s);
    swc_free(s->pending);
    swc_free(s->blobs);
    swc_free(s);
}

static void end_session(struct session *s, int status, const char *msg)
{
    if (s->assign_req != NULL) {
        swc_rpc_end(s->assign_req, status, msg);
        s->assign_req = NULL;
    }
    if (s->session_req != NULL) {
        swc_rpc_end(s->session_req, status, msg);
        s->session_req = NULL;
    }
}

static void session_canceled(struct swc_rpc_req *req, int status, void *data)
{
    struct session *s = data;
    if (s->session_req == req) {
        s->session_req = NULL;
        swc_rpc_end(req, SWC_ECANCELED, "session canceled");
        /* The node stays READY until its heartbeats stop. */
    }
}

static void assign_canceled(struct swc_rpc_req *req, int status, void *data)
{
    struct session *s = data;
    if (s->assign_req == req) {
        s->assign_req = NULL;
        swc_rpc_end(req, SWC_ECANCELED, "assignments canceled");
    }
}

static const char *peer_node(struct swc_rpc_req *req, const char *claimed, int *role)
{
    const struct swc_rpc_peer *peer = swc_rpc_req_peer(req);
    *role = SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
    if (peer != NULL && peer->secure) {
        if (!peer->has_cert) {
            return NULL;
        }
        *role = peer->role == SWC_ROLE_MANAGER ? SWARMC__NODE_ROLE__NODE_ROLE_MANAGER
                                               : SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
        return peer->node_id;
    }
    return claimed != NULL && claimed[0] != '\0' ? claimed : NULL;
}

/* The cluster address of the leader ("" while unknown): this manager's own
 * when it leads. */
static void leader_hint(struct swc_dispatcher *d, char *out, size_t size)
{
    out[0] = '\0';
    if (d->leader) {
        snprintf(out, size, "%s", d->m->advertise_addr != NULL ? d->m->advertise_addr : "");
    } else if (d->m->raft != NULL) {
        swc_manager_leader_addr(d->m, out, size);
        if (d->m->advertise_addr != NULL && strcmp(out, d->m->advertise_addr) == 0) {
            out[0] = '\0'; /* elected, but not leading yet: not a place to go */
        }
    }
}

/* Answer a session request that came to a non-leader: "try <addr>" (the
 * leader, or this manager if it leads now), or a bare refusal. */
static void answer_not_leader(struct swc_rpc_req *req, const char *addr)
{
    Swarmc__SessionMessage m = SWARMC__SESSION_MESSAGE__INIT;
    m.not_leader_try = (char *)addr;
    size_t len;
    uint8_t *buf = addr[0] != '\0' ? swc_pb_pack(&m.base, &len) : NULL;
    if (buf != NULL) {
        swc_rpc_send(req, buf, len);
    }
    swc_free(buf);
    swc_rpc_end(req, SWC_ENOTLEADER, "not the leader");
}

static void park_unlink(struct swc_dispatcher *d, struct parked *p)
{
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        d->parked_head = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    } else {
        d->parked_tail = p->prev;
    }
    d->nparked--;
    swc_free(p);
}

static void park_canceled(struct swc_rpc_req *req, int status, void *data)
{
    (void)status;
    struct parked *p = data;
    /* the entry stays in the list (dropped by park_tick) without its req */
    if (p->req == req) {
        p->req = NULL;
        swc_rpc_end(req, SWC_ECANCELED, "session canceled");
    }
}

/* Answer parked requests once a leader is known (a turn's budget at a
 * time), and refuse those that waited too long. */
static void park_tick(uv_timer_t *t)
{
    struct swc_dispatcher *d = t->data;
    char addr[SWC_RAFT_ADDR_MAX];
    leader_hint(d, addr, sizeof addr);
    int64_t now = swc_now_mono();
    int64_t deadline = now + PARK_NS;
    while (d->parked_head != NULL) {
        struct parked *p = d->parked_head;
        if (p->req != NULL) {
            if (addr[0] == '\0' && now - p->since < PARK_MAX_NS) {
                break; /* the list is in arrival order: the rest are younger */
            }
            if (swc_now_mono() >= deadline) {
                uv_timer_start(&d->park_timer, park_tick, 1, 0);
                return;
            }
            answer_not_leader(p->req, addr);
        }
        park_unlink(d, p);
    }
    if (d->parked_head != NULL) {
        uv_timer_start(&d->park_timer, park_tick, PARK_MS, 0);
    }
}

/* Hold req until a leader is known; false when it cannot be parked. */
static bool park(struct swc_dispatcher *d, struct swc_rpc_req *req)
{
    if (d->closing || d->nparked >= PARK_CAP) {
        return false;
    }
    struct parked *p = swc_calloc(1, sizeof *p);
    if (p == NULL) {
        return false;
    }
    p->req = req;
    p->since = swc_now_mono();
    p->prev = d->parked_tail;
    if (d->parked_tail != NULL) {
        d->parked_tail->next = p;
    } else {
        d->parked_head = p;
    }
    d->parked_tail = p;
    d->nparked++;
    swc_rpc_req_on_cancel(req, park_canceled, p);
    if (!uv_is_active((uv_handle_t *)&d->park_timer)) {
        uv_timer_start(&d->park_timer, park_tick, PARK_MS, 0);
    }
    return true;
}

size_t swc_dispatcher_parked(const struct swc_dispatcher *d)
{
    return d->nparked;
}

static void send_not_leader(struct swc_dispatcher *d, struct swc_rpc_req *req)
{
    char addr[SWC_RAFT_ADDR_MAX] = "";
    leader_hint(d, addr, sizeof addr);
    if (addr[0] == '\0' && park(d, req)) {
        return; /* an election is under way: answered when it ends */
    }
    answer_not_leader(req, addr);
}

/* The cluster addresses of the managers (raft address port - 1, see
 * docs/design.md), this one first. */
static size_t manager_addrs(struct swc_dispatcher *d, char addrs[][SWC_RAFT_ADDR_MAX], char **ptrs,
                            size_t max)
{
    size_t n = 0;
    snprintf(addrs[n], SWC_RAFT_ADDR_MAX, "%s", d->m->advertise_addr);
    ptrs[n] = addrs[n];
    n++;
    struct swc_raft_member *members = NULL;
    size_t nmembers = 0;
    if (d->m->raft == NULL || swc_raft_members(d->m->raft, &members, &nmembers) != 0) {
        return n;
    }
    for (size_t i = 0; i < nmembers && n < max; i++) {
        char host[SWC_RAFT_ADDR_MAX];
        snprintf(host, sizeof host, "%s", members[i].address);
        char *colon = strrchr(host, ':');
        if (colon == NULL || members[i].id == swc_raft_id(d->m->raft)) {
            continue;
        }
        *colon = '\0';
        snprintf(addrs[n], SWC_RAFT_ADDR_MAX, "%.200s:%d", host, atoi(colon + 1) - 1);
        ptrs[n] = addrs[n];
        n++;
    }
    swc_free(members);
    return n;
}

static void session_register(struct swc_dispatcher *d, struct swc_rpc_req *req,
                             const uint8_t *payload, size_t len);

static void admit_canceled(struct swc_rpc_req *req, int status, void *data)
{
    (void)status;
    struct admit *a = data;
    if (a->req == req) {
        a->req = NULL;
        swc_rpc_end(req, SWC_ECANCELED, "session canceled");
    }
}

static struct admit *admit_pop(struct swc_dispatcher *d)
{
    struct admit *a = d->admit_head;
    d->admit_head = a->next;
    if (d->admit_head == NULL) {
        d->admit_tail = NULL;
    }
    d->nadmit--;
    return a;
}

/* Timer phase: a new loop iteration, so a new budget; register queued
 * sessions until it is spent. */
static void admit_tick(uv_timer_t *t)
{
    struct swc_dispatcher *d = t->data;
    d->admit_spent = 0;
    while (d->admit_head != NULL && d->leader) {
        if (d->admit_spent >= ADMIT_NS) {
            uv_timer_start(&d->admit_timer, admit_tick, 1, 0);
            return;
        }
        struct admit *a = admit_pop(d);
        if (a->req != NULL) {
            int64_t t0 = swc_now_mono();
            session_register(d, a->req, a->payload, a->len);
            d->admit_spent += swc_now_mono() - t0;
        }
        swc_free(a);
    }
}

/* Queue req for a later turn; false when out of memory. */
static bool admit_later(struct swc_dispatcher *d, struct swc_rpc_req *req, const uint8_t *payload,
                        size_t len)
{
    struct admit *a = swc_malloc(sizeof *a + len);
    if (a == NULL) {
        return false;
    }
    a->req = req;
    a->next = NULL;
    a->len = len;
    memcpy(a->payload, payload, len);
    if (d->admit_tail != NULL) {
        d->admit_tail->next = a;
    } else {
        d->admit_head = a;
    }
    d->admit_tail = a;
    d->nadmit++;
    d->admitted_late++;
    swc_rpc_req_on_cancel(req, admit_canceled, a);
    return true;
}

/* Hand the queued registrations back when leadership is lost: they are
 * parked or redirected like any session that reaches a non-leader. */
static void admit_drain(struct swc_dispatcher *d)
{
    uv_timer_stop(&d->admit_timer);
    while (d->admit_head != NULL) {
        struct admit *a = admit_pop(d);
        if (a->req != NULL) {
            send_not_leader(d, a->req);
        }
        swc_free(a);
    }
}

void swc_dispatcher_scan_stats(const struct swc_dispatcher *d, uint64_t *scans, uint64_t *visits)
{
    *scans = d->session_scans;
    *visits = d->scan_visits;
}

uint64_t swc_dispatcher_marked_down(const struct swc_dispatcher *d)
{
    return d->marked_down;
}

uint64_t swc_dispatcher_admitted_late(const struct swc_dispatcher *d)
{
    return d->admitted_late;
}

static void h_session(struct swc_rpc_req *req, const uint8_t *payload, size_t len, void *data)
{
    struct swc_dispatcher *d = data;
    if (!d->leader) {
        send_not_leader(d, req);
        return;
    }
    if ((d->admit_head != NULL || d->admit_spent >= ADMIT_NS) &&
        admit_later(d, req, payload, len)) {
        if (!uv_is_active((uv_handle_t *)&d->admit_timer)) {
            uv_timer_start(&d->admit_timer, admit_tick, 1, 0);
        }
        return;
    }
    int64_t t0 = swc_now_mono();
    session_register(d, req, payload, len);
    d->admit_spent += swc_now_mono() - t0;
    if (!uv_is_active((uv_handle_t *)&d->admit_timer)) {
        uv_timer_start(&d->admit_timer, admit_tick, 1, 0); /* refills the budget */
    }
}

/* Register a node's session (the leader's side of "dispatcher.Session"). */
static void session_register(struct swc_dispatcher *d, struct swc_rpc_req *req,
                             const uint8_t *payload, size_t len)
{
    Swarmc__SessionRequest *r = swarmc__session_request__unpack(&swc_pb_allocator, len, payload);
    if (r == NULL) {
        swc_rpc_end(req, SWC_EPROTO, "dispatcher.Session: undecodable request");
        return;
    }
    int role;
    const char *node_id = peer_node(req, r->node_id, &role);
    if (node_id == NULL) {
        swarmc__session_request__free_unpacked(r, &swc_pb_allocator);
        swc_rpc_end(req, SWC_EAUTH, "dispatcher.Session: the node has no certificate");
        return;
    }
    if (swc_manager_node_removed(d->m, node_id)) {
        swarmc__session_request__free_unpacked(r, &swc_pb_allocator);
        swc_rpc_end(req, SWC_EAUTH, "this node was removed from the cluster");
        return;
    }
    int64_t now = swc_now_mono();
    struct session *s = NULL;
    HASH_FIND_STR(d->sessions, node_id, s);
    if (s != NULL) {
        /* Rate limit: more than 3 registrations in 8 s is refused. */
        int recent = 0;
        for (int i = 0; i < REG_MAX; i++) {
            recent += s->reg_times[i] != 0 && now - s->reg_times[i] < REG_WINDOW_NS;
        }
        if (recent >= REG_MAX) {
            swarmc__session_request__free_unpacked(r, &swc_pb_allocator);
            swc_rpc_end(req, SWC_EBUSY,
                        "dispatcher.Session: node registers too often, retry later");
            return;
        }
        end_session(s, SWC_ECANCELED, "replaced by a new session");
    } else {
        s = swc_calloc(1, sizeof *s);
        if (s == NULL) {
            swarmc__session_request__free_unpacked(r, &swc_pb_allocator);
            swc_rpc_end(req, SWC_ENOMEM, "out of memory");
            return;
        }
        snprintf(s->node_id, sizeof s->node_id, "%s", node_id);
        s->d = d;
        HASH_ADD_STR(d->sessions, node_id, s);
    }
    memmove(&s->reg_times[1], &s->reg_times[0], sizeof s->reg_times[0] * (REG_MAX - 1));
    s->reg_times[0] = now;
    if (s->in_sid) {
        HASH_DELETE(by_sid, d->by_session, s);
    }
    swc_id_new(s->session_id);
    HASH_ADD(by_sid, d->by_session, session_id[0], strlen(s->session_id), s);
    s->in_sid = true;
    s->session_req = req;
    session_seen(d, s, now);
    s->down_written = false;
    swc_rpc_req_on_cancel(req, session_canceled, s);

    const struct swc_rpc_peer *peer = swc_rpc_req_peer(req);
    char addr[160];
    snprintf(addr, sizeof addr, "%s",
             r->addr != NULL && r->addr[0] ? r->addr : (peer ? peer->addr : ""));
    write_node(d, s->node_id, SWARMC__NODE_STATE__NODE_STATE_READY, "", r->description, addr, role);
    swarmc__session_request__free_unpacked(r, &swc_pb_allocator);

    Swarmc__SessionMessage m = SWARMC__SESSION_MESSAGE__INIT;
    /* Every manager's cluster address, so the worker can fail over. */
    char addrs[16][SWC_RAFT_ADDR_MAX];
    char *mgrs[16];
    size_t nm = manager_addrs(d, addrs, mgrs, 16);
    m.session_id = s->session_id;
    m.heartbeat_period_ns = d->m->heartbeat_period_ns;
    m.n_managers = nm;
    m.managers = mgrs;
    m.node_id = s->node_id;
    size_t n;
    uint8_t *buf = swc_pb_pack(&m.base, &n);
    if (buf != NULL) {
        swc_rpc_send(req, buf, n);
        swc_free(buf);
    }
    swc_infof(MOD, "node %s registered (session %s)", s->node_id, s->session_id);
}

static struct session *find_session(struct swc_dispatcher *d, const char *session_id)
{
    struct session *s = NULL;
    if (session_id != NULL) {
        HASH_FIND(by_sid, d->by_session, session_id, strlen(session_id), s);
    }
    return s;
}

static void h_heartbeat(struct swc_rpc_req *req, const uint8_t *payload, size_t len, void *data)
{
    struct swc_dispatcher *d = data;
    Swarmc__HeartbeatRequest *r =
        swarmc__heartbeat_request__unpack(&swc_pb_allocator, len, payload);
    if (r == NULL) {
        swc_rpc_reply(req, SWC_EPROTO, "dispatcher.Heartbeat: undecodable request", NULL, 0);
        return;
    }
    struct session *s = d->leader ? find_session(d, r->session_id) : NULL;
    swarmc__heartbeat_request__free_unpacked(r, &swc_pb_allocator);
    if (s == NULL) {
        swc_rpc_reply(req, SWC_ENOENT, "dispatcher.Heartbeat: unknown session", NULL, 0);
        return;
    }
    session_seen(d, s, swc_now_mono());
    if (s->down_written) {
        s->down_written = false;
        write_node(d, s->node_id, SWARMC__NODE_STATE__NODE_STATE_READY, "", NULL, NULL, -1);
    }
    Swarmc__HeartbeatResponse resp = SWARMC__HEARTBEAT_RESPONSE__INIT;
    resp.period_ns = d->m->heartbeat_period_ns;
    uint8_t buf[32];
    size_t n = swarmc__heartbeat_response__pack(&resp, buf);
    swc_rpc_reply(req, 0, NULL, buf, n);
}

static void h_assignments(struct swc_rpc_req *req, const uint8_t *payload, size_t len, void *data)
{
    struct swc_dispatcher *d = data;
    Swarmc__AssignmentsRequest *r =
        swarmc__assignments_request__unpack(&swc_pb_allocator, len, payload);
    if (r == NULL) {
        swc_rpc_end(req, SWC_EPROTO, "dispatcher.Assignments: undecodable request");
        return;
    }
    struct session *s = d->leader ? find_session(d, r->session_id) : NULL;
    swarmc__assignments_request__free_unpacked(r, &swc_pb_allocator);
    if (s == NULL) {
        swc_rpc_end(req, SWC_ENOENT, "dispatcher.Assignments: unknown session");
        return;
    }
    if (s->assign_req != NULL) {
        swc_rpc_end(s->assign_req, SWC_ECANCELED, "replaced");
    }
    s->assign_req = req;
    s->seq = 0;
    swc_rpc_req_on_cancel(req, assign_canceled, s);
    request_complete(s);
}

/* ---- statuses ---------------------------------------------------------------- */

static void flush_statuses(uv_timer_t *t);

/* One status batch in flight: its items come back to the queue if the
 * write fails (a version conflict with a concurrent write, a lost
 * leadership), unless a newer status for the same task arrived meanwhile. */
struct status_batch {
    struct swc_dispatcher *d;
    struct status_item **items;
    size_t n;
};

static void statuses_written(void *data, int result, const char *msg)
{
    struct status_batch *b = data;
    struct swc_dispatcher *d = b->d;
    d->status_inflight--;
    for (size_t i = 0; i < b->n; i++) {
        struct status_item *e = b->items[i], *newer = NULL;
        if (result != 0 && !d->closing && d->leader) {
            HASH_FIND_STR(d->statuses, e->task_id, newer);
            if (newer == NULL) {
                HASH_ADD_STR(d->statuses, task_id, e);
                continue;
            }
        }
        swc_free(e->bytes);
        swc_free(e);
    }
    swc_free(b->items);
    swc_free(b);
    if (d->closing) {
        if (d->status_inflight == 0 && d->node_inflight == 0 && d->open_timers == 0) {
            swc_free(d);
        }
        return;
    }
    if (result != 0) {
        swc_debugf(MOD, "status batch not written (%s): retrying", msg);
    }
    if (d->statuses != NULL && !d->flush_armed && d->leader) {
        /* A backlog of a full batch or more goes out at once (a chunk per
         * commit); a trickle waits for the batching period. */
        bool backlog = HASH_COUNT(d->statuses) >= STATUS_BATCH / 8;
        d->flush_armed = true;
        uv_timer_start(&d->flush_timer, flush_statuses,
                       result != 0 ? 5 : (backlog ? 0 : STATUS_FLUSH_MS), 0);
    }
}

#define TASK_STATUS_FIELD 11 /* Task.status in types.proto */

uint8_t *swc_dispatcher_task_with_status(const uint8_t *data, size_t len, const uint8_t *st,
                                         size_t stlen, size_t *out_len)
{
    /* Find the status field (protobuf-c writes fields in number order, so
     * putting the new one where the old one was, or before the first
     * higher field, gives the bytes a fresh encoding would). */
    const uint8_t *p = data, *end = data + len, *cut = NULL, *resume = NULL, *after = NULL;
    while (p < end) {
        const uint8_t *field_start = p;
        uint64_t field, v;
        if (!wire_field(&p, end, &field, &v)) {
            return NULL;
        }
        if (field == TASK_STATUS_FIELD) {
            if (cut != NULL || after != NULL) {
                return NULL; /* a second status, or out of order: not protobuf-c's */
            }
            cut = field_start;
            resume = p;
        } else if (field > TASK_STATUS_FIELD && after == NULL) {
            after = field_start;
        }
    }
    if (cut == NULL) {
        cut = resume = after != NULL ? after : end; /* no status yet */
    }
    uint8_t hdr[12];
    size_t nh = put_varint(hdr, (TASK_STATUS_FIELD << 3) | 2);
    nh += put_varint(hdr + nh, stlen);
    size_t head = (size_t)(cut - data), tail = (size_t)(end - resume);
    size_t n = head + nh + stlen + tail;
    uint8_t *out = swc_malloc(n ? n : 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, data, head);
    memcpy(out + head, hdr, nh);
    memcpy(out + head + nh, st, stlen);
    memcpy(out + head + nh + stlen, resume, tail);
    *out_len = n;
    return out;
}

static void flush_statuses(uv_timer_t *timer)
{
    struct swc_dispatcher *d = timer->data;
    struct swc_store *st = d->m->store;
    struct status_item *e, *tmp;
    struct swc_store_txn t;
    d->flush_armed = false;
    /* One batch at a time: a second one would read versions the first is
     * about to change, and conflict. The first one's callback flushes again. */
    if (!d->leader || d->statuses == NULL || d->status_inflight > 0) {
        return;
    }
    struct status_batch *b = swc_calloc(1, sizeof *b);
    size_t cap = HASH_COUNT(d->statuses);
    if (cap > STATUS_BATCH) {
        cap = STATUS_BATCH;
    }
    if (b == NULL || (b->items = swc_calloc(cap, sizeof *b->items)) == NULL) {
        swc_free(b);
        return;
    }
    b->d = d;
    if (swc_store_txn_init(&t, ++d->m->proposal_seq, d->m->node_id) != 0) {
        swc_free(b->items);
        swc_free(b);
        return;
    }
    size_t count = 0;
    int64_t deadline = swc_manager_turn_deadline(d->m, FLUSH_NS);
    HASH_ITER(hh, d->statuses, e, tmp)
    {
        if (b->n >= cap || t.bytes > 1024 * 1024 || (b->n > 0 && swc_now_mono() >= deadline)) {
            break;
        }
        struct swc_store_obj o;
        if (swc_store_get(st, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, e->task_id, &o) == 0 &&
            strcmp(o.node_id, e->node_id) == 0 && e->state >= o.state) {
            /* The stored bytes with the status replaced: no decode and
             * encode of the whole task per status. */
            size_t n = 0;
            uint8_t *bytes =
                swc_dispatcher_task_with_status(o.blob->data, o.blob->len, e->bytes, e->len, &n);
            if (bytes != NULL &&
                swc_store_txn_add_encoded(&t, SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE,
                                          SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, o.id, o.version,
                                          bytes, n) == 0) {
                count++;
            }
            swc_free(bytes);
        }
        /* Dropped statuses (unknown task, another node's, going backwards)
         * are freed with the batch; written ones come back on failure. */
        HASH_DEL(d->statuses, e);
        b->items[b->n++] = e;
    }
    if (count > 0 && swc_manager_write(d->m, &t, statuses_written, b) == 0) {
        d->status_inflight++;
    } else {
        d->status_inflight++;
        statuses_written(b, count > 0 ? SWC_EBUSY : 0, "not proposed");
    }
    swc_store_txn_free(&t);
    if (d->statuses != NULL && !d->flush_armed && d->status_inflight == 0) {
        d->flush_armed = true;
        uv_timer_start(&d->flush_timer, flush_statuses, STATUS_FLUSH_MS, 0);
    }
}

static void h_update_status(struct swc_rpc_req *req, const uint8_t *payload, size_t len, void *data)
{
    struct swc_dispatcher *d = data;
    Swarmc__UpdateTaskStatusRequest *r =
        swarmc__update_task_status_request__unpack(&swc_pb_allocator, len, payload);
    if (r == NULL) {
        swc_rpc_reply(req, SWC_EPROTO, "dispatcher.UpdateTaskStatus: undecodable request", NULL, 0);
        return;
    }
    struct session *s = d->leader ? find_session(d, r->session_id) : NULL;
    if (s == NULL) {
        swarmc__update_task_status_request__free_unpacked(r, &swc_pb_allocator);
        swc_rpc_reply(req, SWC_ENOENT, "dispatcher.UpdateTaskStatus: unknown session", NULL, 0);
        return;
    }
    session_seen(d, s, swc_now_mono());
    for (size_t i = 0; i < r->n_updates; i++) {
        Swarmc__TaskStatusUpdate *u = r->updates[i];
        if (u->task_id == NULL || u->status == NULL || strlen(u->task_id) > SWC_STORE_ID_MAX) {
            continue;
        }
        struct status_item *e = NULL;
        HASH_FIND_STR(d->statuses, u->task_id, e);
        if (e == NULL) {
            e = swc_calloc(1, sizeof *e);
            if (e == NULL) {
                break;
            }
            snprintf(e->task_id, sizeof e->task_id, "%s", u->task_id);
            HASH_ADD_STR(d->statuses, task_id, e);
        }
        snprintf(e->node_id, sizeof e->node_id, "%s", s->node_id);
        size_t n;
        uint8_t *bytes = swc_pb_pack(&u->status->base, &n);
        if (bytes != NULL) {
            swc_free(e->bytes);
            e->bytes = bytes;
            e->len = n;
            e->state = (int)u->status->state;
        }
    }
    swarmc__update_task_status_request__free_unpacked(r, &swc_pb_allocator);
    if (!d->flush_armed) {
        d->flush_armed = true;
        uv_timer_start(&d->flush_timer, flush_statuses, STATUS_FLUSH_MS, 0);
    }
    swc_rpc_reply(req, 0, NULL, NULL, 0);
}

/* ---- liveness ------------------------------------------------------------------ */

/* True when the store has node id as READY. */
/* Ids of nodes to mark down, grown as they are found. */
struct down_ids {
    char (*id)[SWC_STORE_ID_MAX + 1];
    size_t n, cap;
};

static bool down_ids_add(struct down_ids *a, const char *id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap != 0 ? 2 * a->cap : DOWN_BATCH;
        void *p = swc_realloc(a->id, cap * sizeof a->id[0]);
        if (p == NULL) {
            return false;
        }
        a->id = p;
        a->cap = cap;
    }
    snprintf(a->id[a->n++], sizeof a->id[0], "%s", id);
    return true;
}

static bool node_ready(struct swc_dispatcher *d, const char *id)
{
    Swarmc__Node *node = (Swarmc__Node *)swc_store_get_decoded(
        d->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, id, NULL);
    bool ready = node != NULL && node->status != NULL &&
                 node->status->state == SWARMC__NODE_STATE__NODE_STATE_READY;
    swc_store_free_decoded(node != NULL ? &node->base : NULL);
    return ready;
}

static void check_nodes(uv_timer_t *timer)
{
    struct swc_dispatcher *d = timer->data;
    if (!d->leader) {
        return;
    }
    struct swc_store_iter it;
    struct swc_store_obj o;
    /* The cluster setting, when set, overrides the start-up default. */
    Swarmc__Cluster *c = NULL;
    swc_store_iter_kind(d->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_CLUSTER, &it);
    if (swc_store_iter_next(&it, &o) &&
        (c = (Swarmc__Cluster *)swc_store_decode(&o, NULL)) != NULL) {
        if (c->spec != NULL && c->spec->dispatcher != NULL &&
            c->spec->dispatcher->heartbeat_period_ns > 0) {
            d->m->heartbeat_period_ns = c->spec->dispatcher->heartbeat_period_ns;
        }
        swc_store_free_decoded(&c->base);
    }
    int64_t now = swc_now_mono();
    int64_t grace = 3 * d->m->heartbeat_period_ns;
    /* The sessions are walked every quarter heartbeat period (at least
     * CHECK_MS apart), the store's nodes, for those that never opened a
     * session with this leader, every half grace period: with 10,000 nodes,
     * walking and hashing them all twice a second was most of the leader's
     * idle CPU. A missed node is still marked down within a period of its
     * grace. */
    if (now < d->next_session_scan) {
        return;
    }
    int64_t every = d->m->heartbeat_period_ns / 4;
    d->next_session_scan = now + (every > CHECK_MS * SWC_NS_PER_MS ? every : 0);
    /* Nodes found dead are collected under a time budget (at least
     * DOWN_BATCH of them): when a whole fleet stops at once, thousands are
     * marked down over a few checks instead of 64 per quarter period (10,000
     * nodes took minutes to show as down), and no check holds the loop. */
    int64_t deadline = swc_manager_turn_deadline(d->m, DOWN_NS);
    struct down_ids ids = {0};
    bool more = false;
    d->session_scans++;
    for (struct session *s = d->seen_head; s != NULL && now - s->last_seen >= grace;
         s = s->seen_next) {
        d->scan_visits++;
        if (!s->down_written && node_ready(d, s->node_id) && down_ids_add(&ids, s->node_id)) {
            if (ids.n >= DOWN_BATCH && swc_now_mono() >= deadline) {
                more = true;
                break;
            }
        }
    }
    for (struct session *s = d->ready_pending_n > 0 ? d->sessions : NULL; s != NULL;
         s = s->hh.next) {
        if (s->ready_pending && !s->down_written && now - s->last_seen < grace) {
            /* a live session whose READY write was lost: write it again */
            set_ready_pending(d, s, false);
            write_node(d, s->node_id, SWARMC__NODE_STATE__NODE_STATE_READY, "", NULL, NULL, 0);
        }
    }
    if (!more && now >= d->next_node_scan) {
        d->next_node_scan = now + grace / 2;
        swc_store_iter_kind(d->m->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &it);
        while (now - d->leader_since >= 2 * grace && swc_store_iter_next(&it, &o)) {
            struct session *s = NULL;
            HASH_FIND_STR(d->sessions, o.id, s);
            if (s == NULL && node_ready(d, o.id) && down_ids_add(&ids, o.id) &&
                ids.n >= DOWN_BATCH && swc_now_mono() >= deadline) {
                d->next_node_scan = 0; /* the rest on the next check */
                break;
            }
        }
    }
    if (more) {
        d->next_session_scan = 0; /* the rest on the next check */
    }
    for (size_t i = 0; i < ids.n; i++) {
        struct session *s = NULL;
        HASH_FIND_STR(d->sessions, ids.id[i], s);
        if (s != NULL) {
            s->down_written = true;
            end_session(s, SWC_ETIMEDOUT, "heartbeat timeout");
        }
    }
    if (ids.n > 8) {
        swc_warnf(MOD, "%zu nodes missed their heartbeats: marking them down", ids.n);
    }
    for (size_t i = 0; i < ids.n; i++) {
        if (ids.n <= 8) {
            swc_warnf(MOD, "node %s missed its heartbeats: marking it down", ids.id[i]);
        }
        write_node(d, ids.id[i], SWARMC__NODE_STATE__NODE_STATE_DOWN, "heartbeat failure", NULL,
                   NULL, 0);
    }
    d->marked_down += ids.n;
    swc_free(ids.id);
}

/* ---- loop-lag probe ----------------------------------------------------------- */

/* A 50 ms repeating timer: how late it fires is how long the loop was busy
 * with something else. Leadership flaps when that nears the election
 * timeout, so long turns are logged with the largest seen so far. */
static void lag_tick(uv_timer_t *timer)
{
    struct swc_dispatcher *d = timer->data;
    int64_t now = swc_now_mono();
    int64_t lag = d->lag_last != 0 ? now - d->lag_last - LAG_MS * SWC_NS_PER_MS : 0;
    d->lag_last = now;
    if (lag <= 0) {
        return;
    }
    if (lag > d->lag_max) {
        d->lag_max = lag;
    }
    if (lag > LAG_INFO_MS * SWC_NS_PER_MS) {
        long long ms = (long long)(lag / SWC_NS_PER_MS);
        long long max = (long long)(d->lag_max / SWC_NS_PER_MS);
        if (lag > LAG_WARN_MS * SWC_NS_PER_MS) {
            swc_warnf(MOD, "loop lag: max %lld ms (a turn of %lld ms%s)", max, ms,
                      d->leader ? ", leader" : "");
        } else {
            swc_infof(MOD, "loop lag: max %lld ms (a turn of %lld ms%s)", max, ms,
                      d->leader ? ", leader" : "");
        }
    }
}

int64_t swc_dispatcher_loop_lag_max(const struct swc_dispatcher *d)
{
    return d->lag_max;
}

/* ---- lifecycle ------------------------------------------------------------------ */

int swc_dispatcher_create(struct swc_manager *m, struct swc_dispatcher **out)
{
    struct swc_dispatcher *d = swc_calloc(1, sizeof *d);
    if (d == NULL) {
        return SWC_ENOMEM;
    }
    d->m = m;
    uv_timer_init(m->loop, &d->flush_timer);
    uv_timer_init(m->loop, &d->check_timer);
    uv_timer_init(m->loop, &d->lag_timer);
    uv_timer_init(m->loop, &d->complete_timer);
    uv_timer_init(m->loop, &d->send_timer);
    uv_timer_init(m->loop, &d->park_timer);
    uv_timer_init(m->loop, &d->admit_timer);
    d->flush_timer.data = d->check_timer.data = d->lag_timer.data = d;
    d->complete_timer.data = d->send_timer.data = d->park_timer.data = d;
    d->admit_timer.data = d;
    uv_timer_start(&d->lag_timer, lag_tick, LAG_MS, LAG_MS);
    uv_unref((uv_handle_t *)&d->lag_timer); /* never keeps the loop alive */
    d->watch.cb = on_event;
    d->watch.data = d;
    *out = d;
    return 0;
}

void swc_dispatcher_register(struct swc_dispatcher *d, struct swc_rpc_server *srv)
{
    swc_rpc_server_register(srv, "dispatcher.Session", true, h_session, d);
    swc_rpc_server_register(srv, "dispatcher.Assignments", true, h_assignments, d);
    swc_rpc_server_register(srv, "dispatcher.Heartbeat", false, h_heartbeat, d);
    swc_rpc_server_register(srv, "dispatcher.UpdateTaskStatus", false, h_update_status, d);
}

static void drop_sessions(struct swc_dispatcher *d, const char *why)
{
    struct session *s, *tmp;
    HASH_ITER(hh, d->sessions, s, tmp)
    {
        end_session(s, SWC_ENOTLEADER, why);
        session_free(d, s);
    }
    struct status_item *e, *et;
    HASH_ITER(hh, d->statuses, e, et)
    {
        HASH_DEL(d->statuses, e);
        swc_free(e->bytes);
        swc_free(e);
    }
}

void swc_dispatcher_leader(struct swc_dispatcher *d, bool leader)
{
    d->leader = leader;
    if (leader) {
        d->leader_since = swc_now_mono();
        d->next_node_scan = d->next_session_scan = 0;
        if (!d->watching) {
            swc_store_watch(d->m->store, &d->watch);
            d->watching = true;
        }
        uv_timer_start(&d->check_timer, check_nodes, CHECK_MS, CHECK_MS);
        if (d->parked_head != NULL) {
            uv_timer_start(&d->park_timer, park_tick, 0, 0); /* "try me" */
        }
    } else {
        if (d->watching) {
            swc_store_unwatch(d->m->store, &d->watch);
            d->watching = false;
        }
        uv_timer_stop(&d->check_timer);
        uv_timer_stop(&d->flush_timer);
        uv_timer_stop(&d->complete_timer);
        uv_timer_stop(&d->send_timer);
        d->flush_armed = false;
        admit_drain(d);
        drop_sessions(d, "this manager is no longer the leader");
    }
}

static void timer_closed(uv_handle_t *h)
{
    struct swc_dispatcher *d = h->data;
    if (--d->open_timers == 0 && d->status_inflight == 0 && d->node_inflight == 0) {
        swc_free(d);
    }
}

void swc_dispatcher_destroy(struct swc_dispatcher *d)
{
    swc_dispatcher_leader(d, false);
    d->closing = true;
    while (d->parked_head != NULL) {
        struct parked *p = d->parked_head;
        if (p->req != NULL) {
            swc_rpc_end(p->req, SWC_ENOTLEADER, "this manager is shutting down");
        }
        park_unlink(d, p);
    }
    d->open_timers = 7;
    uv_close((uv_handle_t *)&d->park_timer, timer_closed);
    uv_close((uv_handle_t *)&d->admit_timer, timer_closed);
    uv_close((uv_handle_t *)&d->send_timer, timer_closed);
    uv_close((uv_handle_t *)&d->complete_timer, timer_closed);
    uv_close((uv_handle_t *)&d->lag_timer, timer_closed);
    uv_close((uv_handle_t *)&d->flush_timer, timer_closed);
    uv_close((uv_handle_t *)&d->check_timer, timer_closed);
}
