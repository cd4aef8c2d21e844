/* Building service and node specs from command-line flags.
 *
 * `service create` starts from an empty spec with Docker's client-side
 * defaults (1 replica, update/rollback parallelism 1, monitor 5 s, pause on
 * failure, stop-first); `service update` starts from the service's current
 * spec as the daemon returned it and changes only what a flag names. The
 * functions here are pure (no I/O) so every flag and every bad input is
 * unit-tested (tests/unit/test_cli_spec.c). Every string and sub-message is
 * allocated through swc_pb_allocator's seam, so a spec is freed with
 * swc_spec_service_free() whether it was built here or unpacked from a
 * reply. The CLI aborts on out-of-memory (STYLE: "the CLI may abort"). */
#ifndef SWC_CLI_SPEC_H
#define SWC_CLI_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "api/control.pb-c.h"
#include "api/types.pb-c.h"
#include "base/err.h"
#include "flags.h"

/* Flag ids of `service create` / `service update`. */
enum swc_svc_flag {
    SF_NAME = 1,
    SF_REPLICAS,
    SF_MODE,
    SF_MAX_CONCURRENT,
    SF_ENV,
    SF_LABEL,
    SF_CONTAINER_LABEL,
    SF_CONSTRAINT,
    SF_PLACEMENT_PREF,
    SF_REPLICAS_MAX_PER_NODE,
    SF_RESERVE_CPU,
    SF_RESERVE_MEMORY,
    SF_LIMIT_CPU,
    SF_LIMIT_MEMORY,
    SF_RESTART_CONDITION,
    SF_RESTART_DELAY,
    SF_RESTART_MAX_ATTEMPTS,
    SF_RESTART_WINDOW,
    SF_UPDATE_PARALLELISM,
    SF_UPDATE_DELAY,
    SF_UPDATE_ORDER,
    SF_UPDATE_FAILURE_ACTION,
    SF_UPDATE_MONITOR,
    SF_UPDATE_MAX_FAILURE_RATIO,
    SF_ROLLBACK_PARALLELISM,
    SF_ROLLBACK_DELAY,
    SF_ROLLBACK_ORDER,
    SF_ROLLBACK_FAILURE_ACTION,
    SF_ROLLBACK_MONITOR,
    SF_ROLLBACK_MAX_FAILURE_RATIO,
    SF_PUBLISH,
    SF_MOUNT,
    SF_HEALTH_CMD,
    SF_HEALTH_INTERVAL,
    SF_HEALTH_TIMEOUT,
    SF_HEALTH_RETRIES,
    SF_HEALTH_START_PERIOD,
    SF_NO_HEALTHCHECK,
    SF_STOP_GRACE_PERIOD,
    SF_STOP_SIGNAL,
    SF_INIT,
    SF_USER,
    SF_WORKDIR,
    SF_HOSTNAME,
    SF_ENTRYPOINT,
    SF_READ_ONLY,
    SF_TTY,
    SF_DETACH,
    SF_QUIET,
    SF_WITH_REGISTRY_AUTH,
    SF_TIMEOUT,
    SF_SECRET,
    SF_CONFIG,
    /* update only */
    SF_IMAGE,
    SF_ARGS,
    SF_ENV_ADD,
    SF_ENV_RM,
    SF_CONSTRAINT_ADD,
    SF_CONSTRAINT_RM,
    SF_LABEL_ADD,
    SF_LABEL_RM,
    SF_CONTAINER_LABEL_ADD,
    SF_CONTAINER_LABEL_RM,
    SF_PUBLISH_ADD,
    SF_PUBLISH_RM,
    SF_MOUNT_ADD,
    SF_MOUNT_RM,
    SF_SECRET_ADD,
    SF_SECRET_RM,
    SF_CONFIG_ADD,
    SF_CONFIG_RM,
    SF_FORCE,
    SF_ROLLBACK,
};

