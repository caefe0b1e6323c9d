/*
 * A small test harness: TEST(name) defines a case, TEST_MAIN() runs them all
 * (or only those named on the command line) and prints "N passed, N failed".
 * ASSERT_* print the expression, both values and file:line, then fail the
 * case (the rest of the case is skipped). Each program runs under an alarm so
 * a hang fails instead of stalling CI; CTest adds its own timeout on top.
 *
 * Scale: tests read WPOOL_TEST_SCALE (default 1) through test_scale() so the
 * same program is a quick check in CI and a long soak by hand.
 */
#ifndef WPOOL_TEST_H
#define WPOOL_TEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};

#define TEST_MAX 256
static struct test_case test_cases[TEST_MAX];
static int test_count;
static int test_failed_now;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_register_##name(void)                            \
    {                                                                                              \
        if (test_count < TEST_MAX)                                                                 \
            test_cases[test_count++] = (struct test_case){#name, test_##name};                     \
    }                                                                                              \
    static void test_##name(void)

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        test_failed_now = 1;                                                                       \
        return;                                                                                    \
    } while (0)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) TEST_FAIL_("ASSERT(%s) failed", #cond);                                       \
    } while (0)

#define ASSERT_CMP_(a, op, b, fmt, type)                                                           \
    do {                                                                                           \
        type a_ = (type)(a);                                                                       \
        type b_ = (type)(b);                                                                       \
        if (!(a_ op b_))                                                                           \
            TEST_FAIL_("ASSERT(%s %s %s) failed: " fmt " vs " fmt, #a, #op, #b, a_, b_);           \
    } while (0)

#define ASSERT_EQ(a, b)     ASSERT_CMP_(a, ==, b, "%" PRIdMAX, intmax_t)
#define ASSERT_NE(a, b)     ASSERT_CMP_(a, !=, b, "%" PRIdMAX, intmax_t)
#define ASSERT_LT(a, b)     ASSERT_CMP_(a, <, b, "%" PRIdMAX, intmax_t)
#define ASSERT_LE(a, b)     ASSERT_CMP_(a, <=, b, "%" PRIdMAX, intmax_t)
#define ASSERT_GT(a, b)     ASSERT_CMP_(a, >, b, "%" PRIdMAX, intmax_t)
#define ASSERT_GE(a, b)     ASSERT_CMP_(a, >=, b, "%" PRIdMAX, intmax_t)
#define ASSERT_UEQ(a, b)    ASSERT_CMP_(a, ==, b, "%" PRIuMAX, uintmax_t)
#define ASSERT_PTR_EQ(a, b) ASSERT_CMP_(a, ==, b, "%p", const void *)
#define ASSERT_PTR_NE(a, b) ASSERT_CMP_(a, !=, b, "%p", const void *)
#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (strcmp(a_, b_) != 0)                                                                   \
            TEST_FAIL_("ASSERT_STR_EQ(%s, %s) failed: \"%s\" vs \"%s\"", #a, #b, a_, b_);          \
    } while (0)

/* Errno-style results: print the names too. */
#define ASSERT_OK(expr)       ASSERT_EQ((expr), 0)
#define ASSERT_ERR(expr, err) ASSERT_EQ((expr), (err))

/* Marks the case failed without leaving it (for use in helper threads). */
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: EXPECT(%s) failed\n", __FILE__, __LINE__, #cond);            \
            test_failed_now = 1;                                                                   \
        }                                                                                          \
    } while (0)

static inline unsigned test_scale(void)
{
    const char *s = getenv("WPOOL_TEST_SCALE");
    long v = s ? strtol(s, NULL, 10) : 1;
    return v >= 1 ? (unsigned)v : 1;
}

static inline void test_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static inline uint64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int test_main_(int argc, char **argv)
{
    const char *t = getenv("WPOOL_TEST_TIMEOUT");
    alarm(t ? (unsigned)atoi(t) : 600);
    int passed = 0, failed = 0;
    for (int i = 0; i < test_count; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], test_cases[i].name) == 0;
            if (!wanted) continue;
        }
        test_failed_now = 0;
        fprintf(stderr, "[ RUN  ] %s\n", test_cases[i].name);
        test_cases[i].fn();
        if (test_failed_now) {
            failed++;
            fprintf(stderr, "[ FAIL ] %s\n", test_cases[i].name);
        } else {
            passed++;
            fprintf(stderr, "[  OK  ] %s\n", test_cases[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define TEST_MAIN()                                                                                \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return test_main_(argc, argv);                                                             \
    }

#endif
