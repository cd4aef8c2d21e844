/* swarmc: the one executable. main() only wires: it picks the subcommand
 * from the table in cli.c and runs it. */
#include "base/log.h"
#include "cli.h"

int main(int argc, char **argv)
{
    swc_log_init();
    return swc_cli_main(argc, argv);
}
