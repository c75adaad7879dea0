"""The C implementation's asyncio machinery (cext/cy_hub.h): what the
shared tests in test_asyncio.py cannot see from outside.

- one hub (an eventfd or a pipe) per event loop, made on the first wait
  that suspends, closed once the loop and every record are gone: no
  descriptor leaks across loops;
- a record fired for a task whose loop closed without resuming it is
  dropped when its coroutine is closed, and what it was handed goes back;
- a release of n units pokes at most n async waiters not yet poked, and
  one that gives up passes its poke on: no unit is stranded;
- many loops in many threads on one object.

Every await has a timeout; threads are joined with a deadline.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading

import pytest

from conftest import TIMEOUT, Worker


@pytest.fixture
def c(c_impl):
    if not hasattr(c_impl.Event, "wait_async"):
        pytest.skip("this build of the C module has no asyncio twins")
    return c_impl


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd")
def test_no_descriptor_leaks_across_loops(c):
    ev = c.Event()

    async def one_wait():
        task = asyncio.ensure_future(ev.wait_async(TIMEOUT))
        await asyncio.sleep(0)           # suspended: the loop's hub exists now
        assert not task.done()
        ev.set()
        assert await asyncio.wait_for(task, TIMEOUT) is True
        ev.clear()

    asyncio.run(one_wait())
    gc.collect()
    before = open_fds()
    for _ in range(30):
        asyncio.run(one_wait())
    gc.collect()
    assert open_fds() <= before + 2    # a loop's own descriptors may linger until collected


def test_value_handed_to_a_task_of_a_closed_loop_goes_back(c):
    ch = c.Chan(1)
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(ch.recv_async())
        loop.run_until_complete(asyncio.sleep(0))   # one round: the task has queued
        assert not task.done()
        assert ch.send("v", timeout=TIMEOUT)   # straight to the queued task's record
        assert len(ch) == 0
    finally:
        loop.close()                      # the task never resumes
    coro = task.get_coro()
    del task
    coro.close()                          # GeneratorExit at its await: the value goes back
    assert ch.recv(timeout=0) == "v"
    # The channel serves threads as before.
    assert ch.send("w", timeout=0)
    assert ch.recv(timeout=0) == "w"


def test_queue_item_handed_to_a_task_of_a_closed_loop_goes_back(c):
    q = c.Queue()
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(q.get_async())
        loop.run_until_complete(asyncio.sleep(0))
        q.put("item")
        assert q.qsize() == 0             # handed to the task
    finally:
        loop.close()
    coro = task.get_coro()
    del task
    coro.close()
    assert q.get(timeout=0) == "item"
    assert q.unfinished_tasks == 1


@pytest.mark.parametrize("waiters", [1, 50, 500])
def test_every_unit_reaches_a_waiter(c, waiters):
    """Releases one unit at a time from a thread while many tasks wait:
    each release pokes one task, and every task gets its unit."""
    sem = c.Semaphore(0)

    async def body():
        tasks = [asyncio.ensure_future(sem.acquire_async(timeout=TIMEOUT)) for _ in range(waiters)]
        for _ in range(5):
            await asyncio.sleep(0)

        def releaser():
            for _ in range(waiters):
                sem.release()

        worker = Worker(releaser).start()
        results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        while not worker.done:
            await asyncio.sleep(0.001)
        worker.join(TIMEOUT)
        assert results == [True] * waiters
        assert sem._value == 0

    asyncio.run(body())


def test_units_pass_on_when_poked_waiters_are_cancelled(c):
    """Poked tasks cancelled before they run pass their poke on: the units
    released go to the tasks that remain."""
    sem = c.Semaphore(0)

    async def body():
        tasks = [asyncio.ensure_future(sem.acquire_async()) for _ in range(20)]
        for _ in range(5):
            await asyncio.sleep(0)
        sem.release(10)                   # pokes 10 tasks (they have not run yet)
        for t in tasks[:10]:
            t.cancel()
        done, pending = await asyncio.wait(tasks, timeout=TIMEOUT, return_when=asyncio.ALL_COMPLETED)
        got = sum(1 for t in tasks if not t.cancelled() and t.result() is True)
        assert got + sem._value == 10
        assert not pending
        assert got == 10

    asyncio.run(body())


def test_many_loops_in_many_threads_share_one_chan(c):
    ch = c.Chan()
    n_loops, per_loop = 4, 200
    got = []
    lock = threading.Lock()

    def consumer():
        async def body():
            async def one():
                v = await ch.recv_async(timeout=TIMEOUT)
                with lock:
                    got.append(v)

            await asyncio.gather(*(one() for _ in range(per_loop)))

        asyncio.run(body())

    workers = [Worker(consumer).start() for _ in range(n_loops)]
    for i in range(n_loops * per_loop):
        assert ch.send(i, timeout=TIMEOUT)
    for w in workers:
        w.join(TIMEOUT)
    assert sorted(got) == list(range(n_loops * per_loop))


def test_context_cancel_reaches_tasks_on_two_loops(c):
    ctx, cancel = c.with_cancel(c.background())
    ev = c.Event()
    outcomes = []

    def waiter_loop():
        async def body():
            try:
                await ev.wait_async(TIMEOUT, ctx=ctx)
            except c.Canceled:
                outcomes.append("canceled")

        asyncio.run(body())

    workers = [Worker(waiter_loop).start() for _ in range(2)]
    # The outcome is the same whether the waits have begun (woken by the
    # token) or not (the context has ended at the call).
    cancel()
    for w in workers:
        w.join(TIMEOUT)
    assert outcomes == ["canceled", "canceled"]


class _NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop that watches no descriptors for others, as the proactor loop
    on Windows: the hub falls back to one helper thread for the loop."""

    def add_reader(self, fd, callback, *args):
        raise NotImplementedError


def test_loop_without_add_reader_gets_one_helper_thread(c):
    ev, ch = c.Event(), c.Chan()
    loop = _NoReaderLoop()
    before = {t.ident for t in threading.enumerate()}

    async def body():
        tasks = [asyncio.ensure_future(ev.wait_async(TIMEOUT)) for _ in range(100)]
        tasks.append(asyncio.ensure_future(ch.recv_async(timeout=TIMEOUT)))
        for _ in range(5):
            await asyncio.sleep(0)

        def waker():
            ev.set()
            assert ch.send("v", timeout=TIMEOUT)

        worker = Worker(waker).start()
        results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        while not worker.done:
            await asyncio.sleep(0.001)
        worker.join(TIMEOUT)
        assert results == [True] * 100 + ["v"]

    try:
        loop.run_until_complete(body())
        helpers = [t for t in threading.enumerate()
                   if t.ident not in before and t.name == "cysync asyncio hub"]
        assert len(helpers) == 1
    finally:
        loop.close()
    helpers[0].join(TIMEOUT)                # it sees the loop closed within a second
    assert not helpers[0].is_alive()
