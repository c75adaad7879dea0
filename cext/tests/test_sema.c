/* test_sema.c - cy_sema: bounds, timeouts, mutual exclusion, timeouts racing
 * releases (units conserved), release(n) waking n sleepers. */
#include "cytest.h"
#include "cywait.h"

#include <string.h>

static void test_single_thread(void)
{
    cy_sema s;
    cy_sema_init(&s, 3);
    CHECK_EQ(cy_sema_value(&s), 3);
    CHECK_EQ(cy_sema_try_acquire(&s), 1);
    CHECK_EQ(cy_sema_try_acquire(&s), 1);
    CHECK_EQ(cy_sema_try_acquire(&s), 1);
    CHECK_EQ(cy_sema_try_acquire(&s), 0);
    CHECK_EQ(cy_sema_value(&s), 0);
    CHECK_EQ(cy_sema_release(&s, 4, 3), -1); /* n > bound */
    CHECK_EQ(cy_sema_value(&s), 0);
    CHECK_EQ(cy_sema_release(&s, 1, 3), 0);
    CHECK_EQ(cy_sema_value(&s), 1);
    CHECK_EQ(cy_sema_release(&s, 3, 3), -1); /* would exceed: unchanged */
    CHECK_EQ(cy_sema_value(&s), 1);
    CHECK_EQ(cy_sema_release(&s, 2, 3), 0);
    CHECK_EQ(cy_sema_value(&s), 3);
    CHECK_EQ(cy_sema_release(&s, 1, 3), -1);
    CHECK_EQ(cy_sema_release(&s, 0, 3), 0); /* nothing to add */
    CHECK_EQ(cy_sema_value(&s), 3);
    CHECK_EQ(atomic_load(&s.nwaiters), 0);

    /* unbounded: the bound is CY_SEMA_MAX */
    cy_sema_init(&s, CY_SEMA_MAX - 1);
    CHECK_EQ(cy_sema_release(&s, 1, CY_SEMA_MAX), 0);
    CHECK_EQ(cy_sema_value(&s), CY_SEMA_MAX);
    CHECK_EQ(cy_sema_release(&s, 1, CY_SEMA_MAX), -1);
    CHECK_EQ(cy_sema_value(&s), CY_SEMA_MAX);
    cy_sema_init(&s, 0);
    CHECK_EQ(cy_sema_release(&s, UINT32_MAX, CY_SEMA_MAX), -1);
    CHECK_EQ(cy_sema_release(&s, CY_SEMA_MAX, CY_SEMA_MAX), 0);
    CHECK_EQ(cy_sema_value(&s), CY_SEMA_MAX);
}

static void test_acquire_timeout(void)
{
    cy_sema s;
    cy_sema_init(&s, 0);
    int64_t t0 = cy_now_ns();
    CHECK_EQ(cyw_sema_acquire(&s, cytest_deadline(0.02)), CY_TIMEOUT);
    CHECK(cy_now_ns() - t0 >= 20000000);
    CHECK_EQ(cy_sema_acquire(&s, 0, cy_now_ns() - 1, NULL), CY_TIMEOUT); /* past deadline */
    CHECK_EQ(atomic_load(&s.nwaiters), 0);
    CHECK_EQ(cy_sema_value(&s), 0);
    CHECK_EQ(cy_sema_release(&s, 1, CY_SEMA_MAX), 0);
    CHECK_EQ(cy_sema_acquire(&s, 0, cy_now_ns() - 1, NULL), CY_OK); /* a unit: taken, deadline or not */
    CHECK_EQ(cy_sema_value(&s), 0);
}

struct handoff {
    cy_sema s;
    _Atomic int started;
    cy_status result;
};

static void *handoff_waiter(void *p)
{
    struct handoff *h = p;
    atomic_store(&h->started, 1);
    h->result = cyw_sema_acquire(&h->s, cytest_deadline(10));
    return NULL;
}

static void test_release_wakes_sleeper(void)
{
    for (long i = 0; i < cytest_n(200); i++) {
        struct handoff h;
        cy_sema_init(&h.s, 0);
        atomic_init(&h.started, 0);
        h.result = CY_INTR;
        cytest_thread th;
        cytest_start(&th, handoff_waiter, &h);
        cytest_await_flag(&h.started, 10);
        if (i & 1)
            cytest_sleep_us(300);
        CHECK_EQ(cy_sema_release(&h.s, 1, 1), 0);
        cytest_join(&th);
        CHECK_EQ(h.result, CY_OK);
        CHECK_EQ(cy_sema_value(&h.s), 0);
        CHECK_EQ(atomic_load(&h.s.nwaiters), 0);
    }
}

