/* `colorize IN... (-o OUT | -d DIR)`: colours photos and folders of photos.
 *
 * The front end only: it parses options, finds the files, names the outputs,
 * draws the progress bar and decides the exit status; loading, colouring and
 * saving are library calls. Each file that fails is reported with the
 * library's message (which names it) and the run goes on; nothing is written
 * for it, since cz_image_save replaces a file only once it is complete. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <omp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "colorize.h"
#include "image/image.h" /* cz_image_sniff */

/* Exit statuses (cli/commands.h). */
enum { EXIT_ALL_DONE = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2 };

/* JPEG quality for outputs: visually lossless, 4:4:4 chroma (>= 90), so the
 * new colour is not smeared by subsampling. */
enum { DEFAULT_QUALITY = 95 };
/* Folders nested deeper than this are not entered (a guard against
 * pathological trees; symbolic links to folders are never followed). */
enum { MAX_DEPTH = 128 };
/* Progress bar: cells in the bar, and the width assumed when the terminal
 * does not say. */
enum { BAR_CELLS = 24, DEFAULT_COLUMNS = 80 };

typedef struct {
    const char *out_file, *out_dir, *model;
    int size, quality;
    uint64_t max_pixels;
    cz_precision_choice precision;
    bool quiet, verbose, fast;
} options;

typedef struct {
    char *in, *out;
    long long bytes; /* the input's size, the unit of progress */
    bool failed;     /* already failed while planning (a clashing output) */
} job;

typedef struct {
    job *v;
    size_t n, cap;
    int failed, skipped;
    dev_t skip_dev; /* the output folder, never walked into */
    ino_t skip_ino;
    bool have_skip;
} plan;

/* ---- Messages and the progress bar ------------------------------------- */

typedef struct {
    bool on;          /* stderr is a terminal and --quiet is off */
    bool drawn;       /* a bar is on screen */
    double start;
    long long total, done;
    size_t files, files_done;
} progress;

static progress bar;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void clear_bar(void)
{
    if (bar.drawn) {
        fputs("\r\033[K", stderr);
        bar.drawn = false;
    }
}

/* Prints "colorize: " and the message on stderr, off the progress bar. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void say(const char *fmt, ...)
{
    clear_bar();
    va_list ap;
    va_start(ap, fmt);
    fputs("colorize: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void draw_bar(const char *current)
{
    if (!bar.on)
        return;
    int columns = DEFAULT_COLUMNS;
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        columns = ws.ws_col;
    double frac = bar.total > 0 ? (double)bar.done / (double)bar.total : 0.0;
    char cells[BAR_CELLS + 1];
    int full = (int)(frac * BAR_CELLS);
    for (int i = 0; i < BAR_CELLS; i++)
        cells[i] = i < full ? '#' : '-';
    cells[BAR_CELLS] = '\0';
    char eta[32] = "ETA --:--";
    if (bar.done > 0) {
        double left = (now() - bar.start) * (double)(bar.total - bar.done) /
                      (double)bar.done;
        long s = (long)(left + 0.5);
        if (s >= 3600)
            snprintf(eta, sizeof eta, "ETA %ld:%02ld:%02ld", s / 3600,
                     s / 60 % 60, s % 60);
        else
            snprintf(eta, sizeof eta, "ETA %ld:%02ld", s / 60, s % 60);
    }
    char line[512];
    int n = snprintf(line, sizeof line, "[%s] %zu/%zu %3d%% %s  %s", cells,
                     bar.files_done, bar.files, (int)(100.0 * frac + 0.5), eta,
                     current ? current : "");
    if (n < 0)
        return;
    /* One line, never wrapped: cut to the terminal's width. */
    if (columns - 1 < (int)sizeof line && n > columns - 1)
        line[columns - 1 > 0 ? columns - 1 : 0] = '\0';
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    bar.drawn = true;
}

