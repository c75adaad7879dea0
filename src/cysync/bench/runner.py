"""The measuring machinery the scenarios share.

- ``Impl``: one implementation under test (``c``, ``py``, ``stdlib``, an
  optional peer), a name and the classes it has, loaded from its module. The
  implementation is chosen on the command line; nothing here reads the
  environment, so a ``--subprocess`` worker measures what it is told to.
- Timing of tiny operations: the statement is compiled into a loop with its
  body repeated ``UNROLL`` times, so the loop's own cost is spread over many
  operations, and the cost of the same loop with an empty body is subtracted.
  Loop counts are calibrated so that one repeat lasts ``min_time``; repeats
  are interleaved across operations and implementations (``for repeat: for
  case: run``) so that drift (frequency scaling, a noisy neighbour) hits all
  of them alike.
- Statistics with numpy: median and spread (interquartile range as a
  percentage of the median) of the repeats.
- Threads that can never hang the run: every wait has a timeout and a thread
  that fails or does not finish in time is a ``BenchError``.
"""

from __future__ import annotations

import functools
import gc
import importlib
import itertools
import math
import os
import platform
import sys
import sysconfig
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    import numpy as np
except ImportError:  # reported by the CLI, which needs numpy before running anything
    np = None  # type: ignore[assignment]

NUMPY_MISSING = "cysync-bench needs numpy: pip install numpy"

#: How many times a statement is repeated inside one loop iteration.
UNROLL = 16

#: Default upper bound (seconds) for any wait of a benchmark thread.
DEFAULT_TIMEOUT = 10.0


class BenchError(Exception):
    """A benchmark could not be run or did not finish (the message says why)."""


# --- implementations ----------------------------------------------------------

#: Every implementation name the CLI accepts, in display order.
IMPL_NAMES = ("c", "py", "stdlib", "pygolang", "readerwriterlock", "aiologic", "janus")
#: What runs when --impl is not given (plus the optional peers that are installed).
DEFAULT_IMPLS = ("c", "py", "stdlib")
#: Peers measured when installed: pip package names, as the notes name them.
OPTIONAL_IMPLS = ("pygolang", "readerwriterlock", "aiologic", "janus")

_PUBLIC = (
    "WaitGroup", "Once", "once_func", "once_value", "Semaphore", "BoundedSemaphore",
    "WeightedSemaphore", "Event", "Barrier", "ErrGroup", "deferrable", "defer",
    "Chan", "ChanClosed", "select", "after", "Queue", "RWMutex",
    "background", "with_cancel", "with_timeout",
)


class Impl:
    """One implementation: ``impl.Semaphore`` is its Semaphore class.

    ``impl.has("WaitGroup")`` tells whether it has an equivalent; scenarios
    skip the operations an implementation does not have.
    """

    def __init__(self, name: str, description: str, classes: dict[str, Any]) -> None:
        self.name = name
        self.description = description
        self.classes = classes

    def has(self, *names: str) -> bool:
        return all(n in self.classes for n in names)

    def __getattr__(self, name: str) -> Any:
        classes = self.__dict__.get("classes", {})
        if name in classes:
            return classes[name]
        raise AttributeError(f"implementation {self.__dict__.get('name')!r} has no {name}")

    def __repr__(self) -> str:
        return f"<Impl {self.name}: {self.description}>"


def _stdlib_once_value(fn: Callable[[], Any]) -> Callable[[], Any]:
    # The standard library's idiom for a value computed once: a cached
    # function of no arguments.
    return functools.cache(fn)


def _load_c() -> Impl:
    mod = importlib.import_module("cysync._cysync")
    return Impl("c", "cysync C core (cysync._cysync)", {n: getattr(mod, n) for n in _PUBLIC if hasattr(mod, n)})


def _load_py() -> Impl:
    mod = importlib.import_module("cysync.pure")
    return Impl("py", "cysync pure Python (cysync.pure)", {n: getattr(mod, n) for n in _PUBLIC if hasattr(mod, n)})


