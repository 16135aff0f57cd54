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
 *   finish.agreement=K       the average's a*b* times (|mean| / mean |each|)^K,
 *                            the predictions' agreement (1 where they share
 *                            a hue): colours the views disagree on, such as
 *                            a halo cyan at one size and yellow at another,
 *                            average to a third colour of their own; this
 *                            fades it to gray instead; default 0, none.
 *   finish.guided_radius=R   a guided filter (He, Sun & Tang 2010) on a*
 *                            and b* with L* as the guide, radius R: colour
 *                            edges snap to lightness edges instead of
 *                            bleeding across them.
 *   finish.chroma_gain=G     a*b* times G, given back the colour the
 *                            averages and the fade above take
 *                            (models/README.md says how the built-in
 *                            model's was chosen).
 */
#ifndef CZ_PIPELINE_FINISH_H
#define CZ_PIPELINE_FINISH_H

#include <stdbool.h>
#include <stddef.h>

#include "colorize.h"
#include "models/model.h"

#define CZ_FINISH_MAX_SCALES CZ_MAX_SIDES

typedef struct {
    int n_scales;
    float scales[CZ_FINISH_MAX_SCALES];
    bool mirror;
    float agreement;   /* 0: none */
    int guided_radius; /* 0: none */
    float chroma_gain; /* 1: none */
} cz_finish;

#define CZ_FINISH_MAX_RADIUS 32

/* Reads m's finish.* settings; CZ_ERR_FORMAT naming path for a bad value. */
cz_status cz_finish_read(const cz_model *m, const char *path, cz_finish *f);

/* The side the network runs at for scale s of network size N: s * N
 * rounded to the nearest multiple of CZ_SIZE_MULTIPLE, at least that. */
int cz_finish_side(float scale, int N);

/* Scales ab's two planes of n values by (|ab| / chroma)^k, chroma being
 * the mean of the predictions' |a*b*| that ab is the mean of. */
void cz_finish_agreement(float *ab, const float *chroma, size_t n, float k);

/* Guided filter of ab's two N x N planes (in place) by guide, radius r. */
cz_status cz_finish_guided(const float *guide, float *ab, int N, int r);

#endif
