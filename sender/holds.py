"""Holds before a provider call on the marketing lanes: quiet hours and per-recipient caps.

A message that may not go now is deferred to its next allowed instant (released by
``sender.deferred``), or expires when that instant is past its TTL. The hours themselves are
``sender.quiet``; the caps' Redis script is ``sender.limits.RecipientCaps``. OTPs and
confirmations are user-initiated and skip both.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from hexcast.core.cache import Keys
from sender.journal import Store, until_up
from sender.limits import CapCheck, CapRule, RecipientCaps
from sender.models import MessageState
from sender.outcome import Outcome
from sender.quiet import NEVER, STRICT_WINDOW, primary_zone, verdicts, window_for
from sender.repo import MessageRow

__all__ = ["DEFAULT_CAP_RULES", "Holds"]

Q = MessageState.QUEUED
DEFAULT_CAP_RULES = (CapRule(3, 5, 600), CapRule(3, 3, 600))  # (default, stricter states)


class Holds:
    """Quiet hours (when ``quiet_hours``) and recipient caps (when ``caps`` is given)."""

    def __init__(
        self, *, store: Store, quiet_hours: bool = True, caps: RecipientCaps | None = None,
        cap_rules: tuple[CapRule, CapRule] = DEFAULT_CAP_RULES, keys: Keys | None = None,
    ) -> None:
        self._store = store
        self._quiet = quiet_hours
        self._caps = caps
        self._cap_rules = cap_rules
        self._keys = keys

    async def apply(
        self, rows: list[MessageRow], outcome: Outcome, now: datetime,
        known: dict[tuple[int, str], str | None],
    ) -> list[MessageRow]:
        """The rows that may go now; the others are deferred or expired. ``known``: profile
        zones already looked up (None: no zone); the others are read here."""
        if not rows:
            return rows
        missing = list({(r.tenant_id, r.phone) for r in rows} - known.keys())
        profile = {**known, **(await self._store.profile_zones(missing) if missing else {})}
        if self._quiet:
            later = verdicts(now, [(r.phone, profile.get((r.tenant_id, r.phone))) for r in rows])
            rows = await self._hold(rows, later, outcome, "quiet hours")
        if self._caps is not None and rows:
            days: dict[str, tuple[int, int]] = {}  # zone → its local day, computed once
            checks = [self._cap_check(r, profile.get((r.tenant_id, r.phone)), now, days)
                      for r in rows]
            waits = await until_up(partial(self._caps.check, checks))
            later = [now + timedelta(seconds=w) if w else None for w in waits]
            rows = await self._hold(rows, later, outcome, "recipient cap")
        return rows

    async def _hold(
        self, rows: list[MessageRow], later: list[datetime | None], outcome: Outcome, rule: str,
    ) -> list[MessageRow]:
        allowed = [r for r, t in zip(rows, later, strict=True) if t is None]
        held = [(r, t) for r, t in zip(rows, later, strict=True) if t is not None]
        lost = [r for r, t in held if t is NEVER or (r.expires_at is not None and t >= r.expires_at)]
        why = f"{rule}: no allowed time before the message expires"
        outcome.expired += len(await self._store.move(lost, MessageState.EXPIRED, [Q], why))
        lost_ids = {r.id for r in lost}
        outcome.deferred += await self._store.defer(
            [(r, t) for r, t in held if r.id not in lost_ids], reason=f"{rule} until ")
        return allowed

    def _cap_check(
        self, row: MessageRow, profile_zone: str | None, now: datetime,
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


def _local_day_ms(now: datetime, zone: ZoneInfo) -> tuple[int, int]:
    """Start of ``now``'s local day in ``zone`` and of the next, in epoch milliseconds."""
    local = now.astimezone(zone)
    day_start = datetime.combine(local.date(), time(0), zone)
    next_day = datetime.combine(local.date() + timedelta(days=1), time(0), zone)
    return int(day_start.timestamp() * 1000), int(next_day.timestamp() * 1000)
