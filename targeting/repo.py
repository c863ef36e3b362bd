"""SQL for stores, promotions and recipients. Every query is scoped to one tenant."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from hexcast.core.db import Conn, one
from hexcast.core.errors import ConflictError, NotFound

__all__ = [
    "all_promotions",
    "all_recipients",
    "all_stores",
    "get_recipient",
    "list_recipients",
    "recipients_by_ids",
    "get_store",
    "insert_promotion",
    "insert_recipient",
    "insert_store",
    "list_promotions",
    "list_stores",
    "set_promotion_active",
    "set_store_active",
    "delete_recipient",
    "get_promotion",
    "replace_promotion",
    "replace_store",
    "update_recipient",
]

Row = asyncpg.Record


def _found(row: Row | None, what: str) -> Row:
    """The row, or NotFound saying ``what`` (e.g. "store 7 not found")."""
    if row is None:
        raise NotFound(what)
    return row

_STORE_COLS = (
    "id, tenant_id, name, lat, lng, time_zone, geofence, cells, h3_resolution, accuracy_max_m,"
    " active, created_at"
)
_PROMO_COLS = (
    "id, tenant_id, store_id, name, body, interests, valid_from, valid_until, active, created_at,"
    " hours_start, hours_end, weekdays, trigger, dwell_minutes, max_gap_minutes, nearby_m,"
    " cooldown_minutes, budget, interest_weights"
)
_POLICY_COLS = (
    "hours_start", "hours_end", "weekdays", "trigger", "dwell_minutes", "max_gap_minutes",
    "nearby_m", "cooldown_minutes", "budget", "interest_weights",
)
_RECIPIENT_COLS = (
    "id, tenant_id, user_id, phone, time_zone, interests, consent_at IS NOT NULL AS consent,"
    " opted_out_at IS NOT NULL AS opted_out, created_at"
)


async def insert_store(
    conn: Conn,
    *,
    tenant_id: int,
    name: str,
    lat: float,
    lng: float,
    time_zone: str,
    geofence: dict[str, Any],
    cells: list[str],
    h3_resolution: int,
    accuracy_max_m: float = 100.0,
) -> Row:
    row = one(await conn.fetchrow(
        "INSERT INTO stores (tenant_id, name, lat, lng, time_zone, geofence, cells, h3_resolution,"
        f" accuracy_max_m) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_STORE_COLS}",
        tenant_id, name, lat, lng, time_zone, geofence, cells, h3_resolution, accuracy_max_m,
    ))
    return row


async def replace_store(
    conn: Conn,
    *,
    tenant_id: int,
    store_id: int,
    name: str,
    lat: float,
    lng: float,
    time_zone: str,
    geofence: dict[str, Any],
    cells: list[str],
    h3_resolution: int,
    accuracy_max_m: float,
) -> Row:
    """Replace a store's fields (not its active flag); NotFound for another tenant's store."""
    row: Row | None = await conn.fetchrow(
        "UPDATE stores SET name = $3, lat = $4, lng = $5, time_zone = $6, geofence = $7,"
        " cells = $8, h3_resolution = $9, accuracy_max_m = $10, updated_at = now()"
        f" WHERE tenant_id = $1 AND id = $2 RETURNING {_STORE_COLS}",
        tenant_id, store_id, name, lat, lng, time_zone, geofence, cells, h3_resolution,
        accuracy_max_m,
    )
    return _found(row, f"store {store_id} not found")


async def get_store(conn: Conn, *, tenant_id: int, store_id: int) -> Row:
    row: Row | None = await conn.fetchrow(
        f"SELECT {_STORE_COLS} FROM stores WHERE tenant_id = $1 AND id = $2", tenant_id, store_id
    )
    return _found(row, f"store {store_id} not found")


async def list_stores(
    conn: Conn, *, tenant_id: int, after_id: int = 0, limit: int = 100
) -> list[Row]:
    return list(
        await conn.fetch(
            f"SELECT {_STORE_COLS} FROM stores WHERE tenant_id = $1 AND id > $2"
            " ORDER BY id LIMIT $3",
            tenant_id, after_id, limit,
        )
    )


async def set_store_active(
    conn: Conn, *, tenant_id: int, store_id: int, active: bool
) -> Row:
    row: Row | None = await conn.fetchrow(
        f"UPDATE stores SET active = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2"
        f" RETURNING {_STORE_COLS}",
        tenant_id, store_id, active,
    )
    return _found(row, f"store {store_id} not found")


async def insert_promotion(
    conn: Conn,
    *,
    tenant_id: int,
    store_id: int,
    name: str,
    body: str,
    interests: list[str],
    valid_from: date | None,
    valid_until: date | None,
    policy: dict[str, Any] | None = None,
) -> Row:
    """``policy``: the :data:`_POLICY_COLS` columns (absent ones take the column default)."""
    await get_store(conn, tenant_id=tenant_id, store_id=store_id)
    extra = {k: v for k, v in (policy or {}).items() if k in _POLICY_COLS}
    names = ", ".join(["tenant_id", "store_id", "name", "body", "interests", "valid_from",
                       "valid_until", *extra])
    marks = ", ".join(f"${n}" for n in range(1, 8 + len(extra)))
    row = one(await conn.fetchrow(
        f"INSERT INTO promotions ({names}) VALUES ({marks}) RETURNING {_PROMO_COLS}",
        tenant_id, store_id, name, body, interests, valid_from, valid_until, *extra.values(),
    ))
    return row


async def replace_promotion(
    conn: Conn,
    *,
    tenant_id: int,
    promotion_id: int,
    store_id: int,
    name: str,
    body: str,
    interests: list[str],
    valid_from: date | None,
    valid_until: date | None,
    policy: dict[str, Any],
) -> Row:
    """Replace a promotion's fields and policy (not its active flag); NotFound if not the
    tenant's promotion or store."""
    await get_store(conn, tenant_id=tenant_id, store_id=store_id)
    extra = {k: v for k, v in policy.items() if k in _POLICY_COLS}
    sets = ", ".join(f"{name} = ${n}" for n, name in enumerate(
        ["store_id", "name", "body", "interests", "valid_from", "valid_until", *extra], start=3))
    row: Row | None = await conn.fetchrow(
        f"UPDATE promotions SET {sets}, updated_at = now() WHERE tenant_id = $1 AND id = $2"
        f" RETURNING {_PROMO_COLS}",
        tenant_id, promotion_id, store_id, name, body, interests, valid_from, valid_until,
        *extra.values(),
    )
    return _found(row, f"promotion {promotion_id} not found")


