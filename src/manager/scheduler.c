/* The scheduler's pure core (see scheduler.h for the design).
 *
 * Layout: struct swc_sched holds node pointers in insertion order plus an id
 * index (uthash). Each node keeps a uthash of per-service counters that also
 * hold a small ring of recent failure times. swc_sched_place sorts the task
 * indexes by (service id, spec version) to find groups, runs the filters once
 * per group, builds the preference tree over the passing nodes (a leaf's heap
 * lives in a slice of one reused candidate array, so the tree costs one small
 * allocation per label value) and places the group one task at a time. */
#include "manager/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/buf.h"

/* uthash allocates through the seam and reports running out of memory
 * instead of exiting: a failed add leaves the table as it was. */
static bool hash_oom;
#define HASH_NONFATAL_OOM        1
#define uthash_nonfatal_oom(elt) (hash_oom = true)
#define uthash_malloc(sz)        swc_malloc(sz)
#define uthash_free(ptr, sz)     swc_free(ptr)
#include <uthash.h>

struct swc_sched_svc {
    char *service_id;
    uint32_t count;
    uint32_t n_fail;
    int64_t fail[SWC_SCHED_MAX_FAILURES]; /* ring of the latest failure times */
    UT_hash_handle hh;
};

struct node_priv {
    struct swc_sched_node pub;
    UT_hash_handle hh; /* by attrs.id */
};

struct swc_sched {
    struct node_priv **nodes;
    size_t n, cap;
    struct node_priv *by_id;
};

/* Reasons a node cannot take a task, in filter order. */
enum reason {
    R_NOT_READY,
    R_NOT_ACTIVE,
    R_CPU,
    R_MEM,
    R_CONSTRAINT,
    R_PLATFORM,
    R_PORTS,
    R_MAX_REPLICAS,
    R_COUNT,
    R_NONE = R_COUNT,
};

static const char *const reason_text[R_COUNT] = {
    [R_NOT_READY] = "node not ready",
    [R_NOT_ACTIVE] = "node paused or drained",
    [R_CPU] = "insufficient cpu",
    [R_MEM] = "insufficient memory",
    [R_CONSTRAINT] = "scheduling constraints not satisfied",
    [R_PLATFORM] = "platform not supported",
    [R_PORTS] = "host-mode port already in use",
    [R_MAX_REPLICAS] = "max replicas per node reached",
};

int swc_sched_create(struct swc_sched **out)
{
    *out = swc_calloc(1, sizeof(**out));
    return *out == NULL ? SWC_ENOMEM : 0;
}

static void free_kv(struct swc_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        swc_free((void *)kv[i].key);
        swc_free((void *)kv[i].value);
    }
    swc_free(kv);
}

static void node_free(struct node_priv *np)
{
    struct swc_sched_node *n = &np->pub;
    struct swc_sched_svc *sv, *tmp;
    HASH_ITER(hh, n->svcs, sv, tmp)
    {
        HASH_DEL(n->svcs, sv);
        swc_free(sv->service_id);
        swc_free(sv);
    }
    swc_free((void *)n->attrs.id);
    swc_free((void *)n->attrs.hostname);
    swc_free((void *)n->attrs.os);
    swc_free((void *)n->attrs.arch);
    free_kv((struct swc_kv *)n->attrs.labels, n->attrs.n_labels);
    free_kv((struct swc_kv *)n->attrs.engine_labels, n->attrs.n_engine_labels);
    swc_free(n->ports);
    swc_free(np);
}

void swc_sched_destroy(struct swc_sched *s)
{
    if (s == NULL)
        return;
    HASH_CLEAR(hh, s->by_id);
    for (size_t i = 0; i < s->n; i++)
        node_free(s->nodes[i]);
    swc_free(s->nodes);
    swc_free(s);
}

static int dup_str(const char *src, const char **dst)
{
    *dst = swc_strdup(src != NULL ? src : "");
    return *dst == NULL ? SWC_ENOMEM : 0;
}

