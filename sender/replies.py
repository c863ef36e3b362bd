"""Replies from handsets, from any channel (the inbound webhook, SMPP ``deliver_sm``): a
STOP-word opts out at once, a START-word opts in, HELP answers, free text mentioning stopping
is flagged for a person. Each keyword gets exactly one confirmation, also when the channel
delivers the reply again (``provider_ref`` dedupes it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hexcast.core.bus import Bus
from hexcast.core.db import Conn
from sender import inbound_repo, metrics
from sender.inbound import InboundKind, classify, confirmation_text, needs_review
from sender.keys import confirmation_key
from sender.models import Lane, SendBatch, SendRequest

__all__ = ["Taken", "publish_confirmation", "take_reply"]


@dataclass(frozen=True, slots=True)
class Taken:
    """What a reply did: its keyword kind, whether a person should read it, whether it was new,
    the key of the message it answers (the last its tenant sent the number within 7 days), and
    the confirmation to send (None for free text)."""

    kind: str
    flagged: bool
    new: bool
    reply_to: str | None
    confirmation: SendRequest | None


async def take_reply(
    conn: Conn, *, tenant_id: int, phone: str, body: str, provider_ref: str | None
) -> Taken | None:
    """Record the reply for the tenant and apply its opt-out or opt-in; None: no such tenant."""
    kind = classify(body)
    flagged = needs_review(body, kind)
    info = await inbound_repo.tenant_reply_info(conn, tenant_id=tenant_id)
    if info is None:
        return None
    inbound_id, new, reply_to = await inbound_repo.record_inbound(
        conn, tenant_id=tenant_id, phone=phone, body=body, kind=kind.value, flagged=flagged,
        provider_ref=provider_ref)
    if new:
        await _count(conn, tenant_id, kind, reply_to)
    text = confirmation_text(kind, tenant_name=info[0], help_text=info[1])
    if text is None:
        return Taken(kind.value, flagged, new, reply_to, None)
    key = confirmation_key(tenant_id=tenant_id, inbound_id=inbound_id)
    reply = SendRequest(message_key=key, tenant_id=tenant_id, phone=phone, body=text,
                        confirmation=True, expires_at=datetime.now(UTC) + timedelta(hours=1))
    return Taken(kind.value, flagged, new, reply_to, reply)


async def _count(conn: Conn, tenant_id: int, kind: InboundKind, reply_to: str | None) -> None:
    """A new STOP counts for the campaign of the message it answers; a new HELP counts."""
    if kind is InboundKind.OPT_OUT:
        campaign = await inbound_repo.campaign_of(conn, message_key=reply_to) if reply_to else None
        metrics.count_optouts([tenant_id], campaign)
    elif kind is InboundKind.HELP:
        metrics.HELP_REQUESTS.labels(tenant=str(tenant_id)).inc()


async def publish_confirmation(bus: Bus, reply: SendRequest) -> None:
    """Send a confirmation on the OTP lane. Published again when a reply is delivered again
    (the first publish may have failed): the sender dedupes on the key, so the number still
    gets exactly one."""
    now = datetime.now(UTC)
    await bus.publish(Lane.OTP.topic, reply.message_key,
                      SendBatch(lane=Lane.OTP, items=[reply], created_at=now).encode())
