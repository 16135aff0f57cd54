/*
 * The inference path, step by step (cz_colorize_image in colorizer.c strings
 * these together; they are separate so tests can check each one):
 *
 *   photo --cz_luminance_plane--> L* at full resolution (4 bytes a pixel)
 *         --cz_resize_bilinear_f32--> L* at N x N --network--> a*b* at N x N
 *         --cz_recombine--> a*b* upsampled bilinearly to full size, fitted
 *           into the sRGB gamut at the original L*, converted to sRGB.
 *
 * Full-resolution a*b* planes are never held: cz_recombine upsamples, fits
 * and converts one row at a time (rows in parallel), so memory beyond the
 * input, the output and the L* plane is a few rows' worth whatever the
 * photo's size.
 */
#ifndef CZ_PIPELINE_PIPELINE_H
#define CZ_PIPELINE_PIPELINE_H

#include <stddef.h>

#include "colorize.h"

/* The network's input and output scaling (see models/model.h): it reads
 * L* / CZ_L_HALF_RANGE - 1 in [-1, 1] and its tanh output is a*b* /
 * CZ_AB_RANGE. */
#define CZ_L_HALF_RANGE 50.0f
#define CZ_AB_RANGE 110.0f

/* L* of every pixel of img (any channels and depth), row-major, into L
 * (width * height floats). Alpha is ignored. */
cz_status cz_luminance_plane(const cz_image *img, float *L);

/* Scales each (a[i], b[i]) towards (0, 0) by the largest factor in [0, 1]
 * (to within 1/4096) that puts (L[i], a[i], b[i]) inside the sRGB gamut, so
 * converting to sRGB needs no clipping and keeps L*; colours already inside
 * are left exactly as they are. L in [0, 100]. */
void cz_fit_gamut(const float *L, float *a, float *b, size_t n);

/* Writes the RGB samples of out (3 or 4 channels; alpha is left as it is)
 * from the full-resolution L (out's size) and a*b* predicted at N x N:
 * a*b* are resized to out's size exactly as cz_resize_bilinear_f32 would
 * (PyTorch's bilinear, align_corners=False), fitted into the gamut
 * (cz_fit_gamut) and converted with cz_lab_planes_to_image, all in one pass:
 * the samples are bit-identical to those three steps on whole planes. */
cz_status cz_recombine(const float *L, const float *a_small,
                       const float *b_small, int N, cz_image *out);

#endif
