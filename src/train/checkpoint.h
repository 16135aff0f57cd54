/* Checkpoints: everything a GAN run needs to continue bit for bit — both
 * networks' weights and BatchNorm statistics, both optimisers' moments and
 * step counts, the random generators, and the position in the data — in one
 * safetensors file written atomically. */
#ifndef CZ_TRAIN_CHECKPOINT_H
#define CZ_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "base/rng.h"
#include "engine/graph.h"
#include "optim/adam.h"

#define CZ_CHECKPOINT_RNGS 3

typedef struct {
    cz_graph *generator, *discriminator;  /* planned training graphs */
    cz_adam *generator_adam, *discriminator_adam;
    cz_rng *rngs[CZ_CHECKPOINT_RNGS];     /* generator dropout, discriminator, labels and D's augmentation */
    int64_t step;                         /* optimiser steps done */
    int64_t epoch, batch;                 /* where the data stands: next batch to draw */
    double seconds;                       /* training time so far */
} cz_train_position;

/* Writes p to path (atomically). meta: extra key/value pairs, NULL-terminated,
 * e.g. the options the run was started with. */
cz_status cz_checkpoint_save(const char *path, const cz_train_position *p,
                             const char *const *meta);

/* Restores p (whose graphs and optimisers are built as for the saved run)
 * from path; every tensor must be present with its shape. */
cz_status cz_checkpoint_load(const char *path, cz_train_position *p);

/* The value of a metadata key in a checkpoint (a copy to free), or NULL. */
char *cz_checkpoint_metadata(const char *path, const char *key);

#endif
