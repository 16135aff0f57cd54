/* The full-resolution steps of the inference path: L* of the photo, and the
 * recombination of the network's a*b* with it. The recombination is one pass
 * over the photo, rows in parallel with OpenMP: each row's a*b* are
 * interpolated, fitted into the gamut and converted to samples in buffers of
 * a few rows' size, so no full-resolution a*b* plane is ever allocated. Every
 * pixel is computed alone, so results do not depend on the thread count. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <omp.h>

#include "base/error.h"
#include "image/image.h"
#include "image/lab.h"
#include "image/lab_pixel.h"
#include "pipeline/pipeline.h"

/* ---- The sRGB gamut in CIELab ------------------------------------------ */

/* How far outside [0, 1] a linear RGB component may stray and still count as
 * inside, for float rounding: the matrix maps white to 1 + 1e-5. Clipping
 * the excess moves L* by the slope of L* in Y times it: 903 near black, under
 * 39 near white, hence the two sides; each costs L* under 0.005. */
#define GAMUT_SLACK_LOW 2e-6f
#define GAMUT_SLACK_HIGH 1e-4f
/* Bisection steps for the chroma scale: 12 halvings put it within 1/4096 of
 * the gamut's edge, far finer than 8-bit samples can show. */
enum { GAMUT_STEPS = 12 };
/* Pixels cz_fit_gamut fits at a time: its buffers live on the stack. */
enum { FIT_CHUNK = 512 };

static inline int in_range(float v)
{
    return (v >= -GAMUT_SLACK_LOW) & (v <= 1.0f + GAMUT_SLACK_HIGH);
}

/* Whether (L*, a*, b*) converts without clipping, given fy = (L* + 16) / 116
 * and y = f^-1(fy): lab_pixel.h's conversion stopped before its clips (a
 * negative Z, which it would clip and so move L*, is outside; NaN too).
 * Branch-free, for loops gcc vectorizes. */
static inline bool inside_gamut(float fy, float y, float a, float b)
{
    float fx = a / 500.0f + fy;
    float fz = fy - b / 200.0f;
    float r, g, bl;
    xyzn_to_linear_rgb(lab_f_inverse(fx), y, lab_f_inverse(fz), &r, &g, &bl);
    return (fz >= 0.0f) & in_range(r) & in_range(g) & in_range(bl);
}

/* Pixels found outside the gamut, packed: fy = (L* + 16) / 116, y its
 * f^-1, a*, b*; lo and hi are scratch. */
typedef struct {
    int n;
    float *fy, *y, *a, *b, *lo, *hi;
} fit_list;

/* Scales each (a[j], b[j]) of the list towards (0, 0): gray at L* is inside
 * for L* in [0, 100], so the chroma scale is bisected between it (lo) and
 * the colour (hi). The pixels are bisected side by side, one vectorized loop
 * per step. */
CZ_VECTOR_CLONES
static void fit_outside(fit_list *l)
{
    const int n = l->n;
    const float *fy = l->fy, *y = l->y;
    float *a = l->a, *b = l->b, *lo = l->lo, *hi = l->hi;
    for (int j = 0; j < n; j++) {
        lo[j] = 0.0f;
        hi[j] = 1.0f;
    }
    for (int step = 0; step < GAMUT_STEPS; step++) {
#pragma omp simd
        for (int j = 0; j < n; j++) {
            float mid = 0.5f * (lo[j] + hi[j]);
            bool ok = inside_gamut(fy[j], y[j], mid * a[j], mid * b[j]);
            lo[j] = select_float(ok, mid, lo[j]);
            hi[j] = select_float(ok, hi[j], mid);
        }
    }
#pragma omp simd
    for (int j = 0; j < n; j++) {
        a[j] *= lo[j];
        b[j] *= lo[j];
    }
}

