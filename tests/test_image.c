/* Image loading and saving: every PNG colour type and depth, JPEG baseline,
 * progressive, gray, CMYK and EXIF orientation, a corpus of malformed files
 * (made here from the good fixtures of tools/make_image_fixtures.py), the
 * pixel limit, round trips, and saving that never leaves half a file. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "base/error.h"
#include "check.h"
#include "image/image.h"
#include "image/lab.h"

#define FIXTURES "tests/fixtures/images/"

/* The fixtures' PNG size and JPEG block layout (tools/make_image_fixtures.py). */
enum { PW = 7, PH = 5, BLOCK = 16, JW = 4 * BLOCK, JH = 2 * BLOCK };
static const int BLOCKS[2][4][3] = {
    {{200, 30, 30}, {30, 200, 30}, {30, 30, 200}, {128, 128, 128}},
    {{240, 220, 40}, {40, 220, 240}, {220, 40, 240}, {20, 20, 20}}};
static const int GRAYS[2][4] = {{30, 90, 160, 230}, {60, 120, 190, 250}};
/* What the CMYK fixture's inks are in RGB (Pillow's conversion agrees). */
static const int CMYK_RGB[2][4][3] = {
    {{255, 255, 255}, {0, 255, 255}, {255, 0, 0}, {0, 0, 0}},
    {{255, 255, 0}, {127, 127, 127}, {0, 0, 255}, {255, 0, 255}}};
/* JPEG is lossy; flat 16x16 blocks at quality 90+ come back this close. */
enum { JPEG_TOL = 8 };

static char tmpdir[] = "/tmp/cz_test_image_XXXXXX";

/* Same hash as pattern() in tools/make_image_fixtures.py. */
static unsigned pattern(unsigned x, unsigned y, unsigned c, int bits)
{
    uint32_t h = (x * 73856093u) ^ (y * 19349663u) ^ (c * 83492791u);
    h ^= h >> 13;
    h *= 0x5BD1E995u;
    h ^= h >> 15;
    return h >> (32 - bits);
}

static unsigned px(const cz_image *img, int x, int y, int c)
{
    size_t k = ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels + (size_t)c;
    return img->depth == 8 ? ((const uint8_t *)img->data)[k]
                           : ((const uint16_t *)img->data)[k];
}

static void set_px(cz_image *img, int x, int y, int c, unsigned v)
{
    size_t k = ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels + (size_t)c;
    if (img->depth == 8)
        ((uint8_t *)img->data)[k] = (uint8_t)v;
    else
        ((uint16_t *)img->data)[k] = (uint16_t)v;
}

static size_t image_bytes(const cz_image *img)
{
    size_t total = 0;
    cz_image_size(img->width, img->height, img->channels, img->depth, NULL, &total);
    return total;
}

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *size = n;
    return buf;
}

static int write_all(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static cz_image *load_ok(const char *path)
{
    cz_image *img = NULL;
    cz_status s = cz_image_load(path, NULL, &img);
    CHECK(s == CZ_OK && img, "%s: %s (%s)", path, cz_strerror(s), cz_last_error());
    return s == CZ_OK ? img : NULL;
}

/* Loading path must fail with status want, leave *out NULL, and name path. */
static void expect_reject(const char *path, cz_status want)
{
    cz_image *img = (cz_image *)&img; /* must be overwritten with NULL */
    cz_error_clear();
    cz_status s = cz_image_load(path, NULL, &img);
    CHECK(s == want, "%s: got %s, want %s (%s)", path, cz_strerror(s),
          cz_strerror(want), cz_last_error());
    CHECK(img == NULL, "%s: *out not NULL after failure", path);
    CHECK(strstr(cz_last_error(), path) != NULL,
          "%s: message does not name the file: \"%s\"", path, cz_last_error());
    printf("  rejected: %s\n", cz_last_error());
}

/* ---- Good PNGs ---------------------------------------------------------- */

static void check_png_pattern(const char *name, int channels, int bits)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s", name);
    cz_image *img = load_ok(path);
    if (!img)
        return;
    int depth = bits == 16 ? 16 : 8;
    CHECK(img->width == PW && img->height == PH && img->channels == channels &&
          img->depth == depth, "%s: %dx%d %dch %dbit", name, img->width,
          img->height, img->channels, img->depth);
    if (img->channels != channels || img->depth != depth) {
        cz_image_free(img);
        return;
    }
    int bad = 0;
    unsigned scale = bits < 8 ? 255u / ((1u << bits) - 1) : 1; /* libpng scales up */
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW; x++)
            for (int c = 0; c < channels; c++)
                bad += px(img, x, y, c) != pattern(x, y, c, bits) * scale;
    CHECK(bad == 0, "%s: %d samples differ", name, bad);
    cz_image_free(img);
}

