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

__all__ = ["Tenant", "authenticate", "create_tenant", "find_tenant", "hash_key", "issue_key"]

_KEY_PREFIX = "hx"
_NAME = TypeAdapter(Annotated[str, StringConstraints(
    strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")])


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str


def hash_key(key: str) -> bytes:
    """SHA-256 of a high-entropy key (no salt needed: keys are 190 random bits)."""
    return hashlib.sha256(key.encode()).digest()


def _split(key: str) -> str:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != _KEY_PREFIX or not parts[1] or not parts[2]:
        raise Unauthorized("malformed API key")
    return parts[1]


async def create_tenant(conn: Conn, *, name: str) -> tuple[Tenant, str]:
    """A new tenant and its first API key (the only time the key is visible). The name is
    stripped and must be 1-200 printable characters."""
    try:
        name = _NAME.validate_python(name)
    except ValidationError as exc:
        raise InvalidInput(f"tenant name {name!r}: {exc.errors()[0]['msg']}", field="name") from None
    async with conn.transaction():
        try:
            row = one(await conn.fetchrow(
                "INSERT INTO tenants (name) VALUES ($1) RETURNING id, name", name
            ))
        except asyncpg.UniqueViolationError as exc:
            raise ConflictError(f"tenant {name!r} already exists") from exc
        key = await issue_key(conn, tenant_id=row["id"])
    return Tenant(id=row["id"], name=row["name"]), key


async def issue_key(conn: Conn, *, tenant_id: int) -> str:
    prefix = secrets.token_hex(4)
    key = f"{_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    await conn.execute(
        "INSERT INTO api_keys (tenant_id, prefix, key_hash) VALUES ($1, $2, $3)",
        tenant_id, prefix, hash_key(key),
    )
    return key


async def authenticate(conn: Conn, *, key: str) -> Tenant:
    """The tenant owning an unrevoked key, else :class:`Unauthorized`."""
    prefix = _split(key)
    row = await conn.fetchrow(
        "SELECT k.key_hash, t.id, t.name FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
        " WHERE k.prefix = $1 AND k.revoked_at IS NULL",
        prefix,
    )
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), hash_key(key)):
        raise Unauthorized("unknown API key")
    return Tenant(id=row["id"], name=row["name"])


async def find_tenant(conn: Conn, *, name: str) -> Tenant:
    """The tenant called ``name``, else :class:`NotFound`."""
    row = await conn.fetchrow("SELECT id, name FROM tenants WHERE name = $1", name)
    if row is None:
        raise NotFound(f"tenant {name!r} not found")
    return Tenant(id=row["id"], name=row["name"])
