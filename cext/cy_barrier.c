#include "cy_barrier.h"

/* Every change a sleeper may wait for happens under mu and moves `epoch`. */
static void changed_locked(cy_barrier *b)
{
    atomic_fetch_add_explicit(&b->epoch, 1, CY_RELEASE);
    /* Sleepers register under mu before they let go of it, so none is
     * missed; with none (a waiter still spinning), no system call. */
    if (b->sleepers != 0)
        cy_wake(&b->epoch, CY_WAKE_ALL);
}

static void set_state_locked(cy_barrier *b, int32_t state)
{
    atomic_store_explicit(&b->state, state, CY_RELEASE);
    changed_locked(b);
}

/* One thread of the current round leaves without being released; the last
 * one out of a reset re-opens the barrier. */
static void leave_locked(cy_barrier *b)
{
    if (--b->count == 0 && atomic_load_explicit(&b->state, CY_RELAXED) == CY_BARRIER_RESETTING)
        set_state_locked(b, CY_BARRIER_FILLING);
}

/* Sleep until `epoch` moves (mu released meanwhile, held on return). */
static cy_status sleep_locked(cy_barrier *b, int64_t deadline, cy_cancel *c)
{
    uint32_t e = atomic_load_explicit(&b->epoch, CY_RELAXED);
    b->sleepers++;
    cy_mutex_unlock(&b->mu);
    cy_status r = cy_park_cancel(&b->epoch, e, deadline, c);
    cy_mutex_lock(&b->mu);
    b->sleepers--;
    return r;
}

int cy_barrier_arrive(cy_barrier *b, cy_barrier_ticket *t, int block)
{
    cy_mutex_lock(&b->mu);
    int32_t s;
    /* Wait while a reset lets the old round's threads out, and while the
     * last thread of this round runs the action (still FILLING, but full). */
    while ((s = atomic_load_explicit(&b->state, CY_RELAXED)) == CY_BARRIER_RESETTING ||
           (s == CY_BARRIER_FILLING && b->count >= b->parties)) {
        if (!block) {
            cy_mutex_unlock(&b->mu);
            return CY_TIMEOUT;
        }
        /* threading waits here without a timeout, and so do we. */
        if (sleep_locked(b, CY_NO_DEADLINE, NULL) == CY_INTR) {
            cy_mutex_unlock(&b->mu);
            return CY_INTR;
        }
    }
    if (s == CY_BARRIER_BROKEN) {
        cy_mutex_unlock(&b->mu);
        return CY_BARRIER_BROKEN_ERR;
    }
    t->index = b->count++;
    atomic_fetch_add_explicit(&b->arrivals, 1, CY_RELAXED);
    t->round = b->round;
    t->epoch = atomic_load_explicit(&b->epoch, CY_RELAXED);
    int last = b->count == b->parties;
    cy_mutex_unlock(&b->mu);
    return last ? CY_BARRIER_LAST : CY_OK;
}

/* Released, with nobody in the next round yet: see cy_barrier_await_ctx. */
static void linger(cy_barrier *b, uint32_t arrivals, uint32_t epoch, int64_t max_ns)
{
    int64_t until = cy_now_ns() + max_ns;
    if (!cy_multicore(until) || atomic_exchange_explicit(&b->lingering, 1, CY_ACQUIRE))
        return;
    /* Until a thread has arrived and gone on to wait, spinning (so it has
     * let go of the GIL), or a moment after its arrival if it does not spin. */
    int64_t arrived_at = 0;
    for (;;) {
        for (int i = 0; i < 32; i++) {
            if (atomic_load_explicit(&b->epoch, CY_RELAXED) != epoch)
                goto out;
            if (arrived_at == 0) {
                if (atomic_load_explicit(&b->arrivals, CY_RELAXED) != arrivals)
                    arrived_at = cy_now_ns();
            } else if (atomic_load_explicit(&b->spin.spinning, CY_RELAXED)) {
                goto out;
            }
            cy_cpu_relax();
        }
        int64_t now = cy_now_ns();
        if (now >= until || (arrived_at != 0 && now - arrived_at >= 1000))
            break;
    }
out:
    atomic_store_explicit(&b->lingering, 0, CY_RELEASE);
}

