/* Channels-last activations (cz_layout): an activation is stored NHWC (in
 * bf16 in bf16 inference graphs that fuse) where the op writing it and
 * every op reading it take that layout. One small network with every
 * op that takes it (fused convolutions with a residual, max pooling,
 * nearest upsampling, concatenation, relu, add, leaky_relu, a plain
 * convolution) runs fused and unfused, in fp32 and bf16:
 *   - the layouts are the ones the rule gives: channels-last inside, plain
 *     for the input and the output;
 *   - a plain-only reader (tanh) of one tensor makes it plain, and
 *     that spreads through the ops that need one layout for all their
 *     tensors (max pooling, upsampling, concatenation, relu);
 *   - a convolution adding a residual it reads for the last time writes
 *     over it (cz_graph_may_overwrite); one whose residual is read later,
 *     is its own input, or is stored in another layout, does not;
 *   - the outputs agree with the unfused graph's (all plain): fp32 within
 *     rounding, bf16 within a few bf16 roundings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"

#define FP32_TOL 1e-5 /* norm-wise: the fold and the order of sums */
#define BF16_TOL 3e-2 /* norm-wise, bf16 against fp32: a few roundings deep */
#define WIDTH 16

typedef struct {
    cz_graph *g;
    cz_tensor *x, *y;
    cz_tensor *a, *p, *b0, *b1, *b, *u, *c, *r; /* the activations, in order */
} net;

static cz_tensor *param(cz_graph *g, const char *name, int64_t n, int64_t c, int64_t k)
{
    int64_t shape[4] = {n, c, k, k};
    return cz_graph_param(g, name, k ? 4 : 1, shape, CZ_INIT_NORMAL, k ? 0.2f : 0.3f);
}

/* act(bn(conv_kxk(x)) + residual), fused or as separate ops (padding k/2). */
static cz_tensor *conv_bn_k(cz_graph *g, const char *name, cz_tensor *x, int k, int stride,
                            cz_tensor *residual, cz_act act, bool fused)
{
    char key[64];
    snprintf(key, sizeof key, "%s.w", name);
    cz_tensor *w = param(g, key, WIDTH, x ? x->c : 1, k);
    cz_tensor *bn[4];
    const char *leaf[4] = {"gamma", "beta", "mean", "var"};
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.%s", name, leaf[i]);
        bn[i] = param(g, key, WIDTH, 0, 0);
    }
    if (fused) {
        cz_conv_fusion f = {bn[0], bn[1], bn[2], bn[3], 1e-3f, residual, act, 0.2f};
        return cz_conv2d_fused(g, x, w, NULL, stride, k / 2, 1, &f);
    }
    cz_tensor *conv = cz_conv2d(g, x, w, NULL, stride, k / 2, 1);
    if (act == CZ_ACT_RELU && !residual) /* the batch norm with its ReLU in it */
        return cz_batch_norm2d_relu(g, conv, bn[0], bn[1], bn[2], bn[3], 0.1f, 1e-3f);
    cz_tensor *y = cz_batch_norm2d(g, conv, bn[0], bn[1], bn[2], bn[3], 0.1f, 1e-3f);
    if (residual)
        y = cz_add(g, y, residual);
    return act == CZ_ACT_RELU         ? cz_relu(g, y)
           : act == CZ_ACT_LEAKY_RELU ? cz_leaky_relu(g, y, 0.2f)
                                      : y;
}

static cz_tensor *conv_bn(cz_graph *g, const char *name, cz_tensor *x, cz_tensor *residual,
                          cz_act act, bool fused)
{
    return conv_bn_k(g, name, x, 3, 1, residual, act, fused);
}

/* After planning: batch norms far from the identity with positive
 * variances, and a random input. */
