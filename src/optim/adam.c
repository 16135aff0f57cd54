#include "optim/adam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

struct cz_adam {
    cz_adam_config config;
    cz_adam_state state;
};

cz_adam *cz_adam_create(const cz_adam_config *config, size_t n)
{
    cz_adam *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->config = *config;
    a->state.n = n;
    a->state.m = calloc(n ? n : 1, sizeof(float));
    a->state.v = calloc(n ? n : 1, sizeof(float));
    if (!a->state.m || !a->state.v) {
        cz_adam_free(a);
        return NULL;
    }
    return a;
}

void cz_adam_free(cz_adam *a)
{
    if (!a)
        return;
    free(a->state.m);
    free(a->state.v);
    free(a);
}

void cz_adam_set_lr(cz_adam *a, float lr) { a->config.lr = lr; }
cz_adam_state *cz_adam_state_of(cz_adam *a) { return &a->state; }

cz_status cz_adam_step(cz_adam *a, cz_graph *g)
{
    const cz_param_store *store = cz_graph_params(g);
    if (store->n_trainable != a->state.n)
        return cz_fail(CZ_ERR_INVALID, "adam: built for %zu parameters, graph has %zu",
                       a->state.n, store->n_trainable);
    const cz_adam_config c = a->config;
    int64_t t = ++a->state.step;
    /* PyTorch's arithmetic, so the two agree to rounding: the bias
     * corrections fold into a step size and a denominator scale. */
    float step_size = (float)(c.lr / (1.0 - pow(c.beta1, (double)t)));
    float correction2_sqrt = (float)sqrt(1.0 - pow(c.beta2, (double)t));
    float *p = store->data, *grad = store->grad, *m = a->state.m, *v = a->state.v;
    int64_t n = (int64_t)a->state.n;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float gi = grad[i] + c.weight_decay * p[i];
        m[i] = m[i] * c.beta1 + (1.0f - c.beta1) * gi;
        v[i] = v[i] * c.beta2 + (1.0f - c.beta2) * gi * gi;
        float denom = sqrtf(v[i]) / correction2_sqrt + c.eps;
        p[i] -= step_size * m[i] / denom;
    }
    cz_graph_params_changed(g);
    return CZ_OK;
}
