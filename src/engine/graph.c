#include "engine/graph.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "engine/liveness.h"
#include "engine/onednn.h"

/* Memory is planned into these regions, each one contiguous. */
struct cz_graph {
    cz_graph_config config;
    cz_status status;
    char error[512];
    bool planned;
    bool new_params_frozen;
    bool frozen;
    uint64_t params_version;
    cz_rng rng;

    cz_tensor **tensors; /* every tensor, in creation order */
    int n_tensors, cap_tensors;
    cz_node *nodes;
    int n_nodes, cap_nodes;

    /* Scratch (cz_graph_scratch): the pieces asked for, each at its offset
     * among the pieces of its op's call; the bytes the op planning now has
     * asked for, per call, the call it is asking for, the most any op's
     * call asked for, and the one allocation. */
    struct scratch_piece {
        size_t offset;
        cz_scratch_bind bind;
        void *ctx;
    } *pieces;
    int n_pieces, cap_pieces;
    size_t op_scratch_bytes[2], scratch_bytes;
    cz_call scratch_call;
    void *scratch;

    float *activations;      /* activation and input values (graph.h: liveness): */
    size_t n_own_values, n_shared_values; /* first those of their own, then the shared */
    float *activation_grads; /* their gradients: first those of their own, */
    size_t n_own_grads;      /* cleared by each forward, then the shared */
    cz_param_store store;
};

/* Tensors are at most this many elements: keeps every byte count far from
 * overflow and every index within int64_t arithmetic. */
#define CZ_MAX_NUMEL ((int64_t)1 << 36)

cz_graph *cz_graph_create(const cz_graph_config *config)
{
    cz_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->config = *config;
    cz_rng_seed(&g->rng, config->seed);
    return g;
}

void cz_graph_free(cz_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        cz_node *node = &g->nodes[i];
        if (node->op->destroy)
            node->op->destroy(node->state);
        else
            free(node->state);
    }
    for (int i = 0; i < g->n_tensors; i++) {
        free(g->tensors[i]->name);
        free(g->tensors[i]);
    }
    free(g->tensors);
    free(g->nodes);
    free(g->pieces);
    free(g->scratch);
    free(g->activations);
    free(g->activation_grads);
    free(g->store.data);
    free(g->store.grad);
    free(g);
}

cz_status cz_graph_status(const cz_graph *g) { return g->status; }
bool cz_graph_training(const cz_graph *g) { return g->config.training; }
bool cz_graph_fuses(const cz_graph *g) { return !g->config.training && !g->config.unfused; }
cz_precision cz_graph_precision(const cz_graph *g) { return g->config.precision; }
cz_rng *cz_graph_rng(cz_graph *g) { return &g->rng; }
void cz_graph_freeze_new_params(cz_graph *g, bool frozen) { g->new_params_frozen = frozen; }
void cz_graph_set_frozen(cz_graph *g, bool frozen) { g->frozen = frozen; }
const cz_param_store *cz_graph_params(const cz_graph *g) { return &g->store; }
void cz_graph_params_changed(cz_graph *g) { g->params_version++; }
uint64_t cz_graph_params_version(const cz_graph *g) { return g->params_version; }

cz_tensor *cz_graph_error(cz_graph *g, cz_status status, const char *fmt, ...)
{
    if (g->status == CZ_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->error, sizeof g->error, fmt, ap);
        va_end(ap);
        g->status = status;
    }
    return NULL;
}

