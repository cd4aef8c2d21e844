/* Placement constraints: parsing into struct swc_constraint and matching.
 *
 * Parsing splits at the first "==" or "!=", trims spaces on both sides, strips
 * one pair of matching quotes from the value and maps the key onto an enum, so
 * matching is a switch and one case-insensitive compare (labels: one lookup in
 * a small array). See constraint.h for the accepted syntax. */
#include "manager/constraint.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"

#define KEYS_HINT                                                                                  \
    "use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, "                \
    "node.labels.<key> or engine.labels.<key>"

static void trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

static bool valid_label_name(const char *b, const char *e)
{
    if (b == e)
        return false;
    for (const char *p = b; p < e; p++)
        if (isspace((unsigned char)*p) || *p == '=' || *p == '!')
            return false;
    return true;
}

int swc_constraint_parse(const char *expr, struct swc_constraint *out, struct swc_err *err)
{
    memset(out, 0, sizeof(*out));
    if (expr == NULL)
        return swc_err_set(err, SWC_EINVAL, "constraint: empty expression");
    const char *eq = strstr(expr, "==");
    const char *ne = strstr(expr, "!=");
    const char *op = eq;
    bool negate = false;
    if (ne != NULL && (op == NULL || ne < op)) {
        op = ne;
        negate = true;
    }
    if (op == NULL)
        return swc_err_set(err, SWC_EINVAL,
                           "constraint '%s': no operator; use key==value or key!=value", expr);
    const char *kb = expr, *ke = op;
    const char *vb = op + 2, *ve = expr + strlen(expr);
    trim(&kb, &ke);
    trim(&vb, &ve);
    if (ve - vb >= 2 && (*vb == '"' || *vb == '\'') && ve[-1] == *vb) {
        vb++;
        ve--;
    }
    if (kb == ke)
        return swc_err_set(err, SWC_EINVAL, "constraint '%s': missing key; %s", expr, KEYS_HINT);
    if (vb == ve)
        return swc_err_set(err, SWC_EINVAL, "constraint '%s': missing value", expr);
    for (const char *p = vb; p < ve; p++)
        if (*p == '=' || *p == '!' || *p == '"' || *p == '\'')
            return swc_err_set(err, SWC_EINVAL, "constraint '%s': invalid value '%.*s'", expr,
                               (int)(ve - vb), vb);

    size_t klen = (size_t)(ke - kb);
    static const struct {
        const char *name;
        enum swc_constraint_key key;
    } fixed[] = {
        {"node.id", SWC_CONSTRAINT_NODE_ID},
        {"node.hostname", SWC_CONSTRAINT_NODE_HOSTNAME},
        {"node.role", SWC_CONSTRAINT_NODE_ROLE},
        {"node.platform.os", SWC_CONSTRAINT_NODE_OS},
        {"node.platform.arch", SWC_CONSTRAINT_NODE_ARCH},
    };
    bool found = false;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strlen(fixed[i].name) == klen && strncasecmp(fixed[i].name, kb, klen) == 0) {
            out->key = fixed[i].key;
            found = true;
            break;
        }
    }
    const char *lb = NULL;
    if (!found) {
        static const char nl[] = "node.labels.", el[] = "engine.labels.";
        if (klen > sizeof(nl) - 1 && strncasecmp(kb, nl, sizeof(nl) - 1) == 0) {
            out->key = SWC_CONSTRAINT_NODE_LABEL;
            lb = kb + sizeof(nl) - 1;
        } else if (klen > sizeof(el) - 1 && strncasecmp(kb, el, sizeof(el) - 1) == 0) {
            out->key = SWC_CONSTRAINT_ENGINE_LABEL;
            lb = kb + sizeof(el) - 1;
        } else {
            return swc_err_set(err, SWC_EINVAL, "constraint '%s': unknown key %.*s; %s", expr,
                               (int)klen, kb, KEYS_HINT);
        }
        if (!valid_label_name(lb, ke))
            return swc_err_set(err, SWC_EINVAL, "constraint '%s': invalid label name '%.*s'", expr,
                               (int)(ke - lb), lb);
    }
    if (out->key == SWC_CONSTRAINT_NODE_ROLE) {
        size_t vl = (size_t)(ve - vb);
        if (!((vl == 7 && strncasecmp(vb, "manager", 7) == 0) ||
              (vl == 6 && strncasecmp(vb, "worker", 6) == 0)))
            return swc_err_set(err, SWC_EINVAL,
                               "constraint '%s': node.role must be manager or worker", expr);
    }
    out->negate = negate;
    out->value = swc_strndup(vb, (size_t)(ve - vb));
    if (out->value == NULL)
        goto nomem;
    if (lb != NULL) {
        out->label = swc_strndup(lb, (size_t)(ke - lb));
        if (out->label == NULL)
            goto nomem;
    }
    return 0;
nomem:
    swc_constraint_clear(out);
    return swc_err_set(err, SWC_ENOMEM, "constraint '%s': out of memory", expr);
}

void swc_constraint_clear(struct swc_constraint *c)
{
    swc_free(c->label);
    swc_free(c->value);
    c->label = NULL;
    c->value = NULL;
}

