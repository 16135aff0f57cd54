/* sRGB <-> CIELab against skimage, the planar helpers, and plane resizing
 * against PyTorch. Fixtures come from tools/make_lab_fixtures.py. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "image/image.h"
#include "image/lab.h"
#include "image/lab_pixel.h"

/* The bar for agreement with skimage, in L*a*b* units and in RGB. */
#define LAB_TOL 1e-3

/* A 24-megapixel scan; sanitizers make every load ~10x slower, so they get a
 * sixteenth of it (same code path, same checks). */
#if defined(__SANITIZE_ADDRESS__)
enum { BIG_W = 1500, BIG_H = 1000 };
#else
enum { BIG_W = 6000, BIG_H = 4000 };
#endif

static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            } else {
                *size = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static double max_abs_diff(const float *a, const float *b, size_t n, size_t *at)
{
    double worst = 0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d))
            d = INFINITY;
        if (d > worst) {
            worst = d;
            *at = i;
        }
    }
    return worst;
}

/* Floats from a little-endian fixture, assembled byte by byte so that any
 * host reads them alike. */
static void load_floats(float *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = le32(src + 4 * i);
        memcpy(&dst[i], &u, sizeof u);
    }
}

static void test_skimage_fixture(void)
{
    size_t size = 0;
    unsigned char *buf = read_file("tests/fixtures/lab_grid.bin", &size);
    CHECK(buf != NULL, "cannot read tests/fixtures/lab_grid.bin (run from the repo root)");
    if (!buf)
        return;
    CHECK(size >= 16 && memcmp(buf, "CZLAB1\0\0", 8) == 0, "bad fixture header");
    size_t n_rgb = le32(buf + 8), n_lab = le32(buf + 12);
    size_t need = 16 + 4 * 3 * 2 * (n_rgb + n_lab);
    CHECK(size == need, "fixture is %zu bytes, header implies %zu", size, need);
    CHECK(n_rgb > 5000 && n_lab > 3000, "fixture too small: %zu, %zu", n_rgb, n_lab);
    if (size != need) {
        free(buf);
        return;
    }
    size_t n = 3 * (n_rgb > n_lab ? n_rgb : n_lab);
    float *in = malloc(n * sizeof *in), *want = malloc(n * sizeof *want),
          *got = malloc(n * sizeof *got);
    const unsigned char *p = buf + 16;

    /* rgb2lab */
    load_floats(in, p, 3 * n_rgb);
    load_floats(want, p + 12 * n_rgb, 3 * n_rgb);
    cz_srgb_to_lab(in, got, n_rgb);
    size_t at;
    double err = max_abs_diff(got, want, 3 * n_rgb, &at);
    CHECK(err <= LAB_TOL, "rgb2lab: max |diff| %.3g at pixel %zu: rgb (%g %g %g) "
          "got %g want %g", err, at / 3, in[at / 3 * 3], in[at / 3 * 3 + 1],
          in[at / 3 * 3 + 2], got[at], want[at]);
    printf("rgb2lab vs skimage: %zu colours, max |diff| %.2e\n", n_rgb, err);
    /* In place gives the same. */
    memcpy(got, in, 3 * n_rgb * sizeof *got);
    cz_srgb_to_lab(got, got, n_rgb);
    CHECK(max_abs_diff(got, want, 3 * n_rgb, &at) <= LAB_TOL, "in-place rgb2lab differs");

    /* lab2rgb */
    p += 24 * n_rgb;
    load_floats(in, p, 3 * n_lab);
    load_floats(want, p + 12 * n_lab, 3 * n_lab);
    cz_lab_to_srgb(in, got, n_lab);
    err = max_abs_diff(got, want, 3 * n_lab, &at);
    CHECK(err <= LAB_TOL, "lab2rgb: max |diff| %.3g at pixel %zu: lab (%g %g %g) "
          "got %g want %g", err, at / 3, in[at / 3 * 3], in[at / 3 * 3 + 1],
          in[at / 3 * 3 + 2], got[at], want[at]);
    printf("lab2rgb vs skimage: %zu colours, max |diff| %.2e\n", n_lab, err);
    size_t clipped = 0;
    for (size_t i = 0; i < 3 * n_lab; i++) {
        CHECK(got[i] >= 0.0f && got[i] <= 1.0f, "lab2rgb[%zu] = %g outside [0,1]", i, got[i]);
        clipped += want[i] == 0.0f || want[i] == 1.0f;
    }
    CHECK(clipped > n_lab / 4, "the Lab grid should be mostly out of gamut (%zu clipped)", clipped);

    free(in);
    free(want);
    free(got);
    free(buf);
}