int cy_barrier_await_ctx(cy_barrier *b, const cy_barrier_ticket *t, int64_t deadline, cy_cancel *c)
{
    int64_t start;
    int parked = 0;
    cy_spin_while(&b->spin, &b->epoch, t->epoch, deadline, &start);
    cy_mutex_lock(&b->mu);
    for (;;) {
        if (b->round != t->round) { /* released: no longer counted, nothing to undo */
            int alone = b->count == 0 && b->round == t->round + 1;
            uint32_t arrivals = atomic_load_explicit(&b->arrivals, CY_RELAXED);
            uint32_t epoch = atomic_load_explicit(&b->epoch, CY_RELAXED);
            cy_mutex_unlock(&b->mu);
            if (parked)
                cy_spin_learn(&b->spin, cy_now_ns() - start, 0);
            if (alone && t->linger_ns > 0)
                linger(b, arrivals, epoch, t->linger_ns);
            return CY_OK;
        }
        if (atomic_load_explicit(&b->state, CY_RELAXED) != CY_BARRIER_FILLING) {
            leave_locked(b); /* broken or reset */
            cy_mutex_unlock(&b->mu);
            return CY_BARRIER_BROKEN_ERR;
        }
        cy_status r = sleep_locked(b, deadline, c);
        parked = 1;
        if (b->round != t->round || atomic_load_explicit(&b->state, CY_RELAXED) != CY_BARRIER_FILLING)
            continue; /* the barrier's news wins over ours */
        if (r == CY_TIMEOUT) {
            if (b->count == b->parties) {
                /* Everyone is in and the last thread runs the action: its
                 * outcome decides, as in threading, where the timed-out
                 * waiter must first get the lock the action runs under. */
                deadline = CY_NO_DEADLINE;
                continue;
            }
            cy_spin_learn(&b->spin, cy_now_ns() - start, 1);
            set_state_locked(b, CY_BARRIER_BROKEN); /* threading's _break() */
            continue;
        }
        if (r == CY_CANCELLED) {
            set_state_locked(b, CY_BARRIER_BROKEN); /* as a timeout would */
            leave_locked(b);
            cy_mutex_unlock(&b->mu);
            return CY_CANCELLED;
        }
        if (r == CY_INTR) {
            cy_mutex_unlock(&b->mu);
            return CY_INTR;
        }
    }
}

int cy_barrier_action_done(cy_barrier *b, int ok)
{
    int rc = CY_OK;
    cy_mutex_lock(&b->mu);
    if (ok && atomic_load_explicit(&b->state, CY_RELAXED) == CY_BARRIER_FILLING) {
        /* Release: the round ends here, the next one starts empty. */
        b->round++;
        b->count = 0;
        changed_locked(b);
    } else {
        if (!ok)
            set_state_locked(b, CY_BARRIER_BROKEN);
        rc = CY_BARRIER_BROKEN_ERR; /* failed, or aborted or reset while the action ran */
        leave_locked(b);
    }
    cy_mutex_unlock(&b->mu);
    return rc;
}

void cy_barrier_leave(cy_barrier *b, const cy_barrier_ticket *t)
{
    cy_mutex_lock(&b->mu);
    if (b->round == t->round)
        leave_locked(b);
    cy_mutex_unlock(&b->mu);
}

void cy_barrier_reset(cy_barrier *b)
{
    cy_mutex_lock(&b->mu);
    /* With threads inside, they leave broken and the last one out re-opens. */
    set_state_locked(b, b->count > 0 ? CY_BARRIER_RESETTING : CY_BARRIER_FILLING);
    cy_mutex_unlock(&b->mu);
}

void cy_barrier_abort(cy_barrier *b)
{
    cy_mutex_lock(&b->mu);
    set_state_locked(b, CY_BARRIER_BROKEN);
    cy_mutex_unlock(&b->mu);
}

uint32_t cy_barrier_n_waiting(cy_barrier *b)
{
    cy_mutex_lock(&b->mu);
    uint32_t n = atomic_load_explicit(&b->state, CY_RELAXED) == CY_BARRIER_FILLING ? b->count : 0;
    cy_mutex_unlock(&b->mu);
    return n;
}
