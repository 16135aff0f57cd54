/* Loss curves: one panel per series, stacked, sharing the x axis.
 *
 * A panel is drawn in this order: white data area, gridlines at the ticks,
 * frame and tick labels, the curve, then the header above the area. The curve
 * is drawn only inside the data area (every pixel is clipped to it), so the
 * rest of the picture never takes a series colour.
 *
 * Lines are antialiased: each segment is a capsule whose pixels are blended
 * towards the line colour by how much of the pixel the capsule covers. A
 * long run of steps has many points per pixel column; those are reduced to
 * the first, lowest, highest and last point of each column (the "M4"
 * reduction), which draws the same pixels as all of them at a fraction of the
 * cost. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "report/report.h"

/* Layout in pixels. */
#define TITLE_H 40       /* title bar at the top */
#define PANEL_H 260      /* each panel, header and tick labels included */
#define XLABEL_H 36      /* x axis label at the bottom */
#define MARGIN_LEFT 120  /* room for y tick labels of up to 9 characters */
#define MARGIN_RIGHT 24
#define MARGIN_TOP 40    /* the panel header */
#define MARGIN_BOTTOM 30 /* x tick labels */
#define TEXT_SCALE 2     /* every text is the 5x7 font doubled */
#define TICK_LEN 4       /* tick marks outside the frame */
#define LABEL_GAP 6      /* between a tick mark and its label */

/* About this many ticks per axis; the nice step (1, 2 or 5 x 10^k) decides
 * the exact count. */
#define X_TICKS_TARGET 8
#define Y_TICKS_TARGET 5
#define MAX_TICKS 20

/* Empty space added around the data's range, as a fraction of it, so that
 * the extreme points are not drawn on the frame. */
#define X_PAD_FRACTION 0.01
#define Y_PAD_FRACTION 0.05
/* A constant series is centred in a range of +-10% of its value (or +-1). */
#define CONSTANT_PAD_FRACTION 0.1

/* Noisy series: at least SMOOTH_MIN_POINTS finite points get a centred moving
 * average over SMOOTH_FRACTION of them (at least SMOOTH_MIN_WINDOW), drawn
 * over the raw curve, which is lightened to RAW_TINT of its colour. Values
 * above SMOOTH_MAX_ABS would overflow the running sum and are not smoothed. */
#define SMOOTH_MIN_POINTS 64
#define SMOOTH_FRACTION 0.02
#define SMOOTH_MIN_WINDOW 5
#define SMOOTH_MAX_ABS 1e100
#define RAW_TINT 0.3f

/* Used only if the caller asks for a .jpg: high, as lines ring badly. */
#define JPEG_QUALITY 95

/* Line half-widths in pixels, and marker radii. Sparse series (validation
 * losses, a point an epoch) get a marker at each point. */
#define LINE_RADIUS 1.0f
#define SMOOTH_RADIUS 1.25f
#define RAW_RADIUS 0.75f
#define MARKER_RADIUS 2.5f
#define MARKER_MAX_POINTS 40
#define LONE_POINT_RADIUS 3.0f

static const uint8_t BACKGROUND[3] = {244, 244, 246};
static const uint8_t AREA[3] = {255, 255, 255};
static const uint8_t GRID[3] = {222, 222, 226};
static const uint8_t FRAME[3] = {110, 110, 120};
static const uint8_t TEXT[3] = {30, 30, 36};
static const uint8_t NOTE[3] = {150, 150, 158};

/* Ten distinct colours, readable on white; none is a gray that the frame,
 * grid or text use. */
