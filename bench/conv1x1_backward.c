/* Why a bf16 1x1 convolution's backward runs as matmuls (src/ops/conv.c):
 * at each of ResNet50's stride-1 1x1 shapes (batch 8, bf16, channels-last),
 * oneDNN's backward convolution primitives against the two matmuls that
 * compute the same gradients,
 *     data:    dx[P, IC] = dy[P, OC] w[OC, IC]
 *     weights: dw[OC, IC] = dy^T[OC, P] x[P, IC]        (P = N*H*W),
 * primitives only (no conversion on either side), interleaved: each repeat
 * times all four once, in turn. Prints min/median milliseconds and the
 * ratios convolution / matmul (above 1: the matmul is faster).
 *
 *     make bench && OMP_NUM_THREADS=2 build/release/bench/conv1x1_backward [REPEATS]
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPEATS 64

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static void check(dnnl_status_t st, const char *what)
{
    if (st != dnnl_success) {
        fprintf(stderr, "conv1x1_backward: %s failed (oneDNN status %d)\n", what, (int)st);
        exit(1);
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static dnnl_memory_desc_t tagged(int64_t a, int64_t b, int64_t c, int64_t d, dnnl_data_type_t type,
                                 dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    check(dnnl_memory_desc_init_by_tag(&md, 4, (dnnl_dims_t){a, b, c, d}, type, tag), "descriptor");
    return md;
}

static dnnl_memory_desc_t matrix(int64_t rows, int64_t cols, dnnl_data_type_t type,
                                 int64_t row_step, int64_t col_step)
{
    dnnl_memory_desc_t md;
    check(dnnl_memory_desc_init_by_strides(&md, 2, (dnnl_dims_t){rows, cols}, type,
                                           (dnnl_dims_t){row_step, col_step}), "matrix");
    return md;
}

/* A primitive with its arguments, each in memory of its own filled with
 * small values, and its times. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_exec_arg_t args[3];
    double ms[MAX_REPEATS];
} timed;

static void make_timed(timed *t, dnnl_primitive_desc_t pd, const int kinds[3])
{
    check(dnnl_primitive_create(&t->prim, pd), "primitive");
    for (int i = 0; i < 3; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, kinds[i]);
        void *data = NULL;
        check(dnnl_memory_create(&t->args[i].memory, md, engine, DNNL_MEMORY_ALLOCATE), "memory");
        check(dnnl_memory_get_data_handle(t->args[i].memory, &data), "memory");
        memset(data, 0x3c, dnnl_memory_desc_get_size(md)); /* about 0.01 in bf16 and fp32 */
        t->args[i].arg = kinds[i];
    }
    dnnl_primitive_desc_destroy(pd);
}

