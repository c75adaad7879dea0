#include "cy_wsem.h"


static void unlink_waiter(cy_wsem *s, cy_wsem_waiter *w)
{
    if (w->next == w) {
        s->head = NULL;
    } else {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        if (s->head == w)
            s->head = w->next;
    }
    s->nwaiters--;
}

/* Clears QUEUED once the queue is empty (caller holds mu). */
static void clear_queued(cy_wsem *s)
{
    atomic_fetch_and_explicit(&s->state, ~(uint64_t)CY_WSEM_QUEUED, CY_RELEASE);
}

/* Serves waiters from the head while they fit (caller holds mu). */
static void notify_waiters(cy_wsem *s)
{
    while (s->head != NULL) {
        cy_wsem_waiter *w = s->head;
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
    if (s->head == NULL)
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
            break;
        }
    }
    w->n = n;
    atomic_store_explicit(&w->ready, 0, CY_RELAXED);
    if (s->head == NULL) {
        w->next = w->prev = w;
        s->head = w;
    } else {
        cy_wsem_waiter *tail = s->head->prev;
        w->prev = tail;
        w->next = s->head;
        tail->next = w;
        s->head->prev = w;
    }
    s->nwaiters++;
    cy_mutex_unlock(&s->mu);
    return 0;
}

cy_status cy_wsem_wait_ctx(cy_wsem_waiter *w, int64_t deadline, cy_cancel *c)
{
    for (int i = 0; i < CY_SPIN; i++) {
        if (atomic_load_explicit(&w->ready, CY_ACQUIRE))
            return CY_OK;
        cy_cpu_relax();
    }
    for (;;) {
        cy_status r = cy_park_cancel(&w->ready, 0, deadline, c);
        if (r != CY_CANCELLED && atomic_load_explicit(&w->ready, CY_ACQUIRE))
            return CY_OK;
        if (r != CY_OK)
            return r;
    }
}

int cy_wsem_cancel(cy_wsem *s, cy_wsem_waiter *w)
{
    cy_mutex_lock(&s->mu);
    if (atomic_load_explicit(&w->ready, CY_ACQUIRE)) {
        cy_mutex_unlock(&s->mu);
        return 1;
    }
    int was_head = s->head == w;
    unlink_waiter(s, w);
    /* Leaving the head may let the next waiters fit (Go's notifyWaiters). */
    if (s->head == NULL)
        clear_queued(s);
    else if (was_head)
        notify_waiters(s);
    cy_mutex_unlock(&s->mu);
    return 0;
}

void cy_wsem_reinit(cy_wsem *s)
{
    cy_mutex_init(&s->mu);
    s->head = NULL;
    s->nwaiters = 0;
    clear_queued(s);
}
