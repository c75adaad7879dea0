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
 * spinner would only hold up the thread it waits for.  Past its first
 * CY_SPIN_YIELD_AFTER_NS a spinner yields the CPU between looks, so that
 * with more runnable threads than CPUs it does not starve the others.
 *
 * Lingering: a waiter that got what it waited for while spinning may spin a
 * little longer, until another thread starts to wait anywhere in cysync (or
 * the time set by cy_spin_set_linger passes).  That is for callers that must next take a lock the
 * releasing thread holds - Python's GIL, which a thread keeps from its
 * release() until it blocks: taking it at once would put the waiter to sleep
 * until the releaser lets go, and cost a second wake-up; a releaser that goes
 * on to wait lets go as it starts to.  Off (0) unless cy_spin_set_linger()
 * turns it on; one lingering thread per primitive.
 */
#ifndef CY_SPIN_H
#define CY_SPIN_H

#include "cy_park.h"

#ifndef CY_SPIN_MAX_NS
#define CY_SPIN_MAX_NS 100000
#endif
#ifndef CY_SPIN_YIELD_AFTER_NS
#define CY_SPIN_YIELD_AFTER_NS 2000
#endif
#ifndef CY_SPIN_START_NS
#define CY_SPIN_START_NS 2000
#endif

typedef struct {
    _Atomic uint32_t budget_ns; /* how long the next waiter may spin */
    _Atomic uint32_t spinning;  /* 1 while a thread spins */
    _Atomic uint32_t lingering; /* 1 while a thread lingers */
} cy_spinner;

static inline void cy_spinner_init(cy_spinner *s)
{
    atomic_init(&s->budget_ns, 0);
    atomic_init(&s->spinning, 0);
    atomic_init(&s->lingering, 0);
}

/* Spin while *addr == expected, for at most the budget and never past
 * `deadline`.  Returns nonzero if the word moved.  *start is set to when the
 * wait began (for cy_spin_learn), *mark to where cy_wait_mark() stood when
 * the spin ended (for cy_spin_linger).  Counts as a wait that starts. */
int cy_spin_while(cy_spinner *s, _Atomic uint32_t *addr, uint32_t expected, int64_t deadline, int64_t *start,
                  uint32_t *mark);

/* Moves each time a thread starts to wait (enters cy_spin_while). */
uint32_t cy_wait_mark(void);

/* After a wait that ended while spinning (mark from cy_spin_while): spin
 * until another thread starts to wait or `times` times the linger time
 * passes.  1 for hand-offs, where the releaser waits right after; more
 * where it goes on producing first (a channel's sender fills the buffer
 * before it blocks, a few microseconds). */
void cy_spin_linger(cy_spinner *s, uint32_t mark, uint32_t times);

/* How long cy_spin_linger may spin, for the whole process (at most 1 s);
 * 0, the default, turns lingering off. */
void cy_spin_set_linger(int64_t ns);

/* After a wait that had to park: `waited_ns` is how long the whole wait
 * lasted, `timed_out` whether it ended by its deadline. */
void cy_spin_learn(cy_spinner *s, int64_t waited_ns, int timed_out);

/* Nonzero if this process may run on more than one CPU (checked at most
 * once a second; the answer can change with sched_setaffinity). */
int cy_multicore(int64_t now);

#endif /* CY_SPIN_H */