async def get_promotion(conn: Conn, *, tenant_id: int, promotion_id: int) -> Row:
    row: Row | None = await conn.fetchrow(
        f"SELECT {_PROMO_COLS} FROM promotions WHERE tenant_id = $1 AND id = $2",
        tenant_id, promotion_id,
    )
    return _found(row, f"promotion {promotion_id} not found")


async def list_promotions(
    conn: Conn, *, tenant_id: int, after_id: int = 0, limit: int = 100
) -> list[Row]:
    return list(
        await conn.fetch(
            f"SELECT {_PROMO_COLS} FROM promotions WHERE tenant_id = $1 AND id > $2"
            " ORDER BY id LIMIT $3",
            tenant_id, after_id, limit,
        )
    )


async def set_promotion_active(
    conn: Conn, *, tenant_id: int, promotion_id: int, active: bool
) -> Row:
    row: Row | None = await conn.fetchrow(
        f"UPDATE promotions SET active = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2"
        f" RETURNING {_PROMO_COLS}",
        tenant_id, promotion_id, active,
    )
    return _found(row, f"promotion {promotion_id} not found")


async def insert_recipient(
    conn: Conn,
    *,
    tenant_id: int,
    user_id: str,
    phone: str,
    time_zone: str | None,
    interests: list[str],
    consent_at: datetime | None,
    consent_source: str | None,
    consent_text: str | None,
) -> Row:
    try:
        row = one(await conn.fetchrow(
            "INSERT INTO recipients (tenant_id, user_id, phone, time_zone, interests, consent_at,"
            " consent_source, consent_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            f" RETURNING {_RECIPIENT_COLS}",
            tenant_id, user_id, phone, time_zone, interests, consent_at, consent_source,
            consent_text,
        ))
    except asyncpg.UniqueViolationError as exc:
        raise ConflictError("a recipient with this user_id or phone already exists") from exc
    return row