static double run(timed *t)
{
    double start = now();
    check(dnnl_primitive_execute(t->prim, stream, 3, t->args), "execute");
    check(dnnl_stream_wait(stream), "wait");
    return 1e3 * (now() - start);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void free_timed(timed *t)
{
    dnnl_primitive_destroy(t->prim);
    for (int i = 0; i < 3; i++)
        dnnl_memory_destroy(t->args[i].memory);
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 7;
    if (repeats < 1 || repeats > MAX_REPEATS) {
        fprintf(stderr, "conv1x1_backward: REPEATS must be 1 to %d\n", MAX_REPEATS);
        return 2;
    }
    check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine");
    check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags), "stream");
    /* n, side, in channels, out channels: ResNet50's stride-1 1x1 convolutions. */
    static const int shapes[][4] = {{8, 56, 64, 64},   {8, 56, 64, 256},   {8, 56, 256, 64},
                                    {8, 28, 128, 512}, {8, 28, 512, 128},  {8, 14, 256, 1024},
                                    {8, 14, 1024, 256}, {8, 7, 512, 2048}, {8, 7, 2048, 512}};
    const int n_shapes = (int)(sizeof shapes / sizeof *shapes);
    const dnnl_version_t *v = dnnl_version();
    printf("bf16 1x1 convolution backward, oneDNN %d.%d.%d, channels-last, batch 8, %d repeats "
           "after a warm-up; ms min / median\n", v->major, v->minor, v->patch, repeats);
    printf("%-20s %15s %15s %15s %15s %8s %8s\n", "shape", "conv data", "matmul data", "conv weights",
           "matmul weights", "data", "weights");
    double total[4] = {0};
    for (int s = 0; s < n_shapes; s++) {
        int64_t n = shapes[s][0], side = shapes[s][1], ic = shapes[s][2], oc = shapes[s][3];
        int64_t pixels = n * side * side;
        dnnl_memory_desc_t x = tagged(n, ic, side, side, dnnl_bf16, dnnl_nhwc);
        dnnl_memory_desc_t dx = tagged(n, ic, side, side, dnnl_f32, dnnl_nhwc);
        dnnl_memory_desc_t dy = tagged(n, oc, side, side, dnnl_bf16, dnnl_nhwc);
        dnnl_memory_desc_t w = tagged(oc, ic, 1, 1, dnnl_bf16, dnnl_format_tag_any);
        dnnl_memory_desc_t dw = tagged(oc, ic, 1, 1, dnnl_f32, dnnl_format_tag_any);
        dnnl_dims_t one = {1, 1}, zero = {0, 0};
        dnnl_convolution_desc_t fwd_d, data_d, weights_d;
        dnnl_primitive_desc_t hint, pd;
        check(dnnl_convolution_forward_desc_init(&fwd_d, dnnl_forward_training, dnnl_convolution_direct,
                                                 &x, &w, NULL, &dy, one, zero, zero), "forward");
        check(dnnl_primitive_desc_create(&hint, &fwd_d, NULL, engine, NULL), "forward");
        timed t[4]; /* conv data, matmul data, conv weights, matmul weights */
        check(dnnl_convolution_backward_data_desc_init(&data_d, dnnl_convolution_direct, &dx, &w, &dy,
                                                       one, zero, zero), "backward data");
        check(dnnl_primitive_desc_create(&pd, &data_d, NULL, engine, hint), "backward data");
        make_timed(&t[0], pd, (int[]){DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC});
        check(dnnl_convolution_backward_weights_desc_init(&weights_d, dnnl_convolution_direct, &x, &dw,
                                                          NULL, &dy, one, zero, zero), "backward weights");
        check(dnnl_primitive_desc_create(&pd, &weights_d, NULL, engine, hint), "backward weights");
        make_timed(&t[2], pd, (int[]){DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS});
        dnnl_primitive_desc_destroy(hint);
        dnnl_matmul_desc_t mm;
        dnnl_memory_desc_t a = matrix(pixels, oc, dnnl_bf16, oc, 1), b = matrix(oc, ic, dnnl_bf16, ic, 1);
        dnnl_memory_desc_t c = matrix(pixels, ic, dnnl_f32, ic, 1);
        check(dnnl_matmul_desc_init(&mm, &a, &b, NULL, &c), "matmul data");
        check(dnnl_primitive_desc_create(&pd, &mm, NULL, engine, NULL), "matmul data");
        make_timed(&t[1], pd, (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
        a = matrix(oc, pixels, dnnl_bf16, 1, oc); /* dy^T */
        b = matrix(pixels, ic, dnnl_bf16, ic, 1);
        c = matrix(oc, ic, dnnl_f32, ic, 1);
        check(dnnl_matmul_desc_init(&mm, &a, &b, NULL, &c), "matmul weights");
        check(dnnl_primitive_desc_create(&pd, &mm, NULL, engine, NULL), "matmul weights");
        make_timed(&t[3], pd, (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
        for (int k = 0; k < 4; k++)
            run(&t[k]); /* warm-up */
        for (int r = 0; r < repeats; r++)
            for (int k = 0; k < 4; k++)
                t[k].ms[r] = run(&t[k]);
        double lo[4], mid[4];
        for (int k = 0; k < 4; k++) {
            mid[k] = median(t[k].ms, repeats);
            lo[k] = t[k].ms[0]; /* sorted by median() */
            total[k] += mid[k];
            free_timed(&t[k]);
        }
        char name[96];
        snprintf(name, sizeof name, "%lldx%lld %lld->%lld", (long long)side, (long long)side,
                 (long long)ic, (long long)oc);
        printf("%-20s %6.2f / %6.2f %6.2f / %6.2f %6.2f / %6.2f %6.2f / %6.2f %8.2f %8.2f\n", name,
               lo[0], mid[0], lo[1], mid[1], lo[2], mid[2], lo[3], mid[3], mid[0] / mid[1],
               mid[2] / mid[3]);
    }
    printf("%-20s %15.1f %15.1f %15.1f %15.1f %8.2f %8.2f\n", "sum of medians", total[0], total[1],
           total[2], total[3], total[0] / total[1], total[2] / total[3]);
    printf("ratios: convolution / matmul, on medians (baseline: oneDNN's backward convolution)\n");
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}