static cz_tensor *new_tensor(cz_graph *g, cz_tensor_kind kind, const char *name,
                             int64_t n, int64_t c, int64_t h, int64_t w)
{
    if (g->status != CZ_OK)
        return NULL;
    if (g->planned)
        return cz_graph_error(g, CZ_ERR_INVALID, "graph: tensor added after planning");
    if (n < 1 || c < 1 || h < 1 || w < 1 || n > CZ_MAX_NUMEL || c > CZ_MAX_NUMEL / n ||
        h > CZ_MAX_NUMEL / (n * c) || w > CZ_MAX_NUMEL / (n * c * h))
        return cz_graph_error(g, CZ_ERR_TOO_LARGE,
                              "graph: bad tensor shape [%lld, %lld, %lld, %lld]%s%s",
                              (long long)n, (long long)c, (long long)h, (long long)w,
                              name ? " for " : "", name ? name : "");
    if (g->n_tensors == g->cap_tensors) {
        int cap = g->cap_tensors ? 2 * g->cap_tensors : 64;
        cz_tensor **grown = realloc(g->tensors, (size_t)cap * sizeof *grown);
        if (!grown)
            return cz_graph_error(g, CZ_ERR_NOMEM, "graph: out of memory");
        g->tensors = grown;
        g->cap_tensors = cap;
    }
    cz_tensor *t = calloc(1, sizeof *t);
    if (!t || (name && !(t->name = strdup(name)))) {
        free(t);
        return cz_graph_error(g, CZ_ERR_NOMEM, "graph: out of memory");
    }
    t->n = n, t->c = c, t->h = h, t->w = w;
    t->ndim = 4;
    t->kind = kind;
    t->producer = t->last_consumer = -1;
    g->tensors[g->n_tensors++] = t;
    return t;
}

cz_tensor *cz_graph_input(cz_graph *g, const char *name, int64_t n, int64_t c,
                          int64_t h, int64_t w, bool requires_grad)
{
    cz_tensor *t = new_tensor(g, CZ_TENSOR_INPUT, name, n, c, h, w);
    if (t)
        t->requires_grad = t->may_need_grad = requires_grad && g->config.training;
    return t;
}

static cz_tensor *shaped(cz_graph *g, cz_tensor_kind kind, const char *name, int ndim,
                         const int64_t *shape)
{
    if (g->status == CZ_OK && (ndim < 1 || ndim > 4))
        return cz_graph_error(g, CZ_ERR_INVALID, "graph: %s has rank %d", name, ndim);
    int64_t dims[4] = {1, 1, 1, 1};
    for (int i = 0; i < ndim && i < 4; i++)
        dims[i] = shape[i];
    cz_tensor *t = new_tensor(g, kind, name, dims[0], dims[1], dims[2], dims[3]);
    if (t)
        t->ndim = ndim;
    return t;
}

cz_tensor *cz_graph_param(cz_graph *g, const char *name, int ndim,
                          const int64_t *shape, cz_init init, float init_scale)
{
    cz_tensor *t = shaped(g, CZ_TENSOR_PARAM, name, ndim, shape);
    if (t) {
        t->trainable = !g->new_params_frozen;
        t->may_need_grad = t->trainable && g->config.training;
        t->init = init;
        t->init_scale = init_scale;
    }
    return t;
}

void cz_graph_keep(cz_graph *g, cz_tensor *t)
{
    if (!t || g->status != CZ_OK)
        return;
    if (g->planned)
        cz_graph_error(g, CZ_ERR_INVALID, "graph: cz_graph_keep after planning");
    else
        t->kept = true;
}

void cz_graph_may_overwrite(cz_graph *g, cz_tensor *out, cz_tensor *in)
{
    if (out && in && !g->planned)
        out->overwrites = in;
}

cz_tensor *cz_graph_buffer(cz_graph *g, const char *name, int ndim,
                           const int64_t *shape, cz_init init)
{
    cz_tensor *t = shaped(g, CZ_TENSOR_BUFFER, name, ndim, shape);
    if (t)
        t->init = init;
    return t;
}

