"""chan: Go channels (``Chan``, ``select``) against ``queue.Queue`` and ``queue.SimpleQueue``.

Columns: cysync's C core (``c``) and pure Python (``py``) once they have
``Chan``, pygolang's ``golang.chan`` when it is installed, and the standard
library's ``Queue`` and ``SimpleQueue`` (both under the implementation
``stdlib``). An implementation without channels is skipped, so the scenario
runs whichever have them.

Figures:

- one thread, ns, timed like ``ops`` (compiled loop, empty loop subtracted,
  F measured in the same run): ``ch.send(x); ch.recv()`` on a ``Chan(1024)``
  against ``put(x); get()``; a ``recv`` of a ready value; and
  ``select(ch.recv, other.recv, default=True)`` with only ``ch`` ready. The
  ready values are sent outside the clock (``runner.BatchTimer``);
- 1 producer thread -> 1 consumer thread through a ``Chan(128)`` (``Queue(128)``,
  ``SimpleQueue``), items/s;
- the round trip between two threads over two unbuffered channels (two
  ``Queue(1)``, two ``SimpleQueue``), µs, median and p99 as in ``handoff``,
  beside cysync's own ``Semaphore`` pair measured the same way;
- the articles' patterns, for N = 1, 2, 4 threads (``--threads``), tasks/s
  and p99 latency: N workers ``for job in jobs`` feeding a results channel
  (a producer thread sends the jobs and closes; a closer closes the results
  once the workers have ended; the main thread ``for r in results``) vs
  ``ThreadPoolExecutor.map``; and N threads handing results over a channel vs
  appending them to a Lock-protected list and ``WaitGroup.wait()`` (stdlib:
  ``join``);
- ``sys.getsizeof`` of a new ``Chan(0)`` (a new ``Queue()``, ``SimpleQueue()``).

Every wait has a timeout. pygolang's waits take none: a watchdog closes its
channels when a run overruns (``--timeout`` plus ten ``--duration``), which
fails that run instead of hanging it. pygolang has no ``for v in ch``: its
patterns range with ``recv_()`` in a generator, as its users write it.

Targets (``TARGETS``, printed as met / MISSED) are ratios of figures of the
same run, except the size, which is bytes.
"""

from __future__ import annotations

import concurrent.futures
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..runner import (
    FLOOR,
    UNROLL,
    BatchTimer,
    BenchError,
    Impl,
    LoopTimer,
    Result,
    Settings,
    Worker,
    check,
    join_all,
    make_result,
    np,
    spin,
)
from ..tables import Index, Target, base_impl, cell, fmt, fmt_ratio, ordered, speedup, table, with_targets
from . import alloc, handoff, ops

NAME = "chan"
TITLE = "channels and select vs queue.Queue / SimpleQueue"

#: Buffer sizes of the figures.
CAP_ONE_THREAD = 1024
CAP_SPSC = 128
CAP_PATTERNS = 128
#: Loop length of one pattern task (about 6 us on CPython 3.11, as in fanout).
TASK_WORK = 200
#: Thread counts of the patterns when --threads is not given.
PATTERN_THREADS = (1, 2, 4)


# --- who is measured ----------------------------------------------------------

#: Table columns, in order: cysync's, pygolang's, then the two queues.
COLUMNS = ("c", "py", "pygolang", "Queue", "SimpleQueue")


@dataclass(frozen=True)
class Side:
    """One column: an implementation and how it spells a channel.

    ``kind``: ``"chan"`` (cysync's API), ``"pygolang"`` (``chan``, no
    timeouts), ``"Queue"`` or ``"SimpleQueue"`` (the standard library's).
    """

    column: str
    impl: Impl
    kind: str


def applicable(impl: Impl) -> bool:
    """Whether ``impl`` has channels (or is the standard library, with its queues)."""
    if impl.name == "stdlib":
        return True
    if impl.name == "pygolang":
        return impl.has("chan", "select", "default")
    return impl.has("Chan")


