#include "cy_queue.h"

#include <stdlib.h>

/* How many times the linger time a getter or putter released while
 * spinning lingers: as for channels (cy_chan.h), the partner usually goes
 * on putting or getting for a few microseconds before it lets go of the GIL. */
#ifndef CY_QUEUE_LINGER
#define CY_QUEUE_LINGER 10
#endif

int cy_queue_init(cy_queue *q, int64_t maxsize)
{
    cy_mutex_init(&q->mu);
    atomic_init(&q->len, 0);
    atomic_init(&q->maxsize, maxsize);
    atomic_init(&q->unfinished, 0);
    atomic_init(&q->shutdown, 0);
    q->head = 0;
    q->cap = maxsize > 0 && maxsize <= CY_QUEUE_PREALLOC_MAX ? (size_t)maxsize : CY_QUEUE_MIN_CAP;
    q->buf = (void **)malloc(q->cap * sizeof(void *));
    cy_list_init(&q->getq);
    cy_list_init(&q->putq);
    cy_list_init(&q->joinq);
    cy_spinner_init(&q->spin);
    return q->buf == NULL ? CY_QUEUE_NOMEM : 0;
}

void cy_queue_destroy(cy_queue *q)
{
    free(q->buf);
    q->buf = NULL;
    q->cap = 0;
}

