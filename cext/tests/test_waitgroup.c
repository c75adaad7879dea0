/* test_waitgroup.c - cy_waitgroup: counter bounds, waiter bit and generation,
 * fan-out/fan-in rounds, waiters gated by a held count, timeouts racing the
 * release, add/done hammering with concurrent waiters. */
#include "cytest.h"
#include "cywait.h"

#include <string.h>

/* ------------------------------------------------------ single thread */

static void test_zero_wait(void)
{
    cy_waitgroup wg;
    cy_wg_init(&wg);
    CHECK_EQ(cy_wg_count(&wg), 0);
    /* zero: OK at once, even with a deadline in the past */
    CHECK_EQ(cy_wg_wait(&wg, cy_wg_wait_begin(&wg), cy_now_ns() - 1000, NULL), CY_OK);
    CHECK_EQ(cy_wg_wait(&wg, cy_wg_wait_begin(&wg), CY_NO_DEADLINE, NULL), CY_OK);
    CHECK_EQ(cy_wg_add(&wg, 0), 0);
    CHECK_EQ(cy_wg_count(&wg), 0);
    CHECK_EQ(atomic_load(&wg.gen), 0);
}

static void test_add_bounds(void)
{
    cy_waitgroup wg;
    cy_wg_init(&wg);
    CHECK_EQ(cy_wg_add(&wg, -1), CY_WG_NEGATIVE);
    CHECK_EQ(atomic_load(&wg.state), 0);
    CHECK_EQ(cy_wg_add(&wg, 1), 0);
    CHECK_EQ(cy_wg_count(&wg), 1);
    CHECK_EQ(cy_wg_add(&wg, -2), CY_WG_NEGATIVE); /* unchanged */
    CHECK_EQ(cy_wg_count(&wg), 1);
    CHECK_EQ(cy_wg_add(&wg, CY_WG_MAX), CY_WG_OVERFLOW); /* unchanged */
    CHECK_EQ(cy_wg_count(&wg), 1);
    CHECK_EQ(cy_wg_add(&wg, CY_WG_MAX - 1), 0);
    CHECK_EQ(cy_wg_count(&wg), CY_WG_MAX);
    CHECK_EQ(cy_wg_add(&wg, 1), CY_WG_OVERFLOW);
    CHECK_EQ(cy_wg_count(&wg), CY_WG_MAX);
    CHECK_EQ(cy_wg_add(&wg, -CY_WG_MAX - 1), CY_WG_NEGATIVE);
    CHECK_EQ(cy_wg_add(&wg, INT64_MIN), CY_WG_NEGATIVE);
    CHECK_EQ(cy_wg_count(&wg), CY_WG_MAX);
    CHECK_EQ(cy_wg_add(&wg, -CY_WG_MAX), 0);
    CHECK_EQ(cy_wg_count(&wg), 0);
    CHECK_EQ(atomic_load(&wg.state), 0);
    /* from zero, deltas beyond the range are refused without overflow */
    CHECK_EQ(cy_wg_add(&wg, INT64_MAX), CY_WG_OVERFLOW);
    CHECK_EQ(cy_wg_add(&wg, CY_WG_MAX + 1), CY_WG_OVERFLOW);
    CHECK_EQ(cy_wg_count(&wg), 0);
    CHECK_EQ(atomic_load(&wg.gen), 0); /* nobody ever waited */
}

/* cy_wg_add computes (count + delta) in int64_t: with a count above zero, a
 * delta near INT64_MAX overflows (undefined behaviour; in practice it wraps
 * negative and reports CY_WG_NEGATIVE instead of CY_WG_OVERFLOW).  The Python
 * layer clamps delta to +-2**40 first, so only C callers can reach it.  Runs
 * in a child: UBSan (-fno-sanitize-recover) aborts the process there. */
static void huge_delta_child(void)
{
    cy_waitgroup wg;
    cy_wg_init(&wg);
    CHECK_EQ(cy_wg_add(&wg, 1), 0);
    volatile int64_t huge = INT64_MAX; /* not folded at compile time */
    CHECK_EQ(cy_wg_add(&wg, huge), CY_WG_OVERFLOW);
    CHECK_EQ(cy_wg_count(&wg), 1);
    CHECK_EQ(cy_wg_add(&wg, huge - 5), CY_WG_OVERFLOW);
    CHECK_EQ(cy_wg_count(&wg), 1);
}

static void test_add_huge_delta(void)
{
    CHECK_MSG(cytest_in_child(huge_delta_child), "cy_wg_add(count=1, INT64_MAX) must be CY_WG_OVERFLOW, count unchanged");
}

