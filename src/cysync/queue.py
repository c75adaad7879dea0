"""The standard ``queue`` module with cysync's ``Queue``.

``import cysync.queue as queue`` gives code the namespace of the standard
library's ``queue`` with ``Queue`` replaced by cysync's (C core, or the pure
twin under ``CYSYNC_PURE=1``).  Everything else *is* the standard module's
object: ``Empty``, ``Full``, ``ShutDown`` (3.13+), ``LifoQueue``,
``PriorityQueue`` and ``SimpleQueue`` (the first two subclass the standard
``queue.Queue`` and its storage hooks, which cysync's Queue does not have).

Before Python 3.13 the standard module has no ``ShutDown``: this one has
cysync's, the class cysync's Queue raises.
"""

import queue as _std

from . import Queue, ShutDown

#: The names this module replaces (or adds); everything else is the standard module's.
REPLACED = {"Queue": Queue, "ShutDown": ShutDown}

_OWN = {"__name__", "__doc__", "__file__", "__spec__", "__loader__", "__package__", "__cached__",
        "__builtins__", "REPLACED"}

globals().update({k: v for k, v in vars(_std).items() if k not in _OWN})
globals().update(REPLACED)
__all__ = list(_std.__all__) + [name for name in REPLACED if name not in _std.__all__]
