/* Evaluation metrics (docs/metrics.md). Each metric is checked against
 * skimage/numpy on fixtures from tools/make_metric_fixtures.py, and CIEDE2000
 * against the 34 published pairs of Sharma, Wu & Dalal (tests/test_metrics.c).
 *
 * Determinism: work is split into fixed chunks (of pixels) or bands (of rows);
 * each chunk's sum is stored in its own slot and the slots are added in
 * order afterwards, so no sum depends on how many threads ran. Integer sums
 * (squared errors, AuC counts, colourfulness totals) are exact anyway. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "eval/metrics.h"
#include "image/lab.h"

/* Pixels per chunk for the per-pixel passes, rows per band for the passes
 * that convert to Lab on the fly: big enough to amortise scheduling, small
 * enough that a band's scratch stays in cache. */
enum { CHUNK = 16384, BAND_ROWS = 16 };

static const double PI = 3.14159265358979323846;

static inline double deg2rad(double d)
{
    return d * (PI / 180.0);
}

/* ---- CIEDE2000 --------------------------------------------------------- */

/* 25^7, the chroma at which G and R_C reach half their range. */
#define CIEDE_25_POW7 6103515625.0

/* Hue angle in radians in [0, 2pi); atan2(0, 0) = 0 as the standard asks. */
static inline double hue_angle(double b, double ap)
{
    double h = atan2(b, ap);
    return h < 0.0 ? h + 2.0 * PI : h;
}

/* Sharma, Wu & Dalal (2005), equations (1)-(22); the numeric constants are
 * the standard's own. Differences are taken as sample 2 minus sample 1, as
 * skimage does; only the sign of the R_T product could care, and there both
 * factors flip together. */
double cz_ciede2000(double L1, double a1, double b1, double L2, double a2,
                    double b2)
{
    /* (2)-(7): a' stretched by the mean chroma, then C' and h'. */
    const double Cbar = 0.5 * (hypot(a1, b1) + hypot(a2, b2));
    const double Cbar7 = pow(Cbar, 7.0);
    const double G = 0.5 * (1.0 - sqrt(Cbar7 / (Cbar7 + CIEDE_25_POW7)));
    const double a1p = (1.0 + G) * a1, a2p = (1.0 + G) * a2;
    const double C1p = hypot(a1p, b1), C2p = hypot(a2p, b2);
    const double h1p = hue_angle(b1, a1p), h2p = hue_angle(b2, a2p);
    const int achromatic = C1p * C2p == 0.0;

    /* (8)-(11): differences; the hue difference wraps into [-pi, pi]. */
    const double dLp = L2 - L1;
    const double dCp = C2p - C1p;
    double dhp = 0.0;
    if (!achromatic) {
        dhp = h2p - h1p;
        if (dhp > PI)
            dhp -= 2.0 * PI;
        else if (dhp < -PI)
            dhp += 2.0 * PI;
    }
    const double dHp = 2.0 * sqrt(C1p * C2p) * sin(0.5 * dhp);

    /* (12)-(14): means; the mean hue goes the short way round the circle
     * and is the plain sum when either colour has no hue. */
    const double Lbarp = 0.5 * (L1 + L2);
    const double Cbarp = 0.5 * (C1p + C2p);
    double hbarp = h1p + h2p;
    if (!achromatic) {
        if (fabs(h1p - h2p) > PI)
            hbarp += hbarp < 2.0 * PI ? 2.0 * PI : -2.0 * PI;
        hbarp *= 0.5;
    }

    /* (15)-(22): weighting functions and the rotation term. */
    const double T = 1.0 - 0.17 * cos(hbarp - deg2rad(30.0)) +
                     0.24 * cos(2.0 * hbarp) +
                     0.32 * cos(3.0 * hbarp + deg2rad(6.0)) -
                     0.20 * cos(4.0 * hbarp - deg2rad(63.0));
    const double hbar_deg = hbarp * (180.0 / PI);
    const double dtheta =
        deg2rad(30.0) * exp(-((hbar_deg - 275.0) / 25.0) * ((hbar_deg - 275.0) / 25.0));
    const double Cbarp7 = pow(Cbarp, 7.0);
    const double RC = 2.0 * sqrt(Cbarp7 / (Cbarp7 + CIEDE_25_POW7));
    const double l50 = (Lbarp - 50.0) * (Lbarp - 50.0);
    const double SL = 1.0 + 0.015 * l50 / sqrt(20.0 + l50);
    const double SC = 1.0 + 0.045 * Cbarp;
    const double SH = 1.0 + 0.015 * Cbarp * T;
    const double RT = -sin(2.0 * dtheta) * RC;

    const double lt = dLp / SL, ct = dCp / SC, ht = dHp / SH;
    const double dE2 = lt * lt + ct * ct + ht * ht + RT * ct * ht;
    return sqrt(dE2 > 0.0 ? dE2 : 0.0);
}

