/* relu, leaky_relu, tanh, sigmoid: forward against the definitions in double
 * on random shapes, backward against finite differences, a few values and
 * gradients from PyTorch 1.13, thread-count independence, accumulation into
 * a shared input's gradient, and build errors. */
#include <omp.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"

typedef enum { RELU, LEAKY_RELU, TANH, SIGMOID } kind;
static const char *const kind_names[] = {"relu", "leaky_relu", "tanh", "sigmoid"};

/* The slope the random cases use; PyTorch's GAN default. */
#define SLOPE 0.2f

static cz_tensor *apply(cz_graph *g, kind k, cz_tensor *x, float slope)
{
    switch (k) {
    case RELU: return cz_relu(g, x);
    case LEAKY_RELU: return cz_leaky_relu(g, x, slope);
    case TANH: return cz_tanh(g, x);
    case SIGMOID: return cz_sigmoid(g, x);
    }
    return NULL;
}

static double reference(kind k, double x, double slope)
{
    switch (k) {
    case RELU: return x > 0 ? x : 0;
    case LEAKY_RELU: return x > 0 ? x : slope * x;
    case TANH: return tanh(x);
    case SIGMOID: return 1 / (1 + exp(-x));
    }
    return NAN;
}

/* A planned training graph y = op(x) with x an input that wants a gradient. */
static cz_tensor *build(kind k, const int64_t shape[4], float slope, cz_graph **gp, cz_tensor **xp)
{
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 11};
    cz_graph *g = *gp = cz_graph_create(&cfg);
    cz_tensor *x = *xp = cz_graph_input(g, "x", shape[0], shape[1], shape[2], shape[3], true);
    cz_tensor *y = apply(g, k, x, slope);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    return cz_graph_status(g) == CZ_OK ? y : NULL;
}

/* Random values in (-4, 4), at least 0.05 from zero so that the kinks of
 * relu and leaky_relu lie outside the finite-difference stencil. */
static void fill_away_from_zero(cz_rng *rng, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float u = cz_rng_uniform(rng);
        float mag = 0.05f + 3.95f * cz_rng_uniform(rng);
        x[i] = u < 0.5f ? -mag : mag;
    }
}

static void random_case(kind k, const int64_t shape[4], uint64_t seed)
{
    char what[96];
    snprintf(what, sizeof what, "%s [%lld, %lld, %lld, %lld]", kind_names[k],
             (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3]);
    cz_graph *g;
    cz_tensor *x;
    cz_tensor *y = build(k, shape, SLOPE, &g, &x);
    if (!y) {
        cz_graph_free(g);
        return;
    }
    int64_t n = cz_numel(x);
    CHECK(y->n == x->n && y->c == x->c && y->h == x->h && y->w == x->w, "%s: output shape", what);
    cz_rng rng;
    cz_rng_seed(&rng, seed);
    fill_away_from_zero(&rng, x->data, n);
    CHECK(cz_graph_forward(g) == CZ_OK, "%s: forward: %s", what, cz_last_error());
    float *ref = malloc((size_t)n * sizeof *ref);
    for (int64_t i = 0; i < n; i++)
        ref[i] = (float)reference(k, x->data[i], SLOPE);
    CHECK_CLOSE(what, y->data, ref, n, 2e-6, 1e-6);
    free(ref);

    gradcheck(what, g, y, &x, 1, 60, 1e-2, 1e-3);
    check_accumulates(what, g, y, &x, 1);
    cz_graph_free(g);
}

/* Forward and backward give the same bits with one thread and with several. */
static void thread_case(kind k)
{
    const int64_t shape[4] = {3, 5, 33, 31};
    cz_graph *g;
    cz_tensor *x;
    cz_tensor *y = build(k, shape, SLOPE, &g, &x);
    if (!y) {
        cz_graph_free(g);
        return;
    }
    int64_t n = cz_numel(x);
    cz_rng rng;
    cz_rng_seed(&rng, 3);
    fill_uniform(&rng, x->data, n, -5, 5);
    float *out[2], *grad[2];
    const int threads[2] = {1, 5};
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(threads[r]);
        cz_graph_forward(g);
        cz_rng_seed(&rng, 4);
        fill_uniform(&rng, y->grad, n, -1, 1);
        cz_graph_backward(g);
        out[r] = malloc((size_t)n * sizeof(float));
        grad[r] = malloc((size_t)n * sizeof(float));
        memcpy(out[r], y->data, (size_t)n * sizeof(float));
        memcpy(grad[r], x->grad, (size_t)n * sizeof(float));
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(out[0], out[1], (size_t)n * sizeof(float)) == 0, "%s: forward depends on threads",
          kind_names[k]);
    CHECK(memcmp(grad[0], grad[1], (size_t)n * sizeof(float)) == 0,
          "%s: backward depends on threads", kind_names[k]);
    for (int r = 0; r < 2; r++) {
        free(out[r]);
        free(grad[r]);
    }
    cz_graph_free(g);
}

