"""The Telnyx adapter without a network: its status table row by row, its Ed25519 webhook
check, receipt parsing, the request it builds, and how it reads Telnyx's answers (served by an
in-memory httpx transport)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from hexcast.core.errors import ConfigError, ProviderError, ProviderRateLimited, ProviderUnavailable
from providersim.config import SimConfig
from providersim.dialects import telnyx as dialect
from providersim.ledger import Sim
from sender.models import ProviderSpec
from sender.providers import DeliveryStatus, ErrorClass, Outgoing, Receipt
from sender.providers.telnyx import (
    TABLE,
    TelnyxCallbacks,
    TelnyxProvider,
    callbacks,
    idempotency_key,
)

STATUS_ROWS = [
    ("queued", DeliveryStatus.ACCEPTED),
    ("sending", DeliveryStatus.ACCEPTED),
    ("sent", DeliveryStatus.SENT),
    ("delivered", DeliveryStatus.DELIVERED),
    ("read", DeliveryStatus.DELIVERED),
    ("delivery_failed", DeliveryStatus.FAILED),
    ("sending_failed", DeliveryStatus.FAILED),
    ("expired", DeliveryStatus.EXPIRED),
    ("delivery_unconfirmed", DeliveryStatus.UNKNOWN),
]
ERROR_ROWS = [
    ("10011", ErrorClass.RETRY_LATER),
    ("40011", ErrorClass.RETRY_LATER),
    ("10002", ErrorClass.PERMANENT),
    ("10016", ErrorClass.PERMANENT),
    ("40310", ErrorClass.PERMANENT),
    ("40001", ErrorClass.PERMANENT),
    ("40012", ErrorClass.PERMANENT),
    ("40009", ErrorClass.PERMANENT),
    ("40013", ErrorClass.PERMANENT),
    ("40300", ErrorClass.OPTED_OUT),
    ("40002", ErrorClass.FILTERED),
    ("40003", ErrorClass.FILTERED),
    ("40015", ErrorClass.FILTERED),
    ("40004", ErrorClass.UNDELIVERED),
    ("40005", ErrorClass.UNDELIVERED),
    ("40006", ErrorClass.UNDELIVERED),
    ("40008", ErrorClass.UNDELIVERED),
    ("40014", ErrorClass.UNDELIVERED),
]

KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
URL = "https://hooks.example.com/v1/webhooks/providers/tx?ref=r-1"


def spec(**overrides: Any) -> ProviderSpec:
    fields: dict[str, Any] = {"name": "tx", "kind": "telnyx", "token": "KEY123",
                              "sender_id": "+15550001111", "webhook_key": PUBLIC}
    return ProviderSpec(**{**fields, **overrides})


def signed(body: bytes, *, key: Ed25519PrivateKey = KEY, stamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if stamp is None else stamp)
    signature = key.sign(ts.encode() + b"|" + body)
    return {"telnyx-timestamp": ts, "telnyx-signature-ed25519": base64.b64encode(signature).decode()}


def event(kind: str = "message.finalized", status: str = "delivered",
          errors: list[dict[str, Any]] | None = None, pmid: str = "40385f64-5717") -> bytes:
    payload = {"id": pmid, "record_type": "message", "to": [{"phone_number": "+15550002222",
                                                               "status": status}],
               "errors": errors or [], "parts": 1}
    return json.dumps({"data": {"event_type": kind, "id": "ev-1", "payload": payload},
                       "meta": {"attempt": 1}}).encode()


@pytest.mark.parametrize(("word", "status"), STATUS_ROWS)
def test_status_row(word: str, status: DeliveryStatus) -> None:
    assert TABLE.status(word) is status


@pytest.mark.parametrize(("code", "kind"), ERROR_ROWS)
def test_error_row(code: str, kind: ErrorClass) -> None:
    assert TABLE.error(code) is kind


def test_every_row_is_tested_and_unlisted_values_fall_back() -> None:
    assert dict(TABLE.statuses) == dict(STATUS_ROWS)
    assert dict(TABLE.errors) == dict(ERROR_ROWS)
    assert TABLE.status("gw_timeout") is DeliveryStatus.UNKNOWN
    assert TABLE.error("49999") is ErrorClass.UNDELIVERED


def test_a_signed_webhook_verifies() -> None:
    body = event()
    assert TelnyxCallbacks(spec()).verify(url=URL, headers=signed(body), body=body)


@pytest.mark.parametrize("forgery", ["other_key", "tampered_body", "other_timestamp",
                                     "no_signature", "not_base64", "bad_timestamp"])
def test_a_forged_webhook_is_refused(forgery: str) -> None:
    body = event()
    headers = signed(body, key=Ed25519PrivateKey.generate()) if forgery == "other_key" else signed(body)
    if forgery == "tampered_body":
        body = event(status="delivery_failed")
    elif forgery == "other_timestamp":
        headers["telnyx-timestamp"] = str(int(headers["telnyx-timestamp"]) - 1)
    elif forgery == "no_signature":
        del headers["telnyx-signature-ed25519"]
    elif forgery == "not_base64":
        headers["telnyx-signature-ed25519"] = "%%%"
    elif forgery == "bad_timestamp":
        headers["telnyx-timestamp"] = "soon"
    assert not TelnyxCallbacks(spec()).verify(url=URL, headers=headers, body=body)


@pytest.mark.parametrize("age_s", [301, 3600, -301])
def test_a_replayed_or_future_webhook_is_refused(age_s: int) -> None:
    body = event()
    headers = signed(body, stamp=int(time.time()) - age_s)
    assert not TelnyxCallbacks(spec()).verify(url=URL, headers=headers, body=body)


def test_a_webhook_within_five_minutes_verifies() -> None:
    body = event()
    headers = signed(body, stamp=int(time.time()) - 290)
    assert TelnyxCallbacks(spec()).verify(url=URL, headers=headers, body=body)


def test_the_url_is_not_part_of_the_signature() -> None:
    """Telnyx signs timestamp and body only: the same webhook verifies at any URL (a wrong
    route is caught by the route's own key, not by the URL)."""
    body = event()
    checker = TelnyxCallbacks(spec())
    assert checker.verify(url="https://elsewhere.example/x", headers=signed(body), body=body)
    other = TelnyxCallbacks(spec(webhook_key=dialect.public_key("another account")))
    assert not other.verify(url=URL, headers=signed(body), body=body)


def test_the_simulators_webhooks_verify_with_its_public_key() -> None:
    sim = Sim(SimConfig(dialect="telnyx", signing_key="k-1"))
    receipt = {"provider_message_id": "m-1", "client_ref": "r-1", "status": "failed",
               "error": "undeliverable", "at": "2026-12-01T00:00:00+00:00", "to": "+15550002222",
               "extra": {"parts": 2, "webhook_url": URL}}
    requests = dialect.callbacks(sim, [receipt])
    checker = TelnyxCallbacks(spec(webhook_key=dialect.public_key("k-1")))
    lowered = [{k.lower(): v for k, v in r["headers"].items()} for r in requests]
    assert [r["url"] for r in requests] == [URL, URL]
    assert all(checker.verify(url=URL, headers=h, body=r["content"])
               for h, r in zip(lowered, requests, strict=True))
    got = [checker.receipts(headers=h, body=r["content"])[0] for h, r in zip(lowered, requests,
                                                                               strict=True)]
    assert got == [Receipt("m-1", DeliveryStatus.SENT),
                   Receipt("m-1", DeliveryStatus.FAILED, code="40008")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (event(), [Receipt("40385f64-5717", DeliveryStatus.DELIVERED)]),
        (event("message.sent", "sent"), [Receipt("40385f64-5717", DeliveryStatus.SENT)]),
        (event(status="delivery_failed", errors=[{"code": 40300, "title": "Blocked due to STOP"}]),
         [Receipt("40385f64-5717", DeliveryStatus.FAILED, code="40300")]),
        (event(status="expired", errors=[{"code": "40005"}]),
         [Receipt("40385f64-5717", DeliveryStatus.EXPIRED, code="40005")]),
        (event("message.received", "webhook_delivered"), []),
    ],
)
def test_receipts(body: bytes, expected: list[Receipt]) -> None:
    assert TelnyxCallbacks(spec()).receipts(headers={}, body=body) == expected


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"data": {}}', b'{"data": {"event_type": "message.sent"}}',
     json.dumps({"data": {"event_type": "message.finalized", "payload": {"id": "m", "to": []}}}).encode(),
     json.dumps({"data": {"event_type": "message.sent", "payload": {"to": [{"status": "sent"}]}}}).encode()],
)
def test_a_malformed_webhook_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="Telnyx"):
        TelnyxCallbacks(spec()).receipts(headers={}, body=body)


