/* Evaluation reports: CSV, JSON (jansson) and a self-contained HTML page. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/error.h"
#include "base/rng.h"
#include "eval/report.h"

/* ---- Means and examples ------------------------------------------------ */

static void add_metrics(cz_eval_mean *m, const cz_metrics *x)
{
    m->psnr += x->psnr;
    m->ssim += x->ssim;
    m->delta_e += x->delta_e;
    m->cf += x->cf;
    m->cf_truth += x->cf_truth;
    m->auc += x->auc;
}

static void finish_mean(cz_eval_mean *m, size_t n)
{
    if (n == 0)
        return;
    const double k = 1.0 / (double)n;
    m->psnr *= k;
    m->ssim *= k;
    m->delta_e *= k;
    m->cf *= k;
    m->cf_truth *= k;
    m->auc *= k;
    m->delta_cf = fabs(m->cf - m->cf_truth);
}

void cz_eval_means(const cz_eval_result *results, size_t n,
                   cz_eval_mean *model, cz_eval_mean *gray)
{
    *model = (cz_eval_mean){0};
    *gray = (cz_eval_mean){0};
    for (size_t i = 0; i < n; i++) {
        add_metrics(model, &results[i].model);
        add_metrics(gray, &results[i].gray);
    }
    finish_mean(model, n);
    finish_mean(gray, n);
}

