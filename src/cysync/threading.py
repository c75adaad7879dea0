"""The standard ``threading`` module with cysync's drop-in classes.

``import cysync.threading as threading`` gives code the namespace of the
standard library's ``threading`` with ``Semaphore``, ``BoundedSemaphore``,
``Event`` and ``Barrier`` replaced by cysync's (C core, or the pure twins
under ``CYSYNC_PURE=1``).  Everything else *is* the standard module's object:
``Lock``, ``RLock``, ``Condition``, ``Thread``, ``local``, ``excepthook``...

Names are copied once, at import.  Assigning to a name here (for example
``threading.excepthook = hook``) is forwarded to the real ``threading`` module
as well, so hooks installed through this module take effect.
"""

import sys as _sys
import threading as _std
import types as _types

from . import Barrier, BoundedSemaphore, Event, Semaphore

#: The names this module replaces; everything else is the standard module's.
REPLACED = {
    "Semaphore": Semaphore,
    "BoundedSemaphore": BoundedSemaphore,
    "Event": Event,
    "Barrier": Barrier,
}

_OWN = {"__name__", "__doc__", "__file__", "__spec__", "__loader__", "__package__", "__cached__",
        "__builtins__", "REPLACED"}

globals().update({k: v for k, v in vars(_std).items() if k not in _OWN})
globals().update(REPLACED)
__all__ = list(_std.__all__)


class _ThreadingModule(_types.ModuleType):
    """Forwards assignments to the standard ``threading`` module too."""

    def __setattr__(self, name: str, value: object) -> None:
        if name not in REPLACED and name not in _OWN:
            setattr(_std, name, value)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name not in REPLACED and name not in _OWN and hasattr(_std, name):
            delattr(_std, name)
        super().__delattr__(name)


_sys.modules[__name__].__class__ = _ThreadingModule
