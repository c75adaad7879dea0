"""The package: choice of implementation, exported names, free-threading."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import sysconfig

import pytest

import cysync
import cysync.pure

# The primitives both implementations export (spec: the same names in both).
NAMES = [
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Event",
    "Once",
    "RWMutex",
    "Semaphore",
    "WaitGroup",
    "WeightedSemaphore",
    "once_func",
    "once_value",
]
# Where ``import cysync`` comes from, for the subprocesses.
SRC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cysync.__file__)))


def extension():
    try:
        return importlib.import_module("cysync._cysync")
    except ImportError:
        return None


def run_python(code: str, **env_changes: str | None) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout, stripped."""
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC_DIR, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --- which implementation -----------------------------------------------------------

@pytest.mark.parametrize("pure_env", [None, "", "0"])
def test_implementation_is_c_when_the_extension_imports(pure_env):
    out = run_python("import cysync; print(cysync.IMPLEMENTATION)", CYSYNC_PURE=pure_env)
    if extension() is not None:
        assert out == "c"
    elif os.environ.get("CYSYNC_REQUIRE_EXT") == "1":
        pytest.fail("cysync._cysync is not importable (CYSYNC_REQUIRE_EXT=1)")
    else:
        assert out == "python"  # the fallback


def test_cysync_pure_env_selects_the_pure_classes():
    code = (
        "import cysync, cysync.pure\n"
        f"names = {NAMES!r}\n"
        "print(cysync.IMPLEMENTATION)\n"
        "print(all(getattr(cysync, n) is getattr(cysync.pure, n) for n in names))\n"
        "print(cysync.WaitGroup is cysync.pure.WaitGroup)\n"
    )
    assert run_python(code, CYSYNC_PURE="1").split() == ["python", "True", "True"]


def test_package_exports_the_chosen_implementation():
    assert cysync.IMPLEMENTATION in ("c", "python")
    module = importlib.import_module(
        "cysync._cysync" if cysync.IMPLEMENTATION == "c" else "cysync.pure")
    for name in NAMES:
        assert getattr(cysync, name) is getattr(module, name), name
    if os.environ.get("CYSYNC_PURE", "") in ("", "0") and extension() is not None:
        assert cysync.IMPLEMENTATION == "c"


# --- names ---------------------------------------------------------------------------

def test_version():
    from cysync._version import __version__

    assert isinstance(cysync.__version__, str)
    assert cysync.__version__ == __version__
    assert re.match(r"^\d+\.\d+(\.\d+)?([abc]|rc|\.dev|\.post|$)", cysync.__version__)


def test_package_all():
    assert len(cysync.__all__) == len(set(cysync.__all__))
    for name in cysync.__all__:
        assert hasattr(cysync, name), name
    assert set(NAMES) <= set(cysync.__all__)
    assert {"IMPLEMENTATION", "__version__"} <= set(cysync.__all__)


def test_module_exports(impl):
    assert set(NAMES) <= set(impl.__all__)
    for name in impl.__all__:
        assert hasattr(impl, name), name
    # Everything an implementation exports, the package re-exports.
    assert set(impl.__all__) <= set(cysync.__all__)
    for name in NAMES:
        assert callable(getattr(impl, name))
        assert isinstance(getattr(impl, name), type), f"{name} should be a class"


def test_both_modules_export_the_same_names(c_impl):
    assert sorted(c_impl.__all__) == sorted(cysync.pure.__all__)


@pytest.mark.parametrize("name", NAMES)
def test_both_classes_have_the_same_public_attributes(c_impl, name):
    def public(cls):
        return {a for a in dir(cls) if not a.startswith("_")}

    assert public(getattr(c_impl, name)) == public(getattr(cysync.pure, name))


def test_semaphore_private_attributes_exist(impl):
    # threading's semaphores are often inspected through these.
    assert impl.Semaphore(2)._value == 2
    assert impl.BoundedSemaphore(2)._initial_value == 2
    assert callable(impl.Event()._at_fork_reinit)


# --- free-threading -------------------------------------------------------------------

free_threaded_only = pytest.mark.skipif(
    not sysconfig.get_config_var("Py_GIL_DISABLED"),
    reason="needs a free-threaded CPython build (3.13t+)",
)


@free_threaded_only
def test_gil_stays_disabled_after_import_cysync():
    out = run_python("import cysync; import sys; print(sys._is_gil_enabled())", PYTHON_GIL=None)
    assert out == "False"


@free_threaded_only
def test_gil_stays_disabled_after_importing_the_extension(c_impl):
    code = (
        "import sys, cysync._cysync as c\n"
        "c.Once().do(lambda: None)\n"
        "print(sys._is_gil_enabled())\n"
    )
    assert run_python(code, PYTHON_GIL=None) == "False"


# --- C objects are small ------------------------------------------------------------

def test_c_objects_are_small(c_impl):
    # 64 bytes on a default build; a free-threaded build's object header is
    # larger (32 bytes instead of 16) and the budget grows by the difference.
    budget = 64 + (sys.getsizeof(object()) - 16)
    objects = {
        "WaitGroup": c_impl.WaitGroup(),
        "Once": c_impl.Once(),
        "Semaphore": c_impl.Semaphore(1),
        "BoundedSemaphore": c_impl.BoundedSemaphore(1),
        "WeightedSemaphore": c_impl.WeightedSemaphore(10),
        "Event": c_impl.Event(),
        "once_func": c_impl.once_func(len),
        "once_value": c_impl.once_value(len),
    }
    sizes = {name: sys.getsizeof(obj) for name, obj in objects.items()}
    too_big = {name: size for name, size in sizes.items() if size > budget}
    assert not too_big, f"larger than {budget} bytes: {too_big}"
