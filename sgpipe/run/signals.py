"""Stop signals and the in-process shard clock.

SIGINT (Ctrl-C) and SIGTERM set a flag that the driver's loop reads, so a stop finishes cleanly
instead of raising inside Ray calls. Where the shard runs in this very thread (the local executor),
a signal that arrives during a shard also raises `StopRequested` there, so the shard stops at once
rather than at its end; and the shard's time limit is a timer (SIGALRM) that raises
`ShardTimedOut`. Both are `BaseException`s, like `KeyboardInterrupt`: the stages' own
`except Exception` (split-and-retry of a failing batch, a sample's failure status) never takes them
for a sample's fault. Handlers can only be set in the main thread; a run started from another thread
(a test's, a notebook's) keeps the process's handlers and has no in-process time limit.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator


class ShardInterrupt(BaseException):
    """The shard running in this thread was stopped from outside its code."""


class StopRequested(ShardInterrupt):
    def __init__(self, signal_number: int):
        super().__init__(signal_number)
        self.signal_number = signal_number


class ShardTimedOut(ShardInterrupt):
    pass


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class StopSignals:
    """Context manager: SIGINT and SIGTERM set `received`; inside `interrupting()` they also raise
    `StopRequested` in the running code."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._interrupting = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if in_main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        self.received = number
        if self._interrupting:
            self._interrupting = False  # once: the stop's own clean-up must not be interrupted again
            raise StopRequested(number)

    @contextlib.contextmanager
    def interrupting(self) -> Iterator[None]:
        """A signal received inside the block raises `StopRequested` there."""
        if self.received is not None:
            raise StopRequested(self.received)
        self._interrupting = True
        try:
            yield
        finally:
            self._interrupting = False

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `ShardTimedOut` in this (main) thread once `seconds` have passed inside the block; no
    limit outside the main thread. Code that never returns to Python (a hung kernel call) is not
    interrupted: the Ray executor, which kills the worker process, covers that case."""
    if not in_main_thread() or seconds <= 0:
        yield
        return
    armed = True

    def expire(number: int, frame: Any) -> None:
        if armed:
            raise ShardTimedOut(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
