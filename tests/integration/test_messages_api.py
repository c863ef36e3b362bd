"""POST /v1/messages through the real api and a transactional sender to the provider-sim,
and the status lookups: by key, client reference, phone, campaign run and time, paged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from hexcast.testing import eventually, make_tenant
from sender.keys import bulk_key, message_key
from sender.models import Lane
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e

SIM_TOKEN = "sim-token"


@pytest.fixture(scope="module")
def world(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SenderWorld]:
    """An api, a provider-sim, transactional and bulk senders, one tenant (no recipients: a
    transactional message needs no marketing consent)."""
    with sender_world(broker_url, tmp_path_factory.mktemp("messages")) as w:
        sim = w.sim("provider-sim")
        w.settings = w.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": SIM_TOKEN})})
        w.api()
        w.sender("sender-transactional", Lane.TRANSACTIONAL)
        w.sender("sender-bulk", Lane.BULK)
        yield w


@pytest.fixture(scope="module")
def api(world: SenderWorld) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.settings.api_public_url, timeout=10,
                      headers={"X-API-Key": world.api_key}) as client:
        yield client


def _post(api: httpx.Client, key: str, *messages: dict[str, Any]) -> httpx.Response:
    return api.post("/v1/messages", headers={"Idempotency-Key": key},
                    json={"messages": list(messages)})


def _state(api: httpx.Client, key: str, want: str) -> dict[str, Any] | None:
    found = api.get(f"/v1/messages/{key}")
    body: dict[str, Any] = found.json()
    return body if found.status_code == 200 and body["state"] == want else None


def test_one_message_is_sent_and_its_status_has_its_history(world: SenderWorld, api: httpx.Client
                                                           ) -> None:
    posted = _post(api, "one", {"to": "+13125550101", "body": "Order A-1 shipped",
                                "client_reference": "order-A-1"})
    assert posted.status_code == 202, posted.text
    [answer] = posted.json()["messages"]
    assert answer["message_key"] == message_key(tenant_id=world.tenant_id, idempotency_key="one",
                                                index=0)
    assert (answer["lane"], answer["state"], answer["segments"]) == ("transactional", "queued", 1)

    status = eventually(lambda: _state(api, answer["message_key"], "accepted"), timeout=60)
    assert (status["phone"], status["client_reference"], status["provider"]) == (
        "+13125550101", "order-A-1", "acct")
    assert status["provider_message_id"]
    assert [e["to_state"] for e in status["events"]] == ["queued", "sending", "accepted"]
    sim = json.loads(world.settings.sender_providers)[0]["url"]
    assert answer["message_key"] in {i["client_ref"] for i in ledger(sim)}


def test_a_batch_with_a_template_and_idempotent_retries(world: SenderWorld, api: httpx.Client) -> None:
    template = api.post("/v1/templates", json={"name": "ship", "body": "Hi {first_name}, shipped"})
    assert template.status_code == 201, template.text
    batch = [{"to": f"+1312555020{n}", "template_id": template.json()["id"],
              "variables": {"first_name": f"Ann{n}"}, "client_reference": "batch-ref"}
             for n in range(3)]
    first = _post(api, "batch", *batch)
    assert first.status_code == 202, first.text
    assert [m["index"] for m in first.json()["messages"]] == [0, 1, 2]

    again = _post(api, "batch", *batch)
    assert (again.status_code, again.json()) == (202, first.json())  # the first answer
    assert _post(api, "batch", *batch[:2]).status_code == 409  # same key, another body

    for m in first.json()["messages"]:
        sent = eventually(partial(_state, api, m["message_key"], "accepted"), timeout=60)
        assert sent["body"] == f"Hi Ann{m['index']}, shipped"
    assert world.scalar("SELECT count(*) FROM messages WHERE client_reference = 'batch-ref'") == 3


def test_a_bad_item_refuses_the_whole_batch_naming_it(world: SenderWorld, api: httpx.Client) -> None:
    good = {"to": "+13125550301", "body": "fine"}
    refused = _post(api, "bad", good, {"to": "+13125550302", "template_id": 999_999})
    assert refused.status_code == 422
    assert refused.json()["field"] == "body.messages.1.template_id"
    shape = _post(api, "bad-shape", good, good, {"to": "+13125550303"})  # no body, no template
    assert shape.status_code == 422
    assert "messages.2" in shape.json()["message"]
    for key in ("bad", "bad-shape"):
        first = message_key(tenant_id=world.tenant_id, idempotency_key=key, index=0)
        assert api.get(f"/v1/messages/{first}").status_code == 404  # nothing was queued


def test_send_at_defers_and_validity_period_sets_expires_at(world: SenderWorld, api: httpx.Client
                                                           ) -> None:
    send_at = datetime.now(UTC) + timedelta(hours=2)
    before = datetime.now(UTC)
    posted = _post(api, "later", {"to": "+13125550401", "body": "Your table is ready at 8",
                                  "send_at": send_at.isoformat(), "validity_period": 600},
                   {"to": "+13125550402", "body": "Paid", "validity_period": 120})
    assert posted.status_code == 202, posted.text
    later, now = posted.json()["messages"]
    assert later["state"] == "deferred"
    assert datetime.fromisoformat(later["expires_at"]) == send_at + timedelta(seconds=600)
    status = api.get(f"/v1/messages/{later['message_key']}").json()
    assert datetime.fromisoformat(status["not_before"]) == send_at
    assert status["state"] == "deferred"
    assert status["reason"].startswith("send_at until")
    expires = datetime.fromisoformat(now["expires_at"])
    assert before + timedelta(seconds=120) <= expires <= datetime.now(UTC) + timedelta(seconds=120)

    eventually(lambda: _state(api, now["message_key"], "accepted"), timeout=60)
    assert _state(api, later["message_key"], "deferred")  # not before its time
    assert world.release(send_at + timedelta(seconds=1)) == 1  # as the scheduler would then
    sent = eventually(lambda: _state(api, later["message_key"], "accepted"), timeout=60)
    assert [e["to_state"] for e in sent["events"]][:3] == ["deferred", "queued", "sending"]


def test_a_stop_blocks_a_transactional_message(world: SenderWorld, api: httpx.Client) -> None:
    world.scalar("INSERT INTO opt_outs (tenant_id, phone, source) VALUES ($1, $2, 'test')",
                 world.tenant_id, "+13125550501")
    posted = _post(api, "stopped", {"to": "+13125550501", "body": "Order shipped"})
    key = posted.json()["messages"][0]["message_key"]
    blocked = eventually(lambda: _state(api, key, "suppressed"), timeout=60)
    assert blocked["reason"] == "opted out"


def test_lookups_by_reference_phone_run_and_time_are_paged(world: SenderWorld, api: httpx.Client
                                                          ) -> None:
    since = datetime.now(UTC)
    phone = "+13125550601"
    keys = [m["message_key"] for n in range(3) for m in _post(
        api, f"lookup-{n}", {"to": phone, "body": f"Update {n}", "client_reference": "ord-9"}
    ).json()["messages"]]
    until = datetime.now(UTC) + timedelta(seconds=1)
    world.publish_to({n: f"+1312555070{n}" for n in range(5)}, run_id=4242)
    run_keys = [bulk_key(campaign_run_id=4242, recipient_id=n) for n in range(5)]
    eventually(lambda: all(api.get(f"/v1/messages/{k}").status_code == 200 for k in run_keys),
               timeout=60)

    def pages(**params: Any) -> list[str]:
        found, after = [], 0
        while True:
            page = api.get("/v1/messages", params={**params, "limit": 2, "after_id": after})
            assert page.status_code == 200, page.text
            found += [m["message_key"] for m in page.json()["messages"]]
            after = page.json()["next_after_id"]
            if after is None:
                return found

    assert pages(client_reference="ord-9") == keys
    assert pages(phone=phone) == keys
    by_run = pages(campaign_run_id=4242)
    assert sorted(by_run) == sorted(run_keys)  # each once, over three pages
    assert set(keys) <= set(pages(since=since.isoformat(), until=until.isoformat()))
    assert not set(run_keys) & set(pages(until=since.isoformat()))
    [one] = api.get("/v1/messages", params={"client_reference": "ord-9", "limit": 1}).json()["messages"]
    assert one["events"][0]["to_state"] == "queued"


def test_the_providers_raw_status_and_code_are_shown(world: SenderWorld, api: httpx.Client) -> None:
    key = _post(api, "raw", {"to": "+13125550801", "body": "Hi"}).json()["messages"][0]["message_key"]
    eventually(lambda: _state(api, key, "accepted"), timeout=60)
    world.scalar("INSERT INTO provider_receipts (provider, ref, by_ref, status, code)"
                 " VALUES ('acct', $1, true, 'failed', '30003')", key)  # as sender.settle keeps it
    status = api.get(f"/v1/messages/{key}").json()
    assert (status["provider_status"], status["provider_code"]) == ("failed", "30003")


def test_another_tenants_message_is_not_found(world: SenderWorld, api: httpx.Client) -> None:
    key = _post(api, "mine", {"to": "+13125550901", "body": "Hi",
                              "client_reference": "secret-ref"}).json()["messages"][0]["message_key"]
    other = asyncio.run(make_tenant(world.settings.database_url, prefix="other"))
    with httpx.Client(base_url=world.settings.api_public_url, timeout=10,
                      headers={"X-API-Key": other.api_key}) as theirs:
        assert theirs.get(f"/v1/messages/{key}").status_code == 404
        assert theirs.get("/v1/messages", params={"client_reference": "secret-ref"}
                          ).json()["messages"] == []
