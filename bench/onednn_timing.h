/* What the oneDNN-only benchmarks (conv1x1_backward.c, conv_backward_data.c)
 * share: the engine and stream, descriptors, and a primitive timed with its
 * arguments in memory of their own. */
#ifndef CZ_BENCH_ONEDNN_TIMING_H
#define CZ_BENCH_ONEDNN_TIMING_H

#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPEATS 64

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static void check(dnnl_status_t st, const char *what)
{
    if (st != dnnl_success) {
        fprintf(stderr, "bench: %s failed (oneDNN status %d)\n", what, (int)st);
        exit(1);
    }
}

static void start_onednn(void)
{
    check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine");
    check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags), "stream");
}

static void stop_onednn(void)
{
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static dnnl_memory_desc_t tagged(int64_t a, int64_t b, int64_t c, int64_t d, dnnl_data_type_t type,
                                 dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    check(dnnl_memory_desc_init_by_tag(&md, 4, (dnnl_dims_t){a, b, c, d}, type, tag), "descriptor");
    return md;
}

/* A primitive with its three arguments, each in memory of its own filled
 * with small values, and its times. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_exec_arg_t args[3];
    double ms[MAX_REPEATS];
} timed;

/* Takes pd (destroys it). */
static void make_timed(timed *t, dnnl_primitive_desc_t pd, const int kinds[3])
{
    check(dnnl_primitive_create(&t->prim, pd), "primitive");
    for (int i = 0; i < 3; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, kinds[i]);
        void *data = NULL;
        check(dnnl_memory_create(&t->args[i].memory, md, engine, DNNL_MEMORY_ALLOCATE), "memory");
        check(dnnl_memory_get_data_handle(t->args[i].memory, &data), "memory");
        memset(data, 0x3c, dnnl_memory_desc_get_size(md)); /* about 0.01 in bf16 and fp32 */
        t->args[i].arg = kinds[i];
    }
    dnnl_primitive_desc_destroy(pd);
}

static void execute(timed *t)
{
    check(dnnl_primitive_execute(t->prim, stream, 3, t->args), "execute");
    check(dnnl_stream_wait(stream), "wait");
}

static double run(timed *t)
{
    double start = now();
    execute(t);
    return 1e3 * (now() - start);
}

static void free_timed(timed *t)
{
    dnnl_primitive_destroy(t->prim);
    for (int i = 0; i < 3; i++)
        dnnl_memory_destroy(t->args[i].memory);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int parse_repeats(int argc, char **argv, const char *name)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 7;
    if (repeats < 1 || repeats > MAX_REPEATS) {
        fprintf(stderr, "%s: REPEATS must be 1 to %d\n", name, MAX_REPEATS);
        exit(2);
    }
    return repeats;
}

#endif
