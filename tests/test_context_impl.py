"""Each implementation's contexts with the other's waits, the C contexts'
own properties, and cancel latency with many children.

``cysync._cysync`` makes C contexts, ``cysync.pure`` pure ones; the waits of
either take contexts of either, and a context's children are of its own
implementation whichever module's function made them.
"""

from __future__ import annotations

import importlib
import threading
import time

import pytest

import cysync._context as pure_ctx

try:
    C = importlib.import_module("cysync._cysync")
except ImportError:  # pragma: no cover - the pure-only install
    C = None

import cysync.pure as P

IMPLS = [pytest.param(P, id="py")]
if C is not None:
    IMPLS.append(pytest.param(C, id="c"))

needs_c = pytest.mark.skipif(C is None, reason="needs the C extension")


@pytest.mark.parametrize("ctx_impl", IMPLS)
@pytest.mark.parametrize("wait_impl", IMPLS)
def test_waits_take_contexts_of_either_implementation(ctx_impl, wait_impl, tools):
    ctx, cancel = ctx_impl.with_cancel(ctx_impl.background())
    sem = wait_impl.Semaphore(0)
    wg = wait_impl.WaitGroup()
    wg.add(1)
    ch = wait_impl.Chan()
    calls = [
        lambda: sem.acquire(timeout=tools.TIMEOUT, ctx=ctx),
        lambda: wg.wait(timeout=tools.TIMEOUT, ctx=ctx),
        lambda: ch.recv(timeout=tools.TIMEOUT, ctx=ctx),
    ]
    workers = [tools.spawn(call) for call in calls]
    tools.settle(0.05)
    assert not any(w.done for w in workers)
    cancel()
    for w in workers:
        with pytest.raises(pure_ctx.Canceled):
            w.join()
    # A deadline of either ends a wait of either.
    ctx2, cancel2 = ctx_impl.with_timeout(ctx_impl.background(), 0.03)
    with pytest.raises(pure_ctx.DeadlineExceeded):
        sem.acquire(timeout=tools.TIMEOUT, ctx=ctx2)
    cancel2()
    # A live context of either gets out of the way.
    ctx3, cancel3 = ctx_impl.with_cancel(ctx_impl.background())
    sem.release()
    assert sem.acquire(timeout=tools.TIMEOUT, ctx=ctx3) is True
    cancel3()


@pytest.mark.parametrize("parent_impl", IMPLS)
@pytest.mark.parametrize("fn_impl", IMPLS)
def test_children_are_of_the_parents_implementation(parent_impl, fn_impl):
    parent, cancel = parent_impl.with_cancel_cause(parent_impl.background())
    key = object()
    valued = fn_impl.with_value(parent, key, "v")
    child, cancel_child = fn_impl.with_cancel(valued)
    timed, cancel_timed = fn_impl.with_timeout_cause(child, 100, ValueError("late"))
    detached = fn_impl.without_cancel(timed)
    for ctx in (valued, child, timed, detached):
        same_pure = type(ctx) in pure_ctx._PURE_TYPES and type(parent) in pure_ctx._PURE_TYPES
        assert same_pure or type(ctx) is type(parent)
        assert ctx.value(key) == "v"
    assert timed.deadline() is not None
    boom = KeyError("why")
    cancel(boom)
    for ctx in (parent, valued, child, timed):
        assert isinstance(ctx.err(), pure_ctx.Canceled)
        assert fn_impl.cause(ctx) is boom
        assert parent_impl.cause(ctx) is boom
    assert detached.err() is None
    assert fn_impl.cause(detached) is None
    cancel_child()
    cancel_timed()


@pytest.mark.parametrize("impl", IMPLS)
def test_after_func_with_either_implementation(impl):
    ctx, cancel = impl.with_cancel(impl.background())
    done = threading.Event()
    stop = P.after_func(ctx, done.set) if impl is not P else (C or P).after_func(ctx, done.set)
    cancel()
    assert done.wait(10)
    assert stop() is False


