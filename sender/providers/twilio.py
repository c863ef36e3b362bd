"""Twilio Programmable Messaging over httpx: one form POST per recipient to
``/2010-04-01/Accounts/{AccountSid}/Messages.json`` with Basic auth (Account SID, auth token),
``concurrency`` requests in flight, and its signed status callbacks.

Why the shapes below:

- Twilio has no client reference and no idempotency key, so a message is known by its SID
  (``SM…``) and there is no lookup by our reference (``supports_lookup`` is False: an
  ambiguous request leaves its rows ``unknown``, never resent blindly). Our reference travels
  in the StatusCallback URL instead (``?ref=<client ref>``), so a receipt names our message
  even before its SID is stored, and the URL is signed with the rest of the callback.
- Errors are JSON ``{"code", "message", "more_info", "status"}``. A 400 is about this one
  message (an invalid or opted-out number) unless its code is about the sender or the account
  (:data:`SENDER_CODES`, refused for good) or a throttle (:data:`THROTTLE_CODES`, retry later);
  401/403/404 are the account's (wrong SID or token).
- Callbacks are signed ``X-Twilio-Signature = base64(HMAC-SHA1(auth token, URL + sorted form
  key/values))``; when a Webhooks Rule signs with a SharedKey Twilio adds
  ``X-Twilio-Webhooks-Signature-Settings: key=…,algorithm=HMAC_SHA256`` and the key is
  ``spec.webhook_key``. The URL is the public one Twilio called (behind a TLS-terminating
  proxy, the configured ``callback_url``, not what the proxy forwards).
- ``From`` is the route's number for the recipient (its ``sender_pool``'s sticky pick, else
  ``sender_id``); ``ValidityPeriod`` the seconds left of the message's life, at most the route's
  ``validity_s`` (:data:`VALIDITY`: 1-36,000 s, Twilio's error 21624 otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

import httpx

from hexcast.core.errors import ProviderError, ProviderRateLimited
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
    "SENDER_CODES",
    "TABLE",
    "THROTTLE_CODES",
    "VALIDITY",
    "TwilioCallbacks",
    "TwilioProvider",
    "build",
    "callbacks",
    "probe",
    "sign",
    "status_callback_url",
]

THROTTLE_CODES = frozenset({"20429", "21611"})
"""Answers that mean "not processed, later": too many requests; the sender's queue is full."""

SENDER_CODES = frozenset({"20003", "20404", "21212", "21601", "21603", "21606", "21661"})
"""Answers about the account or the sender id, not the message: every message would get them."""

QUEUE_FULL_RETRY_S = 60.0
"""21611 means the sender already holds 10 hours of queued messages: no point coming back soon."""

API_VERSION = "2010-04-01"

VALIDITY = ValidityRange(1, 36_000)
"""``ValidityPeriod``: whole seconds, 1 to 10 hours (Twilio's default is the maximum)."""

TABLE = StatusTable(
    kind="twilio",
    statuses={
        "accepted": DeliveryStatus.ACCEPTED, "scheduled": DeliveryStatus.ACCEPTED,
        "queued": DeliveryStatus.ACCEPTED, "sending": DeliveryStatus.SENT,
        "sent": DeliveryStatus.SENT, "delivered": DeliveryStatus.DELIVERED,
        "read": DeliveryStatus.DELIVERED,  # read implies delivered (channels with read receipts)
        "undelivered": DeliveryStatus.FAILED, "failed": DeliveryStatus.FAILED,
        "partially_delivered": DeliveryStatus.FAILED,  # delivered only when every part is
        "canceled": DeliveryStatus.FAILED,  # a scheduled message canceled: never sent
    },
    errors={
        "20429": ErrorClass.RETRY_LATER,  # too many requests, never processed
        "21611": ErrorClass.RETRY_LATER,  # the From number's queue is full
        "30001": ErrorClass.RETRY_LATER,  # queue overflow (or validity period passed in queue)
        "21211": ErrorClass.PERMANENT,  # invalid 'To' phone number
        "21408": ErrorClass.PERMANENT,  # no permission to send to that region
        "21612": ErrorClass.PERMANENT,  # 'To' cannot be reached (routing)
        "21614": ErrorClass.PERMANENT,  # 'To' is not a mobile number
        "21610": ErrorClass.OPTED_OUT,  # the recipient replied STOP: blocked until START
        "30003": ErrorClass.UNDELIVERED,  # unreachable destination handset
        "30005": ErrorClass.UNDELIVERED,  # unknown destination handset
        "30006": ErrorClass.UNDELIVERED,  # landline or unreachable carrier
        "30007": ErrorClass.FILTERED,  # filtered by the carrier (spam)
        "30008": ErrorClass.UNDELIVERED,  # unknown error
    },
)


