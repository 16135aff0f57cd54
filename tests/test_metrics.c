/* Evaluation metrics: CIEDE2000 against the 34 published test pairs of
 * Sharma, Wu & Dalal (2005); every metric against numpy/skimage on the
 * fixtures of tools/make_metric_fixtures.py; the grayscale baseline; edge
 * cases (identical images, the PSNR cap, AuC's threshold rule, sizes that
 * do not fit); results that do not depend on the thread count; and the
 * report helpers (base64, example choice, CSV quoting). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/error.h"
#include "check.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "image/image.h"

#define FIXTURES "tests/fixtures/metrics/"

/* The fixtures are recomputed by skimage in float64; we match PSNR, SSIM
 * and CF to rounding. Delta E and AuC go through our float32 CIELab (within
 * ~1e-5 of skimage's), so they get a little more room. */
#define TOL_EXACT 1e-12
#define TOL_LAB 1e-5

/* Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula:
 * implementation notes, supplementary test data, and mathematical
 * observations", Color Res. Appl. 30(1), 2005, Table 1: L1 a1 b1, L2 a2 b2,
 * and Delta E00 to four decimals. */
static const double SHARMA[34][7] = {
    {50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425},
    {50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615},
    {50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412},
    {50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000},
    {50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000},
    {50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000},
    {50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669},
    {50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669},
    {50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792},
    {50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792},
    {50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195},
    {50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195},
    {50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045},
    {50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045},
    {50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461},
    {50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065},
    {50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492},
    {50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977},
    {50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030},
    {50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535},
    {50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000},
    {50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000},
    {50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000},
    {50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000},
    {60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644},
    {63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630},
    {61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731},
    {35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645},
    {22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373},
    {36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146},
    {90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441},
    {90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381},
    {6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377},
    {2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082},
};

static void test_sharma(void)
{
    for (int i = 0; i < 34; i++) {
        const double *s = SHARMA[i];
        double de = cz_ciede2000(s[0], s[1], s[2], s[3], s[4], s[5]);
        /* The table is rounded to 4 decimals. */
        CHECK(fabs(de - s[6]) <= 0.5e-4 + 1e-12,
              "Sharma pair %d: Delta E00 %.6f, published %.4f", i + 1, de, s[6]);
        double back = cz_ciede2000(s[3], s[4], s[5], s[0], s[1], s[2]);
        CHECK(fabs(back - de) <= 1e-12, "Sharma pair %d: not symmetric: %.15g vs %.15g",
              i + 1, de, back);
    }
    CHECK(cz_ciede2000(50, 10, -20, 50, 10, -20) == 0.0, "same colour not 0");
}

/* ---- Images ------------------------------------------------------------ */

static cz_image *load_rgb8(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, FIXTURES "%s/%s", dir, name);
    cz_image *raw = NULL, *rgb = NULL;
    if (cz_image_load(path, NULL, &raw) != CZ_OK) {
        CHECK(0, "cannot load %s: %s", path, cz_last_error());
        return NULL;
    }
    if (cz_eval_rgb8(raw, &rgb) != CZ_OK)
        CHECK(0, "cz_eval_rgb8(%s): %s", path, cz_last_error());
    cz_image_free(raw);
    return rgb;
}

static double jnum(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v)) {
        CHECK(0, "expected.json: no number \"%s\"", key);
        return NAN;
    }
    return json_number_value(v);
}

static void check_metric(const char *what, const char *name, const char *key,
                         double got, double want, double tol)
{
    double err = fabs(got - want) / (fabs(want) > 1.0 ? fabs(want) : 1.0);
    CHECK(err <= tol, "%s %s %s: %.12g, skimage %.12g (err %.3g)", name, what,
          key, got, want, err);
}

static void check_all(const char *what, const char *name, const cz_metrics *m,
                      json_t *want, double tol_lab)
{
    check_metric(what, name, "psnr", m->psnr, jnum(want, "psnr"), TOL_EXACT);
    check_metric(what, name, "ssim", m->ssim, jnum(want, "ssim"), TOL_EXACT);
    check_metric(what, name, "cf", m->cf, jnum(want, "cf"), TOL_EXACT);
    check_metric(what, name, "cf_truth", m->cf_truth, jnum(want, "cf_truth"), TOL_EXACT);
    check_metric(what, name, "delta_e", m->delta_e, jnum(want, "delta_e"), tol_lab);
    check_metric(what, name, "auc", m->auc, jnum(want, "auc"), tol_lab);
}

