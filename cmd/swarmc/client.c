/* Blocking RPC client (see client.h). Each call runs the private loop
 * until its callback sets a flag; the RPC layer guarantees the callback
 * fires exactly once, with a timeout as the backstop. Listings can unpack
 * their reply into an arena (a few large chunks, bump allocation, freed at
 * once by swc_client_free_reply): a 10,000-task ListTasks reply is some
 * 300,000 small protobuf-c allocations, which malloc made the CLI's main
 * cost. Replies are unpacked in the reply callback, from the receive
 * buffer, without a copy. */
#include "client.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "api/control.pb-c.h"
#include "base/alloc.h"
#include "daemon/daemon.h"
#include "net/rpc.h"

const char *swc_client_default_host(void)
{
    const char *h = getenv("SWARMC_HOST");
    return h != NULL && h[0] != '\0' ? h : SWC_DEFAULT_SOCKET;
}

struct connect_state {
    bool done;
    int status;
};

static void connect_cb(struct swc_rpc_conn *conn, int status, void *data)
{
    struct connect_state *st = data;
    (void)conn;
    st->done = true;
    st->status = status;
}

int swc_client_open(struct swc_client *c, const char *addr, struct swc_err *err)
{
    struct connect_state st = {false, 0};
    struct swc_rpc_conn_opts opts;
    memset(c, 0, sizeof *c);
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&c->loop) != 0) {
        return swc_err_set(err, SWC_EIO, "cannot start an event loop");
    }
    c->loop_init = true;
    memset(&opts, 0, sizeof opts);
    opts.on_connect = connect_cb;
    opts.data = &st;
    if (swc_rpc_connect(&c->loop, addr, &opts, &c->conn) != 0) {
        c->conn = NULL;
        return swc_err_set(err, SWC_EINVAL, "invalid daemon address \"%s\"", addr);
    }
    while (!st.done && uv_run(&c->loop, UV_RUN_ONCE) != 0) {
    }
    if (!st.done || st.status != 0) {
        return swc_err_set(err, SWC_EUNAVAIL,
                           "cannot connect to the swarmc daemon at %s (%s): is `swarmc daemon` "
                           "running? Use -H or SWARMC_HOST for another socket",
                           addr, swc_strerror(st.done ? st.status : SWC_EUNAVAIL));
    }
    return 0;
}

/* ---- reply arenas ------------------------------------------------------------ */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct reply_arena {
    ProtobufCAllocator pa; /* first: the allocator_data points here */
    struct arena_chunk *chunks;
    ProtobufCMessage *msg;
    struct reply_arena *next;
    bool prefault; /* a big reply: its chunks will be filled */
};

/* Live arenas of this process (a CLI holds a handful of replies at once). */
static struct reply_arena *live_arenas;

#define ARENA_CHUNK (256 * 1024)

/* Fault in a new chunk's pages with one call rather than one page fault
 * each (page faults are slow on these VMs); a hint, errors ignored. */
static void arena_prefault(struct arena_chunk *c)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)c->data + pg - 1) & ~(pg - 1);
    uintptr_t hi = ((uintptr_t)c->data + c->cap) & ~(pg - 1);
    if (hi > lo) {
        (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
    }
#else
    (void)c;
#endif
}

