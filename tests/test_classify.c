/* The ImageNet tables, and the imported ResNet50 weights at work: top-1 on
 * validation photos whose file names carry an ILSVRC class id must reach
 * 85%.
 *
 * The weights are fetched once by `make weights` into cache/resnet50/ (or
 * named by $CZ_RESNET50); the photos are ../shared/data/val (or
 * $CZ_CLASSIFY_DIR). Without either, the table checks still run and the test
 * exits with status 77: skipped, not failed. */
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "models/model.h"

#define DEFAULT_WEIGHTS "cache/resnet50/resnet50-keras-imagenet.safetensors"
#define DEFAULT_PHOTOS "../shared/data/val"
#define SAMPLE 60          /* photos, spread evenly over the sorted list */
#define MIN_TOP1 0.85      /* the bar */
#define EXIT_SKIPPED 77    /* tests/run counts it as skipped */

static void tables(void)
{
    CHECK(strcmp(cz_imagenet_wnid(0), "n01440764") == 0 &&
              strcmp(cz_imagenet_label(0), "tench") == 0 &&
              strcmp(cz_imagenet_wnid(999), "n15075141") == 0,
          "class 0 %s, class 999 %s", cz_imagenet_wnid(0), cz_imagenet_wnid(999));
    CHECK(cz_imagenet_index("n01443537") == 1 && cz_imagenet_index("n02084071") == -1 &&
              cz_imagenet_index("bogus") == -1 && cz_imagenet_wnid(1000) == NULL,
          "index lookups");
    int sorted = 1;
    for (int i = 1; i < CZ_IMAGENET_CLASSES; i++)
        sorted &= strcmp(cz_imagenet_wnid(i - 1), cz_imagenet_wnid(i)) < 0;
    CHECK(sorted, "class ids are not in ILSVRC (sorted) order");
    /* The two cranes: the bird (134) and the machine (517). */
    CHECK(strcmp(cz_imagenet_wnid(134), "n02012849") == 0 &&
              strcmp(cz_imagenet_wnid(517), "n03126707") == 0,
          "crane ids");
    /* Hypernyms: a golden retriever (207) is a dog, a tench is not; a
     * sports car (817) is a car; every class is itself. */
    CHECK(cz_imagenet_is_a(207, "n02084071") && !cz_imagenet_is_a(0, "n02084071") &&
              cz_imagenet_is_a(817, "n02958343") && cz_imagenet_is_a(1, "n01443537") &&
              !cz_imagenet_is_a(1, "n99999999"),
          "is_a");
    CHECK(cz_imagenet_covers("n02084071") && cz_imagenet_covers("n01503061") &&
              !cz_imagenet_covers("n99999999"),
          "covers");
    char wnid[10];
    CHECK(cz_imagenet_wnid_of_path("a/imagen-val__n01443537_11099_goldfish.jpg", wnid) &&
              strcmp(wnid, "n01443537") == 0,
          "wnid from a path");
    CHECK(!cz_imagenet_wnid_of_path("n0144353_x.jpg", wnid) &&
              !cz_imagenet_wnid_of_path("dir_n01443537/photo.jpg", wnid) &&
              !cz_imagenet_wnid_of_path("xn01443537.jpg", wnid),
          "not a wnid");
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The photos of dir whose id is one of the 1000 classes, sorted. */
static int class_photos(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    char **v = NULL;
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char wnid[10];
        if (!cz_imagenet_wnid_of_path(e->d_name, wnid) || cz_imagenet_index(wnid) < 0)
            continue;
        v = realloc(v, (size_t)(n + 1) * sizeof *v);
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        v[n] = malloc(len);
        snprintf(v[n++], len, "%s/%s", dir, e->d_name);
    }
    if (d)
        closedir(d);
    if (n)
        qsort(v, (size_t)n, sizeof *v, by_name);
    *out = v;
    return n;
}

static void classify(const char *weights, char **photos, int n)
{
    cz_model *m = NULL;
    CHECK(cz_model_load(weights, &m) == CZ_OK, "%s", cz_last_error());
    if (!m)
        return;
    const cz_model_spec *s = cz_model_spec_of(m);
    CHECK(strcmp(s->arch, "resnet50") == 0 && s->classes == 1000 &&
              cz_model_param_count(m) == 25583592,
          "%s: %s with %ld parameters", weights, s->arch, cz_model_param_count(m));

    int count = n < SAMPLE ? n : SAMPLE;
    const char **sample = malloc((size_t)count * sizeof *sample);
    for (int i = 0; i < count; i++)
        sample[i] = photos[(size_t)i * (size_t)n / (size_t)count];
    int *top = malloc((size_t)count * 5 * sizeof *top);
    cz_classifier *c = NULL;
    CHECK(cz_classifier_create(m, 4, 224, CZ_FP32, &c) == CZ_OK, "%s", cz_last_error());
    if (c && cz_classifier_run(c, sample, count, 5, top, NULL) == CZ_OK) {
        int right = 0, right5 = 0;
        for (int i = 0; i < count; i++) {
            char wnid[10];
            cz_imagenet_wnid_of_path(sample[i], wnid);
            int truth = cz_imagenet_index(wnid);
            right += top[i * 5] == truth;
            for (int r = 0; r < 5; r++)
                right5 += top[i * 5 + r] == truth;
        }
        double top1 = (double)right / count;
        printf("top-1 %.1f%%, top-5 %.1f%% on %d photos\n", 100 * top1, 100.0 * right5 / count,
               count);
        CHECK(top1 >= MIN_TOP1, "top-1 %.1f%% is below %.0f%%", 100 * top1, 100 * MIN_TOP1);
    } else {
        CHECK(0, "classification failed: %s", cz_last_error());
    }

    /* The same weights as a generator's encoder. */
    cz_model_spec gen_spec = {.arch = "resnet50-unet", .freeze_encoder = true};
    cz_model *gen = NULL;
    CHECK(cz_model_new(&gen_spec, 1, &gen) == CZ_OK, "%s", cz_last_error());
    CHECK(gen && cz_model_import_encoder(gen, m) == CZ_OK, "%s", cz_last_error());
    if (gen)
        CHECK(cz_model_find(gen, "encoder.layer3.5.conv2.weight")->data[1234] ==
                  cz_model_find(m, "layer3.5.conv2.weight")->data[1234],
              "encoder import");
    cz_model_free(gen);
    cz_classifier_free(c);
    free(top);
    free(sample);
    cz_model_free(m);
}

int main(void)
{
    tables();
    const char *weights = getenv("CZ_RESNET50") ? getenv("CZ_RESNET50") : DEFAULT_WEIGHTS;
    const char *dir = getenv("CZ_CLASSIFY_DIR") ? getenv("CZ_CLASSIFY_DIR") : DEFAULT_PHOTOS;
    char **photos = NULL;
    int n = class_photos(dir, &photos);
    int status;
    if (access(weights, R_OK) != 0 || n == 0) {
        if (n == 0)
            printf("SKIPPED the classification check: no photos with ImageNet class ids in %s "
                   "(set $CZ_CLASSIFY_DIR)\n", dir);
        else
            printf("SKIPPED the classification check: no %s (run `make weights`, or set "
                   "$CZ_RESNET50)\n", weights);
        status = check_finish("test_classify");
        if (status == EXIT_SUCCESS)
            status = EXIT_SKIPPED;
    } else {
        classify(weights, photos, n);
        status = check_finish("test_classify");
    }
    for (int i = 0; i < n; i++)
        free(photos[i]);
    free(photos);
    return status;
}
