"""RWMutex: Go's sync.RWMutex, both implementations.

Every sentence of DESIGN.md's "RWMutex" section: many readers or one
writer; a waiting writer blocks new readers (writers are not starved); the
readers waiting when a writer unlocks all get in before the next writer;
not owned by a thread; unlocking what is not locked raises RuntimeError and
changes nothing; ``lock``/``rlock`` take ``timeout`` and ``ctx=``;
``try_lock``/``try_rlock``; ``rw.reader``/``rw.writer`` are lock-like
objects, the same ones on every access.  Then what leaving a wait must not
leave behind (a timeout, a context's end, a signal handler that raises):
nothing queued, nothing held, and no reader blocked behind a writer that is
gone; and a stress run that checks the exclusion rules inside every
critical section.

The state is read from ``repr``: ``readers=N, writer=B, waiters=N,
writers waiting=N``.
"""

from __future__ import annotations

import gc
import random
import re
import signal
import threading
import time
import weakref

import pytest

NAN_TIMEOUT = "^timeout must not be NaN$"
BAD_TIMEOUT = "^timeout must be a number or None$"
UNLOCK_MSG = "^unlock of unlocked RWMutex$"
RUNLOCK_MSG = "^runlock of unlocked RWMutex$"
#: How long a cancel may take to reach a blocked wait on a loaded machine.
CANCEL_LATENCY = 0.5


# --- helpers ---------------------------------------------------------------------------

def state(rw) -> dict[str, object]:
    """readers, writer, waiters and writers waiting, parsed from repr."""
    m = re.search(r": readers=(\d+), writer=(True|False), waiters=(\d+), writers waiting=(\d+)>$", repr(rw))
    assert m, f"unexpected repr {rw!r}"
    return {"readers": int(m[1]), "writer": m[2] == "True", "waiters": int(m[3]), "writers_waiting": int(m[4])}


def is_free(rw) -> bool:
    return state(rw) == {"readers": 0, "writer": False, "waiters": 0, "writers_waiting": 0}


def queue(tools, rw, writer, timeout=None, *, ctx=None, name=None):
    """Start a thread blocked in ``rw.lock`` (``rw.rlock``) and return it once
    it is queued; it returns what the call returned, keeping the lock."""
    timeout = tools.TIMEOUT if timeout is None else timeout
    before = state(rw)["waiters"]

    def take():
        if writer:
            return rw.lock(timeout, ctx=ctx)
        return rw.rlock(timeout, ctx=ctx)

    worker = tools.spawn(take, name=name)
    tools.wait_until(lambda: state(rw)["waiters"] == before + 1 or worker.done,
                     message=f"{'lock' if writer else 'rlock'}() never queued")
    assert not worker.done, f"did not wait: {worker.result!r} {worker.error!r}"
    return worker


# --- construction, fast paths, repr ------------------------------------------------------

def test_new_is_unlocked(impl):
    rw = impl.RWMutex()
    assert is_free(rw)
    pattern = r"^<cysync\.RWMutex at 0x[0-9a-fA-F]+: readers=0, writer=False, waiters=0, writers waiting=0>$"
    assert re.match(pattern, repr(rw)), repr(rw)


def test_constructor_takes_no_arguments(impl):
    with pytest.raises(TypeError):
        impl.RWMutex(1)
    with pytest.raises(TypeError):
        impl.RWMutex(x=1)


def test_exported(impl):
    import cysync

    assert "RWMutex" in impl.__all__
    assert "RWMutex" in cysync.__all__
    assert impl.RWMutex.__module__ == "cysync"


def test_many_readers_at_once(impl):
    rw = impl.RWMutex()
    assert rw.rlock() is True
    assert rw.rlock(0) is True
    assert rw.try_rlock() is True
    assert state(rw)["readers"] == 3
    # ...but no writer
    assert rw.try_lock() is False
    assert rw.lock(0) is False
    assert rw.lock(timeout=0.01) is False
    assert state(rw) == {"readers": 3, "writer": False, "waiters": 0, "writers_waiting": 0}
    for _ in range(3):
        rw.runlock()
    assert is_free(rw)
    assert rw.try_lock() is True
    rw.unlock()


