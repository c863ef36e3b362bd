"""Routes: OTPs, provider delivery receipts and inbound replies, links (a tenant's messages
and their status: ``sender.messages_api``). The sender's metrics are on each process's own
``/metrics`` port (``sender.metrics``)."""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

import asyncpg
from fastapi import APIRouter, Depends, Header, Path, Request, status
from fastapi.responses import RedirectResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from hexcast.core.bus import Bus
from hexcast.core.errors import InvalidInput, NotFound, Unauthorized
from hexcast.core.idempotency import idempotent, request_hash
from hexcast.core.pgtext import PG_TEXT
from hexcast.core.scopes import SendTenant
from hexcast.core.web import BusDep, IdPath, PoolDep, SettingsDep, TextPath
from sender import dlr, inbound_repo, links_repo, queries, settle
from sender.keys import otp_key
from sender.links import is_bot
from sender.models import (
    DeliveryEvent,
    Lane,
    ReceiptBatch,
    SendBatch,
    SendRequest,
    delivery_records,
)
from sender.providers import adapter_module, callbacks_for
from sender.providers.status import StatusCallback
from sender.replies import publish_confirmation, take_reply
from sender.routing import provider_specs
from sender.text import segment_info

__all__ = ["router"]

router = APIRouter(tags=["messages"])


class OtpCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$", description="E.164"), PG_TEXT]
    body: Annotated[str, Field(min_length=1, max_length=1600), PG_TEXT]
    ttl_s: Annotated[int, Field(ge=10, le=3600)] = 300
    user_id: Annotated[str | None, Field(max_length=128), PG_TEXT] = None


class OtpAccepted(BaseModel):
    message_key: str
    lane: str
    segments: int
    expires_at: AwareDatetime


IdempotencyKey = Annotated[
    str, Header(alias="Idempotency-Key", min_length=1, max_length=128,
                description="Same key, same message: a retried request never sends twice.")
]


class InboundIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    from_: Annotated[str, Field(alias="from", pattern=r"^\+[1-9]\d{6,14}$"), PG_TEXT]
    body: Annotated[str, Field(max_length=1600), PG_TEXT]
    id: Annotated[str | None, Field(max_length=128, description="Provider's reply id"), PG_TEXT] = None


class InboundApplied(BaseModel):
    kind: str
    flagged: bool
    duplicate: bool
    confirmation_key: str | None
    reply_to: str | None = None  # the message it answers: the last sent to the number (7 days)


class ReceiptsApplied(BaseModel):
    received: int
    applied: int


@router.post("/v1/messages/otp", response_model=OtpAccepted, status_code=status.HTTP_202_ACCEPTED)
async def post_otp(
    body: OtpCreate, idempotency_key: IdempotencyKey, tenant: SendTenant, pool: PoolDep,
    bus: BusDep,
) -> Any:
    """Queue a one-time password on the otp lane (exempt from marketing consent, not opt-out).

    The key is the message's identity: the same key and body answer the first response again
    (one message, whatever the retries), the same key with another body is a 409."""
    segments = segment_info(body.body).segments
    async with pool.acquire() as conn:
        limit = await inbound_repo.tenant_max_segments(conn, tenant_id=tenant.id)
    if segments > limit:
        raise InvalidInput(f"body is {segments} segments; this tenant allows {limit}", field="body")

    async def queue() -> OtpAccepted:
        key = otp_key(tenant_id=tenant.id, idempotency_key=idempotency_key)
        now = datetime.now(UTC)
        request = SendRequest(message_key=key, tenant_id=tenant.id, user_id=body.user_id,
                              phone=body.phone, body=body.body,
                              expires_at=now + timedelta(seconds=body.ttl_s))
        record = SendBatch(lane=Lane.OTP, items=[request], created_at=now)
        await bus.publish(Lane.OTP.topic, key, record.encode())
        return OtpAccepted(message_key=key, lane=Lane.OTP.value, segments=segments,
                           expires_at=request.expires_at or now)

    return await idempotent(pool, tenant_id=tenant.id, key=idempotency_key, status=202,
                            digest=request_hash("/v1/messages/otp", body), create=queue)


async def _webhook_token(settings: SettingsDep, authorization: Annotated[str, Header()] = "") -> None:
    """The provider's webhook token, checked before the body is validated: a caller without it
    learns nothing of what a valid body looks like."""
    expected = f"Bearer {settings.dlr_webhook_token}"
    if not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise Unauthorized("bad webhook token", scheme="Bearer")


WebhookAuth = Depends(_webhook_token)


@router.post("/v1/webhooks/inbound/{tenant_id}", response_model=InboundApplied, tags=["webhooks"],
             dependencies=[WebhookAuth])
async def inbound_reply(
    tenant_id: IdPath, body: InboundIn, pool: PoolDep, bus: BusDep,
) -> InboundApplied:
    """A reply from a handset: STOP-words opt out at once, START-words opt in, HELP answers.

    Each keyword gets exactly one confirmation, also when the provider retries the webhook.
    """
    async with pool.acquire() as conn:
        taken = await take_reply(conn, tenant_id=tenant_id, phone=body.from_, body=body.body,
                                 provider_ref=body.id)
    if taken is None:
        raise NotFound(f"tenant {tenant_id} not found")
    if taken.confirmation is not None:
        await publish_confirmation(bus, taken.confirmation)
    return InboundApplied(kind=taken.kind, flagged=taken.flagged, duplicate=not taken.new,
                          confirmation_key=taken.confirmation.message_key
                          if taken.confirmation else None, reply_to=taken.reply_to)


