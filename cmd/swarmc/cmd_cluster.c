/* Cluster-level commands: `daemon`, `init`, `join`, `join-token`, `leave`,
 * `version` and `cluster backup|restore|inspect|update`. Backups are made
 * by the daemon (it holds the store); the CLI sends an absolute path so
 * the file lands where the operator meant even though the daemon runs in
 * another directory. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "cli.h"
#include "client.h"
#include "daemon/daemon.h"
#include "output.h"
#include "spec.h"

/* One call on a fresh connection; prints the error. 0 or an exit code. */
static int call_once(struct swc_cli *cli, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *rd, ProtobufCMessage **res)
{
    struct swc_client c;
    struct swc_err err;
    int rc = swc_cli_open_client(cli, &c);
    if (rc != 0) {
        return rc;
    }
    swc_err_clear(&err);
    if (swc_client_call(&c, method, req, rd, 0, res, &err) != 0) {
        rc = swc_cli_fail(&err);
    }
    swc_client_close(&c);
    return rc;
}

static const struct swc_flag_def no_flags[] = {{NULL, 0, 0, 0, 0, 0}};

/* ---- daemon ------------------------------------------------------------------- */

enum {
    DF_STATE_DIR = 1,
    DF_SOCKET,
    DF_LISTEN,
    DF_ADVERTISE,
    DF_DOCKER,
    DF_EXECUTOR,
    DF_FNC,
    DF_DEV
};
const struct swc_flag_def swc_cli_daemon_flags[] = {
    {"state-dir", 0, true, DF_STATE_DIR, "dir", "State directory (default /var/lib/swarmc)"},
    {"socket", 0, true, DF_SOCKET, "path", "Control socket (default /run/swarmc.sock)"},
    {"listen", 0, true, DF_LISTEN, "addr:port", "Cluster port (default 0.0.0.0:4242)"},
    {"advertise-addr", 0, true, DF_ADVERTISE, "addr:port", "Address other nodes use to reach us"},
    {"docker", 0, true, DF_DOCKER, "url", "Docker engine (default unix:///var/run/docker.sock)"},
    {"executor", 0, true, DF_EXECUTOR, "name", "Task executor: docker (default) or sim"},
    {"force-new-cluster", 0, false, DF_FNC, NULL,
     "Start a new single-manager cluster from this manager's state"},
    {"dev", 0, false, DF_DEV, NULL, "Fresh single-node cluster with temporary state"},
    {NULL, 0, 0, 0, 0, 0}};

int swc_cli_cmd_daemon(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_daemon_opts o;
    int rc = swc_cli_parse(cli, swc_cli_daemon_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args > 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc daemon\" accepts no arguments");
    }
    memset(&o, 0, sizeof o);
    o.state_dir = swc_flags_get(&f, DF_STATE_DIR);
    o.socket_path = swc_flags_get(&f, DF_SOCKET);
    o.listen_addr = swc_flags_get(&f, DF_LISTEN);
    o.advertise_addr = swc_flags_get(&f, DF_ADVERTISE);
    o.docker = swc_flags_get(&f, DF_DOCKER);
    o.executor = swc_flags_get(&f, DF_EXECUTOR);
    o.force_new_cluster = swc_flags_bool(&f, DF_FNC);
    o.dev = swc_flags_bool(&f, DF_DEV);
    /* --dev makes a fresh cluster in a temporary dir (the daemon picks it,
     * with the socket inside) unless a state dir or socket is named. */
    if (o.state_dir == NULL && !o.dev) {
        o.state_dir = SWC_DEFAULT_STATE_DIR;
    }
    if (o.socket_path == NULL && !(o.dev && strcmp(cli->host, SWC_DEFAULT_SOCKET) == 0)) {
        /* -H / SWARMC_HOST name the socket for the daemon too */
        o.socket_path = strncmp(cli->host, "unix://", 7) == 0 ? cli->host + 7 : cli->host;
    }
    if (o.listen_addr == NULL) {
        o.listen_addr = "0.0.0.0:4242";
    }
    if (o.docker == NULL) {
        o.docker = SWC_DEFAULT_DOCKER;
    }
    if (o.executor == NULL) {
        o.executor = "docker";
    }
    if (strcmp(o.executor, "docker") != 0 && strcmp(o.executor, "sim") != 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid value \"%s\" for --executor: use docker or sim",
                 o.executor);
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, msg);
    }
    rc = swc_daemon_run(&o);
    swc_flags_free(&f);
    return rc;
}

