/* The simulated executor (see sim.h).
 *
 * A simulated container is one small record in a hash table keyed by task id
 * (its container id is "sim-<task id>"), holding a uv timer that ends its run.
 * Operations are queued records completed from a single executor timer: the
 * slow ones (prepare, start) after the configured start delay, the others on
 * the next loop turn, so callbacks never run inside the call. A seeded
 * xorshift PRNG decides the injected failures, so runs are reproducible. */
#include "worker/sim.h"

#include <stdio.h>
#include <string.h>
#include <uthash.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"

#define SIM_PREFIX "sim-"

enum ctr_state { C_CREATED, C_RUNNING, C_EXITED };

struct sim_ctr {
    uv_timer_t timer; /* run time; timer.data = the sim executor */
    struct sim *sim;
    char cid[4 + 32];
    uint8_t state;
    uint8_t health;
    bool timer_active;
    int exit_code;
    UT_hash_handle hh;
};

enum op_kind {
    OP_DESCRIBE,
    OP_PREPARE,
    OP_START,
    OP_INSPECT,
    OP_STOP,
    OP_KILL,
    OP_REMOVE,
    OP_LOGS,
    OP_LIST
};

struct sim_op {
    struct sim_op *next;
    enum op_kind kind;
    uint64_t due; /* loop time in ms */
    union {
        swc_exec_cb cb;
        swc_exec_inspect_cb icb;
        swc_exec_list_cb lcb;
        swc_exec_describe_cb dcb;
    } u;
    swc_exec_log_cb log_cb;
    void *data;
    bool healthcheck;
    char cid[4 + 32];
};

struct sim {
    struct swc_exec base;
    struct swc_sim_config cfg;
    char node_id[64];
    char hostname[96];
    uint64_t rng;
    struct sim_ctr *ctrs;
    size_t nctrs;
    uv_timer_t optimer;
    /* FIFOs: delayed ops (same delay -> due times ascend) and immediate ops */
    struct sim_op *slow_head, *slow_tail, *fast_head, *fast_tail;
    bool closing;
    int pending_closes;
    void (*close_cb)(struct swc_exec *ex);
};

static uint64_t rng_next(struct sim *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * UINT64_C(2685821657736338717);
}

static bool rng_chance(struct sim *s, double p)
{
    if (p <= 0) {
        return false;
    }
    return (double)(rng_next(s) >> 11) / (double)(UINT64_C(1) << 53) < p;
}

static void emit(struct sim *s, struct sim_ctr *c, enum swc_exec_event_type type, int code)
{
    struct swc_exec_event ev = {
        .type = type,
        .task_id = c->cid + strlen(SIM_PREFIX),
        .container_id = c->cid,
        .exit_code = code,
    };
    if (s->base.event_cb != NULL) {
        s->base.event_cb(s->base.event_data, &ev);
    }
}

static struct sim_ctr *find(struct sim *s, const char *cid)
{
    struct sim_ctr *c = NULL;
    HASH_FIND_STR(s->ctrs, cid, c);
    return c;
}

static void arm(struct sim *s);

static int enqueue(struct sim *s, enum op_kind kind, const char *cid, void *cb, void *data,
                   bool slow)
{
    struct sim_op *op;
    if (s->closing) {
        return SWC_ECLOSED;
    }
    op = swc_calloc(1, sizeof(*op));
    if (op == NULL) {
        return SWC_ENOMEM;
    }
    op->kind = kind;
    op->data = data;
    /* all callback types are stored through one slot */
    memcpy(&op->u, &cb, sizeof(cb));
    if (cid != NULL) {
        snprintf(op->cid, sizeof(op->cid), "%s", cid);
    }
    if (slow && s->cfg.start_delay_ms > 0) {
        op->due = uv_now(s->cfg.loop) + s->cfg.start_delay_ms;
        if (s->slow_tail) {
            s->slow_tail->next = op;
        } else {
            s->slow_head = op;
        }
        s->slow_tail = op;
    } else {
        if (s->fast_tail) {
            s->fast_tail->next = op;
        } else {
            s->fast_head = op;
        }
        s->fast_tail = op;
    }
    arm(s);
    return 0;
}

