/* The public colourising API: a generator loaded once with its inference
 * graph, planned for the network size (or each size the model's finish asks
 * for) and reused for every photo. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "base/error.h"
#include "engine/graph.h"
#include "engine/onednn.h"
#include "image/image.h"
#include "image/lab.h"
#include "models/model.h"
#include "pipeline/finish.h"
#include "pipeline/pipeline.h"

/* The network planned for one side: the model file's finish.scales may ask
 * for several. */
typedef struct {
    int side;
    cz_graph *g;     /* batch 1, inference, planned for side x side */
    cz_tensor *x;    /* input: L* / 50 - 1, [1, 1, side, side] */
    cz_tensor *y;    /* output: a*b* / 110, [1, 2, side, side] */
} network;

struct cz_colorizer {
    char arch[32];
    int size, trained_size; /* a*b* are predicted and finished at size x size */
    bool bf16;
    long params;
    int n_networks;
    network networks[CZ_FINISH_MAX_SCALES];
    float *ab;       /* the prediction scaled to a*b*: a plane then b plane */
    float *chroma;   /* with finish.agreement: the mean of the predictions'
                        |a*b*|, size x size */
    float *planes;   /* 2 x size x size scratch: the resized output planes,
                        the guide */
    cz_finish finish; /* what the model file asks for after the network */
};

bool cz_cpu_has_bf16(void) { return cz_dnnl_has_native_bf16(); }

const char *cz_default_model_path(void)
{
    const char *env = getenv("COLORIZE_MODEL");
    return env && *env ? env : CZ_DEFAULT_MODEL;
}

void cz_colorizer_free(cz_colorizer *cz)
{
    if (!cz)
        return;
    for (int k = 0; k < cz->n_networks; k++)
        cz_graph_free(cz->networks[k].g);
    free(cz->ab);
    free(cz->chroma);
    free(cz->planes);
    free(cz);
}

/* Builds and plans net's inference graph for net->side and copies m's
 * weights in. Messages name the model file. */
static cz_status build_graph(const cz_colorizer *cz, network *net,
                             const cz_model *m, const char *path)
{
    const int N = net->side;
    cz_graph_config config = {
        .training = false,
        .precision = cz->bf16 ? CZ_BF16 : CZ_FP32,
        .params_copied_in = true,
    };
    net->g = cz_graph_create(&config);
    if (!net->g)
        return cz_fail(CZ_ERR_NOMEM, "%s: out of memory for the network", path);
    net->x = cz_graph_input(net->g, "L", 1, 1, N, N, false);
    net->y = cz_model_build(cz_model_spec_of(m), net->g, net->x);
    cz_status status = cz_graph_status(net->g);
    if (status == CZ_OK && !net->y)
        status = CZ_ERR_INVALID;
    if (status != CZ_OK)
        return cz_fail(status == CZ_ERR_NOMEM ? status : CZ_ERR_INVALID,
                       "%s: a '%s' network cannot run at %dx%d: %s", path,
                       cz->arch, N, N, cz_last_error());
    const cz_tensor *y = net->y;
    if (y->n != 1 || y->c != 2 || y->h != N || y->w != N)
        return cz_fail(CZ_ERR_INVALID,
                       "%s: a '%s' network at %dx%d gives a [%lld, %lld, %lld, "
                       "%lld] output, not a*b* [1, 2, %d, %d]",
                       path, cz->arch, N, N, (long long)y->n, (long long)y->c,
                       (long long)y->h, (long long)y->w, N, N);
    status = cz_graph_plan(net->g);
    if (status != CZ_OK)
        return cz_fail(status, "%s: cannot prepare the network at %dx%d: %s",
                       path, N, N, cz_last_error());
    status = cz_model_read_into_graph(m, path, net->g);
    if (status != CZ_OK)
        return cz_fail(status, "%s: %s", path, cz_last_error());
    return CZ_OK;
}

