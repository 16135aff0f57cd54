/* The `colorize` command, run as a user runs it ($COLORIZE_BUILD/colorize):
 * a folder mixing good photos (nested, with and without extensions, gray,
 * colour, 16-bit with alpha), bad ones (truncated, zero-length, text named
 * .jpg) and files that are not images; outputs at the mirrored paths with
 * their inputs' sizes, nothing else written, every bad file named, exit 1.
 * Then -o, --help, --version, bad options and bad models (exit 2), inputs
 * never overwritten, --quiet, --verbose, --max-pixels, and the progress bar
 * on a terminal (a pseudo-terminal) but not elsewhere. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bf16.h"
#include "check.h"
#include "pipeline_util.h"

static char tmpdir[] = "/tmp/cz_test_cli_XXXXXX";
static char exe[1024], model[1024];

static const char *path_in(const char *rel)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, rel);
    return p;
}

/* Runs `colorize ARGS` from the temporary folder. */
static int colorize(const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s", tmpdir, exe, args);
    return run_capture(tmpdir, cmd, out, err);
}

static bool contains(const char *s, const char *needle)
{
    return s && strstr(s, needle) != NULL;
}

static int save(const char *rel, int W, int H, int C, int depth, uint32_t seed)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path_in(rel));
    for (char *s = strchr(dir + strlen(tmpdir) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(dir, 0777);
        *s = '/';
    }
    cz_image *img = pattern_image(W, H, C, depth, seed);
    /* The extension decides the codec; names without one are PNGs. */
    char name[1024];
    snprintf(name, sizeof name, "%s", path_in(rel));
    bool bare = !strchr(strrchr(name, '/'), '.');
    if (bare)
        strcat(name, ".png");
    cz_status s = img ? cz_image_save(name, img, 92) : CZ_ERR_NOMEM;
    cz_image_free(img);
    if (bare && s == CZ_OK)
        rename(name, path_in(rel));
    CHECK(s == CZ_OK, "saving %s: %s", rel, cz_last_error());
    return s == CZ_OK ? 0 : -1;
}

/* Checks an output exists with the given shape. */
static void expect_image(const char *rel, int W, int H, int channels, int depth)
{
    cz_image *img = NULL;
    cz_status s = cz_image_load(path_in(rel), NULL, &img);
    CHECK(s == CZ_OK, "output %s: %s", rel, cz_last_error());
    if (s == CZ_OK)
        CHECK(img->width == W && img->height == H && img->channels == channels &&
                  img->depth == depth,
              "%s is %dx%d, %d channels, %d bits; expected %dx%d, %d, %d", rel,
              img->width, img->height, img->channels, img->depth, W, H,
              channels, depth);
    cz_image_free(img);
}

/* Every file under tmpdir/rel, as sorted paths joined by '\n'. */
static void list_files(const char *dir, const char *rel, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *t = names[i];
                names[i] = names[j];
                names[j] = t;
            }
    for (int i = 0; i < n; i++) {
        char path[2048], sub[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            list_files(path, sub, out, cap);
        else if (strlen(out) + strlen(sub) + 2 < cap) {
            strcat(out, sub);
            strcat(out, "\n");
        }
        free(names[i]);
    }
}

static void make_corpus(void)
{
    mkdir(path_in("in"), 0777);
    save("in/gray.jpg", 120, 90, 1, 8, 1);
    save("in/photo.png", 64, 48, 3, 8, 2);
    save("in/sub/deep/rgba16.png", 50, 70, 4, 16, 3);
    save("in/sub/scan", 33, 21, 1, 8, 4); /* a PNG with no extension */
    save("in/sub/Upper.JPEG", 40, 41, 3, 8, 5);

    /* Bad: the first half of a good JPEG, an empty PNG, text named .jpg. */
    size_t n;
    char *jpeg = read_file(path_in("in/gray.jpg"), &n);
    CHECK(jpeg && n > 100, "reading in/gray.jpg");
    write_file(path_in("in/truncated.jpg"), jpeg, n / 2);
    free(jpeg);
    write_file(path_in("in/empty.png"), "", 0);
    const char *text = "these are not the pixels you are looking for\n";
    write_file(path_in("in/fake.jpg"), text, strlen(text));
    /* Not images: skipped with a warning. */
    write_file(path_in("in/notes.txt"), text, strlen(text));
    write_file(path_in("in/sub/README"), text, strlen(text));
}

