#include "cy_rwmutex.h"

static cy_rw_waiter *pop(cy_list *q)
{
    cy_rw_waiter *n = cy_container_of(q->next, cy_rw_waiter, link);
    cy_list_remove(&n->link);
    return n;
}

/* The node is the waiter's from here on: after the store it may return and
 * its frame vanish; the wake may then hit a dead or reused address, which
 * costs at most a spurious wake-up that every waiter tolerates. */
static void grant(cy_rw_waiter *n)
{
    atomic_store_explicit(&n->ready, 1, CY_RELEASE);
    cy_wake(&n->ready, 1);
}

/* Hands the lock to whoever may have it now, and clears QUEUED once both
 * queues are empty (caller holds mu).  prefer_readers: a writer has just
 * unlocked, and the readers that queued meanwhile go first. */
static void dispatch(cy_rwmutex *rw, int prefer_readers)
{
    uint64_t st = atomic_load_explicit(&rw->state, CY_ACQUIRE);
    if (!(st & CY_RW_WRITER)) {
        if (rw->nr != 0 && (prefer_readers || rw->nw == 0)) {
            /* Counted in before they are told, so that the state never
             * shows fewer readers than hold the lock. */
            atomic_fetch_add_explicit(&rw->state, (uint64_t)rw->nr * CY_RW_READER, CY_ACQ_REL);
            while (!cy_list_empty(&rw->rq))
                grant(pop(&rw->rq));
            rw->nr = 0;
        } else if (rw->nw != 0 && (st >> 2) == 0) {
            /* No reader can come in meanwhile: QUEUED is set. */
            atomic_fetch_or_explicit(&rw->state, CY_RW_WRITER, CY_ACQ_REL);
            rw->nw--;
            grant(pop(&rw->wq));
        }
    }
    if (rw->nr == 0 && rw->nw == 0)
        atomic_fetch_and_explicit(&rw->state, ~(uint64_t)CY_RW_QUEUED, CY_ACQ_REL);
}

int cy_rw_runlock_slow(cy_rwmutex *rw)
{
    cy_mutex_lock(&rw->mu);
    uint64_t st = atomic_load_explicit(&rw->state, CY_RELAXED);
    do {
        if (st < CY_RW_READER) {
            cy_mutex_unlock(&rw->mu);
            return -1;
        }
        /* acq_rel: the readers that left before us (release) happen
         * before the writer we may hand the lock to. */
    } while (!atomic_compare_exchange_weak_explicit(&rw->state, &st, st - CY_RW_READER, CY_ACQ_REL,
                                                    CY_RELAXED));
    dispatch(rw, 0);
    cy_mutex_unlock(&rw->mu);
    return 0;
}

int cy_rw_unlock_slow(cy_rwmutex *rw)
{
    cy_mutex_lock(&rw->mu);
    uint64_t st = atomic_load_explicit(&rw->state, CY_RELAXED);
    do {
        if (!(st & CY_RW_WRITER)) {
            cy_mutex_unlock(&rw->mu);
            return -1;
        }
    } while (!atomic_compare_exchange_weak_explicit(&rw->state, &st, st & ~(uint64_t)CY_RW_WRITER,
                                                    CY_ACQ_REL, CY_RELAXED));
    dispatch(rw, 1);
    cy_mutex_unlock(&rw->mu);
    return 0;
}

int cy_rw_enqueue(cy_rwmutex *rw, int writer, cy_rw_waiter *node)
{
    cy_mutex_lock(&rw->mu);
    uint64_t st = atomic_load_explicit(&rw->state, CY_RELAXED);
    for (;;) {
        /* A reader comes in unless a writer holds or waits; a writer only
         * into an empty lock with no other writer ahead of it. */
        int now = writer ? (st & ~(uint64_t)CY_RW_QUEUED) == 0 && rw->nw == 0
                         : !(st & CY_RW_WRITER) && rw->nw == 0;
        if (now) {
            uint64_t next = writer ? st | CY_RW_WRITER : st + CY_RW_READER;
            if (atomic_compare_exchange_weak_explicit(&rw->state, &st, next, CY_ACQUIRE, CY_RELAXED)) {
                cy_mutex_unlock(&rw->mu);
                return 1;
            }
        } else if (st & CY_RW_QUEUED) {
            break;
        } else if (atomic_compare_exchange_weak_explicit(&rw->state, &st, st | CY_RW_QUEUED, CY_ACQ_REL,
                                                         CY_RELAXED)) {
            /* A CAS, not an OR: a fast path that freed the lock since we
             * looked would otherwise leave us queued behind nobody. */
            break;
        }
    }
    node->writer = writer;
    atomic_store_explicit(&node->ready, 0, CY_RELAXED);
    if (writer) {
        cy_list_push_back(&rw->wq, &node->link);
        rw->nw++;
    } else {
        cy_list_push_back(&rw->rq, &node->link);
        rw->nr++;
    }
    cy_mutex_unlock(&rw->mu);
    return 0;
}

int cy_rw_leave(cy_rwmutex *rw, cy_rw_waiter *node, int keep)
{
    cy_mutex_lock(&rw->mu);
    if (atomic_load_explicit(&node->ready, CY_ACQUIRE)) {
        cy_mutex_unlock(&rw->mu);
        if (keep)
            return 1;
        /* Granted as we gave up: on to the next. */
        if (node->writer)
            cy_rw_unlock(rw);
        else
            cy_rw_runlock(rw);
        return 0;
    }
    cy_list_remove(&node->link);
    if (node->writer)
        rw->nw--;
    else
        rw->nr--;
    /* The last writer waiting gives up: the readers it held back go in. */
    dispatch(rw, 0);
    cy_mutex_unlock(&rw->mu);
    return 0;
}

cy_status cy_rw_wait(cy_rwmutex *rw, cy_rw_waiter *node, int64_t deadline, cy_waiter *w)
{
    cy_status r = cy_wait_granted(&node->ready, deadline, w);
    if (r == CY_CANCELLED)
        cy_rw_leave(rw, node, 0); /* the context's end wins over a grant */
    return r;
}

static int wait_op(void *rw, uintptr_t node, int64_t deadline, cy_waiter *w)
{
    return cy_rw_wait((cy_rwmutex *)rw, (cy_rw_waiter *)node, deadline, w);
}

static int leave_op(void *rw, uintptr_t node, int keep)
{
    return cy_rw_leave((cy_rwmutex *)rw, (cy_rw_waiter *)node, keep);
}

const cy_wait_op cy_rw_wait_op = {wait_op, leave_op};

uint32_t cy_rw_waiting(cy_rwmutex *rw, int writers)
{
    cy_mutex_lock(&rw->mu);
    uint32_t n = writers ? rw->nw : rw->nr;
    cy_mutex_unlock(&rw->mu);
    return n;
}
