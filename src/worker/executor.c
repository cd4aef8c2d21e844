/* Helpers shared by every executor (see executor.h). */
#include "worker/executor.h"

#include <inttypes.h>
#include <stdio.h>

#include "base/err.h"

int swc_exec_container_name(const Swarmc__Task *task, char *out, size_t size)
{
    const char *svc =
        task->service_name != NULL && task->service_name[0] != '\0'
            ? task->service_name
            : (task->service_id != NULL && task->service_id[0] ? task->service_id : "task");
    int n;
    if (task->slot == 0 && task->node_id != NULL && task->node_id[0] != '\0') {
        n = snprintf(out, size, "%s.%s.%s", svc, task->node_id, task->id);
    } else {
        n = snprintf(out, size, "%s.%" PRIu64 ".%s", svc, task->slot, task->id);
    }
    return n < 0 || (size_t)n >= size ? SWC_EINVAL : 0;
}
