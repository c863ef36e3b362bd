"""Plivo's Message API (``POST /v1/Account/{auth_id}/Message/``, JSON, Basic auth with the Auth
ID and Auth Token), over httpx, and its signed delivery callbacks.

One request carries one text to up to 1,000 destinations (``dst`` joined with ``<``); Plivo
answers 202 with a ``message_uuid`` per valid destination, in ``dst`` order, and lists the
invalid ones apart in ``invalid_number``. It drops a repeated destination, so a request never
names a number twice (that message would get no uuid), and a chunk with several texts is
several requests, sent concurrently. A request has one ``src`` and one ``message_expiry``, so
messages also share a request only with those of the same sender (a ``sender_pool`` gives each
recipient its own sticky number) and the same expiry (the seconds left of the message's life,
at most the route's ``validity_s``, within :data:`VALIDITY`). Plivo keeps no reference of ours:
there is no lookup by ``client_ref``, so an ambiguous answer leaves its messages ``unknown``
rather than resent.

Its status callbacks are form posts (``MessageUUID``, ``Status``, ``ErrorCode``; one per status
change of the whole message, whatever its ``Units``) signed with ``X-Plivo-Signature-V3``:
base64 HMAC-SHA256 with the Auth Token over the URL, the sorted form fields and the nonce of
``X-Plivo-Signature-V3-Nonce``, as ``plivo.utils.validate_v3_signature`` checks it. The scheme
has no timestamp: a replayed callback verifies, and changes nothing (receipts only move
forward).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from hexcast.core.errors import ConfigError, ProviderError, ProviderUnavailable
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
from sender.providers.status import DeliveryStatus, ErrorClass, StatusTable
from sender.providers.validity import ValidityRange, utcnow, validity_s

__all__ = [
    "INVALID_NUMBER",
    "MAX_DESTINATIONS",
    "TABLE",
    "VALIDITY",
    "PlivoCallbacks",
    "PlivoProvider",
    "build",
    "callbacks",
    "plivo_number",
    "probe",
    "read_answer",
    "requests_for",
    "signature_v3",
]

MAX_DESTINATIONS = 1000
INVALID_NUMBER = "50"
"""Plivo's error code for an invalid destination, given to the numbers of ``invalid_number``."""
VALIDITY = ValidityRange(5, 10_799)
"""``message_expiry``: seconds in Plivo's queue, 5 to 10,799 (its default is 3 hours)."""

_SANITIZED = str.maketrans("", "", "/-.+() \t")  # what Plivo strips from a dst number
_UUID = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def plivo_number(phone: str) -> str:
    """A number as Plivo takes it in ``dst``: digits with the country code, no '+'."""
    return phone.translate(_SANITIZED)


def _one_head(msg: Outgoing) -> Hashable:
    return None


def requests_for(messages: list[Outgoing],
                 head: Callable[[Outgoing], Hashable] = _one_head) -> list[list[Outgoing]]:
    """The requests carrying ``messages``, in first-seen order: one text and one ``head`` (what
    else a request has one of: its sender and expiry) per request, each number at most once per
    request, at most :data:`MAX_DESTINATIONS` each."""
    requests: list[list[Outgoing]] = []
    by_body: dict[tuple[str, Hashable], list[tuple[list[Outgoing], set[str]]]] = {}
    for msg in messages:
        number = plivo_number(msg.to)
        slots = by_body.setdefault((msg.body, head(msg)), [])
        slot = next((s for s in slots if number not in s[1] and len(s[0]) < MAX_DESTINATIONS), None)
        if slot is None:
            slot = ([], set())
            slots.append(slot)
            requests.append(slot[0])
        slot[0].append(msg)
        slot[1].add(number)
    return requests


def read_answer(batch: list[Outgoing], answer: Any) -> list[ProviderResult]:
    """Each message of one request with its uuid, or rejected when Plivo listed its number as
    invalid. The uuids follow ``dst`` order with the invalid numbers left out; a count that does
    not add up cannot be mapped and is unreadable (``ValueError``)."""
    invalid = {plivo_number(str(n)) for n in answer.get("invalid_number") or ()}
    uuids = answer["message_uuid"]
    valid = [plivo_number(m.to) not in invalid for m in batch]
    if not isinstance(uuids, list) or len(uuids) != sum(valid):
        raise ValueError(f"message_uuid {uuids!r} for {sum(valid)} valid destinations")
    if not all(isinstance(u, str) and _UUID.match(u) for u in uuids):
        raise ValueError(f"message_uuid {uuids!r} is not a list of ids")
    ids = iter(uuids)
    return [
        ProviderResult(m.client_ref, True, next(ids)) if ok else ProviderResult(
            m.client_ref, False, None, f"{INVALID_NUMBER}: invalid destination number {m.to}")
        for m, ok in zip(batch, valid, strict=True)
    ]


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except UNREADABLE:
        error = None
    return provider_text(error if error else response.text) or ""


