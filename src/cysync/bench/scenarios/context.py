"""context: what a context costs where the articles pay it, per request.

- ``with_cancel(bg) + cancel()`` and ``with_timeout(bg, 60) + cancel()``:
  the context made for one request or job, and released;
- ``ctx.err()`` on a live context: the check a loop makes between steps;
- ``sem.acquire(ctx=live); sem.release()`` next to the same without
  ``ctx=``; their difference is the ``ctx= overhead`` row;
- the cancel of a parent with many children, each with one thread blocked
  in ``sem.acquire(ctx=child)``: the time from ``cancel()`` to the last of
  them raising (one round: 10,000 children, ``--quick`` 1,000, and never
  more than 10 per ``--tasks``). With the GIL, that many threads woken at
  once take it one after another (and CPython's timed GIL waits make
  thousands of waiting threads costly), so this figure is far larger on
  GIL builds than on free-threaded ones.

The tiny operations are timed as in ``ops`` (compiled loops, the empty
loop's cost subtracted, F = ``Lock().locked()`` measured in the same run).
pygolang (``golang.context``: ``with_cancel`` and ``err()``; its
``with_timeout`` aborts the process here) is measured side by side when
installed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..runner import FLOOR, Impl, Result, Settings, make_result
from ..tables import Index, Target, fmt, side_by_side, with_targets
from .ops import EMPTY, F_NAME, FLOORS, Op, applicable, make_timer, time_loops

NAME = "context"
TITLE = "contexts: made, checked, waited with, cancelled"
UNIT = "ns/op"

WITH_CANCEL = "with_cancel(bg) + cancel()"
WITH_TIMEOUT = "with_timeout(bg, 60) + cancel()"
ERR = "ctx.err() on a live context"
ACQ_CTX = "sem.acquire(ctx=live); sem.release()"
ACQ = "sem.acquire(); sem.release()"
OVERHEAD = "ctx= overhead (the two rows above)"
FANOUT = "cancel of a parent: {n} children's waiters all raised (ns)"

#: Children (one blocked thread each) of the cancel-latency row.
CHILDREN = 10_000
CHILDREN_QUICK = 1_000


def _ctx(m: Impl) -> dict[str, Any]:
    bg = m.background()
    live, cancel = m.with_cancel(bg)
    d: dict[str, Any] = {"bg": bg, "wc": m.with_cancel, "live": live, "_keep": cancel}
    if m.has("with_timeout"):
        d["wt"] = m.with_timeout
    if m.has("Semaphore"):
        d["sem"] = m.Semaphore(1)
    return d


OPS = [
    Op(WITH_CANCEL, ("with_cancel",), _ctx, "c, x = wc(bg); x()"),
    Op(WITH_TIMEOUT, ("with_timeout",), _ctx, "c, x = wt(bg, 60); x()"),
    Op(ERR, ("with_cancel",), _ctx, "live.err()"),
    Op(ACQ_CTX, ("with_cancel", "Semaphore"), _ctx, "sem.acquire(ctx=live); sem.release()"),
    Op(ACQ, ("with_cancel", "Semaphore"), _ctx, "sem.acquire(); sem.release()"),
]


def _applicable(op: Op, impl: Impl) -> bool:
    if op.name in (ACQ_CTX, ACQ) and impl.name not in ("c", "py"):
        return False  # pygolang's semaphores take no context
    return applicable(op, impl)


def _cancel_fanout(impl: Impl, n: int, timeout: float) -> float:
    """ns from a parent's cancel() to the last of `n` children's waiters raising."""
    parent, cancel = impl.with_cancel(impl.background())
    children = [impl.with_cancel(parent) for _ in range(n)]
    sem = impl.Semaphore(0)
    started = threading.Semaphore(0)
    raised = [0] * n
    finished = threading.Semaphore(0)
    leave = threading.Event()

    def wait(i: int) -> None:
        started.release()
        try:
            sem.acquire(timeout=timeout, ctx=children[i][0])
        except Exception:  # noqa: BLE001 - Canceled: the time is what counts
            raised[i] = time.perf_counter_ns()
        finished.release()
        # Stay until every waiter has raised: thread exits (CPython's
        # bookkeeping of ending threads) are not part of the figure.
        leave.wait(timeout)

    old = threading.stack_size()
    threading.stack_size(256 * 1024)  # thousands of threads: small stacks
    try:
        threads = [threading.Thread(target=wait, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
    finally:
        threading.stack_size(old)
    for _ in range(n):
        started.acquire(timeout=timeout)
    # Started is not parked: give the last ones time to reach their sleep.
    time.sleep(0.2 + n / 20_000)
    t0 = time.perf_counter_ns()
    cancel()
    for _ in range(n):
        finished.acquire(timeout=timeout)
    leave.set()
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    if not all(raised):
        return float("nan")
    return float(max(raised) - t0)


def run(s: Settings) -> list[Result]:
    cases = [(op, FLOOR) for op in FLOORS if op.name in (EMPTY, F_NAME)]
    cases += [(op, impl) for op in OPS for impl in s.impls if _applicable(op, impl)]
    # 10 children per task of the other scenarios' --tasks (1000 by default):
    # a tiny run (the CLI's tests) starts a few dozen threads, not 10k.
    n = min(CHILDREN_QUICK if s.quick else CHILDREN, 10 * s.tasks)
    fan_impls = [i for i in s.impls if i.name in ("c", "py")]
    rounds = 1  # thousands of threads per round
    s.begin(NAME, len(cases) * (s.repeat + 1) + len(fan_impls) * rounds)
    results = time_loops(NAME, [(op.name, impl, make_timer(op, impl)) for op, impl in cases], s)
    by = {(r.name, r.impl): r for r in results}
    for impl in s.impls:
        a, b = by.get((ACQ_CTX, impl.name)), by.get((ACQ, impl.name))
        if a and b:
            diffs = [x - y for x, y in zip(a.samples, b.samples, strict=True)]
            results.append(make_result(NAME, OVERHEAD, impl.name, UNIT, diffs))
    for impl in fan_impls:
        samples = []
        for _ in range(rounds):
            samples.append(_cancel_fanout(impl, n, s.timeout))
            s.step(f"cancel of {n} children [{impl.name}]")
        results.append(make_result(NAME, FANOUT.format(n=n), impl.name, "ns", samples, children=n))
    return results


TARGETS = [
    Target("with_cancel(bg) + cancel(), c / F", NAME, (WITH_CANCEL, "c"), (F_NAME, "floor"), 40),
    Target("with_cancel(bg) + cancel(), pygolang / c", NAME, (WITH_CANCEL, "pygolang"),
           (WITH_CANCEL, "c"), 3, "ge"),
    Target("with_timeout(bg, 60) + cancel(), c / F", NAME, (WITH_TIMEOUT, "c"), (F_NAME, "floor"), 60),
    Target("ctx.err() on a live context, c / F", NAME, (ERR, "c"), (F_NAME, "floor"), 1.5),
    Target("ctx= overhead of sem.acquire, c / F", NAME, (OVERHEAD, "c"), (F_NAME, "floor"), 3),
    Target(f"cancel -> {CHILDREN} children's waiters raised, c (ns)", NAME,
           (FANOUT.format(n=CHILDREN), "c"), None, 20e6),
    Target(f"cancel -> {CHILDREN_QUICK} children's waiters raised (--quick), c (ns)", NAME,
           (FANOUT.format(n=CHILDREN_QUICK), "c"), None, 20e6),
]

PLOT = "log bars"


def render(idx: Index, markdown: bool) -> list[str]:
    out = [side_by_side(idx, NAME, markdown, floor=True, per_f=F_NAME)]
    f = idx.get(NAME, F_NAME, "floor")
    notes = "ns per operation, median of the repeats ± interquartile range"
    if f:
        notes += f"; F = {fmt(f.median)} ns (Lock().locked())"
    notes += (". The cancel row is one figure per round (ns from cancel() to the last"
              " waiter raising, each child with one thread blocked on it).")
    out.append(notes)
    return with_targets(out, idx, TARGETS, markdown)
