/*
 * Image files in and out: JPEG through libjpeg-turbo, PNG through libpng.
 *
 * A cz_image is a plain block of interleaved samples, rows stored one after
 * another with no padding:
 *
 *     channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
 *     depth    8 (uint8_t samples) or 16 (uint16_t samples, host byte order)
 *
 * Loading picks the codec from the file's first bytes, never its name, and
 * returns what the file holds with as little conversion as possible: a 16-bit
 * PNG stays 16-bit, a palette becomes RGB (RGBA where tRNS gives it alpha),
 * gray stays gray, a JPEG is turned upright by its EXIF orientation tag and a
 * CMYK/YCCK JPEG is converted to RGB. Colour profiles and gamma chunks are
 * ignored: samples are taken to be sRGB.
 *
 * Before any buffer the size of the picture is allocated, the header's pixel
 * count is checked against a limit (100 megapixels unless raised), so a
 * forged header costs nothing. Every failure names the file in
 * cz_last_error().
 *
 * Saving picks the codec from the extension (.jpg, .jpeg, .png, any case) and
 * writes through a temporary file in the same directory that is renamed over
 * the destination only once complete, so a reader never sees half a file.
 */
#ifndef CZ_IMAGE_IMAGE_H
#define CZ_IMAGE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "colorize.h"

/* cz_image, cz_image_options and CZ_IMAGE_DEFAULT_MAX_PIXELS are public, so
 * users see one image type: they are defined in include/colorize.h, which
 * also declares cz_image_new, _free, _load and _save for users. */

typedef enum {
    CZ_IMAGE_UNKNOWN = 0, /* unreadable, empty or neither JPEG nor PNG */
    CZ_IMAGE_JPEG,
    CZ_IMAGE_PNG,
} cz_image_format;

/* A zeroed image of the given shape, or NULL (with cz_last_error() set) if
 * the shape is invalid, its byte count overflows, or memory runs out. */
cz_image *cz_image_new(int width, int height, int channels, int depth);

/* Frees the image and its samples; NULL is a no-op. */
void cz_image_free(cz_image *img);

/* Bytes per row and in total for an image of this shape; false if the shape
 * is invalid or the count does not fit in size_t. */
bool cz_image_size(int width, int height, int channels, int depth,
                   size_t *row_bytes, size_t *total_bytes);

/* Loads a JPEG or PNG file. opt may be NULL. On success *out owns a new
 * image; on failure *out is NULL and the status is CZ_ERR_IO (cannot open or
 * read), CZ_ERR_FORMAT (empty, not JPEG/PNG, corrupt, truncated),
 * CZ_ERR_TOO_LARGE (over the pixel limit) or CZ_ERR_NOMEM. */
cz_status cz_image_load(const char *path, const cz_image_options *opt,
                        cz_image **out);

/* Writes img to path as JPEG or PNG according to the extension.
 * JPEG: 8-bit (16-bit samples are rounded to nearest), alpha dropped, not
 * composited (JPEG has no alpha and any background we picked would be a
 * guess), quality 1..100, 4:4:4 chroma when quality >= 90, libjpeg's
 * standard Huffman tables (optimised ones would make the file about 7%
 * smaller, the pixels no different, and encoding 2.5 times slower).
 * PNG: lossless, keeps alpha and 16-bit depth; jpeg_quality is ignored.
 * The destination is replaced atomically; on failure it is left untouched
 * and no temporary file remains. */
cz_status cz_image_save(const char *path, const cz_image *img,
                        int jpeg_quality);

/* The format of the file by its first bytes. CZ_IMAGE_UNKNOWN if it cannot
 * be read or is not JPEG/PNG; cz_last_error() then says which. */
cz_image_format cz_image_sniff(const char *path);

/* True if path is a readable file whose first bytes are JPEG or PNG. */
bool cz_image_is_supported_path(const char *path);

/* ---- Private to src/image: the codec files and image.c share these. ---- */

/* Refuses a header's size before anything is allocated for it: zero sides,
 * more than max_pixels pixels, or a byte count for channels x depth that
 * overflows. */
cz_status cz_image_check_header(const char *path, uint64_t width,
                                uint64_t height, int channels, int depth,
                                uint64_t max_pixels);

/* Turns *img upright for an EXIF orientation (1..8; others leave it as is),
 * replacing *img by a rotated copy when the shape changes. */
cz_status cz_image_apply_orientation(cz_image **img, int orientation,
                                     const char *path);

/* Codecs: f is positioned at the first byte of the file; path is only for
 * messages. */
cz_status cz_jpeg_read(FILE *f, const char *path, uint64_t max_pixels,
                       cz_image **out);
cz_status cz_png_read(FILE *f, const char *path, uint64_t max_pixels,
                      cz_image **out);
cz_status cz_jpeg_write(FILE *f, const char *path, const cz_image *img,
                        int quality);
cz_status cz_png_write(FILE *f, const char *path, const cz_image *img);

#endif
