#include "engine/onednn.h"

#include <pthread.h>
#include <string.h>

#include "base/error.h"

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void create_engine(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
        engine = NULL;
        return;
    }
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success)
        stream = NULL;
}

dnnl_engine_t cz_dnnl_engine(void)
{
    pthread_once(&engine_once, create_engine);
    return engine;
}

dnnl_stream_t cz_dnnl_stream(void)
{
    pthread_once(&engine_once, create_engine);
    return stream;
}

dnnl_memory_desc_t cz_dnnl_md(int ndims, const int64_t *dims, dnnl_data_type_t type,
                              dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++)
        d[i] = dims[i];
    if (dnnl_memory_desc_init_by_tag(&md, ndims, d, type, tag) != dnnl_success)
        memset(&md, 0, sizeof md);
    return md;
}

dnnl_memory_desc_t cz_dnnl_tensor_md(const cz_tensor *t)
{
    int64_t dims[4] = {t->n, t->c, t->h, t->w};
    switch (t->layout) {
    case CZ_LAYOUT_NHWC_F32: return cz_dnnl_md(4, dims, dnnl_f32, dnnl_nhwc);
    case CZ_LAYOUT_NHWC_BF16: return cz_dnnl_md(4, dims, dnnl_bf16, dnnl_nhwc);
    case CZ_LAYOUT_NCHW_F32: break;
    }
    return cz_dnnl_md(4, dims, dnnl_f32, dnnl_nchw);
}

dnnl_memory_desc_t cz_dnnl_grad_md(const cz_tensor *t)
{
    int64_t dims[4] = {t->n, t->c, t->h, t->w};
    return cz_dnnl_md(4, dims, dnnl_f32, t->layout == CZ_LAYOUT_NCHW_F32 ? dnnl_nchw : dnnl_nhwc);
}

cz_status cz_dnnl_check(dnnl_status_t status, const char *what)
{
    if (status == dnnl_success)
        return CZ_OK;
    return cz_fail(status == dnnl_out_of_memory ? CZ_ERR_NOMEM : CZ_ERR_BACKEND,
                   "oneDNN: %s failed (status %d)", what, (int)status);
}

/* Where the graph's scratch puts a transient memory (a primitive's
 * scratchpad, a transient mirror's side). */
static cz_status bind_scratch(void *memory, void *address)
{
    return cz_dnnl_check(dnnl_memory_set_data_handle(memory, address), "scratch memory");
}

cz_status cz_dnnl_create(dnnl_primitive_desc_t *pd, cz_primitive *prim, cz_graph *g,
                         const_dnnl_op_desc_t desc, const_dnnl_primitive_attr_t attr,
                         const_dnnl_primitive_desc_t hint, const char *what)
{
    if (!cz_dnnl_engine() || !cz_dnnl_stream())
        return cz_fail(CZ_ERR_BACKEND, "oneDNN: no CPU engine for %s", what);
    dnnl_primitive_attr_t ours = NULL;
    cz_status st = cz_dnnl_check(attr ? dnnl_primitive_attr_clone(&ours, attr)
                                      : dnnl_primitive_attr_create(&ours), what);
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_primitive_attr_set_scratchpad_mode(ours, dnnl_scratchpad_mode_user), what);
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_primitive_desc_create(pd, desc, ours, engine, hint), what);
    dnnl_primitive_attr_destroy(ours);
    if (st == CZ_OK && prim) {
        st = cz_primitive_create(prim, g, *pd, what);
        if (st != CZ_OK) {
            dnnl_primitive_desc_destroy(*pd);
            *pd = NULL;
        }
    }
    return st;
}

cz_status cz_dnnl_scratch_memory(cz_graph *g, dnnl_memory_t *m, const dnnl_memory_desc_t *md)
{
    cz_status st = cz_dnnl_check(dnnl_memory_create(m, md, engine, DNNL_MEMORY_NONE), "memory");
    if (st == CZ_OK)
        st = cz_graph_scratch(g, dnnl_memory_desc_get_size(md), bind_scratch, *m);
    return st;
}

cz_status cz_primitive_create(cz_primitive *prim, cz_graph *g, const_dnnl_primitive_desc_t pd,
                              const char *what)
{
    memset(prim, 0, sizeof *prim);
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = md ? dnnl_memory_desc_get_size(md) : 0;
    cz_status st = cz_dnnl_check(dnnl_primitive_create(&prim->prim, pd), what);
    if (st == CZ_OK && bytes > 0)
        st = cz_dnnl_scratch_memory(g, &prim->scratchpad, md);
    if (st != CZ_OK)
        cz_primitive_destroy(prim);
    return st;
}

void cz_primitive_destroy(cz_primitive *prim)
{
    dnnl_primitive_destroy(prim->prim);
    dnnl_memory_destroy(prim->scratchpad);
    memset(prim, 0, sizeof *prim);
}

/* ISA levels are nested bit sets; the "effective" one honours
 * ONEDNN_MAX_CPU_ISA, so capping the ISA turns bf16 off too. */
static bool cpu_has(dnnl_cpu_isa_t isa)
{
    return ((unsigned)dnnl_get_effective_cpu_isa() & (unsigned)isa) == (unsigned)isa;
}

