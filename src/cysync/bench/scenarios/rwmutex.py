"""rwmutex: readers of one RWMutex on N threads, operations per second.

Each of N threads runs ``rw.rlock(); rw.runlock()`` in a compiled loop (the
``ops`` statement; for readerwriterlock ``r.acquire(); r.release()`` with a
``gen_rlock()`` of its own on one ``RWLockWrite``), all on the same lock,
started together; the figure is
the total of all threads per second of wall time, and the last column is
that against 1 thread. Nobody ever writes, so no reader waits: what limits
the scaling is the lock's shared state (cysync: one atomic word that every
``rlock`` and ``runlock`` changes) and, with a GIL, the GIL itself.

The figure means something only on a free-threaded interpreter (3.13t), where
the threads run at once; with the GIL they take turns and 2 threads do at best
what 1 does. The report says which kind of interpreter ran.

Thread counts: 1 and 2, or ``--threads``.
"""

from __future__ import annotations

import threading
import time

from ..runner import UNROLL, BenchError, Impl, LoopTimer, Result, Settings, Worker, gil_enabled, join_all, make_result
from ..tables import Index, Target, side_by_side
from . import ops

NAME = "rwmutex"
TITLE = "RWMutex readers on N threads, one lock"
UNIT = "ops/s"
ROW = "rlock()+runlock() on N threads"
#: Thread counts when --threads is not given.
DEFAULT_THREADS = (1, 2)


def applicable(impl: Impl) -> bool:
    return impl.has("RWMutex")


def _namespace(impl: Impl, shared: object) -> dict[str, object]:
    """What one thread's loop uses: the shared lock, or for readerwriterlock a
    reader object of its own (they keep per-holder state: one per thread)."""
    if impl.name == "readerwriterlock":
        return {"r": shared.gen_rlock()}  # type: ignore[attr-defined]
    return {"rw": shared}


def one_round(impl: Impl, threads: int, n: int, timeout: float) -> float:
    """``threads`` threads, each running the read loop ``n`` times
    (``n * UNROLL`` rlock+runlock pairs) on one lock: pairs per second."""
    stmt = ops.op_named(ops.RW_READ).stmt_for(impl)
    shared = impl.RWMutex()
    timers = [LoopTimer(stmt, _namespace(impl, shared)) for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    ends: list[float] = []

    def reader(timer: LoopTimer) -> None:
        start.wait(timeout)
        timer(n)
        ends.append(time.perf_counter())

    workers = [Worker(reader, timer, name=f"rwmutex reader {i}") for i, timer in enumerate(timers)]
    for w in workers:
        w.start()
    try:
        start.wait(timeout)
    except threading.BrokenBarrierError:
        raise BenchError(f"rwmutex: {threads} reader threads did not start within {timeout:g} s") from None
    t0 = time.perf_counter()
    join_all(workers, timeout, "rwmutex reader")
    return threads * n * UNROLL / (max(ends) - t0)


def run(s: Settings) -> list[Result]:
    impls = [i for i in s.impls if applicable(i)]
    counts = list(s.threads) if s.threads else list(DEFAULT_THREADS)
    s.begin(NAME, len(impls) * (len(counts) * s.repeat + 1))
    results = []
    for impl in impls:
        # One thread's loop count for about `duration` seconds.
        timer = LoopTimer(ops.op_named(ops.RW_READ).stmt_for(impl), _namespace(impl, impl.RWMutex()))
        timer.calibrate(s.duration)
        n = timer.n
        s.step(f"calibrating [{impl.name}]")
        samples: dict[int, list[float]] = {t: [] for t in counts}
        for _ in range(s.repeat):  # interleaved: drift hits every count alike
            for threads in counts:
                samples[threads].append(one_round(impl, threads, n, s.timeout))
                s.step(f"{impl.name} x{threads}")
        for threads, xs in samples.items():
            results.append(make_result(NAME, ROW, impl.name, UNIT, xs, threads, loops=n * UNROLL,
                                       gil=gil_enabled()))
    return results


# --- report -------------------------------------------------------------------

TARGETS: list[Target] = []

#: The panel of the plot: a line per implementation over thread counts.
PLOT = "lines"


def render(idx: Index, markdown: bool) -> list[str]:
    gil = {r.extra.get("gil") for r in idx.of(NAME)}
    if gil == {False}:
        kind = "This run had no GIL: the threads ran at once."
    else:
        kind = ("This run had the GIL: the threads took turns, so this says nothing about "
                "scaling; run it on a free-threaded interpreter (3.13t).")
    note = (f"{UNIT}, all threads together, on one lock that nobody writes; "
            f"last column: against 1 thread. {kind}")
    return [side_by_side(idx, NAME, markdown, threads_col=True, scaling=True), note]
