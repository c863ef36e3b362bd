"""Operators requeue dead letters and resolve ``unknown`` messages through the admin API and the
CLI, each action in the operator audit log: a real api, sender, provider-sim, PostgreSQL,
Redis and broker.

A provider that fails every call dead-letters a bulk record; ``GET /v1/admin/dlq`` lists it
with its reason and lane; once the provider is back, ``POST /v1/admin/dlq/requeue`` by lane
sends its messages (the provider's ledger has them) and audits the letter; a second requeue by
lane finds nothing left, by offset queues nothing (no message is failed any more), and an offset
that is no letter is a 422. ``hexcast dlq replay`` asks first and audits as ``cli:<user>``.

An ``unknown`` message is resolved as delivered with the provider's status: its state and
history change, the tenant's webhook event is in the outbox, the audit row names the actor;
resolving it again, or a message that is not unknown, is a 409. ``hexcast unknown resolve``
asks first and audits. Tenant keys are refused on every one of these routes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from hexcast.testing import OPERATOR_TOKEN, eventually
from sender import repo
from sender.keys import bulk_key
from sender.models import MessageState
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
PHONES = {n: f"+1651555{n:04d}" for n in range(2)}  # this file's prefix: +1651555


class World:
    def __init__(self, world: SenderWorld, sim: str, api: str) -> None:
        self.world, self.sim, self.api = world, sim, api

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", params=params, headers=OPERATOR, timeout=30)

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] = OPERATOR
             ) -> httpx.Response:
        return httpx.post(f"{self.api}{path}", json=body, headers=headers, timeout=60)

    def audit(self, action: str) -> list[dict[str, Any]]:
        answer = self.get("/v1/admin/audit", action=action, limit=500)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def cli(self, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hexcast", *args], input=answer,
                              capture_output=True, text=True, timeout=60,
                              env={**self.world.settings.to_env(), "NO_COLOR": "1"})

    def sql(self, query: str, *args: object) -> Any:
        async def run() -> Any:
            conn = await asyncpg.connect(self.world.settings.database_url)
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def env(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with sender_world(broker_url, tmp_path_factory.mktemp("opsdlq"), provider_max_attempts=2,
                      sender_breaker_failures=50) as world:
        sim = world.sim("provider-sim", sim_mode="single")
        httpx.post(f"{sim}/control", json={"fail_rate": 1.0}).raise_for_status()
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "flaky", "url": sim, "token": "sim-token", "mode": "single"})})
        api = world.api()
        world.sender("sender-bulk")
        yield World(world, sim, api)


def test_dead_letters_are_requeued_through_the_api_and_the_cli(env: World) -> None:
    env.world.publish_to(PHONES, run_id=41)
    keys = [bulk_key(campaign_run_id=41, recipient_id=n) for n in PHONES]
    eventually(lambda: all((env.world.message(k) or {}).get("state") == "failed" for k in keys)
               or None, timeout=60)
    letters = eventually(lambda: env.get("/v1/admin/dlq").json() or None, timeout=30)
    assert all(d["lane"] == "bulk" and not d["replayed"] for d in letters)
    assert "gave up after 2 attempts" in letters[0]["reason"]
    tenant = {"X-API-Key": env.world.api_key}
    assert env.post("/v1/admin/dlq/requeue", {"lane": "bulk", "reason": "x"}, tenant).status_code == 401
    assert httpx.get(f"{env.api}/v1/admin/dlq", headers=tenant, timeout=30).status_code == 401

    httpx.post(f"{env.sim}/control", json={"fail_rate": 0.0}).raise_for_status()
    done = env.post("/v1/admin/dlq/requeue", {"lane": "bulk", "reason": "carrier back",
                                              "actor": "ops:dee"})
    assert done.status_code == 200, done.text
    assert done.json()["messages"] == 2
    assert sum(d["requeued"] for d in done.json()["letters"]) == 2
    eventually(lambda: all((env.world.message(k) or {}).get("state") == "accepted" for k in keys)
               or None, timeout=60)
    assert sorted(i["to"] for i in ledger(env.sim)) == sorted(PHONES.values())
    assert all(d["replayed"] for d in env.get("/v1/admin/dlq").json())
    offsets = [d["offset"] for d in done.json()["letters"]]
    audited = [e for e in env.audit("dlq.") if e["actor"] == "ops:dee"]
    assert sorted(e["target"] for e in audited) == sorted(f"dlq:{o}" for o in offsets)
    assert {(e["action"], e["reason"]) for e in audited} == {("dlq.requeue", "carrier back")}

    again = env.post("/v1/admin/dlq/requeue", {"lane": "bulk", "reason": "again"})
    assert again.json() == {"messages": 0, "letters": []}  # every letter was requeued
    by_offset = env.post("/v1/admin/dlq/requeue", {"offsets": offsets[:1], "reason": "check"})
    assert [d["requeued"] for d in by_offset.json()["letters"]] == [0]  # none failed any more
    for body in ({"offsets": [10**9], "reason": "x"}, {"reason": "x"},
                 {"offsets": [0], "lane": "bulk", "reason": "x"}, {"lane": "bulk"}):
        assert env.post("/v1/admin/dlq/requeue", body).status_code == 422, body

    declined = env.cli("dlq", "replay", str(offsets[0]), "--reason", "cli check", answer="n\n")
    assert declined.returncode == 1
    assert not [e for e in env.audit("dlq.") if e["reason"] == "cli check"]
    replayed = env.cli("dlq", "replay", str(offsets[0]), "--reason", "cli check", "--yes")
    assert replayed.returncode == 0, replayed.stderr
    [entry] = [e for e in env.audit("dlq.") if e["reason"] == "cli check"]
    assert entry["actor"].startswith("cli:")
    assert entry["target"] == f"dlq:{offsets[0]}"


def _unknown(env: World, *names: str) -> list[str]:
    """Messages whose provider call was cut off (``sending`` → ``unknown``), as the sender
    leaves them; their keys."""
    async def run() -> list[str]:
        conn = await asyncpg.connect(env.world.settings.database_url)
        try:
            rows = await conn.fetch(
                "INSERT INTO messages (message_key, client_ref, tenant_id, lane, phone, body, provider)"
                " SELECT k, k, $1, 'bulk', '+16515559' || lpad(i::text, 3, '0'), 'hi', 'flaky'"
                " FROM unnest($2::text[]) WITH ORDINALITY AS u(k, i) RETURNING id, message_key",
                env.world.tenant_id, list(names))
            ids = [r["id"] for r in rows]
            await repo.transition(conn, ids=ids, to=MessageState.SENDING, reason=None, actor="test",
                                  from_states=[MessageState.QUEUED], attempts=1)
            await repo.transition(conn, ids=ids, to=MessageState.UNKNOWN, actor="test",
                                  from_states=[MessageState.SENDING], reason="connection lost")
        finally:
            await conn.close()
        return [r["message_key"] for r in rows]

    return asyncio.run(run())


def test_unknown_messages_are_resolved_with_their_webhook_event(env: World) -> None:
    hook = env.post("/v1/webhooks/endpoints", {"url": "http://127.0.0.1:9/hook", "event_types": [
        "message.delivered", "message.failed"]}, {"X-API-Key": env.world.api_key})
    assert hook.status_code == 201, hook.text
    first, second = _unknown(env, "ops-unknown-1", "ops-unknown-2")
    listed = {m["message_key"]: m for m in env.get("/v1/admin/messages/unknown").json()}
    assert listed[first]["reason"] == "connection lost"
    assert listed[first]["provider"] == "flaky"
    tenant = {"X-API-Key": env.world.api_key}
    body = {"state": "delivered", "reason": "DLR in the portal", "provider_status": "DELIVRD",
            "actor": "ops:eve"}
    assert env.post(f"/v1/admin/messages/{first}/resolve", body, tenant).status_code == 401

    done = env.post(f"/v1/admin/messages/{first}/resolve", body)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "delivered"
    message = env.world.message(first) or {}
    assert message["state"] == "delivered"
    assert message["history"][-2:] == ["unknown", "delivered"]
    [event] = env.sql("SELECT type FROM webhook_outbox WHERE subject = $1", first)
    assert event["type"] == "message.delivered"
    [entry] = [e for e in env.audit("message.resolve") if e["target"] == f"message:{first}"]
    assert (entry["actor"], entry["reason"]) == ("ops:eve", "DLR in the portal")
    assert entry["detail"] == {"state": "delivered", "tenant_id": env.world.tenant_id,
                               "provider_status": "DELIVRD"}
    assert env.post(f"/v1/admin/messages/{first}/resolve", body).status_code == 409
    assert env.post("/v1/admin/messages/no-such-key/resolve", body).status_code == 404
    assert env.post(f"/v1/admin/messages/{second}/resolve", {**body, "state": "sent"}
                    ).status_code == 422

    asked = ("unknown", "resolve", second, "--as", "failed", "--reason", "not in its records")
    assert env.cli(*asked, answer="n\n").returncode == 1
    assert (env.world.message(second) or {})["state"] == "unknown"
    resolved = env.cli(*asked, answer="y\n")
    assert resolved.returncode == 0, resolved.stderr
    assert (env.world.message(second) or {})["state"] == "failed"
    [entry] = [e for e in env.audit("message.resolve") if e["target"] == f"message:{second}"]
    assert entry["actor"].startswith("cli:")
    assert [e["type"] for e in env.sql("SELECT type FROM webhook_outbox WHERE subject = $1", second)
            ] == ["message.failed"]
