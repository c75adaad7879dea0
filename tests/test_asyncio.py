"""The asyncio twins of every wait (issue 16), both implementations.

DESIGN.md, "asyncio": every blocking wait has an awaitable twin named
``<method>_async`` with the same arguments and results, plus
``select_async``, ``async with`` on the semaphores and the RWMutex sides and
``async for`` over a Chan. No loop is bound at construction, no thread per
waiter, and a cancelled task leaves the queue, ends cancelled and holds
nothing (units granted at that moment go on to the next waiter).

Every name is reached through the ``impl`` fixture (the ``aimpl`` fixture
below skips an implementation that has no asyncio twins yet). Every await
has a timeout (``run`` wraps the test's coroutine in ``asyncio.wait_for``,
and waits in the body have their own); threads are joined with a deadline.
``asyncio.timeout`` is 3.11+: the tests that use it are skipped before.

"Is this task queued yet?" is observed where the object shows it
(``waiters=N`` in a WeightedSemaphore's or RWMutex's repr); elsewhere the
test lets the loop run a few rounds (``settle``), and the assertion holds
whether or not the task got there first: the order only decides which path
is tested.
"""

from __future__ import annotations

import asyncio
import gc
import queue as std_queue
import random
import re
import sys
import threading
import time
import warnings

import pytest

from conftest import TIMEOUT, Worker

#: Every test's coroutine ends within this, or fails.
RUN_TIMEOUT = TIMEOUT * 3

#: Short timeouts that must expire.
SHORT = 0.05

PY311 = sys.version_info >= (3, 11)


@pytest.fixture
def aimpl(impl):
    """``impl``, skipped while that implementation has no asyncio twins."""
    if not hasattr(impl.Event, "wait_async"):
        pytest.skip(f"{impl.__name__} has no asyncio twins yet")
    return impl


def loop_kinds() -> list:
    return ["asyncio", "uvloop"]


def run(coro_fn, *args, loop: str = "asyncio"):
    """Run ``coro_fn(*args)`` in a new event loop (in this thread), with a
    deadline; ``loop="uvloop"`` uses uvloop's loop (skip if not installed)."""

    async def main():
        return await asyncio.wait_for(coro_fn(*args), RUN_TIMEOUT)

    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        ev_loop = uvloop.new_event_loop()
        try:
            return ev_loop.run_until_complete(main())
        finally:
            ev_loop.run_until_complete(ev_loop.shutdown_asyncgens())
            ev_loop.close()
    return asyncio.run(main())


