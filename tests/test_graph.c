/* The graph's contracts: planned memory (no malloc in a training step),
 * frozen parameters, the GAN pattern, gradient accumulation, determinism,
 * thread-count independence, a tiny net that learns, parameters left for a
 * model to fill, and memory shared by liveness (values and gradients the
 * same, bit for bit, as with every tensor in memory of its own). */
#include <dlfcn.h>
#include <omp.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "gradcheck.h"
#include "ops/ops.h"
#include "optim/adam.h"

/* --- Counting allocations: the test binary's malloc wraps glibc's and
 * counts the calls made from our own code (linked into this executable),
 * apart from those oneDNN's C++ runtime makes for its own bookkeeping.
 * Sanitizer builds own malloc themselves, so the count is release-only. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_MALLOC 0
#else
#define COUNT_MALLOC 1
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
static long ours, theirs;
static _Thread_local int counting;

int main(void);
static void count(void *caller)
{
    if (counting)
        return;
    counting = 1;
    Dl_info at, self;
    if (dladdr(caller, &at) && dladdr((void *)main, &self) && at.dli_fbase == self.dli_fbase)
        __atomic_add_fetch(&ours, 1, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(&theirs, 1, __ATOMIC_RELAXED);
    counting = 0;
}
void *malloc(size_t size) { count(__builtin_return_address(0)); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count(__builtin_return_address(0)); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { count(__builtin_return_address(0)); return __libc_realloc(p, size); }
void *aligned_alloc(size_t alignment, size_t size)
{
    count(__builtin_return_address(0));
    return __libc_memalign(alignment, size);
}
int posix_memalign(void **p, size_t alignment, size_t size)
{
    count(__builtin_return_address(0));
    *p = __libc_memalign(alignment, size);
    return *p ? 0 : 12;
}
#endif

/* A small conv-BN-ReLU-dropout-conv net with an L1 loss against a target. */
typedef struct {
    cz_graph *g;
    cz_tensor *x, *target, *y, *loss;
} small_net;

static cz_tensor *conv_layer(cz_graph *g, const char *name, cz_tensor *x, int64_t oc)
{
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    int64_t w[4] = {oc, x ? x->c : 1, 3, 3}, b[1] = {oc};
    return cz_conv2d(g, x, cz_graph_param(g, wn, 4, w, CZ_INIT_NORMAL, 0.2f),
                     cz_graph_param(g, bn, 1, b, CZ_INIT_ZEROS, 0), 1, 1, 1);
}

static small_net make_net(uint64_t seed, bool training, bool freeze_first, bool input_grad)
{
    small_net s;
    cz_graph_config cfg = {.training = training, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = seed};
    s.g = cz_graph_create(&cfg);
    s.x = cz_graph_input(s.g, "x", 2, 1, 12, 12, input_grad);
    cz_graph_freeze_new_params(s.g, freeze_first);
    cz_tensor *h = conv_layer(s.g, "conv1", s.x, 8);
    cz_graph_freeze_new_params(s.g, false);
    int64_t c[1] = {8};
    h = cz_batch_norm2d(s.g, h, cz_graph_param(s.g, "bn.weight", 1, c, CZ_INIT_ONES, 0),
                        cz_graph_param(s.g, "bn.bias", 1, c, CZ_INIT_ZEROS, 0),
                        cz_graph_buffer(s.g, "bn.running_mean", 1, c, CZ_INIT_ZEROS),
                        cz_graph_buffer(s.g, "bn.running_var", 1, c, CZ_INIT_ONES), 0.1f, 1e-5f);
    h = cz_dropout(s.g, cz_relu(s.g, h), 0.25f);
    s.y = conv_layer(s.g, "conv2", h, 2);
    s.target = cz_graph_input(s.g, "target", 2, 2, 12, 12, false);
    s.loss = cz_l1_loss(s.g, s.y, s.target);
    CHECK(cz_graph_plan(s.g) == CZ_OK, "plan: %s", cz_last_error());
    cz_rng rng;
    cz_rng_seed(&rng, 42);
    fill_uniform(&rng, s.x->data, cz_numel(s.x), -1, 1);
    fill_uniform(&rng, s.target->data, cz_numel(s.target), -1, 1);
    return s;
}

