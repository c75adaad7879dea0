/* test_rwmutex.c - cy_rwmutex: the fast paths and their error returns, Go's
 * rules step by step (a waiting writer blocks new readers; the readers
 * waiting at a writer's unlock all get in before the next writer; the last
 * reader hands the lock to a writer), timeouts and cancellations that leave
 * no trace (a writer that gives up lets the readers behind it in), and many
 * threads with random modes, deadlines and cancellations while every
 * critical section checks the exclusion rules.
 *
 * The waits are driven by cy_wait() with cy_rw_wait_op, as _block() in
 * src/cysync/_cysync.pyx drives them (cywait.h: fast path, enqueue, wait,
 * leave). */
#include "cytest.h"
#include "cywait.h"

#include <stdlib.h>
#include <string.h>

static uint64_t state(cy_rwmutex *rw) { return atomic_load(&rw->state); }

/* rlock (writer == 0) or lock, as the Cython layer takes it (cywait.h). */
static int rw_take(cy_rwmutex *rw, int writer, int64_t deadline, cy_cancel *c)
{
    return cyw_rw_lock_ctx(rw, writer, deadline, 0, c);
}

static void rw_give(cy_rwmutex *rw, int writer)
{
    CHECK_EQ(writer ? cy_rw_unlock(rw) : cy_rw_runlock(rw), 0);
}

/* Polls (yielding) until `n` readers (writers != 0: writers) wait. */
static int await_waiting(cy_rwmutex *rw, int writers, uint32_t n)
{
    int64_t end = cytest_deadline(10);
    while (cy_rw_waiting(rw, writers) < n) {
        if (cy_now_ns() > end)
            return 0;
        cytest_sleep_us(100);
    }
    return 1;
}

/* The idle lock: no holder, nobody queued. */
static void check_idle(cy_rwmutex *rw)
{
    CHECK_EQ(state(rw), 0);
    CHECK_EQ(cy_rw_waiting(rw, 0), 0);
    CHECK_EQ(cy_rw_waiting(rw, 1), 0);
    CHECK(cy_list_empty(&rw->rq));
    CHECK(cy_list_empty(&rw->wq));
}

/* ------------------------------------------------------------ single thread */

static void test_fast_paths(void)
{
    cy_rwmutex rw;
    cy_rw_init(&rw);
    check_idle(&rw);
    /* unlocking what is not locked fails and changes nothing */
    CHECK_EQ(cy_rw_unlock(&rw), -1);
    CHECK_EQ(cy_rw_runlock(&rw), -1);
    check_idle(&rw);

    CHECK_EQ(cy_rw_try_rlock(&rw), 1);
    CHECK_EQ(cy_rw_try_rlock(&rw), 1);
    CHECK_EQ(cy_rw_try_rlock(&rw), 1);
    CHECK_EQ(cy_rw_readers(&rw), 3);
    CHECK(!cy_rw_writer(&rw));
    CHECK_EQ(cy_rw_try_lock(&rw), 0);
    CHECK_EQ(cy_rw_unlock(&rw), -1); /* readers, no writer */
    CHECK_EQ(cy_rw_readers(&rw), 3);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(cy_rw_runlock(&rw), -1);
    check_idle(&rw);

    CHECK_EQ(cy_rw_try_lock(&rw), 1);
    CHECK(cy_rw_writer(&rw));
    CHECK_EQ(state(&rw), CY_RW_WRITER);
    CHECK_EQ(cy_rw_try_lock(&rw), 0);
    CHECK_EQ(cy_rw_try_rlock(&rw), 0);
    CHECK_EQ(cy_rw_runlock(&rw), -1); /* a writer, no reader */
    CHECK_EQ(state(&rw), CY_RW_WRITER);
    CHECK_EQ(cy_rw_unlock(&rw), 0);
    CHECK_EQ(cy_rw_unlock(&rw), -1);
    check_idle(&rw);

    /* Not owned by a thread, and the slow entry takes a free lock at once. */
    cy_rw_waiter node;
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &node), 1);
    CHECK_EQ(state(&rw), CY_RW_WRITER);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &node), 0); /* queued behind the writer */
    CHECK_EQ(state(&rw), CY_RW_WRITER | CY_RW_QUEUED);
    CHECK_EQ(cy_rw_waiting(&rw, 0), 1);
    CHECK_EQ(cy_rw_unlock(&rw), 0); /* slow: admits the reader */
    CHECK_EQ(atomic_load(&node.ready), 1);
    CHECK_EQ(state(&rw), CY_RW_READER);
    CHECK_EQ(cy_rw_wait(&rw, &node, cy_now_ns() - 1, NULL), CY_OK);
    CHECK_EQ(cy_rw_leave(&rw, &node, 1), 1); /* granted: kept */
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &node), 1); /* a second reader, at once */
    CHECK_EQ(cy_rw_readers(&rw), 2);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    check_idle(&rw);
}

