/* cy_rwmutex.h - Go's sync.RWMutex: many readers or one writer.
 *
 * Go's src/sync/rwmutex.go keeps the readers in one word (readerCount) that
 * a writer makes negative, so RLock and RUnlock are one atomic add while no
 * writer is around.  Here one 64-bit word holds it all:
 *
 *     state = readers << 2 | CY_RW_QUEUED | CY_RW_WRITER
 *
 * WRITER is set while a writer holds the lock; QUEUED exactly while
 * someone waits in one of the two queues.  With QUEUED clear, each of
 * rlock, runlock, lock and unlock is one compare-and-swap and nothing
 * else (no system call, no mutex).  A compare-and-swap and not Go's add:
 * an unlock of what is not locked must fail and change nothing, and a
 * reader must not count itself in while a writer holds or waits.
 *
 * With QUEUED set, the decisions are taken under `mu`, over two FIFO
 * queues of nodes that live in the waiting callers' frames:
 *
 *   - a waiting writer blocks new readers (QUEUED fails rlock's fast path,
 *     and under mu a reader queues while any writer waits): writers are
 *     not starved;
 *   - a writer's unlock admits every queued reader at once, before the
 *     next writer (Go's Unlock wakes all readers that arrived while it
 *     held the lock); with no reader queued, it hands the lock to the
 *     first queued writer;
 *   - the last reader out hands the lock to the first queued writer;
 *   - a writer that gives up (timeout, cancellation, a signal handler that
 *     raised) and was the last writer waiting admits the readers it held
 *     back, so nothing is left blocked behind a writer that is gone.
 *
 * Invariant, whenever mu is free: a queue is non-empty only if a writer
 * holds the lock, or readers hold it and a writer waits; readers wait only
 * if a writer holds or waits.  While QUEUED is set only mu holders change
 * the state, except that a reader that is not the last may leave with its
 * one compare-and-swap (so everything under mu uses atomic read-modify-writes).
 *
 * Like Go's, the lock is not owned by a thread: any thread may unlock it.
 * Readers: up to 2**62 - 1, which no program reaches.
 */
#ifndef CY_RWMUTEX_H
#define CY_RWMUTEX_H

#include "cy_waiter.h"

#define CY_RW_WRITER 1u
#define CY_RW_QUEUED 2u
#define CY_RW_READER 4u /* one reader in the state word */

typedef struct cy_rw_waiter {
    cy_list link;           /* in rq or wq, while queued; guarded by mu */
    int writer;             /* 1: waits to lock, 0: to rlock */
    _Atomic uint32_t ready; /* 1 once the lock is the waiter's (it sleeps on this word) */
} cy_rw_waiter;

typedef struct {
    _Atomic uint64_t state; /* readers << 2 | QUEUED | WRITER */
    cy_mutex mu;
    cy_list rq, wq;         /* cy_rw_waiter.link: readers, writers waiting; guarded by mu */
    uint32_t nr, nw;        /* their lengths; guarded by mu */
} cy_rwmutex;

static inline void cy_rw_init(cy_rwmutex *rw)
{
    atomic_init(&rw->state, 0);
    cy_mutex_init(&rw->mu);
    cy_list_init(&rw->rq);
    cy_list_init(&rw->wq);
    rw->nr = rw->nw = 0;
}

/* Readers holding the lock now (0 while a writer does). */
static inline uint64_t cy_rw_readers(cy_rwmutex *rw)
{
    return atomic_load_explicit(&rw->state, CY_RELAXED) >> 2;
}

static inline int cy_rw_writer(cy_rwmutex *rw)
{
    return (atomic_load_explicit(&rw->state, CY_RELAXED) & CY_RW_WRITER) != 0;
}

/* Read-locks if no writer holds the lock or waits for it: 1, else 0. */
static inline int cy_rw_try_rlock(cy_rwmutex *rw)
{
    uint64_t st = atomic_load_explicit(&rw->state, CY_RELAXED);
    while (!(st & (CY_RW_WRITER | CY_RW_QUEUED))) {
        /* acquire: the last writer's unlock published its writes. */
        if (atomic_compare_exchange_weak_explicit(&rw->state, &st, st + CY_RW_READER, CY_ACQUIRE, CY_RELAXED))
            return 1;
    }
    return 0;
}

/* Write-locks if nobody holds the lock or waits for it: 1, else 0. */
static inline int cy_rw_try_lock(cy_rwmutex *rw)
{
    uint64_t st = 0;
    return atomic_compare_exchange_strong_explicit(&rw->state, &st, CY_RW_WRITER, CY_ACQUIRE, CY_RELAXED);
}

int cy_rw_runlock_slow(cy_rwmutex *rw);
int cy_rw_unlock_slow(cy_rwmutex *rw);

/* Drops one read lock: 0, or -1 if no reader holds it (nothing changed). */
static inline int cy_rw_runlock(cy_rwmutex *rw)
{
    uint64_t st = atomic_load_explicit(&rw->state, CY_RELAXED);
    for (;;) {
        if (st < CY_RW_READER)
            return -1;
        /* The last reader out while someone waits hands the lock on. */
        if ((st & CY_RW_QUEUED) && (st >> 2) == 1)
            return cy_rw_runlock_slow(rw);
        /* release: what the reader read happens before the next writer. */
        if (atomic_compare_exchange_weak_explicit(&rw->state, &st, st - CY_RW_READER, CY_RELEASE, CY_RELAXED))
            return 0;
    }
}

/* Drops the write lock: 0, or -1 if no writer holds it (nothing changed). */
static inline int cy_rw_unlock(cy_rwmutex *rw)
{
    uint64_t st = CY_RW_WRITER;
    if (atomic_compare_exchange_strong_explicit(&rw->state, &st, 0, CY_RELEASE, CY_RELAXED))
        return 0;
    if (!(st & CY_RW_WRITER))
        return -1;
    return cy_rw_unlock_slow(rw); /* WRITER | QUEUED: only mu holders change it now */
}

/* The slow path of rlock (writer == 0) or lock (writer == 1), after the
 * fast path failed: takes the lock now (returns 1) or queues `node` and
 * returns 0; then wait with cy_rw_wait_op, `begin` being the node's
 * address. */
int cy_rw_enqueue(cy_rwmutex *rw, int writer, cy_rw_waiter *node);

/* Sleeps until `node` is granted the lock (CY_OK), the deadline passes, a
 * signal arrives, or the token of `w` (may be NULL) fires: CY_CANCELLED,
 * having left the queue or given back what was granted meanwhile. */
cy_status cy_rw_wait(cy_rwmutex *rw, cy_rw_waiter *node, int64_t deadline, cy_waiter *w);

/* After CY_TIMEOUT or CY_INTR: takes `node` out of its queue and returns
 * 0, or, if it was granted the lock meanwhile, keeps it and returns 1
 * (keep != 0) or gives it back and returns 0. */
int cy_rw_leave(cy_rwmutex *rw, cy_rw_waiter *node, int keep);

/* cy_rw_wait and cy_rw_leave for cy_wait(); the begin token is the node. */
extern const cy_wait_op cy_rw_wait_op;

/* For a waiter that does not sleep, as cy_wsem_arm (leaving: cy_rw_leave). */
static inline int cy_rw_arm(cy_rw_waiter *node, cy_wnode *n, cy_waiter *w)
{
    return cy_addr_arm(n, &node->ready, 0, w);
}

/* Readers and writers waiting now (for repr and tests). */
uint32_t cy_rw_waiting(cy_rwmutex *rw, int writers);

#endif /* CY_RWMUTEX_H */
