/* test_barrier.c - cy_barrier: threading.Barrier's states (filling,
 * resetting, broken; a release ends the round at once), the action,
 * timeouts, abort/reset, and many threads going through many rounds. */
#include "cytest.h"
#include "cywait.h"

#include <stdlib.h>
#include <string.h>

static int32_t state(cy_barrier *b) { return atomic_load(&b->state); }

static uint32_t count_of(cy_barrier *b)
{
    cy_mutex_lock(&b->mu);
    uint32_t c = b->count;
    cy_mutex_unlock(&b->mu);
    return c;
}

/* Every await in this file goes through the driver, as the Python layer's
 * do: cy_wait keeps waiting after CY_INTR. */
static int await_(cy_barrier *b, const cy_barrier_ticket *t, int64_t deadline)
{
    return cyw_wait(&cy_barrier_wait_op, b, (uintptr_t)t, deadline, NULL);
}

static int arrive_(cy_barrier *b, cy_barrier_ticket *t)
{
    return cyw_wait(&cy_barrier_arrive_op, b, (uintptr_t)t, CY_NO_DEADLINE, NULL);
}

/* ------------------------------------------------------------ single thread */

static void test_one_party(void)
{
    cy_barrier b;
    cy_barrier_init(&b, 1);
    for (int i = 0; i < 100; i++) {
        cy_barrier_ticket t = {99, 0, 0};
        CHECK_EQ(arrive_(&b, &t), CY_BARRIER_LAST);
        CHECK_EQ(t.index, 0);
        CHECK_EQ(t.round, (uint64_t)i);
        CHECK_EQ(cy_barrier_action_done(&b, 1), CY_OK);
        CHECK_EQ(state(&b), CY_BARRIER_FILLING);
        CHECK_EQ(count_of(&b), 0);
    }
    CHECK(!cy_barrier_broken(&b));
}