def test_one_writer_excludes_everyone(impl):
    rw = impl.RWMutex()
    assert rw.lock() is True
    assert state(rw)["writer"] is True
    assert rw.try_lock() is False
    assert rw.try_rlock() is False
    assert rw.lock(0) is False
    assert rw.rlock(0) is False
    assert rw.rlock(timeout=0.01) is False
    assert state(rw) == {"readers": 0, "writer": True, "waiters": 0, "writers_waiting": 0}
    rw.unlock()
    assert is_free(rw)
    assert rw.try_rlock() is True
    rw.runlock()


@pytest.mark.parametrize("holders", ["free", "readers", "writer"])
def test_unlocking_what_is_not_locked_raises_and_changes_nothing(impl, holders):
    rw = impl.RWMutex()
    if holders == "readers":
        rw.rlock()
        rw.rlock()
    elif holders == "writer":
        rw.lock()
    before = repr(rw)
    if holders != "writer":
        with pytest.raises(RuntimeError, match=UNLOCK_MSG):
            rw.unlock()
        with pytest.raises(RuntimeError, match=UNLOCK_MSG):
            rw.writer.release()
        assert repr(rw) == before
    if holders != "readers":
        with pytest.raises(RuntimeError, match=RUNLOCK_MSG):
            rw.runlock()
        with pytest.raises(RuntimeError, match=RUNLOCK_MSG):
            rw.reader.release()
        assert repr(rw) == before
    # Still works.
    if holders == "readers":
        rw.runlock()
        rw.runlock()
    elif holders == "writer":
        rw.unlock()
    assert is_free(rw)
    assert rw.lock(0) is True
    rw.unlock()


def test_unlock_with_waiters_raises_and_changes_nothing(impl, tools):
    rw = impl.RWMutex()
    rw.rlock()
    w = queue(tools, rw, True)
    before = repr(rw)
    with pytest.raises(RuntimeError, match=UNLOCK_MSG):
        rw.unlock()
    assert repr(rw) == before
    rw.runlock()
    assert w.join() is True
    with pytest.raises(RuntimeError, match=RUNLOCK_MSG):
        rw.runlock()
    assert state(rw)["writer"] is True
    rw.unlock()
    assert is_free(rw)


def test_not_owned_by_a_thread(impl, tools):
    rw = impl.RWMutex()
    assert tools.spawn(rw.lock, tools.TIMEOUT).join() is True
    assert state(rw)["writer"] is True
    rw.unlock()  # by another thread than the one that locked
    assert tools.spawn(rw.rlock, tools.TIMEOUT).join() is True
    rw.runlock()
    rw.lock()
    tools.spawn(rw.unlock).join()
    assert is_free(rw)


def test_try_calls_take_no_arguments(impl):
    rw = impl.RWMutex()
    with pytest.raises(TypeError):
        rw.try_lock(0)
    with pytest.raises(TypeError):
        rw.try_rlock(timeout=0)
    with pytest.raises(TypeError):
        rw.unlock(1)
    with pytest.raises(TypeError):
        rw.runlock(1)
    assert is_free(rw)


def test_ctx_is_keyword_only(impl):
    rw = impl.RWMutex()
    with pytest.raises(TypeError):
        rw.lock(1, impl.background())
    with pytest.raises(TypeError):
        rw.rlock(1, impl.background())
    assert is_free(rw)


def test_subclass_and_weakref(impl):
    class Table(impl.RWMutex):
        def __init__(self, name):
            super().__init__()
            self.name = name

    t = Table("users")
    assert t.name == "users"
    assert t.rlock() is True
    assert t.try_lock() is False
    t.runlock()
    ref = weakref.ref(t)
    assert ref() is t


def test_no_reference_cycle(impl):
    """The reader and writer do not keep their RWMutex alive: it goes as
    soon as the last reference does, without the garbage collector."""
    gc.disable()
    try:
        rw = impl.RWMutex()
        reader = rw.reader
        ref = weakref.ref(rw)
        del rw
        assert ref() is None
        # The side still works on its own.
        assert reader.acquire() is True
        reader.release()
    finally:
        gc.enable()


