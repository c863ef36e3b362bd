"""Look-ahead contact budget (issue 22, item 5) against real Redis, PostgreSQL and processes.

- The caps' script with reservations: another run's reservation holds a message back (and
  says which run), the reserving run's own message takes its slot and clears its bit, two
  reservations over a cap of one go to the first to send, a dropped run holds nothing back.
- End to end (api, scheduler, geo and bulk senders, provider-sim), recipients capped at one
  marketing message a day: a reserved campaign scheduled for later today holds back a geo
  offer this afternoon (suppressed, reason ``reserved``, counted in the campaign's stats) and
  then sends its own message; a normal campaign reserves nothing (its recipient's geo offer goes
  and takes the day's slot first); cancelling a reserved campaign lets the next geo offer go.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from hexcast.core.bus import Bus
from hexcast.core.cache import Keys, connect_redis
from hexcast.testing import REDIS_URL, eventually, make_recipient
from sender.keys import bulk_key
from sender.limits import CapCheck, CapRule, CapVerdict, RecipientCaps
from sender.models import Lane, SendBatch, SendRequest
from sender.reservations import CapReservations, index_key, local_day
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

DAY_MS = 86_400_000
ONE_A_DAY = CapRule(per_day=1, per_24h=10, min_spacing_s=0)


# ------------------------------------------------------------------------- the caps' script
async def test_reservations_in_the_caps_script() -> None:
    client = connect_redis(REDIS_URL)
    keys = Keys(f"hxtest:{uuid.uuid4().hex}:")
    caps, reservations = RecipientCaps(client), CapReservations(client, keys)
    today = local_day(datetime.now(UTC), ZoneInfo("UTC"))
    index = index_key(keys, 1, today.day)

    def check(recipient: int, message: str, run: int = 0) -> CapCheck:
        return CapCheck(key=keys("cap", recipient), message_key=message,
                        day_start_ms=today.start_ms, next_day_ms=today.next_ms, rule=ONE_A_DAY,
                        reservations=index, recipient_id=recipient, run_id=run)

    try:
        await reservations.add(tenant_id=1, run_id=7, base=100, offsets={today.day: [5, 10]})
        await reservations.add(tenant_id=1, run_id=8, base=108, offsets={today.day: [2]})
        geo, free = await caps.verdicts([check(105, "geo-1"), check(106, "geo-2")])
        assert geo.reserved_by == 7
        assert 0 < geo.wait_s <= DAY_MS / 1000  # until the next local day
        assert free == CapVerdict(0.0)  # nobody reserved 106
        assert await caps.verdicts([check(105, "blk-7-105", run=7)]) == [CapVerdict(0.0)]
        assert await client.bitcount(f"{index}:7") == 1  # its slot taken: only 110's is left
        assert await caps.verdicts([check(105, "blk-7-105", run=7)]) == [CapVerdict(0.0)]  # retry
        again = (await caps.verdicts([check(105, "geo-3")]))[0]
        assert (again.wait_s > 0, again.reserved_by) == (True, None)  # now the cap holds it

        # 110 is reserved by runs 7 and 8 with one slot a day: the first to send gets it
        first, second = await caps.verdicts([check(110, "blk-8-110", run=8),
                                             check(110, "blk-7-110", run=7)])
        assert first == CapVerdict(0.0)
        assert (second.wait_s > 0, second.reserved_by) == (True, None)

        await reservations.add(tenant_id=1, run_id=9, base=100, offsets={today.day: [20]})
        assert (await caps.verdicts([check(120, "geo-4")]))[0].reserved_by == 9
        await reservations.drop(tenant_id=1, run_id=9, days=[today.day])
        assert await caps.verdicts([check(120, "geo-4")]) == [CapVerdict(0.0)]
        assert await client.ttl(index) > 0  # the reservations expire by themselves
    finally:
        async for key in client.scan_iter(match=f"{keys.prefix}*"):
            await client.delete(key)
        await client.aclose()


# ------------------------------------------------------------------------------ end to end
def _midday_zone(now: datetime) -> str:
    """A whole-hour zone where it is between 08:00 and 15:00 now: the campaign's later today
    (+3 h) stays on today's date there."""
    for hours in range(-12, 15):
        name = f"Etc/GMT{-hours:+d}" if hours else "UTC"
        if 8 <= now.astimezone(ZoneInfo(name)).hour < 15:
            return name
    raise AssertionError("some zone is at midday")


