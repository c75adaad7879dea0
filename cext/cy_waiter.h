/* cy_waiter.h - one waiter record per blocked thread, for every primitive.
 *
 * The model of Go's sudog (runtime/chan.go, runtime/select.go) and of
 * CPython's Python/parking_lot.c wait entries.  A thread that must block
 * fills a cy_waiter on its own stack: a futex word it sleeps on, and a claim
 * word that says, once, who ended the wait.  The record can be queued on
 * several objects at once through cy_wnode links (a select queues one link
 * on every channel it waits for; a context's token holds one more); whoever
 * fires first claims it with one compare-and-swap, writes what it hands over
 * and wakes it, and the others, failing the claim, unlink it and move on.
 * A context's cancel, a channel partner, a close, the waiter's own timeout
 * and an asyncio task's wake-up (cy_hub.h) are all "claim and wake this record".
 *
 * Primitives whose state is one word (Semaphore, Event, WaitGroup,
 * Barrier) do not hand anything over: their waiters sleep on that word, and
 * a record with a token joins the address table below instead, where
 * cy_wake() pokes it (wakes it without a claim) so it re-checks the word.
 *
 * Layers: this file calls cy_park.h (the OS backends) and nothing calls up
 * into it from there.
 */
#ifndef CY_WAITER_H
#define CY_WAITER_H

#include "cy_list.h"
#include "cy_mutex.h"
#include "cy_park.h"
#include "cy_spin.h"

/* Who ended a wait (cy_waiter.claim); 0 while nobody has. */
enum {
    CY_CLAIM_NONE = 0,
    CY_CLAIM_FIRED = 1,  /* a partner completed the operation (w->fired says which link) */
    CY_CLAIM_CANCEL = 2, /* the waiter's cancellation token fired */
    CY_CLAIM_SELF = 3,   /* the waiter itself gave up (timeout, signal) */
    CY_CLAIM_PAUSED = 4  /* the waiter runs signal handlers between two sleeps and
                          * stays queued: partners pass it by; cy_waiter_rearm
                          * (the driver's, after on_intr) ends the pause */
};

typedef struct cy_waiter cy_waiter;
typedef struct cy_cancel cy_cancel;
typedef struct cy_hub cy_hub;

/* A waiter's place in one queue. */
typedef struct cy_wnode {
    cy_list link;
    cy_waiter *waiter;
    const void *key; /* the address table: the word waited on */
    void *elem;      /* channels: the value sent, or the value received */
    uint32_t index;  /* select: the case's position */
    uint32_t ok;     /* channels: 1 = a value moved, 0 = the channel was closed */
} cy_wnode;

struct cy_waiter {
    _Atomic uint32_t word;      /* 0 while asleep; a claim or a poke stores 1, then wakes */
    _Atomic uint32_t claim;     /* CY_CLAIM_*: set once per attempt, by compare-and-swap */
    cy_wnode *fired;            /* with CY_CLAIM_FIRED: the link that fired */
    cy_cancel *cancel;          /* the token that can end this wait, or NULL */
    cy_wnode cnode;             /* on the token's list, while cancel != NULL */
    /* An asyncio waiter's record (cy_hub.h) is on the heap, and its wake
     * hands it to its event loop's hub instead of the OS; hub == NULL for
     * a thread's record, which uses none of the fields below. */
    cy_hub *hub;
    cy_waiter *hnext;           /* on the hub's list of fired records */
    _Atomic uint32_t inhub;     /* 1 while on that list */
    _Atomic uint32_t refs;      /* its owner's, and the hub list's while on it */
    void *owner;                /* the Python side's waiter (cy_hub.h) */
};

/* An async record's wake (cy_hub.c): marks it woken and hands it to its hub. */
void cy_hub_fire(cy_waiter *w);

/* A cancellation token: the C half of a context. */
struct cy_cancel {
    _Atomic uint32_t fired; /* 0, then 1 for ever */
    cy_mutex mu;            /* guards waiters */
    cy_list waiters;        /* cy_wnode.link of the records that can be cancelled */
};

static inline void cy_cancel_init(cy_cancel *c)
{
    atomic_init(&c->fired, 0);
    cy_mutex_init(&c->mu);
    cy_list_init(&c->waiters);
}

static inline int cy_cancel_fired(cy_cancel *c)
{
    return c != NULL && atomic_load_explicit(&c->fired, CY_ACQUIRE) != 0;
}

/* Fires the token (idempotent): every record registered with it is claimed
 * (CY_CLAIM_CANCEL) unless someone claimed it first, and woken. */
void cy_cancel_fire(cy_cancel *c);

/* Sleeps until `c` fires (CY_CANCELLED), the deadline passes or a signal
 * arrives: a wait on the token alone. */
cy_status cy_cancel_wait(cy_cancel *c, int64_t deadline);

