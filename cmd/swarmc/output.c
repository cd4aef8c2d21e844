/* CLI output (see output.h).
 *
 * Tables are built as rows of strings and rendered at the end, because a
 * column's width is only known once every row is in (the same approach as
 * Go's tabwriter that Docker uses: padding 3). List views filter on the
 * client: the daemon returns the list and the filter keys stay simple to
 * add. JSON comes from walking protobuf-c descriptors, so a new field in
 * a .proto shows up in `inspect` without touching this file. */
#include "output.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"

static void *xrealloc(void *p, size_t n)
{
    p = swc_realloc(p, n);
    if (p == NULL) {
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = swc_strdup(s ? s : "");
    if (p == NULL) {
        abort();
    }
    return p;
}

/* ---- growable string ------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static char *sb_take(struct sbuf *b)
{
    if (b->p == NULL) {
        return xstrdup("");
    }
    return b->p;
}

/* ---- tables ---------------------------------------------------------------- */

void swc_table_init(struct swc_table *t, size_t ncols, const char *const *header)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->width = swc_calloc(ncols ? ncols : 1, sizeof *t->width);
    if (t->width == NULL) {
        abort();
    }
    swc_table_add(t, header);
}

void swc_table_reserve(struct swc_table *t, size_t rows, size_t text_bytes)
{
    if (rows > t->cap_rows) {
        t->cap_rows = rows;
        t->cells = xrealloc(t->cells, t->cap_rows * t->ncols * sizeof *t->cells);
    }
    if (text_bytes > t->text_cap) {
        t->text_cap = text_bytes;
        t->text = xrealloc(t->text, t->text_cap);
    }
}

/* Display width: count UTF-8 code points, not bytes ("\_" is ASCII). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80) {
            w++;
        }
    }
    return w;
}

void swc_table_add(struct swc_table *t, const char *const *cells)
{
    if (t->nrows == t->cap_rows) {
        /* doubling: a realloc per row copies O(rows^2) bytes on long lists */
        t->cap_rows = t->cap_rows ? t->cap_rows * 2 : 16;
        t->cells = xrealloc(t->cells, t->cap_rows * t->ncols * sizeof *t->cells);
    }
    for (size_t c = 0; c < t->ncols; c++) {
        const char *cell = cells[c] != NULL ? cells[c] : "";
        size_t n = strlen(cell) + 1, w = text_width(cell);
        if (t->text_len + n > t->text_cap) {
            t->text_cap = (t->text_len + n) * 2;
            t->text = xrealloc(t->text, t->text_cap);
        }
        memcpy(t->text + t->text_len, cell, n);
        t->cells[t->nrows * t->ncols + c] = t->text_len;
        t->text_len += n;
        if (w > t->width[c]) {
            t->width[c] = w;
        }
    }
    t->nrows++;
}

/* Render t into a string, or with f into f through a small buffer (a
 * 10,000-row table is a megabyte: building it whole only to copy it to
 * stdout cost page faults, which are slow on these VMs). */
static char *table_out(const struct swc_table *t, FILE *f)
{
    enum { FLUSH_AT = 64 * 1024 };
    struct sbuf b = {0};
    size_t line = 0;
    for (size_t c = 0; c < t->ncols; c++) {
        line += t->width[c] + 3;
    }
    /* one allocation for the whole output in the common (ASCII) case */
    b.cap = f != NULL ? FLUSH_AT + line + 4096 : t->text_len + t->nrows * (line + 1) + 1;
    b.p = xrealloc(NULL, b.cap);
    b.p[0] = '\0';
    for (size_t r = 0; r < t->nrows; r++) {
        size_t line_start = b.len;
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->text + t->cells[r * t->ncols + c];
            sb_puts(&b, cell);
            if (c + 1 < t->ncols) {
                size_t w = text_width(cell), pad = t->width[c] + 3 - w;
                if (b.len + pad + 1 > b.cap) {
                    b.cap = (b.len + pad + 1) * 2;
                    b.p = xrealloc(b.p, b.cap);
                }
                memset(b.p + b.len, ' ', pad);
                b.len += pad;
                b.p[b.len] = '\0';
            }
        }
        /* no trailing spaces when the last cells are empty */
        while (b.len > line_start && b.p[b.len - 1] == ' ') {
            b.p[--b.len] = '\0';
        }
        sb_putn(&b, "\n", 1);
        if (f != NULL && (b.len >= FLUSH_AT || r + 1 == t->nrows)) {
            fwrite(b.p, 1, b.len, f);
            b.len = 0;
        }
    }
    if (f != NULL) {
        swc_free(b.p);
        return NULL;
    }
    return sb_take(&b);
}

