/* sRGB <-> CIELab as skimage.color computes it, and plane resizing.
 *
 * skimage works in float64 and in three steps (companding, a 3x3 matrix to
 * XYZ, then f(t) on XYZ divided by the white point). We work in float32 per
 * pixel with the white point folded into the matrix rows; that changes
 * results by a few float ulps, far inside the 1e-3 the tests demand. The
 * constants are skimage's, including its rounded CIE values (0.008856 and
 * 7.787 rather than the exact (6/29)^3 and (29/6)^2/3), because the point is
 * to agree with the Lab the reference model was trained on. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/error.h"
#include "image/lab.h"
#include "image/lab_pixel.h"

/* Pixels per OpenMP work item: big enough to amortise scheduling, small
 * enough to balance. Chunks are fixed, so results never depend on the
 * number of threads (each pixel is computed alone anyway). */
enum { LAB_CHUNK = 16384 };

/* CIE 1976: L* = 116 f(Y) - 16, a* = 500 (f(X) - f(Y)), b* = 200 (f(Y) - f(Z)),
 * with X, Y, Z relative to the white point. */
static inline void linear_rgb_to_lab(float r, float g, float b, float *out)
{
    const float (*m)[3] = rgb_to_xyzn;
    float fx = lab_f(m[0][0] * r + m[0][1] * g + m[0][2] * b);
    float fy = lab_f(m[1][0] * r + m[1][1] * g + m[1][2] * b);
    float fz = lab_f(m[2][0] * r + m[2][1] * g + m[2][2] * b);
    out[0] = 116.0f * fy - 16.0f;
    out[1] = 500.0f * (fx - fy);
    out[2] = 200.0f * (fy - fz);
}

/* L* of a gray whose linear value is y: the Y row of the matrix sums to 1,
 * so X = Y = Z (relative to white) and a* = b* = 0. */
static inline float linear_gray_to_L(float y)
{
    return 116.0f * lab_f(y) - 16.0f;
}

/* L* alone, exactly as linear_rgb_to_lab computes it. */
static inline float linear_rgb_to_L(float r, float g, float b)
{
    const float (*m)[3] = rgb_to_xyzn;
    return 116.0f * lab_f(m[1][0] * r + m[1][1] * g + m[1][2] * b) - 16.0f;
}

static inline void lab_to_srgb_pixel(float L, float a, float b, float *out)
{
    float r, g, bl;
    lab_to_linear_rgb(L, a, b, &r, &g, &bl);
    out[0] = clip01(srgb_encode(r));
    out[1] = clip01(srgb_encode(g));
    out[2] = clip01(srgb_encode(bl));
}

void cz_srgb8_table_init(cz_srgb8_table *t)
{
    /* Non-negative floats are ordered as their bit patterns, so each step
     * is found by bisecting the patterns of [0, 1]. */
    const uint32_t one = 0x3f800000u;
    for (int k = 1; k <= 255; k++) {
        uint32_t lo = 0, hi = one; /* sample(lo) < k <= sample(hi) */
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            union { uint32_t u; float f; } v = {.u = mid};
            if ((uint8_t)srgb_sample(v.f, 255.0f) >= k)
                hi = mid;
            else
                lo = mid;
        }
        union { uint32_t u; float f; } v = {.u = hi};
        t->threshold[k] = v.f;
    }
    t->threshold[0] = 0.0f;
    t->threshold[256] = INFINITY;
    for (int i = 0, k = 0; i <= SRGB8_BUCKETS; i++) {
        float v = (float)i / (float)SRGB8_BUCKETS;
        while (k < 255 && v >= t->threshold[k + 1])
            k++;
        t->first[i] = k;
    }
}

void cz_srgb_to_lab(const float *rgb, float *lab, size_t n_pixels)
{
    const long long chunks = (long long)((n_pixels + LAB_CHUNK - 1) / LAB_CHUNK);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (long long c = 0; c < chunks; c++) {
        size_t begin = (size_t)c * LAB_CHUNK;
        size_t end = begin + LAB_CHUNK < n_pixels ? begin + LAB_CHUNK : n_pixels;
        for (size_t i = begin; i < end; i++) {
            float r = srgb_decode(rgb[3 * i]);
            float g = srgb_decode(rgb[3 * i + 1]);
            float b = srgb_decode(rgb[3 * i + 2]);
            linear_rgb_to_lab(r, g, b, lab + 3 * i);
        }
    }
}

void cz_lab_to_srgb(const float *lab, float *rgb, size_t n_pixels)
{
    const long long chunks = (long long)((n_pixels + LAB_CHUNK - 1) / LAB_CHUNK);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (long long c = 0; c < chunks; c++) {
        size_t begin = (size_t)c * LAB_CHUNK;
        size_t end = begin + LAB_CHUNK < n_pixels ? begin + LAB_CHUNK : n_pixels;
        for (size_t i = begin; i < end; i++)
            lab_to_srgb_pixel(lab[3 * i], lab[3 * i + 1], lab[3 * i + 2],
                              rgb + 3 * i);
    }
}