/* ---- Usage -------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
"usage: colorize IN... -d DIR [options]    colour files and whole folders\n"
"       colorize IN -o OUT [options]       colour one file\n"
"\n"
"Colours grayscale photos (JPEG or PNG; colour photos are reduced to their\n"
"lightness first). Each output has its input's size, lightness and alpha.\n"
"\n"
"  -o, --output OUT      write the single input's colour version to OUT\n"
"                        (.jpg, .jpeg or .png)\n"
"  -d, --dir DIR         write outputs under DIR (created if missing): a file\n"
"                        keeps its name, a folder's files their paths inside it\n"
"  -m, --model FILE      model file (.safetensors) holding a generator\n"
"                        (default: the built-in model)\n"
"  -s, --size N          side of the square the network sees, a multiple of %d\n"
"                        up to %d (default: the model's training size; a\n"
"                        model's finish may also run it at multiples of N)\n"
"      --max-pixels N    refuse images of more than N pixels (default %llu)\n"
"      --quality Q       JPEG quality of outputs, 1-100 (default %d)\n"
"      --precision P     auto (default: bf16 where the CPU has native\n"
"                        bfloat16, else fp32), fp32 or bf16\n"
"      --fast            run the network once, without the finish the model\n"
"                        asks for (the built-in model's runs it at two sizes\n"
"                        and mirrored: 3x the time for truer colours)\n"
"  -q, --quiet           no progress bar, no warnings (errors still shown)\n"
"  -v, --verbose         show the model, precision and each file's timing\n"
"  -h, --help            show this help\n"
"  -V, --version         show the version\n"
"\n"
"In folders, files that are not JPEG or PNG are skipped with a warning, and\n"
"inputs are never overwritten. A progress bar with an ETA is drawn when\n"
"stderr is a terminal.\n"
"\n"
"Exit status: 0 all coloured, 1 some files failed (each is reported),\n"
"2 bad usage or an unusable model (nothing was written).\n",
            CZ_SIZE_MULTIPLE, CZ_MAX_SIZE, CZ_IMAGE_DEFAULT_MAX_PIXELS,
            DEFAULT_QUALITY);
}

/* Whole-string decimal parse into [lo, hi]; false on anything else. */
static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

enum { OPT_MAX_PIXELS = 256, OPT_QUALITY, OPT_PRECISION, OPT_FAST };

/* Parses argv into opt; returns -1 to go on, or an exit status. On return
 * with -1, argv[optind..argc) are the inputs. */