async def settle(rounds: int = 20) -> None:
    """Let the loop run a few rounds: the tasks started reach their wait."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def in_thread(fn, *args):
    """Run ``fn(*args)`` in a plain thread and await its end (with a deadline)
    without blocking the loop."""
    worker = Worker(fn, *args).start()
    deadline = time.monotonic() + TIMEOUT
    while not worker.done:
        assert time.monotonic() < deadline, "thread still running"
        await asyncio.sleep(0.001)
    return worker.join(TIMEOUT)


def waiters(obj) -> int:
    m = re.search(r"waiters=(\d+)", repr(obj))
    assert m, f"no waiters=N in {obj!r}"
    return int(m.group(1))


async def until(predicate, message: str = "") -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"not reached: {message}"
        await asyncio.sleep(0.001)


def units(sem, most: int = 1000) -> int:
    """How many units a Semaphore has free, by taking them (then giving back)."""
    n = 0
    while n < most and sem.acquire(timeout=0):
        n += 1
    if n:
        sem.release(n)
    return n


# --------------------------------------------------------------------------
# One table of every wait: how to make it block, how to wake it, what it gives
# --------------------------------------------------------------------------


class Case:
    """One blocking wait and its twin.

    ``make(m)`` builds an object on which ``wait(o, **kw)`` (the awaitable)
    blocks; ``wake(o)`` (plain, from a thread) and ``wake_async(o)`` (from
    another task) let it complete; ``result`` is what it then returns (a
    callable: a predicate); ``timed_out(m, outcome)`` checks what a
    ``timeout=`` that expires gives (None: the wait has no timeout).
    """

    def __init__(self, name, make, wait, wake, wake_async, result, timeout_outcome=None, ctx=True):
        self.name = name
        self.make = make
        self.wait = wait
        self.wake = wake
        self.wake_async = wake_async
        self.result = result
        self.timeout_outcome = timeout_outcome
        self.ctx = ctx

    def __repr__(self):
        return self.name


def _wg(m):
    wg = m.WaitGroup()
    wg.add(1)
    return wg


def _sem0(m):
    return m.Semaphore(0)


def _bsem(m):
    s = m.BoundedSemaphore(1)
    assert s.acquire(timeout=0)
    return s


def _wsem(m):
    s = m.WeightedSemaphore(3)
    assert s.acquire(3, timeout=0)
    return s


def _rw_read_held(m):
    rw = m.RWMutex()
    assert rw.rlock(timeout=0)
    return rw


def _rw_write_held(m):
    rw = m.RWMutex()
    assert rw.lock(timeout=0)
    return rw


def _full_queue(m):
    q = m.Queue(1)
    q.put("first")
    return q


def _joinable(m):
    q = m.Queue()
    q.put("job")
    return q


def _drain_job(q):
    assert q.get(timeout=TIMEOUT) == "job"
    q.task_done()


async def _drain_job_async(q):
    assert await q.get_async(timeout=TIMEOUT) == "job"
    q.task_done()


def _raise(exc):
    raise exc


def _is(value):
    return lambda r: r == value


TIMEOUT_FALSE = "False"  # the timed-out wait returns False
TIMEOUT_RAISES = "raises"  # ... raises (the blocking version's exception)


CASES = [
    Case("Event.wait_async", lambda m: m.Event(), lambda o, **kw: o.wait_async(**kw),
         lambda o: o.set(), None, _is(True), TIMEOUT_FALSE),
    Case("WaitGroup.wait_async", _wg, lambda o, **kw: o.wait_async(**kw),
         lambda o: o.done(), None, _is(True), TIMEOUT_FALSE),
    Case("Semaphore.acquire_async", _sem0, lambda o, **kw: o.acquire_async(**kw),
         lambda o: o.release(), None, _is(True), TIMEOUT_FALSE),
    Case("BoundedSemaphore.acquire_async", _bsem, lambda o, **kw: o.acquire_async(**kw),
         lambda o: o.release(), None, _is(True), TIMEOUT_FALSE),
    Case("WeightedSemaphore.acquire_async", _wsem, lambda o, **kw: o.acquire_async(2, **kw),
         lambda o: o.release(3), None, _is(True), TIMEOUT_FALSE),
    Case("RWMutex.lock_async", _rw_read_held, lambda o, **kw: o.lock_async(**kw),
         lambda o: o.runlock(), None, _is(True), TIMEOUT_FALSE),
    Case("RWMutex.rlock_async", _rw_write_held, lambda o, **kw: o.rlock_async(**kw),
         lambda o: o.unlock(), None, _is(True), TIMEOUT_FALSE),
    Case("Chan.recv_async", lambda m: m.Chan(), lambda o, **kw: o.recv_async(**kw),
         lambda o: o.send("v", timeout=TIMEOUT), lambda o: o.send_async("v", timeout=TIMEOUT),
         _is("v"), TIMEOUT_RAISES),
    Case("Chan.recv_ok_async", lambda m: m.Chan(1), lambda o, **kw: o.recv_ok_async(**kw),
         lambda o: o.send("v", timeout=TIMEOUT), None, _is(("v", True)), TIMEOUT_RAISES),
    Case("Chan.send_async", lambda m: m.Chan(), lambda o, **kw: o.send_async("v", **kw),
         lambda o: o.recv(timeout=TIMEOUT), lambda o: o.recv_async(timeout=TIMEOUT),
         _is(True), TIMEOUT_FALSE),
    Case("select_async", lambda m: _Select(m), lambda o, **kw: o.select(None, o.ch.recv, **kw),
         lambda o: o.ch.send("v", timeout=TIMEOUT), lambda o: o.ch.send_async("v", timeout=TIMEOUT),
         _is((1, "v")), "select"),
    Case("Queue.get_async", lambda m: m.Queue(), lambda o, **kw: o.get_async(**kw),
         lambda o: o.put("v"), None, _is("v"), TIMEOUT_RAISES),
    Case("Queue.put_async", _full_queue, lambda o, **kw: o.put_async("second", **kw),
         lambda o: o.get(timeout=TIMEOUT), lambda o: o.get_async(timeout=TIMEOUT),
         _is(None), TIMEOUT_RAISES),
    Case("Queue.join_async", _joinable, lambda o, **kw: o.join_async(**kw),
         _drain_job, _drain_job_async, _is(None), None),
    Case("Barrier.wait_async", lambda m: m.Barrier(2), lambda o, **kw: o.wait_async(**kw),
         lambda o: o.wait(TIMEOUT), lambda o: o.wait_async(TIMEOUT),
         lambda r: r in (0, 1), TIMEOUT_RAISES),
]


class _Select:
    """A channel and the implementation's select_async (whose first case,
    None, never fires: Go's nil channel)."""

    def __init__(self, m):
        self.ch = m.Chan()
        self.select = m.select_async


def _timeout_error(m, case):
    return {
        "Chan.recv_async": TimeoutError,
        "Chan.recv_ok_async": TimeoutError,
        "Queue.get_async": std_queue.Empty,
        "Queue.put_async": std_queue.Full,
        "Barrier.wait_async": m.BrokenBarrierError,
    }[case.name]


@pytest.fixture
def m(aimpl):
    return aimpl


CASE_IDS = [c.name for c in CASES]


# --------------------------------------------------------------------------
# Every twin: woken from a thread, from a task; timeout; ctx; cancellation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("loop", loop_kinds())
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_woken_from_a_thread(m, case, loop):
    async def body():
        o = case.make(m)
        task = asyncio.ensure_future(case.wait(o))
        await settle()
        assert not task.done(), "the wait did not block"
        waker = Worker(case.wake, o).start()
        result = await asyncio.wait_for(task, TIMEOUT)
        await in_thread(waker.join)
        assert case.result(result), result

    run(body, loop=loop)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_woken_from_another_task(m, case):
    async def body():
        o = case.make(m)
        task = asyncio.ensure_future(case.wait(o))
        await settle()
        assert not task.done()
        if case.wake_async is None:
            case.wake(o)  # does not block: call it from the task
        else:
            await asyncio.wait_for(case.wake_async(o), TIMEOUT)
        result = await asyncio.wait_for(task, TIMEOUT)
        assert case.result(result), result

    run(body)


