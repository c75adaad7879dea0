"""os.fork() while other threads are blocked on cysync primitives.

The parent starts threads blocked on every primitive (WaitGroup.wait with
the counter at 1, Semaphore(0).acquire, BoundedSemaphore.acquire, Event.wait,
a WeightedSemaphore waiter queued in line, a Barrier(3) with one waiter, a
Once and a once_value whose function is running) and forks. Only the
forking thread exists in the child. The child checks that

- new objects of every class work, including hand-offs between threads
  started in the child (parking and waking still work after fork);
- the objects the vanished threads were blocked on can be used without
  hanging: set the Event, release then acquire the Semaphores, done/add/wait
  on the WaitGroup; for the objects that have ``_at_fork_reinit()``
  (Semaphore, BoundedSemaphore, WeightedSemaphore, Event) after calling it
  explicitly, as a user would, and for Semaphore/Event also without it.

Every wait in the child has a timeout, calls that have none (Once.do) run in
a thread joined with a deadline, and the parent waits for the child with a
deadline too (then kills it), so a hang is a failure, never a stuck run.
The child reports each check on a pipe and exits with os._exit().

The at-fork hook of each implementation resets, in the child, exactly the
objects that had threads of the parent inside (they joined a registry on
their slow path): a WeightedSemaphore forgets its queued waiters (units are
no longer granted to them), a Barrier starts a fresh round, a Once whose
function was running becomes callable again. The tests below check each one
without calling _at_fork_reinit(), that the registry holds objects only
while a thread is inside, and that contexts, the timer thread, a Chan and
an ErrGroup work in the child.
"""

from __future__ import annotations

import os
import signal
import sysconfig
import threading
import time
import traceback
import warnings

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

CHILD_DEADLINE = 30.0  # the whole child
T = 2.0  # any single wait in the child
PARENT_T = 10.0


# --- running code in a forked child ---------------------------------------------------------

class ChildReport:
    def __init__(self, out):
        self.out = out
        self.failures = 0

    def check(self, name, cond, detail=""):
        if cond:
            self.out.write(f"ok {name}\n")
        else:
            self.failures += 1
            self.out.write(f"FAIL {name} {detail}\n")
        self.out.flush()

    def bounded(self, name, fn, timeout=T):
        """Run fn() in a daemon thread; report it as a failure if it hangs.
        Returns (finished, result or exception)."""
        box = {}

        def run():
            try:
                box["result"] = fn()
            except BaseException as exc:  # noqa: BLE001
                box["error"] = exc

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            self.check(name, False, f"still blocked after {timeout} s")
            return False, None
        if "error" in box:
            self.check(name, False, f"raised {box['error']!r}")
            return True, box["error"]
        return True, box.get("result")


