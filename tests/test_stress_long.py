"""Bounded stress: 64 threads, up to millions of operations per primitive.

Every primitive is driven by ``THREADS`` (64) threads at once, both
implementations, checking the invariants that matter:

- Semaphore / BoundedSemaphore(8): never more than 8 threads inside (an
  exact count kept under a lock), no
  unit lost or created (the value is 8 again at the end);
- WeightedSemaphore(16): never more than 16 units in use; requests of
  0..16 units, blocking, polling, and timing out while queued (which makes
  waiters leave the queue mid-line); the queue is empty and every unit
  free at the end;
- WaitGroup: round after round every thread calls done() then wait(); the
  last done() must release all 63 others (no lost wake-up), while a shared
  counter is churned by add/done from every thread and must end exact;
- Event: round after round one thread sets an event the 63 others wait
  for (no lost wake-up), beside an event flickered by set/clear;
- Barrier(64): every round hands out each index once, the action runs once
  per round before anyone leaves, nobody is ever broken;
- Once / once_value: thousands of objects raced by all 64 threads: the
  function runs exactly once per object and every caller returns only after
  it finished (and gets the one cached value).

Every blocking call has a timeout (``TIMEOUT``): a lost wake-up fails the
test instead of hanging it. Each thread times each of its blocking calls;
the report gives operations per second and the longest stall (the longest
single blocking call). Where the GIL exists, the switch interval is lowered
to 0.1 ms during a run so that threads are preempted inside critical
sections far more often than by default.

Two sizes: ``quick`` (not marked: a few seconds for the whole file, run by
default and in CI) and ``long`` (marked ``slow``, deselected by default; run
``pytest -m slow tests/test_stress_long.py -s``), each long test bounded to
well under 60 s on two cores: it stops after its size or after
``CYSYNC_STRESS_BUDGET`` seconds (35), whichever comes first, and reports the
operations it did. ``CYSYNC_STRESS_LONG=N`` multiplies the long sizes and the
budget. The figures are printed at the end of the module (always) and with
``-s`` after each test; ``CYSYNC_STRESS_REPORT=path`` appends them as JSON lines.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass

import pytest

THREADS = 64
TIMEOUT = 10.0  # any single blocking call; reaching it means a lost wake-up
LONG = max(1, int(os.environ.get("CYSYNC_STRESS_LONG", "1") or 1))
RUN_DEADLINE = 120.0  # a whole run (quick or long) must end within this
BUDGET = float(os.environ.get("CYSYNC_STRESS_BUDGET", "35") or 35)  # seconds per long run

_perf = time.perf_counter


@dataclass
class Figure:
    impl: str
    primitive: str
    size: str
    threads: int
    ops: int
    seconds: float
    max_stall_ms: float
    python: str

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"{self.impl:>2} {self.primitive:<22} {self.size:<5} {self.threads:>3} thr "
                f"{self.ops:>10,} ops {self.seconds:7.2f} s {self.ops_per_s:>12,.0f} ops/s "
                f"longest stall {self.max_stall_ms:8.2f} ms")


FIGURES: list[Figure] = []


def _python() -> str:
    ft = "t" if getattr(sys, "_is_gil_enabled", lambda: True)() is False else ""
    return f"{sys.version_info.major}.{sys.version_info.minor}{ft}"


@pytest.fixture(scope="module", autouse=True)
def stress_report(request):
    yield
    if not FIGURES:
        return
    lines = ["", (f"cysync stress figures (Python {_python()}, {os.cpu_count()} CPUs, "
                  f"{THREADS} threads):"), *(f.line() for f in FIGURES)]
    path = os.environ.get("CYSYNC_STRESS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            for f in FIGURES:
                fh.write(json.dumps(dict(asdict(f), ops_per_s=round(f.ops_per_s))) + "\n")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capman is not None and reporter is not None:
        with capman.global_and_fixture_disabled():
            for line in lines:
                reporter.write_line(line)
    else:  # pragma: no cover
        print("\n".join(lines))
    FIGURES.clear()


@pytest.fixture(autouse=True)
def short_switch_interval():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)


@pytest.fixture(params=[pytest.param(1, id="quick"),
                        pytest.param(100, id="long", marks=pytest.mark.slow)])
def size(request):
    """1 for quick runs, >1 for long ones (then sizes are long * CYSYNC_STRESS_LONG)."""
    return request.param


def pick(size, quick, long):
    """The quick or the long figure for this run."""
    return quick if size == 1 else long * LONG


class Budget:
    """When a long run must stop: it ends after its size or at BUDGET seconds,
    whichever comes first (so a slow interpreter still ends in bounded time,
    with fewer operations: the report says how many). Quick runs have none."""

    def __init__(self, size):
        self.end = time.monotonic() + BUDGET * LONG if size > 1 else float("inf")

    def over(self) -> bool:
        return time.monotonic() > self.end


def impl_id(impl) -> str:
    return "c" if impl.__name__.endswith("_cysync") else "py"


class Stats:
    """One thread's counters: operations done and its longest blocking call."""

    __slots__ = ("ops", "stall")

    def __init__(self):
        self.ops = 0
        self.stall = 0.0


