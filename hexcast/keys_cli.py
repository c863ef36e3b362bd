"""``hexcast tenant key create|list|revoke``: a tenant's API keys from the shell, as the
``/v1/keys`` routes manage them (the last admin key cannot be revoked here either)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from hexcast.core import apikeys
from hexcast.core.db import Conn, connect_pool
from hexcast.core.scopes import Scope
from hexcast.core.settings import get_settings
from hexcast.core.tenants import find_tenant

__all__ = ["key_app"]

T = TypeVar("T")
key_app = typer.Typer(no_args_is_help=True, help="A tenant's API keys (scopes: ingest, send,"
                      " marketer, admin).")
TenantName = Annotated[str, typer.Argument(help="Tenant name")]


def _with_tenant(tenant: str, work: Callable[[Conn, int], Awaitable[T]]) -> T:
    async def run() -> T:
        pool = await connect_pool(get_settings().database_url, max_size=1)
        try:
            async with pool.acquire() as conn:
                found = await find_tenant(conn, name=tenant)
                return await work(conn, found.id)
        finally:
            await pool.close()

    return asyncio.run(run())


@key_app.command("create")
def key_create(
    tenant: TenantName,
    scope: Annotated[Scope, typer.Option(help="What the key may do")],
    name: Annotated[str, typer.Option(help="What the key is for")],
) -> None:
    """Make a key and print it (shown once)."""
    key, row = _with_tenant(tenant, lambda conn, tid: apikeys.create_key(
        conn, tenant_id=tid, scope=scope, name=name))
    typer.echo(f"key {row['id']} {row['scope']} {row['name']}\napi key: {key}")


@key_app.command("list")
def key_list(tenant: TenantName) -> None:
    """The tenant's keys: id, scope, prefix, name, last use, revocation (never the secret)."""
    rows = _with_tenant(tenant, lambda conn, tid: apikeys.list_keys(conn, tenant_id=tid, limit=1000))
    for r in rows:
        used = r["last_used_at"].isoformat() if r["last_used_at"] else "never used"
        revoked = f"revoked {r['revoked_at'].isoformat()}" if r["revoked_at"] else "active"
        typer.echo(f"{r['id']}\t{r['scope']}\thx_{r['prefix']}_…\t{r['name'] or ''}\t{used}\t{revoked}")


@key_app.command("revoke")
def key_revoke(tenant: TenantName, key_id: Annotated[int, typer.Argument(help="Key id")]) -> None:
    """Revoke a key: refused by every api process from its next request."""
    row = _with_tenant(tenant, lambda conn, tid: apikeys.revoke_key(conn, tenant_id=tid, key_id=key_id))
    typer.echo(f"key {row['id']} revoked at {row['revoked_at'].isoformat()}")
