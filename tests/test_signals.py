"""Every blocking wait is interruptible by a signal handler, like threading's.

The main thread blocks in a wait; a helper thread sends SIGUSR1 to it with
``signal.pthread_kill`` every 50 ms (there is no way to observe "parked in
the wait" directly, so it keeps sending until the main thread reacts, within
a deadline). A handler that raises must make the exception come out of the
wait, quickly, with the object left as it was (no unit lost, queue intact).
A handler that does not raise must leave the wait running: it still succeeds
when released, and a timed wait still ends on time.

If a wait ignores signals, the helper releases it at its deadline so the test
fails (too slow / no exception) instead of hanging.
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
PERIOD = 0.05  # seconds between signals
DEADLINE = 3.0  # helper gives up (and releases the wait) after this
FAST = 2.0  # an interrupted wait must have ended well before DEADLINE


class Interrupted(Exception):
    """Raised by the test's signal handler."""


# --- scenarios: one blocking wait per primitive -------------------------------------
#
# block()    the wait, run in the main thread; its name is looked for in the
#            traceback, to prove the exception came out of the wait
# release()  called from another thread: makes block() succeed
# success    what block() returns when released
# check_interrupted()  the object is as before the interrupted call
# cleanup()  release everything, join helper threads


class Scenario:
    success: object = True
    timed = True  # block_timed() exists

    def succeeded(self, result) -> bool:
        return result == self.success

    def __init__(self, impl, tools):
        self.impl = impl
        self.tools = tools
        self.workers = []

    def ready(self) -> bool:
        """True once the main thread may be blocking (checked by the pester)."""
        return True

    def cleanup(self) -> None:
        self.tools.join_all(self.workers)


class WaitGroupScenario(Scenario):
    def __init__(self, impl, tools):
        super().__init__(impl, tools)
        self.wg = impl.WaitGroup()
        self.wg.add(1)

    def block(self):
        return self.wg.wait(self.tools.TIMEOUT)

    def block_timed(self, timeout):
        return self.wg.wait(timeout)

    def release(self):
        self.wg.done()

    def check_interrupted(self):
        assert self.wg.count == 1

    def cleanup(self):
        if self.wg.count:
            self.wg.done()
        assert self.wg.wait(0) is True
        super().cleanup()


class OnceScenario(Scenario):
    """Main calls once.do() while another thread's fn is still running."""

    success = None
    timed = False

    def __init__(self, impl, tools):
        super().__init__(impl, tools)
        self.once = impl.Once()
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.main_calls = []

        def slow():
            self.entered.set()
            assert self.gate.wait(tools.TIMEOUT)

        self.workers.append(tools.spawn(self.once.do, slow))
        assert self.entered.wait(tools.TIMEOUT)

    def block(self):
        return self.once.do(self.main_calls.append, "main")

    def release(self):
        self.gate.set()

    def check_interrupted(self):
        assert self.once.done is False
        assert self.main_calls == []

    def cleanup(self):
        self.gate.set()
        super().cleanup()
        assert self.once.done is True
        self.once.do(self.main_calls.append, "late")
        assert self.main_calls == []


class SemaphoreScenario(Scenario):
    cls_name = "Semaphore"

    def __init__(self, impl, tools):
        super().__init__(impl, tools)
        self.sem = getattr(impl, self.cls_name)(1)
        assert self.sem.acquire(False)

    def block(self):
        return self.sem.acquire(timeout=self.tools.TIMEOUT)

    def block_timed(self, timeout):
        return self.sem.acquire(True, timeout)

    def release(self):
        self.sem.release()

    def check_interrupted(self):
        assert self.sem._value == 0
        # No unit lost or created: one release gives exactly one acquire.
        self.sem.release()
        assert self.sem._value == 1
        assert self.sem.acquire(False) is True
        assert self.sem.acquire(False) is False


class BoundedSemaphoreScenario(SemaphoreScenario):
    cls_name = "BoundedSemaphore"


