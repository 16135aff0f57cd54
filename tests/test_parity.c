/* Parity with PyTorch: the small networks of tools/make_parity_fixtures.py,
 * rebuilt on our engine with PyTorch's weights, must reproduce its outputs,
 * losses, gradients and the weights after three Adam steps. */
#include <string.h>

#include "check.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "optim/adam.h"

#define FIXTURES "tests/fixtures/parity/"
#define REL_TOL 1e-4

static double worst; /* the largest norm-wise error seen, for the log */

/* Layers named as PyTorch's state_dict names them. */
static cz_tensor *param(cz_graph *g, const char *prefix, const char *leaf, int ndim,
                        int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", prefix, leaf);
    int64_t shape[4] = {d0, d1, d2, d3};
    return cz_graph_param(g, name, ndim, shape, CZ_INIT_ZEROS, 0);
}

static cz_tensor *conv(cz_graph *g, const char *name, cz_tensor *x, int64_t oc, int k,
                       int stride, int padding, bool bias)
{
    cz_tensor *w = param(g, name, "weight", 4, oc, x ? x->c : 1, k, k);
    cz_tensor *b = bias ? param(g, name, "bias", 1, oc, 1, 1, 1) : NULL;
    return cz_conv2d(g, x, w, b, stride, padding, 1);
}

static cz_tensor *bn(cz_graph *g, const char *name, cz_tensor *x, float eps)
{
    int64_t c = x ? x->c : 1;
    char mean[128], var[128];
    snprintf(mean, sizeof mean, "%s.running_mean", name);
    snprintf(var, sizeof var, "%s.running_var", name);
    int64_t shape[1] = {c};
    return cz_batch_norm2d(g, x, param(g, name, "weight", 1, c, 1, 1, 1),
                           param(g, name, "bias", 1, c, 1, 1, 1),
                           cz_graph_buffer(g, mean, 1, shape, CZ_INIT_ZEROS),
                           cz_graph_buffer(g, var, 1, shape, CZ_INIT_ONES), 0.1f, eps);
}

static cz_tensor *stem(cz_graph *g, cz_tensor *x)
{
    x = conv(g, "conv1", x, 8, 7, 2, 3, false);
    x = cz_relu(g, bn(g, "bn1", x, 1e-3f));
    return cz_max_pool2d(g, x, 3, 2, 1);
}

static cz_tensor *bottleneck(cz_graph *g, cz_tensor *x)
{
    cz_tensor *y = cz_relu(g, bn(g, "bn1", conv(g, "conv1", x, 4, 1, 2, 0, false), 1e-5f));
    y = cz_relu(g, bn(g, "bn2", conv(g, "conv2", y, 4, 3, 1, 1, false), 1e-5f));
    y = bn(g, "bn3", conv(g, "conv3", y, 16, 1, 1, 0, false), 1e-5f);
    cz_tensor *shortcut = bn(g, "downsample_bn", conv(g, "downsample_conv", x, 16, 1, 2, 0, false), 1e-5f);
    return cz_relu(g, cz_add(g, y, shortcut));
}

static cz_tensor *unet_level(cz_graph *g, cz_tensor *x)
{
    cz_tensor *d = cz_leaky_relu(g, bn(g, "down_bn", conv(g, "down", x, 8, 4, 2, 1, false), 1e-5f), 0.2f);
    cz_tensor *w = param(g, "up", "weight", 4, 8, 3, 4, 4);
    cz_tensor *u = bn(g, "up_bn", cz_conv_transpose2d(g, cz_relu(g, d), w, NULL, 2, 1, 0, 1), 1e-5f);
    cz_tensor *skip[2] = {x, u};
    return cz_tanh(g, conv(g, "out", cz_cat(g, skip, 2), 2, 3, 1, 1, true));
}

static cz_tensor *patchgan(cz_graph *g, cz_tensor *x)
{
    x = cz_leaky_relu(g, conv(g, "c1", x, 8, 4, 2, 1, true), 0.2f);
    x = cz_leaky_relu(g, bn(g, "bn2", conv(g, "c2", x, 16, 4, 2, 1, false), 1e-5f), 0.2f);
    x = cz_leaky_relu(g, bn(g, "bn3", conv(g, "c3", x, 32, 4, 1, 1, false), 1e-5f), 0.2f);
    return conv(g, "c4", x, 1, 4, 1, 1, true);
}

static cz_tensor *head(cz_graph *g, cz_tensor *x)
{
    x = cz_upsample(g, x, 2, CZ_UPSAMPLE_BILINEAR);
    x = cz_sigmoid(g, conv(g, "conv", x, 6, 3, 1, 1, true));
    x = cz_global_avg_pool(g, cz_upsample(g, x, 2, CZ_UPSAMPLE_NEAREST));
    return cz_linear(g, x, param(g, "fc", "weight", 2, 5, 6, 1, 1), param(g, "fc", "bias", 1, 5, 1, 1, 1));
}

typedef struct {
    const char *name;
    cz_tensor *(*build)(cz_graph *g, cz_tensor *x);
} net;

/* Reads fixture tensor `name` shaped like t into dst; fails the test if absent. */
static bool load(const cz_safetensors *st, const char *name, const cz_tensor *t, float *dst)
{
    int64_t shape[4] = {t->n, t->c, t->h, t->w};
    cz_status s = cz_safetensors_read_f32(st, name, shape, t->ndim, dst);
    CHECK(s == CZ_OK, "%s", cz_last_error());
    return s == CZ_OK;
}

