"""The Sinch adapter, and Sinch's own SDK, against the simulator speaking Sinch (a real
subprocess): batches ledgered once, personalised texts in one batch (each recipient ledgered
with exactly its own text), Sinch's parameters as the simulator renders them, a malformed number
refused alone, throttling, bad credentials, and signed recipient delivery reports that the SDK's
validator and hexcast's both accept and that map back to the ids ``send`` answered."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sinch import SinchClient
from sinch.domains.sms.models.v1.response import RecipientDeliveryReport

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.testing import RecordedRequest, WebhookRecorder, running_sim
from providersim import SimConfig
from sender.models import ProviderSpec
from sender.providers import sinch
from sender.providers.base import Outgoing, SendReport
from sender.providers.status import DeliveryStatus, ErrorClass

PLAN = "0123456789abcdef0123456789abcdef"
TOKEN = "sinch-api-token"
SECRET = "sinch-webhook-secret"
DEFAULTS: dict[str, Any] = {"rate_per_s": 1000.0, "fail_rate": 0.0, "garble_rate": 0.0,
                            "deliver_fail_rate": 0.0, "latency_ms": 0}


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def sim_url(receiver: WebhookRecorder) -> Iterator[str]:
    config = SimConfig(dialect="sinch", account=PLAN, token=TOKEN, signing_key=SECRET,
                       dlr_url=f"{receiver.url}/default", dlr_delay_s=0.1)
    with running_sim(config) as url:
        yield url


@pytest.fixture
def sim(sim_url: str) -> Iterator[httpx.Client]:
    """A client for the simulator's control and ledger, reset to defaults before each test."""
    with httpx.Client(base_url=sim_url, timeout=30.0) as client:
        client.post("/control", json=DEFAULTS).raise_for_status()
        client.post("/control/reset").raise_for_status()
        yield client


def spec(url: str, **changes: Any) -> ProviderSpec:
    return ProviderSpec(**{"name": "sinch-it", "kind": "sinch", "url": url, "token": TOKEN,
                           "account": PLAN, "sender_id": "Hexcast", "webhook_key": SECRET,
                           **changes})


def send(route: ProviderSpec, messages: list[Outgoing]) -> SendReport:
    """One call of the adapter, on a loop of its own (the tests drive the simulator and the
    webhook synchronously)."""

    async def call() -> SendReport:
        provider = sinch.build(route, timeout_s=10.0, concurrency=4)
        try:
            return await provider.send(messages)
        finally:
            await provider.aclose()

    return asyncio.run(call())


def bodies(posts: list[RecordedRequest]) -> list[tuple[dict[str, str], bytes]]:
    """The headers and body of each post: what Sinch's SDK and hexcast check."""
    return [(post.headers, post.body) for post in posts]


def numbered(n: int, body: Callable[[int], str] = lambda i: "hello") -> list[Outgoing]:
    prefix = uuid.uuid4().hex[:8]
    return [Outgoing(f"{prefix}-{i}", f"+4915{i:09d}", body(i)) for i in range(n)]


def ledger(client: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/ledger", params={"limit": 10_000}).json()["items"]
    return items


def test_batches_are_ledgered_once_and_a_bad_number_refused_alone(
    sim: httpx.Client, sim_url: str
) -> None:
    messages = numbered(6, body=lambda i: ("even", "odd")[i % 2]) + [Outgoing("bad-1", "4915100000001", "x")]
    report = send(spec(sim_url), messages)
    assert report.failure is None
    by_ref = {r.client_ref: r for r in report.results}
    assert set(by_ref) == {m.client_ref for m in messages}
    assert not by_ref["bad-1"].accepted
    assert (by_ref["bad-1"].error or "").startswith("syntax_invalid_parameter_format")
    sent = {r.provider_message_id for r in report.results if r.accepted}
    assert len(sent) == 6
    assert all(pmid and pmid.endswith(f":{m.to}") for m in messages[:6]
               for pmid in [by_ref[m.client_ref].provider_message_id])
    items = ledger(sim)
    assert len(items) == 6
    assert {i["provider_message_id"] for i in items} == sent  # each once
    assert sim.get("/ledger/stats").json()["requests"] == 2  # two texts that share nothing


NAMES = ["Ann", "Bob", "Carla", "Dmitri", "Zoë", "$5", "O'Brien"]


def test_personalised_texts_go_in_one_request_and_each_recipient_gets_its_own(
    sim: httpx.Client, sim_url: str
) -> None:
    messages = numbered(500, body=lambda i: f"{NAMES[i % 7]}{'!' * (i % 3)}, Black Friday: 30% off")
    report = send(spec(sim_url), messages)
    assert report.failure is None
    assert all(r.accepted for r in report.results)
    assert sim.get("/ledger/stats").json()["requests"] == 1
    by_ref = {r.client_ref: r.provider_message_id for r in report.results}
    texts = {i["provider_message_id"]: (i["to"], i["body"]) for i in ledger(sim)}
    assert len(texts) == 500
    assert all(texts[by_ref[m.client_ref]] == (m.to, m.body) for m in messages)


def post(sim: httpx.Client, batch: dict[str, Any]) -> httpx.Response:
    return sim.post(f"/xms/v1/{PLAN}/batches", headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"body": "Hi ${name}, ${x}", **batch})


