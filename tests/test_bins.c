/* Colour as a distribution over a*b* bins: the bins (image/lab.h) cover every
 * sRGB colour and nothing far outside; ab_bins_decode and
 * ab_bins_cross_entropy (ops/bins.c) against direct evaluations of their
 * formulas in double, backward against finite differences, the same bits
 * for any thread count, and bad shapes refused. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h" /* fill_uniform */
#include "image/lab.h"
#include "ops/ops.h"

static float centres[CZ_AB_BINS_MAX][2];
static int Q;

static double nearest_bin_distance(double a, double b, int *which)
{
    double best = INFINITY;
    for (int q = 0; q < Q; q++) {
        double d = hypot(centres[q][0] - a, centres[q][1] - b);
        if (d < best) {
            best = d;
            if (which)
                *which = q;
        }
    }
    return best;
}

static void test_bins_cover_the_gamut(void)
{
    Q = cz_ab_bins(centres);
    CHECK(Q == 261, "%d bins, expected 261", Q);
    CHECK(cz_ab_bins(NULL) == Q, "counting without centres gives another number");
    bool gray = false;
    for (int q = 0; q < Q; q++) {
        CHECK(fmodf(centres[q][0], 10.0f) == 0.0f && fmodf(centres[q][1], 10.0f) == 0.0f &&
                  fabsf(centres[q][0]) <= 110.0f && fabsf(centres[q][1]) <= 110.0f,
              "bin %d at (%g, %g) is off the grid", q, centres[q][0], centres[q][1]);
        gray |= centres[q][0] == 0.0f && centres[q][1] == 0.0f;
    }
    CHECK(gray, "no bin for gray");
    /* Every sRGB colour lies in some bin's cell: within half a diagonal of
     * its centre. */
    enum { STEPS = 33 };
    float rgb[STEPS * STEPS * STEPS * 3], lab[STEPS * STEPS * STEPS * 3];
    int n = 0;
    for (int r = 0; r < STEPS; r++)
        for (int g = 0; g < STEPS; g++)
            for (int b = 0; b < STEPS; b++, n++) {
                rgb[3 * n] = r / (float)(STEPS - 1);
                rgb[3 * n + 1] = g / (float)(STEPS - 1);
                rgb[3 * n + 2] = b / (float)(STEPS - 1);
            }
    cz_srgb_to_lab(rgb, lab, (size_t)n);
    double worst = 0;
    bool *used = calloc((size_t)Q, sizeof *used);
    for (int i = 0; i < n; i++) {
        int q = 0;
        double d = nearest_bin_distance(lab[3 * i + 1], lab[3 * i + 2], &q);
        worst = d > worst ? d : worst;
        used[q] = true;
    }
    CHECK(worst <= 5.0 * sqrt(2.0) + 1e-3, "an sRGB colour is %.2f from every bin", worst);
    /* And no bin far from every sRGB colour (the grid only samples them). */
    int unused = 0;
    for (int q = 0; q < Q; q++)
        unused += !used[q];
    CHECK(unused < Q / 5, "%d of %d bins hold none of %d sRGB colours", unused, Q, n);
    free(used);
}

/* softmax(k z) over one pixel's Q values, in double. */
static void softmax_ref(const float *z, int64_t stride, double k, double *p)
{
    double top = -INFINITY, sum = 0;
    for (int q = 0; q < Q; q++)
        top = fmax(top, k * z[q * stride]);
    for (int q = 0; q < Q; q++)
        sum += p[q] = exp(k * z[q * stride] - top);
    for (int q = 0; q < Q; q++)
        p[q] /= sum;
}

