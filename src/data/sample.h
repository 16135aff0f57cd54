/*
 * Training data, part 2: one photo to one network sample.
 *
 *   decode (JPEG/PNG, EXIF orientation applied)
 *   -> grayscale? (1 or 2 channels, or mean |a*| + |b*| over the whole photo
 *      below gray_chroma): no sample; the caller replaces the photo
 *   -> sRGB -> CIELab planes of the whole photo (skimage's formulas)
 *   -> crop: training, torchvision's RandomResizedCrop (area scale_min..
 *      scale_max of the photo, aspect ratio ratio_min..ratio_max drawn
 *      log-uniformly, ten tries, then a centre crop clamped to the ratio
 *      range); validation, the centred square of side min(W, H)
 *   -> each plane resized to S x S by cz_resize_bilinear_f32 (PyTorch's
 *      bilinear, with box averaging first where an axis shrinks over 2x)
 *   -> training: mirrored left-right with probability flip_p
 *   -> L* / 50 - 1 (clamped to [-1, 1] against float rounding at white),
 *      a* / 110, b* / 110: the generators' input and tanh output scales.
 *
 * The resize runs on Lab planes, as the inference pipeline does on L*, so the
 * network's input at training and at use is made the same way.
 *
 * All randomness comes from the rng passed in, drawn in a fixed order (the
 * crop's tries, then the flip), so a sample is a function of (file, rng
 * state) alone.
 */
#ifndef CZ_DATA_SAMPLE_H
#define CZ_DATA_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "colorize.h"

/* Square training sizes of the architectures (model.h): the U-Net was built
 * for 256, the ResNet50 encoders for ImageNet's 224. */
#define CZ_DATA_SIZE_UNET 256
#define CZ_DATA_SIZE_RESNET 224

/* Normalisation shared with the generators and the inference pipeline. */
#define CZ_L_HALF_RANGE 50.0f /* network L = L* / 50 - 1, in [-1, 1] */
#define CZ_AB_RANGE 110.0f     /* network ab = a*b* / 110, tanh's range */

/* Augmentation defaults. Colorisation needs whole objects to guess their
 * colour, so crops keep at least half the photo (torchvision's 0.08 would
 * often show a featureless patch); the aspect range is torchvision's. */
#define CZ_CROP_SCALE_MIN 0.5f
#define CZ_CROP_SCALE_MAX 1.0f
#define CZ_CROP_RATIO_MIN (3.0f / 4.0f)
#define CZ_CROP_RATIO_MAX (4.0f / 3.0f)
#define CZ_FLIP_P 0.5f
/* Tries at a random crop before the centre-crop fallback (torchvision's). */
#define CZ_CROP_TRIES 10
/* Mean |a*| + |b*| below which a photo is taken as grayscale: a JPEG of a
 * gray picture keeps a few tenths of chroma noise; the least colourful photo
 * of the training set has 2.04. */
#define CZ_GRAY_CHROMA 1.0f

typedef struct {
    int size;        /* S: output is S x S */
    bool augment;    /* random resized crop + flip; false: centre square */
    float scale_min, scale_max; /* crop area as a fraction of the photo */
    float ratio_min, ratio_max; /* crop width / height */
    float flip_p;               /* probability of a left-right mirror */
    float gray_chroma;          /* grayscale threshold, see above */
    uint64_t max_pixels;        /* decode limit; 0 = the image default */
} cz_sample_options;

/* The defaults above for size S; augment as given. */
void cz_sample_options_init(cz_sample_options *o, int size, bool augment);

/* CZ_OK, or CZ_ERR_INVALID naming the bad field. */
cz_status cz_sample_options_check(const cz_sample_options *o);

/* A rectangle of the photo: columns x..x+w-1, rows y..y+h-1. */
typedef struct {
    int x, y, w, h;
} cz_crop;

/* torchvision RandomResizedCrop.get_params for a W x H photo. */
cz_crop cz_crop_random_resized(cz_rng *rng, int W, int H, float scale_min,
                               float scale_max, float ratio_min,
                               float ratio_max);

/* The centred square of side min(W, H) (offsets rounded down). */
cz_crop cz_crop_center_square(int W, int H);

/* Buffers a worker reuses from one photo to the next; zero-initialise,
 * free with cz_sample_scratch_free. They only grow. */
typedef struct {
    float *lab;       /* L*, a*, b* planes of the whole photo */
    size_t lab_cap;   /* floats */
    float *crop;      /* one plane of the crop, contiguous */
    size_t crop_cap;  /* floats */
} cz_sample_scratch;

void cz_sample_scratch_free(cz_sample_scratch *s);

/* What cz_sample_make found beyond its status. */
typedef struct {
    bool gray;      /* grayscale: nothing was written */
    float chroma;   /* mean |a*| + |b*| of the whole photo (0 for gray) */
    int width, height; /* the decoded photo */
    cz_crop crop;   /* the rectangle taken */
    bool flipped;
} cz_sample_info;

/* Makes one sample of path into L (S*S floats) and ab (2*S*S floats: the a
 * plane, then the b plane). On a decode failure returns the loader's status
 * (CZ_ERR_IO, CZ_ERR_FORMAT, CZ_ERR_TOO_LARGE, with cz_last_error naming the
 * file); CZ_ERR_NOMEM if scratch cannot grow. info may be NULL. */
cz_status cz_sample_make(const char *path, const cz_sample_options *o,
                         cz_rng *rng, cz_sample_scratch *scratch, float *L,
                         float *ab, cz_sample_info *info);

#endif