char *swc_table_render(const struct swc_table *t)
{
    return table_out(t, NULL);
}

void swc_table_write(const struct swc_table *t, FILE *f)
{
    table_out(t, f);
}

void swc_table_free(struct swc_table *t)
{
    swc_free(t->cells);
    swc_free(t->width);
    swc_free(t->text);
    memset(t, 0, sizeof *t);
}

/* ---- small formatters ------------------------------------------------------- */

static void trunc_id(const char *id, bool no_trunc, char *buf, size_t len)
{
    snprintf(buf, len, "%.*s", no_trunc ? (int)(len - 1) : SWC_OUT_ID_LEN, id ? id : "");
}

void swc_out_human_duration(int64_t span_ns, char *buf, size_t len)
{
    int64_t s = span_ns / SWC_NS_PER_SEC;
    int64_t m = s / 60, h = s / 3600, d = h / 24;
    if (s < 1) {
        snprintf(buf, len, "Less than a second");
    } else if (s == 1) {
        snprintf(buf, len, "1 second");
    } else if (s < 60) {
        snprintf(buf, len, "%lld seconds", (long long)s);
    } else if (m == 1) {
        snprintf(buf, len, "About a minute");
    } else if (m < 60) {
        snprintf(buf, len, "%lld minutes", (long long)m);
    } else if (h == 1) {
        snprintf(buf, len, "About an hour");
    } else if (h < 48) {
        snprintf(buf, len, "%lld hours", (long long)h);
    } else if (d < 14) {
        snprintf(buf, len, "%lld days", (long long)d);
    } else if (d < 90) {
        snprintf(buf, len, "%lld weeks", (long long)(d / 7));
    } else if (d < 730) {
        snprintf(buf, len, "%lld months", (long long)(d / 30));
    } else {
        snprintf(buf, len, "%lld years", (long long)(d / 365));
    }
}

static const struct {
    int state;
    const char *name, *lc;
} task_states[] = {
    {SWARMC__TASK_STATE__TASK_STATE_NEW, "New", "new"},
    {SWARMC__TASK_STATE__TASK_STATE_PENDING, "Pending", "pending"},
    {SWARMC__TASK_STATE__TASK_STATE_ASSIGNED, "Assigned", "assigned"},
    {SWARMC__TASK_STATE__TASK_STATE_ACCEPTED, "Accepted", "accepted"},
    {SWARMC__TASK_STATE__TASK_STATE_PREPARING, "Preparing", "preparing"},
    {SWARMC__TASK_STATE__TASK_STATE_READY, "Ready", "ready"},
    {SWARMC__TASK_STATE__TASK_STATE_STARTING, "Starting", "starting"},
    {SWARMC__TASK_STATE__TASK_STATE_RUNNING, "Running", "running"},
    {SWARMC__TASK_STATE__TASK_STATE_COMPLETE, "Complete", "complete"},
    {SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN, "Shutdown", "shutdown"},
    {SWARMC__TASK_STATE__TASK_STATE_FAILED, "Failed", "failed"},
    {SWARMC__TASK_STATE__TASK_STATE_REJECTED, "Rejected", "rejected"},
    {SWARMC__TASK_STATE__TASK_STATE_REMOVE, "Remove", "remove"},
    {SWARMC__TASK_STATE__TASK_STATE_ORPHANED, "Orphaned", "orphaned"},
};

const char *swc_out_task_state(int state)
{
    for (size_t i = 0; i < sizeof task_states / sizeof task_states[0]; i++) {
        if (task_states[i].state == state) {
            return task_states[i].name;
        }
    }
    return "Unknown";
}

const char *swc_out_task_state_lc(int state)
{
    for (size_t i = 0; i < sizeof task_states / sizeof task_states[0]; i++) {
        if (task_states[i].state == state) {
            return task_states[i].lc;
        }
    }
    return "unknown";
}

static const char *spec_mode(const Swarmc__ServiceSpec *s)
{
    if (s == NULL) {
        return "replicated";
    }
    switch (s->mode_case) {
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL:
        return "global";
    case SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB:
        return "replicated job";
    case SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB:
        return "global job";
    default:
        return "replicated";
    }
}

/* The --mode spelling, for filters ("replicated-job"). */
static const char *mode_flag_name(const Swarmc__ServiceSpec *s)
{
    const char *m = spec_mode(s);
    return strcmp(m, "replicated job") == 0 ? "replicated-job"
           : strcmp(m, "global job") == 0   ? "global-job"
                                            : m;
}