static int parse_options(int argc, char **argv, options *opt)
{
    static const struct option longs[] = {
        {"output", required_argument, NULL, 'o'},
        {"dir", required_argument, NULL, 'd'},
        {"model", required_argument, NULL, 'm'},
        {"size", required_argument, NULL, 's'},
        {"max-pixels", required_argument, NULL, OPT_MAX_PIXELS},
        {"quality", required_argument, NULL, OPT_QUALITY},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"fast", no_argument, NULL, OPT_FAST},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    *opt = (options){.quality = DEFAULT_QUALITY,
                     .max_pixels = CZ_IMAGE_DEFAULT_MAX_PIXELS};
    opterr = 0; /* our own messages, with the hint to --help */
    optind = 1;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":o:d:m:s:qvhV", longs, NULL)) != -1) {
        switch (c) {
        case 'o': opt->out_file = optarg; break;
        case 'd': opt->out_dir = optarg; break;
        case 'm': opt->model = optarg; break;
        case 's':
            if (!parse_u64(optarg, CZ_SIZE_MULTIPLE, CZ_MAX_SIZE, &v) ||
                v % CZ_SIZE_MULTIPLE != 0)
                return cz_cli_usage_error(NULL, "--size '%s': the size must be a multiple "
                                   "of %d from %d to %d", optarg,
                                   CZ_SIZE_MULTIPLE, CZ_SIZE_MULTIPLE,
                                   CZ_MAX_SIZE);
            opt->size = (int)v;
            break;
        case OPT_MAX_PIXELS:
            if (!parse_u64(optarg, 1, UINT64_MAX, &v))
                return cz_cli_usage_error(NULL, "--max-pixels '%s': give a positive whole "
                                   "number of pixels", optarg);
            opt->max_pixels = v;
            break;
        case OPT_QUALITY:
            if (!parse_u64(optarg, 1, 100, &v))
                return cz_cli_usage_error(NULL, "--quality '%s': give a whole number from "
                                   "1 to 100", optarg);
            opt->quality = (int)v;
            break;
        case OPT_PRECISION:
            if (strcmp(optarg, "auto") == 0)
                opt->precision = CZ_PRECISION_AUTO;
            else if (strcmp(optarg, "fp32") == 0)
                opt->precision = CZ_PRECISION_FP32;
            else if (strcmp(optarg, "bf16") == 0)
                opt->precision = CZ_PRECISION_BF16;
            else
                return cz_cli_usage_error(NULL, "--precision '%s': give auto, fp32 or bf16",
                                   optarg);
            break;
        case OPT_FAST: opt->fast = true; break;
        case 'q': opt->quiet = true; break;
        case 'v': opt->verbose = true; break;
        case 'h': usage(stdout); return EXIT_ALL_DONE;
        case 'V': printf("colorize %s\n", COLORIZE_VERSION); return EXIT_ALL_DONE;
        case ':':
            return cz_cli_usage_error(NULL, "option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt)
                return cz_cli_usage_error(NULL, "unknown option '-%c'", optopt);
            return cz_cli_usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind == argc)
        return cz_cli_usage_error(NULL, "no input files or folders given");
    if (!opt->out_file == !opt->out_dir)
        return cz_cli_usage_error(NULL, opt->out_file ? "give -o OUT or -d DIR, not both"
                                         : "say where outputs go: -o OUT for "
                                           "one file, -d DIR for several");
    if (opt->out_file && argc - optind > 1)
        return cz_cli_usage_error(NULL, "-o takes one input; use -d DIR for %d inputs",
                           argc - optind);
    return -1;
}

/* ---- Paths -------------------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
    size_t d = strlen(dir), n = strlen(name);
    while (d > 1 && dir[d - 1] == '/')
        d--;
    char *s = malloc(d + 1 + n + 1);
    if (!s)
        return NULL;
    memcpy(s, dir, d);
    s[d] = '/';
    memcpy(s + d + 1, name, n + 1);
    return s;
}

/* The extension for what the file holds (".jpg" or ".png"), by its first
 * bytes as cz_image_load decides; NULL if neither or unreadable. */
static const char *image_kind(const char *path)
{
    switch (cz_image_sniff(path)) {
    case CZ_IMAGE_JPEG: return ".jpg";
    case CZ_IMAGE_PNG: return ".png";
    default: return NULL;
    }
}

/* The output name for an input named rel: rel itself when it ends in an
 * image extension (so the codec is kept), else rel plus the extension of
 * what the file holds. */
static char *output_path(const char *dir, const char *rel, const char *in)
{
    if (cz_cli_is_photo_name(rel))
        return join(dir, rel);
    const char *ext = image_kind(in);
    if (!ext)
        ext = ".png"; /* loading will fail and say why; no file is written */
    size_t n = strlen(rel), e = strlen(ext);
    char *name = malloc(n + e + 1);
    if (!name)
        return NULL;
    memcpy(name, rel, n);
    memcpy(name + n, ext, e + 1);
    char *out = join(dir, name);
    free(name);
    return out;
}

/* mkdir -p of the folder that will hold path. */
static bool make_parents(const char *path)
{
    char *p = strdup(path);
    if (!p) {
        say("%s: out of memory", path);
        return false;
    }
    bool ok = true;
    for (char *s = p + 1; ok && (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            say("%s: cannot create folder %s: %s", path, p, strerror(errno));
            ok = false;
        } else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            say("%s: cannot create folder %s: a file is in the way", path, p);
            ok = false;
        }
        *s = '/';
    }
    free(p);
    return ok;
}

