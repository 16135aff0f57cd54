/* Sample grids: one example a row, one column per picture of it.
 *
 *     +--------------------------------------------+
 *     | caption (optional)                         |
 *     |  title 0     title 1    ...   title n-1    |
 *     | [ cell   ]  [ cell   ]  ...  [ cell   ]    |
 *     | ...                                        |
 *     +--------------------------------------------+
 *
 * Every gap is CZ_GRID_GUTTER white pixels. cz_grid_render_columns lays out
 * cells it is given; cz_grid_render, training's three columns (input |
 * generated | ground truth), makes its cells from the network's planes
 * through the same Lab -> sRGB conversion as inference output (image/lab.h),
 * the input with a* = b* = 0, so the three differ only in their chroma. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "image/lab.h"
#include "report/report.h"

/* The network's normalisation: L = L* / L_SCALE - 1, ab = a*b* / AB_SCALE. */
#define L_SCALE 50.0f
#define AB_SCALE 110.0f

/* The header (and caption) is drawn at TITLE_SCALE when a cell is wide
 * enough for training's titles at that scale, else at scale 1, so the layout
 * depends on the cell size alone. A title too wide for its cell at the
 * header's scale is drawn at scale 1, and cut to what fits if still too
 * wide; training's grid uses pix2pix's short names when its titles do not
 * fit at scale 1. */
#define TITLE_SCALE 2
/* Used only if the caller asks for a .jpg. */
#define JPEG_QUALITY 95

static const char *const TITLES[3] = {"input", "generated", "ground truth"};
static const char *const SHORT_TITLES[3] = {"input", "fake", "real"};
static const uint8_t TEXT[3] = {30, 30, 36};

/* Width of the ink of text, without the gap after the last character. */
static int ink_width(const char *text, int scale)
{
    int w = cz_font_width(text, scale);
    return w > 0 ? w - (CZ_FONT_ADVANCE - CZ_FONT_COLS) * scale : 0;
}

static int titles_fit(const char *const titles[3], int scale, int size)
{
    for (int c = 0; c < 3; c++)
        if (ink_width(titles[c], scale) > size)
            return 0;
    return 1;
}

/* The scale of the header's text (and caption). */
static int text_scale(int size)
{
    return titles_fit(TITLES, TITLE_SCALE, size) ? TITLE_SCALE : 1;
}

static const char *const *titles_for(int size)
{
    return titles_fit(TITLES, text_scale(size), size) ? TITLES : SHORT_TITLES;
}

static int has_caption(const char *caption) { return caption && caption[0]; }

/* Top of the first row of cells. */
static int cells_top(int size, const char *caption)
{
    int line = CZ_FONT_HEIGHT * text_scale(size) + CZ_GRID_GUTTER;
    return CZ_GRID_GUTTER + (has_caption(caption) ? 2 : 1) * line;
}

cz_rect cz_grid_cell(int size, const char *caption, int row, int col)
{
    cz_rect r = {CZ_GRID_GUTTER + col * (size + CZ_GRID_GUTTER),
                 cells_top(size, caption) + row * (size + CZ_GRID_GUTTER), size, size};
    return r;
}

cz_status cz_grid_dimensions(int n_rows, int n_cols, int size,
                             const char *caption, int *width, int *height)
{
    if (n_rows < 1 || n_cols < 1 || size < 1)
        return cz_fail(CZ_ERR_INVALID, "sample grid: %d rows, %d columns of size %d",
                       n_rows, n_cols, size);
    /* In 64 bits, each side alone first, so the checks cannot overflow. */
    const int64_t limit = (int64_t)CZ_IMAGE_DEFAULT_MAX_PIXELS;
    int64_t w = CZ_GRID_GUTTER + (int64_t)n_cols * ((int64_t)size + CZ_GRID_GUTTER);
    int64_t h = cells_top(size, caption) +
                (int64_t)n_rows * ((int64_t)size + CZ_GRID_GUTTER);
    if (w > limit || h > limit || w * h > limit)
        return cz_fail(CZ_ERR_TOO_LARGE, "sample grid: %d rows and %d columns "
                       "of %dx%d make a %lldx%lld picture, over the %llu pixel limit",
                       n_rows, n_cols, size, size, (long long)w, (long long)h,
                       CZ_IMAGE_DEFAULT_MAX_PIXELS);
    *width = (int)w;
    *height = (int)h;
    return CZ_OK;
}

/* Draws a title centred over a cell, at scale if it fits, else at scale 1
 * (centred on the header's line), cut to the characters that fit. */
static void draw_title(cz_image *img, cz_rect cell, int y, const char *title,
                       int scale)
{
    if (scale > 1 && ink_width(title, scale) > cell.w) {
        y += (CZ_FONT_HEIGHT * scale - CZ_FONT_HEIGHT) / 2;
        scale = 1;
    }
    char buf[32];
    size_t fit = (size_t)((cell.w + (CZ_FONT_ADVANCE - CZ_FONT_COLS) * scale) /
                          (CZ_FONT_ADVANCE * scale));
    size_t len = strlen(title);
    if (len > fit)
        len = fit;
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    memcpy(buf, title, len);
    buf[len] = '\0';
    int x = cell.x + (cell.w - ink_width(buf, scale)) / 2;
    cz_font_draw(img, x, y, buf, scale, TEXT);
}

