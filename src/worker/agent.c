/* The agent: one session with a manager at a time (see agent.h).
 *
 * Every RPC handle we keep (session stream, assignments stream, heartbeat
 * call, status call) lives in a field of the agent. Tearing a session down
 * clears those fields before closing the connection, so the cancellations
 * that arrive afterwards find a handle that is no longer ours and are
 * ignored: that is how stale callbacks from an old connection are told
 * apart from the current one without per-connection allocations.
 *
 * Statuses are kept per task in a hash table with a sequence number: the
 * latest report wins, a batch remembers which sequence it carried, and an
 * entry is dropped only once a manager acknowledged that exact sequence. A
 * failed batch is simply sent again. */
#include "worker/agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "api/dispatcher.pb-c.h"
#include "base/alloc.h"
#include "base/log.h"
#include "net/rpc.h"

#define MOD                "agent"
#define BACKOFF_MIN_MS     100u
#define BACKOFF_MAX_MS     5000u
#define STATUS_BATCH_MAX   10000u
#define HEARTBEAT_TIMEOUT  10000u
#define MANAGERS_MAX       64
#define SAME_CONN_MAX      3u    /* "try me" answers followed on one connection */
#define LOST_SPREAD_MS     1000u /* reconnect window after a live session was lost */
#define REDIRECT_SPREAD_MS 500u  /* reconnect window after "not the leader, try X" */

struct status_entry {
    char *task_id;
    uint8_t *bytes; /* packed Swarmc__TaskStatus */
    size_t len;
    uint64_t seq;      /* bumped on every report */
    uint64_t sent_seq; /* seq carried by the batch in flight, 0 = none */
    UT_hash_handle hh;
};

struct swc_agent {
    uv_loop_t *loop;
    struct swc_worker *worker;
    char *state_dir;
    char *managers[MANAGERS_MAX];
    size_t nmanagers;
    size_t cur;
    bool has_secure;
    struct swc_secchan_config secure;
    char *node_id;
    char *addr;
    uint8_t *desc;
    size_t desc_len;
    unsigned batch_ms;

    struct swc_rpc_conn *conn;
    struct swc_rpc_call *session_call;
    struct swc_rpc_call *assign_call;
    struct swc_rpc_call *hb_call;
    struct swc_rpc_call *status_call;
    char session_id[128];
    int64_t period_ns;
    bool connected;
    bool have_complete;
    unsigned same_conn_retries; /* sessions reopened on the same connection */
    uint64_t last_seq;
    unsigned backoff_ms;

    uv_timer_t hb_timer;
    uv_timer_t reconnect_timer;
    uv_timer_t flush_timer;
    bool flush_armed;

    struct status_entry *statuses;
    uint64_t seq_counter;

    bool closing;
    int open_handles; /* timers, and connections still closing */
    void (*close_cb)(void *data);
    void *close_data;
};

static void do_connect(struct swc_agent *a);
static void open_session(struct swc_agent *a);
static void close_conn(struct swc_agent *a, struct swc_rpc_conn *c);
static void flush_statuses(struct swc_agent *a);
static void reconnect_cb(uv_timer_t *t);
static void flush_cb(uv_timer_t *t);

/* ---- managers list ------------------------------------------------------ */

static int add_manager(struct swc_agent *a, const char *addr)
{
    if (addr == NULL || addr[0] == '\0') {
        return -1;
    }
    for (size_t i = 0; i < a->nmanagers; i++) {
        if (strcmp(a->managers[i], addr) == 0) {
            return (int)i;
        }
    }
    if (a->nmanagers == MANAGERS_MAX) {
        return -1;
    }
    char *copy = swc_strdup(addr);
    if (copy == NULL) {
        return -1;
    }
    a->managers[a->nmanagers] = copy;
    return (int)a->nmanagers++;
}

static void persist_managers(struct swc_agent *a)
{
    char path[4096], tmp[4200];
    if (a->state_dir == NULL) {
        return;
    }
    snprintf(path, sizeof path, "%s/managers", a->state_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* A few hundred bytes, written only when the list changes. */
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        swc_warnf(MOD, "persist managers: %s: %s", tmp, strerror(errno));
        return;
    }
    for (size_t i = 0; i < a->nmanagers; i++) {
        fprintf(f, "%s\n", a->managers[i]);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        swc_warnf(MOD, "persist managers: %s: %s", path, strerror(errno));
    }
}

