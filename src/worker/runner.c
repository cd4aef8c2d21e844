/* Task runner (see runner.h).
 *
 * The file has two halves. swc_runner_step() is the pure decision: it looks
 * at (desired, observed, facts, last event) and returns one move of the
 * observed state plus at most one executor operation; every move is checked
 * against a swc_sm transition table over task states. struct swc_runner is
 * the loop-facing half: it queues executor events that arrive while an
 * operation is in flight, feeds them to the step one at a time, writes each
 * new status to the task DB and only then reports it, and issues the
 * operation the step asked for. A runner has at most one operation in
 * flight, so the executor never sees two concurrent calls for one task. */
#include "worker/runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "worker/taskdb.h"

/* ---------------------------------------------------------------- transition table */

enum {
    I_ASSIGNED,
    I_ACCEPTED,
    I_PREPARING,
    I_READY,
    I_STARTING,
    I_RUNNING,
    I_COMPLETE,
    I_SHUTDOWN,
    I_FAILED,
    I_REJECTED,
    I_COUNT
};

static const char *const state_names[I_COUNT] = {
    "ASSIGNED", "ACCEPTED", "PREPARING", "READY",  "STARTING",
    "RUNNING",  "COMPLETE", "SHUTDOWN",  "FAILED", "REJECTED",
};

static const int state_values[I_COUNT] = {
    SWARMC__TASK_STATE__TASK_STATE_ASSIGNED,  SWARMC__TASK_STATE__TASK_STATE_ACCEPTED,
    SWARMC__TASK_STATE__TASK_STATE_PREPARING, SWARMC__TASK_STATE__TASK_STATE_READY,
    SWARMC__TASK_STATE__TASK_STATE_STARTING,  SWARMC__TASK_STATE__TASK_STATE_RUNNING,
    SWARMC__TASK_STATE__TASK_STATE_COMPLETE,  SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN,
    SWARMC__TASK_STATE__TASK_STATE_FAILED,    SWARMC__TASK_STATE__TASK_STATE_REJECTED,
};

#define B(s)            SWC_SM_BIT(s)
#define PRE_START_EXITS (B(I_REJECTED) | B(I_SHUTDOWN))
static const uint64_t allowed[I_COUNT] = {
    [I_ASSIGNED] = B(I_ACCEPTED) | PRE_START_EXITS,
    [I_ACCEPTED] = B(I_PREPARING) | PRE_START_EXITS,
    [I_PREPARING] = B(I_READY) | PRE_START_EXITS,
    [I_READY] = B(I_STARTING) | PRE_START_EXITS,
    [I_STARTING] = B(I_RUNNING) | B(I_COMPLETE) | B(I_FAILED) | B(I_SHUTDOWN),
    [I_RUNNING] = B(I_COMPLETE) | B(I_FAILED) | B(I_SHUTDOWN),
    [I_COMPLETE] = 0,
    [I_SHUTDOWN] = 0,
    [I_FAILED] = 0,
    [I_REJECTED] = 0,
};

static const struct swc_sm_def runner_sm = {
    .name = "task runner",
    .nstates = I_COUNT,
    .state_names = state_names,
    .allowed = allowed,
    .invariant = NULL,
};

/* Map a task state to a table index; states below ASSIGNED count as
 * ASSIGNED (the worker may see a task the manager has not marked yet). */
static int state_index(int state)
{
    if (state <= SWARMC__TASK_STATE__TASK_STATE_ASSIGNED) {
        return I_ASSIGNED;
    }
    if (state == SWARMC__TASK_STATE__TASK_STATE_REMOVE ||
        state == SWARMC__TASK_STATE__TASK_STATE_ORPHANED) {
        return I_REJECTED; /* manager-written end states: terminal, no move out */
    }
    for (int i = 0; i < I_COUNT; i++) {
        if (state_values[i] == state) {
            return i;
        }
    }
    return -1;
}

bool swc_runner_allowed(int from, int to)
{
    int f = state_index(from), t = state_index(to);
    if (f < 0 || t < 0 || to <= SWARMC__TASK_STATE__TASK_STATE_ASSIGNED) {
        return false;
    }
    return swc_sm_allowed(&runner_sm, f, t);
}

bool swc_runner_terminal(int state)
{
    return state >= SWARMC__TASK_STATE__TASK_STATE_COMPLETE;
}

