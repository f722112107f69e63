/* check.h -- assertions for the tests, no framework: a failed check prints
 * file:line and the values, counts a failure, and the test goes on.
 *
 *   static void test_x(void) { CHECK_EQ_INT(f(), 3); }
 *   int main(void) { TEST_RUN(test_x); return check_finish(); }
 *
 * Each check also evaluates to whether it passed, so a test can stop early:
 * `if (!CHECK(p != NULL)) return;`. Header-only; one test file per binary.
 * CHECK_ONLY=<substring> in the environment runs only the test functions
 * whose names contain it (while working on one). */
#ifndef SEASHORE_CHECK_H
#define SEASHORE_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)           check_true_((cond) ? true : false, #cond, __FILE__, __LINE__)
#define CHECK_EQ_INT(a, b)    check_eq_int_((long long)(a), (long long)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_STR(a, b)    check_eq_str_((a), (b), #a, #b, __FILE__, __LINE__)
#define CHECK_CONTAINS(s, ss) check_contains_((s), (ss), #s, #ss, __FILE__, __LINE__)
#define TEST_RUN(fn)          check_run_(fn, #fn)

#define CHECK_SHOW_MAX 2000 /* longest string a failure message prints */

typedef struct {
    int checks_failed; /* every failed check, inside a test or not */
    int tests_passed;
    int tests_failed;
} check_state_;

static inline check_state_ *check_state(void)
{
    static check_state_ state;
    return &state;
}

static inline bool check_fail_(const char *file, int line)
{
    check_state()->checks_failed++;
    fflush(stdout);
    fprintf(stderr, "%s:%d: ", file, line);
    return false;
}

/* A string for a failure message: quoted, cut at CHECK_SHOW_MAX, or (null). */
static inline void check_show_(const char *s)
{
    if (!s) {
        fprintf(stderr, "(null)");
        return;
    }
    size_t n = strlen(s);
    fprintf(stderr, "\"%.*s\"%s", CHECK_SHOW_MAX, s, n > CHECK_SHOW_MAX ? "..." : "");
}

static inline bool check_true_(bool ok, const char *expr, const char *file, int line)
{
    if (ok)
        return true;
    check_fail_(file, line);
    fprintf(stderr, "CHECK(%s) failed\n", expr);
    return false;
}

static inline bool check_eq_int_(long long a, long long b, const char *ea, const char *eb,
                                 const char *file, int line)
{
    if (a == b)
        return true;
    check_fail_(file, line);
    fprintf(stderr, "CHECK_EQ_INT(%s, %s) failed: %lld != %lld\n", ea, eb, a, b);
    return false;
}

static inline bool check_eq_str_(const char *a, const char *b, const char *ea, const char *eb,
                                 const char *file, int line)
{
    if (a && b && strcmp(a, b) == 0)
        return true;
    check_fail_(file, line);
    fprintf(stderr, "CHECK_EQ_STR(%s, %s) failed: ", ea, eb);
    check_show_(a);
    fprintf(stderr, " != ");
    check_show_(b);
    fprintf(stderr, "\n");
    return false;
}

static inline bool check_contains_(const char *s, const char *ss, const char *es, const char *ess,
                                   const char *file, int line)
{
    if (s && ss && strstr(s, ss))
        return true;
    check_fail_(file, line);
    fprintf(stderr, "CHECK_CONTAINS(%s, %s) failed: ", es, ess);
    check_show_(s);
    fprintf(stderr, " does not contain ");
    check_show_(ss);
    fprintf(stderr, "\n");
    return false;
}

static inline void check_run_(void (*fn)(void), const char *name)
{
    const char *only = getenv("CHECK_ONLY");
    if (only != NULL && *only != '\0' && strstr(name, only) == NULL)
        return;
    int before = check_state()->checks_failed;
    printf("== %s\n", name);
    fflush(stdout);
    fn();
    bool ok = check_state()->checks_failed == before;
    if (ok)
        check_state()->tests_passed++;
    else
        check_state()->tests_failed++;
    printf("-- %s: %s\n", name, ok ? "ok" : "FAILED");
    fflush(stdout);
}

/* Prints "N passed, M failed" (test functions); the exit status for main:
 * 0 iff no check failed anywhere. */
static inline int check_finish(void)
{
    const check_state_ *s = check_state();
    printf("%d passed, %d failed\n", s->tests_passed, s->tests_failed);
    fflush(stdout);
    return s->checks_failed == 0 ? 0 : 1;
}

#endif
