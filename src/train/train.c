#include "train/train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "data/loader.h"
#include "eval/metrics.h"
#include "image/image.h"
#include "image/lab.h"
#include "ops/ops.h"
#include "optim/adam.h"
#include "report/report.h"
#include "train/checkpoint.h"
#include "train/disc_input.h"

void cz_train_defaults(cz_train_options *opt)
{
    memset(opt, 0, sizeof *opt);
    snprintf(opt->generator.arch, sizeof opt->generator.arch, "unet");
    opt->generator.width = 64;
    snprintf(opt->discriminator.arch, sizeof opt->discriminator.arch, "patchgan");
    opt->discriminator.width = 64;
    opt->batch = 32;
    opt->epochs = 100;
    opt->lr = 2e-4f;
    opt->beta1 = 0.5f;
    opt->beta2 = 0.999f;
    opt->lambda_l1 = 100.0f;
    opt->real_lo = opt->real_hi = 1.0f;
    opt->fake_lo = opt->fake_hi = 0.0f;
    opt->precision = CZ_FP32;
    opt->seed = 1;
    opt->workers = 2;
    opt->checkpoint_minutes = 10;
    opt->keep_checkpoints = 3;
    opt->sample_rows = 6;
}

/* --- Signals: stop cleanly after the current step. --- */

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

#define SCHEDULE_FORMAT " epochs=%d steps=%lld decay_epochs=%d"

/* --- One run's state. --- */

typedef struct {
    double d_real, d_fake, g_gan, g_l1;
} step_losses;

typedef struct {
    const cz_train_options *opt;
    int size;
    cz_model *gen_model, *disc_model;
    cz_graph *G, *D;
    cz_tensor *g_L, *g_ab_real, *g_ab, *g_l1;
    cz_tensor *d_in, *d_labels, *d_loss;
    cz_adam *g_adam, *d_adam;
    cz_rng d_rng; /* noisy labels and DiffAugment's transforms */
    cz_disc_transform *transforms; /* one per sample, with --diffaugment */
    cz_dataset *train_set, *val_set;
    cz_loader *loader;
    cz_train_position pos;
    int64_t total_steps, batches_per_epoch;
    /* The schedule a resumed run was started with (see check_schedule). */
    bool resumed;
    int saved_epochs, saved_decay_epochs;
    long long saved_steps;
    char checkpoint_dir[4096];
    FILE *log;
    /* loss history for the plot */
    double *hist[6];
    size_t n_hist, cap_hist;
} run;

static cz_status make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST)
        return CZ_OK;
    return cz_fail(CZ_ERR_IO, "%s: cannot create folder: %s", path, strerror(errno));
}

static cz_status build_networks(run *r)
{
    const cz_train_options *o = r->opt;
    int B = o->batch, S = r->size;
    cz_graph_config cfg = {.training = true, .precision = o->precision, .seed = o->seed};
    r->G = cz_graph_create(&cfg);
    cfg.seed = o->seed + 1;
    r->D = cz_graph_create(&cfg);
    if (!r->G || !r->D)
        return cz_fail(CZ_ERR_NOMEM, "out of memory building the networks");

    r->g_L = cz_graph_input(r->G, "L", B, 1, S, S, false);
    r->g_ab = cz_model_build(&o->generator, r->G, r->g_L);
    r->g_ab_real = cz_graph_input(r->G, "ab", B, 2, S, S, false);
    /* The term that ties G to the photo (g_l1 in the log either way): L1, or
     * for a generator of bin distributions their cross-entropy. */
    cz_tensor *bins = cz_model_bin_logits(r->G, r->g_ab);
    r->g_l1 = bins ? cz_ab_bins_cross_entropy(r->G, bins, r->g_ab_real)
                     : cz_l1_loss(r->G, r->g_ab, r->g_ab_real);
    cz_graph_keep(r->G, r->g_ab); /* D's gradient is added into it */
    cz_status st = cz_graph_plan(r->G);
    if (st != CZ_OK)
        return cz_fail(st, "generator %s at %dx%d: %s", o->generator.arch, S, S, cz_last_error());

    /* D's input gradient is what carries the GAN loss back into G. */
    r->d_in = cz_graph_input(r->D, "input", B, 3, S, S, true);
    cz_tensor *logits = cz_model_build(&o->discriminator, r->D, r->d_in);
    r->d_labels = logits ? cz_graph_input(r->D, "labels", logits->n, logits->c, logits->h, logits->w, false) : NULL;
    r->d_loss = cz_bce_with_logits(r->D, logits, r->d_labels);
    st = cz_graph_plan(r->D);
    if (st != CZ_OK)
        return cz_fail(st, "discriminator %s at %dx%d: %s", o->discriminator.arch, S, S, cz_last_error());

    cz_adam_config adam = {.lr = o->lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = 1e-8f};
    if (o->diffaugment && !(r->transforms = calloc((size_t)B, sizeof *r->transforms)))
        return cz_fail(CZ_ERR_NOMEM, "out of memory building the networks");
    r->g_adam = cz_adam_create(&adam, cz_graph_params(r->G)->n_trainable);
    r->d_adam = cz_adam_create(&adam, cz_graph_params(r->D)->n_trainable);
    if (!r->g_adam || !r->d_adam)
        return cz_fail(CZ_ERR_NOMEM, "out of memory building the networks");
    return CZ_OK;
}

