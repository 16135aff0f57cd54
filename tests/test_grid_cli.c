/* `colorize grid`, run as a user runs it ($COLORIZE_BUILD/colorize), on three
 * small photos of different shapes and two tiny random-weight unets. The
 * picture's size is exactly what the layout gives for its rows and columns;
 * the input column is neutral gray with the truth's L*; the truth column is
 * the photo's central square resized; each model's column is what
 * cz_colorize_image gives for that square, in --model order; --names picks
 * and orders the rows; -n takes the first K. A corrupt photo is named and
 * left out while the others are drawn (exit 1); bad usage and a bad model
 * exit 2 with a message. Also cz_grid_render_columns directly: cells land
 * where cz_grid_cell says, bad cells are refused. */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "colorize_path.h"
#include "colorize.h"
#include "eval/metrics.h"
#include "image/image.h"
#include "models/model.h"
#include "report/report.h"

static char tmpdir[] = "/tmp/cz_test_grid_cli_XXXXXX";
static char exe[1024];

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
        if (!t)
            free(s);
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

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Runs `colorize grid ARGS` with stdout and stderr captured; returns the
 * exit status, or -1 if it did not exit normally or a sanitizer reported
 * (their reports exit with status 1, which grid also uses). */
static int grid(const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s grid %s >%s 2>%s", exe, args, tmp_path("stdout"),
             tmp_path("stderr"));
    int rc = system(cmd);
    *out = read_all(tmp_path("stdout"));
    *err = read_all(tmp_path("stderr"));
    if (contains(*err, "Sanitizer") || contains(*err, "runtime error:")) {
        fprintf(stderr, "colorize grid %s: sanitizer report:\n%s\n", args, *err);
        return -1;
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ---- Fixtures ----------------------------------------------------------- */

/* Three photos of different shapes (landscape, portrait, square JPEG) and
 * patterns, so that no two rows look alike. */
enum { N_PHOTOS = 3 };
static const char *const PHOTOS[N_PHOTOS] = {"a.png", "b.png", "c.jpg"};
static const int PHOTO_W[N_PHOTOS] = {48, 30, 40}, PHOTO_H[N_PHOTOS] = {32, 45, 40};

static bool make_photo(int k, const char *path)
{
    cz_image *img = cz_image_new(PHOTO_W[k], PHOTO_H[k], 3, 8);
    if (!img)
        return false;
    uint8_t *p = img->data;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++, p += 3) {
            int v[3][3] = {{x * 5, y * 7, 128},
                           {((x / 5 + y / 5) % 2) * 200 + 20, 90 + x * 3, 220 - y * 4},
                           {230 - x * 2, 40 + (x * y) % 60, 60 + y * 4}};
            for (int c = 0; c < 3; c++)
                p[c] = (uint8_t)(v[k][c] < 0 ? 0 : v[k][c] > 255 ? 255 : v[k][c]);
        }
    bool ok = cz_image_save(path, img, 95) == CZ_OK;
    cz_image_free(img);
    return ok;
}

/* The tiny generators: pix2pix's unet at an eighth of its width, random
 * weights. Fresh weights predict almost no colour, so two models would
 * draw the same near-gray cells; the bias of the last layer (a*, b*
 * before tanh) gives each a strong cast of its own, so a column drawn from
 * the wrong model shows. The command's wiring is what is under test. */
enum { TINY_WIDTH = 8, TINY_SIZE = 256 };
#define LAST_BIAS "model.model.3.bias"

static bool make_model(uint64_t seed, float bias_a, float bias_b, const char *path)
{
    cz_model_spec spec = {.arch = "unet", .width = TINY_WIDTH, .size = TINY_SIZE};
    cz_model *m = NULL;
    cz_status st = cz_model_new(&spec, seed, &m);
    cz_model_tensor *bias = st == CZ_OK ? cz_model_find(m, LAST_BIAS) : NULL;
    if (bias && bias->ndim == 1 && bias->shape[0] == 2) {
        bias->data[0] = bias_a;
        bias->data[1] = bias_b;
    } else if (st == CZ_OK) {
        st = CZ_ERR_INVALID;
        fprintf(stderr, "the unet has no 2-channel %s\n", LAST_BIAS);
    }
    if (st == CZ_OK)
        st = cz_model_save(m, path, NULL);
    cz_model_free(m);
    CHECK(st == CZ_OK, "cannot make %s: %s", path, cz_last_error());
    return st == CZ_OK;
}

