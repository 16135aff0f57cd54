/* Glue between the graph and oneDNN: one CPU engine and stream for the
 * process, memory descriptors for our tensors, and mirrors
 * that keep a tensor in the layout and data type a primitive prefers. */
#ifndef CZ_ENGINE_ONEDNN_H
#define CZ_ENGINE_ONEDNN_H

#include <dnnl.h>
#include <stdbool.h>

#include "engine/graph.h"

/* The process-wide engine and stream, created on first use. NULL if oneDNN
 * cannot create a CPU engine (then every primitive creation fails cleanly). */
dnnl_engine_t cz_dnnl_engine(void);
dnnl_stream_t cz_dnnl_stream(void);

/* A descriptor of a 1-D (x), 2-D (nc / oi) or 4-D (nchw / oihw) tensor. */
dnnl_memory_desc_t cz_dnnl_md(int ndims, const int64_t *dims, dnnl_data_type_t type,
                              dnnl_format_tag_t tag);
/* The descriptor of a graph tensor's values in its layout (cz_layout). */
dnnl_memory_desc_t cz_dnnl_tensor_md(const cz_tensor *t);
/* The descriptor of its gradient: fp32 always, in its layout's order. */
dnnl_memory_desc_t cz_dnnl_grad_md(const cz_tensor *t);

/* Turn a oneDNN status into ours, naming what failed. */
cz_status cz_dnnl_check(dnnl_status_t status, const char *what);

/* A primitive and its scratchpad, oneDNN's working memory while it runs
 * (a convolution's per-thread partial sums, padded copies). Left to the
 * library, every primitive keeps its own for the life of the process (250
 * MB over a ResNet GAN step); ours lies in the graph's scratch
 * (cz_graph_scratch), as the op's conversions do. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t scratchpad; /* NULL where it needs none */
} cz_primitive;

/* Create a primitive descriptor whose scratchpad is ours (user mode), and
 * its primitive in g if prim is not NULL (from an op's plan). */
cz_status cz_dnnl_create(dnnl_primitive_desc_t *pd, cz_primitive *prim, cz_graph *g,
                         const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
                         const_dnnl_primitive_desc_t hint, const char *what);
/* The primitive of such a descriptor, its scratchpad in g's scratch. */
cz_status cz_primitive_create(cz_primitive *prim, cz_graph *g, const_dnnl_primitive_desc_t pd,
                              const char *what);
void cz_primitive_destroy(cz_primitive *prim);

/* A memory of md with no data of its own, placed in g's scratch (for the
 * call cz_graph_scratch_for names) when planning ends. */
cz_status cz_dnnl_scratch_memory(cz_graph *g, dnnl_memory_t *m, const dnnl_memory_desc_t *md);

/* Whether oneDNN has bf16 kernels for this CPU: they need AVX-512 (native
 * bfloat16 with AVX512-BF16 or AMX, emulated on plain AVX-512); an AVX2 CPU
 * runs fp32 only. Honours ONEDNN_MAX_CPU_ISA. */
bool cz_dnnl_has_bf16_kernels(void);
/* Whether they run natively (AVX512-BF16 or AMX): fast enough to be the
 * default (cz_cpu_has_bf16). */
bool cz_dnnl_has_native_bf16(void);

/* Whether oneDNN chose its reference implementation (plain C++ loops, far
 * slower than its JIT kernels) for a primitive descriptor. */
bool cz_dnnl_is_reference(const_dnnl_primitive_desc_t pd);

/* The descriptor a primitive wants for one of its execute arguments. */
const dnnl_memory_desc_t *cz_dnnl_arg_md(const_dnnl_primitive_desc_t pd, int arg);

/* Execute on the process stream, with its scratchpad; a failure is
 * recorded in the graph. At most 15 arguments. */
void cz_dnnl_run(cz_graph *g, const cz_primitive *prim, int n_args, const dnnl_exec_arg_t *args);