static int dup_kv(const struct swc_kv *src, size_t n, const struct swc_kv **dst)
{
    *dst = NULL;
    if (n == 0)
        return 0;
    struct swc_kv *kv = swc_calloc(n, sizeof(*kv));
    if (kv == NULL)
        return SWC_ENOMEM;
    *dst = kv;
    for (size_t i = 0; i < n; i++) {
        if (dup_str(src[i].key, &kv[i].key) || dup_str(src[i].value, &kv[i].value))
            return SWC_ENOMEM;
    }
    return 0;
}

int swc_sched_node_add(struct swc_sched *s, const struct swc_sched_node_info *info,
                       struct swc_sched_node **out)
{
    struct node_priv *np;
    HASH_FIND_STR(s->by_id, info->id, np);
    if (np != NULL)
        return SWC_EEXIST;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        void *p = swc_realloc(s->nodes, cap * sizeof(*s->nodes));
        if (p == NULL)
            return SWC_ENOMEM;
        s->nodes = p;
        s->cap = cap;
    }
    np = swc_calloc(1, sizeof(*np));
    if (np == NULL)
        return SWC_ENOMEM;
    struct swc_sched_node *n = &np->pub;
    n->attrs.n_labels = info->n_labels;
    n->attrs.n_engine_labels = info->n_engine_labels;
    if (dup_str(info->id, &n->attrs.id) || dup_str(info->hostname, &n->attrs.hostname) ||
        dup_str(info->os, &n->attrs.os) || dup_str(info->arch, &n->attrs.arch) ||
        dup_kv(info->labels, info->n_labels, &n->attrs.labels) ||
        dup_kv(info->engine_labels, info->n_engine_labels, &n->attrs.engine_labels)) {
        if (n->attrs.labels == NULL)
            n->attrs.n_labels = 0;
        if (n->attrs.engine_labels == NULL)
            n->attrs.n_engine_labels = 0;
        node_free(np);
        return SWC_ENOMEM;
    }
    n->attrs.role = info->role;
    n->ready = info->ready;
    n->availability = info->availability;
    n->total_nano_cpus = info->nano_cpus;
    n->total_memory = info->memory_bytes;
    n->index = s->n;
    hash_oom = false;
    HASH_ADD_KEYPTR(hh, s->by_id, n->attrs.id, strlen(n->attrs.id), np);
    if (hash_oom) {
        node_free(np);
        return SWC_ENOMEM;
    }
    s->nodes[s->n++] = np;
    if (out != NULL)
        *out = n;
    return 0;
}

int swc_sched_node_add_pb(struct swc_sched *s, const Swarmc__Node *node,
                          struct swc_sched_node **out)
{
    struct swc_node_attrs a;
    if (swc_node_attrs_from_pb(node, &a) != 0)
        return SWC_ENOMEM;
    struct swc_sched_node_info info = {
        .id = a.id,
        .hostname = a.hostname,
        .role = a.role,
        .os = a.os,
        .arch = a.arch,
        .labels = a.labels,
        .n_labels = a.n_labels,
        .engine_labels = a.engine_labels,
        .n_engine_labels = a.n_engine_labels,
        .ready =
            node->status != NULL && node->status->state == SWARMC__NODE_STATE__NODE_STATE_READY,
        .availability = node->spec != NULL ? (int)node->spec->availability
                                           : SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE,
    };
    if (node->description != NULL && node->description->resources != NULL) {
        info.nano_cpus = node->description->resources->nano_cpus;
        info.memory_bytes = node->description->resources->memory_bytes;
    }
    int rc = swc_sched_node_add(s, &info, out);
    swc_node_attrs_clear(&a);
    return rc;
}

