/* conv2d and conv_transpose2d: forward against a direct loop in double,
 * backward against finite differences, fp32 and bf16. */
#include "bf16.h"
#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"

typedef struct {
    int n, ic, oc, h, w, kh, kw, stride, padding, output_padding, dilation;
    bool bias, transposed;
} conv_case;

/* The defining sums. A transposed conv scatters each input pixel through the
 * kernel; a conv gathers. w is [OC, IC, KH, KW] or, transposed, [IC, OC, KH, KW]. */
static void reference(const conv_case *c, const float *x, const float *w, const float *b,
                      double *y, int oh, int ow)
{
    for (int i = 0; i < c->n * c->oc * oh * ow; i++)
        y[i] = b ? b[(i / (oh * ow)) % c->oc] : 0.0;
    for (int n = 0; n < c->n; n++)
        for (int o = 0; o < c->oc; o++)
            for (int ci = 0; ci < c->ic; ci++)
                for (int ky = 0; ky < c->kh; ky++)
                    for (int kx = 0; kx < c->kw; kx++) {
                        double wv = c->transposed
                                        ? w[((ci * c->oc + o) * c->kh + ky) * c->kw + kx]
                                        : w[((o * c->ic + ci) * c->kh + ky) * c->kw + kx];
                        if (!c->transposed) {
                            for (int yy = 0; yy < oh; yy++)
                                for (int xx = 0; xx < ow; xx++) {
                                    int iy = yy * c->stride - c->padding + ky * c->dilation;
                                    int ix = xx * c->stride - c->padding + kx * c->dilation;
                                    if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
                                        continue;
                                    y[((n * c->oc + o) * oh + yy) * ow + xx] +=
                                        wv * x[((n * c->ic + ci) * c->h + iy) * c->w + ix];
                                }
                        } else {
                            for (int iy = 0; iy < c->h; iy++)
                                for (int ix = 0; ix < c->w; ix++) {
                                    int yy = iy * c->stride - c->padding + ky * c->dilation;
                                    int xx = ix * c->stride - c->padding + kx * c->dilation;
                                    if (yy < 0 || yy >= oh || xx < 0 || xx >= ow)
                                        continue;
                                    y[((n * c->oc + o) * oh + yy) * ow + xx] +=
                                        wv * x[((n * c->ic + ci) * c->h + iy) * c->w + ix];
                                }
                        }
                    }
}

/* A planned training graph y = conv(x, w, b); ts receives x, w, b. */
static cz_tensor *build(const conv_case *c, cz_precision precision, cz_graph **gp, cz_tensor **ts)
{
    cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                           .precision = precision, .seed = 7};
    cz_graph *g = *gp = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "x", c->n, c->ic, c->h, c->w, true);
    int64_t wshape[4] = {c->transposed ? c->ic : c->oc, c->transposed ? c->oc : c->ic, c->kh, c->kw};
    int64_t bshape[1] = {c->oc};
    cz_tensor *w = cz_graph_param(g, "weight", 4, wshape, CZ_INIT_UNIFORM, 0.5f);
    cz_tensor *b = c->bias ? cz_graph_param(g, "bias", 1, bshape, CZ_INIT_UNIFORM, 0.5f) : NULL;
    cz_tensor *y = c->transposed
                       ? cz_conv_transpose2d(g, x, w, b, c->stride, c->padding, c->output_padding, c->dilation)
                       : cz_conv2d(g, x, w, b, c->stride, c->padding, c->dilation);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    if (cz_graph_status(g) != CZ_OK)
        return NULL;
    cz_rng rng;
    cz_rng_seed(&rng, 99);
    fill_uniform(&rng, x->data, cz_numel(x), -1, 1);
    ts[0] = x, ts[1] = w, ts[2] = b;
    return y;
}

