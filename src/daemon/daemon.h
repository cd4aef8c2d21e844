/* The node daemon: wires the worker, and the manager when this node is one,
 * to the control socket and the cluster port (DESIGN §2, §3).
 * `swarmc daemon` fills swc_daemon_opts from its flags and calls
 * swc_daemon_run, which returns when the daemon stops. */
#ifndef SWC_DAEMON_DAEMON_H
#define SWC_DAEMON_DAEMON_H

#include <stdbool.h>

#define SWC_DEFAULT_STATE_DIR "/var/lib/swarmc"
#define SWC_DEFAULT_SOCKET    "/run/swarmc.sock"
#define SWC_DEFAULT_PORT      4242
#define SWC_DEFAULT_DOCKER    "unix:///var/run/docker.sock"

struct swc_daemon_opts {
    const char *state_dir;      /* default SWC_DEFAULT_STATE_DIR */
    const char *socket_path;    /* control socket, default SWC_DEFAULT_SOCKET */
    const char *listen_addr;    /* "ADDR:PORT", default "0.0.0.0:4242" */
    const char *advertise_addr; /* "ADDR:PORT" others use to reach us */
    const char *docker;         /* "unix:///path" */
    const char *executor;       /* "docker" (default) or "sim" */
    bool force_new_cluster;
    bool dev; /* fresh single-node cluster, temporary state */
};

/* Run the daemon until SIGTERM/SIGINT; returns the process exit code. */
int swc_daemon_run(const struct swc_daemon_opts *opts);

#endif
