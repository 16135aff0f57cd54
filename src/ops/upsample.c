/* Upsampling by an integer factor: F.interpolate(x, scale_factor=scale,
 * mode="nearest" or "bilinear", align_corners=False).
 *
 * Nearest: output pixel d reads input pixel floor(d / scale).
 * Bilinear: output pixel d sits at source coordinate
 *     src = max((d + 0.5) / scale - 0.5, 0)
 * between i0 = floor(src) and i1 = min(i0 + 1, in - 1), with weights
 * (1 - l, l), l = src - i0; rows and columns interpolate separably.
 *
 * The per-row and per-column indices and weights depend only on the shapes,
 * so plan computes them once. Bilinear backward scatters each output gradient
 * into four input cells; overlapping scatters from neighbouring rows would
 * race, so each N*C plane is scattered serially and planes run in parallel,
 * which also fixes the order of the sums whatever the thread count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "ops/ops.h"

typedef struct {
    int64_t i0, i1; /* the two source cells */
    float l0, l1;   /* their weights */
} lerp;

typedef struct {
    int scale;
    cz_upsample_mode mode;
    lerp *rows, *cols; /* bilinear: one per output row / column, from plan */
} upsample_state;

static void upsample_destroy(void *p)
{
    upsample_state *s = p;
    if (!s)
        return;
    free(s->rows);
    free(s->cols);
    free(s);
}

static void make_lerps(lerp *t, int64_t out, int64_t in, int scale)
{
    for (int64_t d = 0; d < out; d++) {
        double src = ((double)d + 0.5) / scale - 0.5;
        if (src < 0.0)
            src = 0.0;
        int64_t i0 = (int64_t)src;
        double l = src - (double)i0;
        t[d].i0 = i0;
        t[d].i1 = i0 + 1 < in ? i0 + 1 : in - 1;
        t[d].l0 = (float)(1.0 - l);
        t[d].l1 = (float)l;
    }
}

static cz_status upsample_plan(cz_graph *g, cz_node *node)
{
    upsample_state *s = node->state;
    if (s->mode != CZ_UPSAMPLE_BILINEAR)
        return CZ_OK;
    const cz_tensor *x = node->in[0], *y = node->out;
    s->rows = malloc((size_t)y->h * sizeof *s->rows);
    s->cols = malloc((size_t)y->w * sizeof *s->cols);
    if (!s->rows || !s->cols) {
        cz_graph_error(g, CZ_ERR_NOMEM, "upsample: out of memory");
        return cz_fail(CZ_ERR_NOMEM, "upsample: out of memory");
    }
    make_lerps(s->rows, y->h, x->h, s->scale);
    make_lerps(s->cols, y->w, x->w, s->scale);
    return CZ_OK;
}

/* Nearest, channels last: each output pixel is a copy of its source
 * pixel's channels. */
static void nearest_forward_channels_last(const cz_tensor *xt, const cz_tensor *yt, int64_t scale)
{
    size_t pixel = (size_t)xt->c * cz_value_size(yt);
    int64_t W = xt->w, OH = yt->h, OW = yt->w;
    const char *x = (const char *)xt->data;
    char *y = (char *)yt->data;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < yt->n; b++)
        for (int64_t oy = 0; oy < OH; oy++) {
            const char *xr = x + (size_t)((b * xt->h + oy / scale) * W) * pixel;
            char *yr = y + (size_t)((b * OH + oy) * OW) * pixel;
            for (int64_t ox = 0; ox < OW; ox++)
                memcpy(yr + (size_t)ox * pixel, xr + (size_t)(ox / scale) * pixel, pixel);
        }
}

static void upsample_forward(cz_graph *g, cz_node *node)
{
    const upsample_state *s = node->state;
    const cz_tensor *xt = node->in[0], *yt = node->out;
    int64_t planes = xt->n * xt->c, H = xt->h, W = xt->w, OH = yt->h, OW = yt->w;
    int64_t scale = s->scale;
    const float *x = xt->data;
    float *y = yt->data;
    if (yt->layout != CZ_LAYOUT_NCHW_F32) {
        nearest_forward_channels_last(xt, yt, scale); /* only nearest is given one */
        return;
    }
    if (s->mode == CZ_UPSAMPLE_NEAREST) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int64_t p = 0; p < planes; p++)
            for (int64_t oy = 0; oy < OH; oy++) {
                const float *xr = x + (p * H + oy / scale) * W;
                float *yr = y + (p * OH + oy) * OW;
                for (int64_t ix = 0; ix < W; ix++)
                    for (int64_t b = 0; b < scale; b++)
                        yr[ix * scale + b] = xr[ix];
            }
        return;
    }
    const lerp *rows = s->rows, *cols = s->cols;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t p = 0; p < planes; p++)
        for (int64_t oy = 0; oy < OH; oy++) {
            lerp r = rows[oy];
            const float *x0 = x + (p * H + r.i0) * W, *x1 = x + (p * H + r.i1) * W;
            float *yr = y + (p * OH + oy) * OW;
            for (int64_t ox = 0; ox < OW; ox++) {
                lerp c = cols[ox];
                yr[ox] = r.l0 * (c.l0 * x0[c.i0] + c.l1 * x0[c.i1]) +
                         r.l1 * (c.l0 * x1[c.i0] + c.l1 * x1[c.i1]);
            }
        }
}

