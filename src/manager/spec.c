/* Service spec defaults and validation (see spec.h).
 *
 * Validation walks the spec top-down and returns at the first bad value with
 * the field's path ("update.max_failure_ratio: must be between 0 and 1, got
 * 1.5"). Update and rollback configs share one checker with a prefix. */
#include "manager/spec.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "manager/constraint.h"
#include "manager/restart.h"
#include "manager/update.h"

#define BAD(...) swc_err_set(err, SWC_EINVAL, __VA_ARGS__)

static Swarmc__UpdateConfig *new_update_config(void)
{
    Swarmc__UpdateConfig *u = swc_malloc(sizeof(*u));
    if (u == NULL)
        return NULL;
    swarmc__update_config__init(u);
    u->parallelism = 1;
    u->monitor_ns = SWC_UPDATE_DEFAULT_MONITOR;
    return u;
}

int swc_spec_fill_defaults(Swarmc__ServiceSpec *spec)
{
    if (spec->mode_case == SWARMC__SERVICE_SPEC__MODE__NOT_SET) {
        Swarmc__ReplicatedService *r = swc_malloc(sizeof(*r));
        if (r == NULL)
            return SWC_ENOMEM;
        swarmc__replicated_service__init(r);
        r->replicas = 1;
        spec->replicated = r;
        spec->mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    }
    bool job = spec->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB ||
               spec->mode_case == SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB;
    if (spec->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB &&
        spec->replicated_job != NULL) {
        Swarmc__ReplicatedJob *j = spec->replicated_job;
        if (j->max_concurrent == 0 && j->total_completions == 0)
            j->max_concurrent = j->total_completions = 1;
        else if (j->total_completions == 0)
            j->total_completions = j->max_concurrent;
        else if (j->max_concurrent == 0)
            j->max_concurrent = j->total_completions;
    }
    if (spec->task == NULL) {
        spec->task = swc_malloc(sizeof(*spec->task));
        if (spec->task == NULL)
            return SWC_ENOMEM;
        swarmc__task_spec__init(spec->task);
    }
    Swarmc__TaskSpec *t = spec->task;
    if (t->restart == NULL) {
        t->restart = swc_malloc(sizeof(*t->restart));
        if (t->restart == NULL)
            return SWC_ENOMEM;
        swarmc__restart_policy__init(t->restart);
        t->restart->condition = job ? SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE
                                    : SWARMC__RESTART_CONDITION__RESTART_CONDITION_ANY;
    }
    if (!t->restart->delay_set && t->restart->delay_ns == 0)
        t->restart->delay_ns = SWC_RESTART_DEFAULT_DELAY;
    t->restart->delay_set = true;
    if (t->container != NULL && t->container->stop_grace_period_ns == 0)
        t->container->stop_grace_period_ns = SWC_SPEC_DEFAULT_GRACE;
    Swarmc__UpdateConfig **cfgs[2] = {&spec->update, &spec->rollback};
    for (int i = 0; i < 2; i++) {
        if (*cfgs[i] == NULL) {
            if ((*cfgs[i] = new_update_config()) == NULL)
                return SWC_ENOMEM;
        } else if ((*cfgs[i])->monitor_ns == 0) {
            (*cfgs[i])->monitor_ns = SWC_UPDATE_DEFAULT_MONITOR;
        }
    }
    return 0;
}

int swc_spec_validate_name(const char *name, struct swc_err *err)
{
    if (name == NULL || name[0] == '\0')
        return BAD("name: required");
    size_t len = strlen(name);
    if (len > SWC_SPEC_NAME_MAX)
        return BAD("name: '%.20s...' is %zu characters long, at most %d allowed", name, len,
                   SWC_SPEC_NAME_MAX);
    if (!isalnum((unsigned char)name[0]))
        return BAD("name: '%s' must start with a letter or digit", name);
    for (size_t i = 1; i < len; i++) {
        char c = name[i];
        if (!isalnum((unsigned char)c) && c != '_' && c != '.' && c != '-')
            return BAD("name: '%s' contains '%c'; use letters, digits, '_', '.' and '-'", name, c);
    }
    return 0;
}

