"""Go's ``context`` for threads: cancellation trees, deadlines and values.

The pure implementation, exported by ``cysync.pure``; it is the
specification that ``cysync._cysync``'s C contexts follow. The classes
``Context`` (an ABC the C context type registers with), ``ContextError``,
``Canceled`` and ``DeadlineExceeded`` and the timer thread ``_TIMER`` are
shared by both. It must not import either module at import time (the C
module imports this one; ``done()`` imports ``cysync.pure``'s Event on first
use). A context's children are of its own implementation: given a parent of
the C implementation, the functions below hand the call over (``_OTHER``).

A context is made from a parent::

    ctx, cancel = with_timeout(background(), 2.0)
    try:
        sem.acquire(ctx=ctx)        # raises DeadlineExceeded after 2 s
    finally:
        cancel()

- ``background()`` is the root: never cancelled, no deadline, no values.
- ``with_cancel(parent)``, ``with_timeout(parent, seconds)`` and
  ``with_deadline(parent, deadline)`` return ``(ctx, cancel)``; calling
  ``cancel()`` (idempotent, thread-safe) ends ``ctx`` and all its descendants
  with ``Canceled``; a deadline ends them with ``DeadlineExceeded``.
- ``with_value(parent, key, value)`` returns a context that carries a value
  and is cancelled with its parent.

How it works:

- Every context that can be cancelled (a "cancel context") has a lock, its
  error (None until it ends), and its children, held *weakly* in a dict keyed
  by a per-parent counter. A child leaves that dict when it is cancelled
  (cancel pops its key) and when it is garbage-collected (a weakref callback
  pops it), so a long-lived parent does not grow with short-lived children.
  A child holds its parent strongly (value lookups walk up), never the reverse.
- Cancelling sets the error under the lock, then, outside it: fires the C
  token (if a C wait ever asked for one), sets the ``done()`` event (if one
  was ever asked for), calls the wakers registered by pure-Python waits, and
  cancels the children (iteratively, so a deep chain cannot overflow the
  stack).
- Deadlines are served by ONE daemon thread for the whole process (started on
  first use, restarted in a forked child): a heap of (deadline, seq, weakref
  to the context). A cancelled context's entry is marked dead and dropped
  lazily; the heap is compacted whenever dead entries are more than half of
  it, and whenever it has doubled since the last compaction (which also drops
  the entries of contexts collected without being cancelled), so it cannot
  grow without bound. The same thread runs plain callbacks at a deadline
  (``_TIMER.call_at(deadline, fn)``, for ``after()``): there is one timer
  thread per process, whatever uses it.
- A value context has no cancellation of its own: ``done()``, ``err()`` and
  the private hooks go to the nearest cancel context above it (``_ctl``), or
  to background.

Private hooks the primitives' waits use, described in docs/contexts.md
("How a wait hears its context"): ``_add_waker(fn)``, ``_remove_waker(fn)``,
``_c_token(token_cls)``, ``_expire()``.
"""

from __future__ import annotations

import abc
import heapq
import os
import sys
import threading
import weakref
from collections.abc import Callable, Hashable
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any

from . import _rules

if TYPE_CHECKING:
    from .pure import _ContextDone

__all__ = [
    "Canceled",
    "Context",
    "ContextError",
    "DeadlineExceeded",
    "after_func",
    "background",
    "cause",
    "with_cancel",
    "with_cancel_cause",
    "with_deadline",
    "with_deadline_cause",
    "with_timeout",
    "with_timeout_cause",
    "with_value",
    "without_cancel",
]

# Deadlines further away than 2**62 ns (about 146 years; also +inf) mean "no
# deadline", as timeouts do everywhere in cysync: the C core's deadlines are
# int64 nanoseconds and must not overflow.
_FOREVER_SECONDS = _rules.FOREVER_SECONDS



# --- errors ---------------------------------------------------------------------


class ContextError(Exception):
    """The base class of the errors a context ends with (Go's ``ctx.Err()``)."""


class Canceled(ContextError):
    """The context was cancelled: its cancel function (or an ancestor's) was called.

    ``str()`` is ``"context canceled"``, as in Go.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or ("context canceled",)))


class DeadlineExceeded(ContextError):
    """The context's deadline (or an ancestor's) passed.

    ``str()`` is ``"context deadline exceeded"``, as in Go.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or ("context deadline exceeded",)))


# --- argument checks ------------------------------------------------------------


def _check_parent(parent: object) -> None:
    if not isinstance(parent, Context):
        raise TypeError("parent must be a Context")


#: The C implementation's context functions, by name, registered by
#: cysync._cysync when it loads (empty without it). A context's children are
#: of its own implementation: given a parent of the C implementation, the
#: functions below hand the call over to these (and the C ones to us), so a
#: tree never mixes the two and each keeps its own bookkeeping.
_OTHER: dict[str, Callable[..., Any]] = {}


