"""Cap reservations, the pure parts (no I/O): which local day a reservation belongs to in the
recipient's zone (across zones and DST), that the sender counts a send in that very day and
looks up that day's reservations, what a page reserves, that only reserved campaigns reserve
(and are created ahead), and what the holds do with a reservation's verdict (an in-memory
store and a fake caps script)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from hexcast.core.cache import Keys
from scheduler.reserving import RESERVE_AHEAD, ahead, page_items, start
from scheduler.service import Campaign, due_fire
from sender.holds import Holds
from sender.limits import CapCheck, CapVerdict
from sender.models import Lane, MessageState, SendRequest
from sender.outcome import Outcome
from sender.repo import MessageRow
from sender.reservations import (
    Reserve,
    expires_at,
    index_key,
    local_day,
    offsets_by_day,
    reservation_day,
)
from sender.tenant_rules import TenantRules
from targeting import SegmentDefinition
from tests.unit.senderfakes import MemoryStore

ZONES = sorted(available_timezones())
CHICAGO_NUMBER = "+13125550100"  # America/Chicago by its area code
#: Clock changes with odd midnights: Goose Bay fell back at 00:01 (2000), Santiago springs
#: forward over midnight, Havana changes at midnight, Apia skipped 2011-12-30, Lord Howe moves
#: half an hour, and the usual ones.
TRANSITIONS = [
    ("America/Goose_Bay", datetime(2000, 10, 29, 3, tzinfo=UTC)),
    ("America/Santiago", datetime(2019, 9, 8, 4, tzinfo=UTC)),
    ("America/Santiago", datetime(2019, 4, 7, 3, tzinfo=UTC)),
    ("America/Havana", datetime(2026, 3, 8, 5, tzinfo=UTC)),
    ("Pacific/Apia", datetime(2011, 12, 30, 10, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 10, 25, 1, tzinfo=UTC)),
]
INSTANTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1),
                        timezones=st.just(UTC))
NEAR = st.integers(min_value=-30 * 3600, max_value=30 * 3600).map(lambda s: timedelta(seconds=s))


def _holds_a_day(at: datetime, zone: ZoneInfo) -> None:
    day, at_ms = local_day(at, zone), int(at.timestamp() * 1000)
    assert day.day == at.astimezone(zone).date()
    assert day.start_ms <= at_ms < day.next_ms
    assert expires_at(day.day).timestamp() * 1000 >= day.next_ms  # it outlives the day there


@given(INSTANTS, st.sampled_from(ZONES))
def test_an_instant_is_in_its_local_day_and_reservations_outlive_it(at: datetime, name: str) -> None:
    _holds_a_day(at, ZoneInfo(name))


@given(st.sampled_from(TRANSITIONS), NEAR)
def test_the_same_across_clock_changes(transition: tuple[str, datetime], shift: timedelta) -> None:
    name, instant = transition
    _holds_a_day(instant + shift, ZoneInfo(name))


def test_reservations_last_until_the_day_has_ended_on_the_last_zone() -> None:
    day = date(2026, 11, 27)
    last = datetime(2026, 11, 28, 0, tzinfo=ZoneInfo("Etc/GMT+12"))  # UTC-12
    assert expires_at(day) > last
    assert expires_at(day) - last <= timedelta(hours=2)  # and not much longer


class _Caps:
    """The caps script's part the holds call: remembers the checks, answers ``said``."""

    def __init__(self, said: dict[str, CapVerdict] | None = None) -> None:
        self.checks: list[CapCheck] = []
        self._said = said or {}

    async def verdicts(self, checks: list[CapCheck]) -> list[CapVerdict]:
        self.checks += checks
        return [self._said.get(c.message_key.removeprefix("message-"), CapVerdict(0.0))
                for c in checks]


async def _loader(tenants: Collection[int]) -> dict[int, TenantRules]:
    return {t: TenantRules(reserve_caps=t != 2) for t in tenants}