def _load_stdlib() -> Impl:
    return Impl("stdlib", "threading (and functools.cache for once_value)", {
        "Semaphore": threading.Semaphore,
        "BoundedSemaphore": threading.BoundedSemaphore,
        "Event": threading.Event,
        "Barrier": threading.Barrier,
        "once_value": _stdlib_once_value,
    })


def _load_pygolang() -> Impl:
    sync = importlib.import_module("golang.sync")
    golang = importlib.import_module("golang")
    classes = {n: getattr(sync, n) for n in ("WaitGroup", "Once") if hasattr(sync, n)}
    # Its channels under their own names: their methods are not cysync's
    # (no timeouts, recv_ for recv_ok, `default` is a case of select).
    classes.update({n: getattr(golang, n) for n in ("chan", "select", "default") if hasattr(golang, n)})
    try:  # golang.context: background(), with_cancel()
        context = importlib.import_module("golang.context")
    except ImportError:
        pass
    else:
        # Not with_timeout: pygolang 0.1's timers abort the process here
        # ("pygo: failed" from its runtime, seen with the thread runtime).
        classes.update({n: getattr(context, n) for n in ("background", "with_cancel") if hasattr(context, n)})
    return Impl("pygolang", "pygolang (golang.sync, golang.chan)", classes)


def _load_readerwriterlock() -> Impl:
    # The pip package readerwriterlock: RWLockWrite prefers writers, as Go's
    # RWMutex does (it is what the "RWMutex" rows measure); RWLockFair has
    # rows of its own. Its locks are objects made once per lock and side
    # (gen_rlock(), gen_wlock()), each with acquire()/release().
    rwlock = importlib.import_module("readerwriterlock.rwlock")
    return Impl("readerwriterlock", "readerwriterlock (RWLockWrite, RWLockFair)",
                {"RWMutex": rwlock.RWLockWrite, "RWLockFair": rwlock.RWLockFair})


def _load_asyncio_peer(name: str) -> Impl:
    # aiologic and janus: queues (and aiologic's Event and Semaphore) that
    # both threads and asyncio tasks use; only the asyncio scenario measures
    # them (it reaches the module as impl.module).
    return Impl(name, f"{name} (thread <-> asyncio)", {"module": importlib.import_module(name)})


_LOADERS: dict[str, Callable[[], Impl]] = {
    "c": _load_c, "py": _load_py, "stdlib": _load_stdlib, "pygolang": _load_pygolang,
    "readerwriterlock": _load_readerwriterlock,
    "aiologic": functools.partial(_load_asyncio_peer, "aiologic"),
    "janus": functools.partial(_load_asyncio_peer, "janus"),
}

#: Pseudo-implementation of the floors (empty loop, threading.Lock).
FLOOR = Impl("floor", "floors measured in the same run", {})


def load_impls(names: Sequence[str] | None) -> tuple[list[Impl], list[str]]:
    """The implementations to measure, and notes about those that were skipped.

    ``names=None`` means the defaults plus any optional peer that is installed
    (silently absent otherwise).
    """
    explicit = names is not None
    wanted = list(names) if names is not None else [*DEFAULT_IMPLS, *OPTIONAL_IMPLS]
    impls, notes = [], []
    for name in wanted:
        try:
            impls.append(_LOADERS[name]())
        except Exception as exc:  # a broken optional peer is skipped, not fatal
            if name in ("py", "stdlib"):
                raise
            if name == "c":
                notes.append(f"skipping c: cysync._cysync is not importable ({exc}); "
                             "build it with: python setup.py build_ext --inplace")
            elif explicit:
                notes.append(f"skipping {name}: it cannot be imported ({exc}): pip install {name}")
    return impls, notes


# --- settings -----------------------------------------------------------------


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where there is one)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


