#include "cy_waiter.h"

/* ------------------------------------------------------------ the records */

void cy_waiter_begin(cy_waiter *w, cy_cancel *c)
{
    atomic_init(&w->word, 0);
    atomic_init(&w->claim, CY_CLAIM_NONE);
    w->fired = NULL;
    w->cancel = c;
    w->hub = NULL;
    if (c == NULL)
        return;
    w->cnode.waiter = w;
    w->cnode.key = NULL;
    cy_mutex_lock(&c->mu);
    cy_list_push_back(&c->waiters, &w->cnode.link);
    cy_mutex_unlock(&c->mu);
    /* A fire that went through the list before we joined it had already set
     * `fired` (it does so before taking mu): claim on its behalf. */
    if (atomic_load_explicit(&c->fired, CY_SEQ_CST))
        cy_waiter_claim(w, CY_CLAIM_CANCEL);
}

void cy_waiter_end(cy_waiter *w)
{
    cy_cancel *c = w->cancel;
    if (c == NULL)
        return;
    /* After this the token can no longer reach the record, which may go. */
    cy_mutex_lock(&c->mu);
    cy_list_remove(&w->cnode.link);
    cy_mutex_unlock(&c->mu);
}

cy_status cy_waiter_rearm(cy_waiter *w)
{
    atomic_store_explicit(&w->word, 0, CY_RELAXED);
    w->fired = NULL;
    /* Dekker with cy_cancel_fire: it sets `fired` and then tries to claim;
     * we unclaim and then read `fired`: one of us sees the other. */
    atomic_store_explicit(&w->claim, CY_CLAIM_NONE, CY_SEQ_CST);
    if (cy_cancel_fired(w->cancel))
        cy_waiter_claim(w, CY_CLAIM_CANCEL);
    return atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL ? CY_CANCELLED : CY_OK;
}

void cy_cancel_fire(cy_cancel *c)
{
    if (atomic_exchange_explicit(&c->fired, 1, CY_SEQ_CST))
        return;
    cy_mutex_lock(&c->mu);
    for (cy_list *l = c->waiters.next; l != &c->waiters; l = l->next) {
        cy_waiter *w = cy_container_of(l, cy_wnode, link)->waiter;
        /* A record claimed by someone else is theirs to wake.  Ours we wake
         * while holding mu: the record cannot leave the list (and its stack
         * frame vanish) before we are done with it. */
        if (cy_waiter_claim(w, CY_CLAIM_CANCEL))
            cy_waiter_wake(cy_waiter_release(w));
    }
    cy_mutex_unlock(&c->mu);
}

int cy_wait(const cy_wait_op *op, void *obj, uintptr_t begin, int64_t deadline, cy_cancel *c,
            int (*on_intr)(void *), void *arg)
{
    cy_waiter w;
    cy_waiter_begin(&w, c);
    int r;
    while ((r = op->wait(obj, begin, deadline, &w)) == CY_INTR) {
        if (on_intr != NULL && on_intr(arg) != 0)
            break;
        /* A claim of its own ended that attempt (a channel wait gives up
         * its queues before it reports CY_INTR): unclaimed for the next.  A
         * cancel meanwhile stays claimed, and the next attempt sees it. */
        (void)cy_waiter_rearm(&w);
    }
    cy_waiter_end(&w);
    return r;
}

/* ------------------------------------------------- queues of records */