@pytest.mark.parametrize("key", [None, "not base64!", base64.b64encode(b"short").decode()])
def test_callbacks_need_the_accounts_public_key(key: str | None) -> None:
    with pytest.raises(ConfigError, match="webhook_key"):
        callbacks(spec(webhook_key=key))


def test_a_route_without_sender_or_profile_is_refused_where_it_is_read() -> None:
    with pytest.raises(ValidationError, match="sender_id or messaging_service"):
        spec(sender_id=None)


async def test_the_request_body() -> None:
    provider = TelnyxProvider(
        spec(messaging_service="prof-1", callback_url="https://h.example/cb?route=tx"),
        timeout_s=1.0, concurrency=1)
    try:
        body = provider.payload(Outgoing("r/1", "+15550002222", "hi"))
    finally:
        await provider.aclose()
    assert body == {"to": "+15550002222", "text": "hi", "from": "+15550001111",
                    "messaging_profile_id": "prof-1", "use_profile_webhooks": False,
                    "webhook_url": "https://h.example/cb?route=tx&ref=r%2F1"}


def test_idempotency_keys_fit_telnyxs_pattern() -> None:
    assert idempotency_key("otp:4711-a_b") == "otp:4711-a_b"
    hashed = idempotency_key("tenant 7/visit.1")
    assert hashed.startswith("sha256:")
    assert len(hashed) == 71
    assert hashed == idempotency_key("tenant 7/visit.1")