/* One network per scale of the finish, each planned for its side. */
static cz_status build_networks(cz_colorizer *cz, const cz_model *m,
                                const char *path)
{
    for (int k = 0; k < cz->finish.n_scales; k++) {
        network *net = &cz->networks[cz->n_networks++];
        net->side = cz_finish_side(cz->finish.scales[k], cz->size);
        if (net->side > CZ_MAX_SIZE)
            return cz_fail(CZ_ERR_INVALID,
                           "%s: finish.scales asks for the network at %dx%d, "
                           "above the largest size, %d (--fast runs it at "
                           "the size alone)", path, net->side, net->side,
                           CZ_MAX_SIZE);
        cz_status status = build_graph(cz, net, m, path);
        if (status != CZ_OK)
            return status;
    }
    return CZ_OK;
}

cz_status cz_colorizer_load(const char *model_path,
                            const cz_colorizer_options *opt,
                            cz_colorizer **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_colorizer_load: out is NULL");
    *out = NULL;
    if (!model_path) {
        model_path = cz_default_model_path();
        if (access(model_path, F_OK) != 0)
            return cz_fail(CZ_ERR_IO,
                           "the built-in model is not installed: %s does not "
                           "exist (`make model` in the colorize source folder "
                           "unpacks it, or give a model file)", model_path);
    }
    const int size = opt ? opt->size : 0;
    if (size != 0 && (size < CZ_SIZE_MULTIPLE || size > CZ_MAX_SIZE ||
                      size % CZ_SIZE_MULTIPLE != 0))
        return cz_fail(CZ_ERR_INVALID,
                       "network size %d: it must be a multiple of %d from %d "
                       "to %d", size, CZ_SIZE_MULTIPLE, CZ_SIZE_MULTIPLE,
                       CZ_MAX_SIZE);

    cz_model *m = NULL;
    cz_colorizer *cz = NULL;
    cz_status status = cz_model_load_header(model_path, &m);
    if (status != CZ_OK)
        goto cleanup;
    const cz_model_spec *spec = cz_model_spec_of(m);
    if (cz_model_kind_of(spec->arch) != CZ_MODEL_GENERATOR) {
        status = cz_fail(CZ_ERR_FORMAT,
                         "%s: a '%s' model is not a colouriser; colouring "
                         "needs a generator (unet, resnet50-paper, "
                         "resnet50-unet or resnet50-unet-bins)", model_path, spec->arch);
        goto cleanup;
    }
    if (size == 0 && (spec->size < CZ_SIZE_MULTIPLE || spec->size > CZ_MAX_SIZE ||
                      spec->size % CZ_SIZE_MULTIPLE != 0)) {
        status = cz_fail(CZ_ERR_FORMAT,
                         "%s: the model's training size %d is not a multiple "
                         "of %d from %d to %d", model_path, spec->size,
                         CZ_SIZE_MULTIPLE, CZ_SIZE_MULTIPLE, CZ_MAX_SIZE);
        goto cleanup;
    }
    cz = calloc(1, sizeof *cz);
    if (!cz) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", model_path);
        goto cleanup;
    }
    snprintf(cz->arch, sizeof cz->arch, "%s", spec->arch);
    cz->trained_size = spec->size;
    cz->size = size ? size : spec->size;
    const cz_precision_choice precision = opt ? opt->precision : CZ_PRECISION_AUTO;
    cz->bf16 = precision == CZ_PRECISION_BF16 ||
               (precision == CZ_PRECISION_AUTO && cz_cpu_has_bf16());
    cz->params = cz_model_param_count(m);
    status = cz_finish_read(m, model_path, &cz->finish);
    if (status != CZ_OK)
        goto cleanup;
    if (opt && opt->fast)
        cz->finish = (cz_finish){.n_scales = 1, .scales = {1.0f}, .chroma_gain = 1.0f};
    const size_t n = (size_t)cz->size * (size_t)cz->size;
    cz->ab = malloc(2 * n * sizeof *cz->ab);
    cz->planes = malloc(2 * n * sizeof *cz->planes);
    if (cz->finish.agreement > 0)
        cz->chroma = malloc(n * sizeof *cz->chroma);
    if (!cz->ab || !cz->planes || (cz->finish.agreement > 0 && !cz->chroma)) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", model_path);
        goto cleanup;
    }
    status = build_networks(cz, m, model_path);

