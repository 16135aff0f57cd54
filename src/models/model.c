/*
 * The model registry and model files.
 *
 * A model's tensor list (names, shapes, which are buffers) is never written
 * down twice: it is what the network's build function creates. So a model
 * learns its layout by building its network once into a scratch graph that
 * is never planned (no tensor memory, only the node list), and a file is
 * checked against that list when loaded.
 */
#include "models/model.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"
#include "io/safetensors.h"
#include "models/layers.h"

/* --- the registry --- */

#define DEFAULT_WIDTH 64         /* pix2pix ngf / ndf */
#define DEFAULT_ENCODER_WIDTH 64 /* ImageNet ResNet50 */
#define DEFAULT_CLASSES 1000     /* ImageNet */
#define MAX_WIDTH 4096
#define MAX_CLASSES 100000
#define MIN_SIZE 32
#define MAX_SIZE 16384
/* Side of the scratch graph that a layout is read from: parameters do not
 * depend on it, and every architecture runs at it. */
#define LAYOUT_PROBE_SIZE 64

typedef struct {
    const char *arch;
    cz_model_kind kind;
    int size;          /* default training size */
    bool encoder;      /* has a ResNet50 encoder */
    int min_width;     /* resnet generators halve w in the last stage */
    int in_channels;
    cz_tensor *(*build)(const cz_model_spec *spec, cz_graph *g, cz_tensor *x);
    const char *summary;
} arch_info;

static const arch_info archs[] = {
    {"unet", CZ_MODEL_GENERATOR, 256, false, 1, 1, cz_unet_build,
     "generator: pix2pix unet_256, 8 levels of 4x4 stride-2 convs, skip connections, "
     "BatchNorm, dropout 0.5 in 3 inner levels; L -> a*b* (tanh)"},
    {"resnet50-paper", CZ_MODEL_GENERATOR, 224, true, 2, 1, cz_resnet_paper_build,
     "generator: ImageNet ResNet50 encoder, decoder of 5 x (conv 3x3, BN, ReLU, "
     "upsample 2x), conv 3x3 to a*b* (tanh)"},
    {"resnet50-unet", CZ_MODEL_GENERATOR, 224, true, 2, 1, cz_resnet_unet_build,
     "generator: ImageNet ResNet50 encoder, decoder of 5 x (conv 3x3, BN, ReLU, "
     "upsample 2x) with the stem and layer1-3 concatenated in, conv 3x3 to a*b* (tanh)"},
    {"resnet50-unet-bins", CZ_MODEL_GENERATOR, 224, true, 2, 1, cz_resnet_unet_bins_build,
     "generator: ImageNet ResNet50 encoder, resnet50-unet's first 4 decoder stages (the last "
     "at 1/4 scale), conv 1x1 to a distribution over a*b* bins; its annealed mean, "
     "upsampled 4x, as a*b*"},
    {"patchgan", CZ_MODEL_DISCRIMINATOR, 256, false, 1, 3, cz_patchgan_build,
     "discriminator: pix2pix 70x70 PatchGAN, C64-C128-C256-C512-1, one logit per patch"},
    {"sigmoid", CZ_MODEL_DISCRIMINATOR, 256, false, 1, 3, cz_sigmoid_disc_build,
     "discriminator: 5 stride-2 convs C64-C128-C256-C512-C512, global average "
     "pooling, linear: one logit per image"},
    {"resnet50", CZ_MODEL_CLASSIFIER, 224, true, 1, 3, cz_resnet50_classifier_build,
     "classifier: ResNet50, RGB -> ImageNet class logits"},
};
#define N_ARCHS (int)(sizeof archs / sizeof *archs)

static const arch_info *find_arch(const char *arch)
{
    for (int i = 0; arch && i < N_ARCHS; i++)
        if (strcmp(archs[i].arch, arch) == 0)
            return &archs[i];
    return NULL;
}

cz_model_kind cz_model_kind_of(const char *arch)
{
    const arch_info *a = find_arch(arch);
    return a ? a->kind : CZ_MODEL_UNKNOWN;
}

bool cz_model_has_encoder(const char *arch)
{
    const arch_info *a = find_arch(arch);
    return a && a->encoder;
}

const char *cz_model_arch_summary(const char *arch)
{
    const arch_info *a = find_arch(arch);
    return a ? a->summary : "unknown architecture";
}

