/* Channels-last activations (cz_layout): in inference graphs that fuse, an
 * activation is stored NHWC (bf16 in bf16 graphs) where the op writing it
 * and every op reading it take that layout. One small network with every
 * op that takes it (fused convolutions with a residual, max pooling,
 * nearest upsampling, concatenation, relu, a plain convolution) runs fused
 * and unfused, in fp32 and bf16:
 *   - the layouts are the ones the rule gives: channels-last inside, plain
 *     for the input and the output;
 *   - a plain-only reader (leaky_relu) of one tensor makes it plain, and
 *     that spreads through the ops that need one layout for all their
 *     tensors (max pooling, upsampling, concatenation, relu);
 *   - a convolution adding a residual it reads for the last time writes
 *     over it (cz_graph_may_overwrite); one whose residual is read later,
 *     is its own input, or is stored in another layout, does not;
 *   - the outputs agree with the unfused graph's (all plain): fp32 within
 *     rounding, bf16 within a few bf16 roundings. */
#include <string.h>

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

/* act(bn(conv3x3(x)) + residual), fused or as separate ops. */
static cz_tensor *conv_bn(cz_graph *g, const char *name, cz_tensor *x, cz_tensor *residual,
                          cz_act act, bool fused)
{
    char key[64];
    snprintf(key, sizeof key, "%s.w", name);
    cz_tensor *w = param(g, key, WIDTH, x ? x->c : 1, 3);
    cz_tensor *bn[4];
    const char *leaf[4] = {"gamma", "beta", "mean", "var"};
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.%s", name, leaf[i]);
        bn[i] = param(g, key, WIDTH, 0, 0);
    }
    if (fused) {
        cz_conv_fusion f = {bn[0], bn[1], bn[2], bn[3], 1e-3f, residual, act, 0.0f};
        return cz_conv2d_fused(g, x, w, NULL, 1, 1, 1, &f);
    }
    cz_tensor *y = cz_batch_norm2d(g, cz_conv2d(g, x, w, NULL, 1, 1, 1), bn[0], bn[1], bn[2],
                                   bn[3], 0.1f, 1e-3f);
    if (residual)
        y = cz_add(g, y, residual);
    return act == CZ_ACT_RELU ? cz_relu(g, y) : y;
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
    nt->b = conv_bn(g, "b", nt->b1, nt->p, CZ_ACT_RELU, fused);
    nt->u = cz_upsample(g, nt->b, 2, CZ_UPSAMPLE_NEAREST);
    cz_tensor *both[2] = {nt->u, nt->a};
    nt->c = cz_cat(g, both, 2);
    nt->r = cz_relu(g, nt->c);
    nt->y = cz_conv2d(g, nt->r, param(g, "out.w", 2, 2 * WIDTH, 3), param(g, "out.b", 2, 0, 0),
                      1, 1, 1);
    if (plain_reader)
        cz_leaky_relu(g, nt->p, 0.2f);
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

/* A residual stored plain (a leaky_relu's output) added by a convolution
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
        cz_tensor *lq = cz_leaky_relu(g, a, 0.2f);
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

int main(void)
{
    run(CZ_FP32, false);
    run(CZ_BF16, false);
    run(CZ_FP32, true);
    run(CZ_BF16, true);
    mixed_residual(CZ_FP32);
    mixed_residual(CZ_BF16);
    return check_finish("test_layout");
}