const char *swc_runner_state_name(int state)
{
    int i = state_index(state);
    if (state > SWARMC__TASK_STATE__TASK_STATE_REJECTED) {
        return state == SWARMC__TASK_STATE__TASK_STATE_REMOVE ? "REMOVE" : "ORPHANED";
    }
    return i < 0 ? "?" : state_names[i];
}

/* ---------------------------------------------------------------- pure step */

#define S_ASSIGNED  SWARMC__TASK_STATE__TASK_STATE_ASSIGNED
#define S_ACCEPTED  SWARMC__TASK_STATE__TASK_STATE_ACCEPTED
#define S_PREPARING SWARMC__TASK_STATE__TASK_STATE_PREPARING
#define S_READY     SWARMC__TASK_STATE__TASK_STATE_READY
#define S_STARTING  SWARMC__TASK_STATE__TASK_STATE_STARTING
#define S_RUNNING   SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define S_COMPLETE  SWARMC__TASK_STATE__TASK_STATE_COMPLETE
#define S_SHUTDOWN  SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
#define S_FAILED    SWARMC__TASK_STATE__TASK_STATE_FAILED
#define S_REJECTED  SWARMC__TASK_STATE__TASK_STATE_REJECTED

static void set_msg(struct swc_runner_decision *out, bool is_err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_msg(struct swc_runner_decision *out, bool is_err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->msg, sizeof(out->msg), fmt, ap);
    va_end(ap);
    out->is_err = is_err;
}

static bool is_live(int s)
{
    return s == S_STARTING || s == S_RUNNING;
}

/* The move an event causes, if any (0 = the event changes nothing). */
static void step_event(const struct swc_runner_input *in, bool want_stop,
                       struct swc_runner_decision *out)
{
    int s = in->observed;
    const char *why = in->ev_msg != NULL && in->ev_msg[0] != '\0' ? in->ev_msg : "unknown error";
    /* EXIT and GONE carry an optional detail (e.g. seen after an engine outage) */
    const char *detail = in->ev_msg != NULL ? in->ev_msg : "";

    switch (in->ev) {
    case SWC_RUNNER_EV_NONE:
        break;
    case SWC_RUNNER_EV_PREPARED:
        if (s == S_PREPARING) {
            out->next = S_READY;
            set_msg(out, false, "prepared");
        }
        break;
    case SWC_RUNNER_EV_PREPARE_FAIL:
        if (s < S_STARTING) {
            out->next = S_REJECTED;
            set_msg(out, true, "preparing: %s", why);
        }
        break;
    case SWC_RUNNER_EV_STARTED:
        if (s == S_STARTING && !in->has_healthcheck) {
            out->next = S_RUNNING;
            set_msg(out, false, "started");
        }
        break;
    case SWC_RUNNER_EV_START_FAIL:
        if (s == S_STARTING) {
            out->next = S_FAILED;
            out->exit_code = -1;
            set_msg(out, true, "starting: %s", why);
        }
        break;
    case SWC_RUNNER_EV_EXIT:
        if (!is_live(s)) {
            break;
        }
        out->exit_code = in->exit_code;
        if (want_stop && in->stopping) {
            out->next = S_SHUTDOWN;
            set_msg(out, false, "shutdown");
        } else if (in->oom) {
            out->next = S_FAILED;
            set_msg(out, true, "container was OOM-killed (exit code %d)%s%s", in->exit_code,
                    detail[0] ? "; " : "", detail);
        } else if (in->exit_code == 0) {
            out->next = S_COMPLETE;
            set_msg(out, false, "finished%s%s", detail[0] ? "; " : "", detail);
        } else {
            out->next = S_FAILED;
            set_msg(out, true, "task: non-zero exit (%d)%s%s", in->exit_code, detail[0] ? "; " : "",
                    detail);
        }
        break;
    case SWC_RUNNER_EV_HEALTHY:
        if (s == S_STARTING && in->started && !want_stop) {
            out->next = S_RUNNING;
            set_msg(out, false, "started (healthy)");
        }
        break;
    case SWC_RUNNER_EV_UNHEALTHY:
        if (is_live(s) && !want_stop) {
            out->next = S_FAILED;
            out->exit_code = -1;
            set_msg(out, true, "container is unhealthy");
            out->action = in->stopping ? SWC_RUNNER_ACT_NONE : SWC_RUNNER_ACT_SHUTDOWN;
        }
        break;
    case SWC_RUNNER_EV_GONE:
        out->drop_container = true;
        if (is_live(s)) {
            out->next = want_stop && in->stopping ? S_SHUTDOWN : S_FAILED;
            out->exit_code = -1;
            if (out->next == S_SHUTDOWN) {
                set_msg(out, false, "shutdown");
            } else if (detail[0]) {
                set_msg(out, true, "container is gone; %s", detail);
            } else {
                set_msg(out, true, "container was removed behind swarmc's back");
            }
        } else if (s == S_READY || (s == S_PREPARING && in->has_container)) {
            out->next = want_stop ? S_SHUTDOWN : S_REJECTED;
            set_msg(out, !want_stop, "%s",
                    want_stop ? "shutdown" : "container was removed behind swarmc's back");
        }
        break;
    case SWC_RUNNER_EV_STOPPED:
        if (is_live(s)) {
            out->next = S_SHUTDOWN;
            set_msg(out, false, "shutdown");
        }
        break;
    case SWC_RUNNER_EV_STOP_FAIL:
        /* A forced remove also kills: fall back to it. */
        if (in->has_container) {
            out->action = SWC_RUNNER_ACT_REMOVE;
        }
        break;
    case SWC_RUNNER_EV_REMOVED:
        out->drop_container = true;
        if (is_live(s)) {
            out->next = S_SHUTDOWN;
            set_msg(out, false, "shutdown (container removed)");
        }
        break;
    }
}

