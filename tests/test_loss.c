/* bce_with_logits, l1_loss, mse_loss: forward against the naive formulas in
 * double on random shapes (smoothed and noisy BCE targets included), backward
 * for both arguments against finite differences and PyTorch 1.13, extreme
 * logits, identical bits for any thread count, build errors. */
#include <omp.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"

typedef enum { BCE, L1, MSE } kind;
static const char *const kind_names[] = {"bce_with_logits", "l1_loss", "mse_loss"};

static cz_tensor *apply(cz_graph *g, kind k, cz_tensor *x, cz_tensor *t)
{
    switch (k) {
    case BCE: return cz_bce_with_logits(g, x, t);
    case L1: return cz_l1_loss(g, x, t);
    case MSE: return cz_mse_loss(g, x, t);
    }
    return NULL;
}

/* The textbook definitions, averaged in long double; BCE through the
 * sigmoid's logarithms, which is fine for the moderate logits used here. */
static double reference(kind k, const float *x, const float *t, int64_t n)
{
    long double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i], ti = t[i];
        switch (k) {
        case BCE: {
            double s = 1 / (1 + exp(-xi));
            sum += -(ti * log(s) + (1 - ti) * log(1 - s));
            break;
        }
        case L1: sum += fabs(xi - ti); break;
        case MSE: sum += (xi - ti) * (xi - ti); break;
        }
    }
    return (double)(sum / n);
}

typedef struct {
    cz_graph *g;
    cz_tensor *x, *t, *loss;
} loss_graph;

static bool build(kind k, const int64_t shape[4], bool target_grad, loss_graph *lg)
{
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 3};
    lg->g = cz_graph_create(&cfg);
    lg->x = cz_graph_input(lg->g, "x", shape[0], shape[1], shape[2], shape[3], true);
    lg->t = cz_graph_input(lg->g, "target", shape[0], shape[1], shape[2], shape[3], target_grad);
    lg->loss = apply(lg->g, k, lg->x, lg->t);
    CHECK(cz_graph_plan(lg->g) == CZ_OK, "plan: %s", cz_last_error());
    if (cz_graph_status(lg->g) != CZ_OK) {
        cz_graph_free(lg->g);
        return false;
    }
    CHECK(lg->loss->n == 1 && lg->loss->c == 1 && lg->loss->h == 1 && lg->loss->w == 1,
          "%s: loss is not [1, 1, 1, 1]", kind_names[k]);
    return true;
}

/* Targets for BCE: hard labels, smoothed ones (0.9, 0.1), noisy ones in
 * [0.1, 0.3] and anything in [0, 1]; for the others, anything. Inputs stay
 * at least 0.05 from their targets, clear of l1's kink. */
typedef enum { TARGET_HARD, TARGET_SMOOTH, TARGET_NOISY, TARGET_ANY } target_kind;
static const char *const target_names[] = {"hard", "smoothed", "noisy", "any"};

static void fill(kind k, target_kind tk, cz_rng *rng, float *x, float *t, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float u = cz_rng_uniform(rng);
        switch (tk) {
        case TARGET_HARD: t[i] = u < 0.5f ? 0.0f : 1.0f; break;
        case TARGET_SMOOTH: t[i] = u < 0.5f ? 0.1f : 0.9f; break;
        case TARGET_NOISY: t[i] = 0.1f + 0.2f * u; break;
        case TARGET_ANY: t[i] = k == BCE ? u : 4.0f * u - 2.0f; break;
        }
        float mag = 0.05f + 3.0f * cz_rng_uniform(rng);
        x[i] = t[i] + (cz_rng_uniform(rng) < 0.5f ? -mag : mag);
    }
}