cz_status cz_model_spec_resolve(const cz_model_spec *spec, cz_model_spec *out)
{
    if (!spec || !out)
        return cz_fail(CZ_ERR_INVALID, "model spec: NULL argument");
    cz_model_spec r = *spec;
    r.arch[sizeof r.arch - 1] = '\0';
    r.encoder_layout[sizeof r.encoder_layout - 1] = '\0';
    const arch_info *a = find_arch(r.arch);
    if (!a)
        return cz_fail(CZ_ERR_INVALID,
                       "unknown architecture '%s' (expected unet, resnet50-paper, "
                       "resnet50-unet, resnet50-unet-bins, patchgan, sigmoid or resnet50)",
                       r.arch);
    if (r.width == 0)
        r.width = DEFAULT_WIDTH;
    if (r.size == 0)
        r.size = a->size;
    if (r.width < a->min_width || r.width > MAX_WIDTH)
        return cz_fail(CZ_ERR_INVALID, "%s: width %d is outside %d..%d", r.arch, r.width,
                       a->min_width, MAX_WIDTH);
    if (r.size < MIN_SIZE || r.size > MAX_SIZE)
        return cz_fail(CZ_ERR_INVALID, "%s: size %d is outside %d..%d", r.arch, r.size, MIN_SIZE,
                       MAX_SIZE);
    if (a->encoder) {
        if (r.encoder_layout[0] == '\0')
            strcpy(r.encoder_layout, "keras");
        if (strcmp(r.encoder_layout, "keras") != 0 && strcmp(r.encoder_layout, "torchvision") != 0)
            return cz_fail(CZ_ERR_INVALID,
                           "%s: encoder layout '%s' is neither 'keras' nor 'torchvision'", r.arch,
                           r.encoder_layout);
        if (r.encoder_width == 0)
            r.encoder_width = DEFAULT_ENCODER_WIDTH;
        if (r.encoder_width < 1 || r.encoder_width > MAX_WIDTH)
            return cz_fail(CZ_ERR_INVALID, "%s: encoder width %d is outside 1..%d", r.arch,
                           r.encoder_width, MAX_WIDTH);
    } else {
        memset(r.encoder_layout, 0, sizeof r.encoder_layout);
        r.encoder_width = 0;
    }
    if (a->kind == CZ_MODEL_CLASSIFIER) {
        if (r.classes == 0)
            r.classes = DEFAULT_CLASSES;
        if (r.classes < 1 || r.classes > MAX_CLASSES)
            return cz_fail(CZ_ERR_INVALID, "%s: %d classes is outside 1..%d", r.arch, r.classes,
                           MAX_CLASSES);
        /* The classifier is for checking weights: its width is the encoder's. */
        r.width = r.encoder_width;
    } else {
        r.classes = 0;
    }
    if (a->kind != CZ_MODEL_GENERATOR || !a->encoder)
        r.freeze_encoder = false;
    if (strcmp(r.arch, "unet") != 0)
        r.no_dropout = false;
    *out = r;
    return CZ_OK;
}

cz_tensor *cz_model_build(const cz_model_spec *spec, cz_graph *g, cz_tensor *x)
{
    if (cz_graph_status(g) != CZ_OK)
        return NULL;
    cz_model_spec r;
    if (cz_model_spec_resolve(spec, &r) != CZ_OK)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s", cz_last_error());
    const arch_info *a = find_arch(r.arch);
    if (x && x->c != a->in_channels)
        return cz_graph_error(g, CZ_ERR_INVALID, "%s: input has %lld channels, expected %d",
                              r.arch, (long long)x->c, a->in_channels);
    return a->build(&r, g, x);
}

/* --- models --- */

typedef struct {
    char *key, *value;
} meta_pair;

struct cz_model {
    cz_model_spec spec;
    cz_model_tensor *t; /* creation order */
    int n;
    cz_init *init;      /* each tensor's initialiser, and its scale */
    float *init_scale;
    float *values;      /* every tensor's data, one block */
    meta_pair *meta;    /* the spec's keys, then any others */
    int n_meta;
};

void cz_model_free(cz_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        free((char *)m->t[i].name);
    for (int i = 0; i < m->n_meta; i++) {
        free(m->meta[i].key);
        free(m->meta[i].value);
    }
    free(m->t);
    free(m->init);
    free(m->init_scale);
    free(m->values);
    free(m->meta);
    free(m);
}