@pytest.mark.parametrize("case", [c for c in CASES if c.timeout_outcome], ids=lambda c: c.name)
def test_timeout(m, case):
    async def body():
        o = case.make(m)
        t0 = time.monotonic()
        if case.timeout_outcome == TIMEOUT_FALSE:
            assert await case.wait(o, timeout=SHORT) is False
        elif case.timeout_outcome == "select":
            assert await case.wait(o, timeout=SHORT) == (-1, None)
        else:
            with pytest.raises(_timeout_error(m, case)):
                await case.wait(o, timeout=SHORT)
        assert time.monotonic() - t0 >= SHORT * 0.9
        # A poll (timeout 0) does not wait.
        t0 = time.monotonic()
        if case.timeout_outcome == TIMEOUT_FALSE:
            assert await case.wait(o, timeout=0) is False
        elif case.timeout_outcome == "select":
            assert await case.wait(o, timeout=0) == (-1, None)
        elif case.name != "Barrier.wait_async":  # broken now
            with pytest.raises(_timeout_error(m, case)):
                await case.wait(o, timeout=0)
        assert time.monotonic() - t0 < TIMEOUT / 2

    run(body)


@pytest.mark.parametrize("case", [c for c in CASES if c.name != "Once.do_async"], ids=lambda c: c.name)
def test_ctx_cancelled_from_a_thread(m, case):
    async def body():
        o = case.make(m)
        ctx, cancel = m.with_cancel(m.background())
        task = asyncio.ensure_future(case.wait(o, ctx=ctx))
        await settle()
        assert not task.done()
        await in_thread(cancel)
        with pytest.raises(m.Canceled):
            await asyncio.wait_for(task, TIMEOUT)
        # Ended already at the call: raises at once, even if it could proceed.
        with pytest.raises(m.Canceled):
            await asyncio.wait_for(case.wait(o, ctx=ctx), TIMEOUT)

    run(body)


@pytest.mark.parametrize("case", [c for c in CASES if c.timeout_outcome], ids=lambda c: c.name)
def test_ctx_deadline(m, case):
    async def body():
        o = case.make(m)
        ctx, cancel = m.with_timeout(m.background(), SHORT)
        try:
            with pytest.raises(m.DeadlineExceeded):
                await asyncio.wait_for(case.wait(o, ctx=ctx), TIMEOUT)
        finally:
            cancel()

    run(body)


