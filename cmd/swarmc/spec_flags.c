/* The flag tables of `service create`, `service update` and `node update`
 * (see spec.h). Docker's flag names and meanings; the help lines are what
 * `--help` prints and what the bash completion reads. */
#include "spec.h"

/* clang-format off */
/* The flags create and update share (a macro so both tables stay constant). */
#define SVC_COMMON_FLAGS \
    {"name", 0, true, SF_NAME, "string", "Service name"}, \
    {"replicas", 0, true, SF_REPLICAS, "uint", "Number of tasks"}, \
    {"mode", 0, true, SF_MODE, "string", "Service mode (replicated, global, replicated-job, global-job)"}, \
    {"max-concurrent", 0, true, SF_MAX_CONCURRENT, "uint", "Number of job tasks to run concurrently (replicated-job)"}, \
    {"env", 'e', true, SF_ENV, "list", "Set environment variables (KEY=VALUE)"}, \
    {"label", 'l', true, SF_LABEL, "list", "Service labels (KEY=VALUE)"}, \
    {"container-label", 0, true, SF_CONTAINER_LABEL, "list", "Container labels"}, \
    {"constraint", 0, true, SF_CONSTRAINT, "list", "Placement constraints"}, \
    {"placement-pref", 0, true, SF_PLACEMENT_PREF, "pref", "Placement preference (spread=node.labels.KEY)"}, \
    {"replicas-max-per-node", 0, true, SF_REPLICAS_MAX_PER_NODE, "uint", "Maximum number of tasks per node (0 = unlimited)"}, \
    {"reserve-cpu", 0, true, SF_RESERVE_CPU, "decimal", "Reserve CPUs"}, \
    {"reserve-memory", 0, true, SF_RESERVE_MEMORY, "bytes", "Reserve memory"}, \
    {"limit-cpu", 0, true, SF_LIMIT_CPU, "decimal", "Limit CPUs"}, \
    {"limit-memory", 0, true, SF_LIMIT_MEMORY, "bytes", "Limit memory"}, \
    {"restart-condition", 0, true, SF_RESTART_CONDITION, "string", "Restart when condition is met (none, on-failure, any)"}, \
    {"restart-delay", 0, true, SF_RESTART_DELAY, "duration", "Delay between restarts"}, \
    {"restart-max-attempts", 0, true, SF_RESTART_MAX_ATTEMPTS, "uint", "Maximum number of restarts before giving up"}, \
    {"restart-window", 0, true, SF_RESTART_WINDOW, "duration", "Window used to evaluate the restart policy"}, \
    {"update-parallelism", 0, true, SF_UPDATE_PARALLELISM, "uint", "Maximum number of tasks updated simultaneously (0 to update all at once)"}, \
    {"update-delay", 0, true, SF_UPDATE_DELAY, "duration", "Delay between updates"}, \
    {"update-order", 0, true, SF_UPDATE_ORDER, "string", "Update order (start-first, stop-first)"}, \
    {"update-failure-action", 0, true, SF_UPDATE_FAILURE_ACTION, "string", "Action on update failure (pause, continue, rollback)"}, \
    {"update-monitor", 0, true, SF_UPDATE_MONITOR, "duration", "Duration after each task update to monitor for failure"}, \
    {"update-max-failure-ratio", 0, true, SF_UPDATE_MAX_FAILURE_RATIO, "float", "Failure rate to tolerate during an update"}, \
    {"rollback-parallelism", 0, true, SF_ROLLBACK_PARALLELISM, "uint", "Maximum number of tasks rolled back simultaneously"}, \
    {"rollback-delay", 0, true, SF_ROLLBACK_DELAY, "duration", "Delay between rollbacks"}, \
    {"rollback-order", 0, true, SF_ROLLBACK_ORDER, "string", "Rollback order (start-first, stop-first)"}, \
    {"rollback-failure-action", 0, true, SF_ROLLBACK_FAILURE_ACTION, "string", "Action on rollback failure (pause, continue)"}, \
    {"rollback-monitor", 0, true, SF_ROLLBACK_MONITOR, "duration", "Duration after each task rollback to monitor for failure"}, \
    {"rollback-max-failure-ratio", 0, true, SF_ROLLBACK_MAX_FAILURE_RATIO, "float", "Failure rate to tolerate during a rollback"}, \
    {"publish", 'p', true, SF_PUBLISH, "port", "Publish a port (8080:80[/udp] or published=8080,target=80,mode=host)"}, \
    {"mount", 0, true, SF_MOUNT, "mount", "Attach a filesystem mount (type=bind|volume|tmpfs,source=..,target=..)"}, \
    {"health-cmd", 0, true, SF_HEALTH_CMD, "string", "Command to run to check health"}, \
    {"health-interval", 0, true, SF_HEALTH_INTERVAL, "duration", "Time between running the check"}, \
    {"health-timeout", 0, true, SF_HEALTH_TIMEOUT, "duration", "Maximum time to allow one check to run"}, \
    {"health-retries", 0, true, SF_HEALTH_RETRIES, "int", "Consecutive failures needed to report unhealthy"}, \
    {"health-start-period", 0, true, SF_HEALTH_START_PERIOD, "duration", "Start period for the container to initialize before counting retries"}, \
    {"no-healthcheck", 0, false, SF_NO_HEALTHCHECK, NULL, "Disable any container-specified HEALTHCHECK"}, \
    {"stop-grace-period", 0, true, SF_STOP_GRACE_PERIOD, "duration", "Time to wait before force killing a container"}, \
    {"stop-signal", 0, true, SF_STOP_SIGNAL, "string", "Signal to stop the container"}, \
    {"init", 0, false, SF_INIT, NULL, "Use an init inside each service container"}, \
    {"user", 'u', true, SF_USER, "string", "Username or UID (format: <name|uid>[:<group|gid>])"}, \
    {"workdir", 'w', true, SF_WORKDIR, "string", "Working directory inside the container"}, \
    {"hostname", 0, true, SF_HOSTNAME, "string", "Container hostname"}, \
    {"entrypoint", 0, true, SF_ENTRYPOINT, "command", "Overwrite the default ENTRYPOINT"}, \
    {"read-only", 0, false, SF_READ_ONLY, NULL, "Mount the container's root filesystem read only"}, \
    {"tty", 't', false, SF_TTY, NULL, "Allocate a pseudo-TTY"}, \
    {"detach", 'd', false, SF_DETACH, NULL, "Exit immediately instead of waiting for the service to converge"}, \
    {"quiet", 'q', false, SF_QUIET, NULL, "Suppress progress output"}, \
    {"with-registry-auth", 0, false, SF_WITH_REGISTRY_AUTH, NULL, "Accepted for compatibility; ignored"}, \
    {"secret", 0, true, SF_SECRET, "secret", "Give the service a secret (NAME or source=NAME,target=FILE)"}, \
    {"config", 0, true, SF_CONFIG, "config", "Give the service a config (NAME or source=NAME,target=/PATH)"}, \
    {"timeout", 0, true, SF_TIMEOUT, "duration", "How long to wait for convergence (default 5m)"}
