"""Once, once_func, once_value: Go's sync.Once, OnceFunc and OnceValue."""

from __future__ import annotations

import functools
import gc
import re
import threading
import weakref

import pytest

NOT_CALLABLE = "^fn must be callable$"


class Payload:
    """A weak-referenceable object, to prove that something was freed."""


class CallableObject:
    """A weak-referenceable callable that records its calls."""

    def __init__(self, result=None):
        self.calls = 0
        self.result = result

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.result


def traceback_length(exc: BaseException) -> int:
    n, tb = 0, exc.__traceback__
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


# =========================================================================
# Once
# =========================================================================

def test_do_calls_fn_once_with_arguments(impl):
    once = impl.Once()
    calls = []

    def fn(*args, **kwargs):
        calls.append((args, kwargs))
        return "ignored"

    assert once.done is False
    assert once.do(fn, 1, 2, key="v") is None
    assert once.done is True
    assert calls == [((1, 2), {"key": "v"})]
    assert once.do(fn, 3) is None
    assert once.do(lambda: calls.append("other")) is None
    assert calls == [((1, 2), {"key": "v"})]


def test_do_passes_keyword_named_fn(impl):
    once = impl.Once()
    got = []
    once.do(lambda **kw: got.append(kw), fn=1, args=2)
    assert got == [{"fn": 1, "args": 2}]


def test_done_is_read_only(impl):
    once = impl.Once()
    with pytest.raises(AttributeError):
        once.done = True
    assert once.done is False


@pytest.mark.parametrize("bad", [None, 1, "fn", 1.5], ids=lambda v: type(v).__name__)
def test_do_rejects_non_callable(impl, bad):
    once = impl.Once()
    with pytest.raises(TypeError, match=NOT_CALLABLE):
        once.do(bad)
    assert once.done is False  # unchanged: the next call still runs fn
    calls = []
    once.do(calls.append, 1)
    assert calls == [1]
    # Checked on every call, even once done.
    with pytest.raises(TypeError, match=NOT_CALLABLE):
        once.do(bad)
    assert once.done is True


def test_exception_goes_to_first_caller_and_once_is_done(impl):
    once = impl.Once()
    boom = ValueError("boom")

    def fn():
        raise boom

    with pytest.raises(ValueError) as info:
        once.do(fn)
    assert info.value is boom
    assert once.done is True
    calls = []
    assert once.do(calls.append, 1) is None  # no call, no exception
    assert once.do(fn) is None
    assert calls == []


def test_done_is_false_while_fn_runs(impl):
    once = impl.Once()
    seen = []
    once.do(lambda: seen.append(once.done))
    assert seen == [False]
    assert once.done is True


# The recursion tests run in a worker thread: an implementation that
# deadlocks instead of raising fails the test rather than hanging the run.

def test_recursive_do_raises_runtime_error(impl, tools):
    once = impl.Once()
    inner_calls = []

    def fn():
        once.do(inner_calls.append, "inner")

    with pytest.raises(RuntimeError, match=r"^Once\.do called recursively$"):
        tools.spawn(once.do, fn).join()
    assert inner_calls == []
    assert once.done is True


def test_recursive_do_error_can_be_caught_inside_fn(impl, tools):
    once = impl.Once()
    caught = []

    def fn():
        try:
            once.do(lambda: None)
        except RuntimeError as exc:
            caught.append(str(exc))

    assert tools.spawn(once.do, fn).join() is None
    assert caught == ["Once.do called recursively"]
    assert once.done is True


def test_recursion_on_another_once_is_fine(impl):
    outer, inner = impl.Once(), impl.Once()
    calls = []
    outer.do(lambda: inner.do(calls.append, "inner"))
    assert calls == ["inner"]
    assert outer.done and inner.done


def test_concurrent_callers_wait_for_the_first_call(impl, tools):
    once = impl.Once()
    entered = threading.Event()
    gate = threading.Event()
    log = []
    lock = threading.Lock()

    def slow():
        entered.set()
        assert gate.wait(tools.TIMEOUT)
        with lock:
            log.append("fn finished")

    def other():
        with lock:
            log.append("other fn called")

    def caller():
        once.do(other)
        with lock:
            log.append("returned")

    first = tools.spawn(once.do, slow)
    assert entered.wait(tools.TIMEOUT)
    callers = [tools.spawn(caller) for _ in range(8)]
    tools.settle()
    try:
        assert not any(c.done for c in callers), "a caller returned while fn ran"
        assert once.done is False
        assert log == []
    finally:
        gate.set()
    first.join()
    tools.join_all(callers)
    assert log[0] == "fn finished"
    assert log[1:] == ["returned"] * 8
    assert once.done is True