def sides(impls: Sequence[Impl]) -> list[Side]:
    out = []
    for impl in impls:
        if not applicable(impl):
            continue
        if impl.name == "stdlib":
            out += [Side("Queue", impl, "Queue"), Side("SimpleQueue", impl, "SimpleQueue")]
        elif impl.name == "pygolang":
            out.append(Side("pygolang", impl, "pygolang"))
        else:
            out.append(Side(impl.name, impl, "chan"))
    return sorted(out, key=lambda side: COLUMNS.index(side.column))


@dataclass(frozen=True)
class Figure:
    """One row of the tables and the result names that fill it.

    ``chan``: the name of the c, py and pygolang results; ``queue`` and
    ``simple``: of the stdlib results in the Queue and SimpleQueue columns.
    """

    label: str
    unit: str
    chan: str
    queue: str = ""      # "": no such figure
    simple: str = ""

    def name(self, column: str) -> str:
        return {"Queue": self.queue, "SimpleQueue": self.simple}.get(column, self.chan)


PAIR = Figure(f"send + recv in one thread, cap {CAP_ONE_THREAD}", "ns/op",
              f"Chan({CAP_ONE_THREAD}) send+recv", f"Queue({CAP_ONE_THREAD}) put+get",
              "SimpleQueue put+get")
READY = Figure("recv of a ready value", "ns/op", "Chan recv, value ready", "Queue get, value ready",
               "SimpleQueue get, value ready")
SELECT = Figure("select, 2 cases, 1 ready, default", "ns/op", "select(2 cases, 1 ready, default)")
SPSC = Figure(f"1 producer -> 1 consumer thread, cap {CAP_SPSC}", "items/s",
              f"Chan({CAP_SPSC}), 1 producer + 1 consumer",
              f"Queue({CAP_SPSC}), 1 producer + 1 consumer", "SimpleQueue, 1 producer + 1 consumer")
TRIP = Figure("round trip between two threads, unbuffered", "µs", "Chan(0) round trip",
              "Queue(1) pair round trip", "SimpleQueue pair round trip")
SEM_TRIP = Figure("Semaphore pair round trip (the reference)", "µs", "Semaphore pair")
SIZE = Figure("sys.getsizeof of a new one", "B", "sizeof Chan(0)", "sizeof Queue()",
              "sizeof SimpleQueue()")

#: The patterns' rows: (name, unit tasks/s); stdlib's are named for what it uses.
W_CHAN = "workers: jobs Chan -> results Chan"
W_MAP = "workers: ThreadPoolExecutor.map"
C_CHAN = "collect: results Chan"
C_LIST = "collect: Lock + list + WaitGroup"
C_JOIN = "collect: Lock + list + join"


# --- one thread: ns per operation ---------------------------------------------


def _chan_objects(side: Side, cap: int) -> Any:
    if side.kind == "chan":
        return side.impl.Chan(cap)
    if side.kind == "pygolang":
        return side.impl.chan(cap)
    return queue.Queue(cap) if side.kind == "Queue" else queue.SimpleQueue()


#: The one-thread statements of each kind: (pair, recv of a ready value, select or None).
STATEMENTS = {
    "chan": ("ch.send(x); ch.recv()", "ch.recv()", "select(ch.recv, other.recv, default=True)"),
    "pygolang": ("ch.send(x); ch.recv()", "ch.recv()", "select(ch.recv, other.recv, default)"),
    "Queue": ("ch.put(x); ch.get()", "ch.get()", None),
    "SimpleQueue": ("ch.put(x); ch.get()", "ch.get()", None),
}


def _filler(side: Side, ch: Any, timeout: float) -> tuple[Callable[[int], None], Callable[[], int]]:
    """(fill(k): send k ready values, left(): values buffered) for a BatchTimer.

    ``fill`` is only called on an empty buffer, with k at most its capacity.
    """
    if side.kind == "chan":
        send = ch.send

        def fill(k: int) -> None:
            for _ in range(k):
                check(send(1, timeout), "chan: a send to a buffer with room", timeout)
    else:
        put = {"pygolang": getattr(ch, "send", None), "Queue": getattr(ch, "put_nowait", None),
               "SimpleQueue": getattr(ch, "put", None)}[side.kind]

        def fill(k: int) -> None:
            for _ in range(k):
                put(1)

    if side.kind in ("Queue", "SimpleQueue"):
        return fill, ch.qsize
    return fill, lambda: len(ch)


