"""Holds before a provider call on the marketing lanes: quiet hours and per-recipient caps.

A message that may not go now is deferred to its next allowed instant (released by
``sender.deferred``), or expires when that instant is past its TTL. The hours themselves are
``sender.quiet``; the caps' Redis script is ``sender.limits.RecipientCaps``. A tenant's own
window and caps (``sender.tenant_rules``, read through ``rules`` once per chunk at most) narrow
both: the hours the law and the tenant allow, the smaller of each cap. OTPs and confirmations
are user-initiated and skip both (the dispatcher calls no holds on the otp lane).
"""

from __future__ import annotations

from collections.abc import Sequence
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
from sender.tenant_rules import LEGAL_RULES, RulesLoader, TenantRules

__all__ = ["DEFAULT_CAP_RULES", "Holds"]

Q = MessageState.QUEUED
DEFAULT_CAP_RULES = (CapRule(3, 5, 600), CapRule(3, 3, 600))  # (default, stricter states)


class Holds:
    """Quiet hours (when ``quiet_hours``) and recipient caps (when ``caps`` is given), each
    narrowed by the tenant's rules (when ``rules`` is given; else the law and the defaults)."""

    def __init__(
        self, *, store: Store, quiet_hours: bool = True, caps: RecipientCaps | None = None,
        cap_rules: tuple[CapRule, CapRule] = DEFAULT_CAP_RULES, keys: Keys | None = None,
        rules: RulesLoader | None = None,
    ) -> None:
        self._store = store
        self._quiet = quiet_hours
        self._caps = caps
        self._cap_rules = cap_rules
        self._keys = keys
        self._rules = rules

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
        tenants = await self._tenant_rules(rows)
        if self._quiet:
            later, why = self._quiet_verdicts(rows, profile, tenants, now)
            rows = await self._hold(rows, later, outcome, why)
        if self._caps is not None and rows:
            days: dict[str, tuple[int, int]] = {}  # zone → its local day, computed once
            checks = [self._cap_check(r, profile.get((r.tenant_id, r.phone)), now, days,
                                      tenants.get(r.tenant_id, LEGAL_RULES)) for r in rows]
            waits = await until_up(partial(self._caps.check, checks))
            later = [now + timedelta(seconds=w) if w else None for w in waits]
            rows = await self._hold(rows, later, outcome, ["recipient cap"] * len(rows))
        return rows

    async def _tenant_rules(self, rows: list[MessageRow]) -> dict[int, TenantRules]:
        """The rules of the rows' tenants (one cached lookup), if any step needs them."""
        if self._rules is None or not (self._quiet or self._caps is not None):
            return {}
        loader = self._rules
        return dict(await until_up(lambda: loader({r.tenant_id for r in rows})))

    @staticmethod
    def _quiet_verdicts(
        rows: list[MessageRow], profile: dict[tuple[int, str], str | None],
        tenants: dict[int, TenantRules], now: datetime,
    ) -> tuple[list[datetime | None], list[str]]:
        """Each row's next allowed instant (None: now) in the window the law and its tenant
        allow, and the rule that holds it: the tenant's window if the law alone allows now."""
        later: list[datetime | None] = [None] * len(rows)
        why = ["quiet hours"] * len(rows)
        by_tenant: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            by_tenant.setdefault(row.tenant_id, []).append(i)
        for tenant_id, at in by_tenant.items():
            rules = tenants.get(tenant_id, LEGAL_RULES)
            recipients = [(rows[i].phone, profile.get((tenant_id, rows[i].phone))) for i in at]
            narrow = verdicts(now, recipients, tenant=rules.window)
            legal = verdicts(now, recipients) if rules.window is not None else narrow
            for i, t, by_law in zip(at, narrow, legal, strict=True):
                later[i] = t
                if t is not None and (by_law is None or (t is NEVER and by_law is not NEVER)):
                    why[i] = rules.label()  # the law alone would allow it now, or some time
        return later, why

    async def _hold(
        self, rows: list[MessageRow], later: list[datetime | None], outcome: Outcome,
        rules: Sequence[str],
    ) -> list[MessageRow]:
        """Defer (or expire) the rows with a later instant, each with its rule in the reason."""
        allowed = [r for r, t in zip(rows, later, strict=True) if t is None]
        for rule in dict.fromkeys(rules):
            held = [(r, t) for r, t, w in zip(rows, later, rules, strict=True)
                    if t is not None and w == rule]
            lost = [r for r, t in held
                    if t is NEVER or (r.expires_at is not None and t >= r.expires_at)]
            why = f"{rule}: no allowed time before the message expires"
            outcome.expired += len(await self._store.move(lost, MessageState.EXPIRED, [Q], why))
            lost_ids = {r.id for r in lost}
            outcome.deferred += await self._store.defer(
                [(r, t) for r, t in held if r.id not in lost_ids], reason=f"{rule} until ")
        return allowed

    def _cap_check(
        self, row: MessageRow, profile_zone: str | None, now: datetime,
        days: dict[str, tuple[int, int]], tenant: TenantRules,
    ) -> CapCheck:
        zone = primary_zone(row.phone, profile_zone)
        span = days.get(zone.key)
        if span is None:
            span = days[zone.key] = _local_day_ms(now, zone)
        strict = window_for(row.phone) is STRICT_WINDOW
        key = self._keys("cap", row.tenant_id, row.phone) if self._keys else row.phone
        return CapCheck(key=key, message_key=row.message_key, day_start_ms=span[0],
                        next_day_ms=span[1],
                        rule=tenant.capped(self._cap_rules[1] if strict else self._cap_rules[0]))


def _local_day_ms(now: datetime, zone: ZoneInfo) -> tuple[int, int]:
    """Start of ``now``'s local day in ``zone`` and of the next, in epoch milliseconds."""
    local = now.astimezone(zone)
    day_start = datetime.combine(local.date(), time(0), zone)
    next_day = datetime.combine(local.date() + timedelta(days=1), time(0), zone)
    return int(day_start.timestamp() * 1000), int(next_day.timestamp() * 1000)
