"""Waiting for what other processes do: poll a check until it holds, or fail saying what was
last seen.

Tests of real processes cannot know when a record has been consumed or a message sent, only
check again; :func:`eventually` bounds that by a timeout, so a broken pipeline fails the test
with the last observed value instead of hanging it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["eventually"]

T = TypeVar("T")


def eventually(check: Callable[[], T | None], *, timeout: float = 60.0, every: float = 0.2) -> T:
    """Call ``check`` every ``every`` seconds until it returns something truthy, and return
    that; after ``timeout`` seconds raise :class:`AssertionError` with the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