static void load_managers(struct swc_agent *a)
{
    char path[4096], line[512];
    if (a->state_dir == NULL) {
        return;
    }
    snprintf(path, sizeof path, "%s/managers", a->state_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        add_manager(a, line);
    }
    fclose(f);
}

/* ---- session teardown and reconnect ------------------------------------- */

static void schedule_reconnect(struct swc_agent *a, unsigned delay_ms)
{
    if (a->closing) {
        return;
    }
    uv_timer_start(&a->reconnect_timer, reconnect_cb, delay_ms, 0);
}

static unsigned next_backoff(struct swc_agent *a)
{
    unsigned base = a->backoff_ms == 0 ? BACKOFF_MIN_MS : a->backoff_ms;
    a->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
    /* +-25 % jitter so a fleet does not reconnect in lockstep. */
    unsigned jitter = base / 4 + 1;
    return base - jitter + (unsigned)(rand() % (int)(2 * jitter));
}

/* A delay drawn uniformly from [window/8, window]: after a leader dies or
 * names its successor, thousands of agents react to the same event, and
 * the managers' handshakes must not all land in one loop turn. */
static unsigned spread_ms(unsigned window_ms)
{
    unsigned lo = window_ms / 8;
    return lo + (unsigned)(rand() % (int)(window_ms - lo + 1));
}

static void session_down(struct swc_agent *a, const char *why, bool rotate, unsigned delay_ms)
{
    bool was = a->connected;
    a->connected = false;
    a->have_complete = false;
    a->session_call = NULL;
    a->assign_call = NULL;
    a->hb_call = NULL;
    a->status_call = NULL;
    uv_timer_stop(&a->hb_timer);
    struct status_entry *e, *tmp;
    HASH_ITER(hh, a->statuses, e, tmp)
    {
        e->sent_seq = 0;
    }
    if (a->conn != NULL) {
        struct swc_rpc_conn *c = a->conn;
        a->conn = NULL;
        close_conn(a, c);
    }
    if (was) {
        swc_warnf(MOD, "session with %s down: %s", a->managers[a->cur], why);
    } else {
        swc_debugf(MOD, "connect to %s failed: %s", a->managers[a->cur], why);
    }
    if (rotate && a->nmanagers > 1) {
        if (was) {
            /* The manager of a live session failed: go to any other one, so
             * a fleet splits over the survivors instead of all landing on
             * the next in the list, and spread out in time. */
            size_t step = 1 + (size_t)rand() % (a->nmanagers - 1);
            a->cur = (a->cur + step) % a->nmanagers;
            unsigned spread = spread_ms(LOST_SPREAD_MS);
            delay_ms = delay_ms > spread ? delay_ms : spread;
        } else {
            a->cur = (a->cur + 1) % a->nmanagers;
        }
    }
    schedule_reconnect(a, delay_ms);
}

static void reconnect_cb(uv_timer_t *t)
{
    struct swc_agent *a = t->data;
    do_connect(a);
}

/* ---- heartbeats ---------------------------------------------------------- */

static void hb_reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                        const uint8_t *payload, size_t len, void *data)
{
    struct swc_agent *a = data;
    if (call != a->hb_call) {
        return;
    }
    a->hb_call = NULL;
    if (status != 0) {
        session_down(a, errmsg != NULL ? errmsg : swc_strerror(status), true, next_backoff(a));
        return;
    }
    Swarmc__HeartbeatResponse *r =
        swarmc__heartbeat_response__unpack(&swc_pb_allocator, len, payload);
    if (r != NULL) {
        if (r->period_ns > 0 && r->period_ns != a->period_ns) {
            a->period_ns = r->period_ns;
            uint64_t ms = (uint64_t)(a->period_ns / 1000000);
            uv_timer_set_repeat(&a->hb_timer, ms);
        }
        swarmc__heartbeat_response__free_unpacked(r, &swc_pb_allocator);
    }
}

static void hb_timer_cb(uv_timer_t *t)
{
    struct swc_agent *a = t->data;
    if (!a->connected || a->hb_call != NULL) {
        return;
    }
    Swarmc__HeartbeatRequest req = SWARMC__HEARTBEAT_REQUEST__INIT;
    req.session_id = a->session_id;
    uint8_t buf[256];
    size_t n = swarmc__heartbeat_request__pack(&req, buf);
    if (swc_rpc_call(a->conn, "dispatcher.Heartbeat", buf, n, HEARTBEAT_TIMEOUT, hb_reply_cb, a,
                     &a->hb_call) != 0) {
        a->hb_call = NULL;
        session_down(a, "heartbeat refused", true, next_backoff(a));
    }
}

