"""cysync: Go's sync primitives and fast drop-ins for threading, in C.

The implementation is chosen once, at import: the C extension
(``cysync._cysync``) unless ``CYSYNC_PURE=1`` is set or the extension is
missing, in which case the pure-Python twins (``cysync.pure``) are exported.
``IMPLEMENTATION`` says which: ``"c"`` or ``"python"``.
"""

from __future__ import annotations

import os
import queue as _queue
import threading as _threading
from typing import TYPE_CHECKING

from . import debug as debug  # cysync.debug: the diagnostics (docs/debug.md)
from ._version import __version__

__all__ = [
    "IMPLEMENTATION",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Canceled",
    "Chan",
    "ChanClosed",
    "Context",
    "ContextError",
    "DeadlineExceeded",
    "ErrGroup",
    "Event",
    "Once",
    "Queue",
    "RWMutex",
    "Semaphore",
    "ShutDown",
    "WaitGroup",
    "WeightedSemaphore",
    "__version__",
    "after",
    "after_func",
    "background",
    "cause",
    "defer",
    "deferrable",
    "once_func",
    "once_value",
    "patch",
    "select",
    "select_async",
    "unpatch",
    "with_cancel",
    "with_cancel_cause",
    "with_deadline",
    "with_deadline_cause",
    "with_timeout",
    "with_timeout_cause",
    "with_value",
    "without_cancel",
]

_NAMES = [n for n in __all__ if n not in ("IMPLEMENTATION", "__version__", "patch", "unpatch")]

if TYPE_CHECKING:
    # Type checkers read the pure module: it is the specification.
    from .pure import (
        Barrier,
        BoundedSemaphore,
        BrokenBarrierError,
        Canceled,
        Chan,
        ChanClosed,
        Context,
        ContextError,
        DeadlineExceeded,
        ErrGroup,
        Event,
        Once,
        Queue,
        RWMutex,
        Semaphore,
        ShutDown,
        WaitGroup,
        WeightedSemaphore,
        after,
        after_func,
        background,
        cause,
        defer,
        deferrable,
        once_func,
        once_value,
        select,
        select_async,
        with_cancel,
        with_cancel_cause,
        with_deadline,
        with_deadline_cause,
        with_timeout,
        with_timeout_cause,
        with_value,
        without_cancel,
    )

    IMPLEMENTATION: str
    """``"c"`` when the names come from the C extension, ``"python"`` when
    they are the pure twins (``CYSYNC_PURE=1``, or no extension installed)."""
else:

    def _load():
        if os.environ.get("CYSYNC_PURE", "") not in ("", "0"):
            from . import pure as impl

            return impl, "python"
        try:
            from . import _cysync as impl
        except ImportError:
            from . import pure as impl

            return impl, "python"
        return impl, "c"

    _impl, IMPLEMENTATION = _load()
    globals().update({name: getattr(_impl, name) for name in _NAMES})
    del _load, _impl


# --- patch() / unpatch() ------------------------------------------------------

_PATCHED_NAMES = ("Semaphore", "BoundedSemaphore", "Event", "Barrier")
_patch_lock = _threading.Lock()
# (module name, attribute) -> (module, the standard object patch() replaced)
_originals: dict[tuple[str, str], tuple[object, object]] = {}


def patch(*, queue: bool = False) -> None:
    """Put cysync's Semaphore, BoundedSemaphore, Event and Barrier into the
    standard ``threading`` module, so code that calls ``threading.Event()``
    (``concurrent.futures``, ``queue`` users, ``threading.Thread`` itself)
    gets cysync's from now on.  Objects made before stay what they are.
    Idempotent and safe to call from any thread; ``unpatch()`` undoes it.

    ``Lock``, ``RLock``, ``Condition`` and everything else stay the
    standard ones. To switch one module only, import ``cysync.threading``
    instead.

    The ``queue`` module is left alone unless `queue` is true: then
    ``queue.Queue`` becomes cysync's ``Queue`` as well. That is opt-in
    because a subclass of ``queue.Queue`` that overrides ``_put``/``_get``
    (its storage hooks, which cysync's Queue does not call) would then
    fail at class creation; ``LifoQueue``, ``PriorityQueue`` and
    ``SimpleQueue`` stay the standard ones either way.

    Args:
        queue: also replace ``queue.Queue`` (``import cysync.queue`` does
            it for one module only).

    Example:
        ```python
        import cysync
        cysync.patch()      # ThreadPoolExecutor's semaphore, Thread's Events...
        cysync.patch(queue=True)    # ...and queue.Queue too
        ...
        cysync.unpatch()    # the standard classes back
        ```
    """
    targets: list[tuple[object, str]] = [(_threading, name) for name in _PATCHED_NAMES]
    if queue:
        targets.append((_queue, "Queue"))
    with _patch_lock:
        mine = globals()
        for module, name in targets:
            key = (module.__name__, name)  # type: ignore[attr-defined]
            if key not in _originals:
                _originals[key] = (module, getattr(module, name))
                setattr(module, name, mine[name])


def unpatch() -> None:
    """Restore the standard ``threading`` classes (and ``queue.Queue``)
    that ``patch()`` replaced. Idempotent and safe to call from any thread."""
    with _patch_lock:
        for (_, name), (module, original) in _originals.items():
            setattr(module, name, original)
        _originals.clear()
