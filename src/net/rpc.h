/* RPC over libuv streams (TCP and unix sockets), DESIGN §7.
 *
 * One connection (struct swc_rpc_conn) multiplexes many concurrent calls in
 * both directions. Every frame is `u32 big-endian length | payload` (see
 * net/frame.h for the pure codec); the payload starts with a small header
 * {kind, call id, method | status + message, timeout} followed by the
 * caller's opaque bytes (protobuf). A frame that is oversized, truncated or
 * undecodable closes that connection only, with a logged reason.
 *
 * Lifecycle follows libuv: init/connect -> use -> close(cb); memory is freed
 * before the close callback runs. A request-style function either accepts
 * (returns 0; its callback then fires exactly once, never from inside the
 * call) or refuses (returns non-zero; no callback ever fires).
 *
 * Client side: swc_rpc_connect() returns a connection at once; calls made
 * before it is connected (and, for a secure connection, before the handshake
 * is done) are queued and sent when it is ready. swc_rpc_call() is unary;
 * swc_rpc_stream_open() is a server stream (a message callback per message,
 * then the end callback exactly once). swc_rpc_cancel() ends either early
 * with SWC_ECANCELED. A timeout completes a call with SWC_ETIMEDOUT. When the
 * connection fails or the peer goes away, every pending call completes with
 * SWC_ECANCELED (SWC_EUNAVAIL if the connection was never established), and
 * opts.on_close tells the owner, who must still call swc_rpc_conn_close().
 *
 * Server side: register handlers on a struct swc_rpc_server, then listen on
 * TCP ("host:port", optionally secure) and/or on a unix socket (mode 0660,
 * peer credentials from SO_PEERCRED). A handler receives a struct swc_rpc_req
 * and owns it until it finishes it with swc_rpc_reply() (unary) or
 * swc_rpc_end() (stream), possibly much later. When the client cancels,
 * the deadline passes or the connection dies, the req's on_cancel callback
 * fires once; the handler must still finish the req (reply/end then return
 * SWC_ECANCELED and free it). Closing the server waits for every req to be
 * finished, so handlers must finish promptly on cancel.
 *
 * Backpressure: each connection counts the bytes queued for writing. A
 * stream send while the queue is above the high-water mark is refused with
 * SWC_EBUSY (nothing queued); the handler waits for its on_writable callback
 * (fired once the queue drains below half the mark) and sends again. So a
 * slow reader stalls the sender and memory stays bounded. A connection whose
 * queue is above the mark also stops reading new requests until it drains.
 * swc_rpc_conn_read_pause() lets a client stop consuming its socket.
 *
 * Single-threaded: everything runs on the loop thread. The first connection
 * sets SIGPIPE to ignored (if it still has its default action), so a peer
 * hanging up surfaces as an error instead of killing the process. */
#ifndef SWC_NET_RPC_H
#define SWC_NET_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "net/cert.h"
#include "net/secchan.h"

/* Default hard maximum of one frame (bytes after the length prefix). */
#define SWC_RPC_MAX_FRAME_DEFAULT (16u * 1024 * 1024)
/* Default write-queue high-water mark per connection. */
#define SWC_RPC_HIGH_WATER_DEFAULT (4u * 1024 * 1024)
/* Longest method name ("dispatcher.Session"). */
#define SWC_RPC_METHOD_MAX 128

struct swc_rpc_conn;
struct swc_rpc_call;
struct swc_rpc_server;
struct swc_rpc_req;

/* Who is on the other end of a connection. */
enum swc_rpc_transport { SWC_RPC_TCP = 0, SWC_RPC_UNIX = 1 };
struct swc_rpc_peer {
    enum swc_rpc_transport transport;
    char addr[128]; /* "ip:port" or the unix socket path */
    /* Unix sockets (server side): SO_PEERCRED of the client. */
    bool has_cred;
    uid_t uid;
    gid_t gid;
    pid_t pid;
    /* Secure connections: the peer certificate once the handshake is done
     * (has_cert false for an anonymous joining client). */
    bool secure;
    bool has_cert;
    char node_id[SWC_CERT_ID_MAX + 1];
    int role; /* SWC_ROLE_WORKER / SWC_ROLE_MANAGER */
    char cluster_id[SWC_CERT_ID_MAX + 1];
};

