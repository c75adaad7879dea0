"""Go 1.20/1.21's context additions: causes, after_func, without_cancel.

Modelled on Go's ``context_test.go`` (TestCause, TestCauseRace,
TestAfterFunc*, TestWithoutCancel): every test runs against both
implementations through the ``impl`` fixture.
"""

from __future__ import annotations

import gc
import threading
import time

import pytest

#: Slack for timers: a deadline must fire no earlier than due, and by this late.
TIMER_SLACK = 2.0


class Boom(Exception):
    pass


# --- with_cancel_cause ----------------------------------------------------------


def test_cancel_cause_basic(impl):
    ctx, cancel = impl.with_cancel_cause(impl.background())
    assert impl.cause(ctx) is None  # not ended
    boom = Boom("why")
    cancel(boom)
    assert isinstance(ctx.err(), impl.Canceled)  # err() stays Canceled
    assert impl.cause(ctx) is boom
    assert ctx.done().is_set()


def test_cancel_without_cause_is_the_very_err(impl):
    ctx, cancel = impl.with_cancel_cause(impl.background())
    cancel()
    assert impl.cause(ctx) is ctx.err()
    ctx2, cancel2 = impl.with_cancel(impl.background())
    cancel2()
    assert impl.cause(ctx2) is ctx2.err()
    ctx3, cancel3 = impl.with_timeout(impl.background(), 0)
    assert isinstance(ctx3.err(), impl.DeadlineExceeded)
    assert impl.cause(ctx3) is ctx3.err()
    cancel3()


def test_first_cause_wins(impl):
    ctx, cancel = impl.with_cancel_cause(impl.background())
    first, second = Boom("first"), Boom("second")
    cancel(first)
    err = ctx.err()
    cancel(second)
    cancel()
    assert impl.cause(ctx) is first
    assert ctx.err() is err
    ctx2, cancel2 = impl.with_cancel_cause(impl.background())
    cancel2()  # no cause first: cause stays err()
    cancel2(second)
    assert impl.cause(ctx2) is ctx2.err()


def test_cause_is_inherited_by_descendants(impl):
    parent, cancel = impl.with_cancel_cause(impl.background())
    child, cancel_child = impl.with_cancel(parent)
    value = impl.with_value(child, "k", 1)
    grandchild, cancel_gc = impl.with_timeout(value, 100)
    boom = Boom()
    cancel(boom)
    for ctx in (parent, child, value, grandchild):
        assert isinstance(ctx.err(), impl.Canceled)
        assert impl.cause(ctx) is boom
    # A child made after the parent ended inherits it too.
    late, cancel_late = impl.with_cancel(parent)
    assert impl.cause(late) is boom
    assert isinstance(late.err(), impl.Canceled)
    for c in (cancel_child, cancel_gc, cancel_late):
        c()


def test_child_cancelled_first_keeps_its_own_cause(impl):
    parent, cancel = impl.with_cancel_cause(impl.background())
    child, cancel_child = impl.with_cancel_cause(parent)
    mine, theirs = Boom("child"), Boom("parent")
    cancel_child(mine)
    cancel(theirs)
    assert impl.cause(child) is mine
    assert impl.cause(parent) is theirs
    child2, cancel_child2 = impl.with_cancel(impl.background())
    cancel_child2()
    assert impl.cause(child2) is child2.err()


def test_parent_without_cause_gives_each_child_its_own_err(impl):
    parent, cancel = impl.with_cancel_cause(impl.background())
    child, cancel_child = impl.with_cancel(parent)
    cancel()
    assert impl.cause(child) is child.err()
    assert impl.cause(parent) is parent.err()
    cancel_child()


