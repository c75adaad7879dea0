"""Bad input never corrupts: table-driven, every public method, both implementations.

Each row of ``BAD`` names an object in a given state (made by a factory), a
call with a wrong argument, the exception class it must raise and, where the
message is cysync's own (not worded by the interpreter), a pattern for it.
For every row and both implementations the test checks that

1. the call raises exactly that class (TypeError, ValueError, OverflowError,
   or AttributeError for an assignment to a read-only property), with a
   non-empty message that matches the pattern when one is given;
2. the object's observable state (counters, flags, ``repr`` without the
   address) is what it was before the call;
3. the object still works: a short normal use of it succeeds (``exercise``).

Argument kinds covered: wrong types (float for ints, str, bytes, None,
lists, complex, arbitrary objects, objects whose ``__index__`` or
``__float__`` raise), huge ints (2**31, 2**63, 2**64, 2**200, and their
negatives), negative numbers, NaN timeouts (+ -NaN, Decimal NaN), wrong
arity and unknown keywords, non-callables where a function is expected.
``inf``/``-inf`` and huge timeouts are valid (forever / poll); ``EDGE`` checks
them only where the call cannot block (a poll, or a wait that succeeds at once).
"""

from __future__ import annotations

import decimal
import fractions
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
NAN = float("nan")
INF = float("inf")
TIMEOUT = 10.0

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class BadIndex:
    def __index__(self):
        raise ValueError("__index__ failed")


class WrongIndex:
    def __index__(self):
        return 1.5  # not an int: TypeError from the interpreter


class BadFloat:
    def __float__(self):
        raise ValueError("__float__ failed")


class Index:
    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v


class BadBool:
    def __bool__(self):
        raise ValueError("__bool__ failed")


# --- objects, their state, their normal use ---------------------------------------------

def plain_repr(obj) -> str:
    return _ADDRESS.sub("", repr(obj))


def snapshot(obj) -> tuple:
    """Everything observable about obj, compared before and after a bad call."""
    state: list[Any] = [type(obj).__name__, plain_repr(obj)]
    for attr in ("count", "done", "_value", "_initial_value", "size", "held",
                 "parties", "n_waiting", "broken"):
        if hasattr(type(obj), attr) and not callable(getattr(obj, attr)):
            state.append((attr, getattr(obj, attr)))
    if hasattr(obj, "is_set"):
        state.append(("is_set", obj.is_set()))
    return tuple(state)


def exercise(obj) -> None:
    """A short normal use of obj; it leaves obj as it found it where it can."""
    name = type(obj).__name__
    if name == "WaitGroup":
        before = obj.count
        if before > 0:
            obj.done()
            obj.add(1)
        else:
            obj.add(2)
            obj.done()
            obj.add(-1)
        assert obj.count == before
        assert obj.wait(0) is (before == 0)
    elif name in ("Semaphore", "BoundedSemaphore"):
        before = obj._value
        if before > 0:
            assert obj.acquire(False) is True
            obj.release()
        else:
            assert obj.acquire(False) is False
            if name == "Semaphore":
                obj.release()
                assert obj.acquire(timeout=0) is True
        assert obj._value == before
    elif name == "WeightedSemaphore":
        before = obj.held
        if obj.size - before >= 1:
            assert obj.acquire(1, 0) is True
            assert obj.held == before + 1
            obj.release(1)
        else:
            assert obj.try_acquire(1) is False
        assert obj.held == before
    elif name == "Event":
        was = obj.is_set()
        obj.set()
        assert obj.wait(0) is True
        obj.clear()
        assert obj.wait(0) is False
        if was:
            obj.set()
    elif name == "Barrier":
        if obj.parties == 1:
            assert obj.wait(TIMEOUT) == 0
        else:
            results = []
            others = [threading.Thread(target=lambda: results.append(obj.wait(TIMEOUT)))
                      for _ in range(obj.parties - 1)]
            for t in others:
                t.start()
            results.append(obj.wait(TIMEOUT))
            for t in others:
                t.join(TIMEOUT)
            assert sorted(results) == list(range(obj.parties))
        assert obj.n_waiting == 0 and not obj.broken
    elif name == "Once":
        calls = []
        was_done = obj.done
        obj.do(calls.append, 1)
        assert calls == ([] if was_done else [1])
        assert obj.done
    elif name in ("once_func", "once_value"):
        result = obj()
        assert result == (None if name == "once_func" else 42)
    elif name == "RWMutex":
        before = plain_repr(obj)
        if ", writer=True," in before:
            assert obj.try_rlock() is False and obj.rlock(0) is False
            obj.unlock()
            assert obj.lock(0) is True
        elif "readers=0," in before:
            assert obj.lock(0) is True
            obj.unlock()
            with obj.reader:
                assert obj.try_lock() is False
        else:
            assert obj.lock(0) is False
            assert obj.rlock(0) is True
            obj.runlock()
        assert plain_repr(obj) == before
    else:  # pragma: no cover
        raise AssertionError(f"no exercise for {name}")


