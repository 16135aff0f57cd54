/*
 * Training data, part 3: batches made ahead of the compute.
 *
 * A loader turns a dataset into an endless stream of batches, epoch after
 * epoch. Worker threads decode photos into a ring of `prefetch` batches
 * allocated at open (nothing is allocated per batch after that, beyond what
 * decoding a photo needs), so cz_loader_next only waits when the workers are
 * behind. Work is handed out one sample at a time, in plan order.
 *
 * Batch b of epoch e holds plan positions b*N .. b*N+N-1 of epoch e's plan
 * (cz_dataset_plan). The sample at position p is made with an rng seeded
 * from (seed, e, p), so its crop and flip do not depend on which worker made
 * it or when. A photo that turns out grayscale or cannot be decoded is
 * replaced by the next photo of the plan (p+1, p+2, ..., wrapping) that can;
 * those decisions depend on the files only, so every run, whatever its
 * thread count, makes the same batches. Such a photo is reported once per
 * loader on the log stream, with its path.
 *
 * Training (augment): N photos per batch, floor(count / N) batches per epoch
 * (the remainder is left for the next epoch's different plan).
 * Validation (!augment): the sequential plan, ceil(count / N) batches; the
 * last may hold fewer than N samples (batch.n), the rest of it zeroed.
 *
 * Resuming: start_epoch and start_batch make the first batch returned the
 * one a run from (0, 0) would have returned at that point.
 */
#ifndef CZ_DATA_LOADER_H
#define CZ_DATA_LOADER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "data/dataset.h"
#include "data/sample.h"

/* Default worker threads: two keep ahead of any training step we have on
 * this machine's CPUs (docs/training.md has the decode rates). */
#define CZ_LOADER_WORKERS 2
/* Default ring depth in batches. */
#define CZ_LOADER_PREFETCH 4
/* Upper bounds on the options, to refuse typos rather than exhaust memory. */
#define CZ_LOADER_MAX_WORKERS 64
#define CZ_LOADER_MAX_PREFETCH 64

typedef struct {
    int batch;          /* N, samples per batch */
    int workers;        /* decoding threads */
    int prefetch;       /* batches in the ring */
    uint64_t seed;      /* plans, crops and flips */
    int64_t start_epoch, start_batch; /* first batch to return */
    FILE *log;          /* skipped-photo messages; NULL = stderr */
    cz_sample_options sample;
} cz_loader_options;

/* Defaults for a batch of N samples of size S, training if augment. */
void cz_loader_options_init(cz_loader_options *o, int batch, int size,
                            bool augment);

/* The default square size for an architecture name (model.h): 224 for the
 * ResNet50 ones ("resnet50*"), 256 otherwise. */
int cz_data_default_size(const char *arch);

typedef struct {
    int64_t epoch, index; /* which batch of which epoch */
    bool last;            /* the last batch of its epoch */
    int n;                /* samples in it: N except a validation tail */
    int size;             /* S */
    const float *L;       /* [N, 1, S, S]: L* / 50 - 1 */
    const float *ab;      /* [N, 2, S, S]: a* / 110, b* / 110 */
    const int *files;     /* [n] dataset index each sample was made from */
} cz_batch;

typedef struct {
    int64_t decoded;     /* samples made */
    int gray_skipped;    /* distinct photos found grayscale */
    int failed;          /* distinct photos that failed to decode */
    double seconds;      /* since open */
    double images_per_s; /* decoded / seconds */
    double wait_s;       /* time cz_loader_next spent waiting on workers */
    double worker_cpu_s; /* CPU time the workers spent making samples */
} cz_loader_stats;

typedef struct cz_loader cz_loader;

/* Starts the workers. ds must outlive the loader. CZ_ERR_INVALID for bad
 * options or a training set smaller than one batch. */
cz_status cz_loader_open(const cz_dataset *ds, const cz_loader_options *o,
                         cz_loader **out);

/* The next batch, valid until the next call or cz_loader_free. Fails only
 * if the loader cannot go on: out of memory, or no photo of the dataset
 * usable. */
cz_status cz_loader_next(cz_loader *ld, cz_batch *batch);

int64_t cz_loader_batches_per_epoch(const cz_loader *ld);

cz_loader_stats cz_loader_get_stats(cz_loader *ld);

/* Stops and joins the workers, even mid-epoch, and frees everything.
 * NULL is a no-op. */
void cz_loader_free(cz_loader *ld);

#endif
