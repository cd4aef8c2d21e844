/* A task-table decoder for control.ListTasks replies (see wire.h).
 *
 * protobuf-c decodes a 10,000-task reply into some 60,000 structures and
 * copies every string, most of which a task table never reads; that was
 * about half of `swarmc service ps`. This decoder walks the reply bytes
 * once and fills only the fields the table and its filters read (task id,
 * meta.created_at, slot, node id, service name, desired state, status
 * timestamp/state/err/port_status, spec.container.image, node names). It
 * keeps protobuf's rules where they matter: the last scalar wins and a
 * sub-message seen twice merges.
 * Tasks that run the same image share one TaskSpec/ContainerSpec, which is
 * fine because the reply is read-only (it lives in an arena); so do
 * tasks whose service name or node id repeats the previous task's. Anything it
 * does not expect (a wire type that does not match the schema) makes it
 * give up, and the caller falls back to protobuf-c. */
#include "wire.h"

#include <string.h>

#include "api/control.pb-c.h"

struct rd {
    const uint8_t *p, *end;
};

static bool rd_varint(struct rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Read one field's key; false at the end or on bad bytes (r->p == r->end
 * tells which). */
static bool rd_key(struct rd *r, uint32_t *field, unsigned *wt)
{
    uint64_t k;
    if (r->p >= r->end || !rd_varint(r, &k) || (k >> 3) == 0 || (k >> 3) > UINT32_MAX) {
        return false;
    }
    *field = (uint32_t)(k >> 3);
    *wt = (unsigned)(k & 7);
    return true;
}

/* A length-delimited value: sub holds its bytes. */
static bool rd_len(struct rd *r, struct rd *sub)
{
    uint64_t n;
    if (!rd_varint(r, &n) || n > (uint64_t)(r->end - r->p)) {
        return false;
    }
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return true;
}

static bool rd_skip(struct rd *r, unsigned wt)
{
    uint64_t v = 0;
    struct rd sub;
    switch (wt) {
    case 0:
        return rd_varint(r, &v);
    case 1:
        if (r->end - r->p < 8) {
            return false;
        }
        r->p += 8;
        return true;
    case 2:
        return rd_len(r, &sub);
    case 5:
        if (r->end - r->p < 4) {
            return false;
        }
        r->p += 4;
        return true;
    default:
        return false; /* groups are not in our schema */
    }
}

struct dec {
    ProtobufCAllocator *a;
    /* the last TaskSpec made, shared by the next task with the same image */
    Swarmc__TaskSpec *spec;
    const uint8_t *spec_image;
    size_t spec_image_len;
    /* the last service name and node id copied: the next task's are most
     * often the same bytes, and need no copy of their own */
    struct rd last_svc, last_node;
    char *last_svc_str, *last_node_str;
};

static void *dalloc(struct dec *d, size_t n)
{
    return d->a->alloc(d->a->allocator_data, n);
}

static char *dstr(struct dec *d, const struct rd *s)
{
    size_t n = (size_t)(s->end - s->p);
    char *p = dalloc(d, n + 1);
    if (p != NULL) {
        memcpy(p, s->p, n);
        p[n] = '\0';
    }
    return p;
}

/* Read a string field of wire type wt into *dst; false on a bad type. */
static bool get_str(struct dec *d, struct rd *r, unsigned wt, char **dst)
{
    struct rd s;
    if (wt != 2 || !rd_len(r, &s)) {
        return false;
    }
    return (*dst = dstr(d, &s)) != NULL;
}

/* get_str for a string that repeats from task to task. */
static bool get_str_cached(struct dec *d, struct rd *r, unsigned wt, char **dst, struct rd *last,
                           char **last_str)
{
    struct rd s;
    size_t n;
    if (wt != 2 || !rd_len(r, &s)) {
        return false;
    }
    n = (size_t)(s.end - s.p);
    if (*last_str != NULL && n == (size_t)(last->end - last->p) && memcmp(s.p, last->p, n) == 0) {
        *dst = *last_str;
        return true;
    }
    if ((*dst = dstr(d, &s)) == NULL) {
        return false;
    }
    *last = s;
    *last_str = *dst;
    return true;
}

