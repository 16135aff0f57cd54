/* `colorize eval`, run as a user runs it ($COLORIZE_BUILD/colorize), in
 * --pred mode on the fixtures of tools/make_metric_fixtures.py: the three
 * files are written, the summary's means match skimage's, the table puts
 * the grayscale baseline first, the page holds gray | model | truth
 * thumbnails for best, median and worst. Then a folder with a corrupt
 * original, an original without prediction, a corrupt prediction and a
 * prediction of the wrong size: each named, the rest evaluated, exit 1.
 * Then --limit, --size, and bad usage (exit 2). Last, --model mode with a
 * tiny random-weight unet: the summary equals what the library gives when
 * this test colours and measures the same photos itself; a corrupt model
 * file is named (exit 2). */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "colorize_path.h"
#include "colorize.h"
#include "eval/metrics.h"
#include "image/image.h"
#include "models/model.h"

#define FIXTURES "tests/fixtures/metrics"

static char tmpdir[] = "/tmp/cz_test_eval_cli_XXXXXX";
static char exe[1024], fixtures[1024];

static const char *tmp_path(const char *rel)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, rel);
    return p;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    while (s) {
        n += fread(s + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *t = realloc(s, cap * 2);
        if (!t) {
            free(s);
            s = NULL;
        }
        s = t;
        cap *= 2;
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    return s;
}

static bool contains(const char *s, const char *needle)
{
    return s && strstr(s, needle) != NULL;
}

/* Runs `colorize eval ARGS` with stdout and stderr captured; returns the
 * exit status, or -1 if it did not exit normally or a sanitizer reported
 * (their reports exit with status 1, which eval also uses). */
static int eval(const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s eval %s >%s 2>%s", exe, args,
             tmp_path("stdout"), tmp_path("stderr"));
    int rc = system(cmd);
    *out = read_all(tmp_path("stdout"));
    *err = read_all(tmp_path("stderr"));
    if (contains(*err, "Sanitizer") || contains(*err, "runtime error:")) {
        fprintf(stderr, "colorize eval %s: sanitizer report:\n%s\n", args, *err);
        return -1;
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void copy_file(const char *from, const char *to)
{
    char *cmd = NULL;
    CHECK(asprintf(&cmd, "cp '%s' '%s'", from, to) > 0 && system(cmd) == 0,
          "cannot copy %s to %s", from, to);
    free(cmd);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static double num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    CHECK(json_is_number(v), "no number \"%s\"", key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The means of summary.json against expected.json's (skimage): the model
 * and the grayscale baseline (ours against skimage's, so a little room). */
static void check_means(json_t *summary, json_t *expected)
{
    static const char *const keys[] = {"psnr", "ssim", "delta_e", "cf",
                                       "cf_truth", "delta_cf", "auc"};
    json_t *mean = json_object_get(expected, "mean");
    const struct { const char *got, *want; double tol; } sets[] = {
        {"model", "model", 1e-5}, {"grayscale", "gray", 1e-4}};
    for (int s = 0; s < 2; s++) {
        json_t *g = json_object_get(summary, sets[s].got);
        json_t *w = json_object_get(mean, sets[s].want);
        for (int k = 0; k < 7; k++) {
            double a = num(g, keys[k]), b = num(w, keys[k]);
            double err = fabs(a - b) / (fabs(b) > 1 ? fabs(b) : 1);
            CHECK(err <= sets[s].tol, "summary %s.%s = %.10g, skimage %.10g",
                  sets[s].got, keys[k], a, b);
        }
    }
}

static void test_fixtures(json_t *expected)
{
    char *out, *err, args[4096];
    snprintf(args, sizeof args, "--real %s/real --pred %s/pred --out %s",
             fixtures, fixtures, tmp_path("out"));
    int rc = eval(args, &out, &err);
    CHECK(rc == 0, "exit %d; stderr:\n%s", rc, err ? err : "");
    /* The table: grayscale row first. */
    const char *g = out ? strstr(out, "\ngrayscale") : NULL;
    const char *m = out ? strstr(out, "\nmodel") : NULL;
    CHECK(g && m && g < m, "table without the grayscale row first:\n%s", out ? out : "");
    CHECK(contains(out, "3 images evaluated"), "stdout:\n%s", out ? out : "");

    json_error_t jerr;
    json_t *summary = json_load_file(tmp_path("out/summary.json"), 0, &jerr);
    CHECK(summary != NULL, "summary.json: %s", jerr.text);
    if (summary) {
        CHECK(num(summary, "images") == 3 && num(summary, "failed") == 0,
              "summary counts");
        check_means(summary, expected);
        /* The bootstrap's interval holds the set's own PSNR gain (three
         * images: the resamples' means span the images' gains). */
        json_t *boot = json_object_get(summary, "bootstrap");
        json_t *gain = json_object_get(boot, "psnr_gain_95");
        double gain_of_set = json_real_value(json_object_get(json_object_get(summary, "model"), "psnr")) -
                             json_real_value(json_object_get(json_object_get(summary, "grayscale"), "psnr"));
        double lo = json_real_value(json_array_get(gain, 0)), hi = json_real_value(json_array_get(gain, 1));
        CHECK(num(boot, "resamples") == 2000 && lo <= gain_of_set && gain_of_set <= hi && lo < hi,
              "bootstrap: PSNR gain %g outside [%g, %g]", gain_of_set, lo, hi);
        CHECK(contains(out, "95% bootstrap intervals over these 3 images"), "stdout:\n%s", out ? out : "");
        json_t *ex = json_object_get(summary, "examples");
        CHECK(json_array_size(ex) == 3, "%zu examples", json_array_size(ex));
        /* skimage's Delta E: b best, a median, c worst */
        const char *want[3] = {"b.png", "a.png", "c.png"};
        for (size_t i = 0; i < json_array_size(ex) && i < 3; i++) {
            const char *name = json_string_value(json_object_get(json_array_get(ex, i), "name"));
            CHECK(name && strcmp(name, want[i]) == 0, "example %zu is %s, want %s", i,
                  name ? name : "?", want[i]);
        }
        json_decref(summary);
    }

    char *csv = read_all(tmp_path("out/per_image.csv"));
    CHECK(csv && strncmp(csv, "name,width,height,psnr,ssim,delta_e,cf,cf_truth,auc,gray_", 57) == 0,
          "per_image.csv header");
    CHECK(count(csv, "\n") == 4 && contains(csv, "\na.png,40,32,") &&
              contains(csv, "\nb.png,40,32,") && contains(csv, "\nc.png,37,29,"),
          "per_image.csv rows:\n%s", csv ? csv : "");
    /* a.png's model PSNR to the CSV's 10 digits */
    json_t *a = json_object_get(json_array_get(json_object_get(expected, "images"), 0), "model");
    char psnr[64];
    snprintf(psnr, sizeof psnr, "a.png,40,32,%.10g,", num(a, "psnr"));
    CHECK(contains(csv, psnr), "per_image.csv lacks \"%s\"", psnr);

    char *html = read_all(tmp_path("out/report.html"));
    CHECK(html && count(html, "src=\"data:image/jpeg;base64,") == 9,
          "report.html: %zu inline thumbnails, want 9", count(html, "data:image/jpeg;base64,"));
    CHECK(contains(html, "best: b.png") && contains(html, "median: a.png") &&
              contains(html, "worst: c.png"), "report.html examples");
    g = html ? strstr(html, "grayscale baseline</td>") : NULL;
    m = html ? strstr(html, "<td>model</td>") : NULL;
    CHECK(g && m && g < m, "report.html table without the baseline first");
    CHECK(contains(html, "95% bootstrap intervals over these 3 images"), "report.html without the intervals");
    CHECK(!contains(html, "src=\"http") && !contains(html, "href="),
          "report.html is not self-contained");
    /* No scratch files or temporaries left behind. */
    char *ls = NULL;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ls -A %s > %s", tmp_path("out"), tmp_path("ls"));
    CHECK(system(cmd) == 0 && (ls = read_all(tmp_path("ls"))) &&
              strcmp(ls, "per_image.csv\nreport.html\nsummary.json\n") == 0,
          "out holds:\n%s", ls ? ls : "");
    free(ls);
    free(csv);
    free(html);
    free(out);
    free(err);
}

static void test_bad_files(json_t *expected)
{
    mkdir(tmp_path("real"), 0777);
    mkdir(tmp_path("pred"), 0777);
    const char *names[] = {"a.png", "b.png", "c.png"};
    char from[2048];
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/real/%s", fixtures, names[i]);
        copy_file(from, tmp_path(i == 0 ? "real/a.png" : i == 1 ? "real/b.png" : "real/c.png"));
        snprintf(from, sizeof from, "%s/pred/%s", fixtures, names[i]);
        /* c's prediction under another extension: paired by stem */
        copy_file(from, tmp_path(i == 0 ? "pred/a.png" : i == 1 ? "pred/b.png" : "pred/c.PNG"));
    }
    snprintf(from, sizeof from, "%s/real/a.png", fixtures);
    copy_file(from, tmp_path("real/lonely.png"));        /* no prediction */
    copy_file(from, tmp_path("real/garbled.png"));       /* prediction corrupt */
    write_text(tmp_path("pred/garbled.png"), "not a png at all");
    write_text(tmp_path("real/broken.jpg"), "\xff\xd8\xff truncated");
    copy_file(from, tmp_path("real/wrongsize.png"));
    snprintf(from, sizeof from, "%s/real/c.png", fixtures);
    copy_file(from, tmp_path("pred/wrongsize.png"));     /* 37x29 vs 40x32 */
    write_text(tmp_path("real/notes.txt"), "ignored");

    char *out, *err, args[4096];
    snprintf(args, sizeof args, "--real %s --pred %s --out %s", tmp_path("real"),
             tmp_path("pred"), tmp_path("out2"));
    int rc = eval(args, &out, &err);
    CHECK(rc == 1, "exit %d with bad files, want 1", rc);
    CHECK(contains(err, "lonely.png") && contains(err, "no prediction"),
          "missing prediction not named:\n%s", err ? err : "");
    CHECK(contains(err, "pred/garbled.png"), "corrupt prediction not named:\n%s", err ? err : "");
    CHECK(contains(err, "broken.jpg"), "corrupt original not named:\n%s", err ? err : "");
    CHECK(contains(err, "wrongsize.png") && contains(err, "37x29"),
          "size mismatch not named:\n%s", err ? err : "");
    CHECK(contains(err, "ignoring 1 file"), "notes.txt not reported as ignored:\n%s",
          err ? err : "");
    CHECK(contains(out, "3 images evaluated, 4 failed"), "stdout:\n%s", out ? out : "");

    json_error_t jerr;
    json_t *summary = json_load_file(tmp_path("out2/summary.json"), 0, &jerr);
    CHECK(summary != NULL, "summary.json after failures: %s", jerr.text);
    if (summary) {
        CHECK(num(summary, "images") == 3 && num(summary, "failed") == 4,
              "summary counts after failures");
        json_t *f = json_object_get(summary, "failures");
        const char *want[4] = {"broken.jpg", "garbled.png", "lonely.png", "wrongsize.png"};
        for (size_t i = 0; i < 4; i++) {
            const char *name = json_string_value(json_object_get(json_array_get(f, i), "name"));
            CHECK(name && strcmp(name, want[i]) == 0, "failure %zu: %s, want %s", i,
                  name ? name : "?", want[i]);
        }
        check_means(summary, expected); /* the same three good pairs */
        json_decref(summary);
    }
    char *html = read_all(tmp_path("out2/report.html"));
    CHECK(contains(html, "Not evaluated") && contains(html, "lonely.png"),
          "report.html does not list the failures");
    free(html);
    free(out);
    free(err);
}

static void test_options(void)
{
    char *out, *err, args[4096];
    snprintf(args, sizeof args, "--real %s/real --pred %s/pred --out %s --limit 2",
             fixtures, fixtures, tmp_path("out3"));
    int rc = eval(args, &out, &err);
    CHECK(rc == 0 && contains(out, "2 images evaluated"), "--limit 2: exit %d\n%s", rc,
          out ? out : "");
    free(out);
    free(err);

    /* --size: both resized to 24x24, so c's 37x29 is no problem. */
    snprintf(args, sizeof args, "-r %s/real -p %s/pred -o %s -s 24", fixtures,
             fixtures, tmp_path("out4"));
    rc = eval(args, &out, &err);
    char *csv = read_all(tmp_path("out4/per_image.csv"));
    CHECK(rc == 0 && contains(out, "compared at 24x24") && count(csv, ",24,24,") == 3,
          "--size 24: exit %d\n%s\n%s", rc, out ? out : "", csv ? csv : "");
    free(csv);
    free(out);
    free(err);

    /* Identical folders: the PSNR cap, SSIM 1, Delta E 0, AuC 1. */
    snprintf(args, sizeof args, "--real %s/real --pred %s/real --out %s", fixtures,
             fixtures, tmp_path("out5"));
    rc = eval(args, &out, &err);
    json_error_t jerr;
    json_t *s = json_load_file(tmp_path("out5/summary.json"), 0, &jerr);
    json_t *m = json_object_get(s, "model");
    CHECK(rc == 0 && s && num(m, "psnr") == 100.0 && fabs(num(m, "ssim") - 1) < 1e-12 &&
              num(m, "delta_e") == 0.0 && num(m, "auc") == 1.0 && num(m, "delta_cf") == 0.0,
          "identical folders: exit %d", rc);
    json_decref(s);
    free(out);
    free(err);

    static const char *const bad[] = {
        "--pred x",                         /* no --real */
        "--real x --pred y --model z",      /* both */
        "--real x --pred y --size 5",       /* below one SSIM window */
        "--real x --pred y --limit 0",
        "--real x --pred y --bogus",
        "--real x --pred y extra",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rc = eval(bad[i], &out, &err);
        CHECK(rc == 2 && contains(err, "colorize eval"), "'%s': exit %d, stderr %s",
              bad[i], rc, err ? err : "");
        free(out);
        free(err);
    }
    rc = eval("--help", &out, &err);
    CHECK(rc == 0 && contains(out, "--real DIR") && contains(out, "--pred DIR"),
          "--help: exit %d", rc);
    free(out);
    free(err);

    /* Neither --model nor --pred: the built-in model, here one that is not
     * installed, which is named. */
    setenv("COLORIZE_MODEL", tmp_path("no-such-model.safetensors"), 1);
    snprintf(args, sizeof args, "--real %s/real --out %s", fixtures, tmp_path("out7"));
    rc = eval(args, &out, &err);
    CHECK(rc == 2 && contains(err, "built-in model") && contains(err, "no-such-model"),
          "no built-in model: exit %d, %s", rc, err ? err : "");
    unsetenv("COLORIZE_MODEL");
    free(out);
    free(err);

    /* A folder that does not exist: named, exit 1. */
    snprintf(args, sizeof args, "--real %s --pred %s/pred --out %s",
             tmp_path("nowhere"), fixtures, tmp_path("out6"));
    rc = eval(args, &out, &err);
    CHECK(rc == 1 && contains(err, "nowhere"), "missing folder: exit %d, %s", rc,
          err ? err : "");
    free(out);
    free(err);
}

/* The tiny generator: pix2pix's unet at an eighth of its width, random
 * weights; its colours are noise, but the command's wiring is what is
 * under test here. */
enum { TINY_WIDTH = 8, TINY_SIZE = 256 };

/* The model's and the baseline's means over the fixtures, computed here
 * through the library rather than the command. */
static bool library_means(const char *model_path, cz_metrics *model, cz_metrics *gray)
{
    static const char *const names[3] = {"a.png", "b.png", "c.png"};
    cz_colorizer *cz = NULL;
    bool ok = cz_colorizer_load(model_path, NULL, &cz) == CZ_OK;
    CHECK(ok, "cz_colorizer_load: %s", cz_last_error());
    *model = *gray = (cz_metrics){0};
    for (int i = 0; ok && i < 3; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/real/%s", fixtures, names[i]);
        cz_image *raw = NULL, *col = NULL, *truth = NULL, *pred = NULL, *base = NULL;
        cz_metrics m, g;
        ok = cz_image_load(path, NULL, &raw) == CZ_OK &&
             cz_colorize_image(cz, raw, &col) == CZ_OK &&
             cz_eval_rgb8(raw, &truth) == CZ_OK && cz_eval_rgb8(col, &pred) == CZ_OK &&
             cz_eval_gray_baseline(truth, &base) == CZ_OK &&
             cz_eval_metrics(pred, truth, &m) == CZ_OK &&
             cz_eval_metrics(base, truth, &g) == CZ_OK;
        CHECK(ok, "%s: %s", names[i], cz_last_error());
        if (ok) {
            model->psnr += m.psnr / 3;
            model->ssim += m.ssim / 3;
            model->delta_e += m.delta_e / 3;
            model->auc += m.auc / 3;
            gray->delta_e += g.delta_e / 3;
        }
        cz_image_free(raw);
        cz_image_free(col);
        cz_image_free(truth);
        cz_image_free(pred);
        cz_image_free(base);
    }
    cz_colorizer_free(cz);
    return ok;
}

static void test_model_mode(void)
{
    char model_path[1024]; /* tmp_path's buffers are reused */
    snprintf(model_path, sizeof model_path, "%s", tmp_path("tiny.safetensors"));
    cz_model_spec spec = {.arch = "unet", .width = TINY_WIDTH, .size = TINY_SIZE};
    cz_model *m = NULL;
    cz_status st = cz_model_new(&spec, 20240617, &m);
    if (st == CZ_OK)
        st = cz_model_save(m, model_path, NULL);
    cz_model_free(m);
    CHECK(st == CZ_OK, "cannot make the tiny model: %s", cz_last_error());
    if (st != CZ_OK)
        return;

    char *out, *err, args[4096];
    snprintf(args, sizeof args, "--real %s/real --model %s --out %s", fixtures,
             model_path, tmp_path("out7"));
    int rc = eval(args, &out, &err);
    CHECK(rc == 0 && contains(out, "3 images evaluated"), "--model: exit %d\n%s\n%s", rc,
          out ? out : "", err ? err : "");
    free(out);
    free(err);

    json_error_t jerr;
    json_t *s = json_load_file(tmp_path("out7/summary.json"), 0, &jerr);
    CHECK(s != NULL, "--model summary.json: %s", jerr.text);
    cz_metrics lm, lg;
    if (s && library_means(model_path, &lm, &lg)) {
        json_t *jm = json_object_get(s, "model"), *jg = json_object_get(s, "grayscale");
        const char *file = json_string_value(json_object_get(s, "model_file"));
        CHECK(file && strcmp(file, model_path) == 0, "model_file %s", file ? file : "null");
        CHECK(num(s, "images") == 3 && num(s, "failed") == 0, "--model counts");
        const struct { const char *key; double got, want; } v[] = {
            {"model psnr", num(jm, "psnr"), lm.psnr},
            {"model ssim", num(jm, "ssim"), lm.ssim},
            {"model delta_e", num(jm, "delta_e"), lm.delta_e},
            {"model auc", num(jm, "auc"), lm.auc},
            {"grayscale delta_e", num(jg, "delta_e"), lg.delta_e},
        };
        for (size_t i = 0; i < sizeof v / sizeof *v; i++)
            CHECK(fabs(v[i].got - v[i].want) <= 1e-9 * (fabs(v[i].want) + 1),
                  "--model %s: command %.12g, library %.12g", v[i].key, v[i].got,
                  v[i].want);
    }
    json_decref(s);
    char *html = read_all(tmp_path("out7/report.html"));
    CHECK(html && count(html, "src=\"data:image/jpeg;base64,") == 9,
          "--model report.html thumbnails");
    free(html);

    /* --size: the model colours the resized originals. */
    snprintf(args, sizeof args, "--real %s/real --model %s --out %s --size 48 --limit 1",
             fixtures, model_path, tmp_path("out8"));
    rc = eval(args, &out, &err);
    char *csv = read_all(tmp_path("out8/per_image.csv"));
    CHECK(rc == 0 && contains(csv, "\na.png,48,48,"), "--model --size 48: exit %d\n%s",
          rc, err ? err : "");
    free(csv);
    free(out);
    free(err);

    /* A model file that is not one: named, exit 2, nothing evaluated. */
    write_text(tmp_path("bad.safetensors"), "{\"not\": \"a model\"}");
    snprintf(args, sizeof args, "--real %s/real --model %s --out %s", fixtures,
             tmp_path("bad.safetensors"), tmp_path("out9"));
    rc = eval(args, &out, &err);
    CHECK(rc == 2 && contains(err, "bad.safetensors"), "bad model: exit %d, %s", rc,
          err ? err : "");
    free(out);
    free(err);
}

static int remove_one(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd) || !mkdtemp(tmpdir)) {
        fprintf(stderr, "test_eval_cli: no working folder\n");
        return EXIT_FAILURE;
    }
    if (!colorize_path(exe, sizeof exe))
        fprintf(stderr, "%s: no path to colorize\n", __FILE__);
    snprintf(fixtures, sizeof fixtures, "%s/" FIXTURES, cwd);
    json_error_t jerr;
    json_t *expected = json_load_file(FIXTURES "/expected.json", 0, &jerr);
    CHECK(expected != NULL, "expected.json: %s", jerr.text);
    if (expected && access(exe, X_OK) == 0) {
        test_fixtures(expected);
        test_bad_files(expected);
        test_options();
        test_model_mode();
    } else {
        CHECK(0, "cannot run %s", exe);
    }
    json_decref(expected);
    nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return check_finish("test_eval_cli");
}
