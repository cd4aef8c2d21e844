/* The subcommand table and dispatch (see cli.h).
 *
 * Global options come first ("swarmc -H /tmp/s.sock service ls"); then
 * command words are matched against the table, descending into groups,
 * until a command with a function is found; the rest of argv is its own.
 * Help is generated from the same table and the command's flag table, so
 * `swarmc --help`, `swarmc service --help` and `swarmc service create
 * --help` never drift from what is accepted. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "client.h"

int swc_cli_cmd_fleet(struct swc_cli *cli, int argc, char **argv); /* cmd_fleet.c */
extern const struct swc_flag_def swc_cli_fleet_flags[];

static const struct swc_cli_cmd top_cmds[] = {
    {"daemon", swc_cli_cmd_daemon, NULL, "", "Run the swarmc node daemon", swc_cli_daemon_flags},
    {"init", swc_cli_cmd_init, NULL, "", "Initialize a cluster with this node as its manager",
     swc_cli_init_flags},
    {"join", swc_cli_cmd_join, NULL, "HOST:PORT [HOST:PORT...]",
     "Join a cluster as a worker or a manager", swc_cli_join_flags},
    {"join-token", swc_cli_cmd_join_token, NULL, "(worker|manager)", "Manage join tokens",
     swc_cli_join_token_flags},
    {"leave", swc_cli_cmd_leave, NULL, "", "Leave the cluster", swc_cli_leave_flags},
    {"node", NULL, swc_cli_node_cmds, "COMMAND", "Manage cluster nodes", NULL},
    {"service", NULL, swc_cli_service_cmds, "COMMAND", "Manage services", NULL},
    {"cluster", NULL, swc_cli_cluster_cmds, "COMMAND", "Manage the cluster (backup, restore, ...)",
     NULL},
    {"fleet", swc_cli_cmd_fleet, NULL, "MANAGER_ADDR[,ADDR...]",
     "Run many simulated worker nodes (performance tests)", swc_cli_fleet_flags},
    {"version", swc_cli_cmd_version, NULL, "", "Show the swarmc version", NULL},
    {"help", NULL, NULL, "[COMMAND]", "Help about any command", NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL}};

static const struct swc_cli_cmd root = {
    "", NULL, top_cmds, "COMMAND", "swarmc: a container orchestrator", NULL};

static const struct swc_flag_def global_flags[] = {
    {"host", 'H', true, 1, "path",
     "Daemon control socket (default $SWARMC_HOST or "
     "/run/swarmc.sock)"},
    {"version", 'v', false, 2, NULL, "Print version information and quit"},
    {NULL, 0, 0, 0, 0, 0}};

int swc_cli_usage_error(const struct swc_cli *cli, const char *msg)
{
    fprintf(stderr, "%s\nSee 'swarmc%s%s --help'.\n", msg, cli->path[0] ? " " : "", cli->path);
    return SWC_EXIT_USAGE;
}

int swc_cli_open_client(struct swc_cli *cli, struct swc_client *c)
{
    struct swc_err err;
    swc_err_clear(&err);
    if (swc_client_open(c, cli->host, &err) != 0) {
        swc_client_close(c);
        return swc_cli_fail(&err);
    }
    return 0;
}

void swc_cli_free_msg(void *m)
{
    if (m != NULL) {
        swc_client_free_reply((ProtobufCMessage *)m);
    }
}

int swc_cli_fail(const struct swc_err *err)
{
    fprintf(stderr, "Error: %s\n", swc_err_msg(err));
    return SWC_EXIT_FAIL;
}

int swc_cli_help(const struct swc_cli *cli)
{
    const struct swc_cli_cmd *c = cli->cmd;
    char *buf = malloc(16384);
    if (buf == NULL) {
        abort();
    }
    printf("\nUsage:  swarmc%s%s %s%s\n\n%s\n", cli->path[0] ? " " : "", cli->path,
           c->flags || c == &root ? "[OPTIONS] " : "", c->args ? c->args : "", c->summary);
    if (c->subs != NULL) {
        printf("\nCommands:\n");
        for (const struct swc_cli_cmd *s = c->subs; s->name != NULL; s++) {
            printf("  %-12s %s\n", s->name, s->summary);
        }
    }
    if (c == &root) {
        swc_flags_usage(global_flags, buf, 16384);
        printf("\nGlobal options:\n%s", buf);
    } else if (c->flags != NULL) {
        swc_flags_usage(c->flags, buf, 16384);
        printf("\nOptions:\n%s", buf);
    }
    if (c->subs != NULL) {
        printf("\nRun 'swarmc%s%s COMMAND --help' for more information on a command.\n",
               cli->path[0] ? " " : "", cli->path);
    }
    free(buf);
    return SWC_EXIT_OK;
}

