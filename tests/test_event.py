"""Event: drop-in for threading.Event, both implementations."""

from __future__ import annotations

import gc
import re
import threading
import time
import weakref

import pytest

BAD_TIMEOUT = "^timeout must be a number or None$"
NAN_TIMEOUT = "^timeout must not be NaN$"
BAD_TIMEOUTS = [
    pytest.param("1", id="str"),
    pytest.param(b"1", id="bytes"),
    pytest.param([1], id="list"),
    pytest.param(object(), id="object"),
]


def test_set_clear_is_set(impl):
    ev = impl.Event()
    assert ev.is_set() is False
    assert ev.set() is None
    assert ev.is_set() is True
    ev.set()  # idempotent
    assert ev.is_set() is True
    assert ev.clear() is None
    assert ev.is_set() is False
    ev.clear()
    assert ev.is_set() is False


def test_wait_on_set_event_returns_at_once(impl):
    ev = impl.Event()
    ev.set()
    assert ev.wait() is True
    assert ev.wait(None) is True
    assert ev.wait(0) is True
    assert ev.wait(timeout=-1) is True
    assert ev.wait(float("inf")) is True
    assert ev.is_set() is True


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, -(10**30), False])
def test_zero_or_negative_timeout_polls(impl, timeout):
    ev = impl.Event()
    start = time.monotonic()
    assert ev.wait(timeout) is False
    assert time.monotonic() - start < 1.0


def test_wait_times_out(impl):
    ev = impl.Event()
    start = time.monotonic()
    assert ev.wait(0.05) is False
    assert 0.03 <= time.monotonic() - start < 5.0
    assert ev.wait(timeout=0.01) is False
    assert ev.is_set() is False


@pytest.mark.parametrize("bad", BAD_TIMEOUTS)
def test_wait_rejects_bad_timeout_type(impl, bad):
    ev = impl.Event()
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        ev.wait(bad)
    assert ev.is_set() is False
    ev.set()
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        ev.wait(timeout=bad)
    assert ev.is_set() is True


def test_wait_rejects_nan_timeout(impl):
    ev = impl.Event()
    with pytest.raises(ValueError, match=NAN_TIMEOUT):
        ev.wait(float("nan"))
    assert ev.is_set() is False


@pytest.mark.parametrize("timeout", [float("inf"), 2**63, 1e300, None])
def test_huge_timeout_means_forever(impl, tools, timeout):
    ev = impl.Event()
    waiter = tools.spawn(ev.wait, timeout)
    tools.settle(0.05)
    assert not waiter.done
    ev.set()
    assert waiter.join() is True


def test_set_wakes_every_waiter(impl, tools):
    ev = impl.Event()
    n = 12
    started = threading.Barrier(n + 1)

    def waiter():
        started.wait(tools.TIMEOUT)
        return ev.wait(tools.TIMEOUT)

    waiters = [tools.spawn(waiter) for _ in range(n)]
    started.wait(tools.TIMEOUT)
    tools.settle(0.05)
    assert not any(w.done for w in waiters)
    ev.set()
    assert tools.join_all(waiters) == [True] * n


def test_wait_true_if_set_then_cleared_while_waiting(impl, tools):
    ev = impl.Event()
    n = 6
    # Being parked inside wait() cannot be observed: if a waiter was late (it
    # then waits for the next set()), release everyone and try again, longer.
    for attempt in range(1, 6):
        started = threading.Barrier(n + 1)

        def waiter():
            started.wait(tools.TIMEOUT)
            return ev.wait(tools.TIMEOUT)

        waiters = [tools.spawn(waiter) for _ in range(n)]
        started.wait(tools.TIMEOUT)
        tools.settle(0.05 * attempt)  # let them park inside wait()
        ev.set()
        ev.clear()
        deadline = time.monotonic() + 1.0
        all_back = all(w.finished.wait(max(0.0, deadline - time.monotonic())) for w in waiters)
        if all_back:
            assert tools.join_all(waiters) == [True] * n
            assert ev.is_set() is False
            assert ev.wait(0) is False
            return
        ev.set()  # someone was late (or missed the set): release, retry
        assert tools.join_all(waiters) == [True] * n
        ev.clear()
    pytest.fail("wait() missed a set() that happened while it waited")


def test_clear_makes_wait_block_again(impl, tools):
    ev = impl.Event()
    ev.set()
    ev.clear()
    waiter = tools.spawn(ev.wait, tools.TIMEOUT)
    tools.settle(0.05)
    assert not waiter.done
    ev.set()
    assert waiter.join() is True


def test_reuse_many_rounds(impl, tools):
    ping, pong = impl.Event(), impl.Event()
    rounds = 200

    def player():
        for _ in range(rounds):
            assert ping.wait(tools.TIMEOUT)
            ping.clear()
            pong.set()

    p = tools.spawn(player)
    for _ in range(rounds):
        ping.set()
        assert pong.wait(tools.TIMEOUT)
        pong.clear()
    p.join()


def test_isSet_is_deprecated(impl):
    ev = impl.Event()
    with pytest.warns(DeprecationWarning, match=r"^isSet\(\) is deprecated, use is_set\(\) instead$"):
        assert ev.isSet() is False
    ev.set()
    with pytest.warns(DeprecationWarning):
        assert ev.isSet() is True


def test_at_fork_reinit_keeps_the_flag(impl):
    ev = impl.Event()
    ev._at_fork_reinit()
    assert ev.is_set() is False
    ev.set()
    ev._at_fork_reinit()
    assert ev.is_set() is True
    assert ev.wait(0) is True
    ev.clear()
    assert ev.wait(0) is False


def test_repr(impl):
    ev = impl.Event()
    assert re.match(r"^<cysync\.Event at 0x[0-9a-fA-F]+: unset>$", repr(ev)), repr(ev)
    ev.set()
    assert re.match(r"^<cysync\.Event at 0x[0-9a-fA-F]+: set>$", repr(ev)), repr(ev)


def test_subclass_and_weakref(impl, tools):
    class MyEvent(impl.Event):
        def __init__(self):
            super().__init__()
            self.sets = 0

        def set(self):
            self.sets += 1
            super().set()

    ev = MyEvent()
    waiter = tools.spawn(ev.wait, tools.TIMEOUT)
    ev.set()
    assert waiter.join() is True
    assert ev.sets == 1
    assert ev.is_set()

    ev = MyEvent()
    ref = weakref.ref(ev)
    del ev
    gc.collect()
    assert ref() is None