/* Copies into gen every tensor that the generator at path has under the
 * same name and shape. */
static cz_status init_from(cz_model *gen, const char *path, bool quiet)
{
    cz_model *from = NULL;
    cz_status st = cz_model_load(path, &from);
    if (st != CZ_OK)
        return st;
    int copied = 0, n = cz_model_n_tensors(gen);
    for (int i = 0; i < n; i++) {
        cz_model_tensor *t = cz_model_tensor_at(gen, i);
        const cz_model_tensor *f = cz_model_find(from, t->name);
        bool same = f && f->ndim == t->ndim;
        int64_t count = 1;
        for (int d = 0; same && d < t->ndim; d++) {
            same = f->shape[d] == t->shape[d];
            count *= t->shape[d];
        }
        if (!same)
            continue;
        memcpy(t->data, f->data, (size_t)count * sizeof *t->data);
        copied++;
    }
    cz_model_free(from);
    if (copied == 0)
        return cz_fail(CZ_ERR_INVALID, "%s: shares no tensor (name and shape) with the generator", path);
    if (!quiet)
        fprintf(stderr, "%d of %d tensors from %s\n", copied, n, path);
    return CZ_OK;
}

/* Fresh weights: pix2pix initialisation, an ImageNet encoder where the
 * generator has one, and whatever --init-generator gives. */
static cz_status init_weights(run *r)
{
    const cz_train_options *o = r->opt;
    cz_status st = cz_model_new(&o->generator, o->seed, &r->gen_model);
    if (st == CZ_OK)
        st = cz_model_new(&o->discriminator, o->seed + 1, &r->disc_model);
    if (st == CZ_OK && strncmp(o->generator.arch, "resnet50", 8) == 0) {
        if (!o->encoder)
            return cz_fail(CZ_ERR_INVALID, "%s needs ImageNet weights (--encoder FILE; "
                           "`make weights` makes cache/resnet50/resnet50-keras-imagenet.safetensors)", o->generator.arch);
        cz_model *encoder = NULL;
        st = cz_model_load(o->encoder, &encoder);
        if (st == CZ_OK)
            st = cz_model_import_encoder(r->gen_model, encoder);
        cz_model_free(encoder);
    }
    if (st == CZ_OK && o->init_generator)
        st = init_from(r->gen_model, o->init_generator, o->quiet);
    if (st == CZ_OK)
        st = cz_model_to_graph(r->gen_model, r->G);
    if (st == CZ_OK)
        st = cz_model_to_graph(r->disc_model, r->D);
    return st;
}

/* D sees (L, ab) as three channels, with --diffaugment through transforms
 * drawn afresh for every pass (train/disc_input.h). */
static void fill_d_input(run *r, const float *L, const float *ab)
{
    if (r->transforms)
        cz_disc_transform_draw(&r->d_rng, r->size, r->d_in->n, r->transforms);
    cz_disc_input_fill(r->transforms, r->d_in->n, r->size, L, ab, r->d_in->data);
}

static void fill_labels(run *r, float lo, float hi)
{
    float *y = r->d_labels->data;
    int64_t n = cz_numel(r->d_labels);
    for (int64_t i = 0; i < n; i++)
        y[i] = lo == hi ? lo : lo + (hi - lo) * cz_rng_uniform(&r->d_rng);
}

