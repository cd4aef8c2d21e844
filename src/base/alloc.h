/* The one allocation seam.
 *
 * All of swarmc allocates through these functions, and the adapters hook
 * libuv's, raft's, SQLite's and protobuf-c's allocators into them, so a test
 * can make the N-th allocation fail anywhere and check that the failure
 * propagates as SWC_ENOMEM and leaks nothing. */
#ifndef SWC_BASE_ALLOC_H
#define SWC_BASE_ALLOC_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

/* Allocate size bytes; NULL on failure. Free with swc_free. */
void *swc_malloc(size_t size);
/* Allocate n*size zeroed bytes; NULL on failure or overflow. */
void *swc_calloc(size_t n, size_t size);
/* Resize; NULL on failure (ptr is then still valid). */
void *swc_realloc(void *ptr, size_t size);
/* Free memory from the functions above; NULL is fine. */
void swc_free(void *ptr);
/* Copy a string into new memory; NULL on failure. */
char *swc_strdup(const char *s);
/* Copy at most n bytes of s into a new NUL-terminated string. */
char *swc_strndup(const char *s, size_t n);

/* Test allocator: the n-th allocation from now fails (1 = the next one);
 * 0 turns failure injection off. */
void swc_alloc_fail_after(long n);
/* Test allocator: every allocation from the n-th on fails (sticky). */
void swc_alloc_fail_from(long n);
/* Number of allocations made since the process started (for sweeps). */
long swc_alloc_count(void);
/* Live allocations made through the seam (malloc - free), for leak checks. */
long swc_alloc_live(void);

/* Give free heap memory back to the OS (glibc malloc_trim; a no-op
 * elsewhere). For after a large block of memory was freed at once, e.g. the
 * raft log compacted by a snapshot: otherwise it stays resident. */
void swc_alloc_trim(void);
/* Bytes handed back to malloc since the last swc_alloc_trim (glibc: usable
 * sizes of the blocks freed or moved by realloc; 0 elsewhere). */
size_t swc_alloc_freed(void);

/* A protobuf-c allocator that goes through the seam. */
extern ProtobufCAllocator swc_pb_allocator;

/* Route libuv's allocations through the seam (call before any uv use). */
void swc_alloc_hook_uv(void);

/* Route SQLite's allocations through the seam (call before sqlite3 use). */
void swc_alloc_hook_sqlite(void);

#endif
