/*
 * The engine: a static computation graph over NCHW fp32 tensors (activations
 * are kept channels-last where the ops allow: cz_layout).
 *
 * Model code builds a graph once for a fixed batch and image size. Leaves are
 * declared with cz_graph_input (data the caller fills before each step) and
 * cz_graph_param (weights, owned by the graph); op builders in ops/ops.h append
 * nodes and return their output tensors. Builders propagate failure: if any
 * argument is NULL they return NULL, and the first error is kept in the graph,
 * so model code reads as a plain sequence of layers and checks once, at
 * cz_graph_plan.
 *
 * cz_graph_plan allocates every buffer in one go (activations, gradients,
 * parameters, optimiser-visible flat arrays) and creates the oneDNN
 * primitives, so a training step never calls malloc.
 *
 * A step: fill the inputs, cz_graph_forward, seed the gradient of whatever
 * is being minimised (cz_tensor_seed for a scalar loss, or write into an
 * output's grad directly: see cz_graph_keep), then cz_graph_backward.
 * Backward *adds* into gradients: parameter gradients accumulate over
 * several backward calls until cz_graph_zero_grad.
 *
 * Memory by liveness: a tensor that nodes consume is needed only from the
 * node that produces it to its last consumer, and tensors whose spans do
 * not overlap share memory. That holds for the values of an inference
 * graph's activations, and for the gradients of a training graph's (each
 * exists from the backward of its last consumer, which clears it, to the
 * backward of its producer). A training graph's values stay for backward
 * where a backward reads them (cz_op.backward_reads: a batch norm's input,
 * a relu's output); the others are shared by liveness as in inference.
 * Inputs, tensors nothing consumes (outputs, losses) and those given to
 * cz_graph_keep have memory of their own, gradients cleared by each
 * forward. A shared gradient with a single contribution (one consumer,
 * whose op writes_grads) is written by it rather than cleared and added to:
 * grad_written.
 *
 * Parameters are laid out in one flat array: trainable ones first, then frozen
 * ones, then buffers (BatchNorm running statistics). param_grad covers exactly
 * the trainable prefix, with the same offsets, so the optimiser is one loop.
 * Parameters created while cz_graph_freeze_new_params(g, true) is in effect are
 * frozen for the life of the graph (no gradient memory, no gradient compute);
 * cz_graph_set_frozen freezes all parameters for a while (no gradient compute),
 * which is how a GAN back-propagates through its discriminator into the
 * generator without touching the discriminator's gradients.
 */
#ifndef CZ_ENGINE_GRAPH_H
#define CZ_ENGINE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "colorize.h"

typedef enum {
    CZ_FP32, /* all math in fp32 */
    CZ_BF16, /* convolutions and matrix products in bf16 on fp32 master weights,
                accumulation and normalisation statistics in fp32 */
} cz_precision;

typedef enum {
    CZ_TENSOR_ACTIVATION, /* written by a node */
    CZ_TENSOR_INPUT,      /* written by the caller */
    CZ_TENSOR_PARAM,      /* learned weight */
    CZ_TENSOR_BUFFER,     /* state that is saved but not learned (running stats) */
} cz_tensor_kind;

typedef enum {
    CZ_INIT_ZEROS,
    CZ_INIT_ONES,
    CZ_INIT_NORMAL,  /* N(0, init_scale^2) */
    CZ_INIT_UNIFORM, /* U(-init_scale, init_scale) */
} cz_init;

/* How an activation's values (and its gradient) are stored. Plain NCHW
 * fp32 is what callers, parameters, losses and most ops see. cz_graph_plan
 * stores an activation channels-last instead wherever its producer and
 * every consumer take that layout (cz_op.layouts): NHWC, which is what
 * oneDNN's AMX convolutions read and write, so from one convolution to the
 * next an activation passes with no change of layout. In bf16 graphs it
 * is also bf16, in half the bytes, which is what the convolutions read:
 * in training graphs its gradient stays fp32 (channels-last too), and the
 * backward primitives that want bf16 ones convert within their call.
 * Unfused inference graphs and cz_graph_config.plain_layout keep everything
 * plain. */
