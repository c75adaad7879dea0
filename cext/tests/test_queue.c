/* test_queue.c - cy_queue: the ring (growth, wrap, bounds), task_done/join,
 * shutdown, maxsize changes, FIFO of waiters, and producers/consumers with
 * short timeouts racing the hand-offs (every value exactly once). */
#include "cytest.h"
#include "cy_queue.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define V(i) ((void *)(uintptr_t)(i))
#define I(v) ((long)(uintptr_t)(v))

/* The pyx's put and get: the fast path, then cy_wait (which re-waits after
 * CY_INTR on its own when on_intr is NULL). */
static int q_put(cy_queue *q, void *v, int64_t deadline)
{
    int r = cy_queue_try_put(q, v);
    if (r != CY_QUEUE_BLOCK || deadline == 0)
        return r;
    cy_queue_call c;
    cy_queue_call_init(&c, q, CY_QUEUE_PUT, v);
    return cy_wait(&cy_queue_wait_op, &c, 0, deadline, NULL, NULL, NULL);
}

static int q_get(cy_queue *q, void **v, int64_t deadline)
{
    int r = cy_queue_try_get(q, v);
    if (r != CY_QUEUE_BLOCK || deadline == 0)
        return r;
    cy_queue_call c;
    cy_queue_call_init(&c, q, CY_QUEUE_GET, NULL);
    r = cy_wait(&cy_queue_wait_op, &c, 0, deadline, NULL, NULL, NULL);
    if (r == CY_OK)
        *v = c.item;
    return r;
}

static int q_join(cy_queue *q, int64_t deadline)
{
    cy_queue_call c;
    cy_queue_call_init(&c, q, CY_QUEUE_JOIN, NULL);
    return cy_wait(&cy_queue_wait_op, &c, 0, deadline, NULL, NULL, NULL);
}

static int queues_empty(cy_queue *q)
{
    cy_mutex_lock(&q->mu);
    int e = cy_list_empty(&q->getq) && cy_list_empty(&q->putq) && cy_list_empty(&q->joinq);
    cy_mutex_unlock(&q->mu);
    return e;
}

static void test_single_thread(void)
{
    cy_queue q;
    void *v;
    CHECK_EQ(cy_queue_init(&q, 0), 0);
    /* unbounded: grows, wrapping around while it does */
    long next_out = 0;
    for (long i = 0; i < 5000; i++) {
        CHECK_EQ(cy_queue_try_put(&q, V(i)), 0);
        if (i % 3 == 0) {
            CHECK_EQ(cy_queue_try_get(&q, &v), 0);
            CHECK_EQ(I(v), next_out++);
        }
    }
    CHECK_EQ(cy_queue_unfinished(&q), 5000);
    while (cy_queue_try_get(&q, &v) == 0)
        CHECK_EQ(I(v), next_out++);
    CHECK_EQ(next_out, 5000);
    CHECK_EQ(cy_queue_len(&q), 0);
    CHECK_EQ(cy_queue_try_get(&q, &v), CY_QUEUE_BLOCK);
    for (long i = 0; i < 5000; i++)
        CHECK_EQ(cy_queue_task_done(&q), 0);
    CHECK_EQ(cy_queue_task_done(&q), CY_QUEUE_NEGATIVE);
    CHECK_EQ(cy_queue_unfinished(&q), 0);
    CHECK_EQ(q_join(&q, cytest_deadline(1)), CY_OK);
    cy_queue_destroy(&q);

    /* bounded: a fixed ring */
    CHECK_EQ(cy_queue_init(&q, 3), 0);
    CHECK_EQ(q.cap, 3);
    for (long i = 0; i < 3; i++)
        CHECK_EQ(cy_queue_try_put(&q, V(i)), 0);
    CHECK(cy_queue_full(&q));
    CHECK_EQ(cy_queue_try_put(&q, V(9)), CY_QUEUE_BLOCK);
    CHECK_EQ(q_put(&q, V(9), cytest_deadline(0.01)), CY_TIMEOUT);
    CHECK(queues_empty(&q));
    CHECK_EQ(q_join(&q, cytest_deadline(0.01)), CY_TIMEOUT);
    CHECK(queues_empty(&q));
    /* maxsize shrinks below the length: full until below it */
    CHECK_EQ(cy_queue_set_maxsize(&q, 1), 0);
    CHECK_EQ(cy_queue_try_get(&q, &v), 0);
    CHECK_EQ(cy_queue_try_put(&q, V(9)), CY_QUEUE_BLOCK);
    CHECK_EQ(cy_queue_set_maxsize(&q, 0), 0); /* unbounded now: grows past the ring */
    for (long i = 3; i < 10; i++)
        CHECK_EQ(cy_queue_try_put(&q, V(i)), 0);
    CHECK_EQ(q.cap >= 9, 1);
    for (long i = 1; i < 10; i++) {
        CHECK_EQ(cy_queue_try_get(&q, &v), 0);
        CHECK_EQ(I(v), i);
    }
    CHECK_EQ(q.cap == 3, 0);
    cy_queue_destroy(&q);

    /* a huge bound: not preallocated */
    CHECK_EQ(cy_queue_init(&q, INT64_C(1) << 40), 0);
    CHECK_EQ(q.cap, CY_QUEUE_MIN_CAP);
    cy_queue_destroy(&q);
    CHECK_EQ(cy_queue_init(&q, 0), 0);
    CHECK_EQ(cy_queue_reserve(&q, 100), 0);
    CHECK_EQ(q.cap, 100);
    cy_queue_destroy(&q);
}

