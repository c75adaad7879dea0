"""ops: what one fast-path operation of each primitive costs, in ns.

Each operation is a statement timed in a compiled loop (see
``runner.LoopTimer``) with the empty loop's cost subtracted. The floors are
measured in the same run and the same way:

- ``empty loop``: the loop's own cost per statement slot (what is subtracted);
- ``F: Lock().locked()``: an empty C method call, the unit of the targets;
- ``Lock acquire+release`` and ``with Lock: pass``: ``threading.Lock``, the
  cheapest synchronization the standard library has.

``OPS`` is also what ``alloc`` and the pytest-benchmark suite measure:
``make_timer(op, impl)`` and ``make_callable(op, impl)`` build the loop or a
single call for any implementation that has the classes the operation needs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..runner import FLOOR, UNROLL, Impl, LoopTimer, Result, Settings, compile_call, gc_paused, make_result, np
from ..tables import Index, Target, fmt, side_by_side, with_targets

NAME = "ops"
TITLE = "fast-path cost per operation"
UNIT = "ns/op"


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Op:
    """One operation: ``stmt`` run with the objects ``setup(impl)`` returns.

    A peer whose API is spelled differently has its own statement in
    ``peer_stmts`` (by implementation name), doing the same work.
    """

    name: str
    needs: tuple[str, ...]                   # classes the implementation must have
    setup: Callable[[Impl], dict[str, Any]]  # objects, already in their fast-path state
    stmt: str
    peer_stmts: tuple[tuple[str, str], ...] = ()

    def stmt_for(self, impl: Impl) -> str:
        return dict(self.peer_stmts).get(impl.name, self.stmt)
    debug: bool = False                      # timed with cysync.debug on


def _wg(m: Impl) -> dict[str, Any]:
    return {"wg": m.WaitGroup()}


def _once(m: Impl) -> dict[str, Any]:
    once = m.Once()
    once.do(_nothing)  # the fast path is every call after the first
    return {"once": once, "f": _nothing}


def _once_func(m: Impl) -> dict[str, Any]:
    fn = m.once_func(_nothing)
    fn()
    return {"fn": fn}


def _once_value(m: Impl) -> dict[str, Any]:
    fn = m.once_value(_nothing)
    fn()
    return {"fn": fn}


def _sem(m: Impl) -> dict[str, Any]:
    return {"sem": m.Semaphore(1)}


def _bsem(m: Impl) -> dict[str, Any]:
    return {"sem": m.BoundedSemaphore(1)}


def _wsem(m: Impl) -> dict[str, Any]:
    return {"w": m.WeightedSemaphore(1)}


def _event_clear(m: Impl) -> dict[str, Any]:
    return {"ev": m.Event()}


def _event_set(m: Impl) -> dict[str, Any]:
    ev = m.Event()
    ev.set()
    return {"ev": ev}


def _barrier1(m: Impl) -> dict[str, Any]:
    return {"b": m.Barrier(1)}


def _handlers(m: Impl) -> dict[str, Any]:
    # The same function written with try/finally and with Go's defer: the
    # article's `wg.Add(1); defer wg.Done()` shape.
    ns: dict[str, Any] = {"wg": m.WaitGroup(), "deferrable": m.deferrable, "defer": m.defer}
    exec(
        "def tf():\n    wg.add(1)\n    try:\n        pass\n    finally:\n        wg.done()\n"
        "@deferrable\ndef df():\n    wg.add(1)\n    defer(wg.done)\n",
        ns,
    )
    return {"tf": ns["tf"], "df": ns["df"]}


def _rw(m: Impl) -> dict[str, Any]:
    rw = m.RWMutex()
    if m.name == "readerwriterlock":  # RWLockWrite: its sides are made once
        return {"r": rw.gen_rlock(), "w": rw.gen_wlock()}
    return {"rw": rw}


def _rw_fair(m: Impl) -> dict[str, Any]:
    rw = m.RWLockFair()
    return {"r": rw.gen_rlock(), "w": rw.gen_wlock()}


#: readerwriterlock's spelling of the same work.
_RWLOCK_READ = (("readerwriterlock", "r.acquire(); r.release()"),)
_RWLOCK_WRITE = (("readerwriterlock", "w.acquire(); w.release()"),)


def _lock(m: Impl) -> dict[str, Any]:
    return {"lk": threading.Lock()}


RW_READ = "RWMutex rlock()+runlock()"
RW_WRITE = "RWMutex lock()+unlock()"

EMPTY = "empty loop"
F_NAME = "F: Lock().locked()"
LOCK_PAIR = "Lock acquire+release"
WITH_LOCK = "with Lock: pass"

FLOORS = [
    Op(EMPTY, (), lambda m: {}, "pass"),
    Op(F_NAME, (), _lock, "lk.locked()"),
    Op(LOCK_PAIR, (), _lock, "lk.acquire(); lk.release()"),
    Op(WITH_LOCK, (), _lock, "with lk:\n    pass"),
]

OPS = [
    Op("WaitGroup add(1)+done()", ("WaitGroup",), _wg, "wg.add(1); wg.done()"),
    Op("WaitGroup wait() at zero", ("WaitGroup",), _wg, "wg.wait()"),
    Op("Once.do(f) when done", ("Once",), _once, "once.do(f)"),
    Op("once_func() when done", ("once_func",), _once_func, "fn()"),
    Op("once_value() when done", ("once_value",), _once_value, "fn()"),
    Op("Semaphore acquire+release", ("Semaphore",), _sem, "sem.acquire(); sem.release()"),
    Op("with Semaphore: pass", ("Semaphore",), _sem, "with sem:\n    pass"),
    Op("BoundedSemaphore acquire+release", ("BoundedSemaphore",), _bsem,
       "sem.acquire(); sem.release()"),
    Op("WeightedSemaphore acquire(1)+release(1)", ("WeightedSemaphore",), _wsem,
       "w.acquire(1); w.release(1)"),
    Op("WeightedSemaphore try_acquire(1)+release(1)", ("WeightedSemaphore",), _wsem,
       "w.try_acquire(1); w.release(1)"),
    Op("with WeightedSemaphore: pass", ("WeightedSemaphore",), _wsem, "with w:\n    pass"),
    Op("Event is_set()", ("Event",), _event_clear, "ev.is_set()"),
    Op("Event set()+clear()", ("Event",), _event_clear, "ev.set(); ev.clear()"),
    Op("Event wait() when set", ("Event",), _event_set, "ev.wait()"),
    Op("Barrier(1).wait()", ("Barrier",), _barrier1, "b.wait()"),
    Op(RW_READ, ("RWMutex",), _rw, "rw.rlock(); rw.runlock()", _RWLOCK_READ),
    Op(RW_WRITE, ("RWMutex",), _rw, "rw.lock(); rw.unlock()", _RWLOCK_WRITE),
    Op("with rw.reader: pass", ("RWMutex",), _rw, "with rw.reader:\n    pass", (
        ("readerwriterlock", "with r:\n    pass"),)),
    Op("RWLockFair rlock+runlock", ("RWLockFair",), _rw_fair, "r.acquire(); r.release()"),
    Op("RWLockFair lock+unlock", ("RWLockFair",), _rw_fair, "w.acquire(); w.release()"),
    Op("fn: wg.add(1), try/finally wg.done()", ("WaitGroup", "deferrable", "defer"), _handlers, "tf()"),
    Op("fn: wg.add(1), defer(wg.done)", ("WaitGroup", "deferrable", "defer"), _handlers, "df()"),
]

# What cysync.debug costs where it does something when on (WaitGroup.add/done
# record and retire call sites); the row without it is OPS's. Not in OPS: the
# alloc scenario and the pytest-benchmark suite measure the default mode.
DEBUG_ON = "WaitGroup add(1)+done(), debug on"
DEBUG_OPS = [
    Op(DEBUG_ON, ("WaitGroup",), _wg, "wg.add(1); wg.done()", debug=True),
]

# Only WaitGroup and Once have a peer in pygolang; its waits take no timeout,
# which is harmless here: the counter is zero. readerwriterlock has the
# RWMutex rows (RWLockWrite, writer-preferring like Go's) and RWLockFair's.
_BY_NAME = {op.name: op for op in FLOORS + OPS + DEBUG_OPS}


def op_named(name: str) -> Op:
    return _BY_NAME[name]


def applicable(op: Op, impl: Impl) -> bool:
    return impl is FLOOR if op in FLOORS else (impl is not FLOOR and impl.has(*op.needs))


class DebugTimer(LoopTimer):
    """A loop timed with cysync's debug mode on, and off again (unless it
    was on before) as soon as the run ends, so other rows never see it."""

    def __call__(self, n: int) -> int:
        from cysync import debug

        was = debug.enabled()
        debug.enable()
        try:
            return super().__call__(n)
        finally:
            if not was:
                debug.disable()


def make_timer(op: Op, impl: Impl) -> LoopTimer:
    """The compiled loop of ``op`` for ``impl``: ``timer(n)`` -> ns for n * UNROLL ops."""
    return (DebugTimer if op.debug else LoopTimer)(op.stmt_for(impl), op.setup(impl))


def make_callable(op: Op, impl: Impl) -> Callable[[], None]:
    """One call of ``op`` for ``impl`` (for tracemalloc and pytest-benchmark)."""
    return compile_call(op.stmt_for(impl), op.setup(impl))


def time_loops(scenario: str, cases: list[tuple[str, Impl, LoopTimer]], s: Settings) -> list[Result]:
    """Time each (name, implementation, timer) in ns per statement.

    ``cases[0]`` must be the empty loop (``EMPTY``): its cost per iteration
    is subtracted from every other case. Takes ``len(cases) * (s.repeat + 1)``
    progress steps.
    """
    timers = []
    for name, impl, timer in cases:  # calibration doubles as warm-up
        with gc_paused():
            timer.calibrate(s.min_time)
        timers.append(timer)
        s.step(f"calibrating {name} [{impl.name}]")
    totals: list[list[int]] = [[] for _ in cases]
    for _ in range(s.repeat):  # interleaved: every case once per repeat
        for i, timer in enumerate(timers):
            with gc_paused():
                totals[i].append(timer(timer.n))
            s.step(f"{cases[i][0]} [{cases[i][1].name}]")
    # The loop's own cost per iteration (the empty loop is cases[0]).
    empty = timers[0]
    loop_ns = float(np.median([t / empty.n for t in totals[0]]))
    results = []
    for (name, impl, _), timer, ts in zip(cases, timers, totals, strict=True):
        if name == EMPTY:
            samples = [t / (timer.n * UNROLL) for t in ts]
        else:
            samples = [(t - loop_ns * timer.n) / (timer.n * UNROLL) for t in ts]
        results.append(make_result(scenario, name, impl.name, UNIT, samples, loops=timer.n * UNROLL))
    return results


def run(s: Settings) -> list[Result]:
    cases = [(op, FLOOR) for op in FLOORS]
    cases += [(op, impl) for op in OPS + DEBUG_OPS for impl in s.impls if applicable(op, impl)]
    s.begin(NAME, len(cases) * (s.repeat + 1))
    return time_loops(NAME, [(op.name, impl, make_timer(op, impl)) for op, impl in cases], s)


# --- report -------------------------------------------------------------------

TARGETS = [
    Target("WaitGroup add(1)+done(), c / F", NAME, ("WaitGroup add(1)+done()", "c"),
           (F_NAME, "floor"), 5),
    Target("WaitGroup add(1)+done(), py / c", NAME, ("WaitGroup add(1)+done()", "py"),
           ("WaitGroup add(1)+done()", "c"), 25, "ge"),
    Target("Once.do(f) when done, c / F", NAME, ("Once.do(f) when done", "c"), (F_NAME, "floor"), 2.5),
    Target("Semaphore acquire+release, c / Lock acquire+release", NAME,
           ("Semaphore acquire+release", "c"), (LOCK_PAIR, "floor"), 0.5),
    Target("Semaphore acquire+release, stdlib / c", NAME, ("Semaphore acquire+release", "stdlib"),
           ("Semaphore acquire+release", "c"), 30, "ge"),
    Target("with Semaphore, c / with Lock", NAME, ("with Semaphore: pass", "c"),
           (WITH_LOCK, "floor"), 1.0),
    Target("WeightedSemaphore acquire(1)+release(1), c / F", NAME,
           ("WeightedSemaphore acquire(1)+release(1)", "c"), (F_NAME, "floor"), 6),
    Target("Event is_set(), c / F", NAME, ("Event is_set()", "c"), (F_NAME, "floor"), 1.5),
    Target("Event set()+clear(), c / F", NAME, ("Event set()+clear()", "c"), (F_NAME, "floor"), 4),
    Target("RWMutex rlock()+runlock(), c / F", NAME, (RW_READ, "c"), (F_NAME, "floor"), 4),
    Target("RWMutex lock()+unlock(), c / F", NAME, (RW_WRITE, "c"), (F_NAME, "floor"), 4),
    Target("RWMutex rlock()+runlock(), readerwriterlock / c", NAME, (RW_READ, "readerwriterlock"),
           (RW_READ, "c"), 10, "ge"),
    Target("RWMutex lock()+unlock(), readerwriterlock / c", NAME, (RW_WRITE, "readerwriterlock"),
           (RW_WRITE, "c"), 10, "ge"),
    Target("@deferrable fn with defer(wg.done), c / try/finally", NAME,
           ("fn: wg.add(1), defer(wg.done)", "c"), ("fn: wg.add(1), try/finally wg.done()", "c"), 4),
]

#: The panel of the plot: ns from under 1 to thousands.
PLOT = "log bars"


def render(idx: Index, markdown: bool) -> list[str]:
    out = [side_by_side(idx, NAME, markdown, floor=True, per_f=F_NAME)]
    f = idx.get(NAME, F_NAME, "floor")
    empty = idx.get(NAME, EMPTY, "floor")
    notes = "ns per operation, median of the repeats ± interquartile range."
    if f:
        notes += f" F = {fmt(f.median)} ns, an empty C method call (threading.Lock().locked())"
        notes += f"; the timing loop's own cost ({fmt(empty.median) if empty else '?'} ns/op) is subtracted."
    if idx.get(NAME, "once_value() when done", "stdlib"):
        notes += " stdlib once_value = a functools.cache'd function."
    if idx.get(NAME, RW_READ, "readerwriterlock"):
        notes += (" readerwriterlock: RWLockWrite's gen_rlock()/gen_wlock() objects,"
                  " acquire()+release() (the RWLockFair rows: the same on RWLockFair).")
    for impl in ("c", "py"):
        on, off = idx.get(NAME, DEBUG_ON, impl), idx.get(NAME, "WaitGroup add(1)+done()", impl)
        if on and off:
            notes += (f" cysync.debug on: wg.add(1); wg.done() {fmt(on.median)} ns [{impl}]"
                      f" against {fmt(off.median)} ns off.")
    out.append(notes)
    return with_targets(out, idx, TARGETS, markdown)