@pytest.mark.parametrize("how", ["cancel", "wait_for", "timeout"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cancelled_task_ends_cancelled_and_leaves(m, case, how):
    if how == "timeout" and not PY311:
        pytest.skip("asyncio.timeout is 3.11+")

    async def body():
        o = case.make(m)
        if how == "cancel":
            task = asyncio.ensure_future(case.wait(o))
            await settle()
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, TIMEOUT)
            assert task.cancelled()
            if case.name == "Barrier.wait_async":
                # A waiter that leaves breaks the barrier, as a timeout does.
                assert o.broken
                o.reset()
        elif how == "wait_for":
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(case.wait(o), SHORT)
        else:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(SHORT):
                    await case.wait(o)
        if case.name == "Barrier.wait_async" and how != "cancel":
            assert o.broken
            o.reset()
        # The object works as before: a new waiter is served by the next wake.
        task = asyncio.ensure_future(case.wait(o))
        await settle()
        waker = Worker(case.wake, o).start()
        result = await asyncio.wait_for(task, TIMEOUT)
        await in_thread(waker.join)
        assert case.result(result), result

    run(body)


def test_cancelled_waiters_leave_the_queue(m):
    # What "leaves the queue" means where it can be observed.
    async def body():
        ws = m.WeightedSemaphore(1)
        assert ws.acquire(timeout=0)
        tasks = [asyncio.ensure_future(ws.acquire_async()) for _ in range(5)]
        await until(lambda: waiters(ws) == 5, "5 queued")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert waiters(ws) == 0
        ws.release()
        assert ws.held == 0

        rw = m.RWMutex()
        assert rw.rlock(timeout=0)
        task = asyncio.ensure_future(rw.lock_async())
        await until(lambda: waiters(rw) == 1, "writer queued")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert waiters(rw) == 0
        assert rw.try_rlock()  # the writer that left no longer holds readers back
        rw.runlock()
        rw.runlock()
        assert rw.try_lock()

        ch = m.Chan()
        task = asyncio.ensure_future(ch.recv_async())
        await settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert ch.send("lost?", timeout=0) is False  # nobody receives any more

        task = asyncio.ensure_future(ch.send_async("never"))
        await settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with pytest.raises(TimeoutError):
            ch.recv(timeout=0)  # the cancelled send did not send

        q = m.Queue(1)
        q.put("a")
        task = asyncio.ensure_future(q.put_async("b"))
        await settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert q.get(timeout=0) == "a"
        with pytest.raises(std_queue.Empty):
            q.get(timeout=0)  # "b" was not put
        assert q.unfinished_tasks == 1

    run(body)


def test_units_granted_at_cancel_go_to_the_next_waiter(m):
    # release() grants the head task its units, and the task is cancelled
    # before it runs: the units go on to the waiter behind it.
    async def body():
        for make, take, give, free in [
            (lambda: m.WeightedSemaphore(1), lambda s: s.acquire_async(), lambda s: s.release(),
             lambda s: s.size - s.held),
            (lambda: m.Semaphore(0), lambda s: s.acquire_async(), lambda s: s.release(), units),
            (lambda: m.BoundedSemaphore(1), lambda s: s.acquire_async(), lambda s: s.release(), units),
        ]:
            s = make()
            if free(s):
                assert await take(s)
            first = asyncio.ensure_future(take(s))
            await settle()
            second = asyncio.ensure_future(take(s))
            await settle()
            give(s)  # granted to `first` (which has not run yet)...
            first.cancel()  # ...which is cancelled now
            await asyncio.gather(first, return_exceptions=True)
            assert await asyncio.wait_for(second, TIMEOUT) is True
            give(s)
            assert free(s) == 1

        rw = m.RWMutex()
        assert rw.lock(timeout=0)
        first = asyncio.ensure_future(rw.lock_async())
        await settle()
        second = asyncio.ensure_future(rw.rlock_async())
        await settle()
        rw.unlock()
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        assert await asyncio.wait_for(second, TIMEOUT) is True
        rw.runlock()
        assert rw.try_lock()

    run(body)


# --------------------------------------------------------------------------
# Fast paths, argument errors
# --------------------------------------------------------------------------


def test_fast_paths(m):
    async def body():
        ev = m.Event()
        ev.set()
        assert await ev.wait_async() is True
        assert await ev.wait_async(timeout=0) is True
        assert await m.WaitGroup().wait_async() is True
        sem = m.Semaphore(2)
        assert await sem.acquire_async() is True
        assert await sem.acquire_async(False) is True
        assert await sem.acquire_async(False) is False
        sem.release(2)
        ws = m.WeightedSemaphore(5)
        assert await ws.acquire_async(5, timeout=0) is True
        assert ws.held == 5
        ws.release(5)
        rw = m.RWMutex()
        assert await rw.rlock_async() is True
        assert await rw.rlock_async(timeout=0) is True
        assert await rw.lock_async(timeout=0) is False
        rw.runlock()
        rw.runlock()
        assert await rw.lock_async(timeout=0) is True
        rw.unlock()
        ch = m.Chan(2)
        assert await ch.send_async(1) is True
        assert await ch.send_async(2, timeout=0) is True
        assert await ch.send_async(3, timeout=0) is False
        assert await ch.recv_async() == 1
        assert await ch.recv_ok_async(timeout=0) == (2, True)
        assert await m.select_async(ch.recv, (ch.send, 5)) == (1, None)
        assert await m.select_async(ch.recv_ok, None) == (0, (5, True))
        assert await m.select_async(ch.recv, default=True) == (-1, None)
        q = m.Queue()
        await q.put_async("x")
        assert await q.get_async() == "x"
        q.task_done()
        await q.join_async()
        b = m.Barrier(1)
        assert await b.wait_async() == 0
        calls = []
        once = m.Once()
        await once.do_async(calls.append, 1)
        await once.do_async(calls.append, 2)
        assert calls == [1]
        assert once.done

    run(body)


def _done_at_once(awaitable):
    """Drive `awaitable` one step by hand: it must finish without suspending
    (a fast path does not yield to the loop). Returns its result."""
    it = awaitable.__await__()
    with pytest.raises(StopIteration) as info:
        it.send(None)
    return info.value.value


def test_fast_paths_do_not_suspend(m):
    async def body():
        ev = m.Event()
        ev.set()
        assert _done_at_once(ev.wait_async()) is True
        assert _done_at_once(m.WaitGroup().wait_async()) is True
        sem = m.Semaphore(1)
        assert _done_at_once(sem.acquire_async()) is True
        assert _done_at_once(sem.acquire_async(timeout=0)) is False
        ws = m.WeightedSemaphore(2)
        assert _done_at_once(ws.acquire_async(2)) is True
        rw = m.RWMutex()
        assert _done_at_once(rw.rlock_async()) is True
        ch = m.Chan(1)
        assert _done_at_once(ch.send_async("v")) is True
        assert _done_at_once(ch.recv_async()) == "v"
        assert _done_at_once(m.select_async(ch.recv, default=True)) == (-1, None)
        q = m.Queue()
        assert _done_at_once(q.put_async(1)) is None
        assert _done_at_once(q.get_async()) == 1
        once = m.Once()
        assert _done_at_once(once.do_async(lambda: None)) is None

    run(body)


def test_ctx_cancelled_from_a_task_of_the_same_loop(m):
    async def body():
        ctx, cancel = m.with_cancel(m.background())
        ch, ev, ws, rw = m.Chan(), m.Event(), m.WeightedSemaphore(1), m.RWMutex()
        assert ws.acquire(timeout=0)
        assert rw.lock(timeout=0)
        tasks = [asyncio.ensure_future(ch.recv_async(ctx=ctx)),
                 asyncio.ensure_future(ev.wait_async(ctx=ctx)),
                 asyncio.ensure_future(ws.acquire_async(ctx=ctx)),
                 asyncio.ensure_future(rw.rlock_async(ctx=ctx))]
        await settle()
        cancel()  # in the loop's own thread
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)
        assert all(isinstance(r, m.Canceled) for r in results), results
        assert waiters(ws) == 0 and waiters(rw) == 0

    run(body)


