/* Logging with levels and per-module tracing.
 *
 * SWARMC_LOG_LEVEL=error|warn|info|debug sets the level (default info).
 * SWARMC_TRACE=mod1,mod2 (or "all") turns on trace lines for those modules;
 * raft's tracer feeds the same stream so its events interleave with ours.
 * Lines go to stderr: "2026-11-25T06:40:01.123Z info  dispatcher: text". */
#ifndef SWC_BASE_LOG_H
#define SWC_BASE_LOG_H

#include <stdbool.h>

enum swc_log_level {
    SWC_LOG_ERROR = 0,
    SWC_LOG_WARN,
    SWC_LOG_INFO,
    SWC_LOG_DEBUG,
    SWC_LOG_TRACE,
};

/* Read SWARMC_LOG_LEVEL and SWARMC_TRACE; safe to call more than once. */
void swc_log_init(void);

/* Override the level (e.g. the CLI keeps quiet). */
void swc_log_set_level(enum swc_log_level level);

/* Write log lines with this prefix (e.g. a node name in fleet tests). */
void swc_log_set_prefix(const char *prefix);

/* True when lines of this level would be written. */
bool swc_log_enabled(enum swc_log_level level);

/* True when tracing is on for module. */
bool swc_trace_enabled(const char *module);

/* Write one line. */
void swc_log(enum swc_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define swc_errorf(mod, ...) swc_log(SWC_LOG_ERROR, mod, __VA_ARGS__)
#define swc_warnf(mod, ...)  swc_log(SWC_LOG_WARN, mod, __VA_ARGS__)
#define swc_infof(mod, ...)  swc_log(SWC_LOG_INFO, mod, __VA_ARGS__)
#define swc_debugf(mod, ...)                                                                       \
    do {                                                                                           \
        if (swc_log_enabled(SWC_LOG_DEBUG))                                                        \
            swc_log(SWC_LOG_DEBUG, mod, __VA_ARGS__);                                              \
    } while (0)
#define swc_tracef(mod, ...)                                                                       \
    do {                                                                                           \
        if (swc_trace_enabled(mod))                                                                \
            swc_log(SWC_LOG_TRACE, mod, __VA_ARGS__);                                              \
    } while (0)

#endif