/* ---- connections (client side) ------------------------------------------ */

typedef void (*swc_rpc_connect_cb)(struct swc_rpc_conn *conn, int status, void *data);
typedef void (*swc_rpc_conn_event_cb)(struct swc_rpc_conn *conn, int status, void *data);
typedef void (*swc_rpc_conn_close_cb)(void *data);

struct swc_rpc_conn_opts {
    uint32_t max_frame;  /* 0 = SWC_RPC_MAX_FRAME_DEFAULT */
    uint32_t high_water; /* 0 = SWC_RPC_HIGH_WATER_DEFAULT */
    /* Non-NULL: run the secure channel (is_client must be true). Copied,
     * with the identity it points to, so neither need outlive the call. */
    const struct swc_secchan_config *secure;
    /* Fires once when the connection is usable (connected and, if secure,
     * handshake done on our side) with 0, or failed to get there
     * (SWC_EUNAVAIL, SWC_EAUTH, ...). A server that refuses our certificate
     * can only hang up after our last handshake message: that shows as
     * on_close and canceled calls. Optional. */
    swc_rpc_connect_cb on_connect;
    /* Fires once when an established connection goes down by itself (peer
     * closed, protocol error, failed open); status says why. Not called for
     * swc_rpc_conn_close(). Optional. */
    swc_rpc_conn_event_cb on_close;
    void *data;
};

/* Start connecting to addr: "host:port" (IPv4, "[v6]:port", or a name
 * resolved asynchronously) or a unix socket path (contains '/', or
 * "unix://path"). *out is valid at once and owned by the caller until
 * swc_rpc_conn_close(). opts may be NULL. 0, SWC_EINVAL or SWC_ENOMEM. */
int swc_rpc_connect(uv_loop_t *loop, const char *addr, const struct swc_rpc_conn_opts *opts,
                    struct swc_rpc_conn **out);

/* Close a client connection: every pending call completes with
 * SWC_ECANCELED, then memory is freed, then cb(data) fires (cb optional). */
void swc_rpc_conn_close(struct swc_rpc_conn *conn, swc_rpc_conn_close_cb cb, void *data);

/* True once the connection is usable and until it goes down. */
bool swc_rpc_conn_ready(const struct swc_rpc_conn *conn);

/* The peer of a connection (valid as long as the connection). */
const struct swc_rpc_peer *swc_rpc_conn_peer(const struct swc_rpc_conn *conn);

/* Stop (true) or resume (false) reading the socket: the peer's writes then
 * back up into its write queue. */
void swc_rpc_conn_read_pause(struct swc_rpc_conn *conn, bool paused);

/* Bytes currently queued for writing on the connection. */
size_t swc_rpc_conn_write_queue(const struct swc_rpc_conn *conn);

/* ---- calls (client side) ------------------------------------------------- */

/* Unary completion: status 0 with the reply payload, or an error code and a
 * message (from the server or local: SWC_ETIMEDOUT, SWC_ECANCELED, ...).
 * payload is only valid during the callback. */
typedef void (*swc_rpc_reply_cb)(struct swc_rpc_call *call, int status, const char *errmsg,
                                 const uint8_t *payload, size_t len, void *data);
/* One stream message; payload valid only during the callback. */
typedef void (*swc_rpc_msg_cb)(struct swc_rpc_call *call, const uint8_t *payload, size_t len,
                               void *data);
/* End of a stream, exactly once: status 0 when the server ended it cleanly. */
typedef void (*swc_rpc_end_cb)(struct swc_rpc_call *call, int status, const char *errmsg,
                               void *data);

