/* Unit tests for service spec defaults and validation (every check, each with
 * the field it must name) and for ingress port allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "manager/ports.h"
#include "manager/spec.h"

#define SEC 1000000000LL

/* A valid spec built from stack objects, reset before each case. */
static Swarmc__ServiceSpec spec;
static Swarmc__Annotations ann;
static Swarmc__Annotations__LabelsEntry lab, *labp;
static Swarmc__TaskSpec task;
static Swarmc__ContainerSpec ctr;
static Swarmc__ReplicatedService rep;
static Swarmc__ReplicatedJob job;
static Swarmc__GlobalService glob;
static Swarmc__RestartPolicy rst;
static Swarmc__UpdateConfig upd, rbk;
static Swarmc__ResourceRequirements resreq;
static Swarmc__Resources lim, res;
static Swarmc__Placement pl;
static Swarmc__PlacementPreference pref, *prefp;
static Swarmc__EndpointSpec ep;
static Swarmc__PortConfig port[2], *portp[2];
static Swarmc__Mount mnt[2], *mntp[2];
static Swarmc__HealthConfig hc;
static Swarmc__SecretReference sec[2], *secp[2];
static Swarmc__ConfigReference cfg, *cfgp;
static char *env[2];
static char *cons[1];
static char *htest[1];

static void reset(void)
{
    swarmc__service_spec__init(&spec);
    swarmc__annotations__init(&ann);
    swarmc__annotations__labels_entry__init(&lab);
    swarmc__task_spec__init(&task);
    swarmc__container_spec__init(&ctr);
    swarmc__replicated_service__init(&rep);
    swarmc__replicated_job__init(&job);
    swarmc__global_service__init(&glob);
    swarmc__restart_policy__init(&rst);
    swarmc__update_config__init(&upd);
    swarmc__update_config__init(&rbk);
    swarmc__resource_requirements__init(&resreq);
    swarmc__resources__init(&lim);
    swarmc__resources__init(&res);
    swarmc__placement__init(&pl);
    swarmc__placement_preference__init(&pref);
    swarmc__endpoint_spec__init(&ep);
    swarmc__health_config__init(&hc);
    swarmc__config_reference__init(&cfg);
    for (int i = 0; i < 2; i++) {
        swarmc__port_config__init(&port[i]);
        swarmc__mount__init(&mnt[i]);
        swarmc__secret_reference__init(&sec[i]);
        portp[i] = &port[i];
        mntp[i] = &mnt[i];
        secp[i] = &sec[i];
    }
    ann.name = "web";
    lab.key = "tier";
    lab.value = "front";
    labp = &lab;
    ann.labels = &labp;
    ann.n_labels = 1;
    spec.annotations = &ann;
    ctr.image = "nginx:1.25";
    env[0] = "A=1";
    env[1] = "B=";
    ctr.env = env;
    ctr.n_env = 2;
    task.container = &ctr;
    spec.task = &task;
    rep.replicas = 3;
    spec.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    spec.replicated = &rep;
    task.restart = &rst;
    spec.update = &upd;
    spec.rollback = &rbk;
    res.nano_cpus = SEC / 2;
    res.memory_bytes = 64 << 20;
    lim.nano_cpus = SEC;
    lim.memory_bytes = 128 << 20;
    resreq.limits = &lim;
    resreq.reservations = &res;
    task.resources = &resreq;
    cons[0] = "node.labels.zone==a";
    pl.constraints = cons;
    pl.n_constraints = 1;
    pref.spread = "node.labels.zone";
    prefp = &pref;
    pl.preferences = &prefp;
    pl.n_preferences = 1;
    task.placement = &pl;
    port[0].target_port = 80;
    port[0].published_port = 8080;
    port[1].target_port = 443;
    port[1].published_port = 8443;
    ep.ports = portp;
    ep.n_ports = 2;
    spec.endpoint = &ep;
    mnt[0].type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_BIND;
    mnt[0].source = "/srv/data";
    mnt[0].target = "/data";
    mnt[1].type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_TMPFS;
    mnt[1].target = "/tmp";
    ctr.mounts = mntp;
    ctr.n_mounts = 2;
    htest[0] = "CMD-SHELL";
    hc.test = htest;
    hc.n_test = 1;
    ctr.healthcheck = &hc;
    sec[0].secret_name = "db_pass";
    sec[1].secret_name = "api_key";
    ctr.secrets = secp;
    ctr.n_secrets = 2;
    cfg.config_name = "nginx.conf";
    cfg.target = "/etc/nginx/nginx.conf";
    cfgp = &cfg;
    ctr.configs = &cfgp;
    ctr.n_configs = 1;
}

