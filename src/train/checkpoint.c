#include "train/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/safetensors.h"

/* Names are "<net>.<parameter>", "<net>.adam.m" and "<net>.adam.v"; the
 * scalars and generator states are metadata, as decimal or hex text. */

static const char *const net_names[2] = {"generator", "discriminator"};

static int count_entries(const cz_train_position *p)
{
    return cz_graph_n_named(p->generator) + cz_graph_n_named(p->discriminator) + 4;
}

cz_status cz_checkpoint_save(const char *path, const cz_train_position *p,
                             const char *const *meta)
{
    int n = count_entries(p), k = 0;
    cz_st_entry *entries = calloc((size_t)n, sizeof *entries);
    char (*names)[160] = calloc((size_t)n, sizeof *names);
    const char **kv = NULL;
    cz_status st = CZ_OK;
    if (!entries || !names) {
        st = cz_fail(CZ_ERR_NOMEM, "%s: out of memory writing checkpoint", path);
        goto done;
    }
    cz_graph *graphs[2] = {p->generator, p->discriminator};
    cz_adam *adams[2] = {p->generator_adam, p->discriminator_adam};
    for (int net = 0; net < 2; net++) {
        for (int i = 0; i < cz_graph_n_named(graphs[net]); i++, k++) {
            const cz_tensor *t = cz_graph_named(graphs[net], i);
            snprintf(names[k], sizeof names[k], "%s.%s", net_names[net], t->name);
            int64_t dims[4] = {t->n, t->c, t->h, t->w};
            entries[k] = (cz_st_entry){.name = names[k], .dtype = CZ_DT_F32, .ndim = t->ndim, .data = t->data};
            memcpy(entries[k].shape, dims, sizeof dims);
        }
        cz_adam_state *a = cz_adam_state_of(adams[net]);
        for (int m = 0; m < 2; m++, k++) {
            snprintf(names[k], sizeof names[k], "%s.adam.%s", net_names[net], m ? "v" : "m");
            entries[k] = (cz_st_entry){.name = names[k], .dtype = CZ_DT_F32, .ndim = 1,
                                       .shape = {(int64_t)a->n}, .data = m ? a->v : a->m};
        }
    }

    /* Scalars and generator states as metadata. */
    char values[8 + CZ_CHECKPOINT_RNGS][80];
    const char *keys[8 + CZ_CHECKPOINT_RNGS];
    int nv = 0;
    keys[nv] = "format";
    snprintf(values[nv++], sizeof values[0], "colorize-checkpoint-1");
    keys[nv] = "step";
    snprintf(values[nv++], sizeof values[0], "%" PRId64, p->step);
    keys[nv] = "epoch";
    snprintf(values[nv++], sizeof values[0], "%" PRId64, p->epoch);
    keys[nv] = "batch";
    snprintf(values[nv++], sizeof values[0], "%" PRId64, p->batch);
    keys[nv] = "seconds";
    snprintf(values[nv++], sizeof values[0], "%.17g", p->seconds);
    keys[nv] = "generator.adam.step";
    snprintf(values[nv++], sizeof values[0], "%" PRId64, cz_adam_state_of(p->generator_adam)->step);
    keys[nv] = "discriminator.adam.step";
    snprintf(values[nv++], sizeof values[0], "%" PRId64, cz_adam_state_of(p->discriminator_adam)->step);
    static const char *const rng_keys[CZ_CHECKPOINT_RNGS] = {"rng.0", "rng.1", "rng.2"};
    for (int r = 0; r < CZ_CHECKPOINT_RNGS; r++) {
        const uint64_t *s = p->rngs[r]->s;
        keys[nv] = rng_keys[r];
        snprintf(values[nv++], sizeof values[0], "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
                 s[0], s[1], s[2], s[3]);
    }
    int n_meta = 0;
    while (meta && meta[n_meta])
        n_meta++;
    kv = calloc((size_t)(2 * nv + n_meta + 1), sizeof *kv);
    if (!kv) {
        st = cz_fail(CZ_ERR_NOMEM, "%s: out of memory writing checkpoint", path);
        goto done;
    }
    for (int i = 0; i < nv; i++) {
        kv[2 * i] = keys[i];
        kv[2 * i + 1] = values[i];
    }
    for (int i = 0; i < n_meta; i++)
        kv[2 * nv + i] = meta[i];
    st = cz_safetensors_write(path, kv, entries, k);
done:
    free(kv);
    free(names);
    free(entries);
    return st;
}