void swc_out_replicas(const Swarmc__Service *svc, const Swarmc__ServiceCounts *counts, char *buf,
                      size_t len)
{
    const Swarmc__ServiceSpec *s = svc->spec;
    unsigned long long running = counts ? counts->running : 0;
    unsigned long long desired = counts ? counts->desired : 0;
    unsigned long long completed = counts ? counts->completed : 0;
    if (s != NULL && s->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED && s->replicated &&
        counts == NULL) {
        desired = s->replicated->replicas;
    }
    if (s != NULL && s->mode_case == SWARMC__SERVICE_SPEC__MODE_REPLICATED_JOB &&
        s->replicated_job) {
        snprintf(buf, len, "%llu/%llu (%llu/%llu completed)", running,
                 (unsigned long long)s->replicated_job->max_concurrent, completed,
                 (unsigned long long)s->replicated_job->total_completions);
    } else if (s != NULL && s->mode_case == SWARMC__SERVICE_SPEC__MODE_GLOBAL_JOB) {
        snprintf(buf, len, "%llu/%llu (%llu/%llu completed)", running, desired, completed, desired);
    } else {
        snprintf(buf, len, "%llu/%llu", running, desired);
    }
}

static const char *proto_name(Swarmc__PortProtocol p)
{
    switch (p) {
    case SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_UDP:
        return "udp";
    case SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_SCTP:
        return "sctp";
    default:
        return "tcp";
    }
}

void swc_out_ports(const Swarmc__EndpointSpec *ep, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    if (ep == NULL) {
        return;
    }
    for (size_t i = 0; i < ep->n_ports && off < len; i++) {
        const Swarmc__PortConfig *p = ep->ports[i];
        char pub[16] = "";
        if (p->published_port != 0) {
            snprintf(pub, sizeof pub, "%u", p->published_port);
        }
        int n =
            snprintf(buf + off, len - off, "%s%s%s->%u/%s", i ? ", " : "",
                     p->publish_mode == SWARMC__PUBLISH_MODE__PUBLISH_MODE_HOST ? "" : "*:", pub,
                     p->target_port, proto_name(p->protocol));
        if (n < 0) {
            break;
        }
        off += (size_t)n;
    }
}

/* ---- filters ----------------------------------------------------------------- */

int swc_out_check_filters(enum swc_out_kind kind, char **filters, size_t n, struct swc_err *err)
{
    static const char *const svc[] = {"name", "mode", "id", NULL};
    static const char *const task[] = {"desired-state", "node", "name", "id", NULL};
    static const char *const node[] = {"role", "name", "id", NULL};
    static const char *const help[] = {"id, name or mode", "desired-state, id, name or node",
                                       "id, name or role"};
    const char *const *keys = kind == SWC_OUT_SERVICES ? svc : kind == SWC_OUT_TASKS ? task : node;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(filters[i], '=');
        bool ok = false;
        if (eq != NULL && eq[1] != '\0') {
            for (size_t k = 0; keys[k] != NULL; k++) {
                if (strlen(keys[k]) == (size_t)(eq - filters[i]) &&
                    strncmp(keys[k], filters[i], (size_t)(eq - filters[i])) == 0) {
                    ok = true;
                }
            }
        }
        if (!ok) {
            return swc_err_set(err, SWC_EINVAL,
                               "invalid filter \"%s\": use KEY=VALUE with KEY one of %s",
                               filters[i], help[kind]);
        }
        if (kind == SWC_OUT_TASKS && strncmp(filters[i], "desired-state=", 14) == 0) {
            const char *v = eq + 1;
            if (strcmp(v, "running") != 0 && strcmp(v, "shutdown") != 0 &&
                strcmp(v, "accepted") != 0 && strcmp(v, "complete") != 0) {
                return swc_err_set(err, SWC_EINVAL,
                                   "invalid filter \"%s\": desired-state is running, shutdown, "
                                   "accepted or complete",
                                   filters[i]);
            }
        }
    }
    return 0;
}

/* True when every filter with this key matches one of its values (filters
 * with the same key are alternatives, different keys must all match). */