cleanup:
    /* The weights went from the file straight into the graph; the model's
     * description goes now. */
    cz_model_free(m);
    if (status != CZ_OK) {
        cz_colorizer_free(cz);
        return status;
    }
    *out = cz;
    return CZ_OK;
}

void cz_colorizer_get_info(const cz_colorizer *cz, cz_colorizer_info *info)
{
    if (!cz || !info)
        return;
    *info = (cz_colorizer_info){
        .arch = cz->arch,
        .size = cz->size,
        .trained_size = cz->trained_size,
        .bf16 = cz->bf16,
        .params = cz->params,
        .mirror = cz->finish.mirror,
        .agreement = cz->finish.agreement,
        .guided_radius = cz->finish.guided_radius,
        .chroma_gain = cz->finish.chroma_gain,
        .n_sides = cz->n_networks,
    };
    for (int k = 0; k < cz->n_networks; k++)
        info->sides[k] = cz->networks[k].side;
}

/* Mirrors each row of count N x N planes. */
static void mirror_rows(float *planes, int count, int N)
{
    for (size_t row = 0; row < (size_t)count * N; row++)
        for (int x = 0, z = N - 1; x < z; x++, z--) {
            float *r = planes + row * N, t = r[x];
            r[x] = r[z], r[z] = t;
        }
}

/* Runs net on its input and adds weight * its a*b*, resized to cz->size,
 * into cz->ab, and weight * their magnitude into cz->chroma if kept;
 * mirrored: the input was the mirror image. */
static cz_status run_network(cz_colorizer *cz, network *net, float weight,
                             bool mirrored)
{
    cz_status status = cz_graph_forward(net->g);
    if (status != CZ_OK)
        return cz_fail(status, "the network failed: %s", cz_last_error());
    const int S = net->side, N = cz->size;
    const size_t n = (size_t)N * (size_t)N;
    float *y = net->y->data;
    for (size_t i = 0; i < 2 * (size_t)S * (size_t)S; i++)
        if (!isfinite(y[i]))
            return cz_fail(CZ_ERR_NUMERIC,
                           "the network predicted %s a*b*: its weights are "
                           "damaged", isnan(y[i]) ? "NaN" : "infinite");
    if (mirrored)
        mirror_rows(y, 2, S);
    const float *a = y, *b = y + (size_t)S * S;
    if (S != N) {
        status = cz_resize_bilinear_f32(a, S, S, cz->planes, N, N);
        if (status == CZ_OK)
            status = cz_resize_bilinear_f32(b, S, S, cz->planes + n, N, N);
        if (status != CZ_OK)
            return status;
        a = cz->planes, b = cz->planes + n;
    }
    for (size_t i = 0; i < n; i++) {
        float da = weight * CZ_AB_RANGE * a[i], db = weight * CZ_AB_RANGE * b[i];
        cz->ab[i] += da;
        cz->ab[n + i] += db;
        if (cz->chroma)
            cz->chroma[i] += hypotf(da, db);
    }
    return CZ_OK;
}

/* Shows net L* (W x H, full resolution) resized to its side, and its
 * mirror image too if the finish asks, adding weight * each prediction into
 * cz->ab. */
static cz_status run_side(cz_colorizer *cz, network *net, const float *L,
                          int W, int H, float weight)
{
    const int S = net->side;
    float *x = net->x->data;
    cz_status status = cz_resize_bilinear_f32(L, W, H, x, S, S);
    if (status != CZ_OK)
        return status;
    for (size_t i = 0; i < (size_t)S * (size_t)S; i++)
        x[i] = x[i] / CZ_L_HALF_RANGE - 1.0f;
    status = run_network(cz, net, weight, false);
    if (status == CZ_OK && cz->finish.mirror) {
        mirror_rows(x, 1, S);
        status = run_network(cz, net, weight, true);
    }
    return status;
}

/* Predicts a*b* at size x size for L* (W x H, full resolution) into cz->ab,
 * finished as the model file says. */