static const uint8_t PALETTE[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
    {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {188, 189, 34},
    {23, 190, 207}, {70, 70, 200},
};

void cz_plot_color(int series, uint8_t rgb[3])
{
    int i = series < 0 ? 0 : series % 10;
    memcpy(rgb, PALETTE[i], 3);
}

cz_rect cz_plot_area(int panel)
{
    cz_rect r = {MARGIN_LEFT, TITLE_H + panel * PANEL_H + MARGIN_TOP,
                 CZ_PLOT_WIDTH - MARGIN_LEFT - MARGIN_RIGHT,
                 PANEL_H - MARGIN_TOP - MARGIN_BOTTOM};
    return r;
}

/* ---- Pixels ------------------------------------------------------------ */

static uint8_t *pixel(cz_image *img, int x, int y)
{
    return (uint8_t *)img->data + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
}

/* Fills r, clipped to the image. */
static void fill(cz_image *img, cz_rect r, const uint8_t rgb[3])
{
    int x0 = r.x < 0 ? 0 : r.x, y0 = r.y < 0 ? 0 : r.y;
    int x1 = r.x + r.w > img->width ? img->width : r.x + r.w;
    int y1 = r.y + r.h > img->height ? img->height : r.y + r.h;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            memcpy(pixel(img, x, y), rgb, 3);
}

/* Moves the pixel towards rgb by a fraction alpha in [0, 1]; alpha 1 gives
 * exactly rgb. */
static void blend(cz_image *img, int x, int y, const uint8_t rgb[3], float alpha)
{
    uint8_t *p = pixel(img, x, y);
    for (int c = 0; c < 3; c++)
        p[c] = (uint8_t)(p[c] + alpha * (float)(rgb[c] - p[c]) + 0.5f);
}

/* An antialiased segment of half-width r from (x0, y0) to (x1, y1), in pixel
 * coordinates (pixel (i, j) covers [i, i+1) x [j, j+1)), touching only
 * pixels inside clip. Equal ends draw a disc. */
static void segment(cz_image *img, cz_rect clip, float x0, float y0, float x1,
                    float y1, float r, const uint8_t rgb[3])
{
    int bx0 = (int)floorf(fminf(x0, x1) - r - 1), bx1 = (int)ceilf(fmaxf(x0, x1) + r + 1);
    int by0 = (int)floorf(fminf(y0, y1) - r - 1), by1 = (int)ceilf(fmaxf(y0, y1) + r + 1);
    if (bx0 < clip.x) bx0 = clip.x;
    if (by0 < clip.y) by0 = clip.y;
    if (bx1 > clip.x + clip.w) bx1 = clip.x + clip.w;
    if (by1 > clip.y + clip.h) by1 = clip.y + clip.h;
    float dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = by0; y < by1; y++) {
        for (int x = bx0; x < bx1; x++) {
            float px = (float)x + 0.5f - x0, py = (float)y + 0.5f - y0;
            float t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            float ex = px - t * dx, ey = py - t * dy;
            /* Coverage falls from 1 to 0 across the pixel at the edge. */
            float cover = r + 0.5f - sqrtf(ex * ex + ey * ey);
            if (cover > 0)
                blend(img, x, y, rgb, cover > 1 ? 1 : cover);
        }
    }
}

/* ---- Axes -------------------------------------------------------------- */

/* The values at the two ends of an axis, lo < hi. Arithmetic on them is done
 * on halves, so that even -DBL_MAX .. DBL_MAX never overflows. */
typedef struct {
    double lo, hi;
} axis;

static axis axis_fit(double min, double max, double pad_fraction)
{
    axis a;
    double half = max * 0.5 - min * 0.5;
    if (!(half > DBL_MIN)) {
        double mid = min * 0.5 + max * 0.5;
        double pad = fabs(mid) * CONSTANT_PAD_FRACTION;
        if (!(pad > DBL_MIN))
            pad = 1;
        a.lo = mid - pad;
        a.hi = mid + pad;
    } else {
        a.lo = min - half * (2 * pad_fraction);
        a.hi = max + half * (2 * pad_fraction);
    }
    a.lo = fmax(a.lo, -DBL_MAX);
    a.hi = fmin(a.hi, DBL_MAX);
    return a;
}

/* Where v lies on the axis: 0 at lo, 1 at hi. */
static double axis_frac(axis a, double v)
{
    return (v * 0.5 - a.lo * 0.5) / (a.hi * 0.5 - a.lo * 0.5);
}

typedef struct {
    int n;
    double step;
    double v[MAX_TICKS];
} ticks;