const cz_model_spec *cz_model_spec_of(const cz_model *m) { return &m->spec; }
int cz_model_n_tensors(const cz_model *m) { return m->n; }
cz_model_tensor *cz_model_tensor_at(const cz_model *m, int i)
{
    return i >= 0 && i < m->n ? &m->t[i] : NULL;
}

cz_model_tensor *cz_model_find(const cz_model *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0)
            return &m->t[i];
    return NULL;
}

static int64_t tensor_numel(const cz_model_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

long cz_model_param_count(const cz_model *m)
{
    long count = 0;
    for (int i = 0; i < m->n; i++)
        if (!m->t[i].buffer)
            count += (long)tensor_numel(&m->t[i]);
    return count;
}

/* Builds the network into a scratch graph; the caller reads its named
 * tensors and frees it. */
static cz_status scratch_graph(const cz_model_spec *spec, cz_graph **out)
{
    const arch_info *a = find_arch(spec->arch);
    /* Inference: the probe is one small image, too few values for training
     * statistics at the innermost levels. */
    cz_graph_config config = {.training = false, .precision = CZ_FP32, .seed = 0};
    cz_graph *g = cz_graph_create(&config);
    if (!g)
        return cz_fail(CZ_ERR_NOMEM, "%s: out of memory", spec->arch);
    cz_tensor *x = cz_graph_input(g, "input", 1, a->in_channels, LAYOUT_PROBE_SIZE,
                                  LAYOUT_PROBE_SIZE, false);
    cz_model_build(spec, g, x);
    cz_status status = cz_graph_status(g);
    if (status != CZ_OK) {
        /* The graph's message is only in the graph until plan reports it. */
        status = cz_graph_plan(g);
        cz_graph_free(g);
        return status;
    }
    *out = g;
    return CZ_OK;
}

cz_status cz_model_spec_param_count(const cz_model_spec *spec, long *count)
{
    cz_model_spec r;
    cz_graph *g = NULL;
    cz_status status = cz_model_spec_resolve(spec, &r);
    if (status == CZ_OK)
        status = scratch_graph(&r, &g);
    if (status != CZ_OK)
        return status;
    long n = 0;
    for (int i = 0; i < cz_graph_n_named(g); i++) {
        const cz_tensor *t = cz_graph_named(g, i);
        if (t->kind == CZ_TENSOR_PARAM)
            n += (long)cz_numel(t);
    }
    cz_graph_free(g);
    *count = n;
    return CZ_OK;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static cz_status set_meta(cz_model *m, const char *key, const char *value)
{
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0) {
            char *v = dup_str(value);
            if (!v)
                return cz_fail(CZ_ERR_NOMEM, "model: out of memory");
            free(m->meta[i].value);
            m->meta[i].value = v;
            return CZ_OK;
        }
    meta_pair *grown = realloc(m->meta, (size_t)(m->n_meta + 1) * sizeof *grown);
    if (!grown)
        return cz_fail(CZ_ERR_NOMEM, "model: out of memory");
    m->meta = grown;
    meta_pair p = {dup_str(key), dup_str(value)};
    if (!p.key || !p.value) {
        free(p.key);
        free(p.value);
        return cz_fail(CZ_ERR_NOMEM, "model: out of memory");
    }
    m->meta[m->n_meta++] = p;
    return CZ_OK;
}

/* The metadata keys that spell out the spec (and the two we derive). */
static const char *const spec_keys[] = {"format", "arch", "width", "size", "freeze_encoder",
                                        "encoder_layout", "encoder_width", "classes",
                                        "no_dropout", "params", CZ_PACKED_WITHOUT_KEY};
#define N_SPEC_KEYS (int)(sizeof spec_keys / sizeof *spec_keys)
#define FORMAT_NAME "colorize-model-1"

static bool is_spec_key(const char *key)
{
    for (int i = 0; i < N_SPEC_KEYS; i++)
        if (strcmp(spec_keys[i], key) == 0)
            return true;
    return false;
}

/* Writes the spec's keys into m's metadata (those the architecture uses). */
static cz_status spec_to_meta(cz_model *m)
{
    const cz_model_spec *s = &m->spec;
    const arch_info *a = find_arch(s->arch);
    char buf[64];
    cz_status st = set_meta(m, "format", FORMAT_NAME);
    if (st == CZ_OK)
        st = set_meta(m, "arch", s->arch);
    snprintf(buf, sizeof buf, "%d", s->width);
    if (st == CZ_OK && a->kind != CZ_MODEL_CLASSIFIER)
        st = set_meta(m, "width", buf);
    snprintf(buf, sizeof buf, "%d", s->size);
    if (st == CZ_OK)
        st = set_meta(m, "size", buf);
    if (st == CZ_OK && a->encoder) {
        st = set_meta(m, "encoder_layout", s->encoder_layout);
        snprintf(buf, sizeof buf, "%d", s->encoder_width);
        if (st == CZ_OK)
            st = set_meta(m, "encoder_width", buf);
    }
    if (st == CZ_OK && a->encoder && a->kind == CZ_MODEL_GENERATOR)
        st = set_meta(m, "freeze_encoder", s->freeze_encoder ? "1" : "0");
    snprintf(buf, sizeof buf, "%d", s->classes);
    if (st == CZ_OK && a->kind == CZ_MODEL_CLASSIFIER)
        st = set_meta(m, "classes", buf);
    if (st == CZ_OK && strcmp(s->arch, "unet") == 0)
        st = set_meta(m, "no_dropout", s->no_dropout ? "1" : "0");
    snprintf(buf, sizeof buf, "%ld", cz_model_param_count(m));
    if (st == CZ_OK)
        st = set_meta(m, "params", buf);
    return st;
}

/* A model with the layout of spec (resolved) and all values zero, or, without
 * values, none at all (every tensor's data NULL). */
static cz_status model_alloc(const cz_model_spec *spec, bool values, cz_model **out)
{
    *out = NULL;
    cz_graph *g = NULL;
    cz_status status = scratch_graph(spec, &g);
    if (status != CZ_OK)
        return status;
    cz_model *m = calloc(1, sizeof *m);
    int n = cz_graph_n_named(g);
    if (!m)
        goto nomem;
    m->spec = *spec;
    m->t = calloc((size_t)n, sizeof *m->t);
    m->init = calloc((size_t)n, sizeof *m->init);
    m->init_scale = calloc((size_t)n, sizeof *m->init_scale);
    if (!m->t || !m->init || !m->init_scale)
        goto nomem;
    size_t total = 0;
    for (int i = 0; i < n; i++, m->n++) {
        const cz_tensor *t = cz_graph_named(g, i);
        cz_model_tensor *mt = &m->t[i];
        if (!(mt->name = dup_str(t->name)))
            goto nomem;
        mt->ndim = t->ndim;
        int64_t dims[4] = {t->n, t->c, t->h, t->w};
        for (int d = 0; d < 4; d++)
            mt->shape[d] = d < t->ndim ? dims[d] : 1;
        mt->buffer = t->kind == CZ_TENSOR_BUFFER;
        m->init[i] = t->init;
        m->init_scale[i] = t->init_scale;
        total += (size_t)cz_numel(t); /* the graph bounds each; few of them */
    }
    if (values) {
        m->values = calloc(total ? total : 1, sizeof *m->values);
        if (!m->values)
            goto nomem;
        float *at = m->values;
        for (int i = 0; i < n; i++) {
            m->t[i].data = at;
            at += tensor_numel(&m->t[i]);
        }
    }
    cz_graph_free(g);
    status = spec_to_meta(m);
    if (status != CZ_OK) {
        cz_model_free(m);
        return status;
    }
    *out = m;
    return CZ_OK;
nomem:
    cz_graph_free(g);
    cz_model_free(m);
    return cz_fail(CZ_ERR_NOMEM, "%s: out of memory for the model", spec->arch);
}

cz_status cz_model_new(const cz_model_spec *spec, uint64_t seed, cz_model **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_model_new: out is NULL");
    *out = NULL;
    cz_model_spec r;
    cz_status status = cz_model_spec_resolve(spec, &r);
    cz_model *m = NULL;
    if (status == CZ_OK)
        status = model_alloc(&r, true, &m);
    if (status != CZ_OK)
        return status;
    cz_rng rng;
    cz_rng_seed(&rng, seed);
    for (int i = 0; i < m->n; i++) {
        cz_model_tensor *t = &m->t[i];
        int64_t n = tensor_numel(t);
        float scale = m->init_scale[i];
        for (int64_t j = 0; j < n; j++) {
            float v = 0.0f;
            switch (m->init[i]) {
            case CZ_INIT_ZEROS: v = 0.0f; break;
            /* Parameters declared ONES with a scale are BatchNorm weights:
             * N(1, scale^2) (layers.h). Buffers have no scale. */
            case CZ_INIT_ONES: v = 1.0f + (t->buffer ? 0.0f : scale * cz_rng_normal(&rng)); break;
            case CZ_INIT_NORMAL: v = scale * cz_rng_normal(&rng); break;
            case CZ_INIT_UNIFORM: v = scale * (2.0f * cz_rng_uniform(&rng) - 1.0f); break;
            }
            t->data[j] = v;
        }
    }
    *out = m;
    return CZ_OK;
}

/* --- files --- */

static cz_status parse_int(const char *path, const char *key, const char *text, int *out)
{
    if (!text)
        return CZ_OK; /* absent: the default */
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < INT_MIN || v > INT_MAX)
        return cz_fail(CZ_ERR_FORMAT, "%s: metadata %s = '%s' is not an integer", path, key, text);
    *out = (int)v;
    return CZ_OK;
}

