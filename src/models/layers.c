/* Named layers over the op builders, and three small ops the models need:
 * L -> gray, a per-channel affine input map, and pad/crop. */
#include "models/layers.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void cz_layer_name(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, CZ_NAME_MAX, fmt, ap);
    va_end(ap);
}

static cz_tensor *param(cz_graph *g, const char *prefix, const char *leaf, int ndim,
                        const int64_t *shape, cz_init init, float scale)
{
    char name[CZ_NAME_MAX];
    cz_layer_name(name, "%s.%s", prefix, leaf);
    return cz_graph_param(g, name, ndim, shape, init, scale);
}

static cz_tensor *buffer(cz_graph *g, const char *prefix, const char *leaf, int64_t c,
                         cz_init init)
{
    char name[CZ_NAME_MAX];
    cz_layer_name(name, "%s.%s", prefix, leaf);
    return cz_graph_buffer(g, name, 1, &c, init);
}

/* A conv's weight (shape) and, if bias, its bias [n_bias]; false if one
 * could not be created. */
static bool conv_params(cz_graph *g, const char *prefix, const int64_t shape[4], int64_t n_bias,
                        bool bias, cz_tensor **w, cz_tensor **b)
{
    *w = param(g, prefix, "weight", 4, shape, CZ_INIT_NORMAL, CZ_INIT_GAIN);
    *b = bias ? param(g, prefix, "bias", 1, &n_bias, CZ_INIT_ZEROS, 0) : NULL;
    return *w && (!bias || *b);
}

/* A batch norm's weight, bias and running statistics [c], into a fusion. */
static void bn_params(cz_graph *g, const char *prefix, int64_t c, cz_conv_fusion *f)
{
    /* ONES + scale: see layers.h. */
    f->bn_weight = param(g, prefix, "weight", 1, &c, CZ_INIT_ONES, CZ_INIT_GAIN);
    f->bn_bias = param(g, prefix, "bias", 1, &c, CZ_INIT_ZEROS, 0);
    f->running_mean = buffer(g, prefix, "running_mean", c, CZ_INIT_ZEROS);
    f->running_var = buffer(g, prefix, "running_var", c, CZ_INIT_ONES);
}

cz_tensor *cz_layer_conv(cz_graph *g, const char *prefix, cz_tensor *x, int64_t oc, int k,
                         int stride, int padding, bool bias)
{
    if (!x)
        return NULL;
    int64_t shape[4] = {oc, x->c, k, k};
    cz_tensor *w, *b;
    if (!conv_params(g, prefix, shape, oc, bias, &w, &b))
        return NULL;
    return cz_conv2d(g, x, w, b, stride, padding, 1);
}

cz_tensor *cz_layer_conv_transpose(cz_graph *g, const char *prefix, cz_tensor *x, int64_t oc,
                                   int k, int stride, int padding, bool bias)
{
    if (!x)
        return NULL;
    int64_t shape[4] = {x->c, oc, k, k};
    cz_tensor *w, *b;
    if (!conv_params(g, prefix, shape, oc, bias, &w, &b))
        return NULL;
    return cz_conv_transpose2d(g, x, w, b, stride, padding, 0, 1);
}

cz_tensor *cz_layer_bn(cz_graph *g, const char *prefix, cz_tensor *x, float eps)
{
    if (!x)
        return NULL;
    cz_conv_fusion f;
    bn_params(g, prefix, x->c, &f);
    return cz_batch_norm2d(g, x, f.bn_weight, f.bn_bias, f.running_mean, f.running_var,
                           CZ_BN_MOMENTUM, eps);
}

static cz_tensor *activate(cz_graph *g, cz_tensor *x, cz_act act)
{
    switch (act) {
    case CZ_ACT_RELU: return cz_relu(g, x);
    case CZ_ACT_LEAKY_RELU: return cz_leaky_relu(g, x, CZ_LEAKY_SLOPE);
    case CZ_ACT_NONE: break;
    }
    return x;
}