def test_argument_errors_as_the_blocking_versions(m):
    async def body():
        sem = m.Semaphore(1)
        with pytest.raises(ValueError):
            await sem.acquire_async(False, 1)
        with pytest.raises(TypeError):
            await sem.acquire_async(timeout="1")
        with pytest.raises(ValueError):
            await sem.acquire_async(timeout=float("nan"))
        with pytest.raises(TypeError):
            await sem.acquire_async(ctx="not a context")
        assert units(sem) == 1  # unchanged
        ws = m.WeightedSemaphore(2)
        with pytest.raises(ValueError):
            await ws.acquire_async(-1)
        with pytest.raises(ValueError):
            await ws.acquire_async(3)
        with pytest.raises(TypeError):
            await ws.acquire_async(1.5)
        assert ws.held == 0
        with pytest.raises(TypeError):
            await m.Event().wait_async("soon")
        with pytest.raises(TypeError):
            await m.Once().do_async(42)
        ch = m.Chan()
        with pytest.raises(TypeError):
            await m.select_async(ch.recv, "not a case")
        with pytest.raises(TypeError):
            await m.select_async(ch.close)
        q = m.Queue(1)
        with pytest.raises(ValueError):
            await q.get_async(timeout=-1)
        q.put(1)
        with pytest.raises(ValueError):
            await q.put_async(2, timeout=-1)
        with pytest.raises(std_queue.Full):
            await q.put_async(2, block=False)
        assert await q.get_async(block=False) == 1
        with pytest.raises(std_queue.Empty):
            await q.get_async(block=False)
        rw = m.RWMutex()
        with pytest.raises(TypeError):
            await rw.lock_async(timeout="x")
        with pytest.raises(ValueError):
            await rw.reader.acquire_async(False, 1)

    run(body)


def test_closed_and_shut_down(m):
    async def body():
        ch = m.Chan(1)
        ch.send(1)
        ch.close()
        with pytest.raises(m.ChanClosed):
            await ch.send_async(2)
        assert await ch.recv_async() == 1  # buffered values still delivered
        with pytest.raises(m.ChanClosed):
            await ch.recv_async()
        assert await ch.recv_ok_async() == (None, False)
        assert await m.select_async(ch.recv_ok) == (0, (None, False))
        with pytest.raises(m.ChanClosed):
            await m.select_async(ch.recv)
        with pytest.raises(m.ChanClosed):
            await m.select_async((ch.send, 1), default=True)

        # close() wakes the waiting tasks.
        ch, ch2 = m.Chan(), m.Chan()
        rx = asyncio.ensure_future(ch.recv_async())
        rx_ok = asyncio.ensure_future(ch.recv_ok_async())
        sel = asyncio.ensure_future(m.select_async(ch.recv_ok))
        tx = asyncio.ensure_future(ch2.send_async("x"))
        await settle()
        await in_thread(ch.close)
        await in_thread(ch2.close)
        with pytest.raises(m.ChanClosed):
            await asyncio.wait_for(rx, TIMEOUT)
        assert await asyncio.wait_for(rx_ok, TIMEOUT) == (None, False)
        assert await asyncio.wait_for(sel, TIMEOUT) == (0, (None, False))
        with pytest.raises(m.ChanClosed):
            await asyncio.wait_for(tx, TIMEOUT)

        q = m.Queue(1)
        q.put(1)
        putter = asyncio.ensure_future(q.put_async(2))
        q2 = m.Queue()
        getter = asyncio.ensure_future(q2.get_async())
        await settle()
        await in_thread(q.shutdown)
        await in_thread(q2.shutdown)
        with pytest.raises(m.ShutDown):
            await asyncio.wait_for(putter, TIMEOUT)
        with pytest.raises(m.ShutDown):
            await asyncio.wait_for(getter, TIMEOUT)
        assert await q.get_async() == 1
        with pytest.raises(m.ShutDown):
            await q.get_async()

        b = m.Barrier(3)
        task = asyncio.ensure_future(b.wait_async())
        await settle()
        await in_thread(b.abort)
        with pytest.raises(m.BrokenBarrierError):
            await asyncio.wait_for(task, TIMEOUT)

    run(body)


# --------------------------------------------------------------------------
# async with, async for, select_async, Once.do_async
# --------------------------------------------------------------------------


def test_async_with(m):
    async def body():
        for sem in (m.Semaphore(1), m.BoundedSemaphore(1)):
            async with sem as got:
                assert got is True
                assert units(sem) == 0
            assert units(sem) == 1
            with pytest.raises(ZeroDivisionError):
                async with sem:
                    raise ZeroDivisionError
            assert units(sem) == 1
        ws = m.WeightedSemaphore(3)
        async with ws:
            assert ws.held == 1
        assert ws.held == 0
        rw = m.RWMutex()
        async with rw.reader, rw.reader:
            assert not rw.try_lock()
        async with rw.writer:
            assert not rw.try_rlock()
        assert rw.try_lock()
        rw.unlock()
        assert await rw.writer.acquire_async(timeout=0) is True
        assert await rw.reader.acquire_async(False) is False
        rw.writer.release()
        assert await rw.reader.acquire_async() is True
        rw.reader.release()

        # Waiting in async with: woken by a thread's release.
        sem = m.Semaphore(0)
        entered = []

        async def user():
            async with sem:
                entered.append(1)

        task = asyncio.ensure_future(user())
        await settle()
        assert not entered
        await in_thread(sem.release)
        await asyncio.wait_for(task, TIMEOUT)
        assert entered == [1]
        assert units(sem) == 1

    run(body)