cz_tensor *cz_graph_node(cz_graph *g, const cz_op *op, cz_tensor *const *in,
                         int n_in, int64_t n, int64_t c, int64_t h, int64_t w,
                         void *state)
{
    bool inputs_ok = n_in <= CZ_MAX_INPUTS;
    for (int i = 0; i < n_in && inputs_ok; i++)
        inputs_ok = in[i] != NULL;
    cz_tensor *out = inputs_ok ? new_tensor(g, CZ_TENSOR_ACTIVATION, NULL, n, c, h, w) : NULL;
    if (out && g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
        cz_node *grown = realloc(g->nodes, (size_t)cap * sizeof *grown);
        if (grown) {
            g->nodes = grown;
            g->cap_nodes = cap;
        } else {
            out = cz_graph_error(g, CZ_ERR_NOMEM, "graph: out of memory");
        }
    }
    if (!out) {
        /* A builder that failed still hands over its state. */
        if (op->destroy)
            op->destroy(state);
        else
            free(state);
        if (g->status == CZ_OK)
            cz_graph_error(g, CZ_ERR_INVALID, "graph: %s given a missing input", op->name);
        return NULL;
    }
    int index = g->n_nodes++;
    cz_node *node = &g->nodes[index];
    memset(node, 0, sizeof *node);
    node->op = op;
    node->n_in = n_in;
    node->out = out;
    node->state = state;
    out->producer = index;
    for (int i = 0; i < n_in; i++) {
        node->in[i] = in[i];
        in[i]->consumers++;
        in[i]->last_consumer = index;
        out->may_need_grad |= in[i]->may_need_grad;
    }
    return out;
}

static void *alloc_floats(size_t n)
{
    /* 64-byte alignment suits AVX-512 loads and oneDNN's preferences. */
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

static void init_values(cz_graph *g, cz_tensor *t)
{
    int64_t n = cz_numel(t);
    for (int64_t i = 0; i < n; i++) {
        switch (t->init) {
        case CZ_INIT_ZEROS: t->data[i] = 0.0f; break;
        case CZ_INIT_ONES: t->data[i] = 1.0f; break;
        case CZ_INIT_NORMAL: t->data[i] = t->init_scale * cz_rng_normal(&g->rng); break;
        case CZ_INIT_UNIFORM:
            t->data[i] = t->init_scale * (2.0f * cz_rng_uniform(&g->rng) - 1.0f);
            break;
        }
    }
}

/* Activations are padded to 16 floats so each starts 64-byte aligned. */
static size_t padded(int64_t n) { return ((size_t)n + 15) & ~(size_t)15; }

/* cz_layout: an activation is channels-last where the op that writes it and
 * every op that reads it take that layout (cz_op.layouts). */
static void choose_layouts(cz_graph *g)
{
    bool unfused_inference = !g->config.training && !cz_graph_fuses(g);
    if (g->config.plain_layout || unfused_inference)
        return;
    bool bf16_values = g->config.precision == CZ_BF16;
    cz_layout fast = bf16_values ? CZ_LAYOUT_NHWC_BF16 : CZ_LAYOUT_NHWC_F32;
    bool io = g->config.channels_last_io;
    for (int i = 0; i < g->n_tensors; i++) {
        cz_tensor *t = g->tensors[i];
        bool activation = t->kind == CZ_TENSOR_ACTIVATION && !t->kept &&
                          g->nodes[t->producer].op->layouts != CZ_OP_PLAIN;
        if (activation && t->consumers > 0)
            t->layout = fast;
        else if (io && (activation || t->kind == CZ_TENSOR_INPUT))
            t->layout = CZ_LAYOUT_NHWC_F32; /* the caller's: fp32 */
        else
            t->layout = CZ_LAYOUT_NCHW_F32;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op->layouts == CZ_OP_PLAIN)
            for (int j = 0; j < g->nodes[i].n_in; j++)
                g->nodes[i].in[j]->layout = CZ_LAYOUT_NCHW_F32;
    /* An op that needs one layout for all its tensors makes them all plain
     * unless they agree (one is plain, or an fp32 input meets bf16); that
     * can reach another such op, so repeat until none changes (each round
     * only turns tensors plain). */
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; i < g->n_nodes; i++) {
            cz_node *node = &g->nodes[i];
            if (node->op->layouts != CZ_OP_ONE_LAYOUT)
                continue;
            bool agree = node->out->layout != CZ_LAYOUT_NCHW_F32;
            for (int j = 0; j < node->n_in; j++)
                agree &= node->in[j]->layout == node->out->layout;
            if (agree)
                continue;
            for (int j = 0; j <= node->n_in; j++) {
                cz_tensor *t = j < node->n_in ? node->in[j] : node->out;
                changed |= t->layout != CZ_LAYOUT_NCHW_F32;
                t->layout = CZ_LAYOUT_NCHW_F32;
            }
        }
    }
}

