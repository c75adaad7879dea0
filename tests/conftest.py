"""Shared fixtures: the implementation under test and thread plumbing.

Every behaviour test takes the ``impl`` fixture and reaches the classes
through it (``impl.WaitGroup``...), so the C extension (id ``c``) and the
pure-Python twin (id ``py``) run the very same test code and cannot drift
apart.

The "c" parameter is skipped when ``cysync._cysync`` cannot be imported,
unless ``CYSYNC_REQUIRE_EXT=1`` is set: then a missing extension fails the
test, so a CI job that built the extension cannot silently test nothing.

Test plumbing uses the standard library's ``threading`` objects only. Every
blocking call in a test has a timeout (``Tools.TIMEOUT``) and every thread a
test starts is joined with a deadline, so a broken implementation fails a test
instead of hanging the run. The test body itself runs in a daemon worker
thread joined with a deadline (``BODY_TIMEOUT``): even a call expected to
return at once, such as a poll with timeout 0, fails the test if it blocks.
Tests marked ``main_thread`` (signal handling) run in the main thread.
"""

from __future__ import annotations

import faulthandler
import importlib
import inspect
import os
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import pytest

#: Upper bound for every blocking call made by a test. Generous on purpose:
#: it is only reached when the implementation under test is broken.
TIMEOUT = 10.0

#: A test body runs in a worker thread and fails if it has not ended by then
#: (times 10 for tests marked ``slow``), so that even a call expected to
#: return at once (a poll with timeout 0) cannot hang the run if it blocks.
BODY_TIMEOUT = 30.0

#: Outer safety net per test (pytest-timeout when installed and not
#: configured, faulthandler otherwise).
PER_TEST_TIMEOUT = 300.0

IMPL_MODULES = {"c": "cysync._cysync", "py": "cysync.pure"}

# The plumbing's own Event, taken before any test can patch threading.
_StdEvent = threading.Event


def _require_ext() -> bool:
    return os.environ.get("CYSYNC_REQUIRE_EXT", "") == "1"


def _try_import(name: str) -> tuple[Any, BaseException | None]:
    try:
        return importlib.import_module(name), None
    except ImportError as exc:
        return None, exc


def load_impl(impl_id: str):
    """Return the module for ``impl_id`` ("c" or "py"), or skip/fail."""
    module, error = _try_import(IMPL_MODULES[impl_id])
    if module is not None:
        return module
    if impl_id == "c" and not _require_ext():
        pytest.skip(f"C extension cysync._cysync is not importable ({error}); "
                    "set CYSYNC_REQUIRE_EXT=1 to make this an error")
    pytest.fail(f"{IMPL_MODULES[impl_id]} is not importable: {error!r}"
                + (" (CYSYNC_REQUIRE_EXT=1)" if impl_id == "c" else ""))


@pytest.fixture(params=["c", "py"])
def impl(request):
    """The implementation module under test: cysync._cysync or cysync.pure."""
    return load_impl(request.param)


@pytest.fixture
def c_impl():
    """The C extension module only (for tests that concern C objects)."""
    return load_impl("c")


