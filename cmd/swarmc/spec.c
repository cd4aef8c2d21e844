/* Service and node specs from flags (see spec.h).
 *
 * Flags are applied in the order given, so "--env A=1 --env-rm A" ends
 * without A, like Docker. Checks that involve several flags (replicas with
 * a global mode, --no-healthcheck with --health-*) run after all of them.
 * Memory helpers are in spec_int.h, the flag tables in spec_flags.c and
 * the --publish/--mount parsers in spec_values.c. */
#include "spec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "spec_int.h"

/* Map fields (labels) are repeated entry messages {key, value}; one pair of
 * helpers per entry type keeps the element types exact. */
#define DEFINE_MAP_OPS(fn, T, init)                                                                \
    static void fn##_set(T ***arr, size_t *n, const char *k, const char *v)                        \
    {                                                                                              \
        for (size_t i = 0; i < *n; i++) {                                                          \
            if (strcmp((*arr)[i]->key, k) == 0) {                                                  \
                str_set(&(*arr)[i]->value, v);                                                     \
                return;                                                                            \
            }                                                                                      \
        }                                                                                          \
        T *e = NEW_MSG(T, init);                                                                   \
        str_set(&e->key, k);                                                                       \
        str_set(&e->value, v);                                                                     \
        *arr = xgrow(*arr, *n, sizeof **arr);                                                      \
        (*arr)[(*n)++] = e;                                                                        \
    }                                                                                              \
    static void fn##_rm(T **arr, size_t *n, const char *k)                                         \
    {                                                                                              \
        size_t w = 0;                                                                              \
        for (size_t i = 0; i < *n; i++) {                                                          \
            if (strcmp(arr[i]->key, k) == 0) {                                                     \
                free_msg(arr[i]);                                                                  \
            } else {                                                                               \
                arr[w++] = arr[i];                                                                 \
            }                                                                                      \
        }                                                                                          \
        *n = w;                                                                                    \
    }

DEFINE_MAP_OPS(annot_labels, Swarmc__Annotations__LabelsEntry,
               swarmc__annotations__labels_entry__init)
DEFINE_MAP_OPS(ctr_labels, Swarmc__ContainerSpec__LabelsEntry,
               swarmc__container_spec__labels_entry__init)

/* Make sure every sub-message the flags may touch exists (a spec unpacked
 * from the daemon leaves absent ones NULL). defaults: Docker's client-side
 * defaults for a new service (update config, one replica). */
static void ensure_all(Swarmc__ServiceSpec *s, bool defaults)
{
    if (s->annotations == NULL) {
        s->annotations = NEW_MSG(Swarmc__Annotations, swarmc__annotations__init);
    }
    if (s->task == NULL) {
        s->task = NEW_MSG(Swarmc__TaskSpec, swarmc__task_spec__init);
    }
    Swarmc__TaskSpec *t = s->task;
    if (t->container == NULL) {
        t->container = NEW_MSG(Swarmc__ContainerSpec, swarmc__container_spec__init);
    }
    if (t->resources == NULL) {
        t->resources = NEW_MSG(Swarmc__ResourceRequirements, swarmc__resource_requirements__init);
    }
    if (t->resources->limits == NULL) {
        t->resources->limits = NEW_MSG(Swarmc__Resources, swarmc__resources__init);
    }
    if (t->resources->reservations == NULL) {
        t->resources->reservations = NEW_MSG(Swarmc__Resources, swarmc__resources__init);
    }
    if (t->restart == NULL) {
        t->restart = NEW_MSG(Swarmc__RestartPolicy, swarmc__restart_policy__init);
    }
    if (t->placement == NULL) {
        t->placement = NEW_MSG(Swarmc__Placement, swarmc__placement__init);
    }
    if (s->update == NULL) {
        s->update = NEW_MSG(Swarmc__UpdateConfig, swarmc__update_config__init);
        if (defaults) {
            s->update->parallelism = 1;
            s->update->monitor_ns = 5 * SWC_NS_PER_SEC;
        }
    }
    if (s->rollback == NULL) {
        s->rollback = NEW_MSG(Swarmc__UpdateConfig, swarmc__update_config__init);
        if (defaults) {
            s->rollback->parallelism = 1;
            s->rollback->monitor_ns = 5 * SWC_NS_PER_SEC;
        }
    }
    if (s->endpoint == NULL) {
        s->endpoint = NEW_MSG(Swarmc__EndpointSpec, swarmc__endpoint_spec__init);
    }
    if (defaults && s->mode_case == SWARMC__SERVICE_SPEC__MODE__NOT_SET) {
        s->mode_case = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
        s->replicated = NEW_MSG(Swarmc__ReplicatedService, swarmc__replicated_service__init);
        s->replicated->replicas = 1;
    }
}

