/* cat, add, dropout: forward against plain index loops, backward against
 * finite differences (a tensor repeated among the inputs included), dropout's
 * statistics, scaling, reproducibility and inference identity, thread-count
 * independence, build errors. */
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "check.h"
#include "gradcheck.h"
#include "io/half.h"
#include "ops/ops.h"

/* gradcheck() copies each tensor's analytic gradient after the finite
 * differences of the tensors before it, whose forwards clear the gradients of
 * graph inputs; one call per tensor keeps each comparison fresh. */
static void gradcheck_each(const char *what, cz_graph *g, cz_tensor *y, cz_tensor *const *ts,
                           int n, int samples)
{
    for (int k = 0; k < n; k++)
        gradcheck(what, g, y, &ts[k], 1, samples, 1e-2, 1e-3);
}

/* --- cat --- */

/* inputs[k] has channels[k] channels; which[k] says which of the distinct
 * tensors is the k-th input, so one tensor can appear more than once. */
typedef struct {
    int64_t n, h, w;
    int n_tensors;
    int64_t channels[CZ_MAX_INPUTS]; /* per distinct tensor */
    int n_in;
    int which[CZ_MAX_INPUTS];
} cat_case;

static void cat_run(const cat_case *c, uint64_t seed)
{
    char what[64];
    snprintf(what, sizeof what, "cat of %d (%d distinct) %lldx%lldx%lld", c->n_in, c->n_tensors,
             (long long)c->n, (long long)c->h, (long long)c->w);
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 2};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *ts[CZ_MAX_INPUTS], *in[CZ_MAX_INPUTS];
    for (int t = 0; t < c->n_tensors; t++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", t);
        ts[t] = cz_graph_input(g, name, c->n, c->channels[t], c->h, c->w, true);
    }
    int64_t C = 0;
    for (int k = 0; k < c->n_in; k++) {
        in[k] = ts[c->which[k]];
        C += c->channels[c->which[k]];
    }
    cz_tensor *y = cz_cat(g, in, c->n_in);
    CHECK(cz_graph_plan(g) == CZ_OK, "%s: plan: %s", what, cz_last_error());
    if (cz_graph_status(g) != CZ_OK) {
        cz_graph_free(g);
        return;
    }
    CHECK(y->n == c->n && y->c == C && y->h == c->h && y->w == c->w, "%s: output shape", what);
    cz_rng rng;
    cz_rng_seed(&rng, seed);
    for (int t = 0; t < c->n_tensors; t++)
        fill_uniform(&rng, ts[t]->data, cz_numel(ts[t]), -1, 1);
    CHECK(cz_graph_forward(g) == CZ_OK, "%s: forward", what);

    /* out[b, o, i, j] = in_k[b, o - off_k, i, j] for the k whose range holds o. */
    float *ref = malloc((size_t)cz_numel(y) * sizeof *ref);
    for (int64_t b = 0; b < c->n; b++)
        for (int64_t o = 0; o < C; o++) {
            int k = 0;
            int64_t off = 0;
            while (o >= off + in[k]->c)
                off += in[k++]->c;
            for (int64_t i = 0; i < c->h * c->w; i++)
                ref[(b * C + o) * c->h * c->w + i] =
                    in[k]->data[(b * in[k]->c + (o - off)) * c->h * c->w + i];
        }
    CHECK_CLOSE(what, y->data, ref, cz_numel(y), 0, 1);
    free(ref);

    gradcheck_each(what, g, y, ts, c->n_tensors, 40);
    check_accumulates(what, g, y, ts, c->n_tensors);
    cz_graph_free(g);
}

/* --- add --- */

