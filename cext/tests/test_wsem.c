/* test_wsem.c - cy_wsem: fast paths, the FIFO queue (checked op by op against
 * a model of golang.org/x/sync/semaphore), cancellation, and many threads with
 * random weights, timeouts and cancellations while a checker verifies the
 * queue's invariants under the semaphore's own mutex. */
#include "cytest.h"
#include "cywait.h"

#include <stdlib.h>
#include <string.h>

static int queued_bit(cy_wsem *s) { return (int)(atomic_load(&s->state) & CY_WSEM_QUEUED); }
static int ready(cy_wsem_waiter *w) { return (int)atomic_load(&w->ready); }
static cy_wsem_waiter *node_of(cy_list *l) { return cy_container_of(l, cy_wsem_waiter, link); }

/* One attempt of the op, no token: what the driver runs. */
static cy_status wait1(cy_wsem *s, cy_wsem_waiter *w, int64_t deadline)
{
    return cy_wsem_wait(s, w, deadline, NULL);
}

/* Queue invariants; the caller holds s->mu.  Returns the queue length. */
static int check_queue_locked(cy_wsem *s)
{
    int len = 0;
    uint64_t st = atomic_load(&s->state);
    int64_t held = (int64_t)(st >> 1);
    CHECK_LE(held, s->size);
    CHECK_LE(0, held);
    CHECK_EQ(s->queue.next->prev, &s->queue);
    for (cy_list *l = s->queue.next; l != &s->queue && len < 100000; l = l->next) {
        cy_wsem_waiter *w = node_of(l);
        CHECK_EQ(l->next->prev, l);
        CHECK(cy_list_linked(l));
        CHECK_EQ(ready(w), 0);
        len++;
    }
    if (!cy_list_empty(&s->queue)) {
        /* the head waits only because it does not fit (no stranded waiter) */
        cy_wsem_waiter *head = node_of(s->queue.next);
        CHECK_MSG(s->size - held < head->n, "head wants %lld, %lld of %lld free: stranded",
                  (long long)head->n, (long long)(s->size - held), (long long)s->size);
    }
    CHECK_EQ(len, (long long)s->nwaiters);
    CHECK_EQ((st & CY_WSEM_QUEUED) != 0, len != 0);
    return len;
}