Swarmc__ServiceSpec *swc_spec_service_new(void)
{
    Swarmc__ServiceSpec *s = NEW_MSG(Swarmc__ServiceSpec, swarmc__service_spec__init);
    ensure_all(s, true);
    return s;
}

void swc_spec_service_free(Swarmc__ServiceSpec *spec)
{
    free_msg(spec);
}

const char *swc_spec_mode_name(const Swarmc__ServiceSpec *spec)
{
    switch (spec->mode_case) {
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL:
        return "global";
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB:
        return "replicated-job";
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB:
        return "global-job";
    default:
        return "replicated";
    }
}

/* ---- single values ----------------------------------------------------------- */

static int parse_kv(const char *flag, const char *v, bool key_only_ok, struct swc_err *err)
{
    const char *eq = strchr(v, '=');
    if (v[0] == '\0' || eq == v || (eq == NULL && !key_only_ok)) {
        return swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: use KEY=VALUE", v,
                           flag);
    }
    for (const char *p = v; p < (eq ? eq : v + strlen(v)); p++) {
        if (isspace((unsigned char)*p)) {
            return swc_err_set(err, SWC_EINVAL,
                               "invalid value \"%s\" for --%s: the key must not contain spaces", v,
                               flag);
        }
    }
    return 0;
}

static int parse_restart_condition(const char *v, Swarmc__RestartCondition *out,
                                   struct swc_err *err)
{
    if (strcmp(v, "none") == 0) {
        *out = SWARMC__RESTART_CONDITION__RESTART_CONDITION_NONE;
    } else if (strcmp(v, "on-failure") == 0) {
        *out = SWARMC__RESTART_CONDITION__RESTART_CONDITION_ON_FAILURE;
    } else if (strcmp(v, "any") == 0) {
        *out = SWARMC__RESTART_CONDITION__RESTART_CONDITION_ANY;
    } else {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --restart-condition: use none, on-failure or "
                           "any",
                           v);
    }
    return 0;
}

static int parse_order(const char *flag, const char *v, Swarmc__UpdateOrder *out,
                       struct swc_err *err)
{
    if (strcmp(v, "stop-first") == 0) {
        *out = SWARMC__UPDATE_ORDER__UPDATE_ORDER_STOP_FIRST;
    } else if (strcmp(v, "start-first") == 0) {
        *out = SWARMC__UPDATE_ORDER__UPDATE_ORDER_START_FIRST;
    } else {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: use stop-first or start-first", v, flag);
    }
    return 0;
}

static int parse_failure_action(const char *flag, const char *v, bool rollback_ok,
                                Swarmc__UpdateFailureAction *out, struct swc_err *err)
{
    if (strcmp(v, "pause") == 0) {
        *out = SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_PAUSE;
    } else if (strcmp(v, "continue") == 0) {
        *out = SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_CONTINUE;
    } else if (rollback_ok && strcmp(v, "rollback") == 0) {
        *out = SWARMC__UPDATE_FAILURE_ACTION__UPDATE_FAILURE_ACTION_ROLLBACK;
    } else if (rollback_ok) {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: use pause, continue or rollback", v,
                           flag);
    } else {
        return swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: use pause or continue",
                           v, flag);
    }
    return 0;
}

/* Constraints look like "node.labels.zone==a" or "node.role != manager". */
static int check_constraint(const char *flag, const char *v, struct swc_err *err)
{
    const char *op = strstr(v, "==");
    if (op == NULL) {
        op = strstr(v, "!=");
    }
    if (op == NULL || op == v || op[2] == '\0') {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: use an expression like "
                           "node.labels.zone==a or node.role!=manager",
                           v, flag);
    }
    return 0;
}

static void set_mode(Swarmc__ServiceSpec *s, Swarmc__ServiceSpec__ModeCase mc)
{
    if (s->mode_case == mc) {
        return;
    }
    uint64_t replicas = 1;
    if (s->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED && s->replicated) {
        replicas = s->replicated->replicas;
    } else if (s->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB && s->replicated_job) {
        replicas = s->replicated_job->total_completions;
    }
    switch (s->mode_case) {
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED:
        free_msg(s->replicated);
        break;
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL:
        free_msg(s->global);
        break;
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB:
        free_msg(s->replicated_job);
        break;
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB:
        free_msg(s->global_job);
        break;
    default:
        break;
    }
    s->mode_case = mc;
    switch (mc) {
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL:
        s->global = NEW_MSG(Swarmc__GlobalService, swarmc__global_service__init);
        break;
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB:
        s->replicated_job = NEW_MSG(Swarmc__ReplicatedJob, swarmc__replicated_job__init);
        s->replicated_job->total_completions = replicas;
        s->replicated_job->max_concurrent = replicas;
        break;
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB:
        s->global_job = NEW_MSG(Swarmc__GlobalJob, swarmc__global_job__init);
        break;
    default:
        s->replicated = NEW_MSG(Swarmc__ReplicatedService, swarmc__replicated_service__init);
        s->replicated->replicas = replicas;
        break;
    }
}

