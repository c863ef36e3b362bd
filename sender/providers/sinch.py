"""Sinch's SMS REST API (``POST /xms/v1/{service_plan_id}/batches``, Bearer token) and its
recipient delivery reports, over httpx.

A Sinch batch is one body to up to 1,000 recipients, and Sinch answers one batch id for all of
them; its delivery reports name the batch and the recipient. So :meth:`SinchProvider.send`
groups the messages into batches (a batch never names a number twice) and answers each message's
id as ``"{batch_id}:{+E.164}"``, the pair its receipts carry, which maps back to one message.

Personalised texts ("Hi Ann, ...", "Hi Bob, ...") share a batch through Sinch's per-recipient
``parameters``: the longest prefix and suffix the group's bodies share stay literal around one
placeholder, and each number's value is the rest of its own body. That is exact whatever the
campaign's template was (nothing is guessed), and one batch per text would cost a request for
every few recipients (:func:`batches`).

A batch has one ``from`` and one ``expire_at``, so messages share a batch only with those of
the same sender (a ``sender_pool`` gives each recipient its own sticky number) and the same
expiry (the message's ``expires_at``, at most the route's ``validity_s`` ahead, within
:data:`VALIDITY`, to the second). Messages of one campaign run share both; taking a batch's
earliest expiry instead would cut the others' lives short.

Sinch refuses a whole batch (``400 syntax_invalid_parameter_format``) for one malformed number,
so numbers are checked here first and a bad one is refused alone, never sent.

Sinch cannot find a message by our reference: its ``client_reference`` belongs to a batch, not
to a recipient. So there is no lookup (``supports_lookup = False``): an ambiguous call leaves
its messages ``unknown``, never resent.

Callbacks are checked with Sinch's HMAC scheme (``x-sinch-webhook-signature*`` headers, base64
HMAC-SHA256 over ``body.nonce.timestamp`` with the route's ``webhook_key``), as Sinch's SDKs
validate them (``SmsSinchEvent.validate_authentication_header``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hexcast.core.errors import ConfigError, ProviderError
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
)
from sender.providers.senders import pick_sender
from sender.providers.sinch_batches import MAX_BATCH, MAX_BODY, MAX_VALUE, PARAMETER, Batch, batches
from sender.providers.status import DeliveryStatus, ErrorClass, StatusTable
from sender.providers.validity import ValidityRange, utcnow, validity_s

__all__ = [
    "DELIVERY_REPORT",
    "MAX_BATCH",
    "MAX_BODY",
    "MAX_VALUE",
    "PARAMETER",
    "SIGNATURE_TOLERANCE_S",
    "TABLE",
    "VALIDITY",
    "Batch",
    "SinchCallbacks",
    "SinchProvider",
    "batches",
    "build",
    "callbacks",
    "message_id",
    "probe",
]

DELIVERY_REPORT = "per_recipient_final"
"""One callback per recipient, at its final state (``per_recipient`` would add one for every
intermediate state, which Sinch itself advises against for large batches)."""

SIGNATURE_TOLERANCE_S = 300
VALIDITY = ValidityRange(1, 259_200)
"""``expire_at``: after now, at most 3 days ahead (Sinch's default and maximum)."""
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CLIENT_REFERENCE_MAX = 128
_ROUTE_PARAMETER = re.compile(r"\b(from|callback_url)\b")
"""A 400 naming these is about the route's configuration (its sender id, its callback url),
not about the messages."""


def message_id(batch_id: str, recipient: str) -> str:
    """A message's id: its batch and its number in E.164 (Sinch writes numbers with or
    without the ``+``)."""
    return f"{batch_id}:+{recipient.lstrip('+')}"


def _error_text(response: httpx.Response) -> str:
    """``"<code>: <text>"`` of a Sinch error body (400/403), else the body as it came."""
    try:
        data = response.json()
        return f"{data['code']}: {data['text']}"
    except UNREADABLE:
        return response.text or f"HTTP {response.status_code}"


def _refused_for_good(message: str) -> ProviderError:
    failure = ProviderError(message)
    failure.retryable = False
    return failure


class SinchProvider:
    """One Sinch service plan: messages in batches (:func:`batches`), ``concurrency`` batch
    requests in flight.

    After the first failure no new batch starts; the messages of the failed batch and of the
    batches not started share the gravest (an ambiguous one first: see
    :func:`~sender.providers.base.call_each`)."""

    max_batch = MAX_BATCH
    supports_lookup = False

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, concurrency: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if not spec.account:
            raise ConfigError(f"provider {spec.name}: a sinch route needs its service plan id (account)")
        self.name = spec.name
        self._spec = spec
        self._clock = clock
        self._concurrency = max(1, concurrency)
        self._path = f"/xms/v1/{spec.account}/batches"
        self._http = HttpTransport(spec.name, spec.url, timeout_s=timeout_s,
                                   connections=self._concurrency,
                                   headers={"Authorization": f"Bearer {spec.token.get_secret_value()}"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        """Never called (``supports_lookup`` is False): Sinch cannot find a message by our
        reference, only batches by theirs."""
        raise _refused_for_good(f"{self.name}: sinch has no lookup by client reference")

    async def send(self, messages: list[Outgoing]) -> SendReport:
        invalid = [ProviderResult(
            msg.client_ref, False, None,
            provider_text(f"syntax_invalid_parameter_format: {msg.to!r} is not an E.164 number"))
            for msg in messages if not _E164.match(msg.to)]
        valid = [msg for msg in messages if _E164.match(msg.to)]
        report = await call_each(self.requests(valid), lambda request: self._batch(*request),
                                 concurrency=self._concurrency)
        report.results[:0] = invalid
        return report

    def requests(self, messages: list[Outgoing]) -> list[tuple[Batch, str | None]]:
        """The batches carrying ``messages`` with each one's ``expire_at``: grouped by sender
        and expiry first, then cut by :func:`batches`."""
        now = self._clock()
        groups: dict[tuple[str | None, str | None], list[Outgoing]] = {}
        for msg in messages:
            seconds = validity_s(self._spec.validity_s, msg.expires_at, now, VALIDITY)
            expire_at = None if seconds is None else _iso(now + timedelta(seconds=seconds))
            groups.setdefault((pick_sender(self._spec, msg), expire_at), []).append(msg)
        return [(batch, expire_at) for (_, expire_at), group in groups.items()
                for batch in batches(group)]

    def payload(self, batch: Batch, expire_at: str | None = None) -> dict[str, Any]:
        """The batch request: one body (and each number's value when it is personalised), its
        numbers, its sender (the route's number for its recipients, whom :meth:`requests`
        grouped by it), our reference (the message's own when it goes alone, else the first
        one's and how many more), per-recipient final reports and ``expire_at``."""
        messages = batch.messages
        first = messages[0].client_ref
        reference = first if len(messages) == 1 else f"{first}+{len(messages) - 1}"
        body: dict[str, Any] = {
            "to": [m.to for m in messages], "body": batch.body, "type": "mt_text",
            "delivery_report": DELIVERY_REPORT, "client_reference": reference[:_CLIENT_REFERENCE_MAX],
        }
        if batch.values is not None:
            body["parameters"] = {PARAMETER: batch.values}
        sender = pick_sender(self._spec, messages[0])
        if sender:
            body["from"] = sender
        if self._spec.callback_url:
            body["callback_url"] = self._spec.callback_url
        if expire_at is not None:
            body["expire_at"] = expire_at
        return body

    async def _batch(self, batch: Batch, expire_at: str | None) -> list[ProviderResult]:
        response = await self._http.request("POST", self._path, json=self.payload(batch, expire_at))
        return self.read_answer(batch.messages, response)

    def read_answer(self, batch: list[Outgoing], response: httpx.Response) -> list[ProviderResult]:
        """What Sinch's answer to one batch request means for each of its messages.

        A 2xx with the batch: every message taken, under its composite id; an unreadable one:
        ambiguous (it may have taken them all). 400: the request's content was refused, so
        each of its messages is, unless it names the route's sender id or callback url. Other
        answers (401 bad token or service plan, 403 unknown campaign or missing callback url,
        404) are the account's configuration: refused for good. 429 and 5xx never get here
        (:class:`HttpTransport` raises them)."""
        if response.is_success:
            try:
                batch_id = response.json()["id"]
                if not isinstance(batch_id, str) or not batch_id:
                    raise ValueError(f"batch id {batch_id!r}")
            except UNREADABLE as exc:
                raise self._http.unreadable(exc) from exc
            return [ProviderResult(m.client_ref, True, provider_text(message_id(batch_id, m.to)))
                    for m in batch]
        error = provider_text(_error_text(response))
        if response.status_code == 400 and not _ROUTE_PARAMETER.search(error or ""):
            return [ProviderResult(m.client_ref, False, None, error) for m in batch]
        raise _refused_for_good(f"{self.name}: HTTP {response.status_code}: {error}")


TABLE = StatusTable(
    kind="sinch",
    statuses={
        "queued": DeliveryStatus.ACCEPTED, "dispatched": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED, "aborted": DeliveryStatus.FAILED,
        "cancelled": DeliveryStatus.FAILED, "rejected": DeliveryStatus.FAILED,
        "deleted": DeliveryStatus.FAILED, "failed": DeliveryStatus.FAILED,
        "expired": DeliveryStatus.EXPIRED, "unknown": DeliveryStatus.UNKNOWN,
    },
    errors={
        # The REST API's own codes (developers.sinch.com/docs/sms/api-reference/sms/tag/Delivery-reports)
        "402": ErrorClass.PERMANENT,  # message unroutable: retrying causes the same error
        "403": ErrorClass.UNDELIVERED,  # internal error
        "404": ErrorClass.RETRY_LATER,  # temporary delivery failure: may be retried
        "405": ErrorClass.PERMANENT,  # unmatched parameter
        "406": ErrorClass.UNDELIVERED,  # internal expiry before reaching the SMSC
        "407": ErrorClass.UNDELIVERED,  # cancelled
        "408": ErrorClass.PERMANENT,  # internal reject: retrying causes the same error
        "410": ErrorClass.PERMANENT,  # unmatched default originator
        "411": ErrorClass.PERMANENT,  # exceeded parts limit
        "412": ErrorClass.PERMANENT,  # unprovisioned region
        "413": ErrorClass.PERMANENT,  # the account is blocked
        # SMPP status report codes Sinch networks send (docs/sms/smpp/error-codes)
        "15": ErrorClass.FILTERED,  # screening block
        "62": ErrorClass.FILTERED,  # keyword blocked
        "100": ErrorClass.PERMANENT,  # unidentified subscriber
        "150": ErrorClass.PERMANENT,  # unknown subscriber (no such number)
        "151": ErrorClass.PERMANENT,  # call barred
        "300": ErrorClass.PERMANENT,  # invalid destination address
        "360": ErrorClass.RETRY_LATER,  # message queue full
    },
)


def _iso(when: datetime) -> str:
    """A time as Sinch writes them: ISO-8601 in UTC, milliseconds, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _timestamp(value: str) -> float | None:
    """Seconds since the epoch of a signature timestamp (Sinch sends whole seconds; an
    ISO-8601 time is read too); None when it is neither."""
    try:
        return float(int(value))
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
    return value


class SinchCallbacks:
    """Sinch's recipient delivery reports (``recipient_delivery_report_sms``, one JSON object
    a request), signed with the route's ``webhook_key`` (none: nothing verifies)."""

    def __init__(self, spec: ProviderSpec, *, now: Callable[[], float] = time.time) -> None:
        self._secret = spec.webhook_key.get_secret_value().encode() if spec.webhook_key else b""
        self._now = now

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        """The signature over ``body.nonce.timestamp`` (the URL is not part of Sinch's scheme),
        made within 5 minutes of now."""
        signature = headers.get("x-sinch-webhook-signature")
        nonce = headers.get("x-sinch-webhook-signature-nonce")
        stamp = headers.get("x-sinch-webhook-signature-timestamp")
        algorithm = headers.get("x-sinch-webhook-signature-algorithm", "HmacSHA256")
        if not (self._secret and signature and nonce and stamp) or algorithm != "HmacSHA256":
            return False
        when = _timestamp(stamp)
        if when is None or abs(self._now() - when) > SIGNATURE_TOLERANCE_S:
            return False
        signed = b".".join((body, nonce.encode(), stamp.encode()))
        expected = base64.b64encode(hmac.new(self._secret, signed, hashlib.sha256).digest())
        return hmac.compare_digest(signature.encode(), expected)

    def receipts(self, *, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("type") != "recipient_delivery_report_sms":
            kind = data.get("type") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a sinch recipient delivery report: {kind!r}")
        code = data.get("code")
        if code is not None and not isinstance(code, int | str):
            raise ValueError(f"code: {code!r}")
        pmid = message_id(_text(data, "batch_id"), _text(data, "recipient"))
        return [Receipt(provider_message_id=pmid, status=TABLE.status(_text(data, "status")),
                        code=None if code is None else str(code))]


def build(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    return SinchProvider(spec, timeout_s=timeout_s, concurrency=concurrency)


def callbacks(spec: ProviderSpec) -> Callbacks:
    return SinchCallbacks(spec)


def _batch_count(response: httpx.Response) -> str:
    """A page of batches: ``count`` is how many match, whatever the page size."""
    count = response.json()["count"]
    if not isinstance(count, int):
        raise TypeError(f"count {count!r}")
    return f"service plan reachable, {count} batch(es) in the last 24 h"


async def probe(spec: ProviderSpec, *, timeout_s: float) -> str:
    """List one batch (``GET /xms/v1/{service_plan_id}/batches?page_size=1``, Bearer as for
    sending): Sinch has no balance endpoint on this API, and this is its cheapest read that
    checks the service plan and the token together. ``count`` is the batches of the last
    24 hours (the list's default window)."""
    return await probe_get(spec.name, spec.url, f"/xms/v1/{spec.account or ''}/batches", _batch_count,
                           timeout_s=timeout_s,
                           headers={"Authorization": f"Bearer {spec.token.get_secret_value()}"},
                           params={"page_size": 1})
