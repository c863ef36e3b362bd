"""The Plivo adapter and the official Plivo SDK against the simulator in the Plivo dialect (a
real subprocess); its status callbacks captured by a local webhook and checked by the SDK's
V3 validator and by hexcast's :class:`PlivoCallbacks`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import plivo
import pytest
from plivo.utils import validate_v3_signature

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.testing import WebhookRecorder, running_sim
from providersim import SimConfig
from sender.models import ProviderSpec
from sender.providers import build_provider, callbacks_for
from sender.providers.base import Outgoing, Provider, SendReport
from sender.providers.status import DeliveryStatus

ACCOUNT = "MAXXXXXXXXXXXXXXXXXX"  # the SDK checks an Auth ID's shape: MA or SA + 18
TOKEN = "plivo-sim-token"
SENDER = "14155550000"
STATUS = "/plivo/status"  # where the status callbacks go


def form_of(body: bytes) -> dict[str, str]:
    """A callback's fields as a web framework hands them over (empty ones kept: signed too)."""
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as hook:
        yield hook


def status_callbacks(webhook: WebhookRecorder,
                     ids: list[str]) -> dict[str, tuple[dict[str, str], bytes]]:
    """The status callback (headers, body) of each MessageUUID: Plivo posts one per message."""
    posts = {pmid: webhook.wait(STATUS, 1, about=pmid) for pmid in ids}
    return {pmid: (post.headers, post.body) for pmid, [post] in posts.items()}


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    config = SimConfig(dialect="plivo", account=ACCOUNT, token=TOKEN, dlr_delay_s=0.05)
    with running_sim(config) as url:
        yield url


@pytest.fixture
def sim(sim_url: str) -> Iterator[httpx.Client]:
    """The simulator's open endpoints, reset to defaults before each test."""
    with httpx.Client(base_url=sim_url, timeout=30.0) as client:
        control(client, rate_per_s=1000.0, garble_rate=0.0)
        client.post("/control/reset").raise_for_status()
        yield client


def spec(sim_url: str, webhook: WebhookRecorder, **changes: Any) -> ProviderSpec:
    fields = {"name": "plivo-1", "kind": "plivo", "url": sim_url, "account": ACCOUNT,
              "token": TOKEN, "sender_id": SENDER, "callback_url": webhook.url + STATUS, **changes}
    return ProviderSpec.model_validate(fields)


async def send(route: ProviderSpec, messages: list[Outgoing]) -> SendReport:
    adapter: Provider = build_provider(route, timeout_s=10.0, concurrency=4)
    try:
        return await adapter.send(messages)
    finally:
        await adapter.aclose()


def outgoing(n: int, body: str = "Your code is 4711", first: int = 100) -> list[Outgoing]:
    tag = uuid.uuid4().hex[:8]
    return [Outgoing(client_ref=f"{tag}-{i}", to=f"+1415555{first + i:04d}", body=body)
            for i in range(n)]


