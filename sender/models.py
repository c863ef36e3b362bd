"""Send requests on the lane topics, and dead letters."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hexcast.wire import WireRecord

__all__ = [
    "DeadLetter",
    "DeliveryBatch",
    "DeliveryEvent",
    "Lane",
    "MAX_CHUNK",
    "MessageState",
    "ProviderSpec",
    "Receipt",
    "ReceiptBatch",
    "SendBatch",
    "SendRequest",
    "delivery_records",
]

MAX_CHUNK = 1000


class Lane(StrEnum):
    OTP = "otp"
    GEO = "geo"
    BULK = "bulk"

    @property
    def topic(self) -> str:
        return f"send.{self.value}"


class MessageState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    DEFERRED = "deferred"
    UNKNOWN = "unknown"


class ProviderSpec(BaseModel):
    """One provider account the sender may route to (``HEXCAST_SENDER_PROVIDERS`` JSON list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    url: Annotated[str, Field(pattern=r"^https?://")]
    token: str
    mode: Literal["batch", "single"] = "batch"
    lookup: bool = True
    weight: Annotated[int, Field(ge=1, le=1000)] = 1
    lanes: list[Lane] = Field(default_factory=lambda: list(Lane))
    rate_per_s: Annotated[float | None, Field(gt=0)] = None  # segments/s; None = provider_*
    requests_per_s: Annotated[float | None, Field(gt=0)] = None  # API calls/s; None = no limit
    tenants: list[int] | None = None  # tenants routed to this account; None = every tenant


class SendRequest(BaseModel):
    """One SMS to one recipient, identified by its deterministic message key."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_key: Annotated[str, Field(min_length=8, max_length=128)]
    tenant_id: int
    user_id: str | None = None
    phone: Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$")]
    body: Annotated[str, Field(min_length=1, max_length=1600)]
    promotion_id: int | None = None
    campaign_run_id: int | None = None
    expires_at: datetime | None = None
    confirmation: bool = False  # a STOP/START/HELP reply: goes even to an opted-out number


class SendBatch(WireRecord):
    """Topic ``send.<lane>``: up to 1,000 send requests of one lane."""

    lane: Lane
    items: Annotated[list[SendRequest], Field(min_length=1, max_length=MAX_CHUNK)]
    created_at: datetime


class DeadLetter(WireRecord):
    """Topic ``send.dlq``: what failed for good, with why, and the original payload."""

    source_topic: str
    key: str | None
    reason: str
    payload: str
    at: datetime


class Receipt(BaseModel):
    """A delivery receipt as the provider simulator (and our batch adapter) posts it."""

    model_config = ConfigDict(extra="ignore")

    provider_message_id: str
    client_ref: str
    status: str
    error: str | None = None
    at: datetime


class ReceiptBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipts: Annotated[list[Receipt], Field(max_length=MAX_CHUNK)]


class DeliveryEvent(WireRecord):
    """A message reached a notable or final state (carried on ``delivery`` in batches).

    Published by the sender (suppressed, deferred, expired, failed, accepted, unknown) and by
    the receipt webhook (delivered, failed), and for inbound replies and clicks. Consumers
    (matcher budgets and caps, campaign stats) must tolerate duplicates and any order.
    """

    message_key: str
    tenant_id: int
    lane: Lane
    state: MessageState | None = None
    kind: str = "state"  # "state", "click", "reply"
    reason: str | None = None
    promotion_id: int | None = None
    campaign_run_id: int | None = None
    user_id: str | None = None
    phone: str | None = None
    at: datetime


class DeliveryBatch(WireRecord):
    """Topic ``delivery``, key = tenant id: the events of one step of the sender (a chunk's
    acceptances, say) or of one receipt or click request; one record, not one per message,
    because a bulk chunk's thousand per-message records cost the sender more than its SQL."""

    events: list[DeliveryEvent] = Field(min_length=1, max_length=MAX_CHUNK)


def delivery_records(events: list[DeliveryEvent]) -> list[tuple[str, bytes]]:
    """(key, value) records for ``delivery``: one batch per tenant and ``MAX_CHUNK`` events."""
    by_tenant: dict[int, list[DeliveryEvent]] = {}
    for event in events:
        by_tenant.setdefault(event.tenant_id, []).append(event)
    return [(str(tenant), DeliveryBatch(events=group[start : start + MAX_CHUNK]).encode())
            for tenant, group in by_tenant.items() for start in range(0, len(group), MAX_CHUNK)]
