#include "cy_barrier.h"

static void fork_reset(void *b) { cy_barrier_reinit((cy_barrier *)b); }

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
    if (--b->count != 0)
        return;
    if (b->parties > 1)
        cy_fork_leave(b); /* nobody inside: nothing a forked child must forget */
    if (atomic_load_explicit(&b->state, CY_RELAXED) == CY_BARRIER_RESETTING)
        set_state_locked(b, CY_BARRIER_FILLING);
}

/* Sleep until `epoch` moves (mu released meanwhile, held on return). */
static cy_status sleep_locked(cy_barrier *b, int64_t deadline, cy_waiter *w)
{
    uint32_t e = atomic_load_explicit(&b->epoch, CY_RELAXED);
    b->sleepers++;
    cy_mutex_unlock(&b->mu);
    cy_status r = cy_wait_addr(&b->epoch, e, deadline, w);
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
    if (b->count == 0 && b->parties > 1)
        cy_fork_join(b, fork_reset); /* a thread waits inside: a forked child must forget it */
    t->index = b->count++;
    t->round = b->round;
    t->epoch = atomic_load_explicit(&b->epoch, CY_RELAXED);
    int last = b->count == b->parties;
    cy_mutex_unlock(&b->mu);
    return last ? CY_BARRIER_LAST : CY_OK;
}

int cy_barrier_await(cy_barrier *b, const cy_barrier_ticket *t, int64_t deadline, cy_waiter *w)
{
    int64_t start;
    uint32_t mark;
    int parked = 0;
    cy_spin_while(&b->spin, &b->epoch, t->epoch, deadline, &start, &mark);
    cy_mutex_lock(&b->mu);
    for (;;) {
        if (b->round != t->round) { /* released: no longer counted, nothing to undo */
            cy_mutex_unlock(&b->mu);
            if (parked)
                cy_spin_learn(&b->spin, cy_now_ns() - start, 0);
            else
                cy_spin_linger(&b->spin, mark, 1);
            return CY_OK;
        }
        if (atomic_load_explicit(&b->state, CY_RELAXED) != CY_BARRIER_FILLING) {
            leave_locked(b); /* broken or reset */
            cy_mutex_unlock(&b->mu);
            return CY_BARRIER_BROKEN_ERR;
        }
        cy_status r = sleep_locked(b, deadline, w);
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
        if (b->parties > 1)
            cy_fork_leave(b);
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

static int arrive_op(void *b, uintptr_t ticket, int64_t deadline, cy_waiter *w)
{
    (void)deadline;
    (void)w;
    return cy_barrier_arrive((cy_barrier *)b, (cy_barrier_ticket *)ticket, 1);
}

const cy_wait_op cy_barrier_arrive_op = {arrive_op, NULL};

static int await_op(void *b, uintptr_t ticket, int64_t deadline, cy_waiter *w)
{
    return cy_barrier_await((cy_barrier *)b, (const cy_barrier_ticket *)ticket, deadline, w);
}

static int leave_op(void *b, uintptr_t ticket, int keep)
{
    (void)keep;
    cy_barrier_leave((cy_barrier *)b, (const cy_barrier_ticket *)ticket);
    return 0;
}

const cy_wait_op cy_barrier_wait_op = {await_op, leave_op};

/* Arms n on the epoch with b->mu held (let go of meanwhile, held again
 * unless CY_AGAIN is returned): CY_AGAIN, or CY_OK to look again. */
static int arm_locked(cy_barrier *b, cy_wnode *n, cy_waiter *w)
{
    uint32_t e = atomic_load_explicit(&b->epoch, CY_RELAXED);
    b->sleepers++;
    cy_mutex_unlock(&b->mu);
    int r = cy_addr_arm(n, &b->epoch, e, w);
    if (r == CY_AGAIN)
        return r;
    cy_mutex_lock(&b->mu);
    b->sleepers--;
    return CY_OK;
}

int cy_barrier_arrive_arm(cy_barrier *b, cy_barrier_ticket *t, cy_wnode *n, cy_waiter *w)
{
    cy_mutex_lock(&b->mu);
    for (;;) {
        int32_t s = atomic_load_explicit(&b->state, CY_RELAXED);
        if (s == CY_BARRIER_RESETTING || (s == CY_BARRIER_FILLING && b->count >= b->parties)) {
            if (arm_locked(b, n, w) == CY_AGAIN)
                return CY_AGAIN;
            continue;
        }
        cy_mutex_unlock(&b->mu);
        return cy_barrier_arrive(b, t, 0); /* may find it full again: CY_TIMEOUT, call again */
    }
}

int cy_barrier_arm(cy_barrier *b, const cy_barrier_ticket *t, cy_wnode *n, cy_waiter *w)
{
    cy_mutex_lock(&b->mu);
    for (;;) {
        if (b->round != t->round) {
            cy_mutex_unlock(&b->mu);
            return CY_OK;
        }
        if (atomic_load_explicit(&b->state, CY_RELAXED) != CY_BARRIER_FILLING) {
            leave_locked(b);
            cy_mutex_unlock(&b->mu);
            return CY_BARRIER_BROKEN_ERR;
        }
        if (atomic_load_explicit(&w->claim, CY_ACQUIRE) == CY_CLAIM_CANCEL) {
            set_state_locked(b, CY_BARRIER_BROKEN);
            leave_locked(b);
            cy_mutex_unlock(&b->mu);
            return CY_CANCELLED;
        }
        if (arm_locked(b, n, w) == CY_AGAIN)
            return CY_AGAIN;
    }
}

void cy_barrier_disarm(cy_barrier *b, cy_wnode *n)
{
    cy_addr_disarm(n);
    cy_mutex_lock(&b->mu);
    b->sleepers--;
    cy_mutex_unlock(&b->mu);
}

int cy_barrier_give_up(cy_barrier *b, const cy_barrier_ticket *t, cy_wnode *n)
{
    cy_addr_disarm(n);
    cy_mutex_lock(&b->mu);
    b->sleepers--;
    if (b->round != t->round) {
        cy_mutex_unlock(&b->mu);
        return CY_OK;
    }
    if (atomic_load_explicit(&b->state, CY_RELAXED) == CY_BARRIER_FILLING)
        set_state_locked(b, CY_BARRIER_BROKEN);
    leave_locked(b);
    cy_mutex_unlock(&b->mu);
    return CY_BARRIER_BROKEN_ERR;
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

void cy_barrier_reinit(cy_barrier *b)
{
    cy_mutex_init(&b->mu);
    if (b->count > 0 && b->parties > 1)
        cy_fork_leave(b); /* a no-op in the child, whose registry let it go */
    b->round++; /* no ticket of the vanished threads is of this round */
    b->count = 0;
    b->sleepers = 0;
    atomic_store_explicit(&b->state, CY_BARRIER_FILLING, CY_RELAXED);
    atomic_fetch_add_explicit(&b->epoch, 1, CY_RELAXED);
    cy_spinner_init(&b->spin);
}