static char long_name[80];

/* Each case breaks one field of the valid spec; the error must name it. */
struct bad_case {
    const char *what;
    void (*mutate)(void);
    const char *want; /* substring of the message */
};

#define MUT(name, body)                                                                            \
    static void name(void)                                                                         \
    {                                                                                              \
        body;                                                                                      \
    }

MUT(m_no_name, ann.name = "")
MUT(m_long_name, memset(long_name, 'a', 64); long_name[64] = 0; ann.name = long_name)
MUT(m_bad_name, ann.name = "web/1")
MUT(m_bad_name_start, ann.name = "-web")
MUT(m_empty_label, lab.key = "")
MUT(m_no_container, task.container = NULL)
MUT(m_no_image, ctr.image = "")
MUT(m_bad_image, ctr.image = "nginx latest")
MUT(m_env, env[1] = "NOEQUALS")
MUT(m_env_empty_key, env[0] = "=1")
MUT(m_dir, ctr.dir = "relative/dir")
MUT(m_grace, ctr.stop_grace_period_ns = -1)
MUT(m_mount_empty_target, mnt[0].target = "")
MUT(m_mount_rel_target, mnt[0].target = "data")
MUT(m_mount_dup_target, mnt[1].target = "/data")
MUT(m_bind_rel_source, mnt[0].source = "srv/data")
MUT(m_tmpfs_source, mnt[1].source = "/x")
MUT(m_tmpfs_size, mnt[1].tmpfs_size_bytes = -1)
MUT(m_mount_type, mnt[1].type = 7)
MUT(m_health_test, htest[0] = "RUN")
MUT(m_health_interval, hc.interval_ns = -1)
MUT(m_health_timeout, hc.timeout_ns = -1)
MUT(m_health_start, hc.start_period_ns = -1)
MUT(m_health_retries, hc.retries = -1)
MUT(m_secret_name, sec[0].secret_name = "")
MUT(m_secret_target, sec[0].target = "../etc/passwd")
MUT(m_secret_dup, sec[1].target = "db_pass")
MUT(m_config_target, cfg.target = "nginx.conf")
MUT(m_config_name, cfg.config_name = "")
MUT(m_replicas, rep.replicas = SWC_SPEC_MAX_REPLICAS + 1)
MUT(m_job_total, spec.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB;
    spec.replicated_job = &job; job.total_completions = SWC_SPEC_MAX_REPLICAS + 1)
MUT(m_job_conc, spec.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB;
    spec.replicated_job = &job; job.max_concurrent = SWC_SPEC_MAX_REPLICAS + 1)
MUT(m_restart_cond, rst.condition = 9)
MUT(m_restart_delay, rst.delay_ns = -1)
MUT(m_restart_window, rst.window_ns = -SEC)
MUT(m_res_cpu, res.nano_cpus = -1)
MUT(m_res_mem, res.memory_bytes = -1)
MUT(m_lim_cpu, lim.nano_cpus = -1)
MUT(m_lim_mem, lim.memory_bytes = -5)
MUT(m_lim_below_cpu, lim.nano_cpus = SEC / 4)
MUT(m_lim_below_mem, lim.memory_bytes = 1 << 20)
MUT(m_global_max_replicas, spec.mode_case = SWARMC__SERVICE_SPEC__MODE_GLOBAL; spec.global = &glob;
    pl.max_replicas = 2)