/* The move and operation that bring state s closer to the desired state
 * when no event is pending. */
static void step_toward(const struct swc_runner_input *in, bool want_stop,
                        struct swc_runner_decision *out)
{
    int s = in->observed;

    if (want_stop) {
        if (s < S_STARTING) {
            out->next = S_SHUTDOWN;
            set_msg(out, false, "shutdown before start");
            if (in->has_container) {
                out->action = SWC_RUNNER_ACT_REMOVE;
            }
        } else if (is_live(s)) {
            if (!in->stopping) {
                out->action = SWC_RUNNER_ACT_SHUTDOWN;
            }
        } else if (in->has_container) {
            out->action = SWC_RUNNER_ACT_REMOVE;
        }
        return;
    }
    if (s <= S_ASSIGNED) {
        out->next = S_ACCEPTED;
        set_msg(out, false, "accepted");
    } else if (s == S_ACCEPTED) {
        out->next = S_PREPARING;
        set_msg(out, false, "preparing");
        out->action = SWC_RUNNER_ACT_PREPARE;
    } else if (s == S_PREPARING) {
        out->action = SWC_RUNNER_ACT_PREPARE; /* resumed mid-prepare: prepare is idempotent */
    } else if (s == S_READY) {
        if (in->desired >= S_RUNNING) {
            out->next = S_STARTING;
            set_msg(out, false, "starting");
            out->action = SWC_RUNNER_ACT_START;
        }
    } else if (s == S_STARTING) {
        if (!in->started) {
            out->action = SWC_RUNNER_ACT_START;
        }
    }
    /* RUNNING waits for events; a finished task keeps its container (for its
     * logs) until it is shut down or unassigned. */
}

int swc_runner_step(const struct swc_runner_input *in, struct swc_runner_decision *out)
{
    bool want_stop = in->remove || in->desired >= S_SHUTDOWN;

    memset(out, 0, sizeof(*out));
    out->next = in->observed;
    out->action = SWC_RUNNER_ACT_NONE;
    if (state_index(in->observed) < 0) {
        return SWC_ESTATE;
    }

    step_event(in, want_stop, out);
    if (in->ev == SWC_RUNNER_EV_NONE) {
        step_toward(in, want_stop, out);
    }
    if (out->next != in->observed && !swc_runner_allowed(in->observed, out->next)) {
        memset(out, 0, sizeof(*out));
        out->next = in->observed;
        return SWC_ESTATE;
    }
    return 0;
}

/* ---------------------------------------------------------------- runner object */

struct swc_runner {
    struct swc_runner_config cfg;
    Swarmc__Task *task; /* owned copy; task->status always set */
    char *cid;          /* container id or NULL */
    struct swc_sm sm;
    bool inflight; /* one executor operation outstanding */
    bool started;  /* container known to have been started */
    bool stopping; /* shutdown issued */
    bool removing; /* unassigned: clean up and report done */
    bool detached; /* destroyed while an operation was in flight */
    bool stepping; /* re-entrancy guard for kick */
    bool oom;      /* an OOM event was seen */
    bool healthcheck;
    /* result of the operation that just finished */
    enum swc_runner_ev opres;
    char *opmsg;
    /* queued lifecycle events */
    bool ev_gone, ev_exit;
    int ev_exit_code;
    char *ev_detail; /* optional detail for the queued gone/exit event */
    enum swc_runner_ev ev_health;
    void (*done_cb)(struct swc_runner *r, void *data);
    void *done_data;
};

