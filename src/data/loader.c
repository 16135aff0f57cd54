/* The loader: worker threads filling a ring of batches in plan order.
 *
 * Batches are numbered by q = 0, 1, 2, ... from the first one returned; the
 * ring slot of batch q is q % prefetch. One mutex guards the hand-out of
 * work (the next (batch, sample) to make), each slot's count of finished
 * samples, and the consumer's position. A worker may start on batch q once
 * q < released + prefetch, i.e. once the consumer has given back the batch
 * that last used the slot; the consumer gives a batch back on its next call
 * to cz_loader_next. The samples themselves are made outside the lock, each
 * into its own part of the slot. */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "data/loader.h"

/* What the loader learned about a photo (per file, shared by the workers). */
enum { PHOTO_UNKNOWN = 0, PHOTO_GRAY = 1, PHOTO_FAILED = 2 };

typedef struct {
    float *L, *ab;
    int *files;
    int64_t q;  /* batch number held, -1 before the first */
    int n;      /* samples it needs */
    int done;   /* samples finished */
} slot;

typedef struct {
    struct cz_loader *ld;
    pthread_t thread;
    bool started;
    int *plan;          /* its copy of the plan of plan_epoch */
    int64_t plan_epoch; /* -1: none yet */
    cz_sample_scratch scratch;
} worker;

struct cz_loader {
    const cz_dataset *ds;
    cz_loader_options o;
    FILE *log;
    int count;          /* photos in the dataset */
    int64_t per_epoch;  /* batches per epoch */
    int64_t first;      /* absolute number (epoch * per_epoch + batch) of q 0 */
    slot *slots;
    worker *workers;
    _Atomic unsigned char *photo; /* PHOTO_* per file */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* workers: a slot came free, or stop */
    pthread_cond_t ready_cv; /* consumer: a batch is complete, or an error */
    bool sync_ready;         /* mu and the condition variables exist */
    int64_t claim_q;         /* next sample to hand out: batch claim_q ... */
    int claim_j;             /* ... sample claim_j */
    int64_t next_q;          /* next batch for the consumer */
    int64_t released;        /* batches given back by the consumer */
    bool holding;            /* the consumer holds batch next_q - 1 */
    bool stop;
    cz_status error;         /* first fatal error of a worker */
    char error_message[1024];

