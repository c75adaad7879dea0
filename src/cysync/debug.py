"""cysync.debug: find the missing ``done()``, the hung wait and the leaked worker.

Go prints every goroutine, what it waits for and for how long when a program
deadlocks or gets SIGQUIT. This module gives Python threads the same view of
cysync's primitives::

    import cysync, cysync.debug
    cysync.debug.enable()           # or CYSYNC_DEBUG=1 in the environment
    ...
    cysync.debug.dump()             # the report on stderr
    cysync.debug.dump_on(signal.SIGUSR1)   # or when `kill -USR1 <pid>` arrives

While debug mode is on:

- every ``WaitGroup.add(n)`` with ``n > 0`` records its call site (file,
  line, function) and thread in a ledger of the WaitGroup; ``done()`` (and a
  negative ``add``) retires the oldest entry, or the entry its own thread
  owes (a ``go()`` thread, an ErrGroup task);
- every thread blocked in a cysync wait (any primitive, channels and
  ``select`` included) is registered with the object, the call site, the
  time it started waiting and its ``ctx``;
- threads started by ``WaitGroup.go`` and by ``ErrGroup`` are registered
  with their function.

``report()`` renders all of it, with each thread's stack, in the format
documented in docs/debug.md; the pytest plugin (``pytest --cysync-leaks``)
fails a test that leaves any of it behind.

Off (the default), the only cost is one test of a flag in ``WaitGroup.add``
and ``done`` and in the blocking slow paths. Nothing here keeps a primitive,
a context or a thread alive: the registries hold weak references, and forget
an entry when its wait ends, its ``done()`` comes or its object is freed.

The hooks the implementations call (internal, one call each):

- ``_wait_begin(obj, ctx) -> token`` when a thread is about to block in a
  wait on ``obj`` (a tuple of channels for ``select``), ``_wait_end(token)``
  when that wait is over (in a ``finally``). The C module does it in its one
  blocking driver ``_block`` (pass ``owner=self``), the pure module in
  ``_wait`` (pass the object as ``owner``) and in the channels' ``_park``.
- ``_wg_change(wg, delta) -> token`` before a WaitGroup's counter changes,
  ``_wg_undo(wg, token)`` if the change was then refused.
- ``_go(wg, thread, fn)`` when ``WaitGroup.go`` starts a thread;
  ``_go_thread(thread, kind)``, ``_task_begin(wg, fn)`` and ``_task_end()``
  for ErrGroup's workers.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from time import monotonic as _monotonic
from types import FrameType
from typing import Any, TextIO

__all__ = ["disable", "dump", "dump_on", "enable", "enabled", "report"]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

#: On at import when ``CYSYNC_DEBUG`` is set to anything but "" or "0".
_on = os.environ.get("CYSYNC_DEBUG", "") not in ("", "0")

# Guards every registry below. Re-entrant: a signal handler (dump_on) runs
# in the main thread between two bytecodes, possibly while that thread holds
# it, and must not deadlock on it.
_lock = threading.RLock()
# The implementations' flag setters (pure._set_debug, _cysync._set_debug).
_setters: list[Callable[[bool], None]] = []
_seq = itertools.count(1)  # orders every record; used under _lock

# Weak-reference callbacks only append here (they may run in the middle of
# anything, in any thread); the registries are purged under _lock.
_dead: list[tuple[dict[int, Any], int, weakref.ref[Any]]] = []


def _attach(setter: Callable[[bool], None]) -> None:
    """An implementation registers its flag setter (at the end of its import)."""
    with _lock:
        _setters.append(setter)
        setter(_on)


def _set(on: bool) -> None:
    global _on
    with _lock:
        _on = on
        for setter in _setters:
            setter(on)


def enable() -> None:
    """Turn debug mode on, for both implementations (C and pure)."""
    _set(True)


def disable() -> None:
    """Turn debug mode off. What was recorded stays until it is retired."""
    _set(False)


def enabled() -> bool:
    """Whether debug mode is on."""
    return _on


# --- records ------------------------------------------------------------------


def _is_ours(filename: str) -> bool:
    # The package's own modules (not cysync.bench, which is a user of it).
    return filename.startswith(_PKG_DIR) and os.sep not in filename[len(_PKG_DIR) :]


def _site() -> tuple[str, int, str]:
    """(file, line, function) of the first caller outside cysync's modules."""
    f: FrameType | None = sys._getframe(1)
    while f is not None and _is_ours(f.f_code.co_filename):
        f = f.f_back
    if f is None:
        return ("?", 0, "?")
    return (f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


def _weak(obj: object) -> Callable[[], Any]:
    """A weak reference to obj, or (not weakly referable) a function returning its repr."""
    try:
        return weakref.ref(obj)
    except TypeError:
        text = repr(obj)
        return lambda: text


def _register(registry: dict[int, Any], obj: object, record: Any) -> None:
    """registry[id(obj)] = record, forgotten when obj is freed (under _lock)."""
    key = id(obj)

    def forget(ref: weakref.ref[Any]) -> None:
        _dead.append((registry, key, ref))

    record.ref = weakref.ref(obj, forget)
    registry[key] = record


def _purge() -> None:
    # Under _lock: drop the records of freed objects. A key may have been
    # reused by a new object meanwhile: only the record of that very ref goes.
    while _dead:
        registry, key, ref = _dead.pop()
        record = registry.get(key)
        if record is not None and record.ref is ref:
            del registry[key]


class _Add:
    """One ``add(n)`` still owed ``left`` done() calls."""

    __slots__ = ("seq", "n", "left", "site", "thread", "owner", "owner_name")

    def __init__(self, seq: int, n: int, site: tuple[str, int, str], thread: str) -> None:
        self.seq = seq
        self.n = n
        self.left = n
        self.site = site
        self.thread = thread  # the adding thread's name
        self.owner: weakref.ref[threading.Thread] | None = None  # the thread that owes it, if known
        self.owner_name = ""


class _Ledger:
    __slots__ = ("ref", "adds")

    def __init__(self) -> None:
        self.ref: weakref.ref[Any] | None = None
        self.adds: deque[_Add] = deque()


class _GoThread:
    """A thread started by WaitGroup.go or ErrGroup."""

    __slots__ = ("ref", "seq", "kind", "fn", "site", "parent", "task")

    def __init__(self, seq: int, kind: str, fn: str, site: tuple[str, int, str], parent: str) -> None:
        self.ref: weakref.ref[Any] | None = None
        self.seq = seq
        self.kind = kind  # "WaitGroup.go" or "ErrGroup"
        self.fn = fn
        self.site = site
        self.parent = parent  # the starting thread's name
        self.task = ""  # an ErrGroup worker's current task


class _Wait:
    """One thread blocked in a cysync wait."""

    __slots__ = ("seq", "obj", "ctx", "site", "since", "ident", "name", "thread")

    def __init__(self, seq: int, obj: Any, ctx: Any, site: tuple[str, int, str]) -> None:
        me = threading.current_thread()
        self.seq = seq
        if isinstance(obj, tuple):  # select: its channels
            self.obj: Any = tuple(_weak(o) for o in obj)
        else:
            self.obj = None if obj is None else _weak(obj)
        self.ctx = None if ctx is None else _weak(ctx)
        self.site = site
        self.since = _monotonic()
        self.ident = threading.get_ident()
        self.name = me.name
        self.thread = weakref.ref(me)

    def what(self) -> str:
        if self.obj is None:
            return "<unknown cysync object>"
        if isinstance(self.obj, tuple):
            return "select(" + ", ".join(_describe(r) for r in self.obj) + ")"
        return _describe(self.obj)


def _describe(ref: Callable[[], Any]) -> str:
    obj = ref()
    if obj is None:
        return "<freed>"
    if isinstance(obj, str):
        return obj
    try:
        return repr(obj)
    except Exception as exc:  # noqa: BLE001 - a report must not fail on one repr
        return f"<{type(obj).__qualname__}: repr failed: {exc!r}>"


_ledgers: dict[int, _Ledger] = {}  # id(wg) -> its ledger
_gothreads: dict[int, _GoThread] = {}  # id(thread) -> record
_waits: dict[int, _Wait] = {}  # id(record) -> record (a set that keeps insertion order)


# --- hooks --------------------------------------------------------------------


def _wait_begin(obj: object, ctx: object = None) -> _Wait:
    """The calling thread is about to block in a wait on `obj`; returns the
    token for ``_wait_end``."""
    w = _Wait(0, obj, ctx, _site())
    with _lock:
        w.seq = next(_seq)
        _waits[id(w)] = w
    return w


def _wait_end(token: _Wait | None) -> None:
    """The wait of ``_wait_begin`` is over (returned, timed out or raised)."""
    if token is not None:
        with _lock:
            _waits.pop(id(token), None)


def _ledger(wg: object, create: bool) -> _Ledger | None:
    # Under _lock.
    led = _ledgers.get(id(wg))
    if led is not None and (led.ref is None or led.ref() is not wg):
        led = None  # a freed WaitGroup's, whose id was reused
    if led is None and create:
        led = _Ledger()
        _register(_ledgers, wg, led)
    return led


def _wg_change(wg: object, delta: int) -> Any:
    """Before a WaitGroup's counter changes by `delta` (0 excluded): record an
    add, or retire done() calls. Returns what ``_wg_undo`` needs."""
    if delta > 0:
        me = threading.current_thread()
        add = _Add(0, delta, _site(), me.name)
        with _lock:
            _purge()
            add.seq = next(_seq)
            led = _ledger(wg, True)
            assert led is not None
            led.adds.append(add)
        return add
    me = threading.current_thread()
    with _lock:
        _purge()
        led = _ledger(wg, False)
        if led is None or not led.adds:
            return None
        return _retire(led, -delta, me)


def _retire(led: _Ledger, n: int, me: threading.Thread) -> list[tuple[_Add, int]]:
    # Under _lock. The entries the calling thread owes first (the done() of
    # a go() thread or an ErrGroup task), then the oldest ones not owed by
    # another live thread, then the oldest.
    taken: list[tuple[_Add, int]] = []
    first = led.adds[0]
    if first.owner is None and first.left >= n and id(me) not in _gothreads:
        # The common case: a plain thread's done(), the oldest add unowned.
        first.left -= n
        if first.left == 0:
            led.adds.popleft()
        return [(first, n)]

    def take(add: _Add) -> None:
        nonlocal n
        k = min(n, add.left)
        add.left -= k
        n -= k
        taken.append((add, k))
        if add.left == 0:
            led.adds.remove(add)

    def owed_elsewhere(add: _Add) -> bool:
        owner = None if add.owner is None else add.owner()
        return owner is not None and owner is not me and owner.is_alive()

    for rule in (lambda a: a.owner is not None and a.owner() is me, lambda a: not owed_elsewhere(a), None):
        for add in list(led.adds):
            if n == 0:
                return taken
            if rule is None or rule(add):
                take(add)
    return taken


def _wg_undo(wg: object, token: Any) -> None:
    """The counter change of ``_wg_change`` was refused (it raised): undo the record."""
    if token is None:
        return
    with _lock:
        led = _ledger(wg, False)
        if led is None:
            return
        if isinstance(token, _Add):
            if token in led.adds:
                led.adds.remove(token)
            return
        for add, k in token:
            if add.left == 0:
                led.adds.append(add)
            add.left += k
        led.adds = deque(sorted(led.adds, key=lambda a: a.seq))


def _fn_name(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else repr(fn)


def _go(wg: object, thread: threading.Thread, fn: object) -> None:
    """``wg.go(fn)`` is starting `thread` (after its add(1), before start())."""
    me = threading.current_thread()
    site = _site()
    with _lock:
        _purge()
        led = _ledger(wg, False)
        if led is not None:
            for add in reversed(led.adds):  # the add(1) this thread just made
                if add.owner is None and add.thread == me.name:
                    add.owner = weakref.ref(thread)
                    add.owner_name = thread.name
                    break
        _register(_gothreads, thread, _GoThread(next(_seq), "WaitGroup.go", _fn_name(fn), site, me.name))


def _go_thread(thread: threading.Thread, kind: str) -> None:
    """A worker thread of `kind` (an ErrGroup's) is starting."""
    me = threading.current_thread()
    site = _site()
    with _lock:
        _purge()
        _register(_gothreads, thread, _GoThread(next(_seq), kind, "", site, me.name))


def _task_begin(wg: object, fn: object) -> None:
    """An ErrGroup worker (the calling thread) starts running `fn`, a task
    counted by `wg`: it now owes the oldest done() nobody owes yet."""
    me = threading.current_thread()
    with _lock:
        record = _gothreads.get(id(me))
        if record is not None and record.ref is not None and record.ref() is me:
            record.task = _fn_name(fn)
        led = _ledger(wg, False)
        if led is not None:
            for add in led.adds:
                if add.owner is None:
                    add.owner = weakref.ref(me)
                    add.owner_name = me.name
                    break


def _task_end() -> None:
    """The calling ErrGroup worker has finished its task."""
    me = threading.current_thread()
    with _lock:
        record = _gothreads.get(id(me))
        if record is not None and record.ref is not None and record.ref() is me:
            record.task = ""


# --- queries (the report, the pytest plugin) ----------------------------------


def _mark() -> int:
    """A sequence number: records made from now on have a larger one."""
    with _lock:
        return next(_seq)


class _Snapshot:
    """The registries at one moment, with strong references for the time of a report."""

    def __init__(self) -> None:
        with _lock:
            _purge()
            waits = list(_waits.values())
            gos = [(r.ref() if r.ref is not None else None, r) for r in _gothreads.values()]
            ledgers = [(led.ref() if led.ref is not None else None, list(led.adds)) for led in _ledgers.values()]
        self.waits = waits
        self.gos = [(t, r) for t, r in gos if t is not None]
        # WaitGroups above zero, with their outstanding adds.
        self.wgs: list[tuple[Any, int, list[_Add]]] = []
        for wg, adds in ledgers:
            if wg is None:
                continue
            count = wg.count
            if count > 0:
                self.wgs.append((wg, count, adds))


def _leaks(since: int, before: weakref.WeakSet[threading.Thread]) -> list[str]:
    """What records made after `since` are left: go()/ErrGroup threads alive,
    threads not in `before` blocked in a cysync wait, WaitGroups above zero
    with adds made since. Returns a line per leak (and keeps no reference to
    anything it looked at, so that a gc.collect() can free it)."""
    snap = _Snapshot()
    found = []
    for thread, rec in snap.gos:
        if rec.seq > since and thread.is_alive():
            what = rec.task or rec.fn
            found.append(f"{rec.kind} thread {thread.name!r} still running" + (f" {what}" if what else ""))
    for w in snap.waits:
        thread = w.thread()
        if thread is not None and thread not in before and thread.is_alive():
            found.append(f"thread {w.name!r} (started by the test) blocked on {w.what()} at {_where(w.site)}")
    for wg, _count, adds in snap.wgs:
        mine = [a for a in adds if a.seq > since]
        if mine:
            found.append(f"{wg!r} left above zero, added at {_where(mine[0].site)}")
    return found


# --- the report ---------------------------------------------------------------


def _short(filename: str) -> str:
    cwd = os.getcwd() + os.sep
    return filename[len(cwd) :] if filename.startswith(cwd) else filename


def _where(site: tuple[str, int, str]) -> str:
    return f"{_short(site[0])}:{site[1]}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _thread_label(name: str, ident: int | None) -> str:
    return f'"{name}" ident={ident}'


def report() -> str:
    """The state of every thread and every WaitGroup above zero, as text.

    Each thread: its name and ident, what cysync object it is blocked on,
    since when and where, its ``ctx``, how it was started (``go()``,
    ErrGroup) and its stack; then each WaitGroup with a count above zero
    and the call sites of the adds it is still owed, with the threads that
    owe them when known. The format is documented in docs/debug.md; every
    line a tool may look for starts with a fixed word (``thread``,
    ``blocked on``, ``WaitGroup``, ``added at``).
    """
    return _report(skip_self=False)


def _report(skip_self: bool) -> str:
    # skip_self: leave out the calling thread (the pytest plugin's, whose
    # stack is pytest's own machinery).
    now = _monotonic()
    frames = sys._current_frames()
    me = threading.get_ident()
    snap = _Snapshot()
    waits_by_ident: dict[int, list[_Wait]] = {}
    for w in snap.waits:
        waits_by_ident.setdefault(w.ident, []).append(w)
    go_by_thread = {id(t): r for t, r in snap.gos}
    threads = sorted(threading.enumerate(), key=lambda t: t is not threading.main_thread())
    known = {t.ident for t in threads}
    from . import IMPLEMENTATION

    blocked = sum(1 for t in threads if t.ident in waits_by_ident)
    out = [
        (
            f"cysync debug report: {_plural(len(threads), 'thread')}, {blocked} blocked in cysync waits, "
            f"{_plural(len(snap.wgs), 'WaitGroup')} above zero (implementation {IMPLEMENTATION}, "
            f"debug {'on' if _on else 'off'}, pid {os.getpid()})"
        )
    ]
    if not _on:
        out.append("debug mode is off: no waits or WaitGroup adds were recorded "
                   "(cysync.debug.enable() or CYSYNC_DEBUG=1)")

    def thread_block(name: str, ident: int | None, daemon: bool | None, thread: threading.Thread | None) -> None:
        waits = waits_by_ident.get(ident, []) if ident is not None else []
        state = "blocked in cysync" if waits else "not in a cysync wait"
        flags = "" if daemon is None else (" daemon" if daemon else "")
        out.append("")
        out.append(f"thread {_thread_label(name, ident)}{flags} [{state}]:")
        for w in waits:
            out.append(f"  blocked on {w.what()} for {now - w.since:.1f} s at {_where(w.site)} (function {w.site[2]})")
            if w.ctx is not None:
                out.append(f"    ctx {_describe(w.ctx)}")
        rec = go_by_thread.get(id(thread)) if thread is not None else None
        if rec is not None:
            fn = f"({rec.fn})" if rec.fn else ""
            out.append(f"  started by {rec.kind}{fn} at {_where(rec.site)} in thread {rec.parent}")
            if rec.task:
                out.append(f"  running task {rec.task}")
        frame = frames.get(ident) if ident is not None else None
        if frame is not None:
            stack = traceback.extract_stack(frame)
            if ident == me:  # not the frames of the report (and of the pytest plugin) itself
                while stack and _is_ours(stack[-1].filename):
                    stack.pop()
            out.append("  stack (most recent call last):")
            out.extend("  " + line for chunk in stack.format() for line in chunk.rstrip("\n").split("\n"))

    for t in threads:
        if not (skip_self and t.ident == me):
            thread_block(t.name, t.ident, t.daemon, t)
    for ident in frames:
        if ident not in known:
            thread_block("(not a threading.Thread)", ident, None, None)

    for wg, count, adds in snap.wgs:
        out.append("")
        recorded = sum(a.left for a in adds)
        out.append(f"WaitGroup {wg!r} count={count}, {recorded} recorded adds outstanding:")
        for a in adds:
            line = f"  added at {_where(a.site)} in thread {a.thread} (function {a.site[2]})"
            if a.n > 1:
                line += f", {a.left} of add({a.n}) outstanding"
            owner = None if a.owner is None else a.owner()
            if a.owner is not None:
                alive = "alive" if owner is not None and owner.is_alive() else "finished"
                owner_ident = owner.ident if owner is not None else None
                line += f", owed by thread {_thread_label(a.owner_name, owner_ident)} [{alive}]"
            out.append(line)
        if count > recorded:
            out.append(f"  {count - recorded} more not recorded (added while debug mode was off)")
        for w in snap.waits:
            if w.obj is not None and not isinstance(w.obj, tuple) and w.obj() is wg:
                out.append(f"  waited on by thread {_thread_label(w.name, w.ident)} "
                           f"for {now - w.since:.1f} s at {_where(w.site)}")
    return "\n".join(out) + "\n"


def dump(file: TextIO | None = None) -> None:
    """Write ``report()`` to `file` (default: ``sys.stderr``) and flush it."""
    if file is None:
        file = sys.stderr
    file.write(report())
    file.flush()


def dump_on(signum: int, file: TextIO | None = None) -> Any:
    """Write the report (``dump(file)``) whenever signal `signum` arrives
    (Unix: ``signal.SIGUSR1``, ``SIGQUIT``...), also while the main thread
    is blocked in a cysync wait: the waits run signal handlers and go on
    waiting. Call it from the main thread; returns the previous handler
    (``signal.signal(signum, previous)`` restores it)."""

    def handler(sig: int, frame: FrameType | None) -> None:
        dump(file)

    return signal.signal(signum, handler)