MUT(m_constraint, cons[0] = "node.foo==1")
MUT(m_pref, pref.spread = "node.hostname")
MUT(m_upd_delay, upd.delay_ns = -1)
MUT(m_upd_monitor, upd.monitor_ns = -1)
MUT(m_upd_ratio, upd.max_failure_ratio = 1.5f)
MUT(m_upd_ratio_neg, upd.max_failure_ratio = -0.1f)
MUT(m_upd_ratio_nan, upd.max_failure_ratio = NAN)
MUT(m_upd_action, upd.failure_action = 5)
MUT(m_upd_order, upd.order = 3)
MUT(m_rbk_ratio, rbk.max_failure_ratio = 2)
MUT(m_rbk_action,
    rbk.failure_action = SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_ROLLBACK)
MUT(m_port_target, port[0].target_port = 0)
MUT(m_port_target_big, port[0].target_port = 70000)
MUT(m_port_published, port[1].published_port = 65536)
MUT(m_port_dup, port[1].published_port = 8080)
MUT(m_port_proto, port[1].protocol = 9)
MUT(m_port_mode, port[1].publish_mode = 4)

static const struct bad_case cases[] = {
    {"empty name", m_no_name, "name: required"},
    {"long name", m_long_name, "name: 'aaaaaaaaaaaaaaaaaaaa...' is 64 characters long"},
    {"bad name", m_bad_name, "name: 'web/1' contains '/'"},
    {"bad name start", m_bad_name_start, "name: '-web' must start with a letter or digit"},
    {"empty label", m_empty_label, "labels: empty label name"},
    {"no container", m_no_container, "task.container: required"},
    {"no image", m_no_image, "task.container.image: required"},
    {"bad image", m_bad_image, "task.container.image: 'nginx latest' is not a valid"},
    {"env", m_env, "task.container.env[1]: 'NOEQUALS' must be KEY=VALUE"},
    {"env key", m_env_empty_key, "task.container.env[0]: '=1' has an empty name"},
    {"dir", m_dir, "task.container.dir: 'relative/dir' must be an absolute path"},
    {"grace", m_grace, "task.container.stop_grace_period: must not be negative"},
    {"mount target", m_mount_empty_target, "task.container.mounts[0].target: required"},
    {"mount rel", m_mount_rel_target,
     "task.container.mounts[0].target: 'data' must be an "
     "absolute path"},
    {"mount dup", m_mount_dup_target, "task.container.mounts[1].target: '/data' is mounted twice"},
    {"bind source", m_bind_rel_source,
     "task.container.mounts[0].source: a bind mount needs an "
     "absolute source"},
    {"tmpfs source", m_tmpfs_source,
     "task.container.mounts[1].source: a tmpfs mount takes no "
     "source"},
    {"tmpfs size", m_tmpfs_size, "task.container.mounts[1].tmpfs_size_bytes: must not be"},
    {"mount type", m_mount_type, "task.container.mounts[1].type"},
    {"health test", m_health_test, "task.container.healthcheck.test: must start with NONE"},
    {"health interval", m_health_interval, "task.container.healthcheck.interval"},
    {"health timeout", m_health_timeout, "task.container.healthcheck.timeout"},
    {"health start", m_health_start, "task.container.healthcheck.start_period"},
    {"health retries", m_health_retries, "task.container.healthcheck.retries"},
    {"secret name", m_secret_name, "task.container.secrets[0]: secret name required"},
    {"secret target", m_secret_target, "task.container.secrets[0].target: '../etc/passwd'"},
    {"secret dup", m_secret_dup, "task.container.secrets[1].target: 'db_pass' is used twice"},
    {"config target", m_config_target, "task.container.configs[0].target: must be an absolute"},
    {"config name", m_config_name, "task.container.configs[0]: config name required"},
    {"replicas", m_replicas, "mode.replicated.replicas: 1000001 is more than 1000000"},
    {"job total", m_job_total, "mode.replicated_job.total_completions"},
    {"job concurrent", m_job_conc, "mode.replicated_job.max_concurrent"},
    {"restart condition", m_restart_cond, "task.restart.condition"},
    {"restart delay", m_restart_delay, "task.restart.delay: must not be negative"},
    {"restart window", m_restart_window, "task.restart.window: must not be negative"},
    {"reserve cpu", m_res_cpu, "task.resources.reservations.nano_cpus: must not be negative"},
    {"reserve mem", m_res_mem, "task.resources.reservations.memory_bytes: must not be"},
    {"limit cpu", m_lim_cpu, "task.resources.limits.nano_cpus: must not be negative"},
    {"limit mem", m_lim_mem, "task.resources.limits.memory_bytes: must not be negative"},
    {"limit < reserve cpu", m_lim_below_cpu,
     "task.resources.limits.nano_cpus: limit 250000000 "
     "is below the reservation 500000000"},
    {"limit < reserve mem", m_lim_below_mem, "task.resources.limits.memory_bytes: limit"},
    {"global max replicas", m_global_max_replicas,
     "task.placement.max_replicas: not allowed "
     "with a global mode"},
    {"constraint", m_constraint,
     "task.placement.constraints[0]: constraint 'node.foo==1': "
     "unknown key node.foo"},
    {"preference", m_pref, "task.placement.preferences[0].spread: 'node.hostname' must be"},
    {"update delay", m_upd_delay, "update.delay: must not be negative"},
    {"update monitor", m_upd_monitor, "update.monitor: must not be negative"},
    {"update ratio", m_upd_ratio, "update.max_failure_ratio: must be between 0 and 1, got 1.5"},
    {"update ratio neg", m_upd_ratio_neg, "update.max_failure_ratio: must be between 0 and 1"},
    {"update ratio nan", m_upd_ratio_nan, "update.max_failure_ratio: must be between 0 and 1"},
    {"update action", m_upd_action, "update.failure_action: must be pause, continue or rollback"},
    {"update order", m_upd_order, "update.order: must be stop-first or start-first"},
    {"rollback ratio", m_rbk_ratio, "rollback.max_failure_ratio: must be between 0 and 1"},
    {"rollback action", m_rbk_action, "rollback.failure_action: rollback is not allowed"},
    {"port target", m_port_target, "endpoint.ports[0].target_port: 0 is out of range 1-65535"},
    {"port target big", m_port_target_big, "endpoint.ports[0].target_port: 70000 is out of"},
    {"port published", m_port_published, "endpoint.ports[1].published_port: 65536 is out of"},
    {"port dup", m_port_dup, "endpoint.ports[1].published_port: 8080 is published twice"},
    {"port proto", m_port_proto, "endpoint.ports[1].protocol: must be tcp, udp or sctp"},
    {"port mode", m_port_mode, "endpoint.ports[1].publish_mode: must be ingress or host"},
};