static void check_queue(cy_wsem *s)
{
    cy_mutex_lock(&s->mu);
    check_queue_locked(s);
    cy_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ single thread */

static void test_fast_paths(void)
{
    cy_wsem s;
    cy_wsem_init(&s, 10);
    CHECK_EQ(cy_wsem_held(&s), 0);
    CHECK_EQ(cy_wsem_try_acquire(&s, 3), 1);
    CHECK_EQ(cy_wsem_held(&s), 3);
    CHECK_EQ(cy_wsem_try_acquire(&s, 8), 0);
    CHECK_EQ(cy_wsem_held(&s), 3);
    CHECK_EQ(cy_wsem_try_acquire(&s, 7), 1);
    CHECK_EQ(cy_wsem_try_acquire(&s, 1), 0);
    CHECK_EQ(cy_wsem_try_acquire(&s, 0), 1); /* nothing needed, nobody queued */
    CHECK_EQ(cy_wsem_held(&s), 10);
    CHECK_EQ(cy_wsem_release(&s, 11), -1); /* more than held: unchanged */
    CHECK_EQ(cy_wsem_held(&s), 10);
    CHECK_EQ(cy_wsem_release(&s, 10), 0);
    CHECK_EQ(cy_wsem_held(&s), 0);
    CHECK_EQ(cy_wsem_release(&s, 1), -1);
    CHECK_EQ(cy_wsem_release(&s, 0), 0);
    CHECK_EQ(atomic_load(&s.state), 0);
    CHECK_EQ(cy_wsem_waiters(&s), 0);

    cy_wsem_init(&s, 0); /* size 0: only n == 0 ever succeeds */
    CHECK_EQ(cy_wsem_try_acquire(&s, 0), 1);
    CHECK_EQ(cy_wsem_try_acquire(&s, 1), 0);

    cy_wsem_init(&s, CY_WSEM_MAX); /* the largest size: no overflow in held << 1 */
    CHECK_EQ(cy_wsem_try_acquire(&s, CY_WSEM_MAX), 1);
    CHECK_EQ(cy_wsem_held(&s), CY_WSEM_MAX);
    CHECK_EQ(cy_wsem_try_acquire(&s, 1), 0);
    CHECK_EQ(cy_wsem_release(&s, CY_WSEM_MAX), 0);
    CHECK_EQ(atomic_load(&s.state), 0);
}

static void test_queue_fifo(void)
{
    cy_wsem s;
    cy_wsem_waiter a, b, c, d;
    cy_wsem_init(&s, 10);
    CHECK_EQ(cy_wsem_enqueue(&s, 4, &a), 1); /* fits, nobody waits: taken at once */
    CHECK_EQ(cy_wsem_held(&s), 4);
    CHECK_EQ(queued_bit(&s), 0);
    CHECK_EQ(cy_wsem_try_acquire(&s, 6), 1); /* all 10 held */

    CHECK_EQ(cy_wsem_enqueue(&s, 5, &a), 0); /* queued */
    CHECK_EQ(queued_bit(&s), 1);
    CHECK_EQ(cy_wsem_waiters(&s), 1);
    CHECK_EQ(cy_wsem_try_acquire(&s, 0), 0); /* queue non-empty: even 0 waits its turn */
    CHECK_EQ(cy_wsem_release(&s, 3), 0);      /* 3 free < 5 */
    CHECK_EQ(ready(&a), 0);
    CHECK_EQ(cy_wsem_try_acquire(&s, 1), 0); /* fits, but a waits: no */
    CHECK_EQ(cy_wsem_enqueue(&s, 1, &b), 0); /* fits, but queues behind a */
    CHECK_EQ(cy_wsem_waiters(&s), 2);
    CHECK_EQ(ready(&b), 0);
    CHECK_EQ(wait1(&s, &b, cy_now_ns() - 1), CY_TIMEOUT);
    CHECK_EQ(cy_wsem_release(&s, 2), 0); /* 5 free: a is served, b (1) does not fit */
    CHECK_EQ(ready(&a), 1);
    CHECK_EQ(ready(&b), 0);
    CHECK_EQ(cy_wsem_held(&s), 10);
    CHECK_EQ(wait1(&s, &a, cy_now_ns() - 1), CY_OK);
    CHECK_EQ(cy_wsem_cancel(&s, &a), 1); /* already served: the caller holds the units */
    check_queue(&s);
    CHECK_EQ(cy_wsem_release(&s, 5), 0); /* b served; queue empty: bit cleared */
    CHECK_EQ(ready(&b), 1);
    CHECK_EQ(cy_wsem_held(&s), 6);
    CHECK_EQ(queued_bit(&s), 0);
    CHECK_EQ(cy_wsem_waiters(&s), 0);
    CHECK_EQ(cy_wsem_release(&s, 6), 0);
    CHECK_EQ(atomic_load(&s.state), 0);

    /* a large head blocks smaller ones behind it (Go: no skipping ahead) */
    CHECK_EQ(cy_wsem_try_acquire(&s, 10), 1);
    CHECK_EQ(cy_wsem_enqueue(&s, 8, &a), 0);
    CHECK_EQ(cy_wsem_enqueue(&s, 2, &b), 0);
    CHECK_EQ(cy_wsem_enqueue(&s, 0, &c), 0); /* n == 0 queues too */
    CHECK_EQ(cy_wsem_enqueue(&s, 1, &d), 0);
    CHECK_EQ(cy_wsem_release(&s, 3), 0); /* 3 free: a (8) does not fit; b, c, d wait */
    CHECK_EQ(ready(&b) + ready(&c) + ready(&d), 0);
    check_queue(&s);
    /* d, not at the head, gives up: nothing else changes */
    CHECK_EQ(cy_wsem_cancel(&s, &d), 0);
    CHECK_EQ(cy_wsem_waiters(&s), 3);
    CHECK_EQ(ready(&b) + ready(&c), 0);
    /* a, the head, gives up: b and c now fit and are served at once */
    CHECK_EQ(wait1(&s, &a, cy_now_ns() - 1), CY_TIMEOUT);
    CHECK_EQ(cy_wsem_cancel(&s, &a), 0);
    CHECK_EQ(ready(&b), 1);
    CHECK_EQ(ready(&c), 1);
    CHECK_EQ(cy_wsem_held(&s), 9);
    CHECK_EQ(cy_wsem_waiters(&s), 0);
    CHECK_EQ(queued_bit(&s), 0);
    CHECK_EQ(cy_wsem_release(&s, 9), 0);
    CHECK_EQ(atomic_load(&s.state), 0);

    /* the last waiter cancelling clears the bit */
    CHECK_EQ(cy_wsem_try_acquire(&s, 10), 1);
    CHECK_EQ(cy_wsem_enqueue(&s, 1, &a), 0);
    CHECK_EQ(cy_wsem_cancel(&s, &a), 0);
    CHECK_EQ(queued_bit(&s), 0);
    CHECK_EQ(cy_wsem_try_acquire(&s, 0), 1);
    /* release through the slow path with too much: -1, unchanged */
    CHECK_EQ(cy_wsem_enqueue(&s, 1, &a), 0);
    CHECK_EQ(cy_wsem_release(&s, 11), -1);
    CHECK_EQ(cy_wsem_held(&s), 10);
    CHECK_EQ(ready(&a), 0);
    /* after fork: the queue is forgotten, the units held stay */
    cy_wsem_reinit(&s);
    CHECK_EQ(queued_bit(&s), 0);
    CHECK_EQ(cy_wsem_waiters(&s), 0);
    CHECK(cy_list_empty(&s.queue));
    CHECK_EQ(cy_wsem_held(&s), 10);
    CHECK_EQ(cy_wsem_release(&s, 10), 0);
    CHECK_EQ(atomic_load(&s.state), 0);
}

/* ----------------------------------------------------------- model check */

#define SLOTS 48

enum { FREE = 0, QUEUED = 1, SERVED = 2 };

struct model {
    cy_wsem s;
    int64_t size, held;
    cy_wsem_waiter w[SLOTS];
    int64_t n[SLOTS];
    int st[SLOTS];
    int q[SLOTS], qlen; /* model queue: slot numbers, head first */
    int64_t holdings[64];
    int nhold;
};

static void model_hold(struct model *m, int64_t n)
{
    if (n > 0) /* at most size holdings of one unit or more */
        m->holdings[m->nhold++] = n;
}

static void model_serve(struct model *m)
{
    while (m->qlen > 0 && m->size - m->held >= m->n[m->q[0]]) {
        int k = m->q[0];
        m->held += m->n[k];
        m->st[k] = SERVED;
        for (int i = 0; i + 1 < m->qlen; i++)
            m->q[i] = m->q[i + 1];
        m->qlen--;
    }
}

static void model_compare(struct model *m, long step, const char *op)
{
    long f0 = cytest_failures();
    CHECK_EQ(cy_wsem_held(&m->s), m->held);
    CHECK_EQ(queued_bit(&m->s), m->qlen > 0);
    cy_mutex_lock(&m->s.mu);
    int len = check_queue_locked(&m->s);
    /* the queue's order is the model's order */
    cy_list *l = m->s.queue.next;
    for (int i = 0; i < m->qlen && i < len; i++, l = l->next)
        CHECK_MSG(node_of(l) == &m->w[m->q[i]], "queue position %d differs", i);
    cy_mutex_unlock(&m->s.mu);
    CHECK_EQ(len, m->qlen);
    for (int k = 0; k < SLOTS; k++) {
        if (m->st[k] == QUEUED)
            CHECK_EQ(ready(&m->w[k]), 0);
        else if (m->st[k] == SERVED)
            CHECK_EQ(ready(&m->w[k]), 1);
    }
    if (cytest_failures() != f0)
        cytest_note("after step %ld (%s)", step, op);
}

static void test_model(void)
{
    cytest_rng rng;
    cytest_rng_init(&rng, 1100);
    long steps = cytest_n(300000);
    struct model *m = calloc(1, sizeof *m);
    long ops[6] = {0};
    for (long step = 0; step < steps && cytest_failures() == 0; step++) {
        if (step % 20000 == 0) { /* a fresh semaphore now and then */
            if (step > 0)
                cy_wsem_reinit(&m->s); /* out of the fork registry before it goes */
            memset(m, 0, sizeof *m);
            m->size = 1 + (int64_t)cytest_below(&rng, 16);
            cy_wsem_init(&m->s, m->size);
        }
        const char *op = "?";
        int which = (int)cytest_below(&rng, 6);
        ops[which]++;
        switch (which) {
        case 0: { /* try_acquire */
            op = "try_acquire";
            int64_t n = (int64_t)cytest_below(&rng, (uint64_t)m->size + 1);
            int expect = m->qlen == 0 && m->size - m->held >= n;
            CHECK_EQ(cy_wsem_try_acquire(&m->s, n), expect);
            if (expect) {
                m->held += n;
                model_hold(m, n);
            }
            break;
        }
        case 1:
        case 2: { /* enqueue into a free slot */
            op = "enqueue";
            int k = (int)cytest_below(&rng, SLOTS);
            if (m->st[k] != FREE)
                break;
            int64_t n = (int64_t)cytest_below(&rng, (uint64_t)m->size + 1);
            int now = m->qlen == 0 && m->size - m->held >= n;
            CHECK_EQ(cy_wsem_enqueue(&m->s, n, &m->w[k]), now);
            if (now) {
                m->held += n;
                model_hold(m, n);
            } else {
                m->n[k] = n;
                m->st[k] = QUEUED;
                m->q[m->qlen++] = k;
            }
            break;
        }
        case 3: { /* release a holding (or a served waiter's units) */
            op = "release";
            int64_t n;
            int k = (int)cytest_below(&rng, SLOTS);
            if (m->st[k] == SERVED && cytest_below(&rng, 2)) {
                n = m->n[k];
                m->st[k] = FREE; /* its owner returned and released */
            } else if (m->nhold > 0) {
                int i = (int)cytest_below(&rng, (uint64_t)m->nhold);
                n = m->holdings[i];
                m->holdings[i] = m->holdings[--m->nhold];
            } else {
                CHECK_EQ(cy_wsem_release(&m->s, m->held + 1), -1);
                break;
            }
            CHECK_EQ(cy_wsem_release(&m->s, n), 0);
            m->held -= n;
            model_serve(m);
            break;
        }
        case 4: { /* cancel (timeout) a queued or served waiter */
            op = "cancel";
            int k = (int)cytest_below(&rng, SLOTS);
            if (m->st[k] == FREE)
                break;
            if (m->st[k] == QUEUED && cytest_below(&rng, 4) == 0)
                CHECK_EQ(wait1(&m->s, &m->w[k], cy_now_ns() - 1), CY_TIMEOUT);
            int served = m->st[k] == SERVED;
            CHECK_EQ(cy_wsem_cancel(&m->s, &m->w[k]), served);
            if (served) {
                model_hold(m, m->n[k]); /* the caller keeps them */
            } else {
                int pos = 0;
                while (pos < m->qlen && m->q[pos] != k)
                    pos++;
                CHECK(pos < m->qlen);
                for (int i = pos; i + 1 < m->qlen; i++)
                    m->q[i] = m->q[i + 1];
                m->qlen--;
                if (pos == 0)
                    model_serve(m);
            }
            m->st[k] = FREE;
            break;
        }
        default: /* release more than held: refused */
            op = "over-release";
            CHECK_EQ(cy_wsem_release(&m->s, m->held + 1 + (int64_t)cytest_below(&rng, 3)), -1);
            break;
        }
        model_compare(m, step, op);
    }
    cy_wsem_reinit(&m->s);
    CHECK_EQ(cy_fork_registered(), 0);
    free(m);
    cytest_note("%ld random operations checked against the model (try %ld, enqueue %ld, release %ld, "
                "cancel %ld)",
                steps, ops[0], ops[1] + ops[2], ops[3], ops[4]);
}

/* ---------------------------------------------------------- multi-thread */

struct hammer {
    cy_wsem s;
    int64_t size;
    int threads;
    long iters;
    _Atomic int64_t inside;
    _Atomic int workers_left;
    _Atomic long ok, timeouts, polls_failed, cancelled_served, bad, checks;
};

static void hammer_thread(void *ctx, int id)
{
    struct hammer *h = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 1200);
    if (id == h->threads) { /* the checker */
        while (atomic_load(&h->workers_left) > 0) {
            check_queue(&h->s);
            atomic_fetch_add_explicit(&h->checks, 1, CY_RELAXED);
            cytest_sleep_us(50);
        }
        return;
    }
    for (long i = 0; i < h->iters; i++) {
        int64_t n = 1 + (int64_t)cytest_below(&rng, (uint64_t)h->size);
        if (cytest_below(&rng, 8) == 0)
            n = h->size; /* whole-semaphore requests: the starvation case */
        int kind = (int)cytest_below(&rng, 10);
        int got;
        if (kind == 0) { /* timeout=0 */
            got = cyw_wsem_acquire(&h->s, n, 0, 1);
            if (!got)
                atomic_fetch_add_explicit(&h->polls_failed, 1, CY_RELAXED);
        } else if (kind <= 3) { /* short timeout racing the releases */
            got = cyw_wsem_acquire(&h->s, n, cytest_deadline(1e-6 * (double)cytest_below(&rng, 300)), 0);
            if (!got)
                atomic_fetch_add_explicit(&h->timeouts, 1, CY_RELAXED);
        } else if (kind == 4) {
            /* interrupted: a signal handler raised while queued (pyx: the
             * op's leave(keep = 0), which gives the units back if they were
             * granted meanwhile); every other time by hand, counted */
            got = 0;
            if (!cy_wsem_try_acquire(&h->s, n)) {
                cy_wsem_waiter w;
                if (!cy_wsem_enqueue(&h->s, n, &w)) {
                    (void)wait1(&h->s, &w, cytest_deadline(1e-6 * (double)cytest_below(&rng, 200)));
                    if (i & 1) {
                        CHECK_EQ(cy_wsem_wait_op.leave(&h->s, (uintptr_t)&w, 0), 0);
                    } else if (cy_wsem_cancel(&h->s, &w)) {
                        atomic_fetch_add_explicit(&h->cancelled_served, 1, CY_RELAXED);
                        CHECK_EQ(cy_wsem_release(&h->s, n), 0);
                    }
                    continue;
                }
            }
            got = 1;
        } else { /* long deadline: must succeed */
            got = cyw_wsem_acquire(&h->s, n, cytest_deadline(20), 0);
            if (!got)
                atomic_fetch_add(&h->bad, 1);
        }
        if (!got)
            continue;
        atomic_fetch_add_explicit(&h->ok, 1, CY_RELAXED);
        int64_t in = atomic_fetch_add(&h->inside, n) + n;
        if (in > h->size)
            atomic_fetch_add(&h->bad, 1);
        cytest_spin((unsigned)cytest_below(&rng, 300));
        if ((i & 63) == 0)
            sched_yield();
        atomic_fetch_sub(&h->inside, n);
        if (cy_wsem_release(&h->s, n) != 0)
            atomic_fetch_add(&h->bad, 1);
    }
    atomic_fetch_sub(&h->workers_left, 1);
}