class WeightedScenario(Scenario):
    """Main waits in acquire(1) queued behind another waiter that wants 2."""

    def __init__(self, impl, tools):
        super().__init__(impl, tools)
        self.sem = impl.WeightedSemaphore(2)
        assert self.sem.acquire(2)
        self.first_got = threading.Event()

        def first():
            ok = self.sem.acquire(2, tools.TIMEOUT)
            if ok:
                self.first_got.set()
                self.sem.release(2)
            return ok

        self.workers.append(tools.spawn(first))
        tools.wait_until(lambda: tools.waiters(self.sem) == 1)

    def ready(self):
        return self.tools.waiters(self.sem) == 2  # main is queued

    def block(self):
        ok = self.sem.acquire(1, self.tools.TIMEOUT)
        if ok:
            self.sem.release(1)
        return ok

    def block_timed(self, timeout):
        return self.sem.acquire(1, timeout)

    def release(self):
        if self.sem.held == 2 and not self.first_got.is_set():
            self.sem.release(2)

    def check_interrupted(self):
        assert self.sem.held == 2
        assert self.tools.waiters(self.sem) == 1  # main left the queue, the other stays

    def cleanup(self):
        self.release()
        assert self.tools.join_all(self.workers) == [True]
        self.tools.wait_until(lambda: self.sem.held == 0)
        assert self.tools.waiters(self.sem) == 0


class EventScenario(Scenario):
    def __init__(self, impl, tools):
        super().__init__(impl, tools)
        self.ev = impl.Event()

    def block(self):
        return self.ev.wait(self.tools.TIMEOUT)

    def block_timed(self, timeout):
        return self.ev.wait(timeout)

    def release(self):
        self.ev.set()

    def check_interrupted(self):
        assert self.ev.is_set() is False


class BarrierScenario(Scenario):
    """Main waits at a Barrier(2) for a partner that comes late."""

    timed = False  # a timed-out Barrier wait breaks the barrier and raises

    def __init__(self, impl, tools):
        super().__init__(impl, tools)
        self.barrier = impl.Barrier(2)

    def succeeded(self, result):
        return result in (0, 1)

    def block(self):
        return self.barrier.wait(self.tools.TIMEOUT)

    def release(self):
        self.workers.append(self.tools.spawn(self.barrier.wait, self.tools.TIMEOUT))

    def check_interrupted(self):
        # As with threading.Barrier: the interrupted thread left the round;
        # the barrier is not broken and a full round still works.
        assert self.barrier.n_waiting == 0
        assert self.barrier.broken is False
        partner = self.tools.spawn(self.barrier.wait, self.tools.TIMEOUT)
        assert self.barrier.wait(self.tools.TIMEOUT) in (0, 1)
        assert partner.join() in (0, 1)


SCENARIOS = {
    "waitgroup": WaitGroupScenario,
    "once": OnceScenario,
    "semaphore": SemaphoreScenario,
    "bounded_semaphore": BoundedSemaphoreScenario,
    "weighted": WeightedScenario,
    "event": EventScenario,
    "barrier": BarrierScenario,
}
TIMED = [name for name, cls in SCENARIOS.items() if cls.timed]


# --- plumbing ---------------------------------------------------------------------------

@pytest.fixture
def main_thread_only():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")


class Pester:
    """A thread sending SIGUSR1 to the main thread every PERIOD seconds.

    Starts once ``ready()`` is true (plus one period), stops when told to or
    when ``enough()`` is true, and at DEADLINE calls ``on_deadline()`` (which
    releases a wait that ignores signals) and stops.
    """

    def __init__(self, tools, ready=lambda: True, enough=lambda: False,
                 on_deadline=lambda: None):
        self.stop = threading.Event()
        self.sent = 0
        self.hit_deadline = False
        self.ready, self.enough, self.on_deadline = ready, enough, on_deadline
        self.worker = tools.spawn(self._run, name="pester")

    def _run(self):
        main = threading.main_thread().ident
        deadline = time.monotonic() + DEADLINE
        while not self.ready():
            if self.stop.wait(0.001):
                return
            if time.monotonic() > deadline:
                self.hit_deadline = True
                self.on_deadline()
                return
        while not self.stop.wait(PERIOD):
            if self.enough():
                return
            if time.monotonic() > deadline:
                self.hit_deadline = True
                self.on_deadline()
                return
            signal.pthread_kill(main, SIG)
            self.sent += 1

    def finish(self):
        self.stop.set()
        self.worker.join()
        # A signal sent just before the stop may still be on its way: give it
        # time to be handled (by our handler) before the old one is restored.
        time.sleep(PERIOD)


