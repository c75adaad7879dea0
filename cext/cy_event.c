#include "cy_event.h"

cy_status cy_event_wait(cy_event *e, uint32_t gen, int64_t deadline, cy_waiter *w)
{
    uint32_t s = atomic_load_explicit(&e->state, CY_ACQUIRE);
#define CY_EV_RELEASED(s) (((s)&CY_EV_FLAG) || ((s) & ~(CY_EV_FLAG | CY_EV_WAITERS)) != gen)
    for (int i = 0; i < CY_SPIN && !CY_EV_RELEASED(s); i++) {
        cy_cpu_relax();
        s = atomic_load_explicit(&e->state, CY_ACQUIRE);
    }
    if (CY_EV_RELEASED(s))
        return CY_OK;
    /* Then for as long as cy_spin.h has learned waits here last. */
    int64_t start;
    uint32_t mark;
    if (cy_spin_while(&e->spin, &e->state, s, deadline, &start, &mark)) {
        s = atomic_load_explicit(&e->state, CY_ACQUIRE);
        if (CY_EV_RELEASED(s)) {
            cy_spin_linger(&e->spin, mark, 1);
            return CY_OK;
        }
    }
    for (;;) {
        if (CY_EV_RELEASED(s))
            return CY_OK;
        if (!(s & CY_EV_WAITERS)) {
            if (!atomic_compare_exchange_weak_explicit(&e->state, &s, s | CY_EV_WAITERS, CY_ACQUIRE,
                                                       CY_ACQUIRE))
                continue;
            s |= CY_EV_WAITERS;
        }
        cy_status r = cy_wait_addr(&e->state, s, deadline, w);
        s = atomic_load_explicit(&e->state, CY_ACQUIRE);
        if (CY_EV_RELEASED(s) || r == CY_TIMEOUT)
            cy_spin_learn(&e->spin, cy_now_ns() - start, !CY_EV_RELEASED(s));
        if (CY_EV_RELEASED(s))
            return CY_OK;
        if (r != CY_OK)
            return r;
    }
#undef CY_EV_RELEASED
}

int cy_event_arm(cy_event *e, uint32_t gen, cy_wnode *n, cy_waiter *w)
{
    uint32_t s = atomic_load_explicit(&e->state, CY_ACQUIRE);
    for (;;) {
        if ((s & CY_EV_FLAG) || (s & ~(CY_EV_FLAG | CY_EV_WAITERS)) != gen)
            return CY_OK;
        if (!(s & CY_EV_WAITERS)) {
            if (!atomic_compare_exchange_weak_explicit(&e->state, &s, s | CY_EV_WAITERS, CY_ACQUIRE,
                                                       CY_ACQUIRE))
                continue;
            s |= CY_EV_WAITERS;
        }
        int r = cy_addr_arm(n, &e->state, s, w);
        if (r != CY_OK)
            return r;
        s = atomic_load_explicit(&e->state, CY_ACQUIRE);
    }
}

static int wait_op(void *e, uintptr_t gen, int64_t deadline, cy_waiter *w)
{
    return cy_event_wait((cy_event *)e, (uint32_t)gen, deadline, w);
}

const cy_wait_op cy_event_wait_op = {wait_op, NULL};