static cz_status train_step(run *r, const cz_batch *b, float lr, step_losses *out)
{
    const cz_train_options *o = r->opt;
    int64_t plane = (int64_t)r->size * r->size;
    memcpy(r->g_L->data, b->L, (size_t)(b->n * plane) * sizeof(float));
    memcpy(r->g_ab_real->data, b->ab, (size_t)(2 * b->n * plane) * sizeof(float));
    cz_adam_set_lr(r->g_adam, lr);
    cz_adam_set_lr(r->d_adam, lr);
    cz_status st = cz_graph_forward(r->G);

    /* D step: fake then real, each half of D's loss. */
    r->d_in->requires_grad = false;
    cz_graph_zero_grad(r->D);
    fill_d_input(r, r->g_L->data, r->g_ab->data);
    fill_labels(r, o->fake_lo, o->fake_hi);
    if (st == CZ_OK)
        st = cz_graph_forward(r->D);
    out->d_fake = r->d_loss->data[0];
    cz_tensor_seed(r->d_loss, 0.5f);
    if (st == CZ_OK)
        st = cz_graph_backward(r->D);
    fill_d_input(r, r->g_L->data, r->g_ab_real->data);
    fill_labels(r, o->real_lo, o->real_hi);
    if (st == CZ_OK)
        st = cz_graph_forward(r->D);
    out->d_real = r->d_loss->data[0];
    cz_tensor_seed(r->d_loss, 0.5f);
    if (st == CZ_OK)
        st = cz_graph_backward(r->D);
    if (st == CZ_OK)
        st = cz_adam_step(r->d_adam, r->D);

    /* G step: through a frozen D, which must call G's output real. */
    cz_graph_set_frozen(r->D, true);
    r->d_in->requires_grad = true;
    fill_d_input(r, r->g_L->data, r->g_ab->data);
    fill_labels(r, 1.0f, 1.0f);
    if (st == CZ_OK)
        st = cz_graph_forward(r->D);
    out->g_gan = r->d_loss->data[0];
    cz_tensor_seed(r->d_loss, 1.0f);
    if (st == CZ_OK)
        st = cz_graph_backward(r->D);
    cz_graph_set_frozen(r->D, false);
    cz_graph_zero_grad(r->G);
    cz_disc_input_backward(r->transforms, r->d_in->n, r->size, r->d_in->grad, r->g_ab->grad);
    out->g_l1 = r->g_l1->data[0];
    cz_tensor_seed(r->g_l1, o->lambda_l1);
    if (st == CZ_OK)
        st = cz_graph_backward(r->G);
    if (st == CZ_OK)
        st = cz_adam_step(r->g_adam, r->G);
    return st;
}

/* --- Checkpoints on disk: checkpoints/step-00001234.safetensors --- */

static int list_checkpoints(const char *dir, char ***names)
{
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "step-", 5) != 0 || len < 17 ||
            strcmp(e->d_name + len - 12, ".safetensors") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(*names, (size_t)cap * sizeof *grown);
            if (!grown)
                break;
            *names = grown;
        }
        if (((*names)[n] = strdup(e->d_name)))
            n++;
    }
    closedir(d);
    /* Zero-padded step numbers sort by name. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp((*names)[j - 1], (*names)[j]) > 0; j--) {
            char *t = (*names)[j];
            (*names)[j] = (*names)[j - 1];
            (*names)[j - 1] = t;
        }
    return n;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The settings that shape a run. A resumed run must share all of them but
 * the schedule (the trailing " epochs=... steps=... decay_epochs=..."),
 * which it may change as long as the steps already taken keep their
 * learning rate (check_schedule). */
static void describe_options(const run *r, char *buf, size_t size)
{
    const cz_train_options *o = r->opt;
    snprintf(buf, size,
             "generator=%s width=%d freeze_encoder=%d discriminator=%s width=%d size=%d batch=%d "
             "seed=%llu precision=%s lr=%g beta1=%g beta2=%g lambda_l1=%g real=[%g,%g] "
             "fake=[%g,%g]%s%s%s" SCHEDULE_FORMAT,
             o->generator.arch, o->generator.width, o->generator.freeze_encoder,
             o->discriminator.arch, o->discriminator.width, r->size, o->batch,
             (unsigned long long)o->seed, o->precision == CZ_BF16 ? "bf16" : "fp32", o->lr, o->beta1,
             o->beta2, o->lambda_l1, o->real_lo, o->real_hi, o->fake_lo, o->fake_hi,
             o->diffaugment ? " diffaugment=translation,cutout" : "",
             o->init_generator ? " init_generator=" : "", o->init_generator ? o->init_generator : "", o->epochs,
             (long long)o->steps, o->decay_epochs);
}

