/* The raft adapter over canonical/raft 0.15 (see raft.h).
 *
 * How a write travels: swc_raft_propose appends a frame {proposer, seq, len,
 * bytes} to the batch being filled this loop turn (a new batch starts before
 * SWC_RAFT_MAX_ENTRY). A uv_check handle runs at the end of the turn and
 * hands every closed batch to raft_apply as one entry (sealed with the data
 * key first when there is one). When raft applies an entry, our raft FSM
 * decodes the frames and calls the owner's apply once per proposal, keeping
 * the results; on the leader raft then calls the batch's raft_apply callback
 * with them, and the batch moves to a "done" list. The same check handle
 * delivers the done callbacks, so owner callbacks never run inside raft.
 *
 * Leadership: 0.15 has no state-change callback, so a prepare/check pair
 * compares raft_state() and the term every turn. On winning, we append a
 * barrier; once it applies the whole log is applied and on_leader(true) is
 * called. Losing leadership fails queued proposals with SWC_ELEADERLOST
 * (raft fails the in-flight ones itself) and calls on_leader(false).
 *
 * Early election: the kill -9 of a leader closes its sockets at once, so a
 * follower reads EOF on the leader's connection within a millisecond but
 * would still wait its randomized election timeout (500-1000 ms) before
 * asking for votes. When that connection ends (transport.c reports it),
 * the follower forgets its leader -- raft 0.15 refuses (pre-)votes while it
 * knows one, so the other survivor must forget it too -- and moves its
 * election timer's start back so it expires after a short delay that
 * depends on its rank among the surviving voters (swc_raft_early_delay_ms):
 * the lowest id goes first and each further rank 3/5 of an election timeout
 * later, so two survivors never ask at once and split the vote. raft's next
 * tick then starts the pre-vote. A candidate whose requests or answers were
 * lost asks again about every other heartbeat until shortly before the next
 * rank's turn: on a connection to a peer that restarted since we last wrote
 * to it, raft's first write vanishes and the second fails, then raft
 * reconnects. Only the timer's start moves: a heartbeat from a leader that
 * is in fact alive resets it to the full timeout, and a pre-vote while the
 * leader is alive is refused by the leader and by every follower that still
 * hears from it, so a connection that merely drops and comes back deposes
 * nobody. A host that vanishes without closing its sockets is left to the
 * normal timeout.
 *
 * Shutdown: swc_raft_close only sets a flag; the check handle calls
 * raft_close (never from inside a raft callback), raft's close callback
 * releases raft_uv and the transport, then our handles close and the owner's
 * callback runs.
 *
 * raft's heap goes through the swc allocation seam, so buffers built with
 * swc_buf can be handed to raft_apply directly. */
#include "raft/raft_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#if SWC_RAFT_SEAL
#include "net/cert.h"
#endif

#define MOD "raft"

struct swc_raft_prop {
    swc_raft_propose_cb cb;
    void *data;
    int result;
};

struct swc_raft_batch {
    struct raft_apply req;
    struct swc_raft *r;
    struct swc_raft_batch *next;
    struct swc_buf buf; /* header + frames (plaintext) */
    struct swc_raft_prop *props;
    size_t n, cap;
};

/* --- small helpers ------------------------------------------------------ */

static void idle_cb(uv_idle_t *h)
{
    /* Only keeps the loop from blocking so the check handle runs soon. */
}

void swc_raft_kick(struct swc_raft *r)
{
    if (!uv_is_closing((uv_handle_t *)&r->idle)) {
        uv_idle_start(&r->idle, idle_cb);
    }
}

/* --- batches ------------------------------------------------------------ */

static void batch_free(struct swc_raft_batch *b)
{
    swc_buf_free(&b->buf);
    swc_free(b->props);
    swc_free(b);
}

