/* Fused inference: in inference graphs a convolution, the batch norm after
 * it and its ReLU or LeakyReLU run as one convolution (the batch norm folded
 * into the weights and bias, the activation a post-op). Every architecture
 * with batch norms runs on random weights with random batch-norm statistics
 * and affine pairs (none of them 0 or 1), at sizes that are not powers of
 * two, fused and unfused (cz_graph_config.unfused: each layer its own op, as
 * before fusion), in fp32 and bf16:
 *   - fp32 fused agrees with fp32 unfused within FP32_TOL (norm-wise);
 *   - bf16 fused agrees with bf16 unfused within BF16_TOL, and is as close
 *     to fp32 unfused as bf16 unfused is (BF16_SLACK);
 *   - both still hold after parameters change and the graphs are told
 *     (cz_graph_params_changed), and the output has moved;
 *   - the bf16 fused graph has no batch norm left (fp32 keeps those after
 *     transposed convolutions, see layers.c), fewer activations, and the
 *     same named tensors in the same order as the unfused and the training
 *     graphs (model files and cz_model_to_graph are unaffected).
 * Then the fused builders' refusals. */
#include <string.h>

#include "bf16.h"
#include "check.h"
#include "gradcheck.h"
#include "models/model.h"
#include "ops/ops.h"

/* fp32: the fold changes only the rounding of the weights and the order of
 * a few operations per layer. */
#define FP32_TOL 1e-5
/* bf16: folded weights are rounded to bf16 after the batch norm's factor is
 * applied, unfused ones before it; a few bf16 roundings (2^-8) deep. */
#define BF16_TOL 2e-2
/* bf16 fused may be this much further from fp32 than bf16 unfused is:
 * error(fused) <= BF16_SLACK_FACTOR * error(unfused) + BF16_SLACK. */
#define BF16_SLACK_FACTOR 1.5
#define BF16_SLACK 1e-3
/* A parameter change must move the output by more than this (norm-wise). */
#define CHANGE_MIN 1e-3
/* The Keras layout's input is in [0, 255] less the mean: its stem conv's
 * random weights are this much smaller, as ImageNet's are, so that the
 * generators' tanh is not saturated. */
#define KERAS_STEM_SCALE 128.0f

typedef struct {
    cz_model_spec spec;
    int n, h, w;
} fuse_case;

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Whether the 1-D tensor "<p>.<leaf>" belongs to a batch norm:
 * "<p>.running_mean" exists. */
static bool is_bn(const cz_model *m, const char *name)
{
    char key[256];
    const char *dot = strrchr(name, '.');
    snprintf(key, sizeof key, "%.*s.running_mean", (int)(dot - name), name);
    return cz_model_find(m, key) != NULL;
}

/* Weights that keep activations at a moderate scale through the depth;
 * batch norms far from the identity; small conv and linear biases. */
static void randomise(cz_model *m, cz_rng *rng)
{
    bool keras = strcmp(cz_model_spec_of(m)->encoder_layout, "keras") == 0;
    for (int i = 0; i < cz_model_n_tensors(m); i++) {
        cz_model_tensor *t = cz_model_tensor_at(m, i);
        int64_t n = 1, fan_in = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= t->shape[d];
        for (int d = 1; d < t->ndim; d++)
            fan_in *= t->shape[d];
        if (t->ndim > 1) {
            float bound = sqrtf(3.0f / (float)fan_in);
            if (keras && (strcmp(t->name, "conv1.weight") == 0 ||
                          strcmp(t->name, "encoder.conv1.weight") == 0))
                bound /= KERAS_STEM_SCALE;
            fill_uniform(rng, t->data, n, -bound, bound);
        } else if (ends_with(t->name, ".running_mean")) {
            fill_uniform(rng, t->data, n, -0.3f, 0.3f);
        } else if (ends_with(t->name, ".running_var")) {
            fill_uniform(rng, t->data, n, 0.4f, 2.5f);
        } else if (ends_with(t->name, ".weight") && is_bn(m, t->name)) {
            fill_uniform(rng, t->data, n, 0.5f, 1.5f);
        } else {
            fill_uniform(rng, t->data, n, -0.2f, 0.2f);
        }
    }
}

