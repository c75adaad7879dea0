"""CPython's own Lib/test/lock_tests.py against cysync's drop-ins.

The contract says Semaphore, BoundedSemaphore, Event and Barrier behave like the
``threading`` classes of the running Python version; CPython's test suite
for those classes is the referee. Each unittest method becomes one pytest
test, run against both implementations. Skipped when the interpreter was
installed without its ``test`` package.
"""

from __future__ import annotations

import unittest

import pytest

lock_tests = pytest.importorskip("test.lock_tests", reason="CPython's test package is not installed")

SUITES = {
    # name in cysync: (unittest class, attribute naming the type under test)
    "Semaphore": (lock_tests.SemaphoreTests, "semtype"),
    "BoundedSemaphore": (lock_tests.BoundedSemaphoreTests, "semtype"),
    "Event": (lock_tests.EventTests, "eventtype"),
    "Barrier": (lock_tests.BarrierTests, "barriertype"),
}

CASES = [
    pytest.param(name, method, id=f"{name}.{method}")
    for name, (case, _) in SUITES.items()
    for method in unittest.TestLoader().getTestCaseNames(case)
]


@pytest.mark.parametrize(("name", "method"), CASES)
def test_cpython_lock_tests(impl, name, method):
    case, attr = SUITES[name]
    cls = type(f"Cysync{case.__name__}", (case,), {attr: staticmethod(getattr(impl, name))})
    result = unittest.TestResult()
    cls(method).run(result)
    problems = result.failures + result.errors
    if problems:
        pytest.fail("\n".join(tb for _, tb in problems), pytrace=False)
    if result.skipped:
        pytest.skip(result.skipped[0][1])
    assert result.testsRun == 1
