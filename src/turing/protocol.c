/* The Turing-test protocol: who is asked what, and what they answered.
 *
 * Every trial of a session is drawn when the session starts and stored, so
 * the database alone says what each participant saw; the server's memory
 * only holds the rendered photos. A session's `next` column is the index of
 * the one trial that may be shown and answered; answering moves it on in the
 * same transaction that records the answer. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/error.h"
#include "base/rng.h"
#include "turing/protocol.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000 /* wait this long for a report reading the db */

static const char schema[] =
    "CREATE TABLE participants(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  cookie TEXT NOT NULL UNIQUE,   -- random 128-bit hex, the browser cookie\n"
    "  code TEXT UNIQUE,              -- optional code from the page URL\n"
    "  created_ms INTEGER NOT NULL);\n"
    "CREATE TABLE sessions(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  token TEXT NOT NULL UNIQUE,\n"
    "  participant INTEGER NOT NULL REFERENCES participants(id),\n"
    "  method TEXT NOT NULL,\n"
    "  n_practice INTEGER NOT NULL,\n"
    "  n_trials INTEGER NOT NULL,     -- practice included\n"
    "  show_ms INTEGER NOT NULL,\n"
    "  next INTEGER NOT NULL DEFAULT 0, -- the trial to show and answer\n"
    "  created_ms INTEGER NOT NULL,\n"
    "  finished_ms INTEGER,\n"
    "  UNIQUE(participant, method));\n"
    "CREATE TABLE trials(\n"
    "  session INTEGER NOT NULL REFERENCES sessions(id),\n"
    "  idx INTEGER NOT NULL,\n"
    "  token TEXT NOT NULL UNIQUE,    -- names its images: /img/<token>/<a|b>\n"
    "  kind TEXT NOT NULL CHECK(kind IN ('practice','test','vigilance')),\n"
    "  photo TEXT NOT NULL,           -- stem of the real photo\n"
    "  fake TEXT NOT NULL CHECK(fake IN ('a','b')), -- a = left, b = right\n"
    "  shown_ms INTEGER,\n"
    "  answer TEXT CHECK(answer IN ('a','b')), -- the side picked as fake\n"
    "  answered_ms INTEGER,\n"
    "  PRIMARY KEY(session, idx)) WITHOUT ROWID;\n"
    "PRAGMA user_version = 1;\n";

struct cz_turing_protocol {
    sqlite3 *db;
    pthread_mutex_t lock; /* held by every endpoint for its whole duration */
    const cz_turing_photos *ph;
    cz_rng rng;           /* trial draws; under lock */
    int show_ms, n_practice, n_test, n_vigilance;
    int *vig;             /* photos colourful enough for vigilance trials */
    int n_vig;
};

/* ---- small helpers ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cz_turing_is_token(const char *s)
{
    for (int i = 0; i < CZ_TURING_TOKEN_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[CZ_TURING_TOKEN_LEN] == '\0';
}

/* A fresh token from the kernel's random source (never from the seeded
 * generator: tokens are secrets, draws are reproducible). */
