/* The networks of src/models: parity with the PyTorch reference of
 * tools/make_model_fixtures.py (forward and one backward step, per
 * architecture), shapes and parameter counts at full width, the model file
 * round trip, encoder import, and the models' own ops against finite
 * differences. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gradcheck.h"
#include "io/safetensors.h"
#include "models/layers.h"
#include "models/model.h"
#include "ops/ops.h"

#define FIXTURES "tests/fixtures/models/"
#define REL_TOL 1e-4

static double worst; /* the largest norm-wise error of strict tensors, for the log */

/* --- parity --- */

static bool load(const cz_safetensors *st, const char *name, const cz_tensor *t, float *dst)
{
    int64_t shape[4] = {t->n, t->c, t->h, t->w};
    cz_status s = cz_safetensors_read_f32(st, name, shape, t->ndim, dst);
    CHECK(s == CZ_OK, "%s", cz_last_error());
    return s == CZ_OK;
}

/* The fixture's reference is PyTorch in float64. A tensor must be within
 * REL_TOL norm-wise relative error of it, or, where PyTorch's own float32
 * result is not (see tools/make_model_fixtures.py), within the absolute norm
 * the fixture gives as "maxerr.<name>": ten times PyTorch's float32 error. */
static int n_strict, n_loose;
static double worst_loose; /* the largest relative error of the others */

static void compare(const cz_safetensors *st, const char *net, const char *name,
                    const cz_tensor *t, const float *values)
{
    int64_t n = cz_numel(t);
    float *expect = malloc((size_t)n * sizeof *expect);
    if (load(st, name, t, expect)) {
        double d2 = 0, r2 = 0;
        for (int64_t i = 0; i < n; i++) {
            d2 += ((double)values[i] - expect[i]) * ((double)values[i] - expect[i]);
            r2 += (double)expect[i] * expect[i];
        }
        double err = sqrt(d2), ref = sqrt(r2);
        char key[300];
        snprintf(key, sizeof key, "maxerr.%s", name);
        const char *maxerr = cz_safetensors_metadata(st, key);
        double allowed = maxerr ? atof(maxerr) : REL_TOL * ref;
        CHECK(err <= allowed, "%s: %s: error norm %.3g (relative %.3g), allowed %.3g", net, name,
              err, ref > 0 ? err / ref : err, allowed);
        if (maxerr) {
            n_loose++;
            if (ref > 1e-6) /* not a zero but for rounding */
                worst_loose = fmax(worst_loose, err / ref);
        } else {
            n_strict++;
            worst = fmax(worst, err / ref);
        }
    }
    free(expect);
}

static void spec_from_fixture(const cz_safetensors *st, cz_model_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    const char *v;
    snprintf(spec->arch, sizeof spec->arch, "%s", cz_safetensors_metadata(st, "arch"));
    if ((v = cz_safetensors_metadata(st, "width")))
        spec->width = atoi(v);
    if ((v = cz_safetensors_metadata(st, "encoder_width")))
        spec->encoder_width = atoi(v);
    if ((v = cz_safetensors_metadata(st, "classes")))
        spec->classes = atoi(v);
    if ((v = cz_safetensors_metadata(st, "encoder_layout")))
        snprintf(spec->encoder_layout, sizeof spec->encoder_layout, "%s", v);
    spec->freeze_encoder = cz_safetensors_metadata(st, "freeze_encoder") != NULL;
    spec->no_dropout = cz_safetensors_metadata(st, "no_dropout") != NULL;
}