static int parse_mode(const char *v, Swarmc__ServiceSpec__ModeCase *out, struct swc_err *err)
{
    if (strcmp(v, "replicated") == 0) {
        *out = SWARMC__SERVICE_SPEC__MODE_REPLICATED;
    } else if (strcmp(v, "global") == 0) {
        *out = SWARMC__SERVICE_SPEC__MODE_GLOBAL;
    } else if (strcmp(v, "replicated-job") == 0) {
        *out = SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB;
    } else if (strcmp(v, "global-job") == 0) {
        *out = SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB;
    } else {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --mode: use replicated, global, "
                           "replicated-job or global-job",
                           v);
    }
    return 0;
}

/* Split a command string on white space ("sh -c" -> ["sh", "-c"]). */
static void split_words(const char *v, char ***arr, size_t *n)
{
    strv_clear(arr, n);
    const char *p = v;
    while (*p != '\0') {
        while (isspace((unsigned char)*p)) {
            p++;
        }
        size_t len = 0;
        while (p[len] != '\0' && !isspace((unsigned char)p[len])) {
            len++;
        }
        if (len > 0) {
            *arr = xgrow(*arr, *n, sizeof **arr);
            (*arr)[(*n)++] = xstrndup(p, len);
        }
        p += len;
    }
}

static Swarmc__HealthConfig *health(Swarmc__ContainerSpec *c)
{
    if (c->healthcheck == NULL) {
        c->healthcheck = NEW_MSG(Swarmc__HealthConfig, swarmc__health_config__init);
    }
    return c->healthcheck;
}

static void port_add(Swarmc__EndpointSpec *e, Swarmc__PortConfig *pc)
{
    /* replace a port with the same target and protocol (update semantics) */
    for (size_t i = 0; i < e->n_ports; i++) {
        if (e->ports[i]->target_port == pc->target_port && e->ports[i]->protocol == pc->protocol) {
            free_msg(e->ports[i]);
            e->ports[i] = pc;
            return;
        }
    }
    e->ports = xgrow(e->ports, e->n_ports, sizeof *e->ports);
    e->ports[e->n_ports++] = pc;
}

static int port_rm(Swarmc__EndpointSpec *e, const char *v, struct swc_err *err)
{
    Swarmc__PortConfig *pc = NULL;
    bool proto_given = strchr(v, '/') != NULL;
    /* "80", "80/udp", or a full spec whose target is used */
    int rv = swc_spec_parse_port("publish-rm", v, &pc, err);
    if (rv != 0) {
        return rv;
    }
    size_t w = 0;
    for (size_t i = 0; i < e->n_ports; i++) {
        Swarmc__PortConfig *p = e->ports[i];
        uint32_t want =
            strchr(v, '=') == NULL && strchr(v, ':') != NULL ? pc->published_port : pc->target_port;
        uint32_t have =
            strchr(v, '=') == NULL && strchr(v, ':') != NULL ? p->published_port : p->target_port;
        if (have == want && (!proto_given || p->protocol == pc->protocol)) {
            free_msg(p);
        } else {
            e->ports[w++] = p;
        }
    }
    e->n_ports = w;
    free_msg(pc);
    return 0;
}

static void mount_add(Swarmc__ContainerSpec *c, Swarmc__Mount *m)
{
    for (size_t i = 0; i < c->n_mounts; i++) {
        if (strcmp(c->mounts[i]->target, m->target) == 0) {
            free_msg(c->mounts[i]);
            c->mounts[i] = m;
            return;
        }
    }
    c->mounts = xgrow(c->mounts, c->n_mounts, sizeof *c->mounts);
    c->mounts[c->n_mounts++] = m;
}

static void mount_rm(Swarmc__ContainerSpec *c, const char *target)
{
    size_t w = 0;
    for (size_t i = 0; i < c->n_mounts; i++) {
        if (strcmp(c->mounts[i]->target, target) == 0) {
            free_msg(c->mounts[i]);
        } else {
            c->mounts[w++] = c->mounts[i];
        }
    }
    c->n_mounts = w;
}

