"""Presenting results: terminal and markdown tables, targets, JSON, compare, plots.

Every table puts the implementations side by side. Ratio columns read the same
way everywhere: ``vs X`` is X's time divided by the base implementation's
(``c`` when it was measured), so above 1 means the base is faster, whether
the figure is a time (ns/op, µs) or a rate (QPS, tasks/s).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .runner import IMPL_NAMES, BenchError, Result
from .scenarios import SCENARIOS
from .scenarios.ops import F_NAME, LOCK_PAIR, WITH_LOCK

SCHEMA = 1

#: Units where a bigger figure is better; for all others smaller is better.
RATE_UNITS = {"QPS", "tasks/s"}


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


def _ordered(values: Iterable[Any]) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def _base(impls: Sequence[str]) -> str | None:
    return "c" if "c" in impls else (impls[0] if impls else None)


# --- targets ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal of the C core, checked on one run: num/den <= bound (or >= for "ge")."""

    label: str
    scenario: str
    num: tuple[str, str]   # (name, impl)
    den: tuple[str, str]
    bound: float
    kind: str = "le"

    def value(self, idx: Index) -> float | None:
        a = idx.get(self.scenario, *self.num)
        b = idx.get(self.scenario, *self.den)
        if a is None or b is None or not b.median:
            return None
        return a.median / b.median


TARGETS = [
    Target("WaitGroup add(1)+done(), c / F", "ops", ("WaitGroup add(1)+done()", "c"),
           (F_NAME, "floor"), 5),
    Target("WaitGroup add(1)+done(), py / c", "ops", ("WaitGroup add(1)+done()", "py"),
           ("WaitGroup add(1)+done()", "c"), 25, "ge"),
    Target("Once.do(f) when done, c / F", "ops", ("Once.do(f) when done", "c"), (F_NAME, "floor"), 2.5),
    Target("Semaphore acquire+release, c / Lock acquire+release", "ops",
           ("Semaphore acquire+release", "c"), (LOCK_PAIR, "floor"), 0.5),
    Target("Semaphore acquire+release, stdlib / c", "ops", ("Semaphore acquire+release", "stdlib"),
           ("Semaphore acquire+release", "c"), 30, "ge"),
    Target("with Semaphore, c / with Lock", "ops", ("with Semaphore: pass", "c"),
           (WITH_LOCK, "floor"), 1.0),
    Target("WeightedSemaphore acquire(1)+release(1), c / F", "ops",
           ("WeightedSemaphore acquire(1)+release(1)", "c"), (F_NAME, "floor"), 6),
    Target("Event is_set(), c / F", "ops", ("Event is_set()", "c"), (F_NAME, "floor"), 1.5),
    Target("Event set()+clear(), c / F", "ops", ("Event set()+clear()", "c"), (F_NAME, "floor"), 4),
    Target("@deferrable fn with defer(wg.done), c / try/finally", "ops",
           ("fn: wg.add(1), defer(wg.done)", "c"), ("fn: wg.add(1), try/finally wg.done()", "c"), 4),
    Target("Semaphore pair round trip, c / stdlib", "handoff", ("Semaphore pair", "c"),
           ("Semaphore pair", "stdlib"), 0.8),
    Target("Barrier(2) round trip, c / stdlib", "handoff", ("Barrier(2)", "c"),
           ("Barrier(2)", "stdlib"), 0.8),
]


def targets_table(idx: Index, scenario: str, markdown: bool) -> str:
    rows = []
    for t in TARGETS:
        if t.scenario != scenario:
            continue
        v = t.value(idx)
        if v is None:
            continue
        ok = v <= t.bound if t.kind == "le" else v >= t.bound
        goal = f"{'≤' if t.kind == 'le' else '≥'} {t.bound:g}"
        rows.append([t.label, f"{v:.2f}", goal, "met" if ok else "MISSED"])
    if not rows:
        return ""
    return table(["target", "measured", "goal", ""], rows, markdown)


