#include "cy_mutex.h"

void cy_mutex_lock_slow(cy_mutex *m)
{
    for (int i = 0; i < CY_SPIN; i++) {
        uint32_t expect = 0;
        if (atomic_load_explicit(&m->v, CY_RELAXED) == 0 &&
            atomic_compare_exchange_weak_explicit(&m->v, &expect, 1, CY_ACQUIRE, CY_RELAXED))
            return;
        cy_cpu_relax();
    }
    /* Mark "maybe sleepers" whenever we take it from here on: the unlock
     * that follows then wakes the next sleeper, if any. */
    while (atomic_exchange_explicit(&m->v, 2, CY_ACQUIRE) != 0)
        (void)cy_park(&m->v, 2, CY_NO_DEADLINE);
}
