/* The data pipeline: the recursive scan and its sources, source weights and
 * plans, crops, flips, Lab ranges, grayscale and corrupt photos, the loader's
 * determinism across thread counts and on resume, validation batches, and the
 * real training folder when it is present.
 *
 * Everything runs on a small folder made here in a temporary directory:
 *
 *   a__00.jpg  b__00.png  notes.txt (not an image)  .hidden.jpg
 *   one/a__01.jpg one/a__02.png one/b__01.jpg one/b__gray.jpg (R = G = B)
 *   one/deep/a__03.jpg one/deep/b__02.jpg one/deep/a__bad.jpg (JPEG magic,
 *   then garbage)  two/a__04.png two/a__05.jpg two/b__03.jpg two/b__04.png
 *   two/b__05.jpg
 *
 * With COLORIZE_DATA_BENCH=1 it also times the loader on the training
 * folder at 224 and 256 with 1 and 2 workers (docs/training.md). */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "check.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/sample.h"
#include "image/image.h"
#include "image/lab.h"

#define TRAIN_DIR "/work/shared/data/train"
#define TRAIN_FILES 4730

static char tmpdir[] = "/tmp/cz_test_data_XXXXXX";
static char flipdir[] = "/tmp/cz_test_data_flip_XXXXXX";

/* Files of the generated folder that hold colour photos, per source. */
enum { COLOUR_A = 6, COLOUR_B = 6, FILES_A = 7, FILES_B = 7 };