def target_report(results: Iterable[Result]) -> list[dict[str, Any]]:
    """The targets as data: label, value, goal, met (for tests and scripts)."""
    idx = Index(results)
    out = []
    for t in TARGETS:
        v = t.value(idx)
        if v is not None:
            out.append({"label": t.label, "value": v, "bound": t.bound, "kind": t.kind,
                        "met": v <= t.bound if t.kind == "le" else v >= t.bound})
    return out


# --- one section per scenario -------------------------------------------------


def _side_by_side(idx: Index, scenario: str, markdown: bool, *, floor: bool = False,
                  per_f: bool = False, threads_col: bool = False, p99: bool = False,
                  scaling: bool = False) -> str:
    impls = [i for i in idx.impls(scenario) if i != "floor"]
    base = _base(impls)
    rows_keys = _ordered((r.name, r.threads) for r in idx.of(scenario))
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
    f_res = idx.get(scenario, F_NAME, "floor")
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


def _ops(idx: Index, markdown: bool) -> list[str]:
    out = [_side_by_side(idx, "ops", markdown, floor=True, per_f=True)]
    f = idx.get("ops", F_NAME, "floor")
    empty = idx.get("ops", "empty loop", "floor")
    notes = "ns per operation, median of the repeats ± interquartile range."
    if f:
        notes += f" F = {fmt(f.median)} ns, an empty C method call (threading.Lock().locked())"
        notes += f"; the timing loop's own cost ({fmt(empty.median) if empty else '?'} ns/op) is subtracted."
    if idx.get("ops", "once_value() when done", "stdlib"):
        notes += " stdlib once_value = a functools.cache'd function."
    out.append(notes)
    t = targets_table(idx, "ops", markdown)
    if t:
        out += ["Targets of the C core (this run):", t]
    return out


def _defer(idx: Index, markdown: bool) -> list[str]:
    out = []
    results = idx.of("defer")
    for threads in _ordered(r.threads for r in results):
        rows = []
        for r in results:
            if r.threads != threads:
                continue
            prim = r.name.split(":")[0]
            manual = idx.get("defer", f"{prim}: manual", r.impl, threads)
            x = r.extra
            rows.append([
                r.name, r.impl, cell(r), fmt(x.get("mean_us")), fmt(x.get("p50_us")),
                fmt(x.get("p99_us")), f"{x.get('cpu_pct', math.nan):.0f}%",
                fmt_ratio(r.median / manual.median) if manual and manual.median else "",
            ])
        clients = "client thread" if threads == 1 else "client threads"
        out.append(f"{threads} {clients}:")
        out.append(table(["scenario", "impl", "QPS", "mean latency (µs)", "p50 (µs)", "p99 (µs)",
                          "CPU", "QPS vs manual"], rows, markdown))
    out.append("QPS = handler calls per second, all clients together; latency of one call; "
               "CPU = process CPU time / wall time (100% = one core busy).")
    return out


def _alloc(idx: Index, markdown: bool) -> list[str]:
    results = idx.of("alloc")
    impls = idx.impls("alloc")
    ops_rows, size_rows = [], []
    for name in _ordered(r.name for r in results):
        if name.startswith("sizeof "):
            row = [name[len("sizeof "):]]
            for i in impls:
                r = idx.get("alloc", name, i)
                if r is None:
                    row.append("")
                    continue
                deep = int(r.extra.get("deep", r.median))
                row.append(f"{r.median:.0f}" + (f" (deep {deep:,})" if deep != int(r.median) else ""))
            size_rows.append(row)
            continue
        row = [name]
        for i in impls:
            r = idx.get("alloc", name, i)
            if r is None:
                row.append("")
                continue
            text = f"{r.median:.0f}"
            kept = r.extra.get("kept_bytes_per_op", 0.0)
            if kept >= 1:
                text += f" (kept {kept:.0f})"
            row.append(text)
        ops_rows.append(row)
    out = []
    if ops_rows:
        out.append(table(["operation", *[f"{i} B/op" for i in impls]], ops_rows, markdown))
        out.append("B/op: heap bytes one call allocates while it runs (tracemalloc peak, "
                   "measuring overhead subtracted); kept: bytes still held per call after many calls.")
    if size_rows:
        out.append(table(["object", *[f"{i} sizeof (B)" for i in impls]], size_rows, markdown))
        out.append("sys.getsizeof of a new object; deep adds what only it owns (its __dict__, "
                   "Condition, lock, waiter deque).")
    return out


