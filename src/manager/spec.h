/* Service specs: defaults and validation (pure).
 *
 * The control API calls swc_spec_fill_defaults and then swc_spec_validate on
 * every service spec before writing anything. Validation stops at the first
 * bad value and names the field ("task.container.mounts[1].target: must be an
 * absolute path"), so the CLI can print it as is. */
#ifndef SWC_MANAGER_SPEC_H
#define SWC_MANAGER_SPEC_H

#include "api/types.pb-c.h"
#include "base/err.h"

#define SWC_SPEC_MAX_REPLICAS  1000000
#define SWC_SPEC_NAME_MAX      63
#define SWC_SPEC_DEFAULT_GRACE (10 * 1000000000LL)

/* Fill what the user left unset: replicated mode with 1 replica when no mode;
 * restart any / 5 s (on-failure for jobs); update and rollback parallelism 1,
 * delay 0, pause, monitor 5 s, stop-first; stop grace 10 s; job
 * max_concurrent / total_completions from each other (1 when both unset).
 * Missing sub-messages are allocated through the seam (swc_malloc), so a spec
 * unpacked with swc_pb_allocator is still freed by free_unpacked. Returns 0 or
 * SWC_ENOMEM. */
int swc_spec_fill_defaults(Swarmc__ServiceSpec *spec);

/* Validate a spec; SWC_EINVAL with err naming the field on the first bad
 * value. */
int swc_spec_validate(const Swarmc__ServiceSpec *spec, struct swc_err *err);

/* Validate just a service name (DNS-like, <= 63 characters). */
int swc_spec_validate_name(const char *name, struct swc_err *err);

#endif