bool cz_dnnl_has_bf16_kernels(void) { return cpu_has(dnnl_cpu_isa_avx512_core); }

bool cz_dnnl_has_native_bf16(void) { return cpu_has(dnnl_cpu_isa_avx512_core_bf16); }

bool cz_dnnl_is_reference(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
           impl && strncmp(impl, "ref", 3) == 0;
}

const dnnl_memory_desc_t *cz_dnnl_arg_md(const_dnnl_primitive_desc_t pd, int arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
}

void cz_dnnl_run(cz_graph *g, const cz_primitive *prim, int n_args, const dnnl_exec_arg_t *args)
{
    dnnl_exec_arg_t all[16];
    if (n_args > 15) {
        cz_graph_error(g, CZ_ERR_BACKEND, "oneDNN: %d arguments", n_args);
        return;
    }
    memcpy(all, args, (size_t)n_args * sizeof *args);
    if (prim->scratchpad)
        all[n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, prim->scratchpad};
    if (dnnl_primitive_execute(prim->prim, stream, n_args, all) != dnnl_success ||
        dnnl_stream_wait(stream) != dnnl_success)
        cz_graph_error(g, CZ_ERR_BACKEND, "oneDNN: a primitive failed to execute");
}

static cz_status make_reorder(cz_mirror *m)
{
    bool to_user = m->dir != CZ_MIRROR_IN;
    const dnnl_memory_desc_t *user_md, *prim_md;
    dnnl_memory_get_memory_desc(m->user, &user_md);
    dnnl_memory_get_memory_desc(m->prim, &prim_md);
    if (m->dir == CZ_MIRROR_ACCUMULATE && user_md->data_type == dnnl_f32 &&
        dnnl_memory_desc_equal(user_md, prim_md)) {
        m->sum_floats = dnnl_memory_desc_get_size(user_md) / sizeof(float);
        return CZ_OK;
    }
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    cz_status st = CZ_OK;
    if (m->scales) {
        /* One factor per index of dimension 0, given at each execution. */
        const float runtime = DNNL_RUNTIME_F32_VAL;
        st = cz_dnnl_check(dnnl_primitive_attr_create(&attr), "reorder attributes");
        if (st == CZ_OK)
            st = cz_dnnl_check(dnnl_primitive_attr_set_output_scales(attr, 1, 1 << 0, &runtime),
                               "reorder scales");
    }
    if (m->dir == CZ_MIRROR_ACCUMULATE) {
        /* Gradients add up: the reorder's sum post-op adds into the user
         * buffer instead of overwriting it, at no extra pass. */
        st = cz_dnnl_check(dnnl_primitive_attr_create(&attr), "reorder attributes");
        if (st == CZ_OK)
            st = cz_dnnl_check(dnnl_post_ops_create(&ops), "reorder post-ops");
        if (st == CZ_OK)
            st = cz_dnnl_check(dnnl_post_ops_append_sum(ops, 1.0f), "reorder sum");
        if (st == CZ_OK)
            st = cz_dnnl_check(dnnl_primitive_attr_set_post_ops(attr, ops), "reorder post-ops");
    }
    dnnl_primitive_desc_t pd = NULL;
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_reorder_primitive_desc_create(
                               &pd, to_user ? prim_md : user_md, engine,
                               to_user ? user_md : prim_md, engine, attr),
                           "reorder");
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_primitive_create(&m->reorder, pd), "reorder");
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* The mirror's own memory object in the primitive's layout: its data
 * allocated with it, or, given a graph (transient), placed in the graph's
 * scratch when planning ends. */
static cz_status create_prim(cz_mirror *m, const dnnl_memory_desc_t *prim_md, cz_graph *transient_in)
{
    m->owns_prim = true;
    if (transient_in)
        return cz_dnnl_scratch_memory(transient_in, &m->prim, prim_md);
    return cz_dnnl_check(dnnl_memory_create(&m->prim, prim_md, engine, DNNL_MEMORY_ALLOCATE), "memory");
}

/* Gives the mirror its own memory and the reorder between it and the
 * user's; frees the mirror on failure. */
static cz_status own_prim(cz_mirror *m, const dnnl_memory_desc_t *prim_md, cz_graph *transient_in)
{
    cz_status st = create_prim(m, prim_md, transient_in);
    if (st == CZ_OK)
        st = make_reorder(m);
    if (st != CZ_OK)
        cz_mirror_free(m);
    return st;
}

static cz_status init(cz_mirror *m, cz_graph *transient_in, const dnnl_memory_desc_t *user_md,
                      void *user_data, const dnnl_memory_desc_t *prim_md, cz_mirror_dir dir)
{
    memset(m, 0, sizeof *m);
    m->dir = dir;
    if (!cz_dnnl_engine())
        return cz_fail(CZ_ERR_BACKEND, "oneDNN: no CPU engine");
    if (!user_data)
        return create_prim(m, prim_md, transient_in);
    cz_status st = cz_dnnl_check(dnnl_memory_create(&m->user, user_md, engine, user_data),
                                 "memory");
    if (st != CZ_OK)
        return st;
    if (dir != CZ_MIRROR_ACCUMULATE && dnnl_memory_desc_equal(user_md, prim_md)) {
        m->prim = m->user;
        return CZ_OK;
    }
    return own_prim(m, prim_md, transient_in);
}