static void add_run(const int64_t shape[4], bool same, uint64_t seed)
{
    char what[80];
    snprintf(what, sizeof what, "add%s [%lld, %lld, %lld, %lld]", same ? " (x + x)" : "",
             (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3]);
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 2};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *a = cz_graph_input(g, "a", shape[0], shape[1], shape[2], shape[3], true);
    cz_tensor *b = same ? a : cz_graph_input(g, "b", shape[0], shape[1], shape[2], shape[3], true);
    cz_tensor *y = cz_add(g, a, b);
    CHECK(cz_graph_plan(g) == CZ_OK, "%s: plan: %s", what, cz_last_error());
    if (cz_graph_status(g) != CZ_OK) {
        cz_graph_free(g);
        return;
    }
    cz_rng rng;
    cz_rng_seed(&rng, seed);
    int64_t n = cz_numel(a);
    fill_uniform(&rng, a->data, n, -1, 1);
    if (!same)
        fill_uniform(&rng, b->data, n, -1, 1);
    cz_graph_forward(g);
    float *ref = malloc((size_t)n * sizeof *ref);
    for (int64_t i = 0; i < n; i++)
        ref[i] = a->data[i] + b->data[i];
    CHECK_CLOSE(what, y->data, ref, n, 0, 1);
    free(ref);
    cz_tensor *checked[2] = {a, b};
    gradcheck_each(what, g, y, checked, same ? 1 : 2, 40);
    check_accumulates(what, g, y, checked, same ? 1 : 2);
    cz_graph_free(g);
}

/* --- dropout --- */

static cz_graph *dropout_graph(bool training, uint64_t seed, float p, const int64_t shape[4],
                               cz_tensor **xp, cz_tensor **yp)
{
    cz_graph_config cfg = {.training = training, .poison_unread_values = true, .seed = seed};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *x = *xp = cz_graph_input(g, "x", shape[0], shape[1], shape[2], shape[3], true);
    *yp = cz_dropout(g, x, p);
    CHECK(cz_graph_plan(g) == CZ_OK, "dropout plan: %s", cz_last_error());
    if (cz_graph_status(g) != CZ_OK) {
        cz_graph_free(g);
        return NULL;
    }
    /* Inputs away from zero, so a zero output can only be a dropped one. */
    cz_rng rng;
    cz_rng_seed(&rng, 77);
    for (int64_t i = 0; i < cz_numel(x); i++)
        x->data[i] = 0.5f + cz_rng_uniform(&rng);
    return g;
}

static void dropout_statistics(float p)
{
    const int64_t shape[4] = {2, 8, 37, 41}; /* 24272 elements */
    char what[48];
    snprintf(what, sizeof what, "dropout p=%g", (double)p);
    cz_tensor *x, *y;
    cz_graph *g = dropout_graph(true, 21, p, shape, &x, &y);
    if (!g)
        return;
    cz_graph_forward(g);
    int64_t n = cz_numel(x), zeros = 0, bad_scale = 0;
    double scale = 1.0 / (1.0 - p);
    for (int64_t i = 0; i < n; i++) {
        if (y->data[i] == 0.0f)
            zeros++;
        else if (fabs(y->data[i] - x->data[i] * scale) > 1e-6 * fabs(x->data[i] * scale))
            bad_scale++;
    }
    /* Five binomial standard deviations. */
    double frac = (double)zeros / (double)n, sd = sqrt(p * (1 - p) / (double)n);
    CHECK(fabs(frac - p) <= 5 * sd + 1e-9, "%s: %.4f of outputs zero", what, frac);
    CHECK(bad_scale == 0, "%s: %lld kept values not scaled by 1/(1-p)", what, (long long)bad_scale);

    /* Backward passes the same mask and scale. */
    cz_tensor_seed(y, 1.0f);
    cz_graph_backward(g);
    int64_t mismatched = 0;
    for (int64_t i = 0; i < n; i++) {
        double expect = y->data[i] == 0.0f ? 0.0 : scale;
        mismatched += fabs(x->grad[i] - expect) > 1e-6 * scale;
    }
    CHECK(mismatched == 0, "%s: %lld gradients disagree with the mask", what, (long long)mismatched);

    /* The next forward draws a fresh mask. */
    float *first = malloc((size_t)n * sizeof *first);
    memcpy(first, y->data, (size_t)n * sizeof *first);
    cz_graph_forward(g);
    if (p > 0)
        CHECK(memcmp(first, y->data, (size_t)n * sizeof *first) != 0, "%s: mask repeated", what);
    free(first);
    cz_graph_free(g);
}

/* The same seed gives the same mask whatever the thread count; another seed
 * gives another. */
