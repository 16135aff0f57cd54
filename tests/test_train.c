/* colorize train: a CI-sized run whose L1 falls, bit-identical continuation
 * after kill -9 and after SIGINT, refusal to resume with other options, a
 * resumed run that takes a new schedule, a NaN that stops the run, and a
 * resnet50-unet-bins run whose cross-entropy falls, started from a
 * resnet50-unet.
 * Photos are made here: coloured shapes whose a*b* follow from their
 * lightness, so a small network can learn them. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bf16.h"
#include "check.h"
#include "colorize_path.h"
#include "image/image.h"
#include "image/lab.h"
#include "io/safetensors.h"
#include "train/train.h"

extern char **environ;

static char root[256], data[300], colorize[512];

#define PHOTOS 24
#define SIDE 80

/* A photo of a few rectangles: lightness random per rectangle, colour a
 * fixed function of lightness (dark green to light orange). */
static void make_photos(void)
{
    cz_rng rng;
    cz_rng_seed(&rng, 77);
    float *lab = malloc(sizeof(float) * 3 * SIDE * SIDE), *rgb = malloc(sizeof(float) * 3 * SIDE * SIDE);
    for (int p = 0; p < PHOTOS; p++) {
        for (int i = 0; i < SIDE * SIDE; i++)
            lab[3 * i] = 50, lab[3 * i + 1] = 0, lab[3 * i + 2] = 0;
        for (int k = 0; k < 6; k++) {
            int x0 = (int)cz_rng_below(&rng, SIDE - 10), y0 = (int)cz_rng_below(&rng, SIDE - 10);
            int w = 10 + (int)cz_rng_below(&rng, 40), h = 10 + (int)cz_rng_below(&rng, 40);
            float L = 15 + 70 * cz_rng_uniform(&rng);
            float a = (L - 50) * 1.2f, b = 40 - 0.9f * L;
            for (int y = y0; y < y0 + h && y < SIDE; y++)
                for (int x = x0; x < x0 + w && x < SIDE; x++)
                    lab[3 * (y * SIDE + x)] = L, lab[3 * (y * SIDE + x) + 1] = a, lab[3 * (y * SIDE + x) + 2] = b;
        }
        cz_lab_to_srgb(lab, rgb, SIDE * SIDE);
        cz_image *img = cz_image_new(SIDE, SIDE, 3, 8);
        uint8_t *px = img->data;
        for (int i = 0; i < 3 * SIDE * SIDE; i++)
            px[i] = (uint8_t)lrintf(rgb[i] * 255);
        char path[400];
        snprintf(path, sizeof path, "%s/%s__%02d.png", data, p % 3 ? "shapes" : "boxes", p);
        CHECK(cz_image_save(path, img, 95) == CZ_OK, "%s", cz_last_error());
        cz_image_free(img);
    }
    free(lab);
    free(rgb);
}

static void base_options(cz_train_options *o, const char *out)
{
    cz_train_defaults(o);
    o->train_dir = data;
    o->out_dir = out;
    o->generator.width = o->discriminator.width = 8;
    o->size = 64;
    o->batch = 4;
    o->steps = 12;
    o->lr = 2e-3f;
    o->seed = 5;
    o->quiet = true;
    o->checkpoint_minutes = 0; /* every step */
    o->real_lo = 0.7f, o->real_hi = 1.0f, o->fake_lo = 0.0f, o->fake_hi = 0.3f;
}

/* The same options, as command-line arguments for the binary. */
static pid_t spawn_train(const char *out, bool resume)
{
    char *argv[] = {colorize, "train", data, "-o", (char *)out, "--width", "8", "--size", "64",
                    "-b", "4", "--steps", "12", "--lr", "0.002", "--seed", "5", "-q",
                    "--checkpoint-minutes", "0", "--noisy-labels", resume ? "--resume" : NULL, NULL};
    pid_t pid;
    int err = posix_spawn(&pid, colorize, NULL, NULL, argv, environ);
    CHECK(err == 0, "cannot run %s: %s", colorize, strerror(err));
    return err == 0 ? pid : -1;
}

static int wait_exit(pid_t pid)
{
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The highest step among a run's checkpoints (0 if none). */
static int newest_checkpoint(const char *out)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/checkpoints", out);
    DIR *d = opendir(dir);
    int newest = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int step;
        if (sscanf(e->d_name, "step-%d.safetensors", &step) == 1 && step > newest)
            newest = step;
    }
    if (d)
        closedir(d);
    return newest;
}

