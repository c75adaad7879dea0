"""WeightedSemaphore: golang.org/x/sync/semaphore.Weighted, both implementations.

The queue of waiters is observed through ``repr(sem)`` ("waiters=N"), which
lets the FIFO tests put waiters in a known order without relying on sleeps.
"""

from __future__ import annotations

import gc
import re
import threading
import time
import weakref

import pytest

BAD_TIMEOUT = "^timeout must be a number or None$"
NAN_TIMEOUT = "^timeout must not be NaN$"
N_NEGATIVE = "^n must be >= 0$"
TOO_BIG = "^n exceeds semaphore size$"
OVER_RELEASE = "^semaphore: released more than held$"
INT64_MAX = 2**63 - 1

BAD_INTS = [
    pytest.param(1.0, id="float"),
    pytest.param(1.5, id="float-fraction"),
    pytest.param("1", id="str"),
    pytest.param(None, id="None"),
    pytest.param(b"1", id="bytes"),
]
BAD_TIMEOUTS = [
    pytest.param("1", id="str"),
    pytest.param(b"1", id="bytes"),
    pytest.param([1], id="list"),
    pytest.param(object(), id="object"),
]


class Index:
    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


def state(sem):
    return sem.held, sem.size


def queue(tools, sem, n, timeout=None, log=None, name=None):
    """Start a thread blocked in ``sem.acquire(n, timeout)``, queued behind
    the current waiters; returns it once it is in the queue."""
    timeout = tools.TIMEOUT if timeout is None else timeout
    before = tools.waiters(sem)

    def acquire():
        ok = sem.acquire(n, timeout)
        if log is not None:
            log.append((name, ok))
        return ok

    worker = tools.spawn(acquire, name=name)
    tools.wait_until(lambda: tools.waiters(sem) == before + 1 or worker.done,
                     message=f"acquire({n}) never queued")
    assert not worker.done, f"acquire({n}) did not wait: {worker.result!r} {worker.error!r}"
    return worker


# --- construction ----------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 10, INT64_MAX, True, Index(7)])
def test_size(impl, size):
    sem = impl.WeightedSemaphore(size)
    assert sem.size == size.__index__()
    assert sem.held == 0
    assert impl.WeightedSemaphore(size=size).size == sem.size


@pytest.mark.parametrize("size", [-1, -(2**63), -(2**100)])
def test_negative_size(impl, size):
    with pytest.raises(ValueError, match="^semaphore size must be >= 0$"):
        impl.WeightedSemaphore(size)


@pytest.mark.parametrize("size", [INT64_MAX + 1, 2**100])
def test_size_too_large(impl, size):
    with pytest.raises(OverflowError):
        impl.WeightedSemaphore(size)


@pytest.mark.parametrize("bad", BAD_INTS)
def test_size_must_be_an_integer(impl, bad):
    with pytest.raises(TypeError):
        impl.WeightedSemaphore(bad)


def test_size_and_held_are_read_only(impl):
    sem = impl.WeightedSemaphore(3)
    sem.acquire()
    with pytest.raises(AttributeError):
        sem.size = 5
    with pytest.raises(AttributeError):
        sem.held = 0
    assert state(sem) == (1, 3)


# --- acquire / try_acquire / release: single thread ---------------------------------

def test_acquire_and_release(impl):
    sem = impl.WeightedSemaphore(10)
    assert sem.acquire() is True
    assert sem.held == 1
    assert sem.acquire(4) is True
    assert sem.acquire(n=5, timeout=None) is True
    assert sem.held == 10
    assert sem.acquire(1, 0) is False
    assert sem.acquire(0) is True  # nothing to take, nobody waiting
    assert sem.held == 10
    assert sem.release(3) is None
    assert sem.held == 7
    sem.release()
    sem.release(n=6)
    sem.release(0)
    assert sem.held == 0


def test_acquire_accepts_bool_and_index(impl):
    sem = impl.WeightedSemaphore(5)
    sem.acquire(True)
    sem.acquire(Index(3))
    assert sem.held == 4
    assert sem.try_acquire(Index(1)) is True
    sem.release(Index(5))
    assert sem.held == 0


