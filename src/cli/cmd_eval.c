/* `colorize eval --real DIR [--model FILE | --pred DIR]`: measures colourised
 * photos against their originals (docs/metrics.md), beside the grayscale
 * baseline, and writes per_image.csv, summary.json and report.html.
 *
 * The front end only: it finds and pairs the files, loads them, asks the
 * library to colour (model mode) and to measure, and decides the exit
 * status. An image that cannot be evaluated is reported by name and the run
 * goes on. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/error.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "colorize.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "image/image.h"

/* Exit statuses (cli/commands.h). */
enum { EXIT_ALL_DONE = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2 };

/* --size limits: one SSIM window at least; at most a side no photo needs. */
enum { MIN_SIZE = CZ_SSIM_MIN_SIDE, MAX_SIZE = 16384 };

/* A progress line on stderr every this many images. */
enum { PROGRESS_EVERY = 100 };

#define DEFAULT_OUT "eval"

typedef struct {
    const char *real, *pred, *model, *out;
    int size;      /* 0 = compare at each image's own size */
    long limit;    /* 0 = all */
} options;

/* A sorted list of file names. */
typedef struct {
    char **v;
    size_t n, cap;
} names;

static void names_free(names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (names){0};
}

static bool names_add(names *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return false;
    l->n++;
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void usage(FILE *out)
{
    fprintf(out,
"usage: colorize eval --real DIR [--model FILE | --pred DIR] [options]\n"
"\n"
"Measures colourised photos against their originals: PSNR, SSIM, mean\n"
"CIEDE2000, colourfulness and the a*b* AuC, each beside the grayscale\n"
"baseline (the original's L* with no colour), per image and as means.\n"
"docs/metrics.md defines every number.\n"
"\n"
"  -r, --real DIR     the original colour photos (.jpg, .jpeg, .png)\n"
"  -m, --model FILE   colour each original's L* with this model and compare\n"
"                     (neither this nor --pred: the built-in model)\n"
"  -p, --pred DIR     or compare these already coloured photos, paired with\n"
"                     the originals by name (x.jpg may be x.png here)\n"
"  -s, --size N       resize originals and predictions to N x N before\n"
"                     colouring and comparing (default: compare at each\n"
"                     photo's own size). This is the evaluation size, not\n"
"                     the network's: the model runs at its training size.\n"
"  -o, --out DIR      write per_image.csv, summary.json and report.html here\n"
"                     (created if missing; default ./%s)\n"
"  -n, --limit K      evaluate only the first K originals by name\n"
"  -h, --help         show this help\n"
"\n"
"Exit status: 0 every image evaluated, 1 some image failed (each is named)\n"
"or none could be, 2 bad usage or an unusable model.\n",
            DEFAULT_OUT);
}

/* ---- Files -------------------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* The image files (by extension, not hidden, not folders) of dir, sorted;
 * *ignored counts the other files. */
static bool list_images(const char *dir, names *out, size_t *ignored)
{
    DIR *d = opendir(dir);
    if (!d) {
        cz_cli_say("eval", "%s: cannot open the folder: %s", dir, strerror(errno));
        return false;
    }
    bool ok = true;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *path = join(dir, e->d_name);
        struct stat st;
        if (!path) {
            ok = false;
        } else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            /* folders are not searched */
        } else if (cz_cli_is_photo_name(e->d_name)) {
            ok = names_add(out, e->d_name);
        } else if (ignored) {
            (*ignored)++;
        }
        free(path);
    }
    closedir(d);
    if (!ok)
        cz_cli_say("eval", "out of memory listing %s", dir);
    qsort(out->v, out->n, sizeof *out->v, by_name);
    return ok;
}

/* The length of name without its extension. */
static size_t stem_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

/* The prediction paired with the original `name`: the same name, or else
 * the one file with the same stem. NULL (with *why set) if none or several. */
