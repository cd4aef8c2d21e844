/* Applying committed raft entries to the store (see store.c for the undo
 * log design): parse the StoreBatch without allocating, run each
 * transaction's actions against the live tables with an undo log, undo a
 * transaction that conflicts, undo the whole entry on allocation failure,
 * then publish events, report results and free what was replaced. */
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

/* --- apply --------------------------------------------------------------- */

struct action {
    int action, kind;
    const char *id;
    size_t idlen;
    uint64_t expected;
    const uint8_t *obj;
    size_t objlen;
};

struct result {
    uint64_t proposal_id;
    const uint8_t *proposer;
    size_t proposer_len;
    int code;
    size_t msg_off; /* into s->msgs, NUL-terminated */
};

/* Check the wire structure of an action; 0 or -1. */
static int parse_action(const uint8_t *data, size_t len, struct action *a)
{
    const uint8_t *p = data, *end = data + len, *d = NULL;
    uint32_t f;
    int wt, r;
    uint64_t v = 0;
    size_t n = 0;
    memset(a, 0, sizeof(*a));
    a->id = "";
    while ((r = swc_store_wire_next(&p, end, &f, &wt, &v, &d, &n)) == 1) {
        if ((f == 1 || f == 2 || f == 4) && wt != 0) {
            return -1;
        }
        if ((f == 3 || f == 5) && wt != 2) {
            return -1;
        }
        switch (f) {
        case 1:
            a->action = (int)(int32_t)v;
            break;
        case 2:
            a->kind = (int)(int32_t)v;
            break;
        case 3:
            a->id = (const char *)d;
            a->idlen = n;
            break;
        case 4:
            a->expected = v;
            break;
        case 5:
            a->obj = d;
            a->objlen = n;
            break;
        default:
            break;
        }
    }
    return r;
}

/* Walk a transaction: header into res (when not NULL), each action to fn
 * (when not NULL). Returns 0, -1 (malformed) or fn's first non-zero code. */
static int walk_txn(const uint8_t *data, size_t len, struct result *res,
                    int (*fn)(struct swc_store *, uint64_t, const struct action *, char *, size_t),
                    struct swc_store *s, uint64_t index, char *msg, size_t msgsize)
{
    const uint8_t *p = data, *end = data + len, *d = NULL;
    uint32_t f;
    int wt, r;
    uint64_t v = 0;
    size_t n = 0;
    struct action a;
    while ((r = swc_store_wire_next(&p, end, &f, &wt, &v, &d, &n)) == 1) {
        if (f == 1) {
            if (wt != 0) {
                return -1;
            }
            if (res != NULL) {
                res->proposal_id = v;
            }
        } else if (f == 2) {
            if (wt != 2) {
                return -1;
            }
            if (res != NULL) {
                res->proposer = d;
                res->proposer_len = n;
            }
        } else if (f == 3) {
            if (wt != 2 || parse_action(d, n, &a) != 0) {
                return -1;
            }
            if (fn != NULL) {
                int rv = fn(s, index, &a, msg, msgsize);
                if (rv != 0) {
                    return rv;
                }
            }
        }
    }
    return r < 0 ? -1 : 0;
}

static int log_reserve(struct swc_store *s)
{
    if (s->nlog == s->caplog) {
        size_t cap = s->caplog ? s->caplog * 2 : 256;
        struct undo *nl = swc_realloc(s->log, cap * sizeof(*nl));
        if (nl == NULL) {
            return SWC_ENOMEM;
        }
        s->log = nl;
        s->caplog = cap;
    }
    return 0;
}

static void log_push(struct swc_store *s, int op, struct rec *old_rec, struct rec *new_rec)
{
    struct undo *u = &s->log[s->nlog++];
    u->op = op;
    u->old_rec = old_rec;
    u->new_rec = new_rec;
}

static void rollback(struct swc_store *s, size_t mark)
{
    while (s->nlog > mark) {
        struct undo *u = &s->log[--s->nlog];
        if (u->new_rec != NULL) {
            swc_store_rec_unlink(s, u->new_rec);
            swc_store_rec_free(u->new_rec);
        }
        if (u->old_rec != NULL) {
            swc_store_rec_link(s, u->old_rec);
        }
    }
}

