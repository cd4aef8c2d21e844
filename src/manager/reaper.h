/* The task reaper as a pure decision: which task records to delete.
 *
 * Dead tasks (observed state past RUNNING and desired state SHUTDOWN or
 * beyond) are history. Per replicated slot (service id + slot), and per node
 * for global services (slot 0: service id + node id), at most `limit` of them
 * are kept, the oldest going first. A dead task still desired RUNNING is
 * awaiting a restart (or is the last word of a slot the restart policy gave
 * up on) and is never reaped. Tasks with desired REMOVE
 * (scaled away) go as soon as they are dead or were never assigned. Every task
 * of a service that no longer exists goes at once: deleting the record is what
 * tells its worker to stop the container. */
#ifndef SWC_MANAGER_REAPER_H
#define SWC_MANAGER_REAPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/types.pb-c.h"
#include "base/err.h"

#define SWC_REAPER_DEFAULT_LIMIT 5

/* A task as the reaper sees it (strings borrowed). */
struct swc_reaper_task {
    const char *id;
    const char *service_id;
    uint64_t slot;
    const char *node_id;
    int desired_state;
    int state;
    int64_t status_ts; /* ordering: older first */
    bool service_exists;
};

/* The history limit from cluster settings: 0 (unset) gives 5, a negative
 * value keeps no history. */
int64_t swc_reaper_limit(const Swarmc__Cluster *cluster);

/* Decide which of the n tasks to delete. *out_idx (allocated, free with
 * swc_free; NULL when none) receives their indexes into tasks, *n_out their
 * number. Returns 0 or SWC_ENOMEM. */
int swc_reaper_select(const struct swc_reaper_task *tasks, size_t n, int64_t limit,
                      size_t **out_idx, size_t *n_out);

#endif