def status_callback_url(base: str, client_ref: str) -> str:
    """``base`` with ``ref=<client_ref>`` added to its query."""
    joiner = "&" if urlsplit(base).query else "?"
    return f"{base}{joiner}{urlencode({'ref': client_ref})}"


class TwilioProvider:
    """One Twilio account: one request per message, ``concurrency`` at once.

    After the first failure no new request starts and the messages not yet requested share
    it, so a 429 or an outage stops the traffic at once (the gravest failure speaks for them:
    :func:`~sender.providers.base.call_each`)."""

    max_batch = 1000  # messages per send call; each is its own request
    supports_lookup = False

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, concurrency: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if not spec.account:
            raise ValueError(f"{spec.name}: a twilio route needs its Account SID (account)")
        if not (spec.sender_id or spec.sender_pool or spec.messaging_service):
            raise ValueError(f"{spec.name}: a twilio route needs sender_id or messaging_service")
        self.name = spec.name
        self._spec = spec
        self._clock = clock
        self._concurrency = max(1, concurrency)
        self._path = f"/{API_VERSION}/Accounts/{quote(spec.account, safe='')}/Messages.json"
        self._http = HttpTransport(spec.name, spec.url, timeout_s=timeout_s,
                                   connections=self._concurrency,
                                   auth=(spec.account, spec.token.get_secret_value()))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        """Twilio cannot find a message by our reference (see ``supports_lookup``)."""
        raise ProviderError(f"{self.name}: twilio has no lookup by client reference")

    async def send(self, messages: list[Outgoing]) -> SendReport:
        now = self._clock()
        return await call_each(messages, lambda msg: self._one(msg, now),
                               concurrency=self._concurrency)

    def form(self, msg: Outgoing, now: datetime) -> dict[str, str]:
        """The request's form fields for ``msg``, sent at ``now``."""
        form = {"To": msg.to, "Body": msg.body}
        sender = pick_sender(self._spec, msg)
        if sender:
            form["From"] = sender
        if self._spec.messaging_service:
            form["MessagingServiceSid"] = self._spec.messaging_service
        if self._spec.callback_url:
            form["StatusCallback"] = status_callback_url(self._spec.callback_url, msg.client_ref)
        seconds = validity_s(self._spec.validity_s, msg.expires_at, now, VALIDITY)
        if seconds is not None:
            form["ValidityPeriod"] = str(seconds)
        return form

    async def _one(self, msg: Outgoing, now: datetime) -> ProviderResult:
        """One message: its result, or the ProviderError that stops the call."""
        response = await self._http.request("POST", self._path, data=self.form(msg, now))
        if response.status_code in (200, 201):
            try:
                sid = response.json()["sid"]
                if not isinstance(sid, str) or not sid:
                    raise ValueError(f"no message sid in {response.text[:200]!r}")
            except UNREADABLE as exc:  # it answered success: the message may be on its way
                raise self._http.unreadable(exc) from exc
            return ProviderResult(msg.client_ref, True, provider_text(sid))
        code, text = _error(response)
        if code in THROTTLE_CODES:
            wait = QUEUE_FULL_RETRY_S if code == "21611" else 1.0
            raise ProviderRateLimited(f"{self.name}: {code}: {text}", retry_after=wait)
        if response.status_code == 400 and code not in SENDER_CODES:
            return ProviderResult(msg.client_ref, False, None, f"{code or 'HTTP 400'}: {text}")
        refused = ProviderError(f"{self.name}: HTTP {response.status_code}: {code}: {text}")
        refused.retryable = False
        raise refused


def _error(response: httpx.Response) -> tuple[str | None, str]:
    """A Twilio error answer's ``(code, message)``; the raw text when it is not Twilio's JSON."""
    try:
        body = response.json()
        code, message = body.get("code"), body.get("message")
    except UNREADABLE:
        return None, provider_text(response.text) or ""
    return provider_text(code), provider_text(message) or ""


# ---- status callbacks ----------------------------------------------------------------------

_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
_CODE = re.compile(r"^\d{1,10}$")


def _params(body: bytes) -> dict[str, list[str]]:
    """A form body's values by name (repeats kept); ValueError when it is not a form."""
    found: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                 strict_parsing=bool(body), errors="strict"):
        found.setdefault(name, []).append(value)
    return found