static void parity(const char *fixture)
{
    char path[256], name[256];
    snprintf(path, sizeof path, FIXTURES "%s.safetensors", fixture);
    cz_safetensors *st = NULL;
    CHECK(cz_safetensors_open(path, &st) == CZ_OK, "%s", cz_last_error());
    if (!st)
        return;
    cz_model_spec spec;
    spec_from_fixture(st, &spec);
    int64_t in_shape[8], out_shape[8];
    int in_ndim, out_ndim;
    cz_safetensors_info(st, "input", NULL, &in_ndim, in_shape);
    cz_safetensors_info(st, "output", NULL, &out_ndim, out_shape);
    bool input_grad = cz_safetensors_info(st, "grad.input", NULL, NULL, NULL) == CZ_OK;

    cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 1};
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "input", in_shape[0], in_shape[1], in_shape[2], in_shape[3],
                                  input_grad);
    cz_tensor *y = cz_model_build(&spec, g, x);
    CHECK(cz_graph_plan(g) == CZ_OK, "%s: %s", fixture, cz_last_error());
    if (cz_graph_status(g) != CZ_OK || !y) {
        cz_graph_free(g);
        cz_safetensors_close(st);
        return;
    }
    y->ndim = out_ndim;
    load(st, "input", x, x->data);
    int n_params = 0, n_frozen = 0;
    for (int i = 0; i < cz_graph_n_named(g); i++) {
        cz_tensor *t = cz_graph_named(g, i);
        snprintf(name, sizeof name, "param.%s", t->name);
        load(st, name, t, t->data);
        if (t->kind == CZ_TENSOR_PARAM)
            (*(t->trainable ? &n_params : &n_frozen))++;
    }
    /* Every fixture tensor is one of ours: none of PyTorch's is left out. */
    int n_fixture_params = 0;
    for (int i = 0; i < cz_safetensors_count(st); i++)
        n_fixture_params += strncmp(cz_safetensors_name(st, i), "param.", 6) == 0;
    CHECK(n_fixture_params == cz_graph_n_named(g), "%s: fixture has %d tensors, graph %d",
          fixture, n_fixture_params, cz_graph_n_named(g));
    cz_graph_params_changed(g);

    cz_graph_zero_grad(g);
    CHECK(cz_graph_forward(g) == CZ_OK, "%s: forward: %s", fixture, cz_last_error());
    compare(st, fixture, "output", y, y->data);
    load(st, "grad.output", y, y->grad);
    CHECK(cz_graph_backward(g) == CZ_OK, "%s: backward: %s", fixture, cz_last_error());
    if (input_grad)
        compare(st, fixture, "grad.input", x, x->grad);
    for (int i = 0; i < cz_graph_n_named(g); i++) {
        cz_tensor *t = cz_graph_named(g, i);
        if (t->kind == CZ_TENSOR_PARAM) {
            snprintf(name, sizeof name, "grad.%s", t->name);
            bool has = cz_safetensors_info(st, name, NULL, NULL, NULL) == CZ_OK;
            CHECK(has == t->trainable, "%s: %s is %s here but %s in PyTorch", fixture, t->name,
                  t->trainable ? "trained" : "frozen", has ? "trained" : "frozen");
            if (has && t->trainable)
                compare(st, fixture, name, t, t->grad);
        } else {
            snprintf(name, sizeof name, "after.%s", t->name);
            compare(st, fixture, name, t, t->data);
        }
    }
    if (spec.freeze_encoder)
        CHECK(n_frozen > 0, "%s: a frozen encoder made no frozen parameters", fixture);
    printf("%s: %d trainable and %d frozen parameter tensors match\n", fixture, n_params,
           n_frozen);
    cz_graph_free(g);
    cz_safetensors_close(st);
}

/* --- shapes and parameter counts at full width --- */

typedef struct {
    const char *arch;
    const char *layout;
    long params; /* from tools/make_model_fixtures.py --counts (PyTorch) */
    int out_c;   /* output channels; output H, W below */
    int out_224, out_256;
} full_size;

static const full_size full_sizes[] = {
    /* Keras counts 25,636,712 with the 53,120 BatchNorm statistics. */
    {"resnet50", "keras", 25583592, 1000, 1, 1},
    {"resnet50", "torchvision", 25557032, 1000, 1, 1},
    {"unet", NULL, 54409858, 2, 224, 256},
    {"resnet50-paper", "keras", 34541058, 2, 224, 256},
    {"resnet50-paper", "torchvision", 34514498, 2, 224, 256},
    {"resnet50-unet", "keras", 37656066, 2, 224, 256},
    {"resnet50-unet", "torchvision", 37629506, 2, 224, 256},
    /* resnet50-unet without decoder.4 (36,928) and out (578), with bins
     * (64 x 261 + 261 = 16,965); counted by hand, PyTorch has no such model. */
    {"resnet50-unet-bins", "keras", 37635525, 2, 224, 256},
    {"patchgan", NULL, 2765633, 1, 26, 30},
    {"sigmoid", NULL, 6953281, 1, 1, 1},
};

