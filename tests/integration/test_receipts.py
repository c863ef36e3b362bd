"""Delivery receipts through the real api webhook: applied once, in any order, final stays final.

Both tests share one api and bulk sender; each has a tenant and a simulator of its own, reached
by a route that serves only that tenant."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hexcast.testing import eventually, fetch_rows, make_tenant
from sender.keys import bulk_key
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def worlds(broker_url: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[dict[str, tuple[SenderWorld, str]]]:
    """For ``batch`` and ``single``: the world as that test's tenant, and its simulator's URL.
    ``batch`` posts no receipts (the test posts them); ``single`` is Twilio-like, one status
    callback per message."""
    with sender_world(broker_url, tmp_path_factory.mktemp("logs")) as world:
        tenants = {name: asyncio.run(make_tenant(world.settings.database_url, prefix="receipts"))
                   for name in ("batch", "single")}
        world.api()  # first: provider-sim posts its callbacks to this api
        sims = {"batch": world.sim("sim-batch", sim_receipts=False),
                "single": world.sim("sim-single", sim_mode="single", sim_dlr_delay_s=0.1)}
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sims["batch"], "token": "sim-token",
             "tenants": [tenants["batch"].id]},
            {"name": "twilio-like", "url": sims["single"], "token": "sim-token", "mode": "single",
             "tenants": [tenants["single"].id]})})
        world.sender("sender-bulk")
        yield {name: (SenderWorld(world.settings, world.log_dir, (t.id, t.api_key)), sims[name])
               for name, t in tenants.items()}


def _states(world: SenderWorld) -> dict[str, int]:
    """The world's tenant's messages by state."""
    rows = asyncio.run(fetch_rows(
        world.settings.database_url,
        "SELECT state::text, count(*) AS n FROM messages WHERE tenant_id = $1 GROUP BY 1",
        world.tenant_id))
    return {r["state"]: r["n"] for r in rows}


def _post(world: SenderWorld, *receipts: tuple[str, str]) -> dict[str, Any]:
    body = {"receipts": [{"provider_message_id": f"pm-{ref}", "client_ref": ref, "status": status,
                          "error": None if status == "delivered" else "handset off",
                          "at": datetime.now(UTC).isoformat()} for ref, status in receipts]}
    response = httpx.post(f"{world.settings.api_public_url}/v1/webhooks/dlr", json=body,
                          headers={"Authorization": f"Bearer {world.settings.dlr_webhook_token}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_duplicate_and_out_of_order_receipts_apply_once(
    worlds: dict[str, tuple[SenderWorld, str]],
) -> None:
    world, sim = worlds["batch"]  # its simulator posts no receipts: the test posts them
    world.publish(3, run_id=51)
    eventually(lambda: _states(world) == {"accepted": 3} or None, timeout=60)
    a, b, c = (bulk_key(campaign_run_id=51, recipient_id=n) for n in range(3))
    assert {i["client_ref"] for i in ledger(sim)} == {a, b, c}

    first = _post(world, (a, "delivered"), (a, "delivered"), (b, "failed"), ("nobody", "delivered"))
    assert (first["received"], first["applied"]) == (4, 2)
    assert _post(world, (a, "delivered"), (b, "failed"))["applied"] == 0  # provider retried
    assert _post(world, (a, "failed"), (b, "delivered"))["applied"] == 0  # late, contrary
    assert _post(world, (c, "accepted"))["applied"] == 0  # not a final receipt status
    assert _states(world) == {"delivered": 1, "failed": 1, "accepted": 1}
    history_a = (world.message(a) or {})["history"]
    assert history_a == ["queued", "sending", "accepted", "delivered"]
    history_b = world.message(b) or {}
    assert history_b["history"][-1] == "failed"
    assert history_b["reason"] == "handset off"
    assert history_b["history"].count("failed") == 1


def _callback(world: SenderWorld, form: dict[str, str], token: str | None = None) -> httpx.Response:
    token = token or world.settings.dlr_webhook_token
    return httpx.post(f"{world.settings.api_public_url}/v1/webhooks/status", data=form,
                      headers={"Authorization": f"Bearer {token}"})


def test_single_provider_status_callbacks_are_normalised(
    worlds: dict[str, tuple[SenderWorld, str]],
) -> None:
    """A Twilio-like provider reports by its own message id, one form post per message."""
    world, sim = worlds["single"]
    world.publish(3, run_id=61)
    eventually(lambda: _states(world) == {"delivered": 3} or None, timeout=60)
    httpx.post(f"{sim}/control", json={"deliver_fail_rate": 1.0}).raise_for_status()
    world.publish(2, run_id=62, first=10)
    eventually(lambda: _states(world) == {"delivered": 3, "failed": 2} or None, timeout=60)
    failed = world.message(bulk_key(campaign_run_id=62, recipient_id=10)) or {}
    assert failed["reason"] == "provider error 30003"
    assert failed["history"] == ["queued", "sending", "accepted", "failed"]

    done = next(i for i in ledger(sim) if i["client_ref"] == bulk_key(campaign_run_id=61,
                                                                       recipient_id=0))
    sid = done["provider_message_id"]
    for form in ({"MessageSid": sid, "MessageStatus": "delivered"},   # a retried callback
                 {"MessageSid": sid, "MessageStatus": "undelivered"},  # late, contrary
                 {"MessageSid": sid, "MessageStatus": "sent"},         # not final
                 {"MessageSid": "SMnobody", "MessageStatus": "delivered"}):
        response = _callback(world, form)
        assert response.status_code == 200, response.text
        assert response.json()["applied"] == 0, form
    assert _states(world) == {"delivered": 3, "failed": 2}
    assert _callback(world, {"MessageSid": sid, "MessageStatus": "delivered"},
                     token="wrong").status_code == 401
    bad = _callback(world, {"MessageSid": sid, "MessageStatus": "lost"})
    assert bad.status_code == 422
    assert "MessageStatus" in bad.text