static void secret_rm(Swarmc__ContainerSpec *c, const char *name)
{
    size_t w = 0;
    for (size_t i = 0; i < c->n_secrets; i++) {
        if (strcmp(c->secrets[i]->secret_name, name) == 0) {
            free_msg(c->secrets[i]);
        } else {
            c->secrets[w++] = c->secrets[i];
        }
    }
    c->n_secrets = w;
}

static void config_rm(Swarmc__ContainerSpec *c, const char *name)
{
    size_t w = 0;
    for (size_t i = 0; i < c->n_configs; i++) {
        if (strcmp(c->configs[i]->config_name, name) == 0) {
            free_msg(c->configs[i]);
        } else {
            c->configs[w++] = c->configs[i];
        }
    }
    c->n_configs = w;
}

static void env_add(Swarmc__ContainerSpec *c, const char *v)
{
    strv_remove(c->env, &c->n_env, v, env_key_eq);
    strv_push(&c->env, &c->n_env, v);
}

static void label_kv(const char *v, char *key, size_t klen, const char **value)
{
    const char *eq = strchr(v, '=');
    size_t n = eq ? (size_t)(eq - v) : strlen(v);
    if (n >= klen) {
        n = klen - 1;
    }
    memcpy(key, v, n);
    key[n] = '\0';
    *value = eq ? eq + 1 : "";
}

static int apply_update_cfg(Swarmc__UpdateConfig *u, int id, const char *flag, const char *v,
                            bool rollback, struct swc_err *err)
{
    uint64_t n;
    switch (id) {
    case SF_UPDATE_PARALLELISM:
    case SF_ROLLBACK_PARALLELISM:
        if (swc_flag_uint(flag, v, UINT32_MAX, &n, err) != 0) {
            return SWC_EINVAL;
        }
        u->parallelism = n;
        return 0;
    case SF_UPDATE_DELAY:
    case SF_ROLLBACK_DELAY:
        return swc_flag_duration(flag, v, &u->delay_ns, err);
    case SF_UPDATE_ORDER:
    case SF_ROLLBACK_ORDER:
        return parse_order(flag, v, &u->order, err);
    case SF_UPDATE_FAILURE_ACTION:
    case SF_ROLLBACK_FAILURE_ACTION:
        return parse_failure_action(flag, v, !rollback, &u->failure_action, err);
    case SF_UPDATE_MONITOR:
    case SF_ROLLBACK_MONITOR:
        return swc_flag_duration(flag, v, &u->monitor_ns, err);
    default:
        return swc_flag_ratio(flag, v, &u->max_failure_ratio, err);
    }
}

/* Drop a sub-message the spec did not have and the flags left empty. The
 * parent may already be gone (pruned), so check it through the field. */
#define PRUNE(field, had)                                                                          \
    do {                                                                                           \
        if (!(had) && (field) != NULL &&                                                           \
            protobuf_c_message_get_packed_size(&(field)->base) == 0) {                             \
            free_msg(field);                                                                       \
            (field) = NULL;                                                                        \
        }                                                                                          \
    } while (0)

