/* Command-line flag parsing for swarmc's subcommands.
 *
 * Each command describes its flags in a table of struct swc_flag_def; the
 * parser walks argv once and produces the flags in the order given (so a
 * repeated flag such as --env appears once per use) plus the positional
 * arguments. It knows nothing of services or nodes: the spec builders in
 * spec.c interpret the values. Syntax follows Docker's CLI (pflag): --name v,
 * --name=v, -e v, -ev, -dq for boolean short flags, --flag=false, and "--"
 * ends the flags. A command that passes a container command through
 * (`service create IMAGE CMD...`) stops at the first positional argument.
 *
 * Errors are plain sentences for the user ("unknown flag: --foo"); the
 * caller adds "See 'swarmc ... --help'." and exits 2. */
#ifndef SWC_CLI_FLAGS_H
#define SWC_CLI_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* One flag a command accepts. A table ends with an entry whose name is NULL. */
struct swc_flag_def {
    const char *name;    /* long name without dashes ("replicas") */
    char short_name;     /* 'e', or 0 */
    bool takes_value;    /* false: boolean flag */
    int id;              /* command-defined identifier */
    const char *metavar; /* for --help ("duration"), NULL for booleans */
    const char *help;    /* one line for --help; NULL hides the flag */
};

/* One occurrence of a flag on the command line. */
struct swc_flag_val {
    const struct swc_flag_def *def;
    const char *value; /* points into argv, or "true"/"false" for booleans */
};

/* The result of parsing one command's arguments. */
struct swc_flags {
    struct swc_flag_val *vals;
    size_t n_vals;
    char **args; /* positional arguments, pointing into argv */
    size_t n_args;
    bool help; /* -h or --help was given */
};

/* Parse argv[0..argc) against defs (NULL-terminated table). stop_at_arg
 * stops flag parsing at the first positional argument. Returns 0, or
 * SWC_EINVAL with err set ("unknown flag: --foo", "flag needs an argument:
 * --name"). out owns arrays freed by swc_flags_free even on error. */
int swc_flags_parse(const struct swc_flag_def *defs, int argc, char **argv, bool stop_at_arg,
                    struct swc_flags *out, struct swc_err *err);

/* Free what swc_flags_parse allocated (not argv). */
void swc_flags_free(struct swc_flags *f);

/* The last value given for the flag with this id, or NULL. */
const char *swc_flags_get(const struct swc_flags *f, int id);

/* True when a boolean flag with this id was given and is true. */
bool swc_flags_bool(const struct swc_flags *f, int id);

/* Print the usage lines of a flag table ("  -e, --env list   Set ..."). */
void swc_flags_usage(const struct swc_flag_def *defs, char *buf, size_t len);

/* ---- value parsers: each sets err to "invalid value \"v\" for --flag: ..." */

/* Non-negative integer within max. */
int swc_flag_uint(const char *flag, const char *v, uint64_t max, uint64_t *out,
                  struct swc_err *err);
/* Go-style duration ("10s", "1m30s") via swc_parse_duration. */
int swc_flag_duration(const char *flag, const char *v, int64_t *out_ns, struct swc_err *err);
/* Size ("512M") via swc_parse_size. */
int swc_flag_size(const char *flag, const char *v, int64_t *out_bytes, struct swc_err *err);
/* Number of CPUs ("0.5", "2") into nano CPUs. */
int swc_flag_cpus(const char *flag, const char *v, int64_t *out_nano, struct swc_err *err);
/* A ratio between 0 and 1. */
int swc_flag_ratio(const char *flag, const char *v, float *out, struct swc_err *err);
/* A boolean value ("true", "false", "1", "0"). */
int swc_flag_boolval(const char *flag, const char *v, bool *out, struct swc_err *err);

#endif