static struct swc_raft_batch *batch_new(struct swc_raft *r)
{
    struct swc_raft_batch *b = swc_calloc(1, sizeof *b);
    if (b == NULL) {
        return NULL;
    }
    b->r = r;
    swc_buf_init(&b->buf);
    if (swc_buf_reserve(&b->buf, 4096) != 0) {
        swc_free(b);
        return NULL;
    }
    swc_raft_hdr_put(b->buf.data, 'E', 0);
    b->buf.len = SWC_RAFT_HDR_LEN;
    return b;
}

static void list_push(struct swc_raft_batch **head, struct swc_raft_batch **tail,
                      struct swc_raft_batch *b)
{
    b->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = b;
    } else {
        *head = b;
    }
    *tail = b;
}

/* Move a batch to the done list with every proposal's result set to code. */
static void batch_fail(struct swc_raft *r, struct swc_raft_batch *b, int code)
{
    for (size_t i = 0; i < b->n; i++) {
        b->props[i].result = code;
    }
    list_push(&r->done_head, &r->done_tail, b);
    swc_raft_kick(r);
}

/* Close the open batch so the next proposal starts a new entry. */
static void seal_open(struct swc_raft *r)
{
    if (r->open != NULL) {
        list_push(&r->ready_head, &r->ready_tail, r->open);
        r->open = NULL;
    }
}

/* Append one frame to the open batch (a new one when it would overflow). */
int swc_raft_append_frame(struct swc_raft *r, uint64_t proposer, const void *p, size_t len,
                          swc_raft_propose_cb cb, void *data)
{
    size_t need = SWC_RAFT_FRAME_HDR + len;
    if (r->open != NULL && r->open->buf.len + need > SWC_RAFT_MAX_ENTRY) {
        seal_open(r);
    }
    if (r->open == NULL) {
        r->open = batch_new(r);
        if (r->open == NULL) {
            return SWC_ENOMEM;
        }
    }
    struct swc_raft_batch *b = r->open;
    if (cb != NULL && b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        struct swc_raft_prop *np = swc_realloc(b->props, nc * sizeof *np);
        if (np == NULL) {
            return SWC_ENOMEM;
        }
        b->props = np;
        b->cap = nc;
    }
    if (swc_buf_reserve(&b->buf, need) != 0) {
        return SWC_ENOMEM;
    }
    uint8_t *o = b->buf.data + b->buf.len;
    swc_put_u64(o, proposer);
    swc_put_u64(o + 8, r->next_seq++);
    swc_put_u32(o + 16, (uint32_t)len);
    if (len > 0) {
        memcpy(o + SWC_RAFT_FRAME_HDR, p, len);
    }
    b->buf.len += need;
    if (cb != NULL) {
        b->props[b->n].cb = cb;
        b->props[b->n].data = data;
        b->props[b->n].result = 0;
        b->n++;
    }
    swc_raft_kick(r);
    return 0;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct swc_raft_batch *b = req->data;
    struct swc_raft *r = b->r;
    r->inflight--;
    if (status != 0) {
        batch_fail(r, b, r->closing ? SWC_ECLOSED : SWC_ELEADERLOST);
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        b->props[i].result = i < r->n_results ? r->results[i] : SWC_EINTERNAL;
    }
    list_push(&r->done_head, &r->done_tail, b);
    swc_raft_kick(r);
}