static bool filter_ok(const struct swc_out_opts *o, const char *key, const char *const *vals,
                      size_t nvals, bool prefix)
{
    size_t kl = strlen(key);
    bool seen = false, match = false;
    for (size_t i = 0; i < o->n_filters; i++) {
        const char *f = o->filters[i];
        if (strncmp(f, key, kl) != 0 || f[kl] != '=') {
            continue;
        }
        seen = true;
        for (size_t v = 0; v < nvals; v++) {
            const char *want = f + kl + 1;
            if (vals[v] != NULL &&
                (prefix ? strncmp(vals[v], want, strlen(want)) == 0 : strcmp(vals[v], want) == 0)) {
                match = true;
            }
        }
    }
    return !seen || match;
}

/* ---- JSON helpers -------------------------------------------------------------- */

static char *json_take(json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags);
    char *out;
    json_decref(j);
    if (s == NULL) {
        abort();
    }
    out = xstrdup(s);
    free(s); /* jansson's own allocator */
    return out;
}

static char *json_lines(json_t *arr)
{
    char *s = json_take(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = '\0';
    return s;
}

static char *rfc3339(int64_t ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / SWC_NS_PER_SEC);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((ns % SWC_NS_PER_SEC) / SWC_NS_PER_MS));
    return buf;
}

/* ---- service ls ------------------------------------------------------------------ */

char *swc_out_service_states(const Swarmc__ListServicesResponse *r, const char *const *refs,
                             size_t n_refs, const struct swc_out_opts *o)
{
    static const char *const hdr[] = {"ID", "NAME", "STATE", "TASKS"};
    struct swc_table t;
    json_t *arr = o->json ? json_array() : NULL;
    char *out;
    swc_table_init(&t, 4, hdr);
    for (size_t i = 0; i < r->n_services && i < r->n_counts; i++) {
        const Swarmc__Service *s = r->services[i];
        const Swarmc__ServiceCounts *c = r->counts[i];
        const char *name = s->spec && s->spec->annotations ? s->spec->annotations->name : "";
        bool want = n_refs == 0;
        for (size_t k = 0; k < n_refs && !want; k++) {
            want = strcmp(refs[k], name) == 0 ||
                   (refs[k][0] != '\0' && strncmp(s->id, refs[k], strlen(refs[k])) == 0);
        }
        if (!want) {
            continue;
        }
        char id[128], num[32];
        trunc_id(s->id, o->no_trunc, id, sizeof id);
        json_t *states = arr != NULL ? json_object() : NULL;
        for (size_t k = 0; k < c->n_states; k++) {
            const char *st = swc_out_task_state_lc(c->states[k]->state);
            if (states != NULL) {
                json_object_set_new(states, st, json_integer((json_int_t)c->states[k]->count));
            } else {
                snprintf(num, sizeof num, "%llu", (unsigned long long)c->states[k]->count);
                const char *row[] = {id, name, st, num};
                swc_table_add(&t, row);
            }
        }
        if (arr != NULL) {
            json_t *obj = json_object();
            json_object_set_new(obj, "ID", json_string(s->id));
            json_object_set_new(obj, "Name", json_string(name));
            json_object_set_new(obj, "States", states);
            json_array_append_new(arr, obj);
        }
    }
    out = arr != NULL ? json_lines(arr) : swc_table_render(&t);
    swc_table_free(&t);
    return out;
}

