/* conv2d and conv_transpose2d on oneDNN, and their fused forms.
 *
 * For plain tensors (NCHW fp32) the primitives pick their own layouts
 * ("any") and, in bf16 graphs, bf16 sources, weights and output gradients with
 * fp32 outputs. Mirrors convert between the two; where a backward primitive
 * wants the same layout as one already converted in this step, it shares it.
 * Gradients are accumulated into the user buffers by the mirrors' reorders.
 * A channels-last tensor (cz_layout) is given to the primitive as it is:
 * no conversion.
 *
 * A fused convolution (inference) folds a batch norm in without a copy of
 * the weights: the reorder that converts them into the primitive's layout
 * also multiplies each output channel by its factor, so it runs, as any
 * inference weight reorder, only when the parameters have changed; the
 * factors and the folded bias are computed just before it. A residual is
 * copied into the output's memory (no copy where the plan puts the output
 * in the residual's memory), and a sum post-op adds the convolution to it
 * (oneDNN 2.6's brgemm kernels take a sum post-op, not a binary add of a
 * whole tensor, which runs 2x slower kernels).
 *
 * In bf16 training graphs a 1x1 convolution without padding runs its backward
 * as matrix products (matmul_backward, below), and other convolutions with
 * many output pixels their input gradient as forward convolutions
 * (conv_phases.c). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/half.h"
#include "ops/conv_phases.h"
#include "ops/ops.h"
#include "ops/weighted.h"

/* A 1x1 convolution on channels-last values is a matrix product over the
 * pixels: y[P, OC] = x[P, IC] w[OC, IC]^T, P = N*OH*OW (with a stride, x's
 * rows are every stride-th pixel of every stride-th line). In bf16
 * training graphs its backward runs as two oneDNN matmuls,
 *     dx[P, IC] (+)= dy[P, OC] w[OC, IC],   dw[OC, IC] += dy^T[OC, P] x[P, IC],
 * whose AMX brgemm kernels beat oneDNN 2.6's backward convolution kernels
 * (jit:avx512_core_amx_bf16) at ResNet50's 1x1 shapes (weights 1.2-4.3x,
 * data 1.1-1.9x: bench/conv1x1_backward.c) and write the weights'
 * gradient straight into our oihw, which for 1x1 is [OC, IC]: no reorder.
 * In fp32 the two kinds of kernel are on par. The bias's gradient, the sum
 * of dy over the pixels, comes from the pass that converts dy to bf16. At
 * stride 1 the matmuls work on x and its gradient as they are; a strided
 * convolution gathers the pixels it reads into x_sub for the weights'
 * matmul, and its data matmul writes dx_sub, then spread into x's
 * gradient. */
typedef struct {
    cz_primitive data, weights; /* .prim NULL where that gradient is never needed */
    cz_mirror w;                /* the weights in bf16 */
    uint16_t *dy;               /* scratch: the output gradient in bf16 */
    float *bias_sum;            /* scratch: the bias's gradient, NULL without one */
    uint16_t *x_sub;            /* scratch, strided only: the pixels read, bf16 */
    float *dx_sub;              /* scratch, strided only: their gradient */
    /* The operands as matrices; their memory is set at each call. */
    dnnl_memory_t dy_rows, dy_cols, w_rows, x_rows, dx_rows, dw_rows;
} matmul_backward;

typedef struct {
    cz_weighted p;
    matmul_backward *mm; /* the backward as matmuls where it applies, else NULL */
    conv_phases *phases; /* else the input gradient as forward convolutions, or NULL */
    bool transposed;
    int stride, padding, output_padding, dilation;
    /* fused convolutions only */
    bool fold;             /* a batch norm is folded in */
    float eps;             /* its eps */
    cz_act act;
    float slope;           /* leaky_relu's negative slope */
    float *scale, *bias;   /* [OC]: the fold's factors and bias */
    /* Where the node's bias and residual are among its inputs, or -1. */
    int bias_at, residual_at;
} conv_state;

/* A fused node with a batch norm reads x, w, these, then its bias if it has
 * one, then its residual if it has one. */
enum { FOLD_GAMMA = 2, FOLD_BETA, FOLD_MEAN, FOLD_VAR, FOLD_END };

static cz_tensor *input_at(const cz_node *node, int at) { return at < 0 ? NULL : node->in[at]; }

static void matmul_backward_free(matmul_backward *mm)
{
    if (!mm)
        return;
    cz_primitive_destroy(&mm->data);
    cz_primitive_destroy(&mm->weights);
    cz_mirror_free(&mm->w);
    dnnl_memory_t views[] = {mm->dy_rows, mm->dy_cols, mm->w_rows, mm->x_rows, mm->dx_rows, mm->dw_rows};
    for (size_t i = 0; i < sizeof views / sizeof *views; i++)
        dnnl_memory_destroy(views[i]);
    free(mm);
}

static void conv_destroy(void *state)
{
    conv_state *s = state;
    if (!s)
        return;
    cz_weighted_release(&s->p);
    matmul_backward_free(s->mm);
    cz_conv_phases_free(s->phases);
    free(s->scale);
    free(s->bias);
    free(s);
}