/* Hand every closed batch to raft as one entry each. */
static void flush(struct swc_raft *r)
{
    seal_open(r);
    while (r->ready_head != NULL) {
        struct swc_raft_batch *b = r->ready_head;
        r->ready_head = b->next;
        if (r->ready_head == NULL) {
            r->ready_tail = NULL;
        }
        if (raft_state(&r->raft) != RAFT_LEADER) {
            batch_fail(r, b, r->closing ? SWC_ECLOSED : SWC_ELEADERLOST);
            continue;
        }
        struct raft_buffer rb;
        struct swc_buf out;
        swc_buf_init(&out);
        if (r->sealed) {
#if SWC_RAFT_SEAL
            int rv = swc_buf_reserve(&out, b->buf.len + SWC_DATA_SEAL_OVERHEAD);
            if (rv == 0) {
                swc_raft_hdr_put(out.data, 'E', SWC_RAFT_F_SEALED);
                out.len = SWC_RAFT_HDR_LEN;
                rv = swc_data_seal(r->key, b->buf.data + SWC_RAFT_HDR_LEN,
                                   b->buf.len - SWC_RAFT_HDR_LEN, &out);
            }
            if (rv != 0) {
                swc_buf_free(&out);
                swc_errorf(MOD, "seal entry: %s", swc_strerror(rv));
                batch_fail(r, b, rv);
                continue;
            }
            swc_buf_free(&b->buf);
#endif
        } else {
            out = b->buf;
            swc_buf_init(&b->buf);
        }
        /* raft 0.15 sends entries unpadded but its receiver skips padding to
         * 8 bytes after each one: keep every entry a multiple of 8 long. */
        size_t pad = (8 - out.len % 8) % 8;
        if (pad > 0) {
            static const uint8_t zeros[8];
            if (swc_buf_append(&out, zeros, pad) != 0) {
                swc_buf_free(&out);
                batch_fail(r, b, SWC_ENOMEM);
                continue;
            }
            out.data[6] = (uint8_t)pad;
        }
        rb.base = out.data;
        rb.len = out.len;
        b->req.data = b;
        int rv = raft_apply(&r->raft, &b->req, &rb, 1, apply_cb);
        if (rv != 0) {
            swc_buf_free(&out);
            batch_fail(r, b, rv == RAFT_NOTLEADER ? SWC_ELEADERLOST : swc_raft_map_err(rv));
            continue;
        }
        r->inflight++;
        r->stats.entries_proposed++;
        r->stats.proposals_proposed += b->n;
    }
}

/* Fail every proposal not yet handed to raft. */
static void fail_queued(struct swc_raft *r, int code)
{
    seal_open(r);
    while (r->ready_head != NULL) {
        struct swc_raft_batch *b = r->ready_head;
        r->ready_head = b->next;
        batch_fail(r, b, code);
    }
    r->ready_tail = NULL;
}

static void deliver_done(struct swc_raft *r)
{
    while (r->done_head != NULL) {
        struct swc_raft_batch *b = r->done_head;
        r->done_head = b->next;
        if (r->done_head == NULL) {
            r->done_tail = NULL;
        }
        for (size_t i = 0; i < b->n; i++) {
            b->props[i].cb(b->props[i].data, b->props[i].result);
        }
        batch_free(b);
    }
}

/* --- tracer --------------------------------------------------------------- */

static void tracer_emit(struct raft_tracer *t, const char *file, int line, const char *msg)
{
    struct swc_raft *r = t->impl;
    swc_log(SWC_LOG_TRACE, MOD, "manager %llu: %s:%d %s", (unsigned long long)r->id, file, line,
            msg);
}

/* --- leadership and the per-turn check ------------------------------------ */

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct swc_raft *r = req->data;
    if (r != NULL && r->barrier == req) {
        r->barrier_status = status;
        r->barrier = NULL;
        swc_raft_kick(r);
    }
    swc_free(req);
}

static void lost_leadership(struct swc_raft *r)
{
    bool reported = r->lead_phase == 2;
    if (r->barrier != NULL) {
        r->barrier->data = NULL; /* its callback will only free it */
        r->barrier = NULL;
    }
    r->lead_phase = 0;
    r->n_seen = 0;
    fail_queued(r, r->closing ? SWC_ECLOSED : SWC_ELEADERLOST);
    if (reported && r->on_leader != NULL && !r->closing) {
        swc_infof(MOD, "manager %llu: no longer the leader", (unsigned long long)r->id);
        r->on_leader(r, false, r->cb_data);
    }
}

