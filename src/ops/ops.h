/*
 * Op builders. Each appends a node to the graph and returns its output, or
 * NULL after recording an error in the graph (a NULL argument tensor also
 * gives NULL, so failures flow through model code to cz_graph_plan).
 *
 * Every op matches the PyTorch function of the same name, forward and
 * backward; shapes use PyTorch's conventions (NCHW activations, conv weights
 * [OC, IC, KH, KW], transposed-conv weights [IC, OC, KH, KW], linear weights
 * [OUT, IN]). Backward adds into the gradients of the inputs that need one.
 */
#ifndef CZ_OPS_OPS_H
#define CZ_OPS_OPS_H

#include "engine/graph.h"

/* --- conv.c: convolutions on oneDNN (bf16 on AMX in CZ_BF16 graphs) --- */

/* y = conv2d(x, w, b): x [N, IC, H, W], w [OC, IC, KH, KW], b [OC] or NULL.
 * Symmetric padding; dilation 1 is an ordinary convolution. */
cz_tensor *cz_conv2d(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b, int stride,
                     int padding, int dilation);

/* y = conv_transpose2d(x, w, b): x [N, IC, H, W], w [IC, OC, KH, KW],
 * OH = (H - 1) * stride - 2 * padding + dilation * (KH - 1) + output_padding + 1. */
cz_tensor *cz_conv_transpose2d(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b,
                               int stride, int padding, int output_padding, int dilation);

/* Whether the planned conv2d that wrote y runs its backward as matrix
 * products (a 1x1 convolution without padding on channels-last values in a
 * bf16 training graph; conv.c), for tests. */
bool cz_conv2d_backward_by_matmul(const cz_graph *g, const cz_tensor *y);
/* Whether it computes its input's gradient as forward convolutions (other
 * convolutions on channels-last values in bf16 training graphs;
 * conv_phases.c), for tests. */
bool cz_conv2d_input_grad_by_phases(const cz_graph *g, const cz_tensor *y);

/* --- conv.c, inference graphs only: a convolution with what follows it --- */

typedef enum { CZ_ACT_NONE, CZ_ACT_RELU, CZ_ACT_LEAKY_RELU } cz_act;

/* What a fused convolution does after the convolution: batch_norm2d with
 * running statistics (bn_weight, bn_bias, running_mean, running_var [OC],
 * all four or none; eps as cz_batch_norm2d's), then adds residual (a
 * tensor of the output's shape, or NULL: a ResNet block's shortcut), then
 * an activation (slope: leaky_relu's negative slope). */
typedef struct {
    cz_tensor *bn_weight, *bn_bias, *running_mean, *running_var;
    float eps;
    cz_tensor *residual;
    cz_act act;
    float slope;
} cz_conv_fusion;

/* act(batch_norm2d(conv2d(x, w, b)) + residual) as one oneDNN convolution.
 * The batch norm is folded into the weights and bias the convolution runs
 * with,
 *     w'[oc] = w[oc] * s[oc],  b'[oc] = beta[oc] + (b[oc] - mean[oc]) * s[oc],
 *     s[oc] = gamma[oc] / sqrt(var[oc] + eps)   (b = 0 without a bias),
 * computed in fp32 whenever the parameters change (cz_graph_params_changed);
 * the residual and the activation are the convolution's post-ops. The
 * parameters stay the graph's own tensors. Inference graphs only (no
 * backward); arguments as cz_conv2d's. */
cz_tensor *cz_conv2d_fused(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b, int stride,
                           int padding, int dilation, const cz_conv_fusion *fusion);
/* The same after conv_transpose2d (w [IC, OC, KH, KW]). */
cz_tensor *cz_conv_transpose2d_fused(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b,
                                     int stride, int padding, int output_padding, int dilation,
                                     const cz_conv_fusion *fusion);

/* --- linear.c --- */

/* y = x @ w^T + b: x [N, IN] (a [N, C, H, W] input is flattened to C*H*W),
 * w [OUT, IN], b [OUT] or NULL; y [N, OUT], stored as [N, OUT, 1, 1] with
 * ndim 2. bf16 products in CZ_BF16 graphs, as conv2d. */
cz_tensor *cz_linear(cz_graph *g, cz_tensor *x, cz_tensor *w, cz_tensor *b);

/* --- norm.c --- */

/* Batch normalisation over N, H, W per channel. In a training graph it uses
 * the batch's statistics and updates the running ones:
 *     running = (1 - momentum) * running + momentum * batch
 * (running_var takes the unbiased batch variance, as PyTorch); in an inference
 * graph it uses the running ones. weight/bias [C] are both given or both NULL
 * (affine=False); running_mean/var [C] are required. eps is added to the
 * variance (PyTorch's default 1e-5, Keras's 1e-3).
 *
 * A batch norm whose weight is a frozen parameter (created under
 * cz_graph_freeze_new_params(g, true)) runs as in inference even in a
 * training graph: it normalises with the running statistics and never
 * updates them, as Keras does for a frozen (trainable=False) layer such as a
 * pretrained encoder. Gradients still flow through it to x, with the
 * statistics as constants. */
