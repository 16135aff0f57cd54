/* Gradient checks against central finite differences.
 *
 * The checked function is f = sum(out * R) for a fixed random R, so any op can
 * be checked alone: backward is seeded with R, and each sampled element of a
 * checked tensor is nudged by +-eps to estimate df/dx numerically. The graph's
 * random state is restored before every forward so dropout masks stay fixed. */
#ifndef CZ_TESTS_GRADCHECK_H
#define CZ_TESTS_GRADCHECK_H

#include <string.h>

#include "check.h"
#include "engine/graph.h"

static inline void fill_uniform(cz_rng *rng, float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * cz_rng_uniform(rng);
}

static inline double gradcheck_f(cz_graph *g, const cz_tensor *out, const float *R,
                                 const cz_rng *saved)
{
    *cz_graph_rng(g) = *saved;
    cz_graph_params_changed(g);
    if (cz_graph_forward(g) != CZ_OK)
        return NAN;
    double f = 0;
    for (int64_t i = 0; i < cz_numel(out); i++)
        f += (double)out->data[i] * R[i];
    return f;
}

/* Checks d(sum(out * R))/dt for each of the n <= CZ_MAX_INPUTS tensors (inputs with
 * requires_grad or trainable parameters) at up to `samples` elements each.
 * Tolerance: |analytic - numeric| <= tol * (|numeric| + 1e-2 * scale), with
 * scale the largest numeric derivative seen for that tensor. */
static inline void gradcheck(const char *what, cz_graph *g, cz_tensor *out,
                             cz_tensor *const *ts, int n, int samples, double eps, double tol)
{
    cz_rng rng;
    cz_rng_seed(&rng, 1234);
    int64_t n_out = cz_numel(out);
    float *R = malloc((size_t)n_out * sizeof *R);
    fill_uniform(&rng, R, n_out, -1.0f, 1.0f);
    cz_rng saved = *cz_graph_rng(g);

    gradcheck_f(g, out, R, &saved);
    cz_graph_zero_grad(g);
    memcpy(out->grad, R, (size_t)n_out * sizeof *R);
    CHECK(cz_graph_backward(g) == CZ_OK, "%s: backward failed", what);

    /* Copy every analytic gradient first: the forwards below clear the
     * gradients of inputs. */
    float *analytics[CZ_MAX_INPUTS] = {0};
    for (int k = 0; k < n && k < CZ_MAX_INPUTS; k++) {
        analytics[k] = malloc((size_t)cz_numel(ts[k]) * sizeof(float));
        memcpy(analytics[k], ts[k]->grad, (size_t)cz_numel(ts[k]) * sizeof(float));
    }
    for (int k = 0; k < n && k < CZ_MAX_INPUTS; k++) {
        cz_tensor *t = ts[k];
        int64_t numel = cz_numel(t);
        float *analytic = analytics[k];
        int count = samples < numel ? samples : (int)numel;
        double *numeric = malloc((size_t)count * sizeof *numeric);
        int64_t *at = malloc((size_t)count * sizeof *at);
        double scale = 0;
        for (int s = 0; s < count; s++) {
            at[s] = count == numel ? s : (int64_t)cz_rng_below(&rng, (uint64_t)numel);
            float keep = t->data[at[s]];
            t->data[at[s]] = keep + (float)eps;
            double fp = gradcheck_f(g, out, R, &saved);
            t->data[at[s]] = keep - (float)eps;
            double fm = gradcheck_f(g, out, R, &saved);
            t->data[at[s]] = keep;
            numeric[s] = (fp - fm) / (2 * eps);
            if (fabs(numeric[s]) > scale)
                scale = fabs(numeric[s]);
        }
        int bad = 0;
        for (int s = 0; s < count; s++) {
            double a = analytic[at[s]], num = numeric[s];
            if (!(fabs(a - num) <= tol * (fabs(num) + 1e-2 * scale + 1e-6))) {
                if (bad++ < 3)
                    fprintf(stderr, "%s: d/d%s[%lld]: analytic %.6g, numeric %.6g\n", what,
                            t->name ? t->name : "input", (long long)at[s], a, num);
            }
        }
        CHECK(bad == 0, "%s: %d of %d gradient samples of tensor %d off", what, bad, count, k);
        free(analytic);
        free(numeric);
        free(at);
    }
    gradcheck_f(g, out, R, &saved);
    free(R);
}

/* Backward adds: a second backward with the same output gradient doubles
 * the input gradients of a one-op graph (up to rounding where one gradient
 * sums several terms). */
static inline void check_accumulates(const char *what, cz_graph *g, cz_tensor *y, cz_tensor *const *ts,
                              int n_ts)
{
    cz_rng rng;
    cz_rng_seed(&rng, 321);
    cz_graph_forward(g);
    fill_uniform(&rng, y->grad, cz_numel(y), -1, 1);
    cz_graph_backward(g);
    float *twice[CZ_MAX_INPUTS];
    for (int k = 0; k < n_ts; k++) {
        int64_t n = cz_numel(ts[k]);
        twice[k] = malloc((size_t)n * sizeof *twice[k]);
        for (int64_t i = 0; i < n; i++)
            twice[k][i] = 2.0f * ts[k]->grad[i];
    }
    cz_graph_backward(g);
    for (int k = 0; k < n_ts; k++) {
        CHECK_CLOSE(what, ts[k]->grad, twice[k], cz_numel(ts[k]), 1e-6, 1);
        free(twice[k]);
    }
}

#endif
