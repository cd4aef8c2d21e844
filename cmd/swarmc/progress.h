/* The convergence display of `service create|update|scale|rollback`.
 *
 * Rendering is a pure function: the service's tasks (as control.ListTasks
 * returns them) and a verify phase in, display lines out. The caller polls
 * the daemon every 150 ms, feeds each reply here, and writes the
 * difference with swc_progress_draw: on a terminal the whole block is
 * redrawn in place with cursor movements; otherwise only lines that
 * changed are printed, so a log file records each step once.
 *
 * A service counts as converged when every slot (replicated: 1..N; global:
 * one task per node the orchestrator created) has a task of the current
 * spec version in its goal state (running; complete for jobs). The caller
 * then waits 1 s (Docker waits 5 s; one second is enough to catch a task
 * that crashes at start-up at the 100-200 ms poll rate and keeps scripts
 * fast) with the state holding before it prints "verify: Service
 * converged". */
#ifndef SWC_CLI_PROGRESS_H
#define SWC_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/types.pb-c.h"

#define SWC_PROGRESS_LINE      160
#define SWC_PROGRESS_MAX_SLOTS 40 /* more slots: only the overall line */
#define SWC_PROGRESS_MAX_LINES (SWC_PROGRESS_MAX_SLOTS + 2)
#define SWC_PROGRESS_BAR       50
#define SWC_PROGRESS_VERIFY_NS 1000000000LL

enum swc_verify { SWC_VERIFY_NONE = 0, SWC_VERIFY_WAITING, SWC_VERIFY_DONE };

/* What is rendered. */
struct swc_progress_in {
    const Swarmc__ServiceSpec *spec; /* the service's current spec (mode, replicas) */
    uint64_t spec_version;           /* tasks older than this do not count; 0 = any */
    Swarmc__Task *const *tasks;      /* the service's tasks (any desired state) */
    size_t n_tasks;
    enum swc_verify verify;
    int64_t verify_left_ns; /* with SWC_VERIFY_WAITING */
};

/* The block of lines, and what it means. */
struct swc_progress_out {
    char lines[SWC_PROGRESS_MAX_LINES][SWC_PROGRESS_LINE];
    size_t n;
    unsigned done;  /* tasks in their goal state */
    unsigned total; /* tasks wanted */
    bool converged; /* every slot in its goal state */
    bool failed;    /* some current task failed or was rejected (still retried) */
};

/* Render the progress block for in into out. */
void swc_progress_render(const struct swc_progress_in *in, struct swc_progress_out *out);

/* What to write to go from the block prev (NULL: nothing drawn yet) to cur.
 * tty: move the cursor up over prev and redraw every line (ANSI);
 * otherwise emit only lines that are new or changed. Writes at most len
 * bytes (NUL-terminated) into buf; returns the length. */
size_t swc_progress_draw(const struct swc_progress_out *prev, const struct swc_progress_out *cur,
                         bool tty, char *buf, size_t len);

#endif
