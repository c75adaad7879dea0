"""Presenting results: the report, compare, JSON and plots.

The report is each scenario's own section (``render(idx, markdown)`` of its
module, goals in its ``TARGETS``), in the order of ``SCENARIOS``; this module
knows no scenario's rows. The pieces those sections are made of (numbers,
tables, targets) are in ``tables``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .runner import BenchError, Result
from .scenarios import SCENARIOS, get
from .tables import RATE_UNITS, Index, Target, cell, ordered, table

SCHEMA = 1


# --- targets ------------------------------------------------------------------


def targets() -> list[Target]:
    """Every scenario's targets, in the order of the scenarios."""
    return [t for scenario in SCENARIOS for t in get(scenario).TARGETS]


def target_report(results: Iterable[Result]) -> list[dict[str, Any]]:
    """The targets as data: label, value, goal, met (for tests and scripts)."""
    idx = Index(results)
    out = []
    for t in targets():
        v = t.value(idx)
        if v is not None:
            out.append({"label": t.label, "value": v, "bound": t.bound, "kind": t.kind,
                        "met": t.met(v)})
    return out


# --- the report ---------------------------------------------------------------


def _title(scenario: str) -> str:
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
        out += get(scenario).render(idx, markdown)
    if len([i for i in idx.impls() if i != "floor"]) > 1:
        out.append("vs X = X's time / the base implementation's time (c when measured): "
                   "above 1 means the base is faster.")
    return "\n\n".join(out) + "\n"


# --- compare ------------------------------------------------------------------


def render_compare(old: tuple[dict[str, Any], list[Result]], new: tuple[dict[str, Any], list[Result]],
                   markdown: bool = False) -> str:
    (old_meta, old_results), (new_meta, new_results) = old, new
    old_idx, new_idx = Index(old_results), Index(new_results)
    keys = ordered([r.key for r in new_results] + [r.key for r in old_results])
    out = [("_old: " + header_line(old_meta) + "_") if markdown else "old: " + header_line(old_meta),
           ("_new: " + header_line(new_meta) + "_") if markdown else "new: " + header_line(new_meta)]
    for scenario in SCENARIOS:
        rows = []
        for key in keys:
            if key[0] != scenario:
                continue
            a, b = old_idx.by_key.get(key), new_idx.by_key.get(key)
            unit = (b or a).unit  # type: ignore[union-attr]  # the key comes from a or b
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


#: One colour per implementation, the same in every panel.
COLOURS = {"floor": "tab:gray", "c": "tab:blue", "py": "tab:orange", "stdlib": "tab:green",
           "pygolang": "tab:red", "readerwriterlock": "tab:purple"}
#: Lines over thread counts: one style per row name within a panel.
LINE_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))


def _panels(idx: Index) -> list[tuple[str, str, list[tuple[str, Result]]]]:
    """(scenario, unit, [(label, result)]): a panel per scenario and unit.

    A scenario module may define ``plot_label(result) -> str | None`` (None:
    not drawn; default: the result's name).
    """
    panels = []
    for scenario in SCENARIOS:
        label = getattr(get(scenario), "plot_label", None) or (lambda r: r.name)
        rows = [(lab, r) for r in idx.of(scenario) if (lab := label(r)) is not None]
        for unit in ordered(r.unit for _, r in rows):
            panels.append((scenario, unit, [(lab, r) for lab, r in rows if r.unit == unit]))
    return panels


def plot(results: Sequence[Result], meta: dict[str, Any], path: str) -> None:
    """A panel per scenario (and unit): bars, or lines over thread counts where
    the scenario's module says ``PLOT = "lines"``; an implementation has the
    same colour in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = Index(results)
    panels = _panels(idx)
    if not panels:
        raise BenchError("nothing to plot")
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 4.2 * len(panels)), squeeze=False)
    for ax, (scenario, unit, rows) in zip(axes[:, 0], panels, strict=True):
        style = getattr(get(scenario), "PLOT", "bars")
        impls = [i for i in idx.impls(scenario) if any(r.impl == i for _, r in rows)]
        labels = ordered(lab for lab, _ in rows)
        if style == "lines":
            for k, lab in enumerate(labels):
                line, marker = LINE_STYLES[k % len(LINE_STYLES)]
                for i in impls:
                    pts = sorted((r.threads, r.median) for la, r in rows if la == lab and r.impl == i)
                    if pts:
                        ax.plot(*zip(*pts, strict=True), linestyle=line, marker=marker, color=COLOURS.get(i),
                                label=f"{lab} [{i}]")
            ax.set_xlabel("threads")
        else:
            width = 0.8 / max(1, len(impls))
            for k, i in enumerate(impls):
                ys = []
                for lab in labels:
                    match = [r for la, r in rows if r.impl == i and la == lab]
                    ys.append(match[0].median if match else 0.0)
                ax.barh([j + k * width for j in range(len(labels))], ys, height=width, label=i,
                        color=COLOURS.get(i))
            ax.set_yticks([j + 0.4 - width / 2 for j in range(len(labels))])
            ax.set_yticklabels(labels, fontsize=7)
            ax.invert_yaxis()
            if style == "log bars":
                ax.set_xscale("log")
        ax.set_title(f"{_title(scenario)} ({unit})", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(header_line(meta), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / len(panels)))
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
