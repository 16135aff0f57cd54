/* `colorize grid --real DIR --model FILE... -o FILE`: the comparison picture
 * a README shows, as in the pix2pix paper's figures. One row per photo; the
 * columns are the input (the photo's L*, no colour) | one per model | the
 * ground truth, under a header naming each.
 *
 * Every cell is the photo's central square resized to --size (its shorter
 * side becomes S, the longer one is cropped), and each model colours that
 * very square, so the columns of a row share one L* and differ only in
 * their colour. The front end only: it picks and loads the photos, asks the
 * library to colour them and to draw the grid (report/grid.c), and decides
 * the exit status. A photo that cannot be drawn is named and left out. */
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

#include "cli/args.h"
#include "cli/commands.h"
#include "colorize.h"
#include "eval/metrics.h" /* cz_eval_rgb8, cz_eval_resize, cz_eval_gray_baseline */
#include "report/report.h"

/* Exit statuses (cli/commands.h). */
enum { EXIT_ALL_DONE = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2 };

/* Up to MAX_MODELS columns of models, between the input and the truth. */
enum { MAX_MODELS = 8, MAX_COLS = MAX_MODELS + 2 };
/* A README's figure: a dozen rows of 192-pixel cells. Smaller cells than
 * MIN_SIZE show nothing; larger than MAX_SIZE is surely a typing slip. */
enum { DEFAULT_ROWS = 12, DEFAULT_SIZE = 192, MIN_SIZE = 16, MAX_SIZE = 1024 };
/* Used only for a .jpg output. */
enum { JPEG_QUALITY = 95 };

static const char INPUT_TITLE[] = "input", TRUTH_TITLE[] = "ground truth";

typedef struct {
    const char *real, *names, *out;
    const char *models[MAX_MODELS], *labels[MAX_MODELS];
    int n_models, n_labels;
    long rows; /* 0: DEFAULT_ROWS, or every photo --names lists */
    int size;
} options;

/* One row of the grid: its photo and its cells, input | models | truth. */
typedef struct {
    const char *name;
    cz_image *cells[MAX_COLS];
    bool failed;
} row;

static void usage(FILE *out)
{
    fprintf(out,
"usage: colorize grid --real DIR --model FILE [--model FILE...] -o FILE\n"
"                     [options]\n"
"\n"
"Draws the comparison picture of a README, as in the pix2pix paper: one row\n"
"per photo, the columns input (the photo's L*, no colour) | one per model |\n"
"ground truth, under a header naming each. Every cell is the photo's central\n"
"square resized to S x S, and each model colours that square, at the size\n"
"it was trained at.\n"
"\n"
"  -r, --real DIR     the colour originals (.jpg, .jpeg, .png), by name\n"
"  -m, --model FILE   a generator; repeat for up to %d, one column each\n"
"  -l, --label NAME   the title of a model's column, in the order of\n"
"                     --model (default: the file's name without extension)\n"
"  -n, --rows K       draw the first K photos (default %d)\n"
"      --names FILE   draw the photos this file lists, one name a line (x.jpg\n"
"                     or x), in its order; blank lines and #comments skipped\n"
"  -s, --size S       the side of a cell, %d to %d (default %d)\n"
"  -o, --out FILE     write the grid here, PNG or JPEG by extension\n"
"  -h, --help         show this help\n"
"\n"
"Exit status: 0 every photo drawn, 1 some photo could not be (each is named,\n"
"the others are drawn) or none, 2 bad usage or an unusable model.\n",
            MAX_MODELS, DEFAULT_ROWS, MIN_SIZE, MAX_SIZE, DEFAULT_SIZE);
}

/* ---- Picking the photos ------------------------------------------------ */