/* --------------------------------------------------------------- exclusion */

struct excl {
    cy_sema s;
    uint32_t n;
    long iters;
    int short_timeouts; /* some acquires use short deadlines */
    _Atomic int inside, max_inside;
    _Atomic long bad, timeouts, acquired;
};

static void excl_thread(void *ctx, int id)
{
    struct excl *e = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 500);
    for (long i = 0; i < e->iters; i++) {
        int shortdl = e->short_timeouts && cytest_below(&rng, 3) == 0;
        int64_t dl = shortdl ? cytest_deadline(1e-6 * (double)cytest_below(&rng, 200)) : cytest_deadline(20);
        cy_status st = cyw_sema_acquire(&e->s, dl);
        if (st != CY_OK) {
            atomic_fetch_add_explicit(&e->timeouts, 1, CY_RELAXED);
            if (!shortdl)
                atomic_fetch_add(&e->bad, 1);
            continue;
        }
        atomic_fetch_add_explicit(&e->acquired, 1, CY_RELAXED);
        int in = atomic_fetch_add(&e->inside, 1) + 1;
        int mx = atomic_load(&e->max_inside);
        while (in > mx && !atomic_compare_exchange_weak(&e->max_inside, &mx, in)) {
        }
        if (in > (int)e->n)
            atomic_fetch_add(&e->bad, 1);
        cytest_spin((unsigned)cytest_below(&rng, 100));
        if ((i & 255) == 0)
            sched_yield();
        atomic_fetch_sub(&e->inside, 1);
        /* bounded: a release can never push the value past its initial value */
        if (cy_sema_release(&e->s, 1, e->n) != 0)
            atomic_fetch_add(&e->bad, 1);
    }
}

static void run_excl(int threads, uint32_t n, long iters, int short_timeouts)
{
    struct excl e;
    memset(&e, 0, sizeof e);
    cy_sema_init(&e.s, n);
    e.n = n;
    e.iters = iters;
    e.short_timeouts = short_timeouts;
    cytest_parallel(threads, excl_thread, &e);
    CHECK_EQ(atomic_load(&e.bad), 0);
    CHECK_LE(atomic_load(&e.max_inside), (long)n);
    CHECK_EQ(cy_sema_value(&e.s), n); /* units conserved */
    CHECK_EQ(atomic_load(&e.s.nwaiters), 0);
    CHECK_EQ(atomic_load(&e.acquired) + atomic_load(&e.timeouts), threads * iters);
    cytest_note("%d threads x %ld acquire/release, value %u: max %d inside, %ld timeouts", threads, iters, n,
                atomic_load(&e.max_inside), atomic_load(&e.timeouts));
}

static void test_mutual_exclusion(void) { run_excl(16, 1, cytest_n(100000), 0); }
static void test_counting(void) { run_excl(32, 3, cytest_n(30000), 0); }
static void test_timeouts_racing_releases(void) { run_excl(16, 2, cytest_n(100000), 1); }

/* -------------------------------------------------- release(n) wakes n */

struct prodcons {
    cy_sema s;
    int producers;
    long total;           /* units produced = units consumed */
    _Atomic long produced, claimed, consumed, bad;
};

static void prodcons_thread(void *ctx, int id)
{
    struct prodcons *p = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 600);
    if (id < p->producers) {
        long quota = p->total / p->producers; /* total is a multiple of producers */
        while (quota > 0) {
            long k = 1 + (long)cytest_below(&rng, 8);
            if (k > quota)
                k = quota;
            quota -= k;
            atomic_fetch_add(&p->produced, k);
            if (cy_sema_release(&p->s, (uint32_t)k, CY_SEMA_MAX) != 0)
                atomic_fetch_add(&p->bad, 1);
            if (cytest_below(&rng, 8) == 0)
                sched_yield();
        }
        return;
    }
    for (;;) {
        if (atomic_fetch_add(&p->claimed, 1) >= p->total)
            return;
        /* a unit is coming for every claim: the wait must end with CY_OK */
        if (cyw_sema_acquire(&p->s, cytest_deadline(20)) != CY_OK) {
            atomic_fetch_add(&p->bad, 1);
            return;
        }
        atomic_fetch_add(&p->consumed, 1);
    }
}

