"""The Twilio adapter and the official ``twilio`` SDK against the simulator speaking Twilio
(a real subprocess): sends, per-message rejections, throttling, refusals, and signed status
callbacks checked by the SDK's ``RequestValidator`` and by hexcast's ``TwilioCallbacks``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.testing import WebhookRecorder, running_sim
from providersim import SimConfig
from sender.models import ProviderSpec
from sender.providers import DeliveryStatus, Outgoing, SendReport, build_provider
from sender.providers.twilio import TwilioCallbacks

ACCOUNT = "AC" + "7" * 32
TOKEN = "sim-twilio-auth-token"
SENDER = "+15005550006"  # Twilio's magic "passes all validation" From
DEFAULTS = {"rate_per_s": 1000.0, "rate_burst": None, "fail_rate": 0.0, "deliver_fail_rate": 0.0}
CALLBACKS = "/v1/webhooks/twilio"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as webhook:
        yield webhook


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    config = SimConfig(dialect="twilio", account=ACCOUNT, token=TOKEN, dlr_delay_s=0.1)
    with running_sim(config) as url:
        yield url


@pytest.fixture
async def sim(sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's open control API, reset to defaults before each test."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=30.0) as client:
        await control(client, **DEFAULTS)
        (await client.post("/control/reset")).raise_for_status()
        yield client


@pytest.fixture
def sync_sim(sim_url: str) -> Iterator[httpx.Client]:
    """The same for the tests of the (blocking) SDK."""
    with httpx.Client(base_url=sim_url, timeout=30.0) as client:
        client.post("/control", json=DEFAULTS).raise_for_status()
        client.post("/control/reset").raise_for_status()
        yield client


async def control(sim: httpx.AsyncClient, **changes: float | None) -> None:
    (await sim.post("/control", json=changes)).raise_for_status()


def spec(sim_url: str, receiver: WebhookRecorder | None = None, **changes: Any) -> ProviderSpec:
    fields = {"name": "twilio-sim", "kind": "twilio", "url": sim_url, "account": ACCOUNT,
              "token": TOKEN, "sender_id": SENDER,
              "callback_url": f"{receiver.url}{CALLBACKS}" if receiver else None}
    return ProviderSpec.model_validate({**fields, **changes})


async def send(route: ProviderSpec, messages: list[Outgoing], concurrency: int = 8) -> SendReport:
    provider = build_provider(route, timeout_s=10.0, concurrency=concurrency)
    try:
        return await provider.send(messages)
    finally:
        await provider.aclose()


def items(answer: httpx.Response) -> list[dict[str, Any]]:
    """The ledger's items from a ``GET /ledger``."""
    found: list[dict[str, Any]] = answer.raise_for_status().json()["items"]
    return found


LEDGER = "/ledger?limit=10000"


def outgoing(n: int, prefix: str = "k") -> list[Outgoing]:
    return [Outgoing(f"{prefix}-{i}", f"+1312555{i:04d}", f"hello {i}") for i in range(n)]


async def test_every_message_is_ledgered_once_and_a_bad_number_fails_alone(
    sim: httpx.AsyncClient, sim_url: str,
) -> None:
    messages = [*outgoing(10), Outgoing("bad", "12345", "x"), Outgoing("stop", "+15005550004", "x")]
    report = await send(spec(sim_url), messages)
    assert report.failure is None
    by_ref = {r.client_ref: r for r in report.results}
    assert set(by_ref) == {m.client_ref for m in messages}
    assert by_ref["bad"].accepted is False
    assert by_ref["bad"].error is not None
    assert by_ref["bad"].error.startswith("21211: ")
    assert by_ref["stop"].error == "21610: Attempt to send to unsubscribed recipient"
    sids = {r.provider_message_id or "" for r in report.results if r.accepted}
    assert len(sids) == 10
    assert all(s.startswith("SM") and len(s) == 34 for s in sids)
    ledgered = items(await sim.get(LEDGER))
    assert sorted(i["provider_message_id"] for i in ledgered) == sorted(sids)  # each exactly once
    assert {i["to"] for i in ledgered} == {m.to for m in outgoing(10)}


async def test_callbacks_are_signed_as_twilio_signs_and_map_back_to_our_messages(
    sim: httpx.AsyncClient, sim_url: str, receiver: WebhookRecorder,
) -> None:
    await control(sim, deliver_fail_rate=0.5)
    route = spec(sim_url, receiver)
    report = await send(route, outgoing(8, prefix="cb"))
    sid_of = {r.client_ref: r.provider_message_id for r in report.results}
    sids = {s for s in sid_of.values() if s}
    posts = [post for sid in sorted(sids)
             for post in receiver.wait(CALLBACKS, 2, about=sid)]  # its "sent", then its final
    validator, hexcast = RequestValidator(TOKEN), TwilioCallbacks(route)
    finals: dict[str, DeliveryStatus] = {}
    for _, path, headers, body in posts:
        url = receiver.url + path
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        assert validator.validate(url, params, headers["x-twilio-signature"])
        assert hexcast.verify(url=url, headers=headers, body=body)
        [receipt] = hexcast.receipts(headers=headers, body=body, url=url)
        assert receipt.client_ref is not None
        assert sid_of[receipt.client_ref] == receipt.provider_message_id
        if receipt.status.final:
            finals[receipt.provider_message_id] = receipt.status
            assert receipt.code == (None if receipt.status is DeliveryStatus.DELIVERED else "30003")
        forged = body.replace(b"sent", b"delivered").replace(b"undelivered", b"delivered") + b"&X=1"
        assert not validator.validate(url, dict(parse_qsl(forged.decode())), headers["x-twilio-signature"])
        assert not hexcast.verify(url=url, headers=headers, body=forged)
        assert not hexcast.verify(url=url.replace("ref=", "ref=x"), headers=headers, body=body)
    assert set(finals) == sids
    assert set(finals.values()) <= {DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}