# Factories: name -> (lambda impl: object in a known state)
def _sem_acquired(cls, value, taken):
    def make(m):
        s = getattr(m, cls)(value)
        for _ in range(taken):
            assert s.acquire(False)
        return s
    return make


def _wsem(size, held):
    def make(m):
        s = m.WeightedSemaphore(size)
        if held:
            assert s.acquire(held, 0)
        return s
    return make


def _wg(count):
    def make(m):
        wg = m.WaitGroup()
        if count:
            wg.add(count)
        return wg
    return make


def _event(is_set):
    def make(m):
        e = m.Event()
        if is_set:
            e.set()
        return e
    return make


def _once(done):
    def make(m):
        o = m.Once()
        if done:
            o.do(lambda: None)
        return o
    return make


def _rw(readers=0, writer=False):
    def make(m):
        rw = m.RWMutex()
        for _ in range(readers):
            assert rw.rlock(0)
        if writer:
            assert rw.lock(0)
        return rw
    return make


FACTORIES: dict[str, Callable[[Any], Any]] = {
    "wg0": _wg(0),
    "wg3": _wg(3),
    "wgmax": _wg(INT32_MAX),
    "once": _once(False),
    "once_done": _once(True),
    "once_func": lambda m: m.once_func(lambda: None),
    "once_value": lambda m: m.once_value(lambda: 42),
    "sem0": _sem_acquired("Semaphore", 0, 0),
    "sem2_1": _sem_acquired("Semaphore", 2, 1),
    "semmax": _sem_acquired("Semaphore", INT32_MAX, 0),
    "bsem3_1": _sem_acquired("BoundedSemaphore", 3, 1),
    "bsem2_0": _sem_acquired("BoundedSemaphore", 2, 0),
    "wsem10_4": _wsem(10, 4),
    "wsem3_3": _wsem(3, 3),
    "wsem0": _wsem(0, 0),
    "wsemmax_1": _wsem(INT64_MAX, 1),
    "ev_unset": _event(False),
    "ev_set": _event(True),
    "bar1": lambda m: m.Barrier(1),
    "bar2": lambda m: m.Barrier(2),
    "bar3_timeout": lambda m: m.Barrier(3, None, 5.0),
    "rw_free": lambda m: m.RWMutex(),
    "rw_read2": _rw(readers=2),
    "rw_write": _rw(writer=True),
}


@dataclass
class Bad:
    obj: str  # key of FACTORIES
    call: Callable[[Any, Any], Any]  # (obj, impl) -> ...
    exc: type[BaseException]
    msg: str | None = None  # regex for cysync's own message
    label: str = ""
    kinds: tuple = field(default_factory=tuple)

    @property
    def id(self) -> str:
        return f"{self.obj}:{self.label}"


BAD: list[Bad] = []


def bad(obj, label, call, exc, msg=None):
    BAD.append(Bad(obj, call, exc, msg, label))


# Wrong types for integer arguments: TypeError from operator.index.
NOT_INTS = {
    "float": 1.0, "float_frac": 2.5, "nan": NAN, "inf": INF, "str": "1", "bytes": b"1",
    "None": None, "list": [1], "tuple": (1,), "dict": {}, "complex": 1j, "object": object(),
    "Decimal": decimal.Decimal(1), "Fraction": fractions.Fraction(1), "WrongIndex": WrongIndex(),
}
# Wrong types for timeouts.
NOT_TIMEOUTS = {
    "str": "1", "str_nan": "nan", "bytes": b"1", "bytearray": bytearray(b"1"), "list": [1],
    "tuple": (), "dict": {}, "complex": 1j, "object": object(),
}
NAN_TIMEOUTS = {"nan": NAN, "-nan": -NAN, "Decimal_nan": decimal.Decimal("NaN")}
TIMEOUT_TYPE_MSG = r"^timeout must be a number or None$"
NAN_MSG = r"^timeout must not be NaN$"


def _each(values, fn):
    for label, value in values.items():
        fn(label, value)


