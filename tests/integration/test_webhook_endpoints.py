"""Tenant webhook endpoints through the real api (``webhook_allow_private_urls`` off, as in
production): SSRF refusals, the secret shown once, rotation, attempts, replay, batches; and
the outbox triggers: nothing written without a subscriber."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from hexcast.devstack.procs import ChildProcess
from hexcast.testing import eventually, make_tenant
from sender.replies import take_reply
from tests.integration.apiproc import RunningApi, running_api
from tests.integration.webhookkit import (
    Receiver,
    add_endpoint,
    attempts_logged,
    deliver,
    new_messages,
    tenant_with_endpoint,
    webhooks_worker,
)


@pytest.fixture(scope="module")
def api(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[RunningApi]:
    with running_api(broker_url, database_url, tmp_path_factory.mktemp("whapi"),
                     webhook_allow_private_urls=False) as running:
        yield running


@pytest.fixture
def client(api: RunningApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers={"X-API-Key": api.key}, timeout=10) as c:
        yield c


@pytest.fixture
def worker(database_url: str, tmp_path: Path) -> Iterator[ChildProcess]:
    child = webhooks_worker(database_url, tmp_path / "logs")
    yield child
    child.terminate()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "https://10.1.2.3/hook", "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/", "http://224.0.0.1/",
    "http://[::ffff:192.168.0.1]/", "http://localhost/hook", "ftp://93.184.216.34/",
])
def test_private_or_odd_urls_are_refused(client: httpx.Client, url: str) -> None:
    answer = client.post("/v1/webhooks/endpoints",
                         json={"url": url, "event_types": ["message.delivered"]})
    assert answer.status_code == 422, answer.text


def test_secret_is_shown_on_create_and_rotate_only(client: httpx.Client) -> None:
    created = client.post("/v1/webhooks/endpoints", json={
        "url": "https://93.184.216.34/hook", "event_types": ["message.delivered"] * 2,
        "batch_size": 50})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["message.delivered"]
    path = f"/v1/webhooks/endpoints/{body['id']}"
    assert "secret" not in client.get(path).json()
    assert all("secret" not in e for e in client.get("/v1/webhooks/endpoints").json())
    rotated = client.post(f"{path}/rotate-secret").json()
    assert rotated["secret"] != body["secret"]
    assert rotated["old_secret_until"] is not None
    patched = client.patch(path, json={"description": "orders", "enabled": False}).json()
    assert (patched["description"], patched["enabled"]) == ("orders", False)
    assert client.patch(path, json={"url": "http://127.0.0.1/"}).status_code == 422
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404


async def test_rotation_signs_with_both_secrets_then_attempts_and_replay(
        api: RunningApi, database_url: str, worker: ChildProcess) -> None:
    receiver = Receiver()
    conn = await asyncpg.connect(database_url)
    client = httpx.AsyncClient(base_url=api.url, headers={"X-API-Key": api.key}, timeout=10)
    try:
        endpoint_id, old = await add_endpoint(conn, tenant_id=api.tenant_id, url=receiver.url,
                                              types=["message.delivered"])
        path = f"/v1/webhooks/endpoints/{endpoint_id}"
        new = (await client.post(f"{path}/rotate-secret")).json()["secret"]
        start = datetime.now(UTC) - timedelta(seconds=1)
        await deliver(conn, await new_messages(conn, tenant_id=api.tenant_id, prefix="whrot-", n=2))
        eventually(lambda: len(receiver.ok()) >= 2 or None, timeout=30)
        first = receiver.ok()[0]
        await attempts_logged(conn, endpoint_id=endpoint_id, n=2)
        page = (await client.get(f"{path}/attempts", params={"limit": 1})).json()
        older = (await client.get(f"{path}/attempts",
                                  params={"limit": 1, "before": page["next_before"]})).json()
        replayed = (await client.post(f"{path}/replay", json={
            "since": start.isoformat(), "until": datetime.now(UTC).isoformat()})).json()
        eventually(lambda: len(receiver.ok()) >= 4 or None, timeout=30)
    finally:
        await client.aclose()
        await conn.close()
        receiver.close()
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(first.body, first.headers)["type"] == "message.delivered"
    assert page["items"][0]["status"] == 200
    assert older["items"][0]["id"] < page["items"][0]["id"]
    assert replayed == {"requeued": 2}
    ids = [s.headers["webhook-id"] for s in receiver.ok()]
    assert len(ids) == 4
    assert sorted(set(ids)) == sorted(set(ids[:2]))


async def test_batches_carry_each_event_id(database_url: str, worker: ChildProcess) -> None:
    receiver = Receiver()
    conn = await asyncpg.connect(database_url)
    try:
        tenant, _, secret = await tenant_with_endpoint(
            conn, prefix="whbatch", url=receiver.url, types=["message.accepted"], batch_size=100)
        ids = await new_messages(conn, tenant_id=tenant.id, prefix="whb-", n=150)
        await deliver(conn, ids, status=None)
        eventually(lambda: sum(len(json.loads(s.body)) for s in receiver.ok()) >= 150 or None,
                   timeout=30)
    finally:
        await conn.close()
        receiver.close()
    batches = [Webhook(secret).verify(s.body, s.headers) for s in receiver.ok()]
    assert all(s.headers["webhook-id"].startswith("batch_") for s in receiver.ok())
    assert max(len(b) for b in batches) == 100
    events = [e for b in batches for e in b]
    assert {e["data"]["message_key"] for e in events} == set(ids)
    assert len({e["id"] for e in events}) == 150


async def test_no_subscriber_writes_no_outbox_rows(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        quiet = await make_tenant(conn, prefix="whquiet")
        other = await make_tenant(conn, prefix="whother")  # subscribed to other events only
        await add_endpoint(conn, tenant_id=other.id, url="http://127.0.0.1:9/",
                           types=["optout.created", "inbound.received"])
        for tenant in (quiet, other):
            ids = await new_messages(conn, tenant_id=tenant.id, prefix=f"whq{tenant.id}-", n=2000)
            await deliver(conn, ids)
        await conn.execute("INSERT INTO opt_outs (tenant_id, phone, source) VALUES"
                           " ($1, '+13125550001', 'test'), ($2, '+13125550001', 'test')",
                           quiet.id, other.id)
        await conn.execute("INSERT INTO inbound_messages (tenant_id, phone, body, kind)"
                           " VALUES ($1, '+13125550002', 'hello', 'other')", other.id)
        rows = await conn.fetch("SELECT tenant_id, type FROM webhook_outbox"
                                " WHERE tenant_id = ANY($1::bigint[]) ORDER BY id",
                                [quiet.id, other.id])
    finally:
        await conn.close()
    assert [(r["tenant_id"], r["type"]) for r in rows] == [
        (other.id, "optout.created"), (other.id, "inbound.received")]


def test_campaign_finished_is_written_once_when_the_run_ends(database_url: str) -> None:
    """Not at release (messages are still being sent then), but when the scheduler records the
    run's end, with its counts; recording it again writes nothing."""
    async def scenario() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            tenant = await make_tenant(conn, prefix="whrun")
            await add_endpoint(conn, tenant_id=tenant.id, url="http://127.0.0.1:9/",
                               types=["campaign.finished"])
            campaign = await conn.fetchval(
                "INSERT INTO campaigns (tenant_id, name, body, segment, run_at, time_zone,"
                " time_mode) VALUES ($1, 'c', 'hi', '{}', now(), 'UTC', 'fixed') RETURNING id",
                tenant.id)
            run = await conn.fetchval(
                "INSERT INTO campaign_runs (campaign_id, tenant_id, scheduled_for, first_fire_at)"
                " VALUES ($1, $2, now(), now()) RETURNING id", campaign, tenant.id)
            await conn.execute("UPDATE campaign_runs SET released_at = now() WHERE id = $1", run)
            for _ in range(2):
                await conn.execute(
                    "UPDATE campaign_runs SET state = 'finished', counts = '{\"delivered\": 2}',"
                    " finished_at = COALESCE(finished_at, now()) WHERE id = $1", run)
            rows = await conn.fetch("SELECT type, payload FROM webhook_outbox WHERE tenant_id = $1",
                                    tenant.id)
            return [f"{r['type']}:{json.loads(r['payload'])['data']['campaign_run_id'] == run}:"
                    f"{json.loads(r['payload'])['data']['counts']}" for r in rows]
        finally:
            await conn.close()

    assert asyncio.run(scenario()) == ["campaign.finished:True:{'delivered': 2}"]


