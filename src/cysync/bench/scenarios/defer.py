"""defer: what releasing in ``try/finally``, ``with`` or Go-style ``defer`` costs
a request handler, against releasing by hand.

A handler takes a slot (a ``threading.Lock``, a Semaphore, or a WaitGroup
count), does the request's work and gives the slot back, in one of the
styles:

    manual       sem.acquire(); work(); sem.release()
    try/finally  sem.acquire()
                 try: work()
                 finally: sem.release()
    with         with sem: work()
    defer        @cysync.deferrable, sem.acquire(); cysync.defer(sem.release); work()
                 (only once cysync has ``deferrable`` and ``defer``)

It is served closed-loop: K client threads call it back to back for
``duration`` seconds. Reported, as in the articles' tables: QPS (calls per
second, all clients together), mean/p50/p99 latency of one call (timed with
``perf_counter_ns`` around every call), and CPU, the process's CPU time over
the wall time (100 % = one core busy). The Semaphore allows K holders, so a
call never waits for a slot: the figures are the release style's own cost.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any

from ..runner import Impl, Result, Settings, Worker, check, join_all, make_result, np
from ..tables import Index, Target, cell, fmt, fmt_ratio, ordered, table

NAME = "defer"
TITLE = "manual release vs try/finally vs with vs defer, in a request handler"
UNIT = "QPS"

STYLES = ("manual", "try/finally", "with", "defer")
#: slot kinds: (name, the class an implementation needs, or None for threading.Lock)
PRIMITIVES = (("Lock", None), ("Semaphore", "Semaphore"), ("WaitGroup", "WaitGroup"))


def work() -> None:
    """The request's own work: nothing, so that the release style is what shows."""
    return None


def defer_api() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """cysync's ``(deferrable, defer)`` once they exist, else None."""
    try:
        import cysync
    except ImportError:
        return None
    deferrable = getattr(cysync, "deferrable", None)
    defer = getattr(cysync, "defer", None)
    if deferrable is None or defer is None:
        return None
    return deferrable, defer


def styles() -> tuple[str, ...]:
    return STYLES if defer_api() is not None else STYLES[:-1]


def make_slot(primitive: str, impl: Impl, clients: int) -> Any:
    if primitive == "Lock":
        return threading.Lock()
    if primitive == "Semaphore":
        return impl.Semaphore(clients)
    return impl.WaitGroup()


def applicable(primitive: str, style: str, impl: Impl) -> bool:
    if primitive == "Lock":
        return impl.name == "stdlib"  # the same lock for everyone: measured once
    if primitive == "WaitGroup" and style == "with":
        return False                  # a WaitGroup is not a context manager
    needs = dict(PRIMITIVES)[primitive]
    return impl.has(needs) and impl.name != "pygolang"  # type: ignore[arg-type]  # None: Lock, above


def make_handler(slot: Any, primitive: str, style: str, impl: Impl | None = None) -> Callable[[], None]:
    """The handler for one slot and style (written out as users write it).

    The ``defer`` style uses ``impl``'s own deferrable/defer when it has them
    (so the pure twin is measured with pure defer), else the package's."""
    if primitive == "WaitGroup":
        take, give = "add", "done"
        take_args = "1"
    else:
        take, give, take_args = "acquire", "release", ""
    api = defer_api()
    if impl is not None and impl.has("deferrable", "defer"):
        api = (impl.deferrable, impl.defer)
    ns: dict[str, Any] = {"slot": slot, "work": work}
    if style == "manual":
        src = f"def handler():\n    slot.{take}({take_args})\n    work()\n    slot.{give}()\n"
    elif style == "try/finally":
        src = (f"def handler():\n    slot.{take}({take_args})\n    try:\n        work()\n"
               f"    finally:\n        slot.{give}()\n")
    elif style == "with":
        src = "def handler():\n    with slot:\n        work()\n"
    elif style == "defer":
        if api is None:
            raise ValueError("cysync has no defer yet")
        ns["deferrable"], ns["defer"] = api
        src = (f"@deferrable\ndef handler():\n    slot.{take}({take_args})\n"
               f"    defer(slot.{give})\n    work()\n")
    else:
        raise ValueError(f"unknown style {style!r}")
    exec(compile(src, f"<cysync-bench defer {style}>", "exec"), ns)
    return ns["handler"]


