"""Every provider kind end to end: a bulk chunk and OTPs through the real sender process to the
simulator speaking that provider's API, and its signed delivery callbacks through the api's
``/v1/webhooks/providers/{route}`` back to ``delivered``; each recipient once in the ledger.

The tests share one world (database, topics, api, a bulk and an OTP sender): each has a tenant
of its own and simulators of its own, reached by routes that serve only that tenant
(``ProviderSpec.tenants``), so what a test reads (its tenant's messages, its simulators'
ledgers) is its own.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from hexcast.devstack.procs import free_port
from hexcast.testing import eventually, fetch_rows, make_tenant
from providersim.dialects.telnyx import public_key
from providersim.dialects.vonage import PART_FAILED_CODE
from sender.models import Lane
from tests.integration.senderkit import SenderWorld, ledger, sender_world, sim_stats

ACCOUNT, TOKEN, SIGNING = "AC0123456789abcdef0123456789abcdef", "route-token", "route-signing"
KINDS = ["twilio", "vonage", "plivo", "sinch", "telnyx"]
SCENES: dict[str, tuple[str, ...]] = {  # a test's scene → its routes' kinds, the first the primary
    **{kind: (kind,) for kind in KINDS},
    "failover": ("twilio", "sinch"),
    "throttled": ("twilio",),
    "opt-out": ("twilio",),
    "dup-twilio": ("twilio",),
    "dup-telnyx": ("telnyx",),
    "parts": ("vonage",),
    "part-fail": ("vonage",),
    "own-sender": ("twilio",),
}
OWN_SENDERS = {"own-sender"}  # scenes whose route may send from the tenant's own sender ids


@dataclass(frozen=True)
class Scene:
    """One test's part of the module's world: ``world`` publishes as its tenant; ``sims`` are
    its routes' simulators (in ``SCENES`` order), ``routes`` the routes' names; its campaign
    run ids start at ``runs`` (message keys are unique across tenants)."""

    world: SenderWorld
    sims: list[str]
    routes: list[str]
    runs: int

    def states(self) -> dict[str, int]:
        """The tenant's messages by state."""
        rows = asyncio.run(fetch_rows(
            self.world.settings.database_url,
            "SELECT state::text, count(*) AS n FROM messages WHERE tenant_id = $1 GROUP BY 1",
            self.world.tenant_id))
        return {r["state"]: r["n"] for r in rows}


def _route(name: str, kind: str, sim: str, api: str) -> dict[str, Any]:
    """The route as an operator would write it for this provider (here: at the simulator)."""
    route: dict[str, Any] = {
        "name": name, "kind": kind, "url": sim, "token": TOKEN, "account": ACCOUNT,
        "sender_id": "+13125550100", "rate_per_s": 2000.0,
        "callback_url": f"{api}/v1/webhooks/providers/{name}"}
    if kind in ("vonage", "sinch"):
        route["webhook_key"] = SIGNING  # their callbacks' shared signature secret
    if kind == "telnyx":
        route["webhook_key"] = public_key(SIGNING)  # Ed25519: the simulator signs, we verify
    return route


@pytest.fixture(scope="module")
def scenes(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scene]]:
    """The api, the simulators of every scene (one per route, in that route's dialect), a bulk
    and an OTP sender with every route; a tenant per scene."""
    with sender_world(broker_url, tmp_path_factory.mktemp("logs"), sender_breaker_failures=2) as world:
        dsn = world.settings.database_url
        tenants = {scene: asyncio.run(make_tenant(dsn, prefix="e2e")) for scene in SCENES}
        port = free_port()  # the api needs the routes, a route its simulator, a simulator the api
        api = f"http://127.0.0.1:{port}"
        names = {scene: [f"{scene}.{kind}" for kind in kinds] for scene, kinds in SCENES.items()}
        wanted = [(name, kind) for scene, kinds in SCENES.items()
                  for name, kind in zip(names[scene], kinds, strict=True)]

        def sim(name: str, kind: str) -> str:
            return world.sim(f"sim-{name}", sim_dialect=kind, sim_account=ACCOUNT,
                             provider_token=TOKEN, sim_signing_key=SIGNING, provider_name=name,
                             sim_dlr_delay_s=0.2, api_public_url=api)

        with ThreadPoolExecutor(max_workers=6) as pool:  # started a few at a time
            urls = dict(zip([n for n, _ in wanted], pool.map(lambda w: sim(*w), wanted), strict=True))
        routes = [{**_route(name, kind, urls[name], api),
                   "weight": 1000 if name == names[scene][0] else 1,
                   "tenant_senders": scene in OWN_SENDERS, "tenants": [tenants[scene].id]}
                  for scene, kinds in SCENES.items()
                  for name, kind in zip(names[scene], kinds, strict=True)]
        world.settings = world.settings.model_copy(update={"sender_providers": json.dumps(routes)})
        world.sender("sender-bulk")
        world.sender("sender-otp", lane=Lane.OTP)
        world.api(port)
        yield {scene: Scene(world=SenderWorld(world.settings, world.log_dir,
                                              (tenants[scene].id, tenants[scene].api_key)),
                            sims=[urls[n] for n in names[scene]], routes=names[scene],
                            runs=100 * (n + 1))
               for n, scene in enumerate(SCENES)}