static void run_hammer(int threads, int64_t size, long iters)
{
    struct hammer h;
    memset(&h, 0, sizeof h);
    cy_wsem_init(&h.s, size);
    h.size = size;
    h.threads = threads;
    h.iters = iters;
    atomic_store(&h.workers_left, threads);
    cytest_parallel(threads + 1, hammer_thread, &h);
    CHECK_EQ(atomic_load(&h.bad), 0);
    CHECK_EQ(cy_wsem_held(&h.s), 0);
    CHECK_EQ(cy_wsem_waiters(&h.s), 0);
    CHECK(cy_list_empty(&h.s.queue));
    CHECK_EQ(atomic_load(&h.s.state), 0);
    cytest_note("%d threads x %ld ops, size %lld, weights 1..%lld: %ld acquired, %ld timed out, %ld polls "
                "failed, %ld granted-then-cancelled, %ld queue checks",
                threads, iters, (long long)size, (long long)size, atomic_load(&h.ok), atomic_load(&h.timeouts),
                atomic_load(&h.polls_failed), atomic_load(&h.cancelled_served), atomic_load(&h.checks));
}

static void test_hammer(void) { run_hammer(16, 10, cytest_n(100000)); }
static void test_hammer_32(void) { run_hammer(32, 5, cytest_n(20000)); }

