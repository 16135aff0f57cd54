/*
 * Weight averaging: one generator from several snapshots of the same run.
 *
 * A GAN generator's colours swing from one epoch to the next as it and its
 * discriminator chase each other; each snapshot has its own blotches. The
 * element-wise mean of the last few snapshots (Polyak averaging, found to
 * help GANs by Yazici et al., "The Unusual Effectiveness of Averaging in GAN
 * Training", ICLR 2019) keeps what they agree on and damps the swings.
 * BatchNorm's running statistics are averaged like the weights.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "models/model.h"

static bool same_spec(const cz_model_spec *a, const cz_model_spec *b)
{
    return strcmp(a->arch, b->arch) == 0 && a->width == b->width && a->size == b->size &&
           a->freeze_encoder == b->freeze_encoder &&
           strcmp(a->encoder_layout, b->encoder_layout) == 0 &&
           a->encoder_width == b->encoder_width && a->classes == b->classes &&
           a->no_dropout == b->no_dropout;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

cz_status cz_model_average(const char *const *paths, int n, cz_model **out)
{
    if (!paths || n < 1 || !out)
        return cz_fail(CZ_ERR_INVALID, "cz_model_average: no models");
    *out = NULL;
    /* The newest snapshot, by convention the last, carries the metadata. */
    cz_model *mean = NULL;
    cz_status st = cz_model_load(paths[n - 1], &mean);
    size_t list_size = 1;
    for (int k = 0; k < n; k++)
        list_size += strlen(base_name(paths[k])) + 2;
    char *list = st == CZ_OK ? calloc(list_size, 1) : NULL;
    if (st == CZ_OK && !list)
        st = cz_fail(CZ_ERR_NOMEM, "averaging: out of memory");
    for (int k = 0; k < n - 1 && st == CZ_OK; k++) {
        cz_model *m = NULL;
        st = cz_model_load(paths[k], &m);
        if (st == CZ_OK && !same_spec(cz_model_spec_of(m), cz_model_spec_of(mean)))
            st = cz_fail(CZ_ERR_INVALID,
                         "%s is a %s of width %d at size %d, but %s is a %s of width %d at "
                         "size %d: only snapshots of one model can be averaged",
                         paths[k], cz_model_spec_of(m)->arch, cz_model_spec_of(m)->width,
                         cz_model_spec_of(m)->size, paths[n - 1], cz_model_spec_of(mean)->arch,
                         cz_model_spec_of(mean)->width, cz_model_spec_of(mean)->size);
        /* A running mean: after model k (k + 2 models seen), mean += (x - mean) / (k + 2). */
        for (int i = 0; st == CZ_OK && i < cz_model_n_tensors(mean); i++) {
            cz_model_tensor *t = cz_model_tensor_at(mean, i);
            const float *x = cz_model_tensor_at(m, i)->data;
            int64_t count = 1;
            for (int d = 0; d < t->ndim; d++)
                count *= t->shape[d];
            for (int64_t j = 0; j < count; j++)
                t->data[j] += (x[j] - t->data[j]) / (float)(k + 2);
        }
        cz_model_free(m);
    }
    for (int k = 0; k < n && st == CZ_OK; k++) {
        strcat(list, base_name(paths[k]));
        if (k + 1 < n)
            strcat(list, ", ");
    }
    if (st == CZ_OK)
        st = cz_model_set_metadata(mean, "averaged_from", list);
    free(list);
    if (st != CZ_OK) {
        cz_model_free(mean);
        return st;
    }
    *out = mean;
    return CZ_OK;
}
