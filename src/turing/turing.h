/*
 * The colourisation Turing test (Zhang, Isola & Efros 2016, section 4.1).
 *
 * People see a real photo and a colourised version of the same photo side by
 * side, for one second, and then say which one is fake. A method's fool rate
 * is the share of trials in which the participant picked the real photo as
 * the fake one, i.e. labelled the colourisation real; 50% is a perfect fool.
 *
 * Serving (server.c over protocol.c). `cz_turing_server_start` loads every
 * photo once, renders each at 256x256 (centre square, bilinear) as JPEG held
 * in memory, and serves a self-contained page (page.c) plus a small JSON API
 * on 127.0.0.1 through libmicrohttpd:
 *
 *     GET  /                          the page (?code=XYZ names a participant)
 *     POST /api/session               body [code=XYZ]: start or resume a session
 *     GET  /api/session/<sid>/trial   the current trial: two image URLs
 *     POST /api/session/<sid>/answer  body trial=<index>&fake=<a|b>
 *     GET  /img/<trial-token>/<a|b>   a 256x256 JPEG, a = left, b = right
 *
 * Anything else is 404; the client never names a file. A session is
 * n_practice trials with feedback, then n_test trials without, n_vigilance of
 * which (at random places) pit the real photo against a copy whose a*b* are
 * rotated by a random hue angle; these catch inattentive participants. Each
 * session uses one method; a participant (a random 128-bit cookie, or a code
 * given in the URL) gets at most one session per method, the method with the
 * fewest sessions so far being picked for them. Sessions, trials and answers
 * live in SQLite (WAL, synchronous=FULL): every answer is committed before
 * its reply, so stopping the server loses nothing and a restarted server
 * resumes unfinished sessions. Answers are accepted only for the current
 * trial, once, after it was shown: replays and skips get 409.
 *
 * Reporting (report.c) reads the database: per method, over completed
 * sessions whose participant missed at most max_vigilance_misses vigilance
 * trials, the fool rate pooled over the non-vigilance test trials, its
 * bootstrap standard error (resampling participants), and the counts.
 */
#ifndef CZ_TURING_TURING_H
#define CZ_TURING_TURING_H

#include <stdint.h>
#include <stdio.h>

#include "colorize.h"

/* Limits on what the command line may ask for. */
#define CZ_TURING_MAX_METHODS 32
#define CZ_TURING_MAX_NAME 64  /* method names and participant codes */
#define CZ_TURING_MAX_TRIALS 1000 /* per session, practice included */

typedef struct {
    const char *name; /* [A-Za-z0-9_.-], 1..CZ_TURING_MAX_NAME characters */
    const char *dir;  /* photos named like the real ones (any extension) */
} cz_turing_method;

typedef struct {
    const char *real_dir;              /* the real colour photos */
    const cz_turing_method *methods;   /* the colourisations under test */
    int n_methods;
    const char *db_path;               /* SQLite file, created if missing */
    const char *bind_addr;             /* IPv4 address; default 127.0.0.1 */
    int port;                          /* 0 picks a free one */
    int show_ms;      /* how long the pair is on screen; Zhang: 1000 ms */
    int n_practice;   /* practice trials, with feedback; Zhang: 10 */
    int n_test;       /* test trials, no feedback; Zhang: 40 */
    int n_vigilance;  /* of the test trials, real vs hue-rotated; 10%: 4 */
    int threads;      /* HTTP worker threads */
    uint64_t seed;    /* trial draws and vigilance hues; 0 = from the OS */
} cz_turing_config;

/* The protocol of the paper, served on 127.0.0.1:8080. */
void cz_turing_config_default(cz_turing_config *cfg);

typedef struct cz_turing_server cz_turing_server;

/* Loads and renders the photos, opens (or creates) the database and starts
 * answering HTTP on worker threads. Fails with CZ_ERR_INVALID on a bad
 * configuration (no photos, a method without matching photos, a duplicate
 * method name), CZ_ERR_IO when a folder, the database or the port cannot be
 * used; cz_last_error() says which. */
cz_status cz_turing_server_start(const cz_turing_config *cfg,
                                 cz_turing_server **out);

/* The port actually bound (useful with port 0). */
int cz_turing_server_port(const cz_turing_server *srv);

/* Stops answering, waits for requests in flight, closes the database and
 * frees everything; NULL is a no-op. */
void cz_turing_server_stop(cz_turing_server *srv);

/* ---- The report. ---- */

typedef struct {
    int max_vigilance_misses; /* a session missing more is excluded; 1 */
    int resamples;            /* bootstrap resamples of participants; 1000 */
    uint64_t seed;            /* bootstrap seed, fixed so reruns agree */
} cz_turing_report_options;

void cz_turing_report_options_default(cz_turing_report_options *opt);

typedef struct {
    char method[CZ_TURING_MAX_NAME + 1];
    int participants; /* completed sessions that pass the vigilance rule */
    long trials;      /* their non-vigilance test trials */
    long fooled;      /* of which the real photo was picked as fake */
    double fool_rate; /* fooled / trials; NaN without trials */
    double se;        /* bootstrap standard error; NaN without trials */
    int excluded;     /* completed sessions failing the vigilance rule */
    int incomplete;   /* sessions not finished, not counted */
    long vigilance_trials; /* vigilance trials of counted sessions */
    long vigilance_missed; /* of which answered wrongly */
} cz_turing_method_report;

typedef struct {
    int n_methods;
    cz_turing_method_report *methods; /* sorted by method name */
} cz_turing_report;

/* Reads the database (read-only) and computes the report. */
cz_status cz_turing_report_compute(const char *db_path,
                                   const cz_turing_report_options *opt,
                                   cz_turing_report **out);

void cz_turing_report_free(cz_turing_report *rep);

/* The report as an aligned table. */
void cz_turing_report_print(FILE *out, const cz_turing_report *rep,
                            const cz_turing_report_options *opt);

#endif
