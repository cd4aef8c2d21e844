/* libFuzzer driver for AEGIS-128L (net/aegis.h). The input gives, in order,
 * a 16-byte key, a 16-byte nonce, a byte for the AD length (mod 64), a byte
 * for the piece length (1..64) and the rest as AD then message. Each run
 * checks what must hold for every input:
 *   - sealing in pieces of that length (in place) gives the one-shot bytes;
 *   - opening the one-shot output recovers the message, in place too;
 *   - the message itself, taken as a ciphertext with the first 16 bytes of
 *     the key as a tag, is opened without any memory error, and if it does
 *     not open the output is all zeros;
 *   - a flipped bit (chosen by the input) in the ciphertext or tag fails.
 * Any violation aborts. Without AES-NI the driver does nothing. */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "net/aegis.h"

#define MAXLEN 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t one[MAXLEN], inc[MAXLEN], out[MAXLEN];
    uint8_t mac1[16], mac2[16];
    if (!swc_aegis128l_available() || size < 34) {
        return 0;
    }
    const uint8_t *key = data, *nonce = data + 16;
    size_t adlen = data[32] % 64, step = (size_t)data[33] % 64 + 1;
    data += 34;
    size -= 34;
    adlen = adlen > size ? size : adlen;
    const uint8_t *ad = data, *m = data + adlen;
    size_t len = size - adlen > MAXLEN ? MAXLEN : size - adlen;

    swc_aegis128l_seal(key, nonce, one, mac1, m, len, ad, adlen);
    struct swc_aegis128l st;
    memcpy(inc, m, len);
    swc_aegis128l_seal_begin(&st, key, nonce, ad, adlen);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        swc_aegis128l_seal_update(&st, inc + off, inc + off, n);
    }
    swc_aegis128l_seal_final(&st, mac2);
    if (memcmp(inc, one, len) != 0 || memcmp(mac1, mac2, 16) != 0) {
        abort();
    }
    if (swc_aegis128l_open(key, nonce, inc, inc, len, mac1, ad, adlen) != 0 ||
        memcmp(inc, m, len) != 0) {
        abort();
    }
    if (swc_aegis128l_open(key, nonce, out, m, len, key, ad, adlen) != 0) {
        for (size_t i = 0; i < len; i++) {
            if (out[i] != 0) {
                abort();
            }
        }
    }
    size_t bit = ((size_t)nonce[0] << 8 | nonce[1]) % ((len + 16) * 8);
    memcpy(inc, one, len);
    if (bit < len * 8) {
        inc[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    } else {
        mac1[bit / 8 - len] ^= (uint8_t)(1u << (bit % 8));
    }
    if (swc_aegis128l_open(key, nonce, out, inc, len, mac1, ad, adlen) != SWC_EAUTH) {
        abort();
    }
    return 0;
}