static void test_shutdown(void)
{
    cy_queue q;
    void *v;
    size_t first;
    CHECK_EQ(cy_queue_init(&q, 4), 0);
    for (long i = 0; i < 4; i++)
        CHECK_EQ(cy_queue_try_put(&q, V(i)), 0);
    CHECK_EQ(cy_queue_try_get(&q, &v), 0);
    CHECK_EQ(cy_queue_try_put(&q, V(4)), 0); /* wraps */
    CHECK_EQ(cy_queue_shutdown(&q, 0, &first), 0);
    CHECK(cy_queue_is_shutdown(&q));
    CHECK_EQ(cy_queue_try_put(&q, V(5)), CY_QUEUE_SHUTDOWN);
    CHECK_EQ(cy_queue_try_get(&q, &v), 0); /* still drains */
    CHECK_EQ(I(v), 1);
    size_t n = cy_queue_shutdown(&q, 1, &first);
    CHECK_EQ(n, 3);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(I(cy_queue_removed(&q, first, i)), (long)i + 2);
    CHECK_EQ(cy_queue_len(&q), 0);
    CHECK_EQ(cy_queue_unfinished(&q), 2); /* 5 put, 3 removed: the 2 got are unfinished */
    CHECK_EQ(cy_queue_try_get(&q, &v), CY_QUEUE_SHUTDOWN);
    CHECK_EQ(q_get(&q, &v, cytest_deadline(1)), CY_QUEUE_SHUTDOWN);
    CHECK_EQ(cy_queue_task_done(&q), 0);
    CHECK_EQ(cy_queue_task_done(&q), 0);
    CHECK_EQ(cy_queue_task_done(&q), CY_QUEUE_NEGATIVE);
    cy_queue_destroy(&q);
}

/* ------------------------------------------- waiters woken by shutdown */

struct woken {
    cy_queue empty, full, busy;
    _Atomic long shut, joined, started;
};

static void woken_thread(void *ctx, int id)
{
    struct woken *w = ctx;
    void *v;
    atomic_fetch_add(&w->started, 1);
    switch (id % 3) {
    case 0:
        if (q_get(&w->empty, &v, cytest_deadline(20)) == CY_QUEUE_SHUTDOWN)
            atomic_fetch_add(&w->shut, 1);
        break;
    case 1:
        if (q_put(&w->full, V(id), cytest_deadline(20)) == CY_QUEUE_SHUTDOWN)
            atomic_fetch_add(&w->shut, 1);
        break;
    default:
        if (q_join(&w->busy, cytest_deadline(20)) == CY_OK)
            atomic_fetch_add(&w->joined, 1);
        break;
    }
}

