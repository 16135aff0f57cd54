/* `colorize pack` and `colorize unpack`: a trained generator to the compact
 * file that ships in the repository, and back (models/model.h, pack.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "models/model.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

#define DEFAULT_ENCODER "cache/resnet50/resnet50-keras-imagenet.safetensors"
#define MAX_META 32

static void pack_usage(FILE *out)
{
    fprintf(out,
            "usage: colorize pack GENERATOR.safetensors -o PACKED.safetensors [options]\n"
            "\n"
            "Writes a trained generator compactly: weights in bfloat16, and a ResNet\n"
            "generator's frozen ImageNet encoder left out (it must equal --encoder\n"
            "exactly; `colorize unpack` puts it back and checks it).\n"
            "\n"
            "  -o, --out FILE        the packed model file\n"
            "      --encoder FILE    the ImageNet ResNet50 the encoder came from\n"
            "                        (default " DEFAULT_ENCODER ")\n"
            "      --meta KEY=VALUE  metadata to record, such as how it was trained\n"
            "                        (repeatable)\n"
            "  -h, --help            show this help\n");
}

static void unpack_usage(FILE *out)
{
    fprintf(out,
            "usage: colorize unpack PACKED.safetensors -o GENERATOR.safetensors [--encoder FILE]\n"
            "\n"
            "Rebuilds a whole generator from a packed file, its encoder from the\n"
            "ImageNet ResNet50 weights (checked against the digest the file records).\n"
            "\n"
            "  -o, --out FILE      the generator, for `colorize --model`\n"
            "      --encoder FILE  the ImageNet ResNet50 (default " DEFAULT_ENCODER ")\n"
            "  -h, --help          show this help\n");
}

int cz_cmd_pack(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"encoder", required_argument, NULL, 'e'},
        {"meta", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *encoder = DEFAULT_ENCODER;
    char meta_buf[MAX_META][512];
    const char *meta[2 * MAX_META + 1] = {NULL};
    int n_meta = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 'e': encoder = optarg; break;
        case 'm': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || n_meta == MAX_META || strlen(optarg) >= sizeof meta_buf[0]) {
                fprintf(stderr, "colorize pack: --meta %s: expected KEY=VALUE (at most %d, "
                                "each under %zu characters)\n",
                        optarg, MAX_META, sizeof meta_buf[0]);
                return EXIT_USAGE;
            }
            strcpy(meta_buf[n_meta], optarg);
            meta_buf[n_meta][eq - optarg] = '\0';
            meta[2 * n_meta] = meta_buf[n_meta];
            meta[2 * n_meta + 1] = meta_buf[n_meta] + (eq - optarg) + 1;
            n_meta++;
            break;
        }
        case 'h': pack_usage(stdout); return EXIT_OK;
        default: pack_usage(stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || !out) {
        pack_usage(stderr);
        return EXIT_USAGE;
    }
    const char *in = argv[optind];
    cz_model *gen = NULL;
    if (cz_model_load(in, &gen) != CZ_OK || cz_model_pack(gen, encoder, out, meta) != CZ_OK) {
        fprintf(stderr, "colorize pack: %s\n", cz_last_error());
        cz_model_free(gen);
        return EXIT_FAILED;
    }
    const char *arch = cz_model_spec_of(gen)->arch;
    printf("%s: %s, %ld parameters%s\n", out, arch, cz_model_param_count(gen),
           cz_model_has_encoder(arch) ? ", without its ImageNet encoder" : "");
    cz_model_free(gen);
    return EXIT_OK;
}

int cz_cmd_unpack(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"encoder", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *encoder = DEFAULT_ENCODER;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 'e': encoder = optarg; break;
        case 'h': unpack_usage(stdout); return EXIT_OK;
        default: unpack_usage(stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || !out) {
        unpack_usage(stderr);
        return EXIT_USAGE;
    }
    cz_model *gen = NULL;
    if (cz_model_unpack(argv[optind], encoder, &gen) != CZ_OK ||
        cz_model_save(gen, out, NULL) != CZ_OK) {
        fprintf(stderr, "colorize unpack: %s\n", cz_last_error());
        cz_model_free(gen);
        return EXIT_FAILED;
    }
    printf("%s: %s, %ld parameters\n", out, cz_model_spec_of(gen)->arch,
           cz_model_param_count(gen));
    cz_model_free(gen);
    return EXIT_OK;
}