def _foreign(parent: Context) -> bool:
    return type(parent) not in _PURE_TYPES


def _check_cause(cause: object) -> None:
    # None is "no cause" (Go's nil): cause(ctx) is then ctx.err().
    if cause is not None and not isinstance(cause, BaseException):
        raise TypeError(_rules.CTX_CAUSE_TYPE)


def _seconds(value: object, name: str) -> float:
    """A real number of seconds as a float (the rules of cysync's timeouts)."""
    if isinstance(value, (int, float)):  # bool is an int
        seconds = float(value)
    else:
        kind = type(value)
        if isinstance(value, (str, bytes, bytearray)) or not (
            hasattr(kind, "__float__") or hasattr(kind, "__index__")
        ):
            raise TypeError(f"{name} must be a number")
        seconds = float(value)  # type: ignore[arg-type]  # Decimal, Fraction, numpy
    if seconds != seconds:
        raise ValueError(f"{name} must not be NaN")
    return seconds


# --- done() ---------------------------------------------------------------------


def _new_done() -> _ContextDone:
    """A new ``done()`` event: the pure Event (``cysync.pure._ContextDone``,
    read-only for users; the context sets it with ``_fire()``). Imported on
    first use: cysync.pure imports this module."""
    global _done_cls
    if _done_cls is None:
        from .pure import _ContextDone

        _done_cls = _ContextDone
    done: _ContextDone = _done_cls()
    return done


_done_cls: Any = None
_bg_done_lock = threading.Lock()


# --- the shared timer thread ----------------------------------------------------


class _TimerCall:
    """A heap entry's target that is a plain callback (``call_at``), not a context."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn


class _Timer:
    """One daemon thread that ends every context whose deadline passes, and
    runs the callbacks given to ``call_at`` when theirs does.

    Entries are lists ``[deadline, seq, target]``: ``target`` is a weakref to
    the context, or a ``_TimerCall``, or None once the entry is dead (its
    context was cancelled, or the timer already fired it). Lists compare by
    deadline, then by the unique seq, so the target is never compared.
    """

    _MIN_COMPACT = 1024  # never compact a heap smaller than this

    def __init__(self) -> None:
        self._reinit()
        self._heap: list[list[Any]] = []
        self._seq = 0

    def _reinit(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._dead = 0  # dead entries still in the heap
        self._compact_at = self._MIN_COMPACT

    def schedule(self, ctx: Context, deadline: float) -> list[Any]:
        """Add a deadline for `ctx`; returns the entry, for ``unschedule``."""
        ref = weakref.ref(ctx)  # outside the lock: may run a collection
        return self._push(deadline, ref)

    def call_at(self, deadline: float, fn: Callable[[], object]) -> list[Any]:
        """Run ``fn()`` in the timer thread once `deadline` (``time.monotonic()``
        seconds) has passed; returns the entry, for ``unschedule``.

        `fn` should be quick: the contexts' deadlines wait while it runs. An
        exception it raises goes to ``sys.excepthook``, and the timer goes on.
        """
        return self._push(deadline, _TimerCall(fn))

    def _push(self, deadline: float, target: Any) -> list[Any]:
        with self._lock:
            self._seq += 1
            entry = [deadline, self._seq, target]
            heapq.heappush(self._heap, entry)
            if len(self._heap) >= self._compact_at:
                self._compact()
            if self._thread is None:
                self._start()
            elif self._heap[0] is entry:
                self._cond.notify()  # the thread sleeps until a later deadline
        return entry

    def unschedule(self, entry: list[Any]) -> None:
        """Mark a cancelled context's entry dead (lazy deletion)."""
        with self._lock:
            if entry[2] is None:
                return  # already fired or compacted away
            entry[2] = None
            self._dead += 1
            if self._dead * 2 > len(self._heap) and len(self._heap) >= 64:
                self._compact()

    def _compact(self) -> None:
        # Lock held. Drop dead entries and those whose context was collected
        # or has ended; then allow the heap to double before doing it again.
        live = []
        for entry in self._heap:
            ref = entry[2]
            if ref is None:
                continue
            if type(ref) is _TimerCall:
                live.append(entry)  # a callback stays until it has run
                continue
            ctx = ref()
            if ctx is None or ctx.err() is not None:
                entry[2] = None
                continue
            live.append(entry)
        ctx = None
        heapq.heapify(live)
        self._heap = live
        self._dead = 0
        self._compact_at = max(self._MIN_COMPACT, 2 * len(live))

    def _start(self) -> None:
        # Lock held.
        thread = threading.Thread(target=self._run, name="cysync-context-timer", daemon=True)
        thread.start()
        self._thread = thread

    def _run(self) -> None:
        with self._lock:
            while True:
                heap = self._heap
                now = _monotonic()
                due = []
                while heap and (heap[0][2] is None or heap[0][0] <= now):
                    entry = heapq.heappop(heap)
                    if entry[2] is None:
                        self._dead -= 1
                    else:
                        due.append(entry[2])
                        entry[2] = None
                if due:
                    self._lock.release()
                    try:
                        for ref in due:
                            if type(ref) is _TimerCall:
                                self._call(ref)
                                continue
                            ctx = ref()
                            if ctx is not None:
                                try:
                                    ctx._deadline_passed()
                                except Exception:  # noqa: BLE001 - keep serving the others
                                    sys.excepthook(*sys.exc_info())
                            del ctx
                        del ref  # what a callback holds is freed now, not at the next deadline
                    finally:
                        self._lock.acquire()
                    continue
                if heap:
                    self._cond.wait(min(heap[0][0] - now, threading.TIMEOUT_MAX))
                else:
                    self._cond.wait()

    @staticmethod
    def _call(call: _TimerCall) -> None:
        # Unlike a context's cancel, a callback is anyone's code: nothing it
        # raises, not even SystemExit, may end the one timer thread.
        try:
            call.fn()
        except BaseException:  # noqa: BLE001 - keep serving the others
            sys.excepthook(*sys.exc_info())

    def thread_count(self) -> int:
        """How many timer threads this process runs (0 or 1); for tests."""
        thread = self._thread
        return int(thread is not None and thread.is_alive())

    def _after_fork_in_child(self) -> None:
        # The thread did not survive the fork; its lock may be held by it.
        self._reinit()
        if self._heap:
            try:
                with self._lock:
                    self._compact()
                    if self._heap:
                        self._start()
            except Exception:  # noqa: BLE001 - the next schedule() retries
                self._thread = None


