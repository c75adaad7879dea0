/* cy_event.h - threading.Event on one word.
 *
 * bit 0: the flag; bit 1: someone sleeps; bits 2..31: a generation bumped by
 * every set() that raises the flag.  A waiter returns True when it sees the
 * flag or a new generation, so a set() immediately followed by clear() still
 * releases everyone who was waiting (threading's behaviour, lock_tests'
 * test_set_and_clear).
 */
#ifndef CY_EVENT_H
#define CY_EVENT_H

#include "cy_waiter.h"
#include "cy_spin.h"

#define CY_EV_FLAG 1u
#define CY_EV_WAITERS 2u
#define CY_EV_GEN 4u

typedef struct {
    _Atomic uint32_t state;
    cy_spinner spin;
} cy_event;

static inline void cy_event_init(cy_event *e)
{
    atomic_init(&e->state, 0);
    cy_spinner_init(&e->spin);
}

static inline int cy_event_is_set(cy_event *e)
{
    return (atomic_load_explicit(&e->state, CY_ACQUIRE) & CY_EV_FLAG) != 0;
}

static inline void cy_event_set(cy_event *e)
{
    uint32_t s = atomic_load_explicit(&e->state, CY_RELAXED), ns;
    do {
        /* Raising the flag drops the waiter bit (they are all woken below)
         * and moves the generation; an already set flag stays as it is, but
         * the write still releases the caller's prior work to waiters. */
        ns = (s & CY_EV_FLAG) ? s : (((s & ~(CY_EV_FLAG | CY_EV_WAITERS)) + CY_EV_GEN) | CY_EV_FLAG);
    } while (!atomic_compare_exchange_weak_explicit(&e->state, &s, ns, CY_ACQ_REL, CY_RELAXED));
    if (s & CY_EV_WAITERS)
        cy_wake(&e->state, CY_WAKE_ALL);
}

static inline void cy_event_clear(cy_event *e)
{
    atomic_fetch_and_explicit(&e->state, ~CY_EV_FLAG, CY_ACQ_REL);
}

/* Forget sleepers (after fork they are gone); keeps flag and generation. */
static inline void cy_event_reinit(cy_event *e)
{
    atomic_fetch_and_explicit(&e->state, ~CY_EV_WAITERS, CY_RELAXED);
    cy_spinner_init(&e->spin); /* a thread spinning at the fork is gone too */
}

/* A wait is begun once (this reads the generation) and continued after
 * every CY_INTR with the same generation, so a set() + clear() while the
 * caller ran signal handlers still ends it. */
static inline uint32_t cy_event_wait_begin(cy_event *e)
{
    return atomic_load_explicit(&e->state, CY_ACQUIRE) & ~(CY_EV_FLAG | CY_EV_WAITERS);
}

/* Ends when released, the deadline passes, a signal arrives or the token
 * of `w` (may be NULL) fires. */
cy_status cy_event_wait(cy_event *e, uint32_t gen, int64_t deadline, cy_waiter *w);

/* For a waiter that does not sleep (an asyncio task, cy_hub.h): CY_OK when
 * released, CY_CANCELLED when the token of w fired, or CY_AGAIN with node n
 * of record w armed on the word (a set() pokes it): once poked, the caller
 * disarms it (cy_addr_disarm) and calls again with the same generation. */
int cy_event_arm(cy_event *e, uint32_t gen, cy_wnode *n, cy_waiter *w);

/* cy_event_wait for cy_wait(): the begin token is cy_event_wait_begin's. */
extern const cy_wait_op cy_event_wait_op;

#endif /* CY_EVENT_H */