def gil_enabled() -> bool | None:
    """Whether the GIL is enabled now (None when the question makes no sense)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return None if is_enabled is None else bool(is_enabled())


def free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def pytest_report_header(config):
    lines = []
    for impl_id, name in IMPL_MODULES.items():
        module, error = _try_import(name)
        if module is not None:
            where = getattr(module, "__file__", "?")
            lines.append(f"cysync implementation {impl_id!r}: {name} ({where})")
        else:
            lines.append(f"cysync implementation {impl_id!r}: NOT AVAILABLE ({error})")
    lines.append(f"CYSYNC_REQUIRE_EXT={os.environ.get('CYSYNC_REQUIRE_EXT', '')!r} "
                 f"CYSYNC_PURE={os.environ.get('CYSYNC_PURE', '')!r}")
    gil = gil_enabled()
    lines.append(
        f"Python {sys.version.split()[0]} ({sys.implementation.name}), "
        f"free-threaded build: {free_threaded_build()}, "
        f"GIL enabled: {'unknown (no sys._is_gil_enabled)' if gil is None else gil}"
    )
    return lines


# --------------------------------------------------------------------------
# Safety net: a per-test timeout. pytest-timeout does it when installed (we
# only supply a default when none is configured); otherwise faulthandler
# dumps every thread's stack and exits, so a hang still ends the run.
# --------------------------------------------------------------------------

def _pytest_timeout_active(config) -> bool:
    return config.pluginmanager.hasplugin("timeout")


def pytest_collection_modifyitems(config, items):
    if not _pytest_timeout_active(config):
        return
    if getattr(config, "_env_timeout", None):  # --timeout, ini or PYTEST_TIMEOUT
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(PER_TEST_TIMEOUT))


_stderr_fd: int | None = None  # a copy of the real stderr, not the captured one


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "main_thread: run the test body in the main thread (signal handling), "
        "not in the bounded worker thread",
    )
    # Output capture is suspended here: fd 2 is the terminal (or CI log).
    global _stderr_fd
    try:
        _stderr_fd = os.dup(sys.__stderr__.fileno())
    except (AttributeError, OSError, ValueError):
        _stderr_fd = None


def pytest_unconfigure(config):
    global _stderr_fd
    if _stderr_fd is not None:
        os.close(_stderr_fd)
        _stderr_fd = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    use_faulthandler = (
        _stderr_fd is not None
        and not _pytest_timeout_active(item.config)
        and not _faulthandler_timeout_configured(item.config)
    )
    if use_faulthandler:
        faulthandler.dump_traceback_later(PER_TEST_TIMEOUT, exit=True, file=_stderr_fd)
    try:
        yield
    finally:
        if use_faulthandler:
            faulthandler.cancel_dump_traceback_later()


def _faulthandler_timeout_configured(config) -> bool:
    try:
        return float(config.getini("faulthandler_timeout") or 0) > 0
    except (ValueError, KeyError):
        return False


# --------------------------------------------------------------------------
# Test bodies run in a worker thread joined with a deadline
# --------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.get_closest_marker("main_thread"):
        return None  # pytest's own implementation calls it here
    fn = pyfuncitem.obj
    params = inspect.signature(fn).parameters
    kwargs = {name: pyfuncitem.funcargs[name] for name in params if name in pyfuncitem.funcargs}
    limit = BODY_TIMEOUT * (10 if pyfuncitem.get_closest_marker("slow") else 1)
    worker = Worker(fn, name=f"test-body {pyfuncitem.name}", kwargs=kwargs).start()
    worker.thread.join(limit)
    if worker.thread.is_alive():
        frame = sys._current_frames().get(worker.thread.ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "?"
        pytest.fail(f"test body still running after {limit} s (a call that never "
                    f"returns?); it is stuck at:\n{stack}", pytrace=False)
    if worker.error is not None:
        raise worker.error
    return True


# --------------------------------------------------------------------------
# Thread plumbing
# --------------------------------------------------------------------------

class Worker:
    """A daemon thread running ``fn(*args)`` that keeps its result or error."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str | None = None,
                 kwargs: dict | None = None):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or {}
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = _StdEvent()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        finally:
            self.finished.set()

    def start(self) -> Worker:
        self.thread.start()
        return self

    @property
    def done(self) -> bool:
        return self.finished.is_set()

    def join(self, timeout: float = TIMEOUT) -> Any:
        """Join within ``timeout``; assert it ended; re-raise its error."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), (
            f"thread {self.thread.name} still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


class Tools:
    """Helpers handed to tests by the ``tools`` fixture."""

    TIMEOUT = TIMEOUT

    @staticmethod
    def spawn(fn: Callable[..., Any], *args: Any, name: str | None = None) -> Worker:
        """Start a daemon thread running ``fn(*args)``; join it with ``.join()``."""
        return Worker(fn, *args, name=name).start()

    @staticmethod
    def join_all(workers: Iterable[Worker], timeout: float = TIMEOUT) -> list:
        """Join every worker by one shared deadline; re-raise the first error."""
        workers = list(workers)
        deadline = time.monotonic() + timeout
        for w in workers:
            w.thread.join(max(0.0, deadline - time.monotonic()))
        alive = [w.thread.name for w in workers if w.thread.is_alive()]
        assert not alive, f"threads still running after {timeout} s: {alive}"
        for w in workers:
            if w.error is not None:
                raise w.error
        return [w.result for w in workers]

    @classmethod
    def run_threads(cls, fns: Iterable[Callable[[], Any]], timeout: float = TIMEOUT) -> list:
        """Run each callable in its own thread, all started before any is joined.

        Joins them by one deadline, asserts none is left running and re-raises
        the first exception raised in a thread. Returns the results in order.
        """
        workers = [Worker(fn, name=f"run_threads-{i}") for i, fn in enumerate(fns)]
        for w in workers:
            w.start()
        return cls.join_all(workers, timeout)

    @staticmethod
    def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT,
                   interval: float = 0.001, message: str = "") -> None:
        """Poll ``predicate`` until it is true; fail the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"condition not reached within {timeout} s"
                    + (f": {message}" if message else ""))
            time.sleep(interval)

    @staticmethod
    def settle(seconds: float = 0.1) -> None:
        """Give threads time to reach a blocking call.

        Only used to establish an order the contract gives no way to observe
        (a thread being parked inside a C wait); never to synchronize results.
        """
        time.sleep(seconds)

    @staticmethod
    def waiters(obj) -> int:
        """The waiter count shown by ``repr(obj)`` (WeightedSemaphore only)."""
        import re

        m = re.search(r"waiters=(\d+)", repr(obj))
        assert m, f"no waiters=N in {obj!r}"
        return int(m.group(1))


@pytest.fixture
def tools() -> Tools:
    return Tools()
