"""SQL of inbound replies and the opt-outs/opt-ins they apply, and the tenant reply and send policy."""

from __future__ import annotations

from hexcast.core.db import Conn

__all__ = ["record_inbound", "tenant_max_segments", "tenant_reply_info", "tenants_of"]



async def tenant_max_segments(conn: Conn, *, tenant_id: int) -> int:
    """The most segments one message of this tenant may have."""
    value = await conn.fetchval("SELECT max_segments FROM tenants WHERE id = $1", tenant_id)
    return int(value) if value is not None else 1


async def record_inbound(
    conn: Conn, *, tenant_id: int, phone: str, body: str, kind: str, flagged: bool,
    provider_ref: str | None,
) -> tuple[int, bool]:
    """Store a reply and apply its opt-out/opt-in at once: (its id, whether it is new)."""
    async with conn.transaction():
        inbound_id = await conn.fetchval(
            "INSERT INTO inbound_messages (tenant_id, phone, body, kind, flagged, provider_ref)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (tenant_id, provider_ref) DO NOTHING RETURNING id",
            tenant_id, phone, body, kind, flagged, provider_ref,
        )
        if inbound_id is None:  # a retried webhook: same reply, already applied
            seen = await conn.fetchval(
                "SELECT id FROM inbound_messages WHERE tenant_id = $1 AND provider_ref = $2",
                tenant_id, provider_ref,
            )
            return int(seen), False
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
    return int(inbound_id), True


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
