/* Training reports: the bitmap font, loss-curve plots (where the curves land,
 * what they do with NaN, constants and extreme ranges) and sample grids
 * (each cell against the Lab -> sRGB conversion), and that writing either
 * produces a decodable file or an error naming the path. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "check.h"
#include "image/image.h"
#include "image/lab.h"
#include "report/report.h"

static char tmpdir[] = "/tmp/cz_test_report_XXXXXX";

static const uint8_t *px(const cz_image *img, int x, int y)
{
    return (const uint8_t *)img->data + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
}

static int inside(cz_rect r, int x, int y)
{
    return x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
}

/* Where a colour occurs in a rectangle: count, bounding box, mean row in
 * the left and right quarters. */
typedef struct {
    long count;
    int x0, x1, y0, y1;
    double left_y, right_y;
} hits;

static hits find_color(const cz_image *img, cz_rect r, const uint8_t rgb[3])
{
    hits h = {0, INT32_MAX, -1, INT32_MAX, -1, 0, 0};
    long nl = 0, nr = 0;
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++) {
            if (memcmp(px(img, x, y), rgb, 3) != 0)
                continue;
            h.count++;
            if (x < h.x0) h.x0 = x;
            if (x > h.x1) h.x1 = x;
            if (y < h.y0) h.y0 = y;
            if (y > h.y1) h.y1 = y;
            if (x < r.x + r.w / 4) { h.left_y += y; nl++; }
            if (x >= r.x + 3 * r.w / 4) { h.right_y += y; nr++; }
        }
    h.left_y = nl ? h.left_y / nl : NAN;
    h.right_y = nr ? h.right_y / nr : NAN;
    return h;
}

/* Pixels of colour rgb outside every one of the n_panels data areas. */
static long color_outside_areas(const cz_image *img, int n_panels, const uint8_t rgb[3])
{
    long n = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            int in = 0;
            for (int p = 0; p < n_panels; p++)
                in |= inside(cz_plot_area(p), x, y);
            if (!in && memcmp(px(img, x, y), rgb, 3) == 0)
                n++;
        }
    return n;
}

static void test_font(void)
{
    for (int r = 0; r < CZ_FONT_ROWS; r++)
        CHECK(cz_font_row(' ', r) == 0, "space row %d has ink", r);
    for (int a = 33; a <= 126; a++) {
        unsigned ink = 0;
        for (int r = 0; r < CZ_FONT_ROWS; r++)
            ink |= cz_font_row((char)a, r);
        CHECK(ink != 0, "glyph '%c' is blank", a);
        for (int b = 33; b < a; b++) {
            int same = 1;
            for (int r = 0; r < CZ_FONT_ROWS; r++)
                same &= cz_font_row((char)a, r) == cz_font_row((char)b, r);
            CHECK(!same, "glyphs '%c' and '%c' are identical", a, b);
        }
    }
    for (int r = 0; r < CZ_FONT_ROWS; r++)
        CHECK(cz_font_row('\t', r) == cz_font_row('?', r), "tab should draw as '?'");
    CHECK(cz_font_width("abc", 2) == 3 * CZ_FONT_ADVANCE * 2, "width of \"abc\"");
}

/* A rising line of 10 points and a noisy 2000-step curve: each is drawn in
 * its own colour inside its own panel, nowhere else. */
