"""golang.org/x/sync/errgroup for threads: run tasks, wait, get the first error.

Written once over an implementation's primitives: ``make_errgroup(impl)``
returns an ``ErrGroup`` class whose task counter is ``impl.WaitGroup`` and
whose tasks reach the workers through unbuffered ``impl.Chan`` channels;
``cysync.pure`` and ``cysync._cysync`` each call it with themselves. Like
``cysync._context``, this module must not import either of them.

::

    with ErrGroup(limit=8) as g:          # wait() on leaving the block
        for url in urls:
            g.go(fetch, url, ctx=g.ctx)   # g.ctx ends at the first error
    # here every task has finished; the first exception a task raised (if any)
    # has been raised by the with statement

Decisions (Go's behaviour, where Python has a choice to make):

- Tasks run on a pool of worker threads owned by the group: ``go()`` hands
  the task to the most recently idle worker, which waits in ``recv`` on its
  own unbuffered channel (likely still spinning there: with the C channel
  that hand-off costs no wake-up), or else starts a new (non-daemon)
  worker, as long as fewer than `limit` exist, or else sends it on a shared
  channel where the next worker to finish takes it. So `limit` is the number
  of workers: at most `limit` tasks run at once, with no semaphore per task.
  A worker that stays idle for ``IDLE_TIMEOUT`` seconds exits; ``wait()``
  closes the channels and joins them all once every task has finished, so
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
import os
import threading
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import _rules as _R
from . import debug as _dbg
from ._context import Context
from ._errors import ChanClosed

__all__ = ["make_errgroup"]

#: Seconds an idle worker waits for a new task before it exits.
IDLE_TIMEOUT = 5.0
#: Notes added to the first exception for later ones; the rest are counted.
MAX_NOTES = 10

_INT32_MAX = _R.INT32_MAX
_UNLIMITED = 1 << 62  # no limit: as many workers as tasks at once
_NOTHING = ("nothing",)  # sent to a worker promised to a go() that gave up
_worker_ids = itertools.count(1)


#: Groups that have started workers, for the at-fork hook (weakly held).
_with_workers: weakref.WeakSet[ErrGroupBase] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for group in list(_with_workers):
        group._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    _Chan: Callable[[], Any]
    # ... and its contexts: a C group's ctx is a C context (cheap to make
    # and to cancel), a pure group's a pure one.
    _background: Callable[[], Context]
    _with_cancel: Callable[[Context], tuple[Context, Callable[[], None]]]

    def __init__(self, ctx: Context | None = None, limit: int | None = None) -> None:
        if ctx is None:
            ctx = self._background()
        elif not isinstance(ctx, Context):
            raise TypeError(_R.CTX_TYPE)
        limit = _check_limit(limit)
        self._ctx, self._cancel = self._with_cancel(ctx)
        self._lock = threading.Lock()  # guards the fields below that say so
        self._wg = self._WaitGroup()  # tasks started and not finished
        self._wg_add = self._wg.add
        self._limit = limit
        self._max_workers = _UNLIMITED if limit is None else limit
        # Each worker waits for its tasks in recv on its own unbuffered
        # channel; idle ones are stacked, the most recently idle on top (it
        # is likely still spinning: handing it the next task costs no
        # wake-up). At `limit`, a task goes on the shared channel to the next
        # worker to finish. Every send is promised a worker that comes to
        # recv for it (exact counts: a send never waits for nobody).
        self._tasks = self._Chan()  # the shared channel
        self._idle: list[Any] = []  # channels of the idle workers, not promised to a send (lock)
        self._nworkers = 0  # workers alive (lock)
        self._waiting = 0  # sends on the shared channel not yet promised a worker (lock)
        self._workers: dict[threading.Thread, Any] = {}  # started, not joined: their channels (lock)
        # Workers that have left their loop (idle timeout, set_limit), still in
        # _workers until seen finished (lock). Only these are ever pruned: a
        # thread another go() is starting reads is_alive() False for a moment.
        self._exited: list[threading.Thread] = []
        self._closed = False  # wait() has returned, or is joining the workers (lock)
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
            self._limit = n
            self._max_workers = _UNLIMITED if n is None else n
            # No task runs: every worker is idle. Those beyond the new limit
            # retire, each on a None sent to it.
            extra = max(0, self._nworkers - self._max_workers)
            retire = [self._idle.pop() for _ in range(extra)]
            self._nworkers -= extra
        for ch in retire:
            ch.send(None)

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
        with self._lock:
            if self._closed:
                raise RuntimeError("ErrGroup.go called after wait")
            if self._idle:
                ch = self._idle.pop()  # that worker comes to recv for this task
                worker = None
            else:
                ch, worker = self._promise()
            self._wg_add(1)  # under the lock: wait() cannot close meanwhile
        if worker is None:
            try:  # the common case, inline
                ch.send((fn, args, kwargs))
            except BaseException:
                self._undo(ch, None)
                raise
            return
        self._start_and_send(ch, worker, (fn, args, kwargs))

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
        with self._lock:
            if self._closed:
                raise RuntimeError("ErrGroup.try_go called after wait")
            if self._idle:
                ch = self._idle.pop()
                worker = None
            elif self._nworkers < self._max_workers:
                ch, worker = self._promise()
            else:
                return False  # `limit` tasks are running
            self._wg_add(1)
        self._start_and_send(ch, worker, (fn, args, kwargs))
        return True

    def _promise(self) -> tuple[Any, threading.Thread | None]:
        # (Lock held, no idle worker.) A new worker for the task, or, at
        # `limit`, the shared channel, where the next worker to finish
        # comes to recv. Returns the channel to send on, and the worker to
        # start, if any.
        if self._nworkers >= self._max_workers:
            self._waiting += 1
            return self._tasks, None
        # Forget the workers that left their loop and have finished. (Not
        # is_alive() over every worker: a thread that another go() is
        # starting, outside the lock, has an ident before it counts as
        # alive, and a worker forgotten then would outlive wait().)
        if self._exited:
            leaving = []
            for t in self._exited:
                if t.is_alive():
                    leaving.append(t)
                else:
                    self._workers.pop(t, None)
            self._exited = leaving
        ch = self._Chan()
        worker = threading.Thread(
            target=self._work, args=(ch,), name=f"ErrGroup-worker-{next(_worker_ids)}", daemon=False
        )
        self._workers[worker] = ch
        self._nworkers += 1
        _with_workers.add(self)
        if _dbg._on:
            _dbg._go_thread(worker, "ErrGroup")
        return ch, worker

    def _start_and_send(self, ch: Any, worker: threading.Thread | None, task: tuple[Any, ...]) -> None:
        try:
            if worker is not None:
                worker.start()
            ch.send(task)
        except BaseException:
            self._undo(ch, worker)
            raise

    def _undo(self, ch: Any, worker: threading.Thread | None) -> None:
        # A task that could not be sent on `ch`: its count and its promise
        # undone. The worker promised to it is idle again, or, on the shared
        # channel, gets nothing (or the place in line is given up).
        nothing = False
        with self._lock:
            if ch is self._tasks:
                if self._waiting > 0:
                    self._waiting -= 1
                else:
                    nothing = True  # a worker is on its way to recv for us
            elif worker is not None and worker.ident is None:  # did not start
                self._workers.pop(worker, None)
                self._nworkers -= 1
            else:
                self._idle.append(ch)
        self._wg.done()
        if nothing:
            ch.send(_NOTHING)

    def _at_fork_reinit(self) -> None:
        # In a forked child the workers are gone (the at-fork hook calls
        # this for every group that started some): no worker, a fresh
        # shared channel (the old one may hold their receives) and lock.
        # The tasks they were running, or were sent, never end here:
        # uncounted.
        self._lock = threading.Lock()
        self._tasks = self._Chan()
        self._idle = []
        self._nworkers = self._waiting = 0
        self._workers = {}
        self._exited = []
        lost = self._wg.count
        if lost > 0:
            self._wg.add(-lost)

    def _work(self, own: Any) -> None:
        done = self._wg.done
        record = self._record
        lock = self._lock
        ch = own  # the first task comes on our own channel
        while True:
            try:
                task = ch.recv(IDLE_TIMEOUT)  # the module's, read each time (tests patch it)
            except TimeoutError:
                with lock:
                    if ch is own and own in self._idle:  # not promised to a send: leave
                        self._idle.remove(own)
                        self._nworkers -= 1
                        self._exited.append(threading.current_thread())
                        return  # (still in _workers: wait() joins it all the same)
                continue
            except ChanClosed:
                return  # wait() is joining us
            if task is None:  # set_limit() lowered the limit (and counted us out)
                with lock:
                    self._exited.append(threading.current_thread())
                return
            if task is not _NOTHING:
                fn, args, kwargs = task
                task = None
                if _dbg._on:
                    _dbg._task_begin(self._wg, fn)
                try:
                    fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - for wait()
                    record(exc)
                finally:
                    fn = args = kwargs = None  # free them before wait() returns
                    if _dbg._on:
                        _dbg._task_end()
            # Idle (or promised to a send waiting on the shared channel)
            # before the task counts as done: a go() after that finds us.
            with lock:
                if self._waiting > 0:
                    self._waiting -= 1
                    ch = self._tasks
                else:
                    self._idle.append(own)
                    ch = own
            if task is not _NOTHING:
                done()

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
                    workers = dict(self._workers)
                    self._workers.clear()
                    self._exited = []
                    self._idle = []
                    self._nworkers = 0
                    _with_workers.discard(self)
                    break
        self._cancel()
        if closing:
            try:
                # Every worker's recv raises ChanClosed.
                self._tasks.close()
                for ch in workers.values():
                    ch.close()
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
    WaitGroup, Chan, background and with_cancel, such as cysync.pure or
    cysync._cysync)."""
    cls = type(
        "ErrGroup",
        (ErrGroupBase,),
        {
            "__doc__": ErrGroupBase.__doc__,
            "_WaitGroup": impl.WaitGroup,
            "_Chan": impl.Chan,
            "_background": staticmethod(impl.background),
            "_with_cancel": staticmethod(impl.with_cancel),
        },
    )
    cls.__module__ = "cysync"
    cls.__qualname__ = "ErrGroup"
    return cls