/* ---- assignments ---------------------------------------------------------- */

static void open_assignments(struct swc_agent *a);

static void assign_msg_cb(struct swc_rpc_call *call, const uint8_t *payload, size_t len, void *data)
{
    struct swc_agent *a = data;
    if (call != a->assign_call) {
        return;
    }
    Swarmc__AssignmentsMessage *m =
        swarmc__assignments_message__unpack(&swc_pb_allocator, len, payload);
    if (m == NULL) {
        session_down(a, "undecodable assignments message", true, next_backoff(a));
        return;
    }
    bool ok;
    if (m->type == SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE) {
        ok = true;
    } else {
        ok = a->have_complete && m->applies_to == a->last_seq;
    }
    if (!ok) {
        /* A gap: ask again, the new stream starts with a complete set. */
        swc_infof(MOD, "assignments gap (have %llu, message follows %llu): asking for a full set",
                  (unsigned long long)a->last_seq, (unsigned long long)m->applies_to);
        swarmc__assignments_message__free_unpacked(m, &swc_pb_allocator);
        struct swc_rpc_call *old = a->assign_call;
        a->assign_call = NULL;
        swc_rpc_cancel(old);
        open_assignments(a);
        return;
    }
    a->have_complete = true;
    a->last_seq = m->sequence;
    int rv = swc_worker_assign(a->worker, m);
    if (rv != 0) {
        swc_errorf(MOD, "apply assignments: %s", swc_strerror(rv));
    }
    swarmc__assignments_message__free_unpacked(m, &swc_pb_allocator);
}

static void assign_end_cb(struct swc_rpc_call *call, int status, const char *errmsg, void *data)
{
    struct swc_agent *a = data;
    if (call != a->assign_call) {
        return;
    }
    a->assign_call = NULL;
    session_down(a, errmsg != NULL && errmsg[0] ? errmsg : "assignments stream ended", true,
                 next_backoff(a));
}

static void open_assignments(struct swc_agent *a)
{
    Swarmc__AssignmentsRequest req = SWARMC__ASSIGNMENTS_REQUEST__INIT;
    req.session_id = a->session_id;
    uint8_t buf[256];
    size_t n = swarmc__assignments_request__pack(&req, buf);
    a->have_complete = false;
    if (swc_rpc_stream_open(a->conn, "dispatcher.Assignments", buf, n, 0, assign_msg_cb,
                            assign_end_cb, a, &a->assign_call) != 0) {
        a->assign_call = NULL;
        session_down(a, "assignments stream refused", true, next_backoff(a));
    }
}

/* ---- session --------------------------------------------------------------- */

static void session_msg_cb(struct swc_rpc_call *call, const uint8_t *payload, size_t len,
                           void *data)
{
    struct swc_agent *a = data;
    if (call != a->session_call) {
        return;
    }
    Swarmc__SessionMessage *m = swarmc__session_message__unpack(&swc_pb_allocator, len, payload);
    if (m == NULL) {
        session_down(a, "undecodable session message", true, next_backoff(a));
        return;
    }
    if (m->not_leader_try != NULL && m->not_leader_try[0] != '\0') {
        int idx = add_manager(a, m->not_leader_try);
        if (idx >= 0 && (size_t)idx == a->cur && a->same_conn_retries < SAME_CONN_MAX) {
            /* This manager parked us until an election ended and now leads
             * itself: open the session again on the same connection (no new
             * handshake). Its end callback is ignored from here on. */
            swc_infof(MOD, "%s became the leader: opening the session again", m->not_leader_try);
            swarmc__session_message__free_unpacked(m, &swc_pb_allocator);
            a->session_call = NULL;
            a->same_conn_retries++;
            open_session(a);
            return;
        }
        swc_infof(MOD, "%s is not the leader, trying %s", a->managers[a->cur], m->not_leader_try);
        swarmc__session_message__free_unpacked(m, &swc_pb_allocator);
        if (idx >= 0 && (size_t)idx == a->cur) {
            idx = -1; /* it kept naming itself: try another manager */
        }
        if (idx >= 0) {
            a->cur = (size_t)idx;
        }
        /* A whole fleet hears the same redirect at once: spread the
         * reconnections so the new leader's handshakes do not crowd out its
         * first raft rounds. */
        session_down(a, "not the leader", idx < 0,
                     idx >= 0 ? spread_ms(REDIRECT_SPREAD_MS) : next_backoff(a));
        return;
    }
    bool changed = false;
    for (size_t i = 0; i < m->n_managers; i++) {
        size_t before = a->nmanagers;
        add_manager(a, m->managers[i]);
        changed |= a->nmanagers != before;
    }
    if (changed || !a->connected) {
        persist_managers(a); /* also on each new session: a restart needs the list */
    }
    if (!a->connected) {
        snprintf(a->session_id, sizeof a->session_id, "%s", m->session_id);
        if (m->heartbeat_period_ns > 0) {
            a->period_ns = m->heartbeat_period_ns;
        }
        a->connected = true;
        a->backoff_ms = 0;
        a->same_conn_retries = 0;
        swc_infof(MOD, "session %s with %s established (heartbeat %lld ms)", a->session_id,
                  a->managers[a->cur], (long long)(a->period_ns / 1000000));
        uint64_t ms = (uint64_t)(a->period_ns / 1000000);
        uv_timer_start(&a->hb_timer, hb_timer_cb, ms, ms);
        open_assignments(a);
        flush_statuses(a);
    }
    swarmc__session_message__free_unpacked(m, &swc_pb_allocator);
}

