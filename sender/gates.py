"""The checks a queued message passes right before its provider call (besides opt-out and
consent, which the claim statement itself re-checks): quiet hours, campaign run control and
pacing, and link shortening."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from hexcast.core.cache import Keys
from hexcast.core.control import RunControl, RunState
from sender import inbound_repo, repo
from sender.journal import Journal, Outcome
from sender.links import shorten
from sender.models import Lane, MessageState
from sender.quiet import NEVER, STRICT_WINDOW, primary_zone, verdicts, window_for
from sender.ratelimit import CapCheck, CapRule, RecipientCaps

__all__ = ["Gates"]

Q = MessageState.QUEUED


class Gates(Journal):
    """Mixed into the dispatcher; its settings are set by the dispatcher's constructor."""

    _lane: Lane
    _link_base: str | None
    _control: RunControl | None
    _keys: Keys | None
    _pause_recheck: timedelta
    _quiet: bool
    _caps: RecipientCaps | None
    _cap_rules: tuple[CapRule, CapRule]  # (default, stricter states)

    async def _recipient_rules(
        self, rows: list[repo.MessageRow], outcome: Outcome, now: datetime,
        known: dict[tuple[int, str], str | None],
    ) -> list[repo.MessageRow]:
        """Quiet hours, then per-recipient caps: rows that may go now; the others are deferred
        until they may, or expire when that is past their TTL. ``known``: profile zones
        already looked up (None: no zone); the others are read here."""
        if not rows:
            return rows
        missing = list({(r.tenant_id, r.phone) for r in rows} - known.keys())

        async def zones() -> dict[tuple[int, str], str]:
            async with self._pool.acquire() as conn:
                return await repo.profile_zones(conn, recipients=missing)

        profile = {**known, **(await self._infra(zones) if missing else {})}
        if self._quiet:
            later = verdicts(now, [(r.phone, profile.get((r.tenant_id, r.phone))) for r in rows])
            rows = await self._hold(rows, later, outcome, "quiet hours")
        if self._caps is not None and rows:
            days: dict[str, tuple[int, int]] = {}  # zone → its local day, computed once
            checks = [self._cap_check(r, profile.get((r.tenant_id, r.phone)), now, days)
                      for r in rows]
            waits = await self._infra(partial(self._caps.check, checks))
            later = [now + timedelta(seconds=w) if w else None for w in waits]
            rows = await self._hold(rows, later, outcome, "recipient cap")
        return rows

    async def _hold(
        self, rows: list[repo.MessageRow], later: list[datetime | None], outcome: Outcome,
        rule: str,
    ) -> list[repo.MessageRow]:
        allowed = [r for r, t in zip(rows, later, strict=True) if t is None]
        held = [(r, t) for r, t in zip(rows, later, strict=True) if t is not None]
        lost = [r for r, t in held if t is NEVER or (r.expires_at is not None and t >= r.expires_at)]
        why = f"{rule}: no allowed time before the message expires"
        outcome.expired += len(await self._move(lost, MessageState.EXPIRED, [Q], why))
        lost_ids = {r.id for r in lost}
        outcome.deferred += await self._defer([(r, t) for r, t in held if r.id not in lost_ids],
                                              reason=f"{rule} until ")
        return allowed

    def _cap_check(
        self, row: repo.MessageRow, profile_zone: str | None, now: datetime,
        days: dict[str, tuple[int, int]],
    ) -> CapCheck:
        zone = primary_zone(row.phone, profile_zone)
        span = days.get(zone.key)
        if span is None:
            span = days[zone.key] = _local_day_ms(now, zone)
        strict = window_for(row.phone) is STRICT_WINDOW
        key = self._keys("cap", row.tenant_id, row.phone) if self._keys else row.phone
        return CapCheck(key=key, message_key=row.message_key, day_start_ms=span[0],
                        next_day_ms=span[1],
                        rule=self._cap_rules[1] if strict else self._cap_rules[0])

    async def _run_gate(
        self, chunk: list[repo.MessageRow], outcome: Outcome
    ) -> tuple[list[repo.MessageRow], tuple[str, float] | None]:
        """Campaign run control before a provider call: cancelled runs are suppressed, paused
        runs deferred for a short while (released and checked again later). Returns the rows
        that may go and the pacing bucket (key, rate) of the first row's run, if it has one."""
        if self._control is None or self._keys is None:
            return chunk, None
        control, keys = self._control, self._keys
        runs = {r.campaign_run_id for r in chunk if r.campaign_run_id is not None}
        states = await self._infra(partial(control.states, runs)) if runs else {}
        cancelled = [r for r in chunk if states.get(r.campaign_run_id or 0) is RunState.CANCELLED]
        paused = [r for r in chunk if states.get(r.campaign_run_id or 0) is RunState.PAUSED]
        outcome.suppressed += len(await self._move(
            cancelled, MessageState.SUPPRESSED, [Q], "campaign cancelled"))
        until = datetime.now(UTC) + self._pause_recheck
        outcome.deferred += await self._defer([(r, until) for r in paused],
                                              reason="campaign paused until ")
        held = {r.id for r in cancelled} | {r.id for r in paused}
        chunk = [r for r in chunk if r.id not in held]
        run = chunk[0].campaign_run_id if chunk else None
        rate = await self._infra(partial(control.rate, run)) if run is not None else None
        return chunk, ((keys("rl", "run", run), rate) if rate else None)

    async def _shorten(self, chunk: list[repo.MessageRow]) -> list[repo.MessageRow]:
        """Links in marketing bodies become tracked ``/r/{code}`` links (same codes on resend)."""
        if self._link_base is None or self._lane is Lane.OTP:
            return chunk
        out, links = [], []
        for row in chunk:
            body, found = shorten(row.body, message_key=row.message_key, base_url=self._link_base)
            links += [(x.code, row.tenant_id, row.message_key, x.url) for x in found]
            out.append(replace(row, body=body) if found else row)
        if links:
            async def save() -> None:
                async with self._pool.acquire() as conn:
                    await inbound_repo.save_links(conn, links=links)

            await self._infra(save)
        return out


def _local_day_ms(now: datetime, zone: ZoneInfo) -> tuple[int, int]:
    """Start of ``now``'s local day in ``zone`` and of the next, in epoch milliseconds."""
    local = now.astimezone(zone)
    day_start = datetime.combine(local.date(), time(0), zone)
    next_day = datetime.combine(local.date() + timedelta(days=1), time(0), zone)
    return int(day_start.timestamp() * 1000), int(next_day.timestamp() * 1000)