/* ------------------------------------------------------ FIFO across threads */

/* The main thread holds every unit; threads queue one after another (each
 * wants the whole semaphore, so only one holds at a time); they must then be
 * served in exactly that order. */
struct fifo {
    cy_wsem s;
    int threads;
    _Atomic int next_to_queue;
    _Atomic long served_order;
    int order[64];
    _Atomic long bad;
};

static void fifo_thread(void *ctx, int id)
{
    struct fifo *f = ctx;
    while (atomic_load(&f->next_to_queue) != id)
        sched_yield();
    cy_wsem_waiter w;
    int now = cy_wsem_enqueue(&f->s, f->s.size, &w);
    CHECK_EQ(now, 0);
    atomic_store(&f->next_to_queue, id + 1); /* the main thread checks the queue length */
    if (now)
        return;
    int st = cyw_wait(&cy_wsem_wait_op, &f->s, (uintptr_t)&w, cytest_deadline(20), NULL);
    if (st != CY_OK && !cy_wsem_wait_op.leave(&f->s, (uintptr_t)&w, 1)) {
        atomic_fetch_add(&f->bad, 1);
        return;
    }
    long pos = atomic_fetch_add(&f->served_order, 1);
    f->order[pos] = id; /* only the holder writes: TSan checks the hand-off */
    CHECK_EQ(cy_wsem_release(&f->s, f->s.size), 0);
}