# --- WaitGroup ----------------------------------------------------------------------------
for key in ("wg0", "wg3"):
    _each(NOT_INTS, lambda lb, v, key=key: bad(key, f"add({lb})", lambda o, m, v=v: o.add(v), TypeError))
    bad(key, "add(BadIndex)", lambda o, m: o.add(BadIndex()), ValueError, r"__index__ failed")
    for v in (-4, -(2**31), -(2**63), -(2**64), -(2**200)):
        bad(key, f"add({v})", lambda o, m, v=v: o.add(v), ValueError, r"^negative WaitGroup counter$")
    for v in (2**31, 2**63, 2**64, 2**200):
        bad(key, f"add({v})", lambda o, m, v=v: o.add(v), OverflowError, r"^WaitGroup counter overflow$")
    _each(NOT_TIMEOUTS, lambda lb, v, key=key: bad(key, f"wait({lb})", lambda o, m, v=v: o.wait(v),
                                                   TypeError, TIMEOUT_TYPE_MSG))
    _each(NAN_TIMEOUTS, lambda lb, v, key=key: bad(key, f"wait({lb})", lambda o, m, v=v: o.wait(v),
                                                   ValueError, NAN_MSG))
    bad(key, "wait(BadFloat)", lambda o, m: o.wait(BadFloat()), ValueError, r"__float__ failed")
    bad(key, "wait(Decimal sNaN)", lambda o, m: o.wait(decimal.Decimal("sNaN")), ValueError)
    for fn in (None, 1, "fn", [print]):
        bad(key, f"go({fn!r})", lambda o, m, fn=fn: o.go(fn), TypeError, r"^fn must be callable$")
    bad(key, "go()", lambda o, m: o.go(), TypeError)
    bad(key, "add(1, 2)", lambda o, m: o.add(1, 2), TypeError)
    bad(key, "add(x=1)", lambda o, m: o.add(x=1), TypeError)
    bad(key, "done(1)", lambda o, m: o.done(1), TypeError)
    bad(key, "wait(1, 2)", lambda o, m: o.wait(1, 2), TypeError)
    bad(key, "wait(timeot=1)", lambda o, m: o.wait(timeot=1), TypeError)
bad("wgmax", "add(1) at max", lambda o, m: o.add(1), OverflowError, r"^WaitGroup counter overflow$")
bad("wg0", "done() at zero", lambda o, m: o.done(), ValueError, r"^negative WaitGroup counter$")


def _set(attr, value=1):
    def call(o, m):
        setattr(o, attr, value)
    return call


def _del(attr):
    def call(o, m):
        delattr(o, attr)
    return call


bad("wg3", "count = 5", _set("count", 5), AttributeError)
bad("wg3", "del count", _del("count"), AttributeError)

# --- Once, once_func, once_value --------------------------------------------------------------
for key in ("once", "once_done"):
    for fn in (None, 1, "fn", 2.5, [print], b"x"):
        bad(key, f"do({fn!r})", lambda o, m, fn=fn: o.do(fn), TypeError, r"^fn must be callable$")
    bad(key, "do()", lambda o, m: o.do(), TypeError)
    bad(key, "done = True", _set("done", True), AttributeError)
    bad(key, "del done", _del("done"), AttributeError)
for name in ("once_func", "once_value"):
    bad(name, "call(1)", lambda o, m: o(1), TypeError)
    bad(name, "call(x=1)", lambda o, m: o(x=1), TypeError)
    for fn in (None, 1, "fn"):
        bad(name, f"{name}({fn!r})", lambda o, m, fn=fn, name=name: getattr(m, name)(fn), TypeError,
            r"^fn must be callable$")
    bad(name, f"{name}()", lambda o, m, name=name: getattr(m, name)(), TypeError)

# --- Semaphore, BoundedSemaphore ------------------------------------------------------------------
for key in ("sem0", "sem2_1", "bsem3_1", "bsem2_0"):
    cls = "BoundedSemaphore" if key.startswith("b") else "Semaphore"
    _each(NOT_INTS, lambda lb, v, key=key: bad(key, f"release({lb})", lambda o, m, v=v: o.release(v),
                                               TypeError))
    bad(key, "release(BadIndex)", lambda o, m: o.release(BadIndex()), ValueError, r"__index__ failed")
    for v in (0, -1, -(2**31), -(2**64), -(2**200), False):
        bad(key, f"release({v})", lambda o, m, v=v: o.release(v), ValueError, r"^n must be one or more$")
    for v in (2**31, 2**32, 2**64, 2**200):
        if cls == "Semaphore":
            bad(key, f"release({v})", lambda o, m, v=v: o.release(v), OverflowError,
                r"^Semaphore value too large$")
        else:
            bad(key, f"release({v})", lambda o, m, v=v: o.release(v), ValueError,
                r"^Semaphore released too many times$")
    _each(NOT_TIMEOUTS, lambda lb, v, key=key: bad(key, f"acquire(True, {lb})",
                                                   lambda o, m, v=v: o.acquire(True, v),
                                                   TypeError, TIMEOUT_TYPE_MSG))
    _each(NAN_TIMEOUTS, lambda lb, v, key=key: bad(key, f"acquire(timeout={lb})",
                                                   lambda o, m, v=v: o.acquire(timeout=v),
                                                   ValueError, NAN_MSG))
    for t in (0, 1, -1, NAN, "x", INF):
        bad(key, f"acquire(False, {t!r})", lambda o, m, t=t: o.acquire(False, t), ValueError,
            r"^can't specify timeout for non-blocking acquire$")
    bad(key, "acquire(BadBool)", lambda o, m: o.acquire(BadBool()), ValueError, r"__bool__ failed")
    bad(key, "acquire(1, 2, 3)", lambda o, m: o.acquire(True, 1, 3), TypeError)
    bad(key, "acquire(blockin=False)", lambda o, m: o.acquire(blockin=False), TypeError)
    bad(key, "release(1, 2)", lambda o, m: o.release(1, 2), TypeError)
    bad(key, "_value = 3", _set("_value", 3), AttributeError)
    bad(key, "del _value", _del("_value"), AttributeError)
    for v in (-1, -(2**200)):
        bad(key, f"{cls}({v})", lambda o, m, v=v, cls=cls: getattr(m, cls)(v), ValueError,
            r"^semaphore initial value must be >= 0$")
    for v in (2**31, 2**64, 2**200):
        bad(key, f"{cls}({v})", lambda o, m, v=v, cls=cls: getattr(m, cls)(v), OverflowError,
            r"^Semaphore value too large$")
    _each(NOT_INTS, lambda lb, v, key=key, cls=cls: bad(
        key, f"{cls}({lb})", lambda o, m, v=v: getattr(m, cls)(v), TypeError))
