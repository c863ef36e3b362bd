"""Vonage's SMS API (``POST /sms/json``) and its signed delivery receipts, over httpx.

Sending: one recipient per request, form-encoded as the API reference documents it
(``api_key``/``api_secret`` from the route's ``account``/``token``, ``from`` = the route's
number for the recipient without ``+``: its ``sender_pool``'s sticky pick, else ``sender_id``;
``ttl`` = the milliseconds left of the message's life, at most the route's ``validity_s``,
within :data:`VALIDITY`; ``to`` in E.164 digits without ``+``, ``text``, ``type=unicode``
when the text is not GSM-7, ``client-ref`` = our client reference, ``status-report-req=1``
and the route's ``callback_url`` as ``callback``); ``concurrency`` requests in flight, and no
new one after a failure. The answer is HTTP 200 with one entry per part of the (possibly
concatenated) message, each with a ``status``:

- ``"0"`` for every part: accepted. ``provider_message_id`` is the FIRST part's
  ``message-id`` (the only one of a single-part message); a multi-part message also answers
  every part's id in order (``part_ids``), which the sender keeps to place each part's DLR.
- ``"1"`` (throttled) or ``"10"`` (too many binds): :class:`ProviderRateLimited`, waiting the
  ``please wait [ N ]`` milliseconds of its text (at least 1 s, as Vonage's PHP SDK does).
- ``"5"`` (internal error) or ``"9"`` (no credit left): :class:`ProviderUnavailable`, not
  processed, so the messages fail over to another route.
- the account's own errors (bad credentials or signature, barred account, sender id not
  allowed, bad callback URL): a non-retryable :class:`ProviderError`.
- any other status: that message is rejected, ``error="submit-<status>: <error-text>"``
  (``submit-3`` is an invalid number). Parts already accepted before a refused part went out:
  the message is rejected too (it cannot be sent again whole), naming its first part's id.

Receipts: one DLR per part, each naming its own part's ``messageId`` and our ``client-ref``.
The DLR does not say which part it is, nor how many parts there are (only inbound messages
carry ``concat-*``), so a receipt names its part by that id (``by_part_id``): the part ids kept
at acceptance place it, and a multi-part message is delivered once every part is. Vonage's API
has no lookup by our reference, so ``supports_lookup`` is False.

Signed DLRs (Vonage's "signed webhooks", opted in with support): every parameter but ``sig``,
sorted by name, joined as ``&name=value`` with ``&`` and ``=`` in values replaced by ``_``,
HMAC-SHA256 keyed with the account's signature secret (the route's ``webhook_key``), hex; the
signed ``timestamp`` must be within 5 minutes. Without a ``webhook_key`` every DLR is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx

from hexcast.core.errors import ConfigError, ProviderError, ProviderRateLimited, ProviderUnavailable
from sender.models import ProviderSpec
from sender.providers import Callbacks, Outgoing, Provider, ProviderResult, Receipt, SendReport
from sender.providers.base import UNREADABLE, HttpTransport, call_each, probe_get, provider_text
from sender.providers.senders import pick_sender
from sender.providers.status import DeliveryStatus, ErrorClass, StatusTable
from sender.providers.validity import ValidityRange, utcnow, validity_s
from sender.text import segment_info

__all__ = ["TABLE", "VALIDITY", "VonageCallbacks", "VonageProvider", "build", "callbacks", "probe",
           "signature"]

CLIENT_REF_MAX = 100  # the API's limit on client-ref
VALIDITY = ValidityRange(20, 604_800)
"""``ttl`` (sent in milliseconds): 20 s to 7 days (Vonage's SDK bounds; its default is 72 h)."""
MAX_AGE_S = 300.0  # a signed DLR older (or further ahead) than this is a replay
_THROTTLED = frozenset({"1", "10"})
_UNAVAILABLE = frozenset({"5", "9"})
_ACCOUNT = frozenset({"4", "8", "11", "14", "15", "23", "32"})
_WAIT = re.compile(r"wait \[\s*(\d+)\s*\]")

TABLE = StatusTable(
    kind="vonage",
    statuses={"accepted": DeliveryStatus.ACCEPTED, "buffered": DeliveryStatus.SENT,
              "delivered": DeliveryStatus.DELIVERED, "expired": DeliveryStatus.EXPIRED,
              "failed": DeliveryStatus.FAILED, "rejected": DeliveryStatus.FAILED,
              "unknown": DeliveryStatus.UNKNOWN},
    errors={
        # DLR err-code (the receipt's code)
        "1": ErrorClass.UNDELIVERED, "2": ErrorClass.UNDELIVERED, "3": ErrorClass.PERMANENT,
        "4": ErrorClass.PERMANENT, "5": ErrorClass.UNDELIVERED, "6": ErrorClass.FILTERED,
        "7": ErrorClass.UNDELIVERED, "8": ErrorClass.UNDELIVERED, "9": ErrorClass.OPTED_OUT,
        "10": ErrorClass.PERMANENT, "11": ErrorClass.UNDELIVERED, "12": ErrorClass.PERMANENT,
        "13": ErrorClass.PERMANENT, "14": ErrorClass.PERMANENT,
        # the send answer's per-part status (a rejection's code)
        "submit-1": ErrorClass.RETRY_LATER, "submit-10": ErrorClass.RETRY_LATER,
        "submit-5": ErrorClass.RETRY_LATER, "submit-9": ErrorClass.RETRY_LATER,
        "submit-2": ErrorClass.PERMANENT, "submit-3": ErrorClass.PERMANENT,
        "submit-6": ErrorClass.PERMANENT, "submit-7": ErrorClass.PERMANENT,
        "submit-12": ErrorClass.PERMANENT, "submit-22": ErrorClass.PERMANENT,
        "submit-29": ErrorClass.PERMANENT, "submit-33": ErrorClass.PERMANENT,
    },
)
"""Vonage's DLR statuses and ``err-code`` values (plain numbers), and the send answer's
statuses as ``submit-<status>`` (the two number spaces overlap: DLR ``1`` is "unknown",
status ``1`` is "throttled")."""


@dataclass(frozen=True, slots=True)
class _Part:
    status: str
    message_id: str | None
    text: str


def _refused(message: str) -> ProviderError:
    error = ProviderError(message)
    error.retryable = False
    return error


def _parts(answer: Any) -> list[_Part]:
    """The answer's entries, one per part; ValueError when it has none."""
    items = answer["messages"]
    if not isinstance(items, list) or not items:
        raise ValueError("no messages in the answer")
    return [_Part(status=str(item["status"]), message_id=provider_text(item.get("message-id")),
                  text=provider_text(item.get("error-text")) or "") for item in items]


def _wait_s(text: str) -> float:
    found = _WAIT.search(text)
    return max(1.0, int(found.group(1)) / 1000) if found else 1.0


def _result(name: str, client_ref: str, parts: list[_Part]) -> ProviderResult:
    """What the answer means for the message; raises for an answer that stops the call."""
    sent = [p for p in parts if p.status == "0"]
    if len(sent) == len(parts):
        ids = tuple(p.message_id for p in parts if p.message_id)
        return ProviderResult(client_ref, True, sent[0].message_id,
                              part_ids=ids if len(parts) > 1 and len(ids) == len(parts) else ())
    n, bad = next((n, p) for n, p in enumerate(parts, 1) if p.status != "0")
    error = f"submit-{bad.status}: {bad.text}"
    if sent:
        return ProviderResult(client_ref, False, sent[0].message_id,
                              f"{error} (part {n} of {len(parts)}; {len(sent)} parts sent)")
    if bad.status in _THROTTLED:
        raise ProviderRateLimited(f"{name}: {error}", retry_after=_wait_s(bad.text))
    if bad.status in _UNAVAILABLE:
        raise ProviderUnavailable(f"{name}: {error}")
    if bad.status in _ACCOUNT:
        raise _refused(f"{name}: {error}")
    return ProviderResult(client_ref, False, None, error)


class VonageProvider:
    """One Vonage account (API key and secret) sending from one sender id."""

    max_batch = 1000
    supports_lookup = False

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, concurrency: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if not spec.account or not (spec.sender_id or spec.sender_pool):
            raise ConfigError(f"provider {spec.name}: vonage needs account (API key) and sender_id")
        self.name = spec.name
        self._spec = spec
        self._clock = clock
        self._concurrency = max(1, concurrency)
        self._auth = {"api_key": spec.account, "api_secret": spec.token.get_secret_value()}
        self._callback = spec.callback_url
        self._http = HttpTransport(spec.name, spec.url, timeout_s=timeout_s,
                                   connections=self._concurrency)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        """Never called (``supports_lookup`` is False): Vonage finds no message by our ref."""
        raise ProviderError(f"{self.name}: Vonage has no lookup by client reference")

    async def send(self, messages: list[Outgoing]) -> SendReport:
        """One request per message, ``concurrency`` in flight; after the first failure no new
        request starts and the messages not answered share the gravest
        (:func:`~sender.providers.base.call_each`)."""
        return await call_each(messages, self._one, concurrency=self._concurrency)

    def _form(self, msg: Outgoing) -> dict[str, str]:
        form = {**self._auth, "from": (pick_sender(self._spec, msg) or "").removeprefix("+"),
                "to": msg.to.removeprefix("+"), "text": msg.body,
                "client-ref": msg.client_ref, "status-report-req": "1"}
        seconds = validity_s(self._spec.validity_s, msg.expires_at, self._clock(), VALIDITY)
        if seconds is not None:
            form["ttl"] = str(seconds * 1000)
        if segment_info(msg.body).encoding == "UCS-2":
            form["type"] = "unicode"
        if self._callback:
            form["callback"] = self._callback
        return form

    async def _one(self, msg: Outgoing) -> ProviderResult:
        if len(msg.client_ref) > CLIENT_REF_MAX:
            return ProviderResult(msg.client_ref, False, None,
                                  f"client-ref: longer than Vonage's {CLIENT_REF_MAX} characters")
        response = await self._http.request("POST", "/sms/json", data=self._form(msg))
        if response.status_code != 200:
            raise _refused(f"{self.name}: HTTP {response.status_code}: {provider_text(response.text)}")
        try:
            parts = _parts(response.json())
        except UNREADABLE as exc:
            raise self._http.unreadable(exc) from exc
        return _result(self.name, msg.client_ref, parts)


def signature(params: Mapping[str, str], secret: str) -> str:
    """Vonage's HMAC-SHA256 request signature of ``params`` (``sig`` left out), lower-case hex."""
    signed = "".join(f"&{k}={v.replace('&', '_').replace('=', '_')}"
                     for k, v in sorted(params.items()) if k != "sig")
    return hmac.new(secret.encode(), signed.encode(), hashlib.sha256).hexdigest()


def _params(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """A DLR's parameters: a JSON object (Vonage's POST-JSON) or a form (its POST)."""
    if headers.get("content-type", "").startswith("application/json"):
        found = json.loads(body)
        if not isinstance(found, dict):
            raise ValueError("a DLR is a JSON object")
        return {str(k): str(v) for k, v in found.items()}
    pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    params = dict(pairs)
    if len(params) != len(pairs):
        raise ValueError("a DLR names a parameter twice")
    return params


class VonageCallbacks:
    """Vonage's signed DLRs (see the module's docstring). The signature covers the parameters
    only, not the URL they were posted to."""

    def __init__(self, spec: ProviderSpec, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = spec.webhook_key.get_secret_value() if spec.webhook_key else None
        self._clock = clock

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        if not self._secret:
            return False
        try:
            params = _params(headers, body)
            age = abs(self._clock() - int(params["timestamp"]))
        except (ValueError, KeyError, UnicodeDecodeError):
            return False
        given = params.get("sig", "").lower().encode()
        expected = signature(params, self._secret).encode()
        return age <= MAX_AGE_S and hmac.compare_digest(given, expected)

    def receipts(self, *, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        params = _params(headers, body)
        message_id, word = provider_text(params.get("messageId")), params.get("status")
        if not message_id or not word:
            raise ValueError("a DLR names its messageId and status")
        return [Receipt(provider_message_id=message_id, status=TABLE.status(word),
                        code=provider_text(params.get("err-code")),
                        client_ref=provider_text(params.get("client-ref") or None),
                        by_part_id=True)]


def build(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    return VonageProvider(spec, timeout_s=timeout_s, concurrency=concurrency)


def callbacks(spec: ProviderSpec) -> Callbacks:
    return VonageCallbacks(spec)


async def probe(spec: ProviderSpec, *, timeout_s: float) -> str:
    """The account's balance (``GET /account/get-balance`` on the REST host, rest.nexmo.com,
    where the SMS API lives too), with the API key and secret as Basic auth as Vonage's
    curl example and v4 SDK send them (not as query parameters: the secret stays out of
    URLs and logs). Vonage keeps balances in EUR."""
    return await probe_get(spec.name, spec.url, "/account/get-balance", _balance, timeout_s=timeout_s,
                           auth=(spec.account or "", spec.token.get_secret_value()))


def _balance(response: httpx.Response) -> str:
    """``{"value": <balance in EUR>, "autoReload": <bool>}``."""
    body = response.json()
    reload = ", auto-reload on" if body.get("autoReload") else ""
    return f"balance {float(body['value']):.2f} EUR{reload}"
