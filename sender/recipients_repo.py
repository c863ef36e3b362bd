"""Recipients as the sender looks them up: by (tenant, phone), one query a batch.

A send request names a number, not a recipient: quiet hours need the profile's time zone
and the recipient caps and reservations its id. Plain SQL, keyword-only arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from hexcast.core.db import Conn

__all__ = ["profile_zones", "recipient_ids"]


async def _by_phone(
    conn: Conn, recipients: Sequence[tuple[int, str]], column: Literal["time_zone", "id"]
) -> dict[tuple[int, str], Any]:
    """(tenant, phone) → ``column`` of the recipient with that number, where it is set."""
    if not recipients:
        return {}
    rows = await conn.fetch(
        f"SELECT r.tenant_id, r.phone, r.{column} AS value FROM recipients r"
        " JOIN unnest($1::bigint[], $2::text[]) AS x(t, p) ON r.tenant_id = x.t AND r.phone = x.p"
        f" WHERE r.{column} IS NOT NULL",
        [t for t, _ in recipients], [p for _, p in recipients],
    )
    return {(r["tenant_id"], r["phone"]): r["value"] for r in rows}


async def profile_zones(
    conn: Conn, *, recipients: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], str]:
    """(tenant, phone) → the recipient profile's time zone, where one is set."""
    return await _by_phone(conn, recipients, "time_zone")


async def recipient_ids(
    conn: Conn, *, recipients: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    """(tenant, phone) → the recipient's id, for those with a recipient row (one query)."""
    return await _by_phone(conn, recipients, "id")
