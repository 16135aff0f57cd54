/* batch_norm2d on oneDNN, and a bf16 backward of our own.
 *
 * Data is fp32, plain or channels-last, or in bf16 graphs bf16
 * channels-last (normalisation statistics are always fp32), which the
 * primitives read and write in place (an output stored otherwise than the
 * input is converted; bf16 data's backward is ours, bf16_backward below,
 * or else widened to fp32 for oneDNN's); the
 * per-channel statistics, scale and shift are 1-D [C] memories over our own
 * buffers. Two ways to normalise:
 *   - batch statistics (a training graph): oneDNN computes the batch mean and
 *     biased variance into scratch memory, and forward then folds them into
 *     the running buffers itself, with PyTorch's unbiased variance;
 *   - running statistics (an inference graph, or a frozen weight in any
 *     graph): oneDNN's use_global_stats reads the running buffers in place and
 *     nothing is updated. Backward then treats the statistics as constants.
 * Backward is one primitive computing dx, dweight and dbias together; only
 * the gradients wanted at this step are added into our tensors (a GAN freezes
 * the whole discriminator and asks only for dx). oneDNN 2.6 has no data-only
 * backward with scale and shift, and the parameter gradients cost only two
 * per-channel sums that dx needs anyway; without an affine pair the
 * data-only kind is used.
 *
 * cz_batch_norm2d_relu is the same op with a ReLU after it, in the same
 * primitive (oneDNN's fuse_norm_relu): forward writes relu(y) and, in
 * training, a bit mask of where y > 0 (the workspace), which backward
 * applies to the output gradient. That saves the ReLU's own pass over the
 * tensor forward and its pass backward, and the tensor between the two. */
#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "engine/onednn.h"
#include "io/half.h"
#include "ops/ops.h"

/* Node inputs, in this order; the affine pair is absent with affine=False. */
enum { BN_X, BN_RUNNING_MEAN, BN_RUNNING_VAR, BN_WEIGHT, BN_BIAS };

typedef struct {
    float momentum; /* running = (1 - momentum) * running + momentum * batch */
    float eps;      /* added to the variance before the square root */
    bool affine;
    bool running_stats; /* normalise with the running statistics */
    bool relu;          /* then a ReLU (fuse_norm_relu) */
    int64_t count;      /* values per channel, N * H * W */

    dnnl_primitive_desc_t fwd_pd, bwd_pd;
    dnnl_primitive_desc_t fp32_fwd_pd; /* bf16 values: backward's hint (never run) */
    cz_primitive fwd, bwd;
    cz_mirror src, dst, mean, variance, scale, shift;
    cz_mirror bwd_src; /* bf16 values: backward's input, widened to fp32 */
    cz_mirror diff_dst, diff_src, diff_scale, diff_shift;
    cz_mirror workspace; /* relu in a training graph: forward's mask for backward */
    const float *batch_mean, *batch_var; /* scratch, when using batch statistics */
    /* bf16 values, a channels-last output and batch statistics: backward
     * is ours (bf16_backward); per channel, 1/sigma, gamma/sigma and the
     * sums of g and g * xhat. NULL otherwise. */
    float *per_channel;
    float *chunk_sums; /* scratch: each chunk's sums of g and g * xhat, [chunks][2][C] */
} bn_state;

static void bn_destroy(void *p)
{
    bn_state *s = p;
    if (!s)
        return;
    cz_mirror *mirrors[] = {&s->src,      &s->dst,      &s->mean,       &s->variance,
                            &s->scale,    &s->shift,    &s->diff_dst,   &s->diff_src,
                            &s->diff_scale, &s->diff_shift, &s->workspace, &s->bwd_src};
    for (size_t i = 0; i < sizeof mirrors / sizeof *mirrors; i++)
        cz_mirror_free(mirrors[i]);
    free(s->per_channel);
    cz_primitive_destroy(&s->fwd);
    cz_primitive_destroy(&s->bwd);
    dnnl_primitive_desc_destroy(s->fwd_pd);
    dnnl_primitive_desc_destroy(s->bwd_pd);
    dnnl_primitive_desc_destroy(s->fp32_fwd_pd);
    free(s);
}

