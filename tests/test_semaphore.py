"""Semaphore and BoundedSemaphore: drop-ins for threading's, both implementations."""

from __future__ import annotations

import gc
import re
import threading
import time
import weakref

import pytest

MAX = 2**31 - 1
BAD_TIMEOUT = "^timeout must be a number or None$"
NAN_TIMEOUT = "^timeout must not be NaN$"
TOO_LARGE = "^Semaphore value too large$"
TOO_MANY = "^Semaphore released too many times$"
N_MUST = "^n must be one or more$"
NONBLOCKING = "^can't specify timeout for non-blocking acquire$"


class Index:
    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


@pytest.fixture(params=["Semaphore", "BoundedSemaphore"])
def sem_cls(request, impl):
    """Semaphore and BoundedSemaphore: what they share is tested on both."""
    return getattr(impl, request.param)


# --- construction --------------------------------------------------------------

def test_bounded_is_a_semaphore(impl):
    assert issubclass(impl.BoundedSemaphore, impl.Semaphore)
    assert isinstance(impl.BoundedSemaphore(), impl.Semaphore)


def test_default_value_is_one(sem_cls):
    sem = sem_cls()
    assert sem._value == 1
    assert sem.acquire() is True
    assert sem.acquire(False) is False
    sem.release()
    assert sem._value == 1


@pytest.mark.parametrize("value", [0, 1, 5, MAX, True, Index(3)])
def test_initial_value(sem_cls, value):
    sem = sem_cls(value)
    assert sem._value == int(value.__index__())
    sem2 = sem_cls(value=value)
    assert sem2._value == sem._value


def test_initial_value_bound(impl):
    sem = impl.BoundedSemaphore(3)
    assert sem._initial_value == 3
    sem.acquire()
    assert sem._initial_value == 3
    assert sem._value == 2


@pytest.mark.parametrize("value", [-1, -(2**31), -(2**100)])
def test_negative_initial_value(sem_cls, value):
    with pytest.raises(ValueError, match="^semaphore initial value must be >= 0$"):
        sem_cls(value)


@pytest.mark.parametrize("value", [MAX + 1, 2**63, 2**100])
def test_initial_value_too_large(sem_cls, value):
    with pytest.raises(OverflowError, match=TOO_LARGE):
        sem_cls(value)


@pytest.mark.parametrize("bad", [1.0, 1.5, "1", None, b"1"], ids=lambda v: type(v).__name__)
def test_initial_value_must_be_an_integer(sem_cls, bad):
    with pytest.raises(TypeError):
        sem_cls(bad)


def test_value_is_read_only(sem_cls):
    sem = sem_cls(2)
    with pytest.raises(AttributeError):
        sem._value = 5
    assert sem._value == 2


# --- acquire ------------------------------------------------------------------

def test_acquire_and_release(sem_cls):
    sem = sem_cls(3)
    assert sem.acquire() is True
    assert sem.acquire(True) is True
    assert sem.acquire(blocking=True, timeout=None) is True
    assert sem._value == 0
    assert sem.acquire(False) is False
    assert sem.acquire(blocking=0) is False
    assert sem.acquire(timeout=0) is False
    assert sem.release() is None
    assert sem._value == 1
    sem.release(2)
    assert sem._value == 3


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.001, -(10**30)])
def test_zero_or_negative_timeout_polls(sem_cls, timeout):
    sem = sem_cls(1)
    assert sem.acquire(timeout=timeout) is True  # a free unit is taken
    start = time.monotonic()
    assert sem.acquire(timeout=timeout) is False
    assert time.monotonic() - start < 1.0
    assert sem._value == 0


def test_acquire_times_out(sem_cls):
    sem = sem_cls(1)
    sem.acquire()
    start = time.monotonic()
    assert sem.acquire(timeout=0.05) is False
    assert 0.03 <= time.monotonic() - start < 5.0
    assert sem._value == 0


def test_nonblocking_with_timeout_is_an_error(sem_cls):
    sem = sem_cls(1)
    with pytest.raises(ValueError, match=NONBLOCKING):
        sem.acquire(False, 1)
    with pytest.raises(ValueError, match=NONBLOCKING):
        sem.acquire(blocking=False, timeout=0)
    assert sem._value == 1


@pytest.mark.parametrize("bad", ["1", b"1", [1], object()], ids=lambda v: type(v).__name__)
def test_acquire_rejects_bad_timeout_type(sem_cls, bad):
    sem = sem_cls(1)
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        sem.acquire(timeout=bad)
    assert sem._value == 1  # not taken
    sem.acquire()
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        sem.acquire(True, bad)
    assert sem._value == 0


def test_acquire_rejects_nan_timeout(sem_cls):
    sem = sem_cls(1)
    with pytest.raises(ValueError, match=NAN_TIMEOUT):
        sem.acquire(timeout=float("nan"))
    assert sem._value == 1


@pytest.mark.parametrize("timeout", [float("inf"), 2**63, 1e300, None])
def test_huge_timeout_means_forever(sem_cls, tools, timeout):
    sem = sem_cls(1)
    sem.acquire()
    waiter = tools.spawn(sem.acquire, True, timeout)
    tools.settle(0.05)
    assert not waiter.done
    sem.release()
    assert waiter.join() is True
    assert sem._value == 0


def test_blocked_acquire_released(sem_cls, tools):
    sem = sem_cls(2)
    sem.acquire()
    sem.acquire()
    waiters = [tools.spawn(sem.acquire, True, tools.TIMEOUT) for _ in range(2)]
    tools.settle(0.05)
    assert not any(w.done for w in waiters)
    sem.release()
    sem.release()
    assert tools.join_all(waiters) == [True, True]
    assert sem._value == 0


