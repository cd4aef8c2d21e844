/* A small state-machine helper: a table of allowed transitions and an
 * invariant checked on every step. Multi-step flows (task runner, update
 * supervisor, connection handshake) declare their table once and step
 * through swc_sm_step, so an illegal move is refused in one place. */
#ifndef SWC_BASE_SM_H
#define SWC_BASE_SM_H

#include <stdbool.h>
#include <stdint.h>

#define SWC_SM_MAX_STATES 64

struct swc_sm_def {
    const char *name;               /* for messages: "task runner" */
    int nstates;                    /* at most SWC_SM_MAX_STATES */
    const char *const *state_names; /* nstates entries */
    const uint64_t *allowed;        /* allowed[from] is a bitmask of reachable states */
    /* Optional: checked after each step on the object; false is a bug. */
    bool (*invariant)(const void *obj, int state);
};

/* A running machine: its definition, current state and the object the
 * invariant checks. */
struct swc_sm {
    const struct swc_sm_def *def;
    int state;
    const void *obj;
};

#define SWC_SM_BIT(s) (UINT64_C(1) << (s))

/* Start m in state initial. */
void swc_sm_init(struct swc_sm *m, const struct swc_sm_def *def, int initial, const void *obj);

/* True when def allows from -> to. */
bool swc_sm_allowed(const struct swc_sm_def *def, int from, int to);

/* Move m to state to: 0, SWC_ESTATE when the table forbids it (m unchanged),
 * or SWC_EINTERNAL when the invariant fails after the move. */
int swc_sm_step(struct swc_sm *m, int to);

/* The name of state s in def (or "?"). */
const char *swc_sm_state_name(const struct swc_sm_def *def, int s);

#endif
