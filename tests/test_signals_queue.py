"""Signals with other waiters around: what test_signals.py does not cover.

test_signals.py interrupts the only (or the last) waiter of each primitive.
Here the interrupted wait has company, and the company must not notice:

- WeightedSemaphore: the main thread is interrupted while queued in the
  middle of the line (waiters ahead and behind): it leaves, nothing is
  granted to it or lost, and the others are then served in their FIFO order;
  and interrupted at the head with the next waiter too large to fit: the
  smaller one behind must not overtake it.
- Semaphore / BoundedSemaphore / Event / WaitGroup: another thread waits
  beside the interrupted main thread; the release that follows must reach it
  (a wake-up given to the interrupted waiter is passed on, not lost).
- Barrier(3): the interrupted thread leaves the round; the partner still
  waiting stays in it, the barrier is not broken, and two newcomers complete
  the round with the partner.
- Once: another thread waits beside the interrupted main thread for the
  running function; both see it done, and it ran once.

Same method as test_signals.py: a helper thread sends SIGUSR1 to the main
thread every 50 ms once the waits are in place, until the handler has
raised (within a deadline, after which the wait is released so that a wait
deaf to signals fails instead of hanging).
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

pytestmark = [
    pytest.mark.skipif(
        not hasattr(signal, "pthread_kill") or not hasattr(signal, "SIGUSR1"),
        reason="needs signal.pthread_kill and SIGUSR1",
    ),
    pytest.mark.main_thread,  # signal handlers run in the main thread only
]

SIG = getattr(signal, "SIGUSR1", None)
PERIOD = 0.05
DEADLINE = 3.0
T = 10.0


class Interrupted(Exception):
    pass


@pytest.fixture
def main_thread_only():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")


def interrupt(block, ready=lambda: True, on_deadline=lambda: None):
    """Run block() in the main thread; SIGUSR1 (handler raises once) is sent
    every PERIOD once ready() is true. Asserts block() raised Interrupted."""
    raised = []
    stop = threading.Event()
    hit_deadline = []

    def handler(signum, frame):
        if not raised:
            raised.append(signum)
            raise Interrupted

    def pester():
        main = threading.main_thread().ident
        deadline = time.monotonic() + DEADLINE
        while not ready():
            if stop.wait(0.001):
                return
            if time.monotonic() > deadline:
                hit_deadline.append("not ready")
                on_deadline()
                return
        while not stop.wait(PERIOD) and not raised:
            if time.monotonic() > deadline:
                hit_deadline.append("deaf")
                on_deadline()
                return
            signal.pthread_kill(main, SIG)

    old = signal.signal(SIG, handler)
    helper = threading.Thread(target=pester, daemon=True)
    try:
        helper.start()
        with pytest.raises(Interrupted):
            block()
    finally:
        stop.set()
        helper.join(T)
        time.sleep(PERIOD)  # a signal on its way is handled by our handler
        signal.signal(SIG, old)
    assert not hit_deadline, hit_deadline


def spawn(fn, *args):
    box = {}

    def run():
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.box = box
    return t


def join(t, timeout=T):
    t.join(timeout)
    assert not t.is_alive(), "thread still blocked"
    if "error" in t.box:
        raise t.box["error"]
    return t.box.get("result")


def wait_until(pred, timeout=T):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.001)


# --- WeightedSemaphore -----------------------------------------------------------------------

def test_weighted_interrupted_mid_queue_keeps_fifo_order(impl, tools, main_thread_only):
    sem = impl.WeightedSemaphore(2)
    assert sem.acquire(2)
    order = []
    lock = threading.Lock()

    def take(name, n):
        ok = sem.acquire(n, T)
        if ok:
            with lock:
                order.append(name)
            time.sleep(0.05)  # hold a little: the next one must wait its turn
            sem.release(n)
        return ok

    ahead = spawn(take, "A", 2)
    wait_until(lambda: tools.waiters(sem) == 1)
    behind = []

    def ready():
        # Main is queued second: queue B (1 unit) and then C (2 units) behind it.
        w = tools.waiters(sem)
        if w == 2 and not behind:
            behind.append(spawn(take, "B", 1))
        if w == 3 and len(behind) == 1:
            behind.append(spawn(take, "C", 2))
        return w == 4

    interrupt(lambda: sem.acquire(1, T), ready, on_deadline=lambda: None)
    assert sem.held == 2, "units granted to the interrupted waiter or lost"
    assert tools.waiters(sem) == 3  # A, B, C still in line
    sem.release(2)
    assert join(ahead) is True
    assert [join(t) for t in behind] == [True, True]
    assert order == ["A", "B", "C"], order
    assert sem.held == 0 and tools.waiters(sem) == 0


def test_weighted_interrupted_head_bigger_next_is_not_overtaken(impl, tools, main_thread_only):
    sem = impl.WeightedSemaphore(2)
    assert sem.acquire(1)  # one free
    order = []
    threads = []

    def take(name, n):
        ok = sem.acquire(n, T)
        if ok:
            order.append(name)
            time.sleep(0.05)
            sem.release(n)
        return ok

    def ready():
        # Main (2 units) is the head: queue B (2) and then C (1) behind it.
        w = tools.waiters(sem)
        if w == 1 and not threads:
            threads.append(spawn(take, "B", 2))
        if w == 2 and len(threads) == 1:
            threads.append(spawn(take, "C", 1))
        return w == 3

    interrupt(lambda: sem.acquire(2, T), ready)
    # Main left the head; B (2) does not fit in the 1 free unit, and C (1),
    # which would fit, must not overtake it.
    time.sleep(0.1)
    assert order == [] and sem.held == 1 and tools.waiters(sem) == 2, (order, repr(sem))
    sem.release(1)
    assert [join(t) for t in threads] == [True, True]
    assert order == ["B", "C"]
    assert sem.held == 0 and tools.waiters(sem) == 0


# --- a second waiter beside the interrupted one ---------------------------------------------------

@pytest.mark.parametrize("cls_name", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_release_after_interrupt_reaches_the_other_waiter(impl, main_thread_only, cls_name):
    sem = getattr(impl, cls_name)(1)
    assert sem.acquire(False)
    other = spawn(sem.acquire, True, T)
    time.sleep(0.1)  # let it park
    interrupt(lambda: sem.acquire(True, T), on_deadline=sem.release)
    assert sem._value == 0 and other.is_alive()
    sem.release()
    assert join(other) is True
    assert sem._value == 0
    sem.release()
    assert sem._value == 1


def test_semaphore_release_racing_the_interrupt_loses_no_unit(impl, main_thread_only):
    """The unit released while the main thread is being interrupted goes to
    the other waiter, or stays in the semaphore; it never disappears."""
    for _ in range(5):
        sem = impl.Semaphore(0)
        other = spawn(sem.acquire, True, T)
        time.sleep(0.02)
        released = []

        def block():
            try:
                sem.acquire(True, T)
            except Interrupted:
                if not released:
                    sem.release()
                    released.append(1)
                raise
            pytest.fail("main acquired a unit it was never given")

        def on_deadline():
            sem.release()
            sem.release()

        interrupt(block, on_deadline=on_deadline)
        assert join(other) is True
        assert sem._value == 0


def test_event_set_after_interrupt_wakes_the_other_waiter(impl, main_thread_only):
    ev = impl.Event()
    other = spawn(ev.wait, T)
    time.sleep(0.05)
    interrupt(lambda: ev.wait(T), on_deadline=ev.set)
    assert other.is_alive() and not ev.is_set()
    ev.set()
    assert join(other) is True


def test_waitgroup_done_after_interrupt_releases_the_other_waiter(impl, main_thread_only):
    wg = impl.WaitGroup()
    wg.add(1)
    other = spawn(wg.wait, T)
    time.sleep(0.05)
    interrupt(lambda: wg.wait(T), on_deadline=wg.done)
    assert other.is_alive() and wg.count == 1
    wg.done()
    assert join(other) is True


def test_barrier_interrupted_leaves_partner_in_the_round(impl, main_thread_only):
    b = impl.Barrier(3)
    partner = spawn(b.wait, T)
    wait_until(lambda: b.n_waiting == 1)

    def on_deadline():
        b.abort()

    interrupt(lambda: b.wait(T), ready=lambda: b.n_waiting == 2, on_deadline=on_deadline)
    assert b.n_waiting == 1, "the partner should still be waiting, alone"
    assert not b.broken
    newcomers = [spawn(b.wait, T) for _ in range(2)]
    results = [join(t) for t in [partner, *newcomers]]
    assert sorted(results) == [0, 1, 2]
    assert b.n_waiting == 0 and not b.broken


def test_once_interrupted_waiter_beside_another(impl, main_thread_only):
    once = impl.Once()
    entered, gate = threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append("slow")
        entered.set()
        assert gate.wait(T)

    runner = spawn(once.do, slow)
    assert entered.wait(T)
    other = spawn(once.do, calls.append, "other")
    time.sleep(0.05)
    interrupt(lambda: once.do(calls.append, "main"), on_deadline=gate.set)
    assert once.done is False and other.is_alive()
    gate.set()
    assert join(runner) is None and join(other) is None
    once.do(calls.append, "late")
    assert calls == ["slow"] and once.done
