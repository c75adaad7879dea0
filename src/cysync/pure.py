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
- Every blocking wait has an awaitable twin, ``<method>_async`` (and
  ``select_async``, ``async with``, ``async for`` over a Chan), with the same
  arguments and results, for asyncio tasks: see "asyncio: a task waits like
  a thread" below.

The pure contexts (``cysync._context``; the C module has its own, and the
waits of either take contexts of either) and ``ErrGroup``
(``cysync._errgroup``, shared with the C module) are re-exported here.
"""

from __future__ import annotations

import _thread
import asyncio
import collections
import functools
import operator
import os
import random
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from queue import Empty, Full
from time import monotonic as _monotonic
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

from . import _rules as _R
from . import debug as _dbg
from ._context import _TIMER, _seconds

# Re-exported (the "X as X" form: explicit for type checkers and linters,
# since __all__ comes from cysync._rules).
from ._context import Canceled as Canceled
from ._context import Context as Context
from ._context import ContextError as ContextError
from ._context import DeadlineExceeded as DeadlineExceeded
from ._context import after_func as after_func
from ._context import background as background
from ._context import cause as cause
from ._context import with_cancel as with_cancel
from ._context import with_cancel_cause as with_cancel_cause
from ._context import with_deadline as with_deadline
from ._context import with_deadline_cause as with_deadline_cause
from ._context import with_timeout as with_timeout
from ._context import with_timeout_cause as with_timeout_cause
from ._context import with_value as with_value
from ._context import without_cancel as without_cancel
from ._errors import ChanClosed as ChanClosed
from ._errors import ShutDown as ShutDown
from ._pure_defer import defer as defer
from ._pure_defer import deferrable as deferrable

__all__ = list(_R.PUBLIC_NAMES)

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Ranges and limits shared with the C core (cysync._rules).
_INT32_MAX = _R.INT32_MAX
_INT64_MAX = _R.INT64_MAX
_FOREVER_SECONDS = _R.FOREVER_SECONDS
# One Condition.wait() may not exceed the platform's limit (about 49 days on
# Windows); longer waits are done in slices, the deadline being absolute.
_MAX_WAIT = threading.TIMEOUT_MAX

# cysync.debug's switch (set through _set_debug): when on, WaitGroup.add
# records its call site and every blocking wait registers itself.
_debug = False


def _set_debug(on: bool) -> None:
    global _debug
    _debug = on


# --- fork safety ----------------------------------------------------------------
#
# After os.fork() only the forking thread exists in the child. An object whose
# state names other threads (a queued WeightedSemaphore waiter, a Barrier round
# with threads inside, a Once whose fn runs) would wait for them for ever. Such
# an object joins this registry on its slow path, under its own lock, when the
# first such thread arrives, and leaves it when the last one is gone; the fast
# paths never touch it. In the child, the hook calls ``_at_fork_reinit()`` on
# exactly the registered objects (threading's own convention). A dict keyed by
# id(): one operation each way, atomic with or without the GIL.

_fork_registry: dict[int, Any] = {}


def _fork_join(obj: object) -> None:
    _fork_registry[id(obj)] = obj


def _fork_leave(obj: object) -> None:
    _fork_registry.pop(id(obj), None)


def _after_fork_in_child() -> None:
    objs = list(_fork_registry.values())
    _fork_registry.clear()
    for obj in objs:
        obj._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- argument checks and waiting ----------------------------------------------


def _check_timeout(timeout: float | None) -> float | None:
    """Validate a timeout: seconds >= 0, or None for "forever" (the rules
    of cysync._rules.timeout_seconds)."""
    return _R.timeout_seconds(timeout)


def _deadline(timeout: float | None) -> float | None:
    """Validate a timeout and turn it into an absolute monotonic deadline."""
    seconds = _check_timeout(timeout)
    if seconds is None:
        return None
    return _monotonic() + seconds


def _wait(
    cond: threading.Condition, deadline: float | None, cw: _CtxWait | None = None, owner: object = None
) -> bool:
    """Wait on `cond` (held by the caller) until notified or `deadline`.

    Returns False, without waiting, once the deadline has passed; True after a
    wait of any outcome. Callers loop and re-check their own state, which makes
    spurious and late wake-ups harmless.

    With a context (`cw`, whose ``deadline`` the caller passes, or None): raises
    the context's error, instead of waiting, once the context has ended. When
    the deadline that passed is the context's, ends the context and returns
    True: the caller looks at its state once more, and the next call raises.

    `owner`: the primitive waited on, for cysync.debug's registry of blocked
    threads (each blocking method passes ``self``).
    """
    if _debug and owner is not None:
        token = _dbg._wait_begin(owner, None if cw is None else cw.ctx)
        try:
            return _wait(cond, deadline, cw)
        finally:
            _dbg._wait_end(token)
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
            raise TypeError(_R.CTX_TYPE)
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
        raise TypeError(_R.FN_NOT_CALLABLE)


def _repr(obj: object, state: str) -> str:
    # "<module.QualName at 0x...: state>", the format of threading 3.12+.
    cls = type(obj)
    return f"<{cls.__module__}.{cls.__qualname__} at {id(obj):#x}: {state}>"


# --- asyncio: a task waits like a thread ---------------------------------------
#
# Every blocking wait has an awaitable twin (``wait_async``, ``acquire_async``,
# ``send_async``...). A task that must wait queues the same kind of record a
# thread queues, in the same queue, so the order the primitive promises holds
# between threads and tasks. What differs is the wake-up: a thread sleeps on a
# lock that the waker releases; a task awaits a future, and the waker hands
# that future to the task's event loop through the loop's _Hub: one
# ``call_soon_threadsafe`` per batch of wake-ups, not per waiter, and no
# thread. No loop is bound to a primitive: the loop is the waiting task's,
# taken at each call, so one object serves threads and several loops at once.
#
# - Timeouts are ``loop.call_later`` timers; ``ctx=`` registers the same
#   waker with the context as a thread's wait does.
# - A task cancelled while it waits leaves the queue and ends cancelled; what
#   was granted to it at that moment (units, the lock) goes on to the next
#   waiter. A channel or queue operation that a partner completed at that very
#   moment has happened (the value was handed over): it returns its result, so
#   no value is lost, as ``asyncio.wait_for`` returns a result that came first.
# - A waiter whose loop has closed is dropped by whoever would wake it: what
#   it would have been given stays with the primitive.


class _Hub:
    """The wake-ups for one event loop, made by any thread.

    ``wake(fut, result)`` from the loop's own thread resolves the future at
    once; from another thread it queues it, and only the wake-up that finds
    the queue empty schedules ``_drain`` with ``call_soon_threadsafe``: a
    release that wakes 10,000 tasks writes the loop's self-pipe once.
    """

    __slots__ = ("loop", "thread", "lock", "pending", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.get_ident()
        self.lock = threading.Lock()
        self.pending: list[tuple[asyncio.Future[Any], Any]] = []
        self.scheduled = False

    def wake(self, fut: asyncio.Future[Any], result: Any = None) -> bool:
        """Resolve `fut` in its loop; False if the loop has closed (the task
        will never run again: its waiter is to be dropped)."""
        if self.loop.is_closed():
            return False
        if threading.get_ident() == self.thread:
            if not fut.done():  # a cancelled task's future stays cancelled
                fut.set_result(result)
            return True
        with self.lock:
            self.pending.append((fut, result))
            if self.scheduled:
                return True
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # closed meanwhile: drop what waits for it
            with self.lock:
                self.pending.clear()
            return False
        return True

    def _drain(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
            self.scheduled = False
        for fut, result in pending:
            if not fut.done():
                fut.set_result(result)


_hubs = threading.local()


def _hub() -> _Hub:
    """The running loop's hub (one per loop and thread, found without a lock)."""
    loop = asyncio.get_running_loop()
    hub: _Hub | None = getattr(_hubs, "hub", None)
    if hub is None or hub.loop is not loop:
        hub = _hubs.hub = _Hub(loop)
    return hub


class _TaskWake:
    """A task's place in a Condition's queue, beside the threads' locks.

    ``Condition.notify()`` calls ``release()`` on each waiter it wakes: here
    that hands the task's future to its loop. It raises RuntimeError, as a
    lock released already does, when the loop has closed: ``_Cond.notify``
    then skips this waiter and wakes the next one instead.
    """

    __slots__ = ("hub", "fut")

    def __init__(self) -> None:
        self.hub = _hub()
        self.fut: asyncio.Future[Any] = self.hub.loop.create_future()

    def release(self) -> None:
        if not self.hub.wake(self.fut):
            raise RuntimeError("the waiting task's event loop is closed")

    def dead(self) -> bool:
        return self.hub.loop.is_closed()

    def _timeout(self) -> None:
        if not self.fut.done():
            self.fut.set_result(None)

    async def sleep(self, deadline: float | None) -> None:
        """Await the wake-up, or `deadline` (a loop timer, no thread)."""
        timer = None
        if deadline is not None:
            timer = self.hub.loop.call_later(max(0.0, deadline - _monotonic()), self._timeout)
        try:
            await self.fut
        finally:
            if timer is not None:
                timer.cancel()


class _Cond(threading.Condition):
    """``threading.Condition`` whose queue may also hold tasks (_TaskWake).

    ``notify(n)`` wakes the first `n` waiters that can still be woken, first
    in first out, skipping tasks whose loop has closed (and, as CPython 3.11+
    does, locks released already by an interrupted notify)."""

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():  # type: ignore[attr-defined]
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters  # type: ignore[attr-defined]
        while waiters and n > 0:
            waiter = waiters.popleft()
            try:
                waiter.release()
            except RuntimeError:
                continue
            n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._waiters))  # type: ignore[attr-defined]


def _abandoned(cond: threading.Condition) -> bool:
    """True if `cond` (a waiter record's own Condition) is awaited by tasks
    whose loops have closed, and by nobody else: what it would be granted
    would never be used, or given back."""
    waiters = cond._waiters  # type: ignore[attr-defined]
    return bool(waiters) and all(isinstance(w, _TaskWake) and w.dead() for w in waiters)