bad("semmax", "release(1) at max", lambda o, m: o.release(1), OverflowError, r"^Semaphore value too large$")
bad("semmax", "__exit__ at max", lambda o, m: o.__exit__(None, None, None), OverflowError,
    r"^Semaphore value too large$")
bad("bsem3_1", "release(2) past bound", lambda o, m: o.release(2), ValueError,
    r"^Semaphore released too many times$")
bad("bsem2_0", "__exit__ past bound", lambda o, m: o.__exit__(None, None, None), ValueError,
    r"^Semaphore released too many times$")
bad("bsem3_1", "_initial_value = 9", _set("_initial_value", 9), AttributeError)

# --- WeightedSemaphore --------------------------------------------------------------------------------
for key in ("wsem10_4", "wsem3_3", "wsem0", "wsemmax_1"):
    for method in ("acquire", "try_acquire", "release"):
        _each(NOT_INTS, lambda lb, v, key=key, method=method: bad(
            key, f"{method}({lb})", lambda o, m, v=v: getattr(o, method)(v), TypeError))
        bad(key, f"{method}(BadIndex)", lambda o, m, method=method: getattr(o, method)(BadIndex()),
            ValueError, r"__index__ failed")
        for v in (-1, -(2**63), -(2**64), -(2**200)):
            bad(key, f"{method}({v})", lambda o, m, v=v, method=method: getattr(o, method)(v),
                ValueError, r"^n must be >= 0$")
    for v in [11, 2**31, INT64_MAX, 2**63, 2**64, 2**200]:
        if key == "wsemmax_1" and v <= INT64_MAX:
            continue  # not beyond a size of 2**63-1
        bad(key, f"acquire({v}) > size", lambda o, m, v=v: o.acquire(v, 0), ValueError,
            r"^n exceeds semaphore size$")
        bad(key, f"acquire({v}, None) > size", lambda o, m, v=v: o.acquire(v), ValueError,
            r"^n exceeds semaphore size$")
        bad(key, f"release({v}) > held", lambda o, m, v=v: o.release(v), ValueError,
            r"^semaphore: released more than held$")
    _each(NOT_TIMEOUTS, lambda lb, v, key=key: bad(key, f"acquire(1, {lb})",
                                                   lambda o, m, v=v: o.acquire(1, v),
                                                   TypeError, TIMEOUT_TYPE_MSG))
    _each(NAN_TIMEOUTS, lambda lb, v, key=key: bad(key, f"acquire(0, timeout={lb})",
                                                   lambda o, m, v=v: o.acquire(0, timeout=v),
                                                   ValueError, NAN_MSG))
    bad(key, "acquire(1, 2, 3)", lambda o, m: o.acquire(1, 2, 3), TypeError)
    bad(key, "try_acquire(1, 0)", lambda o, m: o.try_acquire(1, 0), TypeError)
    bad(key, "release(n=1, x=2)", lambda o, m: o.release(n=1, x=2), TypeError)
    for attr in ("size", "held"):
        bad(key, f"{attr} = 1", _set(attr, 1), AttributeError)
        bad(key, f"del {attr}", _del(attr), AttributeError)
    for v in (-1, -(2**200)):
        bad(key, f"WeightedSemaphore({v})", lambda o, m, v=v: m.WeightedSemaphore(v), ValueError,
            r"^semaphore size must be >= 0$")
    for v in (2**63, 2**64, 2**200):
        bad(key, f"WeightedSemaphore({v})", lambda o, m, v=v: m.WeightedSemaphore(v), OverflowError,
            r"^semaphore size too large$")
    _each(NOT_INTS, lambda lb, v, key=key: bad(key, f"WeightedSemaphore({lb})",
                                               lambda o, m, v=v: m.WeightedSemaphore(v), TypeError))
