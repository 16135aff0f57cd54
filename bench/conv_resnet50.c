/* Forward + backward time of every distinct convolution shape of ResNet50
 * (Keras v1 layout: stride on the first 1x1 of a downsampling block) at
 * 224x224, batch 8, in fp32 and bf16.
 *
 * Driven by bench/conv_resnet50.py, which times PyTorch on the same shapes in
 * the same run. Protocol on stdin/stdout, one line each:
 *   "list"        -> one line per shape: name n ic oc h w k stride padding count
 *   "pass fp32"   -> one timed forward+backward per shape: "name seconds"...,
 *   "pass bf16"      then "end". The first pass of each precision warms up.
 * Running it with ONEDNN_VERBOSE=1 shows which oneDNN kernels ran.
 *
 *   conv_resnet50 [--channels-last]
 * With --channels-last the convolution's input, output and their gradients
 * are NHWC fp32 (cz_graph_config.channels_last_io), as they are between two
 * layers of a network; without, plain NCHW, which every call converts. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"

typedef struct {
    const char *name;
    int ic, oc, h, k, stride, padding;
    int count; /* how many times ResNet50 uses this shape */
} conv_shape;

#define BATCH 8

static const conv_shape shapes[] = {
    {"stem_7x7", 3, 64, 224, 7, 2, 3, 1},
    {"l1_1x1_64_64", 64, 64, 56, 1, 1, 0, 1},
    {"l1_3x3_64", 64, 64, 56, 3, 1, 1, 3},
    {"l1_1x1_64_256", 64, 256, 56, 1, 1, 0, 3},
    {"l1_short_64_256", 64, 256, 56, 1, 1, 0, 1},
    {"l1_1x1_256_64", 256, 64, 56, 1, 1, 0, 2},
    {"l2_1x1s2_256_128", 256, 128, 56, 1, 2, 0, 1},
    {"l2_3x3_128", 128, 128, 28, 3, 1, 1, 4},
    {"l2_1x1_128_512", 128, 512, 28, 1, 1, 0, 4},
    {"l2_short_s2_256_512", 256, 512, 56, 1, 2, 0, 1},
    {"l2_1x1_512_128", 512, 128, 28, 1, 1, 0, 3},
    {"l3_1x1s2_512_256", 512, 256, 28, 1, 2, 0, 1},
    {"l3_3x3_256", 256, 256, 14, 3, 1, 1, 6},
    {"l3_1x1_256_1024", 256, 1024, 14, 1, 1, 0, 6},
    {"l3_short_s2_512_1024", 512, 1024, 28, 1, 2, 0, 1},
    {"l3_1x1_1024_256", 1024, 256, 14, 1, 1, 0, 5},
    {"l4_1x1s2_1024_512", 1024, 512, 14, 1, 2, 0, 1},
    {"l4_3x3_512", 512, 512, 7, 3, 1, 1, 3},
    {"l4_1x1_512_2048", 512, 2048, 7, 1, 1, 0, 3},
    {"l4_short_s2_1024_2048", 1024, 2048, 14, 1, 2, 0, 1},
    {"l4_1x1_2048_512", 2048, 512, 7, 1, 1, 0, 2},
};
#define N_SHAPES (int)(sizeof shapes / sizeof *shapes)

typedef struct {
    cz_graph *g;
    cz_tensor *y;
} conv_bench;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int build(conv_bench *b, const conv_shape *s, cz_precision precision, bool channels_last)
{
    cz_graph_config cfg = {.training = true, .precision = precision, .seed = 1,
                           .channels_last_io = channels_last};
    b->g = cz_graph_create(&cfg);
    /* The stem's input is the image: no gradient wanted there. */
    bool input_grad = strcmp(s->name, "stem_7x7") != 0;
    cz_tensor *x = cz_graph_input(b->g, "x", BATCH, s->ic, s->h, s->h, input_grad);
    int64_t wshape[4] = {s->oc, s->ic, s->k, s->k}, bshape[1] = {s->oc};
    cz_tensor *w = cz_graph_param(b->g, "w", 4, wshape, CZ_INIT_NORMAL, 0.02f);
    cz_tensor *bias = cz_graph_param(b->g, "b", 1, bshape, CZ_INIT_ZEROS, 0);
    b->y = cz_conv2d(b->g, x, w, bias, s->stride, s->padding, 1);
    if (cz_graph_plan(b->g) != CZ_OK) {
        fprintf(stderr, "conv_resnet50: %s: %s\n", s->name, cz_last_error());
        return -1;
    }
    for (int64_t i = 0; i < cz_numel(x); i++)
        x->data[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;
    return 0;
}

/* Forward plus backward; seeding the output gradient is not timed (in a
 * network the layer above writes it). */
static double step(conv_bench *b)
{
    double t0 = now();
    cz_graph_forward(b->g);
    double forward = now() - t0;
    float *grad = b->y->grad;
    int64_t n = cz_numel(b->y);
    for (int64_t i = 0; i < n; i++)
        grad[i] = 1e-3f;
    t0 = now();
    cz_graph_backward(b->g);
    return forward + now() - t0;
}

int main(int argc, char **argv)
{
    bool channels_last = argc > 1 && strcmp(argv[1], "--channels-last") == 0;
    if (argc > 2 || (argc == 2 && !channels_last)) {
        fprintf(stderr, "usage: conv_resnet50 [--channels-last]\n");
        return 2;
    }
    conv_bench benches[2][N_SHAPES];
    memset(benches, 0, sizeof benches);
    char line[128];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "list", 4) == 0) {
            for (int i = 0; i < N_SHAPES; i++) {
                const conv_shape *s = &shapes[i];
                printf("%s %d %d %d %d %d %d %d %d %d\n", s->name, BATCH, s->ic, s->oc, s->h,
                       s->h, s->k, s->stride, s->padding, s->count);
            }
            printf("end\n");
        } else if (strncmp(line, "pass ", 5) == 0) {
            int p = strncmp(line + 5, "bf16", 4) == 0;
            for (int i = 0; i < N_SHAPES; i++) {
                conv_bench *b = &benches[p][i];
                if (!b->g && build(b, &shapes[i], p ? CZ_BF16 : CZ_FP32, channels_last) != 0)
                    return 1;
                printf("%s %.6f\n", shapes[i].name, step(b));
            }
            printf("end\n");
        } else {
            fprintf(stderr, "conv_resnet50: unknown command: %s", line);
            return 2;
        }
    }
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < N_SHAPES; i++)
            cz_graph_free(benches[p][i].g);
    return 0;
}
