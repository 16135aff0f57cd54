#include "train/disc_input.h"

#include <string.h>

static const cz_disc_transform identity = {0};

void cz_disc_transform_draw(cz_rng *rng, int size, int64_t n, cz_disc_transform *t)
{
    int shift = size / 8, cut = size / 2;
    for (int64_t i = 0; i < n; i++) {
        t[i].dy = (int)cz_rng_below(rng, (uint64_t)(2 * shift + 1)) - shift;
        t[i].dx = (int)cz_rng_below(rng, (uint64_t)(2 * shift + 1)) - shift;
        /* The square's centre is uniform over the image. */
        t[i].cut_y = (int)cz_rng_below(rng, (uint64_t)size + 1) - cut / 2;
        t[i].cut_x = (int)cz_rng_below(rng, (uint64_t)size + 1) - cut / 2;
        t[i].cut = cut;
    }
}

static int max_int(int a, int b) { return a > b ? a : b; }
static int min_int(int a, int b) { return a < b ? a : b; }

/* The columns [x0, x1) of D's row y that show a source pixel, split around
 * the cut square into [x0, x1) and [x2, x3); returns the source row or -1. */
static int visible_row(const cz_disc_transform *t, int size, int y, int *x0, int *x1, int *x2, int *x3)
{
    int sy = y - t->dy;
    if (sy < 0 || sy >= size)
        return -1;
    *x0 = max_int(0, t->dx);
    *x3 = min_int(size, size + t->dx);
    *x1 = *x3, *x2 = *x3;
    if (y >= t->cut_y && y < t->cut_y + t->cut) {
        *x1 = max_int(*x0, min_int(*x3, t->cut_x));
        *x2 = min_int(*x3, max_int(*x0, t->cut_x + t->cut));
    }
    return sy;
}

void cz_disc_input_fill(const cz_disc_transform *t, int64_t n, int size, const float *L,
                        const float *ab, float *d_in)
{
    int64_t plane = (int64_t)size * size;
    for (int64_t i = 0; i < n; i++) {
        const cz_disc_transform *ti = t ? &t[i] : &identity;
        const float *src[3] = {L + i * plane, ab + 2 * i * plane, ab + (2 * i + 1) * plane};
        for (int c = 0; c < 3; c++) {
            float *dst = d_in + (3 * i + c) * plane;
            memset(dst, 0, (size_t)plane * sizeof *dst);
            for (int y = 0; y < size; y++) {
                int x0, x1, x2, x3, sy = visible_row(ti, size, y, &x0, &x1, &x2, &x3);
                if (sy < 0)
                    continue;
                const float *s = src[c] + (int64_t)sy * size;
                float *d = dst + (int64_t)y * size;
                if (x1 > x0)
                    memcpy(d + x0, s + x0 - ti->dx, (size_t)(x1 - x0) * sizeof *d);
                if (x3 > x2)
                    memcpy(d + x2, s + x2 - ti->dx, (size_t)(x3 - x2) * sizeof *d);
            }
        }
    }
}

void cz_disc_input_backward(const cz_disc_transform *t, int64_t n, int size, const float *d_in_grad,
                            float *ab_grad)
{
    int64_t plane = (int64_t)size * size;
    for (int64_t i = 0; i < n; i++) {
        const cz_disc_transform *ti = t ? &t[i] : &identity;
        for (int c = 0; c < 2; c++) {
            const float *g = d_in_grad + (3 * i + 1 + c) * plane;
            float *dst = ab_grad + (2 * i + c) * plane;
            for (int y = 0; y < size; y++) {
                int x0, x1, x2, x3, sy = visible_row(ti, size, y, &x0, &x1, &x2, &x3);
                if (sy < 0)
                    continue;
                float *d = dst + (int64_t)sy * size;
                const float *s = g + (int64_t)y * size;
                for (int x = x0; x < x1; x++)
                    d[x - ti->dx] += s[x];
                for (int x = x2; x < x3; x++)
                    d[x - ti->dx] += s[x];
            }
        }
    }
}