static void train_steps(small_net *s, cz_adam *adam, int steps)
{
    for (int i = 0; i < steps; i++) {
        cz_graph_zero_grad(s->g);
        cz_graph_forward(s->g);
        cz_tensor_seed(s->loss, 1.0f);
        cz_graph_backward(s->g);
        cz_adam_step(adam, s->g);
    }
}

static const cz_adam_config adam_cfg = {.lr = 1e-2f, .beta1 = 0.5f, .beta2 = 0.999f, .eps = 1e-8f};

static void test_no_malloc_in_step(void)
{
#if COUNT_MALLOC
    long at_start = ours;
#endif
    small_net s = make_net(1, true, false, false);
#if COUNT_MALLOC
    CHECK(ours > at_start, "the allocation counter missed the graph's own allocations");
#endif
    cz_adam *adam = cz_adam_create(&adam_cfg, cz_graph_params(s.g)->n_trainable);
    train_steps(&s, adam, 2); /* oneDNN sets up its caches on first use */
#if COUNT_MALLOC
    long before = ours, before_theirs = theirs;
    train_steps(&s, adam, 3);
    CHECK(ours == before, "a training step allocated %ld times", ours - before);
    printf("3 training steps: %ld allocations by colorize, %ld inside oneDNN's execute calls\n",
           ours - before, theirs - before_theirs);
#endif
    cz_adam_free(adam);
    cz_graph_free(s.g);
}

static void test_frozen(void)
{
    /* Frozen at build: no gradient memory, parameters never change. */
    small_net s = make_net(2, true, true, false);
    cz_tensor *w1 = cz_graph_find(s.g, "conv1.weight"), *w2 = cz_graph_find(s.g, "conv2.weight");
    CHECK(w1 && !w1->grad && !w1->trainable, "frozen parameter has gradient memory");
    CHECK(w2 && w2->grad, "trainable parameter lacks gradient memory");
    CHECK(cz_graph_params(s.g)->n_trainable == cz_graph_params(s.g)->n_params - 8 * 9 - 8,
          "frozen parameters counted as trainable");
    float before[72];
    memcpy(before, w1->data, sizeof before);
    cz_adam *adam = cz_adam_create(&adam_cfg, cz_graph_params(s.g)->n_trainable);
    train_steps(&s, adam, 3);
    CHECK(memcmp(before, w1->data, sizeof before) == 0, "a frozen parameter changed");
    cz_adam_free(adam);
    cz_graph_free(s.g);
}

static void test_gan_pattern(void)
{
    /* The discriminator D: gradients of its loss reach its input, while its
     * own gradients and weights stay exactly as they were. */
    small_net d = make_net(3, true, false, true);
    cz_graph_zero_grad(d.g);
    cz_graph_forward(d.g);
    cz_tensor_seed(d.loss, 1.0f);
    cz_graph_backward(d.g); /* D's own step leaves gradients behind */
    const cz_param_store *ps = cz_graph_params(d.g);
    size_t n = ps->n_trainable;
    float *grads = malloc(n * sizeof *grads), *weights = malloc(n * sizeof *weights);
    memcpy(grads, ps->grad, n * sizeof *grads);
    memcpy(weights, ps->data, n * sizeof *weights);

    cz_graph_set_frozen(d.g, true);
    cz_graph_forward(d.g);
    cz_tensor_seed(d.loss, 1.0f);
    cz_graph_backward(d.g);
    CHECK(memcmp(grads, ps->grad, n * sizeof *grads) == 0, "frozen D's gradients changed");
    CHECK(memcmp(weights, ps->data, n * sizeof *weights) == 0, "frozen D's weights changed");
    double norm = 0;
    for (int64_t i = 0; i < cz_numel(d.x); i++)
        norm += fabs(d.x->grad[i]);
    CHECK(norm > 0, "no gradient reached the input through a frozen D");

    /* Unfrozen again, a second backward adds to the gradients: twice the
     * same backward gives twice the gradient (dropout mask held fixed). */
    cz_graph_set_frozen(d.g, false);
    cz_rng keep = *cz_graph_rng(d.g);
    cz_graph_zero_grad(d.g);
    cz_graph_forward(d.g);
    cz_tensor_seed(d.loss, 1.0f);
    cz_graph_backward(d.g);
    memcpy(grads, ps->grad, n * sizeof *grads);
    *cz_graph_rng(d.g) = keep;
    cz_graph_forward(d.g);
    cz_tensor_seed(d.loss, 1.0f);
    cz_graph_backward(d.g);
    for (size_t i = 0; i < n; i++)
        grads[i] *= 2;
    CHECK_CLOSE("accumulated gradients", ps->grad, grads, (long)n, 1e-6, 1e-6);
    free(grads);
    free(weights);
    cz_graph_free(d.g);
}