static void test_plot_placement(void)
{
    enum { N0 = 10, N1 = 2000 };
    double x0[N0], y0[N0], x1[N1], y1[N1];
    for (int i = 0; i < N0; i++) {
        x0[i] = (N1 - 1.0) * i / (N0 - 1); /* the same x range as series 1 */
        y0[i] = 0.5 + i;
    }
    uint32_t state = 12345;
    for (int i = 0; i < N1; i++) {
        state = state * 1664525u + 1013904223u;
        x1[i] = i;
        y1[i] = 0.7 + 0.3 * sin(i / 200.0) + 0.2 * ((state >> 8) / 16777216.0 - 0.5);
    }
    cz_plot_series s[2] = {{"rising", x0, y0, N0}, {"G GAN loss", x1, y1, N1}};
    cz_image *img = NULL;
    cz_status st = cz_plot_render(s, 2, "test plot", "step", &img);
    CHECK(st == CZ_OK, "render: %s", cz_last_error());
    if (!img)
        return;
    CHECK(img->width == CZ_PLOT_WIDTH && img->channels == 3 && img->depth == 8,
          "image is %dx%d, %d channels", img->width, img->height, img->channels);
    CHECK(img->height > cz_plot_area(1).y + cz_plot_area(1).h, "height %d", img->height);

    uint8_t c[2][3];
    cz_plot_color(0, c[0]);
    cz_plot_color(1, c[1]);
    CHECK(memcmp(c[0], c[1], 3) != 0, "two series share a colour");
    for (int k = 0; k < 2; k++) {
        cz_rect area = cz_plot_area(k);
        hits own = find_color(img, area, c[k]);
        hits other = find_color(img, area, c[1 - k]);
        CHECK(own.count > area.w, "panel %d: only %ld pixels of its colour", k, own.count);
        CHECK(other.count == 0, "panel %d has %ld pixels of series %d's colour", k,
              other.count, 1 - k);
        /* The x axis spans the data with 1% to spare on each side. */
        CHECK(own.x0 < area.x + area.w / 20 && own.x1 > area.x + area.w * 19 / 20,
              "panel %d: curve spans columns %d..%d of %d..%d", k, own.x0, own.x1,
              area.x, area.x + area.w - 1);
        CHECK(color_outside_areas(img, 2, c[k]) == 0,
              "series %d's colour appears outside the data areas", k);
    }
    hits rising = find_color(img, cz_plot_area(0), c[0]);
    CHECK(rising.left_y > rising.right_y + cz_plot_area(0).h / 2.0,
          "rising series: mean row %.1f on the left, %.1f on the right",
          rising.left_y, rising.right_y);
    cz_image_free(img);
}

/* Renders one series and returns its hits in panel 0 (count -1 on failure). */
static hits render_one(const char *what, const double *x, const double *y, int n)
{
    cz_plot_series s = {what, x, y, n};
    cz_image *img = NULL;
    cz_status st = cz_plot_render(&s, 1, what, NULL, &img);
    CHECK(st == CZ_OK, "%s: %s", what, cz_last_error());
    hits h = {-1, 0, 0, 0, 0, 0, 0};
    if (!img)
        return h;
    uint8_t c[3];
    cz_plot_color(0, c);
    h = find_color(img, cz_plot_area(0), c);
    CHECK(color_outside_areas(img, 1, c) == 0, "%s: colour outside the data area", what);
    cz_image_free(img);
    return h;
}