def run_in_child(child, deadline=CHILD_DEADLINE):
    """Fork; the child runs child(report) and exits with its failure count.

    Returns (exit status description, report lines). Kills a child that
    has not ended by the deadline."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        # 3.12+: "This process ... is multi-threaded, use of fork() may lead to deadlocks"
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 99
        try:
            os.close(r)
            out = os.fdopen(w, "w")
            report = ChildReport(out)
            try:
                child(report)
                code = min(report.failures, 90)
            except BaseException:  # noqa: BLE001
                out.write("EXCEPTION " + traceback.format_exc().replace("\n", "\n  ") + "\n")
                code = 91
            out.flush()
        finally:
            os._exit(code)
    os.close(w)
    end = time.monotonic() + deadline
    status = None
    while status is None:
        wpid, st = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            status = st
            break
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            _, st = os.waitpid(pid, 0)
            status = ("killed after deadline", st)
            break
        time.sleep(0.01)
    with os.fdopen(r) as fh:
        lines = fh.read().splitlines()
    if isinstance(status, tuple):
        return status[0], lines
    if os.WIFEXITED(status):
        return f"exit {os.WEXITSTATUS(status)}", lines
    return f"signal {os.WTERMSIG(status)}", lines


def assert_child_ok(status, lines):
    failed = [ln for ln in lines if not ln.startswith("ok ")]
    assert status == "exit 0" and not failed, f"child {status}:\n" + "\n".join(lines)


# --- the parent's blocked threads ------------------------------------------------------------------

class Blocked:
    """Objects of impl, each with a thread of the parent blocked on it."""

    def __init__(self, impl, tools):
        self.impl = impl
        self.tools = tools
        self.workers = {}
        self.gate = threading.Event()  # lets the running Once functions finish
        self.entered = {"once": threading.Event(), "once_value": threading.Event()}

        self.wg = impl.WaitGroup()
        self.wg.add(1)
        self.sem = impl.Semaphore(0)
        self.sem_reinit = impl.Semaphore(0)
        self.bsem = impl.BoundedSemaphore(1)
        assert self.bsem.acquire(False)
        self.ev = impl.Event()
        self.ev_reinit = impl.Event()
        self.wsem = impl.WeightedSemaphore(2)
        assert self.wsem.acquire(2, 0)
        self.barrier = impl.Barrier(3)
        self.once = impl.Once()
        self.once_value = impl.once_value(lambda: self._running("once_value") or 7)

        spawn = tools.spawn
        self.workers["wg"] = spawn(self.wg.wait, PARENT_T)
        self.workers["sem"] = spawn(self.sem.acquire, True, PARENT_T)
        self.workers["sem_reinit"] = spawn(self.sem_reinit.acquire, True, PARENT_T)
        self.workers["bsem"] = spawn(self.bsem.acquire, True, PARENT_T)
        self.workers["ev"] = spawn(self.ev.wait, PARENT_T)
        self.workers["ev_reinit"] = spawn(self.ev_reinit.wait, PARENT_T)
        self.workers["wsem"] = spawn(self._wsem_waiter)
        self.workers["barrier"] = spawn(self.barrier.wait, PARENT_T)
        self.workers["once"] = spawn(self.once.do, self._running, "once")
        self.workers["once_value"] = spawn(self.once_value)
        # Wait until every thread is (observably, or very probably) blocked.
        tools.wait_until(lambda: tools.waiters(self.wsem) == 1)
        tools.wait_until(lambda: self.barrier.n_waiting == 1)
        for e in self.entered.values():
            assert e.wait(PARENT_T)
        tools.settle(0.2)
        assert not any(w.done for w in self.workers.values()), "a thread did not block"

    def _running(self, name):
        self.entered[name].set()
        assert self.gate.wait(PARENT_T)

    def _wsem_waiter(self):
        ok = self.wsem.acquire(1, PARENT_T)
        if ok:
            self.wsem.release(1)
        return ok

    def release_all(self):
        """In the parent, after the fork: everything goes on as if nothing happened."""
        self.wg.done()
        self.sem.release()
        self.sem_reinit.release()
        self.bsem.release()
        self.ev.set()
        self.ev_reinit.set()
        self.wsem.release(2)
        partners = [self.tools.spawn(self.barrier.wait, PARENT_T) for _ in range(2)]
        self.gate.set()
        results = {name: w.join() for name, w in self.workers.items()}
        assert results["wg"] is True
        assert results["sem"] is True and results["sem_reinit"] is True
        assert results["bsem"] is True
        assert results["ev"] is True and results["ev_reinit"] is True
        assert results["wsem"] is True
        assert results["once"] is None
        assert results["once_value"] == 7
        assert sorted([results["barrier"]] + [p.join() for p in partners]) == [0, 1, 2]
        self.tools.wait_until(lambda: self.wsem.held == 0)


def exercise_new_objects(impl, report):
    """Fresh objects of every class, with threads of the child."""
    def handoff(name, block, release):
        box = []
        t = threading.Thread(target=lambda: box.append(block()), daemon=True)
        t.start()
        time.sleep(0.02)
        release()
        t.join(T)
        report.check(f"new {name}: blocked thread released", not t.is_alive() and box == [True],
                     repr(box))

    wg = impl.WaitGroup()
    wg.add(1)
    handoff("WaitGroup", lambda: wg.wait(T), wg.done)
    sem = impl.Semaphore(0)
    handoff("Semaphore", lambda: sem.acquire(True, T), sem.release)
    bsem = impl.BoundedSemaphore(1)
    bsem.acquire()
    handoff("BoundedSemaphore", lambda: bsem.acquire(True, T), bsem.release)
    ev = impl.Event()
    handoff("Event", lambda: ev.wait(T), ev.set)
    ws = impl.WeightedSemaphore(3)
    ws.acquire(3)
    handoff("WeightedSemaphore", lambda: ws.acquire(2, T), lambda: ws.release(3))
    report.check("new WeightedSemaphore: held", ws.held == 2, repr(ws))
    b = impl.Barrier(2)
    handoff("Barrier", lambda: b.wait(T) in (0, 1), lambda: b.wait(T))
    once = impl.Once()
    calls = []
    once.do(calls.append, 1)
    once.do(calls.append, 2)
    report.check("new Once", calls == [1] and once.done, repr(calls))
    report.check("new once_value", impl.once_value(lambda: 5)() == 5)


# --- tests -------------------------------------------------------------------------------------------

def test_child_can_use_every_primitive(impl, tools):
    blocked = Blocked(impl, tools)
    try:
        def child(report):
            exercise_new_objects(impl, report)
            b = blocked
            # WaitGroup: counter 1, its waiter gone.
            b.wg.done()
            report.check("WaitGroup: count 0", b.wg.count == 0)
            report.check("WaitGroup: wait", b.wg.wait(T) is True)
            b.wg.add(1)
            box = []
            t = threading.Thread(target=lambda: box.append(b.wg.wait(T)), daemon=True)
            t.start()
            time.sleep(0.02)
            b.wg.done()
            t.join(T)
            report.check("WaitGroup: done() wakes a child thread", box == [True], repr(box))
            report.check("WaitGroup: reused", b.wg.wait(T) is True and b.wg.count == 0)
            # Semaphore with its waiter gone, without and with _at_fork_reinit.
            for name, sem, reinit in (("Semaphore", b.sem, False),
                                      ("Semaphore+reinit", b.sem_reinit, True)):
                if reinit:
                    sem._at_fork_reinit()
                sem.release()
                report.check(f"{name}: value 1", sem._value == 1, repr(sem))
                report.check(f"{name}: acquire", sem.acquire(True, T) is True)
                report.check(f"{name}: empty", sem.acquire(True, 0.01) is False)
                box = []
                t = threading.Thread(target=lambda s=sem: box.append(s.acquire(True, T)), daemon=True)
                t.start()
                time.sleep(0.02)
                sem.release()
                t.join(T)
                report.check(f"{name}: hand-off to a child thread", box == [True], repr(box))
            b.bsem._at_fork_reinit()
            b.bsem.release()
            report.check("BoundedSemaphore: acquire", b.bsem.acquire(True, T) is True)
            b.bsem.release()
            report.check("BoundedSemaphore: bound kept", b.bsem._value == 1)
            # Event with its waiter gone.
            for name, ev, reinit in (("Event", b.ev, False), ("Event+reinit", b.ev_reinit, True)):
                if reinit:
                    ev._at_fork_reinit()
                report.check(f"{name}: still unset", ev.wait(0.01) is False)
                box = []
                t = threading.Thread(target=lambda e=ev: box.append(e.wait(T)), daemon=True)
                t.start()
                time.sleep(0.02)
                ev.set()
                t.join(T)
                report.check(f"{name}: set wakes a child thread", box == [True], repr(box))
                ev.clear()
                report.check(f"{name}: clear", ev.wait(0) is False)
            # WeightedSemaphore: its queued waiter is gone; reinit as a user would.
            b.wsem._at_fork_reinit()
            report.check("WeightedSemaphore+reinit: queue empty", tools.waiters(b.wsem) == 0,
                         repr(b.wsem))
            report.check("WeightedSemaphore+reinit: held kept", b.wsem.held == 2, repr(b.wsem))
            b.wsem.release(2)
            report.check("WeightedSemaphore+reinit: acquire all", b.wsem.acquire(2, T) is True,
                         repr(b.wsem))
            box = []
            t = threading.Thread(target=lambda: box.append(b.wsem.acquire(1, T)), daemon=True)
            t.start()
            time.sleep(0.02)
            b.wsem.release(2)
            t.join(T)
            report.check("WeightedSemaphore+reinit: queued child thread served", box == [True],
                         f"{box!r} {b.wsem!r}")
            b.wsem.release(1)
            report.check("WeightedSemaphore+reinit: all free", b.wsem.held == 0, repr(b.wsem))
            # Barrier and Once: only what does not involve the vanished thread.
            report.check("Barrier: abort/broken", (b.barrier.abort(), b.barrier.broken)[1])
            report.check("Once: not done (its fn's thread is gone)", b.once.done is False)

        status, lines = run_in_child(child)
        assert_child_ok(status, lines)
        assert any("WeightedSemaphore+reinit: queued child thread served" in ln for ln in lines)
    finally:
        blocked.release_all()


def test_parent_objects_unaffected_by_child(impl, tools):
    """The child's use of the objects (copies) changes nothing in the parent."""
    blocked = Blocked(impl, tools)
    try:
        def child(report):
            blocked.wg.done()
            blocked.sem.release()
            blocked.ev.set()
            blocked.wsem._at_fork_reinit()
            blocked.wsem.release(2)
            blocked.barrier.abort()
            report.check("child changed its copies", blocked.wg.count == 0 and blocked.ev.is_set())

        status, lines = run_in_child(child)
        assert_child_ok(status, lines)
        assert blocked.wg.count == 1
        assert not blocked.ev.is_set()
        assert blocked.sem._value == 0
        assert blocked.wsem.held == 2 and tools.waiters(blocked.wsem) == 1
        assert blocked.barrier.n_waiting == 1 and not blocked.barrier.broken
        assert not any(w.done for w in blocked.workers.values())
    finally:
        blocked.release_all()


