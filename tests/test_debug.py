"""cysync.debug: the WaitGroup ledger, the registry of blocked threads, the
report, dump_on, and the pytest plugin (``--cysync-leaks``).

Debug mode is global: the ``debug`` fixture turns it on for one test and
restores what it was (the suite may run with ``--cysync-leaks``, which turns
it on for the whole run).
"""

from __future__ import annotations

import gc
import importlib.metadata
import io
import os
import re
import signal
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import tracemalloc
import weakref

import pytest

import cysync
import cysync.debug
import cysync.pure

from conftest import TIMEOUT

HERE = os.path.basename(__file__)
SRC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cysync.__file__)))
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.fixture
def debug():
    was = cysync.debug.enabled()
    cysync.debug.enable()
    yield cysync.debug
    if not was:
        cysync.debug.disable()


def thread_section(report: str, name: str) -> str:
    """The lines of the report about the thread called `name`."""
    m = re.search(rf'^thread "{re.escape(name)}" ident=\d+.*?(?=^\S|\Z)', report, re.M | re.S)
    assert m, f"no thread {name!r} in the report:\n{report}"
    return m.group(0)


def wg_section(report: str, wg) -> str | None:
    m = re.search(rf"^WaitGroup {re.escape(repr(wg))}.*?(?=^\S|\Z)", report, re.M | re.S)
    return None if m is None else m.group(0)


def blocked_in_cysync(thread: threading.Thread) -> bool:
    return "[blocked in cysync]" in thread_section(cysync.debug.report(), thread.name).splitlines()[0]


def line_of(fn) -> int:
    return fn.__code__.co_firstlineno


# --- switch -------------------------------------------------------------------


def test_enable_disable_enabled():
    was = cysync.debug.enabled()
    try:
        cysync.debug.enable()
        assert cysync.debug.enabled() is True
        cysync.debug.disable()
        assert cysync.debug.enabled() is False
    finally:
        (cysync.debug.enable if was else cysync.debug.disable)()