/* Descriptors with layout left to oneDNN, data type per precision. */
typedef struct {
    dnnl_memory_desc_t src, weights, bias, dst, diff_src, diff_weights, diff_bias, diff_dst;
    dnnl_dims_t strides, dilates, pad_l, pad_r;
} conv_descs;

/* With as_stored, a channels-last tensor is given to the primitive in its
 * layout (NHWC), in the data type the primitive computes in (a training
 * graph's fp32 channels-last input of a bf16 convolution is converted, not
 * reordered); otherwise every layout is left to oneDNN. */
static conv_descs make_descs(cz_graph *g, const cz_node *node, const conv_state *s, bool as_stored)
{
    const cz_tensor *x = node->in[0], *w = node->in[1], *y = node->out;
    bool bf16 = cz_graph_precision(g) == CZ_BF16;
    dnnl_data_type_t low = bf16 ? dnnl_bf16 : dnnl_f32;
    int64_t x_dims[4] = {x->n, x->c, x->h, x->w};
    int64_t y_dims[4] = {y->n, y->c, y->h, y->w};
    /* oneDNN always wants weights as [OC, IC, KH, KW] of the operation. */
    int64_t w_dims[4] = {s->transposed ? w->c : w->n, s->transposed ? w->n : w->c, w->h, w->w};
    int64_t b_dims[1] = {y->c};
    dnnl_format_tag_t x_tag = as_stored && x->layout != CZ_LAYOUT_NCHW_F32 ? dnnl_nhwc : dnnl_format_tag_any;
    dnnl_format_tag_t y_tag = as_stored && y->layout != CZ_LAYOUT_NCHW_F32 ? dnnl_nhwc : dnnl_format_tag_any;
    /* oneDNN 2.6's AMX brgemm kernels, generated for a bf16 output of a
     * few channels (4 in tests/test_fuse.c's small decoders), read past
     * the end of a table (an ASan SEGV inside dnnl_primitive_create, one
     * run in ten): such an output is written in fp32 and converted. */
    bool bf16_out = y->layout == CZ_LAYOUT_NHWC_BF16 && y->c % 16 == 0 && y_tag == dnnl_nhwc;
    conv_descs d;
    d.src = cz_dnnl_md(4, x_dims, low, x_tag);
    d.weights = cz_dnnl_md(4, w_dims, low, dnnl_format_tag_any);
    d.bias = cz_dnnl_md(1, b_dims, dnnl_f32, dnnl_x);
    d.dst = cz_dnnl_md(4, y_dims, bf16_out ? dnnl_bf16 : dnnl_f32, y_tag);
    /* oneDNN 2.6's jit_1x1 backward data of a strided 1x1 convolution on
     * nhwc ("reduce to unit stride") corrupts the heap (test_models'
     * classifiers, 8 input channels; found by checking the heap after every
     * node's backward): its gradients go through oneDNN's own layouts. */
    bool strided_1x1 = s->stride > 1 && w->h == 1 && w->w == 1 && !s->transposed;
    dnnl_format_tag_t dx_tag = strided_1x1 ? dnnl_format_tag_any : x_tag;
    dnnl_format_tag_t dy_tag = strided_1x1 ? dnnl_format_tag_any : y_tag;
    d.diff_src = cz_dnnl_md(4, x_dims, dnnl_f32, dx_tag);
    d.diff_weights = cz_dnnl_md(4, w_dims, dnnl_f32, dnnl_format_tag_any);
    d.diff_bias = d.bias;
    d.diff_dst = cz_dnnl_md(4, y_dims, low, dy_tag);
    for (int i = 0; i < 2; i++) {
        d.strides[i] = s->stride;
        d.dilates[i] = s->dilation - 1; /* oneDNN counts the gaps */
        d.pad_l[i] = s->padding;
        /* The right padding makes the output size exact, including a
         * transposed conv's output_padding and a stride that does not
         * divide the input. */
        int64_t in = i == 0 ? x->h : x->w, out = i == 0 ? y->h : y->w;
        int64_t k = i == 0 ? w->h : w->w;
        int64_t span = (k - 1) * s->dilation + 1;
        d.pad_r[i] = s->transposed ? (in - 1) * s->stride + span - out - s->padding
                                   : (out - 1) * s->stride + span - in - s->padding;
    }
    return d;
}

/* The residual as a sum post-op, then the activation as an eltwise one;
 * *attr stays NULL without either. */
static cz_status fused_attr(const conv_state *s, dnnl_primitive_attr_t *attr)
{
    *attr = NULL;
    if (s->act == CZ_ACT_NONE && s->residual_at < 0)
        return CZ_OK;
    /* oneDNN's relu with alpha is x > 0 ? x : alpha * x, leaky_relu too. */
    float alpha = s->act == CZ_ACT_LEAKY_RELU ? s->slope : 0.0f;
    dnnl_post_ops_t ops = NULL;
    cz_status st = cz_dnnl_check(dnnl_post_ops_create(&ops), "convolution post-ops");
    if (st == CZ_OK && s->residual_at >= 0)
        st = cz_dnnl_check(dnnl_post_ops_append_sum(ops, 1.0f), "convolution residual");
    if (st == CZ_OK && s->act != CZ_ACT_NONE)
        st = cz_dnnl_check(dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, alpha, 0.0f),
                           "convolution activation");
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_primitive_attr_create(attr), "convolution attributes");
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_primitive_attr_set_post_ops(*attr, ops), "convolution post-ops");
    dnnl_post_ops_destroy(ops);
    if (st != CZ_OK) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return st;
}

