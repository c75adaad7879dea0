"""ops: one fast-path operation per primitive, and the floors, per implementation.

Each benchmark round runs the operation's compiled loop (``ops.make_timer``):
``LOOPS`` iterations of ``UNROLL`` copies of the statement, so the time per
operation is the round's time divided by ``extra_info["ops_per_round"]``.
"""

from __future__ import annotations

import pytest

from cysync.bench.runner import FLOOR, UNROLL
from cysync.bench.scenarios import ops

from bench_helpers import label

LOOPS = 64

pytestmark = pytest.mark.benchmark(min_rounds=5, max_time=0.2, warmup=True)


@pytest.mark.parametrize("op", ops.OPS, ids=[op.name for op in ops.OPS])
def test_op(benchmark, op, impl):
    if not ops.applicable(op, impl):
        pytest.skip(f"{impl.name} has no {', '.join(op.needs)}")
    timer = ops.make_timer(op, impl)
    label(benchmark, "ops", op.name, impl.name, ops_per_round=LOOPS * UNROLL)
    benchmark(timer, LOOPS)


@pytest.mark.parametrize("op", ops.FLOORS, ids=[op.name for op in ops.FLOORS])
def test_floor(benchmark, op):
    timer = ops.make_timer(op, FLOOR)
    label(benchmark, "ops", op.name, "floor", ops_per_round=LOOPS * UNROLL)
    benchmark(timer, LOOPS)
