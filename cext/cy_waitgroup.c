#include "cy_waitgroup.h"

void cy_wg_release_waiters(cy_waitgroup *wg)
{
    /* release: a waiter that sees the new generation also sees the zero. */
    atomic_fetch_add_explicit(&wg->gen, 1, CY_RELEASE);
    cy_wake(&wg->gen, CY_WAKE_ALL);
}

cy_status cy_wg_wait(cy_waitgroup *wg, uint32_t g, int64_t deadline, cy_waiter *w)
{
    /* g was read before the counter: if the counter reaches zero after that
     * with our waiter bit set, the generation moves and the park below
     * returns at once or is woken.  A retry after CY_INTR passes the same g,
     * so a zero crossing while the caller ran signal handlers is not lost. */
    if (atomic_load_explicit(&wg->gen, CY_ACQUIRE) != g)
        return CY_OK;
    uint32_t s = atomic_load_explicit(&wg->state, CY_ACQUIRE);
    for (int i = 0; i < CY_SPIN && (s >> 1) != 0; i++) {
        cy_cpu_relax();
        s = atomic_load_explicit(&wg->state, CY_ACQUIRE);
    }
    for (;;) {
        if ((s >> 1) == 0)
            return CY_OK;
        if (s & CY_WG_WAITERS)
            break;
        if (atomic_compare_exchange_weak_explicit(&wg->state, &s, s | CY_WG_WAITERS, CY_ACQ_REL,
                                                  CY_ACQUIRE))
            break;
    }
    for (;;) {
        cy_status r = cy_wait_addr(&wg->gen, g, deadline, w);
        if (atomic_load_explicit(&wg->gen, CY_ACQUIRE) != g)
            return CY_OK;
        if (r != CY_OK)
            return r;
    }
}

int cy_wg_arm(cy_waitgroup *wg, uint32_t g, cy_wnode *n, cy_waiter *w)
{
    if (atomic_load_explicit(&wg->gen, CY_ACQUIRE) != g)
        return CY_OK;
    uint32_t s = atomic_load_explicit(&wg->state, CY_ACQUIRE);
    for (;;) {
        if ((s >> 1) == 0)
            return CY_OK;
        if (s & CY_WG_WAITERS)
            break;
        if (atomic_compare_exchange_weak_explicit(&wg->state, &s, s | CY_WG_WAITERS, CY_ACQ_REL,
                                                  CY_ACQUIRE))
            break;
    }
    /* With our bit set, a zero crossing moves the generation. */
    return cy_addr_arm(n, &wg->gen, g, w);
}

static int wait_op(void *wg, uintptr_t gen, int64_t deadline, cy_waiter *w)
{
    return cy_wg_wait((cy_waitgroup *)wg, (uint32_t)gen, deadline, w);
}

const cy_wait_op cy_wg_wait_op = {wait_op, NULL};