bad("wsem10_4", "release(5) > held", lambda o, m: o.release(5), ValueError,
    r"^semaphore: released more than held$")
bad("wsem0", "__exit__ with nothing held", lambda o, m: o.__exit__(None, None, None), ValueError,
    r"^semaphore: released more than held$")
bad("wsem0", "acquire(1) on size 0", lambda o, m: o.acquire(1), ValueError, r"^n exceeds semaphore size$")
bad("wsem0", "with on size 0", lambda o, m: o.__enter__(), ValueError, r"^n exceeds semaphore size$")

# --- Event ------------------------------------------------------------------------------------------
for key in ("ev_unset", "ev_set"):
    _each(NOT_TIMEOUTS, lambda lb, v, key=key: bad(key, f"wait({lb})", lambda o, m, v=v: o.wait(v),
                                                   TypeError, TIMEOUT_TYPE_MSG))
    _each(NAN_TIMEOUTS, lambda lb, v, key=key: bad(key, f"wait({lb})", lambda o, m, v=v: o.wait(v),
                                                   ValueError, NAN_MSG))
    bad(key, "wait(BadFloat)", lambda o, m: o.wait(BadFloat()), ValueError, r"__float__ failed")
    bad(key, "set(1)", lambda o, m: o.set(1), TypeError)
    bad(key, "clear(1)", lambda o, m: o.clear(1), TypeError)
    bad(key, "is_set(1)", lambda o, m: o.is_set(1), TypeError)
    bad(key, "wait(1, 2)", lambda o, m: o.wait(1, 2), TypeError)
    bad(key, "wait(timout=1)", lambda o, m: o.wait(timout=1), TypeError)

# --- Barrier ------------------------------------------------------------------------------------------
for key in ("bar1", "bar2", "bar3_timeout"):
    _each(NOT_TIMEOUTS, lambda lb, v, key=key: bad(key, f"wait({lb})", lambda o, m, v=v: o.wait(v),
                                                   TypeError, TIMEOUT_TYPE_MSG))
    _each(NAN_TIMEOUTS, lambda lb, v, key=key: bad(key, f"wait({lb})", lambda o, m, v=v: o.wait(v),
                                                   ValueError, NAN_MSG))
    bad(key, "wait(1, 2)", lambda o, m: o.wait(1, 2), TypeError)
    bad(key, "reset(1)", lambda o, m: o.reset(1), TypeError)
    bad(key, "abort(1)", lambda o, m: o.abort(1), TypeError)
    for attr in ("parties", "n_waiting", "broken"):
        bad(key, f"{attr} = 1", _set(attr, 1), AttributeError)
    for v in (0, -1, -(2**200), False):
        bad(key, f"Barrier({v})", lambda o, m, v=v: m.Barrier(v), ValueError, r"^parties must be > 0$")
    for v in (2**32, 2**64, 2**200):
        bad(key, f"Barrier({v})", lambda o, m, v=v: m.Barrier(v), OverflowError, r"^parties too large$")
    _each(NOT_INTS, lambda lb, v, key=key: bad(key, f"Barrier({lb})", lambda o, m, v=v: m.Barrier(v),
                                               TypeError))
    _each(NOT_TIMEOUTS, lambda lb, v, key=key: bad(key, f"Barrier(2, timeout={lb})",
                                                   lambda o, m, v=v: m.Barrier(2, timeout=v),
                                                   TypeError, TIMEOUT_TYPE_MSG))
    _each(NAN_TIMEOUTS, lambda lb, v, key=key: bad(key, f"Barrier(2, None, {lb})",
                                                   lambda o, m, v=v: m.Barrier(2, None, v),
                                                   ValueError, NAN_MSG))
    bad(key, "Barrier()", lambda o, m: m.Barrier(), TypeError)

