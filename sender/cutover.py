"""Dry run and cutover per tenant (``tenants.send_mode``, migration 0014).

A tenant in ``dry_run`` is routed only to dry-run routes (``sender/providers/dryrun.py``): every
decision is made and recorded, nothing is sent. Switching to ``live`` is the cutover; it can be
switched back. Each change is audited (who, when, why). Senders re-read the modes with the
route states, at most once a second.
"""

from __future__ import annotations

from typing import Literal

from hexcast.core.db import Conn
from hexcast.core.errors import NotFound

__all__ = ["SendMode", "dry_run_tenants", "set_send_mode"]

SendMode = Literal["live", "dry_run"]


async def dry_run_tenants(conn: Conn) -> set[int]:
    rows = await conn.fetch("SELECT id FROM tenants WHERE send_mode = 'dry_run'")
    return {r["id"] for r in rows}


async def set_send_mode(
    conn: Conn, *, tenant_id: int, mode: SendMode, actor: str, reason: str
) -> None:
    async with conn.transaction():
        found = await conn.fetchval(
            "UPDATE tenants SET send_mode = $2 WHERE id = $1 RETURNING id", tenant_id, mode)
        if found is None:
            raise NotFound(f"tenant {tenant_id} not found")
        await conn.execute(
            "INSERT INTO send_mode_changes (tenant_id, send_mode, actor, reason)"
            " VALUES ($1, $2, $3, $4)", tenant_id, mode, actor, reason)
