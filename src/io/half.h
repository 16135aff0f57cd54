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

uint16_t cz_f32_to_bf16(float f);
/* Inline: the engine's elementwise loops widen bf16 values as they go, and
 * vectorise only if they can see this. */
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
