/* Private parts of the raft adapter shared by its files: the adapter
 * object, the entry/snapshot codec and the transport seam.
 *
 * Transport seam: swc_raft_transport_init/close (transport.c) are the only
 * place that chooses how raft talks to its peers: raft's stock TCP transport
 * (raft_uv_tcp_init) by default, or, when the owner passes a struct
 * swc_raft_transport, a struct raft_uv_transport whose connect asks the
 * owner for a stream (swc_raft_connect_done) and whose inbound side is
 * swc_raft_accept. The secure-channel relay (DESIGN §5 "Custom transport
 * works") lives with the owner (it needs the node's identity and its one
 * listening port): it gives us one end of a socketpair as a uv_pipe_t (raft
 * later closes it and frees it with raft_free, which is swc_free here) and
 * pumps the other end through the secure channel, naming the peer's raft
 * id/address from its authenticated certificate. Nothing else in src/raft
 * changes. */
#ifndef SWC_RAFT_RAFT_INT_H
#define SWC_RAFT_RAFT_INT_H

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>

#include "raft/raft.h"

/* Entries and snapshots are sealed with the data key when
 * SWC_RAFT_SEAL is 1 (the default); build with -DSWC_RAFT_SEAL=0 to drop the
 * dependency on net/cert.c (a data key is then refused with SWC_ENOTSUP). */
#ifndef SWC_RAFT_SEAL
#define SWC_RAFT_SEAL 1
#endif

/* Entry layout: 8-byte header {'S','W','R','E', version 1, flags, pad, 0}
 * then frames {u64 proposer, u64 seq, u32 len, len bytes} (big-endian); when
 * flags has SWC_RAFT_F_SEALED the bytes after the header are one sealed blob
 * whose plaintext is the frames. Proposer 0 marks an adapter-internal frame
 * (kind byte + arguments), never shown to the owner's FSM. The entry ends
 * with pad (0-7) zero bytes so its length is a multiple of 8: raft 0.15's
 * receiver assumes that when several entries arrive in one AppendEntries.
 * Snapshot layout: 8-byte header {'S','W','R','S', 1, flags, 0, 0}, u32
 * count of removed ids, the ids (u64 each), then the owner's bytes (sealed
 * when flagged). */
#define SWC_RAFT_HDR_LEN    8
#define SWC_RAFT_FRAME_HDR  20
#define SWC_RAFT_F_SEALED   0x01
#define SWC_RAFT_INT_REMOVE 1 /* internal frame: a raft id was removed */
/* Sizes of this many recently applied entries are kept (trailing by bytes). */
#define SWC_RAFT_RING 1024

/* Write an entry or snapshot header. */
void swc_raft_hdr_put(uint8_t *p, char kind, uint8_t flags);
/* Check a header of kind 'E' or 'S'; 0 (flags set) or SWC_EPROTO. */
int swc_raft_hdr_get(const uint8_t *p, size_t len, char kind, uint8_t *flags);

/* One frame from an entry body. */
struct swc_raft_frame {
    uint64_t proposer;
    uint64_t seq;
    const uint8_t *payload;
    uint32_t len;
};
/* Decode the frame at *off in body and advance *off: 1 when a frame was
 * read, 0 at the end, -1 when malformed. */
int swc_raft_frame_next(const uint8_t *body, size_t len, size_t *off, struct swc_raft_frame *f);

struct swc_raft_batch;
struct swc_raft_change;

/* Liveness of a voter as last seen by this leader. */
struct swc_raft_seen {
    uint64_t id;
    uint64_t last_ms;
};

struct swc_raft {
    uv_loop_t *loop;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    /* Custom transport (cfg->transport), when set. */
    bool custom_transport;
    struct swc_raft_transport tops;
    raft_uv_accept_cb accept_cb;
    /* Stock TCP transport, wrapped by r->transport so accepted streams can
     * be watched for EOF (early election); its close callback. */
    struct raft_uv_transport tcp;
    raft_uv_transport_close_cb tcp_close_cb;
    struct swc_raft_connect *connects; /* handed to the owner, not yet delivered to raft */
    struct swc_raft_inbound *inbound;  /* accepted streams to deliver to raft */
    struct raft_fsm rfsm;
    struct raft_tracer tracer;
    struct swc_raft_fsm fsm;
    swc_raft_leader_cb on_leader;
    void *cb_data;

    uint64_t id;
    char address[SWC_RAFT_ADDR_MAX];
    char dir[4096];
    unsigned election_ms, heartbeat_ms, snap_threshold, snap_trailing, retry_ms, install_ms;
    bool sealed;
    uint8_t key[SWC_RAFT_KEY_LEN];

    uv_prepare_t prepare;
    uv_check_t check;
    uv_idle_t idle;
    int handles_open;
    bool started;
    bool closing, raft_close_called, raft_closed;
    swc_raft_close_cb close_cb;
    void *close_data;

