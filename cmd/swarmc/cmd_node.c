/* `swarmc node ...`: ls, inspect, update, promote, demote, rm. Node
 * changes read the node first and send its version back, so two operators
 * editing the same node get a version conflict instead of a lost update. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "cli.h"
#include "client.h"
#include "output.h"
#include "spec.h"

enum { LF_QUIET = 1, LF_NO_TRUNC, LF_FILTER, LF_FORMAT };
static const struct swc_flag_def ls_flags[] = {
    {"quiet", 'q', false, LF_QUIET, NULL, "Only display IDs"},
    {"no-trunc", 0, false, LF_NO_TRUNC, NULL, "Do not truncate output"},
    {"filter", 'f', true, LF_FILTER, "filter", "Filter output (role=manager, name=...)"},
    {"format", 0, true, LF_FORMAT, "string", "Output format: table (default) or json"},
    {NULL, 0, 0, 0, 0, 0}};

static const struct swc_flag_def no_flags[] = {{NULL, 0, 0, 0, 0, 0}};

enum { RF_FORCE = 1 };
static const struct swc_flag_def rm_flags[] = {
    {"force", 'f', false, RF_FORCE, NULL, "Force remove a node from the cluster"},
    {NULL, 0, 0, 0, 0, 0}};

static int cmd_ls(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_out_opts o;
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_parse(cli, ls_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    memset(&o, 0, sizeof o);
    o.quiet = swc_flags_bool(&f, LF_QUIET);
    o.no_trunc = swc_flags_bool(&f, LF_NO_TRUNC);
    o.now_wall = swc_now_wall();
    const char *fmt = swc_flags_get(&f, LF_FORMAT);
    if (fmt != NULL && strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "invalid value for --format: use table or json");
    }
    o.json = fmt != NULL && strcmp(fmt, "json") == 0;
    o.filters = swc_calloc(f.n_vals + 1, sizeof *o.filters);
    if (o.filters == NULL) {
        abort();
    }
    for (size_t i = 0; i < f.n_vals; i++) {
        if (f.vals[i].def->id == LF_FILTER) {
            o.filters[o.n_filters++] = (char *)f.vals[i].value;
        }
    }
    swc_err_clear(&err);
    if (swc_out_check_filters(SWC_OUT_NODES, o.filters, o.n_filters, &err) != 0) {
        rc = swc_cli_usage_error(cli, swc_err_msg(&err));
    } else if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        Swarmc__ListNodesRequest req = SWARMC__LIST_NODES_REQUEST__INIT;
        Swarmc__ListNodesResponse *res = NULL;
        if (swc_client_call(&c, "control.ListNodes", &req.base,
                            &swarmc__list_nodes_response__descriptor, 0, (ProtobufCMessage **)&res,
                            &err) != 0) {
            rc = swc_cli_fail(&err);
        } else {
            char *s = swc_out_node_ls(res, &o);
            fputs(s, stdout);
            swc_free(s);
        }
        swc_cli_free_msg(res);
        swc_client_close(&c);
    }
    swc_free(o.filters);
    swc_flags_free(&f);
    return rc;
}

/* "self" is the node of the daemon we talk to (Docker's convention). */
static int resolve_self(struct swc_client *c, const char *ref, char *buf, size_t len,
                        struct swc_err *err)
{
    Swarmc__InfoRequest req = SWARMC__INFO_REQUEST__INIT;
    Swarmc__InfoResponse *res = NULL;
    snprintf(buf, len, "%s", ref);
    if (strcmp(ref, "self") != 0) {
        return 0;
    }
    int rv = swc_client_call(c, "control.Info", &req.base, &swarmc__info_response__descriptor, 0,
                             (ProtobufCMessage **)&res, err);
    if (rv == 0) {
        snprintf(buf, len, "%s", res->node_id);
    }
    swc_cli_free_msg(res);
    return rv;
}

static int get_node(struct swc_client *c, const char *ref, Swarmc__GetNodeResponse **res,
                    struct swc_err *err)
{
    Swarmc__GetNodeRequest req = SWARMC__GET_NODE_REQUEST__INIT;
    char id[128];
    int rv = resolve_self(c, ref, id, sizeof id, err);
    if (rv != 0) {
        return rv;
    }
    req.ref = id;
    return swc_client_call(c, "control.GetNode", &req.base, &swarmc__get_node_response__descriptor,
                           0, (ProtobufCMessage **)res, err);
}

