"""The scenarios, by name. Each module has ``NAME``, ``TITLE`` and
``run(settings) -> list[Result]``, and exposes the building blocks (one
operation, one round) that the pytest-benchmark suite reuses."""

from __future__ import annotations

import importlib
from types import ModuleType

#: Every scenario, in the order they run and are reported.
SCENARIOS = ("ops", "defer", "alloc", "fanout", "pool", "handoff")


def get(name: str) -> ModuleType:
    if name not in SCENARIOS:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")
