/* Growable byte buffer (see buf.h). */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

void swc_buf_init(struct swc_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void swc_buf_free(struct swc_buf *b)
{
    swc_free(b->data);
    swc_buf_init(b);
}

int swc_buf_reserve(struct swc_buf *b, size_t n)
{
    if (b->cap - b->len >= n) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < n) {
        cap *= 2;
    }
    uint8_t *p = swc_realloc(b->data, cap);
    if (p == NULL) {
        return SWC_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int swc_buf_append(struct swc_buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    if (swc_buf_reserve(b, n) != 0) {
        return SWC_ENOMEM;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int swc_buf_printf(struct swc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || swc_buf_reserve(b, (size_t)n + 1) != 0) {
        return SWC_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void swc_buf_consume(struct swc_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