@pytest.mark.xfail(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")) and os.environ.get("CYSYNC_STRICT_FORK") != "1",
    strict=False,
    reason=(
        "known, not understood: on free-threaded 3.13t a child of this test sometimes never ends "
        "(seen 3 times in about 8 full 3.13t runs in the session that added the at-fork hooks and the "
        "asyncio hub; never on GIL builds); CYSYNC_STRICT_FORK=1 holds it strict for investigation"
    ),
)
def test_fork_from_a_thread_blocked_elsewhere_many_times(impl, tools):
    """Fork repeatedly while 8 threads hammer a Semaphore and an Event:
    every child can still use both (no lock or word left in a state that
    hangs the child)."""
    sem = impl.Semaphore(2)
    ev = impl.Event()
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            if sem.acquire(True, 0.01):
                sem.release()
            ev.set()
            ev.clear()
            ev.wait(0.001)

    workers = [tools.spawn(hammer) for _ in range(8)]
    try:
        for _ in range(5):
            def child(report):
                sem._at_fork_reinit()
                ev._at_fork_reinit()
                v = sem._value
                # Units held by the vanished threads at the fork stay taken: give them back.
                if v < 2:
                    sem.release(2 - v)
                report.check("Semaphore: 2 units", sem.acquire(True, T) and sem.acquire(True, T))
                report.check("Semaphore: then empty", sem.acquire(True, 0.01) is False)
                ev.set()
                report.check("Event", ev.wait(T))

            status, lines = run_in_child(child)
            assert_child_ok(status, lines)
    finally:
        stop.set()
        tools.join_all(workers)
    assert sem._value == 2


