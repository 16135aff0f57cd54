/*
 * Private to src/models: named layers and the few model-specific ops.
 *
 * The layer helpers create their parameters under PyTorch's state_dict names
 * ("<prefix>.weight", "<prefix>.running_mean", ...) and return the op's
 * output, so a model file reads like the PyTorch module it mirrors. Like the
 * op builders they pass failure on: a NULL input gives NULL and the graph
 * keeps the first error.
 *
 * Initialisation follows pix2pix's init_weights('normal', 0.02): conv,
 * transposed-conv and linear weights N(0, 0.02), biases 0, BatchNorm weights
 * N(1, 0.02), BatchNorm biases 0. A graph's own initialiser has no "ones plus
 * noise", so a BatchNorm weight is declared CZ_INIT_ONES with init_scale
 * 0.02: the graph plans it to exactly 1, and cz_model_new, which initialises
 * model weights itself, adds N(0, init_scale^2) noise to every parameter
 * whose init is ONES or NORMAL.
 */
#ifndef CZ_MODELS_LAYERS_H
#define CZ_MODELS_LAYERS_H

#include "engine/graph.h"
#include "models/model.h"
#include "ops/ops.h"

/* pix2pix's initialisation scale. */
#define CZ_INIT_GAIN 0.02f
/* PyTorch's BatchNorm momentum (Keras's 0.99 is the same 0.01 the other way). */
#define CZ_BN_MOMENTUM 0.1f
/* PyTorch's BatchNorm eps; Keras uses 1e-3. */
#define CZ_BN_EPS 1e-5f
/* pix2pix's LeakyReLU slope. */
#define CZ_LEAKY_SLOPE 0.2f

/* conv2d(x) with weight [oc, x->c, k, k] and, if bias, bias [oc]. */
cz_tensor *cz_layer_conv(cz_graph *g, const char *prefix, cz_tensor *x, int64_t oc, int k,
                         int stride, int padding, bool bias);
/* conv_transpose2d(x) with weight [x->c, oc, k, k] (PyTorch's layout). */
cz_tensor *cz_layer_conv_transpose(cz_graph *g, const char *prefix, cz_tensor *x, int64_t oc,
                                   int k, int stride, int padding, bool bias);
/* batch_norm2d(x) with weight, bias, running_mean and running_var [x->c]. */
cz_tensor *cz_layer_bn(cz_graph *g, const char *prefix, cz_tensor *x, float eps);
/* act(batch_norm2d(conv2d(x))): cz_layer_conv named conv_prefix, then
 * cz_layer_bn named bn_prefix (none if NULL), then act (leaky_relu with
 * CZ_LEAKY_SLOPE). Training graphs (and unfused ones) get those ops one by
 * one; other inference graphs one fused convolution (cz_conv2d_fused) that
 * reads the same parameters, created in the same order under the same
 * names. */
cz_tensor *cz_layer_conv_bn_act(cz_graph *g, const char *conv_prefix, const char *bn_prefix,
                                cz_tensor *x, int64_t oc, int k, int stride, int padding,
                                bool bias, float eps, cz_act act);

/* The same layer with its parameters made apart from applying it, for a
 * layer that adds a tensor built after its parameters (a ResNet block's
 * last convolution adds the shortcut, whose parameters come after its own
 * in the model file). */
typedef struct {
    cz_tensor *weight, *bias; /* conv2d's: [oc, in_c, k, k], [oc] or NULL */
    cz_conv_fusion bn;        /* the batch norm's tensors (bn_weight NULL without one), eps */
    int stride, padding;
} cz_conv_bn;
/* Makes the parameters as cz_layer_conv_bn_act does, for in_c input
 * channels; false after a failure (the graph keeps the error). */
bool cz_layer_conv_bn_make(cz_conv_bn *layer, cz_graph *g, const char *conv_prefix,
                           const char *bn_prefix, int64_t in_c, int64_t oc, int k, int stride,
                           int padding, bool bias, float eps);
/* act(batch_norm2d(conv2d(x)) + residual), residual NULL for none: one
 * fused convolution in inference graphs, the residual its post-op. */