def test_try_acquire(impl):
    sem = impl.WeightedSemaphore(5)
    assert sem.try_acquire() is True
    assert sem.try_acquire(3) is True
    assert sem.held == 4
    assert sem.try_acquire(2) is False
    assert sem.held == 4
    assert sem.try_acquire(n=1) is True
    assert sem.try_acquire(0) is True
    assert sem.held == 5
    assert sem.try_acquire(1) is False


def test_try_acquire_more_than_size_is_false(impl):
    sem = impl.WeightedSemaphore(3)
    assert sem.try_acquire(4) is False
    assert sem.try_acquire(2**80) is False
    assert sem.held == 0


def test_zero_size(impl):
    sem = impl.WeightedSemaphore(0)
    assert sem.acquire(0) is True
    assert sem.try_acquire(0) is True
    assert sem.try_acquire(1) is False
    with pytest.raises(ValueError, match=TOO_BIG):
        sem.acquire(1)
    assert state(sem) == (0, 0)


def test_huge_size(impl):
    sem = impl.WeightedSemaphore(INT64_MAX)
    assert sem.acquire(2**62) is True
    assert sem.acquire(INT64_MAX - 2**62) is True
    assert sem.held == INT64_MAX
    assert sem.try_acquire(1) is False
    sem.release(INT64_MAX)
    assert sem.held == 0


@pytest.mark.parametrize("timeout", [None, 0, 5])
def test_more_than_size_raises_at_once(impl, timeout):
    sem = impl.WeightedSemaphore(3)
    sem.acquire(1)
    start = time.monotonic()
    with pytest.raises(ValueError, match=TOO_BIG):
        sem.acquire(4, timeout)
    with pytest.raises(ValueError, match=TOO_BIG):
        sem.acquire(2**100, timeout)
    assert time.monotonic() - start < 1.0
    assert state(sem) == (1, 3)


@pytest.mark.parametrize("n", [-1, -(2**100)])
def test_negative_n(impl, n):
    sem = impl.WeightedSemaphore(3)
    sem.acquire(2)
    with pytest.raises(ValueError, match=N_NEGATIVE):
        sem.acquire(n)
    with pytest.raises(ValueError, match=N_NEGATIVE):
        sem.try_acquire(n)
    with pytest.raises(ValueError, match=N_NEGATIVE):
        sem.release(n)
    assert state(sem) == (2, 3)


@pytest.mark.parametrize("bad", BAD_INTS)
def test_n_must_be_an_integer(impl, bad):
    sem = impl.WeightedSemaphore(3)
    sem.acquire(2)
    with pytest.raises(TypeError):
        sem.acquire(bad)
    with pytest.raises(TypeError):
        sem.try_acquire(bad)
    with pytest.raises(TypeError):
        sem.release(bad)
    assert state(sem) == (2, 3)


def test_release_more_than_held(impl):
    sem = impl.WeightedSemaphore(5)
    with pytest.raises(ValueError, match=OVER_RELEASE):
        sem.release()
    assert sem.held == 0
    sem.acquire(3)
    with pytest.raises(ValueError, match=OVER_RELEASE):
        sem.release(4)
    with pytest.raises(ValueError, match=OVER_RELEASE):
        sem.release(2**100)
    assert state(sem) == (3, 5)
    sem.release(3)
    assert sem.held == 0


# --- timeouts -----------------------------------------------------------------------

@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, -(10**30)])
def test_zero_or_negative_timeout_polls(impl, timeout):
    sem = impl.WeightedSemaphore(2)
    assert sem.acquire(1, timeout) is True
    start = time.monotonic()
    assert sem.acquire(2, timeout) is False
    assert time.monotonic() - start < 1.0
    assert sem.held == 1
    assert "waiters=0" in repr(sem)


def test_acquire_times_out(impl):
    sem = impl.WeightedSemaphore(2)
    sem.acquire(2)
    start = time.monotonic()
    assert sem.acquire(1, timeout=0.05) is False
    assert 0.03 <= time.monotonic() - start < 5.0
    assert sem.held == 2
    assert "waiters=0" in repr(sem)


