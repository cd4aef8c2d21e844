/* In-process cluster on loopback: one manager (raft on disk, real RPC on
 * 127.0.0.1) and simulated workers (agent + worker + sim executor, each with
 * its own session and heartbeats). Checks that the whole pipeline converges
 * and that a lost node's tasks are replaced after the heartbeat timeout.
 * Runs on plain TCP: the secure channel has its own tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/control.pb-c.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/log.h"
#include "manager/manager.h"
#include "net/rpc.h"
#include "worker/agent.h"
#include "worker/sim.h"
#include "worker/worker.h"

#define HEARTBEAT_NS (2 * SWC_NS_PER_SEC)

struct node {
    char id[SWC_ID_LEN + 1];
    char dir[256];
    struct swc_exec *exec;
    struct swc_worker *worker;
    struct swc_agent *agent;
    bool down;
};

struct cluster {
    uv_loop_t loop;
    char dir[128];
    struct swc_rpc_server *srv;
    struct swc_manager *mgr;
    char addr[64];
    struct node *nodes;
    size_t nnodes;
    struct swc_rpc_conn *client;
    /* last RPC reply */
    bool replied;
    int status;
    uint8_t *reply;
    size_t reply_len;
};

/* Run the loop until pred(c) holds or deadline_ms passes. */
static bool wait_for(struct cluster *c, bool (*pred)(struct cluster *), int64_t deadline_ms)
{
    int64_t end = swc_now_mono() + deadline_ms * SWC_NS_PER_MS;
    while (!pred(c)) {
        if (swc_now_mono() > end) {
            return false;
        }
        uv_run(&c->loop, UV_RUN_ONCE);
    }
    return true;
}

static bool is_leader(struct cluster *c)
{
    return swc_manager_is_leader(c->mgr);
}

static void status_cb(void *data, const char *task_id, const Swarmc__TaskStatus *st)
{
    struct node *n = data;
    if (n->agent != NULL) {
        swc_agent_report(n->agent, task_id, st);
    }
}

static void described(void *data, int code, const char *errmsg, const Swarmc__NodeDescription *desc)
{
    (void)data;
    (void)code;
    (void)errmsg;
    (void)desc;
}

static void start_node(struct cluster *c, struct node *n)
{
    struct swc_err err;
    swc_id_new(n->id);
    snprintf(n->dir, sizeof n->dir, "%s/%s", c->dir, n->id);
    assert_int_equal(mkdir(n->dir, 0700), 0);
    struct swc_sim_config sc = {0};
    sc.loop = &c->loop;
    sc.node_id = n->id;
    sc.start_delay_ms = 5;
    assert_int_equal(swc_sim_init(&n->exec, &sc, &err), 0);
    struct swc_worker_config wc = {0};
    wc.loop = &c->loop;
    wc.state_dir = n->dir;
    wc.node_id = n->id;
    wc.exec = n->exec;
    wc.status_cb = status_cb;
    wc.data = n;
    assert_int_equal(swc_worker_init(&n->worker, &wc, &err), 0);
    swc_worker_start(n->worker, NULL, NULL);
    Swarmc__NodeDescription desc = SWARMC__NODE_DESCRIPTION__INIT;
    Swarmc__Resources res = SWARMC__RESOURCES__INIT;
    Swarmc__Platform plat = SWARMC__PLATFORM__INIT;
    res.nano_cpus = 4000000000LL;
    res.memory_bytes = 8LL << 30;
    plat.os = "linux";
    plat.arch = "x86_64";
    desc.hostname = n->id;
    desc.resources = &res;
    desc.platform = &plat;
    const char *mgrs[1] = {c->addr};
    struct swc_agent_config ac = {0};
    ac.loop = &c->loop;
    ac.worker = n->worker;
    ac.managers = mgrs;
    ac.nmanagers = 1;
    ac.node_id = n->id;
    ac.desc = &desc;
    assert_int_equal(swc_agent_init(&n->agent, &ac, &err), 0);
    swc_agent_start(n->agent);
    (void)described;
}

static int free_port(void)
{
    uv_tcp_t t;
    struct sockaddr_in a;
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_loop_t l;
    uv_loop_init(&l);
    uv_tcp_init(&l, &t);
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
    int port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    uv_loop_close(&l);
    return port;
}

