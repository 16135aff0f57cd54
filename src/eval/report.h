/*
 * Evaluation reports: what `colorize eval` writes once every image has been
 * measured (docs/metrics.md describes the files):
 *
 *   per_image.csv   one row per image, model and grayscale baseline
 *   summary.json    the inputs, the set means of both, the examples and the
 *                   failures
 *   report.html     one self-contained page: the table, the definitions in
 *                   short, and gray | model | truth thumbnails (inline
 *                   base64 JPEG) of the best, median and worst images by
 *                   the model's Delta E
 *
 * Every file is written to a temporary name in the same folder and renamed
 * over the destination once complete, so a reader never sees half a report.
 */
#ifndef CZ_EVAL_REPORT_H
#define CZ_EVAL_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "colorize.h"
#include "eval/metrics.h"
#include "image/image.h"

/* One evaluated image. */
typedef struct {
    char *name;          /* its file name in the folder of originals */
    int width, height;   /* the size it was compared at */
    cz_metrics model;    /* the prediction against the original */
    cz_metrics gray;     /* the grayscale baseline against the original */
} cz_eval_result;

/* One image that could not be evaluated, and why. */
typedef struct {
    char *name;
    char *message;
} cz_eval_failure;

/* Set means; delta_cf = |cf - cf_truth| of the means. */
typedef struct {
    double psnr, ssim, delta_e, cf, cf_truth, delta_cf, auc;
} cz_eval_mean;

/* How far the set's numbers could move with other photos of the same kind:
 * 95% percentile intervals over CZ_EVAL_RESAMPLES paired bootstrap
 * resamples of the images (drawn with replacement, the model and gray of
 * an image together, from a fixed seed, so a report reproduces). */
#define CZ_EVAL_RESAMPLES 2000
#define CZ_EVAL_BOOTSTRAP_SEED 1

typedef struct {
    double lo, hi;
} cz_interval;

typedef struct {
    cz_interval psnr_gain;    /* the model's mean PSNR minus gray's, dB */
    cz_interval delta_e_gain; /* gray's mean CIEDE2000 minus the model's */
    cz_interval delta_cf;     /* the model's delta_cf */
} cz_eval_spread;

/* Up to three examples for the HTML page: the best, median and worst
 * images by the model's Delta E (fewer when there are fewer images). */
enum { CZ_EVAL_MAX_EXAMPLES = 3 };

/* Longest side of a thumbnail in the HTML page, in pixels. */
#define CZ_EVAL_THUMB_SIDE 256
/* JPEG quality of the thumbnails: small files, no visible blocking. */
#define CZ_EVAL_THUMB_QUALITY 85

typedef struct {
    char label[32];      /* "best", "median", "worst", or several joined */
    size_t index;        /* into the results */
    cz_image *gray;      /* 8-bit RGB at the evaluated size; the report */
    cz_image *model;     /* writers read them and never free them. NULL */
    cz_image *truth;     /* leaves the thumbnails out of the page. */
} cz_eval_example;

typedef struct {
    /* What was compared. */
    const char *real_dir;   /* originals */
    const char *pred_dir;   /* predictions (--pred), or NULL */
    const char *model_path; /* the model (--model), or NULL */
    int size;               /* side images were resized to; 0 = their own */
    /* What came out. */
    const cz_eval_result *results;
    size_t n_results;
    const cz_eval_failure *failures;
    size_t n_failures;
    size_t n_ignored;       /* files skipped as not .jpg/.jpeg/.png */
    cz_eval_mean model, gray;
    cz_eval_spread spread;
    bool has_spread;        /* spread computed (two results or more) */
    cz_eval_example examples[CZ_EVAL_MAX_EXAMPLES];
    size_t n_examples;
} cz_eval_report;

/* The set means of the model and of the baseline over n results (zeros
 * when n is 0). */
void cz_eval_means(const cz_eval_result *results, size_t n,
                   cz_eval_mean *model, cz_eval_mean *gray);

/* The intervals of cz_eval_spread over n results (n >= 2).
 * CZ_ERR_NOMEM when the resamples' means do not fit in memory. */
cz_status cz_eval_bootstrap(const cz_eval_result *results, size_t n,
                            cz_eval_spread *spread);

/* Chooses the examples: the results ordered by the model's Delta E (ties by
 * position), then the first (best), the lower median and the last (worst);
 * an image that is two of these appears once with both labels. Fills
 * r->examples' labels and indices (images NULL) and r->n_examples. */
void cz_eval_pick_examples(cz_eval_report *r);

cz_status cz_eval_write_csv(const char *path, const cz_eval_report *r);
cz_status cz_eval_write_json(const char *path, const cz_eval_report *r);
cz_status cz_eval_write_html(const char *path, const cz_eval_report *r);

/* The summary table, grayscale baseline first, as the command prints it,
 * and below it the spread if it has one. */
void cz_eval_print_table(FILE *out, const cz_eval_report *r);

/* Standard base64 (RFC 4648, with padding) of n bytes into a new
 * NUL-terminated string, or NULL when out of memory. */
char *cz_base64_encode(const unsigned char *data, size_t n);

#endif