static void prepare(cz_graph *g, cz_tensor *x)
{
    for (int i = 0; i < cz_graph_n_named(g); i++) {
        cz_tensor *t = cz_graph_named(g, i);
        const char *leaf = strrchr(t->name, '.') + 1;
        for (int64_t j = 0; j < cz_numel(t); j++) {
            if (strcmp(leaf, "var") == 0)
                t->data[j] = 0.5f + t->data[j] * t->data[j] * 10.0f;
            else if (strcmp(leaf, "gamma") == 0)
                t->data[j] += 1.0f;
        }
    }
    cz_rng rng;
    cz_rng_seed(&rng, 3);
    fill_uniform(&rng, x->data, cz_numel(x), -1.0f, 1.0f);
}

static bool net_build(net *nt, cz_precision precision, bool fused, bool plain_reader)
{
    cz_graph_config cfg = {.precision = precision, .seed = 5, .unfused = !fused};
    cz_graph *g = nt->g = cz_graph_create(&cfg);
    nt->x = cz_graph_input(g, "x", 2, 3, 14, 10, false);
    nt->a = conv_bn(g, "a", nt->x, NULL, CZ_ACT_RELU, fused);
    nt->p = cz_max_pool2d(g, nt->a, 3, 2, 1);
    nt->b0 = conv_bn(g, "b0", nt->p, nt->p, CZ_ACT_RELU, fused);
    nt->b1 = conv_bn(g, "b1", nt->b0, nt->b0, CZ_ACT_RELU, fused);
    /* No activation: negative values reach leaky_relu below. */
    nt->b = conv_bn(g, "b", nt->b1, nt->p, CZ_ACT_NONE, fused);
    nt->u = cz_upsample(g, nt->b, 2, CZ_UPSAMPLE_NEAREST);
    cz_tensor *both[2] = {nt->u, nt->a};
    nt->c = cz_cat(g, both, 2);
    /* relu, add and leaky_relu standalone (bf16 loops of their own). */
    nt->r = cz_leaky_relu(g, cz_add(g, cz_relu(g, nt->c), nt->c), 0.2f);
    nt->y = cz_conv2d(g, nt->r, param(g, "out.w", 2, 2 * WIDTH, 3), param(g, "out.b", 2, 0, 0),
                      1, 1, 1);
    if (plain_reader)
        cz_tanh(g, nt->p);
    cz_status st = cz_graph_plan(g);
    CHECK(st == CZ_OK, "plan: %s", cz_last_error());
    if (st != CZ_OK)
        return false;
    prepare(g, nt->x);
    return true;
}

static const char *layout_name(cz_layout l)
{
    return l == CZ_LAYOUT_NHWC_BF16 ? "nhwc bf16" : l == CZ_LAYOUT_NHWC_F32 ? "nhwc fp32" : "nchw";
}

/* inside: what a, p, b, u, c and r should be; b0 and b1, which only
 * convolutions write and read, are channels-last wherever anything is
 * (fast). */
static void check_layouts(const char *what, const net *nt, cz_layout inside, cz_layout fast)
{
    const cz_tensor *t[10] = {nt->x, nt->a, nt->p, nt->b0, nt->b1, nt->b, nt->u, nt->c, nt->r, nt->y};
    const char *names[10] = {"x", "a", "p", "b0", "b1", "b", "u", "c", "r", "y"};
    for (int i = 0; i < 10; i++) {
        cz_layout want = i == 0 || i == 9 ? CZ_LAYOUT_NCHW_F32 : i == 3 || i == 4 ? fast : inside;
        CHECK(t[i]->layout == want, "%s: %s is %s, expected %s", what, names[i],
              layout_name(t[i]->layout), layout_name(want));
    }
}

