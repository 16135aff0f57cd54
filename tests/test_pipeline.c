/* The colourising library path (src/pipeline): each step against a direct
 * reference (luminance in strips, upsampling in strips against
 * cz_resize_bilinear_f32, gamut fitting), then cz_colorize_image end to end
 * with a tiny random-weight unet: a 4000x3000 photo keeps its L* within 0.5
 * everywhere, gray, colour, 16-bit and odd-sized inputs, alpha passed
 * through; and a corpus of malformed model files, each rejected with a
 * message naming the file. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "bf16.h"
#include "check.h"
#include "image/image.h"
#include "image/lab.h"
#include "image/lab_pixel.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "pipeline_util.h"

/* How far the output's L* may stray from the input's (the bound):
 * 8-bit sRGB samples move L* by at most about 0.2 when rounded. */
#define L_TOLERANCE 0.5

static char tmpdir[] = "/tmp/cz_test_pipeline_XXXXXX";
static char model_path[512];

static char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static uint32_t rng_state = 12345;
static float frand(void) /* [0, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / 16777216.0f;
}

/* ---- Steps against references ------------------------------------------ */

static void test_luminance_plane(void)
{
    const int shapes[][4] = {{300, 257, 3, 8}, {129, 300, 1, 16},
                             {5, 1, 4, 8}, {64, 129, 2, 16}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int W = shapes[k][0], H = shapes[k][1];
        cz_image *img = pattern_image(W, H, shapes[k][2], shapes[k][3], (uint32_t)k);
        size_t n = (size_t)W * (size_t)H;
        float *L = malloc(n * sizeof *L), *ref = malloc(3 * n * sizeof *ref);
        CHECK(img && L && ref, "allocation");
        if (!img || !L || !ref)
            return;
        CHECK(cz_luminance_plane(img, L) == CZ_OK, "%s", cz_last_error());
        CHECK(cz_image_to_lab_planes(img, ref, ref + n, ref + 2 * n) == CZ_OK,
              "%s", cz_last_error());
        CHECK(memcmp(L, ref, n * sizeof *L) == 0,
              "luminance in strips differs from whole-image L* at %dx%d", W, H);
        cz_image_free(img);
        free(L);
        free(ref);
    }
    CHECK(cz_luminance_plane(NULL, NULL) == CZ_ERR_INVALID, "NULL image");
}

/* L* after converting (L, a, b) to sRGB floats and back. */
static float round_trip_L(float L, float a, float b)
{
    float lab[3] = {L, a, b}, rgb[3];
    cz_lab_to_srgb(lab, rgb, 1);
    cz_srgb_to_lab(rgb, lab, 1);
    return lab[0];
}

static void test_fit_gamut(void)
{
    enum { N = 20000 };
    float *L = malloc(N * sizeof *L), *a = malloc(N * sizeof *a),
          *b = malloc(N * sizeof *b), *a0 = malloc(N * sizeof *a0),
          *b0 = malloc(N * sizeof *b0);
    if (!L || !a || !b || !a0 || !b0)
        abort();
    /* Half in gamut (from sRGB away from its faces), half anywhere. */
    for (int i = 0; i < N; i++) {
        if (i % 2) {
            float rgb[3] = {0.01f + 0.98f * frand(), 0.01f + 0.98f * frand(),
                            0.01f + 0.98f * frand()}, lab[3];
            cz_srgb_to_lab(rgb, lab, 1);
            L[i] = lab[0], a[i] = lab[1], b[i] = lab[2];
        } else {
            L[i] = 100.0f * frand();
            a[i] = 220.0f * frand() - 110.0f;
            b[i] = 220.0f * frand() - 110.0f;
        }
        if (i < 4 && i % 2 == 0) /* the ends of the L* range */
            L[i] = i == 0 ? 0.0f : 100.0f;
        a0[i] = a[i];
        b0[i] = b[i];
    }
    cz_fit_gamut(L, a, b, N);
    int moved_inside = 0, not_on_edge = 0, l_off = 0, reduced = 0, grew = 0;
    double worst = 0;
    for (int i = 0; i < N; i++) {
        if (i % 2 && (a[i] != a0[i] || b[i] != b0[i]))
            moved_inside++;
        if (fabsf(a[i]) > fabsf(a0[i]) || fabsf(b[i]) > fabsf(b0[i]))
            grew++;
        double d = fabs(round_trip_L(L[i], a[i], b[i]) - L[i]);
        if (d > worst)
            worst = d;
        if (d > 0.02)
            l_off++;
        if (a[i] != a0[i] || b[i] != b0[i]) {
            reduced++;
            /* Fitted colours sit on the gamut's edge: some sRGB component
             * is (nearly) 0 or 1. */
            float lab[3] = {L[i], a[i], b[i]}, rgb[3];
            cz_lab_to_srgb(lab, rgb, 1);
            float edge = 1.0f;
            for (int c = 0; c < 3; c++)
                edge = fminf(edge, fminf(rgb[c], 1.0f - rgb[c]));
            if (edge > 0.02f && L[i] > 1.0f && L[i] < 99.0f)
                not_on_edge++;
        }
    }
    CHECK(moved_inside == 0, "%d in-gamut colours were changed", moved_inside);
    CHECK(grew == 0, "%d colours gained chroma", grew);
    CHECK(l_off == 0, "%d fitted colours change L* by more than 0.02 in sRGB "
          "(worst %.4f)", l_off, worst);
    CHECK(reduced > N / 8, "only %d of %d random colours needed fitting", reduced, N);
    CHECK(not_on_edge == 0, "%d fitted colours stop short of the gamut's edge",
          not_on_edge);
    free(L), free(a), free(b), free(a0), free(b0);
}

