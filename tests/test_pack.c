/* Packed model files (src/models/pack.c) and `colorize pack` / `unpack`:
 * a generator with a frozen ImageNet encoder ships without it and comes back
 * whole, its encoder exact and what training changed within bfloat16
 * rounding; every way of getting it wrong is refused with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "check.h"
#include "command_util.h"
#include "models/model.h"

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int64_t numel(const cz_model_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

/* Compares every tensor of b with a's: exactly for the encoder and 1-D
 * tensors, within bfloat16's relative rounding (2^-8) for other weights. */
static void same_model(const char *what, const cz_model *a, const cz_model *b)
{
    CHECK(cz_model_n_tensors(a) == cz_model_n_tensors(b), "%s: tensor count", what);
    int bad = 0, rounded = 0;
    for (int i = 0; i < cz_model_n_tensors(a) && !bad; i++) {
        const cz_model_tensor *ta = cz_model_tensor_at(a, i);
        const cz_model_tensor *tb = cz_model_find(b, ta->name);
        if (!tb) {
            CHECK(0, "%s: %s missing", what, ta->name);
            return;
        }
        bool exact = ta->ndim == 1 || strncmp(ta->name, "encoder.", 8) == 0;
        for (int64_t j = 0; j < numel(ta); j++) {
            float x = ta->data[j], y = tb->data[j];
            if (exact ? x != y : fabsf(x - y) > fabsf(x) / 256.0f) {
                CHECK(0, "%s: %s[%lld] = %.9g, was %.9g", what, ta->name, (long long)j, y, x);
                bad = 1;
                break;
            }
            rounded += x != y;
        }
    }
    CHECK(rounded > 0 || bad, "%s: nothing was rounded to bfloat16", what);
}

