"""The ``cysync-bench`` command (also ``python -m cysync.bench``).

    cysync-bench                       every scenario, every implementation
    cysync-bench --quick               the same in well under a minute
    cysync-bench ops handoff --impl c,stdlib
    cysync-bench --quick --markdown    tables for the README
    cysync-bench --json run.json       and later: cysync-bench --compare run.json

The implementations are chosen with ``--impl``, never through the
environment: a ``--subprocess`` worker is told on its command line what to
measure. Usage errors exit with status 2 and a message (no traceback), a
benchmark that cannot finish with status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import report
from .runner import (
    IMPL_NAMES,
    NUMPY_MISSING,
    BenchError,
    Progress,
    Result,
    Settings,
    collect_meta,
    load_impls,
    np,
    parse_cpu_list,
    pin_cpus,
)
from .scenarios import SCENARIOS, get

#: Run lengths: --quick, and the default. Each can be overridden by its option.
QUICK = {"repeat": 3, "min_time": 0.005, "duration": 0.05, "tasks": 200}
FULL = {"repeat": 5, "min_time": 0.03, "duration": 0.25, "tasks": 1000}


class UsageError(Exception):
    """A bad command line: reported with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# --- argument types: refuse bad values with a message --------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


def _thread_counts(text: str) -> list[int]:
    counts: list[int] = []
    bad = argparse.ArgumentTypeError(
        f"expected positive thread counts like 1,2,4 or 1-8, not {text!r}")
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise bad from None
        if a < 1 or b < a or b > 4096:
            raise bad
        counts += [n for n in range(a, b + 1) if n not in counts]
    return counts


def _cpu_list(text: str) -> set[int]:
    try:
        return parse_cpu_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(values: Sequence[str] | None, valid: Sequence[str], what: str) -> list[str] | None:
    """Comma-separated names from one or more options, checked against ``valid``."""
    if not values:
        return None
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name == "all":
                names += [n for n in valid if n not in names]
                continue
            if name not in valid:
                raise UsageError(f"unknown {what} {name!r} (choose from: {', '.join(valid)})")
            if name not in names:
                names.append(name)
    if not names:
        raise UsageError(f"no {what} given (choose from: {', '.join(valid)})")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="cysync-bench",
        description="Measure cysync's primitives in C (c), in pure Python (py) and in the "
                    "standard library (stdlib), side by side, with floors from the same run.",
        epilog=f"Scenarios: {', '.join(SCENARIOS)}. Implementations: {', '.join(IMPL_NAMES)} "
               "(pygolang, readerwriterlock, aiologic and janus only when installed).",
    )
    p.add_argument("scenario_args", nargs="*", metavar="SCENARIO",
                   help="scenarios to run (default: all)")
    p.add_argument("-s", "--scenario", action="append", metavar="LIST",
                   help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    p.add_argument("-i", "--impl", action="append", metavar="LIST",
                   help="comma-separated implementations (default: c,py,stdlib, and pygolang, "
                        "readerwriterlock, aiologic and janus when installed)")
    p.add_argument("-q", "--quick", action="store_true",
                   help="short runs: everything in under a minute on 2 cores")
    p.add_argument("--repeat", type=_positive_int, metavar="N",
                   help=f"repeats of each measurement (default {FULL['repeat']}, quick {QUICK['repeat']})")
    p.add_argument("--min-time", type=_seconds, metavar="SECONDS",
                   help=f"length of one repeat of an ops loop (default {FULL['min_time']}, "
                        f"quick {QUICK['min_time']})")
    p.add_argument("--duration", type=_seconds, metavar="SECONDS",
                   help=f"length of one defer or handoff run (default {FULL['duration']}, "
                        f"quick {QUICK['duration']})")
    p.add_argument("--tasks", type=_positive_int, metavar="M",
                   help=f"tasks per thread in fanout and pool (default {FULL['tasks']}, "
                        f"quick {QUICK['tasks']})")
    p.add_argument("--map-tasks", type=_positive_int, default=20_000, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=_thread_counts, metavar="LIST",
                   help="thread counts like 1,2,4 or 1-8 (default: fanout/pool 1 .. 2x cores, "
                        "defer 1 and cores)")
    p.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="longest any benchmark thread may wait before the run fails (default 10)")
    p.add_argument("--pin", type=_cpu_list, metavar="CPUS",
                   help="pin the run to these CPUs, like 0 or 0,2-3 (Linux)")
    p.add_argument("--subprocess", action="store_true",
                   help="run each scenario in a fresh interpreter and merge the results")
    p.add_argument("--markdown", action="store_true", help="print GitHub markdown tables")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    p.add_argument("--compare", metavar="OLD.json",
                   help="print a saved run and this one side by side")
    p.add_argument("--input", metavar="FILE",
                   help="use the results saved in FILE instead of running (with --compare, "
                        "--markdown, --plot)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the results (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress indicator on stderr")
    p.add_argument("--list", action="store_true", help="list scenarios and implementations, then exit")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    # A worker's place in the parent's run, for its progress line.
    p.add_argument("--worker-of", metavar="LIST", help=argparse.SUPPRESS)
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(list(argv))
    scenarios = _names([*(args.scenario or []), *args.scenario_args], SCENARIOS, "scenario")
    args.scenarios = scenarios or list(SCENARIOS)
    args.impls = _names(args.impl, IMPL_NAMES, "implementation")
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.worker and args.subprocess:
        raise UsageError("--worker and --subprocess exclude each other")
    return args


