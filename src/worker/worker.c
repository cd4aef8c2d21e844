/* The worker top object (see worker.h).
 *
 * It keeps one entry per assigned task in a hash table keyed by task id, each
 * with its runner. Assignments create, update or remove entries; every task
 * is written to the task DB before its runner starts, and the runner writes
 * each observed status there before it is reported. start() resumes from the
 * DB: one runner per stored task, then one listing of the containers carrying
 * our node label; a container of a known task is adopted (its exit code or
 * health seen while we were away is fed to the runner), any other one is
 * removed. Runners created before that pass completes wait for it, so a
 * container is never created twice for one task. Without a state dir (fleet
 * mode) there is no task DB: tasks live only in memory.
 *
 * When the executor says events may have been lost (SWC_EXEC_EV_RESYNC: the
 * Docker engine was unreachable and is back), the same listing runs again:
 * each task that had a container when the listing was asked compares it with
 * the engine's view (still running: kept; exited or gone: the task fails,
 * naming the outage), and containers of tasks we no longer know are removed
 * (their removal may have failed while the engine was down). */
#include "worker/worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <uthash.h>

#include "base/alloc.h"
#include "base/log.h"
#include "worker/runner.h"
#include "worker/taskdb.h"

struct entry {
    char id[64];
    struct swc_runner *r;
    bool removing;
    bool seen;        /* adoption pass: its container was listed */
    bool keep;        /* complete assignment set: the task is in it */
    char *resync_cid; /* resync pass: the container it had when the listing was asked */
    size_t resync_at; /* resync pass: 1 + its index in the listing, 0 = not listed */
    struct swc_worker *w;
    UT_hash_handle hh;
};

struct swc_worker {
    struct swc_worker_config cfg;
    char node_id[64];
    struct swc_taskdb *db;
    struct entry *tasks;
    size_t ntasks;
    bool adopted; /* the start-up adoption pass has finished */
    bool starting;
    bool closing;
    uv_timer_t close_timer; /* only used to defer close_cb */
    void (*start_cb)(void *data, int code);
    void *start_data;
    void (*close_cb)(void *data);
    void *close_data;
    int orphans_inflight;
    bool resyncing;    /* a resync listing is in flight */
    bool resync_again; /* another resync was asked meanwhile */
    char resync_why[400];
    bool closed; /* close finished: free once nothing points at w any more */
};

static void maybe_free(struct swc_worker *w)
{
    if (w->closed && w->orphans_inflight == 0 && !w->starting && !w->resyncing) {
        swc_free(w);
    }
}

static void runner_status_cb(struct swc_runner *r, const char *task_id,
                             const Swarmc__TaskStatus *status, void *data)
{
    struct swc_worker *w = data;
    if (w->cfg.status_cb != NULL && !w->closing) {
        w->cfg.status_cb(w->cfg.data, task_id, status);
    }
}

/* A complete set comes with each new session. A status the previous leader
 * acknowledged may never have reached its log (it died first): when the
 * manager's copy of a task is behind what we observed, report ours again. */
static void resend_if_newer(struct swc_worker *w, struct entry *e, const Swarmc__Task *assigned)
{
    const Swarmc__Task *mine = swc_runner_task(e->r);
    int theirs = assigned->status != NULL ? (int)assigned->status->state : 0;
    if (e->removing || mine == NULL || mine->status == NULL || (int)mine->status->state <= theirs) {
        return;
    }
    if (w->cfg.status_cb != NULL && !w->closing) {
        w->cfg.status_cb(w->cfg.data, e->id, mine->status);
    }
}

static void resync(struct swc_worker *w);
static void orphan_removed_cb(void *data, int code, const char *errmsg, const char *cid);

static void free_entry(struct entry *e)
{
    swc_free(e->resync_cid);
    swc_free(e);
}

