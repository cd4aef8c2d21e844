/* The Docker executor's Engine API operations (see docker.h).
 *
 * Each executor operation is one struct dreq (docker_http.c) that may run a
 * few exchanges in a row: prepare creates the container straight away (one
 * round trip when the image is present, which is always used as is); only
 * when the engine answers 404 (no such image) does it pull the image and
 * create again. On a name conflict it inspects the existing container and
 * adopts it when it carries the same task id label. With network mode
 * "none" the container is created with NetworkDisabled, as swarm mode does
 * for a task without networks (no libnetwork sandbox: a much cheaper start,
 * same loopback-only container). Lifecycle events come
 * from ONE long-lived /events stream filtered to our node's containers and
 * to die/oom/health_status/destroy (health probes would otherwise flood it
 * with exec events); it reconnects with `since` so nothing is missed across a
 * short break. When the stream breaks the executor retries with backoff
 * (200 ms doubling to 5 s, jittered), pings the engine before reopening it,
 * and then emits SWC_EXEC_EV_RESYNC: a restarted engine replays nothing from
 * before its restart, so the worker must compare its containers with its
 * tasks. Every reply that is not what the Engine API promises becomes a
 * SWC_E* code with a message naming the operation and what Docker said. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "worker/docker_int.h"

enum kind { K_DESCRIBE, K_PREPARE, K_START, K_INSPECT, K_STOP, K_KILL, K_REMOVE, K_LOGS, K_LIST };
enum { P_PULL, P_CREATE, P_BYNAME };

/* ---------------------------------------------------------------- helpers */

static void finish(struct dreq *q, int code, const char *cid)
{
    swc_exec_cb cb = (swc_exec_cb)q->cb;
    cb(q->data, code, code ? swc_err_msg(&q->err) : NULL, cid ? cid : q->cid);
    dreq_free(q);
}

static struct dreq *new_op(struct docker *d, enum kind k, const char *cid, void *cb, void *data,
                           dreq_done_fn done, const char *what)
{
    struct dreq *q = dreq_new(d, done, "%s", what);
    if (q == NULL) {
        return NULL;
    }
    q->kind = k;
    q->cb = cb;
    q->data = data;
    if (cid != NULL) {
        snprintf(q->cid, sizeof(q->cid), "%s", cid);
    }
    return q;
}

static int send_or_free(struct dreq *q, const char *method, const char *path, const char *json)
{
    int rc = dreq_send(q, method, path, json);
    if (rc != 0) {
        dreq_free(q);
    }
    return rc;
}

static bool valid_cid(const char *cid)
{
    return cid != NULL && cid[0] != '\0' && strlen(cid) < 128 && strchr(cid, '/') == NULL &&
           strchr(cid, '?') == NULL;
}

/* ---------------------------------------------------------------- describe */

static void describe_done(struct dreq *q, int code)
{
    swc_exec_describe_cb cb = (swc_exec_describe_cb)q->cb;
    json_t *j = NULL;
    if (code == 0 && q->status != 200) {
        code = dreq_http_error(q);
    }
    if (code == 0 && (j = dreq_json(q)) == NULL) {
        code = q->err.code;
    }
    if (code == 0 && !json_is_object(j)) {
        code = swc_err_set(&q->err, SWC_EPROTO, "docker: %s: reply is not a JSON object", q->what);
    }
    if (code != 0) {
        cb(q->data, code, swc_err_msg(&q->err), NULL);
    } else {
        Swarmc__NodeDescription nd = SWARMC__NODE_DESCRIPTION__INIT;
        Swarmc__Platform p = SWARMC__PLATFORM__INIT;
        Swarmc__Resources r = SWARMC__RESOURCES__INIT;
        Swarmc__EngineDescription e = SWARMC__ENGINE_DESCRIPTION__INIT;
        Swarmc__EngineDescription__LabelsEntry *ents = NULL, **eptrs = NULL;
        char **copies = NULL;
        json_t *labels = json_object_get(j, "Labels");
        size_t nl = json_is_array(labels) ? json_array_size(labels) : 0, k = 0;
        const char *s;

        nd.hostname = (char *)((s = json_string_value(json_object_get(j, "Name"))) ? s : "");
        p.os = (char *)((s = json_string_value(json_object_get(j, "OSType"))) ? s : "linux");
        p.arch = (char *)((s = json_string_value(json_object_get(j, "Architecture"))) ? s : "");
        r.nano_cpus = json_integer_value(json_object_get(j, "NCPU")) * 1000000000LL;
        r.memory_bytes = json_integer_value(json_object_get(j, "MemTotal"));
        e.engine_version =
            (char *)((s = json_string_value(json_object_get(j, "ServerVersion"))) ? s : "");
        if (nl > 0) {
            ents = swc_calloc(nl, sizeof(*ents));
            eptrs = swc_calloc(nl, sizeof(*eptrs));
            copies = swc_calloc(nl, sizeof(*copies));
        }
        for (size_t i = 0; ents && eptrs && copies && i < nl; i++) {
            const char *kv = json_string_value(json_array_get(labels, i));
            char *eq;
            if (kv == NULL || (copies[k] = swc_strdup(kv)) == NULL) {
                continue;
            }
            swarmc__engine_description__labels_entry__init(&ents[k]);
            eq = strchr(copies[k], '=');
            if (eq) {
                *eq = '\0';
            }
            ents[k].key = copies[k];
            ents[k].value = eq ? eq + 1 : "";
            eptrs[k] = &ents[k];
            k++;
        }
        e.n_labels = k;
        e.labels = eptrs;
        nd.platform = &p;
        nd.resources = &r;
        nd.engine = &e;
        cb(q->data, 0, NULL, &nd);
        for (size_t i = 0; copies && i < k; i++) {
            swc_free(copies[i]);
        }
        swc_free(copies);
        swc_free(ents);
        swc_free(eptrs);
    }
    json_decref(j);
    dreq_free(q);
}

