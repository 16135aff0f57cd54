/* Whole networks: generator inference and one full GAN step, timed.
 *
 * Driven by bench/models.py, which times PyTorch on the same architectures,
 * shapes and weights in the same run. Protocol on stdin/stdout: one command
 * per line, one reply line each, "ok ..." or "error MESSAGE".
 *
 *   infer ARCH BATCH SIZE PRECISION  one forward of generator ARCH (inference
 *       graph) on a BATCH x 1 x SIZE x SIZE input -> "ok SECONDS CPU_SECONDS"
 *   gan ARCH BATCH SIZE PRECISION    one training step of ARCH + PatchGAN as
 *       src/train/train.c runs it: G forward, D on fake then real with
 *       backward (half of D's loss each), Adam on D, frozen-D forward and
 *       backward into G plus L1 (lambda 100), Adam on G; every weight
 *       trained, the ResNet encoder included
 *       -> "ok SECONDS CPU_SECONDS D_FAKE D_REAL G_GAN L1"
 *   save ARCH SIZE PATH              the weights every graph of ARCH starts
 *       from, as a model file, so PyTorch can load the same ones -> "ok"
 *   output ARCH SIZE PRECISION PATH  the batch-1 inference output as raw
 *       float32 to PATH, to check PyTorch runs the same network -> "ok"
 *   peak                             "ok VMHWM_KIB VMRSS_KIB" of this process
 *   drop                             frees every graph built so far -> "ok"
 *
 * A configuration's graphs are built and planned on its first command and
 * reused afterwards, so the first command of each warms up. SECONDS is wall
 * time, CPU_SECONDS the process's CPU time over all threads (what other
 * processes' load disturbs least). Inputs are fixed
 * patterns (the same formulas as models.py) written once at build; filling
 * a batch from a loader is not timed, everything train_step does after that is.
 *
 *   models [--encoder RESNET50.safetensors] [--weights DIR]
 * With --encoder, ResNet generators start from those ImageNet weights (as a
 * training run does); without, from pix2pix's random initialisation. With
 * --weights, every graph reads its weights from DIR/ARCH.safetensors
 * (written by `save`) straight into its memory, as the colorizer does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "models/model.h"
#include "ops/ops.h"
#include "optim/adam.h"

#define MAX_CONFIGS 32
#define GEN_SEED 1
#define DISC_SEED 2

/* pix2pix's training hyper-parameters, as cz_train_defaults. */
#define ADAM_LR 2e-4f
#define ADAM_BETA1 0.5f
#define ADAM_BETA2 0.999f
#define ADAM_EPS 1e-8f
#define LAMBDA_L1 100.0f

typedef struct {
    char key[96];
    bool gan;
    int size;
    cz_graph *G, *D;
    cz_tensor *L, *ab, *ab_real, *l1;
    cz_tensor *d_in, *d_labels, *d_loss;
    cz_adam *g_adam, *d_adam;
} config;

static config configs[MAX_CONFIGS];
static int n_configs;
static const char *encoder_path;