static void test_decode(void)
{
    const int N = 2, H = 3, W = 4;
    cz_rng rng;
    cz_rng_seed(&rng, 7);
    for (int pass = 0; pass < 2; pass++) {
        float t = pass == 0 ? 1.0f : 0.38f;
        cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 3};
        cz_graph *g = cz_graph_create(&cfg);
        cz_tensor *z = cz_graph_input(g, "z", N, Q, H, W, true);
        cz_tensor *y = cz_ab_bins_decode(g, z, t);
        CHECK(cz_graph_plan(g) == CZ_OK, "decode plan: %s", cz_last_error());
        CHECK(y->n == N && y->c == 2 && y->h == H && y->w == W, "decode output shape");
        fill_uniform(&rng, z->data, cz_numel(z), -0.3f, 0.3f);
        CHECK(cz_graph_forward(g) == CZ_OK, "decode forward");
        double p[CZ_AB_BINS_MAX], worst = 0;
        int64_t plane = H * W;
        for (int b = 0; b < N; b++)
            for (int k = 0; k < plane; k++) {
                softmax_ref(z->data + b * Q * plane + k, plane, CZ_AB_BINS_GAIN / t, p);
                double a = 0, bb = 0;
                for (int q = 0; q < Q; q++) {
                    a += p[q] * centres[q][0] / 110.0;
                    bb += p[q] * centres[q][1] / 110.0;
                }
                worst = fmax(worst, fabs(a - y->data[b * 2 * plane + k]));
                worst = fmax(worst, fabs(bb - y->data[b * 2 * plane + plane + k]));
            }
        CHECK(worst < 1e-5, "decode at t = %g is %.2g off the formula", t, worst);

        /* Backward against central differences of the formula in double
         * (float's would drown the small derivatives of 261 bins). */
        float *R = malloc((size_t)cz_numel(y) * sizeof *R);
        fill_uniform(&rng, R, cz_numel(y), -1.0f, 1.0f);
        cz_graph_zero_grad(g);
        memcpy(y->grad, R, (size_t)cz_numel(y) * sizeof *R);
        CHECK(cz_graph_backward(g) == CZ_OK, "decode backward");
        int bad = 0;
        for (int s = 0; s < 64; s++) {
            int64_t at = (int64_t)cz_rng_below(&rng, (uint64_t)cz_numel(z));
            int64_t b = at / (Q * plane), k = at % plane;
            float keep = z->data[at];
            double f[2];
            for (int side = 0; side < 2; side++) {
                z->data[at] = keep + (side ? -1e-3f : 1e-3f);
                softmax_ref(z->data + b * Q * plane + k, plane, CZ_AB_BINS_GAIN / t, p);
                double a = 0, bb = 0;
                for (int q = 0; q < Q; q++) {
                    a += p[q] * centres[q][0] / 110.0;
                    bb += p[q] * centres[q][1] / 110.0;
                }
                f[side] = a * R[b * 2 * plane + k] + bb * R[b * 2 * plane + plane + k];
            }
            z->data[at] = keep;
            double numeric = (f[0] - f[1]) / ((double)(keep + 1e-3f) - (double)(keep - 1e-3f));
            bad += !(fabs(z->grad[at] - numeric) <= 1e-3 * fabs(numeric) + 1e-7);
        }
        CHECK(bad == 0, "decode at t = %g: %d of 64 derivatives off", t, bad);
        free(R);
        cz_graph_free(g);
    }
    /* One bin far ahead: its centre exactly (the output's units, / 110). */
    cz_graph_config cfg = {.seed = 3};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *z = cz_graph_input(g, "z", 1, Q, 1, 1, false);
    cz_tensor *y = cz_ab_bins_decode(g, z, 0.38f);
    CHECK(cz_graph_plan(g) == CZ_OK, "decode plan: %s", cz_last_error());
    memset(z->data, 0, (size_t)Q * sizeof(float));
    z->data[Q / 3] = 5.0f;
    CHECK(cz_graph_forward(g) == CZ_OK, "decode forward");
    CHECK(fabsf(y->data[0] * 110.0f - centres[Q / 3][0]) < 1e-3f &&
              fabsf(y->data[1] * 110.0f - centres[Q / 3][1]) < 1e-3f,
          "a certain pixel decodes to (%g, %g), not its bin (%g, %g)", y->data[0] * 110.0f,
          y->data[1] * 110.0f, centres[Q / 3][0], centres[Q / 3][1]);
    cz_graph_free(g);
}

/* The cross-entropy's formula, in double, with its own soft targets: the
 * block's mean colour, its 5 nearest bins by a full sort, Gaussian weights
 * of sigma 5. */
static double cross_entropy_ref(const cz_tensor *z, const cz_tensor *ab)
{
    int64_t h = z->h, w = z->w, plane = h * w, f = ab->h / h, big = ab->h * ab->w;
    double total = 0, p[CZ_AB_BINS_MAX];
    for (int64_t b = 0; b < z->n; b++)
        for (int64_t k = 0; k < plane; k++) {
            double a = 0, bb = 0;
            for (int64_t dy = 0; dy < f; dy++)
                for (int64_t dx = 0; dx < f; dx++) {
                    int64_t at = b * 2 * big + ((k / w) * f + dy) * ab->w + (k % w) * f + dx;
                    a += ab->data[at] * 110.0;
                    bb += ab->data[at + big] * 110.0;
                }
            a /= (double)(f * f);
            bb /= (double)(f * f);
            double d[CZ_AB_BINS_MAX];
            int order[CZ_AB_BINS_MAX];
            for (int q = 0; q < Q; q++) {
                d[q] = (centres[q][0] - a) * (centres[q][0] - a) + (centres[q][1] - bb) * (centres[q][1] - bb);
                order[q] = q;
            }
            for (int i = 0; i < 5; i++)
                for (int j = i + 1; j < Q; j++)
                    if (d[order[j]] < d[order[i]]) {
                        int s = order[i];
                        order[i] = order[j];
                        order[j] = s;
                    }
            double weight[5], sum = 0;
            for (int i = 0; i < 5; i++)
                sum += weight[i] = exp(-d[order[i]] / 50.0);
            softmax_ref(z->data + b * Q * plane + k, plane, CZ_AB_BINS_GAIN, p);
            for (int i = 0; i < 5; i++)
                total -= weight[i] / sum * log(p[order[i]]);
        }
    return total / (double)(z->n * plane);
}