/* Starts a blocking call: an unclaimed record, registered with `c` (may be
 * NULL).  Every cy_waiter_begin is paired with one cy_waiter_end. */
void cy_waiter_begin(cy_waiter *w, cy_cancel *c);
void cy_waiter_end(cy_waiter *w);

/* Claims w for `who`; 1 if this call won.  seq_cst: pairs with the token's
 * fired flag (cy_waiter_rearm) and with the waiters' queue checks. */
static inline int cy_waiter_claim(cy_waiter *w, uint32_t who)
{
    uint32_t expect = CY_CLAIM_NONE;
    return atomic_compare_exchange_strong_explicit(&w->claim, &expect, who, CY_SEQ_CST, CY_RELAXED);
}

/* After the claimer has written what it hands over: the last write to the
 * record (the waiter may return and its stack frame go at once after it);
 * then wake it by address, which touches no memory of the record.  An async
 * record is woken by its release already (its hub holds it meanwhile):
 * release returns NULL for it, and a wake of NULL does nothing. */
static inline cy_waiter *cy_waiter_release(cy_waiter *w)
{
    if (w->hub != NULL) {
        cy_hub_fire(w);
        return NULL;
    }
    atomic_store_explicit(&w->word, 1, CY_RELEASE);
    return w;
}
static inline void cy_waiter_wake(cy_waiter *w)
{
    if (w != NULL)
        cy_wake_os(&w->word, 1);
}

/* Before a new attempt of the same call (after CY_INTR or a claim of its
 * own): unclaimed again.  Returns CY_CANCELLED if the token fired meanwhile
 * (its claim was lost to ours), else CY_OK. */
cy_status cy_waiter_rearm(cy_waiter *w);

/* Sleeps until the record is woken (CY_OK: look at w->claim), the deadline
 * passes (CY_TIMEOUT) or a signal arrives (CY_INTR). */
static inline cy_status cy_waiter_sleep(cy_waiter *w, int64_t deadline)
{
    if (atomic_load_explicit(&w->word, CY_ACQUIRE) != 0)
        return CY_OK;
    return cy_park(&w->word, 0, deadline);
}

/* ------------------------------------------- queues of records on an object
 *
 * A primitive that hands something over to its waiters (a channel, a
 * queue) keeps them in FIFO lists of cy_wnode, guarded by its own mutex.
 * The waiter queues a node under that mutex, lets go of it and sleeps in
 * cy_waiter_sleep_queued; a partner, under the mutex, claims the first
 * node (cy_wq_claim_first), writes what it hands over and fires it
 * (cy_wq_fire). */

/* The first queued waiter that could still be claimed, claimed and out of
 * the queue; NULL if none.  `self` (a waiter looking again with its own
 * nodes queued, after signal handlers ran; NULL otherwise) is passed by,
 * and so is a paused record (CY_CLAIM_PAUSED: running signal handlers, it
 * keeps its place).  A node whose record was claimed elsewhere (a select
 * that fired on another channel, a timeout, a cancel) is unlinked on the
 * way: its owner, which locks the object before it returns, finds it gone. */
static inline cy_wnode *cy_wq_claim_first(cy_list *q, const cy_waiter *self)
{
    cy_list *l = q->next;
    while (l != q) {
        cy_wnode *n = cy_container_of(l, cy_wnode, link);
        l = l->next;
        if (n->waiter == self)
            continue;
        uint32_t expect = CY_CLAIM_NONE;
        if (atomic_compare_exchange_strong_explicit(&n->waiter->claim, &expect, CY_CLAIM_FIRED, CY_SEQ_CST,
                                                    CY_ACQUIRE)) {
            cy_list_remove(&n->link);
            return n;
        }
        if (expect != CY_CLAIM_PAUSED)
            cy_list_remove(&n->link);
    }
    return NULL;
}

/* Whether q holds a waiter cy_wq_claim_first could claim now (a peek: the
 * claim itself may still lose a race, and the caller then looks again). */
static inline int cy_wq_has_partner(const cy_list *q, const cy_waiter *self)
{
    for (const cy_list *l = q->next; l != q; l = l->next) {
        const cy_wnode *n = cy_container_of(l, cy_wnode, link);
        if (n->waiter != self && atomic_load_explicit(&n->waiter->claim, CY_RELAXED) == CY_CLAIM_NONE)
            return 1;
    }
    return 0;
}

/* Completes a claimed node's operation (its object locked).  The store in
 * cy_waiter_release is the last touch of the record: the waiter may return
 * at once, so its address is returned for a wake (after the unlock, or
 * under it: a wake by address touches no memory of the record). */
static inline cy_waiter *cy_wq_fire(cy_wnode *n, uint32_t ok)
{
    cy_waiter *w = n->waiter;
    n->ok = ok;
    w->fired = n;
    return cy_waiter_release(w);
}