int swc_spec_service_apply(Swarmc__ServiceSpec *s, const struct swc_flags *f, bool update,
                           struct swc_err *err)
{
    const char *replicas_v = NULL, *max_conc_v = NULL;
    bool health_set = false, no_health = false;
    int rv = 0;
    /* what the spec had before: an update must not add empty sub-messages,
     * they change the encoded task template and would restart every task */
    bool had_task = s->task != NULL, had_ctr = had_task && s->task->container != NULL;
    bool had_res = had_task && s->task->resources != NULL;
    bool had_lim = had_res && s->task->resources->limits != NULL;
    bool had_resv = had_res && s->task->resources->reservations != NULL;
    bool had_restart = had_task && s->task->restart != NULL;
    bool had_place = had_task && s->task->placement != NULL;
    bool had_update = s->update != NULL, had_rollback = s->rollback != NULL;
    bool had_ep = s->endpoint != NULL, had_an = s->annotations != NULL;
    ensure_all(s, false);
    Swarmc__TaskSpec *t = s->task;
    Swarmc__ContainerSpec *c = t->container;
    for (size_t i = 0; i < f->n_vals && rv == 0; i++) {
        const struct swc_flag_def *d = f->vals[i].def;
        const char *v = f->vals[i].value;
        const char *flag = d->name;
        uint64_t n;
        Swarmc__PortConfig *pc;
        Swarmc__Mount *m;
        Swarmc__ServiceSpec__ModeCase mc = SWARMC__SERVICE_SPEC__MODE__NOT_SET;
        char key[256];
        const char *val;
        switch (d->id) {
        case SF_NAME:
            if (v[0] == '\0') {
                rv = swc_err_set(err, SWC_EINVAL, "invalid value \"\" for --name: empty name");
                break;
            }
            str_set(&s->annotations->name, v);
            break;
        case SF_REPLICAS:
            if (swc_flag_uint(flag, v, 1000000, &n, err) != 0) {
                rv = SWC_EINVAL;
            }
            replicas_v = v;
            break;
        case SF_MAX_CONCURRENT:
            if (swc_flag_uint(flag, v, 1000000, &n, err) != 0) {
                rv = SWC_EINVAL;
            }
            max_conc_v = v;
            break;
        case SF_MODE:
            if (parse_mode(v, &mc, err) != 0) {
                rv = SWC_EINVAL;
                break;
            }
            if (update && mc != s->mode_case) {
                rv = swc_err_set(err, SWC_EINVAL,
                                 "--mode cannot be changed by an update: remove the service and "
                                 "create it again");
                break;
            }
            set_mode(s, mc);
            break;
        case SF_ENV:
        case SF_ENV_ADD:
            if (parse_kv(flag, v, true, err) != 0) {
                rv = SWC_EINVAL;
                break;
            }
            if (strchr(v, '=') == NULL) {
                /* Docker: "-e KEY" takes KEY from the client's environment */
                const char *ev = getenv(v);
                char *kv;
                if (ev == NULL) {
                    break;
                }
                kv = xcalloc(strlen(v) + strlen(ev) + 2);
                sprintf(kv, "%s=%s", v, ev);
                env_add(c, kv);
                swc_free(kv);
                break;
            }
            env_add(c, v);
            break;
        case SF_ENV_RM:
            strv_remove(c->env, &c->n_env, v, env_key_eq);
            break;
        case SF_LABEL:
        case SF_LABEL_ADD:
        case SF_CONTAINER_LABEL:
        case SF_CONTAINER_LABEL_ADD:
            if (parse_kv(flag, v, true, err) != 0) {
                rv = SWC_EINVAL;
                break;
            }
            label_kv(v, key, sizeof key, &val);
            if (d->id == SF_LABEL || d->id == SF_LABEL_ADD) {
                annot_labels_set(&s->annotations->labels, &s->annotations->n_labels, key, val);
            } else {
                ctr_labels_set(&c->labels, &c->n_labels, key, val);
            }
            break;
        case SF_LABEL_RM:
            annot_labels_rm(s->annotations->labels, &s->annotations->n_labels, v);
            break;
        case SF_CONTAINER_LABEL_RM:
            ctr_labels_rm(c->labels, &c->n_labels, v);
            break;
        case SF_CONSTRAINT:
        case SF_CONSTRAINT_ADD:
            if (check_constraint(flag, v, err) != 0) {
                rv = SWC_EINVAL;
                break;
            }
            strv_remove(t->placement->constraints, &t->placement->n_constraints, v, str_eq);
            strv_push(&t->placement->constraints, &t->placement->n_constraints, v);
            break;
        case SF_CONSTRAINT_RM:
            strv_remove(t->placement->constraints, &t->placement->n_constraints, v, str_eq);
            break;
        case SF_PLACEMENT_PREF:
            if (strncmp(v, "spread=", 7) != 0 || v[7] == '\0') {
                rv = swc_err_set(err, SWC_EINVAL,
                                 "invalid value \"%s\" for --placement-pref: use "
                                 "spread=node.labels.KEY",
                                 v);
                break;
            } else {
                Swarmc__PlacementPreference *pp =
                    NEW_MSG(Swarmc__PlacementPreference, swarmc__placement_preference__init);
                str_set(&pp->spread, v + 7);
                t->placement->preferences =
                    xgrow(t->placement->preferences, t->placement->n_preferences,
                          sizeof *t->placement->preferences);
                t->placement->preferences[t->placement->n_preferences++] = pp;
            }
            break;
        case SF_REPLICAS_MAX_PER_NODE:
            if (swc_flag_uint(flag, v, UINT32_MAX, &t->placement->max_replicas, err) != 0) {
                rv = SWC_EINVAL;
            }
            break;
        case SF_RESERVE_CPU:
            rv = swc_flag_cpus(flag, v, &t->resources->reservations->nano_cpus, err);
            break;
        case SF_LIMIT_CPU:
            rv = swc_flag_cpus(flag, v, &t->resources->limits->nano_cpus, err);
            break;
        case SF_RESERVE_MEMORY:
            rv = swc_flag_size(flag, v, &t->resources->reservations->memory_bytes, err);
            break;
        case SF_LIMIT_MEMORY:
            rv = swc_flag_size(flag, v, &t->resources->limits->memory_bytes, err);
            break;
        case SF_RESTART_CONDITION:
            rv = parse_restart_condition(v, &t->restart->condition, err);
            break;
        case SF_RESTART_DELAY:
            rv = swc_flag_duration(flag, v, &t->restart->delay_ns, err);
            t->restart->delay_set = true;
            break;
        case SF_RESTART_MAX_ATTEMPTS:
            rv = swc_flag_uint(flag, v, UINT32_MAX, &t->restart->max_attempts, err);
            break;
        case SF_RESTART_WINDOW:
            rv = swc_flag_duration(flag, v, &t->restart->window_ns, err);
            break;
        case SF_UPDATE_PARALLELISM:
        case SF_UPDATE_DELAY:
        case SF_UPDATE_ORDER:
        case SF_UPDATE_FAILURE_ACTION:
        case SF_UPDATE_MONITOR:
        case SF_UPDATE_MAX_FAILURE_RATIO:
            rv = apply_update_cfg(s->update, d->id, flag, v, false, err);
            break;
        case SF_ROLLBACK_PARALLELISM:
        case SF_ROLLBACK_DELAY:
        case SF_ROLLBACK_ORDER:
        case SF_ROLLBACK_FAILURE_ACTION:
        case SF_ROLLBACK_MONITOR:
        case SF_ROLLBACK_MAX_FAILURE_RATIO:
            rv = apply_update_cfg(s->rollback, d->id, flag, v, true, err);
            break;
        case SF_PUBLISH:
        case SF_PUBLISH_ADD:
            rv = swc_spec_parse_port(flag, v, &pc, err);
            if (rv == 0) {
                port_add(s->endpoint, pc);
            }
            break;
        case SF_PUBLISH_RM:
            rv = port_rm(s->endpoint, v, err);
            break;
        case SF_MOUNT:
        case SF_MOUNT_ADD:
            rv = swc_spec_parse_mount(flag, v, &m, err);
            if (rv == 0) {
                mount_add(c, m);
            }
            break;
        case SF_MOUNT_RM:
            mount_rm(c, v);
            break;
        case SF_SECRET:
        case SF_SECRET_ADD: {
            Swarmc__SecretReference *r;
            rv = swc_spec_parse_secret(flag, v, &r, err);
            if (rv == 0) {
                secret_rm(c, r->secret_name);
                c->secrets = xgrow(c->secrets, c->n_secrets, sizeof *c->secrets);
                c->secrets[c->n_secrets++] = r;
            }
            break;
        }
        case SF_SECRET_RM:
            secret_rm(c, v);
            break;
        case SF_CONFIG:
        case SF_CONFIG_ADD: {
            Swarmc__ConfigReference *r;
            rv = swc_spec_parse_config(flag, v, &r, err);
            if (rv == 0) {
                config_rm(c, r->config_name);
                c->configs = xgrow(c->configs, c->n_configs, sizeof *c->configs);
                c->configs[c->n_configs++] = r;
            }
            break;
        }
        case SF_CONFIG_RM:
            config_rm(c, v);
            break;
        case SF_HEALTH_CMD:
            health_set = true;
            strv_clear(&health(c)->test, &health(c)->n_test);
            strv_push(&c->healthcheck->test, &c->healthcheck->n_test, "CMD-SHELL");
            strv_push(&c->healthcheck->test, &c->healthcheck->n_test, v);
            break;
        case SF_HEALTH_INTERVAL:
            health_set = true;
            rv = swc_flag_duration(flag, v, &health(c)->interval_ns, err);
            break;
        case SF_HEALTH_TIMEOUT:
            health_set = true;
            rv = swc_flag_duration(flag, v, &health(c)->timeout_ns, err);
            break;
        case SF_HEALTH_START_PERIOD:
            health_set = true;
            rv = swc_flag_duration(flag, v, &health(c)->start_period_ns, err);
            break;
        case SF_HEALTH_RETRIES:
            health_set = true;
            rv = swc_flag_uint(flag, v, INT32_MAX, &n, err);
            if (rv == 0) {
                health(c)->retries = (int32_t)n;
            }
            break;
        case SF_NO_HEALTHCHECK:
            if (strcmp(v, "true") == 0) {
                no_health = true;
                strv_clear(&health(c)->test, &health(c)->n_test);
                strv_push(&c->healthcheck->test, &c->healthcheck->n_test, "NONE");
            }
            break;
        case SF_STOP_GRACE_PERIOD:
            rv = swc_flag_duration(flag, v, &c->stop_grace_period_ns, err);
            break;
        case SF_STOP_SIGNAL:
            str_set(&c->stop_signal, v);
            break;
        case SF_INIT:
            c->init = strcmp(v, "true") == 0;
            break;
        case SF_READ_ONLY:
            c->read_only = strcmp(v, "true") == 0;
            break;
        case SF_TTY:
            c->tty = strcmp(v, "true") == 0;
            break;
        case SF_USER:
            str_set(&c->user, v);
            break;
        case SF_WORKDIR:
            str_set(&c->dir, v);
            break;
        case SF_HOSTNAME:
            str_set(&c->hostname, v);
            break;
        case SF_ENTRYPOINT:
            split_words(v, &c->command, &c->n_command);
            break;
        case SF_ARGS:
            split_words(v, &c->args, &c->n_args);
            break;
        case SF_IMAGE:
            if (v[0] == '\0') {
                rv = swc_err_set(err, SWC_EINVAL, "invalid value \"\" for --image: empty image");
                break;
            }
            str_set(&c->image, v);
            break;
        case SF_FORCE:
            if (strcmp(v, "true") == 0) {
                t->force_update++;
            }
            break;
        case SF_TIMEOUT: {
            int64_t ns;
            rv = swc_flag_duration(flag, v, &ns, err);
            break;
        }
        default: /* detach, quiet, with-registry-auth, rollback: not spec */
            break;
        }
    }
    if (update) {
        PRUNE(t->resources->limits, had_lim);
        PRUNE(t->resources->reservations, had_resv);
        PRUNE(t->resources, had_res);
        PRUNE(t->restart, had_restart);
        PRUNE(t->placement, had_place);
        PRUNE(t->container, had_ctr);
        PRUNE(s->task, had_task);
        PRUNE(s->update, had_update);
        PRUNE(s->rollback, had_rollback);
        PRUNE(s->endpoint, had_ep);
        PRUNE(s->annotations, had_an);
    }
    if (rv != 0) {
        return rv;
    }
    if (no_health && health_set) {
        return swc_err_set(err, SWC_EINVAL, "--no-healthcheck conflicts with --health-* options");
    }
    if (replicas_v != NULL) {
        uint64_t n = strtoull(replicas_v, NULL, 10);
        if (s->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED) {
            s->replicated->replicas = n;
        } else if (s->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB) {
            s->replicated_job->total_completions = n;
            if (max_conc_v == NULL && !update) {
                s->replicated_job->max_concurrent = n;
            }
        } else {
            return swc_err_set(err, SWC_EINVAL,
                               "--replicas can only be used with replicated or replicated-job "
                               "mode");
        }
    }
    if (max_conc_v != NULL) {
        if (s->mode_case != SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB) {
            return swc_err_set(err, SWC_EINVAL,
                               "--max-concurrent can only be used with replicated-job mode");
        }
        s->replicated_job->max_concurrent = strtoull(max_conc_v, NULL, 10);
    }
    return 0;
}

