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
from libc.stdint cimport int64_t, uint32_t, uint64_t

import functools as _functools
import inspect as _inspect
import threading as _threading
import types as _types
import warnings as _warnings
from time import monotonic as _monotonic

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Canceled",
    "Context",
    "ContextError",
    "DeadlineExceeded",
    "ErrGroup",
    "Event",
    "Once",
    "Semaphore",
    "WaitGroup",
    "WeightedSemaphore",
    "background",
    "defer",
    "deferrable",
    "once_func",
    "once_value",
    "with_cancel",
    "with_deadline",
    "with_timeout",
    "with_value",
]

#: Which wait-on-address backend the C core was built with.
PARK_BACKEND = cy_park_backend().decode()

cdef extern from *:
    """
    /* A waiter that got its unit, flag or release while spinning lingers up
     * to this long for the releasing thread to start waiting (cy_spin.h):
     * the releaser holds the GIL until then, and taking the GIL before it
     * lets go means a sleep and a second wake-up.  Without a GIL, nothing
     * to wait for. */
    #ifdef Py_GIL_DISABLED
    #define CYSYNC_LINGER_NS 0
    #else
    #define CYSYNC_LINGER_NS 2000
    #endif
    """
    int64_t CYSYNC_LINGER_NS

cy_spin_set_linger(CYSYNC_LINGER_NS)

# Timeouts longer than this (about 146 years) mean "wait forever".
cdef double _FOREVER_SECONDS = 4611686018.427387904   # 2**62 ns


# ---------------------------------------------------------------- helpers

cdef inline int64_t _timeout_ns(object timeout) except? -2:
    """Nanoseconds to wait: -1 for ever (None, +inf, huge), 0 to poll."""
    if timeout is None:
        return -1
    return _seconds_to_ns(timeout)


cdef int64_t _seconds_to_ns(object timeout) except? -2:
    cdef double t
    if PyFloat_Check(timeout) or PyLong_Check(timeout):
        try:
            t = timeout
        except OverflowError:                 # an int beyond float range
            return -1 if timeout > 0 else 0
    elif isinstance(timeout, (str, bytes, bytearray)) or not (
            hasattr(type(timeout), "__float__") or hasattr(type(timeout), "__index__")):
        raise TypeError("timeout must be a number or None")
    else:
        t = float(timeout)
    if t != t:
        raise ValueError("timeout must not be NaN")
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
        raise TypeError("fn must be callable")
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


cdef extern from *:
    """
    /* Sleep until the token fires (CY_CANCELLED), the deadline passes or a
     * signal comes: a wait on a word of our own that nothing else changes. */
    static cy_status cysync_cancel_wait(cy_cancel *c, int64_t deadline)
    {
        _Atomic uint32_t word = 0;
        return cy_park_cancel(&word, 0, deadline, c);
    }
    """


cdef class _CtxWait:
    """One blocking call with ``ctx=``: the context's token, and the earlier
    of the call's own deadline and the context's."""

    cdef object ctx
    cdef CancelToken token        # keeps the token alive while C waits on it
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

    cdef int retry(self, cy_status r) except -1:
        """After a wait ended with r: 1 to wait again, 0 when the call's own
        timeout ran out; raises the context's error when the context ended."""
        if r == CY_CANCELLED:
            return self._fail()
        if r == CY_TIMEOUT:
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
        PyErr_CheckSignals()        # CY_INTR
        return 1


cdef _CtxWait _ctx_wait(object ctx, int64_t ns):
    """Starts a wait with a context; raises its error if it has already ended."""
    global _Context
    if _Context is None:
        from cysync._context import Context as _Context
    if not isinstance(ctx, _Context):
        raise TypeError("ctx must be a Context or None")
    cdef _CtxWait w = _CtxWait.__new__(_CtxWait)
    w.ctx = ctx
    if ctx.err() is not None:
        w._fail()
    w.token = ctx._c_token(CancelToken)
    w.c = NULL if w.token is None else &w.token.c
    w._set_deadline(_deadline(ns))
    return w


