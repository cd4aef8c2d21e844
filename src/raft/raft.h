/* The raft adapter: a replicated log with group commit over canonical/raft.
 *
 * This is the only interface the rest of swarmc uses for consensus; it never
 * exposes raft types. A struct swc_raft is bound to one libuv loop and drives
 * one raft server whose disk state lives in <state_dir>/raft (raft_uv
 * segments and snapshots). The owner supplies a small FSM vtable
 * (apply/snapshot/restore) that knows nothing of raft.
 *
 * Group commit: every proposal made during one loop turn is packed into one
 * raft entry (split before SWC_RAFT_MAX_ENTRY bytes) and handed to raft at the
 * end of the turn, so a burst of writes costs one fsync. On every manager the
 * FSM's apply is called once per packed proposal, in order; on the proposing
 * manager the proposal's callback gets the FSM's int result.
 *
 * Callbacks (proposal results, leadership changes, membership changes, close)
 * are never called from inside swc_raft_* calls and never from inside raft
 * itself: they are delivered from a uv_check handle at the end of the loop
 * turn, so a callback may call any swc_raft_* function, including close.
 *
 * Entries and snapshots are sealed with the cluster data key when one is
 * given (swc_data_seal from net/cert.h); raft's index and term stay clear. */
#ifndef SWC_RAFT_RAFT_H
#define SWC_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/err.h"

/* Largest raft entry (packed proposals plus framing) we build: 1.5 MiB. */
#define SWC_RAFT_MAX_ENTRY (1536u * 1024u)
/* Largest single proposal payload (what fits in one entry with its frame). */
#define SWC_RAFT_MAX_PROPOSAL (SWC_RAFT_MAX_ENTRY - 128u)
/* Longest "host:port" address, including the NUL. */
#define SWC_RAFT_ADDR_MAX 256

struct swc_raft;

/* The owner's state machine. All three functions run on the loop thread,
 * from inside raft; they must not call swc_raft_* functions that change
 * state (propose, add, remove, close) -- do that from the callbacks below. */
struct swc_raft_fsm {
    void *data;
    /* Apply one committed proposal (raft index of its entry, payload bytes,
     * valid only during the call). Must be deterministic: every manager
     * applies the same proposals in the same order. The return value (0 or a
     * SWC_E* code such as SWC_ECONFLICT; not SWC_ELEADERLOST or SWC_ECLOSED,
     * which the adapter itself reports) goes to the proposer's callback.
     * Every proposal packed in one entry gets the same index. */
    int (*apply)(void *data, uint64_t index, const uint8_t *payload, size_t len);
    /* Serialize the whole state into out. out is the same buffer every time
     * (reused, so its pages stay faulted in): reset out->len, then append.
     * 0 or a SWC_E* code (the snapshot is then skipped and retried later). */
    int (*snapshot)(void *data, struct swc_buf *out);
    /* Replace the whole state with a snapshot made by snapshot() (bytes valid
     * only during the call). 0 or a SWC_E* code. */
    int (*restore)(void *data, const uint8_t *p, size_t len);
};

/* Leadership changed: leader is true once this manager won an election and
 * has applied the whole log (a barrier committed), false when it stepped down
 * (follower or candidate). Calls alternate, starting with true; closing the
 * adapter makes no call. */
typedef void (*swc_raft_leader_cb)(struct swc_raft *r, bool leader, void *data);

/* A proposal finished: result is the FSM's return value for it, or
 * SWC_ELEADERLOST (leadership lost before it was applied here: the outcome
 * is unknown, it may still commit under the next leader), or SWC_ECLOSED
 * (the adapter was closed first). Called exactly once per accepted proposal. */
typedef void (*swc_raft_propose_cb)(void *data, int result);

/* A membership change finished: 0 or a SWC_E* code. */
typedef void (*swc_raft_change_cb)(void *data, int status);

/* swc_raft_close finished; r has been freed. */
typedef void (*swc_raft_close_cb)(void *data);

/* A connection attempt handed to a custom transport (opaque). */
struct swc_raft_connect;

/* A transport the owner supplies instead of raft's plain TCP, e.g. the relay
 * that carries raft's bytes through the secure channel on the node's one
 * port. Raft only ever sees libuv streams: for each peer the owner makes a
 * socketpair, gives one end to the adapter as a uv_pipe_t (allocated with
 * swc_malloc, initialized on the adapter's loop; from then on the adapter
 * owns it and closes and frees it) and pumps the other end through the
 * secure channel, with backpressure (a snapshot is one large write). */
