"""Campaign run control right before a provider call: a cancelled run's messages are
suppressed, a paused run's deferred for a short while (released and checked again), and a
paced run's messages take from its pacing bucket. The run states live in Redis
(``hexcast.core.control``), set by the scheduler's pause/resume/cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from hexcast.core.cache import Keys
from hexcast.core.control import RunControl, RunState
from sender.journal import Store, until_up
from sender.models import MessageState
from sender.outcome import Outcome
from sender.repo import MessageRow

__all__ = ["Pace", "RunGate"]

Q = MessageState.QUEUED
Pace = tuple[str, float]  # the run's pacing bucket key and its rate (segments/s)


class RunGate:
    def __init__(self, *, store: Store, control: RunControl, keys: Keys,
                 pause_recheck_s: float = 15.0) -> None:
        self._store = store
        self._control = control
        self._keys = keys
        self._recheck = timedelta(seconds=pause_recheck_s)

    async def admit(
        self, chunk: list[MessageRow], outcome: Outcome
    ) -> tuple[list[MessageRow], Pace | None]:
        """The rows that may go, and the pacing bucket of the first row's run, if it has one."""
        runs = {r.campaign_run_id for r in chunk if r.campaign_run_id is not None}
        states = await until_up(partial(self._control.states, runs)) if runs else {}
        cancelled = [r for r in chunk if states.get(r.campaign_run_id or 0) is RunState.CANCELLED]
        paused = [r for r in chunk if states.get(r.campaign_run_id or 0) is RunState.PAUSED]
        outcome.suppressed += len(await self._store.move(
            cancelled, MessageState.SUPPRESSED, [Q], "campaign cancelled"))
        until = datetime.now(UTC) + self._recheck
        outcome.deferred += await self._store.defer([(r, until) for r in paused],
                                                    reason="campaign paused until ")
        held = {r.id for r in cancelled} | {r.id for r in paused}
        chunk = [r for r in chunk if r.id not in held]
        run = chunk[0].campaign_run_id if chunk else None
        rate = await until_up(partial(self._control.rate, run)) if run is not None else None
        return chunk, ((self._keys("rl", "run", run), rate) if rate else None)
