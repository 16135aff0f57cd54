/* Element-wise activations: relu, leaky_relu, tanh, sigmoid.
 *
 * One node type; the kind picks the function. relu and leaky_relu take their
 * derivative from the input (PyTorch: x > 0 ? 1 : slope, so 0 counts as
 * negative), tanh and sigmoid from the output, which is what the forward
 * already computed. The loops without calls are `omp simd`: at -O2 gcc
 * vectorizes them only when told to (the same values either way). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/half.h"
#include "ops/ops.h"

typedef enum { ACT_RELU, ACT_LEAKY_RELU, ACT_TANH, ACT_SIGMOID } act_kind;

typedef struct {
    act_kind kind;
    float slope; /* leaky_relu: the gradient and gain for x <= 0 */
} act_state;

static float sigmoid(float x)
{
    /* Each branch exponentiates a non-positive number: no overflow. */
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* Every function here is layout-free on fp32 values; relu and leaky_relu,
 * the ones that take channels-last tensors, have loops of their own for
 * bf16 ones. */

/* relu on bf16 values: a negative one (sign bit set, not NaN) becomes +0;
 * as a mask, so that the loop vectorizes. */
static void relu_forward_bf16(const cz_tensor *xt, cz_tensor *yt)
{
    const uint16_t *x = (const uint16_t *)xt->data;
    uint16_t *y = (uint16_t *)yt->data;
    int64_t n = cz_numel(yt);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint16_t keep = (x[i] & 0x8000) == 0 || (x[i] & 0x7fff) > 0x7f80;
        y[i] = x[i] & (uint16_t)-keep;
    }
}

/* leaky_relu on bf16 values, through fp32 (a standalone one: those after
 * convolutions are fused into them). */
static void leaky_forward_bf16(const cz_tensor *xt, cz_tensor *yt, float slope)
{
    const uint16_t *x = (const uint16_t *)xt->data;
    uint16_t *y = (uint16_t *)yt->data;
    int64_t n = cz_numel(yt);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = cz_bf16_to_f32(x[i]);
        y[i] = cz_f32_to_bf16(cz_select(v > 0.0f, v, v * slope));
    }
}

static void act_forward(cz_graph *g, cz_node *node)
{
    const act_state *s = node->state;
    if (node->out->layout == CZ_LAYOUT_NHWC_BF16) { /* relu or leaky_relu */
        if (s->kind == ACT_RELU)
            relu_forward_bf16(node->in[0], node->out);
        else
            leaky_forward_bf16(node->in[0], node->out, s->slope);
        return;
    }
    const float *x = node->in[0]->data;
    float *y = node->out->data;
    int64_t n = cz_numel(node->out);
    float slope = s->slope;
    switch (s->kind) {
    case ACT_RELU:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] <= 0.0f ? 0.0f : x[i]; /* NaN passes, as clamp_min */
        break;
    case ACT_LEAKY_RELU:
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] = cz_select(x[i] > 0.0f, x[i], x[i] * slope);
        break;
    case ACT_TANH:
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] = tanhf(x[i]);
        break;
    case ACT_SIGMOID:
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] = sigmoid(x[i]);
        break;
    }
}

/* relu and leaky_relu on a bf16 training graph's values (act_backward). */
static void act_backward_bf16(const act_state *s, cz_tensor *xt, const cz_tensor *yt)
{
    float slope = s->slope;
    const uint16_t *sign = (const uint16_t *)(s->kind == ACT_LEAKY_RELU && slope < 0.0f ? xt : yt)->data;
    const float *dy = yt->grad;
    int64_t n = cz_numel(yt);
    if (s->kind == ACT_RELU)
        CZ_GRAD_LOOP(xt, n, i, cz_select(cz_bf16_to_f32(sign[i]) <= 0.0f, 0.0f, dy[i]));
    else
        CZ_GRAD_LOOP(xt, n, i, cz_select(cz_bf16_to_f32(sign[i]) > 0.0f, dy[i], dy[i] * slope));
}