typedef enum {
    CZ_LAYOUT_NCHW_F32,
    CZ_LAYOUT_NHWC_F32,
    CZ_LAYOUT_NHWC_BF16, /* data points to uint16_t bf16 values */
} cz_layout;

typedef struct cz_tensor {
    int64_t n, c, h, w;   /* NCHW; vectors and matrices use trailing 1s */
    int ndim;             /* the PyTorch rank, for parameter files: 1, 2 or 4 */
    cz_layout layout;     /* planned by cz_graph_plan; NCHW_F32 unless it says */
    float *data;          /* planned by cz_graph_plan */
    float *grad;          /* NULL where no gradient is kept */
    char *name;           /* parameters and inputs: their name, else NULL */
    cz_tensor_kind kind;
    bool trainable;       /* params: created unfrozen */
    bool requires_grad;   /* inputs: the caller wants d(loss)/d(input) */
    bool may_need_grad;   /* fixed at build: a gradient can ever reach it */
    bool needs_grad;      /* set by each backward: a gradient reaches it now */
    int consumers;        /* how many nodes read it */
    int producer;         /* index of the node that writes it, -1 for leaves */
    int last_consumer;    /* index of the last node that reads it, -1 if none */
    bool kept;            /* cz_graph_keep */
    struct cz_tensor *overwrites; /* cz_graph_may_overwrite */
    bool read_by_backward; /* planned, training graphs: some backward reads its
                              values (cz_op.backward_reads) */
    bool shared_grad;     /* planned: its gradient memory is shared by liveness */
    bool grad_written;    /* planned: its one consumer's backward writes its gradient
                             (cz_op.writes_grads) instead of adding to a cleared one */
    cz_init init;
    float init_scale;
} cz_tensor;

static inline int64_t cz_numel(const cz_tensor *t) { return t->n * t->c * t->h * t->w; }
/* Bytes of one of t's values in its layout (2 for bf16, else 4). */
static inline size_t cz_value_size(const cz_tensor *t)
{
    return t->layout == CZ_LAYOUT_NHWC_BF16 ? 2 : sizeof(float);
}

typedef struct cz_graph cz_graph;
typedef struct cz_node cz_node;

/* Which layouts an op's forward reads and writes (cz_layout). */
typedef enum {
    CZ_OP_PLAIN,      /* plain tensors only */
    CZ_OP_ANY_LAYOUT, /* each input and the output in any layout (oneDNN's
                         primitives, through mirrors that convert) */
    CZ_OP_ONE_LAYOUT, /* any layout shared by its inputs and its output */
} cz_op_layouts;

/* An op: its shape rule lives in its builder; these run it. */
typedef struct cz_op {
    const char *name;
    cz_status (*plan)(cz_graph *g, cz_node *node);   /* may be NULL */
    void (*forward)(cz_graph *g, cz_node *node);
    void (*backward)(cz_graph *g, cz_node *node);     /* may be NULL: no grad */
    void (*destroy)(void *state);                     /* may be NULL: free() */
    cz_op_layouts layouts;
    /* Backward writes the gradient of an input that has grad_written, and
     * adds to the others'. Then a gradient with one contribution is never
     * cleared and read back: a pass less over it, and a oneDNN primitive
     * writes it in place. Ops without it add to every input's gradient. */
    bool writes_grads;
    /* Whether backward reads the values of operand k of the node (an index
     * into in[], or CZ_OUTPUT). In training graphs an activation that no
     * backward reads shares memory by liveness, as in inference, instead of
     * staying until backward. NULL: backward reads every operand. */
    bool (*backward_reads)(const cz_graph *g, const cz_node *node, int k);
} cz_op;

/* cz_op.backward_reads's operand for the node's output. */
#define CZ_OUTPUT (-1)