static int d_describe(struct swc_exec *ex, swc_exec_describe_cb cb, void *data)
{
    struct docker *d = (struct docker *)ex;
    struct dreq *q =
        new_op(d, K_DESCRIBE, NULL, (void *)cb, data, describe_done, "describe node (GET /info)");
    if (q == NULL) {
        return SWC_ENOMEM;
    }
    return send_or_free(q, "GET", "/info", NULL);
}

/* ---------------------------------------------------------------- prepare */

static json_t *str_array(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_array_append_new(a, json_string(v[i] ? v[i] : ""));
    }
    return a;
}

/* Build the /containers/create body for task; NULL on OOM or a bad spec
 * (message in err). */
static char *create_body(struct docker *d, const Swarmc__Task *t, struct swc_err *err)
{
    const Swarmc__ContainerSpec *c = t->spec->container;
    json_t *root = json_object(), *hc = json_object(), *labels = json_object(),
           *mounts = json_array();
    char *out = NULL;
    char slot[32];

    if (!root || !hc || !labels || !mounts) {
        goto oom;
    }
    json_object_set_new(root, "Image", json_string(c->image));
    for (size_t i = 0; i < c->n_labels; i++) {
        json_object_set_new(labels, c->labels[i]->key, json_string(c->labels[i]->value));
    }
    json_object_set_new(labels, SWC_LABEL_TASK_ID, json_string(t->id));
    json_object_set_new(labels, SWC_LABEL_SERVICE_ID,
                        json_string(t->service_id ? t->service_id : ""));
    json_object_set_new(labels, SWC_LABEL_SERVICE_NAME,
                        json_string(t->service_name ? t->service_name : ""));
    json_object_set_new(labels, SWC_LABEL_NODE_ID, json_string(d->node_id));
    snprintf(slot, sizeof(slot), "%" PRIu64, t->slot);
    json_object_set_new(labels, "swarmc.task.slot", json_string(slot));
    json_object_set_new(root, "Labels", labels);
    labels = NULL;
    if (c->n_env > 0) {
        json_object_set_new(root, "Env", str_array(c->env, c->n_env));
    }
    if (c->n_command > 0) {
        json_object_set_new(root, "Entrypoint", str_array(c->command, c->n_command));
    }
    if (c->n_args > 0) {
        json_object_set_new(root, "Cmd", str_array(c->args, c->n_args));
    }
    if (c->hostname && c->hostname[0]) {
        json_object_set_new(root, "Hostname", json_string(c->hostname));
    }
    if (c->dir && c->dir[0]) {
        json_object_set_new(root, "WorkingDir", json_string(c->dir));
    }
    if (c->user && c->user[0]) {
        json_object_set_new(root, "User", json_string(c->user));
    }
    if (c->tty) {
        json_object_set_new(root, "Tty", json_true());
    }
    if (c->stop_signal && c->stop_signal[0]) {
        json_object_set_new(root, "StopSignal", json_string(c->stop_signal));
    }
    {
        int64_t grace = c->stop_grace_period_ns > 0 ? c->stop_grace_period_ns : 10 * SWC_NS_PER_SEC;
        json_object_set_new(root, "StopTimeout",
                            json_integer((grace + SWC_NS_PER_SEC - 1) / SWC_NS_PER_SEC));
    }
    if (c->healthcheck && c->healthcheck->n_test > 0) {
        const Swarmc__HealthConfig *h = c->healthcheck;
        json_t *hj = json_object();
        json_object_set_new(hj, "Test", str_array(h->test, h->n_test));
        if (h->interval_ns) {
            json_object_set_new(hj, "Interval", json_integer(h->interval_ns));
        }
        if (h->timeout_ns) {
            json_object_set_new(hj, "Timeout", json_integer(h->timeout_ns));
        }
        if (h->retries) {
            json_object_set_new(hj, "Retries", json_integer(h->retries));
        }
        if (h->start_period_ns) {
            json_object_set_new(hj, "StartPeriod", json_integer(h->start_period_ns));
        }
        json_object_set_new(root, "Healthcheck", hj);
    }
    for (size_t i = 0; i < c->n_mounts; i++) {
        const Swarmc__Mount *m = c->mounts[i];
        json_t *mj = json_object();
        const char *type = m->type == SWARMC__MOUNT_TYPE__MOUNT_TYPE_BIND     ? "bind"
                           : m->type == SWARMC__MOUNT_TYPE__MOUNT_TYPE_VOLUME ? "volume"
                                                                              : "tmpfs";
        if (m->target == NULL || m->target[0] != '/') {
            json_decref(mj);
            swc_err_set(err, SWC_EINVAL, "mount %zu: target must be an absolute path", i);
            goto fail;
        }
        json_object_set_new(mj, "Type", json_string(type));
        if (m->source && m->source[0]) {
            json_object_set_new(mj, "Source", json_string(m->source));
        }
        json_object_set_new(mj, "Target", json_string(m->target));
        if (m->read_only) {
            json_object_set_new(mj, "ReadOnly", json_true());
        }
        if (m->type == SWARMC__MOUNT_TYPE__MOUNT_TYPE_TMPFS &&
            (m->tmpfs_size_bytes > 0 || m->tmpfs_mode != 0)) {
            json_t *to = json_object();
            if (m->tmpfs_size_bytes > 0) {
                json_object_set_new(to, "SizeBytes", json_integer(m->tmpfs_size_bytes));
            }
            if (m->tmpfs_mode != 0) {
                /* the Engine wants the mode as a plain (decimal) number */
                json_object_set_new(to, "Mode", json_integer(m->tmpfs_mode));
            }
            json_object_set_new(mj, "TmpfsOptions", to);
        }
        json_array_append_new(mounts, mj);
    }
    if (json_array_size(mounts) > 0) {
        json_object_set(hc, "Mounts", mounts);
    }
    if (t->spec->resources && t->spec->resources->limits) {
        const Swarmc__Resources *l = t->spec->resources->limits;
        if (l->nano_cpus > 0) {
            json_object_set_new(hc, "NanoCpus", json_integer(l->nano_cpus));
        }
        if (l->memory_bytes > 0) {
            json_object_set_new(hc, "Memory", json_integer(l->memory_bytes));
        }
    }
    if (c->init) {
        json_object_set_new(hc, "Init", json_true());
    }
    if (c->read_only) {
        json_object_set_new(hc, "ReadonlyRootfs", json_true());
    }
    if (d->network_mode != NULL && d->network_mode[0]) {
        json_object_set_new(hc, "NetworkMode", json_string(d->network_mode));
    }
    if (d->network_mode != NULL && strcmp(d->network_mode, "none") == 0) {
        /* No network for the task: like swarm mode for a task without networks,
         * tell the engine not to set up networking at all. The container still
         * gets its own network namespace with only loopback (runc brings lo up),
         * exactly what NetworkMode "none" gives, but without a libnetwork sandbox,
         * whose namespace creation and OCI prestart hook each re-execute dockerd:
         * measured here, that halved the cost of a container start. */
        json_object_set_new(root, "NetworkDisabled", json_true());
    }
    json_object_set(root, "HostConfig", hc);
    out = json_dumps(root, JSON_COMPACT);
    if (out == NULL) {
        goto oom;
    }
    goto fail; /* common cleanup */
oom:
    swc_err_set(err, SWC_ENOMEM, "out of memory");
fail:
    json_decref(labels);
    json_decref(mounts);
    json_decref(hc);
    json_decref(root);
    return out;
}

