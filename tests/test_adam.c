/* Adam against the textbook update in double, and exact save/restore of its
 * state: a run split in two with the state carried over equals one run. */
#include <string.h>

#include "check.h"
#include "optim/adam.h"

#define N 37

/* A graph holding one trainable vector p; its gradient is set by hand. */
static cz_graph *make_graph(cz_tensor **p)
{
    cz_graph_config cfg = {.training = true, .poison_unread_values = true, .seed = 3};
    cz_graph *g = cz_graph_create(&cfg);
    int64_t shape[1] = {N};
    *p = cz_graph_param(g, "p", 1, shape, CZ_INIT_NORMAL, 1.0f);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    return g;
}

static void gradient(int step, float *grad)
{
    for (int i = 0; i < N; i++)
        grad[i] = sinf(0.37f * (float)(i + 3 * step)) * (i % 5 == 0 ? 1e-3f : 1.0f);
}

int main(void)
{
    const cz_adam_config cfg = {.lr = 2e-4f, .beta1 = 0.5f, .beta2 = 0.999f, .eps = 1e-8f,
                                .weight_decay = 1e-2f};
    const int steps = 10;
    cz_tensor *p;
    cz_graph *g = make_graph(&p);
    double ref[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++)
        ref[i] = p->data[i];

    cz_adam *adam = cz_adam_create(&cfg, cz_graph_params(g)->n_trainable);
    for (int t = 1; t <= steps; t++) {
        gradient(t, p->grad);
        for (int i = 0; i < N; i++) {
            double gi = p->grad[i] + cfg.weight_decay * ref[i];
            m[i] = cfg.beta1 * m[i] + (1 - cfg.beta1) * gi;
            v[i] = cfg.beta2 * v[i] + (1 - cfg.beta2) * gi * gi;
            double mhat = m[i] / (1 - pow(cfg.beta1, t)), vhat = v[i] / (1 - pow(cfg.beta2, t));
            ref[i] -= cfg.lr * mhat / (sqrt(vhat) + cfg.eps);
        }
        uint64_t version = cz_graph_params_version(g);
        CHECK(cz_adam_step(adam, g) == CZ_OK, "step %d", t);
        CHECK(cz_graph_params_version(g) != version, "step must mark parameters changed");
    }
    float reff[N];
    for (int i = 0; i < N; i++)
        reff[i] = (float)ref[i];
    CHECK_CLOSE("adam vs double reference", p->data, reff, N, 1e-6, 1e-3);

    /* Split run: 4 steps, state copied out, a fresh optimiser restored from
     * it and given the last 6 steps. Must equal the straight run bit for bit. */
    cz_tensor *q;
    cz_graph *h = make_graph(&q);
    cz_adam *first = cz_adam_create(&cfg, N);
    for (int t = 1; t <= 4; t++) {
        gradient(t, q->grad);
        cz_adam_step(first, h);
    }
    cz_adam_state *saved = cz_adam_state_of(first);
    cz_adam *second = cz_adam_create(&cfg, N);
    cz_adam_state *restored = cz_adam_state_of(second);
    memcpy(restored->m, saved->m, N * sizeof(float));
    memcpy(restored->v, saved->v, N * sizeof(float));
    restored->step = saved->step;
    for (int t = 5; t <= steps; t++) {
        gradient(t, q->grad);
        cz_adam_step(second, h);
    }
    CHECK(memcmp(p->data, q->data, N * sizeof(float)) == 0, "resumed run differs");

    /* A graph of another size is refused. */
    cz_adam *wrong = cz_adam_create(&cfg, N + 1);
    CHECK(cz_adam_step(wrong, g) == CZ_ERR_INVALID, "size mismatch accepted");

    cz_adam_free(wrong);
    cz_adam_free(first);
    cz_adam_free(second);
    cz_adam_free(adam);
    cz_graph_free(g);
    cz_graph_free(h);
    return check_finish("test_adam");
}