@pytest.mark.parametrize("bad", BAD_TIMEOUTS)
def test_acquire_rejects_bad_timeout_type(impl, bad):
    sem = impl.WeightedSemaphore(2)
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        sem.acquire(1, bad)
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        sem.acquire(timeout=bad)
    assert sem.held == 0


def test_acquire_rejects_nan_timeout(impl):
    sem = impl.WeightedSemaphore(2)
    with pytest.raises(ValueError, match=NAN_TIMEOUT):
        sem.acquire(1, float("nan"))
    assert sem.held == 0


@pytest.mark.parametrize("timeout", [float("inf"), 2**63, 1e300])
def test_huge_timeout_means_forever(impl, tools, timeout):
    sem = impl.WeightedSemaphore(1)
    sem.acquire()
    w = queue(tools, sem, 1, timeout)
    tools.settle(0.05)
    assert not w.done
    sem.release()
    assert w.join() is True
    assert sem.held == 1


# --- waiting, FIFO --------------------------------------------------------------------

def test_blocked_acquire_is_served_on_release(impl, tools):
    sem = impl.WeightedSemaphore(4)
    sem.acquire(4)
    w = queue(tools, sem, 3)
    sem.release(2)
    tools.settle(0.05)
    assert not w.done  # 2 free, 3 wanted
    assert sem.held == 2
    sem.release(1)
    assert w.join() is True
    assert sem.held == 4
    assert "waiters=0" in repr(sem)


def test_waiters_are_served_in_fifo_order(impl, tools):
    sem = impl.WeightedSemaphore(3)
    sem.acquire(3)
    log = []
    workers = [queue(tools, sem, 1, log=log, name=f"w{i}") for i in range(6)]
    for granted in range(1, 4):
        sem.release(1)
        tools.wait_until(lambda n=granted: len(log) == n)
    assert [name for name, _ in log] == ["w0", "w1", "w2"]
    sem.release(3)  # w3, w4 and w5 all fit at once
    tools.join_all(workers)
    assert sorted(log) == [(f"w{i}", True) for i in range(6)]
    assert sem.held == 3


def test_new_request_queues_behind_waiter_even_if_it_fits(impl, tools):
    sem = impl.WeightedSemaphore(10)
    sem.acquire(5)
    big = queue(tools, sem, 10)
    # 5 units are free, but someone waits: newcomers do not overtake.
    assert sem.try_acquire(1) is False
    assert sem.acquire(1, timeout=0) is False
    assert sem.acquire(1, timeout=0.02) is False
    assert sem.held == 5
    small = queue(tools, sem, 1)
    assert tools.waiters(sem) == 2
    tools.settle(0.05)
    assert not small.done and not big.done
    sem.release(5)  # the big one first...
    assert big.join() is True
    assert sem.held == 10
    assert not small.done  # ...the small one still waits for room
    sem.release(10)
    assert small.join() is True
    assert sem.held == 1
    assert sem.try_acquire(9) is True


def test_release_stops_at_the_first_waiter_that_does_not_fit(impl, tools):
    sem = impl.WeightedSemaphore(10)
    sem.acquire(10)
    log = []
    a = queue(tools, sem, 2, log=log, name="a")
    b = queue(tools, sem, 8, log=log, name="b")
    c = queue(tools, sem, 1, log=log, name="c")
    sem.release(3)  # a fits (2), b does not (8 > 1): c (1) must not overtake
    assert a.join() is True
    tools.settle(0.05)
    assert not b.done and not c.done
    assert sem.held == 9
    sem.release(7)  # 8 free now: b, then c does not fit (0 left)
    assert b.join() is True
    tools.settle(0.05)
    assert not c.done
    sem.release(1)
    assert c.join() is True
    assert log == [("a", True), ("b", True), ("c", True)]
    assert sem.held == 10