static const char *tmp_path(const char *dir, const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static uint32_t hash3(uint32_t x, uint32_t y, uint32_t c)
{
    uint32_t h = (x * 73856093u) ^ (y * 19349663u) ^ (c * 83492791u);
    h ^= h >> 13;
    h *= 0x5BD1E995u;
    h ^= h >> 15;
    return h;
}

/* A colourful photo: each channel a different gradient plus a little noise,
 * the gradients' directions varying with id. */
static int write_colour(const char *path, int W, int H, int id)
{
    cz_image *img = cz_image_new(W, H, 3, 8);
    if (!img)
        return 0;
    uint8_t *p = img->data;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                int g = (c + id) % 3 == 0   ? 255 * x / W
                        : (c + id) % 3 == 1 ? 255 * y / H
                                            : 40 + 20 * id;
                int v = g + (int)(hash3((uint32_t)x, (uint32_t)y,
                                        (uint32_t)(c + 3 * id)) % 17) - 8;
                p[((size_t)y * (size_t)W + (size_t)x) * 3 + (size_t)c] =
                    (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    int ok = cz_image_save(path, img, 95) == CZ_OK;
    cz_image_free(img);
    return ok;
}

/* A grayscale picture stored as RGB, as scanners and phones often do. */
static int write_gray_rgb(const char *path, int W, int H)
{
    cz_image *img = cz_image_new(W, H, 3, 8);
    if (!img)
        return 0;
    uint8_t *p = img->data;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t v = (uint8_t)(30 + 200 * (x + y) / (W + H));
            for (int c = 0; c < 3; c++)
                p[((size_t)y * (size_t)W + (size_t)x) * 3 + (size_t)c] = v;
        }
    int ok = cz_image_save(path, img, 95) == CZ_OK;
    cz_image_free(img);
    return ok;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return (fclose(f) == 0) && ok;
}

static int make_folder(void)
{
    if (!mkdtemp(tmpdir))
        return 0;
    const char *dirs[] = {"one", "one/deep", "two"};
    for (int i = 0; i < 3; i++)
        if (mkdir(tmp_path(tmpdir, dirs[i]), 0700) != 0)
            return 0;
    static const struct {
        const char *name;
        int w, h;
    } colour[] = {
        {"a__00.jpg", 40, 30}, {"b__00.png", 30, 40},
        {"one/a__01.jpg", 48, 32}, {"one/a__02.png", 33, 47},
        {"one/b__01.jpg", 50, 25}, {"one/deep/a__03.jpg", 36, 36},
        {"one/deep/b__02.jpg", 41, 29}, {"two/a__04.png", 24, 40},
        {"two/a__05.jpg", 64, 48}, {"two/b__03.jpg", 30, 30},
        {"two/b__04.png", 45, 35}, {"two/b__05.jpg", 32, 44},
        {".hidden.jpg", 20, 20},
    };
    int ok = 1;
    for (int i = 0; i < (int)(sizeof colour / sizeof colour[0]); i++)
        ok &= write_colour(tmp_path(tmpdir, colour[i].name), colour[i].w,
                           colour[i].h, i);
    ok &= write_gray_rgb(tmp_path(tmpdir, "one/b__gray.jpg"), 40, 40);
    const char text[] = "not a photo\n";
    ok &= write_bytes(tmp_path(tmpdir, "notes.txt"), text, sizeof text - 1);
    unsigned char bad[200];
    for (int i = 0; i < (int)sizeof bad; i++)
        bad[i] = (unsigned char)(hash3((uint32_t)i, 1, 2) & 0xff);
    bad[0] = 0xFF, bad[1] = 0xD8, bad[2] = 0xFF, bad[3] = 0xE0;
    ok &= write_bytes(tmp_path(tmpdir, "one/deep/a__bad.jpg"), bad, sizeof bad);
    return ok;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int find_source(const cz_dataset *ds, const char *name)
{
    for (int s = 0; s < cz_dataset_source_count(ds); s++)
        if (strcmp(cz_dataset_source(ds, s).name, name) == 0)
            return s;
    return -1;
}

static int find_file(const cz_dataset *ds, const char *suffix)
{
    size_t n = strlen(suffix);
    for (int i = 0; i < cz_dataset_count(ds); i++) {
        const char *p = cz_dataset_path(ds, i);
        size_t m = strlen(p);
        if (m >= n && strcmp(p + m - n, suffix) == 0)
            return i;
    }
    return -1;
}

/* ---- Scan and sources ---------------------------------------------------- */

static void test_scan(void)
{
    cz_dataset *ds = NULL;
    cz_status st = cz_dataset_open(tmpdir, NULL, &ds);
    CHECK(st == CZ_OK, "open: %s", cz_last_error());
    if (!ds)
        return;
    CHECK(cz_dataset_count(ds) == FILES_A + FILES_B, "count %d",
          cz_dataset_count(ds));
    CHECK(cz_dataset_skipped(ds) == 1, "skipped %d (notes.txt)",
          cz_dataset_skipped(ds));
    CHECK(cz_dataset_source_count(ds) == 2, "sources %d",
          cz_dataset_source_count(ds));
    cz_source_info a = cz_dataset_source(ds, 0), b = cz_dataset_source(ds, 1);
    CHECK(strcmp(a.name, "a") == 0 && a.files == FILES_A && a.weight == 1,
          "source 0: %s %d %g", a.name, a.files, a.weight);
    CHECK(strcmp(b.name, "b") == 0 && b.files == FILES_B && b.weight == 1,
          "source 1: %s %d %g", b.name, b.files, b.weight);
    CHECK(!cz_dataset_weighted(ds), "equal weights are not weighted");
    /* Sorted paths, recursion, no hidden file, sources by file name. */
    for (int i = 1; i < cz_dataset_count(ds); i++)
        CHECK(strcmp(cz_dataset_path(ds, i - 1), cz_dataset_path(ds, i)) < 0,
              "paths out of order at %d", i);
    CHECK(find_file(ds, "/one/deep/a__03.jpg") >= 0, "deep file missing");
    CHECK(find_file(ds, "/.hidden.jpg") < 0, "hidden file scanned");
    CHECK(find_file(ds, "/notes.txt") < 0, "text file scanned");
    for (int i = 0; i < cz_dataset_count(ds); i++) {
        const char *base = strrchr(cz_dataset_path(ds, i), '/') + 1;
        int s = cz_dataset_source_of(ds, i);
        CHECK(base[0] == (s == 0 ? 'a' : 'b'), "%s in source %d", base, s);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        cz_dataset_report(ds, f);
        fclose(f);
        CHECK(strstr(text, "14 photos") && strstr(text, "1 other file") &&
                  strstr(text, "50.0%"),
              "report: %s", text);
        free(text);
    }
    cz_dataset_free(ds);

    /* A sub-folder scans alone. */
    char two[600];
    snprintf(two, sizeof two, "%s/two", tmpdir);
    CHECK(cz_dataset_open(two, NULL, &ds) == CZ_OK, "%s", cz_last_error());
    if (ds) {
        CHECK(cz_dataset_count(ds) == 5, "two/: %d", cz_dataset_count(ds));
        cz_dataset_free(ds);
    }

    /* Failures. */
    CHECK(cz_dataset_open("/nonexistent/cz", NULL, &ds) == CZ_ERR_IO && !ds,
          "missing folder");
    CHECK(strstr(cz_last_error(), "/nonexistent/cz") != NULL, "message: %s",
          cz_last_error());
    char empty[] = "/tmp/cz_test_data_empty_XXXXXX";
    if (mkdtemp(empty)) {
        CHECK(cz_dataset_open(empty, NULL, &ds) == CZ_ERR_INVALID && !ds,
              "empty folder");
        rmdir(empty);
    }
}

static void test_weights_parse(void)
{
    cz_source_weight w;
    CHECK(cz_source_weight_parse("clothing=0.3", &w) == CZ_OK &&
              strcmp(w.name, "clothing") == 0 && w.weight == 0.3,
          "parse: %s %g", w.name, w.weight);
    CHECK(cz_source_weight_parse("imagenet-sample=2", &w) == CZ_OK &&
              strcmp(w.name, "imagenet-sample") == 0 && w.weight == 2,
          "parse dash");
    CHECK(cz_source_weight_parse("=1", &w) == CZ_OK && w.name[0] == '\0',
          "the unprefixed source");
    const char *bad[] = {"clothing", "clothing=", "a=-1", "a=nan", "a=inf",
                         "a=1x", "a=0.3 "};
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++)
        CHECK(cz_source_weight_parse(bad[i], &w) == CZ_ERR_INVALID,
              "'%s' accepted", bad[i]);
}

static void test_weights(void)
{
    cz_dataset *ds = NULL;
    /* Unknown source: the message names it and what there is. */
    cz_source_weight ws[2] = {{"c", 1.0}, {"a", 1.0}};
    cz_dataset_options o = {ws, 1};
    CHECK(cz_dataset_open(tmpdir, &o, &ds) == CZ_ERR_INVALID && !ds,
          "unknown source accepted");
    CHECK(strstr(cz_last_error(), "'c'") && strstr(cz_last_error(), "a, b"),
          "message: %s", cz_last_error());
    /* Twice, and all zero. */
    ws[0] = (cz_source_weight){"a", 2.0};
    o.n_weights = 2;
    CHECK(cz_dataset_open(tmpdir, &o, &ds) == CZ_ERR_INVALID, "twice");
    ws[0] = (cz_source_weight){"a", 0.0};
    ws[1] = (cz_source_weight){"b", 0.0};
    CHECK(cz_dataset_open(tmpdir, &o, &ds) == CZ_ERR_INVALID, "all zero");
    ws[1] = (cz_source_weight){"b", -1.0};
    CHECK(cz_dataset_open(tmpdir, &o, &ds) == CZ_ERR_INVALID, "negative");

    /* Weight 0 drops b entirely. */
    ws[0] = (cz_source_weight){"b", 0.0};
    o.n_weights = 1;
    CHECK(cz_dataset_open(tmpdir, &o, &ds) == CZ_OK, "%s", cz_last_error());
    if (ds) {
        CHECK(cz_dataset_count(ds) == FILES_A, "count %d", cz_dataset_count(ds));
        cz_source_info b = cz_dataset_source(ds, find_source(ds, "b"));
        CHECK(b.files == FILES_B && b.weight == 0, "b: %d %g", b.files, b.weight);
        CHECK(!cz_dataset_weighted(ds), "one source is a plain shuffle");
        int plan[FILES_A];
        for (int e = 0; e < 20; e++) {
            cz_dataset_plan(ds, true, 9, e, plan);
            for (int i = 0; i < FILES_A; i++)
                CHECK(cz_dataset_source_of(ds, plan[i]) ==
                          find_source(ds, "a"), "b drawn");
        }
        cz_loader_options lo;
        cz_loader_options_init(&lo, 3, 8, true);
        lo.log = tmpfile();
        cz_loader *ld = NULL;
        CHECK(cz_loader_open(ds, &lo, &ld) == CZ_OK, "%s", cz_last_error());
        for (int i = 0; ld && i < 6; i++) {
            cz_batch bt;
            if (cz_loader_next(ld, &bt) != CZ_OK)
                break;
            for (int j = 0; j < bt.n; j++)
                CHECK(strrchr(cz_dataset_path(ds, bt.files[j]), '/')[1] == 'a',
                      "batch holds %s", cz_dataset_path(ds, bt.files[j]));
        }
        cz_loader_free(ld);
        if (lo.log)
            fclose(lo.log);
        cz_dataset_free(ds);
    }

    /* a:b = 3:1 per file, equal file counts: a is 3/4 of the draws, and
     * every file of a source about as often as the others. */
    ws[0] = (cz_source_weight){"a", 3.0};
    ws[1] = (cz_source_weight){"b", 1.0};
    o.n_weights = 2;
    CHECK(cz_dataset_open(tmpdir, &o, &ds) == CZ_OK, "%s", cz_last_error());
    if (!ds)
        return;
    CHECK(cz_dataset_weighted(ds), "3:1 is weighted");
    enum { EPOCHS = 4000 };
    const int n = cz_dataset_count(ds);
    int plan[FILES_A + FILES_B], per_file[FILES_A + FILES_B] = {0};
    long draws_a = 0, draws = 0;
    for (int e = 0; e < EPOCHS; e++) {
        cz_dataset_plan(ds, true, 1234, e, plan);
        for (int i = 0; i < n; i++) {
            per_file[plan[i]]++;
            draws_a += cz_dataset_source_of(ds, plan[i]) == find_source(ds, "a");
            draws++;
        }
    }
    double share = (double)draws_a / (double)draws; /* sd about 0.0018 */
    CHECK(fabs(share - 0.75) < 0.01, "a's share %.4f, expected 0.75", share);
    for (int i = 0; i < n; i++) {
        double expect = (double)draws *
                        (cz_dataset_source_of(ds, i) == 0 ? 0.75 : 0.25) / 7;
        CHECK(fabs(per_file[i] - expect) < 0.06 * expect,
              "file %d drawn %d times, expected %.0f", i, per_file[i], expect);
    }
    /* Same (seed, epoch), same plan; another epoch, another plan. */
    int again[FILES_A + FILES_B];
    cz_dataset_plan(ds, true, 1234, EPOCHS - 1, again);
    CHECK(memcmp(plan, again, sizeof plan) == 0, "plan not reproducible");
    cz_dataset_plan(ds, true, 1234, EPOCHS - 2, again);
    CHECK(memcmp(plan, again, sizeof plan) != 0, "epochs share a plan");
    cz_dataset_free(ds);
}

static void test_shuffle_plan(void)
{
    cz_dataset *ds = NULL;
    CHECK(cz_dataset_open(tmpdir, NULL, &ds) == CZ_OK, "%s", cz_last_error());
    if (!ds)
        return;
    const int n = cz_dataset_count(ds);
    int plan[FILES_A + FILES_B], other[FILES_A + FILES_B];
    int differs = 0;
    for (int e = 0; e < 10; e++) {
        cz_dataset_plan(ds, true, 7, e, plan);
        int seen[FILES_A + FILES_B] = {0};
        for (int i = 0; i < n; i++)
            seen[plan[i]]++;
        for (int i = 0; i < n; i++)
            CHECK(seen[i] == 1, "epoch %d: file %d drawn %d times", e, i,
                  seen[i]);
        cz_dataset_plan(ds, true, 8, e, other);
        differs += memcmp(plan, other, sizeof plan) != 0;
    }
    CHECK(differs >= 9, "seeds 7 and 8 give the same plans");
    cz_dataset_plan(ds, false, 7, 3, plan);
    for (int i = 0; i < n; i++)
        CHECK(plan[i] == i, "sequential plan at %d: %d", i, plan[i]);
    cz_dataset_free(ds);
}

/* ---- Crops, flips, one sample -------------------------------------------- */

static void test_crops(void)
{
    cz_rng rng;
    cz_rng_seed(&rng, 5);
    const int W = 384, H = 256;
    double sum_scale = 0;
    int wide = 0, tall = 0;
    enum { DRAWS = 4000 };
    for (int i = 0; i < DRAWS; i++) {
        cz_crop c = cz_crop_random_resized(&rng, W, H, CZ_CROP_SCALE_MIN,
                                           CZ_CROP_SCALE_MAX, CZ_CROP_RATIO_MIN,
                                           CZ_CROP_RATIO_MAX);
        CHECK(c.x >= 0 && c.y >= 0 && c.w >= 1 && c.h >= 1 && c.x + c.w <= W &&
                  c.y + c.h <= H,
              "crop %d,%d %dx%d outside %dx%d", c.x, c.y, c.w, c.h, W, H);
        double scale = (double)c.w * c.h / ((double)W * H);
        double ratio = (double)c.w / c.h;
        /* Rounding w and h to integers moves area and ratio a little. */
        CHECK(scale > 0.49 && scale <= 1.0, "area fraction %.3f", scale);
        CHECK(ratio > 0.74 && ratio < 1.35, "ratio %.3f", ratio);
        sum_scale += scale;
        wide += ratio > 1.05;
        tall += ratio < 0.95;
    }
    /* On a 3:2 photo a crop of area s and ratio r fits only if s <= 2r/3,
     * so large and tall draws are redrawn (torchvision's rule): the areas
     * are smaller and the crops wider than drawn. */
    CHECK(sum_scale / DRAWS > 0.58 && sum_scale / DRAWS < 0.68,
          "mean area %.3f", sum_scale / DRAWS);
    CHECK(wide > DRAWS / 2 && tall > DRAWS / 20, "ratios: %d wide, %d tall",
          wide, tall);

    /* Where every draw fits, area is uniform and the ratio log-uniform. */
    sum_scale = 0;
    wide = tall = 0;
    double sum_log_ratio = 0;
    for (int i = 0; i < DRAWS; i++) {
        cz_crop c = cz_crop_random_resized(&rng, 1000, 1000, 0.5f, 0.6f,
                                           CZ_CROP_RATIO_MIN, CZ_CROP_RATIO_MAX);
        sum_scale += (double)c.w * c.h / 1e6;
        sum_log_ratio += log((double)c.w / c.h);
    }
    CHECK(fabs(sum_scale / DRAWS - 0.55) < 0.005, "mean area %.4f",
          sum_scale / DRAWS);
    CHECK(fabs(sum_log_ratio / DRAWS) < 0.01, "mean log ratio %.4f",
          sum_log_ratio / DRAWS);

    /* Fallback: no crop of half the area fits a 1000x10 strip at these
     * ratios, so the centre is taken at the widest ratio allowed. */
    cz_crop c = cz_crop_random_resized(&rng, 1000, 10, 0.5f, 1.0f,
                                       CZ_CROP_RATIO_MIN, CZ_CROP_RATIO_MAX);
    CHECK(c.w == 13 && c.h == 10 && c.x == 493 && c.y == 0,
          "fallback %d,%d %dx%d", c.x, c.y, c.w, c.h);
    c = cz_crop_random_resized(&rng, 10, 1000, 0.5f, 1.0f, CZ_CROP_RATIO_MIN,
                               CZ_CROP_RATIO_MAX);
    CHECK(c.w == 10 && c.h == 13 && c.x == 0 && c.y == 493,
          "fallback %d,%d %dx%d", c.x, c.y, c.w, c.h);
    c = cz_crop_center_square(384, 256);
    CHECK(c.x == 64 && c.y == 0 && c.w == 256 && c.h == 256, "centre");
    c = cz_crop_center_square(255, 300);
    CHECK(c.x == 0 && c.y == 22 && c.w == 255 && c.h == 255, "centre tall");
}

/* The flip, on a photo red on the left and blue on the right: at scale 1 and
 * ratio 1 the crop is the whole S x S photo and the resize a copy, so the
 * sample is exactly the photo's Lab, mirrored or not. */
static void test_flip(void)
{
    enum { S = 24 };
    if (!mkdtemp(flipdir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    const char *path = tmp_path(flipdir, "lr.png");
    cz_image *img = cz_image_new(S, S, 3, 8);
    if (!img)
        return;
    uint8_t *p = img->data;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            uint8_t *q = p + ((size_t)y * S + (size_t)x) * 3;
            q[0] = (uint8_t)(x < S / 2 ? 220 - 4 * x : 20);
            q[1] = (uint8_t)(10 * y);
            q[2] = (uint8_t)(x < S / 2 ? 30 : 100 + 5 * x);
        }
    CHECK(cz_image_save(path, img, 95) == CZ_OK, "%s", cz_last_error());
    float refL[S * S], refa[S * S], refb[S * S];
    cz_image_to_lab_planes(img, refL, refa, refb);
    cz_image_free(img);

    /* A file name without "__" is from the source "". */
    cz_dataset *ds = NULL;
    CHECK(cz_dataset_open(flipdir, NULL, &ds) == CZ_OK, "%s", cz_last_error());
    if (ds) {
        CHECK(cz_dataset_source_count(ds) == 1 &&
                  cz_dataset_source(ds, 0).name[0] == '\0' &&
                  cz_dataset_source(ds, 0).files == 1,
              "unprefixed source");
        cz_dataset_free(ds);
    }

    cz_sample_options o;
    cz_sample_options_init(&o, S, true);
    o.scale_min = o.scale_max = 1.0f;
    o.ratio_min = o.ratio_max = 1.0f;
    cz_sample_scratch scratch = {0};
    float L[2][S * S], ab[2][2 * S * S];
    cz_sample_info info[2];
    for (int k = 0; k < 2; k++) {
        o.flip_p = (float)k; /* 0: never, 1: always */
        cz_rng rng;
        cz_rng_seed(&rng, 11);
        CHECK(cz_sample_make(path, &o, &rng, &scratch, L[k], ab[k],
                             &info[k]) == CZ_OK, "%s", cz_last_error());
        CHECK(info[k].flipped == (k == 1) && !info[k].gray &&
                  info[k].crop.w == S && info[k].crop.h == S,
              "info %d: flipped %d crop %dx%d", k, info[k].flipped,
              info[k].crop.w, info[k].crop.h);
    }
    int bad = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int i = y * S + x, m = y * S + (S - 1 - x);
            bad += L[0][i] != fminf(fmaxf(refL[i] / 50 - 1, -1), 1);
            bad += ab[0][i] != refa[i] / 110 || ab[0][S * S + i] != refb[i] / 110;
            bad += L[1][i] != L[0][m] || ab[1][i] != ab[0][m] ||
                   ab[1][S * S + i] != ab[0][S * S + m];
        }
    CHECK(bad == 0, "%d values differ from the photo's Lab or its mirror", bad);
    /* Red (b* > 0) is on the left and blue (b* < 0) on the right, until
     * flipped. */
    const float *b0 = ab[0] + S * S, *b1 = ab[1] + S * S;
    CHECK(b0[0] > 0.3f && b0[S - 1] < -0.3f && b1[0] < -0.3f && b1[S - 1] > 0.3f,
          "b* at the corners: %g %g, flipped %g %g", b0[0], b0[S - 1], b1[0],
          b1[S - 1]);

    /* With p = 0.5 about half the samples are mirrored. */
    cz_sample_options_init(&o, 8, true);
    int flipped = 0;
    enum { TRIES = 400 };
    for (int i = 0; i < TRIES; i++) {
        cz_rng rng;
        cz_data_rng(&rng, 3, CZ_DATA_STREAM_SAMPLE, 0, i);
        cz_sample_info in;
        cz_sample_make(path, &o, &rng, &scratch, L[0], ab[0], &in);
        flipped += in.flipped;
    }
    CHECK(abs(flipped - TRIES / 2) < 40, "%d of %d flipped", flipped, TRIES);
    cz_sample_scratch_free(&scratch);
    remove_tree(flipdir);
}

static void test_sample(void)
{
    enum { S = 16 };
    cz_sample_options o;
    cz_sample_options_init(&o, S, true);
    cz_sample_scratch scratch = {0};
    float L[S * S], ab[2 * S * S];
    cz_rng rng;
    cz_rng_seed(&rng, 1);
    cz_sample_info info;
    /* Grayscale stored as RGB: skipped, with its (small) chroma. */
    CHECK(cz_sample_make(tmp_path(tmpdir, "one/b__gray.jpg"), &o, &rng,
                         &scratch, L, ab, &info) == CZ_OK && info.gray &&
              info.chroma < 1.0f,
          "gray: %d %g", info.gray, info.chroma);
    /* One-channel files are gray without looking. */
    CHECK(cz_sample_make("tests/fixtures/images/gray.jpg", &o, &rng, &scratch,
                         L, ab, &info) == CZ_OK && info.gray && info.chroma == 0,
          "gray fixture: %s", cz_last_error());
    CHECK(cz_sample_make(tmp_path(tmpdir, "a__00.jpg"), &o, &rng, &scratch, L,
                         ab, &info) == CZ_OK && !info.gray && info.chroma > 5,
          "colour: %d %g", info.gray, info.chroma);
    CHECK(info.width == 40 && info.height == 30, "size %dx%d", info.width,
          info.height);
    cz_status st = cz_sample_make(tmp_path(tmpdir, "one/deep/a__bad.jpg"), &o,
                                  &rng, &scratch, L, ab, &info);
    CHECK(st == CZ_ERR_FORMAT && strstr(cz_last_error(), "a__bad.jpg"),
          "corrupt: %d %s", st, cz_last_error());
    /* Validation: the centred square, no flip, no randomness used. */
    o.augment = false;
    cz_rng before = rng;
    CHECK(cz_sample_make(tmp_path(tmpdir, "two/a__05.jpg"), &o, &rng, &scratch,
                         L, ab, &info) == CZ_OK, "%s", cz_last_error());
    CHECK(info.crop.x == 8 && info.crop.y == 0 && info.crop.w == 48 &&
              info.crop.h == 48 && !info.flipped,
          "val crop %d,%d %dx%d", info.crop.x, info.crop.y, info.crop.w,
          info.crop.h);
    CHECK(memcmp(&before, &rng, sizeof rng) == 0, "validation drew numbers");

    cz_sample_options_init(&o, S, true);
    o.scale_min = 0;
    CHECK(cz_sample_options_check(&o) == CZ_ERR_INVALID, "scale 0");
    cz_sample_options_init(&o, 0, true);
    CHECK(cz_sample_options_check(&o) == CZ_ERR_INVALID, "size 0");
    cz_sample_options_init(&o, S, true);
    o.flip_p = 1.5f;
    CHECK(cz_sample_options_check(&o) == CZ_ERR_INVALID, "flip 1.5");
    cz_sample_scratch_free(&scratch);

    CHECK(cz_data_default_size("unet") == 256 &&
              cz_data_default_size("resnet50-paper") == 224 &&
              cz_data_default_size("resnet50-unet") == 224,
          "default sizes");
}

/* ---- The loader ---------------------------------------------------------- */

enum { LS = 16, LN = 4, LEPOCHS = 4 };

typedef struct {
    int64_t epoch, index;
    int n;
    float L[LN * LS * LS], ab[LN * 2 * LS * LS];
    int files[LN];
} saved_batch;

/* Runs a loader for `count` batches into out; returns how many it got. */
static int run_loader(const cz_dataset *ds, int workers, int prefetch,
                      uint64_t seed, int64_t e0, int64_t b0, bool augment,
                      int batch, int count, saved_batch *out, char **log)
{
    cz_loader_options o;
    cz_loader_options_init(&o, batch, LS, augment);
    o.workers = workers;
    o.prefetch = prefetch;
    o.seed = seed;
    o.start_epoch = e0;
    o.start_batch = b0;
    size_t log_len = 0;
    o.log = open_memstream(log, &log_len);
    cz_loader *ld = NULL;
    int got = 0;
    if (cz_loader_open(ds, &o, &ld) != CZ_OK) {
        CHECK(0, "loader open: %s", cz_last_error());
        goto done;
    }
    for (; got < count; got++) {
        cz_batch b;
        if (cz_loader_next(ld, &b) != CZ_OK) {
            CHECK(0, "loader next: %s", cz_last_error());
            break;
        }
        saved_batch *s = &out[got];
        s->epoch = b.epoch;
        s->index = b.index;
        s->n = b.n;
        CHECK(b.size == LS, "size %d", b.size);
        memcpy(s->L, b.L, sizeof s->L);
        memcpy(s->ab, b.ab, sizeof s->ab);
        memcpy(s->files, b.files, (size_t)b.n * sizeof *b.files);
        CHECK(b.last == (b.index == cz_loader_batches_per_epoch(ld) - 1),
              "last flag");
    }
    cz_loader_stats st = cz_loader_get_stats(ld);
    CHECK(st.decoded >= (int64_t)got * batch,
          "decoded %lld", (long long)st.decoded);
done:
    cz_loader_free(ld);
    fclose(o.log);
    return got;
}

static int count_substr(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_loader(void)
{
    cz_dataset *ds = NULL;
    CHECK(cz_dataset_open(tmpdir, NULL, &ds) == CZ_OK, "%s", cz_last_error());
    if (!ds)
        return;
    const int per_epoch = (FILES_A + FILES_B) / LN; /* 3 */
    enum { COUNT = LEPOCHS * 3 };
    static saved_batch one[COUNT], three[COUNT], resumed[COUNT], other[COUNT];
    char *log1 = NULL, *log3 = NULL, *log_r = NULL, *log_o = NULL;
    int g1 = run_loader(ds, 1, 2, 42, 0, 0, true, LN, COUNT, one, &log1);
    int g3 = run_loader(ds, 3, 5, 42, 0, 0, true, LN, COUNT, three, &log3);
    CHECK(g1 == COUNT && g3 == COUNT, "got %d and %d batches", g1, g3);

    /* Messages: the grayscale and the corrupt photo, each once. */
    const char *logs[2] = {log1, log3};
    for (int k = 0; k < 2; k++) {
        CHECK(count_substr(logs[k], "b__gray.jpg") == 1 &&
                  strstr(logs[k], "grayscale"),
              "log %d: %s", k, logs[k]);
        CHECK(count_substr(logs[k], "a__bad.jpg") >= 1 &&
                  count_substr(logs[k], "skipping") == 2 &&
                  strstr(logs[k], "failed to decode"),
              "log %d: %s", k, logs[k]);
    }
    int gray = find_file(ds, "b__gray.jpg"), bad = find_file(ds, "a__bad.jpg");

    float lmin = 1, lmax = -1, abmax = 0;
    double ab_sum = 0;
    for (int i = 0; i < COUNT; i++) {
        CHECK(one[i].epoch == i / per_epoch && one[i].index == i % per_epoch &&
                  one[i].n == LN,
              "batch %d is (%lld, %lld)", i, (long long)one[i].epoch,
              (long long)one[i].index);
        CHECK(memcmp(&one[i], &three[i], sizeof one[i]) == 0,
              "batch %d differs between 1 and 3 workers", i);
        for (int j = 0; j < LN; j++)
            CHECK(one[i].files[j] != gray && one[i].files[j] != bad,
                  "batch %d holds an unusable photo", i);
        for (int k = 0; k < LN * LS * LS; k++) {
            lmin = fminf(lmin, one[i].L[k]);
            lmax = fmaxf(lmax, one[i].L[k]);
        }
        for (int k = 0; k < LN * 2 * LS * LS; k++) {
            abmax = fmaxf(abmax, fabsf(one[i].ab[k]));
            ab_sum += fabsf(one[i].ab[k]);
        }
    }
    CHECK(lmin >= -1 && lmax <= 1 && lmax - lmin > 0.5f, "L in [%g, %g]",
          lmin, lmax);
    CHECK(abmax <= 1 && abmax > 0.2f && ab_sum > 0, "|ab| up to %g", abmax);

    /* Every epoch's usable files follow its plan: a photo's slot is its plan
     * position, an unusable photo's slot goes to the next of the plan. */
    int plan[FILES_A + FILES_B];
    const int n = cz_dataset_count(ds);
    for (int e = 0; e < LEPOCHS; e++) {
        cz_dataset_plan(ds, true, 42, e, plan);
        for (int p = 0; p < per_epoch * LN; p++) {
            int k = 0;
            while (plan[(p + k) % n] == gray || plan[(p + k) % n] == bad)
                k++;
            const saved_batch *b = &one[e * per_epoch + p / LN];
            CHECK(b->files[p % LN] == plan[(p + k) % n],
                  "epoch %d position %d: file %d, plan says %d", e, p,
                  b->files[p % LN], plan[(p + k) % n]);
        }
    }
    /* And a sample is cz_sample_make with the rng of (seed, epoch, position). */
    {
        cz_sample_options so;
        cz_sample_options_init(&so, LS, true);
        cz_sample_scratch scratch = {0};
        float L[LS * LS], ab[2 * LS * LS];
        const saved_batch *b = &one[per_epoch + 1]; /* epoch 1, batch 1 */
        int j = 2, p = 1 * LN + j;
        cz_rng rng;
        cz_data_rng(&rng, 42, CZ_DATA_STREAM_SAMPLE, 1, p);
        CHECK(cz_sample_make(cz_dataset_path(ds, b->files[j]), &so, &rng,
                             &scratch, L, ab, NULL) == CZ_OK, "%s",
              cz_last_error());
        CHECK(memcmp(L, b->L + j * LS * LS, sizeof L) == 0 &&
                  memcmp(ab, b->ab + j * 2 * LS * LS, sizeof ab) == 0,
              "sample differs from a direct cz_sample_make");
        cz_sample_scratch_free(&scratch);
    }

    /* Resume at epoch 1, batch 2: the same batches as the run from 0. */
    const int from = 1 * per_epoch + 2, rest = COUNT - from;
    int gr = run_loader(ds, 2, 3, 42, 1, 2, true, LN, rest, resumed, &log_r);
    CHECK(gr == rest, "resumed run got %d", gr);
    for (int i = 0; i < gr; i++)
        CHECK(memcmp(&resumed[i], &one[from + i], sizeof one[0]) == 0,
              "resumed batch %d differs from batch %d", i, from + i);

    /* Another seed, other batches. */
    run_loader(ds, 2, 2, 43, 0, 0, true, LN, 3, other, &log_o);
    CHECK(memcmp(other[0].L, one[0].L, sizeof one[0].L) != 0,
          "seed 43 gives seed 42's batch");

    free(log1);
    free(log3);
    free(log_r);
    free(log_o);

    /* Option errors. */
    cz_loader *ld = NULL;
    cz_loader_options o;
    cz_loader_options_init(&o, 15, LS, true);
    CHECK(cz_loader_open(ds, &o, &ld) == CZ_ERR_INVALID && !ld,
          "a batch larger than the dataset");
    cz_loader_options_init(&o, 4, LS, true);
    o.workers = 0;
    CHECK(cz_loader_open(ds, &o, &ld) == CZ_ERR_INVALID, "no workers");
    cz_loader_options_init(&o, 4, LS, true);
    o.start_batch = per_epoch;
    CHECK(cz_loader_open(ds, &o, &ld) == CZ_ERR_INVALID, "batch past epoch");

    /* Freeing mid-epoch, with workers blocked on a full ring and busy. */
    for (int k = 0; k < 3; k++) {
        cz_loader_options_init(&o, 4, LS, true);
        o.workers = 3;
        o.log = tmpfile();
        CHECK(cz_loader_open(ds, &o, &ld) == CZ_OK, "%s", cz_last_error());
        cz_batch b;
        for (int i = 0; ld && i < k; i++)
            cz_loader_next(ld, &b);
        if (k == 2)
            usleep(20000);
        cz_loader_free(ld);
        ld = NULL;
        if (o.log)
            fclose(o.log);
    }
    cz_dataset_free(ds);
}

static void test_validation(void)
{
    cz_dataset *ds = NULL;
    CHECK(cz_dataset_open(tmpdir, NULL, &ds) == CZ_OK, "%s", cz_last_error());
    if (!ds)
        return;
    enum { VN = 5 };
    const int n = cz_dataset_count(ds); /* 14: batches of 5, 5, 4 */
    char *log = NULL;
    cz_loader_options o;
    cz_loader_options_init(&o, VN, LS, false);
    o.workers = 2;
    size_t log_len;
    o.log = open_memstream(&log, &log_len);
    cz_loader *ld = NULL;
    CHECK(cz_loader_open(ds, &o, &ld) == CZ_OK, "%s", cz_last_error());
    if (!ld) {
        fclose(o.log);
        free(log);
        cz_dataset_free(ds);
        return;
    }
    CHECK(cz_loader_batches_per_epoch(ld) == 3, "batches %lld",
          (long long)cz_loader_batches_per_epoch(ld));
    int gray = find_file(ds, "b__gray.jpg"), bad = find_file(ds, "a__bad.jpg");
    const size_t SS = LS * LS;
    float *first_pass = malloc((size_t)VN * 3 * SS * sizeof(float) * 3);
    for (int i = 0; i < 6 && first_pass; i++) {
        cz_batch b;
        if (cz_loader_next(ld, &b) != CZ_OK) {
            CHECK(0, "%s", cz_last_error());
            break;
        }
        int expect_n = i % 3 == 2 ? n - 2 * VN : VN;
        CHECK(b.n == expect_n && b.index == i % 3 && b.epoch == i / 3 &&
                  b.last == (i % 3 == 2),
              "val batch %d: n %d index %lld", i, b.n, (long long)b.index);
        for (int j = 0; j < b.n; j++) {
            int p = (i % 3) * VN + j, f = p;
            while (f == gray || f == bad)
                f = (f + 1) % n;
            CHECK(b.files[j] == f, "val position %d: file %d, expected %d", p,
                  b.files[j], f);
        }
        /* Zeroed tail. */
        int nonzero = 0;
        for (size_t k = (size_t)b.n * SS; k < VN * SS; k++)
            nonzero += b.L[k] != 0;
        for (size_t k = (size_t)b.n * 2 * SS; k < VN * 2 * SS; k++)
            nonzero += b.ab[k] != 0;
        CHECK(nonzero == 0, "val tail: %d non-zero values", nonzero);
        /* Every pass is the same. */
        float *keep = first_pass + (size_t)(i % 3) * VN * 3 * SS;
        if (i < 3) {
            memcpy(keep, b.L, VN * SS * sizeof(float));
            memcpy(keep + VN * SS, b.ab, VN * 2 * SS * sizeof(float));
        } else {
            CHECK(memcmp(keep, b.L, VN * SS * sizeof(float)) == 0 &&
                      memcmp(keep + VN * SS, b.ab,
                             VN * 2 * SS * sizeof(float)) == 0,
                  "validation pass 2 batch %d differs", i % 3);
        }
    }
    free(first_pass);
    cz_loader_stats st = cz_loader_get_stats(ld);
    CHECK(st.gray_skipped == 1 && st.failed == 1, "stats: %d gray, %d failed",
          st.gray_skipped, st.failed);
    cz_loader_free(ld);
    fclose(o.log);
    free(log);
    cz_dataset_free(ds);
}

/* A folder with no usable photo: the loader stops with an error naming the
 * folder, and can still be freed. */
static void test_nothing_usable(void)
{
    char dir[] = "/tmp/cz_test_data_bad_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    int ok = write_gray_rgb(tmp_path(dir, "x__gray.jpg"), 20, 20);
    const unsigned char bad[] = {0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3};
    ok &= write_bytes(tmp_path(dir, "x__bad.jpg"), bad, sizeof bad);
    CHECK(ok, "cannot write %s", dir);
    cz_dataset *ds = NULL;
    CHECK(cz_dataset_open(dir, NULL, &ds) == CZ_OK, "%s", cz_last_error());
    if (ds) {
        cz_loader_options o;
        cz_loader_options_init(&o, 1, 8, true);
        o.log = tmpfile();
        cz_loader *ld = NULL;
        CHECK(cz_loader_open(ds, &o, &ld) == CZ_OK, "%s", cz_last_error());
        cz_batch b;
        CHECK(ld && cz_loader_next(ld, &b) == CZ_ERR_INVALID &&
                  strstr(cz_last_error(), dir) &&
                  strstr(cz_last_error(), "no photo"),
              "error: %s", cz_last_error());
        CHECK(ld && cz_loader_next(ld, &b) == CZ_ERR_INVALID, "error again");
        cz_loader_free(ld);
        if (o.log)
            fclose(o.log);
        cz_dataset_free(ds);
    }
    remove_tree(dir);
}

/* ---- The real training folder -------------------------------------------- */

static void test_train_folder(void)
{
    struct stat st;
    if (stat(TRAIN_DIR, &st) != 0) {
        printf("note: %s is absent; its scan is not checked\n", TRAIN_DIR);
        return;
    }
    static const struct {
        const char *name;
        int files;
    } expect[] = {
        {"bsds500", 300},  {"clothing", 1496},       {"debian", 69},
        {"ilsvrc-val-227", 1274}, {"imagen", 635},  {"imagenet-sample", 921},
        {"mcmaster", 18},  {"set5-14", 17},
    };
    cz_source_weight w = {"clothing", 0.3};
    cz_dataset_options o = {&w, 1};
    cz_dataset *ds = NULL;
    CHECK(cz_dataset_open(TRAIN_DIR, &o, &ds) == CZ_OK, "%s", cz_last_error());
    if (!ds)
        return;
    CHECK(cz_dataset_count(ds) == TRAIN_FILES && cz_dataset_skipped(ds) == 0,
          "train: %d files, %d skipped", cz_dataset_count(ds),
          cz_dataset_skipped(ds));
    int n_expect = (int)(sizeof expect / sizeof expect[0]);
    CHECK(cz_dataset_source_count(ds) == n_expect, "%d sources",
          cz_dataset_source_count(ds));
    for (int s = 0; s < n_expect && s < cz_dataset_source_count(ds); s++) {
        cz_source_info si = cz_dataset_source(ds, s);
        CHECK(strcmp(si.name, expect[s].name) == 0 &&
                  si.files == expect[s].files,
              "source %d: %s %d, expected %s %d", s, si.name, si.files,
              expect[s].name, expect[s].files);
    }
    CHECK(cz_dataset_weighted(ds) &&
              cz_dataset_source(ds, 1).weight == 0.3,
          "clothing weight");
    cz_dataset_report(ds, stdout);

    /* Two batches at 224, to see real photos through the whole pipeline. */
    cz_loader_options lo;
    cz_loader_options_init(&lo, 4, CZ_DATA_SIZE_RESNET, true);
    lo.seed = 1;
    cz_loader *ld = NULL;
    CHECK(cz_loader_open(ds, &lo, &ld) == CZ_OK, "%s", cz_last_error());
    for (int i = 0; ld && i < 2; i++) {
        cz_batch b;
        CHECK(cz_loader_next(ld, &b) == CZ_OK, "%s", cz_last_error());
    }
    cz_loader_stats s = cz_loader_get_stats(ld);
    CHECK(s.gray_skipped == 0 && s.failed == 0, "real photos skipped");
    cz_loader_free(ld);
    cz_dataset_free(ds);
}

/* Decode rates on the training folder (COLORIZE_DATA_BENCH=1). */
static void bench_train_folder(void)
{
    cz_dataset *ds = NULL;
    if (cz_dataset_open(TRAIN_DIR, NULL, &ds) != CZ_OK) {
        printf("bench: %s\n", cz_last_error());
        return;
    }
    enum { BN = 16, BATCHES = 60 };
    printf("bench: %s, batches of %d, %d batches after 2 warm-up ones\n",
           TRAIN_DIR, BN, BATCHES);
    const int sizes[2] = {CZ_DATA_SIZE_RESNET, CZ_DATA_SIZE_UNET};
    for (int si = 0; si < 2; si++)
        for (int workers = 1; workers <= 2; workers++) {
            cz_loader_options o;
            cz_loader_options_init(&o, BN, sizes[si], true);
            o.workers = workers;
            cz_loader *ld = NULL;
            if (cz_loader_open(ds, &o, &ld) != CZ_OK)
                break;
            cz_batch b;
            for (int i = 0; i < 2; i++)
                cz_loader_next(ld, &b);
            cz_loader_stats s0 = cz_loader_get_stats(ld);
            for (int i = 0; i < BATCHES; i++)
                cz_loader_next(ld, &b);
            cz_loader_stats s1 = cz_loader_get_stats(ld);
            double images = (double)(s1.decoded - s0.decoded);
            printf("bench: size %d, %d worker%s: %.0f images/s, %.0f images "
                   "per worker CPU second, consumer waited %.0f%%\n",
                   sizes[si], workers, workers > 1 ? "s" : "",
                   (double)BATCHES * BN / (s1.seconds - s0.seconds),
                   images / (s1.worker_cpu_s - s0.worker_cpu_s),
                   100 * (s1.wait_s - s0.wait_s) / (s1.seconds - s0.seconds));
            cz_loader_free(ld);
        }
    cz_dataset_free(ds);
}

int main(void)
{
    if (!make_folder()) {
        fprintf(stderr, "cannot make the test folder in %s\n", tmpdir);
        return EXIT_FAILURE;
    }
    test_scan();
    test_weights_parse();
    test_weights();
    test_shuffle_plan();
    test_crops();
    test_flip();
    test_sample();
    test_loader();
    test_validation();
    test_nothing_usable();
    test_train_folder();
    const char *bench = getenv("COLORIZE_DATA_BENCH");
    if (bench && strcmp(bench, "1") == 0)
        bench_train_folder();
    remove_tree(tmpdir);
    return check_finish("test_data");
}
