/* Ingress published port allocation (see ports.h).
 *
 * A flat table indexed by (protocol, port) points at the owning service's
 * claim (1.5 MiB for all three protocols, and adding can never fail). Allocation is
 * computed into a fresh array first and committed (old claims of the service
 * dropped, new ones added) only when every port could be had, so a refused
 * update leaves the previous allocation intact. Dynamic ports are searched
 * from a rotating cursor so freed ports are not handed out again at once. */
#include "manager/ports.h"

#include <stdbool.h>
#include <string.h>

#include "base/alloc.h"

#define N_PROTO 3

struct claim {
    uint32_t key;
    char *service_id;
    char *service_name;
    struct claim *next; /* while being built */
};

struct swc_ports {
    struct claim **table; /* N_PROTO * 65536 entries */
    uint32_t cursor;      /* next dynamic port to try */
};

static const char *proto_name(int p)
{
    switch (p) {
    case SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_TCP:
        return "tcp";
    case SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_UDP:
        return "udp";
    case SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_SCTP:
        return "sctp";
    default:
        return "?";
    }
}

static uint32_t key_of(int proto, uint32_t port)
{
    return ((uint32_t)proto << 16) | (port & 0xffff);
}

int swc_ports_create(struct swc_ports **out)
{
    *out = swc_calloc(1, sizeof(**out));
    if (*out == NULL)
        return SWC_ENOMEM;
    (*out)->table = swc_calloc((size_t)N_PROTO << 16, sizeof(*(*out)->table));
    if ((*out)->table == NULL) {
        swc_free(*out);
        *out = NULL;
        return SWC_ENOMEM;
    }
    (*out)->cursor = SWC_PORTS_DYN_START;
    return 0;
}

static void claim_free(struct claim *c)
{
    swc_free(c->service_id);
    swc_free(c->service_name);
    swc_free(c);
}

void swc_ports_destroy(struct swc_ports *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < (size_t)N_PROTO << 16; i++)
        if (p->table[i] != NULL)
            claim_free(p->table[i]);
    swc_free(p->table);
    swc_free(p);
}

static struct claim *find(const struct swc_ports *p, int proto, uint32_t port)
{
    if (proto < 0 || proto >= N_PROTO || port > 65535)
        return NULL;
    return p->table[key_of(proto, port)];
}

const char *swc_ports_owner(const struct swc_ports *p, int protocol, uint32_t port)
{
    struct claim *c = find(p, protocol, port);
    return c != NULL ? c->service_id : NULL;
}

void swc_ports_release(struct swc_ports *p, const char *service_id)
{
    for (size_t i = 0; i < (size_t)N_PROTO << 16; i++) {
        struct claim *c = p->table[i];
        if (c != NULL && strcmp(c->service_id, service_id) == 0) {
            claim_free(c);
            p->table[i] = NULL;
        }
    }
}

/* Free for this service: unowned or already its own, and not taken earlier in
 * the allocation being built. */
static bool usable(const struct swc_ports *p, const char *service_id, int proto, uint32_t port,
                   const struct swc_port_alloc *done, size_t n_done)
{
    struct claim *c = find(p, proto, port);
    if (c != NULL && strcmp(c->service_id, service_id) != 0)
        return false;
    for (size_t i = 0; i < n_done; i++)
        if (done[i].publish_mode == SWARMC__PUBLISH_MODE__PUBLISH_MODE_INGRESS &&
            done[i].protocol == proto && done[i].published_port == port)
            return false;
    return true;
}