static void run_end_cb(uv_timer_t *t)
{
    struct sim_ctr *c = (struct sim_ctr *)t;
    c->timer_active = false;
    if (c->state == C_RUNNING) {
        c->state = C_EXITED;
        c->exit_code = c->sim->cfg.exit_code;
        emit(c->sim, c, SWC_EXEC_EV_EXIT, c->exit_code);
    }
}

static void maybe_finish_close(struct sim *s)
{
    if (s->closing && s->pending_closes == 0) {
        s->close_cb(&s->base);
        swc_free(s);
    }
}

static void ctr_close_cb(uv_handle_t *h)
{
    struct sim_ctr *c = (struct sim_ctr *)h;
    struct sim *s = c->sim;
    swc_free(c);
    s->pending_closes--;
    maybe_finish_close(s);
}

static void ctr_close(struct sim *s, struct sim_ctr *c)
{
    s->pending_closes++;
    uv_close((uv_handle_t *)&c->timer, ctr_close_cb);
}

static void ctr_stop(struct sim_ctr *c, int code)
{
    if (c->timer_active) {
        uv_timer_stop(&c->timer);
        c->timer_active = false;
    }
    if (c->state == C_RUNNING) {
        c->state = C_EXITED;
        c->exit_code = code;
        emit(c->sim, c, SWC_EXEC_EV_EXIT, code);
    }
}

