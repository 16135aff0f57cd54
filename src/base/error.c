#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *cz_strerror(cz_status status)
{
    switch (status) {
    case CZ_OK: return "success";
    case CZ_ERR_NOMEM: return "out of memory";
    case CZ_ERR_IO: return "input/output error";
    case CZ_ERR_FORMAT: return "corrupt or unsupported file";
    case CZ_ERR_TOO_LARGE: return "size too large";
    case CZ_ERR_INVALID: return "invalid argument";
    case CZ_ERR_BACKEND: return "oneDNN error";
    case CZ_ERR_NUMERIC: return "NaN or infinity";
    }
    return "unknown status";
}

const char *cz_last_error(void) { return last_error; }

void cz_error_clear(void) { last_error[0] = '\0'; }

cz_status cz_fail(cz_status status, const char *fmt, ...)
{
    /* The arguments may include cz_last_error() itself, to add context. */
    char message[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    memcpy(last_error, message, sizeof last_error);
    return status;
}
