/* max_pool2d and global_avg_pool: forward against direct loops in double,
 * backward against the routing rule and against finite differences, training
 * and inference graphs, thread-count independence, and shape errors. */
#include <omp.h>

#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"

typedef struct {
    int n, c, h, w, kernel, stride, padding;
    float offset; /* added to every input: all-negative inputs show padding never wins */
} pool_case;

/* Distinct values spaced well beyond the finite-difference step, shuffled,
 * so no nudge changes which cell wins a window. */
static void fill_distinct(cz_rng *rng, float *x, int64_t n, float spacing, float offset)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = offset + spacing * (float)(i - n / 2);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)cz_rng_below(rng, (uint64_t)i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

/* PyTorch's max_pool2d: padded cells are -inf, the first maximum in scan
 * order wins; dx adds each output gradient at its winner. */
static void max_pool_reference(const pool_case *c, const float *x, const float *dy,
                               int oh, int ow, double *y, double *dx)
{
    for (int i = 0; i < c->n * c->c * c->h * c->w; i++)
        dx[i] = 0;
    for (int p = 0; p < c->n * c->c; p++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double best = -INFINITY;
                int at = -1;
                for (int ky = 0; ky < c->kernel; ky++)
                    for (int kx = 0; kx < c->kernel; kx++) {
                        int iy = oy * c->stride - c->padding + ky;
                        int ix = ox * c->stride - c->padding + kx;
                        if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
                            continue;
                        int i = (p * c->h + iy) * c->w + ix;
                        if (x[i] > best) {
                            best = x[i];
                            at = i;
                        }
                    }
                int o = (p * oh + oy) * ow + ox;
                y[o] = best;
                if (at >= 0 && dy)
                    dx[at] += dy[o];
            }
}

static cz_graph *new_graph(bool training)
{
    cz_graph_config cfg = {.training = training, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 7};
    return cz_graph_create(&cfg);
}

static void to_float(const double *a, float *f, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)a[i];
}

static void run_max_pool(const pool_case *c, bool training, bool x_grad)
{
    char what[160];
    snprintf(what, sizeof what, "max_pool2d %s n%d c%d %dx%d k%d s%d p%d%s%s",
             training ? "train" : "infer", c->n, c->c, c->h, c->w, c->kernel, c->stride,
             c->padding, x_grad ? " dx" : "", c->offset < 0 ? " negative" : "");
    cz_graph *g = new_graph(training);
    cz_tensor *x = cz_graph_input(g, "x", c->n, c->c, c->h, c->w, x_grad);
    cz_tensor *y = cz_max_pool2d(g, x, c->kernel, c->stride, c->padding);
    CHECK(cz_graph_plan(g) == CZ_OK, "%s: plan: %s", what, cz_last_error());
    if (cz_graph_status(g) != CZ_OK) {
        cz_graph_free(g);
        return;
    }
    int oh = (c->h + 2 * c->padding - c->kernel) / c->stride + 1;
    int ow = (c->w + 2 * c->padding - c->kernel) / c->stride + 1;
    CHECK(y->n == c->n && y->c == c->c && y->h == oh && y->w == ow, "%s: output %lldx%lld",
          what, (long long)y->h, (long long)y->w);
    cz_rng rng;
    cz_rng_seed(&rng, 99);
    int64_t nx = cz_numel(x), ny = cz_numel(y);
    fill_distinct(&rng, x->data, nx, 0.05f, c->offset);
    CHECK(cz_graph_forward(g) == CZ_OK, "%s: forward", what);

    double *ref = malloc(sizeof(double) * (size_t)ny), *dref = malloc(sizeof(double) * (size_t)nx);
    float *reff = malloc(sizeof(float) * (size_t)ny), *dreff = malloc(sizeof(float) * (size_t)nx);
    float *dy = malloc(sizeof(float) * (size_t)ny);
    fill_uniform(&rng, dy, ny, -1, 1);
    max_pool_reference(c, x->data, dy, oh, ow, ref, dref);
    to_float(ref, reff, ny);
    /* A maximum is a copy: exact. */
    CHECK(memcmp(y->data, reff, sizeof(float) * (size_t)ny) == 0, "%s: forward differs", what);

    if (training && x_grad) {
        /* Backward adds: two backward passes give twice the routed gradient. */
        for (int pass = 0; pass < 2; pass++) {
            memcpy(y->grad, dy, sizeof(float) * (size_t)ny);
            CHECK(cz_graph_backward(g) == CZ_OK, "%s: backward", what);
        }
        for (int64_t i = 0; i < nx; i++)
            dref[i] *= 2;
        to_float(dref, dreff, nx);
        CHECK_CLOSE(what, x->grad, dreff, nx, 1e-6, 1.0);
        cz_tensor *checked[1] = {x};
        gradcheck(what, g, y, checked, 1, 60, 1e-2, 1e-3);
    }
    free(ref);
    free(dref);
    free(reff);
    free(dreff);
    free(dy);
    cz_graph_free(g);
}