static void test_clipping_and_specials(void)
{
    /* Far outside the gamut, and NaN: all land in [0, 1]. */
    const float lab[] = {100, 127, 127, 0, -128, -128, 50, 0, 0,
                         120, 0, 0, -10, 0, 0, NAN, 0, 0};
    float rgb[18];
    cz_lab_to_srgb(lab, rgb, 6);
    for (int i = 0; i < 18; i++)
        CHECK(rgb[i] >= 0.0f && rgb[i] <= 1.0f, "rgb[%d] = %g", i, rgb[i]);
    CHECK(rgb[0] == 1.0f && rgb[2] == 0.0f, "L=100 a=b=127 clips to (1, ?, 0): %g %g", rgb[0], rgb[2]);
    CHECK(rgb[9] == 1.0f && rgb[10] == 1.0f && rgb[11] == 1.0f, "L=120 is white");
    CHECK(rgb[12] == 0.0f && rgb[13] == 0.0f && rgb[14] == 0.0f, "L=-10 is black");
    CHECK(rgb[15] == 0.0f, "NaN gives 0, got %g", rgb[15]);

    /* Black and white. */
    const float bw[] = {0, 0, 0, 1, 1, 1};
    float out[6];
    cz_srgb_to_lab(bw, out, 2);
    CHECK(fabsf(out[0]) < 1e-4f && fabsf(out[3] - 100.0f) < 1e-3f,
          "L of black %g, of white %g", out[0], out[3]);
    cz_lab_to_srgb(out, out, 2);
    for (int i = 0; i < 6; i++)
        CHECK(fabsf(out[i] - bw[i]) < 1e-5f, "black/white round trip [%d] %g", i, out[i]);
    cz_srgb_to_lab(bw, out, 0); /* no pixels: nothing happens, no crash */
}

/* Sample value for pixel i, channel c of a test image with this depth. */
static unsigned test_sample(size_t i, int c, int depth)
{
    uint32_t h = (uint32_t)i * 2654435761u ^ (uint32_t)c * 2246822519u;
    h ^= h >> 15;
    h *= 0x5BD1E995u;
    h ^= h >> 13;
    return h >> (32 - depth);
}

static cz_image *pattern_image(int w, int h, int channels, int depth)
{
    cz_image *img = cz_image_new(w, h, channels, depth);
    if (!img)
        return NULL;
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < channels; c++) {
            unsigned v = test_sample(i, c, depth);
            if (depth == 8)
                ((uint8_t *)img->data)[i * (size_t)channels + (size_t)c] = (uint8_t)v;
            else
                ((uint16_t *)img->data)[i * (size_t)channels + (size_t)c] = (uint16_t)v;
        }
    return img;
}

static unsigned sample_at(const cz_image *img, size_t i, int c)
{
    size_t k = i * (size_t)img->channels + (size_t)c;
    return img->depth == 8 ? ((const uint8_t *)img->data)[k]
                           : ((const uint16_t *)img->data)[k];
}