# ---------------------------------------------------------------- WaitGroup

cdef inline int _wg_add(cy_waitgroup *wg, int64_t delta) except -1:
    cdef int rc = cy_wg_add(wg, delta)
    if rc == 0:
        return 0
    if rc == CY_WG_NEGATIVE:
        raise ValueError("negative WaitGroup counter")
    raise OverflowError("WaitGroup counter overflow")


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
        _wg_add(&self.wg, _index(delta, -(1LL << 40), 1LL << 40))

    def done(self):
        """Decrement the counter by one."""
        _wg_add(&self.wg, -1)

    def wait(self, timeout=None, *, ctx=None):
        """Block until the counter is zero; False if ``timeout`` ran out.
        With ``ctx``, raises the context's error if it ends first."""
        cdef int64_t ns = _timeout_ns(timeout)
        if ctx is not None:
            return _wg_wait_ctx(&self.wg, _ctx_wait(ctx, ns))
        if cy_wg_count(&self.wg) == 0:
            return True
        if ns == 0:
            return False
        cdef int64_t deadline = _deadline(ns)
        cdef uint32_t gen = cy_wg_wait_begin(&self.wg)   # once: retries keep it
        cdef cy_status r
        while True:
            with nogil:
                r = cy_wg_wait_from(&self.wg, gen, deadline, NULL)
            if r == CY_OK:
                return True
            if r == CY_TIMEOUT:
                return False
            PyErr_CheckSignals()

    @property
    def count(self):
        """The counter now."""
        return cy_wg_count(&self.wg)

    def go(self, fn, /, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` in a new thread counted by this group."""
        _check_callable(fn)
        _wg_add(&self.wg, 1)
        thread = _threading.Thread(target=_run_then_done, args=(self, fn, args, kwargs), daemon=False)
        name = getattr(fn, "__name__", None)
        if isinstance(name, str):   # "Thread-N (fn)", as threading names a thread after its target
            thread.name = thread.name.replace("(_run_then_done)", f"({name})")
        try:
            thread.start()
        except BaseException:
            _wg_add(&self.wg, -1)
            raise
        return thread

    def __repr__(self):
        return f"{_where(self)}: count={cy_wg_count(&self.wg)}>"


cdef bint _wg_wait_ctx(cy_waitgroup *wg, _CtxWait w) except -1:
    cdef cy_status r
    if cy_wg_count(wg) == 0:
        return True
    cdef uint32_t gen = cy_wg_wait_begin(wg)
    while True:
        with nogil:
            r = cy_wg_wait_from(wg, gen, w.deadline, w.c)
        if r == CY_OK:
            return True
        if not w.retry(r):
            return False


def _run_then_done(WaitGroup wg, fn, args, kwargs):
    try:
        fn(*args, **kwargs)
    finally:
        _wg_add(&wg.wg, -1)


# ---------------------------------------------------------------- Once

cdef extern from *:
    """
    /* Once.do as a METH_FASTCALL | METH_KEYWORDS method.  A Cython
     * `def do(self, fn, /, *args, **kwargs)` builds a tuple and a dict on
     * every call (about 12 ns, half the cost of a done Once); this reads the
     * state first and builds them only on the slow path, which is Cython's
     * _once_do_slow below. */
    static Py_ssize_t cysync_once_offset;  /* where Once keeps its cy_once */
    static PyObject *(*cysync_once_do_slow)(PyObject *, PyObject *, PyObject *, PyObject *);

    static PyObject *cysync_once_do(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
    {
        Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i;
        PyObject *rest, *kwargs, *r = NULL;
        if (nargs < 1) {
            PyErr_SetString(PyExc_TypeError, "do() missing required argument 'fn' (pos 1)");
            return NULL;
        }
        if (!PyCallable_Check(args[0])) {
            PyErr_SetString(PyExc_TypeError, "fn must be callable");
            return NULL;
        }
        if (cy_once_is_done((cy_once *)((char *)self + cysync_once_offset)))
            Py_RETURN_NONE;
        rest = PyTuple_New(nargs - 1);
        kwargs = PyDict_New();
        if (rest && kwargs) {
            for (i = 1; i < nargs; i++)
                PyTuple_SET_ITEM(rest, i - 1, Py_NewRef(args[i]));
            for (i = 0; i < nkw; i++)
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                    break;
            if (i == nkw)
                r = cysync_once_do_slow(self, args[0], rest, kwargs);
        }
        Py_XDECREF(rest);
        Py_XDECREF(kwargs);
        return r;
    }

    static PyMethodDef cysync_once_do_def = {
        "do", (PyCFunction)(void (*)(void))cysync_once_do, METH_FASTCALL | METH_KEYWORDS,
        "do($self, fn, /, *args, **kwargs)\\n--\\n\\n"
        "Call fn(*args, **kwargs) if no call of do on this Once has called it yet.\\n\\n"
        "Concurrent callers wait until that call returns.  If fn raises, the\\n"
        "exception goes to its caller and the Once still counts as done."};

    /* Sets an attribute of a type made by Cython (static types refuse
     * setattr), at import, before any instance exists. */
    static int cysync_type_set(PyObject *type, const char *name, PyObject *value)
    {
        int rc = PyDict_SetItemString(((PyTypeObject *)type)->tp_dict, name, value);
        PyType_Modified((PyTypeObject *)type);
        return rc;
    }

    /* Presents a Cython type as cysync.<Name>: a static type's __module__
     * comes from its tp_name.  The type lives as long as the process, and so
     * does the name. */
    static int cysync_type_rename(PyObject *type)
    {
        PyTypeObject *t = (PyTypeObject *)type;
        const char *dot = strrchr(t->tp_name, '.'), *base = dot ? dot + 1 : t->tp_name;
        size_t n = strlen(base) + sizeof "cysync.";
        char *name = (char *)PyMem_RawMalloc(n);
        if (name == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        snprintf(name, n, "cysync.%s", base);
        t->tp_name = name;
        PyType_Modified(t);
        return 0;
    }

    static PyObject *cysync_once_do_descr(PyObject *type)
    {
        return PyDescr_NewMethod((PyTypeObject *)type, &cysync_once_do_def);
    }
    """
    Py_ssize_t cysync_once_offset
    object (*cysync_once_do_slow)(object, object, object, object)
    int cysync_type_set(object type, const char *name, object value) except -1
    object cysync_once_do_descr(object type)
    int cysync_type_rename(object type) except -1


cdef int _once_wait(cy_once *o) except -1:
    """Wait, GIL released, until the running call has finished."""
    cdef cy_status r
    while True:
        with nogil:
            r = cy_once_wait(o, CY_NO_DEADLINE)
        if r == CY_OK:
            return 0
        PyErr_CheckSignals()


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
        raise RuntimeError("Once.do called recursively")
    else:
        _once_wait(&self.o)
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
    cdef object fn        # dropped once it has run, so closures can be freed
    cdef object outcome   # fn's result, or a _Raised
    cdef object __weakref__

    def __cinit__(self, fn):
        _check_callable(fn)
        cy_once_init(&self.o)
        self.fn = fn

    def __repr__(self):
        return f"{_where(self)}: {'done' if cy_once_is_done(&self.o) else 'not done'}>"


cdef object _once_call(_OnceCall self, str name):
    cdef uint32_t me
    cdef _Raised raised
    if not cy_once_is_done(&self.o):
        me = cy_once_self()
        if cy_once_try_begin(&self.o, me):
            fn, self.fn = self.fn, None
            try:
                self.outcome = fn()
            except BaseException as e:
                raised = _Raised.__new__(_Raised)
                raised.exc = e
                raised.tb = e.__traceback__
                self.outcome = raised
            finally:
                cy_once_finish(&self.o)
        elif cy_once_running_in(&self.o, me):
            raise RuntimeError(f"{name} called recursively")
        else:
            _once_wait(&self.o)
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

cdef bint _sema_acquire_slow(cy_sema *s, int64_t ns) except -1:
    """True when a unit was taken, False when the timeout ran out."""
    if ns == 0:
        return False
    cdef int64_t deadline = _deadline(ns)
    cdef cy_status r
    while True:
        with nogil:
            r = cy_sema_acquire_slow(s, deadline)
        if r == CY_OK:
            return True
        if r == CY_TIMEOUT:
            return False
        PyErr_CheckSignals()


cdef bint _sema_acquire_ctx(cy_sema *s, _CtxWait w) except -1:
    cdef cy_status r
    if cy_sema_try_acquire(s):
        return True
    while True:
        with nogil:
            r = cy_sema_acquire_ctx(s, w.deadline, w.c)
        if r == CY_OK:
            return True
        if not w.retry(r):
            return False


cdef object _sema_acquire(Semaphore self, object blocking, object timeout, object ctx):
    if not blocking:
        if timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if ctx is not None:
            _ctx_wait(ctx, 0)
        return cy_sema_try_acquire(&self.s)
    cdef int64_t ns = _timeout_ns(timeout)
    if ctx is not None:
        return _sema_acquire_ctx(&self.s, _ctx_wait(ctx, ns))
    if cy_sema_try_acquire(&self.s):
        return True
    return _sema_acquire_slow(&self.s, ns)


cdef inline object _sema_enter(Semaphore self):
    if cy_sema_try_acquire(&self.s):
        return True
    return _sema_acquire_slow(&self.s, -1)


cdef inline int _sema_exit(Semaphore self) except -1:
    if cy_sema_release(&self.s, 1, self.bound) != 0:
        _sema_release(self, 1)   # raises the right error
    return 0


cdef int _sema_release(Semaphore self, object n) except -1:
    cdef int64_t k = 1 if n is 1 else _index(n, 0, <int64_t>CY_SEMA_MAX + 1)
    if k < 1:
        raise ValueError("n must be one or more")
    if k > CY_SEMA_MAX or cy_sema_release(&self.s, <uint32_t>k, self.bound) != 0:
        if self.bounded:
            raise ValueError("Semaphore released too many times")
        raise OverflowError("Semaphore value too large")
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
            raise ValueError("semaphore initial value must be >= 0")
        if v > CY_SEMA_MAX:
            raise OverflowError("Semaphore value too large")
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
        raise ValueError("n must be >= 0")
    if k == CY_WSEM_MAX and n != CY_WSEM_MAX:
        return -2
    return k


cdef bint _wsem_acquire_ctx(cy_wsem *s, int64_t k, _CtxWait w) except -1:
    cdef cy_wsem_waiter node
    cdef cy_status r
    if cy_wsem_try_acquire(s, k):
        return True
    if w.deadline <= cy_now_ns() and not w.by_ctx:
        return False                       # a poll
    if cy_wsem_enqueue(s, k, &node):
        return True
    while True:                            # queued: node is in the line
        with nogil:
            r = cy_wsem_wait_ctx(&node, w.deadline, w.c)
        if r == CY_OK:
            return True
        if r == CY_TIMEOUT and not w.by_ctx:
            return cy_wsem_cancel(s, &node)   # served at the last instant: keep the units
        if r == CY_INTR:
            try:
                PyErr_CheckSignals()
            except BaseException:
                if cy_wsem_cancel(s, &node):
                    cy_wsem_release(s, k)
                raise
            continue
        # The context ended (or its deadline came): leave the line, so the
        # ones behind may go, and give back units granted meanwhile.
        if cy_wsem_cancel(s, &node):
            cy_wsem_release(s, k)
        w.retry(r)                         # raises the context's error...
        if cy_wsem_enqueue(s, k, &node):   # ...unless the clocks disagreed by a hair
            return True


cdef class WeightedSemaphore:
    """golang.org/x/sync/semaphore.Weighted: ``size`` units, FIFO waiters."""

    cdef cy_wsem s
    cdef object __weakref__

    def __init__(self, size):
        cdef int64_t v = _index(size, -1, CY_WSEM_MAX)
        if v < 0:
            raise ValueError("semaphore size must be >= 0")
        if v == CY_WSEM_MAX and size != CY_WSEM_MAX:
            raise OverflowError("semaphore size too large")
        cy_wsem_init(&self.s, v)

    def acquire(self, n=1, timeout=None, *, ctx=None):
        """Take ``n`` units, waiting in line (at most ``timeout`` seconds).
        With ``ctx``, raises the context's error if it ends first (and
        gives back any units granted at that moment)."""
        cdef int64_t k = _units(n)
        cdef int64_t ns = _timeout_ns(timeout)
        if k < 0 or k > self.s.size:
            raise ValueError("n exceeds semaphore size")
        if ctx is not None:
            return _wsem_acquire_ctx(&self.s, k, _ctx_wait(ctx, ns))
        if cy_wsem_try_acquire(&self.s, k):
            return True
        if ns == 0:
            return False
        cdef cy_wsem_waiter w        # our place in the queue, for the whole wait
        if cy_wsem_enqueue(&self.s, k, &w):
            return True
        cdef int64_t deadline = _deadline(ns)
        cdef cy_status r
        while True:
            with nogil:
                r = cy_wsem_wait(&w, deadline)
            if r == CY_OK:
                return True
            if r == CY_TIMEOUT:
                # Served at the last instant: keep the units (as Go does).
                return cy_wsem_cancel(&self.s, &w)
            try:
                PyErr_CheckSignals()
            except BaseException:
                if cy_wsem_cancel(&self.s, &w):
                    cy_wsem_release(&self.s, k)   # granted meanwhile: give them back
                raise

    def try_acquire(self, n=1):
        """Take ``n`` units only if they are free and nobody is waiting."""
        cdef int64_t k = _units(n)
        return 0 <= k <= self.s.size and cy_wsem_try_acquire(&self.s, k)

    def release(self, n=1):
        """Return ``n`` units; waiters are served in order while they fit."""
        cdef int64_t k = _units(n)
        if k < 0 or cy_wsem_release(&self.s, k) != 0:
            raise ValueError("semaphore: released more than held")

    def __enter__(self):
        if cy_wsem_try_acquire(&self.s, 1):
            return True
        return self.acquire(1)

    def __exit__(self, t, v, tb):
        if cy_wsem_release(&self.s, 1) != 0:
            raise ValueError("semaphore: released more than held")

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

cdef bint _event_wait_ctx(cy_event *e, _CtxWait w) except -1:
    cdef cy_status r
    cdef uint32_t gen = cy_event_wait_begin(e)
    if cy_event_is_set(e):
        return True
    while True:
        with nogil:
            r = cy_event_wait_from(e, gen, w.deadline, w.c)
        if r == CY_OK:
            return True
        if not w.retry(r):
            return False


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
        if ctx is not None:
            return _event_wait_ctx(&self.e, _ctx_wait(ctx, ns))
        if cy_event_is_set(&self.e):
            return True
        if ns == 0:
            return False
        cdef int64_t deadline = _deadline(ns)
        cdef uint32_t gen = cy_event_wait_begin(&self.e)   # once: retries keep it
        cdef cy_status r
        while True:
            with nogil:
                r = cy_event_wait_from(&self.e, gen, deadline, NULL)
            if r == CY_OK:
                return True
            if r == CY_TIMEOUT:
                return False
            PyErr_CheckSignals()

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
            raise ValueError("parties must be > 0")
        if p > 0xffffffff:
            raise OverflowError("parties too large")
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
        while r == CY_TIMEOUT or r == CY_INTR:
            if r == CY_INTR:
                PyErr_CheckSignals()
            with nogil:
                r = cy_barrier_arrive(&self.b, &t, True)
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
        cdef int64_t deadline = _deadline(ns) if w is None else w.deadline
        cdef cy_cancel *c = NULL if w is None else w.c
        while True:
            with nogil:
                r = cy_barrier_await_ctx(&self.b, &t, deadline, c)
            if r == CY_OK:
                return t.index
            if r == CY_BARRIER_BROKEN_ERR:
                if w is not None and w.by_ctx and cy_now_ns() >= deadline:
                    w.wait_end()             # our timeout was the context's: raise its error
                raise BrokenBarrierError
            if r == CY_CANCELLED:
                w.retry(CY_CANCELLED)        # raises the context's error
            try:
                PyErr_CheckSignals()
            except BaseException:
                cy_barrier_leave(&self.b, &t)
                raise

    def reset(self):
        """Return to the empty state; threads waiting now get BrokenBarrierError."""
        cy_barrier_reset(&self.b)

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


# ---------------------------------------------------------------- defer

cdef extern from *:
    """
    /* Go's defer.  A @deferrable call pushes a frame (on its own C stack) as
     * this thread's innermost; defer() appends to the frame's list; when the
     * wrapped function returns or raises, _run_deferred (Cython, below) runs
     * the list.  The call itself is a vectorcall written here in C: built in
     * Cython, the star-args of __call__ cost more than the whole
     * defer machinery. */
    typedef struct cysync_defer_frame {
        PyObject *calls; /* the first deferred call, then a list of them */
        struct cysync_defer_frame *prev;
    } cysync_defer_frame;

    #if defined(_MSC_VER) && !defined(__clang__)
    static __declspec(thread) cysync_defer_frame *cysync_defer_top;
    #else
    static _Thread_local cysync_defer_frame *cysync_defer_top;
    #endif

    static Py_ssize_t cysync_deferrable_func_offset; /* where _Deferrable keeps func */
    static PyObject *(*cysync_run_deferred)(PyObject *calls, PyObject *pending);

    /* The exception being raised, as one object with its traceback. */
    static PyObject *cysync_take_exception(void)
    {
    #if PY_VERSION_HEX >= 0x030C0000
        return PyErr_GetRaisedException();
    #else
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL)
            PyException_SetTraceback(value, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        return value;
    #endif
    }

    static void cysync_raise_exception(PyObject *exc) /* steals exc */
    {
    #if PY_VERSION_HEX >= 0x030C0000
        PyErr_SetRaisedException(exc);
    #else
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
    #endif
    }

    static PyObject *cysync_deferrable_call(PyObject *self, PyObject *const *args, size_t nargsf,
                                            PyObject *kwnames)
    {
        PyObject *func = *(PyObject **)((char *)self + cysync_deferrable_func_offset);
        cysync_defer_frame frame = {NULL, cysync_defer_top};
        cysync_defer_top = &frame;
        PyObject *result = PyObject_Vectorcall(func, args, nargsf, kwnames);
        cysync_defer_top = frame.prev;
        if (frame.calls == NULL)
            return result;
        PyObject *calls = frame.calls, *body_exc = NULL, *err;
        if (!PyList_CheckExact(calls)) {
            if (result != NULL && !PyTuple_CheckExact(calls)) {
                /* The usual case, one defer(x.release) and nothing raised:
                 * call it here; what it raises is what a finally would. */
                err = PyObject_CallNoArgs(calls);
                Py_DECREF(calls);
                if (err == NULL) {
                    Py_DECREF(result);
                    return NULL;
                }
                Py_DECREF(err);
                return result;
            }
            PyObject *list = PyList_New(1);
            if (list == NULL) {
                Py_DECREF(calls);
                Py_XDECREF(result);
                return NULL;
            }
            PyList_SET_ITEM(list, 0, calls); /* steals */
            calls = list;
        }
        if (result == NULL)
            body_exc = cysync_take_exception();
        err = cysync_run_deferred(calls, body_exc ? body_exc : Py_None);
        Py_DECREF(calls);
        Py_XDECREF(body_exc);
        if (err == Py_None) { /* nothing raised anywhere */
            Py_DECREF(err);
            return result;
        }
        Py_XDECREF(result);
        if (err != NULL) /* NULL: _run_deferred itself failed, its error is set */
            cysync_raise_exception(err);
        return NULL;
    }

    static PyObject *cysync_defer(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
    {
        cysync_defer_frame *frame = cysync_defer_top;
        PyObject *entry;
        (void)module;
        if (frame == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "defer() called outside a @deferrable function");
            return NULL;
        }
        if (nargs < 1) {
            PyErr_SetString(PyExc_TypeError, "defer() missing required argument 'fn' (pos 1)");
            return NULL;
        }
        if (!PyCallable_Check(args[0])) {
            PyErr_SetString(PyExc_TypeError, "fn must be callable");
            return NULL;
        }
        if (nargs == 1 && kwnames == NULL) {
            entry = Py_NewRef(args[0]); /* the common defer(x.release): no tuple */
        } else {
            Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i;
            PyObject *rest = PyTuple_New(nargs - 1), *kwargs = PyDict_New();
            entry = NULL;
            if (rest && kwargs) {
                for (i = 1; i < nargs; i++)
                    PyTuple_SET_ITEM(rest, i - 1, Py_NewRef(args[i]));
                for (i = 0; i < nkw; i++)
                    if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                        break;
                if (i == nkw)
                    entry = PyTuple_Pack(3, args[0], rest, kwargs);
            }
            Py_XDECREF(rest);
            Py_XDECREF(kwargs);
            if (entry == NULL)
                return NULL;
        }
        if (frame->calls == NULL) {
            frame->calls = entry; /* most functions defer one call: no list */
            Py_RETURN_NONE;
        }
        if (!PyList_CheckExact(frame->calls)) {
            PyObject *list = PyList_New(1);
            if (list == NULL) {
                Py_DECREF(entry);
                return NULL;
            }
            PyList_SET_ITEM(list, 0, frame->calls); /* steals */
            frame->calls = list;
        }
        int rc = PyList_Append(frame->calls, entry);
        Py_DECREF(entry);
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }

    static PyMethodDef cysync_defer_def = {
        "defer", (PyCFunction)(void (*)(void))cysync_defer, METH_FASTCALL | METH_KEYWORDS,
        "defer(fn, /, *args, **kwargs)\\n--\\n\\n"
        "Run fn(*args, **kwargs) when the innermost running @deferrable call of\\n"
        "this thread returns or raises; calls run last registered first."};

    static PyObject *cysync_make_defer(PyObject *module_name)
    {
        return PyCFunction_NewEx(&cysync_defer_def, NULL, module_name);
    }

    /* Makes a Cython type's instances vectorcall-able through a field of
     * theirs (set by the type's __cinit__), before any instance exists. */
    static void cysync_enable_vectorcall(PyObject *type, Py_ssize_t offset)
    {
        PyTypeObject *t = (PyTypeObject *)type;
        t->tp_vectorcall_offset = offset;
        t->tp_call = PyVectorcall_Call;
        t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
        PyType_Modified(t);
    }
    """
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
        raise TypeError("deferrable cannot wrap a generator function")
    if _inspect.iscoroutinefunction(fn):
        raise TypeError("deferrable cannot wrap a coroutine function")
    if _inspect.isasyncgenfunction(fn):
        raise TypeError("deferrable cannot wrap an async generator function")
    cdef _Deferrable d = _Deferrable.__new__(_Deferrable)
    d.func = fn
    _functools.update_wrapper(d, fn)
    return d


# ---------------------------------------------------------------- context, ErrGroup

# Contexts and ErrGroup are Python, written once for both implementations:
# the contexts fire a CancelToken that the waits above park with, and this
# ErrGroup runs on the C WaitGroup and Semaphore.
from cysync._context import (
    Canceled,
    Context,
    ContextError,
    DeadlineExceeded,
    background,
    with_cancel,
    with_deadline,
    with_timeout,
    with_value,
)
from cysync._errgroup import make_errgroup as _make_errgroup

_Context = Context
ErrGroup = _make_errgroup(_types.SimpleNamespace(WaitGroup=WaitGroup, Semaphore=Semaphore))


# The public classes present themselves as cysync's (reprs read
# "<cysync.Semaphore at ...>", as lock_tests' regexes expect), like the pure twins.
for _cls in (WaitGroup, Once, once_func, once_value, Semaphore, BoundedSemaphore,
             WeightedSemaphore, Event, Barrier):
    cysync_type_rename(_cls)
del _cls
