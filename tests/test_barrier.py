"""Barrier: drop-in for threading.Barrier, both implementations.

CPython's BarrierTests (test_lock_tests.py) cover threading's behaviour in
depth; these tests add the contract's own rules: the very same
BrokenBarrierError class, argument checks, repr, subclassing.
"""

from __future__ import annotations

import functools
import gc
import re
import threading
import time
import weakref

import pytest

BAD_TIMEOUT = "^timeout must be a number or None$"
NAN_TIMEOUT = "^timeout must not be NaN$"


def test_broken_barrier_error_is_threadings(impl):
    assert impl.BrokenBarrierError is threading.BrokenBarrierError


def test_properties(impl):
    b = impl.Barrier(3)
    assert b.parties == 3
    assert b.n_waiting == 0
    assert b.broken is False
    for name, value in (("parties", 4), ("n_waiting", 1), ("broken", True)):
        with pytest.raises(AttributeError):
            setattr(b, name, value)
    assert (b.parties, b.n_waiting, b.broken) == (3, 0, False)


@pytest.mark.parametrize("parties", [0, -1, -(2**100)])
def test_parties_must_be_positive(impl, parties):
    with pytest.raises(ValueError, match=r"^parties must be > 0$"):
        impl.Barrier(parties)


@pytest.mark.parametrize("bad", [1.0, "2", None, b"2"], ids=lambda v: type(v).__name__)
def test_parties_must_be_an_integer(impl, bad):
    with pytest.raises(TypeError):
        impl.Barrier(bad)


def test_constructor_keywords(impl):
    calls = []
    b = impl.Barrier(parties=1, action=lambda: calls.append(1), timeout=5)
    assert b.wait() == 0
    assert calls == [1]


def test_single_party(impl):
    b = impl.Barrier(1)
    assert b.wait() == 0
    assert b.wait(0) == 0
    assert b.wait(timeout=1) == 0
    assert b.n_waiting == 0 and not b.broken


def test_indices_and_reuse(impl, tools):
    n, rounds = 4, 5
    b = impl.Barrier(n)
    indices = [[] for _ in range(rounds)]
    lock = threading.Lock()

    def worker():
        for r in range(rounds):
            i = b.wait(tools.TIMEOUT)
            with lock:
                indices[r].append(i)

    tools.run_threads([worker] * n)
    assert all(sorted(idx) == list(range(n)) for idx in indices), indices
    assert b.n_waiting == 0 and not b.broken


def test_n_waiting(impl, tools):
    b = impl.Barrier(3)
    first = tools.spawn(b.wait, tools.TIMEOUT)
    tools.wait_until(lambda: b.n_waiting == 1)
    second = tools.spawn(b.wait, tools.TIMEOUT)
    tools.wait_until(lambda: b.n_waiting == 2)
    assert re.search(r": waiters=2/3>$", repr(b)), repr(b)
    assert b.wait(tools.TIMEOUT) in (0, 1, 2)
    assert sorted([first.join(), second.join()]) in ([0, 1], [0, 2], [1, 2])
    assert b.n_waiting == 0


def test_action_runs_once_before_release(impl, tools):
    n = 5
    log = []
    lock = threading.Lock()

    def action():
        with lock:
            log.append("action")

    b = impl.Barrier(n, action=action)

    def worker():
        b.wait(tools.TIMEOUT)
        with lock:
            log.append("released")

    tools.run_threads([worker] * n)
    assert log == ["action"] + ["released"] * n


def test_action_exception_breaks_the_barrier(impl, tools):
    boom = KeyError("action")

    def action():
        raise boom

    b = impl.Barrier(3, action=action)

    def worker():
        try:
            b.wait(tools.TIMEOUT)
        except impl.BrokenBarrierError:
            return "broken"
        except KeyError as exc:
            return exc
        return "passed"

    results = tools.run_threads([worker] * 3)
    assert sorted(map(str, results)) == sorted(["broken", "broken", str(boom)])
    assert [r for r in results if r is boom] == [boom]
    assert b.broken is True
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0)


def test_timeout_breaks_the_barrier(impl, tools):
    b = impl.Barrier(3)
    other = tools.spawn(b.wait, tools.TIMEOUT)
    tools.wait_until(lambda: b.n_waiting == 1)
    start = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.05)
    assert 0.03 <= time.monotonic() - start < 5.0
    with pytest.raises(threading.BrokenBarrierError):
        other.join()
    assert b.broken is True
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(tools.TIMEOUT)  # at once: broken


