/* cywait.h - the blocking calls of cext/ driven the way src/cysync/_cysync.pyx
 * drives them.
 *
 * The Python layer tries the fast path first (without releasing the GIL),
 * then hands the wait to the one C driver, cy_wait(op, obj, begin, deadline,
 * token, on_intr, arg), with the primitive's cy_X_wait_op: cy_wait runs the
 * op until it returns anything but CY_INTR, calling on_intr (Python: run the
 * signal handlers) after each CY_INTR.  These wrappers do the same with
 * on_intr NULL, that is: keep waiting until the same deadline after CY_INTR
 * (a signal on the futex backend, the end of every CY_PARK_SLICE_NS slice on
 * the fallback), as the Python layer does once its signal handlers ran
 * without raising.  On a final CY_TIMEOUT they call op->leave(keep = 1)
 * where the op has one (a weighted waiter served at that very instant keeps
 * its units), as _block() does.
 *
 * Every wrapper comes in two forms: cyw_X(...) waits without a token (a
 * plain park), cyw_X_ctx(..., cy_cancel *c) with one (c may be NULL): a
 * fire of c ends the wait with CY_CANCELLED, having undone whatever it had
 * taken.  cyw_chan_send / cyw_chan_recv / cyw_select drive a one-case or an
 * n-case select through cy_wait(&cy_select_wait_op, ...).
 */
#ifndef CYWAIT_H
#define CYWAIT_H

#include "cy_barrier.h"
#include "cy_chan.h"
#include "cy_event.h"
#include "cy_mutex.h"
#include "cy_once.h"
#include "cy_park.h"
#include "cy_rwmutex.h"
#include "cy_sema.h"
#include "cy_waiter.h"
#include "cy_waitgroup.h"
#include "cy_wsem.h"

/* cy_wait with on_intr NULL: CY_INTR never comes back from it. */
static inline int cyw_wait(const cy_wait_op *op, void *obj, uintptr_t begin, int64_t deadline, cy_cancel *c)
{
    return cy_wait(op, obj, begin, deadline, c, NULL, NULL);
}

/* Park until *addr != expected (re-parking on spurious wakes and CY_INTR):
 * the OS backend alone, no waiter record. */
static inline cy_status cyw_park_until_changed(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline)
{
    while (atomic_load_explicit(addr, CY_ACQUIRE) == expected) {
        cy_status r = cy_park(addr, expected, deadline);
        if (r == CY_TIMEOUT)
            return atomic_load_explicit(addr, CY_ACQUIRE) == expected ? CY_TIMEOUT : CY_OK;
    }
    return CY_OK;
}

/* ------------------------------------------------ a bare word, as an op */

/* A cy_wait_op of the tests' own: wait until the word at obj no longer
 * holds `begin`, through the address table (cy_wait_addr), so that a
 * token can end it and cy_wake() reaches it.  One attempt: CY_OK,
 * CY_TIMEOUT, CY_INTR or CY_CANCELLED. */
static inline int cyw_addr_wait_attempt(void *obj, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    _Atomic uint32_t *addr = (_Atomic uint32_t *)obj;
    uint32_t expected = (uint32_t)begin;
    while (atomic_load_explicit(addr, CY_ACQUIRE) == expected) {
        cy_status r = cy_wait_addr(addr, expected, deadline, w);
        if (r == CY_TIMEOUT && atomic_load_explicit(addr, CY_ACQUIRE) != expected)
            return CY_OK;
        if (r != CY_OK)
            return r;
    }
    return CY_OK;
}

static const cy_wait_op cyw_addr_wait_op = {cyw_addr_wait_attempt, NULL};

/* Wait until *addr != expected: CY_OK, CY_TIMEOUT or CY_CANCELLED. */
static inline cy_status cyw_addr_wait_ctx(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline,
                                          cy_cancel *c)
{
    return (cy_status)cy_wait(&cyw_addr_wait_op, (void *)addr, expected, deadline, c, NULL, NULL);
}

/* ------------------------------------------------------------ WaitGroup */

/* WaitGroup.wait: CY_OK, CY_TIMEOUT or CY_CANCELLED. */
static inline cy_status cyw_wg_wait_ctx(cy_waitgroup *wg, int64_t deadline, cy_cancel *c)
{
    if (cy_wg_count(wg) == 0)
        return CY_OK;
    uint32_t gen = cy_wg_wait_begin(wg);
    return (cy_status)cy_wait(&cy_wg_wait_op, wg, gen, deadline, c, NULL, NULL);
}

static inline cy_status cyw_wg_wait(cy_waitgroup *wg, int64_t deadline)
{
    return cyw_wg_wait_ctx(wg, deadline, NULL);
}

/* ----------------------------------------------------------------- Once */

/* Once.do for a caller that lost the race: wait until fn has run. */
static inline cy_status cyw_once_wait_ctx(cy_once *o, int64_t deadline, cy_cancel *c)
{
    if (cy_once_is_done(o))
        return CY_OK;
    return (cy_status)cy_wait(&cy_once_wait_op, o, 0, deadline, c, NULL, NULL);
}