/* Flag tables (NULL-terminated). */
extern const struct swc_flag_def swc_service_create_flags[];
extern const struct swc_flag_def swc_service_update_flags[];
extern const struct swc_flag_def swc_node_update_flags[];

/* Flag ids of `node update`. */
enum swc_node_flag { NF_AVAILABILITY = 1, NF_LABEL_ADD, NF_LABEL_RM, NF_ROLE };

/* What the command does besides the spec. */
struct swc_svc_opts {
    bool detach;
    bool quiet;
    bool force;         /* update --force: bump force_update */
    bool rollback;      /* update --rollback */
    int64_t timeout_ns; /* convergence deadline, default 5 min */
};

#define SWC_CLI_DEFAULT_TIMEOUT_NS (300LL * 1000000000LL)

/* A new, empty service spec with every sub-message allocated. Never NULL. */
Swarmc__ServiceSpec *swc_spec_service_new(void);

/* Free a spec from swc_spec_service_new or from unpacking; NULL is fine. */
void swc_spec_service_free(Swarmc__ServiceSpec *spec);

/* Parse `service create` arguments (after "create") into a new spec
 * (*out, owned by the caller) and opts. 0 or SWC_EINVAL with err set;
 * *help is set (and 0 returned, *out NULL) when --help was asked. */
int swc_spec_service_create(int argc, char **argv, Swarmc__ServiceSpec **out,
                            struct swc_svc_opts *opts, bool *help, struct swc_err *err);

/* Parse `service update` arguments (after "update"): the service reference
 * goes to *ref (points into argv) and flags in *flags (free with
 * swc_flags_free). The spec itself is changed later with
 * swc_spec_service_apply once the current spec is known. */
int swc_spec_service_update_parse(int argc, char **argv, struct swc_flags *flags, const char **ref,
                                  struct swc_svc_opts *opts, bool *help, struct swc_err *err);

/* Apply parsed flags to spec (changed in place). update selects update
 * semantics (--env adds or replaces, --*-rm flags allowed). 0 or SWC_EINVAL. */
int swc_spec_service_apply(Swarmc__ServiceSpec *spec, const struct swc_flags *flags, bool update,
                           struct swc_err *err);

/* Parse one `service scale` argument "NAME=REPLICAS"; *name_len is the
 * length of the name at the start of arg. 0 or SWC_EINVAL. */
int swc_spec_parse_scale(const char *arg, size_t *name_len, uint64_t *replicas,
                         struct swc_err *err);

/* Parse one --publish value into a new PortConfig (*out, free with
 * protobuf_c_message_free_unpacked). 0 or SWC_EINVAL naming flag. */
int swc_spec_parse_port(const char *flag, const char *v, Swarmc__PortConfig **out,
                        struct swc_err *err);

/* Parse one --mount value into a new Mount. 0 or SWC_EINVAL. */
int swc_spec_parse_mount(const char *flag, const char *v, Swarmc__Mount **out, struct swc_err *err);

/* Parse one --secret value ("NAME" or "source=NAME[,target=FILE]") into a
 * new SecretReference; the daemon resolves the name. 0 or SWC_EINVAL. */
int swc_spec_parse_secret(const char *flag, const char *v, Swarmc__SecretReference **out,
                          struct swc_err *err);

/* Parse one --config value ("NAME" -> target /NAME, or
 * "source=NAME,target=/PATH") into a new ConfigReference. 0 or SWC_EINVAL. */
int swc_spec_parse_config(const char *flag, const char *v, Swarmc__ConfigReference **out,
                          struct swc_err *err);

/* Apply `node update` flags to a node spec in place. 0 or SWC_EINVAL. */
int swc_spec_node_apply(Swarmc__NodeSpec *spec, const struct swc_flags *flags, struct swc_err *err);

/* Mode name of a spec: "replicated", "global", "replicated-job", "global-job". */
const char *swc_spec_mode_name(const Swarmc__ServiceSpec *spec);

#endif