/* Answers many ops give as their cz_op.backward_reads. */
bool cz_backward_reads_nothing(const cz_graph *g, const cz_node *node, int k);
bool cz_backward_reads_output(const cz_graph *g, const cz_node *node, int k);
bool cz_backward_reads_first_input(const cz_graph *g, const cz_node *node, int k);

/* cond ? a : b with both already computed. Elementwise loops choose this
 * way so that they vectorise: GCC does not move a load or a multiply out of
 * one arm of a ?: (it might trap), and leaves such a loop scalar. */
static inline float cz_select(bool cond, float a, float b) { return cond ? a : b; }

/* For a backward loop over an input's gradient: x->grad[i] = value, or
 * += value, as the plan says (grad_written); i is the loop index, value an
 * expression in it. */
#define CZ_GRAD_LOOP(x, n, i, value)                                        \
    do {                                                                    \
        float *grad_ = (x)->grad;                                           \
        int64_t n_ = (n);                                                   \
        if ((x)->grad_written) {                                            \
            _Pragma("omp parallel for simd schedule(static)")               \
            for (int64_t i = 0; i < n_; i++)                                \
                grad_[i] = (value);                                         \
        } else {                                                            \
            _Pragma("omp parallel for simd schedule(static)")               \
            for (int64_t i = 0; i < n_; i++)                                \
                grad_[i] += (value);                                        \
        }                                                                   \
    } while (0)

#define CZ_MAX_INPUTS 8

struct cz_node {
    const cz_op *op;
    cz_tensor *in[CZ_MAX_INPUTS];
    int n_in;
    cz_tensor *out;
    void *state; /* op-private, owned by the node */
};

typedef struct {
    bool training;          /* batch statistics, dropout, gradient memory */
    cz_precision precision;
    uint64_t seed;          /* parameter initialisation and dropout masks */
    bool unfused;           /* inference: every layer its own op, as in training,
                               instead of fused ones (what tests compare against) */
    bool plain_layout;      /* every tensor plain NCHW fp32 (cz_layout): what
                               tests compare channels-last graphs against */
    bool channels_last_io;  /* inputs and outputs (tensors nothing reads) NHWC
                               fp32 too, where the ops allow: the caller fills
                               and reads them channels-last. How
                               bench/conv_resnet50.c times a convolution as it
                               runs between two layers */
    bool params_copied_in;  /* the caller fills every parameter and buffer after
                               planning (cz_model_to_graph): plan leaves them zero
                               instead of drawing random ones, which costs half a
                               second for a ResNet50 */
    bool poison_unread_values; /* tests: each forward ends by filling with NaN the
                               memory of the values no backward reads, so that a
                               wrong cz_op.backward_reads shows in the gradients */
} cz_graph_config;

cz_graph *cz_graph_create(const cz_graph_config *config);
void cz_graph_free(cz_graph *g);

/* The first build error, or CZ_OK. */
cz_status cz_graph_status(const cz_graph *g);
bool cz_graph_training(const cz_graph *g);
/* Whether layers may be built as fused ops: inference graphs not unfused. */
bool cz_graph_fuses(const cz_graph *g);
cz_precision cz_graph_precision(const cz_graph *g);
cz_rng *cz_graph_rng(cz_graph *g);

/* Leaves. Names are copied. ndim is 1 (C), 2 (N, C) or 4 (N, C, H, W). */
cz_tensor *cz_graph_input(cz_graph *g, const char *name, int64_t n, int64_t c,
                          int64_t h, int64_t w, bool requires_grad);
cz_tensor *cz_graph_param(cz_graph *g, const char *name, int ndim,
                          const int64_t *shape, cz_init init, float init_scale);
cz_tensor *cz_graph_buffer(cz_graph *g, const char *name, int ndim,
                           const int64_t *shape, cz_init init);
void cz_graph_freeze_new_params(cz_graph *g, bool frozen);

/* For op builders: a new activation tensor and a node producing it. The
 * node takes ownership of state (freed with op->destroy, or free). */
