/* Ops that combine or gate tensors: channel concatenation, addition, dropout. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/half.h"
#include "ops/ops.h"

/* --- cat: out[:, off_k : off_k + C_k] = xs[k] --- */

/* Channels last, each pixel's channels are the inputs' channels one after
 * another: one copy of each input's channels per pixel. */
static void cat_forward_channels_last(const cz_node *node)
{
    const cz_tensor *y = node->out;
    size_t size = cz_value_size(y);
    int64_t pixels = y->n * y->h * y->w;
    size_t y_pixel = (size_t)y->c * size;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < pixels; i++) {
        char *dst = (char *)y->data + (size_t)i * y_pixel;
        for (int k = 0; k < node->n_in; k++) {
            size_t x_pixel = (size_t)node->in[k]->c * size;
            memcpy(dst, (const char *)node->in[k]->data + (size_t)i * x_pixel, x_pixel);
            dst += x_pixel;
        }
    }
}

/* The same tensor may appear twice among the inputs, so the backward handles
 * one input at a time: within one, the planes written are disjoint. */
static void cat_forward(cz_graph *g, cz_node *node)
{
    const cz_tensor *y = node->out;
    if (y->layout != CZ_LAYOUT_NCHW_F32) {
        cat_forward_channels_last(node);
        return;
    }
    int64_t N = y->n, C = y->c, HW = y->h * y->w;
    int64_t off = 0;
    for (int k = 0; k < node->n_in; k++) {
        const cz_tensor *x = node->in[k];
        int64_t Ck = x->c;
#pragma omp parallel for collapse(2) schedule(static)
        for (int64_t b = 0; b < N; b++)
            for (int64_t c = 0; c < Ck; c++)
                memcpy(y->data + (b * C + off + c) * HW, x->data + (b * Ck + c) * HW,
                       (size_t)HW * sizeof(float));
        off += Ck;
    }
}

/* Channels last (fp32, training): each pixel's slice of the output
 * gradient goes back to its input. */
static void cat_backward_channels_last(const cz_node *node)
{
    const cz_tensor *y = node->out;
    int64_t pixels = y->n * y->h * y->w, C = y->c, off = 0;
    for (int k = 0; k < node->n_in; k++) {
        cz_tensor *x = node->in[k];
        int64_t Ck = x->c;
        if (x->needs_grad) {
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < pixels; i++) {
                float *dx = x->grad + i * Ck;
                const float *dy = y->grad + i * C + off;
#pragma omp simd
                for (int64_t c = 0; c < Ck; c++)
                    dx[c] += dy[c];
            }
        }
        off += Ck;
    }
}

static void cat_backward(cz_graph *g, cz_node *node)
{
    const cz_tensor *y = node->out;
    if (y->layout != CZ_LAYOUT_NCHW_F32) {
        cat_backward_channels_last(node);
        return;
    }
    int64_t N = y->n, C = y->c, HW = y->h * y->w;
    int64_t off = 0;
    for (int k = 0; k < node->n_in; k++) {
        cz_tensor *x = node->in[k];
        int64_t Ck = x->c;
        if (x->needs_grad) {
#pragma omp parallel for collapse(2) schedule(static)
            for (int64_t b = 0; b < N; b++)
                for (int64_t c = 0; c < Ck; c++) {
                    float *dx = x->grad + (b * Ck + c) * HW;
                    const float *dy = y->grad + (b * C + off + c) * HW;
#pragma omp simd
                    for (int64_t i = 0; i < HW; i++)
                        dx[i] += dy[i];
                }
        }
        off += Ck;
    }
}

static const cz_op cat_op = {"cat", NULL, cat_forward, cat_backward, NULL, CZ_OP_ONE_LAYOUT, false,
                             cz_backward_reads_nothing};