async def _rows(store: MemoryStore, lane: Lane, *items: tuple[str, int, str, int | None]
                ) -> list[MessageRow]:
    rows, _ = await store.enqueue(lane, [
        SendRequest(message_key=f"message-{key}", tenant_id=tenant, phone=phone, body="Hi",
                    campaign_run_id=run) for key, tenant, phone, run in items])
    return rows


@settings(max_examples=50)
@given(INSTANTS, st.sampled_from(ZONES))
def test_the_sender_counts_a_send_at_the_fire_in_the_day_its_run_reserved(
    at: datetime, name: str
) -> None:
    """A run's message sent as its wave fires is checked against the caps of the local day its
    reservation was written for, and looks up that day's reservations."""
    store, caps = MemoryStore(), _Caps()
    store.recipients[(1, CHICAGO_NUMBER)] = 42

    async def check() -> None:
        rows = await _rows(store, Lane.BULK, ("m", 1, CHICAGO_NUMBER, 7))
        holds = Holds(store=store, quiet_hours=False, caps=caps,  # type: ignore[arg-type]
                      keys=Keys("hx:"), rules=_loader)
        await holds.apply(rows, Outcome(), at, {(1, CHICAGO_NUMBER): name})

    asyncio.run(check())
    day = reservation_day(at, CHICAGO_NUMBER, name)
    (sent,) = caps.checks
    assert sent.reservations == index_key(Keys("hx:"), 1, day)
    assert (sent.recipient_id, sent.run_id) == (42, 7)
    span = local_day(at, ZoneInfo(name))
    assert (sent.day_start_ms, sent.next_day_ms) == (span.start_ms, span.next_ms)


def test_without_a_profile_zone_the_day_is_the_numbers() -> None:
    at = datetime(2026, 11, 27, 3, tzinfo=UTC)  # 21:00 on the 26th in Chicago
    assert reservation_day(at, CHICAGO_NUMBER, None) == date(2026, 11, 26)
    assert reservation_day(at, CHICAGO_NUMBER, "Asia/Kolkata") == date(2026, 11, 27)


async def test_holds_suppress_geo_offers_a_reservation_holds_and_defer_other_campaigns() -> None:
    store = MemoryStore()
    for tenant, phone, rid in [(1, "+13125550101", 11), (1, "+13125550102", 12),
                               (1, "+13125550103", 13), (2, "+13125550104", 14)]:
        store.recipients[(tenant, phone)] = rid
    held = CapVerdict(3600.0, reserved_by=7)
    caps = _Caps({"geo": held, "other": held, "capped": CapVerdict(60.0)})
    rows = (await _rows(store, Lane.GEO, ("geo", 1, "+13125550101", None))
            + await _rows(store, Lane.BULK, ("other", 1, "+13125550102", 8),
                          ("own", 1, "+13125550103", 7), ("off", 2, "+13125550104", 9),
                          ("capped", 1, "+13125550105", 8))
            + await _rows(store, Lane.TRANSACTIONAL, ("asked", 1, "+13125550101", None)))
    holds = Holds(store=store, quiet_hours=False, caps=caps, rules=_loader)  # type: ignore[arg-type]
    outcome = Outcome()
    allowed = await holds.apply(rows, outcome, datetime(2026, 11, 27, 18, tzinfo=UTC), {})

    by_key = {c.message_key.removeprefix("message-"): c for c in caps.checks}
    assert {k for k, c in by_key.items() if c.reservations} == {"geo", "other", "own"}
    assert by_key["own"].run_id == 7
    assert by_key["off"].reservations == ""  # its tenant turned reservations off
    assert by_key["asked"].reservations == ""  # a transactional message is never held by one
    assert by_key["capped"].recipient_id == -1  # no recipient row: nothing to look up
    assert (store.state("message-geo"), store.reason("message-geo")) == (
        MessageState.SUPPRESSED, "reserved")
    assert store.held == {7: 1}
    assert store.state("message-other") is MessageState.DEFERRED
    assert str(store.reason("message-other")).startswith("reserved until ")
    assert str(store.reason("message-capped")).startswith("recipient cap until ")
    assert sorted(r.message_key for r in allowed) == ["message-asked", "message-off", "message-own"]
    assert (outcome.suppressed, outcome.deferred) == (1, 2)