_TIMER = _Timer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_TIMER._after_fork_in_child)


# --- contexts -------------------------------------------------------------------


class Context(metaclass=abc.ABCMeta):
    """Go's context.Context: a cancellation signal, a deadline and values,
    passed down a tree of calls.

    Made only by ``background()``, ``with_cancel()``, ``with_timeout()``,
    ``with_deadline()`` and ``with_value()``; this class is the type to test
    with ``isinstance`` and to annotate with.

    - ``done()``: an Event-like object (``is_set()``, ``wait(timeout=None)``),
      set once the context has ended; the same object on every call.
    - ``err()``: None while the context is active, then a ``Canceled`` or
      ``DeadlineExceeded`` instance, the same one on every call.
    - ``deadline()``: when the context will end by itself, in
      ``time.monotonic()`` seconds, or None.
    - ``value(key)``: the value bound to `key` by ``with_value`` on this
      context or its nearest ancestor that has one, or None.

    Every blocking wait of cysync takes a context as ``ctx=`` and raises
    ``ctx.err()`` when the context ends first.

    Raises:
        TypeError: on ``Context()``: contexts are made by the functions above.

    Example:
        ```python
        ctx, cancel = with_timeout(background(), 2.0)
        try:
            sem.acquire(ctx=ctx)      # raises DeadlineExceeded after 2 s
        finally:
            cancel()
        ```
    """

    __slots__ = ("_parent", "_ctl", "__weakref__")

    _parent: Context | None
    # The context that owns this one's cancellation: itself for a cancel
    # context and for background, the nearest such ancestor for a value context.
    _ctl: _CancelContext | _BackgroundContext

    def __new__(cls, *args: object, **kwargs: object) -> Context:
        if cls is Context:
            raise TypeError(
                "cysync.Context cannot be created directly: use background(), with_cancel(), "
                "with_timeout(), with_deadline() or with_value()"
            )
        return object.__new__(cls)

    def done(self) -> _ContextDone:
        """Go's ``ctx.Done()``: an Event-like object set once this context has ended.

        Returns:
            The same read-only object on every call, with ``is_set()`` and
            ``wait(timeout=None) -> bool``.
        """
        return self._ctl.done()

    def err(self) -> ContextError | None:
        """Go's ``ctx.Err()``: why this context ended, if it has.

        Returns:
            None while the context is active; then the ``Canceled`` or
            ``DeadlineExceeded`` instance it ended with, the same one on every call.
        """
        return self._ctl._err

    def deadline(self) -> float | None:
        """Go's ``ctx.Deadline()``: when this context ends by itself.

        Returns:
            A ``time.monotonic()`` value (its own deadline or the nearest
            ancestor's, whichever is earlier), or None if it has none.
        """
        return self._ctl._deadline

    def value(self, key: Hashable) -> Any:
        """Go's ``ctx.Value(key)``: the value bound to `key` here or by the nearest ancestor.

        Keys match when they are the same object, or of the same type and
        equal (``1`` and ``1.0`` are different keys, as in Go).

        Args:
            key: the key given to ``with_value``.

        Returns:
            The value of the nearest ``with_value(..., key, value)`` up the
            tree, or None if there is none.
        """
        ctx: Context | None = self
        while ctx is not None:
            if type(ctx) is _ValueContext:
                k = ctx._key
                if k is key or (type(k) is type(key) and k == key):
                    return ctx._value
            ctx = ctx._parent
        return None

    # Private hooks for the primitives' waits (see the module docstring).

    def _add_waker(self, fn: Callable[[], object]) -> bool:
        return self._ctl._add_waker(fn)

    def _remove_waker(self, fn: Callable[[], object]) -> None:
        self._ctl._remove_waker(fn)

    def _c_token(self, token_cls: Callable[[], Any]) -> Any:
        return self._ctl._c_token(token_cls)

    def _expire(self) -> None:
        self._ctl._expire()

    def _explicit_cause(self) -> BaseException | None:
        # The cause given to the cancel that ended it, None if none (or live):
        # what a child in the other implementation inherits.
        ctl = self._ctl
        if ctl is _BACKGROUND or ctl._err is None:
            return None
        return ctl._cause

    def _describe(self) -> str:
        ctl = self._ctl
        err = ctl._err
        if err is not None:
            return f"done: {err}"
        if ctl is _BACKGROUND:
            return "background"
        d = ctl._deadline
        if d is None:
            return "active"
        return f"deadline in {d - _monotonic():.3g}s"

    def __repr__(self) -> str:
        return f"<cysync.Context at {id(self):#x}: {self._describe()}>"


