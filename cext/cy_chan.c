#include "cy_chan.h"

int cy_chan_close(cy_chan *ch)
{
    cy_wnode *n;
    cy_mutex_lock(&ch->mu);
    if (atomic_load_explicit(&ch->closed, CY_RELAXED)) {
        cy_mutex_unlock(&ch->mu);
        return -1;
    }
    atomic_store_explicit(&ch->closed, 1, CY_RELEASE);
    /* Closing is rare: wake each waiter at once (its record stays alive
     * until its owner has locked the channel, which we hold). */
    while ((n = cy_wq_claim_first(&ch->recvq, NULL)) != NULL) {
        n->elem = NULL;
        cy_waiter_wake(cy_wq_fire(n, 0));
    }
    while ((n = cy_wq_claim_first(&ch->sendq, NULL)) != NULL)
        cy_waiter_wake(cy_wq_fire(n, 0)); /* the sender keeps its value */
    cy_mutex_unlock(&ch->mu);
    return 0;
}

int cy_chan_drain(cy_chan *ch, void **v)
{
    if (atomic_load_explicit(&ch->len, CY_RELAXED) == 0)
        return 0;
    *v = cy_ring_take_(ch);
    return 1;
}

/* ------------------------------------------------------------------ select */

void cy_select_init(cy_select *s, cy_case *cases, uint32_t n, cy_chan **locks)
{
    s->cases = cases;
    s->n = n;
    s->locks = locks;
    s->nlocks = 0;
    s->queued = 0;
    s->chosen = 0;
    s->ok = 0;
    s->value = NULL;
    /* The distinct channels in address order: insertion sort, selects are small. */
    for (uint32_t i = 0; i < n; i++) {
        cy_chan *ch = cases[i].ch;
        cy_list_init(&cases[i].node.link);
        if (ch == NULL)
            continue;
        uint32_t j = s->nlocks;
        while (j > 0 && (uintptr_t)locks[j - 1] > (uintptr_t)ch)
            j--;
        if (j > 0 && locks[j - 1] == ch)
            continue;
        for (uint32_t k = s->nlocks; k > j; k--)
            locks[k] = locks[k - 1];
        locks[j] = ch;
        s->nlocks++;
    }
}

static void lock_all(cy_select *s)
{
    for (uint32_t i = 0; i < s->nlocks; i++)
        cy_mutex_lock(&s->locks[i]->mu);
}

static void unlock_all(cy_select *s)
{
    for (uint32_t i = s->nlocks; i > 0; i--)
        cy_mutex_unlock(&s->locks[i - 1]->mu);
}

/* A per-thread xorshift: select's random choice needs speed, not quality. */
static uint32_t rand32(void)
{
#if defined(_MSC_VER) && !defined(__clang__)
    static __declspec(thread) uint32_t x;
#else
    static _Thread_local uint32_t x;
#endif
    if (x == 0)
        x = (uint32_t)((uintptr_t)&x >> 4) ^ (uint32_t)cy_now_ns() ^ 0x9E3779B9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

static int case_ready(cy_case *c, const cy_waiter *self)
{
    cy_chan *ch = c->ch;
    if (atomic_load_explicit(&ch->closed, CY_RELAXED))
        return 1;
    if (c->dir == CY_CASE_RECV)
        return atomic_load_explicit(&ch->len, CY_RELAXED) > 0 || cy_wq_has_partner(&ch->sendq, self);
    return cy_wq_has_partner(&ch->recvq, self) || atomic_load_explicit(&ch->len, CY_RELAXED) < ch->cap;
}

/* Under every lock: runs one ready case, chosen uniformly among them
 * (reservoir sampling over one pass); CY_OK, or CY_CHAN_BLOCK.  `self`:
 * the select's own record, whose queued nodes are no partners of its own. */
static int select_locked(cy_select *s, cy_waiter **wake, const cy_waiter *self)
{
    for (;;) {
        uint32_t ready = 0, pick = 0;
        for (uint32_t i = 0; i < s->n; i++) {
            cy_case *c = &s->cases[i];
            if (c->ch != NULL && case_ready(c, self) && rand32() % ++ready == 0)
                pick = i;
        }
        if (ready == 0)
            return CY_CHAN_BLOCK;
        cy_case *c = &s->cases[pick];
        int r;
        if (c->dir == CY_CASE_RECV) {
            r = cy_recv_locked_(c->ch, &s->value, wake, self);
        } else {
            r = cy_send_locked_(c->ch, c->elem, wake, self);
            s->value = NULL;
        }
        if (r != CY_CHAN_BLOCK) {
            s->chosen = pick;
            s->ok = r == 0;
            return CY_OK;
        }
        /* Its queue held only records claimed elsewhere, now unlinked: look again. */
    }
}

int cy_select_try(cy_select *s)
{
    cy_waiter *wake = NULL;
    lock_all(s);
    int r = select_locked(s, &wake, NULL);
    unlock_all(s);
    if (wake != NULL)
        cy_waiter_wake(wake);
    return r;
}

/* Takes every node still queued out of its queue (every lock held). */
static void unlink_all_locked(cy_select *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->cases[i].ch != NULL && cy_list_linked(&s->cases[i].node.link))
            cy_list_remove(&s->cases[i].node.link);
    s->queued = 0;
}

static void unlink_all(cy_select *s)
{
    lock_all(s);
    unlink_all_locked(s);
    unlock_all(s);
}

