#include "cy_wsem.h"

static cy_wsem_waiter *head_of(cy_wsem *s)
{
    return cy_list_empty(&s->queue) ? NULL : cy_container_of(s->queue.next, cy_wsem_waiter, link);
}

static void unlink_waiter(cy_wsem *s, cy_wsem_waiter *w)
{
    cy_list_remove(&w->link);
    s->nwaiters--;
}

/* Clears QUEUED once the queue is empty (caller holds mu); with it the
 * semaphore leaves the fork registry it joined when it set QUEUED. */
static void clear_queued(cy_wsem *s)
{
    if (atomic_fetch_and_explicit(&s->state, ~(uint64_t)CY_WSEM_QUEUED, CY_RELEASE) & CY_WSEM_QUEUED)
        cy_fork_leave(s);
}

static void fork_reset(void *s) { cy_wsem_reinit((cy_wsem *)s); }

/* Serves waiters from the head while they fit (caller holds mu). */
static void notify_waiters(cy_wsem *s)
{
    cy_wsem_waiter *w;
    while ((w = head_of(s)) != NULL) {
        /* QUEUED is set, so only mu holders change the state now. */
        uint64_t st = atomic_load_explicit(&s->state, CY_RELAXED);
        if (s->size - (int64_t)(st >> 1) < w->n)
            break; /* Go's rule: never skip ahead to a smaller request. */
        atomic_fetch_add_explicit(&s->state, (uint64_t)w->n << 1, CY_ACQ_REL);
        unlink_waiter(s, w);
        /* After this store the waiter may return and its frame vanish; the
         * wake below may then hit a dead or reused address, which costs at
         * most a spurious wake-up that every parker tolerates. */
        atomic_store_explicit(&w->ready, 1, CY_RELEASE);
        cy_wake(&w->ready, 1);
    }
    if (cy_list_empty(&s->queue))
        clear_queued(s);
}

int cy_wsem_release_slow(cy_wsem *s, int64_t n)
{
    cy_mutex_lock(&s->mu);
    /* QUEUED may have been cleared since the caller looked: CAS, not store. */
    uint64_t st = atomic_load_explicit(&s->state, CY_RELAXED);
    do {
        if ((st >> 1) < (uint64_t)n) {
            cy_mutex_unlock(&s->mu);
            return -1;
        }
    } while (!atomic_compare_exchange_weak_explicit(&s->state, &st, st - ((uint64_t)n << 1), CY_ACQ_REL,
                                                    CY_RELAXED));
    notify_waiters(s);
    cy_mutex_unlock(&s->mu);
    return 0;
}

int cy_wsem_enqueue(cy_wsem *s, int64_t n, cy_wsem_waiter *w)
{
    cy_mutex_lock(&s->mu);
    uint64_t st = atomic_load_explicit(&s->state, CY_RELAXED);
    for (;;) {
        if (st & CY_WSEM_QUEUED)
            break; /* others wait: queue behind them */
        if (s->size - (int64_t)(st >> 1) >= n) {
            if (atomic_compare_exchange_weak_explicit(&s->state, &st, st + ((uint64_t)n << 1),
                                                      CY_ACQUIRE, CY_RELAXED)) {
                cy_mutex_unlock(&s->mu);
                return 1;
            }
        } else if (atomic_compare_exchange_weak_explicit(&s->state, &st, st | CY_WSEM_QUEUED,
                                                         CY_ACQ_REL, CY_RELAXED)) {
            cy_fork_join(s, fork_reset); /* the first waiter: a child must forget it */
            break;
        }
    }
    w->n = n;
    atomic_store_explicit(&w->ready, 0, CY_RELAXED);
    cy_list_push_back(&s->queue, &w->link);
    s->nwaiters++;
    cy_mutex_unlock(&s->mu);
    return 0;
}

int cy_wsem_cancel(cy_wsem *s, cy_wsem_waiter *w)
{
    cy_mutex_lock(&s->mu);
    if (atomic_load_explicit(&w->ready, CY_ACQUIRE)) {
        cy_mutex_unlock(&s->mu);
        return 1;
    }
    int was_head = head_of(s) == w;
    unlink_waiter(s, w);
    /* Leaving the head may let the next waiters fit (Go's notifyWaiters). */
    if (cy_list_empty(&s->queue))
        clear_queued(s);
    else if (was_head)
        notify_waiters(s);
    cy_mutex_unlock(&s->mu);
    return 0;
}

static int leave(cy_wsem *s, cy_wsem_waiter *node, int keep)
{
    if (!cy_wsem_cancel(s, node))
        return 0;
    if (keep)
        return 1;
    cy_wsem_release(s, node->n); /* served as we gave up: on to the next */
    return 0;
}

cy_status cy_wsem_wait(cy_wsem *s, cy_wsem_waiter *node, int64_t deadline, cy_waiter *w)
{
    cy_status r = cy_wait_granted(&node->ready, deadline, w);
    if (r == CY_CANCELLED)
        leave(s, node, 0); /* the context's end wins over a grant */
    return r;
}

static int wait_op(void *s, uintptr_t node, int64_t deadline, cy_waiter *w)
{
    return cy_wsem_wait((cy_wsem *)s, (cy_wsem_waiter *)node, deadline, w);
}

static int leave_op(void *s, uintptr_t node, int keep)
{
    return leave((cy_wsem *)s, (cy_wsem_waiter *)node, keep);
}

const cy_wait_op cy_wsem_wait_op = {wait_op, leave_op};

void cy_wsem_reinit(cy_wsem *s)
{
    cy_mutex_init(&s->mu);
    cy_list_init(&s->queue);
    s->nwaiters = 0;
    clear_queued(s);
}
