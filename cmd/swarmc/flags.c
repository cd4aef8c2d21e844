/* Flag parsing (see flags.h). One pass over argv: each "--long[=v]",
 * "-s[v]" or cluster of boolean short flags is looked up in the command's
 * table; values come from "=v", the rest of a short cluster, or the next
 * argument. Values point into argv; only the two result arrays are
 * allocated. The value parsers turn strings into numbers and always name
 * the flag in their error, so the user knows which of twenty flags was
 * wrong. */
#include "flags.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"

static const struct swc_flag_def *find_long(const struct swc_flag_def *defs, const char *name,
                                            size_t len)
{
    for (const struct swc_flag_def *d = defs; d->name != NULL; d++) {
        if (strlen(d->name) == len && strncmp(d->name, name, len) == 0) {
            return d;
        }
    }
    return NULL;
}

static const struct swc_flag_def *find_short(const struct swc_flag_def *defs, char c)
{
    for (const struct swc_flag_def *d = defs; d->name != NULL; d++) {
        if (d->short_name == c) {
            return d;
        }
    }
    return NULL;
}

static void push_val(struct swc_flags *out, const struct swc_flag_def *d, const char *v)
{
    struct swc_flag_val *n = swc_realloc(out->vals, (out->n_vals + 1) * sizeof *n);
    if (n == NULL) {
        abort(); /* the CLI may abort on OOM (STYLE) */
    }
    out->vals = n;
    out->vals[out->n_vals].def = d;
    out->vals[out->n_vals].value = v;
    out->n_vals++;
}

static void push_arg(struct swc_flags *out, char *a)
{
    char **n = swc_realloc(out->args, (out->n_args + 1) * sizeof *n);
    if (n == NULL) {
        abort();
    }
    out->args = n;
    out->args[out->n_args++] = a;
}

/* A boolean flag given as --flag=v must have a boolean value. */
static int bool_value(const struct swc_flag_def *d, const char *v, const char **out,
                      struct swc_err *err)
{
    bool b = false;
    if (v == NULL) {
        *out = "true";
        return 0;
    }
    if (swc_flag_boolval(d->name, v, &b, err) != 0) {
        return SWC_EINVAL;
    }
    *out = b ? "true" : "false";
    return 0;
}

static int parse_long(const struct swc_flag_def *defs, int argc, char **argv, int *i,
                      struct swc_flags *out, struct swc_err *err)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct swc_flag_def *d = find_long(defs, name, len);
    if (d == NULL) {
        if (len == 4 && strncmp(name, "help", 4) == 0) {
            out->help = true;
            return 0;
        }
        return swc_err_set(err, SWC_EINVAL, "unknown flag: --%.*s", (int)len, name);
    }
    if (!d->takes_value) {
        const char *v;
        if (bool_value(d, eq ? eq + 1 : NULL, &v, err) != 0) {
            return SWC_EINVAL;
        }
        push_val(out, d, v);
        return 0;
    }
    if (eq != NULL) {
        push_val(out, d, eq + 1);
        return 0;
    }
    if (*i + 1 >= argc) {
        return swc_err_set(err, SWC_EINVAL, "flag needs an argument: --%s", d->name);
    }
    (*i)++;
    push_val(out, d, argv[*i]);
    return 0;
}

static int parse_short(const struct swc_flag_def *defs, int argc, char **argv, int *i,
                       struct swc_flags *out, struct swc_err *err)
{
    const char *p = argv[*i] + 1;
    while (*p != '\0') {
        const struct swc_flag_def *d = find_short(defs, *p);
        if (d == NULL) {
            if (*p == 'h') {
                out->help = true;
                p++;
                continue;
            }
            return swc_err_set(err, SWC_EINVAL, "unknown shorthand flag: '%c' in %s", *p, argv[*i]);
        }
        if (!d->takes_value) {
            push_val(out, d, "true");
            p++;
            continue;
        }
        if (p[1] != '\0') {
            push_val(out, d, p[1] == '=' ? p + 2 : p + 1);
            return 0;
        }
        if (*i + 1 >= argc) {
            return swc_err_set(err, SWC_EINVAL, "flag needs an argument: -%c (--%s)", *p, d->name);
        }
        (*i)++;
        push_val(out, d, argv[*i]);
        return 0;
    }
    return 0;
}

int swc_flags_parse(const struct swc_flag_def *defs, int argc, char **argv, bool stop_at_arg,
                    struct swc_flags *out, struct swc_err *err)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        int rv = 0;
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                push_arg(out, argv[i]);
            }
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            push_arg(out, a);
            if (stop_at_arg) {
                for (i++; i < argc; i++) {
                    push_arg(out, argv[i]);
                }
                break;
            }
            continue;
        }
        if (a[1] == '-') {
            rv = parse_long(defs, argc, argv, &i, out, err);
        } else {
            rv = parse_short(defs, argc, argv, &i, out, err);
        }
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