static cz_status check_image(const cz_image *img, const char *fn)
{
    if (!img || !img->data ||
        !cz_image_size(img->width, img->height, img->channels, img->depth,
                       NULL, NULL))
        return cz_fail(CZ_ERR_INVALID, "%s: invalid image", fn);
    return CZ_OK;
}

/* L*, and a*, b* unless a is NULL, of every pixel of img (checked). */
static void image_to_lab(const cz_image *img, float *L, float *a, float *b)
{
    /* Every 8-bit sample is one of 256 values: decode each once, and for
     * gray take L* itself from a table. */
    float lin8[256], gray8[256];
    for (int v = 0; v < 256; v++) {
        lin8[v] = srgb_decode((float)v / 255.0f);
        gray8[v] = linear_gray_to_L(lin8[v]);
    }

    const int W = img->width, H = img->height, C = img->channels;
    const int gray = C <= 2;
    const uint8_t *p8 = img->data;
    const uint16_t *p16 = img->data;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        const size_t row = (size_t)y * (size_t)W;
        if (gray && img->depth == 8) {
            for (int x = 0; x < W; x++)
                L[row + (size_t)x] = gray8[p8[(row + (size_t)x) * (size_t)C]];
            if (a)
                for (int x = 0; x < W; x++)
                    a[row + (size_t)x] = b[row + (size_t)x] = 0.0f;
            continue;
        }
        for (int x = 0; x < W; x++) {
            size_t i = row + (size_t)x;
            size_t s0 = i * (size_t)C;
            float lin[3];
            for (int c = 0; c < (gray ? 1 : 3); c++)
                lin[c] = img->depth == 8
                             ? lin8[p8[s0 + c]]
                             : srgb_decode((float)p16[s0 + c] / 65535.0f);
            if (gray) {
                L[i] = linear_gray_to_L(lin[0]);
                if (a)
                    a[i] = b[i] = 0.0f;
            } else if (a) {
                float lab[3];
                linear_rgb_to_lab(lin[0], lin[1], lin[2], lab);
                L[i] = lab[0];
                a[i] = lab[1];
                b[i] = lab[2];
            } else {
                L[i] = linear_rgb_to_L(lin[0], lin[1], lin[2]);
            }
        }
    }
}

cz_status cz_image_to_lab_planes(const cz_image *img, float *L, float *a,
                                 float *b)
{
    cz_status s = check_image(img, "cz_image_to_lab_planes");
    if (s != CZ_OK)
        return s;
    if (!L || !a || !b)
        return cz_fail(CZ_ERR_INVALID, "cz_image_to_lab_planes: NULL plane");
    image_to_lab(img, L, a, b);
    return CZ_OK;
}

cz_status cz_image_to_lightness(const cz_image *img, float *L)
{
    cz_status s = check_image(img, "cz_image_to_lightness");
    if (s != CZ_OK)
        return s;
    if (!L)
        return cz_fail(CZ_ERR_INVALID, "cz_image_to_lightness: NULL plane");
    image_to_lab(img, L, NULL, NULL);
    return CZ_OK;
}

cz_status cz_lab_planes_to_image(const float *L, const float *a,
                                 const float *b, cz_image *out)
{
    cz_status s = check_image(out, "cz_lab_planes_to_image");
    if (s != CZ_OK)
        return s;
    if (!L || !a || !b)
        return cz_fail(CZ_ERR_INVALID, "cz_lab_planes_to_image: NULL plane");
    if (out->channels < 3)
        return cz_fail(CZ_ERR_INVALID,
                       "cz_lab_planes_to_image: output has %d channels; it "
                       "needs 3 (RGB) or 4 (RGBA)", out->channels);
    const int W = out->width, H = out->height, C = out->channels;
    cz_srgb8_table t8;
    if (out->depth == 8)
        cz_srgb8_table_init(&t8);
    uint8_t *p8 = out->data;
    uint16_t *p16 = out->data;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * (size_t)W + (size_t)x;
            float rgb[3];
            lab_to_linear_rgb(L[i], a[i], b[i], &rgb[0], &rgb[1], &rgb[2]);
            for (int c = 0; c < 3; c++) {
                if (out->depth == 8)
                    p8[i * (size_t)C + (size_t)c] = srgb8_sample(&t8, rgb[c]);
                else
                    p16[i * (size_t)C + (size_t)c] =
                        (uint16_t)srgb_sample(rgb[c], 65535.0f);
            }
        }
    }
    return CZ_OK;
}

