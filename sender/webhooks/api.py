"""Tenant webhook endpoints: ``/v1/webhooks/endpoints`` (the provider callbacks under
``/v1/webhooks/providers`` and ``/v1/webhooks/dlr`` are another thing: inbound).

The secret is shown on create and rotate only. A URL whose host resolves to a private,
loopback, link-local, multicast or unspecified address is a 422 unless
``webhook_allow_private_urls``; the worker checks it again before every request.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query, Response

from hexcast.core.errors import NotFound
from hexcast.core.ids import BIGINT_MAX
from hexcast.core.scopes import AdminTenant
from hexcast.core.settings import Settings
from hexcast.core.web import IdPath, PoolDep, SettingsDep
from sender.webhooks import models as m
from sender.webhooks import repo
from sender.webhooks.signing import new_secret
from sender.webhooks.ssrf import resolve_target

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks/endpoints", tags=["webhook endpoints"])


def _found(row: asyncpg.Record | None, endpoint_id: int) -> asyncpg.Record:
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return row


async def _check_url(url: str, settings: Settings) -> None:
    """Refuse (422) a host resolving to an internal address; nothing to check when allowed."""
    if not settings.webhook_allow_private_urls:
        await resolve_target(url, allow_private=False)


@router.post("", response_model=m.EndpointWithSecret, status_code=201)
async def create_endpoint(body: m.EndpointCreate, tenant: AdminTenant, pool: PoolDep,
                          settings: SettingsDep) -> m.EndpointWithSecret:
    """A new endpoint; its ``whsec_`` secret is shown now and never again (rotate for a new one)."""
    await _check_url(body.url, settings)
    async with pool.acquire() as conn:
        row = await repo.create_endpoint(
            conn, tenant_id=tenant.id, url=body.url, event_types=list(body.event_types),
            description=body.description, batch_size=body.batch_size, secret=new_secret())
    return m.EndpointWithSecret(**dict(row))


@router.get("", response_model=list[m.EndpointPublic])
async def list_endpoints(tenant: AdminTenant, pool: PoolDep) -> list[m.EndpointPublic]:
    async with pool.acquire() as conn:
        rows = await repo.list_endpoints(conn, tenant_id=tenant.id)
    return [m.EndpointPublic(**dict(r)) for r in rows]


@router.get("/{endpoint_id}", response_model=m.EndpointPublic)
async def get_endpoint(endpoint_id: IdPath, tenant: AdminTenant, pool: PoolDep) -> m.EndpointPublic:
    async with pool.acquire() as conn:
        row = await repo.get_endpoint(conn, tenant_id=tenant.id, endpoint_id=endpoint_id)
    return m.EndpointPublic(**dict(_found(row, endpoint_id)))


@router.patch("/{endpoint_id}", response_model=m.EndpointPublic)
async def update_endpoint(endpoint_id: IdPath, body: m.EndpointUpdate, tenant: AdminTenant,
                          pool: PoolDep, settings: SettingsDep) -> m.EndpointPublic:
    """Change the URL, event types, description, batch size; ``enabled: true`` re-enables."""
    if body.url is not None:
        await _check_url(body.url, settings)
    async with pool.acquire() as conn:
        row = await repo.update_endpoint(conn, tenant_id=tenant.id, endpoint_id=endpoint_id,
                                         changes=body.changes())
    return m.EndpointPublic(**dict(_found(row, endpoint_id)))


@router.delete("/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: IdPath, tenant: AdminTenant, pool: PoolDep) -> Response:
    async with pool.acquire() as conn:
        if not await repo.delete_endpoint(conn, tenant_id=tenant.id, endpoint_id=endpoint_id):
            raise NotFound(f"no webhook endpoint {endpoint_id}")
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", response_model=m.EndpointWithSecret)
async def rotate_secret(endpoint_id: IdPath, tenant: AdminTenant, pool: PoolDep) -> m.EndpointWithSecret:
    """A new secret, shown once; the previous one keeps signing (a second signature) for 24 h."""
    async with pool.acquire() as conn:
        row = await repo.rotate_secret(conn, tenant_id=tenant.id, endpoint_id=endpoint_id,
                                       secret=new_secret())
    return m.EndpointWithSecret(**dict(_found(row, endpoint_id)))


@router.get("/{endpoint_id}/attempts", response_model=m.AttemptPage)
async def list_attempts(
    endpoint_id: IdPath, tenant: AdminTenant, pool: PoolDep,
    before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> m.AttemptPage:
    """Requests made to the endpoint, newest first; ``next_before`` pages on."""
    async with pool.acquire() as conn:
        _found(await repo.get_endpoint(conn, tenant_id=tenant.id, endpoint_id=endpoint_id),
               endpoint_id)
        rows = await repo.attempts(conn, tenant_id=tenant.id, endpoint_id=endpoint_id,
                                   before=before, limit=limit)
    items = [m.AttemptPublic(**dict(r)) for r in rows]
    return m.AttemptPage(items=items, next_before=items[-1].id if len(items) == limit else None)


@router.post("/{endpoint_id}/replay", response_model=m.ReplayPublic, status_code=202)
async def replay(endpoint_id: IdPath, body: m.ReplayCreate, tenant: AdminTenant,
                 pool: PoolDep) -> m.ReplayPublic:
    """Send again the endpoint's events from ``since`` to ``until`` (its types, whether sent
    before or not); the worker picks them up at once."""
    async with pool.acquire() as conn:
        _found(await repo.get_endpoint(conn, tenant_id=tenant.id, endpoint_id=endpoint_id),
               endpoint_id)
        count = await repo.replay(conn, tenant_id=tenant.id, endpoint_id=endpoint_id,
                                  since=body.since, until=body.until)
    return m.ReplayPublic(requeued=count)
