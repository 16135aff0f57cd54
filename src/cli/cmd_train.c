/* colorize train: options in, cz_train out. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "cli/commands.h"
#include "train/train.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: colorize train DATA_DIR -o OUT_DIR [options]\n"
            "\n"
            "Trains a generator and a discriminator as in pix2pix and the paper, on the\n"
            "colour photos under DATA_DIR (JPEG/PNG, recursively). OUT_DIR receives\n"
            "checkpoints/, log.csv, losses.png, samples/ and generator.safetensors.\n"
            "\n"
            "networks:\n"
            "  -g, --generator ARCH      unet | resnet50-paper | resnet50-unet | resnet50-unet-bins (default unet)\n"
            "  -D, --discriminator ARCH  patchgan | sigmoid (default patchgan)\n"
            "      --width N             base channels of unet/patchgan (default 64)\n"
            "      --encoder FILE        ImageNet ResNet50 weights (default cache/resnet50/resnet50-keras-imagenet.safetensors)\n"
            "      --train-encoder       fine-tune the ResNet50 encoder (default: frozen, as the paper)\n"
            "      --init-generator FILE start the generator's tensors that FILE (a generator model) has,\n"
            "                            by name and shape, from it: resnet50-unet-bins from a resnet50-unet\n"
            "data:\n"
            "      --val DIR             validation photos: L1, colourfulness and a sample grid each epoch\n"
            "      --size N              training crop, a multiple of 32 (default 256 unet, 224 ResNet)\n"
            "      --source-weight S=W   sampling weight of the files named S__* (repeatable)\n"
            "      --workers N           decoding threads (default 2)\n"
            "optimisation:\n"
            "  -b, --batch N             batch size (default 32, as the paper)\n"
            "  -e, --epochs N            epochs (default 100)\n"
            "      --steps N             stop after N steps instead\n"
            "      --lr X                Adam learning rate (default 2e-4)\n"
            "      --beta1 X, --beta2 X  Adam moment rates (default 0.5, 0.999)\n"
            "      --lambda X            weight of the L1 term, or of resnet50-unet-bins's\n"
            "                            cross-entropy (default 100)\n"
            "      --decay-epochs N      linear learning-rate decay to 0 over the last N epochs\n"
            "      --label-smoothing X   real labels X (one-sided smoothing, e.g. 0.9)\n"
            "      --noisy-labels        the paper's noisy labels: real in [0.7,1.0], fake in [0,0.3]\n"
            "      --diffaugment         D sees every input shifted and partly cut out (DiffAugment),\n"
            "                            against D memorising a small training set\n"
            "      --bf16                bf16 convolutions on fp32 master weights\n"
            "      --seed N              seed of everything random (default 1)\n"
            "run:\n"
            "      --checkpoint-minutes X  checkpoint interval (default 10; also on SIGINT/SIGTERM)\n"
            "      --keep N              checkpoints kept (default 3)\n"
            "      --resume              continue from the newest checkpoint in OUT_DIR (same options;\n"
            "                            -e, --steps, --decay-epochs may change until the rate decays)\n"
            "      --stop-at-epoch N     stop (checkpointed; --resume continues) once N epochs are done\n"
            "      --epoch-generators    also keep each epoch's generator, generator-epoch-N.safetensors\n"
            "                            (for `colorize average`)\n"
            "  -q, --quiet               no progress line\n"
            "  -h, --help\n");
}

static bool parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, float *out)
{
    char *end;
    float v = strtof(s, &end);
    if (!*s || *end || !(v == v))
        return false;
    *out = v;
    return true;
}

int cz_cmd_train(int argc, char **argv)
{
    enum { O_WIDTH = 256, O_ENCODER, O_TRAIN_ENCODER, O_VAL, O_SIZE, O_SOURCE, O_WORKERS, O_STEPS,
           O_LR, O_BETA1, O_BETA2, O_LAMBDA, O_DECAY, O_SMOOTH, O_NOISY, O_BF16, O_SEED,
           O_CKPT, O_KEEP, O_RESUME, O_STOP_AFTER, O_STOP_AT_EPOCH,
           O_EPOCH_GENERATORS, O_DIFFAUGMENT, O_INIT_GENERATOR };
    static const struct option longopts[] = {
        {"generator", required_argument, 0, 'g'}, {"discriminator", required_argument, 0, 'D'},
        {"width", required_argument, 0, O_WIDTH}, {"encoder", required_argument, 0, O_ENCODER},
        {"train-encoder", no_argument, 0, O_TRAIN_ENCODER}, {"val", required_argument, 0, O_VAL},
        {"init-generator", required_argument, 0, O_INIT_GENERATOR},
        {"size", required_argument, 0, O_SIZE}, {"source-weight", required_argument, 0, O_SOURCE},
        {"workers", required_argument, 0, O_WORKERS}, {"batch", required_argument, 0, 'b'},
        {"epochs", required_argument, 0, 'e'}, {"steps", required_argument, 0, O_STEPS},
        {"lr", required_argument, 0, O_LR}, {"beta1", required_argument, 0, O_BETA1},
        {"beta2", required_argument, 0, O_BETA2}, {"lambda", required_argument, 0, O_LAMBDA},
        {"decay-epochs", required_argument, 0, O_DECAY},
        {"label-smoothing", required_argument, 0, O_SMOOTH}, {"noisy-labels", no_argument, 0, O_NOISY},
        {"diffaugment", no_argument, 0, O_DIFFAUGMENT},
        {"bf16", no_argument, 0, O_BF16}, {"seed", required_argument, 0, O_SEED},
        {"checkpoint-minutes", required_argument, 0, O_CKPT}, {"keep", required_argument, 0, O_KEEP},
        {"resume", no_argument, 0, O_RESUME}, {"stop-after", required_argument, 0, O_STOP_AFTER},
        {"stop-at-epoch", required_argument, 0, O_STOP_AT_EPOCH},
        {"epoch-generators", no_argument, 0, O_EPOCH_GENERATORS},
        {"output", required_argument, 0, 'o'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    cz_train_options o;
    cz_train_defaults(&o);
    o.encoder = "cache/resnet50/resnet50-keras-imagenet.safetensors";
    o.generator.freeze_encoder = true; /* the paper's feature extractor */
    int width = 64;
    long long v = 0;
    float f = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "g:D:b:e:o:qh", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'g': ok = strlen(optarg) < sizeof o.generator.arch; if (ok) strcpy(o.generator.arch, optarg); break;
        case 'D': ok = strlen(optarg) < sizeof o.discriminator.arch; if (ok) strcpy(o.discriminator.arch, optarg); break;
        case O_WIDTH: ok = parse_int(optarg, 1, 1024, &v); width = (int)v; break;
        case O_ENCODER: o.encoder = optarg; break;
        case O_TRAIN_ENCODER: o.generator.freeze_encoder = false; break;
        case O_INIT_GENERATOR: o.init_generator = optarg; break;
        case O_VAL: o.val_dir = optarg; break;
        case O_SIZE: ok = parse_int(optarg, 32, 4096, &v) && v % 32 == 0; o.size = (int)v; break;
        case O_SOURCE:
            ok = o.n_source_weights < CZ_MAX_SOURCE_WEIGHTS;
            if (ok)
                o.source_weights[o.n_source_weights++] = optarg;
            break;
        case O_WORKERS: ok = parse_int(optarg, 1, 64, &v); o.workers = (int)v; break;
        case 'b': ok = parse_int(optarg, 1, 4096, &v); o.batch = (int)v; break;
        case 'e': ok = parse_int(optarg, 1, 1000000, &v); o.epochs = (int)v; break;
        case O_STEPS: ok = parse_int(optarg, 1, (long long)1 << 40, &v); o.steps = v; break;
        case O_LR: ok = parse_float(optarg, &o.lr) && o.lr > 0; break;
        case O_BETA1: ok = parse_float(optarg, &o.beta1) && o.beta1 >= 0 && o.beta1 < 1; break;
        case O_BETA2: ok = parse_float(optarg, &o.beta2) && o.beta2 >= 0 && o.beta2 < 1; break;
        case O_LAMBDA: ok = parse_float(optarg, &o.lambda_l1) && o.lambda_l1 >= 0; break;
        case O_DECAY: ok = parse_int(optarg, 0, 1000000, &v); o.decay_epochs = (int)v; break;
        case O_SMOOTH: ok = parse_float(optarg, &f) && f > 0 && f <= 1; o.real_lo = o.real_hi = f; break;
        case O_NOISY: o.real_lo = 0.7f, o.real_hi = 1.0f, o.fake_lo = 0.0f, o.fake_hi = 0.3f; break;
        case O_DIFFAUGMENT: o.diffaugment = true; break;
        case O_BF16: o.precision = CZ_BF16; break;
        case O_SEED: ok = parse_int(optarg, 0, (long long)1 << 62, &v); o.seed = (uint64_t)v; break;
        case O_CKPT: ok = parse_float(optarg, &f) && f >= 0; o.checkpoint_minutes = f; break;
        case O_KEEP: ok = parse_int(optarg, 1, 1000, &v); o.keep_checkpoints = (int)v; break;
        case O_RESUME: o.resume = true; break;
        case O_STOP_AFTER: ok = parse_int(optarg, 1, (long long)1 << 40, &v); o.stop_after_steps = v; break;
        case O_STOP_AT_EPOCH: ok = parse_int(optarg, 1, 1000000, &v); o.stop_at_epoch = (int)v; break;
        case O_EPOCH_GENERATORS: o.epoch_generators = true; break;
        case 'o': o.out_dir = optarg; break;
        case 'q': o.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) {
            const char *name = "?";
            for (const struct option *lo = longopts; lo->name; lo++)
                if (lo->val == c)
                    name = lo->name;
            fprintf(stderr, "colorize train: bad value for --%s: '%s'\n", name, optarg);
            return 2;
        }
    }
    if (optind != argc - 1 || !o.out_dir) {
        fprintf(stderr, "colorize train: give one DATA_DIR and -o OUT_DIR (see --help)\n");
        return 2;
    }
    o.train_dir = argv[optind];
    o.generator.width = o.discriminator.width = width;
    cz_status st = cz_train(&o);
    if (st != CZ_OK) {
        fprintf(stderr, "colorize train: %s\n", cz_last_error());
        return st == CZ_ERR_INVALID ? 2 : 1;
    }
    return 0;
}