/* One thread plays all the parties: arrive is not tied to a thread. */
static void test_states(void)
{
    cy_barrier b;
    cy_barrier_ticket t0, t1, t2, t3;
    cy_barrier_init(&b, 3);
    CHECK_EQ(cy_barrier_n_waiting(&b), 0);
    CHECK_EQ(arrive_(&b, &t0), CY_OK);
    CHECK_EQ(arrive_(&b, &t1), CY_OK);
    CHECK_EQ(cy_barrier_n_waiting(&b), 2);
    CHECK_EQ(arrive_(&b, &t2), CY_BARRIER_LAST);
    CHECK_EQ(t0.index, 0);
    CHECK_EQ(t1.index, 1);
    CHECK_EQ(t2.index, 2);
    CHECK_EQ(cy_barrier_n_waiting(&b), 3); /* the action runs */
    CHECK_EQ(cy_barrier_arrive(&b, &t3, 0), CY_TIMEOUT); /* a newcomer waits for the next round */
    CHECK_EQ(cy_barrier_action_done(&b, 1), CY_OK);
    /* the release ends the round at once: nobody waits for the released to wake */
    CHECK_EQ(state(&b), CY_BARRIER_FILLING);
    CHECK_EQ(count_of(&b), 0);
    CHECK_EQ(cy_barrier_n_waiting(&b), 0);
    CHECK_EQ(cy_barrier_arrive(&b, &t3, 0), CY_OK); /* the next round */
    CHECK_EQ(t3.index, 0);
    CHECK_EQ(t3.round, t0.round + 1);
    CHECK_EQ(cy_barrier_n_waiting(&b), 1);
    /* what happens to the next round does not reach the released ones */
    cy_barrier_abort(&b);
    CHECK_EQ(await_(&b, &t0, cytest_deadline(1)), CY_OK);
    CHECK_EQ(await_(&b, &t1, cy_now_ns() - 1), CY_OK); /* released already: no timeout */
    cy_barrier_leave(&b, &t1);                          /* nor anything to leave */
    CHECK_EQ(count_of(&b), 1);
    CHECK_EQ(await_(&b, &t3, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(count_of(&b), 0);
    cy_barrier_reset(&b);
    CHECK_EQ(state(&b), CY_BARRIER_FILLING);

    /* the action fails: broken for everyone */
    CHECK_EQ(arrive_(&b, &t0), CY_OK);
    CHECK_EQ(arrive_(&b, &t1), CY_OK);
    CHECK_EQ(arrive_(&b, &t2), CY_BARRIER_LAST);
    CHECK_EQ(cy_barrier_action_done(&b, 0), CY_BARRIER_BROKEN_ERR);
    CHECK(cy_barrier_broken(&b));
    CHECK_EQ(await_(&b, &t0, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(await_(&b, &t1, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(count_of(&b), 0);
    CHECK_EQ(state(&b), CY_BARRIER_BROKEN); /* stays broken with nobody inside */
    CHECK_EQ(arrive_(&b, &t0), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(count_of(&b), 0);
    cy_barrier_reset(&b); /* nobody inside: filling at once */
    CHECK_EQ(state(&b), CY_BARRIER_FILLING);
    CHECK(!cy_barrier_broken(&b));

    /* a timeout breaks it */
    CHECK_EQ(arrive_(&b, &t0), CY_OK);
    CHECK_EQ(await_(&b, &t0, cytest_deadline(0.01)), CY_BARRIER_BROKEN_ERR);
    CHECK(cy_barrier_broken(&b));
    CHECK_EQ(count_of(&b), 0);
    cy_barrier_reset(&b);

    /* reset with threads inside: they leave broken, the last one re-opens */
    CHECK_EQ(arrive_(&b, &t0), CY_OK);
    CHECK_EQ(arrive_(&b, &t1), CY_OK);
    cy_barrier_reset(&b);
    CHECK_EQ(state(&b), CY_BARRIER_RESETTING);
    CHECK_EQ(cy_barrier_arrive(&b, &t3, 0), CY_TIMEOUT); /* newcomers wait for it */
    CHECK_EQ(await_(&b, &t0, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(state(&b), CY_BARRIER_RESETTING);
    cy_barrier_leave(&b, &t1); /* the other one left through a signal handler */
    CHECK_EQ(state(&b), CY_BARRIER_FILLING);
    CHECK_EQ(count_of(&b), 0);

    /* reset of a broken barrier with someone inside: resetting, not filling */
    CHECK_EQ(arrive_(&b, &t0), CY_OK);
    cy_barrier_abort(&b);
    CHECK(cy_barrier_broken(&b));
    cy_barrier_reset(&b);
    CHECK_EQ(state(&b), CY_BARRIER_RESETTING);
    CHECK_EQ(await_(&b, &t0, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(state(&b), CY_BARRIER_FILLING);

    /* abort while the action runs: the last thread gets broken too */
    CHECK_EQ(arrive_(&b, &t0), CY_OK);
    CHECK_EQ(arrive_(&b, &t1), CY_OK);
    CHECK_EQ(arrive_(&b, &t2), CY_BARRIER_LAST);
    cy_barrier_abort(&b);
    CHECK_EQ(cy_barrier_action_done(&b, 1), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(await_(&b, &t0, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(await_(&b, &t1, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    cy_barrier_reset(&b);

    /* reset while the action runs */
    CHECK_EQ(arrive_(&b, &t0), CY_OK);
    CHECK_EQ(arrive_(&b, &t1), CY_OK);
    CHECK_EQ(arrive_(&b, &t2), CY_BARRIER_LAST);
    cy_barrier_reset(&b);
    CHECK_EQ(state(&b), CY_BARRIER_RESETTING);
    CHECK_EQ(cy_barrier_action_done(&b, 1), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(await_(&b, &t0, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(await_(&b, &t1, cytest_deadline(1)), CY_BARRIER_BROKEN_ERR);
    CHECK_EQ(state(&b), CY_BARRIER_FILLING);
    CHECK_EQ(count_of(&b), 0);
}

/* ----------------------------------------------- timeout during the action */

struct late {
    cy_barrier b;
    cy_barrier_ticket t0;
    _Atomic int waiter_done;
    int result;
};

static void *late_waiter(void *p)
{
    struct late *l = p;
    l->result = await_(&l->b, &l->t0, cytest_deadline(0.02)); /* runs out during the action */
    atomic_store(&l->waiter_done, 1);
    return NULL;
}

static void test_timeout_during_action(void)
{
    struct late l;
    cy_barrier_ticket t1;
    cy_barrier_init(&l.b, 2);
    atomic_init(&l.waiter_done, 0);
    l.result = -1;
    CHECK_EQ(arrive_(&l.b, &l.t0), CY_OK);
    CHECK_EQ(arrive_(&l.b, &t1), CY_BARRIER_LAST);
    cytest_thread th;
    cytest_start(&th, late_waiter, &l);
    cytest_sleep_us(100000); /* the action takes 100 ms; the waiter's 20 ms run out */
    CHECK_MSG(!atomic_load(&l.waiter_done), "the waiter gave up while the action ran");
    CHECK(!cy_barrier_broken(&l.b));
    CHECK_EQ(cy_barrier_action_done(&l.b, 1), CY_OK);
    cytest_join(&th);
    CHECK_EQ(l.result, CY_OK);
    CHECK_EQ(state(&l.b), CY_BARRIER_FILLING);
    CHECK_EQ(count_of(&l.b), 0);
}

/* -------------------------------------------- arriving while the action runs */

/* threading runs the action under the barrier's lock, so a thread that
 * arrives meanwhile (one more than `parties`) waits in _enter() and belongs to
 * the next cycle.  cy_barrier runs the action without its mutex, so
 * cy_barrier_arrive must also wait while the state is FILLING with
 * count == parties; this case checks the newcomer is not counted into the
 * current cycle. */
struct extra {
    cy_barrier *b;
    _Atomic int arrived;
    int arrive_result;
    cy_barrier_ticket t;
    int await_result;
};

static void *extra_thread(void *p)
{
    struct extra *x = p;
    x->arrive_result = arrive_(x->b, &x->t);
    atomic_store(&x->arrived, 1);
    if (x->arrive_result == CY_OK)
        x->await_result = await_(x->b, &x->t, cytest_deadline(5));
    else if (x->arrive_result == CY_BARRIER_LAST)
        x->await_result = cy_barrier_action_done(x->b, 1);
    return NULL;
}

static void test_arrival_during_action(void)
{
    cy_barrier b;
    cy_barrier_ticket t0, t1;
    cy_barrier_init(&b, 2);
    CHECK_EQ(arrive_(&b, &t0), CY_OK);
    CHECK_EQ(arrive_(&b, &t1), CY_BARRIER_LAST); /* "runs the action" from here */
    struct extra x;
    memset(&x, 0, sizeof x);
    x.b = &b;
    x.await_result = -1;
    cytest_thread th;
    cytest_start(&th, extra_thread, &x);
    cytest_sleep_us(50000);
    int early = atomic_load(&x.arrived);
    CHECK_MSG(!early, "a third thread entered a 2-party barrier while the action ran (index %u)", x.t.index);
    CHECK_EQ(cy_barrier_action_done(&b, 1), CY_OK);
    CHECK_EQ(await_(&b, &t0, cytest_deadline(5)), CY_OK); /* the first party */
    if (!early) {
        /* the newcomer is in the next cycle now: be its partner */
        cytest_await_flag(&x.arrived, 5);
        CHECK_EQ(x.arrive_result, CY_OK);
        CHECK_EQ(x.t.index, 0);
        cy_barrier_ticket t;
        CHECK_EQ(arrive_(&b, &t), CY_BARRIER_LAST);
        CHECK_EQ(t.index, 1);
        CHECK_EQ(cy_barrier_action_done(&b, 1), CY_OK);
    }
    cytest_join(&th);
    CHECK_EQ(x.await_result, CY_OK);
    CHECK_LE(x.t.index, 1);
    CHECK_EQ(state(&b), CY_BARRIER_FILLING);
    CHECK_EQ(count_of(&b), 0);
}

/* ------------------------------------------------------------------ rounds */

struct rounds {
    cy_barrier b;
    int parties;
    long rounds;
    _Atomic long *arrived;         /* per round: threads that called wait */
    _Atomic uint64_t *index_mask;  /* per round: indexes handed out */
    _Atomic long actions, bad;
    long plain;                    /* written by the action, read by all after */
    unsigned action_spins;
};

static void rounds_action(void *ctx)
{
    struct rounds *r = ctx;
    atomic_fetch_add(&r->actions, 1);
    r->plain++;
    if (r->action_spins)
        cytest_spin(r->action_spins);
}

static void rounds_thread(void *ctx, int id)
{
    struct rounds *r = ctx;
    (void)id;
    for (long k = 0; k < r->rounds; k++) {
        atomic_fetch_add(&r->arrived[k], 1);
        uint32_t idx = 0;
        int last = 0;
        int rc = cyw_barrier_wait(&r->b, cytest_deadline(20), &idx, &last, rounds_action, r, 1);
        if (rc != CY_OK) {
            atomic_fetch_add(&r->bad, 1);
            return;
        }
        CHECK_LE(idx, r->parties - 1);
        uint64_t bit = 1ull << (idx & 63);
        uint64_t was = atomic_fetch_or(&r->index_mask[k], bit);
        CHECK_MSG(!(was & bit), "round %ld: index %u handed out twice", k, idx);
        CHECK_EQ(last, idx == (uint32_t)r->parties - 1);
        /* released only after everyone arrived, and after the action */
        CHECK_EQ(atomic_load(&r->arrived[k]), r->parties);
        CHECK_EQ(r->plain, k + 1);
    }
}

static void run_rounds(int parties, long rounds, unsigned action_spins)
{
    struct rounds r;
    memset(&r, 0, sizeof r);
    cy_barrier_init(&r.b, (uint32_t)parties);
    r.parties = parties;
    r.rounds = rounds;
    r.action_spins = action_spins;
    r.arrived = calloc((size_t)rounds, sizeof *r.arrived);
    r.index_mask = calloc((size_t)rounds, sizeof *r.index_mask);
    cytest_parallel(parties, rounds_thread, &r);
    CHECK_EQ(atomic_load(&r.bad), 0);
    CHECK_EQ(atomic_load(&r.actions), rounds);
    uint64_t full = parties >= 64 ? ~0ull : (1ull << parties) - 1;
    for (long k = 0; k < rounds; k++)
        if (atomic_load(&r.index_mask[k]) != full) {
            CHECK_MSG(0, "round %ld: indexes %#llx", k, (unsigned long long)atomic_load(&r.index_mask[k]));
            break;
        }
    CHECK_EQ(state(&r.b), CY_BARRIER_FILLING);
    CHECK_EQ(count_of(&r.b), 0);
    free(r.arrived);
    free(r.index_mask);
    cytest_note("%d threads x %ld rounds", parties, rounds);
}

static void test_rounds_8(void) { run_rounds(8, cytest_n(20000), 0); }
static void test_rounds_32(void) { run_rounds(32, cytest_n(3000), 0); }
static void test_rounds_slow_action(void) { run_rounds(8, cytest_n(3000), 5000); }

/* As in Python with the GIL: waiters released while spinning linger. */
static void test_rounds_linger(void)
{
    cy_spin_set_linger(5000);
    run_rounds(2, cytest_n(20000), 0);
    run_rounds(8, cytest_n(3000), 0);
    cy_spin_set_linger(0);
}

/* --------------------------------------------- more threads than parties */

/* 3 x parties threads share one barrier and go round until `target`
 * generations have passed; each generation must release exactly `parties`
 * threads with indexes 0 .. parties-1.  A slow action gives threads time to
 * arrive while it runs (see arrival_during_action).  (Threads do not each
 * make a fixed number of waits: a thread cannot be twice in one generation,
 * so the last few could never fill one.) */
struct crowd {
    cy_barrier b;
    int parties, threads;
    long target;
    _Atomic long lasts, released, bad_index, bad;
    _Atomic int stop;
    unsigned action_spins;
};

static void crowd_action(void *ctx)
{
    struct crowd *c = ctx;
    if (atomic_fetch_add(&c->lasts, 1) + 1 >= c->target)
        atomic_store(&c->stop, 1);
    cytest_spin(c->action_spins);
}

static void crowd_thread(void *ctx, int id)
{
    struct crowd *c = ctx;
    if (id == c->threads) { /* the stopper: once done, release a half-filled generation */
        while (!atomic_load(&c->stop))
            cytest_sleep_us(200);
        cy_barrier_abort(&c->b);
        return;
    }
    while (!atomic_load(&c->stop)) {
        uint32_t idx = 0;
        int last = 0;
        int rc = cyw_barrier_wait(&c->b, cytest_deadline(10), &idx, &last, crowd_action, c, 1);
        if (rc != CY_OK) {
            if (!atomic_load(&c->stop)) {
                atomic_fetch_add(&c->bad, 1);
                atomic_store(&c->stop, 1);
            }
            return;
        }
        atomic_fetch_add(&c->released, 1);
        if (idx >= (uint32_t)c->parties) {
            /* wrong already: stop everyone now */
            atomic_fetch_add(&c->bad_index, 1);
            atomic_store(&c->stop, 1);
            return;
        }
    }
}

static void test_more_threads_than_parties(void)
{
    struct crowd c;
    memset(&c, 0, sizeof c);
    c.parties = 4;
    c.threads = 12;
    c.target = cytest_n(15000);
    c.action_spins = 2000;
    cy_barrier_init(&c.b, (uint32_t)c.parties);
    cytest_parallel(c.threads + 1, crowd_thread, &c);
    CHECK_MSG(atomic_load(&c.bad_index) == 0, "%ld wait()s returned an index >= parties",
              atomic_load(&c.bad_index));
    CHECK_MSG(atomic_load(&c.bad) == 0, "%ld wait()s broke or timed out", atomic_load(&c.bad));
    long lasts = atomic_load(&c.lasts), released = atomic_load(&c.released);
    if (atomic_load(&c.bad_index) == 0 && atomic_load(&c.bad) == 0) {
        /* every generation but the last (its waiters may meet the final
         * abort while draining) released exactly `parties` threads */
        CHECK_LE((lasts - 1) * c.parties, released);
        CHECK_LE(released, lasts * c.parties);
    }
    CHECK_EQ(count_of(&c.b), 0);
    cytest_note("%d threads on a %d-party barrier: %ld generations, %ld wait()s released", c.threads, c.parties,
                lasts, released);
}

/* ------------------------------------------------------- abort and reset */

struct chaos {
    cy_barrier b;
    int parties;
    long cycles;
    _Atomic int stop;
    _Atomic long ok, broken, lasts, bad_index, timeouts_used;
};

static void chaos_thread(void *ctx, int id)
{
    struct chaos *c = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 1300);
    if (id == c->parties) { /* the controller */
        for (long i = 0; i < c->cycles; i++) {
            cytest_sleep_us((long)cytest_below(&rng, 500));
            switch (cytest_below(&rng, 3)) {
            case 0:
                cy_barrier_abort(&c->b);
                cytest_sleep_us((long)cytest_below(&rng, 200));
                cy_barrier_reset(&c->b);
                break;
            case 1:
                cy_barrier_reset(&c->b);
                break;
            default:
                (void)cy_barrier_n_waiting(&c->b);
                if (cy_barrier_broken(&c->b))
                    cy_barrier_reset(&c->b);
            }
        }
        atomic_store(&c->stop, 1);
        cy_barrier_abort(&c->b); /* everyone out */
        return;
    }
    while (!atomic_load(&c->stop)) {
        uint32_t idx = 0;
        int last = 0;
        double t = 10;
        if (cytest_below(&rng, 8) == 0) {
            t = 1e-6 * (double)cytest_below(&rng, 2000); /* a timeout breaks it */
            atomic_fetch_add_explicit(&c->timeouts_used, 1, CY_RELAXED);
        }
        int fail_action = cytest_below(&rng, 50) == 0;
        int rc = cyw_barrier_wait(&c->b, cytest_deadline(t), &idx, &last, NULL, NULL, !fail_action);
        if (rc == CY_OK) {
            atomic_fetch_add_explicit(&c->ok, 1, CY_RELAXED);
            if (idx >= (uint32_t)c->parties)
                atomic_fetch_add(&c->bad_index, 1);
        } else {
            CHECK_EQ(rc, CY_BARRIER_BROKEN_ERR);
            atomic_fetch_add_explicit(&c->broken, 1, CY_RELAXED);
            /* wait for the controller's reset instead of spinning on a broken barrier */
            while (cy_barrier_broken(&c->b) && !atomic_load(&c->stop))
                sched_yield();
        }
        if (last)
            atomic_fetch_add_explicit(&c->lasts, 1, CY_RELAXED);
    }
}

static void test_abort_reset_chaos(void)
{
    struct chaos c;
    memset(&c, 0, sizeof c);
    c.parties = 8;
    c.cycles = cytest_n(5000);
    cy_barrier_init(&c.b, (uint32_t)c.parties);
    cytest_parallel(c.parties + 1, chaos_thread, &c);
    CHECK_EQ(atomic_load(&c.bad_index), 0);
    /* all out: the barrier is empty; a reset makes it usable again */
    CHECK_EQ(count_of(&c.b), 0);
    cy_barrier_reset(&c.b);
    CHECK_EQ(state(&c.b), CY_BARRIER_FILLING);
    cy_barrier_ticket t[64];
    for (int i = 0; i < c.parties - 1; i++)
        CHECK_EQ(arrive_(&c.b, &t[i]), CY_OK);
    CHECK_EQ(arrive_(&c.b, &t[c.parties - 1]), CY_BARRIER_LAST);
    CHECK_EQ(cy_barrier_action_done(&c.b, 1), CY_OK);
    for (int i = 0; i < c.parties - 1; i++)
        CHECK_EQ(await_(&c.b, &t[i], cytest_deadline(1)), CY_OK);
    CHECK_EQ(state(&c.b), CY_BARRIER_FILLING);
    CHECK_EQ(count_of(&c.b), 0);
    cytest_note("%d threads, %ld abort/reset cycles: %ld released, %ld broken, %ld short timeouts", c.parties,
                c.cycles, atomic_load(&c.ok), atomic_load(&c.broken), atomic_load(&c.timeouts_used));
}

static const cytest_case cases[] = {
    {"one_party", test_one_party, NULL},
    {"states", test_states, NULL},
    {"timeout_during_action", test_timeout_during_action, NULL},
    {"arrival_during_action", test_arrival_during_action, NULL},
    {"rounds_8", test_rounds_8, NULL},
    {"rounds_32", test_rounds_32, NULL},
    {"rounds_slow_action", test_rounds_slow_action, NULL},
    {"rounds_linger", test_rounds_linger, NULL},
    {"more_threads_than_parties", test_more_threads_than_parties, NULL},
    {"abort_reset_chaos", test_abort_reset_chaos, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "barrier", cases, sizeof cases / sizeof cases[0]);
}