static void prepare_fail(struct dreq *q, int code)
{
    finish(q, code, "");
}

static void prepare_step(struct dreq *q, int step);

static bool pull_failed(struct dreq *q, char *msg, size_t size)
{
    /* the pull reply is a stream of JSON objects; an error is one with "error" */
    const char *p = (const char *)q->body.data, *end = p + q->body.len;
    bool failed = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_t *j = json_loadb(p, n, 0, NULL);
        const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
        if (e != NULL) {
            snprintf(msg, size, "%s", e);
            failed = true;
        }
        json_decref(j);
        p += n + 1;
    }
    return failed;
}

static void prepare_done(struct dreq *q, int code)
{
    char msg[256];
    json_t *j = NULL;
    const char *id;

    if (code != 0) {
        prepare_fail(q, code);
        return;
    }
    switch (q->step) {
    case P_PULL:
        if (q->status != 200) {
            prepare_fail(q, dreq_http_error(q));
        } else if (pull_failed(q, msg, sizeof(msg))) {
            prepare_fail(q, swc_err_set(&q->err, SWC_EDOCKER, "docker: %s: %s", q->what, msg));
        } else {
            q->pulled = true;
            prepare_step(q, P_CREATE);
        }
        return;
    case P_CREATE:
        if (q->status == 404 && !q->pulled) {
            prepare_step(q, P_PULL); /* no such image: pull it, then create again */
            return;
        }
        if (q->status == 409) {
            prepare_step(q, P_BYNAME); /* created before (we restarted): adopt it */
            return;
        }
        if (q->status != 201 && q->status != 200) {
            prepare_fail(q, dreq_http_error(q));
            return;
        }
        break;
    case P_BYNAME:
        if (q->status != 200) {
            prepare_fail(q, dreq_http_error(q));
            return;
        }
        break;
    }
    j = dreq_json(q);
    if (j == NULL) {
        prepare_fail(q, q->err.code);
        return;
    }
    id = json_string_value(json_object_get(j, "Id"));
    if (id == NULL || id[0] == '\0' || strlen(id) >= sizeof(q->cid)) {
        json_decref(j);
        prepare_fail(
            q, swc_err_set(&q->err, SWC_EPROTO, "docker: %s: reply has no container Id", q->what));
        return;
    }
    if (q->step == P_BYNAME) {
        const char *tid = json_string_value(json_object_get(
            json_object_get(json_object_get(j, "Config"), "Labels"), SWC_LABEL_TASK_ID));
        if (tid == NULL || strcmp(tid, q->task_id) != 0) {
            json_decref(j);
            prepare_fail(q, swc_err_set(&q->err, SWC_EEXIST,
                                        "docker: create container %s: the name is used by a "
                                        "container that is not this task's",
                                        q->name));
            return;
        }
    }
    snprintf(q->cid, sizeof(q->cid), "%s", id);
    json_decref(j);
    finish(q, 0, q->cid);
}

