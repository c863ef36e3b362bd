"""Messages left ``unknown``: a provider may have taken them, but no answer or receipt says so
(an SMPP connection lost with the submit in flight, a provider without lookup). They are never
sent again blindly; an operator finds out (the provider's own logs or portal) and says what
became of them: ``hexcast unknown list|resolve`` or the operator API (``sender.unknown_api``).
A resolution is a receipt from the operator: each message settled is in the operator audit log
(``message.resolve``: who, why, what the provider said) in the same transaction, and the
tenant's webhook event (the outbox trigger) and delivery event go out as for a receipt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import asyncpg

from hexcast.core import operator_log
from hexcast.core.db import Conn
from hexcast.core.errors import ConflictError, NotFound
from sender import metrics, repo

__all__ = ["Outcome", "resolve", "resolve_one", "unknown_messages"]

Outcome = Literal["delivered", "failed"]


async def unknown_messages(
    conn: Conn, *, provider: str | None, limit: int
) -> list[asyncpg.Record]:
    """The oldest unknown messages (of one route), with why they are unknown."""
    return list(await conn.fetch(
        "SELECT id, message_key, tenant_id, phone, provider, reason, updated_at FROM messages"
        " WHERE state = 'unknown' AND ($1::text IS NULL OR provider = $1)"
        " ORDER BY updated_at, id LIMIT $2", provider, limit))


async def resolve(
    conn: Conn, *, keys: Sequence[str], outcome: Outcome, reason: str, actor: str,
    provider_status: str | None = None,
) -> list[asyncpg.Record]:
    """Settle unknown messages as ``outcome`` (only those still unknown), each audited in the
    same transaction; the changed rows, for their delivery events."""
    said = f"resolved by operator: {reason}"
    if provider_status:
        said += f" (provider status: {provider_status})"
    async with conn.transaction():
        changed = await repo.apply_receipts(conn, receipts=[(key, outcome, said) for key in keys],
                                            actor=actor, from_states=("unknown",))
        for row in changed:
            await operator_log.record(
                conn, actor=actor, action="message.resolve", target=f"message:{row['message_key']}",
                reason=reason, detail={"state": outcome, "tenant_id": row["tenant_id"],
                                       "provider_status": provider_status})
    metrics.count_receipts(changed, from_provider=False)  # an operator's word, not a receipt
    return changed


async def resolve_one(
    conn: Conn, *, key: str, outcome: Outcome, reason: str, actor: str,
    provider_status: str | None = None,
) -> asyncpg.Record:
    """:func:`resolve` one message: none with ``key`` is a :class:`NotFound`, one that is not
    ``unknown`` a :class:`ConflictError`."""
    async with conn.transaction():
        state = await conn.fetchval(
            "SELECT state::text FROM messages WHERE message_key = $1 FOR UPDATE", key)
        if state is None:
            raise NotFound(f"no message {key!r}")
        if state != "unknown":
            raise ConflictError(f"message {key!r} is {state}: only an unknown message is resolved")
        [row] = await resolve(conn, keys=[key], outcome=outcome, reason=reason, actor=actor,
                              provider_status=provider_status)
    return row