/* cz_fit_gamut on n <= FIT_CHUNK pixels. */
CZ_VECTOR_CLONES
static void fit_chunk(const float *L, float *a, float *b, int n)
{
    float fy[FIT_CHUNK], y[FIT_CHUNK];
    float cfy[FIT_CHUNK], cy[FIT_CHUNK], ca[FIT_CHUNK], cb[FIT_CHUNK];
    float lo[FIT_CHUNK], hi[FIT_CHUNK];
    int at[FIT_CHUNK];
    bool inside[FIT_CHUNK];
#pragma omp simd
    for (int i = 0; i < n; i++) {
        fy[i] = (L[i] + 16.0f) / 116.0f;
        y[i] = lab_f_inverse(fy[i]);
        inside[i] = inside_gamut(fy[i], y[i], a[i], b[i]);
    }
    fit_list l = {0, cfy, cy, ca, cb, lo, hi};
    for (int i = 0; i < n; i++) {
        if (inside[i])
            continue;
        at[l.n] = i;
        cfy[l.n] = fy[i];
        cy[l.n] = y[i];
        ca[l.n] = a[i];
        cb[l.n] = b[i];
        l.n++;
    }
    fit_outside(&l);
    for (int j = 0; j < l.n; j++) {
        a[at[j]] = ca[j];
        b[at[j]] = cb[j];
    }
}

void cz_fit_gamut(const float *L, float *a, float *b, size_t n)
{
    const long long chunks = (long long)((n + FIT_CHUNK - 1) / FIT_CHUNK);
#pragma omp parallel for schedule(static) if (chunks > 128)
    for (long long c = 0; c < chunks; c++) {
        size_t i = (size_t)c * FIT_CHUNK;
        fit_chunk(L + i, a + i, b + i, (int)(n - i < FIT_CHUNK ? n - i : FIT_CHUNK));
    }
}

/* ---- L* of the photo ----------------------------------------------------- */

