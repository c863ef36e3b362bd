"""Opt-out, consent and inbound keywords through the real API, broker, sender and provider-sim."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sender.keys import bulk_key
from sender.models import Lane
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world
from tests.integration.stack import eventually

pytestmark = pytest.mark.e2e

TOTAL = 400
TARGET = 350  # the recipient who replies STOP while their bulk message is still queued


def _reply(world: SenderWorld, phone: str, body: str, ref: str) -> dict[str, Any]:
    response = httpx.post(
        f"{world.settings.api_public_url}/v1/webhooks/inbound/{world.tenant_id}",
        json={"from": phone, "body": body, "id": ref},
        headers={"Authorization": f"Bearer {world.settings.dlr_webhook_token}"},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _to(items: list[dict[str, Any]], phone: str) -> list[dict[str, Any]]:
    return [i for i in items if i["to"] == phone]


def test_stop_suppresses_queued_bulk_and_confirms_once(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path, sender_bulk_share=0.5) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": "sim-token", "rate_per_s": 100.0})})
        api = httpx.Client(base_url=world.api(), headers={"X-API-Key": world.api_key}, timeout=10)
        world.sender("sender-bulk", Lane.BULK)
        world.sender("sender-otp", Lane.OTP)
        target = f"+1312{TARGET:07d}"
        world.publish(TOTAL, run_id=5)
        eventually(lambda: len(ledger(sim)) >= 50 or None, timeout=60)  # bulk is under way

        stop = _reply(world, target, "  stop ", "in-1")
        stopped_at = time.time()
        assert stop["kind"] == "opt_out"
        assert _reply(world, target, "  stop ", "in-1")["duplicate"]  # provider retried
        assert _reply(world, "+14155550000", "Please STOP sending these", "in-2")["flagged"]
        assert _reply(world, "+14155550001", "help", "in-3")["kind"] == "help"

        eventually(lambda: world.states().get("accepted", 0) >= TOTAL - 1 + 2 or None, timeout=90)
        items = ledger(sim)
        late = [i for i in _to(items, target)
                if datetime.fromisoformat(i["accepted_at"]).timestamp() > stopped_at
                and i["body"].startswith("hello")]
        assert late == []
        confirmations = [i for i in _to(items, target) if "unsubscribed" in i["body"]]
        assert len(confirmations) == 1
        assert _to(items, "+14155550000") == []  # free text: flagged, no auto reply
        assert len(_to(items, "+14155550001")) == 1  # one help answer
        history = api.get(f"/v1/messages/{bulk_key(campaign_run_id=5, recipient_id=TARGET)}")
        assert history.json()["state"] == "suppressed"
        assert history.json()["reason"] == "opted out"
        metrics = api.get("/metrics", headers={
            "Authorization": f"Bearer {world.settings.operator_token}"}).text
        assert 'hexcast_messages{lane="bulk",state="suppressed"} 1' in metrics
        assert "hexcast_optout_to_suppression_seconds_count 1" in metrics

        # OTPs respect the tenant's opt-out; marketing needs consent; START opts back in.
        otp = api.post("/v1/messages/otp", headers={"Idempotency-Key": "k1"},
                       json={"phone": target, "body": "code 1"})
        assert otp.status_code == 202
        world.publish(1, run_id=6, first=TOTAL + 10, consent=False)
        key = otp.json()["message_key"]
        no_consent = bulk_key(campaign_run_id=6, recipient_id=TOTAL + 10)
        eventually(lambda: _state(api, key) == "suppressed" or None, timeout=60)
        eventually(lambda: _state(api, no_consent) == "suppressed" or None, timeout=60)
        assert api.get(f"/v1/messages/{no_consent}").json()["reason"] == "no marketing consent"
        _reply(world, target, "START", "in-4")
        otp2 = api.post("/v1/messages/otp", headers={"Idempotency-Key": "k2"},
                        json={"phone": target, "body": "code 2"})
        eventually(lambda: _state(api, otp2.json()["message_key"]) == "accepted" or None, timeout=60)


        # Links become tracked short links; prefetchers are redirected but not counted.
        world.publish_to({900: "+13125550900"}, run_id=7, body="Deals at https://shop.example/d?x={n}.")
        sent = eventually(lambda: _to(ledger(sim), "+13125550900"), timeout=60)[0]["body"]
        short = sent.split(" at ", 1)[1].rstrip(".")
        assert short.startswith(f"{world.settings.api_public_url}/r/")
        for agent in ("Slackbot-LinkExpanding 1.0", "Mozilla/5.0 (iPhone) Mobile Safari/604.1"):
            hop = httpx.get(short, headers={"User-Agent": agent}, follow_redirects=False)
            assert hop.status_code == 302
            assert hop.headers["location"] == "https://shop.example/d?x=900"
        assert world.scalar("SELECT count(*) FROM link_clicks WHERE NOT bot") == 1
        assert world.scalar("SELECT count(*) FROM link_clicks WHERE bot") == 1
        assert httpx.get(f"{world.settings.api_public_url}/r/nope1234").status_code == 404
        _otp_bad_input(api)


def _otp_bad_input(api: httpx.Client) -> None:
    ok = {"phone": "+14155550100", "body": "code"}
    missing = api.post("/v1/messages/otp", json=ok)
    assert missing.status_code == 422
    assert "Idempotency-Key" in missing.text
    for body, field in (({**ok, "phone": "4155550100"}, "phone"), ({**ok, "ttl_s": 0}, "ttl_s"),
                        ({**ok, "body": "x" * 1000}, "body"), ({**ok, "extra": 1}, "extra")):
        response = api.post("/v1/messages/otp", json=body, headers={"Idempotency-Key": "bad"})
        assert response.status_code == 422, response.text
        assert field in response.text
        if len(body["body"]) == 1000:  # a valid length, but 7 segments: the tenant allows 6
            assert "this tenant allows 6" in response.text
    unauthorised = httpx.post(f"{api.base_url}/v1/webhooks/inbound/1",
                              json={"from": "+14155550100", "body": "STOP"})
    assert unauthorised.status_code == 401


def _state(api: httpx.Client, key: str) -> str | None:
    response = api.get(f"/v1/messages/{key}")
    return str(response.json()["state"]) if response.status_code == 200 else None
