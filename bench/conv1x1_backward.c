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
#include "onednn_timing.h"

static dnnl_memory_desc_t matrix(int64_t rows, int64_t cols, dnnl_data_type_t type,
                                 int64_t row_step, int64_t col_step)
{
    dnnl_memory_desc_t md;
    check(dnnl_memory_desc_init_by_strides(&md, 2, (dnnl_dims_t){rows, cols}, type,
                                           (dnnl_dims_t){row_step, col_step}), "matrix");
    return md;
}

int main(int argc, char **argv)
{
    int repeats = parse_repeats(argc, argv, "conv1x1_backward");
    start_onednn();
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
    stop_onednn();
    return 0;
}