static cz_status parse_bool(const char *path, const char *key, const char *text, bool *out)
{
    if (!text)
        return CZ_OK;
    if (strcmp(text, "1") == 0 || strcmp(text, "true") == 0)
        *out = true;
    else if (strcmp(text, "0") == 0 || strcmp(text, "false") == 0)
        *out = false;
    else
        return cz_fail(CZ_ERR_FORMAT, "%s: metadata %s = '%s' is not 0 or 1", path, key, text);
    return CZ_OK;
}

static cz_status spec_from_file(const cz_safetensors *st, const char *path, cz_model_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    const char *arch = cz_safetensors_metadata(st, "arch");
    if (!arch)
        return cz_fail(CZ_ERR_FORMAT,
                       "%s: not a colorize model file (its metadata has no 'arch'); "
                       "convert other weights with tools/ or `colorize import-keras-resnet50`",
                       path);
    if (strlen(arch) >= sizeof spec->arch)
        return cz_fail(CZ_ERR_FORMAT, "%s: unknown architecture '%s'", path, arch);
    strcpy(spec->arch, arch);
    const char *layout = cz_safetensors_metadata(st, "encoder_layout");
    if (layout && strlen(layout) >= sizeof spec->encoder_layout)
        return cz_fail(CZ_ERR_FORMAT, "%s: unknown encoder layout '%s'", path, layout);
    if (layout)
        strcpy(spec->encoder_layout, layout);
    cz_status s = parse_int(path, "width", cz_safetensors_metadata(st, "width"), &spec->width);
    if (s == CZ_OK)
        s = parse_int(path, "size", cz_safetensors_metadata(st, "size"), &spec->size);
    if (s == CZ_OK)
        s = parse_int(path, "encoder_width", cz_safetensors_metadata(st, "encoder_width"),
                      &spec->encoder_width);
    if (s == CZ_OK)
        s = parse_int(path, "classes", cz_safetensors_metadata(st, "classes"), &spec->classes);
    if (s == CZ_OK)
        s = parse_bool(path, "freeze_encoder", cz_safetensors_metadata(st, "freeze_encoder"),
                       &spec->freeze_encoder);
    if (s == CZ_OK)
        s = parse_bool(path, "no_dropout", cz_safetensors_metadata(st, "no_dropout"),
                       &spec->no_dropout);
    if (s != CZ_OK)
        return s;
    cz_model_spec resolved;
    if (cz_model_spec_resolve(spec, &resolved) != CZ_OK) {
        char why[512]; /* cz_fail overwrites cz_last_error's buffer */
        snprintf(why, sizeof why, "%s", cz_last_error());
        return cz_fail(CZ_ERR_FORMAT, "%s: %s", path, why);
    }
    *spec = resolved;
    return CZ_OK;
}