static void run_global_avg_pool(int n, int c, int h, int w)
{
    char what[120];
    snprintf(what, sizeof what, "global_avg_pool n%d c%d %dx%d", n, c, h, w);
    cz_graph *g = new_graph(true);
    cz_tensor *x = cz_graph_input(g, "x", n, c, h, w, true);
    cz_tensor *y = cz_global_avg_pool(g, x);
    CHECK(cz_graph_plan(g) == CZ_OK, "%s: plan: %s", what, cz_last_error());
    if (cz_graph_status(g) != CZ_OK) {
        cz_graph_free(g);
        return;
    }
    CHECK(y->n == n && y->c == c && y->h == 1 && y->w == 1, "%s: output shape", what);
    cz_rng rng;
    cz_rng_seed(&rng, 3);
    int64_t nx = cz_numel(x), hw = (int64_t)h * w;
    fill_uniform(&rng, x->data, nx, -1, 2);
    CHECK(cz_graph_forward(g) == CZ_OK, "%s: forward", what);
    float *ref = malloc(sizeof(float) * (size_t)(n * c));
    float *dref = malloc(sizeof(float) * (size_t)nx);
    for (int p = 0; p < n * c; p++) {
        double sum = 0;
        for (int64_t i = 0; i < hw; i++)
            sum += x->data[p * hw + i];
        ref[p] = (float)(sum / (double)hw);
    }
    CHECK_CLOSE(what, y->data, ref, n * c, 1e-6, 1e-3);

    fill_uniform(&rng, y->grad, n * c, -1, 1);
    for (int64_t i = 0; i < nx; i++)
        dref[i] = 0.5f + y->grad[i / hw] / (float)hw;
    for (int64_t i = 0; i < nx; i++)
        x->grad[i] = 0.5f; /* backward adds to what is there */
    CHECK(cz_graph_backward(g) == CZ_OK, "%s: backward", what);
    CHECK_CLOSE(what, x->grad, dref, nx, 1e-6, 1e-3);
    /* On large planes each derivative (1/HW) drowns in the float rounding
     * of the mean; the exact comparison above covers them. */
    cz_tensor *checked[1] = {x};
    if (hw <= 256)
        gradcheck(what, g, y, checked, 1, 40, 1e-2, 1e-3);
    free(ref);
    free(dref);
    cz_graph_free(g);
}

/* One and two threads: the same result. The average pool sums each plane in
 * a fixed order, so it is bit-identical; the max is a copy. */
