/* The Turing-test server and report: the protocol driven over HTTP by
 * scripted participants whose answers are planned, every validation
 * rejection, persistence across a restart, and the report's exact counts
 * (from the library and from `colorize turing report`). */
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "colorize_path.h"
#include "image/image.h"
#include "image/lab.h"
#include "turing/turing.h"
#include "turing_http.h"

static char root[256];
static char db_path[300];
static sqlite3 *truth_db; /* the test's own read-only view of the answers */

/* ---- photos generated for the test ---- */

static void path_of(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s/%s", root, dir, name);
}

/* A reddish photo with some texture; w x h, so the server must crop. */
static cz_image *real_photo(int k, int w, int h)
{
    cz_image *img = cz_image_new(w, h, 3, 8);
    unsigned char *p = img->data;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++, p += 3) {
            p[0] = (unsigned char)(170 + (x * 3 + k * 7) % 60);
            p[1] = (unsigned char)(40 + (y * 2 + k) % 30);
            p[2] = (unsigned char)(30 + (x + y) % 25);
        }
    return img;
}

static void make_photos(void)
{
    static const char *const dirs[] = {"real", "gray", "tint", "empty", "grayreal",
                                       "other"};
    char path[512];
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
        CHECK(mkdir(path, 0755) == 0, "mkdir %s", path);
    }
    for (int k = 0; k < 6; k++) {
        char name[32];
        cz_image *img = real_photo(k, 48 + 8 * k, 32);
        snprintf(name, sizeof name, "p%d.jpg", k);
        path_of(path, sizeof path, "real", name);
        CHECK(cz_image_save(path, img, 95) == CZ_OK, "%s", cz_last_error());
        /* "gray": the same photo's lightness only, as PNG, all but p5. */
        cz_image *g = cz_image_new(img->width, img->height, 1, 8);
        unsigned char *s = img->data, *d = g->data;
        for (int i = 0; i < img->width * img->height; i++)
            d[i] = (unsigned char)((s[3 * i] * 3 + s[3 * i + 1] * 6 + s[3 * i + 2]) / 10);
        if (k < 5) {
            snprintf(name, sizeof name, "p%d.png", k);
            path_of(path, sizeof path, "gray", name);
            CHECK(cz_image_save(path, g, 95) == CZ_OK, "%s", cz_last_error());
        }
        snprintf(name, sizeof name, "p%d.png", k);
        path_of(path, sizeof path, "grayreal", name);
        CHECK(cz_image_save(path, g, 95) == CZ_OK, "%s", cz_last_error());
        /* "tint": a wrong, bluish colouring, all six. */
        unsigned char *t = img->data;
        for (int i = 0; i < img->width * img->height; i++) {
            unsigned char r = t[3 * i];
            t[3 * i] = t[3 * i + 2];
            t[3 * i + 2] = r;
        }
        snprintf(name, sizeof name, "p%d.jpeg", k);
        path_of(path, sizeof path, "tint", name);
        CHECK(cz_image_save(path, img, 95) == CZ_OK, "%s", cz_last_error());
        cz_image_free(img);
        cz_image_free(g);
    }
    /* Things every folder listing must skip. */
    path_of(path, sizeof path, "real", "notes.txt");
    FILE *f = fopen(path, "w");
    fputs("not a photo\n", f);
    fclose(f);
    path_of(path, sizeof path, "other", "q1.jpg");
    cz_image *img = real_photo(9, 40, 40);
    CHECK(cz_image_save(path, img, 90) == CZ_OK, "%s", cz_last_error());
    cz_image_free(img);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- configuration ---- */

static char real_dir[300], gray_dir[300], tint_dir[300];
static cz_turing_method methods[2];

static void config(cz_turing_config *cfg)
{
    cz_turing_config_default(cfg);
    snprintf(real_dir, sizeof real_dir, "%s/real", root);
    snprintf(gray_dir, sizeof gray_dir, "%s/gray", root);
    snprintf(tint_dir, sizeof tint_dir, "%s/tint", root);
    methods[0] = (cz_turing_method){"gray", gray_dir};
    methods[1] = (cz_turing_method){"tint", tint_dir};
    cfg->real_dir = real_dir;
    cfg->methods = methods;
    cfg->n_methods = 2;
    cfg->db_path = db_path;
    cfg->port = 0;
    cfg->seed = 12345;
}

