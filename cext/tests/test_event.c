/* test_event.c - cy_event: flag, waiter bit and generation; set()+clear()
 * releasing a waiter that was already waiting; wake-all of many sleepers;
 * set/clear/wait races with no sleeper left behind after a final set. */
#include "cytest.h"
#include "cywait.h"

#include <string.h>

#define GEN(s) ((s) >> 2)

static void test_single_thread(void)
{
    cy_event e;
    cy_event_init(&e);
    CHECK(!cy_event_is_set(&e));
    /* past deadline */
    CHECK_EQ(cy_event_wait(&e, cy_event_wait_begin(&e), cy_now_ns() - 1, NULL), CY_TIMEOUT);
    CHECK_EQ(atomic_load(&e.state), CY_EV_WAITERS); /* left its bit */
    CHECK_EQ(cyw_event_wait(&e, cytest_deadline(0.02)), CY_TIMEOUT);
    cy_event_set(&e);
    uint32_t s = atomic_load(&e.state);
    CHECK(cy_event_is_set(&e));
    CHECK_EQ(s & CY_EV_WAITERS, 0); /* raising the flag drops the bit */
    CHECK_EQ(GEN(s), 1);
    CHECK_EQ(cy_event_wait(&e, cy_event_wait_begin(&e), cy_now_ns() - 1, NULL), CY_OK);
    CHECK_EQ(cyw_event_wait(&e, CY_NO_DEADLINE), CY_OK);
    cy_event_set(&e); /* already set: nothing moves */
    CHECK_EQ(atomic_load(&e.state), s);
    cy_event_clear(&e);
    CHECK(!cy_event_is_set(&e));
    CHECK_EQ(GEN(atomic_load(&e.state)), 1);
    cy_event_clear(&e);
    CHECK_EQ(atomic_load(&e.state), s & ~CY_EV_FLAG);
    cy_event_set(&e);
    CHECK_EQ(GEN(atomic_load(&e.state)), 2);
    cy_event_clear(&e);
    CHECK_EQ(cy_event_wait(&e, cy_event_wait_begin(&e), cy_now_ns() - 1, NULL), CY_TIMEOUT);
    CHECK(atomic_load(&e.state) & CY_EV_WAITERS);
    cy_event_reinit(&e); /* after fork: forget sleepers, keep flag and generation */
    CHECK_EQ(atomic_load(&e.state), 2u << 2);
    for (int i = 0; i < 1000; i++) {
        cy_event_set(&e);
        cy_event_clear(&e);
    }
    CHECK_EQ(GEN(atomic_load(&e.state)), 1002);
}

/* --------------------------------------------- set()+clear() on a sleeper */

/* Pairs of threads, each on its own event: the setter waits until the
 * waiter's bit shows that its wait has begun, then set() and clear() at
 * once (threading's test_set_and_clear).  That wait must return CY_OK. */
#define NPAIRS 8

struct pairs {
    cy_event e[NPAIRS];
    long rounds;
    _Atomic long round[NPAIRS];   /* setter's round, per pair */
    _Atomic long waiting[NPAIRS]; /* waiter's round, per pair */
    _Atomic long bad, spurious;
};

static void pairs_thread(void *ctx, int id)
{
    struct pairs *p = ctx;
    int k = id / 2;
    cy_event *e = &p->e[k];
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 800);
    for (long r = 1; r <= p->rounds; r++) {
        if (id % 2 == 0) { /* setter */
            if (!cytest_await_at_least(&p->waiting[k], r, 20)) {
                atomic_fetch_add(&p->bad, 1);
                return;
            }
            /* the bit is set inside cy_event_wait, after it read the generation */
            int64_t end = cytest_now_ns() + 20000000000LL;
            while (!(atomic_load(&e->state) & CY_EV_WAITERS) && cytest_now_ns() < end)
                sched_yield();
            if (cytest_below(&rng, 2))
                cytest_spin((unsigned)cytest_below(&rng, 3000)); /* sometimes parked by now */
            atomic_store(&p->round[k], r);
            cy_event_set(e);
            if (r % 4 != 0)
                cy_event_clear(e);
            /* next round starts from a clear event: wait for the waiter to leave */
            while (atomic_load(&p->waiting[k]) == r)
                sched_yield();
            cy_event_clear(e);
            atomic_store(&p->round[k], -r); /* cleared; the waiter may go on */
        } else { /* waiter */
            atomic_store(&p->waiting[k], r);
            cy_status st = cyw_event_wait(e, cytest_deadline(10));
            if (st != CY_OK)
                atomic_fetch_add(&p->bad, 1);
            else if (atomic_load(&p->round[k]) != r)
                atomic_fetch_add(&p->spurious, 1); /* OK before this round's set */
            atomic_store(&p->waiting[k], -r);
            while (atomic_load(&p->round[k]) != -r)
                sched_yield();
        }
    }
}