cz_status cz_luminance_plane(const cz_image *img, float *L)
{
    if (!img || !img->data || !L ||
        !cz_image_size(img->width, img->height, img->channels, img->depth,
                       NULL, NULL))
        return cz_fail(CZ_ERR_INVALID, "cz_luminance_plane: invalid image");
    return cz_image_to_lightness(img, L);
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

/* Output rows per OpenMP work item: rows of one item share the small rows
 * they interpolate between, which each thread keeps interpolated along x. */
enum { ROWS_PER_TASK = 32 };

/* One thread's buffers, each a row of W values. */
typedef struct {
    int key[2];        /* small rows held in xa, xb; -1 for none */
    float *xa[2], *xb[2]; /* those rows of a*, b* interpolated along x */
    float *a, *b, *fy, *y, *r, *g, *bl; /* this row: a*b*, (L+16)/116, f^-1 of
                                           it, linear RGB */
    bool *inside;
    /* The pixels outside the gamut, packed: where, and their values. */
    int *at;
    float *ca, *cb, *cfy, *cy, *lo, *hi;
} row_scratch;

enum { SCRATCH_ROWS = 17 }; /* float rows in a row_scratch, `inside` aside */
enum { CACHE_LINE = 64 };

static void scratch_assign(row_scratch *s, float *mem, int W)
{
    float *rows[SCRATCH_ROWS];
    for (int k = 0; k < SCRATCH_ROWS; k++)
        rows[k] = mem + (size_t)k * (size_t)W;
    *s = (row_scratch){
        .key = {-1, -1},
        .xa = {rows[0], rows[1]}, .xb = {rows[2], rows[3]},
        .a = rows[4], .b = rows[5], .fy = rows[6], .y = rows[7],
        .r = rows[8], .g = rows[9], .bl = rows[10],
        .ca = rows[11], .cb = rows[12], .cfy = rows[13], .cy = rows[14],
        .lo = rows[15], .hi = rows[16],
    };
}

/* The slot of s holding small row i interpolated along x, or -1. */
static int find_row(const row_scratch *s, int i)
{
    return s->key[0] == i ? 0 : s->key[1] == i ? 1 : -1;
}

/* Interpolates small row i of a*, b* along x into slot k. */
static void fill_row(row_scratch *s, int k, int i, const float *a_small,
                     const float *b_small, int N, const cz_tap *tx, int W)
{
    const float *pa = a_small + (size_t)i * (size_t)N;
    const float *pb = b_small + (size_t)i * (size_t)N;
    float *xa = s->xa[k], *xb = s->xb[k];
    for (int x = 0; x < W; x++) {
        const cz_tap u = tx[x];
        xa[x] = pa[u.i0] * u.w0 + pa[u.i1] * u.w1;
        xb[x] = pb[u.i0] * u.w0 + pb[u.i1] * u.w1;
    }
    s->key[k] = i;
}

/* One output row: its a*b* as cz_resize_bilinear_f32 gives them (along x,
 * then along y), fitted as cz_fit_gamut fits them, converted as
 * cz_lab_planes_to_image converts them. */
CZ_VECTOR_CLONES
static void recombine_row(row_scratch *s, const float *Lrow, cz_tap t,
                          const float *a_small, const float *b_small, int N,
                          const cz_tap *tx, const cz_srgb8_table *t8,
                          cz_image *out, int y)
{
    const int W = out->width, C = out->channels;
    int k0 = find_row(s, t.i0), k1 = find_row(s, t.i1);
    if (k0 < 0) {
        k0 = k1 == 0 ? 1 : 0;
        fill_row(s, k0, t.i0, a_small, b_small, N, tx, W);
    }
    if (k1 < 0) {
        k1 = t.i1 == t.i0 ? k0 : 1 - k0;
        if (k1 != k0)
            fill_row(s, k1, t.i1, a_small, b_small, N, tx, W);
    }
    const float *xa0 = s->xa[k0], *xa1 = s->xa[k1];
    const float *xb0 = s->xb[k0], *xb1 = s->xb[k1];
    float *ra = s->a, *rb = s->b, *rfy = s->fy, *ry = s->y;
    float *r = s->r, *g = s->g, *bl = s->bl;
    bool *inside = s->inside;
#pragma omp simd
    for (int x = 0; x < W; x++) {
        float a = xa0[x] * t.w0 + xa1[x] * t.w1;
        float b = xb0[x] * t.w0 + xb1[x] * t.w1;
        float fy = (Lrow[x] + 16.0f) / 116.0f;
        float yy = lab_f_inverse(fy);
        lab_fy_to_linear_rgb(fy, a, b, &r[x], &g[x], &bl[x]);
        /* Inside, the conversion clipped nothing: its RGB is the test's. */
        inside[x] = (fy - b / 200.0f >= 0.0f) & in_range(r[x]) &
                    in_range(g[x]) & in_range(bl[x]);
        ra[x] = a;
        rb[x] = b;
        rfy[x] = fy;
        ry[x] = yy;
    }
    /* Pack the pixels outside (branch-free: at[m] is written for every
     * pixel, kept for those outside), fit them, convert them again. */
    int *at = s->at, m = 0;
    for (int x = 0; x < W; x++) {
        at[m] = x;
        m += !inside[x];
    }
    float *ca = s->ca, *cb = s->cb, *cfy = s->cfy, *cy = s->cy;
#pragma omp simd
    for (int j = 0; j < m; j++) {
        ca[j] = ra[at[j]];
        cb[j] = rb[at[j]];
        cfy[j] = rfy[at[j]];
        cy[j] = ry[at[j]];
    }
    fit_list l = {m, cfy, cy, ca, cb, s->lo, s->hi};
    fit_outside(&l);
    /* The fitted colours' RGB, packed, in buffers the fit is done with. */
    float *cr = s->lo, *cg = s->hi, *cbl = cy;
#pragma omp simd
    for (int j = 0; j < m; j++)
        lab_fy_to_linear_rgb(cfy[j], ca[j], cb[j], &cr[j], &cg[j], &cbl[j]);
#pragma omp simd
    for (int j = 0; j < m; j++) {
        r[at[j]] = cr[j];
        g[at[j]] = cg[j];
        bl[at[j]] = cbl[j];
    }
    const size_t base = (size_t)y * (size_t)W * (size_t)C;
    if (out->depth == 8 && C == 3) {
        uint8_t *p = (uint8_t *)out->data + base;
#pragma omp simd
        for (int x = 0; x < W; x++) {
            p[3 * x] = srgb8_sample(t8, r[x]);
            p[3 * x + 1] = srgb8_sample(t8, g[x]);
            p[3 * x + 2] = srgb8_sample(t8, bl[x]);
        }
    } else if (out->depth == 8) {
        uint8_t *p = (uint8_t *)out->data + base;
        for (int x = 0; x < W; x++, p += C) {
            p[0] = srgb8_sample(t8, r[x]);
            p[1] = srgb8_sample(t8, g[x]);
            p[2] = srgb8_sample(t8, bl[x]);
        }
    } else {
        uint16_t *p = (uint16_t *)out->data + base;
        for (int x = 0; x < W; x++, p += C) {
            p[0] = (uint16_t)srgb_sample(r[x], 65535.0f);
            p[1] = (uint16_t)srgb_sample(g[x], 65535.0f);
            p[2] = (uint16_t)srgb_sample(bl[x], 65535.0f);
        }
    }
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

    const int threads = omp_get_max_threads();
    /* Per thread: SCRATCH_ROWS rows of floats, a row of ints and of bools. */
    const size_t row_bytes = SCRATCH_ROWS * sizeof(float) + sizeof(int) +
                             sizeof(bool) + CACHE_LINE;
    if ((size_t)W > SIZE_MAX / row_bytes / (size_t)threads)
        return cz_fail(CZ_ERR_TOO_LARGE, "cz_recombine: %d pixels a row are "
                       "too many", W);
    size_t per_thread = (size_t)W * (SCRATCH_ROWS * sizeof(float) +
                                     sizeof(int) + sizeof(bool));
    /* Whole cache lines: every thread's floats aligned, none shared. */
    per_thread = (per_thread + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    cz_status status = CZ_OK;
    cz_tap *tx = malloc((size_t)W * sizeof *tx);
    cz_tap *ty = malloc((size_t)H * sizeof *ty);
    row_scratch *scratch = malloc((size_t)threads * sizeof *scratch);
    unsigned char *mem = aligned_alloc(CACHE_LINE, (size_t)threads * per_thread);
    if (!tx || !ty || !scratch || !mem) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_recombine: out of memory");
        goto cleanup;
    }
    for (int k = 0; k < threads; k++) {
        unsigned char *p = mem + (size_t)k * per_thread;
        scratch_assign(&scratch[k], (float *)p, W);
        p += (size_t)W * SCRATCH_ROWS * sizeof(float);
        scratch[k].at = (int *)p;
        scratch[k].inside = (bool *)(p + (size_t)W * sizeof(int));
    }
    /* The taps of cz_resize_bilinear_f32, so rows equal whole planes. */
    cz_linear_taps(N, W, (float)N / (float)W, tx);
    cz_linear_taps(N, H, (float)N / (float)H, ty);
    cz_srgb8_table t8;
    if (out->depth == 8)
        cz_srgb8_table_init(&t8);

#pragma omp parallel for schedule(dynamic, ROWS_PER_TASK) num_threads(threads)
    for (int y = 0; y < H; y++)
        recombine_row(&scratch[omp_get_thread_num()],
                      L + (size_t)y * (size_t)W, ty[y], a_small, b_small, N,
                      tx, &t8, out, y);

cleanup:
    free(tx);
    free(ty);
    free(scratch);
    free(mem);
    return status;
}