@router.post("/v1/webhooks/dlr", response_model=ReceiptsApplied, tags=["webhooks"],
             dependencies=[WebhookAuth])
async def delivery_receipts(body: ReceiptBatch, pool: PoolDep, bus: BusDep) -> ReceiptsApplied:
    """Receipts from a batch provider; duplicates and late receipts are applied at most once."""
    await dlr.dead_letter_receipts(bus, body.refused)  # the others are applied
    receipts = [(r.client_ref, r.status, r.error) for r in body.receipts]
    applied = await _apply_receipts(pool, bus, receipts)
    return applied.model_copy(update={"received": applied.received + len(body.refused)})


@router.post("/v1/webhooks/status", response_model=ReceiptsApplied, tags=["webhooks"],
             dependencies=[WebhookAuth], openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-www-form-urlencoded": {
                     "schema": StatusCallback.model_json_schema()}}}})
async def status_callback(request: Request, pool: PoolDep, bus: BusDep) -> ReceiptsApplied:
    """A single-message provider's (Twilio-like) form-encoded status callback, one message each.

    Found by the provider's message id; intermediate statuses (queued, sent...) change nothing.
    """
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    try:
        callback = StatusCallback.model_validate(form)
    except ValidationError as exc:
        raise InvalidInput(f"bad status callback: {exc.errors()[0]['msg']}",
                           field=".".join(str(p) for p in exc.errors()[0]["loc"])) from None
    final = callback.final()
    if final is None:
        return ReceiptsApplied(received=1, applied=0)
    async with pool.acquire() as conn:
        refs = await queries.client_refs_by_provider_id(conn, provider_message_ids=[callback.MessageSid])
    ref = refs.get(callback.MessageSid)
    if ref is None:
        return ReceiptsApplied(received=1, applied=0)
    return await _apply_receipts(pool, bus, [(ref, *final)])


async def _apply_receipts(
    pool: asyncpg.Pool, bus: Bus, receipts: list[tuple[str, str, str | None]]
) -> ReceiptsApplied:
    changed = await dlr.apply_receipts(pool, bus, receipts, actor="dlr-webhook")
    await _publish_changes(bus, changed)
    return ReceiptsApplied(received=len(receipts), applied=len(changed))


async def _publish_changes(bus: Bus, changed: list[asyncpg.Record]) -> None:
    # Committed first: a failed publish answers 503 and the provider retries; the states are
    # final by then, so the retry publishes nothing (consumers reconcile from PostgreSQL).
    await bus.publish_many("delivery", delivery_records(dlr.receipt_events(changed)))


@router.post("/v1/webhooks/providers/{name}", response_model=ReceiptsApplied, tags=["webhooks"],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object"}},
                 "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}})
async def provider_callback(
    name: TextPath, request: Request, pool: PoolDep, bus: BusDep, settings: SettingsDep
) -> ReceiptsApplied:
    """A provider's delivery callback (Twilio, Vonage, Plivo, Sinch, Telnyx or the generic
    API), checked with its own signature scheme against the route's public URL; a part's
    receipt waits until its message and its other parts are known (``sender.settle``).
    A ``ref`` query parameter (our client reference, set in the callback URL at send time)
    names the message for a callback that carries only the provider's id."""
    spec = next((s for s in provider_specs(settings) if s.name == name), None)
    if spec is None:
        raise NotFound(f"no provider route {name!r}")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    public = spec.callback_url or f"{settings.api_public_url.rstrip('/')}/v1/webhooks/providers/{name}"
    url = f"{public.split('?')[0]}?{request.url.query}" if request.url.query else public
    checker = callbacks_for(spec)
    if not checker.verify(url=url, headers=headers, body=body):
        raise Unauthorized("callback signature does not verify")
    try:
        receipts = checker.receipts(headers=headers, body=body)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"unreadable {spec.kind} callback: {exc}"[:300]) from None
    ref = request.query_params.get("ref")
    if ref:
        receipts = [r if r.client_ref else replace(r, client_ref=ref) for r in receipts]
    async with pool.acquire() as conn:
        kept = await settle.keep(conn, provider=name, table=adapter_module(spec.kind).TABLE,
                                 receipts=receipts)
        changed = await settle.settle(conn, keys=kept.keys, unplaced=kept.unplaced,
                                      actor=f"{name}-callback")
    await _publish_changes(bus, changed)
    return ReceiptsApplied(received=len(receipts), applied=len(changed))


@router.get("/r/{code}", tags=["links"], response_class=RedirectResponse, status_code=302)
async def follow_link(
    code: Annotated[str, Path(min_length=4, max_length=16, pattern=r"^[0-9A-Za-z]+$"), PG_TEXT],
    pool: PoolDep, bus: BusDep, user_agent: Annotated[str | None, Header()] = None,
) -> RedirectResponse:
    """Redirect a short link; a click by a person (not a bot or prefetcher) is recorded."""
    bot = is_bot(user_agent)
    async with pool.acquire() as conn:
        link = await links_repo.record_click(conn, code=code, user_agent=user_agent, bot=bot)
    if link is None:
        raise NotFound(f"link {code} not found")
    if not bot and link["lane"] is not None:
        event = DeliveryEvent(message_key=link["message_key"], tenant_id=link["tenant_id"],
                              lane=Lane(link["lane"]), kind="click", user_id=link["user_id"],
                              phone=link["phone"], promotion_id=link["promotion_id"],
                              campaign_run_id=link["campaign_run_id"], at=datetime.now(UTC))
        await bus.publish_many("delivery", delivery_records([event]))
    return RedirectResponse(link["url"], status_code=302)