# --- RWMutex ------------------------------------------------------------------------------------------
for key in ("rw_free", "rw_read2", "rw_write"):
    for method in ("lock", "rlock"):
        _each(NOT_TIMEOUTS, lambda lb, v, key=key, method=method: bad(
            key, f"{method}({lb})", lambda o, m, v=v: getattr(o, method)(v), TypeError, TIMEOUT_TYPE_MSG))
        _each(NAN_TIMEOUTS, lambda lb, v, key=key, method=method: bad(
            key, f"{method}(timeout={lb})", lambda o, m, v=v: getattr(o, method)(timeout=v), ValueError,
            NAN_MSG))
        bad(key, f"{method}(BadFloat)", lambda o, m, method=method: getattr(o, method)(BadFloat()), ValueError,
            r"__float__ failed")
        for ctx in ("ctx", 1, object()):
            bad(key, f"{method}(ctx={ctx!r})", lambda o, m, c=ctx, method=method: getattr(o, method)(ctx=c),
                TypeError, r"^ctx must be a Context or None$")
        bad(key, f"{method}(1, ctx positional)",
            lambda o, m, method=method: getattr(o, method)(1, m.background()), TypeError)
        bad(key, f"{method}(timout=1)", lambda o, m, method=method: getattr(o, method)(timout=1), TypeError)
    for method in ("unlock", "runlock", "try_lock", "try_rlock"):
        bad(key, f"{method}(1)", lambda o, m, method=method: getattr(o, method)(1), TypeError)
    for attr in ("reader", "writer"):
        bad(key, f"{attr} = None", _set(attr, None), AttributeError)
        bad(key, f"del {attr}", _del(attr), AttributeError)
        side = lambda o, attr=attr: getattr(o, attr)  # noqa: E731
        _each(NOT_TIMEOUTS, lambda lb, v, key=key, side=side, attr=attr: bad(
            key, f"{attr}.acquire(True, {lb})", lambda o, m, v=v: side(o).acquire(True, v), TypeError,
            TIMEOUT_TYPE_MSG))
        _each(NAN_TIMEOUTS, lambda lb, v, key=key, side=side, attr=attr: bad(
            key, f"{attr}.acquire(timeout={lb})", lambda o, m, v=v: side(o).acquire(timeout=v), ValueError,
            NAN_MSG))
        for t in (0, 1, -1, NAN, "x", INF):
            bad(key, f"{attr}.acquire(False, {t!r})", lambda o, m, t=t, side=side: side(o).acquire(False, t),
                ValueError, r"^can't specify timeout for non-blocking acquire$")
        bad(key, f"{attr}.acquire(BadBool)", lambda o, m, side=side: side(o).acquire(BadBool()), ValueError,
            r"__bool__ failed")
        bad(key, f"{attr}.acquire(ctx=None)", lambda o, m, side=side: side(o).acquire(ctx=None), TypeError)
        bad(key, f"{attr}.acquire(1, 2, 3)", lambda o, m, side=side: side(o).acquire(True, 1, 3), TypeError)
        bad(key, f"{attr}.release(1)", lambda o, m, side=side: side(o).release(1), TypeError)
    bad(key, "RWMutex(1)", lambda o, m: m.RWMutex(1), TypeError)
for key in ("rw_free", "rw_read2"):
    bad(key, "unlock() with no writer", lambda o, m: o.unlock(), RuntimeError, r"^unlock of unlocked RWMutex$")
    bad(key, "writer.release() with no writer", lambda o, m: o.writer.release(), RuntimeError,
        r"^unlock of unlocked RWMutex$")
    bad(key, "writer.__exit__ with no writer", lambda o, m: o.writer.__exit__(None, None, None), RuntimeError,
        r"^unlock of unlocked RWMutex$")
for key in ("rw_free", "rw_write"):
    bad(key, "runlock() with no reader", lambda o, m: o.runlock(), RuntimeError, r"^runlock of unlocked RWMutex$")
    bad(key, "reader.release() with no reader", lambda o, m: o.reader.release(), RuntimeError,
        r"^runlock of unlocked RWMutex$")
    bad(key, "reader.__exit__ with no reader", lambda o, m: o.reader.__exit__(None, None, None), RuntimeError,
        r"^runlock of unlocked RWMutex$")


# --- asyncio twins (tests/test_asyncio.py has the rest): the blocking versions' errors ---------------

def _aw(method, *args, **kwargs):
    """(obj, impl) -> run ``await obj.<method>(*args, **kwargs)`` in a new loop;
    skipped while the implementation has no asyncio twins."""
    def call(o, m):
        import asyncio

        fn = getattr(o, method, None)
        if fn is None:
            pytest.skip(f"{type(o).__name__}.{method}: no asyncio twins yet")
        return asyncio.run(fn(*args, **kwargs))
    return call


for key in ("wg3", "ev_unset", "bar2"):
    bad(key, "wait_async('1')", _aw("wait_async", "1"), TypeError, TIMEOUT_TYPE_MSG)
    bad(key, "wait_async(nan)", _aw("wait_async", NAN), ValueError, NAN_MSG)
    bad(key, "wait_async(ctx=1)", _aw("wait_async", ctx=1), TypeError)
bad("once", "do_async(None)", _aw("do_async", None), TypeError, r"^fn must be callable$")
for key in ("sem0", "bsem2_0"):
    bad(key, "acquire_async(False, 1)", _aw("acquire_async", False, 1), ValueError)
    bad(key, "acquire_async(timeout='1')", _aw("acquire_async", timeout="1"), TypeError, TIMEOUT_TYPE_MSG)
    bad(key, "acquire_async(ctx=1)", _aw("acquire_async", ctx=1), TypeError)