class _Shop:
    """The world's tenant: its recipients, geo offers and campaigns (api)."""

    def __init__(self, world: SenderWorld, zone: str) -> None:
        self.world, self.zone = world, zone
        self.api = httpx.Client(base_url=world.settings.api_public_url, timeout=30,
                                headers={"X-API-Key": world.api_key})
        self.phones: dict[str, str] = {}
        self.offers = 0

    def recipient(self, user: str) -> int:
        phone = f"+1312555{len(self.phones) + 2000:04d}"
        self.phones[user] = phone
        return asyncio.run(make_recipient(
            self.world.settings.database_url, tenant_id=self.world.tenant_id, user_id=user,
            phone=phone, time_zone=self.zone, consent_at=datetime(2026, 1, 1, tzinfo=UTC)))

    def offer(self, user: str) -> str:
        """A geo offer to ``user`` (what the matcher publishes for a visit); its key."""
        self.offers += 1
        item = SendRequest(message_key=f"geo-offer-{uuid.uuid4().hex}", tenant_id=self.world.tenant_id,
                           user_id=user, phone=self.phones[user], body=f"10% off, offer {self.offers}")

        async def publish() -> None:
            bus = Bus(self.world.settings)
            await bus.start()
            try:
                record = SendBatch(lane=Lane.GEO, items=[item], created_at=datetime.now(UTC))
                await bus.publish(Lane.GEO.topic, f"{self.world.tenant_id}:{user}", record.encode())
            finally:
                await bus.stop()

        asyncio.run(publish())
        return item.message_key

    def campaign(self, user: str, at: datetime, **fields: Any) -> int:
        wall = at.astimezone(ZoneInfo(self.zone)).replace(tzinfo=None, microsecond=0)
        made = self.api.post("/v1/campaigns", json={
            "name": f"for {user}", "body": "Black Friday: 30% off tonight",
            "segment": {"user_ids": [user]}, "run_at": wall.isoformat(),
            "time_zone": self.zone, **fields})
        assert made.status_code == 201, made.text
        campaign_id: int = made.json()["id"]
        return campaign_id

    def run(self, campaign_id: int) -> dict[str, Any] | None:
        runs = self.api.get(f"/v1/campaigns/{campaign_id}/stats").json()["runs"]
        return runs[-1] if runs else None

    def state(self, key: str, *states: str) -> dict[str, Any] | None:
        row = self.world.message(key)
        return row if row is not None and row["state"] in states else None


@pytest.mark.e2e
def test_a_reserved_campaign_holds_back_geo_offers_until_it_sends_or_is_cancelled(
    broker_url: str, tmp_path: Path
) -> None:
    with sender_world(broker_url, tmp_path, scheduler_poll_s=0.5) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": "sim-token"})})
        world.scalar("UPDATE tenants SET cap_per_day = 1 WHERE id = $1", world.tenant_id)
        world.api()
        for lane in (Lane.GEO, Lane.BULK):
            world.sender(f"sender-{lane.value}", lane)
        world.spawn("scheduler", ["scheduler"])
        shop = _Shop(world, _midday_zone(datetime.now(UTC)))
        ids = {user: shop.recipient(user) for user in ("probe", "ann", "bob", "eve")}
        probe = shop.offer("probe")  # the geo sender is up once this one is sent
        eventually(lambda: shop.state(probe, "accepted", "delivered"), timeout=90)

        # after the checks below (about a second on an idle machine; the margin is for a busy one)
        tonight = datetime.now(UTC) + timedelta(seconds=15)
        reserved = shop.campaign("ann", tonight, priority="reserved")
        normal = shop.campaign("eve", tonight)
        later = shop.campaign("bob", datetime.now(UTC) + timedelta(hours=3), priority="reserved")
        for campaign_id in (reserved, later):  # created now, reserved by the scheduler
            eventually(lambda c=campaign_id: (shop.run(c) or {}).get("reserved") == 1, timeout=20)
        assert shop.run(normal) is None  # created when it fires: nothing reserved ahead

        held = [shop.offer("ann"), shop.offer("bob")]
        went = shop.offer("eve")
        for key in held:
            row = eventually(lambda k=key: shop.state(k, "suppressed"), timeout=30)
            assert row["reason"] == "reserved"
        eventually(lambda: shop.state(went, "accepted", "delivered"), timeout=30)
        assert shop.run(reserved)["held_back_by_reservation"] == 1
        assert shop.run(later)["held_back_by_reservation"] == 1

        cancelled = shop.api.post(f"/v1/campaigns/{later}/cancel")
        assert cancelled.json()["state"] == "cancelled", cancelled.text
        after_cancel = shop.offer("bob")
        eventually(lambda: shop.state(after_cancel, "accepted", "delivered"), timeout=30)

        run_id = shop.run(reserved)["run_id"]
        own = bulk_key(campaign_run_id=run_id, recipient_id=ids["ann"])
        eventually(lambda: shop.state(own, "accepted", "delivered"), timeout=60)
        normal_run = eventually(lambda: shop.run(normal), timeout=30)
        assert normal_run["reserved"] == 0
        capped = bulk_key(campaign_run_id=normal_run["run_id"], recipient_id=ids["eve"])
        row = eventually(lambda: shop.state(capped, "deferred"), timeout=30)
        assert str(row["reason"]).startswith("recipient cap until ")  # the geo offer came first
        assert world.scalar("SELECT count(*) FROM cap_reservations WHERE run_id = $1",
                            normal_run["run_id"]) == 0
        assert world.scalar("SELECT state FROM cap_reservations WHERE run_id = $1",
                            shop.run(later)["run_id"]) == "released"
        sent = sorted(i["to"] for i in ledger(sim))
        assert sent == sorted([shop.phones[u] for u in ("probe", "eve", "bob", "ann")])
        assert _reserved_bits(world) == 0  # ann's taken, bob's dropped


def _reserved_bits(world: SenderWorld) -> int:
    """Reserved slots still set in Redis for this world's tenant (any date)."""
    async def count() -> int:
        client = connect_redis(REDIS_URL)
        try:
            pattern = f"{world.settings.redis_prefix}resv:{{{world.tenant_id}:*}}:*"
            return sum([await client.bitcount(k) async for k in client.scan_iter(match=pattern)])
        finally:
            await client.aclose()

    return asyncio.run(count())

