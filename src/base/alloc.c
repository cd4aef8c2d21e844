/* Allocation seam with failure injection (see alloc.h).
 *
 * Counting is done with relaxed atomics: libuv's thread pool and SQLite may
 * allocate off the loop thread. Live-allocation accounting needs the size of
 * each block on free, so we use malloc_usable_size-free bookkeeping: we only
 * count blocks, not bytes. */
#include "base/alloc.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static atomic_long n_allocs;
static atomic_long n_live;
static atomic_size_t n_freed; /* bytes freed since the last trim (glibc only) */
static atomic_long fail_at;   /* absolute allocation number that fails, 0 = off */
static atomic_int fail_sticky;

static int should_fail(void)
{
    long n = atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed) + 1;
    long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (at == 0) {
        return 0;
    }
    if (atomic_load_explicit(&fail_sticky, memory_order_relaxed)) {
        return n >= at;
    }
    return n == at;
}

void *swc_malloc(size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    void *p = malloc(size == 0 ? 1 : size);
    if (p != NULL) {
        atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
    }
    return p;
}

void *swc_calloc(size_t n, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p != NULL) {
        atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
    }
    return p;
}

void *swc_realloc(void *ptr, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
#if defined(__GLIBC__)
    size_t old = ptr != NULL ? malloc_usable_size(ptr) : 0;
#endif
    void *p = realloc(ptr, size == 0 ? 1 : size);
#if defined(__GLIBC__)
    if (p != NULL && p != ptr && old > 0) {
        atomic_fetch_add_explicit(&n_freed, old, memory_order_relaxed); /* moved */
    }
#endif
    if (p != NULL && ptr == NULL) {
        atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
    }
    return p;
}

void swc_free(void *ptr)
{
    if (ptr != NULL) {
        atomic_fetch_sub_explicit(&n_live, 1, memory_order_relaxed);
#if defined(__GLIBC__)
        atomic_fetch_add_explicit(&n_freed, malloc_usable_size(ptr), memory_order_relaxed);
#endif
        free(ptr);
    }
}

char *swc_strdup(const char *s)
{
    return swc_strndup(s, strlen(s));
}

char *swc_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = swc_malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

void swc_alloc_fail_after(long n)
{
    atomic_store(&fail_sticky, 0);
    atomic_store(&fail_at, n <= 0 ? 0 : atomic_load(&n_allocs) + n);
}

void swc_alloc_fail_from(long n)
{
    atomic_store(&fail_sticky, 1);
    atomic_store(&fail_at, n <= 0 ? 0 : atomic_load(&n_allocs) + n);
}

long swc_alloc_count(void)
{
    return atomic_load(&n_allocs);
}

long swc_alloc_live(void)
{
    return atomic_load(&n_live);
}

void swc_alloc_trim(void)
{
#if defined(__GLIBC__)
    atomic_store_explicit(&n_freed, 0, memory_order_relaxed);
    malloc_trim(0);
#endif
}

size_t swc_alloc_freed(void)
{
    return atomic_load_explicit(&n_freed, memory_order_relaxed);
}

static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return swc_malloc(size);
}

static void pb_free(void *data, void *ptr)
{
    (void)data;
    swc_free(ptr);
}

ProtobufCAllocator swc_pb_allocator = {pb_alloc, pb_free, NULL};

void swc_alloc_hook_uv(void)
{
    uv_replace_allocator(swc_malloc, swc_realloc, swc_calloc, swc_free);
}

/* SQLite wants to know block sizes; keep an 8-byte header with the size. */
static void *sq_malloc(int n)
{
    size_t *p = swc_malloc((size_t)n + sizeof(size_t) * 2);
    if (p == NULL) {
        return NULL;
    }
    p[0] = (size_t)n;
    return p + 2;
}

static void sq_free(void *ptr)
{
    if (ptr != NULL) {
        swc_free((size_t *)ptr - 2);
    }
}

static void *sq_realloc(void *ptr, int n)
{
    if (ptr == NULL) {
        return sq_malloc(n);
    }
    size_t *p = swc_realloc((size_t *)ptr - 2, (size_t)n + sizeof(size_t) * 2);
    if (p == NULL) {
        return NULL;
    }
    p[0] = (size_t)n;
    return p + 2;
}

static int sq_size(void *ptr)
{
    return ptr == NULL ? 0 : (int)((size_t *)ptr - 2)[0];
}

static int sq_roundup(int n)
{
    return (n + 7) & ~7;
}

static int sq_init(void *data)
{
    (void)data;
    return SQLITE_OK;
}

static void sq_shutdown(void *data)
{
    (void)data;
}

void swc_alloc_hook_sqlite(void)
{
    static const sqlite3_mem_methods methods = {sq_malloc,  sq_free, sq_realloc,  sq_size,
                                                sq_roundup, sq_init, sq_shutdown, NULL};
    sqlite3_config(SQLITE_CONFIG_MALLOC, &methods);
}