bad("wsem3_3", "acquire_async(-1)", _aw("acquire_async", -1), ValueError, r"^n must be >= 0$")
bad("wsem3_3", "acquire_async(4)", _aw("acquire_async", 4), ValueError, r"^n exceeds semaphore size$")
bad("wsem3_3", "acquire_async(1.5)", _aw("acquire_async", 1.5), TypeError)
bad("wsem3_3", "acquire_async(1, 'x')", _aw("acquire_async", 1, "x"), TypeError, TIMEOUT_TYPE_MSG)
for key in ("rw_read2", "rw_write"):
    for method in ("lock_async", "rlock_async"):
        bad(key, f"{method}('x')", _aw(method, "x"), TypeError, TIMEOUT_TYPE_MSG)
        bad(key, f"{method}(ctx=1)", _aw(method, ctx=1), TypeError)


@pytest.mark.parametrize("name", ["WaitGroup", "Once", "Event", "RWMutex"])
def test_constructors_without_parameters_reject_arguments(impl, name):
    cls = getattr(impl, name)
    with pytest.raises(TypeError):
        cls(1)
    with pytest.raises(TypeError):
        cls(x=1)


@pytest.mark.parametrize("row", BAD, ids=[b.id for b in BAD])
def test_bad_input_raises_and_leaves_the_object_usable(impl, row):
    obj = FACTORIES[row.obj](impl)
    before = snapshot(obj)
    with pytest.raises(Exception) as info:  # which one is checked just below
        row.call(obj, impl)
    assert type(info.value) is row.exc, (
        f"expected {row.exc.__name__}, got {type(info.value).__name__}: {info.value}")
    message = str(info.value)
    assert message, "the error says nothing"
    if row.msg is not None:
        assert re.search(row.msg, message), f"message {message!r} does not match {row.msg!r}"
    assert snapshot(obj) == before, "the failed call changed the object"
    exercise(obj)
    if type(obj).__name__ not in ("Once", "once_func", "once_value"):  # those are used up
        assert snapshot(obj) == before, "exercise() should leave the object as it was"


def test_table_covers_every_public_method(impl):
    """Every public method and property of every class appears in a row label."""
    labels = " ".join(b.label for b in BAD)
    classes = ["WaitGroup", "Once", "Semaphore", "BoundedSemaphore", "WeightedSemaphore",
               "Event", "Barrier", "RWMutex"]
    missing = []
    for cls_name in classes:
        cls = getattr(impl, cls_name)
        for attr in dir(cls):
            if attr.startswith("_") and attr not in ("_value", "_initial_value"):
                continue
            if attr in ("isSet",):  # deprecated alias of is_set: no argument to get wrong
                continue
            if not re.search(rf"\b{re.escape(attr)}\b", labels):
                missing.append(f"{cls_name}.{attr}")
    assert not missing, f"no bad-input row for {missing}"


# --- valid edges: inf, -inf, huge timeouts, bool and __index__ where the call cannot block ----------

@dataclass
class Edge:
    obj: str
    label: str
    call: Callable[[Any, Any], Any]
    result: Any
    after: Callable[[Any], bool] = lambda o: True


