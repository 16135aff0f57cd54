/* The full-resolution steps of the inference path: L* of the photo, and the
 * recombination of the network's a*b* with it. Both run in strips of rows so
 * that no full-resolution a*b* plane is ever allocated, with OpenMP over the
 * rows of a strip; every pixel is computed alone, so results do not depend on
 * the thread count. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base/error.h"
#include "image/image.h"
#include "image/lab.h"
#include "pipeline/pipeline.h"

/* Rows per strip: enough work for every thread, small enough that a strip's
 * a*b* of a 6000-pixel-wide scan (2 x 128 x 6000 floats) is 6 MB. */
enum { STRIP_ROWS = 128 };

/* ---- The sRGB gamut in CIELab ------------------------------------------ */

/* These constants must be those of image/lab.c's Lab -> sRGB conversion
 * (skimage's): the gamut test below is that conversion stopped before its
 * final clip. tests/test_pipeline.c checks that fitted colours convert
 * without changing L*. */
#define LAB_KAPPA 7.787f
#define LAB_F_THRESHOLD 0.2068966f
#define LAB_F_OFFSET (16.0f / 116.0f)
#define WHITE_X 0.95047
#define WHITE_Y 1.0
#define WHITE_Z 1.08883
static const float xyzn_to_rgb[3][3] = {
    {(float)(3.2404813432005266 * WHITE_X), (float)(-1.5371515162713183 * WHITE_Y), (float)(-0.4985363261688878 * WHITE_Z)},
    {(float)(-0.9692549499965682 * WHITE_X), (float)(1.8759900014898907 * WHITE_Y), (float)(0.04155592655829284 * WHITE_Z)},
    {(float)(0.055646639135177166 * WHITE_X), (float)(-0.20404133836651123 * WHITE_Y), (float)(1.0573110696453443 * WHITE_Z)},
};

/* How far outside [0, 1] a linear RGB component may stray and still count as
 * inside, for float rounding: the matrix maps white to 1 + 1e-5. Clipping
 * the excess moves L* by the slope of L* in Y times it: 903 near black, under
 * 39 near white, hence the two sides; each costs L* under 0.005. */
#define GAMUT_SLACK_LOW 2e-6f
#define GAMUT_SLACK_HIGH 1e-4f
/* Bisection steps for the chroma scale: 12 halvings put it within 1/4096 of
 * the gamut's edge, far finer than 8-bit samples can show. */
enum { GAMUT_STEPS = 12 };

static inline float lab_f_inverse(float f)
{
    return f > LAB_F_THRESHOLD ? f * f * f : (f - LAB_F_OFFSET) / LAB_KAPPA;
}

static inline bool inside_gamut(float L, float a, float b)
{
    float fy = (L + 16.0f) / 116.0f;
    float fx = a / 500.0f + fy;
    float fz = fy - b / 200.0f;
    if (!(fz >= 0.0f)) /* lab.c clips Z here, which would move L*; NaN too */
        return false;
    float x = lab_f_inverse(fx), y = lab_f_inverse(fy), z = lab_f_inverse(fz);
    for (int c = 0; c < 3; c++) {
        const float *m = xyzn_to_rgb[c];
        float v = m[0] * x + m[1] * y + m[2] * z;
        if (!(v >= -GAMUT_SLACK_LOW && v <= 1.0f + GAMUT_SLACK_HIGH))
            return false;
    }
    return true;
}

static inline void fit_pixel(float L, float *a, float *b)
{
    if (inside_gamut(L, *a, *b))
        return;
    /* Gray at L* is inside for L* in [0, 100]: bisect the chroma scale
     * between it (lo) and the prediction (hi). */
    float lo = 0.0f, hi = 1.0f;
    for (int i = 0; i < GAMUT_STEPS; i++) {
        float mid = 0.5f * (lo + hi);
        if (inside_gamut(L, mid * *a, mid * *b))
            lo = mid;
        else
            hi = mid;
    }
    *a *= lo;
    *b *= lo;
}

void cz_fit_gamut(const float *L, float *a, float *b, size_t n)
{
    const long long N = (long long)n;
#pragma omp parallel for schedule(static) if (N > 65536)
    for (long long i = 0; i < N; i++)
        fit_pixel(L[i], &a[i], &b[i]);
}

/* ---- L* of the photo ----------------------------------------------------- */

/* A view of rows [y0, y0 + rows) of img, sharing its samples. */
static cz_image rows_of(const cz_image *img, int y0, int rows)
{
    size_t row_bytes;
    cz_image_size(img->width, img->height, img->channels, img->depth,
                  &row_bytes, NULL);
    cz_image view = *img;
    view.height = rows;
    view.data = (unsigned char *)img->data + (size_t)y0 * row_bytes;
    return view;
}