/* Unary call: send payload (copied) to method; cb fires exactly once.
 * timeout_ms 0 = no deadline. *out (optional) receives a handle for
 * swc_rpc_cancel, valid until cb returns. 0, or SWC_ECLOSED (connection
 * down or closing), SWC_EINVAL (method too long), SWC_ETOOBIG, SWC_ENOMEM. */
int swc_rpc_call(struct swc_rpc_conn *conn, const char *method, const uint8_t *payload, size_t len,
                 uint32_t timeout_ms, swc_rpc_reply_cb cb, void *data, struct swc_rpc_call **out);

/* Open a server stream: msg_cb per message, then end_cb exactly once.
 * Same return codes and handle rules as swc_rpc_call (valid until end_cb
 * returns). timeout_ms bounds the whole stream (0 = none). */
int swc_rpc_stream_open(struct swc_rpc_conn *conn, const char *method, const uint8_t *payload,
                        size_t len, uint32_t timeout_ms, swc_rpc_msg_cb msg_cb,
                        swc_rpc_end_cb end_cb, void *data, struct swc_rpc_call **out);

/* Cancel a pending call or stream: the server is told, and the call's
 * callback fires later (not from inside this function) with SWC_ECANCELED.
 * No-op if it already completed or is completing. */
void swc_rpc_cancel(struct swc_rpc_call *call);

/* ---- server --------------------------------------------------------------- */

/* A unary or streaming handler. req is owned by the handler until it
 * finishes it; payload is only valid during the call. */
typedef void (*swc_rpc_handler)(struct swc_rpc_req *req, const uint8_t *payload, size_t len,
                                void *data);
typedef void (*swc_rpc_req_cb)(struct swc_rpc_req *req, int status, void *data);
typedef void (*swc_rpc_server_close_cb)(void *data);

/* Who may use a unix listener. */
enum swc_rpc_unix_auth {
    SWC_RPC_UNIX_ANY = 0,     /* anyone the file mode lets in */
    SWC_RPC_UNIX_ROOT_OR_SELF /* uid 0 or the uid of this process */
};

struct swc_rpc_server_opts {
    uint32_t max_frame;  /* 0 = default, per accepted connection */
    uint32_t high_water; /* 0 = default */
    enum swc_rpc_unix_auth unix_auth;
    /* Pace accepts on plain TCP listeners too (secure ones always are: a
     * burst of connections per loop turn, the rest wait in the backlog). */
    bool accept_pacing;
};

/* Create a server bound to loop; opts may be NULL. *out owned by the caller
 * until swc_rpc_server_close(). 0 or SWC_ENOMEM. */
int swc_rpc_server_init(uv_loop_t *loop, const struct swc_rpc_server_opts *opts,
                        struct swc_rpc_server **out);

/* Register a handler for method (copied). streaming selects server-stream
 * semantics (swc_rpc_send/swc_rpc_end) instead of unary (swc_rpc_reply).
 * 0, SWC_EEXIST, SWC_EINVAL or SWC_ENOMEM. */
int swc_rpc_server_register(struct swc_rpc_server *srv, const char *method, bool streaming,
                            swc_rpc_handler handler, void *data);

/* Listen on TCP "ip:port" (numeric; port 0 = pick one, see
 * swc_rpc_server_port). secure non-NULL (copied with its identity;
 * is_client ignored) makes every accepted connection run the secure
 * channel. 0, SWC_EINVAL or SWC_EIO. */
int swc_rpc_server_listen_tcp(struct swc_rpc_server *srv, const char *addr,
                              const struct swc_secchan_config *secure);

/* Replace the secure config (e.g. a renewed certificate) of every secure
 * TCP listener; connections accepted from now on use it (copied).
 * 0, or SWC_ENOENT when there is no secure listener. */
int swc_rpc_server_set_secure(struct swc_rpc_server *srv, const struct swc_secchan_config *secure);

