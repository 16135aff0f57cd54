/* `colorize classify`: ImageNet classification with a "resnet50" model, to
 * check imported weights.
 *
 *   colorize classify [options] IMG...     the top-5 classes of each photo
 *   colorize classify --eval DIR           top-1/top-5 accuracy on photos whose
 *                                          file names carry a WordNet id
 *
 * Scoring: a photo whose id is one of the 1000 classes is right when that
 * class is predicted ("exact"); a photo labelled with a broader synset (the
 * ImageNet detection set's "dog" n02084071, "car", "bird") is right when the
 * predicted class lies below it in WordNet ("hierarchy", which includes the
 * exact ones). Photos with no id, or an id no class lies below, are not
 * scored. */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "image/image.h"
#include "models/model.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };
enum { TOP = 5, DEFAULT_BATCH = 8, DEFAULT_SIZE = 224 };

#define DEFAULT_MODEL "cache/resnet50/resnet50-keras-imagenet.safetensors"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: colorize classify [options] IMG...\n"
            "       colorize classify --eval DIR [options]\n"
            "  -m, --model FILE   a resnet50 model (default " DEFAULT_MODEL ",\n"
            "                     made by `make weights`)\n"
            "  -e, --eval DIR     accuracy on DIR's photos, whose names carry a WordNet id\n"
            "  -n, --limit N      --eval: the first N photos only\n"
            "  -b, --batch N      photos per forward pass (default %d)\n"
            "  -s, --size N       network input size (default %d: shorter side to N*256/224,\n"
            "                     centre crop N x N)\n"
            "  -v, --verbose      --eval: one line per photo\n",
            DEFAULT_BATCH, DEFAULT_SIZE);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The photo files of dir, sorted; NULL on failure (message printed). */
static char **list_photos(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "colorize classify: %s: cannot open\n", dir);
        return NULL;
    }
    char **v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path)
            break;
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (!cz_image_is_supported_path(path)) {
            free(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **grown = realloc(v, (size_t)cap * sizeof *v);
            if (!grown) {
                free(path);
                break;
            }
            v = grown;
        }
        v[n++] = path;
    }
    closedir(d);
    if (n)
        qsort(v, (size_t)n, sizeof *v, by_name);
    *count = n;
    return v ? v : calloc(1, sizeof *v);
}

static int evaluate(cz_classifier *c, char **paths, int n, bool verbose)
{
    int *top = malloc((size_t)n * TOP * sizeof *top);
    float *prob = malloc((size_t)n * TOP * sizeof *prob);
    if (!top || !prob || cz_classifier_run(c, (const char *const *)paths, n, TOP, top, prob) != CZ_OK) {
        fprintf(stderr, "colorize classify: %s\n", top && prob ? cz_last_error() : "out of memory");
        free(top);
        free(prob);
        return EXIT_FAILED;
    }
    int exact = 0, exact1 = 0, exact5 = 0, hier = 0, hier1 = 0, hier5 = 0, unscored = 0;
    for (int i = 0; i < n; i++) {
        char wnid[10];
        bool has = cz_imagenet_wnid_of_path(paths[i], wnid);
        if (!has || !cz_imagenet_covers(wnid)) {
            unscored++;
            continue;
        }
        bool is_class = cz_imagenet_index(wnid) >= 0;
        bool ok1 = cz_imagenet_is_a(top[i * TOP], wnid), ok5 = false;
        for (int r = 0; r < TOP; r++)
            ok5 |= cz_imagenet_is_a(top[i * TOP + r], wnid);
        hier++, hier1 += ok1, hier5 += ok5;
        if (is_class)
            exact++, exact1 += ok1, exact5 += ok5;
        if (verbose)
            printf("%s %s %s: %s (%.2f)\n", ok1 ? "ok  " : (ok5 ? "top5" : "miss"), wnid,
                   is_class ? "class" : "synset", cz_imagenet_label(top[i * TOP]),
                   (double)prob[i * TOP]);
    }
    printf("photos: %d (%d scored, %d with no ImageNet class at or below their id)\n", n, hier,
           unscored);
    if (exact)
        printf("exact classes: %d photos, top-1 %.1f%%, top-5 %.1f%%\n", exact,
               100.0 * exact1 / exact, 100.0 * exact5 / exact);
    if (hier)
        printf("with hypernyms: %d photos, top-1 %.1f%%, top-5 %.1f%%\n", hier,
               100.0 * hier1 / hier, 100.0 * hier5 / hier);
    free(top);
    free(prob);
    return EXIT_OK;
}

static int classify(cz_classifier *c, char **paths, int n)
{
    int status = EXIT_OK;
    for (int i = 0; i < n; i++) {
        int top[TOP];
        float prob[TOP];
        if (cz_classifier_run(c, (const char *const *)&paths[i], 1, TOP, top, prob) != CZ_OK) {
            fprintf(stderr, "colorize classify: %s\n", cz_last_error());
            status = EXIT_FAILED;
            continue;
        }
        printf("%s\n", paths[i]);
        for (int r = 0; r < TOP; r++)
            printf("  %5.1f%%  %s %s\n", 100.0 * prob[r], cz_imagenet_wnid(top[r]),
                   cz_imagenet_label(top[r]));
    }
    return status;
}

int cz_cmd_classify(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"eval", required_argument, NULL, 'e'},
        {"limit", required_argument, NULL, 'n'}, {"batch", required_argument, NULL, 'b'},
        {"size", required_argument, NULL, 's'},  {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *model = DEFAULT_MODEL, *eval_dir = NULL;
    int limit = 0, batch = DEFAULT_BATCH, size = DEFAULT_SIZE, opt;
    bool verbose = false;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:e:n:b:s:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model = optarg; break;
        case 'e': eval_dir = optarg; break;
        case 'n': limit = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'v': verbose = true; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if ((eval_dir != NULL) == (optind < argc) || batch < 1 || size < 32 || limit < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    cz_model *m = NULL;
    cz_classifier *c = NULL;
    if (cz_model_load(model, &m) != CZ_OK ||
        cz_classifier_create(m, eval_dir ? batch : 1, size, CZ_FP32, &c) != CZ_OK) {
        fprintf(stderr, "colorize classify: %s\n", cz_last_error());
        cz_model_free(m);
        return EXIT_FAILED;
    }
    int status;
    if (eval_dir) {
        int n = 0;
        char **paths = list_photos(eval_dir, &n);
        if (!paths) {
            status = EXIT_FAILED;
        } else {
            status = evaluate(c, paths, limit && limit < n ? limit : n, verbose);
            for (int i = 0; i < n; i++)
                free(paths[i]);
            free(paths);
        }
    } else {
        status = classify(c, argv + optind, argc - optind);
    }
    cz_classifier_free(c);
    cz_model_free(m);
    return status;
}