async def test_over_the_rate_is_rate_limited_and_nothing_more_is_sent(
    sim: httpx.AsyncClient, sim_url: str,
) -> None:
    await control(sim, rate_per_s=1.0, rate_burst=100.0)
    (await sim.post("/control/reset")).raise_for_status()  # a full bucket: 100, then 1 a second
    report = await send(spec(sim_url), outgoing(110), concurrency=16)
    assert isinstance(report.failure, ProviderRateLimited)
    assert report.failure.retry_after > 0  # Twilio sends no Retry-After: the transport's 1 s
    accepted = [r for r in report.results if r.accepted]
    assert 100 <= len(accepted) < 110
    assert len(items(await sim.get(LEDGER))) == len(accepted)
    stats = (await sim.get("/ledger/stats")).json()
    assert stats["rate_limited"] <= 16  # no request started after the first 429


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"token": "wrong-token"}, "refused"),
        ({"account": "AC" + "0" * 32}, "refused"),
        ({"sender_id": "+15005550001"}, "refused"),  # Twilio's magic invalid From: 21212
        ({"sender_id": "+15005550008"}, "queue full"),  # its magic full queue: 21611
    ],
)
async def test_account_and_sender_errors_stop_the_call(
    sim: httpx.AsyncClient, sim_url: str, changes: dict[str, str], expected: str,
) -> None:
    report = await send(spec(sim_url, None, **changes), outgoing(5), concurrency=1)
    assert report.results == []
    if expected == "refused":
        assert type(report.failure) is ProviderError
        assert report.failure.retryable is False
    else:
        assert isinstance(report.failure, ProviderRateLimited)
        assert report.failure.retry_after == 60.0
    assert items(await sim.get(LEDGER)) == []


async def test_an_outage_is_unavailable_and_not_ambiguous(sim: httpx.AsyncClient, sim_url: str) -> None:
    await control(sim, fail_rate=1.0)
    report = await send(spec(sim_url), outgoing(3), concurrency=1)
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous is False
    assert items(await sim.get(LEDGER)) == []


def sdk_client(sim_url: str, token: str = TOKEN) -> Client:
    client = Client(ACCOUNT, token)
    client.api.base_url = sim_url  # twilio 9.x: the Api domain's base URL
    return client


def test_the_official_sdk_sends_and_validates_the_callbacks(
    sync_sim: httpx.Client, sim_url: str, receiver: WebhookRecorder,
) -> None:
    callback = f"{receiver.url}{CALLBACKS}?ref=sdk-1"
    message = sdk_client(sim_url).messages.create(
        to="+13125550199", from_=SENDER, body="from the SDK", status_callback=callback)
    assert message.sid is not None
    assert message.sid.startswith("SM")
    assert (message.status, message.to, message.from_, message.account_sid) == (
        "queued", "+13125550199", SENDER, ACCOUNT)
    assert [i["provider_message_id"] for i in items(sync_sim.get(LEDGER))] == [message.sid]
    route = spec(sim_url, receiver)
    for _, path, headers, body in receiver.wait(CALLBACKS, 2, about=message.sid):
        url = receiver.url + path
        assert url == callback
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        assert RequestValidator(TOKEN).validate(url, params, headers["x-twilio-signature"])
        assert not RequestValidator("not-the-token").validate(url, params, headers["x-twilio-signature"])
        assert TwilioCallbacks(route).verify(url=url, headers=headers, body=body)
        [receipt] = TwilioCallbacks(route).receipts(headers=headers, body=body, url=url)
        assert (receipt.provider_message_id, receipt.client_ref) == (message.sid, "sdk-1")


def test_the_official_sdk_reads_twilios_errors(sync_sim: httpx.Client, sim_url: str) -> None:
    with pytest.raises(TwilioRestException) as opted_out:
        sdk_client(sim_url).messages.create(to="+15005550004", from_=SENDER, body="x")
    assert (opted_out.value.status, opted_out.value.code) == (400, 21610)
    with pytest.raises(TwilioRestException) as unauthorized:
        sdk_client(sim_url, token="wrong").messages.create(to="+13125550100", from_=SENDER, body="x")
    assert (unauthorized.value.status, unauthorized.value.code) == (401, 20003)
    assert items(sync_sim.get(LEDGER)) == []