/* How a cy_waiter_sleep_queued ended. */
typedef struct {
    uint32_t who;  /* CY_CLAIM_*: who claimed the record */
    cy_status pr;  /* with CY_CLAIM_SELF: CY_TIMEOUT or CY_INTR */
    int parked;    /* 0: released while spinning */
    int64_t start; /* for cy_spin_learn */
    uint32_t mark; /* for cy_spin_linger */
} cy_sleep_end;

/* Sleeps on a record whose nodes are queued (the objects' mutexes let go
 * of), spinning first for as long as `spin` (may be NULL) says waits have
 * lately lasted, until a partner, a close or the token claims it, or the
 * deadline makes it claim itself, or a signal pauses it (CY_CLAIM_PAUSED:
 * its nodes keep their places while the caller runs signal handlers;
 * cy_wait's rearm ends the pause, and the next attempt must look for a
 * partner that came meanwhile, passing its own nodes by) - unless someone
 * claimed it first: then that outcome stands, and nothing handed over is
 * lost.  Returns with the claimer's writes visible; unless paused, the
 * caller then takes its nodes still queued out of their queues; then it
 * calls cy_sleep_done. */
void cy_waiter_sleep_queued(cy_waiter *w, cy_spinner *spin, int64_t deadline, cy_sleep_end *e);

/* After the nodes are unlinked: teaches the spinner how long the wait
 * took and, when a partner released it while it spun, lingers `linger`
 * times the linger time (cy_spin.h). */
void cy_sleep_done(cy_spinner *spin, const cy_sleep_end *e, uint32_t linger);

/* One blocking operation, as every primitive hands it to cy_wait(). */
typedef struct cy_wait_op {
    /* One attempt: CY_OK, CY_TIMEOUT, CY_INTR, CY_CANCELLED, or a result of
     * the primitive's own (>= 16).  `begin` is what the caller got when it
     * began the wait (a generation, a queue node, a ticket).  An attempt
     * that returns CY_CANCELLED has undone whatever the wait had taken. */
    int (*wait)(void *obj, uintptr_t begin, int64_t deadline, cy_waiter *w);
    /* Gives the wait up after CY_INTR or CY_TIMEOUT (a signal handler
     * raised, a context ended, the timeout is final): returns 1 if it
     * completed meanwhile and `keep` asks to keep what it got (a timeout),
     * else undoes it and returns 0.  NULL: an attempt leaves nothing behind. */
    int (*leave)(void *obj, uintptr_t begin, int keep);
} cy_wait_op;

/* The one blocking driver (CPython's acquire_timed() is the model): runs
 * op->wait with one record registered with `c` (may be NULL) until it
 * returns anything but CY_INTR; after each CY_INTR it calls on_intr(arg)
 * (the Python layer runs the signal handlers there; NULL: nothing) and
 * stops with CY_INTR if that returns nonzero.  The caller then calls
 * op->leave if it gives up. */
int cy_wait(const cy_wait_op *op, void *obj, uintptr_t begin, int64_t deadline, cy_cancel *c,
            int (*on_intr)(void *), void *arg);

/* The address table: sleep while *addr == expected, until the deadline, a
 * signal or the record's token (CY_CANCELLED); w == NULL, or a record
 * without a token, is a plain cy_park on addr. */
cy_status cy_wait_addr(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline, cy_waiter *w);

/* A queued waiter whose grant is a word set to 1 (a weighted semaphore's
 * units, an RWMutex's lock): spins briefly, then sleeps until *ready is
 * set (CY_OK), the deadline passes, a signal arrives or w's token fires
 * (CY_CANCELLED even if the grant came meanwhile: the caller leaves and
 * gives back what it was granted, so the context's end wins). */
cy_status cy_wait_granted(_Atomic uint32_t *ready, int64_t deadline, cy_waiter *w);

/* Wakes up to n threads parked on addr (CY_WAKE_ALL: all) and pokes up to
 * n records waiting on it through the address table that have not been
 * poked since they last looked (a record poked already will look again). */
void cy_wake(_Atomic uint32_t *addr, int32_t n);

/* The address table for a waiter that does not sleep (an asyncio task):
 * registers node `n` of record w on addr, so that a cy_wake(addr) pokes w
 * (hands it to its hub), until cy_addr_disarm(n).  Returns CY_AGAIN with
 * it registered while *addr == expected; else, unregistered, CY_OK (the
 * word moved: look again) or CY_CANCELLED (w's token fired). */
enum { CY_AGAIN = 4 };
int cy_addr_arm(cy_wnode *n, _Atomic uint32_t *addr, uint32_t expected, cy_waiter *w);
void cy_addr_disarm(cy_wnode *n);

/* In the child of a fork: an empty address table with fresh mutexes (the
 * records in it belonged to vanished threads, whose stacks the child may
 * reuse; a bucket may have been locked by one of them). */
void cy_wait_table_fork_child(void);

#endif /* CY_WAITER_H */