bool cz_layer_conv_bn_make(cz_conv_bn *layer, cz_graph *g, const char *conv_prefix,
                           const char *bn_prefix, int64_t in_c, int64_t oc, int k, int stride,
                           int padding, bool bias, float eps)
{
    int64_t shape[4] = {oc, in_c, k, k};
    *layer = (cz_conv_bn){.bn = {.eps = eps}, .stride = stride, .padding = padding};
    if (!conv_params(g, conv_prefix, shape, oc, bias, &layer->weight, &layer->bias))
        return false;
    if (bn_prefix)
        bn_params(g, bn_prefix, oc, &layer->bn);
    return cz_graph_status(g) == CZ_OK;
}

cz_tensor *cz_layer_conv_bn_apply(cz_graph *g, const cz_conv_bn *layer, cz_tensor *x,
                                  cz_tensor *residual, cz_act act)
{
    if (!x)
        return NULL;
    const cz_conv_fusion *bn = &layer->bn;
    if (!cz_graph_fuses(g)) {
        /* The ReLU goes with the op before it: one pass less each way. */
        cz_tensor *y = cz_conv2d(g, x, layer->weight, layer->bias, layer->stride, layer->padding, 1);
        bool relu_done = false;
        if (bn->bn_weight) {
            relu_done = act == CZ_ACT_RELU && !residual;
            y = (relu_done ? cz_batch_norm2d_relu : cz_batch_norm2d)(
                g, y, bn->bn_weight, bn->bn_bias, bn->running_mean, bn->running_var,
                CZ_BN_MOMENTUM, bn->eps);
        }
        if (residual) {
            relu_done = act == CZ_ACT_RELU;
            y = relu_done ? cz_add_relu(g, y, residual) : cz_add(g, y, residual);
        }
        return relu_done ? y : activate(g, y, act);
    }
    cz_conv_fusion f = *bn;
    f.residual = residual;
    f.act = act;
    f.slope = CZ_LEAKY_SLOPE;
    return cz_conv2d_fused(g, x, layer->weight, layer->bias, layer->stride, layer->padding, 1, &f);
}

cz_tensor *cz_layer_conv_bn_act(cz_graph *g, const char *conv_prefix, const char *bn_prefix,
                                cz_tensor *x, int64_t oc, int k, int stride, int padding,
                                bool bias, float eps, cz_act act)
{
    cz_conv_bn layer;
    if (!x || !cz_layer_conv_bn_make(&layer, g, conv_prefix, bn_prefix, x->c, oc, k, stride,
                                     padding, bias, eps))
        return NULL;
    return cz_layer_conv_bn_apply(g, &layer, x, NULL, act);
}

cz_tensor *cz_layer_conv_transpose_bn(cz_graph *g, const char *conv_prefix,
                                      const char *bn_prefix, cz_tensor *x, int64_t oc, int k,
                                      int stride, int padding, int64_t h, int64_t w)
{
    if (!x)
        return NULL;
    /* conv_transpose2d's output size, to know whether pad_crop only crops. */
    int64_t oh = (x->h - 1) * stride - 2 * padding + k, ow = (x->w - 1) * stride - 2 * padding + k;
    /* oneDNN 2.6's fp32 transposed convolution adds a bias in a pass of its
     * own that costs more than the batch norm it would replace (1.5 ms
     * against 0.5 ms for a [1, 64, 128, 128] output); its bf16 one adds it
     * at no cost. */
    bool pays = cz_graph_precision(g) == CZ_BF16;
    if (!cz_graph_fuses(g) || !pays || oh < h || ow < w) {
        cz_tensor *y = cz_layer_conv_transpose(g, conv_prefix, x, oc, k, stride, padding, false);
        return cz_layer_bn(g, bn_prefix, cz_pad_crop(g, y, h, w), CZ_BN_EPS);
    }
    int64_t shape[4] = {x->c, oc, k, k};
    cz_tensor *weight, *no_bias;
    cz_conv_fusion f = {.eps = CZ_BN_EPS, .act = CZ_ACT_NONE};
    if (!conv_params(g, conv_prefix, shape, oc, false, &weight, &no_bias))
        return NULL;
    bn_params(g, bn_prefix, oc, &f);
    cz_tensor *y = cz_conv_transpose2d_fused(g, x, weight, NULL, stride, padding, 0, 1, &f);
    return y ? cz_pad_crop(g, y, h, w) : NULL;
}