static void run_case(const conv_case *c, cz_precision precision)
{
    char what[160];
    snprintf(what, sizeof what, "%s %s n%d ic%d oc%d %dx%d k%dx%d s%d p%d op%d d%d%s",
             c->transposed ? "conv_transpose2d" : "conv2d", precision == CZ_BF16 ? "bf16" : "fp32",
             c->n, c->ic, c->oc, c->h, c->w, c->kh, c->kw, c->stride, c->padding,
             c->output_padding, c->dilation, c->bias ? " bias" : "");
    cz_graph *g;
    cz_tensor *ts[3];
    cz_tensor *y = build(c, precision, &g, ts);
    if (!y) {
        cz_graph_free(g);
        return;
    }
    cz_tensor *x = ts[0], *w = ts[1], *b = ts[2];
    CHECK(cz_graph_forward(g) == CZ_OK, "%s: forward", what);

    int oh = (int)y->h, ow = (int)y->w;
    double *ref = malloc(sizeof(double) * (size_t)cz_numel(y));
    reference(c, x->data, w->data, b ? b->data : NULL, ref, oh, ow);
    float *reff = malloc(sizeof(float) * (size_t)cz_numel(y));
    for (int64_t i = 0; i < cz_numel(y); i++)
        reff[i] = (float)ref[i];
    /* bf16 keeps 8 bits of mantissa: inputs are rounded to ~0.4%. */
    CHECK_CLOSE(what, y->data, reff, cz_numel(y), precision == CZ_BF16 ? 3e-2 : 1e-5, 1.0);
    free(ref);
    free(reff);

    cz_tensor *checked[3] = {x, w, b};
    if (precision == CZ_FP32) {
        gradcheck(what, g, y, checked, b ? 3 : 2, 40, 1e-2, 1e-3);
    } else {
        /* Finite differences drown in bf16 rounding; instead the bf16
         * gradients must track the fp32 ones (themselves checked above). */
        cz_graph *g32 = NULL;
        cz_tensor *t32[3];
        cz_tensor *y32 = build(c, CZ_FP32, &g32, t32);
        for (int k = 0; k < 3; k++)
            if (checked[k])
                memcpy(t32[k]->data, checked[k]->data, sizeof(float) * (size_t)cz_numel(checked[k]));
        cz_graph *gs[2] = {g, g32};
        cz_tensor *ys[2] = {y, y32};
        for (int k = 0; k < 2; k++) {
            cz_graph_forward(gs[k]);
            cz_graph_zero_grad(gs[k]);
            cz_rng r;
            cz_rng_seed(&r, 5);
            fill_uniform(&r, ys[k]->grad, cz_numel(ys[k]), -1, 1);
            cz_graph_backward(gs[k]);
        }
        for (int k = 0; k < 3; k++) {
            if (!checked[k])
                continue;
            int64_t n = cz_numel(checked[k]);
            float scale = 0;
            for (int64_t i = 0; i < n; i++)
                scale = fmaxf(scale, fabsf(t32[k]->grad[i]));
            CHECK_CLOSE(what, checked[k]->grad, t32[k]->grad, n, 3e-2, scale);
        }
        cz_graph_free(g32);
    }
    cz_graph_free(g);
}

/* bf16 training graphs run the backward of a 1x1 convolution without
 * padding on channels-last values as matmuls (conv.c). A chain where they
 * meet every case: an input gradient added to (a has three readers) and
 * written (m and t have one), a bias and none, stride 1 and 2, channel
 * counts no multiple of 16, and with channels-last io an fp32 input that
 * forward converted; against the same chain in fp32, whose convolutions
 * the cases above check. A transposed operand, a lost sum or a pixel out
 * of place errs by order 1. */
#define CHAIN_1X1 6

static cz_tensor *chain_1x1(cz_graph *g, cz_tensor *x, cz_tensor **mid)
{
    int64_t wa[4] = {16, 3, 1, 1}, wm[4] = {24, 16, 1, 1}, wk[4] = {40, 16, 1, 1};
    int64_t wn[4] = {40, 24, 1, 1}, wt[4] = {8, 40, 1, 1}, wq[4] = {8, 16, 1, 1};
    int64_t wy[4] = {5, 8, 3, 3}, bm[1] = {24};
#define P(name, shape) cz_graph_param(g, name, (int)(sizeof shape / sizeof *shape), shape, CZ_INIT_UNIFORM, 0.5f)
    cz_tensor *a = mid[0] = cz_conv2d(g, x, P("a", wa), NULL, 1, 0, 1);
    /* Built before a's other readers, so that its backward adds to theirs. */
    cz_tensor *q = mid[5] = cz_conv2d(g, a, P("q", wq), NULL, 2, 0, 1);
    cz_tensor *m = mid[1] = cz_conv2d(g, a, P("m", wm), P("m.bias", bm), 1, 0, 1);
    cz_tensor *k = mid[2] = cz_conv2d(g, a, P("k", wk), NULL, 1, 0, 1);
    cz_tensor *n = mid[3] = cz_conv2d(g, m, P("n", wn), NULL, 1, 0, 1);
    cz_tensor *t = mid[4] = cz_conv2d(g, cz_add(g, n, k), P("t", wt), NULL, 2, 0, 1);
    return cz_conv2d(g, cz_add(g, t, q), P("y", wy), NULL, 1, 1, 1);
#undef P
}

/* bf16 training graphs compute the input gradient of other convolutions
 * on channels-last values as forward convolutions, one per phase of the
 * stride (conv_phases.c). A chain where they meet every case: stride 1 and
 * 2, kernels 2, 3 and 4, padding 0 to 2, odd sizes (phases of unequal
 * size), an input gradient added to (a has three readers) and written, and
 * with channels-last io the fp32 input's; against the same chain in fp32.
 * Every output has more pixels than conv_phases.c asks for (MIN_PIXELS).
 * A kernel not flipped or not transposed, a phase out of place or a lost
 * sum errs by order 1. */
