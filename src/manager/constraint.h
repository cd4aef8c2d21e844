/* Placement constraints: parse "node.labels.zone==a" style expressions once
 * into a compiled form, then match them against a node cheaply.
 *
 * Keys: node.id, node.hostname, node.role (manager|worker), node.platform.os,
 * node.platform.arch, node.labels.<key>, engine.labels.<key>; operators == and
 * != with optional spaces around them; the value may be wrapped in single or
 * double quotes. Values compare case-insensitively, as in Docker swarm mode. A
 * label that the node does not have never equals anything, so
 * "node.labels.zone!=a" holds on a node without a zone label.
 *
 * The node side is a plain view (struct swc_node_attrs) so the scheduler and
 * the global orchestrator can match without touching protobuf objects in their
 * hot loops. */
#ifndef SWC_MANAGER_CONSTRAINT_H
#define SWC_MANAGER_CONSTRAINT_H

#include <stdbool.h>
#include <stddef.h>

#include "api/types.pb-c.h"
#include "base/err.h"

/* One key=value pair of a node or engine label map (borrowed strings). */
struct swc_kv {
    const char *key;
    const char *value;
};

/* What a constraint can look at on a node. Strings are borrowed from whoever
 * filled the view; role is a SWARMC__NODE_ROLE__* value. */
struct swc_node_attrs {
    const char *id;
    const char *hostname;
    int role;
    const char *os;
    const char *arch;
    const struct swc_kv *labels;
    size_t n_labels;
    const struct swc_kv *engine_labels;
    size_t n_engine_labels;
};

enum swc_constraint_key {
    SWC_CONSTRAINT_NODE_ID,
    SWC_CONSTRAINT_NODE_HOSTNAME,
    SWC_CONSTRAINT_NODE_ROLE,
    SWC_CONSTRAINT_NODE_OS,
    SWC_CONSTRAINT_NODE_ARCH,
    SWC_CONSTRAINT_NODE_LABEL,
    SWC_CONSTRAINT_ENGINE_LABEL,
};

/* A compiled constraint; owns label and value. */
struct swc_constraint {
    enum swc_constraint_key key;
    bool negate; /* operator != */
    char *label; /* label name for the *_LABEL keys, else NULL */
    char *value;
};

/* A list of compiled constraints (all must hold). */
struct swc_constraint_set {
    struct swc_constraint *items;
    size_t n;
};

/* Parse one expression into out (which then owns its strings; release with
 * swc_constraint_clear). On a bad expression returns SWC_EINVAL with a message
 * in err that quotes the expression and says what is wrong. */
int swc_constraint_parse(const char *expr, struct swc_constraint *out, struct swc_err *err);

/* Release the strings of a parsed constraint. */
void swc_constraint_clear(struct swc_constraint *c);

/* Parse n expressions into set (owned; release with swc_constraint_set_clear);
 * on error nothing is left allocated. */
int swc_constraint_set_parse(const char *const *exprs, size_t n, struct swc_constraint_set *set,
                             struct swc_err *err);

/* Release everything a set owns and empty it. */
void swc_constraint_set_clear(struct swc_constraint_set *set);

/* True when the node satisfies c. */
bool swc_constraint_match(const struct swc_constraint *c, const struct swc_node_attrs *node);

/* True when the node satisfies every constraint of the set (an empty set always
 * matches). */
bool swc_constraint_set_match(const struct swc_constraint_set *set,
                              const struct swc_node_attrs *node);

/* Look up a label in a kv array; NULL when absent. */
const char *swc_kv_get(const struct swc_kv *kv, size_t n, const char *key);

/* Fill a view of a protobuf node: strings are borrowed from node, the two
 * label arrays are allocated here (release with swc_node_attrs_clear). */
int swc_node_attrs_from_pb(const Swarmc__Node *node, struct swc_node_attrs *out);

/* Free the label arrays allocated by swc_node_attrs_from_pb. */
void swc_node_attrs_clear(struct swc_node_attrs *attrs);

/* Normalize an architecture name so "x86_64"/"amd64" and "aarch64"/"arm64"
 * compare equal; returns a static string or arch itself. */
const char *swc_arch_normalize(const char *arch);

#endif