static void prepare_step(struct dreq *q, int step)
{
    char path[1400];
    char *e1 = NULL;
    int rc;

    q->step = step;
    switch (step) {
    case P_PULL:
        e1 = docker_escape(q->image);
        snprintf(q->what, sizeof(q->what), "pull image %s", q->image);
        snprintf(path, sizeof(path), "/images/create?fromImage=%s", e1 ? e1 : "");
        q->timeout_ns = q->d->pull_timeout_ns;
        rc = e1 ? dreq_send(q, "POST", path, NULL) : SWC_ENOMEM;
        break;
    case P_CREATE:
        e1 = docker_escape(q->name);
        snprintf(q->what, sizeof(q->what), "create container %s", q->name);
        snprintf(path, sizeof(path), "/containers/create?name=%s", e1 ? e1 : "");
        q->timeout_ns = q->d->op_timeout_ns;
        rc = e1 ? dreq_send(q, "POST", path, q->create_body) : SWC_ENOMEM;
        break;
    default:
        e1 = docker_escape(q->name);
        snprintf(q->what, sizeof(q->what), "inspect container %s", q->name);
        snprintf(path, sizeof(path), "/containers/%s/json", e1 ? e1 : "");
        rc = e1 ? dreq_send(q, "GET", path, NULL) : SWC_ENOMEM;
        break;
    }
    swc_free(e1);
    if (rc != 0) {
        /* we are inside a completion: report through the callback */
        swc_err_set(&q->err, rc, "docker: %s: %s", q->what, swc_strerror(rc));
        prepare_fail(q, rc);
    }
}

static int d_prepare(struct swc_exec *ex, const Swarmc__Task *t, swc_exec_cb cb, void *data)
{
    struct docker *d = (struct docker *)ex;
    struct dreq *q;
    struct swc_err err = {0};
    int rc;

    if (t->id == NULL || strlen(t->id) >= 64 || t->spec == NULL || t->spec->container == NULL ||
        t->spec->container->image == NULL || t->spec->container->image[0] == '\0' ||
        strlen(t->spec->container->image) >= 512) {
        return SWC_EINVAL;
    }
    q = new_op(d, K_PREPARE, NULL, (void *)cb, data, prepare_done, "prepare task");
    if (q == NULL) {
        return SWC_ENOMEM;
    }
    snprintf(q->task_id, sizeof(q->task_id), "%s", t->id);
    snprintf(q->image, sizeof(q->image), "%s", t->spec->container->image);
    if (swc_exec_container_name(t, q->name, sizeof(q->name)) != 0) {
        dreq_free(q);
        return SWC_EINVAL;
    }
    q->create_body = create_body(d, t, &err);
    if (q->create_body == NULL) {
        dreq_free(q);
        return err.code ? err.code : SWC_ENOMEM;
    }
    q->step = P_CREATE;
    {
        char *e1 = docker_escape(q->name);
        char path[1400];
        if (e1 == NULL) {
            dreq_free(q);
            return SWC_ENOMEM;
        }
        snprintf(q->what, sizeof(q->what), "create container %s", q->name);
        snprintf(path, sizeof(path), "/containers/create?name=%s", e1);
        swc_free(e1);
        rc = send_or_free(q, "POST", path, q->create_body);
    }
    return rc;
}

/* ---------------------------------------------------------------- start/stop/kill/remove */

static void simple_done(struct dreq *q, int code)
{
    if (code == 0) {
        long s = q->status;
        bool ok = (s >= 200 && s < 300) ||
                  (s == 304 && (q->kind == K_START || q->kind == K_STOP)) ||
                  (s == 409 && q->kind == K_KILL) || (s == 404 && q->kind == K_REMOVE);
        if (!ok) {
            code = dreq_http_error(q);
        }
    }
    finish(q, code, NULL);
}

static int simple_op(struct docker *d, enum kind k, const char *cid, const char *method,
                     const char *verb, const char *suffix, swc_exec_cb cb, void *data,
                     int64_t extra_timeout_ns)
{
    struct dreq *q;
    char path[512], what[256];
    if (!valid_cid(cid)) {
        return SWC_EINVAL;
    }
    snprintf(what, sizeof(what), "%s container %s", verb, cid);
    q = new_op(d, k, cid, (void *)cb, data, simple_done, what);
    if (q == NULL) {
        return SWC_ENOMEM;
    }
    q->timeout_ns += extra_timeout_ns;
    snprintf(path, sizeof(path), "/containers/%s%s", cid, suffix);
    return send_or_free(q, method, path, NULL);
}

static int d_start(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data)
{
    return simple_op((struct docker *)ex, K_START, cid, "POST", "start", "/start", cb, data, 0);
}