@dataclass
class Settings:
    """What to measure and for how long; made by the CLI."""

    impls: list[Impl]
    repeat: int = 5
    min_time: float = 0.03        # seconds per repeat of a tiny-operation loop
    duration: float = 0.25        # seconds per run of defer clients / handoff trips
    tasks: int = 1000             # tasks per thread (fanout, pool)
    map_tasks: int = 20_000       # tasks of the ThreadPoolExecutor.map row
    threads: list[int] | None = None   # thread counts; None: the scenario's default
    timeout: float = DEFAULT_TIMEOUT
    quick: bool = False
    progress: Progress | None = None

    @property
    def cores(self) -> int:
        return usable_cpus()

    def thread_counts(self) -> list[int]:
        """Thread counts of fanout and pool: --threads, or 1 .. 2x cores."""
        if self.threads:
            return list(self.threads)
        return list(range(1, 2 * self.cores + 1))

    def client_counts(self) -> list[int]:
        """Client threads of defer: --threads, or 1 and the number of cores."""
        if self.threads:
            return list(self.threads)
        return sorted({1, self.cores})

    def impl(self, name: str) -> Impl | None:
        for impl in self.impls:
            if impl.name == name:
                return impl
        return None

    def step(self, label: str = "") -> None:
        if self.progress is not None:
            self.progress.step(label)

    def begin(self, scenario: str, steps: int) -> None:
        if self.progress is not None:
            self.progress.begin(scenario, steps)


# --- results and statistics ---------------------------------------------------


