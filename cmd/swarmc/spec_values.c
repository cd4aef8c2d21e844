/* Parsers of the structured flag values --publish and --mount (see
 * spec.h): Docker's short and long (key=value,...) forms, with errors that
 * quote the value, name the flag and say which part is wrong. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "spec_int.h"

static int parse_port_num(const char *flag, const char *full, const char *s, size_t n, bool zero_ok,
                          uint32_t *out, struct swc_err *err)
{
    char buf[16];
    uint64_t v;
    if (n == 0 || n >= sizeof buf) {
        goto bad;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)buf[i])) {
            goto bad;
        }
    }
    v = strtoull(buf, NULL, 10);
    if ((v == 0 && !zero_ok) || v > 65535) {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: port %s is out of range 1-65535", full,
                           flag, buf);
    }
    *out = (uint32_t)v;
    return 0;
bad:
    return swc_err_set(err, SWC_EINVAL,
                       "invalid value \"%s\" for --%s: use PUBLISHED:TARGET[/PROTOCOL] or "
                       "published=N,target=N[,protocol=tcp|udp][,mode=ingress|host]",
                       full, flag);
}

static int parse_proto(const char *flag, const char *full, const char *p, size_t n,
                       Swarmc__PortProtocol *out, struct swc_err *err)
{
    if (n == 3 && strncmp(p, "tcp", 3) == 0) {
        *out = SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_TCP;
    } else if (n == 3 && strncmp(p, "udp", 3) == 0) {
        *out = SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_UDP;
    } else if (n == 4 && strncmp(p, "sctp", 4) == 0) {
        *out = SWARMC__PORT_PROTOCOL__PORT_PROTOCOL_SCTP;
    } else {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: unknown protocol \"%.*s\" (use tcp, "
                           "udp or sctp)",
                           full, flag, (int)n, p);
    }
    return 0;
}

int swc_spec_parse_port(const char *flag, const char *v, Swarmc__PortConfig **out,
                        struct swc_err *err)
{
    Swarmc__PortConfig *pc = NEW_MSG(Swarmc__PortConfig, swarmc__port_config__init);
    int rv;
    if (strchr(v, '=') != NULL) {
        /* long form: comma-separated key=value */
        bool have_target = false;
        const char *p = v;
        while (*p != '\0') {
            size_t n = strcspn(p, ",");
            const char *eq = memchr(p, '=', n);
            if (eq == NULL) {
                rv = swc_err_set(err, SWC_EINVAL,
                                 "invalid value \"%s\" for --%s: \"%.*s\" is not KEY=VALUE", v,
                                 flag, (int)n, p);
                goto fail;
            }
            size_t kl = (size_t)(eq - p), vl = n - kl - 1;
            const char *val = eq + 1;
            if (kl == 9 && strncmp(p, "published", 9) == 0) {
                rv = parse_port_num(flag, v, val, vl, true, &pc->published_port, err);
            } else if (kl == 6 && strncmp(p, "target", 6) == 0) {
                rv = parse_port_num(flag, v, val, vl, false, &pc->target_port, err);
                have_target = true;
            } else if (kl == 8 && strncmp(p, "protocol", 8) == 0) {
                rv = parse_proto(flag, v, val, vl, &pc->protocol, err);
            } else if (kl == 4 && strncmp(p, "mode", 4) == 0) {
                rv = 0;
                if (vl == 4 && strncmp(val, "host", 4) == 0) {
                    pc->publish_mode = SWARMC__PUBLISH_MODE__PUBLISH_MODE_HOST;
                } else if (vl == 7 && strncmp(val, "ingress", 7) == 0) {
                    pc->publish_mode = SWARMC__PUBLISH_MODE__PUBLISH_MODE_INGRESS;
                } else {
                    rv = swc_err_set(err, SWC_EINVAL,
                                     "invalid value \"%s\" for --%s: unknown mode \"%.*s\" (use "
                                     "ingress or host)",
                                     v, flag, (int)vl, val);
                }
            } else {
                rv = swc_err_set(err, SWC_EINVAL,
                                 "invalid value \"%s\" for --%s: unknown option \"%.*s\"", v, flag,
                                 (int)kl, p);
            }
            if (rv != 0) {
                goto fail;
            }
            p += n;
            if (*p == ',') {
                p++;
            }
        }
        if (!have_target) {
            rv = swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: target is required",
                             v, flag);
            goto fail;
        }
    } else {
        /* short form: [PUBLISHED:]TARGET[/PROTOCOL] */
        const char *slash = strchr(v, '/');
        const char *colon = strchr(v, ':');
        size_t end = slash ? (size_t)(slash - v) : strlen(v);
        if (slash != NULL) {
            rv = parse_proto(flag, v, slash + 1, strlen(slash + 1), &pc->protocol, err);
            if (rv != 0) {
                goto fail;
            }
        }
        if (colon != NULL && (size_t)(colon - v) < end) {
            size_t pl = (size_t)(colon - v);
            rv = parse_port_num(flag, v, v, pl, false, &pc->published_port, err);
            if (rv == 0) {
                rv = parse_port_num(flag, v, colon + 1, end - pl - 1, false, &pc->target_port, err);
            }
        } else {
            rv = parse_port_num(flag, v, v, end, false, &pc->target_port, err);
        }
        if (rv != 0) {
            goto fail;
        }
    }
    *out = pc;
    return 0;