static int check_update(const Swarmc__UpdateConfig *u, const char *p, struct swc_err *err)
{
    if (u == NULL)
        return 0;
    if (u->delay_ns < 0)
        return BAD("%s.delay: must not be negative", p);
    if (u->monitor_ns < 0)
        return BAD("%s.monitor: must not be negative", p);
    if (!(u->max_failure_ratio >= 0.0f && u->max_failure_ratio <= 1.0f))
        return BAD("%s.max_failure_ratio: must be between 0 and 1, got %g", p,
                   (double)u->max_failure_ratio);
    if (u->failure_action < SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_PAUSE ||
        u->failure_action > SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_ROLLBACK)
        return BAD("%s.failure_action: must be pause, continue or rollback", p);
    if (strcmp(p, "rollback") == 0 &&
        u->failure_action == SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_ROLLBACK)
        return BAD("rollback.failure_action: rollback is not allowed; use pause or continue");
    if (u->order != SWARMC__UPDATE_ORDER__UPDATE_ORDER_STOP_FIRST &&
        u->order != SWARMC__UPDATE_ORDER__UPDATE_ORDER_START_FIRST)
        return BAD("%s.order: must be stop-first or start-first", p);
    return 0;
}

static int check_resources(const Swarmc__Resources *r, const char *p, struct swc_err *err)
{
    if (r == NULL)
        return 0;
    if (r->nano_cpus < 0)
        return BAD("task.resources.%s.nano_cpus: must not be negative", p);
    if (r->memory_bytes < 0)
        return BAD("task.resources.%s.memory_bytes: must not be negative", p);
    return 0;
}

static int check_mounts(const Swarmc__ContainerSpec *c, struct swc_err *err)
{
    for (size_t i = 0; i < c->n_mounts; i++) {
        const Swarmc__Mount *m = c->mounts[i];
        if (m->target == NULL || m->target[0] == '\0')
            return BAD("task.container.mounts[%zu].target: required", i);
        if (m->target[0] != '/')
            return BAD("task.container.mounts[%zu].target: '%s' must be an absolute path", i,
                       m->target);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->mounts[j]->target, m->target) == 0)
                return BAD("task.container.mounts[%zu].target: '%s' is mounted twice", i,
                           m->target);
        switch (m->type) {
        case SWARMC__MOUNT_TYPE__MOUNT_TYPE_BIND:
            if (m->source == NULL || m->source[0] != '/')
                return BAD("task.container.mounts[%zu].source: a bind mount needs an absolute "
                           "source path",
                           i);
            break;
        case SWARMC__MOUNT_TYPE__MOUNT_TYPE_VOLUME:
            break;
        case SWARMC__MOUNT_TYPE__MOUNT_TYPE_TMPFS:
            if (m->source != NULL && m->source[0] != '\0')
                return BAD("task.container.mounts[%zu].source: a tmpfs mount takes no source", i);
            if (m->tmpfs_size_bytes < 0)
                return BAD("task.container.mounts[%zu].tmpfs_size_bytes: must not be negative", i);
            break;
        default:
            return BAD("task.container.mounts[%zu].type: must be bind, volume or tmpfs", i);
        }
    }
    return 0;
}

