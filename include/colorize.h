/*
 * colorize: grayscale photographs to colour, with a conditional GAN.
 *
 * This is the whole public interface. Images are decoded with libjpeg-turbo
 * and libpng, converted to CIELab, and the network predicts the a*b* channels
 * from L*. Every call that can fail returns a cz_status; on failure,
 * cz_last_error() holds a sentence that names the file or argument at fault
 * (per thread, valid until the next failing call). The library never exits
 * or aborts on bad input.
 *
 * Colouring a photo takes four calls:
 *
 *     cz_colorizer *cz;     load a model file once
 *     cz_colorizer_load("model.safetensors", NULL, &cz);
 *     cz_image *gray, *color;
 *     cz_image_load("old.jpg", NULL, &gray);
 *     cz_colorize_image(cz, gray, &color);
 *     cz_image_save("new.jpg", color, 95);
 *
 * then cz_image_free each image and cz_colorizer_free the colorizer (the
 * README has the same example with its error handling, compiled by a test).
 *
 * What cz_colorize_image does: it takes L* of the photo at full resolution
 * (colour photos are reduced to their L* first), shows the network a copy
 * resized to size x size, finishes the a*b* the network predicts as the
 * model file asks (the built-in model: predicted at two other sizes and
 * averaged, with the mirror image's too, smoothed along L*'s edges, and
 * made more saturated; src/pipeline/finish.h),
 * upsamples them bilinearly back to the photo's size, and recombines it with the ORIGINAL L*, so every
 * detail and the exact lightness of the input survive whatever the network's
 * resolution. Colours the sRGB gamut cannot show at that lightness are
 * desaturated towards gray at the same L* rather than clipped, so the output's
 * L* equals the input's within the rounding of its samples.
 */
#ifndef COLORIZE_H
#define COLORIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COLORIZE_VERSION "0.1.0"

/* ---- Status codes ------------------------------------------------------ */

typedef enum {
    CZ_OK = 0,
    CZ_ERR_NOMEM,     /* an allocation failed */
    CZ_ERR_IO,        /* a file could not be opened, read or written */
    CZ_ERR_FORMAT,    /* a file is corrupt, truncated or of an unsupported kind */
    CZ_ERR_TOO_LARGE, /* a size exceeds a limit or overflows */
    CZ_ERR_INVALID,   /* a bad argument or option */
    CZ_ERR_BACKEND,   /* oneDNN refused or failed an operation */
    CZ_ERR_NUMERIC,   /* a NaN or infinity appeared */
} cz_status;

/* A short, constant description of a status code. */
const char *cz_strerror(cz_status status);

/* The detailed message of the last failure in this thread ("" if none). */
const char *cz_last_error(void);

/* ---- Images ------------------------------------------------------------ */

/* A plain block of interleaved samples, rows one after another with no
 * padding. Fill one yourself or get one from cz_image_new / cz_image_load. */
typedef struct {
    int width, height;
    int channels; /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    int depth;    /* bits per sample: 8 (uint8_t) or 16 (uint16_t, host order) */
    void *data;   /* interleaved rows, no padding */
} cz_image;

/* Default for cz_image_options.max_pixels: 100 megapixels, about 6x a
 * 24-megapixel scan, yet small enough that a forged header cannot make us
 * allocate gigabytes. */
#define CZ_IMAGE_DEFAULT_MAX_PIXELS 100000000ULL

/* Options for cz_image_load; a zeroed struct (or NULL) means the defaults. */
typedef struct {
    uint64_t max_pixels; /* width*height above this is refused; 0 = default */
} cz_image_options;

/* A zeroed image of the given shape, or NULL (with cz_last_error() set). */
cz_image *cz_image_new(int width, int height, int channels, int depth);

/* Frees the image and its samples; NULL is a no-op. */
void cz_image_free(cz_image *img);

/* Loads a JPEG or PNG file (recognised by its first bytes, not its name),
 * turned upright by its EXIF orientation; 16-bit PNGs stay 16-bit. opt may
 * be NULL. On failure *out is NULL. */
cz_status cz_image_load(const char *path, const cz_image_options *opt,
                        cz_image **out);

