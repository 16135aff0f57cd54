/* What the subcommands share in reading their command lines. */
#ifndef CZ_CLI_ARGS_H
#define CZ_CLI_ARGS_H

#include <stdbool.h>

/* Prints "colorize COMMAND: <message>" and a pointer to --help on stderr
 * and returns 2, the bad-usage exit status; command NULL is `colorize`
 * itself. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cz_cli_usage_error(const char *command, const char *fmt, ...);

/* Prints "colorize COMMAND: <message>" and a newline on stderr. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void cz_cli_say(const char *command, const char *fmt, ...);

/* A whole decimal string in [lo, hi] (no sign, nothing after it). */
bool cz_cli_parse_long(const char *s, long lo, long hi, long *out);

/* Whether a file name (or path) ends in .jpg, .jpeg or .png, any case. */
bool cz_cli_is_photo_name(const char *path);

#endif
