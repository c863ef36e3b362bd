"""The Vonage adapter and the official ``vonage`` SDK against the simulator speaking Vonage's
SMS API over TLS (a real subprocess; the SDK builds ``https://{host}`` URLs only, so the
simulator serves a certificate from a ``trustme`` test CA): ledgered once, per-message
refusals, throttling, credentials, and one signed DLR per part, checked by the SDK's signature
helper and by hexcast's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trustme
from vonage import Auth, HttpClientOptions, Vonage
from vonage_sms import SmsError, SmsMessage, SmsResponse

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.testing import WebhookRecorder, running_sim
from providersim import SimConfig
from providersim.dialects.vonage import sign
from sender.models import ProviderSpec
from sender.providers import DeliveryStatus, ErrorClass, Outgoing, SendReport, build_provider
from sender.providers.vonage import TABLE, VonageCallbacks

KEY, SECRET, SIGNATURE_SECRET = "abcd1234", "vonage-sim-secret", "vonage-sim-signature-secret"
TO, FROM = "+15550002222", "Hexcast"
RETRY_AFTER_S = 3
DLR, PER_MESSAGE = "/dlr", "/per-message?route=vn"  # the dlr_url, a route's own callback


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as server:
        yield server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The simulator's certificate (key and chain in one file) and the CA that issued it,
    trusted by httpx (the adapter) and requests (the SDK) for this module."""
    ca = trustme.CA()
    folder: Path = tmp_path_factory.mktemp("vonage-tls")
    certfile, cafile = str(folder / "server.pem"), str(folder / "ca.pem")
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certfile)
    ca.cert_pem.write_to_path(cafile)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SSL_CERT_FILE", cafile)
        env.setenv("REQUESTS_CA_BUNDLE", cafile)
        yield certfile, cafile


@pytest.fixture(scope="module")
def sim_url(sink: WebhookRecorder, tls: tuple[str, str]) -> Iterator[str]:
    config = SimConfig(dialect="vonage", account=KEY, token=SECRET, signing_key=SIGNATURE_SECRET,
                       dlr_url=sink.url + DLR, dlr_delay_s=0.1, retry_after_s=RETRY_AFTER_S)
    with running_sim(config, ssl_certfile=tls[0], ssl_cafile=tls[1]) as url:
        yield url