static void session_end_cb(struct swc_rpc_call *call, int status, const char *errmsg, void *data)
{
    struct swc_agent *a = data;
    if (call != a->session_call) {
        return;
    }
    a->session_call = NULL;
    session_down(a, errmsg != NULL && errmsg[0] ? errmsg : swc_strerror(status), true,
                 next_backoff(a));
}

static void conn_close_cb(struct swc_rpc_conn *conn, int status, void *data)
{
    struct swc_agent *a = data;
    if (conn != a->conn) {
        return;
    }
    session_down(a, swc_strerror(status), true, next_backoff(a));
}

static void conn_connect_cb(struct swc_rpc_conn *conn, int status, void *data)
{
    struct swc_agent *a = data;
    if (conn != a->conn || status == 0) {
        return;
    }
    session_down(a, swc_strerror(status), true, next_backoff(a));
}

static void do_connect(struct swc_agent *a)
{
    if (a->closing || a->conn != NULL || a->nmanagers == 0) {
        return;
    }
    struct swc_rpc_conn_opts opts = {0};
    opts.secure = a->has_secure ? &a->secure : NULL;
    opts.on_connect = conn_connect_cb;
    opts.on_close = conn_close_cb;
    opts.data = a;
    const char *addr = a->managers[a->cur];
    a->same_conn_retries = 0;
    if (swc_rpc_connect(a->loop, addr, &opts, &a->conn) != 0) {
        a->conn = NULL;
        session_down(a, "cannot connect", true, next_backoff(a));
        return;
    }
    open_session(a);
}

/* Open the "dispatcher.Session" stream on the current connection. */
static void open_session(struct swc_agent *a)
{
    Swarmc__SessionRequest req = SWARMC__SESSION_REQUEST__INIT;
    Swarmc__NodeDescription *desc = NULL;
    if (a->desc != NULL) {
        desc = swarmc__node_description__unpack(&swc_pb_allocator, a->desc_len, a->desc);
    }
    req.description = desc;
    req.node_id = a->node_id;
    req.addr = a->addr;
    size_t n = swarmc__session_request__get_packed_size(&req);
    uint8_t *buf = swc_malloc(n);
    int rv = SWC_ENOMEM;
    if (buf != NULL) {
        swarmc__session_request__pack(&req, buf);
        rv = swc_rpc_stream_open(a->conn, "dispatcher.Session", buf, n, 0, session_msg_cb,
                                 session_end_cb, a, &a->session_call);
    }
    swc_free(buf);
    if (desc != NULL) {
        swarmc__node_description__free_unpacked(desc, &swc_pb_allocator);
    }
    if (rv != 0) {
        a->session_call = NULL;
        session_down(a, "session refused", true, next_backoff(a));
    }
}

/* ---- statuses ---------------------------------------------------------------- */

static void status_reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                            const uint8_t *payload, size_t len, void *data)
{
    struct swc_agent *a = data;
    if (call != a->status_call) {
        return;
    }
    a->status_call = NULL;
    struct status_entry *e, *tmp;
    bool left = false;
    HASH_ITER(hh, a->statuses, e, tmp)
    {
        if (status == 0 && e->sent_seq != 0 && e->sent_seq == e->seq) {
            HASH_DEL(a->statuses, e);
            swc_free(e->task_id);
            swc_free(e->bytes);
            swc_free(e);
            continue;
        }
        e->sent_seq = 0;
        left = true;
    }
    if (status != 0) {
        swc_warnf(MOD, "status update refused: %s", errmsg ? errmsg : swc_strerror(status));
    }
    if (left && !a->flush_armed && !a->closing) {
        a->flush_armed = true;
        uv_timer_start(&a->flush_timer, flush_cb, status == 0 ? 0 : a->batch_ms * 5, 0);
    }
}

