#include "cy_once.h"

#if defined(_MSC_VER) && !defined(__clang__)
#define CY_THREAD_LOCAL __declspec(thread)
#else
#define CY_THREAD_LOCAL _Thread_local
#endif

uint32_t cy_once_self(void)
{
    static _Atomic uint32_t next = 1;
    static CY_THREAD_LOCAL uint32_t self;
    if (self == 0)
        self = atomic_fetch_add_explicit(&next, 1, CY_RELAXED);
    return self;
}

void cy_once_finish(cy_once *o)
{
    cy_fork_leave(o);
    atomic_store_explicit(&o->owner, 0, CY_RELAXED);
    /* release: fn's effects (a cached result) are visible to every caller
     * that observes DONE. */
    if (atomic_exchange_explicit(&o->state, CY_ONCE_DONE, CY_RELEASE) == CY_ONCE_RUNNING_WAITERS)
        cy_wake(&o->state, CY_WAKE_ALL);
}

cy_status cy_once_wait(cy_once *o, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    (void)begin;
    uint32_t s = atomic_load_explicit(&o->state, CY_ACQUIRE);
    for (int i = 0; i < CY_SPIN && s != CY_ONCE_DONE; i++) {
        cy_cpu_relax();
        s = atomic_load_explicit(&o->state, CY_ACQUIRE);
    }
    for (;;) {
        if (s == CY_ONCE_DONE)
            return CY_OK;
        if (s == CY_ONCE_RUNNING &&
            !atomic_compare_exchange_weak_explicit(&o->state, &s, CY_ONCE_RUNNING_WAITERS,
                                                   CY_ACQUIRE, CY_ACQUIRE))
            continue;
        cy_status r = cy_wait_addr(&o->state, CY_ONCE_RUNNING_WAITERS, deadline, w);
        s = atomic_load_explicit(&o->state, CY_ACQUIRE);
        if (s == CY_ONCE_DONE)
            return CY_OK;
        if (r != CY_OK)
            return r;
    }
}

int cy_once_arm(cy_once *o, cy_wnode *n, cy_waiter *w)
{
    uint32_t s = atomic_load_explicit(&o->state, CY_ACQUIRE);
    for (;;) {
        if (s == CY_ONCE_DONE)
            return CY_OK;
        if (s == CY_ONCE_RUNNING &&
            !atomic_compare_exchange_weak_explicit(&o->state, &s, CY_ONCE_RUNNING_WAITERS, CY_ACQUIRE,
                                                   CY_ACQUIRE))
            continue;
        int r = cy_addr_arm(n, &o->state, CY_ONCE_RUNNING_WAITERS, w);
        if (r != CY_OK)
            return r;
        s = atomic_load_explicit(&o->state, CY_ACQUIRE);
    }
}

static int wait_op(void *o, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    return cy_once_wait((cy_once *)o, begin, deadline, w);
}

const cy_wait_op cy_once_wait_op = {wait_op, NULL};

void cy_once_reinit(cy_once *o)
{
    uint32_t s = atomic_load_explicit(&o->state, CY_ACQUIRE);
    if (s != CY_ONCE_RUNNING && s != CY_ONCE_RUNNING_WAITERS)
        return;
    if (atomic_load_explicit(&o->owner, CY_RELAXED) == cy_once_self()) {
        cy_fork_join(o, cy_once_fork_reset_); /* still running, here: its finish leaves */
        return;
    }
    atomic_store_explicit(&o->owner, 0, CY_RELAXED);
    atomic_store_explicit(&o->state, CY_ONCE_NEW, CY_RELEASE);
}

void cy_once_fork_reset_(void *o) { cy_once_reinit((cy_once *)o); }
