/* Where the `colorize` under test is: $COLORIZE_BUILD/colorize (tests/run
 * sets it, e.g. build/asan; default build/release). A relative build folder
 * is under the working folder the tests start in, the repository root. */
#ifndef CZ_TESTS_COLORIZE_PATH_H
#define CZ_TESTS_COLORIZE_PATH_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline const char *build_dir(void)
{
    const char *b = getenv("COLORIZE_BUILD");
    return b && *b ? b : "build/release";
}

/* The command as an absolute path, so that it runs from any folder; false
 * when the working folder cannot be read or the path does not fit. */
static inline bool colorize_path(char *out, size_t size)
{
    const char *build = build_dir();
    bool absolute = build[0] == '/';
    char cwd[512] = "";
    if (!absolute && !getcwd(cwd, sizeof cwd))
        return false;
    int n = snprintf(out, size, "%s%s%s/colorize", cwd, absolute ? "" : "/", build);
    return n > 0 && (size_t)n < size;
}

#endif
