# cython: language_level=3, freethreading_compatible=True, binding=False
# cython: boundscheck=False, wraparound=False, cdivision=True
"""The C implementation of cysync's primitives: thin classes over cext/.

This layer owns everything Python: argument checks and error messages,
turning timeouts into deadlines, releasing the GIL around the calls that
block, and running signal handlers when a wait is interrupted (the shape of
CPython's ``acquire_timed()``: try without releasing the GIL, then release it
and park, and on EINTR re-take it, run the handlers, and go on waiting until
the same deadline).  The algorithms live in C and never see a Python object.

Free-threaded builds: the C state is atomics.  The Python objects held here
(once_func/once_value's function, result and exception) are written only by
the single caller that runs the function, before ``cy_once_finish`` publishes
DONE with a release store, and only read by callers that observed DONE with
an acquire load, so they need no further lock.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.float cimport PyFloat_Check
from cpython.number cimport PyNumber_Index
from cpython.object cimport PyCallable_Check
from libc.math cimport ceil
from libc.stdint cimport int64_t, uint32_t, uintptr_t
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_RawFree, PyMem_RawMalloc

import functools as _functools
import inspect as _inspect
import os as _os
import threading as _threading
import types as _types
import warnings as _warnings
import weakref as _weakref
from time import monotonic as _monotonic

from cysync import _rules as _R

__all__ = list(_R.PUBLIC_NAMES)

#: Which wait-on-address backend the C core was built with.
PARK_BACKEND = cy_park_backend().decode()

cdef extern from "_cysync_capi.h":
    PyObject *cysync_msg_fn_not_callable
    PyObject *cysync_msg_defer_outside

cysync_msg_fn_not_callable = <PyObject *>_R.FN_NOT_CALLABLE
cysync_msg_defer_outside = <PyObject *>_R.DEFER_OUTSIDE


cdef extern from "_cysync_capi.h":
    int64_t CYSYNC_LINGER_NS

cy_spin_set_linger(CYSYNC_LINGER_NS)

# Timeouts longer than this (about 146 years) mean "wait forever".
cdef double _FOREVER_SECONDS = _R.FOREVER_SECONDS


# ---------------------------------------------------------------- helpers

cdef inline int64_t _timeout_ns(object timeout) except? -2:
    """Nanoseconds to wait: -1 for ever (None, +inf, huge), 0 to poll."""
    if timeout is None:
        return -1
    return _seconds_to_ns(timeout)


cdef int64_t _seconds_to_ns(object timeout) except? -2:
    """cysync._rules.timeout_seconds, in nanoseconds: ints and floats here,
    anything else through that one definition of the rules."""
    cdef double t
    if PyFloat_Check(timeout) or PyLong_Check(timeout):
        try:
            t = timeout
        except OverflowError:                 # an int beyond float range
            return -1 if timeout > 0 else 0
        if t != t:
            raise ValueError(_R.TIMEOUT_NAN)
    else:
        seconds = _R.timeout_seconds(timeout)
        if seconds is None:
            return -1
        t = seconds
    if t <= 0.0:
        return 0
    if t >= _FOREVER_SECONDS:
        return -1
    return <int64_t>ceil(t * 1e9)


cdef inline int64_t _deadline(int64_t ns) noexcept nogil:
    return CY_NO_DEADLINE if ns < 0 else cy_deadline_after(ns)


cdef int64_t _index(object n, int64_t lo, int64_t hi) except? -1:
    """An integer argument (int or __index__), clamped to [lo, hi].

    Callers choose lo/hi just outside their valid range, so a clamped value
    fails their range check with the right message instead of OverflowError.
    """
    cdef int overflow = 0
    cdef long long v
    if not PyLong_Check(n):
        n = PyNumber_Index(n)            # float, str, None: TypeError
    v = PyLong_AsLongLongAndOverflow(n, &overflow)
    if overflow > 0 or v > hi:
        return hi
    if overflow < 0 or v < lo:
        return lo
    return v


cdef inline int _check_callable(object fn) except -1:
    if not PyCallable_Check(fn):
        raise TypeError(_R.FN_NOT_CALLABLE)
    return 0


cdef str _where(object self):
    cls = type(self)
    return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}"


# ---------------------------------------------------------------- contexts

cdef class CancelToken:
    """The C half of a context's cancellation: waits parked with it end when
    it fires.  Made and fired by cysync._context; not for direct use."""

    cdef cy_cancel c

    def __cinit__(self):
        cy_cancel_init(&self.c)

    def fire(self):
        cy_cancel_fire(&self.c)

    @property
    def fired(self):
        return cy_cancel_fired(&self.c)


cdef object _Context = None       # cysync._context.Context, imported on first use


cdef class _CtxWait:
    """One blocking call with ``ctx=``: the context's token, and the earlier
    of the call's own deadline and the context's."""

    cdef object ctx
    cdef object token             # keeps the token (or the C context) alive while C waits on it
    cdef cy_cancel *c
    cdef int64_t deadline
    cdef int64_t own              # the call's own deadline
    cdef bint by_ctx              # the deadline is the context's

    cdef int _fail(self) except -1:
        err = self.ctx.err()
        if err is None:             # cannot happen: err is set before the token fires
            raise RuntimeError("context ended without an error")
        raise err.with_traceback(None)

    cdef int _set_deadline(self, int64_t own) except -1:
        cdef double left
        self.own = own
        self.deadline = own
        self.by_ctx = False
        if type(self.ctx) is _CContext:
            ctx_deadline = (<_CContext>self.token).dl_ns
            if ctx_deadline != CY_NO_DEADLINE and ctx_deadline <= own:
                self.deadline = ctx_deadline
                self.by_ctx = True
            return 0
        d = self.ctx.deadline()
        if d is not None:
            left = d - _monotonic()
            ctx_deadline = cy_deadline_after(<int64_t>ceil(left * 1e9) + 1000) if left > 0 else cy_now_ns()
            if ctx_deadline <= own:
                self.deadline = ctx_deadline
                self.by_ctx = True
        return 0

    cdef int wait_end(self) except -1:
        """The context's deadline has passed: raise its error once it has
        ended (another thread may be ending it); 0 if the call's own
        deadline comes first."""
        cdef int64_t until
        cdef cy_status r
        while True:
            self.ctx._expire()
            if self.ctx.err() is not None:
                return self._fail()
            until = cy_deadline_after(1000000)
            if until >= self.own:
                until = self.own
            if self.c == NULL or cy_now_ns() >= until:
                if until == self.own:
                    return 0
                continue
            with nogil:
                r = cy_cancel_wait(self.c, until)
            if r == CY_CANCELLED:
                return self._fail()
            if r == CY_INTR:
                PyErr_CheckSignals()

    cdef int retry_timeout(self) except -1:
        """After a wait timed out at self.deadline: 1 to wait again (until
        the new self.deadline), 0 when the call's own timeout ran out;
        raises the context's error when the context ended."""
        if not self.by_ctx:
            return 0
        self.ctx._expire()
        if self.ctx.err() is not None:
            return self._fail()
        # The context's deadline has passed, yet it has not ended: another
        # thread is ending it (an ancestor whose deadline it is ends it
        # last), or the clocks disagreed by a hair.  Wait on for its token
        # a millisecond at a time, never past the call's own deadline.
        self._set_deadline(self.own)
        if self.by_ctx:
            grace = cy_deadline_after(1000000)
            if grace < self.own:
                self.deadline = grace
            else:
                self.deadline = self.own
                self.by_ctx = False
        return 1


cdef _CtxWait _ctx_wait(object ctx, int64_t ns):
    """Starts a wait with a context; raises its error if it has already ended.
    None for a C context that can never end: the wait goes as without one."""
    cdef _CContext ctl
    cdef _CtxWait w
    if type(ctx) is _CContext:
        if (<_CContext>ctx).ctl == NULL:
            return None
        ctl = <_CContext>(<_CContext>ctx).ctl
        if cy_ctx_state(&ctl.c) != CY_CTX_LIVE:
            _c_raise(ctl)
        w = _CtxWait.__new__(_CtxWait)
        w.ctx = ctx
        w.token = ctl
        w.c = cy_ctx_token(&ctl.c)
        w._set_deadline(_deadline(ns))
        return w
    global _Context
    if _Context is None:
        from cysync._context import Context as _Context
    if not isinstance(ctx, _Context):
        raise TypeError(_R.CTX_TYPE)
    w = _CtxWait.__new__(_CtxWait)
    w.ctx = ctx
    if ctx.err() is not None:
        w._fail()
    token = ctx._c_token(CancelToken)
    w.token = token
    w.c = NULL if token is None else &(<CancelToken>token).c
    w._set_deadline(_deadline(ns))
    return w


cdef inline int _ctx_check(object ctx) except -1:
    """A wait's entry check of `ctx` (not None) before its fast path: with a
    C context one load of the state word; raises the error if it has ended."""
    if type(ctx) is _CContext:
        if (<_CContext>ctx).cs != NULL and cy_ctx_state((<_CContext>ctx).cs) != CY_CTX_LIVE:
            _c_raise(<_CContext>(<_CContext>ctx).ctl)
        return 0
    _ctx_wait(ctx, 0)
    return 0


# ---------------------------------------------------------------- cysync.debug

import cysync.debug as _dbg

# cysync.debug's switch, set through _set_debug: off, WaitGroup.add/done
# test it once; on, they record call sites and every blocking wait
# registers itself (in _block), through the hooks cached below.
cdef bint _debug = False
cdef object _dbg_wait_begin = _dbg._wait_begin
cdef object _dbg_wait_end = _dbg._wait_end
cdef object _dbg_wg_change = _dbg._wg_change
cdef object _dbg_wg_undo = _dbg._wg_undo
cdef object _dbg_go = _dbg._go


def _set_debug(bint on):
    global _debug
    _debug = on


# ---------------------------------------------------------------- the blocking driver

cdef extern from "Python.h":
    # Declared without an exception value: called where no exception may
    # propagate (cy_wait's on_intr), it leaves a raised one set for _block.
    int _check_signals "PyErr_CheckSignals" () nogil


cdef int _run_signal_handlers(void *arg) noexcept nogil:
    """cy_wait's on_intr: run Python's signal handlers, the GIL taken for
    it; nonzero (the exception set) when one raised."""
    with gil:
        return _check_signals()


cdef inline int _leave(const cy_wait_op *op, void *obj, uintptr_t begin) noexcept:
    if op.leave != NULL:
        op.leave(obj, begin, 0)
    return 0


cdef int _block(const cy_wait_op *op, void *obj, uintptr_t begin, int64_t ns, _CtxWait w,
                object owner=None) except -1:
    """The one blocking driver of every primitive (see _block_loop).

    ``owner``, the Python object waited on (a tuple of channels for a
    select), is what cysync.debug registers the thread as blocked on, for
    the time of the wait, when debug mode is on."""
    if not _debug:
        return _block_loop(op, obj, begin, ns, w)
    token = _dbg_wait_begin(owner, None if w is None else w.ctx)
    try:
        return _block_loop(op, obj, begin, ns, w)
    finally:
        _dbg_wait_end(token)


cdef int _block_loop(const cy_wait_op *op, void *obj, uintptr_t begin, int64_t ns, _CtxWait w) except -1:
    """Waits, GIL released,
    until `op` completes (CPython's acquire_timed() is the model; the loop
    over interrupted waits is cy_wait's, in C).

    Returns CY_OK; CY_TIMEOUT once the call's own timeout has run out (a
    wait served at that very instant keeps what it got, as in Go); or a
    result of the primitive's own.  Raises what a signal handler raised, or
    the context's error when ``w``'s context ends first, having left the
    wait (and given back what it had been granted)."""
    cdef int64_t deadline
    cdef cy_cancel *c = NULL
    cdef int r
    if w is None:
        deadline = _deadline(ns)
    else:
        deadline = w.deadline
        c = w.c
    while True:
        with nogil:
            r = cy_wait(op, obj, begin, deadline, c, _run_signal_handlers, NULL)
        if r == CY_INTR:                 # a signal handler raised: its exception is set
            _leave(op, obj, begin)
            return -1
        if r == CY_CANCELLED:            # the attempt has undone what it had
            return w._fail()
        if r != CY_TIMEOUT:
            return r
        if w is not None:
            try:
                again = w.retry_timeout()
            except BaseException:
                _leave(op, obj, begin)
                raise
            if again:
                deadline = w.deadline
                continue
        if op.leave != NULL and op.leave(obj, begin, 1):
            return CY_OK
        return CY_TIMEOUT


# ---------------------------------------------------------------- the asyncio driver

# A task that must wait does not sleep: it queues a heap waiter record
# (cy_async_new) as a thread queues its stack record, and suspends on a
# future.  Whoever fires or pokes the record hands it to its loop's hub
# (cext/cy_hub.h): a lock-free list and an eventfd (a pipe elsewhere) that
# the loop watches with add_reader, written once per batch; _Hub._drain,
# on the loop's thread, resolves the futures.  Fast paths never get here:
# every *_async method first tries its primitive's non-blocking path.

from asyncio import get_running_loop as _get_running_loop

cdef object _hubs = _weakref.WeakKeyDictionary()    # loop -> _Hub
cdef object _hubs_lock = _threading.Lock()


cdef class _Hub:
    """One event loop's hub: the C hub and the reader that drains it."""

    cdef cy_hub *h
    cdef object __weakref__

    def __dealloc__(self):
        if self.h != NULL:
            cy_hub_unref(self.h)        # the fd closes once no record holds it

    def _drain(self):
        """The loop's reader callback: wake every task whose record fired."""
        cdef cy_waiter *w = cy_hub_take(self.h)
        cdef cy_waiter *nxt
        cdef void *owner
        while w != NULL:
            nxt = cy_hub_next(w)
            owner = cy_async_owner(w)
            if owner != NULL:
                (<_AWait>owner).wake()
            cy_async_unref(w)
            w = nxt


cdef _Hub _hub_of(object loop):
    hub = _hubs.get(loop)
    if hub is not None:
        return <_Hub>hub
    with _hubs_lock:
        hub = _hubs.get(loop)
        if hub is not None:
            return <_Hub>hub
        h = _Hub.__new__(_Hub)
        (<_Hub>h).h = cy_hub_new()
        if (<_Hub>h).h == NULL:
            raise MemoryError
        fd = cy_hub_fd((<_Hub>h).h)
        try:
            if fd < 0:
                raise NotImplementedError
            loop.add_reader(fd, (<_Hub>h)._drain)
        except NotImplementedError:
            # A loop that watches no descriptors (the proactor loop on
            # Windows): one helper thread for this loop hands it the batches.
            _threading.Thread(target=_hub_helper, args=(h, _weakref.ref(loop)),
                              name="cysync asyncio hub", daemon=True).start()
        _hubs[loop] = h
        return <_Hub>h


def _hub_helper(_Hub hub, loop_ref):
    """The helper thread of a loop without add_reader: waits for a batch
    (cy_hub_wait), then has the loop drain it; ends once the loop has
    closed or gone (looked at every second)."""
    cdef uint32_t seen = cy_hub_seq(hub.h)
    cdef uint32_t now
    cdef cy_hub *h = hub.h
    while True:
        with nogil:
            cy_hub_wait(h, seen, cy_deadline_after(1000000000))
        loop = loop_ref()
        if loop is None or loop.is_closed():
            return
        now = cy_hub_seq(h)
        if now != seen:
            seen = now
            try:
                loop.call_soon_threadsafe(hub._drain)
            except RuntimeError:           # closed meanwhile
                return
        loop = None


