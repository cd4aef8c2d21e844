/* Clocks and the duration/size parsers the CLI and specs share (see time.h). */
#include "base/clock.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/err.h"

int64_t swc_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SWC_NS_PER_SEC + ts.tv_nsec;
}

int64_t swc_now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SWC_NS_PER_SEC + ts.tv_nsec;
}

static int unit_ns(const char *u, size_t n, int64_t *mult)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {{"ns", 1},
                 {"us", SWC_NS_PER_US},
                 {"ms", SWC_NS_PER_MS},
                 {"s", SWC_NS_PER_SEC},
                 {"m", 60 * SWC_NS_PER_SEC},
                 {"h", 3600 * SWC_NS_PER_SEC}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strlen(units[i].name) == n && strncmp(units[i].name, u, n) == 0) {
            *mult = units[i].ns;
            return 0;
        }
    }
    return SWC_EINVAL;
}

int swc_parse_duration(const char *s, int64_t *out_ns)
{
    int64_t total = 0;
    const char *p = s;
    if (s == NULL || *s == '\0') {
        return SWC_EINVAL;
    }
    if (strcmp(s, "0") == 0) {
        *out_ns = 0;
        return 0;
    }
    while (*p != '\0') {
        double v = 0;
        int consumed = 0;
        if (!isdigit((unsigned char)*p) && *p != '.') {
            return SWC_EINVAL;
        }
        if (sscanf(p, "%lf%n", &v, &consumed) != 1 || consumed == 0 || v < 0) {
            return SWC_EINVAL;
        }
        p += consumed;
        const char *u = p;
        while (isalpha((unsigned char)*p)) {
            p++;
        }
        int64_t mult;
        if (unit_ns(u, (size_t)(p - u), &mult) != 0) {
            return SWC_EINVAL;
        }
        double add = v * (double)mult;
        if (add > 9.2e18 - (double)total) {
            return SWC_EINVAL;
        }
        total += (int64_t)add;
    }
    *out_ns = total;
    return 0;
}

void swc_format_duration(int64_t ns, char *buf, int len)
{
    if (ns == 0) {
        snprintf(buf, (size_t)len, "0s");
    } else if (ns % SWC_NS_PER_SEC != 0 && ns < SWC_NS_PER_SEC) {
        if (ns % SWC_NS_PER_MS == 0) {
            snprintf(buf, (size_t)len, "%lldms", (long long)(ns / SWC_NS_PER_MS));
        } else {
            snprintf(buf, (size_t)len, "%lldns", (long long)ns);
        }
    } else {
        long long s = ns / SWC_NS_PER_SEC, h = s / 3600, m = (s % 3600) / 60, sec = s % 60;
        long long ms = (ns % SWC_NS_PER_SEC) / SWC_NS_PER_MS;
        int off = 0;
        buf[0] = '\0';
        if (h > 0) {
            off += snprintf(buf + off, (size_t)(len - off), "%lldh", h);
        }
        if (m > 0 && off < len) {
            off += snprintf(buf + off, (size_t)(len - off), "%lldm", m);
        }
        if ((sec > 0 || ms > 0) && off < len) {
            if (ms > 0) {
                snprintf(buf + off, (size_t)(len - off), "%lld.%03llds", sec, ms);
            } else {
                snprintf(buf + off, (size_t)(len - off), "%llds", sec);
            }
        }
    }
}

int swc_parse_size(const char *s, int64_t *out_bytes)
{
    double v = 0;
    int consumed = 0;
    int64_t mult = 1;
    if (s == NULL || !isdigit((unsigned char)*s)) {
        return SWC_EINVAL;
    }
    if (sscanf(s, "%lf%n", &v, &consumed) != 1 || v < 0) {
        return SWC_EINVAL;
    }
    const char *u = s + consumed;
    if (*u != '\0') {
        char c = (char)tolower((unsigned char)u[0]);
        const char *rest = u + 1;
        switch (c) {
        case 'b':
            mult = 1;
            rest = u + 1;
            if (*rest != '\0') {
                return SWC_EINVAL;
            }
            break;
        case 'k':
            mult = 1024LL;
            break;
        case 'm':
            mult = 1024LL * 1024;
            break;
        case 'g':
            mult = 1024LL * 1024 * 1024;
            break;
        case 't':
            mult = 1024LL * 1024 * 1024 * 1024;
            break;
        default:
            return SWC_EINVAL;
        }
        if (c != 'b' && *rest != '\0' && strcasecmp(rest, "b") != 0 &&
            strcasecmp(rest, "ib") != 0) {
            return SWC_EINVAL;
        }
    }
    double bytes = v * (double)mult;
    if (bytes > 9.2e18) {
        return SWC_EINVAL;
    }
    *out_bytes = (int64_t)bytes;
    return 0;
}
