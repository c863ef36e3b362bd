"""A tenant's own sending rules, stricter than the law and the defaults, as the sender reads them.

Tenants set them through ``PATCH /v1/tenant/settings`` (columns of ``tenants``, migration
0017): a recipient-local window ``quiet_start``–``quiet_end`` (no wrap; NULL: the legal window)
and per-recipient caps ``cap_per_day`` / ``cap_per_24h`` (NULL: the defaults), and whether cap
reservations count (``reserve_caps``, migration 0025). The holds apply
them (``sender.holds``); this module reads them in one query for the tenants of a chunk and
keeps them ``ttl_s`` (30 s) per tenant, so a change takes effect within that time and a message
costs no lookup.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, replace

from hexcast.core.db import Conn
from sender.limits import CapRule
from sender.quiet import Window

__all__ = ["LEGAL_RULES", "RulesLoader", "TenantRules", "TenantRulesCache", "read_tenant_rules"]


@dataclass(frozen=True, slots=True)
class TenantRules:
    """A tenant's window (None: the legal one) and caps (None: the default)."""

    window: Window | None = None
    cap_per_day: int | None = None
    cap_per_24h: int | None = None
    sender_ids: tuple[str, ...] = ()  # the tenant's own; routes with tenant_senders use them
    reserve_caps: bool = True  # reserved campaigns' cap reservations hold others back

    def capped(self, rule: CapRule) -> CapRule:
        """``rule`` with each cap the smaller of the tenant's and the rule's own."""
        return replace(rule, per_day=_least(rule.per_day, self.cap_per_day),
                       per_24h=_least(rule.per_24h, self.cap_per_24h))

    def label(self) -> str:
        """How a hold by this window is named in a message's reason."""
        if self.window is None:
            return "quiet hours"
        return f"quiet hours (tenant window {self.window.start:%H:%M}-{self.window.end:%H:%M})"


#: A tenant that narrowed nothing: the legal window and the default caps.
LEGAL_RULES = TenantRules()

#: Tenant ids → their rules (tenants not answered: :data:`LEGAL_RULES`).
RulesLoader = Callable[[Collection[int]], Awaitable[Mapping[int, TenantRules]]]


def _least(default: int, tenant: int | None) -> int:
    return default if tenant is None else min(default, tenant)


async def read_tenant_rules(conn: Conn, tenant_ids: Collection[int]) -> dict[int, TenantRules]:
    """The rules of ``tenant_ids`` (unknown ids are left out), one query."""
    rows = await conn.fetch(
        "SELECT id, quiet_start, quiet_end, cap_per_day, cap_per_24h, sender_ids, reserve_caps"
        " FROM tenants"
        " WHERE id = ANY($1::bigint[])", list(tenant_ids))
    return {
        r["id"]: TenantRules(
            window=Window(r["quiet_start"], r["quiet_end"])
            if r["quiet_start"] is not None and r["quiet_end"] is not None else None,
            cap_per_day=r["cap_per_day"], cap_per_24h=r["cap_per_24h"],
            sender_ids=tuple(r["sender_ids"] or ()), reserve_caps=r["reserve_caps"])
        for r in rows
    }


class TenantRulesCache:
    """A :data:`RulesLoader` keeping each tenant's rules ``ttl_s`` seconds: a call loads only
    the tenants it lacks or holds expired, all in one call of ``load``."""

    def __init__(self, load: RulesLoader, *, ttl_s: float = 30.0, max_tenants: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._max = max_tenants
        self._clock = clock
        self._kept: dict[int, tuple[float, TenantRules]] = {}

    async def __call__(self, tenant_ids: Collection[int]) -> dict[int, TenantRules]:
        now = self._clock()
        wanted = set(tenant_ids)
        stale = [t for t in wanted if t not in self._kept or self._kept[t][0] <= now]
        if stale:
            fresh = await self._load(stale)
            if len(self._kept) + len(stale) > self._max:
                self._kept = {t: kept for t, kept in self._kept.items() if kept[0] > now}
            for tenant in stale:
                self._kept[tenant] = (now + self._ttl_s, fresh.get(tenant, LEGAL_RULES))
        return {t: self._kept[t][1] for t in wanted}
