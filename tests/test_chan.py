"""Chan, select, after and ChanClosed (Go's channels), both implementations.

One test per sentence of DESIGN.md's "Chan and select", modelled on Go's
own chan and select tests (runtime/chan_test.go): FIFO order, the
unbuffered hand-off, buffered capacity, close waking every waiter, select's
fairness, default and timeout, and that a waiter which leaves (timeout,
context, signal) leaves no trace on any queue.

Every name is reached through the ``impl`` fixture (``impl.Chan``,
``impl.select``, ``impl.after``, ``impl.ChanClosed``): the same tests run
against the C module once it has channels. Every blocking call has a
timeout; threads are joined with a deadline.

"Is this thread blocked inside recv() yet?" cannot be observed; where a
test needs a thread to be waiting before it acts, it settles (a short
sleep), and the assertion holds whether or not the thread got there: the
order only decides which path is tested.
"""

from __future__ import annotations

import collections
import gc
import importlib
import math
import re
import signal
import sys
import threading
import time
import weakref
from fractions import Fraction

import pytest

from conftest import IMPL_MODULES, TIMEOUT

#: Slack for timers: never early, and by this late.
TIMER_SLACK = 2.0

BAD_TIMEOUTS = [
    pytest.param("1", id="str"),
    pytest.param(b"1", id="bytes"),
    pytest.param([1], id="list"),
    pytest.param(object(), id="object"),
]


@pytest.fixture
def impl(impl):
    """The implementation, or a skip if it has no channels yet."""
    if not hasattr(impl, "Chan"):
        pytest.skip(f"{impl.__name__} has no Chan yet")
    return impl


def drain(ch, timeout=0):
    """Every value receivable now (poll), without waiting."""
    values = []
    while True:
        try:
            values.append(ch.recv(timeout))
        except TimeoutError:
            return values


def assert_no_receiver(ch):
    """No receiver is queued on the unbuffered `ch`: a poll send fails."""
    assert ch.send("probe", timeout=0) is False


def assert_no_sender(ch):
    """No sender is queued on the unbuffered `ch`: a poll recv times out."""
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0)


# --- construction, len, cap, closed, repr -------------------------------------------


def test_unbuffered_by_default(impl):
    ch = impl.Chan()
    assert ch.cap == 0
    assert len(ch) == 0
    assert ch.closed is False


@pytest.mark.parametrize("cap", [0, 1, 4, 1000, True])
def test_cap(impl, cap):
    ch = impl.Chan(cap)
    assert ch.cap == cap and type(ch.cap) is int
    assert impl.Chan(cap=cap).cap == cap


def test_cap_goes_through_operator_index(impl):
    class Three:
        def __index__(self):
            return 3

    assert impl.Chan(Three()).cap == 3


@pytest.mark.parametrize("bad", [1.5, 1.0, "1", None, [1], Fraction(1, 2)])
def test_cap_of_a_wrong_type(impl, bad):
    with pytest.raises(TypeError):
        impl.Chan(bad)


@pytest.mark.parametrize("bad", [-1, -(2**70)])
def test_negative_cap(impl, bad):
    with pytest.raises(ValueError):
        impl.Chan(bad)


def test_len_counts_buffered_values(impl):
    ch = impl.Chan(3)
    for i in range(3):
        assert len(ch) == i
        assert ch.send(i, timeout=0) is True
    assert len(ch) == 3
    ch.recv(0)
    assert len(ch) == 2
    ch.close()
    assert len(ch) == 2  # still buffered after close
    assert ch.closed is True


def test_cap_closed_are_read_only(impl):
    ch = impl.Chan(2)
    with pytest.raises(AttributeError):
        ch.cap = 5
    with pytest.raises(AttributeError):
        ch.closed = True
    assert ch.cap == 2 and ch.closed is False


def test_repr(impl):
    ch = impl.Chan(4)
    assert re.match(r"^<cysync\.Chan at 0x[0-9a-fA-F]+: len=0 cap=4>$", repr(ch)), repr(ch)
    ch.send("x")
    assert re.match(r"^<cysync\.Chan at 0x[0-9a-fA-F]+: len=1 cap=4>$", repr(ch)), repr(ch)
    ch.close()
    assert re.match(r"^<cysync\.Chan at 0x[0-9a-fA-F]+: len=1 cap=4 closed>$", repr(ch)), repr(ch)
    assert re.match(r"^<cysync\.Chan at 0x[0-9a-fA-F]+: len=0 cap=0>$", repr(impl.Chan())), repr(impl.Chan())


def test_chan_closed_is_an_exception_exported_once(impl):
    assert issubclass(impl.ChanClosed, Exception)
    assert impl.ChanClosed.__module__ == "cysync"
    # One class for both implementations (both import cysync._errors).
    errors = importlib.import_module("cysync._errors")
    assert impl.ChanClosed is errors.ChanClosed


# --- buffered channels ----------------------------------------------------------------


def test_buffered_fifo(impl):
    ch = impl.Chan(10)
    for i in range(10):
        assert ch.send(i) is True
    assert [ch.recv() for _ in range(10)] == list(range(10))
    assert len(ch) == 0


def test_buffered_send_fails_at_once_when_full(impl):
    ch = impl.Chan(2)
    assert ch.send(1, timeout=0) is True
    assert ch.send(2, timeout=0) is True
    for timeout in (0, -1, 0.0):
        assert ch.send(3, timeout=timeout) is False
    start = time.monotonic()
    assert ch.send(3, timeout=0.05) is False
    assert time.monotonic() - start >= 0.04
    assert drain(ch) == [1, 2]  # the failed sends left nothing behind


def test_recv_on_empty_buffered_times_out(impl):
    ch = impl.Chan(2)
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.05)
    assert time.monotonic() - start >= 0.04
    with pytest.raises(TimeoutError):
        ch.recv_ok(timeout=0)


def test_full_buffer_blocks_the_sender_until_a_recv_makes_room(impl, tools):
    ch = impl.Chan(2)
    ch.send(0)
    ch.send(1)
    sender = tools.spawn(ch.send, 2, tools.TIMEOUT)
    tools.settle(0.05)
    assert not sender.done
    assert ch.recv(tools.TIMEOUT) == 0
    # The room went to the blocked sender's value at once (Go's semantics):
    # the sender returns without any further receive.
    assert sender.join() is True
    assert len(ch) == 2
    assert drain(ch) == [1, 2]


def queued_in_order(attempt, tools, fns):
    """Start each of `fns` in a thread, settling after each so that they
    queue in that order (which cannot be observed: the order only holds if
    each got to wait in time, hence the retries with longer settles)."""
    workers = []
    for fn in fns:
        workers.append(tools.spawn(fn))
        tools.settle(0.03 * attempt)
    return workers