# --- what the at-fork hook resets --------------------------------------------------------------
#
# Each implementation registers os.register_at_fork(after_in_child=...): in the
# child it resets exactly the objects that had threads inside at the fork (they
# joined a registry on their slow path). Nothing below calls _at_fork_reinit().

def registered(impl):
    """How many objects of impl are in its fork registry now."""
    if hasattr(impl, "_fork_registered"):  # the C core's registry
        return impl._fork_registered()
    return len(impl._fork_registry)


def test_child_weighted_without_reinit(impl, tools):
    blocked = Blocked(impl, tools)
    try:
        def child(report):
            report.check("queue forgotten", tools.waiters(blocked.wsem) == 0, repr(blocked.wsem))
            report.check("held kept", blocked.wsem.held == 2, repr(blocked.wsem))
            blocked.wsem.release(2)
            report.check("held 0 after release", blocked.wsem.held == 0, repr(blocked.wsem))
            report.check("acquire all", blocked.wsem.acquire(2, T) is True, repr(blocked.wsem))
            # A waiter of the child queues, and is served, as usual.
            box = []
            t = threading.Thread(target=lambda: box.append(blocked.wsem.acquire(1, T)), daemon=True)
            t.start()
            tools.wait_until(lambda: tools.waiters(blocked.wsem) == 1, timeout=T)
            blocked.wsem.release(2)
            t.join(T)
            report.check("queued child thread served", box == [True], f"{box!r} {blocked.wsem!r}")
            blocked.wsem.release(1)
            report.check("all free", blocked.wsem.held == 0, repr(blocked.wsem))

        status, lines = run_in_child(child)
        assert_child_ok(status, lines)
    finally:
        blocked.release_all()