static void test_fixtures(void)
{
    json_error_t jerr;
    json_t *root = json_load_file(FIXTURES "expected.json", 0, &jerr);
    CHECK(root != NULL, "expected.json: %s (line %d)", jerr.text, jerr.line);
    if (!root)
        return;
    json_t *images = json_object_get(root, "images");
    CHECK(json_array_size(images) == 3, "expected.json: %zu images",
          json_array_size(images));
    CHECK(jnum(root, "psnr_cap") == CZ_PSNR_CAP, "the fixture's PSNR cap differs");
    size_t i;
    json_t *im;
    json_array_foreach(images, i, im) {
        const char *name = json_string_value(json_object_get(im, "name"));
        cz_image *real = load_rgb8("real", name), *pred = load_rgb8("pred", name);
        cz_image *gray_sk = load_rgb8("gray", name), *gray = NULL;
        if (!real || !pred || !gray_sk)
            goto next;
        CHECK(real->width == (int)jnum(im, "width") && real->height == (int)jnum(im, "height"),
              "%s: size %dx%d", name, real->width, real->height);
        cz_metrics m;
        cz_status s = cz_eval_metrics(pred, real, &m);
        CHECK(s == CZ_OK, "%s: %s", name, cz_last_error());
        if (s == CZ_OK)
            check_all("model", name, &m, json_object_get(im, "model"), TOL_LAB);
        /* skimage's grayscale baseline, measured by us */
        s = cz_eval_metrics(gray_sk, real, &m);
        CHECK(s == CZ_OK, "%s: %s", name, cz_last_error());
        if (s == CZ_OK)
            check_all("gray", name, &m, json_object_get(im, "gray"), TOL_LAB);

        /* our grayscale baseline against skimage's: float32 against float64
         * Lab may round a sample the other way, never further. */
        s = cz_eval_gray_baseline(real, &gray);
        CHECK(s == CZ_OK, "%s: gray baseline: %s", name, cz_last_error());
        if (s == CZ_OK) {
            size_t n = (size_t)real->width * (size_t)real->height * 3, off = 0;
            int worst = 0;
            const uint8_t *p = gray->data, *q = gray_sk->data;
            for (size_t k = 0; k < n; k++) {
                int d = abs((int)p[k] - (int)q[k]);
                worst = d > worst ? d : worst;
                off += d != 0;
            }
            CHECK(worst <= 1 && off * 100 <= n, "%s: gray baseline differs from "
                  "skimage's by up to %d in %zu of %zu samples", name, worst, off, n);
            s = cz_eval_metrics(gray, real, &m);
            CHECK(s == CZ_OK, "%s: %s", name, cz_last_error());
            json_t *want = json_object_get(json_object_get(im, "gray"), "delta_e");
            CHECK(s == CZ_OK && fabs(m.delta_e - json_number_value(want)) < 1e-2,
                  "%s: our gray baseline's Delta E %.6f, skimage's %.6f", name,
                  m.delta_e, json_number_value(want));
        }
    next:
        cz_image_free(real);
        cz_image_free(pred);
        cz_image_free(gray_sk);
        cz_image_free(gray);
    }
    json_decref(root);
}

/* A reproducible colourful test image. */
static cz_image *random_rgb8(int w, int h, uint32_t seed)
{
    cz_image *img = cz_image_new(w, h, 3, 8);
    if (!img)
        return NULL;
    uint8_t *p = img->data;
    uint32_t s = seed;
    for (size_t k = 0; k < (size_t)w * (size_t)h * 3; k++) {
        s = s * 1664525u + 1013904223u;
        size_t px = k / 3;
        int smooth = (int)((px % (size_t)w) * 200 / (size_t)w) + (int)(k % 3) * 20;
        p[k] = (uint8_t)((smooth + (int)(s >> 26)) & 255);
    }
    return img;
}

