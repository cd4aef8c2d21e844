/* The HTTP/1.x reply parser (src/worker/http_parse.c), byte by byte.
 *
 * Each reply is fed whole, one byte at a time and split in two at every
 * offset, and must give the same status, body and end every time. The
 * negative cases check that each malformed or oversized reply ends in an
 * error with the right code and a message naming what was wrong, and that a
 * connection ending early is told apart from a reply delimited by its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "worker/http_parse.h"

struct res {
    enum swc_http_ev end; /* DONE or ERROR (or MORE when neither came) */
    int heads;
    int status;
    int code;
    char err[160];
    char body[4096];
    size_t body_len;
    size_t left_over; /* input bytes not consumed after DONE */
};

static struct swc_http_parser P; /* big: keep it off the stack */
#define DEFAULT_LIMIT UINT64_MAX /* parse_cuts: keep the parser's body limit */

/* Feed one piece; false once the reply ended (done or error). */
static bool feed(struct res *r, const char *data, size_t len)
{
    for (;;) {
        const char *piece;
        size_t n;
        enum swc_http_ev ev = swc_http_step(&P, &data, &len, &piece, &n);
        switch (ev) {
        case SWC_HTTP_MORE:
            assert_int_equal(len, 0);
            return true;
        case SWC_HTTP_HEAD:
            r->heads++;
            r->status = P.status;
            break;
        case SWC_HTTP_BODY:
            assert_true(r->body_len + n <= sizeof(r->body));
            memcpy(r->body + r->body_len, piece, n);
            r->body_len += n;
            break;
        case SWC_HTTP_DONE:
        case SWC_HTTP_ERROR:
            r->end = ev;
            r->code = P.code;
            snprintf(r->err, sizeof(r->err), "%s", P.err);
            r->left_over = len;
            return false;
        }
    }
}

/* Parse in pieces cut at the given offsets (ascending, -1 terminated), then
 * the end of the connection when eof. */
static void parse_cuts(struct res *r, const char *in, size_t len, const size_t *cuts, size_t ncuts,
                       bool eof, uint64_t max_body)
{
    size_t at = 0;
    memset(r, 0, sizeof(*r));
    r->end = SWC_HTTP_MORE;
    swc_http_init(&P);
    if (max_body != DEFAULT_LIMIT) {
        P.max_body = max_body;
    }
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        if (!feed(r, in + at, to - at)) {
            r->left_over += len - to;
            return;
        }
        at = to;
    }
    if (eof) {
        enum swc_http_ev ev = swc_http_eof(&P);
        if (ev != SWC_HTTP_MORE) {
            r->end = ev;
            r->code = P.code;
            snprintf(r->err, sizeof(r->err), "%s", P.err);
        }
    }
}

static void parse(struct res *r, const char *in, bool eof)
{
    parse_cuts(r, in, strlen(in), NULL, 0, eof, DEFAULT_LIMIT);
}

/* Every way of cutting: whole, byte by byte, and in two at each offset;
 * all must agree with the whole parse. */
static void parse_all_ways(struct res *whole, const char *in, bool eof)
{
    size_t len = strlen(in);
    size_t *cuts = malloc(len * sizeof(*cuts));
    struct res r;
    parse(whole, in, eof);
    for (size_t i = 0; i + 1 < len; i++) {
        cuts[i] = i + 1;
    }
    for (int pass = 0; pass <= (int)len; pass++) {
        if (pass == 0) {
            parse_cuts(&r, in, len, cuts, len ? len - 1 : 0, eof, DEFAULT_LIMIT); /* byte by byte */
        } else {
            size_t cut = (size_t)pass - 1;
            parse_cuts(&r, in, len, &cut, 1, eof, DEFAULT_LIMIT);
        }
        assert_int_equal(r.end, whole->end);
        assert_int_equal(r.status, whole->status);
        assert_int_equal(r.heads, whole->heads);
        assert_int_equal(r.code, whole->code);
        assert_int_equal(r.body_len, whole->body_len);
        assert_memory_equal(r.body, whole->body, r.body_len);
        assert_string_equal(r.err, whole->err);
    }
    free(cuts);
}

static void test_content_length(void **state)
{
    struct res r;
    parse_all_ways(&r,
                   "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                   "content-LENGTH: 11\r\nApi-Version: 1.41\r\n\r\n{\"Id\":\"ab\"}",
                   false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "{\"Id\":\"ab\"}", 11);
    /* whatever follows the reply is left to the caller */
    parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200", false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(r.left_over, 12);
    /* a bare LF ends a head line too */
    parse(&r, "HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(r.body_len, 2);
}

static void test_chunked(void **state)
{
    struct res r;
    parse_all_ways(&r,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 999\r\n\r\n"
                   "5;name=value\r\nhello\r\n"
                   "A \r\n, world!!\n\r\n"
                   "1;a;b=\"c\"\r\n.\r\n"
                   "0\r\nX-Trailer: yes\r\nOther: 1\r\n\r\n",
                   false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 16);
    assert_memory_equal(r.body, "hello, world!!\n.", 16);
    /* no trailers */
    parse_all_ways(&r, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                   false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(r.body_len, 3);
    /* the connection ends inside a chunked body */
    parse_all_ways(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", true);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_EPROTO);
    assert_non_null(strstr(r.err, "chunked body"));
    /* and not at all: no end yet */
    parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", false);
    assert_int_equal(r.end, SWC_HTTP_MORE);
}

static void test_bad_chunk_size(void **state)
{
    struct res r;
    parse_all_ways(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
                   false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_EPROTO);
    assert_non_null(strstr(r.err, "bad chunk size \"zz\""));
    parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "bad chunk size"));
    parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "bad chunk size \"3x\""));
    parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "too large"));
}

