"""deferrable and defer: Go's defer, in both implementations.

The central property: a deferrable function behaves exactly like the same
function written with nested ``try``/``finally`` blocks, the first deferred
call in the outermost ``finally`` -- same calls in the same order, same
exception handled while each runs, same exception (or return value) out, same
``__context__``/``__cause__`` links on every exception involved.
``test_equivalent_to_nested_try_finally`` checks that against real nested
``try``/``finally`` code over every combination of a few kinds of deferred
calls and bodies.
"""

from __future__ import annotations

import functools
import gc
import inspect
import itertools
import sys
import threading
import weakref

import pytest

OUTSIDE = r"^defer\(\) called outside a @deferrable function$"
NOT_CALLABLE = "^fn must be callable$"


class Failure(Exception):
    """An exception carrying a label, to tell exceptions apart."""


# =========================================================================
# Order, return value, exceptions
# =========================================================================

def test_calls_run_last_in_first_out_after_the_body(impl):
    log = []

    @impl.deferrable
    def fn():
        assert impl.defer(log.append, "first") is None
        impl.defer(log.append, "second")
        log.append("body")
        impl.defer(log.append, "third")
        log.append("body end")

    assert fn() is None
    assert log == ["body", "body end", "third", "second", "first"]


def test_return_value_is_kept(impl):
    result = object()
    log = []

    @impl.deferrable
    def fn():
        impl.defer(log.append, 1)
        impl.defer(log.append, 2)
        return result

    assert fn() is result
    assert log == [2, 1]


def test_no_defer_at_all(impl):
    @impl.deferrable
    def fn(x):
        return x * 2

    assert fn(21) == 42


def test_calls_run_when_the_body_raises(impl):
    log = []
    error = Failure("body")

    @impl.deferrable
    def fn():
        impl.defer(log.append, "first")
        impl.defer(lambda: log.append(sys.exc_info()[1]))
        raise error

    with pytest.raises(Failure) as info:
        fn()
    assert info.value is error
    assert error.__context__ is None and error.__cause__ is None
    # The body's exception is the one being handled while they run.
    assert log == [error, "first"]
    # The traceback still leads to the body.
    assert any(entry.name == "fn" for entry in info.traceback)


def test_every_call_runs_even_if_earlier_ones_raise(impl):
    log = []
    errors = [Failure(i) for i in range(3)]

    def fail(i):
        log.append(i)
        raise errors[i]

    @impl.deferrable
    def fn():
        impl.defer(fail, 0)
        impl.defer(log.append, "middle")
        impl.defer(fail, 1)
        impl.defer(fail, 2)
        return "lost"

    with pytest.raises(Failure) as info:
        fn()
    assert log == [2, 1, "middle", 0]
    # The last one raised wins; each chains to the one raised before it.
    assert info.value is errors[0]
    assert errors[0].__context__ is errors[1]
    assert errors[1].__context__ is errors[2]
    assert errors[2].__context__ is None
    for e in errors:
        assert e.__cause__ is None and e.__suppress_context__ is False


def test_deferred_exception_chains_to_the_body_exception(impl):
    body_error = Failure("body")
    deferred_error = KeyError("deferred")

    def fail():
        raise deferred_error

    @impl.deferrable
    def fn():
        impl.defer(fail)
        raise body_error

    with pytest.raises(KeyError) as info:
        fn()
    assert info.value is deferred_error
    assert deferred_error.__context__ is body_error
    assert deferred_error.__suppress_context__ is False
    assert deferred_error.__cause__ is None
    assert body_error.__context__ is None


def test_body_exception_kept_when_no_deferred_call_raises(impl):
    outer = Failure("outer")
    body_error = Failure("body")

    @impl.deferrable
    def fn():
        impl.defer(lambda: None)
        impl.defer(print, end="")
        raise body_error

    try:
        raise outer
    except Failure:
        with pytest.raises(Failure) as info:
            fn()
        assert sys.exc_info()[1] is outer
    assert info.value is body_error
    assert body_error.__context__ is outer  # set by the raise in the body, kept


def test_deferred_call_raising_after_a_return_replaces_the_result(impl):
    error = Failure("deferred")

    def fail():
        raise error

    @impl.deferrable
    def fn():
        impl.defer(fail)
        return "result"

    with pytest.raises(Failure) as info:
        fn()
    assert info.value is error and error.__context__ is None


