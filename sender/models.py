"""Send requests on the lane topics, and dead letters."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    model_validator,
)

from hexcast.core.deadletter import DeadLetter
from hexcast.core.pgtext import PG_TEXT, PgText
from hexcast.core.wire import WireRecord, validate_items

__all__ = [
    "DeadLetter",
    "DeliveryBatch",
    "DeliveryEvent",
    "Lane",
    "MAX_CHUNK",
    "PACED_CHUNK_WINDOWS",
    "PACE_WINDOW_S",
    "MessageState",
    "DEFAULT_URLS",
    "ProviderKind",
    "SmppOptions",
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
    TRANSACTIONAL = "transactional"  # asked for by the recipient (an order update)
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


ProviderKind = Literal["generic", "twilio", "vonage", "plivo", "sinch", "telnyx", "smpp", "dryrun"]
"""The provider APIs hexcast speaks; each has its adapter in ``sender/providers/<kind>.py``."""

DEFAULT_URLS: dict[str, str] = {
    "twilio": "https://api.twilio.com",
    "vonage": "https://rest.nexmo.com",
    "plivo": "https://api.plivo.com",
    "sinch": "https://us.sms.api.sinch.com",
    "telnyx": "https://api.telnyx.com",
}
"""Each provider's production API, used when a route names no ``url``."""


_NEEDS_ACCOUNT = {"twilio": "Account SID", "vonage": "API key", "plivo": "Auth ID",
                  "sinch": "service plan id", "smpp": "system_id"}