static const char *find_pred(const names *preds, const char *name,
                             const char **why)
{
    const char *found = NULL;
    int count = 0;
    for (size_t i = 0; i < preds->n; i++) {
        if (strcmp(preds->v[i], name) == 0)
            return preds->v[i];
        size_t k = stem_len(name);
        if (stem_len(preds->v[i]) == k && strncmp(preds->v[i], name, k) == 0) {
            found = preds->v[i];
            count++;
        }
    }
    if (count == 1)
        return found;
    *why = count ? "several predictions share its name" : "no prediction of that name";
    return NULL;
}

/* mkdir -p: creates dir and any missing parents. */
static bool make_dirs(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return false;
    bool ok = true;
    for (char *s = p + 1; ok; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            ok = false;
        *s = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    ok = ok && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok)
        cz_cli_say("eval", "%s: cannot create the folder: %s", dir, strerror(errno));
    free(p);
    return ok;
}

/* ---- One image ---------------------------------------------------------- */

typedef struct {
    const options *opt;
    const names *preds;
    cz_colorizer *cz; /* model mode */
} context;

/* A loaded image as 8-bit RGB, resized to --size if given. */
static cz_status to_rgb8_sized(const cz_image *img, int size, cz_image **out)
{
    cz_image *rgb = NULL;
    cz_status s = cz_eval_rgb8(img, &rgb);
    if (s != CZ_OK || size == 0 || (rgb->width == size && rgb->height == size)) {
        *out = rgb;
        return s;
    }
    s = cz_eval_resize(rgb, size, size, out);
    cz_image_free(rgb);
    return s;
}

/* Prepares the three images of one original, all 8-bit RGB at the size
 * they are compared at: truth, the model's or the given prediction, and the
 * grayscale baseline. On failure *msg holds a sentence naming the file. */
static cz_status prepare(const context *c, const char *name, cz_image **truth,
                         cz_image **pred, cz_image **gray, char **msg)
{
    *truth = *pred = *gray = NULL;
    *msg = NULL;
    cz_image *raw = NULL, *raw_pred = NULL;
    char *path = join(c->opt->real, name), *pred_path = NULL;
    cz_status s = path ? CZ_OK : cz_fail(CZ_ERR_NOMEM, "%s: out of memory", name);
    if (s == CZ_OK)
        s = cz_image_load(path, NULL, &raw);
    if (s == CZ_OK)
        s = to_rgb8_sized(raw, c->opt->size, truth);
    if (s != CZ_OK)
        goto fail;

    if (c->cz) {
        /* With --size, the model colours the resized original; otherwise the
         * original itself, at its own depth and size. */
        s = cz_colorize_image(c->cz, c->opt->size ? *truth : raw, &raw_pred);
        if (s != CZ_OK) {
            if (asprintf(msg, "%s: colouring failed: %s", path, cz_last_error()) < 0)
                *msg = NULL;
            goto fail;
        }
    } else {
        const char *why = NULL, *pname = find_pred(c->preds, name, &why);
        if (!pname) {
            s = CZ_ERR_IO;
            if (asprintf(msg, "%s: %s in %s", name, why, c->opt->pred) < 0)
                *msg = NULL;
            goto fail;
        }
        pred_path = join(c->opt->pred, pname);
        s = pred_path ? cz_image_load(pred_path, NULL, &raw_pred)
                      : cz_fail(CZ_ERR_NOMEM, "%s: out of memory", name);
        if (s != CZ_OK)
            goto fail;
    }
    s = to_rgb8_sized(raw_pred, c->opt->size, pred);
    if (s == CZ_OK && ((*pred)->width != (*truth)->width ||
                       (*pred)->height != (*truth)->height)) {
        s = CZ_ERR_INVALID;
        if (asprintf(msg, "%s is %dx%d but %s is %dx%d (use --size to compare "
                          "at a common size)",
                     pred_path ? pred_path : "the prediction", (*pred)->width,
                     (*pred)->height, path, (*truth)->width, (*truth)->height) < 0)
            *msg = NULL;
        goto fail;
    }
    if (s == CZ_OK)
        s = cz_eval_gray_baseline(*truth, gray);
    if (s == CZ_OK)
        goto done;
fail:
    cz_image_free(*truth);
    cz_image_free(*pred);
    cz_image_free(*gray);
    *truth = *pred = *gray = NULL;
    if (!*msg && asprintf(msg, "%s", cz_last_error()) < 0)
        *msg = NULL;
done:
    cz_image_free(raw);
    cz_image_free(raw_pred);
    free(path);
    free(pred_path);
    return s;
}