static bool get_u64(struct rd *r, unsigned wt, uint64_t *dst)
{
    return wt == 0 && rd_varint(r, dst);
}

static bool dec_meta(struct rd *r, Swarmc__Meta *m)
{
    uint32_t f;
    unsigned wt;
    uint64_t v = 0;
    while (rd_key(r, &f, &wt)) {
        bool ok;
        switch (f) {
        case 1:
            ok = get_u64(r, wt, &m->version);
            break;
        case 2:
            ok = get_u64(r, wt, &v);
            m->created_at = (int64_t)v;
            break;
        case 3:
            ok = get_u64(r, wt, &v);
            m->updated_at = (int64_t)v;
            break;
        default:
            ok = rd_skip(r, wt);
        }
        if (!ok) {
            return false;
        }
    }
    return r->p == r->end;
}

static bool dec_status(struct dec *d, struct rd *r, Swarmc__TaskStatus *s)
{
    uint32_t f;
    unsigned wt;
    uint64_t v = 0;
    struct rd sub;
    while (rd_key(r, &f, &wt)) {
        bool ok;
        switch (f) {
        case 1:
            ok = get_u64(r, wt, &v);
            s->timestamp = (int64_t)v;
            break;
        case 2:
            ok = get_u64(r, wt, &v);
            s->state = (Swarmc__TaskState)(int32_t)v;
            break;
        case 4:
            ok = get_str(d, r, wt, &s->err);
            break;
        case 8: /* rare (published ports): protobuf-c does it */
            ok = wt == 2 && rd_len(r, &sub);
            if (ok) {
                s->port_status =
                    swarmc__port_status__unpack(d->a, (size_t)(sub.end - sub.p), sub.p);
                ok = s->port_status != NULL;
            }
            break;
        default: /* message, container id, exit code...: not in a table */
            ok = rd_skip(r, wt);
        }
        if (!ok) {
            return false;
        }
    }
    return r->p == r->end;
}

/* spec.container.image: where the image bytes are (empty when absent). */
static bool find_image(struct rd *spec, struct rd *image)
{
    uint32_t f;
    unsigned wt;
    struct rd ctr = {NULL, NULL};
    image->p = image->end = NULL;
    while (rd_key(spec, &f, &wt)) {
        if (f == 1) {
            if (wt != 2 || !rd_len(spec, &ctr)) {
                return false;
            }
            /* a repeated container merges: its last image wins */
            while (rd_key(&ctr, &f, &wt)) {
                if (f == 1) {
                    if (wt != 2 || !rd_len(&ctr, image)) {
                        return false;
                    }
                } else if (!rd_skip(&ctr, wt)) {
                    return false;
                }
            }
            if (ctr.p != ctr.end) {
                return false;
            }
        } else if (!rd_skip(spec, wt)) {
            return false;
        }
    }
    return spec->p == spec->end;
}

static bool dec_spec(struct dec *d, struct rd *r, Swarmc__TaskSpec **dst)
{
    static const Swarmc__TaskSpec spec_init = SWARMC__TASK_SPEC__INIT;
    static const Swarmc__ContainerSpec ctr_init = SWARMC__CONTAINER_SPEC__INIT;
    struct rd image;
    if (!find_image(r, &image)) {
        return false;
    }
    size_t n = (size_t)(image.end - image.p);
    if (d->spec != NULL && n == d->spec_image_len &&
        (n == 0 || memcmp(image.p, d->spec_image, n) == 0)) {
        *dst = d->spec;
        return true;
    }
    Swarmc__TaskSpec *s = dalloc(d, sizeof *s);
    Swarmc__ContainerSpec *c = dalloc(d, sizeof *c);
    if (s == NULL || c == NULL) {
        return false;
    }
    *s = spec_init;
    *c = ctr_init;
    s->container = c;
    if (image.p != NULL && (c->image = dstr(d, &image)) == NULL) {
        return false;
    }
    d->spec = s;
    d->spec_image = image.p;
    d->spec_image_len = n;
    *dst = s;
    return true;
}