static void resync_list_cb(void *data, int code, const char *errmsg,
                           const struct swc_exec_cstate *list, size_t n)
{
    struct swc_worker *w = data;
    struct entry *e, *tmp;
    char why[512];

    w->resyncing = false;
    if (w->closing) {
        maybe_free(w);
        return;
    }
    if (code != 0) {
        /* the engine went away again: its next reconnect asks again */
        swc_warnf("worker", "resynchronize containers: %s", errmsg ? errmsg : swc_strerror(code));
    } else {
        snprintf(why, sizeof(why), "container stopped while %s", w->resync_why);
        for (size_t i = 0; i < n; i++) {
            e = NULL;
            if (list[i].task_id == NULL || list[i].task_id[0] == '\0') {
                continue;
            }
            HASH_FIND_STR(w->tasks, list[i].task_id, e);
            if (e != NULL) {
                if (e->resync_cid != NULL && strcmp(e->resync_cid, list[i].container_id) == 0) {
                    e->resync_at = i + 1;
                }
            } else if (w->cfg.exec->ops->remove(w->cfg.exec, list[i].container_id,
                                                orphan_removed_cb, w) == 0) {
                /* e.g. its task was removed while the engine could not be reached */
                swc_infof("worker", "removing container %s of unknown task %s",
                          list[i].container_id, list[i].task_id);
                w->orphans_inflight++;
            }
        }
        HASH_ITER(hh, w->tasks, e, tmp)
        {
            char *cid = e->resync_cid;
            size_t at = e->resync_at;
            e->resync_cid = NULL;
            e->resync_at = 0;
            if (cid == NULL || e->removing || swc_runner_container_id(e->r) == NULL ||
                strcmp(swc_runner_container_id(e->r), cid) != 0) {
                swc_free(cid); /* no container then, or a new one since: not ours to judge */
                continue;
            }
            swc_free(cid);
            /* may report a status; e stays */
            swc_runner_resync(e->r, at > 0 ? &list[at - 1] : NULL, why);
        }
    }
    if (w->resync_again) {
        w->resync_again = false;
        resync(w);
    }
}

/* Events may have been lost: list our containers and let every runner
 * compare what it believes with what the engine has. Only runners that had
 * a container when the listing was asked are judged, so a container created
 * while the listing is in flight is not mistaken for a vanished one. */
static void resync(struct swc_worker *w)
{
    struct entry *e, *tmp;
    int rc;
    if (w->closing || !w->adopted) {
        return; /* the start-up adoption pass covers it */
    }
    if (w->resyncing) {
        w->resync_again = true;
        return;
    }
    HASH_ITER(hh, w->tasks, e, tmp)
    {
        const char *cid = swc_runner_container_id(e->r);
        swc_free(e->resync_cid);
        e->resync_cid = cid != NULL ? swc_strdup(cid) : NULL;
        e->resync_at = 0;
    }
    rc = w->cfg.exec->ops->list(w->cfg.exec, resync_list_cb, w);
    if (rc != 0) {
        swc_warnf("worker", "resynchronize containers: %s", swc_strerror(rc));
        return;
    }
    w->resyncing = true;
}

static void exec_event_cb(void *data, const struct swc_exec_event *ev)
{
    struct swc_worker *w = data;
    struct entry *e = NULL;
    if (w->closing) {
        return;
    }
    if (ev->type == SWC_EXEC_EV_RESYNC) {
        snprintf(w->resync_why, sizeof(w->resync_why), "%s",
                 ev->message != NULL ? ev->message : "the executor lost events");
        resync(w);
        return;
    }
    if (ev->task_id == NULL) {
        return;
    }
    HASH_FIND_STR(w->tasks, ev->task_id, e);
    if (e != NULL) {
        swc_runner_event(e->r, ev);
    }
}

int swc_worker_init(struct swc_worker **out, const struct swc_worker_config *cfg,
                    struct swc_err *err)
{
    struct swc_worker *w;
    char path[4096];
    int rc;