/* Measures one original; on failure *msg names what went wrong. */
static cz_status evaluate(const context *c, const char *name, cz_eval_result *r,
                          char **msg)
{
    cz_image *truth, *pred, *gray;
    cz_status s = prepare(c, name, &truth, &pred, &gray, msg);
    if (s != CZ_OK)
        return s;
    *r = (cz_eval_result){.width = truth->width, .height = truth->height};
    s = cz_eval_metrics(pred, truth, &r->model);
    if (s == CZ_OK)
        s = cz_eval_metrics(gray, truth, &r->gray);
    if (s != CZ_OK && asprintf(msg, "%s: %s", name, cz_last_error()) < 0)
        *msg = NULL;
    if (s == CZ_OK && !(r->name = strdup(name)))
        s = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", name);
    cz_image_free(truth);
    cz_image_free(pred);
    cz_image_free(gray);
    return s;
}

/* ---- The command -------------------------------------------------------- */

int cz_cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"real", required_argument, NULL, 'r'},
        {"model", required_argument, NULL, 'm'},
        {"pred", required_argument, NULL, 'p'},
        {"size", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"limit", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    options opt = {.out = DEFAULT_OUT};
    long v;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "r:m:p:s:o:n:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'r': opt.real = optarg; break;
        case 'm': opt.model = optarg; break;
        case 'p': opt.pred = optarg; break;
        case 'o': opt.out = optarg; break;
        case 's':
            if (!cz_cli_parse_long(optarg, MIN_SIZE, MAX_SIZE, &v))
                return cz_cli_usage_error("eval", "--size must be a whole number from %d to %d, not '%s'",
                                   MIN_SIZE, MAX_SIZE, optarg);
            opt.size = (int)v;
            break;
        case 'n':
            if (!cz_cli_parse_long(optarg, 1, LONG_MAX, &v))
                return cz_cli_usage_error("eval", "--limit must be a positive whole number, not '%s'",
                                   optarg);
            opt.limit = v;
            break;
        case 'h': usage(stdout); return EXIT_ALL_DONE;
        default: return cz_cli_usage_error("eval", "bad option");
        }
    }
    if (optind < argc)
        return cz_cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (!opt.real)
        return cz_cli_usage_error("eval", "--real DIR is required");
    if (opt.model && opt.pred)
        return cz_cli_usage_error("eval", "give one of --model FILE and --pred DIR, not both");
    const bool builtin = !opt.model && !opt.pred;
    if (builtin)
        opt.model = cz_default_model_path();

    int exit_status = EXIT_ALL_DONE;
    names reals = {0}, preds = {0};
    cz_eval_result *results = NULL;
    cz_eval_failure *failures = NULL;
    cz_eval_report rep = {.real_dir = opt.real, .pred_dir = opt.pred,
                          .model_path = opt.model, .size = opt.size};
    context ctx = {.opt = &opt, .preds = &preds};
    char *csv = NULL, *json = NULL, *html = NULL;

    if (!list_images(opt.real, &reals, &rep.n_ignored) ||
        (opt.pred && !list_images(opt.pred, &preds, NULL))) {
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    if (reals.n == 0) {
        cz_cli_say("eval", "%s: no .jpg, .jpeg or .png files", opt.real);
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    if (rep.n_ignored)
        cz_cli_say("eval", "%s: ignoring %zu files that are not .jpg, .jpeg or .png", opt.real,
            rep.n_ignored);
    size_t n = opt.limit > 0 && (size_t)opt.limit < reals.n ? (size_t)opt.limit : reals.n;

    if (opt.model && cz_colorizer_load(builtin ? NULL : opt.model, NULL, &ctx.cz) != CZ_OK) {
        cz_cli_say("eval", "%s", cz_last_error());
        exit_status = EXIT_USAGE;
        goto cleanup;
    }
    if (!make_dirs(opt.out)) {
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    csv = join(opt.out, "per_image.csv");
    json = join(opt.out, "summary.json");
    html = join(opt.out, "report.html");
    results = calloc(n, sizeof *results);
    failures = calloc(n, sizeof *failures);
    if (!csv || !json || !html || !results || !failures) {
        cz_cli_say("eval", "out of memory");
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }

    for (size_t i = 0; i < n; i++) {
        char *msg = NULL;
        if (evaluate(&ctx, reals.v[i], &results[rep.n_results], &msg) == CZ_OK) {
            rep.n_results++;
        } else {
            cz_cli_say("eval", "%s", msg ? msg : reals.v[i]);
            cz_eval_failure *f = &failures[rep.n_failures++];
            f->name = strdup(reals.v[i]);
            f->message = msg;
            msg = NULL;
        }
        free(msg);
        if ((i + 1) % PROGRESS_EVERY == 0 && i + 1 < n)
            cz_cli_say("eval", "%zu/%zu images", i + 1, n);
    }
    rep.results = results;
    rep.failures = failures;
    cz_eval_means(results, rep.n_results, &rep.model, &rep.gray);
    if (rep.n_results >= 2) {
        rep.has_spread = cz_eval_bootstrap(results, rep.n_results, &rep.spread) == CZ_OK;
        if (!rep.has_spread)
            cz_cli_say("eval", "%s (no intervals)", cz_last_error());
    }

    /* Thumbnails: the chosen images are prepared again rather than every
     * image being kept in memory. */
    cz_eval_pick_examples(&rep);
    for (size_t k = 0; k < rep.n_examples; k++) {
        cz_eval_example *e = &rep.examples[k];
        char *msg = NULL;
        if (prepare(&ctx, results[e->index].name, &e->truth, &e->model, &e->gray,
                    &msg) != CZ_OK)
            cz_cli_say("eval", "%s (no thumbnails)", msg ? msg : results[e->index].name);
        free(msg);
    }

    cz_status s = cz_eval_write_csv(csv, &rep);
    if (s == CZ_OK)
        s = cz_eval_write_json(json, &rep);
    if (s == CZ_OK)
        s = cz_eval_write_html(html, &rep);
    if (s != CZ_OK) {
        cz_cli_say("eval", "%s", cz_last_error());
        exit_status = EXIT_SOME_FAILED;
    }

    printf("%zu image%s evaluated", rep.n_results, rep.n_results == 1 ? "" : "s");
    if (rep.n_failures)
        printf(", %zu failed", rep.n_failures);
    if (opt.size)
        printf(", compared at %dx%d\n", opt.size, opt.size);
    else
        printf(", each compared at its own size\n");
    cz_eval_print_table(stdout, &rep);
    if (s == CZ_OK)
        printf("wrote %s, %s, %s\n", csv, json, html);
    if (rep.n_failures || rep.n_results == 0)
        exit_status = EXIT_SOME_FAILED;

cleanup:
    for (size_t k = 0; k < rep.n_examples; k++) {
        cz_image_free(rep.examples[k].truth);
        cz_image_free(rep.examples[k].model);
        cz_image_free(rep.examples[k].gray);
    }
    for (size_t i = 0; results && i < rep.n_results; i++)
        free(results[i].name);
    for (size_t i = 0; failures && i < rep.n_failures; i++) {
        free(failures[i].name);
        free(failures[i].message);
    }
    free(results);
    free(failures);
    free(csv);
    free(json);
    free(html);
    cz_colorizer_free(ctx.cz);
    names_free(&reals);
    names_free(&preds);
    return exit_status;
}