def test_release_n_wakes_n_waiters(impl, tools):
    sem = impl.Semaphore(0)
    n = 6
    results = []
    lock = threading.Lock()

    def waiter():
        ok = sem.acquire(timeout=tools.TIMEOUT)
        with lock:
            results.append(ok)

    waiters = [tools.spawn(waiter) for _ in range(n)]
    tools.settle(0.05)
    sem.release(n - 2)
    tools.wait_until(lambda: len(results) == n - 2)
    tools.settle(0.05)
    assert len(results) == n - 2  # no more than released
    sem.release(n=2)
    tools.join_all(waiters)
    assert results == [True] * n
    assert sem._value == 0


# --- release ------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -1, -(2**100)])
def test_release_n_must_be_positive(sem_cls, n):
    sem = sem_cls(1)
    sem.acquire()
    with pytest.raises(ValueError, match=N_MUST):
        sem.release(n)
    assert sem._value == 0


@pytest.mark.parametrize("bad", [1.0, "1", None, b"1"], ids=lambda v: type(v).__name__)
def test_release_rejects_non_integers(sem_cls, bad):
    sem = sem_cls(2)
    sem.acquire()
    with pytest.raises(TypeError):
        sem.release(bad)
    assert sem._value == 1


def test_release_accepts_index(sem_cls):
    sem = sem_cls(2)
    sem.acquire()
    sem.acquire()
    sem.release(Index(2))
    assert sem._value == 2


def test_semaphore_release_overflow(impl):
    sem = impl.Semaphore(MAX)
    with pytest.raises(OverflowError, match=TOO_LARGE):
        sem.release()
    assert sem._value == MAX
    sem = impl.Semaphore(0)
    with pytest.raises(OverflowError, match=TOO_LARGE):
        sem.release(MAX + 1)
    with pytest.raises(OverflowError, match=TOO_LARGE):
        sem.release(2**100)
    assert sem._value == 0
    sem.release(MAX)
    assert sem._value == MAX


def test_semaphore_release_beyond_initial_is_fine(impl):
    sem = impl.Semaphore(1)
    sem.release()
    sem.release(3)
    assert sem._value == 5


def test_bounded_release_too_many(impl):
    sem = impl.BoundedSemaphore(2)
    with pytest.raises(ValueError, match=TOO_MANY):
        sem.release()
    assert sem._value == 2
    sem.acquire()
    with pytest.raises(ValueError, match=TOO_MANY):
        sem.release(2)
    assert sem._value == 1
    sem.release()
    assert sem._value == 2
    sem.acquire()
    sem.acquire()
    sem.release(2)
    assert sem._value == 2
    with pytest.raises(ValueError, match=TOO_MANY):
        sem.release(2**100)
    assert sem._value == 2


def test_bounded_zero(impl):
    sem = impl.BoundedSemaphore(0)
    assert sem.acquire(False) is False
    with pytest.raises(ValueError, match=TOO_MANY):
        sem.release()
    assert sem._value == 0


# --- context manager ------------------------------------------------------------

def test_context_manager(sem_cls):
    sem = sem_cls(2)
    with sem as got:
        assert got is True
        assert sem._value == 1
        with sem:
            assert sem._value == 0
        assert sem._value == 1
    assert sem._value == 2


def test_context_manager_releases_on_exception(sem_cls):
    sem = sem_cls(1)
    with pytest.raises(KeyError), sem:
        assert sem._value == 0
        raise KeyError
    assert sem._value == 1


# --- repr, subclassing, weak references ---------------------------------------------

def test_repr(impl):
    sem = impl.Semaphore(3)
    assert re.match(r"^<cysync\.Semaphore at 0x[0-9a-fA-F]+: value=3>$", repr(sem)), repr(sem)
    sem.acquire()
    assert repr(sem).endswith(": value=2>")
    bsem = impl.BoundedSemaphore(3)
    assert re.match(r"^<cysync\.BoundedSemaphore at 0x[0-9a-fA-F]+: value=3/3>$", repr(bsem)), repr(bsem)
    bsem.acquire()
    assert repr(bsem).endswith(": value=2/3>")


def test_subclass_and_weakref(sem_cls):
    class MySemaphore(sem_cls):
        def __init__(self, value):
            super().__init__(value)
            self.acquired = 0

        def acquire(self, blocking=True, timeout=None):
            ok = super().acquire(blocking, timeout)
            self.acquired += ok
            return ok

    sem = MySemaphore(2)
    assert sem.acquire() is True
    assert sem.acquire(False) is True
    assert sem.acquire(False) is False
    assert sem.acquired == 2
    sem.release()
    assert sem._value == 1
    ref = weakref.ref(sem)
    del sem
    gc.collect()
    assert ref() is None


def test_not_lost_under_contention(sem_cls, tools):
    # threading-style smoke test: every acquire is matched by a release and
    # the value ends where it started.
    sem = sem_cls(3)
    inside = 0
    max_inside = 0
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker():
        nonlocal inside, max_inside
        barrier.wait(tools.TIMEOUT)
        for _ in range(300):
            assert sem.acquire(timeout=tools.TIMEOUT)
            with lock:
                inside += 1
                max_inside = max(max_inside, inside)
            with lock:
                inside -= 1
            sem.release()

    tools.run_threads([worker] * 8)
    assert max_inside <= 3
    assert sem._value == 3