static void run(cz_precision precision, bool plain_reader)
{
    char what[64];
    snprintf(what, sizeof what, "%s%s", precision == CZ_BF16 ? "bf16" : "fp32",
             plain_reader ? ", plain reader" : "");
    net fused, ref;
    bool ok = net_build(&fused, precision, true, plain_reader);
    ok &= net_build(&ref, CZ_FP32, false, plain_reader);
    if (ok) {
        cz_layout fast = precision == CZ_BF16 ? CZ_LAYOUT_NHWC_BF16 : CZ_LAYOUT_NHWC_F32;
        check_layouts(what, &fused, plain_reader ? CZ_LAYOUT_NCHW_F32 : fast, fast);
        check_layouts(what, &ref, CZ_LAYOUT_NCHW_F32, CZ_LAYOUT_NCHW_F32);
        CHECK(fused.b0->data != fused.p->data, "%s: b0 overwrote p, which is read later", what);
        CHECK(fused.b1->data != fused.b0->data, "%s: b1 overwrote its own input", what);
        CHECK((fused.b->data == fused.p->data) == !plain_reader,
              "%s: b %s p, which %s read later", what,
              fused.b->data == fused.p->data ? "overwrote" : "did not overwrite",
              plain_reader ? "is" : "is not");
        CHECK(cz_graph_forward(fused.g) == CZ_OK, "%s: forward: %s", what, cz_last_error());
        CHECK(cz_graph_forward(ref.g) == CZ_OK, "%s: forward: %s", what, cz_last_error());
        long n = (long)cz_numel(ref.y);
        double err = check_norm_rel_err(fused.y->data, ref.y->data, n);
        double tol = precision == CZ_BF16 ? BF16_TOL : FP32_TOL;
        CHECK(err <= tol, "%s: fused vs unfused fp32, norm-wise relative error %.3g (allowed %.3g)",
              what, err, tol);
        printf("%s: fused vs unfused fp32 %.2g\n", what, err);
    }
    cz_graph_free(fused.g);
    cz_graph_free(ref.g);
}

/* A residual stored plain (a tanh's output) added by a convolution
 * whose output is channels-last, its last reader: no overwrite, right
 * output. */
static void mixed_residual(cz_precision precision)
{
    const char *what = precision == CZ_BF16 ? "bf16 mixed residual" : "fp32 mixed residual";
    cz_graph *graphs[2];
    cz_tensor *y[2], *q = NULL, *b = NULL;
    for (int fused = 0; fused < 2; fused++) {
        cz_graph_config cfg = {.precision = fused ? precision : CZ_FP32, .seed = 9,
                               .unfused = !fused};
        cz_graph *g = graphs[fused] = cz_graph_create(&cfg);
        cz_tensor *x = cz_graph_input(g, "x", 1, 3, 9, 12, false);
        cz_tensor *a = conv_bn(g, "a", x, NULL, CZ_ACT_RELU, fused);
        cz_tensor *lq = cz_tanh(g, a);
        cz_tensor *b0 = conv_bn(g, "b0", a, NULL, CZ_ACT_RELU, fused);
        cz_tensor *lb = conv_bn(g, "b", b0, lq, CZ_ACT_RELU, fused);
        y[fused] = cz_conv2d(g, lb, param(g, "out.w", 2, WIDTH, 3), NULL, 1, 1, 1);
        CHECK(cz_graph_plan(g) == CZ_OK, "%s: plan: %s", what, cz_last_error());
        if (cz_graph_status(g) == CZ_OK)
            prepare(g, x);
        if (fused) {
            q = lq;
            b = lb;
        }
    }
    if (cz_graph_status(graphs[0]) == CZ_OK && cz_graph_status(graphs[1]) == CZ_OK) {
        CHECK(q->layout == CZ_LAYOUT_NCHW_F32 && b->layout != CZ_LAYOUT_NCHW_F32,
              "%s: residual %s, output %s", what, layout_name(q->layout), layout_name(b->layout));
        CHECK(b->data != q->data, "%s: the output overwrote a residual stored otherwise", what);
        for (int k = 0; k < 2; k++)
            CHECK(cz_graph_forward(graphs[k]) == CZ_OK, "%s: forward: %s", what, cz_last_error());
        double err = check_norm_rel_err(y[1]->data, y[0]->data, (long)cz_numel(y[0]));
        double tol = precision == CZ_BF16 ? BF16_TOL : FP32_TOL;
        CHECK(err <= tol, "%s: fused vs unfused fp32 %.3g (allowed %.3g)", what, err, tol);
    }
    cz_graph_free(graphs[0]);
    cz_graph_free(graphs[1]);
}