void cy_waiter_sleep_queued(cy_waiter *w, cy_spinner *spin, int64_t deadline, cy_sleep_end *e)
{
    e->start = 0;
    e->mark = 0;
    e->parked = 0;
    e->pr = CY_OK;
    int moved = spin != NULL && cy_spin_while(spin, &w->word, 0, deadline, &e->start, &e->mark);
    while (!moved && atomic_load_explicit(&w->word, CY_ACQUIRE) == 0) {
        e->parked = 1;
        if ((e->pr = cy_park(&w->word, 0, deadline)) != CY_OK)
            break;
    }
    /* Interrupted: pause, keeping our places; timed out: end the wait
     * ourselves.  Either only if nobody claimed us first: then their
     * outcome stands, and nothing is lost. */
    if (atomic_load_explicit(&w->word, CY_ACQUIRE) == 0) {
        if (e->pr == CY_INTR && cy_waiter_claim(w, CY_CLAIM_PAUSED)) {
            e->who = CY_CLAIM_PAUSED;
            return;
        }
        if (e->pr == CY_TIMEOUT)
            cy_waiter_claim(w, CY_CLAIM_SELF);
    }
    e->who = atomic_load_explicit(&w->claim, CY_ACQUIRE);
    if (e->who == CY_CLAIM_FIRED) {
        /* The claimer stores the word right after its claim (still under
         * its object's lock): wait for that, and for what it wrote. */
        while (atomic_load_explicit(&w->word, CY_ACQUIRE) == 0)
            (void)cy_park(&w->word, 0, CY_NO_DEADLINE);
    }
}

void cy_sleep_done(cy_spinner *spin, const cy_sleep_end *e, uint32_t linger)
{
    if (spin == NULL)
        return;
    if (e->who == CY_CLAIM_PAUSED) {
        if (e->parked)
            cy_spin_learn(spin, cy_now_ns() - e->start, 0);
    } else if (e->parked || e->who != CY_CLAIM_FIRED)
        cy_spin_learn(spin, cy_now_ns() - e->start, e->who == CY_CLAIM_SELF);
    else if (linger > 0)
        cy_spin_linger(spin, e->mark, linger);
}

/* ------------------------------------------------------ the address table */

/* Records waiting through the table, anywhere; cy_wake skips the table
 * while there are none, which is always for waits without a context. */
static _Atomic uint32_t table_waiters;

#define NBUCKETS 64
static struct {
    cy_mutex mu;
    cy_list head;
} buckets[NBUCKETS]; /* zero: unlocked mutexes; lists made on first use */

static cy_list *bucket_list(size_t b)
{
    /* A zeroed head is an empty list that was never initialised. */
    if (buckets[b].head.next == NULL)
        cy_list_init(&buckets[b].head);
    return &buckets[b].head;
}

cy_status cy_wait_addr(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline, cy_waiter *w)
{
    if (w == NULL || w->cancel == NULL)
        return cy_park(addr, expected, deadline);

    cy_wnode n;
    n.waiter = w;
    n.key = (const void *)addr;
    size_t b = cy_addr_hash(addr, NBUCKETS);
    atomic_store_explicit(&w->word, 0, CY_RELAXED);

    atomic_fetch_add_explicit(&table_waiters, 1, CY_SEQ_CST);
    cy_mutex_lock(&buckets[b].mu);
    cy_list_push_back(bucket_list(b), &n.link);
    cy_mutex_unlock(&buckets[b].mu);
    /* Pairs with the fence in cy_wake: from here on a change of *addr is
     * either seen below or pokes us; a cancel claims and wakes us. */
    atomic_thread_fence(CY_SEQ_CST);

    cy_status r;
    if (atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL)
        r = CY_CANCELLED;
    else if (atomic_load_explicit(addr, CY_ACQUIRE) != expected)
        r = CY_OK;
    else {
        r = cy_park(&w->word, 0, deadline);
        if (atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL)
            r = CY_CANCELLED;
    }

    cy_mutex_lock(&buckets[b].mu);
    cy_list_remove(&n.link);
    cy_mutex_unlock(&buckets[b].mu);
    atomic_fetch_sub_explicit(&table_waiters, 1, CY_RELAXED);
    return r;
}

