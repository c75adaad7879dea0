/* test_park.c - cy_park / cy_wake / clocks, on whichever backend this build has. */
#include "cytest.h"
#include "cywait.h"

#include <limits.h>
#include <signal.h>
#include <string.h>

#ifdef CY_PARK_FALLBACK
#define EXPECTED_BACKEND "fallback"
#else
#define EXPECTED_BACKEND "futex"
#endif

static void test_backend(void)
{
    CHECK_MSG(strcmp(cy_park_backend(), EXPECTED_BACKEND) == 0, "backend %s, expected %s",
              cy_park_backend(), EXPECTED_BACKEND);
}

static void test_clock_and_deadlines(void)
{
    int64_t prev = cy_now_ns();
    CHECK(prev > 0);
    for (long i = 0; i < cytest_n(200000); i++) {
        int64_t t = cy_now_ns();
        CHECK_LE(prev, t);
        prev = t;
    }
    int64_t now = cy_now_ns();
    int64_t d0 = cy_deadline_after(0), dneg = cy_deadline_after(-5), dmin = cy_deadline_after(INT64_MIN);
    CHECK(d0 >= now && d0 - now < 1000000000);
    CHECK(dneg >= now && dneg - now < 1000000000);
    CHECK(dmin >= now && dmin - now < 1000000000);
    CHECK_EQ(cy_deadline_after(INT64_MAX), CY_NO_DEADLINE);
    CHECK_EQ(cy_deadline_after(CY_NO_DEADLINE - 1), CY_NO_DEADLINE); /* saturates */
    int64_t d1 = cy_deadline_after(1000000000);
    CHECK(d1 - now >= 1000000000 && d1 - now < 2000000000);
}

static void test_park_value_changed(void)
{
    _Atomic uint32_t w = 1;
    int64_t t0 = cy_now_ns();
    CHECK_EQ(cy_park(&w, 0, cytest_deadline(5)), CY_OK);
    CHECK_EQ(cy_park(&w, 0, CY_NO_DEADLINE), CY_OK);
    CHECK((cy_now_ns() - t0) < 2000000000);
}

static void test_park_timeout(void)
{
    _Atomic uint32_t w = 0;
    /* A deadline already in the past: at once. */
    int64_t t0 = cy_now_ns();
    CHECK_EQ(cy_park(&w, 0, t0 - 1000), CY_TIMEOUT);
    /* 60 ms, across the fallback's 20 ms slices (CY_INTR in between). */
    int64_t dl = cytest_deadline(0.060);
    int intr = 0;
    cy_status r;
    t0 = cy_now_ns();
    while ((r = cy_park(&w, 0, dl)) == CY_INTR)
        intr++;
    int64_t el = cy_now_ns() - t0;
    CHECK_EQ(r, CY_TIMEOUT);
    CHECK_MSG(cy_now_ns() >= dl, "returned %lld ns before its deadline", (long long)(dl - cy_now_ns()));
    CHECK_MSG(el < 5000000000LL, "60 ms timeout took %lld ms", (long long)(el / 1000000));
#ifdef CY_PARK_FALLBACK
    CHECK_MSG(intr >= 1, "the fallback sleeps in slices and reports CY_INTR between them (%d)", intr);
#else
    CHECK_EQ(intr, 0); /* no signal, no EINTR */
#endif
}

struct waker {
    _Atomic uint32_t word;
    _Atomic int parked;
    cy_status result;
    int64_t deadline;
};

static void *park_until_changed(void *p)
{
    struct waker *k = p;
    atomic_store(&k->parked, 1);
    k->result = cyw_park_until_changed(&k->word, 0, k->deadline);
    return NULL;
}

static void test_park_wake(void)
{
    for (long round = 0; round < cytest_n(200); round++) {
        struct waker k = {0, 0, CY_INTR, cytest_deadline(10)};
        cytest_thread th;
        cytest_start(&th, park_until_changed, &k);
        cytest_await_flag(&k.parked, 10);
        if (round & 1)
            cytest_sleep_us(200); /* let it reach the kernel some of the time */
        atomic_store(&k.word, 1);
        cy_wake(&k.word, round % 3 == 0 ? CY_WAKE_ALL : 1);
        cytest_join(&th);
        CHECK_EQ(k.result, CY_OK);
    }
}

static void test_wake_without_waiters(void)
{
    _Atomic uint32_t w = 7;
    cy_wake(&w, 1);
    cy_wake(&w, 0);
    cy_wake(&w, CY_WAKE_ALL);
    CHECK_EQ(atomic_load(&w), 7);
}

/* ------------------------------------------------------ ping-pong hammer */

#define PAIRS 16

struct pingpong {
    _Atomic uint32_t turn[PAIRS]; /* whose turn, 0 or 1, per pair */
    long rounds;
    int pairs;
    _Atomic long timeouts, handoffs;
    long plain[PAIRS]; /* touched only by the thread whose turn it is */
};