class PlivoProvider:
    """One Plivo account (or subaccount): ``spec.account`` is its Auth ID, ``spec.token`` its
    Auth Token; messages come from ``spec.sender_id``, or else the Powerpack
    ``spec.messaging_service``; receipts go to ``spec.callback_url``."""

    max_batch = MAX_DESTINATIONS
    supports_lookup = False

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, concurrency: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if not spec.account:
            raise ConfigError(f"provider {spec.name}: plivo needs account (the Auth ID)")
        if not (spec.sender_id or spec.sender_pool or spec.messaging_service):
            raise ConfigError(f"provider {spec.name}: plivo needs sender_id or messaging_service")
        self.name = spec.name
        self._spec = spec
        self._clock = clock
        self._path = f"/v1/Account/{spec.account}/Message/"
        self._fields: dict[str, str] = (
            {} if spec.sender_id or spec.sender_pool
            else {"powerpack_uuid": spec.messaging_service or ""})
        if spec.callback_url:
            self._fields |= {"url": spec.callback_url, "method": "POST"}
        self._concurrency = max(1, concurrency)
        self._http = HttpTransport(spec.name, spec.url, timeout_s=timeout_s,
                                   connections=self._concurrency,
                                   auth=(spec.account, spec.token.get_secret_value()))

    async def send(self, messages: list[Outgoing]) -> SendReport:
        """A request per text (and per repeat of a number); after the first failure no new
        request starts, and the messages without an answer share the gravest failure
        (:func:`~sender.providers.base.call_each`)."""
        now = self._clock()

        def head(msg: Outgoing) -> tuple[str | None, int | None]:
            return (pick_sender(self._spec, msg),
                    validity_s(self._spec.validity_s, msg.expires_at, now, VALIDITY))

        return await call_each(requests_for(messages, head),
                               lambda batch: self._post(batch, *head(batch[0])),
                               concurrency=self._concurrency)

    def payload(self, batch: list[Outgoing], src: str | None, expiry_s: int | None) -> dict[str, Any]:
        """The request for ``batch`` (one text), from ``src`` (None: the Powerpack chooses)."""
        payload: dict[str, Any] = {**self._fields, "dst": "<".join(plivo_number(m.to) for m in batch),
                                   "text": batch[0].body, "type": "sms"}
        if src is not None:
            payload["src"] = src
        if expiry_s is not None:
            payload["message_expiry"] = expiry_s
        return payload

    async def _post(self, batch: list[Outgoing], src: str | None,
                    expiry_s: int | None) -> list[ProviderResult]:
        payload = self.payload(batch, src, expiry_s)
        response = await self._http.request("POST", self._path, json=payload)
        if response.status_code in (200, 201, 202):
            try:
                return read_answer(batch, response.json())
            except UNREADABLE as exc:  # it said yes: it may have queued every one of them
                raise self._http.unreadable(exc) from exc
        return self._refused(batch, response)

    def _refused(self, batch: list[Outgoing], response: httpx.Response) -> list[ProviderResult]:
        """A 400 naming a destination of the request refused its numbers (Plivo answers so
        when none is valid): each message is rejected. Any other answer (401/403 credentials,
        400 sender or text, 404 account) refuses the call for good."""
        text = _error_text(response)
        named = [n for n in (plivo_number(m.to) for m in batch) if n and n in text]
        if response.status_code == 400 and named:
            return [ProviderResult(m.client_ref, False, None, f"400: {text}") for m in batch]
        failure = ProviderError(f"{self.name}: HTTP {response.status_code}: {text}")
        failure.retryable = False
        raise failure

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        """Plivo cannot find a message by our reference (never called: ``supports_lookup``)."""
        raise ProviderUnavailable(f"{self.name}: plivo has no lookup by client reference")

    async def aclose(self) -> None:
        await self._http.aclose()


