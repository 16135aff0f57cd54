/* A convolution's input gradient as forward convolutions, for bf16
 * training graphs.
 *
 * In one dimension, input pixel i of a convolution with stride s, padding p
 * and a kernel of K taps receives w[k] dy[o] for every tap k and output
 * pixel o with o s + k - p = i. oneDNN 2.6.3 computes that with its
 * backward-data kernel (jit:avx512_core_amx_bf16), which its forward brgemm
 * kernels beat on the same numbers, spreading the pixels included, by up to
 * 2x at stride 2 (on par for the unet's 64 -> 128 layer at 128) and
 * 1.0-1.7x at stride 1 (bench/conv_backward_data.c), so here it is written
 * as forward convolutions:
 *
 * The pixels i = m s + r of one phase r (0 <= r < s) receive the taps
 * k = k0 + j s, j < J, with k0 = (r + p) mod s and J = ceil((K - k0) / s),
 * from the output pixels o = m + c - j, c = (r + p) div s. Counting j
 * backwards, that is a stride-1 forward convolution of dy with the kernel
 *     v_r[j'] = w[k0 + (J - 1 - j') s],
 * padded by J - 1 - c on the left: dx[m s + r] = sum_j' v_r[j'] dy[m + j' - (J - 1 - c)].
 * In two dimensions the phases multiply out (s^2 of them), and v swaps the
 * weights' channel dimensions: dy's channels are the convolution's
 * outputs. At stride 1 the one phase writes x's gradient (or adds to it,
 * by a sum post-op); at stride 2 each of the four in turn writes its
 * pixels into scratch, then spreads them into their places in x's
 * gradient. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/half.h"
#include "ops/conv_phases.h"

#define MAX_STRIDE 2
/* Every call writes the kernels v anew (the weights change at every step),
 * at a cost per weight, while the time saved goes with the weights times
 * the output pixels: below so many pixels the kernels cost more than the
 * forward kernel saves (a ResNet decoder's 3x3 convolutions at 7x7 and
 * 14x14, batch 8). At stride 1 the forward kernel saves less, so it
 * needs more pixels. */
#define MIN_PIXELS 4096
#define MIN_PIXELS_STRIDE_1 16384

typedef struct {
    int64_t first_tap[2], taps[2], size[2]; /* k0, J and the pixels, per dimension (h, w) */
    cz_primitive conv;
    dnnl_memory_t kernel;  /* v in bf16 [IC, OC, J_h, J_w], written by us; scratch */
    dnnl_memory_t kernel_prim; /* v in the primitive's layout: kernel itself or scratch */
    cz_primitive reorder;  /* kernel -> kernel_prim; .prim NULL when they are one */
    dnnl_memory_t out;     /* x's gradient (stride 1) or this phase's pixels of it */
} phase;

struct conv_phases {
    int stride, n;
    phase p[MAX_STRIDE * MAX_STRIDE];
    float *pixels; /* scratch, stride > 1: one phase's pixels at a time */
};

void cz_conv_phases_free(conv_phases *ph)
{
    if (!ph)
        return;
    for (int k = 0; k < ph->n; k++) {
        phase *p = &ph->p[k];
        cz_primitive_destroy(&p->conv);
        cz_primitive_destroy(&p->reorder);
        if (p->kernel_prim != p->kernel)
            dnnl_memory_destroy(p->kernel_prim);
        dnnl_memory_destroy(p->kernel);
        dnnl_memory_destroy(p->out);
    }
    free(ph);
}

/* Phase r's geometry in one dimension (input `in`, output `out` pixels):
 * false where the forward convolution cannot express it. */
static bool geometry(int64_t in, int64_t out, int64_t kernel, int stride, int padding, int r,
                     phase *p, int dim, int64_t *pad_l, int64_t *pad_r)
{
    int64_t q = r + padding, first = q % stride, c = q / stride;
    int64_t taps = (kernel - first + stride - 1) / stride;
    int64_t size = (in - r + stride - 1) / stride;
    p->first_tap[dim] = first;
    p->taps[dim] = taps;
    p->size[dim] = size;
    *pad_l = taps - 1 - c;
    *pad_r = (size - 1) + (taps - 1) - *pad_l - (out - 1);
    return taps >= 1 && size >= 1 && *pad_l >= 0 && *pad_r >= 0;
}

/* Where phase p writes: x's gradient itself, or its pixels [N, M_h, M_w, C]. */
static dnnl_memory_desc_t phase_out_md(const cz_tensor *x, const phase *p, bool to_grad)
{
    int64_t dims[4] = {x->n, x->c, p->size[0], p->size[1]};
    return to_grad ? cz_dnnl_grad_md(x) : cz_dnnl_md(4, dims, dnnl_f32, dnnl_nhwc);
}

/* Phase p's primitive descriptor: dy convolved with its kernel, into x's
 * gradient (to_grad, stride 1) or into pixels of its own. */