/* cz_recombine in strips must equal whole-plane resizing + fitting +
 * conversion, for upsampling, mixed and tiny outputs, 8 and 16 bits. */
static void test_recombine(void)
{
    const int N = 32;
    const int shapes[][3] = {{37, 50, 8},  {300, 257, 16}, {16, 16, 8},
                             {64, 15, 16}, {1, 1, 8},      {33, 200, 8}};
    float *as = malloc((size_t)N * N * sizeof *as), *bs = malloc((size_t)N * N * sizeof *bs);
    if (!as || !bs)
        abort();
    for (int i = 0; i < N * N; i++) {
        as[i] = 160.0f * frand() - 80.0f;
        bs[i] = 160.0f * frand() - 80.0f;
    }
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int W = shapes[k][0], H = shapes[k][1], depth = shapes[k][2];
        const size_t n = (size_t)W * (size_t)H;
        float *L = malloc(n * sizeof *L), *a = malloc(n * sizeof *a),
              *b = malloc(n * sizeof *b);
        cz_image *got = cz_image_new(W, H, 4, depth), *want = cz_image_new(W, H, 4, depth);
        if (!L || !a || !b || !got || !want)
            abort();
        for (size_t i = 0; i < n; i++)
            L[i] = 100.0f * frand();
        CHECK(cz_recombine(L, as, bs, N, got) == CZ_OK, "%s", cz_last_error());
        CHECK(cz_resize_bilinear_f32(as, N, N, a, W, H) == CZ_OK, "resize");
        CHECK(cz_resize_bilinear_f32(bs, N, N, b, W, H) == CZ_OK, "resize");
        cz_fit_gamut(L, a, b, n);
        CHECK(cz_lab_planes_to_image(L, a, b, want) == CZ_OK, "convert");
        size_t bytes = n * 4 * (size_t)(depth / 8);
        CHECK(memcmp(got->data, want->data, bytes) == 0,
              "recombining at %dx%d (%d bits) differs from the whole-plane "
              "reference", W, H, depth);
        free(L), free(a), free(b);
        cz_image_free(got);
        cz_image_free(want);
    }
    cz_image *gray = cz_image_new(4, 4, 1, 8);
    float L[16] = {0};
    CHECK(cz_recombine(L, as, bs, N, gray) == CZ_ERR_INVALID,
          "a gray output image is refused");
    cz_image_free(gray);
    free(as);
    free(bs);
}

/* ---- The fused recombination against a scalar reference ----------------- */

/* The gamut fit as it was first written, one pixel at a time with branches
 * (recombine.c now bisects packed pixels side by side in vector loops): the
 * same constants, the same float operations, so the same results. */
static bool reference_inside(float L, float a, float b)
{
    float fy = (L + 16.0f) / 116.0f;
    float fx = a / 500.0f + fy;
    float fz = fy - b / 200.0f;
    if (!(fz >= 0.0f))
        return false;
    float xyz[3] = {lab_f_inverse(fx), lab_f_inverse(fy), lab_f_inverse(fz)};
    for (int c = 0; c < 3; c++) {
        const float *m = xyzn_to_rgb[c];
        float v = m[0] * xyz[0] + m[1] * xyz[1] + m[2] * xyz[2];
        if (!(v >= -2e-6f && v <= 1.0f + 1e-4f))
            return false;
    }
    return true;
}

static void reference_fit(float L, float *a, float *b)
{
    if (reference_inside(L, *a, *b))
        return;
    float lo = 0.0f, hi = 1.0f;
    for (int i = 0; i < 12; i++) {
        float mid = 0.5f * (lo + hi);
        if (reference_inside(L, mid * *a, mid * *b))
            lo = mid;
        else
            hi = mid;
    }
    *a *= lo;
    *b *= lo;
}

/* cz_fit_gamut against the scalar fit, bit for bit, on more pixels than
 * one chunk (and enough to run in parallel). */