static int cmd_inspect(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_parse(cli, no_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args == 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc node inspect\" requires at least 1 argument: "
                                        "the NODE (or self)");
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        Swarmc__GetNodeResponse **res = swc_calloc(f.n_args, sizeof *res);
        ProtobufCMessage **msgs = swc_calloc(f.n_args, sizeof *msgs);
        size_t n = 0;
        if (res == NULL || msgs == NULL) {
            abort();
        }
        swc_err_clear(&err);
        for (size_t i = 0; i < f.n_args; i++) {
            if (get_node(&c, f.args[i], &res[i], &err) != 0) {
                rc = swc_cli_fail(&err);
            } else if (res[i]->node != NULL) {
                msgs[n++] = &res[i]->node->base;
            }
        }
        char *s = swc_out_inspect((const ProtobufCMessage *const *)msgs, n);
        fputs(s, stdout);
        swc_free(s);
        for (size_t i = 0; i < f.n_args; i++) {
            swc_cli_free_msg(res[i]);
        }
        swc_free(res);
        swc_free(msgs);
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

/* Read-modify-write of one node's spec. role < 0: apply flags only. */
static int change_node(struct swc_client *c, const char *ref, const struct swc_flags *f, int role,
                       struct swc_err *err)
{
    Swarmc__GetNodeResponse *g = NULL;
    Swarmc__UpdateNodeRequest req = SWARMC__UPDATE_NODE_REQUEST__INIT;
    Swarmc__UpdateNodeResponse *res = NULL;
    int rv = get_node(c, ref, &g, err);
    if (rv != 0) {
        return rv;
    }
    if (g->node->spec == NULL) {
        g->node->spec = swc_calloc(1, sizeof *g->node->spec);
        if (g->node->spec == NULL) {
            abort();
        }
        swarmc__node_spec__init(g->node->spec);
    }
    if (f != NULL && (rv = swc_spec_node_apply(g->node->spec, f, err)) != 0) {
        swc_cli_free_msg(g);
        return rv;
    }
    if (role >= 0) {
        g->node->spec->desired_role = (Swarmc__NodeRole)role;
    }
    req.ref = g->node->id;
    req.version = g->node->meta ? g->node->meta->version : 0;
    req.spec = g->node->spec;
    rv = swc_client_call(c, "control.UpdateNode", &req.base,
                         &swarmc__update_node_response__descriptor, 0, (ProtobufCMessage **)&res,
                         err);
    swc_cli_free_msg(res);
    swc_cli_free_msg(g);
    return rv;
}

static int cmd_update(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_parse(cli, swc_node_update_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args != 1) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc node update\" requires exactly 1 argument: "
                                        "the NODE");
    }
    /* check the values before contacting the daemon */
    Swarmc__NodeSpec probe = SWARMC__NODE_SPEC__INIT;
    swc_err_clear(&err);
    rc = swc_spec_node_apply(&probe, &f, &err);
    swc_cli_free_msg(probe.annotations);
    if (rc != 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        if (change_node(&c, f.args[0], &f, -1, &err) != 0) {
            rc = swc_cli_fail(&err);
        } else {
            printf("%s\n", f.args[0]);
        }
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

static int promote_demote(struct swc_cli *cli, int argc, char **argv, int role)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_parse(cli, no_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args == 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "requires at least 1 argument: the NODE");
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        for (size_t i = 0; i < f.n_args; i++) {
            swc_err_clear(&err);
            if (change_node(&c, f.args[i], NULL, role, &err) != 0) {
                rc = swc_cli_fail(&err);
            } else if (role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER) {
                printf("Node %s promoted to a manager in the cluster.\n", f.args[i]);
            } else {
                printf("Manager %s demoted in the cluster.\n", f.args[i]);
            }
        }
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

static int cmd_promote(struct swc_cli *cli, int argc, char **argv)
{
    return promote_demote(cli, argc, argv, SWARMC__NODE_ROLE__NODE_ROLE_MANAGER);
}

static int cmd_demote(struct swc_cli *cli, int argc, char **argv)
{
    return promote_demote(cli, argc, argv, SWARMC__NODE_ROLE__NODE_ROLE_WORKER);
}

static int cmd_rm(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_parse(cli, rm_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args == 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc node rm\" requires at least 1 argument: the "
                                        "NODE");
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        for (size_t i = 0; i < f.n_args; i++) {
            Swarmc__RemoveNodeRequest req = SWARMC__REMOVE_NODE_REQUEST__INIT;
            Swarmc__RemoveNodeResponse *res = NULL;
            req.ref = f.args[i];
            req.force = swc_flags_bool(&f, RF_FORCE);
            swc_err_clear(&err);
            if (swc_client_call(&c, "control.RemoveNode", &req.base,
                                &swarmc__remove_node_response__descriptor, 0,
                                (ProtobufCMessage **)&res, &err) != 0) {
                rc = swc_cli_fail(&err);
            } else {
                printf("%s\n", f.args[i]);
            }
            swc_cli_free_msg(res);
        }
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

const struct swc_cli_cmd swc_cli_node_cmds[] = {
    {"ls", cmd_ls, NULL, "", "List nodes in the cluster", ls_flags},
    {"inspect", cmd_inspect, NULL, "self|NODE [NODE...]",
     "Display detailed information on one or more nodes", no_flags},
    {"update", cmd_update, NULL, "NODE", "Update a node", swc_node_update_flags},
    {"promote", cmd_promote, NULL, "NODE [NODE...]", "Promote one or more nodes to manager",
     no_flags},
    {"demote", cmd_demote, NULL, "NODE [NODE...]", "Demote one or more nodes from manager",
     no_flags},
    {"rm", cmd_rm, NULL, "NODE [NODE...]", "Remove one or more nodes from the cluster", rm_flags},
    {NULL, NULL, NULL, NULL, NULL, NULL}};
