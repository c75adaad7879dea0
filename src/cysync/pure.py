"""cysync's primitives in pure Python: the reference implementation.

Every class here has the same name, signatures, return values, exceptions and
messages as its C twin in ``cysync._cysync``; this module is the fallback when
the extension is missing (or ``CYSYNC_PURE=1``), what the tests compare the C
core against, the baseline of the benchmarks, and what type checkers read.

Everything is built over ``threading.Lock`` and ``threading.Condition``, so
every blocking wait can be interrupted by a signal handler that raises (Ctrl-C)
exactly like ``threading.Lock.acquire``; a wait interrupted that way leaves the
object as if the call had never been made.

Common rules (docs/getting-started.md, "Timeouts and common rules"):

- Timeouts are seconds, an ``int`` or a ``float``; ``None`` waits forever, a
  negative timeout polls once like ``0``, ``inf`` or anything longer than
  2**62 ns (about 146 years) waits forever, NaN is a ``ValueError`` and any
  other type a ``TypeError``.
- Integer arguments go through ``operator.index`` (a float is a ``TypeError``).
- Blocking methods return ``True`` on success and ``False`` on timeout.
- A call that raises leaves the object exactly as it was.
- Every blocking method takes a keyword ``ctx=`` (a context from
  ``cysync.background()``, ``with_cancel()``, ``with_timeout()``...): if the
  context has ended at entry, or ends first, the call raises ``ctx.err()``
  (``Canceled`` or ``DeadlineExceeded``). The wait registers a "waker" with the
  context, which notifies the wait's Condition when the context is cancelled,
  so the wait ends at once, without polling; the context's deadline joins the
  call's own timeout (the earlier one wins).

The contexts themselves (``cysync._context``) and ``ErrGroup``
(``cysync._errgroup``) are shared with the C module; they are re-exported at
the end of this module.
"""

from __future__ import annotations

import collections
import functools
import operator
import sys
import threading
import warnings
from collections.abc import Callable
from time import monotonic as _monotonic
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

from ._context import (
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
from ._pure_defer import defer, deferrable

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

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Ranges shared with the C core, whose counters are fixed-width integers.
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# Timeouts longer than 2**62 ns mean "forever": the C core's deadlines are
# int64 nanoseconds and must not overflow when added to the clock.
_FOREVER_SECONDS = 2**62 / 1e9
# One Condition.wait() may not exceed the platform's limit (about 49 days on
# Windows); longer waits are done in slices, the deadline being absolute.
_MAX_WAIT = threading.TIMEOUT_MAX


# --- argument checks and waiting ----------------------------------------------


def _check_timeout(timeout: float | None) -> float | None:
    """Validate a timeout: seconds >= 0, or None for "forever"."""
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)):  # bool is an int, as in threading
        # Other real numbers (Decimal, Fraction, numpy scalars) convert; text does not.
        kind = type(timeout)
        if isinstance(timeout, (str, bytes, bytearray)) or not (
            hasattr(kind, "__float__") or hasattr(kind, "__index__")
        ):
            raise TypeError("timeout must be a number or None")
        timeout = float(timeout)
    if timeout != timeout:
        raise ValueError("timeout must not be NaN")
    if timeout > _FOREVER_SECONDS:  # also +inf
        return None
    if timeout <= 0:
        return 0.0  # poll once
    return float(timeout)


def _deadline(timeout: float | None) -> float | None:
    """Validate a timeout and turn it into an absolute monotonic deadline."""
    seconds = _check_timeout(timeout)
    if seconds is None:
        return None
    return _monotonic() + seconds


def _wait(cond: threading.Condition, deadline: float | None, cw: _CtxWait | None = None) -> bool:
    """Wait on `cond` (held by the caller) until notified or `deadline`.

    Returns False, without waiting, once the deadline has passed; True after a
    wait of any outcome. Callers loop and re-check their own state, which makes
    spurious and late wake-ups harmless.

    With a context (`cw`, whose ``deadline`` the caller passes, or None): raises
    the context's error, instead of waiting, once the context has ended. When
    the deadline that passed is the context's, ends the context and returns
    True: the caller looks at its state once more, and the next call raises.
    """
    if cw is not None:
        cw.check(cond)
    if deadline is None:
        cond.wait()
        return True
    left = deadline - _monotonic()
    if left <= 0:
        if cw is not None and cw.by_ctx:
            cw.expire(cond)
            return True
        return False
    cond.wait(min(left, _MAX_WAIT))
    return True


