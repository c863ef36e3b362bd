"""A circuit breaker per provider: closed → open → half-open → closed. Pure logic, no I/O."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; after ``open_s`` lets one trial call through.

    A successful trial closes it, a failed one opens it again. ``on_change(name, old, new)`` is
    called on every transition (the sender logs and exports them).
    """

    def __init__(
        self,
        name: str,
        *,
        failures: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self._threshold = failures
        self._open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial = False

    @property
    def state(self) -> BreakerState:
        return self._state

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new and self._on_change is not None:
            self._on_change(self.name, old, new)

    def allow(self) -> bool:
        """May a call go to this provider now? In half-open, only one trial at a time."""
        if self._state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self._open_s:
                return False
            self._move(BreakerState.HALF_OPEN)
            self._trial = False
        if self._state is BreakerState.HALF_OPEN:
            if self._trial:
                return False
            self._trial = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._trial = False
        self._move(BreakerState.CLOSED)

    def abandon(self) -> None:
        """A call :meth:`allow` let through was not made (nothing was left to send): the
        half-open trial is still to be made, by the next call."""
        self._trial = False

    def failure(self) -> None:
        self._failures += 1
        self._trial = False
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._move(BreakerState.OPEN)

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when calls are allowed)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_s - (self._clock() - self._opened_at))
