/*
 * Packed model files: how a trained generator ships.
 *
 * A ResNet generator trained with its ImageNet encoder frozen carries 24M
 * encoder values that are exactly the public ImageNet weights. Its packed
 * file leaves them out and records their digest instead; unpacking puts
 * them back from the verified weights (`make weights`) and checks the
 * digest, so the result is the trained model bit for bit in the encoder.
 * What training changed is stored in bfloat16 (weights) and fp32 (the
 * small 1-D tensors: biases and BatchNorm parameters and statistics, whose
 * rounding would shift every output of a layer at once).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/safetensors.h"
#include "models/model.h"

#define ENCODER_PREFIX "encoder."

static bool in_encoder(const char *name)
{
    return strncmp(name, ENCODER_PREFIX, strlen(ENCODER_PREFIX)) == 0;
}

/* FNV-1a, 64 bits: a fingerprint of the encoder, not a defence against
 * forgery (the ImageNet weights themselves are checked by sha1 when
 * fetched). */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* The fingerprint of the generator's encoder tensors: names and values, in
 * model order. */
static uint64_t encoder_digest(const cz_model *gen)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < cz_model_n_tensors(gen); i++) {
        const cz_model_tensor *t = cz_model_tensor_at(gen, i);
        if (!in_encoder(t->name))
            continue;
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= t->shape[d];
        h = fnv1a(h, t->name, strlen(t->name) + 1);
        h = fnv1a(h, t->data, (size_t)n * sizeof(float));
    }
    return h;
}

/* Loads the ImageNet classifier an encoder comes from, naming its file. */
static cz_status load_resnet50(const char *path, cz_model **out)
{
    if (!path)
        return cz_fail(CZ_ERR_INVALID, "no ImageNet ResNet50 file was given");
    cz_status st = cz_model_load(path, out);
    if (st != CZ_OK) {
        char why[512]; /* cz_fail overwrites cz_last_error's buffer */
        snprintf(why, sizeof why, "%s", cz_last_error());
        return cz_fail(st, "%s (the ImageNet ResNet50: `make weights` fetches it)", why);
    }
    return CZ_OK;
}

/* Checks that the generator's encoder holds exactly the classifier's
 * weights (the encoder was frozen), by copying them into a fresh model of
 * the same spec and comparing fingerprints. */
static cz_status check_encoder_unchanged(const cz_model *gen, const char *resnet50_path)
{
    cz_model *resnet50 = NULL, *fresh = NULL;
    cz_status st = load_resnet50(resnet50_path, &resnet50);
    if (st == CZ_OK)
        st = cz_model_new(cz_model_spec_of(gen), 0, &fresh);
    if (st == CZ_OK)
        st = cz_model_import_encoder(fresh, resnet50);
    if (st == CZ_OK && encoder_digest(gen) != encoder_digest(fresh))
        st = cz_fail(CZ_ERR_INVALID,
                     "the generator's encoder differs from %s (it was trained, or trained "
                     "from other weights): only a generator whose encoder is those weights "
                     "unchanged can leave it out; ship the whole model file instead",
                     resnet50_path);
    cz_model_free(fresh);
    cz_model_free(resnet50);
    return st;
}

cz_status cz_model_pack(const cz_model *gen, const char *resnet50_path, const char *path,
                        const char *const *extra_meta)
{
    if (!gen || !path)
        return cz_fail(CZ_ERR_INVALID, "cz_model_pack: NULL argument");
    const cz_model_spec *spec = cz_model_spec_of(gen);
    const bool omit_encoder = cz_model_has_encoder(spec->arch);
    if (cz_model_kind_of(spec->arch) != CZ_MODEL_GENERATOR)
        return cz_fail(CZ_ERR_INVALID, "%s: a '%s' model is not a generator; only generators "
                                       "are packed", path, spec->arch);
    if (omit_encoder) {
        cz_status st = check_encoder_unchanged(gen, resnet50_path);
        if (st != CZ_OK)
            return st;
    }

    int n_meta = cz_model_n_metadata(gen), n_extra = 0;
    while (extra_meta && extra_meta[2 * n_extra])
        n_extra++;
    const char **kv = calloc((size_t)(2 * (n_meta + n_extra) + 5), sizeof *kv);
    cz_st_entry *entries = calloc((size_t)cz_model_n_tensors(gen), sizeof *entries);
    if (!kv || !entries) {
        free(kv);
        free(entries);
        return cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
    }
    int at = 0;
    for (int i = 0; i < n_meta; i++) {
        const char *key, *value;
        cz_model_metadata_at(gen, i, &key, &value);
        bool replaced = strcmp(key, CZ_PACKED_DIGEST_KEY) == 0; /* written below */
        for (int j = 0; j < n_extra && !replaced; j++)
            replaced = strcmp(extra_meta[2 * j], key) == 0;
        if (!replaced) {
            kv[at++] = key;
            kv[at++] = value;
        }
    }
    for (int j = 0; j < 2 * n_extra; j++)
        kv[at++] = extra_meta[j];
    char digest[32];
    if (omit_encoder) {
        snprintf(digest, sizeof digest, "%016" PRIx64, encoder_digest(gen));
        kv[at++] = CZ_PACKED_WITHOUT_KEY;
        kv[at++] = ENCODER_PREFIX;
        kv[at++] = CZ_PACKED_DIGEST_KEY;
        kv[at++] = digest;
    }

    int n = 0;
    for (int i = 0; i < cz_model_n_tensors(gen); i++) {
        const cz_model_tensor *t = cz_model_tensor_at(gen, i);
        if (omit_encoder && in_encoder(t->name))
            continue;
        cz_st_entry *e = &entries[n++];
        e->name = t->name;
        e->dtype = t->ndim > 1 ? CZ_DT_BF16 : CZ_DT_F32;
        e->ndim = t->ndim;
        memcpy(e->shape, t->shape, sizeof t->shape);
        e->data = t->data;
    }
    cz_status st = cz_safetensors_write(path, kv, entries, n);
    free(kv);
    free(entries);
    return st;
}

cz_status cz_model_unpack(const char *path, const char *resnet50_path, cz_model **out)
{
    if (!path || !out)
        return cz_fail(CZ_ERR_INVALID, "cz_model_unpack: NULL argument");
    *out = NULL;
    cz_model *m = NULL, *resnet50 = NULL;
    cz_status st = cz_model_load_part(path, &m);
    const char *want = st == CZ_OK ? cz_model_metadata(m, CZ_PACKED_DIGEST_KEY) : NULL;
    if (want) {
        st = load_resnet50(resnet50_path, &resnet50);
        if (st == CZ_OK && cz_model_import_encoder(m, resnet50) != CZ_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", cz_last_error());
            st = cz_fail(CZ_ERR_FORMAT, "%s: %s", path, why);
        }
        char got[32];
        if (st == CZ_OK) {
            snprintf(got, sizeof got, "%016" PRIx64, encoder_digest(m));
            if (strcmp(got, want) != 0)
                st = cz_fail(CZ_ERR_FORMAT,
                             "%s was trained on an encoder with digest %s, but %s gives %s: "
                             "these are not the weights it was trained with",
                             path, want, resnet50_path, got);
        }
    }
    cz_model_free(resnet50);
    if (st != CZ_OK) {
        cz_model_free(m);
        return st;
    }
    *out = m;
    return CZ_OK;
}