static void observe(struct swc_raft *r)
{
    int st = raft_state(&r->raft);
    raft_term term = r->raft.current_term;
    bool leader = st == RAFT_LEADER && !r->closing;

    if (r->lead_phase != 0 && (!leader || term != r->lead_term)) {
        lost_leadership(r);
    }
    if (leader && r->lead_phase == 0) {
        struct raft_barrier *b = swc_calloc(1, sizeof *b);
        if (b == NULL) {
            swc_raft_kick(r); /* retry next turn */
            return;
        }
        b->data = r;
        r->lead_term = term;
        r->lead_phase = 1;
        r->barrier_status = -1;
        r->barrier = b;
        int rv = raft_barrier(&r->raft, b, barrier_cb);
        if (rv != 0) {
            swc_free(b);
            r->barrier = NULL;
            r->lead_phase = 0;
            swc_raft_kick(r);
            return;
        }
    }
    if (r->lead_phase == 1 && r->barrier == NULL && r->barrier_status != -1) {
        if (r->barrier_status == 0) {
            r->lead_phase = 2;
            swc_infof(MOD, "manager %llu: leader for term %llu, log applied to %llu",
                      (unsigned long long)r->id, (unsigned long long)term,
                      (unsigned long long)raft_last_applied(&r->raft));
            if (r->on_leader != NULL) {
                r->on_leader(r, true, r->cb_data);
            }
        } else {
            r->lead_phase = 0; /* retried next turn while still leader */
            swc_raft_kick(r);
        }
    }
    if (r->lead_phase != 0) {
        swc_raft_note_liveness(r);
    }
}

/* --- early election ------------------------------------------------------- */

unsigned swc_raft_early_delay_ms(unsigned rank, unsigned election_ms, unsigned heartbeat_ms,
                                 unsigned rnd)
{
    unsigned jitter = heartbeat_ms > 0 ? rnd % heartbeat_ms : 0;
    return rank * (election_ms * 3 / 5) + jitter;
}

unsigned swc_raft_early_retry_until_ms(unsigned rank, unsigned election_ms, unsigned heartbeat_ms)
{
    unsigned end = (rank + 1) * (election_ms * 3 / 5);
    unsigned margin = 2 * heartbeat_ms; /* a retry may wait one tick more */
    return end > margin ? end - margin : 0;
}

/* Our place among the voters other than lost, by raft id (0 = lowest). */
static unsigned voter_rank(struct swc_raft *r, uint64_t lost)
{
    unsigned rank = 0;
    const struct raft_configuration *conf = &r->raft.configuration;
    for (unsigned i = 0; i < conf->n; i++) {
        const struct raft_server *s = &conf->servers[i];
        if (s->role == RAFT_VOTER && s->id != lost && s->id < r->id) {
            rank++;
        }
    }
    return rank;
}

/* Forget the leader (raft refuses (pre-)votes while it knows one), unless
 * a disk write of the leader's entries or snapshot is in flight: its
 * completion answers the leader at current_leader's address, which must
 * then still be there (early_step tries again). */
static bool forget_leader(struct swc_raft *r)
{
    if (raft_last_index(&r->raft) > r->raft.last_stored || r->raft.snapshot.put.data != NULL) {
        return false;
    }
    r->raft.follower_state.current_leader.id = 0;
    if (r->raft.follower_state.current_leader.address != NULL) {
        raft_free(r->raft.follower_state.current_leader.address);
    }
    r->raft.follower_state.current_leader.address = NULL;
    return true;
}