def test_cause_of_a_deferred_exception_is_kept(impl):
    body_error = Failure("body")
    cause = Failure("cause")
    error = Failure("deferred")

    def fail():
        raise error from cause

    @impl.deferrable
    def fn():
        impl.defer(fail)
        raise body_error

    with pytest.raises(Failure) as info:
        fn()
    assert info.value is error
    assert error.__cause__ is cause
    assert error.__suppress_context__ is True  # what `raise ... from` sets
    assert error.__context__ is body_error


def test_handled_exception_of_the_caller_is_restored(impl):
    outer = Failure("outer")
    seen = []

    def fail():
        seen.append(sys.exc_info()[1])
        raise Failure("deferred")

    @impl.deferrable
    def raising():
        impl.defer(lambda: seen.append(sys.exc_info()[1]))
        impl.defer(fail)
        raise Failure("body")

    @impl.deferrable
    def returning():
        impl.defer(lambda: seen.append(sys.exc_info()[1]))
        return 1

    try:
        raise outer
    except Failure:
        with pytest.raises(Failure, match="deferred") as info:
            raising()
        assert sys.exc_info()[1] is outer
        assert returning() == 1
        assert sys.exc_info()[1] is outer
    assert sys.exc_info() == (None, None, None)
    with pytest.raises(Failure, match="deferred"):
        raising()
    assert sys.exc_info() == (None, None, None)
    assert returning() == 1
    assert sys.exc_info() == (None, None, None)
    body_error = info.value.__context__
    assert str(body_error) == "body" and body_error.__context__ is outer
    assert seen[0] is body_error  # fail() ran with the body's exception handled
    assert seen[1] is info.value  # the next one with fail()'s
    assert seen[2] is outer       # returning(): the caller's, as in a finally
    assert seen[5] is None        # same, outside any handler


# =========================================================================
# Equivalence with nested try/finally
# =========================================================================

class BodyError(Exception):
    pass


class DeferError(Exception):
    pass


class InnerError(Exception):
    pass


class OuterError(Exception):
    pass


#: What a deferred call does. Each kind exercises a different path of the
#: interpreter's implicit chaining (see Scenario.action).
ACTION_KINDS = ("ok", "raise", "inner", "reraise", "from", "old_body",
                "old_outer", "old_outer0", "swallow")
BODY_KINDS = ("return", "raise", "inner", "old_outer")


class Scenario:
    """One run: makes the body and the deferred calls, labels every exception
    it creates, and logs what each call saw.  Two runs of the same scenario
    (nested try/finally, and deferrable) must produce the same description."""

    def __init__(self) -> None:
        self.by_label: dict[str, BaseException] = {}
        self.labels: dict[int, str] = {}
        self.log: list = []
        self.result = object()

    def new(self, cls, label):
        assert label not in self.by_label, label
        exc = cls(label)
        self.by_label[label] = exc
        self.labels[id(exc)] = label
        return exc

    def label(self, exc):
        if exc is None:
            return None
        return self.labels.get(id(exc), f"<unknown {type(exc).__name__}: {exc}>")

    def handled(self):
        return self.label(sys.exc_info()[1])

    def action(self, i, kind):
        def run():
            self.log.append((i, kind, self.handled()))
            name = f"d{i}"
            if kind == "ok":
                return "ignored"
            if kind == "raise":
                raise self.new(DeferError, name)
            if kind == "inner":
                try:
                    raise self.new(InnerError, name + ".inner")
                except InnerError:
                    raise self.new(DeferError, name)  # noqa: B904 - the implicit chain is tested
            if kind == "reraise":
                if sys.exc_info()[1] is not None:
                    raise  # bare: the exception in flight, unchanged
                return None
            if kind == "from":
                raise self.new(DeferError, name) from self.new(InnerError, name + ".cause")
            if kind.startswith("old_"):  # an exception raised before, again
                old = self.by_label.get(kind[4:])
                if old is None:
                    old = self.new(DeferError, name)
                raise old
            if kind == "swallow":
                try:
                    raise self.new(InnerError, name + ".swallowed")
                except InnerError:
                    self.log.append((i, "swallowing", self.handled()))
                return None
            raise AssertionError(kind)

        return run

    def body(self, kind):
        def run():
            self.log.append(("body", kind, self.handled()))
            if kind == "return":
                return self.result
            if kind == "raise":
                raise self.new(BodyError, "body")
            if kind == "inner":
                try:
                    raise self.new(InnerError, "body.inner")
                except InnerError:
                    raise self.new(BodyError, "body")  # noqa: B904 - the implicit chain is tested
            if kind == "old_outer":
                raise self.by_label.get("outer") or self.new(BodyError, "body")
            raise AssertionError(kind)

        return run

    def run(self, call, kinds, body_kind, outer):
        actions = [self.action(i, kind) for i, kind in enumerate(kinds)]
        body = self.body(body_kind)

        def invoke():
            try:
                value = call(body, actions)
            except BaseException as exc:  # noqa: BLE001 - described below
                return ("raised", self.label(exc))
            return ("returned", "result" if value is self.result else repr(value))

        if outer:
            # The caller is handling `outer`, itself raised while handling `outer0`.
            try:
                try:
                    raise self.new(OuterError, "outer0")
                except OuterError:
                    raise self.new(OuterError, "outer")  # noqa: B904 - the implicit chain is tested
            except OuterError:
                outcome = invoke()
                after = self.handled()
        else:
            outcome = invoke()
            after = self.handled()
        graph = {
            label: (type(exc).__name__, self.label(exc.__context__),
                    self.label(exc.__cause__), exc.__suppress_context__)
            for label, exc in self.by_label.items()
        }
        return {"outcome": outcome, "log": self.log, "exceptions": graph,
                "handled after": after}


