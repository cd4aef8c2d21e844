/* swarmc: the one executable. main() only wires: it picks the subcommand
 * from the table in cli.c and runs it. */
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("swarmc\n");
    return 0;
}
