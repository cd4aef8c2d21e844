/* Unit tests for the leader's pipeline behind its write seam: a fake raft
 * applies the pipeline's transactions to a real store on the next loop turn
 * and reports the result, so the pipeline runs its real passes (orchestrator,
 * scheduler, reaper) on a real libuv loop without sockets. The tests check
 * that passes are incremental: after one service changes, only that service
 * is reconciled and tasks of other services are not decoded again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "manager/manager_int.h"

#define BIG   200 /* replicas of the service that does not change */
#define NODES 4
#define HUGE  9000 /* replicas of a service larger than one pass's writes */

struct pending {
    struct swc_buf batch;
    swc_manager_write_cb cb;
    void *data;
    struct pending *next;
};

struct fixture {
    uv_loop_t loop;
    struct swc_store *store;
    struct swc_manager m;
    struct swc_pipeline *p;
    uv_timer_t apply_timer;
    uv_timer_t deadline;
    struct pending *head, **tail;
    uint64_t index;
    int last_code;
    bool timed_out;
    uint64_t delay_ms;         /* the fake raft's commit latency */
    size_t queued, max_queued; /* writes in flight, and the most at once */
};

static void result_cb(void *data, uint64_t raft_index, uint64_t proposal_id, const char *proposer,
                      int code, const char *msg)
{
    (void)raft_index, (void)proposal_id, (void)proposer, (void)msg;
    struct fixture *f = data;
    f->last_code = code;
}

/* Apply one encoded transaction as a committed entry. */
static int apply_batch(struct fixture *f, const struct swc_buf *batch)
{
    f->last_code = 0;
    int rv = swc_store_apply_entry(f->store, ++f->index, batch->data, batch->len, result_cb, f);
    return rv != 0 ? rv : f->last_code;
}

/* The fake raft: apply everything queued, then call back (never from inside
 * the write call, like swc_manager_write). */
static void apply_queued(uv_timer_t *t)
{
    struct fixture *f = t->data;
    while (f->head != NULL) {
        struct pending *w = f->head;
        f->head = w->next;
        if (f->head == NULL) {
            f->tail = &f->head;
        }
        int rv = apply_batch(f, &w->batch);
        f->queued--;
        w->cb(w->data, rv, rv != 0 ? "conflict" : "");
        swc_buf_free(&w->batch);
        swc_free(w);
    }
}

static int fake_write(void *data, const struct swc_store_txn *t, swc_manager_write_cb cb,
                      void *cb_data)
{
    struct fixture *f = data;
    struct pending *w = swc_calloc(1, sizeof *w);
    struct swc_buf txn;
    assert_non_null(w);
    swc_buf_init(&txn);
    swc_buf_init(&w->batch);
    assert_int_equal(swc_store_txn_encode(t, &txn), 0);
    assert_int_equal(swc_store_batch_append(&w->batch, txn.data, txn.len), 0);
    swc_buf_free(&txn);
    w->cb = cb;
    w->data = cb_data;
    *f->tail = w;
    f->tail = &w->next;
    if (++f->queued > f->max_queued) {
        f->max_queued = f->queued;
    }
    if (f->delay_ms == 0 || !uv_is_active((uv_handle_t *)&f->apply_timer)) {
        uv_timer_start(&f->apply_timer, apply_queued, f->delay_ms, 0);
    }
    return 0;
}

/* Apply t (then freed) as one raft entry through the fake raft. */
static void apply_txn(struct fixture *f, struct swc_store_txn *t)
{
    struct swc_buf txn, batch;
    swc_buf_init(&txn);
    swc_buf_init(&batch);
    assert_int_equal(swc_store_txn_encode(t, &txn), 0);
    assert_int_equal(swc_store_batch_append(&batch, txn.data, txn.len), 0);
    assert_int_equal(apply_batch(f, &batch), 0);
    swc_buf_free(&txn);
    swc_buf_free(&batch);
    swc_store_txn_free(t);
}
static void write_obj(struct fixture *f, int kind, const ProtobufCMessage *obj, bool create)
{
    struct swc_store_txn t;
    assert_int_equal(swc_store_txn_init(&t, 1, "test"), 0);
    if (create) {
        assert_int_equal(swc_store_txn_create(&t, kind, obj), 0);
    } else {
        assert_int_equal(swc_store_txn_update(&t, kind, obj, 0), 0);
    }
    apply_txn(f, &t);
}