/* Training graphs: activations and their gradients channels-last (values
 * bf16 in bf16 graphs, gradients fp32), against the same graph kept plain
 * (cz_graph_config.plain_layout). Batch norms with batch statistics (one
 * with its ReLU fused, whose bf16 backward reads forward's mask), max
 * pooling, a strided 1x1 convolution (whose backward runs in oneDNN's own
 * layouts), add, leaky_relu, nearest upsampling, concatenation and relu:
 * the output, the input's gradient and every parameter's gradient agree,
 * over two steps (the running statistics move in between). */
static void training(cz_precision precision)
{
    const char *what = precision == CZ_BF16 ? "bf16 training" : "fp32 training";
    cz_graph *graphs[2];
    cz_tensor *x[2], *y[2], *inner[2][6];
    for (int plain = 0; plain < 2; plain++) {
        cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                               .precision = precision, .seed = 8,
                               .plain_layout = plain};
        cz_graph *g = graphs[plain] = cz_graph_create(&cfg);
        cz_tensor **t = inner[plain];
        x[plain] = cz_graph_input(g, "x", 2, 3, 14, 10, true);
        t[0] = conv_bn(g, "a", x[plain], NULL, CZ_ACT_RELU, false);
        t[1] = cz_max_pool2d(g, t[0], 3, 2, 1);
        cz_tensor *down = conv_bn_k(g, "d", t[0], 1, 2, NULL, CZ_ACT_NONE, false);
        t[2] = conv_bn(g, "s", t[1], down, CZ_ACT_LEAKY_RELU, false);
        t[3] = cz_upsample(g, t[2], 2, CZ_UPSAMPLE_NEAREST);
        cz_tensor *both[2] = {t[3], t[0]};
        t[4] = cz_cat(g, both, 2);
        t[5] = cz_relu(g, t[4]);
        /* A batch norm whose input has another reader: its gradient adds. */
        cz_tensor *m = cz_conv2d(g, t[5], param(g, "m.w", WIDTH, 2 * WIDTH, 3), NULL, 1, 1, 1);
        cz_tensor *m_bn = cz_batch_norm2d_relu(g, m, param(g, "m.gamma", WIDTH, 0, 0),
                                               param(g, "m.beta", WIDTH, 0, 0),
                                               param(g, "m.mean", WIDTH, 0, 0),
                                               param(g, "m.var", WIDTH, 0, 0), 0.1f, 1e-3f);
        y[plain] = cz_conv2d(g, cz_add(g, m_bn, m), param(g, "out.w", 2, WIDTH, 3), NULL, 1, 1, 1);
        CHECK(cz_graph_plan(g) == CZ_OK, "%s: plan: %s", what, cz_last_error());
        if (cz_graph_status(g) == CZ_OK)
            prepare(g, x[plain]);
    }
    if (cz_graph_status(graphs[0]) == CZ_OK && cz_graph_status(graphs[1]) == CZ_OK) {
        cz_layout fast = precision == CZ_BF16 ? CZ_LAYOUT_NHWC_BF16 : CZ_LAYOUT_NHWC_F32;
        for (int i = 0; i < 6; i++)
            CHECK(inner[0][i]->layout == fast && inner[1][i]->layout == CZ_LAYOUT_NCHW_F32,
                  "%s: activation %d is %s, plain graph's %s", what, i,
                  layout_name(inner[0][i]->layout), layout_name(inner[1][i]->layout));
        CHECK(x[0]->layout == CZ_LAYOUT_NCHW_F32 && y[0]->layout == CZ_LAYOUT_NCHW_F32,
              "%s: the input and the output must stay plain", what);
        /* bf16: the channels-last graph's values are rounded to bf16
         * between layers, the plain one's are not (0.7% on the output, 4.4%
         * on the input gradient, which batch norms' backward passes and
         * max pooling's ties amplify; oneDNN's batch norm backward on the
         * widened values gave the same 4.4%). A wrong layout errs by order
         * 1. */
        double tol = precision == CZ_BF16 ? 5e-2 : FP32_TOL;
        for (int step = 0; step < 2; step++) {
            for (int k = 0; k < 2; k++) {
                cz_graph_zero_grad(graphs[k]);
                memset(x[k]->grad, 0, (size_t)cz_numel(x[k]) * sizeof(float));
                CHECK(cz_graph_forward(graphs[k]) == CZ_OK, "%s: forward: %s", what, cz_last_error());
                cz_tensor_seed(y[k], 1.0f);
                CHECK(cz_graph_backward(graphs[k]) == CZ_OK, "%s: backward: %s", what, cz_last_error());
            }
            const cz_param_store *a = cz_graph_params(graphs[0]), *b = cz_graph_params(graphs[1]);
            double ey = check_norm_rel_err(y[0]->data, y[1]->data, (long)cz_numel(y[0]));
            double ex = check_norm_rel_err(x[0]->grad, x[1]->grad, (long)cz_numel(x[0]));
            double ep = check_norm_rel_err(a->grad, b->grad, (long)a->n_trainable);
            double es = check_norm_rel_err(a->data + a->n_params, b->data + b->n_params,
                                           (long)(a->n_total - a->n_params));
            CHECK(ey <= tol && ex <= tol && ep <= tol && es <= tol,
                  "%s step %d: channels-last vs plain: output %.3g, input gradient %.3g, "
                  "parameter gradients %.3g, running statistics %.3g (allowed %.3g)",
                  what, step, ey, ex, ep, es, tol);
            printf("%s step %d: output %.2g, input gradient %.2g, parameter gradients %.2g\n",
                   what, step, ey, ex, ep);
        }
    }
    cz_graph_free(graphs[0]);
    cz_graph_free(graphs[1]);
}