/* ---- init / join / join-token / leave ---------------------------------------- */

enum { IF_ADVERTISE = 1, IF_LISTEN, IF_AUTOLOCK };
const struct swc_flag_def swc_cli_init_flags[] = {
    {"advertise-addr", 0, true, IF_ADVERTISE, "addr[:port]", "Advertised address"},
    {"listen-addr", 0, true, IF_LISTEN, "addr:port", "Listen address (default 0.0.0.0:4242)"},
    {"autolock", 0, false, IF_AUTOLOCK, NULL, "Require a key to unlock managers after a restart"},
    {NULL, 0, 0, 0, 0, 0}};

int swc_cli_cmd_init(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    Swarmc__InitRequest req = SWARMC__INIT_REQUEST__INIT;
    Swarmc__InitResponse *res = NULL;
    int rc = swc_cli_parse(cli, swc_cli_init_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args > 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc init\" accepts no arguments");
    }
    if (swc_flags_get(&f, IF_ADVERTISE)) {
        req.advertise_addr = (char *)swc_flags_get(&f, IF_ADVERTISE);
    }
    if (swc_flags_get(&f, IF_LISTEN)) {
        req.listen_addr = (char *)swc_flags_get(&f, IF_LISTEN);
    }
    req.autolock = swc_flags_bool(&f, IF_AUTOLOCK);
    rc = call_once(cli, "control.Init", &req.base, &swarmc__init_response__descriptor,
                   (ProtobufCMessage **)&res);
    if (rc == 0) {
        printf("Cluster initialized: current node (%s) is now a manager.\n\n"
               "To add a worker to this cluster, run the following command:\n\n"
               "    swarmc join --token %s %s\n\n"
               "To add a manager to this cluster, run 'swarmc join-token manager' and follow "
               "the instructions.\n",
               res->node_id, res->worker_token,
               res->n_manager_addrs > 0 ? res->manager_addrs[0] : "<manager-addr>");
    }
    swc_cli_free_msg(res);
    swc_flags_free(&f);
    return rc;
}

enum { JF_TOKEN = 1, JF_ADVERTISE };
const struct swc_flag_def swc_cli_join_flags[] = {
    {"token", 0, true, JF_TOKEN, "string", "Token for entry into the cluster"},
    {"advertise-addr", 0, true, JF_ADVERTISE, "addr[:port]", "Advertised address"},
    {NULL, 0, 0, 0, 0, 0}};

int swc_cli_cmd_join(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    Swarmc__JoinClusterRequest req = SWARMC__JOIN_CLUSTER_REQUEST__INIT;
    Swarmc__JoinClusterResponse *res = NULL;
    int rc = swc_cli_parse(cli, swc_cli_join_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (swc_flags_get(&f, JF_TOKEN) == NULL || swc_flags_get(&f, JF_TOKEN)[0] == '\0') {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "--token is required: get one with 'swarmc join-token "
                                        "worker' on a manager");
    }
    if (f.n_args == 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc join\" requires at least 1 argument: a "
                                        "manager's HOST:PORT");
    }
    req.token = (char *)swc_flags_get(&f, JF_TOKEN);
    req.n_remote_addrs = f.n_args;
    req.remote_addrs = f.args;
    if (swc_flags_get(&f, JF_ADVERTISE)) {
        req.advertise_addr = (char *)swc_flags_get(&f, JF_ADVERTISE);
    }
    rc = call_once(cli, "control.JoinCluster", &req.base,
                   &swarmc__join_cluster_response__descriptor, (ProtobufCMessage **)&res);
    if (rc == 0) {
        printf("This node joined a cluster as a %s.\n",
               res->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? "manager" : "worker");
    }
    swc_cli_free_msg(res);
    swc_flags_free(&f);
    return rc;
}

enum { TF_ROTATE = 1, TF_QUIET };
const struct swc_flag_def swc_cli_join_token_flags[] = {
    {"rotate", 0, false, TF_ROTATE, NULL, "Rotate join token"},
    {"quiet", 'q', false, TF_QUIET, NULL, "Only display token"},
    {NULL, 0, 0, 0, 0, 0}};