class _BackgroundContext(Context):
    """The root context: never cancelled, no deadline, no values."""

    __slots__ = ("_done",)

    _err = None
    _deadline = None

    def __init__(self) -> None:
        self._parent = None
        self._ctl = self
        self._done: _ContextDone | None = None  # made on first use, never set

    def done(self) -> _ContextDone:
        done = self._done
        if done is None:
            with _bg_done_lock:
                done = self._done
                if done is None:
                    done = self._done = _new_done()
        return done

    def _adopt(self, child: _CancelContext) -> None:
        pass  # background never cancels: no need to know its children

    def _add_waker(self, fn: Callable[[], object]) -> bool:
        return True  # registered, and never called

    def _remove_waker(self, fn: Callable[[], object]) -> None:
        pass

    def _c_token(self, token_cls: Callable[[], Any]) -> None:
        return None

    def _expire(self) -> None:
        pass

    def __reduce__(self) -> tuple[Callable[[], Context], tuple[()]]:
        return (background, ())  # copy and pickle give back the singleton


class _ChildRef(weakref.ref):  # type: ignore[type-arg]
    """A parent's weak reference to a child; the callback removes the entry."""

    __slots__ = ("registry", "key")
    registry: dict[int, _ChildRef]  # the parent's children
    key: int  # this child's key in it


def _drop_child(ref: _ChildRef) -> None:
    # Called when a child is collected without having been cancelled. Takes no
    # lock: a collection can run anywhere, even in a thread holding the
    # parent's lock. dict.pop is atomic (and a detached dict is harmless).
    ref.registry.pop(ref.key, None)


