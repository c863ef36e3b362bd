"""Routes: provider delivery receipts and a tenant's message history."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel

from hexcast.errors import NotFound, Unauthorized
from hexcast.web import PoolDep, SettingsDep, TenantDep
from sender import repo
from sender.models import ReceiptBatch

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["messages"])


class ReceiptsApplied(BaseModel):
    received: int
    applied: int


class MessageEventPublic(BaseModel):
    from_state: str | None
    to_state: str
    actor: str
    reason: str | None
    at: datetime


class MessagePublic(BaseModel):
    message_key: str
    lane: str
    state: str
    reason: str | None
    phone: str
    body: str
    provider: str | None
    provider_message_id: str | None
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    events: list[MessageEventPublic]


@router.post("/webhooks/dlr", response_model=ReceiptsApplied, tags=["webhooks"])
async def delivery_receipts(
    body: ReceiptBatch,
    pool: PoolDep,
    settings: SettingsDep,
    authorization: Annotated[str, Header()] = "",
) -> ReceiptsApplied:
    """Receipts from the provider; duplicates and late receipts are applied at most once."""
    expected = f"Bearer {settings.dlr_webhook_token}"
    if not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise Unauthorized("bad webhook token")
    receipts = [(r.client_ref, r.status, r.error) for r in body.receipts]
    async with pool.acquire() as conn:
        applied = await repo.apply_receipts(conn, receipts=receipts, actor="dlr-webhook")
    return ReceiptsApplied(received=len(receipts), applied=applied)


@router.get("/messages/{message_key}", response_model=MessagePublic)
async def get_message(message_key: str, tenant: TenantDep, pool: PoolDep) -> MessagePublic:
    """A message and its whole history, from the append-only audit trail."""
    async with pool.acquire() as conn:
        msg, events = await repo.message_history(
            conn, tenant_id=tenant.id, message_key=message_key
        )
    if msg is None:
        raise NotFound(f"message {message_key} not found")
    return MessagePublic(
        **{k: msg[k] for k in MessagePublic.model_fields if k != "events"},
        events=[MessageEventPublic(**dict(e)) for e in events],
    )