static void flush_statuses(struct swc_agent *a)
{
    if (!a->connected || a->status_call != NULL || a->statuses == NULL) {
        return;
    }
    size_t count = HASH_COUNT(a->statuses);
    if (count > STATUS_BATCH_MAX) {
        count = STATUS_BATCH_MAX;
    }
    Swarmc__TaskStatusUpdate *ups = swc_calloc(count, sizeof *ups);
    Swarmc__TaskStatusUpdate **ptrs = swc_calloc(count, sizeof *ptrs);
    Swarmc__TaskStatus **sts = swc_calloc(count, sizeof *sts);
    struct status_entry **sent = swc_calloc(count, sizeof *sent);
    uint8_t *buf = NULL;
    size_t n = 0;
    if (ups == NULL || ptrs == NULL || sts == NULL || sent == NULL) {
        goto out;
    }
    struct status_entry *e, *tmp;
    HASH_ITER(hh, a->statuses, e, tmp)
    {
        if (n == count) {
            break;
        }
        sts[n] = swarmc__task_status__unpack(&swc_pb_allocator, e->len, e->bytes);
        if (sts[n] == NULL) {
            goto out;
        }
        swarmc__task_status_update__init(&ups[n]);
        ups[n].task_id = e->task_id;
        ups[n].status = sts[n];
        ptrs[n] = &ups[n];
        sent[n] = e;
        n++;
    }
    Swarmc__UpdateTaskStatusRequest req = SWARMC__UPDATE_TASK_STATUS_REQUEST__INIT;
    req.session_id = a->session_id;
    req.n_updates = n;
    req.updates = ptrs;
    size_t len = swarmc__update_task_status_request__get_packed_size(&req);
    buf = swc_malloc(len);
    if (buf == NULL) {
        goto out;
    }
    swarmc__update_task_status_request__pack(&req, buf);
    if (swc_rpc_call(a->conn, "dispatcher.UpdateTaskStatus", buf, len, 30000, status_reply_cb, a,
                     &a->status_call) != 0) {
        a->status_call = NULL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sent[i]->sent_seq = sent[i]->seq;
    }
out:
    for (size_t i = 0; sts != NULL && i < n; i++) {
        if (sts[i] != NULL) {
            swarmc__task_status__free_unpacked(sts[i], &swc_pb_allocator);
        }
    }
    swc_free(buf);
    swc_free(ups);
    swc_free(ptrs);
    swc_free(sts);
    swc_free(sent);
}

static void flush_cb(uv_timer_t *t)
{
    struct swc_agent *a = t->data;
    a->flush_armed = false;
    flush_statuses(a);
}

int swc_agent_report(struct swc_agent *a, const char *task_id, const Swarmc__TaskStatus *status)
{
    size_t len = swarmc__task_status__get_packed_size(status);
    uint8_t *bytes = swc_malloc(len);
    if (bytes == NULL) {
        return SWC_ENOMEM;
    }
    swarmc__task_status__pack(status, bytes);
    struct status_entry *e = NULL;
    HASH_FIND_STR(a->statuses, task_id, e);
    if (e == NULL) {
        e = swc_calloc(1, sizeof *e);
        char *id = swc_strdup(task_id);
        if (e == NULL || id == NULL) {
            swc_free(e);
            swc_free(id);
            swc_free(bytes);
            return SWC_ENOMEM;
        }
        e->task_id = id;
        HASH_ADD_KEYPTR(hh, a->statuses, e->task_id, strlen(e->task_id), e);
    }
    swc_free(e->bytes);
    e->bytes = bytes;
    e->len = len;
    e->seq = ++a->seq_counter;
    if (!a->flush_armed && !a->closing) {
        a->flush_armed = true;
        uv_timer_start(&a->flush_timer, flush_cb, a->batch_ms, 0);
    }
    return 0;
}

/* ---- lifecycle --------------------------------------------------------------- */

