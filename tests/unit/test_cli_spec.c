/* Flag parsing of `swarmc service create|update|scale` and `node update`
 * into specs, and the exact error message for each bad input.
 *
 * The CLI's sources live in cmd/swarmc/, which is not part of any library
 * (CMake builds them only into the swarmc executable), so this test
 * compiles the pure CLI files it needs directly by including them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../cmd/swarmc/flags.c"
#include "../../cmd/swarmc/spec.c"
#include "../../cmd/swarmc/spec_flags.c"
#include "../../cmd/swarmc/spec_values.c"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
/* Parse `service create` args; returns the spec (asserting success). */
#define CREATE_OK(...) create_ok(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))
/* Parse `service create` args; asserts failure with exactly msg. */
#define CREATE_ERR(msg, ...) create_err(msg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static struct swc_svc_opts last_opts;

static Swarmc__ServiceSpec *create_ok(int argc, char **argv)
{
    Swarmc__ServiceSpec *s = NULL;
    struct swc_err err;
    bool help = true;
    swc_err_clear(&err);
    int rv = swc_spec_service_create(argc, argv, &s, &last_opts, &help, &err);
    if (rv != 0) {
        fail_msg("unexpected error: %s", err.msg);
    }
    assert_false(help);
    assert_non_null(s);
    return s;
}

static void create_err(const char *msg, int argc, char **argv)
{
    Swarmc__ServiceSpec *s = NULL;
    struct swc_err err;
    bool help;
    swc_err_clear(&err);
    assert_int_equal(swc_spec_service_create(argc, argv, &s, &last_opts, &help, &err), SWC_EINVAL);
    assert_null(s);
    assert_string_equal(err.msg, msg);
}

static const char *label(Swarmc__Annotations__LabelsEntry **l, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i]->key, k) == 0) {
            return l[i]->value;
        }
    }
    return NULL;
}

static void test_minimal_defaults(void **state)
{
    (void)state;
    Swarmc__ServiceSpec *s = CREATE_OK("nginx:1.25");
    assert_string_equal(s->task->container->image, "nginx:1.25");
    assert_int_equal(s->mode_case, SWARMC__SERVICE_SPEC__MODE_REPLICATED);
    assert_int_equal(s->replicated->replicas, 1);
    assert_int_equal(s->update->parallelism, 1);
    assert_int_equal(s->update->monitor_ns, 5 * SWC_NS_PER_SEC);
    assert_int_equal(s->update->order, SWARMC__UPDATE_ORDER__UPDATE_ORDER_STOP_FIRST);
    assert_int_equal(s->rollback->parallelism, 1);
    assert_false(s->task->restart->delay_set);
    assert_false(last_opts.detach);
    assert_int_equal(last_opts.timeout_ns, SWC_CLI_DEFAULT_TIMEOUT_NS);
    swc_spec_service_free(s);
}