/* The file's other metadata, kept so that saving the model again keeps it.
 * The safetensors reader validated the file; this reads its header again
 * for the keys it does not list. */
static cz_status extra_meta_from_file(cz_model *m, const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char len_bytes[8];
    json_t *header = NULL;
    char *text = NULL;
    cz_status status = CZ_OK;
    if (!f || fread(len_bytes, 1, 8, f) != 8) {
        status = cz_fail(CZ_ERR_IO, "%s: cannot read its header", path);
        goto done;
    }
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = len << 8 | len_bytes[i];
    /* cz_safetensors_open accepted this length (at most 100 MB). */
    text = malloc((size_t)len + 1);
    if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
        status = cz_fail(text ? CZ_ERR_IO : CZ_ERR_NOMEM, "%s: cannot read its header", path);
        goto done;
    }
    header = json_loadb(text, (size_t)len, 0, NULL);
    json_t *meta = header ? json_object_get(header, "__metadata__") : NULL;
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!is_spec_key(key) && json_is_string(value) &&
            (status = set_meta(m, key, json_string_value(value))) != CZ_OK)
            break;
    }
done:
    json_decref(header);
    free(text);
    if (f)
        fclose(f);
    return status;
}

/* Loads a model file; a packed one (pack.c) only if allow_packed, with the
 * tensors it leaves out zero; without values, everything but them. */
