"""Poison isolation's fallback: a group that fails is retried in halves, down to single items.

Records are screened item by item when they are read (:meth:`hexcast.core.wire.WireRecord.screen`);
what the screen cannot know (a foreign key, a number out of a column's range, a script error)
fails a whole multi-row statement or call. :func:`isolate` then runs the halves of the group,
and their halves, until the items that fail on their own are found: the others commit, and the
caller dead-letters only those. The work must be idempotent (the retries redo the good items'
part of it), which every caller's is: inserts dedupe on their keys and state moves are
conditional. When nothing fails it costs one call, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

__all__ = ["Failed", "isolate"]

T = TypeVar("T")
R = TypeVar("R")
Failed = tuple[T, str]
"""An item that fails on its own, with why."""


async def isolate(
    items: Sequence[T], run: Callable[[list[T]], Awaitable[R]], *, log: Any, event: str,
    tried: Exception | None = None, passthrough: tuple[type[Exception], ...] = (),
) -> tuple[list[R], list[Failed[T]]]:
    """``run(items)``; if it raises, ``run`` on each half, recursively. Returns the results of
    the groups that ran, and the items that failed alone with the error's type and text.
    ``tried``: what ``run(items)`` already raised, so the whole group is not run again.

    Errors that mean the infrastructure is down are not the items' fault: ``run`` retries
    them, or they are in ``passthrough`` and propagate. Cancellation is never caught.
    """
    if tried is None:
        try:
            return [await run(list(items))], []
        except passthrough:
            raise
        except Exception as exc:  # noqa: BLE001 - an item's fault until proven otherwise
            tried = exc
    why = f"{type(tried).__name__}: {tried}"
    if len(items) <= 1:
        log.warning(event, items=len(items), error=why[:300])
        return [], [(item, why) for item in items]
    log.info(event, items=len(items), error=why[:300], retry="in halves")
    mid = len(items) // 2
    first, first_failed = await isolate(items[:mid], run, log=log, event=event,
                                        passthrough=passthrough)
    second, second_failed = await isolate(items[mid:], run, log=log, event=event,
                                          passthrough=passthrough)
    return first + second, first_failed + second_failed