static cz_status phase_pd(cz_graph *g, const cz_node *node, const phase *p, bool to_grad,
                          const dnnl_memory_desc_t *dy_md, const dnnl_dims_t pad_l,
                          const dnnl_dims_t pad_r, dnnl_primitive_desc_t *pd)
{
    const cz_tensor *x = node->in[0], *y = node->out;
    dnnl_memory_desc_t out_md = phase_out_md(x, p, to_grad);
    int64_t kernel_dims[4] = {x->c, y->c, p->taps[0], p->taps[1]};
    dnnl_memory_desc_t kernel_any = cz_dnnl_md(4, kernel_dims, dnnl_bf16, dnnl_format_tag_any);
    dnnl_convolution_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    cz_status st = cz_dnnl_check(
        dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct,
                                           dy_md, &kernel_any, NULL, &out_md, (dnnl_dims_t){1, 1},
                                           pad_l, pad_r),
        "convolution input gradient");
    if (st == CZ_OK && to_grad && cz_mirror_grad_dir(x) == CZ_MIRROR_ACCUMULATE) {
        st = cz_dnnl_check(dnnl_post_ops_create(&ops), "post-ops");
        if (st == CZ_OK)
            st = cz_dnnl_check(dnnl_post_ops_append_sum(ops, 1.0f), "post-ops");
        if (st == CZ_OK)
            st = cz_dnnl_check(dnnl_primitive_attr_create(&attr), "attributes");
        if (st == CZ_OK)
            st = cz_dnnl_check(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops");
    }
    if (st == CZ_OK)
        st = cz_dnnl_create(pd, NULL, g, &desc, attr, NULL, "convolution input gradient");
    dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* Phase p's primitive and memory, from its descriptor. */
static cz_status bind_phase(cz_graph *g, const cz_node *node, phase *p, bool to_grad,
                            const_dnnl_primitive_desc_t pd)
{
    const cz_tensor *x = node->in[0], *y = node->out;
    dnnl_memory_desc_t out_md = phase_out_md(x, p, to_grad);
    int64_t kernel_dims[4] = {x->c, y->c, p->taps[0], p->taps[1]};
    dnnl_memory_desc_t kernel_md = cz_dnnl_md(4, kernel_dims, dnnl_bf16, dnnl_oihw);
    const dnnl_memory_desc_t *prim_md = cz_dnnl_arg_md(pd, DNNL_ARG_WEIGHTS);
    cz_status st;
    if ((st = cz_primitive_create(&p->conv, g, pd, "convolution input gradient")) != CZ_OK ||
        (st = cz_dnnl_scratch_memory(g, &p->kernel, &kernel_md)) != CZ_OK)
        return st;
    if (dnnl_memory_desc_equal(prim_md, &kernel_md)) {
        p->kernel_prim = p->kernel;
    } else if ((st = cz_dnnl_scratch_memory(g, &p->kernel_prim, prim_md)) == CZ_OK) {
        dnnl_primitive_desc_t rpd = NULL;
        st = cz_dnnl_check(dnnl_reorder_primitive_desc_create(&rpd, &kernel_md, cz_dnnl_engine(),
                                                              prim_md, cz_dnnl_engine(), NULL),
                           "kernel reorder");
        if (st == CZ_OK)
            st = cz_dnnl_check(dnnl_primitive_create(&p->reorder.prim, rpd), "kernel reorder");
        dnnl_primitive_desc_destroy(rpd);
    }
    /* Without to_grad, the phases take turns in one scratch piece: the
     * handle is set at each run. */
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_memory_create(&p->out, &out_md, cz_dnnl_engine(),
                                              to_grad ? x->grad : DNNL_MEMORY_NONE), "memory");
    return st;
}