static void random_case(kind k, target_kind tk, const int64_t shape[4], uint64_t seed)
{
    char what[112];
    snprintf(what, sizeof what, "%s, %s targets [%lld, %lld, %lld, %lld]", kind_names[k],
             target_names[tk], (long long)shape[0], (long long)shape[1], (long long)shape[2],
             (long long)shape[3]);
    loss_graph lg;
    if (!build(k, shape, true, &lg))
        return;
    int64_t n = cz_numel(lg.x);
    cz_rng rng;
    cz_rng_seed(&rng, seed);
    fill(k, tk, &rng, lg.x->data, lg.t->data, n);
    CHECK(cz_graph_forward(lg.g) == CZ_OK, "%s: forward: %s", what, cz_last_error());
    float expect = (float)reference(k, lg.x->data, lg.t->data, n);
    CHECK_CLOSE(what, lg.loss->data, &expect, 1, 1e-6, 1e-6);

    /* Every gradient against its closed form, seeded with 1.5; sigmoid(x) - t
     * cancels in float, hence the floor at a tenth of a typical gradient. */
    cz_tensor_seed(lg.loss, 1.5f);
    CHECK(cz_graph_backward(lg.g) == CZ_OK, "%s: backward", what);
    float *ref_dx = malloc((size_t)n * sizeof *ref_dx), *ref_dt = malloc((size_t)n * sizeof *ref_dt);
    for (int64_t i = 0; i < n; i++) {
        double xi = lg.x->data[i], ti = lg.t->data[i], dx, dt;
        switch (k) {
        case BCE: dx = 1 / (1 + exp(-xi)) - ti, dt = -xi; break;
        case L1: dx = xi > ti ? 1 : -1, dt = -dx; break;
        default: dx = 2 * (xi - ti), dt = -dx; break;
        }
        ref_dx[i] = (float)(1.5 * dx / (double)n);
        ref_dt[i] = (float)(1.5 * dt / (double)n);
    }
    CHECK_CLOSE(what, lg.x->grad, ref_dx, n, 1e-5, 0.1 / (double)n);
    CHECK_CLOSE(what, lg.t->grad, ref_dt, n, 1e-5, 0.1 / (double)n);
    free(ref_dx);
    free(ref_dt);

    /* The mean makes each derivative ~1/n while the float loss rounds at
     * ~1e-7, so finite differences only resolve small tensors, and near-zero
     * derivatives only to a percent of the largest. mse is quadratic and l1
     * piecewise linear: a wide step costs them nothing. */
    if (n <= 42) {
        double eps = k == L1 ? 1e-2 : 5e-2;
        gradcheck(what, lg.g, lg.loss, &lg.x, 1, 64, eps, 1e-2);
        gradcheck(what, lg.g, lg.loss, &lg.t, 1, 64, eps, 1e-2);
    }
    cz_tensor *both[2] = {lg.x, lg.t};
    check_accumulates(what, lg.g, lg.loss, both, 2);
    cz_graph_free(lg.g);
}

/* Losses and gradients from PyTorch 1.13, the output's gradient 1.5:
 *     x = torch.tensor([2.5, -1.0, 0.0, 0.3, -4.0, 30.0, -30.0], requires_grad=True)
 *     t = torch.tensor([0.9, 0.1, 0.2, 0.3, 0.0, 1.0, 0.9], requires_grad=True)
 *     y = F.binary_cross_entropy_with_logits(x, t)  (or F.l1_loss, F.mse_loss)
 *     (y * 1.5).backward()
 * x = t = 0.3 checks l1's sign(0) = 0; +-30 the stable BCE. */
static void pytorch_case(void)
{
    static const float x_in[7] = {2.5f, -1.0f, 0.0f, 0.3f, -4.0f, 30.0f, -30.0f};
    static const float t_in[7] = {0.9f, 0.1f, 0.2f, 0.3f, 0.0f, 1.0f, 0.9f};
    static const float expect_loss[3] = {4.17397213f, 9.54285622f, 259.374298f};
    static const float expect_dx[3][7] = {
        {0.00517325336f, 0.0362017378f, 0.0642857179f, 0.0588091053f, 0.0038541879f, 0.0f,
         -0.192857131f},
        {0.214285716f, -0.214285716f, -0.214285716f, 0.0f, -0.214285716f, 0.214285716f,
         -0.214285716f},
        {0.685714364f, -0.471428573f, -0.0857142955f, 0.0f, -1.71428585f, 12.4285727f,
         -13.242857f},
    };
    static const float expect_dt[3][7] = {
        {-0.535714269f, 0.214285716f, 0.0f, -0.0642857179f, 0.857142866f, -6.42857122f,
         6.42857122f},
        {-0.214285716f, 0.214285716f, 0.214285716f, 0.0f, 0.214285716f, -0.214285716f,
         0.214285716f},
        {-0.685714364f, 0.471428573f, 0.0857142955f, 0.0f, 1.71428585f, -12.4285727f,
         13.242857f},
    };
    const int64_t shape[4] = {1, 7, 1, 1};
    for (int k = BCE; k <= MSE; k++) {
        /* With and without a target gradient (without: nothing written). */
        for (int target_grad = 0; target_grad < 2; target_grad++) {
            char what[64];
            snprintf(what, sizeof what, "%s vs PyTorch%s", kind_names[k],
                     target_grad ? ", target grad" : "");
            loss_graph lg;
            if (!build((kind)k, shape, target_grad, &lg))
                continue;
            memcpy(lg.x->data, x_in, sizeof x_in);
            memcpy(lg.t->data, t_in, sizeof t_in);
            cz_graph_forward(lg.g);
            cz_tensor_seed(lg.loss, 1.5f);
            CHECK(cz_graph_backward(lg.g) == CZ_OK, "%s: backward", what);
            CHECK_CLOSE(what, lg.loss->data, &expect_loss[k], 1, 1e-6, 1e-6);
            CHECK_CLOSE(what, lg.x->grad, expect_dx[k], 7, 1e-6, 1e-3);
            if (target_grad)
                CHECK_CLOSE(what, lg.t->grad, expect_dt[k], 7, 1e-6, 1e-3);
            else
                CHECK(lg.t->grad == NULL, "%s: target without requires_grad has a gradient", what);
            cz_graph_free(lg.g);
        }
    }
}

/* Logits of +-100 neither overflow nor lose the loss: with target 0 a logit
 * of 100 costs 100, and so does -100 with target 1. */
