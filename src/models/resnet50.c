/*
 * ResNet50 (He et al. 2015), the encoder of the ResNet generators and the
 * "resnet50" ImageNet classifier, in two layouts of the same network:
 *
 *   keras        the original Caffe ResNet as Keras ships it: every conv has
 *                a bias, BatchNorm eps 1e-3, a downsampling block strides
 *                its FIRST 1x1 conv (and the shortcut); input BGR in
 *                [0, 255] minus the ImageNet mean [103.939, 116.779, 123.68].
 *   torchvision  torchvision's "v1.5": no conv biases, eps 1e-5, the stride
 *                on the 3x3 conv; input RGB in [0, 1] normalised by the
 *                ImageNet mean [0.485, 0.456, 0.406] and std
 *                [0.229, 0.224, 0.225].
 *
 * Both use torchvision's parameter names, so a torchvision state_dict loads
 * as it is and the Keras weights are renamed once, on import
 * (import_keras.c). The stem: conv 7x7 stride 2 (pad 3), BN, ReLU, max-pool
 * 3x3 stride 2 (pad 1; after a ReLU, Keras's zero padding and PyTorch's
 * -inf padding give the same maximum). Then four layers of 3, 4, 6 and 3
 * bottleneck blocks of widths w, 2w, 4w, 8w (expanded 4x), layer1 at stride
 * 1 and the others at stride 2; w = 64 for ImageNet (spec.encoder_width:
 * tests shrink it).
 */
#include <string.h>

#include "models/layers.h"
#include "ops/ops.h"

#define KERAS_EPS 1e-3f /* Keras's BatchNormalization epsilon */
#define RGB_MAX 255.0f  /* Keras ResNet50 input scale */

static const float keras_mean_bgr[3] = {103.939f, 116.779f, 123.68f};
static const float tv_mean[3] = {0.485f, 0.456f, 0.406f};
static const float tv_std[3] = {0.229f, 0.224f, 0.225f};

static const int layer_blocks[4] = {3, 4, 6, 3};
static const int layer_stride[4] = {1, 2, 2, 2};

static bool is_keras(const cz_model_spec *spec)
{
    return strcmp(spec->encoder_layout, "keras") == 0;
}

/* The normalisation of a 3-channel input whose channel c comes from src[c]. */
static cz_tensor *normalise(cz_graph *g, const cz_model_spec *spec, cz_tensor *x,
                            const int src[3])
{
    float scale[3], shift[3];
    for (int c = 0; c < 3; c++) {
        if (is_keras(spec)) {
            scale[c] = RGB_MAX;
            shift[c] = -keras_mean_bgr[c];
        } else {
            scale[c] = 1.0f / tv_std[c];
            shift[c] = -tv_mean[c] / tv_std[c];
        }
    }
    return cz_channel_affine(g, x, src, scale, shift);
}

cz_tensor *cz_resnet50_normalise_rgb(cz_graph *g, const cz_model_spec *spec, cz_tensor *rgb)
{
    static const int bgr[3] = {2, 1, 0}, rgb_order[3] = {0, 1, 2};
    return normalise(g, spec, rgb, is_keras(spec) ? bgr : rgb_order);
}

cz_tensor *cz_resnet50_normalise_l(cz_graph *g, const cz_model_spec *spec, cz_tensor *l)
{
    static const int gray[3] = {0, 0, 0};
    return normalise(g, spec, cz_l_to_gray(g, l), gray);
}

/* One bottleneck block: 1x1 (mid) - 3x3 (mid) - 1x1 (4 mid), each conv with
 * BN, ReLU after the first two and after the sum with the shortcut, which is
 * a projection (1x1 conv + BN) where the shape changes. The last conv's
 * parameters precede the projection's (torchvision's order, which model
 * files keep); it is applied once the shortcut exists, and adds it. */
static cz_tensor *bottleneck(cz_graph *g, const char *prefix, cz_tensor *x, int64_t mid,
                             int stride, bool keras)
{
    float eps = keras ? KERAS_EPS : CZ_BN_EPS;
    int s1 = keras ? stride : 1, s2 = keras ? 1 : stride;
    char conv[CZ_NAME_MAX], bn[CZ_NAME_MAX];
    cz_layer_name(conv, "%s.conv1", prefix);
    cz_layer_name(bn, "%s.bn1", prefix);
    cz_tensor *y = cz_layer_conv_bn_act(g, conv, bn, x, mid, 1, s1, 0, keras, eps, CZ_ACT_RELU);
    cz_layer_name(conv, "%s.conv2", prefix);
    cz_layer_name(bn, "%s.bn2", prefix);
    y = cz_layer_conv_bn_act(g, conv, bn, y, mid, 3, s2, 1, keras, eps, CZ_ACT_RELU);
    cz_layer_name(conv, "%s.conv3", prefix);
    cz_layer_name(bn, "%s.bn3", prefix);
    cz_conv_bn expand;
    if (!cz_layer_conv_bn_make(&expand, g, conv, bn, mid, 4 * mid, 1, 1, 0, keras, eps))
        return NULL;
    cz_tensor *shortcut = x;
    if (x && (stride != 1 || x->c != 4 * mid)) {
        cz_layer_name(conv, "%s.downsample.0", prefix);
        cz_layer_name(bn, "%s.downsample.1", prefix);
        shortcut = cz_layer_conv_bn_act(g, conv, bn, x, 4 * mid, 1, stride, 0, keras, eps,
                                        CZ_ACT_NONE);
    }
    return cz_layer_conv_bn_apply(g, &expand, y, shortcut, CZ_ACT_RELU);
}

cz_resnet50_features cz_resnet50_encoder(cz_graph *g, const cz_model_spec *spec,
                                         const char *prefix, cz_tensor *x)
{
    bool keras = is_keras(spec);
    int64_t w = spec->encoder_width;
    char name[CZ_NAME_MAX], bn[CZ_NAME_MAX];
    cz_resnet50_features f = {0};

    cz_layer_name(name, "%sconv1", prefix);
    cz_layer_name(bn, "%sbn1", prefix);
    f.stem = cz_layer_conv_bn_act(g, name, bn, x, w, 7, 2, 3, keras,
                                  keras ? KERAS_EPS : CZ_BN_EPS, CZ_ACT_RELU);
    x = cz_max_pool2d(g, f.stem, 3, 2, 1);
    cz_tensor **out[4] = {&f.layer1, &f.layer2, &f.layer3, &f.layer4};
    for (int i = 0; i < 4; i++) {
        for (int b = 0; b < layer_blocks[i]; b++) {
            cz_layer_name(name, "%slayer%d.%d", prefix, i + 1, b);
            x = bottleneck(g, name, x, w << i, b == 0 ? layer_stride[i] : 1, keras);
        }
        *out[i] = x;
    }
    return f;
}

/* "resnet50": RGB in [0, 1] -> logits, global average pooling and "fc". */
cz_tensor *cz_resnet50_classifier_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x)
{
    cz_resnet50_features f = cz_resnet50_encoder(g, spec, "", cz_resnet50_normalise_rgb(g, spec, x));
    return cz_layer_linear(g, "fc", cz_global_avg_pool(g, f.layer4), spec->classes);
}