static void read_opts(const struct swc_flags *f, struct swc_svc_opts *opts)
{
    const char *to = swc_flags_get(f, SF_TIMEOUT);
    memset(opts, 0, sizeof *opts);
    opts->detach = swc_flags_bool(f, SF_DETACH);
    opts->quiet = swc_flags_bool(f, SF_QUIET);
    opts->force = swc_flags_bool(f, SF_FORCE);
    opts->rollback = swc_flags_bool(f, SF_ROLLBACK);
    opts->timeout_ns = SWC_CLI_DEFAULT_TIMEOUT_NS;
    if (to != NULL) {
        swc_parse_duration(to, &opts->timeout_ns); /* checked by apply */
    }
}

int swc_spec_service_create(int argc, char **argv, Swarmc__ServiceSpec **out,
                            struct swc_svc_opts *opts, bool *help, struct swc_err *err)
{
    struct swc_flags f;
    Swarmc__ServiceSpec *s = NULL;
    int rv;
    *out = NULL;
    *help = false;
    rv = swc_flags_parse(swc_service_create_flags, argc, argv, true, &f, err);
    if (rv != 0) {
        goto done;
    }
    if (f.help) {
        *help = true;
        goto done;
    }
    if (f.n_args == 0) {
        rv = swc_err_set(err, SWC_EINVAL,
                         "\"swarmc service create\" requires at least 1 argument: the IMAGE to "
                         "run");
        goto done;
    }
    s = swc_spec_service_new();
    rv = swc_spec_service_apply(s, &f, false, err);
    if (rv != 0) {
        goto done;
    }
    str_set(&s->task->container->image, f.args[0]);
    for (size_t i = 1; i < f.n_args; i++) {
        strv_push(&s->task->container->args, &s->task->container->n_args, f.args[i]);
    }
    read_opts(&f, opts);
    *out = s;
    s = NULL;
done:
    swc_spec_service_free(s);
    swc_flags_free(&f);
    return rv;
}