/* ---- Finding the work --------------------------------------------------- */

static bool add_job(plan *p, const char *in, char *out, long long bytes)
{
    if (!out) {
        say("%s: out of memory", in);
        p->failed++;
        return false;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        job *v = realloc(p->v, cap * sizeof *v);
        if (!v) {
            free(out);
            say("%s: out of memory", in);
            p->failed++;
            return false;
        }
        p->v = v;
        p->cap = cap;
    }
    char *in_copy = strdup(in);
    if (!in_copy) {
        free(out);
        say("%s: out of memory", in);
        p->failed++;
        return false;
    }
    p->v[p->n++] = (job){in_copy, out, bytes, false};
    return true;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every image under folder dir (whose path inside the input folder is
 * rel, "" at the top) in name order, mirroring rel under opt->out_dir. */
static void walk(plan *p, const options *opt, const char *dir, const char *rel,
                 int depth)
{
    if (depth > MAX_DEPTH) {
        say("%s: skipped: folders nested more than %d deep", dir, MAX_DEPTH);
        p->skipped++;
        return;
    }
    DIR *d = opendir(dir);
    if (!d) {
        say("%s: cannot read folder: %s", dir, strerror(errno));
        p->failed++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    bool nomem = false;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **v = realloc(names, cap * sizeof *v);
            if (!v) { nomem = true; break; }
            names = v;
        }
        if (!(names[n] = strdup(e->d_name))) { nomem = true; break; }
        n++;
    }
    closedir(d);
    if (nomem) {
        say("%s: out of memory listing the folder", dir);
        p->failed++;
    }
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        char *path = join(dir, names[i]);
        char *sub = rel[0] ? join(rel, names[i]) : strdup(names[i]);
        struct stat st;
        if (!path || !sub) {
            say("%s: out of memory", dir);
            p->failed++;
        } else if (lstat(path, &st) != 0) {
            say("%s: cannot read: %s", path, strerror(errno));
            p->failed++;
        } else if (S_ISDIR(st.st_mode)) {
            if (!(p->have_skip && st.st_dev == p->skip_dev &&
                  st.st_ino == p->skip_ino))
                walk(p, opt, path, sub, depth + 1);
        } else if (S_ISLNK(st.st_mode) &&
                   (stat(path, &st) != 0 || !S_ISREG(st.st_mode))) {
            if (!opt->quiet)
                say("%s: skipped: a link to something other than a file", path);
            p->skipped++;
        } else if (!S_ISREG(st.st_mode)) {
            if (!opt->quiet)
                say("%s: skipped: not a regular file", path);
            p->skipped++;
        } else if (cz_cli_is_photo_name(path) || image_kind(path)) {
            add_job(p, path, output_path(opt->out_dir, sub, path),
                    (long long)st.st_size);
        } else {
            if (!opt->quiet)
                say("%s: skipped: not a JPEG or PNG image", path);
            p->skipped++;
        }
        free(path);
        free(sub);
        free(names[i]);
    }
    free(names);
}

static void add_input(plan *p, const options *opt, const char *in)
{
    struct stat st;
    if (stat(in, &st) != 0) {
        say("%s: %s", in, strerror(errno));
        p->failed++;
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        walk(p, opt, in, "", 0);
        return;
    }
    if (opt->out_file) {
        add_job(p, in, strdup(opt->out_file), (long long)st.st_size);
        return;
    }
    const char *slash = strrchr(in, '/');
    const char *base = slash ? slash + 1 : in;
    add_job(p, in, output_path(opt->out_dir, base, in), (long long)st.st_size);
}

static int compare_outputs(const void *a, const void *b)
{
    const job *x = *(job *const *)a, *y = *(job *const *)b;
    int c = strcmp(x->out, y->out);
    return c ? c : (x < y ? -1 : x > y);
}