cz_tensor *cz_layer_linear(cz_graph *g, const char *prefix, cz_tensor *x, int64_t out)
{
    if (!x)
        return NULL;
    int64_t shape[2] = {out, x->c * x->h * x->w};
    cz_tensor *w = param(g, prefix, "weight", 2, shape, CZ_INIT_NORMAL, CZ_INIT_GAIN);
    cz_tensor *b = param(g, prefix, "bias", 1, &out, CZ_INIT_ZEROS, 0);
    return cz_linear(g, x, w, b);
}

/* --- l_to_gray: skimage's lab2rgb of (L*, 0, 0), with its constants --- */

#define L_SCALE 50.0f            /* L* = (x + 1) * 50 */
#define LAB_F_THRESHOLD 0.2068966f /* fy above which Y = fy^3 */
#define LAB_KAPPA 7.787f         /* below it, Y = (fy - 16/116) / kappa */
#define SRGB_THRESHOLD 0.0031308f /* linear Y below which sRGB is linear */
#define SRGB_SLOPE 12.92f
#define SRGB_GAMMA 2.4f

static float gray_of(float x, float *dv_dx)
{
    float fy = ((x + 1.0f) * L_SCALE + 16.0f) / 116.0f;
    float dfy = L_SCALE / 116.0f;
    float y, dy;
    if (fy > LAB_F_THRESHOLD) {
        y = fy * fy * fy;
        dy = 3.0f * fy * fy * dfy;
    } else {
        y = (fy - 16.0f / 116.0f) / LAB_KAPPA;
        dy = dfy / LAB_KAPPA;
    }
    if (y < 0.0f) {
        y = 0.0f;
        dy = 0.0f;
    }
    float v, dv;
    if (y > SRGB_THRESHOLD) {
        float p = powf(y, 1.0f / SRGB_GAMMA);
        v = 1.055f * p - 0.055f;
        dv = 1.055f / SRGB_GAMMA * p / y * dy;
    } else {
        v = SRGB_SLOPE * y;
        dv = SRGB_SLOPE * dy;
    }
    if (v < 0.0f || v > 1.0f) {
        v = v < 0.0f ? 0.0f : 1.0f;
        dv = 0.0f;
    }
    *dv_dx = dv;
    return v;
}

static void gray_forward(cz_graph *g, cz_node *node)
{
    const float *x = node->in[0]->data;
    float *y = node->out->data;
    int64_t n = cz_numel(node->out);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float d;
        y[i] = gray_of(x[i], &d);
    }
}

static void gray_backward(cz_graph *g, cz_node *node)
{
    cz_tensor *xt = node->in[0];
    if (!xt->needs_grad)
        return;
    const float *x = xt->data, *dy = node->out->grad;
    float *dx = xt->grad;
    int64_t n = cz_numel(node->out);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float d;
        gray_of(x[i], &d);
        dx[i] += dy[i] * d;
    }
}

static const cz_op gray_op = {"l_to_gray", NULL, gray_forward, gray_backward, NULL,
                             CZ_OP_PLAIN, false, NULL};

cz_tensor *cz_l_to_gray(cz_graph *g, cz_tensor *x)
{
    if (!x || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "l_to_gray: missing input");
    if (x->c != 1)
        return cz_graph_error(g, CZ_ERR_INVALID, "l_to_gray: input has %lld channels, not 1",
                              (long long)x->c);
    return cz_graph_node(g, &gray_op, &x, 1, x->n, 1, x->h, x->w, NULL);
}

/* --- channel_affine --- */

typedef struct {
    int src[3];
    float scale[3], shift[3];
} affine_state;