static int new_token(char out[CZ_TURING_TOKEN_LEN + 1])
{
    unsigned char raw[CZ_TURING_TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t k = getrandom(raw + got, sizeof raw - got, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        got += (size_t)k;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[CZ_TURING_TOKEN_LEN] = '\0';
    return 1;
}

void cz_turing_reply_clear(cz_turing_reply *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void reply(cz_turing_reply *r, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(r->body);
    r->body = NULL;
    if (vasprintf(&r->body, fmt, ap) < 0) {
        r->body = NULL;
        status = 500;
    }
    va_end(ap);
    r->status = status;
}

/* Messages are fixed strings and numbers: nothing needs JSON escaping. */
#define REPLY_ERROR(r, status, ...)                                           \
    do {                                                                      \
        char msg_[256];                                                       \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                             \
        reply((r), (status), "{\"error\":\"%s\"}", msg_);                     \
    } while (0)

/* A database failure: logged for the operator, a bare 500 for the client. */
static void reply_db_error(cz_turing_protocol *p, cz_turing_reply *r,
                           const char *what)
{
    fprintf(stderr, "colorize turing: %s: %s\n", what, sqlite3_errmsg(p->db));
    REPLY_ERROR(r, 500, "internal error");
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* Parses a form body of key=value pairs separated by '&' into the values of
 * the keys named (NULL-terminated); each value is copied into vals[i]
 * (capacity cap, "" when absent). Unknown or repeated keys, empty values,
 * or values with characters other than [A-Za-z0-9_-] are refused: nothing
 * we accept needs percent-encoding. */
static int parse_form(const char *body, size_t len, const char *const *keys,
                      char vals[][CZ_TURING_MAX_NAME + 1])
{
    int n_keys = 0;
    while (keys[n_keys])
        vals[n_keys++][0] = '\0';
    size_t i = 0;
    while (i < len) {
        size_t k0 = i;
        while (i < len && body[i] != '=' && body[i] != '&')
            i++;
        if (i == len || body[i] != '=')
            return 0;
        size_t klen = i - k0, v0 = ++i;
        while (i < len && body[i] != '&')
            i++;
        size_t vlen = i - v0;
        if (i < len)
            i++; /* the '&' */
        int which = -1;
        for (int k = 0; k < n_keys; k++)
            if (strlen(keys[k]) == klen && memcmp(keys[k], body + k0, klen) == 0)
                which = k;
        if (which < 0 || vals[which][0] || vlen == 0 ||
            vlen > CZ_TURING_MAX_NAME)
            return 0;
        for (size_t j = 0; j < vlen; j++) {
            char c = body[v0 + j];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '-'))
                return 0;
        }
        memcpy(vals[which], body + v0, vlen);
        vals[which][vlen] = '\0';
    }
    return 1;
}

/* ---- opening ---- */

cz_status cz_turing_db_open(const char *path, int readonly, sqlite3 **out)
{
    *out = NULL;
    sqlite3 *db = NULL;
    int flags = readonly ? SQLITE_OPEN_READONLY
                         : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        cz_status s = cz_fail(CZ_ERR_IO, "%s: cannot open database: %s", path,
                              db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return s;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    cz_status status = CZ_OK;
    int version = -1;
    sqlite3_stmt *st = prepare(db, "PRAGMA user_version");
    if (st && sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0) {
        status = cz_fail(CZ_ERR_FORMAT, "%s: not an SQLite database: %s", path,
                         sqlite3_errmsg(db));
        goto done;
    }
    if (!readonly) {
        /* WAL: a report can read while the server writes. FULL: a
         * committed answer survives even a power cut. */
        st = prepare(db, "PRAGMA journal_mode=WAL");
        int wal = st && sqlite3_step(st) == SQLITE_ROW &&
                  strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
        sqlite3_finalize(st);
        if (!wal || !exec(db, "PRAGMA synchronous=FULL") ||
            !exec(db, "PRAGMA foreign_keys=ON")) {
            status = cz_fail(CZ_ERR_IO, "%s: cannot set up the database: %s",
                             path, sqlite3_errmsg(db));
            goto done;
        }
        if (version == 0) {
            if (!exec(db, "BEGIN IMMEDIATE")) {
                status = cz_fail(CZ_ERR_IO, "%s: %s", path, sqlite3_errmsg(db));
                goto done;
            }
            if (!exec(db, schema) || !exec(db, "COMMIT")) {
                status = cz_fail(CZ_ERR_IO, "%s: cannot create tables: %s",
                                 path, sqlite3_errmsg(db));
                exec(db, "ROLLBACK");
                goto done;
            }
            version = SCHEMA_VERSION;
        }
    }
    if (version != SCHEMA_VERSION)
        status = cz_fail(CZ_ERR_FORMAT,
                         "%s: not a colorize Turing-test database (schema "
                         "version %d, expected %d)",
                         path, version, SCHEMA_VERSION);

done:
    if (status != CZ_OK) {
        sqlite3_close(db);
        return status;
    }
    *out = db;
    return CZ_OK;
}

cz_status cz_turing_protocol_open(const cz_turing_config *cfg,
                                  const cz_turing_photos *photos,
                                  cz_turing_protocol **out)
{
    *out = NULL;
    if (cfg->n_practice < 0 || cfg->n_test < 1 || cfg->n_vigilance < 0 ||
        cfg->n_vigilance > cfg->n_test ||
        cfg->n_practice + cfg->n_test > CZ_TURING_MAX_TRIALS)
        return cz_fail(CZ_ERR_INVALID,
                       "%d practice and %d test trials (%d vigilance): need "
                       "at least one test trial, at most %d in all",
                       cfg->n_practice, cfg->n_test, cfg->n_vigilance,
                       CZ_TURING_MAX_TRIALS);
    if (cfg->show_ms < 1 || cfg->show_ms > 60000)
        return cz_fail(CZ_ERR_INVALID, "display time %d ms: use 1 to 60000",
                       cfg->show_ms);
    cz_turing_protocol *p = calloc(1, sizeof *p);
    if (!p)
        return cz_fail(CZ_ERR_NOMEM, "out of memory");
    p->ph = photos;
    p->show_ms = cfg->show_ms;
    p->n_practice = cfg->n_practice;
    p->n_test = cfg->n_test;
    p->n_vigilance = cfg->n_vigilance;
    cz_rng_seed(&p->rng, cfg->seed);
    p->vig = malloc((size_t)photos->n * sizeof *p->vig);
    if (!p->vig) {
        free(p);
        return cz_fail(CZ_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < photos->n; i++)
        if (photos->colourful[i])
            p->vig[p->n_vig++] = i;
    if (p->n_vigilance > 0 && p->n_vig == 0) {
        free(p->vig);
        free(p);
        return cz_fail(CZ_ERR_INVALID,
                       "%s: every photo is nearly gray, so a hue rotation "
                       "would not show: vigilance trials need colour photos",
                       cfg->real_dir);
    }
    cz_status status = cz_turing_db_open(cfg->db_path, 0, &p->db);
    if (status != CZ_OK) {
        free(p->vig);
        free(p);
        return status;
    }
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return CZ_OK;
}

void cz_turing_protocol_close(cz_turing_protocol *p)
{
    if (!p)
        return;
    sqlite3_close(p->db);
    pthread_mutex_destroy(&p->lock);
    free(p->vig);
    free(p);
}

/* ---- POST /api/session ---- */

/* The participant for this request: by code if one is given (codes travel
 * between browsers), else by cookie; created when unknown. On success *pid
 * is set, and r->cookie too when the browser must store a (new) cookie. */
static int find_participant(cz_turing_protocol *p, const char *cookie,
                            const char *code, long long *pid,
                            cz_turing_reply *r)
{
    long long by_cookie = -1, by_code = -1;
    int cookie_has_code = 0;
    char code_cookie[CZ_TURING_TOKEN_LEN + 1] = "";
    sqlite3_stmt *st;
    if (cookie && cz_turing_is_token(cookie)) {
        st = prepare(p->db, "SELECT id, code IS NOT NULL FROM participants "
                            "WHERE cookie = ?");
        if (!st)
            return 0;
        sqlite3_bind_text(st, 1, cookie, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            by_cookie = sqlite3_column_int64(st, 0);
            cookie_has_code = sqlite3_column_int(st, 1);
        }
        sqlite3_finalize(st);
    }
    if (code[0]) {
        st = prepare(p->db, "SELECT id, cookie FROM participants WHERE code = ?");
        if (!st)
            return 0;
        sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            by_code = sqlite3_column_int64(st, 0);
            snprintf(code_cookie, sizeof code_cookie, "%s",
                     (const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_finalize(st);
    }
    if (by_code >= 0) {
        *pid = by_code;
        if (by_code != by_cookie)
            memcpy(r->cookie, code_cookie, sizeof r->cookie);
        return 1;
    }
    if (by_cookie >= 0 && (!code[0] || !cookie_has_code)) {
        *pid = by_cookie;
        if (code[0]) {
            st = prepare(p->db, "UPDATE participants SET code = ? WHERE id = ?");
            if (!st)
                return 0;
            sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, by_cookie);
            int ok = sqlite3_step(st) == SQLITE_DONE;
            sqlite3_finalize(st);
            return ok;
        }
        return 1;
    }
    if (!new_token(r->cookie))
        return 0;
    st = prepare(p->db, "INSERT INTO participants(cookie, code, created_ms) "
                        "VALUES(?, ?, ?)");
    if (!st)
        return 0;
    sqlite3_bind_text(st, 1, r->cookie, -1, SQLITE_STATIC);
    if (code[0])
        sqlite3_bind_text(st, 2, code, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, now_ms());
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    *pid = sqlite3_last_insert_rowid(p->db);
    return ok;
}

static void reply_session(cz_turing_reply *r, const char *token, int n_practice,
                          int n_trials, int show_ms, int next)
{
    reply(r, 200,
          "{\"session\":\"%s\",\"practice\":%d,\"total\":%d,\"show_ms\":%d,"
          "\"next\":%d,\"done\":%s}",
          token, n_practice, n_trials, show_ms, next,
          next >= n_trials ? "true" : "false");
}

/* An unfinished session of a method still being served, if any:
 * 1 found (reply written), 0 none, -1 database error. */
static int resume_session(cz_turing_protocol *p, long long pid,
                          cz_turing_reply *r)
{
    sqlite3_stmt *st = prepare(
        p->db, "SELECT token, method, n_practice, n_trials, show_ms, next "
               "FROM sessions WHERE participant = ? AND finished_ms IS NULL "
               "ORDER BY id");
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, pid);
    int found = 0, rc;
    while (!found && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cz_turing_photos_method(p->ph, (const char *)sqlite3_column_text(
                                               st, 1)) < 0)
            continue;
        reply_session(r, (const char *)sqlite3_column_text(st, 0),
                      sqlite3_column_int(st, 2), sqlite3_column_int(st, 3),
                      sqlite3_column_int(st, 4), sqlite3_column_int(st, 5));
        found = 1;
    }
    if (!found && rc != SQLITE_DONE)
        found = -1;
    sqlite3_finalize(st);
    return found;
}

/* The method for a new session: among those this participant has not done,
 * the one with the fewest sessions so far, ties broken at random; -1 if
 * none is left, -2 on a database error. */
static int pick_method(cz_turing_protocol *p, long long pid)
{
    const int M = p->ph->n_methods;
    long long count[CZ_TURING_MAX_METHODS] = {0};
    int done[CZ_TURING_MAX_METHODS] = {0};
    sqlite3_stmt *st = prepare(
        p->db, "SELECT method, COUNT(*), SUM(participant = ?) FROM sessions "
               "GROUP BY method");
    if (!st)
        return -2;
    sqlite3_bind_int64(st, 1, pid);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int m = cz_turing_photos_method(p->ph,
                                        (const char *)sqlite3_column_text(st, 0));
        if (m < 0)
            continue;
        count[m] = sqlite3_column_int64(st, 1);
        done[m] = sqlite3_column_int64(st, 2) > 0;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -2;
    int best = -1, ties = 0;
    for (int m = 0; m < M; m++) {
        if (done[m])
            continue;
        if (best < 0 || count[m] < count[best]) {
            best = m;
            ties = 1;
        } else if (count[m] == count[best] &&
                   cz_rng_below(&p->rng, (uint64_t)++ties) == 0) {
            best = m; /* reservoir choice: each tie equally likely */
        }
    }
    return best;
}

/* Draws and stores the trials of a new session of method m. */
static int create_session(cz_turing_protocol *p, long long pid, int m,
                          char token[CZ_TURING_TOKEN_LEN + 1])
{
    const cz_turing_photos *ph = p->ph;
    const int total = p->n_practice + p->n_test;
    int ok = 0;
    sqlite3_stmt *st = NULL;
    int *usable = malloc((size_t)ph->n * sizeof *usable);
    unsigned char *vigilant = calloc((size_t)p->n_test, 1);
    int *order = malloc((size_t)p->n_test * sizeof *order);
    if (!usable || !vigilant || !order || !new_token(token))
        goto done;

    int n_usable = 0;
    for (int i = 0; i < ph->n; i++)
        if (ph->method[(size_t)m * ph->n + i].size)
            usable[n_usable++] = i;
    /* Photos in random order, reused from the start only when a session
     * has more trials than the method has photos. */
    for (int i = n_usable - 1; i > 0; i--) {
        int j = (int)cz_rng_below(&p->rng, (uint64_t)i + 1);
        int t = usable[i];
        usable[i] = usable[j];
        usable[j] = t;
    }
    /* Vigilance trials at n_vigilance distinct random test positions. */
    for (int i = 0; i < p->n_test; i++)
        order[i] = i;
    for (int i = 0; i < p->n_vigilance; i++) {
        int j = i + (int)cz_rng_below(&p->rng, (uint64_t)(p->n_test - i));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
        vigilant[order[i]] = 1;
    }

    st = prepare(p->db, "INSERT INTO sessions(token, participant, method, "
                        "n_practice, n_trials, show_ms, created_ms) "
                        "VALUES(?, ?, ?, ?, ?, ?, ?)");
    if (!st)
        goto done;
    sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, pid);
    sqlite3_bind_text(st, 3, ph->method_names[m], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, p->n_practice);
    sqlite3_bind_int(st, 5, total);
    sqlite3_bind_int(st, 6, p->show_ms);
    sqlite3_bind_int64(st, 7, now_ms());
    if (sqlite3_step(st) != SQLITE_DONE)
        goto done;
    sqlite3_finalize(st);
    long long sid = sqlite3_last_insert_rowid(p->db);

    st = prepare(p->db, "INSERT INTO trials(session, idx, token, kind, photo, "
                        "fake) VALUES(?, ?, ?, ?, ?, ?)");
    if (!st)
        goto done;
    for (int t = 0, j = 0; t < total; t++) {
        const char *kind = "practice";
        int photo;
        if (t >= p->n_practice && vigilant[t - p->n_practice]) {
            kind = "vigilance";
            photo = p->vig[cz_rng_below(&p->rng, (uint64_t)p->n_vig)];
        } else {
            if (t >= p->n_practice)
                kind = "test";
            photo = usable[j++ % n_usable];
        }
        char trial_token[CZ_TURING_TOKEN_LEN + 1];
        if (!new_token(trial_token))
            goto done;
        const char *fake = cz_rng_below(&p->rng, 2) ? "b" : "a";
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, sid);
        sqlite3_bind_int(st, 2, t);
        sqlite3_bind_text(st, 3, trial_token, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, ph->names[photo], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, fake, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto done;
    }
    ok = 1;

done:
    sqlite3_finalize(st);
    free(usable);
    free(vigilant);
    free(order);
    return ok;
}

void cz_turing_start(cz_turing_protocol *p, const char *cookie,
                     const char *body, size_t len, cz_turing_reply *r)
{
    static const char *const keys[] = {"code", NULL};
    char vals[1][CZ_TURING_MAX_NAME + 1];
    if (!parse_form(body, len, keys, vals)) {
        REPLY_ERROR(r, 400, "expected an empty body or code=<1 to %d letters, "
                            "digits, _ or ->", CZ_TURING_MAX_NAME);
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (!exec(p->db, "BEGIN IMMEDIATE")) {
        reply_db_error(p, r, "begin");
        goto unlock;
    }
    long long pid;
    if (!find_participant(p, cookie, vals[0], &pid, r)) {
        reply_db_error(p, r, "participant");
        goto rollback;
    }
    int resumed = resume_session(p, pid, r);
    if (resumed < 0) {
        reply_db_error(p, r, "resume");
        goto rollback;
    }
    if (!resumed) {
        int m = pick_method(p, pid);
        if (m == -2) {
            reply_db_error(p, r, "pick method");
            goto rollback;
        }
        if (m == -1) {
            REPLY_ERROR(r, 409, "you have already taken part with every method");
        } else {
            char token[CZ_TURING_TOKEN_LEN + 1];
            if (!create_session(p, pid, m, token)) {
                reply_db_error(p, r, "create session");
                goto rollback;
            }
            reply_session(r, token, p->n_practice, p->n_practice + p->n_test,
                          p->show_ms, 0);
        }
    }
    if (!exec(p->db, "COMMIT")) {
        reply_db_error(p, r, "commit");
        goto rollback;
    }
    goto unlock;

rollback:
    exec(p->db, "ROLLBACK");
    r->cookie[0] = '\0';
unlock:
    pthread_mutex_unlock(&p->lock);
}

/* ---- GET /api/session/<sid>/trial and POST .../answer ---- */

typedef struct {
    long long id;
    int n_practice, n_trials, next;
} session_row;

/* 1 found, 0 unknown, -1 database error. */
static int find_session(cz_turing_protocol *p, const char *sid,
                        session_row *s)
{
    if (!cz_turing_is_token(sid))
        return 0;
    sqlite3_stmt *st = prepare(
        p->db, "SELECT id, n_practice, n_trials, next FROM sessions "
               "WHERE token = ?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        s->id = sqlite3_column_int64(st, 0);
        s->n_practice = sqlite3_column_int(st, 1);
        s->n_trials = sqlite3_column_int(st, 2);
        s->next = sqlite3_column_int(st, 3);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = -1;
    }
    sqlite3_finalize(st);
    return found;
}

void cz_turing_trial(cz_turing_protocol *p, const char *sid,
                     cz_turing_reply *r)
{
    session_row s;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&p->lock);
    int found = find_session(p, sid, &s);
    if (found <= 0) {
        if (found < 0)
            reply_db_error(p, r, "session");
        else
            REPLY_ERROR(r, 404, "unknown session");
        goto unlock;
    }
    if (s.next >= s.n_trials) {
        reply(r, 200, "{\"done\":true,\"total\":%d}", s.n_trials);
        goto unlock;
    }
    st = prepare(p->db, "SELECT token, shown_ms IS NULL FROM trials "
                        "WHERE session = ? AND idx = ?");
    if (!st) {
        reply_db_error(p, r, "trial");
        goto unlock;
    }
    sqlite3_bind_int64(st, 1, s.id);
    sqlite3_bind_int(st, 2, s.next);
    if (sqlite3_step(st) != SQLITE_ROW) {
        reply_db_error(p, r, "trial");
        goto unlock;
    }
    char token[CZ_TURING_TOKEN_LEN + 1];
    snprintf(token, sizeof token, "%s", (const char *)sqlite3_column_text(st, 0));
    int first_time = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (first_time) {
        st = prepare(p->db, "UPDATE trials SET shown_ms = ? "
                            "WHERE session = ? AND idx = ?");
        if (!st) {
            reply_db_error(p, r, "show");
            goto unlock;
        }
        sqlite3_bind_int64(st, 1, now_ms());
        sqlite3_bind_int64(st, 2, s.id);
        sqlite3_bind_int(st, 3, s.next);
        if (sqlite3_step(st) != SQLITE_DONE) {
            reply_db_error(p, r, "show");
            goto unlock;
        }
    }
    reply(r, 200,
          "{\"index\":%d,\"total\":%d,\"practice\":%s,"
          "\"a\":\"/img/%s/a\",\"b\":\"/img/%s/b\"}",
          s.next, s.n_trials, s.next < s.n_practice ? "true" : "false", token,
          token);

unlock:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&p->lock);
}

void cz_turing_answer(cz_turing_protocol *p, const char *sid,
                      const char *body, size_t len, cz_turing_reply *r)
{
    static const char *const keys[] = {"trial", "fake", NULL};
    char vals[2][CZ_TURING_MAX_NAME + 1];
    int ok = parse_form(body, len, keys, vals);
    char *end = NULL;
    long idx = -1;
    if (ok && vals[0][0] >= '0' && vals[0][0] <= '9' && strlen(vals[0]) <= 6)
        idx = strtol(vals[0], &end, 10);
    if (!ok || idx < 0 || *end ||
        (strcmp(vals[1], "a") != 0 && strcmp(vals[1], "b") != 0)) {
        REPLY_ERROR(r, 400, "expected trial=<index>&fake=<a|b>");
        return;
    }
    session_row s;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&p->lock);
    int found = find_session(p, sid, &s);
    if (found <= 0) {
        if (found < 0)
            reply_db_error(p, r, "session");
        else
            REPLY_ERROR(r, 404, "unknown session");
        goto unlock;
    }
    if (s.next >= s.n_trials) {
        REPLY_ERROR(r, 409, "this session is finished");
        goto unlock;
    }
    if (idx < s.next) {
        REPLY_ERROR(r, 409, "trial %ld was already answered", idx);
        goto unlock;
    }
    if (idx > s.next) {
        REPLY_ERROR(r, 409, "trial %ld is not the current trial (%d)", idx,
                    s.next);
        goto unlock;
    }
    st = prepare(p->db, "SELECT shown_ms IS NOT NULL, fake, kind FROM trials "
                        "WHERE session = ? AND idx = ?");
    if (!st) {
        reply_db_error(p, r, "trial");
        goto unlock;
    }
    sqlite3_bind_int64(st, 1, s.id);
    sqlite3_bind_int(st, 2, s.next);
    if (sqlite3_step(st) != SQLITE_ROW) {
        reply_db_error(p, r, "trial");
        goto unlock;
    }
    int shown = sqlite3_column_int(st, 0);
    int correct = strcmp((const char *)sqlite3_column_text(st, 1), vals[1]) == 0;
    sqlite3_finalize(st);
    st = NULL;
    if (!shown) {
        REPLY_ERROR(r, 409, "trial %ld has not been shown yet", idx);
        goto unlock;
    }

    /* The answer and the move to the next trial commit together, before
     * the reply: a reply means the answer is on disk. */
    if (!exec(p->db, "BEGIN IMMEDIATE")) {
        reply_db_error(p, r, "begin");
        goto unlock;
    }
    long long t = now_ms();
    st = prepare(p->db, "UPDATE trials SET answer = ?, answered_ms = ? "
                        "WHERE session = ? AND idx = ? AND answer IS NULL");
    ok = st != NULL;
    if (ok) {
        sqlite3_bind_text(st, 1, vals[1], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, t);
        sqlite3_bind_int64(st, 3, s.id);
        sqlite3_bind_int(st, 4, s.next);
        ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(p->db) == 1;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (ok) {
        st = prepare(p->db, "UPDATE sessions SET next = next + 1, finished_ms "
                            "= CASE WHEN next + 1 >= n_trials THEN ? END "
                            "WHERE id = ? AND next = ?");
        ok = st != NULL;
        if (ok) {
            sqlite3_bind_int64(st, 1, t);
            sqlite3_bind_int64(st, 2, s.id);
            sqlite3_bind_int(st, 3, s.next);
            ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(p->db) == 1;
        }
    }
    if (!ok || !exec(p->db, "COMMIT")) {
        reply_db_error(p, r, "answer");
        exec(p->db, "ROLLBACK");
        goto unlock;
    }
    int next = s.next + 1;
    if (s.next < s.n_practice)
        reply(r, 200, "{\"next\":%d,\"done\":%s,\"correct\":%s}", next,
              next >= s.n_trials ? "true" : "false", correct ? "true" : "false");
    else
        reply(r, 200, "{\"next\":%d,\"done\":%s}", next,
              next >= s.n_trials ? "true" : "false");

unlock:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&p->lock);
}