async def all_stores(conn: Conn) -> list[Row]:
    """Every store of every tenant, for republishing the catalog topic."""
    return list(await conn.fetch(f"SELECT {_STORE_COLS} FROM stores ORDER BY id"))


async def all_promotions(conn: Conn) -> list[Row]:
    return list(await conn.fetch(f"SELECT {_PROMO_COLS} FROM promotions ORDER BY id"))


async def all_recipients(conn: Conn, *, after_id: int, limit: int) -> list[Row]:
    return list(
        await conn.fetch(
            f"SELECT {_RECIPIENT_COLS} FROM recipients WHERE id > $1 ORDER BY id LIMIT $2",
            after_id, limit,
        )
    )


# --- recipient import (issue 4) ---
async def recipients_by_ids(conn: Conn, *, tenant_id: int, ids: list[int]) -> list[Row]:
    return list(await conn.fetch(
        f"SELECT {_RECIPIENT_COLS} FROM recipients WHERE tenant_id = $1 AND id = ANY($2::bigint[])"
        " ORDER BY id",
        tenant_id, ids,
    ))


async def list_recipients(conn: Conn, *, tenant_id: int, after_id: int, limit: int) -> list[Row]:
    return list(await conn.fetch(
        f"SELECT {_RECIPIENT_COLS} FROM recipients WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        tenant_id, after_id, limit,
    ))


_RECIPIENT_UPDATABLE = frozenset(
    {"phone", "time_zone", "interests", "consent_at", "consent_source", "consent_text"}
)


async def update_recipient(
    conn: Conn, *, tenant_id: int, user_id: str, columns: dict[str, Any]
) -> Row:
    """Set the given columns (names from a fixed list); NotFound or ConflictError (phone taken)."""
    names = sorted(columns)
    unknown = set(names) - _RECIPIENT_UPDATABLE
    if unknown or not names:
        raise ValueError(f"cannot update recipient columns {sorted(unknown) or names}")
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=3))
    try:
        row: Row | None = await conn.fetchrow(
            f"UPDATE recipients SET {sets}, updated_at = now() WHERE tenant_id = $1 AND user_id = $2"
            f" RETURNING {_RECIPIENT_COLS}",
            tenant_id, user_id, *(columns[n] for n in names),
        )
    except asyncpg.UniqueViolationError as exc:
        raise ConflictError("another recipient of this tenant has this phone") from exc
    return _found(row, f"recipient {user_id!r} not found")


async def delete_recipient(conn: Conn, *, tenant_id: int, user_id: str) -> None:
    """Erase a recipient's profile. Their messages stay as the audit log, and an opt-out of
    their number stays recorded (it is kept per tenant and phone, not per recipient)."""
    deleted = await conn.fetchval(
        "DELETE FROM recipients WHERE tenant_id = $1 AND user_id = $2 RETURNING id",
        tenant_id, user_id,
    )
    if deleted is None:
        raise NotFound(f"recipient {user_id!r} not found")


async def get_recipient(conn: Conn, *, tenant_id: int, user_id: str) -> Row:
    row: Row | None = await conn.fetchrow(
        f"SELECT {_RECIPIENT_COLS} FROM recipients WHERE tenant_id = $1 AND user_id = $2",
        tenant_id, user_id,
    )
    return _found(row, f"recipient {user_id!r} not found")
