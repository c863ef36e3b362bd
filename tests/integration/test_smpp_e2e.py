"""SMPP routes end to end: the real sender process binds to the simulator's SMSC (a separate
process), sends a campaign through it with a window of 10, keeps the receipts that come back
over the binds, fails over when the SMSC refuses the bind, and takes a STOP sent over SMPP."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from hexcast.testing import eventually
from tests.integration.senderkit import SenderWorld, ledger, sender_world


def _routes(world: SenderWorld, *routes: dict[str, Any]) -> None:
    world.settings = world.settings.model_copy(update={"sender_providers": json.dumps(routes)})


def _binds(world: SenderWorld) -> float | None:
    """The bulk sender's live binds to ``smsc-route`` (None: it has not shown them yet)."""
    found = world.scrape("sender-bulk").select("hexcast_smpp_live_binds", provider="smsc-route")
    return next(iter(found.values()), None)


def _once(url: str, count: int) -> bool:
    sent = Counter(item["to"] for item in ledger(url))
    return len(sent) == count and set(sent.values()) == {1}


def test_a_20000_recipient_campaign_goes_once_and_every_receipt_lands(
    broker_url: str, tmp_path: Path,
) -> None:
    with sender_world(broker_url, tmp_path) as world:
        sim, route = world.smsc("smsc", sim_dlr_delay_s=0.2)
        _routes(world, {**route, "rate_per_s": 5000.0, "smpp": {"window": 10}})
        world.sender("sender-bulk")
        world.publish(20_000, run_id=1, consent=True)
        assert eventually(lambda: world.states().get("delivered") == 20_000 or None,
                          timeout=240), world.states()
        assert _once(sim, 20_000)
        assert world.states() == {"delivered": 20_000}


def test_throttling_and_a_dropped_connection_lose_nothing_and_send_nothing_twice(
    broker_url: str, tmp_path: Path,
) -> None:
    """The SMSC throttles past 300 submit_sm/s and drops the connection after 700: the sender
    slows down, reconnects and goes on. Messages whose answer the drop cut are ``unknown``
    (they may have gone), never sent again; every other one is delivered, once."""
    with sender_world(broker_url, tmp_path) as world:
        sim, route = world.smsc("smsc", sim_dlr_delay_s=0.2)
        _routes(world, {**route, "rate_per_s": 2000.0, "smpp": {"window": 10, "binds": 2}})
        httpx.post(f"{sim}/control", json={"smpp_throttle_per_s": 300, "smpp_drop_after": 700}
                   ).raise_for_status()
        world.sender("sender-bulk")
        world.publish(2_000, run_id=2)

        def settled() -> dict[str, int] | None:
            states = world.states()
            return states if states.get("delivered", 0) + states.get("unknown", 0) == 2_000 \
                else None

        states = eventually(settled, timeout=180)
        assert states, world.states()
        sent = Counter(item["to"] for item in ledger(sim))
        assert set(sent.values()) == {1}  # nothing twice
        assert len(sent) >= states.get("delivered", 0)  # every delivered one reached the SMSC
        stats = httpx.get(f"{sim}/smpp/stats").json()
        assert stats.get("throttled", 0) > 0
        assert states.get("unknown", 0) <= 2 * 10  # at most what two windows held in flight
        listed = world.cli("unknown", "list", "--route", route["name"]).splitlines()
        assert len(listed) == states.get("unknown", 0)
        keys = [line.split("\t")[0] for line in listed]
        said = world.cli("unknown", "resolve", *keys, "--as", "failed",
                         "--reason", "not in the SMSC's records", "--yes") if keys else ""
        assert f"resolved: {len(keys)} of {len(keys)}" in said or not keys
        assert "unknown" not in world.states()


def test_a_refused_bind_fails_over_to_an_http_route(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path, sender_breaker_failures=2) as world:
        smsc, route = world.smsc("smsc")
        httpx.post(f"{smsc}/control", json={"smpp_refuse_bind": True}).raise_for_status()
        http = world.sim("sim-http")
        _routes(world, {**route, "weight": 1000},
                {"name": "http-route", "kind": "generic", "url": http,
                 "token": world.settings.provider_token, "weight": 1})
        world.sender("sender-bulk")
        world.publish(300, run_id=3)
        assert eventually(lambda: world.states().get("accepted", 0)
                          + world.states().get("delivered", 0) == 300 or None, timeout=120)
        assert ledger(smsc) == []
        assert _once(http, 300)
        assert eventually(lambda: _binds(world) == 0 or None, timeout=15)


def test_a_stop_over_smpp_suppresses_the_next_bulk_message(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path) as world:
        sim, route = world.smsc("smsc", sim_dlr_delay_s=0.1)
        _routes(world, route)
        world.sender("sender-bulk")
        world.publish_to({1: "+13125550101", 2: "+13125550102"}, run_id=4)
        assert eventually(lambda: world.states().get("delivered") == 2 or None, timeout=90)
        assert eventually(lambda: _binds(world) == 1 or None, timeout=15)
        httpx.post(f"{sim}/smpp/mo", json={"from": "+13125550102", "to": "13125550100",
                                           "text": "STOP"}).raise_for_status()

        assert eventually(lambda: asyncio.run(_opted_out(world, "+13125550102")) or None,
                          timeout=30)
        world.publish_to({1: "+13125550101", 2: "+13125550102"}, run_id=5)
        assert eventually(lambda: world.states().get("suppressed") == 1 or None, timeout=60)
        assert Counter(i["to"] for i in ledger(sim))["+13125550102"] == 1


async def _opted_out(world: SenderWorld, phone: str) -> bool:
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        return bool(await conn.fetchval(
            "SELECT count(*) FROM opt_outs WHERE tenant_id = $1 AND phone = $2",
            world.tenant_id, phone))
    finally:
        await conn.close()