@pytest.mark.parametrize("user_reset", [False, True])
def test_child_barrier_with_waiter_at_fork(impl, tools, user_reset):
    blocked = Blocked(impl, tools)
    try:
        def child(report):
            b = blocked.barrier
            report.check("a fresh round", b.n_waiting == 0 and not b.broken, repr(b))
            if user_reset:
                b.reset()
            for rnd in range(2):
                results = []
                threads = [threading.Thread(target=lambda: results.append(b.wait(T)), daemon=True)
                           for _ in range(3)]
                for t in threads:
                    t.start()
                end = time.monotonic() + T
                for t in threads:
                    t.join(max(0.0, end - time.monotonic()))
                report.check(f"round {rnd}: 3 child threads", sorted(results) == [0, 1, 2],
                             repr(results))

        status, lines = run_in_child(child)
        assert_child_ok(status, lines)
    finally:
        blocked.release_all()


@pytest.mark.parametrize("which", ["once", "once_value"])
def test_child_once_running_at_fork(impl, tools, which):
    blocked = Blocked(impl, tools)
    try:
        def child(report):
            if which == "once":
                o = blocked.once
                calls = []
                report.bounded("Once.do does not hang", lambda: o.do(calls.append, 1), timeout=T)
                report.check("the child's fn ran", calls == [1] and o.done, repr(calls))
                o.do(calls.append, 2)
                report.check("and only once", calls == [1], repr(calls))
            else:
                w = blocked.once_value
                blocked.gate.set()  # the child's own call of fn must not wait for the parent
                finished, result = report.bounded("once_value() does not hang", w, timeout=T)
                report.check("fn computed again in the child", finished and result == 7, repr(result))
                report.check("and cached", w() == 7)

        status, lines = run_in_child(child)
        assert_child_ok(status, lines)
    finally:
        blocked.release_all()


def test_fork_from_inside_a_once_fn(impl):
    """A fork from inside fn: in the child, the forking thread goes on
    running fn, and the Once is done after it (not run twice)."""
    o = impl.Once()
    results = {}

    def fn():
        results["status"], results["lines"] = run_in_child(child)

    def child(report):
        report.check("still running", not o.done)

    o.do(fn)
    assert_child_ok(results["status"], results["lines"])
    assert o.done