#define CHAIN_PHASES 6

static cz_tensor *phases_chain(cz_graph *g, cz_tensor *x, cz_tensor **mid)
{
    int64_t wa[4] = {16, 3, 3, 3}, wb[4] = {24, 16, 4, 4}, wf[4] = {16, 16, 3, 3};
    int64_t wc[4] = {24, 16, 3, 3}, wd[4] = {8, 24, 4, 4}, we[4] = {5, 8, 2, 2}, be[1] = {5};
#define P(name, shape) cz_graph_param(g, name, (int)(sizeof shape / sizeof *shape), shape, CZ_INIT_UNIFORM, 0.5f)
    cz_tensor *a = mid[0] = cz_conv2d(g, x, P("a", wa), NULL, 1, 1, 1); /* 185x181 */
    /* a's three readers run backward in the opposite order: b writes into
     * a's cleared gradient, f (stride 1) and then h (stride 2) add to it. */
    cz_tensor *h = mid[1] = cz_conv2d(g, a, P("h", wb), NULL, 2, 1, 1); /* 92x90 */
    cz_tensor *f = mid[2] = cz_conv2d(g, a, P("f", wf), NULL, 1, 1, 1); /* 185x181 */
    cz_tensor *b = mid[3] = cz_conv2d(g, a, P("b", wb), NULL, 2, 1, 1); /* 92x90 */
    cz_tensor *c = mid[4] = cz_conv2d(g, f, P("c", wc), NULL, 2, 0, 1); /* 92x90, writes f's */
    cz_tensor *sum = cz_add(g, cz_add(g, b, c), h);
    cz_tensor *d = mid[5] = cz_conv2d(g, sum, P("d", wd), NULL, 1, 2, 1); /* 93x91, writes sum's */
    return cz_conv2d(g, d, P("e", we), P("e.bias", be), 2, 0, 1);       /* 46x45, writes d's */
#undef P
}

/* A chain test: the chain built in a bf16 and an fp32 training graph,
 * x [2, 3, h, w]; the convolutions whose outputs are mid[0..n_mid) take
 * the bf16 path by_path names in the bf16 graph only (the first reads the
 * plain input unless io is channels-last; with last_too, the one writing
 * y, plain unless io is channels-last, takes it exactly then). Input and
 * parameter gradients are compared with the fp32 graph's over two steps,
 * the second of two passes: a parameter's gradient is added to, as a
 * discriminator's is. bf16 rounds every convolution's operands: about 1%
 * here. */
typedef struct {
    const char *what;
    cz_tensor *(*build)(cz_graph *g, cz_tensor *x, cz_tensor **mid);
    int n_mid;
    bool (*by_path)(const cz_graph *g, const cz_tensor *y);
    int64_t h, w;
    bool last_too;
} chain_test;

#define MAX_CHAIN 8

static void chain_against_fp32(const chain_test *t, bool channels_last_io)
{
    cz_graph *gs[2];
    cz_tensor *xs[2], *ys[2], *mid[2][MAX_CHAIN];
    char what[96];
    snprintf(what, sizeof what, "%s%s", t->what, channels_last_io ? ", channels-last io" : "");
    for (int k = 0; k < 2; k++) {
        cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                               .precision = k == 0 ? CZ_BF16 : CZ_FP32, .seed = 11,
                               .channels_last_io = channels_last_io};
        gs[k] = cz_graph_create(&cfg);
        xs[k] = cz_graph_input(gs[k], "x", 2, 3, t->h, t->w, true);
        ys[k] = t->build(gs[k], xs[k], mid[k]);
        CHECK(cz_graph_plan(gs[k]) == CZ_OK, "%s: plan: %s", what, cz_last_error());
    }
    if (cz_graph_status(gs[0]) == CZ_OK && cz_graph_status(gs[1]) == CZ_OK) {
        for (int i = channels_last_io ? 0 : 1; i < t->n_mid; i++)
            CHECK(t->by_path(gs[0], mid[0][i]) && !t->by_path(gs[1], mid[1][i]),
                  "%s: convolution %d: on the path in bf16 (only): %d %d", what, i,
                  t->by_path(gs[0], mid[0][i]), t->by_path(gs[1], mid[1][i]));
        CHECK(!t->last_too || t->by_path(gs[0], ys[0]) == channels_last_io,
              "%s: the last convolution", what);
        const cz_param_store *ps[2] = {cz_graph_params(gs[0]), cz_graph_params(gs[1])};
        memcpy(ps[1]->data, ps[0]->data, ps[0]->n_total * sizeof(float));
        cz_rng rng;
        cz_rng_seed(&rng, 12);
        fill_uniform(&rng, xs[0]->data, cz_numel(xs[0]), -1, 1);
        memcpy(xs[1]->data, xs[0]->data, (size_t)cz_numel(xs[0]) * sizeof(float));
        for (int step = 0; step < 2; step++) {
            for (int k = 0; k < 2; k++) {
                cz_graph_zero_grad(gs[k]);
                memset(xs[k]->grad, 0, (size_t)cz_numel(xs[k]) * sizeof(float));
                for (int pass = 0; pass <= step; pass++) {
                    CHECK(cz_graph_forward(gs[k]) == CZ_OK, "%s: forward", what);
                    cz_tensor_seed(ys[k], pass == 0 ? 1.0f : -0.5f);
                    CHECK(cz_graph_backward(gs[k]) == CZ_OK, "%s: backward", what);
                }
            }
            double ex = check_norm_rel_err(xs[0]->grad, xs[1]->grad, (long)cz_numel(xs[0]));
            double ep = check_norm_rel_err(ps[0]->grad, ps[1]->grad, (long)ps[0]->n_trainable);
            CHECK(ex < 3e-2 && ep < 3e-2, "%s step %d: bf16 against fp32: input gradient %.3g, "
                  "parameter gradients %.3g", what, step, ex, ep);
            printf("%s step %d: input gradient %.2g, parameter gradients %.2g\n", what, step,
                   ex, ep);
        }
    }
    cz_graph_free(gs[0]);
    cz_graph_free(gs[1]);
}