cz_status cz_mirror_init(cz_mirror *m, const dnnl_memory_desc_t *user_md, void *user_data,
                         const dnnl_memory_desc_t *prim_md, cz_mirror_dir dir)
{
    return init(m, NULL, user_md, user_data, prim_md, dir);
}

cz_status cz_mirror_init_transient(cz_mirror *m, cz_graph *g, const dnnl_memory_desc_t *user_md,
                                   void *user_data, const dnnl_memory_desc_t *prim_md,
                                   cz_mirror_dir dir)
{
    return init(m, g, user_md, user_data, prim_md, dir);
}

cz_status cz_mirror_init_scaled(cz_mirror *m, const dnnl_memory_desc_t *user_md, void *user_data,
                                const dnnl_memory_desc_t *prim_md, float *scales)
{
    memset(m, 0, sizeof *m);
    m->dir = CZ_MIRROR_IN;
    if (!cz_dnnl_engine())
        return cz_fail(CZ_ERR_BACKEND, "oneDNN: no CPU engine");
    int64_t count = user_md->dims[0];
    dnnl_memory_desc_t scales_md = cz_dnnl_md(1, &count, dnnl_f32, dnnl_x);
    cz_status st = cz_dnnl_check(dnnl_memory_create(&m->user, user_md, engine, user_data), "memory");
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_memory_create(&m->scales, &scales_md, engine, scales), "memory");
    if (st != CZ_OK) {
        cz_mirror_free(m);
        return st;
    }
    return own_prim(m, prim_md, NULL);
}

cz_status cz_mirror_init_shared(cz_mirror *m, const cz_mirror *other, cz_graph *g,
                                const dnnl_memory_desc_t *user_md, void *user_data,
                                const dnnl_memory_desc_t *prim_md, cz_mirror_dir dir)
{
    const dnnl_memory_desc_t *other_md;
    if (other->prim && dnnl_memory_get_memory_desc(other->prim, &other_md) == dnnl_success &&
        dnnl_memory_desc_equal(other_md, prim_md)) {
        memset(m, 0, sizeof *m);
        m->prim = other->prim; /* borrowed: synced by its owner */
        return CZ_OK;
    }
    return init(m, g, user_md, user_data, prim_md, dir);
}

cz_status cz_mirror_init_into(cz_mirror *m, const dnnl_memory_desc_t *user_md, void *user_data,
                              dnnl_memory_t into)
{
    memset(m, 0, sizeof *m);
    m->dir = CZ_MIRROR_IN;
    if (!cz_dnnl_engine())
        return cz_fail(CZ_ERR_BACKEND, "oneDNN: no CPU engine");
    m->prim = into; /* borrowed */
    const dnnl_memory_desc_t *into_md;
    void *into_data = NULL;
    cz_status st = cz_dnnl_check(dnnl_memory_create(&m->user, user_md, engine, user_data), "memory");
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_memory_get_memory_desc(into, &into_md), "memory");
    if (st == CZ_OK)
        st = cz_dnnl_check(dnnl_memory_get_data_handle(into, &into_data), "memory");
    if (st == CZ_OK && into_data == user_data && dnnl_memory_desc_equal(into_md, user_md))
        return CZ_OK; /* already there: sync does nothing */
    if (st == CZ_OK)
        st = make_reorder(m);
    if (st != CZ_OK)
        cz_mirror_free(m);
    return st;
}

/* user += prim, both fp32 in the same layout. */
static void add_into_user(const cz_mirror *m)
{
    float *user = NULL;
    const float *prim = NULL;
    dnnl_memory_get_data_handle(m->user, (void **)&user);
    dnnl_memory_get_data_handle(m->prim, (void **)&prim);
    int64_t n = (int64_t)m->sum_floats;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++)
        user[i] += prim[i];
}

void cz_mirror_sync(cz_graph *g, const cz_mirror *m)
{
    if (m->sum_floats) {
        add_into_user(m);
        return;
    }
    if (!m->reorder)
        return;
    dnnl_memory_t from = m->dir == CZ_MIRROR_IN ? m->user : m->prim;
    dnnl_memory_t to = m->dir == CZ_MIRROR_IN ? m->prim : m->user;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, from},
                               {DNNL_ARG_TO, to},
                               {DNNL_ARG_ATTR_OUTPUT_SCALES, m->scales}};
    /* A reorder's scratchpad, rarely any, stays the library's. */
    cz_primitive reorder = {m->reorder, NULL};
    cz_dnnl_run(g, &reorder, m->scales ? 3 : 2, args);
}

void cz_mirror_free(cz_mirror *m)
{
    if (m->owns_prim)
        dnnl_memory_destroy(m->prim);
    dnnl_memory_destroy(m->user);
    dnnl_memory_destroy(m->scales);
    dnnl_primitive_destroy(m->reorder);
    memset(m, 0, sizeof *m);
}
