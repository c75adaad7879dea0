#include "cy_barrier.h"

/* State changes happen under mu; `epoch` then moves and sleepers wake. */
static void set_state_locked(cy_barrier *b, int32_t state)
{
    atomic_store_explicit(&b->state, state, CY_RELEASE);
    atomic_fetch_add_explicit(&b->epoch, 1, CY_RELEASE);
    /* Sleepers register under mu before they let go of it, so none is
     * missed; with none, the round trip needs no system call. */
    if (b->sleepers != 0)
        cy_wake(&b->epoch, CY_WAKE_ALL);
}

/* One thread leaves wait(); the last one out of a drain or reset re-opens it. */
static void leave_locked(cy_barrier *b)
{
    int32_t s = atomic_load_explicit(&b->state, CY_RELAXED);
    if (--b->count == 0 && (s == CY_BARRIER_DRAINING || s == CY_BARRIER_RESETTING))
        set_state_locked(b, CY_BARRIER_FILLING);
}

/* Sleep until `epoch` moves past e (mu released meanwhile, held on return). */
static cy_status sleep_locked(cy_barrier *b, uint32_t e, int64_t deadline, cy_cancel *c)
{
    b->sleepers++;
    cy_mutex_unlock(&b->mu);
    cy_status r = CY_OK;
    int i;
    for (i = 0; i < CY_SPIN && atomic_load_explicit(&b->epoch, CY_ACQUIRE) == e; i++)
        cy_cpu_relax();
    if (i == CY_SPIN)
        r = cy_park_cancel(&b->epoch, e, deadline, c);
    cy_mutex_lock(&b->mu);
    b->sleepers--;
    return r;
}

int cy_barrier_arrive(cy_barrier *b, uint32_t *index, int block)
{
    cy_mutex_lock(&b->mu);
    for (;;) {
        int32_t s = atomic_load_explicit(&b->state, CY_RELAXED);
        /* Wait while the previous round drains or resets, and while its last
         * thread runs the action (still FILLING, but already full). */
        if (s != CY_BARRIER_DRAINING && s != CY_BARRIER_RESETTING &&
            !(s == CY_BARRIER_FILLING && b->count >= b->parties))
            break;
        if (!block) {
            cy_mutex_unlock(&b->mu);
            return CY_TIMEOUT;
        }
        /* threading waits here without a timeout, and so do we. */
        if (sleep_locked(b, atomic_load_explicit(&b->epoch, CY_RELAXED), CY_NO_DEADLINE, NULL) == CY_INTR) {
            cy_mutex_unlock(&b->mu);
            return CY_INTR;
        }
    }
    if (atomic_load_explicit(&b->state, CY_RELAXED) < 0) {
        cy_mutex_unlock(&b->mu);
        return CY_BARRIER_BROKEN_ERR;
    }
    *index = b->count++;
    int last = b->count == b->parties;
    cy_mutex_unlock(&b->mu);
    return last ? CY_BARRIER_LAST : CY_OK;
}

int cy_barrier_await_ctx(cy_barrier *b, int64_t deadline, cy_cancel *c)
{
    cy_mutex_lock(&b->mu);
    while (atomic_load_explicit(&b->state, CY_RELAXED) == CY_BARRIER_FILLING) {
        cy_status r = sleep_locked(b, atomic_load_explicit(&b->epoch, CY_RELAXED), deadline, c);
        if (atomic_load_explicit(&b->state, CY_RELAXED) != CY_BARRIER_FILLING)
            break;
        if (r == CY_TIMEOUT) {
            if (b->count == b->parties) {
                /* Everyone is in and the last thread runs the action: its
                 * outcome decides, as in threading, where the timed-out
                 * waiter must first get the lock the action runs under. */
                deadline = CY_NO_DEADLINE;
                continue;
            }
            set_state_locked(b, CY_BARRIER_BROKEN); /* threading's _break() */
            break;
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
    int rc = atomic_load_explicit(&b->state, CY_RELAXED) < 0 ? CY_BARRIER_BROKEN_ERR : CY_OK;
    leave_locked(b);
    cy_mutex_unlock(&b->mu);
    return rc;
}

int cy_barrier_action_done(cy_barrier *b, int ok)
{
    int rc = CY_OK;
    cy_mutex_lock(&b->mu);
    if (!ok) {
        set_state_locked(b, CY_BARRIER_BROKEN);
        rc = CY_BARRIER_BROKEN_ERR;
    } else if (atomic_load_explicit(&b->state, CY_RELAXED) == CY_BARRIER_FILLING) {
        set_state_locked(b, CY_BARRIER_DRAINING);
    } else {
        rc = CY_BARRIER_BROKEN_ERR; /* aborted or reset while the action ran */
    }
    leave_locked(b);
    cy_mutex_unlock(&b->mu);
    return rc;
}

void cy_barrier_leave(cy_barrier *b)
{
    cy_mutex_lock(&b->mu);
    leave_locked(b);
    cy_mutex_unlock(&b->mu);
}

void cy_barrier_reset(cy_barrier *b)
{
    cy_mutex_lock(&b->mu);
    int32_t s = atomic_load_explicit(&b->state, CY_RELAXED);
    if (b->count > 0) {
        if (s == CY_BARRIER_FILLING || s == CY_BARRIER_BROKEN)
            s = CY_BARRIER_RESETTING; /* the waiters leave broken; the last one out re-opens */
    } else {
        s = CY_BARRIER_FILLING;
    }
    set_state_locked(b, s);
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