def test_blocked_senders_are_served_in_order(impl, tools):
    for attempt in range(1, 6):
        ch = impl.Chan(1)
        ch.send("buffered")
        senders = queued_in_order(attempt, tools, [lambda i=i: ch.send(i, tools.TIMEOUT) for i in range(4)])
        got = [ch.recv(tools.TIMEOUT) for _ in range(5)]
        assert tools.join_all(senders) == [True] * 4
        assert got[0] == "buffered" and sorted(got[1:]) == [0, 1, 2, 3]  # whatever the order
        if got == ["buffered", 0, 1, 2, 3]:
            return
    pytest.fail(f"blocked senders not served first in first out: {got}")


def test_blocked_receivers_are_served_in_order(impl, tools):
    for cap in (0, 3):
        for attempt in range(1, 6):
            ch = impl.Chan(cap)
            receivers = queued_in_order(attempt, tools, [lambda: ch.recv(tools.TIMEOUT)] * 4)
            for value in range(4):
                assert ch.send(value, tools.TIMEOUT) is True
            got = tools.join_all(receivers)
            assert sorted(got) == [0, 1, 2, 3]
            if got == [0, 1, 2, 3]:  # the first to wait got the first value
                break
        else:
            pytest.fail(f"blocked receivers not served first in first out (cap={cap}): {got}")


def test_send_polls_into_room_and_to_waiting_receivers(impl, tools):
    ch = impl.Chan(1)
    assert ch.send("a", timeout=0) is True
    assert ch.recv(0) == "a"
    # Unbuffered: a poll send succeeds when a receiver is waiting.
    u = impl.Chan()
    receiver = tools.spawn(u.recv, tools.TIMEOUT)
    tools.wait_until(lambda: u.send("b", timeout=0))
    assert receiver.join() == "b"


# --- unbuffered channels --------------------------------------------------------------


def test_unbuffered_has_no_room(impl):
    ch = impl.Chan()
    assert ch.send(1, timeout=0) is False
    assert ch.send(1, timeout=0.02) is False
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0)
    assert len(ch) == 0


def test_unbuffered_send_waits_for_a_receiver(impl, tools):
    ch = impl.Chan()
    sent = threading.Event()

    def sender():
        ok = ch.send("hello", tools.TIMEOUT)
        sent.set()
        return ok

    s = tools.spawn(sender)
    assert not sent.wait(0.1)  # nobody has received: the send has not completed
    assert len(ch) == 0  # a blocked sender's value is not buffered
    assert ch.recv(tools.TIMEOUT) == "hello"
    assert s.join() is True
    assert sent.is_set()


def test_unbuffered_recv_waits_for_a_sender(impl, tools):
    ch = impl.Chan()
    r = tools.spawn(ch.recv, tools.TIMEOUT)
    tools.settle(0.05)
    assert not r.done
    assert ch.send(42, tools.TIMEOUT) is True
    assert r.join() == 42


def test_unbuffered_ping_pong(impl, tools):
    ping, pong = impl.Chan(), impl.Chan()
    n = 300

    def player():
        for _ in range(n):
            v = ping.recv(tools.TIMEOUT)
            assert pong.send(v + 1, tools.TIMEOUT)

    p = tools.spawn(player)
    v = 0
    for _ in range(n):
        assert ping.send(v, tools.TIMEOUT)
        v = pong.recv(tools.TIMEOUT)
    p.join()
    assert v == n


def test_values_are_passed_as_they_are(impl):
    ch = impl.Chan(4)
    obj = object()
    for value in (None, obj, (1, 2), float("nan")):
        ch.send(value)
    assert ch.recv() is None
    assert ch.recv() is obj
    assert ch.recv() == (1, 2)
    assert math.isnan(ch.recv())


# --- recv_ok ----------------------------------------------------------------------------


def test_recv_ok(impl):
    ch = impl.Chan(2)
    ch.send("a")
    ch.send(None)
    assert ch.recv_ok() == ("a", True)
    assert ch.recv_ok(0) == (None, True)  # a None value is not a close
    with pytest.raises(TimeoutError):
        ch.recv_ok(timeout=0)  # a timeout is not a close either
    ch.close()
    assert ch.recv_ok() == (None, False)
    assert ch.recv_ok(0) == (None, False)
    assert ch.recv_ok(TIMEOUT) == (None, False)


# --- close -----------------------------------------------------------------------------


def test_close_twice_raises(impl):
    ch = impl.Chan(1)
    ch.close()
    with pytest.raises(impl.ChanClosed, match="^close of closed channel$"):
        ch.close()
    assert ch.closed is True


def test_send_on_closed_raises(impl):
    for cap in (0, 1):
        ch = impl.Chan(cap)
        ch.close()
        for timeout in (None, 0, 1):
            with pytest.raises(impl.ChanClosed, match="^send on closed channel$"):
                ch.send("x", timeout)
        assert len(ch) == 0


def test_recv_on_closed_and_drained_raises(impl):
    ch = impl.Chan()
    ch.close()
    for timeout in (None, 0, 1):
        with pytest.raises(impl.ChanClosed, match="^receive from closed channel$"):
            ch.recv(timeout)


def test_values_buffered_before_close_are_delivered(impl):
    ch = impl.Chan(3)
    for i in range(3):
        ch.send(i)
    ch.close()
    assert ch.recv() == 0
    assert ch.recv_ok() == (1, True)
    assert list(ch) == [2]
    with pytest.raises(impl.ChanClosed):
        ch.recv()
    assert ch.recv_ok() == (None, False)


