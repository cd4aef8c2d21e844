/* The task reaper's decision (see reaper.h).
 *
 * Sort task indexes by (service, slot or node, status time), walk each group
 * once, and mark: every task of a removed service; scaled-away tasks once they
 * are dead or never reached a node; the oldest dead history beyond the limit. */
#include "manager/reaper.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define ST_ASSIGNED SWARMC__TASK_STATE__TASK_STATE_ASSIGNED
#define ST_RUNNING  SWARMC__TASK_STATE__TASK_STATE_RUNNING
#define ST_SHUTDOWN SWARMC__TASK_STATE__TASK_STATE_SHUTDOWN
#define ST_REMOVE   SWARMC__TASK_STATE__TASK_STATE_REMOVE

int64_t swc_reaper_limit(const Swarmc__Cluster *cluster)
{
    int64_t v = 0;
    if (cluster != NULL && cluster->spec != NULL && cluster->spec->orchestration != NULL)
        v = cluster->spec->orchestration->task_history_retention_limit;
    if (v == 0)
        return SWC_REAPER_DEFAULT_LIMIT;
    return v < 0 ? 0 : v;
}

static const struct swc_reaper_task *sort_tasks;

static const char *nz(const char *s)
{
    return s != NULL ? s : "";
}

static int group_cmp(const struct swc_reaper_task *a, const struct swc_reaper_task *b)
{
    int c = strcmp(nz(a->service_id), nz(b->service_id));
    if (c != 0)
        return c;
    if (a->slot != b->slot)
        return a->slot < b->slot ? -1 : 1;
    if (a->slot == 0)
        return strcmp(nz(a->node_id), nz(b->node_id));
    return 0;
}

static int idx_cmp(const void *x, const void *y)
{
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    const struct swc_reaper_task *a = &sort_tasks[i], *b = &sort_tasks[j];
    int c = group_cmp(a, b);
    if (c != 0)
        return c;
    if (a->status_ts != b->status_ts)
        return a->status_ts < b->status_ts ? -1 : 1;
    return i < j ? -1 : i > j;
}

static bool history(const struct swc_reaper_task *t)
{
    return t->state > ST_RUNNING && t->desired_state >= ST_SHUTDOWN && t->desired_state < ST_REMOVE;
}

int swc_reaper_select(const struct swc_reaper_task *tasks, size_t n, int64_t limit,
                      size_t **out_idx, size_t *n_out)
{
    *out_idx = NULL;
    *n_out = 0;
    if (n == 0)
        return 0;
    if (limit < 0)
        limit = 0;
    size_t *idx = swc_malloc(n * sizeof(*idx));
    size_t *res = swc_malloc(n * sizeof(*res));
    if (idx == NULL || res == NULL) {
        swc_free(idx);
        swc_free(res);
        return SWC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_tasks = tasks;
    qsort(idx, n, sizeof(*idx), idx_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && group_cmp(&tasks[idx[i]], &tasks[idx[j]]) == 0)
            j++;
        size_t hist = 0;
        for (size_t m = i; m < j; m++)
            if (tasks[idx[m]].service_exists && history(&tasks[idx[m]]))
                hist++;
        size_t drop = hist > (size_t)limit ? hist - (size_t)limit : 0;
        for (size_t m = i; m < j; m++) {
            const struct swc_reaper_task *t = &tasks[idx[m]];
            bool del = false;
            if (!t->service_exists)
                del = true;
            else if (t->desired_state >= ST_REMOVE)
                del = t->state > ST_RUNNING || t->state < ST_ASSIGNED;
            else if (history(t) && drop > 0) {
                del = true; /* oldest first: the group is sorted by time */
                drop--;
            }
            if (del)
                res[k++] = idx[m];
        }
        i = j;
    }
    swc_free(idx);
    if (k == 0) {
        swc_free(res);
        return 0;
    }
    *out_idx = res;
    *n_out = k;
    return 0;
}