static void test_every_flag(void **state)
{
    (void)state;
    setenv("SWC_TEST_FROM_ENV", "hello", 1);
    Swarmc__ServiceSpec *s = CREATE_OK(
        "--name", "web", "--replicas=3", "-e", "A=1", "--env", "B=2", "-eC=3", "--env",
        "SWC_TEST_FROM_ENV", "--label", "tier=front", "-l", "solo", "--container-label", "c=d",
        "--constraint", "node.labels.zone==a", "--constraint", "node.role!=manager",
        "--placement-pref", "spread=node.labels.zone", "--replicas-max-per-node", "2",
        "--reserve-cpu", "0.5", "--reserve-memory", "512M", "--limit-cpu", "2", "--limit-memory",
        "1G", "--restart-condition", "on-failure", "--restart-delay", "10s",
        "--restart-max-attempts", "4", "--restart-window", "1m30s", "--update-parallelism", "2",
        "--update-delay", "5s", "--update-order", "start-first", "--update-failure-action",
        "rollback", "--update-monitor", "30s", "--update-max-failure-ratio", "0.25",
        "--rollback-parallelism", "0", "--rollback-delay", "1s", "--rollback-order", "start-first",
        "--rollback-failure-action", "continue", "--rollback-monitor", "2s",
        "--rollback-max-failure-ratio", "1", "-p", "8080:80", "--publish", "53:53/udp", "--publish",
        "published=9000,target=90,mode=host", "--publish", "443", "--mount",
        "type=bind,source=/srv,target=/data,readonly", "--mount",
        "type=tmpfs,target=/tmp,tmpfs-size=64M,tmpfs-mode=1777", "--mount", "source=vol,target=/v",
        "--health-cmd", "curl -f http://localhost/", "--health-interval", "5s", "--health-timeout",
        "2s", "--health-retries", "3", "--health-start-period", "10s", "--stop-grace-period", "20s",
        "--stop-signal", "SIGQUIT", "--init", "-u", "1000:1000", "-w", "/app", "--hostname", "h1",
        "--entrypoint", "/bin/sh -c", "--read-only", "-t", "-d", "-q", "--with-registry-auth",
        "--timeout", "2m", "alpine", "echo", "hi");
    Swarmc__TaskSpec *t = s->task;
    Swarmc__ContainerSpec *c = t->container;
    assert_string_equal(s->annotations->name, "web");
    assert_int_equal(s->replicated->replicas, 3);
    assert_int_equal(c->n_env, 4);
    assert_string_equal(c->env[0], "A=1");
    assert_string_equal(c->env[1], "B=2");
    assert_string_equal(c->env[2], "C=3");
    assert_string_equal(c->env[3], "SWC_TEST_FROM_ENV=hello");
    assert_string_equal(label(s->annotations->labels, s->annotations->n_labels, "tier"), "front");
    assert_string_equal(label(s->annotations->labels, s->annotations->n_labels, "solo"), "");
    assert_int_equal(c->n_labels, 1);
    assert_string_equal(c->labels[0]->key, "c");
    assert_string_equal(c->labels[0]->value, "d");
    assert_int_equal(t->placement->n_constraints, 2);
    assert_string_equal(t->placement->constraints[1], "node.role!=manager");
    assert_int_equal(t->placement->n_preferences, 1);
    assert_string_equal(t->placement->preferences[0]->spread, "node.labels.zone");
    assert_int_equal(t->placement->max_replicas, 2);
    assert_int_equal(t->resources->reservations->nano_cpus, 500000000);
    assert_int_equal(t->resources->reservations->memory_bytes, 512LL * 1024 * 1024);
    assert_int_equal(t->resources->limits->nano_cpus, 2000000000);
    assert_int_equal(t->resources->limits->memory_bytes, 1024LL * 1024 * 1024);
    assert_int_equal(t->restart->condition,
                     SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE);
    assert_int_equal(t->restart->delay_ns, 10 * SWC_NS_PER_SEC);
    assert_true(t->restart->delay_set);
    assert_int_equal(t->restart->max_attempts, 4);
    assert_int_equal(t->restart->window_ns, 90 * SWC_NS_PER_SEC);
    assert_int_equal(s->update->parallelism, 2);
    assert_int_equal(s->update->delay_ns, 5 * SWC_NS_PER_SEC);
    assert_int_equal(s->update->order, SWARMC__UPDATE_ORDER__UPDATE_ORDER_START_FIRST);
    assert_int_equal(s->update->failure_action,
                     SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_ROLLBACK);
    assert_int_equal(s->update->monitor_ns, 30 * SWC_NS_PER_SEC);
    assert_true(s->update->max_failure_ratio > 0.249f && s->update->max_failure_ratio < 0.251f);
    assert_int_equal(s->rollback->parallelism, 0);
    assert_int_equal(s->rollback->delay_ns, SWC_NS_PER_SEC);
    assert_int_equal(s->rollback->order, SWARMC__UPDATE_ORDER__UPDATE_ORDER_START_FIRST);
    assert_int_equal(s->rollback->failure_action,
                     SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_CONTINUE);
    assert_int_equal(s->rollback->monitor_ns, 2 * SWC_NS_PER_SEC);
    assert_true(s->rollback->max_failure_ratio == 1.0f);
    Swarmc__EndpointSpec *e = s->endpoint;
    assert_int_equal(e->n_ports, 4);
    assert_int_equal(e->ports[0]->published_port, 8080);
    assert_int_equal(e->ports[0]->target_port, 80);
    assert_int_equal(e->ports[0]->protocol, SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_TCP);
    assert_int_equal(e->ports[1]->protocol, SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_UDP);
    assert_int_equal(e->ports[2]->published_port, 9000);
    assert_int_equal(e->ports[2]->target_port, 90);
    assert_int_equal(e->ports[2]->publish_mode, SWARMC__PUBLISH_MODE__PUBLISH_MODE_HOST);
    assert_int_equal(e->ports[3]->published_port, 0);
    assert_int_equal(e->ports[3]->target_port, 443);
    assert_int_equal(c->n_mounts, 3);
    assert_int_equal(c->mounts[0]->type, SWARMC__MOUNT_TYPE__MOUNT_TYPE_BIND);
    assert_string_equal(c->mounts[0]->source, "/srv");
    assert_string_equal(c->mounts[0]->target, "/data");
    assert_true(c->mounts[0]->read_only);
    assert_int_equal(c->mounts[1]->type, SWARMC__MOUNT_TYPE__MOUNT_TYPE_TMPFS);
    assert_int_equal(c->mounts[1]->tmpfs_size_bytes, 64LL * 1024 * 1024);
    assert_int_equal(c->mounts[1]->tmpfs_mode, 01777);
    assert_int_equal(c->mounts[2]->type, SWARMC__MOUNT_TYPE__MOUNT_TYPE_VOLUME);
    assert_false(c->mounts[2]->read_only);
    assert_int_equal(c->healthcheck->n_test, 2);
    assert_string_equal(c->healthcheck->test[0], "CMD-SHELL");
    assert_string_equal(c->healthcheck->test[1], "curl -f http://localhost/");
    assert_int_equal(c->healthcheck->interval_ns, 5 * SWC_NS_PER_SEC);
    assert_int_equal(c->healthcheck->timeout_ns, 2 * SWC_NS_PER_SEC);
    assert_int_equal(c->healthcheck->retries, 3);
    assert_int_equal(c->healthcheck->start_period_ns, 10 * SWC_NS_PER_SEC);
    assert_int_equal(c->stop_grace_period_ns, 20 * SWC_NS_PER_SEC);
    assert_string_equal(c->stop_signal, "SIGQUIT");
    assert_true(c->init);
    assert_string_equal(c->user, "1000:1000");
    assert_string_equal(c->dir, "/app");
    assert_string_equal(c->hostname, "h1");
    assert_int_equal(c->n_command, 2);
    assert_string_equal(c->command[0], "/bin/sh");
    assert_string_equal(c->command[1], "-c");
    assert_true(c->read_only);
    assert_true(c->tty);
    assert_string_equal(c->image, "alpine");
    assert_int_equal(c->n_args, 2);
    assert_string_equal(c->args[0], "echo");
    assert_string_equal(c->args[1], "hi");
    assert_true(last_opts.detach);
    assert_true(last_opts.quiet);
    assert_int_equal(last_opts.timeout_ns, 120 * SWC_NS_PER_SEC);
    /* the spec must encode (it is sent as is) */
    size_t len = protobuf_c_message_get_packed_size(&s->base);
    assert_true(len > 100);
    swc_spec_service_free(s);
}