/* --- Memory by liveness (graph.h, engine/liveness.h). In node indices, a
 * shared tensor lives over [producer, last_consumer]: forward writes it in
 * its producer and reads it for the last time in its last consumer;
 * backward runs the nodes from last to first, clearing a gradient before
 * its last consumer's backward and reading it for the last time in its
 * producer's. --- */

typedef enum { VALUES, GRADIENTS } region;

static bool in_region(const cz_tensor *t, region r)
{
    return (t->kind == CZ_TENSOR_ACTIVATION || t->kind == CZ_TENSOR_INPUT) &&
           (r == VALUES || t->may_need_grad);
}

/* A training graph's values are shared where no backward reads them. */
static bool shared_in(const cz_graph *g, const cz_tensor *t, region r)
{
    return t->kind == CZ_TENSOR_ACTIVATION && t->consumers > 0 && !t->kept &&
           (r == GRADIENTS || !g->config.training || !t->read_by_backward);
}

bool cz_backward_reads_nothing(const cz_graph *g, const cz_node *node, int k)
{
    (void)g, (void)node, (void)k;
    return false;
}

bool cz_backward_reads_output(const cz_graph *g, const cz_node *node, int k)
{
    (void)g, (void)node;
    return k == CZ_OUTPUT;
}

bool cz_backward_reads_first_input(const cz_graph *g, const cz_node *node, int k)
{
    (void)g, (void)node;
    return k == 0;
}

/* Sets read_by_backward: for each node whose backward can run (a gradient
 * may reach its output), the operands it says it reads. */
static void mark_read_by_backward(cz_graph *g)
{
    if (!g->config.training)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        const cz_node *node = &g->nodes[i];
        if (!node->op->backward || !node->out->may_need_grad)
            continue;
        for (int k = CZ_OUTPUT; k < node->n_in; k++) {
            cz_tensor *t = k == CZ_OUTPUT ? node->out : node->in[k];
            if (!node->op->backward_reads || node->op->backward_reads(g, node, k))
                t->read_by_backward = true;
        }
    }
}

static float **memory_of(cz_tensor *t, region r) { return r == VALUES ? &t->data : &t->grad; }

/* The floats t's values or gradient take: bf16 values pack two to a float;
 * gradients are always fp32. */
static size_t floats_of(const cz_tensor *t, region r)
{
    size_t bytes = (size_t)cz_numel(t) * (r == VALUES ? cz_value_size(t) : sizeof(float));
    return padded((int64_t)((bytes + sizeof(float) - 1) / sizeof(float)));
}

/* The tensor whose memory t's values take (cz_graph_may_overwrite), or
 * NULL: both share memory by liveness, the other's last reader is t's
 * producer, and they are stored alike (same shape and layout). */
static cz_tensor *overwritten(const cz_graph *g, const cz_tensor *t, region r)
{
    cz_tensor *x = t->overwrites;
    bool can = r == VALUES && x && shared_in(g, t, r) && shared_in(g, x, r) &&
               x->last_consumer == t->producer && x->layout == t->layout && x->n == t->n &&
               x->c == t->c && x->h == t->h && x->w == t->w;
    return can ? x : NULL;
}

/* One allocation for the values or the gradients of the activations and
 * inputs: first those with memory of their own (*n_own floats), then the
 * shared part. Sets each tensor's data or grad (and shared_grad). A tensor
 * that overwrites another lengthens the other's span instead of having one
 * (a chain of them, ResNet blocks, shares one). */