def ledger(sim: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sim.get("/ledger", params={"limit": 10_000}).json()["items"]
    return items


def control(sim: httpx.Client, **changes: float) -> None:
    sim.post("/control", json=changes).raise_for_status()


def requests(sim: httpx.Client) -> int:
    count: int = sim.get("/ledger/stats").json()["requests"]
    return count


async def test_a_chunk_is_sent_once_and_its_callbacks_verify(
    sim: httpx.Client, sim_url: str, webhook: WebhookRecorder,
) -> None:
    chunk = outgoing(5) + outgoing(2, body="Sale ends tonight", first=200)
    chunk.insert(3, Outgoing(client_ref="bad-number", to="+1234", body=chunk[0].body))
    route = spec(sim_url, webhook)
    report = await send(route, chunk)
    assert report.failure is None
    by_ref = {r.client_ref: r for r in report.results}
    assert set(by_ref) == {m.client_ref for m in chunk}
    assert not by_ref["bad-number"].accepted
    assert (by_ref["bad-number"].error or "").startswith("50: ")
    sent = {m.client_ref: m for m in chunk if m.client_ref != "bad-number"}
    assert all(by_ref[ref].accepted for ref in sent)
    items = ledger(sim)
    assert sorted((i["provider_message_id"], i["to"], i["body"]) for i in items) == sorted(
        (by_ref[ref].provider_message_id, m.to, m.body) for ref, m in sent.items())
    assert requests(sim) == 2  # one per text

    ids = [by_ref[ref].provider_message_id or "" for ref in sent]
    posts = status_callbacks(webhook, ids)
    hexcast, url = callbacks_for(route), webhook.url + STATUS
    for pmid, (headers, body) in posts.items():
        form = form_of(body)
        assert validate_v3_signature("POST", url, headers["x-plivo-signature-v3-nonce"],
                                     TOKEN, headers["x-plivo-signature-v3"], form)
        assert hexcast.verify(url=url, headers=headers, body=body)
        [receipt] = hexcast.receipts(headers=headers, body=body)
        assert (receipt.provider_message_id, receipt.status) == (pmid, DeliveryStatus.DELIVERED)
        forged = body.replace(b"Status=delivered", b"Status=undelivered")
        assert not hexcast.verify(url=url, headers=headers, body=forged)
        assert not validate_v3_signature("POST", url, headers["x-plivo-signature-v3-nonce"],
                                         TOKEN, headers["x-plivo-signature-v3"],
                                         form_of(forged))
        assert not hexcast.verify(url=f"{url}/other", headers=headers, body=body)


async def test_a_repeated_number_is_a_request_of_its_own(
    sim: httpx.Client, sim_url: str, webhook: WebhookRecorder,
) -> None:
    [first] = outgoing(1)
    again = Outgoing(client_ref=f"{first.client_ref}-again", to=first.to, body=first.body)
    report = await send(spec(sim_url, webhook), [first, again])
    assert report.failure is None
    assert all(r.accepted for r in report.results)
    assert len({r.provider_message_id for r in report.results}) == 2
    assert len(ledger(sim)) == 2


async def test_only_invalid_numbers_are_each_rejected(sim: httpx.Client, sim_url: str,
                                                      webhook: WebhookRecorder) -> None:
    bad = [Outgoing(client_ref="x", to="+99", body="hi")]
    report = await send(spec(sim_url, webhook), bad)
    assert report.failure is None
    assert [(r.accepted, (r.error or "")[:4]) for r in report.results] == [(False, "400:")]
    assert ledger(sim) == []


async def test_throttled_is_rate_limited_with_retry_after(sim: httpx.Client, sim_url: str,
                                                          webhook: WebhookRecorder) -> None:
    control(sim, rate_per_s=1.0)
    route = spec(sim_url, webhook, callback_url=None)
    report = await send(route, outgoing(1000, first=0))  # the burst: 1,000 at once
    assert report.failure is None
    assert len(report.results) == 1000
    report = await send(route, outgoing(3))
    assert isinstance(report.failure, ProviderRateLimited)
    assert report.failure.retry_after >= 1
    assert report.results == []
    assert len(ledger(sim)) == 1000


async def test_wrong_credentials_refuse_the_call_for_good(sim: httpx.Client, sim_url: str,
                                                          webhook: WebhookRecorder) -> None:
    report = await send(spec(sim_url, webhook, token="wrong"), outgoing(2))
    assert report.results == []
    assert type(report.failure) is ProviderError
    assert report.failure.retryable is False
    assert "401" in str(report.failure)
    assert ledger(sim) == []


async def test_an_unreadable_acceptance_is_ambiguous(sim: httpx.Client, sim_url: str,
                                                     webhook: WebhookRecorder) -> None:
    control(sim, garble_rate=1.0)
    report = await send(spec(sim_url, webhook, callback_url=None), outgoing(2))
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous
    assert len(ledger(sim)) == 2  # it took them: they must not be sent again


def test_the_official_sdk_sends_and_validates_the_callbacks(
    sim: httpx.Client, sim_url: str, webhook: WebhookRecorder, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plivo.rest.client, "PLIVO_API_BASE_URI", f"{sim_url}/v1/Account")
    client, url = plivo.RestClient(ACCOUNT, TOKEN), webhook.url + STATUS
    answer = client.messages.create(src=SENDER, dst="14155550301<+1 415 555 0302<12",
                                    text="Hello from the SDK", url=url)
    assert answer.message == "message(s) queued"
    assert len(answer.message_uuid) == 2
    assert answer.invalid_number == ["12"]
    assert sorted(i["provider_message_id"] for i in ledger(sim)) == sorted(answer.message_uuid)
    route = spec(sim_url, webhook)
    for pmid, (headers, body) in status_callbacks(webhook, answer.message_uuid).items():
        form = form_of(body)
        assert validate_v3_signature("POST", url, headers["x-plivo-signature-v3-nonce"],
                                     TOKEN, headers["x-plivo-signature-v3"], form)
        assert callbacks_for(route).verify(url=url, headers=headers, body=body)
        assert form["MessageUUID"] == pmid
        assert form["From"] == SENDER
    with pytest.raises(plivo.exceptions.AuthenticationError):
        plivo.RestClient(ACCOUNT, "wrong").messages.create(src=SENDER, dst="14155550303",
                                                            text="no")
