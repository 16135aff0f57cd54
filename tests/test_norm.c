/* batch_norm2d: forward against a direct computation in double (batch and
 * running statistics), the running-statistics update against PyTorch's
 * formula, the frozen-weight rule, backward against finite differences and
 * against itself with the parameters frozen at run time, thread-count
 * independence, and shape errors. */
#include <omp.h>

#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"

typedef struct {
    int n, c, h, w;
    bool affine;
    bool training;   /* a training graph */
    bool frozen;     /* weight and bias created frozen */
    bool x_grad;     /* x requires a gradient */
    float momentum, eps;
} bn_case;

typedef struct {
    cz_graph *g;
    cz_tensor *x, *w, *b, *rmean, *rvar, *y;
} bn_net;

static void describe(const bn_case *c, char *what, size_t size)
{
    snprintf(what, size, "batch_norm2d %s n%d c%d %dx%d%s%s%s m%g eps%g",
             c->training ? "train" : "infer", c->n, c->c, c->h, c->w,
             c->affine ? " affine" : "", c->frozen ? " frozen" : "", c->x_grad ? " dx" : "",
             (double)c->momentum, (double)c->eps);
}

/* A planned graph y = batch_norm2d(x, ...) with random data and statistics. */
static bool build(const bn_case *c, bn_net *t)
{
    memset(t, 0, sizeof *t);
    cz_graph_config cfg = {.training = c->training, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 7};
    cz_graph *g = t->g = cz_graph_create(&cfg);
    int64_t shape[1] = {c->c};
    t->x = cz_graph_input(g, "x", c->n, c->c, c->h, c->w, c->x_grad);
    cz_graph_freeze_new_params(g, c->frozen);
    if (c->affine) {
        t->w = cz_graph_param(g, "weight", 1, shape, CZ_INIT_ONES, 0);
        t->b = cz_graph_param(g, "bias", 1, shape, CZ_INIT_ZEROS, 0);
    }
    cz_graph_freeze_new_params(g, false);
    t->rmean = cz_graph_buffer(g, "running_mean", 1, shape, CZ_INIT_ZEROS);
    t->rvar = cz_graph_buffer(g, "running_var", 1, shape, CZ_INIT_ONES);
    t->y = cz_batch_norm2d(g, t->x, t->w, t->b, t->rmean, t->rvar, c->momentum, c->eps);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    if (cz_graph_status(g) != CZ_OK)
        return false;
    cz_rng rng;
    cz_rng_seed(&rng, 99);
    /* Off-centre data, so mean and variance both matter. */
    fill_uniform(&rng, t->x->data, cz_numel(t->x), -1.0f, 2.0f);
    if (c->affine) {
        fill_uniform(&rng, t->w->data, c->c, 0.5f, 1.5f);
        fill_uniform(&rng, t->b->data, c->c, -0.5f, 0.5f);
    }
    fill_uniform(&rng, t->rmean->data, c->c, -0.5f, 0.5f);
    fill_uniform(&rng, t->rvar->data, c->c, 0.5f, 2.0f);
    return true;
}

/* y = (x - mean) / sqrt(var + eps) * w + b per channel. With batch true the
 * statistics are the batch's (biased variance) and are returned in mean/var;
 * otherwise mean/var are read. */
static void reference(const bn_case *c, const float *x, const float *w, const float *b,
                      bool batch, double *mean, double *var, double *y)
{
    int64_t hw = (int64_t)c->h * c->w, count = c->n * hw;
    for (int ch = 0; ch < c->c; ch++) {
        if (batch) {
            double sum = 0, sq = 0;
            for (int n = 0; n < c->n; n++)
                for (int64_t i = 0; i < hw; i++)
                    sum += x[(n * c->c + ch) * hw + i];
            mean[ch] = sum / (double)count;
            for (int n = 0; n < c->n; n++)
                for (int64_t i = 0; i < hw; i++) {
                    double d = x[(n * c->c + ch) * hw + i] - mean[ch];
                    sq += d * d;
                }
            var[ch] = sq / (double)count;
        }
        double inv = 1.0 / sqrt(var[ch] + (double)c->eps);
        double scale = w ? w[ch] : 1.0, shift = b ? b[ch] : 0.0;
        for (int n = 0; n < c->n; n++)
            for (int64_t i = 0; i < hw; i++) {
                int64_t at = (n * c->c + ch) * hw + i;
                y[at] = (x[at] - mean[ch]) * inv * scale + shift;
            }
    }
}

