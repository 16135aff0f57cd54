/* Why a bf16 convolution's input gradient runs as forward convolutions
 * (src/ops/conv_phases.c): at the PatchGAN's, the unet encoder's and the
 * resnet50-unet decoder's shapes (batch 8, bf16, channels-last, fp32
 * gradient), oneDNN's backward-data primitive (the baseline) against the
 * stride^2 forward convolutions of dy with the flipped, transposed kernel
 * that compute the same gradient, one per phase of the stride, each (at
 * stride 2) then spreading its pixels into x's gradient.
 * Writing the kernels from the weights is not timed: it costs per weight,
 * not per pixel, which is why conv_phases.c keeps to shapes with many
 * output pixels. Interleaved: each repeat times both once, in turn. Prints
 * min/median milliseconds and the ratio backward-data / phases on medians
 * (above 1: the phases are faster).
 *
 *     make bench && OMP_NUM_THREADS=2 build/release/bench/conv_backward_data [REPEATS]
 */
#include "onednn_timing.h"

#define MAX_PHASES 4

/* One phase's pixels [N, M_h, M_w, C] into their places in dx [N, H, W, C],
 * written, as conv_phases.c does. */
static void spread(timed *phase, int stride, int rh, int rw, int64_t n, int64_t c, int64_t h,
                   int64_t w, float *dx)
{
    const float *part;
    check(dnnl_memory_get_data_handle(phase->args[2].memory, (void **)&part), "memory");
    int64_t mh = (h - rh + stride - 1) / stride, mw = (w - rw + stride - 1) / stride;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t row = 0; row < mh; row++)
            for (int64_t col = 0; col < mw; col++)
                memcpy(dx + ((i * h + row * stride + rh) * w + col * stride + rw) * c,
                       part + ((i * mh + row) * mw + col) * c, (size_t)c * sizeof *dx);
}

int main(int argc, char **argv)
{
    int repeats = parse_repeats(argc, argv, "conv_backward_data");
    start_onednn();
    /* in channels, out channels, input side, kernel, stride, padding */
    static const int shapes[][6] = {
        {64, 128, 112, 4, 2, 1}, {128, 256, 56, 4, 2, 1}, {256, 512, 28, 4, 1, 1}, /* PatchGAN, 224 */
        {64, 128, 128, 4, 2, 1}, {128, 256, 64, 4, 2, 1}, {256, 512, 32, 4, 2, 1},  /* unet, 256 */
        {512, 512, 16, 4, 2, 1},
        {32, 2, 224, 3, 1, 1},   {128, 32, 112, 3, 1, 1}, {384, 64, 56, 3, 1, 1},   /* resnet50-unet */
        {64, 64, 56, 3, 1, 1},   {768, 128, 28, 3, 1, 1}, {2048, 512, 7, 3, 1, 1}};
    const int n_shapes = (int)(sizeof shapes / sizeof *shapes);
    const int64_t n = 8;
    const dnnl_version_t *v = dnnl_version();
    printf("bf16 convolution input gradient, oneDNN %d.%d.%d, channels-last, batch 8, %d repeats "
           "after a warm-up; ms min / median\n", v->major, v->minor, v->patch, repeats);
    printf("%-28s %15s %15s %8s\n", "shape", "backward data", "phases", "ratio");
    for (int s = 0; s < n_shapes; s++) {
        int64_t ic = shapes[s][0], oc = shapes[s][1], side = shapes[s][2], k = shapes[s][3];
        int stride = shapes[s][4], pad = shapes[s][5];
        int64_t out = (side + 2 * pad - k) / stride + 1, pad_r = (out - 1) * stride + k - side - pad;
        dnnl_memory_desc_t x = tagged(n, ic, side, side, dnnl_bf16, dnnl_nhwc);
        dnnl_memory_desc_t dx = tagged(n, ic, side, side, dnnl_f32, dnnl_nhwc);
        dnnl_memory_desc_t dy = tagged(n, oc, out, out, dnnl_bf16, dnnl_nhwc);
        dnnl_memory_desc_t w = tagged(oc, ic, k, k, dnnl_bf16, dnnl_format_tag_any);
        dnnl_convolution_desc_t d;
        dnnl_primitive_desc_t hint, pd;
        dnnl_dims_t strides = {stride, stride}, pads_l = {pad, pad}, pads_r = {pad_r, pad_r};
        check(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct,
                                                 &x, &w, NULL, &dy, strides, pads_l, pads_r), "forward");
        check(dnnl_primitive_desc_create(&hint, &d, NULL, engine, NULL), "forward");
        timed data;
        check(dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &dx, &w, &dy, strides,
                                                       pads_l, pads_r), "backward data");
        check(dnnl_primitive_desc_create(&pd, &d, NULL, engine, hint), "backward data");
        make_timed(&data, pd, (int[]){DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC});
        dnnl_primitive_desc_destroy(hint);
        /* The phases' geometry, as conv_phases.c works it out, per dimension. */
        timed phases[MAX_PHASES];
        for (int r = 0; r < stride * stride; r++) {
            int64_t taps[2], size[2];
            dnnl_dims_t pl, pr;
            for (int dim = 0; dim < 2; dim++) {
                int64_t q = (dim == 0 ? r / stride : r % stride) + pad, first = q % stride;
                taps[dim] = (k - first + stride - 1) / stride;
                size[dim] = (side - q + pad + stride - 1) / stride;
                pl[dim] = taps[dim] - 1 - q / stride;
                pr[dim] = (size[dim] - 1) + (taps[dim] - 1) - pl[dim] - (out - 1);
            }
            dnnl_memory_desc_t part = tagged(n, ic, size[0], size[1], dnnl_f32, dnnl_nhwc);
            dnnl_memory_desc_t kernel = tagged(ic, oc, taps[0], taps[1], dnnl_bf16, dnnl_format_tag_any);
            check(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, &dy,
                                                     &kernel, NULL, stride == 1 ? &dx : &part,
                                                     (dnnl_dims_t){1, 1}, pl, pr), "phase");
            check(dnnl_primitive_desc_create(&pd, &d, NULL, engine, NULL), "phase");
            make_timed(&phases[r], pd, (int[]){DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST});
        }
        float *grad = malloc((size_t)(n * ic * side * side) * sizeof *grad);
        if (!grad) {
            fprintf(stderr, "conv_backward_data: out of memory\n");
            return 1;
        }
        double ms[2][MAX_REPEATS];
        for (int r = -1; r < repeats; r++) { /* r = -1: the warm-up */
            double t = run(&data);
            double start = now();
            for (int p = 0; p < stride * stride; p++) {
                execute(&phases[p]);
                if (stride > 1)
                    spread(&phases[p], stride, p / stride, p % stride, n, ic, side, side, grad);
            }
            if (r >= 0) {
                ms[0][r] = t;
                ms[1][r] = 1e3 * (now() - start);
            }
        }
        double mid[2] = {median(ms[0], repeats), median(ms[1], repeats)};
        char name[96];
        snprintf(name, sizeof name, "%lldx%lld %lld->%lld k%lld s%d", (long long)side, (long long)side,
                 (long long)ic, (long long)oc, (long long)k, stride);
        printf("%-28s %6.2f / %6.2f %6.2f / %6.2f %8.2f\n", name, ms[0][0], mid[0], ms[1][0], mid[1],
               mid[0] / mid[1]);
        free(grad);
        free_timed(&data);
        for (int p = 0; p < stride * stride; p++)
            free_timed(&phases[p]);
    }
    printf("ratio: backward data / phases, on medians (baseline: oneDNN's backward-data primitive)\n");
    stop_onednn();
    return 0;
}