int swc_ports_allocate(struct swc_ports *p, const char *service_id, const char *service_name,
                       const Swarmc__EndpointSpec *spec, const struct swc_port_alloc *prev,
                       size_t n_prev, struct swc_port_alloc **out, size_t *n_out,
                       struct swc_err *err)
{
    *out = NULL;
    *n_out = 0;
    size_t n = spec != NULL ? spec->n_ports : 0;
    struct swc_port_alloc *a = NULL;
    if (n > 0 && (a = swc_calloc(n, sizeof(*a))) == NULL)
        return swc_err_set(err, SWC_ENOMEM, "allocator: out of memory");
    for (size_t i = 0; i < n; i++) {
        const Swarmc__PortConfig *pc = spec->ports[i];
        if (pc->target_port == 0 || pc->target_port > 65535 || pc->published_port > 65535) {
            swc_free(a);
            return swc_err_set(err, SWC_EINVAL, "endpoint.ports[%zu]: port out of range 1-65535",
                               i);
        }
        if ((int)pc->protocol < 0 || (int)pc->protocol >= N_PROTO) {
            swc_free(a);
            return swc_err_set(err, SWC_EINVAL, "endpoint.ports[%zu]: unknown protocol", i);
        }
        a[i].protocol = pc->protocol;
        a[i].target_port = pc->target_port;
        a[i].published_port = pc->published_port;
        a[i].publish_mode = pc->publish_mode;
        if (pc->publish_mode != SWARMC__PUBLISH_MODE__PUBLISH_MODE_INGRESS)
            continue;
        if (pc->published_port != 0) {
            struct claim *c = find(p, pc->protocol, pc->published_port);
            if (c != NULL && strcmp(c->service_id, service_id) != 0) {
                swc_err_set(err, SWC_EEXIST, "port %u/%s is already in use by service %s (%s)",
                            pc->published_port, proto_name(pc->protocol), c->service_name,
                            c->service_id);
                swc_free(a);
                return SWC_EEXIST;
            }
            if (!usable(p, service_id, pc->protocol, pc->published_port, a, i)) {
                swc_err_set(err, SWC_EINVAL, "port %u/%s is published twice", pc->published_port,
                            proto_name(pc->protocol));
                swc_free(a);
                return SWC_EINVAL;
            }
            continue;
        }
        /* dynamic: keep the port this service had for the same target */
        uint32_t got = 0;
        for (size_t k = 0; k < n_prev && got == 0; k++)
            if (prev[k].publish_mode == SWARMC__PUBLISH_MODE__PUBLISH_MODE_INGRESS &&
                prev[k].protocol == (int)pc->protocol && prev[k].target_port == pc->target_port &&
                prev[k].published_port >= SWC_PORTS_DYN_START &&
                prev[k].published_port <= SWC_PORTS_DYN_END &&
                usable(p, service_id, pc->protocol, prev[k].published_port, a, i))
                got = prev[k].published_port;
        const uint32_t span = SWC_PORTS_DYN_END - SWC_PORTS_DYN_START + 1;
        for (uint32_t k = 0; k < span && got == 0; k++) {
            uint32_t port = SWC_PORTS_DYN_START + (p->cursor - SWC_PORTS_DYN_START + k) % span;
            if (find(p, pc->protocol, port) == NULL &&
                usable(p, service_id, pc->protocol, port, a, i))
                got = port;
        }
        if (got == 0) {
            swc_free(a);
            return swc_err_set(err, SWC_EBUSY,
                               "endpoint.ports[%zu]: no free port left in %d-%d for %s", i,
                               SWC_PORTS_DYN_START, SWC_PORTS_DYN_END, proto_name(pc->protocol));
        }
        a[i].published_port = got;
        /* a hint only, so moving it before the commit is harmless */
        p->cursor = got == SWC_PORTS_DYN_END ? SWC_PORTS_DYN_START : got + 1;
    }
    /* commit: build the new claims first so running out of memory changes
     * nothing */
    struct claim *fresh = NULL, *c, *tmp;
    for (size_t i = 0; i < n; i++) {
        if (a[i].publish_mode != SWARMC__PUBLISH_MODE__PUBLISH_MODE_INGRESS)
            continue;
        c = swc_calloc(1, sizeof(*c));
        if (c == NULL || (c->service_id = swc_strdup(service_id)) == NULL ||
            (c->service_name = swc_strdup(service_name ? service_name : "")) == NULL) {
            if (c != NULL)
                claim_free(c);
            goto nomem;
        }
        c->key = key_of(a[i].protocol, a[i].published_port);
        c->next = fresh; /* a plain list until committed */
        fresh = c;
    }
    swc_ports_release(p, service_id);
    for (c = fresh; c != NULL; c = tmp) {
        tmp = c->next;
        c->next = NULL;
        p->table[c->key] = c;
    }
    *out = a;
    *n_out = n;
    return 0;
nomem:
    for (c = fresh; c != NULL; c = tmp) {
        tmp = c->next;
        claim_free(c);
    }
    swc_free(a);
    return swc_err_set(err, SWC_ENOMEM, "allocator: out of memory");
}
