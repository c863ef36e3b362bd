"""Quiet hours: boundaries, stricter states, strictest zone, next window properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as pn_timezone

from sender.quiet import (
    DEFAULT_WINDOW,
    STRICT_WINDOW,
    is_allowed,
    next_allowed,
    primary_zone,
    window_for,
    zones_for,
)

CHICAGO = ZoneInfo("America/Chicago")
ZONES = ["America/Chicago", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu",
         "Europe/London", "Asia/Tokyo", "Australia/Sydney", "America/Sao_Paulo"]


def _local(y: int, mo: int, d: int, h: int, mi: int, s: int, zone: ZoneInfo = CHICAGO) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=zone).astimezone(UTC)


def test_2059_59_is_allowed_and_2100_is_not() -> None:
    zones = zones_for("+13125550100")
    window = window_for("+13125550100")
    assert is_allowed(_local(2026, 6, 1, 20, 59, 59), zones, window)
    assert not is_allowed(_local(2026, 6, 1, 21, 0, 0), zones, window)
    assert next_allowed(_local(2026, 6, 1, 21, 0, 0), zones, window) == _local(2026, 6, 2, 8, 0, 0)


def test_oklahoma_405_stops_at_2000() -> None:
    assert window_for("+14055550100") is STRICT_WINDOW
    assert window_for("+13125550100") is DEFAULT_WINDOW
    zones = zones_for("+14055550100")
    assert zones == [CHICAGO]
    assert is_allowed(_local(2026, 6, 1, 19, 59, 59), zones, STRICT_WINDOW)
    assert not is_allowed(_local(2026, 6, 1, 20, 0, 0), zones, STRICT_WINDOW)


def test_strictest_zone_wins() -> None:
    # A Chicago number whose profile says New York: 07:30 in Chicago is 08:30 in New York,
    # and 20:30 in Chicago is 21:30 in New York.
    zones = zones_for("+13125550100", profile_zone="America/New_York")
    assert len(zones) == 2
    assert not is_allowed(_local(2026, 6, 1, 7, 30, 0), zones, DEFAULT_WINDOW)
    assert not is_allowed(_local(2026, 6, 1, 20, 30, 0), zones, DEFAULT_WINDOW)
    assert next_allowed(_local(2026, 6, 1, 20, 30, 0), zones, DEFAULT_WINDOW) == _local(
        2026, 6, 2, 8, 0, 0)


def test_unknown_zone_names_are_ignored() -> None:
    assert zones_for("+13125550100", profile_zone="Mars/Olympus") == [CHICAGO]


def _phonenumbers_zones(phone: str) -> list[ZoneInfo]:
    names = pn_timezone.time_zones_for_number(phonenumbers.parse(phone))
    return [ZoneInfo(n) for n in names if not n.startswith("Etc/")] or [ZoneInfo("UTC")]


@settings(max_examples=300, deadline=None)
@given(area=st.integers(200, 999), exchange=st.integers(200, 999), line=st.integers(0, 9999))
def test_us_numbers_get_the_zones_phonenumbers_gives(area: int, exchange: int, line: int) -> None:
    phone = f"+1{area}{exchange}{line:04d}"
    parsed = phonenumbers.parse(phone)
    assume(phonenumbers.is_valid_number(parsed))
    assume(phonenumbers.region_code_for_number(parsed) in {"US", "CA"})
    assert zones_for(phone) == _phonenumbers_zones(phone)


def test_a_caribbean_mobile_gets_its_island_not_every_nanp_zone() -> None:
    # phonenumbers calls Bermudan mobiles non-geographic and answers with all ~40 NANP zones,
    # in which no hour is inside every window: the area's entry is the better answer.
    assert zones_for("+14415001234") == [ZoneInfo("Atlantic/Bermuda")]


def test_numbers_outside_north_america_are_validated_in_full() -> None:
    assert zones_for("+4915123456789") == [ZoneInfo("Europe/Berlin")]  # a German mobile
    assert zones_for("+34612345678") == _phonenumbers_zones("+34612345678")  # Spain, with Canaries
    assert zones_for("+1208000000") == [ZoneInfo("UTC")]  # exchange 000, too short: invalid
    assert zones_for("+12115550100") == [ZoneInfo("UTC")]  # 211 is no area code


def test_the_primary_zone_is_the_profile_zone_when_it_names_one() -> None:
    assert primary_zone("+13125550100", "America/New_York") == ZoneInfo("America/New_York")
    assert primary_zone("+13125550100", "Mars/Olympus") == CHICAGO
    assert primary_zone("+13125550100", None) == zones_for("+13125550100")[0]


@settings(max_examples=60, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1),
                    timezones=st.just(UTC)),
    names=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True),
    strict=st.booleans(),
)
def test_next_allowed_is_the_first_allowed_instant(at: datetime, names: list[str], strict: bool) -> None:
    zones = [ZoneInfo(n) for n in names]
    window = STRICT_WINDOW if strict else DEFAULT_WINDOW
    found = next_allowed(at, zones, window)
    if found is None:  # the windows never overlap (zones too far apart)
        return
    assert found >= at
    assert is_allowed(found, zones, window)
    if found > at:
        assert not is_allowed(found - timedelta(seconds=1), zones, window)
        assert found - at <= timedelta(days=3)