def sign(key: bytes, url: str, params: Mapping[str, list[str]], algorithm: str = "HMAC_SHA1") -> str:
    """Twilio's signature: the URL, then each name and value sorted by name (repeated values
    sorted, duplicates once, as its helper libraries do), HMAC'd with ``key``, base64."""
    data = url + "".join(name + value for name in sorted(params)
                         for value in sorted(set(params[name])))
    mac = hmac.new(key, data.encode("utf-8"), _HASHES[algorithm])
    return base64.b64encode(mac.digest()).decode("ascii")


def _url_variants(url: str) -> set[str]:
    """The URL as given, without its port and with it (the default one added): Twilio signs
    one or the other depending on the product, so its own validators accept both."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host = hostport[: hostport.index("]") + 1] if hostport.startswith("[") else hostport.split(":")[0]
    port = parts.port or (443 if parts.scheme == "https" else 80)  # ValueError: a bad port
    return {url, parts._replace(netloc=f"{userinfo}{at}{host}").geturl(),
            parts._replace(netloc=f"{userinfo}{at}{host}:{port}").geturl()}


def _settings_algorithm(header: str | None) -> str | None:
    """The algorithm a ``X-Twilio-Webhooks-Signature-Settings`` header names (None: absent)."""
    if header is None:
        return None
    for part in header.split(","):
        name, _, value = part.partition("=")
        if name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


class TwilioCallbacks:
    """Twilio's status callbacks: a form per message (``MessageSid``, ``MessageStatus``,
    ``ErrorCode`` when it failed), signed with the auth token, or with ``spec.webhook_key``
    when a Webhooks Rule's SharedKey signs it."""

    def __init__(self, spec: ProviderSpec) -> None:
        self._token = spec.token.get_secret_value().encode("utf-8")
        self._shared_key = (spec.webhook_key.get_secret_value().encode("utf-8")
                            if spec.webhook_key else None)

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        signature = headers.get("x-twilio-signature")
        if not signature:
            return False
        algorithm = _settings_algorithm(headers.get("x-twilio-webhooks-signature-settings"))
        key = self._token if algorithm is None else self._shared_key
        algorithm = algorithm or "HMAC_SHA1"
        if key is None or algorithm not in _HASHES:
            return False
        try:
            params, candidates = _params(body), _url_variants(url)
        except ValueError:  # not a form, or not a URL
            return False
        expected = signature.encode("utf-8")
        return any(hmac.compare_digest(sign(key, candidate, params, algorithm).encode(), expected)
                   for candidate in sorted(candidates))

    def receipts(self, *, headers: Mapping[str, str], body: bytes,
                 url: str | None = None) -> list[Receipt]:
        """The callback's one receipt; with ``url`` (the signed URL it was posted to) it also
        names our client reference from its ``ref`` parameter."""
        form = {name: values[0] for name, values in _params(body).items()}
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        word = form.get("MessageStatus") or form.get("SmsStatus") or ""
        code = form.get("ErrorCode") or None
        if not _SID.match(sid) or not word:
            raise ValueError("not a Twilio status callback (MessageSid and MessageStatus)")
        if code is not None and not _CODE.match(code):
            raise ValueError(f"not a Twilio error code: {code[:20]!r}")
        refs = parse_qs(urlsplit(url).query).get("ref") if url else None
        return [Receipt(provider_message_id=sid, status=TABLE.status(word), code=code,
                        client_ref=refs[0] if refs else None)]


def build(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    return TwilioProvider(spec, timeout_s=timeout_s, concurrency=concurrency)


def callbacks(spec: ProviderSpec) -> Callbacks:
    return TwilioCallbacks(spec)


async def probe(spec: ProviderSpec, *, timeout_s: float) -> str:
    """Fetch the Account resource (``GET /2010-04-01/Accounts/{AccountSid}.json``, Basic auth
    as for sending): the account and its status, which must be ``active`` (a suspended or
    closed account sends nothing)."""
    account = spec.account or ""

    def read(response: httpx.Response) -> str:
        body = response.json()
        sid, status = provider_text(body["sid"]), provider_text(body["status"])
        if status != "active":
            raise ProviderError(f"{spec.name}: account {sid} is {status}")
        return f"account {sid} {status} ({provider_text(body.get('type')) or 'unknown type'})"

    return await probe_get(spec.name, spec.url, f"/{API_VERSION}/Accounts/{quote(account, safe='')}.json",
                           read, timeout_s=timeout_s, auth=(account, spec.token.get_secret_value()))