/* Queues driven step by step from one thread: the nodes wait in this frame
 * and the grants are read off their ready words. */
static void test_rules_step_by_step(void)
{
    cy_rwmutex rw;
    cy_rw_init(&rw);
    cy_rw_waiter w1, w2, r1, r2, r3;

    /* readers hold; a writer queues: new readers queue behind it */
    CHECK_EQ(cy_rw_try_rlock(&rw), 1);
    CHECK_EQ(cy_rw_try_rlock(&rw), 1);
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &w1), 0);
    CHECK_EQ(cy_rw_try_rlock(&rw), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r1), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &w2), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r2), 0);
    CHECK_EQ(state(&rw), 2 * CY_RW_READER | CY_RW_QUEUED);
    /* the first reader out is not the last: nothing moves */
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(atomic_load(&w1.ready), 0);
    /* the last reader out hands the lock to the first writer */
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(atomic_load(&w1.ready), 1);
    CHECK_EQ(state(&rw), CY_RW_WRITER | CY_RW_QUEUED);
    CHECK_EQ(cy_rw_waiting(&rw, 1), 1);
    CHECK_EQ(cy_rw_waiting(&rw, 0), 2);
    /* a reader arriving now queues too */
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r3), 0);
    /* the writer's unlock admits every queued reader before w2 */
    CHECK_EQ(cy_rw_unlock(&rw), 0);
    CHECK_EQ(atomic_load(&r1.ready), 1);
    CHECK_EQ(atomic_load(&r2.ready), 1);
    CHECK_EQ(atomic_load(&r3.ready), 1);
    CHECK_EQ(atomic_load(&w2.ready), 0);
    CHECK_EQ(state(&rw), 3 * CY_RW_READER | CY_RW_QUEUED);
    CHECK_EQ(cy_rw_try_rlock(&rw), 0); /* w2 waits: still no newcomer */
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(atomic_load(&w2.ready), 0);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(atomic_load(&w2.ready), 1);
    CHECK_EQ(state(&rw), CY_RW_WRITER); /* queues empty: QUEUED cleared */
    /* writer to writer: a direct hand-off */
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &w1), 0);
    CHECK_EQ(cy_rw_unlock(&rw), 0);
    CHECK_EQ(atomic_load(&w1.ready), 1);
    CHECK_EQ(state(&rw), CY_RW_WRITER);
    CHECK_EQ(cy_rw_unlock(&rw), 0);
    check_idle(&rw);
}