static int check_container(const Swarmc__ContainerSpec *c, struct swc_err *err)
{
    if (c->image == NULL || c->image[0] == '\0')
        return BAD("task.container.image: required");
    for (const char *p = c->image; *p; p++)
        if (isspace((unsigned char)*p) || !isprint((unsigned char)*p))
            return BAD("task.container.image: '%s' is not a valid image reference", c->image);
    for (size_t i = 0; i < c->n_env; i++) {
        const char *e = c->env[i];
        const char *eq = strchr(e, '=');
        if (eq == NULL)
            return BAD("task.container.env[%zu]: '%s' must be KEY=VALUE", i, e);
        if (eq == e)
            return BAD("task.container.env[%zu]: '%s' has an empty name", i, e);
    }
    if (c->dir != NULL && c->dir[0] != '\0' && c->dir[0] != '/')
        return BAD("task.container.dir: '%s' must be an absolute path", c->dir);
    if (c->stop_grace_period_ns < 0)
        return BAD("task.container.stop_grace_period: must not be negative");
    int rc = check_mounts(c, err);
    if (rc != 0)
        return rc;
    const Swarmc__HealthConfig *h = c->healthcheck;
    if (h != NULL) {
        if (h->n_test > 0 && strcmp(h->test[0], "NONE") != 0 && strcmp(h->test[0], "CMD") != 0 &&
            strcmp(h->test[0], "CMD-SHELL") != 0)
            return BAD("task.container.healthcheck.test: must start with NONE, CMD or "
                       "CMD-SHELL, not '%s'",
                       h->test[0]);
        if (h->interval_ns < 0)
            return BAD("task.container.healthcheck.interval: must not be negative");
        if (h->timeout_ns < 0)
            return BAD("task.container.healthcheck.timeout: must not be negative");
        if (h->start_period_ns < 0)
            return BAD("task.container.healthcheck.start_period: must not be negative");
        if (h->retries < 0)
            return BAD("task.container.healthcheck.retries: must not be negative");
    }
    for (size_t i = 0; i < c->n_secrets; i++) {
        const Swarmc__SecretReference *s = c->secrets[i];
        if ((s->secret_name == NULL || s->secret_name[0] == '\0') &&
            (s->secret_id == NULL || s->secret_id[0] == '\0'))
            return BAD("task.container.secrets[%zu]: secret name required", i);
        const char *tg = s->target != NULL && s->target[0] ? s->target : s->secret_name;
        if (tg != NULL &&
            (strchr(tg, '/') != NULL || strcmp(tg, "..") == 0 || strcmp(tg, ".") == 0))
            return BAD("task.container.secrets[%zu].target: '%s' must be a plain file name", i, tg);
        for (size_t j = 0; j < i && tg != NULL; j++) {
            const Swarmc__SecretReference *o = c->secrets[j];
            const char *otg = o->target != NULL && o->target[0] ? o->target : o->secret_name;
            if (otg != NULL && strcmp(otg, tg) == 0)
                return BAD("task.container.secrets[%zu].target: '%s' is used twice", i, tg);
        }
    }
    for (size_t i = 0; i < c->n_configs; i++) {
        const Swarmc__ConfigReference *r = c->configs[i];
        if ((r->config_name == NULL || r->config_name[0] == '\0') &&
            (r->config_id == NULL || r->config_id[0] == '\0'))
            return BAD("task.container.configs[%zu]: config name required", i);
        if (r->target == NULL || r->target[0] != '/')
            return BAD("task.container.configs[%zu].target: must be an absolute path", i);
    }
    return 0;
}

static int check_ports(const Swarmc__EndpointSpec *e, struct swc_err *err)
{
    if (e == NULL)
        return 0;
    for (size_t i = 0; i < e->n_ports; i++) {
        const Swarmc__PortConfig *p = e->ports[i];
        if (p->target_port < 1 || p->target_port > 65535)
            return BAD("endpoint.ports[%zu].target_port: %u is out of range 1-65535", i,
                       p->target_port);
        if (p->published_port > 65535)
            return BAD("endpoint.ports[%zu].published_port: %u is out of range 1-65535", i,
                       p->published_port);
        if (p->protocol < SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_TCP ||
            p->protocol > SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_SCTP)
            return BAD("endpoint.ports[%zu].protocol: must be tcp, udp or sctp", i);
        if (p->publish_mode != SWARMC__PUBLISH_MODE__PUBLISH_MODE_INGRESS &&
            p->publish_mode != SWARMC__PUBLISH_MODE__PUBLISH_MODE_HOST)
            return BAD("endpoint.ports[%zu].publish_mode: must be ingress or host", i);
        if (p->published_port == 0)
            continue;
        for (size_t j = 0; j < i; j++) {
            const Swarmc__PortConfig *q = e->ports[j];
            if (q->published_port == p->published_port && q->protocol == p->protocol)
                return BAD("endpoint.ports[%zu].published_port: %u is published twice", i,
                           p->published_port);
        }
    }
    return 0;
}

