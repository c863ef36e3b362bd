"""The tenant's replies to review: free text that reads like an opt-out ("please stop texting
me") is flagged (``sender.inbound.needs_review``) and waits here until a person resolves it as
an opt-out (recorded as a STOP would be) or dismisses it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from hexcast.core.errors import NotFound
from hexcast.core.scopes import MarketerTenant
from hexcast.core.web import AfterId, IdPath, PoolDep
from sender import inbound_repo, metrics

__all__ = ["FlaggedPublic", "ResolutionCreate", "router"]

router = APIRouter(prefix="/v1/inbound", tags=["replies"])


class FlaggedPublic(BaseModel):
    id: int
    phone: str
    body: str
    reply_to: str | None  # the key of the last message this tenant sent the number (7 days)
    received_at: datetime


class FlaggedPage(BaseModel):
    items: list[FlaggedPublic]
    next_after: int | None


class ResolutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["opt_out", "dismiss"]


class ResolutionPublic(BaseModel):
    id: int
    resolution: str
    resolved_at: datetime


@router.get("/flagged", response_model=FlaggedPage)
async def list_flagged(
    tenant: MarketerTenant, pool: PoolDep, after: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FlaggedPage:
    """Flagged replies not resolved yet, oldest first; ``next_after`` pages on."""
    async with pool.acquire() as conn:
        rows = await inbound_repo.flagged(conn, tenant_id=tenant.id, after_id=after, limit=limit)
    items = [FlaggedPublic(**dict(r)) for r in rows]
    return FlaggedPage(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.post("/flagged/{inbound_id}/resolve", response_model=ResolutionPublic)
async def resolve_flagged(
    inbound_id: IdPath, body: ResolutionCreate, tenant: MarketerTenant, pool: PoolDep,
) -> ResolutionPublic:
    """``opt_out``: the number is opted out for this tenant from now on; ``dismiss``: nothing
    changes. A reply resolved already (or another tenant's) is a 404."""
    async with pool.acquire() as conn:
        row = await inbound_repo.resolve_flagged(
            conn, tenant_id=tenant.id, inbound_id=inbound_id, resolution=body.action,
            actor=f"tenant:{tenant.id}")
        if row is not None and row["resolution"] == "opt_out":
            answered = row["reply_to"]
            metrics.count_optouts([tenant.id], await inbound_repo.campaign_of(
                conn, message_key=answered) if answered else None)
    if row is None:
        raise NotFound(f"no unresolved flagged reply {inbound_id}")
    return ResolutionPublic(id=row["id"], resolution=row["resolution"],
                            resolved_at=row["resolved_at"])
