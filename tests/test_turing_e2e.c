/* The browser test: `colorize turing serve` runs as a child process on an
 * ephemeral port of 127.0.0.1, and tests/e2e/session.mjs (playwright-core
 * driving Debian's headless Chromium) completes two sessions as scripted
 * participants; then `colorize turing report` must show exactly the counts
 * their plans produce. Skips (passing, with a message) only when node or
 * chromium is missing; `make deps` installs both. Installs tests/e2e's
 * pinned packages with `npm ci` when they are missing or stale. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "colorize_path.h"
#include "image/image.h"

#define E2E_DIR "tests/e2e"
#define SHOW_MS 100            /* display time for the test; real runs: 1000 */
#define SERVER_START_S 60      /* to print its port (ASan builds are slow) */
#define BROWSER_LIMIT_S 150    /* for the whole browser script */
#define NPM_LIMIT_S 300

static char root[256];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Finds prog on $PATH. */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[1024];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* Runs argv with stdout and stderr to log (if not NULL); kills it after
 * limit_s seconds. Returns the exit status, or -1. */
static int run(char *const argv[], const char *dir, const char *log,
               double limit_s)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (dir && chdir(dir) != 0)
            _exit(126);
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        setpgid(0, 0);
        execvp(argv[0], argv);
        _exit(127);
    }
    double t0 = now_s();
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return -1;
        if (now_s() - t0 > limit_s) {
            fprintf(stderr, "%s: killed after %.0f s\n", argv[0], limit_s);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(50000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f))
        fprintf(stderr, "    %s", line);
    if (f)
        fclose(f);
}

/* npm ci when node_modules lacks the locked playwright-core, under a lock so
 * the release and sanitizer runs of `make -j test` do not race. */
static int ensure_packages(void)
{
    int fd = open(E2E_DIR "/.npm-install.lock", O_RDWR | O_CREAT, 0644);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        fprintf(stderr, "cannot lock %s/.npm-install.lock\n", E2E_DIR);
        if (fd >= 0)
            close(fd);
        return 0;
    }
    int ok = 1;
    if (!on_path("npm")) {
        /* Without npm the packages must be there already. */
        ok = access(E2E_DIR "/node_modules/playwright-core/package.json",
                    R_OK) == 0;
        if (!ok)
            fprintf(stderr, "npm is needed to install %s's packages "
                            "(`make deps` installs it)\n", E2E_DIR);
        flock(fd, LOCK_UN);
        close(fd);
        return ok;
    }
    /* `npm ls` fails when a package is missing or not the pinned version. */
    char *argv_ls[] = {"npm", "ls", "--silent", NULL};
    if (run(argv_ls, E2E_DIR, "/dev/null", 60) != 0) {
        printf("installing %s's packages (npm ci)\n", E2E_DIR);
        fflush(stdout);
        char log[300];
        snprintf(log, sizeof log, "%s/npm.log", root);
        char *argv_ci[] = {"npm", "ci", "--no-audit", "--no-fund", NULL};
        if (run(argv_ci, E2E_DIR, log, NPM_LIMIT_S) != 0) {
            fprintf(stderr, "npm ci in %s failed:\n", E2E_DIR);
            print_file(log);
            ok = 0;
        }
    }
    flock(fd, LOCK_UN);
    close(fd);
    return ok;
}

/* Red photos (real) of several shapes, and gray copies (the "method"). */
static void make_photos(const char *real, const char *gray)
{
    CHECK(mkdir(real, 0755) == 0 && mkdir(gray, 0755) == 0, "mkdir");
    for (int k = 0; k < 6; k++) {
        int w = 40 + 12 * k, h = 36 + 5 * (k % 3);
        cz_image *img = cz_image_new(w, h, 3, 8);
        cz_image *g = cz_image_new(w, h, 1, 8);
        unsigned char *p = img->data, *q = g->data;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++, p += 3, q++) {
                p[0] = (unsigned char)(180 + (x * 2 + y + k * 9) % 60);
                p[1] = (unsigned char)(35 + (y * 3 + k) % 40);
                p[2] = (unsigned char)(30 + (x + 2 * y) % 30);
                q[0] = (unsigned char)((p[0] * 3 + p[1] * 6 + p[2]) / 10);
            }
        char path[400];
        snprintf(path, sizeof path, "%s/photo%d.jpg", real, k);
        CHECK(cz_image_save(path, img, 95) == CZ_OK, "%s", cz_last_error());
        snprintf(path, sizeof path, "%s/photo%d.png", gray, k);
        CHECK(cz_image_save(path, g, 95) == CZ_OK, "%s", cz_last_error());
        cz_image_free(img);
        cz_image_free(g);
    }
}