@functools.cache
def nested_try_finally(k):
    """The function a programmer would write for k deferred calls:
    actions[0] in the outermost finally, actions[k-1] in the innermost."""
    lines = ["def reference(body, actions):"]
    for depth in range(k):
        lines.append("    " * (depth + 1) + "try:")
    lines.append("    " * (k + 1) + "return body()")
    for depth in reversed(range(k)):
        lines.append("    " * (depth + 1) + "finally:")
        lines.append("    " * (depth + 2) + f"actions[{depth}]()")
    namespace: dict = {}
    exec("\n".join(lines), namespace)  # fixed, generated text
    return namespace["reference"]


def assert_equivalent(impl, combinations):
    @impl.deferrable
    def with_defer(body, actions):
        for action in actions:
            impl.defer(action)
        return body()

    checked = 0
    mismatches = []
    for kinds, body_kind, outer in combinations:
        expected = Scenario().run(nested_try_finally(len(kinds)), kinds, body_kind, outer)
        got = Scenario().run(with_defer, kinds, body_kind, outer)
        checked += 1
        if got != expected:
            mismatches.append((kinds, body_kind, outer, expected, got))
    assert not mismatches, (
        f"{len(mismatches)} of {checked} scenarios differ from nested try/finally; "
        "first ones (deferred kinds, body, outer handled, expected, got):\n"
        + "\n".join(repr(m) for m in mismatches[:3]))
    return checked


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_equivalent_to_nested_try_finally(impl, k):
    combinations = itertools.product(
        itertools.product(ACTION_KINDS, repeat=k), BODY_KINDS, (False, True))
    assert assert_equivalent(impl, combinations) == len(ACTION_KINDS) ** k * 8


def test_equivalent_to_nested_try_finally_four_calls(impl):
    # Every raise / no-raise pattern, plus re-raising old exceptions.
    kinds = ("ok", "raise", "inner", "old_body", "old_outer0")
    combinations = itertools.product(
        itertools.product(kinds, repeat=4), ("return", "raise"), (False, True))
    assert assert_equivalent(impl, combinations) == len(kinds) ** 4 * 4


def test_reraising_an_older_exception_breaks_the_cycle(impl):
    # d1 raises the body's exception again while d2's is in flight: as with
    # nested finally blocks, the interpreter cuts d2's link to it.
    body_error = BodyError("body")
    d2_error = DeferError("d2")

    def d1():
        raise body_error

    def d2():
        raise d2_error

    @impl.deferrable
    def fn():
        impl.defer(d1)
        impl.defer(d2)
        raise body_error

    with pytest.raises(BodyError) as info:
        fn()
    assert info.value is body_error
    assert body_error.__context__ is d2_error
    assert d2_error.__context__ is None


def test_thousands_of_deferred_calls(impl):
    log = []
    n = 10_000

    @impl.deferrable
    def many():
        for i in range(n):
            impl.defer(log.append, i)
        return "done"

    assert many() == "done"
    assert log == list(reversed(range(n)))

    def fail(i):
        raise Failure(i)

    raising = 2_000

    @impl.deferrable
    def many_raising():
        for i in range(raising):
            impl.defer(fail, i)
        raise Failure("body")

    with pytest.raises(Failure) as info:
        many_raising()
    exc, seen = info.value, []
    while exc is not None:
        seen.append(exc.args[0])
        exc = exc.__context__
    assert seen == [*range(raising), "body"]


