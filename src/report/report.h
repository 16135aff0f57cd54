/*
 * Training reports: the two pictures `colorize train` writes so a researcher
 * can watch the GAN learn.
 *
 * 1. Loss curves (plot.c). Each series gets its own panel, stacked top to
 *    bottom and sharing one x axis (training step), because the losses of a
 *    GAN live on different scales (D near 0.69, G's L1 term near 10) and a
 *    shared y axis would flatten all but the largest. A panel has numeric
 *    ticks, gridlines and a header naming the series with its last value.
 *    Series of 64 points or more are drawn faintly with a centred moving
 *    average (over 2% of the points) on top, since per-step GAN losses are
 *    noise around a trend; sparse series (validation, a point an epoch) get
 *    a marker at each point. NaN and infinite points are skipped and counted
 *    in the header; a series with no finite point says "no data".
 *
 * 2. Sample grids (grid.c), as in the pix2pix paper's figures: one row per
 *    example, three columns -- grayscale input | generated | ground truth --
 *    under a header of column titles and an optional caption line
 *    ("epoch 3, step 12000"), with CZ_GRID_GUTTER white pixels around and
 *    between the cells. The same layout takes any number of columns of
 *    ready-made cells (`colorize grid`: input | one per model | truth).
 *
 * Both exist as *_render (to an 8-bit RGB cz_image) and *_write (render, then
 * cz_image_save, which replaces the file atomically). Text uses a built-in
 * 5x7 bitmap font (plot_font.c) so no font library is needed.
 */
#ifndef CZ_REPORT_REPORT_H
#define CZ_REPORT_REPORT_H

#include <stdint.h>

#include "colorize.h"
#include "image/image.h"

/* A rectangle of pixels: columns x .. x+w-1, rows y .. y+h-1. */
typedef struct {
    int x, y, w, h;
} cz_rect;

/* ---- Loss curves -------------------------------------------------------- */

/* One curve: n points (x[i], y[i]). x may be NULL, meaning 0, 1, ..., n-1.
 * Points where x or y is NaN or infinite are skipped. */
typedef struct {
    const char *name; /* shown in the panel header; NULL for none */
    const double *x;
    const double *y;
    int n;
} cz_plot_series;

/* More panels than this is surely a mistake (the image would be 8000+ rows). */
#define CZ_PLOT_MAX_SERIES 32

/* Renders the curves to a new RGB image, CZ_PLOT_WIDTH pixels wide, one panel
 * per series (n_series = 0 gives one empty panel). title and x_label may be
 * NULL. Fails with CZ_ERR_INVALID for a negative n, a NULL y with n > 0 or
 * more than CZ_PLOT_MAX_SERIES series, CZ_ERR_NOMEM if memory runs out. */
cz_status cz_plot_render(const cz_plot_series *series, int n_series,
                         const char *title, const char *x_label,
                         cz_image **out);

/* cz_plot_render, then cz_image_save to path (.png advised: the lines are
 * sharp-edged and JPEG would smear them). */
cz_status cz_plot_write(const char *path, const cz_plot_series *series,
                        int n_series, const char *title, const char *x_label);

/* The layout, for tests and for anyone who wants to annotate a plot. */
#define CZ_PLOT_WIDTH 1000
/* The data area of panel i: every curve pixel lies inside it. */
cz_rect cz_plot_area(int panel);
/* The colour of series i (a fixed palette, repeating after 10). */
void cz_plot_color(int series, uint8_t rgb[3]);

/* ---- Sample grids ------------------------------------------------------- */

/* White pixels around and between cells. */
#define CZ_GRID_GUTTER 4

/* Renders n_rows examples of size x size pixels to a new RGB image.
 * Tensors are planar NCHW floats as the network sees them:
 *   L        [n_rows, 1, size, size], L* / 50 - 1
 *   ab_pred  [n_rows, 2, size, size], a*, b* / 110
 *   ab_true  [n_rows, 2, size, size], likewise
 * Values out of range are clipped to the sRGB gamut; NaN gives black.
 * caption may be NULL or "" for none. Fails with CZ_ERR_INVALID for NULL
 * tensors or n_rows / size below 1, CZ_ERR_TOO_LARGE for a picture over
 * CZ_IMAGE_DEFAULT_MAX_PIXELS, CZ_ERR_NOMEM if memory runs out. */
cz_status cz_grid_render(int n_rows, int size, const float *L,
                         const float *ab_pred, const float *ab_true,
                         const char *caption, cz_image **out);

/* cz_grid_render, then cz_image_save to path (PNG or JPEG by extension). */
cz_status cz_grid_write(const char *path, int n_rows, int size,
                        const float *L, const float *ab_pred,
                        const float *ab_true, const char *caption);

/* Where cell (row, col) lies; in cz_grid_render's grids col 0 is the input,
 * 1 generated, 2 ground truth. The layout depends on size and on whether
 * there is a caption, never on the titles or the number of columns. */
cz_rect cz_grid_cell(int size, const char *caption, int row, int col);

/* Renders n_rows x n_cols cells to a new RGB image under a header of column
 * titles: cells[r * n_cols + c] is the 8-bit RGB size x size image of row r,
 * column c; titles[c] names column c (NULL leaves it untitled; a title too
 * wide for the cell is drawn smaller, then cut). caption may be NULL or ""
 * for none. Fails with CZ_ERR_INVALID for NULL arguments, counts or size
 * below 1 or a cell of another shape, CZ_ERR_TOO_LARGE for a picture over
 * CZ_IMAGE_DEFAULT_MAX_PIXELS, CZ_ERR_NOMEM if memory runs out. */
cz_status cz_grid_render_columns(int n_rows, int n_cols, int size,
                                 const char *const *titles,
                                 const cz_image *const *cells,
                                 const char *caption, cz_image **out);

/* The width and height of such a grid, with the same CZ_ERR_INVALID and
 * CZ_ERR_TOO_LARGE checks, so a caller can refuse one before making its
 * cells. */
cz_status cz_grid_dimensions(int n_rows, int n_cols, int size,
                             const char *caption, int *width, int *height);

/* ---- Private to src/report: the bitmap font (plot_font.c) --------------- */

/* Glyphs are 5 columns by 8 rows: capitals and digits use rows 0..6, row 7
 * holds descenders. Text advances CZ_FONT_ADVANCE columns a character and
 * takes CZ_FONT_HEIGHT rows, both times the integer scale. */
#define CZ_FONT_COLS 5
#define CZ_FONT_ROWS 8
#define CZ_FONT_ADVANCE 6
#define CZ_FONT_HEIGHT 8

/* Row r (0 top) of character c's glyph as bits, bit 4 the leftmost column.
 * Characters outside printable ASCII (32..126) draw as '?'. */
unsigned cz_font_row(char c, int r);

/* Width in pixels of text drawn at scale. */
int cz_font_width(const char *text, int scale);

/* Draws text with its top-left corner at (x, y), each font pixel a
 * scale x scale square of colour rgb; whatever falls outside img (8-bit RGB)
 * is clipped. */
void cz_font_draw(cz_image *img, int x, int y, const char *text, int scale,
                  const uint8_t rgb[3]);

#endif