    if (cfg->loop == NULL || cfg->exec == NULL || cfg->node_id == NULL) {
        return swc_err_set(err, SWC_EINVAL, "worker: loop, executor and node id are required");
    }
    if (cfg->state_dir != NULL && mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
        return swc_err_set(err, SWC_EIO, "worker: create state dir %s: %s", cfg->state_dir,
                           strerror(errno));
    }
    w = swc_calloc(1, sizeof(*w));
    if (w == NULL) {
        return swc_err_set(err, SWC_ENOMEM, "worker: out of memory");
    }
    w->cfg = *cfg;
    snprintf(w->node_id, sizeof(w->node_id), "%s", cfg->node_id);
    w->cfg.node_id = w->node_id;
    w->cfg.state_dir = NULL;
    if (cfg->state_dir != NULL) {
        snprintf(path, sizeof(path), "%s/worker.db", cfg->state_dir);
        rc = swc_taskdb_open(&w->db, path, err);
        if (rc != 0) {
            swc_err_wrap(err, "worker");
            swc_free(w);
            return rc;
        }
    }
    uv_timer_init(cfg->loop, &w->close_timer);
    w->close_timer.data = w;
    swc_exec_set_event_cb(cfg->exec, exec_event_cb, w);
    *out = w;
    return 0;
}

static struct entry *add_entry(struct swc_worker *w, const Swarmc__Task *task, const char *cid)
{
    struct swc_runner_config rc = {
        .loop = w->cfg.loop,
        .exec = w->cfg.exec,
        .db = w->db,
        .status_cb = runner_status_cb,
        .data = w,
    };
    struct entry *e;
    if (task->id == NULL || strlen(task->id) >= sizeof(e->id)) {
        return NULL;
    }
    e = swc_calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->w = w;
    snprintf(e->id, sizeof(e->id), "%s", task->id);
    e->r = swc_runner_create(&rc, task, cid);
    if (e->r == NULL) {
        swc_free(e);
        return NULL;
    }
    HASH_ADD_STR(w->tasks, id, e);
    w->ntasks++;
    return e;
}

static int load_cb(void *data, Swarmc__Task *task, const char *cid)
{
    struct swc_worker *w = data;
    struct entry *e = NULL;
    HASH_FIND_STR(w->tasks, task->id, e);
    if (e == NULL && add_entry(w, task, cid) == NULL) {
        swc_errorf("worker", "resume task %s: out of memory", task->id);
    }
    swarmc__task__free_unpacked(task, &swc_pb_allocator);
    return 0;
}

static void orphan_removed_cb(void *data, int code, const char *errmsg, const char *cid)
{
    struct swc_worker *w = data;
    if (code != 0 && code != SWC_ECANCELED) {
        swc_warnf("worker", "remove unknown container %s: %s", cid ? cid : "?",
                  errmsg ? errmsg : swc_strerror(code));
    }
    w->orphans_inflight--;
    maybe_free(w);
}

static void list_cb(void *data, int code, const char *errmsg, const struct swc_exec_cstate *list,
                    size_t n)
{
    struct swc_worker *w = data;
    struct entry *e, *tmp;

    w->starting = false;
    if (w->closing) {
        maybe_free(w);
        return;
    }
    if (code != 0) {
        swc_errorf("worker", "adopt containers: %s", errmsg ? errmsg : swc_strerror(code));
    } else {
        for (size_t i = 0; i < n; i++) {
            e = NULL;
            if (list[i].task_id != NULL && list[i].task_id[0] != '\0') {
                HASH_FIND_STR(w->tasks, list[i].task_id, e);
            }
            if (e != NULL) {
                swc_debugf("worker", "adopt container %s of task %s", list[i].container_id, e->id);
                swc_runner_adopt(e->r, &list[i]);
                e->seen = true;
            } else if (w->cfg.exec->ops->remove(w->cfg.exec, list[i].container_id,
                                                orphan_removed_cb, w) == 0) {
                swc_infof("worker", "removing container %s of unknown task %s",
                          list[i].container_id, list[i].task_id ? list[i].task_id : "?");
                w->orphans_inflight++;
            }
        }
        /* a runner that remembers a container we did not find: it is gone */
        HASH_ITER(hh, w->tasks, e, tmp)
        {
            if (!e->seen && swc_runner_container_id(e->r) != NULL &&
                swc_runner_observed(e->r) >= SWARMC__TASK_STATE__TASK_STATE_READY) {
                swc_runner_adopt(e->r, NULL);
            }
            e->seen = false;
        }
    }
    w->adopted = true;
    HASH_ITER(hh, w->tasks, e, tmp)
    {
        swc_runner_kick(e->r);
    }
    if (w->start_cb != NULL) {
        w->start_cb(w->start_data, code);
    }
}