/* The forward primitive's descriptor (not the primitive) for descriptors d. */
static cz_status forward_pd(cz_graph *g, const cz_node *node, const conv_state *s,
                            const conv_descs *d, dnnl_primitive_desc_t *pd)
{
    bool has_bias = s->bias_at >= 0 || s->fold; /* a folded batch norm always brings one */
    dnnl_alg_kind_t alg = s->transposed ? dnnl_deconvolution_direct : dnnl_convolution_direct;
    dnnl_prop_kind_t prop = cz_graph_training(g) ? dnnl_forward_training : dnnl_forward_inference;
    union {
        dnnl_convolution_desc_t conv;
        dnnl_deconvolution_desc_t deconv;
    } desc;
    dnnl_status_t ds =
        s->transposed
            ? dnnl_dilated_deconvolution_forward_desc_init(&desc.deconv, prop, alg, &d->src, &d->weights,
                                                           has_bias ? &d->bias : NULL, &d->dst, d->strides,
                                                           d->dilates, d->pad_l, d->pad_r)
            : dnnl_dilated_convolution_forward_desc_init(&desc.conv, prop, alg, &d->src, &d->weights,
                                                         has_bias ? &d->bias : NULL, &d->dst, d->strides,
                                                         d->dilates, d->pad_l, d->pad_r);
    dnnl_primitive_attr_t attr = NULL;
    cz_status st = cz_dnnl_check(ds, "convolution descriptor");
    if (st == CZ_OK)
        st = fused_attr(s, &attr);
    if (st == CZ_OK)
        st = cz_dnnl_create(pd, NULL, g, &desc, attr, NULL, "convolution forward");
    dnnl_primitive_attr_destroy(attr);
    return st;
}

typedef enum { FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS } conv_pass;

/* A primitive descriptor (not the primitive) of a pass for descriptors d;
 * backward ones take the forward's as their hint. */
static cz_status pass_pd(cz_graph *g, const cz_node *node, const conv_state *s, conv_pass pass,
                         const conv_descs *d, const_dnnl_primitive_desc_t hint,
                         dnnl_primitive_desc_t *pd)
{
    if (pass == FORWARD)
        return forward_pd(g, node, s, d, pd);
    dnnl_alg_kind_t alg = s->transposed ? dnnl_deconvolution_direct : dnnl_convolution_direct;
    const dnnl_memory_desc_t *diff_bias = s->bias_at >= 0 ? &d->diff_bias : NULL;
    union {
        dnnl_convolution_desc_t conv;
        dnnl_deconvolution_desc_t deconv;
    } desc;
    dnnl_status_t ds;
    if (pass == BACKWARD_DATA)
        ds = s->transposed
                 ? dnnl_dilated_deconvolution_backward_data_desc_init(&desc.deconv, alg, &d->diff_src, &d->weights,
                                                                      &d->diff_dst, d->strides, d->dilates, d->pad_l, d->pad_r)
                 : dnnl_dilated_convolution_backward_data_desc_init(&desc.conv, alg, &d->diff_src, &d->weights,
                                                                    &d->diff_dst, d->strides, d->dilates, d->pad_l, d->pad_r);
    else
        ds = s->transposed
                 ? dnnl_dilated_deconvolution_backward_weights_desc_init(&desc.deconv, alg, &d->src, &d->diff_weights,
                                                                         diff_bias, &d->diff_dst,
                                                                         d->strides, d->dilates, d->pad_l, d->pad_r)
                 : dnnl_dilated_convolution_backward_weights_desc_init(&desc.conv, alg, &d->src, &d->diff_weights,
                                                                       diff_bias, &d->diff_dst,
                                                                       d->strides, d->dilates, d->pad_l, d->pad_r);
    const char *what = pass == BACKWARD_DATA ? "convolution backward data" : "convolution backward weights";
    cz_status st = cz_dnnl_check(ds, what);
    if (st == CZ_OK)
        st = cz_dnnl_create(pd, NULL, g, &desc, NULL, hint, what);
    return st;
}

/* The primitive of a pass, on channels-last tensors as they are stored, or
 * where oneDNN 2.6 has only its reference kernel for that (an fp32
 * transposed convolution to 2 channels, 6 ms in unet's inference; fp32
 * backward weights of a few small convolutions, 14 of 17 s of a
 * resnet50-paper GAN step) and has a real one for layouts of its own
 * choosing, on those: converting costs less. */