/* Starts the server; returns its pid and sets *port from its first line. */
static pid_t start_server(const char *colorize, const char *real,
                          const char *gray, const char *db, const char *log,
                          int *port, int *out_fd)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    char method[400], show[16];
    snprintf(method, sizeof method, "gray=%s", gray);
    snprintf(show, sizeof show, "%d", SHOW_MS);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execl(colorize, colorize, "turing", "serve", "--real", real, "--method",
              method, "--db", db, "--port", "0", "--show-ms", show, "--seed",
              "20160328", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *out_fd = fds[0];
    char line[512];
    size_t have = 0;
    double t0 = now_s();
    *port = 0;
    while (have < sizeof line - 1 && now_s() - t0 < SERVER_START_S) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        ssize_t k = read(fds[0], line + have, 1);
        if (k <= 0)
            break;
        if (line[have] == '\n')
            break;
        have++;
    }
    line[have] = '\0';
    const char *at = strstr(line, "http://127.0.0.1:");
    if (at)
        *port = atoi(at + strlen("http://127.0.0.1:"));
    return pid;
}

int main(void)
{
    const char *chromium = getenv("CHROMIUM") ? getenv("CHROMIUM")
                                              : "/usr/bin/chromium";
    if (!on_path("node") || access(chromium, X_OK) != 0) {
        printf("SKIP test_turing_e2e: needs node and %s (`make deps` "
               "installs them)\n", chromium);
        return 0;
    }
    char colorize[300];
    snprintf(colorize, sizeof colorize, "%s/colorize", build_dir());
    CHECK(access(colorize, X_OK) == 0, "%s is not built", colorize);
    CHECK(access(E2E_DIR "/session.mjs", R_OK) == 0,
          "run from the repository root (no %s/session.mjs)", E2E_DIR);
    if (check_failed)
        return check_finish("test_turing_e2e");

    snprintf(root, sizeof root, "%s/cz-test-turing-e2e-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(ensure_packages(), "the browser test's packages are not installed");
    if (check_failed)
        return check_finish("test_turing_e2e");

    char real[300], gray[300], db[300], server_log[300], browser_log[300];
    snprintf(real, sizeof real, "%s/real", root);
    snprintf(gray, sizeof gray, "%s/gray", root);
    snprintf(db, sizeof db, "%s/answers.db", root);
    snprintf(server_log, sizeof server_log, "%s/server.log", root);
    snprintf(browser_log, sizeof browser_log, "%s/browser.log", root);
    make_photos(real, gray);

    int port = 0, out_fd = -1;
    pid_t server = start_server(colorize, real, gray, db, server_log, &port,
                                &out_fd);
    CHECK(server > 0 && port > 0, "the server did not print its port");
    if (port > 0) {
        char url[64], show[16];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
        snprintf(show, sizeof show, "%d", SHOW_MS);
        char *argv_node[] = {"node", E2E_DIR "/session.mjs", url, show, NULL};
        double t0 = now_s();
        int rc = run(argv_node, NULL, browser_log, BROWSER_LIMIT_S);
        printf("browser sessions: exit %d in %.1f s\n", rc, now_s() - t0);
        CHECK(rc == 0, "the browser test failed (exit %d)", rc);
        if (rc != 0)
            print_file(browser_log);
    }
    if (server > 0) {
        kill(server, SIGTERM);
        int status = 0;
        waitpid(server, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the server did not stop cleanly (status %d)", status);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            print_file(server_log);
        char rest[512];
        ssize_t k = read(out_fd, rest, sizeof rest - 1);
        rest[k > 0 ? k : 0] = '\0';
        CHECK(strstr(rest, "stopped") != NULL, "server's last words: %s", rest);
        close(out_fd);
    }

    /* Every answer is in the database: two sessions of 50 trials. */
    sqlite3 *sdb = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(db, &sdb, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(sdb, "SELECT COUNT(*), COUNT(answer) FROM trials",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        CHECK(sqlite3_column_int(st, 0) == 100 && sqlite3_column_int(st, 1) == 100,
              "%d trials, %d answered", sqlite3_column_int(st, 0),
              sqlite3_column_int(st, 1));
    else
        CHECK(0, "cannot read %s", db);
    sqlite3_finalize(st);
    sqlite3_close(sdb);

    /* The report: P1 counted (12 of 36 fooled), P2 excluded. */
    char cmd[700], line[512];
    snprintf(cmd, sizeof cmd, "%s turing report --db '%s'", colorize, db);
    FILE *f = popen(cmd, "r");
    int rows = 0;
    while (f && fgets(line, sizeof line, f)) {
        char method[80], rate[16], se[16];
        int participants, excluded, incomplete;
        long trials;
        if (sscanf(line, "%79s %15s %15s %d %ld %d %d", method, rate, se,
                   &participants, &trials, &excluded, &incomplete) == 7) {
            rows++;
            CHECK(strcmp(method, "gray") == 0 && strcmp(rate, "33.3%") == 0 &&
                      strcmp(se, "0.0%") == 0 && participants == 1 &&
                      trials == 36 && excluded == 1 && incomplete == 0,
                  "report line: %s", line);
        }
    }
    CHECK(f && pclose(f) == 0 && rows == 1, "%s: %d method rows", cmd, rows);

    if (!check_failed) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", root);
    } else {
        fprintf(stderr, "logs kept in %s\n", root);
    }
    return check_finish("test_turing_e2e");
}