static int is_photo(const struct dirent *e)
{
    return e->d_name[0] != '.' && e->d_type != DT_DIR && cz_cli_is_photo_name(e->d_name);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* The length of name without its extension. */
static size_t stem_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

/* The photo called `want`: that file name, or else the one photo whose name
 * without extension is `want`. NULL if none or several. */
static const char *find_photo(struct dirent **photos, int n, const char *want)
{
    const char *found = NULL;
    int count = 0;
    for (int i = 0; i < n; i++) {
        const char *name = photos[i]->d_name;
        if (strcmp(name, want) == 0)
            return name;
        if (stem_len(name) == strlen(want) && strncmp(name, want, strlen(want)) == 0) {
            found = name;
            count++;
        }
    }
    return count == 1 ? found : NULL;
}

/* Appends a row for photo `name` to *rows; false if memory runs out. */
static bool add_row(row **rows, long *n, long *cap, const char *name)
{
    if (*n == *cap) {
        long c = *cap ? 2 * *cap : DEFAULT_ROWS;
        row *v = realloc(*rows, (size_t)c * sizeof *v);
        if (!v)
            return false;
        *rows = v;
        *cap = c;
    }
    (*rows)[(*n)++] = (row){.name = name};
    return true;
}

/* The rows of the grid: the first --rows photos by name, or those --names
 * lists, in its order (a name with no photo is reported and counted in
 * *failed). False if the list cannot be read or memory runs out. */
static bool pick_rows(const options *opt, struct dirent **photos, int n_photos,
                      row **rows, long *n_rows, int *failed)
{
    long cap = 0, max = opt->rows ? opt->rows : opt->names ? LONG_MAX : DEFAULT_ROWS;
    *rows = NULL;
    *n_rows = 0;
    if (!opt->names) {
        for (int i = 0; i < n_photos && *n_rows < max; i++)
            if (!add_row(rows, n_rows, &cap, photos[i]->d_name)) {
                cz_cli_say("grid", "out of memory");
                return false;
            }
        return true;
    }
    FILE *f = fopen(opt->names, "r");
    if (!f) {
        cz_cli_say("grid", "%s: cannot open: %s", opt->names, strerror(errno));
        return false;
    }
    long line_no = 0;
    char *line = NULL;
    size_t line_cap = 0;
    bool ok = true;
    while (ok && *n_rows < max && getline(&line, &line_cap, f) != -1) {
        line_no++;
        char *s = line + strspn(line, " \t");
        size_t len = strcspn(s, "\r\n");
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        s[len] = '\0';
        if (len == 0 || s[0] == '#')
            continue;
        const char *name = find_photo(photos, n_photos, s);
        if (name) {
            if (!(ok = add_row(rows, n_rows, &cap, name)))
                cz_cli_say("grid", "out of memory");
        } else {
            cz_cli_say("grid", "%s:%ld: no photo '%s' (or several of that name) in %s",
                opt->names, line_no, s, opt->real);
            (*failed)++;
        }
    }
    if (ok && ferror(f)) {
        cz_cli_say("grid", "%s: cannot read: %s", opt->names, strerror(errno));
        ok = false;
    }
    free(line);
    fclose(f);
    return ok;
}

/* ---- The cells --------------------------------------------------------- */

/* The central square of an 8-bit RGB image. */
static cz_image *centre_square(const cz_image *img)
{
    int side = img->width < img->height ? img->width : img->height;
    cz_image *sq = cz_image_new(side, side, 3, 8);
    if (!sq)
        return NULL;
    size_t x0 = (size_t)(img->width - side) / 2, y0 = (size_t)(img->height - side) / 2;
    for (int y = 0; y < side; y++)
        memcpy((uint8_t *)sq->data + (size_t)y * (size_t)side * 3,
               (const uint8_t *)img->data + ((y0 + (size_t)y) * (size_t)img->width + x0) * 3,
               (size_t)side * 3);
    return sq;
}

/* The input and truth cells of a row from its photo; the library's message
 * names the file on failure. */
static cz_status photo_cells(const options *opt, row *r)
{
    cz_image *raw = NULL, *rgb = NULL, *sq = NULL;
    char *path = NULL;
    if (asprintf(&path, "%s/%s", opt->real, r->name) < 0) {
        cz_cli_say("grid", "out of memory");
        return CZ_ERR_NOMEM;
    }
    cz_status s = cz_image_load(path, NULL, &raw);
    if (s == CZ_OK)
        s = cz_eval_rgb8(raw, &rgb);
    if (s == CZ_OK && !(sq = centre_square(rgb)))
        s = CZ_ERR_NOMEM;
    cz_image **truth = &r->cells[opt->n_models + 1];
    if (s == CZ_OK)
        s = cz_eval_resize(sq, opt->size, opt->size, truth);
    if (s == CZ_OK)
        s = cz_eval_gray_baseline(*truth, &r->cells[0]);
    if (s != CZ_OK)
        cz_cli_say("grid", "%s", cz_last_error());
    cz_image_free(raw);
    cz_image_free(rgb);
    cz_image_free(sq);
    free(path);
    return s;
}

/* Column `col` of every good row, coloured by the model at `path`. A model
 * that cannot be loaded is fatal (false); a photo it cannot colour is
 * reported and its row marked failed. */
static bool model_cells(const options *opt, int col, row *rows, long n_rows)
{
    const char *path = opt->models[col - 1];
    cz_colorizer *cz = NULL;
    if (cz_colorizer_load(path, NULL, &cz) != CZ_OK) {
        cz_cli_say("grid", "%s", cz_last_error());
        return false;
    }
    for (long i = 0; i < n_rows; i++) {
        row *r = &rows[i];
        if (r->failed)
            continue;
        const cz_image *truth = r->cells[opt->n_models + 1];
        if (cz_colorize_image(cz, truth, &r->cells[col]) != CZ_OK) {
            cz_cli_say("grid", "%s/%s: colouring with %s failed: %s", opt->real, r->name, path,
                cz_last_error());
            r->failed = true;
        }
    }
    cz_colorizer_free(cz);
    return true;
}

/* A model's default title: its file name without folder and extension. */
static char *default_label(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strndup(base, stem_len(base));
}

/* ---- The command -------------------------------------------------------- */

int cz_cmd_grid(int argc, char **argv)
{
    enum { OPT_NAMES = 256 };
    static const struct option longopts[] = {
        {"real", required_argument, NULL, 'r'},
        {"model", required_argument, NULL, 'm'},
        {"label", required_argument, NULL, 'l'},
        {"rows", required_argument, NULL, 'n'},
        {"names", required_argument, NULL, OPT_NAMES},
        {"size", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    options opt = {.size = DEFAULT_SIZE};
    long v;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "r:m:l:n:s:o:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'r': opt.real = optarg; break;
        case OPT_NAMES: opt.names = optarg; break;
        case 'o': opt.out = optarg; break;
        case 'm':
            if (opt.n_models == MAX_MODELS)
                return cz_cli_usage_error("grid", "at most %d models, one column each", MAX_MODELS);
            opt.models[opt.n_models++] = optarg;
            break;
        case 'l':
            if (opt.n_labels == MAX_MODELS)
                return cz_cli_usage_error("grid", "at most %d labels, one a model", MAX_MODELS);
            opt.labels[opt.n_labels++] = optarg;
            break;
        case 'n':
            if (!cz_cli_parse_long(optarg, 1, INT_MAX, &v))
                return cz_cli_usage_error("grid", "--rows must be a positive whole number, not '%s'",
                                   optarg);
            opt.rows = v;
            break;
        case 's':
            if (!cz_cli_parse_long(optarg, MIN_SIZE, MAX_SIZE, &v))
                return cz_cli_usage_error("grid", "--size must be a whole number from %d to %d, not '%s'",
                                   MIN_SIZE, MAX_SIZE, optarg);
            opt.size = (int)v;
            break;
        case 'h': usage(stdout); return EXIT_ALL_DONE;
        default: return cz_cli_usage_error("grid", "bad option");
        }
    }
    if (optind < argc)
        return cz_cli_usage_error("grid", "unexpected argument '%s'", argv[optind]);
    if (!opt.real)
        return cz_cli_usage_error("grid", "--real DIR is required");
    if (opt.n_models == 0)
        return cz_cli_usage_error("grid", "--model FILE is required");
    if (opt.n_labels > opt.n_models)
        return cz_cli_usage_error("grid", "%d labels for %d models", opt.n_labels, opt.n_models);
    if (!opt.out)
        return cz_cli_usage_error("grid", "-o FILE is required");
    const char *ext = strrchr(opt.out, '.');
    if (!ext || strchr(ext, '/') || !cz_cli_is_photo_name(ext))
        return cz_cli_usage_error("grid", "%s: the grid is written as .png, .jpg or .jpeg", opt.out);

    const int n_cols = opt.n_models + 2;
    int exit_status = EXIT_ALL_DONE, failed = 0, drawn = 0;
    struct dirent **photos = NULL;
    int n_photos = scandir(opt.real, &photos, is_photo, by_name);
    row *rows = NULL;
    long n_rows = 0;
    const char *titles[MAX_COLS] = {INPUT_TITLE};
    char *own_titles[MAX_MODELS] = {NULL};
    const cz_image **cells = NULL;
    cz_image *grid = NULL;
    int width, height;

    for (int m = 0; m < opt.n_models; m++) {
        if (m < opt.n_labels) {
            titles[m + 1] = opt.labels[m];
        } else if (!(titles[m + 1] = own_titles[m] = default_label(opt.models[m]))) {
            cz_cli_say("grid", "out of memory");
            exit_status = EXIT_SOME_FAILED;
            goto cleanup;
        }
    }
    titles[n_cols - 1] = TRUTH_TITLE;

    if (n_photos < 0) {
        cz_cli_say("grid", "%s: cannot open the folder: %s", opt.real, strerror(errno));
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    if (n_photos == 0) {
        cz_cli_say("grid", "%s: no .jpg, .jpeg or .png files", opt.real);
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    if (!pick_rows(&opt, photos, n_photos, &rows, &n_rows, &failed)) {
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    if (n_rows == 0) {
        cz_cli_say("grid", "%s names no photo of %s", opt.names, opt.real);
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    /* Refuse a picture too large before any work. */
    if (cz_grid_dimensions((int)(n_rows < INT_MAX ? n_rows : INT_MAX), n_cols, opt.size,
                           NULL, &width, &height) != CZ_OK) {
        cz_cli_say("grid", "%s: fewer rows or a smaller --size", cz_last_error());
        exit_status = EXIT_USAGE;
        goto cleanup;
    }

    for (long i = 0; i < n_rows; i++)
        rows[i].failed = photo_cells(&opt, &rows[i]) != CZ_OK;
    for (int m = 0; m < opt.n_models; m++)
        if (!model_cells(&opt, m + 1, rows, n_rows)) {
            exit_status = EXIT_USAGE;
            goto cleanup;
        }

    /* The cells of the rows drawn, row after row. */
    if (!(cells = calloc((size_t)n_rows * (size_t)n_cols, sizeof *cells))) {
        cz_cli_say("grid", "out of memory");
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    for (long i = 0; i < n_rows; i++) {
        if (rows[i].failed) {
            failed++;
            continue;
        }
        for (int c = 0; c < n_cols; c++)
            cells[drawn * n_cols + c] = rows[i].cells[c];
        drawn++;
    }
    if (failed)
        exit_status = EXIT_SOME_FAILED;
    if (drawn == 0) {
        cz_cli_say("grid", "no photo could be drawn; %s not written", opt.out);
        goto cleanup;
    }
    if (cz_grid_render_columns(drawn, n_cols, opt.size, titles, cells, NULL, &grid) != CZ_OK ||
        cz_image_save(opt.out, grid, JPEG_QUALITY) != CZ_OK) {
        cz_cli_say("grid", "%s", cz_last_error());
        exit_status = EXIT_SOME_FAILED;
        goto cleanup;
    }
    printf("wrote %s: %d photos x %d columns, %dx%d pixels", opt.out, drawn, n_cols,
           grid->width, grid->height);
    if (failed)
        printf("; %d not drawn", failed);
    printf("\n");

cleanup:
    cz_image_free(grid);
    free(cells);
    for (int m = 0; m < MAX_MODELS; m++)
        free(own_titles[m]);
    for (long i = 0; i < n_rows; i++)
        for (int c = 0; c < MAX_COLS; c++)
            cz_image_free(rows[i].cells[c]);
    free(rows);
    for (int i = 0; i < n_photos; i++)
        free(photos[i]);
    free(photos);
    return exit_status;
}