static void test_identical(void)
{
    cz_image *a = random_rgb8(40, 30, 7);
    cz_metrics m;
    CHECK(cz_eval_metrics(a, a, &m) == CZ_OK, "%s", cz_last_error());
    CHECK(m.psnr == CZ_PSNR_CAP, "identical: PSNR %g, want the cap %g", m.psnr, CZ_PSNR_CAP);
    CHECK(fabs(m.ssim - 1.0) < 1e-12, "identical: SSIM %.17g", m.ssim);
    CHECK(m.delta_e == 0.0, "identical: Delta E %g", m.delta_e);
    CHECK(m.auc == 1.0, "identical: AuC %.17g", m.auc);
    CHECK(m.cf == m.cf_truth, "identical: CF %g vs %g", m.cf, m.cf_truth);

    /* One level off in every sample: MSE 1, PSNR 20 log10(255). */
    cz_image *b = cz_image_new(40, 30, 3, 8);
    memcpy(b->data, a->data, 40 * 30 * 3);
    uint8_t *p = b->data;
    for (int k = 0; k < 40 * 30 * 3; k++)
        p[k] = (uint8_t)(p[k] < 255 ? p[k] + 1 : 254);
    CHECK(cz_eval_metrics(b, a, &m) == CZ_OK, "%s", cz_last_error());
    CHECK(fabs(m.psnr - 20.0 * log10(255.0)) < 1e-12, "off by one: PSNR %.15g", m.psnr);
    cz_image_free(a);
    cz_image_free(b);
}

static void test_gray_baseline(void)
{
    /* A gray truth is its own baseline: R = G = B survives L* -> sRGB. */
    cz_image *t = cz_image_new(16, 12, 3, 8);
    uint8_t *p = t->data;
    for (int k = 0; k < 16 * 12; k++)
        p[3 * k] = p[3 * k + 1] = p[3 * k + 2] = (uint8_t)(k * 255 / (16 * 12 - 1));
    cz_image *g = NULL;
    CHECK(cz_eval_gray_baseline(t, &g) == CZ_OK, "%s", cz_last_error());
    if (g) {
        int worst = 0;
        for (int k = 0; k < 16 * 12 * 3; k++) {
            int d = abs((int)((uint8_t *)g->data)[k] - (int)p[k]);
            worst = d > worst ? d : worst;
        }
        CHECK(worst == 0, "gray truth: baseline differs by %d", worst);
        cz_metrics m;
        CHECK(cz_eval_metrics(g, t, &m) == CZ_OK && m.auc == 1.0 && m.delta_e < 1e-3,
              "gray truth: AuC %g, Delta E %g", m.auc, m.delta_e);
    }
    cz_image_free(g);

    /* A colourful truth: the baseline has (almost) no colour. */
    cz_image *c = random_rgb8(33, 21, 3);
    CHECK(cz_eval_gray_baseline(c, &g) == CZ_OK, "%s", cz_last_error());
    if (g) {
        double cf = cz_eval_colourfulness(g->data, 33 * 21);
        CHECK(cf < 1.0, "baseline colourfulness %g", cf);
    }
    cz_image_free(g);
    cz_image_free(c);
    cz_image_free(t);
}

static void test_auc_rule(void)
{
    /* Distances 0, 0.5, 1, 149.5, 150, 150.5, 200: counts of t in 0..150
     * with d <= t are 151, 150, 150, 1, 1, 0, 0. */
    const float a1[7] = {0, 0.5f, 0, 149.5f, 90, 150.5f, -120};
    const float b1[7] = {0, 0, 1, 0, 120, 0, 160};
    const float zero[7] = {0};
    double auc = cz_eval_ab_auc(a1, b1, zero, zero, 7);
    double want = (151.0 + 150 + 150 + 1 + 1 + 0 + 0) / (151.0 * 7);
    CHECK(fabs(auc - want) < 1e-15, "AuC %.17g, want %.17g", auc, want);
    CHECK(cz_eval_ab_auc(zero, zero, zero, zero, 7) == 1.0, "identical ab: AuC not 1");

    /* The plane mean is the mean of the pairs. */
    const float L1[2] = {50, 60}, A1[2] = {2.6772f, -34.0099f}, B1[2] = {-79.7751f, 36.2677f};
    const float L2[2] = {50, 60.4626f}, A2[2] = {0, -34.1751f}, B2[2] = {-82.7485f, 39.4387f};
    double mean = cz_eval_mean_ciede2000(L1, A1, B1, L2, A2, B2, 2);
    double want_mean = 0.5 * (cz_ciede2000(L1[0], A1[0], B1[0], L2[0], A2[0], B2[0]) +
                              cz_ciede2000(L1[1], A1[1], B1[1], L2[1], A2[1], B2[1]));
    CHECK(fabs(mean - want_mean) < 1e-12, "mean Delta E %.15g vs %.15g", mean, want_mean);
}

