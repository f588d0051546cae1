/* Thread-local last-error message and the status names. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KNE_ERR_CAP 1024
static __thread char tls_message[KNE_ERR_CAP];

kne_status kne_fail(kne_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_message, sizeof tls_message, fmt, ap);
    va_end(ap);
    return s;
}

void kne_clear_error(void) { tls_message[0] = '\0'; }

void kne_error_prefix(const char *what)
{
    size_t wl = strlen(what), ml = strlen(tls_message);
    if (wl + 3 >= KNE_ERR_CAP) return;
    if (wl + 2 + ml >= KNE_ERR_CAP) ml = KNE_ERR_CAP - wl - 3;
    memmove(tls_message + wl + 2, tls_message, ml);
    memcpy(tls_message, what, wl);
    tls_message[wl] = ':';
    tls_message[wl + 1] = ' ';
    tls_message[wl + 2 + ml] = '\0';
}

KNE_API const char *kne_last_error(void) { return tls_message; }

KNE_API const char *kne_status_str(kne_status s)
{
    switch (s) {
    case KNE_OK: return "ok";
    case KNE_ERR_INVALID_ARG: return "invalid argument";
    case KNE_ERR_NOT_FOUND: return "not found";
    case KNE_ERR_IO: return "I/O error";
    case KNE_ERR_FORMAT: return "malformed file";
    case KNE_ERR_DTYPE: return "unsupported dtype";
    case KNE_ERR_MISSING_TENSOR: return "missing tensor";
    case KNE_ERR_SHAPE: return "wrong tensor shape";
    case KNE_ERR_UNSUPPORTED: return "unsupported";
    case KNE_ERR_DEVICE: return "device unavailable";
    case KNE_ERR_BACKEND: return "backend error";
    case KNE_ERR_OUT_OF_MEMORY: return "out of memory";
    case KNE_ERR_CANCELLED: return "cancelled";
    case KNE_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case KNE_ERR_TOO_LONG: return "input longer than the context";
    case KNE_ERR_ENCODING: return "invalid UTF-8";
    case KNE_ERR_NUMERIC: return "NaN or infinity";
    case KNE_ERR_MISMATCH: return "object of another model";
    case KNE_ERR_STATE: return "invalid state";
    case KNE_ERR_EMPTY: return "empty input";
    }
    return "unknown status";
}

KNE_API const char *kne_version(void) { return KNE_VERSION_STRING; }
KNE_API uint32_t kne_version_number(void) { return KNE_VERSION_NUMBER; }
