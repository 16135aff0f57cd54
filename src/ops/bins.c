/* A distribution over a*b* bins (image/lab.h, cz_ab_bins) per pixel, as
 * Zhang, Isola & Efros (2016) predict colour: its mean as a colour
 * (cz_ab_bins_decode) and its cross-entropy against a photo's colours
 * (cz_ab_bins_cross_entropy). Both read logits [N, Q, h, w], Q the number
 * of bins, plain NCHW: per pixel the Q values lie h * w apart. */
#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "image/lab.h"
#include "ops/ops.h"

/* a*b* units per unit of the generators' output (models/model.h). */
#define AB_SCALE 110.0f
/* Target spread of a photo's colour over its nearest bins (the paper's
 * soft encoding: 5 neighbours, Gaussian of sigma 5 a*b* units). */
#define NEIGHBOURS 5
#define SIGMA 5.0f

typedef struct {
    int n_bins;
    float centres[CZ_AB_BINS_MAX][2]; /* in output units: a*b* / 110 */
    float k;                          /* softmax(k z): the gain over the temperature */
    /* cross-entropy: each cell's target bins and weights, from forward */
    int *target_bin;
    float *target_weight;
    double *cell_loss;
} bins_state;

static void bins_destroy(void *p)
{
    bins_state *s = p;
    if (!s)
        return;
    free(s->target_bin);
    free(s->target_weight);
    free(s->cell_loss);
    free(s);
}

static bins_state *bins_state_new(void)
{
    bins_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n_bins = cz_ab_bins(s->centres);
    for (int q = 0; q < s->n_bins; q++) {
        s->centres[q][0] /= AB_SCALE;
        s->centres[q][1] /= AB_SCALE;
    }
    return s;
}

/* Where pixel i (counted over N h w) has its first value in an NCHW tensor
 * of c channels, plane = h w values apart. */
static int64_t pixel_at(int64_t i, int64_t c, int64_t plane)
{
    return i / plane * c * plane + i % plane;
}

/* p = softmax(k z) over one pixel's Q values of z (stride apart); returns
 * log sum exp(k z), for the cross-entropy. */
static double softmax(const float *z, int64_t stride, int Q, float k, float *p)
{
    float top = -INFINITY;
    for (int q = 0; q < Q; q++)
        top = fmaxf(top, k * z[q * stride]);
    double sum = 0.0;
    for (int q = 0; q < Q; q++) {
        p[q] = expf(k * z[q * stride] - top);
        sum += p[q];
    }
    for (int q = 0; q < Q; q++)
        p[q] = (float)(p[q] / sum);
    return top + log(sum);
}

/* --- decode: y = sum_q softmax(k z)_q * centre_q, k = gain / temperature --- */

static void decode_forward(cz_graph *g, cz_node *node)
{
    (void)g;
    const bins_state *s = node->state;
    const cz_tensor *zt = node->in[0];
    int Q = s->n_bins;
    int64_t plane = zt->h * zt->w, cells = zt->n * plane;
#pragma omp parallel
    {
        float p[CZ_AB_BINS_MAX];
#pragma omp for schedule(static)
        for (int64_t i = 0; i < cells; i++) {
            softmax(zt->data + pixel_at(i, Q, plane), plane, Q, s->k, p);
            float a = 0.0f, bb = 0.0f;
            for (int q = 0; q < Q; q++) {
                a += p[q] * s->centres[q][0];
                bb += p[q] * s->centres[q][1];
            }
            float *y = node->out->data + pixel_at(i, 2, plane);
            y[0] = a;
            y[plane] = bb;
        }
    }
}

/* dz_q = k p_q (c_q - y) . dy */
static void decode_backward(cz_graph *g, cz_node *node)
{
    (void)g;
    const bins_state *s = node->state;
    cz_tensor *zt = node->in[0];
    if (!zt->needs_grad)
        return;
    int Q = s->n_bins;
    int64_t plane = zt->h * zt->w, cells = zt->n * plane;
#pragma omp parallel
    {
        float p[CZ_AB_BINS_MAX];
#pragma omp for schedule(static)
        for (int64_t i = 0; i < cells; i++) {
            softmax(zt->data + pixel_at(i, Q, plane), plane, Q, s->k, p);
            const float *y = node->out->data + pixel_at(i, 2, plane);
            const float *dy = node->out->grad + pixel_at(i, 2, plane);
            float *dz = zt->grad + pixel_at(i, Q, plane);
            for (int q = 0; q < Q; q++)
                dz[q * plane] += p[q] * s->k *
                    ((s->centres[q][0] - y[0]) * dy[0] + (s->centres[q][1] - y[plane]) * dy[plane]);
        }
    }
}