static Swarmc__Task *copy_task(const Swarmc__Task *t)
{
    size_t n = swarmc__task__get_packed_size(t);
    uint8_t *buf = swc_malloc(n ? n : 1);
    Swarmc__Task *c;
    if (buf == NULL) {
        return NULL;
    }
    swarmc__task__pack(t, buf);
    c = swarmc__task__unpack(&swc_pb_allocator, n, buf);
    swc_free(buf);
    return c;
}

static bool spec_has_healthcheck(const Swarmc__Task *t)
{
    const Swarmc__HealthConfig *h;
    if (t->spec == NULL || t->spec->container == NULL || t->spec->container->healthcheck == NULL) {
        return false;
    }
    h = t->spec->container->healthcheck;
    return h->n_test > 0 && strcmp(h->test[0], "NONE") != 0;
}

/* Make sure task->status exists (protobuf-c allocates it with the seam). */
static int ensure_status(Swarmc__Task *t)
{
    if (t->status == NULL) {
        t->status = swc_malloc(sizeof(*t->status));
        if (t->status == NULL) {
            return SWC_ENOMEM;
        }
        swarmc__task_status__init(t->status);
    }
    return 0;
}

static void set_pb_string(char **dst, const char *src)
{
    /* protobuf-c frees strings that differ from its empty default */
    char *c = swc_strdup(src != NULL ? src : "");
    if (c == NULL) {
        return; /* keep the old value; the state itself still moves */
    }
    if (*dst != NULL && *dst != protobuf_c_empty_string) {
        swc_free(*dst);
    }
    *dst = c;
}

struct swc_runner *swc_runner_create(const struct swc_runner_config *cfg, const Swarmc__Task *task,
                                     const char *container_id)
{
    struct swc_runner *r = swc_calloc(1, sizeof(*r));
    int idx;
    if (r == NULL) {
        return NULL;
    }
    r->cfg = *cfg;
    r->task = copy_task(task);
    if (r->task == NULL || ensure_status(r->task) != 0) {
        goto fail;
    }
    if (container_id != NULL && container_id[0] != '\0') {
        r->cid = swc_strdup(container_id);
        if (r->cid == NULL) {
            goto fail;
        }
    } else if (r->task->status->container_id != NULL && r->task->status->container_id[0]) {
        r->cid = swc_strdup(r->task->status->container_id);
        if (r->cid == NULL) {
            goto fail;
        }
    }
    r->healthcheck = spec_has_healthcheck(r->task);
    /* a task resumed in RUNNING (or beyond) was started */
    r->started = r->task->status->state >= S_RUNNING;
    idx = state_index(r->task->status->state);
    swc_sm_init(&r->sm, &runner_sm, idx < 0 ? I_ASSIGNED : idx, r);
    return r;
fail:
    if (r->task != NULL) {
        swarmc__task__free_unpacked(r->task, &swc_pb_allocator);
    }
    swc_free(r);
    return NULL;
}

static void runner_free(struct swc_runner *r)
{
    swarmc__task__free_unpacked(r->task, &swc_pb_allocator);
    swc_free(r->cid);
    swc_free(r->opmsg);
    swc_free(r->ev_detail);
    swc_free(r);
}

int swc_runner_update(struct swc_runner *r, const Swarmc__Task *task)
{
    /* Keep our observed status; take everything else (desired state, spec). */
    if (task->desired_state != r->task->desired_state) {
        r->task->desired_state = task->desired_state;
    }
    return 0;
}

const char *swc_runner_task_id(const struct swc_runner *r)
{
    return r->task->id;
}

const char *swc_runner_container_id(const struct swc_runner *r)
{
    return r->cid;
}

int swc_runner_observed(const struct swc_runner *r)
{
    return r->task->status->state;
}

const Swarmc__Task *swc_runner_task(const struct swc_runner *r)
{
    return r->task;
}