void swc_raft_peer_lost(struct swc_raft *r, uint64_t id)
{
    if (r->early_off || !r->started || r->closing || raft_state(&r->raft) != RAFT_FOLLOWER ||
        id == 0 || r->raft.follower_state.current_leader.id != id) {
        return;
    }
    unsigned rank = voter_rank(r, id);
    unsigned e = r->election_ms;
    unsigned delay = swc_raft_early_delay_ms(rank, e, r->heartbeat_ms,
                                             (unsigned)r->io.random(&r->io, 0, 1 << 30));
    raft_time now = r->io.time(&r->io);
    r->early_lost = id;
    r->early_at = now;
    r->early_until = swc_raft_early_retry_until_ms(rank, e, r->heartbeat_ms);
    r->early_forget = !forget_leader(r);
    r->stats.early_elections++;
    if (delay < e) {
        /* Re-randomize as raft would, then pretend the timer started long
         * ago, so that it expires after delay. */
        unsigned timeout = (unsigned)r->io.random(&r->io, (int)e, 2 * (int)e);
        raft_time back = timeout - delay;
        r->raft.follower_state.randomized_election_timeout = timeout;
        r->raft.election_timer_start = now > back ? now - back : 0;
    }
    swc_infof(MOD, "manager %llu: connection to leader %llu closed, election in %u ms",
              (unsigned long long)r->id, (unsigned long long)id, delay < e ? delay : e);
    swc_raft_kick(r);
}

/* Each loop turn while an early election runs: forget the lost leader once
 * no write is in flight, and when our (pre-)vote requests or their answers
 * were lost -- the first message on a connection to a peer that restarted
 * since we last wrote to it goes nowhere -- ask again after a short wait
 * instead of the full election timeout, until the next rank's turn. */
static void early_step(struct swc_raft *r)
{
    raft_time now = r->io.time(&r->io);
    int st = raft_state(&r->raft);
    if (st == RAFT_LEADER || r->closing || now - r->early_at >= r->early_until ||
        (st == RAFT_FOLLOWER && r->raft.follower_state.current_leader.id != 0 &&
         r->raft.follower_state.current_leader.id != r->early_lost)) {
        r->early_at = 0;
        return;
    }
    if (st == RAFT_FOLLOWER && r->early_forget &&
        r->raft.follower_state.current_leader.id == r->early_lost) {
        r->early_forget = !forget_leader(r);
    }
    unsigned retry = r->heartbeat_ms;
    if (st == RAFT_CANDIDATE && now - r->raft.election_timer_start >= retry) {
        unsigned timeout = r->raft.candidate_state.randomized_election_timeout;
        r->raft.election_timer_start = now > timeout ? now - timeout : 0;
        r->stats.early_retries++;
    }
}

static void handle_close_cb(uv_handle_t *h)
{
    struct swc_raft *r = h->data;
    if (--r->handles_open > 0) {
        return;
    }
    swc_raft_close_cb cb = r->close_cb;
    void *data = r->close_data;
    swc_buf_free(&r->plain);
    swc_buf_free(&r->snap_hdr);
    swc_buf_free(&r->snap_owner);
    swc_free(r->results);
    swc_free(r->seen);
    swc_free(r->removed);
    swc_free(r);
    if (cb != NULL) {
        cb(data);
    }
}

static void raft_closed_cb(struct raft *rr)
{
    struct swc_raft *r = rr->data;
    raft_uv_close(&r->io);
    swc_raft_transport_close(r);
    r->raft_closed = true;
    swc_raft_kick(r);
}

static void finish_close(struct swc_raft *r)
{
    deliver_done(r);
    swc_raft_change_abort(r);
    r->handles_open = 3;
    uv_close((uv_handle_t *)&r->prepare, handle_close_cb);
    uv_close((uv_handle_t *)&r->check, handle_close_cb);
    uv_close((uv_handle_t *)&r->idle, handle_close_cb);
}