static cz_status pass_primitive(cz_graph *g, const cz_node *node, const conv_state *s,
                                conv_pass pass, const_dnnl_primitive_desc_t hint,
                                dnnl_primitive_desc_t *pd, cz_primitive *prim)
{
    conv_descs d = make_descs(g, node, s, true);
    cz_status st = pass_pd(g, node, s, pass, &d, hint, pd);
    if (st == CZ_OK && cz_dnnl_is_reference(*pd)) {
        conv_descs chosen = make_descs(g, node, s, false);
        dnnl_primitive_desc_t other = NULL;
        if (pass_pd(g, node, s, pass, &chosen, hint, &other) == CZ_OK && !cz_dnnl_is_reference(other)) {
            dnnl_primitive_desc_destroy(*pd);
            *pd = other;
        } else {
            dnnl_primitive_desc_destroy(other);
        }
    }
    if (st == CZ_OK)
        st = cz_primitive_create(prim, g, *pd, "convolution primitive");
    return st;
}

/* --- The backward of a 1x1 convolution as matmuls (matmul_backward). --- */

static bool matmul_backward_applies(const cz_graph *g, const cz_node *node, const conv_state *s)
{
    const cz_tensor *x = node->in[0], *w = node->in[1], *y = node->out;
    int64_t x_dims[4] = {x->n, x->c, x->h, x->w};
    dnnl_memory_desc_t x_bf16 = cz_dnnl_md(4, x_dims, dnnl_bf16, dnnl_nhwc);
    return cz_graph_training(g) && cz_graph_precision(g) == CZ_BF16 && !s->transposed &&
           w->h == 1 && w->w == 1 && s->padding == 0 &&
           (x->may_need_grad || w->may_need_grad) &&
           x->layout != CZ_LAYOUT_NCHW_F32 && y->layout != CZ_LAYOUT_NCHW_F32 &&
           /* forward read x channels-last, as it is or converted to bf16 */
           dnnl_memory_desc_equal(cz_dnnl_arg_md(s->p.fwd_pd, DNNL_ARG_SRC), &x_bf16);
}

/* A rows x cols matrix whose element (r, c) lies at r * row_step + c * col_step. */
static dnnl_memory_desc_t matrix_md(int64_t rows, int64_t cols, dnnl_data_type_t type,
                                    int64_t row_step, int64_t col_step)
{
    dnnl_memory_desc_t md;
    dnnl_memory_desc_init_by_strides(&md, 2, (dnnl_dims_t){rows, cols}, type,
                                     (dnnl_dims_t){row_step, col_step});
    return md;
}

static cz_status view(dnnl_memory_t *m, const dnnl_memory_desc_t *md)
{
    return cz_dnnl_check(dnnl_memory_create(m, md, cz_dnnl_engine(), DNNL_MEMORY_NONE), "matrix view");
}

/* A matmul primitive descriptor dst = src * weights, added to dst with
 * accumulate; *pd stays NULL where oneDNN offers only its reference kernel
 * or none at all (then the convolution's own backward runs). */