# =========================================================================
# defer() outside, wrong arguments
# =========================================================================

def test_defer_outside_a_deferrable_function(impl):
    with pytest.raises(RuntimeError, match=OUTSIDE):
        impl.defer(print)

    def plain():
        impl.defer(print)

    with pytest.raises(RuntimeError, match=OUTSIDE):
        plain()
    # The outside check comes first.
    with pytest.raises(RuntimeError, match=OUTSIDE):
        impl.defer(42)


def test_defer_outside_after_a_deferrable_call_ended(impl):
    @impl.deferrable
    def returns():
        impl.defer(print, end="")

    @impl.deferrable
    def raises():
        impl.defer(print, end="")
        raise KeyboardInterrupt

    returns()
    with pytest.raises(RuntimeError, match=OUTSIDE):
        impl.defer(print)
    with pytest.raises(KeyboardInterrupt):
        raises()
    with pytest.raises(RuntimeError, match=OUTSIDE):
        impl.defer(print)


def test_defer_not_callable(impl):
    log = []

    @impl.deferrable
    def fn():
        impl.defer(log.append, "ran")
        with pytest.raises(TypeError, match=NOT_CALLABLE):
            impl.defer(None)
        with pytest.raises(TypeError, match=NOT_CALLABLE):
            impl.defer("print", 1)
        with pytest.raises(TypeError):
            impl.defer()
        return "ok"

    assert fn() == "ok"
    assert log == ["ran"]


def test_defer_passes_args_and_kwargs(impl):
    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))

    @impl.deferrable
    def fn():
        impl.defer(record)
        impl.defer(record, 1, 2)
        impl.defer(record, a=1)
        impl.defer(record, 1, fn="named fn", b=[2])  # fn is positional-only
        impl.defer(record, *range(5), x=1, y=2)

    fn()
    assert calls == [
        ((0, 1, 2, 3, 4), {"x": 1, "y": 2}),
        ((1,), {"fn": "named fn", "b": [2]}),
        ((), {"a": 1}),
        ((1, 2), {}),
        ((), {}),
    ]


def test_arguments_are_bound_at_defer_time(impl):
    # Like Go: the arguments are evaluated when defer runs, not later.
    log = []

    @impl.deferrable
    def fn():
        x = 1
        impl.defer(log.append, x)
        x = 2
        impl.defer(lambda: log.append(x))  # a closure sees the later value
        x = 3

    fn()
    assert log == [3, 1]


def test_same_callable_deferred_twice_runs_twice(impl):
    log = []

    @impl.deferrable
    def fn():
        impl.defer(log.append, "x")
        impl.defer(log.append, "x")

    fn()
    assert log == ["x", "x"]


def test_deferred_calls_are_released_after_the_call(impl):
    class Payload:
        def method(self):
            pass

    payload = Payload()
    ref = weakref.ref(payload)

    @impl.deferrable
    def fn(p):
        impl.defer(p.method)
        impl.defer(id, p)
        impl.defer(print, end="", file=None, sep=p.__class__.__name__)

    fn(payload)
    del payload
    gc.collect()
    assert ref() is None


# =========================================================================
# deferrable(): what it accepts, metadata, methods
# =========================================================================

def test_deferrable_rejects_non_callables(impl):
    for value in (None, 42, "fn", [print]):
        with pytest.raises(TypeError, match=NOT_CALLABLE):
            impl.deferrable(value)


def test_deferrable_rejects_generator_functions(impl):
    def gen():
        yield 1

    with pytest.raises(TypeError, match="^deferrable cannot wrap a generator function$"):
        impl.deferrable(gen)
    with pytest.raises(TypeError, match="generator"):
        impl.deferrable(functools.partial(gen))


def test_deferrable_rejects_coroutine_functions(impl):
    async def coro():
        pass

    with pytest.raises(TypeError, match="^deferrable cannot wrap a coroutine function$"):
        impl.deferrable(coro)


def test_deferrable_rejects_async_generator_functions(impl):
    async def agen():
        yield 1

    with pytest.raises(TypeError,
                       match="^deferrable cannot wrap an async generator function$"):
        impl.deferrable(agen)


