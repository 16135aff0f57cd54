/*
 * GAN training as in pix2pix and the paper: a generator G maps L to a*b*, a
 * discriminator D tells real (L, ab) from (L, G(L)).
 *
 * Each step, on a batch of photos:
 *   D step: BCE(D(L, G(L)), fake labels) / 2 + BCE(D(L, ab), real labels) / 2
 *   G step: BCE(D(L, G(L)), 1) + lambda * L1(G(L), ab), through a frozen D
 *           (for resnet50-unet-bins, lambda times the cross-entropy of its
 *           bin distribution against ab, ops.h, instead of the L1 term)
 * with Adam on each. Labels can be smoothed (one-sided: real = 0.9) or noisy
 * (the paper: each label drawn uniformly from a range per element), and D's
 * inputs put through DiffAugment (train/disc_input.h).
 *
 * The run never loses work: a checkpoint (train/checkpoint.h) is written
 * atomically every few minutes, on SIGINT/SIGTERM and at the end, the last K
 * are kept, and --resume continues bit for bit. A NaN or infinite loss stops
 * the run, keeping the last good checkpoint.
 */
#ifndef CZ_TRAIN_TRAIN_H
#define CZ_TRAIN_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/graph.h"
#include "models/model.h"

#define CZ_MAX_SOURCE_WEIGHTS 16

typedef struct {
    const char *train_dir;   /* folder of colour photos, scanned recursively */
    const char *val_dir;     /* optional: validation photos */
    const char *out_dir;     /* checkpoints, log.csv, samples, final model */
    const char *encoder;     /* ImageNet ResNet50 model file for ResNet generators */
    const char *init_generator; /* optional: a generator model whose tensors of the same
                                   name and shape start this one's (after the encoder's) */

    cz_model_spec generator, discriminator;
    int size;                /* training crop size (0: the generator's default) */
    int batch;               /* paper: 32 */
    int epochs;              /* length of the run, unless steps > 0 */
    int64_t steps;
    int decay_epochs;        /* linear learning-rate decay to 0 over the last ones */

    float lr, beta1, beta2;  /* Adam (pix2pix: 2e-4, 0.5, 0.999) */
    float lambda_l1;         /* weight of the L1 term (pix2pix: 100) */
    float real_lo, real_hi;  /* real labels drawn from [lo, hi] (1, 1: plain) */
    float fake_lo, fake_hi;  /* fake labels drawn from [lo, hi] (0, 0: plain) */
    bool diffaugment;        /* D's inputs shifted and cut out (train/disc_input.h) */

    cz_precision precision;
    uint64_t seed;
    int workers;             /* decoding threads */
    const char *source_weights[CZ_MAX_SOURCE_WEIGHTS]; /* "name=weight" */
    int n_source_weights;

    double checkpoint_minutes; /* how often to checkpoint */
    int keep_checkpoints;      /* how many to keep */
    bool resume;               /* continue from the newest checkpoint in out_dir */
    int sample_rows;           /* validation photos in each epoch's grid */
    bool quiet;                /* no progress line */
    int stop_at_epoch;         /* stop (as if signalled) once this many epochs are done; 0 never */
    bool epoch_generators;     /* also keep each epoch's generator as generator-epoch-N.safetensors */
    int64_t stop_after_steps;  /* testing aid: stop (as if signalled) after this many steps */
} cz_train_options;

/* The pix2pix defaults, for a given generator. */
void cz_train_defaults(cz_train_options *opt);

/* Runs (or resumes) a training run; returns when it is done, stopped by a
 * signal (after checkpointing), or failed. The generator is written to
 * out_dir/generator.safetensors, loadable by `colorize --model`, after every
 * epoch and at the end (with epoch_generators, also to
 * out_dir/generator-epoch-N.safetensors after epoch N). */
cz_status cz_train(const cz_train_options *opt);

#endif