@pytest.mark.parametrize("cap", [0, 1])
def test_close_wakes_every_blocked_receiver(impl, tools, cap):
    ch = impl.Chan(cap)
    n = 6
    started = threading.Barrier(n + 1)

    def recv():
        started.wait(tools.TIMEOUT)
        with pytest.raises(impl.ChanClosed):
            ch.recv(tools.TIMEOUT)
        return "closed"

    def recv_ok():
        started.wait(tools.TIMEOUT)
        return ch.recv_ok(tools.TIMEOUT)

    workers = [tools.spawn(recv) for _ in range(n // 2)] + [tools.spawn(recv_ok) for _ in range(n // 2)]
    started.wait(tools.TIMEOUT)
    tools.settle(0.05)
    assert not any(w.done for w in workers)
    ch.close()
    assert tools.join_all(workers) == ["closed"] * (n // 2) + [(None, False)] * (n // 2)


@pytest.mark.parametrize("cap", [0, 2])
def test_close_wakes_every_blocked_sender(impl, tools, cap):
    ch = impl.Chan(cap)
    for i in range(cap):
        ch.send(f"buffered {i}")
    n = 5
    started = threading.Barrier(n + 1)

    def sender(i):
        started.wait(tools.TIMEOUT)
        with pytest.raises(impl.ChanClosed, match="^send on closed channel$"):
            ch.send(i, tools.TIMEOUT)

    workers = [tools.spawn(sender, i) for i in range(n)]
    started.wait(tools.TIMEOUT)
    tools.settle(0.05)
    assert not any(w.done for w in workers)
    ch.close()
    tools.join_all(workers)
    # The blocked senders' values were not sent; the buffered ones stay.
    assert list(ch) == [f"buffered {i}" for i in range(cap)]


def test_close_from_many_threads_succeeds_once(impl, tools):
    ch = impl.Chan()
    start = threading.Barrier(8)

    def closer():
        start.wait(tools.TIMEOUT)
        try:
            ch.close()
            return "closed"
        except impl.ChanClosed:
            return "already"

    results = tools.run_threads([closer] * 8)
    assert sorted(results) == ["already"] * 7 + ["closed"]


# --- iteration --------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [0, 1, 16])
def test_for_range_receives_until_closed_and_drained(impl, tools, cap):
    ch = impl.Chan(cap)
    n = 200

    def producer():
        for i in range(n):
            assert ch.send(i, tools.TIMEOUT)
        ch.close()

    p = tools.spawn(producer)
    got = list(ch)  # ends only once closed: the producer's close ends it
    p.join()
    assert got == list(range(n))
    assert list(ch) == []  # a closed, drained channel gives an empty iteration


def test_worker_pool(impl, tools):
    # Go's worker pool: workers range over a jobs channel, send to results.
    jobs, results = impl.Chan(10), impl.Chan(10)
    n_jobs, n_workers = 300, 4

    def worker(wid):
        done = 0
        for job in jobs:
            assert results.send((wid, job * job), tools.TIMEOUT)
            done += 1
        return done

    workers = [tools.spawn(worker, w) for w in range(n_workers)]

    def feed():
        for job in range(n_jobs):
            assert jobs.send(job, tools.TIMEOUT)
        jobs.close()

    feeder = tools.spawn(feed)
    got = [results.recv(tools.TIMEOUT) for _ in range(n_jobs)]
    feeder.join()
    done = tools.join_all(workers)
    assert sorted(square for _, square in got) == [j * j for j in range(n_jobs)]
    assert sum(done) == n_jobs
    with pytest.raises(TimeoutError):
        results.recv(timeout=0)


# --- timeouts ----------------------------------------------------------------------------


def blocked_calls(impl):
    """Each kind of call, on channels where it must wait; (name, call(timeout))."""
    full = impl.Chan(1)
    full.send("x")
    empty = impl.Chan(1)
    u = impl.Chan()
    return [
        ("send-full", lambda t: full.send("y", t)),
        ("send-unbuffered", lambda t: u.send("y", t)),
        ("recv", lambda t: empty.recv(t)),
        ("recv_ok", lambda t: empty.recv_ok(t)),
        ("select", lambda t: impl.select(u.recv, (full.send, "y"), timeout=t)),
    ]


def timed_out(name, call, timeout):
    """Call; True if it reported a timeout the way its kind does."""
    if name.startswith("send"):
        return call(timeout) is False
    if name == "select":
        return call(timeout) == (-1, None)
    with pytest.raises(TimeoutError):
        call(timeout)
    return True


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, -(10**30), False])
def test_zero_or_negative_timeout_polls(impl, timeout):
    for name, call in blocked_calls(impl):
        start = time.monotonic()
        assert timed_out(name, call, timeout), name
        assert time.monotonic() - start < 1.0, name


def test_timeouts_expire(impl):
    for name, call in blocked_calls(impl):
        start = time.monotonic()
        assert timed_out(name, call, 0.05), name
        elapsed = time.monotonic() - start
        assert 0.04 <= elapsed < TIMER_SLACK, (name, elapsed)


@pytest.mark.parametrize("timeout", [1, 0.5, True, Fraction(1, 2)])
def test_timeout_number_types(impl, timeout):
    ch = impl.Chan(1)
    assert ch.send(1, timeout) is True
    assert ch.recv(timeout) == 1
    ch.send(2, timeout)
    assert ch.recv_ok(timeout) == (2, True)
    ch.send(3)
    assert impl.select(ch.recv, timeout=timeout) == (0, 3)


@pytest.mark.parametrize("timeout", [float("inf"), 2**63, 1e300, None])
def test_huge_timeout_means_forever(impl, tools, timeout):
    ch = impl.Chan()
    r = tools.spawn(ch.recv, timeout)
    tools.settle(0.05)
    assert not r.done
    assert ch.send("v", tools.TIMEOUT)
    assert r.join() == "v"
    s = tools.spawn(lambda: impl.select((ch.send, "w"), timeout=timeout))
    assert ch.recv(tools.TIMEOUT) == "w"
    assert s.join() == (0, None)


@pytest.mark.parametrize("bad", BAD_TIMEOUTS)
def test_bad_timeout_type(impl, bad):
    ch = impl.Chan(1)
    ch.send("kept")
    with pytest.raises(TypeError, match="^timeout must be a number or None$"):
        ch.send("x", bad)
    with pytest.raises(TypeError, match="^timeout must be a number or None$"):
        ch.recv(timeout=bad)
    with pytest.raises(TypeError, match="^timeout must be a number or None$"):
        ch.recv_ok(bad)
    with pytest.raises(TypeError, match="^timeout must be a number or None$"):
        impl.select(ch.recv, timeout=bad)
    assert drain(ch) == ["kept"]  # nothing was done


def test_nan_timeout(impl):
    ch = impl.Chan(1)
    ch.send("kept")
    nan = float("nan")
    with pytest.raises(ValueError, match="^timeout must not be NaN$"):
        ch.send("x", nan)
    with pytest.raises(ValueError, match="^timeout must not be NaN$"):
        ch.recv(nan)
    with pytest.raises(ValueError, match="^timeout must not be NaN$"):
        ch.recv_ok(nan)
    with pytest.raises(ValueError, match="^timeout must not be NaN$"):
        impl.select(ch.recv, timeout=nan)
    assert drain(ch) == ["kept"]


# --- a waiter that leaves leaves no trace -----------------------------------------------


def test_timed_out_receiver_leaves_no_trace(impl):
    ch = impl.Chan()
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.02)
    with pytest.raises(TimeoutError):
        ch.recv_ok(timeout=0.02)
    assert_no_receiver(ch)  # no phantom receiver took the value


def test_timed_out_sender_leaves_no_trace(impl):
    u = impl.Chan()
    assert u.send("lost?", timeout=0.02) is False
    assert_no_sender(u)
    full = impl.Chan(1)
    full.send("first")
    assert full.send("lost?", timeout=0.02) is False
    assert full.recv(0) == "first"
    assert_no_sender(full)  # its value did not move into the freed room


def test_timed_out_select_leaves_no_trace(impl):
    a, b, c = impl.Chan(), impl.Chan(), impl.Chan()
    full = impl.Chan(1)
    full.send("first")
    assert impl.select(a.recv, b.recv_ok, (c.send, "lost?"), (full.send, "lost?"), timeout=0.02) == (-1, None)
    assert_no_receiver(a)
    assert_no_receiver(b)
    assert_no_sender(c)
    assert full.recv(0) == "first"
    assert_no_sender(full)


def test_default_select_leaves_no_trace(impl):
    a, b = impl.Chan(), impl.Chan()
    assert impl.select(a.recv, (b.send, "lost?"), default=True) == (-1, None)
    assert_no_receiver(a)
    assert_no_sender(b)