static void test_valid_spec(void **state)
{
    (void)state;
    struct swc_err err;
    reset();
    swc_err_clear(&err);
    assert_int_equal(swc_spec_validate(&spec, &err), 0);
    /* same published port on another protocol is fine */
    port[1].published_port = 8080;
    port[1].protocol = SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_UDP;
    assert_int_equal(swc_spec_validate(&spec, &err), 0);
    assert_int_equal(swc_spec_validate(NULL, &err), SWC_EINVAL);
    assert_int_equal(swc_spec_validate_name("a.b_c-9", &err), 0);
}

static void test_every_check(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct swc_err err;
        reset();
        swc_err_clear(&err);
        cases[i].mutate();
        int rc = swc_spec_validate(&spec, &err);
        if (rc != SWC_EINVAL || strstr(err.msg, cases[i].want) == NULL) {
            print_error("case '%s': rc %d, message '%s', want '%s'\n", cases[i].what, rc, err.msg,
                        cases[i].want);
            fail();
        }
    }
}

static void test_defaults(void **state)
{
    (void)state;
    /* an unpacked empty spec: defaults allocate through the seam and are
     * freed by free_unpacked */
    Swarmc__ServiceSpec *s = swarmc__service_spec__unpack(&swc_pb_allocator, 0, NULL);
    assert_non_null(s);
    long live = swc_alloc_live();
    assert_int_equal(swc_spec_fill_defaults(s), 0);
    assert_int_equal(s->mode_case, SWARMC__SERVICE_SPEC__MODE_REPLICATED);
    assert_int_equal(s->replicated->replicas, 1);
    assert_int_equal(s->task->restart->condition, SWARMC__RESTART_CONDITION__RESTART_CONDITION_ANY);
    assert_int_equal(s->task->restart->delay_ns, 5 * SEC);
    assert_true(s->task->restart->delay_set);
    assert_int_equal(s->update->parallelism, 1);
    assert_int_equal(s->update->delay_ns, 0);
    assert_int_equal(s->update->monitor_ns, 5 * SEC);
    assert_int_equal(s->update->failure_action,
                     SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_PAUSE);
    assert_int_equal(s->update->order, SWARMC__UPDATE_ORDER__UPDATE_ORDER_STOP_FIRST);
    assert_int_equal(s->rollback->parallelism, 1);
    assert_int_equal(s->rollback->monitor_ns, 5 * SEC);
    assert_true(swc_alloc_live() > live);
    swarmc__service_spec__free_unpacked(s, &swc_pb_allocator);
    /* explicit values are kept; an explicit zero delay too */
    reset();
    rst.delay_set = true;
    upd.parallelism = 0;
    upd.monitor_ns = 0;
    rbk.monitor_ns = 2 * SEC;
    assert_int_equal(swc_spec_fill_defaults(&spec), 0);
    assert_int_equal(rst.delay_ns, 0);
    assert_int_equal(upd.parallelism, 0);
    assert_int_equal(upd.monitor_ns, 5 * SEC);
    assert_int_equal(rbk.monitor_ns, 2 * SEC);
    assert_int_equal(ctr.stop_grace_period_ns, 10 * SEC);
    assert_int_equal(rep.replicas, 3);
    /* jobs: on-failure restarts, completions and concurrency from each other */
    Swarmc__ServiceSpec *j = swarmc__service_spec__unpack(&swc_pb_allocator, 0, NULL);
    Swarmc__ReplicatedJob *rj = swc_malloc(sizeof(*rj));
    swarmc__replicated_job__init(rj);
    rj->total_completions = 10;
    j->replicated_job = rj;
    j->mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB;
    assert_int_equal(swc_spec_fill_defaults(j), 0);
    assert_int_equal(rj->max_concurrent, 10);
    assert_int_equal(j->task->restart->condition,
                     SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE);
    rj->max_concurrent = 0;
    rj->total_completions = 0;
    assert_int_equal(swc_spec_fill_defaults(j), 0);
    assert_int_equal(rj->max_concurrent, 1);
    assert_int_equal(rj->total_completions, 1);
    swarmc__service_spec__free_unpacked(j, &swc_pb_allocator);
}

