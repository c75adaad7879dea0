/* cy_waitgroup.h - Go's sync.WaitGroup.
 *
 * One 32-bit word holds the counter (bits 1..31) and a "someone waits" bit
 * (bit 0), so add() is a single compare-and-swap unless it brings the counter
 * to zero while someone waits (as in Go's waitgroup.go, where counter and
 * waiter count share one word).  Waiters park on a separate generation word
 * that is bumped each time the counter reaches zero with waiters: a waiter that
 * sees the generation move knows the counter was zero after it started
 * waiting, even if add() has raised it again since.
 */
#ifndef CY_WAITGROUP_H
#define CY_WAITGROUP_H

#include "cy_waiter.h"

#define CY_WG_WAITERS 1u
#define CY_WG_MAX 0x7fffffffLL

enum { CY_WG_NEGATIVE = -1, CY_WG_OVERFLOW = -2 };

typedef struct {
    _Atomic uint32_t state; /* counter << 1 | CY_WG_WAITERS */
    _Atomic uint32_t gen;   /* bumped when the counter reaches zero with waiters */
} cy_waitgroup;

static inline void cy_wg_init(cy_waitgroup *wg)
{
    atomic_init(&wg->state, 0);
    atomic_init(&wg->gen, 0);
}

static inline int64_t cy_wg_count(cy_waitgroup *wg)
{
    return (int64_t)(atomic_load_explicit(&wg->state, CY_ACQUIRE) >> 1);
}

void cy_wg_release_waiters(cy_waitgroup *wg);

/* Adds delta; 0 on success, CY_WG_NEGATIVE / CY_WG_OVERFLOW (nothing changed). */
static inline int cy_wg_add(cy_waitgroup *wg, int64_t delta)
{
    uint32_t s = atomic_load_explicit(&wg->state, CY_RELAXED);
    for (;;) {
        if (delta > CY_WG_MAX - (int64_t)(s >> 1)) /* checked first: the sum could overflow */
            return CY_WG_OVERFLOW;
        int64_t c = (int64_t)(s >> 1) + delta;
        if (c < 0)
            return CY_WG_NEGATIVE;
        if (c > CY_WG_MAX)
            return CY_WG_OVERFLOW;
        /* Reaching zero clears the waiter bit: those waiters are released now. */
        uint32_t ns = c == 0 ? 0 : ((uint32_t)c << 1) | (s & CY_WG_WAITERS);
        /* acq_rel: done() publishes the caller's work to whoever sees zero. */
        if (atomic_compare_exchange_weak_explicit(&wg->state, &s, ns, CY_ACQ_REL, CY_RELAXED)) {
            if (c == 0 && (s & CY_WG_WAITERS))
                cy_wg_release_waiters(wg);
            return 0;
        }
    }
}

/* A wait is begun once (this reads the generation) and then continued,
 * after every CY_INTR, with the same generation: it ends when the counter
 * is zero or has been zero since the beginning, the deadline passes, a
 * signal arrives or the token of `w` (may be NULL) fires. */
static inline uint32_t cy_wg_wait_begin(cy_waitgroup *wg)
{
    return atomic_load_explicit(&wg->gen, CY_ACQUIRE);
}

cy_status cy_wg_wait(cy_waitgroup *wg, uint32_t gen, int64_t deadline, cy_waiter *w);

/* For a waiter that does not sleep, as cy_event_arm: CY_OK, CY_CANCELLED,
 * or CY_AGAIN with n armed (disarm once poked, then call again). */
int cy_wg_arm(cy_waitgroup *wg, uint32_t gen, cy_wnode *n, cy_waiter *w);

/* cy_wg_wait for cy_wait(): the begin token is cy_wg_wait_begin's. */
extern const cy_wait_op cy_wg_wait_op;

#endif /* CY_WAITGROUP_H */