static void test_colourfulness(void)
{
    /* A single colour: no spread, CF = 0.3 * |(rg, yb)|. (200, 100, 50):
     * rg = 100, yb = 100, CF = 0.3 * sqrt(2) * 100. */
    uint8_t px[4 * 3];
    for (int i = 0; i < 4; i++) {
        px[3 * i] = 200;
        px[3 * i + 1] = 100;
        px[3 * i + 2] = 50;
    }
    double cf = cz_eval_colourfulness(px, 4);
    CHECK(fabs(cf - 30.0 * sqrt(2.0)) < 1e-12, "flat colour CF %.15g", cf);
    /* Two pixels, gray and pure red: rg = {0, 255}, yb = {0, 127.5}. */
    const uint8_t two[6] = {0, 0, 0, 255, 0, 0};
    double want = sqrt(127.5 * 127.5 + 63.75 * 63.75) +
                  0.3 * sqrt(127.5 * 127.5 + 63.75 * 63.75);
    cf = cz_eval_colourfulness(two, 2);
    CHECK(fabs(cf - want) < 1e-12, "gray+red CF %.15g, want %.15g", cf, want);
}

static void test_bad_input(void)
{
    cz_image *a = random_rgb8(20, 20, 1), *b = random_rgb8(20, 19, 2);
    cz_image *small = random_rgb8(10, 30, 3), *gray = cz_image_new(20, 20, 1, 8);
    cz_metrics m;
    cz_status s = cz_eval_metrics(a, b, &m);
    CHECK(s == CZ_ERR_INVALID && strstr(cz_last_error(), "20x19"),
          "size mismatch: %d %s", (int)s, cz_last_error());
    s = cz_eval_metrics(small, small, &m);
    CHECK(s == CZ_ERR_INVALID && strstr(cz_last_error(), "11x11"),
          "too small for SSIM: %d %s", (int)s, cz_last_error());
    s = cz_eval_metrics(gray, a, &m);
    CHECK(s == CZ_ERR_INVALID, "a gray image taken as RGB8: %d", (int)s);
    CHECK(cz_eval_metrics(NULL, a, &m) == CZ_ERR_INVALID, "NULL image accepted");
    cz_image_free(a);
    cz_image_free(b);
    cz_image_free(small);
    cz_image_free(gray);
}

static void test_prepare(void)
{
    /* 16-bit gray+alpha -> RGB8: gray repeated, alpha dropped, rounded. */
    cz_image *g = cz_image_new(3, 1, 2, 16);
    uint16_t *p = g->data;
    const uint16_t v[3] = {0, 32896, 65535}; /* 128.5 * 256 -> 128 */
    for (int i = 0; i < 3; i++) {
        p[2 * i] = v[i];
        p[2 * i + 1] = 1234;
    }
    cz_image *o = NULL;
    CHECK(cz_eval_rgb8(g, &o) == CZ_OK, "%s", cz_last_error());
    if (o) {
        const uint8_t *q = o->data;
        const uint8_t want[3] = {0, 128, 255};
        for (int i = 0; i < 3; i++)
            CHECK(q[3 * i] == want[i] && q[3 * i + 1] == want[i] && q[3 * i + 2] == want[i],
                  "16-bit gray %u -> %u %u %u, want %u", v[i], q[3 * i], q[3 * i + 1],
                  q[3 * i + 2], want[i]);
    }
    cz_image_free(o);
    cz_image_free(g);

    /* Resizing: same size is the identity, a flat image stays flat. */
    cz_image *a = random_rgb8(37, 23, 9), *r = NULL;
    CHECK(cz_eval_resize(a, 37, 23, &r) == CZ_OK && memcmp(r->data, a->data, 37 * 23 * 3) == 0,
          "resize to the same size is not the identity");
    cz_image_free(r);
    r = NULL;
    memset(a->data, 77, 37 * 23 * 3);
    CHECK(cz_eval_resize(a, 16, 64, &r) == CZ_OK, "%s", cz_last_error());
    if (r) {
        int flat = 1;
        for (int k = 0; k < 16 * 64 * 3; k++)
            flat &= ((uint8_t *)r->data)[k] == 77;
        CHECK(flat && r->width == 16 && r->height == 64, "resized flat image not flat");
    }
    cz_image_free(r);
    cz_image_free(a);
}

