/* The worker's durable task table: a SQLite file (worker.db) in the state
 * dir holding every assigned task (encoded Swarmc__Task) and its last
 * observed status and container id. The runner writes a status here before
 * it is reported, so after a restart the worker resumes exactly where it
 * was. WAL journal with synchronous=NORMAL: a write costs no fsync on the
 * loop; a power cut may lose the last writes, never corrupt the file. */
#ifndef SWC_WORKER_TASKDB_H
#define SWC_WORKER_TASKDB_H

#include <stddef.h>

#include "api/types.pb-c.h"
#include "base/err.h"

struct swc_taskdb;

/* Open (creating if missing) path; 0 or SWC_EIO/SWC_ENOMEM (message in err). */
int swc_taskdb_open(struct swc_taskdb **out, const char *path, struct swc_err *err);

/* Close and free (NULL is fine). */
void swc_taskdb_close(struct swc_taskdb *db);

/* Insert or replace the task (its status included). */
int swc_taskdb_put_task(struct swc_taskdb *db, const Swarmc__Task *task);

/* Update only the observed status and container id of a stored task. */
int swc_taskdb_put_status(struct swc_taskdb *db, const char *task_id,
                          const Swarmc__TaskStatus *status, const char *container_id);

/* Delete the task (absent is fine). */
int swc_taskdb_delete(struct swc_taskdb *db, const char *task_id);

/* Called once per stored task: task is owned by the callee (free it with
 * swarmc__task__free_unpacked(task, &swc_pb_allocator)); its status is the last
 * one written; container_id may be "" . Return non-zero to stop. */
typedef int (*swc_taskdb_each_cb)(void *data, Swarmc__Task *task, const char *container_id);

/* Load every stored task. 0, or the first error (SWC_EIO, SWC_EPROTO for an
 * undecodable row, which is skipped and reported in the message). */
int swc_taskdb_load(struct swc_taskdb *db, swc_taskdb_each_cb cb, void *data);

/* Number of stored tasks (or -1 on error). */
long swc_taskdb_count(struct swc_taskdb *db);

/* Last error message. */
const char *swc_taskdb_errmsg(const struct swc_taskdb *db);

#endif
