"""fanout: N threads doing M tasks each, then fan-in; tasks per second.

Two shapes, each for every thread count (default 1 .. 2x cores):

- ``spawn + join``: start N threads of M tasks each and wait for all of them:
  ``wg.go(worker)`` N times then ``wg.wait()`` (c, py: Go 1.25's
  WaitGroup.Go), or ``Thread(target=worker).start()`` then ``join()`` (stdlib).
- ``executor + wait``: submit N*M tasks to a ``ThreadPoolExecutor`` of N
  workers and wait until all are done: each task calls ``wg.done()`` and the
  submitter ``wg.wait()`` (c, py), or ``concurrent.futures.wait(futures)``
  (stdlib). The executor is started and warm before the clock starts.
- ``errgroup``: Go's errgroup shape, N*M tasks through ``ErrGroup(limit=N)``
  (``go(task)`` each, then ``wait()``, which also joins the group's threads)
  for c and py; stdlib: a fresh ``ThreadPoolExecutor(N)``, ``submit`` each,
  ``concurrent.futures.wait`` and ``shutdown``.  Thread start-up is counted
  on both sides.

- ``errgroup tiny tasks, limit N`` (N = 1, 2, 4, whatever the thread
  counts): the dispatch cost alone, ``TINY_FACTOR`` x M tasks that do
  nothing through ``ErrGroup(limit=N)`` (c, py) against a fresh
  ``ThreadPoolExecutor(max_workers=N)``, ``submit`` each, ``wait`` and
  ``shutdown`` (stdlib); thread start-up counted on both sides. The target:
  the C ErrGroup at least 2x the executor's tasks/s.

In the other shapes a task is a little CPU-bound Python loop (``runner.spin``), so on a
free-threaded interpreter the figures show how throughput scales with threads.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

from ..runner import DEFAULT_TIMEOUT, BenchError, Impl, Result, Settings, check, join_all, make_result, spin
from ..tables import Index, Target, side_by_side, with_targets

NAME = "fanout"
TITLE = "fan-out / fan-in of N threads x M tasks"
UNIT = "tasks/s"

#: Loop length of one task (about 6 us on CPython 3.11): long enough that a
#: thread's M tasks outweigh starting it, so that parallel threads can show.
TASK_WORK = 200

SHAPES = ("spawn + join", "executor + wait", "errgroup")

#: The limits of the tiny-task rows, and their names.
TINY_LIMITS = (1, 2, 4)
TINY = "errgroup tiny tasks, limit {}"
#: Tiny tasks per round: this many times M (tasks per thread).
TINY_FACTOR = 10


def applicable(impl: Impl) -> bool:
    return impl.name == "stdlib" or (impl.has("WaitGroup") and impl.name in ("c", "py"))


def _worker(tasks: int) -> None:
    for _ in range(tasks):
        spin(TASK_WORK)


def _task() -> None:
    spin(TASK_WORK)


def _task_then(done: Any) -> None:
    spin(TASK_WORK)
    done()


def spawn_join(impl: Impl, threads: int, tasks: int, timeout: float) -> float:
    """One round of ``spawn + join``: seconds."""
    t0 = time.perf_counter()
    if impl.name == "stdlib":
        started = [threading.Thread(target=_worker, args=(tasks,), daemon=True)
                   for _ in range(threads)]
        for t in started:
            t.start()
        join_all(started, timeout, "fanout worker")
    else:
        wg = impl.WaitGroup()
        for _ in range(threads):
            wg.go(_worker, tasks)
        check(wg.wait(timeout), "fanout: WaitGroup.wait()", timeout)
    return time.perf_counter() - t0


def executor_wait(impl: Impl, executor: concurrent.futures.Executor, threads: int, tasks: int,
                  timeout: float) -> float:
    """One round of ``executor + wait`` on a started executor: seconds."""
    total = threads * tasks
    submit = executor.submit
    t0 = time.perf_counter()
    if impl.name == "stdlib":
        futures = [submit(_task) for _ in range(total)]
        _, pending = concurrent.futures.wait(futures, timeout)
        check(not pending, "fanout: concurrent.futures.wait()", timeout)
        elapsed = time.perf_counter() - t0
        for f in futures:
            f.result(0)  # a task that raised is an error of the benchmark
        return elapsed
    wg = impl.WaitGroup()
    wg.add(total)
    done = wg.done
    for _ in range(total):
        submit(_task_then, done)
    check(wg.wait(timeout), "fanout: WaitGroup.wait()", timeout)
    return time.perf_counter() - t0


def errgroup(impl: Impl, threads: int, tasks: int, timeout: float) -> float:
    """One round of ``errgroup``: seconds (None when impl has no ErrGroup)."""
    total = threads * tasks
    t0 = time.perf_counter()
    if impl.name == "stdlib":
        ex = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
        try:
            futures = [ex.submit(_task) for _ in range(total)]
            _, pending = concurrent.futures.wait(futures, timeout)
            check(not pending, "fanout: concurrent.futures.wait()", timeout)
            for f in futures:
                f.result(0)
        finally:
            ex.shutdown(wait=True)
        return time.perf_counter() - t0
    group = impl.ErrGroup(limit=threads)
    go = group.go
    for _ in range(total):
        go(_task)
    group.wait()
    return time.perf_counter() - t0


def _nothing() -> None:
    pass


def errgroup_tiny(impl: Impl, limit: int, total: int, timeout: float) -> float:
    """One round of ``errgroup tiny tasks``: seconds."""
    t0 = time.perf_counter()
    if impl.name == "stdlib":
        ex = concurrent.futures.ThreadPoolExecutor(max_workers=limit)
        try:
            submit = ex.submit
            futures = [submit(_nothing) for _ in range(total)]
            _, pending = concurrent.futures.wait(futures, timeout)
            check(not pending, "fanout: concurrent.futures.wait()", timeout)
        finally:
            ex.shutdown(wait=True)
        return time.perf_counter() - t0
    group = impl.ErrGroup(limit=limit)
    go = group.go
    for _ in range(total):
        go(_nothing)
    group.wait()
    return time.perf_counter() - t0


def started_executor(threads: int, timeout: float = DEFAULT_TIMEOUT) -> concurrent.futures.ThreadPoolExecutor:
    """A ThreadPoolExecutor with all its ``threads`` workers running."""
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
    barrier = threading.Barrier(threads + 1)
    # Each worker thread is started by a submit that finds no idle worker;
    # holding every task at a barrier makes the executor start all of them.
    for _ in range(threads):
        ex.submit(barrier.wait, timeout)
    try:
        barrier.wait(timeout)
    except threading.BrokenBarrierError:
        ex.shutdown(wait=False, cancel_futures=True)
        raise BenchError(f"the executor did not start {threads} workers within {timeout:g} s") from None
    return ex


def run(s: Settings) -> list[Result]:
    impls = [i for i in s.impls if applicable(i)]
    counts = s.thread_counts()
    tiny_impls = [i for i in impls if i.name == "stdlib" or i.has("ErrGroup")]
    s.begin(NAME, (len(counts) * len(SHAPES) * len(impls) + len(TINY_LIMITS) * len(tiny_impls)) * s.repeat)
    results = []
    for threads in counts:
        ex = started_executor(threads, s.timeout)
        try:
            samples: dict[tuple[str, str], list[float]] = {}
            for impl in impls:  # warm-up
                spawn_join(impl, threads, max(1, s.tasks // 10), s.timeout)
                executor_wait(impl, ex, threads, max(1, s.tasks // 10), s.timeout)
            for _ in range(s.repeat):
                for shape in SHAPES:
                    for impl in impls:
                        if shape == SHAPES[0]:
                            sec = spawn_join(impl, threads, s.tasks, s.timeout)
                        elif shape == SHAPES[1]:
                            sec = executor_wait(impl, ex, threads, s.tasks, s.timeout)
                        elif impl.name == "stdlib" or impl.has("ErrGroup"):
                            sec = errgroup(impl, threads, s.tasks, s.timeout)
                        else:
                            s.step(f"{shape} [{impl.name}] x{threads}")
                            continue
                        samples.setdefault((shape, impl.name), []).append(threads * s.tasks / sec)
                        s.step(f"{shape} [{impl.name}] x{threads}")
        finally:
            ex.shutdown(wait=True)
        for (shape, impl_name), xs in samples.items():
            results.append(make_result(NAME, shape, impl_name, UNIT, xs, threads, tasks=s.tasks))
    total = TINY_FACTOR * s.tasks
    for limit in TINY_LIMITS:
        tiny: dict[str, list[float]] = {}
        for impl in tiny_impls:  # warm-up
            errgroup_tiny(impl, limit, max(1, total // 10), s.timeout)
        for _ in range(s.repeat):
            for impl in tiny_impls:
                tiny.setdefault(impl.name, []).append(total / errgroup_tiny(impl, limit, total, s.timeout))
                s.step(f"{TINY.format(limit)} [{impl.name}]")
        for impl_name, xs in tiny.items():
            results.append(make_result(NAME, TINY.format(limit), impl_name, UNIT, xs, limit, tasks=total))
    return results


# --- report -------------------------------------------------------------------

TARGETS: list[Target] = [
    Target(f"ErrGroup tiny tasks/s at limit {n}, c / ThreadPoolExecutor", NAME,
           (TINY.format(n), "c"), (TINY.format(n), "stdlib"), 2, "ge")
    for n in TINY_LIMITS
]

#: The panel of the plot: a line per shape and implementation over thread counts.
PLOT = "lines"


def render(idx: Index, markdown: bool) -> list[str]:
    return with_targets([side_by_side(idx, NAME, markdown, threads_col=True, scaling=True),
            ("tasks/s. c, py: WaitGroup (go + wait, or done() per task + wait), ErrGroup; "
             "stdlib: Thread.start + join, or concurrent.futures.wait, ThreadPoolExecutor. "
             "Last column: throughput relative to 1 thread.")], idx, TARGETS, markdown)