struct swc_sched_node *swc_sched_node_get(struct swc_sched *s, const char *id)
{
    struct node_priv *np;
    HASH_FIND_STR(s->by_id, id, np);
    return np != NULL ? &np->pub : NULL;
}

size_t swc_sched_node_count(const struct swc_sched *s)
{
    return s->n;
}

struct swc_sched_node *swc_sched_node_at(struct swc_sched *s, size_t i)
{
    return i < s->n ? &s->nodes[i]->pub : NULL;
}

static struct swc_sched_svc *svc_find(const struct swc_sched_node *n, const char *service_id)
{
    struct swc_sched_svc *sv;
    HASH_FIND_STR(n->svcs, service_id, sv);
    return sv;
}

static struct swc_sched_svc *svc_get(struct swc_sched_node *n, const char *service_id)
{
    struct swc_sched_svc *sv = svc_find(n, service_id);
    if (sv != NULL)
        return sv;
    sv = swc_calloc(1, sizeof(*sv));
    if (sv == NULL)
        return NULL;
    sv->service_id = swc_strdup(service_id);
    if (sv->service_id == NULL) {
        swc_free(sv);
        return NULL;
    }
    hash_oom = false;
    HASH_ADD_KEYPTR(hh, n->svcs, sv->service_id, strlen(sv->service_id), sv);
    if (hash_oom) {
        swc_free(sv->service_id);
        swc_free(sv);
        return NULL;
    }
    return sv;
}

static int add_ports(struct swc_sched_node *n, const struct swc_sched_port *ports, size_t k)
{
    if (k == 0)
        return 0;
    if (n->n_ports + k > n->cap_ports) {
        size_t cap = n->cap_ports ? n->cap_ports : 4;
        while (cap < n->n_ports + k)
            cap *= 2;
        void *p = swc_realloc(n->ports, cap * sizeof(*n->ports));
        if (p == NULL)
            return SWC_ENOMEM;
        n->ports = p;
        n->cap_ports = cap;
    }
    memcpy(n->ports + n->n_ports, ports, k * sizeof(*ports));
    n->n_ports += k;
    return 0;
}

int swc_sched_node_account(struct swc_sched_node *n, const char *service_id, int64_t nano_cpus,
                           int64_t memory_bytes, const struct swc_sched_port *ports, size_t n_ports)
{
    struct swc_sched_svc *sv = svc_get(n, service_id);
    if (sv == NULL || add_ports(n, ports, n_ports) != 0)
        return SWC_ENOMEM;
    sv->count++;
    n->ntasks++;
    n->reserved_nano_cpus += nano_cpus;
    n->reserved_memory += memory_bytes;
    return 0;
}

int swc_sched_node_release(struct swc_sched_node *n, const char *service_id, int64_t nano_cpus,
                           int64_t memory_bytes)
{
    struct swc_sched_svc *sv = svc_find(n, service_id);
    if (n->n_ports > 0)
        return SWC_ENOTSUP; /* which ports were the task's is not known here */
    if (sv == NULL || sv->count == 0 || n->ntasks == 0)
        return SWC_ENOENT;
    sv->count--;
    n->ntasks--;
    n->reserved_nano_cpus -= nano_cpus;
    n->reserved_memory -= memory_bytes;
    return 0;
}

int swc_sched_node_note_failure(struct swc_sched_node *n, const char *service_id, int64_t when)
{
    struct swc_sched_svc *sv = svc_get(n, service_id);
    if (sv == NULL)
        return SWC_ENOMEM;
    sv->fail[sv->n_fail % SWC_SCHED_MAX_FAILURES] = when;
    sv->n_fail++;
    return 0;
}

uint32_t swc_sched_node_service_tasks(const struct swc_sched_node *n, const char *service_id)
{
    struct swc_sched_svc *sv = svc_find(n, service_id);
    return sv != NULL ? sv->count : 0;
}