static void test_threads(void)
{
    /* More than one chunk of pixels and many SSIM rows. */
    cz_image *a = random_rgb8(257, 131, 11), *b = random_rgb8(257, 131, 12);
    cz_metrics m1, m3;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(cz_eval_metrics(a, b, &m1) == CZ_OK, "%s", cz_last_error());
    omp_set_num_threads(3);
    CHECK(cz_eval_metrics(a, b, &m3) == CZ_OK, "%s", cz_last_error());
    omp_set_num_threads(saved);
    CHECK(memcmp(&m1, &m3, sizeof m1) == 0,
          "1 vs 3 threads: psnr %.17g/%.17g ssim %.17g/%.17g dE %.17g/%.17g "
          "cf %.17g/%.17g auc %.17g/%.17g", m1.psnr, m3.psnr, m1.ssim, m3.ssim,
          m1.delta_e, m3.delta_e, m1.cf, m3.cf, m1.auc, m3.auc);
    cz_image_free(a);
    cz_image_free(b);
}

/* ---- Report helpers ---------------------------------------------------- */

static void test_base64(void)
{
    /* RFC 4648, section 10. */
    static const char *const vec[7][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (int i = 0; i < 7; i++) {
        char *b = cz_base64_encode((const unsigned char *)vec[i][0], strlen(vec[i][0]));
        CHECK(b && strcmp(b, vec[i][1]) == 0, "base64(\"%s\") = \"%s\", want \"%s\"",
              vec[i][0], b ? b : "(null)", vec[i][1]);
        free(b);
    }
    const unsigned char hi[3] = {0xfb, 0xff, 0xbf};
    char *b = cz_base64_encode(hi, 3);
    CHECK(b && strcmp(b, "+/+/") == 0, "base64 of fb ff bf: %s", b ? b : "(null)");
    free(b);
}

/* The bootstrap's intervals: exact where every image agrees, about the
 * normal approximation's (mean +- 1.96 sd / sqrt(n)) where they do not,
 * and the same on every call. */
static void test_bootstrap(void)
{
    enum { N = 100 };
    cz_eval_result res[N];
    for (int i = 0; i < N; i++) /* PSNR gain 0 or 2 (sd 1), dE gain 0.5, dCF 5 */
        res[i] = (cz_eval_result){.model = {.psnr = 20 + 2 * (i % 2), .delta_e = 10, .cf = 40, .cf_truth = 45},
                                  .gray = {.psnr = 20, .delta_e = 10.5}};
    cz_eval_spread a, b;
    CHECK(cz_eval_bootstrap(res, N, &a) == CZ_OK && cz_eval_bootstrap(res, N, &b) == CZ_OK, "%s",
          cz_last_error());
    CHECK(fabs(a.delta_e_gain.lo - 0.5) < 1e-9 && fabs(a.delta_e_gain.hi - 0.5) < 1e-9 &&
              fabs(a.delta_cf.lo - 5) < 1e-9 && fabs(a.delta_cf.hi - 5) < 1e-9,
          "constant gains: dE [%g, %g], dCF [%g, %g]", a.delta_e_gain.lo, a.delta_e_gain.hi, a.delta_cf.lo,
          a.delta_cf.hi);
    /* 1 +- 1.96 / sqrt(100) = [0.80, 1.20] */
    CHECK(a.psnr_gain.lo > 0.72 && a.psnr_gain.lo < 0.88 && a.psnr_gain.hi > 1.12 && a.psnr_gain.hi < 1.28,
          "PSNR gain 1 +- 0.2 expected, got [%g, %g]", a.psnr_gain.lo, a.psnr_gain.hi);
    CHECK(memcmp(&a, &b, sizeof a) == 0, "two bootstraps of the same results differ");
    printf("bootstrap of a PSNR gain of 0 or 2 dB over %d images: [%.3f, %.3f]\n", N, a.psnr_gain.lo,
           a.psnr_gain.hi);
}

static void test_report_helpers(void)
{
    cz_eval_result res[4] = {
        {.name = "plain.png", .width = 20, .height = 10, .model = {.delta_e = 3}},
        {.name = "with,comma \"q\".png", .width = 20, .height = 10, .model = {.delta_e = 1}},
        {.name = "c.png", .width = 20, .height = 10, .model = {.delta_e = 2}},
        {.name = "d.png", .width = 20, .height = 10, .model = {.delta_e = 2}},
    };
    for (int i = 0; i < 4; i++) {
        res[i].model.cf = 10.0 * i;
        res[i].model.cf_truth = 5.0;
    }
    cz_eval_report r = {.results = res, .n_results = 4};
    cz_eval_means(res, 4, &r.model, &r.gray);
    CHECK(r.model.delta_e == 2.0 && r.model.cf == 15.0 && r.model.delta_cf == 10.0,
          "means: delta_e %g cf %g delta_cf %g", r.model.delta_e, r.model.cf,
          r.model.delta_cf);

    test_bootstrap();

    /* Ordered by Delta E: 1 (best), 2 and 3 tie at 2 (the lower median is
     * the first of them), 0 (worst). */
    cz_eval_pick_examples(&r);
    CHECK(r.n_examples == 3 && r.examples[0].index == 1 && r.examples[1].index == 2 &&
              r.examples[2].index == 0 && strcmp(r.examples[1].label, "median") == 0,
          "examples of 4: %zu", r.n_examples);
    r.n_results = 1;
    cz_eval_pick_examples(&r);
    CHECK(r.n_examples == 1 && strcmp(r.examples[0].label, "best, median, worst") == 0,
          "one image: %zu examples, \"%s\"", r.n_examples, r.examples[0].label);
    r.n_results = 2;
    cz_eval_pick_examples(&r);
    /* two: the lower median is the best */
    CHECK(r.n_examples == 2 && strcmp(r.examples[0].label, "best, median") == 0 &&
              strcmp(r.examples[1].label, "worst") == 0 && r.examples[1].index == 0,
          "two images: %zu examples", r.n_examples);

    /* CSV quoting (RFC 4180). */
    r.n_results = 4;
    char dir[] = "/tmp/cz_test_metrics_XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/per_image.csv", dir);
    CHECK(cz_eval_write_csv(path, &r) == CZ_OK, "%s", cz_last_error());
    FILE *f = fopen(path, "r");
    char buf[2048] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    CHECK(strstr(buf, "\n\"with,comma \"\"q\"\".png\",20,10,") != NULL,
          "CSV quoting:\n%s", buf);
    remove(path);
    /* A folder that does not exist: an error naming the file, nothing left. */
    snprintf(path, sizeof path, "%s/missing/per_image.csv", dir);
    CHECK(cz_eval_write_csv(path, &r) == CZ_ERR_IO && strstr(cz_last_error(), "missing"),
          "unwritable CSV: %s", cz_last_error());
    CHECK(rmdir(dir) == 0, "%s not empty after the writes", dir);
}

int main(void)
{
    CHECK((int)(CZ_SSIM_TRUNCATE * CZ_SSIM_SIGMA + 0.5) == CZ_SSIM_RADIUS,
          "CZ_SSIM_RADIUS is not skimage's int(truncate * sigma + 0.5)");
    test_sharma();
    test_fixtures();
    test_identical();
    test_gray_baseline();
    test_auc_rule();
    test_colourfulness();
    test_bad_input();
    test_prepare();
    test_threads();
    test_base64();
    test_report_helpers();
    return check_finish("test_metrics");
}
