# The C core (cext/), declared for the Cython layer.  The structs hold C11
# atomics that Cython cannot spell, so they are opaque here: Cython embeds
# them by value and passes their addresses to the C functions.
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "cy_spin.h" nogil:
    void cy_spin_set_linger(int64_t ns)

cdef extern from "cy_park.h" nogil:
    ctypedef enum cy_status:
        CY_OK
        CY_TIMEOUT
        CY_INTR
        CY_CANCELLED
    int64_t CY_NO_DEADLINE
    int64_t cy_now_ns()
    int64_t cy_deadline_after(int64_t timeout_ns)
    const char *cy_park_backend()


cdef extern from "cy_cancel.h" nogil:
    ctypedef struct cy_cancel:
        pass
    void cy_cancel_init(cy_cancel *c)
    bint cy_cancel_fired(cy_cancel *c)
    void cy_cancel_fire(cy_cancel *c)
    cy_status cy_cancel_wait "cysync_cancel_wait"(cy_cancel *c, int64_t deadline)


cdef extern from "cy_waitgroup.h" nogil:
    ctypedef struct cy_waitgroup:
        pass
    int CY_WG_NEGATIVE
    int CY_WG_OVERFLOW
    void cy_wg_init(cy_waitgroup *wg)
    int64_t cy_wg_count(cy_waitgroup *wg)
    int cy_wg_add(cy_waitgroup *wg, int64_t delta)
    cy_status cy_wg_wait(cy_waitgroup *wg, int64_t deadline)
    cy_status cy_wg_wait_ctx(cy_waitgroup *wg, int64_t deadline, cy_cancel *c)
    uint32_t cy_wg_wait_begin(cy_waitgroup *wg)
    cy_status cy_wg_wait_from(cy_waitgroup *wg, uint32_t gen, int64_t deadline, cy_cancel *c)


cdef extern from "cy_once.h" nogil:
    ctypedef struct cy_once:
        pass
    void cy_once_init(cy_once *o)
    bint cy_once_is_done(cy_once *o)
    uint32_t cy_once_self()
    bint cy_once_try_begin(cy_once *o, uint32_t self_id)
    bint cy_once_running_in(cy_once *o, uint32_t self_id)
    void cy_once_finish(cy_once *o)
    cy_status cy_once_wait(cy_once *o, int64_t deadline)


cdef extern from "cy_sema.h" nogil:
    ctypedef struct cy_sema:
        pass
    uint32_t CY_SEMA_MAX
    void cy_sema_init(cy_sema *s, uint32_t value)
    uint32_t cy_sema_value(cy_sema *s)
    bint cy_sema_try_acquire(cy_sema *s)
    int cy_sema_release(cy_sema *s, uint32_t n, uint32_t bound)
    cy_status cy_sema_acquire_slow(cy_sema *s, int64_t deadline)
    cy_status cy_sema_acquire_ctx(cy_sema *s, int64_t deadline, cy_cancel *c)


cdef extern from "cy_event.h" nogil:
    ctypedef struct cy_event:
        pass
    void cy_event_init(cy_event *e)
    bint cy_event_is_set(cy_event *e)
    void cy_event_set(cy_event *e)
    void cy_event_clear(cy_event *e)
    void cy_event_reinit(cy_event *e)
    cy_status cy_event_wait(cy_event *e, int64_t deadline)
    cy_status cy_event_wait_ctx(cy_event *e, int64_t deadline, cy_cancel *c)
    uint32_t cy_event_wait_begin(cy_event *e)
    cy_status cy_event_wait_from(cy_event *e, uint32_t gen, int64_t deadline, cy_cancel *c)


cdef extern from "cy_wsem.h" nogil:
    ctypedef struct cy_wsem_waiter:
        pass
    ctypedef struct cy_wsem:
        int64_t size
    int64_t CY_WSEM_MAX
    void cy_wsem_init(cy_wsem *s, int64_t size)
    int64_t cy_wsem_held(cy_wsem *s)
    uint32_t cy_wsem_waiters(cy_wsem *s)
    bint cy_wsem_try_acquire(cy_wsem *s, int64_t n)
    int cy_wsem_release(cy_wsem *s, int64_t n)
    bint cy_wsem_enqueue(cy_wsem *s, int64_t n, cy_wsem_waiter *w)
    cy_status cy_wsem_wait(cy_wsem_waiter *w, int64_t deadline)
    cy_status cy_wsem_wait_ctx(cy_wsem_waiter *w, int64_t deadline, cy_cancel *c)
    bint cy_wsem_cancel(cy_wsem *s, cy_wsem_waiter *w)
    void cy_wsem_reinit(cy_wsem *s)


cdef extern from "cy_barrier.h" nogil:
    ctypedef struct cy_barrier:
        uint32_t parties
    int CY_BARRIER_LAST
    int CY_BARRIER_BROKEN_ERR
    void cy_barrier_init(cy_barrier *b, uint32_t parties)
    ctypedef struct cy_barrier_ticket:
        uint32_t index
    int cy_barrier_arrive(cy_barrier *b, cy_barrier_ticket *t, bint block)
    int cy_barrier_await_ctx(cy_barrier *b, const cy_barrier_ticket *t, int64_t deadline, cy_cancel *c)
    int cy_barrier_action_done(cy_barrier *b, bint ok)
    void cy_barrier_leave(cy_barrier *b, const cy_barrier_ticket *t)
    void cy_barrier_reset(cy_barrier *b)
    void cy_barrier_abort(cy_barrier *b)
    uint32_t cy_barrier_n_waiting(cy_barrier *b)
    bint cy_barrier_broken(cy_barrier *b)