int swc_spec_service_update_parse(int argc, char **argv, struct swc_flags *flags, const char **ref,
                                  struct swc_svc_opts *opts, bool *help, struct swc_err *err)
{
    int rv;
    Swarmc__ServiceSpec *probe;
    *help = false;
    *ref = NULL;
    rv = swc_flags_parse(swc_service_update_flags, argc, argv, false, flags, err);
    if (rv != 0) {
        return rv;
    }
    if (flags->help) {
        *help = true;
        return 0;
    }
    if (flags->n_args != 1) {
        return swc_err_set(err, SWC_EINVAL,
                           "\"swarmc service update\" requires exactly 1 argument: the SERVICE");
    }
    *ref = flags->args[0];
    read_opts(flags, opts);
    if (opts->rollback) {
        for (size_t i = 0; i < flags->n_vals; i++) {
            int id = flags->vals[i].def->id;
            if (id != SF_ROLLBACK && id != SF_DETACH && id != SF_QUIET && id != SF_TIMEOUT &&
                id != SF_WITH_REGISTRY_AUTH) {
                return swc_err_set(err, SWC_EINVAL, "--rollback cannot be combined with --%s",
                                   flags->vals[i].def->name);
            }
        }
        return 0;
    }
    /* Check every value now, against a scratch spec, so a typo is reported
     * before anything is sent. Mode checks need the real spec (apply). */
    probe = swc_spec_service_new();
    struct swc_flags copy = *flags;
    struct swc_flag_val *vals = swc_calloc(flags->n_vals + 1, sizeof *vals);
    if (vals == NULL) {
        abort();
    }
    copy.vals = vals;
    copy.n_vals = 0;
    for (size_t i = 0; i < flags->n_vals; i++) {
        int id = flags->vals[i].def->id;
        if (id != SF_MODE && id != SF_REPLICAS && id != SF_MAX_CONCURRENT) {
            vals[copy.n_vals++] = flags->vals[i];
        }
    }
    rv = swc_spec_service_apply(probe, &copy, true, err);
    swc_free(vals);
    swc_spec_service_free(probe);
    return rv;
}

