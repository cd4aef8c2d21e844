/* The incremental HTTP/1.x reply parser (see http_parse.h).
 *
 * A small state machine over the reply: the head is read a line at a time
 * into p->line (so a line may arrive in any number of pieces), while body
 * bytes are never copied: each step hands back a pointer into the input.
 * Only the framing headers are interpreted (Content-Length,
 * Transfer-Encoding); the others are checked for shape and dropped. The
 * parser is strict where a mistake would desynchronise the framing (chunk
 * sizes, the CRLF after a chunk, conflicting lengths) and lenient where it
 * costs nothing (a bare LF ends a head line, the reason phrase may be
 * missing). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "worker/http_parse.h"

enum {
    S_STATUS,     /* the status line */
    S_HEADER,     /* header lines up to the empty one */
    S_BODY_LEN,   /* p->left bytes of a Content-Length body */
    S_BODY_CLOSE, /* body until the connection ends */
    S_CHUNK_SIZE, /* "1a;ext\r\n" */
    S_CHUNK_DATA, /* p->left bytes of chunk data */
    S_CHUNK_CR,   /* the CRLF after chunk data (p->line_len = 1: CR seen) */
    S_TRAILER,    /* trailer lines after the last chunk */
    S_DONE,
    S_ERROR,
};

void swc_http_init(struct swc_http_parser *p)
{
    memset(p, 0, offsetof(struct swc_http_parser, line));
    p->state = S_STATUS;
    p->content_length = -1;
    p->max_body = SWC_HTTP_BODY_MAX;
}