int swc_cli_cmd_join_token(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    Swarmc__JoinTokensRequest req = SWARMC__JOIN_TOKENS_REQUEST__INIT;
    Swarmc__JoinTokensResponse *res = NULL;
    int rc = swc_cli_parse(cli, swc_cli_join_token_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args != 1 || (strcmp(f.args[0], "worker") != 0 && strcmp(f.args[0], "manager") != 0)) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc join-token\" requires exactly 1 argument: "
                                        "worker or manager");
    }
    bool manager = strcmp(f.args[0], "manager") == 0;
    req.rotate_worker = !manager && swc_flags_bool(&f, TF_ROTATE);
    req.rotate_manager = manager && swc_flags_bool(&f, TF_ROTATE);
    rc = call_once(cli, "control.JoinTokens", &req.base, &swarmc__join_tokens_response__descriptor,
                   (ProtobufCMessage **)&res);
    if (rc == 0) {
        const char *tok = manager ? res->manager : res->worker;
        if (swc_flags_bool(&f, TF_QUIET)) {
            printf("%s\n", tok);
        } else {
            if (swc_flags_bool(&f, TF_ROTATE)) {
                printf("Successfully rotated %s join token.\n\n", f.args[0]);
            }
            printf("To add a %s to this cluster, run the following command:\n\n"
                   "    swarmc join --token %s %s\n\n",
                   f.args[0], tok, res->n_manager_addrs > 0 ? res->manager_addrs[0] : "<addr>");
        }
    }
    swc_cli_free_msg(res);
    swc_flags_free(&f);
    return rc;
}

enum { LVF_FORCE = 1 };
const struct swc_flag_def swc_cli_leave_flags[] = {
    {"force", 'f', false, LVF_FORCE, NULL,
     "Force this node to leave the cluster, ignoring warnings"},
    {NULL, 0, 0, 0, 0, 0}};

int swc_cli_cmd_leave(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    Swarmc__LeaveRequest req = SWARMC__LEAVE_REQUEST__INIT;
    Swarmc__LeaveResponse *res = NULL;
    int rc = swc_cli_parse(cli, swc_cli_leave_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    req.force = swc_flags_bool(&f, LVF_FORCE);
    rc = call_once(cli, "control.Leave", &req.base, &swarmc__leave_response__descriptor,
                   (ProtobufCMessage **)&res);
    if (rc == 0) {
        if (res->warning[0] != '\0') {
            fprintf(stderr, "Warning: %s\n", res->warning);
        }
        printf("Node left the cluster.\n");
    }
    swc_cli_free_msg(res);
    swc_flags_free(&f);
    return rc;
}

int swc_cli_cmd_version(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_client c;
    struct swc_err err;
    (void)argc;
    (void)argv;
    printf("Client:\n Version:  %s\n", SWC_VERSION);
    swc_err_clear(&err);
    if (swc_client_open(&c, cli->host, &err) == 0) {
        Swarmc__InfoRequest req = SWARMC__INFO_REQUEST__INIT;
        Swarmc__InfoResponse *res = NULL;
        if (swc_client_call(&c, "control.Info", &req.base, &swarmc__info_response__descriptor, 5000,
                            (ProtobufCMessage **)&res, &err) == 0) {
            printf("\nServer:\n Socket:   %s\n Node ID:  %s\n Cluster:  %s\n Role:     %s%s\n",
                   cli->host, res->is_member ? res->node_id : "(not in a cluster)", res->cluster_id,
                   res->role == SWARMC__NODE_ROLE__NODE_ROLE_MANAGER ? "manager" : "worker",
                   res->leader ? " (leader)" : "");
        } else {
            printf("\nServer: %s\n", swc_err_msg(&err));
        }
        swc_cli_free_msg(res);
    } else {
        printf("\nServer: not reachable at %s\n", cli->host);
    }
    swc_client_close(&c);
    return SWC_EXIT_OK;
}

/* ---- cluster ------------------------------------------------------------------ */

static int abs_path(const char *in, char *out, size_t len)
{
    char cwd[PATH_MAX];
    if (in[0] == '/') {
        snprintf(out, len, "%s", in);
        return 0;
    }
    if (getcwd(cwd, sizeof cwd) == NULL) {
        return -1;
    }
    snprintf(out, len, "%s/%s", cwd, in);
    return 0;
}

static int cmd_backup(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    char path[PATH_MAX + 256];
    Swarmc__BackupClusterRequest req = SWARMC__BACKUP_CLUSTER_REQUEST__INIT;
    Swarmc__BackupClusterResponse *res = NULL;
    int rc = swc_cli_parse(cli, no_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args != 1) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc cluster backup\" requires exactly 1 argument: "
                                        "the FILE to write");
    }
    abs_path(f.args[0], path, sizeof path);
    req.path = path;
    rc = call_once(cli, "control.BackupCluster", &req.base,
                   &swarmc__backup_cluster_response__descriptor, (ProtobufCMessage **)&res);
    if (rc == 0) {
        unsigned long long bytes = res->bytes;
        struct stat st;
        if (bytes == 0 && stat(path, &st) == 0) {
            bytes = (unsigned long long)st.st_size; /* daemon on this host */
        }
        printf("Backup written to %s (%llu objects, %llu bytes)\n", res->path[0] ? res->path : path,
               (unsigned long long)res->objects, bytes);
    }
    swc_cli_free_msg(res);
    swc_flags_free(&f);
    return rc;
}

