#include "ops/weighted.h"

cz_status cz_weighted_bind(cz_graph *g, cz_weighted *p, const cz_node *node, const cz_weighted_layouts *ours)
{
    const cz_tensor *x = node->in[0], *w = node->in[1], *b = p->b;
    const cz_tensor *y = node->out;
    const dnnl_memory_desc_t *w_md = cz_dnnl_arg_md(p->fwd_pd, DNNL_ARG_WEIGHTS);
    float *bias = p->fold_bias ? p->fold_bias : b ? b->data : NULL;
    /* What lives from one call to another: an inference graph's converted
     * weights (converted again only when they change), and the converted
     * input where backward-weights reads it again. Everything else is
     * converted and used within one call: transient. A training graph
     * converts its weights in every forward and again for backward-data
     * rather than keep them in between (a ResNet generator's: 131 MB in
     * fp32; the second conversion costs no time we could measure). */
    cz_status st;
    bool training = cz_graph_training(g);
    cz_graph_scratch_for(g, CZ_FORWARD_CALL);
    const dnnl_memory_desc_t *src_md = cz_dnnl_arg_md(p->fwd_pd, DNNL_ARG_SRC);
    bool keep_src = p->bwd_weights_pd || p->backward_reads_src;
    if ((st = keep_src ? cz_mirror_init(&p->src, &ours->x, x->data, src_md, CZ_MIRROR_IN)
                       : cz_mirror_init_transient(&p->src, g, &ours->x, x->data, src_md, CZ_MIRROR_IN)) != CZ_OK ||
        (st = p->fold_scale ? cz_mirror_init_scaled(&p->weights, &ours->w, w->data, w_md, p->fold_scale)
              : training    ? cz_mirror_init_transient(&p->weights, g, &ours->w, w->data, w_md, CZ_MIRROR_IN)
                            : cz_mirror_init(&p->weights, &ours->w, w->data, w_md, CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_mirror_init_transient(&p->dst, g, &ours->y, y->data, cz_dnnl_arg_md(p->fwd_pd, DNNL_ARG_DST), CZ_MIRROR_OUT)) != CZ_OK)
        return st;
    if (bias && (st = cz_mirror_init(&p->bias, &ours->b, bias, cz_dnnl_arg_md(p->fwd_pd, DNNL_ARG_BIAS), CZ_MIRROR_IN)) != CZ_OK)
        return st;
    if (p->residual) {
        dnnl_memory_desc_t residual_md = cz_dnnl_tensor_md(p->residual);
        if ((st = cz_mirror_init_into(&p->residual_into_dst, &residual_md, p->residual->data, p->dst.prim)) != CZ_OK)
            return st;
    }
    /* Where a backward primitive wants what another already converted in
     * this step, the mirrors share it. */
    cz_graph_scratch_for(g, CZ_BACKWARD_CALL);
    if (p->bwd_data_pd &&
        ((st = cz_mirror_init_transient(&p->bd_diff_dst, g, &ours->dy, y->grad, cz_dnnl_arg_md(p->bwd_data_pd, DNNL_ARG_DIFF_DST), CZ_MIRROR_IN)) != CZ_OK ||
         (st = cz_mirror_init_transient(&p->bd_weights, g, &ours->w, w->data, cz_dnnl_arg_md(p->bwd_data_pd, DNNL_ARG_WEIGHTS), CZ_MIRROR_IN)) != CZ_OK ||
         (st = cz_mirror_init_transient(&p->bd_diff_src, g, &ours->dx, x->grad, cz_dnnl_arg_md(p->bwd_data_pd, DNNL_ARG_DIFF_SRC), cz_mirror_grad_dir(x))) != CZ_OK))
        return st;
    if (p->bwd_weights_pd) {
        /* Backward-weights reads the input as forward converted it (in
         * bf16 graphs x's own values may be gone by then: the op's
         * backward_reads), in another layout if it wants one. */
        const dnnl_memory_desc_t *fwd_src_md = NULL;
        void *fwd_src = NULL;
        if ((st = cz_dnnl_check(dnnl_memory_get_memory_desc(p->src.prim, &fwd_src_md), "convolution input")) != CZ_OK ||
            (st = cz_dnnl_check(dnnl_memory_get_data_handle(p->src.prim, &fwd_src), "convolution input")) != CZ_OK ||
            (st = cz_mirror_init_shared(&p->bw_src, &p->src, g, fwd_src_md, fwd_src, cz_dnnl_arg_md(p->bwd_weights_pd, DNNL_ARG_SRC), CZ_MIRROR_IN)) != CZ_OK ||
            (st = cz_mirror_init_shared(&p->bw_diff_dst, &p->bd_diff_dst, g, &ours->dy, y->grad, cz_dnnl_arg_md(p->bwd_weights_pd, DNNL_ARG_DIFF_DST), CZ_MIRROR_IN)) != CZ_OK)
            return st;
        /* A frozen weight or bias (grad NULL) gets scratch memory: the
         * primitive computes both, and the unwanted one is dropped. */
        if ((st = cz_mirror_init_transient(&p->bw_diff_weights, g, &ours->w, w->grad, cz_dnnl_arg_md(p->bwd_weights_pd, DNNL_ARG_DIFF_WEIGHTS), CZ_MIRROR_ACCUMULATE)) != CZ_OK)
            return st;
        if (b && (st = cz_mirror_init_transient(&p->bw_diff_bias, g, &ours->b, b->grad, cz_dnnl_arg_md(p->bwd_weights_pd, DNNL_ARG_DIFF_BIAS), CZ_MIRROR_ACCUMULATE)) != CZ_OK)
            return st;
    }
    return CZ_OK;
}

bool cz_weighted_weights_stale(const cz_graph *g, const cz_weighted *p)
{
    return cz_graph_training(g) || !p->weights_fresh ||
           p->weights_version != cz_graph_params_version(g);
}

void cz_weighted_forward(cz_graph *g, cz_weighted *p)
{
    bool has_bias = p->bias.prim != NULL;
    cz_mirror_sync(g, &p->src);
    if (cz_weighted_weights_stale(g, p)) {
        cz_mirror_sync(g, &p->weights);
        if (has_bias)
            cz_mirror_sync(g, &p->bias);
        p->weights_version = cz_graph_params_version(g);
        p->weights_fresh = true;
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->src.prim},
                               {DNNL_ARG_WEIGHTS, p->weights.prim},
                               {DNNL_ARG_DST, p->dst.prim}};
    int n_args = 3;
    if (has_bias)
        args[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->bias.prim};
    cz_mirror_sync(g, &p->residual_into_dst); /* no-op without one */
    cz_dnnl_run(g, &p->fwd, n_args, args);
    cz_mirror_sync(g, &p->dst);
}