def loop_timers(side: Side, timeout: float) -> list[tuple[str, LoopTimer]]:
    """(result name, timer) of the one-thread figures ``side`` has."""
    pair, recv, select = STATEMENTS[side.kind]
    chunk = CAP_ONE_THREAD // UNROLL  # a chunk's values fit in the buffer

    def batch(stmt: str, **names: Any) -> BatchTimer:
        ch = _chan_objects(side, CAP_ONE_THREAD)
        return BatchTimer(stmt, {"ch": ch, **names}, *_filler(side, ch, timeout), chunk)

    out: list[tuple[str, LoopTimer]] = [
        (PAIR.name(side.column), LoopTimer(pair, {"ch": _chan_objects(side, CAP_ONE_THREAD), "x": 1})),
        (READY.name(side.column), batch(recv)),
    ]
    if select is not None and (side.kind == "pygolang" or side.impl.has("select")):
        # ``other`` stays empty: the one ready case is ``ch``.
        names = {"select": side.impl.select, "other": _chan_objects(side, CAP_ONE_THREAD)}
        if side.kind == "pygolang":
            names["default"] = side.impl.default
        out.append((SELECT.chan, batch(select, **names)))
    return out


# --- runs that wait: timeouts, and a watchdog for pygolang ----------------------


class _Watchdog:
    """Calls ``abort()`` unless the ``with`` block ends within ``seconds``."""

    def __init__(self, seconds: float, abort: Callable[[], None] | None, what: str) -> None:
        self.seconds, self.abort, self.what = seconds, abort, what
        self.fired = False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        if self.abort is not None:
            self.abort()

    def __enter__(self) -> _Watchdog:
        if self.abort is not None:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.fired:
            raise BenchError(f"{self.what}: did not finish within {self.seconds:g} s "
                             "(pygolang's waits take no timeout: its channels were closed)")


def _closer(*chans: Any) -> Callable[[], None]:
    """Close each channel (pygolang's close panics on a closed one)."""

    def close() -> None:
        for ch in chans:
            try:
                ch.close()
            except Exception:  # noqa: BLE001 - already closed
                pass

    return close


def _budget(s: Settings) -> float:
    return s.timeout + 10 * s.duration


def _run_threads(threads: list[Worker], main: Callable[[], Any], timeout: float, what: str,
                 abort: Callable[[], None] | None = None) -> Any:
    """Start ``threads``, run ``main()`` here, join them; the first error wins.

    When ``main`` fails, ``abort`` (if any) lets the threads go, and an error
    of a thread (which usually says more) is raised before ``main``'s.
    """
    for t in threads:
        t.start()
    try:
        value = main()
    except BaseException as exc:
        if abort is not None:
            abort()
        join_all(threads, timeout, what)
        if isinstance(exc, (BenchError, KeyboardInterrupt)):
            raise
        raise BenchError(f"{what}: {exc!r}") from exc
    join_all(threads, timeout, what)
    return value


# --- 1 producer -> 1 consumer: items/s -----------------------------------------


def spsc(side: Side, items: int, timeout: float, budget: float) -> float:
    """Seconds for ``items`` values from a producer thread to this one."""
    ch = _chan_objects(side, CAP_SPSC)
    go = threading.Event()
    what = f"chan 1 producer + 1 consumer [{side.column}]"
    abort = None
    if side.kind == "chan":
        def produce() -> None:
            send = ch.send
            check(go.wait(timeout), "chan: the start signal", timeout)
            for i in range(items):
                if not send(i, timeout):  # check() only on failure: no call per item, as Queue's side
                    check(False, "chan: the consumer's recv", timeout)

        def consume() -> None:
            recv = ch.recv
            for _ in range(items):
                recv(timeout)
    elif side.kind == "pygolang":
        abort = _closer(ch)

        def produce() -> None:
            send = ch.send
            check(go.wait(timeout), "chan: the start signal", timeout)
            for i in range(items):
                send(i)

        def consume() -> None:
            recv_ = ch.recv_
            for _ in range(items):
                if not recv_()[1]:
                    raise BenchError(f"{what}: the channel was closed")
    else:
        bounded = side.kind == "Queue"

        def produce() -> None:
            put = ch.put
            check(go.wait(timeout), "chan: the start signal", timeout)
            if bounded:
                for i in range(items):
                    put(i, True, timeout)
            else:
                for i in range(items):
                    put(i)

        def consume() -> None:
            get = ch.get
            for _ in range(items):
                get(True, timeout)

    def main() -> float:
        t0 = time.perf_counter()
        go.set()
        consume()
        return time.perf_counter() - t0

    with _Watchdog(budget, abort, what):
        return _run_threads([Worker(produce, name="producer")], main, timeout, what, abort)