static bool recently_failing(const struct swc_sched_svc *sv, int64_t now)
{
    if (sv == NULL || sv->n_fail < SWC_SCHED_MAX_FAILURES)
        return false;
    uint32_t recent = 0;
    for (int i = 0; i < SWC_SCHED_MAX_FAILURES; i++)
        if (sv->fail[i] > now - SWC_SCHED_FAILURE_WINDOW)
            recent++;
    return recent >= SWC_SCHED_MAX_FAILURES;
}

/* ------------------------------------------------------------ filters */

static bool platform_ok(const struct swc_sched_task *t, const struct swc_sched_node *n)
{
    if (t->n_platforms == 0)
        return true;
    for (size_t i = 0; i < t->n_platforms; i++) {
        const struct swc_sched_platform *p = &t->platforms[i];
        bool os = p->os == NULL || p->os[0] == '\0' || strcasecmp(p->os, n->attrs.os) == 0;
        bool arch = p->arch == NULL || p->arch[0] == '\0' ||
                    strcasecmp(swc_arch_normalize(p->arch), swc_arch_normalize(n->attrs.arch)) == 0;
        if (os && arch)
            return true;
    }
    return false;
}

static bool ports_free(const struct swc_sched_task *t, const struct swc_sched_node *n)
{
    for (size_t i = 0; i < t->n_host_ports; i++)
        for (size_t j = 0; j < n->n_ports; j++)
            if (n->ports[j].port == t->host_ports[i].port &&
                n->ports[j].protocol == t->host_ports[i].protocol)
                return false;
    return true;
}

/* The checks that can change while a group is placed. */
static enum reason capacity_check(const struct swc_sched_task *t, const struct swc_sched_node *n,
                                  uint32_t svc_count)
{
    if (t->nano_cpus > 0 && n->total_nano_cpus - n->reserved_nano_cpus < t->nano_cpus)
        return R_CPU;
    if (t->memory_bytes > 0 && n->total_memory - n->reserved_memory < t->memory_bytes)
        return R_MEM;
    if (t->n_host_ports > 0 && !ports_free(t, n))
        return R_PORTS;
    if (t->max_replicas > 0 && svc_count >= t->max_replicas)
        return R_MAX_REPLICAS;
    return R_NONE;
}

static enum reason filter(const struct swc_sched_task *t, const struct swc_sched_node *n,
                          uint32_t svc_count)
{
    if (!n->ready)
        return R_NOT_READY;
    if (n->availability != SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE)
        return R_NOT_ACTIVE;
    if (t->nano_cpus > 0 && n->total_nano_cpus - n->reserved_nano_cpus < t->nano_cpus)
        return R_CPU;
    if (t->memory_bytes > 0 && n->total_memory - n->reserved_memory < t->memory_bytes)
        return R_MEM;
    if (!swc_constraint_set_match(t->constraints, &n->attrs))
        return R_CONSTRAINT;
    if (!platform_ok(t, n))
        return R_PLATFORM;
    if (t->n_host_ports > 0 && !ports_free(t, n))
        return R_PORTS;
    if (t->max_replicas > 0 && svc_count >= t->max_replicas)
        return R_MAX_REPLICAS;
    return R_NONE;
}

/* ------------------------------------------------------------ heaps */

struct cand {
    struct swc_sched_node *node;
    struct swc_sched_svc *svc; /* NULL until the service has a task there */
    uint32_t svc_count;
    bool avoid;
};

static bool cand_less(const struct cand *a, const struct cand *b)
{
    if (a->svc_count != b->svc_count)
        return a->svc_count < b->svc_count;
    if (a->node->ntasks != b->node->ntasks)
        return a->node->ntasks < b->node->ntasks;
    return a->node->index < b->node->index;
}