/* clang-format on */

const struct swc_flag_def swc_service_create_flags[] = {SVC_COMMON_FLAGS, {NULL, 0, 0, 0, 0, 0}};

const struct swc_flag_def swc_service_update_flags[] = {
    SVC_COMMON_FLAGS,
    {"image", 0, true, SF_IMAGE, "string", "Service image tag"},
    {"args", 0, true, SF_ARGS, "command", "Service command args"},
    {"env-add", 0, true, SF_ENV_ADD, "list", "Add or update an environment variable"},
    {"env-rm", 0, true, SF_ENV_RM, "list", "Remove an environment variable"},
    {"constraint-add", 0, true, SF_CONSTRAINT_ADD, "list", "Add or update a placement constraint"},
    {"constraint-rm", 0, true, SF_CONSTRAINT_RM, "list", "Remove a constraint"},
    {"label-add", 0, true, SF_LABEL_ADD, "list", "Add or update a service label"},
    {"label-rm", 0, true, SF_LABEL_RM, "list", "Remove a label by its key"},
    {"container-label-add", 0, true, SF_CONTAINER_LABEL_ADD, "list",
     "Add or update a container label"},
    {"container-label-rm", 0, true, SF_CONTAINER_LABEL_RM, "list",
     "Remove a container label by its key"},
    {"publish-add", 0, true, SF_PUBLISH_ADD, "port", "Add or update a published port"},
    {"publish-rm", 0, true, SF_PUBLISH_RM, "port", "Remove a published port by its target port"},
    {"mount-add", 0, true, SF_MOUNT_ADD, "mount", "Add or update a mount on a service"},
    {"mount-rm", 0, true, SF_MOUNT_RM, "path", "Remove a mount by its target path"},
    {"secret-add", 0, true, SF_SECRET_ADD, "secret", "Add or update a secret on a service"},
    {"secret-rm", 0, true, SF_SECRET_RM, "name", "Remove a secret by its name"},
    {"config-add", 0, true, SF_CONFIG_ADD, "config", "Add or update a config on a service"},
    {"config-rm", 0, true, SF_CONFIG_RM, "name", "Remove a config by its name"},
    {"force", 0, false, SF_FORCE, NULL, "Force update even if no changes require it"},
    {"rollback", 0, false, SF_ROLLBACK, NULL, "Rollback to previous specification"},
    {NULL, 0, 0, 0, 0, 0}};

const struct swc_flag_def swc_node_update_flags[] = {
    {"availability", 0, true, NF_AVAILABILITY, "string",
     "Availability of the node (active, pause, drain)"},
    {"label-add", 0, true, NF_LABEL_ADD, "list", "Add or update a node label (KEY=VALUE)"},
    {"label-rm", 0, true, NF_LABEL_RM, "list", "Remove a node label if exists"},
    {"role", 0, true, NF_ROLE, "string", "Role of the node (worker, manager)"},
    {NULL, 0, 0, 0, 0, 0}};
