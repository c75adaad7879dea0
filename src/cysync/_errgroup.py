"""golang.org/x/sync/errgroup for threads: run tasks, wait, get the first error.

Written once over an implementation's primitives: ``make_errgroup(impl)``
returns an ``ErrGroup`` class whose task counter is ``impl.WaitGroup`` and
whose limit is ``impl.Semaphore``; ``cysync.pure`` and ``cysync._cysync``
each call it with themselves. Like ``cysync._context``, this module must not
import either of them.

::

    with ErrGroup(limit=8) as g:          # wait() on leaving the block
        for url in urls:
            g.go(fetch, url, ctx=g.ctx)   # g.ctx ends at the first error
    # here every task has finished; the first exception a task raised (if any)
    # has been raised by the with statement

Decisions (Go's behaviour, where Python has a choice to make):

- Tasks run on a pool of worker threads owned by the group: ``go()`` hands
  the task to an idle worker if there is one, or else starts a new
  (non-daemon) worker. A worker that stays idle for ``IDLE_TIMEOUT`` seconds
  exits; ``wait()`` stops and joins them all once every task has finished, so
  no thread of the group is left running after ``wait()`` returns. A worker
  runs many tasks one after the other: thread-local data outlives a task.
- ``wait()`` raises the first exception (any ``BaseException``) a task raised.
  Each later one is described in a note on that exception
  (``"also raised by another task: ValueError('x')"``, at most ``MAX_NOTES``
  notes, then a count); on Python 3.10, which has no ``add_note``, the notes
  go to the same ``__notes__`` list, which tracebacks there do not print.
  Task exceptions never reach ``threading.excepthook``.
- ``ctx`` is a child of the context given (or of background) and is
  cancelled, with ``Canceled``, by the first exception of a task or when
  ``wait()`` returns, whichever comes first.
- ``limit``: ``go()`` blocks while `limit` tasks are running; ``try_go()``
  returns False instead. None or a negative number means no limit (Go); 0
  means that no task can start (``go()`` blocks for ever, as in Go).
  ``set_limit()`` while tasks are running raises RuntimeError.
- A group is single-use: once ``wait()`` has returned, ``go()`` and
  ``try_go()`` raise RuntimeError; calling ``wait()`` again returns (or
  raises the same exception) again. Tasks may call ``go()`` on their own group
  while ``wait()`` runs; a task calling ``wait()`` on its own group would wait
  for itself, and raises RuntimeError instead.
- As a context manager, leaving the block calls ``wait()``. If the block
  raised, ``ctx`` is cancelled first, the tasks are still waited for, and the
  block's exception propagates, with a note describing a task's exception if
  there was one.
"""

from __future__ import annotations

import itertools
import operator
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import _rules as _R
from . import debug as _dbg
from ._context import Context, background, with_cancel

__all__ = ["make_errgroup"]

#: Seconds an idle worker waits for a new task before it exits.
IDLE_TIMEOUT = 5.0
#: Notes added to the first exception for later ones; the rest are counted.
MAX_NOTES = 10

_INT32_MAX = _R.INT32_MAX
_worker_ids = itertools.count(1)


def _add_note(exc: BaseException, note: str) -> None:
    add_note = getattr(exc, "add_note", None)
    if add_note is not None:  # 3.11+
        add_note(note)
        return
    notes = getattr(exc, "__notes__", None)  # 3.10: the same list, by hand
    if notes is None:
        try:
            exc.__notes__ = notes = []  # type: ignore[attr-defined]
        except AttributeError:  # an exception type without __dict__
            return
    notes.append(note)


def _check_limit(n: int | None) -> int | None:
    if n is None:
        return None
    n = operator.index(n)
    if n < 0 or n > _INT32_MAX:  # negative: no limit (Go); huge: as good as none
        return None
    return n