Handler = Callable[[httpx.Request], httpx.Response]


def answer(status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        content = body if isinstance(body, str) else json.dumps(body)
        return httpx.Response(status, content=content, headers=headers)
    return handle


def error(code: str, detail: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "title": "t", "detail": detail}]}


async def send_with(handler: Handler, n: int = 1) -> Any:
    provider = TelnyxProvider(spec(), timeout_s=1.0, concurrency=4)
    provider._http.client._transport = httpx.MockTransport(handler)
    try:
        return await provider.send([Outgoing(f"r-{i}", "+15550002222", "hi") for i in range(n)])
    finally:
        await provider.aclose()


async def test_an_accepted_message_carries_telnyxs_id_and_our_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": {"id": "uuid-1", "to": [{"status": "queued"}]}})

    report = await send_with(handle)
    assert report.failure is None
    assert [(r.client_ref, r.accepted, r.provider_message_id) for r in report.results] == [
        ("r-0", True, "uuid-1")]
    assert seen[0].url.path == "/v2/messages"
    assert seen[0].headers["authorization"] == "Bearer KEY123"
    assert seen[0].headers["idempotency-key"] == "r-0"


@pytest.mark.parametrize(
    ("status", "code"), [(400, "40310"), (409, "40300"), (400, "10016"), (422, "10002")])
async def test_a_refused_number_is_that_messages_result(status: int, code: str) -> None:
    report = await send_with(answer(status, error(code, "no")), n=2)
    assert report.failure is None
    assert {(r.accepted, r.error) for r in report.results} == {(False, f"{code}: no")}


async def test_throttling_waits_x_ratelimit_reset() -> None:
    report = await send_with(answer(429, error("10011", "slow"), {"x-ratelimit-reset": "7"}), n=3)
    assert isinstance(report.failure, ProviderRateLimited)
    assert report.failure.retry_after == 7.0
    assert report.results == []


async def test_an_upstream_throttle_code_is_a_rate_limit() -> None:
    report = await send_with(answer(400, error("40011", "carrier"), {"x-ratelimit-reset": "3"}))
    assert isinstance(report.failure, ProviderRateLimited)
    assert report.failure.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "body"),
    [(401, error("10009", "Authentication failed")), (403, error("10010", "no permission")),
     (400, error("10004", "'from' is required")), (404, "<html>not found</html>")])
async def test_credentials_and_configuration_refuse_the_call_for_good(
    status: int, body: dict[str, Any] | str
) -> None:
    report = await send_with(answer(status, body), n=2)
    assert report.results == []
    assert report.failure is not None
    assert report.failure.retryable is False
    assert not isinstance(report.failure, ProviderRateLimited | ProviderUnavailable)


async def test_an_unreadable_success_is_ambiguous() -> None:
    report = await send_with(answer(200, '{"data": {"id'))
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous


async def test_lookup_is_not_offered() -> None:
    provider = TelnyxProvider(spec(), timeout_s=1.0, concurrency=1)
    try:
        assert provider.supports_lookup is False
        with pytest.raises(ProviderError, match="cannot find") as caught:
            await provider.lookup("r-1")
        assert caught.value.retryable is False
    finally:
        await provider.aclose()