# --- timeouts -----------------------------------------------------------------------------

@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, -(10**30), float("-inf")])
def test_zero_or_negative_timeout_polls_without_queueing(impl, timeout, tools):
    rw = impl.RWMutex()
    rw.rlock()
    start = time.monotonic()
    assert rw.lock(timeout) is False
    assert time.monotonic() - start < 1.0
    assert state(rw) == {"readers": 1, "writer": False, "waiters": 0, "writers_waiting": 0}
    rw.runlock()
    rw.lock()
    assert rw.rlock(timeout) is False
    assert state(rw) == {"readers": 0, "writer": True, "waiters": 0, "writers_waiting": 0}
    rw.unlock()
    assert rw.lock(timeout) is True
    rw.unlock()
    assert rw.rlock(timeout) is True
    rw.runlock()


@pytest.mark.parametrize("writer", [True, False])
def test_timeouts_expire_and_leave_no_trace(impl, writer):
    rw = blocked(impl, writer)
    before = repr(rw)
    start = time.monotonic()
    assert call(rw, writer, timeout=0.05) is False
    assert 0.03 <= time.monotonic() - start < 5.0
    assert repr(rw) == before


@pytest.mark.parametrize("timeout", [float("inf"), 2**63, 1e300, 10**400])
def test_huge_timeout_means_forever(impl, tools, timeout):
    rw = impl.RWMutex()
    rw.rlock()
    w = queue(tools, rw, True, timeout)
    tools.settle(0.05)
    assert not w.done
    rw.runlock()
    assert w.join() is True
    rw.unlock()


@pytest.mark.parametrize("bad", ["1", b"1", [1], 1j, object()])
def test_bad_timeout_type(impl, bad):
    rw = impl.RWMutex()
    for call in (rw.lock, rw.rlock, rw.reader.acquire, rw.writer.acquire):
        with pytest.raises(TypeError, match=BAD_TIMEOUT):
            call(timeout=bad)
    with pytest.raises(ValueError, match=NAN_TIMEOUT):
        rw.lock(float("nan"))
    with pytest.raises(ValueError, match=NAN_TIMEOUT):
        rw.rlock(float("nan"))
    assert is_free(rw)


# --- Go's rules ---------------------------------------------------------------------------

def test_waiting_writer_blocks_new_readers(impl, tools):
    rw = impl.RWMutex()
    rw.rlock()
    w = queue(tools, rw, True)
    assert state(rw)["writers_waiting"] == 1
    assert rw.try_rlock() is False
    assert rw.rlock(0) is False
    assert rw.rlock(0.02) is False
    assert rw.reader.acquire(False) is False
    assert state(rw) == {"readers": 1, "writer": False, "waiters": 1, "writers_waiting": 1}
    rw.runlock()  # the last reader out: the writer's turn
    assert w.join() is True
    assert state(rw) == {"readers": 0, "writer": True, "waiters": 0, "writers_waiting": 0}
    rw.unlock()
    assert is_free(rw)


def test_readers_waiting_at_unlock_go_before_the_next_writer(impl, tools):
    rw = impl.RWMutex()
    rw.lock()
    readers = [queue(tools, rw, False, name=f"r{i}") for i in range(3)]
    w2 = queue(tools, rw, True, name="w2")
    readers.append(queue(tools, rw, False, name="r3"))  # behind w2, still in
    assert state(rw) == {"readers": 0, "writer": True, "waiters": 5, "writers_waiting": 1}
    rw.unlock()
    assert tools.join_all(readers) == [True] * 4
    assert state(rw) == {"readers": 4, "writer": False, "waiters": 1, "writers_waiting": 1}
    assert not w2.done
    assert rw.try_rlock() is False  # w2 waits: no newcomer
    for _ in range(3):
        rw.runlock()
    tools.settle(0.02)
    assert not w2.done
    rw.runlock()
    assert w2.join() is True
    assert state(rw)["writer"] is True
    rw.unlock()
    assert is_free(rw)