def run_threads(worker, n=THREADS, deadline=RUN_DEADLINE):
    """Run worker(i, stats) in n threads released together; return (seconds, [Stats])."""
    stats = [Stats() for _ in range(n)]
    errors: list[BaseException] = []
    start = threading.Barrier(n + 1)

    def body(i):
        try:
            start.wait(TIMEOUT)
            worker(i, stats[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True, name=f"stress-{i}")
               for i in range(n)]
    for t in threads:
        t.start()
    start.wait(TIMEOUT)
    t0 = _perf()
    end = time.monotonic() + deadline
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    seconds = _perf() - t0
    alive = [t.name for t in threads if t.is_alive()]
    if errors:
        raise errors[0]
    assert not alive, f"threads still running after {deadline} s: {alive[:5]}..."
    return seconds, stats


def record(impl, primitive, size, seconds, stats, extra_ops=0):
    fig = Figure(impl=impl_id(impl), primitive=primitive, size="quick" if size == 1 else "long",
                 threads=len(stats), ops=sum(s.ops for s in stats) + extra_ops,
                 seconds=seconds, max_stall_ms=max(s.stall for s in stats) * 1e3,
                 python=_python())
    FIGURES.append(fig)
    print(fig.line())
    return fig


class Gauge:
    """Units in use, counted under a lock, so exact at every instant.

    A thread enters after its acquire returned and leaves before it
    releases, so the count never exceeds what the primitive has handed out;
    more than ``limit`` means the primitive let too many in.
    """

    def __init__(self, limit):
        self.limit = limit
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def enter(self, n=1):
        with self.lock:
            self.now += n
            now = self.now
            if now > self.peak:
                self.peak = now
        assert now <= self.limit, f"{now} units in use, more than {self.limit}"

    def leave(self, n=1):
        with self.lock:
            self.now -= n


# --- Semaphore / BoundedSemaphore ---------------------------------------------------------

