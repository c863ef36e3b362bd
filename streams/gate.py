"""Applies cooldowns, per-user caps and promotion budgets to a record's candidates in Redis.

One Lua call (:data:`streams.lua.GEO_GATE`) per batch of records (at most one per record),
covering all of their candidates, so the hot path never waits on Redis per event. State lives in Redis, so a
restarted or rebalanced matcher keeps it. Budgets are given back from the ``delivery`` topic
(:meth:`SendGate.release`). Redis errors pause matching with backoff: it fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from hexcast.core.cache import Keys
from hexcast.core.logging import get_logger
from hexcast.core.retry import until_available
from sender import DeliveryEvent, Lane, MessageState, SendRequest
from streams.lua import GEO_GATE, RELEASE_BUDGET
from streams.matcher import Candidate, MatchResult

__all__ = ["GATE_REASONS", "RELEASING_STATES", "SendGate"]

log = get_logger("hexcast.matcher.gate")
T = TypeVar("T")
GATE_REASONS = {1: "cooldown", 2: "cap", 3: "budget", 4: "max_per_visit"}
RELEASING_STATES = frozenset({MessageState.SUPPRESSED, MessageState.EXPIRED, MessageState.FAILED})
"""Final states of a geo message that never reached the handset: its budget slot comes back."""
_INFRA = (OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class SendGate:
    def __init__(
        self, client: aioredis.Redis, keys: Keys, *, cap_per_day: int, cap_per_24h: int
    ) -> None:
        self._client = client
        self._keys = keys
        self._caps = (cap_per_day, cap_per_24h)
        self._gate = client.register_script(GEO_GATE)
        self._release = client.register_script(RELEASE_BUDGET)

    def _budget_keys(self, promotion_id: int) -> tuple[str, str]:
        base = self._keys("geo", "budget", promotion_id)
        return base, f"{base}:released"

    def _args(
        self, results: Sequence[MatchResult]
    ) -> tuple[list[tuple[int, Candidate]], list[str], list[str | int]]:
        flat: list[tuple[int, Candidate]] = []
        keys: list[str] = []
        rows: list[list[str | int]] = []
        max_day, max_24h = self._caps
        visit_no = 0
        for n, result in enumerate(results):
            for visit in result.visits:
                visit_no += 1
                for c in visit.candidates:
                    flat.append((n, c))
                    keys += [self._keys("geo", "cool", c.tenant_id, c.user_id, c.store_id,
                                        c.promotion_id),
                             self._keys("geo", "caps", c.tenant_id, c.user_id),
                             *self._budget_keys(c.promotion_id)]
                    rows.append([visit_no, c.message_key, c.event_id, c.cooldown_s * 1000,
                                 int(c.day_start.timestamp() * 1000),
                                 int(c.day_end.timestamp() * 1000), max_day, max_24h,
                                 c.budget or 0])
        argv: list[str | int] = [max((r.max_per_visit for r in results), default=1),
                                 json.dumps(rows, separators=(",", ":"))]
        return flat, keys, argv

    async def decide(self, result: MatchResult) -> list[SendRequest]:
        """The requests allowed to go; adds ``matched`` and suppression reasons to the counts."""
        return (await self.decide_many([result]))[0]

    async def decide_many(self, results: Sequence[MatchResult]) -> list[list[SendRequest]]:
        """:meth:`decide` for several records (in order) in one Redis call; all of them must
        have the same ``max_per_visit``."""
        flat, keys, argv = self._args(results)
        allowed: list[list[SendRequest]] = [[] for _ in results]
        if not flat:
            return allowed
        codes = await _paused(lambda: self._gate(keys=keys, args=argv))
        seen: set[str] = set()
        for (n, cand), code in zip(flat, codes, strict=True):
            counts = results[n].counts
            if int(code) == 0:
                counts["matched"] += 1
                if cand.message_key not in seen:
                    seen.add(cand.message_key)
                    allowed[n].append(cand.request)
            else:
                counts[GATE_REASONS[int(code)]] += 1
        return allowed

    async def release(self, events: Sequence[DeliveryEvent]) -> list[DeliveryEvent]:
        """Give budget back for geo messages that ended unsent; idempotent by message key.
        Returns the events that gave a slot back."""
        ended = [e for e in events if e.lane == Lane.GEO and e.kind == "state"
                 and e.state in RELEASING_STATES and e.promotion_id is not None]
        if not ended:
            return []
        keys = [k for e in ended for k in self._budget_keys(e.promotion_id or 0)]
        args = [e.message_key for e in ended]
        back = await _paused(lambda: self._release(keys=keys, args=args))
        return [e for e, n in zip(ended, back, strict=True) if int(n)]


async def _paused(fn: Callable[[], Awaitable[T]]) -> T:
    """Retry ``fn`` until Redis answers: matching pauses, nothing is decided without state."""
    return await until_available(fn, errors=_INFRA, log=log, event="matching_paused")
