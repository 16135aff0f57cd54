/*
 * Models: an architecture, its hyper-parameters, and its weights.
 *
 * A cz_model is what a model file holds. It is independent of any graph: to
 * run or train it, build a graph from its spec (cz_model_build), plan it, and
 * copy the weights in (cz_model_to_graph); after training, copy them back
 * (cz_model_from_graph) and save. Weight names and layouts are PyTorch's
 * state_dict conventions, so files move between the two without transposes.
 *
 * Architectures (spec.arch):
 *   generators, input L [N, 1, H, W] scaled to [-1, 1], output a*b* [N, 2, H, W]
 *   through tanh (a*b* / 110):
 *     "unet"            pix2pix unet_256, the paper's baseline
 *     "resnet50-paper"  ImageNet ResNet50 encoder + Conv/BN/ReLU/upsample decoder
 *     "resnet50-unet"   the same encoder with skip connections into the decoder
 *   discriminators, input concat(L, a*b*) [N, 3, H, W], output logits:
 *     "patchgan"        pix2pix 70x70 PatchGAN, one logit per patch [N, 1, h, w]
 *     "sigmoid"         the paper's first discriminator, one logit per image [N, 1, 1, 1]
 *   classifier, input an RGB image [N, 3, H, W] in [0, 1], output 1000 logits:
 *     "resnet50"        the ImageNet classifier (for checking imported weights)
 */
#ifndef CZ_MODELS_MODEL_H
#define CZ_MODELS_MODEL_H

#include <stdbool.h>

#include "engine/graph.h"

typedef struct {
    char arch[32];          /* one of the names above */
    int width;              /* base channels: unet ngf, patchgan ndf (paper: 64) */
    int size;               /* the square size it was trained for (256 unet, 224 ResNet) */
    bool freeze_encoder;    /* ResNet encoders: frozen feature extractor (paper) or trained */
    char encoder_layout[16]; /* ResNet50: "keras" (Caffe-style v1, conv biases, BN eps 1e-3,
                                BGR mean input) or "torchvision" (v1.5, eps 1e-5, RGB mean/std) */
} cz_model_spec;

typedef struct cz_model cz_model;

/* A model with fresh weights: N(0, 0.02) as pix2pix, BatchNorm weights N(1, 0.02). */
cz_status cz_model_new(const cz_model_spec *spec, uint64_t seed, cz_model **out);

/* Reads a model file (safetensors; the spec comes from its __metadata__) and
 * checks every name and shape against the architecture. */
cz_status cz_model_load(const char *path, cz_model **out);

/* Writes the model atomically; extra_meta (key, value, ..., NULL, or NULL)
 * adds metadata such as how it was trained. */
cz_status cz_model_save(const cz_model *m, const char *path, const char *const *extra_meta);

void cz_model_free(cz_model *m);
const cz_model_spec *cz_model_spec_of(const cz_model *m);

/* A metadata value the model was loaded or saved with (NULL if absent). */
const char *cz_model_metadata(const cz_model *m, const char *key);

/* Appends the network to g, reading x, and returns its output (NULL after
 * recording an error in g). Parameters are created with their state_dict
 * names; a frozen encoder's parameters are created frozen. */
cz_tensor *cz_model_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);

/* Copy weights between a model and a planned graph built from its spec. */
cz_status cz_model_to_graph(const cz_model *m, cz_graph *g);
cz_status cz_model_from_graph(cz_model *m, const cz_graph *g);

/* Number of learnable values (excluding BatchNorm running statistics). */
long cz_model_param_count(const cz_model *m);

#endif