/* One training step's loss and gradients, and the parameters after
 * `steps` Adam steps, with the given thread count. */
typedef struct {
    float loss;
    float *grads, *params;
    size_t n_grads, n_params;
} run_result;

static run_result run_with_threads(int threads, int steps)
{
    omp_set_num_threads(threads);
    small_net s = make_net(7, true, false, false);
    cz_adam *adam = cz_adam_create(&adam_cfg, cz_graph_params(s.g)->n_trainable);
    run_result r = {0};
    const cz_param_store *ps = cz_graph_params(s.g);
    r.n_grads = ps->n_trainable;
    r.n_params = ps->n_total;
    r.grads = malloc(r.n_grads * sizeof(float));
    r.params = malloc(r.n_params * sizeof(float));
    for (int i = 0; i < steps; i++) {
        cz_graph_zero_grad(s.g);
        cz_graph_forward(s.g);
        cz_tensor_seed(s.loss, 1.0f);
        cz_graph_backward(s.g);
        if (i == 0) {
            r.loss = s.loss->data[0];
            memcpy(r.grads, ps->grad, r.n_grads * sizeof(float));
        }
        cz_adam_step(adam, s.g);
    }
    memcpy(r.params, ps->data, r.n_params * sizeof(float));
    cz_adam_free(adam);
    cz_graph_free(s.g);
    omp_set_num_threads(2);
    return r;
}

static void test_determinism(void)
{
    /* Same seed, same threads: bit-identical after several steps. 1 vs 2
     * threads: a step's loss and gradients within 1e-5 (the order of sums
     * inside oneDNN's kernels depends on the thread count; Adam's first
     * steps then amplify sign noise on near-zero gradients, so parameters
     * after many steps are not comparable). */
    run_result a = run_with_threads(2, 5), b = run_with_threads(2, 5), c = run_with_threads(1, 5);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0,
          "two runs with the same seed differ");
    CHECK(memcmp(a.grads, b.grads, a.n_grads * sizeof(float)) == 0,
          "two runs with the same seed differ in gradients");
    CHECK(fabsf(a.loss - c.loss) <= 1e-5f * fabsf(a.loss), "loss: 1 thread %.8g, 2 threads %.8g",
          c.loss, a.loss);
    CHECK_NORM_CLOSE("gradients, 1 vs 2 threads", c.grads, a.grads, (long)a.n_grads, 1e-5);
    run_result *all[3] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        free(all[i]->grads);
        free(all[i]->params);
    }
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_learning(void)
{
    /* A fixed image-to-image mapping: target = a 3x3 blur of the input in
     * one channel and its negated horizontal gradient in the other. A
     * two-layer conv net must cut its MSE at least 10x within 20 s. */
    enum { B = 8, S = 24 };
    cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 11};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "x", B, 1, S, S, false);
    int64_t w1[4] = {16, 1, 3, 3}, b1[1] = {16}, w2[4] = {2, 16, 3, 3}, b2[1] = {2};
    cz_tensor *h = cz_relu(g, cz_conv2d(g, x, cz_graph_param(g, "w1", 4, w1, CZ_INIT_NORMAL, 0.3f),
                                        cz_graph_param(g, "b1", 1, b1, CZ_INIT_ZEROS, 0), 1, 1, 1));
    cz_tensor *y = cz_conv2d(g, h, cz_graph_param(g, "w2", 4, w2, CZ_INIT_NORMAL, 0.1f),
                             cz_graph_param(g, "b2", 1, b2, CZ_INIT_ZEROS, 0), 1, 1, 1);
    cz_tensor *target = cz_graph_input(g, "target", B, 2, S, S, false);
    cz_tensor *loss = cz_mse_loss(g, y, target);
    CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
    cz_adam_config c = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    cz_adam *adam = cz_adam_create(&c, cz_graph_params(g)->n_trainable);
    cz_rng rng;
    cz_rng_seed(&rng, 5);
    double start = seconds(), first = 0, last = 0;
    int step;
    for (step = 0; step < 3000 && seconds() - start < 20; step++) {
        fill_uniform(&rng, x->data, cz_numel(x), 0, 1);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < S; i++)
                for (int j = 0; j < S; j++) {
                    const float *p = x->data + b * S * S;
                    double blur = 0;
                    for (int di = -1; di <= 1; di++)
                        for (int dj = -1; dj <= 1; dj++) {
                            int ii = i + di, jj = j + dj;
                            if (ii >= 0 && ii < S && jj >= 0 && jj < S)
                                blur += p[ii * S + jj] / 9.0;
                        }
                    double right = j + 1 < S ? p[i * S + j + 1] : 0, left = j > 0 ? p[i * S + j - 1] : 0;
                    target->data[((b * 2 + 0) * S + i) * S + j] = (float)blur;
                    target->data[((b * 2 + 1) * S + i) * S + j] = (float)(left - right);
                }
        cz_graph_zero_grad(g);
        cz_graph_forward(g);
        if (step == 0)
            first = loss->data[0];
        last = loss->data[0];
        if (first / last >= 10 && step > 50)
            break;
        cz_tensor_seed(loss, 1.0f);
        cz_graph_backward(g);
        cz_adam_step(adam, g);
    }
    printf("learning: loss %.5f -> %.5f (%.1fx) in %d steps, %.2f s\n", first, last, first / last,
           step, seconds() - start);
    CHECK(first / last >= 10, "loss fell only %.2fx in %.1f s", first / last, seconds() - start);
    cz_adam_free(adam);
    cz_graph_free(g);
}