def test_a_fired_select_leaves_its_other_queues(impl, tools):
    a, b, c = impl.Chan(), impl.Chan(), impl.Chan()
    sel = tools.spawn(lambda: impl.select(a.recv, b.recv, (c.send, "c"), timeout=tools.TIMEOUT))
    tools.wait_until(lambda: a.send("a", timeout=0))
    assert sel.join() == (0, "a")
    assert_no_receiver(b)
    assert_no_sender(c)


def test_many_timeouts_leave_no_trace(impl):
    ch = impl.Chan()
    for _ in range(200):
        with pytest.raises(TimeoutError):
            ch.recv(timeout=0.0001)
        assert impl.select(ch.recv, ch.recv_ok, timeout=0.0001) == (-1, None)
    assert_no_receiver(ch)


class Value:
    """A value that can be watched with a weakref."""


def test_a_sender_that_left_does_not_keep_its_value(impl, tools):
    # Its queue entry is gone, not merely skipped later: nothing holds the value.
    u = impl.Chan()
    full = impl.Chan(1)
    full.send("first")
    ctx, cancel = impl.with_cancel(impl.background())
    refs = []
    for leave in ("timeout", "select-timeout", "cancel"):
        value = Value()
        refs.append(weakref.ref(value))
        if leave == "timeout":
            assert u.send(value, timeout=0.01) is False
            assert full.send(value, timeout=0.01) is False
        elif leave == "select-timeout":
            assert impl.select((u.send, value), (full.send, value), timeout=0.01) == (-1, None)
        else:
            canceller = threading.Timer(0.02, cancel)
            canceller.start()
            with pytest.raises(impl.Canceled):
                impl.select((u.send, value), (full.send, value), timeout=tools.TIMEOUT, ctx=ctx)
            canceller.join(tools.TIMEOUT)
        del value
    # The context's error (one object) holds the traceback of its last raise.
    del ctx, cancel, canceller
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
    assert drain(full) == ["first"]


def test_waiters_that_left_free_their_records(impl):
    ch = impl.Chan()
    other = impl.Chan()

    def churn(n):
        for _ in range(n):  # long enough a timeout to queue, each time
            with pytest.raises(TimeoutError):
                ch.recv(timeout=0.0001)
            assert impl.select(ch.recv, other.recv_ok, (other.send, 1), timeout=0.0001) == (-1, None)

    churn(200)  # warm up: free lists, caches
    gc.collect()
    before = sys.getallocatedblocks()
    churn(1000)
    gc.collect()
    grown = sys.getallocatedblocks() - before
    assert grown < 1000, f"{grown} more memory blocks after 2000 timed-out waits"


def test_timeouts_racing_hand_offs_lose_nothing(impl, tools):
    """Senders and receivers with tiny timeouts: a send reports True exactly
    when its value is received (a timeout and a hand-off that meet at once
    must agree on which one happened)."""
    ch = impl.Chan()
    n = 2000
    stop = threading.Event()

    def sender(base):
        sent = []
        for i in range(base, base + n):
            if ch.send(i, timeout=0.0002):
                sent.append(i)
        return sent

    def receiver():
        got = []
        while not stop.is_set():
            try:
                got.append(ch.recv(timeout=0.0002))
            except TimeoutError:
                pass
            index, value = impl.select(ch.recv, timeout=0.0001)
            if index == 0:
                got.append(value)
        return got

    senders = [tools.spawn(sender, k * n) for k in range(2)]
    receivers = [tools.spawn(receiver) for _ in range(2)]
    sent = [v for part in tools.join_all(senders, timeout=60) for v in part]
    stop.set()
    got = [v for part in tools.join_all(receivers, timeout=60) for v in part]
    assert sorted(got) == sorted(sent)
    assert len(set(got)) == len(got)


# --- select --------------------------------------------------------------------------------


def test_select_ready_recv(impl):
    a, b = impl.Chan(1), impl.Chan(1)
    b.send("b")
    assert impl.select(a.recv, b.recv) == (1, "b")
    b.send("b2")
    assert impl.select(a.recv, b.recv_ok, timeout=0) == (1, ("b2", True))
    assert len(b) == 0


def test_select_ready_send(impl):
    full, room = impl.Chan(1), impl.Chan(1)
    full.send("first")
    assert impl.select((full.send, "x"), (room.send, "y")) == (1, None)
    assert drain(room) == ["y"]
    assert drain(full) == ["first"]


def test_select_blocks_until_a_recv_case_is_ready(impl, tools):
    a, b = impl.Chan(), impl.Chan()
    sel = tools.spawn(lambda: impl.select(a.recv, b.recv_ok, timeout=tools.TIMEOUT))
    tools.settle(0.05)
    assert not sel.done
    assert b.send("v", tools.TIMEOUT) is True
    assert sel.join() == (1, ("v", True))


def test_select_blocks_until_a_send_case_is_ready(impl, tools):
    a, b = impl.Chan(), impl.Chan(1)
    b.send("first")
    sel = tools.spawn(lambda: impl.select((a.send, "to a"), (b.send, "to b"), timeout=tools.TIMEOUT))
    tools.settle(0.05)
    assert not sel.done
    assert a.recv(tools.TIMEOUT) == "to a"
    assert sel.join() == (0, None)
    assert drain(b) == ["first"]  # the other send did not happen


def test_select_send_to_a_blocked_select(impl, tools):
    a = impl.Chan()
    receiver = tools.spawn(lambda: impl.select(a.recv_ok, timeout=tools.TIMEOUT))
    sender = tools.spawn(lambda: impl.select((a.send, "hi"), timeout=tools.TIMEOUT))
    assert receiver.join() == (0, ("hi", True))
    assert sender.join() == (0, None)


def test_select_default(impl):
    a, b = impl.Chan(), impl.Chan(1)
    start = time.monotonic()
    assert impl.select(a.recv, (a.send, 1), b.recv, default=True) == (-1, None)
    assert impl.select(a.recv, default=True, timeout=5) == (-1, None)  # default wins: no wait
    assert time.monotonic() - start < 1.0
    b.send("v")
    assert impl.select(a.recv, b.recv, default=True) == (1, "v")


def test_select_timeout(impl):
    a = impl.Chan()
    start = time.monotonic()
    assert impl.select(a.recv, timeout=0.05) == (-1, None)
    assert 0.04 <= time.monotonic() - start < TIMER_SLACK
    assert impl.select(a.recv, timeout=0) == (-1, None)
    assert impl.select(a.recv, timeout=-1) == (-1, None)


def test_select_none_cases_never_fire(impl, tools):
    a = impl.Chan(1)
    a.send("v")
    assert impl.select(None, a.recv, None) == (1, "v")
    assert impl.select(None, None, default=True) == (-1, None)
    assert impl.select(None, timeout=0.02) == (-1, None)
    assert impl.select(timeout=0.02) == (-1, None)
    assert impl.select(default=True) == (-1, None)
    # Only None cases and no timeout: waits until the context ends (Go's select {}).
    ctx, cancel = impl.with_cancel(impl.background())
    sel = tools.spawn(lambda: impl.select(None, None, ctx=ctx))
    tools.settle(0.05)
    assert not sel.done
    cancel()
    with pytest.raises(impl.Canceled):
        sel.join()