static void cand_sift_down(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_less(&h[l], &h[m]))
            m = l;
        if (r < n && cand_less(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        struct cand tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

/* A level of the preference tree: a leaf owns a slice of the candidate array
 * kept as a heap; an inner node keeps a heap of children. */
struct tnode {
    uint64_t count; /* tasks of the service in the subtree */
    size_t order;   /* tie-break: label values in sorted order */
    struct cand *cands;
    size_t n_cands;
    struct tnode **kids;
    size_t n_kids;  /* still in the heap */
    size_t n_alloc; /* all children, for tnode_free */
};

static bool tnode_less(const struct tnode *a, const struct tnode *b)
{
    if (a->count != b->count)
        return a->count < b->count;
    return a->order < b->order;
}

static void tnode_sift_down(struct tnode **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && tnode_less(h[l], h[m]))
            m = l;
        if (r < n && tnode_less(h[r], h[m]))
            m = r;
        if (m == i)
            return;
        struct tnode *tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static void tnode_free(struct tnode *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_alloc; i++)
        tnode_free(t->kids[i]);
    swc_free(t->kids);
    swc_free(t);
}

/* The value a spread key ("node.labels.zone", "engine.labels.x") has on n;
 * "" when the node lacks it. */
static const char *spread_value(const char *key, const struct swc_sched_node *n)
{
    const char *v = NULL;
    if (strncmp(key, "node.labels.", 12) == 0)
        v = swc_kv_get(n->attrs.labels, n->attrs.n_labels, key + 12);
    else if (strncmp(key, "engine.labels.", 14) == 0)
        v = swc_kv_get(n->attrs.engine_labels, n->attrs.n_engine_labels, key + 14);
    return v != NULL ? v : "";
}

static const char *sort_key; /* qsort has no context argument */

static int cand_cmp_value(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    int c = strcmp(spread_value(sort_key, x->node), spread_value(sort_key, y->node));
    if (c != 0)
        return c;
    return x->node->index < y->node->index ? -1 : x->node->index > y->node->index;
}

static struct tnode *tree_build(struct cand *c, size_t n, const struct swc_sched_task *t,
                                size_t level)
{
    struct tnode *tn = swc_calloc(1, sizeof(*tn));
    if (tn == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        tn->count += c[i].svc_count;
    if (level == t->n_spread || n == 0) {
        tn->cands = c;
        tn->n_cands = n;
        for (size_t i = n / 2; i-- > 0;)
            cand_sift_down(c, n, i);
        return tn;
    }
    sort_key = t->spread[level];
    qsort(c, n, sizeof(*c), cand_cmp_value);
    size_t runs = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(spread_value(t->spread[level], c[i - 1].node),
                             spread_value(t->spread[level], c[i].node)) != 0)
            runs++;
    tn->kids = swc_calloc(runs, sizeof(*tn->kids));
    if (tn->kids == NULL)
        goto fail;
    size_t start = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && strcmp(spread_value(t->spread[level], c[i - 1].node),
                            spread_value(t->spread[level], c[i].node)) == 0)
            continue;
        struct tnode *kid = tree_build(c + start, i - start, t, level + 1);
        if (kid == NULL)
            goto fail;
        kid->order = tn->n_kids;
        tn->kids[tn->n_kids++] = kid;
        tn->n_alloc = tn->n_kids;
        start = i;
    }
    for (size_t i = tn->n_kids / 2; i-- > 0;)
        tnode_sift_down(tn->kids, tn->n_kids, i);
    return tn;
fail:
    tnode_free(tn);
    return NULL;
}

struct group_ctx {
    const struct swc_sched_task *t;
    uint32_t reasons[R_COUNT];
    int rc;
};

