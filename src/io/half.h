/* Scalar conversions between fp32 and the two 16-bit float formats that model
 * files and the bf16 engine use.
 *
 *   bf16: 1 sign, 8 exponent, 7 mantissa bits (the top half of an fp32).
 *   f16:  IEEE 754 binary16, 1 sign, 5 exponent, 10 mantissa bits.
 *
 * Narrowing rounds to nearest, ties to even, as PyTorch and numpy do, so a
 * tensor converted here is bit-identical to one converted by them. Values too
 * large for f16 become infinity of the same sign, values too small become
 * subnormals or signed zero. A NaN stays a NaN (quiet, same sign, the top
 * payload bits kept) and never rounds into an infinity. Widening is exact for
 * every input, subnormals, infinities and NaNs included. */
#ifndef CZ_IO_HALF_H
#define CZ_IO_HALF_H

#include <stdint.h>
#include <string.h>

/* Both inline: the engine's elementwise loops convert values as they go,
 * and vectorise only if they can see these. */
static inline uint16_t cz_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    /* Adding 0x7fff plus the lowest kept bit rounds to nearest even; a carry
     * out of the mantissa correctly bumps the exponent, up to infinity. */
    uint16_t rounded = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    /* A NaN is forced quiet: a payload held only in the low half would
     * otherwise read as infinity. Both are computed, then one is chosen, so
     * that a loop of these vectorises. */
    uint16_t nan = (uint16_t)((u >> 16) | 0x0040u);
    return (u & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
}

static inline float cz_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
uint16_t cz_f32_to_f16(float f);
float cz_f16_to_f32(uint16_t h);

#endif