async def _wait_async(
    cond: threading.Condition, deadline: float | None, cw: _CtxWait | None = None
) -> bool:
    """``_wait`` for a task: the same contract (called and returning with
    `cond` held; False once the deadline has passed; the context's error),
    but the task awaits its place in `cond`'s queue with the lock released."""
    if cw is not None:
        cw.check(cond)
    if deadline is not None and deadline - _monotonic() <= 0:
        if cw is not None and cw.by_ctx:
            cw.expire(cond)
            return True
        return False
    wake = _TaskWake()
    cond._waiters.append(wake)  # type: ignore[attr-defined]
    cond.release()
    try:
        await wake.sleep(deadline)
    finally:
        cond.acquire()
        try:
            cond._waiters.remove(wake)  # type: ignore[attr-defined]
        except ValueError:
            pass  # notified: taken off the queue by the notifier
    return True


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
        self._cond = _Cond(threading.Lock())

    def __repr__(self) -> str:
        return _repr(self, f"count={self._count}")

    @property
    def count(self) -> int:
        """The counter now."""
        return self._count

    def add(self, delta: int = 1) -> None:
        """Add `delta` (may be negative) to the counter; at zero, release all waiters.

        Below zero: ValueError(_R.WG_NEGATIVE); above 2**31-1:
        OverflowError(_R.WG_OVERFLOW); the counter is unchanged.
        """
        delta = operator.index(delta)
        with self._cond:
            count = self._count + delta
            if count < 0:
                raise ValueError(_R.WG_NEGATIVE)
            if count > _INT32_MAX:
                raise OverflowError(_R.WG_OVERFLOW)
            if _debug and delta:  # before a waiter can see the new count
                _dbg._wg_change(self, delta)
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
                    if not _wait(self._cond, deadline, cw, self):
                        return False
                return True
            finally:
                if cw is not None:
                    cw.close()

    async def wait_async(self, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """``wait()`` for a task: awaits until the counter is zero, without
        blocking the event loop; the same arguments and results."""
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        if self._count == 0:
            return True
        with self._cond:
            if self._count == 0:
                return True
            generation = self._generation
            try:
                while self._generation == generation:
                    if not await _wait_async(self._cond, deadline, cw):
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
            if _debug:
                _dbg._go(self, thread, fn)
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
        self._cond = _Cond(threading.Lock())

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
                    raise RuntimeError(_R.ONCE_RECURSIVE)
                _wait(self._cond, None, None, self)
            if self._done:
                return None
            self._owner = me
            _fork_join(self)  # a forked child must not wait for this thread
        try:
            fn(*args, **kwargs)
        finally:
            with self._cond:
                self._done = True
                self._owner = None
                _fork_leave(self)
                self._cond.notify_all()
        return None

    async def do_async(self, fn: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        """``do()`` for a task: the first caller (thread or task) calls fn, a
        plain callable, right there; a task that comes while another caller
        runs fn awaits its end without blocking the event loop."""
        _check_callable(fn)
        if self._done:
            return None
        me = threading.get_ident()
        with self._cond:
            while self._owner is not None:
                if self._owner == me:
                    raise RuntimeError(_R.ONCE_RECURSIVE)
                await _wait_async(self._cond, None)
            if self._done:
                return None
            self._owner = me
            _fork_join(self)  # a forked child must not wait for this thread
        try:
            fn(*args, **kwargs)
        finally:
            with self._cond:
                self._done = True
                self._owner = None
                _fork_leave(self)
                self._cond.notify_all()
        return None

    def _at_fork_reinit(self) -> None:
        # In a forked child: if fn was running in a thread that is gone, the
        # next do() runs its own fn (done for you by the at-fork hook).
        self._cond = _Cond(threading.Lock())
        _at_fork_reinit_owner(self)


def _at_fork_reinit_owner(once: Once | _OnceCall) -> None:
    if once._owner is None:
        return
    if once._owner == threading.get_ident():  # a fork from inside fn: it goes on here
        _fork_join(once)
    else:
        once._owner = None  # its thread is gone: callable again


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
        self._cond = _Cond(threading.Lock())

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
                _wait(self._cond, None, None, self)
            if self._done:
                return
            self._owner = me
            _fork_join(self)  # a forked child must not wait for this thread
        try:
            self._result = self._fn()  # type: ignore[misc]  # not None until done
        except BaseException as exc:  # noqa: BLE001 - cached, re-raised by every call
            self._exc = exc
            # Skip this frame: the cached traceback starts in fn.
            self._tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        finally:
            # Kept until now: a forked child whose copy of this call never
            # returns runs fn again.
            self._fn = None
            with self._cond:
                self._done = True
                self._owner = None
                _fork_leave(self)
                self._cond.notify_all()

    def _at_fork_reinit(self) -> None:
        # In a forked child: if fn was running in a thread that is gone, the
        # next call runs it again (done for you by the at-fork hook).
        self._cond = _Cond(threading.Lock())
        _at_fork_reinit_owner(self)


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
            raise ValueError(_R.SEMA_INITIAL_NEGATIVE)
        if value > _INT32_MAX:
            raise OverflowError(_R.SEMA_TOO_LARGE)
        self._cond = _Cond(threading.Lock())
        self._count = value

    def __repr__(self) -> str:
        return _repr(self, f"value={self._count}")

    @property
    def _value(self) -> int:
        """The current value (read-only; threading's attribute of that name)."""
        return self._count

    def _at_fork_reinit(self) -> None:
        # In a forked child only this thread exists: a fresh lock, same value.
        self._cond = _Cond(threading.Lock())

    def acquire(
        self, blocking: bool = True, timeout: float | None = None, *, ctx: Context | None = None
    ) -> bool:
        """Decrement the value, blocking while it is zero.

        Returns True, or False if not `blocking` or `timeout` expired first.
        With `ctx`, raises the context's error if it has ended or ends first.
        """
        if not blocking and timeout is not None:
            raise ValueError(_R.NONBLOCKING_TIMEOUT)
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._cond:
            try:
                while self._count == 0:
                    if not blocking or not _wait(self._cond, deadline, cw, self):
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

    async def acquire_async(
        self, blocking: bool = True, timeout: float | None = None, *, ctx: Context | None = None
    ) -> bool:
        """``acquire()`` for a task: the same arguments and results; awaits
        without blocking the event loop. A task cancelled meanwhile holds
        nothing: a unit freed for it goes to the next waiter."""
        if not blocking and timeout is not None:
            raise ValueError(_R.NONBLOCKING_TIMEOUT)
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._cond:
            try:
                while self._count == 0:
                    if not blocking or not await _wait_async(self._cond, deadline, cw):
                        return False
            except BaseException:
                if self._count > 0:
                    self._cond.notify()
                raise
            finally:
                if cw is not None:
                    cw.close()
            self._count -= 1
            return True

    async def __aenter__(self) -> bool:
        return await self.acquire_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self, n: int = 1) -> None:
        """Increment the value by `n`, waking up to `n` waiters."""
        n = operator.index(n)
        if n < 1:
            raise ValueError(_R.SEMA_RELEASE_N)
        with self._cond:
            if self._count + n > _INT32_MAX:
                raise OverflowError(_R.SEMA_TOO_LARGE)
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

        Past the initial value: ValueError(_R.SEMA_RELEASED_TOO_MANY).
        """
        n = operator.index(n)
        if n < 1:
            raise ValueError(_R.SEMA_RELEASE_N)
        with self._cond:
            if self._count + n > self._bound:
                raise ValueError(_R.SEMA_RELEASED_TOO_MANY)
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
        self.cond = _Cond(lock)


class WeightedSemaphore:
    """golang.org/x/sync/semaphore.Weighted: `size` units, taken n at a time.

    Waiters are served first-in first-out: while anyone waits, a new request
    queues behind them even if it would fit, so a large request is never
    starved by small ones.
    """

    def __init__(self, size: int) -> None:
        size = operator.index(size)
        if size < 0:
            raise ValueError(_R.WSEM_SIZE_NEGATIVE)
        if size > _INT64_MAX:
            raise OverflowError(_R.WSEM_SIZE_TOO_LARGE)
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
        # an empty queue; the units held stay held. The at-fork hook does it
        # for every semaphore that had a waiter queued.
        self._lock = threading.Lock()
        self._waiters.clear()
        _fork_leave(self)

    @staticmethod
    def _check_n(n: int) -> int:
        n = operator.index(n)
        if n < 0:
            raise ValueError(_R.WSEM_N_NEGATIVE)
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
            raise ValueError(_R.WSEM_N_TOO_BIG)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._lock:
            if not self._waiters and self._size - self._held >= n:
                self._held += n
                return True
            waiter = _Waiter(n, self._lock)
            try:
                if not self._waiters:
                    _fork_join(self)  # a forked child must forget its waiters
                self._waiters.append(waiter)
                while not waiter.granted:
                    if not _wait(waiter.cond, deadline, cw, self):
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

    async def acquire_async(self, n: int = 1, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """``acquire()`` for a task: the same arguments and results, and the
        same queue: threads and tasks are served first in first out. A task
        cancelled meanwhile leaves the queue; units granted to it at that
        moment go back, to the waiters behind it."""
        n = self._check_n(n)
        deadline = _deadline(timeout)
        if n > self._size:
            raise ValueError(_R.WSEM_N_TOO_BIG)
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
                    if not await _wait_async(waiter.cond, deadline, cw):
                        break
            except BaseException:
                self._leave(waiter)
                raise
            finally:
                if cw is not None:
                    cw.close()
            if waiter.granted:
                return True
            self._leave(waiter)
            return False

    async def __aenter__(self) -> bool:
        return await self.acquire_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

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

        More than held: ValueError(_R.WSEM_OVER_RELEASE).
        """
        n = self._check_n(n)
        with self._lock:
            if n > self._held:
                raise ValueError(_R.WSEM_OVER_RELEASE)
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
            if _abandoned(waiter.cond):  # a task of a closed loop: drop it
                self._waiters.popleft()
                continue
            if self._size - self._held < waiter.n:
                break
            self._held += waiter.n
            waiter.granted = True
            self._waiters.popleft()
            waiter.cond.notify()
            if not self._waiters:
                _fork_leave(self)

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
        else:
            return
        if not self._waiters:
            _fork_leave(self)


# --- Event (drop-in for threading) --------------------------------------------


class Event:
    """threading.Event: a flag that set() raises, clear() lowers, and wait()
    waits for."""

    def __init__(self) -> None:
        self._cond = _Cond(threading.Lock())
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
                    if not _wait(self._cond, deadline, cw, self):
                        return False
                return True
            finally:
                if cw is not None:
                    cw.close()

    async def wait_async(self, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """``wait()`` for a task: awaits the flag without blocking the event
        loop; the same arguments and results."""
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        if self._flag:
            return True
        with self._cond:
            if self._flag:
                return True
            generation = self._generation
            try:
                while self._generation == generation:
                    if not await _wait_async(self._cond, deadline, cw):
                        return False
                return True
            finally:
                if cw is not None:
                    cw.close()


class _ContextDone(Event):
    """What ``ctx.done()`` returns (Go's Done channel): an Event set once the
    context has ended; only the context sets it, so ``set`` and ``clear``
    are not there for users.

    Example:
        ```python
        ctx, cancel = with_timeout(background(), 0.5)
        ctx.done().wait()         # True after 0.5 s (Go: <-ctx.Done())
        ctx.done().is_set()       # True
        ```
    """

    @property
    def set(self) -> Any:
        raise AttributeError("a context's done() event is set by the context only")

    @property
    def clear(self) -> Any:
        raise AttributeError("a context's done() event is set by the context only")

    def _fire(self) -> None:
        Event.set(self)

    def __repr__(self) -> str:
        return f"<cysync context done: {'set' if self._flag else 'unset'}>"


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
            raise ValueError(_R.BARRIER_PARTIES)
        if parties > 0xFFFFFFFF:
            raise OverflowError(_R.BARRIER_PARTIES_TOO_LARGE)
        _check_timeout(timeout)
        self._cond = _Cond(threading.Lock())
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
                _wait(self._cond, None, None, self)
            if self._state == _BROKEN:
                raise BrokenBarrierError
            index = self._count
            if index == 0 and self._parties > 1:
                _fork_join(self)  # a thread waits inside: a forked child must forget it
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

    async def wait_async(self, timeout: float | None = None, *, ctx: Context | None = None) -> int:
        """``wait()`` for a task: the same arguments, results and errors;
        threads and tasks may meet at the same barrier. The last to arrive
        runs the action (a plain callable) right there."""
        deadline = _deadline(self._timeout if timeout is None else timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._cond:
            while self._state == _RESETTING or (
                self._state == _FILLING and self._count >= self._parties
            ):
                await _wait_async(self._cond, None)
            if self._state == _BROKEN:
                raise BrokenBarrierError
            index = self._count
            self._count += 1
            my_round = self._round
            try:
                if self._count == self._parties:
                    self._run_action()
                else:
                    await self._wait_for_release_async(my_round, deadline, cw)
                return index
            except BaseException:
                if self._round == my_round:
                    self._leave()
                raise
            finally:
                if cw is not None:
                    cw.close()

    async def _wait_for_release_async(self, my_round: int, deadline: float | None, cw: _CtxWait | None) -> None:
        # _wait_for_release, awaiting. A task cancelled here breaks the
        # barrier, as a context that ends does: the round cannot complete.
        while self._round == my_round and self._state == _FILLING:
            try:
                waited = await _wait_async(self._cond, deadline, cw)
            except BaseException:
                if self._round == my_round and self._state == _FILLING:
                    self._set_state(_BROKEN)
                raise
            if not waited and self._round == my_round and self._state == _FILLING:
                if self._count == self._parties:
                    deadline = None
                    continue
                self._set_state(_BROKEN)
        if self._round == my_round:
            raise BrokenBarrierError

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
        if self._parties > 1:
            _fork_leave(self)
        self._cond.notify_all()

    def _wait_for_release(self, my_round: int, deadline: float | None, cw: _CtxWait | None) -> None:
        while self._round == my_round and self._state == _FILLING:
            try:
                waited = _wait(self._cond, deadline, cw, self)
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
        if self._count != 0:
            return
        _fork_leave(self)
        if self._state == _RESETTING:
            self._set_state(_FILLING)  # the last one out of a reset re-opens it

    def _set_state(self, state: int) -> None:
        self._state = state
        self._cond.notify_all()

    def reset(self) -> None:
        """Return to the empty state; threads waiting now get BrokenBarrierError."""
        with self._cond:
            # With threads inside, they leave broken and the last one out re-opens it.
            self._set_state(_RESETTING if self._count else _FILLING)

    def _at_fork_reinit(self) -> None:
        # In a forked child the threads inside are gone: a fresh, empty round
        # (what reset() turns into once they have left). The at-fork hook
        # does it for every barrier that had threads inside.
        self._cond = _Cond(threading.Lock())
        self._state = _FILLING
        self._round += 1
        self._count = 0
        _fork_leave(self)

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


# --- RWMutex (Go's sync.RWMutex) ----------------------------------------------


class _RWWaiter:
    """One blocked lock() or rlock(): what it waits for, and its own Condition."""

    __slots__ = ("writer", "granted", "cond")

    def __init__(self, writer: bool, lock: threading.Lock) -> None:
        self.writer = writer
        # Set, under the lock, by whoever hands the lock to this waiter.
        self.granted = False
        # Shares the RWMutex's lock, so a waker can notify exactly this waiter.
        self.cond = _Cond(lock)


class _RWCore:
    """The state an RWMutex and its ``reader`` and ``writer`` sides share.

    The sides hold this, not the RWMutex, so no reference cycle keeps an
    RWMutex alive until the garbage collector runs. The rules are the C
    core's (``cext/cy_rwmutex.h``): waiters queue in two FIFO queues; a
    reader comes in unless a writer holds the lock or waits for it; a
    writer's unlock admits every queued reader before the next writer; the
    last reader out hands the lock to the first queued writer; a writer
    that gives up, if it was the last one waiting, lets the readers it held
    back in.
    """

    __slots__ = ("lock", "readers", "writer", "rq", "wq")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.readers = 0  # readers holding the lock
        self.writer = False  # a writer holds it
        self.rq: collections.deque[_RWWaiter] = collections.deque()  # readers waiting
        self.wq: collections.deque[_RWWaiter] = collections.deque()  # writers waiting

    def state(self) -> str:
        return (f"readers={self.readers}, writer={self.writer},"
                f" waiters={len(self.rq) + len(self.wq)}, writers waiting={len(self.wq)}")

    # Both _can and _enter run with self.lock held.

    def _can(self, writer: bool) -> bool:
        if writer:
            return not self.writer and self.readers == 0 and not self.wq
        return not self.writer and not self.wq  # a waiting writer blocks new readers

    def _enter(self, writer: bool) -> None:
        if writer:
            self.writer = True
        else:
            self.readers += 1

    def try_take(self, writer: bool) -> bool:
        with self.lock:
            if self._can(writer):
                self._enter(writer)
                return True
            return False

    def take(self, writer: bool, timeout: float | None, ctx: Context | None) -> bool:
        seconds = _check_timeout(timeout)
        deadline = None if seconds is None else _monotonic() + seconds
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self.lock:
            if self._can(writer):
                self._enter(writer)
                return True
            if seconds == 0 and (cw is None or not cw.by_ctx):
                return False  # a poll: never queue
            waiter = _RWWaiter(writer, self.lock)
            try:
                (self.wq if writer else self.rq).append(waiter)
                while not waiter.granted:
                    if not _wait(waiter.cond, deadline, cw, self):
                        break
            except BaseException:
                # Interrupted (a signal handler raised, or the context ended):
                # leave no trace, giving the lock back if it was granted meanwhile.
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

    async def take_async(self, writer: bool, timeout: float | None, ctx: Context | None) -> bool:
        # take(), awaiting: the same queues, so threads and tasks keep their order.
        seconds = _check_timeout(timeout)
        deadline = None if seconds is None else _monotonic() + seconds
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self.lock:
            if self._can(writer):
                self._enter(writer)
                return True
            if seconds == 0 and (cw is None or not cw.by_ctx):
                return False
            waiter = _RWWaiter(writer, self.lock)
            try:
                (self.wq if writer else self.rq).append(waiter)
                while not waiter.granted:
                    if not await _wait_async(waiter.cond, deadline, cw):
                        break
            except BaseException:
                self._leave(waiter)  # cancelled: the lock, if granted, goes on
                raise
            finally:
                if cw is not None:
                    cw.close()
            if waiter.granted:
                return True
            self._leave(waiter)
            return False

    def unlock(self) -> None:
        with self.lock:
            if not self.writer:
                raise RuntimeError(_R.RW_UNLOCK)
            self.writer = False
            self._dispatch(prefer_readers=True)

    def runlock(self) -> None:
        with self.lock:
            if self.readers == 0:
                raise RuntimeError(_R.RW_RUNLOCK)
            self.readers -= 1
            self._dispatch(prefer_readers=False)

    # Both helpers run with self.lock held.

    def _dispatch(self, prefer_readers: bool) -> None:
        # Hand the lock to whoever may have it now. `prefer_readers`: a writer
        # has just unlocked, and the readers that queued meanwhile go first.
        if self.writer:
            return
        # Tasks of closed loops would hold what they are given for ever.
        while self.wq and _abandoned(self.wq[0].cond):
            self.wq.popleft()
        if self.rq and (prefer_readers or not self.wq):
            for waiter in self.rq:
                if not _abandoned(waiter.cond):
                    self.readers += 1
                    waiter.granted = True
                    waiter.cond.notify()
            self.rq.clear()
        elif self.wq and self.readers == 0:
            waiter = self.wq.popleft()
            self.writer = True
            waiter.granted = True
            waiter.cond.notify()

    def _leave(self, waiter: _RWWaiter) -> None:
        # A waiter gives up (timeout or exception).
        if waiter.granted:
            # Granted too late to be used: give the lock back, on to the next.
            if waiter.writer:
                self.writer = False
                self._dispatch(prefer_readers=True)
            else:
                self.readers -= 1
                self._dispatch(prefer_readers=False)
            return
        queue = self.wq if waiter.writer else self.rq
        if waiter in queue:  # not if interrupted before it queued
            queue.remove(waiter)
        # The last writer waiting gives up: the readers it held back go in.
        self._dispatch(prefer_readers=False)


class _RWSide:
    """``rw.reader`` / ``rw.writer``: one side of an RWMutex as a lock-like
    object, for ``with`` and for code that expects ``acquire``/``release``."""

    __slots__ = ("_core",)
    _WRITER = False

    def __init__(self, core: _RWCore) -> None:
        self._core = core

    def __repr__(self) -> str:
        side = "writer" if self._WRITER else "reader"
        return f"<cysync.RWMutex.{side} at {id(self):#x}: {self._core.state()}>"

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Lock this side (at most ``timeout`` seconds); with ``blocking=False``
        only if it is free now. Returns True, or False if it was not taken."""
        if not blocking:
            if timeout is not None:
                raise ValueError(_R.NONBLOCKING_TIMEOUT)
            return self._core.try_take(self._WRITER)
        return self._core.take(self._WRITER, timeout, None)

    def release(self) -> None:
        """Unlock this side; RuntimeError if it is not locked."""
        if self._WRITER:
            self._core.unlock()
        else:
            self._core.runlock()

    def __enter__(self) -> bool:
        return self._core.take(self._WRITER, None, None)

    async def acquire_async(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """``acquire()`` for a task: the same arguments and results."""
        if not blocking:
            if timeout is not None:
                raise ValueError(_R.NONBLOCKING_TIMEOUT)
            return self._core.try_take(self._WRITER)
        return await self._core.take_async(self._WRITER, timeout, None)

    async def __aenter__(self) -> bool:
        return await self._core.take_async(self._WRITER, None, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class _RWReader(_RWSide):
    """``rw.reader``: ``acquire`` is ``rw.rlock``, ``release`` is ``rw.runlock``."""

    __slots__ = ()
    _WRITER = False


class _RWWriter(_RWSide):
    """``rw.writer``: ``acquire`` is ``rw.lock``, ``release`` is ``rw.unlock``."""

    __slots__ = ()
    _WRITER = True


class RWMutex:
    """Go's sync.RWMutex: many readers or one writer.

    - A writer waiting blocks new readers, so writers are never starved;
      the readers waiting when a writer unlocks all get in before the next
      writer.
    - Not owned by a thread: any thread may unlock it, as in Go.
    - Unlocking what is not locked (``unlock()`` with no writer,
      ``runlock()`` with no reader) raises RuntimeError and changes nothing.
    - ``rw.reader`` and ``rw.writer`` are lock-like objects for ``with``
      and for code that expects ``acquire``/``release``.

    Example:
        ```python
        rw = cysync.RWMutex()
        with rw.reader:          # many threads at once
            value = table[key]
        with rw.writer:          # one thread, no reader
            table[key] = value
        ```
    """

    def __init__(self) -> None:
        self._core = core = _RWCore()
        self._reader = _RWReader(core)
        self._writer = _RWWriter(core)

    def __repr__(self) -> str:
        return _repr(self, self._core.state())

    def lock(self, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """Lock for writing: wait until no reader or writer holds the lock.

        Returns True, or False if `timeout` expired first. With `ctx`,
        raises the context's error if it has ended or ends first.
        """
        return self._core.take(True, timeout, ctx)

    def unlock(self) -> None:
        """Unlock for writing; RuntimeError if no writer holds the lock.
        The readers waiting go first."""
        self._core.unlock()

    def rlock(self, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """Lock for reading: wait while a writer holds the lock or waits for it.

        Returns True, or False if `timeout` expired first. With `ctx`,
        raises the context's error if it has ended or ends first.
        """
        return self._core.take(False, timeout, ctx)

    def runlock(self) -> None:
        """Undo one rlock(); RuntimeError if no reader holds the lock."""
        self._core.runlock()

    async def lock_async(self, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """``lock()`` for a task: the same arguments and results, the same
        queue as the threads'. Cancelled while waiting, the task holds nothing."""
        return await self._core.take_async(True, timeout, ctx)

    async def rlock_async(self, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """``rlock()`` for a task: the same arguments and results."""
        return await self._core.take_async(False, timeout, ctx)

    def try_lock(self) -> bool:
        """Lock for writing only if nobody holds the lock or waits for it."""
        return self._core.try_take(True)

    def try_rlock(self) -> bool:
        """Lock for reading only if no writer holds the lock or waits for it."""
        return self._core.try_take(False)

    @property
    def reader(self) -> _RWReader:
        """The read side as a lock-like object (the same one every time)."""
        return self._reader

    @property
    def writer(self) -> _RWWriter:
        """The write side as a lock-like object (the same one every time)."""
        return self._writer


# --- Chan, select, after (Go channels) ------------------------------------------
#
# The model is Go's runtime/chan.go and runtime/select.go (and the C core,
# which mirrors it):
#
# - A channel is a lock, a ring of at most `cap` buffered values, a `closed`
#   flag, and two FIFO queues of blocked calls: senders and receivers.
# - A call that has to block (send, recv or select) makes ONE waiter record,
#   _ChanWaiter, and queues a link to it (_Link, Go's sudog) on each channel it
#   waits for: a send or recv one, a select one per case. The thread then
#   sleeps on the record's own lock.
# - Whoever ends the call "claims" the record, exactly once, under the
#   record's small lock: a partner operation (which hands the value over, or
#   takes it, in the same step), a close(), the context's waker, or the
#   waiting thread itself when its deadline passes or a signal handler raises.
#   One claim wins; a partner that loses (the select fired on another
#   channel, the waiter timed out) drops that link and tries the next one.
# - When the call returns, whatever the reason, it unlinks every link still
#   queued: a waiter that timed out or was cancelled leaves no trace.
# - Lock order: channel locks, several at once only in select and then by
#   id() (Go's sellock), before a record's small lock; the record's lock is
#   never held while taking another.

# What ends a blocked call: the value of _ChanWaiter.claimed.
_DONE = "done"  # a partner operation completed it, through `link`
_CLOSED = "closed"  # close() of the channel of `link` woke it
_TIMEOUT = "timeout"  # the call's own timeout passed
_CTX_ENDED = "ctx ended"  # its context was cancelled, or its deadline passed
_INTERRUPTED = "interrupted"  # a signal handler raised in the waiting thread

# The kinds of select cases.
_RECV, _RECV_OK, _SEND = "recv", "recv_ok", "send"


class _ChanWaiter:
    """One blocked send, recv or select: how it ended and the value handed to
    it (the part of Go's sudogs that all the cases of a select share).

    ``claimed`` is None until the first of these sets it, under ``_mutex``:
    ``fire`` (a partner operation or a close; it wakes the sleeping thread),
    ``cancel`` (the context's waker; wakes it too) or ``give_up`` (the thread
    itself: it is awake). Whoever claims writes ``link`` and ``value`` in the
    same step, so a thread whose own claim failed reads a complete outcome.
    """

    __slots__ = ("_sleep", "_mutex", "claimed", "link", "value")

    def __init__(self) -> None:
        # Taken here, released once, by the claim that wakes the thread.
        self._sleep = threading.Lock()
        self._sleep.acquire()
        self._mutex = threading.Lock()
        self.claimed: str | None = None
        self.link: _Link | None = None  # the case that fired or was closed
        self.value: Any = None  # what a sender handed to this receiver

    def fire(self, claimed: str, link: _Link | None, value: Any = None) -> bool:
        """Claim the record for an operation of another thread, and wake the
        waiting one. False if it was claimed already (it did not happen)."""
        with self._mutex:
            if self.claimed is not None:
                return False
            self.link = link
            self.value = value
            self.claimed = claimed
            # No call between the claim and the wake-up: an exception from a
            # signal handler in this thread cannot leave the waiter claimed
            # but asleep.
            self._sleep.release()
        return True

    def cancel(self) -> None:
        """The context's waker (called by the thread that ends the context)."""
        self.fire(_CTX_ENDED, None)

    def give_up(self, claimed: str) -> bool:
        """Claim the record for the waiting thread itself (its deadline, an
        exception): False if something else ended the call first."""
        with self._mutex:
            if self.claimed is not None:
                return False
            self.claimed = claimed
            return True

    def sleep(self, timeout: float) -> bool:
        """Sleep until woken (True) or `timeout` seconds (False)."""
        return self._sleep.acquire(timeout=timeout)


class _Link:
    """One case of a blocked call, queued on one channel (Go's sudog): its
    waiter, the channel, the case's position in select(), and for a send
    the value. ``queue`` is the queue it is on, None once unlinked."""

    __slots__ = ("waiter", "chan", "index", "value", "queue", "prev", "next")

    def __init__(self, waiter: _ChanWaiter, chan: Chan[Any] | Queue[Any], index: int, value: Any) -> None:
        self.waiter = waiter
        self.chan = chan
        self.index = index
        self.value = value
        self.queue: _WaitQ | None = None
        self.prev: _Link | None = None
        self.next: _Link | None = None


class _WaitQ:
    """A channel's FIFO of blocked senders or receivers (Go's waitq): a doubly
    linked list of links, so that a waiter that gives up leaves from
    anywhere in it at once. Used with the channel's lock held."""

    __slots__ = ("head", "tail")

    def __init__(self) -> None:
        self.head: _Link | None = None
        self.tail: _Link | None = None

    def push(self, link: _Link) -> None:
        link.queue = self
        link.prev = self.tail
        link.next = None
        if self.tail is None:
            self.head = link
        else:
            self.tail.next = link
        self.tail = link

    def remove(self, link: _Link) -> None:
        if link.prev is None:
            self.head = link.next
        else:
            link.prev.next = link.next
        if link.next is None:
            self.tail = link.prev
        else:
            link.next.prev = link.prev
        link.queue = link.prev = link.next = None

    def claim_first(self, claimed: str, value: Any = None) -> _Link | None:
        """Unlink links from the front until one whose waiter this claims
        (``fire``), and return it; None when none is left. A link whose
        waiter was claimed already (its select fired elsewhere, it timed
        out) is dropped on the way, as Go's dequeue skips such sudogs."""
        while (link := self.head) is not None:
            self.remove(link)
            if link.waiter.fire(claimed, link, value):
                return link
        return None


def _unlink(links: tuple[_Link, ...] | list[_Link]) -> None:
    """Take a returning call's links off the queues they are still on."""
    for link in links:
        if link.queue is not None:  # not taken by a partner yet (it never comes back)
            with link.chan._lock:
                if link.queue is not None:
                    link.queue.remove(link)


def _passed(deadline: float | None) -> bool:
    return deadline is not None and deadline <= _monotonic()


def _raise_ctx_err(ctx: Context) -> None:
    """Raise the context's error. Its deadline may have passed before the
    timer thread ended it: end it now (_expire), and if another thread is
    ending it already (an ancestor first), wait until that is done."""
    ctx._expire()
    done = ctx.done()
    while not done.wait(_MAX_WAIT):
        pass
    err = ctx.err()
    assert err is not None
    raise err.with_traceback(None)


def _timed_out(cw: _CtxWait | None) -> None:
    """A call cannot complete and its deadline has passed: return (it timed
    out) or, when the deadline is the context's, raise the context's error."""
    if cw is not None and cw.by_ctx:
        _raise_ctx_err(cw.ctx)


def _park(waiter: _ChanWaiter, cw: _CtxWait | None, deadline: float | None, owner: object = None) -> None:
    """Sleep until `waiter` is claimed. When `deadline` passes the thread
    claims it itself: as _CTX_ENDED if the deadline is the context's, else as
    _TIMEOUT. The context's waker is registered for the time of the sleep.

    The sleep is ``Lock.acquire(timeout=...)`` in slices of at most
    ``threading.TIMEOUT_MAX``, so signal handlers run during it exactly as
    during any ``threading`` wait; one that raises makes this raise.
    `owner` (the channel, or select's tuple of channels) is what
    cysync.debug registers the thread as blocked on.
    """
    ctx = None if cw is None else cw.ctx
    if ctx is not None and not ctx._add_waker(waiter.cancel):
        waiter.give_up(_CTX_ENDED)  # ended since the call began (unless a partner came first)
        return
    token = _dbg._wait_begin(owner, ctx) if _debug and owner is not None else None
    try:
        while True:
            if deadline is None:
                wait = _MAX_WAIT
            else:
                wait = deadline - _monotonic()
                if wait <= 0:
                    waiter.give_up(_CTX_ENDED if cw is not None and cw.by_ctx else _TIMEOUT)
                    return  # claimed now, by us or by whoever came first
                wait = min(wait, _MAX_WAIT)
            if waiter.sleep(wait):
                return
    finally:
        if token is not None:
            _dbg._wait_end(token)
        if ctx is not None:
            ctx._remove_waker(waiter.cancel)


def _leave(waiter: _ChanWaiter, links: tuple[_Link, ...] | list[_Link], cw: _CtxWait | None) -> None:
    """A blocked call's wait is over: leave every queue it is still on, and
    raise the context's error if the context ended it. Afterwards
    ``waiter.claimed`` is _DONE, _CLOSED or _TIMEOUT."""
    _unlink(links)
    if waiter.claimed is _CTX_ENDED:
        assert cw is not None
        _raise_ctx_err(cw.ctx)


class _TaskChanWaiter(_ChanWaiter):
    """A task's blocked send, recv, select, put, get or join: the same record
    as a thread's, on the same queues, but the claim that ends it hands the
    task's future to its loop instead of releasing a sleeping thread. A
    record whose loop has closed cannot be claimed: partners skip it."""

    __slots__ = ("hub", "fut")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.claimed = None
        self.link = None
        self.value = None
        self.hub = _hub()
        self.fut: asyncio.Future[Any] = self.hub.loop.create_future()

    def fire(self, claimed: str, link: _Link | None, value: Any = None) -> bool:
        with self._mutex:
            if self.claimed is not None or self.hub.loop.is_closed():
                return False
            self.link = link
            self.value = value
            self.claimed = claimed
        self.hub.wake(self.fut)
        return True

    def _expire(self, claimed: str) -> None:
        # The call's deadline timer, in the loop's thread.
        if self.give_up(claimed) and not self.fut.done():
            self.fut.set_result(None)


async def _park_async(
    waiter: _TaskChanWaiter, links: tuple[_Link, ...] | list[_Link], cw: _CtxWait | None, deadline: float | None
) -> None:
    """``_park`` then ``_leave``, for a task: await until the record is
    claimed (a deadline is a loop timer), then leave every queue.

    Cancelled meanwhile: if the task can still claim its own record, nothing
    has happened: it leaves the queues and the cancellation propagates. If a
    partner claimed it first, the operation has completed (a value was
    handed over) and must not be lost: the call returns its result."""
    ctx = None if cw is None else cw.ctx
    timer = None
    try:
        if ctx is not None and not ctx._add_waker(waiter.cancel):
            waiter.give_up(_CTX_ENDED)
        elif deadline is not None and deadline <= _monotonic():
            waiter.give_up(_CTX_ENDED if cw is not None and cw.by_ctx else _TIMEOUT)
        else:
            if deadline is not None:
                kind = _CTX_ENDED if cw is not None and cw.by_ctx else _TIMEOUT
                timer = waiter.hub.loop.call_later(deadline - _monotonic(), waiter._expire, kind)
            await waiter.fut
    except BaseException:
        if waiter.give_up(_INTERRUPTED) or waiter.claimed is not _DONE:
            _unlink(links)
            raise
    finally:
        if timer is not None:
            timer.cancel()
        if ctx is not None:
            ctx._remove_waker(waiter.cancel)
    _leave(waiter, links, cw)


def _completed_anyway(waiter: _ChanWaiter, links: tuple[_Link, ...] | list[_Link]) -> bool:
    """An exception (from a signal handler: Ctrl-C) came out of a call whose
    waiter is queued. Did the operation complete all the same?

    The rule: if the thread can still claim its own record, nothing has
    happened: the call leaves every queue (False) and the caller lets the
    exception propagate, the channels as if the call had never been made.
    If a partner claimed the record first, the operation has completed (a
    receiver got the value, or a sender gave it away) and cannot be undone,
    so it must not be lost either (True): the call returns its result, and
    ``_rearm_later`` deals with the exception. A close or a context that
    ended the call meanwhile loses nothing: False, the exception propagates.
    """
    if waiter.give_up(_INTERRUPTED) or waiter.claimed is not _DONE:
        _unlink(links)
        return False
    return True


def _rearm_later(exc: BaseException) -> bool:
    """The exception of a call that completed all the same: True if it is a
    KeyboardInterrupt, which the call raises again through SIGINT's handler
    right after it has returned (``_REARM``), so Ctrl-C is still honoured at
    once. Any other exception cannot be raised again later: it goes to
    ``sys.excepthook``."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    sys.excepthook(type(exc), exc, exc.__traceback__)
    return False


class _Rearm(dict):  # type: ignore[type-arg]
    """``_REARM[signal.SIGINT]`` makes SIGINT's handler run again in the main
    thread, as ``_thread.interrupt_main()`` does, at the interpreter's next
    check for signals in the *caller*: a subscript, unlike a call, is not
    followed by such a check, so the KeyboardInterrupt cannot come out of the
    channel method between the re-arm and its return (and lose its result)."""

    __missing__ = staticmethod(_thread.interrupt_main)


_REARM = _Rearm()
_SIGINT = signal.SIGINT


class Chan(Generic[_T]):
    """Go's channel: a FIFO of values passed between threads.

    ``Chan(cap=0)``: `cap` an int >= 0 (``operator.index``: ``Chan(1.5)`` is a
    TypeError, ``Chan(-1)`` a ValueError). ``cap=0`` is unbuffered: a send
    completes only when a receiver takes the value. With ``cap > 0``, sends
    complete at once while fewer than `cap` values are buffered.

    - ``send(value, timeout=None, *, ctx=None) -> bool``: ``ch <- value``.
    - ``recv(timeout=None, *, ctx=None)``: ``<-ch``; ``recv_ok`` is
      ``v, ok := <-ch``.
    - ``close()``: no more sends; receivers drain what is buffered, then see
      the close. Every blocked sender and receiver is woken.
    - ``for v in ch:`` receives until the channel is closed and drained.
    - ``len(ch)`` values buffered now, ``ch.cap``, ``ch.closed``.
    - ``select(...)`` waits on several channels; ``after(seconds)`` is a
      channel that receives the time once.

    Values are passed first in first out, and so are blocked senders and
    receivers served. Timeouts follow the module's rules (``None`` forever,
    ``<= 0`` only what can happen at once); ``ctx=`` raises the context's
    error if it has ended at the call or ends first. A call that times out,
    is cancelled or is interrupted by a signal handler leaves the channel as
    if it had never been made.

    Example (Go's worker pool)::

        jobs, results = Chan(100), Chan(100)

        def worker():
            for job in jobs:            # until jobs is closed and drained
                results.send(job * 2)

        wg = WaitGroup()
        for _ in range(4):
            wg.go(worker)
        for job in range(10):
            jobs.send(job)
        jobs.close()
        wg.wait()
        results.close()
        print(sorted(results))          # [0, 2, 4, ..., 18]
    """

    def __init__(self, cap: int = 0) -> None:
        cap = operator.index(cap)
        if cap < 0:
            raise ValueError(_R.CHAN_CAP_NEGATIVE)
        if cap > _INT64_MAX:
            raise OverflowError(_R.CHAN_CAP_TOO_LARGE)
        self._cap = cap
        self._buf: collections.deque[_T] = collections.deque()
        self._closed = False
        self._lock = threading.Lock()
        self._sendq = _WaitQ()  # blocked senders: links holding their value
        self._recvq = _WaitQ()  # blocked receivers

    def __repr__(self) -> str:
        state = f"len={len(self._buf)} cap={self._cap}"
        return _repr(self, state + " closed" if self._closed else state)

    @property
    def cap(self) -> int:
        """The capacity: how many values the buffer holds (0: unbuffered)."""
        return self._cap

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called (values may still be buffered)."""
        return self._closed

    def __len__(self) -> int:
        """The number of values buffered now (always 0 when unbuffered)."""
        return len(self._buf)

    # The two halves of Go's chansend and chanrecv that never block; called
    # with the lock held (also by select, with the locks of all its channels).

    def _try_send(self, value: Any) -> bool:
        # A receiver waits only while nothing is buffered: hand it the value.
        if self._recvq.claim_first(_DONE, value) is not None:
            return True
        if len(self._buf) < self._cap:
            self._buf.append(value)
            return True
        return False

    def _try_recv(self) -> tuple[bool, Any]:
        # A sender waits only while the buffer is full (or there is none).
        link = self._sendq.claim_first(_DONE)
        if link is not None:
            if not self._cap:
                return True, link.value  # unbuffered: straight from the sender
            # Take the oldest value; the sender's joins the tail, so the
            # order of values stays the order of sends.
            value = self._buf.popleft()
            self._buf.append(link.value)
            return True, value
        if self._buf:
            return True, self._buf.popleft()
        return False, None

    def send(self, value: _T, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """Send `value` (Go's ``ch <- value``): True once it is in the buffer or
        handed to a receiver; False if `timeout` expired first.

        Unbuffered, a send waits for a receiver; buffered, only while the
        buffer is full. ``timeout=0`` (or negative) sends only if that can
        happen at once. Raises ``ChanClosed`` if the channel is closed, or
        closed while the sender waits (the value is then not sent). With
        `ctx`, raises the context's error if it has ended or ends first.
        """
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        waiter = link = None
        try:
            with self._lock:
                if self._closed:
                    raise ChanClosed(_R.CHAN_SEND_CLOSED)
                if self._try_send(value):
                    return True
                if not _passed(deadline):
                    link = _Link(_ChanWaiter(), self, 0, value)
                    waiter = link.waiter  # from here on, an exception is _completed_anyway's
                    self._sendq.push(link)
            if waiter is None:
                _timed_out(cw)
                return False
            _park(waiter, cw, deadline, self)
            rearm = False
        except BaseException as exc:
            if waiter is None or not _completed_anyway(waiter, (link,)):  # type: ignore[arg-type]
                raise
            rearm = _rearm_later(exc)
        _leave(waiter, (link,), cw)  # type: ignore[arg-type]
        if waiter.claimed is _CLOSED:
            raise ChanClosed(_R.CHAN_SEND_CLOSED)
        sent = waiter.claimed is _DONE
        if rearm:
            _REARM[_SIGINT]
        return sent

    def _recv(self, timeout: float | None, ctx: Context | None) -> tuple[Any, str, bool]:
        # What recv, recv_ok and iteration share: (value, how, rearm), `how`
        # being _DONE (value received), _CLOSED (closed and drained) or _TIMEOUT.
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        waiter = link = None
        try:
            with self._lock:
                received, value = self._try_recv()
                if received:
                    return value, _DONE, False
                if self._closed:
                    return None, _CLOSED, False
                if not _passed(deadline):
                    link = _Link(_ChanWaiter(), self, 0, None)
                    waiter = link.waiter  # from here on, an exception is _completed_anyway's
                    self._recvq.push(link)
            if waiter is None:
                _timed_out(cw)
                return None, _TIMEOUT, False
            _park(waiter, cw, deadline, self)
            rearm = False
        except BaseException as exc:
            if waiter is None or not _completed_anyway(waiter, (link,)):  # type: ignore[arg-type]
                raise
            rearm = _rearm_later(exc)
        _leave(waiter, (link,), cw)  # type: ignore[arg-type]
        return waiter.value, waiter.claimed, rearm  # type: ignore[return-value]

    def recv(self, timeout: float | None = None, *, ctx: Context | None = None) -> _T:
        """Receive the next value (Go's ``<-ch``), first in first out.

        Waits while nothing is buffered and no sender waits. Values buffered
        before ``close()`` are still delivered; once the channel is closed and
        drained, raises ``ChanClosed``. Raises ``TimeoutError`` if `timeout`
        expired first (``timeout=0``: only what is there at once). With `ctx`,
        raises the context's error if it has ended or ends first.
        """
        value, how, rearm = self._recv(timeout, ctx)
        if how is _CLOSED:
            raise ChanClosed(_R.CHAN_RECV_CLOSED)
        if how is _TIMEOUT:
            raise TimeoutError(_R.CHAN_RECV_TIMEOUT)
        if rearm:
            _REARM[_SIGINT]
        return value  # type: ignore[no-any-return]

    def recv_ok(self, timeout: float | None = None, *, ctx: Context | None = None) -> tuple[_T | None, bool]:
        """Receive like ``recv()``, as Go's ``value, ok := <-ch``: returns
        ``(value, True)``, or ``(None, False)`` once the channel is closed and
        drained (instead of raising ``ChanClosed``).

        A timeout still raises ``TimeoutError`` (a ``(None, False)`` would
        look like a close). With `ctx`, raises the context's error if it has
        ended or ends first.
        """
        value, how, rearm = self._recv(timeout, ctx)
        if how is _TIMEOUT:
            raise TimeoutError(_R.CHAN_RECV_TIMEOUT)
        if rearm:
            _REARM[_SIGINT]
        return (value, True) if how is _DONE else (None, False)

    async def send_async(self, value: _T, timeout: float | None = None, *, ctx: Context | None = None) -> bool:
        """``send()`` for a task: the same arguments, results and errors; the
        same queue as the threads'. Cancelled while waiting, the value is not
        sent (unless a receiver took it at that very moment: then True)."""
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._lock:
            if self._closed:
                raise ChanClosed(_R.CHAN_SEND_CLOSED)
            if self._try_send(value):
                return True
            if _passed(deadline):
                waiter = None
            else:
                waiter = _TaskChanWaiter()
                link = _Link(waiter, self, 0, value)
                self._sendq.push(link)
        if waiter is None:
            _timed_out(cw)
            return False
        await _park_async(waiter, (link,), cw, deadline)
        if waiter.claimed is _CLOSED:
            raise ChanClosed(_R.CHAN_SEND_CLOSED)
        return waiter.claimed is _DONE

    async def _recv_async(self, timeout: float | None, ctx: Context | None) -> tuple[Any, str]:
        # _recv for a task: (value, how).
        deadline = _deadline(timeout)
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._lock:
            received, value = self._try_recv()
            if received:
                return value, _DONE
            if self._closed:
                return None, _CLOSED
            if _passed(deadline):
                waiter = None
            else:
                waiter = _TaskChanWaiter()
                link = _Link(waiter, self, 0, None)
                self._recvq.push(link)
        if waiter is None:
            _timed_out(cw)
            return None, _TIMEOUT
        await _park_async(waiter, (link,), cw, deadline)
        return waiter.value, waiter.claimed  # type: ignore[return-value]

    async def recv_async(self, timeout: float | None = None, *, ctx: Context | None = None) -> _T:
        """``recv()`` for a task: the same arguments, results and errors. A
        task cancelled while waiting takes no value: none is lost."""
        value, how = await self._recv_async(timeout, ctx)
        if how is _CLOSED:
            raise ChanClosed(_R.CHAN_RECV_CLOSED)
        if how is _TIMEOUT:
            raise TimeoutError(_R.CHAN_RECV_TIMEOUT)
        return value  # type: ignore[no-any-return]

    async def recv_ok_async(
        self, timeout: float | None = None, *, ctx: Context | None = None
    ) -> tuple[_T | None, bool]:
        """``recv_ok()`` for a task: ``(value, True)``, or ``(None, False)``
        once the channel is closed and drained."""
        value, how = await self._recv_async(timeout, ctx)
        if how is _TIMEOUT:
            raise TimeoutError(_R.CHAN_RECV_TIMEOUT)
        return (value, True) if how is _DONE else (None, False)

    def __aiter__(self) -> AsyncIterator[_T]:
        """``async for v in ch``: receive until the channel is closed and drained."""
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[_T]:
        while True:
            value, how = await self._recv_async(None, None)
            if how is not _DONE:
                return
            yield value

    def close(self) -> None:
        """Close the channel (Go's ``close(ch)``): no more sends.

        Every blocked receiver and sender is woken: receivers see the close
        (``ChanClosed``, or ``(None, False)`` from ``recv_ok``), senders raise
        ``ChanClosed`` (their values are not sent). Values buffered before the
        close are still delivered. Closing a closed channel raises
        ``ChanClosed``.
        """
        with self._lock:
            if self._closed:
                raise ChanClosed(_R.CHAN_CLOSE_CLOSED)
            self._closed = True
            # The queues are empty afterwards, and stay so: nothing queues
            # on a closed channel.
            while self._recvq.claim_first(_CLOSED) is not None:
                pass
            while self._sendq.claim_first(_CLOSED) is not None:
                pass

    def __iter__(self) -> Iterator[_T]:
        """Receive until the channel is closed and drained (Go's
        ``for v := range ch``); waits as long as it takes."""
        while True:
            value, how, rearm = self._recv(None, None)
            if how is not _DONE:
                return
            if rearm:
                _REARM[_SIGINT]
            yield value


def _select_plan(cases: tuple[Any, ...]) -> list[tuple[int, Chan[Any], str, Any]]:
    """Check select()'s cases, before anything is done; returns
    ``(index, chan, kind, value)`` for each case other than None."""
    plan = []
    for index, case in enumerate(cases):
        if case is None:
            continue  # Go's nil channel: never ready
        names: tuple[str, ...]
        if isinstance(case, tuple):
            method, names = (case[0] if len(case) == 2 else None), ("send",)
        else:
            method, names = case, ("recv", "recv_ok")
        chan = getattr(method, "__self__", None)
        name = getattr(method, "__name__", None)
        if not isinstance(chan, Chan) or name not in names:
            raise TypeError(_R.SELECT_BAD_CASE.format(index=index, case=case))
        if name == "send":
            plan.append((index, chan, _SEND, case[1]))
        else:
            plan.append((index, chan, _RECV if name == "recv" else _RECV_OK, None))
    return plan


def select(
    *cases: Any, timeout: float | None = None, ctx: Context | None = None, default: bool = False
) -> tuple[int, Any]:
    """Wait until one of `cases` can proceed, perform exactly that one, and
    return ``(index, value)`` (Go's ``select``).

    A case is ``ch.recv`` or ``ch.recv_ok`` (the bound method) to receive,
    ``(ch.send, value)`` to send, or None, which never fires (Go's nil
    channel). `index` is the case's position in `cases`; `value` is the
    value received (``(value, ok)`` for ``recv_ok``), None for a send.

    When several cases are ready, one is chosen uniformly at random. With
    ``default=True``, returns ``(-1, None)`` at once if none is ready;
    when `timeout` expires first, returns ``(-1, None)``. With `ctx`, raises
    the context's error if it has ended or ends first. A ``recv`` case on a
    closed, drained channel and a send case on a closed channel are ready
    and raise ``ChanClosed`` (even with ``default=True``); ``recv_ok`` gives
    ``(index, (None, False))`` instead. Any other case raises ``TypeError``
    before anything is done.

    Example::

        index, value = select(results.recv, (log.send, "tick"), after(1.0).recv)
        if index == 0:
            handle(value)
        elif index == 2:
            print("one second without results")
    """
    plan = _select_plan(cases)
    deadline = _deadline(timeout)
    cw = _ctx_wait(ctx, deadline)
    if cw is not None:
        deadline = cw.deadline
    # Go's lockorder (each channel once, by address) and pollorder (random).
    chans = sorted({id(chan): chan for _, chan, _, _ in plan}.values(), key=id)
    order = plan[:]
    random.shuffle(order)
    waiter = None
    links: list[_Link] = []
    try:
        locked: list[Chan[Any]] = []
        try:
            for chan in chans:
                chan._lock.acquire()
                locked.append(chan)
            # Pass 1: the first ready case in a random order is a uniform choice.
            for index, chan, kind, value in order:
                if kind is _SEND:
                    if chan._closed:
                        raise ChanClosed(_R.CHAN_SEND_CLOSED)
                    if chan._try_send(value):
                        return index, None
                    continue
                received, value = chan._try_recv()
                if received:
                    return index, ((value, True) if kind is _RECV_OK else value)
                if chan._closed:
                    if kind is _RECV_OK:
                        return index, (None, False)
                    raise ChanClosed(_R.CHAN_RECV_CLOSED)
            # Pass 2: none is ready; queue a link per case on its channel.
            if not default and not _passed(deadline):
                waiter = _ChanWaiter()  # from here on, an exception is _completed_anyway's
                for index, chan, kind, value in plan:
                    link = _Link(waiter, chan, index, value)
                    links.append(link)
                    (chan._sendq if kind is _SEND else chan._recvq).push(link)
        finally:
            for chan in reversed(locked):
                chan._lock.release()
        if waiter is None:
            if not default:
                _timed_out(cw)
            return -1, None
        # Pass 3: wait; the case that fired is the link the waiter was claimed through.
        _park(waiter, cw, deadline, tuple(c for _, c, _, _ in plan) if _debug else None)
        rearm = False
    except BaseException as exc:
        if waiter is None or not _completed_anyway(waiter, links):
            raise
        rearm = _rearm_later(exc)
    _leave(waiter, links, cw)
    if waiter.claimed is _TIMEOUT:
        return -1, None
    assert waiter.link is not None
    index = waiter.link.index
    kind = next(k for i, _, k, _ in plan if i == index)
    if waiter.claimed is _CLOSED:
        if kind is not _RECV_OK:
            raise ChanClosed(_R.CHAN_SEND_CLOSED if kind is _SEND else _R.CHAN_RECV_CLOSED)
        result: Any = (None, False)
    elif kind is _SEND:
        result = None
    else:
        result = (waiter.value, True) if kind is _RECV_OK else waiter.value
    if rearm:
        _REARM[_SIGINT]
    return index, result


async def select_async(
    *cases: Any, timeout: float | None = None, ctx: Context | None = None, default: bool = False
) -> tuple[int, Any]:
    """``select()`` for a task: the same cases, arguments, results and
    errors. A task cancelled while waiting leaves every channel's queue and
    no case happens (unless one completed at that very moment: then its
    result is returned, so no value is lost)."""
    plan = _select_plan(cases)
    deadline = _deadline(timeout)
    cw = _ctx_wait(ctx, deadline)
    if cw is not None:
        deadline = cw.deadline
    chans = sorted({id(chan): chan for _, chan, _, _ in plan}.values(), key=id)
    order = plan[:]
    random.shuffle(order)
    waiter = None
    links: list[_Link] = []
    locked: list[Chan[Any]] = []
    try:
        for chan in chans:
            chan._lock.acquire()
            locked.append(chan)
        for index, chan, kind, value in order:
            if kind is _SEND:
                if chan._closed:
                    raise ChanClosed(_R.CHAN_SEND_CLOSED)
                if chan._try_send(value):
                    return index, None
                continue
            received, value = chan._try_recv()
            if received:
                return index, ((value, True) if kind is _RECV_OK else value)
            if chan._closed:
                if kind is _RECV_OK:
                    return index, (None, False)
                raise ChanClosed(_R.CHAN_RECV_CLOSED)
        if not default and not _passed(deadline):
            waiter = _TaskChanWaiter()
            for index, chan, kind, value in plan:
                link = _Link(waiter, chan, index, value)
                links.append(link)
                (chan._sendq if kind is _SEND else chan._recvq).push(link)
    finally:
        for chan in reversed(locked):
            chan._lock.release()
    if waiter is None:
        if not default:
            _timed_out(cw)
        return -1, None
    await _park_async(waiter, links, cw, deadline)
    if waiter.claimed is _TIMEOUT:
        return -1, None
    assert waiter.link is not None
    index = waiter.link.index
    kind = next(k for i, _, k, _ in plan if i == index)
    if waiter.claimed is _CLOSED:
        if kind is not _RECV_OK:
            raise ChanClosed(_R.CHAN_SEND_CLOSED if kind is _SEND else _R.CHAN_RECV_CLOSED)
        return index, (None, False)
    if kind is _SEND:
        return index, None
    return index, ((waiter.value, True) if kind is _RECV_OK else waiter.value)


def _send_time(ref: weakref.ref[Chan[float]]) -> None:
    # after()'s timer callback, in the timer thread: Go's sendTime, a send
    # that never blocks. Nothing to do if the channel is gone, closed, or full
    # (someone else sent on it).
    chan = ref()
    if chan is None:
        return
    with chan._lock:
        if not chan._closed:
            chan._try_send(_monotonic())


def after(seconds: float) -> Chan[float]:
    """A channel that receives ``time.monotonic()`` once, `seconds` from now
    (Go's ``time.After``): a ``Chan(1)``, so the value waits there for its
    receiver.

    Served by the process's one timer thread (the one that ends contexts at
    their deadlines), not a thread per call. `seconds <= 0` fires at once;
    longer than about 146 years (``inf``) never. NaN is a ValueError,
    anything but a number a TypeError. The timer holds the channel weakly:
    a channel nobody holds any more is freed before it fires.

    Example::

        index, value = select(ch.recv, after(0.5).recv)
        if index == 1:
            print("no value within half a second")
    """
    delay = _seconds(seconds, "seconds")
    chan: Chan[float] = Chan(1)
    if delay <= _FOREVER_SECONDS:
        _TIMER.call_at(_monotonic() + delay, functools.partial(_send_time, weakref.ref(chan)))
    return chan


# --- Queue (drop-in for queue.Queue) ------------------------------------------
#
# queue.Queue is a deque and three Conditions over one Lock; this one is a
# deque and three FIFO queues of waiter records, the channel's (above):
# getters wait while the queue is empty, putters while it is full, joiners
# while tasks are unfinished. A put while a getter waits hands the item
# straight to it; a get from a full queue moves the first waiting putter's
# item into the place it freed. So waiters are served in their order and a
# newcomer never overtakes one; a waiter that times out, is cancelled or
# interrupted leaves no trace, and one that completed anyway keeps its result
# (the rules of _park, _leave and _completed_anyway).

_QUEUE_HOOKS = _R.QUEUE_HOOKS
# The C core keeps maxsize in 64 bits.
_MAXSIZE_BOUND = 2**62


def _queue_deadline(timeout: float | None) -> float | None:
    """queue.Queue's timeout: None waits for ever, a negative one is a ValueError."""
    if timeout is not None and timeout < 0:
        raise ValueError(_R.QUEUE_TIMEOUT_NEGATIVE)
    return _deadline(timeout)


def _maxsize(maxsize: int) -> int:
    return max(-_MAXSIZE_BOUND, min(_MAXSIZE_BOUND, operator.index(maxsize)))


class Queue(Generic[_T]):
    """A drop-in for ``queue.Queue``: a FIFO of items between threads.

    ``Queue(maxsize=0)``: ``maxsize <= 0`` is unbounded, else ``put`` waits
    while ``maxsize`` items are queued. The API, semantics and exceptions
    are ``queue.Queue``'s of Python 3.13 on every Python: ``put(item,
    block=True, timeout=None)``, ``get(block=True, timeout=None)``,
    ``put_nowait``, ``get_nowait``, ``qsize``, ``empty``, ``full``,
    ``task_done``, ``join``, ``shutdown(immediate=False)``, the attributes
    ``maxsize`` (writable), ``unfinished_tasks`` and ``is_shutdown``; it
    raises the very classes ``queue.Empty`` and ``queue.Full``, and
    ``ShutDown`` (``queue.ShutDown`` from 3.13 on). A negative `timeout`
    is a ``ValueError``, as in ``queue.Queue``.

    Beyond ``queue.Queue``: ``put``, ``get`` and ``join`` take ``ctx=`` (a
    context: its end raises its error), waiting getters and putters are
    served first in first out, and a wait interrupted by a signal handler
    (Ctrl-C) loses no item.

    Not there: ``queue.Queue``'s internals (``mutex``, ``not_empty``,
    ``not_full``, ``all_tasks_done``, ``queue``) and its storage hooks: a
    subclass that defines ``_init``, ``_qsize``, ``_put`` or ``_get`` is a
    ``TypeError`` when the class is created; subclass ``queue.Queue`` for
    those (``LifoQueue`` and ``PriorityQueue`` do).

    Example::

        q = Queue()

        def worker():
            while True:
                item = q.get()
                print(item)
                q.task_done()

        threading.Thread(target=worker, daemon=True).start()
        for item in range(10):
            q.put(item)
        q.join()                    # every item got and done
    """

    def __init__(self, maxsize: int = 0) -> None:
        self._maxsize = _maxsize(maxsize)
        self._buf: collections.deque[_T] = collections.deque()
        self._lock = threading.Lock()
        self._getq = _WaitQ()  # waiting getters (the queue is empty)
        self._putq = _WaitQ()  # waiting putters, links holding their item (it is full)
        self._joinq = _WaitQ()  # waiting joiners (tasks are unfinished)
        self._unfinished = 0
        self._shutdown = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for klass in cls.__mro__:
            if klass is Queue:
                break
            hooks = [name for name in _QUEUE_HOOKS if name in vars(klass)]
            if hooks:
                raise TypeError(_R.QUEUE_SUBCLASS_HOOKS.format(name=cls.__qualname__, hooks=", ".join(hooks)))
        super().__init_subclass__(**kwargs)

    def __repr__(self) -> str:
        state = f"qsize={len(self._buf)} maxsize={self._maxsize}"
        return _repr(self, state + " shutdown" if self._shutdown else state)

    # The steps that never block, with the lock held.

    def _room(self) -> bool:
        return self._maxsize <= 0 or len(self._buf) < self._maxsize

    def _try_put(self, item: _T) -> bool:
        # A getter waits only while the queue is empty: hand it the item.
        if self._getq.claim_first(_DONE, item) is None:
            if not self._room():
                return False
            self._buf.append(item)
        self._unfinished += 1
        return True

    def _try_get(self) -> tuple[bool, Any]:
        if not self._buf:
            return False, None
        item = self._buf.popleft()
        # A putter waits only while the queue is full: its item takes the
        # place just freed (unless maxsize has shrunk below the length).
        if self._putq.head is not None and self._room():
            link = self._putq.claim_first(_DONE)
            if link is not None:
                self._buf.append(link.value)
                self._unfinished += 1
        return True, item

    def _release_joiners(self) -> None:
        while self._joinq.claim_first(_DONE) is not None:
            pass

    def put(self, item: _T, block: bool = True, timeout: float | None = None, *, ctx: Context | None = None) -> None:
        """Put `item` at the end of the queue.

        A full queue makes the call wait (`block`), for at most `timeout`
        seconds (None: as long as it takes), then raise ``queue.Full``;
        ``block=False`` raises ``queue.Full`` at once. Raises ``ShutDown``
        once the queue is shut down, also while waiting. A negative `timeout`
        is a ``ValueError`` (only checked for a bounded queue, as
        ``queue.Queue`` does). With `ctx`, raises the context's error if it
        has ended or ends first.
        """
        deadline = _queue_deadline(timeout) if block and self._maxsize > 0 else None
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        waiter = link = None
        try:
            with self._lock:
                if self._shutdown:
                    raise ShutDown
                if self._try_put(item):
                    return
                if not block:
                    raise Full
                if not _passed(deadline):
                    link = _Link(_ChanWaiter(), self, 0, item)
                    waiter = link.waiter  # from here on, an exception is _completed_anyway's
                    self._putq.push(link)
            if waiter is None:
                _timed_out(cw)
                raise Full
            _park(waiter, cw, deadline, self)
            rearm = False
        except BaseException as exc:
            if waiter is None or not _completed_anyway(waiter, (link,)):  # type: ignore[arg-type]
                raise
            rearm = _rearm_later(exc)
        _leave(waiter, (link,), cw)  # type: ignore[arg-type]
        if waiter.claimed is _CLOSED:
            raise ShutDown
        if waiter.claimed is _TIMEOUT:
            raise Full
        if rearm:
            _REARM[_SIGINT]

    def get(self, block: bool = True, timeout: float | None = None, *, ctx: Context | None = None) -> _T:
        """Remove and return the oldest item.

        An empty queue makes the call wait (`block`), for at most `timeout`
        seconds (None: as long as it takes), then raise ``queue.Empty``;
        ``block=False`` raises ``queue.Empty`` at once. Once the queue is
        shut down, the items left are still returned, then ``ShutDown`` is
        raised (also to the getters waiting). A negative `timeout` is a
        ``ValueError``. With `ctx`, raises the context's error if it has
        ended or ends first.
        """
        deadline = _queue_deadline(timeout) if block else None
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        waiter = link = None
        try:
            with self._lock:
                got, item = self._try_get()
                if got:
                    return item  # type: ignore[no-any-return]
                if self._shutdown:
                    raise ShutDown
                if not block:
                    raise Empty
                if not _passed(deadline):
                    link = _Link(_ChanWaiter(), self, 0, None)
                    waiter = link.waiter  # from here on, an exception is _completed_anyway's
                    self._getq.push(link)
            if waiter is None:
                _timed_out(cw)
                raise Empty
            _park(waiter, cw, deadline, self)
            rearm = False
        except BaseException as exc:
            if waiter is None or not _completed_anyway(waiter, (link,)):  # type: ignore[arg-type]
                raise
            rearm = _rearm_later(exc)
        _leave(waiter, (link,), cw)  # type: ignore[arg-type]
        if waiter.claimed is _CLOSED:
            raise ShutDown
        if waiter.claimed is _TIMEOUT:
            raise Empty
        if rearm:
            _REARM[_SIGINT]
        return waiter.value  # type: ignore[no-any-return]

    async def put_async(
        self, item: _T, block: bool = True, timeout: float | None = None, *, ctx: Context | None = None
    ) -> None:
        """``put()`` for a task: the same arguments, results and errors, the
        same queue of putters as the threads'. A task cancelled while waiting
        has not put its item (unless a getter made room for it at that very
        moment: then it is in)."""
        deadline = _queue_deadline(timeout) if block and self._maxsize > 0 else None
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._lock:
            if self._shutdown:
                raise ShutDown
            if self._try_put(item):
                return
            if not block:
                raise Full
            if _passed(deadline):
                waiter = None
            else:
                waiter = _TaskChanWaiter()
                link = _Link(waiter, self, 0, item)
                self._putq.push(link)
        if waiter is None:
            _timed_out(cw)
            raise Full
        await _park_async(waiter, (link,), cw, deadline)
        if waiter.claimed is _CLOSED:
            raise ShutDown
        if waiter.claimed is _TIMEOUT:
            raise Full

    async def get_async(self, block: bool = True, timeout: float | None = None, *, ctx: Context | None = None) -> _T:
        """``get()`` for a task: the same arguments, results and errors. A
        task cancelled while waiting takes no item: none is lost."""
        deadline = _queue_deadline(timeout) if block else None
        cw = _ctx_wait(ctx, deadline)
        if cw is not None:
            deadline = cw.deadline
        with self._lock:
            got, item = self._try_get()
            if got:
                return item  # type: ignore[no-any-return]
            if self._shutdown:
                raise ShutDown
            if not block:
                raise Empty
            if _passed(deadline):
                waiter = None
            else:
                waiter = _TaskChanWaiter()
                link = _Link(waiter, self, 0, None)
                self._getq.push(link)
        if waiter is None:
            _timed_out(cw)
            raise Empty
        await _park_async(waiter, (link,), cw, deadline)
        if waiter.claimed is _CLOSED:
            raise ShutDown
        if waiter.claimed is _TIMEOUT:
            raise Empty
        return waiter.value  # type: ignore[no-any-return]

    async def join_async(self, *, ctx: Context | None = None) -> None:
        """``join()`` for a task: awaits until every item put has been got
        and marked ``task_done()``."""
        cw = _ctx_wait(ctx, None)
        deadline = None if cw is None else cw.deadline
        with self._lock:
            if not self._unfinished:
                return
            waiter = _TaskChanWaiter()
            link = _Link(waiter, self, 0, None)
            self._joinq.push(link)
        try:
            await _park_async(waiter, (link,), cw, deadline)
        except BaseException:
            waiter.give_up(_INTERRUPTED)  # done or not, nothing is lost
            _unlink((link,))
            raise

    def put_nowait(self, item: _T) -> None:
        """``put(item, block=False)``: raises ``queue.Full`` if the queue is full."""
        return self.put(item, False)

    def get_nowait(self) -> _T:
        """``get(block=False)``: raises ``queue.Empty`` if the queue is empty."""
        return self.get(False)

    def task_done(self) -> None:
        """Tell the queue that an item got with ``get()`` has been dealt
        with; once every item put has been, ``join()`` returns. Raises
        ``ValueError`` if called more times than items were put."""
        with self._lock:
            if self._unfinished <= 0:
                raise ValueError(_R.QUEUE_TASK_DONE)
            self._unfinished -= 1
            if not self._unfinished:
                self._release_joiners()

    def join(self, *, ctx: Context | None = None) -> None:
        """Wait until every item put has been got and marked ``task_done()``
        (returns at once if none is unfinished). With `ctx`, raises the
        context's error if it has ended or ends first."""
        cw = _ctx_wait(ctx, None)
        deadline = None if cw is None else cw.deadline
        waiter = link = None
        try:
            with self._lock:
                if not self._unfinished:
                    return
                link = _Link(_ChanWaiter(), self, 0, None)
                waiter = link.waiter
                self._joinq.push(link)
            _park(waiter, cw, deadline, self)
        except BaseException:
            if waiter is not None:  # done or not, nothing is lost: leave and raise
                waiter.give_up(_INTERRUPTED)
                _unlink((link,))  # type: ignore[arg-type]
            raise
        _leave(waiter, (link,), cw)

    def qsize(self) -> int:
        """The number of items in the queue now."""
        return len(self._buf)

    def empty(self) -> bool:
        """True if the queue is empty now."""
        return not self._buf

    def full(self) -> bool:
        """True if the queue is bounded and holds ``maxsize`` items (or more,
        after ``maxsize`` shrank) now."""
        return 0 < self._maxsize <= len(self._buf)

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down (Python 3.13's ``queue.Queue.shutdown``).

        From now on ``put()`` raises ``ShutDown``, and so does ``get()``
        once the queue is empty; every waiting putter and getter wakes and
        raises it. With `immediate`, the queue is emptied first, a task
        retired per item removed (``join()`` returns when none is left).
        May be called again (for instance with ``immediate=True`` later).
        """
        removed: collections.deque[_T] | None = None
        with self._lock:
            self._shutdown = True
            if immediate:
                removed, self._buf = self._buf, collections.deque()
                self._unfinished = max(0, self._unfinished - len(removed))
                if not self._unfinished:
                    self._release_joiners()
            while self._getq.claim_first(_CLOSED) is not None:
                pass
            while self._putq.claim_first(_CLOSED) is not None:
                pass
        del removed  # the items go, with the lock released

    @property
    def maxsize(self) -> int:
        """The bound: ``<= 0`` unbounded. May be set, as ``queue.Queue``'s:
        waiting putters that then fit go in, in their order."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        maxsize = _maxsize(value)
        with self._lock:
            self._maxsize = maxsize
            while self._putq.head is not None and self._room():
                link = self._putq.claim_first(_DONE)
                if link is None:
                    break
                self._buf.append(link.value)
                self._unfinished += 1

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked ``task_done()``."""
        return self._unfinished

    @property
    def is_shutdown(self) -> bool:
        """True once ``shutdown()`` has been called."""
        return self._shutdown


# The public home of these classes is the package ``cysync``, whichever
# implementation it exports. repr() shows it in threading's form,
# "<cysync.Semaphore at 0x...: value=1>", which is also what CPython's
# lock_tests expect (they match r"<\w+\.Semaphore at ...", a one-word module).
# Subclasses keep their own module, as with threading.
for _cls in (
    WaitGroup, Once, once_func, once_value, Semaphore, BoundedSemaphore, WeightedSemaphore, Event, Barrier,
    RWMutex, Chan, Queue,
):
    _cls.__module__ = "cysync"
del _cls

# --- ErrGroup (golang.org/x/sync/errgroup) ------------------------------------

# Written once, in cysync._errgroup, over an implementation's primitives: here
# the classes above. (The contexts are imported at the top of this module.)
from ._errgroup import make_errgroup  # noqa: E402

ErrGroup = make_errgroup(sys.modules[__name__])
del make_errgroup

_dbg._attach(_set_debug)
