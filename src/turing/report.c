/* The Turing-test report: fool rates from the answers in the database.
 *
 * Rules, per method:
 * - only completed sessions count; unfinished ones are listed as incomplete;
 * - a completed session with more than max_vigilance_misses wrong vigilance
 *   trials is excluded (its participant was not paying attention: the
 *   recoloured photo has an obviously wrong hue). With the default 4
 *   vigilance trials and 1 miss allowed, one slip is forgiven, two are not;
 * - the fool rate pools the non-vigilance test trials of the counted
 *   sessions: the share in which the participant picked the real photo as
 *   the fake one, i.e. labelled the colourisation real;
 * - its standard error is the standard deviation of the same pooled rate
 *   over `resamples` bootstrap resamples of the counted participants (a
 *   participant has at most one session per method), drawn from a fixed
 *   seed so reruns print the same numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"
#include "turing/protocol.h"
#include "turing/turing.h"

void cz_turing_report_options_default(cz_turing_report_options *opt)
{
    opt->max_vigilance_misses = 1;
    opt->resamples = 1000;
    opt->seed = 1;
}

void cz_turing_report_free(cz_turing_report *rep)
{
    if (!rep)
        return;
    free(rep->methods);
    free(rep);
}

typedef struct {
    long trials, fooled;
} counted;

/* Standard deviation of the pooled fool rate over bootstrap resamples. */
static double bootstrap_se(const counted *s, int n, int resamples,
                           uint64_t seed)
{
    if (n == 0 || resamples < 2)
        return NAN;
    cz_rng rng;
    cz_rng_seed(&rng, seed);
    double sum = 0, sum2 = 0;
    int used = 0;
    for (int b = 0; b < resamples; b++) {
        long t = 0, f = 0;
        for (int i = 0; i < n; i++) {
            const counted *c = &s[cz_rng_below(&rng, (uint64_t)n)];
            t += c->trials;
            f += c->fooled;
        }
        if (t == 0)
            continue;
        double r = (double)f / (double)t;
        sum += r;
        sum2 += r * r;
        used++;
    }
    if (used < 2)
        return NAN;
    double mean = sum / used;
    double var = (sum2 - used * mean * mean) / (used - 1);
    return var > 0 ? sqrt(var) : 0.0;
}

