/* cy_mutex.h - a three-state futex mutex (Drepper, "Futexes Are Tricky").
 *
 * Only guards short critical sections inside cysync (the weighted semaphore's
 * waiter queue); nobody parks while holding it, so it needs no timeout and
 * ignores interruptions.  0 = unlocked, 1 = locked, 2 = locked, maybe sleepers.
 */
#ifndef CY_MUTEX_H
#define CY_MUTEX_H

#include "cy_park.h"

typedef struct {
    _Atomic uint32_t v;
} cy_mutex;

static inline void cy_mutex_init(cy_mutex *m) { atomic_init(&m->v, 0); }

void cy_mutex_lock_slow(cy_mutex *m);

static inline void cy_mutex_lock(cy_mutex *m)
{
    uint32_t expect = 0;
    if (!atomic_compare_exchange_strong_explicit(&m->v, &expect, 1, CY_ACQUIRE, CY_RELAXED))
        cy_mutex_lock_slow(m);
}

static inline void cy_mutex_unlock(cy_mutex *m)
{
    if (atomic_exchange_explicit(&m->v, 0, CY_RELEASE) == 2)
        cy_wake_os(&m->v, 1); /* nobody cancellable parks on a mutex */
}

#endif /* CY_MUTEX_H */