static cz_status load(const char *path, bool allow_packed, bool values, cz_model **out)
{
    if (!path || !out)
        return cz_fail(CZ_ERR_INVALID, "cz_model_load: NULL argument");
    *out = NULL;
    cz_safetensors *st = NULL;
    cz_model *m = NULL;
    const char **names = NULL;
    cz_model_spec spec;
    cz_status status = cz_safetensors_open(path, &st);
    if (status == CZ_OK)
        status = spec_from_file(st, path, &spec);
    if (status == CZ_OK)
        status = model_alloc(&spec, values, &m);
    if (status != CZ_OK)
        goto done;
    const char *omitted = cz_safetensors_metadata(st, CZ_PACKED_WITHOUT_KEY);
    if (omitted && !allow_packed) {
        status = cz_fail(CZ_ERR_FORMAT,
                         "%s is a packed model without its '%s*' tensors: unpack it first "
                         "(`colorize unpack %s -o FULL.safetensors`, or `make model` for the "
                         "built-in one)",
                         path, omitted, path);
        goto done;
    }
    names = malloc((size_t)m->n * sizeof *names);
    if (!names) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    int n_stored = 0;
    for (int i = 0; i < m->n; i++)
        if (!omitted || strncmp(m->t[i].name, omitted, strlen(omitted)) != 0)
            names[n_stored++] = m->t[i].name;
    status = cz_safetensors_check_names(st, names, n_stored);
    if (status != CZ_OK) {
        char why[512]; /* cz_fail overwrites cz_last_error's buffer */
        snprintf(why, sizeof why, "%s", cz_last_error());
        status = cz_fail(status, "%s (a '%s' model)", why, m->spec.arch);
        goto done;
    }
    for (int i = 0; values && i < n_stored && status == CZ_OK; i++) {
        cz_model_tensor *t = cz_model_find(m, names[i]);
        status = cz_safetensors_read_f32(st, t->name, t->shape, t->ndim, t->data);
    }
    if (status == CZ_OK)
        status = extra_meta_from_file(m, path);
done:
    free(names);
    cz_safetensors_close(st);
    if (status != CZ_OK) {
        cz_model_free(m);
        return status;
    }
    *out = m;
    return CZ_OK;
}

cz_status cz_model_load(const char *path, cz_model **out) { return load(path, false, true, out); }
cz_status cz_model_load_part(const char *path, cz_model **out) { return load(path, true, true, out); }
cz_status cz_model_load_header(const char *path, cz_model **out)
{
    return load(path, false, false, out);
}