/* Nearest, channels last (fp32, training): each input pixel gathers its
 * scale x scale block of output gradients, channel by channel. */
static void nearest_backward_channels_last(cz_tensor *xt, const cz_tensor *yt, int64_t scale)
{
    int64_t C = xt->c, H = xt->h, W = xt->w, OH = yt->h, OW = yt->w;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < xt->n; b++)
        for (int64_t iy = 0; iy < H; iy++)
            for (int64_t ix = 0; ix < W; ix++) {
                float *dx = xt->grad + ((b * H + iy) * W + ix) * C;
                for (int64_t a = 0; a < scale; a++)
                    for (int64_t e = 0; e < scale; e++) {
                        const float *dy = yt->grad + ((b * OH + iy * scale + a) * OW + ix * scale + e) * C;
#pragma omp simd
                        for (int64_t c = 0; c < C; c++)
                            dx[c] += dy[c];
                    }
            }
}

static void upsample_backward(cz_graph *g, cz_node *node)
{
    const upsample_state *s = node->state;
    cz_tensor *xt = node->in[0];
    const cz_tensor *yt = node->out;
    if (!xt->needs_grad)
        return;
    int64_t planes = xt->n * xt->c, H = xt->h, W = xt->w, OH = yt->h, OW = yt->w;
    int64_t scale = s->scale;
    float *dx = xt->grad;
    const float *dy = yt->grad;
    if (yt->layout != CZ_LAYOUT_NCHW_F32) {
        nearest_backward_channels_last(xt, yt, scale); /* only nearest is given one */
        return;
    }
    if (s->mode == CZ_UPSAMPLE_NEAREST) {
        /* Each input cell gathers its own scale x scale block: no overlap. */
#pragma omp parallel for collapse(2) schedule(static)
        for (int64_t p = 0; p < planes; p++)
            for (int64_t iy = 0; iy < H; iy++) {
                float *dxr = dx + (p * H + iy) * W;
                for (int64_t ix = 0; ix < W; ix++) {
                    float sum = 0.0f;
                    for (int64_t a = 0; a < scale; a++) {
                        const float *dyr = dy + (p * OH + iy * scale + a) * OW + ix * scale;
                        for (int64_t b = 0; b < scale; b++)
                            sum += dyr[b];
                    }
                    dxr[ix] += sum;
                }
            }
        return;
    }
    const lerp *rows = s->rows, *cols = s->cols;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float *dxp = dx + p * H * W;
        for (int64_t oy = 0; oy < OH; oy++) {
            lerp r = rows[oy];
            float *dx0 = dxp + r.i0 * W, *dx1 = dxp + r.i1 * W;
            const float *dyr = dy + (p * OH + oy) * OW;
            for (int64_t ox = 0; ox < OW; ox++) {
                lerp c = cols[ox];
                float d0 = r.l0 * dyr[ox], d1 = r.l1 * dyr[ox];
                dx0[c.i0] += c.l0 * d0;
                dx0[c.i1] += c.l1 * d0;
                dx1[c.i0] += c.l0 * d1;
                dx1[c.i1] += c.l1 * d1;
            }
        }
    }
}

static const cz_op upsample_op = {"upsample", upsample_plan, upsample_forward,
                                  upsample_backward, upsample_destroy, CZ_OP_PLAIN, false,
                                  cz_backward_reads_nothing};
static const cz_op nearest_op = {"upsample", upsample_plan, upsample_forward, upsample_backward,
                                 upsample_destroy, CZ_OP_ONE_LAYOUT, false,
                                 cz_backward_reads_nothing};

cz_tensor *cz_upsample(cz_graph *g, cz_tensor *x, int scale, cz_upsample_mode mode)
{
    if (!x || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "upsample: missing input");
    if (mode != CZ_UPSAMPLE_NEAREST && mode != CZ_UPSAMPLE_BILINEAR)
        return cz_graph_error(g, CZ_ERR_INVALID, "upsample: unknown mode %d", (int)mode);
    if (scale < 1)
        return cz_graph_error(g, CZ_ERR_INVALID, "upsample: scale %d is not a positive integer",
                              scale);
    if (x->h > INT64_MAX / scale || x->w > INT64_MAX / scale)
        return cz_graph_error(g, CZ_ERR_TOO_LARGE, "upsample: %lldx%lld times %d overflows",
                              (long long)x->h, (long long)x->w, scale);
    upsample_state *s = calloc(1, sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "upsample: out of memory");
    s->scale = scale;
    s->mode = mode;
    const cz_op *op = mode == CZ_UPSAMPLE_NEAREST ? &nearest_op : &upsample_op;
    return cz_graph_node(g, op, &x, 1, x->n, x->c, x->h * scale, x->w * scale, s);
}
