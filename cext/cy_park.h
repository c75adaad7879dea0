/* cy_park.h - wait on a 32-bit address until it changes; wake its waiters.
 *
 * The whole of cysync's blocking rests on these three calls, in the shape of
 * Linux's futex: cy_park() sleeps only if *addr still equals `expected` (the
 * check and the sleep are atomic with respect to cy_wake), so a waker that
 * changes the word and then wakes can never be missed.
 *
 * Backends, chosen at compile time:
 *   Linux    futex(FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG), absolute monotonic deadline
 *   macOS    __ulock_wait / __ulock_wake (what libc++'s atomic wait uses)
 *   Windows  WaitOnAddress / WakeByAddress*
 *   other    hashed buckets of mutex + condition variable (CY_PARK_FALLBACK forces it
 *            anywhere, so the portable path is built and tested on Linux too)
 *
 * Every caller loops: cy_park may return CY_OK without a wake (the word had
 * already changed, or a spurious wake-up), and callers re-check their
 * condition.  Backends that a signal cannot interrupt (Windows, the fallback)
 * sleep in slices of CY_PARK_SLICE_NS and report CY_INTR at the end of a slice,
 * so the Python layer still runs signal handlers (Ctrl-C) promptly.
 */
#ifndef CY_PARK_H
#define CY_PARK_H

#include "cy_atomic.h"

typedef enum {
    CY_OK = 0,       /* woken, or the word no longer held `expected` */
    CY_TIMEOUT = 1,  /* the deadline passed */
    CY_INTR = 2,     /* interrupted: let the caller run signal handlers */
    CY_CANCELLED = 3 /* the wait's cancellation token fired (cy_cancel.h) */
} cy_status;

/* Deadlines are absolute, in nanoseconds of cy_now_ns(); this one never comes. */
#define CY_NO_DEADLINE INT64_MAX

#define CY_WAKE_ALL INT32_MAX

#if !defined(CY_PARK_FALLBACK) && !defined(__linux__) && !defined(__APPLE__) && !defined(_WIN32)
#define CY_PARK_FALLBACK 1
#endif

/* Monotonic clock, nanoseconds. */
int64_t cy_now_ns(void);

/* Absolute deadline `timeout_ns` from now (saturating); timeout_ns < 0 = now. */
int64_t cy_deadline_after(int64_t timeout_ns);

/* Sleep while *addr == expected, until woken or `deadline` (CY_NO_DEADLINE: none). */
cy_status cy_park(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline);

/* Wake up to `n` threads parked on addr (CY_WAKE_ALL: all of them), and
 * every cancellable waiter parked on it (cy_park_cancel). */
void cy_wake(_Atomic uint32_t *addr, int32_t n);

/* The OS wake alone, for words no cancellable waiter ever parks on. */
void cy_wake_os(_Atomic uint32_t *addr, int32_t n);

/* Which backend this build uses: "futex", "ulock", "waitonaddress" or "fallback". */
const char *cy_park_backend(void);

#endif /* CY_PARK_H */
