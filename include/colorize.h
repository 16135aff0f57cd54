/*
 * colorize: grayscale photographs to colour, with a conditional GAN.
 *
 * This is the whole public interface. Images are decoded with libjpeg-turbo
 * and libpng, converted to CIELab, and the network predicts the a*b* channels
 * from L*. Every call that can fail returns a cz_status; on failure,
 * cz_last_error() holds a sentence that names the file or argument at fault
 * (per thread, valid until the next failing call). The library never exits
 * or aborts on bad input.
 */
#ifndef COLORIZE_H
#define COLORIZE_H

#include <stddef.h>
#include <stdint.h>

#define COLORIZE_VERSION "0.1.0"

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

#endif