static void shapes_and_counts(void)
{
    for (size_t i = 0; i < sizeof full_sizes / sizeof *full_sizes; i++) {
        const full_size *f = &full_sizes[i];
        cz_model_spec spec = {0};
        snprintf(spec.arch, sizeof spec.arch, "%s", f->arch);
        if (f->layout)
            snprintf(spec.encoder_layout, sizeof spec.encoder_layout, "%s", f->layout);
        long count = -1;
        CHECK(cz_model_spec_param_count(&spec, &count) == CZ_OK, "%s", cz_last_error());
        CHECK(count == f->params, "%s %s: %ld parameters, PyTorch has %ld", f->arch,
              f->layout ? f->layout : "", count, f->params);
        int in_c = cz_model_kind_of(f->arch) == CZ_MODEL_GENERATOR ? 1 : 3;
        for (int s = 0; s < 2; s++) {
            int size = s ? 256 : 224, expect = s ? f->out_256 : f->out_224;
            /* Built, never planned: shapes without the memory. */
            for (int training = 0; training < 2; training++) {
                cz_graph_config cfg = {.training = training, .poison_unread_values = true,
                                       .precision = CZ_FP32, .seed = 1};
                cz_graph *g = cz_graph_create(&cfg);
                cz_tensor *x = cz_graph_input(g, "x", 2, in_c, size, size, false);
                cz_tensor *y = cz_model_build(&spec, g, x);
                CHECK(y && y->n == 2 && y->c == f->out_c && y->h == expect && y->w == expect,
                      "%s at %d: output [%lld, %lld, %lld, %lld], expected [2, %d, %d, %d]",
                      f->arch, size, y ? (long long)y->n : 0, y ? (long long)y->c : 0,
                      y ? (long long)y->h : 0, y ? (long long)y->w : 0, f->out_c, expect, expect);
                cz_graph_free(g);
            }
        }
    }
    /* The frozen encoder: all of the ResNet50 but fc is frozen. */
    cz_model_spec spec = {.arch = "resnet50-paper", .freeze_encoder = true};
    cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 1};
    cz_graph *g = cz_graph_create(&cfg);
    cz_model_build(&spec, g, cz_graph_input(g, "x", 1, 1, 224, 224, false));
    long frozen = 0, trainable = 0;
    for (int i = 0; i < cz_graph_n_named(g); i++) {
        const cz_tensor *t = cz_graph_named(g, i);
        if (t->kind == CZ_TENSOR_PARAM)
            *(t->trainable ? &trainable : &frozen) += (long)cz_numel(t);
        if (t->kind == CZ_TENSOR_PARAM && strncmp(t->name, "encoder.", 8) == 0)
            CHECK(!t->trainable, "%s is trainable in a frozen encoder", t->name);
    }
    CHECK(frozen == 25583592 - 2049000 && trainable == 34541058 - frozen,
          "frozen encoder: %ld frozen, %ld trainable", frozen, trainable);
    cz_graph_free(g);

    /* Sizes: the ResNet generators need multiples of 32; unet runs anywhere. */
    int sizes[][2] = {{160, 96}, {288, 320}, {64, 64}, {100, 37}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        const char *arches[] = {"unet", "resnet50-paper", "resnet50-unet", "resnet50-unet-bins"};
        for (int a = 0; a < 4; a++) {
            cz_model_spec s = {0};
            snprintf(s.arch, sizeof s.arch, "%s", arches[a]);
            cz_graph *gg = cz_graph_create(&cfg);
            cz_tensor *y = cz_model_build(&s, gg, cz_graph_input(gg, "x", 2, 1, sizes[i][0],
                                                                 sizes[i][1], false));
            bool ok = sizes[i][0] % 32 == 0 && sizes[i][1] % 32 == 0;
            if (a == 0 || ok)
                CHECK(y && y->h == sizes[i][0] && y->w == sizes[i][1],
                      "%s at %dx%d: no same-size output", arches[a], sizes[i][0], sizes[i][1]);
            else
                CHECK(!y && cz_graph_status(gg) == CZ_ERR_INVALID,
                      "%s at %dx%d should be refused", arches[a], sizes[i][0], sizes[i][1]);
            cz_graph_free(gg);
        }
    }
}

/* --- model files --- */