def test_readers_queued_behind_a_waiting_writer_get_in_after_it(impl, tools):
    rw = impl.RWMutex()
    rw.rlock()
    w = queue(tools, rw, True)
    r = queue(tools, rw, False)
    rw.runlock()
    assert w.join() is True
    tools.settle(0.02)
    assert not r.done  # the writer holds it now
    rw.unlock()
    assert r.join() is True
    assert state(rw)["readers"] == 1
    rw.runlock()
    assert is_free(rw)


def test_writer_hands_the_lock_to_the_next_writer(impl, tools):
    rw = impl.RWMutex()
    rw.lock()
    w = queue(tools, rw, True)
    rw.unlock()
    assert w.join() is True
    assert state(rw) == {"readers": 0, "writer": True, "waiters": 0, "writers_waiting": 0}
    rw.unlock()


def test_writers_are_not_starved_by_overlapping_readers(impl, tools):
    """Readers that keep the lock read-held without a gap: without writer
    preference the writer would never find it free."""
    rw = impl.RWMutex()
    stop = threading.Event()
    reads = [0]

    def reader():
        while not stop.is_set():
            assert rw.rlock(tools.TIMEOUT) is True
            reads[0] += 1
            time.sleep(0.001)
            rw.runlock()

    readers = [tools.spawn(reader, name=f"reader-{i}") for i in range(3)]
    try:
        tools.wait_until(lambda: reads[0] > 20)
        for _ in range(20):
            start = time.monotonic()
            assert rw.lock(5.0) is True, "writer starved"
            assert time.monotonic() - start < 5.0
            assert state(rw)["readers"] == 0
            rw.unlock()
    finally:
        stop.set()
    tools.join_all(readers)
    assert is_free(rw)


def test_timed_out_writer_lets_the_readers_behind_it_in(impl, tools):
    rw = impl.RWMutex()
    rw.rlock()
    w = queue(tools, rw, True, timeout=0.3)
    readers = [queue(tools, rw, False) for _ in range(2)]
    assert w.join() is False
    assert tools.join_all(readers) == [True, True]  # not left blocked behind it
    assert state(rw) == {"readers": 3, "writer": False, "waiters": 0, "writers_waiting": 0}
    assert rw.try_rlock() is True  # newcomers too
    for _ in range(4):
        rw.runlock()
    assert is_free(rw)


def test_timed_out_writer_behind_another_writer_keeps_the_readers_waiting(impl, tools):
    rw = impl.RWMutex()
    rw.rlock()
    w1 = queue(tools, rw, True)
    w2 = queue(tools, rw, True, timeout=0.2)
    r = queue(tools, rw, False)
    assert w2.join() is False
    tools.settle(0.02)
    assert not r.done  # w1 still waits
    assert state(rw) == {"readers": 1, "writer": False, "waiters": 2, "writers_waiting": 1}
    rw.runlock()
    assert w1.join() is True
    rw.unlock()
    assert r.join() is True
    rw.runlock()
    assert is_free(rw)


def test_timed_out_reader_leaves_no_trace(impl, tools):
    rw = impl.RWMutex()
    rw.lock()
    r1 = queue(tools, rw, False, timeout=0.2)
    r2 = queue(tools, rw, False)
    assert r1.join() is False
    assert state(rw) == {"readers": 0, "writer": True, "waiters": 1, "writers_waiting": 0}
    rw.unlock()
    assert r2.join() is True
    assert state(rw)["readers"] == 1  # only r2
    rw.runlock()
    assert is_free(rw)


def test_many_timeouts_leave_no_trace(impl, tools):
    rw = impl.RWMutex()
    rw.rlock()
    ws = [tools.spawn(rw.lock, 0.001 * (i % 5)) for i in range(20)]
    assert tools.join_all(ws) == [False] * 20
    assert state(rw) == {"readers": 1, "writer": False, "waiters": 0, "writers_waiting": 0}
    rw.runlock()
    rw.lock()
    rs = [tools.spawn(rw.rlock, 0.001 * (i % 5)) for i in range(20)]
    assert tools.join_all(rs) == [False] * 20
    rw.unlock()
    assert is_free(rw)