static void test_bad_configs(void)
{
    cz_turing_config cfg;
    cz_turing_server *srv = NULL;
    char dir[300], other[300];
    cz_turing_method m[2];

    config(&cfg);
    snprintf(dir, sizeof dir, "%s/missing", root);
    cfg.real_dir = dir;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_ERR_IO && !srv,
          "missing real folder: %s", cz_last_error());

    config(&cfg);
    snprintf(dir, sizeof dir, "%s/empty", root);
    cfg.real_dir = dir;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_ERR_INVALID && !srv,
          "empty real folder: %s", cz_last_error());

    config(&cfg);
    m[0] = (cz_turing_method){"same", gray_dir};
    m[1] = (cz_turing_method){"same", tint_dir};
    cfg.methods = m;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_ERR_INVALID &&
              strstr(cz_last_error(), "twice"),
          "duplicate method: %s", cz_last_error());

    config(&cfg);
    m[0] = (cz_turing_method){"../x", gray_dir};
    cfg.methods = m;
    cfg.n_methods = 1;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_ERR_INVALID,
          "bad method name: %s", cz_last_error());

    config(&cfg);
    snprintf(other, sizeof other, "%s/other", root);
    m[0] = (cz_turing_method){"other", other};
    cfg.methods = m;
    cfg.n_methods = 1;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_ERR_INVALID &&
              strstr(cz_last_error(), "no photo"),
          "method matching nothing: %s", cz_last_error());

    config(&cfg);
    snprintf(dir, sizeof dir, "%s/grayreal", root);
    cfg.real_dir = dir;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_ERR_INVALID &&
              strstr(cz_last_error(), "vigilance"),
          "gray real photos: %s", cz_last_error());

    config(&cfg);
    cfg.bind_addr = "not-an-address";
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_ERR_INVALID,
          "bad bind address: %s", cz_last_error());
    CHECK(access(db_path, F_OK) != 0, "a failed start created the database");
}

/* ---- participants ---- */

typedef struct {
    http_client c;
    char cookie[80];
    char sid[40];
    char method[80];
    int total, practice, next;
} participant;

static void participant_init(participant *p, int port)
{
    memset(p, 0, sizeof *p);
    p->c.port = port;
    p->c.fd = -1;
}

/* POST /api/session; returns the HTTP status. */
static int start(participant *p, const char *code)
{
    char body[96] = "";
    if (code)
        snprintf(body, sizeof body, "code=%s", code);
    http_response r;
    http_do(&p->c, "POST", "/api/session", p->cookie, body, &r);
    int status = r.status;
    if (r.cookie[0])
        snprintf(p->cookie, sizeof p->cookie, "%s", r.cookie);
    if (status == 200) {
        CHECK(json_str(r.body, "session", p->sid, sizeof p->sid), "%s", r.body);
        p->total = (int)json_int(r.body, "total");
        p->practice = (int)json_int(r.body, "practice");
        p->next = (int)json_int(r.body, "next");
        sqlite3_stmt *st;
        sqlite3_prepare_v2(truth_db, "SELECT method FROM sessions WHERE token = ?",
                           -1, &st, NULL);
        sqlite3_bind_text(st, 1, p->sid, -1, SQLITE_STATIC);
        CHECK(sqlite3_step(st) == SQLITE_ROW, "session %s not in the db", p->sid);
        snprintf(p->method, sizeof p->method, "%s",
                 (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    http_response_free(&r);
    return status;
}

/* What the database says about a trial: its kind and the fake side. */
static void truth(const char *token, char *kind, size_t cap, char *fake)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(truth_db, "SELECT kind, fake FROM trials WHERE token = ?",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
    kind[0] = '\0';
    *fake = '?';
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(kind, cap, "%s", (const char *)sqlite3_column_text(st, 0));
        *fake = ((const char *)sqlite3_column_text(st, 1))[0];
    }
    sqlite3_finalize(st);
}

/* Mean hue angle (degrees) and chroma of a served JPEG. */
static void hue_of(const char *bytes, size_t len, double *hue, double *chroma)
{
    char path[400];
    snprintf(path, sizeof path, "%s/served.jpg", root);
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, len, f);
    fclose(f);
    cz_image *img = NULL;
    *hue = *chroma = NAN;
    CHECK(cz_image_load(path, NULL, &img) == CZ_OK, "%s", cz_last_error());
    if (!img)
        return;
    CHECK(img->width == 256 && img->height == 256 && img->channels == 3,
          "served image is %dx%dx%d", img->width, img->height, img->channels);
    size_t n = (size_t)img->width * img->height;
    float *L = malloc(3 * n * sizeof *L);
    cz_image_to_lab_planes(img, L, L + n, L + 2 * n);
    double a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        a += L[n + i];
        b += L[2 * n + i];
    }
    *hue = atan2(b, a) * 180.0 / M_PI;
    *chroma = sqrt(a * a + b * b) / (double)n;
    free(L);
    cz_image_free(img);
}