@pytest.mark.parametrize("kind", KINDS)
def test_bulk_and_otp_are_sent_once_and_delivered(kind: str, scenes: dict[str, Scene]) -> None:
    scene = scenes[kind]
    [sim] = scene.sims
    scene.world.publish(40, run_id=scene.runs + 7)
    scene.world.publish(3, run_id=scene.runs + 8, lane=Lane.OTP, first=100, consent=False)
    delivered = eventually(lambda: scene.states().get("delivered") == 43 or None, timeout=90)
    assert delivered, scene.states()
    sent = Counter(item["to"] for item in ledger(sim))
    assert len(sent) == 43
    assert set(sent.values()) == {1}
    assert scene.states() == {"delivered": 43}


def test_a_failing_twilio_route_fails_over_to_sinch_each_recipient_once(
    scenes: dict[str, Scene],
) -> None:
    scene = scenes["failover"]  # the sender's breaker opens after 2 failures
    twilio, sinch = scene.sims
    httpx.post(f"{twilio}/control", json={"fail_rate": 1.0}).raise_for_status()  # 503s
    scene.world.publish(300, run_id=scene.runs + 5)
    assert eventually(lambda: scene.states().get("delivered") == 300 or None, timeout=120)
    assert ledger(twilio) == []
    sent = Counter(item["to"] for item in ledger(sinch))
    assert (len(sent), set(sent.values())) == (300, {1})


def test_twilio_throttling_is_waited_out_without_duplicates(scenes: dict[str, Scene]) -> None:
    scene = scenes["throttled"]
    [twilio] = scene.sims
    # 30/s after a burst of 50: the sender outruns it however loaded the machine is
    httpx.post(f"{twilio}/control", json={"rate_per_s": 30.0, "rate_burst": 50.0}
               ).raise_for_status()
    scene.world.publish(100, run_id=scene.runs + 6)
    assert eventually(lambda: scene.states().get("delivered") == 100 or None, timeout=120)
    sent = Counter(item["to"] for item in ledger(twilio))
    assert (len(sent), set(sent.values())) == (100, {1})
    assert sim_stats(twilio)["rate_limited"] > 0


def test_a_carrier_opt_out_fails_that_message_and_opts_the_number_out(
    scenes: dict[str, Scene],
) -> None:
    unsubscribed = "+15005550004"  # Twilio's test number answering 21610
    scene = scenes["opt-out"]
    scene.world.publish_to({1: "+13125550101", 2: unsubscribed}, run_id=scene.runs + 3)
    assert eventually(lambda: scene.states() == {"delivered": 1, "failed": 1} or None,
                      timeout=90)
    scene.world.publish_to({2: unsubscribed}, run_id=scene.runs + 4)  # the next campaign: suppressed
    assert eventually(lambda: scene.states().get("suppressed") == 1 or None, timeout=60)

    async def source() -> str | None:
        conn = await asyncpg.connect(scene.world.settings.database_url)
        try:
            return await conn.fetchval("SELECT source FROM opt_outs WHERE phone = $1",
                                       unsubscribed)
        finally:
            await conn.close()

    assert asyncio.run(source()) == "carrier"