@pytest.mark.parametrize("bad", ["text", 1, Boom, object()])
def test_bad_cause_is_a_type_error_and_changes_nothing(impl, bad):
    ctx, cancel = impl.with_cancel_cause(impl.background())
    with pytest.raises(TypeError, match="cause"):
        cancel(bad)
    assert ctx.err() is None
    assert impl.cause(ctx) is None
    assert not ctx.done().is_set()
    cancel()
    assert impl.cause(ctx) is ctx.err()
    with pytest.raises(TypeError, match="cause"):
        impl.with_timeout_cause(impl.background(), 1, bad)
    with pytest.raises(TypeError, match="cause"):
        impl.with_deadline_cause(impl.background(), time.monotonic() + 1, bad)


def test_base_exceptions_are_causes_too(impl):
    ctx, cancel = impl.with_cancel_cause(impl.background())
    ki = KeyboardInterrupt()
    cancel(ki)
    assert impl.cause(ctx) is ki


@pytest.mark.parametrize("bad", [None, "ctx", 1])
def test_cause_needs_a_context(impl, bad):
    with pytest.raises(TypeError):
        impl.cause(bad)


def test_cause_of_background_and_values(impl):
    bg = impl.background()
    assert impl.cause(bg) is None
    assert impl.cause(impl.with_value(bg, "k", 1)) is None


def test_cancel_cause_is_thread_safe(impl, tools):
    # Go's TestCauseRace: many cancels at once, one cause wins and every
    # descendant sees that one.
    parent, cancel = impl.with_cancel_cause(impl.background())
    children = [impl.with_cancel(parent)[0] for _ in range(50)]
    causes = [Boom(str(i)) for i in range(8)]
    barrier = threading.Barrier(len(causes))

    def go(c):
        barrier.wait(tools.TIMEOUT)
        cancel(c)

    tools.run_threads([lambda c=c: go(c) for c in causes])
    won = impl.cause(parent)
    assert won in causes
    assert all(impl.cause(c) is won for c in children)


def test_cause_through_a_blocked_wait(impl, tools):
    ctx, cancel = impl.with_cancel_cause(impl.background())
    sem = impl.Semaphore(0)
    waiter = tools.spawn(sem.acquire, True, tools.TIMEOUT, name="waiter")
    w = tools.spawn(lambda: sem.acquire(timeout=tools.TIMEOUT, ctx=ctx))
    tools.settle(0.05)
    boom = Boom()
    cancel(boom)
    with pytest.raises(impl.Canceled):
        w.join()
    assert impl.cause(ctx) is boom
    sem.release()
    assert waiter.join() is True


# --- with_timeout_cause / with_deadline_cause ---------------------------------


def test_timeout_cause(impl):
    boom = Boom("slow")
    ctx, cancel = impl.with_timeout_cause(impl.background(), 0.05, boom)
    assert ctx.deadline() is not None
    assert impl.cause(ctx) is None
    assert ctx.done().wait(TIMER_SLACK)
    assert isinstance(ctx.err(), impl.DeadlineExceeded)
    assert impl.cause(ctx) is boom
    cancel()
    assert impl.cause(ctx) is boom


def test_timeout_cause_born_expired(impl):
    boom = Boom()
    ctx, cancel = impl.with_timeout_cause(impl.background(), 0, boom)
    assert isinstance(ctx.err(), impl.DeadlineExceeded)
    assert impl.cause(ctx) is boom
    ctx2, cancel2 = impl.with_deadline_cause(impl.background(), time.monotonic() - 1, boom)
    assert isinstance(ctx2.err(), impl.DeadlineExceeded)
    assert impl.cause(ctx2) is boom


def test_deadline_cause(impl):
    boom = Boom()
    ctx, cancel = impl.with_deadline_cause(impl.background(), time.monotonic() + 0.05, boom)
    assert ctx.done().wait(TIMER_SLACK)
    assert impl.cause(ctx) is boom
    child_of_it, c2 = impl.with_cancel(ctx)
    assert impl.cause(child_of_it) is boom


def test_timeout_cause_cancelled_first_has_no_cause(impl):
    boom = Boom()
    ctx, cancel = impl.with_timeout_cause(impl.background(), 100, boom)
    cancel()
    assert isinstance(ctx.err(), impl.Canceled)
    assert impl.cause(ctx) is ctx.err()