static void *arena_alloc(void *data, size_t size)
{
    struct reply_arena *a = data;
    struct arena_chunk *c = a->chunks;
    size_t al = sizeof(max_align_t);
    size = (size + al - 1) / al * al;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        c = swc_malloc(sizeof *c + cap);
        if (c == NULL) {
            return NULL;
        }
        c->used = 0;
        c->cap = cap;
        c->next = a->chunks;
        a->chunks = c;
        if (a->prefault) {
            arena_prefault(c);
        }
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

static void arena_free_one(void *data, void *p)
{
    (void)data; /* everything goes with the arena */
    (void)p;
}

static void arena_destroy(struct reply_arena *a)
{
    struct arena_chunk *c = a->chunks;
    while (c != NULL) {
        struct arena_chunk *n = c->next;
        swc_free(c);
        c = n;
    }
    swc_free(a);
}

/* Unpack payload into a new arena; the message or NULL. */
static ProtobufCMessage *arena_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                      size_t len, swc_client_unpack_fn unpack)
{
    struct reply_arena *a = swc_calloc(1, sizeof *a);
    if (a == NULL) {
        return NULL;
    }
    a->pa.alloc = arena_alloc;
    a->pa.free = arena_free_one;
    a->pa.allocator_data = a;
    a->prefault = len >= ARENA_CHUNK;
    a->msg = unpack != NULL ? unpack(desc, &a->pa, len, data) : NULL;
    if (a->msg == NULL) { /* what a failed fast decoder took stays in the arena */
        a->msg = protobuf_c_message_unpack(desc, &a->pa, len, data);
    }
    if (a->msg == NULL) {
        arena_destroy(a);
        return NULL;
    }
    a->next = live_arenas;
    live_arenas = a;
    return a->msg;
}

void swc_client_free_reply(ProtobufCMessage *msg)
{
    if (msg == NULL) {
        return;
    }
    for (struct reply_arena **pp = &live_arenas; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->msg == msg) {
            struct reply_arena *a = *pp;
            *pp = a->next;
            arena_destroy(a);
            return;
        }
    }
    protobuf_c_message_free_unpacked(msg, &swc_pb_allocator);
}

/* ---- calls ------------------------------------------------------------------- */

struct call_state {
    bool done;
    int status;
    char msg[SWC_ERRMSG_SIZE];
    const ProtobufCMessageDescriptor *desc;
    bool arena;
    swc_client_unpack_fn unpack;
    ProtobufCMessage *resp;
};

static void reply_cb(struct swc_rpc_call *call, int status, const char *errmsg,
                     const uint8_t *payload, size_t len, void *data)
{
    struct call_state *st = data;
    (void)call;
    st->done = true;
    st->status = status;
    snprintf(st->msg, sizeof st->msg, "%s", errmsg ? errmsg : "");
    if (status == 0) {
        /* unpack straight from the receive buffer (no copy of the reply) */
        st->resp = st->arena ? arena_unpack(st->desc, payload, len, st->unpack)
                             : protobuf_c_message_unpack(st->desc, &swc_pb_allocator, len, payload);
    }
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = swc_malloc(*len ? *len : 1);
    if (buf == NULL) {
        abort();
    }
    protobuf_c_message_pack(m, buf);
    return buf;
}

/* Every response's `Error error` field: a non-zero code fails the call. */
static int reply_error(const ProtobufCMessage *m, struct swc_err *err)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "error");
    const Swarmc__Error *e;
    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return 0;
    }
    e = *(Swarmc__Error *const *)((const char *)m + f->offset);
    if (e == NULL || e->code == 0) {
        return 0;
    }
    return swc_err_set(err, (int)e->code, "%s",
                       e->message[0] ? e->message : swc_strerror((int)e->code));
}

