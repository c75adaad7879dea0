"""The scenarios, by name. Each module has

- ``NAME``, ``TITLE`` and ``run(settings) -> list[Result]``;
- ``render(idx, markdown) -> list[str]``: its section of the report (tables
  and notes, made with ``..tables``), and ``TARGETS``: its goals, which that
  section prints as met / MISSED and ``report.target_report`` returns;
- optionally ``PLOT`` (``"bars"``, the default, ``"log bars"`` or
  ``"lines"`` over thread counts) and ``plot_label(result) -> str | None``;

and exposes the building blocks (one operation, one round) that the
pytest-benchmark suite reuses."""

from __future__ import annotations

import importlib
from types import ModuleType

#: Every scenario, in the order they run and are reported.
SCENARIOS = ("ops", "defer", "alloc", "fanout", "pool", "handoff", "chan", "queue", "rwmutex", "context",
             "asyncio")


def get(name: str) -> ModuleType:
    if name not in SCENARIOS:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")
