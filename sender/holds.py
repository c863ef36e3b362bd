"""Holds before a provider call on the marketing lanes: quiet hours and per-recipient caps.

A message that may not go now is deferred to its next allowed instant (released by
``sender.deferred``), or expires when that instant is past its TTL (a campaign message: past
its deadline, reason ``deadline``; ``sender.expiry``). The hours themselves are
``sender.quiet``; the caps' Redis script is ``sender.limits.RecipientCaps``. A tenant's own
window and caps (``sender.tenant_rules``, read through ``rules`` once per chunk at most) narrow
both: the hours the law and the tenant allow, the smaller of each cap. OTPs and confirmations
are user-initiated and skip both (the dispatcher calls no holds on the otp lane).

Cap reservations (``sender.reservations``; unless the tenant turned them off) are checked in the
caps' call on the geo and bulk lanes: a geo offer that only a reserved campaign's slot holds
back is suppressed with reason ``reserved`` and counted for that campaign's run; another
campaign's message is deferred like a capped one (reason ``reserved until …``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial

from hexcast.core.cache import Keys
from sender import expiry
from sender.journal import Store, until_up
from sender.limits import CapCheck, CapRule, CapVerdict, RecipientCaps
from sender.models import Lane, MessageState
from sender.outcome import Outcome
from sender.quiet import NEVER, STRICT_WINDOW, primary_zone, verdicts, window_for
from sender.repo import MessageRow
from sender.reservations import LocalDay, index_key, local_day
from sender.tenant_rules import LEGAL_RULES, RulesLoader, TenantRules

__all__ = ["DEFAULT_CAP_RULES", "RESERVED", "Holds"]

Q = MessageState.QUEUED
RESERVED = "reserved"
_RESERVING_LANES = (Lane.GEO, Lane.BULK)  # transactional messages were asked for: never held
_BARE = Keys("")
Recipients = Mapping[tuple[int, str], int | None]  # (tenant, phone) → recipient id
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
        known: dict[tuple[int, str], str | None], ids: Recipients | None = None,
    ) -> list[MessageRow]:
        """The rows that may go now; the others are deferred, expired or (geo offers a cap
        reservation holds back) suppressed. ``known``: profile zones already looked up (None:
        no zone), ``ids``: recipient ids already looked up; the others are read here."""
        if not rows:
            return rows
        missing = list({(r.tenant_id, r.phone) for r in rows} - known.keys())
        profile = {**known, **(await self._store.profile_zones(missing) if missing else {})}
        tenants = await self._tenant_rules(rows)
        if self._quiet:
            later, why = self._quiet_verdicts(rows, profile, tenants, now)
            rows = await self._hold(rows, later, outcome, why)
        if self._caps is not None and rows:
            rows = await self._capped(self._caps, rows, outcome, now, profile, tenants, ids or {})
        return rows

    async def quiet_now(
        self, rows: list[MessageRow], outcome: Outcome, now: datetime,
        known: dict[tuple[int, str], str | None],
    ) -> list[MessageRow]:
        """Quiet hours again at ``now``, just before a provider call: a chunk checked when it
        was taken may have waited for its rate grants past the start of a recipient's quiet
        hours. The rows that may still go; the others are deferred (or expired) as
        :meth:`apply` does."""
        if not (self._quiet and rows):
            return rows
        missing = list({(r.tenant_id, r.phone) for r in rows} - known.keys())
        profile = {**known, **(await self._store.profile_zones(missing) if missing else {})}
        later, why = self._quiet_verdicts(rows, profile, await self._tenant_rules(rows), now)
        return await self._hold(rows, later, outcome, why)

    async def _capped(
        self, caps: RecipientCaps, rows: list[MessageRow], outcome: Outcome, now: datetime,
        profile: dict[tuple[int, str], str | None], tenants: dict[int, TenantRules],
        known: Recipients,
    ) -> list[MessageRow]:
        """Caps and cap reservations in one script call; returns the rows that may go now."""
        ids = await self._recipient_ids(rows, tenants, known)
        days: dict[str, LocalDay] = {}  # zone → its local day, computed once
        checks = [self._cap_check(r, profile.get((r.tenant_id, r.phone)), now, days,
                                  tenants.get(r.tenant_id, LEGAL_RULES),
                                  ids.get((r.tenant_id, r.phone)) if _reserves(r, tenants) else None)
                  for r in rows]
        said = await until_up(partial(caps.verdicts, checks))
        rows, said = await self._reserved(rows, said, outcome)
        later = [now + timedelta(seconds=v.wait_s) if v.wait_s else None for v in said]
        why = [RESERVED if v.reserved_by else "recipient cap" for v in said]
        return await self._hold(rows, later, outcome, why)

    async def _recipient_ids(
        self, rows: list[MessageRow], tenants: dict[int, TenantRules], known: Recipients
    ) -> dict[tuple[int, str], int | None]:
        """The recipient ids of the rows cap reservations apply to (one query for those not
        looked up yet): the geo and bulk lanes of tenants that did not turn them off."""
        wanted = {(r.tenant_id, r.phone) for r in rows if _reserves(r, tenants)}
        missing = list(wanted - known.keys())
        found = await self._store.recipient_ids(missing) if missing else {}
        return {k: known[k] if k in known else found.get(k) for k in wanted}

    async def _reserved(
        self, rows: list[MessageRow], said: list[CapVerdict], outcome: Outcome
    ) -> tuple[list[MessageRow], list[CapVerdict]]:
        """Geo offers that only a reservation holds are suppressed (reason ``reserved``) and
        counted for the reserving run; the other rows and their verdicts are returned."""
        offers = {r.id: v.reserved_by for r, v in zip(rows, said, strict=True)
                  if v.reserved_by and r.lane is Lane.GEO}
        if not offers:
            return rows, said
        moved = await self._store.move([r for r in rows if r.id in offers],
                                       MessageState.SUPPRESSED, [Q], RESERVED)
        outcome.suppressed += len(moved)
        counts = Counter(offers[r.id] for r in moved)
        if counts:
            await self._store.held_back(dict(counts))
        kept = [(r, v) for r, v in zip(rows, said, strict=True) if r.id not in offers]
        return [r for r, _ in kept], [v for _, v in kept]

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
            lost = [(r, t) for r, t in held
                    if t is NEVER or (r.expires_at is not None and t >= r.expires_at)]
            late = [r for r, t in lost if t is not NEVER and expiry.reason(r) == expiry.DEADLINE]
            lost_ids, late_ids = {r.id for r, _ in lost}, {r.id for r in late}
            why = f"{rule}: no allowed time before the message expires"
            outcome.expired += len(await self._store.move(
                [r for r, _ in lost if r.id not in late_ids], MessageState.EXPIRED, [Q], why))
            outcome.expired += len(await self._store.move(late, MessageState.EXPIRED, [Q],
                                                          expiry.DEADLINE))
            outcome.deferred += await self._store.defer(
                [(r, t) for r, t in held if r.id not in lost_ids], reason=f"{rule} until ")
        return allowed

    def _cap_check(
        self, row: MessageRow, profile_zone: str | None, now: datetime,
        days: dict[str, LocalDay], tenant: TenantRules, recipient_id: int | None,
    ) -> CapCheck:
        """``recipient_id``: None when no reservation applies (lane, tenant, or no recipient
        row); else the reservations of the row's local day are checked too."""
        zone = primary_zone(row.phone, profile_zone)
        today = days.get(zone.key)
        if today is None:
            today = days[zone.key] = local_day(now, zone)
        strict = window_for(row.phone) is STRICT_WINDOW
        key = self._keys("cap", row.tenant_id, row.phone) if self._keys else row.phone
        reserving = "" if recipient_id is None else index_key(
            self._keys or _BARE, row.tenant_id, today.day)
        return CapCheck(key=key, message_key=row.message_key, day_start_ms=today.start_ms,
                        next_day_ms=today.next_ms,
                        rule=tenant.capped(self._cap_rules[1] if strict else self._cap_rules[0]),
                        reservations=reserving,
                        recipient_id=-1 if recipient_id is None else recipient_id,
                        run_id=row.campaign_run_id or 0)


def _reserves(row: MessageRow, tenants: dict[int, TenantRules]) -> bool:
    """Whether cap reservations apply to ``row``: geo and bulk, unless its tenant said no."""
    return row.lane in _RESERVING_LANES and tenants.get(row.tenant_id, LEGAL_RULES).reserve_caps