def handler_installed(fn):
    old = signal.signal(SIG, fn)

    class Restore:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            signal.signal(SIG, old)

    return Restore()


def raised_in_block(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "block":
            return True
        tb = tb.tb_next
    return False


# --- tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_raising_handler_interrupts_the_wait(impl, tools, main_thread_only, scenario):
    sc = SCENARIOS[scenario](impl, tools)
    raised = []

    def handler(signum, frame):
        if not raised:  # raise once; later signals (if any) are ignored
            raised.append(signum)
            raise Interrupted

    try:
        with handler_installed(handler):
            pester = Pester(tools, ready=sc.ready, enough=lambda: bool(raised),
                            on_deadline=sc.release)
            start = time.monotonic()
            try:
                with pytest.raises(Interrupted) as info:
                    sc.block()
                elapsed = time.monotonic() - start
            finally:
                pester.finish()
        assert not pester.hit_deadline, "the wait ignored the signals"
        assert elapsed < FAST, f"interrupted only after {elapsed:.2f} s"
        assert raised_in_block(info.value), "exception did not come out of the wait"
        sc.check_interrupted()
    finally:
        sc.cleanup()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_quiet_handler_lets_the_wait_continue(impl, tools, main_thread_only, scenario):
    sc = SCENARIOS[scenario](impl, tools)
    handled = []
    released_after = []

    def handler(signum, frame):
        handled.append(signum)

    def enough():
        # Handlers ran while the main thread was blocked: now release it.
        if len(handled) >= 3:
            released_after.append(len(handled))
            sc.release()
            return True
        return False

    try:
        with handler_installed(handler):
            pester = Pester(tools, ready=sc.ready, enough=enough, on_deadline=sc.release)
            try:
                result = sc.block()
            finally:
                pester.finish()
        assert not pester.hit_deadline, "signal handlers did not run during the wait"
        assert released_after and released_after[0] >= 3
        assert sc.succeeded(result), result
    finally:
        sc.cleanup()


@pytest.mark.parametrize("scenario", TIMED)
def test_quiet_handler_keeps_the_remaining_timeout(impl, tools, main_thread_only, scenario):
    sc = SCENARIOS[scenario](impl, tools)
    handled = []
    timeout = 0.25
    try:
        with handler_installed(lambda signum, frame: handled.append(signum)):
            pester = Pester(tools, ready=sc.ready, on_deadline=sc.release)
            start = time.monotonic()
            try:
                result = sc.block_timed(timeout)
                elapsed = time.monotonic() - start
            finally:
                pester.finish()
        info = f"result={result!r} elapsed={elapsed:.3f} s handled={len(handled)} sent={pester.sent}"
        assert result is False, info
        assert handled, f"no signal was handled during the wait: {info}"
        # Restarting the full timeout after each signal would never end
        # while signals keep coming every PERIOD seconds.
        assert timeout * 0.6 <= elapsed < FAST, info
        assert not pester.hit_deadline, info
        sc.check_interrupted()
    finally:
        sc.cleanup()


def test_interrupted_weighted_head_lets_the_ones_behind_proceed(impl, tools, main_thread_only):
    sem = impl.WeightedSemaphore(2)
    assert sem.acquire(1)  # 1 free: the main thread's request for 2 must wait
    behind = []
    raised = []

    def handler(signum, frame):
        if not raised:
            raised.append(signum)
            raise Interrupted

    def ready():
        # Main is queued: put a small request behind it, which fits but must
        # wait its turn. Signals start once it is queued too.
        if tools.waiters(sem) == 1 and not behind:
            behind.append(tools.spawn(sem.acquire, 1, tools.TIMEOUT))
        return tools.waiters(sem) == 2

    def on_deadline():
        if sem.held == 1:
            sem.release(1)  # let the main thread through

    with handler_installed(handler):
        pester = Pester(tools, ready=ready, enough=lambda: bool(raised),
                        on_deadline=on_deadline)
        try:
            with pytest.raises(Interrupted):
                sem.acquire(2, tools.TIMEOUT)
        finally:
            pester.finish()
    assert not pester.hit_deadline
    assert behind and behind[0].join() is True  # proceeded once the head left
    assert sem.held == 2
    assert tools.waiters(sem) == 0
    sem.release(2)
    assert sem.held == 0
