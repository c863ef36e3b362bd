"""A poison message costs only itself: every sender lane, the receipt webhook, the DLQ replay.

Two tenants' records are written by a plain Kafka producer: next to ordinary messages, one with
a NUL in its body (PostgreSQL cannot store it), one with a lone surrogate as raw bytes (no JSON
parser reads it), one of a tenant that does not exist (the enqueue's foreign key refuses it:
the screen cannot know). The ordinary messages are sent once each; each poison one is in
``send.dlq`` alone, with a reason naming it and a payload holding only it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hexcast.testing import eventually, make_tenant
from sender.models import Lane
from tests.integration.poisonkit import NUL, SURROGATE, encode, letters, produce
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e

GHOST_TENANT = 2**40  # no such tenant


def _second_tenant(world: SenderWorld) -> int:
    return asyncio.run(make_tenant(world.settings.database_url, prefix="poison-b")).id


def _item(key: str, tenant_id: int, phone: str, body: str) -> dict[str, Any]:
    return {"message_key": key, "tenant_id": tenant_id, "phone": phone, "body": body,
            "user_id": f"user-{key}"}


def _record(lane: Lane, *items: dict[str, Any]) -> bytes:
    return encode({"v": 1, "lane": lane.value, "items": list(items),
                   "created_at": datetime.now(UTC).isoformat()})


def _started(world: SenderWorld) -> str:
    sim = world.sim("provider-sim")
    world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
        {"name": "acct", "url": sim, "token": "sim-token"})})
    return sim


@pytest.mark.parametrize("lane", [Lane.OTP, Lane.GEO, Lane.BULK], ids=lambda lane: lane.value)
def test_a_poison_message_costs_only_itself(broker_url: str, tmp_path: Path, lane: Lane) -> None:
    with sender_world(broker_url, tmp_path) as world:
        sim = _started(world)
        a, b = world.tenant_id, _second_tenant(world)
        k = {name: f"poison-{lane.value}-{name}" for name in
             ("good-a", "nul", "good-b", "surrogate", "ghost", "good-b2")}
        world.consent(["+13125550001", "+13125550002"])
        world.consent(["+13125550003", "+13125550004", "+13125550005"], tenant_id=b)
        produce(world.settings, lane.topic, [
            ("a", _record(lane, _item(k["good-a"], a, "+13125550001", "hello a"),
                          _item(k["nul"], a, "+13125550002", f"bad{NUL}body"))),
            ("b", _record(lane, _item(k["good-b"], b, "+13125550003", "hello b"),
                          _item(k["surrogate"], b, "+13125550004", f"bad{SURROGATE}body"),
                          _item(k["ghost"], GHOST_TENANT, "+13125550005", "nobody's"))),
            ("b2", _record(lane, _item(k["good-b2"], b, "+13125550005", "hello again b"))),
        ])
        world.sender(f"sender-{lane.value}", lane)  # takes the records that arrived together

        good = {k["good-a"], k["good-b"], k["good-b2"]}
        eventually(lambda: good <= {i["client_ref"] for i in ledger(sim)} or None, timeout=90)
        dead = {d["record"]["items"][0]["message_key"]: d for d in
                letters(world.settings, 3, source=world.settings.topic(lane.topic))}
        assert set(dead) == {k["nul"], k["surrogate"], k["ghost"]}
        for key, what in (("nul", "NUL"), ("surrogate", "lone surrogate"), ("ghost", "foreign key")):
            letter = dead[k[key]]
            assert k[key] in letter["reason"]
            assert what in letter["reason"]
            assert len(letter["record"]["items"]) == 1  # only that message is replayed
        for key in good:
            assert (world.message(key) or {}).get("state") == "accepted", key
        for key in ("nul", "surrogate", "ghost"):
            assert world.message(k[key]) is None
        refs = [i["client_ref"] for i in ledger(sim)]
        assert sorted(refs) == sorted(good)  # each sent once, nothing else sent


def test_the_receipt_webhook_applies_the_good_receipts(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path) as world:
        api = world.api()
        a, b = world.tenant_id, _second_tenant(world)
        keys = {"a": f"rcpt-a-{uuid.uuid4().hex[:6]}", "b": f"rcpt-b-{uuid.uuid4().hex[:6]}"}

        world.scalar("INSERT INTO messages (message_key, tenant_id, lane, phone, body, state,"
                     " client_ref, provider_message_id) SELECT k, t, 'otp', '+13125550009', 'code',"
                     " 'accepted', k, 'pm-' || k FROM unnest($1::text[], $2::bigint[]) AS x(k, t)",
                     [keys["a"], keys["b"]], [a, b])
        at = datetime.now(UTC).isoformat()

        def receipt(ref: str, status: str = "delivered", **extra: Any) -> dict[str, Any]:
            return {"provider_message_id": f"pm-{ref}", "client_ref": ref, "status": status,
                    "at": at, **extra}

        body = json.dumps({"receipts": [
            receipt(keys["a"]), receipt(f"x{NUL}y"), receipt(keys["b"], "failed", error="gone"),
            receipt("rcpt-err", "failed", error="bad\ud800"), {"client_ref": "rcpt-half"},
        ]})
        response = httpx.post(f"{api}/v1/webhooks/dlr", content=body, timeout=10, headers={
            "Authorization": f"Bearer {world.settings.dlr_webhook_token}",
            "Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert response.json() == {"received": 5, "applied": 2}
        assert (world.message(keys["a"]) or {})["state"] == "delivered"
        assert (world.message(keys["b"]) or {})["state"] == "failed"
        dead = letters(world.settings, 3, source="POST /v1/webhooks/dlr")
        reasons = [d["reason"] for d in dead]
        assert any("x\\x00y" in r and "NUL" in r for r in reasons)
        assert any("rcpt-err" in r and "lone surrogate" in r for r in reasons)
        assert any("rcpt-half" in r and "status" in r for r in reasons)
        assert all(len(d["record"]["receipts"]) == 1 for d in dead)


def test_replay_sends_a_letters_good_messages_past_bad_letters(broker_url: str, tmp_path: Path) -> None:
    """Letters written before messages were dead-lettered one by one hold whole records (with
    a poison message among good ones); a record that is not a letter may be on the topic too.
    Replay sends every good message, and only those."""
    with sender_world(broker_url, tmp_path) as world:
        sim = _started(world)
        a, b = world.tenant_id, _second_tenant(world)
        good = [f"replay-good-{n}" for n in range(3)]
        old = _record(Lane.OTP, _item(good[0], a, "+13125550001", "code a"),
                      _item("replay-nul", b, "+13125550002", f"x{NUL}"),
                      _item(good[1], b, "+13125550003", "code b"))
        letter = {"v": 1, "source_topic": world.settings.topic("send.otp"), "key": "a",
                  "reason": "an old letter", "payload": old.decode(errors="replace"),
                  "at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
        other = {**letter, "payload": _record(Lane.OTP, _item(good[2], b, "+13125550004",
                                                              "code b2")).decode()}
        produce(world.settings, "send.dlq", [("a", json.dumps(letter).encode()),
                                             ("junk", b"\xff not a letter"),
                                             ("b", json.dumps(other).encode())])
        world.sender("sender-otp", Lane.OTP)
        assert "replayed: 3 messages" in world.cli("dlq", "replay", "--reason", "fixed", "--yes")
        assert "not a dead letter" in world.cli("dlq", "list")
        eventually(lambda: set(good) <= {i["client_ref"] for i in ledger(sim)} or None, timeout=90)
        assert world.message("replay-nul") is None
        assert sorted(i["client_ref"] for i in ledger(sim)) == sorted(good)