/* Pixels per partial sum of bf16_backward: its sums run in the same order
 * whatever the number of threads. */
#define CHUNK 64

static cz_status bn_plan(cz_graph *g, cz_node *node)
{
    bn_state *s = node->state;
    cz_tensor *x = node->in[BN_X], *y = node->out;
    cz_tensor *rmean = node->in[BN_RUNNING_MEAN], *rvar = node->in[BN_RUNNING_VAR];
    cz_tensor *w = s->affine ? node->in[BN_WEIGHT] : NULL;
    cz_tensor *b = s->affine ? node->in[BN_BIAS] : NULL;
    bool training = cz_graph_training(g);
    int64_t c_dims[1] = {x->c};
    dnnl_memory_desc_t data_md = cz_dnnl_tensor_md(x), y_md = cz_dnnl_tensor_md(y);
    dnnl_memory_desc_t dx_md = cz_dnnl_grad_md(x), dy_md = cz_dnnl_grad_md(y);
    dnnl_memory_desc_t c_md = cz_dnnl_md(1, c_dims, dnnl_f32, dnnl_x);
    unsigned flags = (s->affine ? dnnl_use_scale | dnnl_use_shift : 0) |
                     (s->running_stats ? dnnl_use_global_stats : 0) |
                     (s->relu ? dnnl_fuse_norm_relu : 0);
    dnnl_batch_normalization_desc_t desc;
    cz_status st;

    /* A training graph's forward is the hint for its backward primitives,
     * even when it normalises with the running statistics. */
    dnnl_prop_kind_t prop = training ? dnnl_forward_training : dnnl_forward_inference;
    if ((st = cz_dnnl_check(dnnl_batch_normalization_forward_desc_init(&desc, prop, &data_md, s->eps, flags),
                            "batch normalization descriptor")) != CZ_OK ||
        (st = cz_dnnl_create(&s->fwd_pd, &s->fwd, g, &desc, NULL, NULL, "batch normalization forward")) != CZ_OK ||
        (st = cz_mirror_init(&s->src, &data_md, x->data, cz_dnnl_arg_md(s->fwd_pd, DNNL_ARG_SRC), CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_mirror_init_transient(&s->dst, g, &y_md, y->data, cz_dnnl_arg_md(s->fwd_pd, DNNL_ARG_DST), CZ_MIRROR_OUT)) != CZ_OK)
        return st;
    /* Running statistics are read in place; batch ones land in scratch. */
    float *mean_data = s->running_stats ? rmean->data : NULL;
    float *var_data = s->running_stats ? rvar->data : NULL;
    if ((st = cz_mirror_init(&s->mean, &c_md, mean_data, cz_dnnl_arg_md(s->fwd_pd, DNNL_ARG_MEAN), CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_mirror_init(&s->variance, &c_md, var_data, cz_dnnl_arg_md(s->fwd_pd, DNNL_ARG_VARIANCE), CZ_MIRROR_IN)) != CZ_OK)
        return st;
    if (!s->running_stats) {
        void *mean_handle = NULL, *var_handle = NULL;
        if ((st = cz_dnnl_check(dnnl_memory_get_data_handle(s->mean.prim, &mean_handle), "batch mean")) != CZ_OK ||
            (st = cz_dnnl_check(dnnl_memory_get_data_handle(s->variance.prim, &var_handle), "batch variance")) != CZ_OK)
            return st;
        s->batch_mean = mean_handle;
        s->batch_var = var_handle;
    }
    if (s->affine &&
        ((st = cz_mirror_init(&s->scale, &c_md, w->data, cz_dnnl_arg_md(s->fwd_pd, DNNL_ARG_SCALE), CZ_MIRROR_IN)) != CZ_OK ||
         (st = cz_mirror_init(&s->shift, &c_md, b->data, cz_dnnl_arg_md(s->fwd_pd, DNNL_ARG_SHIFT), CZ_MIRROR_IN)) != CZ_OK))
        return st;
    if (!training)
        return CZ_OK;
    /* The mask lives from forward to backward: memory of its own. */
    const dnnl_memory_desc_t *ws_md = dnnl_primitive_desc_query_md(s->fwd_pd, dnnl_query_workspace_md, 0);
    if (s->relu && (st = cz_mirror_init(&s->workspace, ws_md, NULL, ws_md, CZ_MIRROR_IN)) != CZ_OK)
        return st;

    bool want_params = s->affine && (w->may_need_grad || b->may_need_grad);
    if (!x->may_need_grad && !want_params)
        return CZ_OK;
    if (x->layout == CZ_LAYOUT_NHWC_BF16 && y->layout != CZ_LAYOUT_NCHW_F32 && !s->running_stats &&
        x->c % 16 == 0) {
        s->per_channel = malloc((size_t)(4 * x->c) * sizeof *s->per_channel);
        if (!s->per_channel)
            return cz_fail(CZ_ERR_NOMEM, "batch_norm2d: out of memory");
        cz_graph_scratch_for(g, CZ_BACKWARD_CALL);
        size_t chunks = (size_t)((s->count + CHUNK - 1) / CHUNK);
        return cz_graph_scratch_pointer(g, chunks * 2 * (size_t)x->c * sizeof(float), &s->chunk_sums);
    }
    cz_graph_scratch_for(g, CZ_BACKWARD_CALL);
    /* Other bf16 values (an output stored plain): backward runs in fp32 on them,
     * widened within its call: one conversion, where oneDNN 2.6's bf16
     * backward would want both gradients in bf16, two (and is no more
     * accurate: tests/test_layout.c measured both). Its hint is an fp32
     * forward that never runs, whose mask is laid out as the bf16 one's
     * (checked). */
    bool widen = x->layout == CZ_LAYOUT_NHWC_BF16;
    dnnl_memory_desc_t bwd_md = widen ? dx_md : data_md;
    if (widen &&
        ((st = cz_dnnl_check(dnnl_batch_normalization_forward_desc_init(&desc, prop, &bwd_md, s->eps, flags),
                             "batch normalization descriptor")) != CZ_OK ||
         (st = cz_dnnl_create(&s->fp32_fwd_pd, NULL, g, &desc, NULL, NULL, "batch normalization forward")) != CZ_OK))
        return st;
    dnnl_prop_kind_t bwd_prop = s->affine ? dnnl_backward : dnnl_backward_data;
    if ((st = cz_dnnl_check(dnnl_batch_normalization_backward_desc_init(&desc, bwd_prop, &bwd_md, &bwd_md, s->eps, flags),
                            "batch normalization backward descriptor")) != CZ_OK ||
        (st = cz_dnnl_create(&s->bwd_pd, &s->bwd, g, &desc, NULL, widen ? s->fp32_fwd_pd : s->fwd_pd,
                             "batch normalization backward")) != CZ_OK)
        return st;
    if (widen) {
        const dnnl_memory_desc_t *bwd_ws = dnnl_primitive_desc_query_md(s->bwd_pd, dnnl_query_workspace_md, 0);
        if (s->relu && !(bwd_ws && dnnl_memory_desc_equal(bwd_ws, ws_md)))
            return cz_fail(CZ_ERR_BACKEND, "batch normalization: the bf16 forward's mask does not "
                           "fit the fp32 backward");
        if ((st = cz_mirror_init_transient(&s->bwd_src, g, &data_md, x->data, cz_dnnl_arg_md(s->bwd_pd, DNNL_ARG_SRC), CZ_MIRROR_IN)) != CZ_OK)
            return st;
    }
    /* Gradients nobody keeps (grad NULL: frozen, or x without one) go to
     * scratch; all of backward's conversions are transient. */
    if ((st = cz_mirror_init_transient(&s->diff_dst, g, &dy_md, y->grad, cz_dnnl_arg_md(s->bwd_pd, DNNL_ARG_DIFF_DST), CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_mirror_init_transient(&s->diff_src, g, &dx_md, x->grad, cz_dnnl_arg_md(s->bwd_pd, DNNL_ARG_DIFF_SRC), cz_mirror_grad_dir(x))) != CZ_OK)
        return st;
    if (s->affine &&
        ((st = cz_mirror_init_transient(&s->diff_scale, g, &c_md, w->grad, cz_dnnl_arg_md(s->bwd_pd, DNNL_ARG_DIFF_SCALE), CZ_MIRROR_ACCUMULATE)) != CZ_OK ||
         (st = cz_mirror_init_transient(&s->diff_shift, g, &c_md, b->grad, cz_dnnl_arg_md(s->bwd_pd, DNNL_ARG_DIFF_SHIFT), CZ_MIRROR_ACCUMULATE)) != CZ_OK))
        return st;
    return CZ_OK;
}

static void bn_forward(cz_graph *g, cz_node *node)
{
    bn_state *s = node->state;
    dnnl_exec_arg_t args[7] = {{DNNL_ARG_SRC, s->src.prim},
                               {DNNL_ARG_DST, s->dst.prim},
                               {DNNL_ARG_MEAN, s->mean.prim},
                               {DNNL_ARG_VARIANCE, s->variance.prim}};
    int n_args = 4;
    if (s->affine) {
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, s->scale.prim};
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, s->shift.prim};
    }
    if (s->workspace.prim)
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, s->workspace.prim};
    cz_dnnl_run(g, &s->fwd, n_args, args);
    cz_mirror_sync(g, &s->dst); /* an output stored otherwise than the input */
    if (s->running_stats || cz_graph_status(g) != CZ_OK)
        return;
    /* PyTorch's update: the running variance takes the unbiased estimate. */
    float *rmean = node->in[BN_RUNNING_MEAN]->data, *rvar = node->in[BN_RUNNING_VAR]->data;
    double m = s->momentum, bessel = (double)s->count / (double)(s->count - 1);
    for (int64_t c = 0; c < node->in[BN_X]->c; c++) {
        rmean[c] = (float)((1.0 - m) * rmean[c] + m * s->batch_mean[c]);
        rvar[c] = (float)((1.0 - m) * rvar[c] + m * s->batch_var[c] * bessel);
    }
}

