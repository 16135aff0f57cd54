/* The image type, format detection, the pixel limit, EXIF orientation and
 * atomic saving; the codecs themselves live in jpeg.c and png.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/error.h"
#include "image/image.h"

/* How many names cz_image_save tries before giving up on a temporary file;
 * a clash needs another process with our pid and counter, so 100 is ample. */
enum { CZ_TEMP_NAME_TRIES = 100 };

static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G',
                                           '\r', '\n', 0x1A, '\n'};
static const unsigned char jpeg_magic[3] = {0xFF, 0xD8, 0xFF};

bool cz_image_size(int width, int height, int channels, int depth,
                   size_t *row_bytes, size_t *total_bytes)
{
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4 ||
        (depth != 8 && depth != 16))
        return false;
    size_t pixel = (size_t)channels * (size_t)(depth / 8);
    if ((size_t)width > SIZE_MAX / pixel)
        return false;
    size_t row = (size_t)width * pixel;
    if ((size_t)height > SIZE_MAX / row)
        return false;
    if (row_bytes)
        *row_bytes = row;
    if (total_bytes)
        *total_bytes = row * (size_t)height;
    return true;
}

cz_image *cz_image_new(int width, int height, int channels, int depth)
{
    size_t bytes;
    if (!cz_image_size(width, height, channels, depth, NULL, &bytes)) {
        cz_fail(CZ_ERR_INVALID,
                "cz_image_new: invalid or too large shape %dx%d, %d channels, "
                "%d bits", width, height, channels, depth);
        return NULL;
    }
    cz_image *img = calloc(1, sizeof *img);
    void *data = calloc(bytes, 1);
    if (!img || !data) {
        free(img);
        free(data);
        cz_fail(CZ_ERR_NOMEM, "cz_image_new: out of memory for %zu bytes",
                bytes);
        return NULL;
    }
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->depth = depth;
    img->data = data;
    return img;
}

void cz_image_free(cz_image *img)
{
    if (!img)
        return;
    free(img->data);
    free(img);
}

cz_status cz_image_check_header(const char *path, uint64_t width,
                                uint64_t height, int channels, int depth,
                                uint64_t max_pixels)
{
    if (width == 0 || height == 0)
        return cz_fail(CZ_ERR_FORMAT, "%s: header gives a zero size (%llux%llu)",
                       path, (unsigned long long)width,
                       (unsigned long long)height);
    /* Both sides below 2^31, so the product cannot overflow 64 bits. */
    if (width > INT_MAX || height > INT_MAX || width * height > max_pixels)
        return cz_fail(CZ_ERR_TOO_LARGE,
                       "%s: %llux%llu pixels exceeds the limit of %llu pixels "
                       "(raise the pixel limit to allow it)",
                       path, (unsigned long long)width,
                       (unsigned long long)height,
                       (unsigned long long)max_pixels);
    if (!cz_image_size((int)width, (int)height, channels, depth, NULL, NULL))
        return cz_fail(CZ_ERR_TOO_LARGE,
                       "%s: %llux%llu pixels do not fit in memory", path,
                       (unsigned long long)width, (unsigned long long)height);
    return CZ_OK;
}