static void check_threads(void)
{
    int keep = omp_get_max_threads();
    float *out[2][3] = {{NULL}};
    int64_t sizes[3] = {0};
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        cz_graph *g = new_graph(true);
        cz_tensor *x = cz_graph_input(g, "x", 4, 7, 33, 31, true);
        cz_tensor *m = cz_max_pool2d(g, x, 3, 2, 1);
        cz_tensor *a = cz_global_avg_pool(g, m);
        if (cz_graph_plan(g) == CZ_OK) {
            cz_rng rng;
            cz_rng_seed(&rng, 11);
            fill_distinct(&rng, x->data, cz_numel(x), 1e-3f, 0.0f);
            cz_graph_forward(g);
            fill_uniform(&rng, a->grad, cz_numel(a), -1, 1);
            CHECK(cz_graph_backward(g) == CZ_OK, "threads: backward");
            cz_tensor *ts[3] = {m, a, x};
            for (int i = 0; i < 3; i++) {
                sizes[i] = cz_numel(ts[i]);
                out[k][i] = malloc(sizeof(float) * (size_t)sizes[i]);
                memcpy(out[k][i], i == 2 ? x->grad : ts[i]->data, sizeof(float) * (size_t)sizes[i]);
            }
        }
        CHECK(cz_graph_status(g) == CZ_OK, "threads: %s", cz_last_error());
        cz_graph_free(g);
    }
    omp_set_num_threads(keep);
    const char *names[3] = {"max_pool2d", "global_avg_pool", "pooled dx"};
    for (int i = 0; i < 3; i++) {
        if (out[0][i] && out[1][i])
            CHECK(memcmp(out[0][i], out[1][i], sizeof(float) * (size_t)sizes[i]) == 0,
                  "%s differs between 1 and 2 threads", names[i]);
        free(out[0][i]);
        free(out[1][i]);
    }
}

static void check_error(int h, int w, int kernel, int stride, int padding, const char *message)
{
    cz_graph *g = new_graph(false);
    cz_tensor *x = cz_graph_input(g, "x", 1, 2, h, w, false);
    CHECK(cz_max_pool2d(g, x, kernel, stride, padding) == NULL, "accepted: %s", message);
    CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail (%s)", message);
    CHECK(strstr(cz_last_error(), message) != NULL, "message: %s", cz_last_error());
    cz_graph_free(g);
}

int main(void)
{
    const pool_case cases[] = {
        {.n = 3, .c = 5, .h = 7, .w = 9, .kernel = 3, .stride = 2, .padding = 1},
        {.n = 3, .c = 5, .h = 7, .w = 9, .kernel = 2, .stride = 2, .padding = 0},
        {.n = 2, .c = 3, .h = 8, .w = 10, .kernel = 3, .stride = 3, .padding = 0},
        {.n = 2, .c = 4, .h = 6, .w = 5, .kernel = 3, .stride = 1, .padding = 1},
        {.n = 1, .c = 3, .h = 5, .w = 5, .kernel = 5, .stride = 2, .padding = 2},
        {.n = 2, .c = 2, .h = 9, .w = 7, .kernel = 4, .stride = 2, .padding = 2},
        {.n = 2, .c = 3, .h = 4, .w = 3, .kernel = 1, .stride = 1, .padding = 0},
        {.n = 1, .c = 17, .h = 16, .w = 16, .kernel = 2, .stride = 2, .padding = 0},
        /* All inputs negative: a padded zero must never win. */
        {.n = 2, .c = 3, .h = 7, .w = 9, .kernel = 3, .stride = 2, .padding = 1, .offset = -100.0f},
        {.n = 1, .c = 2, .h = 5, .w = 6, .kernel = 5, .stride = 2, .padding = 2, .offset = -100.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_max_pool(&cases[i], true, true);
        run_max_pool(&cases[i], true, false);
        run_max_pool(&cases[i], false, false);
    }
    run_global_avg_pool(3, 5, 7, 9);
    run_global_avg_pool(2, 3, 1, 1);
    run_global_avg_pool(1, 17, 13, 4);
    run_global_avg_pool(2, 64, 32, 32);
    check_threads();

    check_error(8, 8, 3, 2, 2, "at most half");
    check_error(8, 8, 1, 1, 1, "at most half");
    check_error(2, 8, 5, 1, 1, "too small");
    check_error(8, 8, 0, 1, 0, "bad kernel");
    check_error(8, 8, 2, 0, 0, "bad kernel");
    return check_finish("test_pool");
}
