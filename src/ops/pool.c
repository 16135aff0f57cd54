/* max_pool2d on oneDNN, and a global average pool in plain C.
 *
 * Max pooling works on our tensors directly, in their layout. oneDNN's max pooling
 * ignores padded cells, which is PyTorch's -inf padding; with padding at most
 * half the kernel every window holds a real cell, so no output is empty. In a
 * training graph whose input wants a gradient, forward records the winners in
 * a workspace that backward routes the output gradient through.
 *
 * The global average pool is one pass per (n, c) plane, each summed in double
 * in a fixed order by a single thread, so the result does not depend on the
 * thread count. */
#include <stdlib.h>

#include "engine/onednn.h"
#include "ops/ops.h"

typedef struct {
    int kernel, stride, padding;

    dnnl_primitive_desc_t fwd_pd, bwd_pd;
    cz_primitive fwd, bwd;
    cz_mirror src, dst, workspace;
    cz_mirror diff_dst, diff_src;
} max_pool_state;

static void max_pool_destroy(void *p)
{
    max_pool_state *s = p;
    if (!s)
        return;
    cz_mirror *mirrors[] = {&s->src, &s->dst, &s->workspace, &s->diff_dst, &s->diff_src};
    for (size_t i = 0; i < sizeof mirrors / sizeof *mirrors; i++)
        cz_mirror_free(mirrors[i]);
    cz_primitive_destroy(&s->fwd);
    cz_primitive_destroy(&s->bwd);
    dnnl_primitive_desc_destroy(s->fwd_pd);
    dnnl_primitive_desc_destroy(s->bwd_pd);
    free(s);
}

static cz_status max_pool_plan(cz_graph *g, cz_node *node)
{
    max_pool_state *s = node->state;
    cz_tensor *x = node->in[0], *y = node->out;
    dnnl_memory_desc_t x_md = cz_dnnl_tensor_md(x), y_md = cz_dnnl_tensor_md(y);
    dnnl_memory_desc_t dx_md = cz_dnnl_grad_md(x), dy_md = cz_dnnl_grad_md(y);
    /* Floor mode: with symmetric padding, oneDNN's own size rule
     * (H + 2p - k) / s + 1 rounds down just as PyTorch's does. */
    dnnl_dims_t strides = {s->stride, s->stride}, kernel = {s->kernel, s->kernel};
    dnnl_dims_t padding = {s->padding, s->padding};
    bool backward = cz_graph_training(g) && x->may_need_grad;
    dnnl_pooling_desc_t desc;
    cz_status st;

    dnnl_prop_kind_t prop = backward ? dnnl_forward_training : dnnl_forward_inference;
    if ((st = cz_dnnl_check(dnnl_pooling_forward_desc_init(&desc, prop, dnnl_pooling_max, &x_md, &y_md,
                                                           strides, kernel, padding, padding),
                            "max pooling descriptor")) != CZ_OK ||
        (st = cz_dnnl_create(&s->fwd_pd, &s->fwd, g, &desc, NULL, NULL, "max pooling forward")) != CZ_OK ||
        (st = cz_mirror_init_transient(&s->src, g, &x_md, x->data, cz_dnnl_arg_md(s->fwd_pd, DNNL_ARG_SRC), CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_mirror_init_transient(&s->dst, g, &y_md, y->data, cz_dnnl_arg_md(s->fwd_pd, DNNL_ARG_DST), CZ_MIRROR_OUT)) != CZ_OK)
        return st;
    if (!backward)
        return CZ_OK;
    cz_graph_scratch_for(g, CZ_BACKWARD_CALL);

    const dnnl_memory_desc_t *ws_md = dnnl_primitive_desc_query_md(s->fwd_pd, dnnl_query_workspace_md, 0);
    if ((st = cz_mirror_init(&s->workspace, ws_md, NULL, ws_md, CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_dnnl_check(dnnl_pooling_backward_desc_init(&desc, dnnl_pooling_max, &x_md, &y_md,
                                                            strides, kernel, padding, padding),
                            "max pooling backward descriptor")) != CZ_OK ||
        (st = cz_dnnl_create(&s->bwd_pd, &s->bwd, g, &desc, NULL, s->fwd_pd, "max pooling backward")) != CZ_OK ||
        (st = cz_mirror_init_transient(&s->diff_dst, g, &dy_md, y->grad, cz_dnnl_arg_md(s->bwd_pd, DNNL_ARG_DIFF_DST), CZ_MIRROR_IN)) != CZ_OK ||
        (st = cz_mirror_init_transient(&s->diff_src, g, &dx_md, x->grad, cz_dnnl_arg_md(s->bwd_pd, DNNL_ARG_DIFF_SRC), cz_mirror_grad_dir(x))) != CZ_OK)
        return st;
    return CZ_OK;
}

static void max_pool_forward(cz_graph *g, cz_node *node)
{
    max_pool_state *s = node->state;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, s->src.prim},
                               {DNNL_ARG_DST, s->dst.prim},
                               {DNNL_ARG_WORKSPACE, s->workspace.prim}};
    cz_mirror_sync(g, &s->src);
    cz_dnnl_run(g, &s->fwd, s->bwd.prim ? 3 : 2, args);
    cz_mirror_sync(g, &s->dst);
}