static void test_fit_gamut_reference(void)
{
    const size_t n = 70001;
    float *L = malloc(n * sizeof *L), *a = malloc(n * sizeof *a),
          *b = malloc(n * sizeof *b), *ra = malloc(n * sizeof *ra),
          *rb = malloc(n * sizeof *rb);
    if (!L || !a || !b || !ra || !rb)
        abort();
    for (size_t i = 0; i < n; i++) {
        L[i] = i % 97 == 0 ? (i % 2 ? 100.0f : 0.0f) : 100.0f * frand();
        ra[i] = a[i] = 240.0f * frand() - 120.0f;
        rb[i] = b[i] = 240.0f * frand() - 120.0f;
    }
    cz_fit_gamut(L, a, b, n);
    size_t differ = 0, moved = 0;
    for (size_t i = 0; i < n; i++) {
        float a0 = ra[i], b0 = rb[i];
        reference_fit(L[i], &ra[i], &rb[i]);
        moved += ra[i] != a0 || rb[i] != b0;
        differ += memcmp(&a[i], &ra[i], sizeof *a) != 0 ||
                  memcmp(&b[i], &rb[i], sizeof *b) != 0;
    }
    CHECK(differ == 0, "cz_fit_gamut differs from the scalar fit on %zu of %zu "
          "pixels", differ, n);
    CHECK(moved > n / 4, "only %zu of %zu colours needed fitting", moved, n);
    free(L), free(a), free(b), free(ra), free(rb);
}

/* cz_recombine (upsampling, fit and conversion fused in one pass, rows in
 * parallel, 8-bit samples companded through a table) against the steps one
 * by one on whole planes with nothing shared but the resizer: the scalar
 * fit above, cz_lab_to_srgb's floats (powf), rounded to nearest. Odd sizes
 * and network sizes, 3 and 4 channels, 8 and 16 bits, 1 thread and all:
 * the samples must be identical (the bar is 1 unit; there is no reason for
 * any). */
static void test_recombine_reference(void)
{
    const struct { int W, H, N, C, depth; } cases[] = {
        {4001, 9, 37, 3, 8},  {9, 301, 37, 4, 8},  {333, 257, 32, 3, 8},
        {257, 333, 64, 4, 16}, {640, 481, 224, 3, 8}, {97, 3001, 32, 3, 16},
        {40, 40, 64, 3, 8}, /* under twice the network's size: whole planes */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const int W = cases[k].W, H = cases[k].H, N = cases[k].N;
        const int C = cases[k].C, depth = cases[k].depth;
        const size_t n = (size_t)W * (size_t)H, nn = (size_t)N * (size_t)N;
        const float full = depth == 8 ? 255.0f : 65535.0f;
        float *L = malloc(n * sizeof *L), *a = malloc(n * sizeof *a),
              *b = malloc(n * sizeof *b), *lab = malloc(3 * n * sizeof *lab),
              *as = malloc(nn * sizeof *as), *bs = malloc(nn * sizeof *bs);
        cz_image *got = cz_image_new(W, H, C, depth);
        cz_image *one = cz_image_new(W, H, C, depth);
        if (!L || !a || !b || !lab || !as || !bs || !got || !one)
            abort();
        /* The network's range of a*b*, smooth with noise, so that the
         * upsampled colours cross the gamut's edge everywhere. */
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                as[(size_t)i * N + j] = 100.0f * sinf(0.3f * (float)j) * cosf(0.2f * (float)i) +
                                        20.0f * frand() - 10.0f;
                bs[(size_t)i * N + j] = 110.0f * sinf(0.25f * (float)(i + j)) +
                                        20.0f * frand() - 10.0f;
            }
        for (size_t i = 0; i < n; i++)
            L[i] = i % 53 == 0 ? (i % 2 ? 100.0f : 0.0f) : 100.0f * frand();

        CHECK(cz_recombine(L, as, bs, N, got) == CZ_OK, "%s", cz_last_error());
        int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        CHECK(cz_recombine(L, as, bs, N, one) == CZ_OK, "%s", cz_last_error());
        omp_set_num_threads(threads);
        size_t bytes = n * (size_t)C * (size_t)(depth / 8);
        CHECK(memcmp(got->data, one->data, bytes) == 0,
              "%dx%d from %d: 1 thread and %d differ", W, H, N, threads);

        CHECK(cz_resize_bilinear_f32(as, N, N, a, W, H) == CZ_OK, "resize");
        CHECK(cz_resize_bilinear_f32(bs, N, N, b, W, H) == CZ_OK, "resize");
        size_t fitted = 0;
        for (size_t i = 0; i < n; i++) {
            float a0 = a[i];
            reference_fit(L[i], &a[i], &b[i]);
            fitted += a[i] != a0;
            lab[3 * i] = L[i];
            lab[3 * i + 1] = a[i];
            lab[3 * i + 2] = b[i];
        }
        cz_lab_to_srgb(lab, lab, n);
        unsigned worst = 0;
        size_t differ = 0, at = 0;
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) {
                unsigned want = (unsigned)(lab[3 * i + c] * full + 0.5f);
                size_t s = i * (size_t)C + (size_t)c;
                unsigned have = depth == 8 ? ((uint8_t *)got->data)[s]
                                           : ((uint16_t *)got->data)[s];
                unsigned d = want > have ? want - have : have - want;
                if (d) {
                    differ++;
                    at = i;
                }
                worst = d > worst ? d : worst;
            }
        CHECK(differ == 0 && worst <= 1,
              "%dx%d, %d channels, %d bits, from %dx%d: %zu samples differ from "
              "the reference, by up to %u (one at pixel %zu)",
              W, H, C, depth, N, N, differ, worst, at);
        CHECK(fitted > n / 8, "%dx%d: only %zu of %zu pixels needed fitting", W,
              H, fitted, n);
        free(L), free(a), free(b), free(lab), free(as), free(bs);
        cz_image_free(got);
        cz_image_free(one);
    }
}