static void matmul_pd(cz_graph *g, dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *src,
                      const dnnl_memory_desc_t *weights, const dnnl_memory_desc_t *dst,
                      bool accumulate)
{
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    *pd = NULL;
    bool ok = dnnl_matmul_desc_init(&desc, src, weights, NULL, dst) == dnnl_success;
    if (ok && accumulate)
        ok = dnnl_post_ops_create(&ops) == dnnl_success &&
             dnnl_post_ops_append_sum(ops, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
    if (ok && (cz_dnnl_create(pd, NULL, g, &desc, attr, NULL, "matmul") != CZ_OK ||
               cz_dnnl_is_reference(*pd))) {
        dnnl_primitive_desc_destroy(*pd);
        *pd = NULL;
    }
    dnnl_primitive_attr_destroy(attr);
    dnnl_post_ops_destroy(ops);
}

/* Plans s->mm, or leaves it NULL where oneDNN has no fast matmul for the
 * shapes (then the convolution's own backward primitives run). */
static cz_status matmul_backward_plan(cz_graph *g, const cz_node *node, conv_state *s,
                                      const cz_weighted_layouts *ours)
{
    const cz_tensor *x = node->in[0], *w = node->in[1], *b = input_at(node, s->bias_at);
    const cz_tensor *y = node->out;
    matmul_backward *mm = calloc(1, sizeof *mm);
    if (!mm)
        return cz_fail(CZ_ERR_NOMEM, "conv2d: out of memory");
    int64_t pixels = y->n * y->h * y->w, ic = x->c, oc = y->c;
    int64_t w_dims[4] = {oc, ic, 1, 1};
    dnnl_memory_desc_t w_bf16 = cz_dnnl_md(4, w_dims, dnnl_bf16, dnnl_oihw);
    dnnl_memory_desc_t dy_rows = matrix_md(pixels, oc, dnnl_bf16, oc, 1);
    dnnl_memory_desc_t dy_cols = matrix_md(oc, pixels, dnnl_bf16, 1, oc); /* dy^T */
    dnnl_memory_desc_t w_rows = matrix_md(oc, ic, dnnl_bf16, ic, 1);
    dnnl_memory_desc_t x_rows = matrix_md(pixels, ic, dnnl_bf16, ic, 1);
    dnnl_memory_desc_t dx_rows = matrix_md(pixels, ic, dnnl_f32, ic, 1);
    dnnl_memory_desc_t dw_rows = matrix_md(oc, ic, dnnl_f32, ic, 1);
    /* Descriptors first: nothing takes scratch (a primitive's scratchpad)
     * before both matmuls are known to have a real kernel. */
    bool strided = s->stride > 1;
    dnnl_primitive_desc_t data_pd = NULL, weights_pd = NULL;
    if (x->may_need_grad)
        matmul_pd(g, &data_pd, &dy_rows, &w_rows, &dx_rows,
                  !strided && cz_mirror_grad_dir(x) == CZ_MIRROR_ACCUMULATE);
    if (w->may_need_grad)
        matmul_pd(g, &weights_pd, &dy_cols, &x_rows, &dw_rows, true);
    bool fast = (data_pd || !x->may_need_grad) && (weights_pd || !w->may_need_grad);
    cz_status st = CZ_OK;
    if (fast) {
        cz_graph_scratch_for(g, CZ_BACKWARD_CALL);
        if ((!data_pd || (st = cz_primitive_create(&mm->data, g, data_pd, "matmul primitive")) == CZ_OK) &&
            (!weights_pd || (st = cz_primitive_create(&mm->weights, g, weights_pd, "matmul primitive")) == CZ_OK) &&
            (st = cz_graph_scratch_pointer(g, (size_t)(pixels * oc) * sizeof *mm->dy, &mm->dy)) == CZ_OK &&
            (!b || !b->may_need_grad ||
             (st = cz_graph_scratch_pointer(g, (size_t)oc * sizeof *mm->bias_sum, &mm->bias_sum)) == CZ_OK) &&
            (!strided || !w->may_need_grad ||
             (st = cz_graph_scratch_pointer(g, (size_t)(pixels * ic) * sizeof *mm->x_sub, &mm->x_sub)) == CZ_OK) &&
            (!strided || !x->may_need_grad ||
             (st = cz_graph_scratch_pointer(g, (size_t)(pixels * ic) * sizeof *mm->dx_sub, &mm->dx_sub)) == CZ_OK) &&
            (st = cz_mirror_init_transient(&mm->w, g, &ours->w, w->data, &w_bf16, CZ_MIRROR_IN)) == CZ_OK &&
            (st = view(&mm->dy_rows, &dy_rows)) == CZ_OK && (st = view(&mm->dy_cols, &dy_cols)) == CZ_OK &&
            (st = view(&mm->w_rows, &w_rows)) == CZ_OK && (st = view(&mm->x_rows, &x_rows)) == CZ_OK &&
            (st = view(&mm->dx_rows, &dx_rows)) == CZ_OK)
            st = view(&mm->dw_rows, &dw_rows);
    }
    dnnl_primitive_desc_destroy(data_pd);
    dnnl_primitive_desc_destroy(weights_pd);
    if (fast && st == CZ_OK) {
        s->mm = mm;
        s->p.backward_reads_src = true;
        return CZ_OK;
    }
    matmul_backward_free(mm);
    return st;
}

/* dy [pixels, oc] in bf16 and, where bias_sum is not NULL, its sum over the
 * pixels in fp32, in one pass. Each thread takes a range of channels, so
 * every sum runs in pixel order whatever the number of threads. */
static void convert_output_grad(const float *dy, uint16_t *dy_bf16, float *bias_sum,
                                int64_t pixels, int64_t oc)
{
#pragma omp parallel
    {
        int64_t blocks = (oc + 15) / 16, t = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t c0 = blocks * t / n * 16, c1 = blocks * (t + 1) / n * 16;
        c1 = c1 < oc ? c1 : oc;
        if (bias_sum)
            for (int64_t c = c0; c < c1; c++)
                bias_sum[c] = 0.0f;
        for (int64_t p = 0; p < pixels; p++) {
            const float *row = dy + p * oc;
            uint16_t *out = dy_bf16 + p * oc;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++)
                out[c] = cz_f32_to_bf16(row[c]);
            if (bias_sum) {
#pragma omp simd
                for (int64_t c = c0; c < c1; c++)
                    bias_sum[c] += row[c];
            }
        }
    }
}

/* The pixels a strided 1x1 convolution reads from x [N, H, W, C] (bf16),
 * as rows [N*OH*OW, C]. */
static void gather_strided(const uint16_t *x, uint16_t *rows, const cz_tensor *xt,
                           const cz_tensor *y, int stride)
{
    int64_t c = xt->c;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < y->n; n++)
        for (int64_t oh = 0; oh < y->h; oh++)
            for (int64_t ow = 0; ow < y->w; ow++)
                memcpy(rows + ((n * y->h + oh) * y->w + ow) * c,
                       x + ((n * xt->h + oh * stride) * xt->w + ow * stride) * c,
                       (size_t)c * sizeof *rows);
}

/* Their gradient, rows [N*OH*OW, C], into x's [N, H, W, C]: added, or
 * written with zeros at the pixels the convolution skips. */
static void spread_strided(const float *rows, const cz_tensor *xt, const cz_tensor *y, int stride)
{
    int64_t c = xt->c;
    if (xt->grad_written)
        memset(xt->grad, 0, (size_t)cz_numel(xt) * sizeof *xt->grad);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < y->n; n++)
        for (int64_t oh = 0; oh < y->h; oh++)
            for (int64_t ow = 0; ow < y->w; ow++) {
                const float *from = rows + ((n * y->h + oh) * y->w + ow) * c;
                float *to = xt->grad + ((n * xt->h + oh * stride) * xt->w + ow * stride) * c;
#pragma omp simd
                for (int64_t k = 0; k < c; k++)
                    to[k] += from[k];
            }
}