char *swc_out_service_ls(const Swarmc__ListServicesResponse *r, const struct swc_out_opts *o)
{
    static const char *const hdr[] = {"ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"};
    struct swc_table t;
    struct sbuf b = {0};
    json_t *arr = o->json ? json_array() : NULL;
    char *out;
    swc_table_init(&t, 6, hdr);
    for (size_t i = 0; i < r->n_services; i++) {
        const Swarmc__Service *s = r->services[i];
        const Swarmc__ServiceCounts *c = NULL;
        const char *name = s->spec && s->spec->annotations ? s->spec->annotations->name : "";
        const char *image = s->spec && s->spec->task && s->spec->task->container
                                ? s->spec->task->container->image
                                : "";
        const char *mode = spec_mode(s->spec);
        const char *mode_flag = mode_flag_name(s->spec);
        char id[128], reps[64], ports[512];
        if (i < r->n_counts && strcmp(r->counts[i]->service_id, s->id) == 0) {
            c = r->counts[i]; /* the manager sends them in service order: no search */
        } else {
            for (size_t k = 0; k < r->n_counts && c == NULL; k++) {
                if (strcmp(r->counts[k]->service_id, s->id) == 0) {
                    c = r->counts[k];
                }
            }
            if (c == NULL && i < r->n_counts && r->counts[i]->service_id[0] == '\0') {
                c = r->counts[i]; /* same order as services */
            }
        }
        const char *ids[] = {s->id}, *names[] = {name}, *modes[] = {mode_flag, mode};
        if (!filter_ok(o, "id", ids, 1, true) || !filter_ok(o, "name", names, 1, true) ||
            !filter_ok(o, "mode", modes, 2, false)) {
            continue;
        }
        trunc_id(s->id, o->no_trunc, id, sizeof id);
        swc_out_replicas(s, c, reps, sizeof reps);
        /* Show the allocated ports (dynamic ones resolved) once the manager
         * has allocated them, else what the spec asks for. */
        if (s->endpoint != NULL && s->endpoint->n_ports > 0) {
            Swarmc__EndpointSpec alloc = SWARMC__ENDPOINT_SPEC__INIT;
            alloc.n_ports = s->endpoint->n_ports;
            alloc.ports = s->endpoint->ports;
            swc_out_ports(&alloc, ports, sizeof ports);
        } else {
            swc_out_ports(s->spec ? s->spec->endpoint : NULL, ports, sizeof ports);
        }
        if (o->quiet) {
            sb_puts(&b, id);
            sb_puts(&b, "\n");
        } else if (arr != NULL) {
            json_t *obj = json_object();
            json_object_set_new(obj, "ID", json_string(s->id));
            json_object_set_new(obj, "Name", json_string(name));
            json_object_set_new(obj, "Mode", json_string(mode));
            json_object_set_new(obj, "Replicas", json_string(reps));
            json_object_set_new(obj, "Image", json_string(image));
            json_object_set_new(obj, "Ports", json_string(ports));
            json_array_append_new(arr, obj);
        } else {
            const char *row[] = {id, name, mode, reps, image, ports};
            swc_table_add(&t, row);
        }
    }
    if (o->quiet) {
        out = sb_take(&b);
    } else if (arr != NULL) {
        out = json_lines(arr);
    } else if (o->stream != NULL) {
        swc_table_write(&t, o->stream);
        out = xstrdup("");
    } else {
        out = swc_table_render(&t);
    }
    swc_table_free(&t);
    return out;
}

/* ---- service ps ------------------------------------------------------------------ */

static int node_entry_cmp(const void *a, const void *b)
{
    const Swarmc__ListTasksResponse__NodeNamesEntry *x =
        *(const Swarmc__ListTasksResponse__NodeNamesEntry *const *)a;
    const Swarmc__ListTasksResponse__NodeNamesEntry *y =
        *(const Swarmc__ListTasksResponse__NodeNamesEntry *const *)b;
    return strcmp(x->key, y->key);
}

/* The node names sorted by id, so that each task's node is a binary search
 * rather than a scan (10,000 tasks on 1,000 nodes). Caller frees. */
static Swarmc__ListTasksResponse__NodeNamesEntry **node_index(const Swarmc__ListTasksResponse *r)
{
    Swarmc__ListTasksResponse__NodeNamesEntry **ix = swc_calloc(r->n_node_names + 1, sizeof *ix);
    if (ix == NULL) {
        abort();
    }
    memcpy(ix, r->node_names, r->n_node_names * sizeof *ix);
    qsort(ix, r->n_node_names, sizeof *ix, node_entry_cmp);
    return ix;
}

static const char *node_name(const Swarmc__ListTasksResponse *r,
                             Swarmc__ListTasksResponse__NodeNamesEntry *const *ix,
                             const char *node_id)
{
    Swarmc__ListTasksResponse__NodeNamesEntry key = {.key = (char *)node_id}, *kp = &key;
    Swarmc__ListTasksResponse__NodeNamesEntry *const *hit =
        bsearch(&kp, ix, r->n_node_names, sizeof *ix, node_entry_cmp);
    return hit != NULL ? (*hit)->value : node_id;
}

/* Slot key: replicated tasks group by slot, global ones by node. */
static int task_cmp(const void *a, const void *b)
{
    const Swarmc__Task *x = *(const Swarmc__Task *const *)a;
    const Swarmc__Task *y = *(const Swarmc__Task *const *)b;
    int c = strcmp(x->service_name, y->service_name);
    if (c != 0) {
        return c;
    }
    if (x->slot != y->slot) {
        return x->slot < y->slot ? -1 : 1;
    }
    if (x->slot == 0) {
        c = strcmp(x->node_id, y->node_id);
        if (c != 0) {
            return c;
        }
    }
    /* newest first: running/desired-running before history */
    int64_t tx = x->meta ? x->meta->created_at : 0, ty = y->meta ? y->meta->created_at : 0;
    if (tx != ty) {
        return tx > ty ? -1 : 1;
    }
    return strcmp(x->id, y->id);
}