static void cluster_start(struct cluster *c, size_t nnodes)
{
    struct swc_err err;
    int port;
    memset(c, 0, sizeof *c);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&c->loop);
    snprintf(c->dir, sizeof c->dir, "/tmp/swarmc-simtest.XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    assert_int_equal(swc_rpc_server_init(&c->loop, NULL, &c->srv), 0);
    assert_int_equal(swc_rpc_server_listen_tcp(c->srv, "127.0.0.1:0", NULL), 0);
    assert_int_equal(swc_rpc_server_port(c->srv, &port), 0);
    snprintf(c->addr, sizeof c->addr, "127.0.0.1:%d", port);
    char raft_addr[64];
    snprintf(raft_addr, sizeof raft_addr, "127.0.0.1:%d", free_port());
    char node_id[SWC_ID_LEN + 1];
    swc_id_new(node_id);
    char cluster_id[SWC_ID_LEN + 1];
    swc_id_new(cluster_id);
    uint8_t zeros[32] = {0};
    struct swc_manager_config mc = {0};
    mc.loop = &c->loop;
    mc.state_dir = c->dir;
    mc.node_id = node_id;
    mc.advertise_addr = c->addr;
    mc.raft_addr = raft_addr;
    mc.raft_id = 1;
    mc.bootstrap = true;
    mc.cluster_srv = c->srv;
    mc.control_srv = c->srv;
    mc.heartbeat_period_ns = HEARTBEAT_NS;
    mc.cluster_id = cluster_id;
    mc.ca_public_key = zeros;
    mc.worker_token_hash = zeros;
    mc.manager_token_hash = zeros;
    assert_int_equal(swc_manager_start(&c->mgr, &mc, &err), 0);
    assert_true(wait_for(c, is_leader, 10000));
    c->nodes = calloc(nnodes, sizeof *c->nodes);
    c->nnodes = nnodes;
    for (size_t i = 0; i < nnodes; i++) {
        start_node(c, &c->nodes[i]);
    }
    assert_int_equal(swc_rpc_connect(&c->loop, c->addr, NULL, &c->client), 0);
}

static void reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                     const uint8_t *payload, size_t len, void *data)
{
    struct cluster *c = data;
    c->replied = true;
    c->status = status;
    free(c->reply);
    c->reply = malloc(len + 1);
    memcpy(c->reply, payload, len);
    c->reply_len = len;
}

static bool got_reply(struct cluster *c)
{
    return c->replied;
}

/* Call method with msg and wait for the reply (left in c->reply). */
static void call(struct cluster *c, const char *method, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    protobuf_c_message_pack(msg, buf);
    c->replied = false;
    assert_int_equal(swc_rpc_call(c->client, method, buf, len, 10000, reply_cb, c, NULL), 0);
    free(buf);
    assert_true(wait_for(c, got_reply, 10000));
    assert_int_equal(c->status, 0);
}

static void create_service(struct cluster *c, const char *name, uint64_t replicas)
{
    Swarmc__CreateServiceRequest req = SWARMC__CREATE_SERVICE_REQUEST__INIT;
    Swarmc__ServiceSpec spec = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__Annotations ann = SWARMC__ANNOTATIONS__INIT;
    Swarmc__TaskSpec task = SWARMC__TASK_SPEC__INIT;
    Swarmc__ContainerSpec cont = SWARMC__CONTAINER_SPEC__INIT;
    Swarmc__ReplicatedService rep = SWARMC__REPLICATED_SERVICE__INIT;
    ann.name = (char *)name;
    spec.annotations = &ann;
    cont.image = "localbusybox:latest";
    task.container = &cont;
    spec.task = &task;
    rep.replicas = replicas;
    spec.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    spec.replicated = &rep;
    req.spec = &spec;
    call(c, "control.CreateService", &req.base);
    Swarmc__CreateServiceResponse *r =
        swarmc__create_service_response__unpack(NULL, c->reply_len, c->reply);
    assert_non_null(r);
    if (r->error != NULL && r->error->code != 0) {
        fail_msg("create service: %s", r->error->message);
    }
    assert_non_null(r->service);
    swarmc__create_service_response__free_unpacked(r, NULL);
}

/* Running tasks of the cluster, and how many sit on down nodes. */
static uint64_t g_want;
static struct cluster *g_c;