def test_timeout_cause_descendants_inherit_it(impl):
    boom = Boom()
    ctx, cancel = impl.with_timeout_cause(impl.background(), 0.05, boom)
    child, cancel_child = impl.with_cancel(ctx)
    assert child.done().wait(TIMER_SLACK)
    assert isinstance(child.err(), impl.DeadlineExceeded)
    assert impl.cause(child) is boom
    cancel_child()
    cancel()


def test_timeout_cause_when_the_parents_deadline_comes_first(impl):
    # Go: WithDeadlineCause with a later deadline than the parent's is
    # WithCancel(parent): the cause is the parent's (here none: err()).
    parent, cancel_parent = impl.with_timeout(impl.background(), 0.05)
    ctx, cancel = impl.with_timeout_cause(parent, 100, Boom())
    assert ctx.deadline() == parent.deadline()
    assert ctx.done().wait(TIMER_SLACK)
    assert isinstance(ctx.err(), impl.DeadlineExceeded)
    assert impl.cause(ctx) is ctx.err()
    # A parent with a cause of its own passes that on.
    why = Boom("parent")
    p2, c2 = impl.with_timeout_cause(impl.background(), 0.05, why)
    ctx2, c3 = impl.with_timeout_cause(p2, 100, Boom("child"))
    assert ctx2.done().wait(TIMER_SLACK)
    assert impl.cause(ctx2) is why
    for c in (cancel, cancel_parent, c2, c3):
        c()


def test_timeout_cause_through_a_wait_that_sees_the_deadline(impl):
    # The wait may see the deadline pass before the timer thread fires it
    # (_expire): the cause is the same either way.
    boom = Boom()
    ctx, cancel = impl.with_timeout_cause(impl.background(), 0.02, boom)
    wg = impl.WaitGroup()
    wg.add(1)
    with pytest.raises(impl.DeadlineExceeded):
        wg.wait(timeout=TIMER_SLACK * 5, ctx=ctx)
    assert impl.cause(ctx) is boom
    wg.done()
    cancel()


def test_timeout_cause_none_means_no_cause(impl):
    ctx, cancel = impl.with_timeout_cause(impl.background(), 0, None)
    assert impl.cause(ctx) is ctx.err()


# --- after_func ---------------------------------------------------------------


def test_after_func_runs_once_in_its_own_thread_after_the_end(impl):
    ctx, cancel = impl.with_cancel(impl.background())
    ran = []
    done = threading.Event()

    def fn():
        ran.append((threading.current_thread(), ctx.err()))
        done.set()

    before = threading.active_count()
    stop = impl.after_func(ctx, fn)
    assert threading.active_count() == before  # no thread before the end
    assert not done.wait(0.05)
    cancel()
    assert done.wait(10)
    cancel()
    (thread, err), = ran
    assert thread is not threading.current_thread()
    assert isinstance(err, impl.Canceled)  # runs after err() is set
    thread.join(10)
    assert stop() is False  # it had started
    assert stop() is False
    assert len(ran) == 1


def test_after_func_stop_before_the_end(impl):
    ctx, cancel = impl.with_cancel(impl.background())
    ran = []
    stop = impl.after_func(ctx, lambda: ran.append(1))
    assert stop() is True
    assert stop() is False  # a second stop: nothing more to keep from starting
    cancel()
    time.sleep(0.05)  # give a wrongly started thread time to show
    assert ran == []


def test_after_func_on_an_ended_context_starts_at_once(impl):
    ctx, cancel = impl.with_cancel(impl.background())
    cancel()
    done = threading.Event()
    stop = impl.after_func(ctx, done.set)
    assert done.wait(10)
    assert stop() is False


def test_after_func_on_a_deadline(impl):
    ctx, cancel = impl.with_timeout(impl.background(), 0.05)
    got = []
    done = threading.Event()
    impl.after_func(ctx, lambda: (got.append(ctx.err()), done.set()))
    assert done.wait(TIMER_SLACK * 5)
    assert isinstance(got[0], impl.DeadlineExceeded)
    cancel()