/* ---- GET /img/<token>/<a|b> ---- */

void cz_turing_image(cz_turing_protocol *p, const char *token, char side,
                     cz_turing_reply *r)
{
    if (!cz_turing_is_token(token) || (side != 'a' && side != 'b')) {
        REPLY_ERROR(r, 404, "not found");
        return;
    }
    pthread_mutex_lock(&p->lock);
    sqlite3_stmt *st = prepare(
        p->db, "SELECT t.kind, t.photo, t.fake, s.method FROM trials t "
               "JOIN sessions s ON s.id = t.session WHERE t.token = ?");
    if (!st) {
        reply_db_error(p, r, "image");
        goto unlock;
    }
    sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            REPLY_ERROR(r, 404, "not found");
        else
            reply_db_error(p, r, "image");
        goto unlock;
    }
    const cz_turing_photos *ph = p->ph;
    int vigilance = strcmp((const char *)sqlite3_column_text(st, 0),
                           "vigilance") == 0;
    int i = cz_turing_photos_find(ph, (const char *)sqlite3_column_text(st, 1));
    int fake = ((const char *)sqlite3_column_text(st, 2))[0] == side;
    int m = cz_turing_photos_method(ph, (const char *)sqlite3_column_text(st, 3));
    const cz_turing_blob *img = NULL;
    if (i >= 0 && !fake)
        img = &ph->real[i];
    else if (i >= 0 && vigilance)
        img = &ph->vigilance[i];
    else if (i >= 0 && m >= 0)
        img = &ph->method[(size_t)m * ph->n + i];
    if (!img || !img->size) {
        REPLY_ERROR(r, 410, "this photo is no longer served");
        goto unlock;
    }
    r->status = 200;
    r->image = img;

unlock:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&p->lock);
}