class SmppOptions(BaseModel):
    """How an ``smpp`` route talks to its SMSC (``url = "smpp://host:port"``, ``account`` its
    system_id, ``token`` its password). ``binds``: sessions per sender process, each
    ``transceiver`` or a ``transmitter`` + ``receiver`` pair; ``window``: unanswered
    ``submit_sm`` per bind; ``mps_per_bind``: submit_sm per second per bind (the route's
    ``rate_per_s`` is shared by every process through Redis); ``long_messages``: concatenation
    by ``udh`` (8-bit reference), ``sar`` TLVs or one ``payload`` TLV; ``data_coding``:
    ``auto`` (GSM-7, data_coding 0, when the text fits it, else UCS-2, 8) or ``ucs2`` (always
    UCS-2); ``receipt_ids``: how a receipt text's ``id:`` relates to the submit_sm_resp id
    (``hex_to_decimal``: answered in hex, the text in decimal, and the reverse; a
    ``receipted_message_id`` TLV repeats the answer's id as it was)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    binds: Annotated[int, Field(ge=1, le=16)] = 1
    bind_mode: Literal["transceiver", "pair"] = "transceiver"
    system_type: Annotated[str, Field(max_length=12)] = ""
    window: Annotated[int, Field(ge=1, le=1000)] = 10
    mps_per_bind: Annotated[float | None, Field(gt=0)] = None
    long_messages: Literal["udh", "sar", "payload"] = "udh"
    data_coding: Literal["auto", "ucs2"] = "auto"
    receipt_ids: Literal["same", "hex_to_decimal", "decimal_to_hex"] = "same"
    enquire_link_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    response_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    reconnect_max_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
_NEEDS_SENDER = frozenset({"twilio", "vonage", "plivo", "sinch", "telnyx"})

SenderNumber = Annotated[str, Field(pattern=r"^(\+[1-9]\d{1,14}|[A-Za-z0-9]{1,11})$")]
"""A number messages come from: E.164 (``+`` and up to 15 digits) or an alphanumeric id (a
short code or a brand name) of up to 11 characters."""


class ProviderSpec(BaseModel):
    """One provider account the sender may route to (``HEXCAST_SENDER_PROVIDERS`` JSON list).

    ``kind`` picks the API. Its credentials: ``account`` (Twilio's Account SID, Vonage's API
    key, Plivo's Auth ID, Sinch's service plan id) and ``token`` (the auth token, API secret
    or bearer token); ``sender_id`` is the number or alphanumeric id messages come from,
    ``messaging_service`` a Twilio Messaging Service SID or Telnyx messaging profile id,
    ``webhook_key`` what checks its callbacks where that is not the token (Telnyx's Ed25519
    public key, base64; Vonage's signature secret), ``callback_url`` the public URL it posts
    receipts to (behind a TLS-terminating proxy, the URL the provider signs). ``token`` and
    ``webhook_key`` are ``SecretStr``: repr, str, dumps and logs show ``**********``; only an
    adapter building a request or checking a signature reads them (``get_secret_value()``).
    ``sender_pool`` (instead of ``sender_id``) is a number pool: each recipient always gets the
    same one of its numbers (``sender.providers.senders.pick_sender``). ``validity_s`` is how
    long the provider may keep trying a message (a message's own ``expires_at`` may shorten
    it; None: the provider's default).
    ``mode`` and ``lookup`` apply to the generic JSON API."""

    # A failed validation names the field, never the input (a route with its secrets).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    kind: ProviderKind = "generic"
    url: Annotated[str, Field(pattern=r"^(https?|smpp)://")] = ""
    token: SecretStr
    account: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    sender_id: Annotated[str | None, Field(min_length=1, max_length=32)] = None
    sender_pool: Annotated[list[SenderNumber] | None, Field(min_length=1, max_length=1000)] = None
    messaging_service: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    webhook_key: Annotated[SecretStr | None, Field(min_length=1)] = None
    callback_url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    mode: Literal["batch", "single"] = "batch"
    lookup: bool = True
    weight: Annotated[int, Field(ge=1, le=1000)] = 1
    priority: Annotated[int, Field(ge=1, le=9)] = 1  # 1 first; 2 when every 1 fails or is full
    concurrency: Annotated[int | None, Field(ge=1, le=512)] = None  # requests in flight
    lanes: list[Lane] = Field(default_factory=lambda: list(Lane))
    rate_per_s: Annotated[float | None, Field(gt=0)] = None  # segments/s; None = provider_*
    requests_per_s: Annotated[float | None, Field(gt=0)] = None  # API calls/s; None = no limit
    tenants: list[int] | None = None  # tenants routed to this account; None = every tenant
    countries: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] | None = None  # ISO 3166
    validity_s: Annotated[int | None, Field(ge=60, le=259_200)] = None  # 1 min to 3 days
    smpp: SmppOptions | None = None  # kind smpp only; None = its defaults
    tenant_senders: bool = False  # the account may send from tenants' own sender ids

    @model_validator(mode="after")
    def _one_sender(self) -> ProviderSpec:
        """A route sends from one ``sender_id`` or from its ``sender_pool``, each number once."""
        if self.sender_pool is None:
            return self
        if self.sender_id is not None:
            raise ValueError(f"route {self.name}: give sender_id or sender_pool, not both")
        seen: set[str] = set()
        for number in self.sender_pool:
            if number in seen:
                raise ValueError(f"route {self.name}: sender_pool lists {number} twice")
            seen.add(number)
        return self

    @model_validator(mode="after")
    def _per_kind(self) -> ProviderSpec:
        """What each kind needs, checked where the route is read (not when its adapter starts)."""
        if self.kind in _NEEDS_ACCOUNT and not self.account:
            raise ValueError(f"a {self.kind} route needs its {_NEEDS_ACCOUNT[self.kind]} (account)")
        if self.kind in _NEEDS_SENDER and not (self.sender_id or self.sender_pool
                                               or self.messaging_service):
            raise ValueError(f"a {self.kind} route needs sender_id or messaging_service"
                             " (or a sender_pool)")
        if (self.kind == "smpp") != self.url.startswith("smpp://") and self.url:
            raise ValueError("url: an smpp route (and only an smpp route) has an smpp://host:port url")
        if self.kind == "smpp" and not 1 <= len(self.token.get_secret_value()) <= 8:
            raise ValueError("token: an SMPP password has 1 to 8 characters")
        if self.smpp is not None and self.kind != "smpp":
            raise ValueError("smpp: options for an smpp route only")
        if not self.url:
            if self.kind == "smpp":
                raise ValueError("url: an smpp route needs its SMSC as smpp://host:port")
            if self.kind == "dryrun":
                object.__setattr__(self, "url", "http://dryrun.invalid")
                return self
            if self.kind == "generic":
                raise ValueError("url: a generic provider needs its url")
            object.__setattr__(self, "url", DEFAULT_URLS[self.kind])
        return self


class SendRequest(BaseModel):
    """One SMS to one recipient, identified by its deterministic message key."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_key: Annotated[str, Field(min_length=8, max_length=128), PG_TEXT]
    tenant_id: int
    user_id: PgText | None = None
    # The pattern admits no NUL and no lone surrogate (pydantic refuses those for a pattern),
    # so the text rule would only cost the hot path a call per message.
    phone: Annotated[str, Field(pattern=r"^\+[1-9]\d{6,14}$")]
    body: Annotated[str, Field(min_length=1, max_length=1600), PG_TEXT]
    promotion_id: int | None = None
    campaign_run_id: int | None = None
    expires_at: datetime | None = None
    confirmation: bool = False  # a STOP/START/HELP reply: goes even to an opted-out number


PACE_WINDOW_S = 1.0
"""A paced run's rate budget is handed out a window at a time: the sender waits for a whole
window's tokens (at most the route's batch) instead of taking the few that trickled in (at
800/s that was ~5 messages a provider call)."""
PACED_CHUNK_WINDOWS = 4
"""A slower run's chunks hold up to this many whole windows (within a full chunk), so more of
the run is in flight between the scheduler and the senders (with one-window chunks a 5 s
count of a 14/s run fell to 80 % once)."""


class SendBatch(WireRecord):
    """Topic ``send.<lane>``: up to 1,000 send requests of one lane."""

    ITEMS = "items"
    ITEM_NAME = "message_key"

    lane: Lane
    items: Annotated[list[SendRequest], Field(min_length=1, max_length=MAX_CHUNK)]
    created_at: datetime
    # A paced campaign's chunk cut to whole pacing windows (PACED_CHUNK_WINDOWS): the sender
    # does not slice it (a half window would be a call of its own).
    paced: bool = False


class Receipt(BaseModel):
    """A delivery receipt as the provider simulator (and our batch adapter) posts it."""

    model_config = ConfigDict(extra="ignore")

    provider_message_id: PgText
    client_ref: PgText
    status: PgText
    error: PgText | None = None
    at: datetime


class ReceiptBatch(BaseModel):
    """A provider's batch of receipts. A receipt that does not validate is set aside in
    :attr:`refused` (the webhook dead-letters it) instead of refusing the others with it."""

    model_config = ConfigDict(extra="forbid")

    receipts: Annotated[list[Receipt], Field(max_length=MAX_CHUNK)]
    _refused: list[tuple[Any, str]] = PrivateAttr(default_factory=list)

    @property
    def refused(self) -> list[tuple[Any, str]]:
        """(receipt as posted, why) of each receipt set aside."""
        return self._refused

    @model_validator(mode="wrap")
    @classmethod
    def _receipt_by_receipt(cls, data: Any, handler: ModelWrapValidatorHandler[ReceiptBatch]
                            ) -> ReceiptBatch:
        items = data.get("receipts") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) > MAX_CHUNK:
            return handler(data)
        good, bad = validate_items(Receipt, items, "client_ref")
        batch = handler({**data, "receipts": good})
        batch._refused = [(item, why) for _, item, why in bad]
        return batch


class DeliveryEvent(WireRecord):
    """A message reached a notable or final state (carried on ``delivery`` in batches).

    Published by the sender (suppressed, deferred, expired, failed, accepted, unknown) and by
    the receipt webhook (delivered, failed), and for inbound replies and clicks. Consumers
    (matcher budgets and caps, campaign stats) must tolerate duplicates and any order.
    """

    message_key: PgText
    tenant_id: int
    lane: Lane
    state: MessageState | None = None
    kind: str = "state"  # "state", "click", "reply": only compared, never stored
    reason: PgText | None = None
    promotion_id: int | None = None
    campaign_run_id: int | None = None
    user_id: PgText | None = None
    phone: PgText | None = None
    at: datetime


class DeliveryBatch(WireRecord):
    """Topic ``delivery``, key = tenant id: the events of one step of the sender (a chunk's
    acceptances, say) or of one receipt or click request; one record, not one per message,
    because a bulk chunk's thousand per-message records cost the sender more than its SQL."""

    ITEMS = "events"
    ITEM_NAME = "message_key"

    events: list[DeliveryEvent] = Field(min_length=1, max_length=MAX_CHUNK)


def delivery_records(events: list[DeliveryEvent]) -> list[tuple[str, bytes]]:
    """(key, value) records for ``delivery``: one batch per tenant and ``MAX_CHUNK`` events."""
    by_tenant: dict[int, list[DeliveryEvent]] = {}
    for event in events:
        by_tenant.setdefault(event.tenant_id, []).append(event)
    return [(str(tenant), DeliveryBatch(events=group[start : start + MAX_CHUNK]).encode())
            for tenant, group in by_tenant.items() for start in range(0, len(group), MAX_CHUNK)]
