/* One photo to one sample: decode, grayscale test, Lab, crop, resize, flip,
 * normalise (the steps in sample.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "data/sample.h"
#include "image/image.h"
#include "image/lab.h"

void cz_sample_options_init(cz_sample_options *o, int size, bool augment)
{
    *o = (cz_sample_options){
        .size = size,
        .augment = augment,
        .scale_min = CZ_CROP_SCALE_MIN,
        .scale_max = CZ_CROP_SCALE_MAX,
        .ratio_min = CZ_CROP_RATIO_MIN,
        .ratio_max = CZ_CROP_RATIO_MAX,
        .flip_p = CZ_FLIP_P,
        .gray_chroma = CZ_GRAY_CHROMA,
    };
}

/* Largest S accepted: well past any network input, and S*S*3 floats stays
 * far from overflowing anything. */
enum { SAMPLE_MAX_SIZE = 8192 };

cz_status cz_sample_options_check(const cz_sample_options *o)
{
    if (!o)
        return cz_fail(CZ_ERR_INVALID, "sample options: NULL");
    if (o->size < 1 || o->size > SAMPLE_MAX_SIZE)
        return cz_fail(CZ_ERR_INVALID, "image size %d: must be 1..%d",
                       o->size, SAMPLE_MAX_SIZE);
    if (!(o->scale_min > 0 && o->scale_min <= o->scale_max &&
          o->scale_max <= 1))
        return cz_fail(CZ_ERR_INVALID,
                       "crop scale %g..%g: need 0 < min <= max <= 1",
                       o->scale_min, o->scale_max);
    if (!(o->ratio_min > 0 && o->ratio_min <= o->ratio_max &&
          isfinite(o->ratio_max)))
        return cz_fail(CZ_ERR_INVALID,
                       "crop ratio %g..%g: need 0 < min <= max", o->ratio_min,
                       o->ratio_max);
    if (!(o->flip_p >= 0 && o->flip_p <= 1))
        return cz_fail(CZ_ERR_INVALID, "flip probability %g: need 0..1",
                       o->flip_p);
    if (!(o->gray_chroma >= 0 && isfinite(o->gray_chroma)))
        return cz_fail(CZ_ERR_INVALID, "grayscale threshold %g: need >= 0",
                       o->gray_chroma);
    return CZ_OK;
}

/* ---- Crops --------------------------------------------------------------- */