/* Place one task somewhere under tn; NULL when the subtree is exhausted. */
static struct swc_sched_node *tree_place(struct tnode *tn, struct group_ctx *g)
{
    if (tn->kids == NULL) {
        while (tn->n_cands > 0) {
            struct cand *top = &tn->cands[0];
            enum reason r = capacity_check(g->t, top->node, top->svc_count);
            if (r != R_NONE) {
                g->reasons[r]++;
                tn->cands[0] = tn->cands[--tn->n_cands];
                cand_sift_down(tn->cands, tn->n_cands, 0);
                continue;
            }
            struct swc_sched_node *node = top->node;
            if (top->svc == NULL && (top->svc = svc_get(node, g->t->service_id)) == NULL) {
                g->rc = SWC_ENOMEM;
                return NULL;
            }
            if (add_ports(node, g->t->host_ports, g->t->n_host_ports) != 0) {
                g->rc = SWC_ENOMEM;
                return NULL;
            }
            top->svc->count++;
            top->svc_count = top->svc->count;
            node->ntasks++;
            node->reserved_nano_cpus += g->t->nano_cpus;
            node->reserved_memory += g->t->memory_bytes;
            tn->count++;
            cand_sift_down(tn->cands, tn->n_cands, 0);
            return node;
        }
        return NULL;
    }
    while (tn->n_kids > 0) {
        struct tnode *kid = tn->kids[0];
        struct swc_sched_node *node = tree_place(kid, g);
        if (node != NULL) {
            tn->count++;
            tnode_sift_down(tn->kids, tn->n_kids, 0);
            return node;
        }
        if (g->rc != 0)
            return NULL;
        tn->kids[0] = tn->kids[--tn->n_kids];
        tn->kids[tn->n_kids] = kid; /* keep it reachable for tnode_free */
        tnode_sift_down(tn->kids, tn->n_kids, 0);
    }
    return NULL;
}

static char *explain(const uint32_t reasons[R_COUNT], size_t n_nodes)
{
    struct swc_buf b;
    swc_buf_init(&b);
    int rc = swc_buf_printf(&b, "no suitable node (");
    bool first = true;
    for (int r = 0; r < R_COUNT && rc == 0; r++) {
        if (reasons[r] == 0)
            continue;
        rc = swc_buf_printf(&b, "%s%s on %u node%s", first ? "" : "; ", reason_text[r], reasons[r],
                            reasons[r] == 1 ? "" : "s");
        first = false;
    }
    if (rc == 0 && first)
        rc = swc_buf_printf(&b, n_nodes == 0 ? "no nodes in the cluster" : "no node available");
    if (rc == 0)
        rc = swc_buf_printf(&b, ")");
    char *s = rc == 0 ? swc_strndup((const char *)b.data, b.len) : NULL;
    swc_buf_free(&b);
    return s;
}

static const struct swc_sched_task *cmp_tasks;

static int idx_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const struct swc_sched_task *tx = &cmp_tasks[x], *ty = &cmp_tasks[y];
    if (tx->service_id != ty->service_id) {
        int c = strcmp(tx->service_id, ty->service_id);
        if (c != 0)
            return c;
    }
    if (tx->spec_version != ty->spec_version)
        return tx->spec_version < ty->spec_version ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Place tasks[idx[0..k)] (one group) on the nodes of s. */
