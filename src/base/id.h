/* Random object ids: 25 characters of lowercase base32 (125 random bits from
 * libsodium), like "4k2n7q0d9x1m3c8v5b6h2j7p0". */
#ifndef SWC_BASE_ID_H
#define SWC_BASE_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SWC_ID_LEN 25

/* Write a new random id and its NUL into out (SWC_ID_LEN + 1 bytes). */
void swc_id_new(char out[SWC_ID_LEN + 1]);

/* Write n new random ids into out[0..n-1], drawing the randomness for many of
 * them at once (one system call per 64 ids instead of one per id). */
void swc_id_new_n(char (*out)[SWC_ID_LEN + 1], size_t n);

/* True when s looks like an id (length and alphabet). */
bool swc_id_valid(const char *s);

/* A uniformly random 64-bit number (libsodium's generator). */
uint64_t swc_random_u64(void);

/* Initialize libsodium once (the id and crypto code call it); 0 or SWC_EINTERNAL. */
int swc_sodium_init(void);

#endif
