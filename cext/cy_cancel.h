/* cy_cancel.h - cancellation tokens: waits that a context can end.
 *
 * A futex sleeps on one word, but a wait with a context must end when either
 * the primitive's word or the context changes.  A cancellable waiter
 * therefore sleeps on a word of its own (in a cy_xnode on its stack) and
 * registers that node twice: in a global table keyed by the primitive's
 * address, which cy_wake() visits when any such waiter exists, and on the
 * token, which cy_cancel_fire() visits.  Both bump the node's word before
 * waking it, so neither wake can be lost between the waiter's last check and
 * its sleep; plain waits pay one relaxed load in cy_wake for this.
 */
#ifndef CY_CANCEL_H
#define CY_CANCEL_H

#include <stddef.h>

#include "cy_mutex.h"

typedef struct cy_xnode cy_xnode;

typedef struct {
    _Atomic uint32_t fired; /* 0, then 1 for ever */
    cy_mutex mu;            /* guards nodes */
    cy_xnode *nodes;        /* waiters parked with this token */
} cy_cancel;

static inline void cy_cancel_init(cy_cancel *c)
{
    atomic_init(&c->fired, 0);
    cy_mutex_init(&c->mu);
    c->nodes = NULL;
}

static inline int cy_cancel_fired(cy_cancel *c)
{
    return c != NULL && atomic_load_explicit(&c->fired, CY_ACQUIRE) != 0;
}

/* Fires the token (idempotent): every wait parked with it returns CY_CANCELLED. */
void cy_cancel_fire(cy_cancel *c);

/* cy_park, except that it also returns CY_CANCELLED once `c` fires.
 * c == NULL is a plain cy_park. */
cy_status cy_park_cancel(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline, cy_cancel *c);

#endif /* CY_CANCEL_H */