static int cmd_restore(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    char path[PATH_MAX + 256];
    Swarmc__RestoreClusterRequest req = SWARMC__RESTORE_CLUSTER_REQUEST__INIT;
    Swarmc__RestoreClusterResponse *res = NULL;
    int rc = swc_cli_parse(cli, no_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (f.n_args != 1) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, "\"swarmc cluster restore\" requires exactly 1 argument: "
                                        "the backup FILE");
    }
    abs_path(f.args[0], path, sizeof path);
    if (access(path, R_OK) != 0) {
        struct swc_err err;
        swc_err_set(&err, SWC_ENOENT, "cannot read %s: check the path", path);
        swc_flags_free(&f);
        return swc_cli_fail(&err);
    }
    req.path = path;
    rc = call_once(cli, "control.RestoreCluster", &req.base,
                   &swarmc__restore_cluster_response__descriptor, (ProtobufCMessage **)&res);
    if (rc == 0) {
        printf("Restored %llu objects from %s\n", (unsigned long long)res->objects, path);
    }
    swc_cli_free_msg(res);
    swc_flags_free(&f);
    return rc;
}

static int cmd_inspect(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    Swarmc__GetClusterRequest req = SWARMC__GET_CLUSTER_REQUEST__INIT;
    Swarmc__GetClusterResponse *res = NULL;
    int rc = swc_cli_parse(cli, no_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    rc = call_once(cli, "control.GetCluster", &req.base, &swarmc__get_cluster_response__descriptor,
                   (ProtobufCMessage **)&res);
    if (rc == 0 && res->cluster != NULL) {
        const ProtobufCMessage *m = &res->cluster->base;
        char *s = swc_out_inspect(&m, 1);
        fputs(s, stdout);
        swc_free(s);
    }
    swc_cli_free_msg(res);
    swc_flags_free(&f);
    return rc;
}

enum { CF_HISTORY = 1, CF_HEARTBEAT, CF_CERT_EXPIRY, CF_SNAPSHOT, CF_AUTOLOCK };
static const struct swc_flag_def cluster_update_flags[] = {
    {"task-history-limit", 0, true, CF_HISTORY, "int", "Task history retention limit"},
    {"dispatcher-heartbeat", 0, true, CF_HEARTBEAT, "duration", "Dispatcher heartbeat period"},
    {"cert-expiry", 0, true, CF_CERT_EXPIRY, "duration", "Validity period for node certificates"},
    {"snapshot-interval", 0, true, CF_SNAPSHOT, "uint", "Number of log entries between snapshots"},
    {"autolock", 0, false, CF_AUTOLOCK, NULL, "Change manager autolocking setting (true|false)"},
    {NULL, 0, 0, 0, 0, 0}};

/* Apply `cluster update` flags to spec (sub-messages allocated as needed). */
static int cluster_apply(Swarmc__ClusterSpec *s, const struct swc_flags *f, struct swc_err *err)
{
    for (size_t i = 0; i < f->n_vals; i++) {
        const char *v = f->vals[i].value, *flag = f->vals[i].def->name;
        uint64_t n;
        int64_t d;
        switch (f->vals[i].def->id) {
        case CF_HISTORY:
            if (swc_flag_uint(flag, v, 1000000, &n, err) != 0) {
                return SWC_EINVAL;
            }
            if (s->orchestration == NULL) {
                s->orchestration = swc_calloc(1, sizeof *s->orchestration);
                swarmc__orchestration_settings__init(s->orchestration);
            }
            s->orchestration->task_history_retention_limit = (int64_t)n;
            break;
        case CF_HEARTBEAT:
            if (swc_flag_duration(flag, v, &d, err) != 0) {
                return SWC_EINVAL;
            }
            if (s->dispatcher == NULL) {
                s->dispatcher = swc_calloc(1, sizeof *s->dispatcher);
                swarmc__dispatcher_settings__init(s->dispatcher);
            }
            s->dispatcher->heartbeat_period_ns = d;
            break;
        case CF_CERT_EXPIRY:
            if (swc_flag_duration(flag, v, &d, err) != 0) {
                return SWC_EINVAL;
            }
            if (s->ca_config == NULL) {
                s->ca_config = swc_calloc(1, sizeof *s->ca_config);
                swarmc__caconfig__init(s->ca_config);
            }
            s->ca_config->node_cert_expiry_ns = d;
            break;
        case CF_SNAPSHOT:
            if (swc_flag_uint(flag, v, UINT32_MAX, &n, err) != 0) {
                return SWC_EINVAL;
            }
            if (s->raft == NULL) {
                s->raft = swc_calloc(1, sizeof *s->raft);
                swarmc__raft_settings__init(s->raft);
            }
            s->raft->snapshot_interval = n;
            break;
        case CF_AUTOLOCK:
            s->autolock = strcmp(v, "true") == 0;
            break;
        default:
            break;
        }
    }
    return 0;
}

static int cmd_update(struct swc_cli *cli, int argc, char **argv)
{
    struct swc_flags f;
    struct swc_client c;
    struct swc_err err;
    Swarmc__ClusterSpec probe = SWARMC__CLUSTER_SPEC__INIT;
    int rc = swc_cli_parse(cli, cluster_update_flags, argc, argv, false, &f);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    swc_err_clear(&err);
    rc = cluster_apply(&probe, &f, &err);
    swc_cli_free_msg(probe.orchestration);
    swc_cli_free_msg(probe.dispatcher);
    swc_cli_free_msg(probe.ca_config);
    swc_cli_free_msg(probe.raft);
    if (rc != 0) {
        swc_flags_free(&f);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if ((rc = swc_cli_open_client(cli, &c)) == 0) {
        Swarmc__GetClusterRequest greq = SWARMC__GET_CLUSTER_REQUEST__INIT;
        Swarmc__GetClusterResponse *g = NULL;
        Swarmc__UpdateClusterRequest req = SWARMC__UPDATE_CLUSTER_REQUEST__INIT;
        Swarmc__UpdateClusterResponse *res = NULL;
        if (swc_client_call(&c, "control.GetCluster", &greq.base,
                            &swarmc__get_cluster_response__descriptor, 0, (ProtobufCMessage **)&g,
                            &err) != 0) {
            rc = swc_cli_fail(&err);
        } else {
            if (g->cluster->spec == NULL) {
                g->cluster->spec = swc_calloc(1, sizeof *g->cluster->spec);
                swarmc__cluster_spec__init(g->cluster->spec);
            }
            cluster_apply(g->cluster->spec, &f, &err);
            req.version = g->cluster->meta ? g->cluster->meta->version : 0;
            req.spec = g->cluster->spec;
            if (swc_client_call(&c, "control.UpdateCluster", &req.base,
                                &swarmc__update_cluster_response__descriptor, 0,
                                (ProtobufCMessage **)&res, &err) != 0) {
                rc = swc_cli_fail(&err);
            } else {
                printf("Cluster updated.\n");
            }
        }
        swc_cli_free_msg(res);
        swc_cli_free_msg(g);
        swc_client_close(&c);
    }
    swc_flags_free(&f);
    return rc;
}

const struct swc_cli_cmd swc_cli_cluster_cmds[] = {
    {"backup", cmd_backup, NULL, "FILE", "Write a consistent backup of the cluster state (SQLite)",
     no_flags},
    {"restore", cmd_restore, NULL, "FILE", "Restore the cluster state from a backup", no_flags},
    {"inspect", cmd_inspect, NULL, "", "Display the cluster object", no_flags},
    {"update", cmd_update, NULL, "", "Update cluster settings", cluster_update_flags},
    {NULL, NULL, NULL, NULL, NULL, NULL}};