static int d_shutdown(struct swc_exec *ex, const char *cid, const char *sig, int64_t grace_ns,
                      swc_exec_cb cb, void *data)
{
    /* API 1.41 stop takes no signal: the stop signal is set at create time */
    char suffix[48];
    snprintf(suffix, sizeof(suffix), "/stop?t=%ld",
             (long)((grace_ns + SWC_NS_PER_SEC - 1) / SWC_NS_PER_SEC));
    return simple_op((struct docker *)ex, K_STOP, cid, "POST", "stop", suffix, cb, data, grace_ns);
}

static int d_terminate(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data)
{
    return simple_op((struct docker *)ex, K_KILL, cid, "POST", "kill", "/kill", cb, data, 0);
}

static int d_remove(struct swc_exec *ex, const char *cid, swc_exec_cb cb, void *data)
{
    return simple_op((struct docker *)ex, K_REMOVE, cid, "DELETE", "remove", "?force=1&v=1", cb,
                     data, 0);
}

/* ---------------------------------------------------------------- inspect / list */

static enum swc_exec_health parse_health(const char *s)
{
    if (s == NULL) {
        return SWC_EXEC_HEALTH_NONE;
    }
    if (strcmp(s, "healthy") == 0) {
        return SWC_EXEC_HEALTH_HEALTHY;
    }
    if (strcmp(s, "unhealthy") == 0) {
        return SWC_EXEC_HEALTH_UNHEALTHY;
    }
    if (strcmp(s, "starting") == 0) {
        return SWC_EXEC_HEALTH_STARTING;
    }
    return SWC_EXEC_HEALTH_NONE;
}

static void inspect_done(struct dreq *q, int code)
{
    swc_exec_inspect_cb cb = (swc_exec_inspect_cb)q->cb;
    json_t *j = NULL, *state;
    struct swc_exec_cstate st = {0};
    if (code == 0 && q->status != 200) {
        code = dreq_http_error(q);
    }
    if (code == 0 && (j = dreq_json(q)) == NULL) {
        code = q->err.code;
    }
    if (code == 0) {
        const char *id = json_string_value(json_object_get(j, "Id"));
        const char *status;
        state = json_object_get(j, "State");
        if (id == NULL || !json_is_object(state)) {
            code = swc_err_set(&q->err, SWC_EPROTO, "docker: %s: reply has no Id/State", q->what);
        } else {
            st.container_id = id;
            st.task_id = json_string_value(json_object_get(
                json_object_get(json_object_get(j, "Config"), "Labels"), SWC_LABEL_TASK_ID));
            if (st.task_id == NULL) {
                st.task_id = "";
            }
            st.running = json_is_true(json_object_get(state, "Running"));
            status = json_string_value(json_object_get(state, "Status"));
            st.exited =
                status != NULL && (strcmp(status, "exited") == 0 || strcmp(status, "dead") == 0);
            st.exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
            st.oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
            st.health = parse_health(
                json_string_value(json_object_get(json_object_get(state, "Health"), "Status")));
        }
    }
    cb(q->data, code, code ? swc_err_msg(&q->err) : NULL, code ? NULL : &st);
    json_decref(j);
    dreq_free(q);
}

static int d_inspect(struct swc_exec *ex, const char *cid, swc_exec_inspect_cb cb, void *data)
{
    struct docker *d = (struct docker *)ex;
    struct dreq *q;
    char path[256];
    if (!valid_cid(cid)) {
        return SWC_EINVAL;
    }
    snprintf(path, sizeof(path), "inspect container %s", cid);
    q = new_op(d, K_INSPECT, cid, (void *)cb, data, inspect_done, path);
    if (q == NULL) {
        return SWC_ENOMEM;
    }
    snprintf(path, sizeof(path), "/containers/%s/json", cid);
    return send_or_free(q, "GET", path, NULL);
}

static void list_done(struct dreq *q, int code)
{
    swc_exec_list_cb cb = (swc_exec_list_cb)q->cb;
    json_t *j = NULL;
    struct swc_exec_cstate *list = NULL;
    size_t n = 0, k = 0;
    if (code == 0 && q->status != 200) {
        code = dreq_http_error(q);
    }
    if (code == 0 && (j = dreq_json(q)) == NULL) {
        code = q->err.code;
    }
    if (code == 0 && !json_is_array(j)) {
        code = swc_err_set(&q->err, SWC_EPROTO, "docker: %s: reply is not a JSON array", q->what);
    }
    if (code == 0 && (n = json_array_size(j)) > 0) {
        list = swc_calloc(n, sizeof(*list));
        if (list == NULL) {
            code = swc_err_set(&q->err, SWC_ENOMEM, "docker: %s: out of memory", q->what);
        }
    }
    for (size_t i = 0; code == 0 && i < n; i++) {
        json_t *c = json_array_get(j, i);
        const char *id = json_string_value(json_object_get(c, "Id"));
        const char *state = json_string_value(json_object_get(c, "State"));
        const char *status = json_string_value(json_object_get(c, "Status"));
        const char *tid =
            json_string_value(json_object_get(json_object_get(c, "Labels"), SWC_LABEL_TASK_ID));
        if (id == NULL) {
            continue;
        }
        list[k].container_id = id;
        list[k].task_id = tid ? tid : "";
        list[k].running = state && strcmp(state, "running") == 0;
        list[k].exited = state && (strcmp(state, "exited") == 0 || strcmp(state, "dead") == 0);
        if (status != NULL) {
            const char *p = strstr(status, "Exited (");
            if (p != NULL) {
                list[k].exit_code = atoi(p + 8);
            }
            if (strstr(status, "(unhealthy)")) {
                list[k].health = SWC_EXEC_HEALTH_UNHEALTHY;
            } else if (strstr(status, "(healthy)")) {
                list[k].health = SWC_EXEC_HEALTH_HEALTHY;
            } else if (strstr(status, "(health: starting)")) {
                list[k].health = SWC_EXEC_HEALTH_STARTING;
            }
        }
        k++;
    }
    cb(q->data, code, code ? swc_err_msg(&q->err) : NULL, code ? NULL : list, code ? 0 : k);
    swc_free(list);
    json_decref(j);
    dreq_free(q);
}