int cy_select_wait(cy_select *s, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    (void)begin;
    if (atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL) {
        if (s->queued)
            unlink_all(s);
        return CY_CANCELLED;
    }
    cy_waiter *wake = NULL;
    lock_all(s);
    /* Again after signal handlers ran, with our nodes still queued: a
     * partner that came meanwhile passed us by and may have queued itself,
     * so look before sleeping again. */
    int r = select_locked(s, &wake, w);
    if (r == CY_OK || (deadline != CY_NO_DEADLINE && deadline <= cy_now_ns())) {
        if (s->queued)
            unlink_all_locked(s);
        unlock_all(s);
        if (wake != NULL)
            cy_waiter_wake(wake);
        return r == CY_OK ? CY_OK : CY_TIMEOUT;
    }
    if (!s->queued) {
        for (uint32_t i = 0; i < s->n; i++) {
            cy_case *c = &s->cases[i];
            if (c->ch == NULL)
                continue;
            c->node.waiter = w;
            c->node.key = c->ch;
            c->node.index = i;
            c->node.elem = c->dir == CY_CASE_SEND ? c->elem : NULL;
            c->node.ok = 0;
            cy_list_push_back(c->dir == CY_CASE_RECV ? &c->ch->recvq : &c->ch->sendq, &c->node.link);
        }
        s->queued = 1;
    }
    unlock_all(s);

    /* Asleep on the record, spinning first for as long as the first
     * channel's waits have lately lasted (cy_spin.h). */
    cy_spinner *spin = s->nlocks > 0 ? &s->locks[0]->spin : NULL;
    cy_sleep_end e;
    cy_waiter_sleep_queued(w, spin, deadline, &e);
    if (e.who == CY_CLAIM_PAUSED) { /* our places kept while signal handlers run */
        cy_sleep_done(spin, &e, 0);
        return CY_INTR;
    }
    /* A fired single case was unlinked by its claimer; otherwise take
     * every node still queued out of its queue. */
    if (e.who != CY_CLAIM_FIRED || s->n > 1)
        unlink_all(s);
    s->queued = 0;
    cy_sleep_done(spin, &e, CY_CHAN_LINGER);
    if (e.who == CY_CLAIM_CANCEL)
        return CY_CANCELLED;
    if (e.who == CY_CLAIM_SELF)
        return CY_TIMEOUT;
    cy_wnode *f = w->fired;
    s->chosen = f->index;
    s->ok = f->ok;
    s->value = s->cases[f->index].dir == CY_CASE_RECV ? f->elem : NULL;
    return CY_OK;
}

int cy_select_leave(cy_select *s)
{
    /* Paused (the caller gives up after signal handlers raised): nobody
     * else can claim us now, so nothing completed; leave every queue. */
    if (s->queued)
        unlink_all(s);
    return 0;
}

int cy_select_arm(cy_select *s, cy_waiter *w)
{
    if (atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL)
        return CY_CANCELLED;
    cy_waiter *wake = NULL;
    lock_all(s);
    int r = select_locked(s, &wake, NULL);
    if (r == CY_OK) {
        unlock_all(s);
        cy_waiter_wake(wake);
        return CY_OK;
    }
    for (uint32_t i = 0; i < s->n; i++) {
        cy_case *c = &s->cases[i];
        if (c->ch == NULL)
            continue;
        c->node.waiter = w;
        c->node.key = c->ch;
        c->node.index = i;
        c->node.elem = c->dir == CY_CASE_SEND ? c->elem : NULL;
        c->node.ok = 0;
        cy_list_push_back(c->dir == CY_CASE_RECV ? &c->ch->recvq : &c->ch->sendq, &c->node.link);
    }
    s->queued = 1;
    unlock_all(s);
    return CY_AGAIN;
}

int cy_select_end(cy_select *s, cy_waiter *w)
{
    uint32_t who = atomic_load_explicit(&w->claim, CY_ACQUIRE);
    /* A partner's writes are complete once the word is 1 (it is set before
     * the record goes to its hub, and under the partner's lock). */
    while (who == CY_CLAIM_FIRED && atomic_load_explicit(&w->word, CY_ACQUIRE) == 0)
        cy_cpu_relax();
    if (s->queued)
        unlink_all(s);
    if (who == CY_CLAIM_CANCEL)
        return CY_CANCELLED;
    if (who != CY_CLAIM_FIRED)
        return CY_TIMEOUT;
    cy_wnode *f = w->fired;
    s->chosen = f->index;
    s->ok = f->ok;
    s->value = s->cases[f->index].dir == CY_CASE_RECV ? f->elem : NULL;
    return CY_OK;
}

int cy_chan_unrecv(cy_chan *ch, void *v)
{
    cy_waiter *wake = NULL;
    int r = 0;
    cy_mutex_lock(&ch->mu);
    cy_wnode *n = cy_wq_claim_first(&ch->recvq, NULL);
    if (n != NULL) {
        n->elem = v;
        wake = cy_wq_fire(n, 1);
    } else if (atomic_load_explicit(&ch->len, CY_RELAXED) < ch->cap) {
        ch->head = ch->head == 0 ? ch->cap - 1 : ch->head - 1;
        ch->buf[ch->head] = v;
        atomic_store_explicit(&ch->len, atomic_load_explicit(&ch->len, CY_RELAXED) + 1, CY_RELAXED);
    } else {
        r = CY_CHAN_BLOCK;
    }
    cy_mutex_unlock(&ch->mu);
    cy_waiter_wake(wake);
    return r;
}

static int select_op(void *s, uintptr_t begin, int64_t deadline, cy_waiter *w)
{
    return cy_select_wait((cy_select *)s, begin, deadline, w);
}

static int leave_op(void *s, uintptr_t begin, int keep)
{
    (void)begin;
    (void)keep;
    return cy_select_leave((cy_select *)s);
}

const cy_wait_op cy_select_wait_op = {select_op, leave_op};