/* Record a new observed state: task DB first, then report. */
static void apply_state(struct swc_runner *r, const struct swc_runner_decision *d)
{
    Swarmc__TaskStatus *st = r->task->status;
    int idx = state_index(d->next);

    if (idx < 0 || swc_sm_step(&r->sm, idx) != 0) {
        swc_errorf("worker", "task %s: refused move %s -> %s", r->task->id,
                   swc_runner_state_name(st->state), swc_runner_state_name(d->next));
        return;
    }
    st->state = (Swarmc__TaskState)d->next;
    st->timestamp = swc_now_wall();
    st->applied_at = st->timestamp;
    set_pb_string(&st->message, d->msg);
    set_pb_string(&st->err, d->is_err ? d->msg : "");
    set_pb_string(&st->container_id, r->cid);
    if (d->next == S_COMPLETE || d->next == S_FAILED || d->next == S_SHUTDOWN) {
        st->exit_code = d->exit_code;
    }
    swc_tracef("worker", "task %s: %s (%s)", r->task->id, swc_runner_state_name(d->next), d->msg);
    if (r->cfg.db != NULL && swc_taskdb_put_status(r->cfg.db, r->task->id, st, r->cid) != 0) {
        swc_errorf("worker", "task %s: %s", r->task->id, swc_taskdb_errmsg(r->cfg.db));
    }
    if (r->cfg.status_cb != NULL) {
        r->cfg.status_cb(r, r->task->id, st, r->cfg.data);
    }
}

static void op_done(void *data, int code, const char *errmsg, const char *cid,
                    enum swc_runner_ev ok, enum swc_runner_ev fail)
{
    struct swc_runner *r = data;
    r->inflight = false;
    if (r->detached) {
        runner_free(r);
        return;
    }
    if (code == SWC_ECANCELED) {
        return; /* the executor is closing: not the task's failure */
    }
    r->opres = code == 0 ? ok : fail;
    swc_free(r->opmsg);
    r->opmsg = errmsg != NULL ? swc_strdup(errmsg) : NULL;
    if (code == 0 && cid != NULL && cid[0] != '\0' && ok == SWC_RUNNER_EV_PREPARED) {
        char *c = swc_strdup(cid);
        if (c != NULL) {
            swc_free(r->cid);
            r->cid = c;
        }
    }
    if (code == 0 && ok == SWC_RUNNER_EV_STARTED) {
        r->started = true;
    }
    if (code == SWC_ENOENT && fail == SWC_RUNNER_EV_START_FAIL) {
        r->opres = SWC_RUNNER_EV_GONE; /* with the plain "removed behind our back" */
        swc_free(r->opmsg);
        r->opmsg = NULL;
    }
    swc_runner_kick(r);
}

static void prepare_cb(void *data, int code, const char *errmsg, const char *cid)
{
    op_done(data, code, errmsg, cid, SWC_RUNNER_EV_PREPARED, SWC_RUNNER_EV_PREPARE_FAIL);
}

static void start_cb(void *data, int code, const char *errmsg, const char *cid)
{
    op_done(data, code, errmsg, cid, SWC_RUNNER_EV_STARTED, SWC_RUNNER_EV_START_FAIL);
}

static void stop_cb(void *data, int code, const char *errmsg, const char *cid)
{
    struct swc_runner *r = data;
    /* a container that is already gone is stopped */
    op_done(data, code == SWC_ENOENT ? 0 : code, errmsg, cid, SWC_RUNNER_EV_STOPPED,
            SWC_RUNNER_EV_STOP_FAIL);
    (void)r;
}

static void remove_cb(void *data, int code, const char *errmsg, const char *cid)
{
    struct swc_runner *r = data;
    if (code != 0 && code != SWC_ECANCELED && !r->detached) {
        swc_warnf("worker", "task %s: %s", r->task->id, errmsg ? errmsg : swc_strerror(code));
    }
    /* a failed remove is not retried forever: the next start's cleanup pass retries */
    op_done(data, 0, NULL, cid, SWC_RUNNER_EV_REMOVED, SWC_RUNNER_EV_REMOVED);
}

/* Issue the executor operation; false when it was refused synchronously
 * (the failure is then queued as the operation's result). */