def measure_spsc(todo: list[Side], s: Settings) -> list[Result]:
    """items/s of each side; a probe of 1000 items sizes the runs to ``s.duration``."""
    counts = []
    for side in todo:
        sec = spsc(side, 1000, s.timeout, _budget(s))
        counts.append(int(min(2_000_000, max(1000, s.duration / max(sec / 1000, 1e-8)))))
        s.step(f"probing {SPSC.name(side.column)} [{side.column}]")
    rates: list[list[float]] = [[] for _ in todo]
    for _ in range(s.repeat):
        for i, side in enumerate(todo):
            rates[i].append(counts[i] / spsc(side, counts[i], s.timeout, _budget(s)))
            s.step(f"{SPSC.name(side.column)} [{side.column}]")
    return [make_result(NAME, SPSC.name(side.column), side.impl.name, "items/s", rs, 2,
                        items=counts[i])
            for i, (side, rs) in enumerate(zip(todo, rates, strict=True))]


# --- round trip between two threads ---------------------------------------------


def _pair(side: Side, timeout: float) -> tuple[Callable[[], None], Callable[[], None], Any]:
    """(ping step, pong step, abort or None) of one round trip."""
    cap = 1 if side.kind == "Queue" else 0  # Queue(0) would be unbounded
    a, b = _chan_objects(side, cap), _chan_objects(side, cap)
    if side.kind == "chan":
        def ping() -> None:
            check(a.send(1, timeout), "chan: the pong's recv", timeout)
            b.recv(timeout)

        def pong() -> None:
            check(b.send(a.recv(timeout), timeout), "chan: the ping's recv", timeout)

        return ping, pong, None
    if side.kind == "pygolang":
        def ping() -> None:
            a.send(1)
            if not b.recv_()[1]:
                raise BenchError("chan: the channel was closed")

        def pong() -> None:
            v, ok = a.recv_()
            if not ok:
                raise BenchError("chan: the channel was closed")
            b.send(v)

        return ping, pong, _closer(a, b)
    if side.kind == "Queue":
        def ping() -> None:
            a.put(1, True, timeout)
            b.get(True, timeout)

        def pong() -> None:
            b.put(a.get(True, timeout), True, timeout)

        return ping, pong, None

    def ping() -> None:
        a.put(1)
        b.get(True, timeout)

    def pong() -> None:
        b.put(a.get(True, timeout))

    return ping, pong, None


def round_trips(side: Side, n: int, timeout: float, budget: float) -> Any:
    """Latencies (ns) of ``n`` round trips between this thread and a new one."""
    ping, pong, abort = _pair(side, timeout)
    what = f"chan round trip [{side.column}]"
    with _Watchdog(budget, abort, what):
        return handoff.time_trips(ping, pong, abort, n, timeout, what)


# --- the articles' patterns: tasks/s and p99 --------------------------------------


def _job(t0: int) -> int:
    spin(TASK_WORK)
    return t0


def _range(side: Side, ch: Any) -> Any:
    """``for v in ch``; pygolang has no such loop: its ``recv_()`` until closed."""
    if side.kind != "pygolang":
        return ch
    return _pyg_range(ch)


def _pyg_range(ch: Any) -> Any:
    recv_ = ch.recv_
    while True:
        v, ok = recv_()
        if not ok:
            return
        yield v


