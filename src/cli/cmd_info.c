/* `colorize info MODEL...`: what a model file holds: its architecture and
 * hyper-parameters, parameter count, the size it was trained for, and its
 * metadata; --tensors lists every tensor. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "models/model.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out, "usage: colorize info [--tensors] MODEL.safetensors...\n");
}

/* 1234567 -> "1,234,567" */
static const char *grouped(long v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%ld", v), at = 0;
    for (int i = 0; i < n && at + 2 < (int)size; i++) {
        if (i > 0 && digits[i - 1] != '-' && (n - i) % 3 == 0)
            buf[at++] = ',';
        buf[at++] = digits[i];
    }
    buf[at] = '\0';
    return buf;
}

static void describe(const char *path, const cz_model *m, bool tensors)
{
    const cz_model_spec *s = cz_model_spec_of(m);
    cz_model_kind kind = cz_model_kind_of(s->arch);
    char buf[32];
    printf("%s\n", path);
    printf("  architecture  %s\n", s->arch);
    printf("                %s\n", cz_model_arch_summary(s->arch));
    if (kind != CZ_MODEL_CLASSIFIER)
        printf("  width         %d\n", s->width);
    if (cz_model_has_encoder(s->arch))
        printf("  encoder       ResNet50, %s layout, width %d%s\n", s->encoder_layout,
               s->encoder_width,
               kind == CZ_MODEL_GENERATOR ? (s->freeze_encoder ? ", frozen" : ", trained") : "");
    if (kind == CZ_MODEL_CLASSIFIER)
        printf("  classes       %d\n", s->classes);
    if (strcmp(s->arch, "unet") == 0)
        printf("  dropout       %s\n", s->no_dropout ? "none" : "0.5 in 3 inner up levels");
    printf("  trained at    %d x %d\n", s->size, s->size);
    if (cz_model_metadata(m, CZ_PACKED_DIGEST_KEY))
        printf("  packed        the ImageNet encoder is left out: `colorize unpack` restores it\n");
    long trainable = 0, frozen = 0, stats = 0;
    for (int i = 0; i < cz_model_n_tensors(m); i++) {
        const cz_model_tensor *t = cz_model_tensor_at(m, i);
        long n = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= (long)t->shape[d];
        if (t->buffer)
            stats += n;
        else if (s->freeze_encoder && strncmp(t->name, "encoder.", 8) == 0)
            frozen += n;
        else
            trainable += n;
    }
    printf("  parameters    %s", grouped(trainable + frozen, buf, sizeof buf));
    if (frozen)
        printf(" (%s trained, ", grouped(trainable, buf, sizeof buf)),
            printf("%s frozen)", grouped(frozen, buf, sizeof buf));
    printf(", and %s BatchNorm statistics\n", grouped(stats, buf, sizeof buf));
    printf("  tensors       %d\n", cz_model_n_tensors(m));
    printf("  metadata\n");
    for (int i = 0; i < cz_model_n_metadata(m); i++) {
        const char *k, *v;
        cz_model_metadata_at(m, i, &k, &v);
        printf("    %-20s %s\n", k, v);
    }
    if (tensors)
        for (int i = 0; i < cz_model_n_tensors(m); i++) {
            const cz_model_tensor *t = cz_model_tensor_at(m, i);
            printf("    %-48s [", t->name);
            for (int d = 0; d < t->ndim; d++)
                printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
            printf("]%s\n", t->buffer ? " (statistic)" : "");
        }
}

int cz_cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tensors", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool tensors = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "th", longopts, NULL)) != -1) {
        switch (opt) {
        case 't': tensors = true; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    int status = EXIT_OK;
    for (int i = optind; i < argc; i++) {
        cz_model *m = NULL;
        /* Packed files too: what they hold is worth seeing before unpacking. */
        if (cz_model_load_part(argv[i], &m) != CZ_OK) {
            fprintf(stderr, "colorize info: %s\n", cz_last_error());
            status = EXIT_FAILED;
            continue;
        }
        describe(argv[i], m, tensors);
        cz_model_free(m);
    }
    return status;
}