void cz_weighted_backward(cz_graph *g, const cz_node *node, cz_weighted *p)
{
    const cz_tensor *x = node->in[0], *w = node->in[1], *b = p->b;
    bool weights_need = w->needs_grad || (b && b->needs_grad);
    /* bd_diff_dst is bound wherever x's gradient is computed, by
     * backward-data or by the op itself, and bw_diff_dst shares it. */
    if (x->needs_grad || weights_need)
        cz_mirror_sync(g, p->bd_diff_dst.prim ? &p->bd_diff_dst : &p->bw_diff_dst);
    if (x->needs_grad && p->bwd_data.prim) {
        cz_mirror_sync(g, &p->bd_weights);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, p->bd_diff_dst.prim},
                                   {DNNL_ARG_WEIGHTS, p->bd_weights.prim},
                                   {DNNL_ARG_DIFF_SRC, p->bd_diff_src.prim}};
        cz_dnnl_run(g, &p->bwd_data, 3, args);
        cz_mirror_sync(g, &p->bd_diff_src);
    }
    if (weights_need) {
        if (p->bwd_data.prim)
            cz_mirror_sync(g, &p->bw_diff_dst); /* no-op when shared */
        cz_mirror_sync(g, &p->bw_src);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->bw_src.prim},
                                   {DNNL_ARG_DIFF_DST, p->bw_diff_dst.prim},
                                   {DNNL_ARG_DIFF_WEIGHTS, p->bw_diff_weights.prim},
                                   {DNNL_ARG_DIFF_BIAS, p->bw_diff_bias.prim}};
        cz_dnnl_run(g, &p->bwd_weights, b ? 4 : 3, args);
        if (w->needs_grad)
            cz_mirror_sync(g, &p->bw_diff_weights);
        if (b && b->needs_grad)
            cz_mirror_sync(g, &p->bw_diff_bias);
    }
}

void cz_weighted_release(cz_weighted *p)
{
    cz_mirror *mirrors[] = {&p->src,         &p->weights,         &p->bias,
                            &p->dst,         &p->residual_into_dst, &p->bd_diff_dst,
                            &p->bd_weights,  &p->bd_diff_src,     &p->bw_src,
                            &p->bw_diff_dst, &p->bw_diff_weights, &p->bw_diff_bias};
    for (size_t i = 0; i < sizeof mirrors / sizeof *mirrors; i++)
        cz_mirror_free(mirrors[i]);
    cz_primitive_destroy(&p->fwd);
    cz_primitive_destroy(&p->bwd_data);
    cz_primitive_destroy(&p->bwd_weights);
    dnnl_primitive_desc_destroy(p->fwd_pd);
    dnnl_primitive_desc_destroy(p->bwd_data_pd);
    dnnl_primitive_desc_destroy(p->bwd_weights_pd);
}