def _gather(side: Side, results: Any, workers: list[Worker], others: list[Worker], total: int,
            timeout: float, budget: float, what: str, chans: Sequence[Any]) -> tuple[float, Any]:
    """Go's fan-in: start ``others`` and ``workers``, and a closer that closes
    ``results`` once the workers have ended; range over ``results`` here.

    Each value received is the ``perf_counter_ns()`` a task's latency starts
    at. Returns (seconds from the start of the threads to the last result,
    latencies in ns). ``chans`` are closed when the run fails (or overruns,
    for pygolang), which lets every thread go.
    """
    clock = time.perf_counter_ns

    def closer() -> None:
        try:
            join_all(workers, timeout, what)
        finally:
            results.close()

    def main() -> tuple[float, list[int]]:
        lat = [clock() - t0 for t0 in _range(side, results)]
        return time.perf_counter() - start, lat

    abort = _closer(*chans)
    with _Watchdog(budget, abort if side.kind == "pygolang" else None, what):
        start = time.perf_counter()
        sec, lat = _run_threads([*others, *workers, Worker(closer, name="closer")], main, timeout,
                                what, abort)
    if len(lat) != total:
        raise BenchError(f"{what}: {len(lat)} results of {total}")
    return sec, np.asarray(lat, dtype=np.int64)


def workers_chan(side: Side, n: int, tasks: int, timeout: float, budget: float) -> tuple[float, Any]:
    """N workers ``for job in jobs`` -> results: (seconds, latencies in ns).

    A producer thread sends the N * M jobs and closes ``jobs``. A task's
    latency runs from the producer's send of its job to the main thread's
    receipt of its result.
    """
    total = n * tasks
    jobs, results = _chan_objects(side, CAP_PATTERNS), _chan_objects(side, CAP_PATTERNS)
    clock = time.perf_counter_ns
    pyg = side.kind == "pygolang"

    def producer() -> None:
        send = jobs.send
        try:
            for _ in range(total):
                if pyg:
                    send(clock())
                else:
                    check(send(clock(), timeout), "chan: a worker's recv of a job", timeout)
        finally:
            jobs.close()

    def worker() -> None:
        send = results.send
        for t0 in _range(side, jobs):
            if pyg:
                send(_job(t0))
            else:
                check(send(_job(t0), timeout), "chan: the collector's recv", timeout)

    workers = [Worker(worker, name=f"worker-{i}") for i in range(n)]
    return _gather(side, results, workers, [Worker(producer, name="producer")], total, timeout,
                   budget, f"chan workers [{side.column}]", (jobs, results))


def workers_map(n: int, tasks: int, timeout: float) -> tuple[float, Any]:
    """``ThreadPoolExecutor(n).map`` over N * M tasks: (seconds, latencies in ns).

    ``map`` submits every task before it returns: a task's latency runs from
    then to the main thread's receipt of its result.
    """
    total = n * tasks
    clock = time.perf_counter_ns
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        handed = clock()
        try:
            lat = [clock() - handed for _ in ex.map(_job, range(total), timeout=timeout)]
        except concurrent.futures.TimeoutError:
            raise BenchError(f"chan: executor.map did not finish within {timeout:g} s") from None
        sec = time.perf_counter() - start
    return sec, np.asarray(lat, dtype=np.int64)


def collect_chan(side: Side, n: int, tasks: int, timeout: float, budget: float) -> tuple[float, Any]:
    """N threads send their results on a channel, the main thread ranges over it.

    A task's latency runs from its start to the main thread's receipt of its result.
    """
    results = _chan_objects(side, CAP_PATTERNS)
    clock = time.perf_counter_ns
    pyg = side.kind == "pygolang"

    def worker() -> None:
        send = results.send
        for _ in range(tasks):
            if pyg:
                send(_job(clock()))
            else:
                check(send(_job(clock()), timeout), "chan: the collector's recv", timeout)

    workers = [Worker(worker, name=f"worker-{i}") for i in range(n)]
    return _gather(side, results, workers, [], n * tasks, timeout, budget,
                   f"chan collect [{side.column}]", (results,))