static void woken_main(void *ctx, int id)
{
    struct woken *w = ctx;
    if (id < 12) {
        woken_thread(ctx, id);
        return;
    }
    cytest_await_at_least(&w->started, 12, 20);
    cytest_sleep_us(20000); /* let them queue: not observable, only helps the test bite */
    size_t first;
    CHECK_EQ(cy_queue_shutdown(&w->empty, 1, &first), 0);
    CHECK_EQ(cy_queue_shutdown(&w->full, 1, &first), 1);
    CHECK_EQ(cy_queue_shutdown(&w->busy, 1, &first), 1);
}

static void test_shutdown_wakes_every_waiter(void)
{
    struct woken w;
    memset(&w, 0, sizeof w);
    CHECK_EQ(cy_queue_init(&w.empty, 0), 0);
    CHECK_EQ(cy_queue_init(&w.full, 1), 0);
    CHECK_EQ(cy_queue_init(&w.busy, 0), 0);
    CHECK_EQ(cy_queue_try_put(&w.full, V(1)), 0);
    CHECK_EQ(cy_queue_try_put(&w.busy, V(1)), 0);
    cytest_parallel(13, woken_main, &w);
    CHECK_EQ(atomic_load(&w.shut), 8);
    CHECK_EQ(atomic_load(&w.joined), 4);
    CHECK(queues_empty(&w.empty) && queues_empty(&w.full) && queues_empty(&w.busy));
    cy_queue_destroy(&w.empty);
    cy_queue_destroy(&w.full);
    cy_queue_destroy(&w.busy);
}

/* --------------------------------------------- producers and consumers */

struct pc {
    cy_queue q;
    int producers, consumers;
    long per;
    _Atomic unsigned char *seen;
    _Atomic long received, timeouts, bad;
};

static void pc_thread(void *ctx, int id)
{
    struct pc *p = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 4200);
    if (id < p->producers) {
        for (long i = 0; i < p->per; i++) {
            void *v = V(id * p->per + i);
            int r;
            /* short timeouts race the getters' hand-offs; retried until in */
            while ((r = q_put(&p->q, v, cytest_below(&rng, 4) == 0
                                            ? cytest_deadline(1e-6 * (double)cytest_below(&rng, 100))
                                            : cytest_deadline(20))) == CY_TIMEOUT)
                atomic_fetch_add_explicit(&p->timeouts, 1, CY_RELAXED);
            if (r != CY_OK)
                atomic_fetch_add(&p->bad, 1);
        }
        return;
    }
    for (;;) {
        void *v;
        int r = q_get(&p->q, &v, cytest_below(&rng, 4) == 0
                                     ? cytest_deadline(1e-6 * (double)cytest_below(&rng, 100))
                                     : cytest_deadline(20));
        if (r == CY_TIMEOUT) {
            atomic_fetch_add_explicit(&p->timeouts, 1, CY_RELAXED);
            continue;
        }
        if (r == CY_QUEUE_SHUTDOWN)
            return;
        if (r != CY_OK) {
            atomic_fetch_add(&p->bad, 1);
            return;
        }
        long i = I(v);
        if (i < 0 || i >= p->producers * p->per || atomic_fetch_add(&p->seen[i], 1) != 0)
            atomic_fetch_add(&p->bad, 1);
        CHECK_EQ(cy_queue_task_done(&p->q), 0);
        if (atomic_fetch_add(&p->received, 1) + 1 == p->producers * p->per) {
            size_t first;
            CHECK_EQ(q_join(&p->q, cytest_deadline(20)), CY_OK);
            CHECK_EQ(cy_queue_shutdown(&p->q, 0, &first), 0); /* lets the other consumers go */
        }
    }
}