static void dropout_reproducible(void)
{
    const int64_t shape[4] = {3, 4, 19, 23};
    const float p = 0.5f;
    float *out[3];
    int64_t n = 0;
    const uint64_t seeds[3] = {9, 9, 10};
    const int threads[3] = {1, 6, 6};
    int saved = omp_get_max_threads();
    for (int r = 0; r < 3; r++) {
        cz_tensor *x, *y;
        out[r] = NULL;
        cz_graph *g = dropout_graph(true, seeds[r], p, shape, &x, &y);
        if (!g)
            continue;
        omp_set_num_threads(threads[r]);
        cz_graph_forward(g);
        n = cz_numel(y);
        out[r] = malloc((size_t)n * sizeof(float));
        memcpy(out[r], y->data, (size_t)n * sizeof(float));
        cz_graph_free(g);
    }
    omp_set_num_threads(saved);
    if (out[0] && out[1] && out[2]) {
        CHECK(memcmp(out[0], out[1], (size_t)n * sizeof(float)) == 0,
              "dropout: same seed, other thread count, other mask");
        CHECK(memcmp(out[0], out[2], (size_t)n * sizeof(float)) != 0,
              "dropout: another seed gave the same mask");
    }
    for (int r = 0; r < 3; r++)
        free(out[r]);
}

/* Inference graphs, and p = 0 in training, give x itself back. */
static void dropout_identity(void)
{
    const int64_t shape[4] = {2, 3, 5, 7};
    const struct {
        bool training;
        float p;
    } cases[] = {{false, 0.5f}, {false, 0.0f}, {true, 0.0f}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cz_tensor *x, *y;
        cz_graph *g = dropout_graph(cases[i].training, 1, cases[i].p, shape, &x, &y);
        if (!g)
            continue;
        CHECK(y == x, "dropout %s p=%g made a node", cases[i].training ? "training" : "inference",
              (double)cases[i].p);
        cz_rng before = *cz_graph_rng(g);
        cz_graph_forward(g);
        CHECK(memcmp(x->data, y->data, (size_t)cz_numel(x) * sizeof(float)) == 0,
              "dropout %s p=%g is not the identity", cases[i].training ? "training" : "inference",
              (double)cases[i].p);
        CHECK(memcmp(&before, cz_graph_rng(g), sizeof before) == 0,
              "dropout %s p=%g drew random numbers",
              cases[i].training ? "training" : "inference", (double)cases[i].p);
        cz_graph_free(g);
    }
}

static void dropout_gradcheck(void)
{
    const int64_t shape[4] = {2, 3, 4, 5};
    cz_tensor *x, *y;
    cz_graph *g = dropout_graph(true, 31, 0.4f, shape, &x, &y);
    if (!g)
        return;
    gradcheck("dropout p=0.4", g, y, &x, 1, 120, 1e-2, 1e-3);
    check_accumulates("dropout p=0.4", g, y, &x, 1);
    cz_graph_free(g);
}

/* A bf16 training graph stores dropout's input and output as bf16 values
 * between two convolutions: each output is 0 or the input times 1/(1-p),
 * rounded to bf16, and the input's gradient is the output's through the
 * same mask and scale. */
static void dropout_bf16(void)
{
    cz_graph_config cfg = {.training = true, .precision = CZ_BF16, .seed = 6};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "x", 2, 3, 6, 5, false);
    int64_t w1[4] = {16, 3, 3, 3}, w2[4] = {2, 16, 3, 3};
    cz_tensor *h = cz_conv2d(g, x, cz_graph_param(g, "w1", 4, w1, CZ_INIT_NORMAL, 0.3f), NULL, 1, 1, 1);
    cz_tensor *d = cz_dropout(g, h, 0.3f);
    cz_tensor *y = cz_conv2d(g, d, cz_graph_param(g, "w2", 4, w2, CZ_INIT_NORMAL, 0.3f), NULL, 1, 1, 1);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    if (cz_graph_status(g) != CZ_OK) {
        cz_graph_free(g);
        return;
    }
    CHECK(h->layout == CZ_LAYOUT_NHWC_BF16 && d->layout == CZ_LAYOUT_NHWC_BF16,
          "bf16 dropout: values are not bf16 channels-last");
    cz_rng rng;
    cz_rng_seed(&rng, 7);
    fill_uniform(&rng, x->data, cz_numel(x), -1, 1);
    CHECK(cz_graph_forward(g) == CZ_OK, "bf16 dropout: forward: %s", cz_last_error());
    fill_uniform(&rng, y->grad, cz_numel(y), -1, 1);
    CHECK(cz_graph_backward(g) == CZ_OK, "bf16 dropout: backward: %s", cz_last_error());
    const uint16_t *hv = (const uint16_t *)h->data, *dv = (const uint16_t *)d->data;
    int64_t n = cz_numel(d), kept = 0, wrong = 0;
    for (int64_t i = 0; i < n; i++) {
        float in = cz_bf16_to_f32(hv[i]), out = cz_bf16_to_f32(dv[i]);
        bool dropped = out == 0.0f && in != 0.0f;
        kept += !dropped;
        float expect = dropped ? 0.0f : cz_bf16_to_f32(cz_f32_to_bf16(in / 0.7f));
        float grad = dropped ? 0.0f : d->grad[i] / 0.7f;
        wrong += out != expect || fabsf(h->grad[i] - grad) > 1e-6f * (1.0f + fabsf(grad));
    }
    CHECK(wrong == 0 && kept > n / 2 && kept < n, "bf16 dropout: %lld of %lld wrong, %lld kept",
          (long long)wrong, (long long)n, (long long)kept);
    cz_graph_free(g);
}