/* The backward of bf16 values (a bf16 training graph), ours. oneDNN 2.6
 * has a bf16 backward only with bf16 gradients, and its fp32 one wanted the
 * values widened to fp32 first, a pass of its own before reading them twice
 * at 4 bytes; this reads them at 2. Two passes over the pixels: the
 * per-channel sums of g (the output gradient, through the ReLU's mask) and
 * of g * xhat, then
 *     dx = gamma / sigma * (g - sum(g) / M - xhat * sum(g xhat) / M)
 * (batch statistics only; running ones take oneDNN's way). The mask is
 * forward's workspace, a bit per value in memory order (tests/test_layout.c
 * checks this against fp32). */
static void bf16_backward(const cz_node *node, const bn_state *s, bool dx_need, bool w_need,
                          bool b_need)
{
    const cz_tensor *x = node->in[BN_X];
    const uint16_t *xv = (const uint16_t *)(const void *)x->data;
    const float *dy = node->out->grad;
    const float *mean = s->batch_mean, *var = s->batch_var;
    const float *gamma = s->affine ? node->in[BN_WEIGHT]->data : NULL;
    const uint16_t *mask = NULL; /* 16 channels' bits in each (channels are a multiple of 16) */
    if (s->relu)
        dnnl_memory_get_data_handle(s->workspace.prim, (void **)&mask);
    int64_t c_n = x->c, pixels = s->count, chunks = (pixels + CHUNK - 1) / CHUNK;
    float *inv = s->per_channel, *scale = inv + c_n, *sum_g = scale + c_n, *sum_gx = sum_g + c_n;
    float *dx = x->grad;
    /* A float, not a bool: GCC 12 leaves a loop reading a bool scalar. */
    float adding = x->grad_written ? 0.0f : 1.0f;
    for (int64_t c = 0; c < c_n; c++)
        inv[c] = 1.0f / sqrtf(var[c] + s->eps);
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < chunks; k++) {
        float *part_g = s->chunk_sums + k * 2 * c_n, *part_gx = part_g + c_n;
        for (int64_t c = 0; c < c_n; c++)
            part_g[c] = part_gx[c] = 0.0f;
        int64_t p1 = (k + 1) * CHUNK < pixels ? (k + 1) * CHUNK : pixels;
        for (int64_t p = k * CHUNK; p < p1; p++)
            for (int64_t c0 = 0; c0 < c_n; c0 += 16) {
                int64_t e0 = p * c_n + c0;
                unsigned bits = mask ? mask[e0 / 16] : 0xffffu;
#pragma omp simd
                for (int j = 0; j < 16; j++) {
                    float gv = cz_select((bits >> j) & 1u, dy[e0 + j], 0.0f);
                    float xhat = (cz_bf16_to_f32(xv[e0 + j]) - mean[c0 + j]) * inv[c0 + j];
                    part_g[c0 + j] += gv;
                    part_gx[c0 + j] += gv * xhat;
                }
            }
    }
    /* The chunks' sums in chunk order: the same whatever the threads. */
    for (int64_t c = 0; c < c_n; c++)
        sum_g[c] = sum_gx[c] = 0.0f;
    for (int64_t k = 0; k < chunks; k++) {
        const float *part_g = s->chunk_sums + k * 2 * c_n, *part_gx = part_g + c_n;
#pragma omp simd
        for (int64_t c = 0; c < c_n; c++) {
            sum_g[c] += part_g[c];
            sum_gx[c] += part_gx[c];
        }
    }
    for (int64_t c = 0; c < c_n; c++) {
        if (w_need)
            node->in[BN_WEIGHT]->grad[c] += sum_gx[c];
        if (b_need)
            node->in[BN_BIAS]->grad[c] += sum_g[c];
        /* From here on the means of the sums, as dx takes them. */
        scale[c] = (gamma ? gamma[c] : 1.0f) * inv[c];
        sum_g[c] /= (float)pixels;
        sum_gx[c] /= (float)pixels;
    }
    if (!dx_need)
        return;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; p++)
        for (int64_t c0 = 0; c0 < c_n; c0 += 16) {
            int64_t e0 = p * c_n + c0;
            unsigned bits = mask ? mask[e0 / 16] : 0xffffu;
#pragma omp simd
            for (int j = 0; j < 16; j++) {
                int64_t c = c0 + j;
                float gv = cz_select((bits >> j) & 1u, dy[e0 + j], 0.0f);
                float xhat = (cz_bf16_to_f32(xv[e0 + j]) - mean[c]) * inv[c];
                float v = scale[c] * (gv - sum_g[c] - xhat * sum_gx[c]);
                dx[e0 + j] = cz_select(adding != 0.0f, dx[e0 + j] + v, v);
            }
        }
}