/* ---- Sums over pixels -------------------------------------------------- */

static double ciede_sum(const float *L1, const float *a1, const float *b1,
                        const float *L2, const float *a2, const float *b2,
                        size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += cz_ciede2000(L1[i], a1[i], b1[i], L2[i], a2[i], b2[i]);
    return s;
}

/* For each pixel, how many of the thresholds 0..CZ_AUC_MAX_THRESHOLD its
 * a*b* error d does not exceed: those t >= ceil(d). */
static uint64_t auc_count(const float *a1, const float *b1, const float *a2,
                          const float *b2, size_t n)
{
    uint64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        double d = hypot((double)a1[i] - a2[i], (double)b1[i] - b2[i]);
        if (d <= CZ_AUC_MAX_THRESHOLD)
            count += (uint64_t)(CZ_AUC_MAX_THRESHOLD + 1) - (uint64_t)ceil(d);
    }
    return count;
}

static size_t n_chunks(size_t n)
{
    return (n + CHUNK - 1) / CHUNK;
}

/* Sums n values, chunk by chunk, in chunk order: chunk_sum(c, ctx) gives
 * chunk c's partial sum. The chunks run in parallel when there is memory
 * for their slots and one after another otherwise; the total is the same. */
static double ordered_sum(size_t n, double (*chunk_sum)(size_t c, const void *ctx),
                          const void *ctx)
{
    const size_t nc = n_chunks(n);
    double *part = malloc(nc * sizeof *part);
    double s = 0.0;
    if (!part) {
        for (size_t c = 0; c < nc; c++)
            s += chunk_sum(c, ctx);
        return s;
    }
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++)
        part[c] = chunk_sum(c, ctx);
    for (size_t c = 0; c < nc; c++)
        s += part[c];
    free(part);
    return s;
}

static size_t chunk_len(size_t c, size_t n)
{
    return c * CHUNK + CHUNK < n ? CHUNK : n - c * CHUNK;
}

typedef struct {
    const float *L1, *a1, *b1, *L2, *a2, *b2;
    size_t n;
} lab_pair;

static double ciede_chunk(size_t c, const void *ctx)
{
    const lab_pair *p = ctx;
    size_t i = c * CHUNK;
    return ciede_sum(p->L1 + i, p->a1 + i, p->b1 + i, p->L2 + i, p->a2 + i,
                     p->b2 + i, chunk_len(c, p->n));
}

double cz_eval_mean_ciede2000(const float *L1, const float *a1,
                              const float *b1, const float *L2,
                              const float *a2, const float *b2,
                              size_t n_pixels)
{
    if (n_pixels == 0)
        return 0.0;
    const lab_pair p = {L1, a1, b1, L2, a2, b2, n_pixels};
    return ordered_sum(n_pixels, ciede_chunk, &p) / (double)n_pixels;
}

double cz_eval_ab_auc(const float *a1, const float *b1, const float *a2,
                      const float *b2, size_t n_pixels)
{
    if (n_pixels == 0)
        return 1.0;
    uint64_t count = 0;
    const size_t nc = n_chunks(n_pixels);
#pragma omp parallel for schedule(static) reduction(+ : count)
    for (size_t c = 0; c < nc; c++) {
        size_t i = c * CHUNK;
        count += auc_count(a1 + i, b1 + i, a2 + i, b2 + i, chunk_len(c, n_pixels));
    }
    return (double)count /
           ((double)(CZ_AUC_MAX_THRESHOLD + 1) * (double)n_pixels);
}

