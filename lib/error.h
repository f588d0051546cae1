/* Thread-local error messages and status helpers, shared by every lib/ file. */
#ifndef KNE_ERROR_H
#define KNE_ERROR_H
#include "kne.h"

/* Records a printf-style message for kne_last_error() on this thread; returns s. */
kne_status kne_fail(kne_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Clears this thread's message (called at the start of public entry points). */
void kne_clear_error(void);
/* Prefixes the current message with "what: " (for context while unwinding). */
void kne_error_prefix(const char *what);

/* Evaluates a kne_status expression and returns it from the caller on failure. */
#define KNE_TRY(expr) do { kne_status kne_try_s_ = (expr); if (kne_try_s_ != KNE_OK) return kne_try_s_; } while (0)

#endif
