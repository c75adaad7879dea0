/* cy_spin.h - spin before parking, for as long as waits here have lately lasted.
 *
 * Parking costs the waiter little, but waking it costs the waker a system
 * call and the waiter the time its core takes to come back from idle: a few
 * microseconds on bare metal, tens of microseconds in a virtual machine whose
 * idle CPU has halted.  A waiter that is released a few microseconds after it
 * starts to wait does better to keep its core busy watching the word.
 *
 * How long to watch is learned per primitive, the way KVM learns how long a
 * halted vCPU should poll (virt/kvm/kvm_main.c, halt_poll_ns): a wait that
 * ended within the budget leaves it alone; one that needed a park but ended
 * within CY_SPIN_MAX_NS doubles it (from CY_SPIN_START_NS); one that took
 * longer, or timed out, halves it, down to 0, where waiters park at once.  So
 * a hand-off that repeats every few microseconds is caught by a spinning
 * waiter, and a barrier that threads reach every few milliseconds spins for
 * nothing only a few times.
 *
 * At most one thread spins on a primitive at a time (the others park at
 * once), and nobody spins when the process may run on one CPU only: there the
 * spinner would only hold up the thread it waits for.
 */
#ifndef CY_SPIN_H
#define CY_SPIN_H

#include "cy_park.h"

#ifndef CY_SPIN_MAX_NS
#define CY_SPIN_MAX_NS 100000
#endif
#ifndef CY_SPIN_START_NS
#define CY_SPIN_START_NS 2000
#endif

typedef struct {
    _Atomic uint32_t budget_ns; /* how long the next waiter may spin */
    _Atomic uint32_t spinning;  /* 1 while a thread spins */
} cy_spinner;

static inline void cy_spinner_init(cy_spinner *s)
{
    atomic_init(&s->budget_ns, 0);
    atomic_init(&s->spinning, 0);
}

/* Spin while *addr == expected, for at most the budget and never past
 * `deadline`.  Returns nonzero if the word moved.  *start is set to when the
 * wait began (for cy_spin_learn). */
int cy_spin_while(cy_spinner *s, _Atomic uint32_t *addr, uint32_t expected, int64_t deadline, int64_t *start);

/* After a wait that had to park: `waited_ns` is how long the whole wait
 * lasted, `timed_out` whether it ended by its deadline. */
void cy_spin_learn(cy_spinner *s, int64_t waited_ns, int timed_out);

/* Nonzero if this process may run on more than one CPU (checked at most
 * once a second; the answer can change with sched_setaffinity). */
int cy_multicore(int64_t now);

#endif /* CY_SPIN_H */
