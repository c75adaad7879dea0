"""pytest plugin: ``pytest --cysync-leaks`` fails a test that leaks (Go's goleak).

Registered through the ``pytest11`` entry point, so installing cysync makes
it available; it does nothing unless ``--cysync-leaks`` is given. Then
cysync's debug mode is on for the whole run, and after each test (its
fixtures torn down) the test fails when it has left, after a grace of
``GRACE`` seconds:

- a thread started by ``WaitGroup.go`` or by an ``ErrGroup`` still running;
- a thread it started blocked in a cysync wait;
- a WaitGroup above zero with adds made during the test.

The failure message lists the leaks, then ``cysync.debug.report()``.
``@pytest.mark.cysync_leaks_ok("why")`` exempts a test that leaves such a
thread on purpose.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from typing import Any

import pytest

#: Seconds a test's leftovers get to finish before they count as leaks.
GRACE = 1.0

_OPTION = "--cysync-leaks"
_MARKER = "cysync_leaks_ok"
_state = pytest.StashKey[tuple[int, "weakref.WeakSet[threading.Thread]"]]()


def pytest_addoption(parser: Any) -> None:
    parser.getgroup("cysync").addoption(
        _OPTION,
        action="store_true",
        default=False,
        help="cysync debug mode for the run; fail a test that leaves a go()/ErrGroup thread running, "
        "a thread it started blocked in a cysync wait, or a WaitGroup above zero",
    )


def _active(config: Any) -> bool:
    return bool(config.getoption(_OPTION))


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(reason): the test may leave threads or WaitGroups behind (not checked by {_OPTION})",
    )
    if _active(config):
        from . import debug

        config._cysync_was_enabled = debug.enabled()
        debug.enable()


def pytest_unconfigure(config: Any) -> None:
    if _active(config) and not getattr(config, "_cysync_was_enabled", True):
        from . import debug

        debug.disable()


def pytest_report_header(config: Any) -> str | None:
    if _active(config):
        return f"cysync: {_OPTION}: debug mode on, a test leaking threads or WaitGroups fails"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: Any) -> None:
    # Before the fixtures are set up: what they start belongs to the test.
    if _active(item.config):
        from . import debug

        item.stash[_state] = (debug._mark(), weakref.WeakSet(threading.enumerate()))


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: Any, nextitem: Any) -> None:
    # After the fixtures are torn down (the runner's teardown comes first).
    state = item.stash.get(_state, None)
    if state is None or item.get_closest_marker(_MARKER) is not None:
        return
    from . import debug

    since, before = state
    deadline = time.monotonic() + GRACE
    collected = False
    while True:
        leaks = debug._leaks(since, before)
        if not leaks:
            break
        if not collected:
            # A WaitGroup above zero that only a reference cycle keeps
            # (a traceback's frames) is garbage, not a leak.
            gc.collect()
            collected = True
            continue
        if time.monotonic() >= deadline:
            break
        time.sleep(0.01)  # leftovers finishing on their own: nothing to wait on
    if leaks:
        lines = "\n".join(f"  {leak}" for leak in leaks)
        pytest.fail(
            f"{_OPTION}: the test left, after {GRACE} s:\n{lines}\n\n{debug._report(skip_self=True)}",
            pytrace=False,
        )
