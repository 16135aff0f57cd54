/* The input gradient of a bf16 convolution as forward convolutions
 * (conv_phases.c): conv.c's alternative to oneDNN's backward-data
 * primitive in bf16 training graphs. */
#ifndef CZ_OPS_CONV_PHASES_H
#define CZ_OPS_CONV_PHASES_H

#include "engine/onednn.h"

typedef struct conv_phases conv_phases;

/* Plans the input gradient of node's convolution (x = in[0], w = in[1],
 * output node->out, the given stride, padding and dilation) as forward
 * convolutions of dy, converted to bf16 into *dy (which the caller's
 * backward-weights primitive may share). *out stays NULL, and *dy unbound,
 * where that does not apply: a plain layout, fp32, a dilation, a stride
 * over 2, a kernel smaller than the stride, or shapes oneDNN has only its reference
 * kernel for. Call it from the op's plan, before binding anything that
 * shares *dy. */
cz_status cz_conv_phases_plan(cz_graph *g, const cz_node *node, int stride, int padding,
                              int dilation, cz_mirror *dy, conv_phases **out);
/* x's gradient, written or added to as the plan says (cz_mirror_grad_dir),
 * from dy already synced into the mirror given to the plan. */
void cz_conv_phases_run(cz_graph *g, const cz_node *node, const conv_phases *ph,
                        const cz_mirror *dy);
void cz_conv_phases_free(conv_phases *ph);

#endif
