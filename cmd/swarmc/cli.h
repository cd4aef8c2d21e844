/* The swarmc command line: the subcommand table and what the commands
 * share (global options, usage and error printing, exit codes).
 *
 * main() calls swc_cli_main(). Each command is a function that gets its
 * own arguments (after the command words) and returns the process exit
 * code: 0 success, 1 a failure (the daemon refused, I/O), 2 a usage error
 * (unknown flag, bad value), which always ends with "See 'swarmc <cmd>
 * --help'.". Errors go to stderr, results to stdout. */
#ifndef SWC_CLI_CLI_H
#define SWC_CLI_CLI_H

#include <stdbool.h>

#include "base/err.h"
#include "flags.h"

#define SWC_VERSION "0.1.0"

enum { SWC_EXIT_OK = 0, SWC_EXIT_FAIL = 1, SWC_EXIT_USAGE = 2 };

struct swc_cli_cmd;

/* Global options and the command being run. */
struct swc_cli {
    const char *host;              /* control socket (-H, SWARMC_HOST, default) */
    const char *path;              /* "service create", for messages */
    const struct swc_cli_cmd *cmd; /* the command being run */
};

typedef int (*swc_cli_fn)(struct swc_cli *cli, int argc, char **argv);

/* One entry of the subcommand table. */
struct swc_cli_cmd {
    const char *name;
    swc_cli_fn fn;                  /* NULL for a group (node, service, cluster) */
    const struct swc_cli_cmd *subs; /* NULL-terminated, for a group */
    const char *args;               /* usage after the options ("SERVICE [SERVICE...]") */
    const char *summary;
    const struct swc_flag_def *flags; /* for --help */
};

/* Run the command line; returns the exit code. */
int swc_cli_main(int argc, char **argv);

/* Print "<message>\nSee 'swarmc <path> --help'." to stderr; returns 2. */
int swc_cli_usage_error(const struct swc_cli *cli, const char *msg);

/* Print "Error: <message>" to stderr; returns 1. */
int swc_cli_fail(const struct swc_err *err);

struct swc_client;

/* Connect to the daemon's control socket (cli->host): 0, or prints why it
 * failed and returns the exit code (1). */
int swc_cli_open_client(struct swc_cli *cli, struct swc_client *c);

/* Free a reply unpacked by the client (NULL is fine). */
void swc_cli_free_msg(void *m);

/* Print the --help text of the current command to stdout; returns 0. */
int swc_cli_help(const struct swc_cli *cli);

/* Parse a command's flags; on a usage error prints it and returns 2, on
 * --help prints help and returns -1 (caller returns 0); else 0. */
int swc_cli_parse(const struct swc_cli *cli, const struct swc_flag_def *defs, int argc, char **argv,
                  bool stop_at_arg, struct swc_flags *out);

/* Command groups (cmd_*.c). */
extern const struct swc_cli_cmd swc_cli_service_cmds[];
extern const struct swc_cli_cmd swc_cli_node_cmds[];
extern const struct swc_cli_cmd swc_cli_cluster_cmds[];

/* Top-level commands (cmd_cluster.c). */
int swc_cli_cmd_daemon(struct swc_cli *cli, int argc, char **argv);
int swc_cli_cmd_init(struct swc_cli *cli, int argc, char **argv);
int swc_cli_cmd_join(struct swc_cli *cli, int argc, char **argv);
int swc_cli_cmd_join_token(struct swc_cli *cli, int argc, char **argv);
int swc_cli_cmd_leave(struct swc_cli *cli, int argc, char **argv);
int swc_cli_cmd_version(struct swc_cli *cli, int argc, char **argv);

extern const struct swc_flag_def swc_cli_daemon_flags[];
extern const struct swc_flag_def swc_cli_init_flags[];
extern const struct swc_flag_def swc_cli_join_flags[];
extern const struct swc_flag_def swc_cli_join_token_flags[];
extern const struct swc_flag_def swc_cli_leave_flags[];

#endif