cz_status cz_image_apply_orientation(cz_image **img, int orientation,
                                     const char *path)
{
    if (orientation < 2 || orientation > 8)
        return CZ_OK;
    const cz_image *src = *img;
    const int W = src->width, H = src->height;
    const int transposed = orientation >= 5; /* 5..8 swap width and height */
    cz_image *dst = cz_image_new(transposed ? H : W, transposed ? W : H,
                                 src->channels, src->depth);
    if (!dst)
        return cz_fail(CZ_ERR_NOMEM, "%s: out of memory to rotate %dx%d pixels",
                       path, W, H);
    const size_t pixel = (size_t)src->channels * (size_t)(src->depth / 8);
    const size_t DW = (size_t)dst->width;
    const unsigned char *s = src->data;
    unsigned char *d = dst->data;
    /* Where source pixel (x, y) lands, for the eight EXIF orientations:
     * 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
     * 7 transverse, 8 rotate 90 counter-clockwise. */
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int dx, dy;
            switch (orientation) {
            case 2: dx = W - 1 - x; dy = y; break;
            case 3: dx = W - 1 - x; dy = H - 1 - y; break;
            case 4: dx = x; dy = H - 1 - y; break;
            case 5: dx = y; dy = x; break;
            case 6: dx = H - 1 - y; dy = x; break;
            case 7: dx = H - 1 - y; dy = W - 1 - x; break;
            default: dx = y; dy = W - 1 - x; break; /* 8 */
            }
            memcpy(d + ((size_t)dy * DW + (size_t)dx) * pixel,
                   s + ((size_t)y * (size_t)W + (size_t)x) * pixel, pixel);
        }
    }
    cz_image_free(*img);
    *img = dst;
    return CZ_OK;
}

/* Reads the first bytes of an open file and names its format. */
static cz_status sniff_file(FILE *f, const char *path, cz_image_format *fmt)
{
    unsigned char head[sizeof png_magic];
    size_t n = fread(head, 1, sizeof head, f);
    *fmt = CZ_IMAGE_UNKNOWN;
    if (ferror(f))
        return cz_fail(CZ_ERR_IO, "%s: cannot read: %s", path,
                       strerror(errno ? errno : EIO));
    if (n == 0)
        return cz_fail(CZ_ERR_FORMAT, "%s: empty file", path);
    if (n >= sizeof jpeg_magic && memcmp(head, jpeg_magic, sizeof jpeg_magic) == 0)
        *fmt = CZ_IMAGE_JPEG;
    else if (n == sizeof png_magic && memcmp(head, png_magic, sizeof png_magic) == 0)
        *fmt = CZ_IMAGE_PNG;
    else
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: not a JPEG or PNG file (unrecognised signature)",
                       path);
    return CZ_OK;
}

cz_image_format cz_image_sniff(const char *path)
{
    if (!path) {
        cz_fail(CZ_ERR_INVALID, "cz_image_sniff: path is NULL");
        return CZ_IMAGE_UNKNOWN;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        cz_fail(CZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return CZ_IMAGE_UNKNOWN;
    }
    cz_image_format fmt;
    sniff_file(f, path, &fmt);
    fclose(f);
    return fmt;
}

bool cz_image_is_supported_path(const char *path)
{
    return cz_image_sniff(path) != CZ_IMAGE_UNKNOWN;
}

cz_status cz_image_load(const char *path, const cz_image_options *opt,
                        cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_image_load: out is NULL");
    *out = NULL;
    if (!path)
        return cz_fail(CZ_ERR_INVALID, "cz_image_load: path is NULL");
    uint64_t max_pixels = opt && opt->max_pixels ? opt->max_pixels
                                                 : CZ_IMAGE_DEFAULT_MAX_PIXELS;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cz_fail(CZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));

    cz_image_format fmt;
    cz_status status = sniff_file(f, path, &fmt);
    if (status != CZ_OK)
        goto cleanup;
    if (fseek(f, 0, SEEK_SET) != 0) {
        status = cz_fail(CZ_ERR_IO, "%s: cannot seek: %s", path,
                         strerror(errno));
        goto cleanup;
    }
    status = fmt == CZ_IMAGE_JPEG ? cz_jpeg_read(f, path, max_pixels, out)
                                  : cz_png_read(f, path, max_pixels, out);
cleanup:
    fclose(f);
    return status;
}

/* The output format named by the extension of path, case-insensitive. */
static cz_image_format format_from_extension(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot)
        return CZ_IMAGE_UNKNOWN;
    if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0)
        return CZ_IMAGE_JPEG;
    if (strcasecmp(dot, ".png") == 0)
        return CZ_IMAGE_PNG;
    return CZ_IMAGE_UNKNOWN;
}