def test_concurrent_callers_return_none_when_fn_raises(impl, tools):
    once = impl.Once()
    entered = threading.Event()
    gate = threading.Event()

    def slow():
        entered.set()
        assert gate.wait(tools.TIMEOUT)
        raise KeyError("first caller only")

    first = tools.spawn(once.do, slow)
    assert entered.wait(tools.TIMEOUT)
    callers = [tools.spawn(once.do, lambda: None) for _ in range(4)]
    tools.settle(0.05)
    gate.set()
    with pytest.raises(KeyError):
        first.join()
    assert tools.join_all(callers) == [None] * 4
    assert once.done is True


def test_exactly_once_under_contention(impl, tools):
    once = impl.Once()
    n = 32
    barrier = threading.Barrier(n)
    calls = []
    finished = threading.Event()

    def fn(i):
        calls.append(i)
        finished.set()

    def caller(i):
        barrier.wait(tools.TIMEOUT)
        once.do(fn, i)
        # Every caller returns only after fn has completed.
        return finished.is_set()

    assert tools.run_threads([functools.partial(caller, i) for i in range(n)]) == [True] * n
    assert len(calls) == 1
    assert once.done is True


@pytest.mark.parametrize("raises", [False, True])
def test_do_drops_fn_and_arguments_after_the_call(impl, raises):
    once = impl.Once()
    fn = CallableObject() if not raises else functools.partial(divmod, Payload(), 0)
    arg = Payload()
    fn_ref = weakref.ref(fn)
    payload_ref = weakref.ref(fn.args[0]) if raises else None
    arg_ref = weakref.ref(arg)
    if raises:
        with pytest.raises(TypeError):
            once.do(fn, arg)  # divmod(Payload(), 0, arg): wrong argument count
    else:
        once.do(fn, arg)
    del fn, arg
    gc.collect()
    assert fn_ref() is None
    assert arg_ref() is None
    if raises:
        assert payload_ref() is None


def test_once_repr(impl):
    once = impl.Once()
    prefix = r"^<cysync\.Once at 0x[0-9a-fA-F]+: "
    assert re.match(prefix + r"not done>$", repr(once)), repr(once)
    once.do(lambda: None)
    assert re.match(prefix + r"done>$", repr(once)), repr(once)


def test_once_subclass_and_weakref(impl):
    class MyOnce(impl.Once):
        pass

    once = MyOnce()
    calls = []
    once.do(calls.append, 1)
    once.do(calls.append, 2)
    assert calls == [1]
    assert once.done is True
    ref = weakref.ref(once)
    del once
    gc.collect()
    assert ref() is None


# =========================================================================
# once_func / once_value
# =========================================================================

WRAPPERS = ["once_func", "once_value"]


@pytest.mark.parametrize("name", WRAPPERS)
@pytest.mark.parametrize("bad", [None, 1, "fn"], ids=lambda v: type(v).__name__)
def test_wrapper_rejects_non_callable(impl, name, bad):
    with pytest.raises(TypeError, match=NOT_CALLABLE):
        getattr(impl, name)(bad)


def test_once_func_calls_once_and_returns_none(impl):
    fn = CallableObject(result="result")
    f = impl.once_func(fn)
    assert callable(f)
    assert fn.calls == 0  # lazy
    assert f() is None
    assert f() is None
    assert f() is None
    assert fn.calls == 1


def test_once_value_caches_the_result(impl):
    result = object()
    fn = CallableObject(result=result)
    f = impl.once_value(fn)
    assert fn.calls == 0
    assert f() is result
    assert f() is result
    assert fn.calls == 1


def test_once_value_caches_none(impl):
    fn = CallableObject(result=None)
    f = impl.once_value(fn)
    assert f() is None
    assert f() is None
    assert fn.calls == 1


