/* An incremental HTTP/1.x reply parser, pure (no I/O, no allocation).
 *
 * The Docker executor talks HTTP/1.1 to the engine over a unix socket and
 * feeds every byte it reads through this parser, in whatever pieces the
 * socket hands over. The parser is pulled, not pushing callbacks: each call
 * to swc_http_step consumes input until it has something to report (the head
 * is complete, a piece of body, the end of the reply, an error, or "give me
 * more"), so the caller decides what to do between two steps and no callback
 * can free the caller's state in the middle of a parse. Body pieces point
 * into the caller's input (no copy). It understands the status line, headers
 * (names case-insensitively; it keeps only what framing needs),
 * Content-Length, Transfer-Encoding: chunked (extensions and trailers are
 * skipped) and bodies delimited by the connection's end (HTTP/1.0 style);
 * 1xx interim replies are skipped. Limits: one head line, the whole head, and
 * the body bytes delivered (unless the caller lifts the body limit for a
 * stream), each failing with a message that says which limit. */
#ifndef SWC_WORKER_HTTP_PARSE_H
#define SWC_WORKER_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SWC_HTTP_LINE_MAX 8192          /* one status, header or chunk-size line */
#define SWC_HTTP_HEAD_MAX (64u << 10)   /* status line + headers */
#define SWC_HTTP_BODY_MAX (64ull << 20) /* default body limit */

/* What a step reports. */
enum swc_http_ev {
    SWC_HTTP_MORE,  /* all input consumed; feed more (or swc_http_eof) */
    SWC_HTTP_HEAD,  /* status and headers complete (p->status, p->content_length) */
    SWC_HTTP_BODY,  /* a piece of body in *piece / *piece_len */
    SWC_HTTP_DONE,  /* the reply is complete; bytes after it are left unconsumed */
    SWC_HTTP_ERROR, /* p->code (SWC_EPROTO or SWC_ETOOBIG) and p->err say why */
};

struct swc_http_parser {
    int state;
    int status;             /* 0 until the status line was read */
    int minor;              /* HTTP/1.<minor> */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool head_done;         /* the final (non-1xx) head is complete */
    int64_t content_length; /* -1 when absent */
    uint64_t max_body;      /* body bytes allowed; 0 = no limit */
    uint64_t body_seen;     /* body bytes delivered so far */
    uint64_t left;          /* bytes left in the body or the current chunk */
    size_t head_len;        /* bytes of the current head so far */
    uint64_t nread;         /* all bytes consumed, for "empty reply" */
    int code;               /* SWC_E* after SWC_HTTP_ERROR */
    char err[160];          /* what was wrong, e.g. "bad chunk size \"zz\"" */
    size_t line_len;
    char line[SWC_HTTP_LINE_MAX];
};

/* Reset p to parse a new reply, with the default body limit. */
void swc_http_init(struct swc_http_parser *p);

/* Consume input from *data / *len (both advanced) until there is something to
 * report; on SWC_HTTP_BODY, *piece and *piece_len point into the consumed
 * input. After SWC_HTTP_DONE or SWC_HTTP_ERROR every further step repeats it. */
enum swc_http_ev swc_http_step(struct swc_http_parser *p, const char **data, size_t *len,
                               const char **piece, size_t *piece_len);

/* The connection ended: SWC_HTTP_DONE when that completes the reply (a body
 * delimited by the end of the connection, or a reply already done), else
 * SWC_HTTP_ERROR (empty reply, cut in the head, truncated body). */
enum swc_http_ev swc_http_eof(struct swc_http_parser *p);

#endif