/* Ticks at multiples of a nice step (1, 2 or 5 x 10^k) inside the axis. */
static ticks axis_ticks(axis a, int target)
{
    ticks t = {0};
    double raw = (a.hi * 0.5 - a.lo * 0.5) / (target * 0.5);
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    if (!isfinite(step) || !(step > 0))
        step = raw;
    t.step = step;
    double k = ceil(a.lo / step);
    for (int i = 0; i < MAX_TICKS && t.n < MAX_TICKS; i++) {
        double v = (k + i) * step;
        if (!(v <= a.hi))
            break;
        if (fabs(v) < step * 1e-9) /* rounding residue of a zero tick */
            v = 0;
        /* Near the limits of double precision, steps can repeat a value. */
        if (v >= a.lo && (t.n == 0 || v > t.v[t.n - 1]))
            t.v[t.n++] = v;
    }
    return t;
}

/* Rewrites "1.5e+07" as "1.5e7" and "2.0e-05" as "2.0e-5". */
static void compact_exponent(char *s)
{
    char *e = strchr(s, 'e');
    if (!e)
        return;
    char *src = e + 1, *dst = e + 1;
    if (*src == '+')
        src++;
    else if (*src == '-')
        *dst++ = *src++;
    while (*src == '0' && src[1])
        src++;
    memmove(dst, src, strlen(src) + 1);
}

/* The label of tick v: fixed point with as many decimals as the step needs
 * for moderate values, else scientific with as many digits as tell the
 * ticks apart. */
static void format_tick(const ticks *t, double v, char *buf, size_t size)
{
    double max_abs = 0;
    for (int i = 0; i < t->n; i++)
        max_abs = fmax(max_abs, fabs(t->v[i]));
    int step_exp = (int)floor(log10(t->step) + 1e-9);
    if (max_abs < 1e7 && t->step >= 1e-4) {
        int decimals = step_exp < 0 ? -step_exp : 0;
        snprintf(buf, size, "%.*f", decimals, v);
    } else if (v == 0) {
        snprintf(buf, size, "0");
    } else {
        int digits = (int)floor(log10(max_abs)) - step_exp + 1;
        digits = digits < 1 ? 1 : digits > 6 ? 6 : digits;
        snprintf(buf, size, "%.*e", digits - 1, v);
        compact_exponent(buf);
    }
}

/* ---- Series ------------------------------------------------------------ */

static double series_x(const cz_plot_series *s, int i)
{
    return s->x ? s->x[i] : (double)i;
}

/* A point in pixel coordinates. */
typedef struct {
    float x, y;
} point;

/* The series' points with finite x and y, in order. */
typedef struct {
    int n, skipped;
    double *x, *y;
} finite_points;

static cz_status collect(const cz_plot_series *s, finite_points *f)
{
    memset(f, 0, sizeof *f);
    if (s->n == 0)
        return CZ_OK;
    f->x = malloc((size_t)s->n * sizeof *f->x);
    f->y = malloc((size_t)s->n * sizeof *f->y);
    if (!f->x || !f->y)
        return cz_fail(CZ_ERR_NOMEM, "cz_plot_render: out of memory for %d points", s->n);
    for (int i = 0; i < s->n; i++) {
        double x = series_x(s, i), y = s->y[i];
        if (isfinite(x) && isfinite(y)) {
            f->x[f->n] = x;
            f->y[f->n] = y;
            f->n++;
        }
    }
    f->skipped = s->n - f->n;
    return CZ_OK;
}

static void finite_points_free(finite_points *f)
{
    free(f->x);
    free(f->y);
}

/* The moving-average window for n points, odd; 0 when the series is too
 * short or too large to smooth. */
static int smooth_window(const finite_points *f)
{
    if (f->n < SMOOTH_MIN_POINTS)
        return 0;
    for (int i = 0; i < f->n; i++)
        if (fabs(f->y[i]) > SMOOTH_MAX_ABS)
            return 0;
    int half = (int)(f->n * SMOOTH_FRACTION / 2);
    int w = 2 * half + 1;
    return w < SMOOTH_MIN_WINDOW ? SMOOTH_MIN_WINDOW : w;
}