double cz_eval_psnr(const uint8_t *x, const uint8_t *y, size_t n_pixels)
{
    const size_t n = 3 * n_pixels;
    uint64_t sq = 0; /* at most 65025 per sample: exact for any image we load */
#pragma omp parallel for schedule(static) reduction(+ : sq)
    for (size_t i = 0; i < n; i++) {
        int d = (int)x[i] - (int)y[i];
        sq += (uint64_t)(d * d);
    }
    if (sq == 0 || n == 0)
        return CZ_PSNR_CAP;
    double mse = (double)sq / (double)n;
    double psnr = 10.0 * log10(CZ_EVAL_PEAK * CZ_EVAL_PEAK / mse);
    return psnr < CZ_PSNR_CAP ? psnr : CZ_PSNR_CAP;
}

/* Colourfulness works on rg = |R - G| and yb = |(R + G)/2 - B|, which are
 * multiples of 1/2; in half units they are the integers 2|R - G| and
 * |R + G - 2B|, so their totals are exact. The variances are then taken
 * about the mean in a second pass, as numpy's std does. */
typedef struct {
    const uint8_t *rgb;
    size_t n;
    double rg_mean, yb_mean;
} cf_pass;

static double cf_chunk(size_t c, const cf_pass *p, int yb)
{
    const size_t i0 = c * CHUNK, i1 = i0 + chunk_len(c, p->n);
    double s = 0.0;
    for (size_t i = i0; i < i1; i++) {
        double r = p->rgb[3 * i], g = p->rgb[3 * i + 1], b = p->rgb[3 * i + 2];
        double d = yb ? fabs(0.5 * (r + g) - b) - p->yb_mean
                      : fabs(r - g) - p->rg_mean;
        s += d * d;
    }
    return s;
}

static double cf_chunk_rg(size_t c, const void *ctx) { return cf_chunk(c, ctx, 0); }
static double cf_chunk_yb(size_t c, const void *ctx) { return cf_chunk(c, ctx, 1); }

double cz_eval_colourfulness(const uint8_t *rgb, size_t n_pixels)
{
    if (n_pixels == 0)
        return 0.0;
    uint64_t rg_total = 0, yb_total = 0;
#pragma omp parallel for schedule(static) reduction(+ : rg_total, yb_total)
    for (size_t i = 0; i < n_pixels; i++) {
        int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        rg_total += (uint64_t)(2 * abs(r - g));
        yb_total += (uint64_t)abs(r + g - 2 * b);
    }
    const double n = (double)n_pixels;
    const cf_pass p = {rgb, n_pixels, (double)rg_total / (2.0 * n),
                       (double)yb_total / (2.0 * n)};
    const double rg_var = ordered_sum(n_pixels, cf_chunk_rg, &p) / n;
    const double yb_var = ordered_sum(n_pixels, cf_chunk_yb, &p) / n;
    const double std_root = sqrt(rg_var + yb_var);
    const double mean_root = sqrt(p.rg_mean * p.rg_mean + p.yb_mean * p.yb_mean);
    return std_root + CZ_CF_MEAN_WEIGHT * mean_root;
}

/* ---- SSIM -------------------------------------------------------------- */

/* skimage filters the whole image (mode 'reflect') and then averages the
 * SSIM map with a border of one window radius cropped away. Every pixel of
 * the cropped map has its whole window inside the image, so the boundary
 * mode never matters: we compute just those pixels, each from its window.
 * The window is separable; like scipy's gaussian_filter we filter along
 * rows (axis 0) first, then along columns. Everything is float64, as in
 * skimage, so the two agree to rounding. */
enum { SSIM_TAPS = 2 * CZ_SSIM_RADIUS + 1, SSIM_STATS = 5 };

/* scipy.ndimage's Gaussian kernel: exp(-x^2 / (2 sigma^2)) normalised to
 * sum 1 over x = -radius..radius. */
static void ssim_kernel(double w[SSIM_TAPS])
{
    double sum = 0.0;
    for (int k = 0; k < SSIM_TAPS; k++) {
        double x = k - CZ_SSIM_RADIUS;
        w[k] = exp(-0.5 / (CZ_SSIM_SIGMA * CZ_SSIM_SIGMA) * x * x);
        sum += w[k];
    }
    for (int k = 0; k < SSIM_TAPS; k++)
        w[k] /= sum;
}

/* The sum of the SSIM map over output row yo (its valid columns) for
 * channel c. v holds SSIM_STATS rows of W doubles of scratch. */