/* How a mirror moves data between the user buffer and the primitive's. */
typedef enum {
    CZ_MIRROR_IN,         /* user -> primitive, before it runs */
    CZ_MIRROR_OUT,        /* primitive -> user, overwriting */
    CZ_MIRROR_ACCUMULATE, /* primitive -> user, adding (gradients) */
} cz_mirror_dir;

/* How a backward primitive's gradient of input x reaches x->grad: written
 * where it is the only contribution (cz_tensor.grad_written), else added. */
static inline cz_mirror_dir cz_mirror_grad_dir(const cz_tensor *x)
{
    return x->grad_written ? CZ_MIRROR_OUT : CZ_MIRROR_ACCUMULATE;
}

/* A user buffer (plain layout, fp32) seen through the descriptor a primitive
 * asked for. When the two agree and nothing is accumulated, the primitive
 * works on the user buffer directly and sync is a no-op. With user_data NULL
 * the mirror is just scratch memory for an output nobody reads. */
typedef struct {
    dnnl_memory_t user;       /* NULL for scratch and shared mirrors */
    dnnl_memory_t prim;       /* == user when no reorder is needed */
    dnnl_primitive_t reorder; /* NULL when sync has nothing to do */
    dnnl_memory_t scales;     /* a scaled mirror's factors, else NULL */
    size_t sum_floats;        /* accumulating in the same layout: sync adds this
                                 many floats itself (oneDNN's reorder with a sum
                                 post-op runs its slow `simple:any` for that) */
    cz_mirror_dir dir;
    bool owns_prim;
} cz_mirror;

cz_status cz_mirror_init(cz_mirror *m, const dnnl_memory_desc_t *user_md, void *user_data,
                         const dnnl_memory_desc_t *prim_md, cz_mirror_dir dir);
/* The same for a mirror whose primitive-side contents matter only within
 * one forward or backward call of the op (synced into or out of the user
 * buffer in that call): its memory, if it needs its own, is g's scratch
 * (cz_graph_scratch), shared with other ops' transient mirrors. Call it
 * from the op's plan. */
cz_status cz_mirror_init_transient(cz_mirror *m, cz_graph *g, const dnnl_memory_desc_t *user_md,
                                   void *user_data, const dnnl_memory_desc_t *prim_md,
                                   cz_mirror_dir dir);
/* An input mirror whose reorder also multiplies each value by a factor of
 * its index along dimension 0 (a weight's output channel): primitive =
 * scales[i] * user, computed in fp32 and then converted to the primitive's
 * data type. scales holds user_md's first dimension of floats, owned by the
 * caller and read at each sync. Always a reorder, even where the layouts
 * agree. This is how a batch norm is folded into the weights of the
 * convolution before it without an fp32 copy of them. */
cz_status cz_mirror_init_scaled(cz_mirror *m, const dnnl_memory_desc_t *user_md, void *user_data,
                                const dnnl_memory_desc_t *prim_md, float *scales);
/* Share another mirror's primitive-side memory when it has the same
 * descriptor (then no second reorder runs); otherwise a transient mirror of
 * its own (m is read or written only within one call of the op). */
cz_status cz_mirror_init_shared(cz_mirror *m, const cz_mirror *other, cz_graph *g,
                                const dnnl_memory_desc_t *user_md, void *user_data,
                                const dnnl_memory_desc_t *prim_md, cz_mirror_dir dir);
/* An input mirror whose primitive side is another memory, not its own: each
 * sync copies (converting) the user buffer into it, unless it is that
 * memory already. A convolution's output memory takes a residual this way
 * before the convolution adds into it. */
cz_status cz_mirror_init_into(cz_mirror *m, const dnnl_memory_desc_t *user_md, void *user_data,
                              dnnl_memory_t into);
void cz_mirror_sync(cz_graph *g, const cz_mirror *m);
void cz_mirror_free(cz_mirror *m);

#endif
