"""SQL of inbound replies, opt-outs, short links and clicks, and the tenant send policy."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from hexcast.core.db import Conn

__all__ = [
    "record_click", "record_inbound", "save_links", "tenant_max_segments", "tenant_reply_info",
]



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


async def save_links(
    conn: Conn, *, links: Sequence[tuple[str, int, str, str]]
) -> None:
    """Store (code, tenant, message key, url) short links; codes are deterministic."""
    if links:
        await conn.execute(
            "INSERT INTO short_links (code, tenant_id, message_key, url)"
            " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])"
            " ON CONFLICT (code) DO NOTHING",
            [x[0] for x in links], [x[1] for x in links], [x[2] for x in links],
            [x[3] for x in links],
        )


async def record_click(
    conn: Conn, *, code: str, user_agent: str | None, bot: bool
) -> asyncpg.Record | None:
    """Log a click on a short link: its url, tenant, message key and lane; None if unknown."""
    link = await conn.fetchrow(
        "SELECT l.url, l.tenant_id, l.message_key, m.lane::text AS lane, m.user_id, m.phone,"
        " m.promotion_id, m.campaign_run_id FROM short_links l"
        " LEFT JOIN messages m ON m.message_key = l.message_key WHERE l.code = $1",
        code,
    )
    if link is not None:
        await conn.execute(
            "INSERT INTO link_clicks (code, user_agent, bot) VALUES ($1, $2, $3)",
            code, (user_agent or "")[:512], bot,
        )
    return link
