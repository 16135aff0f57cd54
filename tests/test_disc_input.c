/* What D sees: without transforms, (L, a, b) stacked as they are; with
 * DiffAugment's, every pixel either a shifted source pixel or zero, as the
 * transform says; the gradient taken back is the transpose (<T x, y> =
 * <x, T' y> for random x, y); and transforms drawn over many samples cover
 * the whole range of shifts and cut places. */
#include <stdbool.h>
#include <stdlib.h>

#include "check.h"
#include "train/disc_input.h"

#define N 3
#define S 32
#define PLANE (S * S)

static float L[N * PLANE], ab[2 * N * PLANE], d_in[3 * N * PLANE];

static void fill_random(cz_rng *rng, float *x, long n)
{
    for (long i = 0; i < n; i++)
        x[i] = 2 * cz_rng_uniform(rng) - 1;
}

static void test_plain_stack(void)
{
    cz_disc_input_fill(NULL, N, S, L, ab, d_in);
    int wrong = 0;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < PLANE; i++)
            wrong += d_in[(3 * n) * PLANE + i] != L[n * PLANE + i] ||
                     d_in[(3 * n + 1) * PLANE + i] != ab[(2 * n) * PLANE + i] ||
                     d_in[(3 * n + 2) * PLANE + i] != ab[(2 * n + 1) * PLANE + i];
    CHECK(wrong == 0, "%d values of the plain stack are wrong", wrong);
}

/* The pixel (y, x) of sample n's channel c, by the transform's definition. */
static float expected(const cz_disc_transform *t, int n, int c, int y, int x)
{
    int sy = y - t->dy, sx = x - t->dx;
    bool cut = y >= t->cut_y && y < t->cut_y + t->cut && x >= t->cut_x && x < t->cut_x + t->cut;
    if (sy < 0 || sy >= S || sx < 0 || sx >= S || cut)
        return 0;
    return c == 0 ? L[n * PLANE + sy * S + sx] : ab[(2 * n + c - 1) * PLANE + sy * S + sx];
}

static void test_transforms(cz_rng *rng)
{
    cz_disc_transform t[N];
    for (int round = 0; round < 50; round++) {
        cz_disc_transform_draw(rng, S, N, t);
        if (round == 0) /* a cut square reaching past the left and top edges */
            t[0] = (cz_disc_transform){.dy = 3, .dx = -4, .cut_y = -5, .cut_x = -7, .cut = S / 2};
        cz_disc_input_fill(t, N, S, L, ab, d_in);
        int wrong = 0, zeros = 0;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < S; y++)
                    for (int x = 0; x < S; x++) {
                        float e = expected(&t[n], n, c, y, x);
                        wrong += d_in[(3 * n + c) * PLANE + y * S + x] != e;
                        zeros += e == 0;
                    }
        CHECK(wrong == 0, "round %d: %d values differ from the transforms' definition", round, wrong);
        CHECK(zeros > 0, "round %d: nothing was shifted in or cut out", round);

        /* Transpose: <T ab, g> over the a*b* channels = <ab, T' g>. */
        static float g[3 * N * PLANE], back[2 * N * PLANE];
        fill_random(rng, g, 3 * N * PLANE);
        for (int i = 0; i < 2 * N * PLANE; i++)
            back[i] = 0.5f; /* backward adds */
        cz_disc_input_backward(t, N, S, g, back);
        double lhs = 0, rhs = 0;
        for (int n = 0; n < N; n++)
            for (int c = 1; c < 3; c++)
                for (int i = 0; i < PLANE; i++)
                    lhs += (double)d_in[(3 * n + c) * PLANE + i] * g[(3 * n + c) * PLANE + i];
        for (int i = 0; i < 2 * N * PLANE; i++)
            rhs += (double)ab[i] * (back[i] - 0.5f);
        CHECK(fabs(lhs - rhs) < 1e-9 * (1 + fabs(lhs)), "round %d: <T x, y> %.12g != <x, T' y> %.12g", round,
              lhs, rhs);
    }
}

static void test_draw_range(cz_rng *rng)
{
    enum { DRAWS = 4000 };
    static cz_disc_transform t[DRAWS];
    cz_disc_transform_draw(rng, S, DRAWS, t);
    int min_dy = S, max_dy = -S, min_cut = S, max_cut = -S, bad = 0;
    for (int i = 0; i < DRAWS; i++) {
        min_dy = t[i].dy < min_dy ? t[i].dy : min_dy;
        max_dy = t[i].dy > max_dy ? t[i].dy : max_dy;
        min_cut = t[i].cut_x < min_cut ? t[i].cut_x : min_cut;
        max_cut = t[i].cut_x > max_cut ? t[i].cut_x : max_cut;
        bad += abs(t[i].dx) > S / 8 || t[i].cut != S / 2 || t[i].cut_y < -S / 4 || t[i].cut_y > S - S / 4;
    }
    CHECK(bad == 0, "%d transforms out of range", bad);
    CHECK(min_dy == -S / 8 && max_dy == S / 8, "shifts span [%d, %d], not +-%d", min_dy, max_dy, S / 8);
    CHECK(min_cut == -S / 4 && max_cut == S - S / 4, "cut squares start in [%d, %d], not [%d, %d]", min_cut,
          max_cut, -S / 4, S - S / 4);
}

int main(void)
{
    cz_rng rng;
    cz_rng_seed(&rng, 5);
    fill_random(&rng, L, N * PLANE);
    fill_random(&rng, ab, 2 * N * PLANE);
    test_plain_stack();
    test_transforms(&rng);
    test_draw_range(&rng);
    return check_finish("test_disc_input");
}