static void test_leave_leaves_no_trace(void)
{
    cy_rwmutex rw;
    cy_rw_init(&rw);
    cy_rw_waiter w1, w2, r1, r2;

    /* a writer that gives up behind readers lets the readers behind it in */
    CHECK_EQ(cy_rw_try_rlock(&rw), 1);
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &w1), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r1), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r2), 0);
    CHECK_EQ(cy_rw_wait(&rw, &w1, cy_now_ns() - 1, NULL), CY_TIMEOUT);
    CHECK_EQ(cy_rw_leave(&rw, &w1, 1), 0);
    CHECK_EQ(atomic_load(&r1.ready), 1);
    CHECK_EQ(atomic_load(&r2.ready), 1);
    CHECK_EQ(state(&rw), 3 * CY_RW_READER); /* QUEUED cleared */
    CHECK_EQ(cy_rw_try_rlock(&rw), 1);      /* newcomers too */
    for (int i = 0; i < 4; i++)
        CHECK_EQ(cy_rw_runlock(&rw), 0);
    check_idle(&rw);

    /* ...but not while another writer still waits */
    CHECK_EQ(cy_rw_try_rlock(&rw), 1);
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &w1), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &w2), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r1), 0);
    CHECK_EQ(cy_rw_leave(&rw, &w1, 0), 0);
    CHECK_EQ(atomic_load(&r1.ready), 0);
    CHECK_EQ(cy_rw_leave(&rw, &w2, 0), 0);
    CHECK_EQ(atomic_load(&r1.ready), 1);
    CHECK_EQ(state(&rw), 2 * CY_RW_READER);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    check_idle(&rw);

    /* a writer that gives up behind a writer changes nothing for the readers */
    CHECK_EQ(cy_rw_try_lock(&rw), 1);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r1), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &w1), 0);
    CHECK_EQ(cy_rw_leave(&rw, &w1, 0), 0);
    CHECK_EQ(atomic_load(&r1.ready), 0);
    CHECK_EQ(state(&rw), CY_RW_WRITER | CY_RW_QUEUED);
    /* a reader that gives up */
    CHECK_EQ(cy_rw_leave(&rw, &r1, 0), 0);
    CHECK_EQ(state(&rw), CY_RW_WRITER);
    CHECK_EQ(cy_rw_unlock(&rw), 0);
    check_idle(&rw);

    /* granted as it gave up: kept on a timeout, given back otherwise */
    CHECK_EQ(cy_rw_try_lock(&rw), 1);
    CHECK_EQ(cy_rw_enqueue(&rw, 1, &w1), 0);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r1), 0);
    CHECK_EQ(cy_rw_unlock(&rw), 0); /* r1 in; w1 waits for it */
    CHECK_EQ(cy_rw_leave(&rw, &r1, 0), 0); /* given back: w1 in */
    CHECK_EQ(atomic_load(&w1.ready), 1);
    CHECK_EQ(state(&rw), CY_RW_WRITER);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r1), 0);
    CHECK_EQ(cy_rw_leave(&rw, &w1, 0), 0); /* given back: r1 in */
    CHECK_EQ(atomic_load(&r1.ready), 1);
    CHECK_EQ(cy_rw_leave(&rw, &r1, 1), 1);
    CHECK_EQ(state(&rw), CY_RW_READER);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    check_idle(&rw);

    /* a fired token ends a wait, leaving the queue */
    cy_cancel c;
    cy_cancel_init(&c);
    cy_cancel_fire(&c);
    CHECK_EQ(cy_rw_try_rlock(&rw), 1);
    CHECK_EQ(cy_rw_enqueue(&rw, 0, &r2), 1); /* nobody waits: in */
    CHECK_EQ(rw_take(&rw, 1, cytest_deadline(10), &c), CY_CANCELLED);
    CHECK_EQ(state(&rw), 2 * CY_RW_READER);
    CHECK_EQ(cy_rw_waiting(&rw, 1), 0);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    CHECK_EQ(cy_rw_runlock(&rw), 0);
    check_idle(&rw);
}

/* ------------------------------------------------------------ with threads */

struct taker {
    cy_rwmutex *rw;
    int writer;
    double seconds;
    cy_cancel *c;
    int result;
    _Atomic int done;
};

static void *taker_main(void *p)
{
    struct taker *t = p;
    t->result = rw_take(t->rw, t->writer, cytest_deadline(t->seconds), t->c);
    atomic_store(&t->done, 1);
    return NULL;
}

static void start_taker(cytest_thread *th, struct taker *t, cy_rwmutex *rw, int writer, double seconds,
                        cy_cancel *c)
{
    t->rw = rw;
    t->writer = writer;
    t->seconds = seconds;
    t->c = c;
    t->result = -1;
    atomic_init(&t->done, 0);
    cytest_start(th, taker_main, t);
}

/* Writer preference and readers-before-the-next-writer, with sleeping threads. */
static void test_go_rules_threads(void)
{
    for (long round = 0; round < cytest_n(20); round++) {
        cy_rwmutex rw;
        cy_rw_init(&rw);
        cytest_thread tw1, tw2, tr[4];
        struct taker w1, w2, r[4];

        CHECK_EQ(cy_rw_try_rlock(&rw), 1);
        start_taker(&tw1, &w1, &rw, 1, 10, NULL);
        CHECK(await_waiting(&rw, 1, 1));
        CHECK_EQ(cy_rw_try_rlock(&rw), 0); /* a waiting writer blocks new readers */
        for (int i = 0; i < 4; i++)
            start_taker(&tr[i], &r[i], &rw, 0, 10, NULL);
        CHECK(await_waiting(&rw, 0, 4));
        CHECK_EQ(cy_rw_runlock(&rw), 0); /* the last reader: w1 in */
        cytest_join(&tw1);
        CHECK_EQ(w1.result, CY_OK);
        CHECK(cy_rw_writer(&rw));
        start_taker(&tw2, &w2, &rw, 1, 10, NULL);
        CHECK(await_waiting(&rw, 1, 1));
        CHECK_EQ(cy_rw_unlock(&rw), 0); /* all four readers before w2 */
        for (int i = 0; i < 4; i++) {
            cytest_join(&tr[i]);
            CHECK_EQ(r[i].result, CY_OK);
        }
        CHECK_EQ(cy_rw_readers(&rw), 4);
        CHECK_EQ(atomic_load(&w2.done), 0);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(cy_rw_runlock(&rw), 0);
        cytest_join(&tw2);
        CHECK_EQ(w2.result, CY_OK);
        CHECK_EQ(cy_rw_unlock(&rw), 0);
        check_idle(&rw);
    }
}