static const cz_op decode_op = {"ab_bins_decode", NULL, decode_forward, decode_backward,
                                bins_destroy, CZ_OP_PLAIN, false, NULL};

static cz_status check_logits(cz_graph *g, const char *op, const cz_tensor *z, int n_bins)
{
    if (!z || cz_graph_status(g) != CZ_OK) {
        cz_graph_error(g, CZ_ERR_INVALID, "%s: missing input", op);
        return CZ_ERR_INVALID;
    }
    if (z->c != n_bins) {
        cz_graph_error(g, CZ_ERR_INVALID, "%s: logits have %lld channels, not one per a*b* bin (%d)",
                       op, (long long)z->c, n_bins);
        return CZ_ERR_INVALID;
    }
    return CZ_OK;
}

cz_tensor *cz_ab_bins_decode(cz_graph *g, cz_tensor *logits, float temperature)
{
    bins_state *s = bins_state_new();
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "ab_bins_decode: out of memory");
    if (check_logits(g, "ab_bins_decode", logits, s->n_bins) != CZ_OK) {
        bins_destroy(s);
        return NULL;
    }
    if (!(temperature > 0.0f)) {
        bins_destroy(s);
        return cz_graph_error(g, CZ_ERR_INVALID, "ab_bins_decode: temperature %g is not positive",
                              (double)temperature);
    }
    s->k = CZ_AB_BINS_GAIN / temperature;
    cz_tensor *in[1] = {logits};
    return cz_graph_node(g, &decode_op, in, 1, logits->n, 2, logits->h, logits->w, s);
}

/* --- cross-entropy against the photo's colours, softly binned --- */

static cz_status cross_entropy_plan(cz_graph *g, cz_node *node)
{
    bins_state *s = node->state;
    int64_t cells = cz_numel(node->in[0]) / s->n_bins;
    s->target_bin = malloc((size_t)(cells * NEIGHBOURS) * sizeof *s->target_bin);
    s->target_weight = malloc((size_t)(cells * NEIGHBOURS) * sizeof *s->target_weight);
    s->cell_loss = malloc((size_t)cells * sizeof *s->cell_loss);
    if (!s->target_bin || !s->target_weight || !s->cell_loss) {
        cz_graph_error(g, CZ_ERR_NOMEM, "ab_bins_cross_entropy: out of memory");
        return cz_fail(CZ_ERR_NOMEM, "ab_bins_cross_entropy: out of memory");
    }
    return CZ_OK;
}

/* The cell's colour (the mean of the photo's block over it) spread over its
 * NEIGHBOURS nearest bins with Gaussian weights summing to 1. */
static void soft_target(const bins_state *s, float a, float b, int *bin, float *weight)
{
    float dist[NEIGHBOURS];
    int found = 0;
    for (int q = 0; q < s->n_bins; q++) {
        float da = s->centres[q][0] - a, db = s->centres[q][1] - b;
        float d = da * da + db * db;
        if (found == NEIGHBOURS && d >= dist[NEIGHBOURS - 1])
            continue;
        int j = found < NEIGHBOURS ? found++ : NEIGHBOURS - 1;
        for (; j > 0 && dist[j - 1] > d; j--) {
            dist[j] = dist[j - 1];
            bin[j] = bin[j - 1];
        }
        dist[j] = d;
        bin[j] = q;
    }
    const float two_sigma2 = 2.0f * (SIGMA / AB_SCALE) * (SIGMA / AB_SCALE);
    float sum = 0.0f;
    for (int j = 0; j < NEIGHBOURS; j++)
        sum += weight[j] = expf(-(dist[j] - dist[0]) / two_sigma2);
    for (int j = 0; j < NEIGHBOURS; j++)
        weight[j] /= sum;
}