static void to_float(const double *a, float *f, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)a[i];
}

static void run_case(const bn_case *c)
{
    char what[200];
    describe(c, what, sizeof what);
    bn_net t;
    if (!build(c, &t)) {
        cz_graph_free(t.g);
        return;
    }
    int64_t numel = cz_numel(t.x), count = (int64_t)c->n * c->h * c->w;
    bool batch = c->training && !c->frozen;
    double *mean = calloc((size_t)c->c, sizeof *mean), *var = calloc((size_t)c->c, sizeof *var);
    double *ref = malloc(sizeof(double) * (size_t)numel);
    float *reff = malloc(sizeof(float) * (size_t)numel);
    float *first = malloc(sizeof(float) * (size_t)numel);
    float *rmean0 = malloc(sizeof(float) * (size_t)c->c), *rvar0 = malloc(sizeof(float) * (size_t)c->c);
    float *expect_mean = malloc(sizeof(float) * (size_t)c->c), *expect_var = malloc(sizeof(float) * (size_t)c->c);
    memcpy(rmean0, t.rmean->data, sizeof(float) * (size_t)c->c);
    memcpy(rvar0, t.rvar->data, sizeof(float) * (size_t)c->c);
    for (int ch = 0; ch < c->c; ch++)
        mean[ch] = rmean0[ch], var[ch] = rvar0[ch];

    CHECK(cz_graph_forward(t.g) == CZ_OK, "%s: forward", what);
    reference(c, t.x->data, t.w ? t.w->data : NULL, t.b ? t.b->data : NULL, batch, mean, var, ref);
    to_float(ref, reff, numel);
    CHECK_CLOSE(what, t.y->data, reff, numel, 1e-5, 1.0);
    memcpy(first, t.y->data, sizeof(float) * (size_t)numel);

    /* Two steps: the update is applied once per forward. */
    for (int step = 0; step < 2; step++) {
        for (int ch = 0; ch < c->c; ch++) {
            double m = c->momentum;
            double em = batch ? (1 - m) * rmean0[ch] + m * mean[ch] : rmean0[ch];
            double ev = batch ? (1 - m) * rvar0[ch] + m * var[ch] * count / (count - 1.0) : rvar0[ch];
            rmean0[ch] = expect_mean[ch] = (float)em;
            rvar0[ch] = expect_var[ch] = (float)ev;
        }
        if (step == 0)
            CHECK(cz_graph_forward(t.g) == CZ_OK, "%s: second forward", what);
    }
    if (batch) {
        CHECK_CLOSE(what, t.rmean->data, expect_mean, c->c, 1e-5, 1e-2);
        CHECK_CLOSE(what, t.rvar->data, expect_var, c->c, 1e-5, 1e-2);
    } else {
        CHECK(memcmp(t.rmean->data, expect_mean, sizeof(float) * (size_t)c->c) == 0 &&
                  memcmp(t.rvar->data, expect_var, sizeof(float) * (size_t)c->c) == 0,
              "%s: running statistics changed", what);
    }
    /* Same input, same thread count: the same bits. */
    CHECK(memcmp(first, t.y->data, sizeof(float) * (size_t)numel) == 0,
          "%s: forward is not reproducible", what);

    cz_tensor *checked[3];
    int n_checked = 0;
    if (c->x_grad && c->training)
        checked[n_checked++] = t.x;
    if (c->affine && c->training && !c->frozen) {
        checked[n_checked++] = t.w;
        checked[n_checked++] = t.b;
    }
    if (n_checked)
        gradcheck(what, t.g, t.y, checked, n_checked, 40, 1e-2, 2e-3);

    free(mean);
    free(var);
    free(ref);
    free(reff);
    free(first);
    free(rmean0);
    free(rvar0);
    free(expect_mean);
    free(expect_var);
    cz_graph_free(t.g);
}