int swc_client_call(struct swc_client *c, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *resp_desc, uint32_t timeout_ms,
                    ProtobufCMessage **resp, struct swc_err *err)
{
    struct call_state st;
    size_t len;
    uint8_t *buf = pack(req, &len);
    int rv;
    memset(&st, 0, sizeof st);
    st.desc = resp_desc;
    st.arena = c->arena_replies;
    st.unpack = c->unpack;
    *resp = NULL;
    rv = swc_rpc_call(c->conn, method, buf, len, timeout_ms ? timeout_ms : 60000, reply_cb, &st,
                      NULL);
    swc_free(buf);
    if (rv == SWC_ECLOSED) {
        return swc_err_set(err, rv,
                           "lost the connection to the swarmc daemon at %s: did it stop? (see "
                           "its log)",
                           c->addr);
    }
    if (rv != 0) {
        return swc_err_set(err, rv, "%s: %s", method, swc_strerror(rv));
    }
    while (!st.done && uv_run(&c->loop, UV_RUN_ONCE) != 0) {
    }
    if (!st.done) {
        return swc_err_set(err, SWC_EINTERNAL, "%s: no reply", method);
    }
    if (st.status != 0) {
        if (st.status == SWC_ECANCELED) {
            return swc_err_set(err, st.status,
                               "the swarmc daemon at %s closed the connection during %s: did it "
                               "stop? (see its log)",
                               c->addr, method);
        }
        if (st.status == SWC_ETIMEDOUT) {
            return swc_err_set(err, st.status, "no answer from the swarmc daemon at %s to %s",
                               c->addr, method);
        }
        return swc_err_set(err, st.status, "%s", st.msg[0] ? st.msg : swc_strerror(st.status));
    }
    *resp = st.resp;
    if (*resp == NULL) {
        return swc_err_set(err, SWC_EPROTO, "%s: the daemon sent a reply that does not decode",
                           method);
    }
    rv = reply_error(*resp, err);
    if (rv != 0) {
        swc_client_free_reply(*resp);
        *resp = NULL;
    }
    return rv;
}

struct stream_state {
    bool done;
    bool stopped;
    int status;
    char msg[SWC_ERRMSG_SIZE];
    const ProtobufCMessageDescriptor *desc;
    swc_client_msg_cb cb;
    void *data;
    struct swc_rpc_call *call;
};

static void stream_msg_cb(struct swc_rpc_call *call, const uint8_t *payload, size_t len, void *data)
{
    struct stream_state *st = data;
    ProtobufCMessage *m;
    if (st->stopped) {
        return;
    }
    m = protobuf_c_message_unpack(st->desc, &swc_pb_allocator, len, payload);
    if (m == NULL) {
        return;
    }
    if (st->cb(m, st->data) != 0) {
        st->stopped = true;
        swc_rpc_cancel(call);
    }
}

static void stream_end_cb(struct swc_rpc_call *call, int status, const char *errmsg, void *data)
{
    struct stream_state *st = data;
    (void)call;
    st->done = true;
    st->status = status;
    snprintf(st->msg, sizeof st->msg, "%s", errmsg ? errmsg : "");
}

static void sigint_cb(uv_signal_t *h, int signum)
{
    struct stream_state *st = h->data;
    (void)signum;
    if (!st->stopped) {
        st->stopped = true;
        swc_rpc_cancel(st->call);
    }
}

int swc_client_stream(struct swc_client *c, const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *msg_desc, swc_client_msg_cb cb, void *data,
                      struct swc_err *err)
{
    struct stream_state st;
    uv_signal_t sig;
    size_t len;
    uint8_t *buf = pack(req, &len);
    int rv;
    memset(&st, 0, sizeof st);
    st.desc = msg_desc;
    st.cb = cb;
    st.data = data;
    rv = swc_rpc_stream_open(c->conn, method, buf, len, 0, stream_msg_cb, stream_end_cb, &st,
                             &st.call);
    swc_free(buf);
    if (rv != 0) {
        return swc_err_set(err, rv, "%s: %s", method, swc_strerror(rv));
    }
    uv_signal_init(&c->loop, &sig);
    sig.data = &st;
    uv_signal_start(&sig, sigint_cb, SIGINT);
    while (!st.done && uv_run(&c->loop, UV_RUN_ONCE) != 0) {
    }
    uv_close((uv_handle_t *)&sig, NULL);
    uv_run(&c->loop, UV_RUN_NOWAIT);
    if (st.stopped) {
        return 0;
    }
    if (st.status != 0) {
        return swc_err_set(err, st.status, "%s", st.msg[0] ? st.msg : swc_strerror(st.status));
    }
    return 0;
}

uv_loop_t *swc_client_loop(struct swc_client *c)
{
    return &c->loop;
}

void swc_client_close(struct swc_client *c)
{
    if (c->conn != NULL) {
        swc_rpc_conn_close(c->conn, NULL, NULL);
        c->conn = NULL;
    }
    if (c->loop_init) {
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
        c->loop_init = false;
    }
}