#define IDF(a) (int)(a)->idlen, (a)->id

static int apply_action(struct swc_store *s, uint64_t index, const struct action *a, char *msg,
                        size_t msgsize)
{
    const char *kn = swc_store_kind_name(a->kind);
    struct swc_store_fields f;
    struct rec *cur, *nr = NULL, *other;
    int rv;

    if (a->kind <= 0 || a->kind >= SWC_STORE_KIND_MAX) {
        snprintf(msg, msgsize, "store: unknown object kind %d", a->kind);
        return SWC_EINVAL;
    }
    if (a->idlen == 0 || a->idlen > SWC_STORE_ID_MAX || memchr(a->id, 0, a->idlen) != NULL) {
        snprintf(msg, msgsize, "store: %s: invalid id", kn);
        return SWC_EINVAL;
    }
    cur = swc_store_rec_find(s, a->kind, a->id, a->idlen);
    if (a->action != SWARMC__STORE_ACTION_KIND__STORE_ACTION_CREATE) {
        if (a->action != SWARMC__STORE_ACTION_KIND__STORE_ACTION_UPDATE &&
            a->action != SWARMC__STORE_ACTION_KIND__STORE_ACTION_REMOVE) {
            snprintf(msg, msgsize, "store: %s %.*s: unknown action %d", kn, IDF(a), a->action);
            return SWC_EINVAL;
        }
        if (cur == NULL) {
            snprintf(msg, msgsize, "store: %s %.*s: version conflict: no such object", kn, IDF(a));
            return SWC_ECONFLICT;
        }
        if (a->expected != 0 && a->expected != cur->version) {
            snprintf(msg, msgsize,
                     "store: %s %.*s: version conflict: expected version %llu, stored version %llu",
                     kn, IDF(a), (unsigned long long)a->expected, (unsigned long long)cur->version);
            return SWC_ECONFLICT;
        }
    } else if (cur != NULL) {
        snprintf(msg, msgsize, "store: %s %.*s: already exists", kn, IDF(a));
        return SWC_ECONFLICT;
    }
    if (a->action == SWARMC__STORE_ACTION_KIND__STORE_ACTION_REMOVE) {
        if ((rv = log_reserve(s)) != 0) {
            return rv;
        }
        swc_store_rec_unlink(s, cur);
        log_push(s, UNDO_REMOVE, cur, NULL);
        return 0;
    }
    if (swc_store_wire_fields(a->kind, a->obj, a->objlen, &f) != 0) {
        snprintf(msg, msgsize, "store: %s %.*s: malformed object", kn, IDF(a));
        return SWC_EINVAL;
    }
    if (f.idlen != a->idlen || memcmp(f.id, a->id, a->idlen) != 0) {
        snprintf(msg, msgsize, "store: %s %.*s: object id \"%.*s\" does not match", kn, IDF(a),
                 (int)f.idlen, f.id);
        return SWC_EINVAL;
    }
    other = swc_store_rec_find_name(s, a->kind, f.name, f.namelen);
    if (other != NULL && other != cur) {
        snprintf(msg, msgsize, "store: %s %.*s: name conflict: \"%.*s\" is used by %s", kn, IDF(a),
                 (int)f.namelen, f.name, other->id);
        return SWC_ECONFLICT;
    }
    if ((rv = log_reserve(s)) != 0 ||
        (rv = swc_store_rec_new_like(s, a->kind, &f, index, a->obj, a->objlen, cur, &nr)) != 0) {
        if (rv == SWC_ETOOBIG) {
            snprintf(msg, msgsize, "store: %s %.*s: object too big", kn, IDF(a));
            return SWC_EINVAL;
        }
        return rv;
    }
    if (cur != NULL) {
        swc_store_rec_unlink(s, cur);
    }
    swc_store_rec_link(s, nr);
    log_push(s, cur != NULL ? UNDO_UPDATE : UNDO_CREATE, cur, nr);
    return 0;
}