    _Atomic int_least64_t decoded;
    _Atomic int gray_skipped, failed;
    double t_open, wait_s;
    double worker_cpu_s; /* summed over workers, under mu */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cz_loader_options_init(cz_loader_options *o, int batch, int size,
                            bool augment)
{
    *o = (cz_loader_options){
        .batch = batch,
        .workers = CZ_LOADER_WORKERS,
        .prefetch = CZ_LOADER_PREFETCH,
    };
    cz_sample_options_init(&o->sample, size, augment);
}

int cz_data_default_size(const char *arch)
{
    return arch && strncmp(arch, "resnet50", 8) == 0 ? CZ_DATA_SIZE_RESNET
                                                     : CZ_DATA_SIZE_UNET;
}

/* Batch q's epoch, index in the epoch, and number of samples. */
static void locate(const cz_loader *ld, int64_t q, int64_t *epoch,
                   int64_t *index, int *n)
{
    int64_t abs = ld->first + q;
    *epoch = abs / ld->per_epoch;
    *index = abs % ld->per_epoch;
    int64_t left = (int64_t)ld->count - *index * ld->o.batch;
    *n = left < ld->o.batch ? (int)left : ld->o.batch;
}

/* ---- Workers ------------------------------------------------------------- */

/* Reports a photo that cannot be used, once per loader. */
static void mark_photo(cz_loader *ld, int file, unsigned char kind,
                       const char *why)
{
    unsigned char expected = PHOTO_UNKNOWN;
    if (!atomic_compare_exchange_strong(&ld->photo[file], &expected, kind))
        return; /* another worker got there first */
    if (kind == PHOTO_GRAY) {
        atomic_fetch_add(&ld->gray_skipped, 1);
        fprintf(ld->log, "colorize: skipping grayscale photo %s (%s)\n",
                cz_dataset_path(ld->ds, file), why);
    } else {
        atomic_fetch_add(&ld->failed, 1);
        fprintf(ld->log, "colorize: skipping %s, which failed to decode: %s\n",
                cz_dataset_path(ld->ds, file), why);
    }
}

/* Makes the sample at plan position p of epoch e into sample j of s. A
 * photo that is grayscale or does not decode is replaced by the next of the
 * plan; only running out of memory or of photos stops the loader. */
static cz_status make_sample(worker *w, slot *s, int j, int64_t e, int64_t p)
{
    cz_loader *ld = w->ld;
    const int n = ld->count;
    if (w->plan_epoch != e) {
        cz_dataset_plan(ld->ds, ld->o.sample.augment, ld->o.seed, e, w->plan);
        w->plan_epoch = e;
    }
    const size_t SS = (size_t)ld->o.sample.size * (size_t)ld->o.sample.size;
    float *L = s->L + (size_t)j * SS, *ab = s->ab + (size_t)j * 2 * SS;
    for (int k = 0; k < n; k++) {
        int file = w->plan[(p + k) % n];
        if (atomic_load(&ld->photo[file]) != PHOTO_UNKNOWN)
            continue;
        /* The same stream for every candidate: what a photo gets depends
         * on the position it fills, not on what was tried before. */
        cz_rng rng;
        cz_data_rng(&rng, ld->o.seed, CZ_DATA_STREAM_SAMPLE, e, p);
        cz_sample_info info;
        cz_status st = cz_sample_make(cz_dataset_path(ld->ds, file),
                                      &ld->o.sample, &rng, &w->scratch, L, ab,
                                      &info);
        if (st == CZ_ERR_NOMEM)
            return st;
        if (st != CZ_OK) {
            mark_photo(ld, file, PHOTO_FAILED, cz_last_error());
            continue;
        }
        if (info.gray) {
            char why[64];
            snprintf(why, sizeof why, "mean |a*|+|b*| %.2f", info.chroma);
            mark_photo(ld, file, PHOTO_GRAY, why);
            continue;
        }
        s->files[j] = file;
        atomic_fetch_add(&ld->decoded, 1);
        return CZ_OK;
    }
    return cz_fail(CZ_ERR_INVALID,
                   "%s: no photo in it can be used (all grayscale or "
                   "undecodable)", cz_dataset_dir(ld->ds));
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    cz_loader *ld = w->ld;
    /* The Lab conversion and resize have OpenMP loops; in a worker they run
     * on this thread alone, leaving the cores to the training step. */
    omp_set_num_threads(1);
    pthread_mutex_lock(&ld->mu);
    while (!ld->stop && ld->error == CZ_OK) {
        if (ld->claim_q >= ld->released + ld->o.prefetch) {
            pthread_cond_wait(&ld->work_cv, &ld->mu);
            continue;
        }
        const int64_t q = ld->claim_q;
        const int j = ld->claim_j;
        int64_t e, b;
        int n;
        locate(ld, q, &e, &b, &n);
        slot *s = &ld->slots[q % ld->o.prefetch];
        if (j == 0) {
            s->q = q;
            s->n = n;
            s->done = 0;
            if (n < ld->o.batch) { /* a validation tail: zero the rest */
                size_t SS = (size_t)ld->o.sample.size * (size_t)ld->o.sample.size;
                size_t rest = (size_t)(ld->o.batch - n);
                memset(s->L + (size_t)n * SS, 0, rest * SS * sizeof *s->L);
                memset(s->ab + (size_t)n * 2 * SS, 0,
                       rest * 2 * SS * sizeof *s->ab);
            }
        }
        if (++ld->claim_j == n) {
            ld->claim_j = 0;
            ld->claim_q++;
        }
        pthread_mutex_unlock(&ld->mu);

        double t0 = thread_cpu_s();
        cz_status st = make_sample(w, s, j, e, b * ld->o.batch + j);
        double cpu = thread_cpu_s() - t0;

        pthread_mutex_lock(&ld->mu);
        ld->worker_cpu_s += cpu;
        if (st != CZ_OK) {
            if (ld->error == CZ_OK) {
                ld->error = st;
                snprintf(ld->error_message, sizeof ld->error_message, "%s",
                         cz_last_error());
            }
            pthread_cond_broadcast(&ld->ready_cv);
            break;
        }
        if (++s->done == s->n)
            pthread_cond_broadcast(&ld->ready_cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* ---- Open, next, free ---------------------------------------------------- */

void cz_loader_free(cz_loader *ld)
{
    if (!ld)
        return;
    if (ld->sync_ready) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = true;
        pthread_cond_broadcast(&ld->work_cv);
        pthread_mutex_unlock(&ld->mu);
    }
    if (ld->workers) {
        for (int i = 0; i < ld->o.workers; i++) {
            worker *w = &ld->workers[i];
            if (w->started)
                pthread_join(w->thread, NULL);
            free(w->plan);
            cz_sample_scratch_free(&w->scratch);
        }
    }
    if (ld->slots) {
        for (int i = 0; i < ld->o.prefetch; i++) {
            free(ld->slots[i].L);
            free(ld->slots[i].ab);
            free(ld->slots[i].files);
        }
    }
    if (ld->sync_ready) {
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->work_cv);
        pthread_cond_destroy(&ld->ready_cv);
    }
    free(ld->workers);
    free(ld->slots);
    free((void *)ld->photo);
    free(ld);
}

static cz_status check_options(const cz_dataset *ds, const cz_loader_options *o)
{
    if (!ds || !o)
        return cz_fail(CZ_ERR_INVALID, "cz_loader_open: NULL argument");
    if (o->batch < 1)
        return cz_fail(CZ_ERR_INVALID, "batch size %d: must be >= 1",
                       o->batch);
    if (o->workers < 1 || o->workers > CZ_LOADER_MAX_WORKERS)
        return cz_fail(CZ_ERR_INVALID, "data workers %d: must be 1..%d",
                       o->workers, CZ_LOADER_MAX_WORKERS);
    if (o->prefetch < 1 || o->prefetch > CZ_LOADER_MAX_PREFETCH)
        return cz_fail(CZ_ERR_INVALID, "prefetch %d: must be 1..%d batches",
                       o->prefetch, CZ_LOADER_MAX_PREFETCH);
    if (o->start_epoch < 0 || o->start_batch < 0)
        return cz_fail(CZ_ERR_INVALID, "start at epoch %lld batch %lld: must "
                       "be >= 0", (long long)o->start_epoch,
                       (long long)o->start_batch);
    cz_status st = cz_sample_options_check(&o->sample);
    if (st != CZ_OK)
        return st;
    if (o->sample.augment && cz_dataset_count(ds) < o->batch)
        return cz_fail(CZ_ERR_INVALID,
                       "%s: %d photos, fewer than one batch of %d",
                       cz_dataset_dir(ds), cz_dataset_count(ds), o->batch);
    return CZ_OK;
}

cz_status cz_loader_open(const cz_dataset *ds, const cz_loader_options *o,
                         cz_loader **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_loader_open: out is NULL");
    *out = NULL;
    cz_status status = check_options(ds, o);
    if (status != CZ_OK)
        return status;
    cz_loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return cz_fail(CZ_ERR_NOMEM, "loader: out of memory");
    ld->ds = ds;
    ld->o = *o;
    ld->log = o->log ? o->log : stderr;
    ld->count = cz_dataset_count(ds);
    ld->per_epoch = o->sample.augment
                        ? ld->count / o->batch
                        : (ld->count + o->batch - 1) / o->batch;
    if (o->start_batch >= ld->per_epoch ||
        o->start_epoch > INT64_MAX / ld->per_epoch / 2) {
        status = cz_fail(CZ_ERR_INVALID,
                         "start at epoch %lld batch %lld: an epoch has %lld "
                         "batches", (long long)o->start_epoch,
                         (long long)o->start_batch, (long long)ld->per_epoch);
        goto fail;
    }
    ld->first = o->start_epoch * ld->per_epoch + o->start_batch;

    const size_t SS = (size_t)o->sample.size * (size_t)o->sample.size;
    const size_t N = (size_t)o->batch;
    if (N > SIZE_MAX / sizeof(float) / 3 / SS) {
        status = cz_fail(CZ_ERR_TOO_LARGE, "a batch of %d at %d x %d is too "
                         "large", o->batch, o->sample.size, o->sample.size);
        goto fail;
    }
    ld->photo = calloc((size_t)ld->count, sizeof *ld->photo);
    ld->slots = calloc((size_t)o->prefetch, sizeof *ld->slots);
    ld->workers = calloc((size_t)o->workers, sizeof *ld->workers);
    if (!ld->photo || !ld->slots || !ld->workers)
        goto nomem;
    for (int i = 0; i < o->prefetch; i++) {
        slot *s = &ld->slots[i];
        s->L = malloc(N * SS * sizeof *s->L);
        s->ab = malloc(2 * N * SS * sizeof *s->ab);
        s->files = malloc(N * sizeof *s->files);
        s->q = -1;
        if (!s->L || !s->ab || !s->files)
            goto nomem;
    }
    for (int i = 0; i < o->workers; i++) {
        worker *w = &ld->workers[i];
        w->ld = ld;
        w->plan_epoch = -1;
        w->plan = malloc((size_t)ld->count * sizeof *w->plan);
        if (!w->plan)
            goto nomem;
    }
    if (pthread_mutex_init(&ld->mu, NULL) != 0)
        goto nomem;
    if (pthread_cond_init(&ld->work_cv, NULL) != 0) {
        pthread_mutex_destroy(&ld->mu);
        goto nomem;
    }
    if (pthread_cond_init(&ld->ready_cv, NULL) != 0) {
        pthread_cond_destroy(&ld->work_cv);
        pthread_mutex_destroy(&ld->mu);
        goto nomem;
    }
    ld->sync_ready = true;
    ld->t_open = now_s();
    for (int i = 0; i < o->workers; i++) {
        worker *w = &ld->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            status = cz_fail(CZ_ERR_NOMEM, "loader: cannot start worker "
                             "thread %d", i);
            goto fail;
        }
        w->started = true;
    }
    *out = ld;
    return CZ_OK;

nomem:
    status = cz_fail(CZ_ERR_NOMEM, "loader: out of memory");
fail:
    cz_loader_free(ld);
    return status;
}

cz_status cz_loader_next(cz_loader *ld, cz_batch *batch)
{
    if (!ld || !batch)
        return cz_fail(CZ_ERR_INVALID, "cz_loader_next: NULL argument");
    pthread_mutex_lock(&ld->mu);
    if (ld->holding) {
        ld->released++;
        ld->holding = false;
        pthread_cond_broadcast(&ld->work_cv);
    }
    const int64_t q = ld->next_q;
    slot *s = &ld->slots[q % ld->o.prefetch];
    if (!(s->q == q && s->done == s->n) && ld->error == CZ_OK) {
        double t0 = now_s();
        while (!(s->q == q && s->done == s->n) && ld->error == CZ_OK)
            pthread_cond_wait(&ld->ready_cv, &ld->mu);
        ld->wait_s += now_s() - t0;
    }
    if (ld->error != CZ_OK) {
        cz_status st = ld->error;
        pthread_mutex_unlock(&ld->mu);
        return cz_fail(st, "%s", ld->error_message);
    }
    int64_t e, b;
    int n;
    locate(ld, q, &e, &b, &n);
    *batch = (cz_batch){
        .epoch = e,
        .index = b,
        .last = b == ld->per_epoch - 1,
        .n = n,
        .size = ld->o.sample.size,
        .L = s->L,
        .ab = s->ab,
        .files = s->files,
    };
    ld->next_q++;
    ld->holding = true;
    pthread_mutex_unlock(&ld->mu);
    return CZ_OK;
}

int64_t cz_loader_batches_per_epoch(const cz_loader *ld)
{
    return ld->per_epoch;
}

cz_loader_stats cz_loader_get_stats(cz_loader *ld)
{
    cz_loader_stats st = {
        .decoded = atomic_load(&ld->decoded),
        .gray_skipped = atomic_load(&ld->gray_skipped),
        .failed = atomic_load(&ld->failed),
        .seconds = now_s() - ld->t_open,
    };
    pthread_mutex_lock(&ld->mu);
    st.wait_s = ld->wait_s;
    st.worker_cpu_s = ld->worker_cpu_s;
    pthread_mutex_unlock(&ld->mu);
    st.images_per_s = st.seconds > 0 ? (double)st.decoded / st.seconds : 0;
    return st;
}