cz_status cz_model_save(const cz_model *m, const char *path, const char *const *extra_meta)
{
    if (!m || !path)
        return cz_fail(CZ_ERR_INVALID, "cz_model_save: NULL argument");
    int n_extra = 0;
    while (extra_meta && extra_meta[2 * n_extra]) {
        if (!extra_meta[2 * n_extra + 1])
            return cz_fail(CZ_ERR_INVALID, "%s: metadata key '%s' has no value", path,
                           extra_meta[2 * n_extra]);
        if (is_spec_key(extra_meta[2 * n_extra]))
            return cz_fail(CZ_ERR_INVALID, "%s: metadata key '%s' is the model's own", path,
                           extra_meta[2 * n_extra]);
        n_extra++;
    }
    /* The model's metadata, with extra_meta's values replacing same keys. */
    const char **kv = calloc((size_t)(2 * (m->n_meta + n_extra) + 1), sizeof *kv);
    cz_st_entry *entries = calloc((size_t)(m->n ? m->n : 1), sizeof *entries);
    cz_status status = CZ_OK;
    if (!kv || !entries) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    int at = 0;
    for (int i = 0; i < m->n_meta; i++) {
        bool replaced = false;
        for (int j = 0; j < n_extra && !replaced; j++)
            replaced = strcmp(extra_meta[2 * j], m->meta[i].key) == 0;
        if (!replaced) {
            kv[at++] = m->meta[i].key;
            kv[at++] = m->meta[i].value;
        }
    }
    for (int j = 0; j < 2 * n_extra; j++)
        kv[at++] = extra_meta[j];
    for (int i = 0; i < m->n; i++) {
        entries[i].name = m->t[i].name;
        entries[i].dtype = CZ_DT_F32;
        entries[i].ndim = m->t[i].ndim;
        for (int d = 0; d < m->t[i].ndim; d++)
            entries[i].shape[d] = m->t[i].shape[d];
        entries[i].data = m->t[i].data;
    }
    status = cz_safetensors_write(path, kv, entries, m->n);
done:
    free(kv);
    free(entries);
    return status;
}

const char *cz_model_metadata(const cz_model *m, const char *key)
{
    for (int i = 0; m && key && i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0)
            return m->meta[i].value;
    return NULL;
}

cz_status cz_model_set_metadata(cz_model *m, const char *key, const char *value)
{
    if (!m || !key || !value)
        return cz_fail(CZ_ERR_INVALID, "cz_model_set_metadata: NULL argument");
    if (is_spec_key(key))
        return cz_fail(CZ_ERR_INVALID, "metadata key '%s' is the model's own", key);
    return set_meta(m, key, value);
}

int cz_model_n_metadata(const cz_model *m) { return m->n_meta; }

void cz_model_metadata_at(const cz_model *m, int i, const char **key, const char **value)
{
    bool ok = i >= 0 && i < m->n_meta;
    if (key)
        *key = ok ? m->meta[i].key : NULL;
    if (value)
        *value = ok ? m->meta[i].value : NULL;
}

/* --- weights between models and graphs --- */

static bool same_shape(const cz_model_tensor *mt, const cz_tensor *t)
{
    int64_t dims[4] = {t->n, t->c, t->h, t->w};
    for (int d = 0; d < 4; d++)
        if (dims[d] != (d < mt->ndim ? mt->shape[d] : 1))
            return false;
    return true;
}

/* The graph tensor for model tensor i, or NULL after setting the error. */
static cz_tensor *graph_tensor(const cz_model *m, const cz_graph *g, int i)
{
    const cz_model_tensor *mt = &m->t[i];
    cz_tensor *t = cz_graph_find(g, mt->name);
    if (!t) {
        cz_fail(CZ_ERR_INVALID, "'%s' model: the graph has no tensor '%s'", m->spec.arch, mt->name);
        return NULL;
    }
    if (!same_shape(mt, t) || (t->kind == CZ_TENSOR_BUFFER) != mt->buffer) {
        cz_fail(CZ_ERR_INVALID, "'%s' model: the graph's '%s' is [%lld, %lld, %lld, %lld]",
                m->spec.arch, mt->name, (long long)t->n, (long long)t->c, (long long)t->h,
                (long long)t->w);
        return NULL;
    }
    if (!t->data) {
        cz_fail(CZ_ERR_INVALID, "'%s' model: the graph is not planned", m->spec.arch);
        return NULL;
    }
    return t;
}

cz_status cz_model_to_graph(const cz_model *m, cz_graph *g)
{
    if (!m || !g)
        return cz_fail(CZ_ERR_INVALID, "cz_model_to_graph: NULL argument");
    if (!m->values)
        return cz_fail(CZ_ERR_INVALID, "'%s' model: its weights were not loaded", m->spec.arch);
    for (int i = 0; i < m->n; i++) {
        cz_tensor *t = graph_tensor(m, g, i);
        if (!t)
            return CZ_ERR_INVALID;
        memcpy(t->data, m->t[i].data, (size_t)cz_numel(t) * sizeof(float));
    }
    cz_graph_params_changed(g);
    return CZ_OK;
}

