/* What the tests of a `colorize` subcommand share: a scratch folder, paths
 * in it, and running the command there with its stderr captured. Include
 * once, after check.h; call command_setup() first and command_cleanup()
 * last. The command is $COLORIZE_BUILD/colorize (default build/release). */
#ifndef CZ_TESTS_COMMAND_UTIL_H
#define CZ_TESTS_COMMAND_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "colorize_path.h"

static char command_dir[] = "/tmp/cz_test_XXXXXX";
static char command_exe[512];

/* name inside the scratch folder; the last 8 results stay valid. */
static const char *in_dir(const char *name)
{
    static char paths[8][600];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", command_dir, name);
    return p;
}

static bool command_setup(void)
{
    if (!mkdtemp(command_dir)) {
        perror("mkdtemp");
        return false;
    }
    /* The commands run inside the scratch folder. */
    if (!colorize_path(command_exe, sizeof command_exe)) {
        fprintf(stderr, "no path to colorize\n");
        return false;
    }
    return true;
}

/* Runs `colorize ARGS` (a shell line: ARGS may add a pipe) in the scratch
 * folder, its stdout discarded; returns its exit status, stderr in err. */
static int run(const char *args, char *err, size_t err_size)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>stderr.txt >/dev/null", command_dir, command_exe,
             args);
    int status = system(cmd);
    FILE *f = fopen(in_dir("stderr.txt"), "r");
    size_t n = f ? fread(err, 1, err_size - 1, f) : 0;
    err[n] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void command_cleanup(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", command_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", command_dir);
}

#endif