static void affine_forward(cz_graph *g, cz_node *node)
{
    const affine_state *s = node->state;
    const cz_tensor *x = node->in[0];
    int64_t N = x->n, C = x->c, HW = x->h * x->w;
    float *y = node->out->data;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < N; b++)
        for (int c = 0; c < 3; c++) {
            const float *xp = x->data + (b * C + s->src[c]) * HW;
            float *yp = y + (b * 3 + c) * HW;
            for (int64_t i = 0; i < HW; i++)
                yp[i] = xp[i] * s->scale[c] + s->shift[c];
        }
}

static void affine_backward(cz_graph *g, cz_node *node)
{
    const affine_state *s = node->state;
    cz_tensor *x = node->in[0];
    if (!x->needs_grad)
        return;
    int64_t N = x->n, C = x->c, HW = x->h * x->w;
    const float *dy = node->out->grad;
    /* Output channels may share a source: one at a time, batches apart. */
    for (int c = 0; c < 3; c++) {
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < N; b++) {
            float *dx = x->grad + (b * C + s->src[c]) * HW;
            const float *d = dy + (b * 3 + c) * HW;
            for (int64_t i = 0; i < HW; i++)
                dx[i] += d[i] * s->scale[c];
        }
    }
}

static const cz_op affine_op = {"channel_affine", NULL, affine_forward, affine_backward, NULL,
                               CZ_OP_PLAIN, false, cz_backward_reads_nothing};

cz_tensor *cz_channel_affine(cz_graph *g, cz_tensor *x, const int src[3], const float scale[3],
                             const float shift[3])
{
    if (!x || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "channel_affine: missing input");
    for (int c = 0; c < 3; c++)
        if (src[c] < 0 || src[c] >= x->c)
            return cz_graph_error(g, CZ_ERR_INVALID,
                                  "channel_affine: source channel %d of a %lld-channel input",
                                  src[c], (long long)x->c);
    affine_state *s = malloc(sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "channel_affine: out of memory");
    for (int c = 0; c < 3; c++) {
        s->src[c] = src[c];
        s->scale[c] = scale[c];
        s->shift[c] = shift[c];
    }
    return cz_graph_node(g, &affine_op, &x, 1, x->n, 3, x->h, x->w, s);
}

/* --- pad_crop --- */

static void pad_crop_forward(cz_graph *g, cz_node *node)
{
    const cz_tensor *x = node->in[0], *y = node->out;
    int64_t NC = x->n * x->c, H = x->h, W = x->w, OH = y->h, OW = y->w;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < NC; p++)
        for (int64_t h = 0; h < OH; h++) {
            float *yr = y->data + (p * OH + h) * OW;
            const float *xr = x->data + (p * H + h) * W;
            for (int64_t w = 0; w < OW; w++)
                yr[w] = h < H && w < W ? xr[w] : 0.0f;
        }
}

static void pad_crop_backward(cz_graph *g, cz_node *node)
{
    cz_tensor *x = node->in[0];
    if (!x->needs_grad)
        return;
    const cz_tensor *y = node->out;
    int64_t NC = x->n * x->c, H = x->h, W = x->w, OH = y->h, OW = y->w;
    int64_t hh = H < OH ? H : OH, ww = W < OW ? W : OW;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < NC; p++)
        for (int64_t h = 0; h < hh; h++) {
            const float *dy = y->grad + (p * OH + h) * OW;
            float *dx = x->grad + (p * H + h) * W;
            for (int64_t w = 0; w < ww; w++)
                dx[w] += dy[w];
        }
}

static const cz_op pad_crop_op = {"pad_crop", NULL, pad_crop_forward, pad_crop_backward, NULL,
                                 CZ_OP_PLAIN, false, cz_backward_reads_nothing};

cz_tensor *cz_pad_crop(cz_graph *g, cz_tensor *x, int64_t h, int64_t w)
{
    if (!x || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "pad_crop: missing input");
    if (h == x->h && w == x->w)
        return x;
    return cz_graph_node(g, &pad_crop_op, &x, 1, x->n, x->c, h, w, NULL);
}