/* Creates "<dir>/.<name>.<pid>.<n>.tmp" next to path with O_EXCL. We do not
 * use mkstemp: it creates the file with mode 0600, and widening that to what
 * the user's umask allows means reading the umask, which cannot be done
 * without briefly changing it for every thread. open() with 0666 applies the
 * umask itself, exactly as a plain fopen() of the destination would. */
static cz_status open_temp(const char *path, char **tmp_out, int *fd_out)
{
    static atomic_uint counter;
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    /* The name is cut to 200 bytes so that our suffix stays under NAME_MAX. */
    size_t cap = dir_len + 200 + 64;
    char *tmp = malloc(cap);
    if (!tmp)
        return cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
    for (int attempt = 0; attempt < CZ_TEMP_NAME_TRIES; attempt++) {
        snprintf(tmp, cap, "%.*s.%.200s.%ld.%u.tmp", (int)dir_len, path,
                 path + dir_len, (long)getpid(),
                 atomic_fetch_add(&counter, 1u));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_out = tmp;
            *fd_out = fd;
            return CZ_OK;
        }
        if (errno != EEXIST) {
            cz_status s = cz_fail(CZ_ERR_IO, "%s: cannot create %s: %s", path,
                                  tmp, strerror(errno));
            free(tmp);
            return s;
        }
    }
    free(tmp);
    return cz_fail(CZ_ERR_IO, "%s: no free temporary file name", path);
}

cz_status cz_image_save(const char *path, const cz_image *img,
                        int jpeg_quality)
{
    if (!path || !img)
        return cz_fail(CZ_ERR_INVALID, "cz_image_save: %s is NULL",
                       path ? "image" : "path");
    if (!img->data ||
        !cz_image_size(img->width, img->height, img->channels, img->depth,
                       NULL, NULL))
        return cz_fail(CZ_ERR_INVALID,
                       "%s: cannot save an image of %dx%d, %d channels, %d bits",
                       path, img->width, img->height, img->channels,
                       img->depth);
    cz_image_format fmt = format_from_extension(path);
    if (fmt == CZ_IMAGE_UNKNOWN)
        return cz_fail(CZ_ERR_INVALID,
                       "%s: unknown output format; the name must end in .jpg, "
                       ".jpeg or .png", path);
    if (fmt == CZ_IMAGE_JPEG && (jpeg_quality < 1 || jpeg_quality > 100))
        return cz_fail(CZ_ERR_INVALID, "%s: JPEG quality %d is not in 1..100",
                       path, jpeg_quality);

    char *tmp = NULL;
    int fd = -1;
    FILE *f = NULL;
    cz_status status = open_temp(path, &tmp, &fd);
    if (status != CZ_OK)
        return status;
    f = fdopen(fd, "wb");
    if (!f) {
        status = cz_fail(CZ_ERR_IO, "%s: cannot open %s: %s", path, tmp,
                         strerror(errno));
        close(fd);
        goto cleanup;
    }
    status = fmt == CZ_IMAGE_JPEG ? cz_jpeg_write(f, path, img, jpeg_quality)
                                  : cz_png_write(f, path, img);
    /* fsync before rename: otherwise a crash soon after can leave the new
     * name pointing at an empty file, the very thing the rename avoids. */
    if (status == CZ_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        status = cz_fail(CZ_ERR_IO, "%s: cannot write %s: %s", path, tmp,
                         strerror(errno));
    if (fclose(f) != 0 && status == CZ_OK)
        status = cz_fail(CZ_ERR_IO, "%s: cannot write %s: %s", path, tmp,
                         strerror(errno));
    if (status == CZ_OK && rename(tmp, path) != 0)
        status = cz_fail(CZ_ERR_IO, "%s: cannot rename %s into place: %s",
                         path, tmp, strerror(errno));
cleanup:
    if (status != CZ_OK)
        unlink(tmp);
    free(tmp);
    return status;
}