static void test_modes(void **state)
{
    (void)state;
    Swarmc__ServiceSpec *s = CREATE_OK("--mode", "global", "img");
    assert_int_equal(s->mode_case, SWARMC__SERVICE_SPEC__MODE_GLOBAL);
    assert_non_null(s->global);
    swc_spec_service_free(s);
    s = CREATE_OK("--mode", "replicated-job", "--replicas", "5", "--max-concurrent", "2", "img");
    assert_int_equal(s->mode_case, SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB);
    assert_int_equal(s->replicated_job->total_completions, 5);
    assert_int_equal(s->replicated_job->max_concurrent, 2);
    swc_spec_service_free(s);
    s = CREATE_OK("--replicas", "4", "--mode", "replicated-job", "img");
    assert_int_equal(s->replicated_job->total_completions, 4);
    assert_int_equal(s->replicated_job->max_concurrent, 4);
    swc_spec_service_free(s);
    s = CREATE_OK("--mode", "global-job", "img");
    assert_int_equal(s->mode_case, SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB);
    swc_spec_service_free(s);
    s = CREATE_OK("--replicas", "0", "img");
    assert_int_equal(s->replicated->replicas, 0);
    swc_spec_service_free(s);
    s = CREATE_OK("--no-healthcheck", "img");
    assert_int_equal(s->task->container->healthcheck->n_test, 1);
    assert_string_equal(s->task->container->healthcheck->test[0], "NONE");
    swc_spec_service_free(s);
}

static void test_syntax_forms(void **state)
{
    (void)state;
    /* "--" ends flags; flags after the image belong to the command */
    Swarmc__ServiceSpec *s = CREATE_OK("-d", "img", "--name", "x");
    assert_string_equal(s->annotations->name, "");
    assert_int_equal(s->task->container->n_args, 2);
    assert_string_equal(s->task->container->args[0], "--name");
    swc_spec_service_free(s);
    s = CREATE_OK("--", "-img-");
    assert_string_equal(s->task->container->image, "-img-");
    swc_spec_service_free(s);
    s = CREATE_OK("-dq", "--init=false", "img");
    assert_true(last_opts.detach);
    assert_true(last_opts.quiet);
    assert_false(s->task->container->init);
    swc_spec_service_free(s);
    /* a repeated --env for the same key keeps the last */
    s = CREATE_OK("-e", "A=1", "-e", "A=2", "img");
    assert_int_equal(s->task->container->n_env, 1);
    assert_string_equal(s->task->container->env[0], "A=2");
    swc_spec_service_free(s);
}