@pytest.mark.parametrize("cls_name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_never_more_than_n_inside(impl, size, cls_name):
    limit = 8
    iters = pick(size, 250, 25_000)  # per thread
    sem = getattr(impl, cls_name)(limit)
    gauge = Gauge(limit)
    budget = Budget(size)

    def worker(i, st):
        acquire, release = sem.acquire, sem.release
        for k in range(iters):
            if k & 63 == 0 and budget.over():
                break
            if k % 8 == 7:
                st.ops += 1
                if not acquire(False):
                    continue
            else:
                t0 = _perf()
                ok = acquire(True, TIMEOUT)
                dt = _perf() - t0
                st.ops += 1
                if dt > st.stall:
                    st.stall = dt
                assert ok, "lost wake-up: Semaphore.acquire timed out"
            gauge.enter()
            if k % 16 == 0:
                time.sleep(0)  # give up the CPU while inside: others pile up
            gauge.leave()
            release()
            st.ops += 1

    seconds, stats = run_threads(worker)
    assert gauge.now == 0 and 1 <= gauge.peak <= limit
    assert sem._value == limit, "a unit was lost or created"
    assert sem.acquire(False) and sem._value == limit - 1
    sem.release()
    record(impl, cls_name, size, seconds, stats)


# --- WeightedSemaphore ------------------------------------------------------------------------

def test_weighted_never_more_than_size_units(impl, size, tools):
    units = 16
    iters = pick(size, 120, 12_000)  # per thread
    sem = impl.WeightedSemaphore(units)
    gauge = Gauge(units)
    timed_out = [0]
    budget = Budget(size)

    def worker(i, st):
        rng = random.Random(i)
        acquire, try_acquire, release = sem.acquire, sem.try_acquire, sem.release
        for k in range(iters):
            if k & 63 == 0 and budget.over():
                break
            r = rng.random()
            n = rng.choice((0, 1, 1, 1, 2, 2, 3, 4)) if r < 0.95 else rng.choice((8, 12, 16))
            kind = k % 10
            if kind == 0:
                ok = try_acquire(n)
            elif kind == 1:
                t0 = _perf()
                ok = acquire(n, 0.0002)  # may time out while queued: leaves mid-line
                dt = _perf() - t0
                if dt > st.stall:
                    st.stall = dt
                if not ok:
                    timed_out[0] += 1
            else:
                t0 = _perf()
                ok = acquire(n, TIMEOUT)
                dt = _perf() - t0
                if dt > st.stall:
                    st.stall = dt
                assert ok, f"lost wake-up: WeightedSemaphore.acquire({n}) timed out"
            st.ops += 1
            if not ok:
                continue
            gauge.enter(n)
            if k % 16 == 0:
                time.sleep(0)
            gauge.leave(n)
            release(n)
            st.ops += 1

    seconds, stats = run_threads(worker)
    assert gauge.now == 0 and 1 <= gauge.peak <= units
    assert sem.held == 0, "units lost"
    assert tools.waiters(sem) == 0, "waiter queue not empty at the end"
    assert sem.try_acquire(units) is True
    sem.release(units)
    record(impl, "WeightedSemaphore", size, seconds, stats)


# --- WaitGroup ---------------------------------------------------------------------------------

def test_waitgroup_rounds_and_churn(impl, size):
    rounds = pick(size, 8, 3_000)
    wgs = []
    for _ in range(rounds):
        wg = impl.WaitGroup()
        wg.add(THREADS)
        wgs.append(wg)
    churn = impl.WaitGroup()
    churn.add(1)  # kept above zero: the churn itself never releases anyone
    budget = Budget(size)
    # Rounds are collective: thread 0 decides, before its done() of round r,
    # that round r + 1 is the end; everyone sees it once wait(r) returned.
    last = [rounds]

    def worker(i, st):
        add, done = churn.add, churn.done
        for r, wg in enumerate(wgs):
            if r >= last[0]:
                break
            if i == 0 and r & 15 == 0 and budget.over():
                last[0] = r + 1
            for _ in range(4):
                add(2)
                done()
                add(-1)
            st.ops += 12
            wg.done()
            t0 = _perf()
            ok = wg.wait(TIMEOUT)
            dt = _perf() - t0
            st.ops += 2
            if dt > st.stall:
                st.stall = dt
            assert ok, "lost wake-up: WaitGroup.wait timed out"

    seconds, stats = run_threads(worker)
    assert churn.count == 1, f"churned counter is {churn.count}, not 1"
    assert all(wg.count == 0 for wg in wgs[:last[0]])
    assert all(wg.wait(0) for wg in wgs[:last[0]])
    assert all(wg.count == THREADS for wg in wgs[last[0]:])
    record(impl, "WaitGroup", size, seconds, stats)


# --- Event -------------------------------------------------------------------------------------------

def test_event_rounds_and_flicker(impl, size):
    rounds = pick(size, 8, 3_000)
    events = [impl.Event() for _ in range(rounds)]
    flicker = impl.Event()
    budget = Budget(size)
    last = [rounds]  # set by round r's setter before its set(): all see it after wait(r)

    def worker(i, st):
        fset, fclear, fis_set = flicker.set, flicker.clear, flicker.is_set
        for r, ev in enumerate(events):
            if r >= last[0]:
                break
            if r % THREADS == i:
                if r & 15 == 0 and budget.over():
                    last[0] = r + 1
                ev.set()
                st.ops += 1
            for _ in range(3):
                fset()
                fis_set()
                fclear()
            st.ops += 9
            t0 = _perf()
            ok = ev.wait(TIMEOUT)
            dt = _perf() - t0
            st.ops += 1
            if dt > st.stall:
                st.stall = dt
            assert ok, "lost wake-up: Event.wait timed out"
            if r % 16 == 0:
                flicker.wait(0)
                st.ops += 1

    seconds, stats = run_threads(worker)
    assert all(ev.is_set() for ev in events[:last[0]])
    assert not any(ev.is_set() for ev in events[last[0]:])
    flicker.set()
    assert flicker.wait(0)
    record(impl, "Event", size, seconds, stats)


# --- Barrier -----------------------------------------------------------------------------------------

def test_barrier_rounds(impl, size):
    rounds = pick(size, 4, 25_000)
    actions = [0]
    budget = Budget(size)
    last = [rounds]  # decided by the action, which runs before anyone leaves the round

    def action():
        actions[0] += 1
        if actions[0] & 15 == 0 and budget.over():
            last[0] = actions[0]

    barrier = impl.Barrier(THREADS, action=action)
    seen = [[] for _ in range(THREADS)]

    def worker(i, st):
        mine = seen[i]
        wait = barrier.wait
        for r in range(rounds):
            if r >= last[0]:
                break
            t0 = _perf()
            index = wait(TIMEOUT)
            dt = _perf() - t0
            st.ops += 1
            if dt > st.stall:
                st.stall = dt
            assert actions[0] == r + 1, "left the barrier before the round's action ran"
            mine.append(index)

    seconds, stats = run_threads(worker)
    rounds = last[0]
    assert actions[0] == rounds
    for r in range(rounds):
        indices = sorted(seen[i][r] for i in range(THREADS))
        assert indices == list(range(THREADS)), f"round {r}: indices {indices}"
    assert barrier.n_waiting == 0 and not barrier.broken
    record(impl, "Barrier", size, seconds, stats)


# --- Once / once_value ------------------------------------------------------------------------------

def test_once_exactly_once(impl, size):
    count = pick(size, 40, 16_000)
    onces = [impl.Once() for _ in range(count)]
    runs = [0] * count
    finished = [False] * count
    budget = Budget(size)
    reached = [count] * THREADS

    def fn(k):
        runs[k] += 1
        if k % 8 == 0:
            time.sleep(0)  # let the other callers pile up behind
        finished[k] = True

    def worker(i, st):
        for k, once in enumerate(onces):
            if k & 63 == 0 and budget.over():
                reached[i] = k
                break
            t0 = _perf()
            once.do(fn, k)
            dt = _perf() - t0
            st.ops += 1
            if dt > st.stall:
                st.stall = dt
            assert finished[k], "Once.do returned before fn finished"

    seconds, stats = run_threads(worker)
    top = max(reached)
    assert runs[:top] == [1] * top, "fn ran more than once (or never) for some Once"
    assert all(o.done for o in onces[:top])
    assert set(runs[top:]) <= {0}
    record(impl, "Once", size, seconds, stats)


def test_once_value_exactly_once(impl, size):
    count = pick(size, 40, 16_000)
    runs = [0] * count
    values = [object() for _ in range(count)]

    def make(k):
        def fn():
            runs[k] += 1
            if k % 8 == 0:
                time.sleep(0)
            return values[k]
        return fn

    wrappers = [impl.once_value(make(k)) for k in range(count)]
    budget = Budget(size)
    reached = [count] * THREADS

    def worker(i, st):
        for k, w in enumerate(wrappers):
            if k & 63 == 0 and budget.over():
                reached[i] = k
                break
            t0 = _perf()
            v = w()
            dt = _perf() - t0
            st.ops += 1
            if dt > st.stall:
                st.stall = dt
            assert v is values[k], "once_value returned another value"

    seconds, stats = run_threads(worker)
    top = max(reached)
    assert runs[:top] == [1] * top
    assert set(runs[top:]) <= {0}
    record(impl, "once_value", size, seconds, stats)