def test_registry_only_on_slow_paths(impl, tools):
    """An object joins the registry while a thread is inside and leaves
    when it is gone; the fast paths never touch it."""
    base = registered(impl)
    ws = impl.WeightedSemaphore(2)
    assert ws.acquire(2, 0) and ws.try_acquire(1) is False
    ws.release(2)
    b1 = impl.Barrier(1)
    assert b1.wait(T) == 0
    once = impl.Once()
    once.do(lambda: registered(impl) == base + 1 or pytest.fail("a running Once is registered"))
    ov = impl.once_value(lambda: registered(impl))
    assert ov() == base + 1
    assert registered(impl) == base
    ws.acquire(2, 0)
    w = tools.spawn(ws.acquire, 1, T)
    tools.wait_until(lambda: tools.waiters(ws) == 1)
    assert registered(impl) == base + 1
    ws.release(2)
    assert w.join() is True
    ws.release(1)
    assert registered(impl) == base
    b = impl.Barrier(2)
    w = tools.spawn(b.wait, T)
    tools.wait_until(lambda: b.n_waiting == 1)
    assert registered(impl) == base + 1
    b.wait(T)
    w.join()
    assert registered(impl) == base
    # A timed-out waiter leaves too.
    ws.acquire(2, 0)
    assert ws.acquire(1, 0.01) is False
    assert registered(impl) == base
    ws.release(2)


def test_child_contexts_chan_timer_errgroup(impl, tools):
    """Contexts (cancel, deadline through the timer thread), a Chan, and an
    ErrGroup keep working in a child forked while the parent's timer thread
    runs and a thread of the parent is blocked on a Chan."""
    parent_ctx, parent_cancel = impl.with_timeout(impl.background(), PARENT_T)  # the timer runs
    ch = impl.Chan()
    w = tools.spawn(ch.recv, PARENT_T)
    tools.settle(0.05)
    try:
        def child(report):
            ctx, cancel = impl.with_cancel(impl.background())
            ev = impl.Event()
            box = []
            t = threading.Thread(target=lambda: box.append(_raises(lambda: ev.wait(T, ctx=ctx))),
                                 daemon=True)
            t.start()
            time.sleep(0.02)
            cancel()
            t.join(T)
            report.check("cancel ends a child's wait", box == [impl.Canceled], repr(box))
            tctx, tcancel = impl.with_timeout(parent_ctx, 0.05)
            report.check("with_timeout: the timer thread runs in the child",
                         _raises(lambda: ev.wait(T, ctx=tctx)) is impl.DeadlineExceeded)
            tcancel()
            report.check("the parent's context lives on", parent_ctx.err() is None)
            c2 = impl.Chan(1)
            c2.send(1)
            report.check("a new Chan", c2.recv(T) == 1)
            out = []
            with impl.ErrGroup(limit=2) as g:
                for i in range(10):
                    g.go(out.append, i)
            report.check("ErrGroup", sorted(out) == list(range(10)), repr(out))
            gc = impl.ErrGroup()
            gc.go(lambda: 1 / 0)
            report.check("ErrGroup error", _raises(gc.wait) is ZeroDivisionError)
            report.check("ErrGroup ctx cancelled", gc.ctx.err() is not None)

        status, lines = run_in_child(child)
        assert_child_ok(status, lines)
    finally:
        ch.send(1, PARENT_T)
        assert w.join() == 1
        parent_cancel()


def test_child_uses_a_parent_errgroup(impl, tools):
    """A group of the parent with an idle worker and a task running at the
    fork: in the child its workers are gone; new tasks get the child's own,
    and wait() does not wait for the task the parent runs."""
    g = impl.ErrGroup()
    g.go(lambda: None)
    tools.wait_until(lambda: "tasks=0" in repr(g))  # an idle worker
    release = threading.Event()
    g.go(release.wait, PARENT_T)  # a task running at the fork
    try:
        def child(report):
            out = []
            for i in range(20):
                g.go(out.append, i)
            report.bounded("wait() in the child", g.wait, timeout=T)
            report.check("the child's tasks ran", sorted(out) == list(range(20)), repr(out))

        status, lines = run_in_child(child)
        assert_child_ok(status, lines)
    finally:
        release.set()
        g.wait()


def _raises(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return type(exc)
    return None