static double seconds_of(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void config_free(config *c)
{
    cz_graph_free(c->G);
    cz_graph_free(c->D);
    cz_adam_free(c->g_adam);
    cz_adam_free(c->d_adam);
    memset(c, 0, sizeof *c);
}

/* The pattern inputs; models.py computes the same values in float32. */
static void fill_pattern(cz_tensor *t, int64_t multiplier, float scale)
{
    for (int64_t i = 0; i < cz_numel(t); i++)
        t->data[i] = ((float)((i * multiplier) % 255) / 127.5f - 1.0f) * scale;
}
#define L_MULTIPLIER 7919
#define AB_MULTIPLIER 104729
#define AB_SCALE 0.5f

static cz_status parse_precision(const char *s, cz_precision *p)
{
    if (strcmp(s, "fp32") == 0)
        *p = CZ_FP32;
    else if (strcmp(s, "bf16") == 0)
        *p = CZ_BF16;
    else
        return cz_fail(CZ_ERR_INVALID, "precision %s: fp32 or bf16", s);
    return CZ_OK;
}

/* A model with the weights every graph of this architecture starts from. */
static cz_status new_model(const char *arch, int size, cz_model **out)
{
    cz_model_spec spec = {0};
    snprintf(spec.arch, sizeof spec.arch, "%s", arch);
    spec.size = size;
    uint64_t seed = cz_model_kind_of(arch) == CZ_MODEL_DISCRIMINATOR ? DISC_SEED : GEN_SEED;
    cz_status st = cz_model_new(&spec, seed, out);
    if (st == CZ_OK && encoder_path && cz_model_has_encoder(arch)) {
        cz_model *encoder = NULL;
        st = cz_model_load(encoder_path, &encoder);
        if (st == CZ_OK)
            st = cz_model_import_encoder(*out, encoder);
        cz_model_free(encoder);
    }
    return st;
}

/* Builds, plans and loads the network of arch into a fresh graph reading x
 * of the given shape. */
static cz_status build_net(const char *arch, int size, cz_graph *g, cz_tensor *x, cz_tensor **y)
{
    cz_model_spec spec = {0};
    snprintf(spec.arch, sizeof spec.arch, "%s", arch);
    spec.size = size;
    *y = cz_model_build(&spec, g, x);
    return cz_graph_status(g);
}

/* --weights DIR: the files `save` wrote there, read straight into the
 * graph as the colorizer reads a model (for the memory benchmark: the
 * weights are never in memory twice); else made here and copied in. */
static const char *weights_dir;

static cz_status load_weights(const char *arch, int size, cz_graph *g)
{
    cz_model *m = NULL;
    cz_status st;
    if (weights_dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.safetensors", weights_dir, arch);
        st = cz_model_load_header(path, &m);
        if (st == CZ_OK)
            st = cz_model_read_into_graph(m, path, g);
    } else {
        st = new_model(arch, size, &m);
        if (st == CZ_OK)
            st = cz_model_to_graph(m, g);
    }
    cz_model_free(m);
    return st;
}

static cz_status build_infer(config *c, const char *arch, int batch, int size, cz_precision p)
{
    cz_graph_config cfg = {.training = false, .precision = p, .seed = GEN_SEED};
    c->G = cz_graph_create(&cfg);
    if (!c->G)
        return cz_fail(CZ_ERR_NOMEM, "out of memory");
    c->L = cz_graph_input(c->G, "L", batch, 1, size, size, false);
    cz_status st = build_net(arch, size, c->G, c->L, &c->ab);
    if (st == CZ_OK)
        st = cz_graph_plan(c->G);
    if (st == CZ_OK)
        st = load_weights(arch, size, c->G);
    if (st == CZ_OK)
        fill_pattern(c->L, L_MULTIPLIER, 1.0f);
    return st;
}

/* The graphs of src/train/train.c's build_networks, with PatchGAN. */
static cz_status build_gan(config *c, const char *arch, int batch, int size, cz_precision p)
{
    cz_graph_config cfg = {.training = true, .precision = p, .seed = GEN_SEED};
    c->G = cz_graph_create(&cfg);
    cfg.seed = DISC_SEED;
    c->D = cz_graph_create(&cfg);
    if (!c->G || !c->D)
        return cz_fail(CZ_ERR_NOMEM, "out of memory");
    c->L = cz_graph_input(c->G, "L", batch, 1, size, size, false);
    cz_status st = build_net(arch, size, c->G, c->L, &c->ab);
    c->ab_real = cz_graph_input(c->G, "ab", batch, 2, size, size, false);
    c->l1 = cz_l1_loss(c->G, c->ab, c->ab_real);
    cz_graph_keep(c->G, c->ab); /* D's gradient is added into it */
    if (st == CZ_OK)
        st = cz_graph_plan(c->G);

    c->d_in = cz_graph_input(c->D, "input", batch, 3, size, size, true);
    cz_tensor *logits = NULL;
    if (st == CZ_OK)
        st = build_net("patchgan", size, c->D, c->d_in, &logits);
    if (st == CZ_OK) {
        c->d_labels = cz_graph_input(c->D, "labels", logits->n, logits->c, logits->h, logits->w, false);
        c->d_loss = cz_bce_with_logits(c->D, logits, c->d_labels);
        st = cz_graph_plan(c->D);
    }
    if (st == CZ_OK)
        st = load_weights(arch, size, c->G);
    if (st == CZ_OK)
        st = load_weights("patchgan", size, c->D);
    if (st != CZ_OK)
        return st;

    cz_adam_config adam = {.lr = ADAM_LR, .beta1 = ADAM_BETA1, .beta2 = ADAM_BETA2, .eps = ADAM_EPS};
    c->g_adam = cz_adam_create(&adam, cz_graph_params(c->G)->n_trainable);
    c->d_adam = cz_adam_create(&adam, cz_graph_params(c->D)->n_trainable);
    if (!c->g_adam || !c->d_adam)
        return cz_fail(CZ_ERR_NOMEM, "out of memory");
    fill_pattern(c->L, L_MULTIPLIER, 1.0f);
    fill_pattern(c->ab_real, AB_MULTIPLIER, AB_SCALE);
    return CZ_OK;
}

/* The configuration named by the command's words, built on first use. */
static cz_status get_config(bool gan, const char *arch, int batch, int size, const char *precision,
                            config **out)
{
    char key[96];
    snprintf(key, sizeof key, "%s %s %d %d %s", gan ? "gan" : "infer", arch, batch, size, precision);
    for (int i = 0; i < n_configs; i++)
        if (strcmp(configs[i].key, key) == 0) {
            *out = &configs[i];
            return CZ_OK;
        }
    cz_precision p = CZ_FP32;
    cz_status st = parse_precision(precision, &p);
    if (st != CZ_OK)
        return st;
    if (cz_model_kind_of(arch) != CZ_MODEL_GENERATOR)
        return cz_fail(CZ_ERR_INVALID, "%s is not a generator", arch);
    if (batch < 1 || size < 32)
        return cz_fail(CZ_ERR_INVALID, "batch %d, size %d", batch, size);
    if (n_configs == MAX_CONFIGS)
        return cz_fail(CZ_ERR_INVALID, "more than %d configurations: send drop", MAX_CONFIGS);
    config *c = &configs[n_configs];
    snprintf(c->key, sizeof c->key, "%s", key);
    c->gan = gan;
    c->size = size;
    st = gan ? build_gan(c, arch, batch, size, p) : build_infer(c, arch, batch, size, p);
    if (st != CZ_OK) {
        config_free(c);
        return st;
    }
    n_configs++;
    *out = c;
    return CZ_OK;
}

/* D sees (L, ab) as three channels, sample by sample (train.c's fill_d_input). */
static void fill_d_input(config *c, const float *ab)
{
    int64_t plane = (int64_t)c->size * c->size;
    float *in = c->d_in->data;
    for (int64_t n = 0; n < c->d_in->n; n++) {
        memcpy(in + (3 * n) * plane, c->L->data + n * plane, (size_t)plane * sizeof(float));
        memcpy(in + (3 * n + 1) * plane, ab + 2 * n * plane, (size_t)(2 * plane) * sizeof(float));
    }
}

static void fill_labels(config *c, float value)
{
    for (int64_t i = 0; i < cz_numel(c->d_labels); i++)
        c->d_labels->data[i] = value;
}

/* train.c's train_step with constant labels (real 1, fake 0). */
static cz_status gan_step(config *c, double losses[4])
{
    int64_t plane = (int64_t)c->size * c->size;
    cz_status st = cz_graph_forward(c->G);

    c->d_in->requires_grad = false;
    cz_graph_zero_grad(c->D);
    fill_d_input(c, c->ab->data);
    fill_labels(c, 0.0f);
    if (st == CZ_OK)
        st = cz_graph_forward(c->D);
    losses[0] = c->d_loss->data[0];
    cz_tensor_seed(c->d_loss, 0.5f);
    if (st == CZ_OK)
        st = cz_graph_backward(c->D);
    fill_d_input(c, c->ab_real->data);
    fill_labels(c, 1.0f);
    if (st == CZ_OK)
        st = cz_graph_forward(c->D);
    losses[1] = c->d_loss->data[0];
    cz_tensor_seed(c->d_loss, 0.5f);
    if (st == CZ_OK)
        st = cz_graph_backward(c->D);
    if (st == CZ_OK)
        st = cz_adam_step(c->d_adam, c->D);

    cz_graph_set_frozen(c->D, true);
    c->d_in->requires_grad = true;
    fill_d_input(c, c->ab->data);
    fill_labels(c, 1.0f);
    if (st == CZ_OK)
        st = cz_graph_forward(c->D);
    losses[2] = c->d_loss->data[0];
    cz_tensor_seed(c->d_loss, 1.0f);
    if (st == CZ_OK)
        st = cz_graph_backward(c->D);
    cz_graph_set_frozen(c->D, false);
    cz_graph_zero_grad(c->G);
    const float *d_grad = c->d_in->grad;
    float *g_grad = c->ab->grad;
    for (int64_t n = 0; n < c->ab->n; n++)
        for (int64_t i = 0; i < 2 * plane; i++)
            g_grad[2 * n * plane + i] += d_grad[(3 * n + 1) * plane + i];
    losses[3] = c->l1->data[0];
    cz_tensor_seed(c->l1, LAMBDA_L1);
    if (st == CZ_OK)
        st = cz_graph_backward(c->G);
    if (st == CZ_OK)
        st = cz_adam_step(c->g_adam, c->G);
    return st;
}

/* VmHWM and VmRSS of this process, in KiB (-1 if /proc cannot tell). */
static void memory_kib(long *hwm, long *rss)
{
    *hwm = *rss = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtol(line + 6, NULL, 10);
    }
    fclose(f);
}