/* The four inference graphs of a case, and a training graph for names.
 * Without bf16 kernels the bf16 pair is not built (its g stays NULL). */
enum { REF32, FUSED32, PLAIN16, FUSED16, N_NETS };

typedef struct {
    cz_graph *g;
    cz_tensor *x, *y;
} net;

static bool net_build(net *nt, const fuse_case *c, const cz_model *m, bool training, bool unfused,
                      cz_precision precision)
{
    int in_c = cz_model_kind_of(c->spec.arch) == CZ_MODEL_GENERATOR ? 1 : 3;
    cz_graph_config cfg = {.training = training, .poison_unread_values = true,
                           .precision = precision, .seed = 1,
                           .unfused = unfused};
    nt->g = cz_graph_create(&cfg);
    /* Training batch norms need two values per channel (unet's innermost
     * level is 1x1). */
    int n = training && c->n < 2 ? 2 : c->n;
    nt->x = cz_graph_input(nt->g, "x", n, in_c, c->h, c->w, false);
    nt->y = cz_model_build(&c->spec, nt->g, nt->x);
    if (training) /* names and shapes only */
        return cz_graph_status(nt->g) == CZ_OK;
    cz_status st = cz_graph_plan(nt->g);
    CHECK(st == CZ_OK, "%s: %s", c->spec.arch, cz_last_error());
    if (st == CZ_OK) {
        st = cz_model_to_graph(m, nt->g);
        CHECK(st == CZ_OK, "%s: %s", c->spec.arch, cz_last_error());
    }
    return st == CZ_OK && nt->y;
}

static int count_ops(const cz_graph *g, const char *op)
{
    int count = 0;
    for (int i = 0; i < cz_graph_n_nodes(g); i++)
        count += strcmp(cz_graph_node_op(g, i), op) == 0;
    return count;
}

/* The same named tensors, in the same order and shapes. */
static void same_names(const char *what, const cz_graph *a, const cz_graph *b)
{
    bool same = cz_graph_n_named(a) == cz_graph_n_named(b);
    for (int i = 0; same && i < cz_graph_n_named(a); i++) {
        const cz_tensor *s = cz_graph_named(a, i), *t = cz_graph_named(b, i);
        same = strcmp(s->name, t->name) == 0 && s->n == t->n && s->c == t->c && s->h == t->h &&
               s->w == t->w && s->ndim == t->ndim && s->kind == t->kind;
    }
    CHECK(same, "%s: named tensors differ", what);
}

/* Changes a few parameters of every graph the same way: the first conv
 * weight, the first batch norm's running variance, the bias after it, and
 * tells the graphs. */
static void change_params(net *nets)
{
    bool done_w = false, done_var = false, done_bias = false;
    cz_graph *first = nets[0].g;
    for (int i = 0; i < cz_graph_n_named(first); i++) {
        const cz_tensor *t = cz_graph_named(first, i);
        bool w = !done_w && t->ndim == 4;
        bool var = !done_var && ends_with(t->name, ".running_var");
        bool bias = !done_bias && done_var && ends_with(t->name, ".bias") && t->ndim == 1;
        if (!w && !var && !bias)
            continue;
        for (int k = 0; k < N_NETS && nets[k].g; k++) {
            cz_tensor *u = cz_graph_find(nets[k].g, t->name);
            for (int64_t j = 0; j < cz_numel(u); j++)
                u->data[j] = w ? u->data[j] * -1.5f : var ? u->data[j] * 0.3f : u->data[j] + 0.5f;
        }
        done_w |= w;
        done_var |= var;
        done_bias |= bias;
    }
    CHECK(done_w && done_var && done_bias, "no parameters to change");
    for (int k = 0; k < N_NETS && nets[k].g; k++)
        cz_graph_params_changed(nets[k].g);
}

/* Runs every graph built on the same input and checks the agreements;
 * returns the fused fp32 error and writes the bf16 one (NAN unbuilt). */
