"""The provider simulator, run as a real subprocess and driven over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from hexcast.testing import WebhookRecorder, running_sim
from providersim import SimConfig

AUTH = {"Authorization": "Bearer sim-token"}
DEFAULTS: dict[str, Any] = {
    "rate_per_s": 1000.0,
    "fail_rate": 0.0,
    "latency_ms": 0,
    "deliver_fail_rate": 0.0,
    "lookup": True,
}


DLR = "/dlr"


def receipts_for(receiver: WebhookRecorder, client_refs: set[str]) -> dict[str, dict[str, Any]]:
    """The receipts posted for ``client_refs`` (the simulator posts them in JSON batches)."""
    posted = (r for post in receiver.at(DLR) for r in json.loads(post.body)["receipts"])
    return {r["client_ref"]: r for r in posted if r["client_ref"] in client_refs}


def wait_until(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def refs(n: int) -> list[str]:
    prefix = uuid.uuid4().hex[:8]
    return [f"{prefix}-{i}" for i in range(n)]


def msgs(client_refs: list[str], to: str = "+4915112345678") -> list[dict[str, str]]:
    return [{"client_ref": r, "to": to, "body": f"hello {r}"} for r in client_refs]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def batch_sim(receiver: WebhookRecorder) -> Iterator[str]:
    config = SimConfig(dlr_url=receiver.url + DLR, dlr_delay_s=0.1)
    with running_sim(config) as url:
        yield url


@pytest.fixture
def sim(batch_sim: str, receiver: WebhookRecorder) -> Iterator[httpx.Client]:
    """A client for the batch-mode simulator, reset to defaults before each test."""
    with httpx.Client(base_url=batch_sim, headers=AUTH, timeout=30.0) as client:
        client.post("/control", json={**DEFAULTS, "dlr_url": receiver.url + DLR}).raise_for_status()
        client.post("/control/reset").raise_for_status()
        receiver.fail_next = 0
        yield client


def stats(client: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = client.get("/ledger/stats").json()
    return data


def test_health(sim: httpx.Client) -> None:
    assert sim.get("/health").json() == {"ok": True}


def test_batch_accepts_in_request_order(sim: httpx.Client) -> None:
    client_refs = refs(3)
    messages = [
        {"client_ref": r, "to": f"+4915100000{i}0", "body": f"b{i}"}
        for i, r in enumerate(client_refs)
    ]
    resp = sim.post("/v1/batches", json={"messages": messages})
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [r["client_ref"] for r in results] == client_refs
    assert all(r["status"] == "accepted" and r["duplicate"] is False for r in results)
    ids = [r["provider_message_id"] for r in results]
    assert len(set(ids)) == 3
    assert all(i.startswith("sim-") and len(i) == 36 for i in ids)
    ledger = sim.get("/ledger").json()
    assert ledger["total"] == 3
    assert [(i["seq"], i["client_ref"], i["to"], i["body"]) for i in ledger["items"]] == [
        (n + 1, m["client_ref"], m["to"], m["body"]) for n, m in enumerate(messages)
    ]
    assert all(i["accepted_at"].endswith("+00:00") for i in ledger["items"])
    assert stats(sim)["unique_destinations"] == 3
    assert stats(sim)["requests"] == 1


def test_ledger_pages_with_after_and_limit(sim: httpx.Client) -> None:
    sim.post("/v1/batches", json={"messages": msgs(refs(5))}).raise_for_status()
    page = sim.get("/ledger", params={"after": 2, "limit": 2}).json()
    assert [i["seq"] for i in page["items"]] == [3, 4]
    assert page["total"] == 5
    assert sim.get("/ledger", params={"limit": 10_001}).status_code == 422


def test_batch_size_limit(sim: httpx.Client) -> None:
    too_many = sim.post("/v1/batches", json={"messages": msgs(refs(1001))})
    assert too_many.status_code == 422
    assert sim.post("/v1/batches", json={"messages": []}).status_code == 422
    assert sim.post("/v1/batches", json={"messages": msgs(refs(1000))}).status_code == 200
    assert stats(sim)["total"] == 1000


def test_unknown_fields_are_rejected(sim: httpx.Client) -> None:
    message = {**msgs(refs(1))[0], "priority": "high"}
    assert sim.post("/v1/batches", json={"messages": [message]}).status_code == 422
    assert stats(sim)["total"] == 0


def test_bad_auth_is_401(sim: httpx.Client) -> None:
    body = {"messages": msgs(refs(1))}
    with httpx.Client(base_url=str(sim.base_url)) as anon:
        assert anon.post("/v1/batches", json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert anon.post("/v1/batches", json=body, headers=wrong).status_code == 401
        assert anon.get("/v1/messages/by-ref/x", headers=wrong).status_code == 401
        assert anon.get("/ledger").json()["total"] == 0


def test_duplicates_are_not_accepted_twice(sim: httpx.Client) -> None:
    a, b, c = refs(3)
    first = sim.post("/v1/batches", json={"messages": msgs([a, b])}).json()["results"]
    again = sim.post("/v1/batches", json={"messages": msgs([b, c, c])}).json()["results"]
    assert [r["duplicate"] for r in first] == [False, False]
    assert [(r["client_ref"], r["duplicate"]) for r in again] == [
        (b, True),
        (c, False),
        (c, True),
    ]
    assert again[0]["provider_message_id"] == first[1]["provider_message_id"]
    assert again[2]["provider_message_id"] == again[1]["provider_message_id"]
    ledger = sim.get("/ledger").json()
    assert [i["client_ref"] for i in ledger["items"]] == [a, b, c]
    assert ledger["duplicates_rejected"] == 2
    assert stats(sim)["duplicates_rejected"] == 2


def test_invalid_destination_is_rejected_per_item(sim: httpx.Client) -> None:
    good, bad, short = refs(3)
    messages = msgs([good]) + msgs([bad], to="0151 123") + msgs([short], to="+12345")
    results = sim.post("/v1/batches", json={"messages": messages}).json()["results"]
    assert results[0]["status"] == "accepted"
    for r, ref in zip(results[1:], [bad, short], strict=True):
        assert r == {"client_ref": ref, "status": "rejected", "error": "invalid_destination"}
    assert [i["client_ref"] for i in sim.get("/ledger").json()["items"]] == [good]
    assert sim.get(f"/v1/messages/by-ref/{bad}").status_code == 404


def test_lookup_by_client_ref(sim: httpx.Client) -> None:
    (ref,) = refs(1)
    accepted = sim.post("/v1/batches", json={"messages": msgs([ref])}).json()["results"][0]
    found = sim.get(f"/v1/messages/by-ref/{ref}")
    assert found.status_code == 200
    record = found.json()
    assert record["client_ref"] == ref
    assert record["provider_message_id"] == accepted["provider_message_id"]
    assert record["to"] == "+4915112345678"
    assert record["status"] in {"accepted", "delivered"}
    assert sim.get("/v1/messages/by-ref/never-sent").status_code == 404


def test_lookup_disabled_returns_404(sim: httpx.Client) -> None:
    (ref,) = refs(1)
    sim.post("/v1/batches", json={"messages": msgs([ref])}).raise_for_status()
    assert sim.post("/control", json={"lookup": False}).json()["lookup"] is False
    assert sim.get(f"/v1/messages/by-ref/{ref}").status_code == 404
    sim.post("/control", json={"lookup": True}).raise_for_status()
    assert sim.get(f"/v1/messages/by-ref/{ref}").status_code == 200


def test_over_rate_is_429_with_retry_after(sim: httpx.Client) -> None:
    sim.post("/control", json={"rate_per_s": 1.0}).raise_for_status()
    sim.post("/control/reset").raise_for_status()  # full bucket: burst is max(rate, 1000)
    assert sim.post("/v1/batches", json={"messages": msgs(refs(1000))}).status_code == 200
    limited = sim.post("/v1/batches", json={"messages": msgs(refs(500))})
    assert limited.status_code == 429
    assert limited.json() == {"error": "rate_limited"}
    assert int(limited.headers["Retry-After"]) >= 1
    after = stats(sim)
    assert after["total"] == 1000
    assert after["rate_limited"] == 1


def test_injected_failure_is_503_and_accepts_nothing(sim: httpx.Client) -> None:
    sim.post("/control", json={"fail_rate": 1.0}).raise_for_status()
    resp = sim.post("/v1/batches", json={"messages": msgs(refs(3))})
    assert resp.status_code == 503
    assert resp.json() == {"error": "injected"}
    after = stats(sim)
    assert (after["total"], after["injected_failures"]) == (0, 1)


def test_control_validates_and_returns_config(sim: httpx.Client) -> None:
    config = sim.post("/control", json={"latency_ms": 5, "deliver_fail_rate": 0.5}).json()
    assert (config["latency_ms"], config["deliver_fail_rate"]) == (5, 0.5)
    assert config["mode"] == "batch"
    assert sim.post("/control", json={"fail_rate": 2}).status_code == 422
    assert sim.post("/control", json={"mode": "single"}).status_code == 422
    results = sim.post("/v1/batches", json={"messages": msgs(refs(2))}).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted"]


def test_single_endpoint_is_404_in_batch_mode(sim: httpx.Client) -> None:
    assert sim.post("/v1/messages", json=msgs(refs(1))[0]).status_code == 404


def test_receipts_are_delivered(sim: httpx.Client, receiver: WebhookRecorder) -> None:
    client_refs = refs(5)
    results = sim.post("/v1/batches", json={"messages": msgs(client_refs)}).json()["results"]
    wanted = set(client_refs)
    assert wait_until(lambda: len(receipts_for(receiver, wanted)) == 5)
    got = receipts_for(receiver, wanted)
    for r in results:
        receipt = got[r["client_ref"]]
        assert receipt["provider_message_id"] == r["provider_message_id"]
        assert (receipt["status"], receipt["error"]) == ("delivered", None)
        assert receipt["at"].endswith("+00:00")
    assert {post.headers.get("authorization") for post in receiver.at(DLR)} == {"Bearer dlr-token"}
    record = sim.get(f"/v1/messages/by-ref/{client_refs[0]}").json()
    assert record["status"] == "delivered"


def test_failed_receipt_posts_are_retried(sim: httpx.Client, receiver: WebhookRecorder) -> None:
    receiver.fail_next = 2
    client_refs = refs(3)
    sim.post("/v1/batches", json={"messages": msgs(client_refs)}).raise_for_status()
    assert wait_until(lambda: len(receipts_for(receiver, set(client_refs))) == 3)
    assert receiver.rejected >= 2
    assert wait_until(lambda: stats(sim)["receipts_pending"] == 0)


def test_undeliverable_receipts(sim: httpx.Client, receiver: WebhookRecorder) -> None:
    sim.post("/control", json={"deliver_fail_rate": 1.0}).raise_for_status()
    client_refs = refs(2)
    sim.post("/v1/batches", json={"messages": msgs(client_refs)}).raise_for_status()
    assert wait_until(lambda: len(receipts_for(receiver, set(client_refs))) == 2)
    for receipt in receipts_for(receiver, set(client_refs)).values():
        assert (receipt["status"], receipt["error"]) == ("failed", "undeliverable")
    assert sim.get(f"/v1/messages/by-ref/{client_refs[0]}").json()["status"] == "failed"


def test_single_mode() -> None:
    with (
        running_sim(SimConfig(mode="single")) as url,
        httpx.Client(base_url=url, headers=AUTH) as client,
    ):
        a, bad = refs(2)
        first = client.post("/v1/messages", json=msgs([a])[0])
        assert first.status_code == 201
        body = first.json()
        assert (body["client_ref"], body["status"], body["duplicate"]) == (a, "accepted", False)
        again = client.post("/v1/messages", json=msgs([a])[0]).json()
        assert again["duplicate"] is True
        assert again["provider_message_id"] == body["provider_message_id"]
        rejected = client.post("/v1/messages", json=msgs([bad], to="12345")[0])
        assert rejected.status_code == 400
        assert rejected.json()["error"] == "invalid_destination"
        assert client.post("/v1/batches", json={"messages": msgs([bad])}).status_code == 404
        found = client.get(f"/v1/messages/by-ref/{a}").json()
        assert found["provider_message_id"] == body["provider_message_id"]
        assert client.get("/ledger/stats").json()["total"] == 1
        client.post("/control", json={"fail_rate": 1.0}).raise_for_status()
        assert client.post("/v1/messages", json=msgs(refs(1))[0]).status_code == 503