static void test_folder(void)
{
    char *out = NULL, *err = NULL;
    char args[2048];
    snprintf(args, sizeof args, "in -d out --model %s", model);
    int rc = colorize(args, &out, &err);
    CHECK(rc == 1, "exit status %d, expected 1; stderr:\n%s", rc, err ? err : "");
    expect_image("out/gray.jpg", 120, 90, 3, 8);
    expect_image("out/photo.png", 64, 48, 3, 8);
    expect_image("out/sub/deep/rgba16.png", 50, 70, 4, 16);
    expect_image("out/sub/scan.png", 33, 21, 3, 8);
    expect_image("out/sub/Upper.JPEG", 40, 41, 3, 8);
    /* Nothing else: no output for a bad file, no temporary file left. */
    char files[4096] = "";
    list_files(path_in("out"), "", files, sizeof files);
    CHECK(strcmp(files, "gray.jpg\nphoto.png\nsub/Upper.JPEG\nsub/deep/rgba16.png\n"
                            "sub/scan.png\n") == 0,
          "the output folder holds:\n%s", files);
    /* Each bad file named, with why; each non-image named as skipped. */
    CHECK(contains(err, "in/truncated.jpg:") && contains(err, "in/empty.png:") &&
              contains(err, "in/fake.jpg:"),
          "a bad file is not named:\n%s", err ? err : "");
    CHECK(contains(err, "empty file"), "no reason for empty.png:\n%s", err ? err : "");
    CHECK(contains(err, "in/notes.txt: skipped") && contains(err, "in/sub/README: skipped"),
          "a skipped file is not named:\n%s", err ? err : "");
    CHECK(contains(err, "5 coloured, 3 failed, 2 skipped"), "no tally:\n%s",
          err ? err : "");
    CHECK(!contains(err, "\r") && !contains(err, "ETA"),
          "a progress bar was drawn on a pipe:\n%s", err ? err : "");
    CHECK(!contains(err, "gray.jpg:") && !contains(err, "photo.png:"),
          "a good file was reported:\n%s", err ? err : "");
    CHECK(out && out[0] == '\0', "stdout is not empty: %s", out ? out : "");
    free(out);
    free(err);

    /* The good files alone: exit 0, silent. --quiet silences warnings but
     * not errors. */
    snprintf(args, sizeof args,
             "in/gray.jpg in/photo.png in/sub/deep -d out2 --model %s", model);
    rc = colorize(args, &out, &err);
    CHECK(rc == 0, "good files: exit %d; stderr:\n%s", rc, err ? err : "");
    CHECK(err && err[0] == '\0', "good files: stderr not empty:\n%s", err ? err : "");
    expect_image("out2/gray.jpg", 120, 90, 3, 8);
    expect_image("out2/photo.png", 64, 48, 3, 8);
    expect_image("out2/rgba16.png", 50, 70, 4, 16);
    free(out);
    free(err);

    snprintf(args, sizeof args, "in -d out3 -q --model %s", model);
    rc = colorize(args, NULL, &err);
    CHECK(rc == 1, "--quiet: exit %d", rc);
    CHECK(!contains(err, "skipped") && contains(err, "in/fake.jpg:"),
          "--quiet: stderr:\n%s", err ? err : "");
    free(err);
}

