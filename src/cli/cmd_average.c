/* `colorize average`: one generator from several snapshots of a training
 * run, their weights averaged (src/models/average.c says why). */
#include <getopt.h>
#include <stdio.h>

#include "base/error.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "models/model.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: colorize average MODEL.safetensors... -o OUT.safetensors\n"
            "\n"
            "Averages the weights of snapshots of one model, such as the generators\n"
            "of a run's last epochs (`colorize train --epoch-generators`): the mean keeps\n"
            "the colours they agree on and damps the blotches each one has. The\n"
            "models must share architecture and spec; OUT gets the last one's\n"
            "metadata and records which files it averaged.\n"
            "\n"
            "  -o, --out FILE  the averaged model\n"
            "  -h, --help      show this help\n");
}

int cz_cmd_average(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!out)
        return cz_cli_usage_error("average", "-o OUT is required");
    if (optind == argc)
        return cz_cli_usage_error("average", "no models to average");
    int n = argc - optind;
    cz_model *mean = NULL;
    if (cz_model_average((const char *const *)(argv + optind), n, &mean) != CZ_OK ||
        cz_model_save(mean, out, NULL) != CZ_OK) {
        cz_cli_say("average", "%s", cz_last_error());
        cz_model_free(mean);
        return EXIT_FAILED;
    }
    printf("%s: %s, the mean of %d model%s\n", out, cz_model_spec_of(mean)->arch, n,
           n == 1 ? "" : "s");
    cz_model_free(mean);
    return EXIT_OK;
}