static void *memory_of(const cz_mirror *m)
{
    void *data = NULL;
    dnnl_memory_get_data_handle(m->prim, &data);
    return data;
}

static void run_matmul(cz_graph *g, const cz_primitive *prim, dnnl_memory_t src, void *src_data,
                       dnnl_memory_t weights, void *weights_data, dnnl_memory_t dst, void *dst_data)
{
    dnnl_memory_set_data_handle(src, src_data);
    dnnl_memory_set_data_handle(weights, weights_data);
    dnnl_memory_set_data_handle(dst, dst_data);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    cz_dnnl_run(g, prim, 3, args);
}

static void matmul_backward_run(cz_graph *g, const cz_node *node, const conv_state *s)
{
    const matmul_backward *mm = s->mm;
    const cz_tensor *x = node->in[0], *w = node->in[1], *b = input_at(node, s->bias_at);
    const cz_tensor *y = node->out;
    bool data = x->needs_grad && mm->data.prim, weights = w->needs_grad && mm->weights.prim;
    float *bias_sum = b && b->needs_grad ? mm->bias_sum : NULL;
    if (!data && !weights && !bias_sum)
        return;
    int64_t oc = y->c;
    convert_output_grad(y->grad, mm->dy, bias_sum, y->n * y->h * y->w, oc);
    if (bias_sum)
        for (int64_t c = 0; c < oc; c++)
            b->grad[c] += bias_sum[c];
    bool strided = s->stride > 1;
    if (data) {
        cz_mirror_sync(g, &mm->w);
        run_matmul(g, &mm->data, mm->dy_rows, mm->dy, mm->w_rows, memory_of(&mm->w),
                   mm->dx_rows, strided ? mm->dx_sub : x->grad);
        if (strided)
            spread_strided(mm->dx_sub, x, y, s->stride);
    }
    if (weights) {
        void *x_rows = memory_of(&s->p.src); /* x's bf16 values, as forward read them */
        if (strided) {
            gather_strided(x_rows, mm->x_sub, x, y, s->stride);
            x_rows = mm->x_sub;
        }
        run_matmul(g, &mm->weights, mm->dy_cols, mm->dy, mm->x_rows, x_rows, mm->dw_rows,
                   w->grad);
    }
}

static cz_status conv_plan(cz_graph *g, cz_node *node)
{
    conv_state *s = node->state;
    cz_tensor *x = node->in[0], *w = node->in[1], *b = input_at(node, s->bias_at);
    cz_tensor *y = node->out;
    int64_t w_dims[4] = {s->transposed ? w->c : w->n, s->transposed ? w->n : w->c, w->h, w->w};
    /* PyTorch stores transposed-conv weights [IC, OC, KH, KW]: iohw. */
    int64_t oc = y->c;
    cz_weighted_layouts ours = {.x = cz_dnnl_tensor_md(x), .y = cz_dnnl_tensor_md(y),
                                .dx = cz_dnnl_grad_md(x), .dy = cz_dnnl_grad_md(y),
                                .b = cz_dnnl_md(1, &oc, dnnl_f32, dnnl_x),
                                .w = cz_dnnl_md(4, w_dims, dnnl_f32, s->transposed ? dnnl_iohw : dnnl_oihw)};
    cz_weighted *p = &s->p;
    bool training = cz_graph_training(g);
    cz_status st = pass_primitive(g, node, s, FORWARD, NULL, &p->fwd_pd, &p->fwd);
    if (st == CZ_OK && matmul_backward_applies(g, node, s))
        st = matmul_backward_plan(g, node, s, &ours);
    if (st == CZ_OK && training && !s->mm && !s->transposed)
        st = cz_conv_phases_plan(g, node, s->stride, s->padding, s->dilation, &p->bd_diff_dst,
                                 &s->phases);
    cz_graph_scratch_for(g, CZ_BACKWARD_CALL); /* the backward primitives' scratchpads */
    if (st == CZ_OK && training && !s->mm && !s->phases && x->may_need_grad)
        st = pass_primitive(g, node, s, BACKWARD_DATA, p->fwd_pd, &p->bwd_data_pd, &p->bwd_data);
    if (st == CZ_OK && training && !s->mm && (w->may_need_grad || (b && b->may_need_grad)))
        st = pass_primitive(g, node, s, BACKWARD_WEIGHTS, p->fwd_pd, &p->bwd_weights_pd,
                            &p->bwd_weights);
    if (st != CZ_OK)
        return st;
    if (s->fold) {
        p->fold_scale = s->scale;
        p->fold_bias = s->bias;
    }
    p->b = s->fold ? NULL : b;
    p->residual = input_at(node, s->residual_at);
    return cz_weighted_bind(g, p, node, &ours);
}

