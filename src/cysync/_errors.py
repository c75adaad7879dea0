"""Exceptions shared by the C module and the pure twin: one class each."""

from __future__ import annotations

__all__ = ["ChanClosed"]


class ChanClosed(Exception):
    """Raised by a send on a closed channel (or one closed while the sender
    waits), a receive from a closed and drained channel, and a second
    ``close()``: Go's "send on closed channel" and "close of closed channel"
    panics, and the end of a channel for ``recv`` (``recv_ok`` returns
    ``(None, False)`` instead)."""
