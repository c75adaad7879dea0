"""Exceptions shared by both implementations.

``cysync._cysync`` and ``cysync.pure`` both raise these very classes (the C
module imports this one), so ``except cysync.ChanClosed`` catches what either
raises, whichever implementation made the channel. This module must import
neither of them.
"""

from __future__ import annotations

import sys

__all__ = ["ChanClosed", "ShutDown"]


class ChanClosed(Exception):
    """An operation on a channel that has been closed (Go's ``panic`` on a
    closed channel, made a catchable exception).

    Raised by:

    - ``Chan.send()`` (and a send case of ``select()``) on a closed channel,
      or on one closed while the sender waits: ``"send on closed channel"``;
    - ``Chan.close()`` on a channel closed before: ``"close of closed channel"``;
    - ``Chan.recv()`` (and a ``recv`` case of ``select()``) once the channel
      is closed and every value buffered before the close has been received:
      ``"receive from closed channel"``. Use ``recv_ok()`` (Go's
      ``v, ok := <-ch``) to see the close as ``(None, False)`` instead.

    Example::

        try:
            value = ch.recv()
        except ChanClosed:
            ...  # the producer is done
    """


ChanClosed.__module__ = "cysync"  # its public home, as for the context errors


# --- Queue ----------------------------------------------------------------------

if sys.version_info >= (3, 13):
    from queue import ShutDown
else:

    class ShutDown(Exception):
        """Raised by ``Queue.put()`` on a queue that has been shut down, and
        by ``Queue.get()`` on one shut down and empty: Python 3.13's
        ``queue.ShutDown``, for the Pythons before it. From 3.13 on,
        ``cysync.ShutDown`` *is* ``queue.ShutDown``.
        """

    ShutDown.__module__ = "cysync"