static void bn_backward(cz_graph *g, cz_node *node)
{
    bn_state *s = node->state;
    cz_tensor *x = node->in[BN_X];
    cz_tensor *w = s->affine ? node->in[BN_WEIGHT] : NULL;
    cz_tensor *b = s->affine ? node->in[BN_BIAS] : NULL;
    bool w_need = w && w->needs_grad, b_need = b && b->needs_grad;
    if (s->per_channel && (x->needs_grad || w_need || b_need)) {
        bf16_backward(node, s, x->needs_grad, w_need, b_need);
        return;
    }
    if (!s->bwd.prim || !(x->needs_grad || w_need || b_need))
        return;
    const cz_mirror *src = s->bwd_src.prim ? &s->bwd_src : &s->src;
    dnnl_exec_arg_t args[10] = {{DNNL_ARG_SRC, src->prim},
                                {DNNL_ARG_DIFF_DST, s->diff_dst.prim},
                                {DNNL_ARG_MEAN, s->mean.prim},
                                {DNNL_ARG_VARIANCE, s->variance.prim},
                                {DNNL_ARG_DIFF_SRC, s->diff_src.prim}};
    int n_args = 5;
    if (s->affine) {
        /* oneDNN 2.6 lists the shift among the backward inputs, unused. */
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCALE, s->scale.prim};
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, s->shift.prim};
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SCALE, s->diff_scale.prim};
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SHIFT, s->diff_shift.prim};
    }
    if (s->workspace.prim)
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, s->workspace.prim};
    cz_mirror_sync(g, &s->bwd_src); /* no-op without one */
    cz_mirror_sync(g, &s->diff_dst);
    cz_dnnl_run(g, &s->bwd, n_args, args);
    if (x->needs_grad)
        cz_mirror_sync(g, &s->diff_src);
    if (w_need)
        cz_mirror_sync(g, &s->diff_scale);
    if (b_need)
        cz_mirror_sync(g, &s->diff_shift);
}