# --- reader and writer ------------------------------------------------------------------

def test_sides_are_the_same_objects_every_time(impl):
    rw = impl.RWMutex()
    assert rw.reader is rw.reader
    assert rw.writer is rw.writer
    assert rw.reader is not rw.writer
    other = impl.RWMutex()
    assert other.reader is not rw.reader
    with pytest.raises(AttributeError):
        rw.reader = None
    with pytest.raises(AttributeError):
        rw.writer = None


def test_with_reader_and_writer(impl):
    rw = impl.RWMutex()
    with rw.reader as got:
        assert got is True
        assert state(rw)["readers"] == 1
        with rw.reader:
            assert state(rw)["readers"] == 2
        assert rw.writer.acquire(False) is False
    assert is_free(rw)
    with rw.writer as got:
        assert got is True
        assert state(rw)["writer"] is True
        assert rw.reader.acquire(False) is False
    assert is_free(rw)
    with pytest.raises(KeyError), rw.writer:
        raise KeyError
    with pytest.raises(KeyError), rw.reader:
        raise KeyError
    assert is_free(rw)


def test_side_acquire_and_release(impl):
    rw = impl.RWMutex()
    r, w = rw.reader, rw.writer
    assert r.acquire() is True
    assert r.acquire(False) is True
    assert r.acquire(True, 0) is True
    assert r.acquire(blocking=True, timeout=1) is True
    assert state(rw)["readers"] == 4
    assert w.acquire(False) is False
    assert w.acquire(True, 0.01) is False
    assert w.acquire(timeout=-1) is False
    for _ in range(4):
        r.release()
    assert w.acquire() is True
    assert r.acquire(timeout=0.01) is False
    w.release()
    assert is_free(rw)
    for side in (r, w):
        with pytest.raises(ValueError, match="^can't specify timeout for non-blocking acquire$"):
            side.acquire(False, 1)
        with pytest.raises(TypeError):
            side.acquire(ctx=None)  # lock-like: no ctx here
    assert is_free(rw)


def test_sides_are_the_methods(impl, tools):
    rw = impl.RWMutex()
    rw.reader.acquire()
    rw.runlock()
    rw.rlock()
    rw.reader.release()
    rw.writer.acquire()
    rw.unlock()
    rw.lock()
    rw.writer.release()
    assert is_free(rw)
    # A blocked side waits like the method.
    rw.lock()
    r = tools.spawn(rw.reader.acquire, True, tools.TIMEOUT)
    tools.wait_until(lambda: state(rw)["waiters"] == 1)
    rw.unlock()
    assert r.join() is True
    rw.reader.release()
    assert is_free(rw)


def test_writer_works_as_a_condition_lock(impl, tools):
    """Code that expects a lock: threading.Condition over rw.writer."""
    rw = impl.RWMutex()
    cond = threading.Condition(rw.writer)
    items = []

    def consume():
        with cond:
            assert cond.wait_for(lambda: items, tools.TIMEOUT)
            return items.pop()

    c = tools.spawn(consume)
    tools.settle(0.02)
    with cond:
        assert state(rw)["writer"] is True
        items.append("x")
        cond.notify()
    assert c.join() == "x"
    assert is_free(rw)


def test_side_reprs(impl):
    rw = impl.RWMutex()
    rw.rlock()
    state = r": readers=1, writer=False, waiters=0, writers waiting=0>$"
    assert re.match(r"^<cysync\.RWMutex\.reader at 0x[0-9a-fA-F]+" + state, repr(rw.reader)), repr(rw.reader)
    assert re.match(r"^<cysync\.RWMutex\.writer at 0x[0-9a-fA-F]+" + state, repr(rw.writer)), repr(rw.writer)
    rw.runlock()


# --- contexts -----------------------------------------------------------------------------

