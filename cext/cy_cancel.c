#include "cy_cancel.h"


struct cy_xnode {
    _Atomic uint32_t word;         /* the node sleeps here; wakers store 1 */
    _Atomic uint32_t *addr;        /* the primitive's word it waits for */
    cy_xnode *bnext, *bprev;       /* in its address bucket */
    cy_xnode *cnext, *cprev;       /* on its token */
};

_Atomic uint32_t cy_xwaiters; /* nodes registered anywhere; read by cy_wake */

#define NBUCKETS 64
static struct {
    cy_mutex mu;
    cy_xnode *head;
} buckets[NBUCKETS]; /* zero-initialised: unlocked mutexes, empty lists */

static size_t bucket_of(const void *addr)
{
    uintptr_t h = (uintptr_t)addr;
    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15u;
    return (size_t)((h >> 7) % NBUCKETS);
}

static void poke(cy_xnode *n)
{
    atomic_store_explicit(&n->word, 1, CY_RELEASE);
    cy_wake_os(&n->word, 1);
}

void cy_xwake(_Atomic uint32_t *addr)
{
    size_t b = bucket_of(addr);
    cy_mutex_lock(&buckets[b].mu);
    for (cy_xnode *n = buckets[b].head; n != NULL; n = n->bnext)
        if (n->addr == addr)
            poke(n); /* the node stays registered, hence alive, while we hold mu */
    cy_mutex_unlock(&buckets[b].mu);
}

void cy_cancel_fire(cy_cancel *c)
{
    if (atomic_exchange_explicit(&c->fired, 1, CY_SEQ_CST))
        return;
    cy_mutex_lock(&c->mu);
    for (cy_xnode *n = c->nodes; n != NULL; n = n->cnext)
        poke(n);
    cy_mutex_unlock(&c->mu);
}

cy_status cy_park_cancel(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline, cy_cancel *c)
{
    if (c == NULL)
        return cy_park(addr, expected, deadline);

    cy_xnode n;
    atomic_init(&n.word, 0);
    n.addr = addr;
    n.bprev = n.cprev = NULL;
    size_t b = bucket_of(addr);

    atomic_fetch_add_explicit(&cy_xwaiters, 1, CY_SEQ_CST);
    cy_mutex_lock(&buckets[b].mu);
    n.bnext = buckets[b].head;
    if (n.bnext)
        n.bnext->bprev = &n;
    buckets[b].head = &n;
    cy_mutex_unlock(&buckets[b].mu);
    cy_mutex_lock(&c->mu);
    n.cnext = c->nodes;
    if (n.cnext)
        n.cnext->cprev = &n;
    c->nodes = &n;
    cy_mutex_unlock(&c->mu);
    /* Pairs with the fence in cy_wake (and the exchange in fire): from here
     * on, a change of *addr or a fire either is seen below or pokes us. */
    atomic_thread_fence(CY_SEQ_CST);

    cy_status r;
    if (atomic_load_explicit(&c->fired, CY_ACQUIRE))
        r = CY_CANCELLED;
    else if (atomic_load_explicit(addr, CY_ACQUIRE) != expected)
        r = CY_OK;
    else {
        r = cy_park(&n.word, 0, deadline);
        if (r == CY_OK && atomic_load_explicit(&c->fired, CY_ACQUIRE))
            r = CY_CANCELLED;
    }

    cy_mutex_lock(&c->mu);
    if (n.cprev)
        n.cprev->cnext = n.cnext;
    else
        c->nodes = n.cnext;
    if (n.cnext)
        n.cnext->cprev = n.cprev;
    cy_mutex_unlock(&c->mu);
    cy_mutex_lock(&buckets[b].mu);
    if (n.bprev)
        n.bprev->bnext = n.bnext;
    else
        buckets[b].head = n.bnext;
    if (n.bnext)
        n.bnext->bprev = n.bprev;
    cy_mutex_unlock(&buckets[b].mu);
    atomic_fetch_sub_explicit(&cy_xwaiters, 1, CY_RELAXED);
    return r;
}
