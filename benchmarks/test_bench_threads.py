"""The multi-thread scenarios (defer, fanout, pool, handoff), one round per
benchmark round, for 1 and 2 threads, per implementation."""

from __future__ import annotations

import pytest

from cysync.bench.runner import DEFAULT_TIMEOUT
from cysync.bench.scenarios import defer, fanout, handoff, pool

from bench_helpers import label

ROUNDS = 3
TASKS = 100           # per thread
TRIPS = 200           # handoff round trips per round
DEFER_SECONDS = 0.05  # one closed-loop defer run

THREADS = pytest.mark.parametrize("threads", [1, 2])


def pedantic(benchmark, fn, *args):
    return benchmark.pedantic(fn, args=args, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@THREADS
@pytest.mark.parametrize("shape", fanout.SHAPES)
def test_fanout(benchmark, impl, threads, shape):
    if not fanout.applicable(impl):
        pytest.skip(f"{impl.name} has no WaitGroup")
    label(benchmark, "fanout", shape, impl.name, threads, tasks=threads * TASKS)
    if shape == "spawn + join":
        pedantic(benchmark, fanout.spawn_join, impl, threads, TASKS, DEFAULT_TIMEOUT)
        return
    ex = fanout.started_executor(threads)
    try:
        pedantic(benchmark, fanout.executor_wait, impl, ex, threads, TASKS, DEFAULT_TIMEOUT)
    finally:
        ex.shutdown(wait=True)


@THREADS
@pytest.mark.parametrize("kind", [k for k, _ in pool.KINDS])
def test_pool(benchmark, impl, threads, kind):
    if not pool.applicable(kind, impl):
        pytest.skip(f"{impl.name} has no {kind.split()[0]}")
    ex = fanout.started_executor(threads)
    total = threads * TASKS
    label(benchmark, "pool", kind, impl.name, threads, tasks=total)
    try:
        _, lat = pedantic(benchmark, pool.pool_round, impl, kind, ex, threads, total,
                          DEFAULT_TIMEOUT)
    finally:
        ex.shutdown(wait=True)
    benchmark.extra_info["p99_us"] = float(sorted(lat)[int(len(lat) * 0.99) - 1]) / 1e3


@pytest.mark.parametrize("kind", [k for k, _ in handoff.KINDS])
def test_handoff(benchmark, impl, kind):
    if not handoff.applicable(kind, impl):
        pytest.skip(f"{impl.name} has no {dict(handoff.KINDS)[kind]}")
    label(benchmark, "handoff", kind, impl.name, 2, round_trips_per_round=TRIPS)
    pedantic(benchmark, handoff.round_trips, impl, kind, TRIPS, DEFAULT_TIMEOUT)


@THREADS
@pytest.mark.parametrize("style", defer.STYLES)
@pytest.mark.parametrize("primitive", [p for p, _ in defer.PRIMITIVES])
def test_defer(benchmark, impl, threads, primitive, style):
    if style not in defer.styles():
        pytest.skip("cysync has no defer yet")
    if not defer.applicable(primitive, style, impl):
        pytest.skip(f"no {primitive} with {style} for {impl.name}")
    handler = defer.make_handler(defer.make_slot(primitive, impl, threads), primitive, style, impl)
    label(benchmark, "defer", f"{primitive}: {style}", impl.name, threads)
    stats = pedantic(benchmark, defer.serve, handler, threads, DEFER_SECONDS, DEFAULT_TIMEOUT)
    benchmark.extra_info.update(stats)