fail:
    free_msg(pc);
    return rv;
}

int swc_spec_parse_mount(const char *flag, const char *v, Swarmc__Mount **out, struct swc_err *err)
{
    Swarmc__Mount *m = NEW_MSG(Swarmc__Mount, swarmc__mount__init);
    const char *p = v;
    int rv;
    m->type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_VOLUME;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        size_t kl = eq ? (size_t)(eq - p) : n;
        const char *val = eq ? eq + 1 : "";
        size_t vl = eq ? n - kl - 1 : 0;
        char key[32], value[512];
        if (kl >= sizeof key || vl >= sizeof value) {
            rv = swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: option too long", v,
                             flag);
            goto fail;
        }
        memcpy(key, p, kl);
        key[kl] = '\0';
        memcpy(value, val, vl);
        value[vl] = '\0';
        if (strcmp(key, "type") == 0) {
            if (strcmp(value, "bind") == 0) {
                m->type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_BIND;
            } else if (strcmp(value, "volume") == 0) {
                m->type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_VOLUME;
            } else if (strcmp(value, "tmpfs") == 0) {
                m->type = SWARMC__MOUNT_TYPE__MOUNT_TYPE_TMPFS;
            } else {
                rv = swc_err_set(err, SWC_EINVAL,
                                 "invalid value \"%s\" for --%s: unknown type \"%s\" (use bind, "
                                 "volume or tmpfs)",
                                 v, flag, value);
                goto fail;
            }
        } else if (strcmp(key, "source") == 0 || strcmp(key, "src") == 0) {
            str_set(&m->source, value);
        } else if (strcmp(key, "target") == 0 || strcmp(key, "destination") == 0 ||
                   strcmp(key, "dst") == 0) {
            str_set(&m->target, value);
        } else if (strcmp(key, "readonly") == 0 || strcmp(key, "ro") == 0) {
            bool b = true;
            if (eq != NULL && swc_flag_boolval(flag, value, &b, err) != 0) {
                rv = swc_err_set(err, SWC_EINVAL,
                                 "invalid value \"%s\" for --%s: readonly must be true or false", v,
                                 flag);
                goto fail;
            }
            m->read_only = b;
        } else if (strcmp(key, "tmpfs-size") == 0) {
            if (swc_parse_size(value, &m->tmpfs_size_bytes) != 0) {
                rv = swc_err_set(err, SWC_EINVAL,
                                 "invalid value \"%s\" for --%s: bad tmpfs-size \"%s\"", v, flag,
                                 value);
                goto fail;
            }
        } else if (strcmp(key, "tmpfs-mode") == 0) {
            char *end = NULL;
            unsigned long mode = strtoul(value, &end, 8);
            if (value[0] == '\0' || *end != '\0' || mode > 07777) {
                rv = swc_err_set(err, SWC_EINVAL,
                                 "invalid value \"%s\" for --%s: bad tmpfs-mode \"%s\"", v, flag,
                                 value);
                goto fail;
            }
            m->tmpfs_mode = (uint32_t)mode;
        } else {
            rv = swc_err_set(err, SWC_EINVAL,
                             "invalid value \"%s\" for --%s: unknown option \"%s\"", v, flag, key);
            goto fail;
        }
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    if (m->target[0] == '\0') {
        rv = swc_err_set(err, SWC_EINVAL, "invalid value \"%s\" for --%s: target is required", v,
                         flag);
        goto fail;
    }
    if (m->target[0] != '/') {
        rv = swc_err_set(err, SWC_EINVAL,
                         "invalid value \"%s\" for --%s: target must be an absolute path", v, flag);
        goto fail;
    }
    if (m->type == SWARMC__MOUNT_TYPE__MOUNT_TYPE_BIND && m->source[0] == '\0') {
        rv = swc_err_set(err, SWC_EINVAL,
                         "invalid value \"%s\" for --%s: source is required for a bind mount", v,
                         flag);
        goto fail;
    }
    if (m->type == SWARMC__MOUNT_TYPE__MOUNT_TYPE_TMPFS && m->source[0] != '\0') {
        rv = swc_err_set(err, SWC_EINVAL,
                         "invalid value \"%s\" for --%s: a tmpfs mount takes no source", v, flag);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    free_msg(m);
    return rv;
}

