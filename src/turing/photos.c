/* Loading, pairing and rendering the photos of a Turing test. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/rng.h"
#include "image/image.h"
#include "image/lab.h"
#include "turing/photos.h"

/* JPEG quality of the served images: high enough that compression artefacts
 * do not give either side away, and the same for both sides. */
#define SERVE_JPEG_QUALITY 92

/* Vigilance hue rotation, degrees: drawn uniformly from this range so the
 * recoloured photo is obviously wrong (a rotation near 0 would be a fair
 * colourisation, not a catch trial). */
#define VIGILANCE_MIN_DEG 90.0
#define VIGILANCE_MAX_DEG 270.0

/* Mean a*b* chroma below which a photo is too gray for a hue rotation to
 * show; such photos are never used for vigilance trials. */
#define VIGILANCE_MIN_CHROMA 8.0

#define PI 3.14159265358979323846

typedef struct {
    char *stem; /* file name without extension */
    char *path;
} entry;

static int entry_cmp(const void *x, const void *y)
{
    return strcmp(((const entry *)x)->stem, ((const entry *)y)->stem);
}

static void entries_free(entry *e, int n)
{
    for (int i = 0; e && i < n; i++) {
        free(e[i].stem);
        free(e[i].path);
    }
    free(e);
}

/* The photos of a folder, sorted by stem: regular files whose first bytes
 * are JPEG or PNG, hidden files skipped. */
static cz_status list_folder(const char *dir, entry **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return cz_fail(CZ_ERR_IO, "%s: cannot open folder: %s", dir,
                       strerror(errno));
    cz_status status = CZ_OK;
    entry *e = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + 1 + strlen(de->d_name) + 1;
        char *path = malloc(len);
        if (!path) {
            status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", dir);
            goto cleanup;
        }
        snprintf(path, len, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
            !cz_image_is_supported_path(path)) {
            free(path);
            continue;
        }
        if (n == CZ_TURING_MAX_PHOTOS) {
            free(path);
            status = cz_fail(CZ_ERR_TOO_LARGE,
                             "%s: more than %d photos; pick a subset", dir,
                             CZ_TURING_MAX_PHOTOS);
            goto cleanup;
        }
        if (n == cap) {
            int ncap = cap ? 2 * cap : 64;
            entry *ne = realloc(e, (size_t)ncap * sizeof *ne);
            if (!ne) {
                free(path);
                status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", dir);
                goto cleanup;
            }
            e = ne;
            cap = ncap;
        }
        const char *dot = strrchr(de->d_name, '.');
        size_t stem_len = dot ? (size_t)(dot - de->d_name) : strlen(de->d_name);
        char *stem = strndup(de->d_name, stem_len);
        if (!stem) {
            free(path);
            status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", dir);
            goto cleanup;
        }
        e[n].stem = stem;
        e[n].path = path;
        n++;
    }
    if (n == 0) {
        status = cz_fail(CZ_ERR_INVALID, "%s: no JPEG or PNG photo", dir);
        goto cleanup;
    }
    qsort(e, (size_t)n, sizeof *e, entry_cmp);
    for (int i = 1; i < n; i++)
        if (strcmp(e[i - 1].stem, e[i].stem) == 0) {
            status = cz_fail(CZ_ERR_INVALID,
                             "%s and %s: two photos with the same name",
                             e[i - 1].path, e[i].path);
            goto cleanup;
        }

cleanup:
    closedir(d);
    if (status != CZ_OK) {
        entries_free(e, n);
        return status;
    }
    *out = e;
    *n_out = n;
    return CZ_OK;
}

/* Loads path and fills the L*, a*, b* planes (SIDE x SIDE each) of its
 * centred square resized to SIDE x SIDE. */
static cz_status render_planes(const char *path, float *L, float *a, float *b)
{
    enum { SIDE = CZ_TURING_SIDE };
    cz_image *img = NULL, *sq = NULL;
    float *planes = NULL;
    cz_status status = cz_image_load(path, NULL, &img);
    if (status != CZ_OK)
        return status;
    int side = img->width < img->height ? img->width : img->height;
    int x0 = (img->width - side) / 2, y0 = (img->height - side) / 2;
    sq = cz_image_new(side, side, img->channels, img->depth);
    if (!sq) {
        status = CZ_ERR_NOMEM;
        goto cleanup;
    }
    size_t pix = (size_t)img->channels * (size_t)(img->depth / 8);
    for (int y = 0; y < side; y++)
        memcpy((unsigned char *)sq->data + (size_t)y * side * pix,
               (unsigned char *)img->data +
                   ((size_t)(y0 + y) * img->width + x0) * pix,
               (size_t)side * pix);
    size_t n = (size_t)side * (size_t)side;
    planes = malloc(3 * n * sizeof *planes);
    if (!planes) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    status = cz_image_to_lab_planes(sq, planes, planes + n, planes + 2 * n);
    if (status != CZ_OK)
        goto cleanup;
    float *dst[3] = {L, a, b};
    for (int c = 0; c < 3 && status == CZ_OK; c++)
        status = cz_resize_bilinear_f32(planes + (size_t)c * n, side, side,
                                        dst[c], SIDE, SIDE);

cleanup:
    cz_image_free(img);
    cz_image_free(sq);
    free(planes);
    return status;
}

