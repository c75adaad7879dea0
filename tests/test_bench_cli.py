"""The cysync-bench command: arguments, errors, JSON, compare, markdown.

Every run here is tiny (one repeat, sub-millisecond loops, a few tasks), so the
whole file takes seconds; the figures it produces mean nothing, only their
shape is checked.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

pytest.importorskip("numpy", reason="cysync-bench needs numpy")

from cysync.bench import cli, report  # noqa: E402
from cysync.bench.runner import IMPL_NAMES, Result  # noqa: E402
from cysync.bench.scenarios import SCENARIOS  # noqa: E402

HAVE_C = importlib.util.find_spec("cysync._cysync") is not None

#: Options that make any scenario finish in a fraction of a second.
TINY = ["--repeat", "1", "--min-time", "0.0005", "--duration", "0.01", "--tasks", "5",
        "--map-tasks", "50", "--threads", "1,2", "--timeout", "10", "--no-progress"]

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__import__("cysync").__file__)))


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- argument errors ----------------------------------------------------------


def test_unknown_scenario_names_the_valid_ones(capsys):
    code, out, err = run_main(capsys, "foo")
    assert code == 2
    assert "unknown scenario 'foo'" in err
    assert "choose from: " + ", ".join(SCENARIOS) in err
    assert "Traceback" not in err and out == ""


def test_unknown_scenario_in_a_list(capsys):
    code, _, err = run_main(capsys, "--scenario", "ops,bar")
    assert code == 2
    assert "unknown scenario 'bar'" in err


def test_unknown_implementation_names_the_valid_ones(capsys):
    code, _, err = run_main(capsys, "--impl", "c,rust")
    assert code == 2
    assert "unknown implementation 'rust'" in err
    for name in IMPL_NAMES:
        assert name in err


@pytest.mark.parametrize("argv, option", [
    (["--repeat", "0"], "--repeat"),
    (["--repeat", "two"], "--repeat"),
    (["--threads", "-1"], "--threads"),
    (["--threads", "0,2"], "--threads"),
    (["--threads", "4-2"], "--threads"),
    (["--duration", "abc"], "--duration"),
    (["--duration", "-1"], "--duration"),
    (["--min-time", "nan"], "--min-time"),
    (["--tasks", "1.5"], "--tasks"),
    (["--timeout", "inf"], "--timeout"),
    (["--pin", "x"], "--pin"),
])
def test_bad_numbers_are_refused_with_a_message(capsys, argv, option):
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert option in err and "error:" in err
    assert "Traceback" not in err and out == ""


def test_bad_number_from_the_command_line_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "cysync.bench", "--repeat", "0"],
                          capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 2
    assert "--repeat" in proc.stderr and "Traceback" not in proc.stderr


def test_help(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    assert "--quick" in out and "--compare" in out


def test_list(capsys):
    code, out, _ = run_main(capsys, "--list")
    assert code == 0
    assert "ops" in out and "stdlib" in out


def test_unreadable_compare_file(capsys, tmp_path):
    code, _, err = run_main(capsys, "--compare", str(tmp_path / "missing.json"))
    assert code == 2
    assert "cannot read" in err


def test_not_a_bench_json(capsys, tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    code, _, err = run_main(capsys, "--input", str(path))
    assert code == 2
    assert "not a cysync-bench JSON file" in err


# --- tiny runs of every scenario ----------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_tiny_run_of_each_scenario(capsys, tmp_path, scenario):
    path = tmp_path / "run.json"
    code, out, err = run_main(capsys, scenario, *TINY, "--json", str(path))
    assert code == 0, err
    assert f"== {scenario}:" in out
    data = json.loads(path.read_text())
    results = [r for r in data["results"] if r["scenario"] == scenario]
    assert results
    impls = {r["impl"] for r in results}
    assert "py" in impls
    if HAVE_C:
        assert "c" in impls


def test_impl_flag_selects_implementations(capsys, tmp_path):
    path = tmp_path / "run.json"
    code, _, err = run_main(capsys, "ops", "--impl", "py", *TINY, "--json", str(path))
    assert code == 0, err
    impls = {r["impl"] for r in json.loads(path.read_text())["results"]}
    assert impls == {"py", "floor"}


@pytest.mark.skipif(not HAVE_C, reason="the C extension is not built")
def test_implementation_comes_from_the_flag_not_the_environment(tmp_path):
    # CYSYNC_PURE=1 changes what `import cysync` exports, not what is measured;
    # --subprocess workers are told the implementation on their command line.
    path = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "cysync.bench", "ops", "--impl", "c", "--subprocess", *TINY,
         "--json", str(path)],
        capture_output=True, text=True, env=_env(CYSYNC_PURE="1"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(path.read_text())
    assert {r["impl"] for r in data["results"]} == {"c", "floor"}
    assert data["meta"]["cysync_implementation"] == "python"


# --- JSON ---------------------------------------------------------------------


def test_json_schema(capsys, tmp_path):
    path = tmp_path / "run.json"
    code, _, err = run_main(capsys, "ops,handoff", *TINY, "--json", str(path))
    assert code == 0, err
    data = json.loads(path.read_text())
    assert data["schema"] == 1
    meta = data["meta"]
    for key, kind in [("python", str), ("implementation", str), ("free_threading", bool),
                      ("gil_enabled", bool), ("cpu_count", int), ("cpu_model", str),
                      ("cysync_version", str), ("cysync_implementation", str), ("date", str),
                      ("impls", list), ("command", str)]:
        assert isinstance(meta[key], kind), key
    assert meta["cysync_implementation"] in ("c", "python")
    assert data["results"]
    for r in data["results"]:
        assert set(r) >= {"scenario", "name", "impl", "unit", "median", "spread", "samples",
                          "threads"}
        assert r["scenario"] in SCENARIOS
        assert r["impl"] in (*IMPL_NAMES, "floor")
        assert isinstance(r["name"], str) and isinstance(r["unit"], str)
        assert isinstance(r["median"], float) and isinstance(r["spread"], float)
        assert isinstance(r["samples"], list) and r["samples"]
        assert all(isinstance(x, float) for x in r["samples"])
        assert isinstance(r["threads"], int) and r["threads"] >= 1
    names = {(r["scenario"], r["name"]) for r in data["results"]}
    assert ("ops", "F: Lock().locked()") in names
    assert ("handoff", "Semaphore pair") in names


def test_json_to_stdout(capsys):
    code, out, err = run_main(capsys, "ops", "--impl", "py", *TINY, "--json", "-")
    assert code == 0, err
    assert json.loads(out)["schema"] == 1


def test_markdown(capsys):
    code, out, err = run_main(capsys, "ops", *TINY, "--markdown")
    assert code == 0, err
    assert "| operation | floor |" in out
    assert "|:---|---:|" in out
    assert "## ops:" in out
    assert "Python" in out or "CPython" in out


# --- compare ------------------------------------------------------------------


def _saved(path, median, impl="c", **meta):
    m = {"python": "3.11.7", "implementation": "cpython", "free_threading": False,
         "gil_enabled": True, "cpu_count": 2, "cpu_model": "test CPU", "cysync_version": "0",
         "cysync_implementation": "c", "date": "2026-01-01", "impls": [impl], **meta}
    results = [Result("ops", "Semaphore acquire+release", impl, "ns/op", median, 1.0,
                      [median], 1),
               Result("fanout", "spawn + join", impl, "tasks/s", 1000.0 * median, 2.0,
                      [1000.0 * median], 2)]
    report.dump(m, results, str(path))
    return path


def test_compare_prints_old_and_new_side_by_side(capsys, tmp_path):
    old = _saved(tmp_path / "old.json", 100.0, date="OLD-DATE")
    new = _saved(tmp_path / "new.json", 50.0, date="NEW-DATE")
    code, out, err = run_main(capsys, "--input", str(new), "--compare", str(old))
    assert code == 0, err
    assert "OLD-DATE" in out and "NEW-DATE" in out
    assert "old" in out and "new" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("Semaphore acquire+release"))
    assert "100" in line and "50.0" in line and "-50.0%" in line and "better" in line
    line = next(ln for ln in out.splitlines() if ln.startswith("spawn + join"))
    assert "-50.0%" in line and "worse" in line  # fewer tasks/s is worse


def test_compare_with_a_fresh_run(capsys, tmp_path):
    old = tmp_path / "old.json"
    assert cli.main(["ops", "--impl", "py", *TINY, "--json", str(old)]) == 0
    capsys.readouterr()
    code, out, err = run_main(capsys, "ops", "--impl", "py", *TINY, "--compare", str(old),
                              "--markdown")
    assert code == 0, err
    assert "| name | impl | threads | unit | old | new | change |" in out
    assert "Semaphore acquire+release" in out


# --- targets and plots --------------------------------------------------------


def test_targets_are_evaluated():
    rs = [Result("ops", "F: Lock().locked()", "floor", "ns/op", 10.0, 0.0, [10.0]),
          Result("ops", "Event is_set()", "c", "ns/op", 12.0, 0.0, [12.0]),
          Result("ops", "Event set()+clear()", "c", "ns/op", 50.0, 0.0, [50.0])]
    by_label = {t["label"]: t for t in report.target_report(rs)}
    assert by_label["Event is_set(), c / F"]["met"] is True
    assert math.isclose(by_label["Event is_set(), c / F"]["value"], 1.2)
    assert by_label["Event set()+clear(), c / F"]["met"] is False


def test_plot(capsys, tmp_path):
    saved = _saved(tmp_path / "run.json", 10.0)
    png = tmp_path / "out.png"
    code, _, err = run_main(capsys, "--input", str(saved), "--plot", str(png))
    if importlib.util.find_spec("matplotlib") is None:
        assert code == 2
        assert "matplotlib is not installed: pip install matplotlib" in err
        assert not png.exists()
    else:
        assert code == 0, err
        assert png.stat().st_size > 0


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env
