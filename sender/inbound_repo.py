"""SQL of inbound replies and the opt-outs/opt-ins they apply, and the tenant reply and send policy."""

from __future__ import annotations

import asyncpg

from hexcast.core.db import Conn, one

__all__ = [
    "campaign_of", "flagged", "record_inbound", "resolve_flagged", "tenant_max_segments", "tenant_reply_info",
    "tenants_of",
]



async def tenant_max_segments(conn: Conn, *, tenant_id: int) -> int:
    """The most segments one message of this tenant may have."""
    value = await conn.fetchval("SELECT max_segments FROM tenants WHERE id = $1", tenant_id)
    return int(value) if value is not None else 1


# The reply names the last message (not a STOP/HELP confirmation) its tenant sent that number in
# the last 7 days: one probe of messages_tenant_phone, newest first.
_RECORD = """
INSERT INTO inbound_messages (tenant_id, phone, body, kind, flagged, provider_ref, reply_to)
SELECT $1, $2, $3, $4, $5, $6, (
    SELECT m.message_key FROM messages m
    WHERE m.tenant_id = $1 AND m.phone = $2 AND NOT m.confirmation
        AND m.sent_at > now() - interval '7 days'
    ORDER BY m.id DESC LIMIT 1)
ON CONFLICT (tenant_id, provider_ref) DO NOTHING RETURNING id, reply_to
"""


async def record_inbound(
    conn: Conn, *, tenant_id: int, phone: str, body: str, kind: str, flagged: bool,
    provider_ref: str | None,
) -> tuple[int, bool, str | None]:
    """Store a reply and apply its opt-out/opt-in at once: (its id, whether it is new, the
    key of the message it answers)."""
    async with conn.transaction():
        row = await conn.fetchrow(_RECORD, tenant_id, phone, body, kind, flagged, provider_ref)
        if row is None:  # a retried webhook: same reply, already applied
            seen = one(await conn.fetchrow(
                "SELECT id, reply_to FROM inbound_messages WHERE tenant_id = $1"
                " AND provider_ref = $2", tenant_id, provider_ref))
            return int(seen["id"]), False, seen["reply_to"]
        if kind == "opt_out":
            await conn.execute(
                "INSERT INTO opt_outs (tenant_id, phone, source) VALUES ($1, $2, 'reply')"
                " ON CONFLICT DO NOTHING", tenant_id, phone,
            )
        elif kind == "opt_in":
            await conn.execute(
                "DELETE FROM opt_outs WHERE tenant_id = $1 AND phone = $2", tenant_id, phone
            )
        if kind in ("opt_out", "opt_in"):
            await conn.execute(
                "UPDATE recipients SET opted_out_at = CASE WHEN $3 THEN now() END,"
                " updated_at = now() WHERE tenant_id = $1 AND phone = $2",
                tenant_id, phone, kind == "opt_out",
            )
    return int(row["id"]), True, row["reply_to"]


async def campaign_of(conn: Conn, *, message_key: str) -> int | None:
    """The campaign of a message (None: it is of none), for the opt-outs it caused."""
    value = await conn.fetchval(
        "SELECT r.campaign_id FROM messages m JOIN campaign_runs r ON r.id = m.campaign_run_id"
        " WHERE m.message_key = $1", message_key)
    return int(value) if value is not None else None


async def tenant_reply_info(conn: Conn, *, tenant_id: int) -> tuple[str, str] | None:
    """A tenant's (name, help text), or None if there is no such tenant."""
    row = await conn.fetchrow("SELECT name, help_text FROM tenants WHERE id = $1", tenant_id)
    return (row["name"], row["help_text"]) if row is not None else None


async def tenants_of(conn: Conn, *, phone: str, among: list[int] | None) -> list[int]:
    """The tenants with ``phone`` among their recipients (only those of ``among`` when given)."""
    rows = await conn.fetch(
        "SELECT tenant_id FROM recipients WHERE phone = $1"
        " AND ($2::bigint[] IS NULL OR tenant_id = ANY($2::bigint[])) ORDER BY tenant_id",
        phone, among)
    return [int(r["tenant_id"]) for r in rows]


async def flagged(conn: Conn, *, tenant_id: int, after_id: int, limit: int) -> list[asyncpg.Record]:
    """The tenant's flagged replies not yet resolved, oldest first (keyset on id)."""
    return list(await conn.fetch(
        "SELECT id, phone, body, reply_to, received_at FROM inbound_messages"
        " WHERE tenant_id = $1 AND flagged AND resolved_at IS NULL AND id > $2"
        " ORDER BY id LIMIT $3", tenant_id, after_id, limit))


async def resolve_flagged(
    conn: Conn, *, tenant_id: int, inbound_id: int, resolution: str, actor: str
) -> asyncpg.Record | None:
    """Resolve one flagged reply (``opt_out`` records an opt-out for its number, as a STOP
    would); None when the tenant has no such unresolved flagged reply."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE inbound_messages SET resolved_at = now(), resolution = $3, resolved_by = $4"
            " WHERE id = $1 AND tenant_id = $2 AND flagged AND resolved_at IS NULL"
            " RETURNING id, phone, resolution, resolved_at, reply_to", inbound_id, tenant_id,
            resolution, actor)
        if row is not None and resolution == "opt_out":
            await conn.execute(
                "INSERT INTO opt_outs (tenant_id, phone, source) VALUES ($1, $2, 'review')"
                " ON CONFLICT DO NOTHING", tenant_id, row["phone"])
            await conn.execute(
                "UPDATE recipients SET opted_out_at = now(), updated_at = now()"
                " WHERE tenant_id = $1 AND phone = $2 AND opted_out_at IS NULL",
                tenant_id, row["phone"])
    return row
