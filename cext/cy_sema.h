/* cy_sema.h - counting semaphore (threading.Semaphore / BoundedSemaphore).
 *
 * The value is the futex word; a separate count of sleepers lets release()
 * skip the system call when nobody sleeps.  The classic Dekker pairing makes
 * that skip safe: a waiter increments `nwaiters` and then reads `value`; a
 * releaser writes `value` and then reads `nwaiters`; with both sides
 * sequentially consistent at least one of them sees the other.
 */
#ifndef CY_SEMA_H
#define CY_SEMA_H

#include "cy_spin.h"
#include "cy_waiter.h"

#define CY_SEMA_MAX 0x7fffffffu

typedef struct {
    _Atomic uint32_t value;
    _Atomic uint32_t nwaiters; /* threads inside cy_sema_acquire_slow */
    cy_spinner spin;
} cy_sema;

static inline void cy_sema_init(cy_sema *s, uint32_t value)
{
    atomic_init(&s->value, value);
    atomic_init(&s->nwaiters, 0);
    cy_spinner_init(&s->spin);
}

static inline uint32_t cy_sema_value(cy_sema *s)
{
    return atomic_load_explicit(&s->value, CY_RELAXED);
}

static inline int cy_sema_try_acquire(cy_sema *s)
{
    uint32_t v = atomic_load_explicit(&s->value, CY_RELAXED);
    while (v > 0) {
        if (atomic_compare_exchange_weak_explicit(&s->value, &v, v - 1, CY_SEQ_CST, CY_RELAXED))
            return 1;
    }
    return 0;
}

/* Adds n if the value stays <= bound; returns 0, or -1 (nothing changed). */
static inline int cy_sema_release(cy_sema *s, uint32_t n, uint32_t bound)
{
    uint32_t v = atomic_load_explicit(&s->value, CY_RELAXED);
    do {
        if (n > bound || v > bound - n)
            return -1;
    } while (!atomic_compare_exchange_weak_explicit(&s->value, &v, v + n, CY_SEQ_CST, CY_RELAXED));
    if (atomic_load_explicit(&s->nwaiters, CY_SEQ_CST) != 0)
        cy_wake(&s->value, n > (uint32_t)CY_WAKE_ALL ? CY_WAKE_ALL : (int32_t)n);
    return 0;
}

/* Blocks until a unit is taken (CY_OK), the deadline passes, a signal
 * arrives or the token of `w` (may be NULL) fires; only CY_OK takes a unit.
 * `begin` is unused (every attempt starts afresh). */
cy_status cy_sema_acquire(cy_sema *s, uintptr_t begin, int64_t deadline, cy_waiter *w);

/* For a waiter that does not sleep (an asyncio task, cy_hub.h): CY_OK with
 * a unit taken, CY_CANCELLED when the token of w fired, or CY_AGAIN with n
 * armed on the value (a release pokes it) and the waiter counted: once
 * poked, cy_sema_disarm(s, n) and call again; to give up,
 * cy_sema_give_up. */
int cy_sema_arm(cy_sema *s, cy_wnode *n, cy_waiter *w);
void cy_sema_disarm(cy_sema *s, cy_wnode *n);

/* Ends an armed wait: with `take`, takes a unit that came meanwhile
 * (returns 1); else passes a wake-up it may have had on to another waiter
 * and returns 0. */
int cy_sema_give_up(cy_sema *s, cy_wnode *n, int take);

/* cy_sema_acquire for cy_wait(). */
extern const cy_wait_op cy_sema_wait_op;

#endif /* CY_SEMA_H */