/* ---- End to end ----------------------------------------------------------- */

/* Largest |L*(out) - L*(in)| over the image. */
static double max_L_error(const cz_image *in, const cz_image *out)
{
    size_t n = (size_t)in->width * (size_t)in->height;
    float *Li = malloc(n * sizeof *Li), *Lo = malloc(n * sizeof *Lo);
    double worst = INFINITY;
    if (Li && Lo && cz_luminance_plane(in, Li) == CZ_OK &&
        cz_luminance_plane(out, Lo) == CZ_OK) {
        worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)Li[i] - (double)Lo[i]);
            if (!(d <= worst))
                worst = d;
        }
    }
    free(Li);
    free(Lo);
    return worst;
}

/* Mean chroma of the output, to see the network did colour it. */
static double mean_chroma(const cz_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    float *p = malloc(3 * n * sizeof *p);
    double sum = 0;
    if (p && cz_image_to_lab_planes(img, p, p + n, p + 2 * n) == CZ_OK)
        for (size_t i = 0; i < n; i++)
            sum += hypot(p[n + i], p[2 * n + i]);
    free(p);
    return n ? sum / (double)n : 0;
}

static bool alpha_equal(const cz_image *in, const cz_image *out)
{
    size_t n = (size_t)in->width * (size_t)in->height;
    for (size_t i = 0; i < n; i++) {
        size_t si = i * (size_t)in->channels + (size_t)in->channels - 1;
        size_t so = i * 4 + 3;
        unsigned a = in->depth == 8 ? ((uint8_t *)in->data)[si] : ((uint16_t *)in->data)[si];
        unsigned b = in->depth == 8 ? ((uint8_t *)out->data)[so] : ((uint16_t *)out->data)[so];
        if (a != b)
            return false;
    }
    return true;
}

static void colorize_and_check(cz_colorizer *cz, int W, int H, int C, int depth,
                               const char *what)
{
    cz_image *in = pattern_image(W, H, C, depth, (uint32_t)(W * 31 + H));
    cz_image *out = NULL;
    CHECK(in != NULL, "%s: allocation", what);
    if (!in)
        return;
    cz_status s = cz_colorize_image(cz, in, &out);
    CHECK(s == CZ_OK && out, "%s: %s", what, cz_last_error());
    if (s == CZ_OK && out) {
        bool alpha = C == 2 || C == 4;
        CHECK(out->width == W && out->height == H && out->depth == depth &&
                  out->channels == (alpha ? 4 : 3),
              "%s: output is %dx%d, %d channels, %d bits", what, out->width,
              out->height, out->channels, out->depth);
        double e = max_L_error(in, out);
        CHECK(e <= L_TOLERANCE, "%s: L* moved by up to %.3f", what, e);
        if (alpha)
            CHECK(alpha_equal(in, out), "%s: alpha changed", what);
    }
    cz_image_free(in);
    cz_image_free(out);
}