class _CancelContext(Context):
    """A context with its own cancellation (with_cancel/with_timeout/with_deadline)."""

    __slots__ = (
        "_lock",
        "_err",
        "_cause",  # the cause it ended with, None for "its err()" (Go 1.20)
        "_dl_cause",  # the cause its own deadline ends it with (with_*_cause)
        "_deadline",
        "_own_deadline",  # the deadline is this context's, not inherited
        "_children",  # {key: _ChildRef}, None once cancelled
        "_next_key",
        "_wakers",  # {fn: registrations}, None once cancelled
        "_token",  # the C token, made on first use
        "_done",  # the done() event, made on first use
        "_timer",  # the timer heap entry
        "_registry",  # the parent's children dict, and our key in it
        "_key",
    )

    def __init__(self, parent: Context, deadline: float | None) -> None:
        self._parent = parent
        self._ctl = self
        self._lock = threading.Lock()
        self._err: ContextError | None = None
        self._cause: BaseException | None = None
        self._dl_cause: BaseException | None = None
        parent_deadline: float | None = parent._ctl._deadline
        self._own_deadline = deadline is not None and (parent_deadline is None or deadline < parent_deadline)
        self._deadline: float | None = deadline if self._own_deadline else parent_deadline
        self._children: dict[int, _ChildRef] | None = {}
        self._next_key = 0
        self._wakers: dict[Callable[[], object], int] | None = None
        self._token: Any = None
        self._done: _ContextDone | None = None
        self._timer: list[Any] | None = None
        self._registry: dict[int, _ChildRef] | None = None
        self._key = 0

    def _start(self) -> None:
        """Join the parent's tree and the timer (after __init__)."""
        self._parent._ctl._adopt(self)  # type: ignore[union-attr]
        if not self._own_deadline:
            return
        deadline = self._deadline
        if deadline <= _monotonic():  # type: ignore[operator]
            self._cancel(DeadlineExceeded, self._dl_cause)  # born cancelled
            return
        entry = _TIMER.schedule(self, deadline)  # type: ignore[arg-type]
        with self._lock:
            if self._err is None:
                self._timer = entry
                return
        _TIMER.unschedule(entry)  # cancelled meanwhile

    def done(self) -> _ContextDone:
        done = self._done
        if done is None:
            with self._lock:
                done = self._done
                if done is None:
                    done = _new_done()
                    if self._err is not None:
                        done._fire()
                    self._done = done
        return done

    def _deadline_passed(self) -> None:
        # The timer's hook: our own deadline passed.
        self._cancel(DeadlineExceeded, self._dl_cause)

    def _adopt(self, child: _CancelContext) -> None:
        # Register `child`, or cancel it at once if we have ended.
        ref = _ChildRef(child, _drop_child)  # outside the lock: may run a collection
        with self._lock:
            err = self._err
            if err is None:
                children = self._children
                assert children is not None
                self._next_key += 1
                key = self._next_key
                ref.registry = children
                ref.key = key
                children[key] = ref
                child._registry = children
                child._key = key
                return
        child._cancel(type(err), self._cause)

    def _cancel(self, err_cls: type[ContextError], cause: BaseException | None = None) -> None:
        """End this context and its descendants with a new `err_cls()` each,
        and `cause` (None: each one's own error) as what ``cause()`` tells
        (idempotent: a context that has ended keeps its error and cause)."""
        pending: list[_CancelContext] = [self]
        failure: BaseException | None = None  # from a waker: raised once all is done
        while pending:
            ctx = pending.pop()
            with ctx._lock:
                if ctx._err is not None:
                    continue
                ctx._err = err_cls()
                ctx._cause = cause
                children, ctx._children = ctx._children, None
                wakers, ctx._wakers = ctx._wakers, None
                token = ctx._token
                done = ctx._done
                timer, ctx._timer = ctx._timer, None
                registry, ctx._registry = ctx._registry, None
            # err() is set: now wake whoever waits, C waits first.
            if token is not None:
                token.fire()
            if done is not None:
                done._fire()
            if wakers:
                for fn in wakers:
                    try:
                        fn()
                    except BaseException as exc:  # noqa: BLE001 - the tree must end whole
                        if failure is None:
                            failure = exc
            if timer is not None:
                _TIMER.unschedule(timer)
            if registry is not None:
                registry.pop(ctx._key, None)  # leave the parent
            while children:
                try:
                    _, ref = children.popitem()
                except KeyError:  # emptied by a weakref callback meanwhile
                    break
                child = ref()
                if child is not None:
                    pending.append(child)
            del ctx, children
        if failure is not None:
            try:
                raise failure
            finally:
                failure = None

    def _add_waker(self, fn: Callable[[], object]) -> bool:
        with self._lock:
            if self._err is not None:
                return False
            wakers = self._wakers
            if wakers is None:
                wakers = self._wakers = {}
            wakers[fn] = wakers.get(fn, 0) + 1
            return True

    def _remove_waker(self, fn: Callable[[], object]) -> None:
        with self._lock:
            wakers = self._wakers
            if wakers is None:
                return
            n = wakers.get(fn, 0) - 1
            if n > 0:
                wakers[fn] = n
            else:
                wakers.pop(fn, None)

    def _c_token(self, token_cls: Callable[[], Any]) -> Any:
        token = self._token
        if token is not None:
            return token
        with self._lock:
            token = self._token
            if token is not None:
                return token
            token = self._token = token_cls()
            fire = self._err is not None
        if fire:  # ended before any C wait asked: born fired
            token.fire()
        return token

    def _expire(self) -> None:
        # A wait saw the deadline pass before the timer thread fired it. The
        # deadline may be an ancestor's: expire the context that owns it,
        # which ends this one too.
        ctx: Context | None = self
        while ctx is not None:
            ctl = ctx._ctl
            if ctl is _BACKGROUND or ctl._err is not None:
                return
            d = ctl._deadline
            if d is None or _monotonic() < d:
                return
            if ctl._own_deadline:  # type: ignore[union-attr]
                ctl._cancel(DeadlineExceeded, ctl._dl_cause)  # type: ignore[union-attr]
                return
            ctx = ctl._parent


class _ValueContext(Context):
    """A context carrying one key/value pair; cancelled with its parent."""

    __slots__ = ("_key", "_value")

    def __init__(self, parent: Context, key: Hashable, value: Any) -> None:
        self._parent = parent
        self._ctl = parent._ctl
        self._key = key
        self._value = value

    def __repr__(self) -> str:
        return f"<cysync.Context at {id(self):#x}: {self._describe()}, value {self._key!r}>"