def test_select_the_same_channel_twice(impl, tools):
    ch = impl.Chan(1)
    # Buffered, empty: only the send can proceed, wherever it is.
    assert impl.select(ch.recv, (ch.send, "v")) == (1, None)
    # Full: only the receive can.
    assert impl.select((ch.send, "w"), ch.recv_ok) == (1, ("v", True))
    # Unbuffered: a select never meets itself; another thread is the partner.
    u = impl.Chan()
    sel = tools.spawn(lambda: impl.select(u.recv, (u.send, "mine"), u.recv_ok, timeout=tools.TIMEOUT))
    tools.settle(0.05)
    assert u.recv(tools.TIMEOUT) == "mine"
    assert sel.join() == (1, None)
    assert_no_receiver(u)


@pytest.mark.parametrize("n_ready", [2, 3])
def test_select_fairness(impl, n_ready):
    # Uniform choice among the ready cases: each is chosen about 1/n of the
    # time (bounds of about 8 standard deviations: a fair choice never fails,
    # a first-ready or round-robin-biased one does).
    chans = [impl.Chan(1) for _ in range(n_ready)]
    idle = impl.Chan()
    rounds = 3000
    counts = collections.Counter()
    for ch in chans:
        ch.send(0)
    cases = [idle.recv] + [ch.recv for ch in chans]
    for _ in range(rounds):
        index, _ = impl.select(*cases, timeout=0)
        counts[index] += 1
        chans[index - 1].send(0)  # make it ready again
    expected = rounds / n_ready
    sigma = math.sqrt(rounds * (1 / n_ready) * (1 - 1 / n_ready))
    assert counts[0] == 0
    for i in range(1, n_ready + 1):
        assert abs(counts[i] - expected) < 8 * sigma, dict(counts)


def test_select_fairness_between_send_and_recv(impl):
    src, dst = impl.Chan(1), impl.Chan(1)
    counts = collections.Counter()
    for _ in range(2000):
        src.send("x", timeout=0)
        index, _ = impl.select(src.recv, (dst.send, "y"))
        counts[index] += 1
        drain(src)
        drain(dst)
    assert 800 < counts[0] < 1200 and 800 < counts[1] < 1200, dict(counts)


def test_select_recv_on_closed_drained_raises(impl):
    ch = impl.Chan(1)
    ch.send("buffered")
    ch.close()
    assert impl.select(ch.recv) == (0, "buffered")  # values first
    with pytest.raises(impl.ChanClosed, match="^receive from closed channel$"):
        impl.select(ch.recv)
    with pytest.raises(impl.ChanClosed):
        impl.select(ch.recv, default=True)  # even with default: the case is ready
    with pytest.raises(impl.ChanClosed):
        impl.select(ch.recv, timeout=0)


def test_select_recv_ok_on_closed_drained(impl):
    ch, other = impl.Chan(), impl.Chan()
    ch.close()
    assert impl.select(other.recv, ch.recv_ok) == (1, (None, False))
    assert impl.select(ch.recv_ok, default=True) == (0, (None, False))


def test_select_send_on_closed_raises_even_with_default(impl):
    ch = impl.Chan(5)
    ch.close()
    with pytest.raises(impl.ChanClosed, match="^send on closed channel$"):
        impl.select((ch.send, 1))
    with pytest.raises(impl.ChanClosed, match="^send on closed channel$"):
        impl.select((ch.send, 1), default=True)
    assert len(ch) == 0


def test_close_wakes_a_blocked_select(impl, tools):
    for kind in ("recv", "recv_ok", "send"):
        a, b = impl.Chan(), impl.Chan()
        case = (b.send, "x") if kind == "send" else getattr(b, kind)
        sel = tools.spawn(lambda case=case: impl.select(a.recv, case, timeout=tools.TIMEOUT))
        tools.settle(0.05)
        assert not sel.done
        b.close()
        if kind == "recv_ok":
            assert sel.join() == (1, (None, False))
        else:
            msg = "^send on closed channel$" if kind == "send" else "^receive from closed channel$"
            with pytest.raises(impl.ChanClosed, match=msg):
                sel.join()
        assert_no_receiver(a)


# --- select: bad input, before anything is done -----------------------------------------


class NotAChan:
    def recv(self, timeout=None):
        return "fake"

    def recv_ok(self, timeout=None):
        return "fake", True

    def send(self, value, timeout=None):
        return True


# Not select cases: name -> make(ch, not_a_chan).
BAD_CASES = {
    "int": lambda ch, other: 1,
    "str": lambda ch, other: "recv",
    "lambda": lambda ch, other: lambda: None,
    "the-chan": lambda ch, other: ch,
    "send-alone": lambda ch, other: ch.send,
    "close": lambda ch, other: ch.close,
    "len": lambda ch, other: ch.__len__,
    "tuple-0": lambda ch, other: (),
    "tuple-1": lambda ch, other: (ch.send,),
    "tuple-3": lambda ch, other: (ch.send, 1, 2),
    "recv-in-tuple": lambda ch, other: (ch.recv, 1),
    "list": lambda ch, other: [ch.send, 1],
    "other-recv": lambda ch, other: other.recv,
    "other-recv_ok": lambda ch, other: other.recv_ok,
    "other-send": lambda ch, other: (other.send, 1),
    "event-wait": lambda ch, other: threading.Event().wait,
}


@pytest.mark.parametrize("which", list(BAD_CASES))
def test_select_rejects_a_bad_case_before_doing_anything(impl, which):
    ch = impl.Chan(1)
    bad = BAD_CASES[which](ch, NotAChan())
    ready = impl.Chan(1)
    ready.send("keep me")
    room = impl.Chan(1)
    # Ready cases come before the bad one: none of them may be performed.
    with pytest.raises(TypeError):
        impl.select(ready.recv, (room.send, "no"), bad)
    with pytest.raises(TypeError):
        impl.select(bad, ready.recv, default=True)
    assert drain(ready) == ["keep me"]
    assert len(room) == 0
    assert len(ch) == 0


def test_select_rejects_a_channel_of_the_other_implementation(impl):
    this = next(k for k, name in IMPL_MODULES.items() if name == impl.__name__)
    other_name = IMPL_MODULES["py" if this == "c" else "c"]
    try:
        other = importlib.import_module(other_name)
    except ImportError:
        pytest.skip(f"{other_name} is not importable")
    if not hasattr(other, "Chan"):
        pytest.skip(f"{other_name} has no Chan")
    mine, theirs = impl.Chan(1), other.Chan(1)
    mine.send("keep me")
    theirs.send("keep me too")
    for case in (theirs.recv, theirs.recv_ok, (theirs.send, 1)):
        with pytest.raises(TypeError):
            impl.select(mine.recv, case)
    assert len(mine) == 1 and len(theirs) == 1


