/*
 * How a model's a*b* are finished after the network, at the network's size,
 * as its file says (metadata, `colorize pack --meta`; none by default):
 *
 *   finish.scales=S1,S2,...  run the network at each of these multiples of
 *                            the network size (rounded to a multiple of
 *                            32) and average the predictions, resized to
 *                            the network size: colours that change with
 *                            the scale of the picture, as guesses do, fade
 *                            and those that stay put remain; default 1.
 *   finish.mirror=1          also colour the mirror image and average the
 *                            two predictions: colours the network is unsure
 *                            of, which flip with the picture, fade; the
 *                            network runs twice.
 *   finish.guided_radius=R   a guided filter (He, Sun & Tang 2010) on a*
 *                            and b* with L* as the guide, radius R: colour
 *                            edges snap to lightness edges instead of
 *                            bleeding across them.
 *   finish.chroma_gain=G     a*b* times G, given back the colour the two
 *                            averages above take (models/README.md says how
 *                            the built-in model's was chosen).
 */
#ifndef CZ_PIPELINE_FINISH_H
#define CZ_PIPELINE_FINISH_H

#include <stdbool.h>

#include "colorize.h"
#include "models/model.h"

#define CZ_FINISH_MAX_SCALES CZ_MAX_SIDES

typedef struct {
    int n_scales;
    float scales[CZ_FINISH_MAX_SCALES];
    bool mirror;
    int guided_radius; /* 0: none */
    float chroma_gain; /* 1: none */
} cz_finish;

#define CZ_FINISH_MAX_RADIUS 32

/* Reads m's finish.* settings; CZ_ERR_FORMAT naming path for a bad value. */
cz_status cz_finish_read(const cz_model *m, const char *path, cz_finish *f);

/* The side the network runs at for scale s of network size N: s * N
 * rounded to the nearest multiple of CZ_SIZE_MULTIPLE, at least that. */
int cz_finish_side(float scale, int N);

/* Guided filter of ab's two N x N planes (in place) by guide, radius r. */
cz_status cz_finish_guided(const float *guide, float *ab, int N, int r);

#endif