def blocked(impl, writer):
    """An RWMutex on which lock() (writer) or rlock() must wait."""
    rw = impl.RWMutex()
    if writer:
        rw.rlock()
    else:
        rw.lock()
    return rw


def call(rw, writer, *args, **kwargs):
    return rw.lock(*args, **kwargs) if writer else rw.rlock(*args, **kwargs)


@pytest.mark.parametrize("writer", [True, False])
def test_ended_context_raises_even_if_free(impl, writer):
    rw = impl.RWMutex()
    ctx, cancel = impl.with_cancel(impl.background())
    cancel()
    with pytest.raises(impl.Canceled) as info:
        call(rw, writer, ctx=ctx)
    assert info.value is ctx.err()
    expired, _ = impl.with_timeout(impl.background(), 0)
    with pytest.raises(impl.DeadlineExceeded):
        call(rw, writer, 0, ctx=expired)
    assert is_free(rw)
    live, cancel = impl.with_cancel(impl.background())
    assert call(rw, writer, ctx=live) is True
    cancel()


@pytest.mark.parametrize("writer", [True, False])
@pytest.mark.parametrize("bad", ["ctx", 1, object()])
def test_ctx_must_be_a_context(impl, writer, bad):
    rw = impl.RWMutex()
    with pytest.raises(TypeError, match="^ctx must be a Context or None$"):
        call(rw, writer, ctx=bad)
    assert is_free(rw)


def cancel_blocked(impl, tools, writer):
    """Cancel a lock()/rlock() blocked in another thread; return the time from
    cancel() to the exception, having checked that it left no trace."""
    rw = blocked(impl, writer)
    before = repr(rw)
    ctx, cancel = impl.with_cancel(impl.background())
    raised_at = []

    def run():
        try:
            return call(rw, writer, tools.TIMEOUT, ctx=ctx)
        except BaseException:
            raised_at.append(time.perf_counter())
            raise

    w = tools.spawn(run)
    tools.wait_until(lambda: state(rw)["waiters"] == 1)
    t0 = time.perf_counter()
    cancel()
    w.thread.join(tools.TIMEOUT)
    with pytest.raises(impl.Canceled) as info:
        w.join()
    assert info.value is ctx.err()
    assert repr(rw) == before
    assert not ctx._wakers
    return raised_at[0] - t0


@pytest.mark.parametrize("writer", [True, False])
def test_cancel_wakes_a_blocked_wait_and_leaves_no_trace(impl, tools, writer):
    latencies = []
    for _ in range(3):  # a loaded machine may be slow once; a missed wake-up every time
        latencies.append(cancel_blocked(impl, tools, writer))
        if latencies[-1] < CANCEL_LATENCY:
            break
    assert min(latencies) < CANCEL_LATENCY, latencies


def test_cancelled_writer_lets_the_readers_behind_it_in(impl, tools):
    rw = impl.RWMutex()
    rw.rlock()
    ctx, cancel = impl.with_cancel(impl.background())
    w = queue(tools, rw, True, ctx=ctx)
    readers = [queue(tools, rw, False) for _ in range(3)]
    cancel()
    with pytest.raises(impl.Canceled):
        w.join()
    assert tools.join_all(readers) == [True] * 3
    assert state(rw) == {"readers": 4, "writer": False, "waiters": 0, "writers_waiting": 0}
    for _ in range(4):
        rw.runlock()
    assert is_free(rw)


@pytest.mark.parametrize("writer", [True, False])
def test_context_deadline_ends_a_wait(impl, writer):
    rw = blocked(impl, writer)
    before = repr(rw)
    ctx, cancel = impl.with_timeout(impl.background(), 0.05)
    start = time.monotonic()
    with pytest.raises(impl.DeadlineExceeded) as info:
        call(rw, writer, 10, ctx=ctx)
    assert info.value is ctx.err()
    assert time.monotonic() >= ctx.deadline()
    assert time.monotonic() - start < 5.0
    assert repr(rw) == before
    cancel()