static int is_cell(const cz_image *c, int size)
{
    return c && c->data && c->width == size && c->height == size &&
           c->channels == 3 && c->depth == 8;
}

cz_status cz_grid_render_columns(int n_rows, int n_cols, int size,
                                 const char *const *titles,
                                 const cz_image *const *cells,
                                 const char *caption, cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_grid_render_columns: out is NULL");
    *out = NULL;
    if (!titles || !cells)
        return cz_fail(CZ_ERR_INVALID, "cz_grid_render_columns: titles or cells is NULL");
    int width, height;
    cz_status status = cz_grid_dimensions(n_rows, n_cols, size, caption, &width, &height);
    if (status != CZ_OK)
        return status;
    for (int i = 0; i < n_rows * n_cols; i++) /* the product fits: checked above */
        if (!is_cell(cells[i], size))
            return cz_fail(CZ_ERR_INVALID, "cz_grid_render_columns: cell %d, %d "
                           "is not an 8-bit RGB image of %dx%d",
                           i / n_cols, i % n_cols, size, size);

    cz_image *img = cz_image_new(width, height, 3, 8);
    if (!img)
        return cz_fail(CZ_ERR_NOMEM, "cz_grid_render_columns: out of memory "
                       "for a %dx%d picture", width, height);
    memset(img->data, 0xff, (size_t)width * (size_t)height * 3);

    const int scale = text_scale(size);
    int y = CZ_GRID_GUTTER;
    if (has_caption(caption)) {
        cz_font_draw(img, CZ_GRID_GUTTER, y, caption, scale, TEXT);
        y += CZ_FONT_HEIGHT * scale + CZ_GRID_GUTTER;
    }
    for (int c = 0; c < n_cols; c++)
        if (titles[c])
            draw_title(img, cz_grid_cell(size, caption, 0, c), y, titles[c], scale);

    const size_t row_bytes = (size_t)size * 3;
    for (int r = 0; r < n_rows; r++)
        for (int c = 0; c < n_cols; c++) {
            const uint8_t *src = cells[r * n_cols + c]->data;
            cz_rect at = cz_grid_cell(size, caption, r, c);
            for (int row = 0; row < size; row++)
                memcpy((uint8_t *)img->data + ((size_t)(at.y + row) * (size_t)width + (size_t)at.x) * 3,
                       src + (size_t)row * row_bytes, row_bytes);
        }
    *out = img;
    return CZ_OK;
}

cz_status cz_grid_render(int n_rows, int size, const float *L,
                         const float *ab_pred, const float *ab_true,
                         const char *caption, cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_grid_render: out is NULL");
    *out = NULL;
    if (!L || !ab_pred || !ab_true)
        return cz_fail(CZ_ERR_INVALID, "cz_grid_render: a tensor is NULL");
    /* Refuse a picture too large before making its cells. */
    int width, height;
    cz_status status = cz_grid_dimensions(n_rows, 3, size, caption, &width, &height);
    if (status != CZ_OK)
        return status;

    const size_t plane = (size_t)size * (size_t)size;
    const size_t n_cells = 3 * (size_t)n_rows;
    float *lab = malloc(3 * plane * sizeof *lab);
    cz_image **cells = calloc(n_cells, sizeof *cells);
    if (!lab || !cells) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_grid_render: out of memory for "
                         "a %dx%d picture", width, height);
        goto done;
    }
    float *Ls = lab, *as = lab + plane, *bs = lab + 2 * plane;
    for (int r = 0; r < n_rows; r++) {
        const float *Lr = L + (size_t)r * plane;
        for (size_t i = 0; i < plane; i++)
            Ls[i] = (Lr[i] + 1.0f) * L_SCALE;
        for (int c = 0; c < 3; c++) {
            /* column 0 is the input: no chroma */
            const float *ab = c == 0 ? NULL : (c == 1 ? ab_pred : ab_true) + (size_t)r * 2 * plane;
            for (size_t i = 0; i < plane; i++) {
                as[i] = ab ? ab[i] * AB_SCALE : 0.0f;
                bs[i] = ab ? ab[plane + i] * AB_SCALE : 0.0f;
            }
            cz_image *cell = cells[(size_t)r * 3 + (size_t)c] = cz_image_new(size, size, 3, 8);
            status = cell ? cz_lab_planes_to_image(Ls, as, bs, cell) : CZ_ERR_NOMEM;
            if (status != CZ_OK)
                goto done;
        }
    }
    status = cz_grid_render_columns(n_rows, 3, size, titles_for(size),
                                    (const cz_image *const *)cells, caption, out);
done:
    for (size_t i = 0; cells && i < n_cells; i++)
        cz_image_free(cells[i]);
    free(cells);
    free(lab);
    return status;
}

cz_status cz_grid_write(const char *path, int n_rows, int size,
                        const float *L, const float *ab_pred,
                        const float *ab_true, const char *caption)
{
    if (!path)
        return cz_fail(CZ_ERR_INVALID, "cz_grid_write: path is NULL");
    cz_image *img = NULL;
    cz_status s = cz_grid_render(n_rows, size, L, ab_pred, ab_true, caption, &img);
    if (s == CZ_OK)
        s = cz_image_save(path, img, JPEG_QUALITY);
    cz_image_free(img);
    return s;
}