cz_status cz_conv_phases_plan(cz_graph *g, const cz_node *node, int stride, int padding,
                              int dilation, cz_mirror *dy, conv_phases **out)
{
    const cz_tensor *x = node->in[0], *w = node->in[1], *y = node->out;
    *out = NULL;
    if (!cz_graph_training(g) || cz_graph_precision(g) != CZ_BF16 || !x->may_need_grad ||
        x->layout == CZ_LAYOUT_NCHW_F32 || y->layout == CZ_LAYOUT_NCHW_F32 || dilation != 1 ||
        stride < 1 || stride > MAX_STRIDE || w->h < stride || w->w < stride ||
        y->n * y->h * y->w < (stride == 1 ? MIN_PIXELS_STRIDE_1 : MIN_PIXELS))
        return CZ_OK;
    conv_phases *ph = calloc(1, sizeof *ph);
    if (!ph)
        return cz_fail(CZ_ERR_NOMEM, "conv2d: out of memory");
    ph->stride = stride;
    int64_t y_dims[4] = {y->n, y->c, y->h, y->w};
    dnnl_memory_desc_t dy_md = cz_dnnl_md(4, y_dims, dnnl_bf16, dnnl_nhwc);
    /* Descriptors first: nothing takes scratch before every phase is known
     * to have a real kernel (where one has none, or oneDNN none at all,
     * the backward-data primitive runs instead). */
    dnnl_primitive_desc_t pds[MAX_STRIDE * MAX_STRIDE] = {NULL};
    cz_status st = CZ_OK;
    bool usable = true;
    for (int r = 0; r < stride * stride && usable; r++) {
        phase *p = &ph->p[r];
        dnnl_dims_t pad_l, pad_r;
        usable = geometry(x->h, y->h, w->h, stride, padding, r / stride, p, 0, &pad_l[0], &pad_r[0]) &&
                 geometry(x->w, y->w, w->w, stride, padding, r % stride, p, 1, &pad_l[1], &pad_r[1]) &&
                 phase_pd(g, node, p, stride == 1, &dy_md, pad_l, pad_r, &pds[r]) == CZ_OK &&
                 !cz_dnnl_is_reference(pds[r]);
    }
    if (st == CZ_OK && usable) {
        cz_graph_scratch_for(g, CZ_BACKWARD_CALL);
        for (int r = 0; r < stride * stride && st == CZ_OK; r++, ph->n++)
            st = bind_phase(g, node, &ph->p[r], stride == 1, pds[r]);
        /* Phase 0 has the most pixels (each dimension's first phase does). */
        size_t most = (size_t)(x->n * x->c * ph->p[0].size[0] * ph->p[0].size[1]) * sizeof(float);
        if (st == CZ_OK && stride > 1)
            st = cz_graph_scratch_pointer(g, most, &ph->pixels);
        dnnl_memory_desc_t ours_dy = cz_dnnl_grad_md(y);
        if (st == CZ_OK)
            st = cz_mirror_init_transient(dy, g, &ours_dy, y->grad, &dy_md, CZ_MIRROR_IN);
    }
    for (int r = 0; r < stride * stride; r++)
        dnnl_primitive_desc_destroy(pds[r]);
    if (st != CZ_OK || !usable) {
        cz_conv_phases_free(ph);
        return st;
    }
    *out = ph;
    return CZ_OK;
}

/* Every phase's kernel v from the fp32 weights [OC, IC, KH, KW], in one
 * pass. */
static void write_kernels(const conv_phases *ph, const cz_tensor *w)
{
    int64_t oc = w->n, ic = w->c, kh = w->h, kw = w->w, s = ph->stride;
    uint16_t *kernel[MAX_STRIDE * MAX_STRIDE];
    for (int k = 0; k < ph->n; k++)
        dnnl_memory_get_data_handle(ph->p[k].kernel, (void **)&kernel[k]);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < ic; i++)
        for (int64_t o = 0; o < oc; o++) {
            const float *from = w->data + (o * ic + i) * kh * kw;
            for (int k = 0; k < ph->n; k++) {
                const phase *p = &ph->p[k];
                int64_t jh_n = p->taps[0], jw_n = p->taps[1];
                uint16_t *to = kernel[k] + (i * oc + o) * jh_n * jw_n;
                for (int64_t jh = 0; jh < jh_n; jh++) {
                    const float *tap_row = from + (p->first_tap[0] + (jh_n - 1 - jh) * s) * kw + p->first_tap[1];
                    for (int64_t jw = 0; jw < jw_n; jw++)
                        *to++ = cz_f32_to_bf16(tap_row[(jw_n - 1 - jw) * s]);
                }
            }
        }
}

/* Phase (rh, rw)'s pixels [N, M_h, M_w, C] into their places in x's
 * gradient [N, H, W, C]; each of its pixels belongs to exactly one phase. */
static void spread(const conv_phases *ph, const phase *p, int rh, int rw, const cz_tensor *x)
{
    int64_t c = x->c, s = ph->stride;
    bool add = !x->grad_written;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < x->n; n++)
        for (int64_t mh = 0; mh < p->size[0]; mh++) {
            const float *from = ph->pixels + (n * p->size[0] + mh) * p->size[1] * c;
            float *to = x->grad + ((n * x->h + mh * s + rh) * x->w + rw) * c;
            for (int64_t mw = 0; mw < p->size[1]; mw++, from += c, to += s * c) {
                if (add) {
#pragma omp simd
                    for (int64_t i = 0; i < c; i++)
                        to[i] += from[i];
                } else {
                    memcpy(to, from, (size_t)c * sizeof *to);
                }
            }
        }
}

void cz_conv_phases_run(cz_graph *g, const cz_node *node, const conv_phases *ph,
                        const cz_mirror *dy)
{
    write_kernels(ph, node->in[1]);
    for (int k = 0; k < ph->n; k++) {
        const phase *p = &ph->p[k];
        if (p->reorder.prim) {
            dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, p->kernel}, {DNNL_ARG_TO, p->kernel_prim}};
            cz_dnnl_run(g, &p->reorder, 2, args);
        }
        if (ph->stride > 1)
            dnnl_memory_set_data_handle(p->out, ph->pixels);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, dy->prim}, {DNNL_ARG_WEIGHTS, p->kernel_prim},
                                   {DNNL_ARG_DST, p->out}};
        cz_dnnl_run(g, &p->conv, 3, args);
        if (ph->stride > 1)
            spread(ph, p, k / ph->stride, k % ph->stride, node->in[0]);
    }
}