static inline cy_status cyw_once_wait(cy_once *o, int64_t deadline)
{
    return cyw_once_wait_ctx(o, deadline, NULL);
}

/* ------------------------------------------------------------ Semaphore */

/* Semaphore.acquire(timeout=...): CY_OK (a unit taken), CY_TIMEOUT or
 * CY_CANCELLED (none taken). */
static inline cy_status cyw_sema_acquire_ctx(cy_sema *s, int64_t deadline, cy_cancel *c)
{
    if (cy_sema_try_acquire(s))
        return CY_OK;
    return (cy_status)cy_wait(&cy_sema_wait_op, s, 0, deadline, c, NULL, NULL);
}

static inline cy_status cyw_sema_acquire(cy_sema *s, int64_t deadline)
{
    return cyw_sema_acquire_ctx(s, deadline, NULL);
}

/* ---------------------------------------------------------------- Event */

/* Event.wait: CY_OK, CY_TIMEOUT or CY_CANCELLED.  The generation is read
 * once, before the flag, as the Python layer does. */
static inline cy_status cyw_event_wait_ctx(cy_event *e, int64_t deadline, cy_cancel *c)
{
    uint32_t gen = cy_event_wait_begin(e);
    if (cy_event_is_set(e))
        return CY_OK;
    return (cy_status)cy_wait(&cy_event_wait_op, e, gen, deadline, c, NULL, NULL);
}

static inline cy_status cyw_event_wait(cy_event *e, int64_t deadline)
{
    return cyw_event_wait_ctx(e, deadline, NULL);
}

/* ------------------------------------------------- WeightedSemaphore */

/* WeightedSemaphore.acquire(n, timeout): CY_OK when the n units are held,
 * CY_TIMEOUT (nothing held, out of the queue), CY_CANCELLED (the same, and
 * units granted at that moment given back).  poll != 0 is timeout=0 (no
 * queueing). */
static inline cy_status cyw_wsem_acquire_ctx(cy_wsem *s, int64_t n, int64_t deadline, int poll, cy_cancel *c)
{
    if (cy_wsem_try_acquire(s, n))
        return CY_OK;
    if (poll)
        return CY_TIMEOUT;
    cy_wsem_waiter node; /* our place in the line, for the whole wait */
    if (cy_wsem_enqueue(s, n, &node))
        return CY_OK;
    int r = cy_wait(&cy_wsem_wait_op, s, (uintptr_t)&node, deadline, c, NULL, NULL);
    /* served at the last instant: keep the units */
    if (r == CY_TIMEOUT && cy_wsem_wait_op.leave(s, (uintptr_t)&node, 1))
        r = CY_OK;
    return (cy_status)r;
}

/* 1 when the n units are held, 0 on timeout. */
static inline int cyw_wsem_acquire(cy_wsem *s, int64_t n, int64_t deadline, int poll)
{
    return cyw_wsem_acquire_ctx(s, n, deadline, poll, NULL) == CY_OK;
}

/* -------------------------------------------------------------- RWMutex */

/* RWMutex.lock (writer != 0) / rlock(timeout): CY_OK when locked,
 * CY_TIMEOUT (out of the queue), CY_CANCELLED (the same, and a lock
 * granted at that moment given back).  poll != 0 is timeout=0 (no
 * queueing). */
static inline cy_status cyw_rw_lock_ctx(cy_rwmutex *rw, int writer, int64_t deadline, int poll, cy_cancel *c)
{
    if (writer ? cy_rw_try_lock(rw) : cy_rw_try_rlock(rw))
        return CY_OK;
    if (poll)
        return CY_TIMEOUT;
    cy_rw_waiter node; /* our place in the queue, for the whole wait */
    if (cy_rw_enqueue(rw, writer, &node))
        return CY_OK;
    int r = cy_wait(&cy_rw_wait_op, rw, (uintptr_t)&node, deadline, c, NULL, NULL);
    /* granted at the last instant: keep the lock */
    if (r == CY_TIMEOUT && cy_rw_wait_op.leave(rw, (uintptr_t)&node, 1))
        r = CY_OK;
    return (cy_status)r;
}

static inline cy_status cyw_rw_lock(cy_rwmutex *rw, int writer, int64_t deadline)
{
    return cyw_rw_lock_ctx(rw, writer, deadline, 0, NULL);
}

/* -------------------------------------------------------------- Barrier */

/* Barrier.wait: the last thread runs `action` (may be NULL) and reports
 * action_ok.  Returns CY_OK (released; *index set), CY_BARRIER_BROKEN_ERR
 * or CY_CANCELLED (the barrier broken, the caller gone); *was_last tells
 * whether this caller was the one that ran the action. */
