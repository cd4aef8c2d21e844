/* Membership changes: add (raft_add as spare, then raft_assign to voter
 * from the check handle once the spare is in), remove with a quorum guard
 * based on which voters the leader heard from recently, the replicated set
 * of removed ids (never reused), and the member list. One change at a time. */
#include "raft/raft_int.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#if SWC_RAFT_SEAL
#include "net/cert.h"
#endif

#define MOD "raft"

enum { CH_ADD = 1, CH_ASSIGN, CH_REMOVE };

struct swc_raft_change {
    struct raft_change req;
    struct swc_raft *r;
    int step; /* CH_* in progress */
    bool need_assign;
    bool done;
    int status;
    uint64_t id;
    swc_raft_change_cb cb;
    void *data;
};

void swc_raft_note_liveness(struct swc_raft *r)
{
    struct raft *rr = &r->raft;
    uint64_t now = (uint64_t)(swc_now_mono() / SWC_NS_PER_MS);
    if (rr->state != RAFT_LEADER || rr->leader_state.progress == NULL) {
        return;
    }
    for (unsigned i = 0; i < rr->configuration.n; i++) {
        uint64_t id = rr->configuration.servers[i].id;
        if (id != r->id && !rr->leader_state.progress[i].recent_recv) {
            continue;
        }
        size_t j;
        for (j = 0; j < r->n_seen && r->seen[j].id != id; j++) {
        }
        if (j == r->n_seen) {
            struct swc_raft_seen *ns = swc_realloc(r->seen, (r->n_seen + 1) * sizeof *ns);
            if (ns == NULL) {
                return;
            }
            r->seen = ns;
            r->seen[r->n_seen++].id = id;
        }
        r->seen[j].last_ms = now;
    }
}

static void change_cb(struct raft_change *req, int status);

void swc_raft_change_step(struct swc_raft *r)
{
    struct swc_raft_change *c = r->change;
    if (c == NULL) {
        return;
    }
    if (c->need_assign && !c->done) {
        c->need_assign = false;
        c->step = CH_ASSIGN;
        int rv = r->closing ? RAFT_SHUTDOWN
                            : raft_assign(&r->raft, &c->req, c->id, RAFT_VOTER, change_cb);
        if (rv != 0) {
            c->done = true;
            c->status = swc_raft_map_err(rv);
        }
    }
    if (c->done) {
        r->change = NULL;
        if (c->status != 0) {
            swc_err_set(&r->err, c->status, "membership change of manager %llu failed: %s",
                        (unsigned long long)c->id, swc_strerror(c->status));
        }
        if (c->cb != NULL) {
            c->cb(c->data, c->status);
        }
        swc_free(c);
    }
}

static void change_cb(struct raft_change *req, int status)
{
    struct swc_raft_change *c = req->data;
    struct swc_raft *r = c->r;
    if (status == 0 && c->step == CH_ADD) {
        c->need_assign = true; /* promote from the check handle, not in here */
    } else {
        c->done = true;
        c->status = r->closing && status != 0 ? SWC_ECLOSED : swc_raft_map_err(status);
    }
    swc_raft_kick(r);
}

static const struct raft_server *conf_get(struct swc_raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        if (r->raft.configuration.servers[i].id == id) {
            return &r->raft.configuration.servers[i];
        }
    }
    return NULL;
}

static int change_begin(struct swc_raft *r, uint64_t id, swc_raft_change_cb cb, void *data,
                        struct swc_raft_change **out)
{
    if (r->closing) {
        return SWC_ECLOSED;
    }
    if (!swc_raft_is_leader(r)) {
        return swc_err_set(&r->err, SWC_ENOTLEADER, "raft: membership changes need the leader");
    }
    if (r->change != NULL || r->raft.configuration_uncommitted_index != 0) {
        return swc_err_set(&r->err, SWC_EBUSY, "raft: another membership change is in progress");
    }
    struct swc_raft_change *c = swc_calloc(1, sizeof *c);
    if (c == NULL) {
        return SWC_ENOMEM;
    }
    c->r = r;
    c->id = id;
    c->cb = cb;
    c->data = data;
    c->req.data = c;
    c->req.cb = change_cb;
    *out = c;
    return 0;
}

int swc_raft_add(struct swc_raft *r, uint64_t id, const char *address, swc_raft_change_cb cb,
                 void *data)
{
    struct swc_raft_change *c = NULL;
    int rv;
    if (id == 0 || address == NULL || strlen(address) >= SWC_RAFT_ADDR_MAX) {
        return swc_err_set(&r->err, SWC_EINVAL, "raft: add: invalid id or address");
    }
    if (swc_raft_removed_has(r, id)) {
        return swc_err_set(&r->err, SWC_EINVAL,
                           "raft: add: raft id %llu belonged to a removed manager and is never "
                           "reused",
                           (unsigned long long)id);
    }
    if (conf_get(r, id) != NULL) {
        return swc_err_set(&r->err, SWC_EEXIST, "raft: add: raft id %llu is already a member",
                           (unsigned long long)id);
    }
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        if (strcmp(r->raft.configuration.servers[i].address, address) == 0) {
            return swc_err_set(&r->err, SWC_EEXIST, "raft: add: address %s is already used by %llu",
                               address, (unsigned long long)r->raft.configuration.servers[i].id);
        }
    }
    rv = change_begin(r, id, cb, data, &c);
    if (rv != 0) {
        return rv;
    }
    c->step = CH_ADD;
    rv = raft_add(&r->raft, &c->req, id, address, change_cb);
    if (rv != 0) {
        swc_free(c);
        return swc_err_set(&r->err, swc_raft_map_err(rv), "raft: add %llu: %s",
                           (unsigned long long)id, raft_errmsg(&r->raft));
    }
    r->change = c;
    return 0;
}

