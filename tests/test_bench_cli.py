"""The cysync-bench command: arguments, errors, JSON, compare, markdown.

Every run here is tiny (one repeat, sub-millisecond loops, a few tasks), so the
whole file takes seconds; the figures it produces mean nothing, only their
shape is checked.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import math
import os
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("numpy", reason="cysync-bench needs numpy")

from cysync.bench import cli, report, runner
from cysync.bench.runner import IMPL_NAMES, BenchError, Impl, Result
from cysync.bench.scenarios import SCENARIOS, chan

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
    expected = {"py", "c"} if HAVE_C else {"py"}
    if scenario == "chan":  # the implementations that have channels, and stdlib's queues
        expected = {i for i in expected if _has_chan(i)} | {"stdlib"}
    if scenario == "asyncio":  # the implementations that have the asyncio twins
        expected = {i for i in expected if _has_async(i)}
    assert expected <= impls


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


# --- chan: with and without channels -----------------------------------------


def _has_chan(impl_name):
    return runner._LOADERS[impl_name]().has("Chan")


def _has_async(impl_name):
    return hasattr(runner._LOADERS[impl_name]().Event, "wait_async")


class FakeClosed(Exception):
    pass


class FakeChan:
    """A stand-in with cysync's Chan API, over a deque and a Condition.

    Good enough to drive the benchmark, not a channel: ``Chan(0)`` buffers
    one value instead of handing it over.
    """

    def __init__(self, cap=0):
        self.cap = cap
        self._buf = collections.deque()
        self._max = max(1, cap)
        self._cond = threading.Condition()
        self.closed = False

    def send(self, value, timeout=None):
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed or len(self._buf) < self._max, timeout):
                return False
            if self.closed:
                raise FakeClosed
            self._buf.append(value)
            self._cond.notify_all()
            return True

    def recv(self, timeout=None):
        with self._cond:
            if not self._cond.wait_for(lambda: self.closed or self._buf, timeout):
                raise TimeoutError
            if not self._buf:
                raise FakeClosed
            self._cond.notify_all()
            return self._buf.popleft()

    def recv_ok(self, timeout=None):
        try:
            return self.recv(timeout), True
        except FakeClosed:
            return None, False

    def close(self):
        with self._cond:
            if self.closed:
                raise FakeClosed
            self.closed = True
            self._cond.notify_all()

    def __len__(self):
        return len(self._buf)

    def __iter__(self):
        while True:
            value, ok = self.recv_ok()
            if not ok:
                return
            yield value


def fake_select(*cases, timeout=None, default=False):
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for i, case in enumerate(cases):
            if isinstance(case, tuple):
                if case[0](case[1], 0):
                    return i, None
            elif len(case.__self__):
                return i, case(0)
        if default or (deadline is not None and time.monotonic() >= deadline):
            return -1, None
        time.sleep(0.0001)


class FakeGoChan(FakeChan):
    """pygolang's spelling: no timeouts, recv_ for (value, ok), zero value once closed."""

    def send(self, value):
        if not super().send(value):
            raise AssertionError("unreachable: no timeout")

    def recv(self):
        return self.recv_()[0]

    def recv_(self):
        try:
            return FakeChan.recv(self), True
        except FakeClosed:
            return None, False


FAKE_DEFAULT = object()


def fake_go_select(*cases):
    # Only what the benchmark does: receive cases and a default.
    assert FAKE_DEFAULT in cases
    for i, case in enumerate(cases):
        if case is not FAKE_DEFAULT and len(case.__self__):
            return i, case()
    return cases.index(FAKE_DEFAULT), None


def _with_fake_chan(loader):
    def load():
        impl = loader()
        return Impl(impl.name, impl.description, {**impl.classes, "Chan": FakeChan,
                                                   "select": fake_select, "ChanClosed": FakeClosed})
    return load


@pytest.fixture
def fake_chans(monkeypatch):
    """c, py and pygolang with stand-in channels (c only when it is built)."""
    monkeypatch.setitem(runner._LOADERS, "py", _with_fake_chan(runner._load_py))
    if HAVE_C:
        monkeypatch.setitem(runner._LOADERS, "c", _with_fake_chan(runner._load_c))
    monkeypatch.setitem(runner._LOADERS, "pygolang", lambda: Impl(
        "pygolang", "stand-in", {"chan": FakeGoChan, "select": fake_go_select,
                                 "default": FAKE_DEFAULT}))


def test_chan_runs_without_any_chan(capsys, tmp_path, monkeypatch):
    # Today neither implementation has Chan: the scenario measures the queues.
    def without_chan(loader):
        def load():
            impl = loader()
            return Impl(impl.name, impl.description,
                        {k: v for k, v in impl.classes.items() if k not in ("Chan", "select")})
        return load

    monkeypatch.setitem(runner._LOADERS, "py", without_chan(runner._load_py))
    if HAVE_C:
        monkeypatch.setitem(runner._LOADERS, "c", without_chan(runner._load_c))
    path = tmp_path / "run.json"
    # cysync's implementations only (pygolang, when installed, has chan).
    impls = "c,py,stdlib" if HAVE_C else "py,stdlib"
    code, out, err = run_main(capsys, "chan", *TINY, "-i", impls, "--json", str(path))
    assert code == 0, err
    results = json.loads(path.read_text())["results"]
    assert {r["impl"] for r in results} == {"floor", "stdlib"}
    names = {r["name"] for r in results}
    assert {chan.PAIR.queue, chan.PAIR.simple, chan.SPSC.queue, chan.TRIP.simple, chan.W_MAP,
            chan.C_JOIN, chan.SIZE.queue} <= names
    assert "Queue" in out and "SimpleQueue" in out and "Targets" not in out


