"""The Telnyx adapter and the official ``telnyx`` SDK against the simulator speaking Telnyx
(a real subprocess): ledgered once, per-message refusals, throttling, credentials, and the
Ed25519-signed webhooks checked by both the SDK's verifier and hexcast's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import telnyx

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.testing import WebhookRecorder, running_sim
from providersim import SimConfig
from providersim.dialects.telnyx import public_key
from sender.models import ProviderSpec
from sender.providers import DeliveryStatus, ErrorClass, Outgoing, build_provider
from sender.providers.telnyx import TABLE, TelnyxCallbacks

TOKEN = "KEYsim-telnyx"
SIGNING = "telnyx-test-signing-key"
RETRY_AFTER_S = 9
FROM = "+15550001111"


HOOKS = "/hooks/telnyx"


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def sim_url(hooks: WebhookRecorder) -> Iterator[str]:
    config = SimConfig(dialect="telnyx", token=TOKEN, signing_key=SIGNING, dlr_url=hooks.url + HOOKS,
                       dlr_delay_s=0.1, retry_after_s=RETRY_AFTER_S)
    with running_sim(config) as url:
        yield url


@pytest.fixture
def sim(sim_url: str, hooks: WebhookRecorder) -> Iterator[httpx.Client]:
    """The simulator's open endpoints, reset to defaults before each test."""
    with httpx.Client(base_url=sim_url, timeout=30.0) as client:
        defaults = {"rate_per_s": 1000.0, "deliver_fail_rate": 0.0, "dlr_url": hooks.url + HOOKS}
        client.post("/control", json=defaults).raise_for_status()
        client.post("/control/reset").raise_for_status()
        yield client


def spec(url: str, hooks: WebhookRecorder | None, **overrides: Any) -> ProviderSpec:
    fields: dict[str, Any] = {"name": "tx", "kind": "telnyx", "url": url, "token": TOKEN,
                              "sender_id": FROM, "webhook_key": public_key(SIGNING),
                              "callback_url": hooks.url + HOOKS if hooks else None}
    return ProviderSpec(**{**fields, **overrides})


def outgoing(n: int, to: str = "+15550002222") -> list[Outgoing]:
    prefix = uuid.uuid4().hex[:8]
    return [Outgoing(f"{prefix}-{i}", to, f"hello {i}") for i in range(n)]


async def control(sim_url: str, **changes: Any) -> None:
    async with httpx.AsyncClient(base_url=sim_url, timeout=30.0) as client:
        (await client.post("/control", json=changes)).raise_for_status()


