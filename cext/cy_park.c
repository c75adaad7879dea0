/* cy_park.c - the parking backends behind cy_park.h. */
#if !defined(_WIN32) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1 /* syscall() */
#endif

#include "cy_park.h"

#include <errno.h>
#include <limits.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <time.h>
#endif

/* Slice length for backends whose sleep a signal cannot cut short. */
#ifndef CY_PARK_SLICE_NS
#define CY_PARK_SLICE_NS (20 * 1000 * 1000) /* 20 ms: Ctrl-C feels instant */
#endif

/* ------------------------------------------------------------------ clock */

#if defined(_WIN32)
int64_t cy_now_ns(void)
{
    static LARGE_INTEGER freq; /* constant after boot; a racy first store writes the same value */
    LARGE_INTEGER now;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    /* split to avoid overflowing counter * 1e9 */
    int64_t sec = now.QuadPart / freq.QuadPart, rem = now.QuadPart % freq.QuadPart;
    return sec * 1000000000 + rem * 1000000000 / freq.QuadPart;
}
#else
int64_t cy_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
#endif

int64_t cy_deadline_after(int64_t timeout_ns)
{
    int64_t now = cy_now_ns();
    if (timeout_ns <= 0)
        return now;
    if (timeout_ns >= CY_NO_DEADLINE - now)
        return CY_NO_DEADLINE;
    return now + timeout_ns;
}

#if defined(CY_PARK_FALLBACK) || !defined(__linux__)
/* Remaining time before `deadline`, clamped to one slice when `sliced`.
 * Sets *last when this wait runs to the deadline itself. */
static inline int64_t remaining_ns(int64_t deadline, int sliced, int *last)
{
    int64_t left = deadline == CY_NO_DEADLINE ? INT64_MAX : deadline - cy_now_ns();
    *last = 1;
    if (sliced && left > CY_PARK_SLICE_NS) {
        left = CY_PARK_SLICE_NS;
        *last = 0;
    }
    return left;
}
#endif

/* ---------------------------------------------------------------- backends */

#if defined(CY_PARK_FALLBACK)
/* Portable: a fixed table of mutex+condvar buckets hashed by address.  A
 * waiter re-reads the word under its bucket's mutex, and a waker takes that
 * mutex after changing the word, so the check-then-sleep cannot miss a wake.
 * Buckets are shared, so wakes broadcast (callers tolerate spurious wakes). */
#include <pthread.h>

#define NBUCKETS 64
static struct bucket {
    pthread_mutex_t mu;
    pthread_cond_t cv;
} buckets[NBUCKETS];
static pthread_once_t buckets_once = PTHREAD_ONCE_INIT;

/* fork(): the child gets the buckets as they were at that instant,
 * possibly locked by a thread that does not exist there.  Take them all
 * around the fork and give the child fresh ones. */
#if !defined(_WIN32)
static void buckets_prefork(void)
{
    for (int i = 0; i < NBUCKETS; i++)
        pthread_mutex_lock(&buckets[i].mu);
}

static void buckets_parent(void)
{
    for (int i = NBUCKETS - 1; i >= 0; i--)
        pthread_mutex_unlock(&buckets[i].mu);
}
#endif

static void buckets_fresh(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
#if !defined(__APPLE__)
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
#endif
    for (int i = 0; i < NBUCKETS; i++) {
        pthread_mutex_init(&buckets[i].mu, NULL);
        pthread_cond_init(&buckets[i].cv, &attr);
    }
    pthread_condattr_destroy(&attr);
}

static void buckets_init(void)
{
    buckets_fresh();
#if !defined(_WIN32) /* no fork() there (and no pthread_atfork in winpthreads) */
    pthread_atfork(buckets_prefork, buckets_parent, buckets_fresh);
#endif
}

static struct bucket *bucket_of(const void *addr)
{
    pthread_once(&buckets_once, buckets_init);
    return &buckets[cy_addr_hash(addr, NBUCKETS)];
}