@dataclass
class Result:
    """One figure: a scenario's named measurement for one implementation."""

    scenario: str
    name: str
    impl: str
    unit: str
    median: float
    spread: float                 # interquartile range, % of the median
    samples: list[float]
    threads: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.scenario, self.name, self.impl, self.threads)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "name": self.name, "impl": self.impl,
            "unit": self.unit, "median": _finite(self.median), "spread": _finite(self.spread),
            "samples": [_finite(x) for x in self.samples], "threads": self.threads,
            "extra": {k: _finite(v) for k, v in self.extra.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        return cls(
            scenario=str(d["scenario"]), name=str(d["name"]), impl=str(d["impl"]),
            unit=str(d["unit"]), median=_float(d["median"]), spread=_float(d["spread"]),
            samples=[_float(x) for x in d["samples"]], threads=int(d["threads"]),
            extra=dict(d.get("extra") or {}),
        )


def _finite(x: Any) -> Any:
    """NaN and infinities as None: JSON has no such numbers."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def summarize(samples: Iterable[float]) -> tuple[float, float]:
    """(median, spread): spread is the interquartile range in % of the median."""
    a = np.asarray(list(samples), dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    med = float(np.median(a))
    q1, q3 = np.percentile(a, [25, 75])
    spread = float((q3 - q1) / abs(med) * 100.0) if med else 0.0
    return med, spread


def make_result(scenario: str, name: str, impl: str, unit: str, samples: Sequence[float],
                threads: int = 1, **extra: Any) -> Result:
    med, spread = summarize(samples)
    return Result(scenario, name, impl, unit, med, spread, [float(s) for s in samples],
                  threads, extra)


def percentiles_us(latencies_ns: Any, qs: Sequence[float] = (50, 99)) -> list[float]:
    """Percentiles of nanosecond latencies, in microseconds."""
    a = np.asarray(latencies_ns, dtype=float)
    if a.size == 0:
        return [math.nan for _ in qs]
    return [float(v) / 1e3 for v in np.percentile(a, list(qs))]


# --- timing tiny operations ---------------------------------------------------

_LOOP_GLOBALS = {"_repeat": itertools.repeat, "_clock": time.perf_counter_ns}


def compile_loop(stmt: str, names: Sequence[str]) -> Callable[..., int]:
    """``loop(n, *values)``: run ``stmt`` UNROLL * n times, return nanoseconds.

    The objects the statement uses are the loop function's arguments (fast
    locals), exactly as in a function that holds them in local variables.
    """
    body = textwrap.indent(textwrap.dedent(stmt).strip() + "\n", " " * 8) * UNROLL
    params = "".join(f", {n}" for n in names)
    src = (
        f"def _loop(_n{params}):\n"
        "    _it = _repeat(None, _n)\n"
        "    _t0 = _clock()\n"
        "    for _ in _it:\n"
        f"{body}"
        "    return _clock() - _t0\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(src, "<cysync-bench loop>", "exec"), dict(_LOOP_GLOBALS), namespace)
    return namespace["_loop"]


def compile_call(stmt: str, namespace: dict[str, Any]) -> Callable[[], None]:
    """A function of no arguments that runs ``stmt`` once with ``namespace``."""
    params = ", ".join(namespace)
    body = textwrap.indent(textwrap.dedent(stmt).strip() + "\n", " " * 8)
    src = f"def _make({params}):\n    def _op():\n{body}    return _op\n"
    ns: dict[str, Any] = {}
    exec(compile(src, "<cysync-bench op>", "exec"), {}, ns)
    return ns["_make"](*namespace.values())


class LoopTimer:
    """A compiled loop bound to its objects: ``timer(n)`` -> nanoseconds for n iterations."""

    def __init__(self, stmt: str, namespace: dict[str, Any]) -> None:
        self._loop = compile_loop(stmt, list(namespace))
        self._values = tuple(namespace.values())
        self.n = 1

    def __call__(self, n: int) -> int:
        return self._loop(n, *self._values)

    def calibrate(self, min_time: float) -> int:
        """Find n so that one run lasts about ``min_time`` seconds (this warms up too)."""
        target = min_time * 1e9
        n = 1
        while True:
            t = self(n)
            if t >= target / 10 or n >= 1 << 32:
                break
            n *= 10 if t < target / 100 else 2
        self.n = max(1, int(n * target / max(t, 1)))
        self(self.n)  # one more warm-up run at full length
        return self.n


class BatchTimer(LoopTimer):
    """A loop whose statement uses up what ``fill(k)`` provides (a ready value).

    ``timer(n)`` runs the loop in chunks of at most ``chunk`` iterations;
    before each chunk, untimed, ``fill(k)`` provides for the k * UNROLL
    statements of the chunk (it must find nothing left over: ``left()`` is
    0). The time returned is the chunks' only.
    """

    def __init__(self, stmt: str, namespace: dict[str, Any], fill: Callable[[int], None],
                 left: Callable[[], int], chunk: int) -> None:
        super().__init__(stmt, namespace)
        self._fill, self._left, self._chunk = fill, left, max(1, chunk)

    def __call__(self, n: int) -> int:
        total = 0
        while n > 0:
            k = min(n, self._chunk)
            if self._left():
                raise BenchError(f"{self._left()} values left over by a loop that should take them all")
            self._fill(k * UNROLL)
            total += self._loop(k, *self._values)
            n -= k
        return total


class _GCPaused:
    """Like timeit: no garbage collection inside a measurement."""

    def __enter__(self) -> None:
        self._was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was:
            gc.enable()


gc_paused = _GCPaused


# --- threads that cannot hang the run -----------------------------------------


class Worker(threading.Thread):
    """A daemon thread that keeps the exception its target raised."""

    def __init__(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> None:
        super().__init__(target=self._run, args=(target, args), name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the joiner
            self.error = exc


def join_all(threads: Iterable[threading.Thread], timeout: float, what: str) -> None:
    """Join every thread within ``timeout`` seconds in all; raise BenchError otherwise."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            raise BenchError(f"{what}: thread {t.name} did not finish within {timeout:g} s")
        error = getattr(t, "error", None)
        if error is not None:
            if isinstance(error, BenchError):
                raise error
            raise BenchError(f"{what}: thread {t.name} failed: {error!r}") from error


def check(ok: object, what: str, timeout: float) -> None:
    """Raise BenchError unless a wait with ``timeout`` succeeded."""
    if not ok:
        raise BenchError(f"{what} did not happen within {timeout:g} s")


def spin(k: int) -> int:
    """A little CPU-bound work for a task (about 30 ns per k on CPython 3.11)."""
    x = 0
    for i in range(k):
        x += i
    return x