static Swarmc__Task *dec_task(struct dec *d, struct rd *r)
{
    static const Swarmc__Task task_init = SWARMC__TASK__INIT;
    static const Swarmc__Meta meta_init = SWARMC__META__INIT;
    static const Swarmc__TaskStatus status_init = SWARMC__TASK_STATUS__INIT;
    Swarmc__Task *t = dalloc(d, sizeof *t);
    uint32_t f;
    unsigned wt;
    uint64_t v = 0;
    struct rd sub;
    if (t == NULL) {
        return NULL;
    }
    *t = task_init;
    while (rd_key(r, &f, &wt)) {
        bool ok;
        switch (f) {
        case 1:
            ok = get_str(d, r, wt, &t->id);
            break;
        case 2: /* meta (a second one would merge into the first) */
            ok = wt == 2 && rd_len(r, &sub);
            if (ok && t->meta == NULL) {
                ok = (t->meta = dalloc(d, sizeof *t->meta)) != NULL;
                if (ok) {
                    *t->meta = meta_init;
                }
            }
            ok = ok && dec_meta(&sub, t->meta);
            break;
        case 3:
            ok = wt == 2 && rd_len(r, &sub) && dec_spec(d, &sub, &t->spec);
            break;
        case 4:
            ok = get_u64(r, wt, &t->spec_version);
            break;
        case 6:
            ok = get_u64(r, wt, &t->slot);
            break;
        case 7:
            ok = get_str_cached(d, r, wt, &t->node_id, &d->last_node, &d->last_node_str);
            break;
        case 9:
            ok = get_str_cached(d, r, wt, &t->service_name, &d->last_svc, &d->last_svc_str);
            break;
        case 10:
            ok = get_u64(r, wt, &v);
            t->desired_state = (Swarmc__TaskState)(int32_t)v;
            break;
        case 11:
            ok = wt == 2 && rd_len(r, &sub);
            if (ok && t->status == NULL) {
                ok = (t->status = dalloc(d, sizeof *t->status)) != NULL;
                if (ok) {
                    *t->status = status_init;
                }
            }
            ok = ok && dec_status(d, &sub, t->status);
            break;
        default: /* service id, annotations, endpoint...: not in a table */
            ok = rd_skip(r, wt);
        }
        if (!ok) {
            return NULL;
        }
    }
    return r->p == r->end ? t : NULL;
}

static bool dec_node_name(struct dec *d, struct rd *r, Swarmc__ListTasksResponse__NodeNamesEntry *e)
{
    uint32_t f;
    unsigned wt;
    while (rd_key(r, &f, &wt)) {
        bool ok;
        if (f == 1) {
            ok = get_str(d, r, wt, &e->key);
        } else if (f == 2) {
            ok = get_str(d, r, wt, &e->value);
        } else {
            ok = rd_skip(r, wt);
        }
        if (!ok) {
            return false;
        }
    }
    return r->p == r->end;
}

/* Count the entries of the two repeated fields (2 and 3) of a list reply,
 * so their arrays are allocated once; false when the bytes do not parse. */
static bool count_lists(const uint8_t *data, size_t len, size_t *n2, size_t *n3)
{
    struct rd r = {data, data + len};
    uint32_t f;
    unsigned wt;
    *n2 = *n3 = 0;
    while (rd_key(&r, &f, &wt)) {
        *n2 += f == 2;
        *n3 += f == 3;
        if (!rd_skip(&r, wt)) {
            return false;
        }
    }
    return r.p == r.end;
}

