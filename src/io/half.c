#include "io/half.h"

#include <string.h>

/* Bit patterns move through memcpy: type punning through pointers is
 * undefined, and compilers turn these copies into plain register moves. */
static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* f16 limits expressed as fp32 bit patterns of magnitudes. */
#define F32_INF 0x7f800000u
#define F16_OVERFLOW 0x477ff000u  /* 65520: halfway between the largest f16,
                                     65504 (odd mantissa), and 2^16, so it and
                                     everything above rounds to infinity */
#define F16_MIN_NORMAL 0x38800000u /* 2^-14 */
#define F16_HALF_MIN_SUB 0x33000000u /* 2^-25: half the smallest subnormal; a
                                        tie that rounds to even, i.e. zero */

uint16_t cz_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;

    if (a > F32_INF)
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x03ffu));
    if (a >= F16_OVERFLOW)
        return (uint16_t)(sign | 0x7c00u);
    if (a >= F16_MIN_NORMAL) {
        /* Rebias the exponent (127 -> 15) and drop 13 mantissa bits with
         * round-to-nearest-even; a carry into the exponent is correct. */
        a -= (127u - 15u) << 23;
        a += 0x0fffu + ((a >> 13) & 1u);
        return (uint16_t)(sign | (a >> 13));
    }
    if (a <= F16_HALF_MIN_SUB)
        return sign;
    /* Subnormal result: the value in units of 2^-24 is the full 24-bit
     * significand shifted right by 14..24 places; round that shift to
     * nearest even. Rounding up out of the top subnormal yields 0x0400, the
     * encoding of the smallest normal, which is the right answer. */
    uint32_t m = (a & 0x007fffffu) | 0x00800000u;
    unsigned shift = 126u - (a >> 23);
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return (uint16_t)(sign | q);
}

float cz_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x03ffu;

    if (exp == 0x1fu)
        return bits_f32(sign | F32_INF | (mant << 13));
    if (exp != 0)
        return bits_f32(sign | ((exp + 127u - 15u) << 23) | (mant << 13));
    if (mant == 0)
        return bits_f32(sign);
    /* Subnormal: normalise, since every f16 subnormal is an fp32 normal. */
    uint32_t e = 127u - 14u;
    while (!(mant & 0x0400u)) {
        mant <<= 1;
        e--;
    }
    return bits_f32(sign | (e << 23) | ((mant & 0x03ffu) << 13));
}