static cz_status write_raw(const char *path, const cz_tensor *t)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return cz_fail(CZ_ERR_IO, "%s: cannot create", path);
    size_t n = (size_t)cz_numel(t);
    bool ok = fwrite(t->data, sizeof(float), n, f) == n;
    ok = fclose(f) == 0 && ok;
    return ok ? CZ_OK : cz_fail(CZ_ERR_IO, "%s: write failed", path);
}

/* One command; the reply is printed by the caller on failure. */
static cz_status command(char *line)
{
    char *words[8];
    int n = 0;
    for (char *w = strtok(line, " \t\r\n"); w && n < 8; w = strtok(NULL, " \t\r\n"))
        words[n++] = w;
    if (n == 0)
        return cz_fail(CZ_ERR_INVALID, "empty command");
    const char *cmd = words[0];
    config *c = NULL;
    cz_status st;

    if ((strcmp(cmd, "infer") == 0 || strcmp(cmd, "gan") == 0) && n == 5) {
        bool gan = cmd[0] == 'g';
        st = get_config(gan, words[1], atoi(words[2]), atoi(words[3]), words[4], &c);
        if (st != CZ_OK)
            return st;
        double losses[4] = {0};
        double t0 = seconds_of(CLOCK_MONOTONIC), c0 = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
        st = gan ? gan_step(c, losses) : cz_graph_forward(c->G);
        double seconds = seconds_of(CLOCK_MONOTONIC) - t0;
        double cpu = seconds_of(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (st != CZ_OK)
            return st;
        if (gan)
            printf("ok %.6f %.6f %.6f %.6f %.6f %.6f\n", seconds, cpu, losses[0], losses[1],
                   losses[2], losses[3]);
        else
            printf("ok %.6f %.6f\n", seconds, cpu);
        return CZ_OK;
    }
    if (strcmp(cmd, "save") == 0 && n == 4) {
        cz_model *m = NULL;
        st = new_model(words[1], atoi(words[2]), &m);
        if (st == CZ_OK)
            st = cz_model_save(m, words[3], NULL);
        cz_model_free(m);
        if (st == CZ_OK)
            printf("ok\n");
        return st;
    }
    if (strcmp(cmd, "output") == 0 && n == 5) {
        st = get_config(false, words[1], 1, atoi(words[2]), words[3], &c);
        if (st == CZ_OK)
            st = cz_graph_forward(c->G);
        if (st == CZ_OK)
            st = write_raw(words[4], c->ab);
        if (st == CZ_OK)
            printf("ok\n");
        return st;
    }
    if (strcmp(cmd, "peak") == 0 && n == 1) {
        long hwm, rss;
        memory_kib(&hwm, &rss);
        printf("ok %ld %ld\n", hwm, rss);
        return CZ_OK;
    }
    if (strcmp(cmd, "drop") == 0 && n == 1) {
        for (int i = 0; i < n_configs; i++)
            config_free(&configs[i]);
        n_configs = 0;
        printf("ok\n");
        return CZ_OK;
    }
    return cz_fail(CZ_ERR_INVALID, "unknown command or wrong arguments: %s", cmd);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--encoder") == 0 && i + 1 < argc) {
            encoder_path = argv[++i];
        } else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) {
            weights_dir = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--encoder RESNET50.safetensors] [--weights DIR] < commands\n",
                    argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        if (command(line) != CZ_OK)
            printf("error %s\n", cz_last_error());
    }
    for (int i = 0; i < n_configs; i++)
        config_free(&configs[i]);
    return 0;
}