def collect_list(impl: Impl, n: int, tasks: int, timeout: float) -> tuple[float, Any]:
    """N threads append to a Lock-protected list; ``WaitGroup.wait()`` (stdlib: ``join``).

    A task's latency runs from its start to its result being in the list.
    """
    lock = threading.Lock()
    out: list[int] = []
    clock = time.perf_counter_ns
    wg = impl.WaitGroup() if impl.name != "stdlib" else None

    def worker() -> None:
        try:
            for _ in range(tasks):
                t0 = clock()
                _job(t0)
                with lock:
                    out.append(clock() - t0)
        finally:
            if wg is not None:
                wg.done()

    workers = [Worker(worker, name=f"worker-{i}") for i in range(n)]
    what = f"chan collect list [{impl.name}]"
    start = time.perf_counter()
    if wg is not None:
        wg.add(n)
    for t in workers:
        t.start()
    if wg is not None:
        check(wg.wait(timeout), "chan: WaitGroup.wait()", timeout)
    else:
        join_all(workers, timeout, what)
    sec = time.perf_counter() - start
    join_all(workers, timeout, what)
    if len(out) != n * tasks:
        raise BenchError(f"{what}: {len(out)} results of {n * tasks}")
    return sec, np.asarray(out, dtype=np.int64)


def pattern_cases(todo: list[Side], s: Settings) -> list[tuple[str, Impl, Callable[[int, int], Any]]]:
    """(row name, implementation, round(n, tasks) -> (seconds, latencies))."""
    t, b = s.timeout, _budget(s)
    chans = [side for side in todo if side.kind in ("chan", "pygolang")]
    stdlib = next((side.impl for side in todo if side.impl.name == "stdlib"), None)
    cases: list[tuple[str, Impl, Callable[[int, int], Any]]] = []
    cases += [(W_CHAN, side.impl, lambda n, m, side=side: workers_chan(side, n, m, t, b)) for side in chans]
    if stdlib is not None:
        cases.append((W_MAP, stdlib, lambda n, m: workers_map(n, m, t)))
    for side in chans:
        cases.append((C_CHAN, side.impl, lambda n, m, side=side: collect_chan(side, n, m, t, b)))
        if side.kind == "chan" and side.impl.has("WaitGroup"):
            cases.append((C_LIST, side.impl, lambda n, m, impl=side.impl: collect_list(impl, n, m, t)))
    if stdlib is not None:
        cases.append((C_JOIN, stdlib, lambda n, m: collect_list(stdlib, n, m, t)))
    return cases