/* The factors and bias of the folded batch norm, from the parameters. */
static void fold_batch_norm(const cz_node *node, conv_state *s)
{
    const float *gamma = node->in[FOLD_GAMMA]->data, *beta = node->in[FOLD_BETA]->data;
    const float *mean = node->in[FOLD_MEAN]->data, *var = node->in[FOLD_VAR]->data;
    const cz_tensor *b = input_at(node, s->bias_at);
    for (int64_t oc = 0; oc < node->out->c; oc++) {
        double k = gamma[oc] / sqrt((double)var[oc] + s->eps);
        double bias = b ? b->data[oc] : 0.0;
        s->scale[oc] = (float)k;
        s->bias[oc] = (float)(beta[oc] + (bias - mean[oc]) * k);
    }
}

static void conv_forward(cz_graph *g, cz_node *node)
{
    conv_state *s = node->state;
    if (s->fold && cz_weighted_weights_stale(g, &s->p))
        fold_batch_norm(node, s);
    cz_weighted_forward(g, &s->p);
}

static void conv_backward(cz_graph *g, cz_node *node)
{
    conv_state *s = node->state;
    if (s->mm) {
        matmul_backward_run(g, node, s);
        return;
    }
    cz_weighted_backward(g, node, &s->p); /* converts dy; the weights' gradient */
    if (s->phases && node->in[0]->needs_grad)
        cz_conv_phases_run(g, node, s->phases, &s->p.bd_diff_dst);
}

/* Backward reads the input only for the weights' gradient, and an fp32
 * input of a bf16 graph not even then: it reads the bf16 copy forward
 * made (cz_weighted_bind). */
static bool conv_backward_reads(const cz_graph *g, const cz_node *node, int k)
{
    const conv_state *s = node->state;
    const cz_tensor *x = node->in[0], *w = node->in[1], *b = input_at(node, s->bias_at);
    bool weights_learn = w->may_need_grad || (b && b->may_need_grad);
    bool copied = cz_graph_precision(g) == CZ_BF16 && x->layout != CZ_LAYOUT_NHWC_BF16;
    return k == 0 && weights_learn && !copied;
}

static const cz_op conv_op = {"conv2d", conv_plan, conv_forward, conv_backward, conv_destroy,
                              CZ_OP_ANY_LAYOUT, true, conv_backward_reads};
static const cz_op deconv_op = {"conv_transpose2d", conv_plan, conv_forward, conv_backward,
                                conv_destroy, CZ_OP_ANY_LAYOUT, true, conv_backward_reads};
static const cz_op fused_conv_op = {"conv2d_fused", conv_plan, conv_forward, NULL, conv_destroy,
                                    CZ_OP_ANY_LAYOUT, false, NULL};
static const cz_op fused_deconv_op = {"conv_transpose2d_fused", conv_plan, conv_forward, NULL,
                                      conv_destroy, CZ_OP_ANY_LAYOUT, false, NULL};

bool cz_conv2d_backward_by_matmul(const cz_graph *g, const cz_tensor *y)
{
    const cz_node *node = cz_graph_producer(g, y);
    return node && node->op == &conv_op && ((const conv_state *)node->state)->mm;
}

bool cz_conv2d_input_grad_by_phases(const cz_graph *g, const cz_tensor *y)
{
    const cz_node *node = cz_graph_producer(g, y);
    return node && node->op == &conv_op && ((const conv_state *)node->state)->phases;
}

/* Checks a fusion for an output [n, oc, oh, ow]; false after recording an
 * error. */
static bool fusion_ok(cz_graph *g, const char *name, const cz_conv_fusion *f, int64_t n,
                      int64_t oc, int64_t oh, int64_t ow)
{
    if (cz_graph_training(g)) {
        cz_graph_error(g, CZ_ERR_INVALID, "%s: inference graphs only", name);
        return false;
    }
    cz_tensor *const per_channel[4] = {f->bn_weight, f->bn_bias, f->running_mean, f->running_var};
    int given = 0;
    for (int i = 0; i < 4; i++)
        given += per_channel[i] != NULL;
    if (given != 0 && given != 4) {
        cz_graph_error(g, CZ_ERR_INVALID, "%s: batch norm needs weight, bias, running_mean and "
                       "running_var", name);
        return false;
    }
    for (int i = 0; i < given; i++)
        if (cz_numel(per_channel[i]) != oc) {
            cz_graph_error(g, CZ_ERR_INVALID, "%s: batch norm has %lld values, %lld channels",
                           name, (long long)cz_numel(per_channel[i]), (long long)oc);
            return false;
        }
    const cz_tensor *r = f->residual;
    if (r && (r->n != n || r->c != oc || r->h != oh || r->w != ow)) {
        cz_graph_error(g, CZ_ERR_INVALID, "%s: residual [%lld, %lld, %lld, %lld], output [%lld, "
                       "%lld, %lld, %lld]", name, (long long)r->n, (long long)r->c,
                       (long long)r->h, (long long)r->w, (long long)n, (long long)oc,
                       (long long)oh, (long long)ow);
        return false;
    }
    if (given && (!(f->eps > 0.0f) || !isfinite(f->eps))) {
        cz_graph_error(g, CZ_ERR_INVALID, "%s: bad eps %g", name, (double)f->eps);
        return false;
    }
    if ((f->act != CZ_ACT_NONE && f->act != CZ_ACT_RELU && f->act != CZ_ACT_LEAKY_RELU) ||
        !isfinite(f->slope)) {
        cz_graph_error(g, CZ_ERR_INVALID, "%s: bad activation", name);
        return false;
    }
    return true;
}