def test_default_timeout(impl):
    b = impl.Barrier(2, timeout=0.05)
    start = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait()
    assert 0.03 <= time.monotonic() - start < 5.0
    assert b.broken


@pytest.mark.parametrize("timeout", [0, -1])
def test_zero_or_negative_timeout(impl, timeout):
    b = impl.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(timeout)
    assert b.broken


def test_abort(impl, tools):
    b = impl.Barrier(3)
    waiters = [tools.spawn(b.wait, tools.TIMEOUT) for _ in range(2)]
    tools.wait_until(lambda: b.n_waiting == 2)
    assert b.abort() is None
    for w in waiters:
        with pytest.raises(threading.BrokenBarrierError):
            w.join()
    assert b.broken
    assert re.match(r"^<cysync\.Barrier at 0x[0-9a-fA-F]+: broken>$", repr(b)), repr(b)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(tools.TIMEOUT)


def test_reset(impl, tools):
    b = impl.Barrier(3)
    waiters = [tools.spawn(b.wait, tools.TIMEOUT) for _ in range(2)]
    tools.wait_until(lambda: b.n_waiting == 2)
    assert b.reset() is None
    for w in waiters:
        with pytest.raises(threading.BrokenBarrierError):
            w.join()
    assert not b.broken
    assert b.n_waiting == 0
    # Usable again for a full round.
    assert sorted(tools.run_threads([functools.partial(b.wait, tools.TIMEOUT)] * 3)) == [0, 1, 2]


def test_release_is_final(impl, tools):
    """A release ends the round at once: an abort() right after it, before the
    released thread has woken, does not take the release back (in threading
    it can: the released must first leave, and until then the abort reaches
    them). Both orders of the waiter's wake-up and the abort occur here."""
    b = impl.Barrier(2)
    for _ in range(100):
        waiter = tools.spawn(b.wait, tools.TIMEOUT)
        tools.wait_until(lambda: b.n_waiting == 1)
        assert b.wait(tools.TIMEOUT) == 1
        b.abort()
        assert waiter.join() == 0
        assert b.broken and b.n_waiting == 0
        b.reset()


def test_lockstep_rounds(impl, tools):
    """Two threads that go straight back to the barrier (the round trip that
    cysync-bench times) keep in step: every round hands out 0 and 1."""
    b = impl.Barrier(2)
    rounds = 2000
    got = {0: [], 1: []}

    def side(me):
        for _ in range(rounds):
            got[me].append(b.wait(tools.TIMEOUT))

    tools.run_threads([functools.partial(side, 0), functools.partial(side, 1)])
    assert all(sorted(pair) == [0, 1] for pair in zip(got[0], got[1], strict=True))
    assert b.n_waiting == 0 and not b.broken


def test_reset_after_abort(impl, tools):
    b = impl.Barrier(2)
    b.abort()
    assert b.broken
    b.reset()
    assert not b.broken
    assert sorted(tools.run_threads([functools.partial(b.wait, tools.TIMEOUT)] * 2)) == [0, 1]


@pytest.mark.parametrize("bad", ["1", b"1", [1], object()], ids=lambda v: type(v).__name__)
def test_wait_rejects_bad_timeout_type(impl, bad):
    b = impl.Barrier(2)
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        b.wait(bad)
    assert (b.n_waiting, b.broken) == (0, False)


def test_wait_rejects_nan_timeout(impl):
    b = impl.Barrier(2)
    with pytest.raises(ValueError, match=NAN_TIMEOUT):
        b.wait(float("nan"))
    assert (b.n_waiting, b.broken) == (0, False)


def test_constructor_rejects_bad_timeout(impl):
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        impl.Barrier(2, timeout="1")
    with pytest.raises(ValueError, match=NAN_TIMEOUT):
        impl.Barrier(2, timeout=float("nan"))


def test_repr(impl):
    b = impl.Barrier(3)
    assert re.match(r"^<cysync\.Barrier at 0x[0-9a-fA-F]+: waiters=0/3>$", repr(b)), repr(b)


def test_subclass_and_weakref(impl, tools):
    class MyBarrier(impl.Barrier):
        def __init__(self, parties):
            super().__init__(parties)
            self.rounds = 0

        def wait(self, timeout=None):
            i = super().wait(timeout)
            if i == 0:
                self.rounds += 1
            return i

    b = MyBarrier(2)
    tools.run_threads([functools.partial(b.wait, tools.TIMEOUT)] * 2)
    assert b.rounds == 1

    b = MyBarrier(2)
    ref = weakref.ref(b)
    del b
    gc.collect()
    assert ref() is None
