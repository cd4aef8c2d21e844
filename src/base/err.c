/* Error codes and wrapped messages (see err.h). */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const descriptions[SWC_E_COUNT] = {
    [SWC_OK] = "success",
    [SWC_ENOMEM] = "out of memory",
    [SWC_EINVAL] = "invalid argument",
    [SWC_ENOENT] = "not found",
    [SWC_EEXIST] = "already exists",
    [SWC_ECONFLICT] = "version conflict",
    [SWC_EIO] = "I/O error",
    [SWC_EPROTO] = "protocol error",
    [SWC_ECANCELED] = "canceled",
    [SWC_ETIMEDOUT] = "deadline exceeded",
    [SWC_ECLOSED] = "closed",
    [SWC_EAUTH] = "authentication failed",
    [SWC_ETOOBIG] = "too large",
    [SWC_ENOTLEADER] = "not the leader",
    [SWC_ELEADERLOST] = "lost leadership",
    [SWC_EBUSY] = "busy, try again",
    [SWC_EUNAVAIL] = "unavailable",
    [SWC_EDOCKER] = "docker engine error",
    [SWC_ENOTSUP] = "not supported",
    [SWC_EQUORUM] = "would lose quorum",
    [SWC_EEXPIRED] = "certificate expired",
    [SWC_ESTATE] = "not allowed in this state",
    [SWC_EINTERNAL] = "internal error",
};

const char *swc_strerror(int code)
{
    if (code < 0 || code >= SWC_E_COUNT || descriptions[code] == NULL) {
        return "unknown error";
    }
    return descriptions[code];
}

int swc_err_set(struct swc_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL) {
        return code;
    }
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int swc_err_wrap(struct swc_err *err, const char *fmt, ...)
{
    char prefix[SWC_ERRMSG_SIZE];
    char old[SWC_ERRMSG_SIZE];
    va_list ap;
    if (err == NULL) {
        return SWC_EINTERNAL;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, swc_err_msg(err), sizeof old);
    old[sizeof old - 1] = '\0';
    /* Truncation is fine: the innermost detail is the least important. */
    size_t n = strnlen(prefix, sizeof err->msg - 3);
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3;
    size_t m = strnlen(old, room);
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
    return err->code;
}

int swc_err_copy(struct swc_err *dst, const struct swc_err *src)
{
    if (dst != src) {
        memcpy(dst, src, sizeof *dst);
    }
    return dst->code;
}

void swc_err_clear(struct swc_err *err)
{
    err->code = 0;
    err->msg[0] = '\0';
}

const char *swc_err_msg(const struct swc_err *err)
{
    if (err->msg[0] != '\0') {
        return err->msg;
    }
    return swc_strerror(err->code);
}