struct swc_raft_transport {
    void *data;
    /* Open a stream to manager id at address. Return 0 and later call
     * swc_raft_connect_done exactly once (also after the adapter closed), or
     * return a SWC_E* code (raft retries after its connect delay). */
    int (*connect)(void *data, uint64_t id, const char *address, struct swc_raft_connect *req);
};

/* Finish a connection attempt: status 0 with the stream (now owned by the
 * adapter), or a SWC_E* code with stream NULL. Never calls back into the
 * transport synchronously; safe after the adapter was closed (the stream is
 * then closed and freed). */
void swc_raft_connect_done(struct swc_raft_connect *req, uv_stream_t *stream, int status);

struct swc_raft_config {
    const char *state_dir;         /* raft data goes to <state_dir>/raft (created) */
    uint64_t id;                   /* this manager's raft id, > 0, never reused */
    const char *address;           /* "host:port" this manager listens on and advertises */
    unsigned election_timeout_ms;  /* 0 = 500 */
    unsigned heartbeat_timeout_ms; /* 0 = 50 */
    unsigned snapshot_threshold;   /* entries between snapshots; 0 = 10,000 */
    unsigned snapshot_trailing;    /* entries kept after a snapshot; 0 = 500 */
    /* Also snapshot once the entries applied since the last snapshot add up
     * to this many bytes, or to half the last snapshot's size if that is
     * more (raft keeps them all in memory until then); 0 = 8 MiB. With group commit an entry
     * carries up to 1.5 MiB, so the entry count alone would let the log hold the whole state many
     * times over. */
    size_t snapshot_log_bytes;
    /* Keep at most this many bytes of entries after a snapshot (fewer than
     * snapshot_trailing entries when they are big; at least one); 0 = 4 MiB.
     * A follower further behind gets the snapshot instead. */
    size_t snapshot_trailing_bytes;
    unsigned connect_retry_ms; /* transport reconnect delay; 0 = 100 */
    /* Resend an unanswered InstallSnapshot after this long; 0 = 5,000. A
     * follower busy writing its own snapshot drops an incoming one without
     * answering (raft 0.15), and raft's default waits 30 s to retry. */
    unsigned install_snapshot_timeout_ms;
    /* Optional cluster data key (SWC_RAFT_KEY_LEN bytes, copied); NULL means
     * entries and snapshots are stored and sent in clear. */
    const uint8_t *data_key;
    struct swc_raft_fsm fsm;
    /* Optional custom transport (copied); NULL = raft's plain TCP transport
     * listening on address. */
    const struct swc_raft_transport *transport;
    swc_raft_leader_cb on_leader; /* optional */
    void *cb_data;                /* passed to on_leader */
    /* Early election is on by default: a follower whose connection to its
     * leader ends (EOF or reset: the leader's process died) starts its
     * election after a short delay instead of the full election timeout.
     * true turns it off (benchmarks compare both). */
    bool early_election_off;
};

#define SWC_RAFT_KEY_LEN 32

/* One member of the current raft configuration. */
struct swc_raft_member {
    uint64_t id;
    char address[SWC_RAFT_ADDR_MAX];
    bool voter;  /* false: still being added (spare/standby) */
    bool leader; /* the leader as this manager knows it */
    /* On the leader: heard from within two election timeouts (itself
     * always). Elsewhere: unknown, reported as true. */
    bool reachable;
};

/* Create an adapter bound to loop (nothing runs until start). On failure
 * returns a SWC_E* code with a message in err and *out is NULL. The caller
 * must ignore SIGPIPE process-wide (signal(SIGPIPE, SIG_IGN)) before start. */
int swc_raft_init(uv_loop_t *loop, const struct swc_raft_config *cfg, struct swc_raft **out,
                  struct swc_err *err);

/* Make this a fresh one-manager cluster (before start, on an empty state
 * dir). SWC_EEXIST when the state dir already holds raft state. */
int swc_raft_bootstrap(struct swc_raft *r);

/* Disaster recovery after permanent quorum loss (before start): rewrite the
 * configuration to just this manager, keeping every entry and snapshot, so
 * that start brings it up as a one-manager cluster with all data. */