static void test_help(void **state)
{
    (void)state;
    Swarmc__ServiceSpec *s = NULL;
    struct swc_err err;
    bool help = false;
    assert_int_equal(swc_spec_service_create(1, ARGV("--help"), &s, &last_opts, &help, &err), 0);
    assert_true(help);
    assert_null(s);
    char buf[16384];
    swc_flags_usage(swc_service_create_flags, buf, sizeof buf);
    assert_non_null(strstr(buf, "  -e, --env list "));
    assert_non_null(strstr(buf, "      --restart-delay duration "));
    assert_null(strstr(buf, " \n")); /* no trailing blanks */
}

static void test_bad_inputs(void **state)
{
    (void)state;
    CREATE_ERR("invalid value \"-1\" for --replicas: use a non-negative integer", "--replicas",
               "-1", "img");
    CREATE_ERR("invalid value \"three\" for --replicas: use a non-negative integer", "--replicas",
               "three", "img");
    CREATE_ERR("invalid value \"3x\" for --replicas: use a non-negative integer", "--replicas=3x",
               "img");
    CREATE_ERR("--replicas can only be used with replicated or replicated-job mode", "--mode",
               "global", "--replicas", "2", "img");
    CREATE_ERR("--max-concurrent can only be used with replicated-job mode", "--max-concurrent",
               "2", "img");
    CREATE_ERR("invalid value \"5x\" for --restart-delay: use a duration like 10s or 1m30s",
               "--restart-delay", "5x", "img");
    CREATE_ERR("invalid value \"soon\" for --update-delay: use a duration like 10s or 1m30s",
               "--update-delay", "soon", "img");
    CREATE_ERR("invalid value \"-5s\" for --health-interval: use a duration like 10s or 1m30s",
               "--health-interval", "-5s", "img");
    CREATE_ERR("invalid value \"12Q\" for --reserve-memory: use a size like 512M or 1G",
               "--reserve-memory", "12Q", "img");
    CREATE_ERR("invalid value \"lots\" for --limit-memory: use a size like 512M or 1G",
               "--limit-memory", "lots", "img");
    CREATE_ERR("invalid value \"half\" for --reserve-cpu: use a number of CPUs like 0.5 or 2",
               "--reserve-cpu", "half", "img");
    CREATE_ERR("invalid value \"-1\" for --limit-cpu: use a number of CPUs like 0.5 or 2",
               "--limit-cpu", "-1", "img");
    CREATE_ERR("unknown flag: --foo", "--foo", "img");
    CREATE_ERR("unknown flag: --foo", "--foo=bar", "img");
    CREATE_ERR("unknown shorthand flag: 'z' in -z", "-z", "img");
    CREATE_ERR("\"swarmc service create\" requires at least 1 argument: the IMAGE to run", "--name",
               "web");
    CREATE_ERR("flag needs an argument: --replicas", "-d", "--replicas");
    CREATE_ERR("flag needs an argument: --name", "--name");
    CREATE_ERR("flag needs an argument: -e (--env)", "-e");
    CREATE_ERR("invalid value \"80:\" for --publish: use PUBLISHED:TARGET[/PROTOCOL] or "
               "published=N,target=N[,protocol=tcp|udp][,mode=ingress|host]",
               "--publish", "80:", "img");
    CREATE_ERR("invalid value \"abc\" for --publish: use PUBLISHED:TARGET[/PROTOCOL] or "
               "published=N,target=N[,protocol=tcp|udp][,mode=ingress|host]",
               "-p", "abc", "img");
    CREATE_ERR("invalid value \"0:80\" for --publish: port 0 is out of range 1-65535", "-p", "0:80",
               "img");
    CREATE_ERR("invalid value \"8080:70000\" for --publish: port 70000 is out of range 1-65535",
               "-p", "8080:70000", "img");
    CREATE_ERR("invalid value \"80:80/icmp\" for --publish: unknown protocol \"icmp\" (use tcp, "
               "udp or sctp)",
               "-p", "80:80/icmp", "img");
    CREATE_ERR("invalid value \"published=80\" for --publish: target is required", "-p",
               "published=80", "img");
    CREATE_ERR("invalid value \"target=80,mode=edge\" for --publish: unknown mode \"edge\" (use "
               "ingress or host)",
               "-p", "target=80,mode=edge", "img");
    CREATE_ERR("invalid value \"type=nfs,target=/x\" for --mount: unknown type \"nfs\" (use bind, "
               "volume or tmpfs)",
               "--mount", "type=nfs,target=/x", "img");
    CREATE_ERR("invalid value \"type=bind,source=/a\" for --mount: target is required", "--mount",
               "type=bind,source=/a", "img");
    CREATE_ERR("invalid value \"type=bind,target=/a\" for --mount: source is required for a bind "
               "mount",
               "--mount", "type=bind,target=/a", "img");
    CREATE_ERR("invalid value \"target=rel\" for --mount: target must be an absolute path",
               "--mount", "target=rel", "img");
    CREATE_ERR("invalid value \"target=/a,color=red\" for --mount: unknown option \"color\"",
               "--mount", "target=/a,color=red", "img");
    CREATE_ERR("invalid value \"=x\" for --env: use KEY=VALUE", "--env", "=x", "img");
    CREATE_ERR("invalid value \"\" for --env: use KEY=VALUE", "-e", "", "img");
    CREATE_ERR("invalid value \"A B=1\" for --env: the key must not contain spaces", "-e", "A B=1",
               "img");
    CREATE_ERR("invalid value \"=v\" for --label: use KEY=VALUE", "--label", "=v", "img");
    CREATE_ERR("invalid value \"daemon\" for --mode: use replicated, global, replicated-job or "
               "global-job",
               "--mode", "daemon", "img");
    CREATE_ERR("invalid value \"sometimes\" for --restart-condition: use none, on-failure or any",
               "--restart-condition", "sometimes", "img");
    CREATE_ERR("invalid value \"random\" for --update-order: use stop-first or start-first",
               "--update-order", "random", "img");
    CREATE_ERR("invalid value \"panic\" for --update-failure-action: use pause, continue or "
               "rollback",
               "--update-failure-action", "panic", "img");
    CREATE_ERR("invalid value \"rollback\" for --rollback-failure-action: use pause or continue",
               "--rollback-failure-action", "rollback", "img");
    CREATE_ERR("invalid value \"1.5\" for --update-max-failure-ratio: use a number between 0 and "
               "1",
               "--update-max-failure-ratio", "1.5", "img");
    CREATE_ERR("invalid value \"x\" for --rollback-max-failure-ratio: use a number between 0 and "
               "1",
               "--rollback-max-failure-ratio", "x", "img");
    CREATE_ERR("invalid value \"node.role\" for --constraint: use an expression like "
               "node.labels.zone==a or node.role!=manager",
               "--constraint", "node.role", "img");
    CREATE_ERR("invalid value \"zone\" for --placement-pref: use spread=node.labels.KEY",
               "--placement-pref", "zone", "img");
    CREATE_ERR("invalid value \"many\" for --health-retries: use a non-negative integer",
               "--health-retries", "many", "img");
    CREATE_ERR("--no-healthcheck conflicts with --health-* options", "--no-healthcheck",
               "--health-cmd", "true", "img");
    CREATE_ERR("invalid value \"maybe\" for --detach: use true or false", "--detach=maybe", "img");
    CREATE_ERR("invalid value \"2000000\" for --replicas: must be at most 1000000", "--replicas",
               "2000000", "img");
    CREATE_ERR("invalid value \"soon\" for --timeout: use a duration like 10s or 1m30s",
               "--timeout", "soon", "img");
    CREATE_ERR("invalid value \"\" for --name: empty name", "--name", "", "img");
}