static void issue(struct swc_runner *r, enum swc_runner_action a)
{
    struct swc_exec *ex = r->cfg.exec;
    const Swarmc__ContainerSpec *c = r->task->spec ? r->task->spec->container : NULL;
    int rc = 0;
    enum swc_runner_ev fail = SWC_RUNNER_EV_NONE;

    r->inflight = true;
    switch (a) {
    case SWC_RUNNER_ACT_NONE:
        r->inflight = false;
        return;
    case SWC_RUNNER_ACT_PREPARE:
        rc = ex->ops->prepare(ex, r->task, prepare_cb, r);
        fail = SWC_RUNNER_EV_PREPARE_FAIL;
        break;
    case SWC_RUNNER_ACT_START:
        if (r->cid == NULL) {
            rc = SWC_EINTERNAL;
        } else {
            rc = ex->ops->start(ex, r->cid, start_cb, r);
        }
        fail = SWC_RUNNER_EV_START_FAIL;
        break;
    case SWC_RUNNER_ACT_SHUTDOWN:
        r->stopping = true;
        if (r->cid == NULL) {
            rc = SWC_EINTERNAL;
        } else {
            int64_t grace =
                c && c->stop_grace_period_ns > 0 ? c->stop_grace_period_ns : 10 * SWC_NS_PER_SEC;
            rc = ex->ops->shutdown(ex, r->cid, c ? c->stop_signal : NULL, grace, stop_cb, r);
        }
        fail = SWC_RUNNER_EV_STOP_FAIL;
        break;
    case SWC_RUNNER_ACT_REMOVE:
        if (r->cid == NULL) {
            rc = SWC_EINTERNAL;
        } else {
            rc = ex->ops->remove(ex, r->cid, remove_cb, r);
        }
        fail = SWC_RUNNER_EV_REMOVED;
        break;
    }
    if (rc != 0) {
        r->inflight = false;
        r->opres = fail;
        swc_free(r->opmsg);
        r->opmsg = swc_strdup(swc_strerror(rc));
    }
}

/* Take the next queued event into in (op result first, then gone, exit, health). */
static void next_event(struct swc_runner *r, struct swc_runner_input *in)
{
    in->ev = SWC_RUNNER_EV_NONE;
    if (r->opres != SWC_RUNNER_EV_NONE) {
        in->ev = r->opres;
        in->ev_msg = r->opmsg;
        r->opres = SWC_RUNNER_EV_NONE;
    } else if (r->ev_gone) {
        in->ev = SWC_RUNNER_EV_GONE;
        in->ev_msg = r->ev_detail;
        r->ev_gone = false;
        r->ev_exit = false;
    } else if (r->ev_exit) {
        in->ev = SWC_RUNNER_EV_EXIT;
        in->ev_msg = r->ev_detail;
        in->exit_code = r->ev_exit_code;
        r->ev_exit = false;
    } else if (r->ev_health != SWC_RUNNER_EV_NONE) {
        in->ev = r->ev_health;
        r->ev_health = SWC_RUNNER_EV_NONE;
    }
}

static bool done_removing(const struct swc_runner *r)
{
    return r->removing && !r->inflight && r->cid == NULL &&
           swc_runner_terminal(r->task->status->state);
}

void swc_runner_kick(struct swc_runner *r)
{
    if (r->stepping) {
        return;
    }
    r->stepping = true;
    for (int guard = 0; guard < 64 && !r->inflight; guard++) {
        struct swc_runner_input in = {0};
        struct swc_runner_decision d;

        in.desired = r->task->desired_state;
        in.observed = r->task->status->state;
        in.has_container = r->cid != NULL;
        in.has_healthcheck = r->healthcheck;
        in.started = r->started;
        in.stopping = r->stopping;
        in.remove = r->removing;
        in.oom = r->oom;
        next_event(r, &in);
        if (swc_runner_step(&in, &d) != 0) {
            swc_errorf("worker", "task %s: step refused", r->task->id);
            break;
        }
        if (d.drop_container) {
            swc_free(r->cid);
            r->cid = NULL;
        }
        if (d.next != in.observed) {
            apply_state(r, &d);
        }
        issue(r, d.action);
        if ((in.ev == SWC_RUNNER_EV_GONE || in.ev == SWC_RUNNER_EV_EXIT) && r->ev_detail) {
            swc_free(r->ev_detail); /* consumed (apply_state copied the message) */
            r->ev_detail = NULL;
        }
        if (in.ev == SWC_RUNNER_EV_NONE && d.next == in.observed &&
            d.action == SWC_RUNNER_ACT_NONE && r->opres == SWC_RUNNER_EV_NONE && !r->ev_gone &&
            !r->ev_exit && r->ev_health == SWC_RUNNER_EV_NONE) {
            break; /* nothing to do until the next event */
        }
    }
    r->stepping = false;
    if (done_removing(r) && r->done_cb != NULL) {
        void (*cb)(struct swc_runner *, void *) = r->done_cb;
        r->done_cb = NULL;
        cb(r, r->done_data);
        runner_free(r);
    }
}

