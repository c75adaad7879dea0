"""ErrGroup (golang.org/x/sync/errgroup), both implementations.

``cysync._errgroup.make_errgroup`` builds one class per implementation over
its WaitGroup and Semaphore; the tests reach it as ``impl.ErrGroup``.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest

import cysync._errgroup as _errgroup_module

WORKER_PREFIX = "ErrGroup-worker-"


def notes(exc):
    return list(getattr(exc, "__notes__", []))


# --- basics -------------------------------------------------------------------------


def test_class(impl):
    assert impl.ErrGroup.__module__ == "cysync"
    assert impl.ErrGroup.__qualname__ == impl.ErrGroup.__name__ == "ErrGroup"
    g = impl.ErrGroup()
    assert repr(g).startswith("<cysync.ErrGroup at 0x")
    assert "tasks=0" in repr(g)
    g.wait()


def test_results_aggregation(impl):
    # Go's idiom: each task writes its own slot; wait() then reads them all.
    def square(results, i):
        time.sleep(0.001)
        results[i] = i * i

    results = [None] * 50
    g = impl.ErrGroup()
    for i in range(50):
        assert g.go(square, results, i) is None
    assert g.wait() is None
    assert results == [i * i for i in range(50)]


def test_args_and_kwargs(impl):
    seen = []
    g = impl.ErrGroup()
    g.go(lambda *a, **k: seen.append((a, k)), 1, 2, fn=3, x=4)  # names of go's own are free
    g.wait()
    assert seen == [((1, 2), {"fn": 3, "x": 4})]


def test_fn_must_be_callable(impl):
    g = impl.ErrGroup()
    with pytest.raises(TypeError, match="^fn must be callable$"):
        g.go(None)
    with pytest.raises(TypeError, match="^fn must be callable$"):
        g.try_go(1)
    g.wait()


def test_wait_with_no_tasks(impl):
    g = impl.ErrGroup()
    assert g.wait() is None
    assert isinstance(g.ctx.err(), impl.Canceled)  # wait() returned: ctx ends


def test_ctx_is_cancelled_when_wait_returns(impl):
    g = impl.ErrGroup()
    seen = []
    g.go(lambda: seen.append(g.ctx.err()))
    g.wait()
    assert seen == [None]
    assert isinstance(g.ctx.err(), impl.Canceled)
    assert isinstance(g.ctx, impl.Context)


# --- errors -------------------------------------------------------------------------


def test_first_error_is_raised_and_cancels_ctx(impl, tools):
    g = impl.ErrGroup()
    started = threading.Barrier(4)
    outcomes = []

    def patient():
        started.wait(tools.TIMEOUT)
        outcomes.append(g.ctx.done().wait(tools.TIMEOUT))  # ends when the failure cancels ctx

    def failing():
        started.wait(tools.TIMEOUT)
        raise ValueError("boom")

    for _ in range(3):
        g.go(patient)
    g.go(failing)
    with pytest.raises(ValueError, match="^boom$") as info:
        g.wait()
    assert outcomes == [True, True, True]
    assert isinstance(g.ctx.err(), impl.Canceled)
    assert notes(info.value) == []
    # The traceback shows the task's frame.
    assert any(frame.name == "failing" for frame in __import__("traceback").extract_tb(info.value.__traceback__))


def test_tasks_see_the_cancel_through_ctx_waits(impl, tools):
    g = impl.ErrGroup()
    sem = impl.Semaphore(0)
    outcomes = []

    def blocked():
        try:
            sem.acquire(timeout=tools.TIMEOUT, ctx=g.ctx)
        except impl.Canceled:
            outcomes.append("canceled")

    for _ in range(4):
        g.go(blocked)
    tools.settle(0.05)
    g.go(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        g.wait()
    assert outcomes == ["canceled"] * 4


def test_later_errors_become_notes(impl, tools):
    g = impl.ErrGroup()
    first_done = threading.Event()

    def first():
        try:
            raise KeyError("first")
        finally:
            first_done.set()

    def later(exc):
        # The group cancels its ctx once it has recorded the first error:
        # only then is an error certain to be a "later" one.
        first_done.wait(tools.TIMEOUT)
        g.ctx.done().wait(tools.TIMEOUT)
        raise exc

    g.go(first)
    g.go(later, ValueError("second"))
    g.go(later, OSError("third"))
    with pytest.raises(KeyError) as info:
        g.wait()
    assert sorted(notes(info.value)) == [
        "also raised by another task: OSError('third')",
        "also raised by another task: ValueError('second')",
    ]


def test_notes_are_capped(impl, tools):
    g = impl.ErrGroup()
    first_done = threading.Event()

    def first():
        try:
            raise RuntimeError("first")
        finally:
            first_done.set()

    def later(i):
        first_done.wait(tools.TIMEOUT)
        g.ctx.done().wait(tools.TIMEOUT)  # the first error is recorded
        raise ValueError(i)

    g.go(first)
    for i in range(30):
        g.go(later, i)
    with pytest.raises(RuntimeError) as info:
        g.wait()
    n = notes(info.value)
    cap = _errgroup_module.MAX_NOTES
    assert len(n) == cap + 1
    assert n[-1] == f"... and {30 - cap} more exceptions raised by other tasks"
    # wait() again: the same exception, no more notes.
    with pytest.raises(RuntimeError) as again:
        g.wait()
    assert again.value is info.value
    assert len(notes(again.value)) == cap + 1


def test_base_exceptions_are_caught_too(impl):
    g = impl.ErrGroup()
    g.go(sys.exit, 3)
    with pytest.raises(SystemExit):
        g.wait()


def test_task_errors_do_not_reach_excepthook(impl, monkeypatch):
    hooked = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)
    g = impl.ErrGroup()
    g.go(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        g.wait()
    assert hooked == []


def test_wait_again_reraises_without_growing_the_traceback(impl):
    g = impl.ErrGroup()
    g.go(lambda: [][1])
    with pytest.raises(IndexError) as first:
        g.wait()
    depth = len(__import__("traceback").extract_tb(first.value.__traceback__))
    with pytest.raises(IndexError) as second:
        g.wait()
    assert second.value is first.value
    assert len(__import__("traceback").extract_tb(second.value.__traceback__)) == depth


# --- limit --------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
def test_limit_is_never_exceeded(impl, limit):
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def task():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1

    g = impl.ErrGroup(limit=limit)
    for _ in range(30):
        g.go(task)
    g.wait()
    assert peak[0] == limit


def test_go_blocks_while_limit_tasks_run(impl, tools):
    g = impl.ErrGroup(limit=1)
    release = threading.Event()
    g.go(release.wait, tools.TIMEOUT)
    second = tools.spawn(g.go, lambda: None)
    tools.settle(0.05)
    assert not second.done  # blocked in go()
    release.set()
    second.join()
    g.wait()


def test_try_go(impl, tools):
    g = impl.ErrGroup(limit=1)
    release = threading.Event()
    assert g.try_go(release.wait, tools.TIMEOUT) is True
    ran = []
    assert g.try_go(ran.append, 1) is False
    release.set()
    tools.wait_until(lambda: g.try_go(ran.append, 2))
    g.wait()
    assert ran == [2]
    unlimited = impl.ErrGroup()
    assert all(unlimited.try_go(time.sleep, 0.001) for _ in range(20))
    unlimited.wait()


def test_limit_zero_lets_nothing_start(impl):
    g = impl.ErrGroup(limit=0)
    assert g.try_go(lambda: None) is False
    g.wait()


@pytest.mark.parametrize("limit", [None, -1, -100])
def test_no_limit(impl, limit, tools):
    g = impl.ErrGroup(limit=limit)
    release = threading.Event()
    for _ in range(20):
        assert g.try_go(release.wait, tools.TIMEOUT)
    release.set()
    g.wait()


def test_set_limit(impl, tools):
    g = impl.ErrGroup()
    g.set_limit(1)
    release = threading.Event()
    g.go(release.wait, tools.TIMEOUT)
    assert g.try_go(lambda: None) is False
    with pytest.raises(RuntimeError, match="^set_limit called while tasks are running$"):
        g.set_limit(5)
    with pytest.raises(RuntimeError, match="^set_limit called while tasks are running$"):
        g.set_limit(None)
    release.set()
    tools.wait_until(lambda: "tasks=0" in repr(g))
    g.set_limit(None)  # no task is running now
    assert g.try_go(lambda: None) is True
    g.wait()


@pytest.mark.parametrize("bad", [1.5, "2"])
def test_limit_type(impl, bad):
    with pytest.raises(TypeError):
        impl.ErrGroup(limit=bad)
    g = impl.ErrGroup()
    with pytest.raises(TypeError):
        g.set_limit(bad)
    g.wait()


# --- ctx argument -------------------------------------------------------------------


def test_parent_ctx(impl, tools):
    parent, cancel = impl.with_cancel(impl.background())
    parent = impl.with_value(parent, "user", "alice")
    g = impl.ErrGroup(ctx=parent)
    assert g.ctx.value("user") == "alice"
    g.go(g.ctx.done().wait, tools.TIMEOUT)
    tools.settle(0.02)
    cancel()  # the parent's cancel reaches the group's ctx and its tasks
    g.wait()
    assert isinstance(g.ctx.err(), impl.Canceled)


def test_parent_deadline(impl):
    parent, cancel = impl.with_timeout(impl.background(), 0.05)
    g = impl.ErrGroup(ctx=parent)
    g.go(lambda: impl.Event().wait(ctx=g.ctx))
    with pytest.raises(impl.DeadlineExceeded):
        g.wait()
    cancel()


@pytest.mark.parametrize("bad", ["ctx", 1, object()])
def test_ctx_type(impl, bad):
    with pytest.raises(TypeError, match="^ctx must be a Context or None$"):
        impl.ErrGroup(ctx=bad)


# --- context manager ----------------------------------------------------------------


def test_context_manager_waits(impl):
    results = []
    workers = []
    with impl.ErrGroup() as g:
        assert isinstance(g, impl.ErrGroup)
        for i in range(5):
            g.go(lambda i=i: (time.sleep(0.01), results.append(i), workers.append(threading.current_thread())))
    assert sorted(results) == [0, 1, 2, 3, 4]
    assert all(not t.is_alive() for t in workers)
    assert all(t.name.startswith(WORKER_PREFIX) for t in workers)


def test_context_manager_raises_task_error(impl):
    with pytest.raises(ValueError, match="task"), impl.ErrGroup() as g:
        g.go(lambda: (_ for _ in ()).throw(ValueError("task")))


def test_context_manager_body_error_cancels_waits_and_propagates(impl, tools):
    seen = []

    def task(g):
        seen.append(g.ctx.done().wait(tools.TIMEOUT))  # ends when the body fails
        raise OSError("task failed too")

    with pytest.raises(KeyError) as info, impl.ErrGroup() as g:
        g.go(task, g)
        raise KeyError("body")
    assert seen == [True]  # the task was waited for
    assert notes(info.value) == ["an ErrGroup task also raised: OSError('task failed too')"]


def test_context_manager_body_error_without_task_error(impl):
    with pytest.raises(KeyError) as info, impl.ErrGroup() as g:
        g.go(lambda: None)
        raise KeyError("body")
    assert notes(info.value) == []
    assert isinstance(g.ctx.err(), impl.Canceled)


# --- single use, nesting, waiting for ever ------------------------------------------


def test_go_after_wait(impl):
    g = impl.ErrGroup()
    g.go(lambda: None)
    g.wait()
    with pytest.raises(RuntimeError, match="^ErrGroup.go called after wait$"):
        g.go(lambda: None)
    with pytest.raises(RuntimeError, match="^ErrGroup.try_go called after wait$"):
        g.try_go(lambda: None)
    assert g.wait() is None


def test_go_after_wait_gives_back_the_limit(impl):
    g = impl.ErrGroup(limit=1)
    g.wait()
    for _ in range(3):  # would block if the unit were kept
        with pytest.raises(RuntimeError):
            g.go(lambda: None)


def test_tasks_may_start_tasks(impl):
    g = impl.ErrGroup()
    seen = []
    lock = threading.Lock()

    def spawn(depth):
        with lock:
            seen.append(depth)
        if depth < 4:
            g.go(spawn, depth + 1)
            g.go(spawn, depth + 1)

    g.go(spawn, 0)
    g.wait()
    assert len(seen) == 31


def test_wait_from_a_task_is_an_error(impl):
    g = impl.ErrGroup()
    g.go(lambda: g.wait())
    with pytest.raises(RuntimeError, match="^ErrGroup.wait called from one of its own tasks$"):
        g.wait()


def test_wait_blocks_while_a_task_runs(impl, tools):
    g = impl.ErrGroup()
    release = threading.Event()
    g.go(release.wait)  # no timeout: returns only when released
    waiter = tools.spawn(g.wait)
    tools.settle(0.1)
    assert not waiter.done  # like Go: wait() waits, however long
    release.set()
    waiter.join()


def test_concurrent_waits(impl, tools):
    g = impl.ErrGroup()
    release = threading.Event()
    threads = []
    g.go(lambda: (threads.append(threading.current_thread()), release.wait(tools.TIMEOUT)))
    waiters = [tools.spawn(g.wait) for _ in range(4)]
    tools.settle(0.05)
    release.set()
    tools.join_all(waiters)
    assert all(not t.is_alive() for t in threads)


# --- the thread pool ----------------------------------------------------------------


def test_threads_are_reused(impl, tools):
    idents = set()
    g = impl.ErrGroup(limit=4)
    for _ in range(100):
        g.go(lambda: (idents.add(threading.get_ident()), time.sleep(0.0005)))
    g.wait()
    assert len(idents) <= 4
    # One task at a time: always the same (idle) worker.
    g = impl.ErrGroup()
    idents.clear()
    for _ in range(20):
        done = threading.Event()
        g.go(lambda done=done: (idents.add(threading.get_ident()), done.set()))
        assert done.wait(tools.TIMEOUT)
        tools.wait_until(lambda: "tasks=0" in repr(g))
    g.wait()
    assert len(idents) == 1


def test_no_thread_left_after_wait(impl):
    workers = set()
    lock = threading.Lock()

    def task():
        with lock:
            workers.add(threading.current_thread())
        time.sleep(0.002)

    g = impl.ErrGroup()
    for _ in range(40):
        g.go(task)
    g.wait()
    assert workers
    assert all(not t.is_alive() for t in workers)
    assert not any(t in workers for t in threading.enumerate())


def test_no_thread_left_after_a_failed_wait(impl):
    workers = []

    def task():
        workers.append(threading.current_thread())
        raise ValueError

    g = impl.ErrGroup()
    for _ in range(10):
        g.go(task)
    with pytest.raises(ValueError):
        g.wait()
    assert all(not t.is_alive() for t in workers)


def test_idle_workers_exit_without_wait(impl, tools, monkeypatch):
    monkeypatch.setattr(_errgroup_module, "IDLE_TIMEOUT", 0.05)
    workers = []
    g = impl.ErrGroup()
    for _ in range(5):
        g.go(lambda: (workers.append(threading.current_thread()), time.sleep(0.01)))
    # No wait(): a forgotten group must not keep the interpreter from exiting.
    tools.wait_until(lambda: len(workers) == 5 and all(not t.is_alive() for t in workers))
    g.go(lambda: workers.append(threading.current_thread()))  # a new worker starts
    g.wait()
    assert not workers[-1].is_alive()


def test_many_tasks_with_idle_timeouts_racing(impl, monkeypatch):
    # Workers that give up while go() promises them tasks: no task is lost.
    monkeypatch.setattr(_errgroup_module, "IDLE_TIMEOUT", 0.001)
    count = [0]
    workers = set()
    lock = threading.Lock()

    def task():
        with lock:
            count[0] += 1
            workers.add(threading.current_thread())

    g = impl.ErrGroup()
    for i in range(2000):
        g.go(task)
        if i % 100 == 0:
            time.sleep(0.002)
    g.wait()
    assert count[0] == 2000
    # Also those that exited on their idle timeout are gone once wait() returns.
    assert all(not t.is_alive() for t in workers)


# --- examples from the README -------------------------------------------------------


def test_fan_out_with_timeout_and_limit(impl):
    # Fetch-like jobs under one deadline, at most 3 at a time; the slow one
    # makes the group fail with DeadlineExceeded and the others stop early.
    parent, cancel = impl.with_timeout(impl.background(), 0.5)
    results = {}

    def fetch(ctx, name, seconds):
        impl.Event().wait(seconds, ctx=ctx)  # stands in for I/O that honours ctx
        results[name] = seconds

    try:
        with pytest.raises(impl.DeadlineExceeded), impl.ErrGroup(ctx=parent, limit=3) as g:
            for name, seconds in [("a", 0.01), ("b", 0.02), ("slow", 5.0), ("c", 0.01)]:
                g.go(fetch, g.ctx, name, seconds)
    finally:
        cancel()
    assert results == {"a": 0.01, "b": 0.02, "c": 0.01}


def test_no_worker_outlives_wait_when_go_races_go(impl, tools):
    # go() starts a new worker outside the group's lock; a go() in another
    # thread that meanwhile starts one of its own must not lose track of the
    # first (a starting thread has an ident before is_alive() is True), or
    # wait() would neither close its channel nor join it: it would outlive
    # wait() and keep the interpreter from exiting.
    workers = set()
    lock = threading.Lock()

    def task():
        with lock:
            workers.add(threading.current_thread())

    for _ in range(100):
        g = impl.ErrGroup()
        start = threading.Barrier(4)

        def feed():
            start.wait(tools.TIMEOUT)
            for _ in range(3):
                g.go(task)

        feeders = [tools.spawn(feed) for _ in range(4)]
        tools.join_all(feeders)
        g.wait()
    alive = [t for t in workers if t.is_alive()]
    assert not alive, alive