static void fifo_round(void *ctx, int id)
{
    struct fifo *f = ctx;
    if (id < f->threads) {
        fifo_thread(ctx, id);
        return;
    }
    /* the releaser: once everyone is queued, in order, let them through */
    int64_t end = cytest_now_ns() + 20000000000LL;
    while (atomic_load(&f->next_to_queue) < f->threads && cytest_now_ns() < end)
        sched_yield();
    CHECK_EQ(cy_wsem_waiters(&f->s), f->threads);
    check_queue(&f->s);
    CHECK_EQ(cy_wsem_release(&f->s, f->s.size), 0);
}

static void test_fifo_across_threads(void)
{
    long rounds = cytest_n(200);
    for (long round = 0; round < rounds && cytest_failures() == 0; round++) {
        struct fifo f;
        memset(&f, 0, sizeof f);
        f.threads = 24;
        cy_wsem_init(&f.s, 4);
        CHECK_EQ(cy_wsem_try_acquire(&f.s, 4), 1);
        atomic_store(&f.next_to_queue, 0);
        cytest_parallel(f.threads + 1, fifo_round, &f);
        CHECK_EQ(atomic_load(&f.bad), 0);
        CHECK_EQ(atomic_load(&f.served_order), f.threads);
        for (int i = 0; i < f.threads; i++)
            CHECK_MSG(f.order[i] == i, "round %ld: position %d served thread %d", round, i, f.order[i]);
        CHECK_EQ(atomic_load(&f.s.state), 0);
    }
    cytest_note("%ld rounds x 24 threads queued in a known order, served in that order", rounds);
}

static const cytest_case cases[] = {
    {"fast_paths", test_fast_paths, NULL},
    {"queue_fifo", test_queue_fifo, NULL},
    {"model", test_model, NULL},
    {"hammer", test_hammer, NULL},
    {"hammer_32", test_hammer_32, NULL},
    {"fifo_across_threads", test_fifo_across_threads, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "wsem", cases, sizeof cases / sizeof cases[0]);
}