static cz_status save_checkpoint(run *r)
{
    char path[4200], options[1024];
    snprintf(path, sizeof path, "%s/step-%08lld.safetensors", r->checkpoint_dir, (long long)r->pos.step);
    describe_options(r, options, sizeof options);
    const char *meta[] = {"options", options, NULL};
    cz_status st = cz_checkpoint_save(path, &r->pos, meta);
    if (st != CZ_OK)
        return st;
    char **names;
    int n = list_checkpoints(r->checkpoint_dir, &names);
    for (int i = 0; i + r->opt->keep_checkpoints < n; i++) {
        snprintf(path, sizeof path, "%s/%s", r->checkpoint_dir, names[i]);
        unlink(path);
    }
    free_names(names, n);
    return CZ_OK;
}

static cz_status resume(run *r)
{
    char **names;
    int n = list_checkpoints(r->checkpoint_dir, &names);
    if (n == 0) {
        free_names(names, n);
        return cz_fail(CZ_ERR_INVALID, "%s: no checkpoint to resume from", r->checkpoint_dir);
    }
    char path[4200], options[1024];
    snprintf(path, sizeof path, "%s/%s", r->checkpoint_dir, names[n - 1]);
    free_names(names, n);
    char *saved = cz_checkpoint_metadata(path, "options");
    describe_options(r, options, sizeof options);
    char *saved_schedule = saved ? strstr(saved, " epochs=") : NULL;
    char *schedule = strstr(options, " epochs=");
    bool same = saved_schedule &&
                sscanf(saved_schedule, SCHEDULE_FORMAT, &r->saved_epochs, &r->saved_steps,
                       &r->saved_decay_epochs) == 3 &&
                saved_schedule - saved == schedule - options &&
                strncmp(saved, options, (size_t)(schedule - options)) == 0;
    if (!same) {
        cz_status st = cz_fail(CZ_ERR_INVALID, "%s: the run was started with other options:\n  saved: %s\n  now:   %s",
                               path, saved ? saved : "(none)", options);
        free(saved);
        return st;
    }
    free(saved);
    cz_status st = cz_checkpoint_load(path, &r->pos);
    r->resumed = st == CZ_OK;
    if (st == CZ_OK && !r->opt->quiet)
        fprintf(stderr, "resuming from %s (step %lld)\n", path, (long long)r->pos.step);
    return st;
}

/* The step after which a schedule's learning rate starts to decay. */
static int64_t decay_start(int epochs, int64_t steps, int decay_epochs, int64_t batches_per_epoch)
{
    int64_t total = steps > 0 ? steps : (int64_t)epochs * batches_per_epoch;
    return total - (decay_epochs > 0 ? (int64_t)decay_epochs * batches_per_epoch : 0);
}

/* A resumed run may be lengthened, shortened or given another decay, but
 * only while every step it has taken had the same learning rate under both
 * schedules: then it is the run it would have been had it started with the
 * new one, and its recipe stays a single command. */
static cz_status check_schedule(const run *r)
{
    const cz_train_options *o = r->opt;
    int64_t bpe = r->batches_per_epoch, done = r->pos.step;
    int64_t was = decay_start(r->saved_epochs, r->saved_steps, r->saved_decay_epochs, bpe);
    int64_t now = decay_start(o->epochs, o->steps, o->decay_epochs, bpe);
    bool unchanged = r->saved_epochs == o->epochs && r->saved_steps == o->steps &&
                     r->saved_decay_epochs == o->decay_epochs;
    if (unchanged)
        return CZ_OK;
    if (r->total_steps < done)
        return cz_fail(CZ_ERR_INVALID, "%s: the run has taken %lld steps, more than the %lld now asked for",
                       r->checkpoint_dir, (long long)done, (long long)r->total_steps);
    if (was < done || now < done)
        return cz_fail(CZ_ERR_INVALID,
                       "%s: the new schedule would change the learning rate of steps already taken "
                       "(%lld taken; decay after step %lld in the saved schedule, %lld in the new one); "
                       "resume with the saved one: epochs=%d steps=%lld decay_epochs=%d",
                       r->checkpoint_dir, (long long)done, (long long)was, (long long)now,
                       r->saved_epochs, r->saved_steps, r->saved_decay_epochs);
    if (!o->quiet)
        fprintf(stderr, "new schedule: %lld steps, the learning rate decaying after step %lld\n",
                (long long)r->total_steps, (long long)now);
    return CZ_OK;
}

/* --- Log: log.csv, one row per step; a resumed run drops rows past its
 * checkpoint so the log matches what the weights have seen. --- */

static const char *const log_header = "step,epoch,batch,d_real,d_fake,g_gan,g_l1,lr,images_per_s,seconds\n";