static void put_node(struct fixture *f, const char *id)
{
    Swarmc__Node n = SWARMC__NODE__INIT;
    Swarmc__NodeSpec spec = SWARMC__NODE_SPEC__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__NodeStatus st = SWARMC__NODE_STATUS__INIT;
    Swarmc__NodeDescription desc = SWARMC__NODE_DESCRIPTION__INIT;
    Swarmc__Resources res = SWARMC__RESOURCES__INIT;
    n.id = (char *)id;
    ann.name = (char *)id;
    spec.annotations = &ann;
    spec.availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
    n.spec = &spec;
    st.state = SWARMC__NODE_STATE__NODE_STATE_READY;
    n.status = &st;
    res.nano_cpus = 4000000000LL;
    res.memory_bytes = 8LL << 30;
    desc.resources = &res;
    desc.hostname = (char *)id;
    n.description = &desc;
    write_obj(f, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n.base, true);
}

static void put_service_c(struct fixture *f, const char *id, uint64_t replicas, bool create,
                          const char *constraint)
{
    Swarmc__Service s = SWARMC__SERVICE__INIT;
    Swarmc__ServiceSpec spec = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__TaskSpec task = SWARMC__TASK_SPEC__INIT;
    Swarmc__ContainerSpec c = SWARMC__CONTAINER_SPEC__INIT;
    Swarmc__ReplicatedService rep = SWARMC__REPLICATED_SERVICE__INIT;
    s.id = (char *)id;
    ann.name = (char *)id;
    spec.annotations = &ann;
    Swarmc__Placement pl = SWARMC__PLACEMENT__INIT;
    char *cons[1] = {(char *)constraint};
    c.image = "busybox";
    task.container = &c;
    if (constraint != NULL) {
        pl.n_constraints = 1;
        pl.constraints = cons;
        task.placement = &pl;
    }
    spec.task = &task;
    rep.replicas = replicas;
    spec.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    spec.replicated = &rep;
    s.spec = &spec;
    s.spec_version = 1;
    write_obj(f, SWARMC__OBJECT_KIND__OBJECT_KIND_SERVICE, &s.base, create);
}

static void put_service(struct fixture *f, const char *id, uint64_t replicas, bool create)
{
    put_service_c(f, id, replicas, create, NULL);
}

static size_t tasks_on(struct fixture *f, const char *service, const char *node);

static void on_deadline(uv_timer_t *t)
{
    struct fixture *f = t->data;
    f->timed_out = true;
    uv_stop(&f->loop);
}

/* Run the loop until the pipeline and the fake raft are idle (nothing keeps
 * the loop alive) or 10 s pass. */
static void settle(struct fixture *f)
{
    uv_timer_start(&f->deadline, on_deadline, 10000, 0);
    uv_unref((uv_handle_t *)&f->deadline);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&f->deadline);
    assert_false(f->timed_out);
}

/* Tasks of service with status.state == state. */
static size_t count_state(struct fixture *f, const char *service, int state)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    size_t n = 0;
    swc_store_iter_service_tasks(f->store, service, &it);
    while (swc_store_iter_next(&it, &o)) {
        n += o.state == state;
    }
    return n;
}

static int setup(void **state)
{
    struct fixture *f = swc_calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(swc_store_create(&f->store), 0);
    f->tail = &f->head;
    uv_timer_init(&f->loop, &f->apply_timer);
    uv_timer_init(&f->loop, &f->deadline);
    f->apply_timer.data = f->deadline.data = f;
    f->m.loop = &f->loop;
    f->m.store = f->store;
    f->m.node_id = "manager";
    f->m.leader = true;
    char id[16];
    for (int i = 0; i < NODES; i++) {
        snprintf(id, sizeof id, "node%d", i);
        put_node(f, id);
    }
    put_service(f, "big", BIG, true);
    put_service(f, "small", 2, true);
    assert_int_equal(swc_pipeline_start(&f->m, &f->p), 0);
    swc_pipeline_set_writer(f->p, fake_write, f);
    settle(f);
    *state = f;
    return 0;
}