/* out[i] = mean of y over the window centred on i, cut short at the ends. */
static void moving_average(const double *y, int n, int window, double *out)
{
    int half = window / 2, lo = 0, hi = -1;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        int want_lo = i - half < 0 ? 0 : i - half;
        int want_hi = i + half >= n ? n - 1 : i + half;
        while (hi < want_hi)
            sum += y[++hi];
        while (lo < want_lo)
            sum -= y[lo++];
        out[i] = sum / (hi - lo + 1);
    }
}

/* Keeps the first, lowest, highest and last of each run of points in the
 * same pixel column, in their order; returns the count kept. Works in place:
 * the k-th kept point never lies before index k. */
static int reduce_m4(point *p, int n)
{
    int m = 0;
    for (int s = 0; s < n;) {
        float col = floorf(p[s].x);
        int e = s + 1, lo = s, hi = s;
        for (; e < n && floorf(p[e].x) == col; e++) {
            if (p[e].y < p[lo].y) lo = e;
            if (p[e].y > p[hi].y) hi = e;
        }
        int keep[4] = {s, lo < hi ? lo : hi, lo < hi ? hi : lo, e - 1};
        point kept[4];
        int k_n = 0;
        for (int k = 0; k < 4; k++)
            if (k == 0 || keep[k] != keep[k - 1])
                kept[k_n++] = p[keep[k]];
        for (int k = 0; k < k_n; k++)
            p[m++] = kept[k];
        s = e;
    }
    return m;
}

/* Draws (x[i], y[i]) as a reduced, antialiased polyline. p is scratch for n
 * points; on return its first m (the value returned) are the points drawn. */
static int polyline(cz_image *img, cz_rect area, axis ax, axis ay,
                     const double *x, const double *y, int n, point *p,
                     float radius, const uint8_t rgb[3])
{
    for (int i = 0; i < n; i++) {
        /* Data lie inside the axes; the clamp only keeps float conversion
         * defined should rounding push a point a hair outside. */
        double fx = fmin(fmax(axis_frac(ax, x[i]), -0.01), 1.01);
        double fy = fmin(fmax(axis_frac(ay, y[i]), -0.01), 1.01);
        p[i].x = (float)(area.x + fx * area.w);
        p[i].y = (float)(area.y + (1 - fy) * area.h);
    }
    int m = reduce_m4(p, n);
    if (m == 1)
        segment(img, area, p[0].x, p[0].y, p[0].x, p[0].y, LONE_POINT_RADIUS, rgb);
    for (int i = 1; i < m; i++)
        segment(img, area, p[i - 1].x, p[i - 1].y, p[i].x, p[i].y, radius, rgb);
    return m;
}

/* ---- Panels ------------------------------------------------------------ */

static void draw_text(cz_image *img, int x, int y, const char *text,
                      const uint8_t rgb[3])
{
    cz_font_draw(img, x, y, text, TEXT_SCALE, rgb);
}

/* The frame, gridlines, ticks and tick labels of one panel. */
static void draw_axes(cz_image *img, cz_rect area, axis ax, axis ay)
{
    const int text_h = CZ_FONT_HEIGHT * TEXT_SCALE;
    char label[64];
    fill(img, (cz_rect){area.x - 1, area.y - 1, area.w + 2, area.h + 2}, FRAME);
    fill(img, area, AREA);

    ticks ty = axis_ticks(ay, Y_TICKS_TARGET);
    for (int i = 0; i < ty.n; i++) {
        int y = area.y + (int)floor((1 - axis_frac(ay, ty.v[i])) * area.h);
        if (y < area.y || y >= area.y + area.h)
            continue;
        fill(img, (cz_rect){area.x, y, area.w, 1}, GRID);
        fill(img, (cz_rect){area.x - 1 - TICK_LEN, y, TICK_LEN, 1}, FRAME);
        format_tick(&ty, ty.v[i], label, sizeof label);
        int w = cz_font_width(label, TEXT_SCALE);
        draw_text(img, area.x - 1 - TICK_LEN - LABEL_GAP - w, y - text_h / 2, label, TEXT);
    }

    ticks tx = axis_ticks(ax, X_TICKS_TARGET);
    int free_from = 0; /* first column after the last x label drawn */
    for (int i = 0; i < tx.n; i++) {
        int x = area.x + (int)floor(axis_frac(ax, tx.v[i]) * area.w);
        if (x < area.x || x >= area.x + area.w)
            continue;
        fill(img, (cz_rect){x, area.y, 1, area.h}, GRID);
        fill(img, (cz_rect){x, area.y + area.h + 1, 1, TICK_LEN}, FRAME);
        format_tick(&tx, tx.v[i], label, sizeof label);
        int w = cz_font_width(label, TEXT_SCALE);
        int lx = x - w / 2;
        if (lx + w > img->width)
            lx = img->width - w;
        /* Long labels (a huge offset, tiny steps) would overprint. */
        if (lx < free_from)
            continue;
        draw_text(img, lx, area.y + area.h + 1 + TICK_LEN + LABEL_GAP / 2, label, TEXT);
        free_from = lx + w + LABEL_GAP;
    }
}