/* Seeds y's gradient with a fixed pattern and runs one backward. */
static void backward_seeded(bn_net *t)
{
    cz_rng r;
    cz_rng_seed(&r, 5);
    cz_graph_forward(t->g);
    cz_graph_zero_grad(t->g);
    fill_uniform(&r, t->y->grad, cz_numel(t->y), -1, 1);
    CHECK(cz_graph_backward(t->g) == CZ_OK, "backward: %s", cz_last_error());
}

/* The GAN pattern: with every parameter frozen at run time, backward takes
 * the data-only path; dx must equal the full path's and the parameter
 * gradients must stay untouched. */
static void check_runtime_frozen(void)
{
    bn_case c = {.n = 3, .c = 5, .h = 7, .w = 9, .affine = true, .training = true,
                 .x_grad = true, .momentum = 0.1f, .eps = 1e-5f};
    bn_net t;
    if (!build(&c, &t)) {
        cz_graph_free(t.g);
        return;
    }
    int64_t numel = cz_numel(t.x);
    float *dx_full = malloc(sizeof(float) * (size_t)numel);
    backward_seeded(&t);
    memcpy(dx_full, t.x->grad, sizeof(float) * (size_t)numel);
    float dw = 0;
    for (int ch = 0; ch < c.c; ch++)
        dw = fmaxf(dw, fabsf(t.w->grad[ch]) + fabsf(t.b->grad[ch]));
    CHECK(dw > 0, "batch_norm2d: weight gradients missing");

    cz_graph_set_frozen(t.g, true);
    backward_seeded(&t);
    CHECK_CLOSE("batch_norm2d runtime-frozen dx", t.x->grad, dx_full, numel, 1e-5, 1e-2);
    bool untouched = true;
    for (int ch = 0; ch < c.c; ch++)
        untouched &= t.w->grad[ch] == 0 && t.b->grad[ch] == 0;
    CHECK(untouched, "batch_norm2d: frozen graph wrote parameter gradients");

    /* Backward adds: a second backward without clearing doubles dx. */
    cz_rng r;
    cz_rng_seed(&r, 5);
    fill_uniform(&r, t.y->grad, cz_numel(t.y), -1, 1);
    cz_graph_backward(t.g);
    for (int64_t i = 0; i < numel; i++)
        dx_full[i] *= 2;
    CHECK_CLOSE("batch_norm2d dx accumulates", t.x->grad, dx_full, numel, 1e-5, 1e-2);
    free(dx_full);
    cz_graph_free(t.g);
}

/* One and two threads agree within rounding. */
static void check_threads(void)
{
    bn_case c = {.n = 4, .c = 6, .h = 13, .w = 11, .affine = true, .training = true,
                 .x_grad = true, .momentum = 0.1f, .eps = 1e-5f};
    int keep = omp_get_max_threads();
    bn_net t[2] = {{0}};
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        if (!build(&c, &t[k]))
            goto done;
        backward_seeded(&t[k]);
    }
    CHECK_CLOSE("batch_norm2d threads y", t[1].y->data, t[0].y->data, cz_numel(t[0].y), 1e-5, 1.0);
    CHECK_CLOSE("batch_norm2d threads dx", t[1].x->grad, t[0].x->grad, cz_numel(t[0].x), 1e-5, 1.0);
    CHECK_CLOSE("batch_norm2d threads dw", t[1].w->grad, t[0].w->grad, c.c, 1e-5, 1.0);
    CHECK_CLOSE("batch_norm2d threads db", t[1].b->grad, t[0].b->grad, c.c, 1e-5, 1.0);
    CHECK_CLOSE("batch_norm2d threads running_var", t[1].rvar->data, t[0].rvar->data, c.c, 1e-5, 1.0);