static void test_colorize(void)
{
    cz_colorizer *cz = NULL;
    cz_status s = cz_colorizer_load(model_path, NULL, &cz);
    CHECK(s == CZ_OK, "loading the tiny model: %s", cz_last_error());
    if (s != CZ_OK)
        return;
    cz_colorizer_info info;
    cz_colorizer_get_info(cz, &info);
    /* The default precision is bf16 exactly where the CPU has it. */
    CHECK(strcmp(info.arch, "unet") == 0 && info.size == TINY_SIZE &&
              info.trained_size == TINY_SIZE && info.bf16 == cz_cpu_has_bf16() &&
              info.params > 0,
          "info: %s, size %d, trained %d, params %ld", info.arch, info.size,
          info.trained_size, info.params);

    /* The photo: 12 megapixels keep their lightness. */
    colorize_and_check(cz, 4000, 3000, 1, 8, "4000x3000 gray");

    colorize_and_check(cz, 640, 480, 3, 8, "colour 8-bit");
    colorize_and_check(cz, 320, 200, 1, 16, "gray 16-bit");
    colorize_and_check(cz, 200, 300, 3, 16, "colour 16-bit");
    colorize_and_check(cz, 300, 200, 2, 8, "gray+alpha 8-bit");
    colorize_and_check(cz, 256, 256, 4, 16, "RGBA 16-bit");
    colorize_and_check(cz, 1, 1, 1, 8, "1x1");
    colorize_and_check(cz, 33, 47, 3, 8, "33x47");
    colorize_and_check(cz, 7, 1000, 4, 8, "7x1000");
    colorize_and_check(cz, 1000, 7, 1, 16, "1000x7");
    colorize_and_check(cz, 257, 255, 2, 16, "257x255");

    /* A gray input comes out coloured, and the same input gives the same
     * output (the graph is reused across images). */
    cz_image *in = pattern_image(300, 200, 1, 8, 5), *o1 = NULL, *o2 = NULL;
    CHECK(cz_colorize_image(cz, in, &o1) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_colorize_image(cz, in, &o2) == CZ_OK, "%s", cz_last_error());
    if (o1 && o2) {
        printf("mean chroma of the tiny model's colours: %.1f\n", mean_chroma(o1));
        CHECK(mean_chroma(o1) > 10, "the output has little colour (mean chroma %.3f)",
              mean_chroma(o1));
        CHECK(memcmp(o1->data, o2->data, 300 * 200 * 3) == 0,
              "the same photo coloured twice differs");
    }
    cz_image_free(in);
    cz_image_free(o1);
    cz_image_free(o2);

    /* Bad arguments. */
    cz_image *out = (cz_image *)&info; /* must be set to NULL */
    CHECK(cz_colorize_image(cz, NULL, &out) == CZ_ERR_INVALID && out == NULL,
          "NULL image");
    cz_image bad = {.width = 0, .height = 5, .channels = 1, .depth = 8,
                    .data = &info};
    CHECK(cz_colorize_image(cz, &bad, &out) == CZ_ERR_INVALID && out == NULL,
          "zero width");
    bad = (cz_image){.width = 5, .height = 5, .channels = 3, .depth = 12,
                     .data = &info};
    CHECK(cz_colorize_image(cz, &bad, &out) == CZ_ERR_INVALID &&
              strstr(cz_last_error(), "12 bits"),
          "12-bit samples: %s", cz_last_error());
    CHECK(cz_colorize_image(NULL, &bad, &out) == CZ_ERR_INVALID, "NULL colorizer");
    cz_colorizer_free(cz);
    cz_colorizer_free(NULL);
}

