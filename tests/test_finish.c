/* The finishing of a model's a*b* (src/pipeline/finish.c): the guided
 * filter against a direct evaluation of He et al.'s formulas in double;
 * the finish.* metadata read, and bad values refused naming the file and
 * the key; the agreement fade on chosen predictions; and through the
 * colorizer, mirror averaging makes colouring commute with mirroring the
 * photo, which the network alone does not, multi-size prediction runs each
 * side, and the agreement fade changes nothing for one prediction and only
 * takes colour away from several. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "image/lab.h"
#include "pipeline/finish.h"
#include "pipeline_util.h"

#define N 13
#define EPS 1e-5 /* finish.c's regularisation */

static int reflect(int i)
{
    return i < 0 ? -i - 1 : i >= N ? 2 * N - i - 1 : i;
}

/* The mean of v over the (2r+1)^2 window at (y, x), edges reflected. */
static double window_mean(const double *v, int y, int x, int r)
{
    double sum = 0;
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            sum += v[reflect(y + dy) * N + reflect(x + dx)];
    return sum / ((2 * r + 1) * (2 * r + 1));
}

static void test_guided(int r)
{
    cz_rng rng;
    cz_rng_seed(&rng, (uint64_t)r);
    float guide[N * N], ab[2 * N * N], in[2 * N * N];
    for (int i = 0; i < N * N; i++) /* two flat regions and noise: edges to keep */
        guide[i] = (i % N < 6 ? 0.2f : 0.8f) + 0.05f * cz_rng_uniform(&rng);
    for (int i = 0; i < 2 * N * N; i++)
        in[i] = ab[i] = 100 * cz_rng_uniform(&rng) - 50;
    CHECK(cz_finish_guided(guide, ab, N, r) == CZ_OK, "%s", cz_last_error());

    double I[N * N], II[N * N], a[N * N], b[N * N], p[N * N], Ip[N * N];
    for (int i = 0; i < N * N; i++)
        I[i] = guide[i], II[i] = I[i] * I[i];
    double worst = 0;
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < N * N; i++)
            p[i] = in[c * N * N + i], Ip[i] = I[i] * p[i];
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++) {
                double mI = window_mean(I, y, x, r), mp = window_mean(p, y, x, r);
                double var = window_mean(II, y, x, r) - mI * mI;
                a[y * N + x] = (window_mean(Ip, y, x, r) - mI * mp) / (var + EPS);
                b[y * N + x] = mp - a[y * N + x] * mI;
            }
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++) {
                double q = window_mean(a, y, x, r) * I[y * N + x] + window_mean(b, y, x, r);
                worst = fmax(worst, fabs(q - ab[c * N * N + y * N + x]));
            }
    }
    /* float: var(I) is a difference of near squares, and 1 / (var + eps)
     * scales its rounding up; an 8-bit level is about 0.4 a*b* units. */
    CHECK(worst < 0.05, "radius %d: guided filter off the direct one by %.3g (a*b* units)", r, worst);
    printf("guided filter, radius %d: %.3g a*b* units from the direct one in double\n", r, worst);
}

/* Two predictions per pixel, averaged, faded by their agreement. */
static void test_agreement_math(void)
{
    enum { n = 4 };
    /* opposite hues, one hue, hues at right angles, no colour */
    const float first[n][2] = {{10, 0}, {10, 0}, {10, 0}, {0, 0}};
    const float second[n][2] = {{-10, 0}, {10, 0}, {0, 10}, {0, 0}};
    const float want[n][2] = {{0, 0}, {10, 0}, {2.5f, 2.5f}, {0, 0}};
    float ab[2 * n], chroma[n];
    for (int i = 0; i < n; i++) {
        ab[i] = (first[i][0] + second[i][0]) / 2;
        ab[n + i] = (first[i][1] + second[i][1]) / 2;
        chroma[i] = (hypotf(first[i][0], first[i][1]) + hypotf(second[i][0], second[i][1])) / 2;
    }
    /* right angles: |(5, 5)| / 10 = 0.707, squared 0.5 */
    cz_finish_agreement(ab, chroma, n, 2.0f);
    for (int i = 0; i < n; i++)
        CHECK(fabsf(ab[i] - want[i][0]) < 1e-5f && fabsf(ab[n + i] - want[i][1]) < 1e-5f,
              "pixel %d: faded to (%g, %g), want (%g, %g)", i, ab[i], ab[n + i], want[i][0], want[i][1]);
}

