/* JPEG through libjpeg-turbo.
 *
 * libjpeg reports errors by calling error_exit, which must not return; ours
 * formats the library's message and longjmps back to the entry point, which
 * frees everything and turns the message into a cz_fail naming the file.
 * Locals assigned after setjmp and read after the longjmp are volatile. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "base/error.h"
#include "image/image.h"

/* A progressive JPEG may legally hold any number of scans, and each one
 * makes libjpeg revisit every coefficient, so a few kilobytes of forged scans
 * can cost minutes. libjpeg-turbo's own tools stop at 500 (TJFLAG_LIMITSCANS);
 * real encoders use about ten. */
enum { CZ_JPEG_MAX_SCANS = 500 };

/* EXIF tag that says how the stored picture must be turned to be upright. */
enum { EXIF_TAG_ORIENTATION = 0x0112, EXIF_TYPE_SHORT = 3, EXIF_TYPE_LONG = 4 };

typedef struct {
    struct jpeg_error_mgr pub; /* first, so cinfo->err casts to this */
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
} jpeg_guard;

static void on_error_exit(j_common_ptr cinfo)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, g->message);
    longjmp(g->jump, 1);
}

/* libjpeg only *warns* when compressed data is missing or damaged and goes on
 * to fill the rest of the picture with gray. A truncated photograph must not
 * silently become training data, so these warnings stop the decode. Others
 * (unknown JFIF revision, junk bytes between markers, a bad ICC chunk) leave
 * the pixels intact and are ignored; so is BOGUS_PROGRESSION, which some
 * real encoders trigger on pictures that display fine. */
static void on_emit_message(j_common_ptr cinfo, int level)
{
    if (level >= 0)
        return; /* trace output, never wanted from a library */
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_MUST_RESYNC:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_NOT_SEQUENTIAL:
        on_error_exit(cinfo);
        break;
    default:
        cinfo->err->num_warnings++;
    }
}

static void on_progress(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor)
        return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > CZ_JPEG_MAX_SCANS) {
        jpeg_guard *g = (jpeg_guard *)cinfo->err;
        snprintf(g->message, sizeof g->message,
                 "more than %d progressive scans", CZ_JPEG_MAX_SCANS);
        longjmp(g->jump, 1);
    }
}

static void guard_init(jpeg_guard *g)
{
    memset(g, 0, sizeof *g);
    jpeg_std_error(&g->pub);
    g->pub.error_exit = on_error_exit;
    g->pub.emit_message = on_emit_message;
    g->progress.progress_monitor = on_progress;
}

/* The status a libjpeg error deserves: most mean a bad file. */
static cz_status guard_status(const jpeg_guard *g)
{
    switch (g->pub.msg_code) {
    case JERR_OUT_OF_MEMORY: return CZ_ERR_NOMEM;
    case JERR_IMAGE_TOO_BIG:
    case JERR_WIDTH_OVERFLOW: return CZ_ERR_TOO_LARGE;
    case JERR_FILE_READ:
    case JERR_FILE_WRITE: return CZ_ERR_IO;
    default: return CZ_ERR_FORMAT;
    }
}

static unsigned exif_u16(const JOCTET *p, int little)
{
    return little ? (unsigned)p[0] | (unsigned)p[1] << 8
                  : (unsigned)p[0] << 8 | (unsigned)p[1];
}