class _CancelFunc:
    """The ``cancel`` of with_cancel/with_timeout/with_deadline: ``cancel()``
    ends its context with Canceled and returns None. Idempotent and
    thread-safe; keeps the context alive."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: _CancelContext) -> None:
        self._ctx = ctx

    def __call__(self) -> None:
        self._ctx._cancel(Canceled)

    def __repr__(self) -> str:
        return f"<cysync cancel function of {self._ctx!r}>"


class _CancelCauseFunc(_CancelFunc):
    """The ``cancel`` of with_cancel_cause: ``cancel(cause=None)`` ends its
    context with Canceled, and `cause` (an exception instance) as what
    ``cause(ctx)`` tells; the first call's cause wins (Go's CancelCauseFunc)."""

    __slots__ = ()

    def __call__(self, cause: BaseException | None = None) -> None:
        _check_cause(cause)
        self._ctx._cancel(Canceled, cause)


class _WithoutCancelContext(Context):
    """without_cancel(parent): the parent's values; never ends, no deadline."""

    __slots__ = ()

    def __init__(self, parent: Context) -> None:
        self._parent = parent  # value() walks up through it
        self._ctl = _BACKGROUND  # done(), err(), deadline(): background's

    def _describe(self) -> str:
        return "without cancel"


# The states of an after_func registration.
_AF_WAITING, _AF_STARTED, _AF_STOPPED = 0, 1, 2


class _AfterFunc:
    """One after_func(ctx, fn): a waker of `ctx` that starts `fn` in a thread
    of its own, unless ``stop()`` came first. Whichever of the two moves the
    state out of _AF_WAITING (under the lock) decides."""

    __slots__ = ("_ctx", "_fn", "_lock", "_state", "__weakref__")

    def __init__(self, ctx: Context, fn: Callable[[], object]) -> None:
        self._ctx = ctx
        self._fn: Callable[[], object] | None = fn
        self._lock = threading.Lock()
        self._state = _AF_WAITING

    def _fire(self) -> None:
        # The context's waker: called once, by the thread that ends it.
        with self._lock:
            if self._state != _AF_WAITING:
                return
            self._state = _AF_STARTED
            fn, self._fn = self._fn, None
        assert fn is not None
        threading.Thread(target=fn, name="cysync-after-func", daemon=True).start()

    def stop(self) -> bool:
        """Keep fn from running: True if this call did (it had not started),
        False if it has started already or stop() was called before."""
        with self._lock:
            if self._state != _AF_WAITING:
                return False
            self._state = _AF_STOPPED
            self._fn = None  # a closure can be freed at once
        self._ctx._remove_waker(self._fire)
        return True

    def __repr__(self) -> str:
        state = ("waiting", "started", "stopped")[self._state]
        return f"<cysync after_func stop function: {state}>"


_BACKGROUND = _BackgroundContext()


# --- the public functions -------------------------------------------------------


def background() -> Context:
    """The root context (Go's ``context.Background()``).

    Returns:
        The same object on every call: never cancelled, no deadline, no values.
    """
    return _BACKGROUND


def _derive(parent: Context, deadline: float | None) -> tuple[Context, Callable[[], None]]:
    ctx = _CancelContext(parent, deadline)
    ctx._start()
    return ctx, _CancelFunc(ctx)


def with_cancel(parent: Context) -> tuple[Context, Callable[[], None]]:
    """A child of `parent` and the function that cancels it (Go's WithCancel).

    ``cancel()`` ends the child and its descendants with ``Canceled``; it is
    idempotent and thread-safe. The child also ends when `parent` does, with
    the same kind of error. Call ``cancel()`` once the child is no longer
    needed (a ``try``/``finally``, or ``defer(cancel)``): it releases the
    child's place in its parent and its timer at once rather than at garbage
    collection or at the deadline.

    Args:
        parent: the context to derive from.

    Returns:
        ``(ctx, cancel)``: the child, and the function of no arguments that
        cancels it.

    Raises:
        TypeError: `parent` is not a Context.

    Example:
        ```python
        root, stop = with_cancel(background())
        # ... hand `root` (or children of it) to the workers' waits ...
        stop()                    # every wait given root or a descendant raises Canceled
        ```
    """
    _check_parent(parent)
    if _foreign(parent):
        return _OTHER["with_cancel"](parent)  # type: ignore[no-any-return]
    return _derive(parent, None)