static double ssim_row(const uint8_t *x, const uint8_t *y, int W, int yo,
                       int c, const double w[SSIM_TAPS], double *v)
{
    const double C1 = (CZ_SSIM_K1 * CZ_EVAL_PEAK) * (CZ_SSIM_K1 * CZ_EVAL_PEAK);
    const double C2 = (CZ_SSIM_K2 * CZ_EVAL_PEAK) * (CZ_SSIM_K2 * CZ_EVAL_PEAK);
    double *vx = v, *vy = v + W, *vxx = v + 2 * (size_t)W,
           *vyy = v + 3 * (size_t)W, *vxy = v + 4 * (size_t)W;
    /* Vertical pass: the five window statistics for every column. */
    for (int col = 0; col < W; col++) {
        double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        for (int k = 0; k < SSIM_TAPS; k++) {
            size_t i = ((size_t)(yo - CZ_SSIM_RADIUS + k) * (size_t)W + (size_t)col) * 3 + (size_t)c;
            double a = x[i], b = y[i];
            sx += w[k] * a;
            sy += w[k] * b;
            sxx += w[k] * (a * a);
            syy += w[k] * (b * b);
            sxy += w[k] * (a * b);
        }
        vx[col] = sx;
        vy[col] = sy;
        vxx[col] = sxx;
        vyy[col] = syy;
        vxy[col] = sxy;
    }
    /* Horizontal pass and the SSIM formula, valid columns only. */
    double row_sum = 0.0;
    for (int xo = CZ_SSIM_RADIUS; xo < W - CZ_SSIM_RADIUS; xo++) {
        double ux = 0, uy = 0, uxx = 0, uyy = 0, uxy = 0;
        for (int k = 0; k < SSIM_TAPS; k++) {
            int j = xo - CZ_SSIM_RADIUS + k;
            ux += w[k] * vx[j];
            uy += w[k] * vy[j];
            uxx += w[k] * vxx[j];
            uyy += w[k] * vyy[j];
            uxy += w[k] * vxy[j];
        }
        /* Population (co)variances: Wang et al., use_sample_covariance=False. */
        double sxx = uxx - ux * ux, syy = uyy - uy * uy, sxy = uxy - ux * uy;
        double num = (2.0 * ux * uy + C1) * (2.0 * sxy + C2);
        double den = (ux * ux + uy * uy + C1) * (sxx + syy + C2);
        row_sum += num / den;
    }
    return row_sum;
}

cz_status cz_eval_ssim(const uint8_t *x, const uint8_t *y, int width,
                       int height, double *out)
{
    if (!x || !y || !out)
        return cz_fail(CZ_ERR_INVALID, "cz_eval_ssim: NULL argument");
    if (width < CZ_SSIM_MIN_SIDE || height < CZ_SSIM_MIN_SIDE)
        return cz_fail(CZ_ERR_INVALID,
                       "SSIM needs images of at least %dx%d pixels; this one is %dx%d",
                       CZ_SSIM_MIN_SIDE, CZ_SSIM_MIN_SIDE, width, height);
    const int rows = height - 2 * CZ_SSIM_RADIUS;
    const int cols = width - 2 * CZ_SSIM_RADIUS;
    const int threads = omp_get_max_threads();
    cz_status status = CZ_OK;
    double *row_sums = malloc((size_t)rows * 3 * sizeof *row_sums);
    double *scratch = malloc((size_t)threads * SSIM_STATS * (size_t)width *
                             sizeof *scratch);
    if (!row_sums || !scratch) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_eval_ssim: out of memory for %dx%d",
                         width, height);
        goto cleanup;
    }
    double w[SSIM_TAPS];
    ssim_kernel(w);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int r = 0; r < rows; r++) {
        double *v = scratch + (size_t)omp_get_thread_num() * SSIM_STATS * (size_t)width;
        for (int c = 0; c < 3; c++)
            row_sums[(size_t)r * 3 + (size_t)c] =
                ssim_row(x, y, width, r + CZ_SSIM_RADIUS, c, w, v);
    }
    double mean = 0.0;
    for (int c = 0; c < 3; c++) {
        double s = 0.0;
        for (int r = 0; r < rows; r++)
            s += row_sums[(size_t)r * 3 + (size_t)c];
        mean += s / ((double)rows * (double)cols);
    }
    *out = mean / 3.0;
