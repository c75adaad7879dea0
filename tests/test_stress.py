"""Many threads, many operations: invariants hold and no wake-up is lost.

Every blocking call has a timeout (a lost wake-up fails an assertion instead
of hanging) and every thread is joined with a deadline. Sizes are chosen so
that the whole file runs in a few seconds on two cores for both
implementations. The "long" variants, marked slow (deselected by default,
run them with ``pytest -m slow``), do 25 times more; CYSYNC_STRESS=N
multiplies both.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time

import pytest

SCALE = max(1, int(os.environ.get("CYSYNC_STRESS", "1") or 1))
LONG = 25  # the "slow" variant (pytest -m slow) runs 25 times as many operations


def join(scale: int) -> float:
    """Deadline for a whole stress run (each blocking call has its own TIMEOUT)."""
    return 60.0 * scale


@pytest.fixture(params=[pytest.param(1, id="quick"),
                        pytest.param(LONG, id="long", marks=pytest.mark.slow)])
def scale(request):
    """Iteration multiplier: quick by default, long under ``-m slow``."""
    return request.param * SCALE


# --- WaitGroup ----------------------------------------------------------------------

def test_waitgroup_rounds_release_every_waiter(impl, tools, scale):
    """Round after round, done() from 16 threads releases every waiter."""
    wg = impl.WaitGroup()
    n, rounds = 16, 60 * scale
    start = threading.Barrier(n + 1)
    end = threading.Barrier(n + 1)

    def worker():
        for _ in range(rounds):
            start.wait(tools.TIMEOUT)
            wg.done()
            assert wg.wait(tools.TIMEOUT), "lost wake-up in WaitGroup.wait"
            end.wait(tools.TIMEOUT)

    workers = [tools.spawn(worker) for _ in range(n)]
    try:
        for _ in range(rounds):
            wg.add(n)
            start.wait(tools.TIMEOUT)
            assert wg.wait(tools.TIMEOUT), "lost wake-up in WaitGroup.wait"
            end.wait(tools.TIMEOUT)
    except BaseException:
        start.abort()  # unblock the threads, then report the first error
        end.abort()
        raise
    finally:
        tools.join_all(workers, join(scale))
    assert wg.count == 0


def test_waitgroup_add_done_churn(impl, tools, scale):
    """The counter stays exact under concurrent add/done; waiters see zero."""
    wg = impl.WaitGroup()
    n, ops = 16, 2000 * scale
    barrier = threading.Barrier(n)
    wg.add(n)  # one per worker, so waiters cannot return before all finish

    def worker():
        barrier.wait(tools.TIMEOUT)
        for _ in range(ops):
            wg.add(1)
            wg.add(2)
            wg.done()
            wg.add(-2)
        wg.done()

    waiters = [tools.spawn(wg.wait, tools.TIMEOUT) for _ in range(4)]
    tools.run_threads([worker] * n, join(scale))
    assert tools.join_all(waiters) == [True] * 4
    assert wg.count == 0
    assert wg.wait(0) is True


def test_waitgroup_go_many(impl, tools):
    wg = impl.WaitGroup()
    total = [0]
    lock = threading.Lock()

    def task(k):
        with lock:
            total[0] += k

    threads = [wg.go(task, k) for k in range(200)]
    assert wg.wait(tools.TIMEOUT)
    for t in threads:
        t.join(tools.TIMEOUT)
        assert not t.is_alive()
    assert total[0] == sum(range(200))


# --- Once -----------------------------------------------------------------------------

def once_race(impl, tools, n, deadline):
    """n threads released at once call once.do(); fn must run exactly once
    and every caller must return only after it completed."""
    once = impl.Once()
    barrier = threading.Barrier(n)
    calls = []
    completed = threading.Event()

    def fn(i):
        calls.append(i)
        time.sleep(0.001)  # let the others pile up behind
        completed.set()

    def caller(i):
        barrier.wait(tools.TIMEOUT)
        once.do(fn, i)
        return completed.is_set()  # returned only after fn completed

    results = tools.run_threads([functools.partial(caller, i) for i in range(n)], deadline)
    assert results == [True] * n
    assert len(calls) == 1
    assert once.done


def test_once_exactly_once_with_32_racing_threads(impl, tools, scale):
    for _ in range(10 * scale):
        once_race(impl, tools, 32, join(scale))


def wrapper_race(impl, tools, name, n, deadline):
    calls = []
    value = object()

    def fn():
        calls.append(1)
        time.sleep(0.001)
        return value

    f = getattr(impl, name)(fn)
    barrier = threading.Barrier(n)

    def caller():
        barrier.wait(tools.TIMEOUT)
        return f()

    results = tools.run_threads([caller] * n, deadline)
    expected = value if name == "once_value" else None
    assert all(r is expected for r in results)
    assert calls == [1]


@pytest.mark.parametrize("name", ["once_func", "once_value"])
def test_once_wrappers_exactly_once_with_32_racing_threads(impl, tools, scale, name):
    for _ in range(10 * scale):
        wrapper_race(impl, tools, name, 32, join(scale))


# --- Semaphore -------------------------------------------------------------------------

@pytest.mark.parametrize("cls_name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_never_more_than_n_holders(impl, tools, scale, cls_name):
    limit, n, ops = 4, 16, 1000 * scale
    sem = getattr(impl, cls_name)(limit)
    lock = threading.Lock()
    inside = [0, 0]  # now, max
    barrier = threading.Barrier(n)

    def worker(seed):
        rng = random.Random(seed)
        barrier.wait(tools.TIMEOUT)
        for _ in range(ops):
            if rng.random() < 0.1:
                if not sem.acquire(False):
                    continue
            else:
                assert sem.acquire(timeout=tools.TIMEOUT), "lost wake-up in acquire"
            with lock:
                inside[0] += 1
                inside[1] = max(inside[1], inside[0])
                assert inside[0] <= limit
            with lock:
                inside[0] -= 1
            sem.release()

    tools.run_threads([functools.partial(worker, i) for i in range(n)], join(scale))
    assert inside == [0, inside[1]] and 1 <= inside[1] <= limit
    assert sem._value == limit


def test_semaphore_release_n_hand_off(impl, tools, scale):
    """Producers release batches, consumers take one at a time: all counted."""
    sem = impl.Semaphore(0)
    producers, consumers, batches, batch = 4, 12, 100 * scale, 3
    total = producers * batches * batch
    taken = [0] * consumers
    remaining = [total]
    lock = threading.Lock()

    def producer():
        for _ in range(batches):
            sem.release(batch)

    def consumer(i):
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            assert sem.acquire(timeout=tools.TIMEOUT), "lost wake-up in acquire"
            taken[i] += 1

    workers = [functools.partial(consumer, i) for i in range(consumers)]
    workers += [producer] * producers
    tools.run_threads(workers, join(scale))
    assert sum(taken) == total
    assert sem._value == 0


# --- WeightedSemaphore -----------------------------------------------------------------

def test_weighted_invariants(impl, tools, scale):
    size, n, ops = 10, 16, 400 * scale
    sem = impl.WeightedSemaphore(size)
    lock = threading.Lock()
    used = [0, 0]  # units in use now, max
    timeouts = [0]
    barrier = threading.Barrier(n)

    def worker(seed):
        rng = random.Random(seed)
        barrier.wait(tools.TIMEOUT)
        for _ in range(ops):
            want = rng.randint(0, size)
            kind = rng.random()
            if kind < 0.15:
                ok = sem.try_acquire(want)
            elif kind < 0.3:
                ok = sem.acquire(want, 0.0005)  # exercises leaving the queue
                if not ok:
                    with lock:
                        timeouts[0] += 1
            else:
                ok = sem.acquire(want, tools.TIMEOUT)
                assert ok, "lost wake-up in WeightedSemaphore.acquire"
            if not ok:
                continue
            with lock:
                used[0] += want
                used[1] = max(used[1], used[0])
                assert used[0] <= size
                assert sem.held <= size
            with lock:
                used[0] -= want
            sem.release(want)

    tools.run_threads([functools.partial(worker, i) for i in range(n)], join(scale))
    assert used[0] == 0 and used[1] <= size
    assert sem.held == 0
    assert tools.waiters(sem) == 0
    assert sem.try_acquire(size) is True


def test_weighted_large_and_small_mixed_all_served(impl, tools, scale):
    """Large requests among many small ones all complete (no starvation)."""
    size = 8
    sem = impl.WeightedSemaphore(size)
    stop = threading.Event()
    big_done = [0]

    def small():
        while not stop.is_set():
            assert sem.acquire(1, tools.TIMEOUT)
            sem.release(1)

    def big():
        for _ in range(20 * scale):
            assert sem.acquire(size, tools.TIMEOUT), "large request starved"
            big_done[0] += 1
            sem.release(size)

    smalls = [tools.spawn(small) for _ in range(12)]
    try:
        tools.run_threads([big, big], join(scale))
    finally:
        stop.set()
        tools.join_all(smalls, join(scale))
    assert big_done[0] == 40 * scale
    assert sem.held == 0


# --- Event ------------------------------------------------------------------------------

def test_event_rounds_wake_every_waiter(impl, tools, scale):
    """Each set() releases every thread waiting (or about to wait) for it."""
    ev = impl.Event()
    n, rounds = 8, 100 * scale
    start = threading.Barrier(n + 1)
    end = threading.Barrier(n + 1)

    def waiter():
        for _ in range(rounds):
            start.wait(tools.TIMEOUT)
            assert ev.wait(tools.TIMEOUT), "lost wake-up in Event.wait"
            end.wait(tools.TIMEOUT)

    waiters = [tools.spawn(waiter) for _ in range(n)]
    try:
        for _ in range(rounds):
            start.wait(tools.TIMEOUT)
            ev.set()
            end.wait(tools.TIMEOUT)
            ev.clear()
    except BaseException:
        start.abort()  # unblock the threads, then report the first error
        end.abort()
        raise
    finally:
        tools.join_all(waiters, join(scale))
    assert not ev.is_set()


def test_event_set_clear_hammer(impl, tools, scale):
    """Concurrent set/clear/wait never corrupts the event; a final set()
    releases every waiter."""
    ev = impl.Event()
    stop = threading.Event()
    n_hammer, ops = 4, 2000 * scale

    def hammer(seed):
        rng = random.Random(seed)
        for _ in range(ops):
            if rng.random() < 0.5:
                ev.set()
            else:
                ev.clear()
            ev.is_set()

    def waiter():
        got = 0
        while not stop.is_set():
            got += ev.wait(0.001)
        return ev.wait(tools.TIMEOUT)

    waiters = [tools.spawn(waiter) for _ in range(8)]
    try:
        tools.run_threads([functools.partial(hammer, i) for i in range(n_hammer)], join(scale))
    finally:
        stop.set()
        ev.set()
    assert tools.join_all(waiters, join(scale)) == [True] * 8
    assert ev.is_set()


# --- Barrier ----------------------------------------------------------------------------

def test_barrier_rounds(impl, tools, scale):
    """16 threads meet round after round: each round hands out every index
    once, and the action runs once per round, before anyone leaves."""
    n, rounds = 16, 50 * scale
    actions = []
    b = impl.Barrier(n, action=lambda: actions.append(len(actions)))
    seen = [[] for _ in range(rounds)]
    lock = threading.Lock()

    def worker():
        for r in range(rounds):
            i = b.wait(tools.TIMEOUT)
            assert len(actions) == r + 1  # the action of this round ran already
            with lock:
                seen[r].append(i)

    tools.run_threads([worker] * n, join(scale))
    assert all(sorted(s) == list(range(n)) for s in seen)
    assert actions == list(range(rounds))
    assert b.n_waiting == 0 and not b.broken