def with_deadline(parent: Context, deadline: float) -> tuple[Context, Callable[[], None]]:
    """A child of `parent` that ends with ``DeadlineExceeded`` at `deadline`
    (``time.monotonic()`` seconds), and its cancel function (Go's WithDeadline).

    If `parent` ends earlier, the child ends with it; a deadline later than the
    parent's is the parent's. A deadline already past gives a child that has
    ended already.

    Args:
        parent: the context to derive from.
        deadline: a ``time.monotonic()`` value in seconds (an int, a float or
            any real number); more than about 146 years away (``inf``) means
            no deadline of its own.

    Returns:
        ``(ctx, cancel)``: the child, and the function of no arguments that
        cancels it.

    Raises:
        TypeError: `parent` is not a Context, or `deadline` is not a number.
        ValueError: `deadline` is NaN.
    """
    _check_parent(parent)
    if _foreign(parent):
        return _OTHER["with_deadline"](parent, deadline)  # type: ignore[no-any-return]
    d = _seconds(deadline, "deadline")
    if d - _monotonic() > _FOREVER_SECONDS:  # also inf: no deadline
        return _derive(parent, None)
    return _derive(parent, d)


def with_timeout(parent: Context, seconds: float) -> tuple[Context, Callable[[], None]]:
    """``with_deadline(parent, time.monotonic() + seconds)`` (Go's WithTimeout).

    ``seconds <= 0`` gives a child that has ended already.

    Args:
        parent: the context to derive from.
        seconds: the time from now (an int, a float or any real number);
            more than about 146 years (``inf``) means no deadline of its own.

    Returns:
        ``(ctx, cancel)``: the child, and the function of no arguments that
        cancels it. Call ``cancel()`` when done, even if the deadline passed.

    Raises:
        TypeError: `parent` is not a Context, or `seconds` is not a number.
        ValueError: `seconds` is NaN.

    Example:
        ```python
        ctx, cancel = with_timeout(background(), 2.0)
        try:
            wg.wait(ctx=ctx)      # raises DeadlineExceeded after 2 s
        finally:
            cancel()
        ```
    """
    _check_parent(parent)
    if _foreign(parent):
        return _OTHER["with_timeout"](parent, seconds)  # type: ignore[no-any-return]
    s = _seconds(seconds, "seconds")
    if s > _FOREVER_SECONDS:  # also inf: no deadline
        return _derive(parent, None)
    return _derive(parent, _monotonic() + s)


def with_cancel_cause(parent: Context) -> tuple[Context, Callable[..., None]]:
    """Like ``with_cancel``, but ``cancel(cause=None)`` records why (Go 1.20's
    WithCancelCause).

    ``cancel(cause)`` ends the child and its descendants with ``Canceled`` as
    ``err()``, and `cause` as what ``cause(ctx)`` returns for each of them;
    the first call's cause wins. ``cancel()`` without a cause leaves
    ``cause(ctx)`` equal to ``ctx.err()``.

    Args:
        parent: the context to derive from.

    Returns:
        ``(ctx, cancel)``: the child, and ``cancel(cause=None)``.

    Raises:
        TypeError: `parent` is not a Context; ``cancel`` raises it, leaving
            the context unchanged, when `cause` is not an exception instance.

    Example:
        ```python
        ctx, cancel = with_cancel_cause(background())
        cancel(ConnectionError("peer went away"))
        ctx.err()                 # Canceled()
        cause(ctx)                # ConnectionError('peer went away')
        ```
    """
    _check_parent(parent)
    if _foreign(parent):
        return _OTHER["with_cancel_cause"](parent)  # type: ignore[no-any-return]
    ctx = _CancelContext(parent, None)
    ctx._start()
    return ctx, _CancelCauseFunc(ctx)


def _derive_cause(
    parent: Context, deadline: float | None, cause: BaseException | None
) -> tuple[Context, Callable[[], None]]:
    ctx = _CancelContext(parent, deadline)
    if ctx._own_deadline:  # else the parent's deadline comes first: not ours to tell
        ctx._dl_cause = cause
    ctx._start()
    return ctx, _CancelFunc(ctx)


def with_deadline_cause(
    parent: Context, deadline: float, cause: BaseException | None
) -> tuple[Context, Callable[[], None]]:
    """Like ``with_deadline``, but when the deadline ends the context,
    ``cause(ctx)`` is `cause` (Go 1.21's WithDeadlineCause).

    ``err()`` is still ``DeadlineExceeded``. If the parent's deadline comes
    first, the child's own deadline never ends it and `cause` is not used;
    ``cancel()`` ends it with ``Canceled`` and no cause.

    Raises:
        TypeError: `parent` is not a Context, `deadline` is not a number or
            `cause` is not an exception instance (None: no cause).
        ValueError: `deadline` is NaN.
    """
    _check_parent(parent)
    if _foreign(parent):
        return _OTHER["with_deadline_cause"](parent, deadline, cause)  # type: ignore[no-any-return]
    _check_cause(cause)
    d = _seconds(deadline, "deadline")
    if d - _monotonic() > _FOREVER_SECONDS:
        return _derive_cause(parent, None, cause)
    return _derive_cause(parent, d, cause)


