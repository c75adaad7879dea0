/* cy_wsem.h - weighted semaphore with a FIFO queue (golang.org/x/sync/semaphore).
 *
 * `state` holds the units in use (bits 1..63) and a QUEUED bit (bit 0) that is
 * set exactly while the waiter queue is non-empty.  With the bit clear,
 * acquire and release are one compare-and-swap each.  With it set, they take
 * the slow path under `mu`: newcomers queue behind the waiters even if they
 * would fit (large requests are never starved), and a release hands units to
 * waiters strictly in order, stopping at the first that does not fit.
 *
 * A waiter's node lives in the waiting caller's frame; it sleeps on its own
 * `ready` word, so a release wakes exactly the waiters it served.
 */
#ifndef CY_WSEM_H
#define CY_WSEM_H

#include <stddef.h>

#include "cy_fork.h"
#include "cy_waiter.h"

#define CY_WSEM_QUEUED 1u
#define CY_WSEM_MAX INT64_MAX

typedef struct cy_wsem_waiter {
    cy_list link; /* in the queue, while queued */
    int64_t n;
    _Atomic uint32_t ready; /* 1 once the units are ours */
} cy_wsem_waiter;

typedef struct {
    _Atomic uint64_t state; /* held << 1 | CY_WSEM_QUEUED */
    int64_t size;
    cy_list queue; /* cy_wsem_waiter.link, first come first; guarded by mu */
    cy_mutex mu;
    uint32_t nwaiters; /* guarded by mu; for repr and tests */
} cy_wsem; /* in the fork registry (cy_fork.h) while QUEUED */

static inline void cy_wsem_init(cy_wsem *s, int64_t size)
{
    atomic_init(&s->state, 0);
    s->size = size;
    cy_list_init(&s->queue);
    cy_mutex_init(&s->mu);
    s->nwaiters = 0;
}

static inline int64_t cy_wsem_held(cy_wsem *s)
{
    return (int64_t)(atomic_load_explicit(&s->state, CY_RELAXED) >> 1);
}

/* Takes n units if they are free and nobody waits.  0 <= n. */
static inline int cy_wsem_try_acquire(cy_wsem *s, int64_t n)
{
    uint64_t st = atomic_load_explicit(&s->state, CY_RELAXED);
    for (;;) {
        if ((st & CY_WSEM_QUEUED) || (uint64_t)(s->size - (int64_t)(st >> 1)) < (uint64_t)n)
            return 0;
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st + ((uint64_t)n << 1), CY_ACQUIRE,
                                                  CY_RELAXED))
            return 1;
    }
}

int cy_wsem_release_slow(cy_wsem *s, int64_t n);

/* Returns n units; 0, or -1 if fewer than n are held (nothing changed). */
static inline int cy_wsem_release(cy_wsem *s, int64_t n)
{
    uint64_t st = atomic_load_explicit(&s->state, CY_RELAXED);
    for (;;) {
        if (st & CY_WSEM_QUEUED)
            return cy_wsem_release_slow(s, n);
        if ((st >> 1) < (uint64_t)n)
            return -1;
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st - ((uint64_t)n << 1), CY_RELEASE,
                                                  CY_RELAXED))
            return 0;
    }
}

/* Takes n units now (returns 1) or puts node in the queue (returns 0); n <= size. */
int cy_wsem_enqueue(cy_wsem *s, int64_t n, cy_wsem_waiter *node);

/* Sleeps until node is served (CY_OK), the deadline passes, a signal
 * arrives or the token of `w` (may be NULL) fires: then node has left the
 * queue, and units granted meanwhile have been given back. */
cy_status cy_wsem_wait(cy_wsem *s, cy_wsem_waiter *node, int64_t deadline, cy_waiter *w);

/* After CY_TIMEOUT/CY_INTR: takes node out of the queue and returns 0, or
 * returns 1 if it was served meanwhile (the caller holds the units). */
int cy_wsem_cancel(cy_wsem *s, cy_wsem_waiter *node);

/* cy_wsem_wait for cy_wait(): the begin token is the queued node's address;
 * leaving is cy_wsem_cancel (and, unless kept, giving the units back). */
extern const cy_wait_op cy_wsem_wait_op;

static inline uint32_t cy_wsem_waiters(cy_wsem *s)
{
    cy_mutex_lock(&s->mu);
    uint32_t n = s->nwaiters;
    cy_mutex_unlock(&s->mu);
    return n;
}

/* For a waiter that does not sleep (cy_hub.h), after cy_wsem_enqueue
 * queued `node`: CY_OK once its units are granted, CY_CANCELLED when w's
 * token fired (the caller then leaves, as after CY_AGAIN once it gives up:
 * cy_wsem_wait_op.leave), or CY_AGAIN with n armed on its grant word. */
static inline int cy_wsem_arm(cy_wsem_waiter *node, cy_wnode *n, cy_waiter *w)
{
    return cy_addr_arm(n, &node->ready, 0, w);
}

/* After fork: the queued waiters belonged to threads that no longer exist
 * (a fresh mutex, an empty queue; the units held stay held).  The child's
 * cy_fork_child() does it for every semaphore that had a waiter queued. */
void cy_wsem_reinit(cy_wsem *s);

#endif /* CY_WSEM_H */