@pytest.mark.parametrize(("value", "expected"), [(None, "False"), ("", "False"), ("0", "False"), ("1", "True")])
def test_cysync_debug_environment_variable(value, expected):
    env = {k: v for k, v in os.environ.items() if k != "CYSYNC_DEBUG"}
    if value is not None:
        env["CYSYNC_DEBUG"] = value
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC_DIR, env.get("PYTHONPATH")) if p)
    code = (
        "import cysync, cysync.pure\n"
        "wg = cysync.pure.WaitGroup(); wg.add(1)\n"
        "key = 'added' + ' at '  # not the text of this line, which the report's stack may show\n"
        "print(cysync.debug.enabled(), key in cysync.debug.report())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [expected, expected]


# --- the WaitGroup ledger -----------------------------------------------------


def test_ledger_records_adds_and_done_retires_the_oldest(impl, debug):
    wg = impl.WaitGroup()
    me = threading.current_thread().name
    first = sys._getframe().f_lineno + 1
    wg.add(1)
    wg.add(3)
    report = debug.report()
    section = wg_section(report, wg)
    assert section is not None, report
    assert "count=4, 4 recorded adds outstanding" in section
    assert f"added at {HERE}:{first} in thread {me} (function test_ledger_records_adds" in section.replace(
        "tests/", "")
    assert f"{HERE}:{first + 1} in thread {me}" in section.replace("tests/", "")
    assert "3 of add(3) outstanding" in section
    wg.done()  # retires the oldest: the add(1)
    section = wg_section(debug.report(), wg)
    assert section is not None
    assert f"{HERE}:{first} " not in section.replace("tests/", "")
    assert f"{HERE}:{first + 1} " in section.replace("tests/", "")
    wg.add(-2)
    assert "1 of add(3) outstanding" in wg_section(debug.report(), wg)
    wg.done()
    assert wg_section(debug.report(), wg) is None  # zero: not in the report
    assert wg.wait(0)


def test_refused_add_leaves_the_ledger_as_it_was(impl, debug):
    wg = impl.WaitGroup()
    with pytest.raises(ValueError, match="negative WaitGroup counter"):
        wg.done()
    wg.add(1)
    with pytest.raises(ValueError, match="negative WaitGroup counter"):
        wg.add(-2)
    assert "1 recorded adds outstanding" in wg_section(debug.report(), wg)
    wg.done()
    assert wg_section(debug.report(), wg) is None


def test_adds_made_while_debug_was_off_are_counted_apart(impl, debug):
    wg = impl.WaitGroup()
    debug.disable()
    try:
        wg.add(2)
    finally:
        debug.enable()
    wg.add(1)
    section = wg_section(debug.report(), wg)
    assert "count=3, 1 recorded adds outstanding" in section
    assert "2 more not recorded (added while debug mode was off)" in section
    wg.add(-3)


def test_go_thread_owes_its_done_and_is_reported_with_its_function(impl, debug, tools):
    wg = impl.WaitGroup()
    release = impl.Event()

    def worker():
        release.wait(TIMEOUT)

    wg.add(1)  # a plain add, older than the go()'s
    go_line = sys._getframe().f_lineno + 1
    thread = wg.go(worker)
    tools.wait_until(lambda: blocked_in_cysync(thread))
    report = debug.report()
    section = thread_section(report, thread.name)
    assert re.search(r"blocked on <cysync\.Event at 0x[0-9a-f]+: unset> for \d+\.\d s at "
                     rf"(tests/)?{HERE}:{line_of(worker) + 1} \(function worker\)", section), section
    assert re.search(rf"started by WaitGroup\.go\(.*worker\) at (tests/)?{HERE}:{go_line} in thread ", section)
    wgs = wg_section(report, wg)
    assert f'owed by thread "{thread.name}" ident={thread.ident} [alive]' in wgs
    release.set()
    thread.join(TIMEOUT)
    # The go() thread's done() retired its own add, not the older plain one.
    wgs = wg_section(debug.report(), wg)
    assert "count=1, 1 recorded adds outstanding" in wgs
    assert "owed by" not in wgs
    wg.done()


def test_errgroup_workers_and_tasks_are_reported(impl, debug, tools):
    release = impl.Event()

    def fetch():
        release.wait(TIMEOUT)

    g = impl.ErrGroup()
    g.go(fetch)
    report = ""

    def task_running():
        nonlocal report
        report = debug.report()
        return "running task " in report and "[blocked in cysync]" in report

    tools.wait_until(task_running)
    worker = next(t for t in threading.enumerate() if t.name.startswith("ErrGroup-worker-"))
    section = thread_section(report, worker.name)
    assert "started by ErrGroup at " in section
    assert "running task test_errgroup_workers_and_tasks_are_reported.<locals>.fetch" in section
    assert f'owed by thread "{worker.name}"' in report
    release.set()
    g.wait()


# --- the registry of blocked threads -----------------------------------------


def _cases(m):
    """name -> (setup() -> (block, release, expected repr start))."""

    def wg():
        o = m.WaitGroup()
        o.add(1)
        return (lambda: o.wait(TIMEOUT)), o.done, "<cysync.WaitGroup at "

    def sem():
        o = m.Semaphore(0)
        return (lambda: o.acquire(timeout=TIMEOUT)), o.release, "<cysync.Semaphore at "

    def with_sem():
        o = m.BoundedSemaphore(1)
        o.acquire()

        def block():
            with o:
                pass

        return block, o.release, "<cysync.BoundedSemaphore at "

    def wsem():
        o = m.WeightedSemaphore(2)
        o.acquire(2)
        return (lambda: o.acquire(1, TIMEOUT)), (lambda: o.release(2)), "<cysync.WeightedSemaphore at "

    def event():
        o = m.Event()
        return (lambda: o.wait(TIMEOUT)), o.set, "<cysync.Event at "

    def barrier():
        o = m.Barrier(2)
        return (lambda: o.wait(TIMEOUT)), (lambda: o.wait(TIMEOUT)), "<cysync.Barrier at "

    def once():
        o = m.Once()
        inside, leave = threading.Event(), threading.Event()
        first = threading.Thread(target=o.do, args=(lambda: (inside.set(), leave.wait(TIMEOUT)),))
        first.start()
        assert inside.wait(TIMEOUT)

        def release():
            leave.set()
            first.join(TIMEOUT)

        return (lambda: o.do(print)), release, "<cysync.Once at "

    def recv():
        o = m.Chan()
        return (lambda: o.recv(TIMEOUT)), (lambda: o.send(1, TIMEOUT)), "<cysync.Chan at "

    def send():
        o = m.Chan()
        return (lambda: o.send(1, TIMEOUT)), (lambda: o.recv(TIMEOUT)), "<cysync.Chan at "

    def iterate():
        o = m.Chan(1)
        return (lambda: next(iter(o))), (lambda: o.send(1, TIMEOUT)), "<cysync.Chan at "

    def select():
        a, b = m.Chan(), m.Chan()
        return (lambda: m.select(a.recv, None, (b.send, 1), timeout=TIMEOUT)), (lambda: b.recv(TIMEOUT)), \
            "select(<cysync.Chan at "

    return {f.__name__: f for f in (wg, sem, with_sem, wsem, event, barrier, once, recv, send, iterate, select)}


CASES = list(_cases(cysync.pure))


@pytest.mark.parametrize("case", CASES)
def test_every_blocking_wait_is_registered_while_it_blocks(impl, debug, tools, case):
    block, release, expected = _cases(impl)[case]()
    waiter = tools.spawn(block, name=f"waiter-{case}")
    tools.wait_until(lambda: blocked_in_cysync(waiter.thread), message=debug.report())
    section = thread_section(debug.report(), waiter.thread.name)
    m = re.search(r"^  blocked on (.*) for (\d+\.\d) s at (\S+):(\d+) \(function (\S+)\)$", section, re.M)
    assert m, section
    assert m.group(1).startswith(expected), section
    assert m.group(3).endswith(HERE)  # the test's line, not cysync's
    assert "  stack (most recent call last):" in section
    release()
    waiter.join()
    assert f'"{waiter.thread.name}"' not in debug.report()


def test_a_wait_with_a_context_shows_it(impl, debug, tools):
    ctx, cancel = cysync.with_cancel(cysync.background())
    ev = impl.Event()
    waiter = tools.spawn(lambda: ev.wait(TIMEOUT, ctx=ctx), name="ctx-waiter")
    tools.wait_until(lambda: blocked_in_cysync(waiter.thread))
    section = thread_section(debug.report(), "ctx-waiter")
    assert f"    ctx {ctx!r}" in section
    cancel()
    with pytest.raises(cysync.Canceled):
        waiter.join()


def test_waits_are_not_registered_while_debug_is_off(impl, tools):
    if cysync.debug.enabled():
        pytest.skip("debug mode is on for the whole run (--cysync-leaks)")
    ev = impl.Event()
    waiter = tools.spawn(lambda: ev.wait(TIMEOUT), name="quiet-waiter")
    tools.settle()
    section = thread_section(cysync.debug.report(), "quiet-waiter")
    assert "[not in a cysync wait]" in section
    assert "debug mode is off" in cysync.debug.report()
    ev.set()
    waiter.join()


def test_debug_mode_under_contention(impl, debug, tools):
    """Threads adding, retiring, waiting and reporting at once (free-threaded
    builds: truly in parallel): the ledger ends empty, nothing raises."""
    wg, ev = impl.WaitGroup(), impl.Event()
    stop = threading.Event()

    def churn():
        for _ in range(1000):
            wg.add(2)
            wg.done()
            wg.done()
            ev.wait(1e-6)

    def reporter():
        while not stop.is_set():
            debug.report()

    r = tools.spawn(reporter)
    try:
        tools.run_threads([churn] * 6 + [lambda: wg.go(churn).join(3 * TIMEOUT)] * 2, timeout=3 * TIMEOUT)
    finally:
        stop.set()
    r.join()
    assert wg.count == 0
    assert wg_section(debug.report(), wg) is None
    assert f"{wg!r}" not in debug.report()


# --- weak references, memory --------------------------------------------------


def test_registries_keep_nothing_alive(impl, debug, tools):
    wg = impl.WaitGroup()
    wg.add(1)
    ev = impl.Event()
    ref = weakref.ref(wg)
    go_thread = wg.go(lambda: None)
    go_thread.join(TIMEOUT)
    thread_ref = weakref.ref(go_thread)
    ev.wait(0.001)
    text = repr(wg)
    assert text in debug.report()  # count=1: reported while it lives
    del wg, go_thread
    gc.collect()
    assert ref() is None
    assert thread_ref() is None
    assert text not in debug.report()


def _churn(impl, adds, waits):
    wg, ev, ch = impl.WaitGroup(), impl.Event(), impl.Chan()
    for _ in range(adds):
        wg.add(1)
        wg.done()
    for _ in range(waits):
        ev.wait(1e-6)  # a timed-out wait: registered, then unregistered
    for _ in range(waits // 10):
        with pytest.raises(TimeoutError):
            ch.recv(1e-6)
    for _ in range(waits // 10):  # WaitGroups that die above zero
        w = impl.WaitGroup()
        w.add(1)


def _memory_stays_flat(impl, adds, waits):
    _churn(impl, 2000, 200)  # warm-up
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _churn(impl, adds, waits)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    limit = (1024 if FREE_THREADED else 64) * 1024
    assert grown < limit, f"{grown} bytes more after {adds} add/done and {waits} waits in debug mode"


def test_debug_mode_leaks_nothing(impl, debug):
    _memory_stays_flat(impl, 50_000, 5_000)


@pytest.mark.slow
def test_debug_mode_leaks_nothing_millions(impl, debug):
    _memory_stays_flat(impl, 1_000_000, 100_000)


# --- dump, dump_on ------------------------------------------------------------


def test_dump_writes_the_report(impl, debug, capsys):
    out = io.StringIO()
    debug.dump(out)
    assert out.getvalue().startswith("cysync debug report: ")
    debug.dump()
    assert capsys.readouterr().err.startswith("cysync debug report: ")


class _Flushed(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushed = threading.Event()

    def flush(self) -> None:
        super().flush()
        self.flushed.set()


@pytest.mark.main_thread
@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="Unix signals")
def test_dump_on_signal_while_the_main_thread_is_blocked(impl, debug, monkeypatch):
    err = _Flushed()
    monkeypatch.setattr(sys, "stderr", err)
    ev = impl.Event()
    main = threading.main_thread()
    problems = []

    def helper():
        try:
            deadline = time.monotonic() + TIMEOUT
            while not any(w.thread() is main for w in debug._Snapshot().waits):
                if time.monotonic() > deadline:
                    raise AssertionError("the main thread never blocked")
                time.sleep(0.001)
            os.kill(os.getpid(), signal.SIGUSR1)
            if not err.flushed.wait(TIMEOUT):
                raise AssertionError("no report after the signal")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            problems.append(exc)
        finally:
            ev.set()

    previous = debug.dump_on(signal.SIGUSR1)
    try:
        thread = threading.Thread(target=helper)
        thread.start()
        assert ev.wait(TIMEOUT)  # a signal handler ran inside; the wait went on
        thread.join(TIMEOUT)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert not problems, problems
    section = thread_section(err.getvalue(), "MainThread")
    assert "[blocked in cysync]" in section
    assert re.search(r"blocked on <cysync\.Event at 0x[0-9a-f]+: unset> for \d+\.\d s at ", section), section


# --- the pytest plugin --------------------------------------------------------

PLUGIN_TESTS = '''
import threading
import pytest
import cysync._errgroup
import {module} as m

cysync._errgroup.IDLE_TIMEOUT = 0.2  # the leaked worker exits soon after its task

def test_clean():
    wg = m.WaitGroup()
    wg.go(lambda: None)
    wg.wait(10)

def test_go_thread_left_running():
    ev = m.Event()
    m.WaitGroup().go(ev.wait, 4)

def test_go_thread_ending_within_the_grace():
    ev = threading.Event()
    m.WaitGroup().go(ev.wait, 0.3)

def test_waitgroup_left_above_zero():
    global KEEP
    KEEP = m.WaitGroup()
    KEEP.add(1)

def test_thread_left_blocked():
    ev = m.Event()
    threading.Thread(target=ev.wait, args=(4,), daemon=True).start()

def test_errgroup_left_running():
    ev = m.Event()
    m.ErrGroup().go(ev.wait, 4)

@pytest.mark.cysync_leaks_ok("on purpose")
def test_marked():
    ev = m.Event()
    m.WaitGroup().go(ev.wait, 4)
'''


def _run_plugin(tmp_path, module, *args):
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(PLUGIN_TESTS.format(module=module)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC_DIR, env.get("PYTHONPATH")) if p)
    env.pop("CYSYNC_DEBUG", None)
    installed = any(ep.name == "cysync" for ep in importlib.metadata.entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "cysync._pytest_plugin"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", *plugin, *args, "test_leaky.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    return proc


@pytest.mark.parametrize("module", ["cysync._cysync", "cysync.pure"], ids=["c", "py"])
def test_plugin_fails_the_tests_that_leak(tmp_path, module):
    if module == "cysync._cysync":
        pytest.importorskip(module)
    proc = _run_plugin(tmp_path, module, "--cysync-leaks")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "cysync: --cysync-leaks: debug mode on" in out
    for name in ("test_clean", "test_go_thread_ending_within_the_grace", "test_marked"):
        assert f"PASSED test_leaky.py::{name}" in out, out
        assert f"ERROR test_leaky.py::{name}" not in out, out
    leaks = {
        "test_go_thread_left_running": "WaitGroup.go thread",
        "test_waitgroup_left_above_zero": "left above zero, added at test_leaky.py:",
        "test_thread_left_blocked": "(started by the test) blocked on <cysync.Event at ",
        "test_errgroup_left_running": "ErrGroup thread 'ErrGroup-worker-",
    }
    for name, text in leaks.items():
        assert f"ERROR test_leaky.py::{name}" in out, out
        m = re.search(rf"_+ ERROR at teardown of {name} _+\n(.*?)(?=\n_{{5,}}|\n=+ )", out, re.S)
        assert m, out
        assert "--cysync-leaks: the test left, after 1.0 s:" in m.group(1)
        assert text in m.group(1), m.group(1)
        assert "cysync debug report: " in m.group(1)


def test_plugin_is_inactive_without_the_option(tmp_path):
    proc = _run_plugin(tmp_path, "cysync.pure")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 passed" in proc.stdout
    assert "cysync-leaks" not in proc.stdout
