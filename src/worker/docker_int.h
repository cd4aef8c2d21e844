/* Private to the Docker executor: the HTTP plumbing (docker_http.c, our own
 * HTTP/1.1 client on libuv with the parser in http_parse.c) shared by the
 * Engine API operations (docker.c). A struct dreq is one HTTP exchange
 * with the engine, possibly reused for the steps of a multi-request
 * operation (prepare: inspect image, pull, create, inspect by name). */
#ifndef SWC_WORKER_DOCKER_INT_H
#define SWC_WORKER_DOCKER_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "base/buf.h"
#include "base/err.h"
#include "worker/docker.h"

#define DOCKER_API "v1.41"

struct dreq;
struct dconn;
struct docker;

/* Called when an exchange ends: code 0 = a complete HTTP reply (q->status,
 * q->body), else SWC_E* with q->err set ("docker: <what>: ..."). */
typedef void (*dreq_done_fn)(struct dreq *q, int code);
/* Streaming consumer: called with each body chunk; return false to abort. */
typedef bool (*dreq_stream_fn)(struct dreq *q, const char *p, size_t n);

struct dreq {
    struct dreq *prev, *next; /* docker's in-flight list */
    struct docker *d;
    struct dconn *conn; /* the connection of the exchange in flight, or NULL */
    struct swc_buf body;
    long status;
    bool active;    /* in flight */
    char what[640]; /* "create container web.1.x", for messages */
    struct swc_err err;
    dreq_done_fn done;
    dreq_stream_fn stream;
    int64_t timeout_ns; /* 0 = none */
    /* operation context (docker.c) */
    int kind;
    int step;
    bool pulled; /* prepare: the image was pulled already */
    void *cb;
    swc_exec_log_cb log_cb;
    void *data;
    char cid[128];
    char name[256];
    char image[512];
    char *create_body;
    char task_id[64];
    /* stream parsing state (events lines / log frames) */
    struct swc_buf acc;
    uint8_t hdr[8];
    size_t hdr_len;
    size_t frame_left;
    int frame_stream;
    int raw; /* logs: -1 unknown, 0 multiplexed, 1 raw (tty) */
};

struct docker {
    struct swc_exec base;
    uv_loop_t *loop;
    char *sock;
    char *node_id;
    char *network_mode;
    int64_t op_timeout_ns;
    int64_t pull_timeout_ns;
    bool no_events;
    void (*trace_cb)(void *data, const char *method, const char *path);
    void *trace_data;
    uv_timer_t retry_timer; /* /events reconnect */
    struct dreq *reqs;      /* in flight */
    struct dreq *events;    /* the /events stream, or NULL */
    char events_since[48];  /* resume point after a reconnect */
    bool closing;
    int open_handles; /* retry_timer + connections not yet closed */
    void (*close_cb)(struct swc_exec *ex);
    /* /events reconnect (docker.c): backoff and how long the stream was down */
    uint64_t retry_ms;  /* next reconnect delay */
    int64_t down_since; /* monotonic ns when the stream broke; 0 = up */
    struct dreq *probe; /* GET /_ping before reopening the stream, or NULL */
};

/* Allocate an exchange for operation "what" (printf format). */
struct dreq *dreq_new(struct docker *d, dreq_done_fn done, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Send method path (relative to /v1.41) with an optional JSON body (copied);
 * 0 or SWC_E*. The exchange may be sent again after its done callback. */
int dreq_send(struct dreq *q, const char *method, const char *path, const char *json);
/* Free an exchange; one still in flight is dropped without its done callback. */
void dreq_free(struct dreq *q);
/* Set q->err from a non-2xx reply ("docker: <what>: HTTP 404: No such image")
 * and return the matching code (404 SWC_ENOENT, 409 SWC_ECONFLICT, else SWC_EDOCKER). */
int dreq_http_error(struct dreq *q);
/* Parse the reply body as JSON; NULL (q->err set, SWC_EPROTO) when it is not. */
json_t *dreq_json(struct dreq *q);

/* Set up the HTTP plumbing on the loop (the reconnect timer); SWC_EINVAL
 * when the socket path does not fit a unix socket address. */
int docker_http_init(struct docker *d, struct swc_err *err);
/* Cancel all exchanges (their done callbacks run with SWC_ECANCELED). */
void docker_http_cancel_all(struct docker *d);
/* Close the uv handles; d->close_cb runs when the last one is closed. */
void docker_http_close(struct docker *d);

/* Dispatch the complete /events lines received so far (docker.c). Called by
 * docker_http.c after a read was parsed, never from inside a stream callback,
 * so the event sink may start new requests or close the executor. */
void docker_events_drain(struct docker *d);

/* URL-escape s into a new string (swc_free it); NULL on OOM. */
char *docker_escape(const char *s);

#endif