/* Two inputs that would write the same output: the first in input order
 * keeps it, the others fail now rather than overwrite it. */
static bool mark_clashes(plan *p)
{
    if (p->n < 2)
        return true;
    job **order = malloc(p->n * sizeof *order);
    if (!order) {
        say("out of memory");
        return false;
    }
    for (size_t i = 0; i < p->n; i++)
        order[i] = &p->v[i];
    qsort(order, p->n, sizeof *order, compare_outputs);
    for (size_t i = 1; i < p->n; i++) {
        if (strcmp(order[i]->out, order[i - 1]->out) != 0)
            continue;
        size_t first = i - 1;
        while (first > 0 && strcmp(order[first - 1]->out, order[i]->out) == 0)
            first--;
        say("%s: its output %s would overwrite that of %s", order[i]->in,
            order[i]->out, order[first]->in);
        order[i]->failed = true;
        p->failed++;
    }
    free(order);
    return true;
}

/* ---- Inputs that must never be overwritten ------------------------------- */

typedef struct {
    dev_t dev;
    ino_t ino;
} file_id;

static int compare_ids(const void *a, const void *b)
{
    const file_id *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* The identities of every input file, sorted, so an output that is (a link
 * to) any input can be refused. */
static file_id *input_ids(const plan *p, size_t *n)
{
    file_id *ids = malloc((p->n ? p->n : 1) * sizeof *ids);
    *n = 0;
    if (!ids)
        return NULL;
    for (size_t i = 0; i < p->n; i++) {
        struct stat st;
        if (stat(p->v[i].in, &st) == 0)
            ids[(*n)++] = (file_id){st.st_dev, st.st_ino};
    }
    qsort(ids, *n, sizeof *ids, compare_ids);
    return ids;
}

static bool is_an_input(const char *out, const file_id *ids, size_t n)
{
    struct stat st;
    if (stat(out, &st) != 0)
        return false;
    file_id key = {st.st_dev, st.st_ino};
    return bsearch(&key, ids, n, sizeof *ids, compare_ids) != NULL;
}

/* ---- The work ----------------------------------------------------------- */

/* Colours one file; false (after saying why) if it failed. */
static bool run_job(const job *j, cz_colorizer *cz, const options *opt,
                    const file_id *ids, size_t n_ids)
{
    if (is_an_input(j->out, ids, n_ids)) {
        say("%s: refusing to overwrite an input with the output %s", j->in,
            j->out);
        return false;
    }
    double t0 = now();
    cz_image_options load_opt = {.max_pixels = opt->max_pixels};
    cz_image *in = NULL, *out = NULL;
    cz_status s = cz_image_load(j->in, &load_opt, &in);
    if (s != CZ_OK) {
        say("%s", cz_last_error());
        return false;
    }
    double t1 = now();
    s = cz_colorize_image(cz, in, &out);
    double t2 = now();
    const int W = in->width, H = in->height;
    /* The input goes before saving, so that saving (the output and the
     * encoder's few rows) stays under colouring's peak. */
    cz_image_free(in);
    if (s != CZ_OK) {
        say("%s: %s", j->in, cz_last_error());
        return false;
    }
    bool ok = make_parents(j->out);
    if (ok && (s = cz_image_save(j->out, out, opt->quality)) != CZ_OK) {
        say("%s", cz_last_error());
        ok = false;
    }
    double t3 = now();
    if (ok && opt->verbose)
        say("%s -> %s: %dx%d, load %.2f s, colour %.2f s, save %.2f s",
            j->in, j->out, W, H, t1 - t0, t2 - t1, t3 - t2);
    cz_image_free(out);
    return ok;
}

static void free_plan(plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].in);
        free(p->v[i].out);
    }
    free(p->v);
}

