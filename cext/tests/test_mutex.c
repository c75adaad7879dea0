/* test_mutex.c - cy_mutex: states, exclusion under contention, sleepers. */
#include "cytest.h"
#include "cywait.h"

#include <string.h>

static void test_states(void)
{
    cy_mutex m;
    cy_mutex_init(&m);
    CHECK_EQ(atomic_load(&m.v), 0);
    cy_mutex_lock(&m);
    CHECK_EQ(atomic_load(&m.v), 1);
    cy_mutex_unlock(&m);
    CHECK_EQ(atomic_load(&m.v), 0);
    for (int i = 0; i < 1000; i++) {
        cy_mutex_lock(&m);
        cy_mutex_unlock(&m);
    }
    CHECK_EQ(atomic_load(&m.v), 0);
}

struct excl {
    cy_mutex m;
    long counter;       /* plain: guarded by m (TSan checks) */
    long shadow[4];     /* more plain data written inside */
    _Atomic int inside; /* threads between lock and unlock */
    _Atomic int max_inside;
    long iters;
    unsigned hold_spins;
    long hold_sleep_every; /* sleep inside every N-th time (0: never) */
};

static void excl_thread(void *ctx, int id)
{
    struct excl *e = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id);
    for (long i = 0; i < e->iters; i++) {
        cy_mutex_lock(&e->m);
        int in = atomic_fetch_add(&e->inside, 1) + 1;
        if (in > 1) {
            int mx = atomic_load(&e->max_inside);
            while (in > mx && !atomic_compare_exchange_weak(&e->max_inside, &mx, in)) {
            }
        }
        long c = e->counter;
        if (e->hold_spins)
            cytest_spin((unsigned)cytest_below(&rng, e->hold_spins));
        if (e->hold_sleep_every && cytest_below(&rng, (uint64_t)e->hold_sleep_every) == 0)
            cytest_sleep_us(100); /* force the others to park: state 2 */
        e->counter = c + 1;
        e->shadow[c & 3] += 1;
        atomic_fetch_sub(&e->inside, 1);
        cy_mutex_unlock(&e->m);
    }
}

static void run_excl(int threads, long iters, unsigned spins, long sleep_every)
{
    struct excl e;
    memset(&e, 0, sizeof e);
    cy_mutex_init(&e.m);
    e.iters = iters;
    e.hold_spins = spins;
    e.hold_sleep_every = sleep_every;
    cytest_parallel(threads, excl_thread, &e);
    CHECK_EQ(e.counter, threads * iters);
    CHECK_EQ(e.shadow[0] + e.shadow[1] + e.shadow[2] + e.shadow[3], threads * iters);
    CHECK_EQ(atomic_load(&e.max_inside), 0);
    CHECK_EQ(atomic_load(&e.m.v), 0);
    cytest_note("%d threads x %ld lock/unlock", threads, iters);
}

static void test_exclusion(void) { run_excl(16, cytest_n(100000), 16, 0); }
static void test_exclusion_32(void) { run_excl(32, cytest_n(20000), 64, 0); }
/* Sleeping while holding it sends the others into cy_park (state 2). */
static void test_exclusion_sleepers(void) { run_excl(8, cytest_n(5000), 0, 50); }

static const cytest_case cases[] = {
    {"states", test_states, NULL},
    {"exclusion", test_exclusion, NULL},
    {"exclusion_32", test_exclusion_32, NULL},
    {"exclusion_sleepers", test_exclusion_sleepers, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "mutex", cases, sizeof cases / sizeof cases[0]);
}
