/* PNG through libpng.
 *
 * libpng reports errors through an error function that must not return;
 * ours copies the message and longjmps to the entry point, which frees
 * everything and turns the message into a cz_fail naming the file. Reading
 * and writing go through our own callbacks so that a short read says
 * "truncated" and a failed write keeps its errno, instead of libpng's bare
 * "Read Error". Locals assigned after setjmp are volatile. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "base/error.h"
#include "image/image.h"

typedef struct {
    FILE *f;
    jmp_buf jump;
    int io_errno; /* non-zero when the failure was the file system's */
    char message[256];
} png_guard;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_guard *g = png_get_error_ptr(png);
    snprintf(g->message, sizeof g->message, "%s", msg);
    longjmp(g->jump, 1);
}

/* Warnings (an odd sRGB profile, a bad CRC in an ancillary chunk, which
 * libpng then skips) leave the pixels intact; a library must not print. */
static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void on_png_read(png_structp png, png_bytep data, size_t n)
{
    png_guard *g = png_get_io_ptr(png);
    if (fread(data, 1, n, g->f) != n) {
        if (ferror(g->f)) {
            g->io_errno = errno ? errno : EIO;
            png_error(png, strerror(g->io_errno));
        }
        png_error(png, "file is truncated");
    }
}

static void on_png_write(png_structp png, png_bytep data, size_t n)
{
    png_guard *g = png_get_io_ptr(png);
    if (fwrite(data, 1, n, g->f) != n) {
        g->io_errno = errno ? errno : EIO;
        png_error(png, strerror(g->io_errno));
    }
}

static void on_png_flush(png_structp png)
{
    png_guard *g = png_get_io_ptr(png);
    if (fflush(g->f) != 0) {
        g->io_errno = errno ? errno : EIO;
        png_error(png, strerror(g->io_errno));
    }
}

/* PNG stores 16-bit samples big-endian; cz_image holds them in host order. */
static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

cz_status cz_png_read(FILE *f, const char *path, uint64_t max_pixels,
                      cz_image **out)
{
    png_guard guard;
    png_structp volatile png = NULL;
    png_infop volatile info = NULL;
    cz_image *volatile img = NULL;
    png_bytep *volatile rows = NULL;
    volatile cz_status status = CZ_OK;

    *out = NULL;
    memset(&guard, 0, sizeof guard);
    guard.f = f;
    if (setjmp(guard.jump)) {
        if (guard.io_errno)
            status = cz_fail(CZ_ERR_IO, "%s: cannot read: %s", path,
                             guard.message);
        else
            status = cz_fail(CZ_ERR_FORMAT, "%s: corrupt PNG: %s", path,
                             guard.message);
        goto cleanup;
    }
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &guard, on_png_error,
                                 on_png_warning);
    if (!png) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    info = png_create_info_struct(png);
    if (!info) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    png_set_read_fn(png, &guard, on_png_read);
    /* libpng's own default caps each side at a million pixels; our pixel
     * count limit is the one rule callers configure, so lift libpng's to
     * the format's maximum. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);

    png_uint_32 w, h;
    int bit_depth, color_type;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, NULL, NULL, NULL);
    /* Worst case of what the transforms below can produce. */
    status = cz_image_check_header(path, w, h, 4, bit_depth == 16 ? 16 : 8,
                                   max_pixels);
    if (status != CZ_OK)
        goto cleanup;

    if (color_type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    if (bit_depth == 16 && host_is_little_endian())
        png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16)) {
        status = cz_fail(CZ_ERR_FORMAT, "%s: PNG decodes to %d channels of "
                         "%d bits, which is not supported", path, channels,
                         depth);
        goto cleanup;
    }
    img = cz_image_new((int)w, (int)h, channels, depth);
    if (!img) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory for %ux%u pixels",
                         path, (unsigned)w, (unsigned)h);
        goto cleanup;
    }
    size_t row_bytes;
    cz_image_size(img->width, img->height, channels, depth, &row_bytes, NULL);
    if (png_get_rowbytes(png, info) != row_bytes) {
        status = cz_fail(CZ_ERR_FORMAT, "%s: PNG row size %zu, expected %zu",
                         path, (size_t)png_get_rowbytes(png, info), row_bytes);
        goto cleanup;
    }
    /* h <= max_pixels and the image itself fits, so h pointers fit too. */
    rows = malloc((size_t)h * sizeof *rows);
    if (!rows) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = (png_bytep)img->data + (size_t)y * row_bytes;
    png_read_image(png, rows);
    /* Reads up to IEND, so a file cut after its pixel data is caught too. */
    png_read_end(png, NULL);
    *out = img;
    img = NULL;

cleanup:
    if (png) {
        png_structp p = png;
        png_infop i = info;
        png_destroy_read_struct(&p, i ? &i : NULL, NULL);
    }
    free(rows);
    cz_image_free(img);
    return status;
}

cz_status cz_png_write(FILE *f, const char *path, const cz_image *img)
{
    static const int color_types[5] = {
        0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
        PNG_COLOR_TYPE_RGB_ALPHA};
    png_guard guard;
    png_structp volatile png = NULL;
    png_infop volatile info = NULL;
    volatile cz_status status = CZ_OK;

    memset(&guard, 0, sizeof guard);
    guard.f = f;
    if (setjmp(guard.jump)) {
        status = cz_fail(guard.io_errno ? CZ_ERR_IO : CZ_ERR_INVALID,
                         "%s: cannot write PNG: %s", path, guard.message);
        goto cleanup;
    }
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &guard, on_png_error,
                                  on_png_warning);
    if (!png) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    info = png_create_info_struct(png);
    if (!info) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    png_set_write_fn(png, &guard, on_png_write, on_png_flush);
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height,
                 img->depth, color_types[img->channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (img->depth == 16 && host_is_little_endian())
        png_set_swap(png); /* libpng swaps a copy; img->data stays const */
    size_t row_bytes;
    cz_image_size(img->width, img->height, img->channels, img->depth,
                  &row_bytes, NULL);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, (png_const_bytep)img->data + (size_t)y * row_bytes);
    png_write_end(png, NULL);

cleanup:
    if (png) {
        png_structp p = png;
        png_infop i = info;
        png_destroy_write_struct(&p, i ? &i : NULL);
    }
    return status;
}
