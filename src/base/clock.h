/* Clocks: monotonic for durations and deadlines, wall for what users see
 * and what is stored in objects (both in nanoseconds). */
#ifndef SWC_BASE_CLOCK_H
#define SWC_BASE_CLOCK_H

#include <stdint.h>

#define SWC_NS_PER_US  1000LL
#define SWC_NS_PER_MS  1000000LL
#define SWC_NS_PER_SEC 1000000000LL

/* Monotonic time in ns (CLOCK_MONOTONIC). */
int64_t swc_now_mono(void);

/* Wall time in ns since the epoch (CLOCK_REALTIME). */
int64_t swc_now_wall(void);

/* Parse a Go-style duration ("10s", "1m30s", "500ms", "2h", "0") into ns.
 * Returns 0 or SWC_EINVAL. */
int swc_parse_duration(const char *s, int64_t *out_ns);

/* Format ns as a short duration ("1m30s", "500ms") into buf. */
void swc_format_duration(int64_t ns, char *buf, int len);

/* Parse a size ("512M", "1g", "1024", "10KiB") into bytes; 0 or SWC_EINVAL. */
int swc_parse_size(const char *s, int64_t *out_bytes);

#endif