/* ---- What a cell should hold, computed here ----------------------------- */

/* The photo's central square resized to size x size (8-bit RGB). */
static cz_image *expected_truth(const char *dir, const char *name, int size)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cz_image *raw = NULL, *rgb = NULL, *sq = NULL, *out = NULL;
    if (cz_image_load(path, NULL, &raw) == CZ_OK && cz_eval_rgb8(raw, &rgb) == CZ_OK) {
        int side = rgb->width < rgb->height ? rgb->width : rgb->height;
        int x0 = (rgb->width - side) / 2, y0 = (rgb->height - side) / 2;
        if ((sq = cz_image_new(side, side, 3, 8)))
            for (int y = 0; y < side; y++)
                memcpy((uint8_t *)sq->data + (size_t)y * (size_t)side * 3,
                       (uint8_t *)rgb->data + ((size_t)(y0 + y) * (size_t)rgb->width + (size_t)x0) * 3,
                       (size_t)side * 3);
        if (sq && cz_eval_resize(sq, size, size, &out) != CZ_OK)
            out = NULL;
    }
    CHECK(out != NULL, "expected truth of %s: %s", path, cz_last_error());
    cz_image_free(raw);
    cz_image_free(rgb);
    cz_image_free(sq);
    return out;
}

/* What model `model_path` makes of truth. */
static cz_image *expected_model(const char *model_path, const cz_image *truth)
{
    cz_colorizer *cz = NULL;
    cz_image *out = NULL;
    if (cz_colorizer_load(model_path, NULL, &cz) != CZ_OK ||
        cz_colorize_image(cz, truth, &out) != CZ_OK)
        out = NULL;
    CHECK(out != NULL, "colouring with %s: %s", model_path, cz_last_error());
    cz_colorizer_free(cz);
    return out;
}

/* Largest and mean absolute difference of cell (row, col) of img from want
 * (size x size, 8-bit RGB). */
static int cell_diff(const cz_image *img, int size, int row, int col,
                     const cz_image *want, double *mean)
{
    cz_rect at = cz_grid_cell(size, NULL, row, col);
    int worst = 0;
    double sum = 0;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                int g = ((const uint8_t *)img->data)[((size_t)(at.y + y) * (size_t)img->width + (size_t)(at.x + x)) * 3 + (size_t)c];
                int w = ((const uint8_t *)want->data)[((size_t)y * (size_t)size + (size_t)x) * 3 + (size_t)c];
                int d = abs(g - w);
                worst = d > worst ? d : worst;
                sum += d;
            }
    if (mean)
        *mean = sum / (3.0 * size * size);
    return worst;
}

/* Mean absolute difference of two images of one shape. */
static double mean_difference(const cz_image *a, const cz_image *b)
{
    size_t n = (size_t)a->width * (size_t)a->height * 3;
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d += abs(((uint8_t *)a->data)[i] - ((uint8_t *)b->data)[i]);
    return d / (double)n;
}

/* The picture's size from the layout: the last cell plus a gutter. */
static bool check_dimensions(const cz_image *img, int rows, int cols, int size,
                             const char *what)
{
    cz_rect last = cz_grid_cell(size, NULL, rows - 1, cols - 1);
    int w = last.x + size + CZ_GRID_GUTTER, h = last.y + size + CZ_GRID_GUTTER;
    CHECK(img->width == w && img->height == h && img->channels == 3 && img->depth == 8,
          "%s: %dx%dx%d, want %dx%dx3 for %d rows x %d columns of %d", what,
          img->width, img->height, img->channels, w, h, rows, cols, size);
    /* The same, from the constants alone. */
    CHECK(w == CZ_GRID_GUTTER + cols * (size + CZ_GRID_GUTTER) &&
          h == cz_grid_cell(size, NULL, 0, 0).y + rows * (size + CZ_GRID_GUTTER),
          "%s: the layout is not rows x (size + gutter)", what);
    return img->width == w && img->height == h && img->channels == 3 && img->depth == 8;
}

