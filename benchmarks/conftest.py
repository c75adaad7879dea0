"""pytest-benchmark suites over the same scenario code as ``cysync-bench``.

Run with ``python -m pytest benchmarks --benchmark-only`` (the plain test run
does not collect this directory: pytest's testpaths is ``tests``). Each
benchmark's group is its scenario and its ``extra_info`` holds the
implementation and the thread count, so ``--benchmark-json`` output can be
compared per implementation.
"""

from __future__ import annotations

import pytest

pytest.importorskip("numpy", reason="the benchmark scenarios need numpy")

from cysync.bench.runner import DEFAULT_IMPLS, load_impls

_LOADED = {impl.name: impl for impl in load_impls(list(DEFAULT_IMPLS))[0]}


@pytest.fixture(params=DEFAULT_IMPLS)
def impl(request):
    """The implementation under test: ``c`` (skipped when the extension is not
    built), ``py`` or ``stdlib``."""
    loaded = _LOADED.get(request.param)
    if loaded is None:
        pytest.skip(f"implementation {request.param!r} is not available")
    return loaded