def _notify_all(cond: threading.Condition) -> None:
    with cond:
        cond.notify_all()


class _CtxWait:
    """One blocking call with ``ctx=``.

    ``deadline`` is the earlier of the call's own deadline and the context's
    (``by_ctx`` says it is the context's); the call waits with it. The first
    time the call is about to sleep on a Condition (``check``), a waker that
    notifies that Condition is registered with the context; ``close()``
    removes it. Because the waker takes the Condition's lock and ``check``
    reads ``ctx.err()`` with that lock held, a cancel cannot slip between the
    check and the sleep: the wait ends as soon as the context is cancelled.
    """

    __slots__ = ("ctx", "deadline", "by_ctx", "waker")

    def __init__(self, ctx: Context, deadline: float | None) -> None:
        if not isinstance(ctx, Context):
            raise TypeError("ctx must be a Context or None")
        self.ctx = ctx
        self.waker: Callable[[], None] | None = None
        self.raise_if_done()  # even if the call would not block
        ctx_deadline = ctx.deadline()
        self.by_ctx = ctx_deadline is not None and (deadline is None or ctx_deadline <= deadline)
        self.deadline = ctx_deadline if self.by_ctx else deadline

    def raise_if_done(self) -> None:
        err = self.ctx.err()
        if err is not None:
            raise err.with_traceback(None)

    def check(self, cond: threading.Condition) -> None:
        # `cond` is held: register the waker once, then look at the context.
        if self.waker is None:
            self.waker = functools.partial(_notify_all, cond)
            self.ctx._add_waker(self.waker)  # False if done: raised just below
        self.raise_if_done()

    def expire(self, cond: threading.Condition) -> None:
        # The context's deadline passed before the timer thread ended it: end
        # it now. Not while holding `cond`: ending the context calls the
        # wakers, ours and maybe others' on this very Condition.
        cond.release()
        try:
            self.ctx._expire()
        finally:
            cond.acquire()

    def close(self) -> None:
        if self.waker is not None:
            self.ctx._remove_waker(self.waker)
            self.waker = None


def _ctx_wait(ctx: Context | None, deadline: float | None) -> _CtxWait | None:
    """Start a call's wait with `ctx` (None: no context); raises ctx.err() if
    the context has ended already."""
    return None if ctx is None else _CtxWait(ctx, deadline)


def _check_callable(fn: object) -> None:
    if not callable(fn):
        raise TypeError("fn must be callable")


def _repr(obj: object, state: str) -> str:
    # "<module.QualName at 0x...: state>", the format of threading 3.12+.
    cls = type(obj)
    return f"<{cls.__module__}.{cls.__qualname__} at {id(obj):#x}: {state}>"


# --- WaitGroup ----------------------------------------------------------------