/* Listen on a unix socket at path (a stale socket file is replaced), mode
 * 0660; clients are checked against opts.unix_auth. 0, SWC_EINVAL, SWC_EIO. */
int swc_rpc_server_listen_unix(struct swc_rpc_server *srv, const char *path);

/* The TCP port actually bound by the last listen_tcp; 0 or SWC_ENOENT. */
int swc_rpc_server_port(const struct swc_rpc_server *srv, int *port);

/* Counters of a server, for metrics and tests. */
struct swc_rpc_server_stats {
    uint64_t accepted;        /* connections accepted */
    uint64_t active;          /* connections open now */
    uint64_t proto_errors;    /* connections closed for an oversized, truncated or bad frame */
    uint64_t auth_errors;     /* ... for a failed handshake, a frame that failed to open, or
                                 refused unix credentials */
    uint64_t requests;        /* requests dispatched to handlers */
    uint64_t accept_deferred; /* connections left to a later loop turn by accept pacing */
    uint64_t deadlines_armed; /* request deadlines that needed a timer (still pending after
                                 their handler returned) */
};

/* Copy the server's counters into out. */
void swc_rpc_server_stats(const struct swc_rpc_server *srv, struct swc_rpc_server_stats *out);

/* Stop listening, close every connection (their reqs see on_cancel with
 * SWC_ECANCELED), wait for handlers to finish them, free, then cb(data). */
void swc_rpc_server_close(struct swc_rpc_server *srv, swc_rpc_server_close_cb cb, void *data);

/* ---- requests (server side) ----------------------------------------------- */

/* Finish a unary req with status (0 or SWC_E*), an optional message and a
 * reply payload (copied). req is freed. 0, or SWC_ECANCELED if the call was
 * canceled or its connection died (nothing sent; req freed all the same). */
int swc_rpc_reply(struct swc_rpc_req *req, int status, const char *errmsg, const uint8_t *payload,
                  size_t len);

/* Send one stream message (copied). 0; SWC_EBUSY when the connection's
 * write queue is above its high-water mark (nothing queued: wait for
 * on_writable, then retry); SWC_ECANCELED when the stream is gone (still
 * finish it with swc_rpc_end); SWC_ETOOBIG; SWC_ENOMEM. */
int swc_rpc_send(struct swc_rpc_req *req, const uint8_t *payload, size_t len);

/* Finish a stream with status and optional message; req is freed.
 * 0 or SWC_ECANCELED as for swc_rpc_reply. */
int swc_rpc_end(struct swc_rpc_req *req, int status, const char *errmsg);

/* Be told once (status SWC_ECANCELED or SWC_ETIMEDOUT) when the client
 * cancels, the deadline passes or the connection dies. If that already
 * happened, cb fires soon (never from inside this function). */
void swc_rpc_req_on_cancel(struct swc_rpc_req *req, swc_rpc_req_cb cb, void *data);

/* Be told (status 0) each time the write queue drains below half the
 * high-water mark after a swc_rpc_send returned SWC_EBUSY. */
void swc_rpc_req_on_writable(struct swc_rpc_req *req, swc_rpc_req_cb cb, void *data);

/* True once the req was canceled (by the client, deadline or peer death). */
bool swc_rpc_req_canceled(const struct swc_rpc_req *req);

/* The method name of the req. */
const char *swc_rpc_req_method(const struct swc_rpc_req *req);

/* Who sent the req (credentials for unix sockets, certificate identity for
 * secure connections). Valid until the req is finished. */
const struct swc_rpc_peer *swc_rpc_req_peer(const struct swc_rpc_req *req);

/* Bytes queued for writing on the req's connection (for backpressure). */
size_t swc_rpc_req_write_queue(const struct swc_rpc_req *req);

/* Remaining time before the client's deadline in ms; -1 = no deadline. */
int64_t swc_rpc_req_remaining_ms(const struct swc_rpc_req *req, int64_t now_mono_ns);

#endif
