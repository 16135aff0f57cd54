/*
 * Evaluation metrics: how close a colourised photo is to its original.
 *
 * docs/metrics.md defines each number precisely and says why; in short, for
 * a prediction P and the ground truth T, both 8-bit sRGB of the same size:
 *
 *   psnr      10 log10(255^2 / MSE) over R, G and B, capped at CZ_PSNR_CAP
 *             (identical images have MSE 0)
 *   ssim      skimage.metrics.structural_similarity in the setting of Wang et
 *             al. 2004 (Gaussian weights, sigma 1.5, population covariance,
 *             data range 255) on each of R, G, B; the mean of the three
 *   delta_e   mean over pixels of CIEDE2000 (Sharma, Wu & Dalal 2005) between
 *             the CIELab of P and T (skimage's rgb2lab)
 *   cf        colourfulness of P (Hasler & Suesstrunk 2003, as DDColor
 *             computes it); cf_truth the same of T
 *   auc       Zhang et al. 2016: the share of pixels whose a*b* error is
 *             within t, averaged over t = 0, 1, ..., 150
 *
 * Every function is a pure computation on its arguments; the work is split
 * into fixed bands of rows whose partial sums are added in order, so results
 * never depend on the number of OpenMP threads. Memory: a few rows per thread
 * beyond the images.
 */
#ifndef CZ_EVAL_METRICS_H
#define CZ_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "colorize.h"
#include "image/image.h"

/* PSNR of identical images is infinite; we report this instead, so that
 * every mean and every JSON number stays finite. Two 8-bit images that
 * differ by one level in one sample of a 256x256 picture score 101 dB, so
 * the cap only ever touches images that are identical or nearly so. */
#define CZ_PSNR_CAP 100.0

/* The peak of 8-bit samples, PSNR's and SSIM's data range. */
#define CZ_EVAL_PEAK 255.0

/* SSIM: a Gaussian window of CZ_SSIM_SIGMA truncated at CZ_SSIM_TRUNCATE
 * sigmas as skimage does, so of radius int(3.5 * 1.5 + 0.5) = 5 (an 11x11
 * window, Wang et al.'s), and skimage's stability constants K1, K2. Images
 * need sides of at least one window, CZ_SSIM_MIN_SIDE. */
#define CZ_SSIM_SIGMA 1.5
#define CZ_SSIM_TRUNCATE 3.5
#define CZ_SSIM_RADIUS 5
#define CZ_SSIM_K1 0.01
#define CZ_SSIM_K2 0.03
#define CZ_SSIM_MIN_SIDE (2 * CZ_SSIM_RADIUS + 1)

/* AuC thresholds on the a*b* error: 0, 1, ..., CZ_AUC_MAX_THRESHOLD. */
#define CZ_AUC_MAX_THRESHOLD 150

/* Colourfulness weights the mean chroma term by this (Hasler & Suesstrunk). */
#define CZ_CF_MEAN_WEIGHT 0.3

typedef struct {
    double psnr;     /* dB */
    double ssim;     /* in [-1, 1]; 1 when identical */
    double delta_e;  /* mean CIEDE2000; 0 when identical */
    double cf;       /* colourfulness of the prediction */
    double cf_truth; /* colourfulness of the ground truth */
    double auc;      /* in [0, 1]; 1 when identical */
} cz_metrics;

/* CIEDE2000 colour difference of two CIELab colours, kL = kC = kH = 1, as in
 * Sharma, Wu & Dalal (2005) and skimage.color.deltaE_ciede2000. */
double cz_ciede2000(double L1, double a1, double b1, double L2, double a2,
                    double b2);

/* Every metric of pred against truth, both 8-bit RGB (3 channels) of the
 * same size with sides of at least CZ_SSIM_MIN_SIDE. CZ_ERR_INVALID
 * otherwise, CZ_ERR_NOMEM if scratch rows cannot be allocated. */
cz_status cz_eval_metrics(const cz_image *pred, const cz_image *truth,
                          cz_metrics *out);

/* The single metrics, on n_pixels interleaved 8-bit RGB triples (x and y of
 * the same shape). */
double cz_eval_psnr(const uint8_t *x, const uint8_t *y, size_t n_pixels);
double cz_eval_colourfulness(const uint8_t *rgb, size_t n_pixels);
cz_status cz_eval_ssim(const uint8_t *x, const uint8_t *y, int width,
                       int height, double *out);

/* Mean CIEDE2000 and the a*b* AuC of two images given as L*, a*, b* planes
 * of n_pixels each (for callers that already hold Lab). */
double cz_eval_mean_ciede2000(const float *L1, const float *a1,
                              const float *b1, const float *L2,
                              const float *a2, const float *b2,
                              size_t n_pixels);
double cz_eval_ab_auc(const float *a1, const float *b1, const float *a2,
                      const float *b2, size_t n_pixels);

/* ---- Preparing images ------------------------------------------------- */

/* A new 8-bit RGB copy of any image: gray is repeated into R, G and B,
 * alpha is dropped (not composited: the metrics compare colour, and a
 * background would be a guess), 16-bit samples are rounded to 8 bits. */
cz_status cz_eval_rgb8(const cz_image *in, cz_image **out);

/* The grayscale baseline of an 8-bit RGB truth: its L* with a* = b* = 0,
 * back to 8-bit sRGB (rounded to nearest). What a colouriser that adds no
 * colour at all would score. */
cz_status cz_eval_gray_baseline(const cz_image *truth, cz_image **out);

/* An 8-bit RGB image resized to width x height, each channel through
 * cz_resize_bilinear_f32 (bilinear, box-averaged first where an axis shrinks
 * by more than 2x) on the 0..255 sRGB values, rounded to nearest. */
cz_status cz_eval_resize(const cz_image *in, int width, int height,
                         cz_image **out);

#endif
