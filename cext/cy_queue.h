/* cy_queue.h - Python's queue.Queue on the channel's pieces.
 *
 * queue.Queue is a deque and three Conditions over one Lock; this is a
 * mutex, a ring buffer of opaque values and three FIFO queues of waiter
 * records (cy_waiter.h), as a channel (cy_chan.h) is: getters wait while the
 * queue is empty, putters while it is full, joiners while tasks are
 * unfinished.  The Python layer owns the references and hands one over with
 * every value it puts.
 *
 * Where it differs from a channel: `maxsize <= 0` is unbounded (the ring
 * grows by doubling; a bounded queue of up to CY_QUEUE_PREALLOC_MAX gets its
 * whole ring at once and never grows), maxsize can change at any time
 * (queue.Queue's attribute is writable), a put counts an unfinished task
 * that task_done() retires and join() waits for, and shutdown() (3.13's) is
 * not a close: it may be repeated, getters still drain what is there unless
 * it is immediate, and an immediate one empties the queue.
 *
 * The hand-offs are the channel's: a put while a getter waits gives the
 * value straight to it; a get from a full queue with a putter waiting moves
 * that putter's value into the slot it freed.  So waiters are served first
 * in first out, and a newcomer never overtakes them.  Nothing is lost: a
 * waiter that gives up (timeout, signal, cancel) claims its own record
 * first; if that fails, the operation completed and it keeps the result.
 */
#ifndef CY_QUEUE_H
#define CY_QUEUE_H

#include <stddef.h>

#include "cy_waiter.h"

/* Bounded queues up to this size get their whole ring at construction. */
#ifndef CY_QUEUE_PREALLOC_MAX
#define CY_QUEUE_PREALLOC_MAX 65536
#endif
/* The first ring of a queue that grows. */
#ifndef CY_QUEUE_MIN_CAP
#define CY_QUEUE_MIN_CAP 16
#endif

typedef struct {
    cy_mutex mu;
    _Atomic size_t len;          /* values in the ring; written under mu */
    _Atomic int64_t maxsize;     /* <= 0: unbounded; written under mu */
    _Atomic int64_t unfinished;  /* puts not yet matched by task_done; written under mu */
    _Atomic uint32_t shutdown;   /* 0, then 1 for ever; written under mu */
    size_t cap, head;            /* the ring; guarded by mu */
    void **buf;                  /* malloc'd, owned by the queue */
    cy_list getq, putq, joinq;   /* cy_wnode.link of waiting getters / putters / joiners; guarded by mu */
    cy_spinner spin;
} cy_queue;

/* What the operations return, beyond cy_status. */
enum {
    CY_QUEUE_BLOCK = 30,    /* would have to wait: empty (get), full (put), tasks left (join) */
    CY_QUEUE_SHUTDOWN = 31, /* shut down (and, for a get, empty) */
    CY_QUEUE_NOMEM = 32,    /* the ring could not grow */
    CY_QUEUE_NEGATIVE = 33  /* task_done() more often than put() */
};

/* 0, or CY_QUEUE_NOMEM. */
int cy_queue_init(cy_queue *q, int64_t maxsize);

/* Frees the ring; the caller has taken every value out (cy_queue_drain). */
void cy_queue_destroy(cy_queue *q);

static inline size_t cy_queue_len(cy_queue *q) { return atomic_load_explicit(&q->len, CY_RELAXED); }
static inline int64_t cy_queue_maxsize(cy_queue *q) { return atomic_load_explicit(&q->maxsize, CY_RELAXED); }
static inline int64_t cy_queue_unfinished(cy_queue *q) { return atomic_load_explicit(&q->unfinished, CY_RELAXED); }
static inline int cy_queue_is_shutdown(cy_queue *q) { return atomic_load_explicit(&q->shutdown, CY_ACQUIRE) != 0; }

static inline int cy_queue_full(cy_queue *q)
{
    int64_t max = cy_queue_maxsize(q);
    return max > 0 && (uint64_t)cy_queue_len(q) >= (uint64_t)max;
}

/* ------------------------------------------- under the lock (internal) */