static void closed(uv_handle_t *h)
{
    (void)h;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    swc_pipeline_stop(f->p);
    uv_close((uv_handle_t *)&f->apply_timer, closed);
    uv_close((uv_handle_t *)&f->deadline, closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    swc_store_destroy(f->store);
    swc_free(f);
    return 0;
}

/* The first pass is a full reconciliation: every replica gets created and
 * scheduled. */
static void test_first_pass_converges(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats st;
    assert_int_equal(count_state(f, "big", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), BIG);
    assert_int_equal(count_state(f, "small", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), 2);
    swc_pipeline_get_stats(f->p, &st);
    assert_true(st.full_passes >= 1);
}

/* Scaling one service reconciles that service only and decodes none of the
 * other service's tasks. */
static void test_one_service_change_touches_only_it(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    swc_pipeline_get_stats(f->p, &a);
    put_service(f, "small", 4, false);
    settle(f);
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(count_state(f, "small", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), 4);
    assert_int_equal(count_state(f, "big", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), BIG);
    assert_int_equal(b.full_passes, a.full_passes);
    /* "small" once for the scale-up and once after its new tasks were
     * assigned; "big" never. */
    assert_true(b.services_reconciled - a.services_reconciled >= 1);
    assert_true(b.services_reconciled - a.services_reconciled <= 3);
    /* The 2 new tasks: decoded to schedule them and to refresh the cache;
     * a full pass would decode the big service's BIG tasks. */
    assert_true(b.tasks_decoded - a.tasks_decoded <= 8);
}

/* A pass with nothing changed does nothing: a kick-free commit of an
 * unrelated object (a secret) reconciles no service. */
static void test_unrelated_change_reconciles_nothing(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    Swarmc__Secret sec = SWARMC__SECRET__INIT;
    Swarmc__SecretSpec spec = SWARMC__SECRET_SPEC__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    swc_pipeline_get_stats(f->p, &a);
    sec.id = "secret1";
    ann.name = "s1";
    spec.annotations = &ann;
    sec.spec = &spec;
    write_obj(f, SWARMC__OBJECT_KIND__OBJECT_KIND_SECRET, &sec.base, true);
    settle(f);
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(b.services_reconciled, a.services_reconciled);
    assert_int_equal(b.tasks_decoded, a.tasks_decoded);
}

static void live_tasks(struct fixture *f, size_t *live, size_t *live_on_down)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    *live = *live_on_down = 0;
    swc_store_iter_service_tasks(f->store, "big", &it);
    while (swc_store_iter_next(&it, &o)) {
        if (o.desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
            (*live)++;
            *live_on_down += strcmp(o.node_id, "node0") == 0;
        }
    }
}

/* A node going down makes the services with tasks on it reconcile: their
 * tasks there are shut down and replaced on the other nodes. */
static void test_node_down_replaces_its_tasks(void **state)
{
    struct fixture *f = *state;
    Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
        f->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, "node0", NULL);
    assert_non_null(n);
    n->status->state = SWARMC__NODE_STATE__NODE_STATE_DOWN;
    write_obj(f, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n->base, false);
    swc_store_free_decoded(&n->base);
    /* Replacements may wait for a restart delay: run the loop until they
     * exist or the deadline passes. */
    size_t live_on_down, live;
    uv_timer_start(&f->deadline, on_deadline, 20000, 0);
    live_tasks(f, &live, &live_on_down);
    while (!f->timed_out && (live_on_down != 0 || live != BIG)) {
        uv_run(&f->loop, UV_RUN_ONCE);
        live_tasks(f, &live, &live_on_down);
    }
    uv_timer_stop(&f->deadline);
    assert_int_equal(live_on_down, 0);
    assert_int_equal(live, BIG);
}

/* Every task of service moves to state (as workers report it, in one
 * write), like the dispatcher's status batches. */
static void report_state(struct fixture *f, const char *service, int state)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    struct swc_store_txn t;
    assert_int_equal(swc_store_txn_init(&t, 1, "worker"), 0);
    swc_store_iter_service_tasks(f->store, service, &it);
    while (swc_store_iter_next(&it, &o)) {
        if (o.state >= state || o.desired_state > SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
            continue;
        }
        Swarmc__Task *task = (Swarmc__Task *)swc_store_decode(&o, NULL);
        assert_non_null(task);
        task->status->state = (Swarmc__TaskState)state;
        assert_int_equal(
            swc_store_txn_update(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_TASK, &task->base, o.version),
            0);
        swc_store_free_decoded(&task->base);
    }
    apply_txn(f, &t);
}

/* Workers reporting their tasks' progress (ASSIGNED -> ... -> RUNNING) is
 * no work for the orchestrators: no service is reconciled again and no task
 * is decoded (a check that only dropped the relevance filter would
 * reconcile "big" once per report). */
static void test_worker_progress_reconciles_nothing(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    swc_pipeline_get_stats(f->p, &a);
    report_state(f, "big", SWARMC__TASK_STATE__TASK_STATE_ACCEPTED);
    settle(f);
    report_state(f, "big", SWARMC__TASK_STATE__TASK_STATE_RUNNING);
    settle(f);
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(count_state(f, "big", SWARMC__TASK_STATE__TASK_STATE_RUNNING), BIG);
    assert_int_equal(b.services_reconciled, a.services_reconciled);
    assert_int_equal(b.tasks_decoded, a.tasks_decoded);
    assert_int_equal(b.task_writes, a.task_writes);
}

