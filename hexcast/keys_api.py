"""Routes (admin scope): a tenant's API keys. The secret is shown once, when a key is made."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hexcast.core import apikeys
from hexcast.core.pgtext import PG_TEXT
from hexcast.core.scopes import AdminTenant, Scope
from hexcast.core.web import AfterId, IdPath, Limit, PoolDep

__all__ = ["KeyCreate", "KeyIssued", "KeyPublic", "router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, Field(min_length=1, max_length=200, description="What the key is for"), PG_TEXT]
    scope: Scope = Field(description="ingest: visits; send: messages and OTP; marketer: catalog,"
                         " recipients, campaigns, stats; admin: everything, keys and settings too")


class KeyPublic(BaseModel):
    """A key as listed: never its secret or hash."""

    id: int
    name: str | None
    scope: Scope
    prefix: str = Field(description="The part after `hx_` that names the key in logs")
    created_at: AwareDatetime
    last_used_at: AwareDatetime | None = Field(description="Moved at most once a minute")
    revoked_at: AwareDatetime | None
    rotated_from: int | None = Field(description="The key this one replaced by rotation")


class KeyIssued(KeyPublic):
    key: str = Field(description="The secret, shown this once: send it as X-API-Key")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyIssued)
async def create_key(body: KeyCreate, tenant: AdminTenant, pool: PoolDep) -> KeyIssued:
    """A new key of the given scope."""
    async with pool.acquire() as conn:
        key, row = await apikeys.create_key(conn, tenant_id=tenant.id, scope=body.scope,
                                            name=body.name)
    return KeyIssued(**dict(row), key=key)


@router.get("", response_model=list[KeyPublic])
async def list_keys(tenant: AdminTenant, pool: PoolDep, after_id: AfterId = 0,
                    limit: Limit = 100) -> list[KeyPublic]:
    """The tenant's keys, revoked ones included, with their last use."""
    async with pool.acquire() as conn:
        rows = await apikeys.list_keys(conn, tenant_id=tenant.id, after_id=after_id, limit=limit)
    return [KeyPublic(**dict(r)) for r in rows]


@router.post("/{key_id}/rotate", status_code=status.HTTP_201_CREATED, response_model=KeyIssued)
async def rotate_key(key_id: IdPath, tenant: AdminTenant, pool: PoolDep) -> KeyIssued:
    """A new key with the same name and scope; the old key is revoked at once (no grace)."""
    async with pool.acquire() as conn:
        key, row = await apikeys.rotate_key(conn, tenant_id=tenant.id, key_id=key_id)
    return KeyIssued(**dict(row), key=key)


@router.delete("/{key_id}", response_model=KeyPublic)
async def revoke_key(key_id: IdPath, tenant: AdminTenant, pool: PoolDep) -> KeyPublic:
    """Revoke a key: refused at once on every api process. The last admin key is a 409."""
    async with pool.acquire() as conn:
        row = await apikeys.revoke_key(conn, tenant_id=tenant.id, key_id=key_id)
    return KeyPublic(**dict(row))
