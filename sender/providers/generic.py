"""The generic JSON API (the provider simulator's own dialect), over httpx; httpx errors are
translated into hexcast's provider errors here.

Two API shapes: :class:`BatchProvider` (Sinch/Plivo-like, up to 1,000 destinations per request)
and :class:`SingleProvider` (Twilio-like, one message per request, sent concurrently). Both
answer :meth:`send` with a :class:`SendReport`: the messages the provider answered for, and the
error that applies to every other message of the call (none of them was answered).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx

from hexcast.core.errors import ProviderError, ProviderUnavailable
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
from sender.providers.status import DeliveryStatus, ErrorClass, StatusTable

__all__ = [
    "TABLE", "BatchProvider", "GenericCallbacks", "SingleProvider", "build", "callbacks", "probe",
]


class _HttpProvider:
    """Shared plumbing: bearer auth, lookup by client reference."""

    max_batch = 1000

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, connections: int) -> None:
        self.name = spec.name
        self.supports_lookup = spec.lookup
        self._http = HttpTransport(spec.name, spec.url, timeout_s=timeout_s,
                                   connections=connections,
                                   headers={"Authorization": f"Bearer {spec.token.get_secret_value()}"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self._http.request(method, url, **kwargs)

    def _unreadable(self, exc: Exception) -> ProviderUnavailable:
        return self._http.unreadable(exc)

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        """What the provider knows of a reference; None when it never saw it."""
        response = await self._request("GET", f"/v1/messages/by-ref/{client_ref}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProviderUnavailable(f"{self.name}: lookup HTTP {response.status_code}")
        try:
            pmid = provider_text(response.json().get("provider_message_id"))
        except UNREADABLE as exc:
            raise self._unreadable(exc) from exc
        return ProviderResult(client_ref=client_ref, accepted=True, provider_message_id=pmid)


class BatchProvider(_HttpProvider):
    """A Sinch/Plivo-like batch API: up to 1,000 destinations per request."""

    async def send(self, messages: list[Outgoing]) -> SendReport:
        """One batch request; per-destination outcomes, or one failure for all."""
        payload = {
            "messages": [{"client_ref": m.client_ref, "to": m.to, "body": m.body} for m in messages]
        }
        try:
            response = await self._request("POST", "/v1/batches", json=payload)
        except ProviderError as exc:
            return SendReport(failure=exc)
        if response.status_code != 200:
            error = ProviderError(f"{self.name}: HTTP {response.status_code}: {provider_text(response.text)}")
            error.retryable = False
            return SendReport(failure=error)
        try:
            return SendReport(results=[
                ProviderResult(
                    client_ref=item["client_ref"],
                    accepted=item.get("status") == "accepted",
                    provider_message_id=provider_text(item.get("provider_message_id")),
                    error=provider_text(item.get("error")),
                )
                for item in response.json()["results"]
            ])
        except UNREADABLE as exc:  # it answered 200: it may have taken every message
            return SendReport(failure=self._unreadable(exc))


class SingleProvider(_HttpProvider):
    """A Twilio-like API: one message per request, ``concurrency`` requests in flight.

    After the first failure no new request starts; messages not yet requested share that
    failure (:func:`~sender.providers.base.call_each`), so a 429 or an outage stops the
    traffic at once.
    """

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> None:
        super().__init__(spec, timeout_s=timeout_s, connections=concurrency)
        self._concurrency = concurrency

    async def send(self, messages: list[Outgoing]) -> SendReport:
        return await call_each(messages, self._one, concurrency=self._concurrency)

    async def _one(self, msg: Outgoing) -> ProviderResult:
        body = {"client_ref": msg.client_ref, "to": msg.to, "body": msg.body}
        response = await self._request("POST", "/v1/messages", json=body)
        taken = response.status_code in (200, 201)
        try:
            item = response.json()
            pmid = provider_text(item.get("provider_message_id"))
            error = provider_text(item.get("error", "rejected"))
        except UNREADABLE as exc:
            if taken:
                raise self._unreadable(exc) from exc
            pmid, error = None, "rejected"
        if taken:
            return ProviderResult(msg.client_ref, True, pmid)
        if response.status_code in (400, 422):
            return ProviderResult(msg.client_ref, False, None, error)
        failure = ProviderError(f"{self.name}: HTTP {response.status_code}: {provider_text(response.text)}")
        failure.retryable = False
        raise failure



TABLE = StatusTable(
    kind="generic",
    statuses={"accepted": DeliveryStatus.ACCEPTED, "sent": DeliveryStatus.SENT,
              "delivered": DeliveryStatus.DELIVERED, "failed": DeliveryStatus.FAILED,
              "undelivered": DeliveryStatus.FAILED, "expired": DeliveryStatus.EXPIRED},
    errors={"invalid_destination": ErrorClass.PERMANENT, "undeliverable": ErrorClass.UNDELIVERED,
            "30003": ErrorClass.UNDELIVERED},
)


class GenericCallbacks:
    """The generic API's receipts: a JSON batch (``{"receipts": [...]}``, with our client
    reference) or a form-encoded status callback (``MessageSid``, ``MessageStatus``), posted
    with ``Authorization: Bearer <webhook_key>`` (the account's token when it has none)."""

    def __init__(self, spec: ProviderSpec) -> None:
        key = spec.webhook_key or spec.token
        self._expected = f"Bearer {key.get_secret_value()}"

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        return hmac.compare_digest(headers.get("authorization", ""), self._expected)

    def receipts(self, *, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            word, code = form["MessageStatus"], form.get("ErrorCode")
            return [Receipt(provider_message_id=form["MessageSid"], status=TABLE.status(word),
                            code=code)]
        items = json.loads(body)["receipts"]
        return [Receipt(provider_message_id=str(item["provider_message_id"]),
                        status=TABLE.status(str(item["status"])), code=item.get("error"),
                        client_ref=item.get("client_ref")) for item in items]


def build(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    """The adapter for ``spec.mode``."""
    if spec.mode == "single":
        return SingleProvider(spec, timeout_s=timeout_s, concurrency=concurrency)
    return BatchProvider(spec, timeout_s=timeout_s, connections=32)


def callbacks(spec: ProviderSpec) -> Callbacks:
    return GenericCallbacks(spec)


async def probe(spec: ProviderSpec, *, timeout_s: float) -> str:
    """Look up a reference nobody sent (``GET /v1/messages/by-ref/probe-<random>``, with the
    bearer token): the API has no account endpoint, and its lookup checks the token first,
    so a 404 means reachable and authenticated, and sends nothing."""
    path = f"/v1/messages/by-ref/probe-{secrets.token_hex(8)}"
    return await probe_get(spec.name, spec.url, path, lambda _: "reachable, token accepted",
                           timeout_s=timeout_s,
                           headers={"Authorization": f"Bearer {spec.token.get_secret_value()}"},
                           found=(200, 404))
