"""Which of its tenant's own sender ids a message comes from (``PATCH /v1/tenant/settings``
``sender_ids``), on routes whose account may send from them (``tenant_senders``): each
recipient always the same one of them (the pool's sticky pick), so replies find the thread.
Read through the tenant rules cache (``sender.tenant_rules``): one lookup per chunk at most."""

from __future__ import annotations

from collections.abc import Sequence

from sender.journal import until_up
from sender.providers.senders import pool_index
from sender.repo import MessageRow
from sender.tenant_rules import LEGAL_RULES, RulesLoader

__all__ = ["TenantSenders"]


class TenantSenders:
    def __init__(self, rules: RulesLoader) -> None:
        self._rules = rules

    async def pick(self, rows: Sequence[MessageRow]) -> dict[int, str]:
        """Row id → the tenant's sender id for it (rows of tenants without any are left out)."""
        tenants = {r.tenant_id for r in rows}
        found = await until_up(lambda: self._rules(tenants))  # PostgreSQL down: the call waits
        chosen: dict[int, str] = {}
        for row in rows:
            ids = found.get(row.tenant_id, LEGAL_RULES).sender_ids
            if ids:
                chosen[row.id] = ids[pool_index(row.phone, len(ids))]
        return chosen