static cz_image *load(const char *path)
{
    cz_image *img = NULL;
    CHECK(cz_image_load(path, NULL, &img) == CZ_OK, "cannot load %s: %s", path,
          cz_last_error());
    return img;
}

/* ---- The tests ---------------------------------------------------------- */

enum { SIZE = 32 };

static char good[1024], m1[1024], m2[1024];

/* Two models, all three photos: every column of every row checked. */
static void test_columns(void)
{
    char *out, *err, args[4096];
    snprintf(args, sizeof args, "--real %s --model %s --model %s --label first "
             "--size %d -o %s", good, m1, m2, SIZE, tmp_path("grid.png"));
    int rc = grid(args, &out, &err);
    CHECK(rc == 0, "exit %d; stderr:\n%s", rc, err ? err : "");
    CHECK(contains(out, "grid.png"), "stdout:\n%s", out ? out : "");
    free(out);
    free(err);
    cz_image *img = load(tmp_path("grid.png"));
    if (!img)
        return;
    enum { COLS = 4 };
    bool dims = check_dimensions(img, N_PHOTOS, COLS, SIZE, "two models");
    for (int r = 0; r < N_PHOTOS && dims; r++) {
        cz_image *truth = expected_truth(good, PHOTOS[r], SIZE);
        cz_image *gray = NULL;
        cz_image *col1 = truth ? expected_model(m1, truth) : NULL;
        cz_image *col2 = truth ? expected_model(m2, truth) : NULL;
        if (!truth || !col1 || !col2 || cz_eval_gray_baseline(truth, &gray) != CZ_OK) {
            CHECK(0, "row %d: no expected cells", r);
        } else {
            int d = cell_diff(img, SIZE, r, COLS - 1, truth, NULL);
            CHECK(d <= 1, "row %d (%s): truth cell off by %d", r, PHOTOS[r], d);
            d = cell_diff(img, SIZE, r, 0, gray, NULL);
            CHECK(d <= 1, "row %d (%s): input cell off by %d from the truth's L*", r,
                  PHOTOS[r], d);
            /* the input is neutral: a* = b* = 0 within rounding */
            cz_rect at = cz_grid_cell(SIZE, NULL, r, 0);
            int spread = 0;
            for (int y = at.y; y < at.y + SIZE; y++)
                for (int x = at.x; x < at.x + SIZE; x++) {
                    const uint8_t *p = (uint8_t *)img->data + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
                    int lo = p[0] < p[1] ? p[0] : p[1], hi = p[0] > p[1] ? p[0] : p[1];
                    lo = p[2] < lo ? p[2] : lo;
                    hi = p[2] > hi ? p[2] : hi;
                    spread = hi - lo > spread ? hi - lo : spread;
                }
            CHECK(spread <= 1, "row %d: input cell not gray (R, G, B differ by %d)", r,
                  spread);
            /* Both models' columns, in --model order; the models differ, so
             * a swap or a repeat would show. */
            CHECK(mean_difference(col1, gray) > 10, "row %d: the first model adds "
                  "no colour", r);
            CHECK(mean_difference(col1, col2) > 10, "row %d: the two models agree "
                  "(mean difference %.2f)", r, mean_difference(col1, col2));
            d = cell_diff(img, SIZE, r, 1, col1, NULL);
            CHECK(d <= 1, "row %d: first model's cell off by %d", r, d);
            d = cell_diff(img, SIZE, r, 2, col2, NULL);
            CHECK(d <= 1, "row %d: second model's cell off by %d", r, d);
        }
        cz_image_free(truth);
        cz_image_free(gray);
        cz_image_free(col1);
        cz_image_free(col2);
    }
    /* A title over every column: ink in the header above each. */
    for (int c = 0; c < COLS && dims; c++) {
        cz_rect at = cz_grid_cell(SIZE, NULL, 0, c);
        long ink = 0;
        for (int y = 0; y < at.y; y++)
            for (int x = at.x; x < at.x + SIZE; x++)
                ink += ((uint8_t *)img->data)[((size_t)y * (size_t)img->width + (size_t)x) * 3] < 128;
        CHECK(ink > 0, "no title over column %d", c);
    }
    cz_image_free(img);
}