async def test_a_reply_is_forwarded_with_the_message_it_answers(database_url: str) -> None:
    """``inbound.received`` carries the reply and the key of the last message the tenant sent
    that number (``reply_to``), written with the reply itself."""
    conn = await asyncpg.connect(database_url)
    try:
        tenant, _, _ = await tenant_with_endpoint(conn, prefix="whreply", url="http://127.0.0.1:9/",
                                                  types=["inbound.received"])
        ids = await new_messages(conn, tenant_id=tenant.id, prefix=f"whr{tenant.id}-", n=2)
        await deliver(conn, ids)
        phone = await conn.fetchval("SELECT phone FROM messages WHERE id = $1", max(ids.values()))
        taken = await take_reply(conn, tenant_id=tenant.id, phone=phone,
                                 body="is the sale on sunday too?", provider_ref="reply-1")
        row = await conn.fetchrow("SELECT type, payload FROM webhook_outbox WHERE tenant_id = $1",
                                  tenant.id)
    finally:
        await conn.close()
    assert taken is not None
    assert taken.reply_to == max(ids, key=lambda k: ids[k])
    assert row is not None
    assert row["type"] == "inbound.received"
    data = json.loads(row["payload"])["data"]
    assert (data["phone"], data["body"], data["reply_to"]) == (
        phone, "is the sale on sunday too?", taken.reply_to)