@pytest.mark.parametrize("writer", [True, False])
def test_own_timeout_first_returns_false(impl, writer):
    rw = blocked(impl, writer)
    ctx, cancel = impl.with_timeout(impl.background(), 100)
    assert call(rw, writer, 0.02, ctx=ctx) is False
    assert call(rw, writer, 0, ctx=ctx) is False
    assert ctx.err() is None
    assert not ctx._wakers
    cancel()


@pytest.mark.parametrize("writer", [True, False])
def test_wait_succeeds_with_a_context(impl, tools, writer):
    rw = blocked(impl, writer)
    ctx, cancel = impl.with_timeout(impl.background(), 100)
    w = queue(tools, rw, writer, ctx=ctx)
    if writer:
        rw.runlock()
    else:
        rw.unlock()
    assert w.join() is True
    assert ctx.err() is None
    assert not ctx._wakers
    cancel()


# --- signals ------------------------------------------------------------------------------

SIG = getattr(signal, "SIGUSR1", None)
needs_signals = pytest.mark.skipif(
    not hasattr(signal, "pthread_kill") or SIG is None, reason="needs signal.pthread_kill and SIGUSR1"
)


class Interrupted(Exception):
    """Raised by the tests' signal handler."""


class Pester:
    """Sends SIG to the main thread every 20 ms, once `ready()`, until
    `enough()`; after 3 s it calls `on_deadline()` (which releases a wait
    deaf to signals, so that the test fails instead of hanging) and stops."""

    def __init__(self, tools, ready, enough, on_deadline=lambda: None):
        self.stop = threading.Event()
        self.ready = ready
        self.enough = enough
        self.on_deadline = on_deadline
        self.worker = tools.spawn(self._run, name="pester")

    def _run(self):
        main = threading.main_thread().ident
        deadline = time.monotonic() + 3.0
        while not self.ready():
            if self.stop.wait(0.001):
                return
            if time.monotonic() > deadline:
                self.on_deadline()
                return
        while not self.stop.wait(0.02) and not self.enough():
            if time.monotonic() > deadline:
                self.on_deadline()
                return
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


def interrupt_main_call(tools, ready, fn, exc_type, on_deadline=lambda: None):
    """Run fn() in the main thread while signals arrive; the handler raises
    `exc_type` once. Returns how long it took."""
    raised = []
    armed = []  # a stray signal of an earlier Pester must not raise before fn() runs

    def handler(signum, frame):
        if armed and not raised:
            raised.append(signum)
            raise exc_type

    with with_handler(handler):
        pester = Pester(tools, ready, enough=lambda: bool(raised), on_deadline=on_deadline)
        start = time.monotonic()
        try:
            with pytest.raises(exc_type):
                armed.append(True)
                fn()
        finally:
            pester.finish()
    return time.monotonic() - start


WAYS = {
    "lock": lambda rw, t: rw.lock(t),
    "rlock": lambda rw, t: rw.rlock(t),
    "with writer": lambda rw, t: rw.writer.__enter__(),
    "with reader": lambda rw, t: rw.reader.__enter__(),
    "writer.acquire": lambda rw, t: rw.writer.acquire(True, t),
    "reader.acquire": lambda rw, t: rw.reader.acquire(timeout=t),
}


@needs_signals
@pytest.mark.main_thread
@pytest.mark.parametrize("exc_type", [Interrupted, KeyboardInterrupt])
@pytest.mark.parametrize("way", list(WAYS))
def test_signal_interrupts_a_blocked_wait_and_leaves_no_trace(impl, tools, way, exc_type):
    writer = way in ("lock", "with writer", "writer.acquire")
    rw = blocked(impl, writer)
    before = repr(rw)
    release = rw.runlock if writer else rw.unlock
    elapsed = interrupt_main_call(
        tools, lambda: state(rw)["waiters"] == 1, lambda: WAYS[way](rw, tools.TIMEOUT), exc_type,
        on_deadline=release,
    )
    assert elapsed < 2.0
    assert repr(rw) == before
    if writer:
        rw.runlock()
    else:
        rw.unlock()
    assert is_free(rw)
    assert WAYS[way](rw, tools.TIMEOUT) is True  # still usable