/* Encodes the planes as a JPEG in memory, through a file in tmpdir (the
 * image library writes files; the file is removed at once). */
static cz_status encode(const char *tmpdir, const float *L, const float *a,
                        const float *b, cz_turing_blob *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/render.jpg", tmpdir);
    cz_image *img = cz_image_new(CZ_TURING_SIDE, CZ_TURING_SIDE, 3, 8);
    if (!img)
        return CZ_ERR_NOMEM;
    cz_status status = cz_lab_planes_to_image(L, a, b, img);
    if (status == CZ_OK)
        status = cz_image_save(path, img, SERVE_JPEG_QUALITY);
    cz_image_free(img);
    if (status != CZ_OK)
        return status;
    FILE *f = fopen(path, "rb");
    if (!f) {
        status = cz_fail(CZ_ERR_IO, "%s: cannot reopen: %s", path,
                         strerror(errno));
        goto done;
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        status = cz_fail(CZ_ERR_IO, "%s: cannot size", path);
        goto done;
    }
    out->data = malloc((size_t)size);
    if (!out->data) {
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(out->data, 1, (size_t)size, f) != (size_t)size) {
        free(out->data);
        out->data = NULL;
        status = cz_fail(CZ_ERR_IO, "%s: short read", path);
        goto done;
    }
    out->size = (size_t)size;

done:
    if (f)
        fclose(f);
    unlink(path);
    return status;
}

static double mean_chroma(const float *a, const float *b, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += sqrt((double)a[i] * a[i] + (double)b[i] * b[i]);
    return sum / (double)n;
}

/* Rotates every (a*, b*) by deg degrees in place. */
static void rotate_hue(float *a, float *b, size_t n, double deg)
{
    double c = cos(deg * PI / 180.0), s = sin(deg * PI / 180.0);
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        a[i] = (float)(c * x - s * y);
        b[i] = (float)(s * x + c * y);
    }
}

static int valid_method_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CZ_TURING_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

void cz_turing_photos_free(cz_turing_photos *ph)
{
    if (!ph)
        return;
    for (int i = 0; i < ph->n; i++) {
        if (ph->names)
            free(ph->names[i]);
        if (ph->real)
            free(ph->real[i].data);
        if (ph->vigilance)
            free(ph->vigilance[i].data);
    }
    for (int m = 0; m < ph->n_methods; m++) {
        if (ph->method_names)
            free(ph->method_names[m]);
        for (int i = 0; ph->method && i < ph->n; i++)
            free(ph->method[(size_t)m * ph->n + i].data);
    }
    free(ph->names);
    free(ph->real);
    free(ph->vigilance);
    free(ph->colourful);
    free(ph->method_names);
    free(ph->method);
    free(ph->method_count);
    free(ph);
}