/* A graph whose parameters a model will fill leaves them zero; otherwise
 * plan draws them (weights from N(0, 0.2^2)) and sets declared constants. */
static void test_params_copied_in(void)
{
    for (int copied_in = 0; copied_in <= 1; copied_in++) {
        cz_graph_config cfg = {.precision = CZ_FP32, .seed = 3, .params_copied_in = copied_in};
        cz_graph *g = cz_graph_create(&cfg);
        cz_tensor *x = cz_graph_input(g, "x", 1, 1, 8, 8, false);
        conv_layer(g, "conv", x, 4);
        int64_t c[1] = {4};
        cz_tensor *var = cz_graph_buffer(g, "bn.running_var", 1, c, CZ_INIT_ONES);
        CHECK(cz_graph_plan(g) == CZ_OK, "plan: %s", cz_last_error());
        const cz_param_store *ps = cz_graph_params(g);
        size_t nonzero = 0;
        for (size_t i = 0; i < ps->n_total; i++)
            nonzero += ps->data[i] != 0.0f;
        if (copied_in)
            CHECK(nonzero == 0, "params_copied_in: %zu of %zu values are not zero", nonzero, ps->n_total);
        else
            CHECK(nonzero == 4 * 9 + 4 && var->data[0] == 1.0f,
                  "drawn: %zu nonzero values of %zu, running_var %g", nonzero, ps->n_total, var->data[0]);
        cz_graph_free(g);
    }
}

/* A chain of conv+activation layers, each with another activation (every
 * op whose backward writes a gradient it alone contributes: cz_op's
 * writes_grads), with a skip connection from `mid` (read by the next layer
 * and by the add at the end), its activation gradients (or, in an
 * inference graph, values) shared by liveness, or kept (cz_graph_keep) for
 * mid alone or for every activation, which is the plain reference. */
typedef enum { KEEP_NONE, KEEP_MID, KEEP_ALL } chain_keep;
typedef struct {
    cz_graph *g;
    cz_tensor *x, *mid, *loss, *acts[16];
    int n_acts;
} chain_net;

