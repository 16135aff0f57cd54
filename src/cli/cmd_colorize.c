/* Placeholder until the colourisation pipeline lands (issue 3). */
#include <stdio.h>

#include "cli/commands.h"

int cz_cmd_colorize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "colorize: colourising photos is not implemented yet\n");
    return 2;
}