static bool same_slot(const Swarmc__Task *a, const Swarmc__Task *b)
{
    return strcmp(a->service_name, b->service_name) == 0 && a->slot == b->slot &&
           (a->slot != 0 || strcmp(a->node_id, b->node_id) == 0);
}

char *swc_out_service_ps(const Swarmc__ListTasksResponse *r, const struct swc_out_opts *o)
{
    static const char *const hdr[] = {
        "ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"};
    struct swc_table t;
    struct sbuf b = {0};
    json_t *arr = o->json ? json_array() : NULL;
    char *out;
    const Swarmc__Task **tasks = swc_calloc(r->n_tasks + 1, sizeof *tasks);
    Swarmc__ListTasksResponse__NodeNamesEntry **nodes = node_index(r);
    size_t n = 0;
    if (tasks == NULL) {
        abort();
    }
    for (size_t i = 0; i < r->n_tasks; i++) {
        const Swarmc__Task *tk = r->tasks[i];
        if (o->n_filters == 0) {
            tasks[n++] = tk; /* no name to format, no node to look up */
            continue;
        }
        const char *ds[] = {swc_out_task_state_lc(tk->desired_state)};
        const char *nd[] = {tk->node_id, node_name(r, nodes, tk->node_id)};
        const char *ids[] = {tk->id};
        char name[256];
        snprintf(name, sizeof name, "%s.%llu", tk->service_name, (unsigned long long)tk->slot);
        const char *nm[] = {name, tk->service_name};
        if (filter_ok(o, "desired-state", ds, 1, false) && filter_ok(o, "node", nd, 2, false) &&
            filter_ok(o, "name", nm, 2, true) && filter_ok(o, "id", ids, 1, true)) {
            tasks[n++] = tk;
        }
    }
    qsort(tasks, n, sizeof *tasks, task_cmp);
    swc_table_init(&t, 8, hdr);
    if (!o->quiet && arr == NULL) {
        swc_table_reserve(&t, n + 1, (n + 1) * 128); /* ~110 bytes a row: no regrowing */
    }
    for (size_t i = 0; i < n; i++) {
        const Swarmc__Task *tk = tasks[i];
        const Swarmc__TaskStatus *st = tk->status;
        bool history = i > 0 && same_slot(tasks[i - 1], tk);
        char id[128], name[300], cur[128], ago[64], errbuf[256], ports[512] = "";
        const char *image = tk->spec && tk->spec->container ? tk->spec->container->image : "";
        const char *node = tk->node_id[0] ? node_name(r, nodes, tk->node_id) : "";
        trunc_id(tk->id, o->no_trunc, id, sizeof id);
        if (tk->slot != 0) {
            snprintf(name, sizeof name, "%s%s.%llu", history ? " \\_ " : "", tk->service_name,
                     (unsigned long long)tk->slot);
        } else {
            char nid[128];
            trunc_id(tk->node_id, o->no_trunc, nid, sizeof nid);
            snprintf(name, sizeof name, "%s%s.%s", history ? " \\_ " : "", tk->service_name, nid);
        }
        swc_out_human_duration(o->now_wall - (st ? st->timestamp : 0), ago, sizeof ago);
        /* docker lower-cases the duration after the state: "Running 5 seconds ago" */
        ago[0] = (char)tolower((unsigned char)ago[0]);
        snprintf(cur, sizeof cur, "%s %s ago", swc_out_task_state(st ? st->state : 0), ago);
        snprintf(errbuf, sizeof errbuf, "%s", st && st->err[0] ? st->err : "");
        if (!o->no_trunc && strlen(errbuf) > 30 && !o->json) {
            /* keep the table readable; --no-trunc shows all of it */
            size_t cut = 29;
            while (cut > 0 && errbuf[cut - 1] == ' ') {
                cut--;
            }
            strcpy(errbuf + cut, "…");
        }
        if (st && st->port_status) {
            Swarmc__EndpointSpec ep = SWARMC__ENDPOINT_SPEC__INIT;
            ep.n_ports = st->port_status->n_ports;
            ep.ports = st->port_status->ports;
            swc_out_ports(&ep, ports, sizeof ports);
        }
        if (o->quiet) {
            sb_puts(&b, id);
            sb_puts(&b, "\n");
        } else if (arr != NULL) {
            json_t *obj = json_object();
            char ts[64];
            json_object_set_new(obj, "ID", json_string(tk->id));
            json_object_set_new(obj, "Name", json_string(name + (history ? 4 : 0)));
            json_object_set_new(obj, "Image", json_string(image));
            json_object_set_new(obj, "Node", json_string(node));
            json_object_set_new(obj, "DesiredState",
                                json_string(swc_out_task_state(tk->desired_state)));
            json_object_set_new(obj, "CurrentState", json_string(cur));
            json_object_set_new(obj, "StateSince",
                                json_string(rfc3339(st ? st->timestamp : 0, ts, sizeof ts)));
            json_object_set_new(obj, "Error", json_string(errbuf));
            json_object_set_new(obj, "Ports", json_string(ports));
            json_array_append_new(arr, obj);
        } else {
            const char *row[] = {id,  name,   image, node, swc_out_task_state(tk->desired_state),
                                 cur, errbuf, ports};
            swc_table_add(&t, row);
        }
    }
    if (o->quiet) {
        out = sb_take(&b);
    } else if (arr != NULL) {
        out = json_lines(arr);
    } else if (o->stream != NULL) {
        swc_table_write(&t, o->stream);
        out = xstrdup("");
    } else {
        out = swc_table_render(&t);
    }
    swc_table_free(&t);
    swc_free(nodes);
    swc_free(tasks);
    return out;
}

