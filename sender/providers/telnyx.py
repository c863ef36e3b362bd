"""Telnyx Messaging API v2, over httpx: ``POST /v2/messages`` (JSON, ``Authorization: Bearer``),
one recipient per request, ``concurrency`` requests in flight.

- The message id Telnyx answers (``data.id``, a UUID) is the id its webhooks name, so it is our
  provider message id as is.
- Each request carries ``Idempotency-Key`` (our client reference, or its SHA-256 when it does
  not fit Telnyx's key pattern): Telnyx replays the first success for 24 h, so a request
  resent after a lost answer does not send the SMS twice. Telnyx cannot find a message by our
  reference, so ``supports_lookup`` is False.
- With ``spec.callback_url`` every message names its own ``webhook_url`` (with ``?ref=<client
  reference>``, which the callback endpoint reads) and ``use_profile_webhooks: false``;
  without it Telnyx posts to the messaging profile's webhooks.
- ``from`` is the route's number for the recipient (its ``sender_pool``'s sticky pick, else
  ``sender_id``; neither: the messaging profile's pool chooses). ``POST /v2/messages`` has no
  validity period (the SDK's ``message_send_params`` lists none), so ``expires_at`` and
  ``validity_s`` do not reach Telnyx; the dispatcher still fails what expired before the call.
- Throttling is HTTP 429 with code 10011 and ``x-ratelimit-reset`` (seconds to wait; Telnyx
  documents no Retry-After).
- Webhooks (``message.sent``, ``message.finalized``) are signed with Ed25519 over
  ``"{telnyx-timestamp}|{body}"``; the key is the account's public key (``spec.webhook_key``,
  base64). The URL is not signed. Receipts are per message, not per part (the payload says
  how many ``parts`` the message had, not which one a receipt is about).

Sources: developers.telnyx.com (messaging error codes, API errors, rate limiting,
idempotency, receiving webhooks) and the ``telnyx`` SDK 4.x (``resources/webhooks.py``,
``types/outbound_message_payload.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hexcast.core.errors import ConfigError, ProviderError, ProviderRateLimited
from sender.models import ProviderSpec
from sender.providers.base import (
    UNREADABLE,
    Callbacks,
    HttpTransport,
    Outgoing,
    Provider,
    ProviderResult,
    Receipt,
    SendReport,
    call_each,
    probe_get,
    provider_text,
    retry_after,
)
from sender.providers.senders import pick_sender
from sender.providers.status import DeliveryStatus, ErrorClass, StatusTable

__all__ = [
    "MAX_SKEW_S",
    "TABLE",
    "TelnyxCallbacks",
    "TelnyxProvider",
    "build",
    "callbacks",
    "idempotency_key",
    "probe",
]

MAX_SKEW_S = 300
"""A webhook whose timestamp is further than this from now is refused (a replay)."""

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_:-]{1,255}$")
_RECEIPT_EVENTS = frozenset({"message.sent", "message.finalized"})

TABLE = StatusTable(
    kind="telnyx",
    statuses={
        "queued": DeliveryStatus.ACCEPTED,
        "sending": DeliveryStatus.ACCEPTED,
        "sent": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED,
        "read": DeliveryStatus.DELIVERED,  # RCS/WhatsApp read receipts: delivered first
        "delivery_failed": DeliveryStatus.FAILED,
        "sending_failed": DeliveryStatus.FAILED,
        "expired": DeliveryStatus.EXPIRED,
        "delivery_unconfirmed": DeliveryStatus.UNKNOWN,  # the carrier sent no receipt
    },
    errors={
        "10011": ErrorClass.RETRY_LATER,  # too many requests (API)
        "40011": ErrorClass.RETRY_LATER,  # upstream (carrier) rate limit exceeded
        "10002": ErrorClass.PERMANENT,  # invalid phone number
        "10016": ErrorClass.PERMANENT,  # phone number must be in +E.164 format
        "40310": ErrorClass.PERMANENT,  # invalid 'to' address
        "40001": ErrorClass.PERMANENT,  # not routable (landline)
        "40012": ErrorClass.PERMANENT,  # invalid destination number
        "40009": ErrorClass.PERMANENT,  # invalid message body
        "40013": ErrorClass.PERMANENT,  # invalid source number
        "40300": ErrorClass.OPTED_OUT,  # blocked due to STOP message
        "40002": ErrorClass.FILTERED,  # blocked as spam, temporary
        "40003": ErrorClass.FILTERED,  # blocked as spam, permanent
        "40015": ErrorClass.FILTERED,  # Telnyx internal spam filter
        "40004": ErrorClass.UNDELIVERED,  # rejected by destination
        "40005": ErrorClass.UNDELIVERED,  # message expired during transmission
        "40006": ErrorClass.UNDELIVERED,  # recipient server unavailable
        "40008": ErrorClass.UNDELIVERED,  # undeliverable
        "40014": ErrorClass.UNDELIVERED,  # expired in queue
    },
)


def idempotency_key(client_ref: str) -> str:
    """Our reference as Telnyx's ``Idempotency-Key``, or its SHA-256 when it does not fit the
    key pattern (``^[A-Za-z0-9_:-]{1,255}$``): the same message always gets the same key."""
    if _KEY_PATTERN.match(client_ref):
        return client_ref
    return "sha256:" + hashlib.sha256(client_ref.encode()).hexdigest()


def _with_ref(url: str, client_ref: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("ref", client_ref)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _reset_as_retry_after(response: httpx.Response) -> None:
    """Telnyx names its wait ``x-ratelimit-reset`` (seconds); the transport reads Retry-After."""
    reset = response.headers.get("x-ratelimit-reset")
    if response.status_code >= 400 and reset is not None and "retry-after" not in response.headers:
        response.headers["Retry-After"] = reset


def _first_error(response: httpx.Response) -> tuple[str | None, str]:
    """The first ``errors[]`` entry's code and its title/detail, if the body has one."""
    try:
        error = response.json()["errors"][0]
        code = provider_text(error.get("code"))
        text = provider_text(error.get("detail") or error.get("title") or "") or ""
    except (*UNREADABLE, IndexError):
        return None, provider_text(response.text) or ""
    return code, text


