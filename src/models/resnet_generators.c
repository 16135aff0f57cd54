/*
 * The paper's generators with transfer learning: an ImageNet ResNet50
 * encoder on the gray photo, and a decoder back to a*b*.
 *
 *   "resnet50-paper"  the paper's encoder-decoder: the ResNet50's 1/32-scale
 *                     output (2048 channels), then five stages of conv 3x3,
 *                     BatchNorm, ReLU and nearest 2x upsampling (widths 8w,
 *                     4w, 2w, w, w/2; w = 64), a conv 3x3 to two channels
 *                     and tanh.
 *   "resnet50-unet"   the same, with the encoder's layer3, layer2, layer1 and
 *                     stem features concatenated to the input of decoder
 *                     stages 1 to 4, where the scales match (1/16 .. 1/2).
 *   "resnet50-unet-bins"  resnet50-unet's first four stages, the fourth
 *                     without its upsampling, then a conv 1x1 to one logit
 *                     per a*b* bin at 1/4 scale (image/lab.h): a
 *                     distribution over colours per pixel, as Zhang, Isola &
 *                     Efros (2016) predict it, trained by cross-entropy
 *                     (train.c). Its output is the distribution's mean
 *                     (cz_ab_bins_decode), annealed at inference
 *                     (temperature 0.38, the paper's) and plain in training,
 *                     upsampled bilinearly to the input's size. Its four
 *                     stages have resnet50-unet's names and shapes, so
 *                     `colorize train --init-generator` can start them from
 *                     a trained resnet50-unet.
 *
 * The encoder reads L* / 50 - 1 as the gray photo of that L* in all three
 * channels, normalised as its ImageNet weights expect (resnet50.c), inside
 * the graph. Its weights come from a converted ImageNet classifier
 * (cz_model_import_encoder). With spec.freeze_encoder it is the paper's
 * fixed feature extractor: its parameters are created frozen, so they get no
 * gradient, and its BatchNorms keep their ImageNet statistics (ops.h's
 * frozen-weight rule). Otherwise it is trained with the decoder.
 *
 * Names: "encoder." + torchvision's ResNet50 names, "decoder.<i>.conv",
 * "decoder.<i>.bn" and "out" (or "bins"). Sizes: any multiple of 32.
 */
#include <string.h>

#include "image/lab.h"
#include "models/layers.h"
#include "ops/ops.h"

#define STAGES 5
#define OUT_CHANNELS 2 /* a*b* */
/* The bins generator stops a stage early, at 1/4 of the input's side. */
#define BINS_STAGES 4
#define BINS_SCALE 4
/* Zhang et al.'s annealed mean: between the mean (1), which averages rival
 * colours into a dull one, and the mode (0), which flickers between them. */
#define BINS_TEMPERATURE 0.38f

typedef enum { HEAD_AB, HEAD_BINS } head_kind;

static cz_tensor *build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x, bool skips,
                        head_kind head)
{
    if (x && x->c != 1)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: input has %lld channels, expected 1 (L)",
                              spec->arch, (long long)x->c);
    if (x && (x->h % 32 != 0 || x->w % 32 != 0))
        return cz_graph_error(g, CZ_ERR_INVALID,
                              "%s: input is %lldx%lld; sides must be multiples of 32", spec->arch,
                              (long long)x->w, (long long)x->h);
    cz_graph_freeze_new_params(g, spec->freeze_encoder);
    cz_resnet50_features f =
        cz_resnet50_encoder(g, spec, "encoder.", cz_resnet50_normalise_l(g, spec, x));
    cz_graph_freeze_new_params(g, false);

    int64_t w = spec->width;
    const int64_t widths[STAGES] = {8 * w, 4 * w, 2 * w, w, w / 2};
    cz_tensor *skip[STAGES] = {NULL, f.layer3, f.layer2, f.layer1, f.stem};
    cz_tensor *y = f.layer4;
    char conv[CZ_NAME_MAX], bn[CZ_NAME_MAX];
    int stages = head == HEAD_BINS ? BINS_STAGES : STAGES;
    for (int i = 0; i < stages; i++) {
        if (skips && skip[i]) {
            cz_tensor *both[2] = {y, skip[i]};
            y = y ? cz_cat(g, both, 2) : NULL;
        }
        cz_layer_name(conv, "decoder.%d.conv", i);
        cz_layer_name(bn, "decoder.%d.bn", i);
        y = cz_layer_conv_bn_act(g, conv, bn, y, widths[i], 3, 1, 1, false, CZ_BN_EPS,
                                 CZ_ACT_RELU);
        if (i + 1 < stages || head == HEAD_AB)
            y = cz_upsample(g, y, 2, CZ_UPSAMPLE_NEAREST);
    }
    if (head == HEAD_AB)
        return cz_tanh(g, cz_layer_conv(g, "out", y, OUT_CHANNELS, 3, 1, 1, true));
    float t = cz_graph_training(g) ? 1.0f : BINS_TEMPERATURE;
    cz_tensor *logits = cz_layer_conv(g, "bins", y, cz_ab_bins(NULL), 1, 1, 0, true);
    return cz_upsample(g, cz_ab_bins_decode(g, logits, t), BINS_SCALE, CZ_UPSAMPLE_BILINEAR);
}

cz_tensor *cz_resnet_paper_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x)
{
    return build(spec, g, x, false, HEAD_AB);
}

cz_tensor *cz_resnet_unet_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x)
{
    return build(spec, g, x, true, HEAD_AB);
}

cz_tensor *cz_resnet_unet_bins_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x)
{
    return build(spec, g, x, true, HEAD_BINS);
}

cz_tensor *cz_model_bin_logits(const cz_graph *g, const cz_tensor *ab)
{
    const cz_node *up = ab ? cz_graph_producer(g, ab) : NULL;
    const cz_node *decode = up ? cz_graph_producer(g, up->in[0]) : NULL;
    if (!decode || strcmp(decode->op->name, "ab_bins_decode") != 0)
        return NULL;
    return decode->in[0];
}