typedef struct {
    int fool;       /* be fooled on this many test trials (the first ones) */
    int miss;       /* answer this many vigilance trials wrongly */
    int stop_after; /* answer this many trials in all, then leave; 0 = all */
} plan;

typedef struct {
    int answered, tests, fooled, vigilance, missed;
} tally;

static int vigilance_checked;

/* Plays the participant's session from its current trial, as planned. */
static tally play(participant *p, plan pl)
{
    tally t = {0};
    char path[160], body[64];
    for (;;) {
        if (pl.stop_after && t.answered == pl.stop_after)
            break;
        http_response r, ia, ib;
        snprintf(path, sizeof path, "/api/session/%s/trial", p->sid);
        http_do(&p->c, "GET", path, NULL, NULL, &r);
        CHECK(r.status == 200, "trial: %d %s", r.status, r.body);
        if (r.status != 200 || json_bool(r.body, "done") == 1) {
            http_response_free(&r);
            break;
        }
        int idx = (int)json_int(r.body, "index");
        char a[80], b[80], token[40], kind[16], fake;
        CHECK(idx == p->next, "trial index %d, expected %d", idx, p->next);
        CHECK(json_str(r.body, "a", a, sizeof a) && json_str(r.body, "b", b, sizeof b),
              "%s", r.body);
        CHECK(json_bool(r.body, "practice") == (idx < p->practice), "%s", r.body);
        snprintf(token, sizeof token, "%.32s", a + 5);
        truth(token, kind, sizeof kind, &fake);
        CHECK(strcmp(kind, idx < p->practice ? "practice" : kind) == 0 &&
                  (idx >= p->practice) == (strcmp(kind, "practice") != 0),
              "trial %d is of kind %s", idx, kind);
        http_do(&p->c, "GET", a, NULL, NULL, &ia);
        http_do(&p->c, "GET", b, NULL, NULL, &ib);
        CHECK(ia.status == 200 && ib.status == 200 &&
                  strcmp(ia.content_type, "image/jpeg") == 0 && ia.len > 100 &&
                  (unsigned char)ia.body[0] == 0xFF &&
                  (unsigned char)ia.body[1] == 0xD8,
              "images: %d %d %s", ia.status, ib.status, ia.content_type);
        CHECK(ia.len != ib.len || memcmp(ia.body, ib.body, ia.len) != 0,
              "trial %d shows the same image twice", idx);
        /* The vigilance copy keeps the real photo's chroma and turns its
         * hue by 90 to 270 degrees. */
        if (strcmp(kind, "vigilance") == 0 && vigilance_checked < 3) {
            double h_real, c_real, h_fake, c_fake;
            http_response *real = fake == 'a' ? &ib : &ia;
            http_response *rec = fake == 'a' ? &ia : &ib;
            hue_of(real->body, real->len, &h_real, &c_real);
            hue_of(rec->body, rec->len, &h_fake, &c_fake);
            double turn = fabs(fmod(h_fake - h_real + 540.0, 360.0) - 180.0);
            CHECK(turn >= 80.0 && fabs(c_fake - c_real) < 0.25 * c_real,
                  "vigilance hue turned by %.1f degrees, chroma %.1f -> %.1f",
                  turn, c_real, c_fake);
            vigilance_checked++;
        }
        http_response_free(&ia);
        http_response_free(&ib);
        http_response_free(&r);

        char pick = fake;
        const char *real_side = fake == 'a' ? "b" : "a";
        if (strcmp(kind, "test") == 0) {
            t.tests++;
            if (t.fooled < pl.fool) {
                pick = real_side[0];
                t.fooled++;
            }
        } else if (strcmp(kind, "vigilance") == 0) {
            t.vigilance++;
            if (t.missed < pl.miss) {
                pick = real_side[0];
                t.missed++;
            }
        }
        snprintf(path, sizeof path, "/api/session/%s/answer", p->sid);
        snprintf(body, sizeof body, "trial=%d&fake=%c", idx, pick);
        http_do(&p->c, "POST", path, NULL, body, &r);
        CHECK(r.status == 200, "answer %d: %d %s", idx, r.status, r.body);
        CHECK(json_int(r.body, "next") == idx + 1, "%s", r.body);
        int correct = json_bool(r.body, "correct");
        if (idx < p->practice)
            CHECK(correct == (pick == fake), "practice feedback %s", r.body);
        else
            CHECK(correct == -1, "feedback on a test trial: %s", r.body);
        CHECK(json_bool(r.body, "done") == (idx + 1 == p->total), "%s", r.body);
        http_response_free(&r);
        p->next = idx + 1;
        t.answered++;
    }
    return t;
}

