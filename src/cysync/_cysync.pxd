# The C core (cext/), declared for the Cython layer.  The structs hold C11
# atomics that Cython cannot spell, so they are opaque here: Cython embeds
# them by value and passes their addresses to the C functions.
from libc.stdint cimport int64_t, uint32_t, uint64_t, uintptr_t


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


cdef extern from "cy_waiter.h" nogil:
    ctypedef struct cy_cancel:
        pass
    ctypedef struct cy_waiter:
        pass
    ctypedef struct cy_wait_op:
        int (*wait)(void *obj, uintptr_t begin, int64_t deadline, cy_waiter *w)
        int (*leave)(void *obj, uintptr_t begin, int keep)
    void cy_cancel_init(cy_cancel *c)
    bint cy_cancel_fired(cy_cancel *c)
    void cy_cancel_fire(cy_cancel *c)
    cy_status cy_cancel_wait(cy_cancel *c, int64_t deadline)
    int cy_wait(const cy_wait_op *op, void *obj, uintptr_t begin, int64_t deadline, cy_cancel *c,
                int (*on_intr)(void *) noexcept nogil, void *arg)
    void cy_wait_table_fork_child()


cdef extern from "cy_fork.h" nogil:
    uint32_t cy_fork_child()
    uint32_t cy_fork_registered()


cdef extern from "cy_ctx.h" nogil:
    ctypedef struct cy_ctx:
        pass
    enum:
        CY_CTX_LIVE
        CY_CTX_CANCELED
        CY_CTX_DEADLINE
    void cy_ctx_init(cy_ctx *c)
    uint32_t cy_ctx_state(cy_ctx *c)
    bint cy_ctx_mark(cy_ctx *c, uint32_t why)
    void cy_ctx_fire(cy_ctx *c)
    cy_cancel *cy_ctx_token(cy_ctx *c)


cdef extern from "cy_waitgroup.h" nogil:
    ctypedef struct cy_waitgroup:
        pass
    int CY_WG_NEGATIVE
    int CY_WG_OVERFLOW
    void cy_wg_init(cy_waitgroup *wg)
    int64_t cy_wg_count(cy_waitgroup *wg)
    int cy_wg_add(cy_waitgroup *wg, int64_t delta)
    uint32_t cy_wg_wait_begin(cy_waitgroup *wg)
    const cy_wait_op cy_wg_wait_op


cdef extern from "cy_once.h" nogil:
    ctypedef struct cy_once:
        pass
    void cy_once_init(cy_once *o)
    bint cy_once_is_done(cy_once *o)
    uint32_t cy_once_self()
    bint cy_once_try_begin(cy_once *o, uint32_t self_id)
    bint cy_once_running_in(cy_once *o, uint32_t self_id)
    void cy_once_finish(cy_once *o)
    void cy_once_reinit(cy_once *o)
    const cy_wait_op cy_once_wait_op


cdef extern from "cy_sema.h" nogil:
    ctypedef struct cy_sema:
        pass
    uint32_t CY_SEMA_MAX
    void cy_sema_init(cy_sema *s, uint32_t value)
    uint32_t cy_sema_value(cy_sema *s)
    bint cy_sema_try_acquire(cy_sema *s)
    int cy_sema_release(cy_sema *s, uint32_t n, uint32_t bound)
    const cy_wait_op cy_sema_wait_op


cdef extern from "cy_event.h" nogil:
    ctypedef struct cy_event:
        pass
    void cy_event_init(cy_event *e)
    bint cy_event_is_set(cy_event *e)
    void cy_event_set(cy_event *e)
    void cy_event_clear(cy_event *e)
    void cy_event_reinit(cy_event *e)
    uint32_t cy_event_wait_begin(cy_event *e)
    const cy_wait_op cy_event_wait_op


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
    const cy_wait_op cy_wsem_wait_op
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
    const cy_wait_op cy_barrier_arrive_op
    const cy_wait_op cy_barrier_wait_op
    int cy_barrier_action_done(cy_barrier *b, bint ok)
    void cy_barrier_reset(cy_barrier *b)
    void cy_barrier_reinit(cy_barrier *b)
    void cy_barrier_abort(cy_barrier *b)
    uint32_t cy_barrier_n_waiting(cy_barrier *b)
    bint cy_barrier_broken(cy_barrier *b)


cdef extern from "cy_rwmutex.h" nogil:
    ctypedef struct cy_rw_waiter:
        pass
    ctypedef struct cy_rwmutex:
        pass
    void cy_rw_init(cy_rwmutex *rw)
    uint64_t cy_rw_readers(cy_rwmutex *rw)
    bint cy_rw_writer(cy_rwmutex *rw)
    bint cy_rw_try_rlock(cy_rwmutex *rw)
    bint cy_rw_try_lock(cy_rwmutex *rw)
    int cy_rw_runlock(cy_rwmutex *rw)
    int cy_rw_unlock(cy_rwmutex *rw)
    bint cy_rw_enqueue(cy_rwmutex *rw, int writer, cy_rw_waiter *node)
    const cy_wait_op cy_rw_wait_op
    uint32_t cy_rw_waiting(cy_rwmutex *rw, int writers)


cdef extern from "cy_chan.h" nogil:
    ctypedef struct cy_chan:
        uint32_t cap
        void **buf
    int CY_CHAN_BLOCK
    int CY_CHAN_CLOSED
    int CY_CASE_RECV
    int CY_CASE_SEND
    void cy_chan_init(cy_chan *ch, void **buf, uint32_t cap)
    uint32_t cy_chan_len(cy_chan *ch)
    bint cy_chan_closed(cy_chan *ch)
    int cy_chan_try_send(cy_chan *ch, void *v)
    int cy_chan_try_recv(cy_chan *ch, void **v)
    int cy_chan_close(cy_chan *ch)
    bint cy_chan_drain(cy_chan *ch, void **v)
    ctypedef struct cy_case:
        cy_chan *ch
        uint32_t dir
        void *elem
    ctypedef struct cy_select:
        cy_case *cases
        uint32_t chosen
        uint32_t ok
        void *value
    void cy_select_init(cy_select *s, cy_case *cases, uint32_t n, cy_chan **locks)
    int cy_select_try(cy_select *s)
    const cy_wait_op cy_select_wait_op


