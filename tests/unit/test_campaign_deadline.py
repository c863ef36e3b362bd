"""The campaign deadline as a cut-off: each zone's deadline instant (DST included), what a
chunk and a wave make of it, the lane and ``on_deadline`` fields, and the dispatcher expiring
campaign messages with reason ``deadline`` before any provider call. Pure (fakes only)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scheduler.deadline import chunk_expiry, cut_off, wave_deadline
from scheduler.models import CampaignCreate
from scheduler.service import Campaign, Fire, ZoneCount, chunk_record, plan_waves
from scheduler.timing import localize, wall_clock
from sender.dispatch import Dispatcher, Policy
from sender.models import Lane, MessageState, SendBatch, SendRequest
from targeting import SegmentDefinition
from tests.unit.senderfakes import FakeProvider, MemoryStore, batch, router

ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Honolulu"]
"""East to west: the same wall time comes later in each."""
EXPIRED = MessageState.EXPIRED
BASE = {"name": "x", "body": "Hi {first_name}", "segment": {"everyone": True},
        "run_at": "2030-11-26T09:00:00", "time_zone": "America/Chicago"}


def _campaign(*, deadline: datetime | None, mode: str = "recipient_local",
              on_deadline: str = "expire") -> Campaign:
    return Campaign(id=3, tenant_id=9, body="Hi", segment=SegmentDefinition(everyone=True),
                    cron=None, run_at=datetime(2030, 11, 26, 9), time_zone="America/Chicago",
                    time_mode=mode, deadline=deadline, max_rate=None, lane=Lane.BULK,
                    created_at=datetime(2026, 1, 1, tzinfo=UTC), on_deadline=on_deadline)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2040, 1, 1)))
def test_each_zone_is_cut_at_its_own_wall_deadline(wall: datetime) -> None:
    """Recipient-local: the deadline is the wall time in each zone, so the instants run east
    to west; a wall time a zone skips (spring forward) is shifted forward by the gap, one it
    repeats (fall back) is its first, earlier occurrence. Fixed mode: one instant for all."""
    c = _campaign(deadline=wall)
    instants = [i for z in ZONES if (i := wave_deadline(c, z)) is not None]
    assert all(i.tzinfo is not None for i in instants)
    assert instants == sorted(instants)
    assert len(set(instants)) == len(ZONES)
    for zone, instant in zip(ZONES, instants, strict=True):
        tz = ZoneInfo(zone)
        local = wall_clock(instant, tz)
        if local == wall:
            later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
            assert instant <= later  # a repeated wall time: the first occurrence
        else:  # skipped: shifted forward by the gap (one hour in these zones)
            assert local - wall == timedelta(hours=1)
    fixed = _campaign(deadline=wall, mode="fixed")
    assert {wave_deadline(fixed, z) for z in [*ZONES, None]} == {
        localize(wall, ZoneInfo("America/Chicago"))}
    assert wave_deadline(_campaign(deadline=None), ZONES[0]) is None


@pytest.mark.parametrize(("wall", "zone", "instant"), [
    (datetime(2030, 3, 10, 2, 30), "America/New_York", datetime(2030, 3, 10, 7, 30)),  # skipped
    (datetime(2030, 11, 3, 1, 30), "America/New_York", datetime(2030, 11, 3, 5, 30)),  # repeated
    (datetime(2030, 11, 3, 1, 30), "America/Chicago", datetime(2030, 11, 3, 6, 30)),
    (datetime(2030, 11, 3, 1, 30), "Pacific/Honolulu", datetime(2030, 11, 3, 11, 30)),
    (datetime(2030, 11, 29, 0, 0), "America/Los_Angeles", datetime(2030, 11, 29, 8, 0)),
])
def test_deadline_instants_across_dst(wall: datetime, zone: str, instant: datetime) -> None:
    assert wave_deadline(_campaign(deadline=wall), zone) == instant.replace(tzinfo=UTC)


def test_waves_chunks_and_the_cut_follow_on_deadline() -> None:
    wall = datetime(2030, 11, 26, 23, 59)
    c = _campaign(deadline=wall)
    fire = Fire(datetime(2030, 11, 26, 9), localize(datetime(2030, 11, 26, 9), ZoneInfo("Etc/GMT-14")))
    plans = plan_waves(c, fire, [ZoneCount(z, 5, 0) for z in ZONES], now_run=True)
    assert {p.time_zone: p.deadline_at for p in plans} == {z: wave_deadline(c, z) for z in ZONES}
    at = wave_deadline(c, "America/Chicago")
    assert at is not None
    assert chunk_expiry(c, at) == at
    rows = [{"id": 1, "user_id": "u1", "phone": "+13125550001", "first_name": "A"}]
    assert chunk_record(c, run_id=1, rows=rows, now=at, expires_at=at).items[0].expires_at == at
    assert not cut_off(c, at, at - timedelta(microseconds=1))
    assert cut_off(c, at, at)
    late = _campaign(deadline=wall, on_deadline="send_late")
    assert chunk_expiry(late, at) is None
    assert not cut_off(late, at, at + timedelta(days=1))
    assert not cut_off(c, None, at)


def test_campaigns_send_on_the_bulk_lane_only_and_expire_by_default() -> None:
    made = CampaignCreate.model_validate(BASE)
    assert (made.lane, made.on_deadline) == (Lane.BULK, "expire")
    assert CampaignCreate.model_validate({**BASE, "on_deadline": "send_late"}).on_deadline == "send_late"
    for lane in ("geo", "otp", "transactional"):
        with pytest.raises(ValidationError) as refused:
            CampaignCreate.model_validate({**BASE, "lane": lane})
        assert [e["loc"] for e in refused.value.errors()] == [("lane",)]
    with pytest.raises(ValidationError) as bad:
        CampaignCreate.model_validate({**BASE, "on_deadline": "later"})
    assert [e["loc"] for e in bad.value.errors()] == [("on_deadline",)]


def _bulk(n: int, *, expires_at: datetime | None, run_id: int | None = 5) -> SendBatch:
    return SendBatch(lane=Lane.BULK, created_at=datetime.now(UTC), items=[
        SendRequest(message_key=f"bulk-{run_id}-{i:04d}", tenant_id=1, phone=f"+1312555{i:04d}",
                    body="Sale", campaign_run_id=run_id, expires_at=expires_at)
        for i in range(n)])


async def test_campaign_messages_past_or_at_the_deadline_expire_without_a_call() -> None:
    """Within the margin of the deadline is too late: the call itself takes time."""
    store, a = MemoryStore(), FakeProvider("a")
    sender = Dispatcher(lane=Lane.BULK, store=store, router=router(a),
                        policy=Policy(expiry_margin_s=1.0))
    now = datetime.now(UTC)
    out = await sender.handle_many([_bulk(3, expires_at=now - timedelta(seconds=1)),
                                    _bulk(2, expires_at=now + timedelta(seconds=0.5), run_id=6)])
    assert (out.expired, out.accepted, a.calls) == (5, 0, [])
    assert {(store.state(k), store.reason(k)) for k in store.message_keys()} == {(EXPIRED, "deadline")}
    fine = await sender.handle_many([_bulk(2, expires_at=now + timedelta(minutes=5), run_id=7)])
    assert (fine.accepted, fine.expired) == (2, 0)


async def test_other_messages_past_their_ttl_expire_with_ttl_passed() -> None:
    store, a = MemoryStore(), FakeProvider("a")
    sender = Dispatcher(lane=Lane.BULK, store=store, router=router(a))
    out = await sender.handle_many([_bulk(2, expires_at=datetime.now(UTC), run_id=None)])
    assert (out.expired, a.calls) == (2, [])
    assert {store.reason(k) for k in store.message_keys()} == {"ttl passed"}
    otp_store = MemoryStore()
    otp = batch(1)
    stale = otp.model_copy(update={"items": [otp.items[0].model_copy(update={
        "expires_at": datetime.now(UTC), "campaign_run_id": 9})]})
    await Dispatcher(lane=Lane.OTP, store=otp_store, router=router(FakeProvider("b"))
                     ).handle_many([stale])
    assert {otp_store.reason(k) for k in otp_store.message_keys()} == {"ttl passed"}


async def test_a_message_whose_deadline_passes_while_the_account_is_busy_is_not_sent() -> None:
    """The last check is right before the provider call, after waiting for the account."""
    store, a = MemoryStore(), FakeProvider("a")
    accounts = router(a)
    sender = Dispatcher(lane=Lane.BULK, store=store, router=accounts,
                        policy=Policy(expiry_margin_s=1.0))
    busy = accounts.routes[0].calling
    await busy.acquire()  # another call to this account is in flight
    task = asyncio.create_task(sender.handle_many([
        _bulk(2, expires_at=datetime.now(UTC) + timedelta(seconds=1.3))]))
    await asyncio.sleep(0.6)
    busy.release()
    out = await task
    assert (out.expired, out.accepted, a.calls) == (2, 0, [])
    assert {store.reason(k) for k in store.message_keys()} == {"deadline"}
    assert accounts.routes[0].breaker.allow()