/* A tiny generator with these finish.* settings (NULL: none). */
static void save_model(const char *path, const char *const *meta)
{
    CHECK(make_tiny_model(path, "unet", 3) == 0, "tiny model");
    cz_model *m = NULL;
    CHECK(cz_model_load(path, &m) == CZ_OK, "%s", cz_last_error());
    if (m)
        CHECK(cz_model_save(m, path, meta) == CZ_OK, "%s", cz_last_error());
    cz_model_free(m);
}

static void test_metadata(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/meta.safetensors", dir);
    const char *good[] = {"finish.mirror", "1", "finish.guided_radius", "3", "finish.chroma_gain", "1.25",
                          "finish.scales", "0.5,1.3", "finish.agreement", "1.5", NULL};
    save_model(path, good);
    cz_model *m = NULL;
    CHECK(cz_model_load_header(path, &m) == CZ_OK, "%s", cz_last_error());
    cz_finish f = {0};
    CHECK(m && cz_finish_read(m, path, &f) == CZ_OK && f.mirror && f.guided_radius == 3 && f.chroma_gain == 1.25f,
          "read back: mirror %d, radius %d, gain %g", f.mirror, f.guided_radius, f.chroma_gain);
    CHECK(f.n_scales == 2 && f.scales[0] == 0.5f && f.scales[1] == 1.3f, "read back %d scales: %g, %g",
          f.n_scales, f.scales[0], f.scales[1]);
    CHECK(f.agreement == 1.5f, "read back agreement %g", f.agreement);
    cz_model_free(m);
    cz_colorizer *cz = NULL;
    CHECK(cz_colorizer_load(path, NULL, &cz) == CZ_OK, "%s", cz_last_error());
    if (cz) {
        cz_colorizer_info info;
        cz_colorizer_get_info(cz, &info);
        CHECK(info.mirror && info.guided_radius == 3 && info.chroma_gain == 1.25f && info.agreement == 1.5f,
              "the colorizer reports mirror %d, radius %d, gain %g, agreement %g", info.mirror,
              info.guided_radius, info.chroma_gain, info.agreement);
        /* 0.5 x 256 and 1.3 x 256 = 332.8, to the nearest multiple of 32 */
        CHECK(info.size == TINY_SIZE && info.n_sides == 2 && info.sides[0] == 128 && info.sides[1] == 320,
              "the colorizer reports a*b* at %d from %d sides: %d, %d", info.size, info.n_sides, info.sides[0],
              info.sides[1]);
    }
    cz_colorizer_free(cz);
    CHECK(cz_finish_side(0.7f, 224) == 160 && cz_finish_side(1.6f, 224) == 352 && cz_finish_side(0.25f, 32) == 32,
          "sides: %d, %d, %d", cz_finish_side(0.7f, 224), cz_finish_side(1.6f, 224), cz_finish_side(0.25f, 32));

    const char *bad[][2] = {{"finish.mirror", "2"}, {"finish.mirror", "0.5"}, {"finish.guided_radius", "-1"},
                            {"finish.guided_radius", "100"}, {"finish.chroma_gain", "0"},
                            {"finish.chroma_gain", "1.2x"}, {"finish.chroma_gain", "nan"},
                            {"finish.scales", ""}, {"finish.scales", "1,"}, {"finish.scales", ",1"},
                            {"finish.scales", "0.1"}, {"finish.scales", "1;2"}, {"finish.scales", "1,1,1,1,1"},
                            {"finish.scales", "big"}, {"finish.agreement", "-1"}, {"finish.agreement", "5"},
                            {"finish.agreement", "one"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *meta[] = {bad[i][0], bad[i][1], NULL};
        save_model(path, meta);
        cz_colorizer *cz = NULL;
        cz_status s = cz_colorizer_load(path, NULL, &cz);
        CHECK(s == CZ_ERR_FORMAT && !cz && strstr(cz_last_error(), path) && strstr(cz_last_error(), bad[i][0]),
              "%s=%s: status %d: %s", bad[i][0], bad[i][1], (int)s, cz_last_error());
        cz_colorizer_free(cz);
    }
}

/* The largest difference between colouring the mirror image and mirroring
 * the colours, in 8-bit levels. */
static int mirror_gap(const char *model)
{
    cz_image *photo = cz_image_new(TINY_SIZE, TINY_SIZE, 1, 8), *flipped = cz_image_new(TINY_SIZE, TINY_SIZE, 1, 8);
    uint8_t *p = photo->data, *q = flipped->data;
    for (int y = 0; y < TINY_SIZE; y++)
        for (int x = 0; x < TINY_SIZE; x++) {
            p[y * TINY_SIZE + x] = (uint8_t)(x < 90 ? 40u + (uint32_t)y / 2 : util_hash((uint32_t)x / 16, (uint32_t)y / 16, 0, 7) % 200 + 30);
            q[y * TINY_SIZE + TINY_SIZE - 1 - x] = p[y * TINY_SIZE + x];
        }
    cz_colorizer *cz = NULL;
    cz_image *a = NULL, *b = NULL;
    int gap = -1;
    CHECK(cz_colorizer_load(model, NULL, &cz) == CZ_OK, "%s", cz_last_error());
    if (cz && cz_colorize_image(cz, photo, &a) == CZ_OK && cz_colorize_image(cz, flipped, &b) == CZ_OK) {
        const uint8_t *u = a->data, *v = b->data;
        gap = 0;
        for (int y = 0; y < TINY_SIZE; y++)
            for (int x = 0; x < TINY_SIZE; x++)
                for (int c = 0; c < 3; c++) {
                    int d = abs(u[3 * (y * TINY_SIZE + x) + c] - v[3 * (y * TINY_SIZE + TINY_SIZE - 1 - x) + c]);
                    gap = d > gap ? d : gap;
                }
    }
    CHECK(gap >= 0, "colouring failed: %s", cz_last_error());
    cz_image_free(a);
    cz_image_free(b);
    cz_image_free(photo);
    cz_image_free(flipped);
    cz_colorizer_free(cz);
    return gap;
}

static void test_mirror(const char *dir)
{
    char plain[600], mirrored[600];
    snprintf(plain, sizeof plain, "%s/plain.safetensors", dir);
    snprintf(mirrored, sizeof mirrored, "%s/mirrored.safetensors", dir);
    save_model(plain, NULL);
    const char *meta[] = {"finish.mirror", "1", "finish.guided_radius", "2", "finish.chroma_gain", "1.1", NULL};
    save_model(mirrored, meta);
    int without = mirror_gap(plain), with = mirror_gap(mirrored);
    printf("colour of the mirror image against the mirrored colours: %d levels apart without "
           "mirror averaging, %d with\n", without, with);
    CHECK(without > 10, "the network alone already commutes with mirroring (%d levels): the check "
          "below would test nothing", without);
    CHECK(with >= 0 && with <= 1, "with mirror averaging, %d levels apart", with);
}

/* Colours a photo of TINY_SIZE with model at network size (0: its own),
 * fast: without its finish. */
static cz_image *colour(const char *model, int size, bool fast)
{
    cz_image *photo = cz_image_new(TINY_SIZE, TINY_SIZE, 1, 8), *out = NULL;
    uint8_t *p = photo->data;
    for (int i = 0; i < TINY_SIZE * TINY_SIZE; i++)
        p[i] = (uint8_t)(util_hash((uint32_t)(i % TINY_SIZE) / 16, (uint32_t)(i / TINY_SIZE) / 16, 0, 3) % 200 + 30);
    cz_colorizer_options opt = {.size = size, .fast = fast};
    cz_colorizer *cz = NULL;
    CHECK(cz_colorizer_load(model, &opt, &cz) == CZ_OK, "%s: %s", model, cz_last_error());
    if (cz)
        CHECK(cz_colorize_image(cz, photo, &out) == CZ_OK, "%s: %s", model, cz_last_error());
    cz_colorizer_free(cz);
    cz_image_free(photo);
    return out;
}

/* The largest difference between two colourings, in 8-bit levels. */
static int levels_apart(const cz_image *a, const cz_image *b)
{
    if (!a || !b)
        return -1;
    int gap = 0;
    for (size_t i = 0; i < (size_t)TINY_SIZE * TINY_SIZE * 3; i++) {
        int d = abs(((const uint8_t *)a->data)[i] - ((const uint8_t *)b->data)[i]);
        gap = d > gap ? d : gap;
    }
    return gap;
}

/* A model with finish.scales=S, saved under dir. */
static void save_scaled(char *path, size_t cap, const char *dir, const char *scales)
{
    snprintf(path, cap, "%s/scales-%s.safetensors", dir, scales);
    const char *meta[] = {"finish.scales", scales, NULL};
    save_model(path, meta);
}

static void test_scales(const char *dir)
{
    char plain[600], one[600], twice[600], larger[600], both[600];
    snprintf(plain, sizeof plain, "%s/plain.safetensors", dir);
    save_model(plain, NULL);
    save_scaled(one, sizeof one, dir, "1");
    save_scaled(twice, sizeof twice, dir, "1,1");
    save_scaled(larger, sizeof larger, dir, "1.25");
    save_scaled(both, sizeof both, dir, "0.5,1.25");
    cz_image *at_256 = colour(plain, 0, false), *at_128 = colour(plain, 128, false);
    cz_image *at_320 = colour(plain, 320, false), *with_one = colour(one, 0, false);
    cz_image *with_twice = colour(twice, 0, false), *with_larger = colour(larger, 0, false);
    cz_image *with_both = colour(both, 0, false), *fast = colour(both, 0, true);

    /* Averaging a prediction with itself changes nothing. */
    CHECK(levels_apart(with_one, at_256) == 0 && levels_apart(with_twice, at_256) == 0,
          "scale 1: %d levels from the network alone; 1,1: %d", levels_apart(with_one, at_256),
          levels_apart(with_twice, at_256));
    /* 1.25 x 256 = 320: the network at 320, resized to 256, as the network
     * at 320 is recombined with a photo of 256. */
    int gap = levels_apart(with_larger, at_320), moved = levels_apart(at_320, at_256);
    CHECK(gap >= 0 && gap <= 1, "scale 1.25: %d levels from the network at 320", gap);
    CHECK(moved > 10, "the network at 320 colours as at 256 (%d levels): the check above tests nothing", moved);
    /* Two sides: neither alone. */
    int from_small = levels_apart(with_both, at_128), from_large = levels_apart(with_both, at_320);
    printf("scales 0.5,1.25: %d levels from the network at 128 alone, %d from 320 alone\n", from_small,
           from_large);
    CHECK(from_small > 5 && from_large > 5, "scales 0.5,1.25 use one side only: %d and %d levels from each",
          from_small, from_large);
    /* Sides past the largest the network takes are refused at load. */
    cz_colorizer_options huge = {.size = CZ_MAX_SIZE};
    cz_colorizer *cz = NULL;
    cz_status st = cz_colorizer_load(larger, &huge, &cz);
    CHECK(st == CZ_ERR_INVALID && !cz && strstr(cz_last_error(), larger) && strstr(cz_last_error(), "finish.scales"),
          "scale 1.25 at %d: status %d: %s", CZ_MAX_SIZE, (int)st, cz_last_error());
    cz_colorizer_free(cz);
    /* fast: the network once at 256, whatever the file asks. */
    CHECK(levels_apart(fast, at_256) == 0, "fast: %d levels from the network alone", levels_apart(fast, at_256));
    cz_image *all[] = {at_256, at_128, at_320, with_one, with_twice, with_larger, with_both, fast};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        cz_image_free(all[i]);
}

/* The chroma of each of img's TINY_SIZE x TINY_SIZE pixels (malloc'd). */
static double *chroma_of(const cz_image *img)
{
    const size_t n = (size_t)TINY_SIZE * TINY_SIZE;
    float *lab = malloc(3 * n * sizeof *lab);
    double *c = malloc(n * sizeof *c);
    CHECK(lab && c && cz_image_to_lab_planes(img, lab, lab + n, lab + 2 * n) == CZ_OK, "to Lab");
    for (size_t i = 0; lab && c && i < n; i++)
        c[i] = hypot(lab[n + i], lab[2 * n + i]);
    free(lab);
    return c;
}

static void test_agreement(const char *dir)
{
    char plain[600], single[600], mirrored[600], faded[600];
    snprintf(plain, sizeof plain, "%s/plain.safetensors", dir);
    snprintf(single, sizeof single, "%s/single-faded.safetensors", dir);
    snprintf(mirrored, sizeof mirrored, "%s/mirrored.safetensors", dir);
    snprintf(faded, sizeof faded, "%s/mirrored-faded.safetensors", dir);
    save_model(plain, NULL);
    const char *one[] = {"finish.agreement", "1", NULL};
    const char *two[] = {"finish.mirror", "1", NULL};
    const char *two_faded[] = {"finish.mirror", "1", "finish.agreement", "1", NULL};
    save_model(single, one);
    save_model(mirrored, two);
    save_model(faded, two_faded);
    cz_image *at_256 = colour(plain, 0, false), *with_single = colour(single, 0, false);
    cz_image *with_mirror = colour(mirrored, 0, false), *with_faded = colour(faded, 0, false);
    /* One prediction agrees with itself. */
    CHECK(levels_apart(with_single, at_256) == 0, "agreement with one prediction: %d levels from the network alone",
          levels_apart(with_single, at_256));
    if (with_mirror && with_faded) {
        double *c0 = chroma_of(with_mirror), *c1 = chroma_of(with_faded);
        double before = 0, after = 0, above = 0;
        const size_t n = (size_t)TINY_SIZE * TINY_SIZE;
        for (size_t i = 0; c0 && c1 && i < n; i++) {
            before += c0[i] / (double)n;
            after += c1[i] / (double)n;
            above = fmax(above, c1[i] - c0[i]);
        }
        free(c0);
        free(c1);
        printf("agreement over a photo and its mirror image: mean chroma %.2f -> %.2f, no pixel more than "
               "%.2f above\n", before, after, above);
        CHECK(after < 0.95 * before, "the fade took little colour: mean chroma %.2f -> %.2f", before, after);
        /* 8-bit rounding of the output moves chroma by about a unit */
        CHECK(above < 1.5, "the fade added colour: a pixel's chroma rose by %.2f", above);
    }
    /* The fade is as symmetric as the average, and starts afresh for each
     * photo of a colorizer. */
    int gap = mirror_gap(faded);
    CHECK(gap >= 0 && gap <= 1, "with mirror averaging and the fade, %d levels apart", gap);
    cz_image *all[] = {at_256, with_single, with_mirror, with_faded};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        cz_image_free(all[i]);
}

int main(void)
{
    test_guided(1);
    test_guided(2);
    test_guided(5);
    test_agreement_math();
    char dir[] = "/tmp/cz_test_finish_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    test_metadata(dir);
    test_mirror(dir);
    test_scales(dir);
    test_agreement(dir);
    remove_tree(dir);
    return check_finish("test_finish");
}