static void test_scale_args(void **state)
{
    (void)state;
    struct swc_err err;
    size_t nl;
    uint64_t n;
    assert_int_equal(swc_spec_parse_scale("web=5", &nl, &n, &err), 0);
    assert_int_equal(nl, 3);
    assert_int_equal(n, 5);
    assert_int_equal(swc_spec_parse_scale("api=0", &nl, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(swc_spec_parse_scale("web=x", &nl, &n, &err), SWC_EINVAL);
    assert_string_equal(err.msg,
                        "invalid scale argument \"web=x\": REPLICAS must be a non-negative "
                        "integer");
    assert_int_equal(swc_spec_parse_scale("web=-1", &nl, &n, &err), SWC_EINVAL);
    assert_string_equal(err.msg,
                        "invalid scale argument \"web=-1\": REPLICAS must be a non-negative "
                        "integer");
    assert_int_equal(swc_spec_parse_scale("web", &nl, &n, &err), SWC_EINVAL);
    assert_string_equal(err.msg,
                        "invalid scale argument \"web\": use SERVICE=REPLICAS, e.g. web=5");
    assert_int_equal(swc_spec_parse_scale("=3", &nl, &n, &err), SWC_EINVAL);
    assert_string_equal(err.msg, "invalid scale argument \"=3\": use SERVICE=REPLICAS, e.g. web=5");
    assert_int_equal(swc_spec_parse_scale("web=", &nl, &n, &err), SWC_EINVAL);
}

/* `service update`: flags parsed first, then applied on the current spec. */
static int update(Swarmc__ServiceSpec *s, int argc, char **argv, struct swc_err *err)
{
    struct swc_flags f;
    struct swc_svc_opts o;
    const char *ref;
    bool help;
    int rv = swc_spec_service_update_parse(argc, argv, &f, &ref, &o, &help, err);
    if (rv == 0) {
        assert_string_equal(ref, "web");
        rv = swc_spec_service_apply(s, &f, true, err);
    }
    last_opts = o;
    swc_flags_free(&f);
    return rv;
}

static void test_update(void **state)
{
    (void)state;
    struct swc_err err;
    Swarmc__ServiceSpec *s = CREATE_OK(
        "--name", "web", "-e", "A=1", "-e", "B=2", "-l", "x=1", "--constraint", "node.role==worker",
        "-p", "8080:80", "-p", "53:53/udp", "--mount", "target=/v", "--replicas", "2", "img:1");
    uint64_t force = s->task->force_update;
    assert_int_equal(
        update(s,
               ARGC("--image", "img:2", "--env-add", "A=9", "--env-rm", "B", "--label-add", "y=2",
                    "--label-rm", "x", "--constraint-rm", "node.role==worker", "--constraint-add",
                    "node.labels.a==b", "--publish-rm", "80", "--publish-add", "9090:90",
                    "--mount-rm", "/v", "--replicas", "5", "--force", "--update-delay", "3s",
                    "--args", "sleep 10", "web"),
               ARGV("--image", "img:2", "--env-add", "A=9", "--env-rm", "B", "--label-add", "y=2",
                    "--label-rm", "x", "--constraint-rm", "node.role==worker", "--constraint-add",
                    "node.labels.a==b", "--publish-rm", "80", "--publish-add", "9090:90",
                    "--mount-rm", "/v", "--replicas", "5", "--force", "--update-delay", "3s",
                    "--args", "sleep 10", "web"),
               &err),
        0);
    assert_string_equal(s->task->container->image, "img:2");
    assert_int_equal(s->task->container->n_env, 1);
    assert_string_equal(s->task->container->env[0], "A=9");
    assert_int_equal(s->annotations->n_labels, 1);
    assert_string_equal(s->annotations->labels[0]->key, "y");
    assert_int_equal(s->task->placement->n_constraints, 1);
    assert_string_equal(s->task->placement->constraints[0], "node.labels.a==b");
    assert_int_equal(s->endpoint->n_ports, 2);
    assert_int_equal(s->endpoint->ports[0]->target_port, 53);
    assert_int_equal(s->endpoint->ports[1]->target_port, 90);
    assert_int_equal(s->task->container->n_mounts, 0);
    assert_int_equal(s->replicated->replicas, 5);
    assert_int_equal(s->task->force_update, force + 1);
    assert_int_equal(s->update->delay_ns, 3 * SWC_NS_PER_SEC);
    assert_int_equal(s->task->container->n_args, 2);
    /* --publish-rm with a protocol removes only that protocol */
    assert_int_equal(update(s, ARGC("--publish-rm", "53/tcp", "web"),
                            ARGV("--publish-rm", "53/tcp", "web"), &err),
                     0);
    assert_int_equal(s->endpoint->n_ports, 2);
    assert_int_equal(update(s, ARGC("--publish-rm", "53/udp", "web"),
                            ARGV("--publish-rm", "53/udp", "web"), &err),
                     0);
    assert_int_equal(s->endpoint->n_ports, 1);
    /* mode cannot change; errors name the flag */
    assert_int_equal(
        update(s, ARGC("--mode", "global", "web"), ARGV("--mode", "global", "web"), &err),
        SWC_EINVAL);
    assert_string_equal(err.msg, "--mode cannot be changed by an update: remove the service and "
                                 "create it again");
    assert_int_equal(
        update(s, ARGC("--update-order", "x", "web"), ARGV("--update-order", "x", "web"), &err),
        SWC_EINVAL);
    assert_string_equal(err.msg, "invalid value \"x\" for --update-order: use stop-first or "
                                 "start-first");
    assert_int_equal(update(s, ARGC("--rollback", "--image", "x", "web"),
                            ARGV("--rollback", "--image", "x", "web"), &err),
                     SWC_EINVAL);
    assert_string_equal(err.msg, "--rollback cannot be combined with --image");
    assert_int_equal(update(s, ARGC("--image", "x"), ARGV("--image", "x"), &err), SWC_EINVAL);
    assert_string_equal(err.msg,
                        "\"swarmc service update\" requires exactly 1 argument: the SERVICE");
    swc_spec_service_free(s);

    /* --replicas on a global service */
    s = CREATE_OK("--mode", "global", "img");
    assert_int_equal(
        update(s, ARGC("--replicas", "3", "web"), ARGV("--replicas", "3", "web"), &err),
        SWC_EINVAL);
    assert_string_equal(err.msg, "--replicas can only be used with replicated or replicated-job "
                                 "mode");
    swc_spec_service_free(s);
}

/* An update on a spec as it comes back from the daemon (absent
 * sub-messages are NULL after unpacking) must work and stay freeable. */
static void test_update_unpacked(void **state)
{
    (void)state;
    struct swc_err err;
    Swarmc__ServiceSpec in = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__Annotations an = SWARMC__ANNOTATIONS__INIT;
    an.name = "web";
    in.annotations = &an;
    uint8_t buf[256];
    size_t len = swarmc__service_spec__pack(&in, buf);
    Swarmc__ServiceSpec *s = swarmc__service_spec__unpack(&swc_pb_allocator, len, buf);
    assert_non_null(s);
    assert_null(s->task);
    long live = swc_alloc_live();
    assert_int_equal(update(s, ARGC("--image", "img", "-e", "A=1", "--label-add", "k=v", "web"),
                            ARGV("--image", "img", "-e", "A=1", "--label-add", "k=v", "web"), &err),
                     0);
    assert_string_equal(s->task->container->image, "img");
    assert_true(swc_alloc_live() > live);
    swc_spec_service_free(s);
}

/* An update that does not touch the task template leaves its encoding
 * byte-identical (the manager compares templates to decide which tasks to
 * replace), even when the daemon's spec lacks optional sub-messages. */
static void test_update_keeps_template(void **state)
{
    (void)state;
    struct swc_err err;
    Swarmc__ServiceSpec in = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__Annotations an = SWARMC__ANNOTATIONS__INIT;
    Swarmc__TaskSpec ts = SWARMC__TASK_SPEC__INIT;
    Swarmc__ContainerSpec cs = SWARMC__CONTAINER_SPEC__INIT;
    Swarmc__ReplicatedService rep = SWARMC__REPLICATED_SERVICE__INIT;
    an.name = "web";
    cs.image = "nginx";
    ts.container = &cs;
    rep.replicas = 2;
    in.annotations = &an;
    in.task = &ts;
    in.mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    in.replicated = &rep;
    uint8_t before[256], after[256], buf[512];
    size_t blen = swarmc__task_spec__pack(&ts, before);
    size_t len = swarmc__service_spec__pack(&in, buf);
    Swarmc__ServiceSpec *s = swarmc__service_spec__unpack(&swc_pb_allocator, len, buf);
    assert_int_equal(update(s, ARGC("--replicas", "5", "--update-delay", "1s", "web"),
                            ARGV("--replicas", "5", "--update-delay", "1s", "web"), &err),
                     0);
    assert_int_equal(s->replicated->replicas, 5);
    assert_int_equal(s->update->delay_ns, SWC_NS_PER_SEC);
    assert_int_equal(s->update->parallelism, 0); /* no client defaults on update */
    assert_null(s->task->resources);
    assert_null(s->task->placement);
    assert_null(s->task->restart);
    assert_null(s->endpoint);
    size_t alen = swarmc__task_spec__pack(s->task, after);
    assert_int_equal(alen, blen);
    assert_memory_equal(after, before, blen);
    /* a real change does change it, and only where asked */
    assert_int_equal(
        update(s, ARGC("--limit-memory", "1G", "web"), ARGV("--limit-memory", "1G", "web"), &err),
        0);
    assert_non_null(s->task->resources);
    assert_non_null(s->task->resources->limits);
    assert_null(s->task->resources->reservations);
    assert_null(s->task->placement);
    swc_spec_service_free(s);
}

static void test_secrets_configs(void **state)
{
    (void)state;
    struct swc_err err;
    Swarmc__ServiceSpec *s =
        CREATE_OK("--secret", "db-pass", "--secret", "source=tls,target=server.pem", "--config",
                  "app.yml", "--config", "src=nginx.conf,target=/etc/nginx/nginx.conf", "img");
    Swarmc__ContainerSpec *c = s->task->container;
    assert_int_equal(c->n_secrets, 2);
    assert_string_equal(c->secrets[0]->secret_name, "db-pass");
    assert_string_equal(c->secrets[0]->target, "db-pass");
    assert_string_equal(c->secrets[1]->secret_name, "tls");
    assert_string_equal(c->secrets[1]->target, "server.pem");
    assert_int_equal(c->n_configs, 2);
    assert_string_equal(c->configs[0]->target, "/app.yml");
    assert_string_equal(c->configs[1]->config_name, "nginx.conf");
    assert_string_equal(c->configs[1]->target, "/etc/nginx/nginx.conf");
    assert_int_equal(
        update(
            s,
            ARGC("--secret-rm", "tls", "--secret-add", "api-key", "--config-rm", "app.yml", "web"),
            ARGV("--secret-rm", "tls", "--secret-add", "api-key", "--config-rm", "app.yml", "web"),
            &err),
        0);
    c = s->task->container;
    assert_int_equal(c->n_secrets, 2);
    assert_string_equal(c->secrets[1]->secret_name, "api-key");
    assert_int_equal(c->n_configs, 1);
    assert_string_equal(c->configs[0]->config_name, "nginx.conf");
    swc_spec_service_free(s);
    CREATE_ERR("invalid value \"source=x,target=a/b\" for --secret: target must be a file name "
               "(it is placed under /run/secrets)",
               "--secret", "source=x,target=a/b", "img");
    CREATE_ERR("invalid value \"source=x,mode=0400\" for --secret: unknown option \"mode\"",
               "--secret", "source=x,mode=0400", "img");
    CREATE_ERR("invalid value \"target=/a\" for --config: use NAME or source=NAME[,target=...]",
               "--config", "target=/a", "img");
    CREATE_ERR("invalid value \"source=c,target=rel\" for --config: target must be an absolute "
               "path",
               "--config", "source=c,target=rel", "img");
}

static void test_node_update(void **state)
{
    (void)state;
    struct swc_flags f;
    struct swc_err err;
    Swarmc__NodeSpec spec = SWARMC__NODE_SPEC__INIT;
    char *argv[] = {"--availability", "drain", "--label-add", "zone=a",  "--label-add", "ssd",
                    "--label-rm",     "ssd",   "--role",      "manager", "n1",          NULL};
    assert_int_equal(swc_flags_parse(swc_node_update_flags, 11, argv, false, &f, &err), 0);
    assert_int_equal(swc_spec_node_apply(&spec, &f, &err), 0);
    assert_int_equal(spec.availability, SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN);
    assert_int_equal(spec.desired_role, SWARMC__NODE_ROLE__NODE_ROLE_MANAGER);
    assert_int_equal(spec.annotations->n_labels, 1);
    assert_string_equal(spec.annotations->labels[0]->key, "zone");
    assert_string_equal(spec.annotations->labels[0]->value, "a");
    swc_flags_free(&f);
    free_msg(spec.annotations);
    spec.annotations = NULL;

    char *bad[] = {"--availability", "sleep", "n1", NULL};
    assert_int_equal(swc_flags_parse(swc_node_update_flags, 3, bad, false, &f, &err), 0);
    assert_int_equal(swc_spec_node_apply(&spec, &f, &err), SWC_EINVAL);
    assert_string_equal(err.msg,
                        "invalid value \"sleep\" for --availability: use active, pause or drain");
    swc_flags_free(&f);
    free_msg(spec.annotations);
    spec.annotations = NULL;
    char *bad2[] = {"--label-add", "=x", "n1", NULL};
    assert_int_equal(swc_flags_parse(swc_node_update_flags, 3, bad2, false, &f, &err), 0);
    assert_int_equal(swc_spec_node_apply(&spec, &f, &err), SWC_EINVAL);
    assert_string_equal(err.msg, "invalid value \"=x\" for --label-add: use KEY=VALUE");
    swc_flags_free(&f);
    free_msg(spec.annotations);
    spec.annotations = NULL;
    char *bad3[] = {"--drain", "n1", NULL};
    assert_int_equal(swc_flags_parse(swc_node_update_flags, 2, bad3, false, &f, &err), SWC_EINVAL);
    assert_string_equal(err.msg, "unknown flag: --drain");
    swc_flags_free(&f);
}

/* Nothing leaks, whatever the outcome. */
static void test_no_leaks(void **state)
{
    (void)state;
    long live = swc_alloc_live();
    Swarmc__ServiceSpec *s = CREATE_OK("--name", "web", "-e", "A=1", "-l", "a=b", "-p", "80:80",
                                       "--mount", "target=/x", "--health-cmd", "true", "img", "a");
    swc_spec_service_free(s);
    CREATE_ERR("invalid value \"x\" for --mount: unknown option \"x\"", "-p", "80", "--mount", "x",
               "img");
    CREATE_ERR("invalid value \"1:2:3\" for --publish: use PUBLISHED:TARGET[/PROTOCOL] or "
               "published=N,target=N[,protocol=tcp|udp][,mode=ingress|host]",
               "-e", "A=1", "-p", "1:2:3", "img");
    assert_int_equal(swc_alloc_live(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_every_flag),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_syntax_forms),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_scale_args),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_update_unpacked),
        cmocka_unit_test(test_update_keeps_template),
        cmocka_unit_test(test_secrets_configs),
        cmocka_unit_test(test_node_update),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