/* ---- expected report ---- */

typedef struct {
    char method[80];
    int participants, excluded, incomplete;
    long trials, fooled;
    double rates[8]; /* of the counted participants */
} expected;

static expected want[2];

static expected *want_for(const char *method)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(want[i].method, method) == 0)
            return &want[i];
    return NULL;
}

/* Records a finished session under its method, as the report must count it. */
static void expect_done(const participant *p, tally t)
{
    expected *e = want_for(p->method);
    CHECK(e != NULL, "unknown method %s", p->method);
    if (!e)
        return;
    if (t.missed > 1) {
        e->excluded++;
        return;
    }
    e->rates[e->participants++] = (double)t.fooled / t.tests;
    e->trials += t.tests;
    e->fooled += t.fooled;
}

/* ---- the tests ---- */

static void test_page_and_rejections(int port)
{
    http_client c = {port, -1};
    http_response r;
    char path[200], raw[2048];

    http_do(&c, "GET", "/", NULL, NULL, &r);
    CHECK(r.status == 200 && strstr(r.content_type, "text/html") &&
              strstr(r.body, "Which one is fake?"),
          "page: %d %s", r.status, r.content_type);
    http_response_free(&r);

    /* Unknown sessions, malformed tokens. */
    static const char unknown[] = "0123456789abcdef0123456789abcdef";
    snprintf(path, sizeof path, "/api/session/%s/trial", unknown);
    http_do(&c, "GET", path, NULL, NULL, &r);
    CHECK(r.status == 404 && strstr(r.body, "unknown session"), "%d %s",
          r.status, r.body);
    http_response_free(&r);
    snprintf(path, sizeof path, "/api/session/%s/answer", unknown);
    http_do(&c, "POST", path, NULL, "trial=0&fake=a", &r);
    CHECK(r.status == 404, "answer to an unknown session: %d", r.status);
    http_response_free(&r);
    http_do(&c, "GET", "/api/session/0123456789ABCDEF0123456789ABCDEF/trial",
            NULL, NULL, &r);
    CHECK(r.status == 404, "upper-case token: %d", r.status);
    http_response_free(&r);
    http_do(&c, "GET", "/api/session/../trial", NULL, NULL, &r);
    CHECK(r.status == 404 || r.status == 400, "dots: %d", r.status);
    http_response_free(&r);

    /* Paths that try to reach files: never anything but 4xx, never a file. */
    static const char *const traversal[] = {
        "/img/../../etc/passwd",
        "/img/%2e%2e/%2e%2e/etc/passwd",
        "/img/..%2f..%2fetc%2fpasswd",
        "/../../../../etc/passwd",
        "/img/0123456789abcdef0123456789abcdef/../../../etc/passwd",
        "/img/0123456789abcdef0123456789abcdef/a",
        "/img/0123456789abcdef0123456789abcdef/c",
        "/img/0123456789abcdef0123456789abcdef/a/",
        "/img//etc/passwd",
        "/img/%00",
        "//etc/passwd",
        "/src/turing/server.c",
        "/index.html",
        "/favicon.ico",
    };
    for (size_t i = 0; i < sizeof traversal / sizeof *traversal; i++) {
        int n = snprintf(raw, sizeof raw,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                         traversal[i]);
        http_raw(port, raw, (size_t)n, &r);
        CHECK(r.status >= 400 && r.status < 500 &&
                  (!r.body || !strstr(r.body, "root:")),
              "%s: status %d", traversal[i], r.status);
        http_response_free(&r);
    }

    /* Methods each URL does not take. */
    http_do(&c, "POST", "/", NULL, "", &r);
    CHECK(r.status == 405, "POST /: %d", r.status);
    http_response_free(&r);
    http_do(&c, "GET", "/api/session", NULL, NULL, &r);
    CHECK(r.status == 405, "GET /api/session: %d", r.status);
    http_response_free(&r);
    http_do(&c, "DELETE", "/api/session", NULL, NULL, &r);
    CHECK(r.status == 405, "DELETE /api/session: %d", r.status);
    http_response_free(&r);

    /* Bad session-start bodies. */
    static const char *const bad_start[] = {"code=", "code=a b", "code=x&code=y",
                                            "name=x", "code=%2e%2e", "garbage"};
    for (size_t i = 0; i < sizeof bad_start / sizeof *bad_start; i++) {
        http_do(&c, "POST", "/api/session", NULL, bad_start[i], &r);
        CHECK(r.status == 400, "start body '%s': %d", bad_start[i], r.status);
        http_response_free(&r);
    }

    /* Oversized bodies: announced (413 before the body is read) ... */
    int n = snprintf(raw, sizeof raw,
                     "POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Length: 100000\r\n\r\ncode=x");
    http_raw(port, raw, (size_t)n, &r);
    CHECK(r.status == 413, "announced oversized body: %d", r.status);
    http_response_free(&r);
    /* ... or just long: 2 KiB sent in full. */
    char *big = malloc(2100);
    memset(big, 'x', 2100);
    memcpy(big, "code=", 5);
    big[2099] = '\0';
    http_do(&c, "POST", "/api/session", NULL, big, &r);
    CHECK(r.status == 413, "oversized body: %d", r.status);
    http_response_free(&r);
    free(big);
    http_close(&c);
    /* ... or chunked with no length: the connection is dropped. */
    char chunked[3000];
    n = snprintf(chunked, sizeof chunked,
                 "POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n800\r\n");
    memset(chunked + n, 'y', 2048);
    n += 2048;
    n += snprintf(chunked + n, sizeof chunked - (size_t)n, "\r\n0\r\n\r\n");
    http_raw(port, chunked, (size_t)n, &r);
    CHECK(r.status == 0 || r.status == 413, "chunked oversized body: %d",
          r.status);
    http_response_free(&r);
    /* Garbage that is not HTTP at all. */
    http_raw(port, "\x01\x02 nonsense\r\n\r\n", 15, &r);
    CHECK(r.status == 0 || (r.status >= 400 && r.status < 500),
          "garbage: %d", r.status);
    http_response_free(&r);

    /* The server still answers after all that. */
    http_do(&c, "GET", "/", NULL, NULL, &r);
    CHECK(r.status == 200, "page after abuse: %d", r.status);
    http_response_free(&r);
    http_close(&c);
}

