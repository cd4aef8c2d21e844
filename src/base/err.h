/* Errors for all of swarmc.
 *
 * Functions return an int: 0 on success or a positive SWC_E* code. Codes from
 * other libraries (negative libuv errno, SQLITE_*, libsodium's -1, protobuf-c's
 * NULL) are converted where they are called and never travel further.
 * Long-lived objects also keep a struct swc_err whose message says, in words an
 * operator understands, what failed; each layer wraps it on the way up
 * ("dispatcher: assign task x: store: version conflict"). */
#ifndef SWC_BASE_ERR_H
#define SWC_BASE_ERR_H

#include <stddef.h>

enum {
    SWC_OK = 0,
    SWC_ENOMEM,      /* out of memory */
    SWC_EINVAL,      /* invalid argument or spec */
    SWC_ENOENT,      /* no such object */
    SWC_EEXIST,      /* already exists / name in use */
    SWC_ECONFLICT,   /* version conflict */
    SWC_EIO,         /* I/O error */
    SWC_EPROTO,      /* malformed message from a peer */
    SWC_ECANCELED,   /* call canceled or connection closed */
    SWC_ETIMEDOUT,   /* deadline passed */
    SWC_ECLOSED,     /* object is closing */
    SWC_EAUTH,       /* authentication or authorization failed */
    SWC_ETOOBIG,     /* message or object over its limit */
    SWC_ENOTLEADER,  /* this manager is not the leader */
    SWC_ELEADERLOST, /* leadership lost before the proposal committed */
    SWC_EBUSY,       /* try again later (rate limited, busy) */
    SWC_EUNAVAIL,    /* peer or service unreachable */
    SWC_EDOCKER,     /* the Docker engine refused or failed */
    SWC_ENOTSUP,     /* not supported */
    SWC_EQUORUM,     /* would lose raft quorum */
    SWC_EEXPIRED,    /* certificate expired */
    SWC_ESTATE,      /* operation not allowed in the current state */
    SWC_EINTERNAL,   /* bug */
    SWC_E_COUNT
};

/* A short, stable description of an error code ("version conflict"). */
const char *swc_strerror(int code);

#define SWC_ERRMSG_SIZE 512

/* An error code with its message, kept on long-lived objects. */
struct swc_err {
    int code;
    char msg[SWC_ERRMSG_SIZE];
};

/* Set err to code with a printf-formatted message; returns code. */
int swc_err_set(struct swc_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix err's message with a formatted context ("ctx: old message");
 * returns err->code. */
int swc_err_wrap(struct swc_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copy src into dst; returns the code. */
int swc_err_copy(struct swc_err *dst, const struct swc_err *src);

/* Clear err back to success. */
void swc_err_clear(struct swc_err *err);

/* The message of err, or the code's description when no message was set. */
const char *swc_err_msg(const struct swc_err *err);

#endif
