"""Rows a test needs before it can start: tenants (with an API key), stores and recipients.

Each factory takes ``db``, a database URL (a connection is opened and closed around the
call) or a connection to use as it is (inside the caller's transaction, if any), and
keyword arguments only. Names default to a prefix and a random tag, so tests sharing a
database never collide::

    tenant = await make_tenant(database_url, prefix="camp", consenting=["+13125550100"])
    client = httpx.Client(base_url=api_url, headers={"X-API-Key": tenant.api_key})

Synchronous tests wrap a call in ``asyncio.run``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hexcast.core.db import Conn
from hexcast.core.tenants import create_tenant

__all__ = [
    "Db",
    "TenantRef",
    "add_consenting_recipients",
    "connected",
    "make_recipient",
    "make_store",
    "make_tenant",
    "tenant_name",
]

Db = str | Conn
"""A database URL, or an open connection."""


@dataclass(frozen=True, slots=True)
class TenantRef:
    """A tenant made for a test: its id, the API key it was issued and its name."""

    id: int
    api_key: str
    name: str


@asynccontextmanager
async def connected(db: Db) -> AsyncIterator[Conn]:
    """``db`` itself if it is a connection, else a new connection closed afterwards."""
    if not isinstance(db, str):
        yield db
        return
    conn = await asyncpg.connect(db)
    try:
        yield conn
    finally:
        await conn.close()


def tenant_name(prefix: str = "tenant") -> str:
    """``<prefix>-<8 random hex digits>``: unique enough for tests sharing a database."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def make_tenant(
    db: Db, *, name: str | None = None, prefix: str = "tenant", consenting: Sequence[str] = ()
) -> TenantRef:
    """A new tenant and its API key, made as ``hexcast tenant create`` makes them; named
    ``name``, else :func:`tenant_name` of ``prefix``. ``consenting`` phone numbers become
    recipients with a marketing consent record (:func:`add_consenting_recipients`)."""
    async with connected(db) as conn:
        tenant, key = await create_tenant(conn, name=name or tenant_name(prefix))
        if consenting:
            await add_consenting_recipients(conn, tenant_id=tenant.id, phones=consenting)
    return TenantRef(id=tenant.id, api_key=key, name=tenant.name)


async def add_consenting_recipients(db: Db, *, tenant_id: int, phones: Sequence[str]) -> None:
    """A recipient with a marketing consent record (now, source ``test``) for each of
    ``phones``, user id ``u<phone>``; numbers the tenant already has are left as they are."""
    async with connected(db) as conn:
        await conn.execute(
            "INSERT INTO recipients (tenant_id, user_id, phone, consent_at, consent_source,"
            " consent_text) SELECT $1, 'u' || p, p, now(), 'test', 'Offers by SMS'"
            " FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING",
            tenant_id, list(phones),
        )


async def make_recipient(
    db: Db, *, tenant_id: int, user_id: str, phone: str, time_zone: str | None = None,
    interests: Sequence[str] = (), consent_at: datetime | None = None,
    opted_out_at: datetime | None = None, lat: float | None = None, lng: float | None = None,
    h3_cells: Sequence[str] = (), last_visit_at: datetime | None = None,
) -> int:
    """One recipient row with the segment fields given (none of them derived: ``h3_cells``
    is stored as passed); its id."""
    async with connected(db) as conn:
        recipient: int = await conn.fetchval(
            "INSERT INTO recipients (tenant_id, user_id, phone, time_zone, interests, consent_at,"
            " opted_out_at, lat, lng, h3_cells, last_visit_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            tenant_id, user_id, phone, time_zone, list(interests), consent_at, opted_out_at,
            lat, lng, list(h3_cells), last_visit_at,
        )
    return recipient


async def make_store(
    db: Db, *, tenant_id: int, lat: float, lng: float, name: str = "store",
    time_zone: str = "America/Chicago", geofence: Mapping[str, Any] | None = None,
    cells: Sequence[str] = (), h3_resolution: int = 10,
) -> int:
    """One store row as given (no geofence and no cells unless passed: for SQL that reads a
    store's position, not the matcher's catalog); its id."""
    async with connected(db) as conn:
        store: int = await conn.fetchval(
            "INSERT INTO stores (tenant_id, name, lat, lng, time_zone, geofence, cells, h3_resolution)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) RETURNING id",
            tenant_id, name, lat, lng, time_zone, json.dumps(dict(geofence or {})), list(cells),
            h3_resolution,
        )
    return store