@pytest.fixture
async def sim(sim_url: str, sink: WebhookRecorder, tls: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's open endpoints, reset to defaults before each test."""
    async with httpx.AsyncClient(base_url=sim_url, timeout=30.0, verify=tls[1]) as client:
        await control(client, rate_per_s=1000.0, fail_rate=0.0, deliver_fail_rate=0.0,
                      dlr_url=sink.url + DLR)
        (await client.post("/control/reset")).raise_for_status()
        yield client


async def control(client: httpx.AsyncClient, **changes: Any) -> None:
    (await client.post("/control", json=changes)).raise_for_status()


def spec(url: str, **overrides: Any) -> ProviderSpec:
    fields = {"name": "vn", "kind": "vonage", "url": url, "token": SECRET, "account": KEY,
              "sender_id": FROM, "webhook_key": SIGNATURE_SECRET}
    return ProviderSpec(**{**fields, **overrides})


def outgoing(n: int, body: str = "hello") -> list[Outgoing]:
    prefix = uuid.uuid4().hex[:8]
    return [Outgoing(f"{prefix}-{i}", TO, f"{body} {i}") for i in range(n)]


async def send(route: ProviderSpec, messages: list[Outgoing], concurrency: int = 4) -> SendReport:
    async with contextlib.aclosing(build_provider(route, timeout_s=10.0, concurrency=concurrency)) as p:
        return await p.send(messages)


async def ledger(client: httpx.AsyncClient) -> dict[str, str]:
    """client_ref → provider_message_id of every message the simulator took."""
    items = (await client.get("/ledger", params={"limit": 10_000})).json()["items"]
    return {i["client_ref"]: i["provider_message_id"] for i in items}


async def stats(client: httpx.AsyncClient) -> dict[str, int]:
    found: dict[str, int] = (await client.get("/ledger/stats")).json()
    return found


async def test_each_message_is_ledgered_once_and_only_the_bad_number_is_rejected(
    sim: httpx.AsyncClient, sim_url: str,
) -> None:
    messages = [*outgoing(5), *outgoing(1, "x" * 200), Outgoing("bad-number", "+0123", "hi")]
    report = await send(spec(sim_url), messages)
    assert report.failure is None
    results = {r.client_ref: r for r in report.results}
    bad = results.pop("bad-number")
    assert (bad.accepted, bad.provider_message_id) == (False, None)
    assert bad.error == "submit-3: Invalid to param"
    assert TABLE.error("submit-3") is ErrorClass.PERMANENT
    assert all(r.accepted for r in results.values())
    assert await ledger(sim) == {ref: r.provider_message_id for ref, r in results.items()}
    assert (await stats(sim))["duplicates_rejected"] == 0


async def test_one_signed_dlr_per_part_verifies_and_maps_to_the_message(
    sim: httpx.AsyncClient, sim_url: str, sink: WebhookRecorder,
) -> None:
    route = spec(sim_url, callback_url=f"{sink.url}{PER_MESSAGE}")
    messages = [*outgoing(2), *outgoing(1, "y" * 200)]  # the last one goes in two parts
    report = await send(route, messages)
    ids = {r.client_ref: r.provider_message_id for r in report.results if r.accepted}
    assert len(ids) == 3
    posts = sink.wait(PER_MESSAGE, 4)
    hexcast, sdk = VonageCallbacks(route), Auth(api_key=KEY, signature_secret=SIGNATURE_SECRET,
                                                signature_method="sha256")
    parts: dict[str, set[str]] = {}
    for _, path, headers, body in posts:
        assert path == PER_MESSAGE  # the message's callback, not the dlr_url
        assert hexcast.verify(url=f"{sink.url}{path}", headers=headers, body=body)
        assert sdk.check_signature(json.loads(body))
        (receipt,) = hexcast.receipts(headers=headers, body=body)
        assert (receipt.status, receipt.code) == (DeliveryStatus.DELIVERED, "0")
        assert receipt.client_ref is not None
        parts.setdefault(receipt.client_ref, set()).add(receipt.provider_message_id)
    assert parts.keys() == ids.keys()
    for ref, first in ids.items():
        assert first in parts[ref]  # the first part's DLR names the id send answered
    assert sorted(len(p) for p in parts.values()) == [1, 1, 2]


async def test_forged_tampered_and_replayed_dlrs_are_refused(
    sim: httpx.AsyncClient, sim_url: str, sink: WebhookRecorder,
) -> None:
    await control(sim, deliver_fail_rate=1.0)
    report = await send(spec(sim_url), outgoing(1))
    ref = report.results[0].client_ref
    [(_, _, headers, body)] = sink.wait(DLR, 1, about=ref)
    hexcast = VonageCallbacks(spec(sim_url))
    sdk = Auth(api_key=KEY, signature_secret=SIGNATURE_SECRET, signature_method="sha256")
    (receipt,) = hexcast.receipts(headers=headers, body=body)
    assert (receipt.status, receipt.code, receipt.client_ref) == (DeliveryStatus.FAILED, "1", ref)
    assert TABLE.error(receipt.code) is ErrorClass.UNDELIVERED
    params = json.loads(body)
    tampered = json.dumps({**params, "status": "delivered"}).encode()
    assert not hexcast.verify(url=sink.url + DLR, headers=headers, body=tampered)
    assert not sdk.check_signature(json.loads(tampered))
    stranger = VonageCallbacks(spec(sim_url, webhook_key="another account's secret"))
    assert not stranger.verify(url=sink.url + DLR, headers=headers, body=body)
    old = {k: v for k, v in params.items() if k != "sig"} | {"timestamp": str(int(params["timestamp"]) - 600)}
    replayed = json.dumps({**old, "sig": sign(old, SIGNATURE_SECRET)}).encode()
    assert sdk.check_signature(json.loads(replayed))  # the SDK checks the signature only...
    assert not hexcast.verify(url=sink.url + DLR, headers=headers, body=replayed)  # ...hexcast its age too


async def test_throttling_is_a_rate_limit_with_vonages_wait(sim: httpx.AsyncClient, sim_url: str) -> None:
    await control(sim, rate_per_s=1.0, dlr_url=None)
    (await sim.post("/control/reset")).raise_for_status()  # a full bucket: 1,000, then 1 a second
    report = await send(spec(sim_url), outgoing(1010), concurrency=16)
    assert isinstance(report.failure, ProviderRateLimited)
    assert report.failure.retry_after == float(RETRY_AFTER_S)  # "please wait [ 3000 ]" ms
    accepted = {r.client_ref for r in report.results if r.accepted}
    assert 990 <= len(accepted) < 1010
    assert set(await ledger(sim)) == accepted
    assert (await stats(sim))["rate_limited"] <= 16  # none started after the first


@pytest.mark.parametrize("changes", [{"token": "wrong-secret"}, {"account": "wrongkey"}])
async def test_wrong_credentials_refuse_the_call_for_good(
    sim: httpx.AsyncClient, sim_url: str, changes: dict[str, str],
) -> None:
    report = await send(spec(sim_url, **changes), outgoing(3), concurrency=1)
    assert report.results == []
    assert type(report.failure) is ProviderError
    assert report.failure.retryable is False
    assert "submit-4: Bad Credentials" in str(report.failure)
    assert await ledger(sim) == {}


async def test_an_outage_is_unavailable_and_not_ambiguous(sim: httpx.AsyncClient, sim_url: str) -> None:
    await control(sim, fail_rate=1.0)
    report = await send(spec(sim_url), outgoing(3), concurrency=1)
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous is False
    assert await ledger(sim) == {}


async def test_the_official_sdk_sends_through_the_simulator(
    sim: httpx.AsyncClient, sim_url: str,
) -> None:
    host = urlsplit(sim_url).netloc
    options = HttpClientOptions(rest_host=host, api_host=host, timeout=10)
    client = Vonage(Auth(api_key=KEY, api_secret=SECRET), options)
    ref = f"sdk-{uuid.uuid4().hex[:8]}"

    def sdk_send(vonage: Vonage, to: str, text: str, client_ref: str) -> SmsResponse:
        return vonage.sms.send(SmsMessage(to=to, from_=FROM, text=text, client_ref=client_ref))

    one = await asyncio.to_thread(sdk_send, client, TO[1:], "hello from the SDK", ref)
    assert one.message_count == "1"
    assert (one.messages[0].status, one.messages[0].client_ref) == ("0", ref)
    assert await ledger(sim) == {ref: one.messages[0].message_id}
    two = await asyncio.to_thread(sdk_send, client, TO[1:], "z" * 200, f"{ref}-long")
    assert two.message_count == "2"
    assert len({m.message_id for m in two.messages}) == 2
    assert (await ledger(sim))[f"{ref}-long"] == two.messages[0].message_id
    with pytest.raises(SmsError, match="error code 3"):
        await asyncio.to_thread(sdk_send, client, "0123", "hi", f"{ref}-bad")
    stranger = Vonage(Auth(api_key=KEY, api_secret="not-the-secret"), options)
    with pytest.raises(SmsError, match="error code 4"):
        await asyncio.to_thread(sdk_send, stranger, TO[1:], "hi", f"{ref}-x")
    assert len(await ledger(sim)) == 2