static void test_planes(int channels, int depth)
{
    const int w = 37, h = 23;
    const size_t n = (size_t)w * h;
    const float full = depth == 8 ? 255.0f : 65535.0f;
    cz_image *img = pattern_image(w, h, channels, depth);
    float *L = malloc(n * sizeof *L), *a = malloc(n * sizeof *a),
          *b = malloc(n * sizeof *b), *rgb = malloc(3 * n * sizeof *rgb),
          *lab = malloc(3 * n * sizeof *lab);
    CHECK(img && L && a && b && rgb && lab, "allocation");
    if (!img || !L || !a || !b || !rgb || !lab)
        goto done;
    CHECK(cz_image_to_lab_planes(img, L, a, b) == CZ_OK, "%s", cz_last_error());

    /* Reference: the interleaved float conversion of the same samples. */
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            rgb[3 * i + c] = (float)sample_at(img, i, channels <= 2 ? 0 : c) / full;
    cz_srgb_to_lab(rgb, lab, n);
    double worst_L = 0, worst_ab = 0;
    for (size_t i = 0; i < n; i++) {
        worst_L = fmax(worst_L, fabs(L[i] - lab[3 * i]));
        if (channels <= 2) {
            /* Gray: a* = b* = 0 exactly (skimage itself gives ~5e-3 here). */
            CHECK(a[i] == 0.0f && b[i] == 0.0f, "gray pixel %zu: a %g b %g", i, a[i], b[i]);
        } else {
            worst_ab = fmax(worst_ab, fabs(a[i] - lab[3 * i + 1]));
            worst_ab = fmax(worst_ab, fabs(b[i] - lab[3 * i + 2]));
        }
    }
    CHECK(worst_L <= 1e-4, "%dch %dbit: L differs from cz_srgb_to_lab by %g",
          channels, depth, worst_L);
    CHECK(worst_ab <= 1e-4, "%dch %dbit: a*b* differ from cz_srgb_to_lab by %g",
          channels, depth, worst_ab);

    if (channels >= 3) {
        /* Back to samples: RGB within rounding of the original, alpha
         * untouched (the image still holds it; we scribble RGB first). */
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) {
                size_t k = i * (size_t)channels + (size_t)c;
                if (depth == 8)
                    ((uint8_t *)img->data)[k] = 0;
                else
                    ((uint16_t *)img->data)[k] = 0;
            }
        CHECK(cz_lab_planes_to_image(L, a, b, img) == CZ_OK, "%s", cz_last_error());
        unsigned worst = 0;
        int alpha_ok = 1;
        for (size_t i = 0; i < n; i++) {
            for (int c = 0; c < 3; c++) {
                unsigned want = test_sample(i, c, depth), got = sample_at(img, i, c);
                unsigned d = want > got ? want - got : got - want;
                worst = d > worst ? d : worst;
            }
            if (channels == 4)
                alpha_ok &= sample_at(img, i, 3) == test_sample(i, 3, depth);
        }
        /* float32 Lab holds ~7 digits: exact at 8 bits, a couple of codes
         * at 16. */
        CHECK(worst <= (depth == 8 ? 0u : 3u), "%dch %dbit round trip off by %u",
              channels, depth, worst);
        CHECK(alpha_ok, "%dch %dbit: alpha changed", channels, depth);
    } else {
        CHECK(cz_lab_planes_to_image(L, a, b, img) == CZ_ERR_INVALID,
              "writing Lab into a gray image must be refused");
    }
done:
    cz_image_free(img);
    free(L);
    free(a);
    free(b);
    free(rgb);
    free(lab);
}

/* cz_image_to_lightness is cz_image_to_lab_planes' L*, bit for bit, for
 * every channel count and depth (8-bit gray through its table: every value). */
static void test_lightness(void)
{
    const int w = 301, h = 7;
    const size_t n = (size_t)w * h;
    float *L = malloc(n * sizeof *L), *ref = malloc(3 * n * sizeof *ref);
    CHECK(L && ref, "allocation");
    if (!L || !ref)
        goto done;
    for (int depth = 8; depth <= 16; depth += 8)
        for (int ch = 1; ch <= 4; ch++) {
            cz_image *img = pattern_image(w, h, ch, depth);
            if (!img)
                continue;
            if (depth == 8 && ch == 1) /* every 8-bit gray value */
                for (size_t i = 0; i < 256; i++)
                    ((uint8_t *)img->data)[i] = (uint8_t)i;
            CHECK(cz_image_to_lightness(img, L) == CZ_OK, "%s", cz_last_error());
            CHECK(cz_image_to_lab_planes(img, ref, ref + n, ref + 2 * n) == CZ_OK,
                  "%s", cz_last_error());
            CHECK(memcmp(L, ref, n * sizeof *L) == 0,
                  "%dch %dbit: L* alone differs from cz_image_to_lab_planes' L*",
                  ch, depth);
            cz_image_free(img);
        }
    CHECK(cz_image_to_lightness(NULL, L) == CZ_ERR_INVALID, "NULL image");
done:
    free(L);
    free(ref);
}

static float float_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static unsigned srgb8_reference(float v)
{
    return (uint8_t)srgb_sample(v, 255.0f);
}