cdef extern from "cy_queue.h" nogil:
    ctypedef struct cy_queue:
        pass
    int CY_QUEUE_BLOCK
    int CY_QUEUE_SHUTDOWN
    int CY_QUEUE_NOMEM
    int CY_QUEUE_NEGATIVE
    int CY_QUEUE_GET
    int CY_QUEUE_PUT
    int CY_QUEUE_JOIN
    int64_t CY_QUEUE_PREALLOC_MAX
    int cy_queue_init(cy_queue *q, int64_t maxsize)
    void cy_queue_destroy(cy_queue *q)
    size_t cy_queue_len(cy_queue *q)
    int64_t cy_queue_maxsize(cy_queue *q)
    int64_t cy_queue_unfinished(cy_queue *q)
    bint cy_queue_is_shutdown(cy_queue *q)
    bint cy_queue_full(cy_queue *q)
    int cy_queue_try_put(cy_queue *q, void *v)
    int cy_queue_try_get(cy_queue *q, void **v)
    int cy_queue_task_done(cy_queue *q)
    int cy_queue_set_maxsize(cy_queue *q, int64_t maxsize)
    int cy_queue_reserve(cy_queue *q, size_t cap)
    size_t cy_queue_shutdown(cy_queue *q, int immediate, size_t *first)
    void *cy_queue_removed(cy_queue *q, size_t first, size_t i)
    bint cy_queue_drain(cy_queue *q, void **v)
    ctypedef struct cy_queue_call:
        void *item
    void cy_queue_call_init(cy_queue_call *c, cy_queue *q, uint32_t kind, void *item)
    const cy_wait_op cy_queue_wait_op


cdef extern from "cy_waiter.h" nogil:
    ctypedef struct cy_wnode:
        pass
    int CY_AGAIN
    int CY_CLAIM_NONE
    int CY_CLAIM_FIRED
    int CY_CLAIM_CANCEL
    int CY_CLAIM_SELF
    void cy_waiter_end(cy_waiter *w)
    void cy_addr_disarm(cy_wnode *n)


cdef extern from "cy_hub.h" nogil:
    ctypedef struct cy_hub:
        pass
    cy_hub *cy_hub_new()
    int cy_hub_fd(cy_hub *h)
    void cy_hub_unref(cy_hub *h)
    cy_waiter *cy_hub_take(cy_hub *h)
    cy_waiter *cy_hub_next(cy_waiter *w)
    cy_waiter *cy_async_new(cy_hub *h, void *owner)
    void cy_async_begin(cy_waiter *w, cy_cancel *c)
    void cy_async_unref(cy_waiter *w)
    void *cy_async_owner(cy_waiter *w)
    void cy_async_set_owner(cy_waiter *w, void *owner)
    uint32_t cy_async_claimed(cy_waiter *w)
    bint cy_async_claim_self(cy_waiter *w)


cdef extern from "cy_event.h" nogil:
    int cy_event_arm(cy_event *e, uint32_t gen, cy_wnode *n, cy_waiter *w)


cdef extern from "cy_waitgroup.h" nogil:
    int cy_wg_arm(cy_waitgroup *wg, uint32_t gen, cy_wnode *n, cy_waiter *w)


cdef extern from "cy_once.h" nogil:
    int cy_once_arm(cy_once *o, cy_wnode *n, cy_waiter *w)


cdef extern from "cy_sema.h" nogil:
    int cy_sema_arm(cy_sema *s, cy_wnode *n, cy_waiter *w)
    void cy_sema_disarm(cy_sema *s, cy_wnode *n)
    bint cy_sema_give_up(cy_sema *s, cy_wnode *n, bint take)


cdef extern from "cy_chan.h" nogil:
    int cy_select_arm(cy_select *s, cy_waiter *w)
    int cy_select_end(cy_select *s, cy_waiter *w)
    int cy_chan_unrecv(cy_chan *ch, void *v)


cdef extern from "cy_wsem.h" nogil:
    int cy_wsem_arm(cy_wsem_waiter *node, cy_wnode *n, cy_waiter *w)


cdef extern from "cy_rwmutex.h" nogil:
    int cy_rw_arm(cy_rw_waiter *node, cy_wnode *n, cy_waiter *w)


cdef extern from "cy_queue.h" nogil:
    int cy_queue_arm(cy_queue_call *c, cy_waiter *w)
    int cy_queue_end(cy_queue_call *c, cy_waiter *w)
    int cy_queue_unget(cy_queue *q, void *v)


cdef extern from "cy_barrier.h" nogil:
    int cy_barrier_arrive_arm(cy_barrier *b, cy_barrier_ticket *t, cy_wnode *n, cy_waiter *w)
    int cy_barrier_arm(cy_barrier *b, const cy_barrier_ticket *t, cy_wnode *n, cy_waiter *w)
    void cy_barrier_disarm(cy_barrier *b, cy_wnode *n)
    int cy_barrier_give_up(cy_barrier *b, const cy_barrier_ticket *t, cy_wnode *n)


cdef extern from "cy_hub.h" nogil:
    uint32_t cy_hub_seq(cy_hub *h)
    cy_status cy_hub_wait(cy_hub *h, uint32_t seen, int64_t deadline)