def serve(handler: Callable[[], None], clients: int, duration: float,
          timeout: float) -> dict[str, float]:
    """Run ``clients`` threads calling ``handler`` for ``duration`` seconds."""
    go = threading.Event()
    deadline = [0]
    latencies = [array("q") for _ in range(clients)]

    def client(lat: array) -> None:
        clock = time.perf_counter_ns
        append = lat.append
        check(go.wait(timeout), "the start signal", timeout)
        end = deadline[0]
        t = clock()
        while t < end:
            handler()
            t2 = clock()
            append(t2 - t)
            t = t2

    threads = [Worker(client, lat, name=f"client-{i}") for i, lat in enumerate(latencies)]
    for t in threads:
        t.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter_ns()
    deadline[0] = t0 + int(duration * 1e9)
    go.set()
    join_all(threads, duration + timeout, "defer client")
    wall = (time.perf_counter_ns() - t0) / 1e9
    cpu = time.process_time() - cpu0
    lat = np.concatenate([np.frombuffer(a, dtype=np.int64) for a in latencies if len(a)] or
                         [np.zeros(0, dtype=np.int64)])
    calls = int(lat.size)
    if calls == 0:
        return {"qps": 0.0, "mean_us": float("nan"), "p50_us": float("nan"),
                "p99_us": float("nan"), "cpu_pct": 100.0 * cpu / wall, "calls": 0}
    p50, p99 = np.percentile(lat, [50, 99]) / 1e3
    return {"qps": calls / wall, "mean_us": float(lat.mean()) / 1e3, "p50_us": float(p50),
            "p99_us": float(p99), "cpu_pct": 100.0 * cpu / wall, "calls": calls}


def cells(s: Settings) -> list[tuple[str, str, Impl]]:
    return [(prim, style, impl) for prim, _ in PRIMITIVES for style in styles()
            for impl in s.impls if applicable(prim, style, impl)]


def run(s: Settings) -> list[Result]:
    counts = s.client_counts()
    todo = cells(s)
    s.begin(NAME, len(counts) * len(todo) * s.repeat)
    results = []
    for clients in counts:
        handlers = []
        for prim, style, impl in todo:
            handler = make_handler(make_slot(prim, impl, clients), prim, style, impl)
            for _ in range(1000):  # warm-up
                handler()
            handlers.append(handler)
        runs: list[list[dict[str, float]]] = [[] for _ in todo]
        for _ in range(s.repeat):
            for i, handler in enumerate(handlers):
                runs[i].append(serve(handler, clients, s.duration, s.timeout))
                prim, style, impl = todo[i]
                s.step(f"{prim}: {style} [{impl.name}] x{clients}")
        for (prim, style, impl), rs in zip(todo, runs, strict=True):
            med = {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
            results.append(make_result(
                NAME, f"{prim}: {style}", impl.name, UNIT, [r["qps"] for r in rs], clients,
                mean_us=med["mean_us"], p50_us=med["p50_us"], p99_us=med["p99_us"],
                cpu_pct=med["cpu_pct"], calls=int(sum(r["calls"] for r in rs))))
    return results


# --- report -------------------------------------------------------------------

TARGETS: list[Target] = []


def plot_label(r: Result) -> str:
    """A bar per row and number of clients."""
    return f"{r.name} x{r.threads}"


def render(idx: Index, markdown: bool) -> list[str]:
    out = []
    results = idx.of(NAME)
    for threads in ordered(r.threads for r in results):
        rows = []
        for r in results:
            if r.threads != threads:
                continue
            prim = r.name.split(":")[0]
            manual = idx.get(NAME, f"{prim}: manual", r.impl, threads)
            x = r.extra
            rows.append([
                r.name, r.impl, cell(r), fmt(x.get("mean_us")), fmt(x.get("p50_us")),
                fmt(x.get("p99_us")), f"{x.get('cpu_pct', math.nan):.0f}%",
                fmt_ratio(r.median / manual.median) if manual and manual.median else "",
            ])
        clients = "client thread" if threads == 1 else "client threads"
        out.append(f"{threads} {clients}:")
        out.append(table(["scenario", "impl", "QPS", "mean latency (µs)", "p50 (µs)", "p99 (µs)",
                          "CPU", "QPS vs manual"], rows, markdown))
    out.append("QPS = handler calls per second, all clients together; latency of one call; "
               "CPU = process CPU time / wall time (100% = one core busy).")
    return out