cz_status cz_model_read_into_graph(const cz_model *m, const char *path, cz_graph *g)
{
    if (!m || !path || !g)
        return cz_fail(CZ_ERR_INVALID, "cz_model_read_into_graph: NULL argument");
    cz_safetensors *st = NULL;
    cz_status status = cz_safetensors_open(path, &st);
    for (int i = 0; i < m->n && status == CZ_OK; i++) {
        const cz_model_tensor *mt = &m->t[i];
        cz_tensor *t = graph_tensor(m, g, i);
        status = t ? cz_safetensors_read_f32(st, mt->name, mt->shape, mt->ndim, t->data)
                   : CZ_ERR_INVALID;
    }
    cz_safetensors_close(st);
    cz_graph_params_changed(g);
    return status;
}

cz_status cz_model_from_graph(cz_model *m, const cz_graph *g)
{
    if (!m || !g)
        return cz_fail(CZ_ERR_INVALID, "cz_model_from_graph: NULL argument");
    if (!m->values)
        return cz_fail(CZ_ERR_INVALID, "'%s' model: it has no weights to write", m->spec.arch);
    for (int i = 0; i < m->n; i++) {
        const cz_tensor *t = graph_tensor(m, g, i);
        if (!t)
            return CZ_ERR_INVALID;
        memcpy(m->t[i].data, t->data, (size_t)cz_numel(t) * sizeof(float));
    }
    return CZ_OK;
}

/* --- pretrained encoders --- */

#define ENCODER_PREFIX "encoder."
#define CLASSIFIER_HEAD "fc."

cz_status cz_model_import_encoder(cz_model *gen, const cz_model *resnet50)
{
    if (!gen || !resnet50)
        return cz_fail(CZ_ERR_INVALID, "cz_model_import_encoder: NULL argument");
    const cz_model_spec *gs = &gen->spec, *rs = &resnet50->spec;
    if (!cz_model_has_encoder(gs->arch) || cz_model_kind_of(gs->arch) != CZ_MODEL_GENERATOR)
        return cz_fail(CZ_ERR_INVALID, "a '%s' model has no ResNet50 encoder", gs->arch);
    if (strcmp(rs->arch, "resnet50") != 0)
        return cz_fail(CZ_ERR_INVALID, "encoder weights must come from a 'resnet50' model, not '%s'",
                       rs->arch);
    if (strcmp(gs->encoder_layout, rs->encoder_layout) != 0 ||
        gs->encoder_width != rs->encoder_width)
        return cz_fail(CZ_ERR_INVALID,
                       "the generator's encoder is a %s ResNet50 of width %d, the weights are "
                       "%s of width %d",
                       gs->encoder_layout, gs->encoder_width, rs->encoder_layout,
                       rs->encoder_width);
    /* Pass 0 checks everything, pass 1 copies: a failure changes nothing. */
    int copied = 0, expected = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < resnet50->n; i++) {
            const cz_model_tensor *src = &resnet50->t[i];
            if (strncmp(src->name, CLASSIFIER_HEAD, strlen(CLASSIFIER_HEAD)) == 0)
                continue;
            char name[CZ_NAME_MAX];
            cz_layer_name(name, ENCODER_PREFIX "%s", src->name);
            cz_model_tensor *dst = cz_model_find(gen, name);
            if (!dst || dst->ndim != src->ndim ||
                memcmp(dst->shape, src->shape, sizeof dst->shape) != 0)
                return cz_fail(CZ_ERR_INVALID, "the generator has no encoder tensor '%s' shaped "
                                               "as the classifier's",
                               name);
            if (pass == 0)
                copied++;
            else
                memcpy(dst->data, src->data, (size_t)tensor_numel(src) * sizeof(float));
        }
        if (pass == 0) {
            for (int i = 0; i < gen->n; i++)
                expected += strncmp(gen->t[i].name, ENCODER_PREFIX, strlen(ENCODER_PREFIX)) == 0;
            if (copied != expected)
                return cz_fail(CZ_ERR_INVALID,
                               "the classifier has %d of the encoder's %d tensors", copied,
                               expected);
        }
    }
    const char *source = cz_model_metadata(resnet50, "source");
    return set_meta(gen, "encoder_source", source ? source : "ImageNet resnet50");
}