cy_status cy_wait_granted(_Atomic uint32_t *ready, int64_t deadline, cy_waiter *w)
{
    for (int i = 0; i < CY_SPIN; i++) {
        if (atomic_load_explicit(ready, CY_ACQUIRE))
            return CY_OK;
        cy_cpu_relax();
    }
    for (;;) {
        cy_status r = cy_wait_addr(ready, 0, deadline, w);
        if (r == CY_CANCELLED)
            return r;
        if (atomic_load_explicit(ready, CY_ACQUIRE))
            return CY_OK;
        if (r != CY_OK)
            return r;
    }
}

void cy_wake(_Atomic uint32_t *addr, int32_t n)
{
    cy_wake_os(addr, n);
    /* Pairs with the fence in cy_wait_addr: either this load sees the
     * record registered, or that record sees the word the caller changed. */
    atomic_thread_fence(CY_SEQ_CST);
    if (atomic_load_explicit(&table_waiters, CY_RELAXED) == 0)
        return;
    size_t b = cy_addr_hash(addr, NBUCKETS);
    cy_mutex_lock(&buckets[b].mu);
    cy_list *head = bucket_list(b);
    for (cy_list *l = head->next; l != head && n > 0; l = l->next) {
        cy_wnode *node = cy_container_of(l, cy_wnode, link);
        /* A record whose word is 1 was poked and has not looked again yet:
         * it will, so it needs no second poke (and one for up to n units
         * need not reach every waiter: one that gives up passes it on). */
        if (node->key == (const void *)addr &&
            (n == CY_WAKE_ALL || atomic_load_explicit(&node->waiter->word, CY_ACQUIRE) == 0)) {
            /* A poke, not a claim: the record re-checks the word.  It stays
             * registered, hence alive, while we hold the bucket. */
            cy_waiter_wake(cy_waiter_release(node->waiter));
            if (n != CY_WAKE_ALL)
                n--;
        }
    }
    cy_mutex_unlock(&buckets[b].mu);
}

int cy_addr_arm(cy_wnode *n, _Atomic uint32_t *addr, uint32_t expected, cy_waiter *w)
{
    n->waiter = w;
    n->key = (const void *)addr;
    size_t b = cy_addr_hash(addr, NBUCKETS);
    atomic_store_explicit(&w->word, 0, CY_RELAXED);
    atomic_fetch_add_explicit(&table_waiters, 1, CY_SEQ_CST);
    cy_mutex_lock(&buckets[b].mu);
    cy_list_push_back(bucket_list(b), &n->link);
    cy_mutex_unlock(&buckets[b].mu);
    /* As in cy_wait_addr: a change of *addr after this is seen below or pokes w. */
    atomic_thread_fence(CY_SEQ_CST);
    int r = CY_AGAIN;
    if (atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL)
        r = CY_CANCELLED;
    else if (atomic_load_explicit(addr, CY_ACQUIRE) != expected)
        r = CY_OK;
    if (r != CY_AGAIN)
        cy_addr_disarm(n);
    return r;
}

void cy_addr_disarm(cy_wnode *n)
{
    size_t b = cy_addr_hash(n->key, NBUCKETS);
    cy_mutex_lock(&buckets[b].mu);
    cy_list_remove(&n->link);
    cy_mutex_unlock(&buckets[b].mu);
    atomic_fetch_sub_explicit(&table_waiters, 1, CY_RELAXED);
}

void cy_wait_table_fork_child(void)
{
    for (size_t b = 0; b < NBUCKETS; b++) {
        cy_mutex_init(&buckets[b].mu);
        cy_list_init(&buckets[b].head);
    }
    atomic_store_explicit(&table_waiters, 0, CY_RELAXED);
}

cy_status cy_cancel_wait(cy_cancel *c, int64_t deadline)
{
    _Atomic uint32_t never;
    cy_waiter w;
    atomic_init(&never, 0);
    cy_waiter_begin(&w, c);
    cy_status r = cy_wait_addr(&never, 0, deadline, &w);
    cy_waiter_end(&w);
    return r;
}
