"""A tenant's own sending settings (columns of ``tenants``): SQL only.

HELP text, max segments per message, quiet hours (NULL: the legal window), per-recipient caps
(NULL: the sender's defaults), its own sender ids (NULL: the routes') and whether reserved
campaigns reserve their audience's daily cap slot (``reserve_caps``). Whether a value is
allowed (never looser than the law or the defaults) is the API's rule,
``hexcast.settings_api``; the columns only keep their shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from hexcast.core.db import Conn
from hexcast.core.errors import NotFound

__all__ = ["SETTING_COLUMNS", "read_settings", "update_settings"]

SETTING_COLUMNS = ("help_text", "max_segments", "quiet_start", "quiet_end", "cap_per_day",
                   "cap_per_24h", "sender_ids", "reserve_caps")


async def read_settings(conn: Conn, *, tenant_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {', '.join(SETTING_COLUMNS)} FROM tenants WHERE id = $1", tenant_id)
    if row is None:
        raise NotFound(f"tenant {tenant_id} not found")
    return row


async def update_settings(conn: Conn, *, tenant_id: int, values: Mapping[str, object]
                          ) -> asyncpg.Record:
    """Set the given columns (names from :data:`SETTING_COLUMNS` only) and answer them all."""
    unknown = set(values) - set(SETTING_COLUMNS)
    if unknown:
        raise ValueError(f"not tenant settings: {sorted(unknown)}")
    if not values:
        return await read_settings(conn, tenant_id=tenant_id)
    names = list(values)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"UPDATE tenants SET {assignments} WHERE id = $1 RETURNING {', '.join(SETTING_COLUMNS)}",
        tenant_id, *(values[n] for n in names),
    )
    if row is None:
        raise NotFound(f"tenant {tenant_id} not found")
    return row
