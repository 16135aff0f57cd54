/*
 * Colour: sRGB <-> CIELab and plane resizing.
 *
 * The network sees L* and predicts a*b*, so these conversions must agree with
 * the ones used when the reference model was trained: skimage.color.rgb2lab
 * and lab2rgb (D65 white 0.95047, 1.0, 1.08883; 2-degree observer; sRGB
 * companding of IEC 61966-2-1; skimage's rounded CIE constants 0.008856 and
 * 7.787). Tests hold us within 1e-3 of skimage on a dense grid.
 *
 * Ranges: RGB in [0, 1]; L* in [0, 100]; a*, b* roughly [-128, 127].
 * Everything works on whole arrays, with OpenMP over fixed chunks of rows or
 * pixels: a 24-megapixel scan takes about half a second each way on two
 * cores, and every result is the same whatever the thread count.
 */
#ifndef CZ_IMAGE_LAB_H
#define CZ_IMAGE_LAB_H

#include <stddef.h>

#include "colorize.h"
#include "image/image.h"

/* n_pixels interleaved RGB triples in [0, 1] to interleaved L*a*b*.
 * Values outside [0, 1] follow the same formulas, as in skimage.
 * lab may be the same array as rgb. */
void cz_srgb_to_lab(const float *rgb, float *lab, size_t n_pixels);

/* n_pixels interleaved L*a*b* triples to RGB, clipped to [0, 1] as skimage
 * does for colours outside the sRGB gamut (negative Z is clipped first, also
 * as skimage does). A NaN component gives 0 rather than NaN. rgb may be the
 * same array as lab. */
void cz_lab_to_srgb(const float *lab, float *rgb, size_t n_pixels);

/* The L*, a*, b* planes (width*height floats each, row-major) of an image of
 * any channel count and depth. Gray images (1 or 2 channels) give a* = b* = 0
 * exactly; alpha is ignored. 8-bit samples are linearised through a table. */
cz_status cz_image_to_lab_planes(const cz_image *img, float *L, float *a,
                                 float *b);

/* The L* plane alone, bit-identical to cz_image_to_lab_planes' L (8-bit
 * gray: one table lookup a pixel). */
cz_status cz_image_to_lightness(const cz_image *img, float *L);

/* Writes the RGB samples of out (3 or 4 channels, depth 8 or 16) from
 * L*, a*, b* planes of out's size, rounding to nearest; alpha is left as it
 * is, so a caller can load RGBA, recolour it and keep the transparency. The
 * samples are those of cz_lab_to_srgb's floats; 8-bit ones are companded
 * through a table of the 255 steps instead of powf (lab_pixel.h). */
cz_status cz_lab_planes_to_image(const float *L, const float *a,
                                 const float *b, cz_image *out);

/* Resizes one plane of sw x sh floats to dw x dh.
 *
 * Up to a 2x reduction per axis this is exactly PyTorch's
 * F.interpolate(mode='bilinear', align_corners=False, antialias=False):
 * source coordinate (d + 0.5) * (s / d_size) - 0.5, clamped at 0, with
 * PyTorch's precisions and order of operations. Bilinear reads only 2 source pixels per
 * axis, so shrinking further skips pixels and aliases (a 24-megapixel scan
 * at 256x256 keeps one pixel in 400). When an axis shrinks by more than 2x,
 * its pixels are therefore first averaged in boxes of k = floor(s / d) (the
 * last box takes what is left), and bilinear then runs on the box centres,
 * keeping the same geometry; the remaining reduction is below 1.5x. */
cz_status cz_resize_bilinear_f32(const float *src, int sw, int sh, float *dst,
                                 int dw, int dh);

/* One output coordinate's two source indices and weights. */
typedef struct {
    int i0, i1;
    float w0, w1;
} cz_tap;

/* PyTorch's bilinear taps (upsample_bilinear2d, align_corners=False, with
 * its precisions) for out_size outputs over in_size inputs, source step
 * `ratio` (in_size / out_size as a float). cz_resize_bilinear_f32 uses them,
 * and so does the pipeline's strip-wise upsampling, to stay bit-identical. */
void cz_linear_taps(int in_size, int out_size, float ratio, cz_tap *taps);

/* The a*b* plane in bins, for a generator that predicts a distribution over
 * colours instead of one colour (Zhang, Isola & Efros 2016): cells of
 * CZ_AB_BIN_STEP a*b* units centred on its multiples within
 * +-CZ_AB_BIN_REACH, kept where some point of the cell (its centre, corners
 * or edge midpoints) is an sRGB colour at some L*: 261 bins. Writes the
 * kept centres in a*b* units, a row at a time, unless centres is NULL, and
 * returns their number. The same on every machine: the model files of such
 * generators depend on it. */
#define CZ_AB_BIN_STEP 10
#define CZ_AB_BIN_REACH 110
#define CZ_AB_BINS_MAX ((2 * CZ_AB_BIN_REACH / CZ_AB_BIN_STEP + 1) * (2 * CZ_AB_BIN_REACH / CZ_AB_BIN_STEP + 1))
int cz_ab_bins(float (*centres)[2]);

#endif