static void model_files(void)
{
    char path[] = "/tmp/cz_test_models_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);

    cz_model_spec spec = {.arch = "resnet50-unet", .width = 4, .encoder_width = 2,
                          .encoder_layout = "torchvision", .freeze_encoder = true};
    cz_model *m = NULL, *back = NULL;
    CHECK(cz_model_new(&spec, 7, &m) == CZ_OK, "%s", cz_last_error());
    if (!m)
        return;
    const cz_model_spec *r = cz_model_spec_of(m);
    CHECK(r->size == 224 && r->classes == 0 && !r->no_dropout, "resolved spec");
    /* pix2pix's initialisation: weights N(0, 0.02), BN weights N(1, 0.02). */
    const cz_model_tensor *w = cz_model_find(m, "decoder.0.conv.weight");
    const cz_model_tensor *bnw = cz_model_find(m, "decoder.0.bn.weight");
    const cz_model_tensor *var = cz_model_find(m, "decoder.0.bn.running_var");
    CHECK(w && bnw && var && var->buffer && !w->buffer, "tensors");
    if (w && bnw && var) {
        double s1 = 0, s2 = 0;
        long n = (long)(w->shape[0] * w->shape[1] * w->shape[2] * w->shape[3]);
        for (long i = 0; i < n; i++) {
            s1 += w->data[i];
            s2 += (double)w->data[i] * w->data[i];
        }
        double sd = sqrt(s2 / n - (s1 / n) * (s1 / n));
        CHECK(fabs(sd - 0.02) < 0.002 && fabs(s1 / n) < 0.002, "conv init sd %g mean %g", sd,
              s1 / n);
        CHECK(fabsf(bnw->data[0] - 1.0f) < 0.1f && bnw->data[0] != 1.0f && var->data[0] == 1.0f,
              "BN init %g, running_var %g", (double)bnw->data[0], (double)var->data[0]);
    }
    CHECK(cz_model_set_metadata(m, "trained_steps", "1234") == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_set_metadata(m, "arch", "unet") == CZ_ERR_INVALID, "spec keys are the model's");
    const char *extra[] = {"note", "round trip", NULL};
    CHECK(cz_model_save(m, path, extra) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_load(path, &back) == CZ_OK, "%s", cz_last_error());
    if (back) {
        const cz_model_spec *b = cz_model_spec_of(back);
        CHECK(memcmp(b, r, sizeof *b) == 0, "spec changed in the round trip");
        CHECK(cz_model_param_count(back) == cz_model_param_count(m), "param count");
        const char *steps = cz_model_metadata(back, "trained_steps");
        const char *note = cz_model_metadata(back, "note");
        CHECK(steps && strcmp(steps, "1234") == 0 && note && strcmp(note, "round trip") == 0,
              "extra metadata lost");
        CHECK(strcmp(cz_model_metadata(back, "arch"), "resnet50-unet") == 0, "arch metadata");
        bool same = cz_model_n_tensors(back) == cz_model_n_tensors(m);
        for (int i = 0; same && i < cz_model_n_tensors(m); i++) {
            const cz_model_tensor *a = cz_model_tensor_at(m, i), *c = cz_model_find(back, a->name);
            long n = (long)(a->shape[0] * a->shape[1] * a->shape[2] * a->shape[3]);
            same = c && memcmp(a->data, c->data, (size_t)n * sizeof(float)) == 0;
        }
        CHECK(same, "weights changed in the round trip");
    }

    /* Graph round trip. */
    cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 3};
    cz_graph *g = cz_graph_create(&cfg);
    cz_model_build(r, g, cz_graph_input(g, "x", 1, 1, 64, 64, false));
    CHECK(cz_graph_plan(g) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_to_graph(m, g) == CZ_OK, "%s", cz_last_error());
    cz_tensor *t = cz_graph_find(g, "out.weight");
    CHECK(t && t->data[0] == cz_model_find(m, "out.weight")->data[0], "to_graph");
    if (t)
        t->data[0] = 42.0f;
    CHECK(cz_model_from_graph(back, g) == CZ_OK, "%s", cz_last_error());
    CHECK(back && cz_model_find(back, "out.weight")->data[0] == 42.0f, "from_graph");

    /* The file's weights read straight into the graph (the colorizer's way)
     * are the model's, all of them; a model loaded without them has none
     * to give. */
    cz_model *header = NULL;
    CHECK(cz_model_load_header(path, &header) == CZ_OK, "%s", cz_last_error());
    if (header) {
        CHECK(cz_model_param_count(header) == cz_model_param_count(m) &&
                  strcmp(cz_model_metadata(header, "note"), "round trip") == 0,
              "header: counts or metadata differ");
        CHECK(cz_model_read_into_graph(header, path, g) == CZ_OK, "%s", cz_last_error());
        bool same = true;
        for (int i = 0; same && i < cz_model_n_tensors(m); i++) {
            const cz_model_tensor *a = cz_model_tensor_at(m, i);
            const cz_tensor *gt = cz_graph_find(g, a->name);
            same = gt && memcmp(a->data, gt->data, (size_t)cz_numel(gt) * sizeof(float)) == 0;
        }
        CHECK(same, "read_into_graph: the graph's weights are not the file's");
        CHECK(cz_model_to_graph(header, g) == CZ_ERR_INVALID &&
                  strstr(cz_last_error(), "not loaded"),
              "a header-only model gave weights: %s", cz_last_error());
        CHECK(cz_model_read_into_graph(header, "/nonexistent/model.safetensors", g) == CZ_ERR_IO,
              "missing file");
        cz_model_free(header);
    }
    cz_graph_free(g);

    /* A graph of another architecture is refused, naming the tensor. */
    cz_model_spec other = {.arch = "patchgan", .width = 4};
    g = cz_graph_create(&cfg);
    cz_model_build(&other, g, cz_graph_input(g, "x", 1, 3, 64, 64, false));
    cz_graph_plan(g);
    CHECK(cz_model_to_graph(m, g) == CZ_ERR_INVALID && strstr(cz_last_error(), "encoder.conv1"),
          "wrong graph: %s", cz_last_error());
    cz_graph_free(g);

    /* Encoder import from a classifier of the same layout and width. */
    cz_model_spec cls = {.arch = "resnet50", .encoder_width = 2, .encoder_layout = "torchvision",
                         .classes = 10};
    cz_model *c = NULL;
    CHECK(cz_model_new(&cls, 9, &c) == CZ_OK, "%s", cz_last_error());
    CHECK(c && cz_model_import_encoder(m, c) == CZ_OK, "%s", cz_last_error());
    if (c) {
        CHECK(cz_model_find(m, "encoder.layer4.2.bn3.running_mean")->data[5] ==
                      cz_model_find(c, "layer4.2.bn3.running_mean")->data[5] &&
                  cz_model_find(m, "encoder.conv1.weight")->data[17] ==
                      cz_model_find(c, "conv1.weight")->data[17],
              "encoder weights not copied");
        cz_model_spec keras = cls;
        snprintf(keras.encoder_layout, sizeof keras.encoder_layout, "keras");
        cz_model *k = NULL;
        CHECK(cz_model_new(&keras, 9, &k) == CZ_OK, "%s", cz_last_error());
        CHECK(cz_model_import_encoder(m, k) == CZ_ERR_INVALID, "layout mismatch accepted");
        CHECK(cz_model_import_encoder(m, m) == CZ_ERR_INVALID, "a generator as encoder source");
        cz_model_free(k);
    }
    cz_model_free(c);

    /* Bad specs and files. */
    cz_model *bad = NULL;
    cz_model_spec unknown = {.arch = "vgg16"};
    CHECK(cz_model_new(&unknown, 1, &bad) == CZ_ERR_INVALID && !bad &&
              strstr(cz_last_error(), "vgg16"),
          "unknown arch: %s", cz_last_error());
    cz_model_spec layout = {.arch = "resnet50-paper", .encoder_layout = "caffe"};
    CHECK(cz_model_new(&layout, 1, &bad) == CZ_ERR_INVALID, "bad layout accepted");
    CHECK(cz_model_load(FIXTURES "patchgan.safetensors", &bad) == CZ_ERR_FORMAT && !bad,
          "a fixture is not a model file: %s", cz_last_error());
    CHECK(cz_model_load("/nonexistent/model.safetensors", &bad) == CZ_ERR_IO, "missing file");
    /* A file whose tensors are another architecture's. */
    cz_st_entry e = {.name = "model.0.weight", .dtype = CZ_DT_F32, .ndim = 1, .shape = {1},
                     .data = (const float[]){0}};
    const char *meta[] = {"arch", "patchgan", NULL};
    CHECK(cz_safetensors_write(path, meta, &e, 1) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_load(path, &bad) == CZ_ERR_FORMAT && strstr(cz_last_error(), "model.0.bias"),
          "wrong tensors: %s", cz_last_error());
    unlink(path);
    cz_model_free(m);
    cz_model_free(back);
}

