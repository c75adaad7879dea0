"""The rules both implementations share, defined once.

``cysync._cysync`` (the C layer), ``cysync.pure``, the contexts and
``ErrGroup`` import these: the public names, the ranges of the fixed-width
counters of the C core, the timeout rules and the error messages.  The C
layer converts int and float timeouts itself (it is on every blocking call)
with the limits defined here, and hands every other kind of value to
``timeout_seconds`` below.
"""

from __future__ import annotations

import math

#: The names ``cysync`` exports from either implementation.
PUBLIC_NAMES = (
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
    "after",
    "after_func",
    "background",
    "cause",
    "defer",
    "deferrable",
    "once_func",
    "once_value",
    "select",
    "select_async",
    "with_cancel",
    "with_cancel_cause",
    "with_deadline",
    "with_deadline_cause",
    "with_timeout",
    "with_timeout_cause",
    "with_value",
    "without_cancel",
)

# Ranges of the C core's fixed-width counters (WaitGroup, Semaphore: 31
# bits; WeightedSemaphore, channel capacity: 63).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

#: Timeouts longer than this (2**62 ns, about 146 years) mean "forever": the
#: C core's deadlines are int64 nanoseconds and must not overflow when added
#: to the clock.
FOREVER_SECONDS = 2**62 / 1e9


def timeout_seconds(timeout: object) -> float | None:
    """A timeout by cysync's rules: ``None`` (and anything longer than
    ``FOREVER_SECONDS``, ``inf`` too) waits forever, a negative one polls
    once like 0, NaN is a ``ValueError``; ints and floats, and other real
    numbers that convert (``Decimal``, ``Fraction``, numpy scalars), are
    seconds; anything else (text too) is a ``TypeError``."""
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)):  # bool is an int, as in threading
        kind = type(timeout)
        if isinstance(timeout, (str, bytes, bytearray)) or not (
            hasattr(kind, "__float__") or hasattr(kind, "__index__")
        ):
            raise TypeError(TIMEOUT_TYPE)
        timeout = float(timeout)  # type: ignore[arg-type]
    if isinstance(timeout, float) and math.isnan(timeout):
        raise ValueError(TIMEOUT_NAN)
    if timeout > FOREVER_SECONDS:  # also +inf; an int beyond float range too
        return None
    if timeout <= 0:
        return 0.0  # poll once
    return float(timeout)


# --- error messages: both implementations raise these very strings -----------

TIMEOUT_TYPE = "timeout must be a number or None"
TIMEOUT_NAN = "timeout must not be NaN"
CTX_TYPE = "ctx must be a Context or None"
CTX_CAUSE_TYPE = "cause must be an exception instance or None"
FN_NOT_CALLABLE = "fn must be callable"

WG_NEGATIVE = "negative WaitGroup counter"
WG_OVERFLOW = "WaitGroup counter overflow"
ONCE_RECURSIVE = "Once.do called recursively"

SEMA_INITIAL_NEGATIVE = "semaphore initial value must be >= 0"
SEMA_TOO_LARGE = "Semaphore value too large"
SEMA_RELEASED_TOO_MANY = "Semaphore released too many times"  # threading's own
SEMA_RELEASE_N = "n must be one or more"
NONBLOCKING_TIMEOUT = "can't specify timeout for non-blocking acquire"  # threading's own

WSEM_SIZE_NEGATIVE = "semaphore size must be >= 0"
WSEM_SIZE_TOO_LARGE = "semaphore size too large"
WSEM_N_NEGATIVE = "n must be >= 0"
WSEM_N_TOO_BIG = "n exceeds semaphore size"
WSEM_OVER_RELEASE = "semaphore: released more than held"

BARRIER_PARTIES = "parties must be > 0"
BARRIER_PARTIES_TOO_LARGE = "parties too large"

RW_UNLOCK = "unlock of unlocked RWMutex"
RW_RUNLOCK = "runlock of unlocked RWMutex"

CHAN_CAP_NEGATIVE = "cap must be >= 0"
CHAN_CAP_TOO_LARGE = "cap too large"
CHAN_SEND_CLOSED = "send on closed channel"
CHAN_RECV_CLOSED = "receive from closed channel"
CHAN_CLOSE_CLOSED = "close of closed channel"
CHAN_RECV_TIMEOUT = "receive timed out"
#: .format(index=..., case=...)
SELECT_BAD_CASE = (
    "select() case {index} must be ch.recv, ch.recv_ok, (ch.send, value) or None, "
    "ch a Chan of this implementation; got {case!r}"
)

QUEUE_TASK_DONE = "task_done() called too many times"  # queue.Queue's own
QUEUE_TIMEOUT_NEGATIVE = "'timeout' must be a non-negative number"  # queue.Queue's own
#: .format(name=..., hooks=...)
QUEUE_SUBCLASS_HOOKS = (
    "{name}: cysync.Queue does not call queue.Queue's storage hooks ({hooks}); subclass queue.Queue instead"
)
#: The storage hooks of queue.Queue that cysync's Queue does not call.
QUEUE_HOOKS = ("_init", "_qsize", "_put", "_get")

DEFER_OUTSIDE = "defer() called outside a @deferrable function"
DEFERRABLE_GENERATOR = "deferrable cannot wrap a generator function"
DEFERRABLE_COROUTINE = "deferrable cannot wrap a coroutine function"
DEFERRABLE_ASYNCGEN = "deferrable cannot wrap an async generator function"