int main(void)
{
    const conv_case cases[] = {
        {.n = 2, .ic = 3, .oc = 5, .h = 7, .w = 9, .kh = 3, .kw = 3, .stride = 1, .padding = 1, .dilation = 1, .bias = true},
        {.n = 1, .ic = 4, .oc = 6, .h = 11, .w = 8, .kh = 3, .kw = 3, .stride = 2, .padding = 1, .dilation = 1},
        {.n = 2, .ic = 3, .oc = 2, .h = 9, .w = 9, .kh = 3, .kw = 3, .stride = 1, .padding = 2, .dilation = 2, .bias = true},
        {.n = 1, .ic = 3, .oc = 8, .h = 13, .w = 13, .kh = 7, .kw = 7, .stride = 2, .padding = 3, .dilation = 1, .bias = true},
        {.n = 3, .ic = 5, .oc = 4, .h = 6, .w = 5, .kh = 1, .kw = 1, .stride = 2, .padding = 0, .dilation = 1},
        {.n = 2, .ic = 3, .oc = 4, .h = 8, .w = 8, .kh = 4, .kw = 4, .stride = 2, .padding = 1, .dilation = 1, .bias = true},
        {.n = 2, .ic = 4, .oc = 3, .h = 5, .w = 7, .kh = 4, .kw = 4, .stride = 2, .padding = 1, .dilation = 1, .bias = true, .transposed = true},
        {.n = 1, .ic = 3, .oc = 5, .h = 4, .w = 3, .kh = 3, .kw = 3, .stride = 2, .padding = 1, .output_padding = 1, .dilation = 1, .transposed = true},
        {.n = 2, .ic = 2, .oc = 3, .h = 5, .w = 5, .kh = 3, .kw = 3, .stride = 1, .padding = 0, .dilation = 2, .bias = true, .transposed = true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_case(&cases[i], CZ_FP32);
        if (bf16_runs())
            run_case(&cases[i], CZ_BF16);
    }

    const chain_test chains[] = {
        {"matmul backward", chain_1x1, CHAIN_1X1, cz_conv2d_backward_by_matmul, 7, 9, false},
        {"input gradient by phases", phases_chain, CHAIN_PHASES, cz_conv2d_input_grad_by_phases,
         185, 181, true},
    };
    if (bf16_runs())
        for (size_t i = 0; i < sizeof chains / sizeof *chains; i++) {
            chain_against_fp32(&chains[i], false);
            chain_against_fp32(&chains[i], true);
        }

    /* Shape errors are reported, not crashed on. */
    cz_graph_config cfg = {.training = false};
    cz_graph *g = cz_graph_create(&cfg);
    int64_t wshape[4] = {4, 2, 3, 3};
    cz_tensor *x = cz_graph_input(g, "x", 1, 3, 8, 8, false);
    cz_tensor *w = cz_graph_param(g, "w", 4, wshape, CZ_INIT_ZEROS, 0);
    CHECK(cz_conv2d(g, x, w, NULL, 1, 1, 1) == NULL, "channel mismatch accepted");
    CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail");
    CHECK(strstr(cz_last_error(), "channels") != NULL, "message: %s", cz_last_error());
    cz_graph_free(g);
    return check_finish("test_conv");
}