def with_timeout_cause(
    parent: Context, seconds: float, cause: BaseException | None
) -> tuple[Context, Callable[[], None]]:
    """``with_deadline_cause(parent, time.monotonic() + seconds, cause)``
    (Go 1.21's WithTimeoutCause).

    Example:
        ```python
        ctx, cancel = with_timeout_cause(background(), 0.5, TimeoutError("slow backend"))
        ctx.done().wait()
        ctx.err()                 # DeadlineExceeded()
        cause(ctx)                # TimeoutError('slow backend')
        ```
    """
    _check_parent(parent)
    if _foreign(parent):
        return _OTHER["with_timeout_cause"](parent, seconds, cause)  # type: ignore[no-any-return]
    _check_cause(cause)
    s = _seconds(seconds, "seconds")
    if s > _FOREVER_SECONDS:
        return _derive_cause(parent, None, cause)
    return _derive_cause(parent, _monotonic() + s, cause)


def cause(ctx: Context) -> BaseException | None:
    """Why `ctx` ended (Go 1.20's context.Cause).

    Returns:
        None while `ctx` has not ended; then the cause given to the cancel of
        ``with_cancel_cause`` or to ``with_*_cause`` whose end reached `ctx`
        (descendants inherit it), else the very object ``ctx.err()`` returns.

    Raises:
        TypeError: `ctx` is not a Context.
    """
    if not isinstance(ctx, Context):
        raise TypeError(_rules.CTX_TYPE.replace(" or None", ""))
    if type(ctx) not in _PURE_TYPES:  # a context of the C implementation
        err = ctx.err()  # first: the cause is written before the error
        if err is None:
            return None
        c = ctx._explicit_cause()
        return err if c is None else c
    ctl = ctx._ctl
    if ctl is _BACKGROUND:
        return None
    with ctl._lock:  # type: ignore[union-attr]
        err = ctl._err
        c = ctl._cause  # type: ignore[union-attr]
    return err if c is None else c


def after_func(ctx: Context, fn: Callable[[], object]) -> Callable[[], bool]:
    """Run ``fn()`` once, in a thread of its own, when `ctx` ends (Go 1.21's
    AfterFunc). No thread exists before that; if `ctx` has ended already,
    the thread starts at once.

    Returns:
        ``stop() -> bool``: True if it kept `fn` from starting (then `fn`
        never runs); False if `fn` has started already or ``stop()`` was
        called before. On a context that can never end, ``stop()`` returns
        True once, then False.

    Raises:
        TypeError: `ctx` is not a Context, or `fn` is not callable.

    Example:
        ```python
        ctx, cancel = with_cancel(background())
        stop = after_func(ctx, conn.close)   # close the connection when ctx ends
        ...
        if stop():                # done before ctx ended: conn stays open
            ...
        ```
    """
    if not isinstance(ctx, Context):
        raise TypeError(_rules.CTX_TYPE.replace(" or None", ""))
    if not callable(fn):
        raise TypeError(_rules.FN_NOT_CALLABLE)
    af = _AfterFunc(ctx, fn)
    if not ctx._add_waker(af._fire):
        af._fire()  # ended already
    return af.stop


def without_cancel(parent: Context) -> Context:
    """A context with `parent`'s values that never ends and has no
    deadline, whatever `parent` does (Go 1.21's WithoutCancel).

    Raises:
        TypeError: `parent` is not a Context.

    Example:
        ```python
        audit = without_cancel(request_ctx)  # outlives the request, keeps its values
        ```
    """
    _check_parent(parent)
    if _foreign(parent):
        return _OTHER["without_cancel"](parent)  # type: ignore[no-any-return]
    return _WithoutCancelContext(parent)


def with_value(parent: Context, key: Hashable, value: Any) -> Context:
    """A child of `parent` where ``value(key)`` is `value` (Go's WithValue).

    `key` must be hashable. To avoid clashes between libraries, use keys of a
    type of your own (an ``object()`` sentinel, or an enum) rather than strings.

    Args:
        parent: the context to derive from; the child ends when it does.
        key: any hashable object.
        value: any object.

    Returns:
        The child context (it has no cancel function of its own).

    Raises:
        TypeError: `parent` is not a Context, or `key` is not hashable.

    Example:
        ```python
        USER = object()
        ctx = with_value(background(), USER, "ada")
        ctx.value(USER)           # "ada"
        ```
    """
    _check_parent(parent)
    if _foreign(parent):
        return _OTHER["with_value"](parent, key, value)  # type: ignore[no-any-return]
    try:
        hash(key)
    except TypeError:
        raise TypeError("key must be hashable") from None
    return _ValueContext(parent, key, value)


# The classes of this implementation: any other Context (registered with
# Context by the C implementation) is asked through its methods and hooks.
_PURE_TYPES = frozenset({_BackgroundContext, _CancelContext, _ValueContext, _WithoutCancelContext})

for _cls in (Context, ContextError, Canceled, DeadlineExceeded):
    _cls.__module__ = "cysync"
del _cls