static inline int cy_queue_room_(cy_queue *q)
{
    int64_t max = atomic_load_explicit(&q->maxsize, CY_RELAXED);
    return max <= 0 || (uint64_t)atomic_load_explicit(&q->len, CY_RELAXED) < (uint64_t)max;
}

int cy_queue_grow_(cy_queue *q);

static inline int cy_queue_push_(cy_queue *q, void *v)
{
    size_t len = atomic_load_explicit(&q->len, CY_RELAXED);
    if (len == q->cap && cy_queue_grow_(q) != 0)
        return CY_QUEUE_NOMEM;
    size_t i = q->head + len;
    if (i >= q->cap)
        i -= q->cap;
    q->buf[i] = v;
    atomic_store_explicit(&q->len, len + 1, CY_RELAXED);
    atomic_store_explicit(&q->unfinished, atomic_load_explicit(&q->unfinished, CY_RELAXED) + 1, CY_RELAXED);
    return 0;
}

static inline void *cy_queue_take_(cy_queue *q)
{
    void *v = q->buf[q->head];
    if (++q->head == q->cap)
        q->head = 0;
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, CY_RELAXED) - 1, CY_RELAXED);
    return v;
}

static inline int cy_queue_put_locked_(cy_queue *q, void *v, cy_waiter **wake, const cy_waiter *self)
{
    if (atomic_load_explicit(&q->shutdown, CY_RELAXED))
        return CY_QUEUE_SHUTDOWN;
    cy_wnode *g = cy_wq_claim_first(&q->getq, self); /* a getter waits: the queue is empty */
    if (g != NULL) {
        g->elem = v;
        atomic_store_explicit(&q->unfinished, atomic_load_explicit(&q->unfinished, CY_RELAXED) + 1, CY_RELAXED);
        *wake = cy_wq_fire(g, 1);
        return 0;
    }
    if (!cy_queue_room_(q))
        return CY_QUEUE_BLOCK;
    return cy_queue_push_(q, v);
}

static inline int cy_queue_get_locked_(cy_queue *q, void **v, cy_waiter **wake, const cy_waiter *self)
{
    if (atomic_load_explicit(&q->len, CY_RELAXED) > 0) {
        *v = cy_queue_take_(q);
        /* A putter waits only while the queue is full: its value takes the
         * slot just freed (if maxsize has not shrunk below the length),
         * behind every value put before it.  The ring has that slot. */
        if (!cy_list_empty(&q->putq) && cy_queue_room_(q)) {
            cy_wnode *p = cy_wq_claim_first(&q->putq, self);
            if (p != NULL) {
                (void)cy_queue_push_(q, p->elem);
                *wake = cy_wq_fire(p, 1);
            }
        }
        return 0;
    }
    if (atomic_load_explicit(&q->shutdown, CY_RELAXED))
        return CY_QUEUE_SHUTDOWN;
    return CY_QUEUE_BLOCK;
}

/* ------------------------------------------------- without waiting */

/* 0 when v went into the queue or to a getter (the queue owns it now),
 * CY_QUEUE_BLOCK (full), CY_QUEUE_SHUTDOWN or CY_QUEUE_NOMEM. */
static inline int cy_queue_try_put(cy_queue *q, void *v)
{
    cy_waiter *wake = NULL;
    cy_mutex_lock(&q->mu);
    int r = cy_queue_put_locked_(q, v, &wake, NULL);
    cy_mutex_unlock(&q->mu);
    if (wake != NULL)
        cy_waiter_wake(wake);
    return r;
}

/* 0 with *v the oldest value (the caller owns it now), CY_QUEUE_BLOCK
 * (empty) or CY_QUEUE_SHUTDOWN (shut down and empty). */
static inline int cy_queue_try_get(cy_queue *q, void **v)
{
    cy_waiter *wake = NULL;
    cy_mutex_lock(&q->mu);
    int r = cy_queue_get_locked_(q, v, &wake, NULL);
    cy_mutex_unlock(&q->mu);
    if (wake != NULL)
        cy_waiter_wake(wake);
    return r;
}

/* Makes the ring hold at least `cap` values without growing again (a
 * bounded queue made with its maxsize); 0, or CY_QUEUE_NOMEM. */
int cy_queue_reserve(cy_queue *q, size_t cap);

