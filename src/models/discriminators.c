/*
 * The discriminators. Input: concat(L, a*b*), [N, 3, H, W], scaled as the
 * generators' input and output; output: logits (the sigmoid is in the loss).
 *
 *   "patchgan"  pix2pix's 70x70 PatchGAN (NLayerDiscriminator, n_layers 3):
 *               C64 (no norm) - C128 - C256 - C512 (stride 1) - 1 channel,
 *               4x4 convs with padding 1, stride 2 except the last two,
 *               BatchNorm, LeakyReLU 0.2. One logit per 70x70 patch:
 *               [N, 1, 30, 30] at 256, [N, 1, 26, 26] at 224. Names are
 *               pix2pix's ("model.0", "model.2", "model.3", ...).
 *   "sigmoid"   the paper's first discriminator, a plain convolutional
 *               real/fake classifier: five 4x4 stride-2 convs C64 (no norm)
 *               - C128 - C256 - C512 - C512 with BatchNorm and LeakyReLU 0.2
 *               down to 1/32 scale, global average pooling, and a linear
 *               layer "fc" to one logit per image: [N, 1, 1, 1]. Pooling
 *               rather than flattening keeps it fully convolutional.
 *
 * Convs followed by BatchNorm have no bias (pix2pix's use_bias for BN).
 */
#include "models/layers.h"
#include "ops/ops.h"

#define DISC_IN_CHANNELS 3 /* L and a*b* */

static bool check_input(const cz_model_spec *spec, cz_graph *g, const cz_tensor *x)
{
    if (x && x->c != DISC_IN_CHANNELS) {
        cz_graph_error(g, CZ_ERR_INVALID, "%s: input has %lld channels, expected %d (L, a*b*)",
                       spec->arch, (long long)x->c, DISC_IN_CHANNELS);
        return false;
    }
    return true;
}

/* Conv 4x4 (named model.<index>), then BatchNorm (model.<index + 1>) unless
 * it is the first layer, then LeakyReLU. */
static cz_tensor *block(cz_graph *g, cz_tensor *x, int index, int64_t oc, int stride, bool norm)
{
    char conv[CZ_NAME_MAX], bn[CZ_NAME_MAX];
    cz_layer_name(conv, "model.%d", index);
    cz_layer_name(bn, "model.%d", index + 1);
    return cz_layer_conv_bn_act(g, conv, norm ? bn : NULL, x, oc, 4, stride, 1, !norm, CZ_BN_EPS,
                                CZ_ACT_LEAKY_RELU);
}

cz_tensor *cz_patchgan_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x)
{
    if (!check_input(spec, g, x))
        return NULL;
    int64_t w = spec->width;
    x = block(g, x, 0, w, 2, false);
    x = block(g, x, 2, 2 * w, 2, true);
    x = block(g, x, 5, 4 * w, 2, true);
    x = block(g, x, 8, 8 * w, 1, true);
    return cz_layer_conv(g, "model.11", x, 1, 4, 1, 1, true);
}

cz_tensor *cz_sigmoid_disc_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x)
{
    if (!check_input(spec, g, x))
        return NULL;
    int64_t w = spec->width;
    x = block(g, x, 0, w, 2, false);
    x = block(g, x, 2, 2 * w, 2, true);
    x = block(g, x, 5, 4 * w, 2, true);
    x = block(g, x, 8, 8 * w, 2, true);
    x = block(g, x, 11, 8 * w, 2, true);
    x = cz_layer_linear(g, "fc", cz_global_avg_pool(g, x), 1);
    if (x) /* one logit per image, as an image-shaped [N, 1, 1, 1] */
        x->ndim = 4;
    return x;
}