static void test_set_clear_releases_sleeper(void)
{
    struct pairs p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < NPAIRS; i++)
        cy_event_init(&p.e[i]);
    p.rounds = cytest_n(10000);
    cytest_parallel(2 * NPAIRS, pairs_thread, &p);
    CHECK_MSG(atomic_load(&p.bad) == 0, "%ld waits begun before set() did not return CY_OK", atomic_load(&p.bad));
    CHECK_EQ(atomic_load(&p.spurious), 0);
    cytest_note("%d setter/waiter pairs x %ld rounds (3 of 4 rounds set() then clear() at once)", NPAIRS,
                p.rounds);
}

/* -------------------------------------------------- many sleepers, one set */

struct many {
    cy_event e;
    int waiters;
    long rounds;
    _Atomic long round, round_set, entered, finished;
    _Atomic long bad, spurious, stragglers;
    int clear_after_set;
};

static void many_thread(void *ctx, int id)
{
    struct many *m = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 900);
    for (long r = 1; r <= m->rounds; r++) {
        if (id == 0) {
            cy_event_clear(&m->e);
            atomic_store(&m->round, r);
            if (!cytest_await_at_least(&m->entered, r * m->waiters, 20)) {
                atomic_fetch_add(&m->bad, 1);
                atomic_store(&m->round, m->rounds + 1);
                return;
            }
            cytest_spin((unsigned)cytest_below(&rng, 5000));
            atomic_store(&m->round_set, r);
            cy_event_set(&m->e);
            if (m->clear_after_set) {
                cy_event_clear(&m->e);
                /* a waiter that began after the set+clear waits for the next
                 * set: give the others time, then release the stragglers */
                if (!cytest_await_at_least(&m->finished, r * m->waiters, 0.5)) {
                    atomic_fetch_add(&m->stragglers, r * m->waiters - atomic_load(&m->finished));
                    cy_event_set(&m->e);
                }
            }
            if (!cytest_await_at_least(&m->finished, r * m->waiters, 20)) {
                atomic_fetch_add(&m->bad, 1);
                atomic_store(&m->round, m->rounds + 1);
                return;
            }
            continue;
        }
        while (atomic_load(&m->round) < r)
            sched_yield();
        if (atomic_load(&m->round) > m->rounds)
            return;
        atomic_fetch_add(&m->entered, 1);
        cy_status st = cyw_event_wait(&m->e, cytest_deadline(10));
        if (st != CY_OK)
            atomic_fetch_add(&m->bad, 1);
        else if (atomic_load(&m->round_set) < r)
            atomic_fetch_add(&m->spurious, 1);
        atomic_fetch_add(&m->finished, 1);
    }
}

static void run_many(int waiters, long rounds, int clear_after_set)
{
    struct many m;
    memset(&m, 0, sizeof m);
    cy_event_init(&m.e);
    m.waiters = waiters;
    m.rounds = rounds;
    m.clear_after_set = clear_after_set;
    cytest_parallel(waiters + 1, many_thread, &m);
    CHECK_EQ(atomic_load(&m.bad), 0);
    CHECK_EQ(atomic_load(&m.spurious), 0);
    cytest_note("%d waiters x %ld rounds of set()%s%s", waiters, rounds, clear_after_set ? "+clear()" : "",
                clear_after_set ? "" : " (all must wake)");
    if (clear_after_set)
        cytest_note("%ld waits began after set+clear and needed the next set", atomic_load(&m.stragglers));
}

static void test_wake_all(void) { run_many(24, cytest_n(5000), 0); }
static void test_wake_all_set_clear(void) { run_many(16, cytest_n(3000), 1); }

/* ------------------------------------------------------------------ hammer */

struct hammer {
    cy_event e;
    int setters, waiters;
    long iters;
    _Atomic long setters_left;
    _Atomic int final_set;
    _Atomic long waits, oks, timeouts, bad;
};

static void hammer_thread(void *ctx, int id)
{
    struct hammer *h = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 1000);
    if (id < h->setters) {
        for (long i = 0; i < h->iters; i++) {
            switch (cytest_below(&rng, 3)) {
            case 0:
                cy_event_set(&h->e);
                break;
            case 1:
                cy_event_clear(&h->e);
                break;
            default:
                cy_event_set(&h->e);
                cy_event_clear(&h->e);
            }
            cytest_spin((unsigned)cytest_below(&rng, 200));
            if ((i & 127) == 0)
                sched_yield();
        }
        if (atomic_fetch_sub(&h->setters_left, 1) == 1) {
            atomic_store(&h->final_set, 1);
            cy_event_set(&h->e); /* the last word: set, for good */
        }
        return;
    }
    for (;;) {
        int final = atomic_load(&h->final_set);
        double t = final ? 10 : 1e-6 * (double)cytest_below(&rng, 500);
        cy_status st = cyw_event_wait(&h->e, cytest_deadline(t));
        atomic_fetch_add_explicit(&h->waits, 1, CY_RELAXED);
        if (st == CY_OK)
            atomic_fetch_add_explicit(&h->oks, 1, CY_RELAXED);
        else
            atomic_fetch_add_explicit(&h->timeouts, 1, CY_RELAXED);
        if (!final && st == CY_OK)
            sched_yield(); /* the flag may stay set: give the setters the CPU */
        if (final) {
            if (st != CY_OK)
                atomic_fetch_add(&h->bad, 1); /* left sleeping after the final set */
            return;
        }
    }
}