/* The 8-bit companding table against powf: around each of its 255 steps
 * (a few float ulps either side), at every bucket edge, on every 61st float
 * of [0, 1] (17 million of them; the whole of [0, 1] was checked once when
 * the table was written), outside [0, 1], and on NaN and infinities. */
static void test_srgb8_table(void)
{
    cz_srgb8_table t;
    cz_srgb8_table_init(&t);
    long wrong = 0, tried = 0;
    float first_wrong = 0.0f;
#define TRY(v)                                                                \
    do {                                                                      \
        float v_ = (v);                                                       \
        tried++;                                                              \
        if (srgb8_sample(&t, v_) != srgb8_reference(v_) && wrong++ == 0)     \
            first_wrong = v_;                                                 \
    } while (0)
    double closest = 1.0;
    for (int k = 1; k <= 255; k++) {
        CHECK(srgb8_reference(t.threshold[k]) >= (unsigned)k &&
                  srgb8_reference(nextafterf(t.threshold[k], -1.0f)) < (unsigned)k,
              "step %d is not at %a", k, t.threshold[k]);
        if (k > 1)
            closest = fmin(closest, (double)t.threshold[k] - t.threshold[k - 1]);
        float v = t.threshold[k];
        for (int i = 0; i < 4; i++) {
            TRY(v);
            v = nextafterf(v, -1.0f);
        }
        v = t.threshold[k];
        for (int i = 0; i < 4; i++) {
            v = nextafterf(v, 2.0f);
            TRY(v);
        }
    }
    /* The lookup adds at most one step per bucket. */
    CHECK(closest > 1.0 / SRGB8_BUCKETS, "steps %g apart, buckets %g wide",
          closest, 1.0 / SRGB8_BUCKETS);
    for (int i = 0; i <= SRGB8_BUCKETS; i++) {
        float v = (float)i / (float)SRGB8_BUCKETS;
        TRY(v);
        TRY(nextafterf(v, -1.0f));
        TRY(nextafterf(v, 2.0f));
    }
    for (uint32_t u = 0; u <= 0x3f800000u; u += 61)
        TRY(float_of_bits(u));
    const float specials[] = {-0.0f, -1e-30f, -0.5f, -INFINITY, 1.0f, 1.0000001f,
                              1.5f, 1e30f, INFINITY, NAN, -NAN};
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
        TRY(specials[i]);
#undef TRY
    CHECK(wrong == 0, "%ld of %ld values companded differently from powf, "
          "the first %a", wrong, tried, first_wrong);
    printf("8-bit companding table: %ld values as powf gives them\n", tried);
}

static void test_invalid_args(void)
{
    float p[3];
    CHECK(cz_image_to_lab_planes(NULL, p, p, p) == CZ_ERR_INVALID, "NULL image");
    cz_image *img = cz_image_new(1, 1, 3, 8);
    CHECK(cz_image_to_lab_planes(img, NULL, p, p) == CZ_ERR_INVALID, "NULL plane");
    CHECK(cz_lab_planes_to_image(p, p, NULL, img) == CZ_ERR_INVALID, "NULL plane");
    cz_image_free(img);
    CHECK(cz_resize_bilinear_f32(p, 0, 1, p, 1, 1) == CZ_ERR_INVALID, "zero size");
    CHECK(cz_resize_bilinear_f32(NULL, 1, 1, p, 1, 1) == CZ_ERR_INVALID, "NULL src");
}

/* The whole of a 24-megapixel scan through both directions: it must run, and
 * give the same answer as the one-pixel path, whatever the thread count. */
