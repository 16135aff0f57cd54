/* ImageNet classification with a "resnet50" model, for checking imported
 * weights (model.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "image/lab.h"
#include "models/model.h"

#define MAX_BATCH 256
#define MAX_CLASSIFY_SIZE 4096

/* One plane of img as floats in [0, 1]: channel c of RGB(A), or the gray
 * channel of a gray(+alpha) image. */
static void plane_of(const cz_image *img, int c, float *dst)
{
    size_t n = (size_t)img->width * (size_t)img->height;
    int stride = img->channels;
    int src = img->channels >= 3 ? c : 0;
    if (img->depth == 8) {
        const uint8_t *p = img->data;
        for (size_t i = 0; i < n; i++)
            dst[i] = p[i * stride + src] / 255.0f;
    } else {
        const uint16_t *p = img->data;
        for (size_t i = 0; i < n; i++)
            dst[i] = p[i * stride + src] / 65535.0f;
    }
}

cz_status cz_classify_preprocess(const cz_image *img, int size, float *rgb)
{
    if (!img || !rgb || size < 1 || size > MAX_CLASSIFY_SIZE || img->width < 1 ||
        img->height < 1 || (img->depth != 8 && img->depth != 16) || img->channels < 1 ||
        img->channels > 4)
        return cz_fail(CZ_ERR_INVALID, "classify: bad image or size");
    /* Shorter side to size * 256 / 224, the other in proportion, then the
     * centre size x size. */
    int shorter = (int)lround(size * CZ_CLASSIFY_RESIZE_RATIO);
    int w, h;
    if (img->width <= img->height) {
        w = shorter;
        h = (int)lround((double)img->height * shorter / img->width);
    } else {
        h = shorter;
        w = (int)lround((double)img->width * shorter / img->height);
    }
    if (h < size)
        h = size;
    if (w < size)
        w = size;
    if ((double)w * h > 1e9)
        return cz_fail(CZ_ERR_TOO_LARGE, "classify: %dx%d photo is too elongated", img->width,
                       img->height);
    size_t src_n = (size_t)img->width * (size_t)img->height;
    float *src = malloc(src_n * sizeof *src);
    float *resized = malloc((size_t)w * (size_t)h * sizeof *resized);
    cz_status status = CZ_OK;
    if (!src || !resized) {
        status = cz_fail(CZ_ERR_NOMEM, "classify: out of memory");
        goto done;
    }
    int x0 = (w - size) / 2, y0 = (h - size) / 2;
    for (int c = 0; c < 3 && status == CZ_OK; c++) {
        plane_of(img, c, src);
        status = cz_resize_bilinear_f32(src, img->width, img->height, resized, w, h);
        for (int y = 0; y < size && status == CZ_OK; y++)
            memcpy(rgb + ((size_t)c * size + y) * size, resized + (size_t)(y0 + y) * w + x0,
                   (size_t)size * sizeof *rgb);
    }
done:
    free(src);
    free(resized);
    return status;
}

struct cz_classifier {
    cz_graph *g;
    cz_tensor *x, *y;
    int batch, size, classes;
    float *probs;
};

void cz_classifier_free(cz_classifier *c)
{
    if (!c)
        return;
    cz_graph_free(c->g);
    free(c->probs);
    free(c);
}

int cz_classifier_classes(const cz_classifier *c) { return c->classes; }

cz_status cz_classifier_create(const cz_model *m, int batch, int size, cz_precision precision,
                               cz_classifier **out)
{
    if (!m || !out)
        return cz_fail(CZ_ERR_INVALID, "cz_classifier_create: NULL argument");
    *out = NULL;
    const cz_model_spec *spec = cz_model_spec_of(m);
    if (cz_model_kind_of(spec->arch) != CZ_MODEL_CLASSIFIER)
        return cz_fail(CZ_ERR_INVALID, "a '%s' model is not a classifier", spec->arch);
    if (batch < 1 || batch > MAX_BATCH || size < 32 || size > MAX_CLASSIFY_SIZE)
        return cz_fail(CZ_ERR_INVALID, "classify: batch %d or size %d out of range", batch, size);
    cz_classifier *c = calloc(1, sizeof *c);
    cz_graph_config config = {.training = false, .precision = precision, .params_copied_in = true};
    if (!c || !(c->g = cz_graph_create(&config))) {
        cz_classifier_free(c);
        return cz_fail(CZ_ERR_NOMEM, "classify: out of memory");
    }
    c->batch = batch;
    c->size = size;
    c->classes = spec->classes;
    c->x = cz_graph_input(c->g, "rgb", batch, 3, size, size, false);
    c->y = cz_model_build(spec, c->g, c->x);
    cz_status status = cz_graph_plan(c->g);
    if (status == CZ_OK)
        status = cz_model_to_graph(m, c->g);
    if (status == CZ_OK && !(c->probs = malloc((size_t)c->classes * sizeof *c->probs)))
        status = cz_fail(CZ_ERR_NOMEM, "classify: out of memory");
    if (status != CZ_OK) {
        cz_classifier_free(c);
        return status;
    }
    *out = c;
    return CZ_OK;
}

/* Softmax of one row of logits into c->probs, then its k best. */
static void top_k(cz_classifier *c, const float *logits, int k, int *top, float *prob)
{
    float max = logits[0];
    for (int j = 1; j < c->classes; j++)
        max = fmaxf(max, logits[j]);
    double sum = 0;
    for (int j = 0; j < c->classes; j++)
        sum += c->probs[j] = expf(logits[j] - max);
    for (int j = 0; j < c->classes; j++)
        c->probs[j] = (float)(c->probs[j] / sum);
    for (int r = 0; r < k; r++) {
        int best = -1;
        for (int j = 0; j < c->classes; j++) {
            bool taken = false;
            for (int q = 0; q < r && !taken; q++)
                taken = top[q] == j;
            if (!taken && (best < 0 || c->probs[j] > c->probs[best]))
                best = j;
        }
        top[r] = best;
        if (prob)
            prob[r] = c->probs[best];
    }
}

cz_status cz_classifier_run(cz_classifier *c, const char *const *paths, int n, int k, int *top,
                            float *prob)
{
    if (!c || (n > 0 && (!paths || !top)) || n < 0 || k < 1 || k > c->classes)
        return cz_fail(CZ_ERR_INVALID, "cz_classifier_run: bad argument");
    size_t plane = (size_t)3 * c->size * c->size;
    for (int start = 0; start < n; start += c->batch) {
        int count = n - start < c->batch ? n - start : c->batch;
        memset(c->x->data, 0, (size_t)c->batch * plane * sizeof(float));
        for (int i = 0; i < count; i++) {
            cz_image *img = NULL;
            cz_status s = cz_image_load(paths[start + i], NULL, &img);
            if (s == CZ_OK)
                s = cz_classify_preprocess(img, c->size, c->x->data + (size_t)i * plane);
            cz_image_free(img);
            if (s != CZ_OK)
                return s;
        }
        cz_status s = cz_graph_forward(c->g);
        if (s != CZ_OK)
            return s;
        for (int i = 0; i < count; i++)
            top_k(c, c->y->data + (size_t)i * c->classes, k, top + (size_t)(start + i) * k,
                  prob ? prob + (size_t)(start + i) * k : NULL);
    }
    return CZ_OK;
}