def measure_patterns(cases: list[tuple[str, Impl, Callable[[int, int], Any]]], counts: list[int],
                     s: Settings) -> list[Result]:
    results = []
    for n in counts:
        for _, _, one in cases:  # warm-up
            one(n, max(1, s.tasks // 10))
        rates: list[list[float]] = [[] for _ in cases]
        lats: list[list[Any]] = [[] for _ in cases]
        for _ in range(s.repeat):
            for i, (name, impl, one) in enumerate(cases):
                sec, lat = one(n, s.tasks)
                rates[i].append(n * s.tasks / sec)
                lats[i].append(lat)
                s.step(f"{name} [{impl.name}] x{n}")
        for (name, impl, _), rs, ls in zip(cases, rates, lats, strict=True):
            p50, p99 = np.percentile(np.concatenate(ls), [50, 99]) / 1e3
            results.append(make_result(NAME, name, impl.name, "tasks/s", rs, n, tasks=n * s.tasks,
                                       p50_us=float(p50), p99_us=float(p99)))
    return results


# --- the run --------------------------------------------------------------------


def sizes(todo: list[Side]) -> list[Result]:
    out = []
    for side in todo:
        obj = _chan_objects(side, 0)
        out.append(make_result(NAME, SIZE.name(side.column), side.impl.name, "B",
                               [sys.getsizeof(obj)], deep=alloc.deep_sizeof(obj)))
    return out


def run(s: Settings) -> list[Result]:
    todo = sides(s.impls)
    loops: list[tuple[str, Impl, LoopTimer]] = [
        (op.name, FLOOR, ops.make_timer(op, FLOOR)) for op in ops.FLOORS[:2]]  # empty loop, F
    for side in todo:
        loops += [(name, side.impl, timer) for name, timer in loop_timers(side, s.timeout)]
    trips = [(TRIP.name(side.column), side.impl,
              lambda n, side=side: round_trips(side, n, s.timeout, _budget(s))) for side in todo]
    trips += [(SEM_TRIP.chan, side.impl,
               lambda n, impl=side.impl: handoff.round_trips(impl, "Semaphore pair", n, s.timeout))
              for side in todo if side.kind == "chan" and side.impl.has("Semaphore")]
    counts = list(s.threads) if s.threads else list(PATTERN_THREADS)
    patterns = pattern_cases(todo, s)
    s.begin(NAME, (len(loops) + len(todo) + len(trips)) * (s.repeat + 1)
            + len(counts) * len(patterns) * s.repeat + 1)
    results = ops.time_loops(NAME, loops, s)
    results += measure_spsc(todo, s)
    results += handoff.measure_trips(NAME, trips, s)  # type: ignore[arg-type]  # lambdas with defaults
    results += measure_patterns(patterns, counts, s)
    results += sizes(todo)
    s.step("sizes")
    return results


# --- report ---------------------------------------------------------------------

F_NAME = ops.F_NAME

TARGETS = [
    Target("Chan send+recv in one thread, c / F", NAME, (PAIR.chan, "c"), (F_NAME, "floor"), 6),
    Target("Queue put+get / Chan send+recv c", NAME, (PAIR.queue, "stdlib"), (PAIR.chan, "c"),
           15, "ge"),
    Target("SimpleQueue put+get / Chan send+recv c", NAME, (PAIR.simple, "stdlib"),
           (PAIR.chan, "c"), 1, "ge"),
    Target("1 producer -> 1 consumer items/s, c / Queue(128)", NAME, (SPSC.chan, "c"),
           (SPSC.queue, "stdlib"), 10, "ge"),
    Target("1 producer -> 1 consumer items/s, c / SimpleQueue", NAME, (SPSC.chan, "c"),
           (SPSC.simple, "stdlib"), 1, "ge"),
    Target("unbuffered round trip, c / c Semaphore pair", NAME, (TRIP.chan, "c"),
           (SEM_TRIP.chan, "c"), 1.5),
    Target("unbuffered round trip, c / pygolang", NAME, (TRIP.chan, "c"), (TRIP.chan, "pygolang"), 0.2),
    Target("select 2 cases 1 ready default, c / recv of a ready value", NAME, (SELECT.chan, "c"),
           (READY.chan, "c"), 2),
    Target("sys.getsizeof(Chan(0)), c, bytes", NAME, (SIZE.chan, "c"), None, 128),
]

FIGURES = (PAIR, READY, SELECT, SPSC, TRIP, SEM_TRIP)


def plot_label(r: Result) -> str | None:
    """Sizes are not drawn; the patterns' bars are per thread count."""
    if r.unit == "B":
        return None
    return f"{r.name} x{r.threads}" if r.unit == "tasks/s" else r.name


def _columns(idx: Index) -> list[tuple[str, str]]:
    """(column, implementation) of the columns this run has results for."""
    impls = set(idx.impls(NAME))
    cols = [("c", "c"), ("py", "py"), ("pygolang", "pygolang"), ("Queue", "stdlib"),
            ("SimpleQueue", "stdlib")]
    return [(col, impl) for col, impl in cols if impl in impls]


def _figures_table(idx: Index, markdown: bool) -> str:
    cols = _columns(idx)
    base = base_impl([c for c, _ in cols])
    others = [c for c, _ in cols if c != base]
    f_res = idx.get(NAME, F_NAME, "floor")
    headers = ["figure", "unit", *[c for c, _ in cols]]
    if base:
        headers.append(f"{base}/F")
    headers += [f"vs {c}" for c in others]
    rows = []
    for fig in FIGURES:
        found = {c: idx.get(NAME, fig.name(c), i) for c, i in cols}
        if not any(found.values()):
            continue
        # A round trip is two rows: its median (± spread) and its p99.
        lines: list[tuple[str, Callable[[Result], Result], bool]] = [("", _same, True)]
        if fig.unit == "µs":
            lines = [(", median", _same, True), (", p99", _p99, False)]
        for suffix, pick, spread in lines:
            picked = {c: pick(r) if r is not None else None for c, r in found.items()}
            row = [fig.label + suffix, fig.unit]
            row += [cell(r, spread) for r in picked.values()]
            b = picked.get(base) if base else None
            if base:
                per_f = fig.unit == "ns/op" and b is not None and f_res is not None and f_res.median
                row.append(fmt_ratio(b.median / f_res.median) if per_f else "")  # type: ignore[union-attr]
            for c in others:
                sp = speedup(b, picked[c])
                row.append(fmt_ratio(sp) if sp is not None and fig.unit != "B" else "")
            rows.append(row)
    return table(headers, rows, markdown)


def _same(r: Result) -> Result:
    return r


def _p99(r: Result) -> Result:
    return Result(r.scenario, r.name, r.impl, r.unit, float(r.extra.get("p99_us", np.nan)), 0.0,
                  [], r.threads)


def _patterns_table(idx: Index, markdown: bool) -> str:
    res = [r for r in idx.of(NAME) if r.unit == "tasks/s"]
    impl_order = ["c", "py", "pygolang", "stdlib"]

    def order(key: tuple[int, str, str]) -> tuple[int, bool, int, bool]:
        # By thread count; the workers rows first; each implementation's
        # channel row, then the row it is compared with.
        threads, name, impl = key
        return (threads, not name.startswith("workers"),
                impl_order.index(impl) if impl in impl_order else len(impl_order),
                name not in (W_CHAN, C_CHAN))

    keys = sorted(ordered((r.threads, r.name, r.impl) for r in res), key=order)
    rows = []
    for threads, name, impl in keys:
        r = idx.get(NAME, name, impl, threads)
        if name == W_CHAN:
            ref = idx.get(NAME, W_MAP, "stdlib", threads)
        elif name == C_CHAN:
            ref = idx.get(NAME, C_LIST, impl, threads) or idx.get(NAME, C_JOIN, "stdlib", threads)
        else:
            ref = None
        sp = speedup(r, ref)
        rows.append([name, str(threads), impl, cell(r), fmt(r.extra.get("p99_us")) if r else "",
                     f"{fmt_ratio(sp)} vs {ref.name.split(': ')[1]}" if sp is not None and ref else ""])
    return table(["pattern", "threads", "impl", "tasks/s", "p99 (µs)", "channel vs the other"],
                 rows, markdown)


def _sizes_table(idx: Index, markdown: bool) -> str:
    cols = [(c, i) for c, i in _columns(idx) if idx.get(NAME, SIZE.name(c), i)]
    return table(["object", *[f"{c} (B)" for c, _ in cols]],
                 [["a new Chan(0) / Queue() / SimpleQueue()",
                   *[alloc.sizeof_cell(idx.get(NAME, SIZE.name(c), i)) for c, i in cols]]],
                 markdown)


def render(idx: Index, markdown: bool) -> list[str]:
    out = [_figures_table(idx, markdown)]
    f = idx.get(NAME, F_NAME, "floor")
    notes = ("Median of the repeats ± interquartile range. ns/op: one thread, a send+recv pair "
             "counts as one operation, the timing loop's own cost is subtracted and ready values "
             "are sent outside the clock")
    notes += f"; F = {fmt(f.median)} ns, an empty C method call." if f else "."
    notes += (" Queue and SimpleQueue are the standard library's (put/get); their round trip "
              "goes over two Queue(1) / two SimpleQueue. vs X = X's figure / the base's, "
              "above 1 means the base is better.")
    out.append(notes)
    if any(r.unit == "tasks/s" for r in idx.of(NAME)):
        out.append(_patterns_table(idx, markdown))
        out.append("The articles' patterns: N workers `for job in jobs` into a results channel "
                   "(a producer sends the jobs, the main thread ranges over the results) vs "
                   "ThreadPoolExecutor.map; N threads sending results on a channel vs appending "
                   "them to a Lock-protected list, then WaitGroup.wait() (stdlib: join). p99: "
                   "latency from handing a job over (map hands over all at once) or starting a "
                   "task, to its result being collected.")
    if any(r.unit == "B" for r in idx.of(NAME)):
        out.append(_sizes_table(idx, markdown))
    return with_targets(out, idx, TARGETS, markdown)