/* --- the Keras converter's refusals (the real weights: test_classify.c) --- */

static cz_status import_fake(const char *dir, const char *weights_json, size_t shard_bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"weightsManifest\": [{\"paths\": [\"shard1\"], \"weights\": [%s]}]}",
            weights_json);
    fclose(f);
    snprintf(path, sizeof path, "%s/shard1", dir);
    f = fopen(path, "w");
    for (size_t i = 0; i < shard_bytes; i++)
        fputc(0, f);
    fclose(f);
    cz_model *m = NULL;
    cz_status s = cz_import_keras_resnet50(dir, &m);
    CHECK(s == CZ_OK || !m, "a failed import returned a model");
    cz_model_free(m);
    return s;
}

static void keras_import(void)
{
    char dir[] = "/tmp/cz_test_keras_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    cz_model *m = NULL;
    CHECK(cz_import_keras_resnet50(dir, &m) == CZ_ERR_FORMAT && !m &&
              strstr(cz_last_error(), "model.json"),
          "no model.json: %s", cz_last_error());
    const char *conv1 = "{\"name\": \"conv1/kernel\", \"shape\": [7, 7, 3, 64], "
                        "\"dtype\": \"float32\"}";
    CHECK(import_fake(dir, conv1, 100) == CZ_ERR_FORMAT &&
              strstr(cz_last_error(), "shards end inside conv1/kernel"),
          "short shards: %s", cz_last_error());
    CHECK(import_fake(dir, conv1, 7 * 7 * 3 * 64 * 4) == CZ_ERR_FORMAT &&
              strstr(cz_last_error(), "no weight for conv1.bias"),
          "missing weights: %s", cz_last_error());
    CHECK(import_fake(dir, conv1, 7 * 7 * 3 * 64 * 4 + 8) == CZ_ERR_FORMAT &&
              strstr(cz_last_error(), "shards hold"),
          "long shards: %s", cz_last_error());
    CHECK(import_fake(dir, "{\"name\": \"dense_7/kernel\", \"shape\": [2], "
                           "\"dtype\": \"float32\"}", 8) == CZ_ERR_FORMAT &&
              strstr(cz_last_error(), "'dense_7/kernel' is not a ResNet50 weight"),
          "unknown weight: %s", cz_last_error());
    /* Both Keras namings reach torchvision's names. */
    CHECK(import_fake(dir, "{\"name\": \"conv2_block1_0_conv/kernel\", \"shape\": [2], "
                           "\"dtype\": \"float32\"}", 8) == CZ_ERR_FORMAT &&
              strstr(cz_last_error(), "layer1.0.downsample.0.weight) has the wrong shape"),
          "tf.keras names: %s", cz_last_error());
    CHECK(import_fake(dir, "{\"name\": \"bn4f_branch2c/moving_variance\", \"shape\": [3], "
                           "\"dtype\": \"float32\"}", 12) == CZ_ERR_FORMAT &&
              strstr(cz_last_error(), "layer3.5.bn3.running_var) has the wrong shape"),
          "keras.applications names: %s", cz_last_error());
    CHECK(import_fake(dir, "{\"name\": \"fc1000/bias\", \"shape\": [1000], "
                           "\"dtype\": \"float16\"}", 2000) == CZ_ERR_FORMAT &&
              strstr(cz_last_error(), "not float32"),
          "dtype: %s", cz_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/model.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/shard1", dir);
    unlink(path);
    rmdir(dir);
}

/* --- the models' ops --- */

static void ops(void)
{
    cz_rng rng;
    cz_rng_seed(&rng, 5);
    cz_graph_config cfg = {.training = true, .poison_unread_values = true,
                           .precision = CZ_FP32, .seed = 1};

    /* l_to_gray: known values, then gradients. L* = 0, 50, 100. */
    cz_graph *g = cz_graph_create(&cfg);
    cz_tensor *x = cz_graph_input(g, "x", 2, 1, 3, 5, true);
    cz_tensor *y = cz_l_to_gray(g, x);
    CHECK(cz_graph_plan(g) == CZ_OK, "%s", cz_last_error());
    x->data[0] = -1.0f, x->data[1] = 0.0f, x->data[2] = 1.0f;
    cz_graph_forward(g);
    /* sRGB 119 (0.4663) is the gray of L* 50. */
    CHECK(fabsf(y->data[0]) < 1e-6f && fabsf(y->data[1] - 0.46633f) < 1e-4f &&
              fabsf(y->data[2] - 1.0f) < 1e-4f,
          "gray of L* 0, 50, 100: %g %g %g", (double)y->data[0], (double)y->data[1],
          (double)y->data[2]);
    fill_uniform(&rng, x->data, cz_numel(x), -0.95f, 0.95f);
    gradcheck("l_to_gray", g, y, &x, 1, 30, 1e-3, 1e-2);
    cz_graph_free(g);

    /* channel_affine with a shared source channel. */
    g = cz_graph_create(&cfg);
    x = cz_graph_input(g, "x", 2, 2, 3, 4, true);
    const int src[3] = {1, 0, 1};
    const float scale[3] = {2.0f, -0.5f, 3.0f}, shift[3] = {1.0f, 0.0f, -2.0f};
    y = cz_channel_affine(g, x, src, scale, shift);
    CHECK(cz_graph_plan(g) == CZ_OK, "%s", cz_last_error());
    fill_uniform(&rng, x->data, cz_numel(x), -1.0f, 1.0f);
    cz_graph_forward(g);
    CHECK(y->data[0] == x->data[12] * 2.0f + 1.0f && y->data[12] == x->data[0] * -0.5f,
          "channel_affine values");
    gradcheck("channel_affine", g, y, &x, 1, 48, 1e-2, 1e-3);
    cz_graph_free(g);

    /* pad_crop both ways. */
    for (int k = 0; k < 2; k++) {
        g = cz_graph_create(&cfg);
        x = cz_graph_input(g, "x", 2, 3, 5, 4, true);
        y = k ? cz_pad_crop(g, x, 6, 3) : cz_pad_crop(g, x, 4, 6);
        CHECK(cz_graph_plan(g) == CZ_OK, "%s", cz_last_error());
        fill_uniform(&rng, x->data, cz_numel(x), -1.0f, 1.0f);
        cz_graph_forward(g);
        CHECK(k ? y->data[3 * 5] == 0.0f && y->data[4] == x->data[5]
                : y->data[4] == 0.0f && y->data[6] == x->data[4],
              "pad_crop values");
        gradcheck("pad_crop", g, y, &x, 1, 60, 1e-2, 1e-3);
        cz_graph_free(g);
    }
}

/* unet's dropout: on in training (masks change with the generator), off in
 * inference, and absent with no_dropout. */
static void dropout(void)
{
    for (int variant = 0; variant < 3; variant++) {
        bool training = variant != 1, no_dropout = variant == 2;
        cz_model_spec spec = {.arch = "unet", .width = 2, .no_dropout = no_dropout};
        cz_graph_config cfg = {.training = training, .poison_unread_values = true,
                               .precision = CZ_FP32, .seed = 1};
        cz_graph *g = cz_graph_create(&cfg);
        cz_tensor *x = cz_graph_input(g, "x", 2, 1, 32, 32, false);
        cz_tensor *y = cz_model_build(&spec, g, x);
        CHECK(cz_graph_plan(g) == CZ_OK, "%s", cz_last_error());
        if (!y) {
            cz_graph_free(g);
            continue;
        }
        cz_rng rng;
        cz_rng_seed(&rng, 2);
        fill_uniform(&rng, x->data, cz_numel(x), -1.0f, 1.0f);
        int64_t n = cz_numel(y);
        float *first = malloc((size_t)n * sizeof *first);
        cz_graph_forward(g);
        memcpy(first, y->data, (size_t)n * sizeof *first);
        cz_graph_forward(g);
        bool same = memcmp(first, y->data, (size_t)n * sizeof *first) == 0;
        CHECK(same == (variant != 0), "unet dropout variant %d: outputs %s", variant,
              same ? "equal" : "differ");
        free(first);
        cz_graph_free(g);
    }
}

int main(void)
{
    const char *fixtures[] = {"resnet50_keras", "resnet50_torchvision", "unet",
                              "resnet50_paper", "resnet50_unet", "resnet50_unet_trained",
                              "patchgan", "sigmoid"};
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++)
        parity(fixtures[i]);
    printf("%d tensors within %g norm-wise relative error of PyTorch (largest %.3g); %d "
           "within 10x float32's own error (largest relative error of those not zero in exact "
           "arithmetic: %.3g)\n",
           n_strict, REL_TOL, worst, n_loose, worst_loose);
    shapes_and_counts();
    model_files();
    keras_import();
    ops();
    dropout();
    return check_finish("test_models");
}