cdef class _AWait:
    """One awaiting call: its heap record, the future it suspends on, and
    what a queued wait keeps (an address-table node, a select)."""

    cdef cy_waiter *w
    cdef cy_wnode node           # word-based primitives: the address table's node
    cdef object loop
    cdef object fut              # the future of the current suspension
    cdef bint timed_out          # the call's own timeout ran out (loop.call_at)
    cdef object timer
    cdef _CtxWait cw             # keeps the context's token alive
    cdef cy_select sel           # channels: the cases, queued on w
    cdef cy_case one             # a send or receive: its one case
    cdef cy_chan *one_lock
    cdef cy_wsem_waiter wsn      # a WeightedSemaphore's place in line
    cdef cy_rw_waiter rwn        # an RWMutex's
    cdef tuple chans             # select: the Chan of every case
    cdef int r                   # select: the outcome so far
    cdef cy_queue_call qc        # a Queue's put, get or join
    cdef cy_barrier_ticket bt    # a Barrier's ticket
    cdef cy_case *cs             # select_async: its cases, locks and kinds
    cdef cy_chan **locks
    cdef uint32_t *kinds

    cdef int start(self, object loop, _CtxWait cw, int64_t ns) except -1:
        cdef _Hub hub = _hub_of(loop)
        self.w = cy_async_new(hub.h, <void *>self)
        if self.w == NULL:
            raise MemoryError
        self.loop = loop
        self.cw = cw
        self.r = -1
        cy_async_begin(self.w, NULL if cw is None else cw.c)
        if cw is not None and cw.by_ctx and type(cw.ctx) is _CContext:
            # A task does not look at the clock as a thread's wait does: the
            # context's deadline goes on the timer, which fires its token.
            _c_arm(<_CContext>(<_CContext>cw.ctx).ctl)
        if ns >= 0:
            self.timer = loop.call_at(loop.time() + ns * 1e-9, _async_timeout, self)
        return 0

    cdef void finish(self) noexcept:
        """Leaves the token's list and lets go of the record (the hub may
        still hold it: its drain then finds no owner)."""
        if self.w == NULL:
            return
        cy_waiter_end(self.w)
        cy_async_set_owner(self.w, NULL)
        cy_async_unref(self.w)
        self.w = NULL
        if self.timer is not None:
            try:
                self.timer.cancel()
            except BaseException:
                pass
            self.timer = None

    cdef object suspend(self):
        fut = self.loop.create_future()
        self.fut = fut
        return fut

    cdef void wake(self) noexcept:
        fut = self.fut
        self.fut = None
        try:
            if fut is not None and not fut.done():
                fut.set_result(None)
        except BaseException:
            pass

    def __dealloc__(self):
        self.finish()
        PyMem_Free(self.cs)
        PyMem_Free(self.locks)
        PyMem_Free(self.kinds)


def _async_timeout(_AWait aw):
    aw.timed_out = True
    aw.wake()


# The word-based primitives' async waits, told apart by kind.
DEF _AW_EVENT = 0
DEF _AW_WG = 1
DEF _AW_ONCE = 2
DEF _AW_SEMA = 3


cdef inline int _aw_arm(int kind, void *obj, uint32_t begin, _AWait aw) noexcept:
    if kind == _AW_EVENT:
        return cy_event_arm(<cy_event *>obj, begin, &aw.node, aw.w)
    if kind == _AW_WG:
        return cy_wg_arm(<cy_waitgroup *>obj, begin, &aw.node, aw.w)
    if kind == _AW_ONCE:
        return cy_once_arm(<cy_once *>obj, &aw.node, aw.w)
    return cy_sema_arm(<cy_sema *>obj, &aw.node, aw.w)


cdef inline void _aw_disarm(int kind, void *obj, _AWait aw) noexcept:
    if kind == _AW_SEMA:
        cy_sema_disarm(<cy_sema *>obj, &aw.node)
    else:
        cy_addr_disarm(&aw.node)


cdef inline int _aw_give_up(int kind, void *obj, uint32_t begin, _AWait aw, bint take) noexcept:
    """Ends an armed wait: CY_OK if it completed meanwhile (and ``take``),
    else CY_TIMEOUT; a semaphore passes on a wake-up it got."""
    if kind == _AW_SEMA:
        return CY_OK if cy_sema_give_up(<cy_sema *>obj, &aw.node, take) else CY_TIMEOUT
    cdef int r
    cy_addr_disarm(&aw.node)
    if not take:
        return CY_TIMEOUT
    r = _aw_arm(kind, obj, begin, aw)          # one last look
    if r == CY_AGAIN:
        cy_addr_disarm(&aw.node)
    return CY_OK if r == CY_OK else CY_TIMEOUT


async def _word_async(object owner, int kind, uintptr_t obj, uint32_t begin, int64_t ns, _CtxWait cw):
    """Waits for a word-based primitive (its fast path has failed): True
    when it is done, False when the timeout ran out; raises the context's
    error, or CancelledError (holding nothing)."""
    cdef _AWait aw = _AWait.__new__(_AWait)
    cdef int r
    aw.start(_get_running_loop(), cw, ns)
    try:
        r = _aw_arm(kind, <void *>obj, begin, aw)
        while r == CY_AGAIN:
            try:
                await aw.suspend()
            except BaseException:
                _aw_give_up(kind, <void *>obj, begin, aw, False)
                raise
            if aw.timed_out:
                r = _aw_give_up(kind, <void *>obj, begin, aw, True)
                break
            _aw_disarm(kind, <void *>obj, aw)
            r = _aw_arm(kind, <void *>obj, begin, aw)
    finally:
        aw.finish()
    if r == CY_OK:
        return True
    if r == CY_CANCELLED:
        cw._fail()
    return False


cdef _CtxWait _actx(object ctx, int64_t ns):
    return None if ctx is None else _ctx_wait(ctx, ns)


# Queued primitives whose grant is a word (WeightedSemaphore, RWMutex).
DEF _AG_WSEM = 0
DEF _AG_RW = 1


cdef inline int _ag_arm(int kind, _AWait aw) noexcept:
    if kind == _AG_WSEM:
        return cy_wsem_arm(&aw.wsn, &aw.node, aw.w)
    return cy_rw_arm(&aw.rwn, &aw.node, aw.w)


cdef inline bint _ag_leave(int kind, void *obj, _AWait aw, bint keep) noexcept:
    """Out of the line: True if granted meanwhile and kept; else what was
    granted goes on to the next in line."""
    if kind == _AG_WSEM:
        return cy_wsem_wait_op.leave(obj, <uintptr_t>&aw.wsn, keep) != 0
    return cy_rw_wait_op.leave(obj, <uintptr_t>&aw.rwn, keep) != 0


async def _granted_async(object owner, int kind, uintptr_t obj, int64_t n, int64_t ns, _CtxWait cw):
    """Waits in line (the fast path has failed): True once granted, False
    when the timeout ran out; raises the context's error or CancelledError,
    having left the line and given back what was granted at that moment."""
    cdef _AWait aw = _AWait.__new__(_AWait)
    cdef int r
    cdef bint now
    aw.start(_get_running_loop(), cw, ns)
    try:
        if kind == _AG_WSEM:
            now = cy_wsem_enqueue(<cy_wsem *>obj, n, &aw.wsn)
        else:
            now = cy_rw_enqueue(<cy_rwmutex *>obj, <int>n, &aw.rwn)
        if now:
            return True
        r = _ag_arm(kind, aw)
        while r == CY_AGAIN:
            try:
                await aw.suspend()
            except BaseException:
                cy_addr_disarm(&aw.node)
                _ag_leave(kind, <void *>obj, aw, False)
                raise
            cy_addr_disarm(&aw.node)
            if aw.timed_out:
                r = CY_OK if _ag_leave(kind, <void *>obj, aw, True) else CY_TIMEOUT
                break
            r = _ag_arm(kind, aw)
        if r == CY_CANCELLED:
            _ag_leave(kind, <void *>obj, aw, False)
            cw._fail()
        return r == CY_OK
    finally:
        aw.finish()


# ---------------------------------------------------------------- WaitGroup

cdef inline int _wg_add(cy_waitgroup *wg, int64_t delta) except -1:
    cdef int rc = cy_wg_add(wg, delta)
    if rc == 0:
        return 0
    if rc == CY_WG_NEGATIVE:
        raise ValueError(_R.WG_NEGATIVE)
    raise OverflowError(_R.WG_OVERFLOW)


cdef int _wg_add_debug(WaitGroup self, int64_t delta) except -1:
    """_wg_add in debug mode: the ledger first, so that a wait() that sees
    the counter reach zero also sees the add retired."""
    if delta == 0:
        return _wg_add(&self.wg, 0)
    undo = _dbg_wg_change(self, delta)
    try:
        _wg_add(&self.wg, delta)
    except BaseException:
        _dbg_wg_undo(self, undo)
        raise
    return 0


