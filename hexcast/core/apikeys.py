"""A tenant's API keys: create, list, rotate, revoke. SQL only, no HTTP.

Every change takes the tenant's row lock first, so two revocations at once cannot each leave
the other key as the last admin one and then both succeed. A rotation revokes the old key at
once (no grace period): the new key is in the answer that revokes it.
"""

from __future__ import annotations

import asyncpg

from hexcast.core.db import Conn, one
from hexcast.core.errors import ConflictError, NotFound
from hexcast.core.scopes import Scope
from hexcast.core.tenants import KEY_COLUMNS, issue_key_row

__all__ = ["create_key", "list_keys", "revoke_key", "rotate_key"]


async def create_key(conn: Conn, *, tenant_id: int, scope: Scope, name: str | None
                     ) -> tuple[str, asyncpg.Record]:
    """A new key of ``scope`` (the secret, returned only here, and its row)."""
    return await issue_key_row(conn, tenant_id=tenant_id, scope=scope.value, name=name)


async def list_keys(conn: Conn, *, tenant_id: int, after_id: int = 0, limit: int = 100
                    ) -> list[asyncpg.Record]:
    """The tenant's keys, revoked ones too, by id (never the secret or its hash)."""
    return list(await conn.fetch(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        tenant_id, after_id, limit,
    ))


async def rotate_key(conn: Conn, *, tenant_id: int, key_id: int) -> tuple[str, asyncpg.Record]:
    """A new key with the old one's scope and name (``rotated_from`` names it); the old key is
    revoked in the same transaction. A revoked key cannot be rotated (409)."""
    async with conn.transaction():
        old = await _locked(conn, tenant_id=tenant_id, key_id=key_id)
        if old["revoked_at"] is not None:
            raise ConflictError(f"API key {key_id} is revoked; create a new one instead")
        issued = await issue_key_row(conn, tenant_id=tenant_id, scope=old["scope"], name=old["name"],
                                     rotated_from=key_id)
        await _revoke(conn, key_id=key_id)
    return issued


async def revoke_key(conn: Conn, *, tenant_id: int, key_id: int) -> asyncpg.Record:
    """Revoke a key (again: unchanged). The tenant's last unrevoked admin key cannot be revoked
    (409): nobody could manage the keys after it."""
    async with conn.transaction():
        key = await _locked(conn, tenant_id=tenant_id, key_id=key_id)
        if key["revoked_at"] is not None:
            return key
        if key["scope"] == Scope.ADMIN and not await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND scope = 'admin'"
            " AND revoked_at IS NULL AND id <> $2", tenant_id, key_id,
        ):
            raise ConflictError(f"API key {key_id} is the tenant's last admin key: create"
                                " another admin key (or rotate this one) first")
        return await _revoke(conn, key_id=key_id)


async def _locked(conn: Conn, *, tenant_id: int, key_id: int) -> asyncpg.Record:
    """The key's row, after locking its tenant (serialises a tenant's key changes)."""
    await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
    row = await conn.fetchrow(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND tenant_id = $2", key_id, tenant_id,
    )
    if row is None:
        raise NotFound(f"API key {key_id} not found")
    return row


async def _revoke(conn: Conn, *, key_id: int) -> asyncpg.Record:
    return one(await conn.fetchrow(
        f"UPDATE api_keys SET revoked_at = now() WHERE id = $1 RETURNING {KEY_COLUMNS}", key_id,
    ))