/* A writer that times out or is cancelled while readers wait behind it. */
static void test_giving_up_threads(void)
{
    for (long round = 0; round < cytest_n(40); round++) {
        int cancel = (int)(round & 1);
        cy_rwmutex rw;
        cy_cancel c;
        cy_rw_init(&rw);
        cy_cancel_init(&c);
        cytest_thread tw, tr[3];
        struct taker w, r[3];

        CHECK_EQ(cy_rw_try_rlock(&rw), 1);
        start_taker(&tw, &w, &rw, 1, cancel ? 10 : 0.05, cancel ? &c : NULL);
        CHECK(await_waiting(&rw, 1, 1));
        for (int i = 0; i < 3; i++)
            start_taker(&tr[i], &r[i], &rw, 0, 10, NULL);
        /* the readers queue behind the writer, unless it has given up already */
        int64_t end = cytest_deadline(10);
        while (cy_rw_waiting(&rw, 0) < 3 && !atomic_load(&w.done) && cy_now_ns() < end)
            cytest_sleep_us(100);
        if (cancel)
            cy_cancel_fire(&c);
        cytest_join(&tw);
        CHECK_EQ(w.result, cancel ? CY_CANCELLED : CY_TIMEOUT);
        for (int i = 0; i < 3; i++) { /* not left blocked behind it */
            cytest_join(&tr[i]);
            CHECK_EQ(r[i].result, CY_OK);
        }
        CHECK_EQ(state(&rw), 4 * CY_RW_READER);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(cy_rw_runlock(&rw), 0);
        check_idle(&rw);
    }
}

/* Writers keep getting in while readers overlap without pause. */
struct starve {
    cy_rwmutex rw;
    _Atomic int stop;
    _Atomic long reads;
};

static void starve_reader(void *ctx, int id)
{
    struct starve *s = ctx;
    (void)id;
    while (!atomic_load(&s->stop)) {
        if (rw_take(&s->rw, 0, cytest_deadline(10), NULL) != CY_OK) {
            CHECK(0);
            return;
        }
        atomic_fetch_add(&s->reads, 1);
        cytest_spin(200);
        rw_give(&s->rw, 0);
    }
}

static void starve_writer(void *ctx, int id)
{
    struct starve *s = ctx;
    if (id != 0) {
        starve_reader(ctx, id);
        return;
    }
    /* Once the readers overlap: without writer preference the lock would
     * never be free of readers for this writer. */
    CHECK(cytest_await_at_least(&s->reads, 100, 10));
    for (long i = 0; i < cytest_n(2000); i++) {
        CHECK_EQ(rw_take(&s->rw, 1, cytest_deadline(5), NULL), CY_OK);
        rw_give(&s->rw, 1);
    }
    atomic_store(&s->stop, 1);
}

static void test_no_writer_starvation(void)
{
    struct starve s;
    cy_rw_init(&s.rw);
    atomic_init(&s.stop, 0);
    atomic_init(&s.reads, 0);
    cytest_parallel(5, starve_writer, &s);
    check_idle(&s.rw);
}

/* Many threads, random modes, deadlines and cancellations. */
#define HAMMER_MAX 32

struct hammer {
    cy_rwmutex rw;
    long iters;
    _Atomic int writers_in, readers_in;
    _Atomic long bad, ok, timeouts, cancels;
    long plain; /* written by writers, read by readers: TSan checks the exclusion */
    /* The token of a thread's cancellable wait, for the firer; the slot's
     * mutex keeps the token alive while the firer fires it. */
    struct {
        cy_mutex mu;
        cy_cancel *c;
    } slots[HAMMER_MAX];
};

static void set_slot(struct hammer *h, int id, cy_cancel *c)
{
    cy_mutex_lock(&h->slots[id].mu);
    h->slots[id].c = c;
    cy_mutex_unlock(&h->slots[id].mu);
}