/* Compares t's values (or gradient) with fixture tensor `name`: the
 * norm-wise relative error ||ours - torch|| / ||torch|| must be within
 * REL_TOL, and no element may stray further than 10 * REL_TOL relative to
 * itself or to 1e-3 of the tensor's largest value (a near-zero element is a
 * difference of large terms, and its rounding is the terms'). */
static void compare(const cz_safetensors *st, const char *net_name, const char *name,
                    const cz_tensor *t, const float *values)
{
    int64_t n = cz_numel(t);
    float *expect = malloc((size_t)n * sizeof *expect);
    if (load(st, name, t, expect)) {
        float scale = 0;
        for (int64_t i = 0; i < n; i++)
            scale = fmaxf(scale, fabsf(expect[i]));
        char what[256];
        snprintf(what, sizeof what, "%s: %s", net_name, name);
        CHECK_NORM_CLOSE(what, values, expect, n, REL_TOL);
        CHECK_CLOSE(what, values, expect, n, 10 * REL_TOL, 1e-3 * scale + 1e-30);
        worst = fmax(worst, check_norm_rel_err(values, expect, n));
    }
    free(expect);
}

static double meta(const cz_safetensors *st, const char *key)
{
    const char *v = cz_safetensors_metadata(st, key);
    CHECK(v != NULL, "fixture lacks metadata %s", key);
    return v ? atof(v) : 0;
}

static void run(const net *net)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s.safetensors", net->name);
    cz_safetensors *st = NULL;
    CHECK(cz_safetensors_open(path, &st) == CZ_OK, "%s", cz_last_error());
    if (!st)
        return;
    int64_t in_shape[8], out_shape[8];
    int in_ndim, out_ndim;
    cz_safetensors_info(st, "input", NULL, &in_ndim, in_shape);
    cz_safetensors_info(st, "output", NULL, &out_ndim, out_shape);
    bool input_grad = cz_safetensors_info(st, "grad.input", NULL, NULL, NULL) == CZ_OK;
    const char *loss_kind = cz_safetensors_metadata(st, "loss");

    cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 1};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "input", in_shape[0], in_shape[1], in_shape[2], in_shape[3], input_grad);
    cz_tensor *y = net->build(g, x);
    cz_tensor *target = y ? cz_graph_input(g, "target", y->n, y->c, y->h, y->w, false) : NULL;
    if (target)
        target->ndim = out_ndim;
    cz_tensor *loss = !loss_kind ? NULL
                      : strcmp(loss_kind, "mse") == 0 ? cz_mse_loss(g, y, target)
                      : strcmp(loss_kind, "l1") == 0  ? cz_l1_loss(g, y, target)
                                                      : cz_bce_with_logits(g, y, target);
    CHECK(cz_graph_plan(g) == CZ_OK, "%s: %s", net->name, cz_last_error());
    if (cz_graph_status(g) != CZ_OK || !loss) {
        cz_graph_free(g);
        cz_safetensors_close(st);
        return;
    }
    y->ndim = out_ndim;
    x->ndim = in_ndim;
    loss->ndim = 1;
    load(st, "input", x, x->data);
    load(st, "target", target, target->data);
    char name[160];
    for (int i = 0; i < cz_graph_n_named(g); i++) {
        cz_tensor *t = cz_graph_named(g, i);
        snprintf(name, sizeof name, "param.%s", t->name);
        load(st, name, t, t->data);
    }
    cz_graph_params_changed(g);

    cz_adam_config adam_cfg = {.lr = (float)meta(st, "lr"), .beta1 = (float)meta(st, "beta1"),
                               .beta2 = (float)meta(st, "beta2"), .eps = (float)meta(st, "eps"),
                               .weight_decay = (float)meta(st, "weight_decay")};
    cz_adam *adam = cz_adam_create(&adam_cfg, cz_graph_params(g)->n_trainable);
    int steps = (int)meta(st, "steps");
    for (int step = 0; step < steps; step++) {
        cz_graph_zero_grad(g);
        CHECK(cz_graph_forward(g) == CZ_OK, "%s: forward: %s", net->name, cz_last_error());
        cz_tensor_seed(loss, 1.0f);
        CHECK(cz_graph_backward(g) == CZ_OK, "%s: backward: %s", net->name, cz_last_error());
        if (step == 0) {
            compare(st, net->name, "output", y, y->data);
            compare(st, net->name, "loss", loss, loss->data);
            if (input_grad)
                compare(st, net->name, "grad.input", x, x->grad);
            for (int i = 0; i < cz_graph_n_named(g); i++) {
                cz_tensor *t = cz_graph_named(g, i);
                if (t->kind != CZ_TENSOR_PARAM)
                    continue;
                snprintf(name, sizeof name, "grad.%s", t->name);
                compare(st, net->name, name, t, t->grad);
            }
        }
        cz_adam_step(adam, g);
    }
    for (int i = 0; i < cz_graph_n_named(g); i++) {
        cz_tensor *t = cz_graph_named(g, i);
        snprintf(name, sizeof name, "after.%s", t->name);
        compare(st, net->name, name, t, t->data);
    }
    cz_adam_free(adam);
    cz_graph_free(g);
    cz_safetensors_close(st);
}

int main(void)
{
    const net nets[] = {{"stem", stem}, {"bottleneck", bottleneck}, {"unet_level", unet_level},
                        {"patchgan", patchgan}, {"head", head}};
    for (size_t i = 0; i < sizeof nets / sizeof *nets; i++)
        run(&nets[i]);
    printf("largest norm-wise relative error: %.3g\n", worst);
    return check_finish("test_parity");
}
