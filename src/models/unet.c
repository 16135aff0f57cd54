/*
 * "unet": pix2pix's unet_256 (Isola et al. 2017), the paper's generator
 * without transfer learning, with input_nc 1 (L) and output_nc 2 (a*b*).
 *
 * Eight levels, each halving the size with a 4x4 stride-2 conv on the way
 * down and doubling it with a 4x4 stride-2 transposed conv on the way up,
 * widths w, 2w, 4w, 8w, 8w, 8w, 8w, 8w (w = 64). Down: LeakyReLU 0.2, conv,
 * BatchNorm; up: ReLU, transposed conv, BatchNorm, and dropout 0.5 in the
 * three levels inside the fourth (unless spec.no_dropout); each level
 * concatenates its input with what comes back up. The outermost level has no
 * norm and ends in tanh; the innermost has no norm on the way down. No conv
 * has a bias except the last one.
 *
 * Two details follow pix2pix's code rather than its paper: the parameter
 * names are its state_dict's (nested "model.model.1.model.3..." blocks), so
 * a pix2pix colourisation checkpoint's tensors map one to one; and its LeakyReLU runs
 * in place on the level's input, so the skip connection carries
 * LeakyReLU(x), not x. We compute it once, as the activation of the down
 * conv (and BatchNorm) above, and use it twice.
 *
 * Any size: eight halvings need a multiple of 256, so wherever a level's
 * input has an odd side it is zero-padded at the bottom/right to even before
 * the down conv, and the up conv's output is cropped back to the input's
 * size. At multiples of 256 no padding or cropping happens and this is
 * exactly pix2pix; at 224 the bottleneck is 1x1 as at 256.
 */
#include "models/layers.h"
#include "ops/ops.h"

#define UNET_LEVELS 8          /* unet_256: 2^8 = 256 */
#define UNET_DROPOUT 0.5f      /* pix2pix's use_dropout probability */
#define UNET_FIRST_DROPOUT 5   /* levels 5..7 (the loop blocks) have dropout */
#define UNET_IN_CHANNELS 1     /* L */
#define UNET_OUT_CHANNELS 2    /* a*b* */

/* Width of the feature maps a level's down conv produces (its inner_nc). */
static int64_t inner_width(int64_t w, int level)
{
    return level >= 4 ? 8 * w : w << (level - 1);
}

static cz_tensor *pad_even(cz_graph *g, cz_tensor *x)
{
    return x ? cz_pad_crop(g, x, x->h + x->h % 2, x->w + x->w % 2) : NULL;
}

/* Level `level` (1 = outermost) on x, its parameters under prefix (pix2pix's
 * "<...>.model."); returns cat(x, up) or, outermost, the output. Below the
 * outermost level, x has been through the LeakyReLU pix2pix's level starts
 * with: the level above applies it, as the activation of its down conv
 * (which in inference graphs is one fused convolution). */
static cz_tensor *level_build(const cz_model_spec *spec, cz_graph *g, int level,
                              const char *prefix, cz_tensor *x)
{
    if (!x)
        return NULL;
    int64_t w = spec->width;
    int64_t inner = inner_width(w, level);
    int64_t outer = level == 1 ? UNET_OUT_CHANNELS : inner_width(w, level - 1);
    int64_t h0 = x->h, w0 = x->w;
    char name[CZ_NAME_MAX], bn[CZ_NAME_MAX], sub[CZ_NAME_MAX];

    if (level == 1) {
        cz_layer_name(name, "%s0", prefix);
        cz_tensor *e = cz_layer_conv_bn_act(g, name, NULL, pad_even(g, x), inner, 4, 2, 1, false,
                                            CZ_BN_EPS, CZ_ACT_LEAKY_RELU);
        cz_layer_name(sub, "%s1.model.", prefix);
        cz_tensor *s = level_build(spec, g, level + 1, sub, e);
        cz_layer_name(name, "%s3", prefix);
        cz_tensor *u = cz_layer_conv_transpose(g, name, cz_relu(g, s), outer, 4, 2, 1, true);
        return cz_tanh(g, cz_pad_crop(g, u, h0, w0));
    }

    cz_tensor *u;
    if (level == UNET_LEVELS) {
        cz_layer_name(name, "%s1", prefix);
        cz_tensor *e = cz_layer_conv_bn_act(g, name, NULL, pad_even(g, x), inner, 4, 2, 1, false,
                                            CZ_BN_EPS, CZ_ACT_RELU);
        cz_layer_name(name, "%s3", prefix);
        cz_layer_name(bn, "%s4", prefix);
        u = cz_layer_conv_transpose_bn(g, name, bn, e, outer, 4, 2, 1, h0, w0);
    } else {
        cz_layer_name(name, "%s1", prefix);
        cz_layer_name(bn, "%s2", prefix);
        cz_tensor *e = cz_layer_conv_bn_act(g, name, bn, pad_even(g, x), inner, 4, 2, 1, false,
                                            CZ_BN_EPS, CZ_ACT_LEAKY_RELU);
        cz_layer_name(sub, "%s3.model.", prefix);
        cz_tensor *s = level_build(spec, g, level + 1, sub, e);
        cz_layer_name(name, "%s5", prefix);
        cz_layer_name(bn, "%s6", prefix);
        u = cz_layer_conv_transpose_bn(g, name, bn, cz_relu(g, s), outer, 4, 2, 1, h0, w0);
        if (level >= UNET_FIRST_DROPOUT && !spec->no_dropout)
            u = cz_dropout(g, u, UNET_DROPOUT);
    }
    cz_tensor *both[2] = {x, u};
    return u ? cz_cat(g, both, 2) : NULL;
}

cz_tensor *cz_unet_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x)
{
    if (x && x->c != UNET_IN_CHANNELS)
        return cz_graph_error(g, CZ_ERR_INVALID, "unet: input has %lld channels, expected %d (L)",
                              (long long)x->c, UNET_IN_CHANNELS);
    return level_build(spec, g, 1, "model.model.", x);
}