def ledger(client: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/ledger", params={"limit": 10_000}).json()
    return body


async def test_each_message_is_ledgered_once_and_an_invalid_number_refused_alone(
    sim: httpx.Client, sim_url: str, hooks: WebhookRecorder
) -> None:
    messages = [*outgoing(6), Outgoing("bad-number", "+0123", "hello")]
    provider = build_provider(spec(sim_url, hooks), timeout_s=10.0, concurrency=4)
    try:
        first = await provider.send(messages)
        again = await provider.send(messages[:6])  # same idempotency keys: nothing new is sent
    finally:
        await provider.aclose()
    assert first.failure is None
    results = {r.client_ref: r for r in first.results}
    bad = results.pop("bad-number")
    assert (bad.accepted, bad.provider_message_id) == (False, None)
    assert bad.error == "40310: The 'to' address should be a single valid number."
    assert all(r.accepted for r in results.values())
    ids = {ref: str(uuid.UUID(r.provider_message_id or "")) for ref, r in results.items()}
    assert {r.client_ref: r.provider_message_id for r in again.results} == ids
    book = ledger(sim)
    assert book["total"] == 6
    assert book["duplicates_rejected"] == 6
    assert {i["client_ref"]: i["provider_message_id"] for i in book["items"]} == ids


async def test_webhooks_verify_with_hexcast_and_the_sdk_and_map_to_the_sent_ids(
    sim: httpx.Client, sim_url: str, hooks: WebhookRecorder
) -> None:
    await control(sim_url, deliver_fail_rate=1.0)
    messages = outgoing(3)
    provider = build_provider(spec(sim_url, hooks), timeout_s=10.0, concurrency=3)
    try:
        report = await provider.send(messages)
    finally:
        await provider.aclose()
    ids = {r.client_ref: r.provider_message_id for r in report.results}
    refs = set(ids)
    posts = [post for ref in sorted(refs) for post in hooks.wait(f"{HOOKS}?ref={ref}", 2)]
    checker = TelnyxCallbacks(spec(sim_url, hooks))
    sdk = telnyx.Telnyx(api_key=TOKEN, public_key=public_key(SIGNING), base_url=f"{sim_url}/v2")
    seen: dict[str, list[tuple[DeliveryStatus, str | None]]] = {}
    for _, path, headers, body in posts:
        url = hooks.url + path
        assert checker.verify(url=url, headers=headers, body=body)
        event: dict[str, Any] = sdk.webhooks.unwrap(body.decode(), headers=headers).to_dict()
        (receipt,) = checker.receipts(headers=headers, body=body)
        ref = parse_qs(urlsplit(path).query)["ref"][0]
        assert receipt.provider_message_id == ids[ref] == event["data"]["payload"]["id"]
        seen.setdefault(ref, []).append((receipt.status, receipt.code))
    expected = [(DeliveryStatus.SENT, None), (DeliveryStatus.FAILED, "40008")]
    assert seen == dict.fromkeys(refs, expected)
    assert TABLE.error("40008") is ErrorClass.UNDELIVERED
    _, _, headers, body = posts[0]
    tampered = body.replace(b"sent", b"sont", 1)
    assert not checker.verify(url=hooks.url + HOOKS, headers=headers, body=tampered)
    with pytest.raises(ValueError, match="Signature verification failed"):
        sdk.webhooks.unwrap(tampered.decode(), headers=headers)
    stranger = TelnyxCallbacks(spec(sim_url, hooks, webhook_key=public_key("another account")))
    assert not stranger.verify(url=hooks.url + HOOKS, headers=headers, body=body)


async def test_throttling_is_a_rate_limit_with_telnyxs_reset(sim: httpx.Client, sim_url: str) -> None:
    await control(sim_url, rate_per_s=1.0, dlr_url=None)
    provider = build_provider(spec(sim_url, None), timeout_s=10.0, concurrency=32)
    try:
        report = await provider.send(outgoing(1010))  # the bucket holds 1,000
    finally:
        await provider.aclose()
    assert isinstance(report.failure, ProviderRateLimited)
    assert report.failure.retry_after == float(RETRY_AFTER_S)
    accepted = {r.client_ref for r in report.results if r.accepted}
    assert 990 <= len(accepted) < 1010
    assert {i["client_ref"] for i in ledger(sim)["items"]} == accepted


async def test_wrong_credentials_refuse_the_call_for_good(sim: httpx.Client, sim_url: str) -> None:
    provider = build_provider(spec(sim_url, None, token="KEYwrong"), timeout_s=10.0, concurrency=2)
    try:
        report = await provider.send(outgoing(3))
    finally:
        await provider.aclose()
    assert report.results == []
    assert isinstance(report.failure, ProviderError)
    assert not isinstance(report.failure, ProviderRateLimited | ProviderUnavailable)
    assert report.failure.retryable is False
    assert "10009" in str(report.failure)
    assert ledger(sim)["total"] == 0


async def test_the_official_sdk_sends_and_verifies_the_receipts(
    sim: httpx.Client, sim_url: str, hooks: WebhookRecorder
) -> None:
    client = telnyx.Telnyx(api_key=TOKEN, public_key=public_key(SIGNING),
                           base_url=f"{sim_url}/v2", max_retries=0)
    ref = f"sdk-{uuid.uuid4().hex[:8]}"
    sent = client.messages.send(to="+15550003333", from_=FROM, text="hello from the SDK",
                                webhook_url=f"{hooks.url}{HOOKS}?ref={ref}", use_profile_webhooks=False,
                                idempotency_key=ref)
    assert sent.data is not None
    assert sent.data.to is not None
    assert (sent.data.to[0].phone_number, sent.data.to[0].status) == ("+15550003333", "queued")
    assert (sent.data.parts, sent.data.text) == (1, "hello from the SDK")
    assert [(i["client_ref"], i["provider_message_id"]) for i in ledger(sim)["items"]] == [
        (ref, sent.data.id)]
    with pytest.raises(telnyx.BadRequestError) as refused:
        client.messages.send(to="12345", from_=FROM, text="hi")
    assert refused.value.status_code == 400
    assert "40310" in str(refused.value.body)
    stranger = telnyx.Telnyx(api_key="KEYwrong", base_url=f"{sim_url}/v2", max_retries=0)
    with pytest.raises(telnyx.AuthenticationError):
        stranger.messages.send(to="+15550003333", from_=FROM, text="hi")
    checker = TelnyxCallbacks(spec(sim_url, hooks))
    kinds = []
    for _, _, headers, body in hooks.wait(f"{HOOKS}?ref={ref}", 2):
        event: dict[str, Any] = client.webhooks.unwrap(body.decode(), headers=headers).to_dict()
        kinds.append(event["data"]["event_type"])
        assert checker.verify(url=hooks.url + HOOKS, headers=headers, body=body)
        assert checker.receipts(headers=headers, body=body)[0].provider_message_id == sent.data.id
    assert kinds == ["message.sent", "message.finalized"]
