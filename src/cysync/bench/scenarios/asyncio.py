"""asyncio: threads and an event loop waiting on each other (issue 16).

Each figure is taken in a fresh event loop (the default one; uvloop's
figures are the same code under ``uvloop.new_event_loop()``, not run here):

- ``thread → asyncio, Chan(128)``: a thread sends N items
  (``ch.send(i)``), a task receives them (``await ch.recv_async()``);
  items per second. Peers: aiologic's ``Queue(128)`` (``green_put`` /
  ``async_get``) and janus's ``Queue(128)`` (``sync_q.put`` /
  ``async_q.get``), when installed.
- ``asyncio → thread, Chan(128)``: the other way round
  (``await ch.send_async(i)``, ``ch.recv()``); aiologic ``async_put`` /
  ``green_get``, janus ``async_q.put`` / ``sync_q.get``.
- ``10k tasks on one Event, set() from a thread``: milliseconds from the
  ``set()`` to the last task resumed; the baseline (impl ``stdlib``) is
  what one does without cysync, ``await asyncio.to_thread(ev.wait)`` on a
  ``threading.Event``, which holds the default executor's threads; and
  aiologic's ``Event`` (``await ev``).
- ``acquire_async()+release() uncontended``: ns per pair in a task; the
  floor is ``asyncio.Semaphore`` (impl ``stdlib``), which cannot be used
  from threads at all; aiologic's ``Semaphore`` (``async_acquire``).
- With uvloop installed, the first and third figures again on its loop.
- ``cancel storm: units lost + waiters left``: 2,000 tasks ``async with``
  a WeightedSemaphore(8) while a thread releases the 8 units held and the
  loop cancels tasks at random; afterwards every unit must be back and no
  waiter queued: the figure is the number of units missing plus waiters
  left (0).

Every wait has a timeout: a figure that does not come is an error, not a hang.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..runner import BenchError, Impl, Result, Settings, Worker, join_all, make_result
from ..tables import Index, Target, side_by_side, with_targets

NAME = "asyncio"
TITLE = "threads and asyncio tasks waiting on each other"

T2A = "thread → asyncio, Chan(128) (items/s)"
A2T = "asyncio → thread, Chan(128) (items/s)"
EVENT10K = "10k tasks on one Event, set() from a thread (ms)"
SEM = "acquire_async()+release() uncontended (ns)"
STORM = "cancel storm: units lost + waiters left"

CAP = 128
EVENT_TASKS = 10_000


def _async_impls(s: Settings) -> list[Impl]:
    """c and py, when they have the asyncio twins (a build of the C core
    without them is skipped)."""
    return [i for i in s.impls if i.name in ("c", "py") and i.has("Chan", "Event", "Semaphore")
            and hasattr(i.Event, "wait_async")]


#: The uvloop rows: the same code on uvloop's loop, when installed.
T2A_UVLOOP = "thread → asyncio on uvloop, Chan(128) (items/s)"
EVENT10K_UVLOOP = "10k tasks on one Event on uvloop, set() from a thread (ms)"


def _uvloop() -> Any:
    try:
        return importlib.import_module("uvloop")
    except ImportError:
        return None


def _run(coro: Awaitable[Any], timeout: float, uvloop: bool = False) -> Any:
    async def main() -> Any:
        # A whole run (thousands of waits) gets a few times one wait's timeout.
        return await asyncio.wait_for(coro, 3 * timeout)

    if not uvloop:
        return asyncio.run(main())
    loop = _uvloop().new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


# --- thread → asyncio, asyncio → thread ---------------------------------------------


def _pipe(kind: str, peer: str, impl: Impl | None, n: int, timeout: float, uvloop: bool = False) -> float:
    """Items per second through a queue of CAP between a thread and a task."""
    if peer == "janus":
        janus = importlib.import_module("janus")

    async def main() -> float:
        if peer == "aiologic":
            q = importlib.import_module("aiologic").Queue(CAP)
            t_put, t_get, a_put, a_get = q.green_put, q.green_get, q.async_put, q.async_get
        elif peer == "janus":
            jq = janus.Queue(CAP)
            t_put, t_get, a_put, a_get = jq.sync_q.put, jq.sync_q.get, jq.async_q.put, jq.async_q.get
        else:
            assert impl is not None
            ch = impl.Chan(CAP)
            t_put, t_get, a_put, a_get = ch.send, ch.recv, ch.send_async, ch.recv_async

        if kind == T2A:
            worker = Worker(lambda: [t_put(i) for i in range(n)], name=f"asyncio {peer} producer")
            t0 = time.perf_counter()
            worker.start()
            for _ in range(n):
                await a_get()
        else:
            worker = Worker(lambda: [t_get() for _ in range(n)], name=f"asyncio {peer} consumer")
            t0 = time.perf_counter()
            worker.start()
            for i in range(n):
                await a_put(i)
        while worker.is_alive():  # the thread's last items: join without blocking the loop
            await asyncio.sleep(0.0005)
        elapsed = time.perf_counter() - t0
        join_all([worker], timeout, f"asyncio {kind} [{peer}]")
        if peer == "janus":
            jq.close()
            await jq.wait_closed()
        return n / elapsed

    return float(_run(main(), timeout, uvloop))


# --- 10k tasks on one Event -----------------------------------------------------------


def _event_10k(peer: str, impl: Impl | None, timeout: float, uvloop: bool = False) -> float:
    """Milliseconds from set() (in a thread) to the last of EVENT_TASKS tasks resumed."""

    async def main() -> float:
        if peer == "stdlib":  # what one does without cysync: a thread per waiter
            ev: Any = threading.Event()

            def wait() -> Awaitable[Any]:
                return asyncio.to_thread(ev.wait, timeout)
        elif peer == "aiologic":
            ev = importlib.import_module("aiologic").Event()

            async def wait() -> Any:  # type: ignore[misc]
                return await ev
        else:
            assert impl is not None
            ev = impl.Event()

            def wait() -> Awaitable[Any]:
                return ev.wait_async()

        last = [0.0]

        async def waiter() -> None:
            await wait()
            last[0] = time.perf_counter()

        tasks = [asyncio.ensure_future(waiter()) for _ in range(EVENT_TASKS)]
        for _ in range(3):
            await asyncio.sleep(0)
        started = [0.0]

        def setter() -> None:
            started[0] = time.perf_counter()
            ev.set()

        worker = Worker(setter, name="asyncio Event setter")
        worker.start()
        await asyncio.gather(*tasks)
        join_all([worker], timeout, f"asyncio {EVENT10K} [{peer}]")
        return (last[0] - started[0]) * 1e3

    return float(_run(main(), timeout, uvloop))


# --- uncontended semaphore ----------------------------------------------------------


def _sem_pairs(peer: str, impl: Impl | None, n: int, timeout: float) -> float:
    """ns per acquire+release pair, awaited in one task."""

    async def main() -> float:
        if peer == "stdlib":  # asyncio.Semaphore: one loop, no threads
            sem: Any = asyncio.Semaphore(1)
            acquire, release = sem.acquire, sem.release
        elif peer == "aiologic":
            sem = importlib.import_module("aiologic").Semaphore(1)
            acquire, release = sem.async_acquire, sem.release
        else:
            assert impl is not None
            sem = impl.Semaphore(1)
            acquire, release = sem.acquire_async, sem.release
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await acquire()
            release()
        return (time.perf_counter_ns() - t0) / n

    return float(_run(main(), timeout))


# --- cancel storm -------------------------------------------------------------------


def _storm(impl: Impl, timeout: float, tasks_n: int = 2000, size: int = 8) -> float:
    """Units missing plus waiters left after a storm of cancellations (0 is right)."""
    ws = impl.WeightedSemaphore(size)

    async def main() -> float:
        rng = random.Random(16)
        if not ws.acquire(size, timeout=0):
            raise BenchError("asyncio storm: a fresh WeightedSemaphore is not free")

        async def user() -> None:
            async with ws:
                await asyncio.sleep(0)

        tasks = [asyncio.ensure_future(user()) for _ in range(tasks_n)]
        for _ in range(3):
            await asyncio.sleep(0)

        def releaser() -> None:
            for _ in range(size):
                ws.release()
                time.sleep(0.0002)

        worker = Worker(releaser, name="asyncio storm releaser")
        worker.start()
        while not all(t.done() for t in tasks):
            for t in rng.sample(tasks, 50):
                t.cancel()
            await asyncio.sleep(0)
        join_all([worker], timeout, "asyncio storm")
        await asyncio.gather(*tasks, return_exceptions=True)
        m = re.search(r"waiters=(\d+)", repr(ws))
        left = int(m.group(1)) if m else 0
        return float(ws.held + left)

    return float(_run(main(), timeout))


# --- run ------------------------------------------------------------------------------


def run(s: Settings) -> list[Result]:
    impls = _async_impls(s)
    peers = [i.name for i in s.impls if i.name in ("aiologic", "janus")]
    stdlib = s.impl("stdlib") is not None
    n_pipe = 20_000 if s.quick else 100_000
    n_sem = 20_000 if s.quick else 200_000
    jobs: list[tuple[str, str, Callable[[], float], str]] = []
    for impl in impls:
        for kind in (T2A, A2T):
            jobs.append((kind, impl.name, lambda k=kind, i=impl: _pipe(k, i.name, i, n_pipe, s.timeout), "items/s"))
        jobs.append((EVENT10K, impl.name, lambda i=impl: _event_10k(i.name, i, s.timeout), "ms"))
        jobs.append((SEM, impl.name, lambda i=impl: _sem_pairs(i.name, i, n_sem, s.timeout), "ns"))
        jobs.append((STORM, impl.name, lambda i=impl: _storm(i, s.timeout), "count"))
        if _uvloop() is not None:
            jobs.append((T2A_UVLOOP, impl.name,
                         lambda i=impl: _pipe(T2A, i.name, i, n_pipe, s.timeout, True), "items/s"))
            jobs.append((EVENT10K_UVLOOP, impl.name,
                         lambda i=impl: _event_10k(i.name, i, s.timeout, True), "ms"))
    for peer in peers:
        for kind in (T2A, A2T):
            # A rate: fewer items for the slower peers keep each run within the timeout.
            jobs.append((kind, peer, lambda k=kind, p=peer: _pipe(k, p, None, n_pipe // 10, s.timeout), "items/s"))
    if "aiologic" in peers:
        jobs.append((EVENT10K, "aiologic", lambda: _event_10k("aiologic", None, s.timeout), "ms"))
        jobs.append((SEM, "aiologic", lambda: _sem_pairs("aiologic", None, n_sem, s.timeout), "ns"))
    if stdlib:
        jobs.append((EVENT10K, "stdlib", lambda: _event_10k("stdlib", None, s.timeout), "ms"))
        jobs.append((SEM, "stdlib", lambda: _sem_pairs("stdlib", None, n_sem, s.timeout), "ns"))
    s.begin(NAME, len(jobs) * s.repeat)
    samples: list[list[float]] = [[] for _ in jobs]
    for _ in range(s.repeat):  # interleaved: the machine's noise hits every figure alike
        for j, (name, who, fn, _) in enumerate(jobs):
            samples[j].append(fn())
            s.step(f"{name} [{who}]")
    return [make_result(NAME, name, who, unit, samples[j]) for j, (name, who, _, unit) in enumerate(jobs)]


# --- report -------------------------------------------------------------------

TARGETS = [
    Target("thread → asyncio, c / aiologic", NAME, (T2A, "c"), (T2A, "aiologic"), 2.0, "ge"),
    Target("thread → asyncio, c / janus", NAME, (T2A, "c"), (T2A, "janus"), 5.0, "ge"),
    Target("asyncio → thread, c / aiologic", NAME, (A2T, "c"), (A2T, "aiologic"), 2.0, "ge"),
    Target("10k tasks resumed after one set(), c (ms)", NAME, (EVENT10K, "c"), None, 50.0),
    Target("acquire_async+release, c / asyncio.Semaphore", NAME, (SEM, "c"), (SEM, "stdlib"), 3.0),
    Target("cancel storm, units lost + waiters left, c", NAME, (STORM, "c"), None, 0.0),
]


def render(idx: Index, markdown: bool) -> list[str]:
    note = ("Items/s: more is better; ms and ns: less. stdlib: `await asyncio.to_thread(ev.wait)` "
            "on a threading.Event (a thread per waiter), and asyncio.Semaphore (one loop only). "
            "No thread is created per waiting task (tests/test_asyncio.py checks it).")
    out = [side_by_side(idx, NAME, markdown), note]
    return with_targets(out, idx, TARGETS, markdown)
