"""CPython's own Lib/test/test_queue.py tests of queue.Queue against cysync's Queue.

The contract says Queue behaves like the ``queue.Queue`` of the running
Python, with 3.13's ``shutdown()`` on every version; CPython's test suite
is the referee. The interpreter's own ``test.test_queue.QueueTest`` (basic
use, timeouts, qsize, task_done/join, and from 3.13 on shutdown) runs
against both implementations, each unittest method one pytest test, as
tests/test_lock_tests.py does with lock_tests.py. Before 3.13 the shutdown
tests come from 3.13's file (tests/cpython_queue_shutdown.py). Skipped when
the interpreter was installed without its ``test`` package.
"""

from __future__ import annotations

import queue
import types
import unittest

import pytest

test_queue = pytest.importorskip("test.test_queue", reason="CPython's test package is not installed")

from cpython_queue_shutdown import ShutdownTestsMixin  # noqa: E402

BASES: tuple[type, ...] = (test_queue.QueueTest, unittest.TestCase)
if not hasattr(test_queue.BaseQueueTestMixin, "test_shutdown_empty"):  # before 3.13
    BASES = (ShutdownTestsMixin, *BASES)


def case_class(namespace: object) -> type[unittest.TestCase]:
    # Made on demand: a TestCase class at module level would be collected as is.
    return type("CysyncQueueTest", BASES, {"queue": namespace})


METHODS = unittest.TestLoader().getTestCaseNames(case_class(queue))


@pytest.mark.parametrize("method", METHODS)
def test_cpython_queue_tests(impl, method):
    namespace = types.SimpleNamespace(
        Queue=impl.Queue, Empty=queue.Empty, Full=queue.Full, ShutDown=impl.ShutDown
    )
    cls = case_class(namespace)
    result = unittest.TestResult()
    cls(method).run(result)
    problems = result.failures + result.errors
    if problems:
        pytest.fail("\n".join(tb for _, tb in problems), pytrace=False)
    if result.skipped:
        pytest.skip(result.skipped[0][1])
    assert result.testsRun == 1


def test_every_queue_test_of_this_python_runs():
    # The interpreter's own QueueTest methods are all here (none filtered out),
    # and from 3.13 on they include the shutdown tests themselves.
    own = set(unittest.TestLoader().getTestCaseNames(type("T", (test_queue.QueueTest, unittest.TestCase), {})))
    assert own <= set(METHODS)
    assert "test_shutdown_immediate_put_join" in METHODS