static cz_status plan_region(cz_graph *g, region r, float **base, size_t *n_own)
{
    cz_live_span *spans = malloc((size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof *spans);
    if (!spans)
        return cz_fail(g->status = CZ_ERR_NOMEM, "graph: out of memory planning tensors");
    size_t own = 0;
    int n_shared = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        cz_tensor *t = g->tensors[i];
        if (!in_region(t, r))
            continue;
        if (r == GRADIENTS) {
            t->shared_grad = shared_in(g, t, r);
            /* Not an input's: backward twice after one forward adds twice. */
            t->grad_written = t->shared_grad && t->consumers == 1 &&
                              g->nodes[t->last_consumer].op->writes_grads;
        }
        if (overwritten(g, t, r)) {
            const cz_tensor *root = t;
            while (overwritten(g, root, r))
                root = overwritten(g, root, r);
            for (int k = 0; k < n_shared; k++)
                if (spans[k].owner == root)
                    spans[k].last = t->last_consumer;
        } else if (shared_in(g, t, r)) {
            spans[n_shared++] = (cz_live_span){.first = t->producer, .last = t->last_consumer,
                                               .size = floats_of(t, r), .owner = t};
        } else {
            own += floats_of(t, r);
        }
    }
    size_t n_shared_floats = cz_place_by_liveness(spans, n_shared);
    if (n_shared_floats != SIZE_MAX)
        *base = alloc_floats(own + n_shared_floats);
    if (n_shared_floats == SIZE_MAX || !*base) {
        free(spans);
        return cz_fail(g->status = CZ_ERR_NOMEM, "graph: cannot allocate %zu MB of %s",
                       n_shared_floats == SIZE_MAX ? 0 : (own + n_shared_floats) * 4 >> 20,
                       r == VALUES ? "activations" : "activation gradients");
    }
    *n_own = own;
    if (r == VALUES)
        g->n_shared_values = n_shared_floats;
    size_t at = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        cz_tensor *t = g->tensors[i];
        if (in_region(t, r) && !shared_in(g, t, r)) {
            *memory_of(t, r) = *base + at;
            at += floats_of(t, r);
        }
    }
    for (int k = 0; k < n_shared; k++)
        *memory_of(spans[k].owner, r) = *base + own + spans[k].offset;
    for (int i = 0; i < g->n_tensors; i++) { /* in creation order: the root first */
        cz_tensor *t = g->tensors[i];
        if (in_region(t, r) && overwritten(g, t, r))
            *memory_of(t, r) = *memory_of(overwritten(g, t, r), r);
    }
    free(spans);
    return CZ_OK;
}

static size_t aligned64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

void cz_graph_scratch_for(cz_graph *g, cz_call call) { g->scratch_call = call; }

cz_status cz_graph_scratch(cz_graph *g, size_t bytes, cz_scratch_bind bind, void *ctx)
{
    if (g->n_pieces == g->cap_pieces) {
        int cap = g->cap_pieces ? 2 * g->cap_pieces : 64;
        struct scratch_piece *more = realloc(g->pieces, (size_t)cap * sizeof *more);
        if (!more)
            return cz_fail(g->status = CZ_ERR_NOMEM, "graph: out of memory for scratch");
        g->pieces = more;
        g->cap_pieces = cap;
    }
    size_t *call_bytes = &g->op_scratch_bytes[g->scratch_call];
    g->pieces[g->n_pieces++] = (struct scratch_piece){*call_bytes, bind, ctx};
    *call_bytes += aligned64(bytes);
    if (*call_bytes > g->scratch_bytes)
        g->scratch_bytes = *call_bytes;
    return CZ_OK;
}

static cz_status bind_pointer(void *where, void *address)
{
    *(void **)where = address;
    return CZ_OK;
}

cz_status cz_graph_scratch_pointer(cz_graph *g, size_t bytes, void *where)
{
    return cz_graph_scratch(g, bytes, bind_pointer, where);
}