cz_tensor *cz_batch_norm2d(cz_graph *g, cz_tensor *x, cz_tensor *weight, cz_tensor *bias,
                           cz_tensor *running_mean, cz_tensor *running_var,
                           float momentum, float eps);
/* relu(batch_norm2d(...)) as one op, in one pass over the tensor forward
 * and one backward (oneDNN's fuse_norm_relu). */
cz_tensor *cz_batch_norm2d_relu(cz_graph *g, cz_tensor *x, cz_tensor *weight, cz_tensor *bias,
                                cz_tensor *running_mean, cz_tensor *running_var,
                                float momentum, float eps);

/* --- activation.c --- */
cz_tensor *cz_relu(cz_graph *g, cz_tensor *x);
cz_tensor *cz_leaky_relu(cz_graph *g, cz_tensor *x, float negative_slope);
cz_tensor *cz_tanh(cz_graph *g, cz_tensor *x);
cz_tensor *cz_sigmoid(cz_graph *g, cz_tensor *x);

/* --- pool.c --- */

/* max_pool2d with symmetric padding (padded cells never win), floor mode;
 * padding at most kernel / 2, as PyTorch requires. */
cz_tensor *cz_max_pool2d(cz_graph *g, cz_tensor *x, int kernel, int stride, int padding);
/* Mean over H and W: [N, C, H, W] -> [N, C, 1, 1]. */
cz_tensor *cz_global_avg_pool(cz_graph *g, cz_tensor *x);

/* --- upsample.c --- */
typedef enum { CZ_UPSAMPLE_NEAREST, CZ_UPSAMPLE_BILINEAR } cz_upsample_mode;
/* F.interpolate(x, scale_factor=scale, mode=..., align_corners=False). */
cz_tensor *cz_upsample(cz_graph *g, cz_tensor *x, int scale, cz_upsample_mode mode);

/* --- combine.c --- */

/* Concatenation along channels of n tensors with equal N, H, W. */
cz_tensor *cz_cat(cz_graph *g, cz_tensor *const *xs, int n);
/* a + b, same shapes. */
cz_tensor *cz_add(cz_graph *g, cz_tensor *a, cz_tensor *b);
/* relu(a + b) in one pass (a ResNet block's end in training graphs). */
cz_tensor *cz_add_relu(cz_graph *g, cz_tensor *a, cz_tensor *b);
/* Inverted dropout: in training zeroes each element with probability p and
 * scales the rest by 1/(1-p), masks drawn from the graph's generator. In
 * inference graphs, and with p = 0, the identity: x itself is returned. */
cz_tensor *cz_dropout(cz_graph *g, cz_tensor *x, float p);

/* --- loss.c: scalar losses ([1, 1, 1, 1]), mean over all elements --- */

/* binary_cross_entropy_with_logits; target values anywhere in [0, 1], so
 * smoothed and noisy labels work. */
cz_tensor *cz_bce_with_logits(cz_graph *g, cz_tensor *logits, cz_tensor *target);
cz_tensor *cz_l1_loss(cz_graph *g, cz_tensor *x, cz_tensor *target);
cz_tensor *cz_mse_loss(cz_graph *g, cz_tensor *x, cz_tensor *target);

/* --- bins.c: colour as a distribution over a*b* bins (image/lab.h) ---
 * z [N, Q, h, w], Q = cz_ab_bins's count: one distribution per pixel,
 * softmax(CZ_AB_BINS_GAIN z) over the channels. Colours are in the
 * generators' units, a*b* / 110.
 *
 * The gain makes the layer before learn its logits 10 times faster under
 * Adam, whose steps are the learning rate whatever the gradient's size: a
 * 1x1 convolution from 32 channels, as resnet50-unet-bins's, otherwise
 * needs thousands of steps at 2e-4 to sharpen its distributions. */
#define CZ_AB_BINS_GAIN 10.0f

/* The distribution's mean colour at temperature t,
 * sum_q softmax(CZ_AB_BINS_GAIN z / t)_q centre_q: [N, 2, h, w]. t = 1 is the plain mean; lower t leans towards
 * the likeliest bins (the paper's annealed mean: 0.38). */
cz_tensor *cz_ab_bins_decode(cz_graph *g, cz_tensor *logits, float t);
/* Cross-entropy of the distribution against ab [N, 2, f h, f w]: each
 * pixel's target is the mean colour of its f x f block of ab, spread over
 * its 5 nearest bins with Gaussian weights (sigma 5 a*b* units); mean over
 * the N h w pixels. Gradient to the logits only. */
cz_tensor *cz_ab_bins_cross_entropy(cz_graph *g, cz_tensor *logits, cz_tensor *ab);

#endif