cz_status cz_turing_photos_load(const char *real_dir,
                                const cz_turing_method *methods,
                                int n_methods, uint64_t seed,
                                cz_turing_photos **out)
{
    enum { N = CZ_TURING_SIDE * CZ_TURING_SIDE };
    *out = NULL;
    if (!real_dir)
        return cz_fail(CZ_ERR_INVALID, "no folder of real photos given");
    if (n_methods < 1 || n_methods > CZ_TURING_MAX_METHODS)
        return cz_fail(CZ_ERR_INVALID, "between 1 and %d methods are needed",
                       CZ_TURING_MAX_METHODS);
    for (int m = 0; m < n_methods; m++) {
        if (!methods[m].name || !valid_method_name(methods[m].name))
            return cz_fail(CZ_ERR_INVALID,
                           "method name '%s': use 1 to %d letters, digits, "
                           "'_', '-' or '.'",
                           methods[m].name ? methods[m].name : "",
                           CZ_TURING_MAX_NAME);
        if (!methods[m].dir)
            return cz_fail(CZ_ERR_INVALID, "method %s: no folder",
                           methods[m].name);
        for (int k = 0; k < m; k++)
            if (strcmp(methods[k].name, methods[m].name) == 0)
                return cz_fail(CZ_ERR_INVALID, "method %s given twice",
                               methods[m].name);
    }

    cz_status status = CZ_OK;
    entry *real = NULL, *got = NULL;
    int n_real = 0, n_got = 0;
    float *planes = NULL;
    char tmpdir[4096] = "";
    cz_turing_photos *ph = calloc(1, sizeof *ph);
    if (!ph)
        return cz_fail(CZ_ERR_NOMEM, "out of memory");

    status = list_folder(real_dir, &real, &n_real);
    if (status != CZ_OK)
        goto cleanup;
    const char *tmp = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/cz-turing-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpdir)) {
        status = cz_fail(CZ_ERR_IO, "%s: cannot create: %s", tmpdir,
                         strerror(errno));
        tmpdir[0] = '\0';
        goto cleanup;
    }
    ph->n = n_real;
    ph->n_methods = n_methods;
    ph->names = calloc((size_t)n_real, sizeof *ph->names);
    ph->real = calloc((size_t)n_real, sizeof *ph->real);
    ph->vigilance = calloc((size_t)n_real, sizeof *ph->vigilance);
    ph->colourful = calloc((size_t)n_real, 1);
    ph->method_names = calloc((size_t)n_methods, sizeof *ph->method_names);
    ph->method = calloc((size_t)n_methods * (size_t)n_real, sizeof *ph->method);
    ph->method_count = calloc((size_t)n_methods, sizeof *ph->method_count);
    planes = malloc(3 * (size_t)N * sizeof *planes);
    if (!ph->names || !ph->real || !ph->vigilance || !ph->colourful ||
        !ph->method_names || !ph->method || !ph->method_count || !planes) {
        status = cz_fail(CZ_ERR_NOMEM, "out of memory for %d photos", n_real);
        goto cleanup;
    }
    float *L = planes, *a = planes + N, *b = planes + 2 * N;

    cz_rng rng;
    cz_rng_seed(&rng, seed);
    for (int i = 0; i < n_real; i++) {
        ph->names[i] = real[i].stem;
        real[i].stem = NULL;
        status = render_planes(real[i].path, L, a, b);
        if (status == CZ_OK)
            status = encode(tmpdir, L, a, b, &ph->real[i]);
        if (status != CZ_OK)
            goto cleanup;
        ph->colourful[i] = mean_chroma(a, b, N) >= VIGILANCE_MIN_CHROMA;
        double deg = VIGILANCE_MIN_DEG + (VIGILANCE_MAX_DEG - VIGILANCE_MIN_DEG) *
                                             (double)cz_rng_uniform(&rng);
        rotate_hue(a, b, N, deg);
        status = encode(tmpdir, L, a, b, &ph->vigilance[i]);
        if (status != CZ_OK)
            goto cleanup;
    }

    for (int m = 0; m < n_methods; m++) {
        ph->method_names[m] = strdup(methods[m].name);
        if (!ph->method_names[m]) {
            status = cz_fail(CZ_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        status = list_folder(methods[m].dir, &got, &n_got);
        if (status != CZ_OK)
            goto cleanup;
        for (int j = 0; j < n_got; j++) {
            int i = cz_turing_photos_find(ph, got[j].stem);
            if (i < 0)
                continue; /* no real photo to compare it with */
            status = render_planes(got[j].path, L, a, b);
            if (status == CZ_OK)
                status = encode(tmpdir, L, a, b,
                                &ph->method[(size_t)m * n_real + i]);
            if (status != CZ_OK)
                goto cleanup;
            ph->method_count[m]++;
        }
        entries_free(got, n_got);
        got = NULL;
        n_got = 0;
        if (ph->method_count[m] == 0) {
            status = cz_fail(CZ_ERR_INVALID,
                             "method %s: no photo in %s has the name of one "
                             "in %s",
                             methods[m].name, methods[m].dir, real_dir);
            goto cleanup;
        }
    }

cleanup:
    entries_free(real, n_real);
    entries_free(got, n_got);
    free(planes);
    if (tmpdir[0])
        rmdir(tmpdir);
    if (status != CZ_OK) {
        cz_turing_photos_free(ph);
        return status;
    }
    *out = ph;
    return CZ_OK;
}

int cz_turing_photos_find(const cz_turing_photos *ph, const char *name)
{
    int lo = 0, hi = ph->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(ph->names[mid], name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int cz_turing_photos_method(const cz_turing_photos *ph, const char *name)
{
    for (int m = 0; m < ph->n_methods; m++)
        if (strcmp(ph->method_names[m], name) == 0)
            return m;
    return -1;
}