def test_parameters_render_as_sinch_renders_them(sim: httpx.Client) -> None:
    answer = post(sim, {"to": ["+4915100000001", "4915100000002", "+4915100000003"],
                        "parameters": {"name": {"4915100000001": "Ann", "+4915100000002": "${x}",
                                                "default": "there"}}})
    assert answer.status_code == 201
    assert answer.json()["parameters"]["name"]["default"] == "there"
    assert {i["to"]: i["body"] for i in ledger(sim)} == {
        "+4915100000001": "Hi Ann, ${x}",  # the number with or without "+"; no such parameter
        "+4915100000002": "Hi ${x}, ${x}",  # a value is not read again
        "+4915100000003": "Hi there, ${x}",  # the default
    }
    [listed] = sim.get(f"/xms/v1/{PLAN}/batches", headers={"Authorization": f"Bearer {TOKEN}"},
                       ).json()["batches"]
    assert listed["body"] == "Hi ${name}, ${x}"


def test_a_recipient_without_value_or_default_fails_alone(
    sim: httpx.Client, receiver: WebhookRecorder
) -> None:
    path = f"/cb/{uuid.uuid4().hex[:8]}"
    answer = post(sim, {"to": ["+4915100000001", "+4915100000002"], "delivery_report": "per_recipient_final",
                        "callback_url": f"{receiver.url}{path}",
                        "parameters": {"name": {"+4915100000001": "Ann"}}})
    assert answer.status_code == 201
    reports = [json.loads(b) for _, b in bodies(receiver.wait(path, 2))]
    assert sorted((r["recipient"], r["status"], r["code"]) for r in reports) == [
        ("+4915100000001", "Delivered", 0), ("+4915100000002", "Failed", 405)]
    assert sinch.TABLE.error("405") is ErrorClass.PERMANENT


@pytest.mark.parametrize(("parameters", "code", "where"), [
    ({"name": {"+4915100000001": "x" * 161}}, "syntax_constraint_violation", "parameters.name"),
    ({"a" * 17: {"+4915100000001": "x"}}, "syntax_constraint_violation", "parameters"),
    ({"na me": {"+4915100000001": "x"}}, "syntax_constraint_violation", "parameters"),
    ({"name": {"+4915100000001": 7}}, "syntax_constraint_violation", "parameters.name"),
    ({"name": "Ann"}, "syntax_constraint_violation", "parameters.name"),
    ({"name": {"+12": "x"}}, "syntax_invalid_parameter_format", "parameters.name"),
])
def test_malformed_parameters_refuse_the_batch(
    sim: httpx.Client, parameters: dict[str, Any], code: str, where: str
) -> None:
    answer = post(sim, {"to": ["+4915100000001"], "parameters": parameters})
    assert answer.status_code == 400
    assert answer.json()["code"] == code
    assert f"'{where}" in answer.json()["text"]
    assert ledger(sim) == []


