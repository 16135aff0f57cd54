/* upsample, nearest and bilinear (align_corners=False): forward against the
 * interpolation formula evaluated per output pixel in double, on random and
 * odd shapes; backward against finite differences and against PyTorch 1.13;
 * thread-count independence of the scattering backward; build errors. */
#include <omp.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"

static const char *const mode_names[] = {"nearest", "bilinear"};

/* out[n, c, oy, ox] by the definition: the source coordinate of an output
 * pixel's centre, clamped at 0, blended between its two neighbours. */
static double reference_pixel(const float *plane, int64_t H, int64_t W, int scale,
                              cz_upsample_mode mode, int64_t oy, int64_t ox)
{
    if (mode == CZ_UPSAMPLE_NEAREST)
        return plane[(int64_t)floor((double)oy / scale) * W + (int64_t)floor((double)ox / scale)];
    double sy = fmax(((double)oy + 0.5) / scale - 0.5, 0.0);
    double sx = fmax(((double)ox + 0.5) / scale - 0.5, 0.0);
    int64_t y0 = (int64_t)floor(sy), x0 = (int64_t)floor(sx);
    int64_t y1 = y0 + 1 < H ? y0 + 1 : H - 1, x1 = x0 + 1 < W ? x0 + 1 : W - 1;
    double ly = sy - (double)y0, lx = sx - (double)x0;
    return (1 - ly) * (1 - lx) * plane[y0 * W + x0] + (1 - ly) * lx * plane[y0 * W + x1] +
           ly * (1 - lx) * plane[y1 * W + x0] + ly * lx * plane[y1 * W + x1];
}

static cz_tensor *build(const int64_t shape[4], int scale, cz_upsample_mode mode, cz_graph **gp,
                        cz_tensor **xp)
{
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 5};
    cz_graph *g = *gp = cz_graph_create(&cfg);
    cz_tensor *x = *xp = cz_graph_input(g, "x", shape[0], shape[1], shape[2], shape[3], true);
    cz_tensor *y = cz_upsample(g, x, scale, mode);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    return cz_graph_status(g) == CZ_OK ? y : NULL;
}

static void random_case(const int64_t shape[4], int scale, cz_upsample_mode mode, uint64_t seed)
{
    char what[96];
    snprintf(what, sizeof what, "upsample %s x%d [%lld, %lld, %lld, %lld]", mode_names[mode],
             scale, (long long)shape[0], (long long)shape[1], (long long)shape[2],
             (long long)shape[3]);
    cz_graph *g;
    cz_tensor *x;
    cz_tensor *y = build(shape, scale, mode, &g, &x);
    if (!y) {
        cz_graph_free(g);
        return;
    }
    CHECK(y->n == x->n && y->c == x->c && y->h == x->h * scale && y->w == x->w * scale,
          "%s: output [%lld, %lld, %lld, %lld]", what, (long long)y->n, (long long)y->c,
          (long long)y->h, (long long)y->w);
    cz_rng rng;
    cz_rng_seed(&rng, seed);
    fill_uniform(&rng, x->data, cz_numel(x), -2, 2);
    CHECK(cz_graph_forward(g) == CZ_OK, "%s: forward: %s", what, cz_last_error());
    int64_t n = cz_numel(y);
    float *ref = malloc((size_t)n * sizeof *ref);
    for (int64_t p = 0; p < x->n * x->c; p++)
        for (int64_t oy = 0; oy < y->h; oy++)
            for (int64_t ox = 0; ox < y->w; ox++)
                ref[(p * y->h + oy) * y->w + ox] = (float)reference_pixel(
                    x->data + p * x->h * x->w, x->h, x->w, scale, mode, oy, ox);
    CHECK_CLOSE(what, y->data, ref, n, 1e-6, 1.0);
    free(ref);

    /* Linear in x: central differences are exact up to rounding. */
    gradcheck(what, g, y, &x, 1, 60, 1e-2, 1e-3);
    check_accumulates(what, g, y, &x, 1);
    cz_graph_free(g);
}

