/* linear: forward against a direct sum in double, backward against finite
 * differences, bf16 tracking fp32, inference graphs with weight reloads,
 * frozen parameters, thread-count independence, and shape errors. */
#include <omp.h>

#include "bf16.h"
#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"

typedef struct {
    int n, c, h, w, out;
    bool bias;
} linear_case;

typedef struct {
    cz_graph *g;
    cz_tensor *x, *w, *b, *y;
} linear_net;

/* y[n, o] = b[o] + sum_i x[n, i] w[o, i], the input flattened. */
static void reference(const linear_case *c, const float *x, const float *w, const float *b,
                      float *y)
{
    int in = c->c * c->h * c->w;
    for (int n = 0; n < c->n; n++)
        for (int o = 0; o < c->out; o++) {
            double sum = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++)
                sum += (double)x[n * in + i] * w[o * in + i];
            y[n * c->out + o] = (float)sum;
        }
}

/* A planned graph y = linear(x, w, b) with random x, w, b. */
static bool build(const linear_case *c, bool training, cz_precision precision,
                  bool frozen_weight, linear_net *t)
{
    memset(t, 0, sizeof *t);
    cz_graph_config cfg = {.training = training, .poison_unread_values = true,
                           .precision = precision, .seed = 7};
    cz_graph *g = t->g = cz_graph_create(&cfg);
    t->x = cz_graph_input(g, "x", c->n, c->c, c->h, c->w, true);
    int64_t wshape[2] = {c->out, (int64_t)c->c * c->h * c->w}, bshape[1] = {c->out};
    cz_graph_freeze_new_params(g, frozen_weight);
    t->w = cz_graph_param(g, "weight", 2, wshape, CZ_INIT_UNIFORM, 0.5f);
    cz_graph_freeze_new_params(g, false);
    t->b = c->bias ? cz_graph_param(g, "bias", 1, bshape, CZ_INIT_UNIFORM, 0.5f) : NULL;
    t->y = cz_linear(g, t->x, t->w, t->b);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    if (cz_graph_status(g) != CZ_OK)
        return false;
    CHECK(t->y->n == c->n && t->y->c == c->out && t->y->h == 1 && t->y->w == 1 && t->y->ndim == 2,
          "linear: output shape");
    cz_rng rng;
    cz_rng_seed(&rng, 99);
    fill_uniform(&rng, t->x->data, cz_numel(t->x), -1, 1);
    return true;
}

static void copy_params(linear_net *to, const linear_net *from)
{
    memcpy(to->x->data, from->x->data, sizeof(float) * (size_t)cz_numel(from->x));
    memcpy(to->w->data, from->w->data, sizeof(float) * (size_t)cz_numel(from->w));
    if (from->b)
        memcpy(to->b->data, from->b->data, sizeof(float) * (size_t)cz_numel(from->b));
}

/* Forward, then backward seeded with a fixed pattern, parameter gradients
 * cleared first. */
static void step(linear_net *t)
{
    cz_rng r;
    cz_rng_seed(&r, 5);
    CHECK(cz_graph_forward(t->g) == CZ_OK, "forward: %s", cz_last_error());
    cz_graph_zero_grad(t->g);
    fill_uniform(&r, t->y->grad, cz_numel(t->y), -1, 1);
    CHECK(cz_graph_backward(t->g) == CZ_OK, "backward: %s", cz_last_error());
}

static float max_abs(const float *a, int64_t n)
{
    float m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i]));
    return m;
}

