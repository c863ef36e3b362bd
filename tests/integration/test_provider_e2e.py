"""Every provider kind end to end: a bulk chunk and OTPs through the real sender process to the
simulator speaking that provider's API, and its signed delivery callbacks through the api's
``/v1/webhooks/providers/{route}`` back to ``delivered``; each recipient once in the ledger."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from hexcast.devstack.procs import free_port
from hexcast.testing import eventually
from providersim.dialects.telnyx import public_key
from sender.models import Lane
from tests.integration.senderkit import SenderWorld, ledger, sender_world, sim_stats

ACCOUNT, TOKEN, SIGNING = "AC0123456789abcdef0123456789abcdef", "route-token", "route-signing"
KINDS = ["twilio", "vonage", "plivo", "sinch", "telnyx"]


def _route(kind: str, sim: str, api: str) -> dict[str, Any]:
    """The route as an operator would write it for this provider (here: at the simulator)."""
    route: dict[str, Any] = {
        "name": f"{kind}-route", "kind": kind, "url": sim, "token": TOKEN, "account": ACCOUNT,
        "sender_id": "+13125550100", "rate_per_s": 2000.0,
        "callback_url": f"{api}/v1/webhooks/providers/{kind}-route"}
    if kind in ("vonage", "sinch"):
        route["webhook_key"] = SIGNING  # their callbacks' shared signature secret
    if kind == "telnyx":
        route["webhook_key"] = public_key(SIGNING)  # Ed25519: the simulator signs, we verify
    return route


def _stack(world: SenderWorld, *kinds: str, weights: tuple[int, ...] = (1000, 1),
           tenant_senders: bool = False, **sim: object) -> list[str]:
    """The api, one simulator per kind (in that dialect) and the routes to them (the first
    kind the primary); returns the simulators' URLs."""
    port = free_port()  # the api needs the routes, a route its simulator, a simulator the api
    api = f"http://127.0.0.1:{port}"
    sims = [world.sim(f"sim-{kind}", sim_dialect=kind, sim_account=ACCOUNT, provider_token=TOKEN,
                      sim_signing_key=SIGNING, provider_name=f"{kind}-route",
                      sim_dlr_delay_s=0.2, api_public_url=api, **sim) for kind in kinds]
    routes = [{**_route(kind, url, api), "weight": weight, "tenant_senders": tenant_senders}
              for kind, url, weight in zip(kinds, sims, weights, strict=False)]
    world.settings = world.settings.model_copy(update={"sender_providers": json.dumps(routes)})
    world.api(port)
    return sims


@pytest.mark.parametrize("kind", KINDS)
def test_bulk_and_otp_are_sent_once_and_delivered(kind: str, broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path) as world:
        [sim] = _stack(world, kind)
        world.sender("sender-bulk")
        world.sender("sender-otp", lane=Lane.OTP)
        world.publish(40, run_id=7)
        world.publish(3, run_id=8, lane=Lane.OTP, first=100, consent=False)
        delivered = eventually(lambda: world.states().get("delivered") == 43 or None, timeout=90)
        assert delivered, world.states()
        sent = Counter(item["to"] for item in ledger(sim))
        assert len(sent) == 43
        assert set(sent.values()) == {1}
        assert world.states() == {"delivered": 43}


def test_a_failing_twilio_route_fails_over_to_sinch_each_recipient_once(
    broker_url: str, tmp_path: Path,
) -> None:
    with sender_world(broker_url, tmp_path, sender_breaker_failures=2) as world:
        twilio, sinch = _stack(world, "twilio", "sinch")
        httpx.post(f"{twilio}/control", json={"fail_rate": 1.0}).raise_for_status()  # 503s
        world.sender("sender-bulk")
        world.publish(300, run_id=5)
        assert eventually(lambda: world.states().get("delivered") == 300 or None, timeout=120)
        assert ledger(twilio) == []
        sent = Counter(item["to"] for item in ledger(sinch))
        assert (len(sent), set(sent.values())) == (300, {1})


def test_twilio_throttling_is_waited_out_without_duplicates(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path) as world:
        [twilio] = _stack(world, "twilio")
        # 30/s after a burst of 50: the sender outruns it however loaded the machine is
        httpx.post(f"{twilio}/control", json={"rate_per_s": 30.0, "rate_burst": 50.0}
                   ).raise_for_status()
        world.sender("sender-bulk")
        world.publish(600, run_id=6)
        assert eventually(lambda: world.states().get("delivered") == 600 or None, timeout=120)
        sent = Counter(item["to"] for item in ledger(twilio))
        assert (len(sent), set(sent.values())) == (600, {1})
        assert sim_stats(twilio)["rate_limited"] > 0