static int d_list(struct swc_exec *ex, swc_exec_list_cb cb, void *data)
{
    struct docker *d = (struct docker *)ex;
    struct dreq *q = new_op(d, K_LIST, NULL, (void *)cb, data, list_done, "list our containers");
    char filt[256], *e, path[1024];
    if (q == NULL) {
        return SWC_ENOMEM;
    }
    snprintf(filt, sizeof(filt), "{\"label\":[\"%s=%s\"]}", SWC_LABEL_NODE_ID, d->node_id);
    e = docker_escape(filt);
    if (e == NULL) {
        dreq_free(q);
        return SWC_ENOMEM;
    }
    snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", e);
    swc_free(e);
    return send_or_free(q, "GET", path, NULL);
}

/* ---------------------------------------------------------------- logs */

static bool logs_stream(struct dreq *q, const char *p, size_t n)
{
    while (n > 0) {
        if (q->raw == -1) {
            /* a multiplexed stream starts with a header: type 0-2 then three zeros */
            q->raw = ((unsigned char)p[0] > 2) ? 1 : 0;
        }
        if (q->raw == 1) {
            q->log_cb(q->data, 1, p, n);
            return true;
        }
        if (q->frame_left == 0) {
            size_t take = 8 - q->hdr_len < n ? 8 - q->hdr_len : n;
            memcpy(q->hdr + q->hdr_len, p, take);
            q->hdr_len += take;
            p += take;
            n -= take;
            if (q->hdr_len < 8) {
                return true;
            }
            q->hdr_len = 0;
            q->frame_stream = q->hdr[0] == 2 ? 2 : 1;
            q->frame_left = swc_get_u32(q->hdr + 4);
            continue;
        }
        {
            size_t take = q->frame_left < n ? q->frame_left : n;
            q->log_cb(q->data, q->frame_stream, p, take);
            q->frame_left -= take;
            p += take;
            n -= take;
        }
    }
    return true;
}

static void logs_done(struct dreq *q, int code)
{
    if (code == 0 && (q->status < 200 || q->status >= 300)) {
        code = dreq_http_error(q);
    }
    finish(q, code, NULL);
}

static int d_logs(struct swc_exec *ex, const char *cid, int tail, swc_exec_log_cb log_cb,
                  swc_exec_cb done_cb, void *data)
{
    struct docker *d = (struct docker *)ex;
    struct dreq *q;
    char path[512];
    if (!valid_cid(cid)) {
        return SWC_EINVAL;
    }
    snprintf(path, sizeof(path), "logs of container %s", cid);
    q = new_op(d, K_LOGS, cid, (void *)done_cb, data, logs_done, path);
    if (q == NULL) {
        return SWC_ENOMEM;
    }
    q->log_cb = log_cb;
    q->stream = logs_stream;
    if (tail >= 0) {
        snprintf(path, sizeof(path), "/containers/%s/logs?stdout=1&stderr=1&tail=%d", cid, tail);
    } else {
        snprintf(path, sizeof(path), "/containers/%s/logs?stdout=1&stderr=1", cid);
    }
    return send_or_free(q, "GET", path, NULL);
}

/* ---------------------------------------------------------------- events */

static void events_connect(struct docker *d);
static void retry_cb(uv_timer_t *t);

static void handle_event(struct docker *d, json_t *j)
{
    const char *type = json_string_value(json_object_get(j, "Type"));
    const char *action = json_string_value(json_object_get(j, "Action"));
    json_t *actor = json_object_get(j, "Actor");
    json_t *attrs = json_object_get(actor, "Attributes");
    const char *id = json_string_value(json_object_get(actor, "ID"));
    const char *tid = json_string_value(json_object_get(attrs, SWC_LABEL_TASK_ID));
    json_int_t tn = json_integer_value(json_object_get(j, "timeNano"));
    struct swc_exec_event ev = {0};

    if (tn > 0) {
        snprintf(d->events_since, sizeof(d->events_since), "%" PRId64 ".%09" PRId64,
                 (int64_t)(tn / 1000000000LL), (int64_t)(tn % 1000000000LL));
    }
    if (type == NULL || strcmp(type, "container") != 0 || action == NULL || id == NULL ||
        tid == NULL) {
        return;
    }
    ev.task_id = tid;
    ev.container_id = id;
    if (strcmp(action, "die") == 0) {
        const char *ec = json_string_value(json_object_get(attrs, "exitCode"));
        ev.type = SWC_EXEC_EV_EXIT;
        ev.exit_code = ec ? atoi(ec) : -1;
    } else if (strcmp(action, "oom") == 0) {
        ev.type = SWC_EXEC_EV_OOM;
    } else if (strcmp(action, "destroy") == 0) {
        ev.type = SWC_EXEC_EV_GONE;
    } else if (strncmp(action, "health_status", 13) == 0) {
        if (strstr(action, "unhealthy") != NULL) {
            ev.type = SWC_EXEC_EV_UNHEALTHY;
        } else if (strstr(action, "healthy") != NULL) {
            ev.type = SWC_EXEC_EV_HEALTHY;
        } else {
            return;
        }
    } else {
        return;
    }
    swc_tracef("docker", "event %s for task %s (container %.12s)", action, tid, id);
    if (d->base.event_cb != NULL) {
        d->base.event_cb(d->base.event_data, &ev);
    }
}