static void run_case(const linear_case *c, cz_precision precision)
{
    char what[160];
    snprintf(what, sizeof what, "linear %s n%d in%dx%dx%d out%d%s",
             precision == CZ_BF16 ? "bf16" : "fp32", c->n, c->c, c->h, c->w, c->out,
             c->bias ? " bias" : "");
    linear_net t;
    if (!build(c, true, precision, false, &t)) {
        cz_graph_free(t.g);
        return;
    }
    CHECK(cz_graph_forward(t.g) == CZ_OK, "%s: forward", what);
    int64_t ny = cz_numel(t.y);
    float *ref = malloc(sizeof(float) * (size_t)ny);
    reference(c, t.x->data, t.w->data, t.b ? t.b->data : NULL, ref);
    /* bf16 keeps 8 bits of mantissa: inputs are rounded to ~0.4%. */
    CHECK_CLOSE(what, t.y->data, ref, ny, precision == CZ_BF16 ? 3e-2 : 1e-5, 1.0);
    free(ref);

    cz_tensor *checked[3] = {t.x, t.w, t.b};
    if (precision == CZ_FP32) {
        gradcheck(what, t.g, t.y, checked, c->bias ? 3 : 2, 40, 1e-2, 1e-3);
    } else {
        /* Finite differences drown in bf16 rounding; the bf16 gradients must
         * track the fp32 ones instead (checked above). */
        linear_net t32;
        if (build(c, true, CZ_FP32, false, &t32)) {
            copy_params(&t32, &t);
            step(&t);
            step(&t32);
            cz_tensor *ref32[3] = {t32.x, t32.w, t32.b};
            for (int k = 0; k < 3; k++) {
                if (!checked[k])
                    continue;
                int64_t n = cz_numel(checked[k]);
                CHECK_CLOSE(what, checked[k]->grad, ref32[k]->grad, n, 3e-2,
                            max_abs(ref32[k]->grad, n));
            }
        }
        cz_graph_free(t32.g);
    }
    cz_graph_free(t.g);
}

/* An inference graph matches the reference, and picks up new weights once
 * told they changed. */
static void check_inference(cz_precision precision)
{
    linear_case c = {.n = 3, .c = 5, .h = 7, .w = 9, .out = 4, .bias = true};
    linear_net t;
    if (!build(&c, false, precision, false, &t)) {
        cz_graph_free(t.g);
        return;
    }
    float ref[12];
    double rel = precision == CZ_BF16 ? 3e-2 : 1e-5;
    for (int round = 0; round < 2; round++) {
        CHECK(cz_graph_forward(t.g) == CZ_OK, "linear inference forward");
        reference(&c, t.x->data, t.w->data, t.b->data, ref);
        CHECK_CLOSE(precision == CZ_BF16 ? "linear inference bf16" : "linear inference fp32",
                    t.y->data, ref, 12, rel, 1.0);
        for (int64_t i = 0; i < cz_numel(t.w); i++)
            t.w->data[i] = -t.w->data[i];
        t.b->data[0] += 1.0f;
        cz_graph_params_changed(t.g);
    }
    cz_graph_free(t.g);
}

/* A frozen weight (created frozen) with a trainable bias: dx and dbias still
 * right, and with everything frozen at run time only dx is produced. */
static void check_frozen(void)
{
    linear_case c = {.n = 3, .c = 6, .h = 2, .w = 3, .out = 5, .bias = true};
    linear_net t = {0}, full = {0};
    if (build(&c, true, CZ_FP32, true, &t) && build(&c, true, CZ_FP32, false, &full)) {
        CHECK(t.w->grad == NULL, "linear: a frozen weight has a gradient buffer");
        copy_params(&full, &t);
        step(&t);
        step(&full);
        CHECK_CLOSE("linear frozen-weight dx", t.x->grad, full.x->grad, cz_numel(t.x), 1e-6, 1e-2);
        CHECK_CLOSE("linear frozen-weight db", t.b->grad, full.b->grad, c.out, 1e-6, 1e-2);
        cz_tensor *checked[2] = {t.x, t.b};
        gradcheck("linear frozen weight", t.g, t.y, checked, 2, 40, 1e-2, 1e-3);

        cz_graph_set_frozen(full.g, true);
        float *dx = malloc(sizeof(float) * (size_t)cz_numel(full.x));
        memcpy(dx, full.x->grad, sizeof(float) * (size_t)cz_numel(full.x));
        step(&full);
        CHECK_CLOSE("linear runtime-frozen dx", full.x->grad, dx, cz_numel(full.x), 0, 1);
        CHECK(max_abs(full.w->grad, cz_numel(full.w)) == 0 && max_abs(full.b->grad, c.out) == 0,
              "linear: a frozen graph wrote parameter gradients");
        free(dx);
    }
    cz_graph_free(t.g);
    cz_graph_free(full.g);
}