static void test_options(void)
{
    cz_colorizer *cz = (cz_colorizer *)tmpdir;
    cz_colorizer_options opt = {.size = 100};
    CHECK(cz_colorizer_load(model_path, &opt, &cz) == CZ_ERR_INVALID && cz == NULL,
          "size 100 accepted");
    CHECK(strstr(cz_last_error(), "multiple of 32"), "message: %s", cz_last_error());
    opt.size = 8192;
    CHECK(cz_colorizer_load(model_path, &opt, &cz) == CZ_ERR_INVALID, "size 8192");
    opt.size = -32;
    CHECK(cz_colorizer_load(model_path, &opt, &cz) == CZ_ERR_INVALID, "size -32");

    /* The built-in model: the file $COLORIZE_MODEL names, else the one
     * compiled in; a missing one is named. */
    setenv("COLORIZE_MODEL", "/nonexistent/default.safetensors", 1);
    CHECK(cz_colorizer_load(NULL, NULL, &cz) == CZ_ERR_IO && cz == NULL,
          "a missing built-in model loaded");
    CHECK(strstr(cz_last_error(), "built-in") &&
              strstr(cz_last_error(), "/nonexistent/default.safetensors"),
          "message: %s", cz_last_error());
    setenv("COLORIZE_MODEL", model_path, 1);
    CHECK(cz_colorizer_load(NULL, NULL, &cz) == CZ_OK && cz, "built-in model: %s",
          cz_last_error());
    cz_colorizer_free(cz);
    cz = (cz_colorizer *)tmpdir;
    unsetenv("COLORIZE_MODEL");
    CHECK(strcmp(cz_default_model_path(), CZ_DEFAULT_MODEL) == 0 &&
              strstr(cz_default_model_path(), "cache/models/default.safetensors"),
          "the compiled-in default is %s", cz_default_model_path());
    CHECK(cz_colorizer_load(model_path, NULL, NULL) == CZ_ERR_INVALID, "NULL out");

    /* Other sizes: the unet pads odd sides inside, so any multiple of 32
     * runs (224 is the ResNet models' size); the colours change, the
     * lightness does not. */
    const int sizes[] = {224, 512, 32};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        opt.size = sizes[i];
        cz_status s = cz_colorizer_load(model_path, &opt, &cz);
        CHECK(s == CZ_OK, "unet at %d: %s", sizes[i], cz_last_error());
        if (s == CZ_OK) {
            cz_colorizer_info info;
            cz_colorizer_get_info(cz, &info);
            CHECK(info.size == sizes[i] && info.trained_size == TINY_SIZE,
                  "info at %d: size %d, trained %d", sizes[i], info.size,
                  info.trained_size);
            colorize_and_check(cz, 700, 300, 3, 8, "network at another size");
        }
        cz_colorizer_free(cz);
    }

    /* Native bf16 (what auto picks) without oneDNN's bf16 kernels would
     * skip every bf16 check on the very CPUs that use bf16. */
    CHECK(!cz_cpu_has_bf16() || cz_dnnl_has_bf16_kernels(),
          "native bf16, yet no bf16 kernels: the capability checks disagree");
    opt = (cz_colorizer_options){.precision = CZ_PRECISION_BF16};
    cz_status s = cz_colorizer_load(model_path, &opt, &cz);
    if (bf16_runs()) {
        CHECK(s == CZ_OK, "bf16: %s", cz_last_error());
        if (s == CZ_OK) {
            cz_colorizer_info info;
            cz_colorizer_get_info(cz, &info);
            CHECK(info.bf16, "bf16 not reported");
            colorize_and_check(cz, 300, 400, 1, 8, "bf16");
        }
    } else {
        CHECK(s == CZ_ERR_INVALID && cz == NULL && strstr(cz_last_error(), "AVX-512"),
              "bf16 without bf16 kernels: status %d: %s", (int)s, cz_last_error());
        /* auto asks for bf16 only where the CPU has native bf16. */
        opt.precision = CZ_PRECISION_AUTO;
        s = cz_colorizer_load(model_path, &opt, &cz);
        CHECK(s == CZ_OK, "auto without bf16 kernels: %s", cz_last_error());
        if (s == CZ_OK) {
            cz_colorizer_info info;
            cz_colorizer_get_info(cz, &info);
            CHECK(!info.bf16, "auto chose bf16 without bf16 kernels");
        }
    }
    cz_colorizer_free(cz);
    opt = (cz_colorizer_options){.precision = CZ_PRECISION_FP32};
    s = cz_colorizer_load(model_path, &opt, &cz);
    CHECK(s == CZ_OK, "fp32: %s", cz_last_error());
    if (s == CZ_OK) {
        cz_colorizer_info info;
        cz_colorizer_get_info(cz, &info);
        CHECK(!info.bf16, "fp32 asked, bf16 reported");
        colorize_and_check(cz, 300, 400, 1, 8, "fp32");
    }
    cz_colorizer_free(cz);
}

/* ---- Malformed model files ------------------------------------------------ */

static void expect_rejected(const char *path, const char *what, const char *needle)
{
    cz_colorizer *cz = (cz_colorizer *)tmpdir;
    cz_error_clear();
    cz_status s = cz_colorizer_load(path, NULL, &cz);
    const char *msg = cz_last_error();
    CHECK(s != CZ_OK && cz == NULL, "%s: accepted", what);
    CHECK(strstr(msg, path) != NULL, "%s: the message does not name the file: %s",
          what, msg);
    if (needle)
        CHECK(strstr(msg, needle) != NULL, "%s: the message lacks '%s': %s",
              what, needle, msg);
    if (s == CZ_OK)
        cz_colorizer_free(cz);
}

/* The good file's tensors, read back in full, so variants can be written. */
typedef struct {
    int n;
    cz_st_entry e[256];
    float *data[256];
    char *names[256];
    const char *meta[64];
} tensors;

/* Every metadata key models/model.c writes. */
static const char *const meta_keys[] = {
    "format", "arch", "width", "size", "freeze_encoder", "encoder_layout",
    "encoder_width", "classes", "no_dropout", "params"};