/* Both directions give the same bits with one thread and with several. */
static void thread_case(cz_upsample_mode mode)
{
    const int64_t shape[4] = {2, 3, 37, 29};
    cz_graph *g;
    cz_tensor *x;
    cz_tensor *y = build(shape, 3, mode, &g, &x);
    if (!y) {
        cz_graph_free(g);
        return;
    }
    cz_rng rng;
    cz_rng_seed(&rng, 8);
    fill_uniform(&rng, x->data, cz_numel(x), -1, 1);
    float *out[2], *grad[2];
    const int threads[2] = {1, 7};
    int saved = omp_get_max_threads();
    size_t ny = (size_t)cz_numel(y), nx = (size_t)cz_numel(x);
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(threads[r]);
        cz_graph_forward(g);
        cz_rng_seed(&rng, 9);
        fill_uniform(&rng, y->grad, (int64_t)ny, -1, 1);
        cz_graph_backward(g);
        out[r] = malloc(ny * sizeof(float));
        grad[r] = malloc(nx * sizeof(float));
        memcpy(out[r], y->data, ny * sizeof(float));
        memcpy(grad[r], x->grad, nx * sizeof(float));
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(out[0], out[1], ny * sizeof(float)) == 0, "upsample %s: forward depends on threads",
          mode_names[mode]);
    CHECK(memcmp(grad[0], grad[1], nx * sizeof(float)) == 0,
          "upsample %s: backward depends on threads", mode_names[mode]);
    for (int r = 0; r < 2; r++) {
        free(out[r]);
        free(grad[r]);
    }
    cz_graph_free(g);
}

/* One fixture from PyTorch 1.13:
 *     x = torch.tensor(values).reshape(1, 1, H, W).requires_grad_()
 *     y = F.interpolate(x, scale_factor=scale, mode=mode[, align_corners=False])
 *     y.backward(dy)
 * with dy given below. */
typedef struct {
    const char *what;
    int64_t H, W;
    int scale;
    cz_upsample_mode mode;
    const float *x, *y, *dx;
    float (*dy)(int64_t i);
} fixture;

static float dy_ramp(int64_t i) { return (float)i; }            /* torch.arange(16.) */
static float dy_cycle(int64_t i) { return (float)(i % 7 - 3); } /* arange(n) % 7 - 3 */

static const float x_2x2[] = {1, 2, 3, 4};
static const float y_2x2_bilinear[] = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f,  1.75f, 2.25f, 2.5f,
                                       2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
static const float dx_2x2_bilinear[] = {12.5f, 19.5f, 40.5f, 47.5f};

static const float x_2x3[] = {0.5f, -1.0f, 2.0f, 3.0f, 0.25f, -4.0f};
static const float y_2x3_bilinear[] = {
    0.5f, 0.5f, -5.96046448e-08f, -0.5f, -0.999999881f, 1.1920929e-07f, 1.00000024f, 2.0f, 2.0f,
    0.50000006f, 0.5f, -2.85605601e-08f, -0.5f, -0.999999821f, 1.01824597e-07f, 1.00000024f, 2.0f, 2.0f,
    1.33333349f, 1.33333337f, 0.694444478f, 0.0555556007f, -0.583333254f, -0.388888896f,
    -0.194444492f, -2.38418608e-07f, -2.08616257e-07f,
    2.16666675f, 2.16666675f, 1.38888884f, 0.611111104f, -0.166666716f, -0.777777851f, -1.38888907f, -2.0f, -2.0f,
    3.0f, 3.0f, 2.08333302f, 1.16666651f, 0.249999806f, -1.16666675f, -2.58333349f, -4.0f, -3.99999976f,
    3.0f, 3.0f, 2.08333325f, 1.16666663f, 0.249999791f, -1.16666687f, -2.58333373f, -4.0f, -4.0f};
static const float dx_2x3_bilinear[] = {-3.22222257f, 2.55555534f, -3.33333349f,
                                        0.888889015f, 0.444444835f, -2.33333349f};
static const float y_2x3_nearest[] = {
    0.5f, 0.5f, 0.5f, -1, -1, -1, 2, 2, 2,  0.5f, 0.5f, 0.5f, -1, -1, -1, 2, 2, 2,
    0.5f, 0.5f, 0.5f, -1, -1, -1, 2, 2, 2,  3, 3, 3, 0.25f, 0.25f, 0.25f, -4, -4, -4,
    3, 3, 3, 0.25f, 0.25f, 0.25f, -4, -4, -4,  3, 3, 3, 0.25f, 0.25f, 0.25f, -4, -4, -4};