class TelnyxProvider:
    """One Telnyx account (API key), sending from ``sender_id`` and/or a messaging profile."""

    max_batch = 1000
    supports_lookup = False

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> None:
        if spec.sender_id is None and spec.sender_pool is None and spec.messaging_service is None:
            raise ConfigError(f"telnyx route {spec.name}: set sender_id or messaging_service "
                              "(a messaging profile id)")
        self.name = spec.name
        self._spec = spec
        self._concurrency = max(1, concurrency)
        self._http = HttpTransport(spec.name, spec.url, timeout_s=timeout_s,
                                   connections=self._concurrency,
                                   headers={"Authorization": f"Bearer {spec.token.get_secret_value()}"})
        self._http.client.event_hooks["response"].append(_reset_as_retry_after)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        error = ProviderError(f"{self.name}: Telnyx cannot find a message by our reference")
        error.retryable = False
        raise error

    async def send(self, messages: list[Outgoing]) -> SendReport:
        """One request per message, at most ``concurrency`` at a time; after the first failure
        no new request starts and the messages not yet answered share the gravest
        (:func:`~sender.providers.base.call_each`)."""
        return await call_each(messages, self._send_one, concurrency=self._concurrency)

    def payload(self, msg: Outgoing) -> dict[str, Any]:
        """The JSON body of ``msg``'s request (deterministic: a resend is byte-identical, as
        Telnyx's idempotency requires)."""
        body: dict[str, Any] = {"to": msg.to, "text": msg.body}
        sender = pick_sender(self._spec, msg)
        if sender is not None:
            body["from"] = sender
        if self._spec.messaging_service is not None:
            body["messaging_profile_id"] = self._spec.messaging_service
        if self._spec.callback_url is not None:
            body["webhook_url"] = _with_ref(self._spec.callback_url, msg.client_ref)
            body["use_profile_webhooks"] = False
        return body

    async def _send_one(self, msg: Outgoing) -> ProviderResult:
        response = await self._http.request(
            "POST", "/v2/messages", json=self.payload(msg),
            headers={"Idempotency-Key": idempotency_key(msg.client_ref)})
        if not response.is_success:
            return self._refused(msg, response)
        try:
            pmid = provider_text(response.json()["data"]["id"])
            if not pmid:
                raise ValueError("no data.id")
        except UNREADABLE as exc:  # it answered success: the SMS may be on its way
            raise self._http.unreadable(exc) from exc
        return ProviderResult(msg.client_ref, True, pmid)

    def _refused(self, msg: Outgoing, response: httpx.Response) -> ProviderResult:
        """A refusal: this message's own (an invalid or opted-out number: a result), a
        throttle, or one that every message would get (credentials, sender): raised."""
        code, text = _first_error(response)
        kind = TABLE.errors.get(code) if code is not None else None
        if kind is ErrorClass.RETRY_LATER:
            raise ProviderRateLimited(f"{self.name}: throttled ({code})",
                                      retry_after=retry_after(response))
        if kind is not None and response.status_code in (400, 409, 422):
            return ProviderResult(msg.client_ref, False, None, provider_text(f"{code}: {text}"))
        failure = ProviderError(f"{self.name}: HTTP {response.status_code}: {code}: {text}")
        failure.retryable = False
        raise failure