/* Rows of a grid against the photos they should show (by their truth
 * cells, within JPEG's loss for a .jpg grid). */
static void check_rows(const char *path, const char *const *photos, int n, int cols,
                       double tol, const char *what)
{
    cz_image *img = load(path);
    if (!img)
        return;
    bool dims = check_dimensions(img, n, cols, SIZE, what);
    for (int r = 0; r < n && dims; r++) {
        cz_image *truth = expected_truth(good, photos[r], SIZE);
        double mean = 0;
        if (truth)
            cell_diff(img, SIZE, r, cols - 1, truth, &mean);
        CHECK(truth && mean <= tol, "%s: row %d is not %s (mean difference %.2f)", what,
              r, photos[r], mean);
        cz_image_free(truth);
    }
    cz_image_free(img);
}

static void test_rows(void)
{
    char *out, *err, args[4096];
    /* --names: its order, comments and blank lines skipped, x or x.png. */
    write_text(tmp_path("picks.txt"), "# for the README\nc\n\n  a.png  \n");
    snprintf(args, sizeof args, "--real %s --model %s --names %s -s %d -o %s", good, m1,
             tmp_path("picks.txt"), SIZE, tmp_path("picked.jpg"));
    int rc = grid(args, &out, &err);
    CHECK(rc == 0, "--names: exit %d; stderr:\n%s", rc, err ? err : "");
    static const char *const picked[] = {"c.jpg", "a.png"};
    check_rows(tmp_path("picked.jpg"), picked, 2, 3, 4.0, "--names, .jpg");
    free(out);
    free(err);

    /* -n 2: the first two by name. */
    snprintf(args, sizeof args, "--real %s -m %s -n 2 -s %d -o %s", good, m1, SIZE,
             tmp_path("first2.png"));
    rc = grid(args, &out, &err);
    CHECK(rc == 0, "-n 2: exit %d; stderr:\n%s", rc, err ? err : "");
    check_rows(tmp_path("first2.png"), PHOTOS, 2, 3, 0.5, "-n 2");
    free(out);
    free(err);

    /* A name --names lists that is not there: named, the rest drawn, exit 1. */
    write_text(tmp_path("picks2.txt"), "b\nnowhere\n");
    snprintf(args, sizeof args, "--real %s -m %s --names %s -s %d -o %s", good, m1,
             tmp_path("picks2.txt"), SIZE, tmp_path("picked2.png"));
    rc = grid(args, &out, &err);
    CHECK(rc == 1 && contains(err, "nowhere"), "--names with a missing photo: exit %d, %s",
          rc, err ? err : "");
    static const char *const b_only[] = {"b.png"};
    check_rows(tmp_path("picked2.png"), b_only, 1, 3, 0.5, "--names with a missing photo");
    free(out);
    free(err);
}

/* A corrupt photo among good ones: named, left out, the others drawn, exit 1. */
static void test_corrupt_photo(void)
{
    char dir[1024], cmd[4096];
    snprintf(dir, sizeof dir, "%s", tmp_path("mixed"));
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/* %s", dir, good, dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    write_text(tmp_path("mixed/b2_broken.png"), "\x89PNG\r\n\x1a\n truncated");
    write_text(tmp_path("mixed/notes.txt"), "not a photo");

    char *out, *err, args[4096];
    snprintf(args, sizeof args, "--real %s --model %s -s %d -o %s", dir, m1, SIZE,
             tmp_path("mixed.png"));
    int rc = grid(args, &out, &err);
    CHECK(rc == 1, "a corrupt photo: exit %d, want 1", rc);
    CHECK(contains(err, "b2_broken.png"), "the corrupt photo is not named:\n%s",
          err ? err : "");
    CHECK(!contains(err, "notes.txt"), "notes.txt was read as a photo:\n%s", err ? err : "");
    check_rows(tmp_path("mixed.png"), PHOTOS, N_PHOTOS, 3, 0.5, "a corrupt photo");
    free(out);
    free(err);

    /* Only corrupt photos: nothing written, exit 1. */
    mkdir(tmp_path("allbad"), 0777);
    write_text(tmp_path("allbad/x.jpg"), "\xff\xd8\xff nothing");
    snprintf(args, sizeof args, "--real %s --model %s -o %s", tmp_path("allbad"), m1,
             tmp_path("allbad.png"));
    rc = grid(args, &out, &err);
    CHECK(rc == 1 && contains(err, "x.jpg") && access(tmp_path("allbad.png"), F_OK) != 0,
          "only corrupt photos: exit %d, %s", rc, err ? err : "");
    free(out);
    free(err);
}