static const float dx_2x3_nearest[] = {0, -1, -2, -2, 4, -4};

static void pytorch_case(const fixture *f)
{
    const int64_t shape[4] = {1, 1, f->H, f->W};
    cz_graph *g;
    cz_tensor *x;
    cz_tensor *y = build(shape, f->scale, f->mode, &g, &x);
    if (!y) {
        cz_graph_free(g);
        return;
    }
    memcpy(x->data, f->x, (size_t)(f->H * f->W) * sizeof(float));
    cz_graph_forward(g);
    for (int64_t i = 0; i < cz_numel(y); i++)
        y->grad[i] = f->dy(i);
    cz_graph_backward(g);
    /* PyTorch interpolates in float, so its exact zeros come out ~1e-7. */
    CHECK_CLOSE(f->what, y->data, f->y, cz_numel(y), 1e-6, 1.0);
    CHECK_CLOSE(f->what, x->grad, f->dx, cz_numel(x), 1e-6, 1.0);
    cz_graph_free(g);
}

static void error_case(void)
{
    cz_graph_config cfg = {.training = true};
    struct {
        int scale;
        int mode;
        const char *message;
    } bad[] = {{0, CZ_UPSAMPLE_NEAREST, "scale"},
               {-2, CZ_UPSAMPLE_BILINEAR, "scale"},
               {2, 7, "mode"},
               {2, CZ_UPSAMPLE_NEAREST, "missing"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cz_graph *g = cz_graph_create(&cfg);
        cz_tensor *x = strcmp(bad[i].message, "missing") == 0
                           ? NULL
                           : cz_graph_input(g, "x", 1, 2, 3, 3, false);
        CHECK(cz_upsample(g, x, bad[i].scale, (cz_upsample_mode)bad[i].mode) == NULL,
              "case %zu accepted", i);
        CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail");
        CHECK(strstr(cz_last_error(), bad[i].message) != NULL, "message: %s", cz_last_error());
        cz_graph_free(g);
    }
    /* 2^34 rows times 2^30 overflows int64_t: caught before multiplying. */
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "x", 1, 1, (int64_t)1 << 34, 1, false);
    CHECK(cz_upsample(g, x, 1 << 30, CZ_UPSAMPLE_NEAREST) == NULL, "huge output accepted");
    CHECK(cz_graph_plan(g) == CZ_ERR_TOO_LARGE, "plan after an overflow must fail");
    CHECK(strstr(cz_last_error(), "overflow") != NULL, "message: %s", cz_last_error());
    cz_graph_free(g);
}

int main(void)
{
    const struct {
        int64_t shape[4];
        int scale;
    } cases[] = {
        {{2, 3, 5, 7}, 2}, {{1, 2, 4, 3}, 3}, {{3, 1, 1, 1}, 2}, {{1, 1, 3, 2}, 1},
        {{2, 2, 6, 5}, 4}, {{1, 3, 1, 9}, 2}, {{1, 1, 8, 8}, 2},
    };
    uint64_t seed = 40;
    for (int mode = CZ_UPSAMPLE_NEAREST; mode <= CZ_UPSAMPLE_BILINEAR; mode++)
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
            random_case(cases[i].shape, cases[i].scale, (cz_upsample_mode)mode, seed++);
    thread_case(CZ_UPSAMPLE_NEAREST);
    thread_case(CZ_UPSAMPLE_BILINEAR);

    const fixture fixtures[] = {
        {"bilinear 2x2 -> 4x4 vs PyTorch", 2, 2, 2, CZ_UPSAMPLE_BILINEAR, x_2x2,
         y_2x2_bilinear, dx_2x2_bilinear, dy_ramp},
        {"bilinear 2x3 x3 vs PyTorch", 2, 3, 3, CZ_UPSAMPLE_BILINEAR, x_2x3, y_2x3_bilinear,
         dx_2x3_bilinear, dy_cycle},
        {"nearest 2x3 x3 vs PyTorch", 2, 3, 3, CZ_UPSAMPLE_NEAREST, x_2x3, y_2x3_nearest,
         dx_2x3_nearest, dy_cycle},
    };
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++)
        pytorch_case(&fixtures[i]);
    error_case();
    return check_finish("test_upsample");
}