static void pingpong_thread(void *ctx, int id)
{
    struct pingpong *p = ctx;
    int pair = id / 2;
    uint32_t me = (uint32_t)(id % 2), other = me ^ 1u;
    _Atomic uint32_t *turn = &p->turn[pair];
    for (long i = 0; i < p->rounds; i++) {
        int64_t dl = cytest_deadline(10);
        if (cyw_park_until_changed(turn, other, dl) != CY_OK) {
            atomic_fetch_add(&p->timeouts, 1);
            return;
        }
        p->plain[pair]++; /* ordered by the turn word: TSan checks that */
        atomic_store_explicit(turn, other, CY_RELEASE);
        cy_wake(turn, 1);
        atomic_fetch_add_explicit(&p->handoffs, 1, CY_RELAXED);
    }
}

static void run_pingpong(int pairs, long rounds)
{
    struct pingpong p;
    memset(&p, 0, sizeof p);
    p.pairs = pairs;
    p.rounds = rounds;
    for (int i = 0; i < PAIRS; i++)
        atomic_init(&p.turn[i], 0);
    cytest_parallel(pairs * 2, pingpong_thread, &p);
    CHECK_EQ(atomic_load(&p.timeouts), 0);
    CHECK_EQ(atomic_load(&p.handoffs), 2 * pairs * rounds);
    for (int i = 0; i < pairs; i++)
        CHECK_EQ(p.plain[i], 2 * rounds);
    cytest_note("%d threads x %ld hand-offs", pairs * 2, rounds);
}

static void test_pingpong(void) { run_pingpong(1, cytest_n(100000)); }

/* 16 pairs on 16 words: on the fallback the words share its 64 buckets, so
 * wakes for one word meet waiters of another. */
static void test_pingpong_many_words(void) { run_pingpong(PAIRS, cytest_n(10000)); }

/* ------------------------------------------------------- broadcast hammer */

struct bcast {
    _Atomic uint32_t gen;
    _Atomic long acks;
    _Atomic long timeouts;
    long rounds;
    int waiters;
};

static void bcast_thread(void *ctx, int id)
{
    struct bcast *b = ctx;
    if (id == 0) { /* the waker */
        for (long r = 0; r < b->rounds; r++) {
            if (!cytest_await_at_least(&b->acks, r * b->waiters, 20)) {
                atomic_fetch_add(&b->timeouts, 1);
                break;
            }
            atomic_fetch_add_explicit(&b->gen, 1, CY_RELEASE);
            cy_wake(&b->gen, CY_WAKE_ALL);
        }
        return;
    }
    for (long r = 0; r < b->rounds; r++) {
        if (cyw_park_until_changed(&b->gen, (uint32_t)r, cytest_deadline(10)) != CY_OK) {
            atomic_fetch_add(&b->timeouts, 1);
            return;
        }
        /* the waker moves on only when everyone has acked this round */
        CHECK_EQ(atomic_load(&b->gen), r + 1);
        atomic_fetch_add(&b->acks, 1);
    }
}

static void test_broadcast(void)
{
    struct bcast b;
    atomic_init(&b.gen, 0);
    atomic_init(&b.acks, 0);
    atomic_init(&b.timeouts, 0);
    b.rounds = cytest_n(20000);
    b.waiters = 8;
    cytest_parallel(b.waiters + 1, bcast_thread, &b);
    CHECK_EQ(atomic_load(&b.timeouts), 0);
    CHECK_EQ(atomic_load(&b.acks), b.rounds * b.waiters);
    cytest_note("1 waker + %d waiters x %ld wake-all rounds", b.waiters, b.rounds);
}

/* ---------------------------------------------------------- interruption */

struct intr {
    _Atomic uint32_t word;
    _Atomic int started, done;
    cy_status result;
};

static void *park_once(void *p)
{
    struct intr *k = p;
    atomic_store(&k->started, 1);
    k->result = cy_park(&k->word, 0, cytest_deadline(10));
    atomic_store(&k->done, 1);
    return NULL;
}

/* A long park comes back with CY_INTR: on a signal (futex), at the end of a
 * slice (fallback), so the Python layer can run signal handlers. */
static void test_interrupt(void)
{
    struct intr k;
    atomic_init(&k.word, 0);
    atomic_init(&k.started, 0);
    atomic_init(&k.done, 0);
    k.result = CY_OK;
    cytest_thread th;
    int64_t t0 = cy_now_ns();
    cytest_start(&th, park_once, &k);
    cytest_await_flag(&k.started, 10);
    while (!atomic_load(&k.done) && cy_now_ns() - t0 < 5000000000LL) {
        cytest_sleep_us(2000);
        cytest_poke(th.t);
    }
    cytest_join(&th);
    CHECK_EQ(k.result, CY_INTR);
    CHECK_MSG(cy_now_ns() - t0 < 5000000000LL, "the park was not cut short");
}

static const cytest_case cases[] = {
    {"backend", test_backend, NULL},
    {"clock_and_deadlines", test_clock_and_deadlines, NULL},
    {"park_value_changed", test_park_value_changed, NULL},
    {"park_timeout", test_park_timeout, NULL},
    {"park_wake", test_park_wake, NULL},
    {"wake_without_waiters", test_wake_without_waiters, NULL},
    {"pingpong", test_pingpong, NULL},
    {"pingpong_many_words", test_pingpong_many_words, NULL},
    {"broadcast", test_broadcast, NULL},
    {"interrupt", test_interrupt, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "park", cases, sizeof cases / sizeof cases[0]);
}