/* Uniform double in [lo, hi) from 53 random bits. */
static double uniform_range(cz_rng *rng, double lo, double hi)
{
    double u = (double)(cz_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

cz_crop cz_crop_random_resized(cz_rng *rng, int W, int H, float scale_min,
                               float scale_max, float ratio_min,
                               float ratio_max)
{
    const double area = (double)W * (double)H;
    const double log_rmin = log(ratio_min), log_rmax = log(ratio_max);
    for (int t = 0; t < CZ_CROP_TRIES; t++) {
        double target = area * uniform_range(rng, scale_min, scale_max);
        double ratio = exp(uniform_range(rng, log_rmin, log_rmax));
        double w = round(sqrt(target * ratio));
        double h = round(sqrt(target / ratio));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            cz_crop c = {.w = (int)w, .h = (int)h};
            c.y = (int)cz_rng_below(rng, (uint64_t)(H - c.h) + 1);
            c.x = (int)cz_rng_below(rng, (uint64_t)(W - c.w) + 1);
            return c;
        }
    }
    /* The centre crop of torchvision's fallback: the whole photo, cut to the
     * nearest allowed ratio. */
    const double in_ratio = (double)W / (double)H;
    cz_crop c = {.w = W, .h = H};
    if (in_ratio < ratio_min)
        c.h = (int)fmax(1.0, round(W / (double)ratio_min));
    else if (in_ratio > ratio_max)
        c.w = (int)fmax(1.0, round(H * (double)ratio_max));
    c.y = (H - c.h) / 2;
    c.x = (W - c.w) / 2;
    return c;
}

cz_crop cz_crop_center_square(int W, int H)
{
    int side = W < H ? W : H;
    return (cz_crop){.x = (W - side) / 2, .y = (H - side) / 2, .w = side,
                     .h = side};
}

/* ---- Sample -------------------------------------------------------------- */

void cz_sample_scratch_free(cz_sample_scratch *s)
{
    if (!s)
        return;
    free(s->lab);
    free(s->crop);
    memset(s, 0, sizeof *s);
}

static cz_status grow(float **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return CZ_OK;
    float *p = realloc(*buf, need * sizeof *p);
    if (!p)
        return cz_fail(CZ_ERR_NOMEM, "data: out of memory for a %zu-float "
                       "buffer", need);
    *buf = p;
    *cap = need;
    return CZ_OK;
}

/* Mean |a*| + |b*| over n pixels, in double so that the sum of a 100-
 * megapixel photo is exact enough. */
static float mean_chroma(const float *a, const float *b, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += fabs((double)a[i]) + fabs((double)b[i]);
    return (float)(sum / (double)n);
}

/* Crops one W-wide plane to c and resizes it into dst (S x S). */
static cz_status crop_resize(const float *plane, int W, cz_crop c, float *tmp,
                             float *dst, int S)
{
    const float *src = plane + (size_t)c.y * (size_t)W + (size_t)c.x;
    if (c.w != W) { /* rows of the crop are not contiguous: gather them */
        for (int y = 0; y < c.h; y++)
            memcpy(tmp + (size_t)y * (size_t)c.w, src + (size_t)y * (size_t)W,
                   (size_t)c.w * sizeof *tmp);
        src = tmp;
    }
    return cz_resize_bilinear_f32(src, c.w, c.h, dst, S, S);
}

static void mirror_rows(float *plane, int S)
{
    for (int y = 0; y < S; y++) {
        float *row = plane + (size_t)y * (size_t)S;
        for (int x = 0; x < S / 2; x++) {
            float t = row[x];
            row[x] = row[S - 1 - x];
            row[S - 1 - x] = t;
        }
    }
}

cz_status cz_sample_make(const char *path, const cz_sample_options *o,
                         cz_rng *rng, cz_sample_scratch *scratch, float *L,
                         float *ab, cz_sample_info *info)
{
    cz_sample_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    cz_image *img = NULL;
    cz_image_options io = {.max_pixels = o->max_pixels};
    cz_status status = cz_image_load(path, &io, &img);
    if (status != CZ_OK)
        return status;
    const int W = img->width, H = img->height, S = o->size;
    info->width = W;
    info->height = H;
    if (img->channels <= 2) {
        info->gray = true;
        goto cleanup;
    }
    /* W*H is below the decoder's pixel limit, so 3*W*H fits in size_t. */
    const size_t n = (size_t)W * (size_t)H;
    status = grow(&scratch->lab, &scratch->lab_cap, 3 * n);
    if (status != CZ_OK)
        goto cleanup;
    float *pl = scratch->lab, *pa = pl + n, *pb = pa + n;
    status = cz_image_to_lab_planes(img, pl, pa, pb);
    if (status != CZ_OK)
        goto cleanup;
    cz_image_free(img);
    img = NULL;

    info->chroma = mean_chroma(pa, pb, n);
    if (info->chroma < o->gray_chroma) {
        info->gray = true;
        goto cleanup;
    }
    cz_crop c = o->augment
                    ? cz_crop_random_resized(rng, W, H, o->scale_min,
                                             o->scale_max, o->ratio_min,
                                             o->ratio_max)
                    : cz_crop_center_square(W, H);
    info->crop = c;
    status = grow(&scratch->crop, &scratch->crop_cap,
                  (size_t)c.w * (size_t)c.h);
    if (status != CZ_OK)
        goto cleanup;
    const size_t SS = (size_t)S * (size_t)S;
    float *out[3] = {L, ab, ab + SS};
    const float *planes[3] = {pl, pa, pb};
    for (int k = 0; k < 3; k++) {
        status = crop_resize(planes[k], W, c, scratch->crop, out[k], S);
        if (status != CZ_OK)
            goto cleanup;
    }
    info->flipped = o->augment && cz_rng_uniform(rng) < o->flip_p;
    if (info->flipped)
        for (int k = 0; k < 3; k++)
            mirror_rows(out[k], S);

    for (size_t i = 0; i < SS; i++) {
        float v = L[i] / CZ_L_HALF_RANGE - 1.0f;
        L[i] = fminf(fmaxf(v, -1.0f), 1.0f);
    }
    for (size_t i = 0; i < 2 * SS; i++)
        ab[i] /= CZ_AB_RANGE;

cleanup:
    cz_image_free(img);
    return status;
}