static void test_missing_crlf(void **state)
{
    struct res r;
    /* chunk data longer than its size: no CRLF where one must be */
    parse_all_ways(
        &r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_EPROTO);
    assert_non_null(strstr(r.err, "not followed by CRLF"));
    assert_int_equal(r.body_len, 5);
    /* a CR that is not followed by LF */
    parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nh\r\r\n0\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "not followed by CRLF"));
    /* a head that never ends is cut by the end of the connection */
    parse_all_ways(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2", true);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "reply head"));
}

static void test_oversized_head(void **state)
{
    struct res r;
    char *in = malloc(SWC_HTTP_HEAD_MAX + 4096), *o = in;
    /* one header line over the line limit */
    o += sprintf(o, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(o, 'a', SWC_HTTP_LINE_MAX);
    o += SWC_HTTP_LINE_MAX;
    strcpy(o, "\r\nContent-Length: 0\r\n\r\n");
    parse(&r, in, false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_ETOOBIG);
    assert_non_null(strstr(r.err, "header line longer than"));
    /* many short headers over the head limit */
    o = in + sprintf(in, "HTTP/1.1 200 OK\r\n");
    while ((size_t)(o - in) < SWC_HTTP_HEAD_MAX + 100) {
        o += sprintf(o, "X-Many: 0123456789abcdef\r\n");
    }
    strcpy(o, "Content-Length: 0\r\n\r\n");
    parse(&r, in, false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_ETOOBIG);
    assert_non_null(strstr(r.err, "reply head larger than"));
    /* just under the limits is fine */
    o = in + sprintf(in, "HTTP/1.1 200 OK\r\n");
    while ((size_t)(o - in) < SWC_HTTP_HEAD_MAX - 200) {
        o += sprintf(o, "X-Many: 0123456789abcdef\r\n");
    }
    strcpy(o, "Content-Length: 0\r\n\r\n");
    parse(&r, in, false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    free(in);
}

static void test_body_limit(void **state)
{
    struct res r;
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    static const char ch[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n";
    parse_cuts(&r, in, strlen(in), NULL, 0, false, 9);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_ETOOBIG);
    assert_non_null(strstr(r.err, "body larger than 9 bytes"));
    assert_int_equal(r.body_len, 9); /* what fits is handed out first */
    parse_cuts(&r, ch, strlen(ch), NULL, 0, false, 9);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_ETOOBIG);
    parse_cuts(&r, in, strlen(in), NULL, 0, false, 10);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    /* 0 lifts the limit (streams) */
    parse_cuts(&r, ch, strlen(ch), NULL, 0, false, 0);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(r.body_len, 10);
}

static void test_truncated_body(void **state)
{
    struct res r;
    parse_all_ways(&r, "HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n{\"Id\"", true);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_EPROTO);
    assert_string_equal(r.err, "connection closed after 5 of 10 body bytes");
    assert_true(P.head_done);
    /* lengths that disagree, or are not numbers */
    parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "two different Content-Length"));
    parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "bad Content-Length \"-1\""));
    parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "bad Content-Length"));
    parse(&r, "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
}

static void test_close_delimited(void **state)
{
    struct res r;
    parse_all_ways(&r, "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end", true);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(P.minor, 0);
    assert_int_equal(r.body_len, 13);
    assert_memory_equal(r.body, "until the end", 13);
    /* without the end of the connection it is not done */
    parse(&r, "HTTP/1.0 200 OK\r\n\r\nmore", false);
    assert_int_equal(r.end, SWC_HTTP_MORE);
    /* 204 and 304 have no body, even without a length */
    parse(&r, "HTTP/1.1 204 No Content\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(r.status, 204);
    parse(&r, "HTTP/1.1 304 Not Modified\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
}

static void test_interim_reply(void **state)
{
    struct res r;
    parse_all_ways(&r,
                   "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                   false);
    assert_int_equal(r.end, SWC_HTTP_DONE);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 2);
}

static void test_not_http(void **state)
{
    struct res r;
    parse_all_ways(&r, "SSH-2.0-OpenSSH\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_int_equal(r.code, SWC_EPROTO);
    assert_non_null(strstr(r.err, "not an HTTP reply"));
    /* garbage with no newline fails at once, not after a line's worth */
    parse_cuts(&r, "\x00\xff\x01", 3, NULL, 0, false, DEFAULT_LIMIT);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "not an HTTP reply"));
    parse(&r, "HTTP/2 200\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "bad status line \"HTTP/2 200\""));
    parse(&r, "HTTP/1.1 20 OK\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "bad status line"));
    parse(&r, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false); /* no reason: fine */
    assert_int_equal(r.end, SWC_HTTP_DONE);
    parse(&r, "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "bad header line"));
    parse(&r, "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "folded"));
    parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_non_null(strstr(r.err, "unsupported Transfer-Encoding \"gzip\""));
    /* nothing at all */
    parse(&r, "", true);
    assert_int_equal(r.end, SWC_HTTP_ERROR);
    assert_string_equal(r.err, "empty reply");
    /* after an error every step repeats it */
    {
        const char *d = "HTTP/1.1 200 OK\r\n\r\n", *pc;
        size_t n = strlen(d), pn;
        assert_int_equal(swc_http_step(&P, &d, &n, &pc, &pn), SWC_HTTP_ERROR);
        assert_int_equal(swc_http_eof(&P), SWC_HTTP_ERROR);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length), cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_bad_chunk_size), cmocka_unit_test(test_missing_crlf),
        cmocka_unit_test(test_oversized_head), cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_truncated_body), cmocka_unit_test(test_close_delimited),
        cmocka_unit_test(test_interim_reply),  cmocka_unit_test(test_not_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