/* True when the leader heard from id within two election timeouts. */
static bool seen_recently(struct swc_raft *r, uint64_t id)
{
    uint64_t now = (uint64_t)(swc_now_mono() / SWC_NS_PER_MS);
    for (size_t j = 0; j < r->n_seen; j++) {
        if (r->seen[j].id == id) {
            return now - r->seen[j].last_ms <= 2 * r->election_ms;
        }
    }
    return false;
}

int swc_raft_remove(struct swc_raft *r, uint64_t id, swc_raft_change_cb cb, void *data)
{
    struct swc_raft_change *c = NULL;
    int rv;
    const struct raft_server *s = conf_get(r, id);
    if (s == NULL) {
        return swc_err_set(&r->err, SWC_ENOENT, "raft: remove: %llu is not a manager",
                           (unsigned long long)id);
    }
    if (!swc_raft_is_leader(r)) {
        return swc_err_set(&r->err, SWC_ENOTLEADER, "raft: membership changes need the leader");
    }
    /* Quorum check on the configuration after the removal. */
    unsigned voters = 0, live = 0;
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        const struct raft_server *v = &r->raft.configuration.servers[i];
        if (v->role != RAFT_VOTER || v->id == id) {
            continue;
        }
        voters++;
        if (v->id == r->id) {
            live++;
            continue;
        }
        if (seen_recently(r, v->id)) {
            live++;
        }
    }
    if (voters == 0) {
        return swc_err_set(&r->err, SWC_EQUORUM,
                           "raft: remove %llu: it is the last voting manager; the cluster would "
                           "have no quorum",
                           (unsigned long long)id);
    }
    if (live < voters / 2 + 1) {
        return swc_err_set(&r->err, SWC_EQUORUM,
                           "raft: remove %llu: only %u of the %u remaining voting managers are "
                           "reachable, fewer than the %u needed for quorum",
                           (unsigned long long)id, live, voters, voters / 2 + 1);
    }
    rv = change_begin(r, id, cb, data, &c);
    if (rv != 0) {
        return rv;
    }
    /* Record the id as removed (replicated, so it is never reused). */
    uint8_t tomb[9];
    tomb[0] = SWC_RAFT_INT_REMOVE;
    swc_put_u64(tomb + 1, id);
    rv = swc_raft_append_frame(r, 0, tomb, sizeof tomb, NULL, NULL);
    if (rv != 0) {
        swc_free(c);
        return rv;
    }
    c->step = CH_REMOVE;
    rv = raft_remove(&r->raft, &c->req, id, change_cb);
    if (rv != 0) {
        swc_free(c);
        return swc_err_set(&r->err, swc_raft_map_err(rv), "raft: remove %llu: %s",
                           (unsigned long long)id, raft_errmsg(&r->raft));
    }
    r->change = c;
    return 0;
}

int swc_raft_members(struct swc_raft *r, struct swc_raft_member **out, size_t *n)
{
    const struct raft_configuration *conf = &r->raft.configuration;
    raft_id lid = 0;
    const char *laddr = NULL;
    *out = NULL;
    *n = 0;
    if (r->started) {
        raft_leader(&r->raft, &lid, &laddr);
    }
    struct swc_raft_member *m = swc_calloc(conf->n ? conf->n : 1, sizeof *m);
    if (m == NULL) {
        return SWC_ENOMEM;
    }
    for (unsigned i = 0; i < conf->n; i++) {
        m[i].id = conf->servers[i].id;
        snprintf(m[i].address, sizeof m[i].address, "%s", conf->servers[i].address);
        m[i].voter = conf->servers[i].role == RAFT_VOTER;
        m[i].leader = lid != 0 && m[i].id == lid;
        m[i].reachable = !swc_raft_is_leader(r) || m[i].id == r->id || seen_recently(r, m[i].id);
    }
    *out = m;
    *n = conf->n;
    return 0;
}

/* Finish a pending change with SWC_ECLOSED (the adapter is closing). */
void swc_raft_change_abort(struct swc_raft *r)
{
    if (r->change != NULL) {
        r->change->done = true;
        if (r->change->status == 0) {
            r->change->status = SWC_ECLOSED;
        }
        swc_raft_change_step(r);
    }
}

/* True when the check handle has a change step to run. */
bool swc_raft_change_has_work(struct swc_raft *r)
{
    return r->change != NULL && (r->change->done || r->change->need_assign);
}