def test_select_rejects_a_bad_ctx(impl):
    ch = impl.Chan(1)
    ch.send("kept")
    for bad in ("ctx", 1, object()):
        with pytest.raises(TypeError, match="^ctx must be a Context or None$"):
            impl.select(ch.recv, ctx=bad)
    assert drain(ch) == ["kept"]


def test_select_cases_are_positional_only(impl):
    ch = impl.Chan(1)
    with pytest.raises(TypeError):
        impl.select(cases=[ch.recv])


# --- contexts -----------------------------------------------------------------------------


def ctx_calls(impl):
    """Each kind of call that must wait, as call(ctx, timeout)."""
    full = impl.Chan(1)
    full.send("x")
    empty = impl.Chan(1)
    u = impl.Chan()
    return {
        "send": (u, lambda ctx, t=None: u.send("y", t, ctx=ctx)),
        "send-full": (full, lambda ctx, t=None: full.send("y", t, ctx=ctx)),
        "recv": (u, lambda ctx, t=None: u.recv(t, ctx=ctx)),
        "recv_ok": (empty, lambda ctx, t=None: empty.recv_ok(t, ctx=ctx)),
        "select": (u, lambda ctx, t=None: impl.select(u.recv, (full.send, "y"), timeout=t, ctx=ctx)),
    }


CTX_KINDS = ["send", "send-full", "recv", "recv_ok", "select"]


def check_untouched(impl, kind, ch):
    if kind == "send-full":
        assert drain(ch) == ["x"]
    elif kind in ("send", "recv", "select"):
        assert_no_receiver(ch)
        assert_no_sender(ch)
    else:
        assert len(ch) == 0


@pytest.mark.parametrize("kind", CTX_KINDS)
@pytest.mark.parametrize("via", ["self", "parent", "value"])
def test_cancel_wakes_a_blocked_call(impl, tools, kind, via):
    ch, call = ctx_calls(impl)[kind]
    parent, cancel_parent = impl.with_cancel(impl.background())
    ctx, cancel = impl.with_cancel(parent)
    if via == "value":
        ctx = impl.with_value(ctx, "k", 1)
    stop = {"self": cancel, "value": cancel, "parent": cancel_parent}[via]
    waiter = tools.spawn(call, ctx, tools.TIMEOUT)
    tools.settle(0.05)
    assert not waiter.done
    start = time.monotonic()
    stop()
    waiter.thread.join(tools.TIMEOUT)
    with pytest.raises(impl.Canceled) as info:
        waiter.join()
    assert info.value is ctx.err()
    assert time.monotonic() - start < 1.0  # woken by the cancel, not by polling
    check_untouched(impl, kind, ch)  # the cancelled waiter left no trace
    cancel_parent()


@pytest.mark.parametrize("kind", CTX_KINDS)
def test_ended_context_raises_at_once_even_if_the_call_could_proceed(impl, kind):
    ch = impl.Chan(1)
    ch.send("v")
    room = impl.Chan(1)
    free = {
        "send": lambda ctx: room.send("y", ctx=ctx),
        "send-full": lambda ctx: room.send("y", ctx=ctx),
        "recv": lambda ctx: ch.recv(ctx=ctx),
        "recv_ok": lambda ctx: ch.recv_ok(ctx=ctx),
        "select": lambda ctx: impl.select(ch.recv, ctx=ctx, default=True),
    }[kind]
    ctx, cancel = impl.with_cancel(impl.background())
    cancel()
    with pytest.raises(impl.Canceled) as info:
        free(ctx)
    assert info.value is ctx.err()
    expired, _ = impl.with_timeout(impl.background(), 0)
    with pytest.raises(impl.DeadlineExceeded):
        free(expired)
    assert drain(ch) == ["v"] and len(room) == 0  # nothing was done


@pytest.mark.parametrize("kind", CTX_KINDS)
def test_active_context_does_not_get_in_the_way(impl, kind):
    ctx, cancel = impl.with_cancel(impl.background())
    ch = impl.Chan(1)
    if kind.startswith("send"):
        assert ch.send("v", ctx=ctx) is True
        assert ch.recv(ctx=impl.background()) == "v"
    elif kind == "select":
        ch.send("v")
        assert impl.select(ch.recv, ctx=ctx) == (0, "v")
    else:
        ch.send("v")
        got = getattr(ch, kind)(ctx=impl.with_value(ctx, "k", 1))
        assert got == ("v" if kind == "recv" else ("v", True))
    cancel()


@pytest.mark.parametrize("kind", CTX_KINDS)
def test_context_deadline_ends_a_call(impl, kind):
    ch, call = ctx_calls(impl)[kind]
    ctx, cancel = impl.with_timeout(impl.background(), 0.05)
    start = time.monotonic()
    with pytest.raises(impl.DeadlineExceeded) as info:
        call(ctx, 10)
    assert info.value is ctx.err()
    assert time.monotonic() >= ctx.deadline()
    assert time.monotonic() - start < TIMER_SLACK
    check_untouched(impl, kind, ch)
    cancel()


@pytest.mark.parametrize("kind", CTX_KINDS)
def test_own_timeout_earlier_than_the_context_is_a_timeout(impl, kind):
    ch, call = ctx_calls(impl)[kind]
    ctx, cancel = impl.with_timeout(impl.background(), 100)
    for timeout in (0.02, 0):
        if kind.startswith("send"):
            assert call(ctx, timeout) is False
        elif kind == "select":
            assert call(ctx, timeout) == (-1, None)
        else:
            with pytest.raises(TimeoutError):
                call(ctx, timeout)
    assert ctx.err() is None
    check_untouched(impl, kind, ch)
    cancel()


@pytest.mark.parametrize("kind", CTX_KINDS)
def test_passed_but_unfired_deadline_wins_over_a_poll(impl, kind):
    # The call sees the context's deadline pass before the timer thread ends
    # the context: it ends the context itself and raises, even as a poll.
    ch, call = ctx_calls(impl)[kind]
    ctx, cancel = impl.with_deadline(impl.background(), time.monotonic() + 0.03)
    with pytest.raises(impl.DeadlineExceeded):
        call(ctx, 10)
    cancel()


@pytest.mark.parametrize("kind", CTX_KINDS)
def test_passed_deadline_while_another_thread_ends_the_context(impl, kind, tools):
    """The call sees the context's deadline pass but the context is not ended
    yet (another thread is ending it): it waits for the end and raises the
    context's error, instead of returning as if its own timeout ran out."""
    ch, call = ctx_calls(impl)[kind]
    # A pure context whose hooks are overridden (the C ones are final): the
    # calls of either implementation take it.
    import cysync._context as _context_module

    ctx, cancel = _context_module.with_cancel(_context_module.background())

    class Late(type(ctx)):
        __slots__ = ()

        def deadline(self):
            return time.monotonic() - 1.0  # passed

        def _expire(self):
            pass  # "another thread is ending it"

    ctx.__class__ = Late
    ender = threading.Timer(0.05, cancel)
    ender.start()
    try:
        with pytest.raises(impl.Canceled):
            call(ctx, 10)
    finally:
        ender.cancel()
        ender.join(tools.TIMEOUT)
        cancel()