/* Waits until a run has checkpointed step `step` or later, while it is
 * still running (generous: the machine may be busy). */
static bool wait_checkpoint(pid_t pid, const char *out, int step)
{
    for (int i = 0; i < 36000; i++) {
        if (newest_checkpoint(out) >= step)
            return true;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return false;
        usleep(5000);
    }
    return false;
}

/* Every tensor of two generator files, bit for bit. */
static void same_weights(const char *what, const char *a_path, const char *b_path)
{
    cz_safetensors *a = NULL, *b = NULL;
    CHECK(cz_safetensors_open(a_path, &a) == CZ_OK, "%s: %s", what, cz_last_error());
    CHECK(cz_safetensors_open(b_path, &b) == CZ_OK, "%s: %s", what, cz_last_error());
    if (a && b) {
        CHECK(cz_safetensors_count(a) == cz_safetensors_count(b), "%s: tensor counts differ", what);
        int differing = 0;
        for (int i = 0; i < cz_safetensors_count(a); i++) {
            const char *name = cz_safetensors_name(a, i);
            int64_t shape[8];
            int ndim;
            cz_safetensors_info(a, name, NULL, &ndim, shape);
            int64_t n = 1;
            for (int d = 0; d < ndim; d++)
                n *= shape[d];
            float *x = malloc(sizeof(float) * (size_t)(n ? n : 1)), *y = malloc(sizeof(float) * (size_t)(n ? n : 1));
            if (cz_safetensors_read_f32(a, name, shape, ndim, x) != CZ_OK ||
                cz_safetensors_read_f32(b, name, shape, ndim, y) != CZ_OK ||
                memcmp(x, y, sizeof(float) * (size_t)n) != 0) {
                if (differing++ < 3)
                    fprintf(stderr, "%s: tensor %s differs\n", what, name);
            }
            free(x);
            free(y);
        }
        CHECK(differing == 0, "%s: %d tensors differ", what, differing);
    }
    cz_safetensors_close(a);
    cz_safetensors_close(b);
}

static double mean_l1(const char *out, int from, int to)
{
    char path[600], line[512];
    snprintf(path, sizeof path, "%s/log.csv", out);
    FILE *f = fopen(path, "r");
    double sum = 0;
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        long long step, epoch, batch;
        double d_real, d_fake, g_gan, g_l1;
        if (sscanf(line, "%lld,%lld,%lld,%lf,%lf,%lf,%lf", &step, &epoch, &batch, &d_real, &d_fake,
                   &g_gan, &g_l1) == 7 && step >= from && step <= to) {
            sum += g_l1;
            n++;
        }
    }
    if (f)
        fclose(f);
    return n ? sum / n : NAN;
}