/* Replays, skips and answers before a trial is shown, in a fresh session. */
static void test_sequence_rejections(participant *p)
{
    char path[160];
    http_response r;
    snprintf(path, sizeof path, "/api/session/%s/answer", p->sid);
    http_do(&p->c, "POST", path, NULL, "trial=0&fake=a", &r);
    CHECK(r.status == 409 && strstr(r.body, "not been shown"),
          "answer before showing: %d %s", r.status, r.body);
    http_response_free(&r);

    snprintf(path, sizeof path, "/api/session/%s/trial", p->sid);
    http_do(&p->c, "GET", path, NULL, NULL, &r);
    CHECK(r.status == 200 && json_int(r.body, "index") == 0, "%s", r.body);
    http_response_free(&r);
    /* Asking again gives the same trial, not the next. */
    http_do(&p->c, "GET", path, NULL, NULL, &r);
    CHECK(r.status == 200 && json_int(r.body, "index") == 0, "%s", r.body);
    http_response_free(&r);

    snprintf(path, sizeof path, "/api/session/%s/answer", p->sid);
    static const char *const bad[] = {"trial=0&fake=c", "trial=-1&fake=a",
                                      "trial=0", "fake=a", "trial=0&fake=a&x=1",
                                      "trial=0x0&fake=a", "trial=99999999&fake=a",
                                      "trial=0&fake=a&fake=b", "trial=+0&fake=a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        http_do(&p->c, "POST", path, NULL, bad[i], &r);
        CHECK(r.status == 400, "answer body '%s': %d %s", bad[i], r.status,
              r.body);
        http_response_free(&r);
    }
    http_do(&p->c, "POST", path, NULL, "trial=1&fake=a", &r);
    CHECK(r.status == 409 && strstr(r.body, "not the current"),
          "out-of-order answer: %d %s", r.status, r.body);
    http_response_free(&r);
    http_do(&p->c, "POST", path, NULL, "trial=0&fake=a", &r);
    CHECK(r.status == 200 && json_int(r.body, "next") == 1, "%d %s", r.status,
          r.body);
    http_response_free(&r);
    http_do(&p->c, "POST", path, NULL, "trial=0&fake=b", &r);
    CHECK(r.status == 409 && strstr(r.body, "already answered"),
          "replayed answer: %d %s", r.status, r.body);
    http_response_free(&r);
    p->next = 1;
}

