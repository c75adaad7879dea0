"""Go's ``defer`` in pure Python: ``@deferrable`` and ``defer()``.

This is the reference implementation, re-exported by ``cysync.pure``; the C
twin in ``cysync._cysync`` behaves the same way, faster.  ::

    @deferrable
    def worker(wg, sem):
        defer(wg.done)          # runs last
        sem.acquire()
        defer(sem.release)      # runs first
        ...                     # every return and every raise releases both

The contract:

- ``@deferrable`` wraps a plain function (or method).  Each call of the
  wrapper gets its own, initially empty, list of deferred calls, pushed on
  a stack that belongs to the calling thread; recursion and concurrent calls
  from other threads therefore never see each other's deferred calls.
- ``defer(fn, /, *args, **kwargs)`` appends ``fn(*args, **kwargs)`` to the
  list of the innermost deferrable call of the current thread whose body is
  running.  Outside of one it raises ``RuntimeError``.
- When the body returns or raises, its call is taken off the thread's stack
  (a ``defer()`` made by a deferred call goes to the enclosing deferrable
  call, as it would from any code running after the body), then the
  deferred calls run last registered first.  Every one of them runs, even
  when an earlier one raised.
- Exceptions behave exactly as if the body had been written as nested
  ``try``/``finally`` blocks, the first registered call in the outermost
  ``finally``::

      try:
          try:
              <body>
          finally:
              sem.release()
      finally:
          wg.done()

  While a deferred call runs, the exception in flight (the body's, or the
  last one a deferred call raised) is the exception being handled
  (``sys.exc_info()``), so an exception raised by the call gets it as its
  ``__context__`` -- set by the interpreter itself, cycles broken the way
  the interpreter breaks them.  The last exception raised is the one the
  wrapper raises; if no deferred call raises, the body's exception (or its
  return value) comes out unchanged.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from . import _rules as _R

__all__ = ["defer", "deferrable"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: A deferred call: (fn, args, kwargs).
_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _ThreadState(threading.local):
    def __init__(self) -> None:
        # One list of deferred calls per running deferrable call of this
        # thread, innermost last.
        self.stack: list[list[_Call]] = []


_state = _ThreadState()


def deferrable(fn: _F) -> _F:
    """Decorator: inside ``fn``, ``defer()`` registers calls that run when
    ``fn`` returns or raises, last registered first (Go's ``defer``).

    ``fn`` must be a plain callable: generator, coroutine and async generator
    functions are refused with ``TypeError``, because their body runs after
    the call has returned (use ``try``/``finally`` or ``with`` there).  The
    wrapper carries ``fn``'s metadata (``functools.wraps``) and, being a
    function, binds as a method; with ``staticmethod``/``classmethod`` put
    ``@deferrable`` under them.

    The deferred calls run as nested ``try``/``finally`` blocks would, the
    first registered in the outermost: every one runs even if an earlier one
    raised, each sees the exception in flight as the handled one (so an
    exception it raises gets that one as ``__context__``), the last exception
    raised is the one the call raises, and when none raises the function's own
    exception or return value comes out unchanged.

    Args:
        fn: the function (or method) to wrap.

    Returns:
        The wrapper: called like ``fn``, it returns what ``fn`` returns.

    Raises:
        TypeError: `fn` is not callable, or is a generator, coroutine or async
            generator function.

    Example:
        ```python
        @deferrable
        def handle(request):
            if not sem.acquire(request.cost, timeout=1.0):
                return "busy"
            defer(sem.release, request.cost)   # Go: defer sem.Release(n)
            conn = pool.get()
            defer(pool.put, conn)              # runs first
            return conn.send(request)          # both released, even if send() raises
        ```
    """
    if not callable(fn):
        raise TypeError(_R.FN_NOT_CALLABLE)
    if inspect.isgeneratorfunction(fn):
        raise TypeError(_R.DEFERRABLE_GENERATOR)
    if inspect.iscoroutinefunction(fn):
        raise TypeError(_R.DEFERRABLE_COROUTINE)
    if inspect.isasyncgenfunction(fn):
        raise TypeError(_R.DEFERRABLE_ASYNCGEN)

    @functools.wraps(fn)
    def call_with_defer(*args: Any, **kwargs: Any) -> Any:
        stack = _state.stack
        calls: list[_Call] = []
        stack.append(calls)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - raised after the deferred calls
            error: BaseException | None = exc
        else:
            error = None
        finally:
            stack.pop()
        if calls:
            error = _run_deferred(calls, error)
        if error is None:
            return result
        try:
            _raise_as_is(error)
        finally:
            error = None  # no cycle through this frame's traceback entry

    return call_with_defer  # type: ignore[return-value]


def defer(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` when the innermost running ``@deferrable``
    call of this thread returns or raises; calls run last registered first.

    The arguments are taken now, as in Go. Recursive calls and calls in
    other threads each have their own list. A deferred call that defers
    joins the list of an enclosing ``@deferrable`` call that is still running.

    Args:
        fn: what to call.
        *args: positional arguments for `fn`, taken now.
        **kwargs: keyword arguments for `fn`, taken now.

    Raises:
        RuntimeError: no ``@deferrable`` call of this thread is running
            (``"defer() called outside a @deferrable function"``).
        TypeError: `fn` is not callable.
    """
    stack = _state.stack
    if not stack:
        raise RuntimeError(_R.DEFER_OUTSIDE)
    if not callable(fn):
        raise TypeError(_R.FN_NOT_CALLABLE)
    stack[-1].append((fn, args, kwargs))


# --- running the deferred calls ----------------------------------------------
#
# Nested finally blocks cannot be written for a number of calls known only at
# run time, and a recursive helper would hit the recursion limit with a few
# thousand deferred calls.  So the calls run in a loop, and the one thing the
# finally blocks would give them -- the exception in flight being the
# exception handled while they run -- is obtained by raising that exception
# and catching it: inside the ``except`` block it is the handled exception.
# A ``raise`` chains, which finally blocks do not: it sets the exception's
# ``__context__`` to the exception being handled and cuts any link to it from
# that exception's chain.  _raise_unchained() raises while a fresh exception
# with no context is handled, so nothing is cut, and the callers put
# ``__context__`` (and ``__traceback__``, which the raise extends) back.


class _Marker(Exception):
    """Handled while _raise_unchained() raises: a chain of one exception."""


def _raise_unchained(error: BaseException) -> NoReturn:
    """Raise ``error``; only its ``__context__`` and traceback change."""
    try:
        raise _Marker
    except _Marker as marker:
        marker.__context__ = None
        raise error  # noqa: B904 - chains to the marker, undone by the caller


def _run_deferred(calls: list[_Call], error: BaseException | None) -> BaseException | None:
    """Run ``calls`` last to first, as nested finally blocks would while
    ``error`` (None: the body returned) propagates; return the exception that
    propagates after the last one (None: none)."""
    while calls:
        if error is None:
            fn, args, kwargs = calls.pop()
            try:
                fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - propagates as from a finally block
                error = exc
        else:
            error = _run_while_handling(calls, error)
    return error


def _run_while_handling(calls: list[_Call], error: BaseException) -> BaseException:
    """Run ``calls`` last to first with ``error`` as the handled exception
    until one raises; return the exception then in flight (``error`` if none
    raised)."""
    context, traceback = error.__context__, error.__traceback__
    try:
        _raise_unchained(error)
    except BaseException:  # noqa: BLE001 - `error`, raised to be the handled exception
        error.__context__, error.__traceback__ = context, traceback
        while calls:
            fn, args, kwargs = calls.pop()
            try:
                fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - propagates as from a finally block
                return exc
        return error


def _raise_as_is(error: BaseException) -> None:
    """Raise ``error`` with its ``__context__`` and traceback untouched, as a
    finally block re-raises the exception in flight (``raise error`` would
    chain it to the exception the caller is handling)."""
    context, traceback = error.__context__, error.__traceback__
    try:
        _raise_unchained(error)
    except BaseException:
        error.__context__, error.__traceback__ = context, traceback
        raise  # a bare raise re-raises the handled exception without chaining