@pytest.mark.parametrize("kind", ["twilio", "telnyx"])
def test_duplicated_and_reordered_callbacks_change_nothing(
    kind: str, scenes: dict[str, Scene],
) -> None:
    """Each message gets a "sent" and a "delivered" callback; the simulator posts some twice and
    every chunk of them in random order: every message still ends delivered, once."""
    scene = scenes[f"dup-{kind}"]
    [sim] = scene.sims
    httpx.post(f"{sim}/control", json={"callback_dup_rate": 0.5, "callback_shuffle": True}
               ).raise_for_status()
    scene.world.publish(60, run_id=scene.runs + 9)
    assert eventually(lambda: scene.states().get("delivered") == 60 or None, timeout=90)
    assert eventually(lambda: sim_stats(sim)["receipts_pending"] == 0 or None, timeout=30)
    assert scene.states() == {"delivered": 60}
    sent = Counter(item["to"] for item in ledger(sim))
    assert (len(sent), set(sent.values())) == (60, {1})


def test_vonage_parts_each_report_and_the_message_is_delivered_once_all_are(
    scenes: dict[str, Scene],
) -> None:
    """Vonage answers an id per part and sends one DLR per part naming only that id: each
    part's receipt is placed by the ids kept at acceptance, and the message is delivered once
    both parts are."""
    scene = scenes["parts"]
    [sim], [route] = scene.sims, scene.routes
    scene.world.publish_to({n: f"+1312555{n:04d}" for n in range(3)}, run_id=scene.runs + 11,
                           body="Holiday sale " * 15 + "{n}")  # 196+ characters: two parts
    assert eventually(lambda: scene.states().get("delivered") == 3 or None, timeout=90)
    assert len(ledger(sim)) == 3

    async def parts() -> list[tuple[int, int, str]]:
        conn = await asyncpg.connect(scene.world.settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT part, parts, status FROM provider_receipts"
                " WHERE provider = $1 AND applied_at IS NOT NULL ORDER BY ref, part", route)
            return [(r["part"], r["parts"], r["status"]) for r in rows]
        finally:
            await conn.close()

    assert asyncio.run(parts()) == [(1, 2, "delivered"), (2, 2, "delivered")] * 3


def test_a_failed_vonage_part_fails_its_message_with_that_parts_code(
    scenes: dict[str, Scene],
) -> None:
    """The simulator fails the last part of the message marked for it and delivers every other
    part: that two-part message ends failed with its second part's code, and an unmarked
    two-part message of the same tenant and route ends delivered."""
    scene = scenes["part-fail"]
    [sim], [route] = scene.sims, scene.routes
    httpx.post(f"{sim}/control", json={"part_fail_marker": "LOSTPART"}).raise_for_status()
    text = "Holiday sale " * 15  # 195 characters: two parts
    scene.world.publish_to({0: "+13125550200"}, run_id=scene.runs + 14, body=text + "LOSTPART {n}")
    scene.world.publish_to({1: "+13125550201"}, run_id=scene.runs + 14, body=text + "{n}")
    assert eventually(lambda: scene.states() == {"delivered": 1, "failed": 1} or None,
                      timeout=90), scene.states()
    assert eventually(lambda: sim_stats(sim)["receipts_pending"] == 0 or None, timeout=30)
    rows = asyncio.run(fetch_rows(
        scene.world.settings.database_url,
        "SELECT m.phone, m.state::text AS state, m.reason, array_agg(r.status || ':'"
        " || coalesce(r.code, '-') ORDER BY r.part) AS parts FROM messages m"
        " JOIN provider_receipts r ON r.provider = $2 AND r.ref = m.message_key"
        " WHERE m.tenant_id = $1 GROUP BY 1, 2, 3 ORDER BY 1", scene.world.tenant_id, route))
    assert [tuple(r) for r in rows] == [
        ("+13125550200", "failed", f"{route}: {PART_FAILED_CODE} undelivered (part 2 of 2)",
         ["delivered:0", f"failed:{PART_FAILED_CODE}"]),
        ("+13125550201", "delivered", None, ["delivered:0", "delivered:0"])]


def test_a_tenants_own_sender_id_is_used_on_a_route_that_allows_it(
    scenes: dict[str, Scene],
) -> None:
    """The tenant sends from its own ids (each recipient always the same one) through a route
    with ``tenant_senders``; the simulator's ledger shows the From Twilio was given."""
    scene = scenes["own-sender"]
    [sim] = scene.sims
    _set_sender_ids(scene.world, ["+13125550001", "+13125550002"])
    phones = {n: f"+1312555{n:04d}" for n in range(300, 320)}
    scene.world.publish_to(phones, run_id=scene.runs + 12)
    scene.world.publish_to(phones, run_id=scene.runs + 13)  # the same recipients again
    assert eventually(lambda: scene.states().get("delivered") == 40 or None, timeout=90)
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
