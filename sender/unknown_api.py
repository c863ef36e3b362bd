"""Operator routes for messages left ``unknown`` (``sender.unknown``): list them, and resolve
one as delivered or failed once the provider's records say so. Audited (``message.resolve``);
the tenant's webhook and delivery events go out as for a receipt."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from hexcast.core.operator_log import Audited
from hexcast.core.pgtext import PG_TEXT
from hexcast.core.web import BusDep, Limit, PoolDep, RequireOperator, TextPath
from sender import dlr
from sender.models import delivery_records
from sender.unknown import Outcome, resolve_one, unknown_messages

__all__ = ["ResolveIn", "ResolvedPublic", "UnknownMessagePublic", "router"]

router = APIRouter(prefix="/v1/admin/messages", tags=["operators"], dependencies=[RequireOperator])


class UnknownMessagePublic(BaseModel):
    id: int
    message_key: str
    tenant_id: int
    phone: str
    provider: str | None = Field(description="The route it may have been taken by")
    reason: str | None = Field(description="Why it is unknown")
    updated_at: AwareDatetime


class ResolveIn(Audited):
    state: Outcome = Field(description="What the provider's records show")
    provider_status: Annotated[str | None, Field(
        min_length=1, max_length=200, description="The provider's own status, e.g. DELIVRD"), PG_TEXT] = None


class ResolvedPublic(BaseModel):
    message_key: str
    tenant_id: int
    state: str
    reason: str | None


@router.get("/unknown", response_model=list[UnknownMessagePublic])
async def list_unknown(
    pool: PoolDep, limit: Limit = 100,
    route: Annotated[str | None, Query(max_length=256, description="Only this route's"), PG_TEXT] = None,
) -> list[UnknownMessagePublic]:
    """The oldest unknown messages of every tenant, with their route and why they are unknown."""
    async with pool.acquire() as conn:
        rows = await unknown_messages(conn, provider=route, limit=limit)
    return [UnknownMessagePublic(**dict(r)) for r in rows]


@router.post("/{message_key}/resolve", response_model=ResolvedPublic)
async def resolve_message(
    message_key: TextPath, body: ResolveIn, pool: PoolDep, bus: BusDep,
) -> ResolvedPublic:
    """Settle an unknown message as delivered or failed (any other state is a 409, no such
    message a 404); audited with the actor, the reason and the provider's status. The tenant's
    webhook event goes out as for a receipt."""
    async with pool.acquire() as conn:
        row = await resolve_one(conn, key=message_key, outcome=body.state, reason=body.reason,
                                actor=body.actor, provider_status=body.provider_status)
    await bus.publish_many("delivery", delivery_records(dlr.receipt_events([row])))
    return ResolvedPublic(message_key=row["message_key"], tenant_id=row["tenant_id"],
                          state=row["state"], reason=row["error"])
