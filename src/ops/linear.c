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

#include "engine/onednn.h"
#include "ops/ops.h"

typedef struct {
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_weights_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_weights;
    /* forward */
    cz_mirror src, weights, bias, dst;
    uint64_t weights_version; /* inference graphs reorder weights only when changed */
    bool weights_fresh;
    /* backward data */
    cz_mirror bd_diff_dst, bd_weights, bd_diff_src;
    /* backward weights */
    cz_mirror bw_src, bw_diff_dst, bw_diff_weights, bw_diff_bias;
} linear_state;

static void linear_destroy(void *p)
{
    linear_state *s = p;
    if (!s)
        return;
    cz_mirror *mirrors[] = {&s->src,         &s->weights,     &s->bias,
                            &s->dst,         &s->bd_diff_dst, &s->bd_weights,
                            &s->bd_diff_src, &s->bw_src,      &s->bw_diff_dst,
                            &s->bw_diff_weights, &s->bw_diff_bias};
    for (size_t i = 0; i < sizeof mirrors / sizeof *mirrors; i++)
        cz_mirror_free(mirrors[i]);
    dnnl_primitive_destroy(s->fwd);
    dnnl_primitive_destroy(s->bwd_data);
    dnnl_primitive_destroy(s->bwd_weights);
    dnnl_primitive_desc_destroy(s->fwd_pd);
    dnnl_primitive_desc_destroy(s->bwd_data_pd);
    dnnl_primitive_desc_destroy(s->bwd_weights_pd);
    free(s);
}

static const dnnl_memory_desc_t *arg_md(dnnl_primitive_desc_t pd, int arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
}

