"""pool: a worker pool whose concurrency a semaphore bounds; tasks/s and p99 latency.

The Go pattern ``sem.Acquire(1); go func() { defer sem.Release(1); work() }()``
over a ``ThreadPoolExecutor`` of N workers: a dispatcher takes a unit of a
semaphore of N units before it submits each task, and the task gives it back
when done, so at most N tasks are in flight (the executor's queue never
grows). Latency is from the moment the dispatcher asks for a unit to the end
of the task. Bounded by a ``Semaphore`` (c, py, stdlib) or a
``WeightedSemaphore`` (c, py; stdlib has none).

When cysync has ``patch()``, one more row: ``ThreadPoolExecutor.map`` over
20,000 trivial tasks without (column stdlib) and with (column of the
implementation ``cysync.patch()`` installs) cysync's classes patched into
``threading`` — what a program gets without changing its code.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from ..runner import BenchError, Impl, Result, Settings, check, make_result, np, spin
from ..tables import Index, Target, side_by_side
from .fanout import started_executor

NAME = "pool"
TITLE = "worker pool bounded by a semaphore"
UNIT = "tasks/s"

#: Loop length of one task (about 30 us on CPython 3.11), well above the
#: cost of dispatching it, so that the pool's throughput can scale.
TASK_WORK = 1000

KINDS = (("Semaphore pool", "Semaphore"), ("WeightedSemaphore pool", "WeightedSemaphore"))
MAP_ROW = "executor.map(20k tasks), patch()"


def applicable(kind: str, impl: Impl) -> bool:
    return impl.name != "pygolang" and impl.has(dict(KINDS)[kind])


def pool_round(impl: Impl, kind: str, executor: concurrent.futures.Executor, limit: int,
               total: int, timeout: float) -> tuple[float, Any]:
    """Dispatch ``total`` tasks at most ``limit`` at a time: (seconds, latencies in ns)."""
    clock = time.perf_counter_ns
    if kind == "Semaphore pool":
        sem = impl.Semaphore(limit)

        def acquire() -> bool:
            return sem.acquire(timeout=timeout)

        release = sem.release
    else:
        sem = impl.WeightedSemaphore(limit)

        def acquire() -> bool:
            return sem.acquire(1, timeout)

        def release() -> None:
            sem.release(1)

    starts = [0] * total
    ends = [0] * total

    def task(i: int) -> None:
        spin(TASK_WORK)
        ends[i] = clock()
        release()

    submit = executor.submit
    t0 = clock()
    for i in range(total):
        starts[i] = clock()
        check(acquire(), "pool: a free semaphore unit", timeout)
        submit(task, i)
    for _ in range(limit):  # all units back: every task has finished
        check(acquire(), "pool: the last tasks to finish", timeout)
    elapsed = (clock() - t0) / 1e9
    return elapsed, np.asarray(ends, dtype=np.int64) - np.asarray(starts, dtype=np.int64)


def _trivial(x: int) -> int:
    return x


def map_round(tasks: int, workers: int, timeout: float) -> float:
    """``ThreadPoolExecutor.map`` over ``tasks`` trivial tasks, executor start included: seconds."""
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        try:
            for _ in ex.map(_trivial, range(tasks), timeout=timeout):
                pass
        except concurrent.futures.TimeoutError:
            raise BenchError(f"pool: executor.map did not finish within {timeout:g} s") from None
    return time.perf_counter() - t0


def patch_api() -> tuple[Any, Any, str] | None:
    """``(patch, unpatch, implementation)`` when cysync has them, else None."""
    try:
        import cysync
    except ImportError:
        return None
    patch, unpatch = getattr(cysync, "patch", None), getattr(cysync, "unpatch", None)
    if patch is None or unpatch is None:
        return None
    return patch, unpatch, "c" if cysync.IMPLEMENTATION == "c" else "py"


def map_rows(s: Settings) -> list[Result]:
    api = patch_api()
    if api is None or s.impl("stdlib") is None:
        return []
    patch, unpatch, patched_impl = api
    workers = s.cores
    samples: dict[str, list[float]] = {"stdlib": [], patched_impl: []}
    map_round(min(s.map_tasks, 1000), workers, s.timeout)  # warm-up
    for _ in range(s.repeat):
        samples["stdlib"].append(s.map_tasks / map_round(s.map_tasks, workers, s.timeout))
        patch()
        try:
            samples[patched_impl].append(s.map_tasks / map_round(s.map_tasks, workers, s.timeout))
        finally:
            unpatch()
        s.step("executor.map")
    return [make_result(NAME, MAP_ROW, impl, UNIT, xs, workers, tasks=s.map_tasks)
            for impl, xs in samples.items()]


def run(s: Settings) -> list[Result]:
    counts = s.thread_counts()
    todo = [(kind, impl) for kind, _ in KINDS for impl in s.impls if applicable(kind, impl)]
    has_map = patch_api() is not None and s.impl("stdlib") is not None
    s.begin(NAME, len(counts) * len(todo) * s.repeat + (s.repeat if has_map else 0))
    results = []
    for threads in counts:
        total = threads * s.tasks
        ex = started_executor(threads, s.timeout)
        try:
            for kind, impl in todo:  # warm-up
                pool_round(impl, kind, ex, threads, max(threads, total // 10), s.timeout)
            rates: list[list[float]] = [[] for _ in todo]
            lats: list[list[Any]] = [[] for _ in todo]
            for _ in range(s.repeat):
                for i, (kind, impl) in enumerate(todo):
                    sec, lat = pool_round(impl, kind, ex, threads, total, s.timeout)
                    rates[i].append(total / sec)
                    lats[i].append(lat)
                    s.step(f"{kind} [{impl.name}] x{threads}")
        finally:
            ex.shutdown(wait=True)
        for (kind, impl), rs, ls in zip(todo, rates, lats, strict=True):
            p50, p99 = np.percentile(np.concatenate(ls), [50, 99]) / 1e3
            results.append(make_result(NAME, kind, impl.name, UNIT, rs, threads, tasks=total,
                                       p50_us=float(p50), p99_us=float(p99)))
    results += map_rows(s)
    return results


# --- report -------------------------------------------------------------------

TARGETS: list[Target] = []

#: The panel of the plot: a line per kind and implementation over thread counts.
PLOT = "lines"


def render(idx: Index, markdown: bool) -> list[str]:
    return [side_by_side(idx, NAME, markdown, threads_col=True, p99=True, scaling=True),
            ("tasks/s; p99 = 99th percentile latency (µs) from asking for a semaphore unit to the "
             "task's end. executor.map row: stdlib = threading as is, c/py = after cysync.patch().")]
