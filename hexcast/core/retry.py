"""Fail closed: retry an operation until the infrastructure it needs answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["until_available"]

T = TypeVar("T")


async def until_available(
    fn: Callable[[], Awaitable[T]], *, errors: tuple[type[BaseException], ...], log: Any,
    event: str, first_s: float = 0.2, max_s: float = 5.0,
) -> T:
    """Run ``fn`` until it does not raise one of ``errors``, logging ``event`` and backing off
    exponentially (``first_s`` doubling up to ``max_s``): the caller pauses, nothing is dropped
    and nothing is decided without the state it needs."""
    delay = first_s
    while True:
        try:
            return await fn()
        except errors as exc:
            log.warning(event, error=f"{type(exc).__name__}: {exc}", retry_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_s)
