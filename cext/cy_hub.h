/* cy_hub.h - waking asyncio tasks: one hub per event loop.
 *
 * A task that must wait does not sleep: it queues a waiter record
 * (cy_waiter.h) exactly as a thread does, on the heap instead of a stack,
 * with `hub` set to its event loop's hub, and suspends on a future.  Any
 * thread that fires or pokes the record (a partner, a close, a context's
 * cancel, a cy_wake of the word it waits on) runs cy_hub_fire instead of
 * the OS's wake: the record goes on the hub's lock-free list, and the
 * hub's file descriptor (an eventfd, or a pipe) is written only when that
 * list was empty, so a batch of wake-ups costs the loop one wake-up.  The
 * loop watches the descriptor (add_reader) and, woken, takes the whole list
 * (cy_hub_take) and resolves each record's future, on its own thread.
 *
 * Lifetimes, by reference counts: a record's owner holds one reference,
 * the hub's list one more while the record is on it, and a firing thread
 * one for the time of the firing, so the record outlives every party that
 * may still touch it; every record holds its hub, and so does the loop
 * side until the loop goes, so the descriptor stays open while anyone may
 * write it.
 */
#ifndef CY_HUB_H
#define CY_HUB_H

#include "cy_waiter.h"

struct cy_hub {
    _Atomic(cy_waiter *) head; /* fired records, last fired first */
    _Atomic uint32_t refs;
    int rfd, wfd;              /* the same eventfd, or a pipe's ends; -1: none */
    _Atomic uint32_t seq;      /* moves with every batch, for cy_hub_wait */
    _Atomic uint32_t waiting;  /* 1 once a thread waits in cy_hub_wait */
};

/* A hub with one reference (the loop side's); NULL when out of memory.
 * Without a descriptor (Windows; or none could be made) cy_hub_fd is -1
 * and the loop side waits with cy_hub_wait instead. */
cy_hub *cy_hub_new(void);

/* The descriptor the loop watches for reading, or -1. */
static inline int cy_hub_fd(cy_hub *h) { return h->rfd; }

/* For a loop that cannot watch a descriptor (asyncio's proactor loop on
 * Windows): a helper thread of that loop sleeps while the batch counter
 * is still `seen` (cy_hub_seq) and then has the loop call cy_hub_take. */
static inline uint32_t cy_hub_seq(cy_hub *h) { return atomic_load_explicit(&h->seq, CY_ACQUIRE); }
cy_status cy_hub_wait(cy_hub *h, uint32_t seen, int64_t deadline);

void cy_hub_unref(cy_hub *h);

/* On the loop's thread: empties the descriptor, then takes every fired
 * record, first fired first; each holds the list's reference, which the
 * caller drops with cy_async_unref after cy_hub_next. */
cy_waiter *cy_hub_take(cy_hub *h);

/* The record after w in what cy_hub_take returned; w may be fired again
 * from now on. */
static inline cy_waiter *cy_hub_next(cy_waiter *w)
{
    cy_waiter *next = w->hnext;
    atomic_store_explicit(&w->inhub, 0, CY_SEQ_CST);
    return next;
}

/* A new async record of hub h (one reference, its owner's), unclaimed and
 * without a token (cy_async_begin gives it one); NULL when out of memory. */
cy_waiter *cy_async_new(cy_hub *h, void *owner);

/* Registers the record with token c (may be NULL), as cy_waiter_begin
 * does; undone by cy_waiter_end. */
void cy_async_begin(cy_waiter *w, cy_cancel *c);

void cy_async_unref(cy_waiter *w);

/* Waits (briefly: the claimer is inside its object's lock) until a record
 * claimed by someone else is released, so what they wrote can be read. */
void cy_async_settle(cy_waiter *w);

/* The Python side's waiter of record w, NULL once it has gone (both are
 * read and written on the loop's thread only). */
static inline void *cy_async_owner(cy_waiter *w) { return w->owner; }
static inline void cy_async_set_owner(cy_waiter *w, void *owner) { w->owner = owner; }

/* Who ended the wait so far (CY_CLAIM_*), and the owner's own claim. */
static inline uint32_t cy_async_claimed(cy_waiter *w) { return atomic_load_explicit(&w->claim, CY_ACQUIRE); }
static inline int cy_async_claim_self(cy_waiter *w) { return cy_waiter_claim(w, CY_CLAIM_SELF); }

#endif /* CY_HUB_H */