/* Writes a JPEG (quality 1..100; alpha dropped) or PNG (lossless, alpha and
 * 16 bits kept) according to the extension. The file is replaced atomically:
 * on failure the destination is untouched and nothing is left behind. */
cz_status cz_image_save(const char *path, const cz_image *img,
                        int jpeg_quality);

/* ---- Colourising ------------------------------------------------------- */

/* A loaded generator with its inference graph; not safe to use from two
 * threads at once (use one colorizer per thread). */
typedef struct cz_colorizer cz_colorizer;

/* Network resolutions are multiples of CZ_SIZE_MULTIPLE (the ResNet50
 * encoders halve the image five times) up to CZ_MAX_SIZE. */
#define CZ_SIZE_MULTIPLE 32
#define CZ_MAX_SIZE 4096
/* The most network sizes one photo is predicted at (a model's finish). */
#define CZ_MAX_SIDES 4

/* The precision of the network's convolutions. bf16 is faster on CPUs
 * with native bfloat16 (AVX512-BF16, AMX); its colours differ from fp32's
 * by a fraction of a CIEDE2000 unit (README, Performance). */
typedef enum {
    CZ_PRECISION_AUTO = 0, /* bf16 where the CPU has native bfloat16, else fp32 */
    CZ_PRECISION_FP32,
    CZ_PRECISION_BF16,
} cz_precision_choice;

/* Options for cz_colorizer_load; a zeroed struct (or NULL) means the
 * defaults. */
typedef struct {
    int size;                      /* side of the square the network sees, a
                                      multiple of 32; 0 = the size the model
                                      was trained at (a finish with scales
                                      runs it at multiples of this) */
    cz_precision_choice precision; /* default CZ_PRECISION_AUTO */
    bool fast;                     /* the network once, at size, without the
                                      finish the model file asks for */
} cz_colorizer_options;

/* Whether this CPU runs bfloat16 natively (what CZ_PRECISION_AUTO picks). */
bool cz_cpu_has_bf16(void);

/* The built-in model's file: $COLORIZE_MODEL if set, else the one `make
 * model` unpacks from models/default.safetensors into the source tree's
 * cache/models/ (the path is compiled in). */
const char *cz_default_model_path(void);

/* Loads a generator from a model file (safetensors, as written by training)
 * and builds its inference graph at the chosen size. model_path NULL means
 * the built-in model (CZ_ERR_IO naming the path if it is not installed).
 * Fails with CZ_ERR_IO / CZ_ERR_FORMAT naming the file if it
 * is unreadable, truncated, corrupt, of the wrong architecture (a
 * discriminator, say), or lacks a tensor or has one of the wrong shape;
 * CZ_ERR_INVALID for a size the architecture cannot take. */
cz_status cz_colorizer_load(const char *model_path,
                            const cz_colorizer_options *opt,
                            cz_colorizer **out);

/* Frees the colorizer; NULL is a no-op. */
void cz_colorizer_free(cz_colorizer *cz);

/* Colours in (any channel count, depth 8 or 16, any size) into a new image
 * *out of the same size and depth: RGB, or RGBA carrying in's alpha
 * unchanged when in has alpha. On failure *out is NULL. Memory: besides in
 * and *out, 4 bytes per pixel (the L* plane) and a few megabytes. */
cz_status cz_colorize_image(cz_colorizer *cz, const cz_image *in,
                            cz_image **out);

/* What a colorizer runs. */
typedef struct {
    const char *arch;  /* "unet", "resnet50-paper" or "resnet50-unet"; valid
                          while the colorizer lives */
    int size;          /* side of the square a*b* are predicted on */
    int trained_size;  /* side it was trained at */
    bool bf16;         /* precision of its convolutions */
    long params;       /* learnable values */
    /* How its a*b* are finished, as the model file asks: the network run at
     * each of n_sides sides (size alone unless the file asks for several)
     * and the predictions averaged, with the mirror image's too, faded
     * where they disagree (agreement, the exponent; 0 none),
     * guided-filtered along L* (radius, 0 none), scaled. */
    int n_sides;
    int sides[CZ_MAX_SIDES];
    bool mirror;
    float agreement;
    int guided_radius;
    float chroma_gain;
} cz_colorizer_info;

void cz_colorizer_get_info(const cz_colorizer *cz, cz_colorizer_info *info);

#endif
