#include <stdio.h>
#include <string.h>

#include "colorize.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("colorize %s\n", COLORIZE_VERSION);
        return 0;
    }
    fprintf(stderr, "colorize: not yet usable; see README.md\n");
    return 2;
}