def test_a_carrier_opt_out_fails_that_message_and_opts_the_number_out(
    broker_url: str, tmp_path: Path,
) -> None:
    unsubscribed = "+15005550004"  # Twilio's test number answering 21610
    with sender_world(broker_url, tmp_path) as world:
        _stack(world, "twilio")
        world.sender("sender-bulk")
        world.publish_to({1: "+13125550101", 2: unsubscribed}, run_id=3)
        assert eventually(lambda: world.states() == {"delivered": 1, "failed": 1} or None,
                          timeout=90)
        world.publish_to({2: unsubscribed}, run_id=4)  # the next campaign: suppressed
        assert eventually(lambda: world.states().get("suppressed") == 1 or None, timeout=60)

        async def source() -> str | None:
            conn = await asyncpg.connect(world.settings.database_url)
            try:
                return await conn.fetchval("SELECT source FROM opt_outs WHERE phone = $1",
                                           unsubscribed)
            finally:
                await conn.close()

        assert asyncio.run(source()) == "carrier"


@pytest.mark.parametrize("kind", ["twilio", "telnyx"])
def test_duplicated_and_reordered_callbacks_change_nothing(
    kind: str, broker_url: str, tmp_path: Path,
) -> None:
    """Each message gets a "sent" and a "delivered" callback; the simulator posts some twice and
    every chunk of them in random order: every message still ends delivered, once."""
    with sender_world(broker_url, tmp_path) as world:
        [sim] = _stack(world, kind)
        httpx.post(f"{sim}/control", json={"callback_dup_rate": 0.5, "callback_shuffle": True}
                   ).raise_for_status()
        world.sender("sender-bulk")
        world.publish(60, run_id=9)
        assert eventually(lambda: world.states().get("delivered") == 60 or None, timeout=90)
        assert eventually(lambda: sim_stats(sim)["receipts_pending"] == 0 or None, timeout=30)
        assert world.states() == {"delivered": 60}
        sent = Counter(item["to"] for item in ledger(sim))
        assert (len(sent), set(sent.values())) == (60, {1})


def test_vonage_parts_each_report_and_the_message_is_delivered_once_all_are(
    broker_url: str, tmp_path: Path,
) -> None:
    """Vonage answers an id per part and sends one DLR per part naming only that id: each
    part's receipt is placed by the ids kept at acceptance, and the message is delivered once
    both parts are."""
    with sender_world(broker_url, tmp_path) as world:
        [sim] = _stack(world, "vonage")
        world.sender("sender-bulk")
        world.publish_to({n: f"+1312555{n:04d}" for n in range(3)}, run_id=11,
                         body="Holiday sale " * 15 + "{n}")  # 196+ characters: two parts
        assert eventually(lambda: world.states().get("delivered") == 3 or None, timeout=90)
        assert len(ledger(sim)) == 3

        async def parts() -> list[tuple[int, int, str]]:
            conn = await asyncpg.connect(world.settings.database_url)
            try:
                rows = await conn.fetch(
                    "SELECT part, parts, status FROM provider_receipts"
                    " WHERE provider = 'vonage-route' AND applied_at IS NOT NULL ORDER BY ref, part")
                return [(r["part"], r["parts"], r["status"]) for r in rows]
            finally:
                await conn.close()

        assert asyncio.run(parts()) == [(1, 2, "delivered"), (2, 2, "delivered")] * 3


def test_a_tenants_own_sender_id_is_used_on_a_route_that_allows_it(
    broker_url: str, tmp_path: Path,
) -> None:
    """The tenant sends from its own ids (each recipient always the same one) through a route
    with ``tenant_senders``; the simulator's ledger shows the From Twilio was given."""
    with sender_world(broker_url, tmp_path) as world:
        _set_sender_ids(world, ["+13125550001", "+13125550002"])
        [sim] = _stack(world, "twilio", tenant_senders=True)
        world.sender("sender-bulk")
        phones = {n: f"+1312555{n:04d}" for n in range(300, 320)}
        world.publish_to(phones, run_id=12)
        world.publish_to(phones, run_id=13)  # the same recipients again
        assert eventually(lambda: world.states().get("delivered") == 40 or None, timeout=90)
        items = httpx.get(f"{sim}/ledger", params={"limit": 1000, "extra": "true"}).json()["items"]
        senders: dict[str, set[str]] = {}
        for item in items:
            senders.setdefault(item["to"], set()).add(item["extra"]["From"])
        assert len(senders) == 20
        assert all(len(found) == 1 for found in senders.values())  # sticky per recipient
        assert set().union(*senders.values()) == {"+13125550001", "+13125550002"}


def _set_sender_ids(world: SenderWorld, ids: list[str]) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(world.settings.database_url)
        try:
            await conn.execute("UPDATE tenants SET sender_ids = $1 WHERE id = $2", ids,
                               world.tenant_id)
        finally:
            await conn.close()

    asyncio.run(run())