static void run_pc(int producers, int consumers, int64_t maxsize, long per)
{
    struct pc p;
    memset(&p, 0, sizeof p);
    CHECK_EQ(cy_queue_init(&p.q, maxsize), 0);
    p.producers = producers;
    p.consumers = consumers;
    p.per = per;
    p.seen = calloc((size_t)(producers * per), 1);
    cytest_parallel(producers + consumers, pc_thread, &p);
    CHECK_EQ(atomic_load(&p.bad), 0);
    CHECK_EQ(atomic_load(&p.received), producers * per);
    for (long i = 0; i < producers * per; i++)
        CHECK_MSG(p.seen[i] == 1, "value %ld received %d times", i, (int)p.seen[i]);
    CHECK_EQ(cy_queue_unfinished(&p.q), 0);
    CHECK_EQ(cy_queue_len(&p.q), 0);
    CHECK(queues_empty(&p.q));
    cytest_note("%d producers x %ld -> %d consumers, maxsize %lld: %ld timeouts raced the hand-offs",
                producers, per, consumers, (long long)maxsize, atomic_load(&p.timeouts));
    free((void *)p.seen);
    cy_queue_destroy(&p.q);
}

static void test_pc_bounded(void) { run_pc(4, 4, 8, cytest_n(200000)); }
static void test_pc_one(void) { run_pc(8, 8, 1, cytest_n(50000)); }
static void test_pc_unbounded(void) { run_pc(4, 4, 0, cytest_n(200000)); }

/* --------------------------------------------- FIFO of waiting getters */

struct fifo {
    cy_queue q;
    int threads;
    long got[32];
};

static long getq_len(cy_queue *q)
{
    long n = 0;
    cy_mutex_lock(&q->mu);
    for (cy_list *l = q->getq.next; l != &q->getq; l = l->next)
        n++;
    cy_mutex_unlock(&q->mu);
    return n;
}

static void await_getq(cy_queue *q, long n)
{
    int64_t end = cytest_now_ns() + 20000000000LL;
    while (getq_len(q) != n && cytest_now_ns() < end)
        sched_yield();
}

static void fifo_thread(void *ctx, int id)
{
    struct fifo *f = ctx;
    void *v = NULL;
    if (id == f->threads) { /* the putter, once every getter is in the line */
        await_getq(&f->q, f->threads);
        for (long i = 0; i < f->threads; i++)
            CHECK_EQ(cy_queue_try_put(&f->q, V(i)), 0);
        return;
    }
    await_getq(&f->q, id); /* the ones before us are in the line */
    CHECK_EQ(q_get(&f->q, &v, cytest_deadline(20)), CY_OK);
    f->got[id] = I(v);
}

static void test_fifo_getters(void)
{
    long rounds = cytest_n(200), in_order = 0;
    for (long round = 0; round < rounds && cytest_failures() == 0; round++) {
        struct fifo f;
        memset(&f, 0, sizeof f);
        f.threads = 8;
        CHECK_EQ(cy_queue_init(&f.q, 0), 0);
        cytest_parallel(f.threads + 1, fifo_thread, &f);
        long sum = 0, ordered = 1;
        for (int i = 0; i < f.threads; i++) {
            sum += f.got[i];
            ordered &= f.got[i] == i;
        }
        CHECK_EQ(sum, 28); /* each value once */
        in_order += ordered;
        cy_queue_destroy(&f.q);
    }
    /* The fallback backend ends a sleep every slice with CY_INTR, and a
     * getter that wakes so re-queues at the back: strict order on futex only. */
    if (strcmp(cy_park_backend(), "futex") == 0)
        CHECK_MSG(in_order == rounds, "%ld of %ld rounds in FIFO order", in_order, rounds);
    cytest_note("%ld of %ld rounds of 8 queued getters served in their order", in_order, rounds);
}

static const cytest_case cases[] = {
    {"single_thread", test_single_thread, NULL},
    {"shutdown", test_shutdown, NULL},
    {"shutdown_wakes_every_waiter", test_shutdown_wakes_every_waiter, NULL},
    {"pc_bounded", test_pc_bounded, NULL},
    {"pc_one", test_pc_one, NULL},
    {"pc_unbounded", test_pc_unbounded, NULL},
    {"fifo_getters", test_fifo_getters, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "queue", cases, sizeof cases / sizeof cases[0]);
}