cz_status cz_turing_report_compute(const char *db_path,
                                   const cz_turing_report_options *opt_in,
                                   cz_turing_report **out)
{
    *out = NULL;
    cz_turing_report_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        cz_turing_report_options_default(&opt);
    if (opt.max_vigilance_misses < 0 || opt.resamples < 2 ||
        opt.resamples > 1000000)
        return cz_fail(CZ_ERR_INVALID,
                       "report: need max_vigilance_misses >= 0 and 2 to "
                       "1000000 resamples");
    sqlite3 *db = NULL;
    cz_status status = cz_turing_db_open(db_path, 1, &db);
    if (status != CZ_OK)
        return status;

    sqlite3_stmt *st = NULL;
    counted *sessions = NULL;
    cz_turing_report *rep = calloc(1, sizeof *rep);
    if (!rep) {
        status = cz_fail(CZ_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* One row per session, grouped by method. A test trial fooled the
     * participant when the side they picked as fake was the real one. */
    st = NULL;
    if (sqlite3_prepare_v2(
            db,
            "SELECT s.method, s.finished_ms IS NOT NULL,"
            " SUM(t.kind = 'test'),"
            " SUM(t.kind = 'test' AND t.answer IS NOT NULL AND t.answer <> t.fake),"
            " SUM(t.kind = 'vigilance'),"
            " SUM(t.kind = 'vigilance' AND t.answer IS NOT NULL AND t.answer <> t.fake)"
            " FROM sessions s JOIN trials t ON t.session = s.id"
            " GROUP BY s.id ORDER BY s.method, s.id",
            -1, &st, NULL) != SQLITE_OK) {
        status = cz_fail(CZ_ERR_FORMAT, "%s: %s", db_path, sqlite3_errmsg(db));
        goto done;
    }
    int cap_m = 0, n_s = 0, cap_s = 0, rc;
    cz_turing_method_report *cur = NULL;
    for (;;) {
        rc = sqlite3_step(st);
        const char *method =
            rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (cur && (!method || strcmp(method, cur->method) != 0)) {
            cur->fool_rate = cur->trials ? (double)cur->fooled / cur->trials : NAN;
            cur->se = bootstrap_se(sessions, n_s, opt.resamples, opt.seed);
            n_s = 0;
            cur = NULL;
        }
        if (rc != SQLITE_ROW)
            break;
        if (!cur) {
            if (rep->n_methods == cap_m) {
                int ncap = cap_m ? 2 * cap_m : 8;
                cz_turing_method_report *m =
                    realloc(rep->methods, (size_t)ncap * sizeof *m);
                if (!m) {
                    status = cz_fail(CZ_ERR_NOMEM, "out of memory");
                    goto done;
                }
                rep->methods = m;
                cap_m = ncap;
            }
            cur = &rep->methods[rep->n_methods++];
            memset(cur, 0, sizeof *cur);
            snprintf(cur->method, sizeof cur->method, "%s", method ? method : "");
        }
        int finished = sqlite3_column_int(st, 1);
        long tests = sqlite3_column_int64(st, 2);
        long fooled = sqlite3_column_int64(st, 3);
        long vig = sqlite3_column_int64(st, 4);
        long missed = sqlite3_column_int64(st, 5);
        if (!finished) {
            cur->incomplete++;
            continue;
        }
        if (missed > opt.max_vigilance_misses) {
            cur->excluded++;
            continue;
        }
        if (n_s == cap_s) {
            int ncap = cap_s ? 2 * cap_s : 64;
            counted *ns = realloc(sessions, (size_t)ncap * sizeof *ns);
            if (!ns) {
                status = cz_fail(CZ_ERR_NOMEM, "out of memory");
                goto done;
            }
            sessions = ns;
            cap_s = ncap;
        }
        sessions[n_s].trials = tests;
        sessions[n_s].fooled = fooled;
        n_s++;
        cur->participants++;
        cur->trials += tests;
        cur->fooled += fooled;
        cur->vigilance_trials += vig;
        cur->vigilance_missed += missed;
    }
    if (rc != SQLITE_DONE)
        status = cz_fail(CZ_ERR_IO, "%s: %s", db_path, sqlite3_errmsg(db));

done:
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(sessions);
    if (status != CZ_OK) {
        cz_turing_report_free(rep);
        return status;
    }
    *out = rep;
    return CZ_OK;
}

void cz_turing_report_print(FILE *out, const cz_turing_report *rep,
                            const cz_turing_report_options *opt_in)
{
    cz_turing_report_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        cz_turing_report_options_default(&opt);
    fprintf(out, "fool rate: %% of test trials in which the colourisation "
                 "was labelled real\n\n");
    fprintf(out, "%-20s %9s %8s %12s %7s %8s %10s\n", "method", "fool rate",
            "std err", "participants", "trials", "excluded", "incomplete");
    for (int i = 0; i < rep->n_methods; i++) {
        const cz_turing_method_report *m = &rep->methods[i];
        char rate[16] = "-", se[16] = "-";
        if (!isnan(m->fool_rate))
            snprintf(rate, sizeof rate, "%.1f%%", 100.0 * m->fool_rate);
        if (!isnan(m->se))
            snprintf(se, sizeof se, "%.1f%%", 100.0 * m->se);
        fprintf(out, "%-20s %9s %8s %12d %7ld %8d %10d\n", m->method, rate, se,
                m->participants, m->trials, m->excluded, m->incomplete);
    }
    if (rep->n_methods == 0)
        fprintf(out, "(no sessions yet)\n");
    fprintf(out,
            "\nparticipants: completed sessions with at most %d wrong "
            "vigilance trial%s (others excluded);\n"
            "trials: their test trials, vigilance trials left out; std err: "
            "bootstrap over\nparticipants, %d resamples, seed %llu.\n",
            opt.max_vigilance_misses, opt.max_vigilance_misses == 1 ? "" : "s",
            opt.resamples, (unsigned long long)opt.seed);
}