static chain_net make_chain(chain_keep keep, bool training)
{
    chain_net c = {0};
    /* Plain layouts: kept tensors are plain, and a batch norm's sums run in
     * another order channels-last (test_layout compares layouts). */
    cz_graph_config cfg = {.training = training, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 11,
                           .plain_layout = true};
    c.g = cz_graph_create(&cfg);
    c.x = cz_graph_input(c.g, "x", 2, 1, 10, 10, true);
    cz_tensor *h = c.x, *skip = NULL;
    char name[32];
    int64_t channels[1] = {8};
    for (int layer = 0; layer < 6; layer++) {
        snprintf(name, sizeof name, "conv%d", layer);
        c.acts[c.n_acts++] = h = conv_layer(c.g, name, h, 8);
        switch (layer) {
        case 0: h = cz_relu(c.g, h); break;
        case 1:
            snprintf(name, sizeof name, "bn%d.weight", layer);
            cz_tensor *w = cz_graph_param(c.g, name, 1, channels, CZ_INIT_NORMAL, 1.0f);
            snprintf(name, sizeof name, "bn%d.bias", layer);
            cz_tensor *b = cz_graph_param(c.g, name, 1, channels, CZ_INIT_NORMAL, 0.5f);
            snprintf(name, sizeof name, "bn%d.running_mean", layer);
            cz_tensor *mean = cz_graph_buffer(c.g, name, 1, channels, CZ_INIT_ZEROS);
            snprintf(name, sizeof name, "bn%d.running_var", layer);
            cz_tensor *var = cz_graph_buffer(c.g, name, 1, channels, CZ_INIT_ONES);
            h = cz_batch_norm2d_relu(c.g, h, w, b, mean, var, 0.1f, 1e-5f);
            break;
        case 2: h = cz_leaky_relu(c.g, h, 0.2f); break;
        case 3: h = cz_tanh(c.g, h); break;
        case 4: h = cz_sigmoid(c.g, h); break;
        case 5: h = cz_dropout(c.g, h, 0.25f); break;
        }
        c.acts[c.n_acts++] = h;
        if (layer == 1)
            c.mid = skip = h;
    }
    c.acts[c.n_acts++] = h = cz_add_relu(c.g, h, skip);
    c.acts[c.n_acts++] = h = conv_layer(c.g, "head", h, 2);
    cz_tensor *target = cz_graph_input(c.g, "target", 2, 2, 10, 10, false);
    c.loss = cz_l1_loss(c.g, h, target);
    for (int i = 0; i < c.n_acts; i++)
        if (keep == KEEP_ALL || (keep == KEEP_MID && c.acts[i] == c.mid))
            cz_graph_keep(c.g, c.acts[i]);
    CHECK(cz_graph_plan(c.g) == CZ_OK, "plan: %s", cz_last_error());
    cz_rng rng;
    cz_rng_seed(&rng, 5);
    fill_uniform(&rng, c.x->data, cz_numel(c.x), -1, 1);
    fill_uniform(&rng, target->data, cz_numel(target), -1, 1);
    return c;
}

/* One forward and backward; `extra` is added into mid's gradient between
 * them (as training adds D's gradient into G's output). */
static void chain_step(chain_net *c, float extra)
{
    cz_graph_zero_grad(c->g);
    cz_graph_forward(c->g);
    cz_tensor_seed(c->loss, 1.0f);
    if (extra != 0.0f)
        cz_tensor_seed(c->mid, extra);
    cz_graph_backward(c->g);
}

static bool same_grads(const chain_net *a, const chain_net *b)
{
    const cz_param_store *pa = cz_graph_params(a->g), *pb = cz_graph_params(b->g);
    return pa->n_trainable == pb->n_trainable &&
           memcmp(pa->grad, pb->grad, pa->n_trainable * sizeof(float)) == 0 &&
           memcmp(a->x->grad, b->x->grad, (size_t)cz_numel(a->x) * sizeof(float)) == 0;
}

/* The extent of the activations' values or gradients in memory. */
static int64_t extent(const chain_net *c, bool grads)
{
    const float *lo = grads ? c->acts[0]->grad : c->acts[0]->data, *hi = lo;
    for (int i = 0; i < c->n_acts; i++) {
        const float *p = grads ? c->acts[i]->grad : c->acts[i]->data;
        lo = p < lo ? p : lo;
        hi = p + cz_numel(c->acts[i]) > hi ? p + cz_numel(c->acts[i]) : hi;
    }
    return hi - lo;
}

/* An inference graph's activations share memory by liveness and compute
 * the same, bit for bit. */