/* t (from ListTasks) packs to the same bytes as the task GetTask returns,
 * unless the task was written in between (then nothing is compared). */
static int g_compared;
static void same_as_get_task(struct cluster *c, const Swarmc__Task *t)
{
    size_t n = swarmc__task__get_packed_size(t);
    uint8_t *listed = malloc(n);
    assert_non_null(listed);
    swarmc__task__pack(t, listed);
    Swarmc__GetTaskRequest req = SWARMC__GET_TASK_REQUEST__INIT;
    req.ref = t->id;
    call(c, "control.GetTask", &req.base);
    Swarmc__GetTaskResponse *r = swarmc__get_task_response__unpack(NULL, c->reply_len, c->reply);
    assert_non_null(r);
    assert_non_null(r->task);
    if (r->task->meta == NULL || r->task->meta->version != t->meta->version) {
        free(listed);
        swarmc__get_task_response__free_unpacked(r, NULL);
        return;
    }
    g_compared++;
    assert_int_equal(swarmc__task__get_packed_size(r->task), n);
    uint8_t *got = malloc(n);
    assert_non_null(got);
    swarmc__task__pack(r->task, got);
    assert_memory_equal(listed, got, n);
    free(listed);
    free(got);
    swarmc__get_task_response__free_unpacked(r, NULL);
}

static void count_running(struct cluster *c, uint64_t *running, uint64_t *on_down)
{
    Swarmc__ListTasksRequest req = SWARMC__LIST_TASKS_REQUEST__INIT;
    call(c, "control.ListTasks", &req.base);
    Swarmc__ListTasksResponse *r =
        swarmc__list_tasks_response__unpack(NULL, c->reply_len, c->reply);
    assert_non_null(r);
    *running = *on_down = 0;
    for (size_t i = 0; i < r->n_tasks; i++) {
        Swarmc__Task *t = r->tasks[i];
        /* Tasks travel as stored bytes plus an appended Meta {version}:
         * the two merge, so a listed task equals the one GetTask decodes. */
        assert_non_null(t->meta);
        assert_true(t->meta->version > 0);
        if (i == 0) {
            same_as_get_task(c, t);
        }
        if (t->desired_state != SWARMC__TASK_STATE__TASK_STATE_RUNNING || t->status == NULL ||
            t->status->state != SWARMC__TASK_STATE__TASK_STATE_RUNNING) {
            continue;
        }
        bool down = false;
        for (size_t j = 0; j < c->nnodes; j++) {
            down |= c->nodes[j].down && strcmp(c->nodes[j].id, t->node_id) == 0;
        }
        if (down) {
            (*on_down)++;
        } else {
            (*running)++;
        }
    }
    swarmc__list_tasks_response__free_unpacked(r, NULL);
}

static bool converged(struct cluster *c)
{
    uint64_t running, on_down;
    count_running(c, &running, &on_down);
    return running == g_want && on_down == 0;
}

static void agent_closed(void *data)
{
    struct node *n = data;
    n->agent = NULL;
}

static void test_converge_and_replace(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c, 100);
    g_c = &c;
    create_service(&c, "web", 1000);
    g_want = 1000;
    if (!wait_for(&c, converged, 60000)) {
        uint64_t r, d;
        count_running(&c, &r, &d);
        fail_msg("1000 replicas on 100 nodes did not converge: %llu running",
                 (unsigned long long)r);
    }
    /* Every node got some: spread. */
    /* Lose a node: its agent stops, so its heartbeats stop. */
    struct node *victim = &c.nodes[3];
    victim->down = true;
    swc_agent_close(victim->agent, agent_closed, victim);
    if (!wait_for(&c, converged, 60000)) {
        uint64_t r, d;
        count_running(&c, &r, &d);
        fail_msg("tasks of the lost node were not replaced: %llu running elsewhere, %llu on it",
                 (unsigned long long)r, (unsigned long long)d);
    }
    uint64_t r, d;
    count_running(&c, &r, &d); /* settled: nothing writes the tasks now */
    assert_true(g_compared > 0);
}

int main(void)
{
    swc_log_init();
    if (getenv("SWARMC_LOG_LEVEL") == NULL) {
        swc_log_set_level(SWC_LOG_WARN);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_converge_and_replace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