static cz_tensor *build(cz_graph *g, bool transposed, cz_tensor *x, cz_tensor *w, cz_tensor *b,
                        int stride, int padding, int output_padding, int dilation,
                        const cz_conv_fusion *fusion)
{
    const char *name = fusion ? transposed ? "conv_transpose2d_fused" : "conv2d_fused"
                              : transposed ? "conv_transpose2d" : "conv2d";
    if (!x || !w || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: missing input", name);
    int64_t ic = transposed ? w->n : w->c, oc = transposed ? w->c : w->n;
    if (stride < 1 || dilation < 1 || padding < 0 || output_padding < 0 ||
        (transposed && output_padding >= stride && output_padding >= dilation))
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: bad stride %d, padding %d, dilation %d",
                              name, stride, padding, dilation);
    if (x->c != ic)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: input has %lld channels, weight expects %lld",
                              name, (long long)x->c, (long long)ic);
    if (b && cz_numel(b) != oc)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: bias has %lld values, expected %lld", name,
                              (long long)cz_numel(b), (long long)oc);
    int64_t span_h = (w->h - 1) * dilation + 1, span_w = (w->w - 1) * dilation + 1;
    int64_t oh, ow;
    if (transposed) {
        oh = (x->h - 1) * stride - 2 * padding + span_h + output_padding;
        ow = (x->w - 1) * stride - 2 * padding + span_w + output_padding;
    } else {
        oh = (x->h + 2 * padding - span_h) / stride + 1;
        ow = (x->w + 2 * padding - span_w) / stride + 1;
        if (x->h + 2 * padding < span_h || x->w + 2 * padding < span_w)
            oh = ow = 0;
    }
    if (oh < 1 || ow < 1)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: input %lldx%lld too small for the kernel",
                              name, (long long)x->h, (long long)x->w);
    if (fusion && !fusion_ok(g, name, fusion, x->n, oc, oh, ow))
        return NULL;
    conv_state *s = calloc(1, sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "%s: out of memory", name);
    s->transposed = transposed;
    s->stride = stride;
    s->padding = padding;
    s->output_padding = output_padding;
    s->dilation = dilation;
    cz_tensor *in[CZ_MAX_INPUTS] = {x, w};
    int n_in = 2;
    if (fusion) {
        s->act = fusion->act;
        s->slope = fusion->slope;
        s->fold = fusion->bn_weight != NULL;
    }
    if (s->fold) {
        s->eps = fusion->eps;
        s->scale = malloc((size_t)oc * sizeof *s->scale);
        s->bias = malloc((size_t)oc * sizeof *s->bias);
        if (!s->scale || !s->bias) {
            conv_destroy(s);
            return cz_graph_error(g, CZ_ERR_NOMEM, "%s: out of memory", name);
        }
        in[FOLD_GAMMA] = fusion->bn_weight;
        in[FOLD_BETA] = fusion->bn_bias;
        in[FOLD_MEAN] = fusion->running_mean;
        in[FOLD_VAR] = fusion->running_var;
        n_in = FOLD_END;
    }
    s->bias_at = b ? n_in : -1;
    if (b)
        in[n_in++] = b;
    s->residual_at = fusion && fusion->residual ? n_in : -1;
    if (s->residual_at >= 0)
        in[n_in++] = fusion->residual;
    const cz_op *op = fusion ? transposed ? &fused_deconv_op : &fused_conv_op
                             : transposed ? &deconv_op : &conv_op;
    cz_tensor *y = cz_graph_node(g, op, in, n_in, x->n, oc, oh, ow, s);
    /* Added to in place where the plan can: not over the convolution's own
     * input, which it reads after the residual is in the output. */
    if (s->residual_at >= 0 && fusion->residual != x)
        cz_graph_may_overwrite(g, y, fusion->residual);
    return y;
}

cz_tensor *cz_conv2d(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b, int stride,
                     int padding, int dilation)
{
    return build(g, false, x, w, b, stride, padding, 0, dilation, NULL);
}

cz_tensor *cz_conv_transpose2d(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b,
                               int stride, int padding, int output_padding, int dilation)
{
    return build(g, true, x, w, b, stride, padding, output_padding, dilation, NULL);
}

cz_tensor *cz_conv2d_fused(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b, int stride,
                           int padding, int dilation, const cz_conv_fusion *fusion)
{
    if (!fusion)
        return cz_graph_error(g, CZ_ERR_INVALID, "conv2d_fused: no fusion");
    return build(g, false, x, w, b, stride, padding, 0, dilation, fusion);
}

cz_tensor *cz_conv_transpose2d_fused(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b,
                                     int stride, int padding, int output_padding, int dilation,
                                     const cz_conv_fusion *fusion)
{
    if (!fusion)
        return cz_graph_error(g, CZ_ERR_INVALID, "conv_transpose2d_fused: no fusion");
    return build(g, true, x, w, b, stride, padding, output_padding, dilation, fusion);
}