static void check_cb(uv_check_t *h)
{
    struct swc_raft *r = h->data;
    if (r->raft_closed) {
        if (!uv_is_closing((uv_handle_t *)&r->check)) {
            finish_close(r);
        }
        return;
    }
    deliver_done(r);
    if (!r->raft_close_called) {
        swc_raft_transport_run(r);
    }
    swc_raft_trim_run(r);
    if (r->started) {
        observe(r);
        if (r->early_at != 0) {
            early_step(r);
        }
    }
    swc_raft_change_step(r);
    if (r->closing) {
        fail_queued(r, SWC_ECLOSED);
        if (!r->raft_close_called) {
            r->raft_close_called = true;
            raft_close(&r->raft, raft_closed_cb);
        }
        deliver_done(r);
        return;
    }
    if (r->open != NULL || r->ready_head != NULL) {
        flush(r);
    }
    deliver_done(r);
    if (r->done_head == NULL && r->open == NULL && r->ready_head == NULL &&
        !swc_raft_change_has_work(r) && !swc_raft_transport_has_work(r) &&
        !(r->lead_phase == 1 && r->barrier == NULL)) {
        uv_idle_stop(&r->idle);
    }
}

/* Before the loop blocks: if raft changed state in a timer callback (an
 * election won or lost), make sure this turn's check runs without waiting. */
static void prepare_cb(uv_prepare_t *h)
{
    struct swc_raft *r = h->data;
    if (!r->started || r->closing) {
        return;
    }
    bool leader = raft_state(&r->raft) == RAFT_LEADER;
    if ((leader && r->lead_phase == 0) ||
        (r->lead_phase != 0 && (!leader || r->raft.current_term != r->lead_term))) {
        swc_raft_kick(r);
    }
}

/* --- public API ------------------------------------------------------------ */