static void test_defaults_enomem(void **state)
{
    (void)state;
    for (long k = 1; k < 10; k++) {
        Swarmc__ServiceSpec *s = swarmc__service_spec__unpack(&swc_pb_allocator, 0, NULL);
        swc_alloc_fail_after(k);
        int rc = swc_spec_fill_defaults(s);
        swc_alloc_fail_after(0);
        swarmc__service_spec__free_unpacked(s, &swc_pb_allocator);
        if (rc == 0)
            return;
        assert_int_equal(rc, SWC_ENOMEM);
    }
    fail();
}

/* ------------------------------------------------------------ ports */

static Swarmc__EndpointSpec *mk_ep(uint32_t published, uint32_t published2)
{
    static Swarmc__EndpointSpec e;
    static Swarmc__PortConfig p[2], *pp[2];
    swarmc__endpoint_spec__init(&e);
    for (int i = 0; i < 2; i++) {
        swarmc__port_config__init(&p[i]);
        pp[i] = &p[i];
    }
    p[0].target_port = 80;
    p[0].published_port = published;
    p[1].target_port = 443;
    p[1].published_port = published2;
    e.ports = pp;
    e.n_ports = 2;
    return &e;
}

static void test_ports(void **state)
{
    (void)state;
    struct swc_ports *p;
    struct swc_err err;
    struct swc_port_alloc *a, *b;
    size_t na, nb;
    assert_int_equal(swc_ports_create(&p), 0);
    /* web: 8080 explicit, 443 dynamic */
    assert_int_equal(swc_ports_allocate(p, "id-web", "web", mk_ep(8080, 0), NULL, 0, &a, &na, &err),
                     0);
    assert_int_equal(na, 2);
    assert_int_equal(a[0].published_port, 8080);
    assert_int_equal(a[1].published_port, SWC_PORTS_DYN_START);
    assert_string_equal(swc_ports_owner(p, 0, 8080), "id-web");
    /* api cannot take 8080 */
    assert_int_equal(swc_ports_allocate(p, "id-api", "api", mk_ep(8080, 0), NULL, 0, &b, &nb, &err),
                     SWC_EEXIST);
    assert_string_equal(err.msg, "port 8080/tcp is already in use by service web (id-web)");
    assert_null(b);
    /* nothing was claimed by the refused request */
    assert_null(swc_ports_owner(p, 0, SWC_PORTS_DYN_START + 1));
    /* api dynamic ports skip web's */
    assert_int_equal(swc_ports_allocate(p, "id-api", "api", mk_ep(0, 0), NULL, 0, &b, &nb, &err),
                     0);
    assert_int_equal(b[0].published_port, SWC_PORTS_DYN_START + 1);
    assert_int_equal(b[1].published_port, SWC_PORTS_DYN_START + 2);
    swc_free(b);
    /* web update: keeps its dynamic port, moves 8080 to 9090, frees 8080 */
    assert_int_equal(swc_ports_allocate(p, "id-web", "web", mk_ep(9090, 0), a, na, &b, &nb, &err),
                     0);
    assert_int_equal(b[1].published_port, SWC_PORTS_DYN_START);
    assert_null(swc_ports_owner(p, 0, 8080));
    assert_string_equal(swc_ports_owner(p, 0, 9090), "id-web");
    swc_free(a);
    swc_free(b);
    /* host-mode ports are not claimed */
    Swarmc__EndpointSpec *e = mk_ep(7070, 7071);
    e->ports[0]->publish_mode = SWARMC__PUBLISH_MODE__PUBLISH_MODE_HOST;
    assert_int_equal(swc_ports_allocate(p, "id-h", "h", e, NULL, 0, &a, &na, &err), 0);
    assert_null(swc_ports_owner(p, 0, 7070));
    assert_non_null(swc_ports_owner(p, 0, 7071));
    swc_free(a);
    /* duplicates and range */
    assert_int_equal(swc_ports_allocate(p, "id-d", "d", mk_ep(6000, 6000), NULL, 0, &a, &na, &err),
                     SWC_EINVAL);
    assert_non_null(strstr(err.msg, "6000/tcp is published twice"));
    e = mk_ep(1, 1);
    e->ports[0]->target_port = 0;
    assert_int_equal(swc_ports_allocate(p, "id-d", "d", e, NULL, 0, &a, &na, &err), SWC_EINVAL);
    /* release */
    swc_ports_release(p, "id-web");
    assert_null(swc_ports_owner(p, 0, 9090));
    swc_ports_destroy(p);
}