def test_async_for_over_a_chan(m):
    async def body():
        ch = m.Chan(3)

        def producer():
            for i in range(50):
                assert ch.send(i, timeout=TIMEOUT)
            ch.close()

        worker = Worker(producer).start()
        got = [v async for v in ch]
        await in_thread(worker.join)
        assert got == list(range(50))
        assert [v async for v in ch] == []  # closed and drained

    run(body)


def test_select_async(m):
    async def body():
        a, b = m.Chan(), m.Chan(1)
        # none ready: default, timeout
        assert await m.select_async(a.recv, b.recv, default=True) == (-1, None)
        assert await m.select_async(a.recv, None, timeout=SHORT) == (-1, None)
        # a send case that proceeds when a thread receives
        worker = Worker(a.recv, TIMEOUT).start()
        assert await m.select_async(None, (a.send, "s"), b.recv) == (1, None)
        assert await in_thread(worker.join) == "s"
        # several ready: each chosen sometimes
        seen = set()
        for _ in range(200):
            c1, c2 = m.Chan(1), m.Chan(1)
            c1.send(1)
            c2.send(2)
            seen.add(await m.select_async(c1.recv, c2.recv))
            if len(seen) == 2:
                break
        assert seen == {(0, 1), (1, 2)}
        # a waiting select leaves every queue once it fires
        task = asyncio.ensure_future(m.select_async(a.recv, (b.send, "b")))
        await settle()
        assert await asyncio.wait_for(task, TIMEOUT) == (1, None)  # b has room
        assert a.send("x", timeout=0) is False  # nobody receives on a any more
        assert b.recv(timeout=0) == "b"
        # cancelled: leaves every queue, no case happens
        task = asyncio.ensure_future(m.select_async(a.recv, (a.send, "y")))
        await settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert a.send("z", timeout=0) is False
        with pytest.raises(TimeoutError):
            a.recv(timeout=0)

    run(body)


def test_once_do_async(m):
    async def body():
        # The first caller (a task) runs fn itself, in the loop's thread.
        once = m.Once()
        ran = []
        await once.do_async(lambda: ran.append(threading.get_ident()))
        assert ran == [threading.get_ident()]
        assert once.done

        # A thread runs fn; tasks that come meanwhile await its end, without
        # blocking the loop (a ticker task keeps running).
        once = m.Once()
        gate = threading.Event()
        started = threading.Event()
        calls = []

        def slow():
            started.set()
            gate.wait(TIMEOUT)
            calls.append("thread")

        worker = Worker(once.do, slow).start()
        await until(started.is_set, "fn started")
        waiting = [asyncio.ensure_future(once.do_async(calls.append, "task")) for _ in range(3)]
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.001)
            ticks += 1
        assert ticks == 10
        assert not any(t.done() for t in waiting)
        gate.set()
        await asyncio.wait_for(asyncio.gather(*waiting), TIMEOUT)
        await in_thread(worker.join)
        assert calls == ["thread"]

        # fn raising: the caller gets it, the Once is done.
        once = m.Once()
        with pytest.raises(KeyError):
            await once.do_async(_raise, KeyError("k"))
        assert once.done
        await once.do_async(_raise, KeyError("again"))  # not called

    run(body)


# --------------------------------------------------------------------------
# Threads and tasks together; loops; no thread per waiter
# --------------------------------------------------------------------------


def test_weighted_fifo_between_threads_and_tasks(m):
    async def body():
        ws = m.WeightedSemaphore(2)
        assert ws.acquire(2, timeout=0)
        order = []

        def thread_first():
            assert ws.acquire(2, timeout=TIMEOUT)
            order.append("thread")

        worker = Worker(thread_first).start()
        await until(lambda: waiters(ws) == 1, "thread queued")

        async def task_second():
            assert await ws.acquire_async(1)
            order.append("task")

        task = asyncio.ensure_future(task_second())
        await until(lambda: waiters(ws) == 2, "task queued")
        ws.release(1)  # one unit free: the task's 1 would fit, but it queued second
        await settle()
        assert order == [] and not task.done()
        ws.release(1)  # the thread's 2
        await in_thread(worker.join)
        assert order == ["thread"]
        ws.release(2)
        await asyncio.wait_for(task, TIMEOUT)
        assert order == ["thread", "task"]
        ws.release(1)

        # And the other way round: a task queued first goes first.
        assert ws.acquire(2, timeout=0)
        order.clear()

        async def task_first():
            assert await ws.acquire_async(2)
            order.append("task")

        task = asyncio.ensure_future(task_first())
        await until(lambda: waiters(ws) == 1, "task queued")

        def thread_second():
            assert ws.acquire(1, timeout=TIMEOUT)
            order.append("thread")

        worker = Worker(thread_second).start()
        await until(lambda: waiters(ws) == 2, "thread queued")
        ws.release(1)
        await settle()
        assert order == []
        ws.release(1)
        await asyncio.wait_for(task, TIMEOUT)
        assert order == ["task"]
        ws.release(2)
        await in_thread(worker.join)
        assert order == ["task", "thread"]
        ws.release(1)
        assert ws.held == 0

    run(body)