static int place_group(struct swc_sched *s, const struct swc_sched_task *tasks, const size_t *idx,
                       size_t k, int64_t now, struct cand *cands, struct swc_sched_result *results)
{
    struct group_ctx g = {.t = &tasks[idx[0]]};
    size_t n_ok = 0, n_avoid = 0;
    /* non-avoided candidates fill the array from the front, avoided ones from
     * the back */
    for (size_t i = 0; i < s->n; i++) {
        struct swc_sched_node *node = &s->nodes[i]->pub;
        /* Down, paused and drained nodes first, before any per-node lookup:
         * a cluster with thousands of them pays one test each per group. */
        if (!node->ready) {
            g.reasons[R_NOT_READY]++;
            continue;
        }
        if (node->availability != SWARMC__NODE_AVAILABILITY__NODE_AVAILABILITY_ACTIVE) {
            g.reasons[R_NOT_ACTIVE]++;
            continue;
        }
        struct swc_sched_svc *sv = node->svcs != NULL ? svc_find(node, g.t->service_id) : NULL;
        uint32_t cnt = sv != NULL ? sv->count : 0;
        enum reason r = filter(g.t, node, cnt);
        if (r != R_NONE) {
            g.reasons[r]++;
            continue;
        }
        struct cand c = {.node = node, .svc = sv, .svc_count = cnt};
        if (recently_failing(sv, now)) {
            c.avoid = true;
            cands[s->n - 1 - n_avoid++] = c;
        } else {
            cands[n_ok++] = c;
        }
    }
    size_t placed = 0;
    for (int pass = 0; pass < 2 && placed < k; pass++) {
        struct cand *c = pass == 0 ? cands : cands + s->n - n_avoid;
        size_t n = pass == 0 ? n_ok : n_avoid;
        if (n == 0)
            continue;
        struct tnode *root = tree_build(c, n, g.t, 0);
        if (root == NULL)
            return SWC_ENOMEM;
        for (; placed < k; placed++) {
            struct swc_sched_node *node = tree_place(root, &g);
            if (node == NULL)
                break;
            results[idx[placed]].node_id = node->attrs.id;
        }
        tnode_free(root);
        if (g.rc != 0)
            return g.rc;
    }
    for (size_t i = placed; i < k; i++) {
        results[idx[i]].explain = explain(g.reasons, s->n);
        if (results[idx[i]].explain == NULL)
            return SWC_ENOMEM;
    }
    return 0;
}

/* A task bound to a node: check that node's filters and account it there. */
static int place_fixed(struct swc_sched *s, const struct swc_sched_task *t,
                       struct swc_sched_result *res)
{
    uint32_t reasons[R_COUNT] = {0};
    struct swc_sched_node *node = swc_sched_node_get(s, t->node_id);
    if (node == NULL) {
        res->explain = swc_strdup("no suitable node (assigned node not in the cluster)");
        return res->explain == NULL ? SWC_ENOMEM : 0;
    }
    enum reason r = filter(t, node, swc_sched_node_service_tasks(node, t->service_id));
    if (r != R_NONE) {
        reasons[r] = 1;
        res->explain = explain(reasons, 1);
        return res->explain == NULL ? SWC_ENOMEM : 0;
    }
    int rc = swc_sched_node_account(node, t->service_id, t->nano_cpus, t->memory_bytes,
                                    t->host_ports, t->n_host_ports);
    if (rc == 0)
        res->node_id = node->attrs.id;
    return rc;
}

int swc_sched_place(struct swc_sched *s, const struct swc_sched_task *tasks, size_t n, int64_t now,
                    struct swc_sched_result *results)
{
    for (size_t i = 0; i < n; i++) {
        results[i].task_id = tasks[i].id;
        results[i].node_id = NULL;
        results[i].explain = NULL;
    }
    if (n == 0)
        return 0;
    int rc = SWC_ENOMEM;
    size_t n_all = n;
    size_t *idx = swc_malloc(n * sizeof(*idx));
    struct cand *cands = swc_malloc((s->n ? s->n : 1) * sizeof(*cands));
    if (idx == NULL || cands == NULL)
        goto out;
    size_t k = 0;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (tasks[i].node_id != NULL && tasks[i].node_id[0] != '\0')
            rc = place_fixed(s, &tasks[i], &results[i]);
        else
            idx[k++] = i;
    }
    cmp_tasks = tasks;
    qsort(idx, k, sizeof(*idx), idx_cmp);
    n = k;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i + 1;
        while (j < n && tasks[idx[j]].spec_version == tasks[idx[i]].spec_version &&
               (tasks[idx[j]].service_id == tasks[idx[i]].service_id ||
                strcmp(tasks[idx[j]].service_id, tasks[idx[i]].service_id) == 0))
            j++;
        rc = place_group(s, tasks, idx + i, j - i, now, cands, results);
        i = j;
    }
