/* cy_barrier.h - threading.Barrier's state machine, in C.
 *
 * The same four states as CPython's Lib/threading.py: FILLING (threads
 * arrive), DRAINING (all arrived; they leave before anyone may enter again),
 * RESETTING (reset() while threads wait: they leave with BrokenBarrierError)
 * and BROKEN.  The fields change under a small mutex that nobody holds while
 * sleeping; sleepers park on `epoch`, which moves on every change they may
 * be waiting for.  The action is Python, so the C core only tells the last
 * arriving thread to run it (CY_BARRIER_LAST) and hears back how it went.
 * The action runs without the mutex: abort() or reset() meanwhile take effect
 * at once and the last thread then gets BrokenBarrierError (threading would
 * make them wait for the action); a waiter whose timeout runs out while the
 * action runs waits for its outcome (as in threading).
 */
#ifndef CY_BARRIER_H
#define CY_BARRIER_H

#include "cy_cancel.h"

enum { CY_BARRIER_FILLING = 0, CY_BARRIER_DRAINING = 1, CY_BARRIER_RESETTING = -1, CY_BARRIER_BROKEN = -2 };

/* Results beyond cy_status's CY_OK / CY_TIMEOUT / CY_INTR. */
enum { CY_BARRIER_LAST = 16, CY_BARRIER_BROKEN_ERR = 17 };

typedef struct {
    cy_mutex mu;
    _Atomic uint32_t epoch;
    _Atomic int32_t state; /* written under mu; read without it only to spin */
    uint32_t count;        /* threads inside wait(); guarded by mu */
    uint32_t parties;
    uint32_t sleepers;     /* threads between unlocking mu to sleep and relocking it; guarded by mu */
} cy_barrier;

static inline void cy_barrier_init(cy_barrier *b, uint32_t parties)
{
    cy_mutex_init(&b->mu);
    atomic_init(&b->epoch, 0);
    atomic_init(&b->state, CY_BARRIER_FILLING);
    b->count = 0;
    b->parties = parties;
    b->sleepers = 0;
}

/* Enter (waiting while the barrier drains or resets) and take an arrival
 * index: CY_OK, or CY_BARRIER_LAST (the caller runs the action and then
 * calls cy_barrier_action_done), CY_BARRIER_BROKEN_ERR, or CY_INTR (not
 * entered; call again after running signal handlers).  With block == 0 it
 * returns CY_TIMEOUT instead of waiting (so callers can try first without
 * releasing the GIL). */
int cy_barrier_arrive(cy_barrier *b, uint32_t *index, int block);

/* After CY_OK from arrive: wait for the others.  CY_OK when released,
 * CY_BARRIER_BROKEN_ERR when broken, reset or timed out (a timeout breaks
 * the barrier, as in threading), CY_INTR (still inside: call again, or
 * cy_barrier_leave if the signal handler raised), CY_CANCELLED when `c`
 * (may be NULL) fired: the barrier is broken as by a timeout, and the
 * caller has left. */
int cy_barrier_await_ctx(cy_barrier *b, int64_t deadline, cy_cancel *c);

static inline int cy_barrier_await(cy_barrier *b, int64_t deadline)
{
    return cy_barrier_await_ctx(b, deadline, NULL);
}

/* The last thread reports its action: ok != 0 releases everyone (CY_OK, or
 * CY_BARRIER_BROKEN_ERR if the barrier was aborted meanwhile); ok == 0
 * breaks the barrier.  Either way the caller has left. */
int cy_barrier_action_done(cy_barrier *b, int ok);

/* Leave without waiting (a signal handler raised while inside). */
void cy_barrier_leave(cy_barrier *b);

void cy_barrier_reset(cy_barrier *b);
void cy_barrier_abort(cy_barrier *b);
uint32_t cy_barrier_n_waiting(cy_barrier *b);

static inline int cy_barrier_broken(cy_barrier *b)
{
    return atomic_load_explicit(&b->state, CY_ACQUIRE) == CY_BARRIER_BROKEN;
}

#endif /* CY_BARRIER_H */