def test_one_object_two_loops_in_two_threads(m):
    ev = m.Event()
    ch = m.Chan()
    ready = threading.Barrier(3, timeout=TIMEOUT)
    n = 50

    def loop_receiving():
        async def body():
            waits = [asyncio.ensure_future(ev.wait_async()) for _ in range(n)]
            await settle()
            await in_thread(ready.wait)
            got = [await ch.recv_async(timeout=TIMEOUT) for _ in range(n)]
            assert all(await asyncio.wait_for(asyncio.gather(*waits), TIMEOUT))
            return got

        return run(body)

    def loop_sending():
        async def body():
            waits = [asyncio.ensure_future(ev.wait_async()) for _ in range(n)]
            await settle()
            await in_thread(ready.wait)
            for i in range(n):
                assert await ch.send_async(i, timeout=TIMEOUT)
            assert all(await asyncio.wait_for(asyncio.gather(*waits), TIMEOUT))

        return run(body)

    a = Worker(loop_receiving).start()
    b = Worker(loop_sending).start()
    ready.wait()
    ev.set()
    assert a.join(RUN_TIMEOUT) == list(range(n))
    b.join(RUN_TIMEOUT)


def test_loop_closed_with_waiters_pending(m):
    # Waiters of a loop closed without running them again are dropped:
    # the primitives stay usable by threads.
    sem, ws, ch, rw, q = m.Semaphore(0), m.WeightedSemaphore(1), m.Chan(), m.RWMutex(), m.Queue()
    ev = m.Event()
    assert ws.acquire(timeout=0)
    assert rw.rlock(timeout=0)

    def in_a_loop_that_closes():
        loop = asyncio.new_event_loop()
        try:
            tasks = [
                loop.create_task(sem.acquire_async()),
                loop.create_task(ws.acquire_async()),
                loop.create_task(ch.recv_async()),
                loop.create_task(rw.lock_async()),
                loop.create_task(q.get_async()),
                loop.create_task(ev.wait_async()),
            ]
            loop.run_until_complete(settle())
            assert not any(t.done() for t in tasks)
        finally:
            loop.close()  # the tasks pending are never run again
        return tasks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tasks = Worker(in_a_loop_that_closes).start().join(TIMEOUT)
        del tasks
        gc.collect()

    sem.release()
    assert sem.acquire(timeout=TIMEOUT)
    ws.release()
    assert ws.acquire(timeout=TIMEOUT)
    ws.release()
    assert ws.held == 0
    assert ch.send("v", timeout=0) is False  # no live receiver takes it
    worker = Worker(ch.recv, TIMEOUT).start()
    assert ch.send("v", timeout=TIMEOUT)
    assert worker.join() == "v"
    rw.runlock()
    assert rw.lock(timeout=TIMEOUT)
    rw.unlock()
    q.put("item")
    assert q.get(timeout=TIMEOUT) == "item"
    ev.set()
    assert ev.wait(timeout=0)

    # And by a new loop.
    async def body():
        assert await sem.acquire_async(timeout=0) is False
        sem.release()
        assert await sem.acquire_async(timeout=TIMEOUT)

    run(body)


def test_no_thread_per_waiter(m):
    async def body():
        ev = m.Event()
        sem = m.Semaphore(0)
        ch = m.Chan()
        before = threading.active_count()
        tasks = [asyncio.ensure_future(ev.wait_async()) for _ in range(400)]
        tasks += [asyncio.ensure_future(sem.acquire_async()) for _ in range(300)]
        tasks += [asyncio.ensure_future(ch.recv_async()) for _ in range(300)]
        await settle()
        assert not any(t.done() for t in tasks)
        assert threading.active_count() <= before
        ev.set()
        sem.release(300)
        for i in range(300):
            assert await ch.send_async(i, timeout=TIMEOUT)
        results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        assert sorted(results[700:]) == list(range(300))
        assert threading.active_count() <= before

    run(body)


@pytest.mark.parametrize("loop", loop_kinds())
def test_10k_tasks_woken_by_one_set_from_a_thread(m, loop):
    n = 10_000

    async def body():
        ev = m.Event()
        resumed = []

        async def waiter():
            assert await ev.wait_async()
            resumed.append(time.monotonic())

        tasks = [asyncio.ensure_future(waiter()) for _ in range(n)]
        await settle(5)
        before = threading.active_count()
        t0 = []
        worker = Worker(lambda: (t0.append(time.monotonic()), ev.set())).start()
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        await in_thread(worker.join)
        assert len(resumed) == n
        assert max(resumed) - t0[0] < 2.0  # generous: the target is 50 ms
        assert threading.active_count() <= before + 1  # the setter, perhaps not yet gone

    run(body, loop=loop)