/* args with REAL, MODEL, OUT and TMP replaced by the fixtures' paths. */
static void fill(char *dst, size_t cap, const char *args, const char *out)
{
    const struct { const char *key, *value; } subs[] = {
        {"REAL", good}, {"MODEL", m1}, {"OUT", out}, {"TMP", tmpdir}};
    size_t n = 0;
    while (*args && n + 1 < cap) {
        size_t k = 0;
        while (k < 4 && strncmp(args, subs[k].key, strlen(subs[k].key)) != 0)
            k++;
        if (k < 4) {
            n += (size_t)snprintf(dst + n, cap - n, "%s", subs[k].value);
            args += strlen(subs[k].key);
        } else {
            dst[n++] = *args++;
        }
        if (n >= cap)
            n = cap - 1;
    }
    dst[n] = '\0';
}

static void test_usage(void)
{
    char *out, *err, args[4096], o[1024]; /* tmp_path's buffers are reused */
    snprintf(o, sizeof o, "%s", tmp_path("never.png"));
    /* Each is bad usage or an unusable model: exit 2, a message, nothing
     * written. */
    const char *const bad[] = {
        "--model MODEL -o OUT",                               /* no --real */
        "--real REAL -o OUT",                                 /* no --model */
        "--real REAL --model MODEL",                          /* no -o */
        "--real REAL --model MODEL -o TMP/never.gif",         /* not PNG or JPEG */
        "--real REAL --model MODEL --label a --label b -o OUT", /* labels > models */
        "--real REAL --model MODEL -n 0 -o OUT",
        "--real REAL --model MODEL -n -3 -o OUT",
        "--real REAL --model MODEL -n x -o OUT",
        "--real REAL --model MODEL --size 15 -o OUT",
        "--real REAL --model MODEL --size 1025 -o OUT",
        "--real REAL --model MODEL --bogus -o OUT",
        "--real REAL --model MODEL -o OUT extra",
        ("--real REAL -m MODEL -m MODEL -m MODEL -m MODEL -m MODEL -m MODEL -m MODEL "
         "-m MODEL -m MODEL -o OUT"),                         /* 9 models */
        "--real REAL --model TMP/bad.safetensors -o OUT",     /* not a model */
        "--real REAL --model TMP/none.safetensors -o OUT",    /* no such file */
    };
    write_text(tmp_path("bad.safetensors"), "{\"not\": \"a model\"}");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fill(args, sizeof args, bad[i], o);
        int rc = grid(args, &out, &err);
        CHECK(rc == 2 && contains(err, "colorize grid"), "'%s': exit %d, stderr %s", args,
              rc, err ? err : "");
        CHECK(access(o, F_OK) != 0, "'%s' wrote %s", args, o);
        free(out);
        free(err);
    }
    /* A bad model is named. */
    snprintf(args, sizeof args, "--real %s --model %s -o %s", good,
             tmp_path("bad.safetensors"), o);
    int rc = grid(args, &out, &err);
    CHECK(rc == 2 && contains(err, "bad.safetensors"), "bad model: exit %d, %s", rc,
          err ? err : "");
    free(out);
    free(err);
    /* Missing and empty folders: named, exit 1. */
    mkdir(tmp_path("empty"), 0777);
    const char *dirs[] = {"nowhere", "empty"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "--real %s --model %s -o %s", tmp_path(dirs[i]), m1, o);
        rc = grid(args, &out, &err);
        CHECK(rc == 1 && contains(err, dirs[i]), "--real %s: exit %d, %s", dirs[i], rc,
              err ? err : "");
        free(out);
        free(err);
    }
    rc = grid("--help", &out, &err);
    CHECK(rc == 0 && contains(out, "--real DIR") && contains(out, "--label NAME") &&
              contains(out, "--names FILE"), "--help: exit %d", rc);
    free(out);
    free(err);
    /* `colorize help` lists the command. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s help > %s", exe, tmp_path("help"));
    char *help = system(cmd) == 0 ? read_all(tmp_path("help")) : NULL;
    CHECK(contains(help, "  grid "), "colorize help does not list grid:\n%s",
          help ? help : "");
    free(help);
}

/* The library call behind it: n columns of solid cells, each where
 * cz_grid_cell says; bad arguments refused. */