/* Retires one task: 0, or CY_QUEUE_NEGATIVE (none unfinished; nothing
 * changes).  The last one releases every joiner. */
int cy_queue_task_done(cy_queue *q);

/* Sets maxsize; putters waiting that now fit are let in, in their order.
 * 0, or CY_QUEUE_NOMEM if the ring could not grow for them (those that
 * did not fit go on waiting). */
int cy_queue_set_maxsize(cy_queue *q, int64_t maxsize);

/* Python 3.13's shutdown(): puts fail from now on, and every waiting putter
 * and getter wakes with CY_QUEUE_SHUTDOWN (getters wait only on an empty
 * queue).  `immediate` also empties the queue, retiring one unfinished task
 * per value (never below zero) and releasing the joiners if none is left;
 * it returns how many values it took out, which the caller then reads with
 * cy_queue_removed(q, *first, i) and owns: nothing can overwrite their
 * slots, since nothing is put into a queue shut down.  0 if not immediate. */
size_t cy_queue_shutdown(cy_queue *q, int immediate, size_t *first);

static inline void *cy_queue_removed(cy_queue *q, size_t first, size_t i)
{
    size_t j = first + i;
    if (j >= q->cap)
        j -= q->cap;
    return q->buf[j];
}

/* Takes the oldest value without any lock, for the owner tearing the queue
 * down; 0 when there is none. */
int cy_queue_drain(cy_queue *q, void **v);

/* ----------------------------------------------------------- waiting */

enum { CY_QUEUE_GET = 0, CY_QUEUE_PUT = 1, CY_QUEUE_JOIN = 2 };

/* One blocking call, as cy_wait's `obj`. */
typedef struct {
    cy_queue *q;
    uint32_t kind;  /* CY_QUEUE_GET, _PUT or _JOIN */
    void *item;     /* put: the value (the queue's once the call returns CY_OK); get: the value received */
    cy_wnode node;  /* its place in the queue's getq / putq / joinq while it waits */
    uint32_t queued; /* node is in its queue (kept across CY_INTR) */
} cy_queue_call;

static inline void cy_queue_call_init(cy_queue_call *c, cy_queue *q, uint32_t kind, void *item)
{
    c->q = q;
    c->kind = kind;
    c->item = item;
    c->queued = 0;
    cy_list_init(&c->node.link);
}

/* One attempt (cy_wait_op): CY_OK (got c->item / put it / no task left),
 * CY_QUEUE_SHUTDOWN, CY_QUEUE_NOMEM, or CY_TIMEOUT, CY_CANCELLED with the
 * call out of every queue and nothing moved, or CY_INTR with the record
 * paused and its node keeping its place (as cy_select_wait; the op's leave
 * gives it up).  `begin` unused. */
int cy_queue_wait(cy_queue_call *c, uintptr_t begin, int64_t deadline, cy_waiter *w);

extern const cy_wait_op cy_queue_wait_op;

/* For a waiter that does not sleep (an asyncio task, cy_hub.h): what
 * cy_queue_wait returns without waiting (CY_OK, CY_QUEUE_SHUTDOWN,
 * CY_QUEUE_NOMEM), CY_CANCELLED (w's token fired; nothing moved), or
 * CY_AGAIN with the call queued on record w.  Once w is claimed (by a
 * partner, a shutdown, its token, or its owner giving up), cy_queue_end. */
int cy_queue_arm(cy_queue_call *c, cy_waiter *w);

/* After cy_queue_arm's CY_AGAIN, once w is claimed: out of its queue;
 * CY_OK (c->item the value got), CY_QUEUE_SHUTDOWN, CY_CANCELLED (the
 * token claimed w) or CY_TIMEOUT (w claimed itself). */
int cy_queue_end(cy_queue_call *c, cy_waiter *w);

/* Gives back a value a getter was handed but cannot take (its task was
 * cancelled as it was served), still counted unfinished: to the first
 * waiting getter, else to the front of the queue (where it was the
 * oldest; the ring grows by one if full).  0, or CY_QUEUE_NOMEM. */
int cy_queue_unget(cy_queue *q, void *v);

#endif /* CY_QUEUE_H */