cz_status cz_luminance_plane(const cz_image *img, float *L)
{
    if (!img || !img->data || !L ||
        !cz_image_size(img->width, img->height, img->channels, img->depth,
                       NULL, NULL))
        return cz_fail(CZ_ERR_INVALID, "cz_luminance_plane: invalid image");
    const int W = img->width, H = img->height;
    const int rows = H < STRIP_ROWS ? H : STRIP_ROWS;
    /* cz_image_to_lab_planes also gives a* and b*; they go to a strip-sized
     * scratch and are dropped, since only L* of the photo is kept. */
    float *scratch = malloc(2 * (size_t)rows * (size_t)W * sizeof *scratch);
    if (!scratch)
        return cz_fail(CZ_ERR_NOMEM, "cz_luminance_plane: out of memory");
    cz_status status = CZ_OK;
    for (int y0 = 0; y0 < H && status == CZ_OK; y0 += rows) {
        int n = H - y0 < rows ? H - y0 : rows;
        cz_image strip = rows_of(img, y0, n);
        status = cz_image_to_lab_planes(&strip, L + (size_t)y0 * (size_t)W,
                                        scratch,
                                        scratch + (size_t)rows * (size_t)W);
    }
    free(scratch);
    return status;
}

/* ---- Recombination ------------------------------------------------------- */

/* A photo less than half the network's size on a side: cz_resize_bilinear_f32
 * box-filters that axis first, which cz_linear_taps alone does not; such a photo is
 * small, so whole planes cost nothing. */
static cz_status recombine_small(const float *L, const float *a_small,
                                 const float *b_small, int N, cz_image *out)
{
    const size_t n = (size_t)out->width * (size_t)out->height;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    cz_status status;
    if (!a || !b) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_recombine: out of memory");
        goto cleanup;
    }
    status = cz_resize_bilinear_f32(a_small, N, N, a, out->width, out->height);
    if (status == CZ_OK)
        status = cz_resize_bilinear_f32(b_small, N, N, b, out->width,
                                        out->height);
    if (status != CZ_OK)
        goto cleanup;
    cz_fit_gamut(L, a, b, n);
    status = cz_lab_planes_to_image(L, a, b, out);
cleanup:
    free(a);
    free(b);
    return status;
}

cz_status cz_recombine(const float *L, const float *a_small,
                       const float *b_small, int N, cz_image *out)
{
    if (!L || !a_small || !b_small || N <= 0 || !out || !out->data ||
        (out->channels != 3 && out->channels != 4) ||
        !cz_image_size(out->width, out->height, out->channels, out->depth,
                       NULL, NULL))
        return cz_fail(CZ_ERR_INVALID, "cz_recombine: invalid arguments");
    const int W = out->width, H = out->height;
    if ((long long)N > 2LL * W || (long long)N > 2LL * H)
        return recombine_small(L, a_small, b_small, N, out);

    const int rows = H < STRIP_ROWS ? H : STRIP_ROWS;
    const size_t strip = (size_t)rows * (size_t)W;
    cz_status status = CZ_OK;
    cz_tap *tx = malloc((size_t)W * sizeof *tx);
    cz_tap *ty = malloc((size_t)H * sizeof *ty);
    float *a = malloc(2 * strip * sizeof *a);
    if (!tx || !ty || !a) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_recombine: out of memory");
        goto cleanup;
    }
    float *b = a + strip;
    /* The taps of cz_resize_bilinear_f32, so strips equal whole planes. */
    cz_linear_taps(N, W, (float)N / (float)W, tx);
    cz_linear_taps(N, H, (float)N / (float)H, ty);

    for (int y0 = 0; y0 < H && status == CZ_OK; y0 += rows) {
        const int n = H - y0 < rows ? H - y0 : rows;
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++) {
            const cz_tap t = ty[y0 + r];
            const float *a0 = a_small + (size_t)t.i0 * (size_t)N;
            const float *a1 = a_small + (size_t)t.i1 * (size_t)N;
            const float *b0 = b_small + (size_t)t.i0 * (size_t)N;
            const float *b1 = b_small + (size_t)t.i1 * (size_t)N;
            const float *Lrow = L + (size_t)(y0 + r) * (size_t)W;
            float *arow = a + (size_t)r * (size_t)W;
            float *brow = b + (size_t)r * (size_t)W;
            for (int x = 0; x < W; x++) {
                const cz_tap u = tx[x];
                /* cz_resize_bilinear_f32's order: along x, then along y. */
                float top = a0[u.i0] * u.w0 + a0[u.i1] * u.w1;
                float bottom = a1[u.i0] * u.w0 + a1[u.i1] * u.w1;
                arow[x] = top * t.w0 + bottom * t.w1;
                top = b0[u.i0] * u.w0 + b0[u.i1] * u.w1;
                bottom = b1[u.i0] * u.w0 + b1[u.i1] * u.w1;
                brow[x] = top * t.w0 + bottom * t.w1;
            }
            for (int x = 0; x < W; x++)
                fit_pixel(Lrow[x], &arow[x], &brow[x]);
        }
        cz_image view = rows_of(out, y0, n);
        status = cz_lab_planes_to_image(L + (size_t)y0 * (size_t)W, a, b,
                                        &view);
    }

cleanup:
    free(tx);
    free(ty);
    free(a);
    return status;
}