static void test_single(void)
{
    char *err = NULL;
    char args[2048];
    snprintf(args, sizeof args, "in/photo.png -o single.jpg --model %s", model);
    int rc = colorize(args, NULL, &err);
    CHECK(rc == 0, "-o: exit %d; stderr:\n%s", rc, err ? err : "");
    expect_image("single.jpg", 64, 48, 3, 8);
    free(err);

    /* --verbose names the precision and times each file; without bf16
     * kernels bf16 is refused up front, as a bad model is. */
    snprintf(args, sizeof args, "in/gray.jpg -o v.png --model %s -v --precision bf16 "
             "--size 512", model);
    rc = colorize(args, NULL, &err);
    if (bf16_runs()) {
        CHECK(rc == 0, "-v: exit %d; stderr:\n%s", rc, err ? err : "");
        CHECK(contains(err, "bf16") && contains(err, "512x512") && contains(err, " s"),
              "-v: stderr:\n%s", err ? err : "");
        expect_image("v.png", 120, 90, 3, 8);
    } else {
        CHECK(rc == 2 && contains(err, model) && contains(err, "AVX-512"),
              "-v --precision bf16 without bf16 kernels: exit %d; stderr:\n%s", rc,
              err ? err : "");
        CHECK(access(path_in("v.png"), F_OK) != 0, "bf16 refused, yet v.png was written");
    }
    free(err);

    /* Inputs are never overwritten, whatever the path. */
    size_t n0, n1;
    char *before = read_file(path_in("in/photo.png"), &n0);
    snprintf(args, sizeof args, "in/photo.png -o ./in/../in/photo.png --model %s", model);
    rc = colorize(args, NULL, &err);
    CHECK(rc == 1 && contains(err, "refusing to overwrite"),
          "overwriting the input: exit %d:\n%s", rc, err ? err : "");
    free(err);
    snprintf(args, sizeof args, "in/photo.png -d in --model %s", model);
    rc = colorize(args, NULL, &err);
    CHECK(rc == 1 && contains(err, "refusing to overwrite"),
          "-d onto the input's folder: exit %d:\n%s", rc, err ? err : "");
    free(err);
    char *after = read_file(path_in("in/photo.png"), &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0,
          "the input changed");
    free(before);
    free(after);

    /* Two inputs with one output name: the second fails, the first works. */
    save("other/photo.png", 20, 10, 1, 8, 9);
    snprintf(args, sizeof args, "in/photo.png other/photo.png -d clash --model %s", model);
    rc = colorize(args, NULL, &err);
    CHECK(rc == 1 && contains(err, "other/photo.png: its output clash/photo.png "
                                   "would overwrite that of in/photo.png"),
          "clashing outputs: exit %d:\n%s", rc, err ? err : "");
    expect_image("clash/photo.png", 64, 48, 3, 8);
    free(err);

    /* A missing input fails, the others go on. */
    snprintf(args, sizeof args, "nowhere.jpg in/gray.jpg -d miss --model %s", model);
    rc = colorize(args, NULL, &err);
    CHECK(rc == 1 && contains(err, "nowhere.jpg: No such file"),
          "missing input: exit %d:\n%s", rc, err ? err : "");
    expect_image("miss/gray.jpg", 120, 90, 3, 8);
    free(err);

    /* Without --model: the built-in model, which $COLORIZE_MODEL names. */
    setenv("COLORIZE_MODEL", model, 1);
    rc = colorize("in/gray.jpg -o builtin.png -v", NULL, &err);
    CHECK(rc == 0 && contains(err, model), "the built-in model: exit %d:\n%s", rc,
          err ? err : "");
    expect_image("builtin.png", 120, 90, 3, 8);
    unsetenv("COLORIZE_MODEL");
    free(err);

    /* The pixel limit. */
    snprintf(args, sizeof args, "in/gray.jpg -o big.png --max-pixels 1000 --model %s", model);
    rc = colorize(args, NULL, &err);
    CHECK(rc == 1 && contains(err, "in/gray.jpg") && contains(err, "limit"),
          "--max-pixels: exit %d:\n%s", rc, err ? err : "");
    CHECK(access(path_in("big.png"), F_OK) != 0, "an output was written over the limit");
    free(err);
}