cy_status cy_park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline)
{
    int last;
    int64_t left = remaining_ns(deadline, 1, &last);
    if (left <= 0)
        return CY_TIMEOUT;
    struct bucket *b = bucket_of(addr);
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    if (atomic_load_explicit(addr, CY_ACQUIRE) == expected) {
#if defined(__APPLE__)
        struct timespec rel = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
        rc = pthread_cond_timedwait_relative_np(&b->cv, &b->mu, &rel);
#else
        int64_t until = cy_now_ns() + left;
        struct timespec abs = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
        rc = pthread_cond_timedwait(&b->cv, &b->mu, &abs);
#endif
    }
    pthread_mutex_unlock(&b->mu);
    if (rc == ETIMEDOUT)
        return last ? CY_TIMEOUT : CY_INTR;
    return CY_OK;
}

void cy_wake_os(_Atomic uint32_t *addr, int32_t n)
{
    (void)n;
    struct bucket *b = bucket_of(addr);
    pthread_mutex_lock(&b->mu);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

const char *cy_park_backend(void) { return "fallback"; }

#elif defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

cy_status cy_park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline)
{
    struct timespec abs, *tsp = NULL;
    if (deadline != CY_NO_DEADLINE) {
        /* A past deadline would still sleep for the timer slack (50 us or
         * more): a poll must not. */
        if (deadline <= cy_now_ns())
            return CY_TIMEOUT;
        abs.tv_sec = (time_t)(deadline / 1000000000);
        abs.tv_nsec = (long)(deadline % 1000000000);
        tsp = &abs;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
     * wait that is interrupted and resumed never stretches the timeout. */
    long rc = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                      expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
    if (rc == 0)
        return CY_OK;
    switch (errno) {
    case ETIMEDOUT:
        return CY_TIMEOUT;
    case EINTR:
        return CY_INTR;
    default: /* EAGAIN: the word had already changed */
        return CY_OK;
    }
}

void cy_wake_os(_Atomic uint32_t *addr, int32_t n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

const char *cy_park_backend(void) { return "futex"; }

#elif defined(__APPLE__)
/* The private API libc++ has used for std::atomic::wait since macOS 10.12. */
extern int __ulock_wait(uint32_t operation, void *addr, uint64_t value, uint32_t timeout_us);
extern int __ulock_wake(uint32_t operation, void *addr, uint64_t wake_value);
#define CY_UL_COMPARE_AND_WAIT 1
#define CY_ULF_WAKE_ALL 0x00000100
#define CY_ULF_NO_ERRNO 0x01000000

cy_status cy_park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline)
{
    int last;
    int64_t left = remaining_ns(deadline, 1, &last);
    if (left <= 0)
        return CY_TIMEOUT;
    uint32_t us = (uint32_t)((left + 999) / 1000); /* a slice always fits; 0 would mean forever */
    int rc = __ulock_wait(CY_UL_COMPARE_AND_WAIT | CY_ULF_NO_ERRNO, (void *)addr, expected, us);
    if (rc >= 0)
        return CY_OK;
    if (rc == -ETIMEDOUT)
        return last ? CY_TIMEOUT : CY_INTR;
    if (rc == -EINTR)
        return CY_INTR;
    return CY_OK;
}

void cy_wake_os(_Atomic uint32_t *addr, int32_t n)
{
    uint32_t op = CY_UL_COMPARE_AND_WAIT | CY_ULF_NO_ERRNO;
    if (n != 1)
        op |= CY_ULF_WAKE_ALL;
    __ulock_wake(op, (void *)addr, 0);
}

const char *cy_park_backend(void) { return "ulock"; }

#elif defined(_WIN32)
/* Needs Synchronization.lib (setup.py links it).  Windows delivers Ctrl-C on
 * another thread, so waits run in slices and report CY_INTR between them. */
cy_status cy_park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline)
{
    int last;
    int64_t left = remaining_ns(deadline, 1, &last);
    if (left <= 0)
        return CY_TIMEOUT;
    DWORD ms = (DWORD)((left + 999999) / 1000000);
    if (WaitOnAddress((volatile VOID *)addr, &expected, sizeof expected, ms))
        return CY_OK;
    if (GetLastError() == ERROR_TIMEOUT)
        return last ? CY_TIMEOUT : CY_INTR;
    return CY_OK;
}

void cy_wake_os(_Atomic uint32_t *addr, int32_t n)
{
    if (n == 1)
        WakeByAddressSingle((PVOID)addr);
    else
        WakeByAddressAll((PVOID)addr);
}

const char *cy_park_backend(void) { return "waitonaddress"; }
#endif