EDGE = [
    Edge("wg0", "wait(inf)", lambda o, m: o.wait(INF), True),
    Edge("wg0", "wait(2**200)", lambda o, m: o.wait(2**200), True),
    Edge("wg0", "wait(10**400)", lambda o, m: o.wait(10**400), True),
    Edge("wg0", "wait(1e308)", lambda o, m: o.wait(1e308), True),
    Edge("wg3", "wait(-inf)", lambda o, m: o.wait(-INF), False, lambda o: o.count == 3),
    Edge("wg3", "wait(-(2**200))", lambda o, m: o.wait(-(2**200)), False),
    Edge("wg3", "wait(-10**400)", lambda o, m: o.wait(-(10**400)), False),
    Edge("wg3", "wait(Decimal(0))", lambda o, m: o.wait(decimal.Decimal(0)), False),
    Edge("wg3", "wait(Fraction(-1, 3))", lambda o, m: o.wait(fractions.Fraction(-1, 3)), False),
    Edge("wg3", "add(True)", lambda o, m: o.add(True), None, lambda o: o.count == 4),
    Edge("wg3", "add(Index(-3))", lambda o, m: o.add(Index(-3)), None, lambda o: o.count == 0),
    Edge("wg0", "add(2**31-1)", lambda o, m: o.add(INT32_MAX), None, lambda o: o.count == INT32_MAX),
    Edge("sem2_1", "acquire(timeout=inf)", lambda o, m: o.acquire(timeout=INF), True,
         lambda o: o._value == 0),
    Edge("sem2_1", "acquire(True, 2**200)", lambda o, m: o.acquire(True, 2**200), True),
    Edge("sem0", "acquire(timeout=-inf)", lambda o, m: o.acquire(timeout=-INF), False),
    Edge("sem0", "acquire(True, -(2**200))", lambda o, m: o.acquire(True, -(2**200)), False),
    Edge("sem0", "acquire(None)", lambda o, m: o.acquire(None), False),  # falsy: non-blocking
    Edge("sem0", "release(Index(2))", lambda o, m: o.release(Index(2)), None, lambda o: o._value == 2),
    Edge("sem0", "release(True)", lambda o, m: o.release(True), None, lambda o: o._value == 1),
    Edge("sem0", "Semaphore(2**31-1)", lambda o, m: m.Semaphore(INT32_MAX)._value, INT32_MAX),
    Edge("bsem3_1", "release(Index(1))", lambda o, m: o.release(Index(1)), None, lambda o: o._value == 3),
    Edge("wsem10_4", "acquire(6, inf)", lambda o, m: o.acquire(6, INF), True, lambda o: o.held == 10),
    Edge("wsem10_4", "acquire(0, inf)", lambda o, m: o.acquire(0, INF), True, lambda o: o.held == 4),
    Edge("wsem3_3", "acquire(0, None)", lambda o, m: o.acquire(0), True, lambda o: o.held == 3),
    Edge("wsem3_3", "acquire(1, -inf)", lambda o, m: o.acquire(1, -INF), False),
    Edge("wsem3_3", "try_acquire(4) > size", lambda o, m: o.try_acquire(4), False),
    Edge("wsem3_3", "try_acquire(2**200)", lambda o, m: o.try_acquire(2**200), False),
    Edge("wsem3_3", "release(0)", lambda o, m: o.release(0), None, lambda o: o.held == 3),
    Edge("wsem3_3", "release(True)", lambda o, m: o.release(True), None, lambda o: o.held == 2),
    Edge("wsem0", "acquire(0, 0)", lambda o, m: o.acquire(0, 0), True),
    Edge("wsemmax_1", "acquire(2**63-2, inf)", lambda o, m: o.acquire(INT64_MAX - 1, INF), True,
         lambda o: o.held == INT64_MAX),
    Edge("wsem0", "WeightedSemaphore(2**63-1)", lambda o, m: m.WeightedSemaphore(INT64_MAX).size,
         INT64_MAX),
    Edge("ev_set", "wait(inf)", lambda o, m: o.wait(INF), True),
    Edge("ev_set", "wait(10**400)", lambda o, m: o.wait(10**400), True),
    Edge("ev_unset", "wait(-inf)", lambda o, m: o.wait(-INF), False),
    Edge("bar1", "wait(inf)", lambda o, m: o.wait(INF), 0),
    Edge("bar1", "Barrier(1, None, inf).wait()", lambda o, m: m.Barrier(1, None, INF).wait(), 0),
    Edge("bar1", "Barrier(True).parties", lambda o, m: m.Barrier(True).parties, 1),
    Edge("bar1", "Barrier(Index(4)).parties", lambda o, m: m.Barrier(Index(4)).parties, 4),
    Edge("bar1", "Barrier(2**32-1).parties", lambda o, m: m.Barrier(2**32 - 1).parties, 2**32 - 1),
    Edge("rw_free", "lock(inf)", lambda o, m: o.lock(INF), True, lambda o: ", writer=True," in repr(o)),
    Edge("rw_read2", "rlock(10**400)", lambda o, m: o.rlock(10**400), True,
         lambda o: "readers=3," in repr(o)),
    Edge("rw_read2", "lock(-inf)", lambda o, m: o.lock(-INF), False, lambda o: "waiters=0," in repr(o)),
    Edge("rw_write", "rlock(Decimal(0))", lambda o, m: o.rlock(decimal.Decimal(0)), False),
    Edge("rw_write", "rlock(-(2**200))", lambda o, m: o.rlock(-(2**200)), False),
    Edge("rw_read2", "reader.acquire(True, inf)", lambda o, m: o.reader.acquire(True, INF), True),
    Edge("rw_read2", "writer.acquire(Fraction(-1, 3))",
         lambda o, m: o.writer.acquire(timeout=fractions.Fraction(-1, 3)), False),
    Edge("rw_free", "writer.acquire(None)", lambda o, m: o.writer.acquire(None), True),  # falsy: non-blocking
]


@pytest.mark.parametrize("edge", EDGE, ids=[f"{e.obj}:{e.label}" for e in EDGE])
def test_valid_edge_values(impl, edge):
    obj = FACTORIES[edge.obj](impl)
    assert edge.call(obj, impl) == edge.result
    assert edge.after(obj)


@pytest.mark.parametrize("timeout", [-INF, -1, 0, -(2**200)])
def test_barrier_poll_breaks_the_barrier(impl, timeout):
    """A wait that polls at a Barrier(2) times out at once: like threading,
    the barrier breaks (BrokenBarrierError), and reset() repairs it."""
    b = impl.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(timeout)
    assert b.broken and b.n_waiting == 0
    b.reset()
    assert not b.broken
    exercise(b)


def test_action_not_callable_breaks_barrier_with_type_error(impl):
    """threading accepts any action and fails at the first full round; so do we."""
    b = impl.Barrier(1, action=42)
    with pytest.raises(TypeError):
        b.wait(0)
    assert b.broken
    b.reset()
    assert not b.broken