cz_tensor *cz_layer_conv_bn_apply(cz_graph *g, const cz_conv_bn *layer, cz_tensor *x,
                                  cz_tensor *residual, cz_act act);
/* batch_norm2d(pad_crop(conv_transpose2d(x), h, w)): cz_layer_conv_transpose
 * (no bias) named conv_prefix, cropped to h x w, then cz_layer_bn named
 * bn_prefix with CZ_BN_EPS. Fused as above in bf16 inference graphs (where
 * it pays: see layers.c), the crop after the fused transposed convolution:
 * a per-channel affine map commutes with cropping (a crop that would pad is
 * not fused). */
cz_tensor *cz_layer_conv_transpose_bn(cz_graph *g, const char *conv_prefix,
                                      const char *bn_prefix, cz_tensor *x, int64_t oc, int k,
                                      int stride, int padding, int64_t h, int64_t w);
/* linear(x) with weight [out, in] and bias [out]. */
cz_tensor *cz_layer_linear(cz_graph *g, const char *prefix, cz_tensor *x, int64_t out);

/* printf into a name buffer of CZ_NAME_MAX bytes. */
#define CZ_NAME_MAX 128
void cz_layer_name(char *dst, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* --- ops of layers.c --- */

/* The generators' L input (L* / 50 - 1, [N, 1, H, W]) to the sRGB gray value
 * in [0, 1] whose L* it is: skimage's lab2rgb of (L*, 0, 0), whose three
 * channels are equal. This is the gray photo a ResNet50 encoder sees. */
cz_tensor *cz_l_to_gray(cz_graph *g, cz_tensor *x);

/* y[:, c] = x[:, src[c]] * scale[c] + shift[c] for c = 0, 1, 2: builds a
 * three-channel network input from one gray or three RGB channels, with a
 * channel reorder (RGB -> BGR) and a per-channel affine normalisation. */
cz_tensor *cz_channel_affine(cz_graph *g, cz_tensor *x, const int src[3], const float scale[3],
                             const float shift[3]);

/* x's top-left h x w window: cropped where x is larger, zero-padded where it
 * is smaller. */
cz_tensor *cz_pad_crop(cz_graph *g, cz_tensor *x, int64_t h, int64_t w);

/* --- the networks, one file each --- */

/* resnet50.c: the encoder's features, from the stem to layer4. */
typedef struct {
    cz_tensor *stem;   /* after conv1, bn1, ReLU: [N, w, H/2, W/2] */
    cz_tensor *layer1; /* [N, 4w, H/4, W/4] */
    cz_tensor *layer2; /* [N, 8w, H/8, W/8] */
    cz_tensor *layer3; /* [N, 16w, H/16, W/16] */
    cz_tensor *layer4; /* [N, 32w, H/32, W/32] */
} cz_resnet50_features;

/* RGB in [0, 1] -> the normalised input of this layout's ImageNet weights. */
cz_tensor *cz_resnet50_normalise_rgb(cz_graph *g, const cz_model_spec *spec, cz_tensor *rgb);
/* L* / 50 - 1 -> the same, from the gray photo of that L* in all channels. */
cz_tensor *cz_resnet50_normalise_l(cz_graph *g, const cz_model_spec *spec, cz_tensor *l);
/* The encoder on a normalised input, its parameters named prefix + the
 * torchvision names ("conv1.weight", "layer1.0.bn1.running_mean", ...). */
cz_resnet50_features cz_resnet50_encoder(cz_graph *g, const cz_model_spec *spec,
                                         const char *prefix, cz_tensor *x);
cz_tensor *cz_resnet50_classifier_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);

/* unet.c, resnet_generators.c, discriminators.c */
cz_tensor *cz_unet_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);
cz_tensor *cz_resnet_paper_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);
cz_tensor *cz_resnet_unet_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);
cz_tensor *cz_resnet_unet_bins_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);
cz_tensor *cz_patchgan_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);
cz_tensor *cz_sigmoid_disc_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);

#endif
