/* cy_chan.h - Go's channels and select (runtime/chan.go, runtime/select.go).
 *
 * A channel is a mutex, a ring buffer of `cap` values (none for an
 * unbuffered channel) and two queues of waiters, receivers and senders.
 * Values are opaque pointers: the Python layer owns the references and hands
 * one over with every value it sends.
 *
 * Every operation, and every case of a select, takes the channel's mutex;
 * a select takes the mutexes of all its channels, in address order, as
 * selectgo does, so two selects over the same channels cannot deadlock.
 * Under the locks, an operation that can proceed does (a value into the
 * buffer or straight to a queued receiver, out of the buffer or straight
 * from a queued sender); one that cannot queues one cy_wnode per case,
 * all pointing to the thread's one cy_waiter (cy_waiter.h), lets go of the
 * locks and sleeps.  A partner claims the record with one compare-and-swap
 * (a select's other cases, a timeout, a context's cancel all lose that
 * race cleanly), moves the value through the node under its channel's lock
 * and wakes it; the waiter then takes its other nodes out of their queues.
 * A queued node whose record was claimed elsewhere is skipped and unlinked.
 *
 * Nothing is lost: a waiter that gives up (timeout, signal) claims its own
 * record first, so no partner can hand it a value it would then drop; if
 * that claim fails, a partner got there first and the operation completed.
 */
#ifndef CY_CHAN_H
#define CY_CHAN_H

#include "cy_spin.h"
#include "cy_waiter.h"

typedef struct {
    cy_mutex mu;
    _Atomic uint32_t closed; /* written under mu; read without it for `closed` */
    _Atomic uint32_t len;    /* values in the buffer; written under mu */
    uint32_t cap;
    uint32_t head;           /* index of the oldest value; guarded by mu */
    void **buf;              /* cap slots, owned by the caller; NULL when cap == 0 */
    cy_list recvq, sendq;    /* cy_wnode.link of queued receivers / senders; guarded by mu */
    cy_spinner spin;
} cy_chan;

/* How many times the process's linger time (cy_spin.h) a waiter released
 * while spinning lingers: a sender that has just woken a receiver usually
 * goes on filling the buffer for a few microseconds before it blocks and
 * lets go of the GIL; a receiver that took the GIL before then would sleep
 * on it and need a second wake-up (with 1x, one producer and one consumer
 * over a Chan(128) moved 4-6M items/s here, with 10x 12-17M). */
#ifndef CY_CHAN_LINGER
#define CY_CHAN_LINGER 10
#endif

/* What the operations return, beyond cy_status. */
enum {
    CY_CHAN_BLOCK = 20,  /* would have to wait */
    CY_CHAN_CLOSED = 21  /* the channel is closed (and, for a receive, drained) */
};

static inline void cy_chan_init(cy_chan *ch, void **buf, uint32_t cap)
{
    cy_mutex_init(&ch->mu);
    atomic_init(&ch->closed, 0);
    atomic_init(&ch->len, 0);
    ch->cap = cap;
    ch->head = 0;
    ch->buf = buf;
    cy_list_init(&ch->recvq);
    cy_list_init(&ch->sendq);
    cy_spinner_init(&ch->spin);
}

static inline uint32_t cy_chan_len(cy_chan *ch) { return atomic_load_explicit(&ch->len, CY_RELAXED); }

static inline int cy_chan_closed(cy_chan *ch) { return atomic_load_explicit(&ch->closed, CY_ACQUIRE) != 0; }

/* The operations under the channel's lock; inline, for the fast paths
 * below and for select (cy_chan.c).  Names ending in _ are internal. */
/* ------------------------------------------------------------- the buffer */

static inline void cy_ring_put_(cy_chan *ch, void *v)
{
    uint32_t len = atomic_load_explicit(&ch->len, CY_RELAXED);
    uint32_t i = ch->head + len;
    if (i >= ch->cap)
        i -= ch->cap;
    ch->buf[i] = v;
    atomic_store_explicit(&ch->len, len + 1, CY_RELAXED);
}

static inline void *cy_ring_take_(cy_chan *ch)
{
    void *v = ch->buf[ch->head];
    if (++ch->head == ch->cap)
        ch->head = 0;
    atomic_store_explicit(&ch->len, atomic_load_explicit(&ch->len, CY_RELAXED) - 1, CY_RELAXED);
    return v;
}

/* The queues are FIFO lists of cy_wnode; cy_wq_claim_first and cy_wq_fire
 * (cy_waiter.h) take and complete a partner. */

static inline int cy_send_locked_(cy_chan *ch, void *v, cy_waiter **wake, const cy_waiter *self)
{
    if (atomic_load_explicit(&ch->closed, CY_RELAXED))
        return CY_CHAN_CLOSED;
    cy_wnode *r = cy_wq_claim_first(&ch->recvq, self); /* a receiver waits: the buffer is empty */
    if (r != NULL) {
        r->elem = v;
        *wake = cy_wq_fire(r, 1);
        return 0;
    }
    if (atomic_load_explicit(&ch->len, CY_RELAXED) < ch->cap) {
        cy_ring_put_(ch, v);
        return 0;
    }
    return CY_CHAN_BLOCK;
}