done:
    omp_set_num_threads(keep);
    cz_graph_free(t[0].g);
    cz_graph_free(t[1].g);
}

/* A builder error returns NULL and makes planning fail with the message. */
static void check_error(int n, int c, int h, int w, int stat_c, bool weight, bool bias,
                        bool training, float eps, const char *message)
{
    cz_graph_config cfg = {.training = training};
    cz_graph *g = cz_graph_create(&cfg);
    int64_t shape[1] = {stat_c};
    cz_tensor *x = cz_graph_input(g, "x", n, c, h, w, true);
    cz_tensor *wt = weight ? cz_graph_param(g, "weight", 1, shape, CZ_INIT_ONES, 0) : NULL;
    cz_tensor *bt = bias ? cz_graph_param(g, "bias", 1, shape, CZ_INIT_ZEROS, 0) : NULL;
    cz_tensor *rm = cz_graph_buffer(g, "running_mean", 1, shape, CZ_INIT_ZEROS);
    cz_tensor *rv = cz_graph_buffer(g, "running_var", 1, shape, CZ_INIT_ONES);
    CHECK(cz_batch_norm2d(g, x, wt, bt, rm, rv, 0.1f, eps) == NULL, "accepted: %s", message);
    CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail (%s)", message);
    CHECK(strstr(cz_last_error(), message) != NULL, "message: %s", cz_last_error());
    cz_graph_free(g);
}

int main(void)
{
    const bn_case cases[] = {
        {.n = 3, .c = 5, .h = 7, .w = 9, .affine = true, .training = true, .x_grad = true, .momentum = 0.1f, .eps = 1e-5f},
        {.n = 2, .c = 3, .h = 4, .w = 5, .affine = false, .training = true, .x_grad = true, .momentum = 0.01f, .eps = 1e-3f},
        /* Two values per channel: dx vanishes (up to eps), so only the
         * parameters are checked; the running variance doubles the batch's. */
        {.n = 1, .c = 4, .h = 1, .w = 2, .affine = true, .training = true, .x_grad = false, .momentum = 0.3f, .eps = 1e-5f},
        {.n = 3, .c = 2, .h = 1, .w = 1, .affine = true, .training = true, .x_grad = true, .momentum = 0.3f, .eps = 1e-5f},
        {.n = 5, .c = 17, .h = 3, .w = 3, .affine = true, .training = true, .x_grad = false, .momentum = 1.0f, .eps = 1e-3f},
        {.n = 2, .c = 16, .h = 8, .w = 8, .affine = true, .training = true, .x_grad = true, .momentum = 0.1f, .eps = 1e-5f},
        {.n = 3, .c = 5, .h = 7, .w = 9, .affine = true, .training = false, .momentum = 0.1f, .eps = 1e-5f},
        {.n = 2, .c = 3, .h = 5, .w = 4, .affine = false, .training = false, .momentum = 0.1f, .eps = 1e-3f},
        /* Frozen weight: running statistics even in a training graph. */
        {.n = 3, .c = 5, .h = 7, .w = 9, .affine = true, .training = true, .frozen = true, .x_grad = true, .momentum = 0.1f, .eps = 1e-3f},
        {.n = 1, .c = 3, .h = 1, .w = 1, .affine = true, .training = true, .frozen = true, .x_grad = true, .momentum = 0.1f, .eps = 1e-3f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_case(&cases[i]);
    check_runtime_frozen();
    check_threads();

    check_error(2, 3, 4, 4, 4, true, true, true, 1e-5f, "running_mean has 4 values");
    check_error(2, 3, 4, 4, 3, true, false, true, 1e-5f, "weight and bias");
    check_error(1, 3, 1, 1, 3, true, true, true, 1e-5f, "more than 1 value per channel");
    check_error(2, 3, 4, 4, 3, false, false, false, 0.0f, "bad momentum");
    return check_finish("test_norm");
}