static cz_status open_log(run *r)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/log.csv", r->opt->out_dir);
    if (r->opt->resume) {
        FILE *old = fopen(path, "r");
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *kept = fopen(tmp, "w");
        if (!kept) {
            if (old)
                fclose(old);
            return cz_fail(CZ_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        }
        fputs(log_header, kept);
        char line[512];
        while (old && fgets(line, sizeof line, old)) {
            long long step;
            if (sscanf(line, "%lld,", &step) == 1 && step <= r->pos.step)
                fputs(line, kept);
        }
        if (old)
            fclose(old);
        if (fclose(kept) != 0 || rename(tmp, path) != 0)
            return cz_fail(CZ_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        r->log = fopen(path, "a");
    } else {
        r->log = fopen(path, "w");
        if (r->log)
            fputs(log_header, r->log);
    }
    return r->log ? CZ_OK : cz_fail(CZ_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
}

static void remember(run *r, const step_losses *l, double val_l1)
{
    if (r->n_hist == r->cap_hist) {
        size_t cap = r->cap_hist ? 2 * r->cap_hist : 1024;
        for (int k = 0; k < 6; k++) {
            double *grown = realloc(r->hist[k], cap * sizeof *grown);
            if (!grown)
                return;
            r->hist[k] = grown;
        }
        r->cap_hist = cap;
    }
    size_t i = r->n_hist++;
    r->hist[0][i] = (double)r->pos.step;
    r->hist[1][i] = l->d_real;
    r->hist[2][i] = l->d_fake;
    r->hist[3][i] = l->g_gan;
    r->hist[4][i] = l->g_l1;
    r->hist[5][i] = val_l1;
}

static void write_plot(run *r)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/losses.png", r->opt->out_dir);
    cz_plot_series series[5] = {
        {.name = "D loss, real", .x = r->hist[0], .y = r->hist[1], .n = (int)r->n_hist},
        {.name = "D loss, fake", .x = r->hist[0], .y = r->hist[2], .n = (int)r->n_hist},
        {.name = "G loss, GAN", .x = r->hist[0], .y = r->hist[3], .n = (int)r->n_hist},
        {.name = "G loss, L1", .x = r->hist[0], .y = r->hist[4], .n = (int)r->n_hist},
        {.name = "validation L1", .x = r->hist[0], .y = r->hist[5], .n = (int)r->n_hist},
    };
    if (cz_plot_write(path, series, r->val_set ? 5 : 4, "colorize train", "step") != CZ_OK)
        fprintf(stderr, "warning: %s\n", cz_last_error());
}

/* --- Validation: L1 and colourfulness over the whole set, and a grid. --- */

static cz_status validate(run *r, int64_t epoch, double *val_l1_out)
{
    *val_l1_out = NAN;
    if (!r->val_set)
        return CZ_OK;
    const cz_train_options *o = r->opt;
    int B = 8, S = r->size;
    cz_graph_config cfg = {.training = false, .precision = o->precision, .params_copied_in = true};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *L = cz_graph_input(g, "L", B, 1, S, S, false);
    cz_tensor *ab = cz_model_build(&o->generator, g, L);
    cz_status st = cz_graph_plan(g);
    if (st == CZ_OK)
        st = cz_model_from_graph(r->gen_model, r->G);
    if (st == CZ_OK)
        st = cz_model_to_graph(r->gen_model, g);
    cz_loader_options lo;
    cz_loader_options_init(&lo, B, S, false);
    lo.workers = o->workers;
    lo.seed = o->seed;
    cz_loader *loader = NULL;
    if (st == CZ_OK)
        st = cz_loader_open(r->val_set, &lo, &loader);

    int64_t plane = (int64_t)S * S;
    double l1 = 0, cf_pred = 0, cf_true = 0;
    long n_images = 0;
    uint8_t *rgb = malloc((size_t)plane * 3);
    float *lab = malloc((size_t)plane * 3 * sizeof(float)), *rgbf = malloc((size_t)plane * 3 * sizeof(float));
    bool grid_done = false;
    if (!rgb || !lab || !rgbf)
        st = cz_fail(CZ_ERR_NOMEM, "validation: out of memory");
    for (bool more = true; st == CZ_OK && more;) {
        cz_batch b;
        st = cz_loader_next(loader, &b);
        if (st != CZ_OK)
            break;
        more = !b.last;
        memcpy(L->data, b.L, (size_t)(B * plane) * sizeof(float));
        st = cz_graph_forward(g);
        for (int n = 0; n < b.n && st == CZ_OK; n++) {
            const float *pred = ab->data + 2 * n * plane, *truth = b.ab + 2 * n * plane;
            double sum = 0;
            for (int64_t i = 0; i < 2 * plane; i++)
                sum += fabs((double)pred[i] - truth[i]);
            l1 += sum / (double)(2 * plane);
            for (int which = 0; which < 2; which++) {
                const float *abp = which ? truth : pred;
                for (int64_t i = 0; i < plane; i++) {
                    lab[3 * i] = (b.L[n * plane + i] + 1.0f) * 50.0f;
                    lab[3 * i + 1] = abp[i] * 110.0f;
                    lab[3 * i + 2] = abp[plane + i] * 110.0f;
                }
                cz_lab_to_srgb(lab, rgbf, (size_t)plane);
                for (int64_t i = 0; i < 3 * plane; i++)
                    rgb[i] = (uint8_t)lrintf(rgbf[i] * 255.0f);
                *(which ? &cf_true : &cf_pred) += cz_eval_colourfulness(rgb, (size_t)plane);
            }
            n_images++;
        }
        if (!grid_done && st == CZ_OK) {
            char path[4200];
            snprintf(path, sizeof path, "%s/samples/epoch-%04lld.png", o->out_dir, (long long)epoch);
            int rows = o->sample_rows < b.n ? o->sample_rows : b.n;
            char caption[64];
            snprintf(caption, sizeof caption, "epoch %lld, step %lld", (long long)epoch, (long long)r->pos.step);
            if (cz_grid_write(path, rows, S, b.L, ab->data, b.ab, caption) != CZ_OK)
                fprintf(stderr, "warning: %s\n", cz_last_error());
            grid_done = true;
        }
    }
    if (st == CZ_OK && n_images > 0) {
        *val_l1_out = l1 / (double)n_images;
        if (!o->quiet)
            fprintf(stderr, "\nepoch %lld validation: L1 %.4f (ab/110), colourfulness %.1f vs %.1f in the photos\n",
                    (long long)epoch, *val_l1_out, cf_pred / (double)n_images, cf_true / (double)n_images);
        char path[4200];
        snprintf(path, sizeof path, "%s/validation.csv", o->out_dir);
        FILE *f = fopen(path, "a");
        if (f) {
            if (ftell(f) == 0)
                fputs("epoch,step,val_l1,cf_pred,cf_true\n", f);
            fprintf(f, "%lld,%lld,%.6f,%.3f,%.3f\n", (long long)epoch, (long long)r->pos.step,
                    *val_l1_out, cf_pred / (double)n_images, cf_true / (double)n_images);
            fclose(f);
        }
    }
    free(rgb);
    free(lab);
    free(rgbf);
    cz_loader_free(loader);
    cz_graph_free(g);
    return st;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(const run *r, const step_losses *l, double images_per_s)
{
    if (r->opt->quiet)
        return;
    double eta = images_per_s > 0 ? (double)(r->total_steps - r->pos.step) * r->opt->batch / images_per_s : 0;
    int h = (int)(eta / 3600), m = (int)(eta / 60) % 60, s = (int)eta % 60;
    fprintf(stderr, "%sepoch %lld step %lld/%lld  %.1f img/s  ETA %d:%02d:%02d  D %.3f/%.3f  G %.3f  L1 %.4f%s",
            isatty(2) ? "\r" : "", (long long)r->pos.epoch, (long long)r->pos.step,
            (long long)r->total_steps, images_per_s, h, m, s, l->d_real, l->d_fake, l->g_gan, l->g_l1,
            isatty(2) ? "\033[K" : "\n");
}

static cz_status save_generator(run *r)
{
    char path[4200], steps[32], epochs[32], options[1024], seconds[32];
    snprintf(path, sizeof path, "%s/generator.safetensors", r->opt->out_dir);
    snprintf(steps, sizeof steps, "%lld", (long long)r->pos.step);
    snprintf(seconds, sizeof seconds, "%.0f", r->pos.seconds);
    describe_options(r, options, sizeof options);
    snprintf(epochs, sizeof epochs, "%lld", (long long)r->pos.epoch);
    const char *meta[] = {"trained_steps", steps, "trained_epochs", epochs, "training_options", options,
                          "training_data", r->opt->train_dir, "training_seconds", seconds,
                          "discriminator", r->opt->discriminator.arch, NULL};
    cz_status st = cz_model_from_graph(r->gen_model, r->G);
    if (st == CZ_OK)
        st = cz_model_save(r->gen_model, path, meta);
    if (st == CZ_OK && !r->opt->quiet)
        fprintf(stderr, "\nwrote %s\n", path);
    if (st == CZ_OK && r->opt->epoch_generators) {
        snprintf(path, sizeof path, "%s/generator-epoch-%s.safetensors", r->opt->out_dir, epochs);
        st = cz_model_save(r->gen_model, path, meta);
    }
    return st;
}

static bool finite_losses(const step_losses *l)
{
    return isfinite(l->d_real) && isfinite(l->d_fake) && isfinite(l->g_gan) && isfinite(l->g_l1);
}

static cz_status open_data(run *r)
{
    const cz_train_options *o = r->opt;
    cz_source_weight weights[CZ_MAX_SOURCE_WEIGHTS];
    for (int i = 0; i < o->n_source_weights; i++) {
        cz_status st = cz_source_weight_parse(o->source_weights[i], &weights[i]);
        if (st != CZ_OK)
            return st;
    }
    cz_dataset_options dopt = {.weights = weights, .n_weights = o->n_source_weights};
    cz_status st = cz_dataset_open(o->train_dir, &dopt, &r->train_set);
    if (st == CZ_OK && o->val_dir)
        st = cz_dataset_open(o->val_dir, NULL, &r->val_set);
    if (st == CZ_OK && !o->quiet)
        cz_dataset_report(r->train_set, stderr);
    return st;
}

static cz_status open_loader(run *r)
{
    cz_loader_options lo;
    cz_loader_options_init(&lo, r->opt->batch, r->size, true);
    lo.workers = r->opt->workers;
    lo.seed = r->opt->seed;
    lo.start_epoch = r->pos.epoch;
    lo.start_batch = r->pos.batch;
    cz_status st = cz_loader_open(r->train_set, &lo, &r->loader);
    if (st == CZ_OK) {
        r->batches_per_epoch = cz_loader_batches_per_epoch(r->loader);
        r->total_steps = r->opt->steps > 0 ? r->opt->steps : (int64_t)r->opt->epochs * r->batches_per_epoch;
    }
    return st;
}

static float learning_rate(const run *r)
{
    int64_t decay_steps = (int64_t)r->opt->decay_epochs * r->batches_per_epoch;
    int64_t left = r->total_steps - r->pos.step;
    if (decay_steps <= 0 || left >= decay_steps)
        return r->opt->lr;
    return r->opt->lr * (float)left / (float)decay_steps;
}

static void free_run(run *r)
{
    cz_loader_free(r->loader);
    cz_dataset_free(r->train_set);
    cz_dataset_free(r->val_set);
    cz_adam_free(r->g_adam);
    cz_adam_free(r->d_adam);
    cz_graph_free(r->G);
    cz_graph_free(r->D);
    cz_model_free(r->gen_model);
    cz_model_free(r->disc_model);
    free(r->transforms);
    if (r->log)
        fclose(r->log);
    for (int k = 0; k < 6; k++)
        free(r->hist[k]);
}

cz_status cz_train(const cz_train_options *o)
{
    run r;
    memset(&r, 0, sizeof r);
    r.opt = o;
    r.size = o->size > 0 ? o->size : cz_data_default_size(o->generator.arch);
    if (o->batch < 1 || r.size < 32 || r.size % 32 || (o->epochs < 1 && o->steps < 1) ||
        o->keep_checkpoints < 1 || !(o->lambda_l1 >= 0) || !(o->lr > 0))
        return cz_fail(CZ_ERR_INVALID, "bad options (batch %d, size %d (a multiple of 32), "
                       "epochs %d / steps %lld, keep %d, lambda %g, lr %g)", o->batch, r.size,
                       o->epochs, (long long)o->steps, o->keep_checkpoints, o->lambda_l1, o->lr);
    char samples[4200];
    snprintf(r.checkpoint_dir, sizeof r.checkpoint_dir, "%s/checkpoints", o->out_dir);
    snprintf(samples, sizeof samples, "%s/samples", o->out_dir);
    cz_status st = make_dir(o->out_dir);
    if (st == CZ_OK)
        st = make_dir(r.checkpoint_dir);
    if (st == CZ_OK)
        st = make_dir(samples);
    if (st == CZ_OK)
        st = build_networks(&r);
    if (st == CZ_OK)
        st = init_weights(&r);
    cz_rng_seed(&r.d_rng, o->seed + 2);
    r.pos = (cz_train_position){.generator = r.G, .discriminator = r.D,
                                .generator_adam = r.g_adam, .discriminator_adam = r.d_adam,
                                .rngs = {cz_graph_rng(r.G), cz_graph_rng(r.D), &r.d_rng}};
    if (st == CZ_OK && o->resume)
        st = resume(&r);
    if (st == CZ_OK)
        st = open_data(&r);
    if (st == CZ_OK)
        st = open_loader(&r);
    if (st == CZ_OK && r.resumed)
        st = check_schedule(&r);
    if (st == CZ_OK)
        st = open_log(&r);
    if (st != CZ_OK) {
        free_run(&r);
        return st;
    }

    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_requested = 0;

    double last_checkpoint = now_seconds(), started = now_seconds(), base_seconds = r.pos.seconds;
    double images_per_s = 0;
    int64_t steps_this_run = 0;
    while (st == CZ_OK && r.pos.step < r.total_steps &&
           !(o->stop_at_epoch > 0 && r.pos.epoch >= o->stop_at_epoch)) {
        double t0 = now_seconds();
        cz_batch b;
        st = cz_loader_next(r.loader, &b);
        if (st != CZ_OK)
            break;
        step_losses l;
        float lr = learning_rate(&r);
        st = train_step(&r, &b, lr, &l);
        if (st == CZ_OK && !finite_losses(&l)) {
            char **names;
            int n = list_checkpoints(r.checkpoint_dir, &names);
            char last[4400];
            if (n)
                snprintf(last, sizeof last, "the last good checkpoint is %s/%s", r.checkpoint_dir, names[n - 1]);
            else
                snprintf(last, sizeof last, "no checkpoint was written before it");
            st = cz_fail(CZ_ERR_NUMERIC,
                         "a loss became NaN or infinite at step %lld (D real %g, D fake %g, "
                         "G GAN %g, L1 %g); stopped, %s",
                         (long long)r.pos.step + 1, l.d_real, l.d_fake, l.g_gan, l.g_l1, last);
            free_names(names, n);
            break;
        }
        if (st != CZ_OK)
            break;
        r.pos.step++;
        steps_this_run++;
        r.pos.epoch = b.last ? b.epoch + 1 : b.epoch;
        r.pos.batch = b.last ? 0 : b.index + 1;
        double t1 = now_seconds();
        r.pos.seconds = base_seconds + (t1 - started);
        double rate = (double)o->batch / (t1 - t0);
        images_per_s = steps_this_run == 1 ? rate : 0.9 * images_per_s + 0.1 * rate;
        fprintf(r.log, "%lld,%lld,%lld,%.6f,%.6f,%.6f,%.6f,%.6g,%.2f,%.1f\n", (long long)r.pos.step,
                (long long)b.epoch, (long long)b.index, l.d_real, l.d_fake, l.g_gan, l.g_l1, lr,
                rate, r.pos.seconds);
        progress(&r, &l, images_per_s);

        double val_l1 = NAN;
        if (b.last || r.pos.step == r.total_steps) {
            fflush(r.log);
            st = validate(&r, b.epoch, &val_l1);
        }
        remember(&r, &l, val_l1);
        if (st == CZ_OK && (b.last || r.pos.step == r.total_steps))
            write_plot(&r);
        /* The generator of every finished epoch is ready to use (and to
         * measure) while the run goes on. */
        if (st == CZ_OK && b.last && r.pos.step < r.total_steps)
            st = save_generator(&r);

        bool stopping = stop_requested || (o->stop_after_steps > 0 && steps_this_run >= o->stop_after_steps) ||
                        (o->stop_at_epoch > 0 && r.pos.epoch >= o->stop_at_epoch);
        if (st == CZ_OK && (stopping || r.pos.step == r.total_steps ||
                            t1 - last_checkpoint >= 60.0 * o->checkpoint_minutes)) {
            fflush(r.log);
            st = save_checkpoint(&r);
            last_checkpoint = now_seconds();
        }
        if (stopping) {
            if (!o->quiet)
                fprintf(stderr, "\nstopped at step %lld; `--resume` continues\n", (long long)r.pos.step);
            break;
        }
    }
    if (st == CZ_OK && r.pos.step == r.total_steps)
        st = save_generator(&r);
    else if (st == CZ_OK && steps_this_run == 0 && !o->quiet)
        fprintf(stderr, "nothing to do: %lld epochs are done (--stop-at-epoch %d)\n",
                (long long)r.pos.epoch, o->stop_at_epoch);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free_run(&r);
    return st;
}