# --- running ------------------------------------------------------------------


def _settings(args: argparse.Namespace, impls: list[Any], progress: Progress | None) -> Settings:
    return Settings(impls=impls, repeat=args.repeat, min_time=args.min_time,
                    duration=args.duration, tasks=args.tasks, map_tasks=args.map_tasks,
                    threads=args.threads, timeout=args.timeout, quick=args.quick,
                    progress=progress)


def run_in_process(args: argparse.Namespace, impls: list[Any]) -> list[Result]:
    everything = args.worker_of.split(",") if args.worker_of else args.scenarios
    progress = Progress(everything, enabled=not args.no_progress)
    settings = _settings(args, impls, progress)
    results: list[Result] = []
    try:
        for name in args.scenarios:
            results += get(name).run(settings)
    finally:
        progress.finish()
    return results


def _worker_argv(args: argparse.Namespace, scenario: str, impls: list[Any]) -> list[str]:
    argv = ["--worker", "--worker-of", ",".join(args.scenarios), "--scenario", scenario,
            "--impl", ",".join(i.name for i in impls),
            "--repeat", str(args.repeat), "--min-time", repr(args.min_time),
            "--duration", repr(args.duration), "--tasks", str(args.tasks),
            "--map-tasks", str(args.map_tasks), "--timeout", repr(args.timeout)]
    if args.quick:
        argv.append("--quick")
    if args.threads:
        argv += ["--threads", ",".join(map(str, args.threads))]
    if args.no_progress:
        argv.append("--no-progress")
    return argv


def run_in_subprocesses(args: argparse.Namespace, impls: list[Any]) -> list[Result]:
    """Each scenario in a fresh ``python -m cysync.bench --worker`` (pinning is inherited)."""
    import cysync

    env = dict(os.environ)
    # The worker must import this very cysync, wherever it was found.
    src = os.path.dirname(os.path.dirname(os.path.abspath(cysync.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    results: list[Result] = []
    for scenario in args.scenarios:
        cmd = [sys.executable, "-m", "cysync.bench", *_worker_argv(args, scenario, impls)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, text=True, check=False)
        if proc.returncode != 0:
            raise BenchError(f"the worker for {scenario} failed (exit status {proc.returncode})")
        try:
            _, rs = report.parse(json.loads(proc.stdout), f"the worker for {scenario}")
        except ValueError as exc:
            raise BenchError(f"the worker for {scenario} printed no JSON: {exc}") from None
        results += rs
    return results


# --- main ---------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"cysync-bench: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except UsageError as exc:
        _error(str(exc))
        print("Try 'cysync-bench --help' for more information.", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    if np is None:
        _error(NUMPY_MISSING)
        return 2
    if args.plot and not report.have_matplotlib():
        _error(report.MATPLOTLIB_MISSING)
        return 2
    try:
        # Saved runs are read first: a file that cannot be read is a usage error.
        old = report.load(args.compare) if args.compare else None
        saved = report.load(args.input) if args.input else None
    except BenchError as exc:
        _error(str(exc))
        return 2
    try:
        return _main(args, argv, old, saved)
    except BenchError as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _main(args: argparse.Namespace, argv: list[str], old: Any, saved: Any) -> int:
    if args.list:
        impls, notes = load_impls(None)
        print("scenarios:", ", ".join(SCENARIOS))
        print("implementations:", ", ".join(IMPL_NAMES))
        print("available here:", ", ".join(i.name for i in impls))
        for note in notes:
            print("note:", note)
        return 0
    if saved is not None:
        meta, results = saved
    else:
        if args.pin:
            pin_cpus(args.pin)
        impls, notes = load_impls(args.impls)
        if not args.worker:
            for note in notes:
                print(f"cysync-bench: {note}", file=sys.stderr)
        if not impls:
            raise BenchError("none of the implementations asked for can be loaded")
        meta = collect_meta(impls, args.scenarios)
        meta["command"] = " ".join(["cysync-bench", *argv])
        meta["notes"] = notes
        meta["settings"] = {"repeat": args.repeat, "min_time": args.min_time,
                            "duration": args.duration, "tasks": args.tasks,
                            "threads": args.threads, "quick": args.quick,
                            "subprocess": args.subprocess, "pin": sorted(args.pin or [])}
        if args.subprocess:
            results = run_in_subprocesses(args, impls)
        else:
            results = run_in_process(args, impls)
    if args.worker:
        report.dump(meta, results, "-")
        return 0
    if args.json:
        report.dump(meta, results, args.json)
    if args.json != "-":
        if old is not None:
            text = report.render_compare(old, (meta, results), markdown=args.markdown)
        else:
            text = report.render(results, meta, markdown=args.markdown)
        sys.stdout.write(text)
    if args.plot:
        report.plot(results, meta, args.plot)
        print(f"cysync-bench: plot written to {args.plot}", file=sys.stderr)
    return 0
