/* The README's library example is real: this test copies the first ```c
 * block of its "Using colorize" section to a file, compiles it against
 * include/colorize.h alone and the build's libcolorize.a (with the build's
 * sanitizers under build/asan), and runs it on a photo with a tiny model,
 * then on a truncated model file, which it must report. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "pipeline_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZE_FLAGS "-fsanitize=address,undefined -fno-sanitize-recover=all"
#else
#define SANITIZE_FLAGS ""
#endif

static char tmpdir[] = "/tmp/cz_test_readme_XXXXXX";

/* The first ```c block after the heading, or NULL. */
static char *extract_example(const char *readme, const char *heading)
{
    const char *sec = strstr(readme, heading);
    if (!sec)
        return NULL;
    const char *begin = strstr(sec, "\n```c\n");
    if (!begin)
        return NULL;
    begin += strlen("\n```c\n");
    const char *end = strstr(begin, "\n```\n");
    if (!end)
        return NULL;
    size_t n = (size_t)(end - begin) + 1;
    char *code = malloc(n + 1);
    if (!code)
        return NULL;
    memcpy(code, begin, n);
    code[n] = '\0';
    return code;
}

/* The libraries the Makefile links the command with (its LIBS := and +=
 * lines), so the example builds as the project does. */
static char *makefile_libs(void)
{
    char *mk = read_file("Makefile", NULL);
    size_t cap = mk ? strlen(mk) + 1 : 1, len = 0;
    char *libs = calloc(cap, 1);
    bool found = false;
    for (char *line = mk; line && *line && libs;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *op = strstr(line, "=");
        if (strncmp(line, "LIBS", 4) == 0 && strchr(" \t:+=", line[4]) &&
            op) {
            len += (size_t)snprintf(libs + len, cap - len, " %s", op + 1);
            found = true;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(mk);
    if (!found) {
        free(libs);
        return NULL;
    }
    return libs;
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    char *readme = read_file("README.md", NULL);
    CHECK(readme != NULL, "cannot read README.md (run from the repository root)");
    char *code = readme ? extract_example(readme, "\n## Using colorize") : NULL;
    CHECK(code != NULL, "README.md has no ```c block under '## Using colorize'");
    char *libs = makefile_libs();
    CHECK(libs != NULL, "no LIBS line in the Makefile");
    if (!code || !libs)
        goto done;

    char src[512], bin[512], model[512], in[512], out[512], bad[512];
    snprintf(src, sizeof src, "%s/example.c", tmpdir);
    snprintf(bin, sizeof bin, "%s/example", tmpdir);
    snprintf(model, sizeof model, "%s/tiny.safetensors", tmpdir);
    snprintf(in, sizeof in, "%s/old.jpg", tmpdir);
    snprintf(out, sizeof out, "%s/new.jpg", tmpdir);
    snprintf(bad, sizeof bad, "%s/truncated.safetensors", tmpdir);
    CHECK(write_file(src, code, strlen(code)) == 0, "writing %s", src);

    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -Wall -Wextra -Werror -pedantic %s -Iinclude %s "
             "%s/libcolorize.a -fopenmp %s -o %s",
             cc, SANITIZE_FLAGS, src, build_dir(), libs, bin);
    char *err = NULL;
    int rc = run_capture(tmpdir, cmd, NULL, &err);
    CHECK(rc == 0, "the README example does not compile:\n%s\n%s", cmd, err ? err : "");
    free(err);
    if (rc != 0)
        goto done;

    cz_image *img = pattern_image(300, 200, 1, 8, 11);
    CHECK(make_tiny_model(model, "unet", 4) == 0, "making the model");
    CHECK(img && cz_image_save(in, img, 90) == CZ_OK, "saving %s", in);
    cz_image_free(img);

    snprintf(cmd, sizeof cmd, "%s %s %s %s", bin, model, in, out);
    rc = run_capture(tmpdir, cmd, NULL, &err);
    CHECK(rc == 0, "the README example failed (exit %d):\n%s", rc, err ? err : "");
    free(err);
    cz_image *o = NULL;
    CHECK(cz_image_load(out, NULL, &o) == CZ_OK && o->width == 300 &&
              o->height == 200 && o->channels == 3,
          "the README example's output: %s", cz_last_error());
    cz_image_free(o);

    /* A bad model: the example reports it, naming the file, and fails. */
    size_t n;
    char *m = read_file(model, &n);
    if (m)
        write_file(bad, m, n / 2);
    free(m);
    snprintf(cmd, sizeof cmd, "%s %s %s %s.2.jpg", bin, bad, in, out);
    rc = run_capture(tmpdir, cmd, NULL, &err);
    CHECK(rc != 0 && rc != -1 && err && strstr(err, bad),
          "the example with a truncated model: exit %d:\n%s", rc, err ? err : "");
    free(err);

done:
    free(readme);
    free(code);
    free(libs);
    remove_tree(tmpdir);
    return check_finish("test_readme_example");
}