static double forward_and_compare(const char *what, net *nets, double *err16)
{
    for (int k = 0; k < N_NETS && nets[k].g; k++)
        CHECK(cz_graph_forward(nets[k].g) == CZ_OK, "%s: forward %d: %s", what, k, cz_last_error());
    const float *ref = nets[REF32].y->data;
    long n = (long)cz_numel(nets[REF32].y);
    double err32 = check_norm_rel_err(nets[FUSED32].y->data, ref, n);
    CHECK(err32 <= FP32_TOL, "%s: fp32 fused vs unfused, norm-wise relative error %.3g (allowed "
          "%.3g)", what, err32, FP32_TOL);
    *err16 = NAN;
    if (!nets[FUSED16].g)
        return err32;
    *err16 = check_norm_rel_err(nets[FUSED16].y->data, nets[PLAIN16].y->data, n);
    double fused16 = check_norm_rel_err(nets[FUSED16].y->data, ref, n);
    double plain16 = check_norm_rel_err(nets[PLAIN16].y->data, ref, n);
    CHECK(*err16 <= BF16_TOL && fused16 <= BF16_SLACK_FACTOR * plain16 + BF16_SLACK,
          "%s: bf16 fused vs unfused %.3g (allowed %.3g); from fp32, bf16 fused %.3g, unfused "
          "%.3g", what, *err16, BF16_TOL, fused16, plain16);
    return err32;
}

static void run_case(const fuse_case *c)
{
    const char *arch = c->spec.arch;
    char what[128];
    snprintf(what, sizeof what, "%.31s %dx%dx%d", arch, c->n, c->h, c->w);
    cz_model *m = NULL;
    CHECK(cz_model_new(&c->spec, 11, &m) == CZ_OK, "%s: %s", what, cz_last_error());
    if (!m)
        return;
    cz_rng rng;
    cz_rng_seed(&rng, 5);
    randomise(m, &rng);

    net nets[N_NETS] = {{0}}, training = {0};
    bool bf16 = bf16_runs();
    bool ok = net_build(&nets[REF32], c, m, false, true, CZ_FP32) &&
              net_build(&nets[FUSED32], c, m, false, false, CZ_FP32) &&
              (!bf16 || (net_build(&nets[PLAIN16], c, m, false, true, CZ_BF16) &&
                         net_build(&nets[FUSED16], c, m, false, false, CZ_BF16))) &&
              net_build(&training, c, m, true, false, CZ_FP32);
    if (ok) {
        /* fp32 keeps the transposed convolutions' batch norms (layers.c). */
        const cz_graph *fused32 = nets[FUSED32].g, *plain = nets[REF32].g;
        int bn32 = count_ops(fused32, "batch_norm2d");
        CHECK(count_ops(fused32, "conv_transpose2d_fused") == 0,
              "%s: fp32 fused graph has fused transposed convolutions", what);
        same_names(what, fused32, plain);
        same_names(what, fused32, training.g);
        /* Unfused graphs fuse a ReLU into the batch norm or the add before it. */
        int bn = count_ops(plain, "batch_norm2d") + count_ops(plain, "batch_norm2d_relu");
        int acts = count_ops(plain, "relu") + count_ops(plain, "leaky_relu") +
                   count_ops(plain, "batch_norm2d_relu") + count_ops(plain, "add_relu");
        int convs = 0, left = acts;
        if (bf16) {
            const cz_graph *fused = nets[FUSED16].g;
            same_names(what, fused, plain);
            same_names(what, fused, training.g);
            convs = count_ops(fused, "conv2d_fused") + count_ops(fused, "conv_transpose2d_fused");
            left = count_ops(fused, "relu") + count_ops(fused, "leaky_relu");
            CHECK(bn > 0 && count_ops(fused, "batch_norm2d") == 0 && convs >= bn && left < acts,
                  "%s: bf16 fused graph has %d of %d batch norms and %d of %d activations left, "
                  "%d fused convolutions", what, count_ops(fused, "batch_norm2d"), bn, left, acts,
                  convs);
            CHECK(bn32 == count_ops(fused, "conv_transpose2d_fused"),
                  "%s: fp32 fused graph has %d batch norms left, bf16 %d fused transposed "
                  "convolutions", what, bn32, count_ops(fused, "conv_transpose2d_fused"));
        }

        for (int k = 0; k < N_NETS && nets[k].g; k++) {
            cz_rng input = rng; /* the same values for every graph */
            fill_uniform(&input, nets[k].x->data, cz_numel(nets[k].x), -1.0f, 1.0f);
        }
        double err16, err32 = forward_and_compare(what, nets, &err16);
        long n = (long)cz_numel(nets[FUSED32].y);
        double mean_abs = 0;
        for (long i = 0; i < n; i++)
            mean_abs += fabs(nets[REF32].y->data[i]) / (double)n;
        /* Not an output that hides the network: zeros, a saturated tanh. */
        CHECK(mean_abs > 1e-2 && (cz_model_kind_of(arch) != CZ_MODEL_GENERATOR || mean_abs < 0.8),
              "%s: output mean |y| %.3g", what, mean_abs);

        float *before = malloc((size_t)n * sizeof *before);
        memcpy(before, nets[FUSED32].y->data, (size_t)n * sizeof *before);
        change_params(nets);
        char after[sizeof what + 32];
        snprintf(after, sizeof after, "%s after a parameter change", what);
        double err16b, err32b = forward_and_compare(after, nets, &err16b);
        double moved = check_norm_rel_err(before, nets[FUSED32].y->data, n);
        CHECK(moved > CHANGE_MIN, "%s: output moved only %.3g", after, moved);
        if (bf16)
            printf("%-30s bf16: %2d batch norms and %2d of %2d activations into %2d convolutions; "
                   "fused vs unfused: fp32 %.2g, bf16 %.2g; after a change %.2g, %.2g\n",
                   what, bn, acts - left, acts, convs, err32, err16, err32b, err16b);
        else
            printf("%-30s fused vs unfused: fp32 %.2g; after a change %.2g\n", what, err32,
                   err32b);
        free(before);
    }
    for (int k = 0; k < N_NETS; k++)
        cz_graph_free(nets[k].g);
    cz_graph_free(training.g);
    cz_model_free(m);
}

