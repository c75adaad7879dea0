/* test_spin.c - cy_spin: how the spin budget is learned, that a spin ends
 * when the word moves or the budget or deadline runs out, one spinner at a
 * time, and no spinning when the process may use one CPU only. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_setaffinity */
#endif
#include "cytest.h"
#include "cy_spin.h"

#if defined(__linux__)
#include <sched.h>
#endif

static uint32_t budget(cy_spinner *s) { return atomic_load(&s->budget_ns); }

static void test_learn(void)
{
    cy_spinner s;
    cy_spinner_init(&s);
    CHECK_EQ(budget(&s), 0);
    cy_spin_learn(&s, 500, 0); /* a short park: start spinning */
    CHECK_EQ(budget(&s), CY_SPIN_START_NS);
    cy_spin_learn(&s, CY_SPIN_START_NS / 2, 0); /* the spin would have caught it: no change */
    CHECK_EQ(budget(&s), CY_SPIN_START_NS);
    cy_spin_learn(&s, CY_SPIN_START_NS + 1, 0); /* a bit longer: double */
    CHECK_EQ(budget(&s), 2 * CY_SPIN_START_NS);
    for (int i = 0; i < 40; i++)
        cy_spin_learn(&s, CY_SPIN_MAX_NS, 0);
    CHECK_EQ(budget(&s), CY_SPIN_MAX_NS); /* capped */
    cy_spin_learn(&s, CY_SPIN_MAX_NS + 1, 0); /* too long to spin for: halve */
    CHECK_EQ(budget(&s), CY_SPIN_MAX_NS / 2);
    cy_spin_learn(&s, 10, 1); /* a timeout halves too */
    CHECK_EQ(budget(&s), CY_SPIN_MAX_NS / 4);
    for (int i = 0; i < 40; i++)
        cy_spin_learn(&s, 1000000000, 0);
    CHECK_EQ(budget(&s), 0); /* long waits: park at once */
}

struct flip {
    _Atomic uint32_t word;
    long after_us;
};

static void *flipper(void *p)
{
    struct flip *f = p;
    cytest_sleep_us(f->after_us);
    atomic_store(&f->word, 1);
    return NULL;
}

static void test_spin_while(void)
{
    cy_spinner s;
    cy_spinner_init(&s);
    _Atomic uint32_t w;
    atomic_init(&w, 0);
    int64_t start;
    uint32_t mark;

    /* budget 0: no spin, just a look */
    int64_t t0 = cy_now_ns();
    CHECK_EQ(cy_spin_while(&s, &w, 0, CY_NO_DEADLINE, &start, &mark), 0);
    CHECK_LE(t0, start);
    atomic_store(&w, 7);
    CHECK_EQ(cy_spin_while(&s, &w, 0, CY_NO_DEADLINE, &start, &mark), 1);
    atomic_store(&w, 0);

    if (!cy_multicore(cy_now_ns())) {
        cytest_note("one CPU: spinning is off, the rest is skipped");
        return;
    }
    /* the budget runs out */
    atomic_store(&s.budget_ns, 200000);
    t0 = cy_now_ns();
    CHECK_EQ(cy_spin_while(&s, &w, 0, CY_NO_DEADLINE, &start, &mark), 0);
    int64_t took = cy_now_ns() - t0;
    CHECK_MSG(took >= 200000, "spun %lld ns of a 200000 ns budget", (long long)took);
    CHECK_EQ(atomic_load(&s.spinning), 0);

    /* the deadline comes first */
    atomic_store(&s.budget_ns, 100000000);
    t0 = cy_now_ns();
    CHECK_EQ(cy_spin_while(&s, &w, 0, t0 + 300000, &start, &mark), 0);
    took = cy_now_ns() - t0;
    CHECK_MSG(took >= 300000 && took < 50000000, "spun %lld ns to a 300000 ns deadline", (long long)took);

    /* another thread moves the word: the spin ends early (a generous bound,
     * the other thread may need its core first) */
    struct flip f;
    atomic_init(&f.word, 0);
    f.after_us = 1000;
    cytest_thread th;
    cytest_start(&th, flipper, &f);
    t0 = cy_now_ns();
    int moved = cy_spin_while(&s, &f.word, 0, t0 + 5000000000LL, &start, &mark);
    took = cy_now_ns() - t0;
    cytest_join(&th);
    CHECK_EQ(moved, 1);
    CHECK_MSG(took < 90000000, "the spin outlived the move by far: %lld ns", (long long)took);

    /* one spinner at a time: while one spins, another only looks */
    atomic_store(&s.spinning, 1);
    t0 = cy_now_ns();
    CHECK_EQ(cy_spin_while(&s, &w, 0, CY_NO_DEADLINE, &start, &mark), 0);
    CHECK_MSG(cy_now_ns() - t0 < 50000000, "a second thread spun");
    CHECK_EQ(atomic_load(&s.spinning), 1); /* and left the first one's flag alone */
    atomic_store(&s.spinning, 0);
}