/* Inside a parse step: only buffer; docker_events_drain parses. */
static bool events_stream(struct dreq *q, const char *p, size_t n)
{
    if (swc_buf_append(&q->acc, p, n) != 0) {
        swc_err_set(&q->err, SWC_ENOMEM, "docker: events: out of memory");
        return false;
    }
    if (q->acc.len > (1u << 20) && memchr(q->acc.data, '\n', q->acc.len) == NULL) {
        swc_err_set(&q->err, SWC_EPROTO, "docker: events: line longer than 1 MiB");
        return false;
    }
    return true;
}

void docker_events_drain(struct docker *d)
{
    struct dreq *q = d->events;
    uint8_t *nl;
    while (q != NULL && !d->closing && d->events == q && q->acc.len > 0 &&
           (nl = memchr(q->acc.data, '\n', q->acc.len)) != NULL) {
        size_t len = (size_t)(nl - q->acc.data);
        json_t *j = json_loadb((const char *)q->acc.data, len, 0, NULL);
        swc_buf_consume(&q->acc, len + 1);
        if (j != NULL) {
            handle_event(d, j); /* may start requests, or close the executor */
            json_decref(j);
        } else if (len > 0) {
            swc_warnf("docker", "events: skipped a line that is not JSON (%zu bytes)", len);
        }
    }
}

/* Reconnect delays: the first retry comes soon (the engine may only have
 * closed the stream), then doubles up to a ceiling, with +-20 % jitter so a
 * fleet of workers does not hammer a restarting engine in step. */
#define RETRY_FIRST_MS 200
#define RETRY_MAX_MS   5000

static void schedule_retry(struct docker *d)
{
    uint64_t base = d->retry_ms ? d->retry_ms : RETRY_FIRST_MS;
    uint64_t jitter = base / 5,
             delay = base - jitter + (uint64_t)(swc_now_mono() % (2 * jitter + 1));
    d->retry_ms = base * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : base * 2;
    uv_timer_start(&d->retry_timer, retry_cb, delay, 0);
}

static void retry_cb(uv_timer_t *t)
{
    events_connect(t->data);
}

/* The stream broke (or could not be opened): remember since when and why,
 * then retry with backoff. */
static void events_down(struct docker *d, const char *why)
{
    if (d->closing) {
        return;
    }
    if (d->down_since == 0) {
        d->down_since = swc_now_mono();
        swc_warnf("docker", "events stream ended (%s); reconnecting with backoff", why);
    } else {
        swc_debugf("docker", "events stream still down (%s)", why);
    }
    schedule_retry(d);
}

static void events_done(struct dreq *q, int code)
{
    struct docker *d = q->d;
    char why[256];
    if (code != SWC_ECANCELED) {
        docker_events_drain(d); /* what arrived before the stream ended */
    }
    if (code == 0 && (q->status < 200 || q->status >= 300)) {
        code = dreq_http_error(q);
    }
    snprintf(why, sizeof(why), "%s", code ? swc_err_msg(&q->err) : "closed by the engine");
    d->events = NULL;
    dreq_free(q);
    events_down(d, why);
}

/* The engine answers again: reopen the stream from where it stopped and tell
 * the sink that events may have been lost meanwhile (a restarted engine
 * replays nothing from before its restart). */
static void probe_done(struct dreq *q, int code)
{
    struct docker *d = q->d;
    char why[256];
    d->probe = NULL;
    if (code == 0 && (q->status < 200 || q->status >= 300)) {
        code = dreq_http_error(q);
    }
    snprintf(why, sizeof(why), "%s", code ? swc_err_msg(&q->err) : "");
    dreq_free(q);
    if (code == SWC_ECANCELED || d->closing) {
        return;
    }
    if (code != 0) {
        events_down(d, why);
        return;
    }
    {
        int64_t since = d->down_since;
        struct swc_exec_event ev = {0};
        char msg[400];
        double secs = (double)(swc_now_mono() - since) / 1e9;

        d->retry_ms = 0;
        d->down_since = 0; /* so that events_connect opens the stream itself */
        events_connect(d);
        if (d->events == NULL) {
            d->down_since = since; /* not sent: still down, a retry is scheduled */
            return;
        }
        snprintf(msg, sizeof(msg), "the Docker engine was unreachable for %.1f s", secs);
        swc_infof("docker", "events stream reconnected after %.1f s; resynchronizing containers",
                  secs);
        ev.type = SWC_EXEC_EV_RESYNC;
        ev.message = msg;
        if (d->base.event_cb != NULL) {
            d->base.event_cb(d->base.event_data, &ev);
        }
    }
}

