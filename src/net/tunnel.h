/* A secure byte tunnel over TCP: carries one local stream's bytes to a peer
 * through the secure channel (secchan.h), e.g. raft's connections between
 * managers (manager/raftnet.c).
 *
 * Wire: u32-length frames (frame.h). The client runs the secchan handshake,
 * then sends one sealed HELLO frame (the caller's opaque bytes); the server
 * hands {peer certificate, HELLO} to its accept callback, and when the owner
 * attaches a local stream it answers with one sealed, empty ACCEPT frame,
 * which completes the client's connect. From then on every frame is sealed
 * and carries up to SWC_TUNNEL_FRAME_MAX bytes read from a local stream.
 *
 * Relay with backpressure: bytes read from the local stream are sealed in
 * place in one reused buffer and written to TCP (copied only when the kernel
 * does not take them at once); reading the local stream stops while more
 * than SWC_TUNNEL_HIGH_WATER bytes wait to be written to TCP, and reading TCP
 * stops while more than that waits to be written to the local stream. So
 * each write queue stays below the mark plus one frame, whatever the peer's
 * speed (a raft snapshot is one 50 MiB write).
 *
 * Lifecycle (libuv style): every tunnel the owner gets (from connect or an
 * accept callback) is closed by the owner exactly once with
 * swc_tunnel_close; the close callback runs once everything is freed. When
 * the tunnel goes down by itself (EOF or error on either end, a frame that
 * fails to open -- tampered, replayed -- or a handshake failure) it closes
 * both its TCP connection and its local stream at once and tells the owner
 * through the connect callback (before ready) or the down callback given to
 * attach. Callbacks never run inside a swc_tunnel_* call. */
#ifndef SWC_NET_TUNNEL_H
#define SWC_NET_TUNNEL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/cert.h"
#include "net/secchan.h"

/* Most plaintext bytes per relayed frame. */
#define SWC_TUNNEL_FRAME_MAX (256u * 1024u)
/* Write-queue size above which the other side's reading pauses. */
#define SWC_TUNNEL_HIGH_WATER (4u * 1024u * 1024u)
/* Longest HELLO the client may send. */
#define SWC_TUNNEL_HELLO_MAX 4096u
/* The handshake, HELLO and ACCEPT must complete within this. */
#define SWC_TUNNEL_HANDSHAKE_MS 10000

struct swc_tunnel;
struct swc_tunnel_listener;

/* Client: status 0 once the server accepted (attach or close now), or a
 * SWC_E* code (EUNAVAIL: unreachable or refused, e.g. the server rejected
 * our certificate; EAUTH/EEXPIRED/EPROTO: the handshake failed here;
 * ETIMEDOUT) -- then only close remains. Called at most once, never after
 * the owner closed the tunnel. */
typedef void (*swc_tunnel_connect_cb)(struct swc_tunnel *t, int status, void *data);

/* Server: a client passed the handshake and sent its HELLO (bytes valid
 * only during the call). peer is its certificate (NULL only for an
 * anonymous client, when the config allows those). The owner now owns t:
 * attach it to accept, or close it to refuse. */
typedef void (*swc_tunnel_accept_cb)(struct swc_tunnel_listener *l, struct swc_tunnel *t,
                                     const struct swc_cert *peer, const uint8_t *hello,
                                     size_t hello_len, void *data);

/* An attached tunnel went down by itself: status says why (ECANCELED: the
 * peer or the local stream closed; EAUTH: a frame failed to open; EIO...).
 * Both ends are already closing; the owner still calls swc_tunnel_close. */
typedef void (*swc_tunnel_down_cb)(struct swc_tunnel *t, int status, void *data);

/* swc_tunnel_close / swc_tunnel_listener_close finished; memory is freed. */
typedef void (*swc_tunnel_close_cb)(void *data);

/* Listen on "host:port" (an IP literal or a name resolved now, at start-up)
 * with server_cfg (copied with its identity; is_client is ignored). Every
 * accepted client that completes the handshake and sends a HELLO goes to
 * accept_cb. 0, SWC_EINVAL (bad address), SWC_EIO (cannot bind) or
 * SWC_ENOMEM. */
int swc_tunnel_listen(uv_loop_t *loop, const char *addr,
                      const struct swc_secchan_config *server_cfg, swc_tunnel_accept_cb accept_cb,
                      void *data, struct swc_tunnel_listener **out);

/* Replace the listener's config (copied with its identity), e.g. after the
 * node's certificate was renewed; applies to connections accepted from now
 * on. */
void swc_tunnel_listener_set_config(struct swc_tunnel_listener *l,
                                    const struct swc_secchan_config *server_cfg);

/* The port the listener is bound to (useful with port 0). */
int swc_tunnel_listener_port(const struct swc_tunnel_listener *l);

/* Handshakes the listener refused (bad certificate or role, bad HELLO,
 * timeout) since it started. */
uint64_t swc_tunnel_listener_refused(const struct swc_tunnel_listener *l);

/* Stop listening and close every tunnel not yet handed to the owner; cb
 * (may be NULL) runs once all is freed. Tunnels already handed over stay
 * open (the owner closes them). */
void swc_tunnel_listener_close(struct swc_tunnel_listener *l, swc_tunnel_close_cb cb, void *data);

/* Connect to "host:port" with client_cfg (copied with its identity) and
 * send hello (copied, <= SWC_TUNNEL_HELLO_MAX bytes) once the handshake is
 * done. 0 and *out (connect_cb follows), or SWC_EINVAL / SWC_ENOMEM with no
 * tunnel and no callback. */
int swc_tunnel_connect(uv_loop_t *loop, const char *addr,
                       const struct swc_secchan_config *client_cfg, const uint8_t *hello,
                       size_t hello_len, swc_tunnel_connect_cb connect_cb, void *data,
                       struct swc_tunnel **out);

/* Start relaying between t and local, a connected stream allocated with
 * swc_malloc and initialized on t's loop: t now owns it (closes it and frees
 * it with swc_free). down_cb (may be NULL) reports the tunnel going down by
 * itself. On a server tunnel this also sends the ACCEPT. 0, or SWC_ECLOSED
 * (t already went down) / SWC_ESTATE (not ready, or already attached): the
 * caller keeps local. */
int swc_tunnel_attach(struct swc_tunnel *t, uv_stream_t *local, swc_tunnel_down_cb down_cb,
                      void *data);

/* The peer's certificate once the handshake is done, else NULL. */
const struct swc_cert *swc_tunnel_peer(const struct swc_tunnel *t);

/* Close t (any state, exactly once): both ends close, queued bytes are
 * dropped, no callback but cb (may be NULL) runs afterwards. */
void swc_tunnel_close(struct swc_tunnel *t, swc_tunnel_close_cb cb, void *data);

/* Counters for tests and benchmarks. */
struct swc_tunnel_stats {
    uint64_t bytes_out;    /* plaintext read from the local stream and sent */
    uint64_t bytes_in;     /* plaintext received and written to the local stream */
    size_t tcp_wq_max;     /* largest TCP write queue seen, bytes */
    size_t local_wq_max;   /* largest local write queue seen, bytes */
    uint64_t local_pauses; /* times local reading paused for backpressure */
    uint64_t tcp_pauses;   /* times TCP reading paused for backpressure */
};
void swc_tunnel_stats(const struct swc_tunnel *t, struct swc_tunnel_stats *out);

#endif