static uint32_t exif_u32(const JOCTET *p, int little)
{
    return little ? (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                        (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
                  : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                        (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The orientation tag of IFD0 in an APP1 "Exif\0\0" segment, or 1 (as
 * stored) if there is none or the segment is damaged: a broken EXIF block is
 * common and never a reason to refuse the pixels. Every offset read from the
 * segment is checked against its length before use. */
static int exif_orientation(jpeg_saved_marker_ptr list)
{
    static const JOCTET exif_id[6] = {'E', 'x', 'i', 'f', 0, 0};
    for (jpeg_saved_marker_ptr m = list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1 || m->data_length < sizeof exif_id + 8 ||
            memcmp(m->data, exif_id, sizeof exif_id) != 0)
            continue;
        /* The TIFF structure; its offsets count from here. */
        const JOCTET *t = m->data + sizeof exif_id;
        size_t n = m->data_length - sizeof exif_id;
        int little;
        if (t[0] == 'I' && t[1] == 'I')
            little = 1;
        else if (t[0] == 'M' && t[1] == 'M')
            little = 0;
        else
            return 1;
        if (exif_u16(t + 2, little) != 42)
            return 1;
        uint32_t ifd = exif_u32(t + 4, little);
        if (ifd < 8 || ifd > n - 2)
            return 1;
        unsigned count = exif_u16(t + ifd, little);
        for (unsigned i = 0; i < count; i++) {
            /* ifd < 64K and i < 64K, so this cannot overflow size_t. */
            size_t e = (size_t)ifd + 2 + (size_t)12 * i;
            if (e + 12 > n)
                return 1;
            if (exif_u16(t + e, little) != EXIF_TAG_ORIENTATION)
                continue;
            unsigned type = exif_u16(t + e + 2, little);
            uint32_t items = exif_u32(t + e + 4, little);
            uint32_t v;
            if (type == EXIF_TYPE_SHORT && items == 1)
                v = exif_u16(t + e + 8, little);
            else if (type == EXIF_TYPE_LONG && items == 1)
                v = exif_u32(t + e + 8, little);
            else
                return 1;
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
        return 1;
    }
    return 1;
}

/* CMYK to RGB for one row. Photoshop, which writes most CMYK JPEGs, stores
 * the samples inverted (255 = no ink) and marks the file with an Adobe APP14
 * segment; without that marker we take the samples as plain ink amounts.
 * This is the naive conversion (R = (1-C)(1-K)), not a colour-managed one:
 * CMYK photographs are rare and the network only looks at lightness. */
static void cmyk_row_to_rgb(const JSAMPLE *in, uint8_t *out, JDIMENSION w,
                            int inverted)
{
    for (JDIMENSION x = 0; x < w; x++) {
        unsigned c = in[4 * x], m = in[4 * x + 1], y = in[4 * x + 2],
                 k = in[4 * x + 3];
        if (!inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        out[3 * x] = (uint8_t)((c * k + 127) / 255);
        out[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
        out[3 * x + 2] = (uint8_t)((y * k + 127) / 255);
    }
}

cz_status cz_jpeg_read(FILE *f, const char *path, uint64_t max_pixels,
                       cz_image **out)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_guard guard;
    cz_image *volatile img = NULL;
    JSAMPLE *volatile cmyk_row = NULL;
    volatile cz_status status = CZ_OK;

    *out = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    guard_init(&guard);
    cinfo.err = &guard.pub;
    if (setjmp(guard.jump)) {
        cz_status s = guard_status(&guard);
        status = cz_fail(s, "%s: %s: %s", path,
                         s == CZ_ERR_FORMAT ? "corrupt JPEG" : "cannot decode JPEG",
                         guard.message);
        goto cleanup;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &guard.progress;
    jpeg_stdio_src(&cinfo, f);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);

    int channels, cmyk = 0;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        channels = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        channels = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK: /* libjpeg turns YCCK into CMYK for us */
        cinfo.out_color_space = JCS_CMYK;
        channels = 3;
        cmyk = 1;
        break;
    default:
        status = cz_fail(CZ_ERR_FORMAT,
                         "%s: JPEG with %d components in an unknown colour "
                         "space is not supported",
                         path, cinfo.num_components);
        goto cleanup;
    }
    status = cz_image_check_header(path, cinfo.image_width, cinfo.image_height,
                                   channels, 8, max_pixels);
    if (status != CZ_OK)
        goto cleanup;

    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_components != (cmyk ? 4 : channels)) {
        status = cz_fail(CZ_ERR_FORMAT, "%s: JPEG decodes to %d components, "
                         "expected %d", path, cinfo.output_components,
                         cmyk ? 4 : channels);
        goto cleanup;
    }
    img = cz_image_new((int)cinfo.output_width, (int)cinfo.output_height,
                       channels, 8);
    if (!img) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory for %ux%u pixels",
                         path, cinfo.output_width, cinfo.output_height);
        goto cleanup;
    }
    size_t row_bytes = (size_t)img->width * (size_t)channels;
    if (cmyk) {
        /* width*4 fits: width*3*... was checked, and 4 <= 2*3 bytes. */
        cmyk_row = malloc((size_t)img->width * 4);
        if (!cmyk_row) {
            status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
            goto cleanup;
        }
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = (uint8_t *)img->data + cinfo.output_scanline * row_bytes;
        JSAMPROW row = cmyk ? cmyk_row : dst;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
            /* Only a suspending data source returns 0; stdio never does. */
            status = cz_fail(CZ_ERR_FORMAT, "%s: JPEG decoder stalled", path);
            goto cleanup;
        }
        if (cmyk)
            cmyk_row_to_rgb(cmyk_row, dst, cinfo.output_width,
                            cinfo.saw_Adobe_marker);
    }
    int orientation = exif_orientation(cinfo.marker_list);
    /* Reads up to EOI, so a file cut after its last scan is caught too. */
    jpeg_finish_decompress(&cinfo);

    cz_image *oriented = img;
    img = NULL;
    status = cz_image_apply_orientation(&oriented, orientation, path);
    if (status != CZ_OK) {
        cz_image_free(oriented);
        goto cleanup;
    }
    *out = oriented;

cleanup:
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);
    cz_image_free(img);
    return status;
}