@needs_c
def test_c_contexts_are_the_c_implementations():
    bg = C.background()
    assert bg is C.background()
    assert bg is not P.background()
    assert isinstance(bg, C.Context) and C.Context is P.Context
    ctx, cancel = C.with_cancel(bg)
    done = ctx.done()
    # done() is the C Event (so its asyncio twin works on it), read-only.
    assert isinstance(done, C.Event)
    assert not hasattr(done, "set") and not hasattr(done, "clear")
    with pytest.raises(TypeError):
        type(ctx)()
    cancel()
    assert done.is_set() and done.wait(0) is True


@needs_c
def test_c_context_err_is_made_once():
    ctx, cancel = C.with_cancel(C.background())
    errs = []
    barrier = threading.Barrier(4)

    def look():
        barrier.wait(10)
        errs.append(ctx.err())

    threads = [threading.Thread(target=look) for _ in range(3)]
    for t in threads:
        t.start()
    barrier.wait(10)
    cancel()
    for t in threads:
        t.join(10)
    err = ctx.err()
    assert all(e is None or e is err for e in errs)
    assert C.cause(ctx) is err


@pytest.mark.parametrize("impl", IMPLS)
def test_deadline_is_seen_by_err_without_anyone_waiting(impl, tools):
    # The C contexts put a deadline on the timer only once something waits
    # for it; err() alone must still see it pass.
    ctx, cancel = impl.with_timeout(impl.background(), 0.02)
    child, cancel_child = impl.with_cancel(ctx)
    tools.wait_until(lambda: child.err() is not None, timeout=5)
    assert isinstance(child.err(), impl.DeadlineExceeded)
    assert isinstance(ctx.err(), impl.DeadlineExceeded)
    cancel_child()
    cancel()


@pytest.mark.parametrize("impl", IMPLS)
def test_inherited_deadline_ends_a_childs_done_and_wakers(impl):
    parent, cancel = impl.with_timeout(impl.background(), 0.05)
    child, cancel_child = impl.with_cancel(impl.with_value(parent, "k", 1))
    woken = threading.Event()
    assert child._add_waker(woken.set) is True
    assert child.done().wait(10) is True
    assert woken.wait(10)
    assert isinstance(child.err(), impl.DeadlineExceeded)
    cancel_child()
    cancel()


@pytest.mark.parametrize("impl", IMPLS)
def test_cancel_reaches_many_children_waiters_at_once(impl, tools):
    """A parent with many children, each with a thread blocked on it: all of
    them raise soon after the parent's cancel (not one poll interval each)."""
    n = 300
    parent, cancel = impl.with_cancel(impl.background())
    sem = impl.Semaphore(0)
    children = [impl.with_cancel(parent)[0] for _ in range(n)]
    started = threading.Semaphore(0)
    raised_at = [None] * n

    def wait(i):
        started.release()
        try:
            sem.acquire(timeout=tools.TIMEOUT, ctx=children[i])
        except impl.Canceled:
            raised_at[i] = time.monotonic()

    workers = [tools.spawn(wait, i) for i in range(n)]
    for _ in range(n):
        assert started.acquire(timeout=tools.TIMEOUT)
    tools.settle(0.2)  # let them park
    t0 = time.monotonic()
    cancel()
    tools.join_all(workers)
    assert all(t is not None for t in raised_at)
    assert max(raised_at) - t0 < 2.0


@pytest.mark.parametrize("impl", IMPLS)
def test_done_is_the_implementations_event_and_read_only(impl, tools):
    for ctx, cancel in (impl.with_cancel(impl.background()), (impl.background(), None)):
        done = ctx.done()
        assert isinstance(done, impl.Event)  # so Event's other waits work on it
        assert done is ctx.done()
        assert not hasattr(done, "set") and not hasattr(done, "clear")
        with pytest.raises(AttributeError):
            done.set()
        assert not done.is_set()
        if cancel is not None:
            waiter = tools.spawn(done.wait, tools.TIMEOUT)
            cancel()
            assert waiter.join() is True
            assert done.is_set()