int swc_worker_start(struct swc_worker *w, void (*done_cb)(void *data, int code), void *data)
{
    int rc = w->db != NULL ? swc_taskdb_load(w->db, load_cb, w) : 0;
    if (rc != 0) {
        swc_errorf("worker", "resume: %s", swc_taskdb_errmsg(w->db));
    }
    w->start_cb = done_cb;
    w->start_data = data;
    w->starting = true;
    rc = w->cfg.exec->ops->list(w->cfg.exec, list_cb, w);
    if (rc != 0) {
        w->starting = false;
        return rc;
    }
    return 0;
}

static void runner_removed_cb(struct swc_runner *r, void *data)
{
    struct entry *e = data;
    struct swc_worker *w = e->w;
    if (w->db != NULL && swc_taskdb_delete(w->db, e->id) != 0) {
        swc_errorf("worker", "%s", swc_taskdb_errmsg(w->db));
    }
    HASH_DEL(w->tasks, e);
    w->ntasks--;
    free_entry(e);
    /* the runner frees itself after this callback */
}

static void remove_entry(struct swc_worker *w, struct entry *e)
{
    if (e->removing) {
        return;
    }
    e->removing = true;
    swc_runner_remove(e->r, runner_removed_cb, e); /* may free e right away */
}

static int assign_task(struct swc_worker *w, const Swarmc__Task *task)
{
    struct entry *e = NULL;
    if (task->id == NULL || task->id[0] == '\0') {
        return SWC_EINVAL;
    }
    HASH_FIND_STR(w->tasks, task->id, e);
    if (e != NULL) {
        if (e->removing) {
            return 0;
        }
        swc_runner_update(e->r, task);
        /* keep the stored spec current; the status column is left alone */
        if (w->db != NULL && swc_taskdb_put_task(w->db, swc_runner_task(e->r)) != 0) {
            swc_errorf("worker", "%s", swc_taskdb_errmsg(w->db));
        }
    } else {
        if (w->db != NULL && swc_taskdb_put_task(w->db, task) != 0) {
            swc_errorf("worker", "%s", swc_taskdb_errmsg(w->db));
            return SWC_EIO;
        }
        e = add_entry(w, task, NULL);
        if (e == NULL) {
            return SWC_ENOMEM;
        }
    }
    if (w->adopted) {
        swc_runner_kick(e->r);
    }
    return 0;
}

