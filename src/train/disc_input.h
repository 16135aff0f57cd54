/*
 * What the discriminator sees: a photo's L and an a*b* (real or G's) as
 * three channels, and the way D's input gradient goes back to G's a*b*.
 *
 * Optionally each sample is first put through DiffAugment (Zhao et al.,
 * "Differentiable Augmentation for Data-Efficient GAN Training", 2020, its
 * "translation,cutout" policy): shifted by up to 1/8 of the side (the edge
 * filled with zeros) and with a square of half the side cut out (zeros).
 * Real and fake inputs get fresh transforms at every pass, so on a few
 * thousand photos D cannot memorise the real ones; the transform is linear,
 * and its transpose carries D's gradient back to G. Colour transforms of the
 * paper's policy are left out: here colour is what D judges.
 */
#ifndef CZ_TRAIN_DISC_INPUT_H
#define CZ_TRAIN_DISC_INPUT_H

#include <stdint.h>

#include "base/rng.h"

/* One sample's transform: D's pixel (y, x) shows the source pixel
 * (y - dy, x - dx), or zero outside the source or inside the square of side
 * `cut` whose top-left corner is (cut_y, cut_x) (it may reach past an edge).
 * cut = 0 and dy = dx = 0 is the identity. */
typedef struct {
    int dy, dx;
    int cut_y, cut_x, cut;
} cz_disc_transform;

/* Draws n transforms for size x size inputs. */
void cz_disc_transform_draw(cz_rng *rng, int size, int64_t n, cz_disc_transform *t);

/* d_in (n x 3 x size x size) = the transformed (L, a, b) of each sample;
 * L is n x 1, ab n x 2 planes. t may be NULL: no transform. */
void cz_disc_input_fill(const cz_disc_transform *t, int64_t n, int size, const float *L,
                        const float *ab, float *d_in);

/* ab_grad += the a*b* part of d_in_grad taken back through the transforms
 * (their transpose). */
void cz_disc_input_backward(const cz_disc_transform *t, int64_t n, int size, const float *d_in_grad,
                            float *ab_grad);

#endif