/* Each fused op against the ops it replaces, in one inference graph:
 * conv2d and conv_transpose2d (odd sizes, stride 2, a transposed
 * output_padding), with and without a bias and a batch norm, each
 * activation, fp32 and bf16. */
static void ops(void)
{
    cz_rng rng;
    cz_rng_seed(&rng, 9);
    const cz_act acts[3] = {CZ_ACT_NONE, CZ_ACT_RELU, CZ_ACT_LEAKY_RELU};
    int n_cases = 0;
    for (int variant = 0; variant < 2 * 2 * 2 * 3 * 2; variant++) {
        bool transposed = variant & 1, bias = variant & 2, bn = variant & 4;
        cz_act act = acts[variant / 8 % 3];
        cz_precision precision = variant / 24 ? CZ_BF16 : CZ_FP32;
        if (precision == CZ_BF16 && !bf16_runs())
            continue;
        int64_t ic = 5, oc = 7, k = 3;
        cz_graph_config cfg = {.training = false, .precision = precision};
        cz_graph *g = cz_graph_create(&cfg);
        cz_tensor *x = cz_graph_input(g, "x", 2, ic, 9, 11, false);
        int64_t wshape[4] = {transposed ? ic : oc, transposed ? oc : ic, k, k};
        cz_tensor *w = cz_graph_param(g, "w", 4, wshape, CZ_INIT_UNIFORM, 0.3f);
        cz_tensor *b = bias ? cz_graph_param(g, "b", 1, &oc, CZ_INIT_UNIFORM, 0.3f) : NULL;
        cz_conv_fusion f = {.eps = 1e-3f, .act = act, .slope = 0.1f};
        if (bn) {
            f.bn_weight = cz_graph_param(g, "bn.weight", 1, &oc, CZ_INIT_UNIFORM, 1.0f);
            f.bn_bias = cz_graph_param(g, "bn.bias", 1, &oc, CZ_INIT_UNIFORM, 0.5f);
            f.running_mean = cz_graph_buffer(g, "bn.running_mean", 1, &oc, CZ_INIT_ZEROS);
            f.running_var = cz_graph_buffer(g, "bn.running_var", 1, &oc, CZ_INIT_ONES);
        }
        cz_tensor *fused = transposed ? cz_conv_transpose2d_fused(g, x, w, b, 2, 1, 1, 1, &f)
                                      : cz_conv2d_fused(g, x, w, b, 2, 1, 1, &f);
        cz_tensor *y = transposed ? cz_conv_transpose2d(g, x, w, b, 2, 1, 1, 1)
                                  : cz_conv2d(g, x, w, b, 2, 1, 1);
        if (bn)
            y = cz_batch_norm2d(g, y, f.bn_weight, f.bn_bias, f.running_mean, f.running_var,
                                0.1f, f.eps);
        if (act == CZ_ACT_RELU)
            y = cz_relu(g, y);
        else if (act == CZ_ACT_LEAKY_RELU)
            y = cz_leaky_relu(g, y, f.slope);
        CHECK(cz_graph_plan(g) == CZ_OK, "fused op variant %d: %s", variant, cz_last_error());
        if (cz_graph_status(g) == CZ_OK) {
            fill_uniform(&rng, x->data, cz_numel(x), -1.0f, 1.0f);
            if (bn) {
                fill_uniform(&rng, f.running_mean->data, oc, -0.5f, 0.5f);
                fill_uniform(&rng, f.running_var->data, oc, 0.2f, 3.0f);
            }
            cz_graph_params_changed(g);
            CHECK(cz_graph_forward(g) == CZ_OK, "%s", cz_last_error());
            double err = check_norm_rel_err(fused->data, y->data, (long)cz_numel(y));
            double tol = precision == CZ_BF16 ? BF16_TOL : FP32_TOL;
            CHECK(fused->h == y->h && fused->w == y->w && err <= tol,
                  "fused op variant %d (transposed %d, bias %d, bn %d, act %d, %s): relative "
                  "error %.3g", variant, transposed, bias, bn, (int)act,
                  precision == CZ_BF16 ? "bf16" : "fp32", err);
            n_cases++;
        }
        cz_graph_free(g);
    }
    printf("%d fused op variants agree with the ops they replace\n", n_cases);
}

