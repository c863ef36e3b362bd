"""Rows left ``sending`` (a crash, a redelivery, an ambiguous timeout): ask the provider that was
called whether it saw each message, by its client reference.

What it saw is ``accepted`` with its id; what it never saw goes back to ``queued`` to be sent
again. A provider without lookup cannot tell: those rows become ``unknown`` and are never
resent blindly. A lookup that keeps failing leaves the rows ``sending`` for the next sweep.
"""

from __future__ import annotations

import asyncio
import random
import time

from hexcast.core.errors import ProviderUnavailable
from hexcast.core.logging import get_logger
from sender import metrics
from sender.journal import Store, with_state
from sender.models import MessageState
from sender.outcome import Outcome
from sender.providers import ProviderResult
from sender.repo import MessageRow
from sender.routing import Route, Router

__all__ = ["Reconciler", "backoff"]

log = get_logger("hexcast.sender")
Q, S = MessageState.QUEUED, MessageState.SENDING
_LOOKUP_CONCURRENCY = 16


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped at 10 s."""
    return float(random.uniform(0, min(10.0, 0.2 * 2**attempt)))


class Reconciler:
    def __init__(self, *, store: Store, router: Router, max_attempts: int) -> None:
        self._store = store
        self._router = router
        self._max_attempts = max_attempts

    async def reconcile(self, rows: list[MessageRow], outcome: Outcome) -> list[MessageRow]:
        """Accept what the providers saw; returns the rows requeued (now ``queued``)."""
        resend: list[MessageRow] = []
        by_provider: dict[str | None, list[MessageRow]] = {}
        for row in rows:
            by_provider.setdefault(row.provider, []).append(row)
        for name, group in by_provider.items():
            route = self._router.by_name(name)
            if route is None or not route.adapter.supports_lookup:
                why = f"provider {name} has no lookup: outcome unknown, not resent"
                outcome.unknown += len(await self._store.move(group, MessageState.UNKNOWN, [S], why))
                continue
            resend += await self._by_lookup(route, group, outcome)
        return resend

    async def _by_lookup(
        self, route: Route, rows: list[MessageRow], outcome: Outcome
    ) -> list[MessageRow]:
        gate = asyncio.Semaphore(_LOOKUP_CONCURRENCY)

        async def one(row: MessageRow) -> ProviderResult | None:
            async with gate:
                return await self._lookup(route, row.client_ref)

        try:
            found = await asyncio.gather(*(one(r) for r in rows))
        except ProviderUnavailable as exc:  # left in `sending`; the next sweep tries again
            log.warning("reconcile_postponed", provider=route.spec.name, error=str(exc),
                        rows=len(rows))
            return []
        seen = [(r, f.provider_message_id) for r, f in zip(rows, found, strict=True)
                if f is not None and f.provider_message_id]
        outcome.accepted += await self._store.accept(seen)
        never = [r for r, f in zip(rows, found, strict=True) if f is None]
        requeued = await self._store.move(never, Q, [S], f"{route.spec.name} never saw it; resending")
        log.info("reconciled", provider=route.spec.name, seen=len(seen), resend=len(requeued))
        return [with_state(r, Q) for r in requeued]

    async def _lookup(self, route: Route, client_ref: str) -> ProviderResult | None:
        for attempt in range(self._max_attempts):
            started = time.perf_counter()
            try:
                found = await route.adapter.lookup(client_ref)
            except ProviderUnavailable as exc:
                metrics.observe_call(route.spec.name, "lookup", exc, started)
                await asyncio.sleep(backoff(attempt))
                continue
            metrics.observe_call(route.spec.name, "lookup", None, started)
            return found
        raise ProviderUnavailable(f"lookup of {client_ref} failed {self._max_attempts} times")

