/*
 * One pixel of the sRGB <-> CIELab arithmetic, shared by image/lab.c's
 * array conversions and pipeline/recombine.c's fused upsampling, gamut fit
 * and conversion, so that both compute bit-identical values from the same
 * constants and the same order of operations. Private to src/image and
 * src/pipeline; lab.h explains the conventions (skimage's constants, D65).
 *
 * The functions are branch-free where it matters (both sides of a choice
 * computed, then selected), so that gcc can vectorize loops calling them.
 */
#ifndef CZ_IMAGE_LAB_PIXEL_H
#define CZ_IMAGE_LAB_PIXEL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Functions whose loops are worth AVX-512 where the CPU has it: the build
 * targets baseline x86-64 (SSE2), so these are compiled twice and the
 * loader picks one. The results are bit-identical: every operation is an
 * IEEE one in both, as long as a * b + c is not fused into an FMA, which
 * gcc does not do in C11 mode and clang is told not to do here. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CZ_VECTOR_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define CZ_VECTOR_CLONES
#endif
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

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

/* c ? x : y, through the bits: gcc moves arithmetic used by only one side
 * of a ?: into a branch, and then (floating point may trap) cannot vectorize
 * the loop; both sides computed and selected as bits, it can. */
static inline float select_float(bool c, float x, float y)
{
    uint32_t ux, uy, mask = 0u - (uint32_t)c;
    memcpy(&ux, &x, sizeof ux);
    memcpy(&uy, &y, sizeof uy);
    uint32_t u = (ux & mask) | (uy & ~mask);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static inline float lab_f_inverse(float f)
{
    return select_float(f > LAB_F_THRESHOLD, f * f * f,
                        (f - LAB_F_OFFSET) / LAB_KAPPA);
}

/* Clamp to [0, 1], NaN to 0 (fmaxf returns the number when one is NaN). */
static inline float clip01(float v)
{
    return fminf(fmaxf(v, 0.0f), 1.0f);
}

/* Linear RGB (neither companded nor clipped) of X, Y, Z relative to white. */
static inline void xyzn_to_linear_rgb(float x, float y, float z, float *r,
                                      float *g, float *b)
{
    const float (*m)[3] = xyzn_to_rgb;
    *r = m[0][0] * x + m[0][1] * y + m[0][2] * z;
    *g = m[1][0] * x + m[1][1] * y + m[1][2] * z;
    *b = m[2][0] * x + m[2][1] * y + m[2][2] * z;
}

/* Linear RGB of L*a*b* given fy = (L* + 16) / 116, as skimage's lab2rgb
 * computes it before companding: a negative Z is clipped to 0 (skimage
 * warns; we cannot). */
static inline void lab_fy_to_linear_rgb(float fy, float a, float b, float *r,
                                        float *g, float *bl)
{
    float fx = a / 500.0f + fy;
    float fz = fy - b / 200.0f;
    fz = select_float(fz < 0.0f, 0.0f, fz); /* NaN stays NaN, as in skimage */
    xyzn_to_linear_rgb(lab_f_inverse(fx), lab_f_inverse(fy), lab_f_inverse(fz),
                       r, g, bl);
}

static inline void lab_to_linear_rgb(float L, float a, float b, float *r,
                                     float *g, float *bl)
{
    lab_fy_to_linear_rgb((L + 16.0f) / 116.0f, a, b, r, g, bl);
}

/* One output sample of linear value v: companded, clipped, scaled to `full`
 * (255 or 65535) and rounded to nearest. */
static inline float srgb_sample(float v, float full)
{
    return clip01(srgb_encode(v)) * full + 0.5f;
}

/* ---- 8-bit companding without powf ---------------------------------------
 *
 * An 8-bit sample of a linear value v is (uint8_t)srgb_sample(v, 255), a
 * non-decreasing step function of v (checked for every float in [0, 1]
 * against glibc's powf; tests/test_lab.c checks it again around every step).
 * So it is the number of steps at or below v: threshold[k] is the least float
 * whose sample is k or more. The steps are at least 1/3295 apart (the
 * steepest slope of the curve is 12.92 * 255 at 0), so a bucket of width
 * 1/SRGB8_BUCKETS holds at most one: the sample is the bucket's first sample,
 * plus one if v has reached the next step. Exactly srgb_sample's result for
 * every float, NaN and values outside [0, 1] included. */
enum { SRGB8_BUCKETS = 4096 };

typedef struct {
    float threshold[257]; /* [0] unused; [256] = +infinity, never reached */
    int32_t first[SRGB8_BUCKETS + 1]; /* sample at k / SRGB8_BUCKETS (int32
                                          for vector gathers) */
} cz_srgb8_table;

/* Fills the table (about 10k powf calls, a fraction of a millisecond). */
void cz_srgb8_table_init(cz_srgb8_table *t);

static inline uint8_t srgb8_sample(const cz_srgb8_table *t, float v)
{
    v = select_float(v > 0.0f, v, 0.0f); /* NaN too */
    v = select_float(v < 1.0f, v, 1.0f);
    int k = t->first[(int)(v * (float)SRGB8_BUCKETS)];
    return (uint8_t)(k + (v >= t->threshold[k + 1]));
}

#endif