/* One allocation, for the op call that asked for the most; binds every
 * piece. */
static cz_status bind_scratch(cz_graph *g)
{
    if (g->n_pieces == 0)
        return CZ_OK;
    g->scratch = aligned_alloc(64, g->scratch_bytes);
    if (!g->scratch)
        return cz_fail(g->status = CZ_ERR_NOMEM, "graph: cannot allocate %zu MB of scratch",
                       g->scratch_bytes >> 20);
    cz_status st = CZ_OK;
    for (int i = 0; i < g->n_pieces && st == CZ_OK; i++)
        st = g->pieces[i].bind(g->pieces[i].ctx, (char *)g->scratch + g->pieces[i].offset);
    return st == CZ_OK ? CZ_OK : (g->status = st);
}

cz_status cz_graph_plan(cz_graph *g)
{
    if (g->status != CZ_OK)
        return cz_fail(g->status, "%s", g->error);
    if (g->planned)
        return CZ_OK;
    if (g->config.precision == CZ_BF16 && !cz_dnnl_has_bf16_kernels())
        return cz_fail(g->status = CZ_ERR_INVALID,
                       "bf16 needs a CPU with AVX-512, and this one has none (oneDNN runs fp32 only here)");

    /* Sizes of the parameter regions. */
    size_t n_trainable = 0, n_frozen = 0, n_buffers = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        cz_tensor *t = g->tensors[i];
        size_t n = (size_t)cz_numel(t);
        if (t->kind == CZ_TENSOR_PARAM)
            *(t->trainable ? &n_trainable : &n_frozen) += n;
        else if (t->kind == CZ_TENSOR_BUFFER)
            n_buffers += n;
    }
    cz_param_store *s = &g->store;
    s->n_trainable = n_trainable;
    s->n_params = n_trainable + n_frozen;
    s->n_total = s->n_params + n_buffers;
    s->data = alloc_floats(s->n_total);
    s->grad = alloc_floats(g->config.training ? n_trainable : 0);
    if (!s->data || !s->grad)
        return cz_fail(g->status = CZ_ERR_NOMEM, "graph: cannot allocate %zu MB of parameters",
                       (s->n_total + n_trainable) * 4 >> 20);
    choose_layouts(g);
    mark_read_by_backward(g);
    cz_status st = plan_region(g, VALUES, &g->activations, &g->n_own_values);
    if (st == CZ_OK)
        st = plan_region(g, GRADIENTS, &g->activation_grads, &g->n_own_grads);
    if (st != CZ_OK)
        return st;

    /* Hand out the parameter regions. */
    size_t trainable = 0, frozen = n_trainable, buffer = s->n_params;
    for (int i = 0; i < g->n_tensors; i++) {
        cz_tensor *t = g->tensors[i];
        size_t n = (size_t)cz_numel(t);
        switch (t->kind) {
        case CZ_TENSOR_ACTIVATION:
        case CZ_TENSOR_INPUT:
            break; /* plan_region */
        case CZ_TENSOR_PARAM:
            if (t->trainable) {
                t->data = s->data + trainable;
                if (g->config.training)
                    t->grad = s->grad + trainable;
                trainable += n;
            } else {
                t->data = s->data + frozen;
                frozen += n;
            }
            if (!g->config.params_copied_in)
                init_values(g, t);
            break;
        case CZ_TENSOR_BUFFER:
            t->data = s->data + buffer;
            buffer += n;
            if (!g->config.params_copied_in)
                init_values(g, t);
            break;
        }
    }
    g->planned = true;

    for (int i = 0; i < g->n_nodes; i++) {
        cz_node *node = &g->nodes[i];
        g->op_scratch_bytes[CZ_FORWARD_CALL] = g->op_scratch_bytes[CZ_BACKWARD_CALL] = 0;
        g->scratch_call = CZ_FORWARD_CALL;
        if (node->op->plan) {
            st = node->op->plan(g, node);
            if (st != CZ_OK)
                return g->status = st;
        }
    }
    return bind_scratch(g);
}