/* A service larger than one pass's write budget is filled over several
 * passes from its backlog: it is reconciled once to decide, not once per
 * chunk, and every replica ends up placed. */
static void test_large_service_fills_from_backlog(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    swc_pipeline_get_stats(f->p, &a);
    put_service(f, "huge", HUGE, true);
    settle(f);
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(count_state(f, "huge", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), HUGE);
    assert_true(b.chunked_passes > a.chunked_passes); /* it did not fit one pass */
    assert_true(b.services_reconciled - a.services_reconciled <= 2);
    /* Backlog tasks are placed as they are created (written once,
     * ASSIGNED): only the first chunk, created PENDING by the reconcile,
     * is decoded by the scheduler. */
    assert_true(b.tasks_decoded - a.tasks_decoded <= HUGE / 2);
    report_state(f, "huge", SWARMC__TASK_STATE__TASK_STATE_RUNNING);
    settle(f);
    struct swc_pipeline_stats c;
    swc_pipeline_get_stats(f->p, &c);
    assert_int_equal(c.services_reconciled, b.services_reconciled);
}

/* Scaling a large service down when walking its tasks takes longer than a
 * pass's budget (100k tasks on a loaded manager): removals are not kept in a backlog, so each walk
 * must still apply a share of them (before, every pass walked the service,
 * applied nothing and left it dirty: the leader spun and never scaled). */
static void test_scale_down_progresses_past_deadline(void **state)
{
    struct fixture *f = *state;
    put_service(f, "huge", HUGE, true);
    settle(f);
    assert_int_equal(count_state(f, "huge", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), HUGE);
    swc_pipeline_test_overrun(f->p, true);
    put_service(f, "huge", 0, false);
    settle(f);
    swc_pipeline_test_overrun(f->p, false);
    struct swc_store_iter it;
    struct swc_store_obj o;
    size_t live = 0;
    swc_store_iter_service_tasks(f->store, "huge", &it);
    while (swc_store_iter_next(&it, &o)) {
        live += o.desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    }
    assert_int_equal(live, 0);
}

/* A node registering again with the same state (a new session, a new
 * description) changes no slot: replicated services are not reconciled.
 * (Without the node cache's change check, "big" and "small" would be.) */
static void test_node_reregistration_reconciles_nothing(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    swc_pipeline_get_stats(f->p, &a);
    Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
        f->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, "node1", NULL);
    assert_non_null(n);
    char *old = n->status->message;
    n->status->message = "registered again";
    write_obj(f, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n->base, false);
    n->status->message = old; /* the literal is not the message's to free */
    swc_store_free_decoded(&n->base);
    settle(f);
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(b.services_reconciled, a.services_reconciled);
    assert_int_equal(b.tasks_decoded, a.tasks_decoded);
    /* nor is the scheduler's view rebuilt (every task re-accounted) */
    assert_int_equal(b.sched_rebuilds, a.sched_rebuilds);
}

/* A schedulable node whose labels change is read again: a service
 * constrained to the new label lands there. */
static void test_node_label_change_is_seen(void **state)
{
    struct fixture *f = *state;
    Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
        f->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, "node2", NULL);
    Swarmc__Annotations__LabelsEntry e = SWARMC__ANNOTATIONS__LABELS_ENTRY__INIT, *ents[1] = {&e};
    assert_non_null(n);
    e.key = "zone";
    e.value = "a";
    size_t old_n = n->spec->annotations->n_labels;
    Swarmc__Annotations__LabelsEntry **old = n->spec->annotations->labels;
    n->spec->annotations->n_labels = 1;
    n->spec->annotations->labels = ents;
    write_obj(f, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n->base, false);
    n->spec->annotations->n_labels = old_n;
    n->spec->annotations->labels = old;
    swc_store_free_decoded(&n->base);
    settle(f);
    put_service_c(f, "zoned", 3, true, "node.labels.zone==a");
    settle(f);
    assert_int_equal(count_state(f, "zoned", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), 3);
    assert_int_equal(tasks_on(f, "zoned", "node2"), 3);
}

/* The loop-turn budget is shared: a second chunk in the same turn gets no
 * more than what the first left, but always a minimum. */
