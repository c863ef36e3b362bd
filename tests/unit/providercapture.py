"""Test support: the HTTP adapters' requests as their APIs receive them, without a network
(httpx's MockTransport answers each request as the provider accepts it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx

from sender.models import ProviderSpec
from sender.providers import plivo, sinch, telnyx, twilio, vonage
from sender.providers.base import Outgoing, Provider

__all__ = ["KINDS", "SENDER_FIELD", "captured", "route"]

KINDS = ("twilio", "vonage", "plivo", "sinch", "telnyx")

SENDER_FIELD = {"twilio": "From", "vonage": "from", "plivo": "src", "sinch": "from", "telnyx": "from"}
"""Where each API takes the number a message comes from."""

_ACCOUNTS = {"twilio": "AC" + "1" * 32, "vonage": "api-key", "plivo": "MA0123456789ABCDEFGH",
             "sinch": "plan1", "telnyx": None}


def route(kind: str, **changes: Any) -> ProviderSpec:
    """A route of ``kind`` (a sender id unless ``changes`` says otherwise)."""
    fields = {"name": f"{kind}-1", "kind": kind, "url": f"https://{kind}.invalid", "token": "tok",
              "account": _ACCOUNTS[kind], "sender_id": "+15005550006"}
    return ProviderSpec.model_validate({**fields, **changes})


def _answer(kind: str, request: httpx.Request) -> httpx.Response:
    """The provider taking the request."""
    new_id = uuid.uuid4().hex
    if kind == "twilio":
        return httpx.Response(201, json={"sid": "SM" + new_id})
    if kind == "vonage":
        return httpx.Response(200, json={"messages": [{"status": "0", "message-id": new_id}]})
    if kind == "telnyx":
        return httpx.Response(200, json={"data": {"id": new_id}})
    if kind == "sinch":
        return httpx.Response(201, json={"id": "01" + new_id[:24].upper()})
    numbers = json.loads(request.content)["dst"].split("<")
    return httpx.Response(202, json={"message_uuid": [f"{new_id}-{n}" for n in range(len(numbers))]})


def _fields(request: httpx.Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        found: dict[str, Any] = json.loads(request.content)
        return found
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


def _adapter(spec: ProviderSpec, clock: Callable[[], datetime]) -> Provider:
    if spec.kind == "telnyx":  # its API takes no validity period: no clock to read
        return telnyx.TelnyxProvider(spec, timeout_s=1.0, concurrency=1)
    kinds: dict[str, Any] = {"twilio": twilio.TwilioProvider, "vonage": vonage.VonageProvider,
                             "plivo": plivo.PlivoProvider, "sinch": sinch.SinchProvider}
    found: Provider = kinds[spec.kind](spec, timeout_s=1.0, concurrency=1, clock=clock)
    return found


async def captured(spec: ProviderSpec, messages: list[Outgoing],
                   clock: Callable[[], datetime]) -> list[dict[str, Any]]:
    """The fields of each request ``spec``'s adapter makes to send ``messages`` at ``clock()``
    (form or JSON), in order; every message is taken."""
    seen: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(_fields(request))
        return _answer(spec.kind, request)

    adapter = _adapter(spec, clock)
    await adapter.aclose()
    adapter._http.client = httpx.AsyncClient(  # type: ignore[attr-defined]  # the transport under test
        base_url=spec.url, transport=httpx.MockTransport(record))
    try:
        report = await adapter.send(messages)
    finally:
        await adapter.aclose()
    if report.failure is not None or not all(r.accepted for r in report.results):
        raise AssertionError(f"not every message taken: {report}")
    return seen