def test_large_request_is_not_starved_by_small_ones(impl, tools):
    size = 10
    sem = impl.WeightedSemaphore(size)
    stop = threading.Event()
    started = threading.Barrier(13)
    rounds = [0] * 12

    def small(i):
        started.wait(tools.TIMEOUT)
        while not stop.is_set():
            assert sem.acquire(1, tools.TIMEOUT)
            time.sleep(0.0005)  # work while holding the unit: keep units busy
            sem.release(1)
            rounds[i] += 1

    smalls = [tools.spawn(small, i) for i in range(12)]
    try:
        started.wait(tools.TIMEOUT)
        tools.wait_until(lambda: min(rounds) > 3)
        start = time.monotonic()
        assert sem.acquire(size, timeout=5.0) is True, "large request starved"
        waited = time.monotonic() - start
        assert sem.held == size
        sem.release(size)
    finally:
        stop.set()
    tools.join_all(smalls)
    assert waited < 5.0
    assert sem.held == 0


def test_timed_out_head_lets_the_ones_behind_proceed(impl, tools):
    sem = impl.WeightedSemaphore(10)
    sem.acquire(5)
    log = []
    head = queue(tools, sem, 10, timeout=0.3, log=log, name="head")
    b = queue(tools, sem, 3, log=log, name="b")
    c = queue(tools, sem, 2, log=log, name="c")
    assert sem.held == 5 and not b.done and not c.done  # queued behind the head
    assert head.join() is False  # 10 never free
    assert b.join() is True  # 5 free: both fit once the head left
    assert c.join() is True
    assert sorted(log) == [("b", True), ("c", True), ("head", False)]
    assert sem.held == 10
    assert "waiters=0" in repr(sem)


def test_timed_out_head_next_does_not_fit_keeps_order(impl, tools):
    sem = impl.WeightedSemaphore(10)
    sem.acquire(5)
    head = queue(tools, sem, 10, timeout=0.2)
    b = queue(tools, sem, 8)
    c = queue(tools, sem, 1)
    assert head.join() is False
    tools.wait_until(lambda: tools.waiters(sem) == 2)
    tools.settle(0.05)
    assert not b.done and not c.done  # b does not fit; c must not overtake it
    assert sem.held == 5
    sem.release(3)  # 8 free: b
    assert b.join() is True
    assert sem.held == 10
    assert not c.done
    sem.release(2)
    assert c.join() is True
    assert sem.held == 9


def test_timed_out_middle_waiter_leaves_the_queue(impl, tools):
    sem = impl.WeightedSemaphore(4)
    sem.acquire(4)
    a = queue(tools, sem, 4)
    mid = queue(tools, sem, 2, timeout=0.2)
    c = queue(tools, sem, 1)
    assert mid.join() is False
    tools.wait_until(lambda: tools.waiters(sem) == 2)
    sem.release(4)
    assert a.join() is True
    assert not c.done
    sem.release(4)
    assert c.join() is True
    assert sem.held == 1


# --- context manager, repr, subclassing, weakref --------------------------------------

def test_context_manager(impl):
    sem = impl.WeightedSemaphore(2)
    with sem:
        assert sem.held == 1
        with sem:
            assert sem.held == 2
        assert sem.held == 1
    assert sem.held == 0
    with pytest.raises(KeyError), sem:
        raise KeyError
    assert sem.held == 0


def test_repr(impl, tools):
    sem = impl.WeightedSemaphore(5)
    sem.acquire(2)
    pattern = r"^<cysync\.WeightedSemaphore at 0x[0-9a-fA-F]+: held=2/5, waiters=0>$"
    assert re.match(pattern, repr(sem)), repr(sem)
    w = queue(tools, sem, 5)
    assert repr(sem).endswith(": held=2/5, waiters=1>")
    sem.release(2)
    assert w.join() is True
    assert repr(sem).endswith(": held=5/5, waiters=0>")


def test_subclass_and_weakref(impl):
    class Pool(impl.WeightedSemaphore):
        def __init__(self, size, name):
            super().__init__(size)
            self.name = name

    pool = Pool(4, "db")
    assert pool.name == "db"
    assert pool.acquire(3) is True
    assert pool.try_acquire(2) is False
    pool.release(3)
    assert pool.held == 0
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