int swc_constraint_set_parse(const char *const *exprs, size_t n, struct swc_constraint_set *set,
                             struct swc_err *err)
{
    set->items = NULL;
    set->n = 0;
    if (n == 0)
        return 0;
    set->items = swc_calloc(n, sizeof(*set->items));
    if (set->items == NULL)
        return swc_err_set(err, SWC_ENOMEM, "constraints: out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = swc_constraint_parse(exprs[i], &set->items[i], err);
        if (rc != 0) {
            swc_constraint_set_clear(set);
            return rc;
        }
        set->n = i + 1;
    }
    return 0;
}

void swc_constraint_set_clear(struct swc_constraint_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        swc_constraint_clear(&set->items[i]);
    swc_free(set->items);
    set->items = NULL;
    set->n = 0;
}

const char *swc_kv_get(const struct swc_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (kv[i].key != NULL && strcmp(kv[i].key, key) == 0)
            return kv[i].value != NULL ? kv[i].value : "";
    return NULL;
}

const char *swc_arch_normalize(const char *arch)
{
    if (arch == NULL)
        return "";
    if (strcasecmp(arch, "x86_64") == 0 || strcasecmp(arch, "amd64") == 0)
        return "x86_64";
    if (strcasecmp(arch, "aarch64") == 0 || strcasecmp(arch, "arm64") == 0)
        return "aarch64";
    return arch;
}

static bool eq(const char *have, const char *want)
{
    return have != NULL && strcasecmp(have, want) == 0;
}

bool swc_constraint_match(const struct swc_constraint *c, const struct swc_node_attrs *node)
{
    bool m;
    switch (c->key) {
    case SWC_CONSTRAINT_NODE_ID:
        m = eq(node->id, c->value);
        break;
    case SWC_CONSTRAINT_NODE_HOSTNAME:
        m = eq(node->hostname, c->value);
        break;
    case SWC_CONSTRAINT_NODE_ROLE:
        m = eq(node->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? "manager" : "worker", c->value);
        break;
    case SWC_CONSTRAINT_NODE_OS:
        m = eq(node->os, c->value);
        break;
    case SWC_CONSTRAINT_NODE_ARCH:
        m = node->arch != NULL &&
            strcasecmp(swc_arch_normalize(node->arch), swc_arch_normalize(c->value)) == 0;
        break;
    case SWC_CONSTRAINT_NODE_LABEL:
        m = eq(swc_kv_get(node->labels, node->n_labels, c->label), c->value);
        break;
    case SWC_CONSTRAINT_ENGINE_LABEL:
        m = eq(swc_kv_get(node->engine_labels, node->n_engine_labels, c->label), c->value);
        break;
    default:
        m = false;
    }
    return c->negate ? !m : m;
}

bool swc_constraint_set_match(const struct swc_constraint_set *set,
                              const struct swc_node_attrs *node)
{
    if (set == NULL)
        return true;
    for (size_t i = 0; i < set->n; i++)
        if (!swc_constraint_match(&set->items[i], node))
            return false;
    return true;
}

static int kv_from_pb(Swarmc__Annotations__LabelsEntry **e, size_t n, struct swc_kv **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    *out = swc_calloc(n, sizeof(**out));
    if (*out == NULL)
        return SWC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        (*out)[i].key = e[i]->key;
        (*out)[i].value = e[i]->value;
    }
    return 0;
}

int swc_node_attrs_from_pb(const Swarmc__Node *node, struct swc_node_attrs *out)
{
    memset(out, 0, sizeof(*out));
    out->id = node->id;
    out->role = node->role;
    const Swarmc__NodeDescription *d = node->description;
    if (d != NULL) {
        out->hostname = d->hostname;
        if (d->platform != NULL) {
            out->os = d->platform->os;
            out->arch = d->platform->arch;
        }
        if (d->engine != NULL && d->engine->n_labels > 0) {
            /* map entries of every message share one layout (key, value) */
            struct swc_kv *kv = swc_calloc(d->engine->n_labels, sizeof(*kv));
            if (kv == NULL)
                return SWC_ENOMEM;
            for (size_t i = 0; i < d->engine->n_labels; i++) {
                kv[i].key = d->engine->labels[i]->key;
                kv[i].value = d->engine->labels[i]->value;
            }
            out->engine_labels = kv;
            out->n_engine_labels = d->engine->n_labels;
        }
    }
    if (node->spec != NULL && node->spec->annotations != NULL) {
        struct swc_kv *kv;
        if (kv_from_pb(node->spec->annotations->labels, node->spec->annotations->n_labels, &kv)) {
            swc_node_attrs_clear(out);
            return SWC_ENOMEM;
        }
        out->labels = kv;
        out->n_labels = node->spec->annotations->n_labels;
    }
    return 0;
}

void swc_node_attrs_clear(struct swc_node_attrs *attrs)
{
    swc_free((void *)attrs->labels);
    swc_free((void *)attrs->engine_labels);
    attrs->labels = NULL;
    attrs->engine_labels = NULL;
    attrs->n_labels = 0;
    attrs->n_engine_labels = 0;
}