static void test_usage(void)
{
    char *out = NULL, *err = NULL;
    int rc = colorize("--help", &out, &err);
    CHECK(rc == 0 && contains(out, "usage: colorize") && contains(out, "--model") &&
              err && !*err,
          "--help: exit %d\n%s%s", rc, out ? out : "", err ? err : "");
    free(out);
    free(err);
    rc = colorize("--version", &out, NULL);
    CHECK(rc == 0 && contains(out, "colorize " COLORIZE_VERSION "\n"),
          "--version: exit %d: %s", rc, out ? out : "");
    free(out);
    rc = colorize("in/gray.jpg -o x.jpg -V", &out, NULL);
    CHECK(rc == 0 && contains(out, COLORIZE_VERSION), "-V after arguments: exit %d", rc);
    free(out);
    rc = colorize("-h", &out, NULL);
    CHECK(rc == 0 && contains(out, "usage:"), "-h: exit %d", rc);
    free(out);

    /* Bad usage: exit 2, a message on stderr, nothing written. The
     * built-in model is one that is not there. */
    setenv("COLORIZE_MODEL", path_in("not-installed.safetensors"), 1);
    static const struct {
        const char *args, *message;
    } bad[] = {
        {"", "no input files"},
        {"in/gray.jpg", "-o OUT for one file, -d DIR"},
        {"in/gray.jpg -o a.jpg -d d", "not both"},
        {"in/gray.jpg in/photo.png -o a.jpg", "-o takes one input"},
        {"in -o a.jpg", "is a folder"},
        {"in/gray.jpg -o a.txt", "must end in .jpg"},
        {"in/gray.jpg -d in/gray.jpg", "not a folder"},
        {"--bogus in/gray.jpg -d d", "unknown option '--bogus'"},
        {"-x in/gray.jpg -d d", "unknown option '-x'"},
        {"in/gray.jpg -d d --size 100", "multiple of 32"},
        {"in/gray.jpg -d d --size 0", "multiple of 32"},
        {"in/gray.jpg -d d --size 99999999999999999999", "multiple of 32"},
        {"in/gray.jpg -d d --size=-32", "multiple of 32"},
        {"in/gray.jpg -d d --size 256x", "multiple of 32"},
        {"in/gray.jpg -d d --max-pixels 0", "--max-pixels"},
        {"in/gray.jpg -d d --max-pixels -5", "--max-pixels"},
        {"in/gray.jpg -d d --quality 101", "--quality"},
        {"in/gray.jpg -d d --precision fp16", "fp32 or bf16"},
        {"in/gray.jpg -d d --model", "needs a value"},
        {"in/gray.jpg -d d -s", "needs a value"},
        {"in/gray.jpg -d d", "the built-in model is not installed"},
        {"in/gray.jpg -d d --model nowhere.safetensors", "nowhere.safetensors"},
        {"in/gray.jpg -d d --model in/gray.jpg", "in/gray.jpg"},
        {"in/gray.jpg -d d --model trunc.safetensors", "trunc.safetensors"},
        {"in/gray.jpg -d d --model patchgan.safetensors", "not a colouriser"},
        {"in/gray.jpg -d d --model tiny.safetensors --size 4128", "multiple of 32"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rc = colorize(bad[i].args, &out, &err);
        CHECK(rc == 2 && contains(err, bad[i].message) && out && !*out,
              "`colorize %s`: exit %d, stderr:\n%s(expected 2 and '%s')",
              bad[i].args, rc, err ? err : "", bad[i].message);
        free(out);
        free(err);
    }
    CHECK(access(path_in("d"), F_OK) != 0 && access(path_in("a.jpg"), F_OK) != 0,
          "bad usage wrote something");
    unsetenv("COLORIZE_MODEL");
}

/* Runs colorize with stderr on a pseudo-terminal and returns what it drew. */
static char *run_on_terminal(const char *args, int *rc)
{
    *rc = -1;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
        return NULL;
    const char *slave = ptsname(master);
    pid_t pid = fork();
    if (pid == 0) {
        int s = open(slave, O_RDWR);
        if (s < 0 || chdir(tmpdir) != 0)
            _exit(127);
        dup2(s, STDERR_FILENO);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "%s %s", exe, args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = calloc(cap, 1);
    for (;;) {
        ssize_t got = read(master, buf + len, cap - 1 - len);
        if (got <= 0)
            break; /* EIO once the child's side closes */
        len += (size_t)got;
        if (len == cap - 1)
            break;
    }
    int st;
    waitpid(pid, &st, 0);
    close(master);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

static void test_progress_bar(void)
{
    char args[2048];
    snprintf(args, sizeof args, "in -d tty --model %s", model);
    int rc;
    char *seen = run_on_terminal(args, &rc);
    CHECK(seen && rc == 1, "on a terminal: exit %d", rc);
    CHECK(contains(seen, "ETA") && contains(seen, "/8 ") && contains(seen, "\r"),
          "no progress bar on a terminal:\n%s", seen ? seen : "");
    CHECK(contains(seen, "in/fake.jpg:"), "errors hidden by the bar:\n%s",
          seen ? seen : "");
    free(seen);
    snprintf(args, sizeof args, "in -d tty2 --quiet --model %s", model);
    seen = run_on_terminal(args, &rc);
    CHECK(seen && !contains(seen, "ETA"), "--quiet drew a bar:\n%s", seen ? seen : "");
    free(seen);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    const char *b = build_dir();
    if (b[0] == '/')
        snprintf(exe, sizeof exe, "%s/colorize", b);
    else {
        char cwd[512];
        snprintf(exe, sizeof exe, "%s/%s/colorize", getcwd(cwd, sizeof cwd) ? cwd : ".", b);
    }
    CHECK(access(exe, X_OK) == 0, "no command at %s", exe);
    snprintf(model, sizeof model, "%s/tiny.safetensors", tmpdir);
    if (make_tiny_model(model, "unet", 1) != 0 ||
        make_tiny_model(path_in("patchgan.safetensors"), "patchgan", 2) != 0) {
        CHECK(0, "cannot make the tiny models");
        remove_tree(tmpdir);
        return check_finish("test_cli");
    }
    size_t n;
    char *m = read_file(model, &n);
    if (m)
        write_file(path_in("trunc.safetensors"), m, n / 3);
    free(m);

    make_corpus();
    test_folder();
    test_single();
    test_usage();
    test_progress_bar();
    remove_tree(tmpdir);
    return check_finish("test_cli");
}