/* --- thread-count independence of cat and add --- */

static void thread_case(void)
{
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 4};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *a = cz_graph_input(g, "a", 2, 5, 17, 19, true);
    cz_tensor *b = cz_graph_input(g, "b", 2, 3, 17, 19, true);
    cz_tensor *ab[3] = {a, b, a};
    cz_tensor *c = cz_cat(g, ab, 3);
    cz_tensor *y = cz_add(g, c, c);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    if (cz_graph_status(g) != CZ_OK) {
        cz_graph_free(g);
        return;
    }
    cz_rng rng;
    cz_rng_seed(&rng, 12);
    fill_uniform(&rng, a->data, cz_numel(a), -1, 1);
    fill_uniform(&rng, b->data, cz_numel(b), -1, 1);
    size_t ny = (size_t)cz_numel(y), na = (size_t)cz_numel(a), nb = (size_t)cz_numel(b);
    float *out[2], *ga[2], *gb[2];
    const int threads[2] = {1, 5};
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(threads[r]);
        cz_graph_forward(g);
        cz_rng_seed(&rng, 13);
        fill_uniform(&rng, y->grad, (int64_t)ny, -1, 1);
        cz_graph_backward(g);
        out[r] = malloc(ny * sizeof(float));
        ga[r] = malloc(na * sizeof(float));
        gb[r] = malloc(nb * sizeof(float));
        memcpy(out[r], y->data, ny * sizeof(float));
        memcpy(ga[r], a->grad, na * sizeof(float));
        memcpy(gb[r], b->grad, nb * sizeof(float));
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(out[0], out[1], ny * sizeof(float)) == 0, "cat/add forward depends on threads");
    CHECK(memcmp(ga[0], ga[1], na * sizeof(float)) == 0 && memcmp(gb[0], gb[1], nb * sizeof(float)) == 0,
          "cat/add backward depends on threads");
    /* y = 2 cat(a, b, a): a's gradient is 2 (dy[a slice 1] + dy[a slice 2]). */
    int64_t HW = 17 * 19, C = c->c, worst = 0;
    double err = 0;
    for (int64_t bi = 0; bi < 2; bi++)
        for (int64_t ch = 0; ch < 5; ch++)
            for (int64_t i = 0; i < HW; i++) {
                double expect = 2.0 * ((double)y->grad[(bi * C + ch) * HW + i] +
                                       (double)y->grad[(bi * C + 8 + ch) * HW + i]);
                double e = fabs(a->grad[(bi * 5 + ch) * HW + i] - expect);
                if (e > err) {
                    err = e;
                    worst = (bi * 5 + ch) * HW + i;
                }
            }
    CHECK(err <= 1e-6, "cat(a, b, a) + itself: d/da off by %g at [%lld]", err, (long long)worst);
    for (int r = 0; r < 2; r++) {
        free(out[r]);
        free(ga[r]);
        free(gb[r]);
    }
    cz_graph_free(g);
}

/* --- build errors --- */

static void expect_error(cz_graph *g, cz_tensor *result, const char *what, const char *message)
{
    CHECK(result == NULL, "%s accepted", what);
    CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "%s: plan after a build error must fail", what);
    CHECK(strstr(cz_last_error(), message) != NULL, "%s: message: %s", what, cz_last_error());
    cz_graph_free(g);
}