cleanup:
    free(row_sums);
    free(scratch);
    return status;
}

/* ---- All metrics of one pair ------------------------------------------ */

static int is_rgb8(const cz_image *img)
{
    return img && img->data && img->channels == 3 && img->depth == 8 &&
           img->width > 0 && img->height > 0;
}

/* Rows y0..y0+rows-1 of an image, as an image sharing its samples. */
static cz_image band_view(const cz_image *img, int y0, int rows)
{
    cz_image v = *img;
    v.height = rows;
    v.data = (uint8_t *)img->data +
             (size_t)y0 * (size_t)img->width * (size_t)img->channels;
    return v;
}

/* Mean CIEDE2000 and the AuC of two RGB8 images, converting BAND_ROWS rows
 * at a time to Lab, so that no image-sized Lab copy is ever made. */
static cz_status lab_metrics(const cz_image *pred, const cz_image *truth,
                             double *delta_e, double *auc)
{
    const int W = truth->width, H = truth->height;
    const int bands = (H + BAND_ROWS - 1) / BAND_ROWS;
    const int threads = omp_get_max_threads();
    const size_t band_px = (size_t)BAND_ROWS * (size_t)W;
    cz_status status = CZ_OK;
    double *de_part = malloc((size_t)bands * sizeof *de_part);
    uint64_t *auc_part = malloc((size_t)bands * sizeof *auc_part);
    float *scratch = malloc((size_t)threads * 6 * band_px * sizeof *scratch);
    int failed = 0;
    if (!de_part || !auc_part || !scratch) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_eval_metrics: out of memory for %dx%d",
                         W, H);
        goto cleanup;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int band = 0; band < bands; band++) {
        float *s = scratch + (size_t)omp_get_thread_num() * 6 * band_px;
        float *L1 = s, *a1 = s + band_px, *b1 = s + 2 * band_px;
        float *L2 = s + 3 * band_px, *a2 = s + 4 * band_px, *b2 = s + 5 * band_px;
        int y0 = band * BAND_ROWS;
        int rows = y0 + BAND_ROWS <= H ? BAND_ROWS : H - y0;
        cz_image vp = band_view(pred, y0, rows), vt = band_view(truth, y0, rows);
        if (cz_image_to_lab_planes(&vp, L1, a1, b1) != CZ_OK ||
            cz_image_to_lab_planes(&vt, L2, a2, b2) != CZ_OK) {
#pragma omp atomic write
            failed = 1;
            continue;
        }
        size_t n = (size_t)rows * (size_t)W;
        de_part[band] = ciede_sum(L1, a1, b1, L2, a2, b2, n);
        auc_part[band] = auc_count(a1, b1, a2, b2, n);
    }
    if (failed) {
        status = cz_fail(CZ_ERR_INVALID, "cz_eval_metrics: Lab conversion failed");
        goto cleanup;
    }
    double de = 0.0;
    uint64_t count = 0;
    for (int band = 0; band < bands; band++) {
        de += de_part[band];
        count += auc_part[band];
    }
    const double n = (double)W * (double)H;
    *delta_e = de / n;
    *auc = (double)count / ((double)(CZ_AUC_MAX_THRESHOLD + 1) * n);
cleanup:
    free(de_part);
    free(auc_part);
    free(scratch);
    return status;
}

cz_status cz_eval_metrics(const cz_image *pred, const cz_image *truth,
                          cz_metrics *out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_eval_metrics: NULL output");
    if (!is_rgb8(pred) || !is_rgb8(truth))
        return cz_fail(CZ_ERR_INVALID,
                       "cz_eval_metrics: images must be 8-bit RGB (see cz_eval_rgb8)");
    if (pred->width != truth->width || pred->height != truth->height)
        return cz_fail(CZ_ERR_INVALID,
                       "the prediction is %dx%d but the original is %dx%d",
                       pred->width, pred->height, truth->width, truth->height);
    const size_t n = (size_t)truth->width * (size_t)truth->height;
    cz_metrics m;
    cz_status s = cz_eval_ssim(pred->data, truth->data, truth->width,
                               truth->height, &m.ssim);
    if (s != CZ_OK)
        return s;
    s = lab_metrics(pred, truth, &m.delta_e, &m.auc);
    if (s != CZ_OK)
        return s;
    m.psnr = cz_eval_psnr(pred->data, truth->data, n);
    m.cf = cz_eval_colourfulness(pred->data, n);
    m.cf_truth = cz_eval_colourfulness(truth->data, n);
    *out = m;
    return CZ_OK;
}

