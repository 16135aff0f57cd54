/* Helpers shared by the tests of the colourising path (test_pipeline.c,
 * test_cli.c, test_memory.c, test_readme_example.c): a tiny random-weight
 * generator, synthetic photos, temporary folders, files, and running a
 * command with its output captured. */
#ifndef CZ_TESTS_PIPELINE_UTIL_H
#define CZ_TESTS_PIPELINE_UTIL_H

#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "colorize.h"
#include "colorize_path.h"
#include "models/model.h"

/* The tiny generator: pix2pix's unet at an eighth of its width, so a test
 * runs the real architecture at its real size (256) in milliseconds, with
 * weights N(0, 0.02) as pix2pix initialises them. Such weights predict
 * almost no colour, which would test nothing; so the last layer's weights
 * are multiplied by TINY_GAIN, which drives the tanh output towards +-1:
 * vivid colours, many outside the sRGB gamut, as a half-trained network
 * may well give. */
enum { TINY_WIDTH = 8, TINY_SIZE = 256 };
#define TINY_GAIN 400.0f

static inline int make_tiny_model(const char *path, const char *arch, uint64_t seed)
{
    cz_model_spec spec = {.width = TINY_WIDTH, .size = TINY_SIZE};
    snprintf(spec.arch, sizeof spec.arch, "%s", arch);
    cz_model *m = NULL;
    cz_status s = cz_model_new(&spec, seed, &m);
    for (int i = s == CZ_OK ? cz_model_n_tensors(m) - 1 : -1; i >= 0; i--) {
        cz_model_tensor *t = cz_model_tensor_at(m, i);
        if (t->ndim != 4 || t->buffer)
            continue;
        int64_t n = t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3];
        for (int64_t k = 0; k < n; k++)
            t->data[k] *= TINY_GAIN;
        break;
    }
    if (s == CZ_OK)
        s = cz_model_save(m, path, NULL);
    cz_model_free(m);
    if (s != CZ_OK)
        fprintf(stderr, "cannot make the %s model %s: %s\n", arch, path,
                cz_last_error());
    return s == CZ_OK ? 0 : -1;
}

/* A deterministic hash of (x, y, c, seed) in [0, 2^32). */
static inline uint32_t util_hash(uint32_t x, uint32_t y, uint32_t c, uint32_t seed)
{
    uint32_t h = (x * 73856093u) ^ (y * 19349663u) ^ (c * 83492791u) ^ (seed * 2654435761u);
    h ^= h >> 13;
    h *= 0x5BD1E995u;
    h ^= h >> 15;
    return h;
}

/* A photo-like test image: smooth gradients over the whole range with some
 * noise and hard edges, so every sample value occurs and the network sees
 * structure. Alpha, where present, is a pattern of its own. */
static inline cz_image *pattern_image(int W, int H, int C, int depth, uint32_t seed)
{
    cz_image *img = cz_image_new(W, H, C, depth);
    if (!img)
        return NULL;
    const double full = depth == 8 ? 255.0 : 65535.0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                double v;
                if ((C == 2 || C == 4) && c == C - 1)
                    v = (double)(util_hash((uint32_t)x, (uint32_t)y, 7, seed) >> 8) / 16777216.0;
                else {
                    double gx = (double)x / (W > 1 ? W - 1 : 1);
                    double gy = (double)y / (H > 1 ? H - 1 : 1);
                    double noise = (double)(util_hash((uint32_t)x, (uint32_t)y, (uint32_t)c, seed) >> 8) / 16777216.0;
                    v = 0.45 * gx + 0.3 * (c % 2 ? 1.0 - gy : gy) + 0.25 * noise;
                    if (((x / 37) + (y / 23)) % 5 == 0)
                        v = 1.0 - v; /* hard edges */
                }
                double s = v * full + 0.5;
                size_t k = ((size_t)y * (size_t)W + (size_t)x) * (size_t)C + (size_t)c;
                if (depth == 8)
                    ((uint8_t *)img->data)[k] = (uint8_t)(s > full ? full : s);
                else
                    ((uint16_t *)img->data)[k] = (uint16_t)(s > full ? full : s);
            }
    return img;
}

static inline char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    if (n)
        *n = len;
    return buf;
}

static inline int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) == 0 && put == n ? 0 : -1;
}

static inline int util_remove(const char *path, const struct stat *st, int flag,
                       struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* rm -rf path */
static inline void remove_tree(const char *path)
{
    nftw(path, util_remove, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs cmd through the shell with stdout and stderr captured into malloc'd
 * strings (either pointer may be NULL); returns the exit status, or -1 if
 * it did not exit normally (a crash under the sanitizers included). */
static inline int run_capture(const char *tmpdir, const char *cmd, char **out, char **err)
{
    size_t cap = 2 * strlen(tmpdir) + strlen(cmd) + 64;
    char *o = malloc(cap), *e = malloc(cap), *full = malloc(3 * cap);
    if (!o || !e || !full) {
        free(o), free(e), free(full);
        return -1;
    }
    snprintf(o, cap, "%s/.stdout", tmpdir);
    snprintf(e, cap, "%s/.stderr", tmpdir);
    snprintf(full, 3 * cap, "%s >%s 2>%s", cmd, o, e);
    int st = system(full);
    free(full);
    char *so = read_file(o, NULL), *se = read_file(e, NULL);
    remove(o);
    remove(e);
    free(o);
    free(e);
    /* A sanitizer's report exits with status 1, which `colorize` also uses:
     * tell them apart by the report. */
    bool sanitizer = se && (strstr(se, "Sanitizer") || strstr(se, "runtime error:"));
    if (sanitizer)
        fprintf(stderr, "%s: sanitizer report:\n%s\n", cmd, se);
    if (out)
        *out = so;
    else
        free(so);
    if (err)
        *err = se;
    else
        free(se);
    return st != -1 && WIFEXITED(st) && !sanitizer ? WEXITSTATUS(st) : -1;
}

#endif
