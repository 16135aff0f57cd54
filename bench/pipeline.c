/* The full-resolution work of colouring one photo, step by step, without the
 * network: what bench/end_to_end.py's "photo only" time is made of besides
 * it. Each repeat times every step once, in turn; the first repeat warms up
 * and is not counted; min and median in milliseconds.
 *
 *   make build/release/bench/pipeline
 *   OMP_NUM_THREADS=2 build/release/bench/pipeline [--repeats R] [--size N] [PHOTO]
 *
 * It uses only functions older revisions have too, so the same file built in
 * a checkout of another revision times that revision's code.
 *
 * PHOTO (JPEG or PNG; default a 4000x3000 synthetic gray pattern, which
 * makes the decode step meaningless) is decoded, and then:
 *   luminance   cz_luminance_plane: L* at full resolution
 *   resize      cz_resize_bilinear_f32: L* down to N x N (default 224)
 *   recombine   cz_recombine: a*b* at N x N upsampled, fitted into the gamut
 *               and converted with L* into the 8-bit output
 *   unfused     the baseline recombine is measured against: whole-plane
 *               cz_resize_bilinear_f32 of a* and b*, cz_fit_gamut,
 *               cz_lab_planes_to_image (what cz_recombine computes, in
 *               three passes over full-size planes)
 *   encode      cz_image_save as JPEG, quality 95 (the command's default)
 *
 * a*b* are a smooth synthetic field about as vivid as the random-weight
 * resnet50-unet of bench/end_to_end.py predicts (mean |a*| 10 to 20, b*
 * around 30); the share of pixels the gamut fit moves is printed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "base/error.h"
#include "image/image.h"
#include "image/lab.h"
#include "pipeline/pipeline.h"

enum { DEFAULT_W = 4000, DEFAULT_H = 3000, DEFAULT_SIZE = 224 };
enum { DEFAULT_REPEATS = 7, JPEG_QUALITY = 95, MAX_REPEATS = 1000 };
/* The synthetic a*b* field: a* = A_AMP sin(.) cos(.), b* = B_MEAN +
 * B_AMP sin(.), a few periods across the picture. */
#define A_AMP 40.0
#define B_MEAN 30.0
#define B_AMP 35.0
#define PERIODS 3.0

enum { STEP_DECODE, STEP_LUMINANCE, STEP_RESIZE, STEP_RECOMBINE, STEP_UNFUSED,
       STEP_ENCODE, N_STEPS };