static int mkdir_p(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

int swc_raft_init(uv_loop_t *loop, const struct swc_raft_config *cfg, struct swc_raft **out,
                  struct swc_err *err)
{
    struct swc_raft *r = NULL;
    int rv;

    *out = NULL;
    if (cfg->id == 0 || cfg->address == NULL || cfg->state_dir == NULL || cfg->fsm.apply == NULL ||
        cfg->fsm.snapshot == NULL || cfg->fsm.restore == NULL ||
        strlen(cfg->address) >= SWC_RAFT_ADDR_MAX) {
        return swc_err_set(err, SWC_EINVAL, "raft: invalid configuration (id, address, fsm)");
    }
#if !SWC_RAFT_SEAL
    if (cfg->data_key != NULL) {
        return swc_err_set(err, SWC_ENOTSUP, "raft: built without data-key sealing");
    }
#endif
    swc_raft_heap_install();
    r = swc_calloc(1, sizeof *r);
    if (r == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "raft: out of memory");
    }
    r->loop = loop;
    r->id = cfg->id;
    snprintf(r->address, sizeof r->address, "%s", cfg->address);
    if (snprintf(r->dir, sizeof r->dir, "%s/raft", cfg->state_dir) >= (int)sizeof r->dir) {
        swc_free(r);
        return swc_err_set(err, SWC_EINVAL, "raft: state dir path too long");
    }
    if (mkdir_p(cfg->state_dir) != 0 || mkdir_p(r->dir) != 0) {
        rv = swc_err_set(err, SWC_EIO, "raft: create %s: %s", r->dir, strerror(errno));
        swc_free(r);
        return rv;
    }
    r->fsm = cfg->fsm;
    r->on_leader = cfg->on_leader;
    r->cb_data = cfg->cb_data;
    r->election_ms = cfg->election_timeout_ms ? cfg->election_timeout_ms : 500;
    r->heartbeat_ms = cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms : 50;
    r->snap_threshold = cfg->snapshot_threshold ? cfg->snapshot_threshold : 10000;
    r->snap_trailing = cfg->snapshot_trailing ? cfg->snapshot_trailing : 500;
    r->snap_log_bytes = cfg->snapshot_log_bytes ? cfg->snapshot_log_bytes : 8u << 20;
    r->snap_trail_bytes = cfg->snapshot_trailing_bytes ? cfg->snapshot_trailing_bytes : 4u << 20;
    r->retry_ms = cfg->connect_retry_ms ? cfg->connect_retry_ms : 100;
    r->install_ms = cfg->install_snapshot_timeout_ms ? cfg->install_snapshot_timeout_ms : 5000;
    r->early_off = cfg->early_election_off;
    if (cfg->data_key != NULL) {
        r->sealed = true;
        memcpy(r->key, cfg->data_key, SWC_RAFT_KEY_LEN);
    }
    r->next_seq = (uint64_t)swc_now_wall();
    swc_buf_init(&r->plain);
    swc_buf_init(&r->snap_hdr);
    swc_buf_init(&r->snap_owner);

    if (cfg->transport != NULL) {
        r->custom_transport = true;
        r->tops = *cfg->transport;
    }
    rv = swc_raft_transport_init(r);
    if (rv != 0) {
        swc_free(r);
        return swc_err_set(err, rv, "raft: transport init failed");
    }
    rv = raft_uv_init(&r->io, loop, r->dir, &r->transport);
    if (rv != 0) {
        swc_err_set(err, swc_raft_map_err(rv), "raft: disk I/O init in %s: %s", r->dir,
                    r->io.errmsg);
        goto err_transport;
    }
    raft_uv_set_connect_retry_delay(&r->io, r->retry_ms);
    swc_raft_fsm_setup(r);
    rv = raft_init(&r->raft, &r->io, &r->rfsm, cfg->id, r->address);
    if (rv != 0) {
        swc_err_set(err, swc_raft_map_err(rv), "raft: init: %s", raft_errmsg(&r->raft));
        goto err_io;
    }
    r->raft.data = r;
    r->tracer.impl = r;
    r->tracer.enabled = swc_trace_enabled(MOD);
    r->tracer.emit = tracer_emit;
    r->raft.tracer = &r->tracer;
    raft_uv_set_tracer(&r->io, &r->tracer);
    raft_set_election_timeout(&r->raft, r->election_ms);
    raft_set_heartbeat_timeout(&r->raft, r->heartbeat_ms);
    raft_set_snapshot_threshold(&r->raft, r->snap_threshold);
    raft_set_snapshot_trailing(&r->raft, r->snap_trailing);
    raft_set_install_snapshot_timeout(&r->raft, r->install_ms);
    raft_set_pre_vote(&r->raft, true);

    uv_prepare_init(loop, &r->prepare);
    uv_check_init(loop, &r->check);
    uv_idle_init(loop, &r->idle);
    r->prepare.data = r->check.data = r->idle.data = r;
    uv_prepare_start(&r->prepare, prepare_cb);
    uv_check_start(&r->check, check_cb);
    uv_unref((uv_handle_t *)&r->prepare);
    uv_unref((uv_handle_t *)&r->check);
    uv_unref((uv_handle_t *)&r->idle);
    *out = r;
    return 0;

err_io:
    raft_uv_close(&r->io);
err_transport:
    swc_raft_transport_close(r);
    swc_free(r);
    return err->code;
}

/* A one-voter configuration of this manager. */
static int self_conf(struct swc_raft *r, struct raft_configuration *conf)
{
    raft_configuration_init(conf);
    int rv = raft_configuration_add(conf, r->id, r->address, RAFT_VOTER);
    if (rv != 0) {
        raft_configuration_close(conf);
        return SWC_ENOMEM;
    }
    return 0;
}

int swc_raft_bootstrap(struct swc_raft *r)
{
    struct raft_configuration conf;
    int rv;
    if (r->started) {
        return swc_err_set(&r->err, SWC_ESTATE, "raft: bootstrap after start");
    }
    rv = self_conf(r, &conf);
    if (rv != 0) {
        return swc_err_set(&r->err, rv, "raft: bootstrap: out of memory");
    }
    rv = raft_bootstrap(&r->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        return swc_err_set(&r->err, swc_raft_map_err(rv), "raft: bootstrap %s: %s", r->dir,
                           rv == RAFT_CANTBOOTSTRAP ? "state already exists"
                                                    : raft_errmsg(&r->raft));
    }
    return 0;
}