def test_sinch_refuses_the_whole_batch_for_one_malformed_number(sim: httpx.Client) -> None:
    answer = sim.post(f"/xms/v1/{PLAN}/batches", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"to": ["+4915100000001", "+12"], "body": "hi"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "syntax_invalid_parameter_format"
    assert ledger(sim) == []


def test_a_throttled_batch_is_rate_limited(sim: httpx.Client, sim_url: str) -> None:
    sim.post("/control", json={"rate_per_s": 1.0}).raise_for_status()
    first = send(spec(sim_url), numbered(1000))  # the burst
    assert first.failure is None
    assert len(first.results) == 1000
    report = send(spec(sim_url), numbered(1))
    assert report.results == []
    assert isinstance(report.failure, ProviderRateLimited)
    assert report.failure.retry_after == 1.0  # Sinch sends no Retry-After: the default pause
    assert len(ledger(sim)) == 1000


@pytest.mark.parametrize("changes", [{"token": "wrong"}, {"account": "otherplan"}])
def test_wrong_credentials_are_refused_for_good(
    sim: httpx.Client, sim_url: str, changes: dict[str, str]
) -> None:
    report = send(spec(sim_url, **changes), numbered(2))
    assert report.results == []
    assert isinstance(report.failure, ProviderError)
    assert not report.failure.retryable
    assert "401" in str(report.failure)
    assert ledger(sim) == []


@pytest.mark.parametrize(("fault", "ambiguous", "ledgered"),
                         [({"fail_rate": 1.0}, False, 0), ({"garble_rate": 1.0}, True, 3)])
def test_an_outage_is_unavailable_and_an_unreadable_answer_ambiguous(
    sim: httpx.Client, sim_url: str, fault: dict[str, float], ambiguous: bool, ledgered: int
) -> None:
    sim.post("/control", json=fault).raise_for_status()
    report = send(spec(sim_url), numbered(3))
    assert report.results == []
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous is ambiguous
    assert len(ledger(sim)) == ledgered


def sdk_client(sim_url: str) -> SinchClient:
    """Sinch's SDK with its SMS domain (service plan authentication) pointed at the simulator."""
    client = SinchClient(service_plan_id=PLAN, sms_api_token=TOKEN, sms_region="us")
    client.configuration.sms_domain_with_service_plan_id = sim_url
    return client


def test_the_official_sdk_sends_and_validates_the_reports(
    sim: httpx.Client, sim_url: str, receiver: WebhookRecorder
) -> None:
    batch = sdk_client(sim_url).sms.batches.send_sms(
        to=["+4915100000042"], from_="Hexcast", body="from the SDK", delivery_report="per_recipient")
    assert batch.to == ["+4915100000042"]
    assert [i["provider_message_id"] for i in ledger(sim)] == [f"{batch.id}:+4915100000042"]
    events = sdk_client(sim_url).sms.sinch_events(SECRET)
    assert batch.id
    reports = bodies(receiver.wait("/default", 2, about=batch.id))  # Dispatched, then Delivered
    assert all(events.validate_authentication_header(h, b) for h, b in reports)
    parsed = [events.parse_event(b, h) for h, b in reports]
    assert all(isinstance(p, RecipientDeliveryReport) and p.batch_id == batch.id for p in parsed)
    assert [p.status for p in parsed] == ["Dispatched", "Delivered"]
    hexcast = sinch.callbacks(spec(sim_url))
    assert [r.status for h, b in reports for r in hexcast.receipts(headers=h, body=b)] == [
        DeliveryStatus.SENT, DeliveryStatus.DELIVERED]


def test_reports_verify_in_the_sdk_and_here_and_name_what_send_answered(
    sim: httpx.Client, sim_url: str, receiver: WebhookRecorder
) -> None:
    path = f"/cb/{uuid.uuid4().hex[:8]}"
    route = spec(sim_url, callback_url=f"{receiver.url}{path}")
    report = send(route, numbered(3))
    sent = {r.provider_message_id for r in report.results}
    assert len(sent) == 3
    reports = bodies(receiver.wait(path, 3))
    events = sdk_client(sim_url).sms.sinch_events(SECRET)
    hexcast = sinch.callbacks(route)
    url = f"{receiver.url}{path}"
    assert all(events.validate_authentication_header(h, b) for h, b in reports)
    assert all(hexcast.verify(url=url, headers=h, body=b) for h, b in reports)
    receipts = [r for h, b in reports for r in hexcast.receipts(headers=h, body=b)]
    assert {r.provider_message_id for r in receipts} == sent
    assert {r.status for r in receipts} == {DeliveryStatus.DELIVERED}
    headers, body = reports[0]
    forged = body.replace(b"Delivered", b"Failed")
    assert not events.validate_authentication_header(headers, forged)
    assert not hexcast.verify(url=url, headers=headers, body=forged)
    later = sinch.SinchCallbacks(route, now=lambda: time.time() + 301)  # replayed 5 min on
    assert not later.verify(url=url, headers=headers, body=body)
    stranger = sinch.callbacks(spec(sim_url, webhook_key="not-the-secret"))
    assert not stranger.verify(url=url, headers=headers, body=body)


def test_a_failed_delivery_reports_its_code(
    sim: httpx.Client, sim_url: str, receiver: WebhookRecorder
) -> None:
    sim.post("/control", json={"deliver_fail_rate": 1.0}).raise_for_status()
    path = f"/cb/{uuid.uuid4().hex[:8]}"
    route = spec(sim_url, callback_url=f"{receiver.url}{path}")
    report = send(route, numbered(1))
    [(_, _, headers, body)] = receiver.wait(path, 1)
    [receipt] = sinch.callbacks(route).receipts(headers=headers, body=body)
    assert receipt.provider_message_id == report.results[0].provider_message_id
    assert receipt.status is DeliveryStatus.FAILED
    assert sinch.TABLE.error(receipt.code) is ErrorClass.UNDELIVERED
