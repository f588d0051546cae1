/* Minimal test harness: CHECK records a failure and goes on; each binary ends with
   the line "N passed, N failed" that test/run_all.sh adds up. */
#ifndef KNE_TEST_H
#define KNE_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond) do { if (cond) test_passed++; else { test_failed++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { if (cond) test_passed++; else { test_failed++; \
    fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); fprintf(stderr, __VA_ARGS__); \
    fputc('\n', stderr); } } while (0)
/* A call that must return the given status, with a non-empty message on failure. */
#define CHECK_STATUS(expr, want) do { kne_status got_ = (expr); \
    if (got_ == (want) && (got_ == KNE_OK || kne_last_error()[0])) test_passed++; else { test_failed++; \
    fprintf(stderr, "FAIL %s:%d: %s returned %d (%s), want %d; message: %s\n", __FILE__, __LINE__, #expr, \
            (int)got_, kne_status_str(got_), (int)(want), kne_last_error()); } } while (0)

/* Path of ../shared (KNE_SHARED overrides). */
static inline const char *test_shared(void)
{
    const char *s = getenv("KNE_SHARED");
    return s && *s ? s : "../shared";
}

static inline void test_path(char *buf, size_t cap, const char *rel)
{
    snprintf(buf, cap, "%s/%s", test_shared(), rel);
}

static inline int test_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}
#endif
