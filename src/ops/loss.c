/* Scalar losses with mean reduction: binary_cross_entropy_with_logits,
 * l1_loss, mse_loss. The output is one value, [1, 1, 1, 1].
 *
 * The sum runs in double over fixed chunks of LOSS_CHUNK elements, each chunk
 * summed in order by one thread, and the chunk sums are added in order: the
 * bits of the loss do not depend on the thread count. */
#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "ops/ops.h"

/* Elements per partial sum: large enough to amortise the scheduling, small
 * enough that a few hundred thousand elements still spread over the cores. */
#define LOSS_CHUNK 4096

typedef enum { LOSS_BCE_WITH_LOGITS, LOSS_L1, LOSS_MSE } loss_kind;

typedef struct {
    loss_kind kind;
    int64_t n_chunks;
    double *partial; /* one sum per chunk, from plan */
} loss_state;

static void loss_destroy(void *p)
{
    loss_state *s = p;
    if (!s)
        return;
    free(s->partial);
    free(s);
}

static cz_status loss_plan(cz_graph *g, cz_node *node)
{
    loss_state *s = node->state;
    s->n_chunks = (cz_numel(node->in[0]) + LOSS_CHUNK - 1) / LOSS_CHUNK;
    s->partial = malloc((size_t)s->n_chunks * sizeof *s->partial);
    if (!s->partial) {
        cz_graph_error(g, CZ_ERR_NOMEM, "loss: out of memory");
        return cz_fail(CZ_ERR_NOMEM, "loss: out of memory");
    }
    return CZ_OK;
}

static double chunk_sum(loss_kind kind, const float *x, const float *t, int64_t lo, int64_t hi)
{
    double sum = 0.0;
    switch (kind) {
    case LOSS_BCE_WITH_LOGITS:
        /* max(x, 0) - x t + log(1 + e^-|x|): never exponentiates a positive
         * number, and log1p keeps precision where e^-|x| is tiny. */
        for (int64_t i = lo; i < hi; i++) {
            double xi = x[i], ti = t[i];
            sum += (xi > 0.0 ? xi : 0.0) - xi * ti + log1p(exp(-fabs(xi)));
        }
        break;
    case LOSS_L1:
        for (int64_t i = lo; i < hi; i++)
            sum += fabs((double)x[i] - (double)t[i]);
        break;
    case LOSS_MSE:
        for (int64_t i = lo; i < hi; i++) {
            double d = (double)x[i] - (double)t[i];
            sum += d * d;
        }
        break;
    }
    return sum;
}

static void loss_forward(cz_graph *g, cz_node *node)
{
    loss_state *s = node->state;
    const float *x = node->in[0]->data, *t = node->in[1]->data;
    int64_t n = cz_numel(node->in[0]), n_chunks = s->n_chunks;
    double *partial = s->partial;
    loss_kind kind = s->kind;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < n_chunks; k++) {
        int64_t lo = k * LOSS_CHUNK, hi = lo + LOSS_CHUNK < n ? lo + LOSS_CHUNK : n;
        partial[k] = chunk_sum(kind, x, t, lo, hi);
    }
    double total = 0.0;
    for (int64_t k = 0; k < n_chunks; k++)
        total += partial[k];
    node->out->data[0] = (float)(total / (double)n);
}

static float sigmoid(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* d(loss)/dx and d(loss)/dt per element, times the mean's 1/n and the
 * output's gradient:
 *     bce: dx = sigmoid(x) - t,     dt = -x
 *     l1:  dx = sign(x - t),        dt = -dx   (sign(0) = 0, as PyTorch)
 *     mse: dx = 2 (x - t),          dt = -dx                               */
static void loss_backward(cz_graph *g, cz_node *node)
{
    const loss_state *s = node->state;
    cz_tensor *xt = node->in[0], *tt = node->in[1];
    const float *x = xt->data, *t = tt->data;
    int64_t n = cz_numel(xt);
    float scale = (float)((double)node->out->grad[0] / (double)n);
    float *dx = xt->needs_grad ? xt->grad : NULL;
    float *dt = tt->needs_grad ? tt->grad : NULL;
    loss_kind kind = s->kind;
    /* The same tensor may be both x and target: each element is updated by
     * one thread, both terms in turn. */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float gx, gt;
        switch (kind) {
        case LOSS_BCE_WITH_LOGITS:
            gx = (sigmoid(x[i]) - t[i]) * scale;
            gt = -x[i] * scale;
            break;
        case LOSS_L1: {
            float d = x[i] - t[i];
            gx = (float)((d > 0.0f) - (d < 0.0f)) * scale;
            gt = -gx;
            break;
        }
        default: /* LOSS_MSE */
            gx = 2.0f * (x[i] - t[i]) * scale;
            gt = -gx;
            break;
        }
        if (dx)
            dx[i] += gx;
        if (dt)
            dt[i] += gt;
    }
}

static const cz_op loss_ops[] = {
    [LOSS_BCE_WITH_LOGITS] = {"bce_with_logits", loss_plan, loss_forward, loss_backward,
                              loss_destroy, CZ_OP_PLAIN, false, NULL},
    [LOSS_L1] = {"l1_loss", loss_plan, loss_forward, loss_backward, loss_destroy, CZ_OP_PLAIN, false, NULL},
    [LOSS_MSE] = {"mse_loss", loss_plan, loss_forward, loss_backward, loss_destroy, CZ_OP_PLAIN, false, NULL},
};

static cz_tensor *build(cz_graph *g, loss_kind kind, cz_tensor *x, cz_tensor *t)
{
    const cz_op *op = &loss_ops[kind];
    if (!x || !t || cz_graph_status(g) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: missing input", op->name);
    if (x->n != t->n || x->c != t->c || x->h != t->h || x->w != t->w)
        return cz_graph_error(g, CZ_ERR_INVALID,
                              "%s: target shape [%lld, %lld, %lld, %lld] differs from input "
                              "[%lld, %lld, %lld, %lld]",
                              op->name, (long long)t->n, (long long)t->c, (long long)t->h,
                              (long long)t->w, (long long)x->n, (long long)x->c, (long long)x->h,
                              (long long)x->w);
    loss_state *s = calloc(1, sizeof *s);
    if (!s)
        return cz_graph_error(g, CZ_ERR_NOMEM, "%s: out of memory", op->name);
    s->kind = kind;
    cz_tensor *in[2] = {x, t};
    return cz_graph_node(g, op, in, 2, 1, 1, 1, 1, s);
}

cz_tensor *cz_bce_with_logits(cz_graph *g, cz_tensor *logits, cz_tensor *target)
{
    return build(g, LOSS_BCE_WITH_LOGITS, logits, target);
}

cz_tensor *cz_l1_loss(cz_graph *g, cz_tensor *x, cz_tensor *target)
{
    return build(g, LOSS_L1, x, target);
}

cz_tensor *cz_mse_loss(cz_graph *g, cz_tensor *x, cz_tensor *target)
{
    return build(g, LOSS_MSE, x, target);
}