@needs_signals
@pytest.mark.main_thread
def test_interrupted_writer_lets_the_readers_behind_it_in(impl, tools):
    rw = impl.RWMutex()
    rw.rlock()
    readers = []

    def ready():
        # Once the main thread's lock() waits, readers queue behind it.
        if state(rw)["writers_waiting"] == 1 and not readers:
            readers.extend(tools.spawn(rw.rlock, tools.TIMEOUT) for _ in range(2))
        return len(readers) == 2 and state(rw)["waiters"] == 3

    interrupt_main_call(tools, ready, lambda: rw.lock(tools.TIMEOUT), KeyboardInterrupt, on_deadline=rw.runlock)
    assert tools.join_all(readers) == [True, True]
    assert state(rw) == {"readers": 3, "writer": False, "waiters": 0, "writers_waiting": 0}
    for _ in range(3):
        rw.runlock()
    assert is_free(rw)


@needs_signals
@pytest.mark.main_thread
@pytest.mark.parametrize("writer", [True, False])
def test_quiet_handler_lets_the_wait_continue(impl, tools, writer):
    rw = blocked(impl, writer)
    handled = []

    def enough():
        if len(handled) >= 3:  # handlers ran while the main thread waited: release it
            if writer:
                rw.runlock()
            else:
                rw.unlock()
            return True
        return False

    with with_handler(lambda signum, frame: handled.append(signum)):
        pester = Pester(tools, lambda: state(rw)["waiters"] == 1, enough,
                        on_deadline=rw.runlock if writer else rw.unlock)
        try:
            assert call(rw, writer, tools.TIMEOUT) is True
        finally:
            pester.finish()
    assert len(handled) >= 3
    if writer:
        rw.unlock()
    else:
        rw.runlock()
    assert is_free(rw)


# --- stress -------------------------------------------------------------------------------

def test_stress_exclusion_invariants(impl, tools):
    """Threads take the lock every way there is, at random, with timeouts and
    cancelled contexts; every critical section checks: never a writer with
    readers, never two writers. At the end nothing is held or queued."""
    rw = impl.RWMutex()
    guard = threading.Lock()  # the plumbing's, for the counters
    inside = {"readers": 0, "writers": 0, "max_readers": 0}
    violations = []
    ops = 300

    def enter(writer):
        with guard:
            if writer:
                if inside["writers"] or inside["readers"]:
                    violations.append(dict(inside, who="writer"))
                inside["writers"] += 1
            else:
                if inside["writers"]:
                    violations.append(dict(inside, who="reader"))
                inside["readers"] += 1
                inside["max_readers"] = max(inside["max_readers"], inside["readers"])

    def leave(writer):
        with guard:
            inside["writers" if writer else "readers"] -= 1

    def worker(seed):
        rng = random.Random(seed)
        done = 0
        for _ in range(ops):
            writer = rng.random() < 0.25
            how = rng.randrange(6)
            if how == 0:
                got = rw.try_lock() if writer else rw.try_rlock()
            elif how == 1:
                got = call(rw, writer, rng.choice([0, 0.0005, 0.002]))
            elif how == 2:
                ctx, cancel = impl.with_timeout(impl.background(), rng.choice([0.0005, 0.002, 5]))
                try:
                    got = call(rw, writer, tools.TIMEOUT, ctx=ctx)
                except impl.DeadlineExceeded:
                    got = False
                finally:
                    cancel()
            elif how == 3:
                side = rw.writer if writer else rw.reader
                with side:
                    enter(writer)
                    time.sleep(0)
                    leave(writer)
                done += 1
                continue
            else:
                got = call(rw, writer, tools.TIMEOUT)
                assert got is True
            if not got:
                continue
            enter(writer)
            if rng.random() < 0.2:
                time.sleep(0.0002)
            leave(writer)
            if writer:
                rw.unlock()
            else:
                rw.runlock()
            done += 1
        return done

    done = tools.run_threads([lambda s=s: worker(s) for s in range(8)], timeout=60)
    assert not violations, violations[:5]
    assert sum(done) > 0
    assert is_free(rw)