int swc_worker_assign(struct swc_worker *w, const Swarmc__AssignmentsMessage *msg)
{
    int result = 0;
    if (w->closing) {
        return SWC_ECLOSED;
    }
    if (msg->type == SWARMC__ASSIGNMENTS_TYPE__ASSIGNMENTS_COMPLETE) {
        /* mark the tasks in the set (one hash lookup each), drop the rest */
        struct entry *e, *tmp;
        for (size_t i = 0; i < msg->n_changes; i++) {
            const Swarmc__Assignment *a = msg->changes[i];
            e = NULL;
            if (a->item_case == SWARMC__ASSIGNMENT__ITEM_TASK && a->task != NULL &&
                a->action == SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_UPDATE && a->task->id != NULL) {
                HASH_FIND_STR(w->tasks, a->task->id, e);
            }
            if (e != NULL) {
                e->keep = true;
                resend_if_newer(w, e, a->task);
            }
        }
        HASH_ITER(hh, w->tasks, e, tmp)
        {
            if (e->keep) {
                e->keep = false;
            } else {
                remove_entry(w, e);
            }
        }
    }
    for (size_t i = 0; i < msg->n_changes; i++) {
        const Swarmc__Assignment *a = msg->changes[i];
        int rc = 0;
        if (a->action == SWARMC__ASSIGNMENT_ACTION__ASSIGNMENT_REMOVE) {
            struct entry *e = NULL;
            const char *id = a->removed_id;
            if ((id == NULL || id[0] == '\0') && a->item_case == SWARMC__ASSIGNMENT__ITEM_TASK &&
                a->task != NULL) {
                id = a->task->id;
            }
            if (id != NULL) {
                HASH_FIND_STR(w->tasks, id, e);
            }
            if (e != NULL) {
                remove_entry(w, e);
            }
        } else if (a->item_case == SWARMC__ASSIGNMENT__ITEM_TASK && a->task != NULL) {
            rc = assign_task(w, a->task);
        }
        if (rc != 0 && result == 0) {
            result = rc;
        }
    }
    return result;
}

size_t swc_worker_ntasks(const struct swc_worker *w)
{
    return w->ntasks;
}

size_t swc_worker_nrunning(const struct swc_worker *w)
{
    size_t n = 0;
    for (const struct entry *e = w->tasks; e != NULL; e = e->hh.next) {
        n += swc_runner_observed(e->r) == SWARMC__TASK_STATE__TASK_STATE_RUNNING;
    }
    return n;
}

static struct entry *find_entry(const struct swc_worker *w, const char *task_id)
{
    struct entry *e = NULL;
    HASH_FIND_STR(w->tasks, task_id, e);
    return e;
}

int swc_worker_task_state(const struct swc_worker *w, const char *task_id)
{
    struct entry *e = find_entry(w, task_id);
    return e ? swc_runner_observed(e->r) : -1;
}

const Swarmc__TaskStatus *swc_worker_task_status(const struct swc_worker *w, const char *task_id)
{
    struct entry *e = find_entry(w, task_id);
    return e ? swc_runner_task(e->r)->status : NULL;
}

int swc_worker_logs(struct swc_worker *w, const char *task_id, int tail, swc_exec_log_cb log_cb,
                    swc_exec_cb done_cb, void *data)
{
    struct entry *e = find_entry(w, task_id);
    const char *cid = e ? swc_runner_container_id(e->r) : NULL;
    if (cid == NULL) {
        return SWC_ENOENT;
    }
    return w->cfg.exec->ops->logs(w->cfg.exec, cid, tail, log_cb, done_cb, data);
}

int swc_worker_describe(struct swc_worker *w, swc_exec_describe_cb cb, void *data)
{
    return w->cfg.exec->ops->describe(w->cfg.exec, cb, data);
}

static void close_timer_cb(uv_handle_t *h)
{
    struct swc_worker *w = h->data;
    if (w->close_cb != NULL) {
        w->close_cb(w->close_data);
    }
    w->closed = true;
    maybe_free(w); /* else when the listing and removals in flight report back */
}

void swc_worker_close(struct swc_worker *w, void (*close_cb)(void *data), void *data)
{
    struct entry *e, *tmp;
    w->closing = true;
    w->close_cb = close_cb;
    w->close_data = data;
    swc_exec_set_event_cb(w->cfg.exec, NULL, NULL);
    HASH_ITER(hh, w->tasks, e, tmp)
    {
        HASH_DEL(w->tasks, e);
        swc_runner_destroy(e->r);
        free_entry(e);
    }
    w->ntasks = 0;
    swc_taskdb_close(w->db);
    w->db = NULL;
    uv_close((uv_handle_t *)&w->close_timer, close_timer_cb);
}
