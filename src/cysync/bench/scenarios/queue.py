"""queue: cysync's ``Queue`` against the standard ``queue.Queue`` and ``queue.SimpleQueue``.

Columns: cysync's C core (``c``) and pure Python (``py``) once they have
``Queue``, and the standard library's ``Queue`` and ``SimpleQueue`` (both
under the implementation ``stdlib``).

Figures:

- ``q.put(x); q.get()`` in one thread, ns (compiled loop, empty loop
  subtracted, F measured in the same run, as in ``ops``);
- 1 producer thread -> 1 consumer thread through a ``Queue(128)``
  (``SimpleQueue``: unbounded), items/s;
- 4 producer threads -> 4 consumer threads through one ``Queue(128)``, items/s;
- ``put`` + ``get`` + ``task_done`` of ``JOIN_ITEMS`` items between the main
  thread and a worker, and the main thread's final ``join()``, items/s
  (``SimpleQueue`` has no ``task_done``);
- a logging pipeline: ``QueueHandler`` -> the queue -> ``QueueListener``,
  records/s from the first record to ``listener.stop()`` (which drains it);
  the ``c`` column's queue is made by ``queue.Queue(-1)`` under
  ``cysync.patch(queue=True)``, as an application would.

Targets (``TARGETS``, printed as met / MISSED) are ratios of figures of the
same run.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..runner import FLOOR, BenchError, Impl, LoopTimer, Result, Settings, Worker, check, join_all, make_result
from ..tables import Index, Target, cell, fmt, fmt_ratio, speedup, table, with_targets
from . import ops

NAME = "queue"
TITLE = "Queue vs queue.Queue / SimpleQueue"

#: Bound of the threaded figures' queues.
MAXSIZE = 128
#: Producers and consumers of the many-threads figure.
MANY = 4
#: Items of the task_done/join figure (the issue's 100k).
JOIN_ITEMS = 100_000

COLUMNS = ("c", "py", "Queue", "SimpleQueue")


@dataclass(frozen=True)
class Side:
    """One column: an implementation and the queue class it measures."""

    column: str
    impl: Impl
    make: Callable[[int], Any]


def sides(impls: Sequence[Impl]) -> list[Side]:
    out = []
    for impl in impls:
        if impl.name == "stdlib":
            out += [Side("Queue", impl, queue.Queue), Side("SimpleQueue", impl, lambda _: queue.SimpleQueue())]
        elif impl.has("Queue"):
            out.append(Side(impl.name, impl, impl.Queue))
    return sorted(out, key=lambda side: COLUMNS.index(side.column))


@dataclass(frozen=True)
class Figure:
    label: str
    unit: str
    what: str  # result name: f"{column} {what}"

    def name(self, column: str) -> str:
        return f"{column}: {self.what}"


PAIR = Figure("put(x); get() in one thread", "ns/op", "put+get")
SPSC = Figure(f"1 producer -> 1 consumer, Queue({MAXSIZE})", "items/s", f"1 -> 1, maxsize {MAXSIZE}")
MPMC = Figure(f"{MANY} producers -> {MANY} consumers, Queue({MAXSIZE})", "items/s",
              f"{MANY} -> {MANY}, maxsize {MAXSIZE}")
JOIN = Figure(f"put + get + task_done, then join(), {JOIN_ITEMS // 1000}k items", "items/s",
              "put+get+task_done+join")
LOG = Figure("QueueHandler -> queue -> QueueListener", "records/s", "logging pipeline")
FIGURES = (PAIR, SPSC, MPMC, JOIN, LOG)


# --- the threaded figures -----------------------------------------------------------


def producers_consumers(side: Side, producers: int, consumers: int, items: int, timeout: float) -> float:
    """Seconds for ``items`` items (split among the producers) to reach the consumers."""
    q = side.make(MAXSIZE)
    per = max(1, items // producers)
    go = threading.Event()
    what = f"queue {producers} -> {consumers} [{side.column}]"
    bounded = side.column != "SimpleQueue"

    def produce() -> None:
        put = q.put
        check(go.wait(timeout), "queue: the start signal", timeout)
        if bounded:
            for i in range(per):
                put(i, True, timeout)
        else:
            for i in range(per):
                put(i)

    def consume(n: int) -> None:
        get = q.get
        check(go.wait(timeout), "queue: the start signal", timeout)
        for _ in range(n):
            get(True, timeout)

    total = per * producers
    shares = [total // consumers + (1 if c < total % consumers else 0) for c in range(consumers)]
    threads = [Worker(produce, name=f"producer-{p}") for p in range(producers)]
    threads += [Worker(consume, n, name=f"consumer-{c}") for c, n in enumerate(shares)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    go.set()
    join_all(threads, timeout, what)
    sec = time.perf_counter() - t0
    for t in threads:
        if t.error is not None:
            raise BenchError(f"{what}: {t.error!r}") from t.error
    return sec / total * items  # per the requested count


def task_join(side: Side, items: int, timeout: float) -> float:
    """Seconds for the main thread to put ``items`` items that a worker gets
    and marks done, and then to return from ``join()``."""
    q = side.make(0)

    def work() -> None:
        get, done = q.get, q.task_done
        for _ in range(items):
            get(True, timeout)
            done()

    worker = Worker(work, name="worker")
    worker.start()
    put = q.put
    t0 = time.perf_counter()
    for i in range(items):
        put(i)
    q.join()
    sec = time.perf_counter() - t0
    join_all([worker], timeout, f"queue task_done/join [{side.column}]")
    if worker.error is not None:
        raise BenchError(f"queue task_done/join [{side.column}]: {worker.error!r}") from worker.error
    return sec


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.n += 1


def log_pipeline(side: Side, records: int) -> float:
    """Seconds for ``records`` log records through QueueHandler -> QueueListener."""
    import cysync

    patched = side.column == "c" and cysync.Queue is side.impl.Queue
    if patched:
        cysync.patch(queue=True)
    try:
        q = queue.Queue(-1) if side.column in ("Queue", "c") else side.make(-1)
    finally:
        if patched:
            cysync.unpatch()
    counter = _Count()
    listener = logging.handlers.QueueListener(q, counter)
    logger = logging.Logger(f"cysync-bench.queue.{side.column}")  # not registered: no propagation
    logger.addHandler(logging.handlers.QueueHandler(q))
    listener.start()
    t0 = time.perf_counter()
    try:
        for i in range(records):
            logger.info("record %d", i)
    finally:
        listener.stop()
    sec = time.perf_counter() - t0
    if counter.n != records:
        raise BenchError(f"queue logging [{side.column}]: {counter.n} records of {records}")
    return sec


def measure_rates(name: Callable[[Side], str], unit: str, todo: list[Side],
                  one: Callable[[Side, int], float], s: Settings, fixed: int | None = None) -> list[Result]:
    """``unit`` (per second) of each side: a probe of 1000 sizes the runs to
    ``s.duration`` unless the count is ``fixed``."""
    counts = []
    for side in todo:
        if fixed is not None:
            counts.append(fixed)
            one(side, min(fixed, 1000))  # warm-up
        else:
            sec = one(side, 1000)
            counts.append(int(min(2_000_000, max(1000, s.duration / max(sec / 1000, 1e-8)))))
        s.step(f"probing {name(side)}")
    rates: list[list[float]] = [[] for _ in todo]
    for _ in range(s.repeat):
        for i, side in enumerate(todo):
            rates[i].append(counts[i] / one(side, counts[i]))
            s.step(name(side))
    return [make_result(NAME, name(side), side.impl.name, unit, rs, 1, items=counts[i])
            for i, (side, rs) in enumerate(zip(todo, rates, strict=True))]


# --- the run --------------------------------------------------------------------


def run(s: Settings) -> list[Result]:
    todo = sides(s.impls)
    loops: list[tuple[str, Impl, LoopTimer]] = [
        (op.name, FLOOR, ops.make_timer(op, FLOOR)) for op in ops.FLOORS[:2]]  # empty loop, F
    loops += [(PAIR.name(side.column), side.impl, LoopTimer("q.put(x); q.get()", {"q": side.make(0), "x": 1}))
              for side in todo]
    queues = [side for side in todo if side.column != "SimpleQueue"]
    t = s.timeout
    join_items = 10_000 if s.quick else JOIN_ITEMS
    s.begin(NAME, len(loops) * (s.repeat + 1) + (3 * len(todo) + len(queues)) * (s.repeat + 1))
    results = ops.time_loops(NAME, loops, s)
    results += measure_rates(lambda side: SPSC.name(side.column), SPSC.unit, todo,
                             lambda side, n: producers_consumers(side, 1, 1, n, t), s)
    results += measure_rates(lambda side: MPMC.name(side.column), MPMC.unit, todo,
                             lambda side, n: producers_consumers(side, MANY, MANY, n, t), s)
    results += measure_rates(lambda side: JOIN.name(side.column), JOIN.unit, queues,
                             lambda side, n: task_join(side, n, t), s, fixed=join_items)
    results += measure_rates(lambda side: LOG.name(side.column), LOG.unit, todo,
                             lambda side, n: log_pipeline(side, n), s)
    return results


# --- report ---------------------------------------------------------------------

TARGETS = [
    Target("put+get one thread, Queue / c", NAME, (PAIR.name("Queue"), "stdlib"), (PAIR.name("c"), "c"),
           15, "ge"),
    Target("put+get one thread, c / SimpleQueue", NAME, (PAIR.name("c"), "c"),
           (PAIR.name("SimpleQueue"), "stdlib"), 1.2),
    Target(f"1 -> 1 items/s, c / Queue({MAXSIZE})", NAME, (SPSC.name("c"), "c"), (SPSC.name("Queue"), "stdlib"),
           10, "ge"),
    Target(f"{MANY} -> {MANY} items/s, c / Queue({MAXSIZE})", NAME, (MPMC.name("c"), "c"),
           (MPMC.name("Queue"), "stdlib"), 5, "ge"),
    Target("put+get+task_done+join items/s, c / Queue", NAME, (JOIN.name("c"), "c"),
           (JOIN.name("Queue"), "stdlib"), 10, "ge"),
]


def plot_label(r: Result) -> str | None:
    return r.name


def render(idx: Index, markdown: bool) -> list[str]:
    impl_of = {"c": "c", "py": "py", "Queue": "stdlib", "SimpleQueue": "stdlib"}
    cols = [c for c in COLUMNS if any(idx.get(NAME, fig.name(c), impl_of[c]) for fig in FIGURES)]
    f_res = idx.get(NAME, ops.F_NAME, "floor")
    headers = ["figure", "unit", *cols]
    if "c" in cols:
        headers += ["c/F", *[f"c vs {c}" for c in cols if c != "c"]]
    rows = []
    for fig in FIGURES:
        found = {c: idx.get(NAME, fig.name(c), impl_of[c]) for c in cols}
        if not any(found.values()):
            continue
        row = [fig.label, fig.unit, *[cell(r) for r in found.values()]]
        base = found.get("c")
        if "c" in cols:
            per_f = fig.unit == "ns/op" and base is not None and f_res is not None and f_res.median
            row.append(fmt_ratio(base.median / f_res.median) if per_f else "")  # type: ignore[union-attr]
            for c in cols:
                if c != "c":
                    sp = speedup(base, found[c])
                    row.append(fmt_ratio(sp) if sp is not None else "")
        rows.append(row)
    out = [table(headers, rows, markdown)]
    notes = ("Median of the repeats ± interquartile range; ns/op: one thread, the loop's own cost "
             "subtracted")
    notes += f"; F = {fmt(f_res.median)} ns, an empty C method call." if f_res else "."
    notes += (" Queue and SimpleQueue are the standard library's (SimpleQueue unbounded, without "
              "task_done). The logging row's c queue is queue.Queue(-1) under "
              "cysync.patch(queue=True). c vs X: how many times better c is than X.")
    out.append(notes)
    return with_targets(out, idx, TARGETS, markdown)