static inline int cy_recv_locked_(cy_chan *ch, void **v, cy_waiter **wake, const cy_waiter *self)
{
    cy_wnode *s;
    if (atomic_load_explicit(&ch->len, CY_RELAXED) > 0) {
        *v = cy_ring_take_(ch);
        /* The buffer was full if a sender waits: its value takes the slot
         * just freed, behind every value sent before it. */
        if ((s = cy_wq_claim_first(&ch->sendq, self)) != NULL) {
            cy_ring_put_(ch, s->elem);
            *wake = cy_wq_fire(s, 1);
        }
        return 0;
    }
    if ((s = cy_wq_claim_first(&ch->sendq, self)) != NULL) { /* unbuffered: straight from the sender */
        *v = s->elem;
        *wake = cy_wq_fire(s, 1);
        return 0;
    }
    if (atomic_load_explicit(&ch->closed, CY_RELAXED)) {
        *v = NULL;
        return CY_CHAN_CLOSED;
    }
    return CY_CHAN_BLOCK;
}

/* Without waiting: 0 when v went into the buffer or to a receiver (the
 * channel owns it now), CY_CHAN_BLOCK, or CY_CHAN_CLOSED. */
static inline int cy_chan_try_send(cy_chan *ch, void *v)
{
    cy_waiter *wake = NULL;
    cy_mutex_lock(&ch->mu);
    int r = cy_send_locked_(ch, v, &wake, NULL);
    cy_mutex_unlock(&ch->mu);
    if (wake != NULL)
        cy_waiter_wake(wake);
    return r;
}

/* Without waiting: 0 with *v the oldest value (the caller owns it now),
 * CY_CHAN_BLOCK, or CY_CHAN_CLOSED (closed and drained). */
static inline int cy_chan_try_recv(cy_chan *ch, void **v)
{
    cy_waiter *wake = NULL;
    cy_mutex_lock(&ch->mu);
    int r = cy_recv_locked_(ch, v, &wake, NULL);
    cy_mutex_unlock(&ch->mu);
    if (wake != NULL)
        cy_waiter_wake(wake);
    return r;
}



/* Closes the channel and wakes every queued waiter (receivers get the
 * close, senders too, keeping their values); -1 if it was closed already. */
int cy_chan_close(cy_chan *ch);

/* Takes the oldest buffered value without any lock, for the owner tearing
 * the channel down; 0 when there is none. */
int cy_chan_drain(cy_chan *ch, void **v);

/* ------------------------------------------------------------------ select */

enum { CY_CASE_RECV = 0, CY_CASE_SEND = 1 };

typedef struct {
    cy_chan *ch;   /* NULL: a case that never fires (Go's nil channel) */
    uint32_t dir;  /* CY_CASE_RECV or CY_CASE_SEND */
    void *elem;    /* a send's value: the caller's until the case fires */
    cy_wnode node; /* the case's place in its channel's queue, while blocked */
} cy_case;

typedef struct {
    cy_case *cases;
    uint32_t n;
    cy_chan **locks; /* the distinct channels, in address order (cy_select_init) */
    uint32_t nlocks;
    uint32_t queued; /* its nodes are in their queues (across CY_INTR) */
    /* The outcome, once a case has fired: */
    uint32_t chosen; /* its index */
    uint32_t ok;     /* 1: a value moved; 0: the channel was closed */
    void *value;     /* a receive's value (the caller owns it), NULL on a close */
} cy_select;

/* cases[0..n) filled in; `locks` has room for n channels. */
void cy_select_init(cy_select *s, cy_case *cases, uint32_t n, cy_chan **locks);

/* Without waiting: CY_OK when a case fired (chosen among the ready ones
 * uniformly at random; see chosen/ok/value), else CY_CHAN_BLOCK.  A case
 * on a closed channel is ready: ok == 0 says so (a send's value stays the
 * caller's). */
int cy_select_try(cy_select *s);

/* One attempt of a blocking select (cy_wait_op): CY_OK as cy_select_try,
 * or CY_TIMEOUT or CY_CANCELLED with every case out of its queue and
 * nothing moved, or CY_INTR with the record paused (CY_CLAIM_PAUSED) and
 * its cases still queued, keeping their places: the next attempt (after
 * cy_wait's rearm) sleeps on, cy_select_leave gives the places up.
 * `begin` is unused. */
int cy_select_wait(cy_select *s, uintptr_t begin, int64_t deadline, cy_waiter *w);

/* Gives up a select paused by CY_INTR (a signal handler raised); nothing
 * moved.  Returns 0. */
int cy_select_leave(cy_select *s);

extern const cy_wait_op cy_select_wait_op;

/* For a waiter that does not sleep (an asyncio task, cy_hub.h): CY_OK as
 * cy_select_try, CY_CANCELLED (w's token fired; nothing moved), or
 * CY_AGAIN with every case queued on record w.  Once w is claimed (by a
 * partner, a close, its token, or by its owner giving up), cy_select_end. */
int cy_select_arm(cy_select *s, cy_waiter *w);

/* After cy_select_arm's CY_AGAIN, once w is claimed: takes every case out
 * of its queue and returns CY_OK (a case fired: chosen/ok/value),
 * CY_CANCELLED (the token claimed w) or CY_TIMEOUT (w claimed itself). */
int cy_select_end(cy_select *s, cy_waiter *w);

/* Gives back a value a receiver was handed but cannot take (its task was
 * cancelled as it was served): to the first waiting receiver, else to the
 * front of the buffer, where it was the oldest; 0, or CY_CHAN_BLOCK when
 * neither can take it (no receiver waits, no room). */
int cy_chan_unrecv(cy_chan *ch, void *v);

#endif /* CY_CHAN_H */