static void test_learns(void)
{
    /* A few dozen steps: the L1 term must fall clearly. */
    char out[400];
    snprintf(out, sizeof out, "%s/learn", root);
    cz_train_options o;
    base_options(&o, out);
    o.steps = 60;
    o.checkpoint_minutes = 10;
    char val[400];
    snprintf(val, sizeof val, "%s", data);
    o.val_dir = val;
    CHECK(cz_train(&o) == CZ_OK, "training: %s", cz_last_error());
    double first = mean_l1(out, 1, 5), last = mean_l1(out, 56, 60);
    printf("L1: steps 1-5 %.4f, steps 56-60 %.4f (%.1fx)\n", first, last, first / last);
    CHECK(last < first / 2, "L1 fell only from %.4f to %.4f", first, last);
    char path[600];
    const char *outputs[] = {"generator.safetensors", "losses.png", "samples/epoch-0000.png", "validation.csv"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", out, outputs[i]);
        CHECK(exists(path), "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/generator.safetensors", out);
    cz_model *m = NULL;
    CHECK(cz_model_load(path, &m) == CZ_OK, "the trained generator does not load: %s", cz_last_error());
    if (m) {
        CHECK(cz_model_metadata(m, "trained_steps") && strcmp(cz_model_metadata(m, "trained_steps"), "60") == 0,
              "the generator does not say how it was trained");
        cz_model_free(m);
    }
}

static void test_resume_after_kill(void)
{
    char straight[400], killed[400], interrupted[400];
    snprintf(straight, sizeof straight, "%s/straight", root);
    snprintf(killed, sizeof killed, "%s/killed", root);
    snprintf(interrupted, sizeof interrupted, "%s/interrupted", root);

    CHECK(wait_exit(spawn_train(straight, false)) == 0, "uninterrupted run failed");

    /* kill -9 after checkpoint 5; the work since is lost, not corrupted. */
    pid_t pid = spawn_train(killed, false);
    CHECK(wait_checkpoint(pid, killed, 5), "no checkpoint 5 appeared while the run was going");
    kill(pid, SIGKILL);
    CHECK(wait_exit(pid) == 128 + SIGKILL, "the run was not killed");
    CHECK(wait_exit(spawn_train(killed, true)) == 0, "resumed run failed");

    /* SIGINT: the run checkpoints and exits cleanly, then resumes. */
    pid = spawn_train(interrupted, false);
    CHECK(wait_checkpoint(pid, interrupted, 3), "no checkpoint 3 appeared while the run was going");
    kill(pid, SIGINT);
    CHECK(wait_exit(pid) == 0, "an interrupted run must exit 0 after checkpointing");
    CHECK(wait_exit(spawn_train(interrupted, true)) == 0, "resumed run failed");

    char a[600], b[600];
    snprintf(a, sizeof a, "%s/generator.safetensors", straight);
    snprintf(b, sizeof b, "%s/generator.safetensors", killed);
    same_weights("kill -9 and resume", a, b);
    snprintf(b, sizeof b, "%s/generator.safetensors", interrupted);
    same_weights("SIGINT and resume", a, b);
    snprintf(a, sizeof a, "%s/checkpoints/step-00000012.safetensors", straight);
    snprintf(b, sizeof b, "%s/checkpoints/step-00000012.safetensors", killed);
    same_weights("final checkpoints (both networks, optimisers)", a, b);

    /* Older checkpoints are pruned to the last 3. */
    snprintf(a, sizeof a, "%s/checkpoints/step-00000009.safetensors", straight);
    snprintf(b, sizeof b, "%s/checkpoints/step-00000010.safetensors", straight);
    CHECK(!exists(a) && exists(b), "checkpoints not pruned to the last 3");

    /* Resuming with other settings is refused, naming both. */
    cz_train_options o;
    base_options(&o, killed);
    o.batch = 8;
    o.resume = true;
    CHECK(cz_train(&o) == CZ_ERR_INVALID && strstr(cz_last_error(), "other options"),
          "resume with another batch size: %s", cz_last_error());
}

/* A run stopped in its second epoch has left the first epoch's generator;
 * --stop-at-epoch stops a run at an epoch's end. */
static void test_generator_each_epoch(void)
{
    char out[400], path[600];
    snprintf(out, sizeof out, "%s/epochs", root);
    cz_train_options o;
    base_options(&o, out);
    o.stop_after_steps = 8; /* 6 steps an epoch: 24 photos, batch 4 */
    CHECK(cz_train(&o) == CZ_OK, "stopped run: %s", cz_last_error());
    snprintf(path, sizeof path, "%s/generator.safetensors", out);
    cz_model *m = NULL;
    CHECK(cz_model_load(path, &m) == CZ_OK, "no generator after the first epoch: %s", cz_last_error());
    if (m) {
        const char *steps = cz_model_metadata(m, "trained_steps");
        const char *epochs = cz_model_metadata(m, "trained_epochs");
        CHECK(steps && strcmp(steps, "6") == 0, "generator after epoch 1 says trained_steps %s",
              steps ? steps : "(none)");
        CHECK(epochs && strcmp(epochs, "1") == 0, "generator after epoch 1 says trained_epochs %s",
              epochs ? epochs : "(none)");
        cz_model_free(m);
    }

    /* --stop-at-epoch: the run stops at the end of epoch 2 (step 12 of
     * 18), checkpointed, and a second call has nothing left to do. */
    o.stop_after_steps = 0;
    o.steps = 18;
    o.stop_at_epoch = 2;
    o.epoch_generators = true;
    char stop_dir[400];
    snprintf(stop_dir, sizeof stop_dir, "%s/stop-at-epoch", root);
    o.out_dir = stop_dir;
    CHECK(cz_train(&o) == CZ_OK, "run to epoch 2: %s", cz_last_error());
    snprintf(path, sizeof path, "%s/checkpoints/step-00000012.safetensors", stop_dir);
    CHECK(exists(path), "no checkpoint at the end of epoch 2");
    /* --epoch-generators: each finished epoch's generator is kept. */
    for (int epoch = 1; epoch <= 2; epoch++) {
        snprintf(path, sizeof path, "%s/generator-epoch-%d.safetensors", stop_dir, epoch);
        cz_model *m = NULL;
        CHECK(cz_model_load(path, &m) == CZ_OK, "epoch %d's generator: %s", epoch, cz_last_error());
        const char *epochs = m ? cz_model_metadata(m, "trained_epochs") : NULL;
        CHECK(epochs && atoi(epochs) == epoch, "%s says trained_epochs %s", path,
              epochs ? epochs : "(none)");
        cz_model_free(m);
    }
    snprintf(path, sizeof path, "%s/generator-epoch-3.safetensors", stop_dir);
    CHECK(!exists(path), "a generator of epoch 3, which did not run");
    snprintf(path, sizeof path, "%s/checkpoints/step-00000013.safetensors", stop_dir);
    CHECK(!exists(path), "the run went on past epoch 2");
    o.resume = true;
    CHECK(cz_train(&o) == CZ_OK, "resume at the limit: %s", cz_last_error());
    CHECK(!exists(path), "a resumed run went on past epoch 2");
}

/* A resumed run may take a new schedule while the steps it has taken keep
 * their learning rate: 2 constant epochs, then resumed as 3 epochs whose
 * last one decays, end bit for bit where a 3-epoch run does. */
static void test_resume_new_schedule(void)
{
    char straight[400], extended[400], a[600], b[600];
    snprintf(straight, sizeof straight, "%s/schedule-straight", root);
    snprintf(extended, sizeof extended, "%s/schedule-extended", root);
    cz_train_options o;
    base_options(&o, straight);
    o.steps = 0;
    o.epochs = 3; /* 6 steps an epoch */
    o.decay_epochs = 1;
    CHECK(cz_train(&o) == CZ_OK, "3-epoch run: %s", cz_last_error());

    o.out_dir = extended;
    o.epochs = 2;
    o.decay_epochs = 0;
    CHECK(cz_train(&o) == CZ_OK, "2-epoch run: %s", cz_last_error());
    o.epochs = 3;
    o.decay_epochs = 1;
    o.resume = true;
    CHECK(cz_train(&o) == CZ_OK, "resumed as 3 epochs: %s", cz_last_error());
    snprintf(a, sizeof a, "%s/generator.safetensors", straight);
    snprintf(b, sizeof b, "%s/generator.safetensors", extended);
    same_weights("2 epochs resumed as 3 against 3", a, b);

    /* Both runs have decayed in epoch 3: their schedules are fixed now. */
    o.epochs = 4;
    CHECK(cz_train(&o) == CZ_ERR_INVALID && strstr(cz_last_error(), "learning rate of steps already taken") &&
              strstr(cz_last_error(), "epochs=3 steps=0 decay_epochs=1"),
          "resuming a decayed run with a longer schedule: %s", cz_last_error());
    /* Nor can a run be made shorter than what it has done. */
    o.epochs = 2;
    o.decay_epochs = 0;
    CHECK(cz_train(&o) == CZ_ERR_INVALID && strstr(cz_last_error(), "more than the 12 now asked for"),
          "resuming 18 steps as 12: %s", cz_last_error());
}

static void test_nan_stops(void)
{
    char out[400], path[600];
    snprintf(out, sizeof out, "%s/nan", root);
    cz_train_options o;
    base_options(&o, out);
    o.lr = 1e30f; /* weights overflow within a step */
    cz_status st = cz_train(&o);
    CHECK(st == CZ_ERR_NUMERIC, "an exploding run returned %d: %s", st, cz_last_error());
    CHECK(strstr(cz_last_error(), "NaN") != NULL, "message: %s", cz_last_error());
    snprintf(path, sizeof path, "%s/generator.safetensors", out);
    CHECK(!exists(path), "a NaN run must not write a generator");
}

/* --diffaugment: a run stopped half way and resumed ends bit for bit where
 * a straight one does (the transforms come from the checkpointed generator
 * of the labels), the option changes the weights, and a run started with it
 * cannot be resumed without it. */
static void test_diffaugment(void)
{
    char straight[400], stopped[400], plain[400];
    snprintf(straight, sizeof straight, "%s/da-straight", root);
    snprintf(stopped, sizeof stopped, "%s/da-stopped", root);
    snprintf(plain, sizeof plain, "%s/da-plain", root);
    cz_train_options o;
    base_options(&o, straight);
    o.diffaugment = true;
    CHECK(cz_train(&o) == CZ_OK, "straight run: %s", cz_last_error());
    base_options(&o, stopped);
    o.diffaugment = true;
    o.stop_after_steps = 5;
    CHECK(cz_train(&o) == CZ_OK, "run stopped at step 5: %s", cz_last_error());
    o.stop_after_steps = 0;
    o.resume = true;
    CHECK(cz_train(&o) == CZ_OK, "resumed run: %s", cz_last_error());
    base_options(&o, plain);
    CHECK(cz_train(&o) == CZ_OK, "run without DiffAugment: %s", cz_last_error());

    char a[600], b[600];
    snprintf(a, sizeof a, "%s/checkpoints/step-00000012.safetensors", straight);
    snprintf(b, sizeof b, "%s/checkpoints/step-00000012.safetensors", stopped);
    same_weights("DiffAugment: stop and resume", a, b);
    cz_safetensors *x = NULL, *y = NULL;
    snprintf(b, sizeof b, "%s/checkpoints/step-00000012.safetensors", plain);
    CHECK(cz_safetensors_open(a, &x) == CZ_OK && cz_safetensors_open(b, &y) == CZ_OK, "%s", cz_last_error());
    if (x && y) {
        /* D's first convolution sees the transformed inputs from step 1. */
        const char *name = NULL;
        for (int i = 0; i < cz_safetensors_count(x) && !name; i++)
            if (strstr(cz_safetensors_name(x, i), "discriminator") && strstr(cz_safetensors_name(x, i), "weight"))
                name = cz_safetensors_name(x, i);
        int64_t shape[8];
        int ndim = 0;
        CHECK(name && cz_safetensors_info(x, name, NULL, &ndim, shape) == CZ_OK, "no discriminator weight in %s", a);
        if (name && ndim > 0) {
            int64_t n = 1;
            for (int d = 0; d < ndim; d++)
                n *= shape[d];
            float *u = malloc(sizeof(float) * (size_t)n), *v = malloc(sizeof(float) * (size_t)n);
            CHECK(cz_safetensors_read_f32(x, name, shape, ndim, u) == CZ_OK &&
                      cz_safetensors_read_f32(y, name, shape, ndim, v) == CZ_OK &&
                      memcmp(u, v, sizeof(float) * (size_t)n) != 0,
                  "%s: the same with and without DiffAugment", name);
            free(u);
            free(v);
        }
    }
    cz_safetensors_close(x);
    cz_safetensors_close(y);

    base_options(&o, stopped);
    o.resume = true;
    o.steps = 14;
    CHECK(cz_train(&o) == CZ_ERR_INVALID && strstr(cz_last_error(), "other options"),
          "a DiffAugment run resumed without it: %s", cz_last_error());
}

/* A small resnet50-unet-bins: its cross-entropy (the log's g_l1 column)
 * falls; --init-generator starts its decoder from a resnet50-unet's tensors
 * of the same name and shape, and refuses a file that shares none. */
static void test_bins(void)
{
    char out[400], encoder[400], init[400], path[600];
    snprintf(encoder, sizeof encoder, "%s/resnet50-tiny.safetensors", root);
    snprintf(init, sizeof init, "%s/unet-init.safetensors", root);
    cz_model_spec classifier = {.arch = "resnet50", .encoder_width = 2, .classes = 10};
    cz_model_spec unet_spec = {.arch = "resnet50-unet", .width = 8, .encoder_width = 2};
    cz_model *m = NULL, *from = NULL;
    CHECK(cz_model_new(&classifier, 3, &m) == CZ_OK && cz_model_save(m, encoder, NULL) == CZ_OK,
          "tiny encoder: %s", cz_last_error());
    cz_model_free(m);
    CHECK(cz_model_new(&unet_spec, 4, &from) == CZ_OK && cz_model_save(from, init, NULL) == CZ_OK,
          "resnet50-unet to start from: %s", cz_last_error());

    snprintf(out, sizeof out, "%s/bins", root);
    cz_train_options o;
    base_options(&o, out);
    snprintf(o.generator.arch, sizeof o.generator.arch, "resnet50-unet-bins");
    o.generator.encoder_width = 2;
    o.generator.freeze_encoder = true;
    o.encoder = encoder;
    o.steps = 60;
    o.checkpoint_minutes = 10;
    CHECK(cz_train(&o) == CZ_OK, "bins training: %s", cz_last_error());
    double first = mean_l1(out, 1, 5), last = mean_l1(out, 56, 60);
    printf("bins cross-entropy: steps 1-5 %.4f, steps 56-60 %.4f\n", first, last);
    CHECK(first > 4.5 && last < first - 1.5, "cross-entropy fell only from %.4f to %.4f", first, last);

    snprintf(out, sizeof out, "%s/bins-init", root);
    base_options(&o, out);
    snprintf(o.generator.arch, sizeof o.generator.arch, "resnet50-unet-bins");
    o.generator.encoder_width = 2;
    o.generator.freeze_encoder = true;
    o.encoder = encoder;
    o.init_generator = init;
    o.steps = 1;
    o.lr = 1e-12f; /* one step that moves nothing measurable */
    CHECK(cz_train(&o) == CZ_OK, "bins training from a resnet50-unet: %s", cz_last_error());
    snprintf(path, sizeof path, "%s/generator.safetensors", out);
    CHECK(cz_model_load(path, &m) == CZ_OK, "%s: %s", path, cz_last_error());
    int same = 0;
    for (int i = 0; m && from && i < cz_model_n_tensors(m); i++) {
        const cz_model_tensor *t = cz_model_tensor_at(m, i), *f = cz_model_find(from, t->name);
        bool conv = strstr(t->name, ".conv.weight") && strncmp(t->name, "decoder.", 8) == 0;
        if (!conv)
            continue;
        CHECK(f != NULL, "%s: not in resnet50-unet", t->name);
        float worst = 0;
        int64_t n = t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3];
        for (int64_t k = 0; f && k < n; k++)
            worst = fmaxf(worst, fabsf(t->data[k] - f->data[k]));
        CHECK(worst < 1e-9f, "%s is %g from the resnet50-unet it started from", t->name, worst);
        same++;
    }
    CHECK(same == 4, "%d decoder convolutions compared, expected 4", same);
    cz_model_free(m);
    cz_model_free(from);

    snprintf(out, sizeof out, "%s/bins-bad-init", root);
    base_options(&o, out);
    snprintf(o.generator.arch, sizeof o.generator.arch, "resnet50-unet-bins");
    o.generator.encoder_width = 2;
    o.encoder = encoder;
    o.init_generator = encoder; /* a classifier: "conv1.weight", no "encoder." names */
    CHECK(cz_train(&o) == CZ_ERR_INVALID && strstr(cz_last_error(), "shares no tensor") &&
              strstr(cz_last_error(), encoder),
          "--init-generator with a classifier: %s", cz_last_error());
}