class ErrGroupBase:
    """A group of tasks run on threads (golang.org/x/sync/errgroup.Group).

    ``ErrGroup(ctx=None, limit=None)``; ``go(fn, /, *args, **kwargs)`` runs
    ``fn(*args, **kwargs)`` on a worker thread; ``wait()`` waits for every
    task and raises the first exception a task raised; ``ctx`` ends at that
    first exception or when ``wait()`` returns.

    Tasks run on worker threads the group owns and reuses (thread-local data
    may outlive a task); ``wait()`` stops and joins them all, and a worker
    idle for ``IDLE_TIMEOUT`` (5) seconds exits. A group is single-use: after
    ``wait()``, ``go()`` raises RuntimeError. Leaving a ``with`` block calls
    ``wait()``; if the block raised, ``ctx`` is cancelled first, the tasks are
    still waited for, and the block's exception propagates (with a note about
    a task's exception, if any).

    Args:
        ctx: the parent of the group's context; None for ``background()``.
        limit: at most this many tasks run at once (``go()`` blocks,
            ``try_go()`` returns False); None or negative: no limit (Go);
            0: no task can start.

    Raises:
        TypeError: `ctx` is not a Context or None, or `limit` is not an int or None.

    Example:
        ```python
        def fetch_all(urls):
            results = [None] * len(urls)

            def fetch(i, url):
                results[i] = download(url, ctx=g.ctx)    # each task its own slot

            with cysync.ErrGroup(limit=8) as g:          # wait() on leaving the block
                for i, url in enumerate(urls):
                    g.go(fetch, i, url)
            return results              # every task done; the first error raised
        ```
    """

    # The implementation's primitives, set by make_errgroup().
    _WaitGroup: Callable[[], Any]
    _Semaphore: Callable[[int], Any]

    def __init__(self, ctx: Context | None = None, limit: int | None = None) -> None:
        if ctx is None:
            ctx = background()
        elif not isinstance(ctx, Context):
            raise TypeError(_R.CTX_TYPE)
        limit = _check_limit(limit)
        self._ctx, self._cancel = with_cancel(ctx)
        self._lock = threading.Lock()  # guards everything below
        self._wg = self._WaitGroup()  # tasks started and not finished
        self._sem = None if limit is None else self._Semaphore(limit)
        self._limit = limit
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = 0  # idle workers not yet promised a task
        self._workers: set[threading.Thread] = set()  # started and not joined
        self._closed = False  # wait() has returned (or is joining the workers)
        self._joined = threading.Event()  # the workers are gone
        self._error: BaseException | None = None
        self._error_tb: TracebackType | None = None
        self._later_errors = 0
        self._summarized = False

    def __repr__(self) -> str:
        cls = type(self)
        state = f"tasks={self._wg.count}, limit={self._limit}"
        if self._error is not None:
            state += f", error={self._error!r}"
        return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: {state}>"

    @property
    def ctx(self) -> Context:
        """The group's context (Go's ``errgroup.WithContext``): a child of the
        `ctx` given, cancelled by the first exception of a task or when
        ``wait()`` returns. Pass it to the tasks' blocking calls so they stop early."""
        return self._ctx

    def set_limit(self, n: int | None) -> None:
        """Let at most `n` tasks run at once (Go's ``SetLimit``).

        Args:
            n: the limit; None or negative: no limit; 0: no task can start.

        Raises:
            RuntimeError: tasks are running.
            TypeError: `n` is not an int or None.
        """
        n = _check_limit(n)
        with self._lock:
            if self._wg.count != 0:
                raise RuntimeError("set_limit called while tasks are running")
            self._sem = None if n is None else self._Semaphore(n)
            self._limit = n

    def go(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` on a worker thread (Go's ``Go``).

        Blocks while `limit` tasks are running. An exception `fn` raises is
        kept for ``wait()`` (the first one) or noted on it (the later ones),
        and the first one cancels ``ctx``; none reaches ``threading.excepthook``.
        A task may call ``go()`` on its own group.

        Args:
            fn: the task.
            *args: positional arguments for `fn`.
            **kwargs: keyword arguments for `fn`.

        Raises:
            TypeError: `fn` is not callable.
            RuntimeError: ``wait()`` has returned: the group is single-use.
        """
        if not callable(fn):
            raise TypeError(_R.FN_NOT_CALLABLE)
        sem = self._sem
        if sem is not None:
            sem.acquire()
        self._submit(sem, fn, args, kwargs, "go")

    def try_go(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> bool:
        """Like ``go()``, but never blocks (Go's ``TryGo``).

        Args:
            fn: the task.
            *args: positional arguments for `fn`.
            **kwargs: keyword arguments for `fn`.

        Returns:
            True when the task was started, False (at once) when `limit`
            tasks are running.

        Raises:
            TypeError: `fn` is not callable.
            RuntimeError: ``wait()`` has returned: the group is single-use.
        """
        if not callable(fn):
            raise TypeError(_R.FN_NOT_CALLABLE)
        sem = self._sem
        if sem is not None and not sem.acquire(False):
            return False
        self._submit(sem, fn, args, kwargs, "try_go")
        return True

    def _submit(
        self, sem: Any, fn: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], name: str
    ) -> None:
        # The task's unit of `sem` (if any) is held: it is released when the
        # task ends, or here if the task cannot start.
        worker = None
        try:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"ErrGroup.{name} called after wait")
                self._wg.add(1)  # under the lock: wait() cannot close meanwhile
                if self._idle > 0:
                    self._idle -= 1  # promised to this task
                else:
                    # Forget the workers that exited on their idle timeout
                    # (not those another go() has yet to start: ident None).
                    self._workers = {t for t in self._workers if t.ident is None or t.is_alive()}
                    worker = threading.Thread(
                        target=self._work, name=f"ErrGroup-worker-{next(_worker_ids)}", daemon=False
                    )
                    self._workers.add(worker)
                    if _dbg._on:
                        _dbg._go_thread(worker, "ErrGroup")
        except BaseException:
            if sem is not None:
                sem.release()
            raise
        if worker is not None:
            try:
                worker.start()
            except BaseException:
                with self._lock:
                    self._workers.discard(worker)
                self._wg.done()
                if sem is not None:
                    sem.release()
                raise
        self._tasks.put((fn, args, kwargs, sem))

    def _work(self) -> None:
        tasks = self._tasks
        while True:
            try:
                task = tasks.get(timeout=IDLE_TIMEOUT)
            except queue.Empty:
                with self._lock:
                    if self._closed:
                        return  # wait() is joining us
                    if self._idle > 0:  # no task is promised to an idle worker
                        self._idle -= 1
                        return  # (still in _workers: wait() joins it all the same)
                continue
            if task is None:
                return  # sent by wait()
            fn, args, kwargs, sem = task
            task = None
            if _dbg._on:
                _dbg._task_begin(self._wg, fn)
            try:
                fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - for wait()
                self._record(exc)
            finally:
                fn = args = kwargs = None  # free them before wait() returns
                # Idle before the slot is free: a go() that gets the slot
                # must find this worker, not start another.
                with self._lock:
                    self._idle += 1
                if sem is not None:
                    sem.release()
                if _dbg._on:
                    _dbg._task_end()
                self._wg.done()

    def _record(self, exc: BaseException) -> None:
        with self._lock:
            first = self._error
            if first is None:
                self._error = exc
                self._error_tb = exc.__traceback__
            else:
                self._later_errors += 1
                if self._later_errors > MAX_NOTES:
                    return
        if first is None:
            self._cancel()
        else:
            # repr() outside the lock: it is the task's code.
            _add_note(first, f"also raised by another task: {exc!r}")

    def wait(self) -> None:
        """Wait for every task to finish, then stop the workers and cancel ``ctx`` (Go's ``Wait``).

        No thread of the group runs after it returns. Calling it again
        returns (or raises the same exception) again.

        Raises:
            BaseException: the first exception a task raised (any kind,
                ``SystemExit`` included), with a note for each later one (at
                most ``MAX_NOTES`` (10), then a count; on Python 3.10 in
                ``__notes__``, which tracebacks there do not print).
            RuntimeError: called from one of the group's own tasks (it would
                wait for itself).
        """
        me = threading.current_thread()
        with self._lock:
            if me in self._workers:
                raise RuntimeError("ErrGroup.wait called from one of its own tasks")
        while True:
            self._wg.wait()
            with self._lock:
                if self._wg.count == 0:  # no go() slipped in since
                    closing = not self._closed
                    self._closed = True
                    workers = list(self._workers)
                    self._workers.clear()
                    self._idle = 0
                    break
        self._cancel()
        if closing:
            try:
                for _ in workers:
                    self._tasks.put(None)
                for worker in workers:
                    worker.join()
            finally:
                self._joined.set()
        else:
            self._joined.wait()
        with self._lock:
            error = self._error
            if error is not None and not self._summarized:
                self._summarized = True
                more = self._later_errors - MAX_NOTES
                if more > 0:
                    _add_note(error, f"... and {more} more exceptions raised by other tasks")
        if error is not None:
            raise error.with_traceback(self._error_tb)

    def __enter__(self) -> ErrGroupBase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.wait()
            return
        self._cancel()  # the block failed: tell the tasks, then wait for them
        try:
            self.wait()
        except BaseException as task_exc:  # noqa: BLE001 - described on exc
            if task_exc is not exc:
                _add_note(exc, f"an ErrGroup task also raised: {task_exc!r}")
        # exc propagates


def make_errgroup(impl: Any) -> type[ErrGroupBase]:
    """An ErrGroup class over the primitives of `impl` (a module exporting
    WaitGroup and Semaphore, such as cysync.pure or cysync._cysync)."""
    cls = type(
        "ErrGroup",
        (ErrGroupBase,),
        {
            "__doc__": ErrGroupBase.__doc__,
            "_WaitGroup": impl.WaitGroup,
            "_Semaphore": impl.Semaphore,
        },
    )
    cls.__module__ = "cysync"
    cls.__qualname__ = "ErrGroup"
    return cls