static int by_value(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* The 2.5th and 97.5th percentiles of v (sorted in place). */
static cz_interval central_95(double *v, size_t n)
{
    qsort(v, n, sizeof *v, by_value);
    return (cz_interval){v[(size_t)floor(0.025 * (double)(n - 1))],
                         v[(size_t)ceil(0.975 * (double)(n - 1))]};
}

cz_status cz_eval_bootstrap(const cz_eval_result *results, size_t n,
                            cz_eval_spread *spread)
{
    *spread = (cz_eval_spread){{0, 0}, {0, 0}, {0, 0}};
    if (n < 2)
        return CZ_OK;
    double *psnr = malloc(3 * CZ_EVAL_RESAMPLES * sizeof *psnr);
    if (!psnr)
        return cz_fail(CZ_ERR_NOMEM, "out of memory for the bootstrap");
    double *delta_e = psnr + CZ_EVAL_RESAMPLES, *delta_cf = delta_e + CZ_EVAL_RESAMPLES;
    cz_rng rng;
    cz_rng_seed(&rng, CZ_EVAL_BOOTSTRAP_SEED);
    for (int k = 0; k < CZ_EVAL_RESAMPLES; k++) {
        double dp = 0, de = 0, cf = 0, cf_truth = 0;
        for (size_t i = 0; i < n; i++) {
            const cz_eval_result *r = &results[cz_rng_below(&rng, n)];
            dp += r->model.psnr - r->gray.psnr;
            de += r->gray.delta_e - r->model.delta_e;
            cf += r->model.cf;
            cf_truth += r->model.cf_truth;
        }
        psnr[k] = dp / (double)n;
        delta_e[k] = de / (double)n;
        delta_cf[k] = fabs(cf - cf_truth) / (double)n;
    }
    spread->psnr_gain = central_95(psnr, CZ_EVAL_RESAMPLES);
    spread->delta_e_gain = central_95(delta_e, CZ_EVAL_RESAMPLES);
    spread->delta_cf = central_95(delta_cf, CZ_EVAL_RESAMPLES);
    free(psnr);
    return CZ_OK;
}

/* qsort has no context argument: the results being sorted are passed here,
 * which is safe because the command runs this once, on one thread. */
static const cz_eval_result *sort_results;

static int by_delta_e(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    double da = sort_results[a].model.delta_e, db = sort_results[b].model.delta_e;
    if (da != db)
        return da < db ? -1 : 1;
    return a < b ? -1 : a > b;
}

void cz_eval_pick_examples(cz_eval_report *r)
{
    r->n_examples = 0;
    const size_t n = r->n_results;
    if (n == 0)
        return;
    size_t *order = malloc(n * sizeof *order);
    if (!order)
        return; /* the page then simply has no examples */
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    sort_results = r->results;
    qsort(order, n, sizeof *order, by_delta_e);
    sort_results = NULL;

    const size_t pick[CZ_EVAL_MAX_EXAMPLES] = {order[0], order[(n - 1) / 2], order[n - 1]};
    static const char *const names[CZ_EVAL_MAX_EXAMPLES] = {"best", "median", "worst"};
    for (int k = 0; k < CZ_EVAL_MAX_EXAMPLES; k++) {
        cz_eval_example *e = NULL;
        for (size_t j = 0; j < r->n_examples; j++)
            if (r->examples[j].index == pick[k])
                e = &r->examples[j];
        if (e) { /* the same image is also this one */
            size_t len = strlen(e->label);
            snprintf(e->label + len, sizeof e->label - len, ", %s", names[k]);
            continue;
        }
        e = &r->examples[r->n_examples++];
        *e = (cz_eval_example){.index = pick[k]};
        snprintf(e->label, sizeof e->label, "%s", names[k]);
    }
    free(order);
}

/* ---- Writing files atomically ----------------------------------------- */

typedef cz_status (*body_writer)(FILE *f, const char *path,
                                 const cz_eval_report *r);

/* Writes path through a temporary file beside it, renamed over path only
 * once body() and the flush have succeeded. */
static cz_status write_atomically(const char *path, body_writer body,
                                  const cz_eval_report *r)
{
    cz_status status = CZ_OK;
    FILE *f = NULL;
    size_t len = strlen(path);
    char *tmp = malloc(len + sizeof ".tmp-XXXXXX");
    if (!tmp)
        return cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp-XXXXXX", sizeof ".tmp-XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        status = cz_fail(CZ_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return status;
    }
    /* mkstemp makes the file private (0600); a report is for reading. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(f = fdopen(fd, "w"))) {
        status = cz_fail(CZ_ERR_IO, "%s: %s", path, strerror(errno));
        if (!f)
            close(fd);
        goto cleanup;
    }
    status = body(f, path, r);
    if (status == CZ_OK && (fflush(f) != 0 || ferror(f)))
        status = cz_fail(CZ_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && status == CZ_OK)
        status = cz_fail(CZ_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    f = NULL;
    if (status == CZ_OK && rename(tmp, path) != 0)
        status = cz_fail(CZ_ERR_IO, "%s: cannot rename into place: %s", path,
                         strerror(errno));
cleanup:
    if (f)
        fclose(f);
    if (status != CZ_OK)
        unlink(tmp);
    free(tmp);
    return status;
}

/* ---- CSV --------------------------------------------------------------- */

/* RFC 4180: a field with a comma, quote or line break goes in quotes, with
 * its quotes doubled. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static cz_status csv_body(FILE *f, const char *path, const cz_eval_report *r)
{
    fputs("name,width,height,psnr,ssim,delta_e,cf,cf_truth,auc,"
          "gray_psnr,gray_ssim,gray_delta_e,gray_cf,gray_auc\n", f);
    for (size_t i = 0; i < r->n_results; i++) {
        const cz_eval_result *x = &r->results[i];
        csv_field(f, x->name);
        fprintf(f, ",%d,%d,%.10g,%.10g,%.10g,%.10g,%.10g,%.10g,"
                   "%.10g,%.10g,%.10g,%.10g,%.10g\n",
                x->width, x->height, x->model.psnr, x->model.ssim,
                x->model.delta_e, x->model.cf, x->model.cf_truth, x->model.auc,
                x->gray.psnr, x->gray.ssim, x->gray.delta_e, x->gray.cf,
                x->gray.auc);
    }
    return CZ_OK;
}

cz_status cz_eval_write_csv(const char *path, const cz_eval_report *r)
{
    return write_atomically(path, csv_body, r);
}

/* ---- JSON -------------------------------------------------------------- */

/* Metrics are finite by construction (PSNR is capped); null guards the
 * format should that ever change. */
static json_t *jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *jstr_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *mean_json(const cz_eval_mean *m)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "psnr", jreal(m->psnr));
    json_object_set_new(o, "ssim", jreal(m->ssim));
    json_object_set_new(o, "delta_e", jreal(m->delta_e));
    json_object_set_new(o, "cf", jreal(m->cf));
    json_object_set_new(o, "cf_truth", jreal(m->cf_truth));
    json_object_set_new(o, "delta_cf", jreal(m->delta_cf));
    json_object_set_new(o, "auc", jreal(m->auc));
    return o;
}

