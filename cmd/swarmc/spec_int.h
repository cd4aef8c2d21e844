/* Private helpers shared by spec.c, spec_flags.c and spec_values.c.
 *
 * They own the protobuf-c memory rules of the CLI: a string field holds
 * either the shared empty default or memory from the seam, and a repeated
 * field is a seam-allocated array of seam-allocated elements, so
 * protobuf_c_message_free_unpacked(&swc_pb_allocator) frees anything built
 * or edited here. The CLI aborts on out-of-memory (STYLE). */
#ifndef SWC_CLI_SPEC_INT_H
#define SWC_CLI_SPEC_INT_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "spec.h"

static inline void *xcalloc(size_t size)
{
    void *p = swc_calloc(1, size);
    if (p == NULL) {
        abort();
    }
    return p;
}

static inline char *xstrdup(const char *s)
{
    char *p = swc_strdup(s);
    if (p == NULL) {
        abort();
    }
    return p;
}

static inline char *xstrndup(const char *s, size_t n)
{
    char *p = swc_strndup(s, n);
    if (p == NULL) {
        abort();
    }
    return p;
}

static inline void *xgrow(void *arr, size_t n, size_t elem)
{
    void *p = swc_realloc(arr, (n + 1) * elem);
    if (p == NULL) {
        abort();
    }
    return p;
}

static inline void str_set(char **field, const char *v)
{
    if (*field != NULL && *field != protobuf_c_empty_string) {
        swc_free(*field);
    }
    *field = xstrdup(v);
}

static inline void strv_push(char ***arr, size_t *n, const char *v)
{
    *arr = xgrow(*arr, *n, sizeof **arr);
    (*arr)[(*n)++] = xstrdup(v);
}

static inline void strv_clear(char ***arr, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        swc_free((*arr)[i]);
    }
    swc_free(*arr);
    *arr = NULL;
    *n = 0;
}

/* Remove every element for which match(elem, key) is true. */
static inline void strv_remove(char **arr, size_t *n, const char *key,
                               bool (*match)(const char *, const char *))
{
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        if (match(arr[i], key)) {
            swc_free(arr[i]);
        } else {
            arr[w++] = arr[i];
        }
    }
    *n = w;
}

static inline bool str_eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* "K=V" or "K" matches key K. */
static inline bool env_key_eq(const char *elem, const char *key)
{
    size_t kl = strcspn(key, "=");
    return strncmp(elem, key, kl) == 0 && (elem[kl] == '=' || elem[kl] == '\0');
}

static inline void free_msg(void *m)
{
    if (m != NULL) {
        protobuf_c_message_free_unpacked((ProtobufCMessage *)m, &swc_pb_allocator);
    }
}

#define NEW_MSG(T, init)                                                                           \
    ({                                                                                             \
        T *m_ = xcalloc(sizeof(T));                                                                \
        init(m_);                                                                                  \
        m_;                                                                                        \
    })

#endif
