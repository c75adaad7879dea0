/* cywait.h - the blocking calls of cext/ wrapped the way src/cysync/_cysync.pyx
 * drives them.
 *
 * The Python layer tries the fast path first, then calls the C wait in a
 * loop: CY_INTR means "run the signal handlers, then wait again until the
 * same deadline" (the futex backend reports it on a signal; the fallback
 * backend at the end of every CY_PARK_SLICE_NS slice).  These wrappers do the
 * same, minus the Python, so the tests exercise the core exactly as the
 * package uses it.
 */
#ifndef CYWAIT_H
#define CYWAIT_H

#include "cy_barrier.h"
#include "cy_event.h"
#include "cy_mutex.h"
#include "cy_once.h"
#include "cy_park.h"
#include "cy_sema.h"
#include "cy_waitgroup.h"
#include "cy_wsem.h"

/* Park until *addr != expected (re-parking on spurious wakes and CY_INTR). */
static inline cy_status cyw_park_until_changed(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline)
{
    while (atomic_load_explicit(addr, CY_ACQUIRE) == expected) {
        cy_status r = cy_park(addr, expected, deadline);
        if (r == CY_TIMEOUT)
            return atomic_load_explicit(addr, CY_ACQUIRE) == expected ? CY_TIMEOUT : CY_OK;
    }
    return CY_OK;
}

/* WaitGroup.wait: CY_OK or CY_TIMEOUT. */
static inline cy_status cyw_wg_wait(cy_waitgroup *wg, int64_t deadline)
{
    if (cy_wg_count(wg) == 0)
        return CY_OK;
    cy_status r;
    uint32_t gen = cy_wg_wait_begin(wg);
    while ((r = cy_wg_wait_from(wg, gen, deadline, NULL)) == CY_INTR) {
    }
    return r;
}

/* Once.do for a caller that lost the race: wait until fn has run. */
static inline cy_status cyw_once_wait(cy_once *o, int64_t deadline)
{
    cy_status r;
    while ((r = cy_once_wait(o, deadline)) == CY_INTR) {
    }
    return r;
}

/* Semaphore.acquire(timeout=...): CY_OK or CY_TIMEOUT. */
static inline cy_status cyw_sema_acquire(cy_sema *s, int64_t deadline)
{
    if (cy_sema_try_acquire(s))
        return CY_OK;
    cy_status r;
    while ((r = cy_sema_acquire_slow(s, deadline)) == CY_INTR) {
    }
    return r;
}

/* Event.wait: CY_OK or CY_TIMEOUT. */
static inline cy_status cyw_event_wait(cy_event *e, int64_t deadline)
{
    uint32_t gen = cy_event_wait_begin(e);
    if (cy_event_is_set(e))
        return CY_OK;
    cy_status r;
    while ((r = cy_event_wait_from(e, gen, deadline, NULL)) == CY_INTR) {
    }
    return r;
}

/* WeightedSemaphore.acquire(n, timeout): 1 when the n units are held, 0 on
 * timeout.  poll != 0 is timeout=0 (no queueing). */
static inline int cyw_wsem_acquire(cy_wsem *s, int64_t n, int64_t deadline, int poll)
{
    if (cy_wsem_try_acquire(s, n))
        return 1;
    if (poll)
        return 0;
    cy_wsem_waiter w;
    if (cy_wsem_enqueue(s, n, &w))
        return 1;
    for (;;) {
        cy_status r = cy_wsem_wait(&w, deadline);
        if (r == CY_OK)
            return 1;
        if (r == CY_TIMEOUT)
            return cy_wsem_cancel(s, &w); /* served at the last instant: keep the units */
    }
}

/* Barrier.wait: the last thread runs `action` (may be NULL) and reports
 * action_ok.  Returns CY_OK (released; *index set) or CY_BARRIER_BROKEN_ERR;
 * *was_last tells whether this caller was the one that ran the action. */
static inline int cyw_barrier_wait(cy_barrier *b, int64_t deadline, uint32_t *index, int *was_last,
                                   void (*action)(void *), void *ctx, int action_ok)
{
    int r;
    cy_barrier_ticket t;
    *was_last = 0;
    while ((r = cy_barrier_arrive(b, &t, 1)) == CY_INTR) {
    }
    if (r == CY_BARRIER_BROKEN_ERR)
        return r;
    *index = t.index;
    if (r == CY_BARRIER_LAST) {
        *was_last = 1;
        if (action)
            action(ctx);
        return cy_barrier_action_done(b, action_ok);
    }
    while ((r = cy_barrier_await(b, &t, deadline)) == CY_INTR) {
    }
    return r;
}

#endif /* CYWAIT_H */
