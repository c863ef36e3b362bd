"""Messages left ``unknown``: a provider may have taken them, but no answer or receipt says so
(an SMPP connection lost with the submit in flight, a provider without lookup). They are never
sent again blindly; an operator finds out (the provider's own logs or portal) and says what
became of them: ``hexcast unknown list`` and ``hexcast unknown resolve``. A resolution is a
receipt from the operator: audited with who and why, and the tenant's delivery event goes out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import asyncpg

from hexcast.core.db import Conn
from sender import repo

__all__ = ["Outcome", "resolve", "unknown_messages"]

Outcome = Literal["delivered", "failed"]


async def unknown_messages(
    conn: Conn, *, provider: str | None, limit: int
) -> list[asyncpg.Record]:
    """The oldest unknown messages (of one route), with why they are unknown."""
    return list(await conn.fetch(
        "SELECT message_key, tenant_id, phone, provider, reason, updated_at FROM messages"
        " WHERE state = 'unknown' AND ($1::text IS NULL OR provider = $1)"
        " ORDER BY updated_at, id LIMIT $2", provider, limit))


async def resolve(
    conn: Conn, *, keys: Sequence[str], outcome: Outcome, reason: str, actor: str
) -> list[asyncpg.Record]:
    """Settle unknown messages as ``outcome`` (only those still unknown); the changed rows,
    for their delivery events."""
    receipts = [(key, outcome, f"resolved by operator: {reason}") for key in keys]
    changed = await repo.apply_receipts(conn, receipts=receipts, actor=actor,
                                        from_states=("unknown",))
    return changed
