/* Load: 50 scripted participants at once, each on its own connection and
 * thread, finish a whole session (50 trials: fetch the trial, both images,
 * answer) while idle half-open connections and bad requests keep arriving.
 * Then every acknowledged answer must be in the database, exactly as sent.
 * Bounded: a fixed number of participants and requests, socket timeouts,
 * and a deadline after which every participant gives up. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "image/image.h"
#include "turing/turing.h"
#include "turing_http.h"

#define PARTICIPANTS 50
#define TRIALS 50         /* the protocol's 10 practice + 40 test */
#define IDLE_CONNECTIONS 20
#define DEADLINE_S 45.0   /* every participant gives up after this */

static char root[256], db_path[300];
static int port;
static atomic_int stop_abuse;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double t_start;

typedef struct {
    int id;
    char sid[40];
    char sent[TRIALS]; /* the side answered at each trial, 0 if none */
    int answered;      /* answers acknowledged with 200 */
    int errors;
    char first_error[200];
    double worst_s;    /* slowest request */
} worker;

static void fail(worker *w, const char *what, const http_response *r)
{
    if (!w->errors++)
        snprintf(w->first_error, sizeof w->first_error, "%s: status %d %.100s",
                 what, r->status, r->body ? r->body : "");
}

static int timed(worker *w, http_client *c, const char *method,
                 const char *path, const char *cookie, const char *body,
                 http_response *r)
{
    double t0 = now_s();
    int rc = http_do(c, method, path, cookie, body, r);
    double dt = now_s() - t0;
    if (dt > w->worst_s)
        w->worst_s = dt;
    return rc;
}

static void *participant(void *arg)
{
    worker *w = arg;
    http_client c = {port, -1};
    http_response r;
    char path[160], body[64];
    timed(w, &c, "POST", "/api/session", NULL, "", &r);
    if (r.status != 200 || !json_str(r.body, "session", w->sid, sizeof w->sid)) {
        fail(w, "start", &r);
        http_response_free(&r);
        http_close(&c);
        return NULL;
    }
    http_response_free(&r);
    unsigned seed = (unsigned)w->id * 2654435761u;
    for (int i = 0; i < TRIALS && now_s() - t_start < DEADLINE_S; i++) {
        char a[80], b[80];
        snprintf(path, sizeof path, "/api/session/%s/trial", w->sid);
        timed(w, &c, "GET", path, NULL, NULL, &r);
        if (r.status != 200 || json_int(r.body, "index") != i ||
            !json_str(r.body, "a", a, sizeof a) ||
            !json_str(r.body, "b", b, sizeof b)) {
            fail(w, "trial", &r);
            http_response_free(&r);
            break;
        }
        http_response_free(&r);
        const char *img[2] = {a, b};
        for (int k = 0; k < 2; k++) {
            timed(w, &c, "GET", img[k], NULL, NULL, &r);
            if (r.status != 200 || r.len < 100)
                fail(w, "image", &r);
            http_response_free(&r);
        }
        seed = seed * 1103515245u + 12345u;
        char side = (seed >> 16) & 1 ? 'b' : 'a';
        snprintf(path, sizeof path, "/api/session/%s/answer", w->sid);
        snprintf(body, sizeof body, "trial=%d&fake=%c", i, side);
        timed(w, &c, "POST", path, NULL, body, &r);
        if (r.status != 200 || json_int(r.body, "next") != i + 1) {
            fail(w, "answer", &r);
            http_response_free(&r);
            break;
        }
        http_response_free(&r);
        w->sent[i] = side;
        w->answered++;
    }
    http_close(&c);
    return NULL;
}

/* Meanwhile: connections that send half a request and wait, and a stream of
 * requests the server must refuse. */
static void *abuser(void *arg)
{
    int *refused_ok = arg;
    int idle[IDLE_CONNECTIONS];
    for (int i = 0; i < IDLE_CONNECTIONS; i++) {
        idle[i] = http_connect(port);
        if (idle[i] >= 0)
            http_send_all(idle[i], "GET / HTTP/1.1\r\nHost: 12", 25);
    }
    static const char *const bad[] = {
        "GET /img/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n",
        "GET /api/session/ffffffffffffffffffffffffffffffff/trial HTTP/1.1\r\n"
        "Host: x\r\n\r\n",
        "POST /api/session/ffffffffffffffffffffffffffffffff/answer HTTP/1.1\r\n"
        "Host: x\r\nContent-Length: 14\r\n\r\ntrial=0&fake=a",
    };
    int sent = 0;
    while (!atomic_load(&stop_abuse) && sent < 400) {
        const char *req = bad[sent % 4];
        http_response r;
        http_raw(port, req, strlen(req), &r);
        if (r.status >= 400 && r.status < 500)
            (*refused_ok)++;
        http_response_free(&r);
        sent++;
    }
    for (int i = 0; i < IDLE_CONNECTIONS; i++)
        if (idle[i] >= 0)
            close(idle[i]);
    return NULL;
}