def _campaign(**overrides: Any) -> Campaign:
    base: dict[str, Any] = {
        "id": 3, "tenant_id": 9, "body": "Hi", "segment": SegmentDefinition(everyone=True),
        "cron": None, "run_at": datetime(2026, 11, 27, 20), "time_zone": "America/Chicago",
        "time_mode": "fixed", "deadline": None, "max_rate": None, "lane": Lane.BULK,
        "created_at": datetime(2026, 11, 1, tzinfo=UTC), "priority": "reserved"}
    return Campaign(**{**base, **overrides})


def _row(rid: int, zone: str, profile: str | None, *, holdout: bool = False) -> dict[str, Any]:
    return {"id": rid, "phone": CHICAGO_NUMBER, "wave_zone": zone, "profile_zone": profile,
            "holdout": holdout}


def test_a_fixed_run_reserves_each_recipient_on_its_own_date() -> None:
    fire = datetime(2026, 11, 27, 2, tzinfo=UTC)  # 20:00 on the 26th in Chicago
    rows = [_row(100, "America/Chicago", "America/Chicago"),
            _row(101, "Asia/Kolkata", "Asia/Kolkata"),
            _row(102, "America/Chicago", None, holdout=True),
            _row(103, "America/Chicago", None)]  # no profile zone: the number's (Chicago)
    items = page_items(_campaign(), [{"time_zone": None, "fire_at": fire}], rows)
    assert [i.recipient_id for i in items] == [100, 101, 103]  # the held-out one is never sent
    assert offsets_by_day(items, base=100) == {date(2026, 11, 26): [0, 3], date(2026, 11, 27): [1]}
    assert offsets_by_day([Reserve(99, CHICAGO_NUMBER, None, fire)], base=100) == {}


def test_a_recipient_local_run_reserves_at_each_zones_wave() -> None:
    waves = [{"time_zone": "America/Chicago", "fire_at": datetime(2026, 11, 28, 2, tzinfo=UTC)},
             {"time_zone": "Asia/Kolkata", "fire_at": datetime(2026, 11, 27, 14, 30, tzinfo=UTC)}]
    rows = [_row(1, "America/Chicago", "America/Chicago"), _row(2, "Asia/Kolkata", "Asia/Kolkata"),
            _row(3, "Europe/Paris", "Europe/Paris")]  # a zone new since the run was planned
    items = page_items(_campaign(time_mode="recipient_local"), waves, rows)
    assert [(i.recipient_id, i.fire_at) for i in items] == [
        (1, waves[0]["fire_at"]), (2, waves[1]["fire_at"])]
    assert offsets_by_day(items, base=1) == {date(2026, 11, 27): [0, 1]}  # 20:00 local in each


def test_only_a_reserved_campaign_reserves_and_is_created_ahead() -> None:
    normal = _campaign(priority="normal")
    assert ahead(normal) == timedelta(0)
    assert ahead(_campaign()) == RESERVE_AHEAD

    class _NoDatabase:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"a normal campaign touched the database: {name}")

    assert asyncio.run(start(_NoDatabase(), normal, 1)) is False  # type: ignore[arg-type]
    fire = datetime(2026, 11, 28, 2, tzinfo=UTC)  # run_at 20:00 Chicago
    kw: dict[str, Any] = {"last": None, "grace": timedelta(hours=1)}
    assert due_fire(normal, now=fire - timedelta(hours=20), **kw) is None
    assert due_fire(normal, now=fire, **kw) is not None
    reserved = _campaign()
    assert due_fire(reserved, now=fire - timedelta(hours=20), ahead=ahead(reserved), **kw)
    assert due_fire(reserved, now=fire - timedelta(hours=25), ahead=ahead(reserved), **kw) is None