int swc_raft_force_new_cluster(struct swc_raft *r)
{
    struct raft_configuration conf;
    int rv;
    if (r->started) {
        return swc_err_set(&r->err, SWC_ESTATE, "raft: force-new-cluster after start");
    }
    rv = self_conf(r, &conf);
    if (rv != 0) {
        return swc_err_set(&r->err, rv, "raft: force-new-cluster: out of memory");
    }
    rv = raft_recover(&r->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        return swc_err_set(&r->err, swc_raft_map_err(rv), "raft: force-new-cluster in %s: %s",
                           r->dir, raft_errmsg(&r->raft));
    }
    swc_warnf(MOD, "manager %llu: configuration rewritten to this manager only (force new cluster)",
              (unsigned long long)r->id);
    return 0;
}

int swc_raft_start(struct swc_raft *r)
{
    if (r->started || r->closing) {
        return swc_err_set(&r->err, SWC_ESTATE, "raft: already started or closing");
    }
    int rv = raft_start(&r->raft);
    if (rv != 0) {
        return swc_err_set(&r->err, swc_raft_map_err(rv), "raft: start from %s: %s", r->dir,
                           raft_errmsg(&r->raft));
    }
    r->started = true;
    swc_raft_kick(r);
    return 0;
}

void swc_raft_close(struct swc_raft *r, swc_raft_close_cb cb, void *data)
{
    if (r->closing) {
        return;
    }
    r->closing = true;
    r->close_cb = cb;
    r->close_data = data;
    uv_ref((uv_handle_t *)&r->idle);
    swc_raft_kick(r);
}

int swc_raft_propose(struct swc_raft *r, const void *payload, size_t len, swc_raft_propose_cb cb,
                     void *data)
{
    if (r->closing) {
        return SWC_ECLOSED;
    }
    if (len > SWC_RAFT_MAX_PROPOSAL) {
        return swc_err_set(&r->err, SWC_ETOOBIG, "raft: proposal of %zu bytes over the %u limit",
                           len, SWC_RAFT_MAX_PROPOSAL);
    }
    if (!r->started || raft_state(&r->raft) != RAFT_LEADER) {
        return SWC_ENOTLEADER;
    }
    return swc_raft_append_frame(r, r->id, payload, len, cb, data);
}

bool swc_raft_is_leader(struct swc_raft *r)
{
    return r->started && !r->closing && raft_state(&r->raft) == RAFT_LEADER;
}

int swc_raft_leader(struct swc_raft *r, uint64_t *id, char *addr)
{
    raft_id lid = 0;
    const char *laddr = NULL;
    if (r->started && !r->closing) {
        raft_leader(&r->raft, &lid, &laddr);
    }
    if (lid == 0) {
        return SWC_ENOENT;
    }
    if (id != NULL) {
        *id = lid;
    }
    if (addr != NULL) {
        snprintf(addr, SWC_RAFT_ADDR_MAX, "%s", laddr ? laddr : "");
    }
    return 0;
}

uint64_t swc_raft_id(struct swc_raft *r)
{
    return r->id;
}

uint64_t swc_raft_applied_index(struct swc_raft *r)
{
    return raft_last_applied(&r->raft);
}

const char *swc_raft_errmsg(struct swc_raft *r)
{
    return swc_err_msg(&r->err);
}

void swc_raft_stats(struct swc_raft *r, struct swc_raft_stats *out)
{
    *out = r->stats;
    out->log_bytes = r->log_bytes;
    const struct raft_log *l = &r->raft.log;
    out->mem_entries = 0;
    out->mem_bytes = 0;
    for (size_t i = l->front; l->size > 0 && i != l->back; i = (i + 1) % l->size) {
        out->mem_entries++;
        out->mem_bytes += l->entries[i].buf.len;
    }
}