static void test_plot_edge_cases(void)
{
    const double nan = NAN, inf = INFINITY;
    double x[100], y[100];
    for (int i = 0; i < 100; i++) {
        x[i] = i;
        y[i] = i % 7 == 3 ? nan : i % 11 == 5 ? -inf : (double)i;
    }
    x[50] = inf;
    x[51] = nan;
    hits h = render_one("NaN and Inf skipped", x, y, 100);
    CHECK(h.count > 100, "NaN series drew %ld pixels", h.count);
    CHECK(h.left_y > h.right_y, "NaN series no longer rises");

    double all_nan[3] = {nan, nan, inf};
    h = render_one("all NaN", NULL, all_nan, 3);
    CHECK(h.count == 0, "all-NaN series drew %ld pixels", h.count);

    h = render_one("empty", NULL, NULL, 0);
    CHECK(h.count == 0, "empty series drew %ld pixels", h.count);

    double one = 0.25;
    h = render_one("one point", NULL, &one, 1);
    CHECK(h.count > 0 && h.x1 - h.x0 <= 8 && h.y1 - h.y0 <= 8,
          "one point: %ld pixels in %dx%d", h.count, h.x1 - h.x0 + 1, h.y1 - h.y0 + 1);

    /* Constant: a horizontal line in the middle (smoothed: 100 points). */
    double flat[100];
    for (int i = 0; i < 100; i++)
        flat[i] = 0.693;
    h = render_one("constant", NULL, flat, 100);
    cz_rect area = cz_plot_area(0);
    CHECK(h.count > area.w && h.y1 - h.y0 <= 3, "constant: %ld pixels over rows %d..%d",
          h.count, h.y0, h.y1);
    CHECK(abs((h.y0 + h.y1) / 2 - (area.y + area.h / 2)) <= 2,
          "constant line at row %d, middle is %d", (h.y0 + h.y1) / 2, area.y + area.h / 2);

    double zero[2] = {0, 0};
    h = render_one("constant zero", NULL, zero, 2);
    CHECK(h.count > 0, "constant zero drew nothing");

    /* The widest ranges a double holds, on both axes. */
    double hx[4] = {-DBL_MAX, -1e300, 1e300, DBL_MAX};
    double hy[4] = {DBL_MAX, -DBL_MAX, 1e-300, DBL_MAX};
    h = render_one("extreme ranges", hx, hy, 4);
    CHECK(h.count > area.w, "extreme ranges drew %ld pixels", h.count);
    double tx[3] = {1e15, 1e15 + 1, 1e15 + 2}, ty[3] = {1e-12, 2e-12, 1.5e-12};
    h = render_one("tiny steps on a huge offset", tx, ty, 3);
    CHECK(h.count > area.w, "huge offset drew %ld pixels", h.count);

    /* A long run: far more points than pixel columns. */
    enum { LONG = 300000 };
    double *ly = malloc(LONG * sizeof *ly);
    if (ly) {
        for (int i = 0; i < LONG; i++)
            ly[i] = (i * 2654435761u >> 16 & 1023) / 1024.0 + 3.0 * i / LONG;
        h = render_one("300000 steps", NULL, ly, LONG);
        CHECK(h.count > area.w && h.left_y > h.right_y, "long run: %ld pixels", h.count);
        free(ly);
    }

    cz_image *img = NULL;
    CHECK(cz_plot_render(NULL, 0, NULL, NULL, &img) == CZ_OK && img,
          "no series: %s", cz_last_error());
    CHECK(img && img->height > cz_plot_area(0).y + cz_plot_area(0).h, "no series: one panel");
    cz_image_free(img);

    cz_plot_series bad = {"bad", NULL, y, -1};
    CHECK(cz_plot_render(&bad, 1, NULL, NULL, &img) == CZ_ERR_INVALID && !img,
          "negative n accepted");
    bad.n = 5;
    bad.y = NULL;
    CHECK(cz_plot_render(&bad, 1, NULL, NULL, &img) == CZ_ERR_INVALID,
          "NULL y accepted");
    cz_plot_series many[CZ_PLOT_MAX_SERIES + 1] = {{0}};
    CHECK(cz_plot_render(many, CZ_PLOT_MAX_SERIES + 1, NULL, NULL, &img) == CZ_ERR_INVALID,
          "%d series accepted", CZ_PLOT_MAX_SERIES + 1);
}

/* Deterministic planes in the network's ranges. */
static void fill_planes(float *L, float *ab_pred, float *ab_true, int n, int size)
{
    size_t plane = (size_t)size * (size_t)size;
    for (int r = 0; r < n; r++)
        for (size_t i = 0; i < plane; i++) {
            L[r * plane + i] = -1.0f + 2.0f * (float)((i * 37 + (size_t)r * 11) % 101) / 100.0f;
            for (int c = 0; c < 2; c++) {
                ab_pred[(r * 2 + c) * plane + i] = 0.6f * sinf((float)(i + c * 7 + r));
                ab_true[(r * 2 + c) * plane + i] = 0.5f * cosf((float)(i * 3 + c + r));
            }
        }
}

