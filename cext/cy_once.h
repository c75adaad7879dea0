/* cy_once.h - Go's sync.Once: one word, and the caller runs the function.
 *
 * NEW -> RUNNING (one caller won the CAS and runs fn) -> DONE.  Callers that
 * arrive while fn runs set RUNNING_WAITERS and park; the runner's finish only
 * makes a system call when that bit says someone sleeps.  After DONE the
 * fast path is one acquire load, which also publishes whatever fn wrote.
 */
#ifndef CY_ONCE_H
#define CY_ONCE_H

#include "cy_fork.h"
#include "cy_waiter.h"

enum { CY_ONCE_NEW = 0, CY_ONCE_RUNNING = 1, CY_ONCE_RUNNING_WAITERS = 2, CY_ONCE_DONE = 3 };

typedef struct {
    _Atomic uint32_t state; /* first: the C method Once.do reads it by offset */
    _Atomic uint32_t owner; /* cy_once_self() of the running caller: detects recursion */
} cy_once; /* in the fork registry (cy_fork.h) while fn runs */

void cy_once_fork_reset_(void *o);

static inline void cy_once_init(cy_once *o)
{
    atomic_init(&o->state, CY_ONCE_NEW);
    atomic_init(&o->owner, 0);
}

static inline int cy_once_is_done(cy_once *o)
{
    return atomic_load_explicit(&o->state, CY_ACQUIRE) == CY_ONCE_DONE;
}

/* 1 if the caller (thread `self`) must now run fn and then cy_once_finish(). */
static inline int cy_once_try_begin(cy_once *o, uint32_t self)
{
    uint32_t expect = CY_ONCE_NEW;
    if (atomic_compare_exchange_strong_explicit(&o->state, &expect, CY_ONCE_RUNNING, CY_ACQUIRE,
                                                CY_RELAXED)) {
        atomic_store_explicit(&o->owner, self, CY_RELAXED);
        cy_fork_join(o, cy_once_fork_reset_); /* fn runs: a child must not wait for a vanished runner */
        return 1;
    }
    return 0;
}

/* Whether thread `self` is the one running fn right now (a recursive call). */
static inline int cy_once_running_in(cy_once *o, uint32_t self)
{
    return atomic_load_explicit(&o->state, CY_ACQUIRE) != CY_ONCE_DONE &&
           atomic_load_explicit(&o->owner, CY_RELAXED) == self;
}

/* A small id for the calling thread, never 0 (ids are not reused, so a
 * 32-bit field keeps the struct at 8 bytes). */
uint32_t cy_once_self(void);

void cy_once_finish(cy_once *o);

/* After fork: if fn was running in a thread other than the caller's (which
 * no longer exists), the Once is new again, so the next call runs fn; if in
 * the caller's own thread (a fork from inside fn), it stays running.  The
 * child's cy_fork_child() does it for every Once whose fn was running. */
void cy_once_reinit(cy_once *o);
/* Waits until the running call has finished (`begin` unused). */
cy_status cy_once_wait(cy_once *o, uintptr_t begin, int64_t deadline, cy_waiter *w);

/* For a waiter that does not sleep, as cy_event_arm: CY_OK once done,
 * CY_CANCELLED, or CY_AGAIN with n armed. */
int cy_once_arm(cy_once *o, cy_wnode *n, cy_waiter *w);

/* cy_once_wait for cy_wait(). */
extern const cy_wait_op cy_once_wait_op;

#endif /* CY_ONCE_H */
