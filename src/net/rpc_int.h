/* Private structures shared by rpc_conn.c (connections, calls, requests) and
 * rpc_server.c (listeners, method table). See rpc.h for the design. */
#ifndef SWC_NET_RPC_INT_H
#define SWC_NET_RPC_INT_H

#include "net/rpc.h"

#include "base/alloc.h"
#include "base/buf.h"
#include "net/frame.h"

#define uthash_malloc(sz)    swc_malloc(sz)
#define uthash_free(ptr, sz) swc_free(ptr)
#define HASH_NONFATAL_OOM    1
/* FNV: uthash's default (Jenkins) falls through switch cases, which
 * clang's -Wimplicit-fallthrough rejects. */
#define HASH_FUNCTION(keyptr, keylen, hashv) HASH_FNV(keyptr, keylen, hashv)
#define uthash_nonfatal_oom(obj)             (swc_rpc_hash_oom = 1)
extern int swc_rpc_hash_oom;
#include <uthash.h>

#define RPC_LOG "net"

enum conn_state {
    CONN_CONNECTING = 0, /* waiting for the name, connect or accept to finish */
    CONN_HANDSHAKE,      /* secure channel handshake in progress */
    CONN_READY,          /* RPC frames flow */
    CONN_DOWN,           /* stream closing or closed */
};

/* One outgoing buffer: a plain frame [u32 length | payload], or on a secure
 * connection a record [u32 length | sealed frames | tag]; bytes [off, len)
 * are still to be written. Record buffers are recycled (see rpc_conn.c). */
struct ofrm {
    struct ofrm *next;
    uv_write_t w;
    struct swc_rpc_conn *conn;
    size_t qbytes; /* what it counts in the write queue */
    uint8_t *data;
    size_t len;
    size_t off;
    size_t cap; /* bytes allocated at data */
};

struct swc_rpc_call {
    UT_hash_handle hh;
    uint32_t id;
    struct swc_rpc_conn *conn;
    bool streaming;
    bool in_hash;
    swc_rpc_reply_cb reply_cb;
    swc_rpc_msg_cb msg_cb;
    swc_rpc_end_cb end_cb;
    void *data;
    int64_t deadline; /* monotonic ns; 0 = none */
    struct swc_rpc_call *defer_next;
    int defer_status;
};

struct swc_rpc_req {
    UT_hash_handle hh;
    uint32_t id;
    struct swc_rpc_conn *conn;
    struct swc_rpc_req *prev, *next; /* every live req of conn */
    bool streaming;
    bool in_hash; /* still reachable by the client's frames */
    bool canceled;
    bool notify_pending; /* on_cancel owed */
    bool want_writable;
    int cancel_status;
    swc_rpc_req_cb cancel_cb;
    void *cancel_data;
    swc_rpc_req_cb writable_cb;
    void *writable_data;
    int64_t deadline;
    char method[SWC_RPC_METHOD_MAX + 1];
};

struct swc_rpc_conn {
    uv_loop_t *loop;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_handle_t handle;
        uv_stream_t stream;
    } h;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_getaddrinfo_t gai;
    bool is_pipe;
    bool stream_inited;
    bool gai_pending;
    enum conn_state state;
    bool was_ready;
    bool user_closing;
    bool freeing;
    bool reading;
    bool pause_user;
    bool pause_bp;
    int down_status;
    swc_rpc_conn_close_cb close_cb;
    void *close_data;

    uint32_t max_frame;
    uint32_t high_water;
    swc_rpc_connect_cb on_connect;
    swc_rpc_conn_event_cb on_close;
    void *data;

    bool secure;
    struct swc_secchan_config sec_cfg;
    struct swc_identity sec_self; /* our copy of *sec_cfg.self (wiped on free) */
    struct swc_secchan *sc;
    struct ofrm *rec;   /* secure: the record being filled */
    bool rec_sealing;   /* rec holds ciphertext: frames are sealed as they join */
    struct ofrm *spare; /* written buffers to reuse (ofrm_get) */
    unsigned nspare;
    size_t spare_bytes; /* bytes allocated at spare */
    size_t inflight;    /* uv_write requests not completed yet */

    struct swc_rpc_peer peer;

    struct swc_buf rbuf;
    size_t rstart;

    struct ofrm *pend_head, *pend_tail; /* waiting for READY */
    size_t wq_bytes;
    size_t writable_waiters;

    struct swc_rpc_call *calls;
    uint32_t next_id;
    struct swc_rpc_call *defer_head, *defer_tail;
    size_t notify_pending;

    struct swc_rpc_req *reqs;     /* hash of reqs the client can reach */
    struct swc_rpc_req *req_list; /* every live req */
    size_t nreqs;
    int64_t timer_due;

    struct swc_rpc_server *srv; /* accepted connections only */
    struct swc_rpc_conn *srv_prev, *srv_next;
};