/* Cell (row, col) of img against L and ab (NULL: gray) converted here. */
static int cell_error(const cz_image *img, int size, const char *caption, int row,
                      int col, const float *L, const float *ab)
{
    size_t plane = (size_t)size * (size_t)size;
    cz_rect at = cz_grid_cell(size, caption, row, col);
    int worst = 0;
    for (size_t i = 0; i < plane; i++) {
        float lab[3] = {(L[row * plane + i] + 1) * 50,
                        ab ? ab[(row * 2) * plane + i] * 110 : 0,
                        ab ? ab[(row * 2 + 1) * plane + i] * 110 : 0}, rgb[3];
        cz_lab_to_srgb(lab, rgb, 1);
        const uint8_t *p = px(img, at.x + (int)(i % (size_t)size), at.y + (int)(i / (size_t)size));
        for (int c = 0; c < 3; c++) {
            int d = abs((int)p[c] - (int)lrintf(rgb[c] * 255));
            if (d > worst)
                worst = d;
        }
    }
    return worst;
}

static void test_grid(int n, int size, const char *caption)
{
    size_t plane = (size_t)size * (size_t)size;
    float *L = malloc((size_t)n * plane * sizeof *L);
    float *pred = malloc((size_t)n * 2 * plane * sizeof *pred);
    float *truth = malloc((size_t)n * 2 * plane * sizeof *truth);
    if (!L || !pred || !truth) {
        CHECK(0, "out of memory");
        goto done;
    }
    fill_planes(L, pred, truth, n, size);
    cz_image *img = NULL;
    cz_status st = cz_grid_render(n, size, L, pred, truth, caption, &img);
    CHECK(st == CZ_OK, "grid %d x %d: %s", n, size, cz_last_error());
    if (!img)
        goto done;
    cz_rect last = cz_grid_cell(size, caption, n - 1, 2);
    CHECK(img->width == last.x + size + CZ_GRID_GUTTER &&
          img->height == last.y + size + CZ_GRID_GUTTER,
          "grid is %dx%d, cells end at %d,%d", img->width, img->height,
          last.x + size, last.y + size);
    CHECK(cz_grid_cell(size, caption, 0, 1).x == CZ_GRID_GUTTER * 2 + size, "column 1 x");

    for (int r = 0; r < n; r++) {
        int e = cell_error(img, size, caption, r, 1, L, pred);
        CHECK(e <= 1, "row %d generated cell off by %d", r, e);
        e = cell_error(img, size, caption, r, 2, L, truth);
        CHECK(e <= 1, "row %d ground-truth cell off by %d", r, e);
        e = cell_error(img, size, caption, r, 0, L, NULL);
        CHECK(e <= 1, "row %d input cell off by %d", r, e);
        cz_rect in = cz_grid_cell(size, caption, r, 0);
        int gray_err = 0;
        for (int y = in.y; y < in.y + size; y++)
            for (int x = in.x; x < in.x + size; x++) {
                const uint8_t *p = px(img, x, y);
                int d = abs(p[0] - p[1]) > abs(p[1] - p[2]) ? abs(p[0] - p[1]) : abs(p[1] - p[2]);
                if (d > gray_err)
                    gray_err = d;
            }
        CHECK(gray_err <= 1, "row %d input not neutral: channels differ by %d", r, gray_err);
        /* Gutters left of and below each cell are white. */
        for (int c = 0; c < 3; c++) {
            cz_rect at = cz_grid_cell(size, caption, r, c);
            const uint8_t *g1 = px(img, at.x - 1, at.y + size / 2);
            const uint8_t *g2 = px(img, at.x + size / 2, at.y + size);
            CHECK(g1[0] == 255 && g1[1] == 255 && g1[2] == 255 && g2[0] == 255 &&
                  g2[1] == 255 && g2[2] == 255, "gutter next to cell %d,%d not white", r, c);
        }
    }
    /* The header holds the column titles: some ink above the first row. */
    long ink = 0;
    for (int y = 0; y < cz_grid_cell(size, caption, 0, 0).y; y++)
        for (int x = 0; x < img->width; x++)
            ink += px(img, x, y)[0] < 128;
    CHECK(ink > 0, "no title text in the header");
    cz_image_free(img);
done:
    free(L);
    free(pred);
    free(truth);
}