static void test_hammer(void)
{
    struct hammer h;
    memset(&h, 0, sizeof h);
    cy_event_init(&h.e);
    h.setters = 4;
    h.waiters = 12;
    h.iters = cytest_n(100000);
    atomic_store(&h.setters_left, h.setters);
    cytest_parallel(h.setters + h.waiters, hammer_thread, &h);
    CHECK_EQ(atomic_load(&h.bad), 0);
    CHECK(cy_event_is_set(&h.e));
    cytest_note("%d setters x %ld set/clear, %d waiters: %ld waits (%ld OK, %ld timed out)", h.setters, h.iters,
                h.waiters, atomic_load(&h.waits), atomic_load(&h.oks), atomic_load(&h.timeouts));
}

/* Never set: every wait times out (no spurious CY_OK), many at once. */
struct never {
    cy_event e;
    _Atomic long oks;
};

static void never_thread(void *ctx, int id)
{
    struct never *n = ctx;
    for (int i = 0; i < 5; i++)
        if (cyw_event_wait(&n->e, cytest_deadline(0.002 * (1 + id % 4))) != CY_TIMEOUT)
            atomic_fetch_add(&n->oks, 1);
}

static void test_timeouts_never_set(void)
{
    struct never n;
    cy_event_init(&n.e);
    atomic_init(&n.oks, 0);
    cytest_parallel(16, never_thread, &n);
    CHECK_EQ(atomic_load(&n.oks), 0);
}

/* ------------------------------------------- generation across CY_INTR */

/* As in test_waitgroup.c: the Python layer waits through cy_wait, which
 * runs the signal handlers (on_intr) after every CY_INTR (a signal on
 * futex; every 20 ms slice on fallback/macOS/Windows) and then continues
 * the same wait from the same begin token, the generation read once.  A
 * set() followed by clear() while the handlers run must still release the
 * waiter (threading.Event does; lock_tests' test_set_and_clear relies on
 * it).  on_intr opens that gap on purpose. */
struct gapctx {
    cy_event e;
    _Atomic int in_gap, go_on;
    cy_status result;
    int intrs;
};

static int gap_on_intr(void *p)
{
    struct gapctx *c = p;
    if (c->intrs++ == 0) { /* "running signal handlers" */
        atomic_store(&c->in_gap, 1);
        cytest_await_flag(&c->go_on, 10);
    }
    return 0; /* they did not raise: wait on */
}

static void *gap_waiter(void *p)
{
    struct gapctx *c = p;
    int64_t dl = cytest_deadline(0.5); /* long enough: OK comes at once when right */
    uint32_t gen = cy_event_wait_begin(&c->e);
    c->result = (cy_status)cy_wait(&cy_event_wait_op, &c->e, gen, dl, NULL, gap_on_intr, c);
    return NULL;
}

static void test_generation_across_intr(void)
{
    struct gapctx c;
    memset(&c, 0, sizeof c);
    cy_event_init(&c.e);
    cytest_thread th;
    cytest_start(&th, gap_waiter, &c);
    int64_t t0 = cy_now_ns();
    while (!atomic_load(&c.in_gap) && cy_now_ns() - t0 < 5000000000LL) {
        cytest_sleep_us(2000);
        cytest_poke(th.t);
    }
    CHECK(atomic_load(&c.in_gap));
    cy_event_set(&c.e);
    cy_event_clear(&c.e);
    atomic_store(&c.go_on, 1);
    cytest_join(&th);
    CHECK_MSG(c.result == CY_OK,
              "wait returned %d: set() ran while the waiter was waiting, but the retry after CY_INTR "
              "started from the new generation",
              (int)c.result);
}

static const cytest_case cases[] = {
    {"single_thread", test_single_thread, NULL},
    {"set_clear_releases_sleeper", test_set_clear_releases_sleeper, NULL},
    {"wake_all", test_wake_all, NULL},
    {"wake_all_set_clear", test_wake_all_set_clear, NULL},
    {"hammer", test_hammer, NULL},
    {"timeouts_never_set", test_timeouts_never_set, NULL},
    {"generation_across_intr", test_generation_across_intr, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "event", cases, sizeof cases / sizeof cases[0]);
}
