"""Helpers shared by the benchmark modules (a plain module, so that its name
cannot clash with tests/conftest.py when both directories are collected)."""

from __future__ import annotations


def label(benchmark, scenario: str, name: str, impl: str, threads: int = 1, **extra) -> None:
    """Group by scenario; record what cysync-bench's JSON records."""
    benchmark.group = scenario
    benchmark.name = f"{name} [{impl}]" + (f" x{threads}" if threads != 1 else "")
    benchmark.extra_info.update({"scenario": scenario, "name": name, "impl": impl,
                                 "threads": threads, **extra})