static void complete(struct sim *s, struct sim_op *op, bool cancel)
{
    struct sim_ctr *c = op->cid[0] ? find(s, op->cid) : NULL;
    char msg[160];

    if (cancel) {
        switch (op->kind) {
        case OP_DESCRIBE:
            op->u.dcb(op->data, SWC_ECANCELED, "sim: executor closed", NULL);
            break;
        case OP_INSPECT:
            op->u.icb(op->data, SWC_ECANCELED, "sim: executor closed", NULL);
            break;
        case OP_LIST:
            op->u.lcb(op->data, SWC_ECANCELED, "sim: executor closed", NULL, 0);
            break;
        default:
            op->u.cb(op->data, SWC_ECANCELED, "sim: executor closed", op->cid);
            break;
        }
        return;
    }
    switch (op->kind) {
    case OP_DESCRIBE: {
        Swarmc__NodeDescription d = SWARMC__NODE_DESCRIPTION__INIT;
        Swarmc__Platform p = SWARMC__PLATFORM__INIT;
        Swarmc__Resources r = SWARMC__RESOURCES__INIT;
        Swarmc__EngineDescription e = SWARMC__ENGINE_DESCRIPTION__INIT;
        d.hostname = s->hostname;
        p.os = "linux";
        p.arch = "x86_64";
        r.nano_cpus = s->cfg.nano_cpus;
        r.memory_bytes = s->cfg.memory_bytes;
        e.engine_version = "sim";
        d.platform = &p;
        d.resources = &r;
        d.engine = &e;
        op->u.dcb(op->data, 0, NULL, &d);
        break;
    }
    case OP_PREPARE:
        if (rng_chance(s, s->cfg.prepare_failure_rate)) {
            snprintf(msg, sizeof(msg), "sim: create container for task %s: injected failure",
                     op->cid + strlen(SIM_PREFIX));
            op->u.cb(op->data, SWC_EDOCKER, msg, NULL);
            break;
        }
        if (c == NULL) {
            c = swc_calloc(1, sizeof(*c));
            if (c == NULL) {
                op->u.cb(op->data, SWC_ENOMEM, "sim: create container: out of memory", NULL);
                break;
            }
            c->sim = s;
            memcpy(c->cid, op->cid, sizeof(c->cid));
            uv_timer_init(s->cfg.loop, &c->timer);
            c->state = C_CREATED;
            HASH_ADD_STR(s->ctrs, cid, c);
            s->nctrs++;
        }
        c->health = op->healthcheck;
        op->u.cb(op->data, 0, NULL, c->cid);
        break;
    case OP_START:
        if (c == NULL) {
            snprintf(msg, sizeof(msg), "sim: start container %s: no such container", op->cid);
            op->u.cb(op->data, SWC_ENOENT, msg, op->cid);
            break;
        }
        if (c->state == C_RUNNING) {
            op->u.cb(op->data, 0, NULL, c->cid);
            break;
        }
        if (rng_chance(s, s->cfg.failure_rate)) {
            snprintf(msg, sizeof(msg), "sim: start container %s: injected failure", op->cid);
            op->u.cb(op->data, SWC_EDOCKER, msg, op->cid);
            break;
        }
        c->state = C_RUNNING;
        if (s->cfg.run_time_ms > 0) {
            c->timer_active = true;
            uv_timer_start(&c->timer, run_end_cb, s->cfg.run_time_ms, 0);
        }
        op->u.cb(op->data, 0, NULL, c->cid);
        if (c->health) {
            emit(s, c, SWC_EXEC_EV_HEALTHY, 0);
        }
        break;
    case OP_INSPECT: {
        struct swc_exec_cstate st = {0};
        if (c == NULL) {
            snprintf(msg, sizeof(msg), "sim: inspect container %s: no such container", op->cid);
            op->u.icb(op->data, SWC_ENOENT, msg, NULL);
            break;
        }
        st.container_id = c->cid;
        st.task_id = c->cid + strlen(SIM_PREFIX);
        st.running = c->state == C_RUNNING;
        st.exited = c->state == C_EXITED;
        st.exit_code = c->exit_code;
        st.health = c->health ? SWC_EXEC_HEALTH_HEALTHY : SWC_EXEC_HEALTH_NONE;
        op->u.icb(op->data, 0, NULL, &st);
        break;
    }
    case OP_STOP:
    case OP_KILL:
        if (c != NULL) {
            ctr_stop(c, op->kind == OP_STOP ? 0 : 137);
        }
        op->u.cb(op->data, c ? 0 : SWC_ENOENT, c ? NULL : "sim: stop: no such container", op->cid);
        break;
    case OP_REMOVE:
        if (c != NULL) {
            if (c->timer_active) {
                uv_timer_stop(&c->timer);
            }
            HASH_DEL(s->ctrs, c);
            s->nctrs--;
            ctr_close(s, c);
        }
        op->u.cb(op->data, 0, NULL, op->cid);
        break;
    case OP_LOGS:
        if (c != NULL) {
            int n = snprintf(msg, sizeof(msg), "simulated task %s\n", c->cid + strlen(SIM_PREFIX));
            op->log_cb(op->data, 1, msg, (size_t)n);
        }
        op->u.cb(op->data, c ? 0 : SWC_ENOENT, c ? NULL : "sim: logs: no such container", op->cid);
        break;
    case OP_LIST: {
        struct swc_exec_cstate *list = NULL;
        size_t i = 0;
        struct sim_ctr *it, *tmp;
        if (s->nctrs > 0) {
            list = swc_calloc(s->nctrs, sizeof(*list));
            if (list == NULL) {
                op->u.lcb(op->data, SWC_ENOMEM, "sim: list: out of memory", NULL, 0);
                break;
            }
        }
        HASH_ITER(hh, s->ctrs, it, tmp)
        {
            list[i].container_id = it->cid;
            list[i].task_id = it->cid + strlen(SIM_PREFIX);
            list[i].running = it->state == C_RUNNING;
            list[i].exited = it->state == C_EXITED;
            list[i].exit_code = it->exit_code;
            list[i].health = it->health ? SWC_EXEC_HEALTH_HEALTHY : SWC_EXEC_HEALTH_NONE;
            i++;
        }
        op->u.lcb(op->data, 0, NULL, list, i);
        swc_free(list);
        break;
    }
    }
}