static void test_png_fixtures(void)
{
    check_png_pattern("gray1.png", 1, 1);
    check_png_pattern("gray2.png", 1, 2);
    check_png_pattern("gray4.png", 1, 4);
    check_png_pattern("gray8.png", 1, 8);
    check_png_pattern("gray16.png", 1, 16);
    check_png_pattern("graya8.png", 2, 8);
    check_png_pattern("graya16.png", 2, 16);
    check_png_pattern("rgb8.png", 3, 8);
    check_png_pattern("rgb16.png", 3, 16);
    check_png_pattern("rgba8.png", 4, 8);
    check_png_pattern("rgba16.png", 4, 16);
    check_png_pattern("rgb8_adam7.png", 3, 8);

    /* Palette with tRNS: RGBA, alpha from tRNS for the first 5 entries. */
    cz_image *img = load_ok(FIXTURES "palette4_trns.png");
    if (img) {
        CHECK(img->channels == 4 && img->depth == 8, "palette+tRNS: %dch %dbit",
              img->channels, img->depth);
        int bad = 0;
        for (int y = 0; y < PH && img->channels == 4; y++)
            for (int x = 0; x < PW; x++) {
                unsigned i = pattern(x, y, 0, 4);
                for (int c = 0; c < 3; c++)
                    bad += px(img, x, y, c) != pattern(i, 0, c, 8);
                bad += px(img, x, y, 3) != (i < 5 ? pattern(i, 0, 3, 8) : 255u);
            }
        CHECK(bad == 0, "palette4_trns.png: %d samples differ", bad);
        cz_image_free(img);
    }
    img = load_ok(FIXTURES "palette8.png");
    if (img) {
        CHECK(img->channels == 3 && img->depth == 8, "palette: %dch %dbit",
              img->channels, img->depth);
        int bad = 0;
        for (int y = 0; y < PH && img->channels == 3; y++)
            for (int x = 0; x < PW; x++)
                for (int c = 0; c < 3; c++)
                    bad += px(img, x, y, c) != pattern(pattern(x, y, 0, 8), 0, c, 8);
        CHECK(bad == 0, "palette8.png: %d samples differ", bad);
        cz_image_free(img);
    }
    /* Gray with a tRNS key colour: gray+alpha, transparent where equal. */
    img = load_ok(FIXTURES "gray8_trns.png");
    if (img) {
        CHECK(img->channels == 2, "gray+tRNS: %d channels", img->channels);
        int bad = 0, transparent = 0;
        unsigned key = pattern(0, 0, 0, 8);
        for (int y = 0; y < PH && img->channels == 2; y++)
            for (int x = 0; x < PW; x++) {
                unsigned v = pattern(x, y, 0, 8);
                bad += px(img, x, y, 0) != v;
                bad += px(img, x, y, 1) != (v == key ? 0u : 255u);
                transparent += v == key;
            }
        CHECK(bad == 0 && transparent > 0, "gray8_trns.png: %d differ, %d transparent",
              bad, transparent);
        cz_image_free(img);
    }
}

/* ---- Good JPEGs --------------------------------------------------------- */

/* Checks the 8x8 centre of every block; (bx, by) -> where that block's
 * centre lands is given by the orientation. */
static void check_blocks(const char *name, const cz_image *img, int orientation,
                         const int (*rgb)[4][3])
{
    int worst = 0;
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 4; c++)
            for (int dy = -4; dy < 4; dy++)
                for (int dx = -4; dx < 4; dx++) {
                    int sx = c * BLOCK + BLOCK / 2 + dx, sy = r * BLOCK + BLOCK / 2 + dy;
                    int x = sx, y = sy;
                    if (orientation == 3) {
                        x = JW - 1 - sx;
                        y = JH - 1 - sy;
                    } else if (orientation == 6) {
                        x = JH - 1 - sy;
                        y = sx;
                    } else if (orientation == 8) {
                        x = sy;
                        y = JW - 1 - sx;
                    }
                    for (int k = 0; k < img->channels; k++) {
                        int want = img->channels == 1 ? GRAYS[r][c] : rgb[r][c][k];
                        int d = abs((int)px(img, x, y, k) - want);
                        worst = d > worst ? d : worst;
                    }
                }
    CHECK(worst <= JPEG_TOL, "%s: block colours off by up to %d", name, worst);
}

static cz_image *load_jpeg(const char *path, int w, int h, int channels)
{
    cz_image *img = load_ok(path);
    if (img && !(img->width == w && img->height == h && img->channels == channels &&
                 img->depth == 8)) {
        CHECK(0, "%s: %dx%d %dch %dbit, want %dx%d %dch 8bit", path, img->width,
              img->height, img->channels, img->depth, w, h, channels);
        cz_image_free(img);
        img = NULL;
    }
    return img;
}