ProtobufCMessage *swc_wire_unpack_task_table(const ProtobufCMessageDescriptor *desc,
                                             ProtobufCAllocator *a, size_t len, const uint8_t *data)
{
    static const Swarmc__ListTasksResponse resp_init = SWARMC__LIST_TASKS_RESPONSE__INIT;
    static const Swarmc__ListTasksResponse__NodeNamesEntry ent_init =
        SWARMC__LIST_TASKS_RESPONSE__NODE_NAMES_ENTRY__INIT;
    struct dec d;
    struct rd r = {data, data + len}, sub;
    uint32_t f;
    unsigned wt;
    size_t nt = 0, nn = 0;
    if (desc != &swarmc__list_tasks_response__descriptor) {
        return NULL;
    }
    memset(&d, 0, sizeof d);
    d.a = a;
    /* count first, so the arrays are allocated once */
    if (!count_lists(data, len, &nt, &nn)) {
        return NULL;
    }
    Swarmc__ListTasksResponse *res = dalloc(&d, sizeof *res);
    if (res == NULL) {
        return NULL;
    }
    *res = resp_init;
    res->tasks = nt ? dalloc(&d, nt * sizeof *res->tasks) : NULL;
    res->node_names = nn ? dalloc(&d, nn * sizeof *res->node_names) : NULL;
    if ((nt && res->tasks == NULL) || (nn && res->node_names == NULL)) {
        return NULL;
    }
    r.p = data;
    while (rd_key(&r, &f, &wt)) {
        if (wt != 2 && f <= 3) {
            return NULL;
        }
        if (f == 1) { /* error: small, and a repeated one merges */
            if (!rd_len(&r, &sub) || res->error != NULL) {
                return NULL; /* two errors never happen: let protobuf-c merge them */
            }
            res->error = swarmc__error__unpack(a, (size_t)(sub.end - sub.p), sub.p);
            if (res->error == NULL) {
                return NULL;
            }
        } else if (f == 2) {
            if (!rd_len(&r, &sub) || (res->tasks[res->n_tasks] = dec_task(&d, &sub)) == NULL) {
                return NULL;
            }
            res->n_tasks++;
        } else if (f == 3) {
            Swarmc__ListTasksResponse__NodeNamesEntry *e = dalloc(&d, sizeof *e);
            if (e == NULL || !rd_len(&r, &sub)) {
                return NULL;
            }
            *e = ent_init;
            if (!dec_node_name(&d, &sub, e)) {
                return NULL;
            }
            res->node_names[res->n_node_names++] = e;
        } else if (!rd_skip(&r, wt)) {
            return NULL;
        }
    }
    return &res->base;
}

/* ---- services -------------------------------------------------------------------- */

/* A small sub-message of wire type wt through protobuf-c (modes, ports,
 * counts: few bytes, and all of their fields are read). */