static void test_turn_budget_is_shared(void **state)
{
    struct fixture *f = *state;
    int64_t big = 10 * SWC_MANAGER_TURN_NS;
    int64_t t0 = swc_now_mono();
    int64_t d1 = swc_manager_turn_deadline(&f->m, big);
    int64_t d2 = swc_manager_turn_deadline(&f->m, big);
    int64_t t1 = swc_now_mono();
    assert_true(d1 <= t1 + SWC_MANAGER_TURN_NS);
    assert_true(d2 <= d1 + SWC_MANAGER_TURN_MIN_NS);
    assert_true(d2 >= t0 + SWC_MANAGER_TURN_MIN_NS);
    /* A small request is not stretched to the turn's budget. */
    assert_true(swc_manager_turn_deadline(&f->m, 0) <= swc_now_mono() + SWC_MANAGER_TURN_MIN_NS);
}

/* More unplaceable PENDING tasks than one pass schedules do not hide the
 * placeable ones behind them in the state index: without the set of tasks
 * already found unplaceable, "late" would wait behind "nowhere" forever. */
static void test_unplaceable_tasks_do_not_block_others(void **state)
{
    struct fixture *f = *state;
    put_service_c(f, "nowhere", HUGE, true, "node.labels.zone==mars");
    settle(f);
    assert_int_equal(count_state(f, "nowhere", SWARMC__TASK_STATE__TASK_STATE_PENDING), HUGE);
    put_service(f, "late", 2, true);
    settle(f);
    assert_int_equal(count_state(f, "late", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), 2);
}

/* Set a node's readiness and availability (one write). */
static void set_node(struct fixture *f, const char *id, int state, int availability)
{
    Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
        f->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, id, NULL);
    assert_non_null(n);
    n->status->state = (Swarmc__NodeState)state;
    n->spec->availability = (Swarmc__NodeAvailability)availability;
    write_obj(f, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n->base, false);
    swc_store_free_decoded(&n->base);
}

/* Live tasks of service on node. */
static size_t tasks_on(struct fixture *f, const char *service, const char *node)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    size_t n = 0;
    swc_store_iter_node_tasks(f->store, node, &it);
    while (swc_store_iter_next(&it, &o)) {
        n += strcmp(o.service_id, service) == 0 &&
             o.desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    }
    return n;
}

#define IDLE_NODES 40

/* Nodes without tasks going DOWN (a fleet that left) cost the scheduler
 * nothing: its view is updated in place, not rebuilt (a rebuild
 * re-accounts every task in the store, so 10,000 nodes going down during a
 * 100,000-task create made it re-account 100,000 tasks per pass), no
 * service is reconciled, and no task lands on them afterwards. */
static void test_down_nodes_cost_no_rebuild(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    char id[32];
    for (int i = 0; i < IDLE_NODES; i++) {
        snprintf(id, sizeof id, "idle%d", i);
        put_node(f, id);
    }
    settle(f);
    swc_pipeline_get_stats(f->p, &a);
    for (int i = 0; i < IDLE_NODES; i++) {
        snprintf(id, sizeof id, "idle%d", i);
        set_node(f, id, SWARMC__NODE_STATE__NODE_STATE_DOWN,
                 SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE);
        settle(f);
    }
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(b.sched_rebuilds, a.sched_rebuilds);
    assert_int_equal(b.services_reconciled, a.services_reconciled);
    assert_int_equal(b.tasks_decoded, a.tasks_decoded);
    assert_true(b.sched_node_follows >= a.sched_node_follows + IDLE_NODES);
    /* New tasks go to the ready nodes only, still without a rebuild. */
    put_service(f, "after", 2 * NODES, true);
    settle(f);
    assert_int_equal(count_state(f, "after", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), 2 * NODES);
    for (int i = 0; i < IDLE_NODES; i++) {
        snprintf(id, sizeof id, "idle%d", i);
        assert_int_equal(tasks_on(f, "after", id), 0);
    }
    for (int i = 0; i < NODES; i++) {
        snprintf(id, sizeof id, "node%d", i);
        assert_int_equal(tasks_on(f, "after", id), 2);
    }
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(b.sched_rebuilds, a.sched_rebuilds);
}

/* The in-place update is only for nodes leaving placement: a node that
 * comes back (ready and active again) is used, and a drained or paused
 * node is not. */