/* Backward reads the input, not the output (a fused relu's mask is in the
 * workspace). */
static const cz_op bn_op = {"batch_norm2d", bn_plan, bn_forward, bn_backward, bn_destroy,
                           CZ_OP_ANY_LAYOUT, true, cz_backward_reads_first_input};
static const cz_op bn_relu_op = {"batch_norm2d_relu", bn_plan, bn_forward, bn_backward,
                                bn_destroy, CZ_OP_ANY_LAYOUT, true, cz_backward_reads_first_input};

static cz_tensor *build(cz_graph *g, cz_tensor *x, cz_tensor *weight, cz_tensor *bias,
                        cz_tensor *running_mean, cz_tensor *running_var, float momentum,
                        float eps, bool relu)
{
    if (!x || !running_mean || !running_var || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "batch_norm2d: missing input");
    if (!weight != !bias)
        return cz_graph_error(g, CZ_ERR_INVALID,
                              "batch_norm2d: weight and bias must be given together");
    int64_t channels = x->c;
    cz_tensor *per_channel[4] = {running_mean, running_var, weight, bias};
    const char *what[4] = {"running_mean", "running_var", "weight", "bias"};
    for (int i = 0; i < 4; i++)
        if (per_channel[i] && cz_numel(per_channel[i]) != channels)
            return cz_graph_error(g, CZ_ERR_INVALID,
                                  "batch_norm2d: %s has %lld values, input has %lld channels",
                                  what[i], (long long)cz_numel(per_channel[i]),
                                  (long long)channels);
    if (!(momentum >= 0.0f && momentum <= 1.0f) || !(eps > 0.0f) || !isfinite(eps))
        return cz_graph_error(g, CZ_ERR_INVALID, "batch_norm2d: bad momentum %g or eps %g",
                              (double)momentum, (double)eps);
    /* A frozen weight means a frozen layer: Keras runs it as in inference. */
    bool running_stats = !cz_graph_training(g) || (weight && !weight->trainable);
    int64_t count = x->n * x->h * x->w;
    if (!running_stats && count < 2)
        return cz_graph_error(g, CZ_ERR_INVALID,
                              "batch_norm2d: expected more than 1 value per channel when "
                              "training, got input [%lld, %lld, %lld, %lld]",
                              (long long)x->n, (long long)x->c, (long long)x->h,
                              (long long)x->w);
    bn_state *s = calloc(1, sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "batch_norm2d: out of memory");
    s->momentum = momentum;
    s->eps = eps;
    s->affine = weight != NULL;
    s->running_stats = running_stats;
    s->count = count;
    s->relu = relu;
    cz_tensor *in[5] = {x, running_mean, running_var, weight, bias};
    return cz_graph_node(g, relu ? &bn_relu_op : &bn_op, in, weight ? 5 : 3, x->n, x->c, x->h,
                         x->w, s);
}

cz_tensor *cz_batch_norm2d(cz_graph *g, cz_tensor *x, cz_tensor *weight, cz_tensor *bias,
                           cz_tensor *running_mean, cz_tensor *running_var,
                           float momentum, float eps)
{
    return build(g, x, weight, bias, running_mean, running_var, momentum, eps, false);
}

cz_tensor *cz_batch_norm2d_relu(cz_graph *g, cz_tensor *x, cz_tensor *weight, cz_tensor *bias,
                                cz_tensor *running_mean, cz_tensor *running_var,
                                float momentum, float eps)
{
    return build(g, x, weight, bias, running_mean, running_var, momentum, eps, true);
}