TABLE = StatusTable(
    kind="plivo",
    statuses={
        "queued": DeliveryStatus.ACCEPTED, "sent": DeliveryStatus.SENT,
        "delivered": DeliveryStatus.DELIVERED, "read": DeliveryStatus.DELIVERED,
        "undelivered": DeliveryStatus.FAILED, "failed": DeliveryStatus.FAILED,
        "rejected": DeliveryStatus.FAILED,
    },
    errors={
        "10": ErrorClass.PERMANENT,  # invalid message
        "20": ErrorClass.UNDELIVERED,  # network error
        "30": ErrorClass.FILTERED,  # spam detected
        "40": ErrorClass.PERMANENT,  # invalid source number
        "50": ErrorClass.PERMANENT,  # invalid destination number
        "60": ErrorClass.UNDELIVERED,  # loop detected
        "70": ErrorClass.PERMANENT,  # destination permanently unavailable
        "80": ErrorClass.UNDELIVERED,  # destination temporarily unavailable
        "90": ErrorClass.UNDELIVERED,  # no route available
        "100": ErrorClass.PERMANENT,  # prohibited by carrier (the network takes no SMS)
        "110": ErrorClass.PERMANENT,  # message too long
        "200": ErrorClass.OPTED_OUT,  # source number blocked by STOP from the destination
        "201": ErrorClass.PERMANENT,  # US toll-free number to a Canadian destination
        "900": ErrorClass.RETRY_LATER,  # insufficient credit: failed before any carrier
        "1000": ErrorClass.UNDELIVERED,  # unknown error
    },
)

SIGNATURE = "x-plivo-signature-v3"
NONCE = "x-plivo-signature-v3-nonce"


def _pairs(params: Mapping[str, list[str]], *, joint: str, separator: str) -> str:
    return separator.join(
        f"{key}{joint}{value}" for key in sorted(params) for value in sorted(params[key]))


def signature_v3(token: str, *, url: str, nonce: str, params: Mapping[str, list[str]]) -> str:
    """``X-Plivo-Signature-V3`` of a POST of ``params`` to ``url``, as the Plivo SDK computes it:
    the URL without its query, then (with params) '?', its query sorted as ``k=v&…``, '.' if
    there was a query, the params sorted as ``k1v1k2v2…``; then '.' and the nonce."""
    parts = urlparse(url)
    query = _pairs(parse_qs(parts.query, keep_blank_values=True), joint="=", separator="&")
    signed = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if params:
        signed += f"?{query}{'.' if query else ''}{_pairs(params, joint='', separator='')}"
    elif query:
        signed += f"?{query}"
    digest = hmac.new(token.encode(), f"{signed}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _form(body: bytes) -> dict[str, list[str]]:
    """A form body; ``ValueError`` when it is not one."""
    return parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))


class PlivoCallbacks:
    """Plivo's status callbacks: V3-signed with the account's Auth Token (``spec.token``)."""

    def __init__(self, spec: ProviderSpec) -> None:
        self._token = spec.token.get_secret_value()

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        signatures, nonce = headers.get(SIGNATURE, ""), headers.get(NONCE, "")
        if not signatures or not nonce:
            return False
        try:
            params = _form(body)
        except ValueError:
            return False
        expected = signature_v3(self._token, url=url, nonce=nonce, params=params).encode()
        return any(hmac.compare_digest(expected, s.strip().encode()) for s in signatures.split(","))

    def receipts(self, *, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        """One receipt: Plivo reports the whole message (``Units`` parts) in each callback."""
        form = _form(body)
        uuid, word = (form.get(name, [""])[0] for name in ("MessageUUID", "Status"))
        if not _UUID.match(uuid) or not word:
            raise ValueError("a Plivo callback names its MessageUUID and Status")
        code = form.get("ErrorCode", [""])[0].strip()
        return [Receipt(provider_message_id=uuid, status=TABLE.status(word),
                        code=code if code.strip("0") else None)]


def build(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    return PlivoProvider(spec, timeout_s=timeout_s, concurrency=concurrency)


def callbacks(spec: ProviderSpec) -> Callbacks:
    return PlivoCallbacks(spec)


def _account(response: httpx.Response) -> str:
    """The Account object's id, type and ``cash_credits`` (a decimal string, in USD)."""
    body = response.json()
    return (f"account {provider_text(body['auth_id'])} ({provider_text(body.get('account_type'))}),"
            f" {provider_text(body['cash_credits'])} USD credit")


async def probe(spec: ProviderSpec, *, timeout_s: float) -> str:
    """The Account object (``GET /v1/Account/{auth_id}/``, Basic auth as for sending): its
    type (``standard``, or ``developer`` on a free trial) and cash credits, which Plivo
    keeps in USD."""
    account = spec.account or ""
    return await probe_get(spec.name, spec.url, f"/v1/Account/{account}/", _account,
                           timeout_s=timeout_s, auth=(account, spec.token.get_secret_value()))