class _To(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    phone_number: str | None = None


class _Error(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    code: str


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    id: str = Field(min_length=1, max_length=128)
    to: list[_To] = Field(min_length=1)
    errors: list[_Error] = Field(default_factory=list)


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_type: str
    payload: dict[str, Any]


class _Webhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: _Event


def _public_key(spec: ProviderSpec) -> Ed25519PublicKey:
    try:
        key = spec.webhook_key.get_secret_value() if spec.webhook_key else ""
        raw = base64.b64decode(key, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"telnyx route {spec.name}: webhook_key must be the account's Ed25519 "
                          "public key, base64 (32 bytes)") from exc


class TelnyxCallbacks:
    """Telnyx's messaging webhooks: Ed25519-signed JSON events, one per message and status."""

    def __init__(self, spec: ProviderSpec) -> None:
        self._key = _public_key(spec)

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        """The signature over ``"{telnyx-timestamp}|{body}"`` with a timestamp within
        :data:`MAX_SKEW_S` of now (``url`` plays no part: Telnyx does not sign it)."""
        stamp = headers.get("telnyx-timestamp", "")
        try:
            signature = base64.b64decode(headers.get("telnyx-signature-ed25519", ""), validate=True)
            fresh = abs(time.time() - int(stamp)) <= MAX_SKEW_S
        except (binascii.Error, ValueError):
            return False
        if not fresh:
            return False
        try:
            self._key.verify(signature, stamp.encode() + b"|" + body)
        except InvalidSignature:
            return False
        return True

    def receipts(self, *, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        """A ``message.sent``/``message.finalized`` event's receipt (other events, such as
        inbound messages, carry none). ValueError on a body not of Telnyx's shape."""
        try:
            event = _Webhook.model_validate_json(body).data
            if event.event_type not in _RECEIPT_EVENTS:
                return []
            message = _Message.model_validate(event.payload)
        except ValidationError as exc:
            raise ValueError(f"not a Telnyx message event: {exc.error_count()} errors") from None
        code = provider_text(message.errors[0].code) if message.errors else None
        return [Receipt(provider_message_id=message.id, status=TABLE.status(message.to[0].status),
                        code=code)]


def build(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    return TelnyxProvider(spec, timeout_s=timeout_s, concurrency=concurrency)


def callbacks(spec: ProviderSpec) -> Callbacks:
    return TelnyxCallbacks(spec)


def _balance(response: httpx.Response) -> str:
    """``data``: ``balance``, ``available_credit`` and ``currency``, amounts as decimal strings."""
    data = response.json()["data"]
    currency = provider_text(data["currency"])
    return (f"balance {provider_text(data['balance'])} {currency},"
            f" available {provider_text(data.get('available_credit'))} {currency}")


async def probe(spec: ProviderSpec, *, timeout_s: float) -> str:
    """The account's balance (``GET /v2/balance``, the API key as Bearer as for sending):
    balance and available credit (balance plus credit limit), in its currency."""
    return await probe_get(spec.name, spec.url, "/v2/balance", _balance, timeout_s=timeout_s,
                           headers={"Authorization": f"Bearer {spec.token.get_secret_value()}"})
