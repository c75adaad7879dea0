"""The pieces a scenario's report is made of: numbers, tables, targets.

Each scenario module renders its own section with these (``render(idx,
markdown)``) and lists its own goals (``TARGETS``); ``report`` only walks the
scenarios. Ratio columns read the same way everywhere: ``vs X`` is X's time
divided by the base implementation's (``c`` when it was measured), so above 1
means the base is faster, whether the figure is a time (ns/op, µs) or a rate
(QPS, tasks/s).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .runner import IMPL_NAMES, Result

#: Units where a bigger figure is better; for all others smaller is better.
RATE_UNITS = {"QPS", "tasks/s", "items/s", "records/s", "ops/s"}


# --- numbers ------------------------------------------------------------------


def fmt(x: float | None, unit: str = "") -> str:
    """Three significant digits; rates with k/M suffixes."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if unit in RATE_UNITS:
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= div:
                return f"{x / div:.3g}{suffix}"
        return f"{x:.3g}"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax == 0:
        return "0"
    return f"{x:.3f}"


def fmt_spread(spread: float) -> str:
    if math.isnan(spread):
        return ""
    return f"±{spread:.0f}%" if spread >= 1 else f"±{spread:.1f}%"


def fmt_ratio(x: float | None) -> str:
    if x is None or math.isnan(x) or math.isinf(x):
        return "—"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


def cell(r: Result | None, with_spread: bool = True) -> str:
    if r is None:
        return ""
    text = fmt(r.median, r.unit)
    if with_spread and len(r.samples) > 1:
        text += " " + fmt_spread(r.spread)
    return text


def speedup(base: Result | None, other: Result | None) -> float | None:
    """How many times faster ``base`` is than ``other`` (time ratio other/base)."""
    if base is None or other is None or not base.median or not other.median:
        return None
    if base.unit in RATE_UNITS:
        return base.median / other.median
    return other.median / base.median


# --- tables -------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    """A table: GitHub markdown, or aligned plain text (first column left, others right)."""
    if markdown:
        out = ["| " + " | ".join(headers) + " |",
               "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(out)
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


class Index:
    """Results looked up by (scenario, name, impl, threads)."""

    def __init__(self, results: Iterable[Result]) -> None:
        self.results = list(results)
        self.by_key = {r.key: r for r in self.results}

    def get(self, scenario: str, name: str, impl: str, threads: int | None = None) -> Result | None:
        if threads is not None:
            return self.by_key.get((scenario, name, impl, threads))
        for r in self.results:
            if (r.scenario, r.name, r.impl) == (scenario, name, impl):
                return r
        return None

    def of(self, scenario: str) -> list[Result]:
        return [r for r in self.results if r.scenario == scenario]

    def impls(self, scenario: str | None = None) -> list[str]:
        present = {r.impl for r in self.results if scenario in (None, r.scenario)}
        return [i for i in ("floor", *IMPL_NAMES) if i in present]


def ordered(values: Iterable[Any]) -> list[Any]:
    """The distinct values, in the order they first appear."""
    seen: dict[Any, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def base_impl(impls: Sequence[str]) -> str | None:
    """The implementation the ratios are relative to: c when it was measured."""
    return "c" if "c" in impls else (impls[0] if impls else None)


# --- targets ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal of the C core, checked on one run: num/den <= bound (or >= for "ge").

    Without ``den`` the goal is on ``num``'s own figure (a size in bytes).
    """

    label: str
    scenario: str
    num: tuple[str, str]   # (name, impl)
    den: tuple[str, str] | None
    bound: float
    kind: str = "le"

    def value(self, idx: Index) -> float | None:
        a = idx.get(self.scenario, *self.num)
        if a is None:
            return None
        if self.den is None:
            return a.median
        b = idx.get(self.scenario, *self.den)
        if b is None or not b.median:
            return None
        return a.median / b.median

    def met(self, value: float) -> bool:
        return value <= self.bound if self.kind == "le" else value >= self.bound


def targets_table(idx: Index, targets: Iterable[Target], markdown: bool) -> str:
    """The targets that this run measured, as met / MISSED ("" when none was)."""
    rows = []
    for t in targets:
        v = t.value(idx)
        if v is None:
            continue
        goal = f"{'≤' if t.kind == 'le' else '≥'} {t.bound:g}"
        measured = f"{v:.2f}" if t.den is not None else f"{v:.0f}"
        rows.append([t.label, measured, goal, "met" if t.met(v) else "MISSED"])
    if not rows:
        return ""
    return table(["target", "measured", "goal", ""], rows, markdown)


def with_targets(out: list[str], idx: Index, targets: Iterable[Target], markdown: bool) -> list[str]:
    """``out`` followed by the targets table, when this run measured any."""
    t = targets_table(idx, targets, markdown)
    if t:
        out += ["Targets of the C core (this run):", t]
    return out


# --- the usual table: implementations side by side ------------------------------


def side_by_side(idx: Index, scenario: str, markdown: bool, *, floor: bool = False,
                 per_f: str | None = None, threads_col: bool = False, p99: bool = False,
                 scaling: bool = False) -> str:
    """One row per (name, threads), one column per implementation, then ratios.

    ``floor``: a column for the floors; ``per_f``: the name of the floor row
    that a ``base/F`` column divides by; ``p99``: columns of each result's
    ``p99_us``; ``scaling``: each implementation's figure relative to 1 thread.
    """
    impls = [i for i in idx.impls(scenario) if i != "floor"]
    base = base_impl(impls)
    rows_keys = ordered((r.name, r.threads) for r in idx.of(scenario))
    headers = ["operation" if floor else "name"]
    if threads_col:
        headers.append("threads")
    if floor:
        headers.append("floor")
    headers += impls
    if p99:
        headers += [f"p99 {i}" for i in impls]
    if per_f and base:
        headers.append(f"{base}/F")
    others = [i for i in impls if i != base]
    headers += [f"vs {i}" for i in others]
    if scaling:
        headers.append("vs 1 thread (" + " / ".join(impls) + ")")
    f_res = idx.get(scenario, per_f, "floor") if per_f else None
    rows = []
    for name, threads in rows_keys:
        row = [name]
        if threads_col:
            row.append(str(threads))
        if floor:
            row.append(cell(idx.get(scenario, name, "floor", threads)))
        row += [cell(idx.get(scenario, name, i, threads)) for i in impls]
        if p99:
            for i in impls:
                r = idx.get(scenario, name, i, threads)
                row.append(fmt(r.extra.get("p99_us")) if r else "")
        if per_f and base:
            r = idx.get(scenario, name, base, threads) or idx.get(scenario, name, "floor", threads)
            row.append(fmt_ratio(r.median / f_res.median) if r and f_res and f_res.median else "")
        b = idx.get(scenario, name, base, threads) if base else None
        for i in others:
            s = speedup(b, idx.get(scenario, name, i, threads))
            row.append(fmt_ratio(s) if s is not None else "")
        if scaling:
            parts = []
            for i in impls:
                r = idx.get(scenario, name, i, threads)
                one = idx.get(scenario, name, i, 1)
                parts.append(f"{r.median / one.median:.2f}" if r and one and one.median else "—")
            row.append(" / ".join(parts))
        rows.append(row)
    return table(headers, rows, markdown)