static const char *const step_names[N_STEPS] = {
    "decode", "luminance", "resize", "recombine", "unfused", "encode"};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static cz_image *synthetic_photo(int W, int H)
{
    cz_image *img = cz_image_new(W, H, 1, 8);
    if (!img)
        return NULL;
    uint8_t *p = img->data;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double v = 127.5 + 100.0 * sin(x * 0.01) * cos(y * 0.013) +
                       20.0 * sin((x ^ y) * 0.7);
            p[(size_t)y * (size_t)W + (size_t)x] =
                (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    return img;
}

static void die(const char *what)
{
    fprintf(stderr, "pipeline: %s: %s\n", what, cz_last_error());
    exit(1);
}

int main(int argc, char **argv)
{
    int repeats = DEFAULT_REPEATS, N = DEFAULT_SIZE;
    const char *photo = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            N = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !photo)
            photo = argv[i];
        else {
            fprintf(stderr, "usage: pipeline [--repeats R] [--size N] [PHOTO]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > MAX_REPEATS || N < 1 || N > CZ_MAX_SIZE) {
        fprintf(stderr, "pipeline: --repeats 1..%d, --size 1..%d\n",
                MAX_REPEATS, CZ_MAX_SIZE);
        return 2;
    }

    cz_image *in = NULL;
    if (photo) {
        if (cz_image_load(photo, NULL, &in) != CZ_OK)
            die("loading the photo");
    } else if (!(in = synthetic_photo(DEFAULT_W, DEFAULT_H))) {
        die("making the photo");
    }
    const int W = in->width, H = in->height;
    const size_t n = (size_t)W * (size_t)H, small = (size_t)N * (size_t)N;
    float *L = malloc(n * sizeof *L);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    float *x = malloc(small * sizeof *x);
    float *as = malloc(small * sizeof *as), *bs = malloc(small * sizeof *bs);
    cz_image *out = cz_image_new(W, H, 3, 8), *ref = cz_image_new(W, H, 3, 8);
    char out_path[] = "/tmp/cz_bench_pipeline_XXXXXX.jpg";
    int fd = mkstemps(out_path, 4);
    if (!L || !a || !b || !x || !as || !bs || !out || !ref || fd < 0) {
        fprintf(stderr, "pipeline: out of memory or no temporary file\n");
        return 1;
    }
    close(fd);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double u = 2.0 * M_PI * PERIODS * j / N, v = 2.0 * M_PI * PERIODS * i / N;
            as[(size_t)i * N + j] = (float)(A_AMP * sin(u) * cos(0.7 * v));
            bs[(size_t)i * N + j] = (float)(B_MEAN + B_AMP * sin(0.8 * u + v));
        }

    double *t = calloc((size_t)repeats * N_STEPS, sizeof *t);
    if (!t)
        return 1;
    for (int r = -1; r < repeats; r++) {
        double times[N_STEPS] = {0};
        double t0 = now();
        if (photo) {
            cz_image *again = NULL;
            if (cz_image_load(photo, NULL, &again) != CZ_OK)
                die("decode");
            cz_image_free(again);
        }
        double t1 = now();
        times[STEP_DECODE] = t1 - t0;
        if (cz_luminance_plane(in, L) != CZ_OK)
            die("luminance");
        double t2 = now();
        times[STEP_LUMINANCE] = t2 - t1;
        if (cz_resize_bilinear_f32(L, W, H, x, N, N) != CZ_OK)
            die("resize");
        double t3 = now();
        times[STEP_RESIZE] = t3 - t2;
        if (cz_recombine(L, as, bs, N, out) != CZ_OK)
            die("recombine");
        double t4 = now();
        times[STEP_RECOMBINE] = t4 - t3;
        if (cz_resize_bilinear_f32(as, N, N, a, W, H) != CZ_OK ||
            cz_resize_bilinear_f32(bs, N, N, b, W, H) != CZ_OK)
            die("unfused resize");
        cz_fit_gamut(L, a, b, n);
        if (cz_lab_planes_to_image(L, a, b, ref) != CZ_OK)
            die("unfused conversion");
        double t5 = now();
        times[STEP_UNFUSED] = t5 - t4;
        if (cz_image_save(out_path, out, JPEG_QUALITY) != CZ_OK)
            die("encode");
        times[STEP_ENCODE] = now() - t5;
        if (r >= 0)
            memcpy(t + (size_t)r * N_STEPS, times, sizeof times);
    }

    /* The two recombinations must agree (tests/test_pipeline.c holds them
     * to it); and how much of the picture the gamut fit moved. */
    size_t differ = 0;
    for (size_t i = 0; i < 3 * n; i++)
        differ += ((uint8_t *)out->data)[i] != ((uint8_t *)ref->data)[i];
    if (cz_resize_bilinear_f32(as, N, N, a, W, H) != CZ_OK ||
        cz_resize_bilinear_f32(bs, N, N, b, W, H) != CZ_OK)
        die("resize");
    size_t moved = 0;
    {
        float *a2 = malloc(n * sizeof *a2), *b2 = malloc(n * sizeof *b2);
        if (!a2 || !b2)
            return 1;
        memcpy(a2, a, n * sizeof *a2);
        memcpy(b2, b, n * sizeof *b2);
        cz_fit_gamut(L, a2, b2, n);
        for (size_t i = 0; i < n; i++)
            moved += a2[i] != a[i] || b2[i] != b[i];
        free(a2);
        free(b2);
    }

    printf("full-resolution steps of colouring a %dx%d %s (%s), network at "
           "%dx%d left out; %d threads, %d timed repeats after 1 warm-up; ms "
           "min/median\n", W, H, in->channels == 1 ? "gray photo" : "photo",
           photo ? photo : "synthetic", N, N, omp_get_max_threads(), repeats);
    double med[N_STEPS], sum_min = 0, sum_med = 0;
    for (int s = 0; s < N_STEPS; s++) {
        double col[MAX_REPEATS];
        for (int r = 0; r < repeats; r++)
            col[r] = t[(size_t)r * N_STEPS + s];
        qsort(col, (size_t)repeats, sizeof *col, compare_doubles);
        med[s] = col[repeats / 2];
        if (s != STEP_UNFUSED && (photo || s != STEP_DECODE)) {
            sum_min += col[0];
            sum_med += med[s];
        }
        printf("  %-10s %8.1f / %-8.1f\n", step_names[s], 1e3 * col[0],
               1e3 * med[s]);
    }
    printf("  %-10s %8.1f / %-8.1f (every step but unfused; min is the sum "
           "of the mins)\n", "all", 1e3 * sum_min, 1e3 * sum_med);
    printf("recombine against the unfused baseline: %.2fx faster (medians); "
           "outputs differ in %zu of %zu samples; the gamut fit moved %.1f%% "
           "of pixels\n", med[STEP_UNFUSED] / med[STEP_RECOMBINE], differ,
           3 * n, 100.0 * (double)moved / (double)n);
    unlink(out_path);
    free(t);
    free(L), free(a), free(b), free(x), free(as), free(bs);
    cz_image_free(in);
    cz_image_free(out);
    cz_image_free(ref);
    return 0;
}