static void test_big_scan(void)
{
    const size_t n = (size_t)BIG_W * BIG_H;
    cz_image *img = pattern_image(BIG_W, BIG_H, 3, 8);
    cz_image *out = cz_image_new(BIG_W, BIG_H, 3, 8);
    float *L = malloc(n * sizeof *L), *a = malloc(n * sizeof *a),
          *b = malloc(n * sizeof *b);
    CHECK(img && out && L && a && b, "allocating %dx%d", BIG_W, BIG_H);
    if (!img || !out || !L || !a || !b)
        goto done;
    double t0 = omp_get_wtime();
    CHECK(cz_image_to_lab_planes(img, L, a, b) == CZ_OK, "%s", cz_last_error());
    double t1 = omp_get_wtime();
    CHECK(cz_lab_planes_to_image(L, a, b, out) == CZ_OK, "%s", cz_last_error());
    double t2 = omp_get_wtime();
    printf("%dx%d: to Lab %.2f s, back %.2f s (%d threads; not a benchmark)\n",
           BIG_W, BIG_H, t1 - t0, t2 - t1, omp_get_max_threads());
    const size_t probes[] = {0, 1, (size_t)BIG_W - 1, n / 2 + 17, n - 1};
    for (size_t k = 0; k < sizeof probes / sizeof *probes; k++) {
        size_t i = probes[k];
        float rgb[3], lab[3];
        for (int c = 0; c < 3; c++)
            rgb[c] = (float)sample_at(img, i, c) / 255.0f;
        cz_srgb_to_lab(rgb, lab, 1);
        CHECK(lab[0] == L[i] && lab[1] == a[i] && lab[2] == b[i],
              "pixel %zu: planes (%g %g %g) vs single (%g %g %g)", i, L[i], a[i],
              b[i], lab[0], lab[1], lab[2]);
    }
    CHECK(memcmp(img->data, out->data, 3 * n) == 0, "8-bit round trip is not exact");

    /* Thread count: one thread must give bit-identical planes. */
    float *L1 = malloc(n * sizeof *L1);
    if (L1) {
        int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        CHECK(cz_image_to_lab_planes(img, L1, a, b) == CZ_OK, "%s", cz_last_error());
        omp_set_num_threads(threads);
        CHECK(memcmp(L, L1, n * sizeof *L) == 0, "L depends on the thread count");
        free(L1);
    }
done:
    cz_image_free(img);
    cz_image_free(out);
    free(L);
    free(a);
    free(b);
}

/* ---- Resize ------------------------------------------------------------ */

static void test_resize_torch(void)
{
    size_t size = 0;
    unsigned char *buf = read_file("tests/fixtures/resize_bilinear.bin", &size);
    CHECK(buf != NULL, "cannot read tests/fixtures/resize_bilinear.bin");
    if (!buf)
        return;
    CHECK(size >= 12 && memcmp(buf, "CZRSZ1\0\0", 8) == 0, "bad fixture header");
    uint32_t cases = le32(buf + 8);
    size_t off = 12;
    for (uint32_t k = 0; k < cases; k++) {
        if (off + 16 > size) {
            CHECK(0, "fixture truncated at case %u", k);
            break;
        }
        int sw = (int)le32(buf + off), sh = (int)le32(buf + off + 4),
            dw = (int)le32(buf + off + 8), dh = (int)le32(buf + off + 12);
        off += 16;
        size_t ns = (size_t)sw * sh, nd = (size_t)dw * dh;
        if (off + 4 * (ns + nd) > size) {
            CHECK(0, "fixture truncated in case %u", k);
            break;
        }
        float *src = malloc(ns * sizeof *src), *want = malloc(nd * sizeof *want),
              *got = malloc(nd * sizeof *got);
        load_floats(src, buf + off, ns);
        load_floats(want, buf + off + 4 * ns, nd);
        off += 4 * (ns + nd);
        CHECK(cz_resize_bilinear_f32(src, sw, sh, got, dw, dh) == CZ_OK, "%s", cz_last_error());
        size_t at;
        double err = max_abs_diff(got, want, nd, &at);
        /* Same formula; PyTorch's build may fuse multiply-adds, so allow a
         * few ulps of values around 1. */
        printf("resize %dx%d -> %dx%d vs PyTorch: max |diff| %.3g\n", sw, sh, dw, dh, err);
        CHECK(err <= 1e-6, "%dx%d -> %dx%d: max |diff| %.3g at %zu (%g vs %g)",
              sw, sh, dw, dh, err, at, got[at], want[at]);
        free(src);
        free(want);
        free(got);
    }
    CHECK(off == size, "fixture has %zu trailing bytes", size - off);
    free(buf);
}

