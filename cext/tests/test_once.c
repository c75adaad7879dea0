/* test_once.c - cy_once: the state machine, recursion detection, thread ids,
 * and many threads racing for one Once (fn exactly once, all see done and
 * everything fn wrote). */
#include "cytest.h"
#include "cywait.h"

#include <stdlib.h>
#include <string.h>

static void test_states(void)
{
    cy_once o;
    cy_once_init(&o);
    uint32_t me = cy_once_self();
    CHECK(me != 0);
    CHECK_EQ(cy_once_self(), me); /* stable */
    CHECK(!cy_once_is_done(&o));
    CHECK(!cy_once_running_in(&o, me));
    CHECK_EQ(cy_once_try_begin(&o, me), 1);
    CHECK_EQ(atomic_load(&o.state), CY_ONCE_RUNNING);
    CHECK(!cy_once_is_done(&o));
    CHECK(cy_once_running_in(&o, me));      /* a recursive do() is detected */
    CHECK(!cy_once_running_in(&o, me + 1)); /* another thread is not "in" it */
    CHECK_EQ(cy_once_try_begin(&o, me), 0); /* only once, even for the runner */
    CHECK_EQ(cy_once_try_begin(&o, me + 1), 0);
    /* a waiter with a deadline times out while fn runs, and marks itself */
    CHECK_EQ(cyw_once_wait(&o, cytest_deadline(0.01)), CY_TIMEOUT);
    CHECK_EQ(atomic_load(&o.state), CY_ONCE_RUNNING_WAITERS);
    CHECK(cy_once_running_in(&o, me));
    cy_once_finish(&o);
    CHECK_EQ(atomic_load(&o.state), CY_ONCE_DONE);
    CHECK(cy_once_is_done(&o));
    CHECK(!cy_once_running_in(&o, me));
    CHECK_EQ(cy_once_try_begin(&o, me), 0);
    CHECK_EQ(cy_once_wait(&o, 0, cy_now_ns() - 1, NULL), CY_OK); /* done: at once */
    CHECK_EQ(cy_once_wait(&o, 0, CY_NO_DEADLINE, NULL), CY_OK);
}

static void test_finish_without_waiters(void)
{
    cy_once o;
    cy_once_init(&o);
    CHECK_EQ(cy_once_try_begin(&o, cy_once_self()), 1);
    cy_once_finish(&o);
    CHECK(cy_once_is_done(&o));
    CHECK_EQ(atomic_load(&o.owner), 0);
}

/* ---------------------------------------------------------------- thread ids */

#define ID_THREADS 16

struct ids {
    uint32_t id[ID_THREADS];
};

static void id_thread(void *ctx, int i)
{
    struct ids *s = ctx;
    uint32_t a = cy_once_self();
    CHECK(a != 0);
    CHECK_EQ(cy_once_self(), a);
    s->id[i] = a;
}

static void test_self_ids(void)
{
    struct ids s;
    memset(&s, 0, sizeof s);
    cytest_parallel(ID_THREADS, id_thread, &s);
    for (int i = 0; i < ID_THREADS; i++)
        for (int j = i + 1; j < ID_THREADS; j++)
            CHECK_MSG(s.id[i] != s.id[j], "threads %d and %d share id %u", i, j, s.id[i]);
    CHECK(s.id[0] != cy_once_self());
}

/* ------------------------------------------------------------------- race */

#define PAYLOAD 16

struct race {
    cy_once *onces;
    long rounds;
    int threads;
    _Atomic long round;   /* published once everyone finished the previous one */
    _Atomic long arrived; /* threads finished with the current round */
    _Atomic long calls;   /* fn calls, all rounds */
    _Atomic long timeouts, recursions;
    long payload[PAYLOAD]; /* plain, written by fn, read by everyone after */
    unsigned fn_spins;
};

static void race_thread(void *ctx, int id)
{
    struct race *c = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 400);
    uint32_t me = cy_once_self();
    for (long r = 0; r < c->rounds; r++) {
        while (atomic_load(&c->round) < r)
            sched_yield();
        cy_once *o = &c->onces[r];
        if (cytest_below(&rng, 4) == 0)
            cytest_spin((unsigned)cytest_below(&rng, 500)); /* some arrive late */
        if (!cy_once_is_done(o)) {
            if (cy_once_try_begin(o, me)) {
                atomic_fetch_add(&c->calls, 1);
                for (int i = 0; i < PAYLOAD; i++)
                    c->payload[i] = r + 1;
                if (c->fn_spins)
                    cytest_spin((unsigned)cytest_below(&rng, c->fn_spins));
                cy_once_finish(o);
            } else if (cy_once_running_in(o, me)) {
                atomic_fetch_add(&c->recursions, 1); /* we are not running it */
            } else {
                /* half the waiters use deadlines that may run out first */
                int64_t dl = (id & 1) ? cytest_deadline(10) : cytest_deadline(1e-6 * (double)cytest_below(&rng, 50));
                cy_status st = cyw_once_wait(o, dl);
                if (st == CY_TIMEOUT && (id & 1))
                    atomic_fetch_add(&c->timeouts, 1);
                if (st == CY_TIMEOUT && cyw_once_wait(o, cytest_deadline(10)) != CY_OK)
                    atomic_fetch_add(&c->timeouts, 1);
            }
        }
        CHECK(cy_once_is_done(o));
        for (int i = 0; i < PAYLOAD; i++)
            CHECK_EQ(c->payload[i], r + 1); /* fn's writes are visible to everyone */
        if (atomic_fetch_add(&c->arrived, 1) + 1 == (long)(r + 1) * c->threads)
            atomic_store(&c->round, r + 1);
    }
}

static void run_race(int threads, long rounds, unsigned fn_spins)
{
    struct race c;
    memset(&c, 0, sizeof c);
    c.onces = calloc((size_t)rounds, sizeof *c.onces);
    for (long r = 0; r < rounds; r++)
        cy_once_init(&c.onces[r]);
    c.rounds = rounds;
    c.threads = threads;
    c.fn_spins = fn_spins;
    cytest_parallel(threads, race_thread, &c);
    CHECK_MSG(atomic_load(&c.calls) == rounds, "fn ran %ld times in %ld rounds", atomic_load(&c.calls), rounds);
    CHECK_EQ(atomic_load(&c.timeouts), 0);
    CHECK_EQ(atomic_load(&c.recursions), 0);
    for (long r = 0; r < rounds; r++)
        CHECK_EQ(atomic_load(&c.onces[r].state), CY_ONCE_DONE);
    free(c.onces);
    cytest_note("%d threads x %ld Onces (fn exactly once each)", threads, rounds);
}

static void test_race(void) { run_race(16, cytest_n(20000), 200); }
/* A slow fn: the others park (RUNNING_WAITERS) and are woken by finish. */
static void test_race_slow_fn(void) { run_race(32, cytest_n(2000), 20000); }

static const cytest_case cases[] = {
    {"states", test_states, NULL},
    {"finish_without_waiters", test_finish_without_waiters, NULL},
    {"self_ids", test_self_ids, NULL},
    {"race", test_race, NULL},
    {"race_slow_fn", test_race_slow_fn, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "once", cases, sizeof cases / sizeof cases[0]);
}
