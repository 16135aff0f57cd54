/* Sample grids: input | generated | ground truth, one example a row.
 *
 *     +--------------------------------------+
 *     | caption (optional)                   |
 *     |  input      generated   ground truth |
 *     | [ L     ]  [ L+ab_pred]  [ L+ab_true]|
 *     | ...                                  |
 *     +--------------------------------------+
 *
 * Every gap is CZ_GRID_GUTTER white pixels. Each cell goes through the same
 * Lab -> sRGB conversion as inference output (image/lab.h), the input with
 * a* = b* = 0, so the three columns differ only in their chroma. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "image/lab.h"
#include "report/report.h"

/* The network's normalisation: L = L* / L_SCALE - 1, ab = a*b* / AB_SCALE. */
#define L_SCALE 50.0f
#define AB_SCALE 110.0f

/* Column titles are drawn at TITLE_SCALE when all fit in a cell, else at
 * scale 1; cells too narrow even for that get pix2pix's short names, cut to
 * what fits. */
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

/* The scale of the header's text (and caption), and the titles to draw. */
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

/* Draws text centred over a cell, cut to the characters that fit in it. */
static void draw_title(cz_image *img, cz_rect cell, int y, const char *title,
                       int scale)
{
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

cz_status cz_grid_render(int n_rows, int size, const float *L,
                         const float *ab_pred, const float *ab_true,
                         const char *caption, cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_grid_render: out is NULL");
    *out = NULL;
    if (!L || !ab_pred || !ab_true)
        return cz_fail(CZ_ERR_INVALID, "cz_grid_render: a tensor is NULL");
    if (n_rows < 1 || size < 1)
        return cz_fail(CZ_ERR_INVALID, "cz_grid_render: %d rows of size %d",
                       n_rows, size);
    /* In 64 bits, each side alone first, so the checks cannot overflow. */
    const int64_t limit = (int64_t)CZ_IMAGE_DEFAULT_MAX_PIXELS;
    int64_t width = CZ_GRID_GUTTER + 3 * ((int64_t)size + CZ_GRID_GUTTER);
    int64_t height = cells_top(size, caption) +
                     (int64_t)n_rows * ((int64_t)size + CZ_GRID_GUTTER);
    if (width > limit || height > limit || width * height > limit)
        return cz_fail(CZ_ERR_TOO_LARGE, "cz_grid_render: %d rows of %dx%d "
                       "make a %lldx%lld picture, over the %llu pixel limit",
                       n_rows, size, size, (long long)width, (long long)height,
                       CZ_IMAGE_DEFAULT_MAX_PIXELS);

    cz_status status = CZ_OK;
    const size_t plane = (size_t)size * (size_t)size;
    float *lab = malloc(3 * plane * sizeof *lab);
    cz_image *cell = cz_image_new(size, size, 3, 8);
    cz_image *img = cz_image_new((int)width, (int)height, 3, 8);
    if (!lab || !cell || !img) {
        status = cz_fail(CZ_ERR_NOMEM, "cz_grid_render: out of memory for "
                         "a %lldx%lld picture", (long long)width, (long long)height);
        goto done;
    }
    memset(img->data, 0xff, (size_t)width * (size_t)height * 3);

    const int scale = text_scale(size);
    int y = CZ_GRID_GUTTER;
    if (has_caption(caption)) {
        cz_font_draw(img, CZ_GRID_GUTTER, y, caption, scale, TEXT);
        y += CZ_FONT_HEIGHT * scale + CZ_GRID_GUTTER;
    }
    const char *const *titles = titles_for(size);
    for (int c = 0; c < 3; c++)
        draw_title(img, cz_grid_cell(size, caption, 0, c), y, titles[c], scale);

    float *Ls = lab, *as = lab + plane, *bs = lab + 2 * plane;
    for (int r = 0; r < n_rows; r++) {
        const float *Lr = L + (size_t)r * plane;
        for (size_t i = 0; i < plane; i++)
            Ls[i] = (Lr[i] + 1.0f) * L_SCALE;
        for (int c = 0; c < 3; c++) {
            const float *ab = c == 1 ? ab_pred : ab_true;
            for (size_t i = 0; i < plane; i++) {
                as[i] = c == 0 ? 0.0f : ab[(size_t)r * 2 * plane + i] * AB_SCALE;
                bs[i] = c == 0 ? 0.0f : ab[(size_t)r * 2 * plane + plane + i] * AB_SCALE;
            }
            status = cz_lab_planes_to_image(Ls, as, bs, cell);
            if (status != CZ_OK)
                goto done;
            cz_rect at = cz_grid_cell(size, caption, r, c);
            for (int row = 0; row < size; row++)
                memcpy((uint8_t *)img->data + ((size_t)(at.y + row) * (size_t)width + (size_t)at.x) * 3,
                       (uint8_t *)cell->data + (size_t)row * (size_t)size * 3, (size_t)size * 3);
        }
    }
    *out = img;
    img = NULL;
done:
    free(lab);
    cz_image_free(cell);
    cz_image_free(img);
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