int swc_spec_validate(const Swarmc__ServiceSpec *spec, struct swc_err *err)
{
    if (spec == NULL)
        return BAD("spec: required");
    int rc = swc_spec_validate_name(spec->annotations ? spec->annotations->name : NULL, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < spec->annotations->n_labels; i++)
        if (spec->annotations->labels[i]->key == NULL ||
            spec->annotations->labels[i]->key[0] == '\0')
            return BAD("labels: empty label name");
    const Swarmc__TaskSpec *t = spec->task;
    if (t == NULL || t->container == NULL)
        return BAD("task.container: required");
    if ((rc = check_container(t->container, err)) != 0)
        return rc;
    switch (spec->mode_case) {
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED:
        if (spec->replicated == NULL)
            return BAD("mode.replicated: required");
        if (spec->replicated->replicas > SWC_SPEC_MAX_REPLICAS)
            return BAD("mode.replicated.replicas: %llu is more than %d",
                       (unsigned long long)spec->replicated->replicas, SWC_SPEC_MAX_REPLICAS);
        break;
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB:
        if (spec->replicated_job == NULL)
            return BAD("mode.replicated_job: required");
        if (spec->replicated_job->total_completions > SWC_SPEC_MAX_REPLICAS)
            return BAD("mode.replicated_job.total_completions: %llu is more than %d",
                       (unsigned long long)spec->replicated_job->total_completions,
                       SWC_SPEC_MAX_REPLICAS);
        if (spec->replicated_job->max_concurrent > SWC_SPEC_MAX_REPLICAS)
            return BAD("mode.replicated_job.max_concurrent: %llu is more than %d",
                       (unsigned long long)spec->replicated_job->max_concurrent,
                       SWC_SPEC_MAX_REPLICAS);
        break;
    default:
        break;
    }
    bool global = spec->mode_case == SWARMC__SERVICE_SPEC__MODE_GLOBAL ||
                  spec->mode_case == SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB;
    const Swarmc__RestartPolicy *r = t->restart;
    if (r != NULL) {
        if (r->condition < SWARMC__RESTART_CONDITION__RESTART_CONDITION_ANY ||
            r->condition > SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE)
            return BAD("task.restart.condition: must be any, on-failure or none");
        if (r->delay_ns < 0)
            return BAD("task.restart.delay: must not be negative");
        if (r->window_ns < 0)
            return BAD("task.restart.window: must not be negative");
    }
    if (t->resources != NULL) {
        const Swarmc__Resources *lim = t->resources->limits, *res = t->resources->reservations;
        if ((rc = check_resources(res, "reservations", err)) != 0 ||
            (rc = check_resources(lim, "limits", err)) != 0)
            return rc;
        if (lim != NULL && res != NULL) {
            if (lim->nano_cpus > 0 && lim->nano_cpus < res->nano_cpus)
                return BAD("task.resources.limits.nano_cpus: limit %lld is below the "
                           "reservation %lld",
                           (long long)lim->nano_cpus, (long long)res->nano_cpus);
            if (lim->memory_bytes > 0 && lim->memory_bytes < res->memory_bytes)
                return BAD("task.resources.limits.memory_bytes: limit %lld is below the "
                           "reservation %lld",
                           (long long)lim->memory_bytes, (long long)res->memory_bytes);
        }
    }
    const Swarmc__Placement *pl = t->placement;
    if (pl != NULL) {
        if (global && pl->max_replicas > 0)
            return BAD("task.placement.max_replicas: not allowed with a global mode");
        for (size_t i = 0; i < pl->n_constraints; i++) {
            struct swc_constraint c;
            if ((rc = swc_constraint_parse(pl->constraints[i], &c, err)) != 0)
                return swc_err_wrap(err, "task.placement.constraints[%zu]", i);
            swc_constraint_clear(&c);
        }
        for (size_t i = 0; i < pl->n_preferences; i++) {
            const char *s = pl->preferences[i]->spread;
            if (s == NULL || !((strncmp(s, "node.labels.", 12) == 0 && s[12] != '\0') ||
                               (strncmp(s, "engine.labels.", 14) == 0 && s[14] != '\0')))
                return BAD("task.placement.preferences[%zu].spread: '%s' must be "
                           "node.labels.<key> or engine.labels.<key>",
                           i, s ? s : "");
        }
    }
    if ((rc = check_update(spec->update, "update", err)) != 0 ||
        (rc = check_update(spec->rollback, "rollback", err)) != 0)
        return rc;
    return check_ports(spec->endpoint, err);
}