@pytest.mark.parametrize("kind", CTX_KINDS)
@pytest.mark.parametrize("bad", ["ctx", 1, object()])
def test_ctx_must_be_a_context(impl, kind, bad):
    ch, call = ctx_calls(impl)[kind]
    with pytest.raises(TypeError, match="^ctx must be a Context or None$"):
        call(bad, 0)


def test_calls_succeed_with_a_context(impl, tools):
    ctx, cancel = impl.with_timeout(impl.background(), 100)
    ch = impl.Chan()
    r = tools.spawn(lambda: ch.recv(tools.TIMEOUT, ctx=ctx))
    assert ch.send("a", tools.TIMEOUT, ctx=ctx) is True
    assert r.join() == "a"
    s = tools.spawn(lambda: ch.send("b", tools.TIMEOUT, ctx=ctx))
    assert impl.select(ch.recv_ok, ctx=ctx, timeout=tools.TIMEOUT) == (0, ("b", True))
    assert s.join() is True
    assert ctx.err() is None
    cancel()


def test_many_waits_leave_no_wakers(impl):
    ctx, cancel = impl.with_cancel(impl.background())
    ch = impl.Chan()
    for _ in range(100):
        with pytest.raises(TimeoutError):
            ch.recv(0.0005, ctx=ctx)
        assert impl.select(ch.recv, timeout=0.0005, ctx=ctx) == (-1, None)
    assert not ctx._ctl._wakers  # every wait removed its waker
    cancel()


# --- after ---------------------------------------------------------------------------------


def test_after_fires_once_after_the_delay(impl):
    start = time.monotonic()
    ch = impl.after(0.05)
    assert ch.cap == 1
    value = ch.recv(TIMEOUT)
    now = time.monotonic()
    assert type(value) is float
    assert value >= start + 0.05  # never early
    assert value <= now
    assert now - start < TIMER_SLACK
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.1)  # once
    assert ch.closed is False


@pytest.mark.parametrize("seconds", [0, -1, 0.0, False, -math.inf])
def test_after_now(impl, seconds):
    start = time.monotonic()
    value = impl.after(seconds).recv(TIMER_SLACK)
    assert start <= value <= time.monotonic()


@pytest.mark.parametrize("seconds", [math.inf, 1e300])
def test_after_never(impl, seconds):
    ch = impl.after(seconds)
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.05)


@pytest.mark.parametrize("seconds", [0.05, True, Fraction(1, 20)])
def test_after_number_types(impl, seconds):
    start = time.monotonic()
    assert impl.after(seconds).recv(float(seconds) + TIMER_SLACK) >= start + float(seconds)


@pytest.mark.parametrize("bad", [*BAD_TIMEOUTS, pytest.param(None, id="None")])
def test_after_bad_type(impl, bad):
    with pytest.raises(TypeError):
        impl.after(bad)


def test_after_nan(impl):
    with pytest.raises(ValueError):
        impl.after(float("nan"))


def test_after_in_select_as_a_timeout(impl):
    ch = impl.Chan()
    start = time.monotonic()
    index, value = impl.select(ch.recv, impl.after(0.05).recv, timeout=TIMER_SLACK + 1)
    assert index == 1
    assert value >= start + 0.05
    assert_no_receiver(ch)


def test_after_uses_no_thread_per_call(impl):
    impl.after(0).recv(TIMER_SLACK)  # the timer thread runs (it may start here)
    before = threading.active_count()
    chans = [impl.after(0.01 + 0.001 * (i % 10)) for i in range(100)]
    assert threading.active_count() <= before + 1
    values = [ch.recv(TIMER_SLACK) for ch in chans]
    assert all(type(v) is float for v in values)
    assert threading.active_count() <= before + 1


def test_after_fires_in_order(impl):
    late, early = impl.after(0.08), impl.after(0.02)
    index, first = impl.select(late.recv, early.recv, timeout=TIMER_SLACK)
    assert index == 1
    assert late.recv(TIMER_SLACK) >= first


# --- the GIL and signals -------------------------------------------------------------------


def test_blocked_waiters_let_other_threads_run(impl, tools):
    # Blocked calls hold no GIL: with eight of them waiting, this thread
    # still runs (a held GIL would hang the test body, and fail it).
    ch = impl.Chan()
    waiters = [tools.spawn(ch.recv, tools.TIMEOUT) for _ in range(4)]
    waiters += [tools.spawn(lambda: impl.select(ch.recv_ok, timeout=tools.TIMEOUT)) for _ in range(4)]
    tools.settle(0.05)
    total = sum(i * i for i in range(200_000))
    assert total > 0
    for i in range(8):
        assert ch.send(i, tools.TIMEOUT)
    results = tools.join_all(waiters)
    assert sorted(r if isinstance(r, int) else r[1][0] for r in results) == list(range(8))


SIG = getattr(signal, "SIGUSR1", None)
needs_signals = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill") or SIG is None, reason="needs signal.pthread_kill and SIGUSR1"
)


class Interrupted(Exception):
    """Raised by the tests' signal handler."""


class Pester:
    """Sends SIG to the main thread every 20 ms until `enough()` (or 3 s)."""

    def __init__(self, tools, enough):
        self.stop = threading.Event()
        self.enough = enough
        self.worker = tools.spawn(self._run, name="pester")

    def _run(self):
        main = threading.main_thread().ident
        deadline = time.monotonic() + 3.0
        while not self.stop.wait(0.02) and not self.enough() and time.monotonic() < deadline:
            signal.pthread_kill(main, SIG)

    def finish(self):
        self.stop.set()
        self.worker.join()
        time.sleep(0.05)  # a signal still on its way is handled by our handler


def with_handler(fn):
    old = signal.signal(SIG, fn)

    class Restore:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            signal.signal(SIG, old)

    return Restore()


def interrupt_main_call(tools, call, exc_type=Interrupted):
    """Run call() in the main thread while signals arrive; the handler raises
    `exc_type` once. Returns the exception info and the time it took."""
    raised = []
    armed = []  # a stray signal of an earlier Pester must not raise before call() runs

    def handler(signum, frame):
        if armed and not raised:
            raised.append(signum)
            raise exc_type

    with with_handler(handler):
        pester = Pester(tools, enough=lambda: bool(raised))
        start = time.monotonic()
        try:
            with pytest.raises(exc_type) as info:
                armed.append(True)
                call()
        finally:
            pester.finish()
    return info, time.monotonic() - start


