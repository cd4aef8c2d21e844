/* A growable byte buffer (owned memory, length, capacity). */
#ifndef SWC_BASE_BUF_H
#define SWC_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct swc_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Empty buffer (no allocation). */
void swc_buf_init(struct swc_buf *b);
/* Free the memory; b is empty afterwards. */
void swc_buf_free(struct swc_buf *b);
/* Make room for at least n more bytes; 0 or SWC_ENOMEM. */
int swc_buf_reserve(struct swc_buf *b, size_t n);
/* Append n bytes; 0 or SWC_ENOMEM. */
int swc_buf_append(struct swc_buf *b, const void *p, size_t n);
/* Append a printf-formatted string (without its NUL); 0 or SWC_ENOMEM. */
int swc_buf_printf(struct swc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void swc_buf_consume(struct swc_buf *b, size_t n);

/* Big-endian helpers for wire framing. */
static inline void swc_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t swc_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void swc_put_u64(uint8_t *p, uint64_t v)
{
    swc_put_u32(p, (uint32_t)(v >> 32));
    swc_put_u32(p + 4, (uint32_t)v);
}
static inline uint64_t swc_get_u64(const uint8_t *p)
{
    return ((uint64_t)swc_get_u32(p) << 32) | swc_get_u32(p + 4);
}

#endif
