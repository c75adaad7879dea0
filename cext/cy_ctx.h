/* cy_ctx.h - the C half of a context (Go's context.Context): one state word
 * and the cancellation token its waits park with.
 *
 * The state word says whether the context has ended and why; it is what a
 * wait given the context reads at entry (one acquire load: a live context
 * costs a wait nothing more) and what err() reads.  Ending a context is a
 * compare-and-swap of that word, won once (the first cancel wins), then a
 * fire of the token, which claims and wakes every record registered with it
 * through the waiter model (cy_waiter.h): the waits end with CY_CANCELLED.
 *
 * The Python layer keeps the tree, the values, the error instances, the
 * cause and the callbacks; it writes them before the state word (release)
 * and reads them after it (acquire).
 */
#ifndef CY_CTX_H
#define CY_CTX_H

#include "cy_waiter.h"

enum {
    CY_CTX_LIVE = 0,
    CY_CTX_CANCELED = 1, /* its cancel, or an ancestor's */
    CY_CTX_DEADLINE = 2  /* its deadline, or an ancestor's, passed */
};

typedef struct {
    _Atomic uint32_t state; /* CY_CTX_*: LIVE, then one of the others for ever */
    cy_cancel token;
} cy_ctx;

static inline void cy_ctx_init(cy_ctx *c)
{
    atomic_init(&c->state, CY_CTX_LIVE);
    cy_cancel_init(&c->token);
}

/* Why the context ended, or CY_CTX_LIVE.  Acquire: what was written before
 * the end (the cause) is visible to whoever sees it. */
static inline uint32_t cy_ctx_state(cy_ctx *c)
{
    return atomic_load_explicit(&c->state, CY_ACQUIRE);
}

/* Ends the context for `why` unless it has ended already: 1 if this call
 * did (then, and only then, the caller fires the token: cy_ctx_fire). */
static inline int cy_ctx_mark(cy_ctx *c, uint32_t why)
{
    uint32_t expect = CY_CTX_LIVE;
    return atomic_compare_exchange_strong_explicit(&c->state, &expect, why, CY_ACQ_REL, CY_ACQUIRE);
}

/* Wakes every wait parked with the token (they end with CY_CANCELLED). */
static inline void cy_ctx_fire(cy_ctx *c) { cy_cancel_fire(&c->token); }

static inline cy_cancel *cy_ctx_token(cy_ctx *c) { return &c->token; }

#endif /* CY_CTX_H */