/* ---- node ls ---------------------------------------------------------------------- */

static const char *node_state(Swarmc__NodeState s)
{
    switch (s) {
    case SWARMC__NODE_STATE__NODE_STATE_READY:
        return "Ready";
    case SWARMC__NODE_STATE__NODE_STATE_DOWN:
        return "Down";
    case SWARMC__NODE_STATE__NODE_STATE_DISCONNECTED:
        return "Disconnected";
    default:
        return "Unknown";
    }
}

static const char *node_avail(Swarmc__NodeAvailability a)
{
    switch (a) {
    case SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_PAUSE:
        return "Pause";
    case SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_DRAIN:
        return "Drain";
    default:
        return "Active";
    }
}

static const char *manager_status(const Swarmc__Node *n)
{
    if (n->role != SWARMC__NODE_ROLE__NODE_ROLE_MANAGER || n->manager_status == NULL) {
        return "";
    }
    if (n->manager_status->leader) {
        return "Leader";
    }
    switch (n->manager_status->reachability) {
    case SWARMC__REACHABILITY__REACHABILITY_REACHABLE:
        return "Reachable";
    case SWARMC__REACHABILITY__REACHABILITY_UNREACHABLE:
        return "Unreachable";
    default:
        return "Unknown";
    }
}

char *swc_out_node_ls(const Swarmc__ListNodesResponse *r, const struct swc_out_opts *o)
{
    static const char *const hdr[] = {"ID",           "HOSTNAME",       "STATUS",
                                      "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"};
    struct swc_table t;
    struct sbuf b = {0};
    json_t *arr = o->json ? json_array() : NULL;
    char *out;
    swc_table_init(&t, 6, hdr);
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Swarmc__Node *nd = r->nodes[i];
        const char *host = nd->description ? nd->description->hostname : "";
        const char *engine = nd->description && nd->description->engine
                                 ? nd->description->engine->engine_version
                                 : "";
        const char *role = nd->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? "manager" : "worker";
        const char *status = node_state(nd->status ? nd->status->state : 0);
        const char *avail = node_avail(nd->spec ? nd->spec->availability : 0);
        const char *mgr = manager_status(nd);
        const char *spec_name =
            nd->spec && nd->spec->annotations ? nd->spec->annotations->name : "";
        bool self = r->self_id[0] != '\0' && strcmp(r->self_id, nd->id) == 0;
        const char *roles[] = {role}, *names[] = {host, spec_name}, *ids[] = {nd->id};
        char id[128];
        if (!filter_ok(o, "role", roles, 1, false) || !filter_ok(o, "name", names, 2, true) ||
            !filter_ok(o, "id", ids, 1, true)) {
            continue;
        }
        trunc_id(nd->id, o->no_trunc, id, sizeof id);
        if (o->quiet) {
            sb_puts(&b, id);
            sb_puts(&b, "\n");
        } else if (arr != NULL) {
            json_t *obj = json_object();
            json_object_set_new(obj, "ID", json_string(nd->id));
            json_object_set_new(obj, "Self", json_boolean(self));
            json_object_set_new(obj, "Hostname", json_string(host));
            json_object_set_new(obj, "Status", json_string(status));
            json_object_set_new(obj, "Availability", json_string(avail));
            json_object_set_new(obj, "ManagerStatus", json_string(mgr));
            json_object_set_new(obj, "EngineVersion", json_string(engine));
            json_array_append_new(arr, obj);
        } else {
            char idcol[140];
            snprintf(idcol, sizeof idcol, "%s%s", id, self ? " *" : "");
            const char *row[] = {idcol, host, status, avail, mgr, engine};
            swc_table_add(&t, row);
        }
    }
    if (o->quiet) {
        out = sb_take(&b);
    } else if (arr != NULL) {
        out = json_lines(arr);
    } else {
        out = swc_table_render(&t);
    }
    swc_table_free(&t);
    return out;
}

