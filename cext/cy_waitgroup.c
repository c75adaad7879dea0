#include "cy_waitgroup.h"

void cy_wg_release_waiters(cy_waitgroup *wg)
{
    /* release: a waiter that sees the new generation also sees the zero. */
    atomic_fetch_add_explicit(&wg->gen, 1, CY_RELEASE);
    cy_wake(&wg->gen, CY_WAKE_ALL);
}

cy_status cy_wg_wait_ctx(cy_waitgroup *wg, int64_t deadline, cy_cancel *c)
{
    /* Read the generation before the counter: if the counter reaches zero
     * after this point with our waiter bit set, the generation moves and the
     * park below returns at once or is woken. */
    uint32_t g = atomic_load_explicit(&wg->gen, CY_ACQUIRE);
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
        cy_status r = cy_park_cancel(&wg->gen, g, deadline, c);
        if (atomic_load_explicit(&wg->gen, CY_ACQUIRE) != g)
            return CY_OK;
        if (r != CY_OK)
            return r;
    }
}
