/* State-machine helper (see sm.h). */
#include "base/sm.h"

#include "base/err.h"
#include "base/log.h"

void swc_sm_init(struct swc_sm *m, const struct swc_sm_def *def, int initial, const void *obj)
{
    m->def = def;
    m->state = initial;
    m->obj = obj;
}

bool swc_sm_allowed(const struct swc_sm_def *def, int from, int to)
{
    if (from < 0 || from >= def->nstates || to < 0 || to >= def->nstates) {
        return false;
    }
    return (def->allowed[from] & SWC_SM_BIT(to)) != 0;
}

int swc_sm_step(struct swc_sm *m, int to)
{
    if (!swc_sm_allowed(m->def, m->state, to)) {
        swc_debugf("sm", "%s: refused %s -> %s", m->def->name, swc_sm_state_name(m->def, m->state),
                   swc_sm_state_name(m->def, to));
        return SWC_ESTATE;
    }
    m->state = to;
    if (m->def->invariant != NULL && !m->def->invariant(m->obj, to)) {
        swc_errorf("sm", "%s: invariant broken in state %s", m->def->name,
                   swc_sm_state_name(m->def, to));
        return SWC_EINTERNAL;
    }
    return 0;
}

const char *swc_sm_state_name(const struct swc_sm_def *def, int s)
{
    if (s < 0 || s >= def->nstates || def->state_names == NULL) {
        return "?";
    }
    return def->state_names[s];
}