static void test_value_liveness(void)
{
    chain_net shared = make_chain(KEEP_NONE, false), own = make_chain(KEEP_ALL, false);
    cz_graph_forward(shared.g);
    cz_graph_forward(own.g);
    CHECK(memcmp(shared.loss->data, own.loss->data, sizeof(float)) == 0 && own.loss->data[0] > 0,
          "shared values change the loss: %.9g against %.9g", shared.loss->data[0], own.loss->data[0]);
    int64_t one = cz_numel(shared.acts[0]);
    CHECK(extent(&shared, false) <= 3 * one, "14 activations span %lld floats, more than 3 x %lld",
          (long long)extent(&shared, false), (long long)one);
    CHECK(extent(&own, false) >= 12 * one, /* 12 of 8 channels: dropout is no node here */ "kept activations span only %lld floats",
          (long long)extent(&own, false));
    cz_graph_free(shared.g);
    cz_graph_free(own.g);
}

/* Activation gradients shared by liveness, and written by their only
 * reader's backward where they can be, give the same gradients, bit for
 * bit, as gradients each in memory of their own and added to, twice in a
 * row (each backward clears what it reuses), in far less memory; a kept
 * gradient takes what the caller adds into it. */
static void test_grad_liveness(void)
{
    chain_net shared = make_chain(KEEP_NONE, true), own = make_chain(KEEP_ALL, true);
    /* Every activation but mid (two readers) and the head (read by the
     * loss) has its gradient written by its one reader, not cleared and
     * added to; kept ones never. */
    int written = 0, kept_written = 0;
    for (int i = 0; i < shared.n_acts; i++) {
        written += shared.acts[i]->grad_written;
        kept_written += own.acts[i]->grad_written;
    }
    CHECK(written == shared.n_acts - 2 && !shared.mid->grad_written && kept_written == 0,
          "%d of %d gradients written (mid %d), %d kept ones", written, shared.n_acts,
          shared.mid->grad_written, kept_written);
    /* The values no backward reads share memory too, and every forward
     * ends by filling it with NaN (poison_unread_values), so the equal
     * gradients below also show that none of them was read: the inputs of
     * relu, leaky_relu, tanh, sigmoid and dropout, and dropout's output
     * (add_relu reads only its own). */
    int unread = 0;
    for (int i = 0; i < shared.n_acts; i++)
        unread += !shared.acts[i]->read_by_backward;
    int expect[] = {0, 4, 6, 8, 10, 11};
    bool as_expected = unread == 6;
    for (int i = 0; i < 6; i++)
        as_expected &= !shared.acts[expect[i]]->read_by_backward;
    CHECK(as_expected, "%d of %d values unread by backward, expected 6", unread, shared.n_acts);
    for (int step = 0; step < 2; step++) {
        chain_step(&shared, 0);
        chain_step(&own, 0);
        CHECK(same_grads(&shared, &own), "step %d: shared activation gradients change the result", step);
    }
    /* Memory: never more than four 8-channel gradients live at once (a
     * node's output, its inputs, and the skip), against 14 without. */
    int64_t one = cz_numel(shared.acts[0]);
    CHECK(extent(&shared, true) <= 4 * one, "14 activation gradients span %lld floats, more than 4 x %lld",
          (long long)extent(&shared, true), (long long)one);
    CHECK(shared.mid->grad != shared.acts[shared.n_acts - 2]->grad,
          "the skip's gradient shares memory with the add's, which is live at the same time");
    cz_graph_free(shared.g);
    cz_graph_free(own.g);

    /* Adding into mid's gradient between forward and backward: with mid
     * kept, the result is the reference's. Fresh graphs, so that both draw
     * the same dropout masks step by step. */
    chain_net with_mid = make_chain(KEEP_MID, true);
    own = make_chain(KEEP_ALL, true);
    chain_step(&with_mid, 0.25f);
    chain_step(&own, 0.25f);
    CHECK(same_grads(&with_mid, &own), "a kept gradient lost what was added into it");
    chain_step(&with_mid, 0);
    chain_step(&own, 0.25f);
    CHECK(!same_grads(&with_mid, &own), "adding into mid's gradient changed nothing");
    cz_graph_free(with_mid.g);
    cz_graph_free(own.g);
}

int main(void)
{
    test_no_malloc_in_step();
    test_frozen();
    test_gan_pattern();
    test_determinism();
    test_learning();
    test_params_copied_in();
    test_grad_liveness();
    test_value_liveness();
    return check_finish("test_graph");
}
