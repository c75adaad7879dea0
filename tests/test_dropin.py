"""cysync.threading and cysync.patch(): switching code over without edits."""

from __future__ import annotations

import concurrent.futures
import os
import queue
import subprocess
import sys
import threading
import types

import pytest

import cysync
import cysync.threading as cthreading

TIMEOUT = 10.0  # every blocking call in these tests is bounded by this

REPLACED = ("Semaphore", "BoundedSemaphore", "Event", "Barrier")


@pytest.fixture
def patched():
    cysync.patch()
    try:
        yield
    finally:
        cysync.unpatch()


@pytest.fixture(autouse=True)
def _never_leave_patched():
    yield
    cysync.unpatch()
    for name in REPLACED:
        assert getattr(threading, name).__module__ == "threading"


# --- cysync.threading -----------------------------------------------------------


def test_namespace_is_threading_with_four_classes_replaced():
    for name in REPLACED:
        assert getattr(cthreading, name) is getattr(cysync, name)
        assert getattr(cthreading, name) is not getattr(threading, name)
    for name, value in vars(threading).items():
        if name in REPLACED or name.startswith("__"):
            continue
        assert getattr(cthreading, name) is value, name
    assert cthreading.__all__ == threading.__all__


def test_star_import_gives_the_replaced_classes():
    ns: dict = {}
    exec("from cysync.threading import *", ns)
    assert ns["Event"] is cysync.Event
    assert ns["Lock"] is threading.Lock
    assert ns["Thread"] is threading.Thread


def test_assignments_reach_the_real_threading_module():
    old = threading.excepthook

    def hook(args):  # pragma: no cover - never called
        pass

    try:
        cthreading.excepthook = hook
        assert threading.excepthook is hook
        assert cthreading.excepthook is hook
    finally:
        cthreading.excepthook = old
    assert threading.excepthook is old


def test_dropin_module_works_as_threading():
    th = cthreading
    results = []
    lock = th.Lock()
    sem = th.BoundedSemaphore(2)
    barrier = th.Barrier(3)

    def worker(i):
        with sem, lock:
            results.append(i)
        barrier.wait(TIMEOUT)

    threads = [th.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert sorted(results) == [0, 1, 2]


# --- patch() / unpatch() --------------------------------------------------------


def test_patch_replaces_and_unpatch_restores():
    originals = {name: getattr(threading, name) for name in REPLACED}
    cysync.patch()
    for name in REPLACED:
        assert getattr(threading, name) is getattr(cysync, name)
    cysync.unpatch()
    for name in REPLACED:
        assert getattr(threading, name) is originals[name]


def test_patch_and_unpatch_are_idempotent():
    originals = {name: getattr(threading, name) for name in REPLACED}
    cysync.patch()
    cysync.patch()
    assert threading.Event is cysync.Event
    cysync.unpatch()
    cysync.unpatch()
    for name in REPLACED:
        assert getattr(threading, name) is originals[name]


def test_patch_from_many_threads_at_once():
    originals = {name: getattr(threading, name) for name in REPLACED}
    start = threading.Barrier(8)
    errors = []

    def flip(i):
        try:
            start.wait(TIMEOUT)
            for _ in range(200):
                (cysync.patch if i % 2 else cysync.unpatch)()
        except BaseException as e:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=flip, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors and not any(t.is_alive() for t in threads)
    cysync.unpatch()
    for name in REPLACED:
        # Never a mix, never a cysync class left behind as "original".
        assert getattr(threading, name) is originals[name]


def _pool_workload():
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        squares = list(pool.map(lambda x: x * x, range(5000)))
        futures = [pool.submit(sum, range(i)) for i in range(500)]
        done, not_done = concurrent.futures.wait(futures, timeout=TIMEOUT)
        assert not not_done
        sums = [f.result() for f in futures]
    return squares, sums


def test_thread_pool_gives_identical_results_under_patch():
    expected = _pool_workload()
    cysync.patch()
    try:
        got = _pool_workload()
        # ThreadPoolExecutor made its idle semaphore with the patched class.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            assert isinstance(pool._idle_semaphore, cysync.Semaphore)
    finally:
        cysync.unpatch()
    assert got == expected


def _producer_consumer():
    q: queue.Queue = queue.Queue(maxsize=64)
    stop = threading.Event()
    ready = threading.Barrier(5)
    out: list[int] = []
    out_lock = threading.Lock()

    def producer(base):
        ready.wait(TIMEOUT)
        for i in range(2000):
            q.put(base + i, timeout=TIMEOUT)

    def consumer():
        ready.wait(TIMEOUT)
        while not (stop.is_set() and q.empty()):
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                continue
            with out_lock:
                out.append(item)

    producers = [threading.Thread(target=producer, args=(k * 10000,)) for k in range(3)]
    consumers = [threading.Thread(target=consumer) for _ in range(2)]
    for t in producers + consumers:
        t.start()
    for t in producers:
        t.join(TIMEOUT)
    stop.set()
    for t in consumers:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in producers + consumers)
    return type(stop), type(ready), sorted(out)


def test_queue_producers_consumers_identical_under_patch():
    std_event, std_barrier, expected = _producer_consumer()
    assert std_event is not cysync.Event
    cysync.patch()
    try:
        event_cls, barrier_cls, got = _producer_consumer()
    finally:
        cysync.unpatch()
    assert event_cls is cysync.Event and barrier_cls is cysync.Barrier
    assert got == expected
    assert len(got) == 6000


def test_threads_and_timers_run_under_patch(patched):
    # threading.Thread and Timer make Events internally at run time.
    fired = threading.Event()
    timer = threading.Timer(0.001, fired.set)
    timer.start()
    assert fired.wait(TIMEOUT)
    timer.join(TIMEOUT)
    assert not timer.is_alive()
    assert isinstance(timer.finished, cysync.Event)


@pytest.mark.parametrize("pure", ["0", "1"], ids=["c", "py"])
def test_patch_in_a_fresh_interpreter(pure):
    code = (
        "import cysync, threading, concurrent.futures as cf\n"
        "cysync.patch()\n"
        "with cf.ThreadPoolExecutor(4) as ex:\n"
        "    assert sum(ex.map(abs, range(-1000, 0))) == 500500\n"
        "print(cysync.IMPLEMENTATION, threading.Semaphore.__module__,"
        " threading.Event is cysync.Event)\n"
    )
    env = dict(os.environ, CYSYNC_PURE=pure)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, env=env).stdout.split()
    if pure == "0" and cysync.IMPLEMENTATION != "c":
        pytest.skip("the C extension is not built")
    assert out == ["c" if pure == "0" else "python", "cysync", "True"]


def test_module_type_is_still_a_module():
    assert isinstance(cthreading, types.ModuleType)
