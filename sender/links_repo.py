"""SQL of tracked short links (``/r/{code}``) and their clicks."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from hexcast.core.db import Conn

__all__ = ["record_click", "save_links"]


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