/* Without bf16 kernels (an AVX2 CPU) --bf16 stops before the first step,
 * saying why, and leaves no generator behind. */
static void test_bf16_refused(void)
{
    if (bf16_runs())
        return; /* bf16 training is checked in test_layout and test_conv */
    char out[400], path[600];
    snprintf(out, sizeof out, "%s/bf16", root);
    cz_train_options o;
    base_options(&o, out);
    o.precision = CZ_BF16;
    CHECK(cz_train(&o) == CZ_ERR_INVALID && strstr(cz_last_error(), "AVX-512"),
          "--bf16 without bf16 kernels: %s", cz_last_error());
    snprintf(path, sizeof path, "%s/generator.safetensors", out);
    CHECK(!exists(path), "a refused run wrote a generator");
}

int main(void)
{
    snprintf(colorize, sizeof colorize, "%s/colorize", build_dir());
    snprintf(root, sizeof root, "/tmp/cz-train-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(data, sizeof data, "%s/photos", root);
    mkdir(data, 0777);
    make_photos();
    test_learns();
    test_resume_after_kill();
    test_generator_each_epoch();
    test_resume_new_schedule();
    test_nan_stops();
    test_diffaugment();
    test_bf16_refused();
    test_bins();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (check_failed == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_finish("test_train");
}