def test_after_func_through_a_value_context_and_a_parent(impl):
    parent, cancel = impl.with_cancel(impl.background())
    value = impl.with_value(parent, "k", 1)
    done = threading.Event()
    impl.after_func(value, done.set)
    cancel()
    assert done.wait(10)


def test_after_func_on_a_context_that_never_ends(impl):
    for ctx in (impl.background(), impl.without_cancel(impl.with_cancel(impl.background())[0])):
        stop = impl.after_func(ctx, lambda: None)
        assert stop() is True
        assert stop() is False


def test_after_func_many_and_concurrent_stop(impl, tools):
    # Go's TestAfterFuncNotCalledAfterStop: stop() racing with the end:
    # every fn either ran (stop False) or was kept from running (stop True).
    for _ in range(20):
        ctx, cancel = impl.with_cancel(impl.background())
        ran = [0] * 10
        finished = threading.Semaphore(0)

        def make(i):
            def fn():
                ran[i] += 1
                finished.release()
            return fn

        stops = [impl.after_func(ctx, make(i)) for i in range(10)]
        results = [None] * 10

        def stop_all():
            for i, s in enumerate(stops):
                results[i] = s()

        tools.run_threads([stop_all, cancel])
        expected = results.count(False)
        for _ in range(expected):
            assert finished.acquire(timeout=10)
        assert all(ran[i] == (0 if results[i] else 1) for i in range(10))


def test_after_func_bad_input(impl):
    with pytest.raises(TypeError):
        impl.after_func(None, lambda: None)
    with pytest.raises(TypeError):
        impl.after_func(impl.background(), "not callable")


def test_after_func_stop_drops_the_registration(impl):
    ctx, cancel = impl.with_cancel(impl.background())
    for _ in range(100):
        impl.after_func(ctx, lambda: None)()
    wakers = getattr(ctx, "_wakers", None)
    assert not wakers  # stopped registrations are gone
    cancel()


# --- without_cancel -----------------------------------------------------------


def test_without_cancel(impl):
    key = object()
    parent, cancel = impl.with_timeout(impl.with_value(impl.background(), key, "v"), 100)
    ctx = impl.without_cancel(parent)
    assert isinstance(ctx, impl.Context)
    assert ctx.value(key) == "v"
    assert ctx.deadline() is None
    cancel()
    assert parent.err() is not None
    assert ctx.err() is None
    assert not ctx.done().is_set()
    assert ctx.done().wait(0.01) is False
    assert impl.cause(ctx) is None
    # Its children are the children of a context that never ends, values kept.
    child, cancel_child = impl.with_cancel(ctx)
    assert child.err() is None
    assert child.value(key) == "v"
    cancel_child()
    assert isinstance(child.err(), impl.Canceled)
    assert impl.with_value(ctx, "k2", 2).value("k2") == 2


def test_without_cancel_waits_do_not_end(impl):
    parent, cancel = impl.with_cancel(impl.background())
    cancel()
    ctx = impl.without_cancel(parent)
    sem = impl.Semaphore(1)
    assert sem.acquire(ctx=ctx) is True
    assert sem.acquire(timeout=0.01, ctx=ctx) is False


@pytest.mark.parametrize("bad", [None, "ctx", 1])
def test_without_cancel_needs_a_context(impl, bad):
    with pytest.raises(TypeError, match="^parent must be a Context$"):
        impl.without_cancel(bad)


def test_without_cancel_does_not_keep_the_parent_registered(impl):
    parent, cancel = impl.with_cancel(impl.background())
    ctx = impl.without_cancel(parent)
    for _ in range(100):
        impl.with_cancel(ctx)  # children of a never-ending context
    gc.collect()
    cancel()
    assert ctx.err() is None


def test_names_exported(impl):
    import cysync

    for name in ("with_cancel_cause", "with_timeout_cause", "with_deadline_cause", "cause",
                 "after_func", "without_cancel"):
        assert name in impl.__all__
        assert name in cysync.__all__
        assert callable(getattr(impl, name))