static void test_release_n_wakes_n(void)
{
    struct prodcons p;
    memset(&p, 0, sizeof p);
    cy_sema_init(&p.s, 0);
    p.producers = 4;
    p.total = cytest_n(400000) / p.producers * p.producers;
    if (p.total == 0)
        p.total = p.producers;
    cytest_parallel(p.producers + 12, prodcons_thread, &p);
    CHECK_EQ(atomic_load(&p.bad), 0);
    CHECK_EQ(atomic_load(&p.produced), p.total);
    CHECK_EQ(atomic_load(&p.consumed), p.total);
    CHECK_EQ(cy_sema_value(&p.s), 0);
    CHECK_EQ(atomic_load(&p.s.nwaiters), 0);
    cytest_note("4 producers release(1..8), 12 consumers: %ld units, every acquire CY_OK", p.total);
}

/* ---------------------------------------------- wakes are never stranded */

/* Long sleepers and short-deadline racers share the semaphore; a releaser
 * hands out one unit at a time and waits until it is taken.  A racer that is
 * woken for the unit and times out must pass the wake on (the `others`
 * branch of cy_sema_acquire), or the unit stays free while sleepers
 * sleep. */
struct strand {
    cy_sema s;
    int sleepers, racers;
    long units;
    _Atomic int stop;
    _Atomic long taken, bad, stranded, racer_timeouts;
};

static void strand_thread(void *ctx, int id)
{
    struct strand *t = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 700);
    if (id == 0) {
        for (long i = 0; i < t->units; i++) {
            CHECK_EQ(cy_sema_release(&t->s, 1, 1), 0);
            int64_t end = cytest_now_ns() + 5000000000LL;
            while (cy_sema_value(&t->s) != 0) {
                if (cytest_now_ns() > end) {
                    atomic_fetch_add(&t->stranded, 1);
                    break;
                }
                sched_yield();
            }
        }
        atomic_store(&t->stop, 1);
        /* units for the sleepers to leave with (and for racers still inside) */
        CHECK_EQ(cy_sema_release(&t->s, (uint32_t)(t->sleepers + t->racers), CY_SEMA_MAX), 0);
        return;
    }
    if (id <= t->sleepers) {
        for (;;) {
            if (cyw_sema_acquire(&t->s, cytest_deadline(30)) != CY_OK) {
                atomic_fetch_add(&t->bad, 1);
                return;
            }
            atomic_fetch_add(&t->taken, 1);
            if (atomic_load(&t->stop))
                return;
        }
    }
    while (!atomic_load(&t->stop)) {
        if (cyw_sema_acquire(&t->s, cytest_deadline(1e-6 * (double)cytest_below(&rng, 100))) == CY_OK)
            atomic_fetch_add(&t->taken, 1);
        else
            atomic_fetch_add_explicit(&t->racer_timeouts, 1, CY_RELAXED);
        cytest_sleep_us((long)cytest_below(&rng, 200));
    }
}

static void test_no_stranded_units(void)
{
    struct strand t;
    memset(&t, 0, sizeof t);
    cy_sema_init(&t.s, 0);
    t.sleepers = 4;
    t.racers = 8;
    t.units = cytest_n(20000);
    cytest_parallel(1 + t.sleepers + t.racers, strand_thread, &t);
    CHECK_EQ(atomic_load(&t.bad), 0);
    CHECK_EQ(atomic_load(&t.stranded), 0);
    /* units conserved: all handed out were taken or are still there */
    CHECK_EQ(atomic_load(&t.taken) + cy_sema_value(&t.s), t.units + t.sleepers + t.racers);
    CHECK_EQ(atomic_load(&t.s.nwaiters), 0);
    cytest_note("%ld units to %d sleepers + %d short-deadline racers (%ld racer timeouts)", t.units,
                t.sleepers, t.racers, atomic_load(&t.racer_timeouts));
}

static const cytest_case cases[] = {
    {"single_thread", test_single_thread, NULL},
    {"acquire_timeout", test_acquire_timeout, NULL},
    {"release_wakes_sleeper", test_release_wakes_sleeper, NULL},
    {"mutual_exclusion", test_mutual_exclusion, NULL},
    {"counting", test_counting, NULL},
    {"timeouts_racing_releases", test_timeouts_racing_releases, NULL},
    {"release_n_wakes_n", test_release_n_wakes_n, NULL},
    {"no_stranded_units", test_no_stranded_units, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "sema", cases, sizeof cases / sizeof cases[0]);
}