static void test_waiter_bit_and_generation(void)
{
    cy_waitgroup wg;
    cy_wg_init(&wg);
    CHECK_EQ(cy_wg_add(&wg, 2), 0);
    /* past deadline */
    CHECK_EQ(cy_wg_wait(&wg, cy_wg_wait_begin(&wg), cy_now_ns() - 1, NULL), CY_TIMEOUT);
    /* a timed-out waiter leaves its bit behind: harmless, costs one wake */
    CHECK_EQ(atomic_load(&wg.state) & CY_WG_WAITERS, CY_WG_WAITERS);
    CHECK_EQ(cy_wg_count(&wg), 2);
    CHECK_EQ(cyw_wg_wait(&wg, cytest_deadline(0.02)), CY_TIMEOUT);
    CHECK_EQ(cy_wg_count(&wg), 2);
    CHECK_EQ(cy_wg_add(&wg, -1), 0);
    CHECK_EQ(atomic_load(&wg.gen), 0);
    CHECK_EQ(atomic_load(&wg.state), (1u << 1) | CY_WG_WAITERS); /* bit kept above zero */
    CHECK_EQ(cy_wg_add(&wg, -1), 0);
    CHECK_EQ(atomic_load(&wg.gen), 1); /* zero with the bit: one generation */
    CHECK_EQ(atomic_load(&wg.state), 0);
    /* zero without waiters: no generation, no wake */
    CHECK_EQ(cy_wg_add(&wg, 3), 0);
    CHECK_EQ(cy_wg_add(&wg, -3), 0);
    CHECK_EQ(atomic_load(&wg.gen), 1);
}

/* ----------------------------------------------------- fan-out / fan-in */

struct fan {
    cy_waitgroup wg;
    int workers, waiters;
    long rounds;
    _Atomic long round;      /* published by the controller */
    _Atomic long dones;      /* worker done() calls, counted before the call */
    _Atomic long acks;       /* waiter returns */
    _Atomic long bad_waits;  /* waits that did not return CY_OK */
    long payload[64];        /* plain, written by workers before done() */
};

static void fan_thread(void *ctx, int id)
{
    struct fan *f = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 100);
    for (long r = 0; r < f->rounds; r++) {
        if (id == 0) {
            if (!cytest_await_at_least(&f->acks, r * f->waiters, 20)) {
                CHECK_MSG(0, "round %ld: waiters did not come back", r);
                atomic_store(&f->round, f->rounds + 1); /* release everyone */
                return;
            }
            CHECK_EQ(cy_wg_count(&f->wg), 0);
            CHECK_EQ(cy_wg_add(&f->wg, f->workers), 0);
            atomic_store(&f->round, r + 1);
            continue;
        }
        while (atomic_load(&f->round) < r + 1)
            sched_yield();
        if (atomic_load(&f->round) > f->rounds)
            return;
        if (id <= f->workers) {
            cytest_spin((unsigned)cytest_below(&rng, 2000));
            f->payload[id % 64] = r + 1;
            atomic_fetch_add(&f->dones, 1);
            CHECK_EQ(cy_wg_add(&f->wg, -1), 0);
        } else {
            cy_status st = cyw_wg_wait(&f->wg, cytest_deadline(10));
            if (st != CY_OK)
                atomic_fetch_add(&f->bad_waits, 1);
            else {
                /* every done() of this round happened before we were released */
                CHECK_LE((r + 1) * f->workers, atomic_load(&f->dones));
                for (int w = 1; w <= f->workers && w < 64; w++)
                    CHECK_LE(r + 1, f->payload[w]); /* plain reads: TSan checks the ordering */
            }
            atomic_fetch_add(&f->acks, 1);
        }
    }
}

static void test_fanout_rounds(void)
{
    struct fan f;
    memset(&f, 0, sizeof f);
    cy_wg_init(&f.wg);
    f.workers = 16;
    f.waiters = 8;
    f.rounds = cytest_n(3000);
    cytest_parallel(1 + f.workers + f.waiters, fan_thread, &f);
    CHECK_EQ(atomic_load(&f.bad_waits), 0);
    CHECK_EQ(atomic_load(&f.acks), f.rounds * f.waiters);
    CHECK_EQ(cy_wg_count(&f.wg), 0);
    cytest_note("%d workers + %d waiters x %ld rounds (wg reused every round)", f.workers, f.waiters,
                f.rounds);
}

/* ------------------------------------------------------------------ gate */

/* Each round the controller holds the count at >= 1 (the gate) while
 * workers add/done around it; the counter cannot reach zero until the gate
 * is released, so no waiter may return CY_OK before that.  Half the waiters
 * use short deadlines that race the release; a wait that starts after the
 * release must succeed; every waiter eventually gets CY_OK. */
