/* Minimal test harness: CHECK counts and reports failures, check_finish()
 * prints a tally and turns any failure into a non-zero exit status. */
#ifndef CZ_TESTS_CHECK_H
#define CZ_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_total, check_failed;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        check_total++;                                                        \
        if (!(cond)) {                                                        \
            check_failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__,  \
                    #cond);                                                   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

/* Largest |a-b| / max(|b|, floor) over n values; floor keeps values near zero
 * from turning rounding noise into huge relative errors. */
static inline double check_max_rel_err(const float *a, const float *b, long n,
                                       double floor, long *worst)
{
    double err = 0;
    long at = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]) > floor ? fabs((double)b[i]) : floor;
        double e = isnan(d) ? INFINITY : d / s;
        if (e > err) { err = e; at = i; }
    }
    if (worst) *worst = at;
    return err;
}

/* CHECK that two float arrays agree within rel (relative to max(|b|, floor)). */
#define CHECK_CLOSE(what, a, b, n, rel, floor)                                \
    do {                                                                      \
        long at_;                                                             \
        double e_ = check_max_rel_err((a), (b), (n), (floor), &at_);          \
        CHECK(e_ <= (rel), "%s: max rel err %.3g at [%ld]: %.8g vs %.8g",     \
              (what), e_, at_, (double)(a)[at_], (double)(b)[at_]);           \
    } while (0)

/* Norm-wise relative error ||a - b|| / ||b||, the usual measure for whole
 * tensors: insensitive to single elements that are sums of cancelling terms. */
static inline double check_norm_rel_err(const float *a, const float *b, long n)
{
    double d2 = 0, b2 = 0;
    for (long i = 0; i < n; i++) {
        d2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        b2 += (double)b[i] * b[i];
    }
    return b2 > 0 ? sqrt(d2 / b2) : sqrt(d2);
}

#define CHECK_NORM_CLOSE(what, a, b, n, rel)                                  \
    do {                                                                      \
        double e_ = check_norm_rel_err((a), (b), (n));                        \
        CHECK(e_ <= (rel), "%s: norm-wise relative error %.3g", (what), e_);  \
    } while (0)

static inline int check_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_total, check_failed);
    return check_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
