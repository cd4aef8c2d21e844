/* The Docker executor: the only code that knows the Docker Engine API (v1.41).
 * It speaks HTTP/1.1 over the engine's unix socket with its own small client
 * on the libuv loop (docker_http.c), keeps one long-lived /events stream for exits,
 * OOM kills and health changes, and maps every bad reply to a clear error. */
#ifndef SWC_WORKER_DOCKER_H
#define SWC_WORKER_DOCKER_H

#include <stdint.h>
#include <uv.h>

#include "base/err.h"
#include "worker/executor.h"

struct swc_docker_config {
    uv_loop_t *loop;
    const char *socket_path;  /* e.g. /var/run/docker.sock (a unix:// prefix is stripped) */
    const char *node_id;      /* our swarmc.node.id label value */
    const char *network_mode; /* HostConfig.NetworkMode; NULL = engine default */
    int64_t op_timeout_ns;    /* per request (not /events, logs); 0 = 60 s */
    int64_t pull_timeout_ns;  /* image pulls; 0 = 5 min */
    bool no_events;           /* don't open the /events stream (tests) */
    /* Optional: called as each request is handed to the engine (tracing,
     * benchmarks); method and path (e.g. "/containers/create?name=x") are
     * valid during the call. */
    void (*trace_cb)(void *data, const char *method, const char *path);
    void *trace_data;
};

/* Create a Docker executor; *out is freed by its close op. 0, SWC_ENOMEM or
 * SWC_EINVAL (message in err). The /events stream opens immediately and
 * reconnects after errors. */
int swc_docker_init(struct swc_exec **out, const struct swc_docker_config *cfg,
                    struct swc_err *err);

/* Parse DOCKER_HOST-style "unix:///path" or a plain path into a socket path
 * (returned pointer points into s); NULL when it is not a unix socket. */
const char *swc_docker_socket_from_host(const char *s);

#endif