static void test_cross_entropy(void)
{
    cz_rng rng;
    cz_rng_seed(&rng, 11);
    const int N = 2, h = 2, w = 3, f = 4;
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 3};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *z = cz_graph_input(g, "z", N, Q, h, w, true);
    cz_tensor *ab = cz_graph_input(g, "ab", N, 2, h * f, w * f, false);
    cz_tensor *loss = cz_ab_bins_cross_entropy(g, z, ab);
    CHECK(cz_graph_plan(g) == CZ_OK, "cross-entropy plan: %s", cz_last_error());
    fill_uniform(&rng, z->data, cz_numel(z), -0.3f, 0.3f);
    fill_uniform(&rng, ab->data, cz_numel(ab), -0.6f, 0.6f);
    CHECK(cz_graph_forward(g) == CZ_OK, "cross-entropy forward");
    double expect = cross_entropy_ref(z, ab);
    CHECK(fabs(loss->data[0] - expect) < 1e-5 * expect, "cross-entropy %.7g, formula %.7g",
          loss->data[0], expect);
    cz_graph_zero_grad(g);
    loss->grad[0] = 1.0f;
    CHECK(cz_graph_backward(g) == CZ_OK, "cross-entropy backward");
    int bad = 0;
    for (int s = 0; s < 64; s++) {
        int64_t at = (int64_t)cz_rng_below(&rng, (uint64_t)cz_numel(z));
        float keep = z->data[at];
        z->data[at] = keep + 1e-3f;
        double up = cross_entropy_ref(z, ab);
        z->data[at] = keep - 1e-3f;
        double down = cross_entropy_ref(z, ab);
        z->data[at] = keep;
        double numeric = (up - down) / ((double)(keep + 1e-3f) - (double)(keep - 1e-3f));
        bad += !(fabs(z->grad[at] - numeric) <= 1e-3 * fabs(numeric) + 1e-7);
    }
    CHECK(bad == 0, "cross-entropy: %d of 64 derivatives off", bad);

    /* Logits that put each pixel's mass on its target bins score lower
     * than uniform ones (ln Q), and the same bits at any thread count. */
    float first = loss->data[0];
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        CHECK(cz_graph_forward(g) == CZ_OK, "cross-entropy forward");
        CHECK(memcmp(&first, loss->data, sizeof first) == 0,
              "cross-entropy differs with %d threads", threads);
    }
    memset(z->data, 0, (size_t)cz_numel(z) * sizeof(float));
    CHECK(cz_graph_forward(g) == CZ_OK, "cross-entropy forward");
    CHECK(fabsf(loss->data[0] - logf((float)Q)) < 1e-4f, "uniform logits score %g, not ln %d", loss->data[0], Q);
    cz_graph_free(g);
}

static void test_bad_shapes(void)
{
    cz_graph_config cfg = {.training = true, .seed = 3};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *z = cz_graph_input(g, "z", 1, Q - 1, 2, 2, true);
    CHECK(cz_ab_bins_decode(g, z, 1.0f) == NULL, "decode took %d channels", Q - 1);
    CHECK(cz_graph_plan(g) != CZ_OK && strstr(cz_last_error(), "bin") != NULL,
          "unclear message: %s", cz_last_error());
    cz_graph_free(g);
    g = cz_graph_create(&cfg);
    z = cz_graph_input(g, "z", 1, Q, 2, 2, true);
    cz_tensor *ab = cz_graph_input(g, "ab", 1, 2, 6, 7, false);
    CHECK(cz_ab_bins_cross_entropy(g, z, ab) == NULL, "cross-entropy took 6x7 colours for 2x2 logits");
    cz_graph_free(g);
    g = cz_graph_create(&cfg);
    z = cz_graph_input(g, "z", 1, Q, 2, 2, true);
    CHECK(cz_ab_bins_decode(g, z, 0.0f) == NULL, "decode took temperature 0");
    CHECK(cz_graph_plan(g) != CZ_OK && strstr(cz_last_error(), "temperature") != NULL,
          "unclear message: %s", cz_last_error());
    cz_graph_free(g);
}

int main(void)
{
    test_bins_cover_the_gamut();
    test_decode();
    test_cross_entropy();
    test_bad_shapes();
    return check_finish("test_bins");
}