int main(void)
{
    if (!command_setup())
        return 1;

    /* An ImageNet classifier (shrunk) and a generator trained on top of it,
     * with the encoder frozen: its other tensors differ from fresh ones. */
    cz_model_spec cls = {.arch = "resnet50", .encoder_width = 2, .classes = 10};
    cz_model_spec spec = {.arch = "resnet50-unet", .width = 4, .encoder_width = 2,
                          .freeze_encoder = true};
    cz_model *resnet50 = NULL, *gen = NULL, *other = NULL, *back = NULL;
    CHECK(cz_model_new(&cls, 1, &resnet50) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_new(&cls, 2, &other) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_new(&spec, 3, &gen) == CZ_OK, "%s", cz_last_error());
    if (!resnet50 || !other || !gen)
        return check_finish("test_pack");
    CHECK(cz_model_import_encoder(gen, resnet50) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_set_metadata(gen, "trained_steps", "1234") == CZ_OK, "%s", cz_last_error());
    const char *resnet50_path = in_dir("resnet50.safetensors");
    const char *other_path = in_dir("other.safetensors");
    const char *gen_path = in_dir("gen.safetensors");
    CHECK(cz_model_save(resnet50, resnet50_path, NULL) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_save(other, other_path, NULL) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_save(gen, gen_path, NULL) == CZ_OK, "%s", cz_last_error());

    /* Pack, unpack: the same model, smaller on disk, with its metadata. */
    const char *packed = in_dir("packed.safetensors");
    const char *recipe[] = {"recipe", "tools/train_default", NULL};
    CHECK(cz_model_pack(gen, resnet50_path, packed, recipe) == CZ_OK, "%s", cz_last_error());
    long encoder_values = 0;
    for (int i = 0; i < cz_model_n_tensors(gen); i++)
        if (strncmp(cz_model_tensor_at(gen, i)->name, "encoder.", 8) == 0)
            encoder_values += (long)numel(cz_model_tensor_at(gen, i));
    long trained_values = cz_model_param_count(gen) - encoder_values;
    printf("whole %ld bytes, packed %ld bytes (%ld encoder values left out)\n",
           file_size(gen_path), file_size(packed), encoder_values);
    CHECK(file_size(packed) > 0 && file_size(packed) < file_size(gen_path) / 2,
          "packed %ld bytes, whole %ld", file_size(packed), file_size(gen_path));
    CHECK(file_size(packed) < 4 * trained_values, "packed file is not compact: %ld bytes for "
          "%ld trained values", file_size(packed), trained_values);
    CHECK(cz_model_unpack(packed, resnet50_path, &back) == CZ_OK, "%s", cz_last_error());
    if (back) {
        same_model("unpacked", gen, back);
        const char *steps = cz_model_metadata(back, "trained_steps");
        const char *how = cz_model_metadata(back, "recipe");
        CHECK(steps && strcmp(steps, "1234") == 0 && how && strcmp(how, "tools/train_default") == 0,
              "metadata lost in packing");
        CHECK(memcmp(cz_model_spec_of(back), cz_model_spec_of(gen), sizeof(cz_model_spec)) == 0,
              "spec changed");
        /* Packing the unpacked model again gives the same file contents. */
        const char *again = in_dir("again.safetensors");
        CHECK(cz_model_pack(back, resnet50_path, again, recipe) == CZ_OK, "%s", cz_last_error());
        CHECK(file_size(again) == file_size(packed), "repacking changed the size");
        cz_model_free(back);
        back = NULL;
    }

    /* A packed file is not a model until unpacked: the message says how. */
    CHECK(cz_model_load(packed, &back) == CZ_ERR_FORMAT && !back &&
              strstr(cz_last_error(), "unpack") && strstr(cz_last_error(), packed),
          "loading a packed file: %s", cz_last_error());
    /* Other ImageNet weights than the ones it was trained with. */
    CHECK(cz_model_unpack(packed, other_path, &back) == CZ_ERR_FORMAT && !back &&
              strstr(cz_last_error(), "not the weights it was trained with"),
          "unpacking onto other weights: %s", cz_last_error());
    CHECK(cz_model_unpack(packed, in_dir("missing.safetensors"), &back) != CZ_OK && !back &&
              strstr(cz_last_error(), "missing.safetensors"),
          "unpacking without the weights: %s", cz_last_error());
    /* A trained encoder cannot be left out. */
    cz_model_find(gen, "encoder.layer2.0.conv1.weight")->data[3] += 1e-3f;
    CHECK(cz_model_pack(gen, resnet50_path, in_dir("trained.safetensors"), NULL) ==
                  CZ_ERR_INVALID &&
              strstr(cz_last_error(), "encoder differs"),
          "packing a trained encoder: %s", cz_last_error());
    CHECK(access(in_dir("trained.safetensors"), F_OK) != 0, "a refused pack wrote a file");
    CHECK(cz_model_save(gen, in_dir("gen-trained.safetensors"), NULL) == CZ_OK, "%s",
          cz_last_error());
    cz_model_find(gen, "encoder.layer2.0.conv1.weight")->data[3] -= 1e-3f;
    CHECK(cz_model_import_encoder(gen, resnet50) == CZ_OK, "%s", cz_last_error());
    /* Truncated: named, refused. */
    FILE *f = fopen(packed, "rb");
    long n = file_size(packed);
    char *bytes = malloc((size_t)n);
    CHECK(f && bytes && fread(bytes, 1, (size_t)n, f) == (size_t)n, "reading the packed file");
    if (f)
        fclose(f);
    const char *cut = in_dir("cut.safetensors");
    f = fopen(cut, "wb");
    if (f && bytes) {
        fwrite(bytes, 1, (size_t)(n * 2 / 3), f);
        fclose(f);
    }
    free(bytes);
    CHECK(cz_model_unpack(cut, resnet50_path, &back) != CZ_OK && !back &&
              strstr(cz_last_error(), "cut.safetensors"),
          "truncated packed file: %s", cz_last_error());

    /* A generator without an encoder packs whole, in bfloat16. */
    cz_model_spec unet = {.arch = "unet", .width = 4};
    cz_model *u = NULL;
    CHECK(cz_model_new(&unet, 5, &u) == CZ_OK, "%s", cz_last_error());
    if (u) {
        const char *u_packed = in_dir("unet.safetensors");
        CHECK(cz_model_pack(u, NULL, u_packed, NULL) == CZ_OK, "%s", cz_last_error());
        CHECK(cz_model_load(u_packed, &back) == CZ_OK, "a packed unet loads as it is: %s",
              cz_last_error());
        if (back)
            same_model("unet", u, back);
        cz_model_free(back);
        back = NULL;
        cz_model_free(u);
    }
    CHECK(cz_model_pack(resnet50, NULL, in_dir("cls.safetensors"), NULL) == CZ_ERR_INVALID,
          "packing a classifier");

    /* The commands. */
    char err[4096];
    int rc = run("pack gen-trained.safetensors -o cmd-packed.safetensors --encoder "
                 "resnet50.safetensors", err, sizeof err);
    CHECK(rc == 1 && strstr(err, "encoder differs"), "pack of the changed encoder: exit %d: %s",
          rc, err);
    rc = run("pack gen.safetensors -o cmd-packed.safetensors --encoder resnet50.safetensors "
             "--meta recipe=tools/train_default", err, sizeof err);
    CHECK(rc == 0, "pack: exit %d: %s", rc, err);
    rc = run("info cmd-packed.safetensors | grep -q 'encoder is left out'", err, sizeof err);
    CHECK(rc == 0, "info does not describe the packed file: exit %d: %s", rc, err);
    rc = run("unpack cmd-packed.safetensors -o cmd-whole.safetensors --encoder resnet50.safetensors",
             err, sizeof err);
    CHECK(rc == 0, "unpack: exit %d: %s", rc, err);
    CHECK(cz_model_load(in_dir("cmd-whole.safetensors"), &back) == CZ_OK, "%s", cz_last_error());
    if (back)
        same_model("pack and unpack commands", gen, back);
    cz_model_free(back);
    rc = run("unpack cmd-packed.safetensors -o x.safetensors --encoder other.safetensors", err,
             sizeof err);
    CHECK(rc == 1 && strstr(err, "cmd-packed.safetensors") &&
              strstr(err, "not the weights it was trained with"),
          "unpack onto other weights: exit %d: %s", rc, err);
    CHECK(access(in_dir("x.safetensors"), F_OK) != 0, "a refused unpack wrote a file");
    rc = run("pack gen.safetensors", err, sizeof err);
    CHECK(rc == 2 && strstr(err, "usage"), "pack without -o: exit %d: %s", rc, err);
    rc = run("pack gen.safetensors -o y.safetensors --meta novalue", err, sizeof err);
    CHECK(rc == 2 && strstr(err, "KEY=VALUE"), "bad --meta: exit %d: %s", rc, err);
    rc = run("unpack nowhere.safetensors -o y.safetensors", err, sizeof err);
    CHECK(rc == 1 && strstr(err, "nowhere.safetensors"), "unpack of a missing file: exit %d: %s",
          rc, err);

    cz_model_free(gen);
    cz_model_free(resnet50);
    cz_model_free(other);
    command_cleanup();
    return check_finish("test_pack");
}