cz_tensor *cz_cat(cz_graph *g, cz_tensor *const *xs, int n)
{
    if (cz_graph_status(g) != CZ_OK)
        return NULL;
    if (!xs || n < 1 || n > CZ_MAX_INPUTS)
        return cz_graph_error(g, CZ_ERR_INVALID, "cat: %d inputs, expected 1 to %d", n,
                              CZ_MAX_INPUTS);
    int64_t C = 0;
    for (int k = 0; k < n; k++) {
        if (!xs[k])
            return cz_graph_error(g, CZ_ERR_INVALID, "cat: input %d is missing", k);
        if (xs[k]->n != xs[0]->n || xs[k]->h != xs[0]->h || xs[k]->w != xs[0]->w)
            return cz_graph_error(g, CZ_ERR_INVALID,
                                  "cat: input %d is [%lld, %lld, %lld, %lld] but input 0 is "
                                  "[%lld, %lld, %lld, %lld]; N, H and W must match",
                                  k, (long long)xs[k]->n, (long long)xs[k]->c,
                                  (long long)xs[k]->h, (long long)xs[k]->w, (long long)xs[0]->n,
                                  (long long)xs[0]->c, (long long)xs[0]->h, (long long)xs[0]->w);
        /* Each tensor is far below INT64_MAX channels: the sum cannot wrap,
         * and cz_graph_node checks the total size. */
        C += xs[k]->c;
    }
    return cz_graph_node(g, &cat_op, xs, n, xs[0]->n, C, xs[0]->h, xs[0]->w, NULL);
}

/* --- add, and add_relu: relu(a + b) --- */

static const cz_op add_op, add_relu_op;

/* Element by element, so any layout: fp32 ones alike, bf16 ones through
 * fp32. */
static void add_forward_bf16(const cz_node *node, bool relu)
{
    const uint16_t *a = (const uint16_t *)node->in[0]->data, *b = (const uint16_t *)node->in[1]->data;
    uint16_t *y = (uint16_t *)node->out->data;
    int64_t n = cz_numel(node->out);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float sum = cz_bf16_to_f32(a[i]) + cz_bf16_to_f32(b[i]);
        y[i] = cz_f32_to_bf16(cz_select(relu && sum <= 0.0f, 0.0f, sum));
    }
}

static void add_forward(cz_graph *g, cz_node *node)
{
    bool relu = node->op == &add_relu_op;
    if (node->out->layout == CZ_LAYOUT_NHWC_BF16) {
        add_forward_bf16(node, relu);
        return;
    }
    const float *a = node->in[0]->data, *b = node->in[1]->data;
    float *y = node->out->data;
    int64_t n = cz_numel(node->out);
    if (relu) {
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float sum = a[i] + b[i];
            y[i] = sum <= 0.0f ? 0.0f : sum; /* NaN passes, as relu */
        }
    } else {
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++)
            y[i] = a[i] + b[i];
    }
}

static void add_backward(cz_graph *g, cz_node *node)
{
    const float *y = node->out->data, *dy = node->out->grad;
    const uint16_t *y_bf16 = (const uint16_t *)y; /* where the values are bf16 */
    bool relu = node->op == &add_relu_op, bf16 = node->out->layout == CZ_LAYOUT_NHWC_BF16;
    int64_t n = cz_numel(node->out);
    /* One input at a time, so cz_add(g, x, x) adds twice, as it should.
     * relu's output is 0 exactly where its input was <= 0: its mask. */
    for (int k = 0; k < 2; k++) {
        cz_tensor *x = node->in[k];
        if (!x->needs_grad)
            continue;
        if (relu && bf16)
            CZ_GRAD_LOOP(x, n, i, cz_select(cz_bf16_to_f32(y_bf16[i]) <= 0.0f, 0.0f, dy[i]));
        else if (relu)
            CZ_GRAD_LOOP(x, n, i, cz_select(y[i] <= 0.0f, 0.0f, dy[i]));
        else
            CZ_GRAD_LOOP(x, n, i, dy[i]);
    }
}

static const cz_op add_op = {"add", NULL, add_forward, add_backward, NULL, CZ_OP_ONE_LAYOUT,
                             true, cz_backward_reads_nothing};
static const cz_op add_relu_op = {"add_relu", NULL, add_forward, add_backward, NULL,
                                  CZ_OP_ONE_LAYOUT, true, cz_backward_reads_output};

