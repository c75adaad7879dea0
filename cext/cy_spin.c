#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include "cy_spin.h"

#if defined(_WIN32)
#include <windows.h>
#elif defined(__linux__)
#include <sched.h>
#include <unistd.h>
#else
#include <sched.h>
#include <unistd.h>
#endif

static int count_cpus(void)
{
#if defined(_WIN32)
    DWORD_PTR proc, sys;
    if (GetProcessAffinityMask(GetCurrentProcess(), &proc, &sys)) {
        int n = 0;
        for (; proc; proc &= proc - 1)
            n++;
        return n;
    }
    return 2;
#elif defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return (int)sysconf(_SC_NPROCESSORS_ONLN);
#elif defined(_SC_NPROCESSORS_ONLN)
    return (int)sysconf(_SC_NPROCESSORS_ONLN);
#else
    return 2;
#endif
}

/* Let another runnable thread have this CPU, if there is one; otherwise
 * return at once (and keep the CPU from going idle). */
static void yield_cpu(void)
{
#if defined(_WIN32)
    SwitchToThread();
#else
    sched_yield();
#endif
}

static _Atomic int64_t multicore_checked_at = INT64_MIN;
static _Atomic int multicore = 0;

int cy_multicore(int64_t now)
{
    int64_t at = atomic_load_explicit(&multicore_checked_at, CY_RELAXED);
    if (at == INT64_MIN || now - at >= 1000000000) {
        /* Racing threads may both count; they store the same answer. */
        atomic_store_explicit(&multicore, count_cpus() > 1, CY_RELAXED);
        atomic_store_explicit(&multicore_checked_at, now, CY_RELAXED);
    }
    return atomic_load_explicit(&multicore, CY_RELAXED);
}

static _Atomic uint32_t wait_mark = 0;
static _Atomic uint32_t linger_ns = 0;

uint32_t cy_wait_mark(void) { return atomic_load_explicit(&wait_mark, CY_RELAXED); }

void cy_spin_set_linger(int64_t ns)
{
    atomic_store_explicit(&linger_ns, ns <= 0 ? 0 : ns > 1000000000 ? 1000000000 : (uint32_t)ns, CY_RELAXED);
}

int cy_spin_while(cy_spinner *s, _Atomic uint32_t *addr, uint32_t expected, int64_t deadline, int64_t *start,
                  uint32_t *mark)
{
    int64_t t0 = cy_now_ns();
    *start = t0;
    atomic_fetch_add_explicit(&wait_mark, 1, CY_RELAXED);
    uint32_t budget = atomic_load_explicit(&s->budget_ns, CY_RELAXED);
    if (budget == 0 || atomic_load_explicit(&s->spinning, CY_RELAXED) || !cy_multicore(t0) ||
        atomic_exchange_explicit(&s->spinning, 1, CY_ACQUIRE)) {
        *mark = cy_wait_mark();
        return atomic_load_explicit(addr, CY_ACQUIRE) != expected;
    }
    int64_t until = t0 + budget;
    if (until > deadline)
        until = deadline;
    int moved = 0;
    int64_t now = t0;
    for (;;) {
        /* The clock costs about as much as a few pauses: read it every 32. */
        for (int i = 0; i < 32; i++) {
            if (atomic_load_explicit(addr, CY_ACQUIRE) != expected) {
                moved = 1;
                goto out;
            }
            cy_cpu_relax();
        }
        /* Past the first microseconds, offer the CPU to runnable threads
         * between looks (as parking_lot's SpinWait does): with more threads
         * than CPUs the spinner must not hold up the thread it waits for,
         * and with none the yield returns at once. */
        if (now - t0 >= CY_SPIN_YIELD_AFTER_NS)
            yield_cpu();
        now = cy_now_ns();
        if (now >= until)
            break;
    }
out:
    *mark = cy_wait_mark();
    atomic_store_explicit(&s->spinning, 0, CY_RELEASE);
    return moved;
}

void cy_spin_linger(cy_spinner *s, uint32_t mark, uint32_t times)
{
    int64_t ns = (int64_t)atomic_load_explicit(&linger_ns, CY_RELAXED) * times;
    if (ns == 0 || cy_wait_mark() != mark)
        return;
    int64_t t0 = cy_now_ns(), now = t0, until = t0 + ns;
    if (!cy_multicore(until) || atomic_exchange_explicit(&s->lingering, 1, CY_ACQUIRE))
        return;
    for (;;) {
        for (int i = 0; i < 32; i++) {
            if (cy_wait_mark() != mark)
                goto out;
            cy_cpu_relax();
        }
        /* As in cy_spin_while: past the first microseconds, let runnable
         * threads have the CPU between looks. */
        if (now - t0 >= CY_SPIN_YIELD_AFTER_NS)
            yield_cpu();
        if ((now = cy_now_ns()) >= until)
            break;
    }
out:
    atomic_store_explicit(&s->lingering, 0, CY_RELEASE);
}

void cy_spin_learn(cy_spinner *s, int64_t waited_ns, int timed_out)
{
    uint32_t b = atomic_load_explicit(&s->budget_ns, CY_RELAXED), nb;
    if (timed_out || waited_ns > CY_SPIN_MAX_NS) {
        nb = b / 2;
        if (nb < CY_SPIN_START_NS)
            nb = 0;
    } else if (waited_ns > (int64_t)b) {
        nb = b == 0 ? CY_SPIN_START_NS : (b >= CY_SPIN_MAX_NS / 2 ? CY_SPIN_MAX_NS : b * 2);
    } else {
        return;
    }
    /* A racing update may be lost: the budget is a hint, not a count. */
    atomic_store_explicit(&s->budget_ns, nb, CY_RELAXED);
}