struct rpc_method {
    UT_hash_handle hh;
    bool streaming;
    swc_rpc_handler handler;
    void *data;
    char name[SWC_RPC_METHOD_MAX + 1];
};

struct swc_rpc_server {
    uv_loop_t *loop;
    uv_timer_t close_handle; /* closed last, so the close cb runs in a callback */
    struct swc_rpc_server_opts opts;
    struct rpc_method *methods;
    struct rpc_listener *listeners;
    size_t nlisteners;
    struct swc_rpc_conn *conns;
    bool closing;
    swc_rpc_server_close_cb close_cb;
    void *close_data;
    int port;
    uid_t self_uid;
    struct swc_rpc_server_stats stats;
};

/* rpc_conn.c, for the server: */
/* Allocate and init a connection for an accepted stream (stream handle
 * inited but not yet accepted). */
int swc_rpc_conn_new(uv_loop_t *loop, struct swc_rpc_server *srv, bool is_pipe,
                     struct swc_rpc_conn **out);
/* Start an accepted connection (after uv_accept and peer checks). */
void swc_rpc_conn_start_accepted(struct swc_rpc_conn *conn,
                                 const struct swc_secchan_config *secure);
/* Take a connection down with a logged reason. */
void swc_rpc_conn_down(struct swc_rpc_conn *conn, int status, const char *reason);

/* Parse "ip:port" into ss (0), SWC_ENOENT when host is a name (host and
 * port are still split out), SWC_EINVAL when malformed. */
int swc_rpc_parse_addr(const char *addr, struct sockaddr_storage *ss, char *host, size_t hostsz,
                       char *port, size_t portsz);

/* Copy a secure config and the identity it points to into dst / self_copy
 * so the caller's structs need not outlive us. */
void swc_rpc_copy_secure(struct swc_secchan_config *dst, struct swc_identity *self_copy,
                         const struct swc_secchan_config *src);

/* Ignore SIGPIPE process-wide unless someone installed a handler: a peer
 * hanging up must surface as EPIPE from write, not kill the process. */
void swc_rpc_ignore_sigpipe(void);

/* rpc_conn.c, for rpc_call.c: */
/* Frame a header and body and send or queue it (raw: handshake bytes, no
 * header, no seal). 0, SWC_ETOOBIG or SWC_ENOMEM. */
int rpc_conn_send(struct swc_rpc_conn *conn, const struct swc_rpc_hdr *h, const uint8_t *body,
                  size_t blen, bool raw);
/* Send a REPLY or END; a failure to queue takes the connection down. */
void rpc_send_status(struct swc_rpc_conn *conn, uint8_t kind, uint32_t id, int status,
                     const char *errmsg, const uint8_t *body, size_t blen);
/* Free a DOWN connection once nothing holds it (closes the timer last). */
void rpc_conn_maybe_free(struct swc_rpc_conn *conn);

/* rpc_call.c, for rpc_conn.c: */
/* Complete a call: take it out of the hash, call back, free it. */
void rpc_call_complete(struct swc_rpc_call *call, int status, const char *errmsg, size_t errmsg_len,
                       const uint8_t *body, size_t blen);
/* Complete the calls whose completion was deferred (cancels, timeouts). */
void rpc_run_deferred_calls(struct swc_rpc_conn *conn);
/* Mark a req canceled (status) and tell its handler once. */
void rpc_req_cancel(struct swc_rpc_req *req, int status);
/* Run the connection timer as soon as possible. */
void rpc_conn_kick(struct swc_rpc_conn *conn);
/* Make the connection timer fire no later than deadline (monotonic ns). */
void rpc_conn_arm(struct swc_rpc_conn *conn, int64_t deadline);
/* Handle one decoded (opened) frame payload. */
void rpc_dispatch(struct swc_rpc_conn *conn, const uint8_t *p, size_t len);

/* rpc_server.c, for the connection: */
const struct rpc_method *swc_rpc_server_method(struct swc_rpc_server *srv, const char *name);
/* A server connection finished freeing. */
void swc_rpc_server_conn_gone(struct swc_rpc_server *srv, struct swc_rpc_conn *conn);

#endif
