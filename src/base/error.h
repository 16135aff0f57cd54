/* Error reporting inside the library: set the thread's detailed message and
 * return the status in one statement, e.g.
 *     return cz_fail(CZ_ERR_FORMAT, "%s: not a PNG file", path);            */
#ifndef CZ_BASE_ERROR_H
#define CZ_BASE_ERROR_H

#include "colorize.h"

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
cz_status cz_fail(cz_status status, const char *fmt, ...);

/* Clear the message (for callers that retry after an expected failure). */
void cz_error_clear(void);

#endif