static bool get_msg(struct dec *d, struct rd *r, unsigned wt, const ProtobufCMessageDescriptor *md,
                    void *dst)
{
    struct rd s;
    if (wt != 2 || !rd_len(r, &s)) {
        return false;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(md, d->a, (size_t)(s.end - s.p), s.p);
    *(ProtobufCMessage **)dst = m;
    return m != NULL;
}

static bool dec_annotations_name(struct dec *d, struct rd *r, Swarmc__Annotations *a)
{
    uint32_t f;
    unsigned wt;
    while (rd_key(r, &f, &wt)) {
        bool ok = f == 1 ? get_str(d, r, wt, &a->name) : rd_skip(r, wt); /* labels: not shown */
        if (!ok) {
            return false;
        }
    }
    return r->p == r->end;
}

static bool dec_service_spec(struct dec *d, struct rd *r, Swarmc__ServiceSpec *s)
{
    static const Swarmc__Annotations ann_init = SWARMC__ANNOTATIONS__INIT;
    uint32_t f;
    unsigned wt;
    struct rd sub;
    while (rd_key(r, &f, &wt)) {
        bool ok;
        switch (f) {
        case 1:
            ok = wt == 2 && rd_len(r, &sub);
            if (ok && s->annotations == NULL) {
                ok = (s->annotations = dalloc(d, sizeof *s->annotations)) != NULL;
                if (ok) {
                    *s->annotations = ann_init;
                }
            }
            ok = ok && dec_annotations_name(d, &sub, s->annotations);
            break;
        case 2:
            ok = wt == 2 && rd_len(r, &sub) && dec_spec(d, &sub, &s->task);
            break;
        case 3:
            ok = get_msg(d, r, wt, &swarmc__replicated_service__descriptor, &s->replicated);
            break;
        case 4:
            ok = get_msg(d, r, wt, &swarmc__global_service__descriptor, &s->global);
            break;
        case 5:
            ok = get_msg(d, r, wt, &swarmc__replicated_job__descriptor, &s->replicated_job);
            break;
        case 6:
            ok = get_msg(d, r, wt, &swarmc__global_job__descriptor, &s->global_job);
            break;
        case 9:
            ok = get_msg(d, r, wt, &swarmc__endpoint_spec__descriptor, &s->endpoint);
            break;
        default: /* update and rollback configs: not in a table */
            ok = rd_skip(r, wt);
        }
        if (!ok) {
            return false;
        }
        if (f >= 3 && f <= 6) {
            s->mode_case = (Swarmc__ServiceSpec__ModeCase)f; /* the last one wins */
        }
    }
    return r->p == r->end;
}

static Swarmc__Service *dec_service(struct dec *d, struct rd *r)
{
    static const Swarmc__Service svc_init = SWARMC__SERVICE__INIT;
    static const Swarmc__ServiceSpec spec_init = SWARMC__SERVICE_SPEC__INIT;
    Swarmc__Service *s = dalloc(d, sizeof *s);
    uint32_t f;
    unsigned wt;
    struct rd sub;
    if (s == NULL) {
        return NULL;
    }
    *s = svc_init;
    while (rd_key(r, &f, &wt)) {
        bool ok;
        switch (f) {
        case 1:
            ok = get_str(d, r, wt, &s->id);
            break;
        case 3:
            ok = wt == 2 && rd_len(r, &sub);
            if (ok && s->spec == NULL) {
                ok = (s->spec = dalloc(d, sizeof *s->spec)) != NULL;
                if (ok) {
                    *s->spec = spec_init;
                }
            }
            ok = ok && dec_service_spec(d, &sub, s->spec);
            break;
        case 8:
            ok = get_msg(d, r, wt, &swarmc__endpoint__descriptor, &s->endpoint);
            break;
        default: /* meta, previous spec, history, update status...: not in a table */
            ok = rd_skip(r, wt);
        }
        if (!ok) {
            return NULL;
        }
    }
    return r->p == r->end ? s : NULL;
}

ProtobufCMessage *swc_wire_unpack_service_table(const ProtobufCMessageDescriptor *desc,
                                                ProtobufCAllocator *a, size_t len,
                                                const uint8_t *data)
{
    static const Swarmc__ListServicesResponse resp_init = SWARMC__LIST_SERVICES_RESPONSE__INIT;
    struct dec d;
    struct rd r = {data, data + len}, sub;
    uint32_t f;
    unsigned wt;
    size_t ns = 0, nc = 0;
    if (desc != &swarmc__list_services_response__descriptor) {
        return NULL;
    }
    memset(&d, 0, sizeof d);
    d.a = a;
    if (!count_lists(data, len, &ns, &nc)) {
        return NULL;
    }
    Swarmc__ListServicesResponse *res = dalloc(&d, sizeof *res);
    if (res == NULL) {
        return NULL;
    }
    *res = resp_init;
    res->services = ns ? dalloc(&d, ns * sizeof *res->services) : NULL;
    res->counts = nc ? dalloc(&d, nc * sizeof *res->counts) : NULL;
    if ((ns && res->services == NULL) || (nc && res->counts == NULL)) {
        return NULL;
    }
    r.p = data;
    while (rd_key(&r, &f, &wt)) {
        if (f == 1) {
            if (res->error != NULL ||
                !get_msg(&d, &r, wt, &swarmc__error__descriptor, &res->error)) {
                return NULL; /* two errors never happen: let protobuf-c merge them */
            }
        } else if (f == 2) {
            if (wt != 2 || !rd_len(&r, &sub) ||
                (res->services[res->n_services] = dec_service(&d, &sub)) == NULL) {
                return NULL;
            }
            res->n_services++;
        } else if (f == 3) {
            if (!get_msg(&d, &r, wt, &swarmc__service_counts__descriptor,
                         &res->counts[res->n_counts])) {
                return NULL;
            }
            res->n_counts++;
        } else if (!rd_skip(&r, wt)) {
            return NULL;
        }
    }
    return &res->base;
}
