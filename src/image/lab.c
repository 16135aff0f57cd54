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

/* sRGB companding, IEC 61966-2-1, with skimage's thresholds. */
#define SRGB_DECODE_THRESHOLD 0.04045f  /* encoded value below which it is linear */
#define SRGB_ENCODE_THRESHOLD 0.0031308f /* linear value below which it is linear */
#define SRGB_SLOPE 12.92f
#define SRGB_OFFSET 0.055f
#define SRGB_GAMMA 2.4f

/* CIE f(t) = cbrt(t) above LAB_EPSILON, LAB_KAPPA * t + 16/116 below; its
 * inverse switches at LAB_F_THRESHOLD = f(LAB_EPSILON) (skimage's 0.2068966). */
#define LAB_EPSILON 0.008856f
#define LAB_KAPPA 7.787f
#define LAB_F_THRESHOLD 0.2068966f
#define LAB_F_OFFSET (16.0f / 116.0f)

/* D65 white, 2-degree observer: skimage's illuminants["D65"]["2"]. */
#define WHITE_X 0.95047
#define WHITE_Y 1.0
#define WHITE_Z 1.08883

/* skimage's xyz_from_rgb, each row divided by its white component. */
static const float rgb_to_xyzn[3][3] = {
    {(float)(0.412453 / WHITE_X), (float)(0.357580 / WHITE_X), (float)(0.180423 / WHITE_X)},
    {(float)(0.212671 / WHITE_Y), (float)(0.715160 / WHITE_Y), (float)(0.072169 / WHITE_Y)},
    {(float)(0.019334 / WHITE_Z), (float)(0.119193 / WHITE_Z), (float)(0.950227 / WHITE_Z)},
};

/* skimage's rgb_from_xyz = inv(xyz_from_rgb) (float64, printed to 17
 * digits), each column multiplied by its white component. */
static const float xyzn_to_rgb[3][3] = {
    {(float)(3.2404813432005266 * WHITE_X), (float)(-1.5371515162713183 * WHITE_Y), (float)(-0.4985363261688878 * WHITE_Z)},
    {(float)(-0.9692549499965682 * WHITE_X), (float)(1.8759900014898907 * WHITE_Y), (float)(0.04155592655829284 * WHITE_Z)},
    {(float)(0.055646639135177166 * WHITE_X), (float)(-0.20404133836651123 * WHITE_Y), (float)(1.0573110696453443 * WHITE_Z)},
};

/* Pixels per OpenMP work item: big enough to amortise scheduling, small
 * enough to balance. Chunks are fixed, so results never depend on the
 * number of threads (each pixel is computed alone anyway). */
enum { LAB_CHUNK = 16384 };

static inline float srgb_decode(float c)
{
    return c > SRGB_DECODE_THRESHOLD
               ? powf((c + SRGB_OFFSET) / (1.0f + SRGB_OFFSET), SRGB_GAMMA)
               : c / SRGB_SLOPE;
}

static inline float srgb_encode(float c)
{
    return c > SRGB_ENCODE_THRESHOLD
               ? (1.0f + SRGB_OFFSET) * powf(c, 1.0f / SRGB_GAMMA) - SRGB_OFFSET
               : c * SRGB_SLOPE;
}

static inline float lab_f(float t)
{
    return t > LAB_EPSILON ? cbrtf(t) : LAB_KAPPA * t + LAB_F_OFFSET;
}

static inline float lab_f_inverse(float f)
{
    return f > LAB_F_THRESHOLD ? f * f * f : (f - LAB_F_OFFSET) / LAB_KAPPA;
}

/* Clamp to [0, 1]; fmaxf returns 0 for a NaN, so NaN becomes 0. */
static inline float clip01(float v)
{
    return fminf(fmaxf(v, 0.0f), 1.0f);
}

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

static inline void lab_to_srgb_pixel(float L, float a, float b, float *out)
{
    float fy = (L + 16.0f) / 116.0f;
    float fx = a / 500.0f + fy;
    float fz = fy - b / 200.0f;
    if (fz < 0.0f)
        fz = 0.0f; /* skimage clips Z < 0 (it warns; we cannot) */
    float x = lab_f_inverse(fx), y = lab_f_inverse(fy), z = lab_f_inverse(fz);
    const float (*m)[3] = xyzn_to_rgb;
    out[0] = clip01(srgb_encode(m[0][0] * x + m[0][1] * y + m[0][2] * z));
    out[1] = clip01(srgb_encode(m[1][0] * x + m[1][1] * y + m[1][2] * z));
    out[2] = clip01(srgb_encode(m[2][0] * x + m[2][1] * y + m[2][2] * z));
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

cz_status cz_image_to_lab_planes(const cz_image *img, float *L, float *a,
                                 float *b)
{
    cz_status s = check_image(img, "cz_image_to_lab_planes");
    if (s != CZ_OK)
        return s;
    if (!L || !a || !b)
        return cz_fail(CZ_ERR_INVALID, "cz_image_to_lab_planes: NULL plane");
    /* Every 8-bit sample is one of 256 values: decode each once. */
    float lin8[256];
    for (int v = 0; v < 256; v++)
        lin8[v] = srgb_decode((float)v / 255.0f);

    const int W = img->width, H = img->height, C = img->channels;
    const int gray = C <= 2;
    const uint8_t *p8 = img->data;
    const uint16_t *p16 = img->data;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * (size_t)W + (size_t)x;
            size_t s0 = i * (size_t)C;
            float lin[3];
            for (int c = 0; c < (gray ? 1 : 3); c++)
                lin[c] = img->depth == 8
                             ? lin8[p8[s0 + c]]
                             : srgb_decode((float)p16[s0 + c] / 65535.0f);
            if (gray) {
                L[i] = linear_gray_to_L(lin[0]);
                a[i] = 0.0f;
                b[i] = 0.0f;
            } else {
                float lab[3];
                linear_rgb_to_lab(lin[0], lin[1], lin[2], lab);
                L[i] = lab[0];
                a[i] = lab[1];
                b[i] = lab[2];
            }
        }
    }
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
    const float full = out->depth == 8 ? 255.0f : 65535.0f;
    uint8_t *p8 = out->data;
    uint16_t *p16 = out->data;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * (size_t)W + (size_t)x;
            float rgb[3];
            lab_to_srgb_pixel(L[i], a[i], b[i], rgb);
            for (int c = 0; c < 3; c++) {
                /* rgb is in [0, 1], so this rounds to nearest in range. */
                float v = rgb[c] * full + 0.5f;
                if (out->depth == 8)
                    p8[i * (size_t)C + (size_t)c] = (uint8_t)v;
                else
                    p16[i * (size_t)C + (size_t)c] = (uint16_t)v;
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