static json_t *interval_json(cz_interval v)
{
    return json_pack("[o, o]", jreal(v.lo), jreal(v.hi));
}

static json_t *spread_json(const cz_eval_spread *s)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "resamples", json_integer(CZ_EVAL_RESAMPLES));
    json_object_set_new(o, "seed", json_integer(CZ_EVAL_BOOTSTRAP_SEED));
    json_object_set_new(o, "psnr_gain_95", interval_json(s->psnr_gain));
    json_object_set_new(o, "delta_e_gain_95", interval_json(s->delta_e_gain));
    json_object_set_new(o, "delta_cf_95", interval_json(s->delta_cf));
    return o;
}

static json_t *summary_json(const cz_eval_report *r)
{
    json_t *root = json_object(), *examples = json_array(), *failures = json_array();
    if (!root || !examples || !failures) {
        json_decref(root);
        json_decref(examples);
        json_decref(failures);
        return NULL;
    }
    json_object_set_new(root, "colorize_version", json_string(COLORIZE_VERSION));
    json_object_set_new(root, "real_dir", jstr_or_null(r->real_dir));
    json_object_set_new(root, "pred_dir", jstr_or_null(r->pred_dir));
    json_object_set_new(root, "model_file", jstr_or_null(r->model_path));
    json_object_set_new(root, "size", json_integer(r->size));
    json_object_set_new(root, "images", json_integer((json_int_t)r->n_results));
    json_object_set_new(root, "failed", json_integer((json_int_t)r->n_failures));
    json_object_set_new(root, "ignored", json_integer((json_int_t)r->n_ignored));
    json_object_set_new(root, "psnr_cap", json_real(CZ_PSNR_CAP));
    json_object_set_new(root, "grayscale", mean_json(&r->gray));
    json_object_set_new(root, "model", mean_json(&r->model));
    if (r->has_spread)
        json_object_set_new(root, "bootstrap", spread_json(&r->spread));
    for (size_t i = 0; i < r->n_examples; i++) {
        const cz_eval_example *e = &r->examples[i];
        const cz_eval_result *x = &r->results[e->index];
        json_t *o = json_object();
        json_object_set_new(o, "label", json_string(e->label));
        json_object_set_new(o, "name", json_string(x->name));
        json_object_set_new(o, "delta_e", jreal(x->model.delta_e));
        json_array_append_new(examples, o);
    }
    json_object_set_new(root, "examples", examples);
    for (size_t i = 0; i < r->n_failures; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(r->failures[i].name));
        json_object_set_new(o, "error", json_string(r->failures[i].message));
        json_array_append_new(failures, o);
    }
    json_object_set_new(root, "failures", failures);
    return root;
}

static cz_status json_body(FILE *f, const char *path, const cz_eval_report *r)
{
    json_t *root = summary_json(r);
    if (!root)
        return cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
    int rc = json_dumpf(root, f, JSON_INDENT(2));
    json_decref(root);
    if (rc != 0)
        return cz_fail(CZ_ERR_IO, "%s: cannot write the JSON", path);
    fputc('\n', f);
    return CZ_OK;
}

cz_status cz_eval_write_json(const char *path, const cz_eval_report *r)
{
    return write_atomically(path, json_body, r);
}

/* ---- Base64 ------------------------------------------------------------ */