struct gate {
    cy_waitgroup wg;
    int workers, waiters;
    long rounds, pairs;
    _Atomic long round;
    _Atomic long released; /* last round whose gate is being released (set just before) */
    _Atomic long opened;   /* last round whose gate has been released (set just after) */
    _Atomic long workers_done;
    _Atomic long acks;
    _Atomic long early, late_timeouts, stuck, short_timeouts;
};

static void gate_thread(void *ctx, int id)
{
    struct gate *g = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 200);
    for (long r = 1; r <= g->rounds; r++) {
        if (id == 0) {
            CHECK_EQ(cy_wg_add(&g->wg, 1), 0); /* the gate */
            atomic_store(&g->round, r);
            if (!cytest_await_at_least(&g->workers_done, r * g->workers, 20)) {
                CHECK_MSG(0, "workers stuck");
                return;
            }
            cytest_spin((unsigned)cytest_below(&rng, 20000));
            atomic_store(&g->released, r);
            CHECK_EQ(cy_wg_add(&g->wg, -1), 0);
            atomic_store(&g->opened, r);
            if (!cytest_await_at_least(&g->acks, r * g->waiters, 20)) {
                CHECK_MSG(0, "round %ld: waiters stuck", r);
                atomic_fetch_add(&g->stuck, 1);
                return;
            }
            continue;
        }
        while (atomic_load(&g->round) < r) {
            if (atomic_load(&g->stuck))
                return;
            sched_yield();
        }
        if (id <= g->workers) {
            for (long i = 0; i < g->pairs; i++) {
                int64_t k = 1 + (int64_t)cytest_below(&rng, 3);
                CHECK_EQ(cy_wg_add(&g->wg, k), 0);
                cytest_spin((unsigned)cytest_below(&rng, 64));
                CHECK_EQ(cy_wg_add(&g->wg, -k), 0);
            }
            atomic_fetch_add(&g->workers_done, 1);
        } else if (id % 2) {
            /* long deadline: one wait, must end with CY_OK after the release */
            cy_status st = cyw_wg_wait(&g->wg, cytest_deadline(10));
            if (st != CY_OK)
                atomic_fetch_add(&g->late_timeouts, 1);
            else if (atomic_load(&g->released) < r)
                atomic_fetch_add(&g->early, 1);
            atomic_fetch_add(&g->acks, 1);
        } else {
            /* short deadlines racing the release */
            int64_t end = cytest_now_ns() + 10000000000LL;
            for (;;) {
                long seen = atomic_load(&g->opened);
                cy_status st = cyw_wg_wait(&g->wg, cytest_deadline(1e-6 * (double)cytest_below(&rng, 300)));
                if (st == CY_OK) {
                    if (atomic_load(&g->released) < r)
                        atomic_fetch_add(&g->early, 1);
                    break;
                }
                atomic_fetch_add(&g->short_timeouts, 1);
                if (seen >= r) { /* released (count stays 0) before we began */
                    atomic_fetch_add(&g->late_timeouts, 1);
                    break;
                }
                if (cytest_now_ns() > end) {
                    atomic_fetch_add(&g->late_timeouts, 1);
                    break;
                }
            }
            atomic_fetch_add(&g->acks, 1);
        }
    }
}

static void test_gate(void)
{
    struct gate g;
    memset(&g, 0, sizeof g);
    cy_wg_init(&g.wg);
    g.workers = 8;
    g.waiters = 8;
    g.rounds = cytest_n(2000);
    g.pairs = 50;
    cytest_parallel(1 + g.workers + g.waiters, gate_thread, &g);
    CHECK_MSG(atomic_load(&g.early) == 0, "%ld waits returned CY_OK while the count could not have been zero",
              atomic_load(&g.early));
    CHECK_MSG(atomic_load(&g.late_timeouts) == 0, "%ld waits timed out after the count was zero",
              atomic_load(&g.late_timeouts));
    CHECK_EQ(cy_wg_count(&g.wg), 0);
    cytest_note("%d workers x %ld rounds x %ld add/done pairs, %d waiters (%ld short waits timed out "
                "while gated)",
                g.workers, g.rounds, g.pairs, g.waiters, atomic_load(&g.short_timeouts));
}

/* ---------------------------------------------------------------- hammer */

struct hammer {
    cy_waitgroup wg;
    int workers, waiters;
    long iters;
    _Atomic long workers_left;
    _Atomic long waits, bad_waits;
};

