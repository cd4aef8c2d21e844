/* Logging (see log.h). The trace switch is parsed once into a small list of
 * module names so checking it on a hot path is a few string compares. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_TRACED 32

static enum swc_log_level current_level = SWC_LOG_INFO;
static char trace_buf[512];
static const char *traced[MAX_TRACED];
static int ntraced;
static bool trace_all;
static char line_prefix[64];

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void swc_log_init(void)
{
    const char *lvl = getenv("SWARMC_LOG_LEVEL");
    const char *tr = getenv("SWARMC_TRACE");
    if (lvl != NULL) {
        for (int i = 0; i <= SWC_LOG_TRACE; i++) {
            if (strcasecmp(lvl, level_names[i]) == 0) {
                current_level = (enum swc_log_level)i;
            }
        }
    }
    ntraced = 0;
    trace_all = false;
    if (tr == NULL || tr[0] == '\0') {
        return;
    }
    snprintf(trace_buf, sizeof trace_buf, "%s", tr);
    char *save = NULL;
    for (char *tok = strtok_r(trace_buf, ",", &save); tok != NULL && ntraced < MAX_TRACED;
         tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "all") == 0) {
            trace_all = true;
        }
        traced[ntraced++] = tok;
    }
}

void swc_log_set_level(enum swc_log_level level)
{
    current_level = level;
}

void swc_log_set_prefix(const char *prefix)
{
    snprintf(line_prefix, sizeof line_prefix, "%s", prefix != NULL ? prefix : "");
}

bool swc_log_enabled(enum swc_log_level level)
{
    return level <= current_level;
}

bool swc_trace_enabled(const char *module)
{
    if (trace_all) {
        return true;
    }
    for (int i = 0; i < ntraced; i++) {
        if (strcmp(traced[i], module) == 0) {
            return true;
        }
    }
    return false;
}

void swc_log(enum swc_log_level level, const char *module, const char *fmt, ...)
{
    char msg[2048];
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if (level > current_level && !(level == SWC_LOG_TRACE && swc_trace_enabled(module))) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line so concurrent writers do not interleave mid-line. */
    fprintf(stderr, "%s.%03ldZ %-5s %s%s%s: %s\n", stamp, ts.tv_nsec / 1000000L, level_names[level],
            line_prefix, line_prefix[0] ? " " : "", module, msg);
}