/* Box-then-bilinear, written out naively in double. */
static double naive_boxed(const float *src, int sw, int sh, int dw, int dh,
                          int x, int y)
{
    int kx = sw > 2 * dw ? sw / dw : 1, ky = sh > 2 * dh ? sh / dh : 1;
    int iw = (sw + kx - 1) / kx, ih = (sh + ky - 1) / ky;
    double u = ((x + 0.5) * sw / dw - kx / 2.0) / kx; /* box-centre units */
    double v = ((y + 0.5) * sh / dh - ky / 2.0) / ky;
    u = u < 0 ? 0 : u;
    v = v < 0 ? 0 : v;
    int u0 = (int)u, v0 = (int)v;
    int u1 = u0 + (u0 < iw - 1), v1 = v0 + (v0 < ih - 1);
    double fu = u - u0, fv = v - v0, acc = 0;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int bx = i ? u1 : u0, by = j ? v1 : v0;
            int x0 = bx * kx, x1 = x0 + kx < sw ? x0 + kx : sw;
            int y0 = by * ky, y1 = y0 + ky < sh ? y0 + ky : sh;
            double s = 0;
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++)
                    s += src[(size_t)yy * sw + xx];
            s /= (double)(x1 - x0) * (y1 - y0);
            acc += s * (i ? fu : 1 - fu) * (j ? fv : 1 - fv);
        }
    return acc;
}

static void test_resize_shrink(void)
{
    /* A one-pixel checkerboard shrunk 10x: bilinear alone would return
     * samples of the pattern (0 or 1); the box pass gives its mean. */
    const int sw = 250, sh = 170, dw = 25, dh = 17;
    float *src = malloc((size_t)sw * sh * sizeof *src);
    float *dst = malloc((size_t)dw * dh * sizeof *dst);
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++)
            src[(size_t)y * sw + x] = (float)((x + y) & 1);
    CHECK(cz_resize_bilinear_f32(src, sw, sh, dst, dw, dh) == CZ_OK, "%s", cz_last_error());
    double worst = 0;
    for (int i = 0; i < dw * dh; i++)
        worst = fmax(worst, fabs(dst[i] - 0.5));
    CHECK(worst < 0.02, "checkerboard shrunk 10x should be ~0.5, off by %g", worst);

    /* Random planes, uneven factors (last box partial), one axis boxed only. */
    const int shapes[][4] = {{250, 170, 25, 17}, {103, 61, 10, 7}, {97, 40, 30, 33},
                             {40, 97, 33, 30}, {1000, 3, 7, 3}};
    uint32_t r = 12345;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int w = shapes[s][0], h = shapes[s][1], ow = shapes[s][2], oh = shapes[s][3];
        float *in = malloc((size_t)w * h * sizeof *in), *out = malloc((size_t)ow * oh * sizeof *out);
        for (int i = 0; i < w * h; i++) {
            r = r * 1664525u + 1013904223u;
            in[i] = (float)(r >> 8) / 16777216.0f;
        }
        CHECK(cz_resize_bilinear_f32(in, w, h, out, ow, oh) == CZ_OK, "%s", cz_last_error());
        double err = 0;
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                err = fmax(err, fabs(out[y * ow + x] - naive_boxed(in, w, h, ow, oh, x, y)));
        CHECK(err < 1e-5, "%dx%d -> %dx%d: box+bilinear off naive by %g", w, h, ow, oh, err);
        free(in);
        free(out);
    }

    /* Constant in, constant out, at every scale. */
    for (int i = 0; i < sw * sh; i++)
        src[i] = 0.25f;
    const int outs[][2] = {{1, 1}, {3, 200}, {125, 85}, {249, 169}, {250, 170}, {600, 401}};
    for (size_t k = 0; k < sizeof outs / sizeof *outs; k++) {
        int ow = outs[k][0], oh = outs[k][1];
        float *out = malloc((size_t)ow * oh * sizeof *out);
        CHECK(cz_resize_bilinear_f32(src, sw, sh, out, ow, oh) == CZ_OK, "%s", cz_last_error());
        double e = 0;
        for (int i = 0; i < ow * oh; i++)
            e = fmax(e, fabs(out[i] - 0.25));
        CHECK(e < 1e-6, "constant plane to %dx%d off by %g", ow, oh, e);
        free(out);
    }
    free(src);
    free(dst);
}

int main(void)
{
    test_skimage_fixture();
    test_clipping_and_specials();
    for (int depth = 8; depth <= 16; depth += 8)
        for (int ch = 1; ch <= 4; ch++)
            test_planes(ch, depth);
    test_lightness();
    test_srgb8_table();
    test_invalid_args();
    test_big_scan();
    test_resize_torch();
    test_resize_shrink();
    return check_finish("test_lab");
}