/* Values and gradients (output gradient 1) from PyTorch 1.13:
 *     x = torch.tensor([-3., -0.5, 0., 0.25, 2., -20., 20.], requires_grad=True)
 *     F.relu(x), F.leaky_relu(x, 0.2), torch.tanh(x), torch.sigmoid(x); y.backward(ones)
 * The zero checks relu's gradient there (0) and leaky_relu's (the slope). */
static void pytorch_case(void)
{
    static const float x_in[7] = {-3.0f, -0.5f, 0.0f, 0.25f, 2.0f, -20.0f, 20.0f};
    static const float expect_y[4][7] = {
        {0.0f, 0.0f, 0.0f, 0.25f, 2.0f, 0.0f, 20.0f},
        {-0.600000024f, -0.100000001f, 0.0f, 0.25f, 2.0f, -4.0f, 20.0f},
        {-0.995054781f, -0.462117165f, 0.0f, 0.244918659f, 0.964027584f, -1.0f, 1.0f},
        {0.0474258736f, 0.377540678f, 0.5f, 0.562176526f, 0.880797029f, 2.06115369e-09f, 1.0f},
    };
    static const float expect_dx[4][7] = {
        {0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 0.0f, 1.0f},
        {0.200000003f, 0.200000003f, 0.200000003f, 1.0f, 1.0f, 0.200000003f, 1.0f},
        {0.00986598153f, 0.786447704f, 1.0f, 0.940014839f, 0.070650816f, 0.0f, 0.0f},
        {0.0451766588f, 0.23500371f, 0.25f, 0.246134073f, 0.104993626f, 2.06115369e-09f, 0.0f},
    };
    const int64_t shape[4] = {1, 1, 1, 7};
    for (int k = RELU; k <= SIGMOID; k++) {
        char what[64];
        snprintf(what, sizeof what, "%s vs PyTorch", kind_names[k]);
        cz_graph *g;
        cz_tensor *x;
        cz_tensor *y = build((kind)k, shape, 0.2f, &g, &x);
        if (!y) {
            cz_graph_free(g);
            continue;
        }
        memcpy(x->data, x_in, sizeof x_in);
        cz_graph_forward(g);
        cz_tensor_seed(y, 1.0f);
        cz_graph_backward(g);
        CHECK_CLOSE(what, y->data, expect_y[k], 7, 1e-6, 1e-6);
        CHECK_CLOSE(what, x->grad, expect_dx[k], 7, 1e-5, 1e-6);
        cz_graph_free(g);
    }
}

/* Two activations read x: backward adds both contributions, and NaN passes
 * through relu as through PyTorch's clamp. */
static void accumulate_case(void)
{
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 1};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "x", 1, 1, 1, 4, true);
    cz_tensor *a = cz_relu(g, x);
    cz_tensor *b = cz_leaky_relu(g, x, 0.5f);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    if (cz_graph_status(g) == CZ_OK) {
        const float xs[4] = {-2.0f, 3.0f, -1.0f, NAN};
        memcpy(x->data, xs, sizeof xs);
        cz_graph_forward(g);
        cz_tensor_seed(a, 2.0f);
        cz_tensor_seed(b, 3.0f);
        cz_graph_backward(g);
        const float expect[3] = {1.5f, 5.0f, 1.5f};
        CHECK_CLOSE("relu + leaky_relu gradient", x->grad, expect, 3, 0, 1);
        CHECK(isnan(a->data[3]) && isnan(b->data[3]), "NaN swallowed: relu %g, leaky %g",
              (double)a->data[3], (double)b->data[3]);
    }
    cz_graph_free(g);
}

static void error_case(void)
{
    cz_graph_config cfg = {.training = true};
    cz_graph *g = cz_graph_create(&cfg);
    CHECK(cz_tanh(g, NULL) == NULL, "tanh of a missing input");
    CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail");
    CHECK(strstr(cz_last_error(), "tanh") != NULL, "message: %s", cz_last_error());
    cz_graph_free(g);

    g = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "x", 1, 2, 3, 3, false);
    CHECK(cz_leaky_relu(g, x, NAN) == NULL, "NaN slope accepted");
    CHECK(cz_relu(g, x) == NULL, "a builder after an error must return NULL");
    CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail");
    CHECK(strstr(cz_last_error(), "slope") != NULL, "message: %s", cz_last_error());
    cz_graph_free(g);
}

int main(void)
{
    const int64_t shapes[][4] = {{2, 3, 5, 7}, {1, 1, 1, 1}, {3, 4, 9, 1}, {1, 6, 11, 13}};
    uint64_t seed = 100;
    for (int k = RELU; k <= SIGMOID; k++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            random_case((kind)k, shapes[s], seed++);
    for (int k = RELU; k <= SIGMOID; k++)
        thread_case((kind)k);
    pytorch_case();
    accumulate_case();
    error_case();
    return check_finish("test_activation");
}