def _fanout(idx: Index, markdown: bool) -> list[str]:
    return [_side_by_side(idx, "fanout", markdown, threads_col=True, scaling=True),
            "tasks/s. c, py: WaitGroup (go + wait, or done() per task + wait); "
            "stdlib: Thread.start + join, or concurrent.futures.wait. "
            "Last column: throughput relative to 1 thread."]


def _pool(idx: Index, markdown: bool) -> list[str]:
    return [_side_by_side(idx, "pool", markdown, threads_col=True, p99=True, scaling=True),
            "tasks/s; p99 = 99th percentile latency (µs) from asking for a semaphore unit to the "
            "task's end. executor.map row: stdlib = threading as is, c/py = after cysync.patch()."]


def _handoff(idx: Index, markdown: bool) -> list[str]:
    out = [_side_by_side(idx, "handoff", markdown, p99=True),
           "Median round trip (µs) between two threads ± interquartile range of the repeats' medians."]
    t = targets_table(idx, "handoff", markdown)
    if t:
        out += ["Targets of the C core (this run):", t]
    return out


_SECTIONS = {"ops": _ops, "defer": _defer, "alloc": _alloc, "fanout": _fanout, "pool": _pool,
             "handoff": _handoff}


def _title(scenario: str) -> str:
    from .scenarios import get

    return f"{scenario}: {get(scenario).TITLE}"


def header_line(meta: dict[str, Any]) -> str:
    if meta.get("free_threading"):
        gil = "free-threading build, GIL " + ("enabled" if meta.get("gil_enabled") else "disabled")
    else:
        gil = "GIL enabled"
    cpus = meta.get("usable_cpus", meta.get("cpu_count"))
    python = meta.get("implementation", "python").replace("cpython", "CPython")
    parts = [
        f"cysync {meta.get('cysync_version', '?')}",
        str(meta.get("date", "")),
        f"{python} {meta.get('python', '?')} ({gil})",
        str(meta.get("cpu_model", "?")),
        f"{cpus} CPU{'s' if cpus != 1 else ''}",
        "impls: " + ", ".join(meta.get("impls", [])),
    ]
    return " · ".join(p for p in parts if p)


def render(results: Sequence[Result], meta: dict[str, Any], markdown: bool = False) -> str:
    idx = Index(results)
    out = []
    head = header_line(meta)
    command = meta.get("command")
    if markdown:
        out.append(f"_{head}_")
        if command:
            out.append(f"Command: `{command}`")
    else:
        out.append(head)
        if command:
            out.append(f"command: {command}")
    for note in meta.get("notes", []):
        out.append(f"note: {note}")
    for scenario in SCENARIOS:
        if not idx.of(scenario):
            continue
        out.append(f"## {_title(scenario)}" if markdown else f"\n== {_title(scenario)} ==")
        out += _SECTIONS[scenario](idx, markdown)
    if len([i for i in idx.impls() if i != "floor"]) > 1:
        out.append("vs X = X's time / the base implementation's time (c when measured): "
                   "above 1 means the base is faster.")
    return "\n\n".join(out) + "\n"


# --- compare ------------------------------------------------------------------