static void make_photos(void)
{
    char path[512];
    static const char *const dirs[] = {"real", "m1", "m2"};
    for (int d = 0; d < 3; d++) {
        snprintf(path, sizeof path, "%s/%s", root, dirs[d]);
        mkdir(path, 0755);
    }
    for (int k = 0; k < 8; k++) {
        cz_image *img = cz_image_new(40, 30, 3, 8);
        unsigned char *p = img->data;
        for (int i = 0; i < 40 * 30; i++, p += 3) {
            p[0] = (unsigned char)(150 + (i * 7 + k * 13) % 100);
            p[1] = (unsigned char)(60 + (i + k) % 40);
            p[2] = (unsigned char)(40 + (i * 3) % 50);
        }
        for (int d = 0; d < 3; d++) {
            snprintf(path, sizeof path, "%s/%s/photo%d.jpg", root, dirs[d], k);
            CHECK(cz_image_save(path, img, 90) == CZ_OK, "%s", cz_last_error());
            p = img->data;
            for (int i = 0; i < 40 * 30; i++, p += 3)
                p[d % 3] = (unsigned char)(255 - p[d % 3]);
        }
        cz_image_free(img);
    }
}

int main(void)
{
    snprintf(root, sizeof root, "%s/cz-test-turing-load-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db_path, sizeof db_path, "%s/load.db", root);
    make_photos();

    char real[300], m1[300], m2[300];
    snprintf(real, sizeof real, "%s/real", root);
    snprintf(m1, sizeof m1, "%s/m1", root);
    snprintf(m2, sizeof m2, "%s/m2", root);
    cz_turing_method methods[2] = {{"m1", m1}, {"m2", m2}};
    cz_turing_config cfg;
    cz_turing_config_default(&cfg);
    cfg.real_dir = real;
    cfg.methods = methods;
    cfg.n_methods = 2;
    cfg.db_path = db_path;
    cfg.port = 0;
    cfg.seed = 7;
    cz_turing_server *srv = NULL;
    CHECK(cz_turing_server_start(&cfg, &srv) == CZ_OK, "%s", cz_last_error());
    if (!srv)
        return check_finish("test_turing_load");
    port = cz_turing_server_port(srv);

    static worker w[PARTICIPANTS];
    pthread_t th[PARTICIPANTS], ab;
    int refused_ok = 0;
    t_start = now_s();
    CHECK(pthread_create(&ab, NULL, abuser, &refused_ok) == 0, "abuser thread");
    for (int i = 0; i < PARTICIPANTS; i++) {
        w[i].id = i;
        CHECK(pthread_create(&th[i], NULL, participant, &w[i]) == 0,
              "thread %d", i);
    }
    double worst = 0;
    int answered = 0;
    for (int i = 0; i < PARTICIPANTS; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].errors == 0 && w[i].answered == TRIALS,
              "participant %d: %d answers, %d errors, first: %s", i,
              w[i].answered, w[i].errors, w[i].first_error);
        answered += w[i].answered;
        if (w[i].worst_s > worst)
            worst = w[i].worst_s;
    }
    double elapsed = now_s() - t_start;
    atomic_store(&stop_abuse, 1);
    pthread_join(ab, NULL);
    CHECK(refused_ok > 0, "no bad request was refused");
    printf("%d participants, %d answers in %.2f s (%.0f requests/s), slowest "
           "request %.3f s; %d bad requests refused meanwhile\n",
           PARTICIPANTS, answered, elapsed, answered * 4 / elapsed, worst,
           refused_ok);
    cz_turing_server_stop(srv);

    /* Every acknowledged answer is in the database, as sent. */
    sqlite3 *db = NULL;
    CHECK(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK,
          "open %s", db_path);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT t.idx, t.answer FROM trials t JOIN sessions s "
                           "ON s.id = t.session WHERE s.token = ? ORDER BY t.idx",
                       -1, &st, NULL);
    int stored = 0, mismatched = 0;
    for (int i = 0; i < PARTICIPANTS; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, w[i].sid, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            int idx = sqlite3_column_int(st, 0);
            const char *ans = (const char *)sqlite3_column_text(st, 1);
            if (ans && idx < TRIALS && w[i].sent[idx] == ans[0])
                stored++;
            else if (ans || (idx < TRIALS && w[i].sent[idx]))
                mismatched++;
        }
    }
    sqlite3_finalize(st);
    CHECK(stored == answered && mismatched == 0 &&
              answered == PARTICIPANTS * TRIALS,
          "%d answers stored as sent, %d mismatched, %d acknowledged", stored,
          mismatched, answered);
    sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sessions WHERE finished_ms IS "
                           "NOT NULL", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW &&
              sqlite3_column_int(st, 0) == PARTICIPANTS,
          "%d finished sessions", sqlite3_column_int(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* The report sees all 50 sessions, split over the two methods. */
    cz_turing_report *rep = NULL;
    CHECK(cz_turing_report_compute(db_path, NULL, &rep) == CZ_OK, "%s",
          cz_last_error());
    int sessions = 0;
    for (int i = 0; rep && i < rep->n_methods; i++) {
        const cz_turing_method_report *m = &rep->methods[i];
        sessions += m->participants + m->excluded;
        CHECK(m->trials == 36L * m->participants && m->incomplete == 0,
              "%s: %ld trials for %d participants", m->method, m->trials,
              m->participants);
        CHECK(m->participants + m->excluded == PARTICIPANTS / 2,
              "%s: %d sessions, balancing should give %d", m->method,
              m->participants + m->excluded, PARTICIPANTS / 2);
    }
    CHECK(sessions == PARTICIPANTS, "report counts %d sessions", sessions);
    cz_turing_report_free(rep);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_finish("test_turing_load");
}