/* The line above the data area: name, last value, smoothing and skipped
 * points. */
static void draw_header(cz_image *img, cz_rect area, const cz_plot_series *s,
                        const finite_points *f, int window)
{
    char extra[96] = "";
    const char *name = s->name ? s->name : "";
    int len = 0;
    if (f->n > 0)
        len = snprintf(extra, sizeof extra, "   last %.4g", f->y[f->n - 1]);
    if (window > 0 && len >= 0 && (size_t)len < sizeof extra)
        len += snprintf(extra + len, sizeof extra - (size_t)len,
                        "   (smoothed: mean of %d)", window);
    if (f->skipped > 0 && len >= 0 && (size_t)len < sizeof extra)
        snprintf(extra + len, sizeof extra - (size_t)len,
                 "   %d non-finite skipped", f->skipped);
    int text_h = CZ_FONT_HEIGHT * TEXT_SCALE;
    int y = area.y - 1 - LABEL_GAP - text_h;
    draw_text(img, area.x, y, name, TEXT);
    draw_text(img, area.x + cz_font_width(name, TEXT_SCALE), y, extra, NOTE);
}

static cz_status draw_panel(cz_image *img, int panel, const cz_plot_series *s,
                            axis ax)
{
    cz_rect area = cz_plot_area(panel);
    uint8_t color[3], tint[3];
    cz_plot_color(panel, color);
    for (int c = 0; c < 3; c++)
        tint[c] = (uint8_t)(AREA[c] + RAW_TINT * (float)(color[c] - AREA[c]) + 0.5f);

    finite_points f;
    double *smooth = NULL;
    point *scratch = NULL;
    cz_status status = collect(s, &f);
    if (status != CZ_OK)
        goto done;

    double ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < f.n; i++) {
        ymin = fmin(ymin, f.y[i]);
        ymax = fmax(ymax, f.y[i]);
    }
    axis ay = f.n > 0 ? axis_fit(ymin, ymax, Y_PAD_FRACTION) : axis_fit(0, 1, Y_PAD_FRACTION);
    int window = smooth_window(&f);
    draw_axes(img, area, ax, ay);
    draw_header(img, area, s, &f, window);
    if (f.n == 0) {
        const char *msg = "no data";
        draw_text(img, area.x + (area.w - cz_font_width(msg, TEXT_SCALE)) / 2,
                  area.y + (area.h - CZ_FONT_HEIGHT * TEXT_SCALE) / 2, msg, NOTE);
        goto done;
    }

    scratch = malloc((size_t)f.n * sizeof *scratch);
    if (window > 0)
        smooth = malloc((size_t)f.n * sizeof *smooth);
    if (!scratch || (window > 0 && !smooth)) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_plot_render: out of memory for %d points", f.n);
        goto done;
    }
    if (window > 0) {
        moving_average(f.y, f.n, window, smooth);
        polyline(img, area, ax, ay, f.x, f.y, f.n, scratch, RAW_RADIUS, tint);
        polyline(img, area, ax, ay, f.x, smooth, f.n, scratch, SMOOTH_RADIUS, color);
    } else {
        int m = polyline(img, area, ax, ay, f.x, f.y, f.n, scratch, LINE_RADIUS, color);
        for (int i = 0; m > 1 && f.n <= MARKER_MAX_POINTS && i < m; i++)
            segment(img, area, scratch[i].x, scratch[i].y, scratch[i].x,
                    scratch[i].y, MARKER_RADIUS, color);
    }