def render_compare(old: tuple[dict[str, Any], list[Result]], new: tuple[dict[str, Any], list[Result]],
                   markdown: bool = False) -> str:
    (old_meta, old_results), (new_meta, new_results) = old, new
    old_idx, new_idx = Index(old_results), Index(new_results)
    keys = _ordered([r.key for r in new_results] + [r.key for r in old_results])
    out = [("_old: " + header_line(old_meta) + "_") if markdown else "old: " + header_line(old_meta),
           ("_new: " + header_line(new_meta) + "_") if markdown else "new: " + header_line(new_meta)]
    for scenario in SCENARIOS:
        rows = []
        for key in keys:
            if key[0] != scenario:
                continue
            a, b = old_idx.by_key.get(key), new_idx.by_key.get(key)
            unit = (b or a).unit
            change, verdict = "", ""
            if a is not None and b is not None and a.median:
                pct = (b.median - a.median) / abs(a.median) * 100
                change = f"{pct:+.1f}%"
                if abs(pct) >= 5:
                    better = pct > 0 if unit in RATE_UNITS else pct < 0
                    verdict = "better" if better else "worse"
            rows.append([key[1], key[2], str(key[3]), unit, cell(a), cell(b), change, verdict])
        if rows:
            out.append(f"## {_title(scenario)}" if markdown else f"\n== {_title(scenario)} ==")
            out.append(table(["name", "impl", "threads", "unit", "old", "new", "change", ""], rows,
                             markdown))
    out.append("change = (new - old) / old; better/worse when it moved by 5% or more.")
    return "\n\n".join(out) + "\n"


# --- JSON ---------------------------------------------------------------------


def to_json(meta: dict[str, Any], results: Sequence[Result]) -> dict[str, Any]:
    return {"schema": SCHEMA, "meta": meta, "results": [r.to_json() for r in results]}


def dump(meta: dict[str, Any], results: Sequence[Result], path: str) -> None:
    text = json.dumps(to_json(meta, results), indent=1, ensure_ascii=False, allow_nan=False)
    if path == "-":
        print(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None


def parse(data: Any, source: str) -> tuple[dict[str, Any], list[Result]]:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(
            data.get("results"), list) or not isinstance(data.get("meta"), dict):
        raise BenchError(f"{source} is not a cysync-bench JSON file (schema {SCHEMA})")
    try:
        results = [Result.from_json(r) for r in data["results"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"{source}: a result is malformed ({exc!r})") from None
    return data["meta"], results


def load(path: str) -> tuple[dict[str, Any], list[Result]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BenchError(f"{path} is not valid JSON: {exc}") from None
    return parse(data, path)


# --- plots --------------------------------------------------------------------

MATPLOTLIB_MISSING = "matplotlib is not installed: pip install matplotlib"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(results: Sequence[Result], meta: dict[str, Any], path: str) -> None:
    """Bar charts (lines over thread counts for fanout/pool), one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = Index(results)
    scenarios = [s for s in SCENARIOS if idx.of(s)]
    if not scenarios:
        raise BenchError("nothing to plot")
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(11, 4.2 * len(scenarios)), squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios):
        rs = [r for r in idx.of(scenario) if not r.name.startswith("sizeof ")]
        impls = idx.impls(scenario)
        unit = rs[0].unit if rs else ""
        if scenario in ("fanout", "pool"):
            for name in _ordered(r.name for r in rs):
                for i in impls:
                    pts = sorted((r.threads, r.median) for r in rs if r.name == name and r.impl == i)
                    if pts:
                        ax.plot(*zip(*pts), marker="o", label=f"{name} [{i}]")
            ax.set_xlabel("threads")
        else:
            labels = _ordered(f"{r.name} x{r.threads}" if scenario == "defer" else r.name for r in rs)
            width = 0.8 / max(1, len(impls))
            for k, i in enumerate(impls):
                ys = []
                for label in labels:
                    match = [r for r in rs if r.impl == i and
                             (f"{r.name} x{r.threads}" if scenario == "defer" else r.name) == label]
                    ys.append(match[0].median if match else 0.0)
                ax.barh([j + k * width for j in range(len(labels))], ys, height=width, label=i)
            ax.set_yticks([j + 0.4 - width / 2 for j in range(len(labels))])
            ax.set_yticklabels(labels, fontsize=7)
            ax.invert_yaxis()
            if scenario == "ops":
                ax.set_xscale("log")
        ax.set_title(f"{_title(scenario)} ({unit})", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(header_line(meta), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / len(scenarios)))
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