/* Split "source=NAME,target=T" (or a bare NAME) into name and target. */
static int parse_ref(const char *flag, const char *v, char *name, size_t nlen, char *target,
                     size_t tlen, struct swc_err *err)
{
    const char *p = v;
    name[0] = target[0] = '\0';
    if (strchr(v, '=') == NULL) {
        if (v[0] == '\0' || strlen(v) >= nlen || strchr(v, ',') != NULL) {
            goto bad;
        }
        snprintf(name, nlen, "%s", v);
        return 0;
    }
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        if (eq == NULL) {
            goto bad;
        }
        size_t kl = (size_t)(eq - p), vl = n - kl - 1;
        if ((kl == 6 && strncmp(p, "source", 6) == 0) || (kl == 3 && strncmp(p, "src", 3) == 0)) {
            snprintf(name, nlen, "%.*s", (int)vl, eq + 1);
        } else if (kl == 6 && strncmp(p, "target", 6) == 0) {
            snprintf(target, tlen, "%.*s", (int)vl, eq + 1);
        } else {
            return swc_err_set(err, SWC_EINVAL,
                               "invalid value \"%s\" for --%s: unknown option \"%.*s\"", v, flag,
                               (int)kl, p);
        }
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    if (name[0] != '\0') {
        return 0;
    }
bad:
    return swc_err_set(err, SWC_EINVAL,
                       "invalid value \"%s\" for --%s: use NAME or source=NAME[,target=...]", v,
                       flag);
}

int swc_spec_parse_secret(const char *flag, const char *v, Swarmc__SecretReference **out,
                          struct swc_err *err)
{
    char name[256], target[256];
    if (parse_ref(flag, v, name, sizeof name, target, sizeof target, err) != 0) {
        return SWC_EINVAL;
    }
    if (strchr(target, '/') != NULL) {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: target must be a file name (it is "
                           "placed under /run/secrets)",
                           v, flag);
    }
    Swarmc__SecretReference *r = NEW_MSG(Swarmc__SecretReference, swarmc__secret_reference__init);
    str_set(&r->secret_name, name);
    str_set(&r->target, target[0] ? target : name);
    *out = r;
    return 0;
}

int swc_spec_parse_config(const char *flag, const char *v, Swarmc__ConfigReference **out,
                          struct swc_err *err)
{
    char name[256], target[260];
    if (parse_ref(flag, v, name, sizeof name, target, sizeof target, err) != 0) {
        return SWC_EINVAL;
    }
    if (target[0] != '\0' && target[0] != '/') {
        return swc_err_set(err, SWC_EINVAL,
                           "invalid value \"%s\" for --%s: target must be an absolute path", v,
                           flag);
    }
    Swarmc__ConfigReference *r = NEW_MSG(Swarmc__ConfigReference, swarmc__config_reference__init);
    str_set(&r->config_name, name);
    if (target[0] == '\0') {
        snprintf(target, sizeof target, "/%s", name); /* Docker's default */
    }
    str_set(&r->target, target);
    *out = r;
    return 0;
}