static enum swc_http_ev fail(struct swc_http_parser *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum swc_http_ev fail(struct swc_http_parser *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
    p->code = code;
    p->state = S_ERROR;
    return SWC_HTTP_ERROR;
}

/* Quote the start of a bad line, printable bytes only, for a message. */
static const char *quote(const char *s, char *out, size_t size)
{
    size_t k = 0;
    for (; *s != '\0' && k + 1 < size; s++) {
        out[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '.';
    }
    out[k] = '\0';
    return out;
}

/* Gather one line into p->line (NUL-terminated, without CR LF): 1 when a
 * line is complete, 0 when the input ran out first, -1 on error. Head lines
 * also count against the head limit. */
static int read_line(struct swc_http_parser *p, const char **data, size_t *len, bool head)
{
    const char *nl = memchr(*data, '\n', *len);
    size_t take = nl != NULL ? (size_t)(nl - *data) + 1 : *len;
    if (head && p->head_len + take > SWC_HTTP_HEAD_MAX) {
        fail(p, SWC_ETOOBIG, "reply head larger than %u bytes", SWC_HTTP_HEAD_MAX);
        return -1;
    }
    if (p->line_len + take > SWC_HTTP_LINE_MAX) {
        fail(p, SWC_ETOOBIG, "%s line longer than %d bytes",
             p->state == S_STATUS   ? "status"
             : p->state == S_HEADER ? "header"
                                    : "chunk",
             SWC_HTTP_LINE_MAX);
        return -1;
    }
    memcpy(p->line + p->line_len, *data, take);
    p->line_len += take;
    if (head) {
        p->head_len += take;
    }
    *data += take;
    *len -= take;
    p->nread += take;
    if (nl == NULL) {
        return 0;
    }
    p->line_len--; /* the LF */
    if (p->line_len > 0 && p->line[p->line_len - 1] == '\r') {
        p->line_len--;
    }
    p->line[p->line_len] = '\0';
    if (memchr(p->line, '\0', p->line_len) != NULL) {
        fail(p, SWC_EPROTO, "NUL byte in a %s line", p->state == S_STATUS ? "status" : "head");
        return -1;
    }
    p->line_len = 0; /* ready for the next line; p->line keeps this one */
    return 1;
}

static bool status_line(struct swc_http_parser *p)
{
    const char *l = p->line;
    char q[64];
    if (strncmp(l, "HTTP/1.", 7) != 0 || l[7] < '0' || l[7] > '9' || l[8] != ' ' || l[9] < '1' ||
        l[9] > '9' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' ||
        (l[12] != '\0' && l[12] != ' ')) {
        fail(p, SWC_EPROTO, "bad status line \"%s\"", quote(l, q, sizeof(q)));
        return false;
    }
    p->minor = l[7] - '0';
    p->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    return true;
}

/* Trim spaces and tabs on both ends, in place. */
static char *trim(char *s)
{
    size_t n;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        s[--n] = '\0';
    }
    return s;
}

static bool header_line(struct swc_http_parser *p)
{
    char *colon = strchr(p->line, ':'), *value, q[64];
    size_t nlen;
    if (p->line[0] == ' ' || p->line[0] == '\t') {
        fail(p, SWC_EPROTO, "folded header line \"%s\"", quote(p->line, q, sizeof(q)));
        return false;
    }
    if (colon == NULL || colon == p->line) {
        fail(p, SWC_EPROTO, "bad header line \"%s\"", quote(p->line, q, sizeof(q)));
        return false;
    }
    nlen = (size_t)(colon - p->line);
    if (memchr(p->line, ' ', nlen) != NULL || memchr(p->line, '\t', nlen) != NULL) {
        fail(p, SWC_EPROTO, "bad header name \"%s\"", quote(p->line, q, sizeof(q)));
        return false;
    }
    *colon = '\0';
    value = trim(colon + 1);
    if (strcasecmp(p->line, "Content-Length") == 0) {
        int64_t v = 0;
        if (*value == '\0') {
            fail(p, SWC_EPROTO, "empty Content-Length");
            return false;
        }
        for (const char *c = value; *c; c++) {
            if (*c < '0' || *c > '9' || v > (INT64_MAX - 9) / 10) {
                fail(p, SWC_EPROTO, "bad Content-Length \"%s\"", quote(value, q, sizeof(q)));
                return false;
            }
            v = v * 10 + (*c - '0');
        }
        if (p->content_length >= 0 && p->content_length != v) {
            fail(p, SWC_EPROTO, "two different Content-Length headers");
            return false;
        }
        p->content_length = v;
    } else if (strcasecmp(p->line, "Transfer-Encoding") == 0) {
        /* only "chunked" (possibly after "identity") frames a body we can read */
        const char *last = strrchr(value, ',');
        char tok[32];
        snprintf(tok, sizeof(tok), "%s", last != NULL ? last + 1 : value);
        if (strcasecmp(trim(tok), "chunked") != 0) {
            fail(p, SWC_EPROTO, "unsupported Transfer-Encoding \"%s\"", quote(value, q, sizeof(q)));
            return false;
        }
        p->chunked = true;
    }
    return true;
}

/* The empty line after the headers: choose how the body is framed. */
static enum swc_http_ev end_of_head(struct swc_http_parser *p)
{
    if (p->status >= 100 && p->status < 200 && p->status != 101) {
        /* an interim reply (100 Continue): the real one follows */
        p->status = 0;
        p->chunked = false;
        p->content_length = -1;
        p->head_len = 0;
        p->state = S_STATUS;
        return SWC_HTTP_MORE;
    }
    p->head_done = true;
    if (p->status == 204 || p->status == 304) {
        p->state = S_DONE;
    } else if (p->chunked) {
        p->content_length = -1; /* chunked framing wins over a length */
        p->state = S_CHUNK_SIZE;
    } else if (p->content_length >= 0) {
        p->left = (uint64_t)p->content_length;
        p->state = p->left > 0 ? S_BODY_LEN : S_DONE;
    } else {
        p->state = S_BODY_CLOSE;
    }
    return SWC_HTTP_HEAD;
}

static bool chunk_size_line(struct swc_http_parser *p)
{
    const char *c = p->line;
    uint64_t v = 0;
    int digits = 0;
    char q[64];
    for (;; c++) {
        int d;
        if (*c >= '0' && *c <= '9') {
            d = *c - '0';
        } else if (*c >= 'a' && *c <= 'f') {
            d = *c - 'a' + 10;
        } else if (*c >= 'A' && *c <= 'F') {
            d = *c - 'A' + 10;
        } else {
            break;
        }
        if (++digits > 15) {
            fail(p, SWC_EPROTO, "chunk size \"%s\" too large", quote(p->line, q, sizeof(q)));
            return false;
        }
        v = v * 16 + (uint64_t)d;
    }
    while (*c == ' ' || *c == '\t') {
        c++;
    }
    if (digits == 0 || (*c != '\0' && *c != ';')) {
        fail(p, SWC_EPROTO, "bad chunk size \"%s\"", quote(p->line, q, sizeof(q)));
        return false;
    }
    p->left = v;
    if (v == 0) {
        p->head_len = 0; /* trailers get their own head budget */
        p->state = S_TRAILER;
    } else {
        p->state = S_CHUNK_DATA;
    }
    return true;
}

/* Hand out up to p->left (or all, when left is NULL) of the input as body. */
static enum swc_http_ev body_piece(struct swc_http_parser *p, const char **data, size_t *len,
                                   const char **piece, size_t *piece_len, bool bounded)
{
    size_t n = *len;
    if (bounded && p->left < n) {
        n = (size_t)p->left;
    }
    if (p->max_body != 0 && p->body_seen + n > p->max_body) {
        /* hand out what fits first, so where the input was cut does not matter */
        if (p->body_seen >= p->max_body) {
            return fail(p, SWC_ETOOBIG, "reply body larger than %llu bytes",
                        (unsigned long long)p->max_body);
        }
        n = (size_t)(p->max_body - p->body_seen);
    }
    *piece = *data;
    *piece_len = n;
    *data += n;
    *len -= n;
    p->nread += n;
    p->body_seen += n;
    if (bounded) {
        p->left -= n;
    }
    return SWC_HTTP_BODY;
}

enum swc_http_ev swc_http_step(struct swc_http_parser *p, const char **data, size_t *len,
                               const char **piece, size_t *piece_len)
{
    *piece = NULL;
    *piece_len = 0;
    for (;;) {
        int r;
        switch (p->state) {
        case S_DONE:
            return SWC_HTTP_DONE;
        case S_ERROR:
            return SWC_HTTP_ERROR;
        default:
            break;
        }
        if (p->state == S_BODY_LEN && p->left == 0) {
            p->state = S_DONE;
            continue;
        }
        if (*len == 0) {
            return SWC_HTTP_MORE;
        }
        switch (p->state) {
        case S_STATUS:
            /* fail fast on something that is not HTTP at all */
            if (p->line_len < 5) {
                size_t k = p->line_len;
                for (size_t i = 0; k + i < 5 && i < *len; i++) {
                    if ((*data)[i] != "HTTP/"[k + i]) {
                        p->nread += *len;
                        return fail(p, SWC_EPROTO,
                                    "not an HTTP reply (does not start with \"HTTP/\")");
                    }
                }
            }
            if ((r = read_line(p, data, len, true)) <= 0) {
                return r < 0 ? SWC_HTTP_ERROR : SWC_HTTP_MORE;
            }
            if (!status_line(p)) {
                return SWC_HTTP_ERROR;
            }
            p->state = S_HEADER;
            break;
        case S_HEADER:
            if ((r = read_line(p, data, len, true)) <= 0) {
                return r < 0 ? SWC_HTTP_ERROR : SWC_HTTP_MORE;
            }
            if (p->line[0] == '\0') {
                enum swc_http_ev ev = end_of_head(p);
                if (ev != SWC_HTTP_MORE) {
                    return ev;
                }
            } else if (!header_line(p)) {
                return SWC_HTTP_ERROR;
            }
            break;
        case S_BODY_LEN:
        case S_CHUNK_DATA: {
            enum swc_http_ev ev = body_piece(p, data, len, piece, piece_len, true);
            if (p->state == S_CHUNK_DATA && p->left == 0) {
                p->state = S_CHUNK_CR;
                p->line_len = 0;
            }
            return ev;
        }
        case S_BODY_CLOSE:
            return body_piece(p, data, len, piece, piece_len, false);
        case S_CHUNK_CR: {
            char c = **data;
            if (c == '\r' && p->line_len == 0) {
                p->line_len = 1;
            } else if (c == '\n') {
                p->line_len = 0;
                p->state = S_CHUNK_SIZE;
            } else {
                return fail(p, SWC_EPROTO, "chunk data not followed by CRLF");
            }
            (*data)++;
            (*len)--;
            p->nread++;
            break;
        }
        case S_CHUNK_SIZE:
            if ((r = read_line(p, data, len, false)) <= 0) {
                return r < 0 ? SWC_HTTP_ERROR : SWC_HTTP_MORE;
            }
            if (!chunk_size_line(p)) {
                return SWC_HTTP_ERROR;
            }
            break;
        case S_TRAILER:
            if ((r = read_line(p, data, len, true)) <= 0) {
                return r < 0 ? SWC_HTTP_ERROR : SWC_HTTP_MORE;
            }
            if (p->line[0] == '\0') {
                p->state = S_DONE;
            }
            break;
        default:
            return fail(p, SWC_EINTERNAL, "parser in state %d", p->state);
        }
    }
}

enum swc_http_ev swc_http_eof(struct swc_http_parser *p)
{
    switch (p->state) {
    case S_DONE:
        return SWC_HTTP_DONE;
    case S_ERROR:
        return SWC_HTTP_ERROR;
    case S_BODY_CLOSE:
        p->state = S_DONE;
        return SWC_HTTP_DONE;
    case S_BODY_LEN:
        if (p->left == 0) {
            p->state = S_DONE;
            return SWC_HTTP_DONE;
        }
        return fail(p, SWC_EPROTO, "connection closed after %llu of %lld body bytes",
                    (unsigned long long)(p->body_seen), (long long)p->content_length);
    default:
        break;
    }
    if (p->nread == 0) {
        return fail(p, SWC_EPROTO, "empty reply");
    }
    if (!p->head_done) {
        return fail(p, SWC_EPROTO, "connection closed in the reply head");
    }
    return fail(p, SWC_EPROTO, "connection closed in the middle of a chunked body");
}