    /* Group commit: the batch being filled this turn, closed batches not yet
     * handed to raft, batches whose callbacks are due. */
    struct swc_raft_batch *open;
    struct swc_raft_batch *ready_head, *ready_tail;
    struct swc_raft_batch *done_head, *done_tail;
    uint64_t next_seq;
    int inflight;

    /* Results of the entry being applied (for the raft_apply callback). */
    int *results;
    size_t n_results, cap_results;
    struct swc_buf plain; /* reused decryption buffer */

    /* Leadership as reported to the owner. */
    int lead_phase; /* 0 none, 1 barrier pending, 2 ready (reported) */
    raft_term lead_term;
    struct raft_barrier *barrier;
    int barrier_status; /* -1 pending */
    struct swc_raft_seen *seen;
    size_t n_seen;

    /* One membership change at a time. */
    struct swc_raft_change *change;

    /* Raft ids removed from the cluster (replicated; never reused). */
    uint64_t *removed;
    size_t n_removed;

    /* Snapshot buffers, reused between snapshots (version-2 FSM). */
    struct swc_buf snap_hdr, snap_owner; /* sealed in place when sealed */
    struct raft_buffer snap_bufs[2];

    /* Byte-based snapshot trigger (fsm.c): bytes of entries applied since
     * the last snapshot, and the sizes of the last SWC_RAFT_RING applied
     * entries (a ring) to cap what a snapshot leaves in memory. */
    size_t snap_log_bytes, snap_trail_bytes; /* limits */
    size_t log_bytes, last_snap_len;
    uint32_t ring[SWC_RAFT_RING];
    unsigned ring_head, ring_n;
    bool snap_forced; /* threshold lowered until the next snapshot */
    bool trim_due;    /* a snapshot compacted the log: return freed memory */
    int64_t trim_at;  /* monotonic ns of the last trim (fsm.c) */

    /* Early election (raft.c): off when the owner asked so; while one runs
     * (early_at != 0, raft time of the loss), the lost leader, the offset
     * from early_at after which we stop retrying, and whether the leader is
     * still to be forgotten. */
    bool early_off;
    raft_time early_at;
    uint64_t early_lost;
    unsigned early_until;
    bool early_forget;

    struct swc_err err;
    struct swc_raft_stats stats;
};

/* Shared between the adapter's files (codec.c, fsm.c, membership.c, raft.c). */
void swc_raft_heap_install(void);
int swc_raft_map_err(int raft_rv);
bool swc_raft_removed_has(struct swc_raft *r, uint64_t id);
int swc_raft_removed_add(struct swc_raft *r, uint64_t id);
void swc_raft_fsm_setup(struct swc_raft *r);
/* After a snapshot compacted the log, give freed heap back to the OS. */
void swc_raft_trim_run(struct swc_raft *r);
/* Make sure the check handle runs at the end of this loop turn. */
void swc_raft_kick(struct swc_raft *r);
/* Append a frame (proposer 0 = internal, cb may be NULL) to this turn's batch. */
int swc_raft_append_frame(struct swc_raft *r, uint64_t proposer, const void *p, size_t len,
                          swc_raft_propose_cb cb, void *data);
void swc_raft_note_liveness(struct swc_raft *r);
void swc_raft_change_step(struct swc_raft *r);
void swc_raft_change_abort(struct swc_raft *r);
bool swc_raft_change_has_work(struct swc_raft *r);

/* Early election. The connection on which peer id sent to us ended with EOF
 * or an error (transport.c watches every accepted stream): when id is our
 * leader, cut the election timer short (raft.c). Called from a libuv read
 * callback, never inside raft. */
void swc_raft_peer_lost(struct swc_raft *r, uint64_t id);
/* Pure: how long after losing its leader's connection a follower starts its
 * election. rank is its place among the surviving voters by raft id (0 =
 * lowest), rnd any random number. rank 0 waits [0, heartbeat) so its
 * (pre-)vote requests find the others already leaderless; each further rank
 * waits another 3/5 of the election timeout, so two survivors do not split
 * the vote (rank 2 and up: the normal timeout is as soon). */
unsigned swc_raft_early_delay_ms(unsigned rank, unsigned election_ms, unsigned heartbeat_ms,
                                 unsigned rnd);
/* Pure: until how long after the loss a candidate of this rank may repeat
 * its requests: it stops two heartbeats before the next rank starts, so
 * their requests never cross. */
unsigned swc_raft_early_retry_until_ms(unsigned rank, unsigned election_ms, unsigned heartbeat_ms);

/* The transport seam (see the top of this file). */
int swc_raft_transport_init(struct swc_raft *r);
void swc_raft_transport_close(struct swc_raft *r);
/* Deliver finished connects and accepted streams to raft (check handle). */
void swc_raft_transport_run(struct swc_raft *r);
bool swc_raft_transport_has_work(struct swc_raft *r);

#endif