/* v in NCHW order (n, c, h, w) -> NHWC, or back. */
static void to_nhwc(const float *src, float *dst, const cz_tensor *t, bool back)
{
    for (int64_t n = 0; n < t->n; n++)
        for (int64_t c = 0; c < t->c; c++)
            for (int64_t p = 0; p < t->h * t->w; p++) {
                int64_t plain = (n * t->c + c) * t->h * t->w + p;
                int64_t last = (n * t->h * t->w + p) * t->c + c;
                if (back)
                    dst[plain] = src[last];
                else
                    dst[last] = src[plain];
            }
}

/* cz_graph_config.channels_last_io: a training graph's input and output are
 * NHWC fp32 and compute what the plain-io graph computes, transposed, the
 * input's gradient too; and where an op needing one layout meets an fp32
 * input and a bf16 activation (bf16 inference), both go plain. */
static void channels_last_io(cz_precision precision)
{
    const char *what = precision == CZ_BF16 ? "bf16 channels-last io" : "fp32 channels-last io";
    cz_graph *graphs[2];
    cz_tensor *x[2], *y[2];
    for (int io = 0; io < 2; io++) {
        cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                               .precision = precision, .seed = 8,
                               .channels_last_io = io};
        cz_graph *g = graphs[io] = cz_graph_create(&cfg);
        x[io] = cz_graph_input(g, "x", 2, 5, 12, 9, true);
        cz_tensor *a = conv_bn(g, "a", x[io], NULL, CZ_ACT_RELU, false);
        y[io] = cz_conv2d(g, a, param(g, "out.w", 3, WIDTH, 3), NULL, 1, 1, 1);
        CHECK(cz_graph_plan(g) == CZ_OK, "%s: plan: %s", what, cz_last_error());
        if (cz_graph_status(g) == CZ_OK)
            prepare(g, x[io]);
    }
    if (cz_graph_status(graphs[0]) == CZ_OK && cz_graph_status(graphs[1]) == CZ_OK) {
        CHECK(x[0]->layout == CZ_LAYOUT_NCHW_F32 && y[0]->layout == CZ_LAYOUT_NCHW_F32 &&
                  x[1]->layout == CZ_LAYOUT_NHWC_F32 && y[1]->layout == CZ_LAYOUT_NHWC_F32,
              "%s: input %s and output %s, plain-io graph's %s and %s", what,
              layout_name(x[1]->layout), layout_name(y[1]->layout), layout_name(x[0]->layout),
              layout_name(y[0]->layout));
        to_nhwc(x[0]->data, x[1]->data, x[0], false);
        for (int k = 0; k < 2; k++) {
            CHECK(cz_graph_forward(graphs[k]) == CZ_OK, "%s: forward: %s", what, cz_last_error());
            cz_tensor_seed(y[k], 1.0f);
            CHECK(cz_graph_backward(graphs[k]) == CZ_OK, "%s: backward: %s", what, cz_last_error());
        }
        float *out = malloc((size_t)cz_numel(y[0]) * sizeof(float));
        float *dx = malloc((size_t)cz_numel(x[0]) * sizeof(float));
        if (out && dx) {
            to_nhwc(y[1]->data, out, y[1], true);
            to_nhwc(x[1]->grad, dx, x[1], true);
            double ey = check_norm_rel_err(out, y[0]->data, (long)cz_numel(y[0]));
            double ex = check_norm_rel_err(dx, x[0]->grad, (long)cz_numel(x[0]));
            double tol = precision == CZ_BF16 ? 1e-3 : FP32_TOL, size = 0;
            for (int64_t i = 0; i < cz_numel(x[0]); i++)
                size += fabs(x[0]->grad[i]);
            CHECK(ey <= tol && ex <= tol && size > 0,
                  "%s: output %.3g, input gradient %.3g apart (allowed %.3g; gradient sum %g)",
                  what, ey, ex, tol, size);
        }
        free(out);
        free(dx);
    }
    cz_graph_free(graphs[0]);
    cz_graph_free(graphs[1]);

    /* bf16 inference: the relu right after the input would have an fp32
     * input and a bf16 output; it reads and writes plain instead. */
    if (!bf16_runs())
        return;
    cz_graph_config cfg = {.precision = CZ_BF16, .seed = 8, .channels_last_io = true};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *in = cz_graph_input(g, "x", 1, 16, 8, 8, false);
    cz_tensor *r = cz_relu(g, in);
    cz_tensor *out = cz_conv2d(g, r, param(g, "w", 16, 16, 3), NULL, 1, 1, 1);
    CHECK(cz_graph_plan(g) == CZ_OK && in->layout == CZ_LAYOUT_NCHW_F32 &&
              r->layout == CZ_LAYOUT_NCHW_F32 && out->layout == CZ_LAYOUT_NHWC_F32,
          "channels-last io, bf16 inference: input %s, relu %s, output %s", layout_name(in->layout),
          layout_name(r->layout), layout_name(out->layout));
    cz_graph_free(g);
}

int main(void)
{
    run(CZ_FP32, false);
    run(CZ_FP32, true);
    mixed_residual(CZ_FP32);
    training(CZ_FP32);
    channels_last_io(CZ_FP32);
    if (bf16_runs()) {
        run(CZ_BF16, false);
        run(CZ_BF16, true);
        mixed_residual(CZ_BF16);
        training(CZ_BF16);
        channels_last_io(CZ_BF16);
    }
    return check_finish("test_layout");
}
