"""handoff: round-trip latency between two threads; median and p99, in µs.

A ping thread (the main thread) and a pong thread pass the turn back and
forth; each round trip is timed with ``perf_counter_ns``:

- ``Semaphore pair``: ping ``a.release(); b.acquire()``, pong ``a.acquire(); b.release()``;
- ``Event pair``: ping ``e1.set(); e2.wait(); e2.clear()``, pong
  ``e1.wait(); e1.clear(); e2.set()``;
- ``Barrier(2)``: both threads call ``b.wait()``; a round trip is two barrier
  generations, so that each thread wakes the other once, as in the pairs.

Every wait has a timeout: a thread that does not answer is an error, not a hang.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..runner import BenchError, Impl, Result, Settings, Worker, check, join_all, make_result, np
from ..tables import Index, Target, side_by_side, with_targets

NAME = "handoff"
TITLE = "round trip between two threads"
UNIT = "µs"

KINDS = (("Semaphore pair", "Semaphore"), ("Event pair", "Event"), ("Barrier(2)", "Barrier"))


def applicable(kind: str, impl: Impl) -> bool:
    return impl.name != "pygolang" and impl.has(dict(KINDS)[kind])


def _pair(impl: Impl, kind: str, timeout: float) -> tuple[Callable[[], None], Callable[[], None], Any]:
    """(ping step, pong step, abort) for one round trip."""
    if kind == "Semaphore pair":
        a, b = impl.Semaphore(0), impl.Semaphore(0)

        def ping() -> None:
            a.release()
            check(b.acquire(timeout=timeout), "handoff: the pong's Semaphore release", timeout)

        def pong() -> None:
            check(a.acquire(timeout=timeout), "handoff: the ping's Semaphore release", timeout)
            b.release()

        return ping, pong, None
    if kind == "Event pair":
        e1, e2 = impl.Event(), impl.Event()

        def ping() -> None:
            e1.set()
            check(e2.wait(timeout), "handoff: the pong's Event.set()", timeout)
            e2.clear()

        def pong() -> None:
            check(e1.wait(timeout), "handoff: the ping's Event.set()", timeout)
            e1.clear()
            e2.set()

        return ping, pong, None
    barrier = impl.Barrier(2)

    def both() -> None:
        barrier.wait(timeout)
        barrier.wait(timeout)

    return both, both, barrier.abort


def time_trips(ping: Callable[[], None], pong: Callable[[], None], abort: Callable[[], None] | None,
               n: int, timeout: float, what: str) -> Any:
    """Latencies (ns) of ``n`` round trips: ``ping()`` here, ``pong()`` in a new thread.

    ``abort`` (or None) lets a pong go that waits without a timeout, when
    the ping fails; ``what`` names the run in errors.
    """

    def pong_loop() -> None:
        for _ in range(n):
            pong()

    other = Worker(pong_loop, name=f"pong of {what}")
    other.start()
    lat = np.zeros(n, dtype=np.int64)
    clock = time.perf_counter_ns
    try:
        for i in range(n):
            t = clock()
            ping()
            lat[i] = clock() - t
    except BaseException as exc:
        if abort is not None:
            abort()
        join_all([other], timeout, what)  # the pong's own error says more
        if isinstance(exc, (BenchError, KeyboardInterrupt)):
            raise
        raise BenchError(f"{what}: {exc!r}") from exc
    join_all([other], timeout, what)
    return lat


def round_trips(impl: Impl, kind: str, n: int, timeout: float) -> Any:
    """Latencies (ns) of ``n`` round trips between this thread and a new one."""
    ping, pong, abort = _pair(impl, kind, timeout)
    return time_trips(ping, pong, abort, n, timeout, f"handoff {kind} [{impl.name}]")


def measure_trips(scenario: str, cases: list[tuple[str, Impl, Callable[[int], Any]]],
                  s: Settings, unit: str = "µs") -> list[Result]:
    """Median and p99 round trip of each (name, implementation, trips).

    ``trips(n)`` returns the latencies (ns) of n round trips. A probe of 50
    trips (a warm-up too) sizes each run to ``s.duration``; the repeats are
    interleaved. Takes ``len(cases) * (s.repeat + 1)`` progress steps.
    """
    counts = []
    for name, impl, trips in cases:
        t0 = time.perf_counter()
        trips(50)
        per_trip = (time.perf_counter() - t0) / 50
        counts.append(int(min(200_000, max(50, s.duration / max(per_trip, 1e-7)))))
        s.step(f"probing {name} [{impl.name}]")
    runs: list[list[Any]] = [[] for _ in cases]
    for _ in range(s.repeat):
        for i, (name, impl, trips) in enumerate(cases):
            runs[i].append(trips(counts[i]))
            s.step(f"{name} [{impl.name}]")
    results = []
    for (name, impl, _), rs in zip(cases, runs, strict=True):
        pooled = np.concatenate(rs)
        p50, p99 = np.percentile(pooled, [50, 99]) / 1e3
        medians = [float(np.median(r)) / 1e3 for r in rs]
        res = make_result(scenario, name, impl.name, unit, medians, 2,
                          p50_us=float(p50), p99_us=float(p99), trips=int(pooled.size))
        res.median = float(p50)  # the median of all round trips, not of the repeats' medians
        results.append(res)
    return results


def run(s: Settings) -> list[Result]:
    todo = [(kind, impl) for kind, _ in KINDS for impl in s.impls if applicable(kind, impl)]
    s.begin(NAME, len(todo) * (s.repeat + 1))
    return measure_trips(NAME, [
        (kind, impl, lambda n, kind=kind, impl=impl: round_trips(impl, kind, n, s.timeout))
        for kind, impl in todo], s, UNIT)


# --- report -------------------------------------------------------------------

TARGETS = [
    Target("Semaphore pair round trip, c / stdlib", NAME, ("Semaphore pair", "c"),
           ("Semaphore pair", "stdlib"), 0.8),
    Target("Barrier(2) round trip, c / stdlib", NAME, ("Barrier(2)", "c"),
           ("Barrier(2)", "stdlib"), 0.8),
]


def render(idx: Index, markdown: bool) -> list[str]:
    out = [side_by_side(idx, NAME, markdown, p99=True),
           "Median round trip (µs) between two threads ± interquartile range of the repeats' medians."]
    return with_targets(out, idx, TARGETS, markdown)
