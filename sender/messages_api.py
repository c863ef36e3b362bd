"""Routes: a tenant's messages (``POST /v1/messages``) and their status, one or a page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Header, Query, status
from pydantic import AfterValidator, AwareDatetime, BaseModel

from hexcast.core.errors import NotFound
from hexcast.core.idempotency import idempotent, request_hash
from hexcast.core.ids import BIGINT_MAX
from hexcast.core.instants import EARLIEST
from hexcast.core.pgtext import PG_TEXT
from hexcast.core.scopes import SendTenant
from hexcast.core.web import AfterId, BusDep, PoolDep, TextPath
from sender import inbound_repo, message_list, submissions_repo
from sender.message_list import MessageFilter
from sender.models import Lane, MessageState, SendBatch
from sender.submissions import MessageBatchAccepted, MessageBatchCreate, Planned, plan_messages

__all__ = ["MessageEventPublic", "MessagePage", "MessagePublic", "router"]

router = APIRouter(tags=["messages"])

IdempotencyKey = Annotated[
    str, Header(alias="Idempotency-Key", min_length=1, max_length=128,
                description="Same key and body: the first answer again, nothing sent twice;"
                " the same key with another body is a 409.")
]


_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _storable(value: datetime) -> datetime:
    """An instant PostgreSQL and the driver can take (year 1 at +14:00 has no UTC date)."""
    if not EARLIEST <= value <= _LATEST:
        raise ValueError("must be between 1970 and 9999")
    return value


QueryInstant = Annotated[AwareDatetime, AfterValidator(_storable)]


class MessageEventPublic(BaseModel):
    from_state: str | None
    to_state: str
    actor: str
    reason: str | None
    at: AwareDatetime


class MessagePublic(BaseModel):
    """A message, the provider's last raw status and code for it (``provider_status``,
    ``provider_code``; ``reason`` is ours, e.g. the error a failure was given), and its
    whole history from the append-only audit trail."""

    id: int
    message_key: str
    lane: str
    state: str
    reason: str | None
    phone: str
    body: str
    client_reference: str | None
    user_id: str | None
    campaign_run_id: int | None
    provider: str | None
    provider_message_id: str | None
    provider_status: str | None
    provider_code: str | None
    attempts: int
    segments: int | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    not_before: AwareDatetime | None
    expires_at: AwareDatetime | None
    sent_at: AwareDatetime | None
    delivered_at: AwareDatetime | None
    events: list[MessageEventPublic]


class MessagePage(BaseModel):
    """Messages by id; ``next_after_id`` is the ``after_id`` of the next page (None: last)."""

    messages: list[MessagePublic]
    next_after_id: int | None


def _public(row: asyncpg.Record, events: list[asyncpg.Record]) -> MessagePublic:
    return MessagePublic(**{k: row[k] for k in MessagePublic.model_fields if k != "events"},
                         events=[MessageEventPublic(**{k: e[k] for k in MessageEventPublic.model_fields})
                                 for e in events])


@router.post("/v1/messages", response_model=MessageBatchAccepted,
             status_code=status.HTTP_202_ACCEPTED)
async def post_messages(
    body: MessageBatchCreate, idempotency_key: IdempotencyKey, tenant: SendTenant, pool: PoolDep,
    bus: BusDep,
) -> Any:
    """Queue 1 to 1,000 messages on the transactional lane (an order update: no marketing
    consent needed, a STOP still blocks it, quiet hours and caps apply) or the otp lane.

    The whole batch is checked first: one bad item is a 422 naming it, and nothing is queued.
    A message with ``send_at`` waits as ``deferred`` until then."""

    async def queue() -> MessageBatchAccepted:
        now = datetime.now(UTC)
        async with pool.acquire() as conn:
            limit = await inbound_repo.tenant_max_segments(conn, tenant_id=tenant.id)
            templates = await submissions_repo.template_bodies(
                conn, tenant_id=tenant.id,
                ids=[m.template_id for m in body.messages if m.template_id is not None])
            planned = plan_messages(body.messages, tenant_id=tenant.id,
                                    idempotency_key=idempotency_key, templates=templates,
                                    max_segments=limit, now=now)
            states = await submissions_repo.store_messages(conn, tenant_id=tenant.id,
                                                           planned=planned)
        await _publish(bus, [p for p in planned if states[p.request.message_key]
                             is MessageState.QUEUED], now)
        return MessageBatchAccepted(messages=[p.accepted(states[p.request.message_key])
                                              for p in planned])

    return await idempotent(pool, tenant_id=tenant.id, key=idempotency_key, status=202,
                            digest=request_hash("/v1/messages", body), create=queue)


async def _publish(bus: BusDep, queued: list[Planned], now: datetime) -> None:
    """One record per lane: the batch's queued messages, keyed by the first one's key."""
    for lane in Lane:
        items = [p.request for p in queued if p.lane is lane]
        if items:
            record = SendBatch(lane=lane, items=items, created_at=now)
            await bus.publish(lane.topic, items[0].message_key, record.encode())


@router.get("/v1/messages", response_model=MessagePage)
async def list_messages(
    tenant: SendTenant, pool: PoolDep,
    client_reference: Annotated[str | None, Query(min_length=1, max_length=128), PG_TEXT] = None,
    phone: Annotated[str | None, Query(pattern=r"^\+[1-9]\d{6,14}$"), PG_TEXT] = None,
    campaign_run_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    since: Annotated[QueryInstant | None, Query(description="Created at or after")] = None,
    until: Annotated[QueryInstant | None, Query(description="Created before")] = None,
    after_id: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessagePage:
    """The tenant's messages by client reference, phone, campaign run and/or creation time
    (every given filter applies), by id, each with its history; page with ``after_id``."""
    where = MessageFilter(client_reference=client_reference, phone=phone,
                          campaign_run_id=campaign_run_id, since=since, until=until)
    async with pool.acquire() as conn:
        rows = await message_list.list_messages(conn, tenant_id=tenant.id, where=where,
                                                after_id=after_id, limit=limit)
        events = await message_list.histories(conn, ids=[r["id"] for r in rows])
    return MessagePage(messages=[_public(r, events[r["id"]]) for r in rows],
                       next_after_id=rows[-1]["id"] if len(rows) == limit else None)


@router.get("/v1/messages/{message_key}", response_model=MessagePublic)
async def get_message(message_key: TextPath, tenant: SendTenant, pool: PoolDep) -> MessagePublic:
    """A message, the provider's raw status and code, and its whole history (another
    tenant's key is a 404)."""
    async with pool.acquire() as conn:
        row = await message_list.one_message(conn, tenant_id=tenant.id, message_key=message_key)
        if row is None:
            raise NotFound(f"message {message_key} not found")
        events = await message_list.histories(conn, ids=[row["id"]])
    return _public(row, events[row["id"]])