void swc_runner_event(struct swc_runner *r, const struct swc_exec_event *ev)
{
    if (ev->container_id != NULL && r->cid != NULL && ev->container_id[0] != '\0' &&
        strcmp(ev->container_id, r->cid) != 0) {
        return; /* an older container of the same task */
    }
    switch (ev->type) {
    case SWC_EXEC_EV_NONE:
    case SWC_EXEC_EV_RESYNC: /* the worker answers it with swc_runner_resync */
        return;
    case SWC_EXEC_EV_EXIT:
        r->ev_exit = true;
        r->ev_exit_code = ev->exit_code;
        if (ev->oom_killed) {
            r->oom = true;
        }
        break;
    case SWC_EXEC_EV_OOM:
        r->oom = true;
        break;
    case SWC_EXEC_EV_HEALTHY:
        r->ev_health = SWC_RUNNER_EV_HEALTHY;
        break;
    case SWC_EXEC_EV_UNHEALTHY:
        r->ev_health = SWC_RUNNER_EV_UNHEALTHY;
        break;
    case SWC_EXEC_EV_GONE:
        if (r->cid == NULL) {
            return;
        }
        r->ev_gone = true;
        break;
    }
    swc_runner_kick(r);
}

void swc_runner_remove(struct swc_runner *r, void (*done_cb)(struct swc_runner *r, void *data),
                       void *data)
{
    r->removing = true;
    r->done_cb = done_cb;
    r->done_data = data;
    swc_runner_kick(r);
}

void swc_runner_destroy(struct swc_runner *r)
{
    if (r->inflight) {
        r->detached = true; /* freed when the operation reports back */
        return;
    }
    runner_free(r);
}

void swc_runner_adopt(struct swc_runner *r, const struct swc_exec_cstate *st)
{
    if (st == NULL) {
        if (r->cid != NULL) {
            r->ev_gone = true;
        }
        return;
    }
    if (r->cid == NULL || strcmp(r->cid, st->container_id) != 0) {
        char *c = swc_strdup(st->container_id);
        if (c == NULL) {
            return;
        }
        swc_free(r->cid);
        r->cid = c;
    }
    if (st->running || st->exited) {
        r->started = true;
    }
    if (st->exited) {
        r->ev_exit = true;
        r->ev_exit_code = st->exit_code;
        r->oom = r->oom || st->oom_killed;
    } else if (st->health == SWC_EXEC_HEALTH_HEALTHY) {
        r->ev_health = SWC_RUNNER_EV_HEALTHY;
    } else if (st->health == SWC_EXEC_HEALTH_UNHEALTHY) {
        r->ev_health = SWC_RUNNER_EV_UNHEALTHY;
    }
}

void swc_runner_resync(struct swc_runner *r, const struct swc_exec_cstate *st, const char *why)
{
    int s = r->task->status->state;
    if (r->cid == NULL || r->removing || swc_runner_terminal(s) || s < S_READY) {
        return; /* nothing of ours can have been missed */
    }
    if (st != NULL && st->running) {
        /* still alive (e.g. live-restore): adopt it as it is */
        r->started = true;
        if (st->health == SWC_EXEC_HEALTH_HEALTHY) {
            r->ev_health = SWC_RUNNER_EV_HEALTHY;
        } else if (st->health == SWC_EXEC_HEALTH_UNHEALTHY) {
            r->ev_health = SWC_RUNNER_EV_UNHEALTHY;
        }
        swc_runner_kick(r);
        return;
    }
    if (st != NULL && !st->exited) {
        return; /* created, not started: the runner's own start is still to come */
    }
    swc_free(r->ev_detail);
    r->ev_detail = why != NULL && why[0] != '\0' ? swc_strdup(why) : NULL;
    if (st == NULL) {
        r->ev_gone = true;
    } else {
        r->started = true;
        r->ev_exit = true;
        r->ev_exit_code = st->exit_code;
        r->oom = r->oom || st->oom_killed;
    }
    swc_runner_kick(r);
}