static void extreme_case(void)
{
    const int64_t shape[4] = {1, 1, 2, 2};
    loss_graph lg;
    if (!build(BCE, shape, false, &lg))
        return;
    const float x[4] = {100.0f, -100.0f, 100.0f, -100.0f}, t[4] = {0.0f, 1.0f, 1.0f, 0.0f};
    memcpy(lg.x->data, x, sizeof x);
    memcpy(lg.t->data, t, sizeof t);
    cz_graph_forward(lg.g);
    const float expect_loss = 50.0f; /* (100 + 100 + 0 + 0) / 4, to float precision */
    CHECK_CLOSE("bce of +-100", lg.loss->data, &expect_loss, 1, 1e-6, 1);
    cz_tensor_seed(lg.loss, 1.0f);
    cz_graph_backward(lg.g);
    const float expect_dx[4] = {0.25f, -0.25f, 0.0f, 0.0f};
    CHECK_CLOSE("bce of +-100 gradient", lg.x->grad, expect_dx, 4, 1e-6, 1);
    cz_graph_free(lg.g);
}

/* The loss and its gradients have the same bits for 1, 2, 3 and 7 threads,
 * on a tensor of many reduction chunks with a ragged last one. */
static void thread_case(kind k)
{
    const int64_t shape[4] = {3, 5, 67, 71};
    loss_graph lg;
    if (!build(k, shape, true, &lg))
        return;
    int64_t n = cz_numel(lg.x);
    cz_rng rng;
    cz_rng_seed(&rng, 44);
    fill(k, TARGET_NOISY, &rng, lg.x->data, lg.t->data, n);
    const int threads[4] = {1, 2, 3, 7};
    float loss[4];
    float *dx[4], *dt[4];
    int saved = omp_get_max_threads();
    for (int r = 0; r < 4; r++) {
        omp_set_num_threads(threads[r]);
        cz_graph_forward(lg.g);
        cz_tensor_seed(lg.loss, 1.0f);
        cz_graph_backward(lg.g);
        loss[r] = lg.loss->data[0];
        dx[r] = malloc((size_t)n * sizeof(float));
        dt[r] = malloc((size_t)n * sizeof(float));
        memcpy(dx[r], lg.x->grad, (size_t)n * sizeof(float));
        memcpy(dt[r], lg.t->grad, (size_t)n * sizeof(float));
    }
    omp_set_num_threads(saved);
    float expect = (float)reference(k, lg.x->data, lg.t->data, n);
    CHECK_CLOSE(kind_names[k], &loss[0], &expect, 1, 1e-6, 1e-6);
    for (int r = 1; r < 4; r++) {
        CHECK(memcmp(&loss[0], &loss[r], sizeof(float)) == 0,
              "%s: loss %.9g with 1 thread, %.9g with %d", kind_names[k], (double)loss[0],
              (double)loss[r], threads[r]);
        CHECK(memcmp(dx[0], dx[r], (size_t)n * sizeof(float)) == 0 &&
                  memcmp(dt[0], dt[r], (size_t)n * sizeof(float)) == 0,
              "%s: gradients differ with %d threads", kind_names[k], threads[r]);
    }
    for (int r = 0; r < 4; r++) {
        free(dx[r]);
        free(dt[r]);
    }
    cz_graph_free(lg.g);
}

static void error_case(void)
{
    cz_graph_config cfg = {.training = true};
    for (int k = BCE; k <= MSE; k++) {
        cz_graph *g = cz_graph_create(&cfg);
        cz_tensor *x = cz_graph_input(g, "x", 2, 1, 30, 30, true);
        cz_tensor *t = cz_graph_input(g, "t", 2, 1, 30, 31, false);
        CHECK(apply(g, (kind)k, x, t) == NULL, "%s: mismatched target accepted", kind_names[k]);
        CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail");
        CHECK(strstr(cz_last_error(), "differs") != NULL, "message: %s", cz_last_error());
        cz_graph_free(g);

        g = cz_graph_create(&cfg);
        x = cz_graph_input(g, "x", 2, 1, 30, 30, true);
        CHECK(apply(g, (kind)k, x, NULL) == NULL, "%s: missing target accepted", kind_names[k]);
        CHECK(cz_graph_plan(g) == CZ_ERR_INVALID, "plan after a build error must fail");
        CHECK(strstr(cz_last_error(), kind_names[k]) != NULL, "message: %s", cz_last_error());
        cz_graph_free(g);
    }
}

int main(void)
{
    const int64_t shapes[][4] = {{1, 1, 1, 1}, {2, 3, 2, 5}, {1, 2, 3, 7}, {2, 3, 37, 41}};
    uint64_t seed = 900;
    for (int k = BCE; k <= MSE; k++)
        for (int tk = TARGET_HARD; tk <= TARGET_ANY; tk++)
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
                random_case((kind)k, (target_kind)tk, shapes[s], seed++);
    pytorch_case();
    extreme_case();
    for (int k = BCE; k <= MSE; k++)
        thread_case((kind)k);
    error_case();
    return check_finish("test_loss");
}
