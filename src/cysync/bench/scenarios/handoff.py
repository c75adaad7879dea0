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


def round_trips(impl: Impl, kind: str, n: int, timeout: float) -> Any:
    """Latencies (ns) of ``n`` round trips between this thread and a new one."""
    ping, pong, abort = _pair(impl, kind, timeout)

    def pong_loop() -> None:
        for _ in range(n):
            pong()

    other = Worker(pong_loop, name=f"pong-{kind}")
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
            abort()  # lets a pong blocked in the barrier go
        join_all([other], timeout, f"handoff {kind}")  # the pong's own error says more
        if isinstance(exc, (BenchError, KeyboardInterrupt)):
            raise
        raise BenchError(f"handoff {kind} [{impl.name}]: {exc!r}") from exc
    join_all([other], timeout, f"handoff {kind}")
    return lat


def run(s: Settings) -> list[Result]:
    todo = [(kind, impl) for kind, _ in KINDS for impl in s.impls if applicable(kind, impl)]
    s.begin(NAME, len(todo) * (s.repeat + 1))
    counts = []
    for kind, impl in todo:  # probe (and warm-up): how many trips fill the duration
        t0 = time.perf_counter()
        round_trips(impl, kind, 50, s.timeout)
        per_trip = (time.perf_counter() - t0) / 50
        counts.append(int(min(200_000, max(50, s.duration / max(per_trip, 1e-7)))))
        s.step(f"probing {kind} [{impl.name}]")
    runs: list[list[Any]] = [[] for _ in todo]
    for _ in range(s.repeat):
        for i, (kind, impl) in enumerate(todo):
            runs[i].append(round_trips(impl, kind, counts[i], s.timeout))
            s.step(f"{kind} [{impl.name}]")
    results = []
    for (kind, impl), rs in zip(todo, runs):
        pooled = np.concatenate(rs)
        p50, p99 = np.percentile(pooled, [50, 99]) / 1e3
        medians = [float(np.median(r)) / 1e3 for r in rs]
        res = make_result(NAME, kind, impl.name, UNIT, medians, 2,
                          p50_us=float(p50), p99_us=float(p99), trips=int(pooled.size))
        res.median = float(p50)  # the median of all round trips, not of the repeats' medians
        results.append(res)
    return results


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