int swc_agent_init(struct swc_agent **out, const struct swc_agent_config *cfg, struct swc_err *err)
{
    struct swc_agent *a = swc_calloc(1, sizeof *a);
    if (a == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "agent: out of memory");
    }
    a->loop = cfg->loop;
    a->worker = cfg->worker;
    a->batch_ms = cfg->status_batch_ms ? cfg->status_batch_ms : 100;
    a->period_ns = 5000000000LL;
    if (cfg->state_dir != NULL && (a->state_dir = swc_strdup(cfg->state_dir)) == NULL) {
        goto nomem;
    }
    if (cfg->node_id != NULL && (a->node_id = swc_strdup(cfg->node_id)) == NULL) {
        goto nomem;
    }
    if (cfg->addr != NULL && (a->addr = swc_strdup(cfg->addr)) == NULL) {
        goto nomem;
    }
    if (cfg->secure != NULL) {
        a->has_secure = true;
        a->secure = *cfg->secure;
        a->secure.is_client = true;
    }
    if (cfg->desc != NULL) {
        a->desc_len = swarmc__node_description__get_packed_size(cfg->desc);
        if ((a->desc = swc_malloc(a->desc_len)) == NULL) {
            goto nomem;
        }
        swarmc__node_description__pack(cfg->desc, a->desc);
    }
    for (size_t i = 0; i < cfg->nmanagers; i++) {
        add_manager(a, cfg->managers[i]);
    }
    load_managers(a);
    if (a->nmanagers == 0) {
        swc_err_set(err, SWC_EINVAL, "agent: no manager address to connect to");
        swc_agent_close(a, NULL, NULL);
        return SWC_EINVAL;
    }
    uv_timer_init(a->loop, &a->hb_timer);
    uv_timer_init(a->loop, &a->reconnect_timer);
    uv_timer_init(a->loop, &a->flush_timer);
    a->hb_timer.data = a->reconnect_timer.data = a->flush_timer.data = a;
    a->open_handles = 3;
    *out = a;
    return 0;
nomem:
    swc_free(a->state_dir);
    swc_free(a->node_id);
    swc_free(a->addr);
    swc_free(a->desc);
    swc_free(a);
    return swc_err_set(err, SWC_ENOMEM, "agent: out of memory");
}

int swc_agent_start(struct swc_agent *a)
{
    do_connect(a);
    return 0;
}

bool swc_agent_connected(const struct swc_agent *a)
{
    return a->connected;
}

size_t swc_agent_pending(const struct swc_agent *a)
{
    return HASH_COUNT(a->statuses);
}

const char *swc_agent_manager(const struct swc_agent *a)
{
    return a->nmanagers ? a->managers[a->cur] : "";
}

static void free_agent(struct swc_agent *a)
{
    struct status_entry *e, *tmp;
    HASH_ITER(hh, a->statuses, e, tmp)
    {
        HASH_DEL(a->statuses, e);
        swc_free(e->task_id);
        swc_free(e->bytes);
        swc_free(e);
    }
    for (size_t i = 0; i < a->nmanagers; i++) {
        swc_free(a->managers[i]);
    }
    void (*cb)(void *) = a->close_cb;
    void *data = a->close_data;
    swc_free(a->state_dir);
    swc_free(a->node_id);
    swc_free(a->addr);
    swc_free(a->desc);
    swc_free(a);
    if (cb != NULL) {
        cb(data);
    }
}

static void handle_closed(uv_handle_t *h)
{
    struct swc_agent *a = h->data;
    if (--a->open_handles == 0) {
        free_agent(a);
    }
}

static void conn_closed(void *data)
{
    struct swc_agent *a = data;
    if (--a->open_handles == 0) {
        free_agent(a);
    }
}

/* Close a connection we no longer use. Its calls complete (canceled) after
 * this returns, so the agent stays alive until the close callback. */
static void close_conn(struct swc_agent *a, struct swc_rpc_conn *c)
{
    a->open_handles++;
    swc_rpc_conn_close(c, conn_closed, a);
}

void swc_agent_close(struct swc_agent *a, void (*cb)(void *data), void *data)
{
    a->close_cb = cb;
    a->close_data = data;
    a->closing = true;
    if (a->open_handles == 0) { /* init failed before the handles existed */
        free_agent(a);
        return;
    }
    a->session_call = a->assign_call = a->hb_call = a->status_call = NULL;
    a->connected = false;
    if (a->conn != NULL) {
        struct swc_rpc_conn *c = a->conn;
        a->conn = NULL;
        close_conn(a, c);
    }
    uv_close((uv_handle_t *)&a->hb_timer, handle_closed);
    uv_close((uv_handle_t *)&a->reconnect_timer, handle_closed);
    uv_close((uv_handle_t *)&a->flush_timer, handle_closed);
}