int swc_raft_force_new_cluster(struct swc_raft *r);

/* Load the state from disk (FSM restore from the last snapshot, then log
 * replay as entries commit) and join the cluster. A manager that was never
 * bootstrapped waits to be added by a leader. */
int swc_raft_start(struct swc_raft *r);

/* Stop: queued and in-flight proposals get SWC_ECLOSED (unless already
 * finished), pending membership changes too; then cb(data) runs once raft,
 * its disk I/O and transport are closed, and r is freed. Safe from any
 * adapter callback (it is deferred out of raft). */
void swc_raft_close(struct swc_raft *r, swc_raft_close_cb cb, void *data);

/* Custom transport: hand raft an inbound stream from manager id (address
 * as it advertises). Authenticate id from the peer's certificate first:
 * raft believes it. 0 (the adapter owns the stream), or SWC_ESTATE (not
 * started, closing, or no custom transport) and the caller keeps it. */
int swc_raft_accept(struct swc_raft *r, uint64_t id, const char *address, uv_stream_t *stream);

/* Propose payload (copied) for replication. 0: cb will be called once with
 * the FSM's result. SWC_ENOTLEADER (use swc_raft_leader to find the leader),
 * SWC_ETOOBIG (len > SWC_RAFT_MAX_PROPOSAL), SWC_ECLOSED or SWC_ENOMEM: no
 * callback. Never times out. */
int swc_raft_propose(struct swc_raft *r, const void *payload, size_t len, swc_raft_propose_cb cb,
                     void *data);

/* True while this manager is the raft leader (proposals are accepted). */
bool swc_raft_is_leader(struct swc_raft *r);

/* The leader this manager knows of: its id and address (copied into addr,
 * SWC_RAFT_ADDR_MAX bytes; either pointer may be NULL). 0, or SWC_ENOENT
 * when no leader is known right now. */
int swc_raft_leader(struct swc_raft *r, uint64_t *id, char *addr);

/* This manager's raft id. */
uint64_t swc_raft_id(struct swc_raft *r);

/* Index of the last entry applied to the FSM here. */
uint64_t swc_raft_applied_index(struct swc_raft *r);

/* Add a manager (leader only) as a voter: raft_add, then promote once it has
 * caught up. SWC_ENOTLEADER, SWC_EEXIST (id or address already a member),
 * SWC_EINVAL (id 0, or an id that was removed before: ids are never reused),
 * SWC_EBUSY (another change is in progress); otherwise 0 and cb(data, status)
 * later. The new manager must be started (not bootstrapped) with this id. */
int swc_raft_add(struct swc_raft *r, uint64_t id, const char *address, swc_raft_change_cb cb,
                 void *data);

/* Remove a manager (leader only). Refused with SWC_EQUORUM, and a message in
 * swc_raft_errmsg, when the live voters left would be fewer than a majority
 * of the new configuration, or when it is the last voter. SWC_ENOENT when id
 * is not a member; otherwise 0 and cb(data, status) later. */
int swc_raft_remove(struct swc_raft *r, uint64_t id, swc_raft_change_cb cb, void *data);

/* The current configuration: *out is an array of *n members allocated with
 * swc_malloc (free it with swc_free). 0 or SWC_ENOMEM. */
int swc_raft_members(struct swc_raft *r, struct swc_raft_member **out, size_t *n);

/* A message describing the last refused or failed operation. */
const char *swc_raft_errmsg(struct swc_raft *r);

/* Counters for tests and benchmarks. */
struct swc_raft_stats {
    uint64_t entries_proposed;   /* raft entries built by group commit */
    uint64_t proposals_proposed; /* proposals packed into them */
    uint64_t snapshots_taken;
    uint64_t snapshots_restored;
    uint64_t snapshots_by_bytes; /* of snapshots_taken, triggered by snapshot_log_bytes */
    uint64_t log_bytes;          /* bytes of entries applied since the last snapshot */
    uint64_t mem_entries;        /* entries raft holds in memory now */
    uint64_t mem_bytes;          /* their payload bytes */
    uint64_t early_elections;    /* leader connection lost: election timer cut short */
    uint64_t early_retries;      /* of those, candidacies restarted after lost answers */
};
void swc_raft_stats(struct swc_raft *r, struct swc_raft_stats *out);

#endif