static long count(const char *sql)
{
    sqlite3_stmt *st;
    long n = -1;
    if (sqlite3_prepare_v2(truth_db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void check_report(void)
{
    cz_turing_report_options opt;
    cz_turing_report_options_default(&opt);
    cz_turing_report *rep = NULL, *again = NULL;
    CHECK(cz_turing_report_compute(db_path, &opt, &rep) == CZ_OK, "%s",
          cz_last_error());
    CHECK(cz_turing_report_compute(db_path, &opt, &again) == CZ_OK, "%s",
          cz_last_error());
    if (!rep || !again)
        return;
    CHECK(rep->n_methods == 2, "%d methods in the report", rep->n_methods);
    for (int i = 0; i < rep->n_methods; i++) {
        const cz_turing_method_report *m = &rep->methods[i];
        const expected *e = want_for(m->method);
        CHECK(e != NULL, "method %s", m->method);
        if (!e)
            continue;
        CHECK(m->participants == e->participants && m->trials == e->trials &&
                  m->fooled == e->fooled && m->excluded == e->excluded &&
                  m->incomplete == e->incomplete,
              "%s: got %d participants, %ld/%ld fooled, %d excluded, %d "
              "incomplete; want %d, %ld/%ld, %d, %d",
              m->method, m->participants, m->fooled, m->trials, m->excluded,
              m->incomplete, e->participants, e->fooled, e->trials,
              e->excluded, e->incomplete);
        CHECK(fabs(m->fool_rate - (double)e->fooled / e->trials) < 1e-12,
              "%s: fool rate %g", m->method, m->fool_rate);
        CHECK(m->se == again->methods[i].se, "%s: bootstrap not reproducible",
              m->method);
    }
    cz_turing_report_free(rep);
    cz_turing_report_free(again);
}

/* Every counted participant has 36 test trials, so the pooled rate is the
 * mean of their rates and its bootstrap standard error tends to the plug-in
 * value sqrt(sum (r_i - mean)^2) / n; 1000 resamples land within a few
 * percent of it (their own error is about SE / sqrt(2000)). One
 * participant gives exactly 0. */
static void check_bootstrap(void)
{
    cz_turing_report *rep = NULL;
    CHECK(cz_turing_report_compute(db_path, NULL, &rep) == CZ_OK, "%s",
          cz_last_error());
    for (int i = 0; rep && i < rep->n_methods; i++) {
        const cz_turing_method_report *m = &rep->methods[i];
        const expected *e = want_for(m->method);
        if (!e || e->participants == 0)
            continue;
        double mean = 0, ss = 0;
        for (int k = 0; k < e->participants; k++)
            mean += e->rates[k] / e->participants;
        for (int k = 0; k < e->participants; k++)
            ss += (e->rates[k] - mean) * (e->rates[k] - mean);
        double want_se = sqrt(ss) / e->participants;
        if (want_se == 0)
            CHECK(m->se == 0.0, "%s: SE %g, expected 0", m->method, m->se);
        else
            CHECK(fabs(m->se - want_se) < 0.1 * want_se,
                  "%s: bootstrap SE %g, expected about %g", m->method, m->se,
                  want_se);
    }
    cz_turing_report_free(rep);
}

/* `colorize turing report` prints the same counts. */
static void check_cli_report(void)
{
    char cmd[700], line[512];
    snprintf(cmd, sizeof cmd, "%s/colorize turing report --db '%s'",
             build_dir(), db_path);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL, "cannot run %s", cmd);
    if (!f)
        return;
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        char method[80], rate[16], se[16];
        int participants, excluded, incomplete;
        long trials;
        if (sscanf(line, "%79s %15s %15s %d %ld %d %d", method, rate, se,
                   &participants, &trials, &excluded, &incomplete) != 7)
            continue;
        const expected *e = want_for(method);
        if (!e)
            continue;
        rows++;
        char want_rate[16];
        snprintf(want_rate, sizeof want_rate, "%.1f%%",
                 100.0 * (double)e->fooled / e->trials);
        CHECK(strcmp(rate, want_rate) == 0 && participants == e->participants &&
                  trials == e->trials && excluded == e->excluded &&
                  incomplete == e->incomplete,
              "CLI report line: %s", line);
    }
    CHECK(pclose(f) == 0, "%s failed", cmd);
    CHECK(rows == 2, "CLI report has %d method rows", rows);
}

int main(void)
{
    snprintf(root, sizeof root, "%s/cz-test-turing-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db_path, sizeof db_path, "%s/answers.db", root);
    make_photos();
    test_bad_configs();

    cz_turing_config cfg;
    config(&cfg);
    cz_turing_server *srv = NULL;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_OK, "start: %s",
          cz_last_error());
    if (!srv)
        return check_finish("test_turing");
    int port = cz_turing_server_port(srv);
    CHECK(port > 0, "port %d", port);
    CHECK(sqlite3_open_v2(db_path, &truth_db, SQLITE_OPEN_READONLY, NULL) ==
              SQLITE_OK, "open %s", db_path);
    snprintf(want[0].method, sizeof want[0].method, "gray");
    snprintf(want[1].method, sizeof want[1].method, "tint");

    test_page_and_rejections(port);

    /* P1: a session with the protocol's shape, rejections first, then
     * played to the end: fooled on 12 of 36 test trials, one vigilance
     * slip (allowed). */
    participant p1;
    participant_init(&p1, port);
    CHECK(start(&p1, NULL) == 200 && p1.cookie[0], "P1 start");
    CHECK(p1.practice == 10 && p1.total == 50 && p1.next == 0,
          "session shape: %d practice, %d total", p1.practice, p1.total);
    CHECK(count("SELECT COUNT(*) FROM trials t JOIN sessions s ON s.id = "
                "t.session WHERE t.kind = 'vigilance'") == 4,
          "vigilance trials per session");
    test_sequence_rejections(&p1);
    tally t1 = play(&p1, (plan){.fool = 12, .miss = 1});
    CHECK(t1.tests == 36 && t1.vigilance == 4 && t1.fooled == 12 &&
              t1.missed == 1 && t1.answered == 49,
          "P1 played %d tests, %d vigilance", t1.tests, t1.vigilance);
    expect_done(&p1, t1);
    char path[160];
    http_response r;
    snprintf(path, sizeof path, "/api/session/%s/answer", p1.sid);
    http_do(&p1.c, "POST", path, NULL, "trial=50&fake=a", &r);
    CHECK(r.status == 409 && strstr(r.body, "finished"), "answer after the end: "
          "%d %s", r.status, r.body);
    http_response_free(&r);

    /* P1 again: the other method; leaves after 5 answers, comes back and
     * resumes at trial 5, leaves again (incomplete). */
    char first_method[80], first_sid[40];
    snprintf(first_method, sizeof first_method, "%s", p1.method);
    snprintf(first_sid, sizeof first_sid, "%s", p1.sid);
    CHECK(start(&p1, NULL) == 200, "P1 second session");
    CHECK(strcmp(p1.method, first_method) != 0 && strcmp(p1.sid, first_sid) != 0,
          "second session of P1 reuses method %s", p1.method);
    play(&p1, (plan){.stop_after = 5});
    char second_sid[40];
    snprintf(second_sid, sizeof second_sid, "%s", p1.sid);
    http_close(&p1.c);
    CHECK(start(&p1, NULL) == 200 && strcmp(p1.sid, second_sid) == 0 &&
              p1.next == 5,
          "P1 resumes %s at %d", p1.sid, p1.next);
    want_for(p1.method)->incomplete++;

    /* P2, known by a code: misses 2 vigilance trials (excluded), then from
     * another browser (no cookie) with the same code is the same
     * participant, does the other method, and then has none left. */
    participant p2;
    participant_init(&p2, port);
    CHECK(start(&p2, "lab-42") == 200, "P2 start");
    tally t2 = play(&p2, (plan){.fool = 30, .miss = 2});
    expect_done(&p2, t2);
    char p2_cookie[80], p2_method[80];
    snprintf(p2_cookie, sizeof p2_cookie, "%s", p2.cookie);
    snprintf(p2_method, sizeof p2_method, "%s", p2.method);
    participant p2b;
    participant_init(&p2b, port);
    CHECK(start(&p2b, "lab-42") == 200 && strcmp(p2b.cookie, p2_cookie) == 0 &&
              strcmp(p2b.method, p2_method) != 0,
          "P2 by code: cookie %s, method %s", p2b.cookie, p2b.method);
    tally t2b = play(&p2b, (plan){.fool = 20, .miss = 0});
    expect_done(&p2b, t2b);
    CHECK(start(&p2b, NULL) == 409, "P2 got a third session");
    CHECK(start(&p2b, "lab-42") == 409, "P2 by code got a third session");

    /* P3, P4: one completed session each, fooled on 0 and on 18 of 36. */
    participant p3, p4;
    participant_init(&p3, port);
    participant_init(&p4, port);
    CHECK(start(&p3, NULL) == 200, "P3 start");
    expect_done(&p3, play(&p3, (plan){.fool = 0}));
    CHECK(start(&p4, NULL) == 200, "P4 start");
    tally t4 = play(&p4, (plan){.fool = 18});
    expect_done(&p4, t4);
    /* A forged cookie is not an identity: it gets a fresh one. */
    participant p5;
    participant_init(&p5, port);
    snprintf(p5.cookie, sizeof p5.cookie, "ffffffffffffffffffffffffffffffff");
    CHECK(start(&p5, NULL) == 200 && strcmp(p5.cookie,
                                            "ffffffffffffffffffffffffffffffff") != 0,
          "forged cookie kept");
    want_for(p5.method)->incomplete++;

    /* Every answer the server acknowledged is in the database. */
    long acknowledged = 1 + t1.answered + 5 + t2.answered + t2b.answered + 50 +
                        t4.answered;
    CHECK(count("SELECT COUNT(*) FROM trials WHERE answer IS NOT NULL") ==
              acknowledged,
          "answers in the db: %ld, acknowledged %ld",
          count("SELECT COUNT(*) FROM trials WHERE answer IS NOT NULL"),
          acknowledged);

    check_report();

    /* Restart on the same database: nothing is lost, sessions resume. */
    http_close(&p1.c);
    cz_turing_server_stop(srv);
    srv = NULL;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_OK, "restart: %s",
          cz_last_error());
    if (srv) {
        p1.c.port = cz_turing_server_port(srv);
        CHECK(start(&p1, NULL) == 200 && strcmp(p1.sid, second_sid) == 0 &&
                  p1.next == 5,
              "after restart P1 resumes %s at %d", p1.sid, p1.next);
        http_close(&p1.c);
    }
    check_report();
    check_bootstrap();
    check_cli_report();

    http_close(&p2.c);
    http_close(&p2b.c);
    http_close(&p3.c);
    http_close(&p4.c);
    http_close(&p5.c);
    cz_turing_server_stop(srv);
    sqlite3_close(truth_db);
    if (!check_failed)
        rm_rf(root);
    else
        fprintf(stderr, "files kept in %s\n", root);
    return check_finish("test_turing");
}
