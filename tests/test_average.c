/* Weight averaging (src/models/average.c) and `colorize average`: the mean
 * of snapshots, tensor by tensor, with the newest one's metadata; models
 * that cannot be averaged, and bad command lines, are refused by name. */
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

static int64_t numel(const cz_model_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Three snapshots of a small resnet50-unet (fresh weights, seeds 1 to 3),
 * each saying which epoch it is. */
static cz_model_spec spec = {.arch = "resnet50-unet", .width = 4, .encoder_width = 2};

static cz_model *snapshot(int epoch)
{
    cz_model *m = NULL;
    char name[64], epochs[16];
    CHECK(cz_model_new(&spec, (uint64_t)epoch, &m) == CZ_OK, "%s", cz_last_error());
    if (!m)
        return NULL;
    snprintf(epochs, sizeof epochs, "%d", epoch);
    snprintf(name, sizeof name, "epoch-%d.safetensors", epoch);
    CHECK(cz_model_set_metadata(m, "trained_epochs", epochs) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_save(m, in_dir(name), NULL) == CZ_OK, "%s", cz_last_error());
    return m;
}

static void test_mean(cz_model *const snaps[3])
{
    char err[2048];
    CHECK(run("average epoch-1.safetensors epoch-2.safetensors epoch-3.safetensors -o mean.safetensors",
              err, sizeof err) == 0, "colorize average failed: %s", err);
    cz_model *mean = NULL;
    CHECK(cz_model_load(in_dir("mean.safetensors"), &mean) == CZ_OK, "%s", cz_last_error());
    if (!mean)
        return;
    CHECK(cz_model_n_tensors(mean) == cz_model_n_tensors(snaps[0]), "tensor count");
    double worst = 0;
    int64_t checked = 0, buffers = 0;
    for (int i = 0; i < cz_model_n_tensors(mean); i++) {
        const cz_model_tensor *t = cz_model_tensor_at(mean, i);
        const float *a = cz_model_find(snaps[0], t->name)->data;
        const float *b = cz_model_find(snaps[1], t->name)->data;
        const float *c = cz_model_find(snaps[2], t->name)->data;
        for (int64_t j = 0; j < numel(t); j++) {
            double want = ((double)a[j] + b[j] + c[j]) / 3.0;
            double e = fabs(t->data[j] - want) / (fabs(want) > 1e-3 ? fabs(want) : 1e-3);
            worst = e > worst ? e : worst;
            checked++;
        }
        buffers += t->buffer;
    }
    printf("mean of 3: %lld values, largest relative error %.2e\n", (long long)checked, worst);
    CHECK(checked > 1000 && worst < 1e-5, "mean off by %.2e relative", worst);
    CHECK(buffers > 0, "no BatchNorm statistics among the averaged tensors");
    /* The snapshots differ (different seeds), so the mean is none of them. */
    const cz_model_tensor *t0 = cz_model_tensor_at(mean, 0);
    CHECK(memcmp(t0->data, cz_model_find(snaps[2], t0->name)->data,
                 (size_t)numel(t0) * sizeof(float)) != 0, "the mean equals the last snapshot");
    const char *epochs = cz_model_metadata(mean, "trained_epochs");
    const char *from = cz_model_metadata(mean, "averaged_from");
    CHECK(epochs && strcmp(epochs, "3") == 0, "metadata is not the newest snapshot's: "
          "trained_epochs %s", epochs ? epochs : "(none)");
    CHECK(from && strcmp(from, "epoch-1.safetensors, epoch-2.safetensors, epoch-3.safetensors") == 0,
          "averaged_from: %s", from ? from : "(none)");
    cz_model_free(mean);

    /* One model averages to itself. */
    CHECK(run("average epoch-2.safetensors -o one.safetensors", err, sizeof err) == 0, "%s", err);
    cz_model *one = NULL;
    CHECK(cz_model_load(in_dir("one.safetensors"), &one) == CZ_OK, "%s", cz_last_error());
    for (int i = 0; one && i < cz_model_n_tensors(one); i++) {
        const cz_model_tensor *t = cz_model_tensor_at(one, i);
        if (memcmp(t->data, cz_model_find(snaps[1], t->name)->data,
                   (size_t)numel(t) * sizeof(float)) != 0) {
            CHECK(0, "the mean of one model changed %s", t->name);
            break;
        }
    }
    cz_model_free(one);
}

static void test_refusals(void)
{
    char err[2048];
    /* Another architecture, and the same one at another width. */
    cz_model *unet = NULL, *wider = NULL;
    cz_model_spec unet_spec = {.arch = "unet", .width = 4};
    cz_model_spec wider_spec = spec;
    wider_spec.width = 8;
    CHECK(cz_model_new(&unet_spec, 1, &unet) == CZ_OK, "%s", cz_last_error());
    CHECK(cz_model_new(&wider_spec, 1, &wider) == CZ_OK, "%s", cz_last_error());
    CHECK(unet && cz_model_save(unet, in_dir("unet.safetensors"), NULL) == CZ_OK, "%s", cz_last_error());
    CHECK(wider && cz_model_save(wider, in_dir("wider.safetensors"), NULL) == CZ_OK, "%s", cz_last_error());
    cz_model_free(unet);
    cz_model_free(wider);
    const char *cases[][2] = {
        {"average unet.safetensors epoch-1.safetensors -o bad.safetensors", "unet.safetensors"},
        {"average epoch-1.safetensors wider.safetensors -o bad.safetensors", "epoch-1.safetensors"},
        {"average epoch-1.safetensors missing.safetensors -o bad.safetensors", "missing.safetensors"},
        {"average epoch-1.safetensors truncated.safetensors -o bad.safetensors", "truncated.safetensors"},
    };
    /* A snapshot cut short, as by a full disk. */
    FILE *in = fopen(in_dir("epoch-1.safetensors"), "rb"), *out = fopen(in_dir("truncated.safetensors"), "wb");
    char buf[4096];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (out)
        fwrite(buf, 1, n / 2, out);
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int status = run(cases[i][0], err, sizeof err);
        CHECK(status == 1, "`%s` exited %d", cases[i][0], status);
        CHECK(strstr(err, cases[i][1]) != NULL, "`%s` does not name %s: %s", cases[i][0],
              cases[i][1], err);
        CHECK(!exists(in_dir("bad.safetensors")), "`%s` wrote an output", cases[i][0]);
    }
    /* Bad command lines. */
    CHECK(run("average epoch-1.safetensors", err, sizeof err) == 2 && strstr(err, "-o"),
          "no -o: %s", err);
    CHECK(run("average -o bad.safetensors", err, sizeof err) == 2 && strstr(err, "no models"),
          "no models: %s", err);
    CHECK(run("average --nonsense epoch-1.safetensors -o bad.safetensors", err, sizeof err) == 2,
          "unknown option accepted");
    CHECK(!exists(in_dir("bad.safetensors")), "a bad command line wrote an output");
}

int main(void)
{
    if (!command_setup())
        return 1;
    cz_model *snaps[3] = {snapshot(1), snapshot(2), snapshot(3)};
    if (snaps[0] && snaps[1] && snaps[2]) {
        test_mean(snaps);
        test_refusals();
    }
    for (int i = 0; i < 3; i++)
        cz_model_free(snaps[i]);
    command_cleanup();
    return check_finish("test_average");
}