int cz_cmd_colorize(int argc, char **argv)
{
    options opt;
    int status = parse_options(argc, argv, &opt);
    if (status >= 0)
        return status;
    char **inputs = argv + optind;
    const int n_inputs = argc - optind;
    if (opt.out_file) {
        struct stat st;
        if (stat(inputs[0], &st) == 0 && S_ISDIR(st.st_mode))
            return cz_cli_usage_error(NULL, "%s is a folder: use -d DIR for its outputs",
                               inputs[0]);
        if (!cz_cli_is_photo_name(opt.out_file))
            return cz_cli_usage_error(NULL, "-o %s: the output's name must end in .jpg, "
                               ".jpeg or .png", opt.out_file);
    }
    plan p = {0};
    if (opt.out_dir) {
        struct stat st;
        if (stat(opt.out_dir, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return cz_cli_usage_error(NULL, "-d %s: not a folder", opt.out_dir);
            p.have_skip = true;
            p.skip_dev = st.st_dev;
            p.skip_ino = st.st_ino;
        }
    }
    double t0 = now();
    cz_colorizer_options copt = {.size = opt.size, .precision = opt.precision,
                                 .fast = opt.fast};
    cz_colorizer *cz = NULL;
    if (cz_colorizer_load(opt.model, &copt, &cz) != CZ_OK) {
        fprintf(stderr, "colorize: %s\n", cz_last_error());
        return EXIT_USAGE;
    }
    if (opt.verbose) {
        cz_colorizer_info info;
        cz_colorizer_get_info(cz, &info);
        say("model %s: %s, %.1fM parameters, a*b* at %dx%d (trained at "
            "%d), %s, %d threads, loaded in %.2f s",
            opt.model ? opt.model : cz_default_model_path(), info.arch,
            (double)info.params / 1e6, info.size, info.size,
            info.trained_size, info.bf16 ? "bf16" : "fp32",
            omp_get_max_threads(), now() - t0);
        char sides[64] = "", guided[32] = "none", faded[48] = "";
        for (int k = 0, used = 0; k < info.n_sides; k++)
            used += snprintf(sides + used, sizeof sides - used, "%s%d",
                             k ? ", " : "", info.sides[k]);
        if (info.guided_radius)
            snprintf(guided, sizeof guided, "radius %d", info.guided_radius);
        if (info.agreement > 0)
            snprintf(faded, sizeof faded, ", faded by agreement^%g",
                     (double)info.agreement);
        say("finish: network at %s, averaged at %d, %s%s, guided filter %s, "
            "a*b* x %g", sides, info.size,
            info.mirror ? "mirror averaging" : "no mirror averaging", faded,
            guided, (double)info.chroma_gain);
    }

    for (int i = 0; i < n_inputs; i++)
        add_input(&p, &opt, inputs[i]);
    size_t n_ids = 0;
    file_id *ids = NULL;
    if (!mark_clashes(&p) || !(ids = input_ids(&p, &n_ids))) {
        say("out of memory");
        free_plan(&p);
        cz_colorizer_free(cz);
        free(ids);
        return EXIT_SOME_FAILED;
    }

    bar = (progress){.on = !opt.quiet && isatty(STDERR_FILENO),
                     .start = now(), .files = p.n};
    for (size_t i = 0; i < p.n; i++)
        bar.total += p.v[i].bytes > 0 ? p.v[i].bytes : 1;
    int done = 0;
    for (size_t i = 0; i < p.n; i++) {
        const job *j = &p.v[i];
        draw_bar(j->in);
        if (!j->failed) {
            if (run_job(j, cz, &opt, ids, n_ids))
                done++;
            else
                p.failed++;
        }
        bar.done += j->bytes > 0 ? j->bytes : 1;
        bar.files_done++;
    }
    clear_bar();
    if (!opt.quiet && (p.failed || opt.verbose))
        say("%d coloured, %d failed, %d skipped (%.1f s)", done, p.failed,
            p.skipped, now() - t0);

    free(ids);
    free_plan(&p);
    cz_colorizer_free(cz);
    return p.failed ? EXIT_SOME_FAILED : EXIT_ALL_DONE;
}