static void events_connect(struct docker *d)
{
    struct dreq *q;
    char filt[512], *e, path[1400];
    if (d->closing || d->events != NULL || d->probe != NULL) {
        return;
    }
    if (d->down_since != 0) {
        /* after a break, first make sure the engine answers (cheap), so the
         * resync that follows runs against a live engine */
        q = dreq_new(d, probe_done, "%s", "ping the engine");
        if (q == NULL) {
            schedule_retry(d);
            return;
        }
        q->timeout_ns = 2 * SWC_NS_PER_SEC;
        if (dreq_send(q, "GET", "/_ping", NULL) != 0) {
            dreq_free(q);
            schedule_retry(d);
            return;
        }
        d->probe = q;
        return;
    }
    q = dreq_new(d, events_done, "%s", "events stream");
    if (q == NULL) {
        schedule_retry(d);
        return;
    }
    q->timeout_ns = 0;
    q->stream = events_stream;
    snprintf(filt, sizeof(filt),
             "{\"type\":[\"container\"],\"event\":[\"die\",\"oom\",\"health_status\",\"destroy\"],"
             "\"label\":[\"%s=%s\"]}",
             SWC_LABEL_NODE_ID, d->node_id);
    e = docker_escape(filt);
    if (e == NULL) {
        dreq_free(q);
        schedule_retry(d);
        return;
    }
    if (d->events_since[0]) {
        snprintf(path, sizeof(path), "/events?since=%s&filters=%s", d->events_since, e);
    } else {
        snprintf(path, sizeof(path), "/events?filters=%s", e);
    }
    swc_free(e);
    if (dreq_send(q, "GET", path, NULL) != 0) {
        dreq_free(q);
        schedule_retry(d);
        return;
    }
    d->events = q;
}

/* ---------------------------------------------------------------- lifecycle */

static void d_close(struct swc_exec *ex, void (*close_cb)(struct swc_exec *ex))
{
    struct docker *d = (struct docker *)ex;
    d->close_cb = close_cb;
    d->closing = true; /* refuses new requests, silences the events reconnect */
    uv_timer_stop(&d->retry_timer);
    docker_http_cancel_all(d); /* runs every pending callback with SWC_ECANCELED */
    docker_http_close(d);
}

static const struct swc_exec_ops docker_ops = {
    .name = "docker",
    .describe = d_describe,
    .prepare = d_prepare,
    .start = d_start,
    .inspect = d_inspect,
    .shutdown = d_shutdown,
    .terminate = d_terminate,
    .remove = d_remove,
    .logs = d_logs,
    .list = d_list,
    .close = d_close,
};

const char *swc_docker_socket_from_host(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return NULL;
    }
    if (strncmp(s, "unix://", 7) == 0) {
        return s[7] ? s + 7 : NULL;
    }
    return s[0] == '/' ? s : NULL;
}

static void global_init(void)
{
    static bool done;
    if (!done) {
        done = true;
        json_set_alloc_funcs(swc_malloc, swc_free);
    }
}

int swc_docker_init(struct swc_exec **out, const struct swc_docker_config *cfg, struct swc_err *err)
{
    struct docker *d;
    const char *sock = swc_docker_socket_from_host(cfg->socket_path);
    int rc;

    if (cfg->loop == NULL || sock == NULL || cfg->node_id == NULL || cfg->node_id[0] == '\0' ||
        strlen(cfg->node_id) > 100) {
        return swc_err_set(
            err, SWC_EINVAL,
            "docker executor: a loop, a unix socket path and a node id are required");
    }
    global_init();
    d = swc_calloc(1, sizeof(*d));
    if (d == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "docker executor: out of memory");
    }
    d->base.ops = &docker_ops;
    d->loop = cfg->loop;
    d->sock = swc_strdup(sock);
    d->node_id = swc_strdup(cfg->node_id);
    d->network_mode = cfg->network_mode ? swc_strdup(cfg->network_mode) : NULL;
    d->op_timeout_ns = cfg->op_timeout_ns > 0 ? cfg->op_timeout_ns : 60 * SWC_NS_PER_SEC;
    d->pull_timeout_ns = cfg->pull_timeout_ns > 0 ? cfg->pull_timeout_ns : 300 * SWC_NS_PER_SEC;
    d->no_events = cfg->no_events;
    d->trace_cb = cfg->trace_cb;
    d->trace_data = cfg->trace_data;
    if (d->sock == NULL || d->node_id == NULL || (cfg->network_mode && !d->network_mode)) {
        rc = swc_err_set(err, SWC_ENOMEM, "docker executor: out of memory");
        goto fail;
    }
    rc = docker_http_init(d, err);
    if (rc != 0) {
        goto fail;
    }
    if (!d->no_events) {
        /* replay from a second before now, so that an exit that happens while
         * the stream is still connecting is not missed (duplicates are harmless) */
        snprintf(d->events_since, sizeof(d->events_since), "%" PRId64,
                 (int64_t)(swc_now_wall() / SWC_NS_PER_SEC - 1));
        events_connect(d);
    }
    *out = &d->base;
    return 0;
fail:
    swc_free(d->sock);
    swc_free(d->node_id);
    swc_free(d->network_mode);
    swc_free(d);
    return rc;
}
