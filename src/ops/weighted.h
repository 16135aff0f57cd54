/* What every op with weights on oneDNN shares (conv2d, conv_transpose2d,
 * linear): a forward primitive and, in training graphs, backward-data and
 * backward-weights primitives, with mirrors between our plain fp32 tensors
 * and the layouts and data types the primitives chose. The op creates the
 * primitives (its own descriptors); this binds the mirrors and runs them. */
#ifndef CZ_OPS_WEIGHTED_H
#define CZ_OPS_WEIGHTED_H

#include "engine/onednn.h"

typedef struct {
    /* Set by the op; a backward primitive stays NULL when nothing needs it. */
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_weights_pd;
    cz_primitive fwd, bwd_data, bwd_weights;
    /* A batch norm folded in (inference; set by the op before binding): the
     * weights mirror multiplies output channel oc by fold_scale[oc], and the
     * forward's bias is fold_bias, which has the op's own bias in it; the
     * node's inputs after w are then the op's, none of them read here. NULL
     * otherwise. The op fills both whenever cz_weighted_weights_stale. */
    float *fold_scale, *fold_bias;
    /* Set by the op: its own bias tensor (NULL without one, and where a
     * batch norm is folded in), and a tensor the forward's output starts
     * from, for a sum post-op to add to (cz_conv_fusion.residual), else
     * NULL. */
    const cz_tensor *b, *residual;
    /* Set by the op: its backward reads the input as forward converted it
     * (src) without a backward-weights primitive (conv.c's matmuls). */
    bool backward_reads_src;
    /* forward */
    cz_mirror src, weights, bias, dst, residual_into_dst;
    uint64_t weights_version; /* inference graphs reorder weights only when changed */
    bool weights_fresh;
    /* backward data; where the op computes x's gradient its own way (no
     * bwd_data_pd), it binds bd_diff_dst before cz_weighted_bind, for
     * backward-weights to share, and cz_weighted_backward syncs it */
    cz_mirror bd_diff_dst, bd_weights, bd_diff_src;
    /* backward weights */
    cz_mirror bw_src, bw_diff_dst, bw_diff_weights, bw_diff_bias;
} cz_weighted;

/* Our layouts of the node's x, weight, bias and output, and of the
 * gradients of x and the output (fp32 where the values may be bf16). */
typedef struct {
    dnnl_memory_desc_t x, w, b, y, dx, dy;
} cz_weighted_layouts;

/* Binds mirrors for the primitives the op created; node->in starts {x, w}. */
cz_status cz_weighted_bind(cz_graph *g, cz_weighted *p, const cz_node *node, const cz_weighted_layouts *ours);
/* Whether the next cz_weighted_forward converts the weights again: always
 * in training graphs, in inference graphs when the parameters changed
 * (cz_graph_params_changed) since the last conversion. */
bool cz_weighted_weights_stale(const cz_graph *g, const cz_weighted *p);
void cz_weighted_forward(cz_graph *g, cz_weighted *p);
void cz_weighted_backward(cz_graph *g, const cz_node *node, cz_weighted *p);
void cz_weighted_release(cz_weighted *p);

#endif
