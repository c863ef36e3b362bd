"""SMPP routes end to end: the real sender process binds to the simulator's SMSC (a separate
process), sends a campaign through it with a window of 10, keeps the receipts that come back
over the binds (ids in decimal in the text, long messages' parts, duplicated and out of order),
fails over when the SMSC refuses the bind, and takes a STOP sent over SMPP."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from hexcast.testing import eventually
from sender.keys import bulk_key
from sender.text import segment_info
from tests.integration.senderkit import SenderWorld, ledger, sender_world

GSM_LONG = "Holiday sale {{today}} [50%] off ~ 5€ at the ^corner| shop \\ " * 5 + "#{n}"
UCS_LONG = "Frohe Weihnachten 🎄🎁 Привет 👍🏽 " * 4 + "#{n}"


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


def _mixed(world: SenderWorld, run_id: int, short: int, long: int) -> dict[str, str]:
    """``short`` one-part messages and ``long`` GSM-7 (extension characters) and ``long`` UCS-2
    (emoji) ones of three or more parts; the long ones' keys and bodies."""
    world.publish(short, run_id=run_id)
    bodies: dict[str, str] = {}
    for first, template in ((short, GSM_LONG), (short + long, UCS_LONG)):
        phones = {n: f"+1312{n:07d}" for n in range(first, first + long)}
        world.publish_to(phones, run_id=run_id, body=template)
        bodies |= {bulk_key(campaign_run_id=run_id, recipient_id=n): template.format(n=n)
                   for n in phones}
    assert all(segment_info(b).segments >= 3 for b in bodies.values())
    return bodies


def _parts(world: SenderWorld, key: str) -> list[tuple[int, str]]:
    """``(part, status)`` of a message's part receipts, each part once."""
    rows = world.scalar("SELECT coalesce(json_agg(json_build_array(part, status) ORDER BY part),"
                        " '[]')::text FROM provider_receipts WHERE by_ref AND ref = $1", key)
    return [tuple(r) for r in json.loads(rows)]


def _rolled_up(world: SenderWorld, key: str, body: str) -> bool:
    """Every part is placed and delivered, and the message was delivered once, after its last
    part's receipt was in."""
    parts = segment_info(body).segments
    placed = world.scalar("SELECT count(*) FROM provider_parts WHERE message_key = $1", key)
    later = world.scalar(
        "SELECT min(e.at) >= (SELECT max(received_at) FROM provider_receipts WHERE ref = $1)"
        " AND count(*) = 1 FROM message_events e JOIN messages m ON m.id = e.message_id"
        " WHERE m.message_key = $1 AND e.to_state = 'delivered'", key)
    return placed == parts and _parts(world, key) == [(n, "delivered") for n in
                                                      range(1, parts + 1)] and bool(later)


def test_decimal_receipt_ids_and_long_messages_roll_up(broker_url: str, tmp_path: Path) -> None:
    """The SMSC answers ids in hex and writes them in decimal in the receipt text (its
    receipted_message_id TLV as answered); the route says ``receipt_ids = "hex_to_decimal"``.
    Every message is delivered, the long ones (GSM-7 with extension characters, UCS-2 with
    emoji) once every part's receipt is in. Then the SMSC fails messages (a long one at its
    last part): a failed part fails its message, its other parts delivered."""
    with sender_world(broker_url, tmp_path) as world:
        sim, route = world.smsc("smsc", sim_dlr_delay_s=0.2)
        httpx.post(f"{sim}/control", json={"smpp_id_format": "decimal"}).raise_for_status()
        _routes(world, {**route, "rate_per_s": 2000.0, "smpp": {"receipt_ids": "hex_to_decimal"}})
        world.sender("sender-bulk")
        bodies = _mixed(world, run_id=6, short=100, long=15)
        assert eventually(lambda: world.states().get("delivered") == 130 or None,
                          timeout=120), world.states()
        assert world.states() == {"delivered": 130}
        assert _once(sim, 130)
        kept = {item["to"]: item["body"] for item in ledger(sim)}
        assert sorted(b for b in kept.values() if "#" in b) == sorted(bodies.values())
        assert [k for k, b in bodies.items() if not _rolled_up(world, k, b)] == []

        httpx.post(f"{sim}/control", json={"deliver_fail_rate": 1.0}).raise_for_status()
        phones = {n: f"+1313{n:07d}" for n in range(5)}
        world.publish_to(phones, run_id=7, body=UCS_LONG)
        assert eventually(lambda: world.states().get("failed") == 5 or None, timeout=60)
        for n in phones:
            key = bulk_key(campaign_run_id=7, recipient_id=n)
            total = segment_info(UCS_LONG.format(n=n)).segments
            assert _parts(world, key) == [*((p, "delivered") for p in range(1, total)),
                                          (total, "failed")]
            assert f"(part {total} of {total})" in (world.message(key) or {})["reason"]


def test_duplicated_and_shuffled_receipts_deliver_every_message_once(
    broker_url: str, tmp_path: Path,
) -> None:
    """Half the receipts sent twice and all in random order (parts of a long message too):
    every message is delivered, once, and none moves after that."""
    with sender_world(broker_url, tmp_path) as world:
        sim, route = world.smsc("smsc", sim_dlr_delay_s=0.3)
        httpx.post(f"{sim}/control", json={"callback_dup_rate": 0.5, "callback_shuffle": True}
                   ).raise_for_status()
        _routes(world, {**route, "rate_per_s": 2000.0})
        world.sender("sender-bulk")
        bodies = _mixed(world, run_id=8, short=200, long=10)
        assert eventually(lambda: world.states().get("delivered") == 220 or None,
                          timeout=120), world.states()
        parts = 200 + sum(segment_info(b).segments for b in bodies.values())
        stats = httpx.get(f"{sim}/smpp/stats").json()
        assert eventually(lambda: httpx.get(f"{sim}/smpp/stats").json()["receipts_sent"]
                          > parts or None, timeout=30), stats  # duplicates went out
        assert world.states() == {"delivered": 220}
        assert _once(sim, 220)
        assert world.scalar("SELECT count(*) FROM message_events WHERE to_state = 'delivered'"
                            ) == 220
        assert world.scalar("SELECT count(*) FROM message_events"
                            " WHERE from_state IN ('delivered', 'failed')") == 0
        assert [k for k, b in bodies.items() if not _rolled_up(world, k, b)] == []