/* A thread that starts to wait: moves cy_wait_mark() after a while. */
static void *starts_to_wait(void *p)
{
    struct flip *f = p;
    cy_spinner other;
    int64_t start;
    uint32_t mark;
    cy_spinner_init(&other);
    cytest_sleep_us(f->after_us);
    atomic_store(&f->word, 1);
    (void)cy_spin_while(&other, &f->word, 0, CY_NO_DEADLINE, &start, &mark);
    return NULL;
}

static void test_linger(void)
{
    cy_spinner s;
    cy_spinner_init(&s);
    _Atomic uint32_t w;
    atomic_init(&w, 1);
    int64_t start;
    uint32_t mark;

    /* cy_spin_while counts as a wait that starts, and reports the mark after it */
    uint32_t before = cy_wait_mark();
    CHECK_EQ(cy_spin_while(&s, &w, 0, CY_NO_DEADLINE, &start, &mark), 1);
    CHECK_EQ(mark, before + 1);

    /* off by default: no linger at all */
    int64_t t0 = cy_now_ns();
    cy_spin_linger(&s, cy_wait_mark(), 1);
    CHECK_MSG(cy_now_ns() - t0 < 50000000, "lingered while lingering is off");

    cy_spin_set_linger(1000000); /* 1 ms */
    if (!cy_multicore(cy_now_ns())) {
        cy_spin_set_linger(0);
        cytest_note("one CPU: lingering is off, the rest is skipped");
        return;
    }
    /* nobody starts to wait: the whole time */
    t0 = cy_now_ns();
    cy_spin_linger(&s, cy_wait_mark(), 1);
    int64_t took = cy_now_ns() - t0;
    CHECK_MSG(took >= 1000000, "lingered %lld ns of 1 ms", (long long)took);
    /* somebody started to wait since the mark: not at all */
    mark = cy_wait_mark();
    (void)cy_spin_while(&s, &w, 0, CY_NO_DEADLINE, &start, &before);
    t0 = cy_now_ns();
    cy_spin_linger(&s, mark, 1);
    CHECK_MSG(cy_now_ns() - t0 < 500000, "lingered although a wait had started");
    /* one lingerer at a time */
    atomic_store(&s.lingering, 1);
    t0 = cy_now_ns();
    cy_spin_linger(&s, cy_wait_mark(), 1);
    CHECK_MSG(cy_now_ns() - t0 < 500000, "a second thread lingered");
    CHECK_EQ(atomic_load(&s.lingering), 1);
    atomic_store(&s.lingering, 0);
    /* another thread starts to wait meanwhile: the linger ends early */
    cy_spin_set_linger(500000000); /* 0.5 s: room for a slow thread start */
    struct flip f;
    atomic_init(&f.word, 0);
    f.after_us = 100;
    cytest_thread th;
    mark = cy_wait_mark();
    cytest_start(&th, starts_to_wait, &f);
    t0 = cy_now_ns();
    cy_spin_linger(&s, mark, 1);
    took = cy_now_ns() - t0;
    cytest_join(&th);
    CHECK_MSG(took < 400000000 && cy_wait_mark() != mark, "lingered %lld ns although a wait started",
              (long long)took);
    cy_spin_set_linger(0);
    CHECK_EQ(atomic_load(&s.lingering), 0);
}

static void test_one_cpu(void)
{
#if defined(__linux__)
    cpu_set_t all, one;
    CHECK_EQ(sched_getaffinity(0, sizeof all, &all), 0);
    if (CPU_COUNT(&all) < 2) {
        cytest_note("one CPU already");
        CHECK_EQ(cy_multicore(cy_now_ns() + 2000000000LL), 0);
        return;
    }
    int first = 0;
    while (!CPU_ISSET(first, &all))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    /* the answer is refreshed at most once a second: pass clock values past it */
    int64_t now = cy_now_ns();
    CHECK_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    int on_one = cy_multicore(now + 2000000000LL);
    CHECK_EQ(sched_setaffinity(0, sizeof all, &all), 0);
    int on_all = cy_multicore(now + 4000000000LL);
    CHECK_EQ(on_one, 0);
    CHECK_EQ(on_all, 1);

    /* and with one CPU, no spin */
    cy_spinner s;
    cy_spinner_init(&s);
    atomic_store(&s.budget_ns, 100000000);
    _Atomic uint32_t w;
    atomic_init(&w, 0);
    int64_t start;
    uint32_t mark;
    CHECK_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    (void)cy_multicore(now + 6000000000LL);
    int64_t t0 = cy_now_ns();
    CHECK_EQ(cy_spin_while(&s, &w, 0, CY_NO_DEADLINE, &start, &mark), 0);
    int64_t took = cy_now_ns() - t0;
    CHECK_EQ(sched_setaffinity(0, sizeof all, &all), 0);
    (void)cy_multicore(now + 8000000000LL);
    CHECK_MSG(took < 50000000, "spun %lld ns on one CPU", (long long)took);
#else
    cytest_note("affinity is Linux-only here");
#endif
}

static const cytest_case cases[] = {
    {"learn", test_learn, NULL},
    {"spin_while", test_spin_while, NULL},
    {"linger", test_linger, NULL},
    {"one_cpu", test_one_cpu, NULL},
};

int main(int argc, char **argv)
{
    return cytest_main(argc, argv, "spin", cases, sizeof cases / sizeof cases[0]);
}