static void test_ports_exhaustion(void **state)
{
    (void)state;
    struct swc_ports *p;
    struct swc_err err;
    struct swc_port_alloc *a;
    size_t na;
    assert_int_equal(swc_ports_create(&p), 0);
    Swarmc__EndpointSpec e = SWARMC__ENDPOINT_SPEC__INIT;
    Swarmc__PortConfig pc = SWARMC__PORT_CONFIG__INIT, *pcp = &pc;
    pc.target_port = 80;
    e.ports = &pcp;
    e.n_ports = 1;
    char id[32];
    int span = SWC_PORTS_DYN_END - SWC_PORTS_DYN_START + 1;
    for (int i = 0; i < span; i++) {
        snprintf(id, sizeof id, "s%d", i);
        assert_int_equal(swc_ports_allocate(p, id, id, &e, NULL, 0, &a, &na, &err), 0);
        swc_free(a);
    }
    assert_int_equal(swc_ports_allocate(p, "last", "last", &e, NULL, 0, &a, &na, &err), SWC_EBUSY);
    assert_non_null(strstr(err.msg, "no free port left in 30000-32767"));
    /* a freed port is found again */
    swc_ports_release(p, "s5");
    assert_int_equal(swc_ports_allocate(p, "last", "last", &e, NULL, 0, &a, &na, &err), 0);
    assert_int_equal(a[0].published_port, SWC_PORTS_DYN_START + 5);
    swc_free(a);
    swc_ports_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_spec), cmocka_unit_test(test_every_check),
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_defaults_enomem),
        cmocka_unit_test(test_ports),      cmocka_unit_test(test_ports_exhaustion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
