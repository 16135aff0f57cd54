/* linear on oneDNN's inner product.
 *
 * A [N, C, H, W] input is flattened to [N, C*H*W] without moving a byte: the
 * primitive sees x as 4-D and the [OUT, IN] weight as [OUT, C, H, W] (oihw
 * over the same bytes, since IN = C*H*W is exactly the row-major flattening).
 * The output is [N, OUT], stored as [N, OUT, 1, 1].
 *
 * As for convolutions, the primitives pick their own layouts and, in bf16
 * graphs, take bf16 sources, weights and output gradients with fp32 outputs,
 * output gradients and bias; mirrors convert, and add gradients into ours. */
#include <stdlib.h>

#include "ops/ops.h"
#include "ops/weighted.h"

static void linear_destroy(void *state)
{
    cz_weighted *p = state;
    if (!p)
        return;
    cz_weighted_release(p);
    free(p);
}

static cz_status linear_plan(cz_graph *g, cz_node *node)
{
    cz_weighted *p = node->state;
    cz_tensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
    cz_tensor *y = node->out;
    bool bf16 = cz_graph_precision(g) == CZ_BF16;
    dnnl_data_type_t low = bf16 ? dnnl_bf16 : dnnl_f32;
    int64_t x_dims[4] = {x->n, x->c, x->h, x->w};
    int64_t w_dims[4] = {y->c, x->c, x->h, x->w};
    int64_t y_dims[2] = {y->n, y->c};
    int64_t b_dims[1] = {y->c};
    /* Ours: plain fp32. */
    cz_weighted_layouts ours = {.x = cz_dnnl_tensor_md(x), .w = cz_dnnl_md(4, w_dims, dnnl_f32, dnnl_oihw),
                                .b = cz_dnnl_md(1, b_dims, dnnl_f32, dnnl_x),
                                .y = cz_dnnl_md(2, y_dims, dnnl_f32, dnnl_nc),
                                .dx = cz_dnnl_grad_md(x), .dy = cz_dnnl_md(2, y_dims, dnnl_f32, dnnl_nc)};
    /* The primitives': layout left open, data type per precision. */
    dnnl_memory_desc_t src = cz_dnnl_md(4, x_dims, low, dnnl_format_tag_any);
    dnnl_memory_desc_t weights = cz_dnnl_md(4, w_dims, low, dnnl_format_tag_any);
    dnnl_memory_desc_t dst = cz_dnnl_md(2, y_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_t diff_src = cz_dnnl_md(4, x_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_t diff_weights = cz_dnnl_md(4, w_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_t diff_dst = cz_dnnl_md(2, y_dims, low, dnnl_format_tag_any);
    bool training = cz_graph_training(g);
    dnnl_inner_product_desc_t desc;
    cz_status st;

    dnnl_prop_kind_t prop = training ? dnnl_forward_training : dnnl_forward_inference;
    if ((st = cz_dnnl_check(dnnl_inner_product_forward_desc_init(&desc, prop, &src, &weights, b ? &ours.b : NULL, &dst),
                            "inner product descriptor")) != CZ_OK ||
        (st = cz_dnnl_create(&p->fwd_pd, &p->fwd, g, &desc, NULL, NULL, "inner product forward")) != CZ_OK)
        return st;
    cz_graph_scratch_for(g, CZ_BACKWARD_CALL); /* the backward primitives' scratchpads */
    if (training && x->may_need_grad &&
        ((st = cz_dnnl_check(dnnl_inner_product_backward_data_desc_init(&desc, &diff_src, &weights, &diff_dst),
                             "inner product backward-data descriptor")) != CZ_OK ||
         (st = cz_dnnl_create(&p->bwd_data_pd, &p->bwd_data, g, &desc, NULL, p->fwd_pd, "inner product backward data")) != CZ_OK))
        return st;
    if (training && (w->may_need_grad || (b && b->may_need_grad)) &&
        ((st = cz_dnnl_check(dnnl_inner_product_backward_weights_desc_init(&desc, &src, &diff_weights, b ? &ours.b : NULL, &diff_dst),
                             "inner product backward-weights descriptor")) != CZ_OK ||
         (st = cz_dnnl_create(&p->bwd_weights_pd, &p->bwd_weights, g, &desc, NULL, p->fwd_pd, "inner product backward weights")) != CZ_OK))
        return st;
    p->b = b;
    return cz_weighted_bind(g, p, node, &ours);
}

static void linear_forward(cz_graph *g, cz_node *node) { cz_weighted_forward(g, node->state); }
static void linear_backward(cz_graph *g, cz_node *node) { cz_weighted_backward(g, node, node->state); }

static const cz_op linear_op = {"linear", linear_plan, linear_forward, linear_backward,
                                linear_destroy, CZ_OP_PLAIN, true, NULL};

cz_tensor *cz_linear(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b)
{
    if (!x || !w || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "linear: missing input");
    int64_t in_features = x->c * x->h * x->w, out_features = w->n;
    if (w->c * w->h * w->w != in_features)
        return cz_graph_error(g, CZ_ERR_INVALID,
                              "linear: input has %lld features, weight expects %lld",
                              (long long)in_features, (long long)(w->c * w->h * w->w));
    if (b && cz_numel(b) != out_features)
        return cz_graph_error(g, CZ_ERR_INVALID, "linear: bias has %lld values, expected %lld",
                              (long long)cz_numel(b), (long long)out_features);
    cz_weighted *s = calloc(1, sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "linear: out of memory");
    cz_tensor *in[3] = {x, w, b};
    cz_tensor *y = cz_graph_node(g, &linear_op, in, b ? 3 : 2, x->n, out_features, 1, 1, s);
    if (y)
        y->ndim = 2; /* PyTorch's [N, OUT] */
    return y;
}