static void test_render_columns(void)
{
    enum { R = 2, C = 5, S = 20 };
    cz_image *cells[R * C] = {NULL};
    for (int i = 0; i < R * C; i++) {
        cells[i] = cz_image_new(S, S, 3, 8);
        if (cells[i])
            memset(cells[i]->data, 10 + 20 * i, (size_t)S * S * 3);
    }
    const char *titles[C] = {"input", "a very long model name indeed", NULL, "m", "truth"};
    cz_image *img = NULL;
    cz_status st = cz_grid_render_columns(R, C, S, titles, (const cz_image *const *)cells,
                                          "caption", &img);
    CHECK(st == CZ_OK && img, "render_columns: %s", cz_last_error());
    if (img) {
        cz_rect last = cz_grid_cell(S, "caption", R - 1, C - 1);
        CHECK(img->width == last.x + S + CZ_GRID_GUTTER &&
              img->height == last.y + S + CZ_GRID_GUTTER, "render_columns: %dx%d",
              img->width, img->height);
        int wrong = 0;
        for (int i = 0; i < R * C; i++) {
            cz_rect at = cz_grid_cell(S, "caption", i / C, i % C);
            for (int y = at.y; y < at.y + S; y++)
                for (int x = at.x; x < at.x + S; x++)
                    wrong += ((uint8_t *)img->data)[((size_t)y * (size_t)img->width + (size_t)x) * 3 + 1] != 10 + 20 * i;
        }
        CHECK(wrong == 0, "render_columns: %d pixels not their cell's", wrong);
        int w, h;
        CHECK(cz_grid_dimensions(R, C, S, "caption", &w, &h) == CZ_OK && w == img->width &&
              h == img->height, "cz_grid_dimensions disagrees with the picture");
    }
    cz_image_free(img);
    img = NULL;
    const cz_image *const *cc = (const cz_image *const *)cells;
    CHECK(cz_grid_render_columns(R, 0, S, titles, cc, NULL, &img) == CZ_ERR_INVALID && !img,
          "0 columns accepted");
    CHECK(cz_grid_render_columns(R, C, S + 1, titles, cc, NULL, &img) == CZ_ERR_INVALID &&
              !img, "cells of the wrong size accepted");
    CHECK(cz_grid_render_columns(R, C, S, NULL, cc, NULL, &img) == CZ_ERR_INVALID,
          "NULL titles accepted");
    CHECK(cz_grid_render_columns(1 << 30, C, 1 << 20, titles, cc, NULL, &img) ==
              CZ_ERR_TOO_LARGE, "a huge grid accepted");
    for (int i = 0; i < R * C; i++)
        cz_image_free(cells[i]);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
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
        fprintf(stderr, "test_grid_cli: no working folder\n");
        return EXIT_FAILURE;
    }
    if (!colorize_path(exe, sizeof exe))
        fprintf(stderr, "%s: no path to colorize\n", __FILE__);
    snprintf(good, sizeof good, "%s", tmp_path("good"));
    snprintf(m1, sizeof m1, "%s", tmp_path("m1.safetensors"));
    snprintf(m2, sizeof m2, "%s", tmp_path("m2.safetensors"));
    mkdir(good, 0777);
    bool ok = true;
    for (int k = 0; k < N_PHOTOS; k++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", good, PHOTOS[k]);
        ok = ok && make_photo(k, path);
    }
    CHECK(ok, "cannot make the photos: %s", cz_last_error());
    ok = ok && make_model(20240617, 1.0f, 0.5f, m1) && make_model(7, -0.5f, -1.0f, m2);
    test_render_columns();
    if (ok && access(exe, X_OK) == 0) {
        test_columns();
        test_rows();
        test_corrupt_photo();
        test_usage();
    } else {
        CHECK(0, "cannot run %s", exe);
    }
    nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return check_finish("test_grid_cli");
}
