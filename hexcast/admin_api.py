"""Operator routes of the api (operator token): create a tenant with its first admin key, and
read the operator audit log (``hexcast.core.operator_log``). Provider routes' controls are in
``sender.admin_api``, dead letters in ``sender.dlq_api``, unknown messages in
``sender.unknown_api``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime, BaseModel, Field

from hexcast.core import operator_log
from hexcast.core.operator_log import Audited
from hexcast.core.pgtext import PG_TEXT
from hexcast.core.web import PoolDep, RequireOperator
from hexcast.ops import open_tenant

__all__ = ["OperatorActionPublic", "TenantIssued", "TenantOpen", "router"]

router = APIRouter(prefix="/v1/admin", tags=["operators"], dependencies=[RequireOperator])


class TenantOpen(Audited):
    name: Annotated[str, Field(min_length=1, max_length=200, description="The brand's name"), PG_TEXT]


class TenantIssued(BaseModel):
    id: int
    name: str
    api_key: str = Field(description="The tenant's first admin key, shown this once: send it as"
                         " X-API-Key; it can make the tenant's other keys")


class OperatorActionPublic(BaseModel):
    at: AwareDatetime
    actor: str
    action: str = Field(description="tenant.create, campaign.pause, route.drain, dlq.requeue,"
                        " message.resolve, ...")
    target: str = Field(description="What it acted on: tenant:<id>, campaign:<id>, route:<name>,"
                        " dlq:<offset>, message:<key>")
    reason: str
    detail: dict[str, Any]


@router.post("/tenants", status_code=status.HTTP_201_CREATED, response_model=TenantIssued)
async def open_tenant_route(body: TenantOpen, pool: PoolDep) -> TenantIssued:
    """A new tenant (brand) and its first admin key; recorded in the operator audit log. A
    name already taken is a 409."""
    async with pool.acquire() as conn:
        tenant, key = await open_tenant(conn, name=body.name, actor=body.actor, reason=body.reason)
    return TenantIssued(id=tenant.id, name=tenant.name, api_key=key)


@router.get("/audit", response_model=list[OperatorActionPublic])
async def audit_log(
    pool: PoolDep, limit: Annotated[int, Query(ge=1, le=500)] = 100,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z.]+$",
                                        description="Only actions starting with this")] = None,
) -> list[OperatorActionPublic]:
    """Operator actions, newest first: tenants created, campaigns paused, resumed or cancelled,
    provider routes drained, disabled or enabled, dead letters requeued, unknown messages
    resolved; who, when, on what and why."""
    async with pool.acquire() as conn:
        found = await operator_log.recent(conn, limit=limit, action=action)
    return [OperatorActionPublic(at=a.at, actor=a.actor, action=a.action, target=a.target,
                                 reason=a.reason, detail=a.detail) for a in found]
