/* A blocking RPC client for the CLI over the daemon's control socket.
 *
 * The CLI is a short-lived process doing one thing at a time, so each call
 * runs a private libuv loop until its reply arrives: connect once, call
 * "control.<Name>" with a protobuf request, get the unpacked response. A
 * response whose `error` field carries a code becomes a failed call with
 * the daemon's message, so commands only print err. The progress display
 * uses swc_client_loop() to run its own timer on the same loop. */
#ifndef SWC_CLI_CLIENT_H
#define SWC_CLI_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <protobuf-c/protobuf-c.h>

#include "base/err.h"

struct swc_rpc_conn;

/* A decoder for arena replies that fills only what its caller reads (see
 * wire.h); NULL = not this reply's kind or unexpected bytes. */
typedef ProtobufCMessage *(*swc_client_unpack_fn)(const ProtobufCMessageDescriptor *desc,
                                                  ProtobufCAllocator *a, size_t len,
                                                  const uint8_t *data);

struct swc_client {
    uv_loop_t loop;
    struct swc_rpc_conn *conn;
    char addr[256];
    bool loop_init;
    /* Unpack replies into an arena (fast for big listings, freed at once).
     * Only for replies nobody edits: the spec editors free and grow the
     * fields of a reply they change, which an arena cannot take. */
    bool arena_replies;
    /* With arena_replies: try this decoder first (protobuf-c if it fails). */
    swc_client_unpack_fn unpack;
};

/* Default control socket (SWARMC_HOST overrides, -H overrides both). */
const char *swc_client_default_host(void);

/* Connect to the daemon at addr (a unix socket path or "unix://path").
 * 0, or SWC_EUNAVAIL with a message saying how to start the daemon. */
int swc_client_open(struct swc_client *c, const char *addr, struct swc_err *err);

/* Call method with req; on success *resp is the unpacked reply (free with
 * swc_client_free_reply; with c->arena_replies it lives in an arena of its
 * own and must not be edited). A reply
 * whose `error` has a non-zero code fails with that code and message.
 * timeout_ms 0 = 60 s. */
int swc_client_call(struct swc_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, uint32_t timeout_ms,
                    ProtobufCMessage **resp, struct swc_err *err);

/* Free a reply of swc_client_call; any other unpacked message (allocated
 * with swc_pb_allocator) is freed as usual. NULL is fine. */
void swc_client_free_reply(ProtobufCMessage *msg);

/* Callback for each streamed message (already unpacked; the callee owns
 * it). Return non-zero to stop the stream. */
typedef int (*swc_client_msg_cb)(ProtobufCMessage *msg, void *data);

/* Open a server stream and run until it ends, cb returns non-zero, or
 * SIGINT. 0 when the stream ended cleanly or was stopped. */
int swc_client_stream(struct swc_client *c, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *msg_desc, swc_client_msg_cb cb, void *data,
                      struct swc_err *err);

/* The loop, for timers of the progress display. */
uv_loop_t *swc_client_loop(struct swc_client *c);

/* Close the connection and the loop. */
void swc_client_close(struct swc_client *c);

#endif
