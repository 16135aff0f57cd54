#include "pipeline/finish.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* Regularisation of the guided filter for L* scaled to [0, 1]: a local
 * spread of lightness above ~0.3% counts as an edge. */
#define GUIDED_EPS 1e-5f

static cz_status read_number(const cz_model *m, const char *path, const char *key, double lo,
                             double hi, double *out)
{
    const char *s = cz_model_metadata(m, key);
    if (!s)
        return CZ_OK;
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi))
        return cz_fail(CZ_ERR_FORMAT, "%s: metadata %s='%s': not a number from %g to %g", path, key, s,
                       lo, hi);
    *out = v;
    return CZ_OK;
}

/* Reads "S1,S2,..." (each from 0.25 to 4) into f's scales; 1 if absent. */
static cz_status read_scales(const cz_model *m, const char *path, cz_finish *f)
{
    const char *s = cz_model_metadata(m, "finish.scales");
    f->n_scales = 1;
    f->scales[0] = 1.0f;
    if (!s)
        return CZ_OK;
    int n = 0;
    for (const char *p = s;; p++) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v >= 0.25 && v <= 4) || n == CZ_FINISH_MAX_SCALES || (*end && *end != ','))
            return cz_fail(CZ_ERR_FORMAT,
                           "%s: metadata finish.scales='%s': not a list of at most %d numbers "
                           "from 0.25 to 4, separated by commas", path, s, CZ_FINISH_MAX_SCALES);
        f->scales[n++] = (float)v;
        if (!*end)
            break;
        p = end;
    }
    f->n_scales = n;
    return CZ_OK;
}

int cz_finish_side(float scale, int N)
{
    long side = CZ_SIZE_MULTIPLE * lroundf(scale * (float)N / CZ_SIZE_MULTIPLE);
    return side < CZ_SIZE_MULTIPLE ? CZ_SIZE_MULTIPLE : (int)side;
}

cz_status cz_finish_read(const cz_model *m, const char *path, cz_finish *f)
{
    double mirror = 0, agreement = 0, radius = 0, gain = 1;
    cz_status st = read_scales(m, path, f);
    if (st == CZ_OK)
        st = read_number(m, path, "finish.mirror", 0, 1, &mirror);
    if (st == CZ_OK)
        st = read_number(m, path, "finish.agreement", 0, 4, &agreement);
    if (st == CZ_OK)
        st = read_number(m, path, "finish.guided_radius", 0, CZ_FINISH_MAX_RADIUS, &radius);
    if (st == CZ_OK)
        st = read_number(m, path, "finish.chroma_gain", 0.25, 4, &gain);
    if (st == CZ_OK && (mirror != (int)mirror || radius != (int)radius))
        st = cz_fail(CZ_ERR_FORMAT, "%s: metadata finish.mirror and finish.guided_radius are whole numbers",
                     path);
    f->mirror = mirror == 1;
    f->agreement = (float)agreement;
    f->guided_radius = (int)radius;
    f->chroma_gain = (float)gain;
    return st;
}

void cz_finish_agreement(float *ab, const float *chroma, size_t n, float k)
{
    float *a = ab, *b = ab + n;
    for (size_t i = 0; i < n; i++)
        if (chroma[i] > 0) {
            /* |mean| <= mean |each|, but for rounding */
            float s = powf(fminf(hypotf(a[i], b[i]) / chroma[i], 1.0f), k);
            a[i] *= s;
            b[i] *= s;
        }
}

/* Mirrors indices past either end back inside (d c b a | a b c d | d c b a). */
static int reflect(int i, int n)
{
    while (i < 0 || i >= n)
        i = i < 0 ? -i - 1 : 2 * n - i - 1;
    return i;
}

/* dst = mean of src over the (2r+1)^2 window around each pixel, edges
 * reflected; tmp holds N*N floats. */
static void box(const float *src, float *dst, float *tmp, int N, int r)
{
    const float scale = 1.0f / (float)((2 * r + 1) * (2 * r + 1));
#pragma omp parallel for schedule(static)
    for (int y = 0; y < N; y++) {
        const float *row = src + (size_t)y * N;
        float sum = 0;
        for (int k = -r; k <= r; k++)
            sum += row[reflect(k, N)];
        for (int x = 0; x < N; x++) {
            tmp[(size_t)y * N + x] = sum;
            sum += row[reflect(x + r + 1, N)] - row[reflect(x - r, N)];
        }
    }
#pragma omp parallel for schedule(static)
    for (int x = 0; x < N; x++) {
        float sum = 0;
        for (int k = -r; k <= r; k++)
            sum += tmp[(size_t)reflect(k, N) * N + x];
        for (int y = 0; y < N; y++) {
            dst[(size_t)y * N + x] = sum * scale;
            sum += tmp[(size_t)reflect(y + r + 1, N) * N + x] - tmp[(size_t)reflect(y - r, N) * N + x];
        }
    }
}

cz_status cz_finish_guided(const float *guide, float *ab, int N, int r)
{
    const size_t n = (size_t)N * N;
    /* mean I, var I, then per channel: p*I, mean p, a, b; and scratch. */
    float *buf = calloc(7 * n, sizeof *buf);
    if (!buf)
        return cz_fail(CZ_ERR_NOMEM, "out of memory for a %dx%d guided filter", N, N);
    const float *I = guide;
    float *mean_I = buf, *var_I = mean_I + n, *t = var_I + n;
    float *mean_p = t + n, *a = mean_p + n, *b = a + n, *tmp = b + n;
    for (size_t i = 0; i < n; i++)
        t[i] = I[i] * I[i];
    box(I, mean_I, tmp, N, r);
    box(t, var_I, tmp, N, r);
    for (size_t i = 0; i < n; i++)
        var_I[i] -= mean_I[i] * mean_I[i];
    for (int c = 0; c < 2; c++) {
        float *p = ab + c * n;
        for (size_t i = 0; i < n; i++)
            t[i] = p[i] * I[i];
        box(p, mean_p, tmp, N, r);
        box(t, a, tmp, N, r);
        for (size_t i = 0; i < n; i++) {
            a[i] = (a[i] - mean_I[i] * mean_p[i]) / (var_I[i] + GUIDED_EPS);
            b[i] = mean_p[i] - a[i] * mean_I[i];
        }
        box(a, t, tmp, N, r);
        box(b, mean_p, tmp, N, r);
        for (size_t i = 0; i < n; i++)
            p[i] = t[i] * I[i] + mean_p[i];
    }
    free(buf);
    return CZ_OK;
}