out:
    swc_free(idx);
    swc_free(cands);
    if (rc != 0)
        swc_sched_results_clear(results, n_all);
    return rc;
}

void swc_sched_results_clear(struct swc_sched_result *results, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        swc_free(results[i].explain);
        results[i].explain = NULL;
    }
}

int swc_sched_task_from_pb(const Swarmc__Task *t, struct swc_sched_task *out,
                           struct swc_constraint_set *cons, void **arena, struct swc_err *err)
{
    memset(out, 0, sizeof(*out));
    cons->items = NULL;
    cons->n = 0;
    *arena = NULL;
    out->id = t->id;
    out->service_id = t->service_id;
    out->spec_version = t->spec_version;
    out->node_id = t->node_id; /* global tasks come bound to their node */
    const Swarmc__TaskSpec *ts = t->spec;
    const Swarmc__Placement *pl = ts != NULL ? ts->placement : NULL;
    if (ts != NULL && ts->resources != NULL && ts->resources->reservations != NULL) {
        out->nano_cpus = ts->resources->reservations->nano_cpus;
        out->memory_bytes = ts->resources->reservations->memory_bytes;
    }
    Swarmc__PortConfig **ports = NULL;
    size_t n_ports = 0;
    if (t->endpoint != NULL) {
        if (t->endpoint->n_ports > 0) {
            ports = t->endpoint->ports;
            n_ports = t->endpoint->n_ports;
        } else if (t->endpoint->spec != NULL) {
            ports = t->endpoint->spec->ports;
            n_ports = t->endpoint->spec->n_ports;
        }
    }
    size_t n_host = 0;
    for (size_t i = 0; i < n_ports; i++)
        if (ports[i]->publish_mode == SWARMC__PUBLISH_MODE__PUBLISH_MODE_HOST &&
            ports[i]->published_port != 0)
            n_host++;
    size_t n_plat = pl != NULL ? pl->n_platforms : 0;
    size_t n_spread = pl != NULL ? pl->n_preferences : 0;
    size_t sz = n_host * sizeof(struct swc_sched_port) +
                n_plat * sizeof(struct swc_sched_platform) + n_spread * sizeof(char *);
    if (sz > 0) {
        char *a = swc_calloc(1, sz);
        if (a == NULL)
            return swc_err_set(err, SWC_ENOMEM, "scheduler: out of memory");
        *arena = a;
        struct swc_sched_platform *plat = (struct swc_sched_platform *)a;
        const char **spread = (const char **)(a + n_plat * sizeof(*plat));
        struct swc_sched_port *hp =
            (struct swc_sched_port *)(a + n_plat * sizeof(*plat) + n_spread * sizeof(char *));
        for (size_t i = 0; i < n_plat; i++) {
            plat[i].os = pl->platforms[i]->os;
            plat[i].arch = pl->platforms[i]->arch;
        }
        for (size_t i = 0; i < n_spread; i++)
            spread[i] = pl->preferences[i]->spread;
        size_t h = 0;
        for (size_t i = 0; i < n_ports; i++)
            if (ports[i]->publish_mode == SWARMC__PUBLISH_MODE__PUBLISH_MODE_HOST &&
                ports[i]->published_port != 0)
                hp[h++] = (struct swc_sched_port){ports[i]->published_port, ports[i]->protocol};
        out->platforms = plat;
        out->n_platforms = n_plat;
        out->spread = spread;
        out->n_spread = n_spread;
        out->host_ports = hp;
        out->n_host_ports = n_host;
    }
    if (pl != NULL) {
        out->max_replicas = pl->max_replicas;
        int rc = swc_constraint_set_parse((const char *const *)pl->constraints, pl->n_constraints,
                                          cons, err);
        if (rc != 0) {
            swc_free(*arena);
            *arena = NULL;
            return rc;
        }
        out->constraints = cons;
    }
    return 0;
}