/* Publish the log as events, then COMMIT. */
static void publish(struct swc_store *s, uint64_t index)
{
    struct swc_store_event ev;
    s->seq++;
    for (size_t i = 0; i < s->nlog && s->watch_head != NULL; i++) {
        const struct undo *u = &s->log[i];
        const struct rec *r = u->new_rec != NULL ? u->new_rec : u->old_rec;
        memset(&ev, 0, sizeof(ev));
        ev.type = u->op == UNDO_CREATE   ? SWC_STORE_EV_CREATE
                  : u->op == UNDO_UPDATE ? SWC_STORE_EV_UPDATE
                                         : SWC_STORE_EV_REMOVE;
        ev.kind = r->kind;
        ev.id = r->id;
        ev.old_blob = u->old_rec != NULL ? u->old_rec->blob : NULL;
        ev.new_blob = u->new_rec != NULL ? u->new_rec->blob : NULL;
        ev.version = r->version;
        ev.index = index;
        swc_store_dispatch(s, &ev);
    }
    memset(&ev, 0, sizeof(ev));
    ev.type = SWC_STORE_EV_COMMIT;
    ev.id = "";
    ev.index = index;
    swc_store_dispatch(s, &ev);
}

int swc_store_apply_entry(struct swc_store *s, uint64_t raft_index, const uint8_t *data, size_t len,
                          swc_store_result_cb result_cb, void *cb_data)
{
    const uint8_t *p, *end = data + len, *d = NULL;
    uint32_t f;
    int wt, r, rv = 0;
    uint64_t v = 0;
    size_t n = 0, ntxn = 0, i;
    char msg[SWC_ERRMSG_SIZE];
    struct result *res;

    if (s->busy) {
        return SWC_ESTATE;
    }
    /* Pass 1: the whole entry must be well formed before anything changes. */
    for (p = data; (r = swc_store_wire_next(&p, end, &f, &wt, &v, &d, &n)) == 1;) {
        if (f == 1) {
            if (wt != 2 || walk_txn(d, n, NULL, NULL, NULL, 0, NULL, 0) != 0) {
                r = -1;
                break;
            }
            ntxn++;
        }
    }
    if (r < 0) {
        s->index = raft_index;
        return SWC_EPROTO;
    }
    s->results.len = 0;
    s->msgs.len = 0;
    if (swc_buf_reserve(&s->results, ntxn * sizeof(struct result)) != 0) {
        return SWC_ENOMEM;
    }
    res = (struct result *)(void *)s->results.data;
    s->busy = true;
    /* Pass 2: apply each transaction, undoing it on a conflict. */
    i = 0;
    for (p = data; swc_store_wire_next(&p, end, &f, &wt, &v, &d, &n) == 1;) {
        if (f != 1) {
            continue;
        }
        struct result *t = &res[i++];
        size_t mark = s->nlog;
        memset(t, 0, sizeof(*t));
        msg[0] = '\0';
        rv = walk_txn(d, n, t, apply_action, s, raft_index, msg, sizeof(msg));
        if (rv == SWC_ENOMEM) {
            goto oom;
        }
        if (rv != 0) {
            rollback(s, mark);
        }
        t->code = rv;
        t->msg_off = s->msgs.len;
        if (swc_buf_append(&s->msgs, msg, strlen(msg) + 1) != 0) {
            rv = SWC_ENOMEM;
            goto oom;
        }
    }
    /* The entry is in: publish, report, then free what it replaced. */
    s->index = raft_index;
    publish(s, raft_index);
    if (result_cb != NULL) {
        for (i = 0; i < ntxn; i++) {
            char who[128];
            size_t wl =
                res[i].proposer_len < sizeof(who) - 1 ? res[i].proposer_len : sizeof(who) - 1;
            memcpy(who, res[i].proposer != NULL ? (const char *)res[i].proposer : "", wl);
            who[wl] = '\0';
            result_cb(cb_data, raft_index, res[i].proposal_id, who, res[i].code,
                      (const char *)s->msgs.data + res[i].msg_off);
        }
    }
    for (i = 0; i < s->nlog; i++) {
        if (s->log[i].old_rec != NULL) {
            swc_store_rec_free(s->log[i].old_rec);
        }
    }
    s->nlog = 0;
    swc_store_gc(s);
    s->busy = false;
    return 0;
oom:
    rollback(s, 0);
    swc_store_gc(s);
    s->busy = false;
    return SWC_ENOMEM;
}