static void hammer_thread(void *ctx, int id)
{
    struct hammer *h = ctx;
    cytest_rng rng;
    cytest_rng_init(&rng, (uint64_t)id + 300);
    if (id < h->workers) {
        for (long i = 0; i < h->iters; i++) {
            switch (cytest_below(&rng, 4)) {
            case 0: /* add(k) then k done()s */
            {
                int64_t k = 1 + (int64_t)cytest_below(&rng, 4);
                CHECK_EQ(cy_wg_add(&h->wg, k), 0);
                for (int64_t j = 0; j < k; j++)
                    CHECK_EQ(cy_wg_add(&h->wg, -1), 0);
                break;
            }
            default:
                CHECK_EQ(cy_wg_add(&h->wg, 1), 0);
                if ((i & 63) == 0)
                    sched_yield();
                CHECK_EQ(cy_wg_add(&h->wg, -1), 0);
            }
        }
        atomic_fetch_sub(&h->workers_left, 1);
        return;
    }
    /* waiters: every wait (generous deadline) returns CY_OK */
    while (atomic_load(&h->workers_left) > 0) {
        cy_status st = cyw_wg_wait(&h->wg, cytest_deadline(60));
        atomic_fetch_add_explicit(&h->waits, 1, CY_RELAXED);
        if (st != CY_OK) {
            atomic_fetch_add(&h->bad_waits, 1);
            return;
        }
    }
    CHECK_EQ(cyw_wg_wait(&h->wg, cytest_deadline(10)), CY_OK);
}

static void run_hammer(int workers, int waiters, long iters)
{
    struct hammer h;
    memset(&h, 0, sizeof h);
    cy_wg_init(&h.wg);
    h.workers = workers;
    h.waiters = waiters;
    h.iters = iters;
    atomic_store(&h.workers_left, workers);
    cytest_parallel(workers + waiters, hammer_thread, &h);
    CHECK_EQ(atomic_load(&h.bad_waits), 0);
    CHECK_EQ(cy_wg_count(&h.wg), 0);
    CHECK_EQ(atomic_load(&h.wg.state), 0);
    cytest_note("%d workers x %ld add/done, %d waiters: %ld waits, all CY_OK", workers, iters, waiters,
                atomic_load(&h.waits));
}

static void test_hammer(void) { run_hammer(16, 4, cytest_n(100000)); }
static void test_hammer_32(void) { run_hammer(28, 4, cytest_n(20000)); }

/* ------------------------------------------- generation across CY_INTR */

/* The Python layer waits through cy_wait: the wait returns CY_INTR (a
 * signal on the futex backend; the end of every 20 ms slice on the
 * fallback, macOS and Windows backends), cy_wait calls on_intr (Python
 * re-takes the GIL and runs signal handlers), then waits again.  A zero
 * crossing in that gap (done() to zero, then add() for the next batch) must
 * still end the wait: the retry continues from the generation read when the
 * wait began (cy_wg_wait_begin, cy_wait's begin token).  This case opens
 * the gap on purpose, in on_intr. */
struct gapctx {
    cy_waitgroup wg;
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
    uint32_t gen = cy_wg_wait_begin(&c->wg);
    c->result = (cy_status)cy_wait(&cy_wg_wait_op, &c->wg, gen, dl, NULL, gap_on_intr, c);
    return NULL;
}

static void test_generation_across_intr(void)
{
    struct gapctx c;
    memset(&c, 0, sizeof c);
    cy_wg_init(&c.wg);
    CHECK_EQ(cy_wg_add(&c.wg, 1), 0);
    cytest_thread th;
    cytest_start(&th, gap_waiter, &c);
    int64_t t0 = cy_now_ns();
    while (!atomic_load(&c.in_gap) && cy_now_ns() - t0 < 5000000000LL) {
        cytest_sleep_us(2000);
        cytest_poke(th.t); /* futex: EINTR; fallback: the slice ends anyway */
    }
    CHECK(atomic_load(&c.in_gap));
    /* counter to zero (the waiter's bit is set: a new generation) and up again */
    CHECK_EQ(cy_wg_add(&c.wg, -1), 0);
    CHECK_EQ(cy_wg_add(&c.wg, 1), 0);
    atomic_store(&c.go_on, 1);
    cytest_join(&th);
    CHECK_MSG(c.result == CY_OK,
              "wait returned %d: the counter reached zero during the wait, but the retry after "
              "CY_INTR started a new generation",
              (int)c.result);
    CHECK_EQ(cy_wg_add(&c.wg, -1), 0);
}

static const cytest_case cases[] = {
    {"zero_wait", test_zero_wait, NULL},
    {"add_bounds", test_add_bounds, NULL},
    {"add_huge_delta", test_add_huge_delta, NULL},
    {"waiter_bit_and_generation", test_waiter_bit_and_generation, NULL},
    {"fanout_rounds", test_fanout_rounds, NULL},
    {"gate", test_gate, NULL},
    {"hammer", test_hammer, NULL},
    {"hammer_32", test_hammer_32, NULL},
    {"generation_across_intr", test_generation_across_intr, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "waitgroup", cases, sizeof cases / sizeof cases[0]);
}