/* A ring of ncap slots (the queue locked, ncap > len). */
static int resize(cy_queue *q, size_t ncap)
{
    size_t cap = q->cap, len = atomic_load_explicit(&q->len, CY_RELAXED);
    if (ncap > SIZE_MAX / sizeof(void *))
        return CY_QUEUE_NOMEM;
    void **nbuf = (void **)malloc(ncap * sizeof(void *));
    if (nbuf == NULL)
        return CY_QUEUE_NOMEM;
    for (size_t i = 0, j = q->head; i < len; i++) {
        nbuf[i] = q->buf[j];
        if (++j == cap)
            j = 0;
    }
    free(q->buf);
    q->buf = nbuf;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

int cy_queue_grow_(cy_queue *q)
{
    /* Doubling, but a bounded queue's ring never beyond maxsize. */
    size_t cap = q->cap;
    if (cap > SIZE_MAX / 2)
        return CY_QUEUE_NOMEM;
    size_t ncap = cap < CY_QUEUE_MIN_CAP ? CY_QUEUE_MIN_CAP : 2 * cap;
    int64_t max = atomic_load_explicit(&q->maxsize, CY_RELAXED);
    if (max > 0 && (uint64_t)max < ncap && (uint64_t)max > cap)
        ncap = (size_t)max;
    return resize(q, ncap);
}

int cy_queue_reserve(cy_queue *q, size_t cap)
{
    cy_mutex_lock(&q->mu);
    /* Not once shut down: cy_queue_removed reads the ring unlocked. */
    int r = cap > q->cap && !atomic_load_explicit(&q->shutdown, CY_RELAXED) ? resize(q, cap) : 0;
    cy_mutex_unlock(&q->mu);
    return r;
}

/* Fires every joiner (the queue locked): the last task is done. */
static void release_joiners(cy_queue *q)
{
    cy_wnode *n;
    while ((n = cy_wq_claim_first(&q->joinq, NULL)) != NULL)
        cy_waiter_wake(cy_wq_fire(n, 1));
}

int cy_queue_task_done(cy_queue *q)
{
    cy_mutex_lock(&q->mu);
    int64_t left = atomic_load_explicit(&q->unfinished, CY_RELAXED) - 1;
    if (left < 0) {
        cy_mutex_unlock(&q->mu);
        return CY_QUEUE_NEGATIVE;
    }
    atomic_store_explicit(&q->unfinished, left, CY_RELAXED);
    if (left == 0)
        release_joiners(q);
    cy_mutex_unlock(&q->mu);
    return 0;
}

int cy_queue_set_maxsize(cy_queue *q, int64_t maxsize)
{
    int r = 0;
    cy_mutex_lock(&q->mu);
    atomic_store_explicit(&q->maxsize, maxsize, CY_RELAXED);
    /* Rare: wake each putter let in at once (a wake by address is safe
     * whenever the record has gone). */
    while (!cy_list_empty(&q->putq) && cy_queue_room_(q)) {
        cy_wnode *p;
        if (atomic_load_explicit(&q->len, CY_RELAXED) == q->cap && (r = cy_queue_grow_(q)) != 0)
            break;
        if ((p = cy_wq_claim_first(&q->putq, NULL)) == NULL)
            break;
        (void)cy_queue_push_(q, p->elem); /* room made above */
        cy_waiter_wake(cy_wq_fire(p, 1));
    }
    cy_mutex_unlock(&q->mu);
    return r;
}

size_t cy_queue_shutdown(cy_queue *q, int immediate, size_t *first)
{
    cy_wnode *n;
    size_t taken = 0;
    cy_mutex_lock(&q->mu);
    atomic_store_explicit(&q->shutdown, 1, CY_RELEASE);
    *first = q->head;
    if (immediate) {
        taken = atomic_load_explicit(&q->len, CY_RELAXED);
        if (taken > 0) {
            q->head += taken;
            if (q->head >= q->cap)
                q->head -= q->cap;
            atomic_store_explicit(&q->len, 0, CY_RELAXED);
            int64_t left = atomic_load_explicit(&q->unfinished, CY_RELAXED);
            left = (uint64_t)left > taken ? left - (int64_t)taken : 0;
            atomic_store_explicit(&q->unfinished, left, CY_RELAXED);
        }
        if (atomic_load_explicit(&q->unfinished, CY_RELAXED) == 0)
            release_joiners(q);
    }
    /* Getters wait only while the queue is empty, and it stays so now;
     * putters keep their values. */
    while ((n = cy_wq_claim_first(&q->getq, NULL)) != NULL) {
        n->elem = NULL;
        cy_waiter_wake(cy_wq_fire(n, 0));
    }
    while ((n = cy_wq_claim_first(&q->putq, NULL)) != NULL)
        cy_waiter_wake(cy_wq_fire(n, 0));
    cy_mutex_unlock(&q->mu);
    return taken;
}

int cy_queue_drain(cy_queue *q, void **v)
{
    if (atomic_load_explicit(&q->len, CY_RELAXED) == 0)
        return 0;
    *v = cy_queue_take_(q);
    return 1;
}

static void unlink_call(cy_queue_call *c)
{
    cy_mutex_lock(&c->q->mu);
    if (cy_list_linked(&c->node.link))
        cy_list_remove(&c->node.link);
    cy_mutex_unlock(&c->q->mu);
    c->queued = 0;
}

int cy_queue_wait(cy_queue_call *c, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    (void)begin;
    cy_queue *q = c->q;
    if (atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL) {
        if (c->queued)
            unlink_call(c);
        return CY_CANCELLED;
    }
    cy_waiter *wake = NULL;
    cy_list *line;
    int r;
    cy_mutex_lock(&q->mu);
    /* Again after signal handlers ran, with our node still queued: a
     * partner that came meanwhile passed us by, so look before sleeping. */
    switch (c->kind) {
    case CY_QUEUE_GET:
        r = cy_queue_get_locked_(q, &c->item, &wake, w);
        line = &q->getq;
        break;
    case CY_QUEUE_PUT:
        r = cy_queue_put_locked_(q, c->item, &wake, w);
        line = &q->putq;
        break;
    default:
        r = atomic_load_explicit(&q->unfinished, CY_RELAXED) == 0 ? CY_OK : CY_QUEUE_BLOCK;
        line = &q->joinq;
        break;
    }
    if (r != CY_QUEUE_BLOCK || (deadline != CY_NO_DEADLINE && deadline <= cy_now_ns())) {
        if (c->queued && cy_list_linked(&c->node.link))
            cy_list_remove(&c->node.link);
        c->queued = 0;
        cy_mutex_unlock(&q->mu);
        if (wake != NULL)
            cy_waiter_wake(wake);
        return r == CY_QUEUE_BLOCK ? CY_TIMEOUT : r;
    }
    if (!c->queued) {
        c->node.waiter = w;
        c->node.key = q;
        c->node.index = 0;
        c->node.elem = c->kind == CY_QUEUE_PUT ? c->item : NULL;
        c->node.ok = 0;
        cy_list_push_back(line, &c->node.link);
        c->queued = 1;
    }
    cy_mutex_unlock(&q->mu);

    cy_sleep_end e;
    cy_waiter_sleep_queued(w, &q->spin, deadline, &e);
    if (e.who == CY_CLAIM_PAUSED) { /* our place kept while signal handlers run */
        cy_sleep_done(&q->spin, &e, 0);
        return CY_INTR;
    }
    /* A fired record was unlinked by its claimer; any other may still be
     * queued (or being unlinked by a partner that lost the claim). */
    if (e.who != CY_CLAIM_FIRED)
        unlink_call(c);
    c->queued = 0;
    cy_sleep_done(&q->spin, &e, CY_QUEUE_LINGER);
    if (e.who == CY_CLAIM_CANCEL)
        return CY_CANCELLED;
    if (e.who == CY_CLAIM_SELF)
        return CY_TIMEOUT;
    if (!c->node.ok)
        return CY_QUEUE_SHUTDOWN;
    if (c->kind == CY_QUEUE_GET)
        c->item = c->node.elem;
    return CY_OK;
}

int cy_queue_arm(cy_queue_call *c, cy_waiter *w)
{
    cy_queue *q = c->q;
    if (atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL)
        return CY_CANCELLED;
    cy_waiter *wake = NULL;
    cy_list *line;
    int r;
    cy_mutex_lock(&q->mu);
    switch (c->kind) {
    case CY_QUEUE_GET:
        r = cy_queue_get_locked_(q, &c->item, &wake, NULL);
        line = &q->getq;
        break;
    case CY_QUEUE_PUT:
        r = cy_queue_put_locked_(q, c->item, &wake, NULL);
        line = &q->putq;
        break;
    default:
        r = atomic_load_explicit(&q->unfinished, CY_RELAXED) == 0 ? CY_OK : CY_QUEUE_BLOCK;
        line = &q->joinq;
        break;
    }
    if (r != CY_QUEUE_BLOCK) {
        cy_mutex_unlock(&q->mu);
        cy_waiter_wake(wake);
        return r;
    }
    c->node.waiter = w;
    c->node.key = q;
    c->node.index = 0;
    c->node.elem = c->kind == CY_QUEUE_PUT ? c->item : NULL;
    c->node.ok = 0;
    cy_list_push_back(line, &c->node.link);
    c->queued = 1;
    cy_mutex_unlock(&q->mu);
    return CY_AGAIN;
}

int cy_queue_end(cy_queue_call *c, cy_waiter *w)
{
    uint32_t who = atomic_load_explicit(&w->claim, CY_ACQUIRE);
    /* A partner's writes are complete once the word is 1. */
    while (who == CY_CLAIM_FIRED && atomic_load_explicit(&w->word, CY_ACQUIRE) == 0)
        cy_cpu_relax();
    if (c->queued)
        unlink_call(c); /* a fired call was unlinked by its claimer: a no-op then */
    if (who == CY_CLAIM_CANCEL)
        return CY_CANCELLED;
    if (who != CY_CLAIM_FIRED)
        return CY_TIMEOUT;
    if (!c->node.ok)
        return CY_QUEUE_SHUTDOWN;
    if (c->kind == CY_QUEUE_GET)
        c->item = c->node.elem;
    return CY_OK;
}

int cy_queue_unget(cy_queue *q, void *v)
{
    cy_waiter *wake = NULL;
    int r = 0;
    cy_mutex_lock(&q->mu);
    cy_wnode *g = cy_wq_claim_first(&q->getq, NULL);
    if (g != NULL) {
        g->elem = v;
        wake = cy_wq_fire(g, 1);
    } else {
        size_t len = atomic_load_explicit(&q->len, CY_RELAXED);
        if (len == q->cap)
            r = cy_queue_grow_(q);
        if (r == 0) {
            q->head = q->head == 0 ? q->cap - 1 : q->head - 1;
            q->buf[q->head] = v;
            atomic_store_explicit(&q->len, len + 1, CY_RELAXED);
        }
    }
    cy_mutex_unlock(&q->mu);
    cy_waiter_wake(wake);
    return r;
}

static int queue_op(void *c, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    return cy_queue_wait((cy_queue_call *)c, begin, deadline, w);
}

static int leave_op(void *c, uintptr_t begin, int keep)
{
    (void)begin;
    (void)keep;
    /* Paused (a signal handler raised): nobody can claim us, nothing moved. */
    if (((cy_queue_call *)c)->queued)
        unlink_call((cy_queue_call *)c);
    return 0;
}

const cy_wait_op cy_queue_wait_op = {queue_op, leave_op};
