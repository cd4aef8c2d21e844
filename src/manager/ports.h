/* Published port allocation for ingress-mode ports (pure state, no I/O).
 *
 * An ingress published port belongs to at most one service cluster-wide. The
 * allocator keeps (protocol, port) -> owning service; a service's endpoint is
 * allocated all-or-nothing: explicit published ports are claimed (refused with
 * a message naming the port and the service holding it), published port 0
 * reuses the port the service already had for the same target and protocol,
 * or takes the next free one in 30000-32767. Host-mode ports are not
 * allocated here: they are per node and the scheduler checks them. The loop
 * rebuilds the allocator from the store when it becomes leader by allocating
 * every existing service's endpoint again with its current allocation. */
#ifndef SWC_MANAGER_PORTS_H
#define SWC_MANAGER_PORTS_H

#include <stddef.h>
#include <stdint.h>

#include "api/types.pb-c.h"
#include "base/err.h"

#define SWC_PORTS_DYN_START 30000
#define SWC_PORTS_DYN_END   32767

/* One allocated port of a service's endpoint. */
struct swc_port_alloc {
    int protocol; /* SWARMC__PORT_PROTOCOL__* */
    uint32_t target_port;
    uint32_t published_port;
    int publish_mode; /* SWARMC__PUBLISH_MODE__* */
};

struct swc_ports;

/* Create an empty allocator. */
int swc_ports_create(struct swc_ports **out);

/* Free the allocator. */
void swc_ports_destroy(struct swc_ports *p);

/* Allocate the endpoint of a service (spec may be NULL = no ports). prev
 * (optional, n_prev entries) is the service's current allocation, so dynamic
 * ports are stable across updates. On success the service's previous claims
 * are replaced by the new ones and *out (allocated, free with swc_free) holds
 * one entry per spec port in order. On SWC_EEXIST (port held by another
 * service), SWC_EBUSY (dynamic range exhausted) or SWC_EINVAL nothing changes
 * and err says why. */
int swc_ports_allocate(struct swc_ports *p, const char *service_id, const char *service_name,
                       const Swarmc__EndpointSpec *spec, const struct swc_port_alloc *prev,
                       size_t n_prev, struct swc_port_alloc **out, size_t *n_out,
                       struct swc_err *err);

/* Release every port held by service_id. */
void swc_ports_release(struct swc_ports *p, const char *service_id);

/* The service id holding an ingress port, or NULL. */
const char *swc_ports_owner(const struct swc_ports *p, int protocol, uint32_t port);

#endif
