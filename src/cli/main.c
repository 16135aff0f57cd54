/* colorize: dispatches to a subcommand; with none named, colours photos. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "colorize.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"colorize", cz_cmd_colorize, "colour photos (the default: `colorize IN... -d DIR`)"},
    {"train", cz_cmd_train, "train a generator and a discriminator on a folder of photos"},
    {"eval", cz_cmd_eval, "measure colourised photos against the originals"},
    {"grid", cz_cmd_grid, "a comparison picture: input | each model | truth, a row a photo"},
    {"turing", cz_cmd_turing, "the colourisation Turing test: serve it, report fool rates"},
    {"classify", cz_cmd_classify, "ImageNet top-5 of photos with a resnet50 model (--eval DIR)"},
    {"info", cz_cmd_info, "architecture, parameters and metadata of model files"},
    {"average", cz_cmd_average, "one model from several snapshots of a run, weights averaged"},
    {"pack", cz_cmd_pack, "a trained generator as the compact file that ships"},
    {"unpack", cz_cmd_unpack, "a packed generator made whole again (encoder restored)"},
    {"import-keras-resnet50", cz_cmd_import_keras, "convert Keras's ImageNet ResNet50 (TF.js)"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof *commands)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: colorize IN... (-o OUT | -d DIR) [options]   colour photos\n"
            "       colorize COMMAND [options]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`colorize COMMAND --help` describes each; `colorize --help` the default.\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("colorize %s\n", COLORIZE_VERSION);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; argc > 1 && i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    return cz_cmd_colorize(argc, argv);
}