class WaitGroup:
    """Go's sync.WaitGroup: wait for a collection of tasks to finish.

    ``add(n)`` before starting n tasks, ``done()`` as each one finishes,
    ``wait()`` until all have. The counter stays within 0..2**31-1.
    A WaitGroup may be reused once ``wait()`` has returned.
    """

    def __init__(self) -> None:
        self._count = 0
        # Bumped each time the counter reaches zero: a waiter returns True once
        # it changes, even if add() has made the counter non-zero again before
        # the waiter got to run.
        self._generation = 0
        self._cond = threading.Condition(threading.Lock())

    def __repr__(self) -> str:
        return _repr(self, f"count={self._count}")

    @property
    def count(self) -> int:
        """The counter now."""
        return self._count

    def add(self, delta: int = 1) -> None:
        """Add `delta` (may be negative) to the counter; at zero, release all waiters.

        Below zero: ValueError("negative WaitGroup counter"); above 2**31-1:
        OverflowError("WaitGroup counter overflow"); the counter is unchanged.
        """
        delta = operator.index(delta)
        with self._cond:
            count = self._count + delta
            if count < 0:
                raise ValueError("negative WaitGroup counter")
            if count > _INT32_MAX:
                raise OverflowError("WaitGroup counter overflow")
            self._count = count
            if count == 0:
                self._generation += 1
                self._cond.notify_all()

    def done(self) -> None:
        """Decrement the counter by one: ``add(-1)``."""
        self.add(-1)

    def wait(self, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """Block until the counter is zero; False if `timeout` expired first.

        True as soon as the counter has been zero at some moment during the
        wait, even if it was incremented again right after. With `ctx`,
        raises the context's error if it has ended or ends first.
        """
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        if self._count == 0:  # fast path, no lock
            return True
        with self._cond:
            if self._count == 0:
                return True
            generation = self._generation
            try:
                while self._generation == generation:
                    if not _wait(self._cond, deadline, cw):
                        return False
                return True
            finally:
                if cw is not None:
                    cw.close()

    def go(self, fn: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs) -> threading.Thread:
        """Run ``fn(*args, **kwargs)`` in a new thread counted by this group.

        Go 1.25's WaitGroup.Go: ``add(1)``, then start a (non-daemon) thread
        that calls ``done()`` when fn returns or raises; returns that thread.
        An exception from fn goes to ``threading.excepthook`` like in any thread.
        If the thread cannot be started, the ``add(1)`` is undone.
        """
        _check_callable(fn)

        def run() -> None:
            try:
                fn(*args, **kwargs)
            finally:
                self.done()

        # threading names a thread after its target: "Thread-N (fn)".
        name = getattr(fn, "__name__", None)
        if isinstance(name, str):
            run.__name__ = run.__qualname__ = name

        self.add(1)
        try:
            thread = threading.Thread(target=run, daemon=False)
            thread.start()
        except BaseException:
            self.done()  # the thread never ran: undo our add
            raise
        return thread


# --- Once, once_func, once_value ----------------------------------------------


class Once:
    """Go's sync.Once: ``do(fn)`` calls fn only the first time it is called.

    Concurrent callers wait until that first call has returned. If fn raises,
    the exception goes to that caller and the Once still counts as done.
    Calling ``do`` from inside fn raises RuntimeError instead of deadlocking.
    """

    def __init__(self) -> None:
        # Plain boolean read without the lock on the fast path; it turns True
        # only after fn has finished, so a True read needs no further sync.
        self._done = False
        # Ident of the thread running fn, to detect recursion; None otherwise.
        self._owner: int | None = None
        self._cond = threading.Condition(threading.Lock())

    def __repr__(self) -> str:
        return _repr(self, "done" if self._done else "not done")

    @property
    def done(self) -> bool:
        """Whether fn has been called and has returned (or raised)."""
        return self._done

    def do(self, fn: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        """Call ``fn(*args, **kwargs)`` if no call of ``do`` on this Once has
        called fn before; otherwise wait until that call has finished."""
        _check_callable(fn)  # on every call, even after done
        if self._done:  # fast path, no lock
            return None
        me = threading.get_ident()
        with self._cond:
            while self._owner is not None:  # fn is running
                if self._owner == me:
                    raise RuntimeError("Once.do called recursively")
                self._cond.wait()
            if self._done:
                return None
            self._owner = me
        try:
            fn(*args, **kwargs)
        finally:
            with self._cond:
                self._done = True
                self._owner = None
                self._cond.notify_all()
        return None


class _OnceCall:
    """What once_func and once_value share: run fn once, cache the outcome.

    The outcome is fn's result or the exception it raised; the exception is
    re-raised with its original traceback on every call (so the traceback does
    not grow from call to call). The reference to fn is dropped once it has
    run, so closures it holds can be freed.
    """

    _name = "_OnceCall"  # for the recursion message

    def __init__(self, fn: Callable[[], Any]) -> None:
        _check_callable(fn)
        self._fn: Callable[[], Any] | None = fn
        self._done = False  # read without the lock on the fast path
        self._owner: int | None = None  # thread running fn
        self._result: Any = None
        self._exc: BaseException | None = None
        self._tb: TracebackType | None = None
        self._cond = threading.Condition(threading.Lock())

    def __repr__(self) -> str:
        return _repr(self, "done" if self._done else "not done")

    def _outcome(self) -> Any:
        """fn's result, running fn first if nobody has; re-raises what fn raised.

        Reads _done without the lock: _result and _exc are written before
        _done turns True.
        """
        if not self._done:
            self._run_once()
        if self._exc is not None:
            raise self._exc.with_traceback(self._tb)
        return self._result

    def _run_once(self) -> None:
        me = threading.get_ident()
        with self._cond:
            while self._owner is not None:  # fn is running
                if self._owner == me:
                    raise RuntimeError(f"{self._name} called recursively")
                self._cond.wait()
            if self._done:
                return
            self._owner = me
        try:
            self._result = self._fn()  # type: ignore[misc]  # not None until done
        except BaseException as exc:  # noqa: BLE001 - cached, re-raised by every call
            self._exc = exc
            # Skip this frame: the cached traceback starts in fn.
            self._tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        finally:
            self._fn = None
            with self._cond:
                self._done = True
                self._owner = None
                self._cond.notify_all()


class once_func(_OnceCall):
    """Go's sync.OnceFunc: ``once_func(fn)()`` calls fn once and returns None.

    If fn raised, every call raises that same exception.
    """

    _name = "once_func"

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__(fn)

    def __call__(self) -> None:
        self._outcome()


class once_value(_OnceCall, Generic[_T]):
    """Go's sync.OnceValue: ``once_value(fn)()`` returns fn()'s result, computed once.

    If fn raised, every call raises that same exception.
    """

    _name = "once_value"

    def __init__(self, fn: Callable[[], _T]) -> None:
        super().__init__(fn)

    def __call__(self) -> _T:
        return self._outcome()  # type: ignore[no-any-return]


# --- Semaphore, BoundedSemaphore (drop-ins for threading) ---------------------


class Semaphore:
    """threading.Semaphore: a counter that acquire() decrements, blocking at zero.

    The value stays within 0..2**31-1. Waiters are not served in FIFO order.
    """

    def __init__(self, value: int = 1) -> None:
        value = operator.index(value)
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        if value > _INT32_MAX:
            raise OverflowError("Semaphore value too large")
        self._cond = threading.Condition(threading.Lock())
        self._count = value

    def __repr__(self) -> str:
        return _repr(self, f"value={self._count}")

    @property
    def _value(self) -> int:
        """The current value (read-only; threading's attribute of that name)."""
        return self._count

    def _at_fork_reinit(self) -> None:
        # In a forked child only this thread exists: a fresh lock, same value.
        self._cond = threading.Condition(threading.Lock())

    def acquire(
        self, blocking: bool = True, timeout: float | None = None, *, ctx: Context | None = None
    ) -> bool:
        """Decrement the value, blocking while it is zero.

        Returns True, or False if not `blocking` or `timeout` expired first.
        With `ctx`, raises the context's error if it has ended or ends first.
        """
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._cond:
            try:
                while self._count == 0:
                    if not blocking or not _wait(self._cond, deadline, cw):
                        return False
            except BaseException:
                # Interrupted (or the context ended): a notify() meant for a
                # unit that is free now may have gone to us; pass it on so no
                # one sleeps beside it.
                if self._count > 0:
                    self._cond.notify()
                raise
            finally:
                if cw is not None:
                    cw.close()
            self._count -= 1
            return True

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        """Increment the value by `n`, waking up to `n` waiters."""
        n = operator.index(n)
        if n < 1:
            raise ValueError("n must be one or more")
        with self._cond:
            if self._count + n > _INT32_MAX:
                raise OverflowError("Semaphore value too large")
            self._count += n
            self._cond.notify(n)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class BoundedSemaphore(Semaphore):
    """threading.BoundedSemaphore: a Semaphore whose value may not exceed
    its initial value; releasing past it raises ValueError."""

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._bound = self._count

    def __repr__(self) -> str:
        return _repr(self, f"value={self._count}/{self._bound}")

    @property
    def _initial_value(self) -> int:
        """The initial value, the bound (read-only)."""
        return self._bound

    def release(self, n: int = 1) -> None:
        """Increment the value by `n`, waking up to `n` waiters.

        Past the initial value: ValueError("Semaphore released too many times").
        """
        n = operator.index(n)
        if n < 1:
            raise ValueError("n must be one or more")
        with self._cond:
            if self._count + n > self._bound:
                raise ValueError("Semaphore released too many times")
            self._count += n
            self._cond.notify(n)


# --- WeightedSemaphore --------------------------------------------------------


class _Waiter:
    """One blocked WeightedSemaphore.acquire(): its request and its own Condition."""

    __slots__ = ("n", "granted", "cond")

    def __init__(self, n: int, lock: threading.Lock) -> None:
        self.n = n
        # Set, under the lock, by whoever hands the units to this waiter.
        self.granted = False
        # Shares the semaphore's lock, so a waker can notify exactly this waiter.
        self.cond = threading.Condition(lock)


class WeightedSemaphore:
    """golang.org/x/sync/semaphore.Weighted: `size` units, taken n at a time.

    Waiters are served first-in first-out: while anyone waits, a new request
    queues behind them even if it would fit, so a large request is never
    starved by small ones.
    """

    def __init__(self, size: int) -> None:
        size = operator.index(size)
        if size < 0:
            raise ValueError("semaphore size must be >= 0")
        if size > _INT64_MAX:
            raise OverflowError("semaphore size too large")
        self._size = size
        self._held = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return _repr(self, f"held={self._held}/{self._size}, waiters={len(self._waiters)}")

    @property
    def size(self) -> int:
        """The number of units."""
        return self._size

    @property
    def held(self) -> int:
        """The number of units currently held."""
        return self._held

    def _at_fork_reinit(self) -> None:
        # In a forked child the queued threads do not exist: a fresh lock and
        # an empty queue; the units held stay held.
        self._lock = threading.Lock()
        self._waiters.clear()

    @staticmethod
    def _check_n(n: int) -> int:
        n = operator.index(n)
        if n < 0:
            raise ValueError("n must be >= 0")
        return n

    def acquire(self, n: int = 1, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """Take `n` units, blocking until they are free and every earlier
        waiter has been served. False if `timeout` expired first.

        ``n > size`` raises ValueError at once (it could never succeed). With
        `ctx`, raises the context's error if it has ended or ends first; a
        waiter that leaves that way lets the ones behind it proceed.
        """
        n = self._check_n(n)
        deadline = _deadline(timeout)
        if n > self._size:
            raise ValueError("n exceeds semaphore size")
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._lock:
            if not self._waiters and self._size - self._held >= n:
                self._held += n
                return True
            waiter = _Waiter(n, self._lock)
            try:
                self._waiters.append(waiter)
                while not waiter.granted:
                    if not _wait(waiter.cond, deadline, cw):
                        break
            except BaseException:
                # Interrupted (a signal handler raised, or the context ended):
                # leave no trace, giving back the units if they were granted
                # meanwhile, and let the waiters behind us proceed.
                self._leave(waiter)
                raise
            finally:
                if cw is not None:
                    cw.close()
            if waiter.granted:
                # Possibly at the very moment the timeout expired: ours anyway.
                return True
            self._leave(waiter)
            return False

    def try_acquire(self, n: int = 1) -> bool:
        """Take `n` units only if they are free and nobody waits; never blocks."""
        n = self._check_n(n)
        with self._lock:
            if not self._waiters and self._size - self._held >= n:
                self._held += n
                return True
            return False

    def release(self, n: int = 1) -> None:
        """Give back `n` units, then serve the queued waiters that now fit.

        More than held: ValueError("semaphore: released more than held").
        """
        n = self._check_n(n)
        with self._lock:
            if n > self._held:
                raise ValueError("semaphore: released more than held")
            self._held -= n
            self._grant_waiters()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # Both helpers run with self._lock held.

    def _grant_waiters(self) -> None:
        # Serve the queue from the front while the head fits. Stop at the first
        # that does not: letting a smaller one behind it overtake would starve it.
        while self._waiters:
            waiter = self._waiters[0]
            if self._size - self._held < waiter.n:
                break
            self._held += waiter.n
            waiter.granted = True
            self._waiters.popleft()
            waiter.cond.notify()

    def _leave(self, waiter: _Waiter) -> None:
        # A waiter gives up (timeout or exception).
        if waiter.granted:
            # Granted too late to be used: give the units back.
            self._held -= waiter.n
            self._grant_waiters()
        elif self._waiters and self._waiters[0] is waiter:
            # The head leaves: the waiters behind it may fit now.
            self._waiters.popleft()
            self._grant_waiters()
        elif waiter in self._waiters:  # not if interrupted before it queued
            self._waiters.remove(waiter)


# --- Event (drop-in for threading) --------------------------------------------


class Event:
    """threading.Event: a flag that set() raises, clear() lowers, and wait()
    waits for."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._flag = False
        # Bumped by every set(): a waiter returns True once it changes, even
        # if clear() has lowered the flag before the waiter got to run.
        self._generation = 0

    def __repr__(self) -> str:
        return _repr(self, "set" if self._flag else "unset")

    def _at_fork_reinit(self) -> None:
        # Called by threading in a forked child: fresh lock, no waiters, same flag.
        self._cond._at_fork_reinit()  # type: ignore[attr-defined]

    def is_set(self) -> bool:
        """Return True if and only if the flag is set."""
        return self._flag

    def isSet(self) -> bool:
        """Return True if and only if the flag is set (deprecated: use is_set())."""
        warnings.warn("isSet() is deprecated, use is_set() instead", DeprecationWarning, stacklevel=2)
        return self.is_set()

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        with self._cond:
            self._flag = True
            self._generation += 1
            self._cond.notify_all()

    def clear(self) -> None:
        """Lower the flag: wait() blocks again until the next set()."""
        with self._cond:
            self._flag = False

    def wait(self, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """Block until the flag is set; False if `timeout` expired first.

        True if the flag was set on entry or a set() happened during the wait,
        even if clear() followed at once. With `ctx`, raises the context's
        error if it has ended (even if the flag is set) or ends first.
        """
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        if self._flag:  # fast path, no lock
            return True
        with self._cond:
            if self._flag:
                return True
            generation = self._generation
            try:
                while self._generation == generation:
                    if not _wait(self._cond, deadline, cw):
                        return False
                return True
            finally:
                if cw is not None:
                    cw.close()


# --- Barrier ------------------------------------------------------------------

BrokenBarrierError = threading.BrokenBarrierError

# threading.Barrier's states but its "draining" (as in the C core's cy_barrier).
_FILLING, _RESETTING, _BROKEN = 0, -1, -2


class Barrier:
    """threading.Barrier: `parties` threads meet in wait(), then all go on.

    The last thread to arrive runs `action` (if given) before the others are
    released; if it raises, the barrier breaks and the exception goes to that
    thread. A wait() that times out breaks the barrier for everyone, and so
    does a wait() whose context ends.

    A release ends the round at once (threading first lets the released
    threads leave, and makes newcomers wait for that): a thread may enter the
    next round before the released ones have woken, and what happens to the
    next round (abort(), reset(), a timeout) does not reach them.
    """

    def __init__(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> None:
        parties = operator.index(parties)
        if parties < 1:
            raise ValueError("parties must be > 0")
        if parties > 0xFFFFFFFF:
            raise OverflowError("parties too large")
        _check_timeout(timeout)
        self._cond = threading.Condition(threading.Lock())
        self._action = action
        self._timeout = timeout
        self._parties = parties
        self._state = _FILLING
        self._round = 0  # rounds released so far
        self._count = 0  # threads in this round, not yet released or gone

    def __repr__(self) -> str:
        if self.broken:
            return _repr(self, "broken")
        return _repr(self, f"waiters={self.n_waiting}/{self.parties}")

    def wait(self, timeout: float | None = None, *, ctx: Context | None = None) -> int:
        """Wait for all parties; return this thread's arrival index (0 .. parties-1).

        With `ctx`, raises the context's error if it has ended or ends first;
        the latter breaks the barrier (the others get BrokenBarrierError).
        """
        deadline = _deadline(self._timeout if timeout is None else timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._cond:
            # Wait (without a timeout, as threading does) while a reset lets
            # the old round's threads out, and while the last thread of this
            # round runs the action (still filling, but full): a newcomer
            # belongs to the next round.
            while self._state == _RESETTING or (
                self._state == _FILLING and self._count >= self._parties
            ):
                self._cond.wait()
            if self._state == _BROKEN:
                raise BrokenBarrierError
            index = self._count
            self._count += 1
            my_round = self._round
            try:
                if self._count == self._parties:
                    self._run_action()
                else:
                    self._wait_for_release(my_round, deadline, cw)
                return index
            except BaseException:
                if self._round == my_round:  # not released: leave the round
                    self._leave()
                raise
            finally:
                if cw is not None:
                    cw.close()

    def _run_action(self) -> None:
        # The action runs without the lock (as in the C core): an abort() or
        # reset() meanwhile takes effect at once, and this thread then gets
        # BrokenBarrierError instead of its index.
        if self._action is not None:
            self._cond.release()
            try:
                self._action()
            except BaseException:
                self._cond.acquire()
                self._set_state(_BROKEN)
                raise
            self._cond.acquire()
        if self._state != _FILLING:
            raise BrokenBarrierError
        # The release: this round is over, the next one starts empty.
        self._round += 1
        self._count = 0
        self._cond.notify_all()

    def _wait_for_release(self, my_round: int, deadline: float | None, cw: _CtxWait | None) -> None:
        while self._round == my_round and self._state == _FILLING:
            try:
                waited = _wait(self._cond, deadline, cw)
            except BaseException:
                if (cw is not None and cw.ctx.err() is not None
                        and self._round == my_round and self._state == _FILLING):
                    self._set_state(_BROKEN)  # the context ended: as a timeout would
                raise
            if not waited and self._round == my_round and self._state == _FILLING:
                if self._count == self._parties:
                    deadline = None  # the action is running: its outcome decides
                    continue
                self._set_state(_BROKEN)  # a timeout breaks the barrier
        if self._round == my_round:  # broken or reset before the release
            raise BrokenBarrierError

    def _leave(self) -> None:
        self._count -= 1
        if self._count == 0 and self._state == _RESETTING:
            self._set_state(_FILLING)  # the last one out of a reset re-opens it

    def _set_state(self, state: int) -> None:
        self._state = state
        self._cond.notify_all()

    def reset(self) -> None:
        """Return to the empty state; threads waiting now get BrokenBarrierError."""
        with self._cond:
            # With threads inside, they leave broken and the last one out re-opens it.
            self._set_state(_RESETTING if self._count else _FILLING)

    def abort(self) -> None:
        """Break the barrier: current and future wait() calls raise BrokenBarrierError."""
        with self._cond:
            self._set_state(_BROKEN)

    @property
    def parties(self) -> int:
        """The number of threads that must call wait()."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """The number of threads waiting in the current round."""
        return self._count if self._state == _FILLING else 0

    @property
    def broken(self) -> bool:
        """True if the barrier is broken."""
        return self._state == _BROKEN


# The public home of these classes is the package ``cysync``, whichever
# implementation it exports. repr() shows it in threading's form,
# "<cysync.Semaphore at 0x...: value=1>", which is also what CPython's
# lock_tests expect (they match r"<\w+\.Semaphore at ...", a one-word module).
# Subclasses keep their own module, as with threading.
for _cls in (
    WaitGroup, Once, once_func, once_value, Semaphore, BoundedSemaphore, WeightedSemaphore, Event, Barrier
):
    _cls.__module__ = "cysync"
del _cls

# --- ErrGroup (golang.org/x/sync/errgroup) ------------------------------------

# Written once, in cysync._errgroup, over an implementation's primitives: here
# the classes above. (The contexts are imported at the top of this module.)
from ._errgroup import make_errgroup  # noqa: E402

ErrGroup = make_errgroup(sys.modules[__name__])
del make_errgroup
