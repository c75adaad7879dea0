/* cy_barrier.h - threading.Barrier's state machine, in C.
 *
 * The states of CPython's Lib/threading.py but one: FILLING (threads arrive),
 * RESETTING (reset() while threads wait: they leave with BrokenBarrierError,
 * and the last one out re-opens the barrier) and BROKEN.  threading also has
 * DRAINING: once released, its threads must all leave wait() before anyone
 * may enter again, so a thread that goes straight back to the barrier waits
 * for the others to wake, which costs a second wake-up per round.  Here a
 * release ends the round instead: `round` moves on, `count` starts again at
 * 0, and the released threads need nothing more from the barrier (each
 * holds a ticket with the round it arrived in).  A thread that arrives
 * before the others have woken belongs to the next round, as it would once
 * they had left in threading; an abort() or reset() after the release does
 * not reach the released threads (in threading it reaches those that have
 * not woken yet).
 *
 * The fields change under a small mutex that nobody holds while sleeping;
 * sleepers park on `epoch`, which moves on every change they may be waiting
 * for.  The action is Python, so the C core only tells the last arriving
 * thread to run it (CY_BARRIER_LAST) and hears back how it went.  The action
 * runs without the mutex: abort() or reset() meanwhile take effect at once
 * and the last thread then gets BrokenBarrierError (threading would make
 * them wait for the action); a waiter whose timeout runs out while the
 * action runs waits for its outcome (as in threading).
 */
#ifndef CY_BARRIER_H
#define CY_BARRIER_H

#include "cy_fork.h"
#include "cy_spin.h"
#include "cy_waiter.h"

enum { CY_BARRIER_FILLING = 0, CY_BARRIER_RESETTING = -1, CY_BARRIER_BROKEN = -2 };

/* Results beyond cy_status's CY_OK / CY_TIMEOUT / CY_INTR. */
enum { CY_BARRIER_LAST = 16, CY_BARRIER_BROKEN_ERR = 17 };

typedef struct {
    cy_mutex mu;
    _Atomic uint32_t epoch; /* the futex word; moves on every state change and release */
    _Atomic int32_t state;  /* written under mu; read without it only to spin */
    uint64_t round;         /* rounds released so far; guarded by mu */
    uint32_t count;         /* threads arrived in this round, not yet released or gone; guarded by mu */
    uint32_t parties;
    uint32_t sleepers;      /* threads parked (or about to) on epoch; guarded by mu */
    cy_spinner spin;
} cy_barrier; /* in the fork registry (cy_fork.h) while count > 0 and parties > 1 */

/* What a thread holds between arriving and leaving. */
typedef struct {
    uint32_t index; /* arrival index, 0 .. parties-1 */
    uint32_t epoch; /* the epoch it arrived at: a spinning waiter watches for a move */
    uint64_t round; /* the round it arrived in */
} cy_barrier_ticket;

static inline void cy_barrier_init(cy_barrier *b, uint32_t parties)
{
    cy_mutex_init(&b->mu);
    atomic_init(&b->epoch, 0);
    atomic_init(&b->state, CY_BARRIER_FILLING);
    b->round = 0;
    b->count = 0;
    b->parties = parties;
    b->sleepers = 0;
    cy_spinner_init(&b->spin);
}

/* Enter (waiting while a reset finishes or the last thread of this round
 * runs the action) and take a ticket: CY_OK, or CY_BARRIER_LAST (the caller
 * runs the action and then calls cy_barrier_action_done),
 * CY_BARRIER_BROKEN_ERR, or CY_INTR (not entered; call again after running
 * signal handlers).  With block == 0 it returns CY_TIMEOUT instead of waiting
 * (so callers can try first without releasing the GIL). */
int cy_barrier_arrive(cy_barrier *b, cy_barrier_ticket *t, int block);

/* cy_barrier_arrive(block = 1) for cy_wait(): the begin token is the
 * address of the ticket to fill; no deadline (threading has none there). */
extern const cy_wait_op cy_barrier_arrive_op;

/* After CY_OK from arrive: wait for the others.  CY_OK when released,
 * CY_BARRIER_BROKEN_ERR when broken, reset or timed out (a timeout breaks
 * the barrier, as in threading), CY_INTR (still inside: call again, or
 * cy_barrier_leave if the signal handler raised), CY_CANCELLED when the
 * token of `w` (may be NULL) fired: the barrier is broken as by a timeout, and the
 * caller has left.  A release wins over a timeout, a signal or a
 * cancellation that comes with it.
 *
 * It spins before it parks, and a thread released while spinning lingers,
 * as cy_spin.h describes. */
int cy_barrier_await(cy_barrier *b, const cy_barrier_ticket *t, int64_t deadline, cy_waiter *w);

/* cy_barrier_await for cy_wait(): the begin token is the ticket's address;
 * leaving is cy_barrier_leave. */
extern const cy_wait_op cy_barrier_wait_op;

/* The last thread reports its action: ok != 0 releases everyone (CY_OK, or
 * CY_BARRIER_BROKEN_ERR if the barrier was aborted or reset meanwhile);
 * ok == 0 breaks the barrier.  Either way the caller has left. */
int cy_barrier_action_done(cy_barrier *b, int ok);

/* Leave without waiting (a signal handler raised while inside); nothing to
 * do if the ticket's round was released meanwhile. */
void cy_barrier_leave(cy_barrier *b, const cy_barrier_ticket *t);

/* For a waiter that does not sleep (an asyncio task, cy_hub.h).  Arrival:
 * cy_barrier_arrive(block = 0) first; on its CY_TIMEOUT, this: what
 * arrive returns, or CY_AGAIN with n of record w armed on the epoch (once
 * poked: cy_barrier_disarm, then call again). */
int cy_barrier_arrive_arm(cy_barrier *b, cy_barrier_ticket *t, cy_wnode *n, cy_waiter *w);

/* After arriving (CY_OK): CY_OK when released, CY_BARRIER_BROKEN_ERR when
 * broken or reset (the caller has left), CY_CANCELLED when w's token fired
 * (the barrier broken as by a timeout; left), or CY_AGAIN armed as above. */
int cy_barrier_arm(cy_barrier *b, const cy_barrier_ticket *t, cy_wnode *n, cy_waiter *w);
void cy_barrier_disarm(cy_barrier *b, cy_wnode *n);

/* An armed waiter gives up (its timeout ran out, its task was cancelled):
 * CY_OK if released meanwhile, else it breaks the barrier (threading's
 * rule for a timeout), leaves, and returns CY_BARRIER_BROKEN_ERR. */
int cy_barrier_give_up(cy_barrier *b, const cy_barrier_ticket *t, cy_wnode *n);

void cy_barrier_reset(cy_barrier *b);

/* After fork: the threads inside belonged to threads that no longer exist:
 * a fresh mutex and a fresh round, empty and filling (what reset() turns
 * into once everyone inside has left).  The child's cy_fork_child() does it
 * for every barrier that had threads inside. */
void cy_barrier_reinit(cy_barrier *b);
void cy_barrier_abort(cy_barrier *b);
uint32_t cy_barrier_n_waiting(cy_barrier *b);

static inline int cy_barrier_broken(cy_barrier *b)
{
    return atomic_load_explicit(&b->state, CY_ACQUIRE) == CY_BARRIER_BROKEN;
}

#endif /* CY_BARRIER_H */