static int read_tensors(const char *path, tensors *t)
{
    cz_safetensors *st = NULL;
    memset(t, 0, sizeof *t);
    if (cz_safetensors_open(path, &st) != CZ_OK)
        return -1;
    int m = 0;
    for (size_t k = 0; k < sizeof meta_keys / sizeof *meta_keys; k++) {
        const char *v = cz_safetensors_metadata(st, meta_keys[k]);
        if (v) {
            t->meta[m++] = meta_keys[k];
            t->meta[m++] = strdup(v);
        }
    }
    t->meta[m] = NULL;
    t->n = cz_safetensors_count(st);
    if (t->n > 256)
        t->n = 256;
    for (int i = 0; i < t->n; i++) {
        cz_st_entry *e = &t->e[i];
        t->names[i] = strdup(cz_safetensors_name(st, i));
        e->name = t->names[i];
        e->dtype = CZ_DT_F32;
        cz_safetensors_info(st, e->name, NULL, &e->ndim, e->shape);
        int64_t count = 1;
        for (int d = 0; d < e->ndim; d++)
            count *= e->shape[d];
        t->data[i] = malloc((size_t)(count ? count : 1) * sizeof(float));
        cz_safetensors_read_f32(st, e->name, e->shape, e->ndim, t->data[i]);
        e->data = t->data[i];
    }
    cz_safetensors_close(st);
    return 0;
}

static void free_tensors(tensors *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->names[i]);
        free(t->data[i]);
    }
    for (int i = 1; t->meta[i - 1]; i += 2)
        free((char *)t->meta[i]);
}

/* Writes a copy of t with metadata key set to value (value NULL: removed). */
static void write_with_meta(const tensors *t, const char *path, const char *key,
                            const char *value, const cz_st_entry *e, int n)
{
    const char *meta[64];
    int m = 0;
    for (int i = 0; t->meta[i]; i += 2)
        if (strcmp(t->meta[i], key) != 0) {
            meta[m++] = t->meta[i];
            meta[m++] = t->meta[i + 1];
        }
    if (value) {
        meta[m++] = key;
        meta[m++] = value;
    }
    meta[m] = NULL;
    CHECK(cz_safetensors_write(path, meta, e, n) == CZ_OK, "writing %s: %s",
          path, cz_last_error());
}