static cz_tensor *build_add(cz_graph *g, const cz_op *op, cz_tensor *a, cz_tensor *b)
{
    if (!a || !b || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: missing input", op->name);
    if (a->n != b->n || a->c != b->c || a->h != b->h || a->w != b->w)
        return cz_graph_error(g, CZ_ERR_INVALID,
                              "%s: shapes [%lld, %lld, %lld, %lld] and [%lld, %lld, %lld, %lld] "
                              "differ", op->name,
                              (long long)a->n, (long long)a->c, (long long)a->h, (long long)a->w,
                              (long long)b->n, (long long)b->c, (long long)b->h, (long long)b->w);
    cz_tensor *in[2] = {a, b};
    return cz_graph_node(g, op, in, 2, a->n, a->c, a->h, a->w, NULL);
}

cz_tensor *cz_add(cz_graph *g, cz_tensor *a, cz_tensor *b) { return build_add(g, &add_op, a, b); }

cz_tensor *cz_add_relu(cz_graph *g, cz_tensor *a, cz_tensor *b)
{
    return build_add(g, &add_relu_op, a, b);
}

/* --- dropout --- */

typedef struct {
    float p;        /* probability of zeroing an element */
    float scale;    /* 1 / (1 - p): keeps the expected value */
    uint8_t *mask;  /* 1 where kept, drawn by each forward; from plan */
} dropout_state;

static void dropout_destroy(void *p)
{
    dropout_state *s = p;
    if (!s)
        return;
    free(s->mask);
    free(s);
}

static cz_status dropout_plan(cz_graph *g, cz_node *node)
{
    dropout_state *s = node->state;
    s->mask = malloc((size_t)cz_numel(node->out));
    if (!s->mask) {
        cz_graph_error(g, CZ_ERR_NOMEM, "dropout: out of memory");
        return cz_fail(CZ_ERR_NOMEM, "dropout: out of memory");
    }
    return CZ_OK;
}

static void dropout_forward(cz_graph *g, cz_node *node)
{
    const dropout_state *s = node->state;
    const float *x = node->in[0]->data;
    float *y = node->out->data;
    int64_t n = cz_numel(node->out);
    /* Drawn serially, element by element: the mask depends on the seed
     * alone, never on the thread count. */
    uint8_t *mask = s->mask;
    cz_rng *rng = cz_graph_rng(g);
    float p = s->p, scale = s->scale;
    for (int64_t i = 0; i < n; i++)
        mask[i] = cz_rng_uniform(rng) >= p;
    if (node->out->layout == CZ_LAYOUT_NHWC_BF16) {
        const uint16_t *xb = (const uint16_t *)x;
        uint16_t *yb = (uint16_t *)y;
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++)
            yb[i] = cz_f32_to_bf16(cz_select(mask[i], cz_bf16_to_f32(xb[i]) * scale, 0.0f));
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        y[i] = cz_select(mask[i], x[i] * scale, 0.0f);
}

static void dropout_backward(cz_graph *g, cz_node *node)
{
    const dropout_state *s = node->state;
    cz_tensor *x = node->in[0];
    if (!x->needs_grad)
        return;
    const float *dy = node->out->grad;
    int64_t n = cz_numel(node->out);
    const uint8_t *mask = s->mask;
    float scale = s->scale;
    CZ_GRAD_LOOP(x, n, i, cz_select(mask[i], dy[i] * scale, 0.0f));
}

/* A node only in training graphs: element by element, any layout (the
 * mask is drawn per element in memory order), bf16 values through fp32. */
static const cz_op dropout_op = {"dropout", dropout_plan, dropout_forward, dropout_backward,
                                 dropout_destroy, CZ_OP_ONE_LAYOUT, true,
                                 cz_backward_reads_nothing};

cz_tensor *cz_dropout(cz_graph *g, cz_tensor *x, float p)
{
    if (!x || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "dropout: missing input");
    if (!(p >= 0.0f && p < 1.0f))
        return cz_graph_error(g, CZ_ERR_INVALID, "dropout: probability %g is outside [0, 1)",
                              (double)p);
    /* As PyTorch, inference and p = 0 are the identity: no node at all. */
    if (!cz_graph_training(g) || p == 0.0f)
        return x;
    dropout_state *s = calloc(1, sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "dropout: out of memory");
    s->p = p;
    s->scale = (float)(1.0 / (1.0 - (double)p));
    return cz_graph_node(g, &dropout_op, &x, 1, x->n, x->c, x->h, x->w, s);
}
