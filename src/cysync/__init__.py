"""cysync: Go's sync primitives and fast drop-ins for threading, in C.

The implementation is chosen once, at import: the C extension
(``cysync._cysync``) unless ``CYSYNC_PURE=1`` is set or the extension is
missing, in which case the pure-Python twins (``cysync.pure``) are exported.
``IMPLEMENTATION`` says which: ``"c"`` or ``"python"``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._version import __version__

__all__ = [
    "IMPLEMENTATION",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Event",
    "Once",
    "Semaphore",
    "WaitGroup",
    "WeightedSemaphore",
    "__version__",
    "once_func",
    "once_value",
]

_NAMES = [n for n in __all__ if n not in ("IMPLEMENTATION", "__version__")]

if TYPE_CHECKING:
    # Type checkers read the pure module: it is the specification.
    from .pure import (
        Barrier,
        BoundedSemaphore,
        BrokenBarrierError,
        Event,
        Once,
        Semaphore,
        WaitGroup,
        WeightedSemaphore,
        once_func,
        once_value,
    )

    IMPLEMENTATION: str
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
