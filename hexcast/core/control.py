"""Live control values shared through Redis: campaign run state and campaign pacing.

The scheduler and the marketer API write them; senders read them before every provider call
batch, so pausing or cancelling a run takes effect within one batch. PostgreSQL keeps the
durable copy; these keys are the fast path and are rewritten from it when missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

import redis.asyncio as aioredis

from hexcast.core.cache import Keys

__all__ = ["RunControl", "RunState"]


class RunState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class RunControl:
    """Reads and writes ``run:<id>:state`` and ``run:<id>:rate`` (the run's pace in segments
    per second, the unit of the senders' buckets: its messages/s x segments a message)."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    async def set_state(self, run_id: int, state: RunState) -> None:
        await self._client.set(self._keys("run", run_id, "state"), state.value)

    async def states(self, run_ids: Iterable[int]) -> dict[int, RunState | None]:
        ids = list(run_ids)
        if not ids:
            return {}
        values = await self._client.mget([self._keys("run", r, "state") for r in ids])
        return {r: _state(v) for r, v in zip(ids, values, strict=True)}

    async def set_rate(self, run_id: int, per_second: float | None) -> None:
        key = self._keys("run", run_id, "rate")
        if per_second is None:
            await self._client.delete(key)
        else:
            await self._client.set(key, repr(float(per_second)))

    async def rate(self, run_id: int) -> float | None:
        value = await self._client.get(self._keys("run", run_id, "rate"))
        return float(value) if value else None


def _state(value: bytes | str | None) -> RunState | None:
    if not value:
        return None
    return RunState(value.decode() if isinstance(value, bytes) else value)
