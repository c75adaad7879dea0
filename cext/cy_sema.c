#include "cy_sema.h"

cy_status cy_sema_acquire(cy_sema *s, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    (void)begin;
    for (int i = 0; i < CY_SPIN; i++) {
        if (cy_sema_try_acquire(s))
            return CY_OK;
        cy_cpu_relax();
    }
    /* Then for as long as cy_spin.h has learned waits here last. */
    int64_t start;
    uint32_t mark;
    if (cy_spin_while(&s->spin, &s->value, 0, deadline, &start, &mark) && cy_sema_try_acquire(s)) {
        cy_spin_linger(&s->spin, mark, 1);
        return CY_OK;
    }
    int parked = 0;
    atomic_fetch_add_explicit(&s->nwaiters, 1, CY_SEQ_CST);
    /* The Dekker pairing with cy_sema_release: our increment before our next
     * read of value, its write of value before its read of nwaiters. */
    atomic_thread_fence(CY_SEQ_CST);
    cy_status r;
    for (;;) {
        if (cy_sema_try_acquire(s)) {
            r = CY_OK;
            break;
        }
        r = cy_wait_addr(&s->value, 0, deadline, w);
        parked = 1;
        if (r != CY_OK) {
            /* A unit may have arrived with the timeout or the signal; a
             * cancelled wait takes none (the context's end wins). */
            if (r != CY_CANCELLED && cy_sema_try_acquire(s))
                r = CY_OK;
            break;
        }
    }
    if (parked && (r == CY_OK || r == CY_TIMEOUT))
        cy_spin_learn(&s->spin, cy_now_ns() - start, r == CY_TIMEOUT);
    uint32_t others = atomic_fetch_sub_explicit(&s->nwaiters, 1, CY_SEQ_CST) - 1;
    /* A release may have woken us for a unit we now leave behind: hand the
     * wake to another sleeper so that unit is not stranded. */
    if (r != CY_OK && others != 0 && atomic_load_explicit(&s->value, CY_SEQ_CST) != 0)
        cy_wake(&s->value, 1);
    return r;
}

static int wait_op(void *s, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    return cy_sema_acquire((cy_sema *)s, begin, deadline, w);
}

const cy_wait_op cy_sema_wait_op = {wait_op, NULL};