static void test_bad_models(void)
{
    size_t n = 0;
    char *good = read_file(model_path, &n);
    CHECK(good && n > 64, "reading the tiny model");
    if (!good || n <= 64)
        return;
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++)
        header_len |= (uint64_t)(unsigned char)good[i] << (8 * i);

    expect_rejected(tmp_path("missing.safetensors"), "missing file", NULL);

    char *p = tmp_path("empty.safetensors");
    write_file(p, good, 0);
    expect_rejected(p, "zero-length", NULL);

    p = tmp_path("seven.safetensors");
    write_file(p, good, 7);
    expect_rejected(p, "shorter than the length field", NULL);

    p = tmp_path("half.safetensors");
    write_file(p, good, n / 2);
    expect_rejected(p, "truncated to half", NULL);

    p = tmp_path("short.safetensors");
    write_file(p, good, n - 4);
    expect_rejected(p, "last tensor runs past the end", NULL);

    p = tmp_path("in_header.safetensors");
    write_file(p, good, 8 + header_len / 2);
    expect_rejected(p, "truncated in the header", NULL);

    char *bad = malloc(n);
    if (!bad)
        abort();

    memcpy(bad, good, n); /* a length field far past the end */
    memset(bad, 0xFF, 8);
    p = tmp_path("magic.safetensors");
    write_file(p, bad, n);
    expect_rejected(p, "absurd header length", NULL);

    memcpy(bad, good, n); /* not JSON */
    bad[8] = 'X';
    p = tmp_path("json.safetensors");
    write_file(p, bad, n);
    expect_rejected(p, "header not JSON", NULL);

    memcpy(bad, good, n); /* a data offset pushed past the end of the file */
    char *off = strstr(bad + 8, "\"data_offsets\":[");
    if (off && off < bad + 8 + header_len) {
        off += strlen("\"data_offsets\":[");
        *off = '9';
        p = tmp_path("offsets.safetensors");
        write_file(p, bad, n);
        expect_rejected(p, "data offsets past the end", NULL);
    } else {
        CHECK(0, "no data_offsets in the tiny model's header");
    }
    free(bad);
    free(good);

    /* Some other kind of file. */
    cz_image *img = pattern_image(16, 16, 3, 8, 1);
    p = tmp_path("photo.safetensors");
    CHECK(cz_image_save(tmp_path("photo.jpg"), img, 90) == CZ_OK &&
              rename(tmp_path("photo.jpg"), p) == 0,
          "%s", cz_last_error());
    cz_image_free(img);
    expect_rejected(p, "a JPEG", NULL);

    /* Well-formed files that do not hold a colouriser. */
    tensors t;
    CHECK(read_tensors(model_path, &t) == 0 && t.n > 2, "reading tensors");
    if (t.n <= 2)
        return;
    write_with_meta(&t, p = tmp_path("arch.safetensors"), "arch", "bogus", t.e, t.n);
    expect_rejected(p, "unknown architecture", "bogus");
    write_with_meta(&t, p = tmp_path("noarch.safetensors"), "arch", NULL, t.e, t.n);
    expect_rejected(p, "no architecture", NULL);
    write_with_meta(&t, p = tmp_path("width.safetensors"), "width", "16", t.e, t.n);
    expect_rejected(p, "metadata width disagrees with the tensors", NULL);
    write_with_meta(&t, p = tmp_path("widthx.safetensors"), "width", "-8x", t.e, t.n);
    expect_rejected(p, "metadata width not a number", NULL);

    /* Missing and extra tensors, wrong shapes. */
    write_with_meta(&t, p = tmp_path("missing_tensor.safetensors"), "", NULL,
                    t.e + 1, t.n - 1);
    expect_rejected(p, "a missing tensor", t.e[0].name);

    cz_st_entry *e = malloc(((size_t)t.n + 1) * sizeof *e);
    if (!e)
        abort();
    memcpy(e, t.e, (size_t)t.n * sizeof *e);
    float extra[4] = {0};
    e[t.n] = (cz_st_entry){.name = "zz.extra.weight", .dtype = CZ_DT_F32,
                           .ndim = 1, .shape = {4}, .data = extra};
    write_with_meta(&t, p = tmp_path("extra.safetensors"), "", NULL, e, t.n + 1);
    expect_rejected(p, "an unexpected tensor", "zz.extra.weight");

    /* The first tensor of 4 dimensions, its first two swapped... */
    int k = 0;
    while (k < t.n && !(t.e[k].ndim == 4 && t.e[k].shape[0] != t.e[k].shape[1]))
        k++;
    CHECK(k < t.n, "no 4-d tensor with OC != IC");
    if (k < t.n) {
        memcpy(e, t.e, (size_t)t.n * sizeof *e);
        int64_t tmp = e[k].shape[0];
        e[k].shape[0] = e[k].shape[1];
        e[k].shape[1] = tmp;
        write_with_meta(&t, p = tmp_path("shape.safetensors"), "", NULL, e, t.n);
        expect_rejected(p, "a wrong shape", t.e[k].name);
        /* ... or flattened to one dimension of the same size. */
        memcpy(e, t.e, (size_t)t.n * sizeof *e);
        e[k].ndim = 1;
        e[k].shape[0] = t.e[k].shape[0] * t.e[k].shape[1] * t.e[k].shape[2] *
                        t.e[k].shape[3];
        write_with_meta(&t, p = tmp_path("flat.safetensors"), "", NULL, e, t.n);
        expect_rejected(p, "a flattened tensor", t.e[k].name);
    }

    /* Damaged weights: NaN everywhere in one tensor. The file is well formed,
     * so either loading or colouring must refuse it; no image comes out. */
    memcpy(e, t.e, (size_t)t.n * sizeof *e);
    int64_t count = 1;
    for (int d = 0; d < t.e[k < t.n ? k : 0].ndim; d++)
        count *= t.e[k < t.n ? k : 0].shape[d];
    for (int64_t i = 0; i < count; i++)
        t.data[k < t.n ? k : 0][i] = NAN;
    write_with_meta(&t, p = tmp_path("nan.safetensors"), "", NULL, e, t.n);
    cz_colorizer *cz = NULL;
    cz_status s = cz_colorizer_load(p, NULL, &cz);
    if (s == CZ_OK) {
        cz_image *in = pattern_image(40, 30, 1, 8, 3), *out = (cz_image *)e;
        s = cz_colorize_image(cz, in, &out);
        CHECK(s == CZ_ERR_NUMERIC && out == NULL, "NaN weights: status %d (%s)",
              (int)s, cz_last_error());
        CHECK(strstr(cz_last_error(), "NaN") != NULL, "message: %s", cz_last_error());
        cz_image_free(in);
        cz_colorizer_free(cz);
    } else {
        CHECK(strstr(cz_last_error(), p) != NULL, "NaN weights: %s", cz_last_error());
    }
    free(e);
    free_tensors(&t);

    /* A discriminator is a model but not a colouriser. */
    p = tmp_path("patchgan.safetensors");
    if (make_tiny_model(p, "patchgan", 3) == 0)
        expect_rejected(p, "a discriminator", "patchgan");
    else
        CHECK(0, "making a patchgan: %s", cz_last_error());
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    snprintf(model_path, sizeof model_path, "%s/tiny-unet.safetensors", tmpdir);
    test_luminance_plane();
    test_fit_gamut();
    test_recombine();
    test_fit_gamut_reference();
    test_recombine_reference();
    if (make_tiny_model(model_path, "unet", 1) == 0) {
        test_colorize();
        test_options();
        test_bad_models();
    } else {
        CHECK(0, "cannot make the tiny model: %s", cz_last_error());
    }
    remove_tree(tmpdir);
    return check_finish("test_pipeline");
}
