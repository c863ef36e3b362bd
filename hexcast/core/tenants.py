"""Tenants and their API keys (stored hashed). SQL and key handling, no HTTP."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from pydantic import StringConstraints, TypeAdapter, ValidationError

from hexcast.core.db import Conn, one
from hexcast.core.errors import ConflictError, InvalidInput, NotFound, Unauthorized
from hexcast.core.pgtext import PG_TEXT

__all__ = ["KEY_COLUMNS", "Tenant", "authenticate", "create_tenant", "find_tenant", "hash_key", "issue_key",
           "issue_key_row", "tenant_name"]

_KEY_PREFIX = "hx"
KEY_COLUMNS = "id, name, scope, prefix, created_at, last_used_at, revoked_at, rotated_from"
"""What may be shown of a key: never its secret or hash."""
_NAME = TypeAdapter(Annotated[str, StringConstraints(
    strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"), PG_TEXT])


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant, as the key that authenticated it sees it: ``scope`` is that key's
    (``hexcast.core.scopes.Scope``; admin for a tenant found by name), ``key_id`` its row."""

    id: int
    name: str
    scope: str = "admin"
    key_id: int | None = None


def hash_key(key: str) -> bytes:
    """SHA-256 of a high-entropy key (no salt needed: keys are 190 random bits)."""
    return hashlib.sha256(key.encode()).digest()


def _split(key: str) -> str:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != _KEY_PREFIX or not parts[1] or not parts[2]:
        raise Unauthorized("malformed API key")
    return parts[1]


def tenant_name(name: str) -> str:
    """``name`` stripped, if it is 1-200 printable characters PostgreSQL can store; else
    :class:`InvalidInput` saying what is wrong."""
    try:
        return _NAME.validate_python(name)
    except ValidationError as exc:
        raise InvalidInput(f"tenant name {name!r}: {exc.errors()[0]['msg']}", field="name") from None


async def create_tenant(conn: Conn, *, name: str) -> tuple[Tenant, str]:
    """A new tenant and its first API key (the only time the key is visible); the name as
    :func:`tenant_name` takes it."""
    name = tenant_name(name)
    async with conn.transaction():
        try:
            row = one(await conn.fetchrow(
                "INSERT INTO tenants (name) VALUES ($1) RETURNING id, name", name
            ))
        except asyncpg.UniqueViolationError as exc:
            raise ConflictError(f"tenant {name!r} already exists") from exc
        key = await issue_key(conn, tenant_id=row["id"])
    return Tenant(id=row["id"], name=row["name"]), key


async def issue_key(conn: Conn, *, tenant_id: int, scope: str = "admin", name: str | None = None,
                    rotated_from: int | None = None) -> str:
    """A new key ``hx_<prefix>_<secret>`` (returned once; only its hash is kept)."""
    key, _ = await issue_key_row(conn, tenant_id=tenant_id, scope=scope, name=name,
                                 rotated_from=rotated_from)
    return key


async def issue_key_row(conn: Conn, *, tenant_id: int, scope: str, name: str | None,
                        rotated_from: int | None = None) -> tuple[str, asyncpg.Record]:
    """:func:`issue_key` and the new row (id, name, scope, prefix, created_at...)."""
    prefix = secrets.token_hex(4)
    key = f"{_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    row = one(await conn.fetchrow(
        "INSERT INTO api_keys (tenant_id, prefix, key_hash, scope, name, rotated_from)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING " + KEY_COLUMNS,
        tenant_id, prefix, hash_key(key), scope, name, rotated_from,
    ))
    return key, row


async def authenticate(conn: Conn, *, key: str) -> Tenant:
    """The tenant owning an unrevoked key, else :class:`Unauthorized`."""
    digest = hash_key(key)
    row = await conn.fetchrow(_AUTHENTICATE, _split(key), digest)
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
        raise Unauthorized("unknown API key")
    return Tenant(id=row["id"], name=row["name"], scope=row["scope"], key_id=row["key_id"])


# One round trip: the lookup, and ``last_used_at`` moved when it is a minute old or more (so a
# busy key writes once a minute, not once a request). Read on every request, never cached: a
# revocation holds on every api process at once.
_AUTHENTICATE = """
WITH k AS (
    SELECT k.id AS key_id, k.key_hash, k.scope, t.id, t.name
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
    WHERE k.prefix = $1 AND k.revoked_at IS NULL
), used AS (
    UPDATE api_keys SET last_used_at = now()
    WHERE id = (SELECT key_id FROM k) AND key_hash = $2
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT * FROM k
"""


async def find_tenant(conn: Conn, *, name: str) -> Tenant:
    """The tenant called ``name``, else :class:`NotFound`."""
    row = await conn.fetchrow("SELECT id, name FROM tenants WHERE name = $1", name)
    if row is None:
        raise NotFound(f"tenant {name!r} not found")
    return Tenant(id=row["id"], name=row["name"])