/* ---- generic message -> JSON ------------------------------------------------------- */

static bool is_time_field(const char *name)
{
    size_t n = strlen(name);
    return (n > 3 && strcmp(name + n - 3, "_at") == 0) || strcmp(name, "timestamp") == 0 ||
           strcmp(name, "not_after") == 0 || strcmp(name, "last_execution") == 0;
}

/* "TASK_STATE_RUNNING" of enum TaskState -> "running"; "ON_FAILURE" -> "on-failure". */
static json_t *enum_json(const ProtobufCEnumDescriptor *ed, int value)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, value);
    char prefix[128], out[128];
    size_t pl = 0;
    if (ev == NULL) {
        return json_integer(value);
    }
    for (const char *p = ed->short_name; *p && pl + 2 < sizeof prefix; p++) {
        if (isupper((unsigned char)*p) && p != ed->short_name) {
            prefix[pl++] = '_';
        }
        prefix[pl++] = (char)toupper((unsigned char)*p);
    }
    prefix[pl++] = '_';
    prefix[pl] = '\0';
    const char *name = ev->name;
    if (strncmp(name, prefix, pl) == 0) {
        name += pl;
    }
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof out; i++) {
        out[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
    }
    out[i] = '\0';
    return json_string(out);
}

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
    return d->n_fields == 2 && strcmp(d->fields[0].name, "key") == 0 &&
           strcmp(d->fields[1].name, "value") == 0 && d->fields[0].type == PROTOBUF_C_TYPE_STRING;
}

static json_t *scalar_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    char ts[64];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (is_time_field(f->name)) {
            return json_string(rfc3339(*(const int64_t *)p, ts, sizeof ts));
        }
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return enum_json(f->descriptor, *(const int *)p);
    case PROTOBUF_C_TYPE_STRING:
        return json_string(*(char *const *)p ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_BYTES: {
        char buf[48];
        snprintf(buf, sizeof buf, "<%zu bytes>", ((const ProtobufCBinaryData *)p)->len);
        return json_string(buf);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? swc_out_msg_json(m) : json_null();
    }
    }
    return json_null();
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

/* Is a singular field at its default (omitted from the output)? */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return *(char *const *)p == NULL || (*(char *const *)p)[0] == '\0';
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)p == NULL;
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_ENUM:
        return false; /* enum zero values are meaningful ("active", "any") */
    default: {
        static const char zero[16];
        return memcmp(p, zero, type_size(f->type)) == 0;
    }
    }
}

json_t *swc_out_msg_json(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    json_t *obj = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)msg;
        const void *p = base + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
            if (which != f->id) {
                continue;
            }
            json_object_set_new(obj, f->name, scalar_json(f, p));
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)p;
            if (n == 0) {
                continue;
            }
            if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
                is_map_entry((const ProtobufCMessageDescriptor *)f->descriptor)) {
                json_t *m = json_object();
                for (size_t k = 0; k < n; k++) {
                    const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[k];
                    const ProtobufCMessageDescriptor *ed = e->descriptor;
                    const char *key = *(char *const *)((const char *)e + ed->fields[0].offset);
                    json_object_set_new(
                        m, key,
                        scalar_json(&ed->fields[1], (const char *)e + ed->fields[1].offset));
                }
                json_object_set_new(obj, f->name, m);
                continue;
            }
            json_t *ja = json_array();
            for (size_t k = 0; k < n; k++) {
                json_array_append_new(ja, scalar_json(f, arr + k * type_size(f->type)));
            }
            json_object_set_new(obj, f->name, ja);
            continue;
        }
        if (is_default(f, p)) {
            continue;
        }
        json_object_set_new(obj, f->name, scalar_json(f, p));
    }
    return obj;
}

char *swc_out_inspect(const ProtobufCMessage *const *msgs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, swc_out_msg_json(msgs[i]));
    }
    return json_lines(arr);
}