def test_one_wake_up_per_loop_per_batch(m):
    # 1,000 tasks woken by one set() from a thread: the loop is woken from
    # outside a handful of times at most (one call_soon_threadsafe per batch,
    # or none with an eventfd of its own), not once per task.
    async def body():
        loop = asyncio.get_running_loop()
        calls = []
        original = loop.call_soon_threadsafe

        def counting(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting
        try:
            ev = m.Event()
            tasks = [asyncio.ensure_future(ev.wait_async()) for _ in range(1000)]
            await settle()
            calls.clear()
            await in_thread(ev.set)
            assert all(await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT))
        finally:
            del loop.call_soon_threadsafe
        assert len(calls) <= 10, f"{len(calls)} wake-ups of the loop for one set()"

    run(body)


# --------------------------------------------------------------------------
# Cancel storms: nothing lost, nothing left queued
# --------------------------------------------------------------------------


def test_cancel_storm_weighted_and_semaphore(m):
    async def body():
        rng = random.Random(16)
        for kind in ("weighted", "semaphore"):
            size = 8
            sem = m.WeightedSemaphore(size) if kind == "weighted" else m.Semaphore(size)
            if kind == "weighted":
                assert sem.acquire(size, timeout=0)
            else:
                for _ in range(size):
                    assert sem.acquire(timeout=0)

            async def user():
                async with sem:
                    await asyncio.sleep(0)

            tasks = [asyncio.ensure_future(user()) for _ in range(2000)]
            await settle(3)

            def releaser():
                for _ in range(size):
                    sem.release()
                    time.sleep(0.0005)

            worker = Worker(releaser).start()
            while any(not t.done() for t in tasks):
                for t in rng.sample(tasks, 50):
                    t.cancel()
                await asyncio.sleep(0)
            await in_thread(worker.join)
            await asyncio.gather(*tasks, return_exceptions=True)
            if kind == "weighted":
                assert sem.held == 0, sem
                assert waiters(sem) == 0, sem
            else:
                assert units(sem) == size

    run(body)


@pytest.mark.parametrize("cap", [0, 4])
def test_cancel_storm_chan_loses_no_value(m, cap):
    n = 1000

    async def body():
        rng = random.Random(cap)
        ch = m.Chan(cap)
        got = []

        def producer():
            for i in range(n):
                assert ch.send(i, timeout=TIMEOUT)
            ch.close()

        async def receiver():
            got.append(await ch.recv_async())

        worker = Worker(producer).start()
        tasks = []
        deadline = time.monotonic() + TIMEOUT
        while not (ch.closed and len(ch) == 0):
            assert time.monotonic() < deadline, f"{len(got)} values got"
            tasks += [asyncio.ensure_future(receiver()) for _ in range(20)]
            await asyncio.sleep(0)
            for t in rng.sample(tasks[-20:], 10):
                t.cancel()
            await asyncio.sleep(0)
        await in_thread(worker.join)
        await asyncio.gather(*tasks, return_exceptions=True)
        assert sorted(got) == list(range(n))  # each value once: none lost

    run(body)


def test_cancel_storm_queue_loses_no_item(m):
    n = 1000

    async def body():
        rng = random.Random(7)
        q = m.Queue(2)
        got = []

        def producer():
            for i in range(n):
                q.put(i, timeout=TIMEOUT)

        async def getter():
            got.append(await q.get_async())

        worker = Worker(producer).start()
        tasks = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < n:
            assert time.monotonic() < deadline, f"{len(got)} items got"
            tasks += [asyncio.ensure_future(getter()) for _ in range(20)]
            await asyncio.sleep(0)
            for t in rng.sample(tasks[-20:], 10):
                t.cancel()
            await asyncio.sleep(0)
        await in_thread(worker.join)
        for t in tasks:
            t.cancel()  # the getters still waiting: nothing more comes
        await asyncio.gather(*tasks, return_exceptions=True)
        assert sorted(got) == list(range(n))
        assert q.qsize() == 0

    run(body)


# --------------------------------------------------------------------------
# Contexts
# --------------------------------------------------------------------------


def test_await_ctx_done(m):
    ctx, cancel = m.with_cancel(m.background())
    if not hasattr(ctx.done(), "wait_async"):
        pytest.skip("ctx.done() has no wait_async yet (contexts in C: another branch)")

    async def body():
        task = asyncio.ensure_future(ctx.done().wait_async())
        await settle()
        assert not task.done()
        await in_thread(cancel)
        assert await asyncio.wait_for(task, TIMEOUT) is True

    run(body)


def test_ctx_wakes_many_tasks(m):
    async def body():
        ctx, cancel = m.with_cancel(m.background())
        ch, ev, sem = m.Chan(), m.Event(), m.Semaphore(0)
        tasks = [asyncio.ensure_future(ch.recv_async(ctx=ctx)) for _ in range(100)]
        tasks += [asyncio.ensure_future(ev.wait_async(ctx=ctx)) for _ in range(100)]
        tasks += [asyncio.ensure_future(sem.acquire_async(ctx=ctx)) for _ in range(100)]
        await settle()
        await in_thread(cancel)
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)
        assert all(isinstance(r, m.Canceled) for r in results), results[:3]
        assert ch.send(1, timeout=0) is False
        sem.release()
        assert units(sem) == 1

    run(body)