@needs_signals
@pytest.mark.main_thread
@pytest.mark.parametrize("exc_type", [Interrupted, KeyboardInterrupt])
def test_signal_interrupts_a_blocked_recv_and_leaves_no_trace(impl, tools, exc_type):
    ch = impl.Chan()
    info, elapsed = interrupt_main_call(tools, lambda: ch.recv(tools.TIMEOUT), exc_type)
    assert elapsed < 2.0
    assert_no_receiver(ch)
    # Still usable.
    s = tools.spawn(ch.send, "after", tools.TIMEOUT)
    assert ch.recv(tools.TIMEOUT) == "after"
    assert s.join() is True


@needs_signals
@pytest.mark.main_thread
def test_signal_interrupts_a_blocked_send_and_leaves_no_trace(impl, tools):
    ch = impl.Chan()
    interrupt_main_call(tools, lambda: ch.send("lost?", tools.TIMEOUT), KeyboardInterrupt)
    assert_no_sender(ch)
    full = impl.Chan(1)
    full.send("first")
    interrupt_main_call(tools, lambda: full.send("lost?", tools.TIMEOUT))
    assert drain(full) == ["first"]
    assert_no_sender(full)


@needs_signals
@pytest.mark.main_thread
def test_signal_interrupts_a_blocked_select_and_leaves_no_trace(impl, tools):
    a, b, c = impl.Chan(), impl.Chan(), impl.Chan()
    interrupt_main_call(
        tools, lambda: impl.select(a.recv, b.recv_ok, (c.send, "lost?"), timeout=tools.TIMEOUT), KeyboardInterrupt
    )
    assert_no_receiver(a)
    assert_no_receiver(b)
    assert_no_sender(c)


@needs_signals
@pytest.mark.main_thread
def test_quiet_signal_handler_lets_the_wait_continue(impl, tools):
    ch = impl.Chan()
    handled = []
    with with_handler(lambda signum, frame: handled.append(signum)):
        pester = Pester(tools, enough=lambda: len(handled) >= 3)
        try:
            sender = None

            def release():
                tools.wait_until(lambda: len(handled) >= 3)
                return ch.send("v", tools.TIMEOUT)

            sender = tools.spawn(release)
            assert ch.recv(tools.TIMEOUT) == "v"
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                ch.recv(0.2)  # signals keep coming: the timeout still ends it
            assert time.monotonic() - start < 2.0
        finally:
            pester.finish()
    assert sender.join() is True
    assert len(handled) >= 3


@needs_signals
@pytest.mark.main_thread
def test_ctrl_c_after_the_value_was_handed_over_loses_nothing(impl, tools):
    """The signal handler itself tries to hand the blocked receiver a value,
    then raises KeyboardInterrupt: whatever was handed over is delivered,
    and Ctrl-C is still raised.

    The pure twin runs handlers while the receiver is still queued and
    claimable, so the hand-off succeeds there; the C core pauses the
    receiver while it runs them (it keeps its place in the queue, but
    nothing can be handed to it until the handlers return), so there it
    fails and no value exists to lose.  Either way: got == handed."""
    ch = impl.Chan()
    handed = []
    attempts = []

    def handler(signum, frame):
        attempts.append(signum)
        if not handed and ch.send(42, timeout=0):  # succeeds if main is queued in recv
            handed.append(42)
            ch.close()  # no value will follow: a lost Ctrl-C ends the loop instead of hanging
            raise KeyboardInterrupt
        if len(attempts) >= 20:
            raise KeyboardInterrupt

    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    got = []
    try:
        with with_handler(handler):
            pester = Pester(tools, enough=lambda: bool(handed) or len(attempts) >= 20)
            try:
                with pytest.raises(KeyboardInterrupt):
                    for value in ch:
                        got.append(value)
            finally:
                pester.finish()
    finally:
        signal.signal(signal.SIGINT, old_int)
    assert got == handed
    if impl.__name__ == "cysync.pure":
        assert handed == [42]


# --- stress ----------------------------------------------------------------------------------


def producers_consumers(impl, tools, cap, producers, consumers, per_producer, timeout):
    """`producers` threads each send `per_producer` distinct values over one
    Chan(cap); `consumers` threads range over it. Every value is received
    exactly once."""
    ch = impl.Chan(cap)
    start = threading.Barrier(producers + consumers)

    def produce(p):
        start.wait(tools.TIMEOUT)
        for i in range(per_producer):
            assert ch.send(p * per_producer + i, tools.TIMEOUT), "send timed out"

    def consume():
        start.wait(tools.TIMEOUT)
        got = []
        for value in ch:
            got.append(value)
        return got

    consumer_threads = [tools.spawn(consume, name=f"consumer-{c}") for c in range(consumers)]
    producer_threads = [tools.spawn(produce, p, name=f"producer-{p}") for p in range(producers)]
    tools.join_all(producer_threads, timeout)
    ch.close()
    results = tools.join_all(consumer_threads, timeout)
    received = [v for got in results for v in got]
    assert len(received) == producers * per_producer
    assert sorted(received) == list(range(producers * per_producer))
    # Each producer's values arrive in its order, at each consumer.
    for got in results:
        last = {}
        for v in got:
            p = v // per_producer
            assert last.get(p, -1) < v
            last[p] = v


@pytest.mark.parametrize("cap", [0, 64])
def test_stress_producers_consumers(impl, tools, cap):
    producers_consumers(impl, tools, cap, 4, 4, 2000, 60)


@pytest.mark.slow
@pytest.mark.parametrize("cap", [0, 64])
def test_stress_producers_consumers_long(impl, tools, cap):
    producers_consumers(impl, tools, cap, 8, 8, 100_000, 280)


def select_load(impl, tools, producers, consumers, per_producer, timeout):
    """Producers send through select over 4 channels' send cases, consumers
    receive through select over their recv_ok cases, dropping a channel's
    case (None, Go's nil channel) once it is closed and drained."""
    chans = [impl.Chan(cap) for cap in (0, 1, 8, 64)]
    start = threading.Barrier(producers + consumers)

    def produce(p):
        start.wait(tools.TIMEOUT)
        for i in range(per_producer):
            value = p * per_producer + i
            index, _ = impl.select(*[(ch.send, value) for ch in chans], timeout=tools.TIMEOUT)
            assert index >= 0, "select send timed out"

    def consume():
        start.wait(tools.TIMEOUT)
        cases = [ch.recv_ok for ch in chans]
        got = []
        while any(cases):
            index, (value, ok) = impl.select(*cases, timeout=tools.TIMEOUT)
            assert index >= 0, "select recv timed out"
            if ok:
                got.append(value)
            else:
                cases[index] = None
        return got

    consumer_threads = [tools.spawn(consume) for _ in range(consumers)]
    producer_threads = [tools.spawn(produce, p) for p in range(producers)]
    tools.join_all(producer_threads, timeout)
    for ch in chans:
        ch.close()
    received = [v for got in tools.join_all(consumer_threads, timeout) for v in got]
    assert sorted(received) == list(range(producers * per_producer))


def test_stress_select(impl, tools):
    select_load(impl, tools, 4, 4, 1000, 60)


@pytest.mark.slow
def test_stress_select_long(impl, tools):
    select_load(impl, tools, 8, 8, 100_000, 280)