static void hammer_thread(void *ctx, int id)
{
    struct hammer *h = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 900);
    long seen = 0;
    for (long i = 0; i < h->iters; i++) {
        int writer = cytest_below(&rng, 4) == 0;
        uint64_t how = cytest_below(&rng, 10);
        int r;
        if (how == 0) {
            r = (writer ? cy_rw_try_lock(&h->rw) : cy_rw_try_rlock(&h->rw)) ? CY_OK : CY_TIMEOUT;
        } else if (how <= 2) {
            r = rw_take(&h->rw, writer, cytest_deadline(1e-6 * (double)cytest_below(&rng, 300)), NULL);
        } else if (how == 3) {
            cy_cancel c; /* a fresh context for each wait, fired by the firer thread */
            cy_cancel_init(&c);
            set_slot(h, id, &c);
            r = rw_take(&h->rw, writer, cytest_deadline(20), &c);
            set_slot(h, id, NULL);
        } else {
            r = rw_take(&h->rw, writer, cytest_deadline(20), NULL);
        }
        if (r == CY_TIMEOUT) {
            atomic_fetch_add_explicit(&h->timeouts, 1, CY_RELAXED);
            continue;
        }
        if (r == CY_CANCELLED) {
            atomic_fetch_add_explicit(&h->cancels, 1, CY_RELAXED);
            continue;
        }
        CHECK_EQ(r, CY_OK);
        atomic_fetch_add_explicit(&h->ok, 1, CY_RELAXED);
        if (writer) {
            int w = atomic_fetch_add(&h->writers_in, 1);
            if (w != 0 || atomic_load(&h->readers_in) != 0)
                atomic_fetch_add(&h->bad, 1);
            h->plain++;
            cytest_spin((unsigned)cytest_below(&rng, 100));
            atomic_fetch_sub(&h->writers_in, 1);
        } else {
            atomic_fetch_add(&h->readers_in, 1);
            if (atomic_load(&h->writers_in) != 0)
                atomic_fetch_add(&h->bad, 1);
            CHECK_LE(seen, h->plain); /* never goes back */
            seen = h->plain;
            cytest_spin((unsigned)cytest_below(&rng, 100));
            atomic_fetch_sub(&h->readers_in, 1);
        }
        rw_give(&h->rw, writer);
    }
}

struct firer {
    struct hammer *h;
    int threads;
    _Atomic int stop;
};

static void *firer_main(void *p)
{
    struct firer *f = p;
    cytest_rng rng;
    cytest_rng_init(&rng, 77);
    while (!atomic_load(&f->stop)) {
        cytest_sleep_us(50);
        int k = (int)cytest_below(&rng, (uint64_t)f->threads);
        cy_mutex_lock(&f->h->slots[k].mu);
        if (f->h->slots[k].c != NULL)
            cy_cancel_fire(f->h->slots[k].c);
        cy_mutex_unlock(&f->h->slots[k].mu);
    }
    return NULL;
}

static void run_hammer(int threads, long iters)
{
    struct hammer *h = calloc(1, sizeof *h);
    cy_rw_init(&h->rw);
    h->iters = iters;
    for (int i = 0; i < HAMMER_MAX; i++)
        cy_mutex_init(&h->slots[i].mu);
    struct firer f = {h, threads, 0};
    cytest_thread ft;
    cytest_start(&ft, firer_main, &f);
    cytest_parallel(threads, hammer_thread, h);
    atomic_store(&f.stop, 1);
    cytest_join(&ft);
    CHECK_EQ(atomic_load(&h->bad), 0);
    CHECK(atomic_load(&h->ok) > 0);
    check_idle(&h->rw);
    cytest_note("%ld ok, %ld timeouts, %ld cancelled", atomic_load(&h->ok), atomic_load(&h->timeouts),
                atomic_load(&h->cancels));
    free(h);
}

static void test_hammer(void) { run_hammer(8, cytest_n(50000)); }
static void test_hammer_32(void) { run_hammer(32, cytest_n(10000)); }

static const cytest_case cases[] = {
    {"fast_paths", test_fast_paths, NULL},
    {"rules_step_by_step", test_rules_step_by_step, NULL},
    {"leave_leaves_no_trace", test_leave_leaves_no_trace, NULL},
    {"go_rules_threads", test_go_rules_threads, NULL},
    {"giving_up_threads", test_giving_up_threads, NULL},
    {"no_writer_starvation", test_no_writer_starvation, NULL},
    {"hammer", test_hammer, NULL},
    {"hammer_32", test_hammer_32, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "rwmutex", cases, sizeof cases / sizeof cases[0]);
}
