/* The a*b* plane in bins (lab.h): 10 x 10 cells centred on multiples of 10,
 * kept where the cell holds a displayable colour at some lightness. */
#include "image/lab.h"
#include "image/lab_pixel.h"

/* Whether a*b* is inside the sRGB gamut at some L* (tried in steps of 1). */
static bool displayable(float a, float b)
{
    for (float L = 0.5f; L < 100.0f; L += 1.0f) {
        float r, g, bl;
        lab_to_linear_rgb(L, a, b, &r, &g, &bl);
        if (r >= 0.0f && r <= 1.0f && g >= 0.0f && g <= 1.0f && bl >= 0.0f && bl <= 1.0f)
            return true;
    }
    return false;
}

int cz_ab_bins(float (*centres)[2])
{
    const int half = CZ_AB_BIN_STEP / 2;
    int n = 0;
    for (int a = -CZ_AB_BIN_REACH; a <= CZ_AB_BIN_REACH; a += CZ_AB_BIN_STEP)
        for (int b = -CZ_AB_BIN_REACH; b <= CZ_AB_BIN_REACH; b += CZ_AB_BIN_STEP) {
            /* The centre, the corners and the edges' midpoints of the cell. */
            bool keep = false;
            for (int da = -half; da <= half && !keep; da += half)
                for (int db = -half; db <= half && !keep; db += half)
                    keep = displayable((float)(a + da), (float)(b + db));
            if (keep && centres) {
                centres[n][0] = (float)a;
                centres[n][1] = (float)b;
            }
            n += keep;
        }
    return n;
}