done:
    finite_points_free(&f);
    free(smooth);
    free(scratch);
    return status;
}

/* ---- Entry points ------------------------------------------------------ */

/* The x axis shared by all panels: the range of every finite point. */
static axis shared_x_axis(const cz_plot_series *series, int n_series)
{
    double xmin = INFINITY, xmax = -INFINITY;
    for (int k = 0; k < n_series; k++) {
        const cz_plot_series *s = &series[k];
        for (int i = 0; i < s->n; i++) {
            double x = series_x(s, i);
            if (isfinite(x) && isfinite(s->y[i])) {
                xmin = fmin(xmin, x);
                xmax = fmax(xmax, x);
            }
        }
    }
    return xmin <= xmax ? axis_fit(xmin, xmax, X_PAD_FRACTION)
                        : axis_fit(0, 1, X_PAD_FRACTION);
}

cz_status cz_plot_render(const cz_plot_series *series, int n_series,
                         const char *title, const char *x_label,
                         cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_plot_render: out is NULL");
    *out = NULL;
    if (n_series < 0 || n_series > CZ_PLOT_MAX_SERIES)
        return cz_fail(CZ_ERR_INVALID, "cz_plot_render: %d series (0..%d allowed)",
                       n_series, CZ_PLOT_MAX_SERIES);
    if (n_series > 0 && !series)
        return cz_fail(CZ_ERR_INVALID, "cz_plot_render: series is NULL");
    for (int k = 0; k < n_series; k++) {
        if (series[k].n < 0 || (series[k].n > 0 && !series[k].y))
            return cz_fail(CZ_ERR_INVALID, "cz_plot_render: series %d (%s) has "
                           "%d points and %s y", k, series[k].name ? series[k].name : "unnamed",
                           series[k].n, series[k].y ? "a" : "no");
    }

    int panels = n_series > 0 ? n_series : 1;
    cz_image *img = cz_image_new(CZ_PLOT_WIDTH, TITLE_H + panels * PANEL_H + XLABEL_H, 3, 8);
    if (!img)
        return CZ_ERR_NOMEM;
    fill(img, (cz_rect){0, 0, img->width, img->height}, BACKGROUND);

    const int text_h = CZ_FONT_HEIGHT * TEXT_SCALE;
    if (title)
        draw_text(img, (img->width - cz_font_width(title, TEXT_SCALE)) / 2,
                  (TITLE_H - text_h) / 2, title, TEXT);
    if (x_label)
        draw_text(img, MARGIN_LEFT + (cz_plot_area(0).w - cz_font_width(x_label, TEXT_SCALE)) / 2,
                  img->height - XLABEL_H + (XLABEL_H - text_h) / 2, x_label, TEXT);

    axis ax = shared_x_axis(series, n_series);
    static const cz_plot_series empty = {NULL, NULL, NULL, 0};
    for (int k = 0; k < panels; k++) {
        cz_status s = draw_panel(img, k, n_series > 0 ? &series[k] : &empty, ax);
        if (s != CZ_OK) {
            cz_image_free(img);
            return s;
        }
    }
    *out = img;
    return CZ_OK;
}

cz_status cz_plot_write(const char *path, const cz_plot_series *series,
                        int n_series, const char *title, const char *x_label)
{
    if (!path)
        return cz_fail(CZ_ERR_INVALID, "cz_plot_write: path is NULL");
    cz_image *img = NULL;
    cz_status s = cz_plot_render(series, n_series, title, x_label, &img);
    if (s == CZ_OK)
        s = cz_image_save(path, img, JPEG_QUALITY);
    cz_image_free(img);
    return s;
}