/* One and two threads agree within rounding; the same thread count twice
 * gives the same bits. */
static void check_threads(cz_precision precision)
{
    linear_case c = {.n = 8, .c = 64, .h = 3, .w = 3, .out = 37, .bias = true};
    int keep = omp_get_max_threads();
    linear_net t[2] = {{0}};
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        if (!build(&c, true, precision, false, &t[k]))
            goto done;
        if (k)
            copy_params(&t[k], &t[0]);
        step(&t[k]);
    }
    const char *what = precision == CZ_BF16 ? "linear threads bf16" : "linear threads fp32";
    CHECK_CLOSE(what, t[1].y->data, t[0].y->data, cz_numel(t[0].y), 1e-5, 1.0);
    CHECK_CLOSE(what, t[1].x->grad, t[0].x->grad, cz_numel(t[0].x), 1e-5, 1.0);
    CHECK_CLOSE(what, t[1].w->grad, t[0].w->grad, cz_numel(t[0].w), 1e-5, 1.0);
    CHECK_CLOSE(what, t[1].b->grad, t[0].b->grad, c.out, 1e-5, 1.0);
    /* Again on two threads: bit for bit. */
    int64_t nw = cz_numel(t[1].w);
    float *dw = malloc(sizeof(float) * (size_t)nw);
    memcpy(dw, t[1].w->grad, sizeof(float) * (size_t)nw);
    step(&t[1]);
    CHECK(memcmp(dw, t[1].w->grad, sizeof(float) * (size_t)nw) == 0, "%s: not reproducible", what);
    free(dw);
done:
    omp_set_num_threads(keep);
    cz_graph_free(t[0].g);
    cz_graph_free(t[1].g);
}

static void check_error(int64_t in, int64_t bias_n, const char *message)
{
    cz_graph_config cfg = {.training = true};
    cz_graph *g = cz_graph_create(&cfg);
    int64_t wshape[2] = {4, in}, bshape[1] = {bias_n};
    cz_tensor *x = cz_graph_input(g, "x", 2, 3, 2, 2, true);
    cz_tensor *w = cz_graph_param(g, "weight", 2, wshape, CZ_INIT_ZEROS, 0);
    cz_tensor *b = cz_graph_param(g, "bias", 1, bshape, CZ_INIT_ZEROS, 0);
    CHECK(cz_linear(g, x, w, b) == NULL, "accepted: %s", message);
    CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail (%s)", message);
    CHECK(strstr(cz_last_error(), message) != NULL, "message: %s", cz_last_error());
    cz_graph_free(g);
}

int main(void)
{
    const linear_case cases[] = {
        {.n = 3, .c = 5, .h = 7, .w = 9, .out = 4, .bias = true},
        {.n = 2, .c = 16, .h = 1, .w = 1, .out = 10, .bias = false},
        {.n = 1, .c = 3, .h = 2, .w = 2, .out = 1, .bias = true},
        {.n = 5, .c = 64, .h = 1, .w = 1, .out = 33, .bias = true},
        {.n = 3, .c = 7, .h = 3, .w = 1, .out = 6, .bias = false},
        {.n = 4, .c = 32, .h = 4, .w = 4, .out = 16, .bias = true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_case(&cases[i], CZ_FP32);
        if (bf16_runs())
            run_case(&cases[i], CZ_BF16);
    }
    check_inference(CZ_FP32);
    if (bf16_runs())
        check_inference(CZ_BF16);
    check_frozen();
    check_threads(CZ_FP32);
    if (bf16_runs())
        check_threads(CZ_BF16);

    check_error(11, 4, "input has 12 features, weight expects 11");
    check_error(12, 5, "bias has 5 values, expected 4");
    return check_finish("test_linear");
}