static void test_node_back_up_is_used(void **state)
{
    struct fixture *f = *state;
    put_node(f, "spare");
    put_node(f, "drained");
    settle(f);
    set_node(f, "spare", SWARMC__NODE_STATE__NODE_STATE_DOWN,
             SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE);
    set_node(f, "drained", SWARMC__NODE_STATE__NODE_STATE_READY,
             SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    settle(f);
    put_service(f, "one", NODES, true);
    settle(f);
    assert_int_equal(tasks_on(f, "one", "spare"), 0);
    set_node(f, "spare", SWARMC__NODE_STATE__NODE_STATE_READY,
             SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE);
    settle(f);
    put_service(f, "two", NODES + 2, true);
    settle(f);
    assert_int_equal(count_state(f, "two", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), NODES + 2);
    assert_true(tasks_on(f, "two", "spare") >= 1);
    assert_int_equal(tasks_on(f, "two", "drained"), 0);
    set_node(f, "drained", SWARMC__NODE_STATE__NODE_STATE_READY,
             SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE);
    settle(f);
    put_service(f, "three", 3 * (NODES + 1), true);
    settle(f);
    assert_int_equal(tasks_on(f, "three", "drained"), 0);
    assert_int_equal(tasks_on(f, "three", "spare"), 3);
}

/* A large create is filled from the backlog from its first task: every task
 * is written once, ASSIGNED, and none is decoded (before, the first 2,000
 * were written PENDING, decoded and written again by the scheduler). */
static void test_large_create_writes_each_task_once(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    swc_pipeline_get_stats(f->p, &a);
    put_service(f, "huge", HUGE, true);
    settle(f);
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(count_state(f, "huge", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), HUGE);
    assert_int_equal(b.task_writes - a.task_writes, HUGE);
    assert_int_equal(b.tasks_decoded, a.tasks_decoded);
}

/* With a raft that takes time to commit, backlog passes still wait for each
 * entry (one in flight: two applied in one turn made leader turns long), and
 * the result is every slot once, spread evenly over the nodes. */
static void test_backlog_pipelines_writes(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    swc_pipeline_get_stats(f->p, &a);
    f->delay_ms = 5;
    f->max_queued = 0;
    put_service(f, "huge", HUGE, true);
    settle(f);
    swc_pipeline_get_stats(f->p, &b);
    assert_int_equal(count_state(f, "huge", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), HUGE);
    assert_int_equal(f->max_queued, 1);
    assert_int_equal(b.pipelined_passes, a.pipelined_passes);
    /* every slot exactly once */
    uint8_t *seen = swc_calloc(HUGE + 1, 1);
    struct swc_store_iter it;
    struct swc_store_obj o;
    assert_non_null(seen);
    swc_store_iter_service_tasks(f->store, "huge", &it);
    while (swc_store_iter_next(&it, &o)) {
        Swarmc__Task *t = (Swarmc__Task *)swc_store_decode(&o, NULL);
        assert_non_null(t);
        assert_true(t->slot >= 1 && t->slot <= HUGE);
        assert_int_equal(seen[t->slot], 0);
        seen[t->slot] = 1;
        swc_store_free_decoded(&t->base);
    }
    swc_free(seen);
    char id[16];
    for (int i = 0; i < NODES; i++) {
        snprintf(id, sizeof id, "node%d", i);
        assert_int_equal(tasks_on(f, "huge", id), HUGE / NODES);
    }
}

#ifndef FLEET_NODES
#define FLEET_NODES 200
#endif
#define FLEET_DOWN (FLEET_NODES * 9 / 10)
#ifndef FLEET_TASKS
#define FLEET_TASKS 20000
#endif
/* A pass writes at most half its 4,000 writes from a backlog, the rest for
 * the scheduler (what one pass writes in all also depends on how much of
 * its time a walk left: a fast machine applies more of a reconcile's
 * actions before the deadline, so that is not asserted). */
#define FILL_WRITES_BUDGET (4000 / 2 + 1)

/* Per pass deltas over a run: how many passes, the most writes and the
 * longest pass (a pass is one timer callback of the pipeline). */
struct run_figures {
    struct swc_pipeline_stats a, b;
    int64_t t0, ns;
};

static void run_begin(struct fixture *f, struct run_figures *r)
{
    swc_pipeline_get_stats(f->p, &r->a);
    swc_pipeline_reset_max(f->p);
    r->t0 = swc_now_mono();
}

static void run_end(struct fixture *f, struct run_figures *r, const char *what)
{
    r->ns = swc_now_mono() - r->t0;
    swc_pipeline_get_stats(f->p, &r->b);
    printf("# %s: %lld ms, %llu passes, %llu reconciles, %llu rebuilds, %llu decodes, "
           "%llu writes, %llu walks, %llu from backlogs, longest pass %lld ms, most writes in a "
           "pass %llu (from a backlog %llu)\n",
           what, (long long)(r->ns / SWC_NS_PER_MS),
           (unsigned long long)(r->b.passes - r->a.passes),
           (unsigned long long)(r->b.services_reconciled - r->a.services_reconciled),
           (unsigned long long)(r->b.sched_rebuilds - r->a.sched_rebuilds),
           (unsigned long long)(r->b.tasks_decoded - r->a.tasks_decoded),
           (unsigned long long)(r->b.task_writes - r->a.task_writes),
           (unsigned long long)(r->b.walks - r->a.walks),
           (unsigned long long)(r->b.backlog_actions - r->a.backlog_actions),
           (long long)(r->b.max_pass_ns / SWC_NS_PER_MS), (unsigned long long)r->b.max_pass_writes,
           (unsigned long long)r->b.max_fill_writes);
}

/* A fleet of FLEET_NODES nodes running FLEET_TASKS tasks of "fleet". */
static void fleet_up(struct fixture *f)
{
    char id[32];
    for (int i = NODES; i < FLEET_NODES; i++) {
        snprintf(id, sizeof id, "node%d", i);
        put_node(f, id);
    }
    settle(f);
    put_service(f, "fleet", FLEET_TASKS, true);
    settle(f);
    assert_int_equal(count_state(f, "fleet", SWARMC__TASK_STATE__TASK_STATE_ASSIGNED), FLEET_TASKS);
    report_state(f, "fleet", SWARMC__TASK_STATE__TASK_STATE_RUNNING);
    settle(f);
}

/* Live tasks of service (desired and state at most RUNNING). */
static size_t live_of(struct fixture *f, const char *service)
{
    struct swc_store_iter it;
    struct swc_store_obj o;
    size_t n = 0;
    swc_store_iter_service_tasks(f->store, service, &it);
    while (swc_store_iter_next(&it, &o)) {
        n += o.desired_state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING &&
             o.state <= SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    }
    return n;
}

/* Most of the fleet goes DOWN at once (one write, like the dispatcher's
 * heartbeat expiry batch): the tasks there are shut down and replaced on
 * the nodes left. The work is proportional to the tasks replaced: the
 * service's tasks are walked a bounded number of times (not once per
 * chunk of writes), shutting down a task on a DOWN node rebuilds nothing,
 * and no pass writes more than its budget. */
static void test_replace_on_down_nodes_is_amortised(void **state)
{
    struct fixture *f = *state;
    struct run_figures r;
    struct swc_store_txn t;
    char id[32];
    fleet_up(f);
    assert_int_equal(swc_store_txn_init(&t, 1, "dispatcher"), 0);
    for (int i = FLEET_NODES - FLEET_DOWN; i < FLEET_NODES; i++) {
        snprintf(id, sizeof id, "node%d", i);
        Swarmc__Node *n = (Swarmc__Node *)swc_store_get_decoded(
            f->store, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, id, NULL);
        assert_non_null(n);
        n->status->state = SWARMC__NODE_STATE__NODE_STATE_DOWN;
        assert_int_equal(
            swc_store_txn_update(&t, SWARMC__OBJECT_KIND__OBJECT_KIND_NODE, &n->base, 0), 0);
        swc_store_free_decoded(&n->base);
    }
    apply_txn(f, &t);
    run_begin(f, &r);
    settle(f);
    run_end(f, &r, "90% of the nodes down, their tasks replaced");
    assert_int_equal(live_of(f, "fleet"), FLEET_TASKS);
    size_t replaced = (size_t)FLEET_TASKS * FLEET_DOWN / FLEET_NODES;
    /* No re-accounting of every task (before: one per chunk of writes). */
    assert_int_equal(r.b.sched_rebuilds, r.a.sched_rebuilds);
    /* One walk decides; the shutdowns that did not fit are written from the
     * backlog (before: a walk of every task per chunk of ~2,000 writes). */
    assert_true(r.b.walks - r.a.walks <= 2);
    assert_true(r.b.backlog_actions - r.a.backlog_actions >= replaced / 2);
    /* Decodes: each task once to warm the cache (the workers' RUNNING
     * reports made it stale) and each shut-down task once to write it. */
    assert_true(r.b.tasks_decoded - r.a.tasks_decoded <= FLEET_TASKS + replaced + 2000);
    assert_int_equal(r.b.task_writes - r.a.task_writes, 2 * replaced);
    assert_true(r.b.max_fill_writes > 0);
    assert_true(r.b.max_fill_writes <= FILL_WRITES_BUDGET);
    for (int i = FLEET_NODES - FLEET_DOWN; i < FLEET_NODES; i++) {
        snprintf(id, sizeof id, "node%d", i);
        assert_int_equal(tasks_on(f, "fleet", id), 0);
    }
}

/* Scaling the fleet service to 0 and back: one walk of its tasks pays for
 * all the removals (applied from a backlog, not one walk per chunk of
 * writes), and a task shut down on a live node leaves the scheduler's view
 * in place (no rebuild): the tasks created after spread as evenly as the
 * first ones did. */
static void test_scale_to_zero_and_back_is_amortised(void **state)
{
    struct fixture *f = *state;
    struct run_figures r;
    fleet_up(f);
    put_service(f, "fleet", 0, false);
    run_begin(f, &r);
    settle(f);
    run_end(f, &r, "scale to 0");
    assert_int_equal(live_of(f, "fleet"), 0);
    assert_int_equal(r.b.sched_rebuilds, r.a.sched_rebuilds);
    assert_true(r.b.walks - r.a.walks <= 2);
    assert_true(r.b.backlog_actions - r.a.backlog_actions >= FLEET_TASKS / 2);
    assert_true(r.b.tasks_decoded - r.a.tasks_decoded <= 2 * FLEET_TASKS + 2000);
    assert_int_equal(r.b.task_writes - r.a.task_writes, FLEET_TASKS);
    assert_true(r.b.max_fill_writes > 0);
    assert_true(r.b.max_fill_writes <= FILL_WRITES_BUDGET);
    put_service(f, "fleet", FLEET_TASKS, false);
    run_begin(f, &r);
    settle(f);
    run_end(f, &r, "scale back up");
    assert_int_equal(live_of(f, "fleet"), FLEET_TASKS);
    /* Written once each, placed, with the view followed in place: the
     * tasks spread evenly over the nodes as they did the first time. */
    assert_int_equal(r.b.sched_rebuilds, r.a.sched_rebuilds);
    assert_int_equal(r.b.task_writes - r.a.task_writes, FLEET_TASKS);
    assert_int_equal(r.b.tasks_decoded, r.a.tasks_decoded);
    /* Creates from a backlog are bounded by writes, not time: each fill
     * takes at most half of its pass's writes. */
    assert_true(r.b.max_fill_writes > 0);
    assert_true(r.b.max_fill_writes <= FILL_WRITES_BUDGET);
    char id[32];
    for (int i = 0; i < FLEET_NODES; i += FLEET_NODES / 10) {
        snprintf(id, sizeof id, "node%d", i);
        assert_int_equal(tasks_on(f, "fleet", id), FLEET_TASKS / FLEET_NODES);
    }
}

/* Chunks of work yield to the loop: a pass that leaves work and wrote
 * nothing (warming the task cache of a large service whose walk outlasts
 * the pass) runs the next chunk in a later loop turn, not in the same one
 * (libuv before 1.45 runs a timer restarted with 0 ms from a timer callback
 * again in the same turn: chained, the leader's turns lasted seconds). */
static void test_chunks_yield_to_the_loop(void **state)
{
    struct fixture *f = *state;
    struct swc_pipeline_stats a, b;
    put_service(f, "huge", HUGE, true);
    settle(f);
    report_state(f, "huge", SWARMC__TASK_STATE__TASK_STATE_RUNNING); /* cache now stale */
    settle(f);
    f->delay_ms = 1; /* commits come in a later turn, as raft's do */
    put_service(f, "huge", 0, false);
    uint64_t most = 0;
    uv_timer_start(&f->deadline, on_deadline, 20000, 0);
    while (!f->timed_out && live_of(f, "huge") > 0) {
        swc_pipeline_get_stats(f->p, &a);
        uv_run(&f->loop, UV_RUN_ONCE);
        swc_pipeline_get_stats(f->p, &b);
        if (b.passes - a.passes > most) {
            most = b.passes - a.passes;
        }
    }
    uv_timer_stop(&f->deadline);
    assert_false(f->timed_out);
    /* UV_RUN_ONCE runs due timers before and after polling: 2 at most. */
    printf("# most passes in one loop turn: %llu\n", (unsigned long long)most);
    assert_true(most <= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_pass_converges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_service_change_touches_only_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrelated_change_reconciles_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_down_replaces_its_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_progress_reconciles_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_service_fills_from_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_down_progresses_past_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_reregistration_reconciles_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_turn_budget_is_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_nodes_cost_no_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_label_change_is_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_back_up_is_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_create_writes_each_task_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_pipelines_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_on_down_nodes_is_amortised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_yield_to_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_to_zero_and_back_is_amortised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unplaceable_tasks_do_not_block_others, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
