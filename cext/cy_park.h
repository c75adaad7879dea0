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
 * This is the lowest layer: it calls the OS and nothing above it.  Every
 * caller loops: cy_park may return CY_OK without a wake (the word had
 * already changed, or a spurious wake-up), and callers re-check their
 * condition.  Backends that a signal cannot interrupt (Windows, the fallback)
 * sleep in slices of CY_PARK_SLICE_NS and report CY_INTR at the end of a slice,
 * so the Python layer still runs signal handlers (Ctrl-C) promptly.
 */
#ifndef CY_PARK_H
#define CY_PARK_H

#include <stddef.h>

#include "cy_atomic.h"

typedef enum {
    CY_OK = 0,       /* woken, or the word no longer held `expected` */
    CY_TIMEOUT = 1,  /* the deadline passed */
    CY_INTR = 2,     /* interrupted: let the caller run signal handlers */
    CY_CANCELLED = 3 /* the wait's cancellation token fired (cy_waiter.h) */
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

/* Wake up to `n` threads parked on addr (CY_WAKE_ALL: all of them).  The
 * primitives call cy_wake (cy_waiter.h), which also reaches records that
 * wait on addr with a cancellation token; this is the OS's wake alone. */
void cy_wake_os(_Atomic uint32_t *addr, int32_t n);

/* The bucket of `addr` among n: the one address hash of the parking
 * fallback and of the waiter layer's address table. */
static inline size_t cy_addr_hash(const volatile void *addr, size_t n)
{
    uintptr_t h = (uintptr_t)addr;
    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15u;
    return (size_t)((h >> 7) % n);
}

/* Which backend this build uses: "futex", "ulock", "waitonaddress" or "fallback". */
const char *cy_park_backend(void);

#endif /* CY_PARK_H */
