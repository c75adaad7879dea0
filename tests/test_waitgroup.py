"""WaitGroup: Go's sync.WaitGroup (add/done/wait/count/go), both implementations."""

from __future__ import annotations

import gc
import re
import threading
import time
import weakref

import pytest

NEG = "^negative WaitGroup counter$"
OVER = "^WaitGroup counter overflow$"
BAD_TIMEOUT = "^timeout must be a number or None$"
NAN_TIMEOUT = "^timeout must not be NaN$"
MAX = 2**31 - 1


class Index:
    """An int-like object (operator.index works on it)."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


# --- the API contract ------------------------------------------------------

def test_new_waitgroup_is_zero_and_wait_returns_at_once(impl):
    wg = impl.WaitGroup()
    assert wg.count == 0
    assert wg.wait() is True
    assert wg.wait(None) is True
    assert wg.wait(0) is True
    assert wg.wait(timeout=-1) is True
    assert wg.wait(timeout=float("inf")) is True


def test_add_done_and_count(impl):
    wg = impl.WaitGroup()
    assert wg.add() is None
    assert wg.count == 1
    wg.add(3)
    assert wg.count == 4
    wg.add(delta=2)
    assert wg.count == 6
    assert wg.done() is None
    assert wg.count == 5
    wg.add(-5)
    assert wg.count == 0
    wg.add(0)
    assert wg.count == 0


def test_add_accepts_bool_and_index(impl):
    wg = impl.WaitGroup()
    wg.add(True)
    assert wg.count == 1
    wg.add(Index(4))
    assert wg.count == 5
    wg.add(Index(-5))
    assert wg.count == 0


def test_count_is_read_only(impl):
    wg = impl.WaitGroup()
    with pytest.raises(AttributeError):
        wg.count = 3
    assert wg.count == 0


def test_counter_upper_bound_is_allowed(impl):
    wg = impl.WaitGroup()
    wg.add(MAX)
    assert wg.count == MAX
    wg.add(-MAX)
    assert wg.count == 0


# --- bad input: the right error, state unchanged -----------------------------

def test_negative_counter(impl):
    wg = impl.WaitGroup()
    with pytest.raises(ValueError, match=NEG):
        wg.done()
    assert wg.count == 0
    with pytest.raises(ValueError, match=NEG):
        wg.add(-1)
    assert wg.count == 0
    wg.add(2)
    with pytest.raises(ValueError, match=NEG):
        wg.add(-3)
    assert wg.count == 2
    with pytest.raises(ValueError, match=NEG):
        wg.add(-(2**100))
    assert wg.count == 2
    # Still usable after the errors.
    wg.done()
    wg.done()
    assert wg.count == 0
    assert wg.wait(0) is True


def test_counter_overflow(impl):
    wg = impl.WaitGroup()
    with pytest.raises(OverflowError, match=OVER):
        wg.add(MAX + 1)
    assert wg.count == 0
    wg.add(MAX)
    with pytest.raises(OverflowError, match=OVER):
        wg.add(1)
    assert wg.count == MAX
    with pytest.raises(OverflowError, match=OVER):
        wg.add(2**100)
    assert wg.count == MAX
    with pytest.raises(OverflowError, match=OVER):
        wg.add(2**64)
    assert wg.count == MAX


@pytest.mark.parametrize("bad", [1.0, 1.5, "1", None, b"1", [1]], ids=lambda v: type(v).__name__)
def test_add_rejects_non_integers(impl, bad):
    wg = impl.WaitGroup()
    wg.add(2)
    with pytest.raises(TypeError):
        wg.add(bad)
    assert wg.count == 2


@pytest.mark.parametrize("bad", ["1", b"1", [1], object()], ids=lambda v: type(v).__name__)
def test_wait_rejects_bad_timeout_type(impl, bad):
    wg = impl.WaitGroup()
    wg.add(1)
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        wg.wait(bad)
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        wg.wait(timeout=bad)
    assert wg.count == 1
    # Also when the counter is already zero: the argument is checked first.
    wg.done()
    with pytest.raises(TypeError, match=BAD_TIMEOUT):
        wg.wait(bad)


def test_wait_rejects_nan_timeout(impl):
    wg = impl.WaitGroup()
    wg.add(1)
    with pytest.raises(ValueError, match=NAN_TIMEOUT):
        wg.wait(float("nan"))
    assert wg.count == 1


# --- timeouts --------------------------------------------------------------

@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, -(10**30), False])
def test_zero_or_negative_timeout_polls(impl, timeout):
    wg = impl.WaitGroup()
    wg.add(1)
    start = time.monotonic()
    assert wg.wait(timeout) is False
    assert time.monotonic() - start < 1.0
    assert wg.count == 1


def test_wait_times_out(impl):
    wg = impl.WaitGroup()
    wg.add(1)
    start = time.monotonic()
    assert wg.wait(0.05) is False
    elapsed = time.monotonic() - start
    assert 0.03 <= elapsed < 5.0
    assert wg.count == 1
    wg.done()
    assert wg.wait(timeout=1) is True  # an int timeout is accepted


@pytest.mark.parametrize("timeout", [float("inf"), 2**63, 1e300, 10**40, None])
def test_huge_timeout_means_forever(impl, tools, timeout):
    wg = impl.WaitGroup()
    wg.add(1)
    waiter = tools.spawn(wg.wait, timeout)
    tools.settle(0.05)
    assert not waiter.done  # not treated as a poll
    wg.done()
    assert waiter.join() is True


# --- waking ----------------------------------------------------------------

def test_wait_released_when_counter_reaches_zero(impl, tools):
    wg = impl.WaitGroup()
    wg.add(3)
    started = threading.Barrier(9)

    def waiter():
        started.wait(tools.TIMEOUT)
        return wg.wait(tools.TIMEOUT)

    waiters = [tools.spawn(waiter) for _ in range(8)]
    started.wait(tools.TIMEOUT)
    tools.settle(0.05)
    assert not any(w.done for w in waiters)
    wg.done()
    wg.done()
    assert not any(w.done for w in waiters)
    wg.done()
    assert tools.join_all(waiters) == [True] * 8
    assert wg.count == 0


def test_add_with_negative_delta_to_zero_releases_waiters(impl, tools):
    wg = impl.WaitGroup()
    wg.add(5)
    waiter = tools.spawn(wg.wait, tools.TIMEOUT)
    tools.settle(0.05)
    wg.add(-5)
    assert waiter.join() is True


def test_wait_true_if_zero_reached_even_if_readded(impl, tools):
    # Go's rule: a waiter that was waiting when the counter hit zero returns,
    # even if the counter went up again right after.
    wg = impl.WaitGroup()
    wg.add(1)
    # Being parked inside wait() cannot be observed: if the waiter was late
    # (it then waits for the next zero), release it and try again, longer.
    for attempt in range(1, 6):
        entering = threading.Event()

        def waiter():
            entering.set()
            return wg.wait(tools.TIMEOUT)

        w = tools.spawn(waiter)
        assert entering.wait(tools.TIMEOUT)
        tools.settle(0.05 * attempt)  # let it park inside wait()
        wg.done()
        wg.add(1)
        if w.finished.wait(1.0):
            assert w.join() is True
            assert wg.count == 1
            return
        wg.done()  # late (or the zero was missed): release it, retry
        assert w.join() is True
        wg.add(1)
    pytest.fail("wait() missed a zero of the counter that happened while it waited")


def test_waiters_released_by_done_from_other_threads(impl, tools):
    wg = impl.WaitGroup()
    n = 20
    wg.add(n)
    gate = threading.Event()

    def worker():
        assert gate.wait(tools.TIMEOUT)
        wg.done()

    waiters = [tools.spawn(wg.wait, tools.TIMEOUT) for _ in range(4)]
    workers = [tools.spawn(worker) for _ in range(n)]
    gate.set()
    tools.join_all(workers)
    assert tools.join_all(waiters) == [True] * 4
    assert wg.count == 0


# --- reuse -----------------------------------------------------------------

def test_reuse_after_wait(impl, tools):
    wg = impl.WaitGroup()
    for round_ in range(5):
        n = 3 + round_
        results = []
        lock = threading.Lock()
        wg.add(n)

        def worker(i):
            with lock:
                results.append(i)
            wg.done()

        workers = [tools.spawn(worker, i) for i in range(n)]
        assert wg.wait(tools.TIMEOUT) is True
        assert sorted(results) == list(range(n))
        assert wg.count == 0
        tools.join_all(workers)
    assert wg.wait(0) is True


# --- go --------------------------------------------------------------------

def test_go_returns_started_non_daemon_thread(impl, tools):
    wg = impl.WaitGroup()
    gate = threading.Event()
    got = []

    def fn(a, b, *, c):
        got.append((a, b, c))
        assert gate.wait(tools.TIMEOUT)
        return "ignored"

    t = wg.go(fn, 1, 2, c=3)
    try:
        assert isinstance(t, threading.Thread)
        assert t.ident is not None  # started
        # Non-daemon, even though this test body runs in a daemon thread
        # (threading.Thread would inherit daemon=True from it).
        assert t.daemon is False
        assert wg.count == 1  # add(1) happened before go() returned
        assert wg.wait(0.01) is False
    finally:
        gate.set()
    assert wg.wait(tools.TIMEOUT) is True
    t.join(tools.TIMEOUT)
    assert not t.is_alive()
    assert got == [(1, 2, 3)]
    assert wg.count == 0


def test_go_passes_keyword_named_fn(impl, tools):
    wg = impl.WaitGroup()
    got = []

    def fn(**kwargs):
        got.append(kwargs)

    t = wg.go(fn, fn="value", args=(1,))
    assert wg.wait(tools.TIMEOUT) is True
    t.join(tools.TIMEOUT)
    assert got == [{"fn": "value", "args": (1,)}]


def test_go_calls_done_when_fn_raises(impl, tools, monkeypatch):
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    wg = impl.WaitGroup()
    boom = KeyError("boom")

    def fn():
        raise boom

    threads = [wg.go(fn) for _ in range(3)]
    assert wg.wait(tools.TIMEOUT) is True
    for t in threads:
        t.join(tools.TIMEOUT)
        assert not t.is_alive()
    assert wg.count == 0
    assert seen == [boom, boom, boom]


def test_go_many(impl, tools):
    wg = impl.WaitGroup()
    lock = threading.Lock()
    total = []

    def fn(i):
        with lock:
            total.append(i)

    threads = [wg.go(fn, i) for i in range(50)]
    assert wg.wait(tools.TIMEOUT) is True
    assert sorted(total) == list(range(50))
    for t in threads:
        t.join(tools.TIMEOUT)
        assert not t.is_alive()


@pytest.mark.parametrize("bad", [None, 1, "fn"], ids=lambda v: type(v).__name__)
def test_go_rejects_non_callable(impl, bad):
    wg = impl.WaitGroup()
    wg.add(2)
    with pytest.raises(TypeError, match="^fn must be callable$"):
        wg.go(bad)
    assert wg.count == 2


def test_go_undoes_add_when_thread_cannot_start(impl, monkeypatch):
    wg = impl.WaitGroup()

    def failing_start(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", failing_start)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        wg.go(lambda: None)
    monkeypatch.undo()
    assert wg.count == 0


# --- repr, subclassing, weak references --------------------------------------

def test_repr(impl):
    wg = impl.WaitGroup()
    wg.add(3)
    # The public module, as threading shows "threading": one word, both impls.
    pattern = r"^<cysync\.WaitGroup at 0x[0-9a-fA-F]+: count=3>$"
    assert re.match(pattern, repr(wg)), repr(wg)
    wg.add(-3)
    assert repr(wg).endswith(": count=0>")


def test_subclass_and_weakref(impl, tools):
    class MyWaitGroup(impl.WaitGroup):
        def __init__(self):
            super().__init__()
            self.extra = "x"

    wg = MyWaitGroup()
    assert isinstance(wg, impl.WaitGroup)
    assert wg.extra == "x"
    wg.add(2)
    wg.done()
    assert wg.count == 1
    t = wg.go(lambda: None)
    wg.done()
    assert wg.wait(tools.TIMEOUT) is True
    t.join(tools.TIMEOUT)

    plain = impl.WaitGroup()
    ref = weakref.ref(plain)
    assert ref() is plain
    del plain
    gc.collect()
    assert ref() is None