static void error_case(void)
{
    cz_graph_config cfg = {.training = true};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *xs[CZ_MAX_INPUTS + 1];
    xs[0] = cz_graph_input(g, "a", 2, 3, 4, 5, false);
    xs[1] = cz_graph_input(g, "b", 2, 3, 4, 6, false);
    expect_error(g, cz_cat(g, xs, 2), "cat with mismatched W", "must match");

    g = cz_graph_create(&cfg);
    xs[0] = cz_graph_input(g, "a", 2, 3, 4, 5, false);
    xs[1] = cz_graph_input(g, "b", 1, 3, 4, 5, false);
    expect_error(g, cz_cat(g, xs, 2), "cat with mismatched N", "must match");

    g = cz_graph_create(&cfg);
    xs[0] = cz_graph_input(g, "a", 2, 3, 4, 5, false);
    expect_error(g, cz_cat(g, xs, 0), "cat of nothing", "inputs");

    g = cz_graph_create(&cfg);
    for (int k = 0; k <= CZ_MAX_INPUTS; k++)
        xs[k] = cz_graph_input(g, NULL, 1, 1, 2, 2, false);
    expect_error(g, cz_cat(g, xs, CZ_MAX_INPUTS + 1), "cat of too many", "inputs");

    g = cz_graph_create(&cfg);
    xs[0] = cz_graph_input(g, "a", 2, 3, 4, 5, false);
    xs[1] = NULL;
    expect_error(g, cz_cat(g, xs, 2), "cat with a missing input", "missing");

    g = cz_graph_create(&cfg);
    xs[0] = cz_graph_input(g, "a", 2, 3, 4, 5, false);
    xs[1] = cz_graph_input(g, "b", 2, 4, 4, 5, false);
    expect_error(g, cz_add(g, xs[0], xs[1]), "add of different shapes", "differ");

    g = cz_graph_create(&cfg);
    expect_error(g, cz_add(g, NULL, NULL), "add of missing inputs", "missing");

    const float bad_p[] = {1.0f, -0.1f, 1.5f, NAN};
    for (size_t i = 0; i < sizeof bad_p / sizeof *bad_p; i++) {
        g = cz_graph_create(&cfg);
        xs[0] = cz_graph_input(g, "a", 2, 3, 4, 5, false);
        char what[48];
        snprintf(what, sizeof what, "dropout p=%g", (double)bad_p[i]);
        expect_error(g, cz_dropout(g, xs[0], bad_p[i]), what, "probability");
    }
}

int main(void)
{
    const cat_case cats[] = {
        {.n = 2, .h = 5, .w = 7, .n_tensors = 2, .channels = {3, 2}, .n_in = 2, .which = {0, 1}},
        {.n = 1, .h = 1, .w = 1, .n_tensors = 3, .channels = {1, 4, 2}, .n_in = 3, .which = {0, 1, 2}},
        {.n = 3, .h = 4, .w = 3, .n_tensors = 2, .channels = {2, 1}, .n_in = 3, .which = {0, 1, 0}},
        {.n = 2, .h = 3, .w = 3, .n_tensors = 1, .channels = {2}, .n_in = 1, .which = {0}},
        {.n = 1, .h = 3, .w = 5, .n_tensors = 4, .channels = {1, 2, 3, 1}, .n_in = CZ_MAX_INPUTS,
         .which = {0, 1, 2, 3, 3, 2, 1, 0}},
    };
    uint64_t seed = 500;
    for (size_t i = 0; i < sizeof cats / sizeof *cats; i++)
        cat_run(&cats[i], seed++);

    const int64_t add_shapes[][4] = {{2, 3, 5, 7}, {1, 1, 1, 1}, {3, 2, 9, 4}};
    for (size_t i = 0; i < sizeof add_shapes / sizeof *add_shapes; i++) {
        add_run(add_shapes[i], false, seed++);
        add_run(add_shapes[i], true, seed++);
    }

    const float ps[] = {0.5f, 0.1f, 0.3f, 0.9f, 0.0f};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        dropout_statistics(ps[i]);
    dropout_reproducible();
    dropout_identity();
    dropout_gradcheck();
    if (bf16_runs())
        dropout_bf16();
    thread_case();
    error_case();
    return check_finish("test_combine");
}