int swc_cli_parse(const struct swc_cli *cli, const struct swc_flag_def *defs, int argc, char **argv,
                  bool stop_at_arg, struct swc_flags *out)
{
    struct swc_err err;
    swc_err_clear(&err);
    if (swc_flags_parse(defs, argc, argv, stop_at_arg, out, &err) != 0) {
        swc_flags_free(out);
        return swc_cli_usage_error(cli, swc_err_msg(&err));
    }
    if (out->help) {
        swc_flags_free(out);
        swc_cli_help(cli);
        return -1;
    }
    return 0;
}

static const struct swc_cli_cmd *find(const struct swc_cli_cmd *cmds, const char *name)
{
    for (const struct swc_cli_cmd *c = cmds; c != NULL && c->name != NULL; c++) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    /* docker-style aliases */
    if (strcmp(name, "list") == 0) {
        return find(cmds, "ls");
    }
    if (strcmp(name, "remove") == 0) {
        return find(cmds, "rm");
    }
    return NULL;
}

int swc_cli_main(int argc, char **argv)
{
    static char path[128];
    struct swc_cli cli = {swc_client_default_host(), path, &root};
    const struct swc_cli_cmd *cmd = &root;
    int i = 1;
    path[0] = '\0';

    /* global options, before the command */
    while (i < argc && argv[i][0] == '-') {
        const char *a = argv[i];
        if (strcmp(a, "-H") == 0 || strcmp(a, "--host") == 0) {
            if (i + 1 >= argc) {
                return swc_cli_usage_error(&cli, "flag needs an argument: --host");
            }
            cli.host = argv[i + 1];
            i += 2;
        } else if (strncmp(a, "--host=", 7) == 0) {
            cli.host = a + 7;
            i++;
        } else if (strncmp(a, "-H", 2) == 0) {
            cli.host = a + 2;
            i++;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            return swc_cli_help(&cli);
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            printf("swarmc version %s\n", SWC_VERSION);
            return SWC_EXIT_OK;
        } else {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown flag: %s", a);
            return swc_cli_usage_error(&cli, msg);
        }
    }
    if (i >= argc) {
        swc_cli_help(&cli);
        return SWC_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        /* "swarmc help service create" == "swarmc service create --help" */
        for (i++; i < argc && cmd->subs != NULL; i++) {
            const struct swc_cli_cmd *c = find(cmd->subs, argv[i]);
            if (c == NULL) {
                char msg[256];
                snprintf(msg, sizeof msg, "unknown help topic \"%s\"", argv[i]);
                return swc_cli_usage_error(&cli, msg);
            }
            snprintf(path + strlen(path), sizeof path - strlen(path), "%s%s", path[0] ? " " : "",
                     c->name);
            cmd = c;
        }
        cli.cmd = cmd;
        return swc_cli_help(&cli);
    }
    while (cmd->fn == NULL) {
        const struct swc_cli_cmd *c;
        if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli.cmd = cmd;
            swc_cli_help(&cli);
            return i >= argc && cmd != &root ? SWC_EXIT_USAGE : SWC_EXIT_OK;
        }
        c = find(cmd->subs, argv[i]);
        if (c == NULL || (c->fn == NULL && c->subs == NULL)) {
            char msg[256];
            if (argv[i][0] == '-') {
                snprintf(msg, sizeof msg, "unknown flag: %s", argv[i]);
            } else {
                snprintf(msg, sizeof msg, "unknown command \"%s\" for \"swarmc%s%s\"", argv[i],
                         path[0] ? " " : "", path);
            }
            return swc_cli_usage_error(&cli, msg);
        }
        snprintf(path + strlen(path), sizeof path - strlen(path), "%s%s", path[0] ? " " : "",
                 c->name);
        cmd = c;
        i++;
    }
    cli.cmd = cmd;
    if (cmd->fn != swc_cli_cmd_daemon && getenv("SWARMC_LOG_LEVEL") == NULL) {
        /* a client prints its own errors; library info lines are noise */
        swc_log_set_level(SWC_LOG_ERROR);
    }
    return cmd->fn(&cli, argc - i, argv + i);
}
