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

/* An async waiter stops being counted; one that got no unit passes on a
 * wake-up it may have had (as a thread that times out does above). */
static void async_leave(cy_sema *s, int gave_up)
{
    uint32_t others = atomic_fetch_sub_explicit(&s->nwaiters, 1, CY_SEQ_CST) - 1;
    if (gave_up && others != 0 && atomic_load_explicit(&s->value, CY_SEQ_CST) != 0)
        cy_wake(&s->value, 1);
}

int cy_sema_arm(cy_sema *s, cy_wnode *n, cy_waiter *w)
{
    if (cy_sema_try_acquire(s))
        return CY_OK;
    atomic_fetch_add_explicit(&s->nwaiters, 1, CY_SEQ_CST);
    atomic_thread_fence(CY_SEQ_CST); /* the Dekker pairing with cy_sema_release */
    for (;;) {
        if (cy_sema_try_acquire(s)) {
            async_leave(s, 0);
            return CY_OK;
        }
        int r = cy_addr_arm(n, &s->value, 0, w);
        if (r == CY_AGAIN)
            return r;
        if (r == CY_CANCELLED) {
            async_leave(s, 1);
            return r;
        }
    }
}

void cy_sema_disarm(cy_sema *s, cy_wnode *n)
{
    cy_addr_disarm(n);
    async_leave(s, 0);
}

int cy_sema_give_up(cy_sema *s, cy_wnode *n, int take)
{
    cy_addr_disarm(n);
    if (take && cy_sema_try_acquire(s)) {
        async_leave(s, 0);
        return 1;
    }
    async_leave(s, 1);
    return 0;
}

static int wait_op(void *s, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    return cy_sema_acquire((cy_sema *)s, begin, deadline, w);
}

const cy_wait_op cy_sema_wait_op = {wait_op, NULL};