static void act_backward(cz_graph *g, cz_node *node)
{
    const act_state *s = node->state;
    cz_tensor *xt = node->in[0];
    if (!xt->needs_grad)
        return;
    if (node->out->layout == CZ_LAYOUT_NHWC_BF16) {
        act_backward_bf16(s, xt, node->out);
        return;
    }
    const float *x = xt->data, *y = node->out->data, *dy = node->out->grad;
    int64_t n = cz_numel(node->out);
    float slope = s->slope;
    /* relu's output is positive exactly where its input is, and so is
     * leaky_relu's unless its slope is negative (act_backward_reads). */
    const float *sign = s->kind == ACT_LEAKY_RELU && slope < 0.0f ? x : y;
    switch (s->kind) {
    case ACT_RELU: CZ_GRAD_LOOP(xt, n, i, cz_select(sign[i] <= 0.0f, 0.0f, dy[i])); break;
    case ACT_LEAKY_RELU:
        CZ_GRAD_LOOP(xt, n, i, cz_select(sign[i] > 0.0f, dy[i], dy[i] * slope));
        break;
    case ACT_TANH: CZ_GRAD_LOOP(xt, n, i, dy[i] * (1.0f - y[i] * y[i])); break;
    case ACT_SIGMOID: CZ_GRAD_LOOP(xt, n, i, dy[i] * y[i] * (1.0f - y[i])); break;
    }
}

/* The output only, so that the input (often a batch norm's output) need
 * not outlive forward. */
static bool act_backward_reads(const cz_graph *g, const cz_node *node, int k)
{
    (void)g;
    const act_state *s = node->state;
    bool from_input = s->kind == ACT_LEAKY_RELU && s->slope < 0.0f;
    return k == (from_input ? 0 : CZ_OUTPUT);
}

static const cz_op act_ops[] = {
    /* Element by element, relu and leaky_relu read and write any layout
     * (fp32 ones alike, bf16 with loops of their own). */
    [ACT_RELU] = {"relu", NULL, act_forward, act_backward, NULL, CZ_OP_ONE_LAYOUT, true,
                  act_backward_reads},
    [ACT_LEAKY_RELU] = {"leaky_relu", NULL, act_forward, act_backward, NULL, CZ_OP_ONE_LAYOUT,
                        true, act_backward_reads},
    [ACT_TANH] = {"tanh", NULL, act_forward, act_backward, NULL, CZ_OP_PLAIN, true,
                  act_backward_reads},
    [ACT_SIGMOID] = {"sigmoid", NULL, act_forward, act_backward, NULL, CZ_OP_PLAIN, true,
                     act_backward_reads},
};

static cz_tensor *build(cz_graph *g, cz_tensor *x, act_kind kind, float slope)
{
    const cz_op *op = &act_ops[kind];
    if (!x || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: missing input", op->name);
    act_state *s = malloc(sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "%s: out of memory", op->name);
    s->kind = kind;
    s->slope = slope;
    return cz_graph_node(g, op, &x, 1, x->n, x->c, x->h, x->w, s);
}

cz_tensor *cz_relu(cz_graph *g, cz_tensor *x) { return build(g, x, ACT_RELU, 0.0f); }

cz_tensor *cz_leaky_relu(cz_graph *g, cz_tensor *x, float negative_slope)
{
    if (cz_graph_status(g) == CZ_OK && !isfinite(negative_slope))
        return cz_graph_error(g, CZ_ERR_INVALID, "leaky_relu: negative slope %g is not finite",
                              (double)negative_slope);
    return build(g, x, ACT_LEAKY_RELU, negative_slope);
}

cz_tensor *cz_tanh(cz_graph *g, cz_tensor *x) { return build(g, x, ACT_TANH, 0.0f); }
cz_tensor *cz_sigmoid(cz_graph *g, cz_tensor *x) { return build(g, x, ACT_SIGMOID, 0.0f); }