void swc_flags_free(struct swc_flags *f)
{
    swc_free(f->vals);
    swc_free(f->args);
    memset(f, 0, sizeof *f);
}

const char *swc_flags_get(const struct swc_flags *f, int id)
{
    const char *v = NULL;
    for (size_t i = 0; i < f->n_vals; i++) {
        if (f->vals[i].def->id == id) {
            v = f->vals[i].value;
        }
    }
    return v;
}

bool swc_flags_bool(const struct swc_flags *f, int id)
{
    const char *v = swc_flags_get(f, id);
    return v != NULL && strcmp(v, "true") == 0;
}

void swc_flags_usage(const struct swc_flag_def *defs, char *buf, size_t len)
{
    size_t off = 0;
    int width = 0;
    buf[0] = '\0';
    for (const struct swc_flag_def *d = defs; d->name != NULL; d++) {
        int w = (int)strlen(d->name) + (d->metavar ? (int)strlen(d->metavar) + 1 : 0);
        if (d->help != NULL && w > width) {
            width = w;
        }
    }
    for (const struct swc_flag_def *d = defs; d->name != NULL && off < len; d++) {
        char left[128];
        if (d->help == NULL) {
            continue;
        }
        snprintf(left, sizeof left, "%s%s%s", d->name, d->metavar ? " " : "",
                 d->metavar ? d->metavar : "");
        int n;
        if (d->short_name) {
            n = snprintf(buf + off, len - off, "  -%c, --%-*s   %s\n", d->short_name, width, left,
                         d->help);
        } else {
            n = snprintf(buf + off, len - off, "      --%-*s   %s\n", width, left, d->help);
        }
        if (n < 0) {
            break;
        }
        off += (size_t)n;
    }
}

/* ---- value parsers ----------------------------------------------------- */

int swc_flag_uint(const char *flag, const char *v, uint64_t max, uint64_t *out, struct swc_err *err)
{
    char *end = NULL;
    unsigned long long n;
    if (v == NULL || !isdigit((unsigned char)v[0])) {
        goto bad;
    }
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0') {
        goto bad;
    }
    if (n > max) {
        return swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: must be at most %llu",
                           v, flag, (unsigned long long)max);
    }
    *out = n;
    return 0;
bad:
    return swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: use a non-negative integer",
                       v ? v : "", flag);
}

int swc_flag_duration(const char *flag, const char *v, int64_t *out_ns, struct swc_err *err)
{
    if (swc_parse_duration(v, out_ns) != 0) {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: use a duration like 10s or 1m30s", v,
                           flag);
    }
    return 0;
}

int swc_flag_size(const char *flag, const char *v, int64_t *out_bytes, struct swc_err *err)
{
    if (swc_parse_size(v, out_bytes) != 0) {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: use a size like 512M or 1G", v, flag);
    }
    return 0;
}

int swc_flag_cpus(const char *flag, const char *v, int64_t *out_nano, struct swc_err *err)
{
    char *end = NULL;
    double d;
    if (v == NULL || !(isdigit((unsigned char)v[0]) || v[0] == '.')) {
        goto bad;
    }
    errno = 0;
    d = strtod(v, &end);
    if (errno != 0 || *end != '\0' || !isfinite(d) || d < 0 || d > 1e6) {
        goto bad;
    }
    *out_nano = (int64_t)llround(d * 1e9);
    return 0;
bad:
    return swc_err_set(err, SWC_EINVAL,
                       "invalid value \"%s\" for --%s: use a number of CPUs like 0.5 or 2",
                       v ? v : "", flag);
}

int swc_flag_ratio(const char *flag, const char *v, float *out, struct swc_err *err)
{
    char *end = NULL;
    double d;
    if (v == NULL || !(isdigit((unsigned char)v[0]) || v[0] == '.')) {
        goto bad;
    }
    errno = 0;
    d = strtod(v, &end);
    if (errno != 0 || *end != '\0' || !(d >= 0 && d <= 1)) {
        goto bad;
    }
    *out = (float)d;
    return 0;
bad:
    return swc_err_set(err, SWC_EINVAL,
                       "invalid value \"%s\" for --%s: use a number between 0 and 1", v ? v : "",
                       flag);
}

int swc_flag_boolval(const char *flag, const char *v, bool *out, struct swc_err *err)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
    } else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = false;
    } else {
        return swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: use true or false", v,
                           flag);
    }
    return 0;
}
