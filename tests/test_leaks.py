"""Leaks: every operation, error paths included, run many times without growth.

For each primitive a ``cycle`` runs its operations once each: the fast
paths, the polls and timed-out waits (tiny positive timeouts go through the
parking slow path), and every error path (bad types, NaN timeouts, values
out of range, releasing too much, exceptions raised in Once functions and
cached by once_func/once_value, Barrier actions that raise, broken
barriers). A timed-out wait with a tiny positive timeout (which parks in the kernel
and costs ~90 us of timer slack) runs in one cycle out of 8. The cycle is
warmed up, then run again:

- with ``tracemalloc`` tracing: the traced memory after the run (and a
  ``gc.collect()``) may not exceed the memory before by more than
  ``TRACED_SLACK`` bytes (32 KiB; 1 MiB on free-threaded builds);
- without it: the resident set size (``/proc/self/statm``, else
  ``ru_maxrss``) may not grow by more than ``RSS_SLACK`` bytes (1 MiB; 16 MiB
  on free-threaded builds, whose allocator holds on to freed memory). RSS also
  sees raw ``malloc`` in the C core, which tracemalloc does not.

Default runs do about ``OPS`` (50k) operations per primitive and phase
(100k in all), the ``slow`` variants (``pytest -m slow``) ``SLOW_OPS`` (3
million) per phase; ``CYSYNC_LEAK_OPS`` / ``CYSYNC_LEAK_SLOW_OPS`` change them.
The figures (operations, bytes of growth) are printed at the end of the
module and appended as JSON lines to ``CYSYNC_LEAK_REPORT`` if set.

Also here: objects dropped while threads wait on them (the waiting thread
keeps them alive, and frees them when it gives up), reference cycles
through Barrier actions and once_func/once_value functions (collectable),
and interpreters exiting with daemon threads parked for ever in every
primitive (no crash at shutdown).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import tracemalloc
import weakref
from dataclasses import asdict, dataclass

import pytest

OPS = int(os.environ.get("CYSYNC_LEAK_OPS", "50000") or 50000)
SLOW_OPS = int(os.environ.get("CYSYNC_LEAK_SLOW_OPS", "3000000") or 3000000)
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
# Free-threaded CPython frees some memory late (QSBR-delayed frees of dict and
# list storage; mimalloc keeps pages): its traced memory wobbles by a few
# hundred KB and its RSS ramps up to a plateau of a few MB with plain Python
# code (reference cycles of dicts, raising functions), cysync or not. Hence
# wider limits there; a steady leak still shows over the slow runs' millions.
TRACED_SLACK = (1024 if FREE_THREADED else 32) * 1024
RSS_SLACK = (16 if FREE_THREADED else 1) * 1024 * 1024
NAN = float("nan")


class Boom(Exception):
    pass


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak, in KiB (bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class LeakFigure:
    impl: str
    primitive: str
    ops: int
    traced_growth: int
    rss_growth: int
    seconds: float
    python: str

    def line(self) -> str:
        return (f"{self.impl:>2} {self.primitive:<18} {self.ops:>10,} ops x2  "
                f"tracemalloc {self.traced_growth:>+8,} B  RSS {self.rss_growth:>+10,} B  "
                f"{self.seconds:6.1f} s")


FIGURES: list[LeakFigure] = []


@pytest.fixture(scope="module", autouse=True)
def leak_report(request):
    yield
    if not FIGURES:
        return
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
        py += "t"
    lines = ["", (f"cysync leak figures (Python {py}; growth after warm-up, "
                  f"limits {TRACED_SLACK:,} B traced / {RSS_SLACK:,} B RSS):")]
    lines += [f.line() for f in FIGURES]
    path = os.environ.get("CYSYNC_LEAK_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            for f in FIGURES:
                fh.write(json.dumps(asdict(f)) + "\n")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capman is not None and reporter is not None:
        with capman.global_and_fixture_disabled():
            for line in lines:
                reporter.write_line(line)
    FIGURES.clear()


def impl_id(impl) -> str:
    return "c" if impl.__name__.endswith("_cysync") else "py"


def expect(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type:
        return
    raise AssertionError(f"{fn!r}{args!r} did not raise {exc_type.__name__}")


# --- one cycle of every operation, per primitive ---------------------------------------------

class Ticker:
    """True every 8th call: a timed-out wait (about 90 us of kernel timer
    slack each) runs in one cycle out of 8, to keep the default run short."""

    def __init__(self):
        self.n = 0

    def __call__(self) -> bool:
        self.n += 1
        return self.n % 8 == 0

# make_cycle(impl) -> (cycle, ops_per_cycle)

def waitgroup_cycle(m):
    tick = Ticker()
    wg = m.WaitGroup()

    def cycle():
        wg.add(1)
        assert wg.wait(0) is False
        if tick():
            assert wg.wait(1e-6) is False  # parks and times out
        wg.done()
        assert wg.wait(0) is True
        assert wg.wait() is True
        expect(ValueError, wg.add, -1)
        expect(ValueError, wg.done)
        expect(OverflowError, wg.add, 2**64)
        expect(TypeError, wg.add, "1")
        expect(TypeError, wg.add, 1.0)
        expect(ValueError, wg.wait, NAN)
        expect(TypeError, wg.wait, "1")
        expect(TypeError, wg.go, None)
        repr(wg)
        m.WaitGroup().add(3)  # dropped with a count
    return cycle, 16


def once_cycle(m):
    def fn(*args, **kwargs):
        return args

    def raiser():
        raise Boom("in Once")

    def cycle():
        o = m.Once()
        o.do(fn, 1, 2, k=3)
        o.do(fn)
        o2 = m.Once()
        expect(Boom, o2.do, raiser)
        o2.do(raiser)  # done: not called again
        expect(TypeError, o.do, None)
        o3 = m.Once()

        def recurse():
            expect(RuntimeError, o3.do, fn)
        o3.do(recurse)
        repr(o)
        assert o.done and o2.done and o3.done
    return cycle, 8


def once_wrappers_cycle(m):
    value = object()

    def raiser():
        raise Boom("cached")

    cached_func = m.once_func(raiser)
    cached_value = m.once_value(raiser)

    def cycle():
        w = m.once_value(lambda: value)
        assert w() is value and w() is value
        f = m.once_func(lambda: None)
        f()
        f()
        expect(Boom, cached_func)  # the same exception, re-raised every time
        expect(Boom, cached_value)
        expect(TypeError, m.once_func, None)
        expect(TypeError, m.once_value, 1)
        holder = {}
        rec = m.once_value(lambda: expect(RuntimeError, holder["w"]))
        holder["w"] = rec
        rec()
        holder.clear()
        expect(Boom, m.once_func(raiser))
    return cycle, 11


def semaphore_cycle(m):
    tick = Ticker()
    s = m.Semaphore(1)
    b = m.BoundedSemaphore(1)

    def cycle():
        assert s.acquire(False)
        assert s.acquire(False) is False
        assert s.acquire(True, 0) is False
        if tick():
            assert s.acquire(True, 1e-6) is False  # parks and times out
        s.release()
        with s:
            pass
        expect(ValueError, s.release, 0)
        expect(TypeError, s.release, "1")
        expect(OverflowError, s.release, 2**64)
        expect(ValueError, s.acquire, False, 1)
        expect(ValueError, s.acquire, True, NAN)
        expect(TypeError, s.acquire, True, "1")
        expect(ValueError, b.release)
        assert b.acquire(timeout=1) and b.acquire(timeout=0) is False
        b.release()
        repr(s), repr(b)
        expect(ValueError, m.Semaphore, -1)
    return cycle, 18


def weighted_cycle(m):
    tick = Ticker()
    s = m.WeightedSemaphore(4)

    def cycle():
        assert s.acquire(3, 0)
        assert s.acquire(2, 0) is False
        if tick():
            assert s.acquire(2, 1e-6) is False  # queues, times out, leaves the line
        assert s.try_acquire(2) is False
        assert s.try_acquire(1)
        s.release(4)
        assert s.try_acquire(0)
        with s:
            pass
        expect(ValueError, s.acquire, -1)
        expect(ValueError, s.acquire, 5)
        expect(ValueError, s.release, 1)
        expect(TypeError, s.acquire, 1.0)
        expect(ValueError, s.acquire, 1, NAN)
        expect(TypeError, s.try_acquire, "1")
        expect(ValueError, m.WeightedSemaphore, -1)
        repr(s)
        w = m.WeightedSemaphore(2)
        w.acquire(2)  # dropped while held
    return cycle, 17


def event_cycle(m):
    tick = Ticker()
    e = m.Event()

    def cycle():
        assert e.wait(0) is False
        if tick():
            assert e.wait(1e-6) is False  # parks and times out
        e.set()
        assert e.is_set() and e.wait() and e.wait(0)
        e.clear()
        expect(ValueError, e.wait, NAN)
        expect(TypeError, e.wait, "1")
        repr(e)
        m.Event().set()
    return cycle, 10


def barrier_cycle(m):
    tick = Ticker()
    def raiser():
        raise Boom("action")

    one = m.Barrier(1)
    two = m.Barrier(2)

    def cycle():
        assert one.wait() == 0
        if tick():  # (the C core's poll parks until the past deadline: ~90 us)
            expect(m.BrokenBarrierError, two.wait, 0)  # a poll breaks it
        else:
            two.abort()
        assert two.broken
        expect(m.BrokenBarrierError, two.wait, 0)
        two.reset()
        if tick():
            expect(m.BrokenBarrierError, two.wait, 1e-6)  # parks, times out, breaks it
            two.reset()
        bad = m.Barrier(1, raiser)
        expect(Boom, bad.wait)
        expect(m.BrokenBarrierError, bad.wait)
        one.abort()
        expect(m.BrokenBarrierError, one.wait)
        one.reset()
        expect(ValueError, one.wait, NAN)
        expect(TypeError, one.wait, "1")
        expect(ValueError, m.Barrier, 0)
        repr(two)
    return cycle, 15


CYCLES = {
    "WaitGroup": waitgroup_cycle,
    "Once": once_cycle,
    "once_func/value": once_wrappers_cycle,
    "Semaphore": semaphore_cycle,
    "WeightedSemaphore": weighted_cycle,
    "Event": event_cycle,
    "Barrier": barrier_cycle,
}


def measure(cycle, ops_per_cycle, total_ops):
    """(cycles run per phase, traced growth, RSS growth) after a warm-up."""
    n = max(1, total_ops // ops_per_cycle)
    warm = max(500, n // 20)
    for _ in range(warm):
        cycle()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(warm):
            cycle()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(n):
            cycle()
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    gc.collect()
    for _ in range(warm):
        cycle()
    gc.collect()
    rss0 = _rss()
    for _ in range(n):
        cycle()
    gc.collect()
    return n, traced, _rss() - rss0


@pytest.fixture(params=[pytest.param(OPS, id="default"),
                        pytest.param(SLOW_OPS, id="millions", marks=pytest.mark.slow)])
def total_ops(request):
    return request.param


@pytest.mark.parametrize("primitive", list(CYCLES))
def test_no_growth(impl, primitive, total_ops):
    cycle, per = CYCLES[primitive](impl)
    t0 = time.perf_counter()
    n, traced, rss = measure(cycle, per, total_ops)
    fig = LeakFigure(impl=impl_id(impl), primitive=primitive, ops=n * per, traced_growth=traced,
                     rss_growth=rss, seconds=time.perf_counter() - t0,
                     python=f"{sys.version_info.major}.{sys.version_info.minor}"
                     + ("t" if FREE_THREADED else ""))
    FIGURES.append(fig)
    print(fig.line())
    assert traced <= TRACED_SLACK, f"traced memory grew by {traced} B over {n * per} operations"
    assert rss <= RSS_SLACK, f"RSS grew by {rss} B over {n * per} operations"


def test_waitgroup_go_no_growth(impl):
    """go() starts a thread per call: fewer calls, same check."""
    wg = impl.WaitGroup()

    def batch():
        for _ in range(50):
            wg.go(lambda: None)
        assert wg.wait(10)

    for _ in range(4):
        batch()
    gc.collect()
    tracemalloc.start()
    try:
        batch()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            batch()
        time.sleep(0.05)  # let the last threads finish being torn down
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown <= TRACED_SLACK, f"{grown} B after 1000 go() calls"


# --- dropped objects, cycles, shutdown -------------------------------------------------------------

WAITS = {
    "WaitGroup": (lambda m: m.WaitGroup(), lambda o: o.add(1), lambda o, t: o.wait(t)),
    "Semaphore": (lambda m: m.Semaphore(0), lambda o: None, lambda o, t: o.acquire(True, t)),
    "BoundedSemaphore": (lambda m: m.BoundedSemaphore(1), lambda o: o.acquire(),
                         lambda o, t: o.acquire(True, t)),
    "WeightedSemaphore": (lambda m: m.WeightedSemaphore(2), lambda o: o.acquire(2),
                          lambda o, t: o.acquire(1, t)),
    "Event": (lambda m: m.Event(), lambda o: None, lambda o, t: o.wait(t)),
    "Barrier": (lambda m: m.Barrier(2), lambda o: None, lambda o, t: o.wait(t)),
}


@pytest.mark.parametrize("name", list(WAITS))
def test_object_dropped_while_threads_wait(impl, name, tools):
    """The test drops its references while 3 threads wait on the object:
    the waiters keep it alive, time out normally, and it is freed after."""
    make, prepare, wait = WAITS[name]
    obj = make(impl)
    prepare(obj)
    ref = weakref.ref(obj)
    outcomes = []

    def waiter(o):
        try:
            outcomes.append(wait(o, 0.3))
        except threading.BrokenBarrierError:
            outcomes.append("broken")

    threads = [threading.Thread(target=waiter, args=(obj,), daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    del obj
    gc.collect()
    for t in threads:
        t.join(tools.TIMEOUT)
        assert not t.is_alive()
    if name == "Barrier":  # 3 waiters at a Barrier(2): one round, then the third times out
        assert len(outcomes) == 3 and "broken" in outcomes, outcomes
    else:
        assert outcomes == [False] * 3
    del threads
    gc.collect()
    assert ref() is None, "the object outlived its last waiter"


def test_once_dropped_while_fn_runs(impl, tools):
    once = impl.Once()
    ref = weakref.ref(once)
    entered, gate = threading.Event(), threading.Event()

    def fn():
        entered.set()
        assert gate.wait(tools.TIMEOUT)

    runner = tools.spawn(once.do, fn)
    assert entered.wait(tools.TIMEOUT)
    waiter = tools.spawn(once.do, fn)
    del once
    gc.collect()
    gate.set()
    runner.join()
    waiter.join()
    del runner, waiter
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("kind", ["barrier_action", "once_func", "once_value", "once_value_result"])
def test_reference_cycles_are_collected(impl, kind):
    """Cycles through the Python objects a primitive holds are collectable,
    and many of them do not accumulate."""
    def make():
        if kind == "barrier_action":
            box = {}
            box["b"] = impl.Barrier(1, action=lambda: box)
            return box["b"]
        if kind == "once_func":
            box = {}
            box["w"] = impl.once_func(lambda: box)
            return box["w"]
        if kind == "once_value":
            box = {}
            box["w"] = impl.once_value(lambda: box)
            return box["w"]
        box = {}
        w = impl.once_value(lambda: box)
        box["w"] = w
        w()  # the cached result refers back to the wrapper
        return w

    obj = make()
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is None, "a reference cycle through the primitive was not collected"
    for _ in range(200):
        make()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(5000):
            make()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown <= TRACED_SLACK, f"{grown} B left after 5000 collected cycles"


@pytest.mark.parametrize("module", ["cysync._cysync", "cysync.pure"])
def test_interpreter_exits_with_threads_parked_forever(module):
    """Daemon threads parked for ever in every primitive at interpreter exit:
    the process ends normally (no crash, no hang in finalization)."""
    pytest.importorskip(module)
    code = textwrap.dedent(f"""
        import threading, time, sys
        import {module} as m
        wg = m.WaitGroup(); wg.add(1)
        sem = m.Semaphore(0)
        ws = m.WeightedSemaphore(1); ws.acquire(1)
        ev = m.Event()
        bar = m.Barrier(2)
        once = m.Once()
        gate = threading.Event()
        calls = [wg.wait, sem.acquire, lambda: ws.acquire(1), ev.wait, bar.wait,
                 lambda: once.do(gate.wait), lambda: (time.sleep(0.05), once.do(print))]
        for c in calls:
            threading.Thread(target=c, daemon=True).start()
        time.sleep(0.3)
        del wg, sem, ws, ev, bar, once
        print("exiting", flush=True)
    """)
    env = dict(os.environ)
    import cysync  # the copy under test (the work tree's src/, or a debug build's)

    src = os.path.dirname(os.path.dirname(os.path.abspath(cysync.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip() == "exiting"