/* ---- Resizing ---------------------------------------------------------- */

/* PyTorch's linear taps (upsample_bilinear2d, align_corners=False) for
 * out_size outputs over in_size inputs. The mix of precisions is PyTorch's
 * (1.13, CPU, float tensors), found by probing it with impulses: the ratio is
 * a float division, the source coordinate is computed in double (its
 * accumulate type) from that float ratio, and the weights are floats. */
void cz_linear_taps(int in_size, int out_size, float ratio, cz_tap *taps)
{
    for (int d = 0; d < out_size; d++) {
        if (in_size == out_size) { /* PyTorch copies rather than weighs */
            taps[d] = (cz_tap){d, d, 1.0f, 0.0f};
            continue;
        }
        double src = (double)ratio * ((double)d + 0.5) - 0.5;
        if (src < 0.0)
            src = 0.0;
        int i0 = (int)src;
        if (i0 > in_size - 1)
            i0 = in_size - 1;
        float w1 = (float)(src - (double)i0);
        w1 = w1 > 1.0f ? 1.0f : w1;
        taps[d].i0 = i0;
        taps[d].i1 = i0 + (i0 < in_size - 1 ? 1 : 0);
        taps[d].w1 = w1;
        taps[d].w0 = 1.0f - w1;
    }
}

/* Averages kx x ky boxes of src into dst (iw x ih); the last box in each
 * direction holds whatever pixels remain. */
static void box_reduce(const float *src, int sw, int sh, int kx, int ky,
                       float *dst, int iw, int ih)
{
#pragma omp parallel for schedule(static)
    for (int iy = 0; iy < ih; iy++) {
        int y0 = iy * ky, y1 = y0 + ky < sh ? y0 + ky : sh;
        for (int ix = 0; ix < iw; ix++) {
            int x0 = ix * kx, x1 = x0 + kx < sw ? x0 + kx : sw;
            double sum = 0.0;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++)
                    sum += src[(size_t)y * (size_t)sw + (size_t)x];
            dst[(size_t)iy * (size_t)iw + (size_t)ix] =
                (float)(sum / ((double)(y1 - y0) * (double)(x1 - x0)));
        }
    }
}

cz_status cz_resize_bilinear_f32(const float *src, int sw, int sh, float *dst,
                                 int dw, int dh)
{
    if (!src || !dst || sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0)
        return cz_fail(CZ_ERR_INVALID,
                       "cz_resize_bilinear_f32: invalid sizes %dx%d -> %dx%d",
                       sw, sh, dw, dh);
    /* Box factor per axis: 1 unless that axis shrinks by more than 2x. */
    const int kx = sw > 2 * (long long)dw ? sw / dw : 1;
    const int ky = sh > 2 * (long long)dh ? sh / dh : 1;
    const int iw = (sw + kx - 1) / kx, ih = (sh + ky - 1) / ky;

    cz_status status = CZ_OK;
    float *boxed = NULL;
    cz_tap *tx = malloc((size_t)dw * sizeof *tx);
    cz_tap *ty = malloc((size_t)dh * sizeof *ty);
    if (!tx || !ty) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_resize_bilinear_f32: out of memory");
        goto cleanup;
    }
    const float *plane = src;
    if (kx > 1 || ky > 1) {
        boxed = malloc((size_t)iw * (size_t)ih * sizeof *boxed);
        if (!boxed) {
            status = cz_fail(CZ_ERR_NOMEM,
                             "cz_resize_bilinear_f32: out of memory");
            goto cleanup;
        }
        box_reduce(src, sw, sh, kx, ky, boxed, iw, ih);
        plane = boxed;
    }
    /* In box units the source ratio s/d becomes s/(k*d); with k = 1 this is
     * PyTorch's (float)in / out. */
    cz_linear_taps(iw, dw, (float)sw / (float)((long long)kx * dw), tx);
    cz_linear_taps(ih, dh, (float)sh / (float)((long long)ky * dh), ty);

#pragma omp parallel for schedule(static)
    for (int y = 0; y < dh; y++) {
        const cz_tap t = ty[y];
        const float *r0 = plane + (size_t)t.i0 * (size_t)iw;
        const float *r1 = plane + (size_t)t.i1 * (size_t)iw;
        float *out = dst + (size_t)y * (size_t)dw;
        for (int x = 0; x < dw; x++) {
            const cz_tap u = tx[x];
            /* PyTorch's order: along x within each row, then along y. */
            float top = r0[u.i0] * u.w0 + r0[u.i1] * u.w1;
            float bottom = r1[u.i0] * u.w0 + r1[u.i1] * u.w1;
            out[x] = top * t.w0 + bottom * t.w1;
        }
    }

cleanup:
    free(tx);
    free(ty);
    free(boxed);
    return status;
}
