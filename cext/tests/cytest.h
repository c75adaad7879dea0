/* cytest.h - a tiny test harness for cysync's C core (no framework, no Python).
 *
 * Each test binary lists its cases in a cytest_case table and hands it to
 * cytest_main(), which runs them (all, or those whose name contains one of
 * the command-line filters, matched against "suite.case"), prints one line
 * per case and closes with
 *
 *     N passed, M failed
 *
 * alone on a line.  CHECK() may be called from any thread: a failure is
 * charged to the case that is running.  Every blocking call in the tests uses
 * a finite deadline, so a lost wake-up shows as a failure, not a hang; an
 * alarm() watchdog ends the binary as a last resort.
 *
 * Command line:  test_x [--quick] [--scale F] [--seed S] [--watchdog SEC]
 *                       [--xfail-known] [--list] [filter...]
 * Environment:   CYTEST_SCALE, CYTEST_SEED, CYTEST_WATCHDOG, CYTEST_XFAIL_KNOWN=1
 */
#ifndef CYTEST_H
#define CYTEST_H

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cy_park.h"

typedef struct {
    const char *name;
    void (*fn)(void);
    /* NULL, or a note naming a bug in cext/ that this case demonstrates (it
     * fails until the bug is fixed; --xfail-known reports it as an expected
     * failure instead). */
    const char *known_bug;
} cytest_case;

int cytest_main(int argc, char **argv, const char *suite, const cytest_case *cases, size_t ncases);

/* ----------------------------------------------------------------- checks */

#if defined(__GNUC__)
#define CYTEST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CYTEST_PRINTF(a, b)
#endif

void cytest_fail_at(const char *file, int line, const char *fmt, ...) CYTEST_PRINTF(3, 4);
void cytest_note(const char *fmt, ...) CYTEST_PRINTF(1, 2);

/* Failures charged to the running case so far (any thread). */
long cytest_failures(void);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            cytest_fail_at(__FILE__, __LINE__, "CHECK(%s)", #c);                                   \
    } while (0)

#define CHECK_MSG(c, ...)                                                                          \
    do {                                                                                           \
        if (!(c))                                                                                  \
            cytest_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                       \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            cytest_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);          \
    } while (0)

#define CHECK_LE(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (!(a_ <= b_))                                                                           \
            cytest_fail_at(__FILE__, __LINE__, "%s <= %s: %lld > %lld", #a, #b, a_, b_);           \
    } while (0)

/* ------------------------------------------------------------ parameters */

/* `full` scaled by --scale / --quick, at least 1. */
long cytest_n(long full);
/* The scale factor itself (1.0 = full run). */
double cytest_scale(void);
/* The run's seed (printed at start; --seed / CYTEST_SEED reproduce a run). */
uint64_t cytest_seed(void);

/* ----------------------------------------------------------- time, random */

int64_t cytest_now_ns(void);
/* An absolute deadline `seconds` from now (cy_deadline_after). */
int64_t cytest_deadline(double seconds);
void cytest_sleep_us(long us);
/* Busy work of roughly `spins` CPU pause instructions. */
void cytest_spin(unsigned spins);

typedef struct {
    uint64_t s;
} cytest_rng;

void cytest_rng_init(cytest_rng *r, uint64_t stream);
uint64_t cytest_rand(cytest_rng *r);
/* Uniform in [0, n). */
uint64_t cytest_below(cytest_rng *r, uint64_t n);

/* ---------------------------------------------------------------- threads */

/* Runs fn(ctx, id) on n threads (id = 0 .. n-1) that start together, and
 * joins them.  Returns how many threads ran (n unless creation failed, which
 * is a test failure). */
int cytest_parallel(int n, void (*fn)(void *ctx, int id), void *ctx);

/* A thread started alone, joined later. */
typedef struct {
    pthread_t t;
    int started;
} cytest_thread;

void cytest_start(cytest_thread *th, void *(*fn)(void *), void *arg);
void cytest_join(cytest_thread *th);

/* Spins (yielding) until *flag != 0 or `seconds` pass; 1 if it was seen. */
int cytest_await_flag(_Atomic int *flag, double seconds);
/* Spins (yielding) until *v >= target or `seconds` pass; 1 if reached. */
int cytest_await_at_least(_Atomic long *v, long target, double seconds);

/* ---------------------------------------------------------------- signals */

/* A SIGUSR1 handler that does nothing, installed without SA_RESTART, so a
 * futex wait it interrupts returns EINTR (CY_INTR), as a Python signal would. */
void cytest_install_sigusr1(void);
void cytest_poke(pthread_t t);

/* Runs fn in a forked child (for a case that may trip UBSan, which aborts
 * the process): 1 if the child exited cleanly with no failed check. */
int cytest_in_child(void (*fn)(void));

#endif /* CYTEST_H */
