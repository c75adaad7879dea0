"""alloc: heap memory per operation (tracemalloc) and the size of each object.

For every operation of ``ops`` and every handler style of ``defer``:

- ``peak B/op``: how far one call raises tracemalloc's traced memory above
  where it started (what the call allocates while it runs, freed or not);
- ``kept B/op`` and ``blocks/op``: memory still allocated after N calls, per
  call (tracemalloc's traced bytes, ``sys.getallocatedblocks()``): 0 unless
  the operation keeps something;
- and, for each class, ``sys.getsizeof`` of a fresh object, plus its deep
  size (the object and what it alone owns: a pure-Python primitive's
  ``__dict__``, Condition, lock, waiter deque...).

Only what goes through Python's allocators is seen: the C core's atomics live
inside the object, and objects served from CPython's free lists cost nothing
here, as in any tracemalloc measurement.
"""

from __future__ import annotations

import gc
import itertools
import sys
import tracemalloc
import types
from collections.abc import Callable
from typing import Any

from ..runner import Impl, Result, Settings, make_result, np
from ..tables import Index, Target, ordered, table
from . import defer, ops

NAME = "alloc"
TITLE = "heap allocations per operation and object sizes"

#: Classes whose size is reported, with how to make one.
SIZED: list[tuple[str, Callable[[Impl], Any]]] = [
    ("WaitGroup", lambda m: m.WaitGroup()),
    ("Once", lambda m: m.Once()),
    ("once_func", lambda m: m.once_func(ops._nothing)),
    ("once_value", lambda m: m.once_value(ops._nothing)),
    ("Semaphore", lambda m: m.Semaphore(1)),
    ("BoundedSemaphore", lambda m: m.BoundedSemaphore(1)),
    ("WeightedSemaphore", lambda m: m.WeightedSemaphore(1)),
    ("Event", lambda m: m.Event()),
    ("Barrier", lambda m: m.Barrier(2)),
    ("RWMutex", lambda m: m.RWMutex()),
]

_SHARED = (type, types.ModuleType, types.FunctionType, types.CodeType, str, bytes,
           type(None), bool, float)


def deep_sizeof(obj: Any) -> int:
    """``getsizeof`` of ``obj`` and of the objects only it refers to.

    Shared things (classes, modules, functions, strings, None...) are not
    counted; a bound method is counted but not followed beyond its object.
    """
    seen: set[int] = set()
    todo = [obj]
    total = 0
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if o is not obj and (isinstance(o, _SHARED) or (isinstance(o, int) and -5 <= o <= 256)):
            continue
        total += sys.getsizeof(o)
        if isinstance(o, (types.BuiltinMethodType, types.MethodType)):
            owner = getattr(o, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType):
                todo.append(owner)
            continue
        todo.extend(gc.get_referents(o))
    return total


def measure(call: Callable[[], Any], n: int, tries: int = 25) -> tuple[float, float, float]:
    """(peak bytes of one call, bytes kept per call, blocks kept per call).

    tracemalloc must be tracing. Blocks are counted by ``sys.getallocatedblocks``
    (Python's small-object allocator), bytes by tracemalloc.
    """
    for _ in range(20):  # warm-up: caches, free lists, the data stack
        call()
    peaks = []
    for _ in range(tries):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        peaks.append(tracemalloc.get_traced_memory()[1] - before)
    gc.collect()
    bytes0 = tracemalloc.get_traced_memory()[0]
    blocks0 = sys.getallocatedblocks()
    for _ in itertools.repeat(None, n):
        call()
    blocks1 = sys.getallocatedblocks()
    bytes1 = tracemalloc.get_traced_memory()[0]
    return float(np.median(peaks)), (bytes1 - bytes0) / n, (blocks1 - blocks0) / n


def cases(s: Settings) -> list[tuple[str, Impl, Callable[[], Any]]]:
    """(name, implementation, one call) for every operation and handler style."""
    out: list[tuple[str, Impl, Callable[[], Any]]] = []
    for op in ops.OPS:
        for impl in s.impls:
            if ops.applicable(op, impl):
                out.append((op.name, impl, lambda op=op, impl=impl: ops.make_callable(op, impl)))
    for prim, style, impl in defer.cells(s):
        out.append((f"handler {prim}: {style}", impl,
                    lambda prim=prim, style=style, impl=impl:
                    defer.make_handler(defer.make_slot(prim, impl, 1), prim, style, impl)))
    return out


def _nothing() -> None:
    return None


def run(s: Settings) -> list[Result]:
    todo = cases(s)
    sized = [(name, impl, make) for name, make in SIZED for impl in s.impls if impl.has(name)]
    s.begin(NAME, len(todo) + 1)
    n = 200 if s.quick else 2000
    results = []
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        # What measuring itself shows (the call, get_traced_memory's tuple,
        # the snapshots) is measured on an empty call and subtracted.
        measure(_nothing, n)
        base = measure(_nothing, n)
        for name, impl, build in todo:
            peak, kept_bytes, kept_blocks = (max(0.0, x - b) for x, b in zip(measure(build(), n), base, strict=True))
            results.append(make_result(NAME, name, impl.name, "B/op", [peak],
                                       kept_bytes_per_op=round(kept_bytes, 2),
                                       blocks_per_op=round(kept_blocks, 3)))
            s.step(f"{name} [{impl.name}]")
    finally:
        if not was_tracing:
            tracemalloc.stop()
    for name, impl, make in sized:
        obj = make(impl)
        results.append(make_result(NAME, f"sizeof {name}", impl.name, "B", [sys.getsizeof(obj)],
                                   deep=deep_sizeof(obj)))
    s.step("sizes")
    return results


# --- report -------------------------------------------------------------------

TARGETS: list[Target] = []


def plot_label(r: Result) -> str | None:
    """Bytes per operation are drawn; object sizes are not."""
    return None if r.name.startswith("sizeof ") else r.name


def sizeof_cell(r: Result | None) -> str:
    """``getsizeof`` of an object, and its deep size when that is more."""
    if r is None:
        return ""
    deep = int(r.extra.get("deep", r.median))
    return f"{r.median:.0f}" + (f" (deep {deep:,})" if deep != int(r.median) else "")


def render(idx: Index, markdown: bool) -> list[str]:
    results = idx.of(NAME)
    impls = idx.impls(NAME)
    ops_rows, size_rows = [], []
    for name in ordered(r.name for r in results):
        if name.startswith("sizeof "):
            size_rows.append([name[len("sizeof "):], *[sizeof_cell(idx.get(NAME, name, i)) for i in impls]])
            continue
        row = [name]
        for i in impls:
            r = idx.get(NAME, name, i)
            if r is None:
                row.append("")
                continue
            text = f"{r.median:.0f}"
            kept = r.extra.get("kept_bytes_per_op", 0.0)
            if kept >= 1:
                text += f" (kept {kept:.0f})"
            row.append(text)
        ops_rows.append(row)
    out = []
    if ops_rows:
        out.append(table(["operation", *[f"{i} B/op" for i in impls]], ops_rows, markdown))
        out.append("B/op: heap bytes one call allocates while it runs (tracemalloc peak, "
                   "measuring overhead subtracted); kept: bytes still held per call after many calls.")
    if size_rows:
        out.append(table(["object", *[f"{i} sizeof (B)" for i in impls]], size_rows, markdown))
        out.append("sys.getsizeof of a new object; deep adds what only it owns (its __dict__, "
                   "Condition, lock, waiter deque).")
    return out