def test_chan_rows_of_implementations_with_channels(capsys, tmp_path, fake_chans):
    path = tmp_path / "run.json"
    impls = "c,py,stdlib,pygolang" if HAVE_C else "py,stdlib,pygolang"
    code, out, err = run_main(capsys, "chan", "--impl", impls, *TINY, "--json", str(path))
    assert code == 0, err
    results = json.loads(path.read_text())["results"]
    got = {(r["name"], r["impl"], r["threads"]) for r in results}
    chans = ["c", "py", "pygolang"] if HAVE_C else ["py", "pygolang"]
    for impl in chans:
        for fig in (chan.PAIR, chan.READY, chan.SELECT, chan.SIZE):
            assert (fig.chan, impl, 1) in got, (fig.chan, impl)
        for fig in (chan.SPSC, chan.TRIP):
            assert (fig.chan, impl, 2) in got, (fig.chan, impl)
        for threads in (1, 2):
            assert (chan.W_CHAN, impl, threads) in got
            assert (chan.C_CHAN, impl, threads) in got
    for impl in chans[:-1]:  # cysync's own: the Semaphore reference and the WaitGroup list
        assert (chan.SEM_TRIP.chan, impl, 2) in got
        assert (chan.C_LIST, impl, 1) in got
    assert (chan.C_LIST, "pygolang", 1) not in got
    trip = next(r for r in results if r["name"] == chan.TRIP.chan and r["impl"] == "py")
    assert trip["extra"]["p99_us"] >= trip["median"] > 0
    # The table has a column per implementation, ratios, and the patterns.
    header = next(ln for ln in out.splitlines() if ln.startswith("figure"))
    for column in (*chans, "Queue", "SimpleQueue", "vs SimpleQueue"):
        assert column in header
    assert "vs ThreadPoolExecutor.map" in out and "vs Lock + list + " in out
    labels = {t["label"] for t in report.target_report([Result.from_json(r) for r in results])}
    if HAVE_C:
        assert "Targets of the C core" in out
        assert {t.label for t in chan.TARGETS} == labels & {t.label for t in chan.TARGETS}
    else:
        assert not labels & {t.label for t in chan.TARGETS}


def test_chan_targets_are_evaluated():
    def r(name, impl, median, unit="ns/op", threads=1, **extra):
        return Result("chan", name, impl, unit, median, 0.0, [median], threads, extra)

    rs = [r("F: Lock().locked()", "floor", 10.0),
          r(chan.PAIR.chan, "c", 50.0), r(chan.PAIR.queue, "stdlib", 1000.0),
          r(chan.PAIR.simple, "stdlib", 60.0),
          r(chan.READY.chan, "c", 20.0), r(chan.SELECT.chan, "c", 45.0),
          r(chan.SPSC.chan, "c", 2e6, "items/s", 2), r(chan.SPSC.queue, "stdlib", 3e5, "items/s", 2),
          r(chan.TRIP.chan, "c", 5.0, "µs", 2), r(chan.SEM_TRIP.chan, "c", 4.0, "µs", 2),
          r(chan.SIZE.chan, "c", 120.0, "B")]
    by_label = {t["label"]: t for t in report.target_report(rs)}
    assert by_label["Chan send+recv in one thread, c / F"]["met"] is True  # 5 <= 6
    assert by_label["Queue put+get / Chan send+recv c"]["met"] is True     # 20 >= 15
    assert by_label["SimpleQueue put+get / Chan send+recv c"]["met"] is True
    assert by_label["1 producer -> 1 consumer items/s, c / Queue(128)"]["met"] is False  # 6.7
    assert by_label["unbuffered round trip, c / c Semaphore pair"]["met"] is True  # 1.25
    assert by_label["select 2 cases 1 ready default, c / recv of a ready value"]["met"] is False
    assert by_label["sys.getsizeof(Chan(0)), c, bytes"] == {
        "label": "sys.getsizeof(Chan(0)), c, bytes", "value": 120.0, "bound": 128, "kind": "le",
        "met": True}
    # Not measured (no SimpleQueue pair of threads, no pygolang): not reported.
    assert "unbuffered round trip, c / pygolang" not in by_label
    text = report.render(rs, {"impls": ["c", "stdlib"]})
    assert "sys.getsizeof(Chan(0)), c, bytes" in text and "120" in text and "≤ 128" in text


class LossyChan(FakeChan):
    """Loses what an unbuffered channel is sent: the other thread never answers."""

    def send(self, value, timeout=None):
        return True if self.cap == 0 else super().send(value, timeout)


def test_chan_a_thread_that_does_not_answer_is_an_error(capsys, monkeypatch):
    def lossy():
        impl = runner._load_py()
        return Impl("py", "lossy", {**impl.classes, "Chan": LossyChan, "select": fake_select})

    monkeypatch.setitem(runner._LOADERS, "py", lossy)
    t0 = time.monotonic()
    code, _, err = run_main(capsys, "chan", "--impl", "py", *TINY, "--timeout", "0.2")
    assert code == 1
    assert "chan round trip [py]" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 5


def test_a_pygolang_run_that_overruns_fails_instead_of_hanging():
    # pygolang's waits take no timeout: a watchdog closes its channels.
    ch = FakeGoChan(0)
    t0 = time.monotonic()
    with (
        pytest.raises(BenchError, match="did not finish within"),
        chan._Watchdog(0.05, chan._closer(ch), "a stuck run"),
    ):
        ch.recv_()
    assert time.monotonic() - t0 < 5


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env