cz_tensor *cz_graph_node(cz_graph *g, const cz_op *op, cz_tensor *const *in,
                         int n_in, int64_t n, int64_t c, int64_t h, int64_t w,
                         void *state);
/* For op builders: the node producing out reads in for the last time and
 * may write out over it (a convolution adding its result to a residual).
 * In an inference graph the plan then gives out in's memory where it can
 * (both share memory by liveness and take the same space); the op must
 * work either way. */
void cz_graph_may_overwrite(cz_graph *g, cz_tensor *out, cz_tensor *in);
/* Record a build error (the first one wins) and return NULL. */
cz_tensor *cz_graph_error(cz_graph *g, cz_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The caller reads t's values after a forward of an inference graph, or
 * reads or writes its gradient between a forward and the backward after it
 * (training adds D's input gradient into G's output, which G's L1 loss
 * also consumes): t gets memory of its own instead of memory shared by
 * liveness. Before planning. */
void cz_graph_keep(cz_graph *g, cz_tensor *t);

/* Allocate everything, initialise parameters, create primitives. Once. */
cz_status cz_graph_plan(cz_graph *g);

/* For op plans: scratch, memory an op needs only within one forward or
 * backward call of its own (a primitive's output before it is converted
 * into our tensor, an output gradient converted for the primitive, a
 * primitive's scratchpad). An op asks for its pieces while it plans, each
 * for the call cz_graph_scratch_for last named (forward, until it says
 * otherwise); a call's pieces lie side by side, and every op's calls lie
 * in one region, so the graph holds the memory of the call that needs the
 * most rather than all of theirs. Once every op has planned, bind(ctx,
 * address) gives each piece its 64-byte aligned address; its failure
 * fails the plan. */
typedef enum { CZ_FORWARD_CALL, CZ_BACKWARD_CALL } cz_call;
typedef cz_status (*cz_scratch_bind)(void *ctx, void *address);
void cz_graph_scratch_for(cz_graph *g, cz_call call);
cz_status cz_graph_scratch(cz_graph *g, size_t bytes, cz_scratch_bind bind, void *ctx);
/* The same for a piece the op reaches through a pointer of its own:
 * *(void **)where is set to the piece's address. */
cz_status cz_graph_scratch_pointer(cz_graph *g, size_t bytes, void *where);

/* Both return the graph's status: CZ_OK, or the first failure of a step
 * (after which the graph is unusable). */
cz_status cz_graph_forward(cz_graph *g);
cz_status cz_graph_backward(cz_graph *g);
void cz_graph_zero_grad(cz_graph *g);
void cz_graph_set_frozen(cz_graph *g, bool frozen);
/* Add scale to every element of t's gradient (t must have one). */
void cz_tensor_seed(cz_tensor *t, float scale);

/* Flat parameter storage (valid after plan). */
typedef struct {
    float *data;        /* trainable, then frozen, then buffers */
    float *grad;        /* n_trainable values, same offsets as data */
    size_t n_trainable;
    size_t n_params;    /* trainable + frozen */
    size_t n_total;     /* params + buffers */
} cz_param_store;
const cz_param_store *cz_graph_params(const cz_graph *g);

/* Named parameters and buffers in creation order, for saving and loading. */
int cz_graph_n_named(const cz_graph *g);
cz_tensor *cz_graph_named(const cz_graph *g, int i);
cz_tensor *cz_graph_find(const cz_graph *g, const char *name);

/* The nodes in the order forward runs them: how many, and the name of the
 * op node i runs ("conv2d", "batch_norm2d", ...), for tests. */
int cz_graph_n_nodes(const cz_graph *g);
const char *cz_graph_node_op(const cz_graph *g, int i);
/* The node that writes t, NULL for inputs and parameters. */
const cz_node *cz_graph_producer(const cz_graph *g, const cz_tensor *t);

/* Bumped whenever parameter values change (optimiser step, load), so ops that
 * cache reordered weights know to refresh them. */
void cz_graph_params_changed(cz_graph *g);
uint64_t cz_graph_params_version(const cz_graph *g);

#endif