cz_status cz_jpeg_write(FILE *f, const char *path, const cz_image *img,
                        int quality)
{
    struct jpeg_compress_struct cinfo;
    jpeg_guard guard;
    uint8_t *volatile row = NULL;
    volatile cz_status status = CZ_OK;

    memset(&cinfo, 0, sizeof cinfo);
    guard_init(&guard);
    cinfo.err = &guard.pub;
    if (setjmp(guard.jump)) {
        cz_status s = guard_status(&guard);
        status = cz_fail(s == CZ_ERR_FORMAT ? CZ_ERR_IO : s,
                         "%s: cannot write JPEG: %s", path, guard.message);
        goto cleanup;
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    const int gray = img->channels <= 2;
    /* 8-bit gray, RGB and RGBA rows go to libjpeg as they are (it skips
     * RGBA's alpha itself); others are converted a row at a time. */
    const bool direct = img->depth == 8 && img->channels != 2;
    cinfo.image_width = (JDIMENSION)img->width;
    cinfo.image_height = (JDIMENSION)img->height;
    cinfo.input_components = gray ? 1 : direct && img->channels == 4 ? 4 : 3;
    cinfo.in_color_space = gray ? JCS_GRAYSCALE
                           : cinfo.input_components == 4 ? JCS_EXT_RGBX
                                                         : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    /* The standard Huffman tables, not ones optimised for the picture: those
     * need a second pass over every coefficient of the whole picture, held
     * in memory (6 bytes a pixel in 4:4:4), which takes encoding from 0.13
     * to 0.31 s at 12 megapixels to save about 7% of the file. The pixels
     * are the same either way. */
    cinfo.optimize_coding = FALSE;
    if (!gray && quality >= 90) {
        /* At high quality chroma subsampling is the largest loss left, and
         * it smears colour edges, which is exactly what we produce. */
        for (int c = 0; c < cinfo.num_components; c++)
            cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    }
    jpeg_start_compress(&cinfo, TRUE);

    size_t in_ch = (size_t)img->channels;
    size_t row_samples = (size_t)img->width * in_ch;
    if (direct) {
        for (int y = 0; y < img->height; y++) {
            JSAMPROW r = (JSAMPROW)img->data + (size_t)y * row_samples;
            jpeg_write_scanlines(&cinfo, &r, 1);
        }
        jpeg_finish_compress(&cinfo);
        goto cleanup;
    }
    size_t out_ch = gray ? 1 : 3;
    row = malloc((size_t)img->width * out_ch);
    if (!row) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    for (int y = 0; y < img->height; y++) {
        size_t base = (size_t)y * row_samples;
        if (img->depth == 8) {
            const uint8_t *in = (const uint8_t *)img->data + base;
            for (size_t x = 0; x < (size_t)img->width; x++)
                row[x] = in[x * in_ch]; /* gray + alpha: the gray */
        } else {
            const uint16_t *in = (const uint16_t *)img->data + base;
            for (size_t x = 0; x < (size_t)img->width; x++)
                for (size_t c = 0; c < out_ch; c++)
                    row[x * out_ch + c] =
                        (uint8_t)((in[x * in_ch + c] * 255u + 32767u) / 65535u);
        }
        JSAMPROW r = row;
        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);

cleanup:
    jpeg_destroy_compress(&cinfo);
    free(row);
    return status;
}