int swc_spec_parse_scale(const char *arg, size_t *name_len, uint64_t *replicas, struct swc_err *err)
{
    const char *eq = strchr(arg, '=');
    char *end = NULL;
    if (eq == NULL || eq == arg) {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid scale argument \"%s\": use SERVICE=REPLICAS, e.g. web=5", arg);
    }
    if (!isdigit((unsigned char)eq[1])) {
        goto bad;
    }
    unsigned long long n = strtoull(eq + 1, &end, 10);
    if (*end != '\0' || n > 1000000) {
        goto bad;
    }
    *name_len = (size_t)(eq - arg);
    *replicas = n;
    return 0;
bad:
    return swc_err_set(err, SWC_EINVAL,
                       "invalid scale argument \"%s\": REPLICAS must be a non-negative integer",
                       arg);
}

int swc_spec_node_apply(Swarmc__NodeSpec *spec, const struct swc_flags *f, struct swc_err *err)
{
    if (spec->annotations == NULL) {
        spec->annotations = NEW_MSG(Swarmc__Annotations, swarmc__annotations__init);
    }
    for (size_t i = 0; i < f->n_vals; i++) {
        const char *v = f->vals[i].value;
        const char *flag = f->vals[i].def->name;
        char key[256];
        const char *val;
        switch (f->vals[i].def->id) {
        case NF_AVAILABILITY:
            if (strcmp(v, "active") == 0) {
                spec->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE;
            } else if (strcmp(v, "pause") == 0) {
                spec->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE;
            } else if (strcmp(v, "drain") == 0) {
                spec->availability = SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN;
            } else {
                return swc_err_set(err, SWC_EINVAL,
                                   "invalid value \"%s\" for --availability: use active, pause or "
                                   "drain",
                                   v);
            }
            break;
        case NF_ROLE:
            if (strcmp(v, "worker") == 0) {
                spec->desired_role = SWARMC__NODE_ROLE__NODE_ROLE_WORKER;
            } else if (strcmp(v, "manager") == 0) {
                spec->desired_role = SWARMC__NODE_ROLE__NODE_ROLE_MANAGER;
            } else {
                return swc_err_set(err, SWC_EINVAL,
                                   "invalid value \"%s\" for --role: use worker or manager", v);
            }
            break;
        case NF_LABEL_ADD:
            if (parse_kv(flag, v, true, err) != 0) {
                return SWC_EINVAL;
            }
            label_kv(v, key, sizeof key, &val);
            annot_labels_set(&spec->annotations->labels, &spec->annotations->n_labels, key, val);
            break;
        case NF_LABEL_RM:
            annot_labels_rm(spec->annotations->labels, &spec->annotations->n_labels, v);
            break;
        default:
            break;
        }
    }
    return 0;
}