static cz_status parse_i64(const cz_safetensors *f, const char *path, const char *key, int64_t *out)
{
    const char *v = cz_safetensors_metadata(f, key);
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end)
        return cz_fail(CZ_ERR_FORMAT, "%s: checkpoint lacks a valid '%s'", path, key);
    *out = x;
    return CZ_OK;
}

static cz_status parse_rng(const cz_safetensors *f, const char *path, const char *key, cz_rng *rng)
{
    const char *v = cz_safetensors_metadata(f, key);
    if (!v || strlen(v) != 64)
        return cz_fail(CZ_ERR_FORMAT, "%s: checkpoint lacks a valid '%s'", path, key);
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, v + 16 * i, 16);
        part[16] = '\0';
        char *end = NULL;
        rng->s[i] = strtoull(part, &end, 16);
        if (*end)
            return cz_fail(CZ_ERR_FORMAT, "%s: checkpoint has a bad '%s'", path, key);
    }
    return CZ_OK;
}

cz_status cz_checkpoint_load(const char *path, cz_train_position *p)
{
    cz_safetensors *f = NULL;
    cz_status st = cz_safetensors_open(path, &f);
    if (st != CZ_OK)
        return st;
    const char *format = cz_safetensors_metadata(f, "format");
    if (!format || strcmp(format, "colorize-checkpoint-1") != 0) {
        st = cz_fail(CZ_ERR_FORMAT, "%s: not a colorize checkpoint", path);
        goto done;
    }
    cz_graph *graphs[2] = {p->generator, p->discriminator};
    cz_adam *adams[2] = {p->generator_adam, p->discriminator_adam};
    char name[160];
    for (int net = 0; net < 2 && st == CZ_OK; net++) {
        for (int i = 0; i < cz_graph_n_named(graphs[net]) && st == CZ_OK; i++) {
            cz_tensor *t = cz_graph_named(graphs[net], i);
            snprintf(name, sizeof name, "%s.%s", net_names[net], t->name);
            int64_t dims[4] = {t->n, t->c, t->h, t->w};
            st = cz_safetensors_read_f32(f, name, dims, t->ndim, t->data);
        }
        cz_adam_state *a = cz_adam_state_of(adams[net]);
        int64_t n = (int64_t)a->n;
        snprintf(name, sizeof name, "%s.adam.m", net_names[net]);
        if (st == CZ_OK)
            st = cz_safetensors_read_f32(f, name, &n, 1, a->m);
        snprintf(name, sizeof name, "%s.adam.v", net_names[net]);
        if (st == CZ_OK)
            st = cz_safetensors_read_f32(f, name, &n, 1, a->v);
        snprintf(name, sizeof name, "%s.adam.step", net_names[net]);
        if (st == CZ_OK)
            st = parse_i64(f, path, name, &a->step);
        cz_graph_params_changed(graphs[net]);
    }
    if (st == CZ_OK)
        st = parse_i64(f, path, "step", &p->step);
    if (st == CZ_OK)
        st = parse_i64(f, path, "epoch", &p->epoch);
    if (st == CZ_OK)
        st = parse_i64(f, path, "batch", &p->batch);
    static const char *const rng_keys[CZ_CHECKPOINT_RNGS] = {"rng.0", "rng.1", "rng.2"};
    for (int r = 0; r < CZ_CHECKPOINT_RNGS && st == CZ_OK; r++)
        st = parse_rng(f, path, rng_keys[r], p->rngs[r]);
    const char *secs = cz_safetensors_metadata(f, "seconds");
    p->seconds = secs ? atof(secs) : 0;
done:
    cz_safetensors_close(f);
    return st;
}

char *cz_checkpoint_metadata(const char *path, const char *key)
{
    cz_safetensors *f = NULL;
    if (cz_safetensors_open(path, &f) != CZ_OK)
        return NULL;
    const char *v = cz_safetensors_metadata(f, key);
    char *copy = v ? strdup(v) : NULL;
    cz_safetensors_close(f);
    return copy;
}