/* ---- Preparing images -------------------------------------------------- */

cz_status cz_eval_rgb8(const cz_image *in, cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_eval_rgb8: NULL output");
    *out = NULL;
    if (!in || !in->data || in->channels < 1 || in->channels > 4 ||
        (in->depth != 8 && in->depth != 16))
        return cz_fail(CZ_ERR_INVALID, "cz_eval_rgb8: invalid image");
    cz_image *o = cz_image_new(in->width, in->height, 3, 8);
    if (!o)
        return CZ_ERR_NOMEM;
    const size_t n = (size_t)in->width * (size_t)in->height;
    const int C = in->channels, colour = C >= 3;
    const uint8_t *p8 = in->data;
    const uint16_t *p16 = in->data;
    uint8_t *q = o->data;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++) {
            size_t k = i * (size_t)C + (size_t)(colour ? c : 0);
            /* 16 -> 8 bits rounded to nearest: v * 255 / 65535. */
            q[3 * i + (size_t)c] = in->depth == 8
                                       ? p8[k]
                                       : (uint8_t)(((uint32_t)p16[k] * 255u + 32767u) / 65535u);
        }
    }
    *out = o;
    return CZ_OK;
}

cz_status cz_eval_gray_baseline(const cz_image *truth, cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_eval_gray_baseline: NULL output");
    *out = NULL;
    if (!is_rgb8(truth))
        return cz_fail(CZ_ERR_INVALID,
                       "cz_eval_gray_baseline: the truth must be 8-bit RGB");
    const int W = truth->width, H = truth->height;
    const size_t band_px = (size_t)BAND_ROWS * (size_t)W;
    cz_status status = CZ_OK;
    cz_image *o = cz_image_new(W, H, 3, 8);
    float *L = malloc(3 * band_px * sizeof *L);
    if (!o || !L) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_eval_gray_baseline: out of memory");
        goto cleanup;
    }
    float *a = L + band_px, *b = L + 2 * band_px;
    for (int y0 = 0; y0 < H; y0 += BAND_ROWS) {
        int rows = y0 + BAND_ROWS <= H ? BAND_ROWS : H - y0;
        cz_image vt = band_view(truth, y0, rows), vo = band_view(o, y0, rows);
        status = cz_image_to_lab_planes(&vt, L, a, b);
        if (status != CZ_OK)
            goto cleanup;
        memset(a, 0, 2 * band_px * sizeof *a); /* a and b are adjacent */
        status = cz_lab_planes_to_image(L, a, b, &vo);
        if (status != CZ_OK)
            goto cleanup;
    }
    *out = o;
    o = NULL;
cleanup:
    cz_image_free(o);
    free(L);
    return status;
}

cz_status cz_eval_resize(const cz_image *in, int width, int height,
                         cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_eval_resize: NULL output");
    *out = NULL;
    if (!is_rgb8(in))
        return cz_fail(CZ_ERR_INVALID, "cz_eval_resize: the image must be 8-bit RGB");
    const size_t sn = (size_t)in->width * (size_t)in->height;
    cz_status status = CZ_OK;
    cz_image *o = cz_image_new(width, height, 3, 8);
    if (!o)
        return CZ_ERR_NOMEM; /* cz_image_new said why */
    const size_t dn = (size_t)width * (size_t)height;
    float *src = malloc(sn * sizeof *src);
    float *dst = malloc(dn * sizeof *dst);
    if (!src || !dst) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_eval_resize: out of memory");
        goto cleanup;
    }
    const uint8_t *p = in->data;
    uint8_t *q = o->data;
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < sn; i++)
            src[i] = p[3 * i + (size_t)c];
        status = cz_resize_bilinear_f32(src, in->width, in->height, dst,
                                        width, height);
        if (status != CZ_OK)
            goto cleanup;
        for (size_t i = 0; i < dn; i++) {
            float v = dst[i] + 0.5f;
            q[3 * i + (size_t)c] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
        }
    }
    *out = o;
    o = NULL;
cleanup:
    cz_image_free(o);
    free(src);
    free(dst);
    return status;
}
