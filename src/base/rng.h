/* A small, fast, seedable random generator (xoshiro256**, seeded through
 * splitmix64). Its whole state is four words, so checkpoints save and restore
 * it exactly, and every random draw in colorize goes through one of these. */
#ifndef CZ_BASE_RNG_H
#define CZ_BASE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} cz_rng;

void cz_rng_seed(cz_rng *rng, uint64_t seed);
uint64_t cz_rng_next(cz_rng *rng);
/* Uniform in [0, 1) with 24 random bits, exactly representable as float. */
float cz_rng_uniform(cz_rng *rng);
/* Standard normal (Box-Muller; uses two uniforms per call, no cached spare,
 * so the state alone determines the sequence). */
float cz_rng_normal(cz_rng *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t cz_rng_below(cz_rng *rng, uint64_t n);

#endif