static void optimer_cb(uv_timer_t *t)
{
    struct sim *s = t->data;
    uint64_t now = uv_now(s->cfg.loop);
    /* take the ready ops off the queues first: callbacks may enqueue more */
    struct sim_op *fast = s->fast_head, *op;
    s->fast_head = s->fast_tail = NULL;
    while (fast != NULL) {
        op = fast;
        fast = op->next;
        complete(s, op, false);
        swc_free(op);
    }
    while (s->slow_head != NULL && s->slow_head->due <= now) {
        op = s->slow_head;
        s->slow_head = op->next;
        if (s->slow_head == NULL) {
            s->slow_tail = NULL;
        }
        complete(s, op, false);
        swc_free(op);
    }
    arm(s);
}

static void arm(struct sim *s)
{
    uint64_t now = uv_now(s->cfg.loop), delay;
    if (s->closing) {
        return;
    }
    if (s->fast_head != NULL) {
        delay = 0;
    } else if (s->slow_head != NULL) {
        delay = s->slow_head->due > now ? s->slow_head->due - now : 0;
    } else {
        uv_timer_stop(&s->optimer);
        return;
    }
    uv_timer_start(&s->optimer, optimer_cb, delay, 0);
}

/* ---------------------------------------------------------------- ops */

static int sim_describe(struct swc_exec *ex, swc_exec_describe_cb cb, void *data)
{
    return enqueue((struct sim *)ex, OP_DESCRIBE, NULL, (void *)cb, data, false);
}

static int sim_prepare(struct swc_exec *ex, const Swarmc__Task *task, swc_exec_cb cb, void *data)
{
    struct sim *s = (struct sim *)ex;
    char cid[4 + 32];
    const Swarmc__ContainerSpec *c = task->spec ? task->spec->container : NULL;
    int rc;
    if (task->id == NULL || strlen(task->id) > 31) {
        return SWC_EINVAL;
    }
    snprintf(cid, sizeof(cid), SIM_PREFIX "%s", task->id);
    rc = enqueue(s, OP_PREPARE, cid, (void *)cb, data, true);
    if (rc == 0) {
        struct sim_op *op =
            s->slow_tail && strcmp(s->slow_tail->cid, cid) == 0 && s->slow_tail->kind == OP_PREPARE
                ? s->slow_tail
                : s->fast_tail;
        op->healthcheck = c && c->healthcheck && c->healthcheck->n_test > 0 &&
                          strcmp(c->healthcheck->test[0], "NONE") != 0;
    }
    return rc;
}

static int sim_start(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data)
{
    return enqueue((struct sim *)ex, OP_START, cid, (void *)cb, data, true);
}

static int sim_inspect(struct swc_exec *ex, const char *cid, swc_exec_inspect_cb cb, void *data)
{
    return enqueue((struct sim *)ex, OP_INSPECT, cid, (void *)cb, data, false);
}

static int sim_shutdown(struct swc_exec *ex, const char *cid, const char *sig, int64_t grace_ns,
                        swc_exec_cb cb, void *data)
{
    return enqueue((struct sim *)ex, OP_STOP, cid, (void *)cb, data, false);
}

static int sim_terminate(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data)
{
    return enqueue((struct sim *)ex, OP_KILL, cid, (void *)cb, data, false);
}

static int sim_remove(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data)
{
    return enqueue((struct sim *)ex, OP_REMOVE, cid, (void *)cb, data, false);
}

static int sim_logs(struct swc_exec *ex, const char *cid, int tail, swc_exec_log_cb log_cb,
                    swc_exec_cb done_cb, void *data)
{
    struct sim *s = (struct sim *)ex;
    int rc = enqueue(s, OP_LOGS, cid, (void *)done_cb, data, false);
    if (rc == 0) {
        s->fast_tail->log_cb = log_cb;
    }
    return rc;
}

static int sim_list(struct swc_exec *ex, swc_exec_list_cb cb, void *data)
{
    return enqueue((struct sim *)ex, OP_LIST, NULL, (void *)cb, data, false);
}