def test_deferrable_accepts_other_callables(impl):
    log = []

    class Callable:
        def __call__(self, x):
            impl.defer(log.append, "deferred")
            return x

    assert impl.deferrable(Callable())(5) == 5
    assert impl.deferrable(functools.partial(pow, 2))(10) == 1024
    assert impl.deferrable(len)([1, 2]) == 2
    assert log == ["deferred"]


def test_metadata_is_preserved(impl):
    def original(a, b=2, *, c: int = 3) -> int:
        """The docstring."""
        return a + b + c

    original.custom = "attribute"
    wrapped = impl.deferrable(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__qualname__ == original.__qualname__
    assert wrapped.__qualname__.endswith("test_metadata_is_preserved.<locals>.original")
    assert wrapped.__doc__ == "The docstring."
    assert wrapped.__module__ == __name__
    assert wrapped.__wrapped__ is original
    assert wrapped.custom == "attribute"
    assert wrapped.__annotations__ == original.__annotations__
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped(1) == 6


def test_methods(impl):
    class Account:
        def __init__(self):
            self.log = []

        @impl.deferrable
        def method(self, x):
            impl.defer(self.log.append, ("method done", x))
            self.log.append(("method", x))
            return self, x

        @staticmethod
        @impl.deferrable
        def static(log, x):
            impl.defer(log.append, ("static done", x))
            return x

        @classmethod
        @impl.deferrable
        def klass(cls, log, x):
            impl.defer(log.append, ("class done", cls.__name__, x))
            return cls

    a = Account()
    assert a.method(1) == (a, 1)
    assert Account.method(a, 2) == (a, 2)
    assert a.log == [("method", 1), ("method done", 1), ("method", 2), ("method done", 2)]
    log = []
    assert Account.static(log, 3) == 3
    assert a.static(log, 4) == 4
    assert Account.klass(log, 5) is Account
    assert a.klass(log, 6) is Account
    assert log == [("static done", 3), ("static done", 4),
                   ("class done", "Account", 5), ("class done", "Account", 6)]
    assert Account.method.__name__ == "method"
    assert Account.__dict__["static"].__func__.__name__ == "static"


# =========================================================================
# Nesting, recursion, threads
# =========================================================================

def test_defer_goes_to_the_innermost_call(impl):
    log = []

    @impl.deferrable
    def inner():
        impl.defer(log.append, "inner deferred")
        log.append("inner body")

    @impl.deferrable
    def outer():
        impl.defer(log.append, "outer deferred 1")
        inner()
        log.append("after inner")
        impl.defer(log.append, "outer deferred 2")

    outer()
    assert log == ["inner body", "inner deferred", "after inner",
                   "outer deferred 2", "outer deferred 1"]


def test_inner_exception_does_not_disturb_the_outer_call(impl):
    log = []

    @impl.deferrable
    def inner():
        impl.defer(log.append, "inner deferred")
        raise Failure("inner")

    @impl.deferrable
    def outer():
        impl.defer(log.append, "outer deferred")
        with pytest.raises(Failure):
            inner()
        impl.defer(log.append, "outer deferred 2")
        return "outer result"

    assert outer() == "outer result"
    assert log == ["inner deferred", "outer deferred 2", "outer deferred"]


def test_recursion_each_level_has_its_own_calls(impl):
    log = []

    @impl.deferrable
    def countdown(n):
        impl.defer(log.append, ("exit", n))
        log.append(("enter", n))
        if n:
            countdown(n - 1)
        impl.defer(log.append, ("late", n))
        if n == 2:
            raise Failure(n)

    with pytest.raises(Failure):
        countdown(3)
    assert log == [("enter", 3), ("enter", 2), ("enter", 1), ("enter", 0),
                   ("late", 0), ("exit", 0), ("late", 1), ("exit", 1),
                   ("late", 2), ("exit", 2), ("exit", 3)]


def test_deep_recursion(impl):
    count = [0]

    def bump():
        count[0] += 1

    @impl.deferrable
    def down(n):
        impl.defer(bump)
        return n if n == 0 else down(n - 1) + 1

    assert down(200) == 200
    assert count[0] == 201


def test_deferred_call_may_call_a_deferrable_function(impl):
    log = []

    @impl.deferrable
    def cleanup(name):
        impl.defer(log.append, f"{name}: cleanup's own deferred call")
        log.append(f"{name}: cleanup body")

    @impl.deferrable
    def fn():
        impl.defer(log.append, "fn: first")
        impl.defer(cleanup, "fn")
        log.append("fn: body")

    fn()
    assert log == ["fn: body", "fn: cleanup body", "fn: cleanup's own deferred call",
                   "fn: first"]


def test_defer_from_a_deferred_call_goes_to_the_enclosing_call(impl):
    # Once the body has ended, its call is no longer the innermost running one:
    # a deferred call that calls defer() registers on the enclosing deferrable
    # call, like any code running after the body; with none: RuntimeError.
    log = []

    @impl.deferrable
    def inner():
        impl.defer(lambda: impl.defer(log.append, "registered late"))

    @impl.deferrable
    def outer():
        impl.defer(log.append, "outer deferred")
        inner()
        log.append("after inner")

    outer()
    assert log == ["after inner", "registered late", "outer deferred"]
    with pytest.raises(RuntimeError, match=OUTSIDE):
        inner()


def test_base_exceptions_in_the_body_run_the_deferred_calls(impl):
    log = []

    @impl.deferrable
    def fn(exc):
        impl.defer(log.append, "deferred")
        raise exc

    for exc in (KeyboardInterrupt(), SystemExit(3), GeneratorExit(), StopIteration(7)):
        with pytest.raises(type(exc)) as info:
            fn(exc)
        assert info.value is exc
        assert log.pop() == "deferred"


def test_base_exception_in_a_deferred_call(impl):
    log = []

    def interrupt():
        raise KeyboardInterrupt

    @impl.deferrable
    def fn():
        impl.defer(log.append, "first")
        impl.defer(interrupt)
        impl.defer(log.append, "last")
        return 1

    with pytest.raises(KeyboardInterrupt):
        fn()
    assert log == ["last", "first"]
    with pytest.raises(RuntimeError, match=OUTSIDE):
        impl.defer(print)


def test_threads_have_their_own_stacks(impl, tools):
    n = 8
    barrier = threading.Barrier(n, timeout=tools.TIMEOUT)
    records = []  # (registering thread, running thread, label)
    outside_errors = []

    def record(owner, label):
        records.append((owner, threading.get_ident(), label))

    @impl.deferrable
    def work(i):
        me = threading.get_ident()
        impl.defer(record, me, (i, "first"))
        barrier.wait()  # every thread is inside its own call now
        impl.defer(record, me, (i, "second"))
        barrier.wait()
        return i

    def outsider():
        # A thread outside any deferrable call, while the others are inside.
        try:
            impl.defer(print)
        except RuntimeError as exc:
            outside_errors.append(exc)

    results = tools.run_threads([functools.partial(work, i) for i in range(n)]
                                + [outsider])
    assert results[:n] == list(range(n))
    assert len(outside_errors) == 1
    assert len(records) == 2 * n
    for owner, runner, _ in records:
        assert owner == runner
    by_thread: dict = {}
    for owner, _, label in records:
        by_thread.setdefault(owner, []).append(label)
    assert sorted(by_thread.values()) == [[(i, "second"), (i, "first")] for i in range(n)]


# =========================================================================
# The Go idioms: defer wg.Done(), a semaphore released on every path
# =========================================================================

def test_defer_wg_done(impl, tools):
    wg = impl.WaitGroup()
    results = []

    @impl.deferrable
    def worker(i):
        impl.defer(wg.done)
        if i % 2:
            raise Failure(i)  # done() runs anyway
        results.append(i)

    workers = []
    for i in range(6):
        wg.add(1)
        workers.append(tools.spawn(worker, i))
    assert wg.wait(tools.TIMEOUT) is True
    assert wg.count == 0
    for i, w in enumerate(workers):
        if i % 2:
            with pytest.raises(Failure):
                w.join()
        else:
            w.join()
    assert sorted(results) == [0, 2, 4]


def test_semaphore_released_on_every_exit_path(impl):
    sem = impl.Semaphore(2)
    wg = impl.WaitGroup()

    @impl.deferrable
    def guarded(path):
        wg.add(1)
        impl.defer(wg.done)
        assert sem.acquire(timeout=0)
        impl.defer(sem.release)
        if path == "return":
            return "returned"
        if path == "raise":
            raise Failure(path)
        if path == "interrupt":
            raise KeyboardInterrupt
        return None

    assert guarded("return") == "returned"
    with pytest.raises(Failure):
        guarded("raise")
    with pytest.raises(KeyboardInterrupt):
        guarded("interrupt")
    assert guarded("fall through") is None
    assert sem._value == 2
    assert wg.count == 0