static void max_pool_backward(cz_graph *g, cz_node *node)
{
    max_pool_state *s = node->state;
    if (!node->in[0]->needs_grad || !s->bwd.prim)
        return;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, s->diff_dst.prim},
                               {DNNL_ARG_WORKSPACE, s->workspace.prim},
                               {DNNL_ARG_DIFF_SRC, s->diff_src.prim}};
    cz_mirror_sync(g, &s->diff_dst);
    cz_dnnl_run(g, &s->bwd, 3, args);
    cz_mirror_sync(g, &s->diff_src);
}

/* One layout for both: the primitive runs on them as they are. Backward
 * reads where the maxima were from the workspace, no values. */
static const cz_op max_pool_op = {"max_pool2d", max_pool_plan, max_pool_forward,
                                  max_pool_backward, max_pool_destroy, CZ_OP_ONE_LAYOUT, true,
                                  cz_backward_reads_nothing};

cz_tensor *cz_max_pool2d(cz_graph *g, cz_tensor *x, int kernel, int stride, int padding)
{
    if (!x || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "max_pool2d: missing input");
    if (kernel < 1 || stride < 1 || padding < 0)
        return cz_graph_error(g, CZ_ERR_INVALID, "max_pool2d: bad kernel %d, stride %d, padding %d",
                              kernel, stride, padding);
    if (padding > kernel / 2)
        return cz_graph_error(g, CZ_ERR_INVALID,
                              "max_pool2d: padding %d should be at most half the kernel %d",
                              padding, kernel);
    if (x->h + 2 * padding < kernel || x->w + 2 * padding < kernel)
        return cz_graph_error(g, CZ_ERR_INVALID, "max_pool2d: input %lldx%lld too small for kernel %d",
                              (long long)x->h, (long long)x->w, kernel);
    int64_t oh = (x->h + 2 * padding - kernel) / stride + 1;
    int64_t ow = (x->w + 2 * padding - kernel) / stride + 1;
    max_pool_state *s = calloc(1, sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "max_pool2d: out of memory");
    s->kernel = kernel;
    s->stride = stride;
    s->padding = padding;
    return cz_graph_node(g, &max_pool_op, &x, 1, x->n, x->c, oh, ow, s);
}

static void global_avg_pool_forward(cz_graph *g, cz_node *node)
{
    const cz_tensor *x = node->in[0];
    float *y = node->out->data;
    const int64_t planes = x->n * x->c, hw = x->h * x->w;
    const float *xd = x->data;
#pragma omp parallel for
    for (int64_t p = 0; p < planes; p++) {
        const float *plane = xd + p * hw;
        double sum = 0;
        for (int64_t i = 0; i < hw; i++)
            sum += plane[i];
        y[p] = (float)(sum / (double)hw);
    }
}

static void global_avg_pool_backward(cz_graph *g, cz_node *node)
{
    cz_tensor *x = node->in[0];
    if (!x->needs_grad)
        return;
    const float *dy = node->out->grad;
    float *dx = x->grad;
    const int64_t planes = x->n * x->c, hw = x->h * x->w;
#pragma omp parallel for
    for (int64_t p = 0; p < planes; p++) {
        float share = dy[p] / (float)hw;
        float *plane = dx + p * hw;
        for (int64_t i = 0; i < hw; i++)
            plane[i] += share;
    }
}

static const cz_op global_avg_pool_op = {"global_avg_pool", NULL, global_avg_pool_forward,
                                         global_avg_pool_backward, NULL, CZ_OP_PLAIN, false,
                                         cz_backward_reads_nothing};

cz_tensor *cz_global_avg_pool(cz_graph *g, cz_tensor *x)
{
    if (!x || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "global_avg_pool: missing input");
    return cz_graph_node(g, &global_avg_pool_op, &x, 1, x->n, x->c, 1, 1, NULL);
}