static void optimer_close_cb(uv_handle_t *h)
{
    struct sim *s = h->data;
    s->pending_closes--;
    maybe_finish_close(s);
}

static void sim_close(struct swc_exec *ex, void (*close_cb)(struct swc_exec *ex))
{
    struct sim *s = (struct sim *)ex;
    struct sim_ctr *c, *tmp;
    struct sim_op *lists[2] = {s->fast_head, s->slow_head}, *op;

    s->closing = true;
    s->close_cb = close_cb;
    s->fast_head = s->fast_tail = s->slow_head = s->slow_tail = NULL;
    for (int i = 0; i < 2; i++) {
        while ((op = lists[i]) != NULL) {
            lists[i] = op->next;
            complete(s, op, true);
            swc_free(op);
        }
    }
    s->pending_closes++;
    HASH_ITER(hh, s->ctrs, c, tmp)
    {
        HASH_DEL(s->ctrs, c);
        ctr_close(s, c);
    }
    s->nctrs = 0;
    uv_close((uv_handle_t *)&s->optimer, optimer_close_cb);
}

static const struct swc_exec_ops sim_ops = {
    .name = "sim",
    .describe = sim_describe,
    .prepare = sim_prepare,
    .start = sim_start,
    .inspect = sim_inspect,
    .shutdown = sim_shutdown,
    .terminate = sim_terminate,
    .remove = sim_remove,
    .logs = sim_logs,
    .list = sim_list,
    .close = sim_close,
};

int swc_sim_init(struct swc_exec **out, const struct swc_sim_config *cfg, struct swc_err *err)
{
    struct sim *s;
    if (cfg->loop == NULL || cfg->node_id == NULL) {
        return swc_err_set(err, SWC_EINVAL, "sim executor: loop and node id are required");
    }
    s = swc_calloc(1, sizeof(*s));
    if (s == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "sim executor: out of memory");
    }
    s->base.ops = &sim_ops;
    s->cfg = *cfg;
    snprintf(s->node_id, sizeof(s->node_id), "%s", cfg->node_id);
    if (cfg->hostname != NULL) {
        snprintf(s->hostname, sizeof(s->hostname), "%s", cfg->hostname);
    } else {
        snprintf(s->hostname, sizeof(s->hostname), "sim-%s", cfg->node_id);
    }
    s->cfg.node_id = s->node_id;
    s->cfg.hostname = s->hostname;
    if (s->cfg.nano_cpus == 0) {
        s->cfg.nano_cpus = 4000000000LL;
    }
    if (s->cfg.memory_bytes == 0) {
        s->cfg.memory_bytes = 8LL << 30;
    }
    s->rng = cfg->seed ? cfg->seed : 1;
    uv_timer_init(cfg->loop, &s->optimer);
    s->optimer.data = s;
    *out = &s->base;
    return 0;
}

size_t swc_sim_count(struct swc_exec *ex)
{
    return ((struct sim *)ex)->nctrs;
}

int swc_sim_inject(struct swc_exec *ex, const char *task_id, enum swc_exec_event_type type,
                   int exit_code)
{
    struct sim *s = (struct sim *)ex;
    char cid[4 + 32];
    struct sim_ctr *c;
    snprintf(cid, sizeof(cid), SIM_PREFIX "%s", task_id);
    c = find(s, cid);
    if (c == NULL) {
        return SWC_ENOENT;
    }
    switch (type) {
    case SWC_EXEC_EV_EXIT:
        ctr_stop(c, exit_code);
        break;
    case SWC_EXEC_EV_GONE:
        if (c->timer_active) {
            uv_timer_stop(&c->timer);
        }
        HASH_DEL(s->ctrs, c);
        s->nctrs--;
        emit(s, c, SWC_EXEC_EV_GONE, 0);
        ctr_close(s, c);
        break;
    default:
        emit(s, c, type, exit_code);
        break;
    }
    return 0;
}