static void test_jpeg_fixtures(void)
{
    static const struct {
        const char *name;
        int w, h, channels, orientation;
    } cases[] = {
        {"color.jpg", JW, JH, 3, 1},
        {"progressive.jpg", JW, JH, 3, 1},
        {"gray.jpg", JW, JH, 1, 1},
        {"exif6.jpg", JH, JW, 3, 6}, /* stored 64x32, shown 32x64 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256];
        snprintf(path, sizeof path, FIXTURES "%s", cases[i].name);
        cz_image *img = load_jpeg(path, cases[i].w, cases[i].h, cases[i].channels);
        if (img)
            check_blocks(cases[i].name, img, cases[i].orientation, BLOCKS);
        cz_image_free(img);
    }
    cz_image *img = load_jpeg(FIXTURES "cmyk.jpg", JW, JH, 3);
    if (img)
        check_blocks("cmyk.jpg (Adobe inverted CMYK)", img, 1, CMYK_RGB);
    cz_image_free(img);
}

/* The inks of cmyk.jpg (C, M, Y, K as amounts of ink, 255 = full). */
static const int INKS[2][4][4] = {
    {{0, 0, 0, 0}, {255, 0, 0, 0}, {0, 255, 255, 0}, {0, 0, 0, 255}},
    {{0, 0, 255, 0}, {0, 0, 0, 128}, {255, 255, 0, 0}, {0, 255, 0, 0}}};

/* Writes the INKS blocks with libjpeg as CMYK or YCCK. Adobe files store
 * inverted samples (255 = no ink); plain CMYK ones store ink amounts. */
static int write_cmyk_jpeg(const char *path, J_COLOR_SPACE space, int adobe)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr err;
    cinfo.err = jpeg_std_error(&err); /* errors here exit: test-only code */
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = JW;
    cinfo.image_height = JH;
    cinfo.input_components = 4;
    cinfo.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, space);
    cinfo.write_Adobe_marker = adobe ? TRUE : FALSE;
    jpeg_set_quality(&cinfo, 95, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    JSAMPLE row[JW * 4];
    while (cinfo.next_scanline < cinfo.image_height) {
        int r = (int)cinfo.next_scanline / BLOCK;
        for (int x = 0; x < JW; x++)
            for (int k = 0; k < 4; k++) {
                int ink = INKS[r][x / BLOCK][k];
                row[4 * x + k] = (JSAMPLE)(adobe ? 255 - ink : ink);
            }
        JSAMPROW rp = row;
        jpeg_write_scanlines(&cinfo, &rp, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return fclose(f) == 0;
}

static void test_cmyk_variants(void)
{
    const char *p = tmp_path("plain_cmyk.jpg");
    CHECK(write_cmyk_jpeg(p, JCS_CMYK, 0), "write %s", p);
    cz_image *img = load_jpeg(p, JW, JH, 3);
    if (img)
        check_blocks("CMYK without Adobe marker", img, 1, CMYK_RGB);
    cz_image_free(img);
    p = tmp_path("adobe_ycck.jpg");
    CHECK(write_cmyk_jpeg(p, JCS_YCCK, 1), "write %s", p);
    img = load_jpeg(p, JW, JH, 3);
    if (img)
        check_blocks("Adobe YCCK", img, 1, CMYK_RGB);
    cz_image_free(img);
}

/* color.jpg with an APP1 Exif segment (built here, big-endian "MM" TIFF)
 * inserted after SOI. */
static void write_with_exif(const char *path, const unsigned char *tiff, size_t tiff_len)
{
    size_t n = 0;
    unsigned char *jpg = read_all(FIXTURES "color.jpg", &n);
    CHECK(jpg && n > 2, "read color.jpg");
    if (!jpg)
        return;
    size_t seg = 2 + 6 + tiff_len;
    unsigned char *out = malloc(n + 2 + seg);
    size_t k = 0;
    out[k++] = 0xFF, out[k++] = 0xD8, out[k++] = 0xFF, out[k++] = 0xE1;
    out[k++] = (unsigned char)(seg >> 8), out[k++] = (unsigned char)seg;
    memcpy(out + k, "Exif\0\0", 6);
    k += 6;
    memcpy(out + k, tiff, tiff_len);
    k += tiff_len;
    memcpy(out + k, jpg + 2, n - 2);
    k += n - 2;
    CHECK(write_all(path, out, k), "write %s", path);
    free(out);
    free(jpg);
}

static void test_exif_variants(void)
{
    /* "MM", 42, IFD0 at 8: one entry, tag 0x0112 SHORT count 1 = v. */
    unsigned char tiff[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                            0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0};
    const char *p = tmp_path("exif3_mm.jpg");
    write_with_exif(p, tiff, sizeof tiff);
    cz_image *img = load_jpeg(p, JW, JH, 3);
    if (img)
        check_blocks("EXIF MM orientation 3", img, 3, BLOCKS);
    cz_image_free(img);

    tiff[19] = 8;
    p = tmp_path("exif8_mm.jpg");
    write_with_exif(p, tiff, sizeof tiff);
    img = load_jpeg(p, JH, JW, 3);
    if (img)
        check_blocks("EXIF MM orientation 8", img, 8, BLOCKS);
    cz_image_free(img);

    /* Damaged EXIF never costs the pixels: they load as stored. */
    unsigned char bad_ifd[sizeof tiff];
    memcpy(bad_ifd, tiff, sizeof tiff);
    bad_ifd[6] = 0xFF, bad_ifd[7] = 0xF0; /* IFD0 far past the segment */
    p = tmp_path("exif_bad_ifd.jpg");
    write_with_exif(p, bad_ifd, sizeof bad_ifd);
    img = load_jpeg(p, JW, JH, 3);
    if (img)
        check_blocks("EXIF with IFD0 out of bounds", img, 1, BLOCKS);
    cz_image_free(img);

    memcpy(bad_ifd, tiff, sizeof tiff);
    bad_ifd[9] = 200; /* 200 entries claimed, one present */
    bad_ifd[11] = 0x13; /* and it is not the orientation */
    p = tmp_path("exif_bad_count.jpg");
    write_with_exif(p, bad_ifd, 14); /* segment cut inside the first entry */
    img = load_jpeg(p, JW, JH, 3);
    if (img)
        check_blocks("EXIF cut short", img, 1, BLOCKS);
    cz_image_free(img);

    memcpy(bad_ifd, tiff, sizeof tiff);
    bad_ifd[19] = 9; /* not an orientation */
    p = tmp_path("exif_bad_value.jpg");
    write_with_exif(p, bad_ifd, sizeof bad_ifd);
    img = load_jpeg(p, JW, JH, 3);
    if (img)
        check_blocks("EXIF orientation 9", img, 1, BLOCKS);
    cz_image_free(img);
}

/* All eight orientations on a 3x2 image with 2 channels of 16 bits (so
 * pixels are 4 bytes), against the definitions written as pull mappings. */
static void test_orientation_unit(void)
{
    const int W = 3, H = 2;
    for (int o = 1; o <= 8; o++) {
        cz_image *img = cz_image_new(W, H, 2, 16);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                set_px(img, x, y, 0, (unsigned)(10 * y + x));
                set_px(img, x, y, 1, 1000u + (unsigned)(10 * y + x));
            }
        CHECK(cz_image_apply_orientation(&img, o, "unit") == CZ_OK, "%s", cz_last_error());
        int ow = o >= 5 ? H : W, oh = o >= 5 ? W : H;
        CHECK(img->width == ow && img->height == oh, "orientation %d: %dx%d", o,
              img->width, img->height);
        int bad = 0;
        for (int y = 0; y < oh && img->width == ow; y++)
            for (int x = 0; x < ow; x++) {
                int sx, sy; /* the source of output pixel (x, y) */
                switch (o) {
                case 1: sx = x; sy = y; break;
                case 2: sx = W - 1 - x; sy = y; break;
                case 3: sx = W - 1 - x; sy = H - 1 - y; break;
                case 4: sx = x; sy = H - 1 - y; break;
                case 5: sx = y; sy = x; break;
                case 6: sx = y; sy = H - 1 - x; break;
                case 7: sx = W - 1 - y; sy = H - 1 - x; break;
                default: sx = W - 1 - y; sy = x; break;
                }
                bad += px(img, x, y, 0) != (unsigned)(10 * sy + sx);
                bad += px(img, x, y, 1) != 1000u + (unsigned)(10 * sy + sx);
            }
        CHECK(bad == 0, "orientation %d: %d samples wrong", o, bad);
        cz_image_free(img);
    }
}

/* ---- Malformed corpus --------------------------------------------------- */

static uint32_t crc32_png(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Offset of the first chunk of this type in a PNG, or 0. */
static size_t png_chunk(const unsigned char *png, size_t n, const char *type)
{
    size_t off = 8;
    while (off + 12 <= n) {
        uint32_t len = (uint32_t)png[off] << 24 | (uint32_t)png[off + 1] << 16 |
                       (uint32_t)png[off + 2] << 8 | png[off + 3];
        if (memcmp(png + off + 4, type, 4) == 0)
            return off;
        off += 12 + (size_t)len;
    }
    return 0;
}

static void png_fix_crc(unsigned char *png, size_t chunk, uint32_t len)
{
    put_be32(png + chunk + 8 + len, crc32_png(png + chunk + 4, 4 + len));
}

/* Offset of the SOF marker (FFC0..FFC2) of a JPEG, or 0. */
static size_t jpeg_sof(const unsigned char *j, size_t n)
{
    size_t off = 2;
    while (off + 4 <= n && j[off] == 0xFF) {
        unsigned m = j[off + 1];
        if (m >= 0xC0 && m <= 0xC2)
            return off;
        if (m == 0xDA)
            return 0;
        off += 2 + ((size_t)j[off + 2] << 8 | j[off + 3]);
    }
    return 0;
}

static void test_malformed(void)
{
    size_t njpg = 0, nprog = 0, npng = 0;
    unsigned char *jpg = read_all(FIXTURES "color.jpg", &njpg);
    unsigned char *prog = read_all(FIXTURES "progressive.jpg", &nprog);
    unsigned char *png = read_all(FIXTURES "rgb16.png", &npng);
    CHECK(jpg && prog && png, "cannot read fixtures (run from the repo root)");
    if (!jpg || !prog || !png)
        goto done;

    const char *p = tmp_path("zero_length.png");
    write_all(p, "", 0);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("wrong_magic.jpg");
    write_all(p, "this is not an image\n", 21);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("gif.png");
    write_all(p, "GIF89a\1\0\1\0\0\0\0;", 14);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("one_byte.jpg");
    write_all(p, "\xFF", 1);
    expect_reject(p, CZ_ERR_FORMAT);

    /* Truncations: in the header, in the scan data, just before EOI. */
    p = tmp_path("trunc_header.jpg");
    write_all(p, jpg, 20);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("trunc_half.jpg");
    write_all(p, jpg, njpg / 2);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("trunc_half_progressive.jpg");
    write_all(p, prog, nprog / 2);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("trunc_no_eoi.jpg");
    write_all(p, jpg, njpg - 2);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("trunc_signature.png");
    write_all(p, png, 8);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("trunc_half.png");
    write_all(p, png, npng / 2);
    expect_reject(p, CZ_ERR_FORMAT);
    p = tmp_path("trunc_no_iend.png");
    write_all(p, png, npng - 12);
    expect_reject(p, CZ_ERR_FORMAT);

    /* Forged sizes. A JPEG side is 16 bits, so 65535x65535 is its worst. */
    size_t sof = jpeg_sof(jpg, njpg);
    CHECK(sof > 0, "no SOF in color.jpg");
    if (sof) {
        unsigned char *j = malloc(njpg);
        memcpy(j, jpg, njpg);
        j[sof + 5] = j[sof + 6] = j[sof + 7] = j[sof + 8] = 0xFF;
        p = tmp_path("huge_65535x65535.jpg"); /* libjpeg's own limit */
        write_all(p, j, njpg);
        expect_reject(p, CZ_ERR_TOO_LARGE);
        j[sof + 5] = j[sof + 7] = 0xFF;
        j[sof + 6] = j[sof + 8] = 0xDC;
        p = tmp_path("huge_65500x65500.jpg"); /* ours: 4.3 gigapixels */
        write_all(p, j, njpg);
        expect_reject(p, CZ_ERR_TOO_LARGE);
        CHECK(strstr(cz_last_error(), "exceeds the limit") != NULL, "%s", cz_last_error());
        j[sof + 5] = j[sof + 6] = 0;
        p = tmp_path("zero_height.jpg");
        write_all(p, j, njpg);
        expect_reject(p, CZ_ERR_FORMAT);
        free(j);
    }
    size_t ihdr = png_chunk(png, npng, "IHDR");
    CHECK(ihdr == 8, "IHDR at %zu", ihdr);
    unsigned char *q = malloc(npng);
    memcpy(q, png, npng);
    put_be32(q + 16, 100000), put_be32(q + 20, 100000);
    png_fix_crc(q, 8, 13);
    p = tmp_path("huge_100000x100000.png");
    write_all(p, q, npng);
    expect_reject(p, CZ_ERR_TOO_LARGE);
    put_be32(q + 16, 0);
    png_fix_crc(q, 8, 13);
    p = tmp_path("zero_width.png");
    write_all(p, q, npng);
    expect_reject(p, CZ_ERR_FORMAT);

    /* A wrong CRC on IHDR; garbage inside IDAT with a right CRC. */
    memcpy(q, png, npng);
    q[8 + 8 + 13] ^= 0x55;
    p = tmp_path("bad_crc.png");
    write_all(p, q, npng);
    expect_reject(p, CZ_ERR_FORMAT);
    memcpy(q, png, npng);
    size_t idat = png_chunk(q, npng, "IDAT");
    CHECK(idat > 0, "no IDAT");
    if (idat) {
        uint32_t len = (uint32_t)q[idat] << 24 | (uint32_t)q[idat + 1] << 16 |
                       (uint32_t)q[idat + 2] << 8 | q[idat + 3];
        for (uint32_t i = 2; i < len; i += 3)
            q[idat + 8 + i] ^= 0xA5;
        png_fix_crc(q, idat, len);
        p = tmp_path("corrupt_idat.png");
        write_all(p, q, npng);
        expect_reject(p, CZ_ERR_FORMAT);
    }
    free(q);

    /* Not files at all. */
    expect_reject(tmp_path("does_not_exist.png"), CZ_ERR_IO);
    p = tmp_path("a_directory.jpg");
    mkdir(p, 0700);
    expect_reject(p, CZ_ERR_IO);
    rmdir(p);

    /* Bad arguments. */
    cz_image *img = NULL;
    CHECK(cz_image_load(NULL, NULL, &img) == CZ_ERR_INVALID && !img, "NULL path");
    CHECK(cz_image_load(FIXTURES "rgb8.png", NULL, NULL) == CZ_ERR_INVALID, "NULL out");
done:
    free(jpg);
    free(prog);
    free(png);
}

static void test_pixel_limit(void)
{
    static const struct {
        const char *path;
        uint64_t pixels;
    } cases[] = {{FIXTURES "rgb8.png", PW * PH}, {FIXTURES "color.jpg", JW * JH}};
    for (size_t i = 0; i < 2; i++) {
        cz_image_options opt = {.max_pixels = cases[i].pixels - 1};
        cz_image *img = NULL;
        cz_status s = cz_image_load(cases[i].path, &opt, &img);
        CHECK(s == CZ_ERR_TOO_LARGE && !img, "%s under a limit of %llu: %s",
              cases[i].path, (unsigned long long)opt.max_pixels, cz_strerror(s));
        CHECK(strstr(cz_last_error(), cases[i].path) != NULL, "message: %s", cz_last_error());
        opt.max_pixels = cases[i].pixels;
        s = cz_image_load(cases[i].path, &opt, &img);
        CHECK(s == CZ_OK && img, "%s at exactly the limit: %s", cases[i].path, cz_last_error());
        cz_image_free(img);
    }
    /* Raising the limit lets a forged header past our check; the codec
     * then finds the file's data does not match it. */
    size_t n = 0;
    unsigned char *jpg = read_all(FIXTURES "color.jpg", &n);
    size_t sof = jpg ? jpeg_sof(jpg, n) : 0;
    if (sof) {
        jpg[sof + 5] = 0x10, jpg[sof + 6] = 0x00; /* height 4096: 256 Ki pixels */
        const char *p = tmp_path("tall.jpg");
        write_all(p, jpg, n);
        expect_reject(p, CZ_ERR_FORMAT); /* data runs out: truncated */
        cz_image_options opt = {.max_pixels = 1000};
        cz_image *img = NULL;
        CHECK(cz_image_load(p, &opt, &img) == CZ_ERR_TOO_LARGE, "tall.jpg over 1000 px");
    }
    free(jpg);
    CHECK(CZ_IMAGE_DEFAULT_MAX_PIXELS == 100000000ULL, "default is 100 megapixels");
}

/* ---- Sniffing ----------------------------------------------------------- */

static void test_sniff(void)
{
    CHECK(cz_image_sniff(FIXTURES "color.jpg") == CZ_IMAGE_JPEG, "color.jpg");
    CHECK(cz_image_sniff(FIXTURES "gray1.png") == CZ_IMAGE_PNG, "gray1.png");
    /* Magic, not extension: a PNG named .jpg is a PNG. */
    size_t n = 0;
    unsigned char *png = read_all(FIXTURES "rgb8.png", &n);
    const char *p = tmp_path("really_a_png.jpg");
    if (png)
        write_all(p, png, n);
    free(png);
    CHECK(cz_image_sniff(p) == CZ_IMAGE_PNG, "PNG named .jpg");
    cz_image *img = load_ok(p);
    CHECK(img && img->channels == 3, "PNG named .jpg loads as PNG");
    cz_image_free(img);
    CHECK(cz_image_is_supported_path(p), "is_supported_path on a PNG");

    p = tmp_path("notes.txt");
    write_all(p, "hello\n", 6);
    CHECK(cz_image_sniff(p) == CZ_IMAGE_UNKNOWN, "text file");
    CHECK(strstr(cz_last_error(), p) != NULL, "sniff message names the file: %s", cz_last_error());
    CHECK(!cz_image_is_supported_path(p), "text is not supported");
    p = tmp_path("empty.jpg");
    write_all(p, "", 0);
    CHECK(!cz_image_is_supported_path(p), "empty file is not supported");
    CHECK(!cz_image_is_supported_path(tmp_path("missing.png")), "missing file");
    CHECK(!cz_image_is_supported_path(NULL), "NULL path");
}

/* ---- Saving ------------------------------------------------------------- */

static cz_image *pattern_image(int w, int h, int channels, int depth)
{
    cz_image *img = cz_image_new(w, h, channels, depth);
    for (int y = 0; img && y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                set_px(img, x, y, c, pattern(x, y, c, depth));
    return img;
}

/* Smooth colours, which JPEG keeps well: gradients plus a slow wave. */
static cz_image *smooth_image(int w, int h, int channels, int depth)
{
    cz_image *img = cz_image_new(w, h, channels, depth);
    unsigned full = depth == 8 ? 255u : 65535u;
    for (int y = 0; img && y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                double t = c == 0 ? (double)x / (w - 1)
                         : c == 1 ? (double)y / (h - 1)
                         : c == 2 ? 0.5 + 0.4 * sin((x + y) / 9.0)
                                  : (double)(x ^ y) / 64.0;
                set_px(img, x, y, c, (unsigned)(t * full + 0.5));
            }
    return img;
}

/* Names in tmpdir that look like our temporary files. */
static int count_temp_files(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        n += e->d_name[0] == '.' && len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0;
    }
    if (d)
        closedir(d);
    return n;
}

static void test_png_round_trip(void)
{
    for (int depth = 8; depth <= 16; depth += 8)
        for (int ch = 1; ch <= 4; ch++) {
            cz_image *img = pattern_image(13, 7, ch, depth);
            char name[64];
            snprintf(name, sizeof name, "rt_%dch_%d.%s", ch, depth, ch == 3 ? "PNG" : "png");
            const char *p = tmp_path(name);
            CHECK(cz_image_save(p, img, 0) == CZ_OK, "%s", cz_last_error());
            cz_image *back = load_ok(p);
            CHECK(back && back->width == 13 && back->height == 7 && back->channels == ch &&
                  back->depth == depth, "%s: shape changed", name);
            if (back && back->channels == ch && back->depth == depth)
                CHECK(memcmp(img->data, back->data, image_bytes(img)) == 0,
                      "%s: samples changed", name);
            cz_image_free(back);
            cz_image_free(img);
        }
    CHECK(count_temp_files() == 0, "temporary files left after saving");

    /* The saved file gets the permissions of a plain fopen: 0666 & ~umask. */
    mode_t old = umask(027);
    cz_image *img = pattern_image(3, 3, 1, 8);
    const char *p = tmp_path("mode.png");
    CHECK(cz_image_save(p, img, 0) == CZ_OK, "%s", cz_last_error());
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640, "mode %o, want 640",
          (unsigned)(st.st_mode & 0777));
    umask(old);
    cz_image_free(img);
}

/* Sampling factors of the first component in a JPEG's SOF (0x11 = 4:4:4). */
static int jpeg_luma_sampling(const char *path)
{
    size_t n = 0;
    unsigned char *j = read_all(path, &n);
    size_t sof = j ? jpeg_sof(j, n) : 0;
    int v = sof && sof + 12 < n ? j[sof + 11] : -1;
    free(j);
    return v;
}

static void test_jpeg_round_trip(void)
{
    static const struct {
        int channels, depth, quality;
        const char *name;
        int tol;
    } cases[] = {
        {3, 8, 95, "rt_rgb.jpg", 6},     {1, 8, 95, "rt_gray.jpeg", 3},
        {4, 8, 95, "rt_rgba.JPG", 6},    {3, 16, 95, "rt_rgb16.jpg", 6},
        {2, 8, 90, "rt_graya.jpg", 3},   {3, 8, 75, "rt_rgb_q75.jpg", 24},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cz_image *img = smooth_image(64, 48, cases[i].channels, cases[i].depth);
        const char *p = tmp_path(cases[i].name);
        CHECK(cz_image_save(p, img, cases[i].quality) == CZ_OK, "%s", cz_last_error());
        cz_image *back = load_ok(p);
        int want_ch = cases[i].channels <= 2 ? 1 : 3; /* alpha dropped */
        if (back && back->channels == want_ch && back->depth == 8 &&
            back->width == 64 && back->height == 48) {
            int worst = 0;
            for (int y = 0; y < 48; y++)
                for (int x = 0; x < 64; x++)
                    for (int c = 0; c < want_ch; c++) {
                        int v = (int)px(img, x, y, c);
                        if (cases[i].depth == 16)
                            v = (v * 255 + 32767) / 65535;
                        int d = abs((int)px(back, x, y, c) - v);
                        worst = d > worst ? d : worst;
                    }
            CHECK(worst <= cases[i].tol, "%s: off by up to %d", cases[i].name, worst);
        } else {
            CHECK(0, "%s: came back as %dx%d %dch %dbit", cases[i].name,
                  back ? back->width : 0, back ? back->height : 0,
                  back ? back->channels : 0, back ? back->depth : 0);
        }
        if (want_ch == 3) {
            int s = jpeg_luma_sampling(p);
            int want = cases[i].quality >= 90 ? 0x11 : 0x22;
            CHECK(s == want, "%s: luma sampling %#x, want %#x", cases[i].name, s, want);
        }
        cz_image_free(back);
        cz_image_free(img);
    }
    /* Alpha is dropped before encoding: RGBA and gray + alpha give the very
     * pixels their colour alone gives (each reaches libjpeg another way). */
    for (int alpha_ch = 2; alpha_ch <= 4; alpha_ch += 2) {
        cz_image *with = smooth_image(37, 29, alpha_ch, 8);
        cz_image *without = cz_image_new(37, 29, alpha_ch - 1, 8);
        if (!with || !without)
            abort();
        for (size_t i = 0; i < 37 * 29; i++)
            for (int c = 0; c < alpha_ch - 1; c++)
                ((uint8_t *)without->data)[i * (size_t)(alpha_ch - 1) + (size_t)c] =
                    ((uint8_t *)with->data)[i * (size_t)alpha_ch + (size_t)c];
        const char *pa = tmp_path("alpha.jpg"), *pb = tmp_path("no_alpha.jpg");
        CHECK(cz_image_save(pa, with, 95) == CZ_OK, "%s", cz_last_error());
        CHECK(cz_image_save(pb, without, 95) == CZ_OK, "%s", cz_last_error());
        cz_image *a = load_ok(pa), *b = load_ok(pb);
        CHECK(a && b && a->channels == b->channels &&
                  memcmp(a->data, b->data, 37 * 29 * (size_t)a->channels) == 0,
              "%d channels: saving with alpha changes the pixels", alpha_ch);
        cz_image_free(a), cz_image_free(b);
        cz_image_free(with), cz_image_free(without);
    }

    cz_image *img = smooth_image(8, 8, 3, 8);
    for (int q = -1; q <= 101; q += 102) {
        const char *p = tmp_path("bad_quality.jpg");
        CHECK(cz_image_save(p, img, q) == CZ_ERR_INVALID, "quality %d accepted", q);
        CHECK(strstr(cz_last_error(), p) != NULL, "message: %s", cz_last_error());
        CHECK(access(p, F_OK) != 0, "file created despite bad quality");
    }
    cz_image_free(img);
}

static void test_save_errors(void)
{
    cz_image *img = pattern_image(5, 4, 3, 8);

    /* Unknown or missing extension. */
    const char *names[] = {"out.gif", "out", "out.png.bak", "dir.png/"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *p = tmp_path(names[i]);
        CHECK(cz_image_save(p, img, 90) == CZ_ERR_INVALID, "%s accepted", names[i]);
        CHECK(strstr(cz_last_error(), p) != NULL, "message: %s", cz_last_error());
        CHECK(access(p, F_OK) != 0, "%s created", names[i]);
    }
    /* A directory that does not exist. */
    const char *p = tmp_path("no_such_dir/out.png");
    CHECK(cz_image_save(p, img, 90) == CZ_ERR_IO, "save into a missing directory");
    CHECK(strstr(cz_last_error(), p) != NULL, "message: %s", cz_last_error());
    printf("  refused: %s\n", cz_last_error());

    /* The rename fails (the destination is a directory) after a complete
     * write: the temporary file must go. */
    p = tmp_path("occupied.png");
    mkdir(p, 0700);
    CHECK(cz_image_save(p, img, 90) == CZ_ERR_IO, "save over a directory");
    CHECK(strstr(cz_last_error(), p) != NULL, "message: %s", cz_last_error());
    printf("  refused: %s\n", cz_last_error());
    CHECK(count_temp_files() == 0, "temporary file left after a failed rename");
    rmdir(p);

    /* Writing fails half-way (the file size limit stands in for a full
     * disk): the old file stays whole and no temporary file remains. */
    static const char *targets[] = {"keep.png", "keep.jpg"};
    cz_image *big = pattern_image(300, 200, 3, 8); /* noise: ~180 KB either way */
    for (size_t i = 0; i < 2; i++) {
        p = tmp_path(targets[i]);
        CHECK(cz_image_save(p, img, 90) == CZ_OK, "%s", cz_last_error());
        size_t before_n = 0, after_n = 0;
        unsigned char *before = read_all(p, &before_n);
        struct rlimit old, lim;
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 4096;
        void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
        CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit: %s", strerror(errno));
        cz_status s = cz_image_save(p, big, 90);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, old_handler);
        CHECK(s == CZ_ERR_IO, "%s: write past the size limit gave %s", targets[i], cz_strerror(s));
        CHECK(strstr(cz_last_error(), p) != NULL, "message: %s", cz_last_error());
        printf("  refused: %s\n", cz_last_error());
        unsigned char *after = read_all(p, &after_n);
        CHECK(before && after && before_n == after_n && memcmp(before, after, after_n) == 0,
              "%s: destination changed by a failed save", targets[i]);
        CHECK(count_temp_files() == 0, "%s: temporary file left after a failed write", targets[i]);
        free(before);
        free(after);
    }
    cz_image_free(big);

    /* Invalid images. */
    cz_image bad = *img;
    bad.channels = 5;
    CHECK(cz_image_save(tmp_path("bad.png"), &bad, 90) == CZ_ERR_INVALID, "5 channels");
    bad = *img;
    bad.data = NULL;
    CHECK(cz_image_save(tmp_path("bad.png"), &bad, 90) == CZ_ERR_INVALID, "no data");
    CHECK(cz_image_save(tmp_path("bad.png"), NULL, 90) == CZ_ERR_INVALID, "NULL image");
    CHECK(cz_image_save(NULL, img, 90) == CZ_ERR_INVALID, "NULL path");
    CHECK(access(tmp_path("bad.png"), F_OK) != 0, "bad.png created");
    cz_image_free(img);
}

/* RGBA in, recoloured through Lab, out: alpha survives untouched. */
static void test_alpha_pass_through(void)
{
    const char *names[] = {FIXTURES "rgba8.png", FIXTURES "rgba16.png"};
    for (int i = 0; i < 2; i++) {
        cz_image *img = load_ok(names[i]);
        if (!img)
            continue;
        size_t n = (size_t)img->width * img->height;
        float *L = malloc(n * sizeof *L), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        CHECK(cz_image_to_lab_planes(img, L, a, b) == CZ_OK, "%s", cz_last_error());
        for (size_t k = 0; k < n; k++)
            a[k] = b[k] = 0.0f; /* a gray recolouring */
        CHECK(cz_lab_planes_to_image(L, a, b, img) == CZ_OK, "%s", cz_last_error());
        const char *p = tmp_path(i ? "alpha16.png" : "alpha8.png");
        CHECK(cz_image_save(p, img, 0) == CZ_OK, "%s", cz_last_error());
        cz_image *back = load_ok(p);
        int bad_alpha = 0, colored = 0;
        int bits = img->depth;
        for (int y = 0; back && y < PH; y++)
            for (int x = 0; x < PW; x++) {
                bad_alpha += px(back, x, y, 3) != pattern(x, y, 3, bits);
                /* Neutral within rounding. skimage's matrix rows do not sum
                 * exactly to its white point, so even skimage's lab2rgb of
                 * a*=b*=0 spreads R, G, B by up to 1e-4 x 65535 = 2.6 codes
                 * at 16 bits (0.01 at 8 bits); allow 3. */
                unsigned r = px(back, x, y, 0), g = px(back, x, y, 1), bl = px(back, x, y, 2);
                unsigned hi = r > g ? (r > bl ? r : bl) : (g > bl ? g : bl);
                unsigned lo = r < g ? (r < bl ? r : bl) : (g < bl ? g : bl);
                colored += hi - lo > (bits == 16 ? 3u : 0u);
            }
        CHECK(back && back->channels == 4 && bad_alpha == 0, "%s: %d alpha samples changed",
              names[i], bad_alpha);
        CHECK(colored == 0, "%s: %d pixels not gray after a*=b*=0", names[i], colored);
        cz_image_free(back);
        cz_image_free(img);
        free(L);
        free(a);
        free(b);
    }
}

static void test_image_new(void)
{
    CHECK(cz_image_new(INT_MAX, INT_MAX, 4, 16) == NULL, "overflowing size accepted");
    CHECK(cz_image_new(0, 5, 3, 8) == NULL, "zero width accepted");
    CHECK(cz_image_new(5, -1, 3, 8) == NULL, "negative height accepted");
    CHECK(cz_image_new(5, 5, 5, 8) == NULL, "5 channels accepted");
    CHECK(cz_image_new(5, 5, 3, 12) == NULL, "12 bits accepted");
    size_t row = 0, total = 0;
    CHECK(cz_image_size(7, 5, 3, 16, &row, &total) && row == 42 && total == 210,
          "size of 7x5 RGB16: %zu, %zu", row, total);
    CHECK(!cz_image_size(INT_MAX, INT_MAX, 4, 16, &row, &total),
          "2^65 bytes reported as a valid size");
    cz_image *img = cz_image_new(3, 2, 4, 16);
    CHECK(img && img->width == 3 && img->height == 2 && img->channels == 4 &&
          img->depth == 16 && img->data, "cz_image_new(3, 2, 4, 16)");
    int zero = 1;
    for (size_t i = 0; img && i < 3 * 2 * 4; i++)
        zero &= ((uint16_t *)img->data)[i] == 0;
    CHECK(zero, "new image not zeroed");
    cz_image_free(img);
    cz_image_free(NULL);
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        const char *p = tmp_path(e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return EXIT_FAILURE;
    }
    test_image_new();
    test_png_fixtures();
    test_jpeg_fixtures();
    test_exif_variants();
    test_cmyk_variants();
    test_orientation_unit();
    printf("malformed corpus:\n");
    test_malformed();
    test_pixel_limit();
    test_sniff();
    test_png_round_trip();
    test_jpeg_round_trip();
    printf("failed saves:\n");
    test_save_errors();
    test_alpha_pass_through();
    remove_tmpdir();
    return check_finish("test_image");
}