# --- progress -----------------------------------------------------------------


class Progress:
    """A progress indicator on stderr, silent for runs shorter than ``after`` seconds.

    On a terminal one line is redrawn in place; otherwise a line is printed as
    each scenario starts (once the run has lasted ``after`` seconds).
    """

    def __init__(self, scenarios: Sequence[str], stream: Any = None, after: float = 2.0,
                 enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.after = after
        self.scenarios = list(scenarios)
        self.start = time.monotonic()
        self.scenario = ""
        self.steps = 1
        self.done = 0
        self._last_draw = 0.0
        self._announced: set[str] = set()
        self._drawn = False
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False

    def begin(self, scenario: str, steps: int) -> None:
        self.scenario = scenario
        self.steps = max(1, steps)
        self.done = 0
        self._draw("", force=True)

    def step(self, label: str = "") -> None:
        self.done += 1
        self._draw(label)

    def _draw(self, label: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = now - self.start
        if elapsed < self.after:
            return
        try:
            index = self.scenarios.index(self.scenario) + 1
        except ValueError:
            index = 0
        where = f"{self.scenario} ({index}/{len(self.scenarios)})" if index else self.scenario
        if self.tty:
            if not force and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            pct = 100 * min(self.done, self.steps) // self.steps
            line = f"cysync-bench: {where} {pct:3d}% {label}"[:78]
            self.stream.write(f"\r{line:<78} {elapsed:5.0f}s")
            self.stream.flush()
            self._drawn = True
        elif self.scenario not in self._announced:
            self._announced.add(self.scenario)
            self.stream.write(f"cysync-bench: running {where} ... ({elapsed:.0f} s so far)\n")
            self.stream.flush()

    def finish(self) -> None:
        if self._drawn and self.tty:
            self.stream.write("\r" + " " * 86 + "\r")
            self.stream.flush()
        self._drawn = False


# --- environment --------------------------------------------------------------


def free_threading_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    check_gil = getattr(sys, "_is_gil_enabled", None)
    return True if check_gil is None else bool(check_gil())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def collect_meta(impls: Sequence[Impl], scenarios: Sequence[str]) -> dict[str, Any]:
    try:
        import cysync

        version, chosen = cysync.__version__, cysync.IMPLEMENTATION
    except Exception:  # noqa: BLE001 - the meta data must not stop a run
        version, chosen = "unknown", "unknown"
    affinity = None
    if hasattr(os, "sched_getaffinity"):
        try:
            affinity = sorted(os.sched_getaffinity(0))
        except OSError:
            pass
    return {
        "python": platform.python_version(),
        "python_build": sys.version.replace("\n", " "),
        "implementation": sys.implementation.name,
        "free_threading": free_threading_build(),
        "gil_enabled": gil_enabled(),
        "cpu_count": os.cpu_count() or 1,
        "usable_cpus": usable_cpus(),
        "affinity": affinity,
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "cysync_version": version,
        "cysync_implementation": chosen,
        "impls": [i.name for i in impls],
        "scenarios": list(scenarios),
        "numpy": getattr(np, "__version__", None),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def parse_cpu_list(text: str) -> set[int]:
    """"0,2-3" -> {0, 2, 3}; ValueError with a message otherwise."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"not a CPU list like 0,2-3: {text!r}") from None
        if a < 0 or b < a:
            raise ValueError(f"not a CPU list like 0,2-3: {text!r}")
        cpus.update(range(a, b + 1))
    if not cpus:
        raise ValueError(f"not a CPU list like 0,2-3: {text!r}")
    return cpus


def pin_cpus(cpus: set[int]) -> None:
    """Pin this process (and the threads it starts) to ``cpus``."""
    if not hasattr(os, "sched_setaffinity"):
        raise BenchError("--pin needs os.sched_setaffinity, which this platform lacks")
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        raise BenchError(f"cannot pin to CPUs {sorted(cpus)}: {exc}") from None