/* The fused builders refuse training graphs and half-given batch norms. */
static void refusals(void)
{
    int64_t wshape[4] = {4, 3, 3, 3}, c = 4;
    for (int training = 0; training < 2; training++) {
        cz_graph_config cfg = {.training = training};
        cz_graph *g = cz_graph_create(&cfg);
        cz_tensor *x = cz_graph_input(g, "x", 1, 3, 8, 8, false);
        cz_tensor *w = cz_graph_param(g, "w", 4, wshape, CZ_INIT_ZEROS, 0);
        cz_tensor *gamma = cz_graph_param(g, "bn.weight", 1, &c, CZ_INIT_ONES, 0);
        cz_conv_fusion f = {.bn_weight = gamma, .eps = 1e-5f, .act = CZ_ACT_RELU};
        CHECK(cz_conv2d_fused(g, x, w, NULL, 1, 1, 1, &f) == NULL, "fusion accepted");
        CHECK(cz_graph_plan(g) == CZ_ERR_INVALID &&
                  strstr(cz_last_error(), training ? "inference graphs only" : "running_var"),
              "message: %s", cz_last_error());
        cz_graph_free(g);
    }
}

int main(void)
{
    const fuse_case cases[] = {
        {{.arch = "unet", .width = 4}, 1, 100, 74},
        {{.arch = "unet", .width = 4, .no_dropout = true}, 2, 64, 48},
        {{.arch = "resnet50-paper", .width = 8, .encoder_width = 4,
          .encoder_layout = "torchvision"}, 1, 96, 160},
        {{.arch = "resnet50-unet", .width = 8, .encoder_width = 4, .encoder_layout = "keras"},
         2, 160, 96},
        {{.arch = "resnet50-unet-bins", .width = 8, .encoder_width = 4, .encoder_layout = "keras"},
         1, 96, 128},
        {{.arch = "patchgan", .width = 8}, 1, 70, 90},
        {{.arch = "sigmoid", .width = 8}, 2, 64, 96},
        {{.arch = "resnet50", .encoder_width = 4, .encoder_layout = "keras", .classes = 100},
         2, 72, 88},
        {{.arch = "resnet50", .encoder_width = 4, .encoder_layout = "torchvision", .classes = 100},
         1, 96, 64},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_case(&cases[i]);
    ops();
    refusals();
    return check_finish("test_fuse");
}