cdef class WaitGroup:
    """Go's sync.WaitGroup: wait until a counter of pending tasks is zero."""

    cdef cy_waitgroup wg
    cdef object __weakref__

    def __cinit__(self):
        cy_wg_init(&self.wg)

    def __init__(self):
        pass                        # rejects arguments, as the pure twin does

    def add(self, delta=1):
        """Add ``delta`` (may be negative) to the counter."""
        if _debug:
            _wg_add_debug(self, _index(delta, -(1LL << 40), 1LL << 40))
            return
        _wg_add(&self.wg, _index(delta, -(1LL << 40), 1LL << 40))

    def done(self):
        """Decrement the counter by one."""
        if _debug:
            _wg_add_debug(self, -1)
            return
        _wg_add(&self.wg, -1)

    def wait(self, timeout=None, *, ctx=None):
        """Block until the counter is zero; False if ``timeout`` ran out.
        With ``ctx``, raises the context's error if it ends first."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
        if cy_wg_count(&self.wg) == 0:
            return True
        if ns == 0 and w is None:
            return False
        # Begun once, here: a zero crossing while signal handlers run still counts.
        return _block(&cy_wg_wait_op, &self.wg, cy_wg_wait_begin(&self.wg), ns, w, self) == CY_OK

    async def wait_async(self, timeout=None, *, ctx=None):
        """``await``-able wait(): suspends the task, not the thread."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = _actx(ctx, ns)
        cdef uint32_t gen = cy_wg_wait_begin(&self.wg)
        if cy_wg_count(&self.wg) == 0:
            return True
        if ns == 0 and w is None:
            return False
        return await _word_async(self, _AW_WG, <uintptr_t>&self.wg, gen, ns, w)

    @property
    def count(self):
        """The counter now."""
        return cy_wg_count(&self.wg)

    def go(self, fn, /, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` in a new thread counted by this group."""
        _check_callable(fn)
        if _debug:
            _wg_add_debug(self, 1)
        else:
            _wg_add(&self.wg, 1)
        thread = _threading.Thread(target=_run_then_done, args=(self, fn, args, kwargs), daemon=False)
        name = getattr(fn, "__name__", None)
        if isinstance(name, str):   # "Thread-N (fn)", as threading names a thread after its target
            thread.name = thread.name.replace("(_run_then_done)", f"({name})")
        if _debug:
            _dbg_go(self, thread, fn)
        try:
            thread.start()
        except BaseException:
            _wg_add(&self.wg, -1)
            raise
        return thread

    def __repr__(self):
        return f"{_where(self)}: count={cy_wg_count(&self.wg)}>"


def _run_then_done(WaitGroup wg, fn, args, kwargs):
    try:
        fn(*args, **kwargs)
    finally:
        if _debug:
            _wg_add_debug(wg, -1)
        else:
            _wg_add(&wg.wg, -1)


# ---------------------------------------------------------------- Once

cdef extern from "_cysync_capi.h":
    Py_ssize_t cysync_once_offset
    object (*cysync_once_do_slow)(object, object, object, object)
    int cysync_type_set(object type, const char *name, object value) except -1
    object cysync_once_do_descr(object type)
    int cysync_type_rename(object type) except -1


cdef int _once_wait(cy_once *o, object owner) except -1:
    """Wait, GIL released, until the running call has finished."""
    _block(&cy_once_wait_op, o, 0, -1, None, owner)
    return 0


cdef class Once:
    """Go's sync.Once: ``do(fn)`` calls ``fn`` on the first call only.

    ``do`` itself is the C method ``cysync_once_do`` above, added to this
    class at import; its slow path is ``_once_do_slow``.
    """

    cdef cy_once o
    cdef object __weakref__

    def __cinit__(self):
        cy_once_init(&self.o)

    def __init__(self):
        pass                        # rejects arguments, as the pure twin does

    @property
    def done(self):
        """Whether ``fn`` has been called and has returned (or raised)."""
        return cy_once_is_done(&self.o)

    async def do_async(self, fn, /, *args, **kwargs):
        """``await``-able do(): the first caller calls the plain callable
        ``fn`` (in its task); the others wait without blocking the loop."""
        cdef uint32_t me
        _check_callable(fn)
        if cy_once_is_done(&self.o):
            return None
        me = cy_once_self()
        if cy_once_try_begin(&self.o, me):
            try:
                fn(*args, **kwargs)
            finally:
                cy_once_finish(&self.o)
        elif cy_once_running_in(&self.o, me):
            raise RuntimeError(_R.ONCE_RECURSIVE)
        else:
            await _word_async(self, _AW_ONCE, <uintptr_t>&self.o, 0, -1, None)
        return None

    def _at_fork_reinit(self):
        """After fork(): if ``fn`` was running in a thread that is gone, the
        next ``do()`` runs its own ``fn``.  Done for you in a forked child."""
        cy_once_reinit(&self.o)

    def __repr__(self):
        return f"{_where(self)}: {'done' if cy_once_is_done(&self.o) else 'not done'}>"


cdef object _once_do_slow(object obj, object fn, object args, object kwargs):
    cdef Once self = <Once>obj
    cdef uint32_t me = cy_once_self()
    if cy_once_try_begin(&self.o, me):
        try:
            fn(*args, **kwargs)
        finally:
            cy_once_finish(&self.o)
    elif cy_once_running_in(&self.o, me):
        raise RuntimeError(_R.ONCE_RECURSIVE)
    else:
        _once_wait(&self.o, self)
    return None


cdef int _install_once_do() except -1:
    global cysync_once_offset, cysync_once_do_slow
    cdef Once probe = Once()
    cysync_once_offset = <char *>&probe.o - <char *><void *>probe
    cysync_once_do_slow = _once_do_slow
    return cysync_type_set(Once, "do", cysync_once_do_descr(Once))


_install_once_do()


cdef class _Raised:
    """What once_func/once_value keep when ``fn`` raised: the exception and
    its original traceback, re-raised together so the traceback never grows."""
    cdef object exc
    cdef object tb


cdef class _OnceCall:
    """Shared core of once_func and once_value: run ``fn()`` once, keep the outcome."""

    cdef cy_once o
    cdef object fn        # dropped once it has returned, so closures can be freed
    cdef object outcome   # fn's result, or a _Raised
    cdef object __weakref__

    def __cinit__(self, fn):
        _check_callable(fn)
        cy_once_init(&self.o)
        self.fn = fn

    def _at_fork_reinit(self):
        """After fork(): if ``fn`` was running in a thread that is gone, the
        next call runs it again.  Done for you in a forked child."""
        cy_once_reinit(&self.o)

    def __repr__(self):
        return f"{_where(self)}: {'done' if cy_once_is_done(&self.o) else 'not done'}>"


cdef object _once_call(_OnceCall self, str name):
    cdef uint32_t me
    cdef _Raised raised
    if not cy_once_is_done(&self.o):
        me = cy_once_self()
        if cy_once_try_begin(&self.o, me):
            # fn is kept until it returns: a forked child whose copy of this
            # call never returns runs it again (cy_once_reinit).
            try:
                self.outcome = self.fn()
            except BaseException as e:
                raised = _Raised.__new__(_Raised)
                raised.exc = e
                raised.tb = e.__traceback__
                self.outcome = raised
            finally:
                self.fn = None
                cy_once_finish(&self.o)
        elif cy_once_running_in(&self.o, me):
            raise RuntimeError(f"{name} called recursively")
        else:
            _once_wait(&self.o, self)
    if type(self.outcome) is _Raised:
        raised = <_Raised>self.outcome
        raise raised.exc.with_traceback(raised.tb)
    return self.outcome


cdef class once_func(_OnceCall):
    """``once_func(fn)()`` calls ``fn`` once and returns None; a raised exception is re-raised on every call."""

    def __call__(self):
        _once_call(self, "once_func")
        return None


cdef class once_value(_OnceCall):
    """``once_value(fn)()`` returns ``fn()``, computed once; a raised exception is re-raised on every call."""

    def __call__(self):
        return _once_call(self, "once_value")


# ---------------------------------------------------------------- Semaphore

cdef bint _sema_acquire_slow(cy_sema *s, int64_t ns, _CtxWait w, object owner) except -1:
    """True when a unit was taken, False when the timeout ran out."""
    if ns == 0 and w is None:
        return False
    return _block(&cy_sema_wait_op, s, 0, ns, w, owner) == CY_OK


cdef object _sema_acquire(Semaphore self, object blocking, object timeout, object ctx):
    if not blocking:
        if timeout is not None:
            raise ValueError(_R.NONBLOCKING_TIMEOUT)
        if ctx is not None:
            _ctx_check(ctx)
        return cy_sema_try_acquire(&self.s)
    cdef int64_t ns = _timeout_ns(timeout)
    if ctx is not None:
        _ctx_check(ctx)                 # raises at entry if it has ended
    if cy_sema_try_acquire(&self.s):
        return True
    # The wait blocks: only now the context's deadline and token.
    cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
    return _sema_acquire_slow(&self.s, ns, w, self)


cdef inline object _sema_enter(Semaphore self):
    if cy_sema_try_acquire(&self.s):
        return True
    return _sema_acquire_slow(&self.s, -1, None, self)


cdef inline int _sema_exit(Semaphore self) except -1:
    if cy_sema_release(&self.s, 1, self.bound) != 0:
        _sema_release(self, 1)   # raises the right error
    return 0


cdef int _sema_release(Semaphore self, object n) except -1:
    cdef int64_t k = 1 if n is 1 else _index(n, 0, <int64_t>CY_SEMA_MAX + 1)
    if k < 1:
        raise ValueError(_R.SEMA_RELEASE_N)
    if k > CY_SEMA_MAX or cy_sema_release(&self.s, <uint32_t>k, self.bound) != 0:
        if self.bounded:
            raise ValueError(_R.SEMA_RELEASED_TOO_MANY)
        raise OverflowError(_R.SEMA_TOO_LARGE)
    return 0


cdef class Semaphore:
    """threading.Semaphore with a C core: acquire/release are one atomic operation."""

    cdef cy_sema s
    cdef uint32_t bound       # the value may never exceed this
    cdef bint bounded
    cdef object __weakref__

    def __init__(self, value=1):
        cdef int64_t v = _index(value, -1, <int64_t>CY_SEMA_MAX + 1)
        if v < 0:
            raise ValueError(_R.SEMA_INITIAL_NEGATIVE)
        if v > CY_SEMA_MAX:
            raise OverflowError(_R.SEMA_TOO_LARGE)
        cy_sema_init(&self.s, <uint32_t>v)
        self.bound = CY_SEMA_MAX

    def acquire(self, blocking=True, timeout=None, *, ctx=None):
        """Take one unit; block (at most ``timeout`` seconds) while there is none.
        With ``ctx``, raises the context's error if it ends first."""
        return _sema_acquire(self, blocking, timeout, ctx)

    def __enter__(self):
        return _sema_enter(self)

    def release(self, n=1):
        """Return ``n`` units, waking up to ``n`` waiters."""
        _sema_release(self, n)

    def __exit__(self, t, v, tb):
        _sema_exit(self)

    async def acquire_async(self, blocking=True, timeout=None, *, ctx=None):
        """``await``-able acquire(): suspends the task, not the thread."""
        if not blocking:
            return _sema_acquire(self, blocking, timeout, ctx)
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = _actx(ctx, ns)
        if cy_sema_try_acquire(&self.s):
            return True
        if ns == 0 and w is None:
            return False
        return await _word_async(self, _AW_SEMA, <uintptr_t>&self.s, 0, ns, w)

    async def __aenter__(self):
        if cy_sema_try_acquire(&self.s):
            return True
        return await _word_async(self, _AW_SEMA, <uintptr_t>&self.s, 0, -1, None)

    async def __aexit__(self, t, v, tb):
        _sema_exit(self)

    def _at_fork_reinit(self):
        """After fork(): the threads that slept here are gone."""
        cdef uint32_t v = cy_sema_value(&self.s)
        cy_sema_init(&self.s, v)

    @property
    def _value(self):
        """The current value (read-only), as threading.Semaphore._value."""
        return cy_sema_value(&self.s)

    def __repr__(self):
        return f"{_where(self)}: value={cy_sema_value(&self.s)}>"


cdef class BoundedSemaphore(Semaphore):
    """threading.BoundedSemaphore: releasing past the initial value is an error."""

    def __init__(self, value=1):
        Semaphore.__init__(self, value)
        self.bound = cy_sema_value(&self.s)
        self.bounded = True

    # The same methods again: CPython's specialised calls of a C method
    # check the exact type, and fall back to the slow path (+12 ns) for a
    # subclass calling its base class's method.
    def acquire(self, blocking=True, timeout=None, *, ctx=None):
        """Take one unit; block (at most ``timeout`` seconds) while there is none.
        With ``ctx``, raises the context's error if it ends first."""
        return _sema_acquire(self, blocking, timeout, ctx)

    def __enter__(self):
        return _sema_enter(self)

    def release(self, n=1):
        """Return ``n`` units; more than were acquired is a ValueError."""
        _sema_release(self, n)

    def __exit__(self, t, v, tb):
        _sema_exit(self)

    @property
    def _initial_value(self):
        return self.bound

    def __repr__(self):
        return f"{_where(self)}: value={cy_sema_value(&self.s)}/{self.bound}>"


# ---------------------------------------------------------------- WeightedSemaphore

cdef inline int64_t _units(object n) except? -1:
    """n as units: 0 .. 2**63-1, or -2 for more than that (which no
    semaphore can hold: callers turn it into their "too big" outcome)."""
    cdef int64_t k = 1 if n is 1 else _index(n, -1, CY_WSEM_MAX)
    if k == -1:
        raise ValueError(_R.WSEM_N_NEGATIVE)
    if k == CY_WSEM_MAX and n != CY_WSEM_MAX:
        return -2
    return k


cdef class WeightedSemaphore:
    """golang.org/x/sync/semaphore.Weighted: ``size`` units, FIFO waiters."""

    cdef cy_wsem s
    cdef object __weakref__

    def __init__(self, size):
        cdef int64_t v = _index(size, -1, CY_WSEM_MAX)
        if v < 0:
            raise ValueError(_R.WSEM_SIZE_NEGATIVE)
        if v == CY_WSEM_MAX and size != CY_WSEM_MAX:
            raise OverflowError(_R.WSEM_SIZE_TOO_LARGE)
        cy_wsem_init(&self.s, v)

    def acquire(self, n=1, timeout=None, *, ctx=None):
        """Take ``n`` units, waiting in line (at most ``timeout`` seconds).
        With ``ctx``, raises the context's error if it ends first (and
        gives back any units granted at that moment)."""
        cdef int64_t k = _units(n)
        cdef int64_t ns = _timeout_ns(timeout)
        if k < 0 or k > self.s.size:
            raise ValueError(_R.WSEM_N_TOO_BIG)
        cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
        if cy_wsem_try_acquire(&self.s, k):
            return True
        if ns == 0 and (w is None or not w.by_ctx):
            return False                 # a poll: never queue
        cdef cy_wsem_waiter node         # our place in the line, for the whole wait
        if cy_wsem_enqueue(&self.s, k, &node):
            return True
        return _block(&cy_wsem_wait_op, &self.s, <uintptr_t>&node, ns, w, self) == CY_OK

    async def acquire_async(self, n=1, timeout=None, *, ctx=None):
        """``await``-able acquire(n): the task waits in the same line as
        threads, first come first served."""
        cdef int64_t k = _units(n)
        cdef int64_t ns = _timeout_ns(timeout)
        if k < 0 or k > self.s.size:
            raise ValueError(_R.WSEM_N_TOO_BIG)
        cdef _CtxWait w = _actx(ctx, ns)
        if cy_wsem_try_acquire(&self.s, k):
            return True
        if ns == 0 and w is None:
            return False
        return await _granted_async(self, _AG_WSEM, <uintptr_t>&self.s, k, ns, w)

    async def __aenter__(self):
        if cy_wsem_try_acquire(&self.s, 1):
            return True
        return await _granted_async(self, _AG_WSEM, <uintptr_t>&self.s, 1, -1, None)

    async def __aexit__(self, t, v, tb):
        if cy_wsem_release(&self.s, 1) != 0:
            raise ValueError(_R.WSEM_OVER_RELEASE)

    def try_acquire(self, n=1):
        """Take ``n`` units only if they are free and nobody is waiting."""
        cdef int64_t k = _units(n)
        return 0 <= k <= self.s.size and cy_wsem_try_acquire(&self.s, k)

    def release(self, n=1):
        """Return ``n`` units; waiters are served in order while they fit."""
        cdef int64_t k = _units(n)
        if k < 0 or cy_wsem_release(&self.s, k) != 0:
            raise ValueError(_R.WSEM_OVER_RELEASE)

    def __enter__(self):
        if cy_wsem_try_acquire(&self.s, 1):
            return True
        return self.acquire(1)

    def __exit__(self, t, v, tb):
        if cy_wsem_release(&self.s, 1) != 0:
            raise ValueError(_R.WSEM_OVER_RELEASE)

    @property
    def size(self):
        return self.s.size

    @property
    def held(self):
        """Units currently held."""
        return cy_wsem_held(&self.s)

    def _at_fork_reinit(self):
        cy_wsem_reinit(&self.s)

    def __repr__(self):
        return (f"{_where(self)}: held={cy_wsem_held(&self.s)}/{self.s.size},"
                f" waiters={cy_wsem_waiters(&self.s)}>")


# ---------------------------------------------------------------- Event

cdef class Event:
    """threading.Event with a C core: set/clear/is_set are one atomic operation."""

    cdef cy_event e
    cdef object _compat_cond
    cdef object __weakref__

    def __cinit__(self):
        cy_event_init(&self.e)

    def __init__(self):
        pass                        # rejects arguments, as threading.Event does

    def is_set(self):
        """Return True if and only if the flag is set."""
        return cy_event_is_set(&self.e)

    def isSet(self):
        """Deprecated alias of is_set()."""
        _warnings.warn("isSet() is deprecated, use is_set() instead",
                       DeprecationWarning, stacklevel=2)
        return cy_event_is_set(&self.e)

    def set(self):
        """Set the flag and wake every waiter."""
        cy_event_set(&self.e)

    def clear(self):
        """Reset the flag."""
        cy_event_clear(&self.e)

    def wait(self, timeout=None, *, ctx=None):
        """Block until the flag is set; False if ``timeout`` ran out first.
        With ``ctx``, raises the context's error if it ends first."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
        cdef uint32_t gen = cy_event_wait_begin(&self.e)   # once: a set()+clear() meanwhile counts
        if cy_event_is_set(&self.e):
            return True
        if ns == 0 and w is None:
            return False
        return _block(&cy_event_wait_op, &self.e, gen, ns, w, self) == CY_OK

    async def wait_async(self, timeout=None, *, ctx=None):
        """``await``-able wait(): suspends the task, not the thread."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = _actx(ctx, ns)
        cdef uint32_t gen = cy_event_wait_begin(&self.e)
        cdef _AWait aw
        cdef int r
        if cy_event_is_set(&self.e):
            return True
        if ns == 0 and w is None:
            return False
        # _word_async's loop, inlined: thousands of tasks often await one
        # Event, and each saves a coroutine object and a step through it.
        aw = _AWait.__new__(_AWait)
        aw.start(_get_running_loop(), w, ns)
        try:
            r = cy_event_arm(&self.e, gen, &aw.node, aw.w)
            while r == CY_AGAIN:
                try:
                    await aw.suspend()
                except BaseException:
                    cy_addr_disarm(&aw.node)
                    raise
                cy_addr_disarm(&aw.node)
                r = cy_event_arm(&self.e, gen, &aw.node, aw.w)
                if r == CY_AGAIN and aw.timed_out:
                    cy_addr_disarm(&aw.node)
                    r = CY_TIMEOUT
        finally:
            aw.finish()
        if r == CY_OK:
            return True
        if r == CY_CANCELLED:
            w._fail()
        return False

    @property
    def _cond(self):
        """A Condition for code that reaches into threading.Event's private
        ``_cond`` (lock_tests does); made on first use, never used by cysync."""
        fresh = _threading.Condition(_threading.Lock())
        with cython.critical_section(self):      # first caller's Condition wins
            if self._compat_cond is None:
                self._compat_cond = fresh
            return self._compat_cond

    def _at_fork_reinit(self):
        """After fork(): forget the threads that slept here (they are gone)."""
        cy_event_reinit(&self.e)
        if self._compat_cond is not None:
            self._compat_cond._at_fork_reinit()

    def __repr__(self):
        return f"{_where(self)}: {'set' if cy_event_is_set(&self.e) else 'unset'}>"


# ---------------------------------------------------------------- Barrier

BrokenBarrierError = _threading.BrokenBarrierError

cdef class Barrier:
    """threading.Barrier with a C core: ``parties`` threads meet, then all go on."""

    cdef cy_barrier b
    cdef object _action
    cdef object _timeout
    cdef object __weakref__

    def __init__(self, parties, action=None, timeout=None):
        cdef int64_t p = _index(parties, 0, 1LL << 32)
        if p < 1:
            raise ValueError(_R.BARRIER_PARTIES)
        if p > 0xffffffff:
            raise OverflowError(_R.BARRIER_PARTIES_TOO_LARGE)
        _timeout_ns(timeout)                # validate now, not at the first wait
        cy_barrier_init(&self.b, <uint32_t>p)
        self._action = action
        self._timeout = timeout

    def wait(self, timeout=None, *, ctx=None):
        """Wait until all parties have called wait(); return this thread's
        arrival index (0 .. parties-1).  Raises BrokenBarrierError if the
        barrier is broken, reset or aborted, or the timeout runs out (which
        breaks it for everyone).  With ``ctx``, raises the context's error if
        it ends first (which also breaks the barrier)."""
        if timeout is None:
            timeout = self._timeout
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
        cdef cy_barrier_ticket t
        cdef int r
        cdef bint ok = False
        # Entering only waits while a reset finishes or the action runs: try with the GIL.
        r = cy_barrier_arrive(&self.b, &t, False)
        if r == CY_TIMEOUT:
            r = _block(&cy_barrier_arrive_op, &self.b, <uintptr_t>&t, -1, None, self)
        if r == CY_BARRIER_BROKEN_ERR:
            raise BrokenBarrierError
        if r == CY_BARRIER_LAST:
            # The last to arrive runs the action; if it raises, the barrier
            # breaks and the exception goes to this caller.
            try:
                if self._action is not None:
                    self._action()
                ok = True
            finally:
                r = cy_barrier_action_done(&self.b, ok)
            if r != CY_OK:
                raise BrokenBarrierError
            return t.index
        # A timeout breaks the barrier in C (threading's rule), which reports
        # it as broken: the driver never sees CY_TIMEOUT here.
        r = _block(&cy_barrier_wait_op, &self.b, <uintptr_t>&t, ns, w, self)
        if r == CY_OK:
            return t.index
        if w is not None and w.by_ctx and cy_now_ns() >= w.deadline:
            w.wait_end()             # the deadline was the context's: raise its error
        raise BrokenBarrierError

    async def wait_async(self, timeout=None, *, ctx=None):
        """``await``-able wait(): tasks and threads meet at the same
        barrier; a task cancelled while it waits breaks it, as a timeout does."""
        if timeout is None:
            timeout = self._timeout
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = _actx(ctx, ns)
        return await _barrier_async(self, ns, w)

    def reset(self):
        """Return to the empty state; threads waiting now get BrokenBarrierError."""
        cy_barrier_reset(&self.b)

    def _at_fork_reinit(self):
        """After fork(): the threads inside are gone: a fresh, empty round.
        Done for you in a forked child for a barrier that had threads inside."""
        cy_barrier_reinit(&self.b)

    def abort(self):
        """Break the barrier: current and future wait() calls raise BrokenBarrierError."""
        cy_barrier_abort(&self.b)

    @property
    def parties(self):
        return self.b.parties

    @property
    def n_waiting(self):
        return cy_barrier_n_waiting(&self.b)

    @property
    def broken(self):
        return cy_barrier_broken(&self.b)

    def __repr__(self):
        if cy_barrier_broken(&self.b):
            return f"{_where(self)}: broken>"
        return f"{_where(self)}: waiters={cy_barrier_n_waiting(&self.b)}/{self.b.parties}>"


async def _barrier_async(Barrier self, int64_t ns, _CtxWait cw):
    cdef _AWait aw = _AWait.__new__(_AWait)
    cdef int r
    cdef bint ok = False
    r = cy_barrier_arrive(&self.b, &aw.bt, False)
    if r == CY_TIMEOUT:                  # a reset finishes or the action runs: wait to enter
        aw.start(_get_running_loop(), None, -1)
        try:
            while True:
                r = cy_barrier_arrive_arm(&self.b, &aw.bt, &aw.node, aw.w)
                if r == CY_TIMEOUT:
                    continue
                if r != CY_AGAIN:
                    break
                try:
                    await aw.suspend()
                finally:
                    cy_barrier_disarm(&self.b, &aw.node)
        finally:
            aw.finish()
    if r == CY_BARRIER_BROKEN_ERR:
        raise BrokenBarrierError
    if r == CY_BARRIER_LAST:
        try:
            if self._action is not None:
                self._action()
            ok = True
        finally:
            r = cy_barrier_action_done(&self.b, ok)
        if r != CY_OK:
            raise BrokenBarrierError
        return aw.bt.index
    aw.start(_get_running_loop(), cw, ns)
    try:
        r = cy_barrier_arm(&self.b, &aw.bt, &aw.node, aw.w)
        while r == CY_AGAIN:
            try:
                await aw.suspend()
            except BaseException:
                cy_barrier_give_up(&self.b, &aw.bt, &aw.node)
                raise
            if aw.timed_out:
                r = cy_barrier_give_up(&self.b, &aw.bt, &aw.node)
                break
            cy_barrier_disarm(&self.b, &aw.node)
            r = cy_barrier_arm(&self.b, &aw.bt, &aw.node, aw.w)
    finally:
        aw.finish()
    if r == CY_OK:
        return aw.bt.index
    if r == CY_CANCELLED:
        cw._fail()
    raise BrokenBarrierError


# ---------------------------------------------------------------- RWMutex

cdef class _RWCore:
    """The C lock that an RWMutex and its ``reader`` and ``writer`` share.
    They hold this, not the RWMutex, so no reference cycle keeps an RWMutex
    alive until the garbage collector runs."""

    cdef cy_rwmutex m


# The helpers take the C lock, not the _RWCore: passing an object would
# incref and decref it on every call, and on a free-threaded build that is
# an atomic operation on a count that every thread's call shares.  The
# caller holds the RWMutex or the side, which holds the core.

cdef int _rw_wait(cy_rwmutex *m, bint writer, int64_t ns, _CtxWait w, object owner=None) except -1:
    """After the fast path failed: 1 once locked, 0 if the timeout ran out."""
    cdef cy_rw_waiter node           # our place in the queue, for the whole wait
    if ns == 0 and (w is None or not w.by_ctx):
        return 0                     # a poll: never queue
    if cy_rw_enqueue(m, writer, &node):
        return 1
    return _block(&cy_rw_wait_op, m, <uintptr_t>&node, ns, w, owner) == CY_OK


cdef object _rw_lock(cy_rwmutex *m, bint writer, object timeout, object ctx, object owner=None):
    cdef int64_t ns = _timeout_ns(timeout)
    cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
    if cy_rw_try_lock(m) if writer else cy_rw_try_rlock(m):
        return True
    return _rw_wait(m, writer, ns, w, owner) != 0


cdef object _rw_acquire(cy_rwmutex *m, bint writer, object blocking, object timeout, object owner=None):
    """The ``acquire(blocking, timeout)`` of ``rw.reader`` and ``rw.writer``."""
    if not blocking:
        if timeout is not None:
            raise ValueError(_R.NONBLOCKING_TIMEOUT)
        return cy_rw_try_lock(m) if writer else cy_rw_try_rlock(m)
    return _rw_lock(m, writer, timeout, None, owner)


cdef inline int _rw_runlock(cy_rwmutex *m) except -1:
    if cy_rw_runlock(m) != 0:
        raise RuntimeError(_R.RW_RUNLOCK)
    return 0


cdef inline int _rw_unlock(cy_rwmutex *m) except -1:
    if cy_rw_unlock(m) != 0:
        raise RuntimeError(_R.RW_UNLOCK)
    return 0


cdef str _rw_state(_RWCore core):
    cdef uint32_t nr = cy_rw_waiting(&core.m, 0)
    cdef uint32_t nw = cy_rw_waiting(&core.m, 1)
    return (f"readers={cy_rw_readers(&core.m)}, writer={bool(cy_rw_writer(&core.m))},"
            f" waiters={nr + nw}, writers waiting={nw}")


async def _rw_lock_async(_RWCore core, bint writer, object timeout, object ctx):
    cdef int64_t ns = _timeout_ns(timeout)
    cdef _CtxWait w = _actx(ctx, ns)
    if cy_rw_try_lock(&core.m) if writer else cy_rw_try_rlock(&core.m):
        return True
    if ns == 0 and w is None:
        return False
    return await _granted_async(core, _AG_RW, <uintptr_t>&core.m, writer, ns, w)


cdef class _RWReader:
    """``rw.reader``: the read side of an RWMutex as a lock-like object."""

    cdef _RWCore c

    def acquire(self, blocking=True, timeout=None):
        """``rw.rlock(timeout)``; with ``blocking=False``, ``rw.try_rlock()``."""
        return _rw_acquire(&self.c.m, False, blocking, timeout, self)

    def release(self):
        """``rw.runlock()``."""
        _rw_runlock(&self.c.m)

    def __enter__(self):
        if cy_rw_try_rlock(&self.c.m):
            return True
        return _rw_wait(&self.c.m, False, -1, None, self) != 0

    def __exit__(self, t, v, tb):
        _rw_runlock(&self.c.m)

    async def acquire_async(self, blocking=True, timeout=None):
        """``await``-able acquire()."""
        if not blocking:
            return _rw_acquire(&self.c.m, False, blocking, timeout)
        return await _rw_lock_async(self.c, False, timeout, None)

    async def __aenter__(self):
        return await _rw_lock_async(self.c, False, None, None)

    async def __aexit__(self, t, v, tb):
        _rw_runlock(&self.c.m)

    def __repr__(self):
        return f"<cysync.RWMutex.reader at {id(self):#x}: {_rw_state(self.c)}>"


cdef class _RWWriter:
    """``rw.writer``: the write side of an RWMutex as a lock-like object."""

    cdef _RWCore c

    def acquire(self, blocking=True, timeout=None):
        """``rw.lock(timeout)``; with ``blocking=False``, ``rw.try_lock()``."""
        return _rw_acquire(&self.c.m, True, blocking, timeout, self)

    def release(self):
        """``rw.unlock()``."""
        _rw_unlock(&self.c.m)

    def __enter__(self):
        if cy_rw_try_lock(&self.c.m):
            return True
        return _rw_wait(&self.c.m, True, -1, None, self) != 0

    def __exit__(self, t, v, tb):
        _rw_unlock(&self.c.m)

    async def acquire_async(self, blocking=True, timeout=None):
        """``await``-able acquire()."""
        if not blocking:
            return _rw_acquire(&self.c.m, True, blocking, timeout)
        return await _rw_lock_async(self.c, True, timeout, None)

    async def __aenter__(self):
        return await _rw_lock_async(self.c, True, None, None)

    async def __aexit__(self, t, v, tb):
        _rw_unlock(&self.c.m)

    def __repr__(self):
        return f"<cysync.RWMutex.writer at {id(self):#x}: {_rw_state(self.c)}>"


cdef class RWMutex:
    """Go's sync.RWMutex with a C core: many readers or one writer; the fast
    paths are one atomic operation each."""

    cdef _RWCore c
    cdef _RWReader _reader
    cdef _RWWriter _writer
    cdef object __weakref__

    def __cinit__(self):
        self.c = _RWCore.__new__(_RWCore)
        cy_rw_init(&self.c.m)
        # Made now, not on first use: `with rw.reader:` then reads a field
        # that never changes, with no lock even on free-threaded builds.
        self._reader = _RWReader.__new__(_RWReader)
        self._reader.c = self.c
        self._writer = _RWWriter.__new__(_RWWriter)
        self._writer.c = self.c

    def __init__(self):
        pass                        # rejects arguments

    def lock(self, timeout=None, *, ctx=None):
        """Lock for writing: wait (at most ``timeout`` seconds) until no
        reader or writer holds the lock.  With ``ctx``, raises the context's
        error if it ends first."""
        cdef int64_t ns
        if ctx is not None:
            return _rw_lock(&self.c.m, True, timeout, ctx, self)
        ns = _timeout_ns(timeout)
        if cy_rw_try_lock(&self.c.m):
            return True
        return _rw_wait(&self.c.m, True, ns, None, self) != 0

    def unlock(self):
        """Unlock for writing; RuntimeError if no writer holds the lock."""
        _rw_unlock(&self.c.m)

    def rlock(self, timeout=None, *, ctx=None):
        """Lock for reading: wait (at most ``timeout`` seconds) while a writer
        holds the lock or waits for it.  With ``ctx``, raises the context's
        error if it ends first."""
        cdef int64_t ns
        if ctx is not None:
            return _rw_lock(&self.c.m, False, timeout, ctx, self)
        ns = _timeout_ns(timeout)
        if cy_rw_try_rlock(&self.c.m):
            return True
        return _rw_wait(&self.c.m, False, ns, None, self) != 0

    def runlock(self):
        """Undo one rlock(); RuntimeError if no reader holds the lock."""
        _rw_runlock(&self.c.m)

    async def lock_async(self, timeout=None, *, ctx=None):
        """``await``-able lock(): the task waits in line with threads."""
        return await _rw_lock_async(self.c, True, timeout, ctx)

    async def rlock_async(self, timeout=None, *, ctx=None):
        """``await``-able rlock()."""
        return await _rw_lock_async(self.c, False, timeout, ctx)

    def try_lock(self):
        """Lock for writing only if nobody holds the lock or waits for it."""
        return cy_rw_try_lock(&self.c.m)

    def try_rlock(self):
        """Lock for reading only if no writer holds the lock or waits for it."""
        return cy_rw_try_rlock(&self.c.m)

    @property
    def reader(self):
        """The read side as a lock-like object (the same one every time)."""
        return self._reader

    @property
    def writer(self):
        """The write side as a lock-like object (the same one every time)."""
        return self._writer

    def __repr__(self):
        return f"{_where(self)}: {_rw_state(self.c)}>"


# ---------------------------------------------------------------- defer

cdef extern from "_cysync_capi.h":
    ctypedef object (*vectorcallfunc)(object, PyObject **, size_t, PyObject *)
    Py_ssize_t cysync_deferrable_func_offset
    object (*cysync_run_deferred)(object, object)
    void *cysync_deferrable_call
    object cysync_make_defer(object module_name)
    void cysync_enable_vectorcall(object type, Py_ssize_t offset)
    void PyErr_GetExcInfo(PyObject **ptype, PyObject **pvalue, PyObject **ptb)
    void PyErr_SetExcInfo(PyObject *ptype, PyObject *pvalue, PyObject *ptb)
    object _bound_method "PyMethod_New"(object func, object self)


cdef object _run_deferred(object calls, object pending):
    """Runs the deferred calls last-in first-out, each as if in the finally
    block of the one registered before it: while one runs, the exception in
    flight (``pending``) is the handled exception, so an exception it raises
    chains to it exactly as in nested finally blocks.  Returns the exception
    to raise at the end, or None."""
    cdef Py_ssize_t i
    cdef PyObject *saved_type
    cdef PyObject *saved_value
    cdef PyObject *saved_tb
    cdef list todo = <list>calls
    cdef bint swapped = False
    try:
        for i in range(len(todo) - 1, -1, -1):
            entry = todo[i]
            if pending is not None:
                if not swapped:
                    PyErr_GetExcInfo(&saved_type, &saved_value, &saved_tb)
                    swapped = True
                _set_handled(pending)
            try:
                if type(entry) is tuple:
                    (<tuple>entry)[0](*(<tuple>entry)[1], **(<tuple>entry)[2])
                else:
                    entry()
            except BaseException as e:
                pending = e
    finally:
        if swapped:
            PyErr_SetExcInfo(saved_type, saved_value, saved_tb)   # steals the saved references
    return pending


cdef inline int _set_handled(object exc) except -1:
    kind = type(exc)
    tb = exc.__traceback__
    Py_INCREF(kind)
    Py_INCREF(exc)
    Py_INCREF(tb)
    PyErr_SetExcInfo(<PyObject *>kind, <PyObject *>exc, <PyObject *>tb)   # steals the three
    return 0


cdef class _Deferrable:
    """A function whose body may call defer(); made by deferrable().

    Calls go through the vectorcall ``cysync_deferrable_call`` above."""

    cdef void *vectorcall
    cdef object func
    cdef dict __dict__
    cdef object __weakref__

    def __cinit__(self):
        self.vectorcall = cysync_deferrable_call

    def __get__(self, obj, objtype):
        if obj is None:
            return self
        return _bound_method(self, obj)

    def __repr__(self):
        return f"<deferrable {self.func!r}>"


cdef int _install_deferrable() except -1:
    global cysync_deferrable_func_offset, cysync_run_deferred
    cdef _Deferrable probe = _Deferrable.__new__(_Deferrable)
    cdef Py_ssize_t vc = <char *>&probe.vectorcall - <char *><void *>probe
    # func is the field right after vectorcall; check it rather than trust it.
    sentinel = object()
    probe.func = sentinel
    cysync_deferrable_func_offset = vc + sizeof(void *)
    if (<PyObject **>(<char *><void *>probe + cysync_deferrable_func_offset))[0] != <PyObject *>sentinel:
        raise ImportError("cysync: unexpected layout of _Deferrable")
    cysync_run_deferred = _run_deferred
    cysync_enable_vectorcall(_Deferrable, vc)
    return 0


_install_deferrable()
defer = cysync_make_defer(__name__)


def deferrable(fn):
    """Decorator: inside ``fn``, ``defer(g, ...)`` registers calls that run
    when ``fn`` returns or raises, last registered first (Go's defer)."""
    _check_callable(fn)
    if _inspect.isgeneratorfunction(fn):
        raise TypeError(_R.DEFERRABLE_GENERATOR)
    if _inspect.iscoroutinefunction(fn):
        raise TypeError(_R.DEFERRABLE_COROUTINE)
    if _inspect.isasyncgenfunction(fn):
        raise TypeError(_R.DEFERRABLE_ASYNCGEN)
    cdef _Deferrable d = _Deferrable.__new__(_Deferrable)
    d.func = fn
    _functools.update_wrapper(d, fn)
    return d


# ---------------------------------------------------------------- Chan, select, after

from cysync._errors import ChanClosed

cdef extern from "Python.h":
    bint PyCFunction_Check(object o)
    PyObject *PyCFunction_GET_SELF(object o)
    void *PyCFunction_GET_FUNCTION(object o)
    void _decref "Py_DECREF" (PyObject *o)


cdef inline object _take(void *v):
    """A value out of a channel: the reference the channel held is ours now."""
    o = <object>v                # a new reference...
    _decref(<PyObject *>v)       # ...for the channel's
    return o


cdef class Chan:
    """Go's channel: ``Chan(cap=0)``; ``cap == 0`` hands each value from a
    sender straight to a receiver."""

    cdef cy_chan ch
    cdef object __weakref__

    def __cinit__(self, cap=0):
        cdef int64_t n = _index(cap, -1, 1LL << 32)
        cdef void **buf = NULL           # the channel's ring (cy_chan.buf), freed in __dealloc__
        if n < 0:
            raise ValueError(_R.CHAN_CAP_NEGATIVE)
        if n > 0xffffffff:
            raise OverflowError(_R.CHAN_CAP_TOO_LARGE)
        if n > 0:
            buf = <void **>PyMem_RawMalloc(<size_t>n * sizeof(void *))
            if buf == NULL:
                raise MemoryError
        cy_chan_init(&self.ch, buf, <uint32_t>n)

    def __dealloc__(self):
        cdef void *v
        while cy_chan_drain(&self.ch, &v):
            _decref(<PyObject *>v)
        PyMem_RawFree(self.ch.buf)

    def send(self, value, timeout=None, *, ctx=None):
        """Send ``value``: True once it is in the buffer or handed to a
        receiver, False if ``timeout`` ran out.  Raises ChanClosed if the
        channel is closed, or closed while this call waits."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
        Py_INCREF(value)                 # the channel's reference, if it takes it
        cdef int r = cy_chan_try_send(&self.ch, <void *>value)
        if r == 0:
            return True
        Py_DECREF(value)
        if r == CY_CHAN_CLOSED:
            raise ChanClosed(_R.CHAN_SEND_CLOSED)
        cdef cy_case c
        c.ch = &self.ch
        c.dir = CY_CASE_SEND
        c.elem = <void *>value
        return _chan_wait(&c, ns, w, True, self)

    def recv(self, timeout=None, *, ctx=None):
        """The next value, first in first out.  Raises TimeoutError if
        ``timeout`` ran out, ChanClosed once the channel is closed and drained."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
        cdef void *v
        cdef int r = cy_chan_try_recv(&self.ch, &v)
        if r == 0:
            return _take(v)
        if r == CY_CHAN_CLOSED:
            raise ChanClosed(_R.CHAN_RECV_CLOSED)
        cdef cy_case c
        c.ch = &self.ch
        c.dir = CY_CASE_RECV
        c.elem = NULL
        return _chan_wait(&c, ns, w, False, self)

    def recv_ok(self, timeout=None, *, ctx=None):
        """Go's ``v, ok := <-ch``: ``(value, True)``, or ``(None, False)``
        once the channel is closed and drained.  Raises TimeoutError if
        ``timeout`` ran out."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
        cdef void *v
        cdef int r = cy_chan_try_recv(&self.ch, &v)
        if r == 0:
            return (_take(v), True)
        if r == CY_CHAN_CLOSED:
            return (None, False)
        cdef cy_case c
        c.ch = &self.ch
        c.dir = CY_CASE_RECV
        c.elem = NULL
        return _chan_wait(&c, ns, w, True, self)

    async def send_async(self, value, timeout=None, *, ctx=None):
        """``await``-able send(): the task queues with threads, in order."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = _actx(ctx, ns)
        Py_INCREF(value)
        cdef int r = cy_chan_try_send(&self.ch, <void *>value)
        if r == 0:
            return True
        Py_DECREF(value)
        if r == CY_CHAN_CLOSED:
            raise ChanClosed(_R.CHAN_SEND_CLOSED)
        if ns == 0 and w is None:
            return False
        return await _chan_async(self, CY_CASE_SEND, value, ns, w, 0)

    async def recv_async(self, timeout=None, *, ctx=None):
        """``await``-able recv().  A value handed to a task as it is
        cancelled goes to the next receiver (or back to the front of the
        buffer): nothing is lost."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = _actx(ctx, ns)
        cdef void *v
        cdef int r = cy_chan_try_recv(&self.ch, &v)
        if r == 0:
            return _take(v)
        if r == CY_CHAN_CLOSED:
            raise ChanClosed(_R.CHAN_RECV_CLOSED)
        if ns == 0 and w is None:
            raise TimeoutError(_R.CHAN_RECV_TIMEOUT)
        return await _chan_async(self, CY_CASE_RECV, None, ns, w, 1)

    async def recv_ok_async(self, timeout=None, *, ctx=None):
        """``await``-able recv_ok()."""
        cdef int64_t ns = _timeout_ns(timeout)
        cdef _CtxWait w = _actx(ctx, ns)
        cdef void *v
        cdef int r = cy_chan_try_recv(&self.ch, &v)
        if r == 0:
            return (_take(v), True)
        if r == CY_CHAN_CLOSED:
            return (None, False)
        if ns == 0 and w is None:
            raise TimeoutError(_R.CHAN_RECV_TIMEOUT)
        return await _chan_async(self, CY_CASE_RECV, None, ns, w, 2)

    def __aiter__(self):
        return self

    async def __anext__(self):
        """``async for v in ch``: the next value, until closed and drained."""
        cdef void *v
        cdef int r = cy_chan_try_recv(&self.ch, &v)
        if r == 0:
            return _take(v)
        if r == CY_CHAN_CLOSED:
            raise StopAsyncIteration
        return await _chan_async(self, CY_CASE_RECV, None, -1, None, 3)

    def close(self):
        """Close the channel: every waiter wakes; buffered values are still
        received.  Closing twice raises ChanClosed."""
        if cy_chan_close(&self.ch) != 0:
            raise ChanClosed(_R.CHAN_CLOSE_CLOSED)

    def __iter__(self):
        return self

    def __next__(self):
        """Go's ``for v := range ch``: the next value, until closed and drained."""
        cdef void *v
        cdef int r = cy_chan_try_recv(&self.ch, &v)
        if r == 0:
            return _take(v)
        if r == CY_CHAN_CLOSED:
            raise StopIteration
        cdef cy_case c
        c.ch = &self.ch
        c.dir = CY_CASE_RECV
        c.elem = NULL
        value, ok = _chan_wait(&c, -1, None, True, self)
        if not ok:
            raise StopIteration
        return value

    def __len__(self):
        return cy_chan_len(&self.ch)

    @property
    def cap(self):
        """The buffer's capacity (0: unbuffered)."""
        return self.ch.cap

    @property
    def closed(self):
        """Whether close() has been called."""
        return cy_chan_closed(&self.ch)

    def __sizeof__(self):
        return object.__sizeof__(self) + self.ch.cap * sizeof(void *)

    def __repr__(self):
        state = " closed" if cy_chan_closed(&self.ch) else ""
        return f"{_where(self)}: len={cy_chan_len(&self.ch)} cap={self.ch.cap}{state}>"


cdef object _chan_wait(cy_case *c, int64_t ns, _CtxWait w, bint ok_form, object owner):
    """A send or receive that must wait: a select of the one case.  A send
    returns True/False; a receive the value (or (value, ok) with ok_form),
    raising TimeoutError."""
    cdef cy_chan *locks[1]
    cdef cy_select s
    cdef int r
    cy_select_init(&s, c, 1, locks)
    if c.dir == CY_CASE_SEND:
        Py_INCREF(<object>c.elem)
        try:
            r = _block(&cy_select_wait_op, &s, 0, ns, w, owner)
        except BaseException:
            _decref(<PyObject *>c.elem)
            raise
        if r == CY_OK and s.ok:
            return True
        _decref(<PyObject *>c.elem)
        if r == CY_OK:
            raise ChanClosed(_R.CHAN_SEND_CLOSED)
        return False
    r = _block(&cy_select_wait_op, &s, 0, ns, w, owner)
    if r != CY_OK:
        raise TimeoutError(_R.CHAN_RECV_TIMEOUT)
    if not s.ok:
        if ok_form:
            return (None, False)
        raise ChanClosed(_R.CHAN_RECV_CLOSED)
    if ok_form:
        return (_take(s.value), True)
    return _take(s.value)


# Channels: a send, a receive or a select queues its cases on the record.
cdef int _give_back(object chan, void *v) except -1:
    """A value handed to a receiver whose coroutine is being closed
    (GeneratorExit: its loop is gone): to the next receiver or the front of
    the buffer; with neither (no receiver waits, no room) it is dropped."""
    cdef Chan ch = <Chan>chan
    if cy_chan_unrecv(&ch.ch, v) != 0:
        _decref(<PyObject *>v)
    return 0


async def _aselect(_AWait aw):
    """Runs aw.sel until a case fires (CY_OK) or the timeout runs out
    (CY_TIMEOUT); raises the context's error.  aw.r keeps the outcome.

    Cancelled meanwhile (CancelledError thrown in): if the task can still
    claim its own record, nothing has happened: it leaves every queue and
    the cancellation propagates.  If a partner claimed it first, the
    operation has completed (a value was handed over) and must not be lost:
    the call returns its result (the pure twin's rule).  A coroutine closed
    (GeneratorExit) gives a received value back instead."""
    cdef int r = cy_select_arm(&aw.sel, aw.w)
    cdef uint32_t i
    aw.r = r
    if r == CY_CANCELLED:
        aw.cw._fail()
    if r != CY_AGAIN:
        return r
    try:
        while True:
            await aw.suspend()
            if aw.timed_out or cy_async_claimed(aw.w) != CY_CLAIM_NONE:
                break
    except BaseException as exc:
        cy_async_claim_self(aw.w)
        r = aw.r = cy_select_end(&aw.sel, aw.w)
        if r != CY_OK:
            raise
        if isinstance(exc, GeneratorExit):
            i = aw.sel.chosen
            if aw.sel.ok and aw.sel.cases[i].dir == CY_CASE_RECV:
                _give_back(aw.chans[i], aw.sel.value)
                aw.sel.value = NULL
            raise
        return r                        # completed before the cancellation
    cy_async_claim_self(aw.w)
    r = aw.r = cy_select_end(&aw.sel, aw.w)
    if r == CY_CANCELLED:
        aw.cw._fail()
    return r


async def _chan_async(Chan ch, int dir, object value, int64_t ns, _CtxWait cw, int form):
    """A send (form 0) or receive (1: recv, 2: recv_ok, 3: __anext__) whose
    fast path failed."""
    cdef _AWait aw = _AWait.__new__(_AWait)
    cdef int r
    aw.start(_get_running_loop(), cw, ns)
    aw.chans = (ch,)
    aw.one.ch = &ch.ch
    aw.one.dir = dir
    aw.one.elem = <void *>value if dir == CY_CASE_SEND else NULL
    cy_select_init(&aw.sel, &aw.one, 1, &aw.one_lock)
    if dir == CY_CASE_SEND:
        Py_INCREF(value)                 # the channel's, if the send goes through
    try:
        r = await _aselect(aw)
    except BaseException:
        if dir == CY_CASE_SEND and not (aw.r == CY_OK and aw.sel.ok):
            Py_DECREF(value)
        raise
    finally:
        aw.finish()
    if dir == CY_CASE_SEND:
        if r == CY_OK and aw.sel.ok:
            return True
        Py_DECREF(value)
        if r == CY_OK:
            raise ChanClosed(_R.CHAN_SEND_CLOSED)
        return False
    if r != CY_OK:
        raise TimeoutError(_R.CHAN_RECV_TIMEOUT)
    if not aw.sel.ok:
        if form == 2:
            return (None, False)
        if form == 3:
            raise StopAsyncIteration
        raise ChanClosed(_R.CHAN_RECV_CLOSED)
    if form == 2:
        return (_take(aw.sel.value), True)
    return _take(aw.sel.value)


# The C functions behind ch.recv, ch.recv_ok and ch.send: how select tells
# its cases apart (a bound method of a Chan is a PyCFunction whose self is
# the channel).
cdef void *_RECV_FN = NULL
cdef void *_RECV_OK_FN = NULL
cdef void *_SEND_FN = NULL


cdef int _init_case_fns() except -1:
    global _RECV_FN, _RECV_OK_FN, _SEND_FN
    probe = Chan()
    _RECV_FN = PyCFunction_GET_FUNCTION(probe.recv)
    _RECV_OK_FN = PyCFunction_GET_FUNCTION(probe.recv_ok)
    _SEND_FN = PyCFunction_GET_FUNCTION(probe.send)
    return 0


_init_case_fns()

DEF _SMALL_SELECT = 8


cdef int _parse_case(object case, Py_ssize_t index, cy_case *c, uint32_t *kind) except -1:
    """Fills c from one select case; kind: 0 recv, 1 recv_ok, 2 send, 3 None."""
    cdef void *fn
    cdef object method = case
    c.elem = NULL
    if case is None:
        c.ch = NULL
        c.dir = CY_CASE_RECV
        kind[0] = 3
        return 0
    if type(case) is tuple:
        if len(<tuple>case) != 2:
            raise TypeError(_R.SELECT_BAD_CASE.format(index=index, case=case))
        method = (<tuple>case)[0]
    if not PyCFunction_Check(method) or type(<object>PyCFunction_GET_SELF(method)) is not Chan:
        raise TypeError(_R.SELECT_BAD_CASE.format(index=index, case=case))
    fn = PyCFunction_GET_FUNCTION(method)
    c.ch = &(<Chan>PyCFunction_GET_SELF(method)).ch
    if type(case) is tuple:
        if fn != _SEND_FN:
            raise TypeError(_R.SELECT_BAD_CASE.format(index=index, case=case))
        c.dir = CY_CASE_SEND
        c.elem = <void *>(<tuple>case)[1]     # borrowed: the tuple holds it
        kind[0] = 2
    elif fn == _RECV_FN or fn == _RECV_OK_FN:
        c.dir = CY_CASE_RECV
        kind[0] = 0 if fn == _RECV_FN else 1
    else:
        raise TypeError(_R.SELECT_BAD_CASE.format(index=index, case=case))
    return 0


cdef extern from "_cysync_capi.h":
    object (*cysync_select_impl)(PyObject **cases, Py_ssize_t n, object timeout, object ctx, int dflt)
    object cysync_make_select(object module_name)


cdef tuple _select_owner(PyObject **cases, Py_ssize_t n):
    """What a select waits on, for cysync.debug: the channels of its cases."""
    chans = []
    for i in range(n):
        case = <object>cases[i]
        if case is not None:
            method = case[0] if type(case) is tuple else case
            chans.append(<object>PyCFunction_GET_SELF(method))
    return tuple(chans)


cdef object _select_impl(PyObject **cases, Py_ssize_t n, object timeout, object ctx, int default):
    """select() behind the fastcall wrapper in _cysync_capi.h (which has
    the docstring)."""
    cdef Py_ssize_t i
    cdef cy_case small_cases[_SMALL_SELECT]
    cdef cy_chan *small_locks[_SMALL_SELECT]
    cdef uint32_t small_kinds[_SMALL_SELECT]
    cdef cy_case *cs = small_cases
    cdef cy_chan **locks = small_locks
    cdef uint32_t *kinds = small_kinds
    cdef cy_select s
    cdef int64_t ns = _timeout_ns(timeout)
    cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, ns)
    cdef int r
    cdef bint sent_refs = False
    if n > 0xffff:
        raise ValueError("too many select cases")
    if n > _SMALL_SELECT:
        cs = <cy_case *>PyMem_Malloc(n * sizeof(cy_case))
        locks = <cy_chan **>PyMem_Malloc(n * sizeof(cy_chan *))
        kinds = <uint32_t *>PyMem_Malloc(n * sizeof(uint32_t))
        if cs == NULL or locks == NULL or kinds == NULL:
            PyMem_Free(cs)
            PyMem_Free(locks)
            PyMem_Free(kinds)
            raise MemoryError
    try:
        for i in range(n):
            _parse_case(<object>cases[i], i, &cs[i], &kinds[i])
        cy_select_init(&s, cs, <uint32_t>n, locks)
        # Each send case's value gets a reference of its own: the channel
        # keeps the one of the case that fires, the others are dropped.
        for i in range(n):
            if kinds[i] == 2:
                Py_INCREF(<object>cs[i].elem)
        sent_refs = True
        r = cy_select_try(&s)           # first without releasing the GIL
        if r != CY_OK and not default:
            r = _block(&cy_select_wait_op, &s, 0, ns, w, _select_owner(cases, n) if _debug else None)
        for i in range(n):
            if kinds[i] == 2 and not (r == CY_OK and s.chosen == i and s.ok):
                _decref(<PyObject *>cs[i].elem)
        sent_refs = False
        if r != CY_OK:
            return (-1, None)
        i = s.chosen
        if kinds[i] == 2:
            if not s.ok:
                raise ChanClosed(_R.CHAN_SEND_CLOSED)
            return (i, None)
        if not s.ok:
            if kinds[i] == 1:
                return (i, (None, False))
            raise ChanClosed(_R.CHAN_RECV_CLOSED)
        if kinds[i] == 1:
            return (i, (_take(s.value), True))
        return (i, _take(s.value))
    finally:
        if sent_refs:                    # _block raised: no case fired
            for i in range(n):
                if kinds[i] == 2:
                    _decref(<PyObject *>cs[i].elem)
        if cs != small_cases:
            PyMem_Free(cs)
            PyMem_Free(locks)
            PyMem_Free(kinds)


cysync_select_impl = _select_impl
select = cysync_make_select(__name__)


async def select_async(*cases, timeout=None, ctx=None, default=False):
    """``await``-able select(): the same cases, results and errors; the
    task queues on every channel at once, as a thread does.  A value
    received as the task is cancelled goes to the next receiver."""
    cdef Py_ssize_t n = len(cases), i
    cdef int64_t ns = _timeout_ns(timeout)
    cdef _CtxWait w = _actx(ctx, ns)
    cdef _AWait aw = _AWait.__new__(_AWait)
    cdef int r = -1
    cdef bint sent_refs = False
    aw.r = -1
    if n > 0xffff:
        raise ValueError("too many select cases")
    aw.cs = <cy_case *>PyMem_Malloc((n + 1) * sizeof(cy_case))
    aw.locks = <cy_chan **>PyMem_Malloc((n + 1) * sizeof(cy_chan *))
    aw.kinds = <uint32_t *>PyMem_Malloc((n + 1) * sizeof(uint32_t))
    if aw.cs == NULL or aw.locks == NULL or aw.kinds == NULL:
        raise MemoryError
    chans = []
    for i in range(n):
        case = cases[i]
        _parse_case(case, i, &aw.cs[i], &aw.kinds[i])
        if case is None:
            chans.append(None)
        else:
            chans.append(<object>PyCFunction_GET_SELF(case[0] if type(case) is tuple else case))
    aw.chans = tuple(chans)
    cy_select_init(&aw.sel, aw.cs, <uint32_t>n, aw.locks)
    for i in range(n):                   # as select(): a reference per send case
        if aw.kinds[i] == 2:
            Py_INCREF(<object>aw.cs[i].elem)
    sent_refs = True
    try:
        r = cy_select_try(&aw.sel)
        if r != CY_OK and not default:
            aw.start(_get_running_loop(), w, ns)
            r = await _aselect(aw)
    finally:
        aw.finish()
        if sent_refs:
            if r != CY_OK:
                r = aw.r if aw.r == CY_OK else r   # raised as a case fired
            for i in range(n):
                if aw.kinds[i] == 2 and not (r == CY_OK and aw.sel.chosen == i and aw.sel.ok):
                    _decref(<PyObject *>aw.cs[i].elem)
    if r != CY_OK:
        return (-1, None)
    i = aw.sel.chosen
    if aw.kinds[i] == 2:
        if not aw.sel.ok:
            raise ChanClosed(_R.CHAN_SEND_CLOSED)
        return (i, None)
    if not aw.sel.ok:
        if aw.kinds[i] == 1:
            return (i, (None, False))
        raise ChanClosed(_R.CHAN_RECV_CLOSED)
    if aw.kinds[i] == 1:
        return (i, (_take(aw.sel.value), True))
    return (i, _take(aw.sel.value))


def after(seconds):
    """Go's time.After: a ``Chan(1)`` that receives ``time.monotonic()`` once,
    ``seconds`` from now, sent by the process's one timer thread (no thread
    per call).  ``seconds <= 0`` fires at once, ``inf`` never; the timer
    holds the channel weakly, so a channel nobody holds is freed unfired."""
    delay = _context_seconds(seconds, "seconds")
    ch = Chan(1)
    if delay <= _FOREVER_SECONDS:
        _TIMER.call_at(_monotonic() + delay, _functools.partial(_send_time, _weakref.ref(ch)))
    return ch


def _send_time(ref):
    """after()'s callback in the timer thread: a send that never blocks
    (nothing to do if the channel is gone, closed or full)."""
    cdef Chan ch = ref()
    if ch is None:
        return
    now = _monotonic()
    Py_INCREF(now)
    if cy_chan_try_send(&ch.ch, <void *>now) != 0:
        Py_DECREF(now)


# ---------------------------------------------------------------- Queue

from queue import Empty as _Empty, Full as _Full
from cysync._errors import ShutDown

_QUEUE_HOOKS = _R.QUEUE_HOOKS


cdef int64_t _queue_timeout_ns(object timeout) except? -2:
    """queue.Queue's timeout: None waits for ever, a negative one is a ValueError."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError(_R.QUEUE_TIMEOUT_NEGATIVE)
    return _seconds_to_ns(timeout)


cdef int _queue_raise(int r, object blocked) except -1:
    if r == CY_QUEUE_SHUTDOWN:
        raise ShutDown
    if r == CY_QUEUE_NOMEM:
        raise MemoryError
    raise blocked


cdef class Queue:
    """queue.Queue in C: ``Queue(maxsize=0)``, ``maxsize <= 0`` unbounded."""

    cdef cy_queue q
    cdef object __weakref__

    def __cinit__(self, *args, **kwargs):
        if cy_queue_init(&self.q, 0) != 0:
            raise MemoryError

    def __init__(self, maxsize=0):
        cdef int64_t n = _index(maxsize, -(1LL << 62), 1LL << 62)
        if cy_queue_set_maxsize(&self.q, n) != 0:
            raise MemoryError
        if 0 < n <= CY_QUEUE_PREALLOC_MAX and cy_queue_reserve(&self.q, <size_t>n) != 0:
            raise MemoryError

    def __dealloc__(self):
        cdef void *v
        while cy_queue_drain(&self.q, &v):
            _decref(<PyObject *>v)
        cy_queue_destroy(&self.q)

    def put(self, item, block=True, timeout=None, *, ctx=None):
        """Put ``item`` in the queue, waiting while it is full (``block``,
        ``timeout``): raises queue.Full, or ShutDown once shut down."""
        cdef int64_t ns = -1
        cdef _CtxWait w = None
        if block and timeout is not None and cy_queue_maxsize(&self.q) > 0:
            ns = _queue_timeout_ns(timeout)
        if ctx is not None:
            w = _ctx_wait(ctx, ns)
        Py_INCREF(item)                  # the queue's reference, if it takes it
        cdef int r = cy_queue_try_put(&self.q, <void *>item)
        if r == 0:
            return
        Py_DECREF(item)
        if r != CY_QUEUE_BLOCK or not block:
            _queue_raise(r, _Full)
        _queue_wait(self, CY_QUEUE_PUT, item, ns, w)

    def get(self, block=True, timeout=None, *, ctx=None):
        """Remove and return the oldest item, waiting while the queue is
        empty (``block``, ``timeout``): raises queue.Empty, or ShutDown once
        shut down and empty."""
        cdef int64_t ns = -1
        cdef _CtxWait w = None
        cdef void *v
        if block and timeout is not None:
            ns = _queue_timeout_ns(timeout)
        if ctx is not None:
            w = _ctx_wait(ctx, ns)
        cdef int r = cy_queue_try_get(&self.q, &v)
        if r == 0:
            return _take(v)
        if r != CY_QUEUE_BLOCK or not block:
            _queue_raise(r, _Empty)
        return _queue_wait(self, CY_QUEUE_GET, None, ns, w)

    async def put_async(self, item, block=True, timeout=None, *, ctx=None):
        """``await``-able put(): the task queues with threads, in order."""
        cdef int64_t ns = -1
        cdef _CtxWait w = None
        if block and timeout is not None and cy_queue_maxsize(&self.q) > 0:
            ns = _queue_timeout_ns(timeout)
        if ctx is not None:
            w = _ctx_wait(ctx, ns)
        Py_INCREF(item)
        cdef int r = cy_queue_try_put(&self.q, <void *>item)
        if r == 0:
            return
        Py_DECREF(item)
        if r != CY_QUEUE_BLOCK or not block or (ns == 0 and w is None):
            _queue_raise(r, _Full)
        await _queue_async(self, CY_QUEUE_PUT, item, ns, w)

    async def get_async(self, block=True, timeout=None, *, ctx=None):
        """``await``-able get().  An item handed to a task as it is
        cancelled goes to the next getter, or back to the front."""
        cdef int64_t ns = -1
        cdef _CtxWait w = None
        cdef void *v
        if block and timeout is not None:
            ns = _queue_timeout_ns(timeout)
        if ctx is not None:
            w = _ctx_wait(ctx, ns)
        cdef int r = cy_queue_try_get(&self.q, &v)
        if r == 0:
            return _take(v)
        if r != CY_QUEUE_BLOCK or not block or (ns == 0 and w is None):
            _queue_raise(r, _Empty)
        return await _queue_async(self, CY_QUEUE_GET, None, ns, w)

    async def join_async(self, *, ctx=None):
        """``await``-able join()."""
        cdef _CtxWait w = _actx(ctx, -1)
        if cy_queue_unfinished(&self.q) == 0:
            return
        await _queue_async(self, CY_QUEUE_JOIN, None, -1, w)

    def put_nowait(self, item):
        """``put(item, block=False)``."""
        return self.put(item, False)

    def get_nowait(self):
        """``get(block=False)``."""
        return self.get(False)

    def task_done(self):
        """One item taken with get() has been dealt with: when every item
        put has been, join() returns."""
        if cy_queue_task_done(&self.q) != 0:
            raise ValueError(_R.QUEUE_TASK_DONE)

    def join(self, *, ctx=None):
        """Wait until every item put has been got and marked task_done()."""
        cdef _CtxWait w = None if ctx is None else _ctx_wait(ctx, -1)
        if cy_queue_unfinished(&self.q) == 0:
            return
        _queue_wait(self, CY_QUEUE_JOIN, None, -1, w)

    def qsize(self):
        """The number of items in the queue now."""
        return cy_queue_len(&self.q)

    def empty(self):
        """Whether the queue is empty now."""
        return cy_queue_len(&self.q) == 0

    def full(self):
        """Whether the queue is bounded and full now."""
        return cy_queue_full(&self.q)

    def shutdown(self, immediate=False):
        """Python 3.13's shutdown: put() raises ShutDown from now on, and so
        does get() once the queue is empty; waiters wake.  ``immediate``
        also empties the queue (retiring a task per item)."""
        cdef size_t first = 0, i, n
        n = cy_queue_shutdown(&self.q, 1 if immediate else 0, &first)
        for i in range(n):                # the queue's references, dropped unlocked
            _decref(<PyObject *>cy_queue_removed(&self.q, first, i))

    @property
    def maxsize(self):
        """The bound (<= 0: unbounded); may be changed, as queue.Queue's."""
        return cy_queue_maxsize(&self.q)

    @maxsize.setter
    def maxsize(self, value):
        if cy_queue_set_maxsize(&self.q, _index(value, -(1LL << 62), 1LL << 62)) != 0:
            raise MemoryError

    @property
    def unfinished_tasks(self):
        """Items put and not yet marked task_done()."""
        return cy_queue_unfinished(&self.q)

    @property
    def is_shutdown(self):
        """Whether shutdown() has been called."""
        return cy_queue_is_shutdown(&self.q)

    def __repr__(self):
        state = " shutdown" if cy_queue_is_shutdown(&self.q) else ""
        return (f"{_where(self)}: qsize={cy_queue_len(&self.q)} "
                f"maxsize={cy_queue_maxsize(&self.q)}{state}>")


cdef object _queue_wait(Queue self, uint32_t kind, object item, int64_t ns, _CtxWait w):
    """A put, get or join that must wait; a get returns the item."""
    cdef cy_queue_call c
    cdef int r
    cy_queue_call_init(&c, &self.q, kind, <void *>item)
    if kind == CY_QUEUE_PUT:
        Py_INCREF(item)
    try:
        r = _block(&cy_queue_wait_op, &c, 0, ns, w, self)
    except BaseException:                 # nothing moved
        if kind == CY_QUEUE_PUT:
            _decref(<PyObject *>c.item)
        raise
    if r == CY_OK:
        return _take(c.item) if kind == CY_QUEUE_GET else None
    if kind == CY_QUEUE_PUT:
        _decref(<PyObject *>c.item)
    _queue_raise(r, _Empty if kind == CY_QUEUE_GET else _Full)


async def _queue_async(Queue self, uint32_t kind, object item, int64_t ns, _CtxWait cw):
    """A put, get or join whose fast path failed; a get returns the item."""
    cdef _AWait aw = _AWait.__new__(_AWait)
    cdef int r
    aw.start(_get_running_loop(), cw, ns)
    cy_queue_call_init(&aw.qc, &self.q, kind, <void *>item)
    if kind == CY_QUEUE_PUT:
        Py_INCREF(item)                  # the queue's, if the put goes through
    try:
        r = cy_queue_arm(&aw.qc, aw.w)
        if r == CY_AGAIN:
            try:
                while True:
                    await aw.suspend()
                    if aw.timed_out or cy_async_claimed(aw.w) != CY_CLAIM_NONE:
                        break
            except BaseException as exc:
                # As _aselect: completed before the cancellation, the call
                # returns its result; closed, a got item goes back.
                cy_async_claim_self(aw.w)
                r = cy_queue_end(&aw.qc, aw.w)
                if r != CY_OK:
                    if kind == CY_QUEUE_PUT:
                        _decref(<PyObject *>aw.qc.item)
                    raise
                if isinstance(exc, GeneratorExit):
                    if kind == CY_QUEUE_GET and cy_queue_unget(&self.q, aw.qc.item) != 0:
                        _decref(<PyObject *>aw.qc.item)     # out of memory: dropped
                    raise
            else:
                cy_async_claim_self(aw.w)
                r = cy_queue_end(&aw.qc, aw.w)
    finally:
        aw.finish()
    if r == CY_OK:
        return _take(aw.qc.item) if kind == CY_QUEUE_GET else None
    if kind == CY_QUEUE_PUT:
        _decref(<PyObject *>aw.qc.item)
    if r == CY_CANCELLED:
        cw._fail()
    _queue_raise(r, _Empty if kind == CY_QUEUE_GET else _Full)


def _queue_init_subclass(cls, **kwargs):
    """Queue.__init_subclass__ (Cython types cannot define it in the class):
    a subclass that defines one of queue.Queue's storage hooks is refused."""
    for klass in cls.__mro__:
        if klass is Queue:
            break
        hooks = [name for name in _QUEUE_HOOKS if name in vars(klass)]
        if hooks:
            raise TypeError(_R.QUEUE_SUBCLASS_HOOKS.format(name=cls.__qualname__, hooks=", ".join(hooks)))
    super(Queue, cls).__init_subclass__(**kwargs)


cysync_type_set(Queue, "__init_subclass__", classmethod(_queue_init_subclass))
cysync_type_set(Queue, "__class_getitem__", classmethod(_types.GenericAlias))


# ---------------------------------------------------------------- context, ErrGroup

# Contexts and ErrGroup are Python, written once for both implementations:
# the contexts fire a CancelToken that the waits above park with, and this
# ErrGroup runs on the C WaitGroup and Chan.
from cysync import _context

Canceled = _context.Canceled
Context = _context.Context
ContextError = _context.ContextError
DeadlineExceeded = _context.DeadlineExceeded
after_func = _context.after_func
from cysync._context import _TIMER, _seconds as _context_seconds
from cysync._context import _ChildRef, _drop_child

# ---------------------------------------------------------------- contexts, in C
#
# The state word and the token of every context are cext/cy_ctx.h's: a wait
# given a context reads the word at entry (one load) and parks with the
# token, which the end of the context fires.  This layer keeps what is
# Python: the tree (a parent holds its children weakly, in a dict, as the
# pure twin does), the values, the error instance (made on first err()), the
# cause, done()'s Event, the wakers of pure waits and after_func, and the
# deadline on the process's one timer thread (cysync._context._TIMER).
#
# Children of background() (and of without_cancel()) are registered nowhere:
# background never ends.  That, and no Python code on the way, is what makes
# with_cancel(background()) + cancel() cheap.
#
# A context's children are of its own implementation: given a pure parent,
# these functions hand the call to cysync._context (and it hands calls with
# a parent from here to these), so a tree never mixes the two.  The waits of
# either implementation take contexts of either.

cdef enum:
    _CK_ROOT = 0          # background(), without_cancel(): never ends
    _CK_CANCEL = 1        # with_cancel/with_timeout/with_deadline(+_cause)
    _CK_VALUE = 2         # with_value: the state of the nearest cancel ancestor


@cython.final
cdef class _CDone(Event):
    """What ``ctx.done()`` returns: the C Event, set when the context ends,
    that users cannot set or clear (Go's Done channel)."""

    @property
    def set(self):
        raise AttributeError("a context's done() event is set by the context only")

    @property
    def clear(self):
        raise AttributeError("a context's done() event is set by the context only")

    def __repr__(self):
        return f"<cysync context done: {'set' if cy_event_is_set(&self.e) else 'unset'}>"


@cython.final
cdef class _CContext:
    """A context of the C implementation (cysync.Context; see above)."""

    cdef cy_ctx c
    cdef int kind
    cdef object parent             # None for background
    # The cancel context whose state this one shows: itself (kind CANCEL),
    # the nearest cancel ancestor (VALUE), or NULL: never ends.  Borrowed:
    # the parent chain holds it.
    cdef PyObject *ctl
    cdef cy_ctx *cs                # &ctl.c, or NULL
    cdef object key, val           # VALUE
    cdef object deadline_s         # CANCEL: None or time.monotonic() seconds
    cdef int64_t dl_ns             # the same on cy_now_ns()'s clock, or CY_NO_DEADLINE
    cdef bint own_deadline
    cdef bint armed                # its deadline's owner is on the timer (see _c_arm)
    cdef cython.pymutex mu         # guards the fields below (CANCEL)
    cdef object err_obj            # made on first err()
    cdef object cause_obj          # the explicit cause, or None: err()
    cdef object dl_cause           # the cause its own deadline ends it with
    cdef dict children             # {key: _ChildRef}, made on first child
    cdef Py_ssize_t next_key
    cdef object registry           # the parent's children dict, and our key in it
    cdef Py_ssize_t reg_key
    cdef dict wakers               # {fn: registrations}
    cdef object token              # a token made by _c_token for others
    cdef _CDone done_ev
    cdef object timer              # the timer heap entry
    cdef object __weakref__

    def __cinit__(self):
        cy_ctx_init(&self.c)
        self.dl_ns = CY_NO_DEADLINE

    def __init__(self):
        raise TypeError(_CTX_DIRECT)

    # -- Go's Context ------------------------------------------------------

    def err(self):
        """Go's ``ctx.Err()``: None while active; then the ``Canceled`` or
        ``DeadlineExceeded`` instance it ended with, the same one every call."""
        if self.cs == NULL or (cy_ctx_state(self.cs) == CY_CTX_LIVE and self.dl_ns == CY_NO_DEADLINE):
            return None
        return _c_err(<_CContext>self.ctl)

    def done(self):
        """Go's ``ctx.Done()``: an Event set once this context has ended."""
        if self.ctl != NULL:
            return _c_done(<_CContext>self.ctl)
        if self.kind == _CK_VALUE:
            return self.parent.done()
        return _c_done(self)           # a root's own, never set

    def deadline(self):
        """Go's ``ctx.Deadline()``: a ``time.monotonic()`` value, or None."""
        if self.ctl == NULL:
            return None
        return (<_CContext>self.ctl).deadline_s

    def value(self, key):
        """Go's ``ctx.Value(key)``: the value bound to `key` here or by the
        nearest ancestor (same object, or same type and equal), or None."""
        cdef object ctx = self
        cdef _CContext c
        while ctx is not None:
            if type(ctx) is not _CContext:
                return ctx.value(key)
            c = <_CContext>ctx
            if c.kind == _CK_VALUE:
                k = c.key
                if k is key or (type(k) is type(key) and k == key):
                    return c.val
            ctx = c.parent
        return None

    # -- the private hooks the waits use (cysync._context's) --------------

    def _add_waker(self, fn):
        if self.ctl == NULL:
            return True                # registered, and never called
        return _c_add_waker(<_CContext>self.ctl, fn)

    def _remove_waker(self, fn):
        if self.ctl != NULL:
            _c_remove_waker(<_CContext>self.ctl, fn)

    def _c_token(self, token_cls):
        if self.ctl == NULL:
            return None
        return _c_token(<_CContext>self.ctl, token_cls)

    def _expire(self):
        _c_expire(self)

    def _explicit_cause(self):
        cdef _CContext ctl
        if self.ctl == NULL:
            return None
        ctl = <_CContext>self.ctl
        if cy_ctx_state(&ctl.c) == CY_CTX_LIVE:
            return None
        return ctl.cause_obj

    def _deadline_passed(self):
        # The timer's hook: our own deadline passed.
        _c_end(self, CY_CTX_DEADLINE, self.dl_cause)

    # For tests and cysync.debug, as the pure contexts' attributes of these names.

    @property
    def _ctl(self):
        """The context that owns this one's cancellation (None: never ends)."""
        return None if self.ctl == NULL else <object>self.ctl

    @property
    def _children(self):
        """The registry of children: a dict while live, None once ended."""
        cdef _CContext ctl
        if self.ctl == NULL:
            return None
        ctl = <_CContext>self.ctl
        fresh = {}
        with ctl.mu:
            if cy_ctx_state(&ctl.c) != CY_CTX_LIVE:
                return None
            if ctl.children is None:
                ctl.children = fresh
            return ctl.children

    @property
    def _wakers(self):
        """The wakers registered (a dict), or None."""
        if self.ctl == NULL:
            return None
        return (<_CContext>self.ctl).wakers

    def __reduce__(self):
        if self is _C_BACKGROUND:
            return (background, ())    # copy and pickle give back the singleton
        raise TypeError("cannot pickle a cysync.Context")

    def __repr__(self):
        cdef _CContext ctl
        extra = f", value {self.key!r}" if self.kind == _CK_VALUE else ""
        if self.ctl == NULL:
            state = "background" if self is _C_BACKGROUND else (
                "without cancel" if self.kind == _CK_ROOT else "background")
        else:
            ctl = <_CContext>self.ctl
            err = self.err()
            if err is not None:
                state = f"done: {err}"
            elif ctl.deadline_s is None:
                state = "active"
            else:
                state = f"deadline in {ctl.deadline_s - _monotonic():.3g}s"
        return f"<cysync.Context at {id(self):#x}: {state}{extra}>"


cdef str _CTX_DIRECT = (
    "cysync.Context cannot be created directly: use background(), with_cancel(), "
    "with_timeout(), with_deadline() or with_value()")


cdef inline object _c_err(_CContext ctl):
    cdef uint32_t s = cy_ctx_state(&ctl.c)
    if s == CY_CTX_LIVE:
        if ctl.armed or ctl.dl_ns == CY_NO_DEADLINE or cy_now_ns() < ctl.dl_ns:
            return None
        # The deadline passed and it is not on the timer (nothing waited for
        # it: see _c_arm): end it now.  Never when armed: then wakers may be
        # registered, and err() must not run them (a pure wait calls err()
        # holding the Condition its waker takes); the timer ends it.
        _c_expire(ctl)
        s = cy_ctx_state(&ctl.c)
        if s == CY_CTX_LIVE:
            return None
    e = ctl.err_obj
    if e is not None:
        return e
    # First err() since the end: make the instance (outside the lock: its
    # __init__ is Python); the first one stored is the one for ever.
    e = Canceled() if s == CY_CTX_CANCELED else DeadlineExceeded()
    with ctl.mu:
        if ctl.err_obj is None:
            ctl.err_obj = e
        else:
            e = ctl.err_obj
    return e


cdef int _c_raise(_CContext ctl) except -1:
    raise _c_err(ctl).with_traceback(None)


cdef int _c_arm(_CContext ctl) except -1:
    """Put the deadline `ctl` shows (its own or an ancestor's) on the timer.

    A deadline goes on the timer only once something can wait for the end
    without a deadline of its own: done(), a waker, a token.  Until then
    nothing needs the timer: err() and the waits compare the clock with
    the deadline themselves.  So with_timeout() + cancel() never touches
    the timer's heap."""
    cdef _CContext owner = ctl
    if ctl.armed or ctl.dl_ns == CY_NO_DEADLINE:
        return 0
    while not owner.own_deadline:
        owner = <_CContext>(<_CContext>owner.parent).ctl
    if not owner.armed:
        with owner.mu:
            go = not owner.armed and cy_ctx_state(&owner.c) == CY_CTX_LIVE
            owner.armed = True
        if go:
            entry = _TIMER.schedule(owner, owner.deadline_s)
            with owner.mu:
                if cy_ctx_state(&owner.c) == CY_CTX_LIVE:
                    owner.timer = entry
                    entry = None
            if entry is not None:
                _TIMER.unschedule(entry)       # ended meanwhile
    ctl.armed = True
    return 0


cdef _CDone _c_done(_CContext ctl):
    cdef _CDone d = ctl.done_ev
    if d is not None:
        return d
    _c_arm(ctl)
    fresh = _CDone.__new__(_CDone)
    with ctl.mu:
        if ctl.done_ev is None:
            ctl.done_ev = fresh
            # Under the lock that _c_end reads done_ev with: either it sets
            # the one we store, or we see its state here.
            if cy_ctx_state(&ctl.c) != CY_CTX_LIVE:
                cy_event_set(&(<Event>fresh).e)
        d = ctl.done_ev
    return d


cdef object _c_add_waker(_CContext ctl, object fn):
    _c_arm(ctl)
    with ctl.mu:
        if cy_ctx_state(&ctl.c) != CY_CTX_LIVE:
            return False
        if ctl.wakers is None:
            ctl.wakers = {}
        ctl.wakers[fn] = ctl.wakers.get(fn, 0) + 1
        return True


cdef int _c_remove_waker(_CContext ctl, object fn) except -1:
    with ctl.mu:
        if ctl.wakers is None:
            return 0
        n = ctl.wakers.get(fn, 0) - 1
        if n > 0:
            ctl.wakers[fn] = n
        else:
            ctl.wakers.pop(fn, None)
    return 0


cdef object _c_token(_CContext ctl, object token_cls):
    token = ctl.token
    if token is not None:
        return token
    _c_arm(ctl)
    fresh = token_cls()
    with ctl.mu:
        if ctl.token is None:
            ctl.token = fresh
            fire = cy_ctx_state(&ctl.c) != CY_CTX_LIVE
        else:
            fire = False
        token = ctl.token
    if fire:                           # ended before anyone asked: born fired
        token.fire()
    return token


cdef int _c_expire(_CContext ctx) except -1:
    """A wait saw the deadline pass before the timer fired it: end the
    context that owns the deadline (this one or an ancestor)."""
    cdef _CContext ctl
    cdef object node = ctx
    while node is not None and type(node) is _CContext:
        if (<_CContext>node).ctl == NULL:
            return 0
        ctl = <_CContext>(<_CContext>node).ctl
        if cy_ctx_state(&ctl.c) != CY_CTX_LIVE:
            return 0
        if ctl.dl_ns == CY_NO_DEADLINE or cy_now_ns() < ctl.dl_ns:
            return 0
        if ctl.own_deadline:
            _c_end(ctl, CY_CTX_DEADLINE, ctl.dl_cause)
            return 0
        node = ctl.parent
    return 0


cdef object _c_after(_CContext ctx, dict wakers, object token, object timer, object registry,
                     object failure):
    """What ending `ctx` does in Python once its token has fired: the tokens
    made for others, the wakers (the first exception one raises is
    returned, to raise once the whole tree has ended), the timer entry, and
    its place in the parent."""
    if token is not None:
        token.fire()
    if wakers:
        for fn in wakers:
            try:
                fn()
            except BaseException as exc:
                if failure is None:
                    failure = exc
    if timer is not None:
        _TIMER.unschedule(timer)
    if registry is not None:
        registry.pop(ctx.reg_key, None)    # leave the parent
    return failure


cdef int _c_end(_CContext top, uint32_t why, object cause) except -1:
    """End `top` and its descendants (iteratively) for `why`, each with
    `cause` (None: its own err()); a context that has ended keeps its end.

    A context without descendants is woken at once.  A tree is ended in
    three passes: every context's state word and Python fields first (the
    GIL held: no waiter is woken yet to compete for it), then every token
    and done() event fired in one C loop with the GIL released (the woken
    threads take the GIL one after another while the loop goes on), then
    the Python side (wakers, timer entries, registries)."""
    cdef list pending = None
    cdef list batch = None              # [ctx, wakers, token, timer, registry] per ended context
    cdef _CContext ctx = top
    cdef dict children, wakers
    cdef _CDone done
    cdef Py_ssize_t k, i
    cdef cy_ctx **cs
    cdef cy_event **evs
    failure = None
    while True:
        with ctx.mu:
            if cy_ctx_state(&ctx.c) == CY_CTX_LIVE:
                ctx.cause_obj = cause          # before the state word (release)
                cy_ctx_mark(&ctx.c, why)
                children = ctx.children
                ctx.children = None
                wakers = ctx.wakers
                ctx.wakers = None
                token = ctx.token
                timer = ctx.timer
                ctx.timer = None
                registry = ctx.registry
                ctx.registry = None
                ended = True
            else:
                ended = False
        if ended:
            if batch is None and not children:
                # One context, no descendants (the common case): wake now,
                # C waits first.
                cy_ctx_fire(&ctx.c)
                done = ctx.done_ev
                if done is not None:
                    cy_event_set(&(<Event>done).e)
                failure = _c_after(ctx, wakers, token, timer, registry, None)
                if failure is not None:
                    raise failure
                return 0
            if batch is None:
                batch = []
            batch += (ctx, wakers, token, timer, registry)
            while children:
                try:
                    _, ref = children.popitem()
                except KeyError:           # emptied by a weakref callback meanwhile
                    break
                child = ref()
                if child is not None:
                    if pending is None:
                        pending = []
                    pending.append(child)
        if not pending:
            break
        ctx = <_CContext>pending.pop()
    if batch is None:
        return 0
    k = len(batch) // 5
    cs = <cy_ctx **>PyMem_RawMalloc(k * sizeof(cy_ctx *))
    evs = <cy_event **>PyMem_RawMalloc(k * sizeof(cy_event *))
    if cs == NULL or evs == NULL:
        PyMem_RawFree(cs)
        PyMem_RawFree(evs)
        raise MemoryError()
    for i in range(k):
        ctx = <_CContext>batch[5 * i]
        cs[i] = &ctx.c
        # done() made after the state word changed is born set (_c_done).
        done = ctx.done_ev
        evs[i] = NULL if done is None else &(<Event>done).e
    with nogil:                         # `batch` keeps every context alive
        for i in range(k):
            cy_ctx_fire(cs[i])
            if evs[i] != NULL:
                cy_event_set(evs[i])
    PyMem_RawFree(cs)
    PyMem_RawFree(evs)
    for i in range(k):
        failure = _c_after(<_CContext>batch[5 * i], <dict>batch[5 * i + 1], batch[5 * i + 2],
                           batch[5 * i + 3], batch[5 * i + 4], failure)
    if failure is not None:
        raise failure
    return 0


cdef _CContext _c_new(int kind, object parent):
    cdef _CContext ctx = _CContext.__new__(_CContext)
    ctx.kind = kind
    ctx.parent = parent
    return ctx


cdef int _c_adopt(_CContext pctl, _CContext child) except -1:
    """Register `child` with its parent's cancel context, or end it at once
    if that has ended."""
    ref = _ChildRef(child, _drop_child)   # outside the lock: may run a collection
    with pctl.mu:
        if cy_ctx_state(&pctl.c) == CY_CTX_LIVE:
            if pctl.children is None:
                pctl.children = {}
            pctl.next_key += 1
            ref.registry = pctl.children
            ref.key = pctl.next_key
            pctl.children[pctl.next_key] = ref
            child.registry = pctl.children
            child.reg_key = pctl.next_key
            return 0
    _c_end(child, cy_ctx_state(&pctl.c), pctl.cause_obj)
    return 0


cdef _CContext _c_derive(_CContext parent, double left, double deadline_s, object dl_cause):
    """A cancel context under a C parent, with the deadline `deadline_s`
    (time.monotonic() seconds), `left` seconds from now (NaN: none; <= 0:
    born ended)."""
    cdef _CContext ctx = _c_new(_CK_CANCEL, parent)
    cdef _CContext pctl = None
    ctx.ctl = <PyObject *>ctx
    ctx.cs = &ctx.c
    if parent.ctl != NULL:
        pctl = <_CContext>parent.ctl
        ctx.deadline_s = pctl.deadline_s
        ctx.dl_ns = pctl.dl_ns
    if left == left:                                   # not NaN: a deadline of its own
        if ctx.deadline_s is None or deadline_s < <double>ctx.deadline_s:
            ctx.own_deadline = True
            ctx.deadline_s = deadline_s
            ctx.dl_ns = cy_now_ns() if left <= 0 else cy_deadline_after(<int64_t>ceil(left * 1e9))
            ctx.dl_cause = dl_cause
    if pctl is not None:
        _c_adopt(pctl, ctx)
    if ctx.own_deadline and left <= 0:
        _c_end(ctx, CY_CTX_DEADLINE, dl_cause)         # born ended
    # Not on the timer yet: see _c_arm.
    return ctx


@cython.final
cdef class _CCancel:
    """The ``cancel`` of with_cancel/with_timeout/with_deadline: ``cancel()``
    ends its context with Canceled; idempotent and thread-safe."""

    cdef _CContext ctx

    def __call__(self):
        _c_end(self.ctx, CY_CTX_CANCELED, None)

    def __repr__(self):
        return f"<cysync cancel function of {self.ctx!r}>"


@cython.final
cdef class _CCancelCause:
    """The ``cancel`` of with_cancel_cause: ``cancel(cause=None)``; the first
    call's cause wins."""

    cdef _CContext ctx

    def __call__(self, cause=None):
        if cause is not None and not isinstance(cause, BaseException):
            raise TypeError(_R.CTX_CAUSE_TYPE)
        _c_end(self.ctx, CY_CTX_CANCELED, cause)

    def __repr__(self):
        return f"<cysync cancel function of {self.ctx!r}>"


cdef inline object _c_pair(_CContext ctx):
    cdef _CCancel f = _CCancel.__new__(_CCancel)
    f.ctx = ctx
    return (ctx, f)


cdef _CContext _C_BACKGROUND = _c_new(_CK_ROOT, None)


cdef inline bint _is_c(object parent) except -1:
    """True for a C context; False for a pure one; TypeError otherwise."""
    if type(parent) is _CContext:
        return True
    if isinstance(parent, _context.Context):
        return False
    raise TypeError("parent must be a Context")


cdef double _NO_DEADLINE = float("nan")


cdef object _derive_at(object parent, object deadline, object cause):
    """with_deadline(_cause): `deadline` in time.monotonic() seconds."""
    cdef double d = _context_seconds(deadline, "deadline")
    cdef double left = d - _monotonic()
    if left > _FOREVER_SECONDS:
        left = _NO_DEADLINE
    return _c_pair(_c_derive(<_CContext>parent, left, d, cause))


cdef object _derive_in(object parent, object seconds, object cause):
    """with_timeout(_cause): `seconds` from now."""
    cdef double left = _rel_deadline(seconds)
    return _c_pair(_c_derive(<_CContext>parent, left, _monotonic() + left, cause))


cdef double _rel_deadline(object seconds) except? -1.0:
    """`seconds` as a float (ints and floats without a Python call); NaN: no deadline."""
    cdef double s
    if PyFloat_Check(seconds) or PyLong_Check(seconds):
        try:
            s = seconds
        except OverflowError:                 # an int beyond float range
            return _NO_DEADLINE if seconds > 0 else -1e300
        if s != s:
            raise ValueError("seconds must not be NaN")
    else:
        s = _context_seconds(seconds, "seconds")
    if s > _FOREVER_SECONDS:
        return _NO_DEADLINE
    return s


cdef inline int _check_cause(object cause) except -1:
    if cause is not None and not isinstance(cause, BaseException):
        raise TypeError(_R.CTX_CAUSE_TYPE)
    return 0


def background():
    """The root context (Go's ``context.Background()``): the same object on
    every call, never cancelled, no deadline, no values."""
    return _C_BACKGROUND


def with_cancel(parent):
    """A child of `parent` and the function that cancels it (Go's WithCancel)."""
    if not _is_c(parent):
        return _context.with_cancel(parent)
    return _c_pair(_c_derive(<_CContext>parent, _NO_DEADLINE, 0.0, None))


def with_deadline(parent, deadline):
    """A child of `parent` that ends at `deadline` (``time.monotonic()``
    seconds), and its cancel function (Go's WithDeadline)."""
    if not _is_c(parent):
        return _context.with_deadline(parent, deadline)
    return _derive_at(parent, deadline, None)


def with_timeout(parent, seconds):
    """``with_deadline(parent, time.monotonic() + seconds)`` (Go's WithTimeout)."""
    if not _is_c(parent):
        return _context.with_timeout(parent, seconds)
    return _derive_in(parent, seconds, None)


def with_cancel_cause(parent):
    """Like with_cancel, but ``cancel(cause=None)`` records why (Go 1.20)."""
    if not _is_c(parent):
        return _context.with_cancel_cause(parent)
    cdef _CCancelCause f = _CCancelCause.__new__(_CCancelCause)
    f.ctx = _c_derive(<_CContext>parent, _NO_DEADLINE, 0.0, None)
    return (f.ctx, f)


def with_deadline_cause(parent, deadline, cause):
    """Like with_deadline; the deadline ends it with `cause` (Go 1.21)."""
    if not _is_c(parent):
        return _context.with_deadline_cause(parent, deadline, cause)
    _check_cause(cause)
    return _derive_at(parent, deadline, cause)


def with_timeout_cause(parent, seconds, cause):
    """Like with_timeout; the deadline ends it with `cause` (Go 1.21)."""
    if not _is_c(parent):
        return _context.with_timeout_cause(parent, seconds, cause)
    _check_cause(cause)
    return _derive_in(parent, seconds, cause)


def with_value(parent, key, value):
    """A child of `parent` where ``value(key)`` is `value` (Go's WithValue)."""
    if not _is_c(parent):
        return _context.with_value(parent, key, value)
    try:
        hash(key)
    except TypeError:
        raise TypeError("key must be hashable") from None
    cdef _CContext ctx = _c_new(_CK_VALUE, parent)
    ctx.ctl = (<_CContext>parent).ctl
    ctx.cs = (<_CContext>parent).cs
    ctx.dl_ns = (<_CContext>parent).dl_ns
    ctx.key = key
    ctx.val = value
    return ctx


def without_cancel(parent):
    """`parent`'s values; never ends, no deadline (Go 1.21's WithoutCancel)."""
    if not _is_c(parent):
        return _context.without_cancel(parent)
    return _c_new(_CK_ROOT, parent)


def cause(ctx):
    """Why `ctx` ended (Go 1.20's context.Cause): the cause given, inherited
    by descendants, else ``ctx.err()``; None while it has not ended."""
    cdef _CContext ctl
    if type(ctx) is not _CContext:
        return _context.cause(ctx)
    if (<_CContext>ctx).ctl == NULL:
        return None
    ctl = <_CContext>(<_CContext>ctx).ctl
    err = _c_err(ctl)
    if err is None:
        return None
    c = ctl.cause_obj
    return err if c is None else c


for _name in ("with_cancel", "with_deadline", "with_timeout", "with_value",
              "with_cancel_cause", "with_deadline_cause", "with_timeout_cause",
              "without_cancel"):
    _context._OTHER[_name] = globals()[_name]
del _name
Context.register(_CContext)
from cysync._errgroup import make_errgroup as _make_errgroup

_Context = Context
ErrGroup = _make_errgroup(_types.SimpleNamespace(
    WaitGroup=WaitGroup, Chan=Chan, background=background, with_cancel=with_cancel))


# The public classes present themselves as cysync's (reprs read
# "<cysync.Semaphore at ...>", as lock_tests' regexes expect), like the pure twins.
for _cls in (WaitGroup, Once, once_func, once_value, Semaphore, BoundedSemaphore,
             WeightedSemaphore, Event, Barrier, RWMutex, Chan, Queue):
    cysync_type_rename(_cls)
del _cls

_dbg._attach(_set_debug)


# ---------------------------------------------------------------- fork

def _fork_registered():
    """How many objects are in the C core's fork registry now (for tests)."""
    return cy_fork_registered()


def _after_fork_in_child():
    """os.fork()'s child: only the forking thread is left.  Reset the
    address table and exactly the objects that had waiters of other threads
    (they joined the registry on their slow path, cext/cy_fork.h)."""
    cy_wait_table_fork_child()
    cy_fork_child()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)