static inline int cyw_barrier_wait_ctx(cy_barrier *b, int64_t deadline, uint32_t *index, int *was_last,
                                       void (*action)(void *), void *ctx, int action_ok, cy_cancel *c)
{
    cy_barrier_ticket t;
    *was_last = 0;
    /* Entering only waits while a reset finishes or the action runs: try first. */
    int r = cy_barrier_arrive(b, &t, 0);
    if (r == CY_TIMEOUT)
        r = cy_wait(&cy_barrier_arrive_op, b, (uintptr_t)&t, deadline, NULL, NULL, NULL);
    if (r == CY_BARRIER_BROKEN_ERR)
        return r;
    *index = t.index;
    if (r == CY_BARRIER_LAST) {
        *was_last = 1;
        if (action)
            action(ctx);
        return cy_barrier_action_done(b, action_ok);
    }
    /* A timeout breaks the barrier in C and comes back as broken. */
    return cy_wait(&cy_barrier_wait_op, b, (uintptr_t)&t, deadline, c, NULL, NULL);
}

static inline int cyw_barrier_wait(cy_barrier *b, int64_t deadline, uint32_t *index, int *was_last,
                                   void (*action)(void *), void *ctx, int action_ok)
{
    return cyw_barrier_wait_ctx(b, deadline, index, was_last, action, ctx, action_ok, NULL);
}

/* ------------------------------------------------------------- channels */

/* The most cases cyw_select takes. */
#define CYW_SELECT_MAX 16

/* A select over cases[0..n) (filled in: ch, dir, elem): tries without
 * waiting, then waits through cy_wait(&cy_select_wait_op, ...).  CY_OK with
 * out->chosen / ok / value set, CY_TIMEOUT or CY_CANCELLED (nothing moved,
 * no case left in any queue).  A deadline already past is a poll. */
static inline int cyw_select(cy_case *cases, uint32_t n, int64_t deadline, cy_cancel *c, cy_select *out)
{
    cy_chan *locks[CYW_SELECT_MAX];
    if (n > CYW_SELECT_MAX)
        return -1;
    cy_select_init(out, cases, n, locks);
    int r = cy_select_try(out);
    if (r != CY_OK)
        r = cy_wait(&cy_select_wait_op, out, 0, deadline, c, NULL, NULL);
    out->locks = NULL; /* they lived in this frame */
    out->nlocks = 0;
    return r;
}

/* ch <- v: CY_OK with *ok = 1 (the channel owns v now) or *ok = 0 (closed:
 * v stays the caller's), CY_TIMEOUT or CY_CANCELLED (v stays the caller's). */
static inline int cyw_chan_send(cy_chan *ch, void *v, int64_t deadline, cy_cancel *c, int *ok)
{
    int r = cy_chan_try_send(ch, v);
    if (r != CY_CHAN_BLOCK) {
        *ok = r == 0;
        return CY_OK;
    }
    cy_case cs;
    cy_chan *locks[1];
    cy_select s;
    cs.ch = ch;
    cs.dir = CY_CASE_SEND;
    cs.elem = v;
    cy_select_init(&s, &cs, 1, locks);
    r = cy_wait(&cy_select_wait_op, &s, 0, deadline, c, NULL, NULL);
    *ok = r == CY_OK && s.ok;
    return r;
}

/* v, ok := <-ch: CY_OK with *ok = 1 and *v the value, or *ok = 0 and *v NULL
 * (closed and drained), CY_TIMEOUT or CY_CANCELLED (*v NULL, *ok 0). */
static inline int cyw_chan_recv(cy_chan *ch, void **v, int64_t deadline, cy_cancel *c, int *ok)
{
    *v = NULL;
    int r = cy_chan_try_recv(ch, v);
    if (r != CY_CHAN_BLOCK) {
        *ok = r == 0;
        return CY_OK;
    }
    cy_case cs;
    cy_chan *locks[1];
    cy_select s;
    cs.ch = ch;
    cs.dir = CY_CASE_RECV;
    cs.elem = NULL;
    cy_select_init(&s, &cs, 1, locks);
    r = cy_wait(&cy_select_wait_op, &s, 0, deadline, c, NULL, NULL);
    *ok = r == CY_OK && s.ok;
    *v = r == CY_OK ? s.value : NULL;
    return r;
}

/* Whether ch has no waiter queued (locks it). */
static inline int cyw_chan_queues_empty(cy_chan *ch)
{
    cy_mutex_lock(&ch->mu);
    int e = cy_list_empty(&ch->recvq) && cy_list_empty(&ch->sendq);
    cy_mutex_unlock(&ch->mu);
    return e;
}

/* How many nodes ch's receive (dir CY_CASE_RECV) or send queue holds (locks it). */
static inline int cyw_chan_queued(cy_chan *ch, uint32_t dir)
{
    cy_mutex_lock(&ch->mu);
    cy_list *q = dir == CY_CASE_RECV ? &ch->recvq : &ch->sendq;
    int n = 0;
    for (cy_list *l = q->next; l != q; l = l->next)
        n++;
    cy_mutex_unlock(&ch->mu);
    return n;
}

#endif /* CYWAIT_H */