static cz_status predict(cz_colorizer *cz, const float *L, int W, int H)
{
    const int N = cz->size;
    const size_t n = (size_t)N * (size_t)N;
    const cz_finish *f = &cz->finish;
    const float weight = 1.0f / (float)(cz->n_networks * (f->mirror ? 2 : 1));
    memset(cz->ab, 0, 2 * n * sizeof *cz->ab);
    if (cz->chroma)
        memset(cz->chroma, 0, n * sizeof *cz->chroma);
    cz_status status = CZ_OK;
    for (int k = 0; k < cz->n_networks && status == CZ_OK; k++)
        status = run_side(cz, &cz->networks[k], L, W, H, weight);
    if (status == CZ_OK && cz->chroma)
        cz_finish_agreement(cz->ab, cz->chroma, n, f->agreement);
    if (status == CZ_OK && f->guided_radius > 0) {
        float *guide = cz->planes; /* L* / 100 */
        status = cz_resize_bilinear_f32(L, W, H, guide, N, N);
        for (size_t i = 0; status == CZ_OK && i < n; i++)
            guide[i] /= 100.0f;
        if (status == CZ_OK)
            status = cz_finish_guided(guide, cz->ab, N, f->guided_radius);
    }
    if (status == CZ_OK && f->chroma_gain != 1.0f)
        for (size_t i = 0; i < 2 * n; i++)
            cz->ab[i] *= f->chroma_gain;
    return status;
}

/* Copies in's alpha into out's (both have alpha, same size and depth). */
static void copy_alpha(const cz_image *in, cz_image *out)
{
    const int W = in->width, H = in->height;
    const int ci = in->channels, co = out->channels;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) {
        size_t row = (size_t)y * (size_t)W;
        for (int x = 0; x < W; x++) {
            size_t i = row + (size_t)x;
            if (in->depth == 8)
                ((uint8_t *)out->data)[i * co + co - 1] =
                    ((const uint8_t *)in->data)[i * ci + ci - 1];
            else
                ((uint16_t *)out->data)[i * co + co - 1] =
                    ((const uint16_t *)in->data)[i * ci + ci - 1];
        }
    }
}

cz_status cz_colorize_image(cz_colorizer *cz, const cz_image *in,
                            cz_image **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_colorize_image: out is NULL");
    *out = NULL;
    if (!cz || !in || !in->data)
        return cz_fail(CZ_ERR_INVALID, "cz_colorize_image: %s is NULL",
                       !cz ? "the colorizer" : "the image");
    if (!cz_image_size(in->width, in->height, in->channels, in->depth, NULL,
                       NULL))
        return cz_fail(CZ_ERR_INVALID,
                       "cz_colorize_image: invalid image shape %dx%d, %d "
                       "channels, %d bits", in->width, in->height,
                       in->channels, in->depth);
    const int W = in->width, H = in->height;
    const bool alpha = in->channels == 2 || in->channels == 4;
    float *L = NULL;
    cz_image *img = NULL;
    cz_status status = CZ_OK;
    if ((size_t)W > SIZE_MAX / sizeof *L / (size_t)H) {
        status = cz_fail(CZ_ERR_TOO_LARGE, "cz_colorize_image: %dx%d pixels "
                         "do not fit in memory", W, H);
        goto cleanup;
    }
    L = malloc((size_t)W * (size_t)H * sizeof *L);
    img = cz_image_new(W, H, alpha ? 4 : 3, in->depth);
    if (!L || !img) {
        status = cz_fail(CZ_ERR_NOMEM, "out of memory for a %dx%d image", W, H);
        goto cleanup;
    }
    status = cz_luminance_plane(in, L);
    if (status == CZ_OK)
        status = predict(cz, L, W, H);
    if (status != CZ_OK)
        goto cleanup;
    if (alpha)
        copy_alpha(in, img);
    const size_t n = (size_t)cz->size * (size_t)cz->size;
    status = cz_recombine(L, cz->ab, cz->ab + n, cz->size, img);

cleanup:
    free(L);
    if (status != CZ_OK) {
        cz_image_free(img);
        return status;
    }
    *out = img;
    return CZ_OK;
}