char *cz_base64_encode(const unsigned char *data, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
    }
    if (i < n) { /* one or two bytes left: pad to four characters */
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* ---- HTML -------------------------------------------------------------- */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Reads a whole (small) file into memory. */
static cz_status slurp(const char *path, unsigned char **data, size_t *n)
{
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cz_fail(CZ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    cz_status status = CZ_OK;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        unsigned char *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!buf)
        status = cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
    else if (ferror(f))
        status = cz_fail(CZ_ERR_IO, "%s: read failed", path);
    fclose(f);
    if (status != CZ_OK) {
        free(buf);
        return status;
    }
    *data = buf;
    *n = len;
    return CZ_OK;
}

/* A thumbnail of img (longest side CZ_EVAL_THUMB_SIDE at most) as a base64
 * JPEG, encoded by src/image through a file in the scratch folder dir, and
 * the size to show it at: smaller images are shown enlarged to that side. */
static cz_status thumbnail_base64(const cz_image *img, const char *dir,
                                  char **out, int *show_w, int *show_h)
{
    *out = NULL;
    const int W = img->width, H = img->height, side = W > H ? W : H;
    int tw = W, th = H;
    if (side > CZ_EVAL_THUMB_SIDE) {
        tw = (int)lround((double)W * CZ_EVAL_THUMB_SIDE / side);
        th = (int)lround((double)H * CZ_EVAL_THUMB_SIDE / side);
        tw = tw < 1 ? 1 : tw;
        th = th < 1 ? 1 : th;
    }
    *show_w = (int)lround((double)tw * CZ_EVAL_THUMB_SIDE / (tw > th ? tw : th));
    *show_h = (int)lround((double)th * CZ_EVAL_THUMB_SIDE / (tw > th ? tw : th));
    cz_image *thumb = NULL;
    unsigned char *bytes = NULL;
    size_t n = 0;
    char *path = NULL;
    if (asprintf(&path, "%s/thumb.jpg", dir) < 0)
        return cz_fail(CZ_ERR_NOMEM, "thumbnail: out of memory");
    cz_status status = cz_eval_resize(img, tw, th, &thumb);
    if (status == CZ_OK)
        status = cz_image_save(path, thumb, CZ_EVAL_THUMB_QUALITY);
    if (status == CZ_OK) {
        status = slurp(path, &bytes, &n);
        unlink(path);
    }
    if (status == CZ_OK && !(*out = cz_base64_encode(bytes, n)))
        status = cz_fail(CZ_ERR_NOMEM, "thumbnail: out of memory");
    cz_image_free(thumb);
    free(bytes);
    free(path);
    return status;
}

static const char HTML_STYLE[] =
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;"
    "padding:0 1em;color:#222}\n"
    "table{border-collapse:collapse;margin:1em 0}\n"
    "th,td{padding:.3em .8em;border-bottom:1px solid #ccc;text-align:right}\n"
    "th:first-child,td:first-child{text-align:left}\n"
    "tr.gray td{color:#666}\n"
    ".ex{display:flex;gap:1em;flex-wrap:wrap;margin-bottom:2em}\n"
    "figure{margin:0}figcaption{font-size:.85em;color:#555}\n"
    "img{display:block;image-rendering:pixelated}\n"
    "dt{font-weight:bold}dd{margin:0 0 .6em 1.5em}\n";

static void html_mean_row(FILE *f, const char *cls, const char *label,
                          const cz_eval_mean *m)
{
    fprintf(f, "<tr class=\"%s\"><td>%s</td><td>%.2f</td><td>%.4f</td>"
               "<td>%.3f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td>"
               "<td>%.4f</td></tr>\n",
            cls, label, m->psnr, m->ssim, m->delta_e, m->cf, m->cf_truth,
            m->delta_cf, m->auc);
}

static cz_status html_examples(FILE *f, const cz_eval_report *r,
                               const char *scratch)
{
    static const char *const captions[3] = {"grayscale baseline", "model",
                                            "ground truth"};
    for (size_t i = 0; i < r->n_examples; i++) {
        const cz_eval_example *e = &r->examples[i];
        const cz_eval_result *x = &r->results[e->index];
        fprintf(f, "<h3>%s: ", e->label);
        html_text(f, x->name);
        fprintf(f, "</h3>\n<p>model: &Delta;E %.3f, PSNR %.2f dB, SSIM %.4f, "
                   "AuC %.4f, CF %.2f (truth %.2f); baseline: &Delta;E %.3f, "
                   "PSNR %.2f dB</p>\n",
                x->model.delta_e, x->model.psnr, x->model.ssim, x->model.auc,
                x->model.cf, x->model.cf_truth, x->gray.delta_e, x->gray.psnr);
        const cz_image *imgs[3] = {e->gray, e->model, e->truth};
        if (!imgs[0] || !imgs[1] || !imgs[2])
            continue;
        fputs("<div class=\"ex\">\n", f);
        for (int k = 0; k < 3; k++) {
            char *b64 = NULL;
            int w, h;
            cz_status s = thumbnail_base64(imgs[k], scratch, &b64, &w, &h);
            if (s != CZ_OK)
                return s;
            fprintf(f, "<figure><img alt=\"%s\" width=\"%d\" height=\"%d\" "
                       "src=\"data:image/jpeg;base64,%s\">"
                       "<figcaption>%s</figcaption></figure>\n",
                    captions[k], w, h, b64, captions[k]);
            free(b64);
        }
        fputs("</div>\n", f);
    }
    return CZ_OK;
}

static cz_status html_body(FILE *f, const char *path, const cz_eval_report *r)
{
    /* A scratch folder beside the page for the thumbnails' JPEG files. */
    char *scratch = NULL;
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    if (asprintf(&scratch, "%.*s/.cz-thumbs-XXXXXX", dir_len, slash ? path : ".") < 0)
        return cz_fail(CZ_ERR_NOMEM, "%s: out of memory", path);
    if (!mkdtemp(scratch)) {
        cz_status s = cz_fail(CZ_ERR_IO, "%s: cannot create a scratch folder: %s",
                              path, strerror(errno));
        free(scratch);
        return s;
    }

    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>colorize eval</title>\n<style>\n", f);
    fputs(HTML_STYLE, f);
    fputs("</style></head><body>\n<h1>colorize eval</h1>\n<p>", f);
    fprintf(f, "%zu image%s evaluated", r->n_results, r->n_results == 1 ? "" : "s");
    if (r->n_failures)
        fprintf(f, ", <strong>%zu failed</strong>", r->n_failures);
    fputs(". Originals: <code>", f);
    html_text(f, r->real_dir ? r->real_dir : "");
    fputs(r->model_path ? "</code>; model: <code>" : "</code>; predictions: <code>", f);
    html_text(f, r->model_path ? r->model_path : r->pred_dir ? r->pred_dir : "");
    fputs("</code>; ", f);
    if (r->size)
        fprintf(f, "compared at %dx%d.</p>\n", r->size, r->size);
    else
        fputs("compared at each image's own size.</p>\n", f);

    fputs("<table><tr><th></th><th>PSNR (dB)</th><th>SSIM</th><th>&Delta;E 2000</th>"
          "<th>CF</th><th>CF truth</th><th>&Delta;CF</th><th>AuC</th></tr>\n", f);
    html_mean_row(f, "gray", "grayscale baseline", &r->gray);
    html_mean_row(f, "model", "model", &r->model);
    fputs("</table>\n<p>Higher is better for PSNR, SSIM and AuC; lower for "
          "&Delta;E and &Delta;CF. The baseline is the ground truth's L* with "
          "a* = b* = 0: what adding no colour at all scores.</p>\n", f);
    if (r->has_spread) {
        const cz_eval_spread *s = &r->spread;
        fprintf(f, "<p>95%% bootstrap intervals over these %zu images (how far the "
                "means could move with other images of the same kind): PSNR, model "
                "&minus; gray %+.2f dB [%+.2f, %+.2f]; &Delta;E 2000, gray &minus; "
                "model %+.3f [%+.3f, %+.3f]; &Delta;CF %.2f [%.2f, %.2f].</p>\n",
                r->n_results, r->model.psnr - r->gray.psnr, s->psnr_gain.lo,
                s->psnr_gain.hi, r->gray.delta_e - r->model.delta_e,
                s->delta_e_gain.lo, s->delta_e_gain.hi, r->model.delta_cf,
                s->delta_cf.lo, s->delta_cf.hi);
    }

    cz_status status = CZ_OK;
    if (r->n_examples) {
        fputs("<h2>Examples by &Delta;E: gray | model | truth</h2>\n", f);
        status = html_examples(f, r, scratch);
    }
    if (status == CZ_OK && r->n_failures) {
        fputs("<h2>Not evaluated</h2>\n<ul>\n", f);
        for (size_t i = 0; i < r->n_failures; i++) {
            fputs("<li><code>", f);
            html_text(f, r->failures[i].name);
            fputs("</code>: ", f);
            html_text(f, r->failures[i].message);
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    if (status == CZ_OK)
        fprintf(f,
            "<h2>Definitions</h2>\n<dl>\n"
            "<dt>PSNR</dt><dd>10 log<sub>10</sub>(255&sup2; / MSE) over R, G, B of "
            "8-bit sRGB; identical images are capped at %.0f dB.</dd>\n"
            "<dt>SSIM</dt><dd>skimage structural_similarity per R, G, B channel, "
            "averaged: Gaussian window &sigma; = 1.5, population covariance, data "
            "range 255 (Wang et al. 2004).</dd>\n"
            "<dt>&Delta;E 2000</dt><dd>mean CIEDE2000 over pixels (Sharma, Wu &amp; "
            "Dalal 2005), CIELab by skimage's rgb2lab.</dd>\n"
            "<dt>CF</dt><dd>colourfulness (Hasler &amp; S&uuml;sstrunk 2003, as "
            "DDColor computes it): rg = |R&minus;G|, yb = |&frac12;(R+G)&minus;B|, "
            "&radic;(&sigma;<sub>rg</sub>&sup2;+&sigma;<sub>yb</sub>&sup2;) + 0.3 "
            "&radic;(&mu;<sub>rg</sub>&sup2;+&mu;<sub>yb</sub>&sup2;). &Delta;CF = "
            "|mean CF &minus; mean CF truth|.</dd>\n"
            "<dt>AuC</dt><dd>share of pixels whose a*b* error is at most t, "
            "averaged over t = 0, 1, &hellip;, %d (Zhang et al. 2016).</dd>\n"
            "</dl>\n<p>All values are means over images; see docs/metrics.md.</p>\n"
            "</body></html>\n",
            CZ_PSNR_CAP, CZ_AUC_MAX_THRESHOLD);
    rmdir(scratch);
    free(scratch);
    return status;
}

cz_status cz_eval_write_html(const char *path, const cz_eval_report *r)
{
    return write_atomically(path, html_body, r);
}

/* ---- The table on the terminal ----------------------------------------- */

static void print_row(FILE *out, const char *label, const cz_eval_mean *m)
{
    fprintf(out, "%-10s %8.2f %7.4f %7.3f %7.2f %8.2f %7.2f %7.4f\n", label,
            m->psnr, m->ssim, m->delta_e, m->cf, m->cf_truth, m->delta_cf, m->auc);
}

void cz_eval_print_table(FILE *out, const cz_eval_report *r)
{
    fprintf(out, "%-10s %8s %7s %7s %7s %8s %7s %7s\n", "", "PSNR dB", "SSIM",
            "dE2000", "CF", "CF truth", "dCF", "AuC");
    print_row(out, "grayscale", &r->gray);
    print_row(out, "model", &r->model);
    if (!r->has_spread)
        return;
    const cz_eval_spread *s = &r->spread;
    fprintf(out, "95%% bootstrap intervals over these %zu images:\n"
            "  PSNR, model - gray %+.2f dB [%+.2f, %+.2f]; dE2000, gray - model "
            "%+.3f [%+.3f, %+.3f]; dCF %.2f [%.2f, %.2f]\n", r->n_results,
            r->model.psnr - r->gray.psnr, s->psnr_gain.lo, s->psnr_gain.hi,
            r->gray.delta_e - r->model.delta_e, s->delta_e_gain.lo,
            s->delta_e_gain.hi, r->model.delta_cf, s->delta_cf.lo, s->delta_cf.hi);
}