static void test_grid_edge_cases(void)
{
    float v[2 * 4] = {NAN, 0, INFINITY, -INFINITY, 5, -5, 0, NAN};
    cz_image *img = NULL;
    CHECK(cz_grid_render(1, 2, v, v, v, NULL, &img) == CZ_OK && img,
          "NaN planes: %s", cz_last_error());
    cz_image_free(img);
    img = NULL;
    CHECK(cz_grid_render(0, 8, v, v, v, NULL, &img) == CZ_ERR_INVALID && !img, "0 rows accepted");
    CHECK(cz_grid_render(1, 2, NULL, v, v, NULL, &img) == CZ_ERR_INVALID, "NULL L accepted");
    CHECK(cz_grid_render(1 << 30, 1 << 30, v, v, v, NULL, &img) == CZ_ERR_TOO_LARGE,
          "a 2^60-pixel grid accepted");
}

/* Written files decode at the size rendered; unwritable paths are named. */
static void test_files(void)
{
    char path[512];
    double y[3] = {1, 0.5, 0.25};
    cz_plot_series s[2] = {{"D loss", NULL, y, 3}, {"G loss", NULL, y, 2}};
    snprintf(path, sizeof path, "%s/losses.png", tmpdir);
    CHECK(cz_plot_write(path, s, 2, "losses", "step") == CZ_OK, "plot: %s", cz_last_error());
    cz_image *img = NULL, *back = NULL;
    CHECK(cz_plot_render(s, 2, "losses", "step", &img) == CZ_OK, "render");
    CHECK(cz_image_load(path, NULL, &back) == CZ_OK, "reload plot: %s", cz_last_error());
    if (img && back)
        CHECK(back->width == img->width && back->height == img->height &&
              back->channels == 3 &&
              memcmp(back->data, img->data, (size_t)img->width * (size_t)img->height * 3) == 0,
              "plot file is %dx%d, not %dx%d or differs", back->width, back->height,
              img->width, img->height);
    cz_image_free(img);
    cz_image_free(back);
    img = back = NULL;

    enum { N = 3, S = 16 };
    float L[N * S * S], ab[N * 2 * S * S];
    fill_planes(L, ab, ab, N, S);
    snprintf(path, sizeof path, "%s/samples.png", tmpdir);
    CHECK(cz_grid_write(path, N, S, L, ab, ab, "epoch 1, step 100") == CZ_OK,
          "grid: %s", cz_last_error());
    CHECK(cz_image_load(path, NULL, &back) == CZ_OK, "reload grid: %s", cz_last_error());
    cz_rect last = cz_grid_cell(S, "epoch 1, step 100", N - 1, 2);
    if (back)
        CHECK(back->width == last.x + S + CZ_GRID_GUTTER &&
              back->height == last.y + S + CZ_GRID_GUTTER,
              "grid file is %dx%d", back->width, back->height);
    cz_image_free(back);

    const char *bad = "/nonexistent_cz_dir/sub/losses.png";
    cz_status st = cz_plot_write(bad, s, 2, "losses", "step");
    CHECK(st == CZ_ERR_IO && strstr(cz_last_error(), bad),
          "plot to a missing directory: status %d, \"%s\"", st, cz_last_error());
    st = cz_grid_write(bad, N, S, L, ab, ab, NULL);
    CHECK(st == CZ_ERR_IO && strstr(cz_last_error(), bad),
          "grid to a missing directory: status %d, \"%s\"", st, cz_last_error());
    CHECK(cz_plot_write(NULL, s, 2, NULL, NULL) == CZ_ERR_INVALID, "NULL path accepted");

    snprintf(path, sizeof path, "%s/losses.png", tmpdir);
    remove(path);
    snprintf(path, sizeof path, "%s/samples.png", tmpdir);
    remove(path);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    test_font();
    test_plot_placement();
    test_plot_edge_cases();
    test_grid(2, 8, NULL);
    test_grid(3, 160, "epoch 7, step 21000");
    test_grid_edge_cases();
    test_files();
    rmdir(tmpdir);
    return check_finish("test_report");
}
