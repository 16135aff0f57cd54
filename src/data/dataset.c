/* A dataset: the recursive scan, sources and their weights, epoch plans. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "data/dataset.h"
#include "image/image.h"

/* Folders deeper than this are refused: real photo trees are a few levels
 * deep, and the limit bounds the recursion. */
enum { SCAN_MAX_DEPTH = 64 };

/* The separator between a file name's source and the rest of it. */
#define SOURCE_SEPARATOR "__"

typedef struct {
    char *name;
    int files;     /* found by the scan */
    double weight;
    int *members;  /* indices (into the files in use) of its files */
    int n_members; /* files in use: `files` if weight > 0, else 0 */
} source;

struct cz_dataset {
    char *dir;
    char **paths;      /* files in use, sorted */
    int *source_of;    /* per file in use */
    int count;
    source *sources;   /* sorted by name */
    int n_sources;
    int skipped;       /* non-image files */
    bool weighted;     /* sources in use differ in weight */
    double *cumulative; /* per source: running sum of weight x files in use */
};

/* ---- Scan ---------------------------------------------------------------- */

typedef struct {
    char **paths;
    int n, cap;
    int skipped;
} path_list;

static void path_list_clear(path_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

static cz_status path_list_add(path_list *l, char *path)
{
    if (l->n == l->cap) {
        if (l->cap > INT32_MAX / 2) {
            free(path);
            return cz_fail(CZ_ERR_TOO_LARGE, "dataset: too many files");
        }
        int cap = l->cap ? 2 * l->cap : 256;
        char **p = realloc(l->paths, (size_t)cap * sizeof *p);
        if (!p) {
            free(path);
            return cz_fail(CZ_ERR_NOMEM, "dataset: out of memory");
        }
        l->paths = p;
        l->cap = cap;
    }
    l->paths[l->n++] = path;
    return CZ_OK;
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + slash + b + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (slash)
        p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

static cz_status scan_dir(const char *dir, int depth, path_list *out)
{
    if (depth > SCAN_MAX_DEPTH)
        return cz_fail(CZ_ERR_TOO_LARGE,
                       "%s: folders nested more than %d deep", dir,
                       SCAN_MAX_DEPTH);
    DIR *d = opendir(dir);
    if (!d)
        return cz_fail(CZ_ERR_IO, "%s: cannot open folder: %s", dir,
                       strerror(errno));
    cz_status status = CZ_OK;
    struct dirent *e;
    for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", and hidden files and folders */
        char *path = join_path(dir, e->d_name);
        if (!path) {
            status = cz_fail(CZ_ERR_NOMEM, "dataset: out of memory");
            break;
        }
        struct stat st;
        if (lstat(path, &st) != 0) {
            status = cz_fail(CZ_ERR_IO, "%s: cannot stat: %s", path,
                             strerror(errno));
            free(path);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            status = scan_dir(path, depth + 1, out);
            free(path);
            if (status != CZ_OK)
                break;
            continue;
        }
        /* A link counts as what it points to, except a folder (loops). */
        if (S_ISLNK(st.st_mode) && stat(path, &st) != 0) {
            free(path);
            continue; /* dangling */
        }
        if (!S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (cz_image_sniff(path) == CZ_IMAGE_UNKNOWN) {
            out->skipped++;
            free(path);
            continue;
        }
        status = path_list_add(out, path);
        if (status != CZ_OK)
            break;
    }
    if (status == CZ_OK && errno != 0)
        status = cz_fail(CZ_ERR_IO, "%s: cannot read folder: %s", dir,
                         strerror(errno));
    closedir(d);
    if (status == CZ_OK)
        cz_error_clear(); /* sniff's complaints about skipped files */
    return status;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The source of a path: its base name up to the first separator. */
static void source_name(const char *path, const char **name, size_t *len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *sep = strstr(base, SOURCE_SEPARATOR);
    *name = base;
    *len = sep ? (size_t)(sep - base) : 0;
}

/* ---- Weights ------------------------------------------------------------- */

cz_status cz_source_weight_parse(const char *spec, cz_source_weight *out)
{
    if (!spec || !out)
        return cz_fail(CZ_ERR_INVALID, "cz_source_weight_parse: NULL argument");
    const char *eq = strrchr(spec, '=');
    if (!eq)
        return cz_fail(CZ_ERR_INVALID,
                       "source weight '%s': expected NAME=WEIGHT", spec);
    size_t len = (size_t)(eq - spec);
    if (len >= CZ_SOURCE_NAME_MAX)
        return cz_fail(CZ_ERR_INVALID,
                       "source weight '%s': name longer than %d bytes", spec,
                       CZ_SOURCE_NAME_MAX - 1);
    char *end;
    errno = 0;
    double w = strtod(eq + 1, &end);
    if (eq[1] == '\0' || *end != '\0' || errno != 0 || !isfinite(w) || w < 0)
        return cz_fail(CZ_ERR_INVALID,
                       "source weight '%s': weight must be a number >= 0",
                       spec);
    memcpy(out->name, spec, len);
    out->name[len] = '\0';
    out->weight = w;
    return CZ_OK;
}

/* The sources' names, comma-separated, for messages. */
static void list_sources(const cz_dataset *ds, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int s = 0; s < ds->n_sources && used < cap; s++) {
        int n = snprintf(buf + used, cap - used, "%s%s", s ? ", " : "",
                         ds->sources[s].name[0] ? ds->sources[s].name
                                                : "(no prefix)");
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static cz_status apply_weights(cz_dataset *ds, const cz_dataset_options *opt)
{
    if (!opt || opt->n_weights == 0)
        return CZ_OK;
    if (opt->n_weights < 0 || !opt->weights)
        return cz_fail(CZ_ERR_INVALID, "dataset: invalid weight list");
    for (int i = 0; i < opt->n_weights; i++) {
        const cz_source_weight *w = &opt->weights[i];
        if (memchr(w->name, '\0', CZ_SOURCE_NAME_MAX) == NULL)
            return cz_fail(CZ_ERR_INVALID, "source weight: name too long");
        if (!isfinite(w->weight) || w->weight < 0)
            return cz_fail(CZ_ERR_INVALID,
                           "source weight for '%s': %g is not a number >= 0",
                           w->name, w->weight);
        for (int j = 0; j < i; j++)
            if (strcmp(opt->weights[j].name, w->name) == 0)
                return cz_fail(CZ_ERR_INVALID,
                               "source '%s' is given a weight twice", w->name);
        int s = 0;
        while (s < ds->n_sources && strcmp(ds->sources[s].name, w->name) != 0)
            s++;
        if (s == ds->n_sources) {
            char names[512];
            list_sources(ds, names, sizeof names);
            return cz_fail(CZ_ERR_INVALID,
                           "source weight: %s has no source '%s' (its "
                           "sources: %s)", ds->dir, w->name, names);
        }
        ds->sources[s].weight = w->weight;
    }
    return CZ_OK;
}

/* ---- Open ---------------------------------------------------------------- */

static int find_or_add_source(cz_dataset *ds, const char *name, size_t len,
                              int *cap)
{
    for (int s = 0; s < ds->n_sources; s++)
        if (strlen(ds->sources[s].name) == len &&
            memcmp(ds->sources[s].name, name, len) == 0)
            return s;
    if (ds->n_sources == *cap) {
        int c = *cap ? 2 * *cap : 8;
        source *p = realloc(ds->sources, (size_t)c * sizeof *p);
        if (!p)
            return -1;
        ds->sources = p;
        *cap = c;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, name, len);
    copy[len] = '\0';
    ds->sources[ds->n_sources] = (source){.name = copy, .weight = 1.0};
    return ds->n_sources++;
}

static int compare_sources(const void *a, const void *b)
{
    return strcmp(((const source *)a)->name, ((const source *)b)->name);
}

void cz_dataset_free(cz_dataset *ds)
{
    if (!ds)
        return;
    for (int i = 0; i < ds->count; i++)
        free(ds->paths[i]);
    free(ds->paths);
    free(ds->source_of);
    for (int s = 0; s < ds->n_sources; s++) {
        free(ds->sources[s].name);
        free(ds->sources[s].members);
    }
    free(ds->sources);
    free(ds->cumulative);
    free(ds->dir);
    free(ds);
}

/* Sources, their weights, and the files in use, from the sorted scan. */
static cz_status build(cz_dataset *ds, path_list *scan,
                       const cz_dataset_options *opt)
{
    int cap = 0;
    for (int i = 0; i < scan->n; i++) {
        const char *name;
        size_t len;
        source_name(scan->paths[i], &name, &len);
        int s = find_or_add_source(ds, name, len, &cap);
        if (s < 0)
            return cz_fail(CZ_ERR_NOMEM, "dataset: out of memory");
        ds->sources[s].files++;
    }
    qsort(ds->sources, (size_t)ds->n_sources, sizeof *ds->sources,
          compare_sources);
    cz_status status = apply_weights(ds, opt);
    if (status != CZ_OK)
        return status;

    ds->paths = malloc((size_t)scan->n * sizeof *ds->paths);
    ds->source_of = malloc((size_t)scan->n * sizeof *ds->source_of);
    ds->cumulative = malloc((size_t)ds->n_sources * sizeof *ds->cumulative);
    if (!ds->paths || !ds->source_of || !ds->cumulative)
        return cz_fail(CZ_ERR_NOMEM, "dataset: out of memory");
    for (int s = 0; s < ds->n_sources; s++) {
        source *src = &ds->sources[s];
        if (src->weight > 0) {
            src->members = malloc((size_t)src->files * sizeof *src->members);
            if (!src->members)
                return cz_fail(CZ_ERR_NOMEM, "dataset: out of memory");
        }
    }
    /* Move the paths of sources in use over, in path order. */
    for (int i = 0; i < scan->n; i++) {
        const char *name;
        size_t len;
        source_name(scan->paths[i], &name, &len);
        int s = 0;
        while (strlen(ds->sources[s].name) != len ||
               memcmp(ds->sources[s].name, name, len) != 0)
            s++;
        source *src = &ds->sources[s];
        if (src->weight == 0)
            continue;
        src->members[src->n_members++] = ds->count;
        ds->source_of[ds->count] = s;
        ds->paths[ds->count++] = scan->paths[i];
        scan->paths[i] = NULL;
    }
    if (ds->count == 0)
        return cz_fail(CZ_ERR_INVALID,
                       "%s: every source has weight 0; no photo is left",
                       ds->dir);

    double total = 0, first = -1;
    ds->weighted = false;
    for (int s = 0; s < ds->n_sources; s++) {
        const source *src = &ds->sources[s];
        if (src->n_members > 0) {
            if (first < 0)
                first = src->weight;
            else if (src->weight != first)
                ds->weighted = true;
        }
        total += src->weight * src->n_members;
        ds->cumulative[s] = total;
    }
    return CZ_OK;
}

cz_status cz_dataset_open(const char *dir, const cz_dataset_options *opt,
                          cz_dataset **out)
{
    if (!out)
        return cz_fail(CZ_ERR_INVALID, "cz_dataset_open: out is NULL");
    *out = NULL;
    if (!dir)
        return cz_fail(CZ_ERR_INVALID, "cz_dataset_open: dir is NULL");
    path_list scan = {0};
    cz_status status = CZ_OK;
    cz_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->dir = strdup(dir))) {
        status = cz_fail(CZ_ERR_NOMEM, "dataset: out of memory");
        goto cleanup;
    }
    status = scan_dir(dir, 0, &scan);
    if (status != CZ_OK)
        goto cleanup;
    ds->skipped = scan.skipped;
    if (scan.n == 0) {
        status = cz_fail(CZ_ERR_INVALID,
                         "%s: no JPEG or PNG file in it or below it", dir);
        goto cleanup;
    }
    qsort(scan.paths, (size_t)scan.n, sizeof *scan.paths, compare_strings);
    status = build(ds, &scan, opt);

cleanup:
    path_list_clear(&scan);
    if (status != CZ_OK) {
        cz_dataset_free(ds);
        return status;
    }
    *out = ds;
    return CZ_OK;
}

/* ---- Queries ------------------------------------------------------------- */

const char *cz_dataset_dir(const cz_dataset *ds) { return ds->dir; }
int cz_dataset_count(const cz_dataset *ds) { return ds->count; }
int cz_dataset_skipped(const cz_dataset *ds) { return ds->skipped; }
int cz_dataset_source_count(const cz_dataset *ds) { return ds->n_sources; }
bool cz_dataset_weighted(const cz_dataset *ds) { return ds->weighted; }

const char *cz_dataset_path(const cz_dataset *ds, int index)
{
    return index >= 0 && index < ds->count ? ds->paths[index] : NULL;
}

int cz_dataset_source_of(const cz_dataset *ds, int index)
{
    return index >= 0 && index < ds->count ? ds->source_of[index] : -1;
}

cz_source_info cz_dataset_source(const cz_dataset *ds, int s)
{
    if (s < 0 || s >= ds->n_sources)
        return (cz_source_info){0};
    const source *src = &ds->sources[s];
    return (cz_source_info){src->name, src->files, src->weight};
}

void cz_dataset_report(const cz_dataset *ds, FILE *out)
{
    double total = ds->cumulative[ds->n_sources - 1];
    fprintf(out, "%s: %d photos in use", ds->dir, ds->count);
    if (ds->skipped)
        fprintf(out, ", %d other files skipped", ds->skipped);
    fprintf(out, "; %s\n", ds->weighted ? "weighted draws with replacement"
                                        : "shuffled, each photo once an epoch");
    for (int s = 0; s < ds->n_sources; s++) {
        const source *src = &ds->sources[s];
        fprintf(out, "  %-24s %6d files  weight %-6g %5.1f%% of draws\n",
                src->name[0] ? src->name : "(no prefix)", src->files,
                src->weight, 100.0 * src->weight * src->n_members / total);
    }
}

/* ---- Plans --------------------------------------------------------------- */

/* splitmix64's finaliser: a bijection that spreads every input bit. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cz_data_rng(cz_rng *rng, uint64_t seed, uint64_t stream, int64_t epoch,
                 int64_t position)
{
    const uint64_t golden = 0x9e3779b97f4a7c15ull; /* keeps 0 from mixing to 0 */
    uint64_t h = mix64(seed + golden);
    h = mix64(h ^ (stream + golden));
    h = mix64(h ^ ((uint64_t)epoch + golden));
    h = mix64(h ^ ((uint64_t)position + golden));
    cz_rng_seed(rng, h);
}

/* Uniform double in [0, 1) with 53 random bits. */
static double uniform53(cz_rng *rng)
{
    return (double)(cz_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

void cz_dataset_plan(const cz_dataset *ds, bool shuffle, uint64_t seed,
                     int64_t epoch, int *out)
{
    const int n = ds->count;
    if (!shuffle || !ds->weighted) {
        for (int i = 0; i < n; i++)
            out[i] = i;
        if (!shuffle)
            return;
    }
    cz_rng rng;
    cz_data_rng(&rng, seed, CZ_DATA_STREAM_PLAN, epoch, 0);
    if (!ds->weighted) {
        /* Fisher-Yates. */
        for (int i = n - 1; i > 0; i--) {
            int j = (int)cz_rng_below(&rng, (uint64_t)i + 1);
            int t = out[i];
            out[i] = out[j];
            out[j] = t;
        }
        return;
    }
    const double total = ds->cumulative[ds->n_sources - 1];
    for (int i = 0; i < n; i++) {
        double u = uniform53(&rng) * total;
        /* First source whose running sum exceeds u; a dropped source adds
         * nothing to the sum and can never be it. */
        int lo = 0, hi = ds->n_sources - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (ds->cumulative[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        /* u rounded up to total itself finds no source: take the last one
         * in use. */
        while (ds->sources[lo].n_members == 0)
            lo--;
        const source *src = &ds->sources[lo];
        out[i] = src->members[cz_rng_below(&rng, (uint64_t)src->n_members)];
    }
}