cz_status cz_graph_forward(cz_graph *g)
{
    if (!g->planned && g->status == CZ_OK)
        cz_graph_error(g, CZ_ERR_INVALID, "graph: forward before planning");
    for (int i = 0; i < g->n_nodes && g->status == CZ_OK; i++)
        g->nodes[i].op->forward(g, &g->nodes[i]);
    if (g->status != CZ_OK)
        return cz_fail(g->status, "%s", g->error);
    if (g->config.training && g->config.poison_unread_values)
        for (size_t i = 0; i < g->n_shared_values; i++)
            g->activations[g->n_own_values + i] = NAN;
    memset(g->activation_grads, 0, g->n_own_grads * sizeof(float));
    return CZ_OK;
}

cz_status cz_graph_backward(cz_graph *g)
{
    if (!g->planned && g->status == CZ_OK)
        cz_graph_error(g, CZ_ERR_INVALID, "graph: backward before planning");
    if (g->status != CZ_OK)
        return cz_fail(g->status, "%s", g->error);
    /* Which tensors a gradient reaches right now: frozen parameters and
     * inputs that were not asked for stop it. */
    for (int i = 0; i < g->n_tensors; i++) {
        cz_tensor *t = g->tensors[i];
        t->needs_grad = t->kind == CZ_TENSOR_INPUT   ? t->requires_grad
                        : t->kind == CZ_TENSOR_PARAM ? t->grad && !g->frozen
                                                     : false;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        cz_node *node = &g->nodes[i];
        for (int j = 0; j < node->n_in; j++)
            node->out->needs_grad |= node->in[j]->needs_grad;
    }
    for (int i = g->n_nodes - 1; i >= 0 && g->status == CZ_OK; i--) {
        cz_node *node = &g->nodes[i];
        for (int j = 0; j < node->n_in; j++) {
            cz_tensor *x = node->in[j];
            if (x->shared_grad && !x->grad_written && x->last_consumer == i)
                memset(x->grad, 0, (size_t)cz_numel(x) * sizeof(float));
        }
        if (node->out->needs_grad && node->op->backward)
            node->op->backward(g, node);
    }
    return g->status == CZ_OK ? CZ_OK : cz_fail(g->status, "%s", g->error);
}

void cz_graph_zero_grad(cz_graph *g)
{
    memset(g->store.grad, 0, g->store.n_trainable * sizeof(float));
}

void cz_tensor_seed(cz_tensor *t, float scale)
{
    int64_t n = cz_numel(t);
    for (int64_t i = 0; i < n; i++)
        t->grad[i] += scale;
}

int cz_graph_n_named(const cz_graph *g)
{
    int count = 0;
    for (int i = 0; i < g->n_tensors; i++)
        count += g->tensors[i]->kind == CZ_TENSOR_PARAM || g->tensors[i]->kind == CZ_TENSOR_BUFFER;
    return count;
}

cz_tensor *cz_graph_named(const cz_graph *g, int index)
{
    for (int i = 0; i < g->n_tensors; i++) {
        cz_tensor *t = g->tensors[i];
        if ((t->kind == CZ_TENSOR_PARAM || t->kind == CZ_TENSOR_BUFFER) && index-- == 0)
            return t;
    }
    return NULL;
}

int cz_graph_n_nodes(const cz_graph *g) { return g->n_nodes; }

const char *cz_graph_node_op(const cz_graph *g, int i)
{
    return i >= 0 && i < g->n_nodes ? g->nodes[i].op->name : NULL;
}

const cz_node *cz_graph_producer(const cz_graph *g, const cz_tensor *t)
{
    return t->producer >= 0 ? &g->nodes[t->producer] : NULL;
}

cz_tensor *cz_graph_find(const cz_graph *g, const char *name)
{
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i]->name && strcmp(g->tensors[i]->name, name) == 0)
            return g->tensors[i];
    return NULL;
}