@pytest.mark.parametrize("name", WRAPPERS)
def test_wrapper_caches_the_exception(impl, name):
    calls = []

    def fn():
        calls.append(1)
        raise ValueError("cached")

    f = getattr(impl, name)(fn)
    caught = []
    for _ in range(6):
        with pytest.raises(ValueError, match="^cached$") as info:
            f()
        caught.append(info.value)
    assert calls == [1]
    assert all(exc is caught[0] for exc in caught)  # the same object each time


@pytest.mark.parametrize("name", WRAPPERS)
def test_cached_exception_traceback_does_not_grow(impl, name):
    def fn():
        raise ValueError("cached")

    f = getattr(impl, name)(fn)
    lengths = []
    for _ in range(10):
        try:
            f()
        except ValueError as exc:
            lengths.append(traceback_length(exc))
            # The traceback still shows where fn raised.
            tb = exc.__traceback__
            while tb.tb_next is not None:
                tb = tb.tb_next
            assert tb.tb_frame.f_code.co_name == "fn"
    assert len(set(lengths[1:])) == 1, lengths
    assert max(lengths) <= lengths[0] + 3, lengths


@pytest.mark.parametrize("name", WRAPPERS)
def test_wrapper_recursion_raises_runtime_error(impl, tools, name):
    holder = []

    def fn():
        return holder[0]()

    f = getattr(impl, name)(fn)
    holder.append(f)
    message = rf"^{name} called recursively$"
    with pytest.raises(RuntimeError, match=message) as first:
        tools.spawn(f).join()  # in a thread: a deadlock fails, not hangs
    # The RuntimeError escaped fn, so it is the cached outcome now.
    with pytest.raises(RuntimeError, match=message) as second:
        f()
    assert second.value is first.value
    holder.clear()


@pytest.mark.parametrize("name", WRAPPERS)
@pytest.mark.parametrize("raises", [False, True])
def test_wrapper_drops_fn_after_it_ran(impl, name, raises):
    payload = Payload()
    if raises:
        fn = functools.partial(divmod, payload, 0)  # raises TypeError from C
    else:
        fn = CallableObject(result=42)
        fn.payload = payload
    fn_ref, payload_ref = weakref.ref(fn), weakref.ref(payload)
    f = getattr(impl, name)(fn)
    del fn, payload
    gc.collect()
    assert fn_ref() is not None  # not run yet: still needed
    for _ in range(2):
        if raises:
            with pytest.raises(TypeError):
                f()
        else:
            f()
    gc.collect()
    assert fn_ref() is None
    assert payload_ref() is None
    # The wrapper still answers.
    if raises:
        with pytest.raises(TypeError):
            f()
    else:
        assert f() == (42 if name == "once_value" else None)


@pytest.mark.parametrize("name", WRAPPERS)
def test_wrapper_concurrent_callers(impl, tools, name):
    n = 16
    barrier = threading.Barrier(n)
    calls = []
    result = object()
    entered = threading.Event()

    def fn():
        calls.append(1)
        entered.set()
        tools.settle(0.05)  # widen the window for a second call
        return result

    f = getattr(impl, name)(fn)

    def caller():
        barrier.wait(tools.TIMEOUT)
        return f()

    expected = result if name == "once_value" else None
    assert tools.run_threads([caller] * n) == [expected] * n
    assert calls == [1]


@pytest.mark.parametrize("name", WRAPPERS)
def test_wrapper_concurrent_callers_all_get_the_exception(impl, tools, name):
    entered = threading.Event()
    gate = threading.Event()
    boom = LookupError("boom")

    def fn():
        entered.set()
        assert gate.wait(tools.TIMEOUT)
        raise boom

    f = getattr(impl, name)(fn)

    def caller():
        try:
            f()
        except LookupError as exc:
            return exc
        return None

    first = tools.spawn(caller)
    assert entered.wait(tools.TIMEOUT)
    others = [tools.spawn(caller) for _ in range(4)]
    tools.settle(0.05)
    assert not any(w.done for w in others)
    gate.set()
    assert first.join() is boom
    assert tools.join_all(others) == [boom] * 4


@pytest.mark.parametrize("name", WRAPPERS)
def test_wrapper_type_name(impl, name):
    f = getattr(impl, name)(lambda: None)
    assert type(f).__name__ == name
    assert not hasattr(f, "__wrapped__")  # would keep fn alive
