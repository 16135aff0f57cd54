/* The photos of a Turing test, rendered once and held in memory.
 *
 * Real photos and colourisations are paired by file name without extension
 * ("cat.jpg" in the real folder with "cat.png" in a method's folder). Every
 * photo goes through the same path, so neither side of a pair looks
 * different for reasons other than its colours: load, take the centred
 * square, convert to CIELab, resize each plane bilinearly to 256x256, back to
 * sRGB, JPEG at a fixed quality. The vigilance copy of a real photo rotates
 * its a*b* plane by a random angle far from zero (an obviously wrong hue at
 * the same lightness and chroma). */
#ifndef CZ_TURING_PHOTOS_H
#define CZ_TURING_PHOTOS_H

#include <stddef.h>
#include <stdint.h>

#include "turing/turing.h"

#define CZ_TURING_SIDE 256         /* displayed size, pixels */
#define CZ_TURING_MAX_PHOTOS 4096  /* per folder: everything stays in memory */

typedef struct {
    unsigned char *data; /* a JPEG file */
    size_t size;
} cz_turing_blob;

typedef struct {
    int n;                     /* real photos */
    char **names;              /* their stems, sorted (strcmp) */
    cz_turing_blob *real;      /* [n] */
    cz_turing_blob *vigilance; /* [n] hue-rotated copies */
    unsigned char *colourful;  /* [n] 1 if the photo has enough chroma for a
                                  hue rotation to be visible */
    int n_methods;
    char **method_names;       /* [n_methods] */
    cz_turing_blob *method;    /* [n_methods * n]; size 0: method lacks photo */
    int *method_count;         /* [n_methods] photos each method has */
} cz_turing_photos;

/* Loads the real folder and each method's folder. seed draws the vigilance
 * hues. Fails if a folder cannot be read, holds no photo, holds two photos
 * with the same stem or too many photos, if a method matches no real photo,
 * or if any photo cannot be decoded. */
cz_status cz_turing_photos_load(const char *real_dir,
                                const cz_turing_method *methods,
                                int n_methods, uint64_t seed,
                                cz_turing_photos **out);

void cz_turing_photos_free(cz_turing_photos *ph);

/* Index of a stem, or -1. */
int cz_turing_photos_find(const cz_turing_photos *ph, const char *name);

/* Index of a method, or -1. */
int cz_turing_photos_method(const cz_turing_photos *ph, const char *name);

#endif