static cz_status linear_plan(cz_graph *g, cz_node *node)
{
    linear_state *s = node->state;
    cz_tensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
    cz_tensor *y = node->out;
    bool bf16 = cz_graph_precision(g) == CZ_BF16;
    dnnl_data_type_t low = bf16 ? dnnl_bf16 : dnnl_f32;
    int64_t x_dims[4] = {x->n, x->c, x->h, x->w};
    int64_t w_dims[4] = {y->c, x->c, x->h, x->w};
    int64_t y_dims[2] = {y->n, y->c};
    int64_t b_dims[1] = {y->c};
    /* Ours: plain fp32. */
    dnnl_memory_desc_t x_user = cz_dnnl_tensor_md(x);
    dnnl_memory_desc_t w_user = cz_dnnl_md(4, w_dims, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_t y_user = cz_dnnl_md(2, y_dims, dnnl_f32, dnnl_nc);
    dnnl_memory_desc_t b_user = cz_dnnl_md(1, b_dims, dnnl_f32, dnnl_x);
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
    if ((st = cz_dnnl_check(dnnl_inner_product_forward_desc_init(&desc, prop, &src, &weights, b ? &b_user : NULL, &dst),
                            "inner product descriptor")) != CZ_OK ||
        (st = cz_dnnl_create(&s->fwd_pd, &s->fwd, &desc, NULL, NULL, "inner product forward")) != CZ_OK ||
        (st = cz_mirror_init(&s->src, &x_user, x->data, arg_md(s->fwd_pd, DNNL_ARG_SRC), CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_mirror_init(&s->weights, &w_user, w->data, arg_md(s->fwd_pd, DNNL_ARG_WEIGHTS), CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_mirror_init(&s->dst, &y_user, y->data, arg_md(s->fwd_pd, DNNL_ARG_DST), CZ_MIRROR_OUT)) != CZ_OK)
        return st;
    if (b && (st = cz_mirror_init(&s->bias, &b_user, b->data, arg_md(s->fwd_pd, DNNL_ARG_BIAS), CZ_MIRROR_IN)) != CZ_OK)
        return st;
    if (!training)
        return CZ_OK;

    if (x->may_need_grad &&
        ((st = cz_dnnl_check(dnnl_inner_product_backward_data_desc_init(&desc, &diff_src, &weights, &diff_dst),
                             "inner product backward-data descriptor")) != CZ_OK ||
         (st = cz_dnnl_create(&s->bwd_data_pd, &s->bwd_data, &desc, NULL, s->fwd_pd, "inner product backward data")) != CZ_OK ||
         (st = cz_mirror_init(&s->bd_diff_dst, &y_user, y->grad, arg_md(s->bwd_data_pd, DNNL_ARG_DIFF_DST), CZ_MIRROR_IN)) != CZ_OK ||
         (st = cz_mirror_init_shared(&s->bd_weights, &s->weights, &w_user, w->data, arg_md(s->bwd_data_pd, DNNL_ARG_WEIGHTS), CZ_MIRROR_IN)) != CZ_OK ||
         (st = cz_mirror_init(&s->bd_diff_src, &x_user, x->grad, arg_md(s->bwd_data_pd, DNNL_ARG_DIFF_SRC), CZ_MIRROR_ACCUMULATE)) != CZ_OK))
        return st;
    if (w->may_need_grad || (b && b->may_need_grad)) {
        if ((st = cz_dnnl_check(dnnl_inner_product_backward_weights_desc_init(&desc, &src, &diff_weights, b ? &b_user : NULL, &diff_dst),
                                "inner product backward-weights descriptor")) != CZ_OK ||
            (st = cz_dnnl_create(&s->bwd_weights_pd, &s->bwd_weights, &desc, NULL, s->fwd_pd, "inner product backward weights")) != CZ_OK ||
            (st = cz_mirror_init_shared(&s->bw_src, &s->src, &x_user, x->data, arg_md(s->bwd_weights_pd, DNNL_ARG_SRC), CZ_MIRROR_IN)) != CZ_OK ||
            (st = cz_mirror_init_shared(&s->bw_diff_dst, &s->bd_diff_dst, &y_user, y->grad, arg_md(s->bwd_weights_pd, DNNL_ARG_DIFF_DST), CZ_MIRROR_IN)) != CZ_OK)
            return st;
        /* A frozen weight or bias (grad NULL) gets scratch memory: the
         * primitive computes both, and the unwanted one is dropped. */
        if ((st = cz_mirror_init(&s->bw_diff_weights, &w_user, w->grad, arg_md(s->bwd_weights_pd, DNNL_ARG_DIFF_WEIGHTS), CZ_MIRROR_ACCUMULATE)) != CZ_OK)
            return st;
        if (b && (st = cz_mirror_init(&s->bw_diff_bias, &b_user, b->grad, arg_md(s->bwd_weights_pd, DNNL_ARG_DIFF_BIAS), CZ_MIRROR_ACCUMULATE)) != CZ_OK)
            return st;
    }
    return CZ_OK;
}

static void linear_forward(cz_graph *g, cz_node *node)
{
    linear_state *s = node->state;
    bool has_bias = node->n_in > 2;
    cz_mirror_sync(g, &s->src);
    uint64_t version = cz_graph_params_version(g);
    if (cz_graph_training(g) || !s->weights_fresh || s->weights_version != version) {
        cz_mirror_sync(g, &s->weights);
        if (has_bias)
            cz_mirror_sync(g, &s->bias);
        s->weights_version = version;
        s->weights_fresh = true;
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, s->src.prim},
                               {DNNL_ARG_WEIGHTS, s->weights.prim},
                               {DNNL_ARG_DST, s->dst.prim},
                               {DNNL_ARG_BIAS, s->bias.prim}};
    cz_dnnl_run(g, s->fwd, has_bias ? 4 : 3, args);
    cz_mirror_sync(g, &s->dst);
}

static void linear_backward(cz_graph *g, cz_node *node)
{
    linear_state *s = node->state;
    cz_tensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
    bool weights_need = w->needs_grad || (b && b->needs_grad);
    if (x->needs_grad || weights_need)
        cz_mirror_sync(g, s->bwd_data ? &s->bd_diff_dst : &s->bw_diff_dst);
    if (x->needs_grad) {
        /* bd_weights shares the forward's converted weights when it can. */
        cz_mirror_sync(g, &s->bd_weights);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, s->bd_diff_dst.prim},
                                   {DNNL_ARG_WEIGHTS, s->bd_weights.prim},
                                   {DNNL_ARG_DIFF_SRC, s->bd_diff_src.prim}};
        cz_dnnl_run(g, s->bwd_data, 3, args);
        cz_mirror_sync(g, &s->bd_diff_src);
    }
    if (weights_need) {
        if (s->bwd_data)
            cz_mirror_sync(g, &s->bw_diff_dst); /* no-op when shared */
        cz_mirror_sync(g, &s->bw_src);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, s->bw_src.prim},
                                   {DNNL_ARG_DIFF_DST, s->bw_diff_dst.prim},
                                   {DNNL_ARG_DIFF_WEIGHTS, s->bw_diff_weights.prim},
                                   {DNNL_ARG_DIFF_BIAS, s->bw_diff_bias.prim}};
        cz_dnnl_run(g, s->bwd_weights, b ? 4 : 3, args);
        if (w->needs_grad)
            cz_mirror_sync(g, &s->bw_diff_weights);
        if (b && b->needs_grad)
            cz_mirror_sync(g, &s->bw_diff_bias);
    }
}

static const cz_op linear_op = {"linear", linear_plan, linear_forward, linear_backward,
                                linear_destroy};

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
    linear_state *s = calloc(1, sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "linear: out of memory");
    cz_tensor *in[3] = {x, w, b};
    cz_tensor *y = cz_graph_node(g, &linear_op, in, b ? 3 : 2, x->n, out_features, 1, 1, s);
    if (y)
        y->ndim = 2; /* PyTorch's [N, OUT] */
    return y;
}