static void cross_entropy_forward(cz_graph *g, cz_node *node)
{
    (void)g;
    bins_state *s = node->state;
    const cz_tensor *zt = node->in[0], *abt = node->in[1];
    int Q = s->n_bins;
    int64_t h = zt->h, w = zt->w, plane = h * w, cells = zt->n * plane;
    int64_t f = abt->h / h, W = abt->w, big = abt->h * W;
#pragma omp parallel
    {
        float p[CZ_AB_BINS_MAX];
#pragma omp for schedule(static)
        for (int64_t i = 0; i < cells; i++) {
            int64_t b = i / plane, k = i % plane, y = k / w, x = k % w;
            double a = 0.0, bb = 0.0;
            for (int64_t dy = 0; dy < f; dy++)
                for (int64_t dx = 0; dx < f; dx++) {
                    int64_t at = b * 2 * big + (y * f + dy) * W + x * f + dx;
                    a += abt->data[at];
                    bb += abt->data[at + big];
                }
            int *bin = s->target_bin + i * NEIGHBOURS;
            float *weight = s->target_weight + i * NEIGHBOURS;
            soft_target(s, (float)(a / (double)(f * f)), (float)(bb / (double)(f * f)), bin, weight);
            const float *z = zt->data + pixel_at(i, Q, plane);
            double loss = softmax(z, plane, Q, CZ_AB_BINS_GAIN, p);
            for (int j = 0; j < NEIGHBOURS; j++)
                loss -= (double)weight[j] * CZ_AB_BINS_GAIN * z[bin[j] * plane];
            s->cell_loss[i] = loss;
        }
    }
    double total = 0.0; /* in order: the same bits whatever the thread count */
    for (int64_t i = 0; i < cells; i++)
        total += s->cell_loss[i];
    node->out->data[0] = (float)(total / (double)cells);
}

/* dz_q = gain (p_q - target_q) / cells */
static void cross_entropy_backward(cz_graph *g, cz_node *node)
{
    (void)g;
    const bins_state *s = node->state;
    cz_tensor *zt = node->in[0];
    if (!zt->needs_grad)
        return;
    int Q = s->n_bins;
    int64_t plane = zt->h * zt->w, cells = zt->n * plane;
    float scale = (float)((double)node->out->grad[0] * CZ_AB_BINS_GAIN / (double)cells);
#pragma omp parallel
    {
        float p[CZ_AB_BINS_MAX];
#pragma omp for schedule(static)
        for (int64_t i = 0; i < cells; i++) {
            softmax(zt->data + pixel_at(i, Q, plane), plane, Q, CZ_AB_BINS_GAIN, p);
            for (int j = 0; j < NEIGHBOURS; j++)
                p[s->target_bin[i * NEIGHBOURS + j]] -= s->target_weight[i * NEIGHBOURS + j];
            float *dz = zt->grad + pixel_at(i, Q, plane);
            for (int q = 0; q < Q; q++)
                dz[q * plane] += p[q] * scale;
        }
    }
}

static const cz_op cross_entropy_op = {"ab_bins_cross_entropy", cross_entropy_plan,
                                       cross_entropy_forward, cross_entropy_backward,
                                       bins_destroy, CZ_OP_PLAIN, false, NULL};

cz_tensor *cz_ab_bins_cross_entropy(cz_graph *g, cz_tensor *logits, cz_tensor *ab)
{
    bins_state *s = bins_state_new();
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "ab_bins_cross_entropy: out of memory");
    if (check_logits(g, "ab_bins_cross_entropy", logits, s->n_bins) != CZ_OK) {
        bins_destroy(s);
        return NULL;
    }
    if (!ab || ab->n != logits->n || ab->c != 2 || ab->h % logits->h != 0 ||
        ab->w * logits->h != ab->h * logits->w) {
        bins_destroy(s);
        return cz_graph_error(g, CZ_ERR_INVALID,
                              "ab_bins_cross_entropy: the colours must be [N, 2, H, W] with H and W "
                              "the same multiple of the logits' sides");
    }
    cz_tensor *in[2] = {logits, ab};
    return cz_graph_node(g, &cross_entropy_op, in, 2, 1, 1, 1, 1, s);
}
