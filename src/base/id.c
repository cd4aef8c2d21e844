/* Random ids (see id.h). */
#include "base/id.h"

#include <sodium.h>
#include <string.h>

#include "base/err.h"

static const char alphabet[] = "0123456789abcdefghijklmnopqrstuv";

int swc_sodium_init(void)
{
    return sodium_init() < 0 ? SWC_EINTERNAL : 0;
}

void swc_id_new(char out[SWC_ID_LEN + 1])
{
    unsigned char raw[SWC_ID_LEN];
    swc_sodium_init();
    randombytes_buf(raw, sizeof raw);
    for (int i = 0; i < SWC_ID_LEN; i++) {
        out[i] = alphabet[raw[i] & 31];
    }
    out[SWC_ID_LEN] = '\0';
}

void swc_id_new_n(char (*out)[SWC_ID_LEN + 1], size_t n)
{
    unsigned char raw[64 * SWC_ID_LEN];
    swc_sodium_init();
    for (size_t done = 0; done < n;) {
        size_t k = n - done < 64 ? n - done : 64;
        randombytes_buf(raw, k * SWC_ID_LEN);
        for (size_t j = 0; j < k; j++) {
            for (int i = 0; i < SWC_ID_LEN; i++) {
                out[done + j][i] = alphabet[raw[j * SWC_ID_LEN + (size_t)i] & 31];
            }
            out[done + j][SWC_ID_LEN] = '\0';
        }
        done += k;
    }
}

bool swc_id_valid(const char *s)
{
    if (s == NULL || strlen(s) != SWC_ID_LEN) {
        return false;
    }
    for (int i = 0; i < SWC_ID_LEN; i++) {
        if (strchr(alphabet, s[i]) == NULL || s[i] == '\0') {
            return false;
        }
    }
    return true;
}

uint64_t swc_random_u64(void)
{
    uint64_t v;
    swc_sodium_init();
    randombytes_buf(&v, sizeof v);
    return v;
}
