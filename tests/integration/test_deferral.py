"""Quiet hours through the real sender: defer to the next window, expire past the TTL, release.

Which numbers are in quiet hours depends on when the test runs, so it picks, at run time, one
number whose local time is allowed and one whose local time is quiet, from zones around the
globe (the sender's boundary rules are covered to the second in tests/unit/test_quiet.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hexcast.testing import eventually
from sender.keys import bulk_key
from sender.models import Lane
from sender.quiet import is_allowed, window_for, zones_for
from tests.integration.senderkit import SenderWorld, ledger, providers_json, sender_world

pytestmark = pytest.mark.e2e

CANDIDATES = ["+13125550100", "+12125550100", "+12135550100", "+18085550100", "+14055550100",
              "+442071234567", "+81312345678", "+61291234567"]


def _pick(now: datetime) -> tuple[str, str]:
    def ok(phone: str) -> bool:
        return is_allowed(now, zones_for(phone), window_for(phone))

    allowed = [p for p in CANDIDATES if ok(p)]
    quiet = [p for p in CANDIDATES if not ok(p)]
    assert allowed, "some zone is always awake"
    assert quiet, "some zone is always asleep"
    return allowed[0], quiet[0]


def test_quiet_hours_defer_expire_and_release(broker_url: str, tmp_path: Path) -> None:
    with sender_world(broker_url, tmp_path, sender_quiet_hours=True) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": "sim-token"})})
        world.sender("sender-bulk")
        awake, asleep = _pick(datetime.now(UTC))
        world.publish_to({1: awake, 2: asleep}, run_id=11)
        world.publish_to({3: asleep}, run_id=11, expires_at=datetime.now(UTC) + timedelta(seconds=60))

        sent, deferred, expired = (bulk_key(campaign_run_id=11, recipient_id=n) for n in (1, 2, 3))
        eventually(lambda: (world.message(sent) or {}).get("state") == "accepted" or None)
        held = eventually(lambda: _in(world, deferred, "deferred"))
        assert held["not_before"] > datetime.now(UTC)
        assert str(held["reason"]).startswith("quiet hours until ")
        gone = eventually(lambda: _in(world, expired, "expired"))
        assert gone["reason"] == "deadline"  # a campaign message's expiry is its deadline
        assert world.scrape("sender-bulk").value("hexcast_deferred_total", lane="bulk",
                                                 reason="quiet_hours") == 1
        assert [i["to"] for i in ledger(sim)] == [awake]

        # Releasing at the window's start requeues it; the sender checks it again (at the
        # real time, still quiet here) and defers it again instead of sending it.
        assert world.release(held["not_before"] - timedelta(seconds=1)) == 0
        assert world.release(held["not_before"]) == 1
        again = eventually(lambda: _deferred_twice(world, deferred))
        assert again["history"][-3:] == ["deferred", "queued", "deferred"]
        assert [i["to"] for i in ledger(sim)] == [awake]


def _in(world: SenderWorld, key: str, state: str) -> dict[str, object] | None:
    row = world.message(key)
    return row if row is not None and row["state"] == state else None


def _deferred_twice(world: SenderWorld, key: str) -> dict[str, object] | None:
    row = world.message(key)
    return row if row is not None and row["history"].count("deferred") == 2 else None


def test_stale_geo_offers_are_not_sent(broker_url: str, tmp_path: Path) -> None:
    """Geo offers carry a TTL (geo_ttl_s) from their creation even without an expiry."""
    with sender_world(broker_url, tmp_path, geo_ttl_s=1800) as world:
        sim = world.sim("provider-sim")
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "acct", "url": sim, "token": "sim-token"})})
        world.sender("sender-geo", Lane.GEO)
        now = datetime.now(UTC)
        world.publish_to({1: "+13125550101"}, run_id=12, lane=Lane.GEO,
                         created_at=now - timedelta(minutes=31))
        world.publish_to({2: "+13125550102"}, run_id=12, lane=Lane.GEO,
                         created_at=now - timedelta(minutes=29))
        stale, fresh = (bulk_key(campaign_run_id=12, recipient_id=n) for n in (1, 2))
        eventually(lambda: _in(world, fresh, "accepted"), timeout=60)
        gone = eventually(lambda: _in(world, stale, "expired"), timeout=30)
        assert gone["reason"] == "ttl passed"
        assert [i["to"] for i in ledger(sim)] == ["+13125550102"]
